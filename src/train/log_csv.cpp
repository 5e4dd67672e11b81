// The per-epoch CSV log of the engine: full rewrite at start or resume, one appended row per epoch; a
// path that cannot be written stops the run with the path named (every command alike).
#include "mimic/train/log_csv.hpp"

#include "mimic/core/error.hpp"
#include "mimic/io/dataset.hpp"

#include <fstream>
#include <iomanip>

namespace mimic::train {

namespace {
void put_row(std::ostream& out, const std::vector<double>& row) {
    out << std::setprecision(8);
    for (size_t i = 0; i < row.size(); ++i)
        out << (i ? "," : "") << row[i];
    out << "\n";
}
} // namespace

void write_csv_rows(const std::string& path, const std::vector<std::string>& columns,
                    const std::vector<std::vector<double>>& rows) {
    const std::string partial = path + ".partial";
    {
        std::ofstream out(partial, std::ios::trunc);
        if (!out) fail("--log-csv: cannot write '", path, "'");
        for (size_t i = 0; i < columns.size(); ++i)
            out << (i ? "," : "") << columns[i];
        out << "\n";
        for (const auto& r : rows)
            put_row(out, r);
        if (!out) fail("--log-csv: writing '", path, "' failed");
    }
    io::rename_file(partial, path);
}

void append_csv(const std::string& path, const std::vector<double>& row) {
    std::ofstream out(path, std::ios::app);
    if (!out) fail("--log-csv: cannot append to '", path, "'");
    put_row(out, row);
    if (!out) fail("--log-csv: appending to '", path, "' failed");
}

} // namespace mimic::train
