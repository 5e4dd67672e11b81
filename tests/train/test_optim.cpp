// Optimizer and schedule tests: SGD, momentum, Nesterov, Adam and AdamW trajectories against
// torch.optim on the same gradients, hand-computed steps, exact state save/restore, schedule values.
#include "mimic/core/error.hpp"
#include "mimic/nn/model.hpp"
#include "mimic/nn/optim/layer_lr.hpp"
#include "mimic/nn/optim/optimizer.hpp"
#include "mimic/nn/schedule.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <unistd.h>
#include <vector>

using namespace mimic;
using nn::optim::OptimizerConfig;

namespace {

constexpr int kN = 37, kSteps = 7;

std::vector<float> to_host(const Vector& v) {
    auto h = Kokkos::create_mirror_view_and_copy(HostSpace(), v);
    return std::vector<float>(h.data(), h.data() + h.extent(0));
}
Vector to_device(const std::vector<float>& v) {
    Vector d("mimic::test::vec", v.size());
    auto h = Kokkos::create_mirror_view(d);
    for (size_t i = 0; i < v.size(); ++i)
        h(i) = v[i];
    Kokkos::deep_copy(d, h);
    return d;
}

// The same start point and gradients as tests/python/optim_reference.py.
std::vector<float> start() {
    std::vector<float> p(kN);
    for (int i = 0; i < kN; ++i)
        p[size_t(i)] = float(0.5 * std::sin(0.7 * i));
    return p;
}
std::vector<float> grad(const std::vector<float>& p, int t) {
    std::vector<float> g(kN);
    for (int i = 0; i < kN; ++i)
        g[size_t(i)] = float(0.3 * double(p[size_t(i)]) + 0.1 * std::cos(0.13 * i + 0.71 * t));
    return g;
}
double lr_at(int t) {
    return 0.05 * (1.0 + 0.1 * t);
}

OptimizerConfig config(const std::string& name) {
    OptimizerConfig c;
    if (name == "sgd") c.kind = "sgd", c.momentum = 0.0, c.weight_decay = 0.01;
    if (name == "momentum") c.kind = "sgd", c.momentum = 0.9, c.weight_decay = 1e-3;
    if (name == "nesterov") c.kind = "nesterov", c.momentum = 0.9, c.weight_decay = 5e-4;
    if (name == "adam") c.kind = "adam", c.weight_decay = 0.01;
    if (name == "adamw") c.kind = "adamw", c.beta1 = 0.8, c.beta2 = 0.99, c.eps = 1e-6, c.weight_decay = 0.1;
    return c;
}

/// Runs steps [first, last] of the reference trajectory on an existing optimizer.
void run_steps(nn::optim::Optimizer& opt, const Vector& p, int first, int last) {
    for (int t = first; t <= last; ++t) {
        auto g = to_device(grad(to_host(p), t));
        opt.step(p, g, lr_at(t));
    }
}

std::string source_dir() {
    return MIMIC_TEST_SOURCE_DIR;
}

} // namespace

TEST(Optimizer, MatchesTorchOptimOnTheSameGradients) {
    const char* py = std::getenv("MIMIC_PYTHON");
    const std::string python = py ? py : "/usr/bin/python3";
    const std::string out = "optim_reference." + std::to_string(getpid()) + ".bin";
    const std::string cmd = python + " " + source_dir() + "/python/optim_reference.py " + out;
    ASSERT_EQ(std::system(cmd.c_str()), 0) << "reference script failed: " << cmd;
    std::ifstream in(out, std::ios::binary);
    const std::vector<std::string> names = {"sgd", "momentum", "nesterov", "adam", "adamw"};
    for (const auto& name : names) {
        std::vector<float> want(kN);
        in.read(reinterpret_cast<char*>(want.data()), kN * sizeof(float));
        ASSERT_TRUE(in.good()) << "short reference file for " << name;
        auto opt = nn::optim::make_optimizer(config(name), kN);
        auto p = to_device(start());
        run_steps(*opt, p, 1, kSteps);
        EXPECT_EQ(opt->steps(), kSteps);
        const auto got = to_host(p);
        const auto p0 = start();
        for (int i = 0; i < kN; ++i) {
            // Must have moved, and agree with torch to float rounding.
            EXPECT_GT(std::fabs(got[size_t(i)] - p0[size_t(i)]), 1e-4f) << name << " i=" << i;
            EXPECT_NEAR(got[size_t(i)], want[size_t(i)], 2e-6f + 2e-6f * std::fabs(want[size_t(i)]))
                << name << " i=" << i;
        }
    }
    std::remove(out.c_str());
}

TEST(Optimizer, NesterovTwoStepsByHand) {
    // p = 1, g = 0.5 then 0.25, lr = 0.1, mu = 0.9, wd = 0.1.
    OptimizerConfig c;
    c.kind = "nesterov", c.momentum = 0.9, c.weight_decay = 0.1;
    auto opt = nn::optim::make_optimizer(c, 1);
    auto p = to_device({1.0f});
    opt->step(p, to_device({0.5f}), 0.1);
    // d = 0.5 + 0.1*1 = 0.6; buf = 0.6; step = 0.6 + 0.9*0.6 = 1.14; p = 1 - 0.114 = 0.886
    EXPECT_NEAR(to_host(p)[0], 0.886f, 1e-6f);
    opt->step(p, to_device({0.25f}), 0.1);
    // d = 0.25 + 0.0886 = 0.3386; buf = 0.54 + 0.3386 = 0.8786; step = 0.3386 + 0.79074 = 1.12934
    EXPECT_NEAR(to_host(p)[0], 0.886f - 0.112934f, 1e-6f);
}

TEST(Optimizer, AdamFirstStepByHand) {
    // After bias correction Adam's first step is lr * g / (|g| + eps): a move of lr against the gradient.
    OptimizerConfig c;
    c.kind = "adam";
    auto opt = nn::optim::make_optimizer(c, 2);
    auto p = to_device({1.0f, -2.0f});
    opt->step(p, to_device({3.0f, -0.001f}), 0.01);
    const auto h = to_host(p);
    EXPECT_NEAR(h[0], 0.99f, 1e-6f);
    EXPECT_NEAR(h[1], -1.99f, 1e-5f);
}

TEST(Optimizer, AdamWDecaysWeightsWithoutGradient) {
    OptimizerConfig c;
    c.kind = "adamw", c.weight_decay = 0.5;
    auto opt = nn::optim::make_optimizer(c, 1);
    auto p = to_device({2.0f});
    opt->step(p, to_device({0.0f}), 0.1); // m = v = 0: only the decoupled decay acts
    EXPECT_NEAR(to_host(p)[0], 2.0f * (1.0f - 0.05f), 1e-6f);
}

TEST(Optimizer, SavedStateResumesBitForBit) {
    for (const std::string name : {"sgd", "momentum", "nesterov", "adam", "adamw"}) {
        auto straight = nn::optim::make_optimizer(config(name), kN);
        auto p1 = to_device(start());
        run_steps(*straight, p1, 1, kSteps);

        auto first = nn::optim::make_optimizer(config(name), kN);
        auto p2 = to_device(start());
        run_steps(*first, p2, 1, 3);
        const auto saved = first->state();
        const auto params_saved = to_host(p2);
        auto resumed = nn::optim::make_optimizer(config(name), kN);
        resumed->load_state(saved);
        EXPECT_EQ(resumed->steps(), 3);
        auto p3 = to_device(params_saved);
        run_steps(*resumed, p3, 4, kSteps);
        const auto a = to_host(p1), b = to_host(p3);
        for (int i = 0; i < kN; ++i)
            ASSERT_EQ(a[size_t(i)], b[size_t(i)]) << name << " i=" << i;
    }
}

TEST(Optimizer, StateOfAnotherKindIsRejected) {
    auto adam = nn::optim::make_optimizer(config("adam"), kN);
    auto sgd = nn::optim::make_optimizer(config("nesterov"), kN);
    try {
        sgd->load_state(adam->state());
        FAIL() << "expected an error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("'adam'"), std::string::npos) << e.what();
    }
    auto small = nn::optim::make_optimizer(config("adam"), kN - 1);
    EXPECT_THROW(small->load_state(adam->state()), Error);
}

TEST(Optimizer, BadConfigurationsAreClearErrors) {
    OptimizerConfig c;
    c.kind = "rmsprop";
    EXPECT_THROW(nn::optim::make_optimizer(c, 3), Error);
    c.kind = "nesterov", c.momentum = 0.0;
    EXPECT_THROW(nn::optim::make_optimizer(c, 3), Error);
    c.kind = "sgd", c.momentum = 1.0;
    EXPECT_THROW(nn::optim::make_optimizer(c, 3), Error);
    c.momentum = 0.5, c.weight_decay = -1;
    EXPECT_THROW(nn::optim::make_optimizer(c, 3), Error);
}

// --layer-lr: the elements of a scaled range follow the trajectory of an optimizer at F times the
// learning rate, bit for bit, and the others that of the unscaled one, for every optimizer kind.
TEST(Optimizer, LearningRateMultiplierScalesItsRangeOnly) {
    for (const std::string name : {"sgd", "momentum", "nesterov", "adam", "adamw"}) {
        auto plain = nn::optim::make_optimizer(config(name), kN);
        auto scaled = nn::optim::make_optimizer(config(name), kN);
        auto both = nn::optim::make_optimizer(config(name), kN);
        both->set_lr_scales({{20, 30, 1.0}, {5, 12, 3.0}});
        const Vector p1 = to_device(start()), p3 = to_device(start()), pb = to_device(start());
        for (int t = 1; t <= kSteps; ++t) {
            plain->step(p1, to_device(grad(to_host(p1), t)), lr_at(t));
            scaled->step(p3, to_device(grad(to_host(p3), t)), lr_at(t) * 3.0);
            both->step(pb, to_device(grad(to_host(pb), t)), lr_at(t));
        }
        const auto a = to_host(p1), c = to_host(p3), b = to_host(pb);
        for (int i = 0; i < kN; ++i)
            EXPECT_EQ(b[size_t(i)], i >= 5 && i < 12 ? c[size_t(i)] : a[size_t(i)])
                << name << " element " << i;
        EXPECT_NE(a[7], c[7]) << name; // the multiplier changes the trajectory
    }
    auto opt = nn::optim::make_optimizer(config("adam"), kN);
    EXPECT_THROW(opt->set_lr_scales({{0, 10, 2.0}, {5, 12, 2.0}}), Error); // overlapping
    EXPECT_THROW(opt->set_lr_scales({{30, kN + 1, 2.0}}), Error);          // past the end
    EXPECT_THROW(opt->set_lr_scales({{0, 10, 0.0}}), Error);               // not > 0
    EXPECT_THROW(opt->set_lr_scales({{0, 10, std::nan("")}}), Error);      // not finite
}

TEST(Optimizer, LayerLrSelectsLayersByKindOrIndex) {
    const nn::Model m("bottleneck:6,dense:24,relu,dense:3", nn::Shape{1, 4, 5});
    auto r = nn::optim::layer_lr_scales(m, nn::optim::parse_layer_lr("bottleneck=2"));
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].begin, m.param_range(0).first);
    EXPECT_EQ(r[0].end, m.param_range(0).second);
    EXPECT_EQ(r[0].end - r[0].begin, 20 * 6);
    EXPECT_DOUBLE_EQ(r[0].scale, 2.0);
    // An index wins over its kind, whatever the order.
    r = nn::optim::layer_lr_scales(m, nn::optim::parse_layer_lr("layer3=4,dense=0.5"));
    ASSERT_EQ(r.size(), 2u);
    EXPECT_EQ(r[0].begin, m.param_range(1).first);
    EXPECT_DOUBLE_EQ(r[0].scale, 0.5);
    EXPECT_EQ(r[1].begin, m.param_range(3).first);
    EXPECT_EQ(r[1].end, m.num_params());
    EXPECT_DOUBLE_EQ(r[1].scale, 4.0);
    EXPECT_TRUE(nn::optim::parse_layer_lr("").empty());
    for (const char* bad : {"bottleneck", "=2", "bottleneck=", "bottleneck=0", "bottleneck=-1", "dense=inf",
                            "dense=2x", "dense=2,", "dense=2,dense=3"})
        EXPECT_THROW(nn::optim::parse_layer_lr(bad), Error) << bad;
    // A rule that selects no layer with parameters: a kind the model lacks, a parameterless layer.
    for (const char* none : {"conv=2", "layer2=2", "layer9=2"})
        EXPECT_THROW(nn::optim::layer_lr_scales(m, nn::optim::parse_layer_lr(none)), Error) << none;
}

TEST(Schedule, ConstantStepAndCosine) {
    nn::Schedule constant("constant", 0.1, 10, 5);
    EXPECT_DOUBLE_EQ(constant.lr(0, 0), 0.1);
    EXPECT_DOUBLE_EQ(constant.lr(9, 4), 0.1);

    nn::Schedule step("step:3,0.5", 0.1, 10, 5);
    EXPECT_DOUBLE_EQ(step.lr(2, 4), 0.1);
    EXPECT_DOUBLE_EQ(step.lr(3, 0), 0.05);
    EXPECT_DOUBLE_EQ(step.lr(7, 1), 0.025);

    nn::Schedule cosine("cosine:0.01", 0.1, 4, 10);
    EXPECT_DOUBLE_EQ(cosine.lr(0, 0), 0.1);
    EXPECT_NEAR(cosine.lr(2, 0), 0.055, 1e-12); // half way
    EXPECT_NEAR(cosine.lr(3, 9), 0.01 + 0.09 * 0.5 * (1 + std::cos(M_PI * 39.0 / 40.0)), 1e-12);
}

TEST(Schedule, WarmupRampsLinearly) {
    nn::Schedule s("constant", 0.2, 10, 4, 1);
    EXPECT_DOUBLE_EQ(s.lr(0, 0), 0.05);
    EXPECT_DOUBLE_EQ(s.lr(0, 3), 0.2);
    EXPECT_DOUBLE_EQ(s.lr(1, 0), 0.2);
    nn::Schedule c("cosine", 0.2, 3, 4, 1); // cosine starts after the warmup
    EXPECT_DOUBLE_EQ(c.lr(1, 0), 0.2);
    EXPECT_NEAR(c.lr(2, 0), 0.1, 1e-12);
}

TEST(Schedule, PlateauHalvesAfterPatienceAndStateRoundTrips) {
    nn::Schedule s("plateau:2", 0.1, 100, 10);
    EXPECT_FALSE(s.end_epoch(1.0));
    EXPECT_FALSE(s.end_epoch(0.9));  // new best
    EXPECT_FALSE(s.end_epoch(0.95)); // 1 bad
    EXPECT_DOUBLE_EQ(s.lr(3, 0), 0.1);
    EXPECT_TRUE(s.end_epoch(0.91)); // 2 bad: halve
    EXPECT_DOUBLE_EQ(s.lr(4, 0), 0.05);
    nn::Schedule t("plateau:2", 0.1, 100, 10);
    t.load_state(s.state());
    EXPECT_FALSE(t.end_epoch(0.92));
    EXPECT_TRUE(t.end_epoch(0.93));
    EXPECT_DOUBLE_EQ(t.lr(6, 0), 0.025);
    EXPECT_FALSE(t.end_epoch(0.5)); // new best resets the count
    EXPECT_FALSE(t.end_epoch(0.6));
    EXPECT_DOUBLE_EQ(t.lr(8, 0), 0.025);

    nn::Schedule floor("plateau:1,0.5,0.04", 0.1, 100, 10);
    floor.end_epoch(1.0);
    EXPECT_TRUE(floor.end_epoch(1.0));  // 0.05
    EXPECT_TRUE(floor.end_epoch(1.0));  // 0.04 (floor)
    EXPECT_FALSE(floor.end_epoch(1.0)); // stays at the floor
    EXPECT_DOUBLE_EQ(floor.lr(10, 0), 0.04);
}

TEST(Schedule, MalformedSpecsNameTheOption) {
    for (const std::string bad : {"linear", "step", "step:0", "step:2,3", "cosine:x", "plateau",
                                  "plateau:3,1.5", "constant:1", "step:1.5"}) {
        try {
            nn::Schedule s(bad, 0.1, 10, 10);
            ADD_FAILURE() << "accepted '" << bad << "'";
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find("--schedule"), std::string::npos) << e.what();
        }
    }
    EXPECT_THROW(nn::Schedule("constant", -1, 10, 10), Error);
}
