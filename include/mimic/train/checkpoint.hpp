// The engine's checkpoint file: the model-file part written by the sharded writer (so it loads on any
// R x M grid), the optimizer's flat state, the schedule, the data cursor, the epoch history and the
// stage's resume identity. Written as FILE.partial and renamed, so a kill never leaves half a checkpoint.
#pragma once

#include "mimic/core/comm.hpp"
#include "mimic/io/model_file.hpp"
#include "mimic/io/resume_identity.hpp"
#include "mimic/nn/optim/optimizer.hpp"
#include "mimic/parallel/sharded_model.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace mimic::train {

struct CheckpointState {
    int epoch = 0; ///< 0-based epoch in progress
    std::int64_t step_in_epoch = 0, global_step = 0;
    double best_metric = 0;
    int best_epoch = -1, bad_epochs = 0;
    std::vector<double> sums;     ///< the epoch's running loss sum, correct count, rows, seconds
    std::vector<double> schedule; ///< nn::Schedule::state()
    std::vector<double> history;  ///< finished epochs, history_width values per epoch, row-major
    int history_width = 0;
    int ranks = 1, model_shards = 1;
};

/// Collective over world: writes `path` (all ranks pass the same state; the ranks with writer = true,
/// one model group, contribute the weights and optimizer slices).
void write_checkpoint(const std::string& path, const par::ShardedModel& net, io::ModelMeta meta,
                      const nn::optim::OptimizerState& opt, const CheckpointState& st,
                      const io::ResumeIdentity& identity, bool writer, const par::Comm& world);

/// What a checkpoint's cursor must lie within: the run's epochs and the steps of one epoch.
struct CheckpointLimits {
    int epochs = 0;
    std::int64_t steps_per_epoch = 0;
};

/// Collective over world: checks that `path` was written with `identity` (else a one-line error naming
/// the first differing setting), then loads its weights into net, the optimizer state (names as in
/// `opt`) into opt, and returns the rest. The content is verified before it is used: the state checksum
/// (weights, optimizer state, cursor, schedule and history; `writer` as when writing: one model group),
/// every weight and moment finite, the cursor within `limits`. A checkpoint written before the checksum
/// existed is resumed with a notice after the other checks.
CheckpointState read_checkpoint(const std::string& path, par::ShardedModel& net,
                                nn::optim::OptimizerState& opt, const io::ResumeIdentity& identity,
                                int history_width, const CheckpointLimits& limits, bool writer,
                                const par::Comm& world);

} // namespace mimic::train
