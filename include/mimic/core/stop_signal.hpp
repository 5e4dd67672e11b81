// Stop requests by signal: SIGTERM (SLURM at the time limit, scancel) and SIGUSR1 (sbatch --signal) are
// recorded while a StopSignals is alive, so a long stage can save its progress and leave at a safe point.
#pragma once

namespace mimic {

class StopSignals {
public:
    /// Installs the handlers for SIGTERM and SIGUSR1. A request recorded earlier that no stage acted on
    /// stays pending (it arrived between two scopes, e.g. while an ensemble member was being saved).
    StopSignals();
    /// Restores the handlers that were installed before, unless output_complete() was called.
    ~StopSignals();
    StopSignals(const StopSignals&) = delete;
    StopSignals& operator=(const StopSignals&) = delete;

    /// The signal received since construction, or 0 (this rank only: reduce it with Comm::any).
    static int received();

    /// Called on every rank once the command's work is done and only the final output's metadata, close
    /// and rename are left (or it is already in place): from then until the process exits SIGTERM and
    /// SIGUSR1 are only recorded, so a stop request that arrives after the work is done cannot turn a
    /// success into a failure (the exit status stays 0).
    static void output_complete();

private:
    using Handler = void (*)(int);
    Handler prev_term_, prev_usr1_;
};

} // namespace mimic
