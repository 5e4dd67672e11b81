// `mimic train`: trains a network from an architecture spec on a labelled dataset file, data-parallel
// over the MPI ranks, with validation, a CSV log, checkpoints (resumed automatically) and a model file.
#pragma once

#include "mimic/core/comm.hpp"
#include "mimic/io/resume_identity.hpp"
#include "mimic/train/engine_options.hpp"

#include <boost/program_options.hpp>

#include <cstdint>
#include <string>

namespace mimic::stages {

struct TrainOptions {
    std::string data, val, arch, out, checkpoint;
    train::EngineOptions engine; ///< --lr, --epochs, --batch, --seed, --log-csv, ... (shared with distill)
    bool keep_checkpoint = false;
    bool overwrite = false; ///< start over, replacing an output or checkpoint of any settings
    std::int64_t shuffle_block = 4096, shuffle_window = 0;
    std::int64_t eval_batch = 256;
    bool bootstrap = false;   ///< train on a bootstrap sample of --data (seeded by --seed)
    bool final_output = true; ///< OUT is the command's result (false for an ensemble member)
};

void describe(boost::program_options::options_description& desc, TrainOptions& o);
/// Collective over comm: trains and writes o.out; a finished output of the same settings is a no-op
/// (trained again with --overwrite). Returns false when the run stopped early with its checkpoint saved
/// (--stop-after-steps), true when o.out is written or was already.
bool run(const TrainOptions& o, const par::Comm& comm);
/// The settings that decide a trained model: written into its checkpoint and model file and compared on
/// resume or rerun. The fingerprints are those of --data and --val ("" without --val).
io::ResumeIdentity train_identity(const TrainOptions& o, const std::string& data_fingerprint,
                                  const std::string& val_fingerprint);

} // namespace mimic::stages
