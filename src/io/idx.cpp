// IDX decoding through zlib's gzread, which reads gzipped and plain files alike.
// The header is validated before any payload is read; short payloads are reported as truncation.
#include "mimic/io/idx.hpp"

#include "mimic/core/error.hpp"

#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace mimic::io {

std::int64_t IdxArray::row_size() const {
    std::int64_t s = 1;
    for (size_t i = 1; i < dims.size(); ++i)
        s *= dims[i];
    return s;
}

namespace {
struct GzFile {
    gzFile f = nullptr;
    ~GzFile() {
        if (f) gzclose(f);
    }
};

std::int64_t read_fully(gzFile f, void* buf, std::int64_t n, const std::string& path) {
    auto* p = static_cast<unsigned char*>(buf);
    std::int64_t got = 0;
    while (got < n) {
        const unsigned chunk = unsigned(std::min<std::int64_t>(n - got, 1 << 30));
        int r = gzread(f, p + got, chunk);
        if (r < 0) {
            int err = 0;
            const char* msg = gzerror(f, &err);
            fail(path, ": corrupt or truncated gzip data (", msg ? msg : "unknown zlib error", ")");
        }
        if (r == 0) break;
        got += r;
    }
    return got;
}
} // namespace

namespace {
/// Opens `path` and validates the IDX magic and dimensions; leaves g positioned at the first data byte.
std::vector<std::int64_t> open_and_parse(const std::string& path, GzFile& g) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) fail(path, ": no such file");
    if (!S_ISREG(st.st_mode)) fail(path, ": not a regular file");
    g.f = gzopen(path.c_str(), "rb");
    if (!g.f) fail(path, ": cannot open (", std::strerror(errno), ")");
    gzbuffer(g.f, 1 << 20);

    unsigned char magic[4];
    if (read_fully(g.f, magic, 4, path) != 4) fail(path, ": truncated IDX file (no 4-byte magic number)");
    if (magic[0] != 0 || magic[1] != 0)
        fail(path, ": wrong IDX magic number 0x", std::hex,
             int(magic[0]) << 24 | int(magic[1]) << 16 | int(magic[2]) << 8 | int(magic[3]),
             " (expected 0x000008NN; is this an MNIST-format IDX file?)");
    if (magic[2] != 0x08)
        fail(path, ": IDX data type 0x", std::hex, int(magic[2]),
             " is not supported (only unsigned bytes, 0x08)");
    const int ndim = magic[3];
    if (ndim < 1 || ndim > 4) fail(path, ": IDX file has ", ndim, " dimensions; expected 1 to 4");

    std::vector<std::int64_t> dims;
    std::int64_t total = 1;
    for (int i = 0; i < ndim; ++i) {
        unsigned char b[4];
        if (read_fully(g.f, b, 4, path) != 4)
            fail(path, ": truncated IDX header (dimension ", i, " missing)");
        const std::int64_t dim =
            std::int64_t(b[0]) << 24 | std::int64_t(b[1]) << 16 | std::int64_t(b[2]) << 8 | b[3];
        dims.push_back(dim);
        if (dim > 0 && total > (std::int64_t(1) << 40) / dim)
            fail(path, ": IDX header declares an implausible size (dimensions beyond 2^40 bytes)");
        total *= dim;
    }
    return dims;
}

std::int64_t product(const std::vector<std::int64_t>& dims) {
    std::int64_t t = 1;
    for (auto d : dims)
        t *= d;
    return t;
}

void fail_size(const std::string& path, std::int64_t total, std::int64_t got) {
    if (got < total)
        fail(path, ": truncated IDX file: header declares ", total, " data bytes but only ", got,
             " are present");
    fail(path, ": IDX file has trailing bytes after the ", total, " declared data bytes");
}

/// Bytes after the header of a gzipped file, counted by decompressing the rest (at most total + 1).
std::int64_t count_rest(gzFile f, std::int64_t total, const std::string& path) {
    std::vector<unsigned char> buf(std::size_t(1) << 20);
    std::int64_t got = 0;
    while (got <= total) {
        const std::int64_t r = read_fully(f, buf.data(), std::int64_t(buf.size()), path);
        got += r;
        if (r < std::int64_t(buf.size())) break;
    }
    return got;
}
} // namespace

IdxHeader read_idx_header(const std::string& path) {
    GzFile g;
    IdxHeader h;
    h.dims = open_and_parse(path, g);
    h.data_offset = 4 + 4 * std::int64_t(h.dims.size());
    const std::int64_t total = product(h.dims);
    struct stat st {};
    stat(path.c_str(), &st);
    if (gzdirect(g.f)) {
        const std::int64_t got = std::int64_t(st.st_size) - h.data_offset;
        if (got != total) fail_size(path, total, got);
        return h;
    }
    // A gzip member ends with the uncompressed size mod 2^32: when it agrees, the payload is whole;
    // otherwise the rest is decompressed and counted to say which.
    unsigned char t[4] = {0, 0, 0, 0};
    std::FILE* fp = std::fopen(path.c_str(), "rb");
    bool trailer_ok = false;
    if (fp && st.st_size >= 18 && std::fseek(fp, -4, SEEK_END) == 0 && std::fread(t, 1, 4, fp) == 4) {
        const std::uint32_t isize = std::uint32_t(t[0]) | std::uint32_t(t[1]) << 8 |
                                    std::uint32_t(t[2]) << 16 | std::uint32_t(t[3]) << 24;
        trailer_ok = isize == std::uint32_t(std::uint64_t(h.data_offset + total) & 0xffffffffu);
    }
    if (fp) std::fclose(fp);
    if (!trailer_ok) {
        const std::int64_t got = count_rest(g.f, total, path);
        if (got != total) fail_size(path, total, got);
    }
    return h;
}

IdxArray read_idx(const std::string& path) {
    GzFile g;
    IdxArray a;
    a.dims = open_and_parse(path, g);
    const std::int64_t total = product(a.dims);
    // Read in pieces: a header that declares more than the file holds fails as truncation after
    // allocating only what is really there, never the declared size up front.
    std::int64_t got = 0;
    while (got < total) {
        const std::int64_t piece = std::min<std::int64_t>(total - got, std::int64_t(64) << 20);
        a.data.resize(size_t(got + piece));
        const std::int64_t r = read_fully(g.f, a.data.data() + got, piece, path);
        got += r;
        if (r < piece) break;
    }
    if (got != total)
        fail(path, ": truncated IDX file: header declares ", total, " data bytes but only ", got,
             " are present");
    unsigned char extra;
    if (read_fully(g.f, &extra, 1, path) != 0)
        fail(path, ": IDX file has trailing bytes after the ", total, " declared data bytes");
    return a;
}

} // namespace mimic::io
