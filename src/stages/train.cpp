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
                                                  "conv:32x3,relu,pool:2,dense:256,relu,dense:10")
        ("out", po::value(&o.out)->required(), "model file to write (HDF5, written only when training completes)")
        ("epochs", po::value(&o.epochs)->default_value(o.epochs), "epochs")
        ("batch", po::value(&o.batch)->default_value(o.batch), "global rows per micro-batch (split over the ranks)")
        ("accumulate", po::value(&o.accumulate)->default_value(o.accumulate),
         "K: micro-batches per optimizer step and gradient allreduce (K x batch rows per step)")
        ("bucket-mb", po::value(&o.bucket_mb)->default_value(o.bucket_mb),
         "MiB per bucket of the gradient allreduce, started during the backward pass (0: one allreduce after it; e.g. 1)")
        ("lr", po::value(&o.lr)->default_value(o.lr), "base learning rate")
        ("optimizer", po::value(&o.optimizer)->default_value(o.optimizer), "sgd | nesterov | adam | adamw")
        ("momentum", po::value(&o.momentum)->default_value(o.momentum), "momentum of sgd / nesterov")
        ("weight-decay", po::value(&o.weight_decay)->default_value(o.weight_decay),
         "weight decay: L2 added to the gradient (sgd, nesterov, adam) or decoupled (adamw)")
        ("beta1", po::value(&o.beta1)->default_value(o.beta1), "adam/adamw beta1")
        ("beta2", po::value(&o.beta2)->default_value(o.beta2), "adam/adamw beta2")
        ("eps", po::value(&o.eps)->default_value(o.eps), "adam/adamw epsilon")
        ("schedule", po::value(&o.schedule)->default_value(o.schedule),
         "constant | step:EVERY[,GAMMA] | cosine[:MIN_LR] | plateau:PATIENCE[,FACTOR[,MIN_LR]] (plateau watches the "
         "validation loss, or the training loss without --val)")
        ("warmup", po::value(&o.warmup)->default_value(o.warmup), "epochs of linear learning-rate warmup")
        ("seed", po::value(&o.seed)->default_value(o.seed), "seed of initialisation, shuffling and dropout")
        ("checkpoint", po::value(&o.checkpoint), "checkpoint file (default: OUT.ckpt); an existing one is resumed")
        ("checkpoint-every", po::value(&o.checkpoint_every)->default_value(o.checkpoint_every),
         "also checkpoint every N steps (0: at the end of every epoch only)")
        ("keep-checkpoint", po::bool_switch(&o.keep_checkpoint), "keep the checkpoint after the model is written")
        ("overwrite", po::bool_switch(&o.overwrite), "replace an existing output or checkpoint written with other settings")
        ("early-stop", po::value(&o.early_stop)->default_value(o.early_stop), "stop after this many epochs without improvement (0: never)")
        ("log-csv", po::value(&o.log_csv), "per-epoch CSV log (epoch, lr, losses, accuracies, time, samples/s)")
        ("timings-csv", po::value(&o.timings_csv), "append per-phase min/avg/max timings to this CSV file")
        ("shuffle-block", po::value(&o.shuffle_block)->default_value(o.shuffle_block),
         "rows per contiguous read when the set is read in windows")
        ("shuffle-window", po::value(&o.shuffle_window)->default_value(o.shuffle_window),
         "rows each rank holds in memory (0: the whole training set); smaller windows shuffle blocks, then rows "
         "within a window")
        ("eval-batch", po::value(&o.eval_batch)->default_value(o.eval_batch), "rows per forward pass in validation")
        ("stop-after-steps", po::value(&o.stop_after_steps)->default_value(o.stop_after_steps),
         "checkpoint and stop after N optimizer steps of this run (testing and time-boxed jobs; 0: never)")
        ("bootstrap", po::bool_switch(&o.bootstrap), "train on a bootstrap sample of --data drawn with --seed (held in memory)");
    // clang-format on
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
    id.add("--bootstrap", o.bootstrap ? "yes" : "no").add("--loss", "ce").add("--epochs", o.epochs);
    id.add("--batch", o.batch).add("--seed", o.seed).add("--lr", o.lr).add("--schedule", o.schedule);
    id.add("--warmup", o.warmup).add("--early-stop", o.early_stop);
    add_optimizer_identity(id, o.optimizer, o.momentum, o.weight_decay, o.beta1, o.beta2, o.eps);
    id.add("--shuffle-block", o.shuffle_block).add("--shuffle-window", o.shuffle_window);
    if (o.accumulate != 1) id.add("--accumulate", o.accumulate); // absent at 1: older files stay valid
    return id;
}

void add_optimizer_identity(io::ResumeIdentity& id, const std::string& optimizer, double momentum,
                            double weight_decay, double beta1, double beta2, double eps) {
    id.add("--optimizer", optimizer).add("--weight-decay", weight_decay);
    if (optimizer == "sgd" || optimizer == "nesterov") id.add("--momentum", momentum);
    if (optimizer == "adam" || optimizer == "adamw")
        id.add("--beta1", beta1).add("--beta2", beta2).add("--eps", eps);
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
    if (o.accumulate < 1) fail("--accumulate: must be >= 1, got ", o.accumulate);
    if (!(o.bucket_mb >= 0)) fail("--bucket-mb: must be >= 0, got ", o.bucket_mb);
    in.data = std::make_unique<train::DatasetSource>(o.data, comm);
    const auto& tm = in.data->reader().meta();
    if (!tm.has_labels) fail(o.data, ": has no labels (/y); `mimic train` trains on hard labels");
    if (tm.num_classes < 1) fail(o.data, ": attribute num_classes is missing or 0");
    in.num_classes = tm.num_classes;
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

train::EngineConfig engine_config(const TrainOptions& o, const std::string& checkpoint) {
    train::EngineConfig c;
    c.stage = "train";
    c.epochs = o.epochs, c.batch = o.batch, c.accumulate = o.accumulate, c.seed = std::uint64_t(o.seed);
    c.lr = o.lr, c.bucket_floats = train::bucket_floats(o.bucket_mb);
    c.schedule = o.schedule, c.warmup_epochs = o.warmup, c.early_stop = o.early_stop;
    c.optimizer.kind = o.optimizer, c.optimizer.momentum = o.momentum,
    c.optimizer.weight_decay = o.weight_decay;
    c.optimizer.beta1 = o.beta1, c.optimizer.beta2 = o.beta2, c.optimizer.eps = o.eps;
    c.out = o.out, c.checkpoint = checkpoint, c.checkpoint_every = o.checkpoint_every;
    c.keep_checkpoint = o.keep_checkpoint, c.overwrite = o.overwrite, c.log_csv = o.log_csv;
    c.stop_after_steps = o.stop_after_steps;
    return c;
}

} // namespace

void run(const TrainOptions& o, const par::Comm& comm) {
    // Plan and open inputs: every rank reaches the same verdict and they leave together.
    const double t_start = wall_seconds();
    const std::string checkpoint = o.checkpoint.empty() ? o.out + ".ckpt" : o.checkpoint;
    const auto lock =
        io::claim_outputs({o.out, checkpoint, o.log_csv, o.timings_csv}, {o.data, o.val}, comm.get());
    TrainInputs in;
    std::unique_ptr<par::ShardedModel> model;
    const par::Comm self = par::Comm::self(); // one model shard: every rank holds the whole model
    par::agree(comm, [&] {
        in = open_inputs(o, comm);
        const auto& tm = in.data->reader().meta();
        model = build_model(o, nn::Shape{tm.c, tm.h, tm.w}, in.num_classes, self);
    });
    if (o.bootstrap) in.sample = std::make_unique<train::BootstrapSource>(*in.data, std::uint64_t(o.seed));
    auto& source = in.source();
    const auto& net = model->local();
    log::info("model: ", o.arch, " on ", shape_text(net.input_shape()), " samples, ", net.num_params(),
              " parameters, ", net.flops_per_sample() / 1e6, " MFLOP/sample forward");
    log::info(net.summary());
    log::info("training set ", o.data, ": ", source.rows(), " rows; global batch ", o.batch,
              o.accumulate > 1 ? detail::concat(" x ", o.accumulate, " micro-batches per step") : "",
              " over ", comm.size(), " rank", comm.size() == 1 ? "" : "s", "; checkpoint ", checkpoint);

    // The engine: shuffled batches over the ranks, cross-entropy, validation on --val.
    train::ShuffledBatches batches(source, o.batch * o.accumulate, o.shuffle_block, o.shuffle_window,
                                   std::uint64_t(o.seed), comm);
    train::Engine engine(
        engine_config(o, checkpoint), *model, batches, train::parse_objective("ce"), comm, comm,
        train_identity(o, in.data->reader().meta().fingerprint, in.val ? in.val->meta().fingerprint : ""));
    if (in.val)
        engine.set_validator([&, C = in.num_classes](par::ShardedModel& m) {
            const auto counts =
                train::evaluate(train::model_predictor(m.local()), C, *in.val, 1, o.eval_batch, comm);
            return train::Validation{counts.loss(), counts.loss(), counts.accuracy()};
        });
    io::ModelMeta meta;
    meta.loss = "ce";
    meta.seed = std::uint64_t(o.seed);
    meta.data_fingerprint = source.fingerprint();
    const auto result = engine.run(meta); // raises CollectiveError on every rank for a non-finite loss
    if (result.completed && o.final_output) StopSignals::output_complete(); // a late SIGTERM is no failure
    if (!result.completed || result.already_done) return;

    // Finish: the timings and where the model went.
    engine.timers().add("total", wall_seconds() - t_start);
    engine.timers().report(comm, "training timings");
    engine.timers().append_csv(comm, o.timings_csv,
                               {{"stage", "train"},
                                {"ranks", std::to_string(comm.size())},
                                {"rows", std::to_string(std::int64_t(result.samples_run))},
                                {"params", std::to_string(net.num_params())},
                                {"batch", std::to_string(o.batch)},
                                {"accumulate", std::to_string(o.accumulate)}});
    const auto& last = result.history.back();
    log::info("");
    log::info("wrote ", o.out, ": ", result.history.size(), " epochs, final train loss ", last.train_loss,
              last.val_accuracy >= 0 ? detail::concat(", val accuracy ", 100.0 * last.val_accuracy, "%") : "",
              ", weights checksum ", io::read_model_meta(o.out).weights_checksum);
}

} // namespace mimic::stages
