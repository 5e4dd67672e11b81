// The edit program of mutate_h5: each edit is an opcode byte, an item index byte and its operands; items
// are the file's datasets and attributes (on every group and dataset) in name order.
#include "h5_mutate.hpp"

#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>
#include <utility>
#include <vector>

namespace mimic::fuzz {

namespace {

struct Bytes {
    const std::uint8_t* p;
    std::size_t n, i = 0;
    bool more() const { return i < n; }
    std::uint8_t u8() { return i < n ? p[i++] : 0; }
    std::uint32_t u32() {
        std::uint32_t v = 0;
        for (int k = 0; k < 4; ++k)
            v = v << 8 | u8();
        return v;
    }
    /// A number: one of the values that break readers (0, -1, huge, NaN, inf, ...) or raw float bits.
    double number() {
        static const double table[] = {0.0,          -1.0,  1.0,    2.0,   -3.0,     0.5,
                                       1e12,         -1e12, 1e300,  NAN,   INFINITY, -INFINITY,
                                       2147483648.0, 65536, 4096.0, 1e-40, 9.3e18,   -9.3e18};
        const std::uint8_t k = u8();
        if (k < 2 * std::size(table)) return table[k % std::size(table)];
        const std::uint32_t bits = u32();
        float f;
        std::memcpy(&f, &bits, 4);
        return double(f);
    }
};

struct Items {
    std::vector<std::string> datasets;                      ///< full paths
    std::vector<std::pair<std::string, std::string>> attrs; ///< (object path, attribute name)
};

herr_t collect_attr(hid_t, const char* name, const H5A_info_t*, void* data) {
    auto* a = static_cast<std::pair<Items*, std::string>*>(data);
    a->first->attrs.emplace_back(a->second, name);
    return 0;
}

void collect_attrs(hid_t obj, const std::string& path, Items& items) {
    std::pair<Items*, std::string> data{&items, path};
    H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, nullptr, collect_attr, &data);
}

herr_t collect_object(hid_t root, const char* name, const H5L_info_t*, void* data) {
    auto* items = static_cast<Items*>(data);
    const hid_t o = H5Oopen(root, name, H5P_DEFAULT);
    if (o < 0) return 0;
    const std::string path = std::string("/") + name;
    if (H5Iget_type(o) == H5I_DATASET) items->datasets.push_back(path);
    collect_attrs(o, path, *items);
    H5Oclose(o);
    return 0;
}

Items collect(hid_t file) {
    Items items;
    collect_attrs(file, "/", items);
    H5Lvisit(file, H5_INDEX_NAME, H5_ITER_INC, collect_object, &items);
    return items;
}

/// Reads a dataset or attribute of at most 2^16 elements as doubles.
std::vector<double> read_dataset(hid_t d) {
    const hid_t s = H5Dget_space(d);
    const hssize_t n = H5Sget_simple_extent_npoints(s);
    H5Sclose(s);
    std::vector<double> v(n > 0 && n <= 65536 ? size_t(n) : 0);
    if (!v.empty() && H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()) < 0) v.clear();
    return v;
}

void set_element(hid_t file, const std::string& path, Bytes& b) {
    const std::uint32_t k = b.u32();
    const double value = b.number();
    const hid_t d = H5Dopen2(file, path.c_str(), H5P_DEFAULT);
    if (d < 0) return;
    std::vector<double> v = read_dataset(d);
    if (!v.empty()) {
        v[k % v.size()] = value;
        H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
    }
    H5Dclose(d);
}

/// Replaces a dataset by one of another shape (rank 0 to 3) or element type, filled from the bytes.
void recreate_dataset(hid_t file, const std::string& path, Bytes& b, bool keep_shape) {
    const hid_t d = H5Dopen2(file, path.c_str(), H5P_DEFAULT);
    if (d < 0) return;
    const hid_t s = H5Dget_space(d);
    hsize_t dims[3] = {0, 0, 0};
    int rank = H5Sget_simple_extent_ndims(s);
    if (rank < 0 || rank > 3) rank = 1;
    H5Sget_simple_extent_dims(s, dims, nullptr);
    H5Sclose(s);
    H5Dclose(d);
    if (!keep_shape) {
        rank = b.u8() % 4;
        for (int i = 0; i < rank; ++i)
            dims[i] = b.u8() % 9;
    }
    static const hid_t* types[] = {&H5T_NATIVE_FLOAT, &H5T_NATIVE_DOUBLE, &H5T_NATIVE_INT,
                                   &H5T_NATIVE_UCHAR, &H5T_NATIVE_LLONG,  &H5T_NATIVE_USHORT};
    const hid_t type = *types[b.u8() % std::size(types)];
    hsize_t n = 1;
    for (int i = 0; i < rank; ++i)
        n *= dims[i];
    if (n > 65536) return;
    std::vector<double> v(size_t(n), 0.0);
    for (auto& x : v)
        x = std::isfinite(x = b.number()) ? x : 0.0;
    H5Ldelete(file, path.c_str(), H5P_DEFAULT);
    const hid_t space = rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(rank, dims, nullptr);
    const hid_t nd = H5Dcreate2(file, path.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (nd >= 0) {
        if (n > 0) H5Dwrite(nd, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
        H5Dclose(nd);
    }
    H5Sclose(space);
}

/// Writes a string attribute, fixed-length or (as h5py does) variable-length UTF-8.
void write_string_attr(hid_t obj, const std::string& name, const std::string& value, bool variable) {
    H5Adelete(obj, name.c_str());
    const hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, variable ? H5T_VARIABLE : std::max<size_t>(1, value.size()));
    if (variable) H5Tset_cset(t, H5T_CSET_UTF8);
    const hid_t s = H5Screate(H5S_SCALAR);
    const hid_t a = H5Acreate2(obj, name.c_str(), t, s, H5P_DEFAULT, H5P_DEFAULT);
    if (a >= 0) {
        const char* p = value.c_str();
        H5Awrite(a, t, variable ? static_cast<const void*>(&p) : static_cast<const void*>(p));
        H5Aclose(a);
    }
    H5Sclose(s);
    H5Tclose(t);
}

/// Sets one element of a numeric attribute, or replaces a string attribute by text from the bytes.
void set_attr(hid_t file, const std::pair<std::string, std::string>& item, Bytes& b) {
    const hid_t obj = H5Oopen(file, item.first.c_str(), H5P_DEFAULT);
    if (obj < 0) return;
    const hid_t a = H5Aopen(obj, item.second.c_str(), H5P_DEFAULT);
    if (a >= 0) {
        const hid_t t = H5Aget_type(a), s = H5Aget_space(a);
        const H5T_class_t cls = H5Tget_class(t);
        const hssize_t n = H5Sget_simple_extent_npoints(s);
        if ((cls == H5T_INTEGER || cls == H5T_FLOAT) && n > 0 && n <= 4096) {
            std::vector<double> v(static_cast<size_t>(n));
            H5Aread(a, H5T_NATIVE_DOUBLE, v.data());
            const std::uint8_t k = b.u8();
            v[k % v.size()] = b.number();
            H5Awrite(a, H5T_NATIVE_DOUBLE, v.data());
            H5Tclose(t), H5Sclose(s), H5Aclose(a);
        } else {
            H5Tclose(t), H5Sclose(s), H5Aclose(a);
            const std::uint8_t len = b.u8() % 40;
            std::string text;
            for (std::uint8_t i = 0; i < len; ++i)
                text.push_back(char(b.u8()));
            write_string_attr(obj, item.second, text, len % 2 == 1);
        }
    }
    H5Oclose(obj);
}

void apply(hid_t file, std::uint8_t op, Bytes& b) {
    const Items items = collect(file);
    const std::uint8_t pick = b.u8();
    const auto& ds = items.datasets;
    const auto& at = items.attrs;
    switch (op % 8) {
    case 0:
        if (!ds.empty()) set_element(file, ds[pick % ds.size()], b);
        break;
    case 1:
        if (!at.empty()) set_attr(file, at[pick % at.size()], b);
        break;
    case 2: // delete an attribute
        if (!at.empty())
            H5Adelete_by_name(file, at[pick % at.size()].first.c_str(), at[pick % at.size()].second.c_str(),
                              H5P_DEFAULT);
        break;
    case 3:
        if (!ds.empty()) H5Ldelete(file, ds[pick % ds.size()].c_str(), H5P_DEFAULT);
        break;
    case 4:
        if (!ds.empty()) recreate_dataset(file, ds[pick % ds.size()], b, false);
        break;
    case 5:
        if (!ds.empty()) recreate_dataset(file, ds[pick % ds.size()], b, true);
        break;
    case 6: // a numeric attribute turned into a string, or a string into a number
        if (!at.empty()) {
            const auto& item = at[pick % at.size()];
            const hid_t obj = H5Oopen(file, item.first.c_str(), H5P_DEFAULT);
            if (obj < 0) break;
            H5Adelete(obj, item.second.c_str());
            const hid_t s = H5Screate(H5S_SCALAR);
            const hid_t a =
                H5Acreate2(obj, item.second.c_str(), H5T_NATIVE_DOUBLE, s, H5P_DEFAULT, H5P_DEFAULT);
            const double v = b.number();
            if (a >= 0) H5Awrite(a, H5T_NATIVE_DOUBLE, &v), H5Aclose(a);
            H5Sclose(s);
            H5Oclose(obj);
        }
        break;
    default: // an extra dataset beside an existing one
        if (!ds.empty()) {
            const std::string& path = ds[pick % ds.size()];
            const std::string extra =
                path.substr(0, path.rfind('/') + 1) + "extra" + std::to_string(b.u8() % 4);
            const hsize_t dims[1] = {hsize_t(b.u8() % 5)};
            const hid_t s = H5Screate_simple(1, dims, nullptr);
            const hid_t d =
                H5Dcreate2(file, extra.c_str(), H5T_NATIVE_FLOAT, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
            if (d >= 0) H5Dclose(d);
            H5Sclose(s);
        }
    }
}

} // namespace

void mutate_h5(const std::string& path, const std::uint8_t* data, std::size_t size) {
    H5E_auto2_t func = nullptr;
    void* client = nullptr;
    H5Eget_auto2(H5E_DEFAULT, &func, &client);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    if (file >= 0) {
        Bytes b{data, size};
        for (int edits = 0; edits < 16 && b.more(); ++edits)
            apply(file, b.u8(), b);
        H5Fclose(file);
    }
    H5Eset_auto2(H5E_DEFAULT, func, client);
}

} // namespace mimic::fuzz
