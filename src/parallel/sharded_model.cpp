// Model-parallel wide pair: local spec with H/M hidden units, the map from local tensors to the full
// model (for checkpoints, model files and checksums), sharded initialisation identical to one rank's,
// the forward allreduce of partial logits and the gradient sum of replicated layers.
#include "mimic/parallel/sharded_model.hpp"

#include "mimic/core/rng.hpp"
#include "mimic/nn/layer.hpp"
#include "mimic/nn/spec.hpp"
#include "mimic/parallel/reduce.hpp"

#include <cmath>
#include <sstream>

namespace mimic::par {

std::int64_t TensorShard::global_index(std::int64_t e) const {
    if (axis < 0) return full_offset + e;
    const std::int64_t cols = full_shape.size() > 1 ? full_shape[1] : 1;
    if (axis == 0) return full_offset + begin * cols + e;
    // axis 1: local [rows, len] inside full [rows, cols]
    return full_offset + (e / len) * cols + begin + e % len;
}

void TensorShard::flat_selection(std::uint64_t sel[4]) const {
    const std::int64_t cols = full_shape.size() > 1 ? full_shape[1] : 1;
    if (axis == 1) {
        sel[0] = std::uint64_t(full_offset + begin);
        sel[1] = std::uint64_t(cols);
        sel[2] = std::uint64_t(full_shape[0]);
        sel[3] = std::uint64_t(len);
    } else {
        sel[0] = std::uint64_t(axis == 0 ? full_offset + begin * cols : full_offset);
        sel[1] = 1;
        sel[2] = 1;
        sel[3] = std::uint64_t(local_size);
    }
}

namespace {

struct WidePair {
    int wide = -1, out = -1;
    std::int64_t hidden = 0;
};

/// Finds dense:H, [activation,] dense:C as the last parameterised layers.
WidePair find_wide_pair(const std::vector<nn::LayerSpec>& layers) {
    WidePair p;
    std::vector<int> param_layers;
    for (int i = 0; i < int(layers.size()); ++i) {
        const auto k = layers[size_t(i)].kind;
        if (k == nn::LayerKind::Dense || k == nn::LayerKind::Bottleneck || k == nn::LayerKind::Conv)
            param_layers.push_back(i);
    }
    if (param_layers.size() < 2) return p;
    const int out = param_layers.back(), wide = param_layers[param_layers.size() - 2];
    if (out != int(layers.size()) - 1) return p;
    if (layers[size_t(out)].kind != nn::LayerKind::Dense || layers[size_t(wide)].kind != nn::LayerKind::Dense)
        return p;
    for (int i = wide + 1; i < out; ++i) {
        const auto k = layers[size_t(i)].kind;
        const bool elementwise =
            k == nn::LayerKind::ReLU || k == nn::LayerKind::Sigmoid || k == nn::LayerKind::Tanh ||
            k == nn::LayerKind::ReLU6 || k == nn::LayerKind::SiLU || k == nn::LayerKind::HardSwish ||
            k == nn::LayerKind::HardSigmoid || k == nn::LayerKind::LeakyReLU || k == nn::LayerKind::ELU ||
            k == nn::LayerKind::GELU || k == nn::LayerKind::Softplus;
        if (!elementwise) return p;
    }
    p.wide = wide;
    p.out = out;
    p.hidden = layers[size_t(wide)].units;
    return p;
}

std::string local_spec(const std::string& spec, const Comm& comm) {
    if (comm.size() == 1) return spec;
    const auto layers = nn::parse_spec(spec);
    const auto p = find_wide_pair(layers);
    if (p.wide < 0)
        fail("--model-shards ", comm.size(), ": the spec '", spec,
             "' must end in a wide pair dense:H,[activation,]dense:C to be split over ranks (activation: "
             "relu, "
             "relu6, sigmoid, silu, hardswish, hardsigmoid, leakyrelu, elu, gelu or tanh)");
    if (p.hidden < comm.size())
        fail("--model-shards ", comm.size(), ": more model-parallel ranks than the wide layer's ", p.hidden,
             " units allow");
    const auto r = split_range(p.hidden, comm.size(), comm.rank());
    std::string out;
    for (size_t i = 0; i < layers.size(); ++i) {
        out += i ? "," : "";
        out += int(i) == p.wide ? "dense:" + std::to_string(r.size()) : layers[i].token;
    }
    return out;
}

} // namespace

ShardedModel::ShardedModel(const std::string& spec, nn::Shape input, const Comm& model_comm)
    : spec_(spec), comm_(&model_comm), local_(local_spec(spec, model_comm), input) {
    const auto layers = nn::parse_spec(spec);
    const auto p = find_wide_pair(layers);
    if (model_comm.size() > 1) {
        wide_ = p.wide;
        out_ = p.out;
        hidden_ = p.hidden;
        const auto r = split_range(hidden_, model_comm.size(), model_comm.rank());
        col_begin_ = r.begin;
        cols_ = r.size();
    } else if (p.wide >= 0) {
        hidden_ = p.hidden;
    }
    std::int64_t full_off = 0;
    replicated_prefix_ = -1;
    for (const auto& t : local_.param_tensors()) {
        TensorShard s;
        s.name = t.name;
        s.full_shape = t.shape;
        s.local_offset = t.offset;
        s.local_size = t.size;
        const std::string w = "layer" + std::to_string(wide_) + ".", o = "layer" + std::to_string(out_) + ".";
        if (wide_ >= 0 && t.name.rfind(w, 0) == 0) {
            // W [in, H] split by columns; b [H] split.
            s.axis = t.shape.size() == 2 ? 1 : 0;
            s.full_shape.back() = hidden_;
            s.begin = col_begin_;
            s.len = cols_;
            if (replicated_prefix_ < 0) replicated_prefix_ = t.offset;
        } else if (out_ >= 0 && t.name.rfind(o, 0) == 0) {
            if (t.shape.size() == 2) { // W [H, C] split by rows
                s.axis = 0;
                s.full_shape[0] = hidden_;
                s.begin = col_begin_;
                s.len = cols_;
            } else { // b [C]: only shard 0's copy is live
                s.owned = model_comm.rank() == 0;
            }
        }
        s.full_offset = full_off;
        std::int64_t full_size = 1;
        for (auto d : s.full_shape)
            full_size *= d;
        full_off += full_size;
        tensors_.push_back(s);
    }
    full_params_ = full_off;
    if (replicated_prefix_ < 0) replicated_prefix_ = local_.num_params();
}

void ShardedModel::init(std::uint64_t seed) {
    local_.init(seed);
    if (wide_ < 0) return;
    // Re-draw the two sharded weight matrices with their whole-model element indices and fans.
    for (const auto& t : tensors_) {
        if (t.axis < 0 || t.full_shape.size() != 2) continue;
        const int li = t.name.rfind("layer" + std::to_string(wide_) + ".", 0) == 0 ? wide_ : out_;
        const nn::WeightSlice slice{t.axis, t.begin, t.len, t.full_shape[1]};
        nn::init_weights(UnmanagedVector(local_.params().data() + t.local_offset, size_t(t.local_size)),
                         t.full_shape[0], t.full_shape[1], local_.he_init(size_t(li)),
                         derive_seed(seed, std::uint64_t(li)), slice);
    }
    Kokkos::fence();
}

} // namespace mimic::par

namespace mimic::par {

template <class F>
void ShardedModel::timed(F&& communicate) {
    if (!timers_) return communicate();
    ScopedPhase phase(*timers_, "shard-allreduce", "parallel::shard_allreduce");
    communicate();
}

Matrix ShardedModel::forward(const Matrix& x, bool train, std::uint64_t dropout_seed,
                             std::int64_t row_offset) {
    Matrix z = local_.forward(x, train, dropout_seed, row_offset);
    if (comm_->size() == 1) return z;
    if (z_.extent(0) != z.extent(0) || z_.extent(1) != z.extent(1))
        z_ = Matrix(Kokkos::view_alloc(Kokkos::WithoutInitializing, "mimic::parallel::logits"), z.extent(0),
                    z.extent(1));
    Kokkos::deep_copy(z_, z);
    // partial logits of each shard's hidden units (+ the bias on shard 0)
    timed([&] { allreduce_sum(z_, *comm_); });
    return z_;
}

void ShardedModel::backward(const Matrix& dlogits) {
    accumulate_grads(dlogits);
    finish_grads();
}

void ShardedModel::accumulate_grads(const Matrix& dlogits, BucketedAllreduce* replicas) {
    if (!replicas) return local_.backward(dlogits);
    // Layers before the wide pair are summed over the model group first (finish_grads).
    const std::int64_t model_summed = comm_->size() > 1 ? replicated_prefix_ : 0;
    local_.backward(dlogits, [&](std::int64_t begin, std::int64_t end) {
        if (begin < model_summed) return;
        zero_unowned(begin, end); // before the bucket is in flight
        replicas->ready(begin);
    });
}

void ShardedModel::finish_grads(BucketedAllreduce* replicas) {
    if (comm_->size() > 1) {
        // Layers before the wide pair are replicated and feed every shard: their gradients add up.
        if (replicated_prefix_ > 0)
            timed([&] { allreduce_sum(local_.grads(), *comm_, 0, replicated_prefix_); });
        if (!replicas) zero_unowned(0, local_.num_params());
    }
    if (replicas) replicas->ready(0);
}

void ShardedModel::zero_unowned(std::int64_t begin, std::int64_t end) {
    for (const auto& t : tensors_)
        if (!t.owned && t.local_offset >= begin && t.local_offset < end)
            Kokkos::deep_copy(Kokkos::subview(local_.grads(),
                                              std::make_pair(t.local_offset, t.local_offset + t.local_size)),
                              0.0f);
}

std::unique_ptr<BucketedAllreduce> ShardedModel::replica_reducer(const Comm& replicas,
                                                                 std::int64_t bucket_floats) const {
    std::vector<std::int64_t> cuts;
    for (std::size_t i = 0; i < local_.num_layers(); ++i)
        cuts.push_back(local_.param_range(i).first);
    const std::vector<std::int64_t> forced = {comm_->size() > 1 ? replicated_prefix_ : 0};
    return std::make_unique<BucketedAllreduce>(replicas, local_.num_params(), cuts, forced, bucket_floats);
}

std::string ShardedModel::describe() const {
    std::ostringstream os;
    if (comm_->size() == 1 || wide_ < 0) {
        os << "unsharded, " << full_params_ << " parameters";
    } else {
        os << "wide layer " << wide_ << " (" << hidden_ << " units) split over " << comm_->size()
           << " model shards: " << cols_ << " units and " << local_.num_params() << " of " << full_params_
           << " parameters on this rank";
    }
    return os.str();
}

} // namespace mimic::par
