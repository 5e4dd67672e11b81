// The inference pass: folds each batch normalisation that follows a conv, dense or bottleneck into that
// layer's weights and bias (in double on the host), so that label, eval and export run fewer layers.
#pragma once

#include "mimic/nn/model.hpp"
#include "mimic/nn/spec.hpp"

#include <vector>

namespace mimic::nn {

/// One layer of a chain on the host: its token, its input shape, and its parameter and state tensors in
/// the order of its param_decls() and state_decls() (W before b; running_mean before running_var), in
/// double.
struct ChainLayer {
    LayerSpec spec;
    Shape in;
    std::vector<std::vector<double>> params;
    std::vector<std::vector<double>> state;
};

/// Folds every bn directly after a conv, dense or bottleneck into that layer and removes it from `chain`:
/// with s = gamma / sqrt(running_var + eps) per output channel, W' = W * s (the output channel is the
/// last index of conv's {C, K, K, F} and dense's {in, N}) and b' = (b - running_mean) * s + beta (b = 0
/// for a bottleneck, which becomes dense:K with that bias). Any other bn stays, to run with its running
/// statistics. The result equals the chain's inference output up to float rounding; deterministic.
/// Returns the number of bn folded. `conv,bn,relu` becomes `conv,relu`, which the Model fuses as usual.
///
/// Blocks fold inside: each branch is read into ChainLayers (its tokens, input shapes and tensors), folded
/// by fold_batchnorm (recursively for nested blocks), and the block's token and tensors are rebuilt from
/// the results (`res(conv:8x3,bn,relu,conv:8x3,bn)` becomes `res(conv:8x3,relu,conv:8x3|)`, the same
/// identity shortcut written with its empty branch).
int fold_batchnorm(std::vector<ChainLayer>& chain);

/// The layers of `model` with its parameters and state, copied to the host.
std::vector<ChainLayer> chain_layers(const Model& model);
/// The Model of `chain` (its tokens joined by commas) on samples of shape `input`, with the chain's
/// parameters and state; throws mimic::Error when a tensor's size does not fit its layer.
Model chain_model(const std::vector<ChainLayer>& chain, Shape input);

/// The model that label, eval and export run: `trained` with fold_batchnorm applied (or `trained` itself
/// when it has no bn to fold), planned for inference (Model::plan_inference: fused output passes, live-set
/// buffers; no backward).
Model fold_for_inference(Model trained);

} // namespace mimic::nn
