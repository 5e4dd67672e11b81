// `mimic info`: walks a Mimic HDF5 file and prints its format, root attributes and every dataset; for an
// ensemble manifest also its members. Runs on rank 0 only; it reads no bulk data.
#include "mimic/stages/info.hpp"

#include "mimic/core/log.hpp"
#include "mimic/io/hdf5.hpp"
#include "mimic/io/manifest.hpp"

#include <cstdio>
#include <sstream>

namespace po = boost::program_options;

namespace mimic::stages {

void describe(po::options_description& d, InfoOptions& o) {
    d.add_options()("file", po::value(&o.file)->required(), "the HDF5 file to describe (positional)");
}

namespace {

std::string attr_value(hid_t obj, const std::string& name) {
    h5::Handle a(MIMIC_H5_CHECK(H5Aopen(obj, name.c_str(), H5P_DEFAULT)), H5Aclose);
    h5::Handle t(MIMIC_H5_CHECK(H5Aget_type(a)), H5Tclose);
    h5::Handle s(MIMIC_H5_CHECK(H5Aget_space(a)), H5Sclose);
    const hssize_t n = H5Sget_simple_extent_npoints(s);
    std::ostringstream os;
    switch (H5Tget_class(t)) {
    case H5T_STRING: {
        std::string v = h5::read_attr_string(obj, name);
        if (v.size() > 200) v = v.substr(0, 200) + "...";
        os << '"' << v << '"';
        break;
    }
    case H5T_INTEGER: {
        auto v = h5::read_attr_ints(obj, name);
        if (n != 1) os << "[";
        for (size_t i = 0; i < v.size() && i < 16; ++i)
            os << (i ? ", " : "") << v[i];
        if (v.size() > 16) os << ", ... (" << v.size() << " values)";
        if (n != 1) os << "]";
        break;
    }
    case H5T_FLOAT: {
        auto v = h5::read_attr_doubles(obj, name);
        if (n != 1) os << "[";
        for (size_t i = 0; i < v.size() && i < 16; ++i)
            os << (i ? ", " : "") << v[i];
        if (v.size() > 16) os << ", ... (" << v.size() << " values)";
        if (n != 1) os << "]";
        break;
    }
    default:
        os << "<unsupported attribute type>";
    }
    return os.str();
}

herr_t list_attr(hid_t obj, const char* name, const H5A_info_t*, void* data) {
    auto* os = static_cast<std::ostringstream*>(data);
    *os << "    @" << name << " = " << attr_value(obj, name) << "\n";
    return 0;
}

template <class InfoT>
herr_t visit(hid_t root, const char* name, const InfoT* info, void* data) {
    auto* os = static_cast<std::ostringstream*>(data);
    if (info->type != H5O_TYPE_DATASET) return 0;
    h5::Handle d(H5Dopen2(root, name, H5P_DEFAULT), H5Dclose);
    if (!d.valid()) return 0;
    auto dims = h5::dataset_dims(d);
    h5::Handle t(MIMIC_H5_CHECK(H5Dget_type(d)), H5Tclose);
    const bool is_unsigned = H5Tget_class(t) == H5T_INTEGER && H5Tget_sign(t) == H5T_SGN_NONE;
    const char* cls = H5Tget_class(t) == H5T_FLOAT     ? "float"
                      : H5Tget_class(t) == H5T_INTEGER ? (is_unsigned ? "uint" : "int")
                                                       : "other";
    *os << "  /" << name << "  " << cls << (H5Tget_size(t) * 8) << " [";
    for (size_t i = 0; i < dims.size(); ++i)
        *os << (i ? ", " : "") << dims[i];
    *os << "]\n";
    hsize_t idx = 0;
    H5Aiterate2(d, H5_INDEX_NAME, H5_ITER_INC, &idx, list_attr, os);
    return 0;
}

/// One line per member of a manifest: path, architecture, parameters, validation accuracy, checksum.
std::string describe_members(const std::string& path) {
    const auto m = io::read_manifest(path);
    std::ostringstream os;
    os << "  members (" << m.members.size() << ", ensemble checksum " << m.ensemble_checksum() << "):\n";
    for (std::size_t i = 0; i < m.members.size(); ++i) {
        const auto& e = m.members[i];
        char acc[32] = "-";
        if (e.val_accuracy >= 0) std::snprintf(acc, sizeof acc, "%.2f%%", 100 * e.val_accuracy);
        os << "    " << i << "  " << e.path << "  arch " << e.spec << "  params " << e.params << "  val acc "
           << acc << "  checksum " << e.checksum << "\n";
    }
    return os.str();
}

} // namespace

std::string describe_file(const std::string& path) {
    auto f = h5::File::open(path);
    std::ostringstream os;
    std::string format = h5::has_attr(f.id(), "mimic_format") ? h5::read_attr_string(f.id(), "mimic_format")
                                                              : std::string("(not written by Mimic)");
    os << path << ": " << format << "\n  attributes:\n";
    hsize_t idx = 0;
    MIMIC_H5_CHECK(H5Aiterate2(f.id(), H5_INDEX_NAME, H5_ITER_INC, &idx, list_attr, &os));
    os << "  datasets:\n";
#if H5_VERSION_GE(1, 12, 0)
    MIMIC_H5_CHECK(H5Ovisit3(f.id(), H5_INDEX_NAME, H5_ITER_INC, visit<H5O_info2_t>, &os, H5O_INFO_BASIC));
#else
    MIMIC_H5_CHECK(H5Ovisit2(f.id(), H5_INDEX_NAME, H5_ITER_INC, visit<H5O_info_t>, &os, H5O_INFO_BASIC));
#endif
    if (format == io::kManifestFormat) os << describe_members(path);
    return os.str();
}

void run(const InfoOptions& o, const par::Comm& comm) {
    std::string text;
    par::agree(comm, [&] {
        if (comm.rank() == 0) text = describe_file(o.file);
    });
    log::info(text);
}

} // namespace mimic::stages
