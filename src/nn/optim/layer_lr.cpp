// Per-layer learning-rate multipliers: the --layer-lr syntax and the parameter ranges of a model that its
// rules select (by layer kind or by layer index).
#include "mimic/nn/optim/layer_lr.hpp"

#include "mimic/core/error.hpp"
#include "mimic/nn/layer.hpp"

#include <cmath>
#include <cstdlib>

namespace mimic::nn::optim {

namespace {

double parse_scale(const std::string& piece, const std::string& value) {
    char* end = nullptr;
    const double f = value.empty() ? 0.0 : std::strtod(value.c_str(), &end);
    if (value.empty() || *end != '\0' || !std::isfinite(f) || f <= 0)
        fail("--layer-lr: '", piece, "': the multiplier '", value, "' is not a finite number > 0");
    return f;
}

} // namespace

std::vector<LayerLr> parse_layer_lr(const std::string& text) {
    std::vector<LayerLr> rules;
    if (text.empty()) return rules;
    std::size_t at = 0;
    while (at <= text.size()) {
        const std::size_t comma = std::min(text.find(',', at), text.size());
        const std::string piece = text.substr(at, comma - at);
        const std::size_t eq = piece.find('=');
        if (eq == std::string::npos || eq == 0)
            fail("--layer-lr: '", piece,
                 "' is not NAME=F (NAME a layer kind such as bottleneck, or layer<i>)");
        LayerLr r{piece.substr(0, eq), parse_scale(piece, piece.substr(eq + 1))};
        for (const auto& q : rules)
            if (q.name == r.name) fail("--layer-lr: '", r.name, "' is given twice in '", text, "'");
        rules.push_back(r);
        at = comma + 1;
    }
    return rules;
}

std::vector<LrScale> layer_lr_scales(const Model& model, const std::vector<LayerLr>& rules) {
    std::vector<LrScale> out;
    std::vector<bool> used(rules.size(), false);
    std::string layers;
    for (std::size_t i = 0; i < model.num_layers(); ++i) {
        const auto range = model.param_range(i);
        if (range.second <= range.first) continue;
        const std::string index = "layer" + std::to_string(i), kind = model.layer(i).kind();
        layers += (layers.empty() ? "" : ", ") + index + " (" + kind + ")";
        int pick = -1;
        for (std::size_t k = 0; k < rules.size(); ++k) {
            if (rules[k].name == index) pick = int(k);
            if (rules[k].name == kind && (pick < 0 || rules[size_t(pick)].name != index)) pick = int(k);
        }
        if (pick < 0) continue;
        used[size_t(pick)] = true;
        out.push_back(LrScale{range.first, range.second, rules[size_t(pick)].scale});
    }
    for (std::size_t k = 0; k < rules.size(); ++k)
        if (!used[k])
            fail("--layer-lr: '", rules[k].name, "' selects no layer with parameters of '", model.spec(),
                 "' (its layers with parameters: ", layers, ")");
    return out;
}

} // namespace mimic::nn::optim
