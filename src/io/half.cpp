// IEEE binary16 (half precision) by hand: conversion with round to nearest even, and the HDF5 file
// type h5py reads as numpy float16 (HDF5 1.10 has no predefined one).
#include "mimic/io/half.hpp"

#include <cstring>

namespace mimic::io {

std::uint16_t float_to_half(float f) {
    std::uint32_t x;
    std::memcpy(&x, &f, 4);
    const std::uint32_t sign = (x >> 16) & 0x8000u;
    std::uint32_t mant = x & 0x7fffffu;
    const int exp = int((x >> 23) & 0xff);
    if (exp == 0xff) return std::uint16_t(sign | 0x7c00u | (mant ? 0x200u : 0u)); // inf / nan
    int e = exp - 127 + 15;
    if (e >= 0x1f) return std::uint16_t(sign | 0x7c00u); // overflow -> inf
    if (e <= 0) {                                        // subnormal or zero
        if (e < -10) return std::uint16_t(sign);
        mant |= 0x800000u;
        const int shift = 14 - e;
        std::uint32_t h = mant >> shift;
        const std::uint32_t rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1u))) ++h;
        return std::uint16_t(sign | h);
    }
    std::uint32_t h = (std::uint32_t(e) << 10) | (mant >> 13);
    const std::uint32_t rem = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h; // may carry into the exponent: correct
    return std::uint16_t(sign | h);
}

float half_to_float(std::uint16_t h) {
    const std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16;
    const int exp = (h >> 10) & 0x1f;
    std::uint32_t mant = h & 0x3ffu, x;
    if (exp == 0) {
        if (mant == 0) {
            x = sign;
        } else {
            int e = -1;
            do {
                ++e;
                mant <<= 1;
            } while (!(mant & 0x400u));
            x = sign | (std::uint32_t(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
        }
    } else if (exp == 0x1f) {
        x = sign | 0x7f800000u | (mant << 13);
    } else {
        x = sign | (std::uint32_t(exp - 15 + 127) << 23) | (mant << 13);
    }
    float f;
    std::memcpy(&f, &x, 4);
    return f;
}

h5::Handle make_half_type() {
    h5::Handle t(MIMIC_H5_CHECK(H5Tcopy(H5T_IEEE_F32LE)), H5Tclose);
    MIMIC_H5_CHECK(H5Tset_fields(t, 15, 10, 5, 0, 10));
    MIMIC_H5_CHECK(H5Tset_size(t, 2));
    MIMIC_H5_CHECK(H5Tset_ebias(t, 15));
    return t;
}

} // namespace mimic::io
