// `mimic train`: trains a network from an architecture spec on a labelled dataset file, data-parallel
// over the MPI ranks, with validation, a CSV log, checkpoints (resumed automatically) and a model file.
#pragma once

#include "mimic/core/comm.hpp"
#include "mimic/io/resume_identity.hpp"

#include <boost/program_options.hpp>

#include <cstdint>
#include <string>

namespace mimic::stages {

struct TrainOptions {
    std::string data, val, arch, out, checkpoint, log_csv;
    std::string timings_csv; ///< append per-phase timings to this CSV (scaling studies)
    int epochs = 10;
    std::int64_t batch = 128; ///< global rows per micro-batch
    int accumulate = 1;       ///< micro-batches per optimizer step
    double bucket_mb = 0.0;   ///< gradient allreduce buckets overlapped with backward (0: blocking)
    double lr = 0.05;
    std::string optimizer = "nesterov";
    double momentum = 0.9, weight_decay = 0.0, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
    std::string schedule = "constant";
    int warmup = 0;
    long long seed = 1;
    std::int64_t checkpoint_every = 0;
    bool keep_checkpoint = false;
    bool overwrite = false; ///< replace an output or checkpoint of other settings
    int early_stop = 0;     ///< epochs without improvement before stopping (0: never)
    std::int64_t shuffle_block = 4096, shuffle_window = 0;
    std::int64_t eval_batch = 256;
    std::int64_t stop_after_steps = 0;
    bool bootstrap = false; ///< train on a bootstrap sample of --data (seeded by --seed)
    bool final_output = true; ///< OUT is the command's result (false for an ensemble member)
};

void describe(boost::program_options::options_description& desc, TrainOptions& o);
/// Collective over comm: trains and writes o.out; a finished output of the same settings is a no-op.
void run(const TrainOptions& o, const par::Comm& comm);
/// The settings that decide a trained model: written into its checkpoint and model file and compared on
/// resume or rerun. The fingerprints are those of --data and --val ("" without --val).
io::ResumeIdentity train_identity(const TrainOptions& o, const std::string& data_fingerprint,
                                  const std::string& val_fingerprint);
/// Optimizer settings of the identity, shared with distill: only those the chosen optimizer reads.
void add_optimizer_identity(io::ResumeIdentity& id, const std::string& optimizer, double momentum,
                            double weight_decay, double beta1, double beta2, double eps);

} // namespace mimic::stages
