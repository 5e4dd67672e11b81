// Hdf5Source: the file opened serially on each rank (independent reads of disjoint rows), the dataset's
// type mapped to an element type, rows read as a hyperslab converted by HDF5 to the native type.
#include "mimic/io/sources/hdf5_source.hpp"

#include "mimic/io/hdf5.hpp"

namespace mimic::io {

namespace {
hid_t native_type(Elem e) {
    switch (e) {
    case Elem::u8:
        return H5T_NATIVE_UINT8;
    case Elem::i8:
        return H5T_NATIVE_INT8;
    case Elem::u16:
        return H5T_NATIVE_UINT16;
    case Elem::i16:
        return H5T_NATIVE_INT16;
    case Elem::u32:
        return H5T_NATIVE_UINT32;
    case Elem::i32:
        return H5T_NATIVE_INT32;
    case Elem::u64:
        return H5T_NATIVE_UINT64;
    case Elem::i64:
        return H5T_NATIVE_INT64;
    case Elem::f32:
        return H5T_NATIVE_FLOAT;
    case Elem::f64:
        return H5T_NATIVE_DOUBLE;
    case Elem::f16: // read through half_type(), never here
        break;
    }
    return H5T_NATIVE_UINT8;
}

const char* class_name(H5T_class_t cls) {
    switch (cls) {
    case H5T_STRING:
        return "string";
    case H5T_COMPOUND:
        return "compound (structured)";
    case H5T_ARRAY:
        return "array-typed";
    case H5T_REFERENCE:
        return "reference";
    case H5T_OPAQUE:
        return "opaque";
    case H5T_BITFIELD:
        return "bitfield";
    default:
        return "non-numeric";
    }
}

Elem integer_elem(bool sign, size_t size, const std::string& name) {
    switch (size) {
    case 1:
        return sign ? Elem::i8 : Elem::u8;
    case 2:
        return sign ? Elem::i16 : Elem::u16;
    case 4:
        return sign ? Elem::i32 : Elem::u32;
    case 8:
        return sign ? Elem::i64 : Elem::u64;
    default:
        fail(name, ": ", 8 * size, "-bit integers are not supported");
    }
}

Elem elem_of(hid_t dset, const std::string& name) {
    h5::Handle t(MIMIC_H5_CHECK(H5Dget_type(dset)), H5Tclose);
    const H5T_class_t cls = H5Tget_class(t);
    const size_t size = H5Tget_size(t);
    if (cls == H5T_VLEN) fail(name, ": is a variable-length (ragged) dataset; store a rectangular array");
    if (cls == H5T_FLOAT) {
        if (size == 4) return Elem::f32;
        if (size == 8) return Elem::f64;
        size_t spos = 0, epos = 0, esize = 0, mpos = 0, msize = 0;
        MIMIC_H5_CHECK(H5Tget_fields(t, &spos, &epos, &esize, &mpos, &msize));
        if (size == 2 && spos == 15 && epos == 10 && esize == 5 && mpos == 0 && msize == 10 &&
            H5Tget_ebias(t) == 15)
            return Elem::f16;
        fail(name, ": ", 8 * size, "-bit floating point is not supported (IEEE float16, float32 or float64)");
    }
    if (cls == H5T_ENUM) { // h5py's bool, and other enums: their integer values
        h5::Handle base(MIMIC_H5_CHECK(H5Tget_super(t)), H5Tclose);
        return integer_elem(H5Tget_sign(base) == H5T_SGN_2, H5Tget_size(base), name);
    }
    if (cls != H5T_INTEGER) fail(name, ": holds ", class_name(cls), " values; store a numeric array");
    return integer_elem(H5Tget_sign(t) == H5T_SGN_2, size, name);
}

/// Refuses a dataset compressed by a filter this HDF5 library lacks (h5py's lzf, blosc, ... without their
/// plugins), which every read of a chunk would fail on.
void check_filters(hid_t dset, const std::string& name) {
    h5::Handle dcpl(MIMIC_H5_CHECK(H5Dget_create_plist(dset)), H5Pclose);
    const int n = H5Pget_nfilters(dcpl);
    for (int i = 0; i < n; ++i) {
        unsigned flags = 0, config = 0;
        size_t nvalues = 0;
        char fname[64] = {0};
        const H5Z_filter_t id =
            H5Pget_filter2(dcpl, unsigned(i), &flags, &nvalues, nullptr, sizeof fname, fname, &config);
        if (id >= 0 && H5Zfilter_avail(id) <= 0)
            fail(name, ": is compressed with HDF5 filter ", id, " (", fname[0] ? fname : "unnamed",
                 "), which this HDF5 library lacks; rewrite it with gzip (h5py: compression='gzip')");
    }
}

class Hdf5Source : public ArraySource {
public:
    Hdf5Source(h5::File f, h5::Handle d, const std::string& name, std::vector<std::int64_t> dims, Elem e)
        : ArraySource(name, std::move(dims), e), file_(std::move(f)), dset_(std::move(d)) {
        h5::Handle file_type(MIMIC_H5_CHECK(H5Dget_type(dset_)), H5Tclose);
        if (e == Elem::f16) { // the file's half type in little-endian order: HDF5 only swaps bytes
            mem_ = h5::Handle(MIMIC_H5_CHECK(H5Tcopy(file_type)), H5Tclose);
            MIMIC_H5_CHECK(H5Tset_order(mem_, H5T_ORDER_LE));
        } else if (H5Tget_class(file_type) == H5T_ENUM) { // read as the native enum: its integer values
            mem_ = h5::Handle(MIMIC_H5_CHECK(H5Tget_native_type(file_type, H5T_DIR_ASCEND)), H5Tclose);
        }
    }
    ~Hdf5Source() override {
        mem_.reset();
        dset_.reset();
        file_.close();
    }
    void read(std::int64_t begin, std::int64_t count, void* buf) const override {
        h5::Selection sel;
        sel.start.assign(dims_.size(), 0);
        sel.count.assign(dims_.begin(), dims_.end());
        sel.start[0] = hsize_t(begin);
        sel.count[0] = hsize_t(count);
        if (count == 0) return;
        h5::read_selection(dset_, mem_.valid() ? hid_t(mem_) : native_type(elem_), sel, buf, false);
    }

private:
    h5::File file_;
    h5::Handle dset_;
    h5::Handle mem_; ///< the memory type of half and enum datasets (others: native_type(elem_))
};
} // namespace

std::unique_ptr<ArraySource> open_hdf5_source(const std::string& path, const std::string& dataset) {
    const std::string name = path + ":" + dataset;
    auto f = h5::File::open(path, MPI_COMM_NULL);
    if (dataset.empty()) fail(path, ": name the dataset as ", path, ":/path (e.g. ", path, ":/X)");
    if (!f.has(dataset)) fail(name, ": no such dataset in the file");
    {
        h5::Handle o(MIMIC_H5_CHECK(H5Oopen(f.id(), dataset.c_str(), H5P_DEFAULT)), H5Oclose);
        if (H5Iget_type(o) != H5I_DATASET) fail(name, ": is not a dataset (a group?)");
    }
    auto d = h5::open_dataset(f, dataset);
    std::vector<std::int64_t> dims;
    for (auto x : h5::dataset_dims(d))
        dims.push_back(std::int64_t(x));
    if (dims.empty()) fail(name, ": is a scalar; an array of rows is needed");
    const Elem e = elem_of(d, name);
    check_filters(d, name);
    return std::make_unique<Hdf5Source>(std::move(f), std::move(d), name, std::move(dims), e);
}

} // namespace mimic::io
