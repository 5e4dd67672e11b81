// Element types, and the format detection that maps a user's spec (FILE, FILE.npz:key, FILE.h5:/path,
// comma-separated CIFAR batches, DIR) to the array source that reads it.
#include "mimic/io/array_source.hpp"

#include "mimic/core/error.hpp"
#include "mimic/io/sources/cifar_source.hpp"
#include "mimic/io/sources/hdf5_source.hpp"
#include "mimic/io/sources/idx_source.hpp"
#include "mimic/io/sources/image_folder_source.hpp"
#include "mimic/io/sources/npy_source.hpp"

#include <sys/stat.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

namespace mimic::io {

std::size_t elem_size(Elem e) {
    switch (e) {
    case Elem::u8:
    case Elem::i8:
        return 1;
    case Elem::u16:
    case Elem::i16:
    case Elem::f16:
        return 2;
    case Elem::u32:
    case Elem::i32:
    case Elem::f32:
        return 4;
    default:
        return 8;
    }
}

const char* elem_name(Elem e) {
    static const char* names[] = {"uint8",  "int8",  "uint16",  "int16",   "uint32", "int32",
                                  "uint64", "int64", "float32", "float64", "float16"};
    return names[int(e)];
}

bool elem_is_float(Elem e) {
    return e == Elem::f32 || e == Elem::f64 || e == Elem::f16;
}

double half_to_double(std::uint16_t h) {
    const int exp = h >> 10 & 0x1f, mant = h & 0x3ff;
    double v = 0;
    if (exp == 0x1f)
        v = mant ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
    else if (exp == 0)
        v = std::ldexp(double(mant), -24); // subnormal: mant * 2^-24
    else
        v = std::ldexp(double(mant | 0x400), exp - 25); // (1024 + mant) * 2^(exp - 15 - 10)
    return h & 0x8000 ? -v : v;
}

namespace {
template <class T>
void convert(const void* src, std::int64_t n, double* out) {
    const T* p = static_cast<const T*>(src);
    for (std::int64_t i = 0; i < n; ++i)
        out[i] = double(p[i]);
}

/// Half to double through a table of all 65,536 values, built once.
void convert_half(const void* src, std::int64_t n, double* out) {
    static const std::vector<double> table = [] {
        std::vector<double> t(65536);
        for (std::uint32_t h = 0; h < 65536; ++h)
            t[h] = half_to_double(std::uint16_t(h));
        return t;
    }();
    const auto* p = static_cast<const std::uint16_t*>(src);
    for (std::int64_t i = 0; i < n; ++i)
        out[i] = table[p[i]];
}
} // namespace

void elem_to_double(Elem e, const void* src, std::int64_t n, double* out) {
    switch (e) {
    case Elem::u8:
        return convert<std::uint8_t>(src, n, out);
    case Elem::i8:
        return convert<std::int8_t>(src, n, out);
    case Elem::u16:
        return convert<std::uint16_t>(src, n, out);
    case Elem::i16:
        return convert<std::int16_t>(src, n, out);
    case Elem::u32:
        return convert<std::uint32_t>(src, n, out);
    case Elem::i32:
        return convert<std::int32_t>(src, n, out);
    case Elem::u64:
        return convert<std::uint64_t>(src, n, out);
    case Elem::i64:
        return convert<std::int64_t>(src, n, out);
    case Elem::f32:
        return convert<float>(src, n, out);
    case Elem::f64:
        return convert<double>(src, n, out);
    case Elem::f16:
        return convert_half(src, n, out);
    }
}

std::int64_t ArraySource::row_elements() const {
    std::int64_t s = 1;
    for (size_t i = 1; i < dims_.size(); ++i)
        s *= dims_[i];
    return s;
}

void ArraySource::read_labels(std::int64_t, std::int64_t, std::int64_t*) const {
    fail(name_, ": this source carries no labels");
}

const std::vector<std::string>& source_formats() {
    static const std::vector<std::string> f = {"auto", "idx",   "npy",      "npz",
                                               "hdf5", "cifar", "cifar100", "images"};
    return f;
}

namespace {
bool exists(const std::string& p, bool* dir = nullptr) {
    struct stat st {};
    if (stat(p.c_str(), &st) != 0) return false;
    if (dir) *dir = S_ISDIR(st.st_mode);
    return true;
}

/// The format of `path` from its first bytes.
std::string detect(const std::string& path) {
    bool dir = false;
    if (!exists(path, &dir)) fail(path, ": no such file");
    if (dir) return "images";
    unsigned char m[8] = {0};
    std::FILE* f = std::fopen(path.c_str(), "rb");
    const size_t got = f ? std::fread(m, 1, 8, f) : 0;
    if (f) std::fclose(f);
    if (got >= 6 && std::memcmp(m, "\x93NUMPY", 6) == 0) return "npy";
    if (got >= 4 && std::memcmp(m, "PK\x03\x04", 4) == 0) return "npz";
    if (got >= 8 && std::memcmp(m, "\x89HDF\r\n\x1a\n", 8) == 0) return "hdf5";
    if (got >= 2 && m[0] == 0x1f && m[1] == 0x8b) return "idx"; // gzipped IDX
    if (got >= 4 && m[0] == 0 && m[1] == 0) return "idx";
    return ""; // not recognised: read as IDX, whose refusal then says what else was expected
}
} // namespace

std::unique_ptr<ArraySource> open_array_source(const std::string& spec, const std::string& format) {
    if (format == "cifar" || format == "cifar100") return open_cifar(spec, format == "cifar100");
    // FILE.npz:key and FILE.h5:/path: the part before the last ':' is the file when the whole is not.
    std::string path = spec, member;
    const auto colon = spec.rfind(':');
    if (!exists(spec) && colon != std::string::npos && exists(spec.substr(0, colon))) {
        path = spec.substr(0, colon);
        member = spec.substr(colon + 1);
    }
    const std::string f = format == "auto" ? detect(path) : format;
    if (!member.empty() && f != "npz" && f != "hdf5")
        fail(spec, ": names a member (':", member, "') but ", path, " is not an .npz or HDF5 file");
    if (f.empty()) {
        try {
            return open_idx_source(path);
        } catch (const Error& e) {
            fail(e.what(), "; nor is it .npy, .npz, HDF5 or a directory of class folders (CIFAR batches "
                           "need --format cifar or cifar100)");
        }
    }
    if (f == "idx") return open_idx_source(path);
    if (f == "npy") return open_npy(path);
    if (f == "npz") {
        if (member.empty()) fail(path, ": name the array as ", path, ":KEY (an .npz holds several)");
        return open_npz_member(path, member);
    }
    if (f == "hdf5") return open_hdf5_source(path, member);
    if (f == "images") return open_image_folder(path);
    fail("--format: '", format, "' is not one of auto, idx, npy, npz, hdf5, cifar, cifar100, images");
}

} // namespace mimic::io
