// Tests of the inference plan (Model::plan_inference): fused conv output passes (activations, residual add,
// the activation after a res block, cat slices) and live-set buffers give the unplanned model's outputs;
// the vectorised activations against their scalar definitions.
#include "mimic/nn/fold.hpp"
#include "mimic/nn/layer.hpp"
#include "mimic/nn/layers/block.hpp"
#include "mimic/nn/layers/conv2d.hpp"
#include "mimic/nn/layers/impl/activation_simd.hpp"
#include "mimic/nn/model.hpp"

#include "nn_test_util.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace {

using mimic::Matrix;
using mimic::nn::ConvTuning;
using mimic::nn::Model;
using mimic::nn::Shape;

/// A model of `spec` with random parameters (biases included, so that ReLUs and ReLU6s cut on both sides),
/// the same for the same arguments.
/// tiles: the direct backend's tiles (ConvTuning::direct_tiles: 0 per shape, 1 pixel, 2 filter tiles).
Model random_model(const std::string& spec, Shape in, std::uint64_t seed, bool direct, int tiles = 0) {
    Model m(spec, in);
    m.init(seed);
    mimic::test::set_from_host(m.params(),
                               mimic::test::random_values(std::size_t(m.num_params()), seed, 0.5f));
    ConvTuning t;
    t.direct = direct;
    t.direct_tiles = tiles;
    m.set_conv_tuning(t);
    return m;
}

/// The number of layers of the Model's chain that alias their input (fused activations, flatten).
int aliases(const Model& m) {
    int n = 0;
    for (std::size_t i = 0; i < m.num_layers(); ++i)
        n += m.layer(i).is_alias() ? 1 : 0;
    return n;
}

/// Checks that the planned model of `spec` gives the unplanned model's outputs, within 1e-6 of the largest
/// output (the direct backend with tiles per shape, pixel and filter tiles, and im2col + sgemm; batches of
/// 1 and 7), and that planning fused `fused_after` activations of the top-level chain.
void check_plan(const std::string& spec, Shape in, int fused_after) {
    SCOPED_TRACE(spec);
    for (int tiles : {0, 1, 2, -1}) {
        const bool direct = tiles >= 0;
        SCOPED_TRACE(direct ? "direct backend allowed, tiles " + std::to_string(tiles) : "im2col + sgemm");
        Model plain = random_model(spec, in, 11, direct, std::max(tiles, 0));
        Model planned = random_model(spec, in, 11, direct, std::max(tiles, 0));
        const int before = aliases(planned);
        planned.plan_inference();
        EXPECT_EQ(aliases(planned) - before, fused_after);
        for (std::int64_t B : {1, 7}) {
            const Matrix x = mimic::test::device_matrix(
                mimic::test::random_values(std::size_t(B * in.size()), 5 + std::uint64_t(B)), B, in.size());
            const auto want = mimic::test::to_host(plain.forward(x, false));
            const auto got = mimic::test::to_host(planned.forward(x, false));
            ASSERT_EQ(got.size(), want.size());
            const auto g = mimic::test::output_gap(got, want);
            EXPECT_GT(g.scale, 0.1);
            EXPECT_LE(g.worst, 1e-6 * g.scale) << "batch " << B << ", largest output " << g.scale;
        }
    }
}

} // namespace

// ResNet basic blocks: identity and projection shortcuts (stride 2: im2col + sgemm), the ReLU after each
// block fused into the last conv's output pass. The block applies that ReLU from construction on
// (Block::fuse_relu, in training too), so planning fuses no further layer.
TEST(InferencePlan, ResidualRelu) {
    check_plan("conv:8x3,relu,res(conv:8x3,relu,conv:8x3),relu,res(conv:16x3s2,relu,conv:16x3|conv:16x1s2),"
               "relu,gap,dense:10",
               Shape{3, 9, 9}, 0);
}

// The identity first, the conv branch second; ReLU6 after the block.
TEST(InferencePlan, ResidualRelu6) {
    check_plan("conv:8x3,relu6,res(|conv:8x3,relu6,conv:8x3),relu6,gap,dense:5", Shape{2, 8, 8}, 2);
}

// MobileNetV2 inverted residuals: 1x1 expansion and depthwise 3x3 with ReLU6 (grouped kernel), linear 1x1
// projection adding the shortcut; a stride-2 block without one.
TEST(InferencePlan, InvertedResidual) {
    check_plan("conv:8x3,relu6,res(conv:24x1,relu6,dwconv:3,relu6,conv:8x1),conv:24x1,relu6,dwconv:3s2,relu6,"
               "conv:12x1,res(conv:36x1,relu6,dwconv:3,relu6,conv:12x1),gap,dense:10",
               Shape{1, 10, 10}, 3);
}

// ResNet's stem pool (3x3, stride 2, padding 1, on an odd image): planned for inference it takes the
// max-only window kernel, which must give the training path's values (the ReLU after the block: fused
// from construction, as in ResidualRelu).
TEST(InferencePlan, WindowedMaxPool) {
    check_plan("conv:8x3,relu,pool:3s2p1,res(|conv:8x3,relu,conv:8x3),relu,pool:3s1p1,gap,dense:5",
               Shape{2, 9, 9}, 0);
}

// DenseNet-like concatenation: identity branches copied, conv branches writing their channel slice (first
// and later columns), a pooling branch copied; nested res inside a cat branch.
TEST(InferencePlan, Concatenation) {
    check_plan("conv:6x3,relu,cat(|relu,conv:4x3),cat(conv:4x1,relu|relu,conv:4x3|pool:3s1p1),"
               "cat(res(conv:18x3,relu,conv:18x3),relu|conv:2x1),avgpool:2,dense:7",
               Shape{2, 8, 8}, 0);
}

// Squeeze-and-excitation gates and a res block of three branches (not fused: summed as in training).
TEST(InferencePlan, GateAndThreeBranches) {
    check_plan("conv:8x3,relu,gate(gap,conv:4x1,relu,conv:8x1,sigmoid),res(conv:8x3|conv:8x1|),relu,"
               "gate(conv:8x3,relu6,conv:8x1,sigmoid),gap,dense:6",
               Shape{1, 8, 8}, 0);
}

// Every activation that a convolution's output pass takes over in inference, after dense, depthwise,
// grouped and strided convolutions and inside a res block's branch (whose last conv also adds the shortcut).
TEST(InferencePlan, ConvActivations) {
    for (const std::string a :
         {"silu", "hardswish", "hardsigmoid", "sigmoid", "leakyrelu:0.1", "elu:0.7", "gelu", "relu6"})
        check_plan("conv:8x3," + a + ",dwconv:3," + a + ",conv:12x1g2," + a + ",res(conv:12x3," + a +
                       ",conv:12x1),conv:8x3s2," + a + ",cat(conv:6x3," + a + "|),gap,dense:5",
                   Shape{3, 10, 10}, 4);
}

// Activations that follow no convolution run alone, in inference through their vectorised forward.
TEST(InferencePlan, StandaloneActivations) {
    check_plan(
        "conv:8x3,relu,pool:2,silu,conv:8x3,relu,avgpool:2,elu:0.5,flatten,dense:24,gelu,dense:24,"
        "sigmoid,dense:24,leakyrelu:0.2,dense:24,hardswish,dense:24,hardsigmoid,dense:24,relu6,dense:4",
        Shape{2, 12, 12}, 0);
}

TEST(InferencePlan, RefusesTraining) {
    Model m = random_model("conv:4x3,relu,res(conv:4x3),relu,gap,dense:3", Shape{1, 6, 6}, 3, true);
    m.plan_inference();
    const Matrix x = mimic::test::device_matrix(mimic::test::random_values(2 * 36, 1), 2, 36);
    m.forward(x, false);
    EXPECT_THROW(m.backward(mimic::test::device_matrix(std::vector<float>(6, 1.0f), 2, 3)), mimic::Error);
    EXPECT_THROW(m.forward(x, true), mimic::Error);
}

namespace {

/// Activation bytes of `spec` (bn folded) after a forward of 64 rows: as trained, and planned for inference.
std::pair<std::int64_t, std::int64_t> bytes_of(const std::string& spec, Shape in) {
    Model trained = random_model(spec, in, 2, true);
    const Matrix x =
        mimic::test::device_matrix(mimic::test::random_values(std::size_t(64 * in.size()), 9), 64, in.size());
    trained.forward(x, false);
    const std::int64_t before = trained.activation_bytes();
    Model planned = mimic::nn::fold_for_inference(random_model(spec, in, 2, true));
    planned.forward(x, false);
    return {before, planned.activation_bytes()};
}

} // namespace

// Inference holds the live set: the resnet.cfg teacher and a DenseNet-like chain need far less activation
// memory planned than as trained (which also keeps the gradient buffers; a ReLU after a conv or bn holds none
// of either, it aliases that layer's output: 15.6x and 7.4x less before bn applied its ReLU, 13.6x and 5.2x
// since).
TEST(InferencePlan, LiveSetMemory) {
    const std::string resnet =
        "conv:16x3,bn,relu,res(conv:16x3,bn,relu,conv:16x3,bn),relu,res(conv:16x3,bn,relu,conv:16x3,bn),relu,"
        "res(conv:16x3,bn,relu,conv:16x3,bn),relu,res(conv:32x3s2,bn,relu,conv:32x3,bn|conv:32x1s2,bn),relu,"
        "res(conv:32x3,bn,relu,conv:32x3,bn),relu,res(conv:32x3,bn,relu,conv:32x3,bn),relu,"
        "res(conv:64x3s2,bn,relu,conv:64x3,bn|conv:64x1s2,bn),relu,res(conv:64x3,bn,relu,conv:64x3,bn),relu,"
        "res(conv:64x3,bn,relu,conv:64x3,bn),relu,gap,dense:10";
    const std::string dense =
        "conv:16x3,bn,relu,cat(|bn,relu,conv:32x1,bn,relu,conv:8x3),cat(|bn,relu,conv:32x1,"
        "bn,relu,conv:8x3),cat(|bn,relu,conv:32x1,bn,relu,conv:8x3),bn,relu,conv:20x1,"
        "avgpool:2,cat(|bn,relu,conv:32x1,bn,relu,conv:8x3),cat(|bn,relu,conv:32x1,bn,"
        "relu,conv:8x3),gap,dense:10";
    for (const auto& [name, spec] :
         {std::make_pair("resnet.cfg", resnet), std::make_pair("densenet", dense)}) {
        const auto [before, after] = bytes_of(spec, Shape{1, 28, 28});
        std::printf("%s, 64 rows of 1x28x28: activation bytes %lld as trained, %lld planned for inference "
                    "(%.1fx less)\n",
                    name, (long long)before, (long long)after, double(before) / double(after));
        EXPECT_LT(after * 4, before) << name;
    }
}

// The AVX-512 activations against conv_activate, the scalar definitions that training and device kernels
// use: exact where no exp or erf is involved, else within a few units in the last place (gelu: its erf
// to 1.5e-7 absolute), over [-30, 30] and the edges of exp's range.
TEST(ActivationSimd, MatchesScalarDefinitions) {
    using mimic::nn::ConvAct;
    if (!mimic::nn::impl::simd_activations_available()) GTEST_SKIP() << "no AVX-512F on this CPU";
    std::vector<float> x;
    for (int i = -30000; i <= 30000; ++i)
        x.push_back(float(i) * 1e-3f + 3e-5f * float(i % 7));
    for (const float v : {0.0f, -0.0f, 1e-30f, -1e-30f, 1e-6f, -1e-6f, 80.0f, -80.0f, 88.5f, -88.5f, 95.0f,
                          -95.0f, 104.0f, -104.0f, 200.0f, -200.0f})
        x.push_back(v);
    const std::int64_t n = std::int64_t(x.size());
    for (const ConvAct a :
         {ConvAct::none, ConvAct::relu, ConvAct::relu6, ConvAct::silu, ConvAct::hardswish,
          ConvAct::hardsigmoid, ConvAct::sigmoid, ConvAct::leakyrelu, ConvAct::elu, ConvAct::gelu}) {
        SCOPED_TRACE(int(a));
        const float alpha = 0.3f;
        std::vector<float> y(x.size());
        mimic::nn::impl::activate_rows(a, alpha, x.data(), y.data(), n - 3); // a masked tail
        mimic::nn::impl::activate_rows(a, alpha, x.data() + n - 3, y.data() + n - 3, 3);
        const bool exact =
            a != ConvAct::silu && a != ConvAct::sigmoid && a != ConvAct::elu && a != ConvAct::gelu;
        double worst = 0;
        for (std::int64_t i = 0; i < n; ++i) {
            const float want = mimic::nn::conv_activate(a, x[std::size_t(i)], alpha);
            const float got = y[std::size_t(i)];
            if (exact) {
                ASSERT_EQ(got, want) << "x = " << x[std::size_t(i)];
                continue;
            }
            const double err = std::fabs(double(got) - double(want));
            const double tol = 6e-7 * std::fabs(double(want)) + 1e-37 +
                               (a == ConvAct::gelu ? 1.6e-7 * std::fabs(double(x[std::size_t(i)])) : 0.0);
            ASSERT_LE(err, tol) << "x = " << x[std::size_t(i)] << ": " << got << " against " << want;
            if (want != 0) worst = std::max(worst, err / std::fabs(double(want)));
        }
        std::printf("activation %d: largest relative gap to the scalar definition %.2e\n", int(a), worst);
    }
}

// The concatenation's copy into a channel slice, both kernels (host rows, device elements): exactly the
// columns [col, col + n) of every row change, to the source's values.
TEST(Concatenation, CopyColumnsInto) {
    const std::int64_t B = 5, n = 37, width = 100, col = 41;
    const std::vector<float> src = mimic::test::random_values(std::size_t(B * n), 3);
    const std::vector<float> base = mimic::test::random_values(std::size_t(B * width), 4);
    for (const bool rows : {true, false}) {
        SCOPED_TRACE(rows ? "copy_columns_rows" : "copy_columns_elements");
        const Matrix a = mimic::test::device_matrix(src, B, n);
        const Matrix y = mimic::test::device_matrix(base, B, width);
        if (rows)
            mimic::nn::copy_columns_rows(a, y, col);
        else
            mimic::nn::copy_columns_elements(a, y, col);
        const auto got = mimic::test::to_host(y);
        for (std::int64_t b = 0; b < B; ++b)
            for (std::int64_t i = 0; i < width; ++i) {
                const bool inside = i >= col && i < col + n;
                ASSERT_EQ(got[std::size_t(b * width + i)],
                          inside ? src[std::size_t(b * n + i - col)] : base[std::size_t(b * width + i)])
                    << "row " << b << ", column " << i;
            }
    }
}
