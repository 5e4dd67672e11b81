// Fully connected layer y = x·W + b (W stored [in, out] row-major) and its bias-free variant, with the
// forward/backward kernels as free functions so that a model-parallel shard can run them on its slice.
#pragma once

#include "mimic/nn/layer.hpp"

namespace mimic::nn {

/// y = x·W (+ b when b is non-empty). x [B, in], W [in, out], y [B, out]; y is overwritten.
void dense_forward(const Matrix& x, const UnmanagedMatrix& W, const UnmanagedVector& b, const Matrix& y);

/// Accumulates dW += x^T·dy and db += colsum(dy) (db may be empty), and writes dx = dy·W^T when
/// dx.extent(0) > 0.
void dense_backward(const Matrix& x, const UnmanagedMatrix& W, const Matrix& dy, const UnmanagedMatrix& dW,
                    const UnmanagedVector& db, const Matrix& dx);

/// dense:N (with bias) and bottleneck:K (no bias, no activation: Ba & Caruana's linear bottleneck
/// W = U·V, where U is this layer's W and V the next dense layer's W).
///
/// Model parallelism (par::ShardedModel, used by `mimic distill --model-shards M`): a wide pair
/// x -> dense:H -> act -> dense:C is split over M ranks by giving rank j its own contiguous copies of
/// W1[:, cols_j] ([in, H/M]) with b1[cols_j], and W2[rows_j, :] ([H/M, C], a contiguous row block of
/// W2). dense_forward on those slices (the output bias on shard 0 only) yields a partial z_j; one
/// allreduce of the [B, C] partial sums gives z. dense_backward on the same slices gives the local
/// dW1_j, db1_j, dW2_j with no further communication.
class Dense : public Layer {
public:
    Dense(int index, std::string token, Shape in, int units, bool bias);

    const char* kind() const override { return bias_ ? "dense" : "bottleneck"; }
    std::vector<ParamDecl> param_decls() const override;
    void bind(const std::vector<UnmanagedVector>& params, const std::vector<UnmanagedVector>& grads) override;
    void init(std::uint64_t seed, bool he) override;
    void forward(const Matrix& x, const Matrix& y, const ForwardContext& ctx) override;
    void backward(const Matrix& x, const Matrix& y, const Matrix& dy, const Matrix& dx) override;
    double flops_per_sample() const override { return 2.0 * double(in_.size()) * double(units_); }

    bool has_bias() const { return bias_; }
    UnmanagedMatrix weights() const { return W_; }
    UnmanagedVector bias() const { return b_; }

private:
    int units_;
    bool bias_;
    UnmanagedMatrix W_, dW_;
    UnmanagedVector b_, db_;
};

} // namespace mimic::nn
