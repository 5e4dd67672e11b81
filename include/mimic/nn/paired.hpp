// A paired comparison of two classifiers on the same labelled rows: the rows only one of them gets right
// (McNemar's discordant pairs), the accuracy margin with its 95% interval, and McNemar's exact test.
#pragma once

#include <cstdint>

namespace mimic::nn {

struct PairedCounts {
    std::int64_t n = 0;      ///< rows compared
    std::int64_t both = 0;   ///< rows both models get right
    std::int64_t only_a = 0; ///< rows model A gets right and model B wrong
    std::int64_t only_b = 0; ///< rows model B gets right and model A wrong

    /// Adds one row: whether A and B predict its label.
    void add(bool a_right, bool b_right);
    /// Accuracy of A minus accuracy of B, as a fraction of the rows.
    double margin() const;
    /// Half-width of the 95% interval of the margin: 1.96 standard errors of the mean of the paired
    /// per-row differences (+1, 0, -1), sqrt(only_a + only_b - (only_a - only_b)^2 / n) / n.
    double half_width() const;
    /// Two-sided p-value of McNemar's exact test: the discordant rows split as a fair coin would.
    double p_value() const;
    /// True when the 95% interval of the margin contains 0.
    bool within_noise() const;
};

} // namespace mimic::nn
