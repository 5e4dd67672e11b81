// Tests of the architecture spec parser (grammar, errors that point at the bad token, shape errors) and of
// the Model (parameter names and layout, deterministic init, dropout, gradient accumulation, batch reuse).
#include "mimic/core/error.hpp"
#include "mimic/nn/layer.hpp"
#include "mimic/nn/layers/avgpool2d.hpp"
#include "mimic/nn/layers/dense.hpp"
#include "mimic/nn/layers/maxpool2d.hpp"
#include "mimic/nn/layers/relu.hpp"
#include "mimic/nn/model.hpp"
#include "mimic/nn/spec.hpp"

#include "nn_test_util.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

using namespace mimic;
using namespace mimic::nn;
using mimic::test::device_matrix;
using mimic::test::random_values;
using mimic::test::to_host;

namespace {

std::string error_of(const std::string& spec, Shape in = {1, 28, 28}) {
    try {
        Model m(spec, in);
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

} // namespace

TEST(Spec, ParsesEveryToken) {
    const auto l = parse_spec("conv:32x3, relu,conv:16x5s2p1,pool:2,sigmoid,tanh,flatten,dropout:0.25,"
                              "bottleneck:250,dense:10,conv:8x3s2,conv:8x3p0");
    ASSERT_EQ(l.size(), 12u);
    EXPECT_EQ(l[0].kind, LayerKind::Conv);
    EXPECT_EQ(l[0].units, 32);
    EXPECT_EQ(l[0].kernel, 3);
    EXPECT_EQ(l[0].stride, 1);
    EXPECT_EQ(l[0].pad, 1);
    EXPECT_EQ(l[1].kind, LayerKind::ReLU);
    EXPECT_EQ(l[1].token, "relu");
    EXPECT_EQ(l[1].position, 2);
    EXPECT_EQ(l[2].units, 16);
    EXPECT_EQ(l[2].kernel, 5);
    EXPECT_EQ(l[2].stride, 2);
    EXPECT_EQ(l[2].pad, 1);
    EXPECT_EQ(l[3].kind, LayerKind::Pool);
    EXPECT_EQ(l[3].kernel, 2);
    EXPECT_EQ(l[4].kind, LayerKind::Sigmoid);
    EXPECT_EQ(l[5].kind, LayerKind::Tanh);
    EXPECT_EQ(l[6].kind, LayerKind::Flatten);
    EXPECT_EQ(l[7].kind, LayerKind::Dropout);
    EXPECT_FLOAT_EQ(l[7].rate, 0.25f);
    EXPECT_EQ(l[8].kind, LayerKind::Bottleneck);
    EXPECT_EQ(l[8].units, 250);
    EXPECT_EQ(l[9].kind, LayerKind::Dense);
    EXPECT_EQ(l[10].stride, 2);
    EXPECT_EQ(l[10].pad, 1);
    EXPECT_EQ(l[11].pad, 0);
}

TEST(Spec, ParsesPoolingAndActivationTokens) {
    const auto l =
        parse_spec("pool:3s2p1,pool:2p1,pool:3s1,avgpool:3s1p1,avgpool:2e,avgpool:3s2p1e,gap,relu6,"
                   "silu,hardswish,hardsigmoid");
    ASSERT_EQ(l.size(), 11u);
    const auto window = [&](std::size_t i) { return std::vector<int>{l[i].kernel, l[i].stride, l[i].pad}; };
    EXPECT_EQ(l[0].kind, LayerKind::Pool);
    EXPECT_EQ(window(0), (std::vector<int>{3, 2, 1}));
    EXPECT_EQ(window(1), (std::vector<int>{2, 2, 1}));
    EXPECT_EQ(window(2), (std::vector<int>{3, 1, 0}));
    EXPECT_EQ(l[3].kind, LayerKind::AvgPool);
    EXPECT_EQ(window(3), (std::vector<int>{3, 1, 1}));
    EXPECT_TRUE(l[3].count_pad);
    EXPECT_EQ(window(4), (std::vector<int>{2, 2, 0}));
    EXPECT_FALSE(l[4].count_pad);
    EXPECT_EQ(window(5), (std::vector<int>{3, 2, 1}));
    EXPECT_FALSE(l[5].count_pad);
    EXPECT_EQ(l[6].kind, LayerKind::GlobalAvgPool);
    EXPECT_EQ(l[7].kind, LayerKind::ReLU6);
    EXPECT_EQ(l[8].kind, LayerKind::SiLU);
    EXPECT_EQ(l[9].kind, LayerKind::HardSwish);
    EXPECT_EQ(l[10].kind, LayerKind::HardSigmoid);
    // pool:K keeps its meaning: window K, stride K, no padding.
    const auto p = parse_spec("pool:2").at(0);
    EXPECT_EQ((std::vector<int>{p.kernel, p.stride, p.pad}), (std::vector<int>{2, 2, 0}));
}

TEST(Spec, ParsesLeakyReLUELUAndGELUWithTheirAlphas) {
    const auto l = parse_spec("leakyrelu,leakyrelu:0.2,elu,elu:0.5,gelu");
    ASSERT_EQ(l.size(), 5u);
    EXPECT_EQ(l[0].kind, LayerKind::LeakyReLU);
    EXPECT_FLOAT_EQ(l[0].alpha, 0.01f);
    EXPECT_FLOAT_EQ(l[1].alpha, 0.2f);
    EXPECT_EQ(l[2].kind, LayerKind::ELU);
    EXPECT_FLOAT_EQ(l[2].alpha, 1.0f);
    EXPECT_FLOAT_EQ(l[3].alpha, 0.5f);
    EXPECT_EQ(l[4].kind, LayerKind::GELU);
    EXPECT_THROW(parse_spec("dense:4,leakyrelu:x"), SpecSyntaxError);
    EXPECT_THROW(parse_spec("dense:4,elu:"), SpecSyntaxError);
    EXPECT_THROW(parse_spec("dense:4,gelu:1"), SpecSyntaxError);
}

TEST(Spec, PoolingShapes) {
    // The torchvision ResNet stem: 3x3 stride 2 pad 1 on 28x28 gives 14x14; then global pooling.
    Model m("conv:8x3,pool:3s2p1,avgpool:3s1p1,avgpool:2s2p1e,gap,dense:4", {1, 28, 28});
    EXPECT_EQ(m.layer(1).out_shape(), (Shape{8, 14, 14}));
    EXPECT_EQ(m.layer(2).out_shape(), (Shape{8, 14, 14}));
    EXPECT_EQ(m.layer(3).out_shape(), (Shape{8, 8, 8}));
    EXPECT_EQ(m.layer(4).out_shape(), (Shape{8, 1, 1}));
    EXPECT_EQ(Model("pool:3", {2, 8, 7}).output_shape(), (Shape{2, 2, 2}));
}

TEST(Spec, PoolCeilMode) {
    const auto l = parse_spec("pool:3s2c,pool:3s2p1c,pool:2").at(1);
    EXPECT_TRUE(l.ceil);
    EXPECT_EQ((std::vector<int>{l.kernel, l.stride, l.pad}), (std::vector<int>{3, 2, 1}));
    EXPECT_FALSE(parse_spec("pool:2").at(0).ceil);
    // ceil((H + 2p - k) / s) + 1 where floor gives one less (SqueezeNet: 6 -> 3, not 2) ...
    EXPECT_EQ(Model("pool:3s2c", {2, 6, 6}).output_shape(), (Shape{2, 3, 3}));
    EXPECT_EQ(Model("pool:2c", {1, 5, 4}).output_shape(), (Shape{1, 3, 2}));
    // ... but the last window must start inside the input or its left padding: 5 + 2 - 3 = 4, ceil(4/3) + 1
    // = 3 windows would start the third at 6 - 1 = 5, past the input, so 2.
    EXPECT_EQ(Model("pool:3s3p1c", {1, 5, 5}).output_shape(), (Shape{1, 2, 2}));
    // Average pooling takes the same ceil mode, after e; max pooling has no e.
    const auto a = parse_spec("avgpool:3s2p1ec").at(0);
    EXPECT_TRUE(a.ceil);
    EXPECT_FALSE(a.count_pad);
    EXPECT_TRUE(parse_spec("avgpool:2c").at(0).ceil);
    EXPECT_EQ(Model("avgpool:2c", {1, 5, 4}).output_shape(), (Shape{1, 3, 2}));
    EXPECT_THROW(parse_spec("avgpool:3s2ce"), SpecSyntaxError);
    EXPECT_THROW(parse_spec("pool:3s2ec"), SpecSyntaxError);
}

TEST(Spec, ErrorsPointAtTheBadToken) {
    struct Case {
        const char* spec;
        const char* expect;
    };
    for (const auto& c : std::vector<Case>{
             {"dense:100,relu,dense:abc",
              "arch: syntax error in token 3 'dense:abc': expected dense:<units>"},
             {"dense:100,relu,dense:abc", "(at character 16 of 'dense:100,relu,dense:abc')"},
             {"dense:0", "token 1 'dense:0'"},
             {"dense:10,,dense:5", "token 2 ''"},
             {"dense:10,", "token 2 ''"},
             {"relu,dence:5", "token 2 'dence:5'"},
             {"conv:32,relu", "token 1 'conv:32': expected conv:<filters>x<kernel>"},
             {"conv:32x3q1", "token 1 'conv:32x3q1'"},
             {"conv:32x3s0", "token 1 'conv:32x3s0'"},
             {"conv:32x3p3", "padding smaller than the kernel"},
             {"conv:32x3g0",
              "token 1 'conv:32x3g0': expected conv:<filters>x<kernel>[s<stride>][p<padding>][g"},
             {"conv:32x3g5", "token 1 'conv:32x3g5': expected conv filters divisible by the groups"},
             {"conv:32x3g2s2", "token 1 'conv:32x3g2s2'"},
             {"dwconv:3g2", "token 1 'dwconv:3g2': expected dwconv:<kernel>[s<stride>][p<padding>]"},
             {"dwconv", "token 1 'dwconv'"},
             {"pool:x", "token 1 'pool:x'"},
             {"pool:3p2", "token 1 'pool:3p2': expected pool padding at most half the window"},
             {"pool:3s0", "token 1 'pool:3s0': expected pool:<window>[s<stride>][p<padding>]"},
             {"pool:2e", "token 1 'pool:2e'"},
             {"avgpool:3s1p1x", "token 1 'avgpool:3s1p1x': expected avgpool:<window>"},
             {"avgpool", "token 1 'avgpool'"},
             {"gap:2", "token 1 'gap:2': expected no argument"},
             {"relu6:1", "token 1 'relu6:1'"},
             {"swish", "token 1 'swish'"},
             {"dropout:1.0", "token 1 'dropout:1.0': expected dropout:<rate> with 0 <= rate < 1"},
             {"dropout:-0.1", "token 1 'dropout:-0.1'"},
             {"relu:3", "token 1 'relu:3'"},
             {"bottleneck:", "token 1 'bottleneck:'"},
             {"dense:99999999999", "token 1 'dense:99999999999'"},
             {"", "empty architecture spec"},
         }) {
        const std::string msg = error_of(c.spec);
        EXPECT_NE(msg.find(c.expect), std::string::npos) << "spec '" << c.spec << "' gave: " << msg;
    }
}

TEST(Spec, SyntaxErrorsCarryTheTokenOffset) {
    // The CLI draws a caret under [offset, offset + length) of the spec as written.
    try {
        parse_spec("dense:100, relu,dense:abc");
        FAIL() << "no error";
    } catch (const SpecSyntaxError& e) {
        EXPECT_EQ(e.offset, 16u);
        EXPECT_EQ(e.length, 9u);
    }
    try {
        parse_spec("dense:10,,dense:5");
        FAIL() << "no error";
    } catch (const SpecSyntaxError& e) {
        EXPECT_EQ(e.offset, 9u);
        EXPECT_EQ(e.length, 0u);
    }
}

TEST(Spec, ShapeErrorsNameTheToken) {
    // conv and pool need an image; flat data is (1, 1, D).
    EXPECT_NE(error_of("conv:8x3,relu", {1, 1, 784}).find("token 1 'conv:8x3': conv needs an image input"),
              std::string::npos);
    EXPECT_NE(error_of("dense:10,conv:8x3").find("token 2 'conv:8x3': conv needs an image"),
              std::string::npos);
    EXPECT_NE(error_of("conv:4x3,pool:2,dense:5,pool:2").find("token 4 'pool:2': pool needs an image"),
              std::string::npos);
    EXPECT_NE(error_of("pool:8,pool:4", {3, 28, 28})
                  .find("token 2 'pool:4': pool window 4 is larger than the input 3x3x3"),
              std::string::npos);
    EXPECT_NE(error_of("dense:10,gap").find("token 2 'gap': gap needs an image"), std::string::npos);
    EXPECT_NE(error_of("dense:10,avgpool:2").find("token 2 'avgpool:2': avgpool needs an image"),
              std::string::npos);
    EXPECT_NE(error_of("avgpool:5p1", {3, 2, 2})
                  .find("token 1 'avgpool:5p1': avgpool window 5 is larger than the padded input 4x4"),
              std::string::npos);
    EXPECT_NE(error_of("conv:4x7p0", {1, 5, 5}).find("token 1 'conv:4x7p0': kernel 7 is larger"),
              std::string::npos);
    EXPECT_NE(
        error_of("conv:6x3g2", {3, 5, 5}).find("token 1 'conv:6x3g2': 2 groups do not divide the input's 3"),
        std::string::npos);
}

TEST(Spec, GroupedAndDepthwiseConv) {
    // dwconv: one filter and one group per input channel; parameters {C/G, K, K, F}.
    Model m("conv:6x3,dwconv:3s2,conv:4x1g2,dense:2", {2, 8, 8});
    EXPECT_EQ(m.layer(1).out_shape(), (Shape{6, 4, 4}));
    EXPECT_EQ(m.layer(2).out_shape(), (Shape{4, 4, 4}));
    EXPECT_EQ(m.param_tensor("layer1.conv.W").shape, (std::vector<std::int64_t>{1, 3, 3, 6}));
    EXPECT_EQ(m.param_tensor("layer2.conv.W").shape, (std::vector<std::int64_t>{3, 1, 1, 4}));
    EXPECT_EQ(Model("conv:6x3g1", {2, 8, 8}).num_params(), Model("conv:6x3", {2, 8, 8}).num_params());
}

TEST(Model, ShapesNamesAndLayout) {
    Model m("conv:4x3,relu,pool:2,dense:8,bottleneck:2,dense:3", {1, 6, 6});
    EXPECT_EQ(m.input_size(), 36);
    EXPECT_EQ(m.output_size(), 3);
    EXPECT_EQ(m.num_layers(), 6u);
    EXPECT_TRUE(m.layer(2).out_shape() == (Shape{4, 3, 3}));
    const auto& t = m.param_tensors();
    const std::vector<std::string> names{"layer0.conv.W",  "layer0.conv.b",       "layer3.dense.W",
                                         "layer3.dense.b", "layer4.bottleneck.W", "layer5.dense.W",
                                         "layer5.dense.b"};
    ASSERT_EQ(t.size(), names.size());
    std::int64_t offset = 0;
    for (std::size_t i = 0; i < t.size(); ++i) {
        EXPECT_EQ(t[i].name, names[i]);
        EXPECT_EQ(t[i].offset, offset);
        offset += t[i].size;
    }
    EXPECT_EQ(t[0].shape, (std::vector<std::int64_t>{1, 3, 3, 4}));
    EXPECT_EQ(t[2].shape, (std::vector<std::int64_t>{36, 8}));
    EXPECT_EQ(t[4].shape, (std::vector<std::int64_t>{8, 2}));
    EXPECT_EQ(m.num_params(), offset);
    EXPECT_EQ(m.params().extent(0), std::size_t(offset));
    EXPECT_EQ(m.param_tensor("layer5.dense.b").size, 3);
    EXPECT_THROW(m.param_tensor("layer1.dense.W"), Error);
    // Forward multiply-adds x2: conv 36 pixels * 4 filters * 9, dense 36*8, 8*2, 2*3.
    EXPECT_DOUBLE_EQ(m.flops_per_sample(), 2.0 * (36 * 4 * 9 + 36 * 8 + 8 * 2 + 2 * 3));
    const std::string s = m.summary();
    EXPECT_NE(s.find("pool:2"), std::string::npos);
    EXPECT_NE(s.find("4x3x3"), std::string::npos);
}

TEST(Model, ReLUAfterConvIsFusedIntoIt) {
    Model m("conv:4x3,relu,pool:2,dense:5,relu,dense:3", {1, 6, 6});
    EXPECT_TRUE(m.layer(1).is_alias());  // applied by the conv
    EXPECT_FALSE(m.layer(4).is_alias()); // after a dense layer: a layer of its own
    // The conv's output is rectified.
    Model c("conv:4x3,relu", {1, 6, 6});
    c.init(5);
    const auto y = to_host(c.forward(device_matrix(random_values(2 * 36, 6), 2, 36), false));
    EXPECT_EQ(*std::min_element(y.begin(), y.end()), 0.0f);
}

TEST(Model, InitIsDeterministicHeOrGlorotWithZeroBiases) {
    Model a("dense:400,relu,dense:300,dense:10", {1, 1, 500}),
        b("dense:400,relu,dense:300,dense:10", {1, 1, 500});
    a.init(7);
    b.init(7);
    const auto pa = to_host(a.params()), pb = to_host(b.params());
    EXPECT_EQ(pa, pb);
    b.init(8);
    EXPECT_NE(pa, to_host(b.params()));
    auto stats = [&](const std::string& name) {
        const auto& t = a.param_tensor(name);
        double s = 0, ss = 0, mx = 0;
        for (std::int64_t k = 0; k < t.size; ++k) {
            const double v = pa[t.offset + k];
            s += v;
            ss += v * v;
            mx = std::max(mx, std::fabs(v));
        }
        return std::make_tuple(s / t.size, std::sqrt(ss / t.size - (s / t.size) * (s / t.size)), mx);
    };
    // He normal before ReLU: std sqrt(2/500).
    auto [m0, sd0, mx0] = stats("layer0.dense.W");
    EXPECT_NEAR(m0, 0.0, 0.002);
    EXPECT_NEAR(sd0, std::sqrt(2.0 / 500), 0.01 * std::sqrt(2.0 / 500));
    // Glorot uniform elsewhere: limit sqrt(6/(400+300)), std limit/sqrt(3).
    auto [m1, sd1, mx1] = stats("layer2.dense.W");
    const double lim = std::sqrt(6.0 / 700);
    EXPECT_LE(mx1, lim);
    EXPECT_NEAR(sd1, lim / std::sqrt(3.0), 0.01 * lim);
    for (const auto* bias : {"layer0.dense.b", "layer2.dense.b", "layer3.dense.b"}) {
        const auto& t = a.param_tensor(bias);
        for (std::int64_t k = 0; k < t.size; ++k)
            EXPECT_EQ(pa[t.offset + k], 0.0f) << bias;
    }
}

TEST(Model, DropoutMasksAreDeterministicScaledAndOffInEval) {
    Model m("dropout:0.5", {1, 1, 2000});
    const Matrix x = device_matrix(std::vector<float>(4000, 1.0f), 2, 2000);
    const auto y1 = to_host(m.forward(x, true, 5));
    const auto y2 = to_host(m.forward(x, true, 5));
    const auto y3 = to_host(m.forward(x, true, 6));
    EXPECT_EQ(y1, y2);
    EXPECT_NE(y1, y3);
    int kept = 0;
    for (float v : y1) {
        EXPECT_TRUE(v == 0.0f || v == 2.0f);
        kept += v != 0.0f;
    }
    EXPECT_NEAR(kept / 4000.0, 0.5, 0.05);
    // Rows draw different masks.
    EXPECT_NE(std::vector<float>(y1.begin(), y1.begin() + 2000),
              std::vector<float>(y1.begin() + 2000, y1.end()));
    EXPECT_EQ(to_host(m.forward(x, false, 5)), std::vector<float>(4000, 1.0f));
}

TEST(Model, GradientsAccumulateUntilZeroed) {
    Model m("conv:2x3,relu,pool:2,dense:3", {1, 4, 4});
    m.init(3);
    const Matrix x = device_matrix(random_values(2 * 16, 1), 2, 16);
    const Matrix dz = device_matrix(random_values(6, 2), 2, 3);
    m.zero_grads();
    m.forward(x, true);
    m.backward(dz);
    const auto g1 = to_host(m.grads());
    m.forward(x, true);
    m.backward(dz);
    const auto g2 = to_host(m.grads());
    double n = 0;
    for (std::size_t i = 0; i < g1.size(); ++i) {
        EXPECT_NEAR(g2[i], 2.0f * g1[i], 1e-6 + 1e-5 * std::fabs(g1[i]));
        n += std::fabs(g1[i]);
    }
    EXPECT_GT(n, 0.0);
    m.zero_grads();
    for (float v : to_host(m.grads()))
        EXPECT_EQ(v, 0.0f);
}

TEST(Model, BatchSizesMayChangeAndRowsAreIndependent) {
    Model m("conv:3x3,relu,pool:2,dense:6,relu,dense:4", {2, 6, 6});
    m.init(9);
    const auto xs = random_values(5 * 72, 4);
    const auto big = to_host(m.forward(device_matrix(xs, 5, 72), false));
    const auto small = to_host(
        m.forward(device_matrix(std::vector<float>(xs.begin() + 72, xs.begin() + 216), 2, 72), false));
    ASSERT_EQ(small.size(), 8u);
    for (int i = 0; i < 8; ++i)
        EXPECT_NEAR(small[i], big[4 + i], 1e-5 + 1e-5 * std::fabs(big[4 + i]));
    // A batch of zero rows is valid.
    const Matrix empty("empty", 0, 72);
    EXPECT_EQ(m.forward(empty, true).extent(0), 0u);
    EXPECT_NO_THROW(m.backward(Matrix("dz", 0, 4)));
    EXPECT_THROW(m.forward(Matrix("bad", 2, 71), false), Error);
    m.forward(device_matrix(xs, 5, 72), false);
    EXPECT_THROW(m.backward(Matrix("dz", 4, 4)), Error);
}

TEST(Model, MovedModelKeepsWorking) {
    Model a("dense:5,tanh,dense:2", {1, 1, 3});
    a.init(1);
    const Matrix x = device_matrix(random_values(6, 3), 2, 3);
    const auto za = to_host(a.forward(x, false));
    Model b = std::move(a);
    EXPECT_EQ(to_host(b.forward(x, false)), za);
    std::vector<Model> v;
    v.push_back(std::move(b));
    EXPECT_EQ(to_host(v[0].forward(x, false)), za);
}

// The distill stage's model-parallel wide pair, without MPI: dense:H,relu,dense:C split over M = 2 shards
// (first dense by output columns, second by input rows) through the same dense/relu kernels must give
// the full model's logits as a sum of partial products, and the slices of its gradients.
TEST(Model, DenseKernelsRunOnColumnAndRowSlices) {
    const int B = 4, D = 5, H = 6, C = 3, M = 2, Hs = H / M;
    Model full("dense:6,relu,dense:3", {1, 1, D});
    full.init(17);
    auto p = to_host(full.params());
    const auto jitter = random_values(p.size(), 8, 0.2f);
    for (std::size_t i = 0; i < p.size(); ++i)
        p[i] += jitter[i]; // non-zero biases
    mimic::test::set_from_host(full.params(), p);
    const Matrix x = device_matrix(random_values(B * D, 9), B, D);
    const auto dz_h = random_values(B * C, 10);
    const Matrix dz = device_matrix(dz_h, B, C);
    full.zero_grads();
    const auto z_full = to_host(full.forward(x, false));
    full.backward(dz);
    const auto g = to_host(full.grads());

    const auto& W1 = full.param_tensor("layer0.dense.W");
    const auto& b1 = full.param_tensor("layer0.dense.b");
    const auto& W2 = full.param_tensor("layer2.dense.W");
    const auto& b2 = full.param_tensor("layer2.dense.b");
    std::vector<float> z(B * C, 0.0f);
    for (int j = 0; j < M; ++j) {
        // Shard j: its own contiguous W1[:, j*Hs:(j+1)*Hs] and b1 slice; W2 rows j*Hs.. are contiguous.
        std::vector<float> w1(D * Hs), bb(Hs), w2(Hs * C);
        for (int d = 0; d < D; ++d)
            for (int h = 0; h < Hs; ++h)
                w1[d * Hs + h] = p[W1.offset + d * H + j * Hs + h];
        for (int h = 0; h < Hs; ++h)
            bb[h] = p[b1.offset + j * Hs + h];
        for (int i = 0; i < Hs * C; ++i)
            w2[i] = p[W2.offset + j * Hs * C + i];
        Vector shard("shard", w1.size() + bb.size() + w2.size()), grad("shard_grad", shard.extent(0));
        mimic::test::set_from_host(shard, [&] {
            std::vector<float> v(w1);
            v.insert(v.end(), bb.begin(), bb.end());
            v.insert(v.end(), w2.begin(), w2.end());
            return v;
        }());
        const UnmanagedMatrix W1j(shard.data(), D, Hs), W2j(shard.data() + D * Hs + Hs, Hs, C);
        const UnmanagedVector b1j(shard.data() + D * Hs, Hs);
        const UnmanagedMatrix dW1j(grad.data(), D, Hs), dW2j(grad.data() + D * Hs + Hs, Hs, C);
        const UnmanagedVector db1j(grad.data() + D * Hs, Hs);
        Matrix pre("pre", B, Hs), h("h", B, Hs), zj("zj", B, C), dh("dh", B, Hs), dpre("dpre", B, Hs);
        dense_forward(x, W1j, b1j, pre);
        relu_forward(pre, h);
        dense_forward(h, W2j, UnmanagedVector(), zj); // partial sum: b2 is added once, after the allreduce
        const auto zjh = to_host(zj);
        for (int i = 0; i < B * C; ++i)
            z[i] += zjh[i];
        // Backward from the full dL/dz (identical on every shard after the allreduce).
        dense_backward(h, W2j, dz, dW2j, UnmanagedVector(), dh);
        relu_backward(h, dh, dpre);
        dense_backward(x, W1j, dpre, dW1j, db1j, Matrix());
        const auto gs = to_host(grad);
        for (int d = 0; d < D; ++d)
            for (int hh = 0; hh < Hs; ++hh)
                EXPECT_NEAR(gs[d * Hs + hh], g[W1.offset + d * H + j * Hs + hh], 1e-5) << "dW1 shard " << j;
        for (int hh = 0; hh < Hs; ++hh)
            EXPECT_NEAR(gs[D * Hs + hh], g[b1.offset + j * Hs + hh], 1e-5);
        for (int i = 0; i < Hs * C; ++i)
            EXPECT_NEAR(gs[D * Hs + Hs + i], g[W2.offset + j * Hs * C + i], 1e-5);
    }
    for (int i = 0; i < B * C; ++i)
        EXPECT_NEAR(z[i] + p[b2.offset + i % C], z_full[i], 1e-5);
}

// Max pooling on ties: the first maximum in scan order (row by row) takes the gradient, for the 2x2 fast
// path and the general window alike; the rows and columns the floor leaves out get zero gradient.
TEST(Model, PoolTiesGoToTheFirstMaximum) {
    for (int k : {2, 3}) {
        SCOPED_TRACE(k);
        const int H = 2 * k + 1; // one row and one column left over
        const Shape in{1, H, H};
        std::vector<float> x(H * H, 1.0f);
        x[(k + 1) * H + 1] = 5.0f;     // window (1, 0): unique maximum in its second row, second column
        x[0 * H + k + 1] = 5.0f;       // window (0, 1): two maxima, (0, k+1) first in scan order ...
        x[1 * H + k] = 5.0f;           // ... and (1, k) second
        x[(H - 1) * H + H - 1] = 9.0f; // the left-over corner never wins
        IntMatrix arg("arg", 1, 4);
        Matrix y("y", 1, 4), dx("dx", 1, H * H);
        maxpool2d_forward(device_matrix(x, 1, H * H), in, k, arg, y);
        EXPECT_EQ(to_host(y), (std::vector<float>{1.0f, 5.0f, 5.0f, 1.0f}));
        auto a = Kokkos::create_mirror_view(arg);
        Kokkos::deep_copy(a, arg);
        EXPECT_EQ(a(0, 0), 0);               // all ties: the window's first element
        EXPECT_EQ(a(0, 1), k + 1);           // first of two maxima
        EXPECT_EQ(a(0, 2), (k + 1) * H + 1); // unique maximum
        EXPECT_EQ(a(0, 3), k * H + k);       // all ties
        maxpool2d_backward(device_matrix({1.0f, 2.0f, 3.0f, 4.0f}, 1, 4), arg, in, k, dx);
        std::vector<float> want(H * H, 0.0f);
        want[0] = 1.0f;
        want[k + 1] = 2.0f;
        want[(k + 1) * H + 1] = 3.0f;
        want[k * H + k] = 4.0f;
        EXPECT_EQ(to_host(dx), want);
    }
}

// The general window kernels (overlapping, padded) on pool:K's windows give what the tiled kernels give:
// the same maxima, argmax and routed gradients.
TEST(Model, PoolWindowKernelsAgreeWithTheTiledKernels) {
    for (int k : {2, 3}) {
        SCOPED_TRACE(k);
        const Shape in{2, 7, 8};
        const int B = 3, O = in.c * (in.h / k) * (in.w / k);
        const Matrix x = device_matrix(random_values(std::size_t(B * in.size()), 17), B, in.size());
        const Matrix dy = device_matrix(random_values(std::size_t(B * O), 18), B, O);
        IntMatrix arg_t("arg_t", B, O), arg_w("arg_w", B, O);
        Matrix y_t("y_t", B, O), y_w("y_w", B, O), dx_t("dx_t", B, in.size()), dx_w("dx_w", B, in.size());
        maxpool2d_forward(x, in, k, arg_t, y_t);
        maxpool2d_forward_window(x, in, PoolWindow{k, k, 0}, arg_w, y_w);
        EXPECT_EQ(to_host(y_t), to_host(y_w));
        maxpool2d_backward(dy, arg_t, in, k, dx_t);
        maxpool2d_backward_window(dy, arg_w, in, PoolWindow{k, k, 0}, dx_w);
        EXPECT_EQ(to_host(dx_t), to_host(dx_w));
    }
}

// Average pooling on a 1x3x3 ramp (1..9), window 2, stride 2, padding 1: the corner windows hold one real
// cell, the edge windows two, the inner window four; count_pad divides by 4 everywhere.
TEST(Model, AvgPoolCountsOrSkipsThePadding) {
    const Shape in{1, 3, 3};
    const Matrix x = device_matrix({1, 2, 3, 4, 5, 6, 7, 8, 9}, 1, 9);
    Matrix y("y", 1, 4), dx("dx", 1, 9);
    const PoolWindow win{2, 2, 1};
    avgpool2d_forward(x, in, win, true, y);
    EXPECT_EQ(to_host(y), (std::vector<float>{0.25f, 5.0f / 4, 11.0f / 4, 28.0f / 4}));
    avgpool2d_forward(x, in, win, false, y);
    EXPECT_EQ(to_host(y), (std::vector<float>{1.0f, 2.5f, 5.5f, 7.0f}));
    avgpool2d_backward(device_matrix({1, 1, 1, 1}, 1, 4), in, win, false, dx);
    EXPECT_EQ(to_host(dx), (std::vector<float>{1, 0.5f, 0.5f, 0.5f, 0.25f, 0.25f, 0.5f, 0.25f, 0.25f}));
    Matrix g("g", 1, 1);
    global_avgpool_forward(x, in, g);
    EXPECT_FLOAT_EQ(to_host(g)[0], 5.0f);
}

// Both column-sum kernels (the host's blocked one and the device's team-per-column one) run on every
// backend: each must add the column sums of dy to db, for widths below, at and above one 64-column block.
TEST(ColumnSums, BlockedAndTeamKernelsAddTheColumnSums) {
    for (const std::int64_t cols : {1, 10, 64, 130}) {
        const std::int64_t rows = 37;
        const auto values = random_values(std::size_t(rows * cols), 11 + std::uint64_t(cols));
        const Matrix dy = device_matrix(values, rows, cols);
        std::vector<double> want(std::size_t(cols), 0.0);
        for (std::int64_t i = 0; i < rows; ++i)
            for (std::int64_t j = 0; j < cols; ++j)
                want[std::size_t(j)] += double(values[std::size_t(i * cols + j)]);
        Vector blocked("mimic::test::db_blocked", cols), teams("mimic::test::db_teams", cols);
        Kokkos::deep_copy(blocked, 1.0f);
        Kokkos::deep_copy(teams, 1.0f);
        accumulate_column_sums_blocked(dy, UnmanagedVector(blocked.data(), cols));
        accumulate_column_sums_teams(dy, UnmanagedVector(teams.data(), cols));
        const auto hb = to_host(blocked), ht = to_host(teams);
        for (std::int64_t j = 0; j < cols; ++j) {
            EXPECT_NEAR(hb[std::size_t(j)], 1.0 + want[std::size_t(j)], 1e-4) << "blocked, column " << j;
            EXPECT_NEAR(ht[std::size_t(j)], 1.0 + want[std::size_t(j)], 1e-4) << "teams, column " << j;
        }
    }
}

TEST(Spec, BlocksParseIntoBranchesWithPaths) {
    const auto l =
        parse_spec("conv:8x3, res(conv:8x3,relu,conv:8x3) ,cat(|conv:4x1|id),res(conv:8x1|conv:8x1s1)");
    ASSERT_EQ(l.size(), 4u);
    EXPECT_EQ(l[1].kind, LayerKind::Block);
    EXPECT_EQ(l[1].join, Join::Add);
    EXPECT_EQ(l[1].token, "res(conv:8x3,relu,conv:8x3)");
    EXPECT_EQ(l[1].offset, 10u);
    ASSERT_EQ(l[1].branches.size(), 2u); // res(A): A and the identity shortcut
    EXPECT_EQ(l[1].branches[0].size(), 3u);
    EXPECT_TRUE(l[1].branches[1].empty());
    EXPECT_EQ(l[1].branches[0][2].path, "2.1.3");
    EXPECT_EQ(l[1].branches[0][2].offset, 28u);
    EXPECT_EQ(l[2].join, Join::Concat);
    ASSERT_EQ(l[2].branches.size(), 3u);
    EXPECT_TRUE(l[2].branches[0].empty());
    EXPECT_EQ(l[2].branches[1].at(0).token, "conv:4x1");
    EXPECT_TRUE(l[2].branches[2].empty());
    EXPECT_EQ(l[3].path, "4");
    EXPECT_EQ(l[3].branches.at(1).at(0).path, "4.2.1");
}

TEST(Spec, ErrorsInsideBlocksPointAtTheInnerToken) {
    const std::string spec = "conv:8x3,res(conv:8x3,cat(id|conv:4xq)),dense:10";
    try {
        parse_spec(spec);
        FAIL() << "no error";
    } catch (const SpecSyntaxError& e) {
        EXPECT_EQ(e.offset, spec.find("conv:4xq"));
        EXPECT_EQ(e.length, 8u);
        EXPECT_NE(std::string(e.what()).find("token 2.1.2.2.1 'conv:4xq'"), std::string::npos) << e.what();
    }
    auto syntax = [](const std::string& s) {
        try {
            parse_spec(s);
        } catch (const SpecSyntaxError& e) {
            return std::string(e.what());
        }
        return std::string();
    };
    EXPECT_NE(syntax("conv:8x3,res(conv:8x3").find("token 2 'res(conv:8x3': expected a ')'"),
              std::string::npos);
    EXPECT_NE(syntax("conv:8x3),relu").find("token 1 'conv:8x3)'"), std::string::npos);
    EXPECT_NE(syntax("sum(conv:8x3)").find("expected a block res(A[|B...])"), std::string::npos);
    EXPECT_NE(syntax("cat(conv:8x3)").find("two branches or more"), std::string::npos);
    EXPECT_NE(syntax("gate(conv:8x3|conv:8x3)").find("gate(A) with A one chain"), std::string::npos);
    EXPECT_NE(syntax("res(conv:8x3,,relu)").find("token 1.1.2 ''"), std::string::npos);
    std::string deep = "relu";
    for (int i = 0; i < 65; ++i)
        deep = "res(" + deep + ")";
    EXPECT_NE(syntax(deep).find("blocks nested at most 64 deep"), std::string::npos);
    // Shape errors name the block and both branches.
    EXPECT_NE(error_of("conv:8x3,res(conv:16x3s2)")
                  .find("token 2 'res(conv:16x3s2)': branch 1 gives 16x14x14 "
                        "but branch 2 (the input itself) gives 8x28x28"),
              std::string::npos)
        << error_of("conv:8x3,res(conv:16x3s2)");
    EXPECT_NE(error_of("conv:8x3,cat(id|pool:2)").find("same height and width"), std::string::npos);
    EXPECT_NE(error_of("conv:8x3,gate(conv:4x1)").find("one factor per channel (8x1x1 or 8 features)"),
              std::string::npos);
    EXPECT_NE(error_of("conv:8x3,res(dense:4)").find("token 2 'res(dense:4)'"), std::string::npos);
}

TEST(Model, BlockParameterNamesAndLayout) {
    // A chain's names and layout are those of ShapesNamesAndLayout; a block's nest under its layer.
    Model m(
        "conv:4x3,res(conv:4x3,relu,conv:4x3|conv:4x1),cat(id|res(conv:4x1)),gate(pool:6,conv:8x1,sigmoid),"
        "dense:3",
        {1, 6, 6});
    const std::vector<std::string> names{"layer0.conv.W",
                                         "layer0.conv.b",
                                         "layer1.res.b0.0.conv.W",
                                         "layer1.res.b0.0.conv.b",
                                         "layer1.res.b0.2.conv.W",
                                         "layer1.res.b0.2.conv.b",
                                         "layer1.res.b1.0.conv.W",
                                         "layer1.res.b1.0.conv.b",
                                         "layer2.cat.b1.0.res.b0.0.conv.W",
                                         "layer2.cat.b1.0.res.b0.0.conv.b",
                                         "layer3.gate.b0.1.conv.W",
                                         "layer3.gate.b0.1.conv.b",
                                         "layer4.dense.W",
                                         "layer4.dense.b"};
    const auto& t = m.param_tensors();
    ASSERT_EQ(t.size(), names.size());
    std::int64_t offset = 0;
    for (std::size_t i = 0; i < t.size(); ++i) {
        EXPECT_EQ(t[i].name, names[i]);
        EXPECT_EQ(t[i].offset, offset);
        offset += t[i].size;
    }
    EXPECT_EQ(m.param_tensor("layer1.res.b1.0.conv.W").shape, (std::vector<std::int64_t>{4, 1, 1, 4}));
    EXPECT_EQ(m.param_tensor("layer2.cat.b1.0.res.b0.0.conv.W").shape,
              (std::vector<std::int64_t>{4, 1, 1, 4}));
    EXPECT_TRUE(m.layer(2).out_shape() == (Shape{8, 6, 6}));
    EXPECT_EQ(m.param_tensor("layer4.dense.W").shape, (std::vector<std::int64_t>{8 * 36, 3}));
    EXPECT_EQ(m.param_range(1).first, m.param_tensor("layer1.res.b0.0.conv.W").offset);
    EXPECT_EQ(m.param_range(1).second, m.param_tensor("layer2.cat.b1.0.res.b0.0.conv.W").offset);
}

TEST(Model, BlockInitAndForwardAreDeterministicAndReuseBuffers) {
    const std::string spec = "conv:4x3,relu,res(conv:4x3,relu,conv:4x3),relu,cat(|conv:2x1),dense:3";
    Model a(spec, {1, 6, 6}), b(spec, {1, 6, 6});
    a.init(3);
    b.init(3);
    EXPECT_EQ(to_host(a.params()), to_host(b.params()));
    // Branch layers draw their own values: the two convs of the residual branch differ.
    const auto p = to_host(a.params());
    const auto& w0 = a.param_tensor("layer2.res.b0.0.conv.W");
    const auto& w2 = a.param_tensor("layer2.res.b0.2.conv.W");
    EXPECT_FALSE(std::equal(p.begin() + w0.offset, p.begin() + w0.offset + w0.size, p.begin() + w2.offset));
    const auto x = device_matrix(random_values(5 * 36, 8), 5, 36);
    const auto z1 = to_host(a.forward(x, false));
    const auto y1 = to_host(a.forward(leading_rows(x, 2), false)); // smaller batch: same buffers
    const auto z2 = to_host(a.forward(x, false));
    EXPECT_EQ(z1, z2);
    EXPECT_TRUE(std::equal(y1.begin(), y1.end(), z1.begin()));
}
