// The sigmoid activation: forward and backward elementwise kernels over the flat [B, n] buffers (the
// inference forward in AVX-512 registers where the host has them); the forward pass never exponentiates a
// positive number, so it cannot overflow.
#include "mimic/nn/layers/sigmoid.hpp"

#include "mimic/nn/layers/conv2d.hpp"
#include "mimic/nn/layers/impl/activation_simd.hpp"

namespace mimic::nn {

void sigmoid_forward(const Matrix& x, const Matrix& y) {
    const std::int64_t n = std::int64_t(x.size());
    MIMIC_REQUIRE(std::int64_t(y.size()) == n, "sigmoid_forward: ", n, " inputs but ", y.size(), " outputs");
    const float* xp = x.data();
    float* yp = y.data();
    Kokkos::parallel_for(
        "mimic::nn::sigmoid::forward", RangePolicy(0, n), KOKKOS_LAMBDA(const std::int64_t i) {
            const float v = xp[i];
            if (v >= 0.0f) {
                yp[i] = 1.0f / (1.0f + kmath::exp(-v));
            } else {
                const float e = kmath::exp(v);
                yp[i] = e / (1.0f + e);
            }
        });
}

void sigmoid_forward_inference(const Matrix& x, const Matrix& y) {
    if constexpr (impl::DirectConvAvailable<ExecSpace, MemSpace>::value)
        if (impl::simd_activations_available()) {
            impl::activate_matrix(ConvAct::sigmoid, 0.0f, x, y);
            return;
        }
    sigmoid_forward(x, y);
}

void sigmoid_backward(const Matrix& y, const Matrix& dy, const Matrix& dx) {
    const std::int64_t n = std::int64_t(y.size());
    MIMIC_REQUIRE(std::int64_t(dy.size()) == n && std::int64_t(dx.size()) == n,
                  "sigmoid_backward: size mismatch");
    const float* yp = y.data();
    const float* dyp = dy.data();
    float* dxp = dx.data();
    Kokkos::parallel_for(
        "mimic::nn::sigmoid::backward", RangePolicy(0, n), KOKKOS_LAMBDA(const std::int64_t i) {
            const float s = yp[i];
            dxp[i] = dyp[i] * s * (1.0f - s);
        });
}

} // namespace mimic::nn
