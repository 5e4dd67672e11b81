// Layer normalisation over the channels at each position (C x H x W input: PyTorch's LayerNorm over the last
// axis of a channels-last tensor, as ConvNeXt's LayerNorm2d) or over the features (flat input: LayerNorm(D)).
#pragma once

#include "mimic/nn/layer.hpp"
#include "mimic/nn/layers/batchnorm.hpp" // DoubleVector and the per-channel totals

namespace mimic::nn {

/// y[b, c, p] = (x[b, c, p] - mean) * rstd * gamma[c] + beta[c], with mean and rstd = 1 / sqrt(var + eps)
/// over the C values of (b, p) (biased variance, in double), saved into mean[b HW + p] and rstd[b HW + p].
/// x is [B, C * HW]. One thread per (row, position).
void layernorm_forward(const Matrix& x, int C, int HW, double eps, const UnmanagedVector& gamma,
                       const UnmanagedVector& beta, const Vector& mean, const Vector& rstd, const Matrix& y);
/// dx = rstd * (g - mean_c(g) - xhat * mean_c(g * xhat)), g = dy * gamma[c], xhat = (x - mean) * rstd, over
/// the C values of each (row, position). One thread per (row, position).
void layernorm_dx(const Matrix& x, const Matrix& dy, int C, int HW, const UnmanagedVector& gamma,
                  const Vector& mean, const Vector& rstd, const Matrix& dx);
/// dgamma[c] += sum of dy * xhat, dbeta[c] += sum of dy over the rows and positions: per (row, channel)
/// plane sums in double into planes [2 B C], then per channel in row order into sums [2 C] (batch
/// normalisation's batchnorm_plane_totals and batchnorm_param_grads: a fixed summation order).
void layernorm_param_grads(const Matrix& x, const Matrix& dy, int C, int HW, const Vector& mean,
                           const Vector& rstd, const DoubleVector& planes, const DoubleVector& sums,
                           const UnmanagedVector& dgamma, const UnmanagedVector& dbeta);

/// ln / ln:E: y = gamma[c] * (x - mean) / sqrt(var + E) + beta[c], mean and var over the channels of one
/// position (E default 1e-5, PyTorch's; ConvNeXt uses 1e-6). No batch statistics: training and inference
/// compute the same thing.
class LayerNorm : public Layer {
public:
    LayerNorm(int index, std::string token, Shape in, double eps);
    const char* kind() const override { return "ln"; }
    std::vector<ParamDecl> param_decls() const override { return {{"W", {C_}}, {"b", {C_}}}; }
    void bind(const std::vector<UnmanagedVector>& params, const std::vector<UnmanagedVector>& grads) override;
    void init(std::uint64_t seed, bool he) override;
    void forward(const Matrix& x, const Matrix& y, const ForwardContext& ctx) override;
    void backward(const Matrix& x, const Matrix& y, const Matrix& dy, const Matrix& dx) override;

private:
    int C_, HW_;
    double eps_;
    UnmanagedVector gamma_, beta_, dgamma_, dbeta_;
    Vector mean_, rstd_; ///< of the last forward, one per (row, position)
    DoubleVector planes_, sums_;
};

} // namespace mimic::nn
