// The dataset file schema (/X [N, D] stored as float32, float16 or uint8 raw pixels, optional /y int32 [N],
// shape, classes, normalisation, fingerprint) with a collective block reader that hands out float32 rows
// whatever the stored type, and an atomic, collective block writer.
#pragma once

#include "mimic/core/comm.hpp"
#include "mimic/io/hdf5.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace mimic::io {

/// Schema version written to every dataset file (attribute `mimic_format`): version 1 stores /X as
/// float32; version 2 adds the attribute `store` for /X stored as float16 or as uint8 raw pixels.
inline constexpr const char* kDatasetFormat = "mimic-dataset-1";
inline constexpr const char* kDatasetFormat2 = "mimic-dataset-2";

/// How /X is stored: fp32 (the normalised values), fp16 (the normalised values rounded to IEEE half) or
/// uint8 (the raw 8-bit pixels, normalised on read with the file's normalisation).
enum class Store { fp32, fp16, uint8 };
const char* store_name(Store s);
/// Parses a --store value; anything but fp32, fp16 or uint8 is refused naming `option`.
Store parse_store(const std::string& option, const std::string& value);

/// The normalised value of a raw source value: (raw * scale - mean) / stdev in float32. `data import`
/// writes float32 rows with it and uint8 files are read through it, so both give the same bits.
inline float normalized_value(float raw, float scale, float mean, float stdev) {
    return (raw * scale - mean) / stdev;
}

/// How row_hash_sum and PixelDecoder::hash run the rows' chains, with the same values: `wide` (the
/// default) 32 rows at once in AVX-512 registers where wide_row_hash_available(), else as `scalar`, eight
/// rows interleaved in general-purpose registers.
enum class RowHashKernel { wide, scalar };
/// Whether the wide kernel runs here: compiled in (x86-64 host compiler) and this CPU has AVX-512F and DQ.
bool wide_row_hash_available();

/// normalized_value of uint8-stored pixels, bit for bit, for a row of d = mean.size() features: through a
/// table of the 256 values of each feature (one table when every feature has the same mean and std) up to
/// kTableMaxBytes, value by value beyond it.
class PixelDecoder {
public:
    PixelDecoder() = default;
    PixelDecoder(std::vector<float> mean, std::vector<float> stdev, double scale);
    /// Tables up to this size (D = 16,384 with per-feature statistics).
    static constexpr double kTableMaxBytes = 16.0 * 1024 * 1024;
    std::int64_t d() const { return std::int64_t(mean_.size()); }
    /// count rows of d() pixels into X (count * d() floats).
    void decode(const std::uint8_t* px, std::int64_t count, float* X) const;
    /// row_hash_sum of the decoded rows (first_row onwards, labels y or 0 when null), each value looked up
    /// as it is hashed: the same sum without the float rows in memory.
    std::uint64_t hash(std::int64_t first_row, const std::uint8_t* px, std::int64_t count, const int* y,
                       bool has_label, RowHashKernel kernel = RowHashKernel::wide) const;
    /// Whether, for every feature, the 8-bit value that DatasetWriter::write() stores for each pixel's
    /// decoded value is that pixel (no two pixels decode to the same float, none to a non-finite one).
    bool one_to_one() const;

private:
    std::vector<float> mean_, std_, table_; ///< table_ empty: no table
    float scale_ = 1.0f;
    std::int64_t stride_ = 0;
    bool wide_decode_ = false; ///< the wide hash computes the tables' values (checked equal to them)
};

struct DatasetMeta {
    std::int64_t n = 0;      ///< rows
    std::int64_t d = 0;      ///< features per row (= c * h * w)
    int c = 1, h = 1, w = 1; ///< image shape (channels, height, width); (1, 1, D) for flat data
    int num_classes = 0;     ///< number of classes (0 when unknown)
    bool has_labels = false; ///< /y present
    std::string fingerprint; ///< 16 hex digits, order-independent hash of every row (see docs/formats.md)
    std::string source;      ///< free text: where the rows came from
    /// Normalisation: raw = (X * std + mean) / scale; kind is "none", "global", "per-channel" or "per-feature".
    std::string norm_kind = "none";
    double norm_scale = 1.0;
    Store store = Store::fp32; ///< how /X is stored (rows are float32 to every reader)
};

/// Hash of one row (index, features, label) used for fingerprints; summing over rows is order-free.
std::uint64_t row_hash(std::int64_t row, const float* x, std::int64_t d, int label, bool has_label);
/// Σ row_hash over rows first_row .. first_row + count - 1 of X (count x d; labels y, or 0 when null), the
/// same value as the loop, several rows hashed at once.
std::uint64_t row_hash_sum(std::int64_t first_row, const float* X, std::int64_t count, std::int64_t d,
                           const int* y, bool has_label, RowHashKernel kernel = RowHashKernel::wide);
std::string hex64(std::uint64_t v);

/// Refuses a block of rows with a non-finite value, naming the file, the row and the feature; `advice`
/// ends the message.
void check_rows(const std::string& path, std::int64_t first_row, std::int64_t count, std::int64_t d,
                const float* X, const std::string& advice = "clean or drop that row");
/// Refuses a label outside [0, num_classes) (only negative labels when num_classes is 0, unknown).
void check_labels(const std::string& path, std::int64_t first_row, std::int64_t count, const int* y,
                  int num_classes);

/// Opens a dataset file collectively and reads row blocks with collective hyperslab reads.
class DatasetReader {
public:
    DatasetReader(const std::string& path, const par::Comm& comm);
    const DatasetMeta& meta() const { return meta_; }
    const std::string& path() const { return file_.path(); }
    /// Collective: rows [begin, begin + count) into X (count * d floats) and, if y != nullptr, labels.
    /// Ranks may ask for different ranges; a rank with nothing to read passes count = 0. Rows with a
    /// non-finite value and labels outside [0, num_classes) are refused (check_rows, check_labels).
    void read(std::int64_t begin, std::int64_t count, float* X, int* y) const;
    /// Rows [begin, begin + count) of /X as float32 into X, converted from the stored type one block at a
    /// time (uint8: normalized_value with the file's normalisation, tabulated per feature; fp16: exact
    /// widening), unchecked.
    /// Collective when `collective` (and the file is parallel), else an independent read.
    void read_values(std::int64_t begin, std::int64_t count, float* X, bool collective) const;
    /// Normalisation vectors (length d), read on demand.
    std::vector<float> norm_mean() const;
    std::vector<float> norm_std() const;
    /// Extra per-row int64 dataset (e.g. /provenance/source_row), collective block read.
    bool has(const std::string& name) const { return file_.has(name); }
    const h5::File& file() const { return file_; }

    /// uint8 files normalise through a table of 256 values per feature up to this size (D = 16,384 with
    /// per-feature statistics), and value by value beyond it (PixelDecoder).
    static constexpr double kPixelTableMaxBytes = PixelDecoder::kTableMaxBytes;

    /// A larger file's stored @fingerprint, taken on faith when opened: the stage that reads its rows
    /// folds their hashes into that pass and compares them at its end (io::RowTally).
    bool fingerprint_pending() const { return fingerprint_pending_; }
    /// Collective over the communicator the file was opened on: computes the fingerprint from the rows
    /// (one read shared over the ranks) and refuses a stored @fingerprint that differs, naming the file.
    void verify_fingerprint(const par::Comm& comm);

private:
    /// Collective, on open, for files of at most io::fingerprint_at_open_max_bytes() of /X: the
    /// fingerprint is verified (verify_fingerprint). A larger file keeps its @fingerprint (pending), or
    /// without one is identified by its size, inode and modification time (with a notice).
    void check_fingerprint(const par::Comm& comm);
    /// Collective: the fingerprint of the rows as stored (Σ row_hash), read once, shared over the ranks.
    std::string hash_rows(const par::Comm& comm) const;

    /// The attribute `store` and the type of /X (on open).
    void read_store();

    h5::File file_;
    h5::Handle X_, y_;
    DatasetMeta meta_;
    PixelDecoder pixels_; ///< uint8 store: the normalisation applied on read, with the import's bits
    bool fingerprint_pending_ = false;
};

/// Writes `path` through `path.partial` and renames it into place only on commit(), so an interrupted
/// or failed write never leaves a file that looks complete. Collective over comm.
class DatasetWriter {
public:
    /// Tag of the constructor that reopens an existing `path.partial` to finish it (resumable stages).
    struct Resume {};

    DatasetWriter(const std::string& path, const par::Comm& comm, const DatasetMeta& meta,
                  const h5::DatasetOptions& opt = {});
    /// Collective: reopens `path.partial` written earlier with the same meta; rows already in it are
    /// counted in the fingerprint through add_to_fingerprint().
    DatasetWriter(const std::string& path, const par::Comm& comm, const DatasetMeta& meta, Resume);
    ~DatasetWriter();
    DatasetWriter(const DatasetWriter&) = delete;
    DatasetWriter& operator=(const DatasetWriter&) = delete;

    /// Collective: rows [begin, begin + count); y may be nullptr when the file has no labels. Returns
    /// the sum of row_hash over the rows as a reader gets them back (this rank's share of the
    /// fingerprint). fp16 rounds to nearest even; uint8 stores the 8-bit value that normalises to each
    /// value bit for bit (set_normalization first) and refuses a value that none does.
    std::uint64_t write(std::int64_t begin, std::int64_t count, const float* X, const int* y);
    /// Collective, uint8 store only: rows [begin, begin + count) given as 8-bit pixels (count * d, after
    /// set_normalization or on resume). Writes the file and returns the hash that write() of their
    /// normalised values (normalized_value in float32) would: the pixels are stored as they are and hashed
    /// as a reader decodes them, without the float round trip, when PixelDecoder::one_to_one(); else
    /// through write()'s encoding.
    std::uint64_t write_pixels(std::int64_t begin, std::int64_t count, const std::uint8_t* px, const int* y);
    /// Adds the row hashes of rows written by an earlier run (resume) to this rank's fingerprint share.
    void add_to_fingerprint(std::uint64_t row_hash_sum) { hash_sum_ += row_hash_sum; }
    /// A resumable stage calls this so that an uncommitted writer leaves `path.partial` in place for the
    /// next run instead of removing it.
    void keep_partial() { keep_partial_ = true; }
    /// Collective: stores the normalisation (kind, scale, mean[d], std[d]).
    void set_normalization(const std::string& kind, double scale, const std::vector<float>& mean,
                           const std::vector<float>& stdev);
    /// The open file, for stage-specific extra datasets and attributes (all collective).
    h5::File& file() { return file_; }
    /// Collective: writes the fingerprint and metadata, closes and renames into place.
    /// Returns the fingerprint.
    std::string commit();

    const std::string& path() const { return path_; }
    std::string partial_path() const { return path_ + ".partial"; }

private:
    const par::Comm& comm_;
    std::string path_;
    /// The stored form of rows (fp16 bits or uint8 pixels) into stored_; returns their row_hash sum.
    std::uint64_t encode(std::int64_t begin, std::int64_t count, const float* X, const int* y);

    DatasetMeta meta_;
    h5::File file_;
    h5::Handle X_, y_;
    std::vector<float> mean_, std_;     ///< uint8 store: the normalisation the stored pixels go through
    PixelDecoder pixels_;               ///< write_pixels: mean_ and std_ as a reader applies them
    int pixels_one_to_one_ = -1;        ///< write_pixels: pixels_.one_to_one(), -1 until asked
    std::vector<float> decoded_;        ///< write_pixels: rows decoded for write() (pixels not one to one)
    std::vector<unsigned char> stored_; ///< one block in the stored type
    std::uint64_t hash_sum_ = 0;
    bool committed_ = false;
    bool keep_partial_ = false;
};

/// Removes a file if it exists (rank 0 only when comm has several ranks); returns true if removed.
bool remove_file(const std::string& path);
/// Renames atomically; fails with a clear message.
void rename_file(const std::string& from, const std::string& to);
bool file_exists(const std::string& path);
/// mkdir -p; a clear error when a component cannot be created.
void make_dirs(const std::string& path);

} // namespace mimic::io
