// The sequential Model: builds layers from the spec, lays their parameters out in one flat buffer,
// initialises them deterministically and runs forward/backward over reusable activation buffers.
#include "mimic/nn/model.hpp"

#include "mimic/core/error.hpp"
#include "mimic/core/rng.hpp"
#include "mimic/nn/layer.hpp"
#include "mimic/nn/layers/activation.hpp"
#include "mimic/nn/layers/avgpool2d.hpp"
#include "mimic/nn/layers/batchnorm.hpp"
#include "mimic/nn/layers/block.hpp"
#include "mimic/nn/layers/bottleneck.hpp"
#include "mimic/nn/layers/conv2d.hpp"
#include "mimic/nn/layers/dense.hpp"
#include "mimic/nn/layers/dropout.hpp"
#include "mimic/nn/layers/flatten.hpp"
#include "mimic/nn/layers/layernorm.hpp"
#include "mimic/nn/layers/maxpool2d.hpp"
#include "mimic/nn/layers/relu.hpp"
#include "mimic/nn/layers/sigmoid.hpp"
#include "mimic/nn/layers/tanh.hpp"
#include "mimic/nn/spec.hpp"

#include <algorithm>
#include <cstdio>
#include <sstream>

namespace mimic::nn {

std::unique_ptr<Layer> make_layer(const LayerSpec& l, int index, Shape in) {
    switch (l.kind) {
    case LayerKind::Dense:
        return std::make_unique<Dense>(index, l.token, in, l.units, true);
    case LayerKind::Bottleneck:
        return std::make_unique<Bottleneck>(index, l.token, in, l.units);
    case LayerKind::Conv:
        // dwconv (filters and groups 0): one filter and one group per input channel.
        return std::make_unique<Conv2D>(index, l.token, in, l.units > 0 ? l.units : in.c, l.kernel, l.stride,
                                        l.pad, l.groups > 0 ? l.groups : in.c);
    case LayerKind::Pool:
        return std::make_unique<MaxPool2D>(index, l.token, in, PoolWindow{l.kernel, l.stride, l.pad, l.ceil});
    case LayerKind::AvgPool:
        return std::make_unique<AvgPool2D>(index, l.token, in, PoolWindow{l.kernel, l.stride, l.pad, l.ceil},
                                           l.count_pad);
    case LayerKind::GlobalAvgPool:
        return std::make_unique<GlobalAvgPool>(index, l.token, in);
    case LayerKind::ReLU6:
        return std::make_unique<ActivationLayer>(index, l.token, in, Activation::ReLU6);
    case LayerKind::SiLU:
        return std::make_unique<ActivationLayer>(index, l.token, in, Activation::SiLU);
    case LayerKind::HardSwish:
        return std::make_unique<ActivationLayer>(index, l.token, in, Activation::HardSwish);
    case LayerKind::HardSigmoid:
        return std::make_unique<ActivationLayer>(index, l.token, in, Activation::HardSigmoid);
    case LayerKind::LeakyReLU:
        return std::make_unique<ActivationLayer>(index, l.token, in, Activation::LeakyReLU, l.alpha);
    case LayerKind::ELU:
        return std::make_unique<ActivationLayer>(index, l.token, in, Activation::ELU, l.alpha);
    case LayerKind::GELU:
        return std::make_unique<ActivationLayer>(index, l.token, in, Activation::GELU);
    case LayerKind::Softplus:
        return std::make_unique<ActivationLayer>(index, l.token, in, Activation::Softplus);
    case LayerKind::BatchNorm:
        return std::make_unique<BatchNorm>(index, l.token, in);
    case LayerKind::LayerNorm:
        return std::make_unique<LayerNorm>(index, l.token, in, l.alpha);
    case LayerKind::ReLU:
        return std::make_unique<ReLU>(index, l.token, in);
    case LayerKind::Sigmoid:
        return std::make_unique<Sigmoid>(index, l.token, in);
    case LayerKind::Tanh:
        return std::make_unique<Tanh>(index, l.token, in);
    case LayerKind::Dropout:
        return std::make_unique<Dropout>(index, l.token, in, l.rate);
    case LayerKind::Flatten:
        return std::make_unique<Flatten>(index, l.token, in);
    case LayerKind::Block:
        return std::make_unique<Block>(index, l, in);
    }
    fail(token_context(l), ": unknown layer kind");
}

void fuse_conv_relu(const std::vector<std::unique_ptr<Layer>>& layers) {
    for (std::size_t i = 0; i + 1 < layers.size(); ++i) {
        auto* relu = dynamic_cast<ReLU*>(layers[i + 1].get());
        if (!relu) continue;
        if (auto* conv = dynamic_cast<Conv2D*>(layers[i].get())) {
            conv->fuse_relu();
            relu->set_fused();
        } else if (auto* bn = dynamic_cast<BatchNorm*>(layers[i].get())) {
            bn->fuse_relu();
            relu->set_fused();
        } else if (auto* block = dynamic_cast<Block*>(layers[i].get()); block && block->join() == Join::Add) {
            block->fuse_relu();
            relu->set_fused();
        }
    }
}

bool he_init_after(const std::vector<std::unique_ptr<Layer>>& layers, std::size_t i, bool at_end) {
    for (std::size_t j = i + 1; j < layers.size(); ++j) {
        const std::string k = layers[j]->kind();
        if (k == "dropout" || k == "flatten" || k == "pool" || k == "avgpool" || k == "gap" || k == "bn")
            continue;
        return k == "relu" || k == "relu6" || k == "silu" || k == "hardswish";
    }
    return at_end;
}

namespace {

std::string shape_text(Shape s) {
    if (s.c == 1 && s.h == 1) return std::to_string(s.w);
    return detail::concat(s.c, "x", s.h, "x", s.w);
}

/// Lays the tensors `decls` of `layer` out after the first `count` elements of a flat buffer, named
/// "layer<i>.<kind>.<suffix>", appending one entry each to `tensors` (parameters and state alike).
void place_tensors(const Layer& layer, const std::vector<ParamDecl>& decls, std::vector<ParamTensor>& tensors,
                   std::int64_t& count) {
    for (const auto& d : decls) {
        ParamTensor t;
        t.name = detail::concat("layer", layer.index(), ".", layer.kind(), ".", d.suffix);
        t.shape = d.shape;
        t.offset = count;
        t.size = d.size();
        count += t.size;
        tensors.push_back(t);
    }
}

} // namespace

Model::Model(const std::string& spec, Shape input, std::int64_t max_params) : spec_(spec), input_(input) {
    MIMIC_REQUIRE(input.c >= 1 && input.h >= 1 && input.w >= 1, "arch: invalid input shape ", input.c, "x",
                  input.h, "x", input.w);
    const auto specs = parse_spec(spec);
    Shape shape = input;
    for (std::size_t i = 0; i < specs.size(); ++i) {
        const Shape out = infer_shape(specs[i], shape);
        layers_.push_back(make_layer(specs[i], int(i), shape));
        MIMIC_REQUIRE(layers_.back()->out_shape() == out, token_context(specs[i]),
                      ": internal shape mismatch");
        shape = out;
    }
    // A ReLU right after a convolution or a bn is applied by that layer to its output and its gradient (one
    // pass over the activations less each way); the ReLU then aliases that layer's output.
    fuse_conv_relu(layers_);
    for (const auto& layer : layers_) {
        const std::int64_t begin = num_params_;
        place_tensors(*layer, layer->param_decls(), tensors_, num_params_);
        layer_params_.emplace_back(begin, num_params_);
    }
    if (max_params >= 0 && num_params_ > max_params)
        fail("arch: '", spec, "' on ", input.c, "x", input.h, "x", input.w, " samples needs ", num_params_,
             " parameters, more than the ", max_params, " given");
    params_ = Vector("mimic::nn::params", num_params_);
    grads_ = Vector("mimic::nn::grads", num_params_);
    bind_state();
    std::size_t t = 0;
    for (const auto& layer : layers_) {
        std::vector<UnmanagedVector> p, g;
        for (std::size_t k = 0; k < layer->param_decls().size(); ++k, ++t) {
            p.emplace_back(params_.data() + tensors_[t].offset, tensors_[t].size);
            g.emplace_back(grads_.data() + tensors_[t].offset, tensors_[t].size);
        }
        layer->bind(p, g);
    }
}

Model::~Model() = default;
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;

Shape Model::output_shape() const {
    return layers_.back()->out_shape();
}
std::int64_t Model::output_size() const {
    return output_shape().size();
}

const ParamTensor& Model::param_tensor(const std::string& name) const {
    for (const auto& t : tensors_)
        if (t.name == name) return t;
    std::string names;
    for (const auto& t : tensors_)
        names += (names.empty() ? "" : ", ") + t.name;
    fail("model '", spec_, "' has no parameter tensor '", name, "' (it has: ", names, ")");
}

bool Model::he_init(std::size_t i) const {
    return he_init_after(layers_, i, false);
}

void Model::init(std::uint64_t seed) {
    for (std::size_t i = 0; i < layers_.size(); ++i)
        if (!layers_[i]->param_decls().empty())
            layers_[i]->init(derive_seed(seed, std::uint64_t(i)), he_init(i));
    Kokkos::fence();
}

void Model::reserve(std::int64_t batch) {
    if (batch <= capacity_) return;
    const std::size_t L = layers_.size();
    act_store_.assign(L + 1, Matrix());
    dact_store_.assign(L + 1, Matrix());
    if (inference_) {
        // Layer i reads one buffer and writes the other: only the live set of a chain is held.
        std::int64_t width = 0;
        for (const auto& layer : layers_)
            width = std::max<std::int64_t>(width, layer->out_shape().size());
        alternate_.assign(2, Vector());
        for (auto& v : alternate_)
            v = Vector(Kokkos::view_alloc(Kokkos::WithoutInitializing, "mimic::nn::act_live"), batch * width);
        int next = 0;
        for (std::size_t i = 0; i < L; ++i) {
            if (layers_[i]->is_alias()) continue;
            act_store_[i + 1] =
                Matrix(alternate_[std::size_t(next)].data(), batch, layers_[i]->out_shape().size());
            next = 1 - next;
        }
        capacity_ = batch;
        return;
    }
    for (std::size_t i = 0; i < L; ++i) {
        if (layers_[i]->is_alias()) continue;
        // Output of layer i, and (except for the first layer) the gradient w.r.t. its input.
        act_store_[i + 1] =
            Matrix(Kokkos::view_alloc(Kokkos::WithoutInitializing, "mimic::nn::act" + std::to_string(i + 1)),
                   batch, layers_[i]->out_shape().size());
        if (i > 0)
            dact_store_[i] =
                Matrix(Kokkos::view_alloc(Kokkos::WithoutInitializing, "mimic::nn::dact" + std::to_string(i)),
                       batch, layers_[i]->in_shape().size());
    }
    capacity_ = batch;
}

Matrix Model::forward(const Matrix& x, bool train, std::uint64_t dropout_seed, std::int64_t row_offset) {
    MIMIC_REQUIRE(std::int64_t(x.extent(1)) == input_size(), "Model::forward: input has ", x.extent(1),
                  " features but the model '", spec_, "' expects ", input_size());
    MIMIC_REQUIRE(!(train && inference_), "Model::forward: training forward of the inference-only model '",
                  spec_, "'");
    const std::int64_t B = x.extent(0);
    reserve(B);
    const std::size_t L = layers_.size();
    acts_.assign(L + 1, Matrix());
    acts_[0] = x;
    ForwardContext ctx{train, dropout_seed, row_offset, reduce_ ? &reduce_ : nullptr, inference_};
    for (std::size_t i = 0; i < L; ++i) {
        if (layers_[i]->is_alias()) {
            acts_[i + 1] = acts_[i];
            continue;
        }
        acts_[i + 1] = leading_rows(act_store_[i + 1], B);
        layers_[i]->forward(acts_[i], acts_[i + 1], ctx);
    }
    batch_ = B;
    return acts_[L];
}

void Model::backward(const Matrix& dlogits, const GradsReady& ready) {
    const std::size_t L = layers_.size();
    MIMIC_REQUIRE(batch_ >= 0, "Model::backward called before forward");
    MIMIC_REQUIRE(!inference_, "Model::backward: the model '", spec_,
                  "' is planned for inference only (plan_inference)");
    MIMIC_REQUIRE(std::int64_t(dlogits.extent(0)) == batch_ &&
                      std::int64_t(dlogits.extent(1)) == output_size(),
                  "Model::backward: dlogits is ", dlogits.extent(0), "x", dlogits.extent(1),
                  " but the last forward gave ", batch_, "x", output_size());
    dacts_.assign(L + 1, Matrix());
    dacts_[L] = dlogits;
    for (std::size_t i = L; i-- > 0;) {
        if (layers_[i]->is_alias()) {
            dacts_[i] = dacts_[i + 1];
            continue;
        }
        if (needs_dx(i)) dacts_[i] = leading_rows(dact_store_[i], batch_);
        layers_[i]->backward(acts_[i], acts_[i + 1], dacts_[i + 1], dacts_[i]);
        const auto [begin, end] = layer_params_[i];
        if (ready && end > begin) ready(begin, end);
    }
}

bool Model::needs_dx(std::size_t i) const {
    // Layers that only see the model input (possibly through flatten) skip dL/dx: nobody needs it.
    for (std::size_t j = 0; j < i; ++j)
        if (!layers_[j]->is_alias()) return true;
    return false;
}

void Model::bind_state() {
    for (const auto& layer : layers_)
        place_tensors(*layer, layer->state_decls(), state_tensors_, num_state_);
    state_ = Vector("mimic::nn::state", num_state_);
    std::size_t t = 0;
    for (const auto& layer : layers_) {
        std::vector<UnmanagedVector> s;
        for (std::size_t k = 0; k < layer->state_decls().size(); ++k, ++t)
            s.emplace_back(state_.data() + state_tensors_[t].offset, state_tensors_[t].size);
        if (!s.empty()) layer->bind_state(s);
    }
}

bool Model::uses_batch_stats() const {
    for (const auto& l : layers_)
        if (l->uses_batch_stats()) return true;
    return false;
}

void Model::idle_pass() {
    const StatReducer* reduce = reduce_ ? &reduce_ : nullptr;
    for (const auto& l : layers_)
        if (l->uses_batch_stats()) l->idle_pass(true, reduce);
    for (std::size_t i = layers_.size(); i-- > 0;) {
        if (!layers_[i]->uses_batch_stats()) continue;
        // A block runs its branches' backward even where the Model needs no dL/dx of it (their inner layers
        // do need theirs).
        if (auto* block = dynamic_cast<Block*>(layers_[i].get()))
            block->idle_backward(needs_dx(i), reduce);
        else if (needs_dx(i))
            layers_[i]->idle_pass(false, reduce);
    }
}

void Model::set_conv_tuning(const ConvTuning& t) {
    for (const auto& layer : layers_)
        if (auto* conv = dynamic_cast<Conv2D*>(layer.get()))
            conv->set_tuning(t);
        else if (auto* block = dynamic_cast<Block*>(layer.get()))
            block->set_conv_tuning(t);
}

void Model::plan_inference() {
    inference_ = true;
    block_buffers_ = std::make_shared<BlockBuffers>();
    nn::plan_inference(layers_, block_buffers_);
    act_store_.clear();
    dact_store_.clear();
    capacity_ = 0; // the next forward lays the activations out for inference
}

std::int64_t Model::activation_bytes() const {
    std::int64_t n = 0;
    for (const auto& v : alternate_)
        n += std::int64_t(v.size() * sizeof(float));
    if (block_buffers_)
        for (const auto& depth : *block_buffers_)
            for (const auto& v : depth)
                n += std::int64_t(v.size() * sizeof(float));
    if (!inference_)
        for (const auto* store : {&act_store_, &dact_store_})
            for (const auto& m : *store)
                n += std::int64_t(m.size() * sizeof(float));
    for (const auto& layer : layers_)
        if (const auto* block = dynamic_cast<const Block*>(layer.get())) n += block->activation_bytes();
    return n;
}

void Model::zero_grads() {
    Kokkos::deep_copy(grads_, 0.0f);
}

double Model::flops_per_sample() const {
    double f = 0;
    for (const auto& l : layers_)
        f += l->flops_per_sample();
    return f;
}

std::string Model::summary() const {
    std::ostringstream os;
    char line[160];
    std::snprintf(line, sizeof line, "%-6s %-22s %-14s %12s %14s\n", "layer", "token", "output", "params",
                  "MFLOP/sample");
    os << line;
    std::snprintf(line, sizeof line, "%-6s %-22s %-14s %12s %14s\n", "input", "", shape_text(input_).c_str(),
                  "", "");
    os << line;
    std::size_t t = 0;
    for (const auto& l : layers_) {
        std::int64_t n = 0;
        for (std::size_t k = 0; k < l->param_decls().size(); ++k, ++t)
            n += tensors_[t].size;
        std::snprintf(line, sizeof line, "%-6d %-22s %-14s %12lld %14.3f\n", l->index(), l->token().c_str(),
                      shape_text(l->out_shape()).c_str(), (long long)n, l->flops_per_sample() / 1e6);
        os << line;
    }
    std::snprintf(line, sizeof line, "%-6s %-22s %-14s %12lld %14.3f\n", "total", "", "",
                  (long long)num_params_, flops_per_sample() / 1e6);
    os << line;
    return os.str();
}

} // namespace mimic::nn
