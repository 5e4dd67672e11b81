// A read-only file read by offset (pread), for the array sources that stream rows without loading the
// file; a short read is an error naming the file.
#pragma once

#include <cstdint>
#include <string>

namespace mimic::io {

class RawFile {
public:
    /// Opens `path`; a missing, unreadable or non-regular file is an error naming it.
    explicit RawFile(const std::string& path);
    ~RawFile();
    RawFile(const RawFile&) = delete;
    RawFile& operator=(const RawFile&) = delete;
    const std::string& path() const { return path_; }
    std::int64_t size() const { return size_; }
    /// Reads n bytes at offset into buf; fewer bytes than n is an error saying the file is truncated.
    void read_at(std::int64_t offset, std::int64_t n, void* buf) const;

private:
    std::string path_;
    int fd_ = -1;
    std::int64_t size_ = 0;
};

} // namespace mimic::io
