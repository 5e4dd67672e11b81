// The ReLU activation layer: elementwise max(0, x), forward and backward kernels over flat [B, n]
// activations; backward passes dy where the output is positive.
#pragma once

#include "mimic/nn/layer.hpp"

namespace mimic::nn {

/// y = relu(x) elementwise over [B, n] (y may alias x).
void relu_forward(const Matrix& x, const Matrix& y);
/// dx = dy * relu'(x), written from the forward output y (dx may alias dy).
void relu_backward(const Matrix& y, const Matrix& dy, const Matrix& dx);

class ReLU : public Layer {
public:
    ReLU(int index, std::string token, Shape in) : Layer(index, std::move(token), in, in) {}
    const char* kind() const override { return "relu"; }
    /// Marks this ReLU as applied by the layer before it (a convolution, which rectifies its output and
    /// gradient): it then aliases its input and the Model skips it.
    void set_fused() { fused_ = true; }
    bool is_alias() const override { return fused_; }
    void forward(const Matrix& x, const Matrix& y, const ForwardContext&) override { relu_forward(x, y); }
    void backward(const Matrix&, const Matrix& y, const Matrix& dy, const Matrix& dx) override {
        if (dx.extent(0) > 0) relu_backward(y, dy, dx);
    }

private:
    bool fused_ = false;
};

} // namespace mimic::nn
