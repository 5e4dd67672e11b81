// `mimic train`: validates the data, the validation set and the spec together (all ranks leave together on
// any error), then wires the options into the training engine: shuffled batches, cross-entropy, validation.
#include "mimic/stages/train.hpp"
#include "mimic/train/bootstrap.hpp"

#include "mimic/core/error.hpp"
#include "mimic/core/log.hpp"
#include "mimic/core/stop_signal.hpp"
#include "mimic/core/timer.hpp"
#include "mimic/io/dataset.hpp"
#include "mimic/io/model_file.hpp"
#include "mimic/io/paths.hpp"
#include "mimic/parallel/sharded_model.hpp"
#include "mimic/train/engine.hpp"
#include "mimic/train/evaluate.hpp"

#include <algorithm>
#include <cstdio>
#include <memory>

namespace po = boost::program_options;

namespace mimic::stages {

void describe(po::options_description& d, TrainOptions& o) {
    // clang-format off
    d.add_options()
        ("data", po::value(&o.data)->required(), "training set (a labelled dataset file, e.g. from `mimic data import`)")
        ("val", po::value(&o.val), "validation set, evaluated after every epoch (drives --schedule plateau)")
        ("arch", po::value(&o.arch)->required(), "architecture spec, e.g. dense:1200,relu,dense:1200,relu,dense:10 or "
                                                  "conv:32x3,relu,pool:2,dense:256,relu,dense:10; tokens: dense:N, bottleneck:K, "
                                                  "conv:FxK[sS][pP][gG] (G groups), dwconv:K[sS][pP] (depthwise), pool:K[sS][pP][c] "
                                                  "(max), avgpool:K[sS][pP][e][c] (e: padding not counted; c: ceil mode, a last "
                                                  "partial window kept), gap, relu, relu6, sigmoid, silu, hardswish, hardsigmoid, leakyrelu[:A], elu[:A], gelu, softplus, tanh, dropout:P, flatten, bn (batch "
                                                  "normalisation); blocks run branches "
                                                  "(chains separated by |) on one input and join them: res(A) = A(x) + x, "
                                                  "res(A|B) = A(x) + B(x), cat(A|B) concatenates channels (an empty "
                                                  "branch or id is x), gate(A) = x * A(x); they nest. A residual net: "
                                                  "conv:16x3,relu,res(conv:16x3,relu,conv:16x3),relu,"
                                                  "res(conv:32x3s2,relu,conv:32x3|conv:32x1s2),relu,pool:7,dense:10")
        ("out", po::value(&o.out)->required(), "model file to write (HDF5, written only when training completes)")
        ("checkpoint", po::value(&o.checkpoint), "checkpoint file (default: OUT.ckpt); an existing one is resumed")
        ("keep-checkpoint", po::bool_switch(&o.keep_checkpoint), "keep the checkpoint after the model is written")
        ("overwrite", po::bool_switch(&o.overwrite),
         "start over: replace an existing output (even one of these settings) and ignore a checkpoint")
        ("shuffle-block", po::value(&o.shuffle_block)->default_value(o.shuffle_block),
         "rows per contiguous read when the set is read in windows")
        ("shuffle-window", po::value(&o.shuffle_window)->default_value(o.shuffle_window),
         "rows each rank holds in memory (0: the whole training set); smaller windows shuffle blocks, then rows "
         "within a window")
        ("eval-batch", po::value(&o.eval_batch)->default_value(o.eval_batch), "rows per forward pass in validation")
        ("bootstrap", po::bool_switch(&o.bootstrap), "train on a bootstrap sample of --data drawn with --seed (held in memory)");
    // clang-format on
    train::describe(d, o.engine);
}

namespace {

std::string shape_text(const nn::Shape& s) {
    return detail::concat(s.c, "x", s.h, "x", s.w);
}

} // namespace

io::ResumeIdentity train_identity(const TrainOptions& o, const std::string& data_fingerprint,
                                  const std::string& val_fingerprint) {
    io::ResumeIdentity id;
    id.add("--arch", o.arch).add("--data", data_fingerprint).add("--val", val_fingerprint);
    id.add("--bootstrap", o.bootstrap ? "yes" : "no").add("--loss", "ce");
    train::add_identity(id, o.engine, true); // train's files have always recorded --warmup
    id.add("--shuffle-block", o.shuffle_block).add("--shuffle-window", o.shuffle_window);
    return id;
}

namespace {

/// The inputs of a training run, validated together on every rank.
struct TrainInputs {
    std::unique_ptr<train::DatasetSource> data;
    std::unique_ptr<io::DatasetReader> val;
    std::unique_ptr<train::BootstrapSource> sample;
    int num_classes = 0;
    train::TrainSource& source() { return sample ? static_cast<train::TrainSource&>(*sample) : *data; }
};

TrainInputs open_inputs(const TrainOptions& o, const par::Comm& comm) {
    TrainInputs in;
    if (o.eval_batch < 1) fail("--eval-batch: must be >= 1, got ", o.eval_batch);
    in.data = std::make_unique<train::DatasetSource>(o.data, comm);
    const auto& tm = in.data->reader().meta();
    if (!tm.has_labels) fail(o.data, ": has no labels (/y); `mimic train` trains on hard labels");
    if (tm.num_classes < 1) fail(o.data, ": attribute num_classes is missing or 0");
    in.num_classes = tm.num_classes;
    train::check_augment_shape(train::augment_options(o.engine), nn::Shape{tm.c, tm.h, tm.w}, o.data);
    if (!o.val.empty()) {
        in.val = std::make_unique<io::DatasetReader>(o.val, comm);
        const auto& vm = in.val->meta();
        if (!vm.has_labels) fail(o.val, ": has no labels (/y), so it cannot validate");
        if (vm.c != tm.c || vm.h != tm.h || vm.w != tm.w)
            fail(o.val, ": samples are ", vm.c, "x", vm.h, "x", vm.w, " but the training set's are ", tm.c,
                 "x", tm.h, "x", tm.w);
        if (vm.num_classes > in.num_classes)
            fail(o.val, ": has ", vm.num_classes, " classes but the training set has ", in.num_classes);
    }
    io::make_dirs(h5::parent_dir(o.out));
    return in;
}

std::unique_ptr<par::ShardedModel> build_model(const TrainOptions& o, const nn::Shape& in, int num_classes,
                                               const par::Comm& self) {
    std::unique_ptr<par::ShardedModel> model;
    try {
        model = std::make_unique<par::ShardedModel>(o.arch, in, self);
    } catch (const Error& e) {
        fail("--arch does not fit the data in ", o.data, " (samples ", shape_text(in), "): ", e.what());
    }
    if (model->local().output_size() != num_classes)
        fail("--arch: the last layer gives ", model->local().output_size(), " outputs but ", o.data, " has ",
             num_classes, " classes (end the spec with dense:", num_classes, ")");
    return model;
}

} // namespace

bool run(const TrainOptions& o, const par::Comm& comm) {
    // Plan and open inputs: every rank reaches the same verdict and they leave together.
    const double t_start = wall_seconds();
    const std::string checkpoint = o.checkpoint.empty() ? o.out + ".ckpt" : o.checkpoint;
    const auto& e = o.engine;
    par::agree(comm, [&] { train::validate(e); }); // before anything is written
    const auto lock =
        io::claim_outputs({o.out, checkpoint, e.log_csv, e.timings_csv}, {o.data, o.val}, comm.get());
    TrainInputs in;
    std::unique_ptr<par::ShardedModel> model;
    const par::Comm self = par::Comm::self(); // one model shard: every rank holds the whole model
    par::agree(comm, [&] {
        in = open_inputs(o, comm);
        const auto& tm = in.data->reader().meta();
        model = build_model(o, nn::Shape{tm.c, tm.h, tm.w}, in.num_classes, self);
    });
    // A training set too large to hash when opened is verified by the reads of the first epoch (or of the
    // bootstrap sample), before any model is written.
    in.data->fold_fingerprint(std::max<std::int64_t>(1, o.shuffle_block));
    if (o.bootstrap) {
        in.sample = std::make_unique<train::BootstrapSource>(*in.data, std::uint64_t(e.seed));
        par::agree(comm, [&] { in.data->check_rows(comm, true); });
    }
    auto& source = in.source();
    const auto& net = model->local();
    log::info("model: ", o.arch, " on ", shape_text(net.input_shape()), " samples, ", net.num_params(),
              " parameters, ", net.flops_per_sample() / 1e6, " MFLOP/sample forward");
    log::info(net.summary());
    log::info("training set ", o.data, ": ", source.rows(), " rows; global batch ", e.batch,
              e.accumulate > 1 ? detail::concat(" x ", e.accumulate, " micro-batches per step") : "",
              " over ", comm.size(), " rank", comm.size() == 1 ? "" : "s", "; checkpoint ", checkpoint);

    // The engine: shuffled batches over the ranks, cross-entropy, validation on --val.
    train::ShuffledBatches batches(source, e.batch * e.accumulate, o.shuffle_block, o.shuffle_window,
                                   std::uint64_t(e.seed), comm);
    if (train::augment_options(e).active()) {
        const auto& r = in.data->reader();
        par::agree(comm, [&] {
            batches.set_augmenter(std::make_unique<train::BatchAugmenter>(
                train::augment_options(e), net.input_shape(), r.norm_mean(), r.norm_std(),
                batches.max_local_rows(), o.data));
        });
    }
    auto config = train::engine_config(e, "train");
    config.out = o.out, config.checkpoint = checkpoint, config.keep_checkpoint = o.keep_checkpoint;
    config.overwrite = o.overwrite;
    train::Engine engine(
        std::move(config), *model, batches, train::parse_objective("ce"), comm, comm,
        train_identity(o, in.data->reader().meta().fingerprint, in.val ? in.val->meta().fingerprint : ""));
    if (in.val)
        engine.set_validator([&, C = in.num_classes](par::ShardedModel& m) {
            const auto counts =
                train::evaluate(train::model_predictor(m.local()), C, *in.val, 1, o.eval_batch, comm);
            return train::Validation{counts.loss(), counts.loss(), counts.accuracy()};
        });
    io::ModelMeta meta;
    meta.loss = "ce";
    meta.seed = std::uint64_t(e.seed);
    meta.data_fingerprint = source.fingerprint();
    const auto result = engine.run(meta); // raises CollectiveError on every rank for a non-finite loss
    if (result.completed && o.final_output) StopSignals::output_complete(); // a late SIGTERM is no failure
    if (!result.completed || result.already_done) return result.completed;

    // Finish: the timings and where the model went.
    engine.timers().add("total", wall_seconds() - t_start);
    engine.timers().report(comm, "training timings");
    engine.timers().append_csv(comm, e.timings_csv,
                               {{"stage", "train"},
                                {"ranks", std::to_string(comm.size())},
                                {"rows", std::to_string(std::int64_t(result.samples_run))},
                                {"params", std::to_string(net.num_params())},
                                {"batch", std::to_string(e.batch)},
                                {"accumulate", std::to_string(e.accumulate)}});
    const auto& last = result.history.back();
    log::info("");
    log::info("wrote ", o.out, ": ", result.history.size(), " epochs, final train loss ", last.train_loss,
              last.val_accuracy >= 0 ? detail::concat(", val accuracy ", 100.0 * last.val_accuracy, "%") : "",
              ", weights checksum ", io::read_model_meta(o.out).weights_checksum);
    return true;
}

} // namespace mimic::stages
