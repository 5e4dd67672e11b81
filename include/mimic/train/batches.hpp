// Data-parallel mini-batches: a training source read by global row range, the seeded epoch order
// (blocks of rows permuted, grouped into windows, rows permuted within a window) and the loader that
// gives each rank its slice of every global batch while holding at most two windows in memory.
#pragma once

#include "mimic/core/comm.hpp"
#include "mimic/io/dataset.hpp"
#include "mimic/io/row_tally.hpp"
#include "mimic/nn/model.hpp"

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace mimic::train {

using nn::Model;
using nn::Shape;

/// Rows to train on: features and, when the set has them, hard labels.
class TrainSource {
public:
    virtual ~TrainSource() = default;
    virtual std::int64_t rows() const = 0;
    virtual Shape shape() const = 0;
    std::int64_t features() const { return shape().size(); }
    virtual bool has_labels() const = 0;
    /// Fingerprint of the rows and targets (stored in model files, checked on resume).
    virtual std::string fingerprint() const = 0;
    /// Where the rows come from (for messages).
    virtual std::string describe() const = 0;
    /// Collective over the training communicator (every rank asks for the same range): rows
    /// [begin, begin + count) into x (count * features()) and y (count, if labels).
    virtual void read(std::int64_t begin, std::int64_t count, float* x, int* y) = 0;
    /// Collective over the training communicator: see BatchSource::check_rows (no-op by default).
    virtual void check_rows(const par::Comm& comm, bool final) { (void)comm, (void) final; }
};

/// A labelled Mimic dataset file as a training source.
class DatasetSource final : public TrainSource {
public:
    DatasetSource(const std::string& path, const par::Comm& comm);
    std::int64_t rows() const override { return reader_.meta().n; }
    Shape shape() const override;
    bool has_labels() const override { return reader_.meta().has_labels; }
    std::string fingerprint() const override { return reader_.meta().fingerprint; }
    std::string describe() const override { return reader_.path(); }
    void read(std::int64_t begin, std::int64_t count, float* x, int* y) override;
    const io::DatasetReader& reader() const { return reader_; }
    /// Folds the row hashes of whole blocks of block_rows rows into the reads (when the file's
    /// fingerprint is pending, see io::RowTally); check_rows compares them.
    void fold_fingerprint(std::int64_t block_rows) { tally_ = io::RowTally(reader_, block_rows); }
    void check_rows(const par::Comm& comm, bool final) override { tally_.check(comm, final); }

private:
    io::DatasetReader reader_;
    io::RowTally tally_;
};

/// The order in which one epoch visits the rows; a function of (n, block, window, seed, epoch) only, so
/// every rank and every rank count sees the same order. With window >= n it is a uniform permutation of
/// all rows; otherwise blocks of `block` contiguous rows are permuted, consecutive runs of window/block
/// blocks form windows, and the rows of each window are permuted.
class EpochOrder {
public:
    EpochOrder(std::int64_t n, std::int64_t block, std::int64_t window, std::uint64_t seed, int epoch);
    std::int64_t size() const { return n_; }
    int num_windows() const { return int(window_start_.size()) - 1; }
    /// Blocks of window w in ascending order: the read order and the layout of the window's buffer.
    std::vector<std::int64_t> window_blocks(int w) const;
    /// The window holding epoch position p, and the row's index within that window's buffer.
    std::pair<int, std::int64_t> locate(std::int64_t p) const;
    /// The global row visited at epoch position p.
    std::int64_t row_at(std::int64_t p) const;
    std::int64_t block_rows(std::int64_t b) const { return std::min(n_, (b + 1) * block_) - b * block_; }
    std::int64_t block() const { return block_; }

private:
    const std::vector<std::int32_t>& perm(int w) const;
    std::int64_t n_, block_;
    std::int64_t blocks_per_window_;
    std::uint64_t key_;
    std::vector<std::int64_t> block_order_;                  ///< permuted block ids
    std::vector<std::int64_t> window_start_;                 ///< first epoch position of each window, plus n
    mutable std::map<int, std::vector<std::int32_t>> perms_; ///< row permutations of recent windows
};

/// Serves this rank's rows of each global batch. Global batch `step` covers epoch positions
/// [step * batch, min(n, (step + 1) * batch)); rank r takes part r of split_range over that batch, so the
/// global batch (and thus the gradient, up to summation order) does not depend on the rank count.
class BatchLoader {
public:
    /// window = 0 holds the whole set (read once, kept across epochs). Otherwise window >= batch rows.
    BatchLoader(TrainSource& src, std::int64_t batch, std::int64_t block, std::int64_t window,
                const par::Comm& comm);
    std::int64_t steps_per_epoch() const { return (src_.rows() + batch_ - 1) / batch_; }
    /// The largest slice any rank gets (buffer size).
    std::int64_t max_local_rows() const { return (batch_ + comm_.size() - 1) / comm_.size(); }
    void start_epoch(std::uint64_t seed, int epoch);
    const EpochOrder& order() const { return *order_; }

    struct Slice {
        std::int64_t global_rows = 0; ///< rows in the global batch
        std::int64_t first = 0;       ///< this rank's first row within the global batch
        std::int64_t rows = 0;        ///< this rank's rows
    };
    /// Collective: this rank's rows of global batch `step` into x and y (nullptr where unused).
    Slice load(std::int64_t step, float* x, int* y);
    /// Bytes held by the window buffers now.
    std::int64_t resident_bytes() const;

private:
    struct Window {
        std::vector<std::int64_t> blocks;
        std::vector<float> x;
        std::vector<int> y;
    };
    Window& window(int w);
    TrainSource& src_;
    std::int64_t batch_, block_, window_;
    const par::Comm& comm_;
    std::unique_ptr<EpochOrder> order_;
    std::map<int, Window> cache_;  ///< windows of the current epoch in use
    std::vector<Window> previous_; ///< windows of the last epoch, reused when a window has the same blocks
};

} // namespace mimic::train
