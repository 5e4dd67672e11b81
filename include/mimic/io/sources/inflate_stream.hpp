// A raw-deflate stream inside a file (an .npz member written by np.savez_compressed), read forward by
// uncompressed offset through zlib in fixed-size blocks: memory stays bounded whatever the member's size.
#pragma once

#include "mimic/io/sources/raw_file.hpp"

#include <memory>
#include <vector>

namespace mimic::io {

class InflateStream {
public:
    /// The deflate data of `name` at bytes [offset, offset + compressed) of f, inflating to `size` bytes
    /// whose CRC-32 is `crc` (from the zip directory).
    InflateStream(std::shared_ptr<RawFile> f, std::string name, std::int64_t offset, std::int64_t compressed,
                  std::int64_t size, std::uint32_t crc);
    ~InflateStream();
    InflateStream(const InflateStream&) = delete;
    InflateStream& operator=(const InflateStream&) = delete;
    /// Uncompressed bytes [at, at + n) into buf. Deflate cannot seek: reading forward inflates (and drops)
    /// what lies between; an offset before the current one inflates again from the start. A corrupt or
    /// short stream is an error naming the member and the offset. A read that reaches the end checks that
    /// the stream ends there and that the CRC-32 of everything inflated from the start matches.
    void read(std::int64_t at, std::int64_t n, void* buf);
    /// Uncompressed bytes inflated so far, skipped ones included (for measurements and tests).
    std::int64_t inflated() const { return inflated_; }

private:
    void restart();
    /// Inflates the next n bytes into out (nullptr: into the scratch block, dropped).
    void inflate_to(unsigned char* out, std::int64_t n);
    /// At the end of the data: the stream must end there with the directory's CRC-32.
    void finish();
    std::shared_ptr<RawFile> f_;
    std::string name_;
    std::int64_t offset_, compressed_, size_;
    std::uint32_t crc_expected_, crc_ = 0;
    std::int64_t in_pos_ = 0;   ///< compressed bytes handed to zlib
    std::int64_t out_pos_ = 0;  ///< uncompressed offset of the stream
    std::int64_t inflated_ = 0; ///< total uncompressed bytes produced, over restarts
    struct State;
    std::unique_ptr<State> z_;
    std::vector<unsigned char> in_, scratch_;
};

} // namespace mimic::io
