// SGD / Nesterov update as one fused Kokkos kernel over the flat buffers (torch.optim.SGD semantics,
// dampening 0; a zero-initialised momentum buffer equals PyTorch's first-step clone).
#include "mimic/nn/optim/sgd.hpp"

#include <sstream>

namespace mimic::nn::optim {

Sgd::Sgd(std::int64_t num_params, double momentum, double weight_decay, bool nesterov)
    : Optimizer(num_params), momentum_(float(momentum)), weight_decay_(float(weight_decay)),
      nesterov_(nesterov) {
    if (momentum > 0) buf_ = add_buffer("momentum");
}

std::string Sgd::describe() const {
    std::ostringstream os;
    os << kind() << "(momentum=" << momentum_ << ", weight_decay=" << weight_decay_ << ")";
    return os.str();
}

void Sgd::update(const Vector& params, const Vector& grads, float lr, std::int64_t, std::int64_t begin,
                 std::int64_t end) {
    auto p = params;
    auto g = grads;
    const float wd = weight_decay_, mu = momentum_;
    if (mu == 0.0f) {
        Kokkos::parallel_for(
            "mimic::optim::sgd", RangePolicy(begin, end), KOKKOS_LAMBDA(const std::int64_t i) {
                const float d = g(i) + wd * p(i);
                p(i) -= lr * d;
            });
        return;
    }
    auto b = buf_;
    const bool nesterov = nesterov_;
    Kokkos::parallel_for(
        "mimic::optim::sgd_momentum", RangePolicy(begin, end), KOKKOS_LAMBDA(const std::int64_t i) {
            const float d = g(i) + wd * p(i);
            const float m = mu * b(i) + d;
            b(i) = m;
            p(i) -= lr * (nesterov ? d + mu * m : m);
        });
}

} // namespace mimic::nn::optim
