// CifarSource: record offsets over several batch files; pixels and label bytes read by pread per block.
#include "mimic/io/sources/cifar_source.hpp"

#include "mimic/core/error.hpp"
#include "mimic/io/sources/raw_file.hpp"

#include <algorithm>
#include <sstream>

namespace mimic::io {

namespace {
constexpr std::int64_t kPixels = 3 * 32 * 32;

class CifarSource : public ArraySource {
public:
    CifarSource(const std::string& spec, std::vector<std::unique_ptr<RawFile>> files, int label_bytes,
                std::vector<std::int64_t> first)
        : ArraySource(spec, {first.back(), 3, 32, 32}, Elem::u8), files_(std::move(files)),
          label_bytes_(label_bytes), first_(std::move(first)) {}

    void read(std::int64_t begin, std::int64_t count, void* buf) const override {
        auto* out = static_cast<unsigned char*>(buf);
        visit(begin, count, [&](const RawFile& f, std::int64_t rec, std::int64_t n, std::int64_t i) {
            const std::int64_t rs = record();
            std::vector<unsigned char> tmp(size_t(n * rs));
            f.read_at(rec * rs, n * rs, tmp.data());
            for (std::int64_t r = 0; r < n; ++r)
                std::copy_n(tmp.data() + r * rs + label_bytes_, kPixels, out + (i + r) * kPixels);
        });
    }
    std::string native_layout() const override { return "nchw"; }
    bool has_labels() const override { return true; }
    void read_labels(std::int64_t begin, std::int64_t count, std::int64_t* y) const override {
        visit(begin, count, [&](const RawFile& f, std::int64_t rec, std::int64_t n, std::int64_t i) {
            unsigned char b[2];
            for (std::int64_t r = 0; r < n; ++r) {
                f.read_at((rec + r) * record(), label_bytes_, b);
                y[i + r] = b[label_bytes_ - 1];
            }
        });
    }

private:
    std::int64_t record() const { return label_bytes_ + kPixels; }
    /// Calls fn(file, first record in it, records, index in the output) for each file the rows span.
    template <class Fn>
    void visit(std::int64_t begin, std::int64_t count, Fn fn) const {
        std::int64_t done = 0;
        for (size_t k = 0; k < files_.size() && done < count; ++k) {
            const std::int64_t row = begin + done;
            if (row >= first_[k + 1]) continue;
            const std::int64_t n = std::min(count - done, first_[k + 1] - row);
            fn(*files_[k], row - first_[k], n, done);
            done += n;
        }
    }
    std::vector<std::unique_ptr<RawFile>> files_;
    int label_bytes_;
    std::vector<std::int64_t> first_; ///< first row of each file, then the total
};
} // namespace

std::unique_ptr<ArraySource> open_cifar(const std::string& files, bool cifar100) {
    const int label_bytes = cifar100 ? 2 : 1;
    const std::int64_t record = label_bytes + kPixels;
    std::vector<std::unique_ptr<RawFile>> fs;
    std::vector<std::int64_t> first{0};
    std::stringstream ss(files);
    std::string path;
    while (std::getline(ss, path, ',')) {
        if (path.empty()) continue;
        auto f = std::make_unique<RawFile>(path);
        if (f->size() == 0 || f->size() % record != 0)
            fail(path, ": ", f->size(), " bytes is not a whole number of ", record, "-byte ",
                 cifar100 ? "CIFAR-100" : "CIFAR-10", " records (truncated, or not ",
                 cifar100 ? "CIFAR-100" : "CIFAR-10", " binary?)");
        first.push_back(first.back() + f->size() / record);
        fs.push_back(std::move(f));
    }
    if (fs.empty()) fail("'", files, "': no CIFAR batch file named");
    return std::make_unique<CifarSource>(files, std::move(fs), label_bytes, std::move(first));
}

} // namespace mimic::io
