// Rank-0 logging implementation: cached world rank, quiet switch, flushed writes.
// Warnings carry the rank so that multi-rank logs stay readable.
#include "mimic/core/log.hpp"

#include <mpi.h>

#include <cstdio>

namespace mimic::log {
namespace {
bool g_quiet = false;
}

int world_rank() {
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (!init || fin) return 0;
    int r = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &r);
    return r;
}

void set_quiet(bool q) {
    g_quiet = q;
}
bool quiet() {
    return g_quiet;
}

void write_info(const std::string& line) {
    std::fputs(line.c_str(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
}

void write_warn(const std::string& line) {
    std::fprintf(stderr, "mimic: warning (rank %d): %s\n", world_rank(), line.c_str());
    std::fflush(stderr);
}

} // namespace mimic::log
