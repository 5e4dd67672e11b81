// The activations of a convolution's output pass (ConvAct) in AVX-512 registers of 16 floats, with a
// polynomial exp, expm1 and erf: for the direct kernels' epilogues and the inference forward of activations.
#pragma once

#include "mimic/nn/layers/impl/conv2d_direct.hpp"

#include <cstdint>

namespace mimic::nn::impl {

/// Whether activate_rows runs here: compiled in (MIMIC_CONV_DIRECT) and this CPU has AVX-512F.
bool simd_activations_available();

/// y[i] = conv_activate(a, x[i], alpha) for i < n, 16 at a time (y may equal x); only where
/// simd_activations_available(). none, relu, relu6, hardswish, hardsigmoid and leakyrelu give
/// conv_activate's bits; the others agree with it within float rounding: exp and expm1 (silu, sigmoid, elu)
/// to a few units in the last place, gelu's erf (Abramowitz & Stegun 7.1.26) to 1.5e-7 absolute.
void activate_rows(ConvAct a, float alpha, const float* x, float* y, std::int64_t n);
/// activate_rows over all of x into y (the same size; may be x), in chunks over the host execution space's
/// threads (the results do not depend on the split); only where simd_activations_available() and
/// DirectConvAvailable hold for the execution space (host memory).
void activate_matrix(ConvAct a, float alpha, const Matrix& x, const Matrix& y);

} // namespace mimic::nn::impl

#if MIMIC_CONV_DIRECT
#include <immintrin.h>

#ifndef MIMIC_AVX512
#define MIMIC_AVX512 __attribute__((target("avx512f")))
#endif

namespace mimic::nn::impl::simd {

// GCC 12's unmasked min, max, roundscale and scalef intrinsics start from _mm512_undefined_ps, which
// -Wmaybe-uninitialized reports once inlined: the masked forms (all lanes) and compare-and-blend instead.

/// The lanes of v below lo set to lo, those above hi to hi (NaN kept).
MIMIC_AVX512 inline __m512 clamp(__m512 v, float lo, float hi) {
    const __m512 l = _mm512_set1_ps(lo), h = _mm512_set1_ps(hi);
    v = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, l, _CMP_LT_OQ), l);
    return _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, h, _CMP_GT_OQ), h);
}

/// e^x: x = n·ln 2 + r with n = round(x / ln 2) and |r| <= ln 2 / 2 (ln 2 split in two for an exact n·ln 2),
/// e^r by its Taylor polynomial to r^7 (remainder under 1e-8 relative), 2^n by scalef: 0 below -104 (expf
/// is 0 or subnormal there), inf above 88.7 as expf.
MIMIC_AVX512 inline __m512 exp(__m512 x) {
    x = clamp(x, -104.0f, 89.0f);
    const __m512 n =
        _mm512_maskz_roundscale_ps(__mmask16(0xffff), _mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
    for (const float c : {1.0f / 720.0f, 1.0f / 120.0f, 1.0f / 24.0f, 1.0f / 6.0f, 0.5f, 1.0f, 1.0f})
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    return _mm512_maskz_scalef_ps(__mmask16(0xffff), p, n);
}

/// e^x - 1 for x <= 0: above -0.5 its Taylor polynomial to x^8 (remainder under 2e-8 relative), else
/// exp(x) - 1 (at most -0.39, no cancellation).
MIMIC_AVX512 inline __m512 expm1_nonpositive(__m512 x) {
    __m512 p = _mm512_set1_ps(1.0f / 40320.0f);
    for (const float c :
         {1.0f / 5040.0f, 1.0f / 720.0f, 1.0f / 120.0f, 1.0f / 24.0f, 1.0f / 6.0f, 0.5f, 1.0f})
        p = _mm512_fmadd_ps(p, x, _mm512_set1_ps(c));
    const __m512 small = _mm512_mul_ps(p, x);
    const __m512 large = _mm512_sub_ps(exp(x), _mm512_set1_ps(1.0f));
    return _mm512_mask_mov_ps(large, _mm512_cmp_ps_mask(x, _mm512_set1_ps(-0.5f), _CMP_GT_OQ), small);
}

/// 1 / (1 + e^-v) as stable_sigmoid: e = e^-|v|, then 1 / (1 + e) for v >= 0 and e / (1 + e) below.
MIMIC_AVX512 inline __m512 sigmoid(__m512 v) {
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512 e = exp(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_abs_ps(v)));
    const __m512 num = _mm512_mask_mov_ps(e, _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GE_OQ), one);
    return _mm512_div_ps(num, _mm512_add_ps(one, e));
}

/// Φ(v) = (1 + erf(v/√2)) / 2 with erfc(z) = t·(a1 + t·(a2 + ... a5 t^4))·e^(-z²), t = 1 / (1 + p·z), z =
/// |v|/√2 (Abramowitz & Stegun 7.1.26): 1 - erfc/2 for v >= 0, erfc/2 below.
MIMIC_AVX512 inline __m512 normal_cdf(__m512 v) {
    const __m512 z = _mm512_mul_ps(_mm512_abs_ps(v), _mm512_set1_ps(0.70710678118654752f));
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512 t = _mm512_div_ps(one, _mm512_fmadd_ps(z, _mm512_set1_ps(0.3275911f), one));
    __m512 p = _mm512_set1_ps(1.061405429f);
    for (const float c : {-1.453152027f, 1.421413741f, -0.284496736f, 0.254829592f})
        p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(c));
    const __m512 half_erfc = _mm512_mul_ps(
        _mm512_mul_ps(_mm512_mul_ps(p, t), exp(_mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), z), z))),
        _mm512_set1_ps(0.5f));
    return _mm512_mask_mov_ps(half_erfc, _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GE_OQ),
                              _mm512_sub_ps(one, half_erfc));
}

/// min(max(v, 0), 6) as clamp06.
MIMIC_AVX512 inline __m512 clamp06(__m512 v) {
    return clamp(v, 0.0f, 6.0f);
}

/// conv_activate(a, v, alpha) on 16 floats (see activate_rows for how closely).
MIMIC_AVX512 inline __m512 activate(__m512 v, ConvAct a, float alpha) {
    const __m512 zero = _mm512_setzero_ps();
    switch (a) {
    case ConvAct::none:
        return v;
    case ConvAct::relu:
        return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, zero, _CMP_GT_OQ), v);
    case ConvAct::relu6:
        return clamp06(v);
    case ConvAct::silu:
        return _mm512_mul_ps(v, sigmoid(v));
    case ConvAct::hardswish:
        return _mm512_div_ps(_mm512_mul_ps(v, clamp06(_mm512_add_ps(v, _mm512_set1_ps(3.0f)))),
                             _mm512_set1_ps(6.0f));
    case ConvAct::hardsigmoid:
        return _mm512_div_ps(clamp06(_mm512_add_ps(v, _mm512_set1_ps(3.0f))), _mm512_set1_ps(6.0f));
    case ConvAct::sigmoid:
        return sigmoid(v);
    case ConvAct::leakyrelu:
        return _mm512_mask_mov_ps(_mm512_mul_ps(_mm512_set1_ps(alpha), v),
                                  _mm512_cmp_ps_mask(v, zero, _CMP_GT_OQ), v);
    case ConvAct::elu:
        return _mm512_mask_mov_ps(
            _mm512_mul_ps(_mm512_set1_ps(alpha), expm1_nonpositive(clamp(v, -104.0f, 0.0f))),
            _mm512_cmp_ps_mask(v, zero, _CMP_GT_OQ), v);
    case ConvAct::gelu:
        return _mm512_mul_ps(v, normal_cdf(v));
    }
    return v;
}

} // namespace mimic::nn::impl::simd

#endif
