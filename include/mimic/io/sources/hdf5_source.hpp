// The HDF5 array source: one numeric dataset of a user's HDF5 file (`FILE.h5:/path`, e.g. written by
// h5py), each rank reading its own rows as a hyperslab.
#pragma once

#include "mimic/io/array_source.hpp"

namespace mimic::io {

/// Opens dataset `dataset` of `path`. Refuses missing datasets (naming those present at the root), and
/// variable-length (ragged), string, compound and other non-numeric types.
std::unique_ptr<ArraySource> open_hdf5_source(const std::string& path, const std::string& dataset);

} // namespace mimic::io
