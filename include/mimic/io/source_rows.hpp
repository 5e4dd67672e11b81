// The rows `mimic data import` converts: an array source seen as N images (C, H, W) read in blocks as
// double in C, H, W order (rank 2 flat, rank 3 one channel, rank 4 by layout), and its class labels.
#pragma once

#include "mimic/io/array_source.hpp"
#include "mimic/io/dataset.hpp"

namespace mimic::io {

class ImageRows {
public:
    /// layout: "nhwc", "nchw" or "" (rank-4 arrays whose format does not fix it need one). Rank 1 and
    /// ranks above 4 are refused naming the source.
    ImageRows(std::unique_ptr<ArraySource> src, const std::string& layout);
    const ArraySource& source() const { return *src_; }
    const std::string& name() const { return src_->name(); }
    std::int64_t rows() const { return src_->rows(); }
    std::int64_t d() const { return std::int64_t(c_) * h_ * w_; }
    int c() const { return c_; }
    int h() const { return h_; }
    int w() const { return w_; }
    /// The scale applied to raw values before normalising: 1/255 for uint8 sources, 1 otherwise.
    double scale() const;
    /// Rows [begin, begin + count) into out (count * d() values, C, H, W order). A NaN or infinite value
    /// is refused naming the source, row and feature.
    void read(std::int64_t begin, std::int64_t count, double* out) const;
    /// Rows [begin, begin + count) of an 8-bit source (elem() u8) as they are, count * d() bytes in
    /// C, H, W order, into out: no conversion (nchw rows are read straight into out).
    void read_pixels(std::int64_t begin, std::int64_t count, std::uint8_t* out) const;
    /// Rows [begin, begin + count) of an 8-bit source in the source's own element order (H, W, C for nhwc
    /// rows), count * d() bytes into out: no transpose.
    void read_source_pixels(std::int64_t begin, std::int64_t count, std::uint8_t* out) const;
    /// The C, H, W feature index of element i (< d()) of a row in the source's own order.
    std::int64_t chw_index(std::int64_t i) const;

private:
    /// Rows [begin, begin + count) as raw elements in C, H, W order: raw_ (or tmp_ when transposed).
    const unsigned char* read_chw(std::int64_t begin, std::int64_t count) const;
    std::unique_ptr<ArraySource> src_;
    int c_ = 1, h_ = 1, w_ = 1;
    bool nhwc_ = false;
    mutable std::vector<unsigned char> raw_;
    mutable std::vector<unsigned char> tmp_; ///< nhwc rows transposed to C, H, W (raw elements)
};

/// Class labels of N rows: from the images' own source (CIFAR, image folders) or from a 1-D integer array
/// (or N x 1). Negative, non-integer and out-of-int32-range labels are refused naming the row.
class LabelRows {
public:
    /// Labels carried by `images`.
    explicit LabelRows(const ArraySource& images);
    /// Labels in their own array source.
    explicit LabelRows(std::unique_ptr<ArraySource> labels);
    const std::string& name() const { return src_->name(); }
    std::int64_t rows() const { return src_->rows(); }
    void read(std::int64_t begin, std::int64_t count, int* y) const;

private:
    std::unique_ptr<ArraySource> owned_;
    const ArraySource* src_ = nullptr;
    bool own_labels_ = false; ///< read_labels() of an image source, not an array
};

/// The normalisation of a dataset file (its attributes and /norm vectors), read by this rank alone, for rows
/// imported with a training file's statistics (--norm-from). A file whose (C, H, W) differs from the rows'
/// is refused naming both.
struct Normalization {
    DatasetMeta meta;
    std::vector<float> mean, stdev;
};
Normalization read_normalization_for(const std::string& path, const ImageRows& rows);

} // namespace mimic::io
