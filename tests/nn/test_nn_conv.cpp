// The convolution's formulations against a direct double-precision reference: the host's direct kernels
// (pixel and filter tiles, which must agree bitwise) and im2col + sgemm (forward, weight, bias and input
// gradients), the grouped kernels and the direct depthwise kernel (G > 1, strides 1 to 3), and the host and
// device im2col, col2im and bias-gradient reduction against each other; the inference path's 1x1 sgemms.
#include "mimic/core/runtime.hpp"
#include "mimic/nn/layers/conv2d.hpp"
#include "mimic/nn/layers/impl/activation_simd.hpp"
#include "mimic/nn/layers/impl/conv2d_direct.hpp"

#include "nn_test_util.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

using namespace mimic;
using namespace mimic::nn;
using mimic::test::device_matrix;
using mimic::test::random_values;
using mimic::test::to_host;

namespace {

/// Whether the direct backend should serve g: compiled in for the default execution space, an AVX-512F CPU,
/// K <= 8, stride 1 or stride 2 with K > 1, P < K and 4 output pixels or more, and not turned off
/// by MIMIC_CONV_IM2COL=1.
bool direct_expected(const ConvGeometry& g) {
#if MIMIC_CONV_DIRECT
    const bool strided = g.s == 2 && g.k > 1 && g.p < g.k && g.pixels() >= 4;
    return impl::DirectConvAvailable<ExecSpace, MemSpace>::value && __builtin_cpu_supports("avx512f") &&
           (g.s == 1 || strided) && g.k <= 8 && !env_is_one("MIMIC_CONV_IM2COL");
#else
    (void)g;
    return false;
#endif
}

/// Whether the direct depthwise kernel should serve g: compiled in, AVX-512F, G = C = F, K <= 8, P < K, and
/// not turned off by MIMIC_CONV_IM2COL=1.
bool depthwise_expected(const ConvGeometry& g) {
#if MIMIC_CONV_DIRECT
    return impl::DirectConvAvailable<ExecSpace, MemSpace>::value && __builtin_cpu_supports("avx512f") &&
           g.g == g.c && g.f == g.c && g.k <= 8 && g.p < g.k && !env_is_one("MIMIC_CONV_IM2COL");
#else
    (void)g;
    return false;
#endif
}

struct Reference {
    std::vector<double> y, dW, db, dx;
};

/// y = conv(x, W) + b and the gradients of sum(dy * y), in double, straight from the definition.
Reference reference(const std::vector<float>& x, const std::vector<float>& W, const std::vector<float>& b,
                    const std::vector<float>& dy, const ConvGeometry& g, int B) {
    const int C = g.c, H = g.h, Wd = g.w, F = g.f, K = g.k, OH = g.oh(), OW = g.ow(), Cg = C / g.g;
    Reference r{std::vector<double>(std::size_t(B) * F * OH * OW), std::vector<double>(W.size()),
                std::vector<double>(F), std::vector<double>(x.size())};
    for (int s = 0; s < B; ++s)
        for (int f = 0; f < F; ++f)
            for (int oh = 0; oh < OH; ++oh)
                for (int ow = 0; ow < OW; ++ow) {
                    const std::size_t o = ((std::size_t(s) * F + f) * OH + oh) * OW + ow;
                    double acc = b[f];
                    for (int cl = 0; cl < Cg; ++cl)
                        for (int kh = 0; kh < K; ++kh)
                            for (int kw = 0; kw < K; ++kw) {
                                const int ih = oh * g.s - g.p + kh, iw = ow * g.s - g.p + kw;
                                if (ih < 0 || ih >= H || iw < 0 || iw >= Wd) continue;
                                const int c = f / (F / g.g) * Cg + cl; // the channels of f's group
                                const std::size_t xi = ((std::size_t(s) * C + c) * H + ih) * Wd + iw;
                                const std::size_t wi = (std::size_t(cl * K + kh) * K + kw) * F + f;
                                acc += double(x[xi]) * W[wi];
                                r.dW[wi] += double(x[xi]) * dy[o];
                                r.dx[xi] += double(W[wi]) * dy[o];
                            }
                    r.y[o] = acc;
                    r.db[f] += dy[o];
                }
    return r;
}

void expect_close(const std::vector<float>& got, const std::vector<double>& want, const char* what) {
    ASSERT_EQ(got.size(), want.size()) << what;
    double scale = 1e-6;
    for (double v : want)
        scale = std::max(scale, std::fabs(v));
    for (std::size_t i = 0; i < got.size(); ++i)
        ASSERT_NEAR(got[i], want[i], 1e-5 * scale) << what << " at " << i;
}

/// Forward and backward of both formulations (direct where the host has it, and im2col) on one geometry;
/// `base` carries the im2col chunk budget.
void check_geometry(const ConvGeometry& g, int B, const ConvTuning& base = {}) {
    SCOPED_TRACE(testing::Message() << "C " << g.c << " H " << g.h << " W " << g.w << " F " << g.f << " K "
                                    << g.k << " S " << g.s << " P " << g.p << " G " << g.g << " batch " << B);
    const std::int64_t in = std::int64_t(g.c) * g.h * g.w, out = std::int64_t(g.f) * g.pixels();
    const auto xh = random_values(std::size_t(B * in), 1),
               Wh = random_values(std::size_t(g.weight_rows() * g.f), 2);
    const auto bh = random_values(std::size_t(g.f), 3), dyh = random_values(std::size_t(B * out), 4);
    const Reference ref = reference(xh, Wh, bh, dyh, g, B);
    const Matrix x = device_matrix(xh, B, in), dy = device_matrix(dyh, B, out);
    const Matrix Wm = device_matrix(Wh, g.weight_rows(), g.f), bm = device_matrix(bh, 1, g.f);
    const UnmanagedMatrix W(Wm.data(), g.weight_rows(), g.f);
    const UnmanagedVector b(bm.data(), g.f);
    std::vector<float> y_pixel, dx_pixel; // the direct kernels' results with pixel tiles
    for (int mode : {1, 2, 0}) {
        // The direct kernels with pixel tiles, with filter tiles, then im2col + sgemm.
        const bool direct = mode != 0;
        SCOPED_TRACE(mode == 1   ? "direct kernels where available, pixel tiles"
                     : mode == 2 ? "direct kernels where available, filter tiles"
                                 : "im2col + sgemm");
        ConvTuning t = base;
        t.direct = direct;
        t.direct_tiles = mode;
        const bool depthwise = conv_backend(g, t) == ConvBackend::direct_depthwise;
        const bool takes_direct = conv_backend(g, t) == ConvBackend::direct || depthwise;
        const ConvGeometry one{g.c / g.g, g.h, g.w, g.f / g.g, g.k, g.s, g.p, 1};
        EXPECT_EQ(conv_backend(g, t) == ConvBackend::direct, direct && !depthwise && direct_expected(one));
        EXPECT_EQ(depthwise, direct && g.g > 1 && depthwise_expected(g));
        EXPECT_EQ(conv_backend(g, t) == ConvBackend::grouped, g.g > 1 && !takes_direct);
        ConvWorkspace ws;
        Matrix y("y", B, out), dx("dx", B, in), dWm("dW", g.weight_rows(), g.f), dbm("db", 1, g.f);
        conv2d_forward(x, W, b, g, t, ws, y);
        expect_close(to_host(y), ref.y, "y");
        // Twice, so that the accumulation into dW and db (and workspace reuse) shows.
        for (int rep = 0; rep < 2; ++rep)
            conv2d_backward(x, dy, W, g, t, ws, UnmanagedMatrix(dWm.data(), g.weight_rows(), g.f),
                            UnmanagedVector(dbm.data(), g.f), dx);
        std::vector<double> dW2(ref.dW), db2(ref.db);
        for (auto& v : dW2)
            v *= 2;
        for (auto& v : db2)
            v *= 2;
        expect_close(to_host(dWm), dW2, "dW");
        expect_close(to_host(dbm), db2, "db");
        expect_close(to_host(dx), ref.dx, "dx");
        if (takes_direct) {
            // Both tilings sum each output in the same order (channels, then taps; depthwise: the taps):
            // identical results.
            if (mode == 1) {
                y_pixel = to_host(y);
                dx_pixel = to_host(dx);
            } else {
                EXPECT_EQ(to_host(y), y_pixel);
                EXPECT_EQ(to_host(dx), dx_pixel);
            }
        }
    }
}

} // namespace

TEST(Conv, SamePaddingOddFilterCounts) {
    check_geometry({3, 7, 9, 10, 3, 1, 1}, 3);
    check_geometry({1, 28, 28, 17, 3, 1, 1}, 2);
    check_geometry({5, 14, 14, 33, 5, 1, 2}, 2);
}
TEST(Conv, NoAndPartialPadding) {
    check_geometry({4, 9, 8, 8, 3, 1, 0}, 3);
    check_geometry({2, 7, 7, 16, 5, 1, 0}, 2);
    check_geometry({3, 10, 11, 9, 5, 1, 1}, 2);
    check_geometry({2, 6, 6, 3, 2, 1, 1}, 2);
}
TEST(Conv, FilterTilesOverlapAndPad) {
    check_geometry({20, 7, 7, 40, 3, 1, 1}, 2);  // 7 outputs a row, two 32-channel blocks, the last padded
    check_geometry({18, 7, 7, 33, 5, 1, 0}, 2);  // a 3x3 grid: one tile of 3 rows
    check_geometry({17, 9, 31, 16, 3, 1, 0}, 2); // 29 outputs a row: three tiles, the last shifted back
    check_geometry({40, 6, 5, 10, 2, 1, 1}, 2);  // even filter size, fewer channels than a register
}
TEST(Conv, ManyChannelsSplitIntoBlocks) {
    check_geometry({70, 6, 6, 24, 3, 1, 1}, 2); // more channels than one direct channel block (56 for 3x3)
    check_geometry({24, 5, 5, 40, 5, 1, 2}, 2); // 20 per block for 5x5
}
TEST(Conv, DirectOnAvx512ForStrideOne) {
    const ConvGeometry g{96, 6, 6, 96, 3, 1, 1};
    static_assert(!impl::DirectConvAvailable<ExecSpace>::value || MIMIC_CONV_DIRECT,
                  "the direct kernels are available only where they are compiled in");
#ifdef KOKKOS_ENABLE_SERIAL
    static_assert(impl::DirectConvAvailable<Kokkos::Serial>::value == bool(MIMIC_CONV_DIRECT),
                  "the direct kernels serve the Serial space wherever they are compiled in");
#endif
#if MIMIC_CONV_DIRECT
    const bool avx512 = __builtin_cpu_supports("avx512f");
    EXPECT_EQ(impl::direct_conv_supported(g), avx512);
    EXPECT_EQ(impl::direct_conv_supported({16, 28, 28, 16, 3, 1, 1}), avx512);
    EXPECT_EQ(impl::direct_conv_supported({3, 9, 8, 5, 3, 2, 1}), avx512);
    EXPECT_FALSE(impl::direct_conv_supported({3, 9, 8, 5, 3, 3, 1}));
    EXPECT_FALSE(impl::direct_conv_supported({16, 8, 8, 32, 1, 2, 0}));
#endif
    check_geometry(g, 2);
}
#if MIMIC_CONV_DIRECT
/// The direct kernels split the samples over the host execution space's threads, each with its own scratch:
/// every split gives the results of one part bit for bit (pixel tiles, then filter tiles; with and without
/// the fused ReLU).
TEST(Conv, DirectResultsDoNotDependOnTheSplitOverThreads) {
    if (!__builtin_cpu_supports("avx512f")) GTEST_SKIP() << "this CPU has no AVX-512F";
    for (const ConvGeometry g : {ConvGeometry{3, 7, 9, 10, 3, 1, 1}, ConvGeometry{20, 7, 7, 40, 3, 1, 1}}) {
        SCOPED_TRACE(testing::Message() << "C " << g.c << " F " << g.f);
        const int B = 5;
        const std::int64_t in = std::int64_t(g.c) * g.h * g.w, out = std::int64_t(g.f) * g.pixels();
        const auto x = random_values(std::size_t(B * in), 1),
                   W = random_values(std::size_t(g.patch() * g.f), 2);
        const auto b = random_values(std::size_t(g.f), 3), dy = random_values(std::size_t(B * out), 4);
        std::vector<float> y1, dW1, dx1;
        for (int parts : {1, 2, 3, 5}) {
            SCOPED_TRACE(testing::Message() << parts << " parts");
            impl::DirectConvTuning t;
            t.parts = parts;
            impl::DirectConvWorkspace ws;
            std::vector<float> y(std::size_t(B * out)), dW(W.size(), 0.0f), dx(x.size());
            impl::direct_conv_forward(x.data(), B, W.data(), b.data(), g, t, ws, y.data(),
                                      ConvEpilogue{parts % 2 == 1 ? ConvAct::relu : ConvAct::none});
            impl::direct_conv_backward(x.data(), dy.data(), B, W.data(), g, t, ws, dW.data(), dx.data());
            if (parts == 1) {
                y1 = y, dW1 = dW, dx1 = dx;
                continue;
            }
            if (parts % 2 == 1) EXPECT_EQ(y, y1);
            EXPECT_EQ(dW, dW1);
            EXPECT_EQ(dx, dx1);
        }
    }
}
#endif
// Stride 2 with K > 1 and 4 output pixels or more takes the direct forward and backward passes (phase
// planes; pixel and filter tiles) where the host has it; the others, and stride 3, im2col + sgemm
// throughout.
TEST(Conv, StrideTwo) {
    check_geometry({3, 9, 8, 5, 3, 2, 1}, 2);
    check_geometry({2, 8, 8, 4, 2, 2, 0}, 3);
    check_geometry({3, 32, 32, 16, 7, 2, 3}, 1); // the ResNet stem, batch 1
    check_geometry({16, 8, 8, 24, 3, 2, 1}, 2);  // a ResNet stage's first 3x3
    check_geometry({16, 8, 8, 32, 1, 2, 0}, 2);  // its 1x1 projection
    check_geometry({10, 7, 9, 20, 5, 2, 2}, 2);  // odd planes, 5x5, a tail filter block
    check_geometry({24, 2, 2, 40, 3, 2, 1}, 3);  // a 2x2 plane to 1x1 (im2col + sgemm)
    check_geometry({24, 4, 4, 40, 3, 2, 1}, 3);  // a 4x4 plane to 2x2
    check_geometry({3, 9, 9, 5, 3, 3, 1}, 2);    // stride 3
}
// G > 1: the direct kernels a group at a time (backward at stride 1), or the depthwise kernels, where the
// host has them (pixel and filter tiles), and the grouped kernels (im2col mode, and backward at stride 2).
TEST(Conv, GroupedAndDepthwise) {
    check_geometry({4, 7, 9, 6, 3, 1, 1, 2}, 3);
    check_geometry({6, 8, 7, 9, 3, 2, 1, 3}, 2);
    check_geometry({5, 9, 8, 5, 3, 1, 1, 5}, 2);   // depthwise
    check_geometry({5, 9, 8, 5, 3, 2, 1, 5}, 3);   // depthwise, stride 2
    check_geometry({3, 10, 11, 6, 5, 2, 0, 3}, 2); // two filters per channel, no padding
    check_geometry({4, 6, 6, 4, 1, 1, 0, 4}, 2);
    check_geometry({32, 8, 8, 48, 3, 1, 1, 4}, 2); // 8 channels x 12 filters a group
    check_geometry({16, 8, 8, 32, 3, 2, 1, 2}, 1); // stride 2, batch 1
    check_geometry({16, 4, 4, 16, 1, 1, 0, 8}, 3); // 1x1, 2 channels a group
    check_geometry({12, 9, 7, 9, 5, 1, 2, 3}, 1);  // 5x5, odd plane, 4 channels x 3 filters a group, batch 1
}
// The direct depthwise kernel (where this CPU has it; the grouped kernels elsewhere): strides 1 and 2, K = 3
// and 5 (EfficientNet), planes from 1x1 to 17x17, more channels than a register, batch 1.
TEST(Conv, DepthwiseStridesKernelsAndPlanes) {
    check_geometry({20, 9, 9, 20, 3, 2, 1, 20}, 2);   // stride 2, a tail block of 4 channels
    check_geometry({18, 8, 8, 18, 5, 2, 2, 18}, 2);   // 5x5 stride 2, even plane
    check_geometry({17, 7, 6, 17, 5, 1, 2, 17}, 2);   // 5x5 'same'
    check_geometry({33, 17, 17, 33, 3, 1, 1, 33}, 1); // a plane wider than a register, batch 1
    check_geometry({40, 1, 1, 40, 3, 1, 1, 40}, 3);   // 1x1 planes: only the centre tap reaches the image
    check_geometry({24, 2, 2, 24, 3, 2, 1, 24}, 1);   // 2x2 planes, stride 2
    check_geometry({6, 10, 9, 6, 4, 2, 0, 6}, 2);     // even kernel, no padding, odd output
    check_geometry({3, 9, 9, 3, 3, 3, 1, 3}, 2);      // stride 3
    check_geometry({20, 11, 9, 20, 7, 1, 3, 20}, 2);  // 7x7: the weight gradient a filter row at a time
    check_geometry({17, 13, 13, 17, 7, 2, 3, 17}, 1); // 7x7 stride 2, batch 1
    check_geometry({16, 5, 7, 16, 1, 2, 0, 16}, 2);   // 1x1 stride 2
}
#if MIMIC_CONV_DIRECT
/// The depthwise kernel's fused ReLU and other activations, and its results split over any number of threads,
/// bit for bit.
TEST(Conv, DirectDepthwiseReluAndSplitOverThreads) {
    if (!__builtin_cpu_supports("avx512f")) GTEST_SKIP() << "this CPU has no AVX-512F";
    const ConvGeometry g{20, 7, 7, 20, 3, 2, 1, 20};
    const int B = 5;
    const std::int64_t in = std::int64_t(g.c) * g.h * g.w, out = std::int64_t(g.f) * g.pixels();
    const auto x = random_values(std::size_t(B * in), 1), W = random_values(std::size_t(9 * g.f), 2);
    const auto b = random_values(std::size_t(g.f), 3);
    std::vector<float> y1;
    for (int tiles : {1, 2})
        for (int parts : {1, 2, 3, 5}) {
            SCOPED_TRACE(testing::Message() << parts << " parts, tiles " << tiles);
            impl::DirectConvTuning t;
            t.parts = parts;
            t.tiles = tiles;
            impl::DirectConvWorkspace ws;
            std::vector<float> y(std::size_t(B * out)), yr(y.size());
            impl::direct_depthwise_forward(x.data(), B, W.data(), b.data(), g, t, ws, y.data(),
                                           ConvEpilogue{});
            impl::direct_depthwise_forward(x.data(), B, W.data(), b.data(), g, t, ws, yr.data(),
                                           ConvEpilogue{ConvAct::relu});
            for (std::size_t i = 0; i < y.size(); ++i)
                ASSERT_EQ(yr[i], y[i] > 0.0f ? y[i] : 0.0f) << i;
            // The other activations alone, in the kernel's registers: activate_rows' bits.
            for (const ConvAct a : {ConvAct::relu6, ConvAct::silu, ConvAct::hardswish, ConvAct::leakyrelu}) {
                ConvEpilogue ea{a};
                ea.alpha = 0.125f;
                std::vector<float> ya(y.size()), want(y.size());
                impl::direct_depthwise_forward(x.data(), B, W.data(), b.data(), g, t, ws, ya.data(), ea);
                impl::activate_rows(a, ea.alpha, y.data(), want.data(), std::int64_t(y.size()));
                ASSERT_EQ(ya, want) << "activation " << int(a);
            }
            // Any other epilogue (relu6, a residual, the activation after it) takes the second pass.
            std::vector<float> res(y.size()), y6(y.size());
            for (std::size_t i = 0; i < res.size(); ++i)
                res[i] = 0.25f * float(i % 7) - 0.75f;
            ConvEpilogue e6{ConvAct::relu6, res.data(), out, ConvAct::relu};
            impl::direct_depthwise_forward(x.data(), B, W.data(), b.data(), g, t, ws, y6.data(), e6);
            for (std::size_t i = 0; i < y.size(); ++i)
                ASSERT_EQ(y6[i], e6.apply(y[i], std::int64_t(i) / out, std::int64_t(i) % out)) << i;
            if (y1.empty()) y1 = y;
            EXPECT_EQ(y, y1);
        }
}
#endif
/// 1x1 convolutions on the inference path (conv2d_forward_inference): sgemms where the direct backend is
/// available (a plane of 256 outputs or more a sample at a time, read in place; smaller planes and stride 2
/// gathered, chunks of several samples and a partial last one), against the double reference with the whole
/// epilogue (silu, a residual, relu after it) into a channel slice of wider rows; other geometries as
/// conv2d_forward.
TEST(Conv, PointwiseInferenceForward) {
    for (const ConvGeometry g : {ConvGeometry{8, 20, 20, 24, 1, 1, 0}, ConvGeometry{16, 5, 7, 12, 1, 1, 0},
                                 ConvGeometry{16, 9, 8, 20, 1, 2, 0}, ConvGeometry{6, 32, 32, 8, 1, 2, 0},
                                 ConvGeometry{16, 3, 3, 12, 1, 1, 0}, ConvGeometry{16, 4, 4, 20, 1, 2, 0},
                                 ConvGeometry{6, 4, 4, 8, 1, 1, 1}, ConvGeometry{6, 5, 5, 8, 3, 1, 1}}) {
        SCOPED_TRACE(testing::Message() << "C " << g.c << " H " << g.h << " F " << g.f << " K " << g.k
                                        << " S " << g.s << " P " << g.p);
        const int B = 11;
        const std::int64_t in = std::int64_t(g.c) * g.h * g.w, out = std::int64_t(g.f) * g.pixels();
        const std::int64_t ld = out + 5; // a channel slice of wider rows
        const auto xh = random_values(std::size_t(B * in), 1),
                   Wh = random_values(std::size_t(g.c * g.k * g.k * g.f), 2);
        const auto bh = random_values(std::size_t(g.f), 3), rh = random_values(std::size_t(B * out), 4);
        const Reference ref = reference(xh, Wh, bh, std::vector<float>(std::size_t(B * out)), g, B);
        const Matrix x = device_matrix(xh, B, in), Wm = device_matrix(Wh, g.c * g.k * g.k, g.f);
        const Matrix bm = device_matrix(bh, 1, g.f), res = device_matrix(rh, B, out);
        for (const bool full : {true, false}) { // silu, the residual and relu after it; silu alone
            SCOPED_TRACE(full ? "silu, residual, relu" : "silu");
            ConvEpilogue e{ConvAct::silu, full ? res.data() : nullptr, out,
                           full ? ConvAct::relu : ConvAct::none, ld};
            Matrix y("y", B, ld);
            Kokkos::deep_copy(y, -7.0f);
            ConvWorkspace ws;
            conv2d_forward_inference(x, UnmanagedMatrix(Wm.data(), g.c * g.k * g.k, g.f),
                                     UnmanagedVector(bm.data(), g.f), g, ConvTuning{}, ws, y.data(), e);
            const auto yh = to_host(y);
            for (int s = 0; s < B; ++s) {
                for (std::int64_t i = 0; i < out; ++i) {
                    const double v = ref.y[std::size_t(s * out + i)], act = v / (1.0 + std::exp(-v));
                    const double want = full ? std::max(0.0, act + rh[std::size_t(s * out + i)]) : act;
                    ASSERT_NEAR(yh[std::size_t(s * ld + i)], want, 1e-5 * (1.0 + std::fabs(want)))
                        << s << ", " << i;
                }
                for (std::int64_t i = out; i < ld; ++i) // the rest of the row is not written
                    ASSERT_EQ(yh[std::size_t(s * ld + i)], -7.0f) << s << ", " << i;
            }
        }
    }
#if MIMIC_CONV_DIRECT
    const bool avx512 = __builtin_cpu_supports("avx512f");
    EXPECT_EQ(impl::direct_pointwise_supported({16, 9, 8, 20, 1, 2, 0}), avx512);
    EXPECT_FALSE(impl::direct_pointwise_supported({16, 9, 8, 20, 1, 1, 1}));
    EXPECT_FALSE(impl::direct_pointwise_supported({16, 9, 8, 20, 1, 1, 0, 4}));
    EXPECT_FALSE(impl::direct_pointwise_supported({16, 9, 8, 20, 3, 1, 0}));
#endif
}
#if MIMIC_CONV_DIRECT
/// The direct depthwise backward against the grouped kernels (the generic path, on every execution space):
/// dW accumulated into and dx within float rounding, at stride 1 and 2, odd planes, partial or no padding,
/// 3x3 to 8x8 filters, planes under and over 16 pixels, channels a register and more, batch 1; and the
/// same bits for any split of the samples over threads. At stride 1 with 3x3 and 5x5 filters, both the grid
/// tiles on the NCHW planes (tiles 1) and the channel tiles (tiles 2), with the same input gradient bits.
TEST(Conv, DirectDepthwiseBackwardMatchesTheGroupedKernels) {
    if (!__builtin_cpu_supports("avx512f")) GTEST_SKIP() << "this CPU has no AVX-512F";
    for (const auto& [g, B] : std::vector<std::pair<ConvGeometry, int>>{
             {{32, 15, 13, 32, 3, 2, 1, 32}, 3}, // stride 2, odd planes
             {{21, 9, 9, 21, 5, 1, 2, 21}, 2},   // 5x5 'same', a tail block of 5 channels
             {{19, 11, 10, 19, 5, 2, 1, 19}, 1}, // 5x5 stride 2, partial padding, batch 1
             {{16, 3, 5, 16, 3, 1, 0, 16}, 2},   // no padding, a 1x3 output plane
             {{40, 4, 3, 40, 3, 2, 1, 40}, 2},   // a 12-pixel plane to 2x2: scattered stores
             {{7, 12, 12, 7, 8, 2, 3, 7}, 2},    // 8x8 filters, fewer channels than a register
             {{48, 20, 20, 48, 3, 1, 1, 48}, 2},
             {{18, 7, 9, 18, 5, 1, 1, 18}, 3},     // 5x5 stride 1, partial padding: dy's border wider
             {{33, 6, 17, 33, 3, 1, 0, 33}, 2}}) { // no padding, rows over a register
        SCOPED_TRACE(testing::Message() << "C " << g.c << " H " << g.h << " W " << g.w << " K " << g.k
                                        << " S " << g.s << " P " << g.p << " batch " << B);
        ASSERT_TRUE(impl::direct_depthwise_supported(g));
        const std::int64_t in = std::int64_t(g.c) * g.h * g.w, out = std::int64_t(g.c) * g.pixels();
        const std::int64_t wn = std::int64_t(g.k) * g.k * g.c;
        const auto x = random_values(std::size_t(B * in), 11), W = random_values(std::size_t(wn), 12);
        const auto dy = random_values(std::size_t(B * out), 13), dW0 = random_values(std::size_t(wn), 14);
        // The grouped kernels: the reference.
        const Matrix xm = device_matrix(x, B, in), dym = device_matrix(dy, B, out);
        const Matrix Wm = device_matrix(W, wn / g.c, g.c), dWm = device_matrix(dW0, wn / g.c, g.c);
        const Matrix dxm("dx", B, in);
        grouped_conv_backward(xm, dym, UnmanagedMatrix(Wm.data(), wn / g.c, g.c), g,
                              UnmanagedMatrix(dWm.data(), wn / g.c, g.c), dxm);
        const auto dW_ref = to_host(dWm), dx_ref = to_host(dxm);
        std::vector<float> dx_channels, dW1;
        for (int tiles : {2, 1})
            for (int parts : {1, 2, 3}) {
                SCOPED_TRACE(testing::Message() << parts << " parts, tiles " << tiles);
                impl::DirectConvTuning t;
                t.parts = parts;
                t.tiles = tiles;
                impl::DirectConvWorkspace ws;
                std::vector<float> dW(dW0), dx(x.size(), 7.0f); // dx is overwritten, dW accumulated into
                impl::direct_depthwise_backward(x.data(), dy.data(), B, W.data(), g, t, ws, dW.data(),
                                                dx.data());
                expect_close(dW, std::vector<double>(dW_ref.begin(), dW_ref.end()), "dW");
                expect_close(dx, std::vector<double>(dx_ref.begin(), dx_ref.end()), "dx");
                // Without dx, the same weight gradient.
                std::vector<float> dW_only(dW0);
                impl::direct_depthwise_backward(x.data(), dy.data(), B, W.data(), g, t, ws, dW_only.data(),
                                                nullptr);
                EXPECT_EQ(dW_only, dW);
                if (tiles == 2 && parts == 1) dx_channels = dx;
                EXPECT_EQ(dx, dx_channels);
                if (parts == 1) dW1 = dW; // each tiling's own sums, the same for any split
                EXPECT_EQ(dW, dW1);
            }
    }
}
/// The direct backward at stride 2 (the weight gradient on the forward pass' phase planes, the input
/// gradient as one stride-1 pass per phase of dx) against im2col + sgemm + col2im, the path it replaces:
/// conv2d_backward's dW and db accumulated into and dx within float rounding, for 3x3, 2x2 and 5x5 filters,
/// padding 0 to 2, odd and even planes, batch 1 and more, pixel and filter tiles; the same bits for any split
/// of the samples over threads, and the weight gradient the same without dx. 1x1 projections keep im2col.
TEST(Conv, DirectStrideTwoBackwardMatchesIm2col) {
    if (!__builtin_cpu_supports("avx512f")) GTEST_SKIP() << "this CPU has no AVX-512F";
    for (const auto& [g, B] : std::vector<std::pair<ConvGeometry, int>>{
             {{16, 28, 28, 32, 3, 2, 1}, 3}, // the resnet.cfg teacher's strided 3x3 layers
             {{32, 14, 14, 64, 3, 2, 1}, 2},
             {{3, 9, 11, 5, 3, 2, 1}, 1},  // odd planes, batch 1
             {{4, 10, 7, 6, 3, 2, 0}, 2},  // no padding, an odd width
             {{5, 13, 13, 7, 3, 2, 0}, 1}, // no padding, odd planes, batch 1
             {{40, 5, 5, 24, 3, 2, 1}, 3}, // a 3x3 output plane, many channels
             {{6, 9, 8, 20, 2, 2, 0}, 2},  // 2x2 filters: one tap per phase
             {{5, 9, 11, 6, 2, 2, 0}, 2},  // 2x2 on odd planes: the last row and column get no tap
             {{10, 7, 9, 20, 5, 2, 2}, 2}, // 5x5, padding 2, a tail filter block
             {{16, 8, 8, 32, 1, 2, 0}, 2}, // a 1x1 projection: im2col + sgemm on both sides
             {{7, 13, 9, 3, 1, 2, 0}, 1}}) {
        SCOPED_TRACE(testing::Message() << "C " << g.c << " H " << g.h << " W " << g.w << " F " << g.f
                                        << " K " << g.k << " P " << g.p << " batch " << B);
        const bool direct = g.k > 1;
        const std::int64_t in = std::int64_t(g.c) * g.h * g.w, out = std::int64_t(g.f) * g.pixels();
        const auto xh = random_values(std::size_t(B * in), 21),
                   Wh = random_values(std::size_t(g.patch() * g.f), 22);
        const auto dyh = random_values(std::size_t(B * out), 23), dW0 = random_values(Wh.size(), 24);
        const Matrix x = device_matrix(xh, B, in), dy = device_matrix(dyh, B, out);
        const Matrix Wm = device_matrix(Wh, g.patch(), g.f);
        const UnmanagedMatrix W(Wm.data(), g.patch(), g.f);
        std::vector<float> ref_dW, ref_db, ref_dx;
        for (int mode : {0, 1, 2}) { // im2col + sgemm (the reference), pixel tiles, filter tiles
            SCOPED_TRACE(testing::Message() << "mode " << mode);
            ConvTuning t;
            t.direct = mode != 0;
            t.direct_tiles = mode;
            EXPECT_EQ(conv_backend(g, t) == ConvBackend::direct, mode != 0 && direct_expected(g));
            ConvWorkspace ws;
            const Matrix dWm = device_matrix(dW0, g.patch(), g.f), dbm = device_matrix(dW0, 1, g.f);
            const Matrix dx = device_matrix(std::vector<float>(xh.size(), 7.0f), B, in); // overwritten
            conv2d_backward(x, dy, W, g, t, ws, UnmanagedMatrix(dWm.data(), g.patch(), g.f),
                            UnmanagedVector(dbm.data(), g.f), dx);
            if (mode == 0) {
                ref_dW = to_host(dWm), ref_db = to_host(dbm), ref_dx = to_host(dx);
                continue;
            }
            expect_close(to_host(dWm), std::vector<double>(ref_dW.begin(), ref_dW.end()), "dW");
            expect_close(to_host(dbm), std::vector<double>(ref_db.begin(), ref_db.end()), "db");
            expect_close(to_host(dx), std::vector<double>(ref_dx.begin(), ref_dx.end()), "dx");
        }
        if (!direct) continue;
        std::vector<float> dW1, dx1;
        for (int parts : {1, 2, 3}) {
            SCOPED_TRACE(testing::Message() << parts << " parts");
            impl::DirectConvTuning t;
            t.parts = parts;
            impl::DirectConvWorkspace ws;
            std::vector<float> dW(dW0), dx(xh.size()), dW_only(dW0);
            impl::direct_conv_backward(xh.data(), dyh.data(), B, Wh.data(), g, t, ws, dW.data(), dx.data());
            impl::direct_conv_backward(xh.data(), dyh.data(), B, Wh.data(), g, t, ws, dW_only.data(),
                                       nullptr);
            if (parts == 1) dW1 = dW, dx1 = dx;
            EXPECT_EQ(dW, dW1);
            EXPECT_EQ(dx, dx1);
            EXPECT_EQ(dW_only, dW);
        }
    }
}
#endif
TEST(Conv, ChunkOfOneSample) {
    ConvTuning t;
    t.chunk_floats = 1;
    check_geometry({3, 7, 9, 10, 3, 1, 1}, 3, t);
    check_geometry({4, 9, 8, 8, 3, 1, 0}, 2, t);
}

/// The device formulations of im2col, col2im and the bias gradient give the host's results.
TEST(Conv, DeviceAndHostFormulationsAgree) {
    for (const ConvGeometry g : {ConvGeometry{3, 7, 9, 4, 3, 1, 1}, ConvGeometry{2, 9, 8, 3, 5, 1, 0},
                                 ConvGeometry{3, 9, 8, 5, 3, 2, 1}, ConvGeometry{2, 10, 11, 3, 5, 1, 1}}) {
        SCOPED_TRACE(testing::Message() << "K " << g.k << " S " << g.s << " P " << g.p);
        const int B = 3;
        const std::int64_t in = std::int64_t(g.c) * g.h * g.w, N = B * g.pixels();
        const Matrix x = device_matrix(random_values(std::size_t(B * in), 5), B, in);
        Matrix c1("col_rows", g.patch(), N), c2("col_elements", g.patch(), N);
        im2col_rows(x, g, c1);
        im2col_elements(x, g, c2);
        EXPECT_EQ(to_host(c1), to_host(c2));

        const auto dcol = random_values(std::size_t(g.patch() * N), 6);
        Matrix d1("dx_rows", B, in), d2("dx_elements", B, in);
        col2im_rows(device_matrix(dcol, g.patch(), N), g, d1); // may zero entries of its dcol copy
        col2im_elements(device_matrix(dcol, g.patch(), N), g, d2);
        const auto h2 = to_host(d2);
        expect_close(to_host(d1), std::vector<double>(h2.begin(), h2.end()), "col2im");

        const std::int64_t P = g.pixels();
        const Matrix dy = device_matrix(random_values(std::size_t(B * g.f * P), 7), B, g.f * P);
        Matrix b1("db_rows", 1, g.f), b2("db_teams", 1, g.f);
        conv_bias_grad_rows(dy, P, UnmanagedVector(b1.data(), g.f));
        conv_bias_grad_teams(dy, P, UnmanagedVector(b2.data(), g.f));
        const auto hb = to_host(b2);
        expect_close(to_host(b1), std::vector<double>(hb.begin(), hb.end()), "bias gradient");
    }
}
