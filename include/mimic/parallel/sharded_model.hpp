// The model-parallel student: the wide pair dense:H, act, dense:C at the end of a spec is split over the
// M ranks of a model group (first Dense by output columns, second by input rows), so a forward pass
// needs one allreduce of the B x C partial logits and the backward pass none for that pair.
#pragma once

#include "mimic/core/comm.hpp"
#include "mimic/nn/model.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace mimic::par {

/// Where a local parameter tensor sits in the full (unsharded) model.
struct TensorShard {
    std::string name;                     ///< "layer3.dense.W", as in the full model
    std::vector<std::int64_t> full_shape; ///< shape in the full model
    std::int64_t full_offset = 0;         ///< first element in the full flat buffer
    std::int64_t local_offset = 0;        ///< first element in this rank's flat buffer
    std::int64_t local_size = 0;          ///< elements held here
    int axis = -1;                        ///< -1: whole tensor; 0: rows [begin, begin+len); 1: columns
    std::int64_t begin = 0, len = 0;      ///< the slice along `axis`
    bool owned = true; ///< false: a copy that stays zero here (the output bias off shard 0)

    /// Index in the full flat buffer of local element e of this tensor.
    std::int64_t global_index(std::int64_t e) const;
    /// The selection of this shard in the full 1-D flat buffer: start, stride, count, block.
    void flat_selection(std::uint64_t sel[4]) const;
};

class ShardedModel {
public:
    /// Builds this rank's part of `spec` for a model group `model_comm` of M ranks. With M > 1 the spec
    /// must end in dense:H, [relu|sigmoid|tanh,] dense:C with H >= M; anything else is a clear error.
    ShardedModel(const std::string& spec, nn::Shape input, const Comm& model_comm);

    nn::Model& local() { return local_; }
    const nn::Model& local() const { return local_; }
    const std::string& spec() const { return spec_; }
    int shards() const { return comm_->size(); }
    int shard() const { return comm_->rank(); }
    /// Units of the wide layer (0 when the spec has no wide pair).
    std::int64_t hidden() const { return hidden_; }
    std::int64_t full_num_params() const { return full_params_; }
    const std::vector<TensorShard>& tensors() const { return tensors_; }
    /// Local elements [0, replicated_prefix()) are replicated tensors whose gradients sum over shards.
    std::int64_t replicated_prefix() const { return replicated_prefix_; }

    /// Initialises exactly as nn::Model(spec).init(seed) would on one rank, slice by slice.
    void init(std::uint64_t seed);
    /// Full logits [B, C] on every shard (one allreduce of B x C over the model group). row_offset is
    /// the position of x's first row in the global batch (dropout masks key on it).
    Matrix forward(const Matrix& x, bool train, std::uint64_t dropout_seed = 0, std::int64_t row_offset = 0);
    /// Local gradients from dL/dlogits; replicated tensors' gradients are summed over the model group.
    void backward(const Matrix& dlogits);
    void zero_grads() { local_.zero_grads(); }
    std::string describe() const;

private:
    std::string spec_;
    const Comm* comm_;
    nn::Model local_;
    std::int64_t hidden_ = 0, full_params_ = 0, replicated_prefix_ = 0;
    int wide_ = -1, out_ = -1; ///< layer indices of the sharded Dense pair
    std::int64_t col_begin_ = 0, cols_ = 0;
    std::vector<TensorShard> tensors_;
    Matrix z_;
};

} // namespace mimic::par
