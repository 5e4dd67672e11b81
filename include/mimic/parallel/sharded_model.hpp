// The model-parallel student: the wide pair dense:H, act, dense:C at the end of a spec is split over the
// M ranks of a model group (first Dense by output columns, second by input rows), so a forward pass
// needs one allreduce of the B x C partial logits and the backward pass none for that pair.
#pragma once

#include "mimic/core/comm.hpp"
#include "mimic/core/timer.hpp"
#include "mimic/nn/model.hpp"
#include "mimic/parallel/bucket_reduce.hpp"

#include <cstdint>
#include <memory>
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
    /// must end in dense:H, [activation,] dense:C with H >= M (an elementwise activation: relu, relu6,
    /// sigmoid, silu, hardswish, hardsigmoid, leakyrelu, elu, gelu or tanh); anything else is a clear error.
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
    /// Local gradients from dL/dlogits; replicated tensors' gradients are summed over the model group
    /// (accumulate_grads then finish_grads).
    void backward(const Matrix& dlogits);
    /// Adds the local gradients of one micro-batch (dL/dlogits of the last forward) to local().grads().
    /// For the step's last micro-batch, `replicas` (optional, started on grads()) receives each layer's
    /// gradients as backward completes them, so their sum over the data replicas overlaps the rest of the
    /// backward pass; the layers also summed over the model group wait for finish_grads().
    void accumulate_grads(const Matrix& dlogits, BucketedAllreduce* replicas = nullptr);
    /// Collective over the model group: sums the replicated tensors' gradients over the shards and zeroes
    /// the copies that stay zero (the output bias off shard 0); then hands `replicas` the rest of the
    /// buffer (wait with replicas->finish()). Once per optimizer step, after the last micro-batch.
    void finish_grads(BucketedAllreduce* replicas = nullptr);
    /// The reduction of local().grads() over the data replicas, bucketed at this shard's layer boundaries
    /// (and at the end of the layers summed over the model group).
    std::unique_ptr<BucketedAllreduce> replica_reducer(const Comm& replicas,
                                                       std::int64_t bucket_floats) const;
    void zero_grads() { local_.zero_grads(); }
    /// Times the model group's communication (the logits allreduce, the replicated layers' gradient sum)
    /// into phase "shard-allreduce" of `timers` (nullptr: untimed). It includes waiting for the other shards.
    void time_into(PhaseTimers* timers) { timers_ = timers; }
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
    PhaseTimers* timers_ = nullptr;
    void zero_unowned(std::int64_t begin, std::int64_t end);
    template <class F>
    void timed(F&& communicate);
};

} // namespace mimic::par
