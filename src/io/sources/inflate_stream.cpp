// InflateStream: zlib's inflate over raw deflate data (windowBits -15, as zip stores it), fed from the file
// by pread in 1 MiB blocks; skipped bytes are inflated into a 1 MiB scratch block and dropped.
#include "mimic/io/sources/inflate_stream.hpp"

#include "mimic/core/error.hpp"

#include <zlib.h>

#include <algorithm>

namespace mimic::io {

namespace {
constexpr std::int64_t kBlock = std::int64_t(1) << 20;
}

struct InflateStream::State {
    z_stream s{};
    bool open = false;
};

InflateStream::InflateStream(std::shared_ptr<RawFile> f, std::string name, std::int64_t offset,
                             std::int64_t compressed, std::int64_t size, std::uint32_t crc)
    : f_(std::move(f)), name_(std::move(name)), offset_(offset), compressed_(compressed), size_(size),
      crc_expected_(crc), z_(std::make_unique<State>()), in_(size_t(kBlock)) {
    if (offset_ + compressed_ > f_->size())
        fail(name_, ": truncated: the compressed member ends past the end of the file");
    restart();
}

InflateStream::~InflateStream() {
    if (z_->open) inflateEnd(&z_->s);
}

void InflateStream::restart() {
    if (z_->open) inflateEnd(&z_->s);
    z_->s = z_stream{};
    if (inflateInit2(&z_->s, -15) != Z_OK) fail(name_, ": cannot start zlib's inflate");
    z_->open = true;
    in_pos_ = 0;
    out_pos_ = 0;
    crc_ = 0;
}

void InflateStream::inflate_to(unsigned char* out, std::int64_t n) {
    z_stream& s = z_->s;
    while (n > 0) {
        if (s.avail_in == 0) {
            const std::int64_t k = std::min(kBlock, compressed_ - in_pos_);
            if (k <= 0) fail(name_, ": truncated compressed data: it ends at byte ", out_pos_, " of ", size_);
            f_->read_at(offset_ + in_pos_, k, in_.data());
            in_pos_ += k;
            s.next_in = in_.data();
            s.avail_in = uInt(k);
        }
        if (!out && scratch_.empty()) scratch_.resize(size_t(kBlock));
        const std::int64_t want = std::min(n, out ? std::int64_t(1) << 30 : kBlock);
        s.next_out = out ? out : scratch_.data();
        s.avail_out = uInt(want);
        const int r = inflate(&s, Z_NO_FLUSH);
        const std::int64_t got = want - std::int64_t(s.avail_out);
        crc_ = std::uint32_t(crc32(crc_, out ? out : scratch_.data(), uInt(got)));
        out_pos_ += got;
        inflated_ += got;
        n -= got;
        if (out) out += got;
        if (r == Z_STREAM_END && n > 0)
            fail(name_, ": truncated compressed data: it ends at byte ", out_pos_, " of ", size_);
        if ((r != Z_OK && r != Z_STREAM_END && r != Z_BUF_ERROR) || (r == Z_BUF_ERROR && s.avail_in > 0))
            fail(name_, ": corrupt compressed data near byte ", out_pos_, " (zlib: ", s.msg ? s.msg : "error",
                 ")");
    }
}

void InflateStream::finish() {
    z_stream& s = z_->s;
    unsigned char extra = 0;
    for (;;) {
        if (s.avail_in == 0 && in_pos_ < compressed_) {
            const std::int64_t k = std::min(kBlock, compressed_ - in_pos_);
            f_->read_at(offset_ + in_pos_, k, in_.data());
            in_pos_ += k;
            s.next_in = in_.data();
            s.avail_in = uInt(k);
        }
        s.next_out = &extra;
        s.avail_out = 1;
        const int r = inflate(&s, Z_NO_FLUSH);
        if (r == Z_STREAM_END && s.avail_out == 1) break;
        if (r != Z_OK || s.avail_out == 0)
            fail(name_, ": corrupt compressed data: the stream does not end after its ", size_, " bytes");
    }
    if (crc_ != crc_expected_)
        fail(name_, ": corrupt compressed data: CRC-32 ", crc_, " of the inflated bytes, the archive says ",
             crc_expected_);
}

void InflateStream::read(std::int64_t at, std::int64_t n, void* buf) {
    if (at < 0 || at + n > size_)
        fail(name_, ": read of bytes [", at, ", ", at + n, ") past the member's ", size_, " bytes");
    if (at < out_pos_) restart();
    inflate_to(nullptr, at - out_pos_);
    inflate_to(static_cast<unsigned char*>(buf), n);
    if (out_pos_ == size_) finish();
}

} // namespace mimic::io
