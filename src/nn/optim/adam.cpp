// Adam / AdamW update as one fused Kokkos kernel; bias corrections are computed in double on the host
// once per step, exactly as torch.optim.Adam does (step_size = lr / bc1, denom = sqrt(v)/sqrt(bc2) + eps).
#include "mimic/nn/optim/adam.hpp"

#include <cmath>
#include <sstream>

namespace mimic::nn::optim {

Adam::Adam(std::int64_t num_params, double beta1, double beta2, double eps, double weight_decay,
           bool decoupled)
    : Optimizer(num_params), beta1_(beta1), beta2_(beta2), eps_(float(eps)),
      weight_decay_(float(weight_decay)), decoupled_(decoupled) {
    m_ = add_buffer("m");
    v_ = add_buffer("v");
}

std::string Adam::describe() const {
    std::ostringstream os;
    os << kind() << "(beta1=" << beta1_ << ", beta2=" << beta2_ << ", eps=" << eps_
       << ", weight_decay=" << weight_decay_ << ")";
    return os.str();
}

void Adam::update(const Vector& params, const Vector& grads, float lr, std::int64_t t, std::int64_t begin,
                  std::int64_t end) {
    auto p = params;
    auto g = grads;
    auto m = m_;
    auto v = v_;
    const float b1 = float(beta1_), b2 = float(beta2_), eps = eps_;
    const float one_minus_b1 = float(1.0 - beta1_), one_minus_b2 = float(1.0 - beta2_);
    const double bc1 = 1.0 - std::pow(beta1_, double(t));
    const double bc2 = 1.0 - std::pow(beta2_, double(t));
    const float step_size = float(double(lr) / bc1);
    const float bc2_sqrt = float(std::sqrt(bc2));
    // AdamW shrinks the weights before the Adam step; Adam adds wd*p to the gradient.
    const float shrink = decoupled_ ? float(1.0 - double(lr) * double(weight_decay_)) : 1.0f;
    const float wd_grad = decoupled_ ? 0.0f : weight_decay_;
    Kokkos::parallel_for(
        "mimic::optim::adam", RangePolicy(begin, end), KOKKOS_LAMBDA(const std::int64_t i) {
            const float pi = p(i) * shrink;
            const float gi = g(i) + wd_grad * pi;
            const float mi = b1 * m(i) + one_minus_b1 * gi;
            const float vi = b2 * v(i) + one_minus_b2 * gi * gi;
            m(i) = mi;
            v(i) = vi;
            p(i) = pi - step_size * (mi / (kmath::sqrt(vi) / bc2_sqrt + eps));
        });
}

} // namespace mimic::nn::optim
