// Flatten: C x H x W -> (1, 1, C*H*W). Activations are already flat [B, C*H*W] rows, so the Model
// aliases its output (and gradient) to its input buffer: no kernel runs.
#pragma once

#include "mimic/nn/layer.hpp"

namespace mimic::nn {

class Flatten : public Layer {
public:
    Flatten(int index, std::string token, Shape in)
        : Layer(index, std::move(token), in, Shape{1, 1, int(in.size())}) {}
    const char* kind() const override { return "flatten"; }
    bool is_alias() const override { return true; }
    void forward(const Matrix& x, const Matrix& y, const ForwardContext&) override {
        if (x.data() != y.data()) Kokkos::deep_copy(y, x);
    }
    void backward(const Matrix&, const Matrix&, const Matrix& dy, const Matrix& dx) override {
        if (dx.extent(0) > 0 && dx.data() != dy.data()) Kokkos::deep_copy(dx, dy);
    }
};

} // namespace mimic::nn
