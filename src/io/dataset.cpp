// Dataset files: schema validation on open, collective row-block reads and writes, fingerprints,
// and the .partial-then-rename protocol that keeps half-written files from looking complete.
#include "mimic/io/dataset.hpp"

#include "mimic/core/log.hpp"
#include "mimic/core/rng.hpp"
#include "mimic/io/half.hpp"
#include "mimic/io/impl/avx512.hpp"
#include "mimic/io/paths.hpp"
#include "mimic/io/row_tally.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>

namespace mimic::io {

std::uint64_t row_hash(std::int64_t row, const float* x, std::int64_t d, int label, bool has_label) {
    std::uint64_t h = mix64(std::uint64_t(row) ^ 0x5bd1e9955bd1e995ULL);
    const auto* p = reinterpret_cast<const unsigned char*>(x);
    const std::int64_t bytes = d * std::int64_t(sizeof(float));
    std::int64_t i = 0;
    for (; i + 8 <= bytes; i += 8) {
        std::uint64_t w;
        std::memcpy(&w, p + i, 8);
        h = mix64(h ^ w) + 0x9e3779b97f4a7c15ULL;
    }
    if (i < bytes) {
        std::uint64_t w = 0;
        std::memcpy(&w, p + i, size_t(bytes - i));
        h = mix64(h ^ w);
    }
    if (has_label) h = mix64(h ^ (std::uint64_t(std::uint32_t(label)) << 1 | 1));
    return h;
}

namespace {
constexpr std::uint64_t kGolden = 0x9e3779b97f4a7c15ULL;  ///< added after each whole word's mix64
constexpr std::uint64_t kRowSeed = 0x5bd1e9955bd1e995ULL; ///< a row's chain starts at mix64(row ^ kRowSeed)

/// Word i of row r as row_hash reads it: the bytes of its floats 2i and 2i + 1 (row_value(r, j)).
template <class RowValue>
inline std::uint64_t word_of(const RowValue& row_value, std::int64_t r, std::int64_t i) {
    const float pair[2] = {row_value(r, 2 * i), row_value(r, 2 * i + 1)};
    std::uint64_t w;
    std::memcpy(&w, pair, 8);
    return w;
}

/// row_hash of row r from its chain h over the whole words: the tail of an odd row (one float's bytes
/// padded with zeros), then the label (y[r], or 0 when y is null).
template <class RowValue>
inline std::uint64_t finish_row(std::uint64_t h, const RowValue& row_value, std::int64_t r, std::int64_t d,
                                const int* y, bool has_label) {
    if (d % 2 != 0) {
        const float last = row_value(r, d - 1);
        std::uint64_t w = 0;
        std::memcpy(&w, &last, sizeof last);
        h = mix64(h ^ w);
    }
    if (has_label) h = mix64(h ^ (std::uint64_t(std::uint32_t(y ? y[r] : 0)) << 1 | 1));
    return h;
}

/// Σ row_hash over rows first_row .. first_row + count - 1 whose values row_value(r, j) gives (j < d), with
/// labels y (or 0 when null). row_hash's chain of mix64 is serial within a row and its multiplies are
/// latency-bound: eight rows' chains interleaved keep the multipliers busy. Each lane computes exactly
/// row_hash of its row.
template <class RowValue>
std::uint64_t hash_rows_scalar(std::int64_t first_row, std::int64_t count, std::int64_t d, const int* y,
                               bool has_label, const RowValue& row_value) {
    constexpr int L = 8;
    const std::int64_t words = d / 2;
    std::uint64_t sum = 0;
    for (std::int64_t r = 0; r < count; r += L) {
        const int lanes = int(std::min<std::int64_t>(L, count - r));
        std::uint64_t h[L];
        for (int l = 0; l < L; ++l)
            h[l] = mix64(std::uint64_t(first_row + r + l) ^ kRowSeed);
        if (lanes == L) {
            for (std::int64_t i = 0; i < words; ++i)
                for (int l = 0; l < L; ++l)
                    h[l] = mix64(h[l] ^ word_of(row_value, r + l, i)) + kGolden;
        } else {
            for (int l = 0; l < lanes; ++l)
                for (std::int64_t i = 0; i < words; ++i)
                    h[l] = mix64(h[l] ^ word_of(row_value, r + l, i)) + kGolden;
        }
        for (int l = 0; l < lanes; ++l)
            sum += finish_row(h[l], row_value, r + l, d, y, has_label);
    }
    return sum;
}

#if MIMIC_IO_AVX512
/// Vectors of eight rows' chains in flight, and the words of each row staged per round (their 8-byte words
/// for kWideRows rows: 8 KiB, in L1).
constexpr int kGroups = 4;
constexpr int kWideRows = 8 * kGroups;
constexpr int kChunkWords = 32;

/// z >> n in each 64-bit lane. GCC 12's unmasked shift starts from _mm512_undefined_epi32, which
/// -Wmaybe-uninitialized reports once inlined: the zero-masked form over all lanes instead.
MIMIC_AVX512_DQ inline __m512i shift_right(__m512i z, unsigned n) {
    return _mm512_maskz_srli_epi64(__mmask8(0xff), z, n);
}

/// mix64 of each of the eight 64-bit lanes (vpmullq: AVX-512DQ).
MIMIC_AVX512_DQ inline __m512i mix64_x8(__m512i z) {
    z = _mm512_add_epi64(z, _mm512_set1_epi64(static_cast<long long>(kGolden)));
    z = _mm512_xor_si512(z, shift_right(z, 30));
    z = _mm512_mullo_epi64(z, _mm512_set1_epi64(static_cast<long long>(0xbf58476d1ce4e5b9ULL)));
    z = _mm512_xor_si512(z, shift_right(z, 27));
    z = _mm512_mullo_epi64(z, _mm512_set1_epi64(static_cast<long long>(0x94d049bb133111ebULL)));
    return _mm512_xor_si512(z, shift_right(z, 31));
}

/// Word i (< n) of chunk c of rows r0 .. r0 + rows - 1 into staged[i][l] (lane l: row r0 + l), as
/// row_hash reads them: row_value's floats, one at a time.
template <class RowValue>
struct StageValues {
    const RowValue& row_value;
    void operator()(std::int64_t r0, int rows, std::int64_t c, int n,
                    std::uint64_t (*staged)[kWideRows]) const {
        for (int l = 0; l < rows; ++l)
            for (int i = 0; i < n; ++i)
                staged[i][l] = word_of(row_value, r0 + l, c + i);
    }
};

/// The chains of rows r0 .. r0 + kWideRows - 1 over their `words` whole words into h (lane l: row r0 + l;
/// lanes from `rows` on hash zeros and are not read). Each round stages kChunkWords words of every row
/// (`stage`, lane-major, so that word i of eight rows is one vector), then advances the kGroups chains.
template <class Stage>
MIMIC_AVX512_DQ void wide_chains(std::int64_t first_row, std::int64_t r0, int rows, std::int64_t words,
                                 const Stage& stage, std::uint64_t* h) {
    const __m512i golden = _mm512_set1_epi64(static_cast<long long>(kGolden));
    const __m512i lane = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
    __m512i v[kGroups];
    for (int g = 0; g < kGroups; ++g) {
        const __m512i row = _mm512_add_epi64(_mm512_set1_epi64(first_row + r0 + 8 * g), lane);
        v[g] = mix64_x8(_mm512_xor_si512(row, _mm512_set1_epi64(static_cast<long long>(kRowSeed))));
    }
    alignas(64) std::uint64_t staged[kChunkWords][kWideRows];
    if (rows < kWideRows) std::memset(staged, 0, sizeof staged);
    for (std::int64_t c = 0; c < words; c += kChunkWords) {
        const int n = int(std::min<std::int64_t>(kChunkWords, words - c));
        stage(r0, rows, c, n, staged);
        for (int i = 0; i < n; ++i)
            for (int g = 0; g < kGroups; ++g) {
                const __m512i w = _mm512_load_si512(static_cast<const void*>(&staged[i][8 * g]));
                v[g] = _mm512_add_epi64(mix64_x8(_mm512_xor_si512(v[g], w)), golden);
            }
    }
    for (int g = 0; g < kGroups; ++g)
        _mm512_storeu_si512(static_cast<void*>(h + 8 * g), v[g]);
}

/// hash_rows_scalar's sum, kWideRows rows at a time in AVX-512 registers (the last round padded), the words
/// staged by `stage` (StageValues's words), the tails and labels from row_value.
template <class RowValue, class Stage>
std::uint64_t hash_rows_wide(std::int64_t first_row, std::int64_t count, std::int64_t d, const int* y,
                             bool has_label, const RowValue& row_value, const Stage& stage) {
    std::uint64_t sum = 0;
    std::uint64_t h[kWideRows];
    for (std::int64_t r = 0; r < count; r += kWideRows) {
        const int rows = int(std::min<std::int64_t>(kWideRows, count - r));
        wide_chains(first_row, r, rows, d / 2, stage, h);
        for (int l = 0; l < rows; ++l)
            sum += finish_row(h[l], row_value, r + l, d, y, has_label);
    }
    return sum;
}

/// The eight 64-bit lanes of r[0..7] transposed: lane l of r[k] becomes lane k of r[l] (unpacks zero-masked
/// over all lanes, as shift_right).
MIMIC_AVX512_DQ inline void transpose_8x8(__m512i r[8]) {
    __m512i t[8], u[8];
    for (int k = 0; k < 4; ++k) { // t[2k] = r[2k]0 r[2k+1]0 r[2k]2 r[2k+1]2 ..., t[2k+1] the odd lanes
        t[2 * k] = _mm512_maskz_unpacklo_epi64(__mmask8(0xff), r[2 * k], r[2 * k + 1]);
        t[2 * k + 1] = _mm512_maskz_unpackhi_epi64(__mmask8(0xff), r[2 * k], r[2 * k + 1]);
    }
    for (int k = 0; k < 2; ++k) { // u[4k + m]: lanes m and m + 4 of rows 4k .. 4k + 3
        u[4 * k] = _mm512_maskz_shuffle_i64x2(__mmask8(0xff), t[4 * k], t[4 * k + 2], 0x88);
        u[4 * k + 1] = _mm512_maskz_shuffle_i64x2(__mmask8(0xff), t[4 * k + 1], t[4 * k + 3], 0x88);
        u[4 * k + 2] = _mm512_maskz_shuffle_i64x2(__mmask8(0xff), t[4 * k], t[4 * k + 2], 0xDD);
        u[4 * k + 3] = _mm512_maskz_shuffle_i64x2(__mmask8(0xff), t[4 * k + 1], t[4 * k + 3], 0xDD);
    }
    for (int m = 0; m < 4; ++m) {
        r[m] = _mm512_maskz_shuffle_i64x2(__mmask8(0xff), u[m], u[4 + m], 0x88);
        r[m + 4] = _mm512_maskz_shuffle_i64x2(__mmask8(0xff), u[m], u[4 + m], 0xDD);
    }
}

/// 16 int32 lanes as floats (exact below 2^24); zero-masked over all lanes, as shift_right, for GCC 12.
MIMIC_AVX512_DQ inline __m512 to_float(__m512i v) {
    return _mm512_maskz_cvtepi32_ps(__mmask16(0xffff), v);
}

/// normalized_value of 16 pixels u (as floats) with 16 scales, means and standard deviations: each step
/// rounded to float32 on its own (the embedded-rounding forms, which no compiler fuses into an FMA;
/// zero-masked over all lanes, as shift_right).
MIMIC_AVX512_DQ inline __m512 normalize_x16(__m512 u, __m512 scale, __m512 mean, __m512 sd) {
    constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
    constexpr __mmask16 kAll = 0xffff;
    const __m512 scaled = _mm512_maskz_mul_round_ps(kAll, u, scale, kRound);
    return _mm512_maskz_div_round_ps(kAll, _mm512_maskz_sub_round_ps(kAll, scaled, mean, kRound), sd, kRound);
}

/// StageValues of uint8 rows decoded by arithmetic instead of table lookups: 16 features of eight rows at a
/// time normalised in registers, then transposed so that each vector holds one word of the eight rows.
/// Words in a last block of fewer than 16 features come from row_value (the table). Only for decoders
/// whose tables normalize_x16 reproduces bit for bit (PixelDecoder checks).
template <class RowValue>
struct StageDecoded {
    const RowValue& row_value;
    const std::uint8_t* px;
    std::int64_t d;
    const float *mean, *sd;
    float scale;
    MIMIC_AVX512_DQ void operator()(std::int64_t r0, int rows, std::int64_t c, int n,
                                    std::uint64_t (*staged)[kWideRows]) const {
        const __m512 s = _mm512_set1_ps(scale);
        for (int b = 0; b < n; b += 8) {
            const std::int64_t j = 2 * (c + b); // first feature of the block
            if (b + 8 > n || j + 16 > d) {      // a partial block: word by word
                for (int l = 0; l < rows; ++l)
                    for (int i = b; i < n; ++i)
                        staged[i][l] = word_of(row_value, r0 + l, c + i);
                return;
            }
            const __m512 m = _mm512_loadu_ps(mean + j), q = _mm512_loadu_ps(sd + j);
            for (int g = 0; g < kGroups; ++g) {
                __m512i v[8];
                for (int l = 0; l < 8; ++l) {
                    const int row = 8 * g + l;
                    if (row >= rows) {
                        v[l] = _mm512_setzero_si512();
                        continue;
                    }
                    const auto* p = reinterpret_cast<const __m128i*>(px + (r0 + row) * d + j);
                    const __m512 u =
                        to_float(_mm512_maskz_cvtepu8_epi32(__mmask16(0xffff), _mm_loadu_si128(p)));
                    v[l] = _mm512_castps_si512(normalize_x16(u, s, m, q));
                }
                transpose_8x8(v);
                for (int k = 0; k < 8; ++k)
                    _mm512_store_si512(static_cast<void*>(&staged[b + k][8 * g]), v[k]);
            }
        }
    }
};

/// Whether normalize_x16 gives every entry of the decoder's tables (features 256 floats apart, `features`
/// of them, one mean and std each; stride 0: one table for all) bit for bit.
MIMIC_AVX512_DQ bool normalize_x16_matches(const float* table, std::int64_t features, const float* mean,
                                           const float* sd, float scale) {
    const __m512 s = _mm512_set1_ps(scale);
    for (std::int64_t f = 0; f < features; ++f)
        for (int u0 = 0; u0 < 256; u0 += 16) {
            const __m512 u = to_float(
                _mm512_add_epi32(_mm512_set1_epi32(u0),
                                 _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)));
            const __m512 x = normalize_x16(u, s, _mm512_set1_ps(mean[f]), _mm512_set1_ps(sd[f]));
            const __m512i want = _mm512_loadu_si512(static_cast<const void*>(table + f * 256 + u0));
            if (_mm512_cmpneq_epi32_mask(_mm512_castps_si512(x), want) != 0) return false;
        }
    return true;
}
#endif

/// Σ row_hash over the rows (hash_rows_scalar's contract) with the kernel asked for, where it runs.
template <class RowValue>
std::uint64_t hash_rows(std::int64_t first_row, std::int64_t count, std::int64_t d, const int* y,
                        bool has_label, RowHashKernel kernel, const RowValue& row_value) {
#if MIMIC_IO_AVX512
    if (kernel == RowHashKernel::wide && wide_row_hash_available())
        return hash_rows_wide(first_row, count, d, y, has_label, row_value, StageValues<RowValue>{row_value});
#else
    (void)kernel;
#endif
    return hash_rows_scalar(first_row, count, d, y, has_label, row_value);
}
} // namespace

bool wide_row_hash_available() {
#if MIMIC_IO_AVX512
    static const bool cpu = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
    return cpu;
#else
    return false;
#endif
}

std::uint64_t row_hash_sum(std::int64_t first_row, const float* X, std::int64_t count, std::int64_t d,
                           const int* y, bool has_label, RowHashKernel kernel) {
    return hash_rows(first_row, count, d, y, has_label, kernel,
                     [X, d](std::int64_t r, std::int64_t j) { return X[r * d + j]; });
}

const char* store_name(Store s) {
    return s == Store::uint8 ? "uint8" : s == Store::fp16 ? "fp16" : "fp32";
}

Store parse_store(const std::string& option, const std::string& value) {
    for (Store s : {Store::fp32, Store::fp16, Store::uint8})
        if (value == store_name(s)) return s;
    fail(option, ": '", value, "' is not one of fp32, fp16, uint8");
}

std::string hex64(std::uint64_t v) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", (unsigned long long)v);
    return buf;
}

namespace {
/// The 8-bit value that normalised_value() maps to x bit for bit, or -1 when none does.
int pixel_of(float x, float scale, float mean, float stdev) {
    if (!std::isfinite(x)) return -1;
    const double guess = std::nearbyint((double(x) * stdev + mean) / scale);
    for (double u : {guess, guess - 1, guess + 1}) {
        if (u < 0 || u > 255) continue;
        const float back = normalized_value(float(u), scale, mean, stdev);
        if (std::memcmp(&back, &x, sizeof x) == 0) return int(u);
    }
    return -1;
}
} // namespace

PixelDecoder::PixelDecoder(std::vector<float> mean, std::vector<float> stdev, double scale)
    : mean_(std::move(mean)), std_(std::move(stdev)), scale_(float(scale)) {
    MIMIC_REQUIRE(mean_.size() == std_.size(), "PixelDecoder: ", mean_.size(), " means but ", std_.size(),
                  " standard deviations");
    const bool global = std::all_of(mean_.begin(), mean_.end(), [&](float m) { return m == mean_[0]; }) &&
                        std::all_of(std_.begin(), std_.end(), [&](float s) { return s == std_[0]; });
    const std::int64_t features = global ? std::min<std::int64_t>(1, d()) : d();
    if (double(features) * 256 * sizeof(float) > kTableMaxBytes) return; // computed per value instead
    stride_ = global ? 0 : 256;
    table_.resize(size_t(features * 256));
    for (std::int64_t j = 0; j < features; ++j)
        for (int u = 0; u < 256; ++u)
            table_[size_t(j * 256 + u)] =
                normalized_value(float(u), scale_, mean_[size_t(j)], std_[size_t(j)]);
#if MIMIC_IO_AVX512
    wide_decode_ = wide_row_hash_available() &&
                   normalize_x16_matches(table_.data(), features, mean_.data(), std_.data(), scale_);
#endif
}

void PixelDecoder::decode(const std::uint8_t* px, std::int64_t count, float* X) const {
    const std::int64_t d = this->d();
    if (table_.empty()) { // rows too wide for a table: the expression itself, value by value
        for (std::int64_t i = 0; i < count; ++i)
            for (std::int64_t j = 0; j < d; ++j)
                X[i * d + j] =
                    normalized_value(float(px[i * d + j]), scale_, mean_[size_t(j)], std_[size_t(j)]);
        return;
    }
    // Each value is looked up in the table of normalized_value over the 256 pixels of its feature.
    const float* table = table_.data();
    for (std::int64_t i = 0; i < count; ++i) {
        const std::uint8_t* in = px + i * d;
        float* out = X + i * d;
        for (std::int64_t j = 0; j < d; ++j)
            out[j] = table[j * stride_ + in[j]];
    }
}

std::uint64_t PixelDecoder::hash(std::int64_t first_row, const std::uint8_t* px, std::int64_t count,
                                 const int* y, bool has_label, RowHashKernel kernel) const {
    const std::int64_t d = this->d();
    const float* table = table_.data();
    if (table_.empty()) // rows too wide for a table: the expression itself, value by value
        return hash_rows(first_row, count, d, y, has_label, kernel, [&](std::int64_t r, std::int64_t j) {
            return normalized_value(float(px[r * d + j]), scale_, mean_[size_t(j)], std_[size_t(j)]);
        });
#if MIMIC_IO_AVX512
    if (kernel == RowHashKernel::wide && wide_decode_) { // the tables' values computed 16 at a time
        const std::int64_t stride = stride_;
        const auto value = [=](std::int64_t r, std::int64_t j) { return table[j * stride + px[r * d + j]]; };
        return hash_rows_wide(first_row, count, d, y, has_label, value,
                              StageDecoded<decltype(value)>{value, px, d, mean_.data(), std_.data(), scale_});
    }
#endif
    if (stride_ == 0) // one table for every feature
        return hash_rows(first_row, count, d, y, has_label, kernel,
                         [=](std::int64_t r, std::int64_t j) { return table[px[r * d + j]]; });
    return hash_rows(first_row, count, d, y, has_label, kernel,
                     [=](std::int64_t r, std::int64_t j) { return table[j * 256 + px[r * d + j]]; });
}

bool PixelDecoder::one_to_one() const {
    const std::int64_t features = table_.empty() || stride_ != 0 ? d() : std::min<std::int64_t>(1, d());
    for (std::int64_t j = 0; j < features; ++j)
        for (int u = 0; u < 256; ++u) {
            const float x = normalized_value(float(u), scale_, mean_[size_t(j)], std_[size_t(j)]);
            if (pixel_of(x, scale_, mean_[size_t(j)], std_[size_t(j)]) != u) return false;
        }
    return true;
}

bool file_exists(const std::string& path) {
    struct stat st {};
    return stat(path.c_str(), &st) == 0;
}

void make_dirs(const std::string& path) {
    if (path.empty()) return;
    std::string cur;
    size_t pos = 0;
    while (pos != std::string::npos) {
        pos = path.find('/', pos + 1);
        cur = path.substr(0, pos);
        if (cur.empty() || file_exists(cur)) continue;
        if (mkdir(cur.c_str(), 0777) != 0 && errno != EEXIST)
            fail(path, ": cannot create directory '", cur, "': ", std::strerror(errno));
    }
}

bool remove_file(const std::string& path) {
    return std::remove(path.c_str()) == 0;
}

void rename_file(const std::string& from, const std::string& to) {
    check_output_lock(to);
    if (std::rename(from.c_str(), to.c_str()) != 0)
        fail(to, ": cannot move the finished file into place from ", from, ": ", std::strerror(errno));
}

// --- reader --------------------------------------------------------------------------------------

DatasetReader::DatasetReader(const std::string& path, const par::Comm& comm) {
    file_ = h5::File::open(path, comm.size() > 1 ? comm.get() : MPI_COMM_NULL);
    const hid_t f = file_.id();
    if (!file_.has("/X")) fail(path, ": not a Mimic dataset file (dataset /X is missing)");
    X_ = h5::open_dataset(file_, "/X");
    auto dims = h5::dataset_dims(X_);
    if (dims.size() != 2) fail(path, ": /X must be 2-D [N, D], found ", dims.size(), "-D");
    read_store();
    meta_.n = std::int64_t(dims[0]);
    meta_.d = std::int64_t(dims[1]);
    if (h5::has_attr(f, "shape")) {
        auto s = h5::read_attr_ints(f, "shape");
        if (s.size() != 3) fail(path, ": attribute 'shape' must hold (C, H, W)");
        meta_.c = int(s[0]);
        meta_.h = int(s[1]);
        meta_.w = int(s[2]);
        if (std::int64_t(s[0]) * s[1] * s[2] != meta_.d)
            fail(path, ": attribute 'shape' (", s[0], ", ", s[1], ", ", s[2],
                 ") does not match D = ", meta_.d);
    } else {
        meta_.c = 1;
        meta_.h = 1;
        meta_.w = int(meta_.d);
    }
    if (h5::has_attr(f, "num_classes")) meta_.num_classes = int(h5::read_attr_int(f, "num_classes"));
    if (h5::has_attr(f, "fingerprint")) meta_.fingerprint = h5::read_attr_string(f, "fingerprint");
    if (h5::has_attr(f, "source")) meta_.source = h5::read_attr_string(f, "source");
    if (h5::has_attr(f, "norm")) meta_.norm_kind = h5::read_attr_string(f, "norm");
    if (h5::has_attr(f, "norm_scale")) meta_.norm_scale = h5::read_attr_double(f, "norm_scale");
    if (meta_.store == Store::uint8) {
        auto mean = norm_mean(), stdev = norm_std();
        if (std::int64_t(mean.size()) != meta_.d || std::int64_t(stdev.size()) != meta_.d)
            fail(path, ": /norm/mean and /norm/std must have D = ", meta_.d,
                 " entries to normalise the uint8 rows of /X");
        pixels_ = PixelDecoder(std::move(mean), std::move(stdev), meta_.norm_scale);
    }
    meta_.has_labels = file_.has("/y");
    if (meta_.has_labels) {
        y_ = h5::open_dataset(file_, "/y");
        auto yd = h5::dataset_dims(y_);
        if (yd.size() != 1 || std::int64_t(yd[0]) != meta_.n)
            fail(path, ": /y must be 1-D with one label per row of /X (", meta_.n, " rows)");
        h5::Handle t(MIMIC_H5_CHECK(H5Dget_type(y_)), H5Tclose);
        if (H5Tget_class(t) != H5T_INTEGER) fail(path, ": /y must hold integer class labels");
        if (H5Tget_size(t) != 4 || H5Tget_sign(t) != H5T_SGN_2)
            log::info("note: ", path, ": /y is ", H5Tget_sign(t) == H5T_SGN_2 ? "" : "unsigned ",
                      8 * H5Tget_size(t), "-bit integer; converting to int32 on read (docs/formats.md)");
    }
    check_fingerprint(comm);
}

void DatasetReader::read_store() {
    const std::string& path = file_.path();
    const hid_t f = file_.id();
    const std::string store = h5::has_attr(f, "store") ? h5::read_attr_string(f, "store") : "fp32";
    if (store != "fp32" && store != "fp16" && store != "uint8")
        fail(path, ": attribute 'store' is '", store, "', not one of fp32, fp16, uint8 (docs/formats.md)");
    meta_.store = parse_store("store", store);
    h5::Handle t(MIMIC_H5_CHECK(H5Dget_type(X_)), H5Tclose);
    const size_t bits = 8 * H5Tget_size(t);
    if (meta_.store == Store::uint8) {
        if (H5Tget_class(t) != H5T_INTEGER || bits != 8 || H5Tget_sign(t) != H5T_SGN_NONE)
            fail(path, ": attribute 'store' says uint8 but /X does not hold unsigned 8-bit integers");
        return;
    }
    if (H5Tget_class(t) != H5T_FLOAT)
        fail(path, ": /X must hold floating-point values (or uint8 pixels with attribute store = uint8)");
    if (meta_.store == Store::fp16) {
        if (MIMIC_H5_CHECK(H5Tequal(t, make_half_type())) <= 0)
            fail(path, ": attribute 'store' says fp16 but /X holds ", bits,
                 "-bit values that are not IEEE half precision");
        return;
    }
    if (bits != 32)
        log::info("note: ", path, ": /X is ", bits,
                  "-bit floating point; converting to float32 on read (docs/formats.md)");
}

void DatasetReader::check_fingerprint(const par::Comm& comm) {
    const bool stored = !meta_.fingerprint.empty();
    if (double(meta_.n) * double(meta_.d) * 4.0 > double(fingerprint_at_open_max_bytes())) {
        fingerprint_pending_ = stored;
        if (stored) return;
        // Too large to read an extra time: identified by what the file system says instead, so that a
        // regenerated file is still a changed input.
        struct stat st {};
        if (stat(path().c_str(), &st) != 0) fail(path(), ": cannot stat it: ", std::strerror(errno));
        meta_.fingerprint =
            hex64(mix64(std::uint64_t(st.st_size) ^ mix64(std::uint64_t(st.st_mtim.tv_sec) * 1000000000ULL +
                                                          std::uint64_t(st.st_mtim.tv_nsec))) ^
                  mix64(std::uint64_t(st.st_ino)));
        log::info("note: ", path(),
                  ": has no @fingerprint and is too large to hash when opened; it is identified "
                  "by its size, inode and modification time (",
                  meta_.fingerprint, ")");
        return;
    }
    verify_fingerprint(comm);
}

void DatasetReader::verify_fingerprint(const par::Comm& comm) {
    const bool stored = !meta_.fingerprint.empty();
    const std::string computed = hash_rows(comm);
    if (stored && computed != meta_.fingerprint)
        fail(path(), ": its rows hash to fingerprint ", computed, " but its @fingerprint attribute says ",
             meta_.fingerprint,
             "; the file was changed after it was written (regenerate it, or delete the "
             "attribute to have it computed)");
    meta_.fingerprint = computed;
    fingerprint_pending_ = false;
}

std::string DatasetReader::hash_rows(const par::Comm& comm) const {
    const std::int64_t chunk = std::max<std::int64_t>(
        1, std::min<std::int64_t>(8192, (std::int64_t(16) << 20) / std::max<std::int64_t>(1, 4 * meta_.d)));
    const std::int64_t chunks = (meta_.n + chunk - 1) / chunk;
    std::vector<float> X(size_t(chunk * meta_.d));
    std::vector<int> y(meta_.has_labels ? size_t(chunk) : 0);
    std::uint64_t sum = 0;
    // Chunks dealt round-robin; every rank takes part in every round's collective read (0 rows when it
    // has none left). The values are hashed as stored, unchecked: whether they are usable is the reader's.
    for (std::int64_t first = 0; first < chunks; first += comm.size()) {
        const std::int64_t k = first + comm.rank();
        const std::int64_t begin = k < chunks ? k * chunk : 0;
        const std::int64_t count = k < chunks ? std::min(chunk, meta_.n - begin) : 0;
        read_values(begin, count, X.data(), true);
        if (meta_.has_labels) h5::read_rows(y_, H5T_NATIVE_INT, begin, count, y.data(), file_.parallel());
        for (std::int64_t i = 0; i < count; ++i)
            sum += row_hash(begin + i, X.data() + i * meta_.d, meta_.d, meta_.has_labels ? y[size_t(i)] : 0,
                            meta_.has_labels);
    }
    return hex64(comm.size() > 1 ? comm.sum_u64(sum) : sum);
}

void DatasetReader::read_values(std::int64_t begin, std::int64_t count, float* X, bool collective) const {
    const bool coll = collective && file_.parallel();
    if (meta_.store == Store::fp32) return h5::read_rows(X_, H5T_NATIVE_FLOAT, begin, count, X, coll);
    const std::int64_t d = meta_.d;
    const size_t n = size_t(std::max<std::int64_t>(count, 0) * d);
    if (meta_.store == Store::fp16) {
        std::vector<std::uint16_t> bits(n);
        h5::read_rows(X_, make_half_type(), begin, count, bits.data(), coll);
        for (size_t i = 0; i < n; ++i)
            X[i] = half_to_float(bits[i]);
        return;
    }
    std::vector<std::uint8_t> raw(n);
    h5::read_rows(X_, H5T_NATIVE_UINT8, begin, count, raw.data(), coll);
    pixels_.decode(raw.data(), std::max<std::int64_t>(count, 0), X);
}

void DatasetReader::read(std::int64_t begin, std::int64_t count, float* X, int* y) const {
    read_values(begin, count, X, true);
    if (y) {
        if (!meta_.has_labels) fail(file_.path(), ": this dataset has no labels (/y)");
        h5::read_rows(y_, H5T_NATIVE_INT, begin, count, y, file_.parallel());
    }
    // After the collective transfers, so that a refusal on one rank leaves no other rank inside them.
    check_rows(file_.path(), begin, count, meta_.d, X);
    if (y) check_labels(file_.path(), begin, count, y, meta_.num_classes);
}

void check_rows(const std::string& path, std::int64_t first_row, std::int64_t count, std::int64_t d,
                const float* X, const std::string& advice) {
    for (std::int64_t i = 0; i < count; ++i) {
        const float* row = X + i * d;
        for (std::int64_t j = 0; j < d; ++j)
            if (!std::isfinite(row[j]))
                fail(path, ": row ", first_row + i, ", feature ", j, " is ", row[j],
                     "; every value must be finite (", advice, ")");
    }
}

void check_labels(const std::string& path, std::int64_t first_row, std::int64_t count, const int* y,
                  int num_classes) {
    for (std::int64_t i = 0; i < count; ++i) {
        if (y[i] < 0 || (num_classes > 0 && y[i] >= num_classes))
            fail(path, ": row ", first_row + i, " has label ", y[i], " outside [0, ", num_classes,
                 ") (attribute num_classes = ", num_classes, ")");
    }
}

std::vector<float> DatasetReader::norm_mean() const {
    if (!file_.has("/norm/mean")) return std::vector<float>(size_t(meta_.d), 0.0f);
    return h5::read_all<float>(file_, "/norm/mean");
}

std::vector<float> DatasetReader::norm_std() const {
    if (!file_.has("/norm/std")) return std::vector<float>(size_t(meta_.d), 1.0f);
    return h5::read_all<float>(file_, "/norm/std");
}

// --- writer --------------------------------------------------------------------------------------

DatasetWriter::DatasetWriter(const std::string& path, const par::Comm& comm, const DatasetMeta& meta,
                             const h5::DatasetOptions& opt)
    : comm_(comm), path_(path), meta_(meta) {
    MIMIC_REQUIRE(meta.d == std::int64_t(meta.c) * meta.h * meta.w, path, ": shape (", meta.c, ", ", meta.h,
                  ", ", meta.w, ") does not match D = ", meta.d);
    par::agree(comm_, [&] {
        file_ = h5::File::create(partial_path(), comm_.size() > 1 ? comm_.get() : MPI_COMM_NULL);
        if (comm_.rank() == 0) hold_partial(path_);
    });
    const h5::Handle half = make_half_type();
    const hid_t xtype = meta.store == Store::fp32   ? H5T_NATIVE_FLOAT
                        : meta.store == Store::fp16 ? half.id()
                                                    : H5T_NATIVE_UINT8;
    X_ = h5::create_dataset(file_, "/X", xtype, {hsize_t(meta.n), hsize_t(meta.d)}, opt);
    if (meta.has_labels) y_ = h5::create_dataset(file_, "/y", H5T_NATIVE_INT, {hsize_t(meta.n)}, opt);
    const hid_t f = file_.id();
    h5::write_attr(f, "mimic_format", meta.store == Store::fp32 ? kDatasetFormat : kDatasetFormat2);
    if (meta.store != Store::fp32) h5::write_attr(f, "store", std::string(store_name(meta.store)));
    h5::write_attr(f, "shape", std::vector<long long>{meta.c, meta.h, meta.w});
    h5::write_attr(f, "num_classes", (long long)meta.num_classes);
    h5::write_attr(f, "source", meta.source);
    h5::write_attr(f, "norm", meta.norm_kind);
    h5::write_attr(f, "norm_scale", meta.norm_scale);
}

DatasetWriter::DatasetWriter(const std::string& path, const par::Comm& comm, const DatasetMeta& meta, Resume)
    : comm_(comm), path_(path), meta_(meta) {
    par::agree(comm_, [&] {
        file_ = h5::File::open(partial_path(), comm_.size() > 1 ? comm_.get() : MPI_COMM_NULL, true);
        if (comm_.rank() == 0) hold_partial(path_);
        X_ = h5::open_dataset(file_, "/X");
        if (meta.has_labels) y_ = h5::open_dataset(file_, "/y");
        const hid_t f = file_.id();
        const std::string store = h5::has_attr(f, "store") ? h5::read_attr_string(f, "store") : "fp32";
        if (store != store_name(meta.store))
            fail(partial_path(), ": holds rows stored as ", store, ", not ", store_name(meta.store),
                 "; rerun with the same --store or remove it");
        if (meta.store == Store::uint8) {
            mean_ = h5::read_all<float>(file_, "/norm/mean");
            std_ = h5::read_all<float>(file_, "/norm/std");
        }
    });
}

DatasetWriter::~DatasetWriter() {
    if (!committed_) {
        X_.reset();
        y_.reset();
        try {
            file_.close();
        } catch (const Error&) {
        }
        if (comm_.rank() == 0 && !keep_partial_ && !partial_replaced(path_)) remove_file(partial_path());
    }
}

std::uint64_t DatasetWriter::write(std::int64_t begin, std::int64_t count, const float* X, const int* y) {
    MIMIC_REQUIRE(!meta_.has_labels || y || count == 0, path_, ": labels missing for a labelled dataset");
    std::uint64_t sum = 0;
    if (meta_.store == Store::fp32) {
        h5::write_rows(X_, H5T_NATIVE_FLOAT, begin, count, X, file_.parallel());
    } else {
        // Encoded before the collective write, so that a refusal on one rank leaves no other inside it.
        par::agree(comm_, [&] { sum = encode(begin, count, X, y); });
        if (meta_.store == Store::fp16)
            h5::write_rows(X_, make_half_type(), begin, count, stored_.data(), file_.parallel());
        else
            h5::write_rows(X_, H5T_NATIVE_UINT8, begin, count, stored_.data(), file_.parallel());
    }
    if (meta_.has_labels) h5::write_rows(y_, H5T_NATIVE_INT, begin, count, y, file_.parallel());
    if (meta_.store == Store::fp32) sum = row_hash_sum(begin, X, count, meta_.d, y, meta_.has_labels);
    hash_sum_ += sum;
    return sum;
}

std::uint64_t DatasetWriter::write_pixels(std::int64_t begin, std::int64_t count, const std::uint8_t* px,
                                          const int* y) {
    MIMIC_REQUIRE(meta_.store == Store::uint8, path_, ": write_pixels needs a uint8 store, not ",
                  store_name(meta_.store));
    MIMIC_REQUIRE(!meta_.has_labels || y || count == 0, path_, ": labels missing for a labelled dataset");
    MIMIC_REQUIRE(std::int64_t(mean_.size()) == meta_.d && std::int64_t(std_.size()) == meta_.d, path_,
                  ": a uint8 store needs the normalisation set before rows are written");
    if (pixels_one_to_one_ < 0) {
        pixels_ = PixelDecoder(mean_, std_, meta_.norm_scale);
        pixels_one_to_one_ = pixels_.one_to_one() ? 1 : 0;
    }
    if (!pixels_one_to_one_) { // several pixels share a value (or none has one): write()'s encoding decides
        decoded_.resize(size_t(std::max<std::int64_t>(count, 0) * meta_.d));
        pixels_.decode(px, count, decoded_.data());
        return write(begin, count, decoded_.data(), y);
    }
    const std::uint64_t sum = pixels_.hash(begin, px, count, y, meta_.has_labels);
    h5::write_rows(X_, H5T_NATIVE_UINT8, begin, count, px, file_.parallel());
    if (meta_.has_labels) h5::write_rows(y_, H5T_NATIVE_INT, begin, count, y, file_.parallel());
    hash_sum_ += sum;
    return sum;
}

std::uint64_t DatasetWriter::encode(std::int64_t begin, std::int64_t count, const float* X, const int* y) {
    const std::int64_t d = meta_.d;
    std::uint64_t sum = 0;
    if (meta_.store == Store::fp16) {
        stored_.resize(size_t(count * d) * 2);
        auto* bits = reinterpret_cast<std::uint16_t*>(stored_.data());
        std::vector<float> back(static_cast<size_t>(d)); // the row as a reader gets it, for the fingerprint
        for (std::int64_t i = 0; i < count; ++i) {
            for (std::int64_t j = 0; j < d; ++j) {
                bits[i * d + j] = float_to_half(X[i * d + j]);
                back[size_t(j)] = half_to_float(bits[i * d + j]);
            }
            sum += row_hash(begin + i, back.data(), d, y ? y[i] : 0, meta_.has_labels);
        }
        return sum;
    }
    MIMIC_REQUIRE(std::int64_t(mean_.size()) == d && std::int64_t(std_.size()) == d, path_,
                  ": a uint8 store needs the normalisation set before rows are written");
    stored_.resize(size_t(count * d));
    const float scale = float(meta_.norm_scale);
    for (std::int64_t i = 0; i < count; ++i) {
        for (std::int64_t j = 0; j < d; ++j) {
            const int u = pixel_of(X[i * d + j], scale, mean_[size_t(j)], std_[size_t(j)]);
            if (u < 0)
                fail(path_, ": row ", begin + i, ", feature ", j, " is ", X[i * d + j],
                     ", which no 8-bit pixel normalises to; --store uint8 keeps unchanged 8-bit rows only "
                     "(use fp16 or fp32)");
            stored_[size_t(i * d + j)] = std::uint8_t(u);
        }
        // The rows read back are X bit for bit, so they hash as X does.
        sum += row_hash(begin + i, X + i * d, d, y ? y[i] : 0, meta_.has_labels);
    }
    return sum;
}

void DatasetWriter::set_normalization(const std::string& kind, double scale, const std::vector<float>& mean,
                                      const std::vector<float>& stdev) {
    MIMIC_REQUIRE(std::int64_t(mean.size()) == meta_.d && std::int64_t(stdev.size()) == meta_.d, path_,
                  ": normalisation vectors must have D = ", meta_.d, " entries");
    meta_.norm_kind = kind;
    meta_.norm_scale = scale;
    h5::write_attr(file_.id(), "norm", kind);
    h5::write_attr(file_.id(), "norm_scale", scale);
    h5::write_all(file_, "/norm/mean", mean);
    h5::write_all(file_, "/norm/std", stdev);
    if (meta_.store == Store::uint8) mean_ = mean, std_ = stdev;
}

std::string DatasetWriter::commit() {
    const std::uint64_t total = comm_.sum_u64(hash_sum_);
    meta_.fingerprint = hex64(total);
    h5::write_attr(file_.id(), "fingerprint", meta_.fingerprint);
    X_.reset();
    y_.reset();
    file_.close();
    par::agree(comm_, [&] {
        if (comm_.rank() == 0) rename_file(partial_path(), path_);
    });
    committed_ = true;
    return meta_.fingerprint;
}

} // namespace mimic::io
