// Writing and comparing a stage's resume identity: the /identity group of a checkpoint, partial file or
// output, one string attribute per setting, compared setting by setting with the differing one named.
#include "mimic/io/resume_identity.hpp"

#include "mimic/core/error.hpp"

#include <cstdio>
#include <cstdlib>
#include <map>

namespace mimic::io {

std::string ResumeIdentity::shortest(double v) {
    char buf[40];
    for (int digits = 1; digits <= 17; ++digits) {
        std::snprintf(buf, sizeof buf, "%.*g", digits, v);
        if (std::strtod(buf, nullptr) == v) break;
    }
    return buf;
}

void ResumeIdentity::write(const h5::File& f) const {
    h5::ensure_groups(f, std::string("/") + kGroup + "/x");
    h5::Handle g(H5Gopen2(f.id(), kGroup, H5P_DEFAULT), H5Gclose);
    MIMIC_REQUIRE(g.valid(), f.path(), ": cannot open group /", kGroup);
    for (const auto& [name, value] : entries_)
        h5::write_attr(g.id(), name, value);
}

bool ResumeIdentity::stored_in(const h5::File& f) {
    return f.has(std::string("/") + kGroup);
}

std::string ResumeIdentity::difference(const h5::File& f) const {
    if (!stored_in(f)) return detail::concat("it records no settings (/", kGroup, " is missing)");
    h5::Handle g(H5Gopen2(f.id(), kGroup, H5P_DEFAULT), H5Gclose);
    MIMIC_REQUIRE(g.valid(), f.path(), ": cannot open group /", kGroup);
    std::map<std::string, std::string> have;
    H5O_info_t info;
    MIMIC_REQUIRE(H5Oget_info(g.id(), &info) >= 0, f.path(), ": cannot read /", kGroup);
    for (hsize_t i = 0; i < info.num_attrs; ++i) {
        char name[512];
        const ssize_t len =
            H5Aget_name_by_idx(g.id(), ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name, H5P_DEFAULT);
        MIMIC_REQUIRE(len > 0 && len < ssize_t(sizeof name), f.path(), ": unreadable attribute in /", kGroup);
        have[name] = h5::read_attr_string(g.id(), name);
    }
    for (const auto& [name, value] : entries_) {
        const auto it = have.find(name);
        if (it == have.end())
            return detail::concat(name, " is not recorded there but is ", value, " in this run");
        if (it->second != value)
            return detail::concat(name, " is ", it->second, " there but ", value, " in this run");
        have.erase(it);
    }
    if (!have.empty())
        return detail::concat(have.begin()->first, " is ", have.begin()->second,
                              " there but this run does not set it");
    return "";
}

} // namespace mimic::io
