// Average pooling kernels: flat parallel_for over outputs (forward) and over input cells (backward, a
// gather in a fixed order, no atomics), for windowed and global pooling.
#include "mimic/nn/layers/avgpool2d.hpp"

namespace mimic::nn {

void avgpool2d_forward(const Matrix& x, Shape in, PoolWindow win, bool count_pad, const Matrix& y) {
    const std::int64_t B = x.extent(0);
    const int C = in.c, H = in.h, W = in.w, OH = win.out(H), OW = win.out(W);
    const int k = win.k, s = win.s, p = win.p;
    MIMIC_REQUIRE(std::int64_t(x.extent(1)) == in.size() &&
                      std::int64_t(y.extent(1)) == std::int64_t(C) * OH * OW && y.extent(0) == x.extent(0),
                  "avgpool2d_forward: shape mismatch");
    const std::int64_t O = std::int64_t(C) * OH * OW;
    Kokkos::parallel_for(
        "mimic::nn::avgpool::forward", RangePolicy(0, B * O), KOKKOS_LAMBDA(const std::int64_t r) {
            const std::int64_t b = r / O, o = r % O;
            const int c = int(o / (OH * OW)), oh = int((o / OW) % OH), ow = int(o % OW);
            const int h0 = oh * s - p, w0 = ow * s - p;
            const int hs = h0 > 0 ? h0 : 0, ws = w0 > 0 ? w0 : 0;
            const int he = h0 + k < H ? h0 + k : H, we = w0 + k < W ? w0 + k : W;
            const float* xs = x.data() + b * x.extent(1) + std::int64_t(c) * H * W;
            float sum = 0.0f;
            for (int ih = hs; ih < he; ++ih)
                for (int iw = ws; iw < we; ++iw)
                    sum += xs[ih * W + iw];
            y(b, o) = sum / (count_pad ? float(k) * float(k) : float((he - hs) * (we - ws)));
        });
}

void avgpool2d_backward(const Matrix& dy, Shape in, PoolWindow win, bool count_pad, const Matrix& dx) {
    const std::int64_t B = dy.extent(0);
    const int C = in.c, H = in.h, W = in.w, OH = win.out(H), OW = win.out(W);
    const int k = win.k, s = win.s, p = win.p;
    MIMIC_REQUIRE(std::int64_t(dx.extent(1)) == in.size() &&
                      std::int64_t(dy.extent(1)) == std::int64_t(C) * OH * OW && dx.extent(0) == dy.extent(0),
                  "avgpool2d_backward: shape mismatch");
    const std::int64_t N = in.size();
    Kokkos::parallel_for(
        "mimic::nn::avgpool::backward", RangePolicy(0, B * N), KOKKOS_LAMBDA(const std::int64_t r) {
            const std::int64_t b = r / N;
            const int i = int(r % N), c = i / (H * W), ih = (i / W) % H, iw = i % W;
            // Outputs whose window [o*s - p, o*s - p + k) holds ih: ceil((ih + p - k + 1) / s) .. (ih + p) /
            // s.
            const int oh_lo = ih + p - k + 1 > 0 ? (ih + p - k + s) / s : 0;
            const int ow_lo = iw + p - k + 1 > 0 ? (iw + p - k + s) / s : 0;
            const int oh_hi = (ih + p) / s < OH - 1 ? (ih + p) / s : OH - 1;
            const int ow_hi = (iw + p) / s < OW - 1 ? (iw + p) / s : OW - 1;
            float g = 0.0f;
            for (int oh = oh_lo; oh <= oh_hi; ++oh) {
                const int h0 = oh * s - p;
                const int rows = (h0 + k < H ? h0 + k : H) - (h0 > 0 ? h0 : 0);
                for (int ow = ow_lo; ow <= ow_hi; ++ow) {
                    const int w0 = ow * s - p;
                    const int cols = (w0 + k < W ? w0 + k : W) - (w0 > 0 ? w0 : 0);
                    g += dy(b, (c * OH + oh) * OW + ow) /
                         (count_pad ? float(k) * float(k) : float(rows * cols));
                }
            }
            dx(b, i) = g;
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
