// Device-View allreduce with host staging where MPI cannot read device memory, so the same code runs
// on the Serial backend (direct) and on CUDA (staged, or direct with GPU-aware MPI; staged on request).
#include "mimic/parallel/reduce.hpp"

#include "mimic/core/error.hpp"
#include "mimic/core/runtime.hpp"

#include <algorithm>
#include <vector>

namespace mimic::par {

bool gpu_aware_mpi() {
    static const bool on = env_is_one("MIMIC_GPU_AWARE_MPI");
    return on;
}

bool host_staged_mpi() {
    static const bool on = env_is_one("MIMIC_HOST_STAGED_MPI");
    MIMIC_REQUIRE(!(on && gpu_aware_mpi()),
                  "MIMIC_HOST_STAGED_MPI=1 and MIMIC_GPU_AWARE_MPI=1 contradict each "
                  "other: set one of them");
    return on;
}

bool mpi_reads_views() {
    if (host_staged_mpi()) return false;
    return Kokkos::SpaceAccessibility<HostSpace, MemSpace>::accessible || gpu_aware_mpi();
}

namespace {

/// Host staging for Views MPI cannot read: one buffer per process, grown to the largest reduction and
/// kept, so a reduction per step allocates nothing (reductions run on the main thread only).
float* staging(std::int64_t n) {
    static std::vector<float> buf;
    if (std::int64_t(buf.size()) < n) buf.resize(size_t(n));
    return buf.data();
}

void reduce_raw(float* p, std::int64_t n, const Comm& comm) {
    // MPI counts are int: reduce in pieces of at most 2^30 floats.
    for (std::int64_t off = 0; off < n; off += (std::int64_t(1) << 30)) {
        const int cnt = int(std::min<std::int64_t>(n - off, std::int64_t(1) << 30));
        MIMIC_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, p + off, cnt, MPI_FLOAT, MPI_SUM, comm.get()));
    }
}
} // namespace

void allreduce_sum(const Vector& v, const Comm& comm, std::int64_t begin, std::int64_t count) {
    if (comm.size() == 1) return;
    if (count < 0) count = std::int64_t(v.extent(0)) - begin;
    if (count <= 0) return;
    auto part = Kokkos::subview(v, std::make_pair(begin, begin + count));
    if (mpi_reads_views()) {
        Kokkos::fence();
        reduce_raw(part.data(), count, comm);
        return;
    }
    Kokkos::View<float*, HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>> h(staging(count), size_t(count));
    Kokkos::deep_copy(h, part);
    reduce_raw(h.data(), count, comm);
    Kokkos::deep_copy(part, h);
}

void allreduce_sum(const Matrix& m, const Comm& comm) {
    if (comm.size() == 1) return;
    Vector flat(m.data(), m.size());
    allreduce_sum(flat, comm);
}

} // namespace mimic::par
