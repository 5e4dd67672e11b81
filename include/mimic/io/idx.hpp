// Reader for IDX files (the MNIST / Fashion-MNIST format), gzipped or plain, unsigned-byte data.
// Every malformed input (missing, bad magic, truncated) is an error naming the file and the problem.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mimic::io {

struct IdxArray {
    std::vector<std::int64_t> dims; ///< e.g. {60000, 28, 28} for images, {60000} for labels
    std::vector<std::uint8_t> data; ///< row-major, prod(dims) bytes
    std::int64_t count() const { return dims.empty() ? 0 : dims[0]; }
    std::int64_t row_size() const;
};

/// The header of an IDX file, checked against the file's length (truncation and trailing bytes are errors)
/// without keeping the data: the array sources stream rows from data_offset.
struct IdxHeader {
    std::vector<std::int64_t> dims;
    std::int64_t data_offset = 0; ///< offset of the first data byte in the uncompressed stream
};
IdxHeader read_idx_header(const std::string& path);

/// Reads an unsigned-byte IDX file (magic 0x0000 08 NN). Throws mimic::Error on any problem.
IdxArray read_idx(const std::string& path);

} // namespace mimic::io
