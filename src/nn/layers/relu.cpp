// The ReLU activation: forward and backward elementwise kernels over the flat [B, n] buffers, written
// as selects on raw pointers so that the host compiler vectorises them.
#include "mimic/nn/layers/relu.hpp"

namespace mimic::nn {

void relu_forward(const Matrix& x, const Matrix& y) {
    const std::int64_t n = std::int64_t(x.size());
    MIMIC_REQUIRE(std::int64_t(y.size()) == n, "relu_forward: ", n, " inputs but ", y.size(), " outputs");
    const float* xp = x.data();
    float* yp = y.data();
    Kokkos::parallel_for(
        "mimic::nn::relu::forward", RangePolicy(0, n), KOKKOS_LAMBDA(const std::int64_t i) {
            const float v = xp[i];
            yp[i] = v > 0.0f ? v : 0.0f;
        });
}

void relu_backward(const Matrix& y, const Matrix& dy, const Matrix& dx) {
    const std::int64_t n = std::int64_t(y.size());
    MIMIC_REQUIRE(std::int64_t(dy.size()) == n && std::int64_t(dx.size()) == n,
                  "relu_backward: size mismatch");
    const float* yp = y.data();
    const float* dyp = dy.data();
    float* dxp = dx.data();
    Kokkos::parallel_for(
        "mimic::nn::relu::backward", RangePolicy(0, n), KOKKOS_LAMBDA(const std::int64_t i) {
            const float g = dyp[i]; // loaded unconditionally: a select, not a branch
            dxp[i] = yp[i] > 0.0f ? g : 0.0f;
        });
}

} // namespace mimic::nn
