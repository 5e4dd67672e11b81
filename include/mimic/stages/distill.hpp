// `mimic distill`: trains a shallow-wide or small deep student on the ensemble's logits over a
// transfer set, on an R data-replica x M model-shard grid, streaming shuffled blocks from parallel HDF5.
#pragma once

#include "mimic/core/comm.hpp"

#include <boost/program_options.hpp>

#include <cstdint>
#include <string>

namespace mimic::stages {

struct DistillOptions {
    std::string transfer;       ///< transfer set (dataset file)
    std::string logits;         ///< the ensemble's logits over it (from `mimic label`)
    std::string arch;           ///< student spec
    std::string loss = "mimic"; ///< mimic | kd:T[,alpha] | ce
    std::string val;            ///< validation set with labels (optional)
    std::string val_logits;     ///< the ensemble's logits on the validation set (optional)
    std::string out;            ///< student model file
    std::string checkpoint;     ///< default: OUT.ckpt
    std::string log_csv;        ///< per-epoch CSV log
    std::string timings_csv;    ///< per-phase timings CSV (scaling studies)
    int model_shards = 1;       ///< M; data replicas R = ranks / M
    int epochs = 20;
    std::int64_t batch = 128;       ///< global rows per micro-batch (split over the R replicas)
    int accumulate = 1;             ///< K micro-batches of `batch` rows per optimizer step
    double bucket_mb = 0.0;         ///< gradient allreduce buckets overlapped with backward (0: blocking)
    double lr = 0.001;              ///< Adam's default; logit regression targets are unbounded
    std::string optimizer = "adam"; ///< sgd | nesterov | adam | adamw
    double momentum = 0.9;
    double weight_decay = 0.0;
    std::string schedule = "plateau:3"; ///< see nn::Schedule
    int early_stop = 0;                 ///< stop after this many epochs without improvement (0: never)
    std::uint64_t seed = 1;
    std::int64_t block_rows = 8192;    ///< rows per shuffled read block
    std::int64_t checkpoint_every = 0; ///< also checkpoint every N steps (0: at epoch ends only)
    std::int64_t stop_after_steps = 0; ///< testing aid: checkpoint and stop after N steps of this run
    bool overwrite = false;            ///< replace an output or checkpoint of other settings
    bool keep_checkpoint = false;      ///< keep the checkpoint once the student is written
};

void describe(boost::program_options::options_description& desc, DistillOptions& o);
void run(const DistillOptions& o, const par::Comm& comm);

} // namespace mimic::stages
