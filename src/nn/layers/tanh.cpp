// The tanh activation: forward and backward elementwise kernels over the flat [B, n] buffers, the
// backward one from the forward output.
#include "mimic/nn/layers/tanh.hpp"

namespace mimic::nn {

void tanh_forward(const Matrix& x, const Matrix& y) {
    const std::int64_t n = std::int64_t(x.size());
    MIMIC_REQUIRE(std::int64_t(y.size()) == n, "tanh_forward: ", n, " inputs but ", y.size(), " outputs");
    const float* xp = x.data();
    float* yp = y.data();
    Kokkos::parallel_for(
        "mimic::nn::tanh::forward", RangePolicy(0, n), KOKKOS_LAMBDA(const std::int64_t i) {
            const float v = xp[i];
            yp[i] = kmath::tanh(v);
        });
}

void tanh_backward(const Matrix& y, const Matrix& dy, const Matrix& dx) {
    const std::int64_t n = std::int64_t(y.size());
    MIMIC_REQUIRE(std::int64_t(dy.size()) == n && std::int64_t(dx.size()) == n,
                  "tanh_backward: size mismatch");
    const float* yp = y.data();
    const float* dyp = dy.data();
    float* dxp = dx.data();
    Kokkos::parallel_for(
        "mimic::nn::tanh::backward", RangePolicy(0, n), KOKKOS_LAMBDA(const std::int64_t i) {
            const float t = yp[i];
            dxp[i] = dyp[i] * (1.0f - t * t);
        });
}

} // namespace mimic::nn
