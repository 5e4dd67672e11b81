// Per-layer learning-rate multipliers (--layer-lr NAME=F[,NAME=F...]): their syntax, and the parameter
// ranges of a model they select, which Optimizer::set_lr_scales applies.
#pragma once

#include "mimic/nn/model.hpp"
#include "mimic/nn/optim/optimizer.hpp"

#include <string>
#include <vector>

namespace mimic::nn::optim {

/// One NAME=F rule: NAME is a layer kind ("bottleneck", "dense", "conv", ...) or one layer, "layer<i>".
struct LayerLr {
    std::string name;
    double scale = 1.0;
};

/// Parses "NAME=F[,NAME=F...]" ("" gives no rules); F is a finite number > 0 and no NAME repeats. An
/// error names --layer-lr and the bad piece.
std::vector<LayerLr> parse_layer_lr(const std::string& text);

/// The parameter ranges of `model` that the rules select, one per layer with parameters: a layer takes the
/// multiplier of its "layer<i>" rule, else of its kind's rule, else none. A rule that selects no layer with
/// parameters is an error naming it and the model's layers. The layer indices are those of the spec, so
/// a model-parallel shard (whose local spec only narrows the wide layer) selects its own part.
std::vector<LrScale> layer_lr_scales(const Model& model, const std::vector<LayerLr>& rules);

} // namespace mimic::nn::optim
