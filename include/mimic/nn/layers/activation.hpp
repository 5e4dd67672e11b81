// The activations beyond relu/sigmoid/tanh, with PyTorch's definitions and derivatives: ReLU6, SiLU,
// HardSwish, HardSigmoid, LeakyReLU, ELU and exact GELU, as elementwise kernels over flat [B, n] activations.
#pragma once

#include "mimic/nn/layer.hpp"

namespace mimic::nn {

/// Which activation an ActivationLayer applies.
/// LeakyReLU: x > 0 ? x : alpha·x; ELU: x > 0 ? x : alpha·(exp(x) - 1); GELU: x·Φ(x) = x/2·(1 + erf(x/√2)).
enum class Activation { ReLU6, SiLU, HardSwish, HardSigmoid, LeakyReLU, ELU, GELU };

/// y = f(x) elementwise over [B, n] (y may alias x); alpha: LeakyReLU's slope and ELU's scale.
void activation_forward(Activation a, const Matrix& x, const Matrix& y, float alpha = 0.0f);
/// dx = dy * f'(x), from the forward input x (dx may alias dy). At the kinks f' takes PyTorch's side:
/// relu6 and hardsigmoid 0 at both ends, hardswish x/3 + 1/2 at 3 and 0 at -3, leakyrelu and elu alpha
/// at 0.
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
    /// residual block's output pass): it then aliases its input and the Model skips it.
    void set_fused() { fused_ = true; }
    bool is_alias() const override { return fused_; }
    void forward(const Matrix& x, const Matrix& y, const ForwardContext&) override {
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
