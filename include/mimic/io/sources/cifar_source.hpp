// The CIFAR-10/100 binary source: batch files of records (CIFAR-10: 1 label byte; CIFAR-100: 1 coarse and
// 1 fine label byte) followed by 3,072 bytes, the 32x32 R, G and B planes; rows (3, 32, 32) with labels.
#pragma once

#include "mimic/io/array_source.hpp"

namespace mimic::io {

/// Opens comma-separated batch files as one source, rows in file order. cifar100 = true reads CIFAR-100
/// records and takes the fine labels. A file whose length is not a whole number of records is refused.
std::unique_ptr<ArraySource> open_cifar(const std::string& files, bool cifar100);

} // namespace mimic::io
