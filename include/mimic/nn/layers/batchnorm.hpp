// Batch normalisation over channels (C x H x W input: statistics over the batch and the plane) or features
// (flat input): batch statistics summed over the data replicas in training, running statistics at inference.
#pragma once

#include "mimic/nn/layer.hpp"

namespace mimic::nn {

using DoubleVector = Kokkos::View<double*, Kokkos::LayoutRight, MemSpace>;

/// sums[c] = sum of x over the rows and the plane of channel c, sums[C + c] = sum of x^2 (in double).
/// x is [B, C * HW]. One thread per (row, channel) plane into planes [2 B C], then one per channel (a
/// fixed summation order).
void batchnorm_sums(const Matrix& x, int C, int HW, const DoubleVector& planes, const DoubleVector& sums);
/// sums[c] = sum over b of planes[2 (b C + c)], sums[C + c] of planes[2 (b C + c) + 1].
void batchnorm_plane_totals(const DoubleVector& planes, std::int64_t B, int C, const DoubleVector& sums);
/// y = (x - mean[c]) * scale[c] + shift[c] elementwise (scale = gamma / std), then rectified when `relu`
/// (as relu_forward). One thread per (row, channel) plane.
void batchnorm_apply(const Matrix& x, int C, int HW, const Vector& mean, const Vector& scale,
                     const Vector& shift, const Matrix& y, bool relu = false);
/// sums[c] = sum of g, sums[C + c] = sum of g * (x - mean[c]) * invstd[c] over the rows and the plane, with
/// g = dy, or (a ReLU fused into the bn: y its output, x's shape) g = y > 0 ? dy : 0 as relu_backward.
void batchnorm_grad_sums(const Matrix& x, const Matrix& dy, const Matrix& y, int C, int HW,
                         const Vector& mean, const Vector& invstd, const DoubleVector& planes,
                         const DoubleVector& sums);
/// dx = scale[c] * (g - a[c] - xhat * b[c]), xhat = (x - mean[c]) * invstd[c], g as batchnorm_grad_sums
/// (y empty: dy); a = b = 0 at inference. One thread per (row, channel) plane.
void batchnorm_dx(const Matrix& x, const Matrix& dy, const Matrix& y, int C, int HW, const Vector& mean,
                  const Vector& invstd, const Vector& scale, const Vector& a, const Vector& b,
                  const Matrix& dx);
/// scale[c] = gamma[c] * invstd[c].
void batchnorm_scale(const UnmanagedVector& gamma, const Vector& invstd, const Vector& scale);
/// dgamma[c] += sums[C + c], dbeta[c] += sums[c].
void batchnorm_param_grads(const DoubleVector& sums, const UnmanagedVector& dgamma,
                           const UnmanagedVector& dbeta);

/// bn: y = gamma * (x - mean) / sqrt(var + eps) + beta per channel (PyTorch's BatchNorm1d/2d, eps 1e-5,
/// momentum 0.1). Training normalises with the batch's mean and biased variance, summed over the data
/// replicas through the ForwardContext's StatReducer, and moves the running mean and unbiased variance
/// towards them; inference uses the running statistics.
class BatchNorm : public Layer {
public:
    static constexpr double kEps = 1e-5, kMomentum = 0.1;
    BatchNorm(int index, std::string token, Shape in);
    const char* kind() const override { return "bn"; }
    std::vector<ParamDecl> param_decls() const override { return {{"W", {C_}}, {"b", {C_}}}; }
    std::vector<ParamDecl> state_decls() const override {
        return {{"running_mean", {C_}}, {"running_var", {C_}}};
    }
    void bind(const std::vector<UnmanagedVector>& params, const std::vector<UnmanagedVector>& grads) override;
    void bind_state(const std::vector<UnmanagedVector>& state) override;
    void init(std::uint64_t seed, bool he) override;
    bool uses_batch_stats() const override { return true; }
    void idle_pass(bool forward, const StatReducer* reduce) override;
    void forward(const Matrix& x, const Matrix& y, const ForwardContext& ctx) override;
    void backward(const Matrix& x, const Matrix& y, const Matrix& dy, const Matrix& dx) override;
    /// Applies the ReLU that follows (which then aliases this layer's output) in forward, and its gradient
    /// in backward: one pass over the activations less each way, the same values.
    void fuse_relu() { relu_ = true; }

private:
    int C_, HW_;
    bool relu_ = false;
    UnmanagedVector gamma_, beta_, dgamma_, dbeta_, running_mean_, running_var_;
    Vector mean_, invstd_, scale_, a_, b_; ///< of the last forward (a_, b_: backward's batch terms)
    DoubleVector sums_, planes_;
    bool train_ = false; ///< the last forward normalised with batch statistics
    double count_ = 0;   ///< values per channel in the last training batch (all replicas)
    StatReducer reduce_; ///< the last forward's reducer (empty: this rank alone), for backward
    void batch_statistics(std::vector<double>& s);
    void use_running_statistics();
    DoubleVector planes(std::int64_t rows); ///< the per-plane workspace, grown to `rows` rows
};

} // namespace mimic::nn
