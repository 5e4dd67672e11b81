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

    /// Collective: flushes the file, so the block's rows are on disk, then marks block k done with the sum
    /// of its row hashes and flushes again. A rank without a block this round passes have = false.
    void mark(bool have, std::int64_t k, unsigned long long hash);
    /// Closes the datasets (before the file is closed).
    void close();

private:
    h5::File* file_ = nullptr;
    h5::Handle done_ds_, hash_ds_;
    std::int64_t n_ = 0;
    std::vector<unsigned char> done_;
    std::vector<unsigned long long> hash_;
};

} // namespace mimic::io
