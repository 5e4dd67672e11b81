// `mimic ensemble train|add|info`: train N teacher members across ranks (each rank or group of ranks
// its own members), register members trained elsewhere, and print the members table of a manifest.
#pragma once

#include "mimic/core/comm.hpp"
#include "mimic/stages/onnx.hpp"
#include "mimic/train/engine_options.hpp"

#include <boost/program_options.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace mimic::stages {

struct EnsembleTrainOptions {
    int members = 4;                  ///< N
    std::string arch;                 ///< one spec for every member, or
    std::string arch_file;            ///< a file with one spec per line; members cycle through them
    std::string data, val;            ///< labelled training and validation sets
    std::string out_dir = "ensemble"; ///< member-NNN.h5 files (+ their checkpoints and CSV logs)
    std::string manifest;             ///< default OUT_DIR/manifest.h5
    int group_size = 1;               ///< ranks that train one member together (data-parallel)
    bool bootstrap = false;           ///< each member trains on a bootstrap sample of the data
    bool overwrite = false;           ///< start over: retrain every member, whatever its file holds
    /// --lr, --epochs, --batch, --checkpoint-every, ... applied to each member (shared with train). The seed
    /// of member i is seed + i; log_csv is a pattern in which {member} stands for the member's number NNN
    /// ("": OUT_DIR/member-NNN.csv); timings_csv gets the ensemble's timings.
    train::EngineOptions engine;
};

struct EnsembleAddOptions {
    std::string manifest;            ///< manifest to create or extend
    std::vector<std::string> models; ///< member model files to register
    bool absolute = false;           ///< store absolute paths instead of paths relative to the manifest
    OnnxInputOptions onnx_input;     ///< the inputs the .onnx members were trained on
};

struct EnsembleInfoOptions {
    std::string manifest;
    bool deep = false; ///< load and verify every member's weights
};

void describe(boost::program_options::options_description& desc, EnsembleTrainOptions& o);
void run(const EnsembleTrainOptions& o, const par::Comm& comm);
void describe(boost::program_options::options_description& desc, EnsembleAddOptions& o);
void run(const EnsembleAddOptions& o, const par::Comm& comm);
void describe(boost::program_options::options_description& desc, EnsembleInfoOptions& o);
void run(const EnsembleInfoOptions& o, const par::Comm& comm);

/// The members table printed by `mimic ensemble info` (also shown after `ensemble train`).
std::string members_table(const std::string& manifest_path);

/// The ensemble's accuracy on a labelled set: each member, the mean of logits and the mean of
/// probabilities. Collective: ranks split the rows.
struct EnsembleScores {
    std::vector<double> member_accuracy;
    double logits_accuracy = 0, prob_accuracy = 0, logits_topk = 0;
    int top_k = 5;
    std::int64_t rows = 0;
    std::string confusion; ///< confusion table of the logit average
};
EnsembleScores evaluate_ensemble(const std::string& manifest_path, const std::string& data_path, int top_k,
                                 std::int64_t batch, const par::Comm& comm);
/// A few lines: ensemble accuracy both ways, member mean/min/max/spread.
std::string ensemble_report(const EnsembleScores& s);

} // namespace mimic::stages
