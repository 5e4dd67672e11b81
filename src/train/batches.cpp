// Epoch order and batch loading: Fisher-Yates permutations from counter-based RNG streams keyed by
// (seed, epoch, window), window buffers filled by collective reads of merged contiguous block runs.
#include "mimic/train/batches.hpp"

#include "mimic/core/error.hpp"
#include "mimic/core/rng.hpp"

#include <algorithm>
#include <cstring>

namespace mimic::train {

// --- DatasetSource ---------------------------------------------------------------------------------

DatasetSource::DatasetSource(const std::string& path, const par::Comm& comm) : reader_(path, comm) {}

Shape DatasetSource::shape() const {
    const auto& m = reader_.meta();
    return Shape{m.c, m.h, m.w};
}

void DatasetSource::read(std::int64_t begin, std::int64_t count, float* x, int* y) {
    reader_.read(begin, count, x, y);
    tally_.add(begin, count, x, y);
}

// --- EpochOrder ------------------------------------------------------------------------------------

EpochOrder::EpochOrder(std::int64_t n, std::int64_t block, std::int64_t window, std::uint64_t seed, int epoch)
    : n_(n), block_(std::max<std::int64_t>(1, block)) {
    MIMIC_REQUIRE(n >= 0 && window >= 0, "EpochOrder: negative size");
    const std::int64_t nb = (n + block_ - 1) / block_;
    blocks_per_window_ = window <= 0 || window >= n ? std::max<std::int64_t>(1, nb)
                                                    : std::max<std::int64_t>(1, window / block_);
    MIMIC_REQUIRE(nb == 0 || (nb + blocks_per_window_ - 1) / blocks_per_window_ < (std::int64_t(1) << 30),
                  "EpochOrder: too many windows");
    MIMIC_REQUIRE(blocks_per_window_ * block_ < (std::int64_t(1) << 31),
                  "--shuffle-window: at most 2^31 rows");
    key_ = derive_seed(seed, 0x5348554646ULL, std::uint64_t(epoch));
    block_order_.resize(size_t(nb));
    for (std::int64_t b = 0; b < nb; ++b)
        block_order_[size_t(b)] = b;
    if (blocks_per_window_ < nb) {
        CounterRng rng(derive_seed(key_, 1));
        for (std::int64_t i = nb - 1; i > 0; --i)
            std::swap(block_order_[size_t(i)], block_order_[size_t(rng.below(std::uint64_t(i + 1)))]);
    }
    window_start_.push_back(0);
    for (std::int64_t first = 0; first < nb; first += blocks_per_window_) {
        std::int64_t rows = 0;
        for (std::int64_t b = first; b < std::min(nb, first + blocks_per_window_); ++b)
            rows += block_rows(block_order_[size_t(b)]);
        window_start_.push_back(window_start_.back() + rows);
    }
}

std::vector<std::int64_t> EpochOrder::window_blocks(int w) const {
    MIMIC_REQUIRE(w >= 0 && w < num_windows(), "EpochOrder: window ", w, " out of range");
    const auto first = block_order_.begin() + long(w) * blocks_per_window_;
    const auto last =
        block_order_.begin() + std::min<long>(long(block_order_.size()), long(w + 1) * blocks_per_window_);
    std::vector<std::int64_t> b(first, last);
    std::sort(b.begin(), b.end());
    return b;
}

const std::vector<std::int32_t>& EpochOrder::perm(int w) const {
    auto it = perms_.find(w);
    if (it != perms_.end()) return it->second;
    while (perms_.size() >= 3)
        perms_.erase(perms_.begin());
    const std::int64_t m = window_start_[size_t(w) + 1] - window_start_[size_t(w)];
    std::vector<std::int32_t> p(static_cast<size_t>(m));
    for (std::int64_t i = 0; i < m; ++i)
        p[size_t(i)] = std::int32_t(i);
    CounterRng rng(derive_seed(key_, 2, std::uint64_t(w)));
    for (std::int64_t i = m - 1; i > 0; --i)
        std::swap(p[size_t(i)], p[size_t(rng.below(std::uint64_t(i + 1)))]);
    return perms_.emplace(w, std::move(p)).first->second;
}

std::pair<int, std::int64_t> EpochOrder::locate(std::int64_t p) const {
    MIMIC_REQUIRE(p >= 0 && p < n_, "EpochOrder: position ", p, " out of range");
    const int w =
        int(std::upper_bound(window_start_.begin(), window_start_.end(), p) - window_start_.begin()) - 1;
    return {w, perm(w)[size_t(p - window_start_[size_t(w)])]};
}

std::int64_t EpochOrder::row_at(std::int64_t p) const {
    auto [w, idx] = locate(p);
    for (auto b : window_blocks(w)) {
        const std::int64_t r = block_rows(b);
        if (idx < r) return b * block_ + idx;
        idx -= r;
    }
    fail("EpochOrder: internal error locating position ", p);
}

// --- BatchLoader -----------------------------------------------------------------------------------

BatchLoader::BatchLoader(TrainSource& src, std::int64_t batch, std::int64_t block, std::int64_t window,
                         const par::Comm& comm)
    : src_(src), batch_(batch), block_(block), window_(window), comm_(comm) {
    if (batch < 1) fail("--batch: must be >= 1, got ", batch);
    if (block < 1) fail("--shuffle-block: must be >= 1, got ", block);
    if (window < 0) fail("--shuffle-window: must be >= 0, got ", window);
    if (window > 0 && window < src.rows()) {
        if (window < block)
            fail("--shuffle-window: ", window, " rows is less than one block (--shuffle-block ", block, ")");
        if ((window / block) * block < batch)
            fail("--shuffle-window: ", window, " rows hold fewer whole blocks than one batch (--batch ",
                 batch, ")");
    }
    if (src.rows() < 1) fail(src.describe(), ": no rows to train on");
}

void BatchLoader::start_epoch(std::uint64_t seed, int epoch) {
    order_ = std::make_unique<EpochOrder>(src_.rows(), block_, window_, seed, epoch);
    previous_.clear();
    for (auto& [w, win] : cache_)
        previous_.push_back(std::move(win));
    cache_.clear();
}

BatchLoader::Window& BatchLoader::window(int w) {
    auto it = cache_.find(w);
    if (it != cache_.end()) return it->second;
    const auto blocks = order_->window_blocks(w);
    for (auto& prev : previous_)
        if (prev.blocks == blocks) {
            Window& win = cache_[w] = std::move(prev);
            previous_.clear();
            return win;
        }
    previous_.clear();
    Window& win = cache_[w];
    win.blocks = blocks;
    std::int64_t rows = 0;
    for (auto b : blocks)
        rows += order_->block_rows(b);
    const std::int64_t d = src_.features();
    win.x.resize(size_t(rows * d));
    if (src_.has_labels()) win.y.resize(size_t(rows));
    // Merge runs of consecutive blocks into one contiguous read each (the same runs on every rank).
    std::int64_t at = 0;
    for (size_t i = 0; i < blocks.size();) {
        size_t j = i + 1;
        while (j < blocks.size() && blocks[j] == blocks[j - 1] + 1)
            ++j;
        const std::int64_t begin = blocks[i] * order_->block();
        const std::int64_t end = std::min(src_.rows(), (blocks[j - 1] + 1) * order_->block());
        src_.read(begin, end - begin, win.x.data() + at * d, win.y.empty() ? nullptr : win.y.data() + at);
        at += end - begin;
        i = j;
    }
    return win;
}

BatchLoader::Slice BatchLoader::load(std::int64_t step, float* x, int* y) {
    MIMIC_REQUIRE(order_, "BatchLoader::load before start_epoch");
    MIMIC_REQUIRE(step >= 0 && step < steps_per_epoch(), "BatchLoader: step ", step, " out of range");
    const std::int64_t n = src_.rows();
    const std::int64_t begin = step * batch_, end = std::min(n, begin + batch_);
    Slice s;
    s.global_rows = end - begin;
    const auto part = par::split_range(s.global_rows, comm_.size(), comm_.rank());
    s.first = part.begin;
    s.rows = part.size();
    // Windows the global batch touches (the same on every rank, so the reads stay collective).
    const int w_lo = order_->locate(begin).first, w_hi = order_->locate(end - 1).first;
    for (auto it = cache_.begin(); it != cache_.end();)
        it = it->first < w_lo ? cache_.erase(it) : std::next(it);
    for (int w = w_lo; w <= w_hi; ++w)
        window(w);
    const std::int64_t d = src_.features();
    for (std::int64_t i = 0; i < s.rows; ++i) {
        const auto [w, idx] = order_->locate(begin + s.first + i);
        const Window& win = cache_.at(w);
        std::memcpy(x + i * d, win.x.data() + idx * d, size_t(d) * sizeof(float));
        if (y && !win.y.empty()) y[i] = win.y[size_t(idx)];
    }
    return s;
}

std::int64_t BatchLoader::resident_bytes() const {
    std::int64_t b = 0;
    for (const auto& [w, win] : cache_)
        b += std::int64_t(win.x.size() * sizeof(float) + win.y.size() * sizeof(int));
    return b;
}

} // namespace mimic::train
