// MaxPool2D kernels: one thread per output row (b, c, oh) in both passes (a vectorisable 2x2 path and a
// general window); backward zeroes the input rows it owns and places each gradient at its argmax.
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

void MaxPool2D::forward(const Matrix& x, const Matrix& y, const ForwardContext&) {
    const std::int64_t B = x.extent(0), O = out_.size();
    if (std::int64_t(arg_.extent(0)) < B)
        arg_ = IntMatrix(Kokkos::view_alloc(Kokkos::WithoutInitializing, "mimic::nn::pool::argmax"), B, O);
    maxpool2d_forward(x, in_, k_, arg_, y);
}

void MaxPool2D::backward(const Matrix&, const Matrix&, const Matrix& dy, const Matrix& dx) {
    if (dx.extent(0) == 0) return;
    MIMIC_REQUIRE(arg_.extent(0) >= dy.extent(0), token_, ": backward before forward");
    maxpool2d_backward(dy, arg_, in_, k_, dx);
}

} // namespace mimic::nn
