// The per-epoch CSV log: rewritten with the epochs a checkpoint recorded when a run starts or resumes
// (so a resumed run never duplicates rows), then one row appended per epoch. Rank 0 calls these.
#pragma once

#include <string>
#include <vector>

namespace mimic::train {

/// Writes `path` (via path.partial and a rename): the header and the given rows.
void write_csv_rows(const std::string& path, const std::vector<std::string>& columns,
                    const std::vector<std::vector<double>>& rows);
/// Appends one row; a file that cannot be written is an error naming it.
void append_csv(const std::string& path, const std::vector<double>& row);

} // namespace mimic::train
