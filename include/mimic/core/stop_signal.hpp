// Stop requests by signal: SIGTERM (SLURM at the time limit, scancel) and SIGUSR1 (sbatch --signal) are
// recorded while a StopSignals is alive, so a long stage can save its progress and leave at a safe point.
#pragma once

namespace mimic {

class StopSignals {
public:
    /// Installs the handlers for SIGTERM and SIGUSR1 and clears any earlier request.
    StopSignals();
    /// Restores the handlers that were installed before.
    ~StopSignals();
    StopSignals(const StopSignals&) = delete;
    StopSignals& operator=(const StopSignals&) = delete;

    /// The signal received since construction, or 0 (this rank only: reduce it with Comm::any).
    static int received();

private:
    using Handler = void (*)(int);
    Handler prev_term_, prev_usr1_;
};

} // namespace mimic
