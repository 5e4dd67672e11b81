// Helpers shared by the C++ benchmarks: seeded random device matrices and the thread's CPU clock (a
// Serial-backend, one-BLAS-thread run uses exactly one thread, so it is robust to other processes).
#pragma once

#include "mimic/core/kokkos.hpp"
#include "mimic/core/rng.hpp"

#include <cstdint>
#include <ctime>
#include <string>

namespace mimic::bench {

/// A [rows, cols] matrix of uniform values in [-0.5, 0.5), element i from (seed, i).
inline Matrix random_matrix(const char* label, std::int64_t rows, std::int64_t cols, std::uint64_t seed) {
    Matrix m(std::string(label), rows, cols);
    Kokkos::parallel_for(
        "mimic::bench::fill", RangePolicy(0, rows * cols), KOKKOS_LAMBDA(const std::int64_t i) {
            CounterRng r(seed, std::uint64_t(i));
            m.data()[i] = r.uniform() - 0.5f;
        });
    return m;
}

/// CPU time of this thread in seconds.
inline double thread_cpu_seconds() {
    timespec t{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

} // namespace mimic::bench
