// The sigmoid activation layer: elementwise 1 / (1 + exp(-x)) evaluated without overflow, and its
// backward dy * y * (1 - y) computed from the forward output.
#pragma once

#include "mimic/nn/layer.hpp"

namespace mimic::nn {

/// y = sigmoid(x) elementwise over [B, n] (y may alias x).
void sigmoid_forward(const Matrix& x, const Matrix& y);
/// The same for inference (no backward follows): impl::activate_matrix where it runs (equal to
/// sigmoid_forward within float rounding), else sigmoid_forward.
void sigmoid_forward_inference(const Matrix& x, const Matrix& y);
/// dx = dy * sigmoid'(x), written from the forward output y (dx may alias dy).
void sigmoid_backward(const Matrix& y, const Matrix& dy, const Matrix& dx);

class Sigmoid : public Layer {
public:
    Sigmoid(int index, std::string token, Shape in) : Layer(index, std::move(token), in, in) {}
    const char* kind() const override { return "sigmoid"; }
    /// Marks this sigmoid as applied by the layer before it (inference only: a convolution's output pass,
    /// nn::plan_inference): it then aliases its input and the Model skips it.
    void set_fused() { fused_ = true; }
    bool is_alias() const override { return fused_; }
    void forward(const Matrix& x, const Matrix& y, const ForwardContext& ctx) override {
        if (ctx.inference)
            sigmoid_forward_inference(x, y);
        else
            sigmoid_forward(x, y);
    }
    void backward(const Matrix&, const Matrix& y, const Matrix& dy, const Matrix& dx) override {
        if (dx.extent(0) > 0) sigmoid_backward(y, dy, dx);
    }

private:
    bool fused_ = false;
};

} // namespace mimic::nn
