// Finite-difference gradient checks of every layer (through small Models) and every loss: central
// differences in float with per-tensor relative error bounds; a wrong backward formula fails them.
#include "mimic/core/error.hpp"
#include "mimic/nn/layers/conv2d.hpp"
#include "mimic/nn/loss.hpp"
#include "mimic/nn/model.hpp"

#include "nn_test_util.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

using namespace mimic;
using namespace mimic::nn;
using mimic::test::device_matrix;
using mimic::test::random_values;
using mimic::test::to_host;

namespace {

/// Relative error ||a - b|| / max(||a||, ||b||, floor) over a range.
double rel_error(const std::vector<double>& a, const std::vector<double>& b, double floor = 1e-3) {
    double d = 0, na = 0, nb = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        d += (a[i] - b[i]) * (a[i] - b[i]);
        na += a[i] * a[i];
        nb += b[i] * b[i];
    }
    return std::sqrt(d) / std::max({std::sqrt(na), std::sqrt(nb), floor});
}

/// Objective sum(r * logits) in double; its gradient w.r.t. the logits is r.
double objective(Model& m, const Matrix& x, const std::vector<float>& r, bool train) {
    const auto z = to_host(m.forward(x, train, /*dropout_seed=*/99));
    double s = 0;
    for (std::size_t i = 0; i < z.size(); ++i)
        s += double(r[i]) * z[i];
    return s;
}

/// Compares Model::backward with central differences on every parameter tensor, except those named in
/// `zero`, whose gradient must vanish (a bias right before a batch normalisation in training: the batch
/// mean takes any shift away), where central differences would only measure rounding noise.
void check_gradients(const std::string& spec, Shape in, bool train = false, int batch = 3,
                     float x_scale = 1.0f, const std::vector<std::string>& zero = {},
                     const ConvTuning& tuning = {}) {
    SCOPED_TRACE(spec);
    Model m(spec, in);
    m.set_conv_tuning(tuning);
    m.init(11);
    // Non-zero biases so that a missing or misplaced bias term shows.
    auto p0 = to_host(m.params());
    const auto jitter = random_values(p0.size(), 5, 0.1f);
    for (const auto& t : m.param_tensors())
        if (t.name.back() == 'b')
            for (std::int64_t k = 0; k < t.size; ++k)
                p0[t.offset + k] += jitter[t.offset + k];
    mimic::test::set_from_host(m.params(), p0);

    const Matrix x = device_matrix(random_values(batch * in.size(), 3, x_scale), batch, in.size());
    const auto r = random_values(batch * m.output_size(), 4);
    m.zero_grads();
    m.forward(x, train, 99);
    m.backward(device_matrix(r, batch, m.output_size()));
    const auto g = to_host(m.grads());

    // ReLU and max pooling make the objective piecewise smooth: an element whose +eps and -eps one-sided
    // differences disagree has a kink (a sign change or an argmax switch) inside [p - eps, p + eps]; it
    // is left out, and at most a fifth of a tensor (or one element) may be left out.
    const float eps = 1e-3f;
    const double f0 = objective(m, x, r, train);
    for (const auto& t : m.param_tensors()) {
        if (std::find(zero.begin(), zero.end(), t.name) != zero.end()) {
            for (std::int64_t k = 0; k < t.size; ++k)
                EXPECT_NEAR(g[t.offset + k], 0.0, 1e-5) << t.name << "[" << k << "] should vanish";
            continue;
        }
        std::vector<double> fd, an;
        std::int64_t kinks = 0;
        for (std::int64_t k = 0; k < t.size; ++k) {
            auto p = p0;
            p[t.offset + k] = p0[t.offset + k] + eps;
            mimic::test::set_from_host(m.params(), p);
            const double fp = objective(m, x, r, train);
            p[t.offset + k] = p0[t.offset + k] - eps;
            mimic::test::set_from_host(m.params(), p);
            const double fm = objective(m, x, r, train);
            const double fwd = (fp - f0) / eps, bwd = (f0 - fm) / eps;
            if (std::fabs(fwd - bwd) > 0.02 * std::max(std::fabs(fwd), std::fabs(bwd)) + 2e-3) {
                ++kinks;
                continue;
            }
            fd.push_back((fp - fm) / (2.0 * double(eps)));
            an.push_back(g[t.offset + k]);
        }
        EXPECT_LE(kinks, std::max<std::int64_t>(1, t.size / 5))
            << t.name << ": " << kinks << " of " << t.size << " elements sit on a kink";
        const double err = rel_error(fd, an);
        EXPECT_LT(err, 1e-2) << t.name << ": relative error of the analytic gradient " << err;
        double worst = 0, scale = 1e-3;
        for (std::size_t k = 0; k < fd.size(); ++k) {
            worst = std::max(worst, std::fabs(fd[k] - an[k]));
            scale = std::max(scale, std::fabs(an[k]));
        }
        EXPECT_LT(worst / scale, 5e-2) << t.name << ": worst element error " << worst << " of " << scale;
        if (std::getenv("MIMIC_TEST_VERBOSE"))
            std::printf("%s: %lld elements, %lld on kinks, relative error %.3g\n", t.name.c_str(),
                        (long long)t.size, (long long)kinks, err);
    }
    mimic::test::set_from_host(m.params(), p0);
}

} // namespace

TEST(Gradients, Dense) {
    check_gradients("dense:5", {1, 1, 7});
}
TEST(Gradients, DenseBatchOfOne) {
    check_gradients("dense:4,dense:3", {1, 1, 5}, false, 1);
}
TEST(Gradients, BottleneckThenDense) {
    check_gradients("bottleneck:3,dense:4", {1, 1, 6});
}
TEST(Gradients, ReLU) {
    check_gradients("dense:6,relu,dense:3", {1, 1, 5});
}
TEST(Gradients, Sigmoid) {
    check_gradients("dense:6,sigmoid,dense:3", {1, 1, 5});
}
TEST(Gradients, Tanh) {
    check_gradients("dense:6,tanh,dense:3", {1, 1, 5});
}
TEST(Gradients, DropoutInTraining) {
    check_gradients("dense:8,dropout:0.5,dense:3", {1, 1, 5}, true, 4);
}
TEST(Gradients, ConvSamePadding) {
    check_gradients("conv:3x3,conv:2x3", {2, 6, 5});
}
TEST(Gradients, ConvStrideAndPadding) {
    check_gradients("conv:3x3s2p1,conv:2x2s2p0,flatten,dense:3", {2, 7, 7});
}
TEST(Gradients, ConvNoPaddingReLUPoolOddSizes) {
    check_gradients("conv:4x5p0,relu,pool:3,flatten,dense:3", {3, 9, 8});
}
TEST(Gradients, GroupedConv) {
    check_gradients("conv:4x3g2,relu,conv:2x3s2p1g2,dense:3", {4, 6, 5});
}
TEST(Gradients, DepthwiseConvStrideAndPadding) {
    check_gradients("conv:4x1,dwconv:3,relu6,dwconv:3s2,conv:3x1,dense:3", {2, 7, 7}, false, 3, 1.0f);
    check_gradients("dwconv:5p1,dwconv:2s2p0,flatten,dense:3", {3, 7, 6});
}
TEST(Gradients, PoolFloorsOddImage) {
    check_gradients("conv:3x3,pool:2,dense:3", {1, 5, 5});
}
TEST(Gradients, SmallCNN) {
    check_gradients("conv:4x3,relu,pool:2,conv:4x3,relu,pool:2,dense:8,relu,dense:3", {1, 8, 8});
}
// im2col + sgemm (the direct kernels off) splits large batches into chunks of samples (one sample per
// chunk skips the layout permutation); force one-sample and two-sample chunks on small images.
TEST(Gradients, ConvInChunksOfOneAndTwoSamples) {
    for (std::int64_t floats : {1, 2 * 18 * 30}) {
        SCOPED_TRACE(testing::Message() << "chunk budget " << floats);
        ConvTuning t;
        t.direct = false;
        t.chunk_floats = floats;
        check_gradients("conv:3x3,relu,conv:2x3s2p1,pool:2,dense:3", {2, 6, 5}, false, 3, 1.0f, {}, t);
        check_gradients("conv:4x5p0,relu,pool:3,flatten,dense:3", {3, 9, 8}, false, 3, 1.0f, {}, t);
    }
}
TEST(Gradients, MaxPoolOverlappingAndPadded) {
    check_gradients("conv:3x3,pool:3s2p1,dense:3", {2, 7, 7});
    check_gradients("conv:3x3,pool:2s1,conv:2x3,pool:3s3p1,dense:3", {1, 6, 5});
}
TEST(Gradients, MaxPoolCeilMode) {
    check_gradients("conv:3x3,pool:3s2c,dense:3", {2, 6, 6});
    check_gradients("conv:3x3,pool:2c,conv:2x3,pool:3s3p1c,dense:3", {1, 5, 5});
}
TEST(Gradients, AvgPoolCountingThePadding) {
    check_gradients("conv:3x3,avgpool:3s2p1,dense:3", {2, 7, 7});
    check_gradients("conv:3x3,avgpool:2,dense:3", {1, 5, 5});
}
TEST(Gradients, AvgPoolNotCountingThePadding) {
    check_gradients("conv:3x3,avgpool:3s2p1e,dense:3", {2, 7, 7});
    check_gradients("conv:3x3,avgpool:2s1p1e,dense:3", {1, 4, 5});
}
// Ceil mode where it changes the size: the last windows reach past the input (5 -> 3 for avgpool:2c), their
// divisor up to the padding's edge (4s2p1c) or over the real cells (ec).
TEST(Gradients, AvgPoolCeilMode) {
    check_gradients("conv:3x3,avgpool:2c,dense:3", {1, 5, 5});
    check_gradients("conv:3x3,avgpool:4s2p1c,dense:3", {2, 5, 5});
    check_gradients("conv:3x3,avgpool:3s2p1ec,dense:3", {1, 6, 7});
}
TEST(Gradients, GlobalAvgPool) {
    check_gradients("conv:4x3,gap,dense:3", {2, 5, 4});
}
// Inputs of scale 4 put the pre-activations on both sides of every kink (0 and 6, -3 and 3).
TEST(Gradients, ReLU6) {
    check_gradients("dense:8,relu6,dense:3", {1, 1, 5}, false, 3, 4.0f);
}
TEST(Gradients, SiLU) {
    check_gradients("dense:8,silu,dense:3", {1, 1, 5}, false, 3, 4.0f);
}
TEST(Gradients, HardSwish) {
    check_gradients("dense:8,hardswish,dense:3", {1, 1, 5}, false, 3, 4.0f);
}
TEST(Gradients, HardSigmoid) {
    check_gradients("dense:8,hardsigmoid,dense:3", {1, 1, 5}, false, 3, 4.0f);
}
TEST(Gradients, LeakyReLU) {
    check_gradients("dense:8,leakyrelu:0.2,dense:3", {1, 1, 5}, false, 3, 4.0f);
}
TEST(Gradients, ELU) {
    check_gradients("dense:8,elu:0.7,dense:3", {1, 1, 5}, false, 3, 4.0f);
}
TEST(Gradients, GELU) {
    check_gradients("dense:8,gelu,dense:3", {1, 1, 5}, false, 3, 4.0f);
}
TEST(Gradients, Softplus) {
    check_gradients("dense:8,softplus,dense:3", {1, 1, 5}, false, 3, 4.0f);
}
TEST(Gradients, LayerNormOverChannelsAndFeatures) {
    check_gradients("conv:4x3,ln,relu,dense:6,ln:1e-3,dense:3", {2, 5, 5}, false, 3, 1.0f);
}
// Training mode: the batch statistics depend on every row, so dL/dx has the batch terms.
TEST(Gradients, BatchNormOverChannelsInTraining) {
    check_gradients("conv:3x3,bn,relu,pool:2,dense:3", {2, 6, 6}, true, 4, 1.0f, {"layer0.conv.b"});
}
TEST(Gradients, BatchNormOverFeaturesInTraining) {
    check_gradients("dense:6,bn,tanh,dense:3", {1, 1, 5}, true, 4, 1.0f, {"layer0.dense.b"});
}
TEST(Gradients, BatchNormFirstAndAtInference) {
    check_gradients("bn,conv:3x3,bn,dense:3", {2, 5, 5}, true, 3, 1.0f, {"layer1.conv.b"});
    check_gradients("conv:3x3,bn,dense:3", {2, 5, 5}, false, 3);
}
TEST(Gradients, FlattenFirst) {
    check_gradients("flatten,dense:4,tanh,dense:2", {2, 3, 3});
}

// ---- losses -------------------------------------------------------------------------------------------

namespace {

template <class Loss>
void check_loss_gradient(const char* name, Loss loss, int B, int C) {
    SCOPED_TRACE(name);
    auto z0 = random_values(B * C, 21, 2.0f);
    Matrix dz("dz", B, C);
    const double l0 = loss(device_matrix(z0, B, C), dz);
    EXPECT_TRUE(std::isfinite(l0));
    const auto an = to_host(dz);
    const float eps = 1e-3f;
    std::vector<double> fd(B * C), a(an.begin(), an.end());
    Matrix scratch("scratch", B, C);
    for (int i = 0; i < B * C; ++i) {
        auto z = z0;
        z[i] = z0[i] + eps;
        const double lp = loss(device_matrix(z, B, C), scratch);
        z[i] = z0[i] - eps;
        const double lm = loss(device_matrix(z, B, C), scratch);
        fd[i] = (lp - lm) / (2.0 * double(eps));
    }
    EXPECT_LT(rel_error(fd, a), 2e-3);
    for (int i = 0; i < B * C; ++i)
        EXPECT_NEAR(fd[i], a[i], 2e-3 + 2e-3 * std::fabs(a[i])) << "logit " << i;
}

IntVector device_labels(const std::vector<int>& v) {
    IntVector d("labels", v.size());
    auto h = Kokkos::create_mirror_view(d);
    for (std::size_t i = 0; i < v.size(); ++i)
        h(i) = v[i];
    Kokkos::deep_copy(d, h);
    return d;
}

double host_log_softmax(const std::vector<float>& z, int row, int C, int c, double scale) {
    double m = -1e300;
    for (int k = 0; k < C; ++k)
        m = std::max(m, scale * z[row * C + k]);
    double s = 0;
    for (int k = 0; k < C; ++k)
        s += std::exp(scale * z[row * C + k] - m);
    return scale * z[row * C + c] - m - std::log(s);
}

} // namespace

// Blocks (res, cat, gate): every branch's parameters, and the shortcut's share of dL/dx, reach the layers
// before the block (the leading conv/dense checks the gradient that the block passes back).
TEST(Gradients, ResidualIdentityShortcut) {
    check_gradients("conv:3x3,res(conv:3x3,relu,conv:3x3),relu,flatten,dense:3", {2, 5, 5});
}
TEST(Gradients, ResidualProjectionShortcut) {
    check_gradients("conv:3x3,res(conv:4x3s2p1,relu,conv:4x3|conv:4x1s2p0),relu,dense:3", {2, 6, 6});
}
TEST(Gradients, ResidualOnFlatFeatures) {
    check_gradients("dense:6,res(dense:6,tanh,dense:6),dense:3", {1, 1, 5});
}
TEST(Gradients, ConcatWithTheInput) {
    check_gradients("conv:3x3,cat(|conv:2x3,relu|conv:1x1),tanh,dense:3", {2, 5, 5});
}
TEST(Gradients, SqueezeExcitationGate) {
    check_gradients("conv:4x3,gate(pool:5,conv:2x1,tanh,conv:4x1,sigmoid),dense:3", {2, 5, 5});
}
TEST(Gradients, ElementwiseGate) {
    check_gradients("dense:5,gate(dense:5,sigmoid),dense:3", {1, 1, 4});
}
TEST(Gradients, NestedBlocksFirstAndInside) {
    // A block as the first layer (no dL/dx needed) holding a cat and a gate.
    check_gradients("res(conv:2x3,cat(id|conv:2x3,gate(conv:2x1,tanh)),conv:2x1),flatten,dense:3", {2, 4, 4});
}

TEST(Gradients, InvertedResidualWithDepthwiseConv) {
    // An inverted residual (MobileNetV2, MBConv): 1x1 expansion, depthwise 3x3, 1x1 projection, identity
    // shortcut; SiLU keeps the objective smooth for the central differences (relu6 puts most weights of the
    // first conv on a kink here).
    check_gradients("conv:4x3,res(conv:8x1,silu,dwconv:3,silu,conv:4x1),dense:3", {2, 5, 5});
}
TEST(Gradients, ResidualWithBatchNormInTraining) {
    // bn inside the branches and on the projection shortcut (batch statistics in every branch), then gap; the
    // block comes first, so its branches' first layers need no dL/dx.
    check_gradients("res(conv:3x3,bn,relu,conv:3x3,bn|conv:3x1,bn),relu,gap,dense:3", {2, 5, 5}, true, 4,
                    1.0f, {"layer0.res.b0.0.conv.b", "layer0.res.b0.3.conv.b", "layer0.res.b1.0.conv.b"});
}

TEST(Losses, CrossEntropyGradientAndValue) {
    const int B = 4, C = 5;
    const std::vector<int> y{0, 3, 4, 1};
    const auto labels = device_labels(y);
    check_loss_gradient(
        "ce", [&](const Matrix& z, const Matrix& dz) { return cross_entropy(z, labels, dz); }, B, C);
    const auto z = random_values(B * C, 21, 2.0f);
    Matrix dz("dz", B, C);
    double expect = 0;
    for (int i = 0; i < B; ++i)
        expect -= host_log_softmax(z, i, C, y[i], 1.0) / B;
    EXPECT_NEAR(cross_entropy(device_matrix(z, B, C), labels, dz), expect, 1e-5);
}

TEST(Losses, CrossEntropyIsStableForHugeLogits) {
    Matrix dz("dz", 1, 3);
    const double l = cross_entropy(device_matrix({1000.0f, 0.0f, -1000.0f}, 1, 3), device_labels({1}), dz);
    EXPECT_NEAR(l, 1000.0, 1e-3);
    const auto g = to_host(dz);
    EXPECT_NEAR(g[0], 1.0, 1e-6);
    EXPECT_NEAR(g[1], -1.0, 1e-6);
}

TEST(Losses, CrossEntropyRejectsLabelsOutOfRange) {
    Matrix dz("dz", 2, 3);
    EXPECT_THROW(cross_entropy(device_matrix({0, 0, 0, 0, 0, 0}, 2, 3), device_labels({0, 3}), dz), Error);
}

TEST(Losses, MimicL2GradientAndValue) {
    const int B = 3, C = 4;
    const auto t = random_values(B * C, 33);
    const Matrix target = device_matrix(t, B, C);
    check_loss_gradient(
        "l2", [&](const Matrix& z, const Matrix& dz) { return mimic_l2(z, target, dz); }, B, C);
    const auto z = random_values(B * C, 21, 2.0f);
    double expect = 0;
    for (int i = 0; i < B * C; ++i)
        expect += 0.5 * double(z[i] - t[i]) * (z[i] - t[i]) / B;
    Matrix dz("dz", B, C);
    EXPECT_NEAR(mimic_l2(device_matrix(z, B, C), target, dz), expect, 1e-5 * expect);
}

TEST(Losses, DistillationGradientAndValue) {
    const int B = 4, C = 5;
    const std::vector<int> y{2, 0, 4, 4};
    const auto labels = device_labels(y);
    const auto t = random_values(B * C, 44, 3.0f);
    const Matrix teacher = device_matrix(t, B, C);
    for (float T : {1.0f, 4.0f})
        for (float alpha : {0.0f, 0.7f, 1.0f}) {
            SCOPED_TRACE(testing::Message() << "T=" << T << " alpha=" << alpha);
            check_loss_gradient(
                "kd",
                [&](const Matrix& z, const Matrix& dz) {
                    return distill_kd(z, teacher, labels, T, alpha, dz);
                },
                B, C);
            const auto z = random_values(B * C, 21, 2.0f);
            double expect = 0;
            for (int i = 0; i < B; ++i) {
                double kl = 0;
                for (int c = 0; c < C; ++c) {
                    const double lt = host_log_softmax(t, i, C, c, 1.0 / T);
                    kl += std::exp(lt) * (lt - host_log_softmax(z, i, C, c, 1.0 / T));
                }
                expect += (alpha * T * T * kl - (1 - alpha) * host_log_softmax(z, i, C, y[i], 1.0)) / B;
            }
            Matrix dz("dz", B, C);
            EXPECT_NEAR(distill_kd(device_matrix(z, B, C), teacher, labels, T, alpha, dz), expect,
                        1e-5 * std::max(1.0, std::fabs(expect)));
        }
}

TEST(Losses, DistillationWithoutLabelsNeedsAlphaOne) {
    const Matrix z = device_matrix(random_values(6, 1), 2, 3), t = device_matrix(random_values(6, 2), 2, 3);
    Matrix dz("dz", 2, 3);
    EXPECT_NO_THROW(distill_kd(z, t, IntVector(), 2.0f, 1.0f, dz));
    EXPECT_THROW(distill_kd(z, t, IntVector(), 2.0f, 0.5f, dz), Error);
}
