// The transfer-set row generator kernel: source copies, image augmentation (translation, flip, mixup,
// Gaussian noise) and MUNGE resampling, one independent value per (row, feature) from counter-based RNGs.
#pragma once

#include "mimic/core/kokkos.hpp"
#include "mimic/core/rng.hpp"

#include <cstdint>

namespace mimic::transfer {

/// One output row as the kernel sees it: rows of the input buffers to read and the row's choices.
struct RowSpec {
    std::uint64_t key_noise = 0; ///< derive_seed(seed, row, kNoiseStream): the row's noise stream
    std::uint64_t key_munge = 0; ///< derive_seed(seed, row, kMungeStream): the row's MUNGE stream
    std::int32_t a = 0;          ///< row in A (source rows) and in N (their neighbours' rows)
    std::int32_t p = -1;         ///< row in P (mixup partners), -1 if none
    std::int8_t gen = 0, side = 0, flip = 0, mix = 0;
    std::int16_t dx = 0, dy = 0;
    float lambda = 1.0f;
};

using RowSpecs = Kokkos::View<RowSpec*, Kokkos::LayoutRight, MemSpace>;

struct GenerateParams {
    int c = 1, h = 1, w = 1;
    float noise = 0;
    float munge_p = 0.5f, munge_s = 1.0f;
    /// Translation moves values between features: with per-feature normalisation they are mapped
    /// through raw pixel values (x * std + mean); with one global mean and std they are moved as they are.
    bool per_feature = false;
};

/// Fills a RowSpec's stream keys for global output row `row`.
void set_row_keys(RowSpec& s, std::uint64_t seed, std::int64_t row);

/// Two independent standard normals from counters (counter, counter + 1) of stream `key` (float
/// Box-Muller; |z| <= 5.77). Feature j of a row takes z0 (j even) or z1 (j odd) of pair j / 2: noise pair k
/// at counter 2k of the row's noise stream; MUNGE pair k at counter 4k of its stream, with the swap
/// draws of features 2k and 2k + 1 at counters 4k + 2 and 4k + 3.
KOKKOS_INLINE_FUNCTION void normal_pair(std::uint64_t key, std::uint64_t counter, float& z0, float& z1);

/// out(r, :) for r < count. A, N and P hold source rows, neighbour rows (MUNGE) and partner rows (mixup);
/// N and P may be empty when no row uses them. mean and stdev are the normalisation vectors (length D).
void generate_rows(const GenerateParams& g, const RowSpecs& spec, std::int64_t count, const Matrix& A,
                   const Matrix& N, const Matrix& P, const Vector& mean, const Vector& stdev,
                   const Matrix& out);

KOKKOS_INLINE_FUNCTION void normal_pair(std::uint64_t key, std::uint64_t counter, float& z0, float& z1) {
    CounterRng rng(key, counter);
    const float u1 = float((rng.next_u64() >> 40) + 1) * (1.0f / 16777216.0f); // (0, 1]
    const float u2 = rng.uniform();
    const float r = kmath::sqrt(-2.0f * kmath::log(u1));
    const float a = 6.28318530717958647f * u2;
    z0 = r * kmath::cos(a);
    z1 = r * kmath::sin(a);
}

} // namespace mimic::transfer
