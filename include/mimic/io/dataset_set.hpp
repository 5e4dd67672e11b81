// Several dataset files read as one row space (rows of file 0, then file 1, ...), checked for equal
// shape and normalisation, with a collective read of any list of row ranges on every rank.
#pragma once

#include "mimic/io/dataset.hpp"

#include <memory>
#include <string>
#include <vector>

namespace mimic::io {

/// Reads the row ranges `ranges` (local to the dataset, in order, concatenated into out) of a 1-D or 2-D
/// dataset with `row_elems` elements of `elem_bytes` bytes per row, with independent (not collective)
/// reads: ranks read different, possibly overlapping windows, and need not make the same calls.
void read_row_ranges(hid_t dset, hid_t memtype, std::int64_t row_elems, size_t elem_bytes,
                     const std::vector<par::Range>& ranges, void* out);

class DatasetSet {
public:
    /// Collective: opens every file (with MPI-IO when comm has several ranks). Errors (one line naming the
    /// file) for a file that is not a dataset, holds no rows, or differs from the first file in D, shape or
    /// normalisation.
    DatasetSet(const std::vector<std::string>& paths, const par::Comm& comm);

    std::int64_t rows() const { return rows_; }
    std::int64_t d() const { return meta_.d; }
    /// Shape, classes (maximum over files) and normalisation of the set; n = rows(); no labels.
    const DatasetMeta& meta() const { return meta_; }
    size_t files() const { return readers_.size(); }
    const DatasetReader& reader(size_t f) const { return *readers_[f]; }
    /// First global row of file f.
    std::int64_t offset(size_t f) const { return offsets_[f]; }
    const std::vector<float>& norm_mean() const { return mean_; }
    const std::vector<float>& norm_std() const { return std_; }

    /// Row ranges of the set (in order, concatenated, d() floats per row) into out, with independent reads
    /// (see read_row_ranges). Ranges may cross file boundaries. Not collective. A row with a non-finite
    /// value is refused (check_rows); `advice` ends that error ("clean or drop that row" by default).
    void read_ranges(const std::vector<par::Range>& ranges, float* out) const;
    void set_nonfinite_advice(std::string advice) { advice_ = std::move(advice); }

    /// Collective: the global rows (over the files concatenated, ascending) that hold a NaN or infinite
    /// value. Each rank scans its share in pieces of at most chunk_rows rows; every rank gets the list.
    std::vector<std::int64_t> nonfinite_rows(const par::Comm& comm, std::int64_t chunk_rows) const;
    /// Leaves out these global rows (ascending, unique) from now on: rows() counts the rows left, and
    /// row r of the set is global row source_row(r).
    void drop_rows(std::vector<std::int64_t> rows);
    const std::vector<std::int64_t>& dropped() const { return dropped_; }
    /// The global row of row r of the set (r itself unless rows were dropped).
    std::int64_t source_row(std::int64_t r) const;
    /// "FILE row R" for a global row.
    std::string describe_row(std::int64_t global_row) const;

private:
    /// Global rows [lo, hi) into out; refuses non-finite values when check is set.
    void read_global(std::int64_t lo, std::int64_t hi, float* out, bool check) const;

    std::vector<std::unique_ptr<DatasetReader>> readers_;
    std::vector<std::int64_t> offsets_;
    std::int64_t rows_ = 0;
    DatasetMeta meta_;
    std::vector<float> mean_, std_;
    std::vector<std::int64_t> dropped_; ///< global rows left out (ascending)
    std::string advice_ = "clean or drop that row";
};

} // namespace mimic::io
