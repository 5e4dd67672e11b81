// The batch normalisation kernels of the host in AVX-512 registers (impl/batchnorm_simd.hpp): the sums of
// four planes at a time in the scalar kernels' order, the elementwise passes 16 floats at a time.
#include "mimic/nn/layers/impl/batchnorm_simd.hpp"

#include <algorithm>

#if MIMIC_CONV_DIRECT
#include <immintrin.h>

// The intrinsics are vector arithmetic to GCC, which would fuse a product and a sum into one rounding
// (C++'s default -ffp-contract=fast, AVX-512 implying FMA): kept apart, as the scalar kernels round them.
#pragma GCC optimize("fp-contract=off")

#ifndef MIMIC_AVX512
#define MIMIC_AVX512 __attribute__((target("avx512f")))
#endif
#endif

namespace mimic::nn::impl {

#if MIMIC_CONV_DIRECT

bool simd_batchnorm_available() {
    static const bool cpu = __builtin_cpu_supports("avx512f");
    return cpu;
}

namespace {

/// Planes summed at once: 2 kGroup independent chains of double additions instead of one per accumulator.
constexpr int kGroup = 4;

/// f(r0, r1) over [0, n) in chunks of planes (a multiple of kGroup), a host thread each.
template <class F>
void for_chunks(const char* name, std::int64_t n, const F& f) {
    constexpr std::int64_t chunk = 16 * kGroup;
    Kokkos::parallel_for(name,
                         Kokkos::RangePolicy<Kokkos::DefaultHostExecutionSpace>(0, (n + chunk - 1) / chunk),
                         [&](const std::int64_t c) { f(c * chunk, std::min(n, (c + 1) * chunk)); });
}

/// The plane's two totals from its four lane sums and lanes of sums of squares: the scalar kernels' pairing.
MIMIC_AVX512 inline void store_totals(const double s[4], const double q[4], double* out) {
    out[0] = (s[0] + s[1]) + (s[2] + s[3]);
    out[1] = (q[0] + q[1]) + (q[2] + q[3]);
}

/// P planes from x (HW apart): lane l of plane p sums x[p HW + i] for i % 4 == l, the tail into lane 0.
template <int P>
MIMIC_AVX512 void sums_group(const float* x, int HW, double* planes) {
    __m256d s[P], q[P];
    for (int p = 0; p < P; ++p)
        s[p] = q[p] = _mm256_setzero_pd();
    const int n4 = HW / 4 * 4;
    for (int i = 0; i < n4; i += 4)
        for (int p = 0; p < P; ++p) {
            const __m256d v = _mm256_cvtps_pd(_mm_loadu_ps(x + std::int64_t(p) * HW + i));
            s[p] = _mm256_add_pd(s[p], v);
            q[p] = _mm256_add_pd(q[p], _mm256_mul_pd(v, v));
        }
    for (int p = 0; p < P; ++p) {
        alignas(32) double ls[4], lq[4];
        _mm256_store_pd(ls, s[p]);
        _mm256_store_pd(lq, q[p]);
        const float* xs = x + std::int64_t(p) * HW;
        for (int i = n4; i < HW; ++i) {
            ls[0] += xs[i];
            lq[0] += double(xs[i]) * xs[i];
        }
        store_totals(ls, lq, planes + 2 * p);
    }
}

/// P planes from plane r of x, dy (and the fused ReLU's output y when Masked): the sums of g and of
/// g * xhat, lanes as sums_group.
template <int P, bool Masked>
MIMIC_AVX512 void grad_sums_group(const float* x, const float* dy, const float* y, const BnPlanes& bp,
                                  std::int64_t r, double* planes) {
    const int HW = bp.HW;
    __m256d s[P], q[P];
    __m128 m[P], is[P];
    for (int p = 0; p < P; ++p) {
        s[p] = q[p] = _mm256_setzero_pd();
        const int c = int((r + p) % bp.C);
        m[p] = _mm_set1_ps(bp.mean[c]);
        is[p] = _mm_set1_ps(bp.invstd[c]);
    }
    const std::int64_t o0 = r * HW;
    const int n4 = HW / 4 * 4;
    const __m128 zero = _mm_setzero_ps();
    for (int i = 0; i < n4; i += 4)
        for (int p = 0; p < P; ++p) {
            const std::int64_t o = o0 + std::int64_t(p) * HW + i;
            __m128 g = _mm_loadu_ps(dy + o);
            if (Masked) g = _mm_and_ps(_mm_cmpgt_ps(_mm_loadu_ps(y + o), zero), g); // y > 0 ? dy : 0
            const __m128 xhat = _mm_mul_ps(_mm_sub_ps(_mm_loadu_ps(x + o), m[p]), is[p]);
            const __m256d gd = _mm256_cvtps_pd(g);
            s[p] = _mm256_add_pd(s[p], gd);
            q[p] = _mm256_add_pd(q[p], _mm256_mul_pd(gd, _mm256_cvtps_pd(xhat)));
        }
    for (int p = 0; p < P; ++p) {
        alignas(32) double ls[4], lq[4];
        _mm256_store_pd(ls, s[p]);
        _mm256_store_pd(lq, q[p]);
        const int c = int((r + p) % bp.C);
        const float mc = bp.mean[c], ic = bp.invstd[c];
        const std::int64_t o = o0 + std::int64_t(p) * HW;
        for (int i = n4; i < HW; ++i) {
            const float g = Masked ? (y[o + i] > 0.0f ? dy[o + i] : 0.0f) : dy[o + i];
            ls[0] += g;
            lq[0] += double(g) * double((x[o + i] - mc) * ic);
        }
        store_totals(ls, lq, planes + 2 * (r + p));
    }
}

template <bool Masked>
MIMIC_AVX512 void grad_sums_range(const float* x, const float* dy, const float* y, const BnPlanes& p,
                                  std::int64_t r0, std::int64_t r1, double* planes) {
    std::int64_t r = r0;
    for (; r + kGroup <= r1; r += kGroup)
        grad_sums_group<kGroup, Masked>(x, dy, y, p, r, planes);
    for (; r < r1; ++r)
        grad_sums_group<1, Masked>(x, dy, y, p, r, planes);
}

/// The lanes of v that are > 0, the others 0 (relu_forward's select, NaN to 0).
MIMIC_AVX512 inline __m512 positive_or_zero(__m512 sel, __m512 v) {
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(sel, _mm512_setzero_ps(), _CMP_GT_OQ), v);
}

/// (x - m) * a + sh, rectified when Relu: batchnorm_apply's expression.
template <bool Relu>
MIMIC_AVX512 inline __m512 apply16(__m512 x, __m512 m, __m512 a, __m512 sh) {
    const __m512 v = _mm512_add_ps(_mm512_mul_ps(_mm512_sub_ps(x, m), a), sh);
    return Relu ? positive_or_zero(v, v) : v;
}

template <bool Relu>
MIMIC_AVX512 void apply_plane(const float* x, int n, float m, float a, float sh, float* y) {
    const __m512 vm = _mm512_set1_ps(m), va = _mm512_set1_ps(a), vs = _mm512_set1_ps(sh);
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, apply16<Relu>(_mm512_loadu_ps(x + i), vm, va, vs));
    if (i == n) return;
    const __mmask16 k = __mmask16((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(y + i, k, apply16<Relu>(_mm512_maskz_loadu_ps(k, x + i), vm, va, vs));
}

/// The per-channel values of batchnorm_dx for one plane, broadcast.
struct DxChannel {
    __m512 m, is, sc, a, b;
};

/// sc * (g - a - (x - m) * is * b), g = dy or (Masked) y > 0 ? dy : 0: batchnorm_dx's expression.
template <bool Masked>
MIMIC_AVX512 inline __m512 dx16(__m512 x, __m512 g, __m512 y, const DxChannel& ch) {
    const __m512 xhat = _mm512_mul_ps(_mm512_sub_ps(x, ch.m), ch.is);
    if (Masked) g = positive_or_zero(y, g);
    return _mm512_mul_ps(ch.sc, _mm512_sub_ps(_mm512_sub_ps(g, ch.a), _mm512_mul_ps(xhat, ch.b)));
}

template <bool Masked>
MIMIC_AVX512 void dx_plane(const float* x, const float* dy, const float* y, int n, const BnPlanes& p, int c,
                           float* dx) {
    const DxChannel ch{_mm512_set1_ps(p.mean[c]), _mm512_set1_ps(p.invstd[c]), _mm512_set1_ps(p.scale[c]),
                       _mm512_set1_ps(p.a[c]), _mm512_set1_ps(p.b[c])};
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dx + i, dx16<Masked>(_mm512_loadu_ps(x + i), _mm512_loadu_ps(dy + i),
                                              Masked ? _mm512_loadu_ps(y + i) : _mm512_setzero_ps(), ch));
    if (i == n) return;
    const __mmask16 k = __mmask16((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(dx + i, k,
                          dx16<Masked>(_mm512_maskz_loadu_ps(k, x + i), _mm512_maskz_loadu_ps(k, dy + i),
                                       Masked ? _mm512_maskz_loadu_ps(k, y + i) : _mm512_setzero_ps(), ch));
}

} // namespace

void bn_plane_sums(const float* x, const BnPlanes& p, std::int64_t n, double* planes) {
    const int HW = p.HW;
    for_chunks("mimic::nn::bn::simd_sums", n, [&](std::int64_t r0, std::int64_t r1) {
        std::int64_t r = r0;
        for (; r + kGroup <= r1; r += kGroup)
            sums_group<kGroup>(x + r * HW, HW, planes + 2 * r);
        for (; r < r1; ++r)
            sums_group<1>(x + r * HW, HW, planes + 2 * r);
    });
}

void bn_grad_plane_sums(const float* x, const float* dy, const float* y, const BnPlanes& p, std::int64_t n,
                        double* planes) {
    for_chunks("mimic::nn::bn::simd_grad_sums", n, [&](std::int64_t r0, std::int64_t r1) {
        if (y)
            grad_sums_range<true>(x, dy, y, p, r0, r1, planes);
        else
            grad_sums_range<false>(x, dy, y, p, r0, r1, planes);
    });
}

void bn_apply_planes(const float* x, const BnPlanes& p, bool relu, std::int64_t n, float* out) {
    const int HW = p.HW;
    for_chunks("mimic::nn::bn::simd_apply", n, [&](std::int64_t r0, std::int64_t r1) {
        for (std::int64_t r = r0; r < r1; ++r) {
            const int c = int(r % p.C);
            if (relu)
                apply_plane<true>(x + r * HW, HW, p.mean[c], p.scale[c], p.shift[c], out + r * HW);
            else
                apply_plane<false>(x + r * HW, HW, p.mean[c], p.scale[c], p.shift[c], out + r * HW);
        }
    });
}

void bn_dx_planes(const float* x, const float* dy, const float* y, const BnPlanes& p, std::int64_t n,
                  float* dx) {
    const int HW = p.HW;
    for_chunks("mimic::nn::bn::simd_dx", n, [&](std::int64_t r0, std::int64_t r1) {
        for (std::int64_t r = r0; r < r1; ++r) {
            const int c = int(r % p.C);
            const std::int64_t o = r * HW;
            if (y)
                dx_plane<true>(x + o, dy + o, y + o, HW, p, c, dx + o);
            else
                dx_plane<false>(x + o, dy + o, nullptr, HW, p, c, dx + o);
        }
    });
}

#else

bool simd_batchnorm_available() {
    return false;
}

void bn_plane_sums(const float*, const BnPlanes&, std::int64_t n, double*) {
    fail("bn_plane_sums: ", n, " planes asked for, but the AVX-512 bn kernels are not compiled in");
}

void bn_grad_plane_sums(const float*, const float*, const float*, const BnPlanes&, std::int64_t n, double*) {
    fail("bn_grad_plane_sums: ", n, " planes asked for, but the AVX-512 bn kernels are not compiled in");
}

void bn_apply_planes(const float*, const BnPlanes&, bool, std::int64_t n, float*) {
    fail("bn_apply_planes: ", n, " planes asked for, but the AVX-512 bn kernels are not compiled in");
}

void bn_dx_planes(const float*, const float*, const float*, const BnPlanes&, std::int64_t n, float*) {
    fail("bn_dx_planes: ", n, " planes asked for, but the AVX-512 bn kernels are not compiled in");
}

#endif

} // namespace mimic::nn::impl
