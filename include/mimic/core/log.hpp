// Rank-0 logging: info() prints once per job, warn() from any rank with its rank number.
// Output is line-buffered and flushed so that SLURM logs show progress as it happens.
#pragma once

#include "mimic/core/error.hpp"

#include <iostream>
#include <string>

namespace mimic::log {

/// Rank of this process in MPI_COMM_WORLD (0 before MPI is initialised).
int world_rank();
/// Suppresses info() output (used by tests and --quiet).
void set_quiet(bool quiet);
bool quiet();

void write_info(const std::string& line);
void write_warn(const std::string& line);

/// "1 block", "3 blocks": a count with its noun in the right number (nouns taking a plain -s).
inline std::string count(long long n, const std::string& noun) {
    return detail::concat(n, " ", noun, n == 1 ? "" : "s");
}

/// Prints a line on rank 0 only.
template <class... Args>
void info(Args&&... args) {
    if (world_rank() == 0 && !quiet()) write_info(detail::concat(std::forward<Args>(args)...));
}

/// Prints a warning on stderr from whichever rank calls it, prefixed with the rank.
template <class... Args>
void warn(Args&&... args) {
    write_warn(detail::concat(std::forward<Args>(args)...));
}

} // namespace mimic::log
