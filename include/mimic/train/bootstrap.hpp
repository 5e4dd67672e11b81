// A bootstrap sample of a training source: N rows drawn with replacement (row i of the sample is source
// row h(seed, i) mod N), for ensemble members trained on different resamplings of the data.
#pragma once

#include "mimic/train/batches.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace mimic::train {

using nn::Model;
using nn::Shape;

/// Holds the source's rows in memory (read once, collectively) and serves the resampled rows; meant for
/// training sets that fit in a rank's memory, as the teachers' training sets do.
class BootstrapSource final : public TrainSource {
public:
    BootstrapSource(TrainSource& base, std::uint64_t seed);
    std::int64_t rows() const override { return n_; }
    Shape shape() const override { return shape_; }
    bool has_labels() const override { return has_labels_; }
    std::string fingerprint() const override { return fingerprint_; }
    std::string describe() const override { return description_; }
    void read(std::int64_t begin, std::int64_t count, float* x, int* y) override;
    /// Source row behind sample row i.
    std::int64_t source_row(std::int64_t i) const { return index_[size_t(i)]; }

private:
    std::int64_t n_ = 0, d_ = 0;
    Shape shape_;
    bool has_labels_ = false;
    std::string fingerprint_, description_;
    std::vector<float> X_;
    std::vector<int> y_;
    std::vector<std::int64_t> index_;
};

} // namespace mimic::train
