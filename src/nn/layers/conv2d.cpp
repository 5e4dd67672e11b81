// Conv2D kernels: im2col into [C*K*K, B*P] (shifted-plane copies for 'same' convolutions), one sgemm per
// chunk of samples giving [F, B*P], NCHW output; backward: bias sums, two sgemms and col2im per chunk.
#include "mimic/nn/layers/conv2d.hpp"

#include <algorithm>

namespace mimic::nn {

void im2col(const Matrix& x, const ConvGeometry& g, const Matrix& col) {
    const std::int64_t B = x.extent(0), P = g.pixels(), KK = g.patch(), N = B * P;
    MIMIC_REQUIRE(std::int64_t(x.extent(1)) == std::int64_t(g.c) * g.h * g.w, "im2col: input width ",
                  x.extent(1), " is not ", g.c, "x", g.h, "x", g.w);
    MIMIC_REQUIRE(std::int64_t(col.extent(0)) == KK && std::int64_t(col.extent(1)) == N, "im2col: col is ",
                  col.extent(0), "x", col.extent(1), ", expected ", KK, "x", N);
    const int C = g.c, H = g.h, W = g.w, K = g.k, S = g.s, pad = g.p, OH = g.oh(), OW = g.ow();
    const bool same = S == 1 && OH == H && OW == W && pad < K;
    // One thread per (patch row r, sample b): writes OH runs of OW contiguous values.
    Kokkos::parallel_for(
        "mimic::nn::conv::im2col", RangePolicy(0, KK * B), KOKKOS_LAMBDA(const std::int64_t t) {
            const std::int64_t b = t % B;
            const int r = int(t / B);
            const int kw = r % K, kh = (r / K) % K, c = r / (K * K);
            // Valid outputs along a row: 0 <= ow*S - pad + kw < W.
            int lo = pad - kw > 0 ? (pad - kw + S - 1) / S : 0;
            int hi = (W - 1 + pad - kw) >= 0 ? (W - 1 + pad - kw) / S + 1 : 0;
            lo = lo < OW ? lo : OW;
            hi = hi < OW ? hi : OW;
            hi = hi > lo ? hi : lo;
            const float* plane = x.data() + (b * C + c) * std::int64_t(H) * W;
            float* dst = col.data() + r * N + b * P;
            if (same) {
                // Stride 1, output size = input size: the patch row is the plane shifted by (dh, dw), so
                // copy it as one contiguous run and then zero what fell outside the image.
                const int dh = kh - pad, dw = kw - pad;
                const int oh_lo = dh < 0 ? -dh : 0, oh_hi = dh > 0 ? H - dh : H;
                const std::int64_t shift = std::int64_t(dh) * W + dw;
                const std::int64_t j0 = std::int64_t(oh_lo) * W + (dw < 0 ? -dw : 0);
                const std::int64_t j1 = std::int64_t(oh_hi) * W - (dw > 0 ? dw : 0);
                for (std::int64_t j = 0; j < j0; ++j)
                    dst[j] = 0.0f;
                for (std::int64_t j = j0; j < j1; ++j)
                    dst[j] = plane[j + shift];
                for (std::int64_t j = j1 < j0 ? j0 : j1; j < P; ++j)
                    dst[j] = 0.0f;
                if (dw != 0)
                    for (int oh = oh_lo; oh < oh_hi; ++oh) {
                        float* d = dst + std::int64_t(oh) * W;
                        if (dw < 0)
                            for (int ow = 0; ow < -dw; ++ow)
                                d[ow] = 0.0f;
                        else
                            for (int ow = W - dw; ow < W; ++ow)
                                d[ow] = 0.0f;
                    }
                return;
            }
            for (int oh = 0; oh < OH; ++oh, dst += OW) {
                const int ih = oh * S - pad + kh;
                if (ih < 0 || ih >= H) {
                    for (int ow = 0; ow < OW; ++ow)
                        dst[ow] = 0.0f;
                    continue;
                }
                const float* src = plane + std::int64_t(ih) * W;
                for (int ow = 0; ow < lo; ++ow)
                    dst[ow] = 0.0f;
                if (S == 1) {
                    const float* s = src + (kw - pad);
                    for (int ow = lo; ow < hi; ++ow)
                        dst[ow] = s[ow];
                } else {
                    for (int ow = lo; ow < hi; ++ow)
                        dst[ow] = src[ow * S - pad + kw];
                }
                for (int ow = hi; ow < OW; ++ow)
                    dst[ow] = 0.0f;
            }
        });
}

void col2im(const Matrix& dcol, const ConvGeometry& g, const Matrix& dx) {
    const std::int64_t B = dx.extent(0), P = g.pixels(), KK = g.patch(), N = B * P;
    MIMIC_REQUIRE(std::int64_t(dcol.extent(0)) == KK && std::int64_t(dcol.extent(1)) == N, "col2im: dcol is ",
                  dcol.extent(0), "x", dcol.extent(1), ", expected ", KK, "x", N);
    const int C = g.c, H = g.h, W = g.w, K = g.k, S = g.s, pad = g.p, OH = g.oh(), OW = g.ow();
    if (S == 1 && OH == H && OW == W && pad < K) {
        // 'Same' geometry (K = 2*pad + 1): one thread per input plane (b, c). The patch row (c, kh, kw) is
        // the plane shifted by (dh, dw); its entries that fell outside the image are zeroed first (dcol is
        // scratch), so that the shifted rows add as contiguous runs. The centre tap covers the whole plane
        // and initialises it; the other taps follow in (kh, kw) order.
        Kokkos::parallel_for(
            "mimic::nn::conv::col2im_same", RangePolicy(0, B * C), KOKKOS_LAMBDA(const std::int64_t t) {
                const std::int64_t b = t / C;
                const int c = int(t % C);
                float* out = dx.data() + t * std::int64_t(H) * W;
                const float* centre = dcol.data() + std::int64_t((c * K + pad) * K + pad) * N + b * P;
                for (std::int64_t j = 0; j < std::int64_t(H) * W; ++j)
                    out[j] = centre[j];
                for (int kh = 0; kh < K; ++kh) {
                    const int dh = kh - pad;
                    const int oh_lo = dh < 0 ? -dh : 0, oh_hi = dh > 0 ? H - dh : H;
                    if (oh_lo >= oh_hi) continue;
                    for (int kw = 0; kw < K; ++kw) {
                        const int dw = kw - pad;
                        if (dh == 0 && dw == 0) continue;
                        float* src = dcol.data() + std::int64_t((c * K + kh) * K + kw) * N + b * P;
                        if (dw != 0)
                            for (int oh = oh_lo; oh < oh_hi; ++oh) {
                                float* d = src + std::int64_t(oh) * W;
                                if (dw < 0)
                                    for (int ow = 0; ow < -dw; ++ow)
                                        d[ow] = 0.0f;
                                else
                                    for (int ow = W - dw; ow < W; ++ow)
                                        d[ow] = 0.0f;
                            }
                        const std::int64_t shift = std::int64_t(dh) * W + dw;
                        const std::int64_t j0 = std::int64_t(oh_lo) * W + (dw < 0 ? -dw : 0);
                        const std::int64_t j1 = std::int64_t(oh_hi) * W - (dw > 0 ? dw : 0);
                        float* o = out + shift;
                        for (std::int64_t j = j0; j < j1; ++j)
                            o[j] += src[j];
                    }
                }
            });
        return;
    }
    // One thread per input row (b, c, ih): gathers every patch entry that copied one of its pixels.
    Kokkos::parallel_for(
        "mimic::nn::conv::col2im", RangePolicy(0, B * C * H), KOKKOS_LAMBDA(const std::int64_t t) {
            const std::int64_t b = t / (std::int64_t(C) * H);
            const int ch = int(t - b * C * H); // 32-bit from here on: c * H + ih
            const int c = ch / H, ih = ch - c * H;
            float* out = dx.data() + t * W;
            for (int iw = 0; iw < W; ++iw)
                out[iw] = 0.0f;
            for (int kh = 0; kh < K; ++kh) {
                const int num = ih + pad - kh;
                if (num < 0 || num % S != 0) continue;
                const int oh = num / S;
                if (oh >= OH) continue;
                for (int kw = 0; kw < K; ++kw) {
                    const float* src =
                        dcol.data() + std::int64_t((c * K + kh) * K + kw) * N + b * P + std::int64_t(oh) * OW;
                    int lo = pad - kw > 0 ? (pad - kw + S - 1) / S : 0;
                    int hi = (W - 1 + pad - kw) >= 0 ? (W - 1 + pad - kw) / S + 1 : 0;
                    lo = lo < OW ? lo : OW;
                    hi = hi < OW ? hi : OW;
                    if (S == 1) {
                        float* o = out + (kw - pad);
                        for (int ow = lo; ow < hi; ++ow)
                            o[ow] += src[ow];
                    } else {
                        for (int ow = lo; ow < hi; ++ow)
                            out[ow * S - pad + kw] += src[ow];
                    }
                }
            }
        });
}

namespace {
std::int64_t g_chunk_floats = 0; // 0: the default budget below
} // namespace

void set_conv_chunk_floats(std::int64_t floats) {
    g_chunk_floats = floats < 0 ? 0 : floats;
}

std::int64_t conv_chunk_rows(const ConvGeometry& g, std::int64_t batch) {
    constexpr bool host = Kokkos::SpaceAccessibility<Kokkos::HostSpace, MemSpace>::accessible;
    // Host: about the L2 cache (1 MiB per core measured best on the development machine: 160 ms per CNN
    // step against 175 ms at 4 MiB and 230 ms for the whole batch at once); GPU: 512 MiB.
    const std::int64_t budget = g_chunk_floats > 0 ? g_chunk_floats
                                : host             ? (std::int64_t(1) << 18)
                                                   : (std::int64_t(1) << 27); // floats
    const std::int64_t per_sample = std::max<std::int64_t>(1, g.patch() * g.pixels());
    return std::max<std::int64_t>(1, std::min<std::int64_t>(batch, budget / per_sample));
}

namespace {

Matrix rows_of(const Matrix& m, std::int64_t first, std::int64_t count) {
    return Kokkos::subview(m, std::make_pair(first, first + count), Kokkos::ALL());
}

} // namespace

void conv2d_forward(const Matrix& x, const UnmanagedMatrix& W, const UnmanagedVector& b,
                    const ConvGeometry& g, ConvWorkspace& ws, const Matrix& y) {
    Kokkos::Profiling::pushRegion("mimic::nn::conv::forward");
    const std::int64_t B = x.extent(0), P = g.pixels();
    const int F = g.f;
    MIMIC_REQUIRE(y.extent(0) == x.extent(0) && std::int64_t(y.extent(1)) == F * P,
                  "conv2d_forward: output is ", y.extent(0), "x", y.extent(1), ", expected ", B, "x", F * P);
    const std::int64_t chunk = conv_chunk_rows(g, B);
    for (std::int64_t b0 = 0; b0 < B; b0 += chunk) {
        const std::int64_t nb = std::min(chunk, B - b0), N = nb * P;
        const Matrix col = workspace(ws.col, "mimic::nn::conv::col", g.patch(), N);
        im2col(rows_of(x, b0, nb), g, col);
        if (nb == 1) {
            // One sample: its NCHW output [F, P] is the GEMM result itself; the bias goes in first.
            const Matrix yb(y.data() + b0 * F * P, F, P);
            Kokkos::parallel_for(
                "mimic::nn::conv::bias_fill", RangePolicy(0, F), KOKKOS_LAMBDA(const std::int64_t f) {
                    const float bias = b(f);
                    float* dst = yb.data() + f * P;
                    for (std::int64_t p = 0; p < P; ++p)
                        dst[p] = bias;
                });
            gemm("T", "N", 1.0f, W, col, 1.0f, yb);
            continue;
        }
        const Matrix out = workspace(ws.out, "mimic::nn::conv::out", F, N);
        const Matrix yc = rows_of(y, b0, nb);
        gemm("T", "N", 1.0f, W, col, 0.0f, out);
        // [F, nb, P] -> [nb, F, P] with the bias: contiguous runs of P.
        Kokkos::parallel_for(
            "mimic::nn::conv::nchw_bias", RangePolicy(0, nb * F), KOKKOS_LAMBDA(const std::int64_t t) {
                const std::int64_t bi = t / F;
                const int f = int(t % F);
                const float bias = b(f);
                const float* src = out.data() + f * N + bi * P;
                float* dst = yc.data() + t * P;
                for (std::int64_t p = 0; p < P; ++p)
                    dst[p] = src[p] + bias;
            });
    }
    Kokkos::Profiling::popRegion();
}

void conv2d_backward(const Matrix& x, const Matrix& dy, const UnmanagedMatrix& W, const ConvGeometry& g,
                     ConvWorkspace& ws, const UnmanagedMatrix& dW, const UnmanagedVector& db,
                     const Matrix& dx) {
    Kokkos::Profiling::pushRegion("mimic::nn::conv::backward");
    const std::int64_t B = x.extent(0), P = g.pixels();
    const int F = g.f;
    MIMIC_REQUIRE(dy.extent(0) == x.extent(0) && std::int64_t(dy.extent(1)) == F * P,
                  "conv2d_backward: dy shape");
    const bool want_dx = dx.extent(0) > 0;
    // db[f] += sum over samples and pixels of dy[b, f*P + p], in a fixed order (8 interleaved partial
    // sums per sample so that the host loop vectorises; still independent of the thread count).
    Kokkos::parallel_for(
        "mimic::nn::conv::bias_grad", RangePolicy(0, F), KOKKOS_LAMBDA(const std::int64_t f) {
            float total = 0.0f;
            for (std::int64_t bi = 0; bi < B; ++bi) {
                const float* row = dy.data() + (bi * F + f) * P;
                float part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
                std::int64_t p = 0;
                for (; p + 8 <= P; p += 8)
                    for (int l = 0; l < 8; ++l)
                        part[l] += row[p + l];
                for (; p < P; ++p)
                    part[0] += row[p];
                total +=
                    ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
            }
            db(f) += total;
        });
    const std::int64_t chunk = conv_chunk_rows(g, B);
    for (std::int64_t b0 = 0; b0 < B; b0 += chunk) {
        const std::int64_t nb = std::min(chunk, B - b0), N = nb * P;
        const Matrix col = workspace(ws.col, "mimic::nn::conv::col", g.patch(), N);
        Matrix dyt;
        if (nb == 1) {
            dyt = Matrix(dy.data() + b0 * F * P, F, P); // one sample's gradient is already [F, P]
        } else {
            dyt = workspace(ws.out, "mimic::nn::conv::out", F, N);
            const Matrix dyc = rows_of(dy, b0, nb), d = dyt;
            Kokkos::parallel_for(
                "mimic::nn::conv::grad_to_fnp", RangePolicy(0, nb * F), KOKKOS_LAMBDA(const std::int64_t t) {
                    const std::int64_t bi = t / F;
                    const int f = int(t % F);
                    const float* src = dyc.data() + t * P;
                    float* dst = d.data() + f * N + bi * P;
                    for (std::int64_t p = 0; p < P; ++p)
                        dst[p] = src[p];
                });
        }
        im2col(rows_of(x, b0, nb), g, col);
        gemm("N", "T", 1.0f, col, dyt, 1.0f, dW);
        if (want_dx) {
            gemm("N", "N", 1.0f, W, dyt, 0.0f, col);
            col2im(col, g, rows_of(dx, b0, nb));
        }
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
    init_weights(UnmanagedVector(W_.data(), W_.size()), g_.patch(), std::int64_t(g_.f) * g_.k * g_.k, he,
                 seed);
    Kokkos::deep_copy(b_, 0.0f);
}

void Conv2D::forward(const Matrix& x, const Matrix& y, const ForwardContext&) {
    conv2d_forward(x, W_, b_, g_, ws_, y);
}

void Conv2D::backward(const Matrix& x, const Matrix&, const Matrix& dy, const Matrix& dx) {
    conv2d_backward(x, dy, W_, g_, ws_, dW_, db_, dx);
}

} // namespace mimic::nn
