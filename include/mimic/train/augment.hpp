// Training-time augmentation of labelled batches (--augment-shift, --augment-flip): each row's translation
// and mirror drawn from (seed, epoch, row) and applied on the device by the transfer builder's kernel.
#pragma once

#include "mimic/core/kokkos.hpp"
#include "mimic/nn/shape.hpp"
#include "mimic/transfer/generate.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace mimic::train {

struct AugmentOptions {
    int shift = 0;     ///< random translation by up to this many pixels each way (pad with raw zeros, crop)
    bool flip = false; ///< horizontal flip with probability 1/2
    bool active() const { return shift > 0 || flip; }
};

/// The choices of dataset row `row` in epoch `epoch` (0-based): a function of (seed, epoch, row) only, so
/// they do not depend on the rank count, the batch split or a resume. gen = augment, a = 0.
transfer::RowSpec augment_choice(const AugmentOptions& a, std::uint64_t seed, int epoch, std::int64_t row);

/// Refuses augmentation (when active) of flat rows (c = 1 and h = 1: no image to move) and a shift of the
/// whole width or height or more, naming the option and `source`.
void check_augment_shape(const AugmentOptions& a, const nn::Shape& shape, const std::string& source);

/// Augments the rows of one rank's batch in place. The padding and the per-feature normalisation are the
/// transfer builder's (transfer::generate_rows): an uncovered pixel is a raw zero, -mean / std.
class BatchAugmenter {
public:
    /// `source` names the data in errors (check_augment_shape).
    BatchAugmenter(const AugmentOptions& a, const nn::Shape& shape, const std::vector<float>& mean,
                   const std::vector<float>& stdev, std::int64_t max_rows, const std::string& source);
    /// x(i, :) for i < rows.size() is dataset row rows[i], augmented for `epoch`.
    void apply(const Matrix& x, const std::vector<std::int64_t>& rows, std::uint64_t seed, int epoch);

private:
    AugmentOptions a_;
    transfer::GenerateParams gp_;
    Vector mean_, stdev_;
    transfer::RowSpecs spec_;
    transfer::RowSpecs::HostMirror spec_h_;
    Matrix out_;
};

} // namespace mimic::train
