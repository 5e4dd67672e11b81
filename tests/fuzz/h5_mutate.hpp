// Structure-aware mutation of an HDF5 file for the fuzz targets: the input bytes are a small program of
// edits (set an element, an attribute, delete or reshape a dataset, change its type), applied to a valid
// file, so that the fuzzer reaches the readers' checks behind the HDF5 superblock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace mimic::fuzz {

/// Applies the edits that `data` encodes to the HDF5 file at `path` (opened read-write). Edits that do
/// not apply (no such item, a failing HDF5 call) are skipped; HDF5's own error printing is off.
void mutate_h5(const std::string& path, const std::uint8_t* data, std::size_t size);

} // namespace mimic::fuzz
