// Golden test of the nn core against PyTorch: the same weights (set by parameter tensor name) must give the
// same logits, losses and parameter gradients for CE, the L2 mimic loss and KD (tests/python/nn_golden.py),
// for chains of every layer kind (pooling forms, activations, grouped and depthwise convs included).
#include "mimic/io/hdf5.hpp"
#include "mimic/nn/layers/conv2d.hpp"
#include "mimic/nn/loss.hpp"
#include "mimic/nn/model.hpp"

#include "nn_test_util.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>

using namespace mimic;
using namespace mimic::nn;
using mimic::test::device_matrix;
using mimic::test::to_host;

namespace {

std::string golden_path() {
    const char* p = std::getenv("MIMIC_NN_GOLDEN");
    return p ? p : "nn_golden.h5";
}

void expect_close(const std::vector<float>& got, const std::vector<float>& want, const std::string& what,
                  double rtol = 1e-4, double atol = 1e-5) {
    ASSERT_EQ(got.size(), want.size()) << what;
    int bad = 0;
    for (std::size_t i = 0; i < got.size(); ++i)
        if (!(std::fabs(double(got[i]) - want[i]) <= atol + rtol * std::fabs(double(want[i])))) {
            if (++bad <= 5)
                ADD_FAILURE() << what << "[" << i << "]: mimic " << got[i] << " vs torch " << want[i];
        }
    EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << got.size() << " elements differ";
}

void run_golden_once(const std::string& name, const ConvTuning& tuning = {}) {
    SCOPED_TRACE(name);
    const auto f = h5::File::open(golden_path());
    const std::string spec = h5::read_attr_string(f.id(), name + ".spec");
    const auto shape = h5::read_attr_ints(f.id(), name + ".input_shape");
    ASSERT_EQ(shape.size(), 3u);
    Model m(spec, Shape{int(shape[0]), int(shape[1]), int(shape[2])});
    m.set_conv_tuning(tuning);

    // Weights by parameter tensor name: every tensor of the model must be in the file and vice versa.
    auto host = to_host(m.params());
    for (const auto& t : m.param_tensors()) {
        const auto w = h5::read_all<float>(f, name + "/params/" + t.name);
        ASSERT_EQ(std::int64_t(w.size()), t.size) << t.name;
        std::copy(w.begin(), w.end(), host.begin() + t.offset);
    }
    mimic::test::set_from_host(m.params(), host);

    const auto x = h5::read_all<float>(f, name + "/x");
    const auto labels_h = h5::read_all<int>(f, name + "/labels");
    const std::int64_t B = labels_h.size(), C = m.output_size();
    const Matrix xd = device_matrix(x, B, m.input_size());
    IntVector labels("labels", B);
    {
        auto h = Kokkos::create_mirror_view(labels);
        for (std::int64_t i = 0; i < B; ++i)
            h(i) = labels_h[i];
        Kokkos::deep_copy(labels, h);
    }
    const Matrix teacher = device_matrix(h5::read_all<float>(f, name + "/teacher"), B, C);

    // Batch normalisation: the running statistics to start from, and whether to normalise with the batch's.
    const bool train =
        h5::has_attr(f.id(), name + ".train") && h5::read_attr_int(f.id(), name + ".train") != 0;
    std::vector<float> state0(std::size_t(m.num_state()));
    for (const auto& t : m.state_tensors()) {
        const auto v = h5::read_all<float>(f, name + "/state/" + t.name);
        ASSERT_EQ(std::int64_t(v.size()), t.size) << t.name;
        std::copy(v.begin(), v.end(), state0.begin() + t.offset);
    }
    for (const std::string loss : {"ce", "l2", "kd"}) {
        SCOPED_TRACE(loss);
        m.zero_grads();
        if (m.num_state() > 0) mimic::test::set_from_host(m.state(), state0);
        const Matrix z = m.forward(xd, train);
        if (train) {
            const auto s = to_host(m.state());
            for (const auto& t : m.state_tensors())
                expect_close(std::vector<float>(s.begin() + t.offset, s.begin() + t.offset + t.size),
                             h5::read_all<float>(f, name + "/state_after/" + t.name), name + " " + t.name);
        }
        expect_close(to_host(z), h5::read_all<float>(f, name + "/logits"), name + " logits");
        Matrix dz("dz", B, C);
        const double value = loss == "ce"   ? cross_entropy(z, labels, dz)
                             : loss == "l2" ? mimic_l2(z, teacher, dz)
                                            : distill_kd(z, teacher, labels, 3.0f, 0.5f, dz);
        const double want = h5::read_all<double>(f, name + "/" + loss + "/loss").at(0);
        EXPECT_NEAR(value, want, 1e-5 + 1e-4 * std::fabs(want)) << loss << " value";
        m.backward(dz);
        const auto g = to_host(m.grads());
        for (const auto& t : m.param_tensors()) {
            const auto want_g = h5::read_all<float>(f, name + "/" + loss + "/grads/" + t.name);
            expect_close(std::vector<float>(g.begin() + t.offset, g.begin() + t.offset + t.size), want_g,
                         name + " " + loss + " grad " + t.name);
        }
    }
}

/// The direct conv kernels (where the host has them), then im2col + sgemm over whole-batch chunks and the
/// host's one-sample chunks.
void run_golden(const std::string& name) {
    {
        SCOPED_TRACE("direct conv kernels where available");
        run_golden_once(name);
    }
    for (std::int64_t floats : {std::int64_t(1) << 30, std::int64_t(1)}) {
        SCOPED_TRACE(testing::Message() << "im2col conv, chunk budget " << floats);
        ConvTuning t;
        t.direct = false;
        t.chunk_floats = floats;
        run_golden_once(name, t);
    }
}

} // namespace

TEST(GoldenTorch, SmallCNN) {
    run_golden("cnn");
}
TEST(GoldenTorch, StridedCNNWithTanhSigmoidFlatten) {
    run_golden("cnn_strided");
}
TEST(GoldenTorch, BottleneckMLP) {
    run_golden("mlp");
}
TEST(GoldenTorch, MaxAvgAndGlobalPooling) {
    run_golden("pools");
}
TEST(GoldenTorch, MaxPoolCeilMode) {
    run_golden("ceilpool");
}
TEST(GoldenTorch, ReLU6SiLUHardSwishHardSigmoid) {
    run_golden("acts");
}
TEST(GoldenTorch, LeakyReLUELUGELU) {
    run_golden("acts2");
}
TEST(GoldenTorch, SoftplusAcrossItsThreshold) {
    run_golden("softplus");
}
TEST(GoldenTorch, LayerNormOverChannelsAndFeatures) {
    run_golden("ln");
}
TEST(GoldenTorch, BatchNormTrainingMode) {
    run_golden("bn_train");
}
TEST(GoldenTorch, BatchNormInferenceMode) {
    run_golden("bn_eval");
}
TEST(GoldenTorch, DepthwiseSeparableAndGroupedConv) {
    run_golden("dws");
}
TEST(GoldenTorch, ResidualNetIdentityAndProjectionShortcuts) {
    run_golden("resnet");
}
TEST(GoldenTorch, DenseConcatenation) {
    run_golden("densecat");
}
TEST(GoldenTorch, SqueezeExcitationGates) {
    run_golden("se");
}
