// Process-wide runtime: MPI, then Kokkos on the device chosen from the node-local rank, then HDF5
// with its error printing silenced; torn down in reverse order.
#pragma once

#include <string>

namespace mimic {

class Runtime {
public:
    Runtime(int& argc, char**& argv);
    ~Runtime();
    Runtime(const Runtime&) = delete;
    Runtime& operator=(const Runtime&) = delete;

    int world_rank() const { return world_rank_; }
    int world_size() const { return world_size_; }
    int local_rank() const { return local_rank_; }
    int local_size() const { return local_size_; }
    /// Device index this rank uses (local rank modulo the visible GPUs); -1 on host backends.
    int device_id() const { return device_id_; }

private:
    int world_rank_ = 0, world_size_ = 1, local_rank_ = 0, local_size_ = 1, device_id_ = -1;
};

/// True when the environment variable NAME is "1" (the MIMIC_* switches; unset or anything else: false).
bool env_is_one(const char* name);

/// A wait or grace time in seconds from the environment (MIMIC_ABORT_GRACE, MIMIC_ERROR_WAIT,
/// MIMIC_LOCK_WAIT, MIMIC_PROGRESS_INTERVAL): its default when unset or unreadable, otherwise clamped into
/// the variable's range, so that no value makes a wait without end. Never throws (error paths use it).
double env_seconds(const char* name);
/// Throws mimic::Error naming the variable and its value when one of those wait times is set to anything
/// but a finite number within its range (checked once, before a command runs).
void check_environment();

/// "Open MPI v4.1.4, ..." as reported by MPI_Get_library_version (first line).
std::string mpi_version_string();
/// "1.10.8 (parallel)" from H5get_libversion.
std::string hdf5_version_string();
/// "3.4.1 (Serial)".
std::string kokkos_version_string();
/// One line with Mimic's version, git hash and build type.
std::string mimic_version_string();

} // namespace mimic
