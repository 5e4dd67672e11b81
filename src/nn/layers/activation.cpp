// ReLU6, SiLU, HardSwish, HardSigmoid, LeakyReLU, ELU, GELU, Softplus: one flat elementwise kernel per
// activation and direction (the sigmoid of SiLU and ELU's exp never exponentiate a positive number), and the
// inference forward in AVX-512 registers where the host has them.
#include "mimic/nn/layers/activation.hpp"

#include "mimic/nn/layers/conv2d.hpp"
#include "mimic/nn/layers/impl/activation_simd.hpp"

namespace mimic::nn {

const char* ActivationLayer::kind() const {
    switch (act_) {
    case Activation::ReLU6:
        return "relu6";
    case Activation::SiLU:
        return "silu";
    case Activation::HardSwish:
        return "hardswish";
    case Activation::HardSigmoid:
        return "hardsigmoid";
    case Activation::LeakyReLU:
        return "leakyrelu";
    case Activation::ELU:
        return "elu";
    case Activation::GELU:
        return "gelu";
    case Activation::Softplus:
        return "softplus";
    }
    return "?";
}

void activation_forward(Activation a, const Matrix& x, const Matrix& y, float alpha) {
    const std::int64_t n = std::int64_t(x.size());
    MIMIC_REQUIRE(std::int64_t(y.size()) == n, "activation_forward: ", n, " inputs but ", y.size(),
                  " outputs");
    const float* xp = x.data();
    float* yp = y.data();
    const RangePolicy all(0, n);
    switch (a) {
    case Activation::ReLU6:
        Kokkos::parallel_for(
            "mimic::nn::relu6::forward", all,
            KOKKOS_LAMBDA(const std::int64_t i) { yp[i] = clamp06(xp[i]); });
        break;
    case Activation::SiLU:
        Kokkos::parallel_for(
            "mimic::nn::silu::forward", all,
            KOKKOS_LAMBDA(const std::int64_t i) { yp[i] = xp[i] * stable_sigmoid(xp[i]); });
        break;
    case Activation::HardSwish:
        Kokkos::parallel_for(
            "mimic::nn::hardswish::forward", all,
            KOKKOS_LAMBDA(const std::int64_t i) { yp[i] = xp[i] * clamp06(xp[i] + 3.0f) / 6.0f; });
        break;
    case Activation::HardSigmoid:
        Kokkos::parallel_for(
            "mimic::nn::hardsigmoid::forward", all,
            KOKKOS_LAMBDA(const std::int64_t i) { yp[i] = clamp06(xp[i] + 3.0f) / 6.0f; });
        break;
    case Activation::LeakyReLU:
        Kokkos::parallel_for(
            "mimic::nn::leakyrelu::forward", all,
            KOKKOS_LAMBDA(const std::int64_t i) { yp[i] = xp[i] > 0.0f ? xp[i] : alpha * xp[i]; });
        break;
    case Activation::ELU:
        Kokkos::parallel_for(
            "mimic::nn::elu::forward", all, KOKKOS_LAMBDA(const std::int64_t i) {
                const float v = xp[i];
                yp[i] = v > 0.0f ? v : alpha * kmath::expm1(v);
            });
        break;
    case Activation::GELU:
        Kokkos::parallel_for(
            "mimic::nn::gelu::forward", all,
            KOKKOS_LAMBDA(const std::int64_t i) { yp[i] = xp[i] * normal_cdf(xp[i]); });
        break;
    case Activation::Softplus:
        Kokkos::parallel_for(
            "mimic::nn::softplus::forward", all,
            KOKKOS_LAMBDA(const std::int64_t i) { yp[i] = softplus(xp[i]); });
        break;
    }
}

void activation_forward_inference(Activation a, const Matrix& x, const Matrix& y, float alpha) {
    if constexpr (impl::DirectConvAvailable<ExecSpace, MemSpace>::value)
        if (impl::simd_activations_available() && a != Activation::Softplus) {
            impl::activate_matrix(conv_act_of(a), alpha, x, y);
            return;
        }
    activation_forward(a, x, y, alpha);
}

void activation_backward(Activation a, const Matrix& x, const Matrix& dy, const Matrix& dx, float alpha) {
    const std::int64_t n = std::int64_t(x.size());
    MIMIC_REQUIRE(std::int64_t(dy.size()) == n && std::int64_t(dx.size()) == n,
                  "activation_backward: size mismatch");
    const float* xp = x.data();
    const float* dyp = dy.data();
    float* dxp = dx.data();
    const RangePolicy all(0, n);
    switch (a) {
    case Activation::ReLU6:
        Kokkos::parallel_for(
            "mimic::nn::relu6::backward", all, KOKKOS_LAMBDA(const std::int64_t i) {
                const float v = xp[i], g = dyp[i];
                dxp[i] = v > 0.0f && v < 6.0f ? g : 0.0f;
            });
        break;
    case Activation::SiLU:
        Kokkos::parallel_for(
            "mimic::nn::silu::backward", all, KOKKOS_LAMBDA(const std::int64_t i) {
                const float v = xp[i], s = stable_sigmoid(v);
                dxp[i] = dyp[i] * s * (1.0f + v * (1.0f - s));
            });
        break;
    case Activation::HardSwish:
        Kokkos::parallel_for(
            "mimic::nn::hardswish::backward", all, KOKKOS_LAMBDA(const std::int64_t i) {
                const float v = xp[i], g = dyp[i];
                dxp[i] = v < -3.0f ? 0.0f : v <= 3.0f ? g * (v / 3.0f + 0.5f) : g;
            });
        break;
    case Activation::HardSigmoid:
        Kokkos::parallel_for(
            "mimic::nn::hardsigmoid::backward", all, KOKKOS_LAMBDA(const std::int64_t i) {
                const float v = xp[i], g = dyp[i];
                dxp[i] = v > -3.0f && v < 3.0f ? g / 6.0f : 0.0f;
            });
        break;
    case Activation::LeakyReLU:
        Kokkos::parallel_for(
            "mimic::nn::leakyrelu::backward", all, KOKKOS_LAMBDA(const std::int64_t i) {
                const float g = dyp[i];
                dxp[i] = xp[i] > 0.0f ? g : alpha * g;
            });
        break;
    case Activation::ELU:
        Kokkos::parallel_for(
            "mimic::nn::elu::backward", all, KOKKOS_LAMBDA(const std::int64_t i) {
                const float v = xp[i], g = dyp[i];
                dxp[i] = v > 0.0f ? g : g * alpha * kmath::exp(v);
            });
        break;
    case Activation::GELU:
        Kokkos::parallel_for(
            "mimic::nn::gelu::backward", all, KOKKOS_LAMBDA(const std::int64_t i) {
                // d/dx x·Φ(x) = Φ(x) + x·φ(x), φ(x) = exp(-x²/2)/√(2π).
                const float v = xp[i];
                const float pdf = 0.39894228040143268f * kmath::exp(-0.5f * v * v);
                dxp[i] = dyp[i] * (normal_cdf(v) + v * pdf);
            });
        break;
    case Activation::Softplus:
        Kokkos::parallel_for(
            "mimic::nn::softplus::backward", all, KOKKOS_LAMBDA(const std::int64_t i) {
                const float v = xp[i];
                dxp[i] = v > 20.0f ? dyp[i] : dyp[i] * stable_sigmoid(v);
            });
        break;
    }
}

} // namespace mimic::nn
