// .npy header parsing (magic, version, the header dict's descr / fortran_order / shape) and .npz member
// lookup through the zip central directory (zip64 included); the array is read by pread (stored members)
// or inflated block by block (deflated members), never loaded.
#include "mimic/io/sources/npy_source.hpp"

#include "mimic/core/error.hpp"
#include "mimic/io/sources/inflate_stream.hpp"
#include "mimic/io/sources/raw_file.hpp"

#include <algorithm>
#include <cstring>
#include <functional>
#include <sstream>

namespace mimic::io {

namespace {
struct NpyHeader {
    std::vector<std::int64_t> dims;
    Elem elem = Elem::u8;
    bool swap = false;            ///< big-endian data on this (little-endian) host
    bool fortran = false;         ///< column-major: the row index varies fastest
    std::int64_t data_offset = 0; ///< from the start of the array's bytes
};

/// The value text of `'key':` in the header dict, up to the next top-level ',' or '}'.
std::string dict_value(const std::string& hdr, const std::string& key, const std::string& name) {
    const auto k = hdr.find("'" + key + "'");
    if (k == std::string::npos) fail(name, ": .npy header has no '", key, "' entry");
    auto p = hdr.find(':', k);
    if (p == std::string::npos) fail(name, ": malformed .npy header");
    ++p;
    int depth = 0;
    std::string v;
    for (; p < hdr.size(); ++p) {
        const char c = hdr[p];
        if (c == '(' || c == '[') ++depth;
        if (c == ')' || c == ']') --depth;
        if (depth == 0 && (c == ',' || c == '}')) break;
        v += c;
    }
    const auto a = v.find_first_not_of(" \t"), b = v.find_last_not_of(" \t");
    return a == std::string::npos ? "" : v.substr(a, b - a + 1);
}

Elem parse_descr(const std::string& descr, const std::string& name, bool& swap) {
    if (descr.empty() || descr[0] == '[')
        fail(name, ": structured NumPy arrays (dtype ", descr,
             ") are not supported; save a plain numeric array");
    if (descr.size() < 4 || (descr.front() != '\'' && descr.front() != '"'))
        fail(name, ": malformed .npy dtype ", descr);
    const std::string d = descr.substr(1, descr.size() - 2);
    if (d.find('O') != std::string::npos)
        fail(name, ": holds Python objects (dtype ", d,
             "; a ragged list of arrays?); save a rectangular "
             "numeric array, e.g. np.stack(rows)");
    const char order = d[0];
    if (order != '<' && order != '>' && order != '|' && order != '=')
        fail(name, ": malformed .npy dtype ", d);
    swap = order == '>';
    const std::string t = d.substr(1);
    static const std::pair<const char*, Elem> known[] = {
        {"u1", Elem::u8},  {"i1", Elem::i8},  {"u2", Elem::u16}, {"i2", Elem::i16},
        {"u4", Elem::u32}, {"i4", Elem::i32}, {"u8", Elem::u64}, {"i8", Elem::i64},
        {"f2", Elem::f16}, {"f4", Elem::f32}, {"f8", Elem::f64}, {"b1", Elem::i8}}; // bool: 0 and 1
    for (const auto& [code, e] : known)
        if (t == code) return e;
    fail(name, ": NumPy dtype ", d,
         " is not supported (use bool, uint8, int8-64, uint16-64, float16, float32 or float64)");
}

std::vector<std::int64_t> parse_shape(const std::string& text, const std::string& name) {
    if (text.size() < 2 || text.front() != '(' || text.back() != ')')
        fail(name, ": malformed .npy shape ", text);
    std::vector<std::int64_t> dims;
    std::stringstream ss(text.substr(1, text.size() - 2));
    std::string item;
    while (std::getline(ss, item, ',')) {
        const auto a = item.find_first_not_of(" L"), b = item.find_last_not_of(" L");
        if (a == std::string::npos) continue;
        const std::string v = item.substr(a, b - a + 1);
        if (v.find_first_not_of("0123456789") != std::string::npos || v.size() > 18)
            fail(name, ": malformed or implausible .npy shape ", text);
        dims.push_back(std::stoll(v));
    }
    if (dims.empty()) fail(name, ": holds a scalar (shape ()); an array of rows is needed");
    return dims;
}

/// Reads bytes [offset, offset + n) of the array (its header first) into buf.
using ReadAt = std::function<void(std::int64_t offset, std::int64_t n, void* buf)>;

NpyHeader parse_npy(const ReadAt& read_at, const std::string& name) {
    unsigned char pre[12];
    read_at(0, 10, pre);
    if (std::memcmp(pre, "\x93NUMPY", 6) != 0) fail(name, ": not a .npy array (no \\x93NUMPY magic)");
    const int major = pre[6];
    std::int64_t hlen = 0, hstart = 10;
    if (major == 1) {
        hlen = pre[8] | pre[9] << 8;
    } else if (major == 2 || major == 3) {
        read_at(10, 2, pre + 10);
        hlen = std::int64_t(pre[8]) | std::int64_t(pre[9]) << 8 | std::int64_t(pre[10]) << 16 |
               std::int64_t(pre[11]) << 24;
        hstart = 12;
    } else {
        fail(name, ": .npy format version ", major, " is not supported (1, 2 or 3)");
    }
    if (hlen > (1 << 24)) fail(name, ": implausible .npy header length ", hlen);
    std::string hdr(size_t(hlen), '\0');
    read_at(hstart, hlen, hdr.data());
    NpyHeader h;
    h.elem = parse_descr(dict_value(hdr, "descr", name), name, h.swap);
    const std::string order = dict_value(hdr, "fortran_order", name);
    if (order != "False" && order != "True") fail(name, ": malformed .npy fortran_order ", order);
    h.fortran = order == "True";
    h.dims = parse_shape(dict_value(hdr, "shape", name), name);
    h.data_offset = hstart + hlen;
    return h;
}

/// Reverses the bytes of each of n elements of s bytes (big-endian arrays on this little-endian host).
void byteswap(void* buf, std::int64_t n, size_t s) {
    auto* p = static_cast<unsigned char*>(buf);
    for (std::int64_t i = 0; i < n; ++i)
        std::reverse(p + size_t(i) * s, p + size_t(i + 1) * s);
}

/// Rows [begin, begin + count) of the array described by h, in C order and native byte order, into buf
/// through read_at (offsets from the array's start). A Fortran-order array holds each element of a row
/// for all N rows together: one read per row element gathers the count rows' values, which are then
/// placed at their C-order positions within each row.
void read_rows(const ReadAt& read_at, const NpyHeader& h, std::int64_t begin, std::int64_t count, void* buf) {
    const std::int64_t s = std::int64_t(elem_size(h.elem));
    std::int64_t e = 1;
    for (size_t k = 1; k < h.dims.size(); ++k)
        e *= h.dims[k];
    if (!h.fortran || e == 1 || count == 0) {
        read_at(h.data_offset + begin * e * s, count * e * s, buf);
    } else {
        std::vector<unsigned char> t(size_t(count * e * s));
        for (std::int64_t f = 0; f < e; ++f)
            read_at(h.data_offset + (f * h.dims[0] + begin) * s, count * s, t.data() + f * count * s);
        auto* out = static_cast<unsigned char*>(buf);
        for (std::int64_t f = 0; f < e; ++f) {
            std::int64_t c = 0, rest = f; // f's C-order index: the first row index varies fastest in f
            for (size_t k = 1; k < h.dims.size(); ++k) {
                std::int64_t stride = 1;
                for (size_t j = k + 1; j < h.dims.size(); ++j)
                    stride *= h.dims[j];
                c += (rest % h.dims[k]) * stride;
                rest /= h.dims[k];
            }
            for (std::int64_t r = 0; r < count; ++r)
                std::memcpy(out + (r * e + c) * s, t.data() + (f * count + r) * s, size_t(s));
        }
    }
    if (h.swap) byteswap(buf, count * e, size_t(s));
}

class NpySource : public ArraySource {
public:
    NpySource(std::shared_ptr<RawFile> f, std::string name, const NpyHeader& h, std::int64_t base)
        : ArraySource(std::move(name), h.dims, h.elem), f_(std::move(f)), h_(h), base_(base) {}
    void read(std::int64_t begin, std::int64_t count, void* buf) const override {
        read_rows([&](std::int64_t o, std::int64_t n, void* b) { f_->read_at(base_ + o, n, b); }, h_, begin,
                  count, buf);
    }

private:
    std::shared_ptr<RawFile> f_;
    NpyHeader h_;
    std::int64_t base_; ///< the array's first byte (its header's) in the file
};

/// Refuses an array of `length` bytes (header included) shorter than its header declares.
void check_length(const NpyHeader& h, std::int64_t length, const std::string& name) {
    std::int64_t bytes = std::int64_t(elem_size(h.elem));
    for (auto d : h.dims) {
        if (d > 0 && bytes > (std::int64_t(1) << 50) / d) fail(name, ": implausible .npy shape");
        bytes *= d;
    }
    const std::int64_t have = length - h.data_offset;
    if (have < bytes)
        fail(name, ": truncated: the header declares ", bytes, " data bytes but only ",
             std::max<std::int64_t>(have, 0), " are present");
}

std::unique_ptr<ArraySource> make_npy(std::shared_ptr<RawFile> f, const std::string& name, std::int64_t base,
                                      std::int64_t length) {
    const NpyHeader h =
        parse_npy([&](std::int64_t o, std::int64_t n, void* buf) { f->read_at(base + o, n, buf); }, name);
    check_length(h, length, name);
    return std::make_unique<NpySource>(std::move(f), name, h, base);
}

std::uint64_t le(const unsigned char* p, int n) {
    std::uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i)
        v = v << 8 | p[i];
    return v;
}
} // namespace

std::unique_ptr<ArraySource> open_npy(const std::string& path) {
    auto f = std::make_shared<RawFile>(path);
    return make_npy(f, path, 0, f->size());
}

namespace {
struct ZipMember {
    std::string name;
    int method = 0;
    std::int64_t size = 0, compressed = 0, local_offset = 0;
    std::uint32_t crc = 0;
};

/// The central directory's location (entries, offset) from the end records, zip64 included.
std::pair<std::int64_t, std::int64_t> central_directory(const RawFile& f, const std::string& path) {
    const std::int64_t tail = std::min<std::int64_t>(f.size(), 65557);
    std::vector<unsigned char> t(static_cast<size_t>(tail));
    f.read_at(f.size() - tail, tail, t.data());
    std::int64_t e = -1;
    for (std::int64_t i = tail - 22; i >= 0; --i)
        if (le(&t[size_t(i)], 4) == 0x06054b50) {
            e = i;
            break;
        }
    if (e < 0)
        fail(path, ": not a complete .npz (zip) archive: no end-of-central-directory record (truncated?)");
    std::int64_t entries = std::int64_t(le(&t[size_t(e + 10)], 2)),
                 offset = std::int64_t(le(&t[size_t(e + 16)], 4));
    if (entries == 0xffff || offset == 0xffffffffLL) {
        if (e < 20 || le(&t[size_t(e - 20)], 4) != 0x07064b50)
            fail(path, ": zip64 locator missing (truncated?)");
        unsigned char r[56];
        f.read_at(std::int64_t(le(&t[size_t(e - 12)], 8)), 56, r);
        if (le(r, 4) != 0x06064b50) fail(path, ": malformed zip64 end record");
        entries = std::int64_t(le(r + 32, 8));
        offset = std::int64_t(le(r + 48, 8));
    }
    return {entries, offset};
}

std::vector<ZipMember> zip_members(const RawFile& f, const std::string& path) {
    auto [entries, p] = central_directory(f, path);
    std::vector<ZipMember> out;
    for (std::int64_t i = 0; i < entries; ++i) {
        unsigned char h[46];
        f.read_at(p, 46, h);
        if (le(h, 4) != 0x02014b50) fail(path, ": malformed zip central directory (entry ", i, ")");
        const std::int64_t nl = std::int64_t(le(h + 28, 2)), xl = std::int64_t(le(h + 30, 2)),
                           cl = std::int64_t(le(h + 32, 2));
        std::vector<unsigned char> var(size_t(nl + xl));
        f.read_at(p + 46, nl + xl, var.data());
        ZipMember m;
        m.name.assign(var.begin(), var.begin() + nl);
        m.method = int(le(h + 10, 2));
        std::uint64_t usize = le(h + 24, 4), csize = le(h + 20, 4), off = le(h + 42, 4);
        for (std::int64_t x = nl; x + 4 <= nl + xl;) { // zip64 extra field: the 64-bit values in order
            const std::int64_t id = std::int64_t(le(&var[size_t(x)], 2)),
                               len = std::int64_t(le(&var[size_t(x + 2)], 2));
            if (id == 1) {
                std::int64_t q = x + 4;
                const std::int64_t end = std::min(x + 4 + len, nl + xl);
                auto next = [&](std::uint64_t& v) { // the next 64-bit value, when the field holds it
                    if (q + 8 > end) fail(path, ": malformed zip64 extra field (entry ", i, ")");
                    v = le(&var[size_t(q)], 8);
                    q += 8;
                };
                if (usize == 0xffffffffu) next(usize);
                if (csize == 0xffffffffu) next(csize);
                if (off == 0xffffffffu) next(off);
            }
            x += 4 + len;
        }
        m.size = std::int64_t(usize);
        m.compressed = std::int64_t(csize);
        m.crc = std::uint32_t(le(h + 16, 4));
        m.local_offset = std::int64_t(off);
        out.push_back(m);
        p += 46 + nl + xl + cl;
    }
    return out;
}
/// A member deflated by np.savez_compressed: rows are inflated from the member's start up to them (see
/// InflateStream), so a rank reading rows [b, e) inflates b's preceding bytes too.
class DeflatedNpySource : public ArraySource {
public:
    DeflatedNpySource(std::unique_ptr<InflateStream> z, std::string name, const NpyHeader& h)
        : ArraySource(std::move(name), h.dims, h.elem), z_(std::move(z)), h_(h) {}
    void read(std::int64_t begin, std::int64_t count, void* buf) const override {
        read_rows([&](std::int64_t o, std::int64_t n, void* b) { z_->read(o, n, b); }, h_, begin, count, buf);
    }

private:
    std::unique_ptr<InflateStream> z_;
    NpyHeader h_;
};

std::unique_ptr<ArraySource> make_deflated_npy(std::shared_ptr<RawFile> f, const std::string& name,
                                               const ZipMember& m, std::int64_t data) {
    auto z = std::make_unique<InflateStream>(std::move(f), name, data, m.compressed, m.size, m.crc);
    const NpyHeader h =
        parse_npy([&](std::int64_t o, std::int64_t n, void* buf) { z->read(o, n, buf); }, name);
    check_length(h, m.size, name);
    return std::make_unique<DeflatedNpySource>(std::move(z), name, h);
}

} // namespace

std::unique_ptr<ArraySource> open_npz_member(const std::string& path, const std::string& key) {
    auto f = std::make_shared<RawFile>(path);
    const std::string name = path + ":" + key;
    std::string names;
    for (const auto& m : zip_members(*f, path)) {
        if (m.name != key && m.name != key + ".npy") {
            names += (names.empty() ? "" : ", ") + m.name.substr(0, m.name.rfind(".npy"));
            continue;
        }
        if (m.method != 0 && m.method != 8)
            fail(name, ": zip compression method ", m.method,
                 " is not supported (np.savez stores, np.savez_compressed deflates)");
        unsigned char lh[30];
        f->read_at(m.local_offset, 30, lh);
        if (le(lh, 4) != 0x04034b50) fail(name, ": malformed zip local header");
        const std::int64_t data =
            m.local_offset + 30 + std::int64_t(le(lh + 26, 2)) + std::int64_t(le(lh + 28, 2));
        if (m.method == 8) return make_deflated_npy(f, name, m, data);
        if (data + m.size > f->size()) fail(name, ": truncated: the member ends past the end of the file");
        return make_npy(f, name, data, m.size);
    }
    fail(path, ": has no member '", key, "' (members: ", names.empty() ? "none" : names, ")");
}

} // namespace mimic::io
