// DatasetSet: opens and cross-checks several dataset files, maps global rows to (file, local row),
// and reads lists of row ranges with independent HDF5 reads.
#include "mimic/io/dataset_set.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

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

void DatasetSet::read_global(std::int64_t lo_g, std::int64_t hi_g, float* out, bool check) const {
    for (size_t f = 0; f < readers_.size(); ++f) {
        const std::int64_t lo = std::max(lo_g, offsets_[f]);
        const std::int64_t hi = std::min(hi_g, offsets_[f] + readers_[f]->meta().n);
        if (hi <= lo) continue;
        float* dst = out + (lo - lo_g) * meta_.d;
        readers_[f]->read_values(lo - offsets_[f], hi - lo, dst, false);
        if (check) check_rows(readers_[f]->path(), lo - offsets_[f], hi - lo, meta_.d, dst, advice_);
    }
}

void DatasetSet::read_ranges(const std::vector<par::Range>& ranges, float* out) const {
    for (const auto& r : ranges) {
        MIMIC_REQUIRE(r.begin >= 0 && r.end <= rows_ && r.begin <= r.end, "source rows [", r.begin, ", ",
                      r.end, ") are outside the ", rows_, " rows of the sources");
        if (r.size() == 0) continue;
        // Runs of global rows between dropped ones (one run when nothing was dropped).
        std::int64_t g = source_row(r.begin), left = r.size();
        while (left > 0) {
            auto next = std::lower_bound(dropped_.begin(), dropped_.end(), g);
            const std::int64_t end = next == dropped_.end() ? g + left : std::min(*next, g + left);
            read_global(g, end, out, true);
            out += (end - g) * meta_.d;
            left -= end - g;
            g = end;
            while (next != dropped_.end() && *next == g)
                ++g, ++next;
        }
    }
}

std::vector<std::int64_t> DatasetSet::nonfinite_rows(const par::Comm& comm, std::int64_t chunk_rows) const {
    const std::int64_t total = rows_ + std::int64_t(dropped_.size());
    const par::Range share = par::split_range(total, comm.size(), comm.rank());
    const std::int64_t chunk = std::max<std::int64_t>(1, chunk_rows);
    std::vector<float> buf(size_t(std::min(chunk, std::max<std::int64_t>(share.size(), 1)) * meta_.d));
    std::vector<std::int64_t> mine;
    for (std::int64_t lo = share.begin; lo < share.end; lo += chunk) {
        const std::int64_t hi = std::min(share.end, lo + chunk);
        read_global(lo, hi, buf.data(), false);
        for (std::int64_t i = 0; i < hi - lo; ++i) {
            const float* row = buf.data() + i * meta_.d;
            if (!std::all_of(row, row + meta_.d, [](float v) { return std::isfinite(v); }))
                mine.push_back(lo + i);
        }
    }
    // Every rank's list in rank order (the shares are ascending, so the result is too).
    std::vector<std::int64_t> all;
    for (int r = 0; r < comm.size(); ++r) {
        std::string bytes;
        if (r == comm.rank())
            bytes.assign(reinterpret_cast<const char*>(mine.data()), mine.size() * sizeof(std::int64_t));
        bytes = comm.bcast(bytes, r);
        const size_t n = bytes.size() / sizeof(std::int64_t);
        all.resize(all.size() + n);
        std::memcpy(all.data() + all.size() - n, bytes.data(), n * sizeof(std::int64_t));
    }
    return all;
}

void DatasetSet::drop_rows(std::vector<std::int64_t> rows) {
    dropped_.insert(dropped_.end(), rows.begin(), rows.end());
    std::sort(dropped_.begin(), dropped_.end());
    dropped_.erase(std::unique(dropped_.begin(), dropped_.end()), dropped_.end());
    rows_ =
        offsets_.empty() ? 0 : offsets_.back() + readers_.back()->meta().n - std::int64_t(dropped_.size());
    meta_.n = rows_;
}

std::int64_t DatasetSet::source_row(std::int64_t r) const {
    // The j dropped rows before it: the first j entries with dropped_[i] - i <= r (non-decreasing).
    std::int64_t lo = 0, hi = std::int64_t(dropped_.size());
    while (lo < hi) {
        const std::int64_t mid = (lo + hi) / 2;
        if (dropped_[size_t(mid)] - mid <= r)
            lo = mid + 1;
        else
            hi = mid;
    }
    return r + lo;
}

std::string DatasetSet::describe_row(std::int64_t g) const {
    size_t f = 0;
    while (f + 1 < offsets_.size() && g >= offsets_[f + 1])
        ++f;
    return detail::concat(readers_[f]->path(), " row ", g - offsets_[f]);
}

} // namespace mimic::io
