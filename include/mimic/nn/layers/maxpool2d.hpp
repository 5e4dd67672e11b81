// Max pooling with a K x K window, stride S and padding P (pool:K is S = K, P = 0, output floor(H/K) x
// floor(W/K)); the forward pass stores the argmax of every window so that backward routes each gradient.
#pragma once

#include "mimic/nn/layer.hpp"

namespace mimic::nn {

using IntMatrix = Kokkos::View<int**, Kokkos::LayoutRight, MemSpace>;

/// A square pooling window: size k, stride s, zero padding p on every side; floor mode: output
/// (H + 2p - k) / s + 1; ceil mode: ceil((H + 2p - k) / s) + 1, less one when the last
/// window would start past the input and its left padding (PyTorch's rule), windows clipped at the border.
/// Padded cells are never part of a max; for averages see avgpool2d.hpp.
struct PoolWindow {
    int k = 1, s = 1, p = 0;
    bool ceil = false;
    int out(int n) const {
        if (!ceil) return (n + 2 * p - k) / s + 1;
        const int o = (n + 2 * p - k + s - 1) / s + 1;
        return (o - 1) * s >= n + p ? o - 1 : o;
    }
    /// pool:K's window (stride K, no padding, floor), which has the non-overlapping fast kernels.
    bool tiles() const { return s == k && p == 0 && !ceil; }
};

/// y[b, c, oh, ow] = max of the window; arg[b, c*OH*OW + ...] = index of the max within the sample
/// (c*H*W + ih*W + iw; the first maximum wins on ties).
void maxpool2d_forward(const Matrix& x, Shape in, int k, const IntMatrix& arg, const Matrix& y);
/// dx = 0 except dx[b, arg[b, o]] = dy[b, o] (windows do not overlap, so no two outputs share an input).
void maxpool2d_backward(const Matrix& dy, const IntMatrix& arg, Shape in, int k, const Matrix& dx);
/// Any window (overlapping, padded): one thread per output row (b, c, oh); arg as above (the first maximum
/// among the window's real cells in scan order wins, as in PyTorch).
void maxpool2d_forward_window(const Matrix& x, Shape in, PoolWindow win, const IntMatrix& arg,
                              const Matrix& y);
/// maxpool2d_forward_window's y without the argmax (labelling: no backward follows).
void maxpool2d_forward_window_max(const Matrix& x, Shape in, PoolWindow win, const Matrix& y);
/// Any window: one thread per input row (b, c, ih), adding dy of the outputs whose argmax lies in the row
/// (outputs in scan order: a fixed order, no atomics).
void maxpool2d_backward_window(const Matrix& dy, const IntMatrix& arg, Shape in, PoolWindow win,
                               const Matrix& dx);

class MaxPool2D : public Layer {
public:
    MaxPool2D(int index, std::string token, Shape in, PoolWindow win)
        : Layer(index, std::move(token), in, Shape{in.c, win.out(in.h), win.out(in.w)}), win_(win) {}
    const char* kind() const override { return "pool"; }
    void forward(const Matrix& x, const Matrix& y, const ForwardContext& ctx) override;
    void backward(const Matrix& x, const Matrix& y, const Matrix& dy, const Matrix& dx) override;

private:
    PoolWindow win_;
    IntMatrix arg_; ///< grow-only argmax store [capacity, C*OH*OW]
};

} // namespace mimic::nn
