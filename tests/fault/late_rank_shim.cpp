// An LD_PRELOAD shim for the fault tests (PMPI profiling interface): one rank reaches each MPI_Iallreduce
// late and the other ranks' MPI_Abort takes effect late, so the race of two failing ranks is replayable.
// Settings:
//   MIMIC_TEST_LATE_RANK=R, MIMIC_TEST_LATE_SECONDS=S: rank R sleeps S seconds before each MPI_Iallreduce.
//   MIMIC_TEST_SLOW_ABORT_SECONDS=A: every other rank sleeps A seconds before MPI_Abort takes effect.
#include <mpi.h>

#include <chrono>
#include <cstdlib>
#include <thread>

namespace {
double env_seconds(const char* name) {
    const char* s = std::getenv(name);
    return s ? std::atof(s) : 0.0;
}

bool is_late_rank() {
    const char* r = std::getenv("MIMIC_TEST_LATE_RANK");
    int rank = -1;
    PMPI_Comm_rank(MPI_COMM_WORLD, &rank);
    return r && std::atoi(r) == rank;
}

void sleep_seconds(double s) {
    if (s > 0) std::this_thread::sleep_for(std::chrono::duration<double>(s));
}
} // namespace

extern "C" int MPI_Iallreduce(const void* send, void* recv, int count, MPI_Datatype type, MPI_Op op,
                              MPI_Comm comm, MPI_Request* req) {
    if (is_late_rank()) sleep_seconds(env_seconds("MIMIC_TEST_LATE_SECONDS"));
    return PMPI_Iallreduce(send, recv, count, type, op, comm, req);
}

extern "C" int MPI_Abort(MPI_Comm comm, int code) {
    if (!is_late_rank()) sleep_seconds(env_seconds("MIMIC_TEST_SLOW_ABORT_SECONDS"));
    return PMPI_Abort(comm, code);
}
