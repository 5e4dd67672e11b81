// The two batch sources of the engine: the shuffled in-memory loader over a training set, and the
// shuffled block streamer over a transfer set and its logits with read-ahead on an I/O thread.
#include "mimic/train/batch_source.hpp"

#include "mimic/core/error.hpp"
#include "mimic/core/rng.hpp"

#include <cstring>
#include <numeric>

namespace mimic::train {

ShuffledBatches::ShuffledBatches(TrainSource& src, std::int64_t batch, std::int64_t block,
                                 std::int64_t window, std::uint64_t seed, const par::Comm& replicas)
    : src_(src), comm_(replicas), loader_(src, batch, block, window, replicas), seed_(seed), batch_(batch) {}

void ShuffledBatches::start_epoch(int epoch, std::int64_t) {
    loader_.start_epoch(seed_, epoch);
    epoch_ = epoch;
}

Slice ShuffledBatches::next(std::int64_t step, float* x, int* y, float*) {
    const auto s = loader_.load(step, x, src_.has_labels() ? y : nullptr);
    if (augmenter_) {
        rows_.resize(size_t(s.rows));
        for (std::int64_t i = 0; i < s.rows; ++i)
            rows_[size_t(i)] = loader_.order().row_at(step * batch_ + s.first + i);
    }
    return Slice{s.global_rows, s.first, s.rows};
}

void ShuffledBatches::augment(const Matrix& x, const Slice& sl) {
    if (!augmenter_) return;
    MIMIC_REQUIRE(std::int64_t(rows_.size()) == sl.rows, "internal: augment after a batch of ", rows_.size(),
                  " rows, not ", sl.rows);
    augmenter_->apply(x, rows_, seed_, epoch_);
}

namespace {

/// A seeded Fisher-Yates permutation of 0..n-1.
std::vector<std::int64_t> permutation(std::int64_t n, std::uint64_t key) {
    std::vector<std::int64_t> p(static_cast<size_t>(n));
    std::iota(p.begin(), p.end(), 0);
    CounterRng r(key);
    for (std::int64_t i = n - 1; i > 0; --i)
        std::swap(p[size_t(i)], p[size_t(r.below(std::uint64_t(i + 1)))]);
    return p;
}

} // namespace

BlockStreamer::BlockStreamer(const Inputs& in, std::int64_t batch, std::int64_t block_rows,
                             std::uint64_t seed, int replicas, int replica, bool prefetch)
    : in_(in), n_(in.transfer->meta().n), d_(in.transfer->meta().d), c_(in.logits_meta.num_classes),
      batch_(batch), block_rows_(block_rows), seed_(seed), R_(replicas), replica_(replica),
      prefetch_(prefetch), tally_(*in.transfer, block_rows > 0 ? block_rows : 1) {
    // Refused here as well as in the option layer: a zero batch or block would divide by zero below.
    if (batch <= 0) fail("--batch: must be at least 1 row, got ", batch);
    if (block_rows <= 0) fail("--block-rows: must be at least 1 row, got ", block_rows);
    if (replicas <= 0) fail("internal: a BlockStreamer needs at least one data replica, got ", replicas);
    num_blocks_ = (n_ + block_rows - 1) / block_rows;
    for (std::int64_t b = 0; b < num_blocks_; ++b)
        steps_per_epoch_ += batches_in(b);
}

BlockStreamer::~BlockStreamer() {
    if (next_.valid()) next_.wait();
}

BlockStreamer::Block BlockStreamer::read_block(std::int64_t b) {
    Block blk;
    blk.id = b;
    blk.row0 = b * block_rows_;
    blk.n = block_size(b);
    blk.X.resize(size_t(blk.n * d_));
    blk.T.resize(size_t(blk.n * c_));
    const bool labels = in_.labels || tally_.wants_labels();
    if (labels) blk.y.resize(size_t(blk.n));
    in_.transfer->read(blk.row0, blk.n, blk.X.data(), labels ? blk.y.data() : nullptr);
    io::read_logits_rows(*in_.logits_file, in_.logits, in_.logits_meta, blk.row0, blk.n, blk.T.data());
    tally_.add(blk.row0, blk.n, blk.X.data(), labels ? blk.y.data() : nullptr); // one block in flight at most
    return blk;
}

void BlockStreamer::launch(std::int64_t k) {
    if (k >= num_blocks_) return;
    const std::int64_t b = order_[size_t(k)];
    next_ = std::async(prefetch_ ? std::launch::async : std::launch::deferred,
                       [this, b] { return read_block(b); });
}

void BlockStreamer::start_epoch(int epoch, std::int64_t first_step) {
    pause();
    epoch_ = epoch;
    order_ = permutation(num_blocks_, derive_seed(seed_, 0xB10C, std::uint64_t(epoch)));
    // Skip the blocks (and batches) a resumed run has already done.
    std::int64_t first = 0, skip = first_step;
    while (first < num_blocks_ && skip >= batches_in(order_[size_t(first)]))
        skip -= batches_in(order_[size_t(first++)]);
    k_ = first - 1;
    j_ = skip;
    cur_ = Block{};
    launch(first);
}

void BlockStreamer::advance() {
    const std::int64_t skip = cur_.id < 0 ? j_ : 0; // the first block of a resumed epoch starts mid-way
    cur_ = next_.get();
    ++k_;
    launch(k_ + 1); // overlaps with the compute on this block
    rows_ = permutation(cur_.n, derive_seed(seed_, 0x5107 + std::uint64_t(epoch_), std::uint64_t(cur_.id)));
    j_ = skip;
}

Slice BlockStreamer::next(std::int64_t, float* x, int* y, float* soft) {
    if (cur_.id < 0 || j_ >= batches_in(cur_.id)) advance();
    const std::int64_t b0 = j_ * batch_, nb = std::min(batch_, cur_.n - b0);
    const auto part = par::split_range(nb, R_, replica_);
    for (std::int64_t i = 0; i < part.size(); ++i) {
        const std::int64_t r = rows_[size_t(b0 + part.begin + i)];
        std::memcpy(x + i * d_, cur_.X.data() + r * d_, size_t(d_) * sizeof(float));
        std::memcpy(soft + i * c_, cur_.T.data() + r * c_, size_t(c_) * sizeof(float));
        if (in_.labels) y[i] = cur_.y[size_t(r)];
    }
    ++j_;
    return Slice{nb, part.begin, part.size()};
}

void BlockStreamer::pause() {
    if (next_.valid()) next_.wait();
}

void BlockStreamer::check_rows(bool final) {
    if (!tally_.active()) return;
    MIMIC_REQUIRE(in_.io_comm, "BlockStreamer: the transfer set's communicator is not set");
    pause();
    tally_.check(*in_.io_comm, final);
}

} // namespace mimic::train
