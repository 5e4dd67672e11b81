// Deterministic, counter-based random numbers usable on host and device: a value depends only on
// (seed, stream, counter), never on rank count or thread order, so results are reproducible bit for bit.
#pragma once

#include "mimic/core/kokkos.hpp"

#include <cstdint>

namespace mimic {

/// SplitMix64 finaliser: a strong 64-bit mix.
KOKKOS_INLINE_FUNCTION std::uint64_t mix64(std::uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/// Derives an independent seed for (seed, a, b), e.g. (global seed, rank or member, row index).
KOKKOS_INLINE_FUNCTION std::uint64_t derive_seed(std::uint64_t seed, std::uint64_t a, std::uint64_t b = 0) {
    return mix64(mix64(seed ^ mix64(a + 0x632be59bd9b4e019ULL)) ^ mix64(b + 0x8cb92ba72f3d8dd7ULL));
}

/// A small counter-based generator: state is (key, counter); copying it is cheap and exact.
struct CounterRng {
    std::uint64_t key = 0;
    std::uint64_t counter = 0;

    KOKKOS_INLINE_FUNCTION CounterRng() = default;
    KOKKOS_INLINE_FUNCTION explicit CounterRng(std::uint64_t k, std::uint64_t c = 0) : key(k), counter(c) {}

    KOKKOS_INLINE_FUNCTION std::uint64_t next_u64() { return mix64(key ^ mix64(counter++)); }
    /// Uniform in [0, 1) with 24 random bits.
    KOKKOS_INLINE_FUNCTION float uniform() { return float(next_u64() >> 40) * (1.0f / 16777216.0f); }
    /// Uniform in [0, 1) with 53 random bits.
    KOKKOS_INLINE_FUNCTION double uniform_double() {
        return double(next_u64() >> 11) * (1.0 / 9007199254740992.0);
    }
    /// Uniform integer in [0, n).
    KOKKOS_INLINE_FUNCTION std::uint64_t below(std::uint64_t n) { return n ? next_u64() % n : 0; }
    /// Standard normal (Box-Muller, one value per call).
    KOKKOS_INLINE_FUNCTION float normal() {
        double u1 = uniform_double();
        const double u2 = uniform_double();
        if (u1 < 1e-300) u1 = 1e-300;
        return float(kmath::sqrt(-2.0 * kmath::log(u1)) * kmath::cos(6.283185307179586 * u2));
    }
};

} // namespace mimic
