// Conv2D kernels and the backend dispatch. Host with AVX-512 and stride 1 or 2 (K > 1): the direct backend
// (impl/conv2d_direct.hpp), which also serves the forward passes of groups, the backward of groups at
// stride 1, and both passes of depthwise convolutions of any stride. Otherwise im2col into
// [C*K*K, B*P], one sgemm per chunk of samples giving [F, B*P], NCHW output; backward: bias sums, two sgemms
// and col2im per chunk. im2col/col2im copy rows on the host, one element per thread on a device (neighbouring
// threads, neighbouring addresses). Inference on that host: 1x1 convolutions without padding or groups as
// sgemms on the NCHW inputs (conv2d_forward_inference).
#include "mimic/nn/layers/conv2d.hpp"

#include "mimic/core/runtime.hpp"
#include "mimic/nn/layers/impl/conv2d_direct.hpp"

#include <algorithm>

namespace mimic::nn {

namespace {

/// Profiling region for a scope (popped on every exit, exceptions included).
struct Region {
    explicit Region(const char* name) { Kokkos::Profiling::pushRegion(name); }
    ~Region() { Kokkos::Profiling::popRegion(); }
    Region(const Region&) = delete;
    Region& operator=(const Region&) = delete;
};

void check_im2col(const Matrix& x, const ConvGeometry& g, const Matrix& col) {
    const std::int64_t N = std::int64_t(x.extent(0)) * g.pixels();
    MIMIC_REQUIRE(std::int64_t(x.extent(1)) == std::int64_t(g.c) * g.h * g.w, "im2col: input width ",
                  x.extent(1), " is not ", g.c, "x", g.h, "x", g.w);
    MIMIC_REQUIRE(std::int64_t(col.extent(0)) == g.patch() && std::int64_t(col.extent(1)) == N,
                  "im2col: col is ", col.extent(0), "x", col.extent(1), ", expected ", g.patch(), "x", N);
}

void check_col2im(const Matrix& dcol, const ConvGeometry& g, const Matrix& dx) {
    const std::int64_t N = std::int64_t(dx.extent(0)) * g.pixels();
    MIMIC_REQUIRE(std::int64_t(dcol.extent(0)) == g.patch() && std::int64_t(dcol.extent(1)) == N,
                  "col2im: dcol is ", dcol.extent(0), "x", dcol.extent(1), ", expected ", g.patch(), "x", N);
    MIMIC_REQUIRE(std::int64_t(dx.extent(1)) == std::int64_t(g.c) * g.h * g.w, "col2im: dx width ",
                  dx.extent(1), " is not ", g.c, "x", g.h, "x", g.w);
}

/// 'Same' geometry: stride 1 and output size = input size, so a patch row is its plane shifted by (dh, dw).
bool same_geometry(const ConvGeometry& g) {
    return g.s == 1 && g.oh() == g.h && g.ow() == g.w && g.p < g.k;
}

/// In a patch row of a 'same' convolution stored as the plane shifted by (dh, dw), the dw columns of rows
/// oh_lo .. oh_hi - 1 that wrapped around from the neighbouring row (they lie outside the image) are set to
/// 0.
KOKKOS_INLINE_FUNCTION void zero_wrapped_columns(float* row0, int oh_lo, int oh_hi, int W, int dw) {
    if (dw == 0) return;
    const int lo = dw < 0 ? 0 : W - dw, hi = dw < 0 ? -dw : W;
    for (int oh = oh_lo; oh < oh_hi; ++oh)
        for (int ow = lo; ow < hi; ++ow)
            row0[std::int64_t(oh) * W + ow] = 0.0f;
}

KOKKOS_INLINE_FUNCTION float patch_value(const float* x, int C, int H, int W, int K, int S, int pad, int OW,
                                         std::int64_t P, std::int64_t r, std::int64_t j) {
    const std::int64_t b = j / P, pix = j - b * P;
    const int oh = int(pix / OW), ow = int(pix - std::int64_t(oh) * OW);
    const int kw = int(r % K), kh = int((r / K) % K), c = int(r / (std::int64_t(K) * K));
    const int ih = oh * S - pad + kh, iw = ow * S - pad + kw;
    if (ih < 0 || ih >= H || iw < 0 || iw >= W) return 0.0f;
    return x[((b * C + c) * H + ih) * W + iw];
}

} // namespace

void im2col_rows(const Matrix& x, const ConvGeometry& g, const Matrix& col) {
    check_im2col(x, g, col);
    const std::int64_t B = x.extent(0), P = g.pixels(), KK = g.patch(), N = B * P;
    const int C = g.c, H = g.h, W = g.w, K = g.k, S = g.s, pad = g.p, OH = g.oh(), OW = g.ow();
    const bool same = same_geometry(g);
    // One thread per (patch row r, sample b): writes OH runs of OW contiguous values.
    Kokkos::parallel_for(
        "mimic::nn::conv::im2col", RangePolicy(0, KK * B), KOKKOS_LAMBDA(const std::int64_t t) {
            const std::int64_t b = t % B;
            const int r = int(t / B);
            const int kw = r % K, kh = (r / K) % K, c = r / (K * K);
            const float* plane = x.data() + (b * C + c) * std::int64_t(H) * W;
            float* dst = col.data() + r * N + b * P;
            if (same) {
                // The patch row is the plane shifted by (dh, dw): copy it as one contiguous run, then zero
                // what fell outside the image.
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
                zero_wrapped_columns(dst, oh_lo, oh_hi, W, dw);
                return;
            }
            // Valid outputs along a row: 0 <= ow*S - pad + kw < W.
            int lo = pad - kw > 0 ? (pad - kw + S - 1) / S : 0;
            int hi = (W - 1 + pad - kw) >= 0 ? (W - 1 + pad - kw) / S + 1 : 0;
            lo = lo < OW ? lo : OW;
            hi = hi < OW ? hi : OW;
            hi = hi > lo ? hi : lo;
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

void im2col_elements(const Matrix& x, const ConvGeometry& g, const Matrix& col) {
    check_im2col(x, g, col);
    const std::int64_t P = g.pixels(), N = std::int64_t(x.extent(0)) * P;
    const int C = g.c, H = g.h, W = g.w, K = g.k, S = g.s, pad = g.p, OW = g.ow();
    // One thread per entry col[r, j]: consecutive threads write consecutive j.
    Kokkos::parallel_for(
        "mimic::nn::conv::im2col_elements", RangePolicy(0, g.patch() * N),
        KOKKOS_LAMBDA(const std::int64_t t) {
            const std::int64_t r = t / N, j = t - r * N;
            col.data()[t] = patch_value(x.data(), C, H, W, K, S, pad, OW, P, r, j);
        });
}

void im2col(const Matrix& x, const ConvGeometry& g, const Matrix& col) {
    if constexpr (Kokkos::SpaceAccessibility<Kokkos::HostSpace, MemSpace>::accessible)
        im2col_rows(x, g, col);
    else
        im2col_elements(x, g, col);
}

void col2im_rows(const Matrix& dcol, const ConvGeometry& g, const Matrix& dx) {
    check_col2im(dcol, g, dx);
    const std::int64_t B = dx.extent(0), P = g.pixels(), N = B * P;
    const int C = g.c, H = g.h, W = g.w, K = g.k, S = g.s, pad = g.p, OH = g.oh(), OW = g.ow();
    if (same_geometry(g)) {
        // One thread per input plane (b, c). The patch row (c, kh, kw) is the plane shifted by (dh, dw); its
        // entries that fell outside the image are zeroed first (dcol is scratch), so that the shifted rows
        // add as contiguous runs. The centre tap covers the whole plane and initialises it; the other taps
        // follow in (kh, kw) order.
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
                        zero_wrapped_columns(src, oh_lo, oh_hi, W, dw);
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

void col2im_elements(const Matrix& dcol, const ConvGeometry& g, const Matrix& dx) {
    check_col2im(dcol, g, dx);
    const std::int64_t P = g.pixels(), N = std::int64_t(dx.extent(0)) * P;
    const int C = g.c, H = g.h, W = g.w, K = g.k, S = g.s, pad = g.p, OH = g.oh(), OW = g.ow();
    // One thread per input element dx[b, c, ih, iw], gathering over the taps in (kh, kw) order; consecutive
    // threads read consecutive output pixels of each patch row.
    Kokkos::parallel_for(
        "mimic::nn::conv::col2im_elements", RangePolicy(0, std::int64_t(dx.size())),
        KOKKOS_LAMBDA(const std::int64_t t) {
            const std::int64_t b = t / (std::int64_t(C) * H * W);
            const int chw = int(t - b * C * H * W);
            const int c = chw / (H * W), ih = (chw / W) % H, iw = chw % W;
            float sum = 0.0f;
            for (int kh = 0; kh < K; ++kh) {
                const int nh = ih + pad - kh;
                if (nh < 0 || nh % S != 0 || nh / S >= OH) continue;
                for (int kw = 0; kw < K; ++kw) {
                    const int nw = iw + pad - kw;
                    if (nw < 0 || nw % S != 0 || nw / S >= OW) continue;
                    sum += dcol.data()[std::int64_t((c * K + kh) * K + kw) * N + b * P +
                                       std::int64_t(nh / S) * OW + nw / S];
                }
            }
            dx.data()[t] = sum;
        });
}

void col2im(const Matrix& dcol, const ConvGeometry& g, const Matrix& dx) {
    if constexpr (Kokkos::SpaceAccessibility<Kokkos::HostSpace, MemSpace>::accessible)
        col2im_rows(dcol, g, dx);
    else
        col2im_elements(dcol, g, dx);
}

void conv_bias_grad_rows(const Matrix& dy, std::int64_t P, const UnmanagedVector& db) {
    const std::int64_t B = dy.extent(0), F = db.extent(0);
    // db[f] += sum over samples and pixels of dy[b, f*P + p], one thread per filter in a fixed order (8
    // interleaved partial sums per sample so that the host loop vectorises).
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
}

void conv_bias_grad_teams(const Matrix& dy, std::int64_t P, const UnmanagedVector& db) {
    using Team = Kokkos::TeamPolicy<ExecSpace>;
    const std::int64_t B = dy.extent(0), F = db.extent(0), n = B * P;
    // One team per filter, its threads reducing the B*P gradients of that filter.
    Kokkos::parallel_for(
        "mimic::nn::conv::bias_grad_teams", Team(int(F), Kokkos::AUTO),
        KOKKOS_LAMBDA(const Team::member_type& team) {
            const std::int64_t f = team.league_rank();
            float total = 0.0f;
            Kokkos::parallel_reduce(
                Kokkos::TeamThreadRange(team, n),
                [&](const std::int64_t i, float& s) {
                    const std::int64_t bi = i / P;
                    s += dy.data()[(bi * F + f) * P + (i - bi * P)];
                },
                total);
            Kokkos::single(Kokkos::PerTeam(team), [&] { db(f) += total; });
        });
}

std::int64_t conv_chunk_rows(const ConvGeometry& g, std::int64_t batch, std::int64_t budget_floats) {
    constexpr bool host = Kokkos::SpaceAccessibility<Kokkos::HostSpace, MemSpace>::accessible;
    // Host: about the L2 cache (1 MiB per core measured best on the development machine: 160 ms per CNN
    // step against 175 ms at 4 MiB and 230 ms for the whole batch at once); GPU: 512 MiB.
    const std::int64_t budget = budget_floats > 0 ? budget_floats
                                : host            ? (std::int64_t(1) << 18)
                                                  : (std::int64_t(1) << 27); // floats
    const std::int64_t per_sample = std::max<std::int64_t>(1, g.patch() * g.pixels());
    return std::max<std::int64_t>(1, std::min<std::int64_t>(batch, budget / per_sample));
}

namespace {

Matrix rows_of(const Matrix& m, std::int64_t first, std::int64_t count) {
    return Kokkos::subview(m, std::make_pair(first, first + count), Kokkos::ALL());
}

/// The geometry of one group of g: C/G channels, F/G filters.
ConvGeometry one_group(const ConvGeometry& g) {
    return ConvGeometry{g.c / g.g, g.h, g.w, g.f / g.g, g.k, g.s, g.p, 1};
}

} // namespace

ConvBackend conv_backend(const ConvGeometry& g, const ConvTuning& t) {
    if constexpr (impl::DirectConvAvailable<ExecSpace, MemSpace>::value) {
        // MIMIC_CONV_IM2COL=1 takes im2col + sgemm (and the grouped kernels) on every CPU, as on one without
        // AVX-512F (the golden outputs of that arithmetic are checked on any machine that has it;
        // tests/golden/run.sh).
        static const bool im2col_only = env_is_one("MIMIC_CONV_IM2COL");
        if (t.direct && !im2col_only && g.g > 1 && impl::direct_depthwise_supported(g))
            return ConvBackend::direct_depthwise;
        if (t.direct && !im2col_only && impl::direct_conv_supported(one_group(g))) return ConvBackend::direct;
    }
    (void)t;
    return g.g > 1 ? ConvBackend::grouped : ConvBackend::im2col_gemm;
}

namespace {

/// The direct backend's workspace when conv_backend picks it (created on first use), else null: the one
/// dispatch of forward and backward.
impl::DirectConvWorkspace* direct_backend(const ConvGeometry& g, const ConvTuning& t, ConvWorkspace& ws) {
    const ConvBackend which = conv_backend(g, t);
    if (which != ConvBackend::direct && which != ConvBackend::direct_depthwise) return nullptr;
    if (!ws.direct) ws.direct = std::make_shared<impl::DirectConvWorkspace>();
    return ws.direct.get();
}

} // namespace

void conv2d_forward_inference(const Matrix& x, const UnmanagedMatrix& W, const UnmanagedVector& b,
                              const ConvGeometry& g, const ConvTuning& t, ConvWorkspace& ws, float* y,
                              const ConvEpilogue& e) {
    if constexpr (impl::DirectConvAvailable<ExecSpace, MemSpace>::value) {
        static const bool im2col_only = env_is_one("MIMIC_CONV_IM2COL");
        if (t.direct && !im2col_only && impl::direct_pointwise_supported(g)) {
            const std::int64_t B = x.extent(0);
            MIMIC_REQUIRE(std::int64_t(x.extent(1)) == std::int64_t(g.c) * g.h * g.w,
                          "conv2d_forward_inference: input width ", x.extent(1), " is not ", g.c, "x", g.h,
                          "x", g.w);
            MIMIC_REQUIRE(e.ld == 0 || e.ld >= g.f * g.pixels(),
                          "conv2d_forward_inference: output row stride ", e.ld, " under ", g.f * g.pixels());
            const Region region("mimic::nn::conv::forward_1x1");
            if (!ws.direct) ws.direct = std::make_shared<impl::DirectConvWorkspace>();
            impl::direct_pointwise_forward(x.data(), B, W.data(), b.data(), g, *ws.direct, y, e);
            return;
        }
    }
    conv2d_forward(x, W, b, g, t, ws, y, e);
}

void conv_relu_mask(const Matrix& y, const Matrix& dy, const Matrix& dym) {
    const std::int64_t n = std::int64_t(y.size());
    MIMIC_REQUIRE(std::int64_t(dy.size()) == n && std::int64_t(dym.size()) == n, "conv_relu_mask: sizes ",
                  y.size(), ", ", dy.size(), ", ", dym.size());
    const float* yp = y.data();
    const float* dp = dy.data();
    float* mp = dym.data();
    Kokkos::parallel_for(
        "mimic::nn::conv::relu_mask", RangePolicy(0, n), KOKKOS_LAMBDA(const std::int64_t i) {
            const float g = dp[i];
            mp[i] = yp[i] > 0.0f ? g : 0.0f;
        });
}

void conv2d_forward(const Matrix& x, const UnmanagedMatrix& W, const UnmanagedVector& b,
                    const ConvGeometry& g, const ConvTuning& t, ConvWorkspace& ws, const Matrix& y,
                    bool relu) {
    MIMIC_REQUIRE(y.extent(0) == x.extent(0) && std::int64_t(y.extent(1)) == g.f * g.pixels(),
                  "conv2d_forward: output is ", y.extent(0), "x", y.extent(1), ", expected ", x.extent(0),
                  "x", g.f * g.pixels());
    conv2d_forward(x, W, b, g, t, ws, y.data(), ConvEpilogue{relu ? ConvAct::relu : ConvAct::none});
}

void conv2d_forward(const Matrix& x, const UnmanagedMatrix& W, const UnmanagedVector& b,
                    const ConvGeometry& g, const ConvTuning& t, ConvWorkspace& ws, float* y,
                    const ConvEpilogue& e) {
    const std::int64_t B = x.extent(0), P = g.pixels();
    const int F = g.f;
    MIMIC_REQUIRE(std::int64_t(x.extent(1)) == std::int64_t(g.c) * g.h * g.w, "conv2d_forward: input width ",
                  x.extent(1), " is not ", g.c, "x", g.h, "x", g.w);
    MIMIC_REQUIRE(e.ld == 0 || e.ld >= F * P, "conv2d_forward: output row stride ", e.ld, " under ", F * P);
    const Region region("mimic::nn::conv::forward");
    if (conv_backend(g, t) == ConvBackend::grouped) {
        grouped_conv_forward(x, W, b, g, y, e);
        return;
    }
    if constexpr (impl::DirectConvAvailable<ExecSpace, MemSpace>::value)
        if (auto* d = direct_backend(g, t, ws)) {
            if (conv_backend(g, t) == ConvBackend::direct_depthwise)
                impl::direct_depthwise_forward(x.data(), B, W.data(), b.data(), g, {t.direct_tiles}, *d, y,
                                               e);
            else if (g.g > 1)
                impl::direct_grouped_forward(x.data(), B, W.data(), b.data(), g, {t.direct_tiles}, *d, y, e);
            else
                impl::direct_conv_forward(x.data(), B, W.data(), b.data(), g, {t.direct_tiles}, *d, y, e);
            return;
        }
    const std::int64_t ld = e.ld > 0 ? e.ld : F * P;
    const bool epilogue = e.act != ConvAct::none || e.residual || e.post != ConvAct::none;
    const std::int64_t chunk = conv_chunk_rows(g, B, t.chunk_floats);
    for (std::int64_t b0 = 0; b0 < B; b0 += chunk) {
        const std::int64_t nb = std::min(chunk, B - b0), N = nb * P;
        const Matrix col = workspace(ws.col, "mimic::nn::conv::col", g.patch(), N);
        im2col(rows_of(x, b0, nb), g, col);
        if (nb == 1) {
            // One sample: its NCHW output [F, P] is the GEMM result itself; the bias goes in first.
            const Matrix yb(y + b0 * ld, F, P);
            Kokkos::parallel_for(
                "mimic::nn::conv::bias_fill", RangePolicy(0, F), KOKKOS_LAMBDA(const std::int64_t f) {
                    const float bias = b(f);
                    float* dst = yb.data() + f * P;
                    for (std::int64_t p = 0; p < P; ++p)
                        dst[p] = bias;
                });
            gemm("T", "N", 1.0f, W, col, 1.0f, yb);
            if (epilogue) {
                float* yp = yb.data();
                Kokkos::parallel_for(
                    "mimic::nn::conv::epilogue", RangePolicy(0, F * P),
                    KOKKOS_LAMBDA(const std::int64_t i) { yp[i] = e.apply(yp[i], b0, i); });
            }
            continue;
        }
        const Matrix out = workspace(ws.out, "mimic::nn::conv::out", F, N);
        gemm("T", "N", 1.0f, W, col, 0.0f, out);
        // [F, nb, P] -> [nb, F, P] with the bias and the epilogue: contiguous runs of P.
        Kokkos::parallel_for(
            "mimic::nn::conv::nchw_bias", RangePolicy(0, nb * F), KOKKOS_LAMBDA(const std::int64_t t) {
                const std::int64_t bi = t / F;
                const int f = int(t % F);
                const float bias = b(f);
                const float* src = out.data() + f * N + bi * P;
                float* dst = y + (b0 + bi) * ld + std::int64_t(f) * P;
                if (epilogue)
                    for (std::int64_t p = 0; p < P; ++p)
                        dst[p] = e.apply(src[p] + bias, b0 + bi, f * P + p);
                else
                    for (std::int64_t p = 0; p < P; ++p)
                        dst[p] = src[p] + bias;
            });
    }
}

void conv2d_backward(const Matrix& x, const Matrix& dy, const UnmanagedMatrix& W, const ConvGeometry& g,
                     const ConvTuning& t, ConvWorkspace& ws, const UnmanagedMatrix& dW,
                     const UnmanagedVector& db, const Matrix& dx) {
    const std::int64_t B = x.extent(0), P = g.pixels();
    const int F = g.f;
    MIMIC_REQUIRE(std::int64_t(x.extent(1)) == std::int64_t(g.c) * g.h * g.w, "conv2d_backward: input width ",
                  x.extent(1), " is not ", g.c, "x", g.h, "x", g.w);
    MIMIC_REQUIRE(dy.extent(0) == x.extent(0) && std::int64_t(dy.extent(1)) == F * P,
                  "conv2d_backward: dy is ", dy.extent(0), "x", dy.extent(1), ", expected ", B, "x", F * P);
    const bool want_dx = dx.extent(0) > 0;
    MIMIC_REQUIRE(!want_dx || (dx.extent(0) == x.extent(0) && dx.extent(1) == x.extent(1)),
                  "conv2d_backward: dx is ", dx.extent(0), "x", dx.extent(1), ", expected the input's shape");
    const Region region("mimic::nn::conv::backward");
    if constexpr (Kokkos::SpaceAccessibility<Kokkos::HostSpace, MemSpace>::accessible)
        conv_bias_grad_rows(dy, P, db);
    else
        conv_bias_grad_teams(dy, P, db);
    if constexpr (impl::DirectConvAvailable<ExecSpace, MemSpace>::value)
        if (conv_backend(g, t) == ConvBackend::direct_depthwise) {
            auto* d = direct_backend(g, t, ws);
            impl::direct_depthwise_backward(x.data(), dy.data(), B, W.data(), g, {t.direct_tiles}, *d,
                                            dW.data(), want_dx ? dx.data() : nullptr);
            return;
        }
    if constexpr (impl::DirectConvAvailable<ExecSpace, MemSpace>::value)
        if (auto* d = direct_backend(g, t, ws); d && g.g > 1 && g.s == 1) { // a group at a time
            impl::direct_grouped_backward(x.data(), dy.data(), B, W.data(), g, {t.direct_tiles}, *d,
                                          dW.data(), want_dx ? dx.data() : nullptr);
            return;
        }
    if (g.g > 1) { // grouped, or direct a group at a time at strides > 1: the grouped kernels' backward
        grouped_conv_backward(x, dy, W, g, dW, dx);
        return;
    }
    if constexpr (impl::DirectConvAvailable<ExecSpace, MemSpace>::value)
        if (auto* d = direct_backend(g, t, ws)) { // stride 1, or 2 (direct_conv_supported)
            impl::direct_conv_backward(x.data(), dy.data(), B, W.data(), g, {t.direct_tiles}, *d, dW.data(),
                                       want_dx ? dx.data() : nullptr);
            return;
        }
    const std::int64_t chunk = conv_chunk_rows(g, B, t.chunk_floats);
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
}

Conv2D::Conv2D(int index, std::string token, Shape in, int filters, int kernel, int stride, int pad,
               int groups)
    : Layer(index, std::move(token), in, in) {
    g_ = ConvGeometry{in.c, in.h, in.w, filters, kernel, stride, pad, groups};
    MIMIC_REQUIRE(groups >= 1 && in.c % groups == 0 && filters % groups == 0, "conv: ", groups,
                  " groups do not divide ", in.c, " channels and ", filters, " filters");
    out_ = Shape{filters, g_.oh(), g_.ow()};
}

std::vector<ParamDecl> Conv2D::param_decls() const {
    return {{"W", {g_.c / g_.g, g_.k, g_.k, g_.f}}, {"b", {g_.f}}};
}

void Conv2D::bind(const std::vector<UnmanagedVector>& params, const std::vector<UnmanagedVector>& grads) {
    W_ = UnmanagedMatrix(params[0].data(), g_.weight_rows(), g_.f);
    dW_ = UnmanagedMatrix(grads[0].data(), g_.weight_rows(), g_.f);
    b_ = params[1];
    db_ = grads[1];
}

void Conv2D::init(std::uint64_t seed, bool he) {
    init_weights(UnmanagedVector(W_.data(), W_.size()), g_.weight_rows(), std::int64_t(g_.f) * g_.k * g_.k,
                 he, seed);
    Kokkos::deep_copy(b_, 0.0f);
}

void Conv2D::forward(const Matrix& x, const Matrix& y, const ForwardContext& ctx) {
    MIMIC_REQUIRE(y.extent(0) == x.extent(0) && std::int64_t(y.extent(1)) == out_.size(), "conv: output is ",
                  y.extent(0), "x", y.extent(1), ", expected ", x.extent(0), "x", out_.size());
    ConvEpilogue e;
    e.act = act_;
    e.alpha = alpha_;
    if (ctx.inference)
        conv2d_forward_inference(x, W_, b_, g_, tuning_, ws_, y.data(), e);
    else
        conv2d_forward(x, W_, b_, g_, tuning_, ws_, y.data(), e);
}

void Conv2D::forward_into(const Matrix& x, float* y, ConvEpilogue e) {
    e.act = act_;
    e.alpha = alpha_;
    conv2d_forward_inference(x, W_, b_, g_, tuning_, ws_, y, e);
}

void Conv2D::backward(const Matrix& x, const Matrix& y, const Matrix& dy, const Matrix& dx) {
    MIMIC_REQUIRE(act_ == ConvAct::none || act_ == ConvAct::relu, "conv ", token_,
                  ": backward after an inference-only activation fusion");
    if (act_ == ConvAct::none) {
        conv2d_backward(x, dy, W_, g_, tuning_, ws_, dW_, db_, dx);
        return;
    }
    const Matrix dym = workspace(ws_.masked, "mimic::nn::conv::masked", dy.extent(0), dy.extent(1));
    conv_relu_mask(y, dy, dym);
    conv2d_backward(x, dym, W_, g_, tuning_, ws_, dW_, db_, dx);
}

} // namespace mimic::nn
