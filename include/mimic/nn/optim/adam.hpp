// Adam (Kingma & Ba) with bias correction, and AdamW (Loshchilov & Hutter) with decoupled weight
// decay p *= 1 - lr*wd; the same arithmetic as PyTorch's torch.optim.Adam / AdamW.
#pragma once

#include "mimic/nn/optim/optimizer.hpp"

namespace mimic::nn::optim {

class Adam final : public Optimizer {
public:
    /// decoupled = false: Adam with L2 weight decay added to the gradient; true: AdamW.
    Adam(std::int64_t num_params, double beta1, double beta2, double eps, double weight_decay,
         bool decoupled);
    std::string kind() const override { return decoupled_ ? "adamw" : "adam"; }
    std::string describe() const override;
    /// The fused update kernel (public: nvcc's extended lambdas need a public enclosing function).
    void update(const Vector& params, const Vector& grads, float lr, std::int64_t t, std::int64_t begin,
                std::int64_t end) override;

private:
    double beta1_, beta2_;
    float eps_, weight_decay_;
    bool decoupled_;
    Vector m_, v_;
};

} // namespace mimic::nn::optim
