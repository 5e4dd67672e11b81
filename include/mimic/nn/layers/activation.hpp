// The activations beyond relu/sigmoid/tanh, with PyTorch's definitions and derivatives: ReLU6, SiLU,
// HardSwish, HardSigmoid, LeakyReLU, ELU, exact GELU and Softplus, as elementwise kernels over flat [B, n].
#pragma once

#include "mimic/nn/layer.hpp"

namespace mimic::nn {

/// Which activation an ActivationLayer applies.
/// LeakyReLU: x > 0 ? x : alpha·x; ELU: x > 0 ? x : alpha·(exp(x) - 1); GELU: x·Φ(x) = x/2·(1 + erf(x/√2));
/// Softplus: log(1 + exp(x)), x above 20 (PyTorch's beta 1 and threshold 20).
enum class Activation { ReLU6, SiLU, HardSwish, HardSigmoid, LeakyReLU, ELU, GELU, Softplus };

// The scalar definitions, shared by the activation kernels and the convolutions' output passes (which
// apply them on any execution space: KOKKOS_INLINE_FUNCTION, Kokkos' math).
/// min(max(v, 0), 6).
KOKKOS_INLINE_FUNCTION float clamp06(float v) {
    return v < 0.0f ? 0.0f : v > 6.0f ? 6.0f : v;
}
/// 1 / (1 + exp(-v)) without exponentiating a positive number.
KOKKOS_INLINE_FUNCTION float stable_sigmoid(float v) {
    if (v >= 0.0f) return 1.0f / (1.0f + kmath::exp(-v));
    const float e = kmath::exp(v);
    return e / (1.0f + e);
}
/// log(1 + exp(v)) as PyTorch's Softplus computes it: v itself above its threshold 20, log1p elsewhere.
KOKKOS_INLINE_FUNCTION float softplus(float v) {
    return v > 20.0f ? v : kmath::log1p(kmath::exp(v));
}
/// Φ(v), the standard normal distribution function, as erf gives it.
KOKKOS_INLINE_FUNCTION float normal_cdf(float v) {
    return 0.5f * (1.0f + kmath::erf(v * 0.70710678118654752f));
}

/// y = f(x) elementwise over [B, n] (y may alias x); alpha: LeakyReLU's slope and ELU's scale.
void activation_forward(Activation a, const Matrix& x, const Matrix& y, float alpha = 0.0f);
/// The same for inference (no backward follows): on hosts with AVX-512 (impl/activation_simd.hpp) in
/// registers of 16 with a polynomial exp and erf, equal to activation_forward within float rounding (the
/// exp-based ones to a few units in the last place, gelu to 1.5e-7 absolute in Φ); elsewhere, and for
/// softplus, activation_forward itself.
void activation_forward_inference(Activation a, const Matrix& x, const Matrix& y, float alpha = 0.0f);
/// dx = dy * f'(x), from the forward input x (dx may alias dy). At the kinks f' takes PyTorch's side:
/// relu6 and hardsigmoid 0 at both ends, hardswish x/3 + 1/2 at 3 and 0 at -3, leakyrelu and elu alpha
/// at 0; softplus sigmoid(x), 1 above 20.
void activation_backward(Activation a, const Matrix& x, const Matrix& dy, const Matrix& dx,
                         float alpha = 0.0f);

class ActivationLayer : public Layer {
public:
    ActivationLayer(int index, std::string token, Shape in, Activation a, float alpha = 0.0f)
        : Layer(index, std::move(token), in, in), act_(a), alpha_(alpha) {}
    const char* kind() const override;
    Activation activation() const { return act_; }
    /// LeakyReLU's negative slope, ELU's alpha (0 for the others).
    float alpha() const { return alpha_; }
    /// Marks this activation as applied by the layer before it (inference only: a convolution's or a
    /// residual block's output pass, nn::plan_inference): it then aliases its input and the Model skips it.
    void set_fused() { fused_ = true; }
    bool is_alias() const override { return fused_; }
    void forward(const Matrix& x, const Matrix& y, const ForwardContext& ctx) override {
        if (ctx.inference)
            activation_forward_inference(act_, x, y, alpha_);
        else
            activation_forward(act_, x, y, alpha_);
    }
    void backward(const Matrix& x, const Matrix&, const Matrix& dy, const Matrix& dx) override {
        if (dx.extent(0) > 0) activation_backward(act_, x, dy, dx, alpha_);
    }

private:
    Activation act_;
    float alpha_;
    bool fused_ = false;
};

} // namespace mimic::nn
