// Bootstrap resampling of a training source: reads the base once in blocks, then serves rows drawn
// with replacement by a counter-based generator, so every rank and rank count sees the same sample.
#include "mimic/train/bootstrap.hpp"

#include "mimic/core/rng.hpp"
#include "mimic/io/dataset.hpp"

#include <cstring>

namespace mimic::train {

BootstrapSource::BootstrapSource(TrainSource& base, std::uint64_t seed)
    : n_(base.rows()), d_(base.features()), shape_(base.shape()), has_labels_(base.has_labels()) {
    X_.resize(size_t(n_ * d_));
    if (has_labels_) y_.resize(static_cast<size_t>(n_));
    const std::int64_t block = 8192;
    for (std::int64_t b = 0; b < n_; b += block) {
        const std::int64_t cnt = std::min(block, n_ - b);
        base.read(b, cnt, X_.data() + b * d_, has_labels_ ? y_.data() + b : nullptr);
    }
    index_.resize(static_cast<size_t>(n_));
    const std::uint64_t key = derive_seed(seed, 0xB0075);
    for (std::int64_t i = 0; i < n_; ++i)
        index_[size_t(i)] = std::int64_t(CounterRng(key, std::uint64_t(i)).below(std::uint64_t(n_)));
    fingerprint_ = base.fingerprint() + "+bootstrap:" + io::hex64(seed);
    description_ = base.describe() + " (bootstrap sample, seed " + std::to_string(seed) + ")";
}

void BootstrapSource::read(std::int64_t begin, std::int64_t count, float* x, int* y) {
    MIMIC_REQUIRE(begin >= 0 && begin + count <= n_, "bootstrap: rows [", begin, ", ", begin + count,
                  ") outside the sample of ", n_);
    for (std::int64_t i = 0; i < count; ++i) {
        const std::int64_t r = index_[size_t(begin + i)];
        std::memcpy(x + i * d_, X_.data() + r * d_, size_t(d_) * sizeof(float));
        if (y && has_labels_) y[i] = y_[size_t(r)];
    }
}

} // namespace mimic::train
