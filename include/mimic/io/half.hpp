// IEEE binary16 (half precision): conversion to and from float32 with round to nearest even, and
// an HDF5 file type for it; float16 logits and fp16 dataset files store their values through these.
#pragma once

#include "mimic/io/hdf5.hpp"

#include <cstdint>

namespace mimic::io {

/// IEEE binary16 conversion (round to nearest even); NaN stays NaN, overflow gives infinity.
std::uint16_t float_to_half(float f);
float half_to_float(std::uint16_t h);
/// An HDF5 file type for IEEE binary16 little-endian (h5py reads it as numpy float16).
h5::Handle make_half_type();

} // namespace mimic::io
