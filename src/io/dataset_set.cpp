// DatasetSet: opens and cross-checks several dataset files, maps global rows to (file, local row),
// and reads lists of row ranges with independent HDF5 reads.
#include "mimic/io/dataset_set.hpp"

#include <algorithm>

namespace mimic::io {

namespace {
std::string describe_norm(const DatasetMeta& m, const std::vector<float>& mean,
                          const std::vector<float>& sd) {
    return detail::concat("norm '", m.norm_kind, "', scale ", m.norm_scale, ", mean[0] ",
                          mean.empty() ? 0.0f : mean[0], ", std[0] ", sd.empty() ? 1.0f : sd[0]);
}
} // namespace

void read_row_ranges(hid_t dset, hid_t memtype, std::int64_t row_elems, size_t elem_bytes,
                     const std::vector<par::Range>& ranges, void* out) {
    auto* dst = static_cast<unsigned char*>(out);
    for (const auto& r : ranges) {
        if (r.size() <= 0) continue;
        h5::read_rows(dset, memtype, r.begin, r.size(), dst, false);
        dst += size_t(r.size()) * size_t(row_elems) * elem_bytes;
    }
}

DatasetSet::DatasetSet(const std::vector<std::string>& paths, const par::Comm& comm) {
    if (paths.empty()) fail("no source dataset files given");
    for (const auto& p : paths) {
        readers_.push_back(std::make_unique<DatasetReader>(p, comm));
        X_.push_back(h5::open_dataset(readers_.back()->file(), "/X"));
        const auto& m = readers_.back()->meta();
        if (m.n == 0) fail(p, ": the source dataset holds no rows (/X is empty)");
        offsets_.push_back(rows_);
        rows_ += m.n;
        std::vector<float> mean = readers_.back()->norm_mean(), sd = readers_.back()->norm_std();
        if (readers_.size() == 1) {
            meta_ = m;
            mean_ = std::move(mean);
            std_ = std::move(sd);
            continue;
        }
        const auto& first = readers_.front()->meta();
        if (m.d != first.d)
            fail(p, ": rows have D = ", m.d, " features but ", paths.front(), " has D = ", first.d,
                 "; every source must have the same D");
        if (m.c != first.c || m.h != first.h || m.w != first.w)
            fail(p, ": image shape (", m.c, ", ", m.h, ", ", m.w, ") differs from ", paths.front(), "'s (",
                 first.c, ", ", first.h, ", ", first.w, ")");
        if (m.norm_kind != first.norm_kind || m.norm_scale != first.norm_scale || mean != mean_ || sd != std_)
            fail(p, ": normalisation (", describe_norm(m, mean, sd), ") differs from ", paths.front(), "'s (",
                 describe_norm(first, mean_, std_), "); import every source with the same statistics");
        meta_.num_classes = std::max(meta_.num_classes, m.num_classes);
    }
    meta_.n = rows_;
    meta_.has_labels = false;
    meta_.fingerprint.clear();
}

void DatasetSet::read_ranges(const std::vector<par::Range>& ranges, float* out) const {
    std::int64_t out_row = 0;
    for (const auto& r : ranges) {
        MIMIC_REQUIRE(r.begin >= 0 && r.end <= rows_ && r.begin <= r.end, "source rows [", r.begin, ", ",
                      r.end, ") are outside the ", rows_, " rows of the sources");
        for (size_t f = 0; f < readers_.size(); ++f) {
            const std::int64_t lo = std::max(r.begin, offsets_[f]);
            const std::int64_t hi = std::min(r.end, offsets_[f] + readers_[f]->meta().n);
            if (hi > lo) {
                float* dst = out + (out_row + (lo - r.begin)) * meta_.d;
                h5::read_rows(X_[f], H5T_NATIVE_FLOAT, lo - offsets_[f], hi - lo, dst, false);
                check_rows(readers_[f]->path(), lo - offsets_[f], hi - lo, meta_.d, dst);
            }
        }
        out_row += r.size();
    }
}

} // namespace mimic::io
