// Tests of the inference pass (nn/fold.hpp): bn folded into the conv, dense or bottleneck before it gives
// the unfolded model's inference logits; other bn stay; the chain function folds by the formula.
#include "mimic/nn/fold.hpp"
#include "mimic/nn/model.hpp"

#include "nn_test_util.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

namespace {

using mimic::Matrix;
using mimic::nn::ChainLayer;
using mimic::nn::Model;
using mimic::nn::Shape;

/// A model of `spec` with random parameters and bn running statistics far from their initial values
/// (means around 0, variances in [0.3, 2.3]), the same for the same arguments.
Model random_model(const std::string& spec, Shape in, std::uint64_t seed) {
    Model m(spec, in);
    m.init(seed);
    mimic::test::set_from_host(m.params(),
                               mimic::test::random_values(std::size_t(m.num_params()), seed, 0.4f));
    auto state = mimic::test::random_values(std::size_t(m.num_state()), seed + 1, 0.5f);
    for (const auto& t : m.state_tensors())
        if (t.name.find("running_var") != std::string::npos)
            for (std::int64_t k = t.offset; k < t.offset + t.size; ++k)
                state[std::size_t(k)] = 0.3f + 2.0f * std::abs(state[std::size_t(k)]);
    mimic::test::set_from_host(m.state(), state);
    return m;
}

/// Folds `spec` and checks the folded spec and that its inference logits equal the unfolded model's to
/// 1e-5 relative to the largest logit.
void check_fold(const std::string& spec, Shape in, const std::string& folded_spec) {
    SCOPED_TRACE(spec);
    Model unfolded = random_model(spec, in, 7);
    Model folded = mimic::nn::fold_for_inference(random_model(spec, in, 7));
    EXPECT_EQ(folded.spec(), folded_spec);
    const std::int64_t B = 5;
    const Matrix x =
        mimic::test::device_matrix(mimic::test::random_values(std::size_t(B * in.size()), 3), B, in.size());
    const auto want = mimic::test::to_host(unfolded.forward(x, false));
    const auto got = mimic::test::to_host(folded.forward(x, false));
    ASSERT_EQ(got.size(), want.size());
    const auto g = mimic::test::output_gap(got, want);
    EXPECT_GT(g.scale, 0.1);
    EXPECT_LE(g.worst, 1e-5 * g.scale) << "largest logit " << g.scale;
}

} // namespace

TEST(Fold, ConvBnReluBecomesConvRelu) {
    check_fold("conv:6x3,bn,relu,pool:2,conv:5x3s2p1,bn,relu,dense:4", {3, 8, 8},
               "conv:6x3,relu,pool:2,conv:5x3s2p1,relu,dense:4");
}

// Grouped and depthwise weights {C/G, K, K, F}: each filter's column scaled by its channel's factor.
TEST(Fold, GroupedAndDepthwiseConvBn) {
    check_fold("conv:6x3,dwconv:3s2,bn,relu6,conv:4x1g2,bn,dense:3", {2, 8, 8},
               "conv:6x3,dwconv:3s2,relu6,conv:4x1g2,dense:3");
}

TEST(Fold, DenseBn) {
    check_fold("dense:16,bn,relu,dense:8,bn,dense:3", {1, 1, 20}, "dense:16,relu,dense:8,dense:3");
}

TEST(Fold, BottleneckBnBecomesDense) {
    check_fold("bottleneck:6,bn,dense:12,relu,dense:3", {1, 1, 20}, "dense:6,dense:12,relu,dense:3");
}

TEST(Fold, BnFirstAndAfterPoolStay) {
    check_fold("bn,conv:4x3,relu,pool:2,bn,conv:4x3,bn,dense:3", {2, 6, 6},
               "bn,conv:4x3,relu,pool:2,bn,conv:4x3,dense:3");
    check_fold("bn,dense:8,relu,bn,dense:3", {1, 1, 10}, "bn,dense:8,relu,bn,dense:3");
}

TEST(Fold, BnInsideBlocksFoldsBranchByBranch) {
    check_fold("conv:4x3,bn,relu,res(conv:4x3,bn,relu,conv:4x3,bn|conv:4x1,bn),relu,cat(id|res(conv:4x1,bn)),"
               "gate(pool:6,conv:2x1,bn,relu,conv:8x1,sigmoid),res(bn,conv:8x3),gap,dense:3",
               {2, 6, 6},
               "conv:4x3,relu,res(conv:4x3,relu,conv:4x3|conv:4x1),relu,cat(|res(conv:4x1|)),"
               "gate(pool:6,conv:2x1,relu,conv:8x1,sigmoid),res(bn,conv:8x3|),gap,dense:3");
}
TEST(Fold, NothingToFoldKeepsTheModel) {
    Model m = random_model("conv:4x3,relu,dense:3", {1, 6, 6}, 5);
    const auto before = mimic::test::to_host(m.params());
    Model f = mimic::nn::fold_for_inference(std::move(m));
    EXPECT_EQ(f.spec(), "conv:4x3,relu,dense:3");
    EXPECT_EQ(mimic::test::to_host(f.params()), before);
}

// The chain function a block calls per branch: W' = W * s per output channel (the last index),
// b' = (b - mean) * s + beta, s = gamma / sqrt(var + 1e-5).
TEST(Fold, ChainFormula) {
    auto chain = mimic::nn::chain_layers(random_model("dense:2,bn,relu", {1, 1, 3}, 11));
    ASSERT_EQ(chain.size(), 3u);
    const auto W = chain[0].params[0], b = chain[0].params[1];
    const auto gamma = chain[1].params[0], beta = chain[1].params[1];
    const auto mean = chain[1].state[0], var = chain[1].state[1];
    EXPECT_EQ(mimic::nn::fold_batchnorm(chain), 1);
    ASSERT_EQ(chain.size(), 2u);
    EXPECT_EQ(chain[0].spec.token, "dense:2");
    EXPECT_EQ(chain[1].spec.token, "relu");
    for (std::size_t f = 0; f < 2; ++f) {
        const double s = gamma[f] / std::sqrt(var[f] + 1e-5);
        EXPECT_DOUBLE_EQ(chain[0].params[1][f], (b[f] - mean[f]) * s + beta[f]);
        for (std::size_t i = 0; i < 3; ++i)
            EXPECT_DOUBLE_EQ(chain[0].params[0][i * 2 + f], W[i * 2 + f] * s);
    }
    const Model m = mimic::nn::chain_model(chain, {1, 1, 3});
    EXPECT_EQ(m.spec(), "dense:2,relu");
    EXPECT_EQ(m.num_state(), 0);
}
