// RawFile: open, fstat and a pread loop that reports truncation and I/O errors with the file's name.
#include "mimic/io/sources/raw_file.hpp"

#include "mimic/core/error.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace mimic::io {

RawFile::RawFile(const std::string& path) : path_(path) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) fail(path, ": no such file");
    if (!S_ISREG(st.st_mode)) fail(path, ": not a regular file");
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) fail(path, ": cannot open (", std::strerror(errno), ")");
    size_ = std::int64_t(st.st_size);
}

RawFile::~RawFile() {
    if (fd_ >= 0) ::close(fd_);
}

void RawFile::read_at(std::int64_t offset, std::int64_t n, void* buf) const {
    auto* p = static_cast<char*>(buf);
    std::int64_t got = 0;
    while (got < n) {
        const ssize_t r = ::pread(fd_, p + got, size_t(n - got), off_t(offset + got));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) fail(path_, ": read failed at byte ", offset + got, " (", std::strerror(errno), ")");
        if (r == 0) fail(path_, ": truncated: needs bytes up to ", offset + n, " but the file has ", size_);
        got += r;
    }
}

} // namespace mimic::io
