// The data-parallel trainer: seeded global shuffling, each rank's slice of every global batch, forward,
// a pluggable loss, backward, one allreduce of the flat gradient, the optimizer step, per-epoch
// validation and logging, and checkpoints from which a killed run resumes bit for bit.
#pragma once

#include "mimic/core/comm.hpp"
#include "mimic/io/model_file.hpp"
#include "mimic/nn/model.hpp"
#include "mimic/nn/optim/optimizer.hpp"
#include "mimic/train/batches.hpp"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace mimic::train {

using nn::Model;
using nn::Shape;

struct TrainConfig {
    int epochs = 10;
    std::int64_t batch = 128; ///< global batch (independent of the rank count)
    std::uint64_t seed = 1;   ///< shuffles derive from (seed, epoch), dropout from (seed, step)
    double lr = 0.05;
    std::string schedule = "constant"; ///< see nn::Schedule
    int warmup_epochs = 0;
    nn::optim::OptimizerConfig optimizer;
    std::int64_t shuffle_block = 4096; ///< rows per contiguous read
    std::int64_t shuffle_window = 0;   ///< rows held in memory per rank (0: the whole set)
    std::string checkpoint;            ///< checkpoint file ("" for none); resumed from when it exists
    std::int64_t checkpoint_every = 0; ///< also write one every N steps (0: at epoch ends only)
    std::string log_csv;               ///< per-epoch CSV log ("" for none)
    std::int64_t stop_after_steps = 0; ///< testing: stop like a killed job after N steps of this invocation
    std::int64_t eval_batch = 256;
};

/// The loss of one rank's rows of a batch: returns their mean loss and writes dL/dlogits of that mean.
/// labels / soft are this rank's rows of the source's hard labels / soft targets (empty when absent).
struct Loss {
    std::string name; ///< stored in the model file ("ce", "mimic", "kd:4,0.9", ...)
    std::function<double(const Matrix& logits, const IntVector& labels, const Matrix& soft,
                         const Matrix& dlogits)>
        fn;
};
/// Cross-entropy on hard labels.
Loss cross_entropy_loss();

/// What validation reports after an epoch (loss: lower is better; it drives the plateau schedule).
struct Validation {
    double loss = 0, accuracy = 0;
};
/// Collective validation of the current model; empty when there is no validation set.
using Validator = std::function<Validation(Model& model)>;

/// One row of the per-epoch log (also the CSV columns, in this order).
struct EpochLog {
    int epoch = 0; ///< 1-based
    double lr = 0, train_loss = 0, train_accuracy = 0, val_loss = -1, val_accuracy = -1, seconds = 0,
           samples_per_second = 0;
};

struct TrainResult {
    std::vector<EpochLog> history;
    bool completed = false;     ///< false when stopped by stop_after_steps
    bool resumed = false;       ///< started from a checkpoint
    std::int64_t steps_run = 0; ///< optimizer steps taken by this invocation
    double train_seconds = 0;   ///< wall time of this invocation's epochs
};

class Trainer {
public:
    /// meta: the metadata stored with checkpoints (loss, seed and fingerprint are filled in here).
    /// identity: extra "key=value" lines a checkpoint must match to be resumed (e.g. the validation set).
    Trainer(const TrainConfig& cfg, TrainSource& data, Loss loss, const par::Comm& comm);
    void set_validator(Validator v) { validator_ = std::move(v); }
    void set_identity(std::string lines) { identity_ = std::move(lines); }

    /// Collective: trains `model` (already initialised) for cfg.epochs epochs, or resumes from cfg.checkpoint
    /// when that file exists. Throws CollectiveError on a non-finite loss ("epoch E, step S: loss is nan").
    TrainResult run(Model& model, io::ModelMeta meta);

    /// The "key=value" lines that identify a run for resuming (spec, data, hyperparameters).
    std::string resume_key(const Model& model) const;

private:
    TrainConfig cfg_;
    TrainSource& data_;
    Loss loss_;
    const par::Comm& comm_;
    Validator validator_;
    std::string identity_;
};

/// Scales the gradient by `scale` and sums it over comm in place: one MPI_Allreduce of the flat buffer.
void allreduce_gradients(const Vector& grads, float scale, const par::Comm& comm);

} // namespace mimic::train
