// `mimic distill`: trains a shallow-wide or small deep student on the ensemble's logits over a
// transfer set, on an R data-replica x M model-shard grid, streaming shuffled blocks from parallel HDF5.
#pragma once

#include "mimic/core/comm.hpp"
#include "mimic/train/engine_options.hpp"

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
    int model_shards = 1;       ///< M; data replicas R = ranks / M
    /// --lr, --epochs, --batch, --seed, --log-csv, ... (shared with train); the student's defaults
    train::EngineOptions engine = train::EngineOptions::student_defaults();
    std::int64_t block_rows = 8192; ///< rows per shuffled read block
    bool overwrite = false;         ///< start over, replacing an output or checkpoint of any settings
    bool keep_checkpoint = false;   ///< keep the checkpoint once the student is written
};

void describe(boost::program_options::options_description& desc, DistillOptions& o);
void run(const DistillOptions& o, const par::Comm& comm);

} // namespace mimic::stages
