// The IDX array source (MNIST-format files, gzipped or plain): rows streamed by offset through zlib, so a
// rank reads only its own rows.
#pragma once

#include "mimic/io/array_source.hpp"

namespace mimic::io {

/// Opens an IDX file (header and length checked at once, see read_idx_header). Rank-4 rows are (C, H, W).
std::unique_ptr<ArraySource> open_idx_source(const std::string& path);

} // namespace mimic::io
