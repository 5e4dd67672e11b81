// MaxPool2D kernels: for pool:K, one thread per output row (b, c, oh) in both passes (a vectorisable 2x2
// path and a general window); for overlapping or padded windows, one thread per output row (forward) and
// per input row (backward).
#include "mimic/nn/layers/maxpool2d.hpp"

namespace mimic::nn {

void maxpool2d_forward(const Matrix& x, Shape in, int k, const IntMatrix& arg, const Matrix& y) {
    const std::int64_t B = x.extent(0);
    const int C = in.c, H = in.h, W = in.w, OH = H / k, OW = W / k;
    MIMIC_REQUIRE(std::int64_t(x.extent(1)) == in.size() &&
                      std::int64_t(y.extent(1)) == std::int64_t(C) * OH * OW &&
                      arg.extent(0) >= x.extent(0) && arg.extent(1) == y.extent(1),
                  "maxpool2d_forward: shape mismatch");
    Kokkos::parallel_for(
        "mimic::nn::pool::forward", RangePolicy(0, B * C * OH), KOKKOS_LAMBDA(const std::int64_t r) {
            const std::int64_t b = r / (std::int64_t(C) * OH);
            const int c = int((r / OH) % C), oh = int(r % OH);
            const float* xs = x.data() + b * C * H * W;
            const std::int64_t o0 = (std::int64_t(c) * OH + oh) * OW;
            if (k == 2) {
                // The common 2x2 window, written so that the compiler can vectorise it; the scan order
                // (and so the first maximum winning on ties) is the same as in the general loop.
                const int r0 = (c * H + oh * 2) * W, r1 = r0 + W;
                const float* x0 = xs + r0;
                const float* x1 = xs + r1;
                float* yo = y.data() + b * y.extent(1) + o0;
                int* ao = arg.data() + b * arg.extent(1) + o0;
                for (int ow = 0; ow < OW; ++ow) {
                    const float a0 = x0[2 * ow], a1 = x0[2 * ow + 1];
                    const float c0 = x1[2 * ow], c1 = x1[2 * ow + 1];
                    const float m0 = a1 > a0 ? a1 : a0, m1 = c1 > c0 ? c1 : c0;
                    const float m = m1 > m0 ? m1 : m0;
                    // First maximum in scan order (a0, a1, c0, c1).
                    const int off = a0 == m ? 0 : a1 == m ? 1 : c0 == m ? W : W + 1;
                    yo[ow] = m;
                    ao[ow] = r0 + 2 * ow + off;
                }
                return;
            }
            for (int ow = 0; ow < OW; ++ow) {
                int best = (c * H + oh * k) * W + ow * k;
                float m = xs[best];
                for (int kh = 0; kh < k; ++kh) {
                    const int row = (c * H + oh * k + kh) * W + ow * k;
                    for (int kw = 0; kw < k; ++kw) {
                        const float v = xs[row + kw];
                        const bool gt = v > m; // selects, not branches: the argmax is data dependent
                        m = gt ? v : m;
                        best = gt ? row + kw : best;
                    }
                }
                y(b, o0 + ow) = m;
                arg(b, o0 + ow) = best;
            }
        });
}

void maxpool2d_backward(const Matrix& dy, const IntMatrix& arg, Shape in, int k, const Matrix& dx) {
    const std::int64_t B = dy.extent(0);
    const int C = in.c, H = in.h, W = in.w, OH = H / k, OW = W / k;
    MIMIC_REQUIRE(std::int64_t(dx.extent(1)) == in.size() &&
                      std::int64_t(dy.extent(1)) == std::int64_t(C) * OH * OW,
                  "maxpool2d_backward: shape mismatch");
    // One thread per output row (b, c, oh): it owns input rows oh*k .. oh*k + k - 1 (and, for the last
    // output row, the rows the floor left over), zeroes them and places the OW gradients.
    Kokkos::parallel_for(
        "mimic::nn::pool::backward", RangePolicy(0, B * C * OH), KOKKOS_LAMBDA(const std::int64_t r) {
            const std::int64_t b = r / (std::int64_t(C) * OH);
            const int c = int((r / OH) % C), oh = int(r % OH);
            const int row_end = oh == OH - 1 ? H : (oh + 1) * k;
            float* dxs = dx.data() + b * std::int64_t(C) * H * W;
            for (int i = (c * H + oh * k) * W; i < (c * H + row_end) * W; ++i)
                dxs[i] = 0.0f;
            const std::int64_t o0 = (std::int64_t(c) * OH + oh) * OW;
            for (int ow = 0; ow < OW; ++ow)
                dxs[arg(b, o0 + ow)] = dy(b, o0 + ow);
        });
}

void maxpool2d_forward_window(const Matrix& x, Shape in, PoolWindow win, const IntMatrix& arg,
                              const Matrix& y) {
    const std::int64_t B = x.extent(0);
    const int C = in.c, H = in.h, W = in.w, OH = win.out(H), OW = win.out(W);
    const int k = win.k, s = win.s, p = win.p;
    MIMIC_REQUIRE(std::int64_t(x.extent(1)) == in.size() &&
                      std::int64_t(y.extent(1)) == std::int64_t(C) * OH * OW &&
                      arg.extent(0) >= x.extent(0) && arg.extent(1) == y.extent(1),
                  "maxpool2d_forward_window: shape mismatch");
    // One thread per output row (b, c, oh).
    Kokkos::parallel_for(
        "mimic::nn::pool::forward_window", RangePolicy(0, B * C * OH), KOKKOS_LAMBDA(const std::int64_t r) {
            const std::int64_t b = r / (std::int64_t(C) * OH);
            const int c = int((r / OH) % C), oh = int(r % OH);
            const int h0 = oh * s - p, hs = h0 > 0 ? h0 : 0, he = h0 + k < H ? h0 + k : H;
            const float* xs = x.data() + b * x.extent(1);
            const std::int64_t o0 = (std::int64_t(c) * OH + oh) * OW;
            for (int ow = 0; ow < OW; ++ow) {
                const int w0 = ow * s - p, ws = w0 > 0 ? w0 : 0, we = w0 + k < W ? w0 + k : W;
                int best = (c * H + hs) * W + ws;
                float m = xs[best];
                for (int ih = hs; ih < he; ++ih)
                    for (int iw = ws; iw < we; ++iw) {
                        const int i = (c * H + ih) * W + iw;
                        const bool gt = xs[i] > m;
                        m = gt ? xs[i] : m;
                        best = gt ? i : best;
                    }
                y(b, o0 + ow) = m;
                arg(b, o0 + ow) = best;
            }
        });
}

void maxpool2d_forward_window_max(const Matrix& x, Shape in, PoolWindow win, const Matrix& y) {
    const std::int64_t B = x.extent(0);
    const int C = in.c, H = in.h, W = in.w, OH = win.out(H), OW = win.out(W);
    const int k = win.k, s = win.s, p = win.p;
    MIMIC_REQUIRE(std::int64_t(x.extent(1)) == in.size() &&
                      std::int64_t(y.extent(1)) == std::int64_t(C) * OH * OW,
                  "maxpool2d_forward_window_max: shape mismatch");
    // One thread per output row (b, c, oh); the same comparisons as maxpool2d_forward_window.
    Kokkos::parallel_for(
        "mimic::nn::pool::forward_window_max", RangePolicy(0, B * C * OH),
        KOKKOS_LAMBDA(const std::int64_t r) {
            const std::int64_t b = r / (std::int64_t(C) * OH);
            const int c = int((r / OH) % C), oh = int(r % OH);
            const int h0 = oh * s - p, hs = h0 > 0 ? h0 : 0, he = h0 + k < H ? h0 + k : H;
            const float* xs = x.data() + b * x.extent(1) + std::int64_t(c) * H * W;
            const std::int64_t o0 = (std::int64_t(c) * OH + oh) * OW;
            for (int ow = 0; ow < OW; ++ow) {
                const int w0 = ow * s - p, ws = w0 > 0 ? w0 : 0, we = w0 + k < W ? w0 + k : W;
                float m = xs[hs * W + ws];
                for (int ih = hs; ih < he; ++ih)
                    for (int iw = ws; iw < we; ++iw)
                        m = xs[ih * W + iw] > m ? xs[ih * W + iw] : m;
                y(b, o0 + ow) = m;
            }
        });
}

void maxpool2d_backward_window(const Matrix& dy, const IntMatrix& arg, Shape in, PoolWindow win,
                               const Matrix& dx) {
    const std::int64_t B = dy.extent(0);
    const int C = in.c, H = in.h, W = in.w, OH = win.out(H), OW = win.out(W);
    const int k = win.k, s = win.s, p = win.p;
    MIMIC_REQUIRE(std::int64_t(dx.extent(1)) == in.size() &&
                      std::int64_t(dy.extent(1)) == std::int64_t(C) * OH * OW,
                  "maxpool2d_backward_window: shape mismatch");
    // One thread per input row (b, c, ih): it zeroes the row, then adds the gradient of every output
    // whose window covers the row and whose argmax lies in it (outputs in scan order: a fixed sum order,
    // no atomics, and no other thread writes the row).
    Kokkos::parallel_for(
        "mimic::nn::pool::backward_window", RangePolicy(0, B * C * H), KOKKOS_LAMBDA(const std::int64_t r) {
            const std::int64_t b = r / (std::int64_t(C) * H);
            const int c = int((r / H) % C), ih = int(r % H);
            const int row0 = (c * H + ih) * W;
            float* dxs = dx.data() + b * dx.extent(1);
            for (int iw = 0; iw < W; ++iw)
                dxs[row0 + iw] = 0.0f;
            // Outputs whose window [o*s - p, o*s - p + k) holds ih: ceil((ih + p - k + 1) / s) .. (ih + p) /
            // s.
            const int oh_lo = ih + p - k + 1 > 0 ? (ih + p - k + s) / s : 0;
            const int oh_hi = (ih + p) / s < OH - 1 ? (ih + p) / s : OH - 1;
            for (int oh = oh_lo; oh <= oh_hi; ++oh)
                for (int ow = 0; ow < OW; ++ow) {
                    const int o = (c * OH + oh) * OW + ow, a = arg(b, o);
                    if (a >= row0 && a < row0 + W) dxs[a] += dy(b, o);
                }
        });
}

void MaxPool2D::forward(const Matrix& x, const Matrix& y, const ForwardContext& ctx) {
    if (ctx.inference && !win_.tiles()) {
        maxpool2d_forward_window_max(x, in_, win_, y);
        return;
    }
    const std::int64_t B = x.extent(0), O = out_.size();
    if (std::int64_t(arg_.extent(0)) < B)
        arg_ = IntMatrix(Kokkos::view_alloc(Kokkos::WithoutInitializing, "mimic::nn::pool::argmax"), B, O);
    if (win_.tiles())
        maxpool2d_forward(x, in_, win_.k, arg_, y);
    else
        maxpool2d_forward_window(x, in_, win_, arg_, y);
}

void MaxPool2D::backward(const Matrix&, const Matrix&, const Matrix& dy, const Matrix& dx) {
    if (dx.extent(0) == 0) return;
    MIMIC_REQUIRE(arg_.extent(0) >= dy.extent(0), token_, ": backward before forward");
    if (win_.tiles())
        maxpool2d_backward(dy, arg_, in_, win_.k, dx);
    else
        maxpool2d_backward_window(dy, arg_, in_, win_, dx);
}

} // namespace mimic::nn
