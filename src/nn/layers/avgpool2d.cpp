// Average pooling kernels: flat parallel_for over output rows (forward) and over input rows (backward,
// each thread owning its row: a fixed order, no atomics), for windowed and global pooling.
#include "mimic/nn/layers/avgpool2d.hpp"

namespace mimic::nn {

void avgpool2d_forward(const Matrix& x, Shape in, PoolWindow win, bool count_pad, const Matrix& y) {
    const std::int64_t B = x.extent(0);
    const int C = in.c, H = in.h, W = in.w, OH = win.out(H), OW = win.out(W);
    const int k = win.k, s = win.s, p = win.p;
    MIMIC_REQUIRE(std::int64_t(x.extent(1)) == in.size() &&
                      std::int64_t(y.extent(1)) == std::int64_t(C) * OH * OW && y.extent(0) == x.extent(0),
                  "avgpool2d_forward: shape mismatch");
    // One thread per output row (b, c, oh).
    Kokkos::parallel_for(
        "mimic::nn::avgpool::forward", RangePolicy(0, B * C * OH), KOKKOS_LAMBDA(const std::int64_t r) {
            const std::int64_t b = r / (std::int64_t(C) * OH);
            const int c = int((r / OH) % C), oh = int(r % OH);
            const int h0 = oh * s - p, hs = h0 > 0 ? h0 : 0, he = h0 + k < H ? h0 + k : H;
            const int ph = (h0 + k < H + p ? h0 + k : H + p) - h0; // rows in the padded input (ceil mode)
            const float* xs = x.data() + b * x.extent(1) + std::int64_t(c) * H * W;
            float* ys = y.data() + b * y.extent(1) + (std::int64_t(c) * OH + oh) * OW;
            for (int ow = 0; ow < OW; ++ow) {
                const int w0 = ow * s - p, ws = w0 > 0 ? w0 : 0, we = w0 + k < W ? w0 + k : W;
                const int pw = (w0 + k < W + p ? w0 + k : W + p) - w0;
                float sum = 0.0f;
                for (int ih = hs; ih < he; ++ih)
                    for (int iw = ws; iw < we; ++iw)
                        sum += xs[ih * W + iw];
                ys[ow] = sum / (count_pad ? float(ph) * float(pw) : float((he - hs) * (we - ws)));
            }
        });
}

void avgpool2d_backward(const Matrix& dy, Shape in, PoolWindow win, bool count_pad, const Matrix& dx) {
    const std::int64_t B = dy.extent(0);
    const int C = in.c, H = in.h, W = in.w, OH = win.out(H), OW = win.out(W);
    const int k = win.k, s = win.s, p = win.p;
    MIMIC_REQUIRE(std::int64_t(dx.extent(1)) == in.size() &&
                      std::int64_t(dy.extent(1)) == std::int64_t(C) * OH * OW && dx.extent(0) == dy.extent(0),
                  "avgpool2d_backward: shape mismatch");
    // One thread per input row (b, c, ih): it zeroes the row, then adds dy / divisor of every output whose
    // window covers the row to the row's cells in that window (outputs in scan order: a fixed sum order,
    // no atomics).
    Kokkos::parallel_for(
        "mimic::nn::avgpool::backward", RangePolicy(0, B * C * H), KOKKOS_LAMBDA(const std::int64_t r) {
            const std::int64_t b = r / (std::int64_t(C) * H);
            const int c = int((r / H) % C), ih = int(r % H);
            float* dxs = dx.data() + b * dx.extent(1) + (std::int64_t(c) * H + ih) * W;
            for (int iw = 0; iw < W; ++iw)
                dxs[iw] = 0.0f;
            // Outputs whose window [o*s - p, o*s - p + k) holds ih: ceil((ih + p - k + 1) / s) .. (ih + p) /
            // s.
            const int oh_lo = ih + p - k + 1 > 0 ? (ih + p - k + s) / s : 0;
            const int oh_hi = (ih + p) / s < OH - 1 ? (ih + p) / s : OH - 1;
            for (int oh = oh_lo; oh <= oh_hi; ++oh) {
                const int h0 = oh * s - p;
                const int rows = (h0 + k < H ? h0 + k : H) - (h0 > 0 ? h0 : 0);
                const int ph = (h0 + k < H + p ? h0 + k : H + p) - h0;
                const float* dys = dy.data() + b * dy.extent(1) + (std::int64_t(c) * OH + oh) * OW;
                for (int ow = 0; ow < OW; ++ow) {
                    const int w0 = ow * s - p, ws = w0 > 0 ? w0 : 0, we = w0 + k < W ? w0 + k : W;
                    const int pw = (w0 + k < W + p ? w0 + k : W + p) - w0;
                    const float g = dys[ow] / (count_pad ? float(ph) * float(pw) : float(rows * (we - ws)));
                    for (int iw = ws; iw < we; ++iw)
                        dxs[iw] += g;
                }
            }
        });
}

void global_avgpool_forward(const Matrix& x, Shape in, const Matrix& y) {
    const std::int64_t B = x.extent(0);
    const int C = in.c, HW = in.h * in.w;
    MIMIC_REQUIRE(std::int64_t(x.extent(1)) == in.size() && int(y.extent(1)) == C &&
                      y.extent(0) == x.extent(0),
                  "global_avgpool_forward: shape mismatch");
    Kokkos::parallel_for(
        "mimic::nn::gap::forward", RangePolicy(0, B * C), KOKKOS_LAMBDA(const std::int64_t r) {
            const float* xs = x.data() + r * HW; // (b, c) planes are consecutive
            float sum = 0.0f;
            for (int i = 0; i < HW; ++i)
                sum += xs[i];
            y.data()[r] = sum / float(HW);
        });
}

void global_avgpool_backward(const Matrix& dy, Shape in, const Matrix& dx) {
    const std::int64_t B = dy.extent(0);
    const int C = in.c, HW = in.h * in.w;
    MIMIC_REQUIRE(std::int64_t(dx.extent(1)) == in.size() && int(dy.extent(1)) == C &&
                      dx.extent(0) == dy.extent(0),
                  "global_avgpool_backward: shape mismatch");
    Kokkos::parallel_for(
        "mimic::nn::gap::backward", RangePolicy(0, B * C * HW),
        KOKKOS_LAMBDA(const std::int64_t r) { dx.data()[r] = dy.data()[r / HW] / float(HW); });
}

} // namespace mimic::nn
