// Where the engine's batches come from: the interface, the in-memory shuffled loader over a training
// set (train, ensemble train) and the streamer of shuffled transfer-set blocks with their teacher logits,
// read ahead on an I/O thread (distill). Both are functions of (seed, epoch, step) only, so a resumed run
// sees the same batches.
#pragma once

#include "mimic/core/comm.hpp"
#include "mimic/io/dataset.hpp"
#include "mimic/io/logits_file.hpp"
#include "mimic/io/row_tally.hpp"
#include "mimic/train/augment.hpp"
#include "mimic/train/batches.hpp"

#include <cstdint>
#include <future>
#include <memory>
#include <string>
#include <vector>

namespace mimic::train {

/// This rank's rows of one global batch.
struct Slice {
    std::int64_t global_rows = 0; ///< rows in the global batch
    std::int64_t first = 0;       ///< this rank's first row within the global batch (dropout masks key on it)
    std::int64_t rows = 0;        ///< this rank's rows
};

class BatchSource {
public:
    virtual ~BatchSource() = default;
    virtual std::int64_t rows() const = 0; ///< rows per epoch
    virtual std::int64_t steps_per_epoch() const = 0;
    virtual std::int64_t max_local_rows() const = 0; ///< the largest slice a rank gets (buffer size)
    virtual std::int64_t features() const = 0;
    virtual std::int64_t soft_width() const = 0; ///< floats of teacher logits per row (0: none read)
    virtual bool has_labels() const = 0;         ///< labels are read into y
    /// Collective: positions the source at step `first_step` of `epoch` (0-based).
    virtual void start_epoch(int epoch, std::int64_t first_step) = 0;
    /// Collective: this rank's rows of the next global batch into x / y / soft (host buffers of
    /// max_local_rows rows). Steps come in increasing order from start_epoch's first_step.
    virtual Slice next(std::int64_t step, float* x, int* y, float* soft) = 0;
    /// The rows of the last next(), copied into x on the device: transforms them in place before the step
    /// trains on them (training-time augmentation). Nothing by default.
    virtual void augment(const Matrix& x, const Slice& sl) { (void)x, (void)sl; }
    /// Waits for reads in flight, so that the caller may use HDF5 (checkpoints, validation, output).
    virtual void pause() {}
    /// Collective, after pause(), at the end of each epoch and (final) before the output is written: a
    /// source whose file's fingerprint could not be verified when opened compares the row hashes folded
    /// into its reads once every row was read, and when final reads the rows it has not seen yet. A
    /// mismatch fails naming the file.
    virtual void check_rows(bool final) { (void) final; }
};

/// The shuffled loader over a training source (BatchLoader): global batches split over `replicas`.
class ShuffledBatches final : public BatchSource {
public:
    ShuffledBatches(TrainSource& src, std::int64_t batch, std::int64_t block, std::int64_t window,
                    std::uint64_t seed, const par::Comm& replicas);
    std::int64_t rows() const override { return src_.rows(); }
    std::int64_t steps_per_epoch() const override { return loader_.steps_per_epoch(); }
    std::int64_t max_local_rows() const override { return loader_.max_local_rows(); }
    std::int64_t features() const override { return src_.features(); }
    std::int64_t soft_width() const override { return 0; }
    bool has_labels() const override { return src_.has_labels(); }
    void start_epoch(int epoch, std::int64_t) override;
    Slice next(std::int64_t step, float* x, int* y, float* soft) override;
    void augment(const Matrix& x, const Slice& sl) override;
    void check_rows(bool final) override { src_.check_rows(comm_, final); }
    /// Augments every training batch from now on (`mimic train`, `ensemble train`): each row by its
    /// position in the source, the epoch and the seed (see augment_choice).
    void set_augmenter(std::unique_ptr<BatchAugmenter> a) { augmenter_ = std::move(a); }

private:
    TrainSource& src_;
    const par::Comm& comm_;
    BatchLoader loader_;
    std::uint64_t seed_;
    std::int64_t batch_;
    int epoch_ = 0;
    std::unique_ptr<BatchAugmenter> augmenter_;
    std::vector<std::int64_t> rows_; ///< source rows of the last next() (with an augmenter only)
};

/// Shuffled blocks of transfer rows and their teacher logits: each epoch visits the blocks of
/// `block_rows` rows in a seeded order and the rows of a block in a seeded order; global batches never
/// straddle blocks. Every rank reads whole blocks collectively over `io_comm` (on a prefetch thread when
/// MPI allows it); replica r of R takes part r of each global batch.
class BlockStreamer final : public BatchSource {
public:
    struct Inputs {
        io::DatasetReader* transfer = nullptr;
        const h5::File* logits_file = nullptr;
        hid_t logits = -1; ///< the /logits dataset
        io::LogitsMeta logits_meta;
        bool labels = false;                ///< read /y too
        const par::Comm* io_comm = nullptr; ///< the communicator transfer was opened on
    };
    BlockStreamer(const Inputs& in, std::int64_t batch, std::int64_t block_rows, std::uint64_t seed,
                  int replicas, int replica, bool prefetch);
    ~BlockStreamer() override;
    std::int64_t rows() const override { return n_; }
    std::int64_t steps_per_epoch() const override { return steps_per_epoch_; }
    std::int64_t max_local_rows() const override { return (batch_ + R_ - 1) / R_; }
    std::int64_t features() const override { return d_; }
    std::int64_t soft_width() const override { return c_; }
    bool has_labels() const override { return in_.labels; }
    void start_epoch(int epoch, std::int64_t first_step) override;
    Slice next(std::int64_t step, float* x, int* y, float* soft) override;
    void pause() override;
    void check_rows(bool final) override;

    struct Block {
        std::int64_t id = -1, row0 = 0, n = 0;
        std::vector<float> X, T;
        std::vector<int> y;
    };

private:
    std::int64_t block_size(std::int64_t b) const { return std::min(block_rows_, n_ - b * block_rows_); }
    std::int64_t batches_in(std::int64_t b) const { return (block_size(b) + batch_ - 1) / batch_; }
    Block read_block(std::int64_t b);
    void launch(std::int64_t k);
    void advance();

    Inputs in_;
    std::int64_t n_, d_, c_, batch_, block_rows_, num_blocks_, steps_per_epoch_ = 0;
    std::uint64_t seed_;
    int R_, replica_;
    bool prefetch_;
    int epoch_ = 0;
    std::vector<std::int64_t> order_; ///< block ids of this epoch in visiting order
    std::int64_t k_ = -1;             ///< position in order_ of the current block
    std::int64_t j_ = 0;              ///< next batch within the current block
    Block cur_;
    std::vector<std::int64_t> rows_; ///< the current block's row order
    std::future<Block> next_;
    io::RowTally tally_; ///< the transfer set's fingerprint, when pending, folded into the block reads
};

} // namespace mimic::train
