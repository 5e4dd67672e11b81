// The engine's options: their description with per-option checks run as they are parsed, the checks of
// options that go together, their part of a resume identity, and their EngineConfig.
#include "mimic/train/engine_options.hpp"

#include "mimic/core/error.hpp"
#include "mimic/nn/optim/layer_lr.hpp"
#include "mimic/nn/schedule.hpp"

#include <cmath>
#include <limits>

namespace po = boost::program_options;

namespace mimic::train {

EngineOptions EngineOptions::student_defaults() {
    EngineOptions o;
    o.lr = 0.001, o.optimizer = "adam", o.schedule = "plateau:3", o.epochs = 20;
    return o;
}

namespace {

/// The largest --bucket-mb: 1 TiB per bucket (beyond it the float count would overflow).
constexpr double kMaxBucketMb = 1048576.0;

std::string text(double v) {
    return io::ResumeIdentity::shortest(v);
}

void positive(const char* name, double v) {
    if (!std::isfinite(v) || v <= 0) fail(name, ": must be a finite number > 0, got ", text(v));
}

void non_negative(const char* name, double v, double most = std::numeric_limits<double>::max()) {
    if (std::isfinite(v) && v >= 0 && v <= most) return;
    if (most < std::numeric_limits<double>::max())
        fail(name, ": must be a finite number in [0, ", text(most), "], got ", text(v));
    fail(name, ": must be a finite number >= 0, got ", text(v));
}

void below_one(const char* name, double v) {
    if (!std::isfinite(v) || v < 0 || v >= 1)
        fail(name, ": must be a finite number in [0, 1), got ", text(v));
}

template <class Int>
void at_least(const char* name, Int v, Int least) {
    if (v < least) fail(name, ": must be >= ", least, ", got ", v);
}

void known_optimizer(const std::string& kind) {
    if (kind != "sgd" && kind != "nesterov" && kind != "adam" && kind != "adamw")
        fail("--optimizer: '", kind, "' is not one of sgd, nesterov, adam, adamw");
}

/// The syntax of --schedule; its bound against --lr (cosine's MIN_LR) is checked by validate().
void schedule_syntax(const std::string& spec) {
    nn::Schedule(spec, std::numeric_limits<double>::max(), 1, 1, 0);
}

template <class T, class Check>
po::typed_value<T>* checked(T* store, Check check) {
    return po::value(store)->default_value(*store)->notifier(check);
}

} // namespace

// clang-format off
void describe(po::options_description& d, EngineOptions& o, const EngineHelp& help) {
    auto h = [&](const char* name, const char* text) { return help.count(name) ? help.at(name).c_str() : text; };
    d.add_options()
        ("lr", checked(&o.lr, [](double v) { positive("--lr", v); }), h("lr", "base learning rate"))
        ("optimizer", checked(&o.optimizer, known_optimizer), "sgd | nesterov | adam | adamw")
        ("momentum", checked(&o.momentum, [](double v) { below_one("--momentum", v); }), "momentum of sgd / nesterov, in [0, 1)")
        ("weight-decay", checked(&o.weight_decay, [](double v) { non_negative("--weight-decay", v); }),
         "weight decay: L2 added to the gradient (sgd, nesterov, adam) or decoupled (adamw)")
        ("beta1", checked(&o.beta1, [](double v) { below_one("--beta1", v); }), "adam/adamw beta1, in [0, 1)")
        ("beta2", checked(&o.beta2, [](double v) { below_one("--beta2", v); }), "adam/adamw beta2, in [0, 1)")
        ("eps", checked(&o.eps, [](double v) { positive("--eps", v); }), "adam/adamw epsilon")
        ("schedule", checked(&o.schedule, schedule_syntax),
         "constant | step:EVERY[,GAMMA] | cosine[:MIN_LR] | plateau:PATIENCE[,FACTOR[,MIN_LR]] (plateau watches the "
         "validation metric, or the training loss without --val)")
        ("warmup", checked(&o.warmup, [](int v) { at_least("--warmup", v, 0); }), "epochs of linear learning-rate warmup")
        ("epochs", checked(&o.epochs, [](int v) { at_least("--epochs", v, 1); }), h("epochs", "epochs"))
        ("batch", checked(&o.batch, [](std::int64_t v) { at_least<std::int64_t>("--batch", v, 1); }),
         h("batch", "global rows per micro-batch (split over the data-parallel ranks)"))
        ("accumulate", checked(&o.accumulate, [](int v) { at_least("--accumulate", v, 1); }),
         "K: micro-batches per optimizer step and gradient allreduce (K x batch rows per step)")
        ("layer-lr", checked(&o.layer_lr, [](const std::string& v) { nn::optim::parse_layer_lr(v); }),
         "NAME=F[,NAME=F...]: multiply the learning rate of the layers NAME by F > 0, NAME a layer kind (e.g. "
         "bottleneck, dense, conv) or one layer, layer<i> (0-based in --arch; it wins over its kind); e.g. "
         "bottleneck=2 (default: none)")
        ("early-stop", checked(&o.early_stop, [](int v) { at_least("--early-stop", v, 0); }),
         "stop after this many epochs without improvement (0: never)")
        ("checkpoint-every", checked(&o.checkpoint_every, [](std::int64_t v) { at_least<std::int64_t>("--checkpoint-every", v, 0); }),
         h("checkpoint-every", "also checkpoint every N steps (0: at the end of every epoch only)"))
        ("stop-after-steps", checked(&o.stop_after_steps, [](std::int64_t v) { at_least<std::int64_t>("--stop-after-steps", v, 0); }),
         h("stop-after-steps", "checkpoint and stop after N optimizer steps of this run (testing and time-boxed jobs; 0: never)"))
        ("seed", po::value(&o.seed)->default_value(o.seed), h("seed", "seed of initialisation, shuffling and dropout"))
        ("bucket-mb", checked(&o.bucket_mb, [](double v) { non_negative("--bucket-mb", v, kMaxBucketMb); }),
         "MiB per bucket of the gradient allreduce, started during the backward pass (0: one allreduce after it; e.g. 1)")
        ("log-csv", po::value(&o.log_csv), h("log-csv", "per-epoch CSV log (epoch, lr, losses, accuracies, time, samples/s)"))
        ("timings-csv", po::value(&o.timings_csv), h("timings-csv", "append per-phase min/avg/max timings to this CSV file"))
        ("augment-shift", checked(&o.augment_shift, [](int v) { at_least("--augment-shift", v, 0); }),
         h("augment-shift", "N: translate each training row by up to N pixels each way, uncovered pixels raw zeros "
           "(image rows; labelled training only; 0: none)"))
        ("augment-flip", po::bool_switch(&o.augment_flip),
         h("augment-flip", "mirror each training row left-right with probability 1/2 (image rows; labelled training only)"));
}
// clang-format on

void validate(const EngineOptions& o) {
    positive("--lr", o.lr);
    known_optimizer(o.optimizer);
    below_one("--momentum", o.momentum);
    if (o.optimizer == "nesterov" && o.momentum <= 0)
        fail("--momentum: nesterov needs a momentum > 0, got ", text(o.momentum));
    non_negative("--weight-decay", o.weight_decay);
    below_one("--beta1", o.beta1);
    below_one("--beta2", o.beta2);
    positive("--eps", o.eps);
    at_least("--warmup", o.warmup, 0);
    at_least("--epochs", o.epochs, 1);
    at_least<std::int64_t>("--batch", o.batch, 1);
    at_least("--accumulate", o.accumulate, 1);
    if (o.batch > std::numeric_limits<std::int64_t>::max() / o.accumulate)
        fail("--batch: ", o.batch, " x --accumulate ", o.accumulate, " rows per step overflow");
    at_least("--early-stop", o.early_stop, 0);
    at_least<std::int64_t>("--checkpoint-every", o.checkpoint_every, 0);
    at_least<std::int64_t>("--stop-after-steps", o.stop_after_steps, 0);
    non_negative("--bucket-mb", o.bucket_mb, kMaxBucketMb);
    at_least("--augment-shift", o.augment_shift, 0);
    nn::Schedule(o.schedule, o.lr, o.epochs, 1, o.warmup); // the spec and its bounds against --lr
    nn::optim::parse_layer_lr(o.layer_lr);                 // its names are checked against the model later
}

// Old checkpoints and model files must still resume and verify, and a file's identity is compared entry
// by entry (io::ResumeIdentity::difference): an entry recorded there but not in this run, or the other way
// round, is a difference. So an option a command's files did not record before it existed (--accumulate,
// --augment-shift, --augment-flip and --layer-lr everywhere, --warmup in distill) is recorded only when it
// differs from the value it implicitly had then; and each optimizer's hyperparameters only with that
// optimizer, as before.
void add_identity(io::ResumeIdentity& id, const EngineOptions& o, bool warmup_always) {
    id.add("--epochs", o.epochs).add("--batch", o.batch).add("--seed", o.seed).add("--lr", o.lr);
    id.add("--schedule", o.schedule).add("--early-stop", o.early_stop);
    if (warmup_always || o.warmup != 0) id.add("--warmup", o.warmup);
    id.add("--optimizer", o.optimizer).add("--weight-decay", o.weight_decay);
    if (o.optimizer == "sgd" || o.optimizer == "nesterov") id.add("--momentum", o.momentum);
    if (o.optimizer == "adam" || o.optimizer == "adamw")
        id.add("--beta1", o.beta1).add("--beta2", o.beta2).add("--eps", o.eps);
    if (o.accumulate != 1) id.add("--accumulate", o.accumulate);
    if (o.augment_shift != 0) id.add("--augment-shift", o.augment_shift);
    if (o.augment_flip) id.add("--augment-flip", "on");
    if (!o.layer_lr.empty()) id.add("--layer-lr", o.layer_lr);
}

AugmentOptions augment_options(const EngineOptions& o) {
    return AugmentOptions{o.augment_shift, o.augment_flip};
}

void refuse_augment(const EngineOptions& o, const std::string& why) {
    if (o.augment_shift != 0) fail("--augment-shift ", o.augment_shift, ": not supported here: ", why);
    if (o.augment_flip) fail("--augment-flip: not supported here: ", why);
}

EngineConfig engine_config(const EngineOptions& o, const std::string& stage) {
    EngineConfig c;
    c.stage = stage;
    c.epochs = o.epochs, c.batch = o.batch, c.accumulate = o.accumulate, c.seed = std::uint64_t(o.seed);
    c.lr = o.lr, c.schedule = o.schedule, c.warmup_epochs = o.warmup, c.early_stop = o.early_stop;
    c.optimizer.kind = o.optimizer, c.optimizer.momentum = o.momentum;
    c.optimizer.weight_decay = o.weight_decay;
    c.optimizer.beta1 = o.beta1, c.optimizer.beta2 = o.beta2, c.optimizer.eps = o.eps;
    c.bucket_floats = bucket_floats(o.bucket_mb);
    c.checkpoint_every = o.checkpoint_every, c.stop_after_steps = o.stop_after_steps;
    c.log_csv = o.log_csv;
    c.layer_lr = o.layer_lr;
    return c;
}

} // namespace mimic::train
