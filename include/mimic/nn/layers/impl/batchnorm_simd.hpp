// The batch normalisation kernels of the host in AVX-512 registers: per-plane sums in the scalar kernels'
// order (the same bits, several planes at a time), the normalisation and the input gradient 16 at a time.
#pragma once

#include "mimic/nn/layers/impl/conv2d_direct.hpp"

#include <cstdint>

namespace mimic::nn::impl {

/// Whether the kernels below run here: compiled in (MIMIC_CONV_DIRECT) and this CPU has AVX-512F.
bool simd_batchnorm_available();

/// The per-channel values of one bn pass (host pointers, C floats each; null where a pass does not use them)
/// and the shape: x is [B, C * HW], a plane r is x + r * HW of channel r % C.
struct BnPlanes {
    int C = 0, HW = 0;
    const float *mean = nullptr, *invstd = nullptr, *scale = nullptr, *shift = nullptr;
    const float *a = nullptr, *b = nullptr;
};

// Each runs over planes [0, n) in chunks over the host execution space's threads (the results do not
// depend on the split); only where simd_batchnorm_available() and DirectConvAvailable hold (host memory).

/// planes[2 r], planes[2 r + 1] = the sums of x and x^2 over plane r: batchnorm_sums' four accumulators
/// (lane i % 4, the tail in lane 0) in double, the same order and so the same bits.
void bn_plane_sums(const float* x, const BnPlanes& p, std::int64_t n, double* planes);
/// planes[2 r], planes[2 r + 1] = the sums of g and g * (x - mean) * invstd over plane r, g = dy or (y not
/// null) y > 0 ? dy : 0: batchnorm_grad_sums' order and bits.
void bn_grad_plane_sums(const float* x, const float* dy, const float* y, const BnPlanes& p, std::int64_t n,
                        double* planes);
/// out = (x - mean) * scale + shift, rectified when `relu`: batchnorm_apply's bits.
void bn_apply_planes(const float* x, const BnPlanes& p, bool relu, std::int64_t n, float* out);
/// dx = scale * (g - a - (x - mean) * invstd * b), g as bn_grad_plane_sums: batchnorm_dx's bits.
void bn_dx_planes(const float* x, const float* dy, const float* y, const BnPlanes& p, std::int64_t n,
                  float* dx);

} // namespace mimic::nn::impl
