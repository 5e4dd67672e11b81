// The tanh activation layer: elementwise tanh(x), and its backward dy * (1 - y^2) computed from the
// forward output.
#pragma once

#include "mimic/nn/layer.hpp"

namespace mimic::nn {

/// y = tanh(x) elementwise over [B, n] (y may alias x).
void tanh_forward(const Matrix& x, const Matrix& y);
/// dx = dy * tanh'(x), written from the forward output y (dx may alias dy).
void tanh_backward(const Matrix& y, const Matrix& dy, const Matrix& dx);

class Tanh : public Layer {
public:
    Tanh(int index, std::string token, Shape in) : Layer(index, std::move(token), in, in) {}
    const char* kind() const override { return "tanh"; }
    void forward(const Matrix& x, const Matrix& y, const ForwardContext&) override { tanh_forward(x, y); }
    void backward(const Matrix&, const Matrix& y, const Matrix& dy, const Matrix& dx) override {
        if (dx.extent(0) > 0) tanh_backward(y, dy, dx);
    }
};

} // namespace mimic::nn
