// Conv2D kernels: im2col per output pixel row, sgemm, an NHWC->NCHW permute fused with the bias, and the
// backward permute, two sgemms and a col2im gather in which each thread owns one input row.
#include "mimic/nn/layers/conv2d.hpp"

namespace mimic::nn {

void im2col(const Matrix& x, const ConvGeometry& g, const Matrix& col) {
    const std::int64_t B = x.extent(0), P = g.pixels(), KK = g.patch();
    MIMIC_REQUIRE(std::int64_t(x.extent(1)) == std::int64_t(g.c) * g.h * g.w, "im2col: input width ", x.extent(1),
                  " is not ", g.c, "x", g.h, "x", g.w);
    MIMIC_REQUIRE(std::int64_t(col.extent(0)) == B * P && std::int64_t(col.extent(1)) == KK, "im2col: col shape");
    const int C = g.c, H = g.h, W = g.w, K = g.k, S = g.s, pad = g.p, OW = g.ow();
    Kokkos::parallel_for(
        "mimic::nn::conv::im2col", RangePolicy(0, B * P), KOKKOS_LAMBDA(const std::int64_t row) {
            const std::int64_t b = row / P, pix = row % P;
            const int oh = int(pix / OW), ow = int(pix % OW);
            const float* xs = x.data() + b * C * H * W;
            float* out = col.data() + row * KK;
            for (int c = 0; c < C; ++c) {
                for (int kh = 0; kh < K; ++kh) {
                    const int ih = oh * S - pad + kh;
                    const bool row_ok = ih >= 0 && ih < H;
                    for (int kw = 0; kw < K; ++kw) {
                        const int iw = ow * S - pad + kw;
                        *out++ = (row_ok && iw >= 0 && iw < W) ? xs[(c * H + ih) * W + iw] : 0.0f;
                    }
                }
            }
        });
}

void col2im(const Matrix& dcol, const ConvGeometry& g, const Matrix& dx) {
    const std::int64_t B = dx.extent(0), P = g.pixels(), KK = g.patch();
    MIMIC_REQUIRE(std::int64_t(dcol.extent(0)) == B * P && std::int64_t(dcol.extent(1)) == KK, "col2im: dcol shape");
    const int C = g.c, H = g.h, W = g.w, K = g.k, S = g.s, pad = g.p, OH = g.oh(), OW = g.ow();
    Kokkos::parallel_for(
        "mimic::nn::conv::col2im", RangePolicy(0, B * C * H), KOKKOS_LAMBDA(const std::int64_t r) {
            const std::int64_t b = r / (C * H);
            const int c = int((r / H) % C), ih = int(r % H);
            float* out = dx.data() + r * W;
            for (int iw = 0; iw < W; ++iw) out[iw] = 0.0f;
            for (int kh = 0; kh < K; ++kh) {
                const int num = ih + pad - kh;
                if (num < 0 || num % S != 0) continue;
                const int oh = num / S;
                if (oh >= OH) continue;
                const float* src = dcol.data() + (b * P + std::int64_t(oh) * OW) * KK + (c * K + kh) * K;
                for (int ow = 0; ow < OW; ++ow) {
                    const float* s = src + std::int64_t(ow) * KK;
                    const int iw0 = ow * S - pad;
                    for (int kw = 0; kw < K; ++kw) {
                        const int iw = iw0 + kw;
                        if (iw >= 0 && iw < W) out[iw] += s[kw];
                    }
                }
            }
        });
}

void conv2d_forward(const Matrix& x, const UnmanagedMatrix& W, const UnmanagedVector& b, const ConvGeometry& g,
                    const Matrix& col, const Matrix& out, const Matrix& y) {
    Kokkos::Profiling::pushRegion("mimic::nn::conv::forward");
    const std::int64_t B = x.extent(0), P = g.pixels();
    const int F = g.f;
    MIMIC_REQUIRE(std::int64_t(y.extent(1)) == F * P && y.extent(0) == x.extent(0), "conv2d_forward: output shape");
    im2col(x, g, col);
    gemm("N", "N", 1.0f, col, W, 0.0f, out);
    // [B, P, F] (pixel-major) -> [B, F, P] (NCHW) with the bias; each thread writes one channel plane.
    Kokkos::parallel_for(
        "mimic::nn::conv::nchw_bias", RangePolicy(0, B * F), KOKKOS_LAMBDA(const std::int64_t r) {
            const std::int64_t bi = r / F;
            const int f = int(r % F);
            const float bias = b(f);
            const float* src = out.data() + bi * P * F + f;
            float* dst = y.data() + r * P;
            for (std::int64_t p = 0; p < P; ++p) dst[p] = src[p * F] + bias;
        });
    Kokkos::Profiling::popRegion();
}

void conv2d_backward(const Matrix& dy, const UnmanagedMatrix& W, const ConvGeometry& g, const Matrix& col,
                     const Matrix& dyt, const UnmanagedMatrix& dW, const UnmanagedVector& db, const Matrix& dx) {
    Kokkos::Profiling::pushRegion("mimic::nn::conv::backward");
    const std::int64_t B = dy.extent(0), P = g.pixels();
    const int F = g.f;
    Kokkos::parallel_for(
        "mimic::nn::conv::nhwc_grad", RangePolicy(0, B * F), KOKKOS_LAMBDA(const std::int64_t r) {
            const std::int64_t bi = r / F;
            const int f = int(r % F);
            const float* src = dy.data() + r * P;
            float* dst = dyt.data() + bi * P * F + f;
            for (std::int64_t p = 0; p < P; ++p) dst[p * F] = src[p];
        });
    gemm("T", "N", 1.0f, col, dyt, 1.0f, dW);
    accumulate_column_sums(dyt, db);
    if (dx.extent(0) > 0) {
        gemm("N", "T", 1.0f, dyt, W, 0.0f, col);
        col2im(col, g, dx);
    }
    Kokkos::Profiling::popRegion();
}

Conv2D::Conv2D(int index, std::string token, Shape in, int filters, int kernel, int stride, int pad)
    : Layer(index, std::move(token), in, in) {
    g_ = ConvGeometry{in.c, in.h, in.w, filters, kernel, stride, pad};
    out_ = Shape{filters, g_.oh(), g_.ow()};
}

std::vector<ParamDecl> Conv2D::param_decls() const {
    return {{"W", {g_.c, g_.k, g_.k, g_.f}}, {"b", {g_.f}}};
}

void Conv2D::bind(const std::vector<UnmanagedVector>& params, const std::vector<UnmanagedVector>& grads) {
    W_ = UnmanagedMatrix(params[0].data(), g_.patch(), g_.f);
    dW_ = UnmanagedMatrix(grads[0].data(), g_.patch(), g_.f);
    b_ = params[1];
    db_ = grads[1];
}

void Conv2D::init(std::uint64_t seed, bool he) {
    init_weights(UnmanagedVector(W_.data(), W_.size()), g_.patch(), std::int64_t(g_.f) * g_.k * g_.k, he, seed);
    Kokkos::deep_copy(b_, 0.0f);
}

void Conv2D::forward(const Matrix& x, const Matrix& y, const ForwardContext&) {
    const std::int64_t rows = std::int64_t(x.extent(0)) * g_.pixels();
    const Matrix col = workspace(col_buf_, "mimic::nn::conv::col", rows, g_.patch());
    const Matrix out = workspace(out_buf_, "mimic::nn::conv::out", rows, g_.f);
    conv2d_forward(x, W_, b_, g_, col, out, y);
}

void Conv2D::backward(const Matrix& x, const Matrix&, const Matrix& dy, const Matrix& dx) {
    const std::int64_t rows = std::int64_t(x.extent(0)) * g_.pixels();
    MIMIC_REQUIRE(std::int64_t(col_buf_.extent(0)) >= rows * g_.patch(), token_, ": backward before forward");
    const Matrix col = workspace(col_buf_, "mimic::nn::conv::col", rows, g_.patch());
    const Matrix dyt = workspace(out_buf_, "mimic::nn::conv::out", rows, g_.f);
    conv2d_backward(dy, W_, g_, col, dyt, dW_, db_, dx);
}

} // namespace mimic::nn
