// NumPy array sources: a `.npy` file and a member of an `.npz` archive (`FILE.npz:key`), read by offset
// from the parsed header (format versions 1 to 3; C order only; npz members stored by np.savez or deflated
// by np.savez_compressed, the latter inflated block by block).
#pragma once

#include "mimic/io/array_source.hpp"

namespace mimic::io {

/// Opens a .npy file. Refuses Fortran order, object ('|O', e.g. ragged lists), structured and unsupported
/// dtypes, and files shorter than the header declares.
std::unique_ptr<ArraySource> open_npy(const std::string& path);
/// Opens member `key` (or `key.npy`) of an .npz archive (zip64 included). A deflated member is inflated
/// from its start on every read that goes backwards, and up to a rank's first row on its first read: deflate
/// cannot seek, so each rank inflates everything before its rows (see InflateStream).
std::unique_ptr<ArraySource> open_npz_member(const std::string& path, const std::string& key);

} // namespace mimic::io
