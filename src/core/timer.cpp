// Phase timers: accumulate locally, reduce min/avg/max over ranks, print a table on rank 0.
// Each timed scope is also a Kokkos profiling region so that Kokkos tools see the same phases.
#include "mimic/core/timer.hpp"

#include "mimic/core/log.hpp"

#include <Kokkos_Core.hpp>

#include <algorithm>
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

namespace {

/// Collective: the phases of every rank, rank 0's first in its order, then those only later ranks saw, in
/// rank order. Every rank gets the same list whatever phases it ran itself (a replica with no rows skips
/// some), so the reductions over it are the same sequence of collectives on every rank.
std::vector<std::string> union_of_phases(const par::Comm& comm, const std::vector<std::string>& mine) {
    if (comm.size() == 1) return mine;
    std::string packed;
    for (const auto& p : mine)
        packed += p + '\n';
    int len = static_cast<int>(packed.size());
    std::vector<int> lens(comm.size()), offsets(comm.size());
    MIMIC_MPI_CHECK(MPI_Allgather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, comm.get()));
    int total = 0;
    for (int r = 0; r < comm.size(); ++r) {
        offsets[r] = total;
        total += lens[r];
    }
    std::string all(static_cast<size_t>(total), '\0');
    MIMIC_MPI_CHECK(MPI_Allgatherv(packed.data(), len, MPI_CHAR, all.data(), lens.data(), offsets.data(),
                                   MPI_CHAR, comm.get()));
    std::vector<std::string> out;
    size_t start = 0;
    for (size_t end = all.find('\n'); end != std::string::npos;
         start = end + 1, end = all.find('\n', start)) {
        std::string p = all.substr(start, end - start);
        if (std::find(out.begin(), out.end(), p) == out.end()) out.push_back(std::move(p));
    }
    return out;
}

} // namespace

std::vector<PhaseTimers::Stat> PhaseTimers::reduce(const par::Comm& comm) const {
    const auto phases = union_of_phases(comm, order_);
    const int n = static_cast<int>(phases.size());
    std::vector<double> local(phases.size()), lo(phases.size()), sum(phases.size()), hi(phases.size());
    for (size_t i = 0; i < phases.size(); ++i)
        local[i] = get(phases[i]);
    if (comm.size() == 1) {
        lo = sum = hi = local;
    } else {
        MIMIC_MPI_CHECK(MPI_Allreduce(local.data(), lo.data(), n, MPI_DOUBLE, MPI_MIN, comm.get()));
        MIMIC_MPI_CHECK(MPI_Allreduce(local.data(), sum.data(), n, MPI_DOUBLE, MPI_SUM, comm.get()));
        MIMIC_MPI_CHECK(MPI_Allreduce(local.data(), hi.data(), n, MPI_DOUBLE, MPI_MAX, comm.get()));
    }
    std::vector<Stat> out;
    for (size_t i = 0; i < phases.size(); ++i)
        out.push_back({phases[i], lo[i], sum[i] / comm.size(), hi[i]});
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
