// Series-parallel blocks (res, cat, gate): branches run as small chains over block-owned buffers, joined by
// flat Kokkos kernels; backward sums the gradients that reach the block's input through every branch.
#include "mimic/nn/layers/block.hpp"

#include "mimic/core/rng.hpp"
#include "mimic/nn/layers/activation.hpp"
#include "mimic/nn/layers/relu.hpp"
#include "mimic/nn/layers/sigmoid.hpp"

namespace mimic::nn {

void add_into(const Matrix& y, const Matrix& a, bool accumulate) {
    const std::int64_t n = y.extent(1);
    if (y.span_is_contiguous() && a.span_is_contiguous() && y.span() == y.size() && a.span() == a.size()) {
        // Both dense: one flat loop on raw pointers, without the per-element division by n (the block's
        // join and its gradient sum ran at a sixth of a ResNet's training time with it) and vectorised on
        // the host; the same sums, so the same results.
        const float* ap = a.data();
        float* yp = y.data();
        const RangePolicy all(0, std::int64_t(y.size()));
        if (accumulate)
            Kokkos::parallel_for(
                "mimic::nn::block::add", all, KOKKOS_LAMBDA(std::int64_t e) { yp[e] = yp[e] + ap[e]; });
        else
            Kokkos::parallel_for(
                "mimic::nn::block::copy", all, KOKKOS_LAMBDA(std::int64_t e) { yp[e] = ap[e]; });
        return;
    }
    Kokkos::parallel_for(
        "mimic::nn::block::add", Kokkos::RangePolicy<ExecSpace>(0, std::int64_t(y.extent(0)) * n),
        KOKKOS_LAMBDA(std::int64_t e) {
            const std::int64_t b = e / n, i = e % n;
            y(b, i) = accumulate ? y(b, i) + a(b, i) : a(b, i);
        });
}

void add_relu_into(const Matrix& y, const Matrix& a, bool accumulate) {
    const std::int64_t n = y.extent(1);
    if (y.span_is_contiguous() && a.span_is_contiguous() && y.span() == y.size() && a.span() == a.size()) {
        // add_into's flat loop with relu_forward's select on the sum.
        const float* ap = a.data();
        float* yp = y.data();
        Kokkos::parallel_for(
            "mimic::nn::block::add_relu", RangePolicy(0, std::int64_t(y.size())),
            KOKKOS_LAMBDA(std::int64_t e) {
                const float v = accumulate ? yp[e] + ap[e] : ap[e];
                yp[e] = v > 0.0f ? v : 0.0f;
            });
        return;
    }
    Kokkos::parallel_for(
        "mimic::nn::block::add_relu", Kokkos::RangePolicy<ExecSpace>(0, std::int64_t(y.extent(0)) * n),
        KOKKOS_LAMBDA(std::int64_t e) {
            const std::int64_t b = e / n, i = e % n;
            const float v = accumulate ? y(b, i) + a(b, i) : a(b, i);
            y(b, i) = v > 0.0f ? v : 0.0f;
        });
}

void copy_columns_into(const Matrix& a, const Matrix& y, std::int64_t col) {
    if constexpr (Kokkos::SpaceAccessibility<Kokkos::HostSpace, MemSpace>::accessible)
        copy_columns_rows(a, y, col);
    else
        copy_columns_elements(a, y, col);
}

void copy_columns_rows(const Matrix& a, const Matrix& y, std::int64_t col) {
    const std::int64_t n = a.extent(1);
    Kokkos::parallel_for(
        "mimic::nn::block::concat_rows", Kokkos::RangePolicy<ExecSpace>(0, std::int64_t(a.extent(0))),
        KOKKOS_LAMBDA(std::int64_t b) {
            const float* src = &a(b, 0);
            float* dst = &y(b, col);
            for (std::int64_t i = 0; i < n; ++i)
                dst[i] = src[i];
        });
}

void copy_columns_elements(const Matrix& a, const Matrix& y, std::int64_t col) {
    const std::int64_t n = a.extent(1);
    Kokkos::parallel_for(
        "mimic::nn::block::concat", Kokkos::RangePolicy<ExecSpace>(0, std::int64_t(a.extent(0)) * n),
        KOKKOS_LAMBDA(std::int64_t e) {
            const std::int64_t b = e / n, i = e % n;
            y(b, col + i) = a(b, i);
        });
}

void copy_columns_from(const Matrix& y, std::int64_t col, const Matrix& a) {
    const std::int64_t n = a.extent(1);
    Kokkos::parallel_for(
        "mimic::nn::block::split", Kokkos::RangePolicy<ExecSpace>(0, std::int64_t(a.extent(0)) * n),
        KOKKOS_LAMBDA(std::int64_t e) {
            const std::int64_t b = e / n, i = e % n;
            a(b, i) = y(b, col + i);
        });
}

void gate_forward(const Matrix& x, const Matrix& g, const Matrix& y) {
    // One work item per (row, gate): its hw products run as a contiguous inner loop, without the
    // per-element index divisions (a third of EfficientNet-B0's labelling time when flat).
    const std::int64_t ng = g.extent(1), hw = std::int64_t(x.extent(1)) / ng;
    Kokkos::parallel_for(
        "mimic::nn::block::gate", Kokkos::RangePolicy<ExecSpace>(0, std::int64_t(x.extent(0)) * ng),
        KOKKOS_LAMBDA(std::int64_t e) {
            const std::int64_t b = e / ng, c = e % ng;
            const float gv = g(b, c);
            for (std::int64_t p = c * hw; p < (c + 1) * hw; ++p)
                y(b, p) = x(b, p) * gv;
        });
}

void gate_backward(const Matrix& x, const Matrix& g, const Matrix& dy, const Matrix& dx, const Matrix& dg) {
    const std::int64_t n = x.extent(1), ng = g.extent(1), hw = n / ng, B = x.extent(0);
    Kokkos::parallel_for(
        "mimic::nn::block::gate_grad", Kokkos::RangePolicy<ExecSpace>(0, B * ng),
        KOKKOS_LAMBDA(std::int64_t e) {
            const std::int64_t b = e / ng, c = e % ng;
            float s = 0;
            for (std::int64_t p = 0; p < hw; ++p)
                s += dy(b, c * hw + p) * x(b, c * hw + p);
            dg(b, c) = s;
        });
    if (dx.extent(0) == 0) return;
    Kokkos::parallel_for(
        "mimic::nn::block::gate_dx", Kokkos::RangePolicy<ExecSpace>(0, B * n), KOKKOS_LAMBDA(std::int64_t e) {
            const std::int64_t b = e / n, i = e % n;
            dx(b, i) = dy(b, i) * g(b, i / hw);
        });
}

namespace {

/// An activation that a layer's output pass can take over, and its alpha.
struct FusableActivation {
    ConvAct act = ConvAct::none;
    float alpha = 0.0f;
};

/// The activation layer l applies when it is a ReLU, a sigmoid or an ActivationLayer that no layer before
/// it applies yet, else none.
FusableActivation fusable_activation(const Layer& l) {
    if (l.is_alias()) return {};
    if (dynamic_cast<const ReLU*>(&l)) return {ConvAct::relu, 0.0f};
    if (dynamic_cast<const Sigmoid*>(&l)) return {ConvAct::sigmoid, 0.0f};
    if (const auto* a = dynamic_cast<const ActivationLayer*>(&l))
        return {conv_act_of(a->activation()), a->alpha()};
    return {};
}

/// Marks the activation l (fusable_activation) as applied by the layer before it (it then aliases its input).
void mark_fused(Layer& l) {
    if (auto* relu = dynamic_cast<ReLU*>(&l))
        relu->set_fused();
    else if (auto* sigmoid = dynamic_cast<Sigmoid*>(&l))
        sigmoid->set_fused();
    else
        dynamic_cast<ActivationLayer&>(l).set_fused();
}

} // namespace

void plan_inference(const std::vector<std::unique_ptr<Layer>>& layers,
                    const std::shared_ptr<BlockBuffers>& buffers, std::size_t depth) {
    for (const auto& layer : layers)
        if (auto* block = dynamic_cast<Block*>(layer.get())) block->plan_inference(buffers, depth);
    for (std::size_t i = 0; i + 1 < layers.size(); ++i) {
        const FusableActivation a = fusable_activation(*layers[i + 1]);
        if (a.act == ConvAct::none) continue;
        auto* conv = dynamic_cast<Conv2D*>(layers[i].get());
        auto* block = dynamic_cast<Block*>(layers[i].get());
        if (conv && conv->activation() == ConvAct::none) {
            conv->fuse_activation(a.act, a.alpha);
            mark_fused(*layers[i + 1]);
        } else if (block && (a.act == ConvAct::relu || a.act == ConvAct::relu6) &&
                   block->fuse_activation(a.act)) {
            mark_fused(*layers[i + 1]);
        }
    }
}

/// One branch: a chain of layers with its activations and gradients in block-owned, grow-only buffers.
struct BlockBranch {
    std::vector<std::unique_ptr<Layer>> layers;
    Shape out;
    std::vector<Vector> act_store, dact_store;
    Vector dy_store; ///< cat: this branch's columns of dL/dy
    std::vector<Matrix> acts;

    /// The first layer that is not an alias (layers.size() when none: the branch passes x through).
    std::size_t first_real() const {
        std::size_t k = 0;
        while (k < layers.size() && layers[k]->is_alias())
            ++k;
        return k;
    }
    bool identity() const { return first_real() == layers.size(); }
    /// The last layer that is not an alias (layers.size() when none).
    std::size_t last_real() const {
        for (std::size_t k = layers.size(); k-- > 0;)
            if (!layers[k]->is_alias()) return k;
        return layers.size();
    }
    /// The convolution that ends the branch (looking through aliases: a fused activation, flatten), or null.
    Conv2D* last_conv() const {
        const std::size_t k = last_real();
        return k < layers.size() ? dynamic_cast<Conv2D*>(layers[k].get()) : nullptr;
    }

    /// Inference: runs layers [0, end) over the block's shared buffers, alternating between two of them and
    /// never writing shared[avoid] (-1: none). Returns the output (x when no layer ran) and sets `slot` to
    /// the buffer that holds it (-1: x).
    Matrix run_shared(const Matrix& x, const ForwardContext& ctx, std::vector<Vector>& shared, int avoid,
                      std::size_t end, int& slot) const {
        const std::int64_t B = x.extent(0);
        Matrix cur = x;
        slot = -1;
        for (std::size_t k = 0; k < end; ++k) {
            if (layers[k]->is_alias()) continue;
            int next = 0;
            while (next == slot || next == avoid)
                ++next;
            const Matrix out = workspace(shared[std::size_t(next)], "mimic::nn::block::shared", B,
                                         layers[k]->out_shape().size());
            layers[k]->forward(cur, out, ctx);
            cur = out;
            slot = next;
        }
        return cur;
    }

    /// Runs the chain on x; the result (x itself for the identity) stays valid until the next run.
    Matrix run(const Matrix& x, const ForwardContext& ctx) {
        const std::int64_t B = x.extent(0);
        acts.assign(layers.size() + 1, Matrix());
        acts[0] = x;
        for (std::size_t k = 0; k < layers.size(); ++k) {
            if (layers[k]->is_alias()) {
                acts[k + 1] = acts[k];
                continue;
            }
            acts[k + 1] = workspace(act_store[k], "mimic::nn::block::act", B, layers[k]->out_shape().size());
            layers[k]->forward(acts[k], acts[k + 1], ctx);
        }
        return acts.back();
    }

    /// Backward from dy (gradient of the branch output) of the last run(). Returns dL/dx of the branch input:
    /// written into `into` when it is non-empty, else into a branch buffer; dy itself for the identity; an
    /// empty matrix when need_dx is false (the parameter gradients are accumulated all the same).
    Matrix back(const Matrix& dy, const Matrix& into, bool need_dx) {
        const std::int64_t B = acts[0].extent(0);
        const std::size_t first = first_real();
        Matrix d = dy;
        for (std::size_t k = layers.size(); k-- > first;) {
            if (layers[k]->is_alias()) continue;
            Matrix dx;
            if (k > first || (need_dx && into.extent(0) == 0))
                dx = workspace(dact_store[k], "mimic::nn::block::dact", B, layers[k]->in_shape().size());
            else if (need_dx)
                dx = into;
            layers[k]->backward(acts[k], acts[k + 1], d, dx);
            d = dx;
        }
        return d;
    }
};

Block::Block(int index, const LayerSpec& spec, Shape in)
    : Layer(index, spec.token, in, infer_shape(spec, in)), join_(spec.join) {
    std::int64_t col = 0;
    for (const auto& chain : spec.branches) {
        auto br = std::make_unique<BlockBranch>();
        Shape s = in;
        for (std::size_t k = 0; k < chain.size(); ++k) {
            br->layers.push_back(make_layer(chain[k], int(k), s));
            s = br->layers.back()->out_shape();
        }
        fuse_conv_relu(br->layers);
        br->out = s;
        br->act_store.resize(chain.size());
        br->dact_store.resize(chain.size());
        columns_.push_back(col);
        col += s.size();
        branches_.push_back(std::move(br));
    }
}

Block::~Block() = default;

std::size_t Block::num_branches() const {
    return branches_.size();
}
const std::vector<std::unique_ptr<Layer>>& Block::branch(std::size_t j) const {
    return branches_.at(j)->layers;
}

std::vector<ParamDecl> Block::param_decls() const {
    std::vector<ParamDecl> out;
    for (std::size_t j = 0; j < branches_.size(); ++j) {
        const auto& layers = branches_[j]->layers;
        for (std::size_t k = 0; k < layers.size(); ++k)
            for (auto d : layers[k]->param_decls()) {
                d.suffix = detail::concat("b", j, ".", k, ".", layers[k]->kind(), ".", d.suffix);
                out.push_back(d);
            }
    }
    return out;
}

void Block::bind(const std::vector<UnmanagedVector>& params, const std::vector<UnmanagedVector>& grads) {
    std::size_t t = 0;
    for (const auto& br : branches_)
        for (const auto& layer : br->layers) {
            const std::size_t n = layer->param_decls().size();
            layer->bind(std::vector<UnmanagedVector>(params.begin() + t, params.begin() + t + n),
                        std::vector<UnmanagedVector>(grads.begin() + t, grads.begin() + t + n));
            t += n;
        }
}

std::vector<ParamDecl> Block::state_decls() const {
    std::vector<ParamDecl> out;
    for (std::size_t j = 0; j < branches_.size(); ++j) {
        const auto& layers = branches_[j]->layers;
        for (std::size_t k = 0; k < layers.size(); ++k)
            for (auto d : layers[k]->state_decls()) {
                d.suffix = detail::concat("b", j, ".", k, ".", layers[k]->kind(), ".", d.suffix);
                out.push_back(d);
            }
    }
    return out;
}

void Block::bind_state(const std::vector<UnmanagedVector>& state) {
    std::size_t t = 0;
    for (const auto& br : branches_)
        for (const auto& layer : br->layers) {
            const std::size_t n = layer->state_decls().size();
            if (n) layer->bind_state(std::vector<UnmanagedVector>(state.begin() + t, state.begin() + t + n));
            t += n;
        }
}

bool Block::uses_batch_stats() const {
    for (const auto& br : branches_)
        for (const auto& layer : br->layers)
            if (layer->uses_batch_stats()) return true;
    return false;
}

void Block::idle_pass(bool forward, const StatReducer* reduce) {
    if (!forward) return idle_backward(true, reduce);
    for (const auto& br : branches_)
        for (const auto& layer : br->layers)
            if (layer->uses_batch_stats()) layer->idle_pass(true, reduce);
}

void Block::idle_backward(bool need_dx, const StatReducer* reduce) {
    // As backward(): branch by branch, each from its last layer to its first real one, which computes dL/dx
    // only when the block's caller needs it.
    for (const auto& br : branches_) {
        const std::size_t first = br->first_real();
        for (std::size_t k = br->layers.size(); k-- > first;) {
            Layer* layer = br->layers[k].get();
            if (!layer->uses_batch_stats()) continue;
            const bool dx = k > first || need_dx;
            if (auto* block = dynamic_cast<Block*>(layer))
                block->idle_backward(dx, reduce);
            else if (dx)
                layer->idle_pass(false, reduce);
        }
    }
}

void Block::set_conv_tuning(const ConvTuning& t) {
    for (const auto& br : branches_)
        for (const auto& layer : br->layers) {
            if (auto* conv = dynamic_cast<Conv2D*>(layer.get())) conv->set_tuning(t);
            if (auto* block = dynamic_cast<Block*>(layer.get())) block->set_conv_tuning(t);
        }
}

void Block::init(std::uint64_t seed, bool he) {
    for (std::size_t j = 0; j < branches_.size(); ++j) {
        const auto& layers = branches_[j]->layers;
        for (std::size_t k = 0; k < layers.size(); ++k)
            if (!layers[k]->param_decls().empty())
                layers[k]->init(derive_seed(seed, j, k), he_init_after(layers, k, he));
    }
}

double Block::flops_per_sample() const {
    double f = 0;
    for (const auto& br : branches_)
        for (const auto& layer : br->layers)
            f += layer->flops_per_sample();
    return f;
}

void Block::join_into(std::size_t j, const Matrix& x, const Matrix& out, const Matrix& y) const {
    if (join_ == Join::Add && relu_ && j + 1 == branches_.size())
        add_relu_into(y, out, j > 0);
    else if (join_ == Join::Add)
        add_into(y, out, j > 0);
    else if (join_ == Join::Concat)
        copy_columns_into(out, y, columns_[j]);
    else
        gate_forward(x, out, y);
}

void Block::forward(const Matrix& x, const Matrix& y, const ForwardContext& ctx) {
    if (inference_) {
        forward_inference(x, y, ctx);
        return;
    }
    batch_ = x.extent(0);
    ForwardContext c = ctx;
    for (std::size_t j = 0; j < branches_.size(); ++j) {
        // Each branch draws its own dropout masks (its layers are numbered from 0 like any chain).
        c.dropout_seed = derive_seed(ctx.dropout_seed, std::uint64_t(index_) + 1, j + 1);
        const Matrix out = branches_[j]->run(x, c);
        join_into(j, x, out, y);
    }
}

void Block::forward_inference(const Matrix& x, const Matrix& y, const ForwardContext& ctx) {
    batch_ = x.extent(0);
    std::vector<Vector>& shared = buffers_->at(depth_); // three, sized by plan_inference
    int slot = -1, unused = -1;
    if (fused_branch_ >= 0) {
        // res: the other branch's output (x itself for the identity) is the residual of the last conv of
        // the fused branch, which runs over the two buffers the residual does not occupy.
        const auto& other = *branches_[std::size_t(1 - fused_branch_)];
        const auto& fused = *branches_[std::size_t(fused_branch_)];
        const Matrix r = other.run_shared(x, ctx, shared, -1, other.layers.size(), slot);
        const Matrix in = fused.run_shared(x, ctx, shared, slot, fused.last_real(), unused);
        ConvEpilogue e;
        e.residual = r.data();
        e.residual_ld = std::int64_t(r.stride_0());
        e.post = post_;
        fused.last_conv()->forward_into(in, y.data(), e);
        return;
    }
    for (std::size_t j = 0; j < branches_.size(); ++j) {
        const auto& br = *branches_[j];
        if (join_ == Join::Concat && br.last_conv()) {
            // The branch's last conv writes its channels of the output in place (rows y's stride apart).
            const Matrix in = br.run_shared(x, ctx, shared, -1, br.last_real(), slot);
            ConvEpilogue e;
            e.ld = std::int64_t(y.stride_0());
            br.last_conv()->forward_into(in, y.data() + columns_[j], e);
            continue;
        }
        const Matrix out = br.run_shared(x, ctx, shared, -1, br.layers.size(), slot);
        join_into(j, x, out, y);
    }
}

void Block::plan_inference(const std::shared_ptr<BlockBuffers>& buffers, std::size_t depth) {
    if (buffers->size() <= depth) buffers->resize(depth + 1);
    if ((*buffers)[depth].size() < 3) (*buffers)[depth].resize(3);
    buffers_ = buffers;
    depth_ = depth;
    for (const auto& br : branches_)
        nn::plan_inference(br->layers, buffers, depth + 1);
    inference_ = true;
    if (join_ != Join::Add || branches_.size() != 2) return;
    for (int j = 0; j < 2 && fused_branch_ < 0; ++j)
        if (branches_[std::size_t(j)]->last_conv()) fused_branch_ = j;
    if (fused_branch_ >= 0 && relu_) post_ = ConvAct::relu; // the conv's output pass applies it instead
}

void Block::fuse_relu() {
    if (join_ == Join::Add) relu_ = true;
}

bool Block::fuse_activation(ConvAct a) {
    if (!inference_ || fused_branch_ < 0 || post_ != ConvAct::none) return false;
    post_ = a;
    return true;
}

std::int64_t Block::activation_bytes() const {
    const auto bytes = [](const Vector& v) { return std::int64_t(v.size() * sizeof(float)); };
    std::int64_t n = bytes(dg_store_) + bytes(drelu_store_);
    for (const auto& br : branches_) {
        for (const auto& v : br->act_store)
            n += bytes(v);
        for (const auto& v : br->dact_store)
            n += bytes(v);
        n += bytes(br->dy_store);
        for (const auto& layer : br->layers)
            if (const auto* block = dynamic_cast<const Block*>(layer.get())) n += block->activation_bytes();
    }
    return n;
}

void Block::backward(const Matrix& x, const Matrix& y, const Matrix& dy, const Matrix& dx) {
    MIMIC_REQUIRE(!inference_, "block ", token_, ": backward after plan_inference (an inference-only model)");
    if (join_ == Join::Add && relu_) {
        // The fused ReLU's gradient, as the ReLU layer's backward would have passed it on.
        const Matrix g = workspace(drelu_store_, "mimic::nn::block::drelu", batch_, dy.extent(1));
        relu_backward(y, dy, g);
        backward_add(x, g, dx);
    } else if (join_ == Join::Add)
        backward_add(x, dy, dx);
    else if (join_ == Join::Concat)
        backward_concat(x, dy, dx);
    else
        backward_gate(x, dy, dx);
}

namespace {

/// dx (+)= the gradient that branch br passes to the block input, given its output gradient dyj. The first
/// branch with layers writes straight into dx; `written` says whether dx holds a sum already.
void accumulate_branch(BlockBranch& br, const Matrix& dyj, const Matrix& dx, bool& written) {
    const bool need = dx.extent(0) > 0;
    const Matrix r = br.back(dyj, need && !written && !br.identity() ? dx : Matrix(), need);
    if (!need) return;
    if (r.data() != dx.data()) add_into(dx, r, written);
    written = true;
}

} // namespace

void Block::backward_add(const Matrix&, const Matrix& dy, const Matrix& dx) {
    bool written = false;
    for (auto& br : branches_)
        accumulate_branch(*br, dy, dx, written);
}

void Block::backward_concat(const Matrix&, const Matrix& dy, const Matrix& dx) {
    bool written = false;
    for (std::size_t j = 0; j < branches_.size(); ++j) {
        auto& br = *branches_[j];
        const Matrix dyj = workspace(br.dy_store, "mimic::nn::block::dy", batch_, br.out.size());
        copy_columns_from(dy, columns_[j], dyj);
        accumulate_branch(br, dyj, dx, written);
    }
}

void Block::backward_gate(const Matrix& x, const Matrix& dy, const Matrix& dx) {
    auto& br = *branches_[0];
    const Matrix g = br.acts.back();
    const Matrix dg = workspace(dg_store_, "mimic::nn::block::dgate", batch_, g.extent(1));
    gate_backward(x, g, dy, dx, dg); // dx = dy * g: the gradient through the gated input
    bool written = dx.extent(0) > 0;
    accumulate_branch(br, dg, dx, written); // + the gradient through the gate branch
}

} // namespace mimic::nn
