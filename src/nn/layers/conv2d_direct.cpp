// Direct convolution on x86 CPUs with AVX-512 (stride 1 and 2, host memory): pixel tiles (8 filters x 16-48
// outputs) or filter tiles (16-32 channels x up to 14 outputs), chosen per shape; forward, input gradient
// (the forward kernels with flipped weights; at stride 2 one pass per phase of dx) and weight gradient,
// split over the host execution space's threads. And the depthwise forward pass (any stride): grid or channel
// tiles; its backward on grid tiles (stride 1, 3x3 and 5x5) or channel tiles. At inference, 1x1 convolutions
// as sgemms with the epilogue in one pass over the outputs. conv2d.cpp's dispatch picks them where
// impl::DirectConvAvailable holds.
#include "mimic/nn/layers/impl/conv2d_direct.hpp"
#include "mimic/nn/layers/impl/activation_simd.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>

#if MIMIC_CONV_DIRECT
#include <immintrin.h>

namespace mimic::nn::impl {

namespace {

constexpr int kLanes = 16; // floats per AVX-512 register
constexpr int kFB = 8;     // filters per register tile

/// One direct pass: `cin` zero-padded input planes (each `plane` floats apart, slack included) and `fout`
/// outputs of oh x ow, computed on a grid of row stride wp (q = oh*wp + ow) whose columns ow >= this->ow
/// are discarded, so that a run of 16 outputs reads 16 contiguous inputs per tap. Stride 1: a row holds its
/// w inputs and then `pad` zeros, which serve as the right padding of this row and the left padding of the
/// next (a read left of column 0 lands in the previous row's zeros): wp = w + pad, not w + 2*pad. Stride
/// s > 1: the padded plane is split into s x s phase planes of hq x wp (phase (a, b) holds the padded rows
/// a, a + s, ... and columns b, b + s, ...), and tap (kh, kw) reads phase (kh % s, kw % s) shifted by
/// (kh / s, kw / s), again 16 contiguous inputs for 16 outputs.
struct Pass {
    int cin = 0, fout = 0, k = 0, pad = 0, wp = 0, hp = 0, oh = 0, ow = 0, pv = 1, s = 1;
    std::int64_t q = 0, qv = 0, plane = 0, lead = 0, phase = 0;
    std::int64_t off[64]; ///< tap t = kh*k + kw reads input q + off[t] (k <= 8)

    Pass(int cin_, int fout_, int k_, int h, int w, int pad_, int s_ = 1)
        : cin(cin_), fout(fout_), k(k_), pad(pad_), s(s_) {
        hp = h + 2 * pad;
        wp = s == 1 ? w + pad : (w + 2 * pad + s - 1) / s;
        lead = s == 1 ? pad : 0; // zeros before the first row, for its leftmost taps
        oh = (hp - k) / s + 1;
        ow = (w + 2 * pad - k) / s + 1; // <= wp since pad < k (s = 1), or by the phase split
        q = std::int64_t(oh) * wp;
        phase = std::int64_t((hp + s - 1) / s) * wp;
        // Pixel tile of 1-3 registers: the least padded work, favouring wider tiles (fewer weight loads).
        double best = 1e300;
        for (int v = 3; v >= 1; --v) {
            const std::int64_t t = std::int64_t(kLanes) * v, padded = (q + t - 1) / t * t;
            const double cost = double(padded) * (v == 1 ? 1.25 : v == 2 ? 1.08 : 1.0);
            if (cost < best) best = cost, pv = v, qv = padded;
        }
        std::int64_t far = 0; // the largest tap offset
        for (int kh = 0; kh < k; ++kh)
            for (int kw = 0; kw < k; ++kw) {
                off[kh * k + kw] = s == 1 ? std::int64_t(kh) * wp + kw - pad
                                          : ((kh % s) * s + kw % s) * phase + (kh / s) * wp + kw / s;
                far = std::max(far, off[kh * k + kw]);
            }
        const std::int64_t qmax = std::max<std::int64_t>(qv, (q + 47) / 48 * 48);
        const std::int64_t reach = s == 1 ? qmax + std::int64_t(k - 1) * wp + k : qmax + far + 1;
        // + one register: pad_planes stores the last row's tail register whole.
        const std::int64_t span = s == 1 ? std::int64_t(hp) * wp : std::int64_t(s) * s * phase;
        plane = (lead + std::max<std::int64_t>(span, reach) + 2 * kLanes - 1) / kLanes * kLanes;
    }
};

/// out[j][0 .. 16*PV) (+)= sum over c in [c0, c1) and taps t of w[(c*KK + t)*fout + j] * xp[c][off[t] + ...]
/// for FB filters; xp, w and out already point at the tile's first pixel and filter.
template <int FB, int PV, bool ACC>
MIMIC_AVX512 void forward_tile(const float* xp, const Pass& p, int c0, int c1, const float* w, float* out) {
    const int kk = p.k * p.k;
    __m512 acc[FB][PV];
    for (int j = 0; j < FB; ++j)
        for (int v = 0; v < PV; ++v)
            acc[j][v] = ACC ? _mm512_loadu_ps(out + j * p.qv + v * kLanes) : _mm512_setzero_ps();
    for (int c = c0; c < c1; ++c) {
        const float* xc = xp + c * p.plane + p.lead;
        const float* wc = w + std::int64_t(c) * kk * p.fout;
        for (int t = 0; t < kk; ++t) {
            const float* xs = xc + p.off[t];
            __m512 a[PV];
            for (int v = 0; v < PV; ++v)
                a[v] = _mm512_loadu_ps(xs + v * kLanes);
            const float* wt = wc + t * p.fout;
            for (int j = 0; j < FB; ++j) {
                const __m512 b = _mm512_set1_ps(wt[j]);
                for (int v = 0; v < PV; ++v)
                    acc[j][v] = _mm512_fmadd_ps(a[v], b, acc[j][v]);
            }
        }
    }
    for (int j = 0; j < FB; ++j)
        for (int v = 0; v < PV; ++v)
            _mm512_storeu_ps(out + j * p.qv + v * kLanes, acc[j][v]);
}

template <int PV, bool ACC>
MIMIC_AVX512 void forward_block(const float* xp, const Pass& p, int c0, int c1, const float* w, float* out) {
    int f0 = 0;
    for (; f0 + kFB <= p.fout; f0 += kFB)
        for (std::int64_t q0 = 0; q0 < p.qv; q0 += PV * kLanes)
            forward_tile<kFB, PV, ACC>(xp + q0, p, c0, c1, w + f0, out + f0 * p.qv + q0);
    for (; f0 < p.fout; ++f0)
        for (std::int64_t q0 = 0; q0 < p.qv; q0 += PV * kLanes)
            forward_tile<1, PV, ACC>(xp + q0, p, c0, c1, w + f0, out + f0 * p.qv + q0);
}

template <int PV>
MIMIC_AVX512 void forward_pass_pv(const float* xp, const Pass& p, const float* w, float* out) {
    // Channel blocks keep a tile's weights (cb*KK*8 floats) within about 16 KiB of L1.
    const int kk = p.k * p.k, cb = std::max(1, 16384 / (kk * kFB * 4));
    for (int c0 = 0; c0 < p.cin; c0 += cb) {
        const int c1 = std::min(p.cin, c0 + cb);
        if (c0 == 0)
            forward_block<PV, false>(xp, p, c0, c1, w, out);
        else
            forward_block<PV, true>(xp, p, c0, c1, w, out);
    }
}

/// out [fout][qv] = the direct convolution of the padded planes xp with w [cin*KK][fout].
MIMIC_AVX512 void forward_pass(const float* xp, const Pass& p, const float* w, float* out) {
    if (p.pv == 3)
        forward_pass_pv<3>(xp, p, w, out);
    else if (p.pv == 2)
        forward_pass_pv<2>(xp, p, w, out);
    else
        forward_pass_pv<1>(xp, p, w, out);
}

/// Filter-vector tiles, for small output grids with many channels: each register holds 16 output channels
/// of one output pixel, an input value is broadcast, and a tile covers R rows x NP consecutive outputs of
/// the compact grid (no discarded columns) for 32 or 16 channels. Weights are packed per block of channels,
/// [block][c*KK + t][32 or 16] (zero past the last channel): `blocks` of fvw, then a tail block of 16 when
/// 16 channels or fewer remain. Outputs land as [pixel][ldf].
struct FilterPlan {
    int fv = 1, fvw = kLanes, blocks = 1, tail = 0, np = 1, r = 1;
    std::int64_t ldf = kLanes;
};

constexpr int kTilePixels = 14; // R*NP*FV <= 28 accumulators, leaving registers for the FV weights

FilterPlan filter_plan(const Pass& p) {
    FilterPlan f;
    f.fv = p.fout > kLanes ? 2 : 1;
    f.fvw = f.fv * kLanes;
    f.blocks = p.fout / f.fvw;
    const int rest = p.fout - f.blocks * f.fvw;
    if (rest > kLanes)
        ++f.blocks;
    else if (rest > 0)
        f.tail = kLanes;
    f.ldf = std::int64_t(f.blocks) * f.fvw + f.tail;
    const int n = (p.ow + kTilePixels - 1) / kTilePixels;
    f.np = (p.ow + n - 1) / n;
    // Rows per tile: the fewest outputs computed (overlapping last tiles recompute some), counting about
    // one FMA's worth of loop and weight loads per tap and tile.
    double best = 1e300;
    for (int r = 1; r <= 4 && r * f.np <= kTilePixels && r <= p.oh; ++r) {
        const double rows = double((p.oh + r - 1) / r * r);
        const double cost = rows * f.np * (1.0 + 1.0 / (r * f.np));
        if (cost < best) best = cost, f.r = r;
    }
    return f;
}

/// Where a forward filter pass stores its outputs directly (rather than as [pixel][ldf] for unpack_outputs):
/// one sample's planes y [fout][P] (NCHW), bias, residual (null: none) and epilogue e applied; filter_pass
/// moves y, bias and residual to each tile's first channel and pixel and sets n, the channels from there.
struct TileSink {
    float* y = nullptr;
    const float* bias = nullptr;
    const float* residual = nullptr;
    const ConvEpilogue* e = nullptr;
    std::int64_t P = 0;
    int n = 0;
};

/// r[i] lane j -> r[j] lane i (defined with the depthwise kernels below).
MIMIC_AVX512 inline void transpose16(__m512 r[16]);

/// Stores one tile row's np outputs of 16 channels (pix[i]: pixel i's channels) into the sink's planes at
/// channel c0 and pixel offset at: transposed in registers, plus the bias, through the epilogue (the
/// arithmetic of epilogue_row) under a mask of np lanes.
MIMIC_AVX512 inline void sink_row(__m512 pix[kLanes], int np, const TileSink& k, int c0, std::int64_t at) {
    transpose16(pix);
    const __mmask16 m = __mmask16((1u << np) - 1);
    const int n = std::min(kLanes, k.n - c0);
    for (int j = 0; j < n; ++j) {
        const std::int64_t o = std::int64_t(c0 + j) * k.P + at;
        __m512 v =
            simd::activate(_mm512_add_ps(pix[j], _mm512_set1_ps(k.bias[c0 + j])), k.e->act, k.e->alpha);
        if (k.residual) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, k.residual + o));
        _mm512_mask_storeu_ps(k.y + o, m, simd::activate(v, k.e->post, 0.0f));
    }
}

/// out[(r*ow + i)*ldf + v*16 + j] = sum over c < cin and taps t in [t0, t1) of xp[c][r*wp + i + off[t]] *
/// w[(c*KK + t)*FV*16 + v*16 + j] for the tile's R x NP outputs; xp points at the tile's first grid position
/// (lead included), w at the packed block, out at the tile's first output. The taps outside [t0, t1) read
/// only padding rows for this tile: skipping them leaves every sum bitwise the same. With a sink, the outputs
/// go there (sink_row) instead of out.
template <int FV, int R, int NP>
MIMIC_AVX512 void filter_tile(const float* xp, const Pass& p, const float* w, float* out, int ow,
                              std::int64_t ldf, int t0, int t1, const TileSink* sink) {
    const float* const wb = w;
    if (sink && sink->residual) // the residual rows come in while the tile computes
        for (int j = 0; j < std::min(FV * kLanes, sink->n); ++j)
            for (int r = 0; r < R; ++r)
                _mm_prefetch(
                    reinterpret_cast<const char*>(sink->residual + j * sink->P + std::int64_t(r) * ow),
                    _MM_HINT_T0);
    __m512 acc[R][NP][FV];
    for (int r = 0; r < R; ++r)
        for (int i = 0; i < NP; ++i)
            for (int v = 0; v < FV; ++v)
                acc[r][i][v] = _mm512_setzero_ps();
    const int kk = p.k * p.k;
    for (int c = 0; c < p.cin; ++c) {
        const float* xc = xp + c * p.plane;
        w = wb + (std::int64_t(c) * kk + t0) * FV * kLanes;
        for (int t = t0; t < t1; ++t, w += FV * kLanes) {
            __m512 b[FV];
            for (int v = 0; v < FV; ++v)
                b[v] = _mm512_loadu_ps(w + v * kLanes);
            const float* xs = xc + p.off[t];
            for (int r = 0; r < R; ++r)
                for (int i = 0; i < NP; ++i) {
                    const __m512 a = _mm512_set1_ps(xs[r * p.wp + i]);
                    for (int v = 0; v < FV; ++v)
                        acc[r][i][v] = _mm512_fmadd_ps(a, b[v], acc[r][i][v]);
                }
        }
    }
    if (sink) {
        for (int r = 0; r < R; ++r)
            for (int v = 0; v < FV && v * kLanes < sink->n; ++v) {
                __m512 pix[kLanes];
                for (int i = 0; i < kLanes; ++i)
                    pix[i] = i < NP ? acc[r][i][v] : _mm512_setzero_ps();
                sink_row(pix, NP, *sink, v * kLanes, std::int64_t(r) * ow);
            }
        return;
    }
    for (int r = 0; r < R; ++r)
        for (int i = 0; i < NP; ++i)
            for (int v = 0; v < FV; ++v)
                _mm512_storeu_ps(out + (std::int64_t(r) * ow + i) * ldf + v * kLanes, acc[r][i][v]);
}

using TileFn = void (*)(const float*, const Pass&, const float*, float*, int, std::int64_t, int, int,
                        const TileSink*);

template <int FV, int R, int NP>
constexpr TileFn tile_fn() {
    if constexpr (R * NP <= kTilePixels)
        return &filter_tile<FV, R, NP>;
    else
        return nullptr;
}

template <int FV, int R, std::size_t... I>
constexpr std::array<TileFn, kTilePixels> tile_row(std::index_sequence<I...>) {
    return {tile_fn<FV, R, int(I) + 1>()...};
}

/// The tile kernels by [FV - 1][R - 1][NP - 1].
const std::array<TileFn, kTilePixels> kTiles[2][4] = {
    {tile_row<1, 1>(std::make_index_sequence<kTilePixels>()),
     tile_row<1, 2>(std::make_index_sequence<kTilePixels>()),
     tile_row<1, 3>(std::make_index_sequence<kTilePixels>()),
     tile_row<1, 4>(std::make_index_sequence<kTilePixels>())},
    {tile_row<2, 1>(std::make_index_sequence<kTilePixels>()),
     tile_row<2, 2>(std::make_index_sequence<kTilePixels>()),
     tile_row<2, 3>(std::make_index_sequence<kTilePixels>()),
     tile_row<2, 4>(std::make_index_sequence<kTilePixels>())}};

/// dst[b*rows*fvw + r*width + j] = src[r*cols + b*fvw + j] (0 past cols), block b of `width` fvw, or 16
/// for the tail block: a [rows][cols] matrix in the plan's channel blocks.
void pack_blocks(const float* src, std::int64_t rows, int cols, const FilterPlan& f, float* dst) {
    for (int b = 0; b < f.blocks + (f.tail > 0); ++b) {
        const int width = b < f.blocks ? f.fvw : f.tail;
        const int n = std::min(width, cols - b * f.fvw); // columns of src in this block
        for (std::int64_t r = 0; r < rows; ++r) {
            float* d = dst + b * rows * f.fvw + r * width;
            const float* s = src + r * cols + b * f.fvw;
            std::copy(s, s + n, d);
            std::fill(d + n, d + width, 0.0f);
        }
    }
}

/// out [oh*ow][ldf] = the convolution of the padded planes xp with the packed weights wpk (no bias); or,
/// with a sink, its planes = the epilogue of that convolution plus the bias (out unused). Tiles go row by
/// row; the last tile of a row (and the last row of tiles) is shifted back to end at the grid's edge,
/// recomputing a few outputs (the same values: the sink's residual does not overlap its outputs).
void filter_pass(const float* xp, const Pass& p, const FilterPlan& f, const float* wpk, float* out,
                 const TileSink* sink = nullptr) {
    const std::int64_t rows = std::int64_t(p.cin) * p.k * p.k;
    for (int b = 0; b < f.blocks + (f.tail > 0); ++b) {
        const TileFn fn = kTiles[b < f.blocks ? f.fv - 1 : 0][f.r - 1][f.np - 1];
        for (int r0 = 0; r0 < p.oh; r0 += f.r) {
            const int r = std::min(r0, p.oh - f.r);
            // Filter rows kh that reach the image (rows pad .. hp - pad - 1 of the grid) from the tile's
            // rows.
            const int kh0 = p.s > 1 ? 0 : std::max(0, p.pad - r - f.r + 1);
            const int kh1 = p.s > 1 ? p.k : std::min(p.k, p.hp - p.pad - r);
            for (int c0 = 0; c0 < p.ow; c0 += f.np) {
                const int c = std::min(c0, p.ow - f.np);
                const std::int64_t pixel = std::int64_t(r) * p.ow + c;
                if (sink) {
                    TileSink k = *sink;
                    const std::int64_t at = b * f.fvw * k.P + pixel;
                    k.y += at;
                    k.bias += b * f.fvw;
                    if (k.residual) k.residual += at;
                    k.n = p.fout - b * f.fvw;
                    fn(xp + p.lead + std::int64_t(r) * p.wp + c, p, wpk + b * rows * f.fvw, nullptr, p.ow,
                       f.ldf, kh0 * p.k, kh1 * p.k, &k);
                    continue;
                }
                fn(xp + p.lead + std::int64_t(r) * p.wp + c, p, wpk + b * rows * f.fvw,
                   out + pixel * f.ldf + b * f.fvw, p.ow, f.ldf, kh0 * p.k, kh1 * p.k, nullptr);
            }
        }
    }
}

/// dst [n][P] = out [P][ldf] transposed (plus bias[c], then rectified, when BIAS and RELU).
template <bool BIAS, bool RELU>
void unpack_outputs(const float* out, std::int64_t P, int n, std::int64_t ldf, const float* bias,
                    float* dst) {
    for (int c = 0; c < n; ++c) {
        const float bc = BIAS ? bias[c] : 0.0f;
        const float* s = out + c;
        float* d = dst + c * P;
        for (std::int64_t i = 0; i < P; ++i) {
            float v = s[i * ldf];
            if (BIAS) v += bc;
            if (RELU) v = v > 0.0f ? v : 0.0f;
            d[i] = v;
        }
    }
}

/// dw[(c*KK + t)*F + f] += sum over the nb samples and grid positions q of xp[s][c][q + off[t]] *
/// dt[s][q][f], for TB taps from t0 and FV*16 filters from f0. dt is dy transposed to [q][f16] on the padded
/// grid (zero at the discarded columns and at f >= F), so the accumulators are rows of dw and need no lane
/// sums. Only the output rows [i0, i1) and columns < ow go in: the others add exact zeros (discarded
/// columns, or inputs on padding rows for every tap of the tile).
template <int TB, int FV>
MIMIC_AVX512 void weight_tile(const float* xp, const float* dt, int nb, std::int64_t xs, std::int64_t ds,
                              int f16, const Pass& p, int c, int t0, int f0, int i0, int i1, float* dw) {
    __m512 acc[TB][FV];
    for (int i = 0; i < TB; ++i)
        for (int v = 0; v < FV; ++v)
            acc[i][v] = _mm512_setzero_ps();
    for (int s = 0; s < nb; ++s) {
        const float* x = xp + s * xs + c * p.plane + p.lead;
        const float* d = dt + s * ds + f0;
        for (std::int64_t q0 = std::int64_t(i0) * p.wp; q0 < std::int64_t(i1) * p.wp; q0 += p.wp)
            for (std::int64_t q = q0; q < q0 + p.ow; ++q) {
                __m512 g[FV];
                for (int v = 0; v < FV; ++v)
                    g[v] = _mm512_loadu_ps(d + q * f16 + v * kLanes);
                for (int i = 0; i < TB; ++i) {
                    const __m512 a = _mm512_set1_ps(x[q + p.off[t0 + i]]);
                    for (int v = 0; v < FV; ++v)
                        acc[i][v] = _mm512_fmadd_ps(a, g[v], acc[i][v]);
                }
            }
    }
    const int kk = p.k * p.k;
    for (int i = 0; i < TB; ++i)
        for (int v = 0; v < FV; ++v) {
            const int f = f0 + v * kLanes;
            if (f >= p.fout) break;
            const __mmask16 m =
                p.fout - f >= kLanes ? __mmask16(0xffff) : __mmask16((1u << (p.fout - f)) - 1);
            float* row = dw + (std::int64_t(c) * kk + t0 + i) * p.fout + f;
            _mm512_mask_storeu_ps(row, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, row), acc[i][v]));
        }
}

template <int TB>
MIMIC_AVX512 void weight_taps(const float* xp, const float* dt, int nb, std::int64_t xs, std::int64_t ds,
                              int f16, const Pass& p, int c, int t0, int i0, int i1, float* dw) {
    int f0 = 0;
    for (; f0 + 2 * kLanes <= f16; f0 += 2 * kLanes)
        weight_tile<TB, 2>(xp, dt, nb, xs, ds, f16, p, c, t0, f0, i0, i1, dw);
    for (; f0 < f16; f0 += kLanes)
        weight_tile<TB, 1>(xp, dt, nb, xs, ds, f16, p, c, t0, f0, i0, i1, dw);
}

using WeightFn = void (*)(const float*, const float*, int, std::int64_t, std::int64_t, int, const Pass&, int,
                          int, int, int, float*);

template <std::size_t... I>
constexpr std::array<WeightFn, sizeof...(I)> weight_table(std::index_sequence<I...>) {
    return {&weight_taps<int(I) + 1>...};
}

constexpr int kWeightTaps = 12; // taps per weight tile: 24 accumulators with two filter registers
/// weight_taps<TB> by TB - 1.
const std::array<WeightFn, kWeightTaps> kWeightTiles = weight_table(std::make_index_sequence<kWeightTaps>());

/// The weight gradient of channel c: tiles of whole filter rows (up to 12 taps), each over the output rows
/// whose inputs for those filter rows are not all padding.
void weight_channel(const float* xp, const float* dt, int nb, std::int64_t xs, std::int64_t ds, int f16,
                    const Pass& p, int c, float* dw) {
    const int rows = std::max(1, std::min(p.k, kWeightTaps / p.k));
    for (int kh0 = 0; kh0 < p.k; kh0 += rows) {
        const int n = std::min(rows, p.k - kh0);
        // Stride 1: the output rows whose inputs under filter rows kh0 .. kh0 + n - 1 are not all padding;
        // strided (phase planes): every row (the padding rows add exact zeros).
        const int i0 = p.s > 1 ? 0 : std::max(0, p.pad - kh0 - n + 1);
        const int i1 = p.s > 1 ? p.oh : std::min(p.oh, p.hp - p.pad - kh0);
        kWeightTiles[n * p.k - 1](xp, dt, nb, xs, ds, f16, p, c, kh0 * p.k, i0, i1, dw); // K <= 8
    }
}

/// d[0 .. n) = s[0 .. n) (+ b when BIAS, then v > 0 ? v : 0 when RELU, as relu_forward), in
/// registers of 16. The tail register is stored whole when `spill` (AMD's masked stores are slow): its
/// lanes past n hold zeros (ZERO) or garbage, so the caller overwrites or wants that memory afterwards;
/// otherwise under a mask.
template <bool BIAS, bool RELU>
MIMIC_AVX512 inline __m512 bias_relu(__m512 v, __m512 b) {
    if (BIAS) v = _mm512_add_ps(v, b);
    if (RELU)
        v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ), v); // v > 0 ? v : 0
    return v;
}

template <bool BIAS, bool ZERO, bool RELU = false>
MIMIC_AVX512 inline void copy_row(const float* s, float* d, int n, float b, bool spill) {
    const __m512 bv = _mm512_set1_ps(b);
    int j = 0;
    for (; j + kLanes <= n; j += kLanes)
        _mm512_storeu_ps(d + j, bias_relu<BIAS, RELU>(_mm512_loadu_ps(s + j), bv));
    if (j == n) return;
    const __mmask16 m = __mmask16((1u << (n - j)) - 1);
    const __m512 v =
        bias_relu<BIAS, RELU>(ZERO ? _mm512_maskz_loadu_ps(m, s + j) : _mm512_loadu_ps(s + j), bv);
    if (spill)
        _mm512_storeu_ps(d + j, v);
    else
        _mm512_mask_storeu_ps(d + j, m, v);
}

/// The first n lanes (all 16 for n >= 16; defined with the depthwise kernels below).
__mmask16 first_lanes(std::int64_t n);

/// A row's even and odd columns: ev[k] = row[2k], od[k] = row[2k + 1] for the columns < w, 32 inputs at a
/// time through two permutes, the stores masked at the row's end (nothing past the last column's place).
MIMIC_AVX512 void split_columns(const float* row, int w, float* ev, float* od) {
    const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    for (int j = 0; j < w; j += 2 * kLanes) {
        const int n = std::min(2 * kLanes, w - j);
        const __m512 lo = _mm512_maskz_loadu_ps(first_lanes(n), row + j);
        const __m512 hi = n > kLanes ? _mm512_maskz_loadu_ps(first_lanes(n - kLanes), row + j + kLanes)
                                     : _mm512_setzero_ps();
        _mm512_mask_storeu_ps(ev + j / 2, first_lanes((n + 1) / 2), _mm512_permutex2var_ps(lo, ie, hi));
        _mm512_mask_storeu_ps(od + j / 2, first_lanes(n / 2), _mm512_permutex2var_ps(lo, io, hi));
    }
}

/// Copies sample planes [n][h][w] into the interiors of a strided pass' zero-bordered phase planes (stride
/// 2: each row's columns split in registers, split_columns).
MIMIC_AVX512 void phase_planes(const float* src, int n, int h, int w, const Pass& p, float* dst) {
    const int s = p.s;
    for (int c = 0; c < n; ++c)
        for (int i = 0; i < h; ++i) {
            const int pi = i + p.pad;
            const float* row = src + (std::int64_t(c) * h + i) * w;
            float* d = dst + c * p.plane + std::int64_t(pi % s) * s * p.phase + std::int64_t(pi / s) * p.wp;
            if (s == 2) { // even inputs to column phase pad % 2 from column pad / 2, odd ones to the other
                split_columns(row, w, d + (p.pad % 2) * p.phase + p.pad / 2,
                              d + ((p.pad + 1) % 2) * p.phase + (p.pad + 1) / 2);
                continue;
            }
            // Column phase b holds the inputs j with (j + pad) % s == b, at column (j + pad) / s.
            // (j + pad) / s steps by one with j: no division per input.
            for (int b = 0; b < s; ++b) {
                const int j0 = (b - p.pad % s + s) % s;
                float* db = d + b * p.phase + (j0 + p.pad) / s;
                for (int j = j0; j < w; j += s)
                    *db++ = row[j];
            }
        }
}

/// Copies sample planes [n][h][w] into the interior of a pass' zero-bordered planes. Rows go in order and a
/// row's tail register carries zeros past w, into its zero columns and the next row, written after it (the
/// plane's slack absorbs the last one).
MIMIC_AVX512 void pad_planes(const float* src, int n, int h, int w, const Pass& p, float* dst) {
    if (p.s > 1) {
        phase_planes(src, n, h, w, p, dst);
        return;
    }
    for (int c = 0; c < n; ++c) {
        float* d = dst + c * p.plane + p.lead + std::int64_t(p.pad) * p.wp;
        const float* s = src + std::int64_t(c) * h * w;
        for (int i = 0; i < h; ++i)
            copy_row<false, true>(s + std::int64_t(i) * w, d + std::int64_t(i) * p.wp, w, 0.0f, true);
    }
}

/// dst [n][oh][ow] = out [n][qv] on the padded grid, dropping the columns ow >= p.ow (plus bias[c], then
/// rectified, when BIAS and RELU). Rows go in order; a row's tail register spills into the rows after it,
/// which overwrite it, unless it would pass the end of dst (out has one register of slack for the tail
/// loads).
template <bool BIAS, bool RELU>
MIMIC_AVX512 void unpad_outputs(const float* out, const Pass& p, const float* bias, float* dst) {
    const std::int64_t end = std::int64_t(p.fout) * p.oh * p.ow;
    for (int c = 0; c < p.fout; ++c)
        for (int i = 0; i < p.oh; ++i) {
            const float* s = out + c * p.qv + std::int64_t(i) * p.wp;
            const std::int64_t at = (std::int64_t(c) * p.oh + i) * p.ow;
            const bool spill = at + (p.ow + kLanes - 1) / kLanes * kLanes <= end;
            copy_row<BIAS, false, RELU>(s, dst + at, p.ow, BIAS ? bias[c] : 0.0f, spill);
        }
}

/// d[0 .. n) = the epilogue e of s[0 .. n) + b, with the residual row r (null: none), under masks (no
/// spill: r may be the next row of d's neighbour). The arithmetic of ConvEpilogue::apply (its activations
/// as simd::activate computes them).
MIMIC_AVX512 void epilogue_row(const float* s, float* d, int n, float b, const float* r,
                               const ConvEpilogue& e) {
    const __m512 bv = _mm512_set1_ps(b);
    for (int j = 0; j < n; j += kLanes) {
        const __mmask16 m = n - j >= kLanes ? __mmask16(0xffff) : __mmask16((1u << (n - j)) - 1);
        __m512 v = simd::activate(_mm512_add_ps(_mm512_maskz_loadu_ps(m, s + j), bv), e.act, e.alpha);
        if (r) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, r + j));
        _mm512_mask_storeu_ps(d + j, m, simd::activate(v, e.post, 0.0f));
    }
}

/// d[0 .. n) = the epilogue e of s[0 .. n) (which holds conv + bias, and `done` applied: none or e.act),
/// with the residual row r (null: none); in place when s == d. The arithmetic of ConvEpilogue::apply (its
/// activations as simd::activate computes them).
MIMIC_AVX512 void epilogue_span(const float* s, float* d, std::int64_t n, const float* r, ConvAct done,
                                const ConvEpilogue& e) {
    for (std::int64_t j = 0; j < n; j += kLanes) {
        const __mmask16 m = n - j >= kLanes ? __mmask16(0xffff) : __mmask16((1u << (n - j)) - 1);
        __m512 v = _mm512_maskz_loadu_ps(m, s + j);
        if (done != e.act) v = simd::activate(v, e.act, e.alpha);
        if (r) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, r + j));
        _mm512_mask_storeu_ps(d + j, m, simd::activate(v, e.post, 0.0f));
    }
}

/// unpad_outputs with any epilogue: dst [n][oh][ow] of sample s (its residual row at e.residual +
/// s*e.residual_ld) = the epilogue of out [n][qv] + bias.
MIMIC_AVX512 void unpad_outputs_epilogue(const float* out, const Pass& p, const float* bias,
                                         const ConvEpilogue& e, std::int64_t s, float* dst) {
    const float* res = e.residual ? e.residual + s * e.residual_ld : nullptr;
    for (int c = 0; c < p.fout; ++c)
        for (int i = 0; i < p.oh; ++i) {
            const std::int64_t at = (std::int64_t(c) * p.oh + i) * p.ow;
            epilogue_row(out + c * p.qv + std::int64_t(i) * p.wp, dst + at, p.ow, bias[c],
                         res ? res + at : nullptr, e);
        }
}

float* grow(std::vector<float>& v, std::int64_t n) {
    if (std::int64_t(v.size()) < n) v.resize(std::size_t(n));
    return v.data();
}

/// Parts to split n independent items into: `parts`, or one per thread of the host execution space when
/// 0; at most n.
int host_parts(std::int64_t n, int parts) {
    const std::int64_t want = parts > 0 ? parts : int(Kokkos::DefaultHostExecutionSpace().concurrency());
    return int(std::max<std::int64_t>(1, std::min(want, n)));
}

/// Items [begin, end) of part `part` when n items are split into `parts` nearly equal contiguous parts (the
/// split of par::split_range, whose header nn does not include: it brings MPI).
std::pair<std::int64_t, std::int64_t> part_range(std::int64_t n, int parts, int part) {
    const std::int64_t base = n / parts, rem = n % parts;
    const std::int64_t begin = part * base + std::min<std::int64_t>(part, rem);
    return {begin, begin + base + (part < rem ? 1 : 0)};
}

/// Runs fn(part) for part in [0, parts) on the host execution space, each part on one thread.
template <class Fn>
void for_each_part(const char* name, int parts, const Fn& fn) {
    Kokkos::parallel_for(name, Kokkos::RangePolicy<Kokkos::DefaultHostExecutionSpace>(0, parts),
                         [&](const std::int64_t part) { fn(int(part)); });
}

/// Whether filter tiles beat pixel tiles for this pass (with `which` forcing one: 1 pixel, 2 filter tiles):
/// the outputs each computes, pixel tiles counting the discarded grid columns and their register
/// padding, filter tiles the channel padding, overlapping tiles and the transposition of the outputs.
bool use_filter_tiles(const Pass& p, const FilterPlan& f, int which) {
    if (which != 0) return which == 2;
    const double pv = p.pv == 1 ? 1.25 : p.pv == 2 ? 1.08 : 1.0;
    const double pixel = double(p.qv) * (p.fout / kFB * kFB + (p.fout % kFB) * 2.0) * pv;
    double rows = 0; // tile rows x the filter rows they use (filter_pass skips those on padding only)
    for (int r0 = 0; r0 < p.oh; r0 += f.r) {
        const int r = std::min(r0, p.oh - f.r);
        rows += p.s > 1
                    ? f.r
                    : f.r * double(std::min(p.k, p.hp - p.pad - r) - std::max(0, p.pad - r - f.r + 1)) / p.k;
    }
    const double tiles = rows * ((p.ow + f.np - 1) / f.np * f.np);
    const double filter = tiles * double(f.ldf) * (1.0 + 1.0 / (f.r * f.np)) +
                          double(p.oh) * p.ow * p.fout * 4.0 / (double(p.cin) * p.k * p.k);
    return filter < pixel;
}

/// One thread's part of the forward pass: samples [s0, s1) through its own padded planes and outputs.
void forward_samples(const float* x, std::int64_t s0, std::int64_t s1, const float* W, const float* b,
                     const ConvGeometry& g, const Pass& p, const FilterPlan& fp, const float* wpk,
                     DirectConvScratch& ws, float* y, const ConvEpilogue& e) {
    const bool filter = wpk != nullptr;
    float* xp = grow(ws.in, g.c * p.plane);
    float* out = filter ? nullptr : grow(ws.out, g.f * p.qv + kLanes);
    std::fill(xp, xp + g.c * p.plane, 0.0f);
    const std::int64_t in = std::int64_t(g.c) * g.h * g.w,
                       o = e.ld > 0 ? e.ld : std::int64_t(g.f) * g.pixels();
    // Bias and ReLU (or nothing) take the register-tiled copies below, anything else the epilogue rows
    // (filter tiles: their stores apply the whole epilogue, sink_row).
    const bool general =
        e.residual || e.post != ConvAct::none || (e.act != ConvAct::none && e.act != ConvAct::relu);
    const bool relu = e.act == ConvAct::relu;
    for (std::int64_t s = s0; s < s1; ++s) {
        pad_planes(x + s * in, g.c, g.h, g.w, p, xp);
        if (filter) {
            // The tiles write the NCHW planes through the epilogue themselves: no [pixel][ldf] pass.
            TileSink k;
            k.y = y + s * o;
            k.bias = b;
            k.residual = e.residual ? e.residual + s * e.residual_ld : nullptr;
            k.e = &e;
            k.P = g.pixels();
            filter_pass(xp, p, fp, wpk, nullptr, &k);
            continue;
        }
        forward_pass(xp, p, W, out);
        if (general)
            unpad_outputs_epilogue(out, p, b, e, s, y + s * o);
        else if (relu)
            unpad_outputs<true, true>(out, p, b, y + s * o);
        else
            unpad_outputs<true, false>(out, p, b, y + s * o);
    }
}

/// The input gradient of samples [s0, s1) on one thread: dy padded by K-1-p through the forward kernels
/// with the flipped filters wt (or their packed blocks wpk).
void input_grad_samples(const float* dy, std::int64_t s0, std::int64_t s1, const ConvGeometry& g,
                        const Pass& bw, const FilterPlan& bp, const float* wt, const float* wpk,
                        DirectConvScratch& ws, float* dx) {
    const int C = g.c, F = g.f;
    float* dp = grow(ws.grad_padded, F * bw.plane);
    float* out = grow(ws.out, wpk ? std::int64_t(g.h) * g.w * bp.ldf : C * bw.qv + kLanes);
    std::fill(dp, dp + F * bw.plane, 0.0f);
    const std::int64_t in = std::int64_t(C) * g.h * g.w, o = std::int64_t(F) * g.pixels();
    for (std::int64_t s = s0; s < s1; ++s) {
        pad_planes(dy + s * o, F, g.oh(), g.ow(), bw, dp);
        if (wpk) {
            filter_pass(dp, bw, bp, wpk, out);
            unpack_outputs<false, false>(out, std::int64_t(g.h) * g.w, C, bp.ldf, nullptr, dx + s * in);
            continue;
        }
        forward_pass(dp, bw, wt, out);
        unpad_outputs<false, false>(out, bw, nullptr, dx + s * in);
    }
}

/// The depthwise kernels' plan (G = C = F, any stride): planes zero-padded and split into s x s phase
/// planes (phase (a, b) holds the padded inputs of rows a, a + s, ... and columns b, b + s, ...), so that the
/// outputs on a grid q = oh*wq + ow (columns ow >= OW discarded) read, for tap t, 16 contiguous inputs at
/// q + off[t]. Or, with channel tiles, the inputs transposed to [hpad][wpad][C16] and 16 channels a register.
struct DepthPlan {
    int k = 1, s = 1, p = 0, hpad = 0, wpad = 0, hq = 0, wq = 0, oh = 0, ow = 0, c16 = 0;
    std::int64_t phase = 0, plane = 0, qv = 0;
    std::int64_t off[64];  ///< tap t = kh*k + kw reads the phase planes at q + off[t] (k <= 8)
    bool channels = false; ///< channel tiles rather than grid tiles

    DepthPlan(const ConvGeometry& g, int which) : k(g.k), s(g.s), p(g.p) {
        hpad = g.h + 2 * p;
        wpad = g.w + 2 * p;
        hq = (hpad + s - 1) / s;
        wq = (wpad + s - 1) / s;
        oh = g.oh();
        ow = g.ow();
        c16 = (g.c + kLanes - 1) / kLanes * kLanes;
        phase = std::int64_t(hq) * wq;
        qv = (std::int64_t(oh) * wq + kLanes - 1) / kLanes * kLanes;
        std::int64_t reach = 0;
        for (int kh = 0; kh < k; ++kh)
            for (int kw = 0; kw < k; ++kw) {
                off[kh * k + kw] = ((kh % s) * s + kw % s) * phase + (kh / s) * wq + kw / s;
                reach = std::max(reach, off[kh * k + kw]);
            }
        plane = std::max<std::int64_t>(std::int64_t(s) * s * phase, reach + qv) + kLanes;
        // Grid tiles waste the discarded columns and, for s > 1, scatter the inputs over the phases one by
        // one; channel tiles transpose 16 channels x 16 pixels in registers (gather and scatter for planes
        // under 16 pixels). Measured with bench_conv --tiles 1 against --tiles 2 (forward, batch 64, load
        // 8-11 on 2 cores): grid tiles won at stride 1 on 16x16 planes (1.5x), channel tiles on 8x8 (3x3
        // 1.05x, 5x5 1.5x), smaller planes (2-20x) and at stride 2 (2-5x).
        channels = which == 0 ? !(s == 1 && ow > 8) : which == 2;
    }
};

/// One channel on grid tiles: xp its phase planes, out [qv] = sum over taps of w[t*C] * xp[q + off[t]],
/// the taps in order from 0 (fused multiply-adds).
/// KK taps a compile-time constant (weights in registers), or 0: d.k * d.k.
template <int KK>
MIMIC_AVX512 void depthwise_grid_taps(const float* xp, const DepthPlan& d, const float* w, int C,
                                      float* out) {
    const int kk = KK > 0 ? KK : d.k * d.k;
    __m512 wv[KK > 0 ? KK : 64];
    for (int t = 0; t < kk; ++t)
        wv[t] = _mm512_set1_ps(w[std::int64_t(t) * C]);
    for (std::int64_t q = 0; q < d.qv; q += kLanes) {
        __m512 acc = _mm512_setzero_ps();
        for (int t = 0; t < kk; ++t)
            acc = _mm512_fmadd_ps(_mm512_loadu_ps(xp + q + d.off[t]), wv[t], acc);
        _mm512_storeu_ps(out + q, acc);
    }
}

MIMIC_AVX512 void depthwise_grid(const float* xp, const DepthPlan& d, const float* w, int C, float* out) {
    if (d.k == 3)
        depthwise_grid_taps<9>(xp, d, w, C, out);
    else if (d.k == 5)
        depthwise_grid_taps<25>(xp, d, w, C, out);
    else
        depthwise_grid_taps<0>(xp, d, w, C, out);
}

/// v + b, then the depthwise kernels' activation ACT: 0 none, 1 the ReLU, 2 simd::activate with a, alpha.
template <int ACT>
MIMIC_AVX512 inline __m512 bias_act(__m512 v, __m512 b, ConvAct a, float alpha) {
    v = bias_relu<true, ACT == 1>(v, b);
    return ACT == 2 ? simd::activate(v, a, alpha) : v;
}

/// d[0 .. n) = bias_act<ACT>(s[0 .. n) + b); past n, whole registers stored when spill (as copy_row).
template <int ACT>
MIMIC_AVX512 inline void act_row(const float* s, float* d, int n, float b, ConvAct a, float alpha,
                                 bool spill) {
    if (ACT < 2) return copy_row<true, false, ACT == 1>(s, d, n, b, spill);
    const __m512 bv = _mm512_set1_ps(b);
    for (int j = 0; j < n; j += kLanes) {
        const __m512 v = bias_act<ACT>(_mm512_loadu_ps(s + j), bv, a, alpha);
        if (spill || n - j >= kLanes)
            _mm512_storeu_ps(d + j, v);
        else
            _mm512_mask_storeu_ps(d + j, __mmask16((1u << (n - j)) - 1), v);
    }
}

/// Samples [s0, s1) on grid tiles, a channel at a time: its phase planes, the grid, then its output rows
/// with the bias and the activation ACT (bias_act).
template <int ACT>
MIMIC_AVX512 void depthwise_grid_samples(const float* x, std::int64_t s0, std::int64_t s1, const float* W,
                                         const float* b, const ConvGeometry& g, const DepthPlan& d, ConvAct a,
                                         float alpha, DirectConvScratch& ws, float* y) {
    float* xp = grow(ws.in, d.plane);
    float* out = grow(ws.out, d.qv + kLanes);
    std::fill(xp, xp + d.plane, 0.0f); // the padding stays zero: each channel rewrites the same interior
    const int C = g.c, H = g.h, Wd = g.w, s = d.s;
    const std::int64_t in = std::int64_t(C) * H * Wd, o = std::int64_t(C) * d.oh * d.ow;
    for (std::int64_t n = s0; n < s1; ++n)
        for (int c = 0; c < C; ++c) {
            const float* src = x + n * in + std::int64_t(c) * H * Wd;
            for (int i = 0; i < H; ++i) {
                const int pi = i + d.p;
                const float* row = src + std::int64_t(i) * Wd;
                if (s == 1) {
                    copy_row<false, true>(row, xp + std::int64_t(pi) * d.wq + d.p, Wd, 0.0f, false);
                    continue;
                }
                // Column phase b holds the inputs j with (j + p) % s == b, at column (j + p) / s.
                float* dst = xp + std::int64_t(pi % s) * s * d.phase + std::int64_t(pi / s) * d.wq;
                for (int b0 = 0; b0 < s; ++b0)
                    for (int j = (b0 - d.p % s + s) % s; j < Wd; j += s)
                        dst[b0 * d.phase + (j + d.p) / s] = row[j];
            }
            depthwise_grid(xp, d, W + c, C, out);
            float* dst = y + n * o + std::int64_t(c) * d.oh * d.ow;
            for (int i = 0; i < d.oh; ++i) {
                const std::int64_t at = (std::int64_t(c) * d.oh + i) * d.ow;
                const bool spill = at + (d.ow + kLanes - 1) / kLanes * kLanes <= o;
                act_row<ACT>(out + std::int64_t(i) * d.wq, dst + std::int64_t(i) * d.ow, d.ow, b[c], a, alpha,
                             spill);
            }
        }
}

// GCC 12's unpack intrinsics start from _mm512_undefined_ps (`__m512 __Y = __Y;`), which
// -Wmaybe-uninitialized (or -Wuninitialized) reports once inlined here: a false positive of the header,
// silenced for this function.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
/// r[i] lane j -> r[j] lane i: 16 x 16 floats transposed in registers (unpack within 128-bit lanes, then
/// the 4 x 4 transposition of the 128-bit lanes).
MIMIC_AVX512 inline void transpose16(__m512 r[16]) {
    __m512 u[4][4]; // u[g][k], 128-bit lane L: rows 4g .. 4g+3 at column 4L + k
    for (int g = 0; g < 4; ++g) {
        const __m512 lo01 = _mm512_unpacklo_ps(r[4 * g], r[4 * g + 1]);
        const __m512 hi01 = _mm512_unpackhi_ps(r[4 * g], r[4 * g + 1]);
        const __m512 lo23 = _mm512_unpacklo_ps(r[4 * g + 2], r[4 * g + 3]);
        const __m512 hi23 = _mm512_unpackhi_ps(r[4 * g + 2], r[4 * g + 3]);
        u[g][0] = _mm512_shuffle_ps(lo01, lo23, 0x44);
        u[g][1] = _mm512_shuffle_ps(lo01, lo23, 0xEE);
        u[g][2] = _mm512_shuffle_ps(hi01, hi23, 0x44);
        u[g][3] = _mm512_shuffle_ps(hi01, hi23, 0xEE);
    }
    for (int k = 0; k < 4; ++k) {
        const __m512 s0 = _mm512_shuffle_f32x4(u[0][k], u[1][k], 0x44);
        const __m512 s1 = _mm512_shuffle_f32x4(u[0][k], u[1][k], 0xEE);
        const __m512 s2 = _mm512_shuffle_f32x4(u[2][k], u[3][k], 0x44);
        const __m512 s3 = _mm512_shuffle_f32x4(u[2][k], u[3][k], 0xEE);
        r[k] = _mm512_shuffle_f32x4(s0, s2, 0x88);
        r[4 + k] = _mm512_shuffle_f32x4(s0, s2, 0xDD);
        r[8 + k] = _mm512_shuffle_f32x4(s1, s3, 0x88);
        r[12 + k] = _mm512_shuffle_f32x4(s1, s3, 0xDD);
    }
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

__mmask16 first_lanes(std::int64_t n) {
    return n >= kLanes ? __mmask16(0xffff) : __mmask16((1u << n) - 1);
}

/// Lane j: j * step.
MIMIC_AVX512 inline __m512i lane_steps(std::int64_t step) {
    const __m512i lanes = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    return _mm512_mullo_epi32(lanes, _mm512_set1_epi32(int(step)));
}

/// One sample's planes [C][H][W] into the interior of xt [hpad][wpad][C16]: 16 channels x 16 pixels at a
/// time through registers, or for planes under 16 pixels, 16 channels of a pixel gathered.
MIMIC_AVX512 void channels_last(const float* src, const ConvGeometry& g, const DepthPlan& d, float* xt) {
    const std::int64_t HW = std::int64_t(g.h) * g.w;
    for (int cb = 0; cb < d.c16; cb += kLanes) {
        const int nc = std::min(kLanes, g.c - cb);
        if (HW < kLanes) {
            const __m512i steps = lane_steps(HW);
            for (int i = 0; i < g.h; ++i)
                for (int j = 0; j < g.w; ++j)
                    _mm512_storeu_ps(xt + ((std::int64_t(i) + d.p) * d.wpad + j + d.p) * d.c16 + cb,
                                     _mm512_mask_i32gather_ps(_mm512_setzero_ps(), first_lanes(nc), steps,
                                                              src + cb * HW + std::int64_t(i) * g.w + j, 4));
            continue;
        }
        for (std::int64_t p0 = 0; p0 < HW; p0 += kLanes) {
            const int np = int(std::min<std::int64_t>(kLanes, HW - p0));
            __m512 r[kLanes];
            for (int j = 0; j < kLanes; ++j)
                r[j] = j < nc ? _mm512_maskz_loadu_ps(first_lanes(np), src + (cb + j) * HW + p0)
                              : _mm512_setzero_ps();
            transpose16(r);
            std::int64_t pi = p0 / g.w, pj = p0 - pi * g.w; // pixel p0 + i, stepped
            for (int i = 0; i < np; ++i, ++pj) {
                if (pj == g.w) pj = 0, ++pi;
                _mm512_storeu_ps(xt + ((pi + d.p) * d.wpad + pj + d.p) * d.c16 + cb, r[i]);
            }
        }
    }
}

/// One sample's output gradient d [F][OH][OW] into tr [q = i*wp + j][f16] (its grid positions j < OW and
/// filters f < f16; lanes f >= F get zeros): 16 filters x 16 columns at a time through registers.
MIMIC_AVX512 void grad_to_grid(const float* d, int F, int OH, int OW, std::int64_t wp, int f16, float* tr) {
    for (int fb = 0; fb < f16; fb += kLanes) {
        const int nf = std::min(kLanes, F - fb);
        for (int i = 0; i < OH; ++i)
            for (int j0 = 0; j0 < OW; j0 += kLanes) {
                const int nj = std::min(kLanes, OW - j0);
                __m512 r[kLanes];
                for (int l = 0; l < kLanes; ++l)
                    r[l] = l < nf ? _mm512_maskz_loadu_ps(first_lanes(nj),
                                                          d + (std::int64_t(fb + l) * OH + i) * OW + j0)
                                  : _mm512_setzero_ps();
                transpose16(r);
                for (int l = 0; l < nj; ++l)
                    _mm512_storeu_ps(tr + (std::int64_t(i) * wp + j0 + l) * f16 + fb, r[l]);
            }
    }
}

/// Pixel p of a plane of P pixels (acc: its 16 channels from the block's first) into dst [nc][P]: kept in r
/// and stored 16 pixels at a time through transpose16, masked to nc channels and the plane's end; scattered
/// for planes under 16 pixels (steps: lane_steps(P)).
MIMIC_AVX512 inline void put_pixel(__m512 acc, std::int64_t p, std::int64_t P, int nc, __m512i steps,
                                   __m512 r[kLanes], float* dst) {
    if (P < kLanes) {
        _mm512_mask_i32scatter_ps(dst + p, first_lanes(nc), steps, acc, 4);
        return;
    }
    r[p % kLanes] = acc;
    if (p % kLanes != kLanes - 1 && p != P - 1) return;
    const std::int64_t p0 = p / kLanes * kLanes;
    for (std::int64_t j = p - p0 + 1; j < kLanes; ++j)
        r[j] = _mm512_setzero_ps();
    transpose16(r);
    if (p - p0 + 1 == kLanes) { // whole registers: plain stores (AMD's masked stores are slow)
        for (int j = 0; j < nc; ++j)
            _mm512_storeu_ps(dst + j * P + p0, r[j]);
        return;
    }
    for (int j = 0; j < nc; ++j)
        _mm512_mask_storeu_ps(dst + j * P + p0, first_lanes(p - p0 + 1), r[j]);
}

/// Samples [s0, s1) on channel tiles: the inputs transposed to [hpad][wpad][C16] (zero border), then per
/// output pixel and block of 16 channels the taps that reach the image, in order from 0 (the others add
/// exact zeros: the grid tiles' sums bit for bit), the bias and the activation ACT (bias_act); 16 pixels'
/// outputs at a time transposed back to the channels' planes (scattered there for planes under 16 pixels).
template <int ACT>
MIMIC_AVX512 void depthwise_channel_samples(const float* x, std::int64_t s0, std::int64_t s1,
                                            const float* wpk, const float* b, const ConvGeometry& g,
                                            const DepthPlan& d, ConvAct a, float alpha, DirectConvScratch& ws,
                                            float* y) {
    const int C = g.c, H = g.h, Wd = g.w, c16 = d.c16, K = d.k, s = d.s;
    const std::int64_t P = std::int64_t(d.oh) * d.ow;
    float* xt = grow(ws.in, std::int64_t(d.hpad) * d.wpad * c16);
    std::fill(xt, xt + std::int64_t(d.hpad) * d.wpad * c16, 0.0f);
    for (std::int64_t n = s0; n < s1; ++n) {
        channels_last(x + n * C * std::int64_t(H) * Wd, g, d, xt);
        float* dst = y + n * C * P;
        for (int cb = 0; cb < c16; cb += kLanes) {
            const int nc = std::min(kLanes, C - cb);
            const __m512 bias = _mm512_maskz_loadu_ps(first_lanes(nc), b + cb);
            const __m512i steps = lane_steps(P);
            __m512 r[kLanes];
            int oh = 0, ow = -1; // the output pixel p, stepped without divisions
            for (std::int64_t p = 0; p < P; ++p) {
                if (++ow == d.ow) ow = 0, ++oh;
                const int i = oh * s, kh0 = std::max(0, d.p - i), kh1 = std::min(K, H + d.p - i);
                const int q = ow * s, kw0 = std::max(0, d.p - q), kw1 = std::min(K, Wd + d.p - q);
                __m512 acc = _mm512_setzero_ps();
                for (int kh = kh0; kh < kh1; ++kh) {
                    const float* xr = xt + (std::int64_t(i + kh) * d.wpad + q) * c16 + cb;
                    const float* wr = wpk + std::int64_t(kh) * K * c16 + cb;
                    for (int kw = kw0; kw < kw1; ++kw)
                        acc = _mm512_fmadd_ps(_mm512_loadu_ps(xr + std::int64_t(kw) * c16),
                                              _mm512_loadu_ps(wr + std::int64_t(kw) * c16), acc);
                }
                put_pixel(bias_act<ACT>(acc, bias, a, alpha), p, P, nc, steps, r, dst + cb * P);
            }
        }
    }
}

/// dst row n (e.ld floats apart, or n_out when 0) = the epilogue e of src row n (n_out floats apart) for
/// samples [s0, s1), where src already holds `done` (the activation the kernel applied, none or e.act): the
/// residual is added and post applied as ConvEpilogue::apply does (epilogue_span). In place when src == dst.
void apply_epilogue(const float* src, std::int64_t s0, std::int64_t s1, std::int64_t n_out, ConvAct done,
                    const ConvEpilogue& e, float* dst) {
    const std::int64_t ld = e.ld > 0 ? e.ld : n_out;
    for (std::int64_t s = s0; s < s1; ++s)
        epilogue_span(src + s * n_out, dst + s * ld, n_out,
                      e.residual ? e.residual + s * e.residual_ld : nullptr, done, e);
}

/// The weight gradient of one sample for channels [cb, cb + 16): dw[t*c16 + cb ..] = sum over the output
/// pixels in order of dy there (dt: dy [oh][ow][c16] at dt + oh*drow + ow*c16) times the input under tap t
/// (xt [hpad][wpad][C16], zero border: taps on the border add exact zeros). K <= 5: every tap's accumulator
/// in a register.
template <int K>
MIMIC_AVX512 void depthwise_dw_block(const float* xt, const float* dt, std::int64_t drow, const DepthPlan& d,
                                     int cb, float* dw) {
    const std::int64_t c16 = d.c16, row = std::int64_t(d.wpad) * c16;
    __m512 acc[K * K];
    for (int t = 0; t < K * K; ++t)
        acc[t] = _mm512_setzero_ps();
    for (int oh = 0; oh < d.oh; ++oh) {
        const float* g = dt + oh * drow + cb;
        const float* xr = xt + std::int64_t(oh) * d.s * row + cb;
        for (int ow = 0; ow < d.ow; ++ow, g += c16, xr += d.s * c16) {
            const __m512 gv = _mm512_loadu_ps(g);
            for (int kh = 0; kh < K; ++kh)
                for (int kw = 0; kw < K; ++kw)
                    acc[kh * K + kw] =
                        _mm512_fmadd_ps(_mm512_loadu_ps(xr + kh * row + kw * c16), gv, acc[kh * K + kw]);
        }
    }
    for (int t = 0; t < K * K; ++t)
        _mm512_storeu_ps(dw + t * c16 + cb, acc[t]);
}

/// depthwise_dw_block for any K <= 8, a filter row at a time (the same sums in the same order).
MIMIC_AVX512 void depthwise_dw_rows(const float* xt, const float* dt, std::int64_t drow, const DepthPlan& d,
                                    int cb, float* dw) {
    const std::int64_t c16 = d.c16, row = std::int64_t(d.wpad) * c16;
    const int K = d.k;
    for (int kh = 0; kh < K; ++kh) {
        __m512 acc[8];
        for (int kw = 0; kw < K; ++kw)
            acc[kw] = _mm512_setzero_ps();
        for (int oh = 0; oh < d.oh; ++oh) {
            const float* g = dt + oh * drow + cb;
            const float* xr = xt + (std::int64_t(oh) * d.s + kh) * row + cb;
            for (int ow = 0; ow < d.ow; ++ow, g += c16, xr += d.s * c16) {
                const __m512 gv = _mm512_loadu_ps(g);
                for (int kw = 0; kw < K; ++kw)
                    acc[kw] = _mm512_fmadd_ps(_mm512_loadu_ps(xr + kw * c16), gv, acc[kw]);
            }
        }
        for (int kw = 0; kw < K; ++kw)
            _mm512_storeu_ps(dw + (kh * K + kw) * c16 + cb, acc[kw]);
    }
}

void depthwise_dw(const float* xt, const float* dt, std::int64_t drow, const DepthPlan& d, int cb,
                  float* dw) {
    switch (d.k) {
    case 1:
        return depthwise_dw_block<1>(xt, dt, drow, d, cb, dw);
    case 2:
        return depthwise_dw_block<2>(xt, dt, drow, d, cb, dw);
    case 3:
        return depthwise_dw_block<3>(xt, dt, drow, d, cb, dw);
    case 4:
        return depthwise_dw_block<4>(xt, dt, drow, d, cb, dw);
    case 5:
        return depthwise_dw_block<5>(xt, dt, drow, d, cb, dw);
    default:
        return depthwise_dw_rows(xt, dt, drow, d, cb, dw);
    }
}

/// The taps of a transposed depthwise convolution along one axis: input position i (of n) is reached by
/// taps k0, k0 + s, ... (`count` of them) from the outputs o0, o0 - 1, ... (0 <= o < on).
struct TapRun {
    int k0 = 0, o0 = 0, count = 0;
};

std::vector<TapRun> tap_runs(int n, int on, int k, int s, int pad) {
    std::vector<TapRun> r(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
        const int a = i + pad, lo = std::max(0, a - s * (on - 1)), hi = std::min(k - 1, a);
        const int k0 = lo + (a - lo) % s;
        r[std::size_t(i)] = k0 > hi ? TapRun{} : TapRun{k0, (a - k0) / s, (hi - k0) / s + 1};
    }
    return r;
}

/// The input gradient of one sample for channels [cb, cb + 16), any stride: per input pixel the taps that
/// reach it from an output, (kh, kw) in order from 0, of w[t] (wpk [K*K][C16]) times dy there (dt, drow as
/// depthwise_dw_block), into the channels' planes of dst [C][H*W].
MIMIC_AVX512 void depthwise_dx_block(const float* dt, std::int64_t drow, const float* wpk,
                                     const ConvGeometry& g, const DepthPlan& d,
                                     const std::vector<TapRun>& rows, const std::vector<TapRun>& cols, int cb,
                                     float* dst) {
    const std::int64_t c16 = d.c16, P = std::int64_t(g.h) * g.w;
    const int nc = std::min(kLanes, g.c - cb), K = d.k, s = d.s;
    const __m512i steps = lane_steps(P);
    __m512 r[kLanes];
    int ih = 0, iw = -1;
    for (std::int64_t p = 0; p < P; ++p) {
        if (++iw == g.w) iw = 0, ++ih;
        const TapRun& a = rows[std::size_t(ih)];
        const TapRun& b = cols[std::size_t(iw)];
        __m512 acc = _mm512_setzero_ps();
        for (int i = 0; i < a.count; ++i) {
            const float* gr = dt + (a.o0 - i) * drow + b.o0 * c16 + cb;
            const float* wr = wpk + std::int64_t(a.k0 + i * s) * K * c16 + cb;
            for (int j = 0; j < b.count; ++j)
                acc = _mm512_fmadd_ps(_mm512_loadu_ps(gr - j * c16),
                                      _mm512_loadu_ps(wr + (b.k0 + j * s) * c16), acc);
        }
        put_pixel(acc, p, P, nc, steps, r, dst + cb * P);
    }
}

/// depthwise_dx_block at stride 1 with dy's zero border of K-1-p around dt: every input pixel sums all K*K
/// taps in (kh, kw) order (those on the border add exact zeros), the weights in registers.
template <int K>
MIMIC_AVX512 void depthwise_dx_s1(const float* dt, std::int64_t drow, const float* wpk, const ConvGeometry& g,
                                  const DepthPlan& d, int cb, float* dst) {
    const std::int64_t c16 = d.c16, P = std::int64_t(g.h) * g.w;
    const int nc = std::min(kLanes, g.c - cb);
    const __m512i steps = lane_steps(P);
    __m512 wv[K * K], r[kLanes];
    for (int t = 0; t < K * K; ++t)
        wv[t] = _mm512_loadu_ps(wpk + t * c16 + cb);
    std::int64_t p = 0;
    for (int ih = 0; ih < g.h; ++ih) {
        const float* base = dt + (ih + d.p) * drow + d.p * c16 + cb; // dy at (ih + p, p): tap (0, 0)
        for (int iw = 0; iw < g.w; ++iw, ++p, base += c16) {
            __m512 acc = _mm512_setzero_ps();
            for (int kh = 0; kh < K; ++kh)
                for (int kw = 0; kw < K; ++kw)
                    acc = _mm512_fmadd_ps(_mm512_loadu_ps(base - kh * drow - kw * c16), wv[kh * K + kw], acc);
            put_pixel(acc, p, P, nc, steps, r, dst + cb * P);
        }
    }
}

void depthwise_dx(const float* dt, std::int64_t drow, const float* wpk, const ConvGeometry& g,
                  const DepthPlan& d, const std::vector<TapRun>& rows, const std::vector<TapRun>& cols,
                  int cb, float* dst) {
    if (d.s == 1 && d.k == 3) return depthwise_dx_s1<3>(dt, drow, wpk, g, d, cb, dst);
    if (d.s == 1 && d.k == 5) return depthwise_dx_s1<5>(dt, drow, wpk, g, d, cb, dst);
    depthwise_dx_block(dt, drow, wpk, g, d, rows, cols, cb, dst);
}

/// The stride-1 depthwise backward on NCHW planes (grid tiles, no transposition): a channel's inputs with
/// their zero border p and its dy with a zero border of pd = K-1-p, both on rows of wc floats (wide enough
/// for either border), so that the weight gradient sums dy on the output grid q = oh*wc + ow (zeros past OW
/// and OH) times the inputs at q + kh*wc + kw, and the input gradient on the grid q = i*wc + j (columns
/// j >= W discarded) sums the taps (kh, kw) in order from 0 of w[t] times dy at q + (K-1-kh)*wc + K-1-kw.
struct DepthGrid {
    int k = 1, p = 0, pd = 0, wc = 0, h = 0, w = 0, oh = 0, ow = 0;
    std::int64_t qw = 0, qx = 0, xsize = 0, dsize = 0, d0 = 0;

    explicit DepthGrid(const ConvGeometry& g)
        : k(g.k), p(g.p), pd(g.k - 1 - g.p), h(g.h), w(g.w), oh(g.oh()), ow(g.ow()) {
        wc = w + std::max(2 * p, k - 1);
        qw = (std::int64_t(oh) * wc + kLanes - 1) / kLanes * kLanes;
        qx = (std::int64_t(h) * wc + kLanes - 1) / kLanes * kLanes;
        const std::int64_t reach = std::int64_t(k - 1) * wc + k - 1; // the farthest tap
        d0 = std::int64_t(pd) * wc + pd;                             // dy at output (0, 0)
        xsize = std::max(std::int64_t(h + 2 * p) * wc, qw + reach) + kLanes;
        dsize = std::max({std::int64_t(oh + 2 * pd) * wc, d0 + qw, qx + reach}) + kLanes;
    }
};

// _mm512_reduce_add_ps starts from _mm512_undefined (`__Y = __Y`): GCC 12's false positive, as above.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
/// One channel of one sample on grid tiles (xp, dyp: its bordered planes; w: its weights, C apart): the
/// weight gradient's taps into dw (c16 apart), each a sum over the grid in 16 lanes then across the lanes,
/// and (dxg not null) the input gradient's grid into dxg [qx].
template <int K>
MIMIC_AVX512 void depthwise_grid_backward(const float* xp, const float* dyp, const DepthGrid& d,
                                          const float* w, int C, std::int64_t c16, float* dw, float* dxg) {
    const std::int64_t wc = d.wc;
    __m512 acc[K * K];
    for (int t = 0; t < K * K; ++t)
        acc[t] = _mm512_setzero_ps();
    for (std::int64_t q = 0; q < d.qw; q += kLanes) {
        const __m512 gv = _mm512_loadu_ps(dyp + d.d0 + q);
        for (int kh = 0; kh < K; ++kh)
            for (int kw = 0; kw < K; ++kw)
                acc[kh * K + kw] =
                    _mm512_fmadd_ps(_mm512_loadu_ps(xp + q + kh * wc + kw), gv, acc[kh * K + kw]);
    }
    for (int t = 0; t < K * K; ++t)
        dw[t * c16] = _mm512_reduce_add_ps(acc[t]);
    if (!dxg) return;
    __m512 wv[K * K];
    for (int t = 0; t < K * K; ++t)
        wv[t] = _mm512_set1_ps(w[std::int64_t(t) * C]);
    for (std::int64_t q = 0; q < d.qx; q += kLanes) {
        __m512 a = _mm512_setzero_ps();
        for (int kh = 0; kh < K; ++kh)
            for (int kw = 0; kw < K; ++kw)
                a = _mm512_fmadd_ps(_mm512_loadu_ps(dyp + q + (K - 1 - kh) * wc + K - 1 - kw),
                                    wv[kh * K + kw], a);
        _mm512_storeu_ps(dxg + q, a);
    }
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

/// The stride-1 depthwise backward (K = 3 or 5) of samples [s0, s1) on one thread, a channel at a time on
/// grid tiles: its weight gradient into dws[n] [K*K][C16] (zeros past C) and (dx not null) its input
/// gradient into dx.
template <int K>
MIMIC_AVX512 void depthwise_grid_backward_samples(const float* x, const float* dy, std::int64_t s0,
                                                  std::int64_t s1, const float* W, const ConvGeometry& g,
                                                  std::int64_t c16, DirectConvScratch& ws, float* dws,
                                                  float* dx) {
    const DepthGrid d(g);
    const int C = g.c;
    const std::int64_t in = std::int64_t(C) * g.h * g.w, out = std::int64_t(C) * d.oh * d.ow;
    const std::int64_t kk = std::int64_t(K) * K * c16;
    float* xp = grow(ws.in, d.xsize);
    float* dyp = grow(ws.grad_padded, d.dsize);
    float* dxg = dx ? grow(ws.out, d.qx + kLanes) : nullptr; // the row copies read up to 15 floats past
    std::fill(xp, xp + d.xsize, 0.0f); // the borders stay zero: each channel rewrites the same interiors
    std::fill(dyp, dyp + d.dsize, 0.0f);
    for (std::int64_t n = s0; n < s1; ++n) {
        float* dwn = dws + n * kk;
        for (int t = 0; t < K * K; ++t)
            std::fill(dwn + t * c16 + C, dwn + (t + 1) * c16, 0.0f);
        for (int c = 0; c < C; ++c) {
            const float* xc = x + n * in + std::int64_t(c) * g.h * g.w;
            const float* dc = dy + n * out + std::int64_t(c) * d.oh * d.ow;
            for (int i = 0; i < g.h; ++i)
                copy_row<false, true>(xc + std::int64_t(i) * g.w, xp + std::int64_t(i + d.p) * d.wc + d.p,
                                      g.w, 0.0f, false);
            for (int i = 0; i < d.oh; ++i)
                copy_row<false, true>(dc + std::int64_t(i) * d.ow, dyp + d.d0 + std::int64_t(i) * d.wc, d.ow,
                                      0.0f, false);
            depthwise_grid_backward<K>(xp, dyp, d, W + c, C, c16, dwn + c, dxg);
            if (!dxg) continue;
            float* dst = dx + n * in + std::int64_t(c) * g.h * g.w;
            for (int i = 0; i < g.h; ++i)
                copy_row<false, false>(dxg + std::int64_t(i) * d.wc, dst + std::int64_t(i) * g.w, g.w, 0.0f,
                                       false);
        }
    }
}

/// The depthwise backward of samples [s0, s1) on one thread: the sample's inputs (zero border) and dy (a zero
/// border of dd.p = K-1-p at stride 1) transposed to channels-last (d: x's plan, dd: dy's), then per block
/// of 16 channels its weight gradient into dws[n] [K*K][C16] and (dx not null) its input gradient into dx.
void depthwise_backward_samples(const float* x, const float* dy, std::int64_t s0, std::int64_t s1,
                                const float* wpk, const ConvGeometry& g, const DepthPlan& d,
                                const DepthPlan& dd, DirectConvScratch& ws, float* dws, float* dx) {
    const ConvGeometry gy{g.c, d.oh, d.ow, g.c, dd.k, 1, dd.p, g.c};
    const std::int64_t xsize = std::int64_t(d.hpad) * d.wpad * d.c16, in = std::int64_t(g.c) * g.h * g.w;
    const std::int64_t dsize = std::int64_t(dd.hpad) * dd.wpad * d.c16, drow = std::int64_t(dd.wpad) * d.c16;
    const std::int64_t out = std::int64_t(g.c) * d.oh * d.ow, kk = std::int64_t(d.k) * d.k * d.c16;
    float* xt = grow(ws.in, xsize);
    float* dt = grow(ws.grad_padded, dsize);
    std::fill(xt, xt + xsize, 0.0f); // the borders stay zero: each sample rewrites the same interiors
    std::fill(dt, dt + dsize, 0.0f);
    const float* dt0 = dt + (dd.p * drow + dd.p * d.c16); // dy at output (0, 0)
    const auto rows = tap_runs(g.h, d.oh, d.k, d.s, d.p), cols = tap_runs(g.w, d.ow, d.k, d.s, d.p);
    for (std::int64_t n = s0; n < s1; ++n) {
        channels_last(x + n * in, g, d, xt);
        channels_last(dy + n * out, gy, dd, dt);
        for (int cb = 0; cb < d.c16; cb += kLanes) {
            depthwise_dw(xt, dt0, drow, d, cb, dws + n * kk);
            if (dx) depthwise_dx(dt0, drow, wpk, g, d, rows, cols, cb, dx + n * in);
        }
    }
}

/// The depthwise weights W [K*K][C] padded to wpk [K*K][C16] (zeros past C), the channel tiles' layout.
void pack_depthwise(const float* W, const ConvGeometry& g, const DepthPlan& d, float* wpk) {
    for (int r = 0; r < g.k * g.k; ++r) {
        std::copy(W + std::int64_t(r) * g.c, W + std::int64_t(r + 1) * g.c, wpk + std::int64_t(r) * d.c16);
        std::fill(wpk + std::int64_t(r) * d.c16 + g.c, wpk + std::int64_t(r + 1) * d.c16, 0.0f);
    }
}

} // namespace

bool direct_depthwise_supported(const ConvGeometry& g) {
    static const bool cpu = __builtin_cpu_supports("avx512f");
    return cpu && g.g == g.c && g.f == g.c && g.k <= 8 && g.p < g.k;
}

void direct_depthwise_forward(const float* x, std::int64_t batch, const float* W, const float* b,
                              const ConvGeometry& g, const DirectConvTuning& t, DirectConvWorkspace& ws,
                              float* y, const ConvEpilogue& e) {
    const DepthPlan d(g, t.tiles);
    // The kernels store bias and the activation e.act (in registers) into contiguous rows; a residual, a
    // post activation or a strided output take a second pass over raw conv + bias outputs (in place, or from
    // the group scratch for a strided output).
    const std::int64_t out = std::int64_t(g.f) * g.pixels();
    const bool plain = !e.residual && e.post == ConvAct::none && (e.ld == 0 || e.ld == out);
    const int act = !plain || e.act == ConvAct::none ? 0 : e.act == ConvAct::relu ? 1 : 2;
    float* raw = plain || e.ld == 0 || e.ld == out ? y : grow(ws.group_out, batch * out);
    // Channel tiles read the weights [K*K][C] (W's layout) padded to [K*K][C16].
    float* wpk = d.channels ? grow(ws.packed, std::int64_t(g.k) * g.k * d.c16) : nullptr;
    if (d.channels) pack_depthwise(W, g, d, wpk);
    const int parts = host_parts(batch, t.parts);
    if (ws.threads.size() < size_t(parts)) ws.threads.resize(size_t(parts));
    for_each_part("mimic::nn::conv::direct_depthwise_forward", parts, [&](int part) {
        const auto r = part_range(batch, parts, part);
        DirectConvScratch& sc = ws.threads[size_t(part)];
        const auto s0 = r.first, s1 = r.second;
        if (d.channels && act == 0)
            depthwise_channel_samples<0>(x, s0, s1, wpk, b, g, d, e.act, e.alpha, sc, raw);
        else if (d.channels && act == 1)
            depthwise_channel_samples<1>(x, s0, s1, wpk, b, g, d, e.act, e.alpha, sc, raw);
        else if (d.channels)
            depthwise_channel_samples<2>(x, s0, s1, wpk, b, g, d, e.act, e.alpha, sc, raw);
        else if (act == 0)
            depthwise_grid_samples<0>(x, s0, s1, W, b, g, d, e.act, e.alpha, sc, raw);
        else if (act == 1)
            depthwise_grid_samples<1>(x, s0, s1, W, b, g, d, e.act, e.alpha, sc, raw);
        else
            depthwise_grid_samples<2>(x, s0, s1, W, b, g, d, e.act, e.alpha, sc, raw);
        if (!plain) apply_epilogue(raw, r.first, r.second, out, ConvAct::none, e, y);
    });
}

void direct_depthwise_backward(const float* x, const float* dy, std::int64_t batch, const float* W,
                               const ConvGeometry& g, const DirectConvTuning& t, DirectConvWorkspace& ws,
                               float* dW, float* dx) {
    // dy's plan: a zero border of K-1-p at stride 1, where the input gradient reads every tap.
    const int pd = g.s == 1 ? g.k - 1 - g.p : 0;
    const DepthPlan d(g, 2), dd(ConvGeometry{g.c, g.oh(), g.ow(), g.c, pd + 1, 1, pd, g.c}, 2);
    const std::int64_t kk = std::int64_t(g.k) * g.k, per_sample = kk * d.c16;
    // Grid tiles on the NCHW planes at stride 1 for 3x3 and 5x5 (t.tiles 1, or 0 with 12 to 32 outputs a
    // row), channel tiles (inputs and dy transposed to channels-last) for the rest. Measured with bench_conv
    // --tiles 0 against --tiles 2 (backward alone, batch 32, load 11-12 on 2 cores): grid tiles won on
    // 14x14 (3x3 and 5x5, 192 channels, 1.13x) and 28x28 (96 channels, 1.16x), channel tiles on 56x56
    // (1.11x), 10x10 (1.20x), 7x7 (1.4-1.6x) and planes of 4x4 and under (3-7x): the lane sums of the
    // weight gradient and the row copies cost more there than the transpositions.
    const bool grid = g.s == 1 && (g.k == 3 || g.k == 5) &&
                      (t.tiles == 1 || (t.tiles == 0 && g.ow() >= 12 && g.ow() <= 32));
    float* wpk = dx && !grid ? grow(ws.packed, per_sample) : nullptr;
    if (wpk) pack_depthwise(W, g, d, wpk);
    float* dws = grow(ws.chunk_grad, batch * per_sample); // each sample's weight gradient
    ws.chunk_layout = {}; // chunk_grad no longer holds direct_conv_backward's zero borders
    const int parts = host_parts(batch, t.parts);
    if (ws.threads.size() < size_t(parts)) ws.threads.resize(size_t(parts));
    for_each_part("mimic::nn::conv::direct_depthwise_backward", parts, [&](int part) {
        const auto r = part_range(batch, parts, part);
        DirectConvScratch& sc = ws.threads[size_t(part)];
        if (grid && g.k == 3)
            depthwise_grid_backward_samples<3>(x, dy, r.first, r.second, W, g, d.c16, sc, dws, dx);
        else if (grid)
            depthwise_grid_backward_samples<5>(x, dy, r.first, r.second, W, g, d.c16, sc, dws, dx);
        else
            depthwise_backward_samples(x, dy, r.first, r.second, wpk, g, d, dd, sc, dws, dx);
    });
    // dW[t*C + c] += the samples' gradients summed in order from 0: the same sums whatever the split.
    float* total = grow(ws.weights, per_sample);
    std::copy(dws, dws + per_sample, total);
    for (std::int64_t n = 1; n < batch; ++n)
        for (std::int64_t i = 0; i < per_sample; ++i)
            total[i] += dws[n * per_sample + i];
    for (std::int64_t tap = 0; tap < kk; ++tap)
        for (int c = 0; c < g.c; ++c)
            dW[tap * g.c + c] += total[tap * d.c16 + c];
}

bool direct_conv_supported(const ConvGeometry& g) {
    static const bool cpu = __builtin_cpu_supports("avx512f");
    // With filter tiles for small grids, the direct kernels beat im2col + sgemm on every shape measured,
    // all outside bench_conv's held-out grid (bench_conv --tiles 0 against --direct 0, forward): 96x6x6 3x3
    // 'same' with 96 filters 1.4x, 96x10x10 5x5 'same' 1.7x, 48x20x20 5x5 1.7x, 112x8x8 3x3 valid 1.6x.
    // Stride 2 (the forward pass; the backward below measured 1.3-1.9x over im2col + sgemm + col2im on the
    // resnet.cfg teacher's 3x3 layers, bench_conv backward, batch 128): ResNet-18's and MobileNetV2's strided
    // layers at 32x32, batch 64 (bench_conv --direct 1 against --direct 0, forward, load 12-16 on 2
    // cores): the 7x7 stem 1.8x, 3x3 with 4x4 to 2x2 outputs 1.1-1.9x; but 3x3 to a 1x1 output 0.77x and
    // 1x1 projections 0.43-0.70x (im2col of a 1x1 filter is a subsample, then one sgemm over the chunk).
    const bool strided = g.s == 2 && g.k > 1 && g.p < g.k && g.pixels() >= 4;
    return cpu && (g.s == 1 || strided) && g.k <= 8;
}

void direct_conv_forward(const float* x, std::int64_t batch, const float* W, const float* b,
                         const ConvGeometry& g, const DirectConvTuning& t, DirectConvWorkspace& ws, float* y,
                         const ConvEpilogue& e) {
    const Pass p(g.c, g.f, g.k, g.h, g.w, g.p, g.s);
    const FilterPlan fp = filter_plan(p);
    const bool filter = use_filter_tiles(p, fp, t.tiles);
    float* wpk = filter ? grow(ws.packed, g.patch() * fp.ldf) : nullptr;
    if (filter) pack_blocks(W, g.patch(), g.f, fp, wpk);
    // Samples are independent: each thread runs a contiguous part of the batch with its own scratch, so
    // every output is the same whatever the number of threads.
    const int parts = host_parts(batch, t.parts);
    if (ws.threads.size() < size_t(parts)) ws.threads.resize(size_t(parts));
    for_each_part("mimic::nn::conv::direct_forward", parts, [&](int part) {
        const auto r = part_range(batch, parts, part);
        forward_samples(x, r.first, r.second, W, b, g, p, fp, wpk, ws.threads[size_t(part)], y, e);
    });
}

void direct_rows_epilogue(const float* src, std::int64_t lds, int F, std::int64_t P, const float* bias,
                          const ConvEpilogue& e, std::int64_t s, float* dst) {
    const float* res = e.residual ? e.residual + s * e.residual_ld : nullptr;
    for (int f = 0; f < F; ++f)
        epilogue_row(src + f * lds, dst + f * P, int(P), bias[f], res ? res + f * P : nullptr, e);
}

namespace {

using HostMatrix = Kokkos::View<float**, Kokkos::LayoutRight, Kokkos::HostSpace, Kokkos::MemoryUnmanaged>;

/// Columns of the sgemm of a 1x1 convolution: a sample whose plane has at least this many outputs is one
/// sgemm of its own, straight into its NCHW rows; smaller planes are gathered, this many columns a chunk,
/// so that the weights are packed once for several samples.
constexpr std::int64_t kPointwiseColumns = 256;

/// col [C, n*P] = the inputs under the 1x1 taps of samples [s0, s0 + n): sample i's outputs at columns
/// i*P .., its rows and columns every g.s (a subsample at stride 2).
void gather_pointwise(const float* x, std::int64_t s0, std::int64_t n, const ConvGeometry& g, float* col) {
    const std::int64_t hw = std::int64_t(g.h) * g.w, P = g.pixels(), N = n * P;
    const int OH = g.oh(), OW = g.ow();
    for (int c = 0; c < g.c; ++c)
        for (std::int64_t i = 0; i < n; ++i) {
            const float* src = x + ((s0 + i) * g.c + c) * hw;
            float* dst = col + c * N + i * P;
            if (g.s == 1) {
                std::copy(src, src + hw, dst);
                continue;
            }
            for (int r = 0; r < OH; ++r)
                for (int q = 0; q < OW; ++q)
                    *dst++ = src[std::int64_t(r) * g.s * g.w + std::int64_t(q) * g.s];
        }
}

/// Planes under one register (P < 16): out [F, n*P] = act(out + bias) a whole row of n samples at a time
/// (one filter, one bias), then each sample's [F][P] copied into y (rows ld apart) with the residual and
/// post (epilogue_span), or plainly when the epilogue has neither. The arithmetic of ConvEpilogue::apply.
void scatter_small_planes(float* out, std::int64_t n, std::int64_t P, int F, const float* bias,
                          const ConvEpilogue& e, std::int64_t s0, float* y, std::int64_t ld) {
    const std::int64_t N = n * P;
    ConvEpilogue act; // the activation only
    act.act = e.act;
    act.alpha = e.alpha;
    for (int f = 0; f < F; ++f) // N is about kPointwiseColumns
        epilogue_row(out + f * N, out + f * N, int(N), bias[f], nullptr, act);
    const bool rest = e.residual || e.post != ConvAct::none;
    for (std::int64_t i = 0; i < n; ++i) {
        float* dst = y + (s0 + i) * ld;
        const float* res = e.residual ? e.residual + (s0 + i) * e.residual_ld : nullptr;
        for (int f = 0; f < F; ++f) {
            const float* src = out + f * N + i * P;
            if (rest)
                epilogue_span(src, dst + f * P, P, res ? res + f * P : nullptr, e.act, e);
            else
                std::copy(src, src + P, dst + f * P);
        }
    }
}

} // namespace

bool direct_pointwise_supported(const ConvGeometry& g) {
    static const bool cpu = __builtin_cpu_supports("avx512f");
    return cpu && g.k == 1 && g.p == 0 && g.g == 1;
}

void direct_pointwise_forward(const float* x, std::int64_t batch, const float* W, const float* b,
                              const ConvGeometry& g, DirectConvWorkspace& ws, float* y,
                              const ConvEpilogue& e) {
    const int C = g.c, F = g.f;
    const std::int64_t P = g.pixels(), ld = e.ld > 0 ? e.ld : F * P, in = std::int64_t(C) * g.h * g.w;
    const HostMatrix Wm(const_cast<float*>(W), C, F);
    const std::int64_t nb = P >= kPointwiseColumns ? 1 : std::min(batch, (kPointwiseColumns + P - 1) / P);
    for (std::int64_t s0 = 0; s0 < batch; s0 += nb) {
        const std::int64_t n = std::min(nb, batch - s0), N = n * P;
        // One sample at stride 1 reads its NCHW input [C, P] in place: no padded or gathered copy.
        const float* xs = x + s0 * in;
        if (n > 1 || g.s > 1) {
            float* col = grow(ws.pointwise_in, C * N);
            gather_pointwise(x, s0, n, g, col);
            xs = col;
        }
        // One sample's product [F, P] is its NCHW output: the epilogue then runs in place.
        float* out = n > 1 ? grow(ws.pointwise_out, F * N) : y + s0 * ld;
        gemm("T", "N", 1.0f, Wm, HostMatrix(const_cast<float*>(xs), C, N), 0.0f, HostMatrix(out, F, N));
        if (n > 1 && P < kLanes) {
            scatter_small_planes(out, n, P, F, b, e, s0, y, ld);
            continue;
        }
        for (std::int64_t i = 0; i < n; ++i)
            direct_rows_epilogue(out + i * P, N, F, P, b, e, s0 + i, y + (s0 + i) * ld);
    }
}

/// Group gi's column slice of n rows: dst [n][w] = src [n][ld] columns [gi*w, (gi+1)*w). The grouped forward
/// and backward gather inputs, outputs and weights with it (and scatter_group puts results back).
void gather_group(const float* src, std::int64_t n, std::int64_t ld, std::int64_t w, int gi, float* dst) {
    for (std::int64_t r = 0; r < n; ++r)
        std::copy(src + r * ld + gi * w, src + r * ld + (gi + 1) * w, dst + r * w);
}

/// The inverse of gather_group: dst [n][ld] columns [gi*w, (gi+1)*w) = src [n][w].
void scatter_group(const float* src, std::int64_t n, std::int64_t ld, std::int64_t w, int gi, float* dst) {
    for (std::int64_t r = 0; r < n; ++r)
        std::copy(src + r * w, src + (r + 1) * w, dst + r * ld + gi * w);
}

void direct_grouped_forward(const float* x, std::int64_t batch, const float* W, const float* b,
                            const ConvGeometry& g, const DirectConvTuning& t, DirectConvWorkspace& ws,
                            float* y, const ConvEpilogue& e) {
    const int G = g.g, Cg = g.c / G, Fg = g.f / G;
    const ConvGeometry one{Cg, g.h, g.w, Fg, g.k, g.s, g.p, 1};
    const std::int64_t in = std::int64_t(g.c) * g.h * g.w, gin = std::int64_t(Cg) * g.h * g.w;
    const std::int64_t out = std::int64_t(g.f) * g.pixels(), gout = std::int64_t(Fg) * g.pixels();
    const std::int64_t rows = std::int64_t(Cg) * g.k * g.k; // rows of W [Cg*K*K, F]
    float* xg = grow(ws.group_in, batch * gin);
    float* yg = grow(ws.group_out, batch * gout);
    float* wg = grow(ws.group_weights, rows * Fg);
    for (int gi = 0; gi < G; ++gi) {
        gather_group(W, rows, g.f, Fg, gi, wg);
        gather_group(x, batch, in, gin, gi, xg);
        ConvEpilogue act; // the activation only, into the group's contiguous scratch
        act.act = e.act;
        act.alpha = e.alpha;
        direct_conv_forward(xg, batch, wg, b + gi * Fg, one, t, ws, yg, act);
        // The rest of the epilogue (residual, post) on the group's channels of each output row.
        ConvEpilogue rest = e;
        if (rest.residual) rest.residual += gi * gout;
        rest.ld = e.ld > 0 ? e.ld : out;
        apply_epilogue(yg, 0, batch, gout, e.act, rest, y + gi * gout);
    }
}

void direct_grouped_backward(const float* x, const float* dy, std::int64_t batch, const float* W,
                             const ConvGeometry& g, const DirectConvTuning& t, DirectConvWorkspace& ws,
                             float* dW, float* dx) {
    const int G = g.g, Cg = g.c / G, Fg = g.f / G;
    const ConvGeometry one{Cg, g.h, g.w, Fg, g.k, g.s, g.p, 1};
    const std::int64_t in = std::int64_t(g.c) * g.h * g.w, gin = std::int64_t(Cg) * g.h * g.w;
    const std::int64_t out = std::int64_t(g.f) * g.pixels(), gout = std::int64_t(Fg) * g.pixels();
    const std::int64_t rows = std::int64_t(Cg) * g.k * g.k; // rows of W [Cg*K*K, F]
    float* xg = grow(ws.group_in, batch * gin);
    float* dyg = grow(ws.group_out, batch * gout);
    float* wg = grow(ws.group_weights, 2 * rows * Fg);
    float* dwg = wg + rows * Fg;
    float* dxg = dx ? grow(ws.group_grad, batch * gin) : nullptr;
    for (int gi = 0; gi < G; ++gi) {
        gather_group(W, rows, g.f, Fg, gi, wg);
        gather_group(dW, rows, g.f, Fg, gi, dwg);
        gather_group(x, batch, in, gin, gi, xg);
        gather_group(dy, batch, out, gout, gi, dyg);
        direct_conv_backward(xg, dyg, batch, wg, one, t, ws, dwg, dxg);
        scatter_group(dwg, rows, g.f, Fg, gi, dW);
        if (dx) scatter_group(dxg, batch, in, gin, gi, dx);
    }
}

namespace {

/// The weight gradient of direct_conv_backward: dW += the sum over the samples, chunk by chunk, of the
/// padded inputs (phase planes at stride 2) times the transposed output gradients, threads over channels.
void weight_grad(const float* x, const float* dy, std::int64_t batch, const ConvGeometry& g,
                 const DirectConvTuning& t, DirectConvWorkspace& ws, float* dW) {
    const int C = g.c, F = g.f, OH = g.oh(), OW = g.ow();
    const Pass fw(C, F, g.k, g.h, g.w, g.p, g.s); // x padded (phase planes when strided)
    const int f16 = (F + kLanes - 1) / kLanes * kLanes;
    const std::int64_t xs = C * fw.plane, ds = fw.q * f16;
    const std::int64_t nb =
        std::max<std::int64_t>(1, std::min<std::int64_t>(batch, t.grad_chunk_floats / (xs + ds)));
    float* xp = grow(ws.chunk_in, nb * xs);
    float* dt = grow(ws.chunk_grad, nb * ds);
    const std::array<std::int64_t, 8> layout{C, g.h, g.w, F, g.k, g.p, g.s, nb}; // fixes xs, ds, borders
    if (ws.chunk_layout != layout) { // borders and discarded columns: zero once per layout
        std::fill(xp, xp + nb * xs, 0.0f);
        std::fill(dt, dt + nb * ds, 0.0f);
        ws.chunk_layout = layout;
    }
    const std::int64_t in = std::int64_t(C) * g.h * g.w, o = std::int64_t(F) * OH * OW;
    for (std::int64_t s0 = 0; s0 < batch; s0 += nb) {
        const int n = int(std::min<std::int64_t>(nb, batch - s0));
        // The chunk's padded inputs and transposed gradients, a sample per thread at a time.
        Kokkos::parallel_for("mimic::nn::conv::direct_grad_inputs",
                             Kokkos::RangePolicy<Kokkos::DefaultHostExecutionSpace>(0, n),
                             [&](const std::int64_t s) {
                                 pad_planes(x + (s0 + s) * in, C, g.h, g.w, fw, xp + s * xs);
                                 grad_to_grid(dy + (s0 + s) * o, F, OH, OW, fw.wp, f16, dt + s * ds);
                             });
        // Channel c owns rows c*KK .. c*KK + KK - 1 of dW and sums the samples in order: threads over
        // channels give the serial result bit for bit.
        Kokkos::parallel_for(
            "mimic::nn::conv::direct_weight_grad",
            Kokkos::RangePolicy<Kokkos::DefaultHostExecutionSpace>(0, C),
            [&](const std::int64_t c) { weight_channel(xp, dt, n, xs, ds, f16, fw, int(c), dW); });
    }
}

/// The input gradient of direct_conv_backward at stride 1: the forward kernels over dy padded by K-1-p with
/// the flipped, transposed filters wt[(f*KK + KK-1-t)*C + c] = W[(c*KK + t)*F + f] (packed for filter tiles).
void input_grad(const float* dy, std::int64_t batch, const float* W, const ConvGeometry& g,
                const DirectConvTuning& t, DirectConvWorkspace& ws, float* dx) {
    const int K = g.k, KK = K * K, C = g.c, F = g.f;
    const Pass bw(F, C, K, g.oh(), g.ow(), K - 1 - g.p); // dy padded
    const FilterPlan bp = filter_plan(bw);
    const bool filter = use_filter_tiles(bw, bp, t.tiles);
    float* wt = grow(ws.weights, std::int64_t(KK) * C * F);
    float* wpk = filter ? grow(ws.packed, std::int64_t(KK) * F * bp.ldf) : nullptr;
    for (int c = 0; c < C; ++c)
        for (int tap = 0; tap < KK; ++tap)
            for (int f = 0; f < F; ++f)
                wt[(std::int64_t(f) * KK + KK - 1 - tap) * C + c] = W[(std::int64_t(c) * KK + tap) * F + f];
    if (filter) pack_blocks(wt, std::int64_t(F) * KK, C, bp, wpk);
    const int parts = host_parts(batch, t.parts);
    if (ws.threads.size() < size_t(parts)) ws.threads.resize(size_t(parts));
    for_each_part("mimic::nn::conv::direct_input_grad", parts, [&](int part) {
        const auto r = part_range(batch, parts, part);
        input_grad_samples(dy, r.first, r.second, g, bw, bp, wt, wpk, ws.threads[size_t(part)], dx);
    });
}

/// The input gradient of a convolution of stride S as S*S stride-1 passes over dy, one per phase of dx:
/// the inputs with (ih + p) % S == a and (iw + p) % S == b receive only the taps kh = a + S*m, kw = b + S*n,
/// dx[c][S*i + a - p][S*j + b - p] = sum over f, m, n of W[c, a + S*m, b + S*n, f] * dy[f][i - m][j - n]: a
/// full correlation of dy with a k2 x k2 filter (k2 = ceil(K / S), taps past K zero), dy padded by k2 - 1.
/// Phase (a, b)'s filters as the forward kernels read them: wt + (a*S + b)*F*k2*k2*C,
/// [(f*k2 + u)*k2 + v][C] = W[c, a + S*(k2-1-u), b + S*(k2-1-v), f], 0 where that tap is past K.
void phase_weights(const float* W, const ConvGeometry& g, int k2, float* wt) {
    const int K = g.k, KK = K * K, C = g.c, F = g.f, S = g.s;
    const std::int64_t per = std::int64_t(F) * k2 * k2 * C;
    std::fill(wt, wt + S * S * per, 0.0f);
    for (int a = 0; a < S; ++a)
        for (int b = 0; b < S; ++b)
            for (int u = 0; u < k2; ++u)
                for (int v = 0; v < k2; ++v) {
                    const int kh = a + S * (k2 - 1 - u), kw = b + S * (k2 - 1 - v);
                    if (kh >= K || kw >= K) continue;
                    float* w = wt + (a * S + b) * per + std::int64_t(u * k2 + v) * C;
                    for (int f = 0; f < F; ++f)
                        for (int c = 0; c < C; ++c)
                            w[std::int64_t(f) * k2 * k2 * C + c] =
                                W[(std::int64_t(c) * KK + kh * K + kw) * F + f];
                }
}

/// The inverse of split_columns with zeros past the phases' ends: d[2k] = k < ne ? ev[k] : 0 and d[2k + 1] =
/// k < no ? od[k] : 0 for the columns < w, 32 at a time through two permutes (loads and stores masked).
MIMIC_AVX512 void join_columns(const float* ev, int ne, const float* od, int no, int w, float* d) {
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    const auto lanes = [](int n) { return first_lanes(std::max(0, n)); };
    for (int k = 0; 2 * k < w; k += kLanes) {
        const __m512 e = _mm512_maskz_loadu_ps(lanes(ne - k), ev + k);
        const __m512 o = _mm512_maskz_loadu_ps(lanes(no - k), od + k);
        _mm512_mask_storeu_ps(d + 2 * k, lanes(w - 2 * k), _mm512_permutex2var_ps(e, lo, o));
        _mm512_mask_storeu_ps(d + 2 * k + kLanes, lanes(w - 2 * k - kLanes),
                              _mm512_permutex2var_ps(e, hi, o));
    }
}

/// One sample's dx [C][H][W] from the S*S phase outputs of strided_input_grad_samples (phase ph at out +
/// ph*per, channel c's output (i, j) at c*cs + i*rs + j*js, a grid of bw.oh x bw.ow): input (ih, iw) is
/// output ((ih + p) / S, (iw + p) / S) of phase ((ih + p) % S, (iw + p) % S), 0 past the phase's grid (no
/// tap reaches it).
void scatter_phases(const float* out, std::int64_t per, std::int64_t cs, std::int64_t rs, std::int64_t js,
                    const ConvGeometry& g, const Pass& bw, float* dx) {
    const int S = g.s, H = g.h, W = g.w, p = g.p;
    for (int c = 0; c < g.c; ++c)
        for (int ih = 0; ih < H; ++ih) {
            const int a = (ih + p) % S, i = (ih + p) / S;
            float* d = dx + (std::int64_t(c) * H + ih) * W;
            if (i >= bw.oh) {
                std::fill(d, d + W, 0.0f);
                continue;
            }
            const float* row = out + a * S * per + c * cs + std::int64_t(i) * rs;
            if (S == 2 && js == 1) { // even columns from column phase p % 2 (from p / 2), odd from the other
                const int e0 = p / 2, o0 = (p + 1) / 2;
                join_columns(row + (p % 2) * per + e0, bw.ow - e0, row + ((p + 1) % 2) * per + o0, bw.ow - o0,
                             W, d);
                continue;
            }
            for (int b = 0; b < S; ++b) {
                const int iw0 = (b - p % S + S) % S; // the first column of phase b: (iw0 + p) % S == b
                const float* src = row + b * per;
                int j = (iw0 + p) / S, iw = iw0;
                for (; iw < W && j < bw.ow; iw += S, ++j)
                    d[iw] = src[j * js];
                for (; iw < W; iw += S)
                    d[iw] = 0.0f;
            }
        }
}

/// The input gradient of samples [s0, s1) at stride S on one thread: dy padded once, the S*S phase passes
/// (pixel tiles with the phase filters wt, or filter tiles with their packed blocks wpk), then dx.
void strided_input_grad_samples(const float* dy, std::int64_t s0, std::int64_t s1, const ConvGeometry& g,
                                const Pass& bw, const FilterPlan& bp, const float* wt, const float* wpk,
                                DirectConvScratch& ws, float* dx) {
    const int C = g.c, F = g.f, phases = g.s * g.s;
    const std::int64_t rows = std::int64_t(F) * bw.k * bw.k; // rows of a phase's filters
    const std::int64_t grid = std::int64_t(bw.oh) * bw.ow;
    const std::int64_t per = wpk ? grid * bp.ldf : C * bw.qv + kLanes;
    float* dp = grow(ws.grad_padded, F * bw.plane);
    float* out = grow(ws.out, phases * per);
    std::fill(dp, dp + F * bw.plane, 0.0f);
    const std::int64_t in = std::int64_t(C) * g.h * g.w, o = std::int64_t(F) * g.pixels();
    for (std::int64_t s = s0; s < s1; ++s) {
        pad_planes(dy + s * o, F, g.oh(), g.ow(), bw, dp);
        for (int ph = 0; ph < phases; ++ph)
            if (wpk)
                filter_pass(dp, bw, bp, wpk + ph * rows * bp.ldf, out + ph * per);
            else
                forward_pass(dp, bw, wt + ph * rows * C, out + ph * per);
        if (wpk)
            scatter_phases(out, per, 1, std::int64_t(bw.ow) * bp.ldf, bp.ldf, g, bw, dx + s * in);
        else
            scatter_phases(out, per, bw.qv, bw.wp, 1, g, bw, dx + s * in);
    }
}

/// The input gradient of direct_conv_backward at stride S > 1 (strided_input_grad_samples).
void strided_input_grad(const float* dy, std::int64_t batch, const float* W, const ConvGeometry& g,
                        const DirectConvTuning& t, DirectConvWorkspace& ws, float* dx) {
    const int k2 = (g.k + g.s - 1) / g.s, C = g.c, F = g.f, phases = g.s * g.s;
    const Pass bw(F, C, k2, g.oh(), g.ow(), k2 - 1); // dy padded for the full correlation
    const FilterPlan bp = filter_plan(bw);
    const bool filter = use_filter_tiles(bw, bp, t.tiles);
    const std::int64_t rows = std::int64_t(F) * k2 * k2;
    float* wt = grow(ws.weights, phases * rows * C);
    float* wpk = filter ? grow(ws.packed, phases * rows * bp.ldf) : nullptr;
    phase_weights(W, g, k2, wt);
    if (filter)
        for (int ph = 0; ph < phases; ++ph)
            pack_blocks(wt + ph * rows * C, rows, C, bp, wpk + ph * rows * bp.ldf);
    const int parts = host_parts(batch, t.parts);
    if (ws.threads.size() < size_t(parts)) ws.threads.resize(size_t(parts));
    for_each_part("mimic::nn::conv::direct_input_grad_strided", parts, [&](int part) {
        const auto r = part_range(batch, parts, part);
        strided_input_grad_samples(dy, r.first, r.second, g, bw, bp, wt, wpk, ws.threads[size_t(part)], dx);
    });
}

} // namespace

void direct_conv_backward(const float* x, const float* dy, std::int64_t batch, const float* W,
                          const ConvGeometry& g, const DirectConvTuning& t, DirectConvWorkspace& ws,
                          float* dW, float* dx) {
    MIMIC_REQUIRE(g.s == 1 || (g.s == 2 && g.k > 1 && g.p < g.k), "direct_conv_backward: stride ", g.s,
                  " with a ", g.k, "x", g.k, " filter and padding ", g.p,
                  " (the direct backward takes stride 1, or 2 with K > 1 and padding under K)");
    weight_grad(x, dy, batch, g, t, ws, dW);
    if (!dx) return;
    if (g.s == 1)
        input_grad(dy, batch, W, g, t, ws, dx);
    else
        strided_input_grad(dy, batch, W, g, t, ws, dx);
}

} // namespace mimic::nn::impl

#endif
