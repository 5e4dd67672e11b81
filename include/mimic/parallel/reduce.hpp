// Allreduce of device Views over a communicator: in place when MPI can read the View's memory (host
// backends, or GPU-aware MPI enabled with MIMIC_GPU_AWARE_MPI=1), through host staging buffers otherwise.
#pragma once

#include "mimic/core/comm.hpp"
#include "mimic/core/kokkos.hpp"

namespace mimic::par {

/// True when MPI may be handed device pointers directly (MIMIC_GPU_AWARE_MPI=1).
bool gpu_aware_mpi();
/// True when MIMIC_HOST_STAGED_MPI=1 asks for host staging on every backend, so that a CPU build runs the
/// path a GPU build without GPU-aware MPI takes (the tests use it). Fails when both variables are set.
bool host_staged_mpi();
/// True when MPI can read and write the memory of Views directly (host backends, or GPU-aware MPI) and
/// host staging was not asked for; otherwise reductions go through host staging buffers.
bool mpi_reads_views();

/// In-place sum of `v[begin, begin + count)` over comm (count < 0: to the end). No-op on one rank.
void allreduce_sum(const Vector& v, const Comm& comm, std::int64_t begin = 0, std::int64_t count = -1);
/// In-place sum of a whole matrix over comm.
void allreduce_sum(const Matrix& m, const Comm& comm);

} // namespace mimic::par
