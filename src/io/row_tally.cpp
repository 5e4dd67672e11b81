// RowTally: the fingerprint of a large dataset summed block by block as a consumer reads its rows, then
// combined over the ranks and compared with the stored @fingerprint; and the open-time size threshold.
#include "mimic/io/row_tally.hpp"

#include "mimic/core/error.hpp"
#include "mimic/core/log.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>

namespace mimic::io {

std::int64_t fingerprint_at_open_max_bytes() {
    constexpr std::int64_t kDefault = std::int64_t(256) << 20;
    const char* s = std::getenv("MIMIC_FINGERPRINT_AT_OPEN_MAX_BYTES");
    if (!s) return kDefault;
    char* end = nullptr;
    const double v = std::strtod(s, &end);
    if (end == s || *end != '\0' || !std::isfinite(v) || v < 0 || v > 9.0e18 || v != std::floor(v))
        fail("MIMIC_FINGERPRINT_AT_OPEN_MAX_BYTES=", s,
             ": must be a whole number of bytes, 0 or more (unset: ", kDefault, ")");
    return std::int64_t(v);
}

RowTally::RowTally(const DatasetReader& reader, std::int64_t block_rows) {
    if (!reader.fingerprint_pending()) return;
    MIMIC_REQUIRE(block_rows > 0, "RowTally: block_rows must be positive, got ", block_rows);
    reader_ = &reader;
    block_ = block_rows;
    const std::int64_t blocks = (reader.meta().n + block_rows - 1) / block_rows;
    hash_.assign(size_t(blocks), 0);
    seen_flag_.assign(size_t(blocks), 0);
}

void RowTally::add(std::int64_t begin, std::int64_t count, const float* X, const int* y) {
    if (!active() || count <= 0 || (wants_labels() && !y)) return;
    const auto& m = reader_->meta();
    const std::int64_t end = begin + count;
    for (std::int64_t b = (begin + block_ - 1) / block_; b * block_ < end; ++b) {
        const std::int64_t r0 = b * block_, r1 = std::min(m.n, r0 + block_);
        if (r1 > end) break; // a partial block: left to a later read
        if (seen_flag_[size_t(b)]) continue;
        std::uint64_t sum = 0;
        for (std::int64_t r = r0; r < r1; ++r)
            sum += row_hash(r, X + (r - begin) * m.d, m.d, m.has_labels ? y[r - begin] : 0, m.has_labels);
        hash_[size_t(b)] = sum;
        seen_flag_[size_t(b)] = 1;
        ++seen_;
    }
}

namespace {

/// Combines the block hashes the ranks saw: each block as two non-negative halves, the high one marked
/// as seen, so that an element-wise maximum keeps the one value every rank that read the block has.
void combine(std::vector<std::uint64_t>& hash, std::vector<char>& seen, std::int64_t& count,
             const par::Comm& comm) {
    if (comm.size() == 1) return;
    std::vector<std::int64_t> v(2 * hash.size(), 0);
    for (size_t b = 0; b < hash.size(); ++b)
        if (seen[b]) {
            v[2 * b] = std::int64_t(hash[b] >> 32) | (std::int64_t(1) << 32);
            v[2 * b + 1] = std::int64_t(hash[b] & 0xffffffffULL);
        }
    comm.allreduce(v, par::ReduceOp::max);
    for (size_t b = 0; b < hash.size(); ++b)
        if (!seen[b] && v[2 * b] != 0) {
            hash[b] = (std::uint64_t(v[2 * b]) & 0xffffffffULL) << 32 | std::uint64_t(v[2 * b + 1]);
            seen[b] = 1;
            ++count;
        }
}

} // namespace

void RowTally::read_missing(const par::Comm& comm) {
    const auto& m = reader_->meta();
    std::vector<std::int64_t> missing;
    for (size_t b = 0; b < hash_.size(); ++b)
        if (!seen_flag_[b]) missing.push_back(std::int64_t(b));
    std::int64_t rows = 0;
    for (auto b : missing)
        rows += std::min(block_, m.n - b * block_);
    log::info("note: ", reader_->path(), ": reading ", rows,
              " rows this run did not see, to check its "
              "@fingerprint before the output is finished");
    std::vector<float> X(size_t(std::min(block_, m.n) * m.d));
    std::vector<int> y(wants_labels() ? size_t(std::min(block_, m.n)) : 0);
    // Blocks dealt round-robin; every rank takes part in every round's collective read.
    for (size_t first = 0; first < missing.size(); first += size_t(comm.size())) {
        const size_t k = first + size_t(comm.rank());
        const std::int64_t begin = k < missing.size() ? missing[k] * block_ : 0;
        const std::int64_t count = k < missing.size() ? std::min(block_, m.n - begin) : 0;
        reader_->read(begin, count, X.data(), y.empty() ? nullptr : y.data());
        add(begin, count, X.data(), y.empty() ? nullptr : y.data());
    }
    combine(hash_, seen_flag_, seen_, comm);
}

void RowTally::check(const par::Comm& comm, bool read_missing_blocks) {
    if (!active()) return;
    combine(hash_, seen_flag_, seen_, comm);
    if (!complete() && read_missing_blocks) read_missing(comm);
    if (!complete()) return;
    std::uint64_t total = 0;
    for (auto h : hash_)
        total += h;
    const std::string computed = hex64(total), stored = reader_->meta().fingerprint;
    const std::string path = reader_->path();
    reader_ = nullptr; // checked once
    if (computed != stored)
        fail(path, ": its rows hash to fingerprint ", computed, " but its @fingerprint attribute says ",
             stored,
             "; the file was changed after it was written (found while reading its rows; regenerate it)");
}

void verify_done_blocks(const h5::File& partial, const std::vector<unsigned char>& done,
                        const std::vector<unsigned long long>& hashes,
                        const std::vector<std::int64_t>& starts, const par::Comm& comm) {
    const h5::Handle X = h5::open_dataset(partial, "/X");
    const auto dims = h5::dataset_dims(X);
    MIMIC_REQUIRE(dims.size() == 2, partial.path(), ": /X is not 2-D");
    const std::int64_t n = std::int64_t(dims[0]), d = std::int64_t(dims[1]);
    const bool labels = partial.has("/y");
    h5::Handle Y;
    if (labels) Y = h5::open_dataset(partial, "/y");
    std::vector<std::int64_t> blocks;
    std::int64_t most = 0;
    for (size_t k = 0; k < done.size() && k < hashes.size() && k + 1 < starts.size(); ++k)
        if (done[k]) {
            blocks.push_back(std::int64_t(k));
            most = std::max(most, std::min(n, starts[k + 1]) - starts[k]);
        }
    std::vector<float> x(size_t(most * d));
    std::vector<int> y(labels ? size_t(most) : 0);
    std::int64_t bad = std::numeric_limits<std::int64_t>::max();
    for (size_t first = 0; first < blocks.size(); first += size_t(comm.size())) {
        const size_t k = first + size_t(comm.rank());
        const std::int64_t b = k < blocks.size() ? blocks[k] : -1;
        const std::int64_t begin = b >= 0 ? starts[size_t(b)] : 0;
        const std::int64_t count =
            b >= 0 ? std::max<std::int64_t>(0, std::min(n, starts[size_t(b) + 1]) - begin) : 0;
        h5::read_rows(X, H5T_NATIVE_FLOAT, begin, count, x.data(), partial.parallel());
        if (labels) h5::read_rows(Y, H5T_NATIVE_INT, begin, count, y.data(), partial.parallel());
        std::uint64_t sum = 0;
        for (std::int64_t i = 0; i < count; ++i)
            sum += row_hash(begin + i, x.data() + i * d, d, labels ? y[size_t(i)] : 0, labels);
        if (b >= 0 && sum != hashes[size_t(b)]) bad = std::min(bad, b);
    }
    if (comm.size() > 1) comm.allreduce(&bad, 1, par::ReduceOp::min);
    if (bad != std::numeric_limits<std::int64_t>::max())
        fail(partial.path(), ": rows [", starts[size_t(bad)], ", ", std::min(n, starts[size_t(bad) + 1]),
             ") differ from the block hash recorded when they were written; the partial file was changed "
             "after it was written (remove it to write it again)");
}

} // namespace mimic::io
