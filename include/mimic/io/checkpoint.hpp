// Training checkpoints: a model file (same format, same validation) plus the group /checkpoint with
// optimizer and schedule state, the data cursor, the seed, the epoch history and the configuration.
#pragma once

#include "mimic/io/model_file.hpp"
#include "mimic/nn/optim/optimizer.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace mimic::io {

/// Everything besides the weights that a resumed run needs to continue bit for bit.
struct TrainState {
    int epoch = 0;                  ///< the epoch in progress (0-based); == epochs when training finished
    std::int64_t step_in_epoch = 0; ///< optimizer steps already taken in `epoch` (the data cursor)
    std::int64_t global_step = 0;   ///< optimizer steps since the start (dropout seeds derive from it)
    std::uint64_t seed = 0;         ///< the training seed: shuffles derive from (seed, epoch)
    nn::optim::OptimizerState optimizer;
    std::vector<double> schedule;             ///< nn::Schedule::state()
    std::vector<double> epoch_accum;          ///< partial sums of the epoch in progress (trainer-defined)
    double best_metric = 0;                   ///< best monitored metric so far (lower is better)
    int best_epoch = -1;                      ///< epoch of best_metric (-1: none yet)
    std::vector<std::string> history_columns; ///< names of the per-epoch log columns
    std::vector<std::vector<double>> history; ///< one row per finished epoch
    std::string config;                       ///< "key=value" lines the run must match to resume
    int ranks = 1;                            ///< rank count that wrote it (informational)
};

/// Writes a checkpoint atomically (path.partial, then rename). Called by one rank.
void save_checkpoint(const std::string& path, const nn::Model& model, const ModelMeta& meta,
                     const TrainState& st);
/// Loads a checkpoint: the model (validated like load_model), its metadata and the training state.
nn::Model load_checkpoint(const std::string& path, ModelMeta* meta, TrainState* st);

} // namespace mimic::io
