// The dataset file schema (/X float32 [N, D], optional /y int32 [N], shape, classes, normalisation,
// fingerprint) with a collective block reader and an atomic, collective block writer.
#pragma once

#include "mimic/core/comm.hpp"
#include "mimic/io/hdf5.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace mimic::io {

/// Schema version written to every dataset file (attribute `mimic_format`).
inline constexpr const char* kDatasetFormat = "mimic-dataset-1";

struct DatasetMeta {
    std::int64_t n = 0;      ///< rows
    std::int64_t d = 0;      ///< features per row (= c * h * w)
    int c = 1, h = 1, w = 1; ///< image shape (channels, height, width); (1, 1, D) for flat data
    int num_classes = 0;     ///< number of classes (0 when unknown)
    bool has_labels = false; ///< /y present
    std::string fingerprint; ///< 16 hex digits, order-independent hash of every row (see docs/formats.md)
    std::string source;      ///< free text: where the rows came from
    /// Normalisation: raw = (X * std + mean) / scale; kind is "none", "global" or "per-feature".
    std::string norm_kind = "none";
    double norm_scale = 1.0;
};

/// Hash of one row (index, features, label) used for fingerprints; summing over rows is order-free.
std::uint64_t row_hash(std::int64_t row, const float* x, std::int64_t d, int label, bool has_label);
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
    /// Normalisation vectors (length d), read on demand.
    std::vector<float> norm_mean() const;
    std::vector<float> norm_std() const;
    /// Extra per-row int64 dataset (e.g. /provenance/source_row), collective block read.
    bool has(const std::string& name) const { return file_.has(name); }
    const h5::File& file() const { return file_; }

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

    h5::File file_;
    h5::Handle X_, y_;
    DatasetMeta meta_;
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
    /// the sum of row_hash over the rows written (this rank's share of the fingerprint).
    std::uint64_t write(std::int64_t begin, std::int64_t count, const float* X, const int* y);
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
    DatasetMeta meta_;
    h5::File file_;
    h5::Handle X_, y_;
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
