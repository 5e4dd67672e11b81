// Batch normalisation in training at 1, 2 and 4 ranks: statistics summed over the replicas give the
// one-rank model (with a last batch smaller than the rank count), replicas stay equal with accumulated
// micro-batches, and the running statistics survive model files, checkpoints and a resume bit for bit.
#include "mimic/core/error.hpp"
#include "mimic/core/log.hpp"
#include "mimic/core/rng.hpp"
#include "mimic/io/dataset.hpp"
#include "mimic/io/model_file.hpp"
#include "mimic/parallel/sharded_model.hpp"
#include "mimic/train/batches.hpp"
#include "mimic/train/engine.hpp"
#include "synthetic_set.hpp"
#include "test_util.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

namespace mimic {
namespace {

const std::string kSpec = "conv:4x3,bn,relu,pool:2,dense:16,bn,relu,dense:3";

/// A learnable synthetic set: x ~ N(1, 2) of shape 1x4x3, off-centre so the statistics matter
/// (tests/support/synthetic_set.hpp).
void write_synthetic(const std::string& path, const par::Comm& comm, std::int64_t n, std::uint64_t seed) {
    test::write_synthetic_set(path, comm, n, seed, 1.0f, 2.0f);
}

std::vector<float> to_host(const Vector& v) {
    auto h = Kokkos::create_mirror_view_and_copy(HostSpace(), v);
    return std::vector<float>(h.data(), h.data() + h.extent(0));
}

struct Trained {
    std::vector<float> params, state;
    train::TrainResult result;
};

train::EngineConfig config() {
    train::EngineConfig c;
    c.epochs = 2;
    c.batch = 15;
    c.seed = 7;
    c.lr = 0.05;
    c.optimizer.kind = "nesterov";
    c.optimizer.momentum = 0.9;
    return c;
}

Trained train_model(const std::string& data, const train::EngineConfig& cfg, const par::Comm& comm) {
    train::DatasetSource src(data, comm);
    const par::Comm self(MPI_COMM_SELF, false);
    par::ShardedModel model(kSpec, src.shape(), self);
    train::ShuffledBatches batches(src, cfg.batch * cfg.accumulate, 8, 0, cfg.seed, comm);
    io::ResumeIdentity id;
    id.add("--batch", cfg.batch).add("--seed", cfg.seed);
    train::Engine engine(cfg, model, batches, train::parse_objective("ce"), comm, comm, id);
    Trained t;
    t.result = engine.run(io::ModelMeta{});
    t.params = to_host(model.local().params());
    t.state = to_host(model.local().state());
    return t;
}

/// Largest |a - b| relative to the largest |b|.
double relative_difference(const std::vector<float>& a, const std::vector<float>& b) {
    double d = 0, m = 1e-30;
    for (size_t i = 0; i < a.size(); ++i) {
        d = std::max(d, double(std::fabs(a[i] - b[i])));
        m = std::max(m, double(std::fabs(b[i])));
    }
    return d / m;
}

struct Quiet {
    Quiet() { log::set_quiet(true); }
    ~Quiet() { log::set_quiet(false); }
};

} // namespace

// 197 rows in batches of 15: the last batch of each epoch has 2 rows, so at 4 ranks two replicas have
// none and take part in the statistics without rows.
TEST(BatchNormTraining, OneTwoAndFourRanksTrainTheSameModel) {
    Quiet q;
    par::Comm world;
    auto dir = test::scratch_dir(world);
    write_synthetic(dir + "/train.h5", world, 197, 21);
    const auto cfg = config();
    const Trained w = train_model(dir + "/train.h5", cfg, world);
    ASSERT_TRUE(w.result.completed);
    ASSERT_EQ(w.state.size(), 2u * (4 + 16));
    if (world.rank() == 0) {
        const par::Comm self(MPI_COMM_SELF, false);
        const Trained one = train_model(dir + "/train.h5", cfg, self);
        const double dp = relative_difference(w.params, one.params),
                     ds = relative_difference(w.state, one.state);
        std::printf("1 vs %d ranks: parameters differ by %.3g, running statistics by %.3g (relative)\n",
                    world.size(), dp, ds);
        EXPECT_LE(dp, 1e-4);
        EXPECT_LE(ds, 1e-4);
        if (world.size() == 1) EXPECT_EQ(dp, 0.0);
        // The running statistics moved away from their initial values (mean 0, variance 1).
        EXPECT_GT(std::fabs(one.state[0]), 0.05);
    }
    const double sum = std::accumulate(w.params.begin(), w.params.end(), 0.0) +
                       std::accumulate(w.state.begin(), w.state.end(), 0.0);
    EXPECT_EQ(world.max(sum), world.min(sum)) << "the replicas differ";
}

// Two micro-batches per step from slices of unequal size: every replica runs both, and the replicas stay
// identical, parameters and running statistics.
TEST(BatchNormTraining, AccumulatedMicroBatchesKeepTheReplicasEqual) {
    Quiet q;
    par::Comm world;
    auto dir = test::scratch_dir(world);
    write_synthetic(dir + "/train.h5", world, 101, 22);
    auto cfg = config();
    cfg.accumulate = 2;
    const Trained w = train_model(dir + "/train.h5", cfg, world);
    ASSERT_TRUE(w.result.completed);
    const double sum = std::accumulate(w.params.begin(), w.params.end(), 0.0) +
                       std::accumulate(w.state.begin(), w.state.end(), 0.0);
    EXPECT_TRUE(std::isfinite(sum));
    EXPECT_EQ(world.max(sum), world.min(sum)) << "the replicas differ";
}

// Stopped and resumed from checkpoints: the same parameters and running statistics, bit for bit.
TEST(BatchNormTraining, ResumeRestoresTheRunningStatistics) {
    Quiet q;
    par::Comm world;
    auto dir = test::scratch_dir(world);
    write_synthetic(dir + "/train.h5", world, 120, 23);
    auto cfg = config();
    cfg.epochs = 3;
    const Trained straight = train_model(dir + "/train.h5", cfg, world);
    cfg.checkpoint = dir + "/bn.ckpt";
    cfg.checkpoint_every = 3;
    cfg.stop_after_steps = 10; // mid-epoch 2 (8 steps per epoch); last checkpoint at step 9
    const Trained first = train_model(dir + "/train.h5", cfg, world);
    EXPECT_FALSE(first.result.completed);
    cfg.stop_after_steps = 0;
    const Trained resumed = train_model(dir + "/train.h5", cfg, world);
    EXPECT_TRUE(resumed.result.resumed && resumed.result.completed);
    EXPECT_EQ(resumed.params, straight.params);
    EXPECT_EQ(resumed.state, straight.state);
}

// Model files keep the running statistics; a file without /state (an older file) loads with the initial ones.
TEST(BatchNormTraining, ModelFilesKeepTheRunningStatistics) {
    par::Comm world;
    auto dir = test::scratch_dir(world);
    if (world.rank() != 0) return;
    nn::Model m(kSpec, nn::Shape{1, 4, 3});
    m.init(3);
    std::vector<float> state(size_t(m.num_state()));
    for (size_t i = 0; i < state.size(); ++i)
        state[i] = 0.5f + 0.01f * float(i);
    Kokkos::deep_copy(m.state(),
                      Kokkos::View<const float*, HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>(
                          state.data(), state.size()));
    io::save_model(dir + "/bn.h5", m, io::ModelMeta{});
    EXPECT_EQ(to_host(io::load_model(dir + "/bn.h5").state()), state);
    hid_t f = H5Fopen((dir + "/bn.h5").c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    H5Ldelete(f, "/state", H5P_DEFAULT);
    H5Fclose(f);
    const auto back = to_host(io::load_model(dir + "/bn.h5").state());
    EXPECT_EQ(back[0], 0.0f);                  // layer1.bn.running_mean
    EXPECT_EQ(back[4], 1.0f);                  // layer1.bn.running_var
    EXPECT_EQ(back[size_t(2 * 4 + 16)], 1.0f); // layer5.bn.running_var
}

} // namespace mimic
