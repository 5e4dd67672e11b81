// The resume record of a partial output file written in row blocks (/progress/done, /progress/block_hash):
// which blocks are on disk and the sum of each block's row hashes, so a rerun computes only the rest.
#pragma once

#include "mimic/io/hdf5.hpp"

#include <cstdint>
#include <vector>

namespace mimic::io {

class BlockRecord {
public:
    BlockRecord() = default;
    /// Collective: creates the record for num_blocks blocks, none done (contiguous datasets are allocated
    /// without fill, so it is zeroed explicitly).
    static BlockRecord create(h5::File& file, std::int64_t num_blocks);
    /// Opens the record of a partial file written earlier.
    static BlockRecord open(h5::File& file);

    /// Collective: reads the whole record into done() and hashes().
    void read();
    const std::vector<unsigned char>& done() const { return done_; }
    const std::vector<unsigned long long>& hashes() const { return hash_; }

    /// Pipelined marking, one flush per commit. add() notes that block k's rows (and the sum of their row
    /// hashes) have been written, not yet flushed; every rank calls it alike, have = false on a rank
    /// without a block. commit() (collective) writes the records of the blocks that the previous commit
    /// flushed, then flushes once: their records and the rows of every block added since are then on disk,
    /// and those blocks are recorded at the next commit. A done flag therefore never points at rows that
    /// are not on disk. drain() commits until every added block is recorded and flushed.
    void add(bool have, std::int64_t k, unsigned long long hash);
    void commit();
    void drain();
    /// Collective: whether this round flushes under `flush_seconds` (a stage's --flush-seconds): always
    /// for 0, else once S seconds have passed on any rank since the last drain (or since the record was
    /// opened or created), so a restart redoes at most about S seconds of work.
    bool flush_due(double flush_seconds, const par::Comm& comm) const;
    /// add(), then the flush that flush_due() decided: a commit every round for 0 (one flush per round),
    /// else a drain when due. Collective when it flushes; a stage that must agree on errors calls
    /// flush_due() outside its agreed block and this inside.
    void add_and_flush(bool have, std::int64_t k, unsigned long long hash, double flush_seconds, bool due);
    /// Both of the above in one collective call.
    void add_and_flush(bool have, std::int64_t k, unsigned long long hash, double flush_seconds,
                       const par::Comm& comm) {
        add_and_flush(have, k, hash, flush_seconds, flush_due(flush_seconds, comm));
    }
    /// add() calls whose done records are on disk (every rank counts alike).
    std::int64_t recorded() const { return recorded_; }

    /// Closes the datasets (before the file is closed).
    void close();

private:
    struct Pending {
        bool have = false;
        std::int64_t k = 0;
        unsigned long long hash = 0;
    };
    /// Writes one block's hash and done flag, independently (nothing on a rank with have = false).
    void write_record(const Pending& p);

    h5::File* file_ = nullptr;
    h5::Handle done_ds_, hash_ds_;
    std::int64_t n_ = 0;
    std::vector<unsigned char> done_;
    std::vector<unsigned long long> hash_;
    std::vector<Pending> written_; ///< rows written, not yet flushed
    std::vector<Pending> flushed_; ///< rows flushed, record not yet written
    double last_drain_ = 0;        ///< wall_seconds() at open or create, then at the last timed drain
    std::int64_t recorded_ = 0;
};

} // namespace mimic::io
