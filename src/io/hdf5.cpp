// HDF5 wrapper implementation: file access property lists (MPI-IO, alignment, collective metadata),
// datasets, attributes and the row-block hyperslab transfers.
#include "mimic/io/hdf5.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <thread>

namespace mimic::h5 {

namespace {

std::string object_where(hid_t obj) {
    char fname[1024] = {0}, oname[1024] = {0};
    H5Fget_name(obj, fname, sizeof fname);
    H5Iget_name(obj, oname, sizeof oname);
    std::string s = fname;
    if (oname[0] && std::strcmp(oname, "/") != 0) s += std::string(" ") + oname;
    return s.empty() ? "<hdf5 object>" : s;
}

/// The io_hints() as an MPI_Info (MPI_INFO_NULL when there are none); the caller frees it.
MPI_Info make_info() {
    MPI_Info info = MPI_INFO_NULL;
    if (io_hints().empty()) return info;
    MIMIC_MPI_CHECK(MPI_Info_create(&info));
    for (const auto& [key, value] : io_hints())
        MIMIC_MPI_CHECK(MPI_Info_set(info, key.c_str(), value.c_str()));
    return info;
}

Handle make_fapl(MPI_Comm comm) {
    Handle fapl(MIMIC_H5_CHECK(H5Pcreate(H5P_FILE_ACCESS)), H5Pclose);
    if (comm != MPI_COMM_NULL) {
        MPI_Info info = make_info();
        const herr_t rc = H5Pset_fapl_mpio(fapl, comm, info); // HDF5 keeps its own copy of the info
        if (info != MPI_INFO_NULL) MPI_Info_free(&info);
        MIMIC_H5_CHECK(rc);
        MIMIC_H5_CHECK(H5Pset_all_coll_metadata_ops(fapl, true));
        MIMIC_H5_CHECK(H5Pset_coll_metadata_write(fapl, true));
    }
    // Only objects at least one alignment unit large are aligned (small chunks would waste most of a unit).
    MIMIC_H5_CHECK(H5Pset_alignment(fapl, alignment_bytes(), alignment_bytes()));
    MIMIC_H5_CHECK(H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST));
    return fapl;
}

Handle make_dxpl(bool collective) {
    Handle dxpl(MIMIC_H5_CHECK(H5Pcreate(H5P_DATASET_XFER)), H5Pclose);
    if (collective) MIMIC_H5_CHECK(H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE));
    return dxpl;
}

} // namespace

std::string parent_dir(const std::string& path) {
    auto slash = path.find_last_of('/');
    if (slash == std::string::npos) return ".";
    if (slash == 0) return "/";
    return path.substr(0, slash);
}

namespace {
bool g_close_failed = false;
}
void note_close_failure() {
    g_close_failed = true;
    H5Eclear2(H5E_DEFAULT);
}
bool had_close_failure() {
    return g_close_failed;
}

hsize_t alignment_bytes() {
    if (const char* s = std::getenv("MIMIC_HDF5_ALIGNMENT")) {
        long long v = std::atoll(s);
        if (v > 0) return static_cast<hsize_t>(v);
    }
    return 1 << 20;
}

namespace {
bool g_hints_set = false;
IoHints g_hints;
} // namespace

IoHints parse_io_hints(const std::string& text, const std::string& origin) {
    IoHints hints;
    size_t pos = 0;
    while (pos < text.size()) {
        size_t end = text.find(',', pos);
        if (end == std::string::npos) end = text.size();
        const std::string item = text.substr(pos, end - pos);
        const size_t eq = item.find('=');
        const std::string key = item.substr(0, eq),
                          value = eq == std::string::npos ? "" : item.substr(eq + 1);
        const bool key_ok =
            !key.empty() && key.size() < MPI_MAX_INFO_KEY &&
            key.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") ==
                std::string::npos;
        const bool value_ok = !value.empty() && value.size() < MPI_MAX_INFO_VAL &&
                              value.find_first_of(" \t=") == std::string::npos;
        if (eq == std::string::npos || !key_ok || !value_ok)
            fail(origin, ": '", item, "' is not a hint of the form key=value (keys of letters, digits and _ ",
                 "under ", MPI_MAX_INFO_KEY,
                 " characters; values without blanks; hints separated by commas)");
        hints.emplace_back(key, value);
        pos = end + 1;
        if (end + 1 == text.size()) fail(origin, ": '", text, "' ends with a comma");
    }
    return hints;
}

void set_io_hints(const std::string& text, const std::string& origin) {
    g_hints = parse_io_hints(text, origin);
    g_hints_set = true;
}

const IoHints& io_hints() {
    if (!g_hints_set) {
        const char* env = std::getenv("MIMIC_IO_HINTS");
        set_io_hints(env ? env : "", "MIMIC_IO_HINTS");
    }
    return g_hints;
}

namespace {

/// Takes part in `comm`'s guard when it has more than one rank (collective, like the open itself).
MPI_Comm make_guard(MPI_Comm comm) {
    if (comm == MPI_COMM_NULL) return MPI_COMM_NULL;
    int size = 1;
    MPI_Comm_size(comm, &size);
    if (size < 2) return MPI_COMM_NULL;
    MPI_Comm dup = MPI_COMM_NULL;
    MIMIC_MPI_CHECK(MPI_Comm_dup(comm, &dup));
    return dup;
}

} // namespace

namespace {
/// The open parallel files by file id, so that closing one of their objects while an error unwinds can
/// ask the file whether every rank is unwinding (guard_close_while_unwinding).
std::map<hid_t, File*>& guarded_files() {
    static std::map<hid_t, File*> files;
    return files;
}
} // namespace

void guard_close_while_unwinding(hid_t id) {
    if (std::uncaught_exceptions() == 0) return;
    const H5I_type_t type = H5Iget_type(id);
    if (type != H5I_DATASET && type != H5I_GROUP && type != H5I_ATTR && type != H5I_DATATYPE) return;
    // The file's own id (one more reference to it), or < 0 for a transient datatype.
    const hid_t fid = H5Iget_file_id(id);
    if (fid < 0) {
        H5Eclear2(H5E_DEFAULT);
        return;
    }
    const auto it = guarded_files().find(fid);
    File* file = it == guarded_files().end() ? nullptr : it->second;
    if (H5Idec_ref(fid) < 0) H5Eclear2(H5E_DEFAULT); // drops only the reference taken above
    if (file) file->check_unwinding_peers();
}

void File::check_unwinding_peers() {
    if (h_.valid() && guard_ != MPI_COMM_NULL && !peers_unwinding_ &&
        std::uncaught_exceptions() > uncaught_) {
        if (!all_ranks_arrive(guard_)) {
            const std::string& why = last_error_message();
            abort_job(why.empty() ? path_ + ": an unexpected error was raised while the file was open" : why);
        }
        peers_unwinding_ = true;
    }
}

void File::track() {
    if (guard_ != MPI_COMM_NULL && h_.valid()) guarded_files()[h_.id()] = this;
}

File::~File() {
    check_unwinding_peers();
    release_guard();
    h_.reset();
}

File::File(File&& o) noexcept
    : h_(std::move(o.h_)), path_(std::move(o.path_)), parallel_(o.parallel_), rank_(o.rank_),
      guard_(std::exchange(o.guard_, MPI_COMM_NULL)), uncaught_(o.uncaught_),
      peers_unwinding_(o.peers_unwinding_) {
    track();
}

File& File::operator=(File&& o) noexcept {
    if (this != &o) {
        release_guard();
        h_ = std::move(o.h_);
        path_ = std::move(o.path_);
        parallel_ = o.parallel_;
        rank_ = o.rank_;
        guard_ = std::exchange(o.guard_, MPI_COMM_NULL);
        uncaught_ = o.uncaught_;
        peers_unwinding_ = o.peers_unwinding_;
        track();
    }
    return *this;
}

void File::release_guard() {
    if (h_.valid()) {
        const auto it = guarded_files().find(h_.id());
        if (it != guarded_files().end() && it->second == this) guarded_files().erase(it);
    }
    int fin = 0;
    MPI_Finalized(&fin);
    if (guard_ != MPI_COMM_NULL && !fin) MPI_Comm_free(&guard_);
    guard_ = MPI_COMM_NULL;
}

File File::create(const std::string& path, MPI_Comm comm) {
    const std::string dir = parent_dir(path);
    struct stat st {};
    if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        fail(path, ": cannot create output file: directory '", dir, "' does not exist");
    if (access(dir.c_str(), W_OK) != 0)
        fail(path, ": cannot create output file: directory '", dir, "' is not writable (",
             std::strerror(errno), ")");
    File f;
    f.path_ = path;
    f.parallel_ = comm != MPI_COMM_NULL;
    if (f.parallel_) MPI_Comm_rank(comm, &f.rank_);
    auto fapl = make_fapl(comm);
    hid_t id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    if (id < 0) {
        H5Eclear2(H5E_DEFAULT);
        fail(path, ": cannot create HDF5 file (check permissions, free space and file locking; on parallel "
                   "file systems without locks set HDF5_USE_FILE_LOCKING=FALSE)");
    }
    f.h_ = Handle(id, H5Fclose);
    f.guard_ = make_guard(comm);
    f.uncaught_ = std::uncaught_exceptions();
    f.track();
    return f;
}

File File::open(const std::string& path, MPI_Comm comm, bool writable) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) fail(path, ": no such file");
    if (!S_ISREG(st.st_mode)) fail(path, ": not a regular file");
    htri_t is = H5Fis_hdf5(path.c_str());
    if (is <= 0) {
        H5Eclear2(H5E_DEFAULT);
        fail(path, ": not an HDF5 file (or it is truncated or corrupt)");
    }
    File f;
    f.path_ = path;
    f.parallel_ = comm != MPI_COMM_NULL;
    if (f.parallel_) MPI_Comm_rank(comm, &f.rank_);
    auto fapl = make_fapl(comm);
    hid_t id = H5Fopen(path.c_str(), writable ? H5F_ACC_RDWR : H5F_ACC_RDONLY, fapl);
    if (id < 0) {
        H5Eclear2(H5E_DEFAULT);
        fail(path, ": cannot open HDF5 file", writable ? " for writing" : "",
             " (corrupt, locked by another process, or not readable)");
    }
    f.h_ = Handle(id, H5Fclose);
    f.guard_ = make_guard(comm);
    f.uncaught_ = std::uncaught_exceptions();
    f.track();
    return f;
}

File File::create(const std::string& path, const par::Comm& comm) {
    return create(path, comm.size() > 1 ? comm.get() : MPI_COMM_NULL);
}

File File::open(const std::string& path, const par::Comm& comm, bool writable) {
    return open(path, comm.size() > 1 ? comm.get() : MPI_COMM_NULL, writable);
}

bool File::has(const std::string& name) const {
    // Walk the path so that a missing intermediate group is "absent", not an error.
    std::string cur;
    size_t pos = 0;
    while (pos != std::string::npos) {
        size_t next = name.find('/', pos + 1);
        cur = name.substr(0, next);
        if (!cur.empty() && cur != "/") {
            htri_t e = H5Lexists(id(), cur.c_str(), H5P_DEFAULT);
            if (e <= 0) {
                H5Eclear2(H5E_DEFAULT);
                return false;
            }
        }
        pos = next;
    }
    return true;
}

void File::close() {
    if (!h_.valid()) return;
    check_unwinding_peers(); // a writer's destructor closes explicitly while an error unwinds
    release_guard();
    if (h_.close() < 0) {
        H5Eclear2(H5E_DEFAULT);
        fail(path_,
             ": closing the file failed; its contents may be incomplete (disk full, or objects still open)");
    }
}

void File::flush() const {
    if (H5Fflush(id(), H5F_SCOPE_GLOBAL) < 0) {
        try {
            detail::throw_hdf5_error("H5Fflush", __FILE__, __LINE__);
        } catch (const Error& e) {
            fail(path_, ": writing to disk failed (disk full or quota exceeded?): ", e.what());
        }
    }
}

std::vector<std::pair<std::string, std::string>> File::mpi_hints() const {
    std::vector<std::pair<std::string, std::string>> hints;
    if (!parallel_) return hints;
    // Not H5Fget_access_plist: it duplicates the communicator, a collective.
    MPI_File* fh = nullptr;
    MIMIC_H5_CHECK(H5Fget_vfd_handle(id(), H5P_DEFAULT, reinterpret_cast<void**>(&fh)));
    MPI_Info info = MPI_INFO_NULL;
    MIMIC_MPI_CHECK(MPI_File_get_info(*fh, &info));
    int n = 0;
    MIMIC_MPI_CHECK(MPI_Info_get_nkeys(info, &n));
    for (int i = 0; i < n; ++i) {
        char key[MPI_MAX_INFO_KEY + 1] = {0}, value[MPI_MAX_INFO_VAL + 1] = {0};
        int flag = 0;
        MIMIC_MPI_CHECK(MPI_Info_get_nthkey(info, i, key));
        MIMIC_MPI_CHECK(MPI_Info_get(info, key, MPI_MAX_INFO_VAL, value, &flag));
        if (flag) hints.emplace_back(key, value);
    }
    MPI_Info_free(&info);
    return hints;
}

template <>
hid_t type_of<float>() {
    return H5T_NATIVE_FLOAT;
}
template <>
hid_t type_of<double>() {
    return H5T_NATIVE_DOUBLE;
}
template <>
hid_t type_of<int>() {
    return H5T_NATIVE_INT;
}
template <>
hid_t type_of<long long>() {
    return H5T_NATIVE_LLONG;
}
template <>
hid_t type_of<unsigned char>() {
    return H5T_NATIVE_UCHAR;
}
template <>
hid_t type_of<unsigned long long>() {
    return H5T_NATIVE_ULLONG;
}
template <>
hid_t type_of<unsigned long>() {
    return H5T_NATIVE_ULONG;
}
template <>
hid_t type_of<long>() {
    return H5T_NATIVE_LONG;
}
template <>
hid_t type_of<signed char>() {
    return H5T_NATIVE_SCHAR;
}

void ensure_groups(const File& f, const std::string& name) {
    size_t pos = 1;
    while ((pos = name.find('/', pos)) != std::string::npos) {
        std::string g = name.substr(0, pos);
        if (!f.has(g)) {
            Handle gh(MIMIC_H5_CHECK(H5Gcreate2(f.id(), g.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)),
                      H5Gclose);
        }
        ++pos;
    }
}

Handle create_dataset(const File& f, const std::string& name, hid_t type, const std::vector<hsize_t>& dims,
                      const DatasetOptions& opt) {
    ensure_groups(f, name);
    Handle space(MIMIC_H5_CHECK(H5Screate_simple(int(dims.size()), dims.data(), nullptr)), H5Sclose);
    Handle dcpl(MIMIC_H5_CHECK(H5Pcreate(H5P_DATASET_CREATE)), H5Pclose);
    MIMIC_H5_CHECK(H5Pset_obj_track_times(dcpl, false));
    if (opt.chunk_rows > 0 && !dims.empty() && dims[0] > 0) {
        std::vector<hsize_t> chunk = dims;
        chunk[0] = std::min<hsize_t>(dims[0], hsize_t(opt.chunk_rows));
        MIMIC_H5_CHECK(H5Pset_chunk(dcpl, int(chunk.size()), chunk.data()));
        if (opt.deflate > 0) MIMIC_H5_CHECK(H5Pset_deflate(dcpl, unsigned(opt.deflate)));
    } else {
        // Contiguous: allocate at creation so that parallel writers never race on allocation.
        MIMIC_H5_CHECK(H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY));
        MIMIC_H5_CHECK(H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER));
    }
    hid_t d = H5Dcreate2(f.id(), name.c_str(), type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (d < 0) {
        H5Eclear2(H5E_DEFAULT);
        fail(f.path(), ": cannot create dataset ", name, " (disk full or quota exceeded?)");
    }
    return Handle(d, H5Dclose);
}

Handle open_dataset(const File& f, const std::string& name) {
    if (!f.has(name)) fail(f.path(), ": dataset ", name, " is missing");
    return Handle(MIMIC_H5_CHECK(H5Dopen2(f.id(), name.c_str(), H5P_DEFAULT)), H5Dclose);
}

std::vector<hsize_t> dataset_dims(hid_t dset) {
    Handle space(MIMIC_H5_CHECK(H5Dget_space(dset)), H5Sclose);
    int nd = MIMIC_H5_CHECK(H5Sget_simple_extent_ndims(space));
    std::vector<hsize_t> dims(size_t(nd), 0);
    if (nd > 0) MIMIC_H5_CHECK(H5Sget_simple_extent_dims(space, dims.data(), nullptr));
    return dims;
}

bool Selection::empty() const {
    if (count.empty()) return true;
    for (size_t i = 0; i < count.size(); ++i)
        if (count[i] == 0 || (i < block.size() && block[i] == 0)) return true;
    return false;
}

hsize_t Selection::elements() const {
    if (empty()) return 0;
    hsize_t n = 1;
    for (size_t i = 0; i < count.size(); ++i)
        n *= count[i] * (block.empty() ? 1 : block[i]);
    return n;
}

namespace {
/// One H5Dwrite or H5Dread of `sel` from/to a contiguous buffer. A rank with nothing selected still takes
/// part in the collective call. `rows`: sel is rows [start[0], start[0] + count[0]) of the dataset, the
/// memory space has the selection's shape and errors name the rows.
void transfer_selection(hid_t dset, hid_t memtype, const Selection& sel, void* buf, bool collective,
                        bool write, bool rows = false) {
    Handle fspace(MIMIC_H5_CHECK(H5Dget_space(dset)), H5Sclose);
    Handle mspace;
    const hsize_t n = sel.elements();
    if (n == 0) {
        // Nothing selected on both sides (an H5S_NULL memory space here made HDF5 1.10 write a stray
        // element at the start of the dataset).
        MIMIC_H5_CHECK(H5Sselect_none(fspace));
        const hsize_t one = 1;
        mspace = Handle(MIMIC_H5_CHECK(H5Screate_simple(1, &one, nullptr)), H5Sclose);
        MIMIC_H5_CHECK(H5Sselect_none(mspace));
    } else {
        MIMIC_H5_CHECK(H5Sselect_hyperslab(fspace, H5S_SELECT_SET, sel.start.data(),
                                           sel.stride.empty() ? nullptr : sel.stride.data(), sel.count.data(),
                                           sel.block.empty() ? nullptr : sel.block.data()));
        mspace =
            rows ? Handle(MIMIC_H5_CHECK(H5Screate_simple(int(sel.count.size()), sel.count.data(), nullptr)),
                          H5Sclose)
                 : Handle(MIMIC_H5_CHECK(H5Screate_simple(1, &n, nullptr)), H5Sclose);
    }
    auto dxpl = make_dxpl(collective);
    double dummy = 0;
    if (!buf) buf = &dummy;
    herr_t rc = write ? H5Dwrite(dset, memtype, mspace, fspace, dxpl, buf)
                      : H5Dread(dset, memtype, mspace, fspace, dxpl, buf);
    if (rc < 0) {
        try {
            detail::throw_hdf5_error(write ? "H5Dwrite" : "H5Dread", __FILE__, __LINE__);
        } catch (const Error& e) {
            const std::string what =
                rows ? detail::concat("rows [", sel.start[0], ", ", sel.start[0] + sel.count[0], ")")
                     : detail::concat("a selection of ", n, " values");
            fail(object_where(dset), ": ", write ? "writing" : "reading", " ", what, " failed",
                 write ? " (disk full or quota exceeded?)" : "", ": ", e.what());
        }
    }
}

/// Rows [row, row + nrows) of dset, all of each row's elements.
Selection row_selection(hid_t dset, std::int64_t row, std::int64_t nrows) {
    auto dims = dataset_dims(dset);
    MIMIC_REQUIRE(!dims.empty(), object_where(dset), ": cannot transfer rows of a scalar dataset");
    MIMIC_REQUIRE(row >= 0 && nrows >= 0 && hsize_t(row + nrows) <= dims[0], object_where(dset), ": rows [",
                  row, ", ", row + nrows, ") are outside the dataset's ", dims[0], " rows");
    Selection sel;
    sel.start.assign(dims.size(), 0);
    sel.count = dims;
    sel.start[0] = hsize_t(row);
    sel.count[0] = hsize_t(nrows);
    return sel;
}
} // namespace

void write_rows(hid_t dset, hid_t memtype, std::int64_t row, std::int64_t nrows, const void* buf,
                bool collective) {
    transfer_selection(dset, memtype, row_selection(dset, row, nrows), const_cast<void*>(buf), collective,
                       true, true);
}

void read_rows(hid_t dset, hid_t memtype, std::int64_t row, std::int64_t nrows, void* buf, bool collective) {
    transfer_selection(dset, memtype, row_selection(dset, row, nrows), buf, collective, false, true);
}

void write_selection(hid_t dset, hid_t memtype, const Selection& sel, const void* buf, bool collective) {
    transfer_selection(dset, memtype, sel, const_cast<void*>(buf), collective, true);
}

void read_selection(hid_t dset, hid_t memtype, const Selection& sel, void* buf, bool collective) {
    transfer_selection(dset, memtype, sel, buf, collective, false);
}

template <class T>
std::vector<T> read_all(const File& f, const std::string& name) {
    auto d = open_dataset(f, name);
    auto dims = dataset_dims(d);
    size_t n = 1;
    for (auto x : dims)
        n *= size_t(x);
    std::vector<T> v(n);
    if (n == 0) return v;
    auto dxpl = make_dxpl(f.parallel());
    MIMIC_H5_CHECK(H5Dread(d, type_of<T>(), H5S_ALL, H5S_ALL, dxpl, v.data()));
    return v;
}

template <class T>
void write_all(const File& f, const std::string& name, const std::vector<T>& v) {
    auto d = create_dataset(f, name, type_of<T>(), {hsize_t(v.size())});
    if (v.empty()) return;
    const std::int64_t n = f.rank() == 0 ? std::int64_t(v.size()) : 0;
    write_rows(d, type_of<T>(), 0, n, v.data(), f.parallel());
}

template std::vector<float> read_all<float>(const File&, const std::string&);
template std::vector<double> read_all<double>(const File&, const std::string&);
template std::vector<int> read_all<int>(const File&, const std::string&);
template std::vector<long long> read_all<long long>(const File&, const std::string&);
template std::vector<unsigned char> read_all<unsigned char>(const File&, const std::string&);
template void write_all<float>(const File&, const std::string&, const std::vector<float>&);
template void write_all<double>(const File&, const std::string&, const std::vector<double>&);
template void write_all<int>(const File&, const std::string&, const std::vector<int>&);
template void write_all<long long>(const File&, const std::string&, const std::vector<long long>&);
template void write_all<unsigned char>(const File&, const std::string&, const std::vector<unsigned char>&);

// --- attributes ----------------------------------------------------------------------------------

bool has_attr(hid_t obj, const std::string& name) {
    htri_t e = H5Aexists(obj, name.c_str());
    if (e < 0) H5Eclear2(H5E_DEFAULT);
    return e > 0;
}

namespace {
void write_attr_raw(hid_t obj, const std::string& name, hid_t type, hid_t space, const void* data) {
    if (has_attr(obj, name)) MIMIC_H5_CHECK(H5Adelete(obj, name.c_str()));
    Handle a(MIMIC_H5_CHECK(H5Acreate2(obj, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT)), H5Aclose);
    MIMIC_H5_CHECK(H5Awrite(a, type, data));
}

Handle open_attr(hid_t obj, const std::string& name) {
    if (!has_attr(obj, name)) fail(object_where(obj), ": attribute '", name, "' is missing");
    return Handle(MIMIC_H5_CHECK(H5Aopen(obj, name.c_str(), H5P_DEFAULT)), H5Aclose);
}

template <class T>
std::vector<T> read_attr_vec(hid_t obj, const std::string& name, hid_t memtype) {
    auto a = open_attr(obj, name);
    Handle space(MIMIC_H5_CHECK(H5Aget_space(a)), H5Sclose);
    hssize_t n = MIMIC_H5_CHECK(H5Sget_simple_extent_npoints(space));
    Handle ftype(MIMIC_H5_CHECK(H5Aget_type(a)), H5Tclose);
    if (H5Tget_class(ftype) == H5T_STRING)
        fail(object_where(obj), ": attribute '", name, "' is a string where a number was expected");
    std::vector<T> v(static_cast<size_t>(n));
    if (n > 0) MIMIC_H5_CHECK(H5Aread(a, memtype, v.data()));
    return v;
}
} // namespace

void write_attr(hid_t obj, const std::string& name, const std::string& value) {
    Handle type(MIMIC_H5_CHECK(H5Tcopy(H5T_C_S1)), H5Tclose);
    MIMIC_H5_CHECK(H5Tset_size(type, std::max<size_t>(1, value.size())));
    MIMIC_H5_CHECK(H5Tset_strpad(type, H5T_STR_NULLPAD));
    Handle space(MIMIC_H5_CHECK(H5Screate(H5S_SCALAR)), H5Sclose);
    std::string v = value.empty() ? std::string(1, '\0') : value;
    write_attr_raw(obj, name, type, space, v.data());
}

void write_attr(hid_t obj, const std::string& name, long long value) {
    Handle space(MIMIC_H5_CHECK(H5Screate(H5S_SCALAR)), H5Sclose);
    write_attr_raw(obj, name, H5T_NATIVE_LLONG, space, &value);
}

void write_attr(hid_t obj, const std::string& name, double value) {
    Handle space(MIMIC_H5_CHECK(H5Screate(H5S_SCALAR)), H5Sclose);
    write_attr_raw(obj, name, H5T_NATIVE_DOUBLE, space, &value);
}

void write_attr(hid_t obj, const std::string& name, const std::vector<long long>& values) {
    hsize_t n = values.size();
    Handle space(MIMIC_H5_CHECK(H5Screate_simple(1, &n, nullptr)), H5Sclose);
    write_attr_raw(obj, name, H5T_NATIVE_LLONG, space, values.data());
}

void write_attr(hid_t obj, const std::string& name, const std::vector<double>& values) {
    hsize_t n = values.size();
    Handle space(MIMIC_H5_CHECK(H5Screate_simple(1, &n, nullptr)), H5Sclose);
    write_attr_raw(obj, name, H5T_NATIVE_DOUBLE, space, values.data());
}

std::string read_attr_string(hid_t obj, const std::string& name) {
    auto a = open_attr(obj, name);
    Handle ftype(MIMIC_H5_CHECK(H5Aget_type(a)), H5Tclose);
    if (H5Tget_class(ftype) != H5T_STRING)
        fail(object_where(obj), ": attribute '", name, "' is not a string");
    Handle space(MIMIC_H5_CHECK(H5Aget_space(a)), H5Sclose);
    if (H5Sget_simple_extent_npoints(space) != 1)
        fail(object_where(obj), ": attribute '", name, "' should be one string, not an array of them");
    if (H5Tis_variable_str(ftype) > 0) {
        // The memory type takes the file's character set: h5py writes UTF-8 strings, and HDF5 converts
        // no string between ASCII and UTF-8.
        Handle mtype(MIMIC_H5_CHECK(H5Tcopy(H5T_C_S1)), H5Tclose);
        MIMIC_H5_CHECK(H5Tset_size(mtype, H5T_VARIABLE));
        MIMIC_H5_CHECK(H5Tset_cset(mtype, H5Tget_cset(ftype)));
        char* p = nullptr;
        if (H5Aread(a, mtype, &p) < 0)
            fail(object_where(obj), ": attribute '", name, "': cannot read it as a variable-length string");
        std::string s = p ? p : "";
        H5free_memory(p);
        return s;
    }
    size_t sz = H5Tget_size(ftype);
    std::string s(sz, '\0');
    MIMIC_H5_CHECK(H5Aread(a, ftype, s.data()));
    auto end = s.find('\0');
    if (end != std::string::npos) s.resize(end);
    return s;
}

long long read_attr_int(hid_t obj, const std::string& name) {
    auto v = read_attr_vec<long long>(obj, name, H5T_NATIVE_LLONG);
    if (v.size() != 1) fail(object_where(obj), ": attribute '", name, "' should be a scalar");
    return v[0];
}

double read_attr_double(hid_t obj, const std::string& name) {
    auto v = read_attr_vec<double>(obj, name, H5T_NATIVE_DOUBLE);
    if (v.size() != 1) fail(object_where(obj), ": attribute '", name, "' should be a scalar");
    return v[0];
}

std::vector<long long> read_attr_ints(hid_t obj, const std::string& name) {
    return read_attr_vec<long long>(obj, name, H5T_NATIVE_LLONG);
}

std::vector<double> read_attr_doubles(hid_t obj, const std::string& name) {
    return read_attr_vec<double>(obj, name, H5T_NATIVE_DOUBLE);
}

} // namespace mimic::h5
