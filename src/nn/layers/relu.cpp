// The relu activation: forward and backward elementwise kernels over the flat [B, n] buffers.
#include "mimic/nn/layers/relu.hpp"

namespace mimic::nn {

void relu_forward(const Matrix& x, const Matrix& y) {
    const std::int64_t n = std::int64_t(x.size());
    MIMIC_REQUIRE(std::int64_t(y.size()) == n, "relu_forward: ", n, " inputs but ", y.size(), " outputs");
    Kokkos::parallel_for(
        "mimic::nn::relu::forward", RangePolicy(0, n), KOKKOS_LAMBDA(const std::int64_t i) {
            const float v = x.data()[i];
            y.data()[i] = v > 0.0f ? v : 0.0f;
        });
}

void relu_backward(const Matrix& y, const Matrix& dy, const Matrix& dx) {
    const std::int64_t n = std::int64_t(y.size());
    MIMIC_REQUIRE(std::int64_t(dy.size()) == n && std::int64_t(dx.size()) == n, "relu_backward: size mismatch");
    Kokkos::parallel_for(
        "mimic::nn::relu::backward", RangePolicy(0, n), KOKKOS_LAMBDA(const std::int64_t i) {
            dx.data()[i] = y.data()[i] > 0.0f ? dy.data()[i] : 0.0f;
        });
}

} // namespace mimic::nn
