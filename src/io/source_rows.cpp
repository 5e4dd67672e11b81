// ImageRows: shape and layout decisions, block reads converted to double and transposed from H, W, C
// when the layout is nhwc; LabelRows: the label checks shared by every format.
#include "mimic/io/source_rows.hpp"

#include "mimic/core/error.hpp"
#include "mimic/core/log.hpp"
#include "mimic/io/impl/avx512.hpp"

#include <climits>
#include <cmath>
#include <cstring>

namespace mimic::io {

ImageRows::ImageRows(std::unique_ptr<ArraySource> src, const std::string& layout) : src_(std::move(src)) {
    const auto& dims = src_->dims();
    const std::string& n = src_->name();
    const std::string native = src_->native_layout();
    if (!layout.empty() && layout != "nhwc" && layout != "nchw")
        fail("--layout: '", layout, "' is not one of nhwc, nchw");
    for (auto x : dims)
        if (x > INT_MAX) fail(n, ": dimension ", x, " is too large");
    if (dims.size() == 2) {
        w_ = int(dims[1]);
    } else if (dims.size() == 3) {
        h_ = int(dims[1]), w_ = int(dims[2]);
    } else if (dims.size() == 4) {
        if (!native.empty() && !layout.empty() && layout != native)
            fail(n, ": the format stores rows as ", native, "; drop --layout ", layout);
        const std::string l = native.empty() ? layout : native;
        if (l.empty())
            fail(n, ": rows of shape (", dims[1], ", ", dims[2], ", ", dims[3],
                 ") need --layout nhwc (height, width, channels; NumPy and TensorFlow images) or nchw");
        nhwc_ = l == "nhwc";
        c_ = int(nhwc_ ? dims[3] : dims[1]), h_ = int(nhwc_ ? dims[1] : dims[2]),
        w_ = int(nhwc_ ? dims[2] : dims[3]);
    } else {
        fail(n, ": an array of rank ", dims.size(), " (shape", dims.size() ? " starting " : "",
             dims.size() ? std::to_string(dims[0]) : "", "); images need rank 2 (N, D), 3 (N, H, W) or 4");
    }
    if (d() == 0) fail(n, ": rows have no features");
    if (src_->rows() == 0) fail(n, ": holds no rows (shape starting 0); there is nothing to import");
}

double ImageRows::scale() const {
    return src_->elem() == Elem::u8 ? 1.0 / 255.0 : 1.0;
}

namespace {
/// to_chw of bytes with a channel count fixed at compile time: one pass over each row, the C planes
/// written side by side (the compiler turns the interleaved reads into vector shuffles).
template <int C>
void bytes_to_chw(const unsigned char* src, unsigned char* dst, std::int64_t count, std::int64_t hw) {
    for (std::int64_t r = 0; r < count; ++r) {
        const unsigned char* in = src + r * hw * C;
        unsigned char* out = dst + r * hw * C;
        for (std::int64_t p = 0; p < hw; ++p)
            for (int k = 0; k < C; ++k)
                out[k * hw + p] = in[p * C + k];
    }
}

#if MIMIC_IO_AVX512
/// Whether rgb_to_chw runs here: this CPU has AVX-512 VBMI (and BW).
bool rgb_to_chw_available() {
    static const bool cpu = __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512bw");
    return cpu;
}

/// bytes_to_chw<3> 64 pixels at a time in AVX-512 registers: plane k's 64 bytes are bytes 3p + k of the
/// round's 192, gathered by one two-register byte permute (bytes below 128) and one masked permute of the
/// third register (the rest); the last hw % 64 pixels of a row as bytes_to_chw<3> does. The same bytes.
MIMIC_AVX512_VBMI void rgb_to_chw(const unsigned char* src, unsigned char* dst, std::int64_t count,
                                  std::int64_t hw) {
    alignas(64) unsigned char lo[3][64], hi[3][64];
    __mmask64 third[3] = {0, 0, 0};
    for (int k = 0; k < 3; ++k)
        for (int p = 0; p < 64; ++p) {
            const int i = 3 * p + k;
            lo[k][p] = static_cast<unsigned char>(i & 127);
            hi[k][p] = static_cast<unsigned char>((i - 128) & 63);
            if (i >= 128) third[k] |= __mmask64(1) << p;
        }
    __m512i lo_idx[3], hi_idx[3];
    for (int k = 0; k < 3; ++k)
        lo_idx[k] = _mm512_load_si512(static_cast<const void*>(lo[k])),
        hi_idx[k] = _mm512_load_si512(static_cast<const void*>(hi[k]));
    for (std::int64_t r = 0; r < count; ++r) {
        const unsigned char* in = src + r * hw * 3;
        unsigned char* out = dst + r * hw * 3;
        std::int64_t p = 0;
        for (; p + 64 <= hw; p += 64) {
            const __m512i a = _mm512_loadu_si512(static_cast<const void*>(in + 3 * p));
            const __m512i b = _mm512_loadu_si512(static_cast<const void*>(in + 3 * p + 64));
            const __m512i c = _mm512_loadu_si512(static_cast<const void*>(in + 3 * p + 128));
            for (int k = 0; k < 3; ++k) {
                const __m512i ab = _mm512_permutex2var_epi8(a, lo_idx[k], b);
                const __m512i plane = _mm512_mask_permutexvar_epi8(ab, third[k], hi_idx[k], c);
                _mm512_storeu_si512(static_cast<void*>(out + k * hw + p), plane);
            }
        }
        for (; p < hw; ++p)
            for (int k = 0; k < 3; ++k)
                out[k * hw + p] = in[p * 3 + k];
    }
}
#endif

/// count rows of (H*W, C) elements of S bytes at src to (C, H*W) at dst, as raw bytes.
template <size_t S>
void to_chw(const unsigned char* src, unsigned char* dst, std::int64_t count, std::int64_t hw, int c) {
    const std::int64_t d = hw * c;
    if constexpr (S == 1) { // bytes: each channel's plane written in order, read with a stride of c
#if MIMIC_IO_AVX512
        if (c == 3 && rgb_to_chw_available()) return rgb_to_chw(src, dst, count, hw);
#endif
        if (c == 3) return bytes_to_chw<3>(src, dst, count, hw); // RGB
        if (c == 4) return bytes_to_chw<4>(src, dst, count, hw); // RGBA
        for (std::int64_t r = 0; r < count; ++r)
            for (int k = 0; k < c; ++k) {
                const unsigned char* in = src + r * d + k;
                unsigned char* out = dst + r * d + k * hw;
                for (std::int64_t p = 0; p < hw; ++p)
                    out[p] = in[p * c];
            }
    } else { // wider elements: copied whole, pixel by pixel
        for (std::int64_t r = 0; r < count; ++r) {
            const unsigned char* in = src + size_t(r * d) * S;
            unsigned char* out = dst + size_t(r * d) * S;
            for (std::int64_t p = 0; p < hw; ++p)
                for (int k = 0; k < c; ++k)
                    std::memcpy(out + size_t(k * hw + p) * S, in + size_t(p * c + k) * S, S);
        }
    }
}
} // namespace

const unsigned char* ImageRows::read_chw(std::int64_t begin, std::int64_t count) const {
    const size_t es = elem_size(src_->elem());
    raw_.resize(size_t(count * d()) * es);
    if (count > 0) src_->read(begin, count, raw_.data());
    if (!nhwc_) return raw_.data();
    tmp_.resize(raw_.size()); // transposed as raw elements, then converted once by the caller
    const std::int64_t hw = std::int64_t(h_) * w_;
    auto* t = tmp_.data();
    if (es == 1) to_chw<1>(raw_.data(), t, count, hw, c_);
    if (es == 2) to_chw<2>(raw_.data(), t, count, hw, c_);
    if (es == 4) to_chw<4>(raw_.data(), t, count, hw, c_);
    if (es == 8) to_chw<8>(raw_.data(), t, count, hw, c_);
    return t;
}

void ImageRows::read_source_pixels(std::int64_t begin, std::int64_t count, std::uint8_t* out) const {
    MIMIC_REQUIRE(src_->elem() == Elem::u8, name(), ": read_source_pixels of a source of ",
                  elem_name(src_->elem()), " values");
    if (count > 0) src_->read(begin, count, out);
}

std::int64_t ImageRows::chw_index(std::int64_t i) const {
    if (!nhwc_) return i;
    const std::int64_t hw = std::int64_t(h_) * w_;
    return (i % c_) * hw + i / c_; // element (p, k) of an H*W x C row is feature k * hw + p
}

void ImageRows::read_pixels(std::int64_t begin, std::int64_t count, std::uint8_t* out) const {
    if (!nhwc_) return read_source_pixels(begin, count, out);
    raw_.resize(size_t(count * d()));
    read_source_pixels(begin, count, raw_.data());
    to_chw<1>(raw_.data(), out, count, std::int64_t(h_) * w_, c_);
}

void ImageRows::read(std::int64_t begin, std::int64_t count, double* out) const {
    const std::int64_t d = this->d();
    const unsigned char* chw = read_chw(begin, count);
    elem_to_double(src_->elem(), chw, count * d, out);
    if (!elem_is_float(src_->elem())) return;
    for (std::int64_t i = 0; i < count * d; ++i)
        if (!std::isfinite(out[i]))
            fail(name(), ": row ", begin + i / d, ", feature ", i % d, " is ", out[i],
                 "; every value must be finite (clean or drop that row)");
}

LabelRows::LabelRows(const ArraySource& images) : src_(&images), own_labels_(true) {
    if (!images.has_labels()) fail(images.name(), ": carries no labels; name a label file");
}

LabelRows::LabelRows(std::unique_ptr<ArraySource> labels) : owned_(std::move(labels)), src_(owned_.get()) {
    const auto& dims = src_->dims();
    if (dims.size() != 1 && !(dims.size() == 2 && dims[1] == 1))
        fail(src_->name(), ": labels must be 1-D (one per row), found ", dims.size(), " dimensions");
}

void LabelRows::read(std::int64_t begin, std::int64_t count, int* y) const {
    std::vector<double> v(static_cast<size_t>(count));
    if (own_labels_) {
        std::vector<std::int64_t> l(static_cast<size_t>(count));
        src_->read_labels(begin, count, l.data());
        for (std::int64_t i = 0; i < count; ++i)
            v[size_t(i)] = double(l[size_t(i)]);
    } else {
        std::vector<unsigned char> raw(size_t(count) * elem_size(src_->elem()));
        if (count > 0) src_->read(begin, count, raw.data());
        elem_to_double(src_->elem(), raw.data(), count, v.data());
    }
    for (std::int64_t i = 0; i < count; ++i) {
        const double x = v[size_t(i)];
        if (!(x == std::floor(x)) || x < 0 || x > INT_MAX)
            fail(name(), ": row ", begin + i, " has label ", x, "; labels must be integers in [0, 2^31)");
        y[i] = int(x);
    }
}

Normalization read_normalization_for(const std::string& path, const ImageRows& x) {
    par::Comm self(MPI_COMM_SELF, false);
    DatasetReader r(path, self);
    Normalization n{r.meta(), r.norm_mean(), r.norm_std()};
    if (n.meta.c != x.c() || n.meta.h != x.h() || n.meta.w != x.w())
        fail(path, ": --norm-from file holds rows of shape ", n.meta.c, "x", n.meta.h, "x", n.meta.w, " but ",
             x.name(), " holds ", x.c(), "x", x.h(), "x", x.w(),
             "; normalise with a training file of the same shape");
    if (std::int64_t(n.mean.size()) != x.d() || std::int64_t(n.stdev.size()) != x.d())
        fail(path, ": /norm/mean and /norm/std must have ", x.d(), " entries");
    if (n.meta.norm_scale != x.scale())
        log::info("note: ", x.name(), " holds ", elem_name(x.source().elem()), " values; they are scaled by ",
                  n.meta.norm_scale, " as in ", path, " (its norm_scale)");
    return n;
}

} // namespace mimic::io
