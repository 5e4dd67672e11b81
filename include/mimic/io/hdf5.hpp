// RAII wrappers over HDF5: handles, files (serial or MPI-IO), datasets, attributes, and the
// collective row-block hyperslab transfers that every stage streams through.
#pragma once

#include "mimic/core/comm.hpp"
#include "mimic/core/error.hpp"

#include <hdf5.h>
#include <mpi.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace mimic::h5 {

/// Records that an HDF5 object failed to close (e.g. a full disk): HDF5 1.10 then crashes in its own
/// clean-up at MPI_Finalize, so the program leaves without it (see src/cli/main.cpp).
void note_close_failure();
bool had_close_failure();

/// Called before an object (dataset, group, attribute, named datatype) is closed. While an exception
/// propagates, closing an object of a parallel file can be collective (H5Dclose, H5Gclose, H5Aclose may
/// flush metadata), so the object is closed only when every rank of its file is unwinding too; otherwise
/// the job is aborted with the error (File::check_unwinding_peers). Does nothing on the normal path.
void guard_close_while_unwinding(hid_t id);

/// Owns an hid_t and closes it with the matching H5*close function.
class Handle {
public:
    using Closer = herr_t (*)(hid_t);
    Handle() = default;
    Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    Handle(Handle&& o) noexcept : id_(std::exchange(o.id_, H5I_INVALID_HID)), closer_(o.closer_) {}
    Handle& operator=(Handle&& o) noexcept {
        if (this != &o) {
            reset();
            id_ = std::exchange(o.id_, H5I_INVALID_HID);
            closer_ = o.closer_;
        }
        return *this;
    }
    ~Handle() { reset(); }
    hid_t id() const { return id_; }
    operator hid_t() const { return id_; }
    bool valid() const { return id_ >= 0; }
    void reset() {
        if (id_ >= 0 && closer_) guard_close_while_unwinding(id_);
        if (id_ >= 0 && closer_ && closer_(id_) < 0) note_close_failure();
        id_ = H5I_INVALID_HID;
    }
    /// Closes now and returns the close function's status (negative on failure).
    herr_t close() {
        if (id_ >= 0 && closer_) guard_close_while_unwinding(id_);
        herr_t rc = (id_ >= 0 && closer_) ? closer_(id_) : 0;
        if (rc < 0) note_close_failure();
        id_ = H5I_INVALID_HID;
        return rc;
    }

private:
    hid_t id_ = H5I_INVALID_HID;
    Closer closer_ = nullptr;
};

/// An open HDF5 file. With a communicator of more than one rank it uses MPI-IO (collective metadata,
/// aligned allocation); with MPI_COMM_NULL it is an ordinary serial file.
///
/// An error that unwinds through an open parallel file would otherwise run H5Fclose, a collective, while
/// the other ranks wait elsewhere. The destructor therefore first checks, for a few seconds, that every
/// rank of the file is unwinding too (an error all ranks raised alike); if not, it prints the error and
/// aborts the job instead of hanging (MIMIC_ABORT_GRACE seconds, default 3).
class File {
public:
    File() = default;
    ~File();
    File(File&& o) noexcept;
    File& operator=(File&& o) noexcept;
    File(const File&) = delete;
    File& operator=(const File&) = delete;
    /// Creates (truncates) `path`. Collective over comm when comm != MPI_COMM_NULL.
    static File create(const std::string& path, MPI_Comm comm = MPI_COMM_NULL);
    /// Opens an existing file; a missing or non-HDF5 file is a clear error naming the path.
    static File open(const std::string& path, MPI_Comm comm = MPI_COMM_NULL, bool writable = false);
    /// The same over the ranks of comm: MPI-IO when it has more than one rank, a serial file otherwise.
    static File create(const std::string& path, const par::Comm& comm);
    static File open(const std::string& path, const par::Comm& comm, bool writable = false);

    hid_t id() const { return h_.id(); }
    const std::string& path() const { return path_; }
    bool parallel() const { return parallel_; }
    /// Rank within the file's communicator (0 for serial files).
    int rank() const { return rank_; }
    bool has(const std::string& name) const;
    void flush() const;
    /// The MPI-IO hints the MPI library reports for a parallel file (MPI_File_get_info); none if serial.
    std::vector<std::pair<std::string, std::string>> mpi_hints() const;
    /// Closes the file and checks that everything reached the disk; close every dataset first.
    void close();

    /// While an error unwinds: aborts the job unless every rank of the file is unwinding too (checked once;
    /// guard_close_while_unwinding calls it for the file's objects).
    void check_unwinding_peers();

private:
    void release_guard();
    void track(); ///< registers this object as the guard of its file id (parallel files only)

    Handle h_;
    std::string path_;
    bool parallel_ = false;
    int rank_ = 0;
    MPI_Comm guard_ = MPI_COMM_NULL; ///< private duplicate of the file's communicator (size > 1 only)
    int uncaught_ = 0;               ///< exceptions already in flight when the file was opened
    bool peers_unwinding_ = false;   ///< every rank was found unwinding: collective closes may proceed
};

/// HDF5 type for a C++ scalar.
template <class T>
hid_t type_of();

/// Dataset creation options.
struct DatasetOptions {
    std::int64_t chunk_rows = 0; ///< 0: contiguous layout
    int deflate = 0;             ///< 0: no compression (needs chunking)
};

Handle create_dataset(const File& f, const std::string& name, hid_t type, const std::vector<hsize_t>& dims,
                      const DatasetOptions& opt = {});
Handle open_dataset(const File& f, const std::string& name);
std::vector<hsize_t> dataset_dims(hid_t dset);
/// Ensures the groups along `name` ("/a/b/c" creates /a and /a/b) exist.
void ensure_groups(const File& f, const std::string& name);

/// Writes/reads rows [row, row + nrows) of a 1-D or 2-D dataset (all columns).
/// With collective = true every rank of the file's communicator must call (nrows may be 0).
void write_rows(hid_t dset, hid_t memtype, std::int64_t row, std::int64_t nrows, const void* buf,
                bool collective);
void read_rows(hid_t dset, hid_t memtype, std::int64_t row, std::int64_t nrows, void* buf, bool collective);
/// A regular hyperslab (start, stride, count, block per dimension); empty() selects nothing (a rank that
/// takes part in a collective transfer without data).
struct Selection {
    std::vector<hsize_t> start, stride, count, block;
    bool empty() const;
    hsize_t elements() const;
};
/// Transfers a selection of dset to/from a contiguous buffer of selection.elements() values.
void write_selection(hid_t dset, hid_t memtype, const Selection& sel, const void* buf, bool collective);
void read_selection(hid_t dset, hid_t memtype, const Selection& sel, void* buf, bool collective);

/// Reads a whole (small) dataset into a vector on every rank. write_all creates and writes one (rank 0
/// supplies the data in a parallel file; every rank must call).
template <class T>
std::vector<T> read_all(const File& f, const std::string& name);
template <class T>
void write_all(const File& f, const std::string& name, const std::vector<T>& v);

// --- attributes on the file root (obj = file id) or any object ---------------------------------
bool has_attr(hid_t obj, const std::string& name);
void write_attr(hid_t obj, const std::string& name, const std::string& value);
void write_attr(hid_t obj, const std::string& name, long long value);
void write_attr(hid_t obj, const std::string& name, double value);
void write_attr(hid_t obj, const std::string& name, const std::vector<long long>& values);
void write_attr(hid_t obj, const std::string& name, const std::vector<double>& values);
inline void write_attr(hid_t obj, const std::string& name, const char* value) {
    write_attr(obj, name, std::string(value));
}
inline void write_attr(hid_t obj, const std::string& name, int value) {
    write_attr(obj, name, (long long)value);
}
inline void write_attr(hid_t obj, const std::string& name, std::int64_t value) {
    write_attr(obj, name, (long long)value);
}
std::string read_attr_string(hid_t obj, const std::string& name);
long long read_attr_int(hid_t obj, const std::string& name);
double read_attr_double(hid_t obj, const std::string& name);
std::vector<long long> read_attr_ints(hid_t obj, const std::string& name);
std::vector<double> read_attr_doubles(hid_t obj, const std::string& name);

/// Alignment in bytes for large objects (MIMIC_HDF5_ALIGNMENT, default 1 MiB: set it to the stripe size).
hsize_t alignment_bytes();

/// MPI-IO hints (key, value), handed through an MPI_Info to every parallel file open or create.
using IoHints = std::vector<std::pair<std::string, std::string>>;
/// Parses "key=value[,key=value...]" ("" gives none); malformed text is an error naming `origin`.
IoHints parse_io_hints(const std::string& text, const std::string& origin);
/// Sets the hints of every later parallel open (`--io-hints`); until then they come from MIMIC_IO_HINTS.
void set_io_hints(const std::string& text, const std::string& origin = "--io-hints");
const IoHints& io_hints();

/// The directory part of a path ("." when there is none, "/" for files in the root).
std::string parent_dir(const std::string& path);

} // namespace mimic::h5
