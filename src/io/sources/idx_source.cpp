// IdxSource: gzseek to a row's offset (forward seeks decompress only what lies between; plain files seek
// directly), then gzread; reads in rising order, as the import does, never rewind more than once.
#include "mimic/io/sources/idx_source.hpp"

#include "mimic/core/error.hpp"
#include "mimic/io/idx.hpp"

#include <zlib.h>

#include <algorithm>

namespace mimic::io {

namespace {
class IdxSource : public ArraySource {
public:
    IdxSource(const std::string& path, const IdxHeader& h)
        : ArraySource(path, h.dims, Elem::u8), offset_(h.data_offset) {
        f_ = gzopen(path.c_str(), "rb");
        if (!f_) fail(path, ": cannot open");
        gzbuffer(f_, 1 << 20);
    }
    ~IdxSource() override {
        if (f_) gzclose(f_);
    }
    void read(std::int64_t begin, std::int64_t count, void* buf) const override {
        const std::int64_t row = row_elements();
        if (gzseek(f_, z_off_t(offset_ + begin * row), SEEK_SET) < 0)
            fail(name_, ": cannot seek to row ", begin, " (corrupt gzip data?)");
        auto* p = static_cast<unsigned char*>(buf);
        std::int64_t got = 0, n = count * row;
        while (got < n) {
            const int r = gzread(f_, p + got, unsigned(std::min<std::int64_t>(n - got, 1 << 30)));
            if (r <= 0)
                fail(name_, ": corrupt or truncated data at row ",
                     begin + got / std::max<std::int64_t>(row, 1));
            got += r;
        }
    }
    std::string native_layout() const override { return "nchw"; }

private:
    gzFile f_ = nullptr;
    std::int64_t offset_;
};
} // namespace

std::unique_ptr<ArraySource> open_idx_source(const std::string& path) {
    return std::make_unique<IdxSource>(path, read_idx_header(path));
}

} // namespace mimic::io
