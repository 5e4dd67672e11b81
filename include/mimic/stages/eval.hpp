// `mimic eval`: accuracy, top-k accuracy, per-class accuracy and the confusion matrix of a model on a
// labelled dataset file, and the paired margin of one model over another; ranks split the rows.
#pragma once

#include "mimic/core/comm.hpp"
#include "mimic/train/evaluate.hpp"

#include <boost/program_options.hpp>

#include <cstdint>
#include <memory>
#include <string>

namespace mimic::stages {

struct EvalOptions {
    std::string model;    ///< a model file (mimic train, mimic distill)
    std::string ensemble; ///< or an ensemble manifest: members, mean of logits and of probabilities
    std::string compare;  ///< a second model file: the paired margin of --model over it, with its interval
    std::string data;
    int top_k = 5;
    std::int64_t batch = 1000;
};

void describe(boost::program_options::options_description& desc, EvalOptions& o);
void run(const EvalOptions& o, const par::Comm& comm);

/// What is being evaluated: a predictor plus the input shape and class count it expects. Built from the
/// options by make_scorer(); an ensemble (e.g. --ensemble manifest.h5) is one more branch there that
/// returns a predictor averaging its members' outputs.
struct Scorer {
    std::string what; ///< for messages, e.g. the model file
    nn::Shape input;  ///< sample shape the predictor expects
    int num_classes = 0;
    train::Predictor predict;
    std::shared_ptr<void> keep_alive; ///< owns whatever predict refers to
};
Scorer make_scorer(const EvalOptions& o, const par::Comm& comm);

} // namespace mimic::stages
