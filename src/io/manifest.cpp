// Ensemble manifest reading, writing and validation. Member entries are subgroups /members/NNNNNN with
// scalar attributes, so the file stays readable with h5py or h5dump without custom types.
#include "mimic/io/manifest.hpp"

#include "mimic/core/error.hpp"
#include "mimic/core/rng.hpp"
#include "mimic/core/version_info.hpp"
#include "mimic/io/dataset.hpp"
#include "mimic/io/hdf5.hpp"
#include "mimic/io/model_file.hpp"

#include <cstdio>

namespace mimic::io {

namespace {
std::string member_group(std::size_t i) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "/members/%06zu", i);
    return buf;
}

std::uint64_t parse_hex(const std::string& s) {
    std::uint64_t v = 0;
    for (char ch : s) {
        v <<= 4;
        if (ch >= '0' && ch <= '9')
            v |= std::uint64_t(ch - '0');
        else if (ch >= 'a' && ch <= 'f')
            v |= std::uint64_t(ch - 'a' + 10);
        else if (ch >= 'A' && ch <= 'F')
            v |= std::uint64_t(ch - 'A' + 10);
    }
    return v;
}
} // namespace

std::string Manifest::member_path(std::size_t i) const {
    const std::string& p = members.at(i).path;
    if (!p.empty() && p[0] == '/') return p;
    return base_dir + "/" + p;
}

std::string Manifest::ensemble_checksum() const {
    std::uint64_t h = mix64(members.size());
    for (const auto& m : members)
        h = mix64(h ^ parse_hex(m.checksum)) + 0x9e3779b97f4a7c15ULL;
    return hex64(h);
}

Manifest read_manifest(const std::string& path) {
    auto f = h5::File::open(path);
    const hid_t root = f.id();
    if (!h5::has_attr(root, "mimic_format") || h5::read_attr_string(root, "mimic_format") != kManifestFormat)
        fail(path, ": not a Mimic ensemble manifest (attribute mimic_format is not '", kManifestFormat, "')");
    Manifest m;
    m.base_dir = h5::parent_dir(path);
    const long long n = h5::read_attr_int(root, "num_members");
    for (long long i = 0; i < n; ++i) {
        const std::string g = member_group(std::size_t(i));
        if (!f.has(g)) fail(path, ": member entry ", g, " is missing (num_members = ", n, ")");
        h5::Handle gh(MIMIC_H5_CHECK(H5Gopen2(root, g.c_str(), H5P_DEFAULT)), H5Gclose);
        MemberInfo e;
        e.path = h5::read_attr_string(gh, "path");
        e.spec = h5::read_attr_string(gh, "spec");
        e.seed = std::uint64_t(h5::read_attr_int(gh, "seed"));
        e.val_accuracy = h5::read_attr_double(gh, "val_accuracy");
        e.params = h5::read_attr_int(gh, "params");
        e.flops = h5::read_attr_double(gh, "flops");
        e.checksum = h5::read_attr_string(gh, "checksum");
        auto shape = h5::read_attr_ints(gh, "input_shape");
        if (shape.size() != 3) fail(path, ": ", g, " input_shape must hold (C, H, W)");
        e.input = nn::Shape{int(shape[0]), int(shape[1]), int(shape[2])};
        e.num_classes = int(h5::read_attr_int(gh, "num_classes"));
        m.members.push_back(std::move(e));
    }
    return m;
}

void write_manifest(const std::string& path, const Manifest& m) {
    const std::string tmp = path + ".partial";
    {
        auto f = h5::File::create(tmp);
        const hid_t root = f.id();
        h5::write_attr(root, "mimic_format", kManifestFormat);
        h5::write_attr(root, "mimic_version", MIMIC_VERSION_STRING);
        h5::write_attr(root, "num_members", (long long)m.members.size());
        h5::write_attr(root, "num_classes", (long long)m.num_classes());
        const auto in = m.input();
        h5::write_attr(root, "input_shape", std::vector<long long>{in.c, in.h, in.w});
        h5::write_attr(root, "ensemble_checksum", m.ensemble_checksum());
        h5::Handle members(
            MIMIC_H5_CHECK(H5Gcreate2(root, "/members", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)), H5Gclose);
        for (std::size_t i = 0; i < m.members.size(); ++i) {
            const auto& e = m.members[i];
            h5::Handle g(MIMIC_H5_CHECK(H5Gcreate2(root, member_group(i).c_str(), H5P_DEFAULT, H5P_DEFAULT,
                                                   H5P_DEFAULT)),
                         H5Gclose);
            h5::write_attr(g, "path", e.path);
            h5::write_attr(g, "spec", e.spec);
            h5::write_attr(g, "seed", (long long)e.seed);
            h5::write_attr(g, "val_accuracy", e.val_accuracy);
            h5::write_attr(g, "params", (long long)e.params);
            h5::write_attr(g, "flops", e.flops);
            h5::write_attr(g, "checksum", e.checksum);
            h5::write_attr(g, "input_shape", std::vector<long long>{e.input.c, e.input.h, e.input.w});
            h5::write_attr(g, "num_classes", (long long)e.num_classes);
        }
        members.reset();
        f.close();
    }
    rename_file(tmp, path);
}

MemberInfo member_from_model_file(const std::string& model_path, const std::string& stored_path) {
    ModelMeta meta;
    load_model(model_path, &meta); // every weight read and checked: finite, matching the checksum
    MemberInfo e;
    e.path = stored_path;
    e.spec = meta.spec;
    e.seed = meta.seed;
    e.val_accuracy = meta.val_accuracy;
    e.checksum = meta.weights_checksum;
    e.input = meta.input;
    e.num_classes = meta.num_classes;
    nn::Model model(meta.spec, meta.input); // cheap: parameter counts and FLOPs come from the spec
    e.params = model.num_params();
    e.flops = model.flops_per_sample();
    return e;
}

void validate_manifest(const Manifest& m, const std::string& manifest_path, bool deep) {
    if (m.members.empty()) fail(manifest_path, ": the ensemble has no members");
    const auto& first = m.members.front();
    for (std::size_t i = 0; i < m.members.size(); ++i) {
        const auto& e = m.members[i];
        const std::string where =
            manifest_path + ": member " + std::to_string(i) + " (" + m.member_path(i) + ")";
        if (e.num_classes != first.num_classes)
            fail(where, " has ", e.num_classes, " classes but member 0 has ", first.num_classes);
        if (e.input != first.input)
            fail(where, " takes inputs of shape (", e.input.c, ", ", e.input.h, ", ", e.input.w,
                 ") but member 0 takes (", first.input.c, ", ", first.input.h, ", ", first.input.w, ")");
        if (!file_exists(m.member_path(i))) fail(where, ": member file is missing");
        ModelMeta meta;
        try {
            if (deep) {
                (void)load_model(m.member_path(i), &meta);
            } else {
                meta = read_model_meta(m.member_path(i));
            }
        } catch (const Error& err) {
            fail(where, ": member file is corrupt: ", err.what());
        }
        if (meta.weights_checksum != e.checksum)
            fail(where, ": weights checksum ", meta.weights_checksum, " differs from the manifest's ",
                 e.checksum, " (the member file changed after it was registered)");
        if (meta.num_classes != e.num_classes || meta.input != e.input || meta.spec != e.spec)
            fail(where, ": member file's architecture differs from the manifest entry");
    }
}

} // namespace mimic::io
