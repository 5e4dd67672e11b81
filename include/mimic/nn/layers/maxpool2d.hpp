// Max pooling with a K x K window and stride K (output floor(H/K) x floor(W/K)); the forward pass stores
// the argmax of every window so that backward routes each gradient to exactly one input.
#pragma once

#include "mimic/nn/layer.hpp"

namespace mimic::nn {

using IntMatrix = Kokkos::View<int**, Kokkos::LayoutRight, MemSpace>;

/// y[b, c, oh, ow] = max of the window; arg[b, c*OH*OW + ...] = index of the max within the sample
/// (c*H*W + ih*W + iw; the first maximum wins on ties).
void maxpool2d_forward(const Matrix& x, Shape in, int k, const IntMatrix& arg, const Matrix& y);
/// dx = 0 except dx[b, arg[b, o]] = dy[b, o] (windows do not overlap, so no two outputs share an input).
void maxpool2d_backward(const Matrix& dy, const IntMatrix& arg, Shape in, int k, const Matrix& dx);

class MaxPool2D : public Layer {
public:
    MaxPool2D(int index, std::string token, Shape in, int k)
        : Layer(index, std::move(token), in, Shape{in.c, in.h / k, in.w / k}), k_(k) {}
    const char* kind() const override { return "pool"; }
    void forward(const Matrix& x, const Matrix& y, const ForwardContext& ctx) override;
    void backward(const Matrix& x, const Matrix& y, const Matrix& dy, const Matrix& dx) override;

private:
    int k_;
    IntMatrix arg_; ///< grow-only argmax store [capacity, C*OH*OW]
};

} // namespace mimic::nn
