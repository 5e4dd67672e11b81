// The inference pass: batch normalisation folded into the conv, dense or bottleneck before it, on the host
// in double, and the folded chain rebuilt as a Model with its parameters and state.
#include "mimic/nn/fold.hpp"

#include "mimic/core/error.hpp"
#include "mimic/nn/layer.hpp"
#include "mimic/nn/layers/batchnorm.hpp"
#include "mimic/nn/layers/block.hpp"

#include <cmath>
#include <string>

namespace mimic::nn {

namespace {

using HostFloats =
    Kokkos::View<float*, Kokkos::LayoutRight, HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>;

std::vector<float> to_host(const Vector& v) {
    std::vector<float> out(v.extent(0));
    if (!out.empty()) Kokkos::deep_copy(HostFloats(out.data(), out.size()), v);
    return out;
}

/// Appends the tensors of `decls` read from `flat` at `offset` (advanced past them).
void take(const std::vector<ParamDecl>& decls, const std::vector<float>& flat, std::int64_t& offset,
          std::vector<std::vector<double>>& out) {
    for (const auto& d : decls) {
        const auto first = flat.begin() + offset;
        out.emplace_back(first, first + d.size());
        offset += d.size();
    }
}

/// Writes the tensors `values` (sizes checked against `decls`) into `flat` at `offset`.
void put(const std::vector<ParamDecl>& decls, const std::vector<std::vector<double>>& values,
         const LayerSpec& spec, std::vector<float>& flat, std::int64_t& offset) {
    MIMIC_REQUIRE(values.size() == decls.size(), token_context(spec), ": ", values.size(),
                  " tensors given for ", decls.size());
    for (std::size_t k = 0; k < decls.size(); ++k) {
        MIMIC_REQUIRE(std::int64_t(values[k].size()) == decls[k].size(), token_context(spec), ": tensor ",
                      decls[k].suffix, " has ", values[k].size(), " values for ", decls[k].size());
        for (double v : values[k])
            flat[std::size_t(offset++)] = float(v);
    }
}

/// Folds the bn `bn` into the layer `into` (conv, dense or bottleneck) in place.
void fold_into(ChainLayer& into, const ChainLayer& bn) {
    const auto& gamma = bn.params.at(0);
    const auto& beta = bn.params.at(1);
    const auto& mean = bn.state.at(0);
    const auto& var = bn.state.at(1);
    const std::size_t F = gamma.size();
    std::vector<double> s(F);
    for (std::size_t f = 0; f < F; ++f)
        s[f] = gamma[f] / std::sqrt(var[f] + BatchNorm::kEps);
    auto& W = into.params.at(0);
    MIMIC_REQUIRE(W.size() % F == 0, token_context(into.spec), ": ", W.size(), " weights for ", F,
                  " channels of ", token_context(bn.spec));
    for (std::size_t k = 0; k < W.size(); ++k)
        W[k] *= s[k % F];
    if (into.spec.kind == LayerKind::Bottleneck) {
        into.spec.kind = LayerKind::Dense;
        into.spec.token = "dense:" + std::to_string(into.spec.units);
        into.params.emplace_back(F, 0.0);
    }
    auto& b = into.params.at(1);
    for (std::size_t f = 0; f < F; ++f)
        b[f] = (b[f] - mean[f]) * s[f] + beta[f];
}

bool foldable(LayerKind k) {
    return k == LayerKind::Conv || k == LayerKind::Dense || k == LayerKind::Bottleneck;
}

/// True when a bn follows a conv, dense or bottleneck anywhere in `specs`, inside blocks too.
bool has_foldable(const std::vector<LayerSpec>& specs) {
    for (std::size_t i = 0; i < specs.size(); ++i) {
        if (i > 0 && specs[i].kind == LayerKind::BatchNorm && foldable(specs[i - 1].kind)) return true;
        for (const auto& branch : specs[i].branches)
            if (has_foldable(branch)) return true;
    }
    return false;
}

/// Folds the bn inside a block: each branch becomes a chain of its own (the block's tensors split by its
/// layers' declarations), is folded, and the block's token, branches and tensors are rebuilt from the results
/// (an identity branch stays empty: res(A) becomes res(A'|), the same block).
int fold_block(ChainLayer& block) {
    const Block layout(0, block.spec, block.in);
    std::vector<std::vector<double>> params, state;
    std::size_t p = 0, s = 0;
    int folded = 0;
    std::string text = std::string(join_name(block.spec.join)) + "(";
    for (std::size_t j = 0; j < layout.num_branches(); ++j) {
        std::vector<ChainLayer> chain;
        for (std::size_t k = 0; k < layout.branch(j).size(); ++k) {
            const Layer& l = *layout.branch(j)[k];
            ChainLayer c{block.spec.branches[j][k], l.in_shape(), {}, {}};
            for (std::size_t t = 0; t < l.param_decls().size(); ++t)
                c.params.push_back(std::move(block.params.at(p++)));
            for (std::size_t t = 0; t < l.state_decls().size(); ++t)
                c.state.push_back(std::move(block.state.at(s++)));
            chain.push_back(std::move(c));
        }
        folded += fold_batchnorm(chain);
        block.spec.branches[j].clear();
        std::string branch;
        for (auto& c : chain) {
            branch += (branch.empty() ? "" : ",") + c.spec.token;
            for (auto& t : c.params)
                params.push_back(std::move(t));
            for (auto& t : c.state)
                state.push_back(std::move(t));
            block.spec.branches[j].push_back(std::move(c.spec));
        }
        text += (j ? "|" : "") + branch;
    }
    block.spec.token = text + ")";
    block.params = std::move(params);
    block.state = std::move(state);
    return folded;
}

} // namespace

int fold_batchnorm(std::vector<ChainLayer>& chain) {
    std::vector<ChainLayer> out;
    int folded = 0;
    for (auto& layer : chain) {
        if (layer.spec.kind == LayerKind::Block) folded += fold_block(layer);
        if (layer.spec.kind == LayerKind::BatchNorm && !out.empty() && foldable(out.back().spec.kind)) {
            fold_into(out.back(), layer);
            ++folded;
            continue;
        }
        out.push_back(std::move(layer));
    }
    chain = std::move(out);
    return folded;
}

std::vector<ChainLayer> chain_layers(const Model& model) {
    const auto specs = parse_spec(model.spec());
    MIMIC_REQUIRE(specs.size() == model.num_layers(), "model '", model.spec(), "': ", specs.size(),
                  " tokens for ", model.num_layers(), " layers");
    const auto params = to_host(model.params()), state = to_host(model.state());
    std::vector<ChainLayer> chain(specs.size());
    std::int64_t p = 0, s = 0;
    for (std::size_t i = 0; i < specs.size(); ++i) {
        const Layer& l = model.layer(i);
        chain[i].spec = specs[i];
        chain[i].in = l.in_shape();
        take(l.param_decls(), params, p, chain[i].params);
        take(l.state_decls(), state, s, chain[i].state);
    }
    return chain;
}

Model chain_model(const std::vector<ChainLayer>& chain, Shape input) {
    std::string spec;
    for (const auto& l : chain)
        spec += (spec.empty() ? "" : ",") + l.spec.token;
    Model model(spec, input);
    std::vector<float> params(std::size_t(model.num_params())), state(std::size_t(model.num_state()));
    std::int64_t p = 0, s = 0;
    for (std::size_t i = 0; i < chain.size(); ++i) {
        const Layer& l = model.layer(i);
        put(l.param_decls(), chain[i].params, chain[i].spec, params, p);
        put(l.state_decls(), chain[i].state, chain[i].spec, state, s);
    }
    if (!params.empty()) Kokkos::deep_copy(model.params(), HostFloats(params.data(), params.size()));
    if (!state.empty()) Kokkos::deep_copy(model.state(), HostFloats(state.data(), state.size()));
    return model;
}

Model fold_for_inference(Model trained) {
    // Read nothing back when there is nothing to fold.
    if (!has_foldable(parse_spec(trained.spec()))) {
        trained.plan_inference();
        return trained;
    }
    auto chain = chain_layers(trained);
    fold_batchnorm(chain);
    Model folded = chain_model(chain, trained.input_shape());
    folded.plan_inference();
    return folded;
}

} // namespace mimic::nn
