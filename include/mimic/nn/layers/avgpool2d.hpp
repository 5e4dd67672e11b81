// Average pooling: square windows with stride and padding (the divisor counts the padded zeros or only
// the real cells, PyTorch's count_include_pad) and global average pooling (C x H x W -> C x 1 x 1).
#pragma once

#include "mimic/nn/layer.hpp"
#include "mimic/nn/layers/maxpool2d.hpp"

namespace mimic::nn {

/// y[b, c, oh, ow] = sum of the window's real cells / divisor, the divisor the window's cells inside the
/// padded input (count_pad: padded zeros count; k*k but where ceil mode's last window reaches past the
/// padding, PyTorch's rule) or the number of real cells. One thread per output row (b, c, oh).
void avgpool2d_forward(const Matrix& x, Shape in, PoolWindow win, bool count_pad, const Matrix& y);
/// dx[b, i] = sum over the outputs whose window holds i of dy / divisor (outputs in scan order). One
/// thread per input row (b, c, ih).
void avgpool2d_backward(const Matrix& dy, Shape in, PoolWindow win, bool count_pad, const Matrix& dx);
/// y[b, c] = mean over the H x W plane of channel c. One thread per (b, c).
void global_avgpool_forward(const Matrix& x, Shape in, const Matrix& y);
/// dx[b, c, h, w] = dy[b, c] / (H * W). One thread per input cell.
void global_avgpool_backward(const Matrix& dy, Shape in, const Matrix& dx);

class AvgPool2D : public Layer {
public:
    AvgPool2D(int index, std::string token, Shape in, PoolWindow win, bool count_pad)
        : Layer(index, std::move(token), in, Shape{in.c, win.out(in.h), win.out(in.w)}), win_(win),
          count_pad_(count_pad) {}
    const char* kind() const override { return "avgpool"; }
    void forward(const Matrix& x, const Matrix& y, const ForwardContext&) override {
        avgpool2d_forward(x, in_, win_, count_pad_, y);
    }
    void backward(const Matrix&, const Matrix&, const Matrix& dy, const Matrix& dx) override {
        if (dx.extent(0) > 0) avgpool2d_backward(dy, in_, win_, count_pad_, dx);
    }

private:
    PoolWindow win_;
    bool count_pad_;
};

class GlobalAvgPool : public Layer {
public:
    GlobalAvgPool(int index, std::string token, Shape in)
        : Layer(index, std::move(token), in, Shape{in.c, 1, 1}) {}
    const char* kind() const override { return "gap"; }
    void forward(const Matrix& x, const Matrix& y, const ForwardContext&) override {
        global_avgpool_forward(x, in_, y);
    }
    void backward(const Matrix&, const Matrix&, const Matrix& dy, const Matrix& dx) override {
        if (dx.extent(0) > 0) global_avgpool_backward(dy, in_, dx);
    }
};

} // namespace mimic::nn
