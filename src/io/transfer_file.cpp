// The transfer file's schema: its provenance datasets, the recipe attributes and the resume key, written
// by the transfer stage and read back on resume.
#include "mimic/io/transfer_file.hpp"

namespace mimic::io {

namespace {

std::string join_lines(const std::vector<std::string>& v) {
    std::string s;
    for (size_t i = 0; i < v.size(); ++i)
        s += (i ? "\n" : "") + v[i];
    return s;
}

} // namespace

TransferProvenance create_transfer_provenance(const h5::File& f, std::int64_t n,
                                              const std::string& generator_names,
                                              const std::vector<std::int64_t>& dropped) {
    TransferProvenance p;
    p.source_row = h5::create_dataset(f, "/provenance/source_row", H5T_NATIVE_INT64, {hsize_t(n)});
    p.generator = h5::create_dataset(f, "/provenance/generator", H5T_NATIVE_INT8, {hsize_t(n)});
    p.partner_row = h5::create_dataset(f, "/provenance/partner_row", H5T_NATIVE_INT64, {hsize_t(n)});
    h5::write_attr(p.generator, "names", generator_names);
    if (!dropped.empty()) // --drop-nonfinite: the source rows left out
        h5::write_all(f, "/provenance/dropped_rows", std::vector<long long>(dropped.begin(), dropped.end()));
    return p;
}

TransferProvenance open_transfer_provenance(const h5::File& f) {
    TransferProvenance p;
    p.source_row = h5::open_dataset(f, "/provenance/source_row");
    p.generator = h5::open_dataset(f, "/provenance/generator");
    p.partner_row = h5::open_dataset(f, "/provenance/partner_row");
    return p;
}

void write_transfer_meta(const h5::File& f, const TransferMeta& m) {
    const hid_t root = f.id();
    h5::write_attr(root, "transfer_format", kTransferFormat);
    h5::write_attr(root, "transfer_sources", join_lines(m.sources));
    h5::write_attr(root, "transfer_source_rows", m.source_rows);
    h5::write_attr(root, "transfer_source_fingerprints", join_lines(m.source_fingerprints));
    h5::write_attr(root, "transfer_seed", std::to_string(m.seed));
    h5::write_attr(root, "transfer_weights", std::vector<double>{m.augment, m.munge});
    h5::write_attr(root, "transfer_shift", m.shift);
    h5::write_attr(root, "transfer_flip", (long long)m.flip);
    h5::write_attr(root, "transfer_noise", m.noise);
    h5::write_attr(root, "transfer_mixup_prob", m.mixup_prob);
    h5::write_attr(root, "transfer_mixup_alpha", m.mixup_alpha);
    h5::write_attr(root, "transfer_munge_p", m.munge_p);
    h5::write_attr(root, "transfer_munge_s", m.munge_s);
    h5::write_attr(root, "transfer_neighbour_block", m.neighbour_block);
    h5::write_attr(root, "transfer_block_rows", m.block_rows);
}

void write_transfer_resume_key(const h5::File& f, const std::string& key) {
    h5::write_attr(f.id(), "transfer_resume_key", key);
}

std::string read_transfer_resume_key(const h5::File& f) {
    if (!h5::has_attr(f.id(), "transfer_resume_key")) return "";
    return h5::read_attr_string(f.id(), "transfer_resume_key");
}

} // namespace mimic::io
