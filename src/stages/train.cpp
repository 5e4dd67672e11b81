// `mimic train`: validates the data, the validation set and the spec together (all ranks leave together on
// any error), builds and initialises the model, runs the data-parallel Trainer with cross-entropy and
// writes the model file atomically on rank 0, only when training completed with finite losses.
#include "mimic/stages/train.hpp"
#include "mimic/train/bootstrap.hpp"

#include "mimic/core/error.hpp"
#include "mimic/core/log.hpp"
#include "mimic/io/dataset.hpp"
#include "mimic/io/model_file.hpp"
#include "mimic/train/evaluate.hpp"
#include "mimic/train/trainer.hpp"

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
        ("batch", po::value(&o.batch)->default_value(o.batch), "global batch size (split over the ranks)")
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
        ("log-csv", po::value(&o.log_csv), "per-epoch CSV log (epoch, lr, losses, accuracies, time, samples/s)")
        ("shuffle-block", po::value(&o.shuffle_block)->default_value(o.shuffle_block),
         "rows per contiguous read when the set is read in windows")
        ("shuffle-window", po::value(&o.shuffle_window)->default_value(o.shuffle_window),
         "rows each rank holds in memory (0: the whole training set); smaller windows shuffle blocks, then rows "
         "within a window")
        ("eval-batch", po::value(&o.eval_batch)->default_value(o.eval_batch), "rows per forward pass in validation")
        ("stop-after-steps", po::value(&o.stop_after_steps)->default_value(o.stop_after_steps),
         "testing: stop after N optimizer steps of this invocation as if killed (0: never)")
        ("bootstrap", po::bool_switch(&o.bootstrap), "train on a bootstrap sample of --data drawn with --seed (held in memory)");
    // clang-format on
}

namespace {

std::string shape_text(const nn::Shape& s) {
    return detail::concat(s.c, "x", s.h, "x", s.w);
}

} // namespace

void run(const TrainOptions& o, const par::Comm& comm) {
    std::unique_ptr<train::DatasetSource> train;
    std::unique_ptr<io::DatasetReader> val;
    std::unique_ptr<nn::Model> model;
    int num_classes = 0;
    const std::string checkpoint = o.checkpoint.empty() ? o.out + ".ckpt" : o.checkpoint;
    par::agree(comm, [&] {
        if (o.epochs < 1) fail("--epochs: must be >= 1, got ", o.epochs);
        if (o.batch < 1) fail("--batch: must be >= 1, got ", o.batch);
        if (o.eval_batch < 1) fail("--eval-batch: must be >= 1, got ", o.eval_batch);
        if (o.stop_after_steps < 0) fail("--stop-after-steps: must be >= 0");
        train = std::make_unique<train::DatasetSource>(o.data, comm);
        const auto& tm = train->reader().meta();
        if (!tm.has_labels) fail(o.data, ": has no labels (/y); `mimic train` trains on hard labels");
        if (tm.num_classes < 1) fail(o.data, ": attribute num_classes is missing or 0");
        num_classes = tm.num_classes;
        if (!o.val.empty()) {
            val = std::make_unique<io::DatasetReader>(o.val, comm);
            const auto& vm = val->meta();
            if (!vm.has_labels) fail(o.val, ": has no labels (/y), so it cannot validate");
            if (vm.c != tm.c || vm.h != tm.h || vm.w != tm.w)
                fail(o.val, ": samples are ", vm.c, "x", vm.h, "x", vm.w, " but the training set's are ",
                     tm.c, "x", tm.h, "x", tm.w);
            if (vm.num_classes > num_classes)
                fail(o.val, ": has ", vm.num_classes, " classes but the training set has ", num_classes);
        }
        const nn::Shape in{tm.c, tm.h, tm.w};
        try {
            model = std::make_unique<nn::Model>(o.arch, in);
        } catch (const Error& e) {
            fail("--arch does not fit the data in ", o.data, " (samples ", shape_text(in), "): ", e.what());
        }
        if (model->output_size() != num_classes)
            fail("--arch: the last layer gives ", model->output_size(), " outputs but ", o.data, " has ",
                 num_classes, " classes (end the spec with dense:", num_classes, ")");
        io::make_dirs([&] {
            const auto slash = o.out.find_last_of('/');
            return slash == std::string::npos ? std::string() : o.out.substr(0, slash);
        }());
    });

    model->init(std::uint64_t(o.seed));
    log::info("model: ", o.arch, " on ", shape_text(model->input_shape()), " samples, ", model->num_params(),
              " parameters, ", model->flops_per_sample() / 1e6, " MFLOP/sample forward");
    log::info(model->summary());
    log::info("training set ", o.data, ": ", train->rows(), " rows; global batch ", o.batch, " over ",
              comm.size(), " rank", comm.size() == 1 ? "" : "s", "; checkpoint ", checkpoint);

    train::TrainConfig cfg;
    cfg.epochs = o.epochs;
    cfg.batch = o.batch;
    cfg.seed = std::uint64_t(o.seed);
    cfg.lr = o.lr;
    cfg.schedule = o.schedule;
    cfg.warmup_epochs = o.warmup;
    cfg.optimizer.kind = o.optimizer;
    cfg.optimizer.momentum = o.momentum;
    cfg.optimizer.weight_decay = o.weight_decay;
    cfg.optimizer.beta1 = o.beta1;
    cfg.optimizer.beta2 = o.beta2;
    cfg.optimizer.eps = o.eps;
    cfg.shuffle_block = o.shuffle_block;
    cfg.shuffle_window = o.shuffle_window;
    cfg.checkpoint = checkpoint;
    cfg.checkpoint_every = o.checkpoint_every;
    cfg.log_csv = o.log_csv;
    cfg.stop_after_steps = o.stop_after_steps;
    cfg.eval_batch = o.eval_batch;

    std::unique_ptr<train::BootstrapSource> sample;
    if (o.bootstrap) sample = std::make_unique<train::BootstrapSource>(*train, std::uint64_t(o.seed));
    train::TrainSource& source = sample ? static_cast<train::TrainSource&>(*sample) : *train;
    train::Trainer trainer(cfg, source, train::cross_entropy_loss(), comm);
    if (val) {
        trainer.set_identity(detail::concat("val_fingerprint=", val->meta().fingerprint));
        trainer.set_validator([&, C = num_classes](nn::Model& m) {
            const auto counts = train::evaluate(train::model_predictor(m), C, *val, 1, o.eval_batch, comm);
            return train::Validation{counts.loss(), counts.accuracy()};
        });
    }
    io::ModelMeta meta;
    train::TrainResult result;
    result = trainer.run(*model, meta); // raises CollectiveError on every rank for a non-finite loss
    if (!result.completed) return;

    meta.loss = "ce";
    meta.epochs = o.epochs;
    meta.seed = std::uint64_t(o.seed);
    meta.data_fingerprint = source.fingerprint();
    if (!result.history.empty()) meta.val_accuracy = result.history.back().val_accuracy;
    std::string sum;
    par::agree(comm, [&] {
        if (!comm.is_root()) return;
        io::save_model(o.out, *model, meta);
        sum = io::weights_checksum(*model);
        if (!o.keep_checkpoint) io::remove_file(checkpoint);
    });
    const auto& last = result.history.back();
    log::info("");
    log::info("wrote ", o.out, ": ", o.epochs, " epochs, final train loss ", last.train_loss,
              last.val_accuracy >= 0 ? detail::concat(", val accuracy ", 100.0 * last.val_accuracy, "%") : "",
              ", weights checksum ", comm.bcast(sum));
}

} // namespace mimic::stages
