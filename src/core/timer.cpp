// Phase timers: accumulate locally, reduce min/avg/max over ranks, print a table on rank 0.
// Each timed scope is also a Kokkos profiling region so that Kokkos tools see the same phases.
#include "mimic/core/timer.hpp"

#include "mimic/core/log.hpp"

#include <Kokkos_Core.hpp>

#include <cstdio>

namespace mimic {

void PhaseTimers::add(const std::string& phase, double s) {
    auto it = seconds_.find(phase);
    if (it == seconds_.end()) {
        seconds_[phase] = s;
        order_.push_back(phase);
    } else {
        it->second += s;
    }
}

double PhaseTimers::get(const std::string& phase) const {
    auto it = seconds_.find(phase);
    return it == seconds_.end() ? 0.0 : it->second;
}

std::vector<PhaseTimers::Stat> PhaseTimers::reduce(const par::Comm& comm) const {
    std::vector<Stat> out;
    for (const auto& p : order_) {
        const double v = seconds_.at(p);
        out.push_back({p, comm.min(v), comm.sum(v) / comm.size(), comm.max(v)});
    }
    return out;
}

void PhaseTimers::report(const par::Comm& comm, const std::string& title) const {
    const auto stats = reduce(comm);
    log::info(title, " (seconds over ", comm.size(), " rank", comm.size() == 1 ? "" : "s", ")");
    char line[256];
    std::snprintf(line, sizeof line, "  %-14s %10s %10s %10s", "phase", "min", "avg", "max");
    log::info(line);
    for (const auto& s : stats) {
        std::snprintf(line, sizeof line, "  %-14s %10.3f %10.3f %10.3f", s.phase.c_str(), s.min, s.avg,
                      s.max);
        log::info(line);
    }
}

void PhaseTimers::append_csv(const par::Comm& comm, const std::string& path,
                             const std::vector<std::pair<std::string, std::string>>& fields) const {
    const auto stats = reduce(comm);
    if (path.empty() || comm.rank() != 0) return;
    FILE* probe = std::fopen(path.c_str(), "r");
    const bool fresh = probe == nullptr;
    if (probe) std::fclose(probe);
    FILE* f = std::fopen(path.c_str(), "a");
    if (!f) {
        log::warn(path, ": cannot append the timings CSV");
        return;
    }
    if (fresh) {
        for (const auto& kv : fields)
            std::fprintf(f, "%s,", kv.first.c_str());
        std::fprintf(f, "phase,min_s,avg_s,max_s\n");
    }
    for (const auto& s : stats) {
        for (const auto& kv : fields)
            std::fprintf(f, "%s,", kv.second.c_str());
        std::fprintf(f, "%s,%.6f,%.6f,%.6f\n", s.phase.c_str(), s.min, s.avg, s.max);
    }
    std::fclose(f);
}

ScopedPhase::ScopedPhase(PhaseTimers& timers, std::string phase, const std::string& region)
    : timers_(timers), phase_(std::move(phase)), start_(std::chrono::steady_clock::now()) {
    Kokkos::Profiling::pushRegion("mimic::" + region);
}

ScopedPhase::~ScopedPhase() {
    Kokkos::fence();
    Kokkos::Profiling::popRegion();
    timers_.add(phase_, std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
}

double wall_seconds() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

} // namespace mimic
