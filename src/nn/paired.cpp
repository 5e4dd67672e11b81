// The paired comparison's arithmetic: the margin, its normal-approximation interval over rows, and the
// exact binomial tail of McNemar's test computed in log space.
#include "mimic/nn/paired.hpp"

#include <algorithm>
#include <cmath>

namespace mimic::nn {

void PairedCounts::add(bool a_right, bool b_right) {
    ++n;
    both += a_right && b_right;
    only_a += a_right && !b_right;
    only_b += b_right && !a_right;
}

double PairedCounts::margin() const {
    return n ? double(only_a - only_b) / double(n) : 0.0;
}

double PairedCounts::half_width() const {
    if (n == 0) return 0.0;
    const double d = double(only_a - only_b);
    const double var_sum = double(only_a + only_b) - d * d / double(n); // sum of squared deviations
    return 1.96 * std::sqrt(std::max(0.0, var_sum)) / double(n);
}

double PairedCounts::p_value() const {
    const std::int64_t m = only_a + only_b, k = std::min(only_a, only_b);
    if (m == 0) return 1.0;
    // P(X <= k) for X ~ Binomial(m, 1/2), summed in log space; two-sided = twice the smaller tail.
    const double log_half_m = double(m) * std::log(0.5);
    double tail = 0.0;
    for (std::int64_t i = 0; i <= k; ++i)
        tail += std::exp(std::lgamma(double(m) + 1) - std::lgamma(double(i) + 1) -
                         std::lgamma(double(m - i) + 1) + log_half_m);
    return std::min(1.0, 2.0 * tail);
}

bool PairedCounts::within_noise() const {
    return std::abs(margin()) <= half_width();
}

} // namespace mimic::nn
