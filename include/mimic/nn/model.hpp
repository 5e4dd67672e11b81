// A sequential network built from an architecture spec: layers whose parameters and gradients live in
// two flat device buffers (one allreduce per step), forward to logits and backward from dL/dlogits.
#pragma once

#include "mimic/core/kokkos.hpp"
#include "mimic/nn/shape.hpp"
#include "mimic/nn/stat_reducer.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace mimic::nn {

/// One named parameter tensor inside the flat buffer (for model files and tests).
struct ParamTensor {
    std::string name;                ///< e.g. "layer2.dense.W"
    std::vector<std::int64_t> shape; ///< e.g. {in, out}
    std::int64_t offset = 0;         ///< first element in the flat buffer
    std::int64_t size = 0;           ///< number of elements
};

class Layer;
struct ConvTuning;

/// Architecture: see include/mimic/nn/spec.hpp for the spec grammar (dense:N, bottleneck:K,
/// conv:FxK[sS][pP][gG], dwconv:K[sS][pP], pool:K[sS][pP], avgpool:K[sS][pP][e][c], gap, relu, relu6, sigmoid,
/// silu, hardswish, hardsigmoid, leakyrelu[:A], elu[:A], gelu, softplus, tanh, dropout:P, flatten, bn).
///
/// Parameter tensors are named "layer<i>.<kind>.<W|b>" with i the 0-based position of the token in the
/// spec, and laid out in spec order, W before b, without gaps:
///   dense:N       layer<i>.dense.W {in, N} (y = x·W + b, row-major), layer<i>.dense.b {N}
///   bottleneck:K  layer<i>.bottleneck.W {in, K} (no bias)
///   conv:FxKgG    layer<i>.conv.W {C/G, K, K, F} (= PyTorch's weight [F, C/G, K, K] permuted (1, 2, 3, 0);
///                 G = 1 without g: {C, K, K, F}), layer<i>.conv.b {F}; filter f reads the channels of
///                 its group f / (F/G)
///   dwconv:K      as conv:CxKgC (depthwise, C the input channels): layer<i>.conv.W {1, K, K, C}
///   bn            layer<i>.bn.W {C} (scale, 1 at init), layer<i>.bn.b {C} (shift); state
///                 layer<i>.bn.running_mean {C}, layer<i>.bn.running_var {C}
/// where `in` is the flattened size of the layer's input. Activations are NCHW per sample, flattened.
///
/// Graphs are series-parallel: a block token (res(...), cat(...), gate(...); see spec.hpp) is one Layer
/// (nn/layers/block.hpp) that runs branches, each a chain that may hold blocks again, on its input and joins
/// them by a sum, a channel concatenation or a gate. Its tensors are named "layer<i>.<res|cat|gate>.b<j>.<k>.
/// <kind>.<W|b>" (branch j, layer k of it, both 0-based) and sit in spec order like any layer's. Why this
/// design and not a general DAG: every family we target is series-parallel (ResNet basic and bottleneck
/// blocks with identity or projection shortcuts, pre-activation ResNet, MobileNetV2 inverted residuals,
/// DenseNet concatenation, SqueezeNet fire modules, squeeze-and-excitation gates, EfficientNet MBConv), and
/// a block is a layer: the flat parameter/gradient buffers and their one allreduce, the per-layer gradient
/// ranges, checkpoints, model files and checksums, and the model-parallel wide layer after a trunk of blocks
/// all keep working unchanged, while chains keep their specs, names, files and results bit for bit.
///
/// forward()/backward() reuse buffers sized for the largest batch seen (no allocation once the batch size
/// is stable). x must stay alive and unchanged between forward() and the matching backward().
class Model {
public:
    /// Builds the network for samples of shape `input`. A bad spec or a shape mismatch throws
    /// mimic::Error naming the token. With max_params >= 0, a network needing more parameters is refused
    /// before its buffers are allocated (a loader passes the number of weights its file stores).
    Model(const std::string& spec, Shape input, std::int64_t max_params = -1);
    ~Model();
    Model(Model&&) noexcept;
    Model& operator=(Model&&) noexcept;

    const std::string& spec() const { return spec_; }
    Shape input_shape() const { return input_; }
    std::int64_t input_size() const { return input_.size(); }
    std::int64_t output_size() const;
    std::int64_t num_params() const { return num_params_; }
    const std::vector<ParamTensor>& param_tensors() const { return tensors_; }

    /// Flat parameter and gradient buffers on the device ([num_params]).
    Vector params() const { return params_; }
    Vector grads() const { return grads_; }
    /// Non-trained state (batch normalisation's running mean and variance, "layer<i>.bn.running_mean" /
    /// "running_var"), flat on the device ([num_state]); saved in model files and checkpoints.
    Vector state() const { return state_; }
    std::int64_t num_state() const { return num_state_; }
    const std::vector<ParamTensor>& state_tensors() const { return state_tensors_; }
    /// True when a layer uses batch statistics in training (bn): data-parallel training must then set a
    /// StatReducer and run the same micro-batches on every replica (idle_pass() where it has no rows).
    bool uses_batch_stats() const;
    /// Sums batch statistics over the data replicas from now on (an empty function: this rank alone).
    void set_stat_reducer(StatReducer reduce) { reduce_ = std::move(reduce); }
    /// A training forward and backward over zero rows: only the statistic reductions and state updates,
    /// for a replica whose slice of a micro-batch is empty.
    void idle_pass();

    /// He initialisation for layers followed by ReLU, Glorot otherwise; biases zero. Deterministic in seed.
    void init(std::uint64_t seed);
    /// True when layer i's weights take He initialisation: the next activation, looking through dropout,
    /// flatten and pooling (max, average, global), is ReLU, ReLU6, SiLU or HardSwish.
    bool he_init(std::size_t i) const;
    /// x: [B, input_size]. Returns logits [B, output_size], valid until the next forward().
    /// train enables dropout; its masks depend only on (dropout_seed, layer, row_offset + row of x, unit):
    /// pass a different dropout_seed every step. Data-parallel ranks pass the same seed and, as row_offset,
    /// the first row of their slice in the global batch: they then draw the masks one rank would draw for
    /// the whole batch, so the result does not depend on the rank count.
    Matrix forward(const Matrix& x, bool train, std::uint64_t dropout_seed = 0, std::int64_t row_offset = 0);
    /// Called by backward() as soon as a layer's parameter gradients are complete, with their range
    /// [begin, end) in grads(); layers come last to first, so the ranges descend without gaps.
    using GradsReady = std::function<void(std::int64_t begin, std::int64_t end)>;
    /// Accumulates dL/dparams into grads() given dL/dlogits of the last forward(). Call zero_grads() first.
    /// `ready` (optional) hears of each layer's finished gradients (to start their reduction early).
    void backward(const Matrix& dlogits, const GradsReady& ready = nullptr);
    /// [begin, end) of layer i's parameters in params() and grads() (begin == end: none).
    std::pair<std::int64_t, std::int64_t> param_range(std::size_t i) const { return layer_params_.at(i); }
    void zero_grads();

    /// Plans the model for inference only (label, eval; nn::fold_for_inference calls it): fused output
    /// passes (a ReLU6 into the conv before it; a res block's join, and the ReLU or ReLU6 after it, into
    /// the output pass of a branch's last conv; a cat branch's last conv writing its channels of the
    /// output) and activations over the live set (the chain alternates between two buffers, blocks share
    /// theirs). The outputs equal the unplanned model's to float rounding. backward() and training
    /// forwards are refused afterwards.
    void plan_inference();
    bool inference_only() const { return inference_; }
    /// Bytes of the activation and gradient buffers the model and its blocks hold now (they grow with the
    /// largest batch seen).
    std::int64_t activation_bytes() const;

    /// Forward multiply-adds x2 per sample.
    double flops_per_sample() const;
    /// Table of layers, output shapes and parameter counts.
    std::string summary() const;
    std::size_t num_layers() const { return layers_.size(); }
    const Layer& layer(std::size_t i) const { return *layers_.at(i); }
    /// Sets which backends every convolution of the model may take, and their knobs (tests and benchmarks).
    void set_conv_tuning(const ConvTuning& t);
    Shape output_shape() const;
    /// The tensor called `name`; throws mimic::Error listing the valid names when there is none.
    const ParamTensor& param_tensor(const std::string& name) const;

private:
    std::string spec_;
    Shape input_;
    std::vector<std::unique_ptr<Layer>> layers_;
    std::vector<ParamTensor> tensors_;
    std::vector<std::pair<std::int64_t, std::int64_t>> layer_params_; ///< see param_range()
    std::int64_t num_params_ = 0, num_state_ = 0;
    Vector params_, grads_, state_;
    std::vector<ParamTensor> state_tensors_;
    StatReducer reduce_;
    std::vector<Matrix> acts_; ///< activations: acts_[0] = input, acts_[i+1] = output of layer i
    std::vector<Matrix> dacts_;
    // Storage behind acts_/dacts_ ([capacity_, width], grown only; flatten layers alias their input),
    // and the batch size of the last forward().
    std::vector<Matrix> act_store_, dact_store_;
    std::vector<Vector> alternate_; ///< inference: the two buffers the chain's activations alternate between
    /// inference: the buffers the blocks share (nn::BlockBuffers, three per nesting depth)
    std::shared_ptr<std::vector<std::vector<Vector>>> block_buffers_;
    std::int64_t capacity_ = 0, batch_ = -1;
    bool inference_ = false;
    void reserve(std::int64_t batch);
    void bind_state();
    /// Whether backward() computes dL/dx of layer i (not for layers that only see the model input).
    bool needs_dx(std::size_t i) const;
};

} // namespace mimic::nn
