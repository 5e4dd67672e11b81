// The resume identity of a stage: one table of the settings (and input fingerprints) that decide its
// result, written as attributes of checkpoints, partial files and finished outputs and compared on resume.
#pragma once

#include "mimic/io/hdf5.hpp"

#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace mimic::io {

class ResumeIdentity {
public:
    /// The HDF5 group that holds the table, one string attribute per setting.
    static constexpr const char* kGroup = "identity";

    /// Adds a setting under the name a user knows it by ("--lr", "transfer set"); values of any
    /// streamable type are written with full precision, so two settings compare equal only when equal.
    template <class T>
    ResumeIdentity& add(const std::string& name, const T& value) {
        std::ostringstream os;
        if constexpr (std::is_floating_point_v<T>)
            os << shortest(double(value));
        else
            os << value;
        entries_.emplace_back(name, os.str());
        return *this;
    }
    /// The shortest decimal text that reads back as exactly v (0.05, not 0.050000000000000003).
    static std::string shortest(double v);
    const std::vector<std::pair<std::string, std::string>>& entries() const { return entries_; }

    /// Writes the table into `f` (collective on a parallel file: every rank passes the same table).
    void write(const h5::File& f) const;
    /// True when `f` carries a table (of any content).
    static bool stored_in(const h5::File& f);
    /// "" when `f`'s table equals this one; otherwise a message naming the first differing setting, e.g.
    /// "--lr is 0.05 there but 0.1 in this run".
    std::string difference(const h5::File& f) const;

private:
    std::vector<std::pair<std::string, std::string>> entries_;
};

} // namespace mimic::io
