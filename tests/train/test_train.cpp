// Trainer tests at 1 and 2 ranks: epoch order and batch slices, model-file round trip and bad files,
// 1 vs 2 ranks after N steps (a chain and a residual net, also on 4 ranks), bit-for-bit resume from a
// checkpoint (also with augmented batches), a non-finite loss stopping cleanly, and the augmented batch
// against a shifted and mirrored reference.
#include "mimic/core/error.hpp"
#include "mimic/core/log.hpp"
#include "mimic/core/rng.hpp"
#include "mimic/io/dataset.hpp"
#include "mimic/io/model_file.hpp"
#include "mimic/parallel/sharded_model.hpp"
#include "mimic/train/augment.hpp"
#include "mimic/train/batches.hpp"
#include "mimic/train/engine.hpp"
#include "mimic/train/evaluate.hpp"
#include "synthetic_set.hpp"
#include "test_util.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <set>

// The tests live in namespace mimic instead of a global `using namespace mimic;`, which would make
// mimic::log ambiguous with ::log inside the math_functions.hpp that nvcc appends to the translation unit.
namespace mimic {

namespace {

constexpr int kD = test::kSyntheticD, kClasses = test::kSyntheticClasses;

/// A learnable synthetic set: x ~ N(0, 1) of shape 1x4x3 (tests/support/synthetic_set.hpp).
void write_synthetic(const std::string& path, const par::Comm& comm, std::int64_t n, std::uint64_t seed) {
    test::write_synthetic_set(path, comm, n, seed);
}

std::vector<float> host_params(const nn::Model& m) {
    auto h = Kokkos::create_mirror_view_and_copy(HostSpace(), m.params());
    return std::vector<float>(h.data(), h.data() + h.extent(0));
}

/// The engine's configuration plus the shuffled loader's block and window.
struct TrainConfig : train::EngineConfig {
    std::int64_t shuffle_block = 4096, shuffle_window = 0;
    train::AugmentOptions augment; ///< --augment-shift, --augment-flip
};

/// The settings a test run's checkpoint must match (a subset of `mimic train`'s table).
io::ResumeIdentity identity(const TrainConfig& c) {
    io::ResumeIdentity id;
    id.add("--batch", c.batch).add("--lr", c.lr).add("--optimizer", c.optimizer.kind).add("--seed", c.seed);
    id.add("--schedule", c.schedule).add("--epochs", c.epochs).add("--shuffle-window", c.shuffle_window);
    return id;
}

TrainConfig small_config() {
    TrainConfig c;
    c.epochs = 3;
    c.batch = 16;
    c.seed = 7;
    c.lr = 0.05;
    c.optimizer.kind = "nesterov";
    c.optimizer.momentum = 0.9;
    c.optimizer.weight_decay = 1e-4;
    c.shuffle_block = 8;
    c.shuffle_window = 0;
    return c;
}

/// Trains a fresh model (initialised from cfg.seed) on `data` with `cfg` over `comm`, with an optional
/// validator; returns the trained parameters.
std::vector<float> train_model(const std::string& spec, const std::string& data, const TrainConfig& cfg,
                               const par::Comm& comm, train::TrainResult* result = nullptr,
                               train::Validator validator = {}) {
    train::DatasetSource src(data, comm);
    const par::Comm self(MPI_COMM_SELF, false);
    par::ShardedModel model(spec, src.shape(), self);
    train::ShuffledBatches batches(src, cfg.batch, cfg.shuffle_block, cfg.shuffle_window, cfg.seed, comm);
    if (cfg.augment.active())
        batches.set_augmenter(
            std::make_unique<train::BatchAugmenter>(cfg.augment, src.shape(), src.reader().norm_mean(),
                                                    src.reader().norm_std(), batches.max_local_rows(), data));
    train::Engine engine(cfg, model, batches, train::parse_objective("ce"), comm, comm, identity(cfg));
    if (validator) engine.set_validator(std::move(validator));
    auto r = engine.run(io::ModelMeta{});
    if (result) *result = r;
    return host_params(model.local());
}

struct Quiet {
    Quiet() { log::set_quiet(true); }
    ~Quiet() { log::set_quiet(false); }
};

} // namespace

TEST(EpochOrder, EveryRowOncePerEpochAndDeterministic) {
    for (std::int64_t window : {0, 24, 40}) {
        train::EpochOrder a(101, 8, window, 5, 2), b(101, 8, window, 5, 2), c(101, 8, window, 5, 3);
        std::vector<std::int64_t> rows;
        bool differs = false;
        for (std::int64_t p = 0; p < a.size(); ++p) {
            rows.push_back(a.row_at(p));
            EXPECT_EQ(a.row_at(p), b.row_at(p));
            differs = differs || a.row_at(p) != c.row_at(p);
        }
        EXPECT_TRUE(differs) << "epochs 2 and 3 have the same order (window " << window << ")";
        std::sort(rows.begin(), rows.end());
        for (std::int64_t i = 0; i < 101; ++i)
            ASSERT_EQ(rows[size_t(i)], i) << "window " << window;
        if (window > 0) {
            // Each window holds at most window/8 blocks of 8 rows.
            for (int w = 0; w < a.num_windows(); ++w)
                EXPECT_LE(std::int64_t(a.window_blocks(w).size()), window / 8);
        } else {
            EXPECT_EQ(a.num_windows(), 1);
        }
    }
}

TEST(BatchLoader, RanksTogetherServeEachGlobalBatchFromTheFile) {
    par::Comm world;
    auto dir = test::scratch_dir(world);
    const std::int64_t n = 75;
    write_synthetic(dir + "/d.h5", world, n, 11);
    train::DatasetSource src(dir + "/d.h5", world);
    std::vector<float> all(size_t(n * kD));
    std::vector<int> labels(static_cast<size_t>(n));
    src.read(0, n, all.data(), labels.data());
    for (std::int64_t window : {0, 32}) {
        train::BatchLoader loader(src, 10, 8, window, world);
        ASSERT_EQ(loader.steps_per_epoch(), 8);
        for (int epoch = 0; epoch < 2; ++epoch) {
            loader.start_epoch(9, epoch);
            std::int64_t seen = 0;
            for (std::int64_t step = 0; step < loader.steps_per_epoch(); ++step) {
                std::vector<float> x(size_t(loader.max_local_rows() * kD));
                std::vector<int> y(size_t(loader.max_local_rows()));
                const auto s = loader.load(step, x.data(), y.data());
                EXPECT_EQ(s.global_rows, std::min<std::int64_t>(10, n - step * 10));
                for (std::int64_t i = 0; i < s.rows; ++i) {
                    const std::int64_t row = loader.order().row_at(step * 10 + s.first + i);
                    ASSERT_EQ(y[size_t(i)], labels[size_t(row)]);
                    for (int j = 0; j < kD; ++j)
                        ASSERT_EQ(x[size_t(i * kD + j)], all[size_t(row * kD + j)]);
                }
                seen += world.sum_ll(s.rows);
                if (window > 0) EXPECT_LE(loader.resident_bytes(), 2 * 32 * (kD + 1) * 4);
            }
            EXPECT_EQ(seen, n);
        }
    }
}

TEST(ModelFile, RoundTripKeepsWeightsAndMetadata) {
    par::Comm world;
    auto dir = test::scratch_dir(world);
    if (world.rank() != 0) return;
    nn::Model m("conv:4x3,relu,pool:2,dense:8,relu,dense:3", nn::Shape{1, 4, 3});
    m.init(42);
    io::ModelMeta meta;
    meta.loss = "ce", meta.epochs = 7, meta.seed = 99, meta.data_fingerprint = "0123456789abcdef";
    meta.val_accuracy = 0.875;
    io::save_model(dir + "/m.h5", m, meta);
    EXPECT_FALSE(io::file_exists(dir + "/m.h5.partial"));
    io::ModelMeta got;
    nn::Model back = io::load_model(dir + "/m.h5", &got);
    EXPECT_EQ(back.spec(), m.spec());
    EXPECT_EQ(back.input_shape(), m.input_shape());
    EXPECT_EQ(host_params(back), host_params(m));
    EXPECT_EQ(got.loss, "ce");
    EXPECT_EQ(got.epochs, 7);
    EXPECT_EQ(got.seed, 99u);
    EXPECT_EQ(got.num_classes, 3);
    EXPECT_EQ(got.data_fingerprint, "0123456789abcdef");
    EXPECT_DOUBLE_EQ(got.val_accuracy, 0.875);
    EXPECT_EQ(got.weights_checksum, io::weights_checksum(m));
    EXPECT_FALSE(got.mimic_version.empty());
    EXPECT_EQ(io::read_model_meta(dir + "/m.h5").spec, m.spec());
}

namespace {
std::string load_error(const std::string& path) {
    try {
        io::load_model(path);
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}
void edit(const std::string& path, const std::function<void(hid_t)>& fn) {
    hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    fn(f);
    H5Fclose(f);
}
} // namespace

TEST(ModelFile, MissingWrongShapeAndTamperedWeightsAreClearErrors) {
    par::Comm world;
    auto dir = test::scratch_dir(world);
    if (world.rank() != 0) return;
    nn::Model m("dense:5,relu,dense:3", nn::Shape{1, 1, 4});
    m.init(1);
    for (const std::string c : {"missing", "shape", "tampered", "extra", "format"})
        io::save_model(dir + "/" + c + ".h5", m, {});

    edit(dir + "/missing.h5", [](hid_t f) { H5Ldelete(f, "/weights/layer2.dense.W", H5P_DEFAULT); });
    EXPECT_EQ(load_error(dir + "/missing.h5"), dir + "/missing.h5: weight 'layer2.dense.W' is missing");

    edit(dir + "/shape.h5", [](hid_t f) {
        H5Ldelete(f, "/weights/layer0.dense.W", H5P_DEFAULT);
        hsize_t dims[2] = {5, 4};
        hid_t s = H5Screate_simple(2, dims, nullptr);
        hid_t d = H5Dcreate2(f, "/weights/layer0.dense.W", H5T_NATIVE_FLOAT, s, H5P_DEFAULT, H5P_DEFAULT,
                             H5P_DEFAULT);
        H5Dclose(d);
        H5Sclose(s);
    });
    const auto shape_err = load_error(dir + "/shape.h5");
    EXPECT_NE(shape_err.find("weight 'layer0.dense.W' has shape [5, 4]"), std::string::npos) << shape_err;
    EXPECT_NE(shape_err.find("needs [4, 5]"), std::string::npos) << shape_err;

    edit(dir + "/tampered.h5", [](hid_t f) {
        hid_t d = H5Dopen2(f, "/weights/layer0.dense.b", H5P_DEFAULT);
        float v[5] = {1, 2, 3, 4, 5};
        H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
        H5Dclose(d);
    });
    EXPECT_NE(load_error(dir + "/tampered.h5").find("weights checksum mismatch"), std::string::npos);

    edit(dir + "/extra.h5", [](hid_t f) {
        hsize_t dims[1] = {3};
        hid_t s = H5Screate_simple(1, dims, nullptr);
        hid_t d = H5Dcreate2(f, "/weights/layer9.dense.b", H5T_NATIVE_FLOAT, s, H5P_DEFAULT, H5P_DEFAULT,
                             H5P_DEFAULT);
        H5Dclose(d);
        H5Sclose(s);
    });
    EXPECT_NE(load_error(dir + "/extra.h5").find("weight 'layer9.dense.b' is not a parameter of the spec"),
              std::string::npos);

    edit(dir + "/format.h5", [](hid_t f) { H5Adelete(f, "mimic_format"); });
    EXPECT_NE(load_error(dir + "/format.h5").find("not a Mimic model file"), std::string::npos);
    EXPECT_NE(load_error(dir + "/nonexistent.h5").find("no such file"), std::string::npos);
}

namespace {

/// Trains `spec` for 2 epochs (26 steps) over all ranks and, on rank 0, alone: the parameters must agree to
/// float summation order (bitwise on 1 rank), and every rank must hold the same replica.
void expect_rank_count_independent(const std::string& spec, std::int64_t batch = 15,
                                   train::AugmentOptions augment = {}) {
    // Same global batches, same seeds, dropout masks keyed by the row in the global batch: only the summation
    // order of the gradient differs between rank counts.
    Quiet q;
    par::Comm world;
    auto dir = test::scratch_dir(world);
    write_synthetic(dir + "/train.h5", world, 200, 21);
    auto cfg = small_config();
    cfg.epochs = 2; // 26 steps at batch 15, including a short last batch per epoch
    cfg.batch = batch;
    cfg.augment = augment;
    const auto p_world = train_model(spec, dir + "/train.h5", cfg, world);
    if (world.rank() == 0) {
        par::Comm self(MPI_COMM_SELF, false);
        const auto p_self = train_model(spec, dir + "/train.h5", cfg, self);
        ASSERT_EQ(p_world.size(), p_self.size());
        double max_abs = 0, max_param = 0;
        for (size_t i = 0; i < p_self.size(); ++i) {
            max_abs = std::max(max_abs, double(std::fabs(p_world[i] - p_self[i])));
            max_param = std::max(max_param, double(std::fabs(p_self[i])));
        }
        std::printf("1 vs %d ranks after 2 epochs: max |difference| %.3g, max |parameter| %.3g\n",
                    world.size(), max_abs, max_param);
        // Tolerance: 1e-4 relative to the largest weight after 2 epochs (float summation order only).
        EXPECT_LE(max_abs, 1e-4 * max_param)
            << "largest difference " << max_abs << " on " << world.size() << " ranks";
        if (world.size() == 1) EXPECT_EQ(max_abs, 0.0);
    }
    // Every rank holds the same replica.
    const double sum = std::accumulate(p_world.begin(), p_world.end(), 0.0);
    EXPECT_EQ(world.max(sum), world.min(sum));
}

} // namespace

TEST(Trainer, OneAndTwoRanksGiveTheSameModelAfterNSteps) {
    expect_rank_count_independent(
        "conv:4x3,relu,pool:2,dense:16,relu,dropout:0.25,dense:3"); // dropout included
}

// Augmented batches: each row's shift and mirror keyed by (seed, epoch, row), not by the rank that reads it.
TEST(Trainer, AugmentedTrainingIsTheSameModelOnAnyRankCount) {
    expect_rank_count_independent("conv:4x3,relu,pool:2,dense:16,relu,dense:3", 15, {1, true});
}

// Blocks: identity and projection shortcuts, a concatenation, an SE gate and dropout inside a branch (its
// masks keyed by the global row too). Also run on 4 ranks (tests/train.cmake).
TEST(Trainer, ResidualNetIsTheSameModelOnAnyRankCount) {
    expect_rank_count_independent("conv:4x3,relu,res(conv:4x3,relu,dropout:0.2,conv:4x3),relu,"
                                  "res(conv:6x3s2,relu,conv:6x3|conv:6x1s2),relu,cat(id|conv:2x1,relu),"
                                  "gate(pool:2,conv:8x1,sigmoid),dense:16,relu,dense:3");
}

// Batch normalisation inside the branches: the statistics of the whole step's batch on any rank count. Batch
// 66 of 200 rows leaves a last batch of 2 rows, so on 4 ranks two replicas run the blocks' idle passes.
TEST(Trainer, ResidualNetWithBatchNormIsTheSameModelOnAnyRankCount) {
    expect_rank_count_independent("conv:4x3,bn,relu,res(conv:4x3,bn,relu,conv:4x3,bn),relu,"
                                  "res(conv:6x3s2,bn,relu,conv:6x3,bn|conv:6x1s2,bn),relu,gap,dense:3",
                                  66);
}

TEST(Trainer, ResumedRunIsBitForBitTheUninterruptedRun) {
    Quiet q;
    par::Comm world;
    auto dir = test::scratch_dir(world);
    write_synthetic(dir + "/train.h5", world, 150, 5);
    write_synthetic(dir + "/val.h5", world, 40, 6);
    const std::string spec = "dense:16,relu,dropout:0.25,dense:3";
    for (const std::string opt : {"nesterov", "adamw"}) {
        auto cfg = small_config();
        cfg.optimizer.kind = opt;
        cfg.lr = opt == "adamw" ? 0.01 : 0.05;
        cfg.schedule = "plateau:1,0.5";
        cfg.shuffle_window = 48; // windows of 6 blocks of 8 rows
        cfg.log_csv = dir + "/" + opt + ".csv";
        if (opt == "adamw") cfg.augment = {1, true}; // augmented batches resume bit for bit too
        train::DatasetSource val_src(dir + "/val.h5", world);
        auto run = [&](const TrainConfig& c, train::TrainResult* r) {
            return train_model(spec, dir + "/train.h5", c, world, r, [&](par::ShardedModel& m) {
                auto counts = train::evaluate(train::model_predictor(m.local()), kClasses, val_src.reader(),
                                              1, 16, world);
                return train::Validation{counts.loss(), counts.loss(), counts.accuracy()};
            });
        };
        train::TrainResult straight_r, r1, r2, r3;
        const auto straight = run(cfg, &straight_r);
        ASSERT_TRUE(straight_r.completed);

        auto ck = cfg;
        ck.checkpoint = dir + "/" + opt + ".ckpt";
        ck.checkpoint_every = 4;
        ck.stop_after_steps = 14; // epoch 2 of 3 (10 steps per epoch): checkpoints at 4, 8, 10, 12 and 14
        run(ck, &r1);
        EXPECT_FALSE(r1.completed);
        ASSERT_TRUE(io::file_exists(ck.checkpoint));
        ck.stop_after_steps = 7;
        run(ck, &r2); // resumes at step 14, stops at 21
        EXPECT_TRUE(r2.resumed);
        EXPECT_FALSE(r2.completed);
        ck.stop_after_steps = 0;
        const auto resumed = run(ck, &r3);
        EXPECT_TRUE(r3.resumed && r3.completed);
        ASSERT_EQ(resumed.size(), straight.size());
        for (size_t i = 0; i < straight.size(); ++i)
            ASSERT_EQ(resumed[i], straight[i]) << opt << " param " << i;
        ASSERT_EQ(r3.history.size(), straight_r.history.size());
        for (size_t e = 0; e < straight_r.history.size(); ++e) {
            EXPECT_EQ(r3.history[e].train_loss, straight_r.history[e].train_loss)
                << opt << " epoch " << e + 1;
            EXPECT_EQ(r3.history[e].val_accuracy, straight_r.history[e].val_accuracy)
                << opt << " epoch " << e + 1;
        }
        // A checkpoint of another configuration is refused with the differing option named.
        auto other = ck;
        other.batch = 17;
        train::TrainResult r4;
        try {
            run(other, &r4);
            ADD_FAILURE() << "resumed a checkpoint of another configuration";
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find("--batch is 16 there but 17 in this run"), std::string::npos)
                << e.what();
        }
    }
}

TEST(Trainer, NonFiniteLossStopsNamingEpochAndStep) {
    Quiet q;
    par::Comm world;
    auto dir = test::scratch_dir(world);
    write_synthetic(dir + "/train.h5", world, 64, 8);
    auto cfg = small_config();
    cfg.lr = 1e30;
    cfg.checkpoint = dir + "/nan.ckpt";
    try {
        train_model("dense:8,relu,dense:3", dir + "/train.h5", cfg, world);
        FAIL() << "training with lr 1e30 finished";
    } catch (const CollectiveError& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("epoch 1, step "), std::string::npos) << msg;
        EXPECT_TRUE(msg.find(": loss is nan") != std::string::npos ||
                    msg.find(": loss is inf") != std::string::npos)
            << msg;
    }
    EXPECT_FALSE(io::file_exists(cfg.checkpoint)); // the blow-up happens within the first epoch
}

// The augmented batch against a reference: rows of 2x3x5 images with a global normalisation (mean 0.5, std
// 2: an uncovered pixel is the raw zero, -0.25), each shifted by its own (dx, dy) and mirrored before the
// shift; the choices depend on the epoch and the row only.
TEST(Augment, BatchIsTheShiftedAndMirroredReference) {
    const nn::Shape shape{2, 3, 5};
    const std::int64_t d = shape.size(), n = 24;
    const train::AugmentOptions a{2, true};
    train::BatchAugmenter aug(a, shape, std::vector<float>(size_t(d), 0.5f),
                              std::vector<float>(size_t(d), 2.0f), n, "test rows");
    std::vector<std::int64_t> rows(static_cast<size_t>(n));
    for (std::int64_t i = 0; i < n; ++i)
        rows[size_t(i)] = 1000 + 7 * i; // the dataset rows these batch rows hold
    Matrix x("mimic::test::augment_x", n, d);
    auto hx = Kokkos::create_mirror_view(x);
    for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t j = 0; j < d; ++j)
            hx(i, j) = float(i * 100 + j);
    Kokkos::deep_copy(x, hx);
    aug.apply(x, rows, 9, 3);
    auto got = Kokkos::create_mirror_view_and_copy(HostSpace(), x);
    int flipped = 0, shifted = 0;
    for (std::int64_t i = 0; i < n; ++i) {
        const auto s = train::augment_choice(a, 9, 3, rows[size_t(i)]);
        flipped += s.flip, shifted += s.dx != 0 || s.dy != 0;
        ASSERT_LE(std::abs(s.dx), 2);
        ASSERT_LE(std::abs(s.dy), 2);
        for (int c = 0; c < shape.c; ++c)
            for (int y = 0; y < shape.h; ++y)
                for (int xo = 0; xo < shape.w; ++xo) {
                    const int ys = y - s.dy, xt = xo - s.dx;
                    float want = -0.25f;
                    if (ys >= 0 && ys < shape.h && xt >= 0 && xt < shape.w)
                        want =
                            float(i * 100 + (c * shape.h + ys) * shape.w + (s.flip ? shape.w - 1 - xt : xt));
                    ASSERT_EQ(got(i, (c * shape.h + y) * shape.w + xo), want)
                        << "row " << i << " c " << c << " y " << y << " x " << xo;
                }
    }
    EXPECT_GT(flipped, 0);
    EXPECT_LT(flipped, n);
    EXPECT_GT(shifted, 0);
    // Another epoch draws other choices for the same rows.
    int same = 0;
    for (std::int64_t i = 0; i < n; ++i) {
        const auto s3 = train::augment_choice(a, 9, 3, rows[size_t(i)]);
        const auto s4 = train::augment_choice(a, 9, 4, rows[size_t(i)]);
        same += s3.dx == s4.dx && s3.dy == s4.dy && s3.flip == s4.flip;
    }
    EXPECT_LT(same, n);
    // Flat rows have no image to move: refused naming the option.
    try {
        train::check_augment_shape({0, true}, nn::Shape{1, 1, 30}, "flat.h5");
        ADD_FAILURE() << "augmented flat rows";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("--augment-flip: needs image-shaped rows"), std::string::npos)
            << e.what();
    }
}

TEST(Evaluate, CountsTopKAndConfusion) {
    train::EvalCounts c(3, 2);
    const float logits[] = {3, 1, 2,  // y 0: correct
                            0, 1, 2,  // y 1: predicted 2, top-2 hit
                            5, 5, -1, // y 1: tie resolves to 0, top-2 hit
                            1, 2, 0}; // y 2: last, top-2 miss
    const int labels[] = {0, 1, 1, 2};
    c.add(logits, labels, 4);
    EXPECT_EQ(c.n, 4);
    EXPECT_EQ(c.correct, 1);
    EXPECT_EQ(c.topk_correct, 3);
    EXPECT_EQ(c.confusion[0 * 3 + 0], 1);
    EXPECT_EQ(c.confusion[1 * 3 + 2], 1);
    EXPECT_EQ(c.confusion[1 * 3 + 0], 1);
    EXPECT_EQ(c.confusion[2 * 3 + 1], 1);
    EXPECT_DOUBLE_EQ(c.class_accuracy(1), 0.0);
    EXPECT_DOUBLE_EQ(c.class_accuracy(0), 1.0);
    const double l0 = -(3 - std::log(std::exp(3.0) + std::exp(1.0) + std::exp(2.0)));
    EXPECT_GT(c.loss(), l0 / 4);
}

} // namespace mimic
