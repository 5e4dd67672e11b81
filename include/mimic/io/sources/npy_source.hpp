// NumPy array sources: a `.npy` file and a member of an `.npz` archive (`FILE.npz:key`), read by offset
// from the parsed header (format versions 1 to 3, C or Fortran order; npz members stored by np.savez or
// deflated by np.savez_compressed, the latter inflated block by block).
#pragma once

#include "mimic/io/array_source.hpp"

namespace mimic::io {

/// Opens a .npy file. A Fortran-order array is read with one read per row element for each block of rows
/// (the rows' values of one element lie together). Refuses object ('|O', e.g. ragged lists), structured and
/// unsupported dtypes, and files shorter than the header declares.
std::unique_ptr<ArraySource> open_npy(const std::string& path);
/// Opens member `key` (or `key.npy`) of an .npz archive (zip64 included). A deflated member is inflated
/// from its start on every read that goes backwards, and up to a rank's first row on its first read: deflate
/// cannot seek, so each rank inflates everything before its rows (see InflateStream); a Fortran-order
/// deflated member is inflated up to its last element for every block.
std::unique_ptr<ArraySource> open_npz_member(const std::string& path, const std::string& key);

} // namespace mimic::io
