// SGD with optional (Nesterov) momentum and L2-coupled weight decay, PyTorch's torch.optim.SGD rule:
// g = grad + wd*p; buf = mu*buf + g; d = nesterov ? g + mu*buf : buf; p -= lr*d.
#pragma once

#include "mimic/nn/optim/optimizer.hpp"

namespace mimic::nn::optim {

class Sgd final : public Optimizer {
public:
    /// momentum 0 means plain SGD (no state); nesterov needs momentum > 0.
    Sgd(std::int64_t num_params, double momentum, double weight_decay, bool nesterov);
    std::string kind() const override { return nesterov_ ? "nesterov" : "sgd"; }
    std::string describe() const override;
    /// The fused update kernel (public: nvcc's extended lambdas need a public enclosing function).
    void update(const Vector& params, const Vector& grads, float lr, std::int64_t t, std::int64_t begin,
                std::int64_t end) override;

private:
    float momentum_, weight_decay_;
    bool nesterov_;
    Vector buf_;
};

} // namespace mimic::nn::optim
