// The fingerprint of a dataset too large to hash when opened, folded into a pass that reads its rows
// anyway (label, distill, train) and compared with the stored @fingerprint once every row was seen; and
// the check of a resumed partial file's done blocks against their recorded hashes.
#pragma once

#include "mimic/core/comm.hpp"
#include "mimic/io/dataset.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace mimic::io {

/// Files whose /X holds at most this many bytes have their fingerprint computed when opened: 256 MiB,
/// or MIMIC_FINGERPRINT_AT_OPEN_MAX_BYTES (a whole number of bytes, 0 upwards; anything else is refused
/// naming the variable and its value).
std::int64_t fingerprint_at_open_max_bytes();

/// Sums the row hashes of whole blocks of `block_rows` rows as a consumer reads them, each block once,
/// and checks the total against the file's stored @fingerprint when every block was seen. Inactive (every
/// call a no-op) when the reader verified the fingerprint on open or the file stores none.
class RowTally {
public:
    RowTally() = default;
    RowTally(const DatasetReader& reader, std::int64_t block_rows);
    bool active() const { return reader_ != nullptr; }
    /// Whether the rows' labels are needed (the file has /y): a consumer that reads no labels reads them
    /// while the tally is active.
    bool wants_labels() const { return active() && reader_->meta().has_labels; }
    /// Hashes the whole blocks within rows [begin, begin + count) not seen yet; X holds the count rows as
    /// read (count * d floats), y their labels (when wants_labels()). Partial blocks are skipped.
    void add(std::int64_t begin, std::int64_t count, const float* X, const int* y);
    /// Every block seen by this rank.
    bool complete() const { return seen_ == std::int64_t(hash_.size()); }
    /// Collective over comm: combines what the ranks saw (a block read by several ranks counts once);
    /// when every block was seen, compares the total with @fingerprint and fails naming the file if it
    /// differs, then becomes inactive. With read_missing, blocks nobody saw are read first, round-robin
    /// over comm, which must then be the communicator the reader was opened on.
    void check(const par::Comm& comm, bool read_missing);

private:
    void read_missing(const par::Comm& comm);
    const DatasetReader* reader_ = nullptr;
    std::int64_t block_ = 1;
    std::vector<std::uint64_t> hash_; ///< per block; meaningful where seen
    std::vector<char> seen_flag_;
    std::int64_t seen_ = 0;
};

/// Collective over comm (the communicator `partial` was opened on): a resumable writer's done blocks, before
/// they are trusted. Block k holds rows [starts[k], starts[k + 1]) of /X and /y; the rows of every block
/// marked done are read (blocks dealt round-robin over the ranks) and their row-hash sum compared with the
/// hash recorded when the block was written; a block that differs fails naming the file and its rows.
void verify_done_blocks(const h5::File& partial, const std::vector<unsigned char>& done,
                        const std::vector<unsigned long long>& hashes,
                        const std::vector<std::int64_t>& starts, const par::Comm& comm);

} // namespace mimic::io
