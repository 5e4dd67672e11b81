// Logits file metadata, compatibility checks against a transfer set, float16 conversion, and the
// row reader used by the distillation stage and by tests.
#include "mimic/io/logits_file.hpp"

#include "mimic/io/block_record.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace mimic::io {

namespace {
std::string describe_dims(const std::vector<hsize_t>& dims) {
    std::string s = "[";
    for (std::size_t i = 0; i < dims.size(); ++i)
        s += (i ? ", " : "") + std::to_string(dims[i]);
    return s + "]";
}
} // namespace

LogitsMeta read_logits_meta(const h5::File& f) {
    const hid_t r = f.id();
    if (!h5::has_attr(r, "mimic_format") || h5::read_attr_string(r, "mimic_format") != kLogitsFormat)
        fail(f.path(), ": not a Mimic logits file (attribute mimic_format is not '", kLogitsFormat, "')");
    LogitsMeta m;
    m.n = h5::read_attr_int(r, "n");
    m.num_classes = int(h5::read_attr_int(r, "num_classes"));
    m.block_rows = h5::read_attr_int(r, "block_rows");
    m.combine = h5::read_attr_string(r, "combine");
    m.temperature = h5::read_attr_double(r, "temperature");
    m.storage = h5::read_attr_string(r, "storage");
    m.num_members = int(h5::read_attr_int(r, "num_members"));
    m.ensemble_checksum = h5::read_attr_string(r, "ensemble_checksum");
    m.member_checksums = h5::read_attr_string(r, "member_checksums");
    m.member_paths = h5::read_attr_string(r, "member_paths");
    m.transfer_path = h5::read_attr_string(r, "transfer_path");
    m.transfer_fingerprint = h5::read_attr_string(r, "transfer_fingerprint");
    m.has_variance = h5::read_attr_int(r, "has_variance") != 0;
    m.complete = h5::read_attr_int(r, "complete") != 0;
    if (m.n < 0 || m.num_classes < 1)
        fail(f.path(), ": attributes n = ", m.n, " and num_classes = ", m.num_classes,
             " are not a valid shape");
    if (f.has("/logits")) {
        h5::Handle d = h5::open_dataset(f, "/logits");
        const auto dims = h5::dataset_dims(d);
        if (dims.size() != 2 || std::int64_t(dims[0]) != m.n || std::int64_t(dims[1]) != m.num_classes)
            fail(f.path(), ": /logits is ", describe_dims(dims), " but the attributes declare [", m.n, ", ",
                 m.num_classes,
                 "] (n, num_classes); the file is damaged or was not written by `mimic label`");
    } else if (m.complete) {
        fail(f.path(), ": marked complete but has no /logits dataset");
    }
    return m;
}

LogitsMeta read_logits_meta(const std::string& path) {
    return read_logits_meta(h5::File::open(path));
}

void write_logits_meta(const h5::File& f, const LogitsMeta& m) {
    const hid_t r = f.id();
    h5::write_attr(r, "mimic_format", kLogitsFormat);
    h5::write_attr(r, "n", (long long)m.n);
    h5::write_attr(r, "num_classes", (long long)m.num_classes);
    h5::write_attr(r, "block_rows", (long long)m.block_rows);
    h5::write_attr(r, "combine", m.combine);
    h5::write_attr(r, "temperature", m.temperature);
    h5::write_attr(r, "storage", m.storage);
    h5::write_attr(r, "num_members", (long long)m.num_members);
    h5::write_attr(r, "ensemble_checksum", m.ensemble_checksum);
    h5::write_attr(r, "member_checksums", m.member_checksums);
    h5::write_attr(r, "member_paths", m.member_paths);
    h5::write_attr(r, "transfer_path", m.transfer_path);
    h5::write_attr(r, "transfer_fingerprint", m.transfer_fingerprint);
    h5::write_attr(r, "has_variance", (long long)m.has_variance);
    h5::write_attr(r, "complete", (long long)m.complete);
}

void check_logits_match(const std::string& logits_path, const LogitsMeta& lm,
                        const std::string& transfer_path, const DatasetMeta& tm) {
    if (!lm.complete) fail(logits_path, ": the logits file is incomplete (rerun `mimic label` to finish it)");
    if (lm.n != tm.n)
        fail(logits_path, ": holds logits for ", lm.n, " rows but ", transfer_path, " has ", tm.n, " rows");
    if (lm.transfer_fingerprint != tm.fingerprint)
        fail(logits_path, ": was computed for a transfer set with fingerprint ", lm.transfer_fingerprint,
             " but ", transfer_path, " has fingerprint ", tm.fingerprint);
}

void read_logits_rows(const h5::File& f, hid_t dset, const LogitsMeta& m, std::int64_t row,
                      std::int64_t nrows, float* out) {
    if (m.storage == "float16") {
        std::vector<std::uint16_t> tmp(size_t(nrows * m.num_classes));
        auto ht = make_half_type();
        h5::read_rows(dset, ht, row, nrows, tmp.data(), f.parallel());
        for (size_t i = 0; i < tmp.size(); ++i)
            out[i] = half_to_float(tmp[i]);
    } else {
        h5::read_rows(dset, H5T_NATIVE_FLOAT, row, nrows, out, f.parallel());
    }
    // After the collective read: a refusal on one rank leaves no other rank inside it.
    for (std::int64_t i = 0; i < nrows; ++i)
        for (int c = 0; c < m.num_classes; ++c)
            if (!std::isfinite(out[i * m.num_classes + c]))
                fail(f.path(), ": row ", row + i, ", class ", c, " of /logits is ",
                     out[i * m.num_classes + c],
                     "; the teacher's logits must be finite (relabel with `mimic label`)");
}

void verify_logits_blocks(const h5::File& f, hid_t dset, const LogitsMeta& m, const par::Comm& comm) {
    const std::string& path = f.path();
    auto& file = const_cast<h5::File&>(f); // BlockRecord reads only
    std::vector<unsigned long long> hashes;
    par::agree(comm, [&] {
        if (!f.has("/progress/block_hash"))
            fail(path, ": has no block hashes (/progress), so it cannot be verified");
        auto rec = BlockRecord::open(file);
        rec.read();
        hashes = rec.hashes();
    });
    const std::int64_t B = m.block_rows, C = m.num_classes, nb = B > 0 ? (m.n + B - 1) / B : -1;
    if (nb < 0 || std::int64_t(hashes.size()) != nb)
        throw par::collective_error(comm,
                                    detail::concat(path, ": records ", hashes.size(), " block hashes but ",
                                                   m.n, " rows in blocks of ", B, " make ", nb));
    const bool hashed =
        m.storage != "float16" || (h5::has_attr(f.id(), kBlockHashAttr) &&
                                   h5::read_attr_string(f.id(), kBlockHashAttr) == kBlockHashStored);
    std::string problem;
    std::vector<float> rows;
    // Every rank takes part in every round's collective read (with 0 rows when it has no block left or
    // already found a problem), so that a refusal on one rank leaves no other inside a read.
    for (std::int64_t first = 0; first < nb; first += comm.size()) {
        const std::int64_t k = first + comm.rank();
        const bool mine = k < nb && problem.empty();
        const std::int64_t row0 = mine ? k * B : 0, n = mine ? std::min(B, m.n - row0) : 0;
        rows.resize(size_t(n * C));
        try {
            read_logits_rows(f, dset, m, row0, n, rows.data());
        } catch (const Error& e) {
            problem = e.what();
            continue;
        }
        if (!mine || !hashed) continue;
        unsigned long long h = 0;
        for (std::int64_t i = 0; i < n; ++i)
            h += row_hash(row0 + i, rows.data() + i * C, C, 0, false);
        if (h != hashes[size_t(k)])
            problem =
                detail::concat(path, ": rows [", row0, ", ", row0 + n,
                               ") of /logits differ from the block hash recorded when they were written "
                               "(the file is corrupt)");
    }
    par::agree(comm, [&] {
        if (!problem.empty()) throw Error(problem);
    });
}

} // namespace mimic::io
