// Device-View allreduce with host staging where MPI cannot read device memory, so the same code runs
// on the Serial backend (direct) and on CUDA (staged, or direct with GPU-aware MPI).
#include "mimic/parallel/reduce.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace mimic::par {

bool gpu_aware_mpi() {
    static const bool on = [] {
        const char* s = std::getenv("MIMIC_GPU_AWARE_MPI");
        return s && std::strcmp(s, "1") == 0;
    }();
    return on;
}

namespace {
constexpr bool kHostAccessible = Kokkos::SpaceAccessibility<HostSpace, MemSpace>::accessible;

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
    if (kHostAccessible || gpu_aware_mpi()) {
        Kokkos::fence();
        reduce_raw(part.data(), count, comm);
        return;
    }
    auto h = Kokkos::create_mirror_view_and_copy(HostSpace(), part);
    reduce_raw(h.data(), count, comm);
    Kokkos::deep_copy(part, h);
}

void allreduce_sum(const Matrix& m, const Comm& comm) {
    if (comm.size() == 1) return;
    Vector flat(m.data(), m.size());
    allreduce_sum(flat, comm);
}

} // namespace mimic::par
