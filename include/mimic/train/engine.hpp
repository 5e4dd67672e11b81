// The one training engine behind `mimic train`, `mimic ensemble train` and `mimic distill`: per step
// read -> K x (forward -> objective -> backward) -> one gradient allreduce over the replicas -> optimizer;
// per epoch validation, schedule, early stop, log line and CSV row; checkpoints (layout-independent, with
// the data cursor) from which a killed or signalled run resumes bit for bit; the model file at the end.
#pragma once

#include "mimic/core/comm.hpp"
#include "mimic/core/timer.hpp"
#include "mimic/io/model_file.hpp"
#include "mimic/io/resume_identity.hpp"
#include "mimic/nn/optim/optimizer.hpp"
#include "mimic/parallel/sharded_model.hpp"
#include "mimic/train/batch_source.hpp"
#include "mimic/train/objective.hpp"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace mimic::train {

struct EngineConfig {
    std::string stage = "train"; ///< names the stage in log lines and messages
    int epochs = 10;
    std::int64_t batch = 128; ///< global rows per micro-batch (independent of the rank count)
    /// Micro-batches per optimizer step (--accumulate K): the BatchSource yields batch x K rows per step,
    /// each replica runs its slice as K micro-batches and the gradients are reduced once per step.
    int accumulate = 1;
    /// Floats per bucket of the gradient allreduce over the replicas, started during the backward pass of
    /// the step's last micro-batch as layers finish (0, the default: one blocking allreduce after it).
    std::int64_t bucket_floats = 0;
    std::uint64_t seed = 1; ///< initialisation; the sources' shuffles; dropout from (seed, step)
    double lr = 0.05;
    std::string schedule = "constant"; ///< see nn::Schedule
    int warmup_epochs = 0;
    nn::optim::OptimizerConfig optimizer;
    int early_stop = 0;                ///< stop after this many epochs without improvement (0: never)
    std::string out;                   ///< model file written when training completes ("": none)
    std::string checkpoint;            ///< checkpoint file ("": none); resumed from when it exists
    std::int64_t checkpoint_every = 0; ///< also checkpoint every N steps (0: at epoch ends only)
    bool keep_checkpoint = false;      ///< keep the checkpoint once the model file is written
    bool overwrite = false;            ///< start over: ignore a checkpoint, replace an output of any settings
    std::string log_csv;               ///< per-epoch CSV log ("": none)
    std::int64_t stop_after_steps = 0; ///< checkpoint and stop after N steps of this run (0: never)
    std::string layer_lr; ///< per-layer learning-rate multipliers (nn::optim::parse_layer_lr; "": none)
};

/// Floats per allreduce bucket for a size in MiB (--bucket-mb); 0 MiB gives 0 (blocking), anything else
/// at least one float.
std::int64_t bucket_floats(double mib);

/// What validation reports after an epoch. `metric` (lower is better) drives the plateau schedule and
/// early stopping; the other fields are -1 when not measured.
struct Validation {
    double metric = 0;
    double loss = -1, accuracy = -1, rmse = -1, agreement = -1;
};
/// Collective over the engine's world: validates the current network.
using Validator = std::function<Validation(par::ShardedModel& net)>;

/// One row of the per-epoch log (also the CSV columns, in this order).
struct EpochLog {
    int epoch = 0; ///< 1-based
    double lr = 0, train_loss = 0, train_accuracy = -1, val_loss = -1, val_accuracy = -1, val_rmse = -1,
           val_agreement = -1, seconds = 0, samples_per_second = 0;
};
const std::vector<std::string>& epoch_log_columns();

struct TrainResult {
    std::vector<EpochLog> history;
    bool completed = false;     ///< false when stopped (--stop-after-steps or a signal)
    bool resumed = false;       ///< started from a checkpoint
    bool already_done = false;  ///< the output existed with the same identity: nothing was trained
    bool stopped_early = false; ///< early stop
    std::int64_t steps_run = 0; ///< optimizer steps taken by this run
    double samples_run = 0;     ///< rows trained on by this run
    double train_seconds = 0;   ///< wall time of this run's epochs
};

class Engine {
public:
    /// world: every rank of this training (R replicas x M shards); replicas: this rank's peers holding the
    /// same shard (the gradient allreduce). identity: the settings that decide the result (checked on
    /// resume and against an existing output).
    Engine(EngineConfig cfg, par::ShardedModel& net, BatchSource& data, Objective objective,
           const par::Comm& world, const par::Comm& replicas, io::ResumeIdentity identity);
    void set_validator(Validator v) { validator_ = std::move(v); }

    /// Collective: initialises the network (or resumes from the checkpoint), trains, and writes cfg.out
    /// with `meta` (the engine fills epochs and val_accuracy). Throws CollectiveError on a non-finite loss
    /// and after a stop signal (with the checkpoint saved).
    TrainResult run(io::ModelMeta meta);

    /// Per-phase times of the run (read, forward, loss, backward, allreduce, optimizer, validate, ...).
    PhaseTimers& timers();

    /// Scales the first `rows` rows of m by w (public: it launches a device kernel).
    static void scale_rows(const Matrix& m, std::int64_t rows, float w);

    struct State; ///< the data cursor, the best metric and the epoch's running sums (engine.cpp)

private:
    bool finished_output_exists();
    void start_or_resume(State& st, TrainResult& result);
    void run_epoch(State& st, TrainResult& result);
    bool train_step(State& st, std::int64_t step, TrainResult& result);
    void micro_step(const Slice& sl, std::int64_t begin, std::int64_t rows, std::uint64_t dropout_seed,
                    bool last, double sums[2]);
    void end_epoch(State& st, TrainResult& result);
    void save_checkpoint(const State& st);
    void write_output(const State& st, io::ModelMeta meta);
    void log_epoch(const EpochLog& e, bool lr_reduced) const;

    EngineConfig cfg_;
    par::ShardedModel& net_;
    BatchSource& data_;
    Objective objective_;
    const par::Comm& world_;
    const par::Comm& replicas_;
    io::ResumeIdentity identity_;
    Validator validator_;
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

} // namespace mimic::train
