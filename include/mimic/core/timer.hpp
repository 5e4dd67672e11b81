// Per-phase wall-clock timers (read, compute, reduce, write, ...) with a Kokkos profiling region per
// phase, reduced to min/avg/max over ranks for the end-of-stage summary.
#pragma once

#include "mimic/core/comm.hpp"

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace mimic {

class PhaseTimers {
public:
    void add(const std::string& phase, double seconds);
    double get(const std::string& phase) const;
    const std::vector<std::string>& phases() const { return order_; }

    struct Stat {
        std::string phase;
        double min = 0, avg = 0, max = 0;
    };
    /// Collective over comm: the union of every rank's phases (a rank that skipped a phase, such as a
    /// replica that got no rows, counts 0 s for it), the same sequence of collectives on every rank.
    std::vector<Stat> reduce(const par::Comm& comm) const;
    /// Collective: prints "phase  min  avg  max" on rank 0.
    void report(const par::Comm& comm, const std::string& title) const;
    /// Collective: rank 0 appends one row per phase to a CSV file (header written when the file is new):
    /// the given key=value fields, then phase,min_s,avg_s,max_s. For scaling studies (--timings-csv).
    void append_csv(const par::Comm& comm, const std::string& path,
                    const std::vector<std::pair<std::string, std::string>>& fields) const;

private:
    std::map<std::string, double> seconds_;
    std::vector<std::string> order_;
};

/// Times a scope into a PhaseTimers phase and opens the Kokkos profiling region "mimic::<region>".
class ScopedPhase {
public:
    ScopedPhase(PhaseTimers& timers, std::string phase, const std::string& region);
    ~ScopedPhase();
    ScopedPhase(const ScopedPhase&) = delete;
    ScopedPhase& operator=(const ScopedPhase&) = delete;

private:
    PhaseTimers& timers_;
    std::string phase_;
    std::chrono::steady_clock::time_point start_;
};

/// Seconds since an arbitrary fixed point (steady clock).
double wall_seconds();

} // namespace mimic
