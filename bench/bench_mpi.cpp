// Latency and bandwidth of the collectives Mimic calls: MPI_Allreduce (float sum, in place: gradients and
// partial logits), MPI_Allgather, MPI_Gatherv to rank 0 (label's member logits) and MPI_Bcast from rank 0
// (label's rows), over message sizes, best of N; one machine-readable RESULT line per (collective, size).
#include "mimic/core/comm.hpp"
#include "mimic/core/runtime.hpp"
#include "mimic/core/timer.hpp"

#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

using namespace mimic;

namespace {

struct Buffers {
    std::vector<float> send, recv;
    std::vector<int> counts, displs;
};

/// One call of collective `op` with `n` floats per rank.
void call(const std::string& op, std::int64_t n, Buffers& b, const par::Comm& comm) {
    const int cnt = int(n);
    if (op == "allreduce") {
        MIMIC_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, b.send.data(), cnt, MPI_FLOAT, MPI_SUM, comm.get()));
    } else if (op == "allgather") {
        MIMIC_MPI_CHECK(
            MPI_Allgather(b.send.data(), cnt, MPI_FLOAT, b.recv.data(), cnt, MPI_FLOAT, comm.get()));
    } else if (op == "bcast") {
        MIMIC_MPI_CHECK(MPI_Bcast(b.send.data(), cnt, MPI_FLOAT, 0, comm.get()));
    } else {
        for (int r = 0; r < comm.size(); ++r)
            b.counts[size_t(r)] = cnt, b.displs[size_t(r)] = r * cnt;
        MIMIC_MPI_CHECK(MPI_Gatherv(b.send.data(), cnt, MPI_FLOAT, b.recv.data(), b.counts.data(),
                                    b.displs.data(), MPI_FLOAT, 0, comm.get()));
    }
}

/// Best over `reps` of the mean seconds per call over `iters` calls, each repetition timed from a
/// barrier to the slowest rank's finish.
double time_op(const std::string& op, std::int64_t n, int reps, int iters, Buffers& b,
               const par::Comm& comm) {
    call(op, n, b, comm); // warm-up: connections, registration, first touch
    double best = 1e300;
    for (int r = 0; r < reps; ++r) {
        comm.barrier();
        const double t0 = wall_seconds();
        for (int i = 0; i < iters; ++i)
            call(op, n, b, comm);
        best = std::min(best, comm.max(wall_seconds() - t0) / iters);
    }
    return best;
}

int usage(const par::Comm& comm) {
    if (comm.is_root())
        std::fprintf(stderr, "usage: bench_mpi [--min-bytes 4] [--max-bytes 67108864] [--reps 5] "
                             "[--ops allreduce,allgather,gatherv,bcast] [--target-bytes 67108864]\n");
    return 2;
}

} // namespace

int main(int argc, char** argv) {
    Runtime rt(argc, argv);
    par::Comm world;
    std::int64_t min_bytes = 4, max_bytes = std::int64_t(64) << 20, target = std::int64_t(64) << 20;
    int reps = 5;
    std::string ops = "allreduce,allgather,gatherv,bcast";
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc) return usage(world);
        if (!std::strcmp(argv[i], "--min-bytes"))
            min_bytes = std::atoll(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--max-bytes"))
            max_bytes = std::atoll(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--reps"))
            reps = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--ops"))
            ops = argv[i + 1];
        else if (!std::strcmp(argv[i], "--target-bytes"))
            target = std::atoll(argv[i + 1]);
        else
            return usage(world);
    }
    if (min_bytes < 4 || max_bytes < min_bytes || reps < 1 || target < 4) return usage(world);
    const int P = world.size();
    Buffers b;
    b.send.assign(size_t(max_bytes / 4), 1.0f);
    b.recv.assign(size_t(max_bytes / 4) * size_t(P), 0.0f);
    b.counts.assign(size_t(P), 0);
    b.displs.assign(size_t(P), 0);
    if (world.is_root()) {
        std::printf(
            "bench_mpi: %d ranks, %s; bytes = per-rank message (floats x 4), best of %d repetitions,\n"
            "each the mean of enough calls to move about %lld bytes per rank (at least 1, at most "
            "1000); algbw = bytes / seconds\n",
            P, mpi_version_string().c_str(), reps, (long long)target);
        std::printf("RESULT op bytes ranks seconds algbw_GBps\n");
    }
    std::string rest = ops + ",";
    for (std::size_t pos; (pos = rest.find(',')) != std::string::npos; rest.erase(0, pos + 1)) {
        const std::string op = rest.substr(0, pos);
        if (op.empty()) continue;
        if (op != "allreduce" && op != "allgather" && op != "gatherv" && op != "bcast") {
            if (world.is_root())
                std::fprintf(stderr, "bench_mpi: --ops: '%s' is not a collective here\n", op.c_str());
            return 2;
        }
        for (std::int64_t bytes = min_bytes; bytes <= max_bytes; bytes *= 4) {
            const std::int64_t n = bytes / 4;
            const int iters = int(std::clamp<std::int64_t>(target / bytes, 1, 1000));
            const double t = time_op(op, n, reps, iters, b, world);
            if (world.is_root())
                std::printf("RESULT %s %lld %d %.9g %.6g\n", op.c_str(), (long long)(n * 4), P, t,
                            double(n * 4) / t / 1e9);
        }
    }
    return 0;
}
