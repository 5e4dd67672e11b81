// 2-D convolution by im2col + sgemm over the whole minibatch (NCHW per sample, activations flat
// [B, C*H*W]); backward with two sgemms (dW = col^T·dY, dcol = dY·W^T) and a race-free col2im gather.
#pragma once

#include "mimic/nn/layer.hpp"

namespace mimic::nn {

/// Geometry of a convolution: input C x H x W, F filters of K x K, stride S, zero padding P.
struct ConvGeometry {
    int c = 1, h = 1, w = 1, f = 1, k = 1, s = 1, p = 0;
    int oh() const { return (h + 2 * p - k) / s + 1; }
    int ow() const { return (w + 2 * p - k) / s + 1; }
    std::int64_t pixels() const { return std::int64_t(oh()) * ow(); }   ///< output pixels per channel
    std::int64_t patch() const { return std::int64_t(c) * k * k; }      ///< GEMM inner dimension C*K*K
};

/// col[(b*P + oh*OW + ow), (c*K + kh)*K + kw] = x[b, c, oh*S - pad + kh, ow*S - pad + kw] (0 outside).
void im2col(const Matrix& x, const ConvGeometry& g, const Matrix& col);
/// dx[b, c, ih, iw] = sum of the dcol entries im2col copied x[b, c, ih, iw] into (overwrites dx).
void col2im(const Matrix& dcol, const ConvGeometry& g, const Matrix& dx);

/// y = conv(x, W) + b. W is [C*K*K, F] (parameter shape {C, K, K, F}); col [B*P, C*K*K] and
/// out [B*P, F] are workspaces; col keeps the patches for the backward pass.
void conv2d_forward(const Matrix& x, const UnmanagedMatrix& W, const UnmanagedVector& b, const ConvGeometry& g,
                    const Matrix& col, const Matrix& out, const Matrix& y);
/// Accumulates dW += col^T·dY and db += colsum(dY); writes dx when dx.extent(0) > 0 (col is then
/// overwritten by dcol). col must hold the patches of the matching forward pass; dyt is a [B*P, F] workspace.
void conv2d_backward(const Matrix& dy, const UnmanagedMatrix& W, const ConvGeometry& g, const Matrix& col,
                     const Matrix& dyt, const UnmanagedMatrix& dW, const UnmanagedVector& db, const Matrix& dx);

/// conv:FxK[sS][pP]. Parameters "layer<i>.conv.W" {C, K, K, F} (PyTorch's [F, C, K, K] permuted
/// (1, 2, 3, 0)) and "layer<i>.conv.b" {F}.
class Conv2D : public Layer {
public:
    Conv2D(int index, std::string token, Shape in, int filters, int kernel, int stride, int pad);

    const char* kind() const override { return "conv"; }
    const ConvGeometry& geometry() const { return g_; }
    std::vector<ParamDecl> param_decls() const override;
    void bind(const std::vector<UnmanagedVector>& params, const std::vector<UnmanagedVector>& grads) override;
    void init(std::uint64_t seed, bool he) override;
    void forward(const Matrix& x, const Matrix& y, const ForwardContext& ctx) override;
    void backward(const Matrix& x, const Matrix& y, const Matrix& dy, const Matrix& dx) override;
    double flops_per_sample() const override { return 2.0 * double(g_.pixels()) * g_.f * double(g_.patch()); }

private:
    ConvGeometry g_;
    UnmanagedMatrix W_, dW_;
    UnmanagedVector b_, db_;
    Vector col_buf_, out_buf_; ///< grow-only workspaces: patches, and [B*P, F] GEMM output / gradient
};

} // namespace mimic::nn
