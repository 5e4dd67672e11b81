// An array source: N rows of one fixed shape and element type in a user's file (IDX, .npy, .npz member,
// HDF5 dataset, CIFAR batches, image folder), read by row ranges so that each rank streams its own block.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mimic::io {

/// Element types a source may hold (f16: IEEE half precision, converted exactly).
enum class Elem { u8, i8, u16, i16, u32, i32, u64, i64, f32, f64, f16 };
std::size_t elem_size(Elem e);
const char* elem_name(Elem e);
bool elem_is_float(Elem e);
/// The IEEE half-precision value with bits h, exactly (NaN and infinities included).
double half_to_double(std::uint16_t h);
/// Converts n elements of type e at src to double.
void elem_to_double(Elem e, const void* src, std::int64_t n, double* out);

/// One array of a file. dims()[0] is the row count; the other dimensions are one row, in storage order.
class ArraySource {
public:
    virtual ~ArraySource() = default;
    /// The file (and member) as the user named it, for messages.
    const std::string& name() const { return name_; }
    const std::vector<std::int64_t>& dims() const { return dims_; }
    Elem elem() const { return elem_; }
    std::int64_t rows() const { return dims_.empty() ? 0 : dims_[0]; }
    std::int64_t row_elements() const;
    /// Rows [begin, begin + count) as count * row_elements() elements of elem(), in storage order and in
    /// native byte order, into buf. Any short or failed read is an error naming the file.
    virtual void read(std::int64_t begin, std::int64_t count, void* buf) const = 0;
    /// The layout of rank-4 rows when the format fixes it ("nchw" for CIFAR, image folders and IDX); ""
    /// when the user must say (--layout).
    virtual std::string native_layout() const { return ""; }
    /// Labels carried by the rows themselves (CIFAR records, image folders).
    virtual bool has_labels() const { return false; }
    /// Labels of rows [begin, begin + count); only when has_labels().
    virtual void read_labels(std::int64_t begin, std::int64_t count, std::int64_t* y) const;
    /// Class names, by label, where the source names its classes (image folders); empty otherwise.
    virtual std::vector<std::string> class_names() const { return {}; }

protected:
    ArraySource(std::string name, std::vector<std::int64_t> dims, Elem elem)
        : name_(std::move(name)), dims_(std::move(dims)), elem_(elem) {}
    std::string name_;
    std::vector<std::int64_t> dims_;
    Elem elem_;
};

/// The formats `--format` names ("auto" detects by content).
const std::vector<std::string>& source_formats();

/// Opens `spec` as `format`: a file, `FILE.npz:key`, `FILE.h5:/path`, comma-separated CIFAR batch files
/// or a directory of class subfolders. "auto" detects the format by content (IDX magic or gzip, \x93NUMPY,
/// a zip's PK\x03\x04, the HDF5 signature, a directory); CIFAR has no magic and needs --format cifar or
/// cifar100. Every problem is an error naming the file.
std::unique_ptr<ArraySource> open_array_source(const std::string& spec, const std::string& format);

} // namespace mimic::io
