// Tests of `mimic distill` and the model-parallel student: sharded initialisation and model files equal
// the one-rank model bit for bit; M model shards and R data replicas match a one-rank run step for step,
// for a chain and a residual trunk (within a stated float tolerance); K accumulated micro-batches match
// one batch of their rows; per-layer learning rates (--layer-lr) match one rank on every grid; the
// overlapped bucketed gradient allreduce matches the blocking one; resume is exact; bad inputs are refused.
#include "mimic/core/rng.hpp"
#include "mimic/io/dataset.hpp"
#include "mimic/io/logits_file.hpp"
#include "mimic/io/manifest.hpp"
#include "mimic/io/model_file.hpp"
#include "mimic/parallel/grid.hpp"
#include "mimic/parallel/sharded_model.hpp"
#include "mimic/parallel/sharded_model_file.hpp"
#include "mimic/stages/distill.hpp"
#include "mimic/stages/label.hpp"
#include "test_util.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <cmath>

using namespace mimic;

namespace {

constexpr int kC = 3;
const nn::Shape kShape{1, 4, 5};
const char* kStudent = "bottleneck:6,dense:24,relu,dense:3";

void write_set(const std::string& path, std::int64_t n, std::uint64_t seed) {
    io::DatasetMeta dm;
    dm.n = n, dm.d = kShape.size(), dm.c = 1, dm.h = 4, dm.w = 5, dm.num_classes = kC, dm.has_labels = true;
    io::DatasetWriter w(path, par::Comm(MPI_COMM_SELF, false), dm);
    std::vector<float> X(size_t(n * dm.d));
    std::vector<int> y(static_cast<size_t>(n));
    for (std::int64_t r = 0; r < n; ++r) {
        CounterRng g(derive_seed(seed, std::uint64_t(r)));
        y[size_t(r)] = int(g.below(kC));
        for (std::int64_t j = 0; j < dm.d; ++j)
            X[size_t(r * dm.d + j)] = g.normal() + (j % kC == y[size_t(r)] ? 1.5f : 0.f);
    }
    w.write(0, n, X.data(), y.data());
    w.commit();
}

/// Transfer and validation sets, a 3-member ensemble, and its logits on both (labelled on all ranks).
void make_fixture(const std::string& dir, const par::Comm& world) {
    if (world.rank() == 0) {
        write_set(dir + "/transfer.h5", 1500, 11);
        write_set(dir + "/val.h5", 300, 12);
        io::Manifest m;
        m.base_dir = dir;
        const char* specs[] = {"dense:16,relu,dense:3", "dense:8,tanh,dense:3", "dense:3"};
        for (int i = 0; i < 3; ++i) {
            nn::Model model(specs[i], kShape);
            model.init(50 + std::uint64_t(i));
            io::ModelMeta meta;
            meta.spec = specs[i];
            meta.input = kShape;
            meta.num_classes = kC;
            const std::string name = "t" + std::to_string(i) + ".h5";
            io::save_model(dir + "/" + name, model, meta);
            m.members.push_back(io::member_from_model_file(dir + "/" + name, name));
        }
        io::write_manifest(dir + "/ens.h5", m);
    }
    world.barrier();
    for (const char* set : {"transfer", "val"}) {
        stages::LabelOptions o;
        o.ensemble = dir + "/ens.h5";
        o.transfer = dir + "/" + set + ".h5";
        o.out = dir + "/" + set + "_logits.h5";
        o.block_rows = 256;
        o.batch = 64;
        stages::run(o, world);
    }
}

stages::DistillOptions options(const std::string& dir, const std::string& out) {
    stages::DistillOptions o;
    o.transfer = dir + "/transfer.h5";
    o.logits = dir + "/transfer_logits.h5";
    o.val = dir + "/val.h5";
    o.val_logits = dir + "/val_logits.h5";
    o.arch = kStudent;
    o.out = dir + "/" + out;
    o.engine.epochs = 2;
    o.engine.batch = 50;
    o.engine.lr = 0.02;
    o.block_rows = 400;
    o.engine.schedule = "constant";
    o.engine.seed = 3;
    return o;
}

std::vector<float> weights(const std::string& path) {
    auto m = io::load_model(path);
    std::vector<float> h(size_t(m.num_params()));
    Kokkos::deep_copy(
        Kokkos::View<float*, HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>(h.data(), h.size()),
        m.params());
    return h;
}

void run_serial(const stages::DistillOptions& o, const par::Comm& world) {
    if (world.rank() == 0) stages::run(o, par::Comm(MPI_COMM_SELF, false));
    world.barrier();
}

/// Largest |a - b| / (1 + |b|).
double max_rel(const std::vector<float>& a, const std::vector<float>& b) {
    double m = 0;
    for (size_t i = 0; i < a.size(); ++i)
        m = std::max(m, std::fabs(double(a[i]) - b[i]) / (1.0 + std::fabs(b[i])));
    return m;
}

/// Runs `o` on every grid of the world's ranks (M model shards of each divisor of P, R = P / M replicas),
/// into DIR/NAME_m<M>.h5, and expects each model to match `ref` to 1e-4 relative: the grids sum partial
/// products in another order, so float rounding differs (measured ~1e-6 after 60 steps).
void expect_every_grid_matches(stages::DistillOptions o, const std::string& dir, const std::string& name,
                               const std::vector<float>& ref, const par::Comm& world) {
    for (int m : par::divisors(world.size())) {
        o.out = dir + "/" + name + "_m" + std::to_string(m) + ".h5";
        o.model_shards = m;
        stages::run(o, world);
        const auto got = weights(o.out);
        ASSERT_EQ(got.size(), ref.size());
        EXPECT_LT(max_rel(got, ref), 1e-4) << "R = " << world.size() / m << ", M = " << m;
    }
}

/// The train_loss column of a per-epoch CSV log.
std::vector<double> train_losses(const std::string& csv) {
    std::ifstream f(csv);
    std::string line;
    std::getline(f, line); // header: epoch,lr,train_loss,...
    std::vector<double> out;
    while (std::getline(f, line)) {
        std::istringstream row(line);
        std::string cell;
        for (int c = 0; c < 3 && std::getline(row, cell, ','); ++c) {
        }
        out.push_back(std::stod(cell));
    }
    return out;
}

} // namespace

TEST(ShardedModel, InitAndModelFileEqualTheOneRankModel) {
    par::Comm world;
    const auto dir = test::scratch_dir(world);
    par::ShardedModel s(kStudent, kShape, world);
    s.init(99);
    {
        auto f = h5::File::create(dir + "/sharded.h5", world.size() > 1 ? world.get() : MPI_COMM_NULL);
        io::ModelMeta meta;
        par::write_sharded_model(f, s, meta, true, world);
        f.close();
    }
    world.barrier();
    nn::Model full(kStudent, kShape);
    full.init(99);
    std::vector<float> want(size_t(full.num_params()));
    Kokkos::deep_copy(
        Kokkos::View<float*, HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>(want.data(), want.size()),
        full.params());
    EXPECT_EQ(weights(dir + "/sharded.h5"), want); // load_model also verifies the composable checksum
    EXPECT_EQ(s.full_num_params(), full.num_params());
    // Reading back into the shards restores them exactly.
    par::ShardedModel t(kStudent, kShape, world);
    auto f = h5::File::open(dir + "/sharded.h5", world.size() > 1 ? world.get() : MPI_COMM_NULL);
    par::read_sharded_weights(f, t);
    std::vector<float> a(size_t(s.local().num_params())), b(a.size());
    Kokkos::deep_copy(
        Kokkos::View<float*, HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>(a.data(), a.size()),
        s.local().params());
    Kokkos::deep_copy(
        Kokkos::View<float*, HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>(b.data(), b.size()),
        t.local().params());
    EXPECT_EQ(a, b);
}

// The elementwise activations between the wide pair's two dense layers split like relu: the shards'
// logits equal the one-rank model's.
TEST(ShardedModel, EveryElementwiseActivationSplitsTheWidePair) {
    par::Comm world;
    const nn::Shape in{1, 1, 5};
    const int B = 4;
    Matrix x("mimic::test::x", B, in.size());
    auto hx = Kokkos::create_mirror_view(x);
    CounterRng r(17);
    for (int i = 0; i < B * in.size(); ++i)
        hx.data()[i] = 3.0f * r.normal();
    Kokkos::deep_copy(x, hx);
    for (const std::string act : {"relu6", "silu", "hardswish", "hardsigmoid"}) {
        const std::string spec = "dense:8," + act + ",dense:3";
        par::ShardedModel s(spec, in, world);
        s.init(5);
        nn::Model full(spec, in);
        full.init(5);
        auto zs = Kokkos::create_mirror_view_and_copy(HostSpace(), s.forward(x, false));
        auto zf = Kokkos::create_mirror_view_and_copy(HostSpace(), full.forward(x, false));
        for (int i = 0; i < B * 3; ++i)
            EXPECT_NEAR(zs.data()[i], zf.data()[i], 1e-5 * (1 + std::fabs(zf.data()[i]))) << spec << " " << i;
    }
}

TEST(Distill, ModelShardsAndDataReplicasMatchOneRankStepForStep) {
    par::Comm world;
    const auto dir = test::scratch_dir(world);
    make_fixture(dir, world);
    run_serial(options(dir, "serial.h5"), world);
    const auto ref = weights(dir + "/serial.h5");
    expect_every_grid_matches(options(dir, ""), dir, "grid", ref, world);
}

// A student whose trunk is a residual graph (blocks with identity and projection shortcuts and a
// concatenation), then the wide pair: the wide layer still shards over M ranks and gives the one-rank model.
TEST(Distill, ResidualTrunkWithAShardedWideLayerMatchesOneRank) {
    par::Comm world;
    const auto dir = test::scratch_dir(world);
    make_fixture(dir, world);
    const std::string arch = "conv:4x3,relu,res(conv:4x3,relu,conv:4x3),relu,res(conv:6x3s2,relu,conv:6x3|"
                             "conv:6x1s2),relu,cat(id|conv:2x1,relu),dense:24,relu,dense:3";
    auto serial = options(dir, "res_serial.h5");
    serial.arch = arch;
    run_serial(serial, world);
    const auto ref = weights(serial.out);
    expect_every_grid_matches(serial, dir, "res", ref, world);
}

// --layer-lr on a sharded student: every grid scales the same layers (the replicated bottleneck, the split
// wide layer) and matches one rank with the same multipliers; the multipliers change the result.
TEST(Distill, LayerLearningRatesMatchOneRankOnEveryGrid) {
    par::Comm world;
    const auto dir = test::scratch_dir(world);
    make_fixture(dir, world);
    run_serial(options(dir, "plain.h5"), world);
    auto serial = options(dir, "layer_lr_serial.h5");
    serial.engine.layer_lr = "bottleneck=4,layer1=0.25";
    run_serial(serial, world);
    const auto ref = weights(serial.out);
    EXPECT_GT(max_rel(ref, weights(dir + "/plain.h5")), 1e-2);
    expect_every_grid_matches(serial, dir, "layer_lr", ref, world);
}

TEST(Distill, ResumesBitForBitAndOnAnotherGrid) {
    par::Comm world;
    const auto dir = test::scratch_dir(world);
    make_fixture(dir, world);
    auto full = options(dir, "full.h5");
    stages::run(full, world);
    // Stop after 7 steps (mid-epoch), then rerun the same command.
    auto o = options(dir, "resumed.h5");
    o.engine.stop_after_steps = 7;
    stages::run(o, world);
    EXPECT_FALSE(io::file_exists(o.out));
    EXPECT_TRUE(io::file_exists(o.out + ".ckpt"));
    o.engine.stop_after_steps = 0;
    stages::run(o, world);
    EXPECT_EQ(weights(o.out), weights(full.out));
    // Rerunning a finished run is a no-op: nothing is retrained, the file is not rewritten.
    const auto written = std::filesystem::last_write_time(o.out);
    const auto before = weights(o.out);
    world.barrier();
    EXPECT_NO_THROW(stages::run(o, world));
    world.barrier();
    EXPECT_EQ(std::filesystem::last_write_time(o.out), written);
    EXPECT_EQ(weights(o.out), before);
    EXPECT_FALSE(io::file_exists(o.out + ".ckpt")); // removed once the student was written
    if (world.size() > 1) {                         // resume on a different R x M grid: float tolerance
        auto g = options(dir, "regrid.h5");
        g.engine.stop_after_steps = 9;
        stages::run(g, world);
        g.engine.stop_after_steps = 0;
        g.model_shards = world.size();
        stages::run(g, world);
        EXPECT_LT(max_rel(weights(g.out), weights(full.out)), 1e-4);
    }
}

TEST(Distill, AccumulatedMicroBatchesMatchOneBatchOfTheirRows) {
    par::Comm world;
    const auto dir = test::scratch_dir(world);
    make_fixture(dir, world);
    // K = 4 micro-batches of 32 rows against one batch of 128: the same rows, row offsets and dropout
    // masks per optimizer step, so only the order of the gradient sums differs (measured ~1e-7).
    auto run = [&](const std::string& arch, int m, std::int64_t batch, int k, const std::string& name) {
        auto o = options(dir, name + ".h5");
        o.arch = arch, o.model_shards = m, o.engine.batch = batch, o.engine.accumulate = k;
        o.engine.log_csv = dir + "/" + name + ".csv";
        stages::run(o, world);
        world.barrier();
        return o;
    };
    for (const std::string arch : {kStudent, "dense:24,relu,dropout:0.3,dense:3"}) {
        for (int m : par::divisors(world.size())) {
            if (m > 1 && arch.find("dropout") != std::string::npos) continue; // not a shardable wide pair
            const std::string tag = (arch == kStudent ? "s" : "d") + std::to_string(m);
            const auto big = run(arch, m, 128, 1, "big_" + tag), acc = run(arch, m, 32, 4, "acc_" + tag);
            const auto what =
                arch + ", R = " + std::to_string(world.size() / m) + ", M = " + std::to_string(m);
            EXPECT_LT(max_rel(weights(acc.out), weights(big.out)), 1e-5) << what;
            const auto lb = train_losses(big.engine.log_csv), la = train_losses(acc.engine.log_csv);
            ASSERT_EQ(la.size(), 2u) << what;
            ASSERT_EQ(lb.size(), 2u) << what;
            for (size_t e = 0; e < la.size(); ++e)
                EXPECT_NEAR(la[e], lb[e], 1e-5 * (1 + std::fabs(lb[e]))) << what << ", epoch " << e + 1;
        }
    }
    // K decides the result, so it is part of the resume identity; a resume with the same K is exact.
    auto o = options(dir, "acc_resumed.h5");
    o.engine.batch = 32, o.engine.accumulate = 4, o.engine.stop_after_steps = 5;
    stages::run(o, world);
    o.engine.stop_after_steps = 0;
    o.engine.accumulate = 2;
    try {
        stages::run(o, world);
        ADD_FAILURE() << "a resume with another --accumulate was accepted";
    } catch (const CollectiveError& e) {
        EXPECT_NE(std::string(e.what()).find("--accumulate is 4 there but 2 in this run"), std::string::npos)
            << e.what();
    }
    o.engine.accumulate = 4;
    stages::run(o, world);
    EXPECT_EQ(weights(o.out), weights(dir + "/acc_s1.h5"));
}

TEST(Distill, OverlappedGradientAllreduceMatchesTheBlockingOne) {
    par::Comm world;
    if (world.size() < 2) GTEST_SKIP() << "needs at least 2 data replicas";
    const auto dir = test::scratch_dir(world);
    make_fixture(dir, world);
    for (int m : par::divisors(world.size())) {
        const int R = world.size() / m;
        if (R < 2) continue;
        for (int k : {1, 2}) {
            const auto tag = "_m" + std::to_string(m) + "_k" + std::to_string(k) + ".h5";
            auto blocking = options(dir, "blocking" + tag), overlapped = options(dir, "overlapped" + tag);
            blocking.model_shards = overlapped.model_shards = m;
            blocking.engine.accumulate = overlapped.engine.accumulate = k;
            blocking.engine.bucket_mb = 0;      // one allreduce after the backward pass
            overlapped.engine.bucket_mb = 1e-4; // 26 floats: one bucket per layer, started during backward
            stages::run(blocking, world);
            stages::run(overlapped, world);
            const auto a = weights(overlapped.out), b = weights(blocking.out);
            if (R == 2) { // a + b whatever the buckets
                EXPECT_EQ(a, b) << "R = 2, M = " << m << ", K = " << k;
            } else {
                EXPECT_LT(max_rel(a, b), 1e-5) << "R = " << R << ", M = " << m << ", K = " << k;
            }
        }
    }
}

TEST(Distill, RefusesMismatchedInputs) {
    par::Comm world;
    const auto dir = test::scratch_dir(world);
    make_fixture(dir, world);
    auto expect_error = [&](stages::DistillOptions o, const std::string& what) {
        try {
            stages::run(o, world);
            ADD_FAILURE() << "expected an error containing '" << what << "'";
        } catch (const CollectiveError& e) {
            EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
        }
        EXPECT_FALSE(io::file_exists(o.out));
    };
    auto o = options(dir, "x.h5");
    o.logits = dir + "/val_logits.h5"; // logits of another set
    expect_error(o, "holds logits for 300 rows but");
    o = options(dir, "x.h5");
    o.arch = "dense:16,relu,dense:4";
    expect_error(o, "the student has 4 outputs but");
    o = options(dir, "x.h5");
    o.loss = "kd:0";
    expect_error(o, "needs T > 0");
    o = options(dir, "x.h5");
    o.engine.accumulate = 0;
    expect_error(o, "--accumulate: must be >= 1, got 0");
    o = options(dir, "x.h5");
    o.engine.bucket_mb = -1;
    expect_error(o, "--bucket-mb: must be a finite number in [0, 1048576], got -1");
    if (world.size() > 1) {
        o = options(dir, "x.h5");
        o.arch = "dense:1,relu,dense:3";
        o.model_shards = world.size();
        expect_error(o, "more model-parallel ranks than the wide layer's 1 units allow");
        o = options(dir, "x.h5");
        o.arch = "dense:16,relu,dropout:0.5,dense:3";
        o.model_shards = world.size();
        expect_error(o, "must end in a wide pair");
    }
}
