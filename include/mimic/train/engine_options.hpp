// The options of the training engine, shared by every command that trains (`train`, `ensemble train`,
// `distill`): one description, one validation, one resume identity and one conversion to EngineConfig.
#pragma once

#include "mimic/io/resume_identity.hpp"
#include "mimic/train/augment.hpp"
#include "mimic/train/engine.hpp"

#include <boost/program_options.hpp>

#include <cstdint>
#include <map>
#include <string>

namespace mimic::train {

struct EngineOptions {
    double lr = 0.05;
    std::string optimizer = "nesterov"; ///< sgd | nesterov | adam | adamw
    double momentum = 0.9, weight_decay = 0.0, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
    std::string schedule = "constant"; ///< see nn::Schedule
    int warmup = 0;                    ///< epochs of linear learning-rate warmup
    int epochs = 10;
    std::int64_t batch = 128;          ///< global rows per micro-batch
    int accumulate = 1;                ///< micro-batches per optimizer step
    int early_stop = 0;                ///< epochs without improvement before stopping (0: never)
    std::int64_t checkpoint_every = 0; ///< also checkpoint every N steps (0: at epoch ends only)
    std::int64_t stop_after_steps = 0; ///< checkpoint and stop after N steps of this run (0: never)
    long long seed = 1;
    double bucket_mb = 0.0;    ///< gradient allreduce buckets overlapped with backward (0: blocking)
    std::string log_csv;       ///< per-epoch CSV log ("": none)
    std::string timings_csv;   ///< append per-phase timings to this CSV ("": none)
    int augment_shift = 0;     ///< training batches: random translation by up to N pixels (0: none)
    bool augment_flip = false; ///< training batches: horizontal flip with probability 1/2
    std::string layer_lr;      ///< per-layer learning-rate multipliers "NAME=F[,NAME=F...]" ("": none)

    /// The defaults of `mimic distill`: Adam at 0.001 with plateau:3 for 20 epochs (logit regression
    /// targets are unbounded, and a student sees many more rows per epoch than a teacher).
    static EngineOptions student_defaults();
};

/// Help texts that a command words for itself, keyed by option name ("log-csv", "seed", ...).
using EngineHelp = std::map<std::string, std::string>;

/// Adds every engine option to desc, bound to o, with o's values as the defaults shown. Each value is
/// checked as it is parsed (command line or --config file): an error names the option and the value.
void describe(boost::program_options::options_description& desc, EngineOptions& o,
              const EngineHelp& help = {});

/// Checks every option and the ones that go together (--schedule against --lr, nesterov's momentum);
/// throws mimic::Error naming the first bad option and its value. The checks describe() runs per option
/// are these same ones.
void validate(const EngineOptions& o);

/// Adds the options that decide the trained result to a stage's resume identity. Those that do not
/// (--checkpoint-every, --stop-after-steps, --bucket-mb, the CSV paths) are left out: a stopped run
/// resumes bit for bit whatever they are. `warmup_always`: the command's older files record --warmup
/// even at 0 (`mimic train`); otherwise it is recorded only when not 0 (see engine_options.cpp).
void add_identity(io::ResumeIdentity& id, const EngineOptions& o, bool warmup_always);

/// --augment-shift and --augment-flip: the augmentation of labelled training batches (`train`, `ensemble
/// train`; `distill` refuses them, see refuse_augment).
AugmentOptions augment_options(const EngineOptions& o);
/// Refuses --augment-shift / --augment-flip for a command whose inputs must match stored targets.
void refuse_augment(const EngineOptions& o, const std::string& why);

/// The engine's configuration for these options; the stage adds its output, checkpoint and overwrite.
EngineConfig engine_config(const EngineOptions& o, const std::string& stage);

} // namespace mimic::train
