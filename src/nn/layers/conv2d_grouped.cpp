// Grouped and depthwise convolution (G > 1): direct Kokkos kernels for every execution space, forward a
// thread per output row, backward a thread per weight (dW) and per input row (dx), without atomics.
#include "mimic/nn/layers/conv2d.hpp"

namespace mimic::nn {

namespace {

void check_grouped(const Matrix& x, const UnmanagedMatrix& W, const ConvGeometry& g, const char* what) {
    MIMIC_REQUIRE(g.g >= 1 && g.c % g.g == 0 && g.f % g.g == 0, what, ": ", g.g, " groups do not divide ",
                  g.c, " channels and ", g.f, " filters");
    MIMIC_REQUIRE(std::int64_t(x.extent(1)) == std::int64_t(g.c) * g.h * g.w, what, ": input width ",
                  x.extent(1), " is not ", g.c, "x", g.h, "x", g.w);
    MIMIC_REQUIRE(std::int64_t(W.extent(0)) == g.weight_rows() && int(W.extent(1)) == g.f, what,
                  ": weights are ", W.extent(0), "x", W.extent(1), ", expected ", g.weight_rows(), "x", g.f);
}

/// The output columns ow with 0 <= ow*S - pad + kw < W, as [lo, hi).
KOKKOS_INLINE_FUNCTION void valid_columns(int W, int OW, int S, int pad, int kw, int& lo, int& hi) {
    lo = pad - kw > 0 ? (pad - kw + S - 1) / S : 0;
    hi = (W - 1 + pad - kw) >= 0 ? (W - 1 + pad - kw) / S + 1 : 0;
    lo = lo < OW ? lo : OW;
    hi = hi < OW ? hi : OW;
    hi = hi > lo ? hi : lo;
}

} // namespace

void grouped_conv_forward(const Matrix& x, const UnmanagedMatrix& W, const UnmanagedVector& b,
                          const ConvGeometry& g, float* y, const ConvEpilogue& e) {
    check_grouped(x, W, g, "grouped_conv_forward");
    const std::int64_t B = x.extent(0);
    const int C = g.c, H = g.h, Wd = g.w, F = g.f, K = g.k, S = g.s, pad = g.p, OH = g.oh(), OW = g.ow();
    const int Cg = C / g.g, Fg = F / g.g;
    const std::int64_t ld = e.ld > 0 ? e.ld : std::int64_t(F) * OH * OW;
    // One thread per output row (b, f, oh): the row starts at 0, adds each channel's taps in (c, kh, kw)
    // order, then the bias and the epilogue.
    Kokkos::parallel_for(
        "mimic::nn::conv::grouped_forward", RangePolicy(0, B * F * OH), KOKKOS_LAMBDA(const std::int64_t t) {
            const std::int64_t bf = t / OH;
            const int oh = int(t - bf * OH), f = int(bf % F);
            const std::int64_t bi = bf / F,
                               at = (t - bi * F * OH) * OW; // the row's first output in its sample
            float* out = y + bi * ld + at;
            for (int ow = 0; ow < OW; ++ow)
                out[ow] = 0.0f;
            for (int cl = 0; cl < Cg; ++cl) {
                const int c = (f / Fg) * Cg + cl;
                const float* plane = x.data() + (bi * C + c) * std::int64_t(H) * Wd;
                for (int kh = 0; kh < K; ++kh) {
                    const int ih = oh * S - pad + kh;
                    if (ih < 0 || ih >= H) continue;
                    const float* src = plane + std::int64_t(ih) * Wd;
                    for (int kw = 0; kw < K; ++kw) {
                        const float w = W.data()[std::int64_t((cl * K + kh) * K + kw) * F + f];
                        int lo = 0, hi = 0;
                        valid_columns(Wd, OW, S, pad, kw, lo, hi);
                        for (int ow = lo; ow < hi; ++ow)
                            out[ow] += w * src[ow * S - pad + kw];
                    }
                }
            }
            const float bias = b(f);
            for (int ow = 0; ow < OW; ++ow) {
                float v = out[ow] + bias;
                // This kernel's ReLU keeps -0 (the chains' golden outputs); relu6 as activation_forward.
                v = e.act == ConvAct::relu ? (v < 0.0f ? 0.0f : v) : conv_activate(e.act, v, e.alpha);
                if (e.residual) v += e.residual[bi * e.residual_ld + at + ow];
                out[ow] = conv_activate(e.post, v);
            }
        });
}

void grouped_conv_weight_grad(const Matrix& x, const Matrix& dy, const ConvGeometry& g,
                              const UnmanagedMatrix& dW) {
    const std::int64_t B = x.extent(0);
    const int C = g.c, H = g.h, Wd = g.w, F = g.f, K = g.k, S = g.s, pad = g.p, OH = g.oh(), OW = g.ow();
    const int Cg = C / g.g, Fg = F / g.g;
    // One thread per weight (cl, kh, kw, f): sums x * dy over samples, output rows and columns in order.
    Kokkos::parallel_for(
        "mimic::nn::conv::grouped_weight_grad", RangePolicy(0, std::int64_t(Cg) * K * K * F),
        KOKKOS_LAMBDA(const std::int64_t t) {
            const int f = int(t % F), r = int(t / F);
            const int kw = r % K, kh = (r / K) % K, cl = r / (K * K);
            const int c = (f / Fg) * Cg + cl;
            int lo = 0, hi = 0;
            valid_columns(Wd, OW, S, pad, kw, lo, hi);
            float total = 0.0f;
            for (std::int64_t bi = 0; bi < B; ++bi) {
                const float* plane = x.data() + (bi * C + c) * std::int64_t(H) * Wd;
                const float* grad = dy.data() + (bi * F + f) * std::int64_t(OH) * OW;
                float sum = 0.0f;
                for (int oh = 0; oh < OH; ++oh) {
                    const int ih = oh * S - pad + kh;
                    if (ih < 0 || ih >= H) continue;
                    const float* src = plane + std::int64_t(ih) * Wd;
                    const float* d = grad + std::int64_t(oh) * OW;
                    for (int ow = lo; ow < hi; ++ow)
                        sum += src[ow * S - pad + kw] * d[ow];
                }
                total += sum;
            }
            dW.data()[t] += total;
        });
}

void grouped_conv_input_grad(const Matrix& dy, const UnmanagedMatrix& W, const ConvGeometry& g,
                             const Matrix& dx) {
    const std::int64_t B = dx.extent(0);
    const int C = g.c, H = g.h, Wd = g.w, F = g.f, K = g.k, S = g.s, pad = g.p, OH = g.oh(), OW = g.ow();
    const int Cg = C / g.g, Fg = F / g.g;
    // One thread per input row (b, c, ih): gathers over its group's filters, then the taps.
    Kokkos::parallel_for(
        "mimic::nn::conv::grouped_input_grad", RangePolicy(0, B * C * H),
        KOKKOS_LAMBDA(const std::int64_t t) {
            const std::int64_t bc = t / H;
            const int ih = int(t - bc * H), c = int(bc % C);
            const std::int64_t bi = bc / C;
            const int cl = c % Cg, f0 = (c / Cg) * Fg;
            float* out = dx.data() + t * Wd;
            for (int iw = 0; iw < Wd; ++iw)
                out[iw] = 0.0f;
            for (int f = f0; f < f0 + Fg; ++f) {
                const float* grad = dy.data() + (bi * F + f) * std::int64_t(OH) * OW;
                for (int kh = 0; kh < K; ++kh) {
                    const int num = ih + pad - kh;
                    if (num < 0 || num % S != 0 || num / S >= OH) continue;
                    const float* d = grad + std::int64_t(num / S) * OW;
                    for (int kw = 0; kw < K; ++kw) {
                        const float w = W.data()[std::int64_t((cl * K + kh) * K + kw) * F + f];
                        int lo = 0, hi = 0;
                        valid_columns(Wd, OW, S, pad, kw, lo, hi);
                        for (int ow = lo; ow < hi; ++ow)
                            out[ow * S - pad + kw] += w * d[ow];
                    }
                }
            }
        });
}

void grouped_conv_backward(const Matrix& x, const Matrix& dy, const UnmanagedMatrix& W, const ConvGeometry& g,
                           const UnmanagedMatrix& dW, const Matrix& dx) {
    check_grouped(x, W, g, "grouped_conv_backward");
    MIMIC_REQUIRE(dy.extent(0) == x.extent(0) && std::int64_t(dy.extent(1)) == std::int64_t(g.f) * g.pixels(),
                  "grouped_conv_backward: dy is ", dy.extent(0), "x", dy.extent(1));
    grouped_conv_weight_grad(x, dy, g, dW);
    if (dx.extent(0) > 0) grouped_conv_input_grad(dy, W, g, dx);
}

} // namespace mimic::nn
