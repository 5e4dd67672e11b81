// Errors with context: mimic::Error, the collective flavour every rank agrees on, and check macros
// that carry the failing call, file and line for MPI, HDF5 and Kokkos.
#pragma once

#include <mpi.h>

#include <sstream>
#include <stdexcept>
#include <string>

namespace mimic {

/// A user-facing error. The message is one line that names the file or option and the problem.
class Error : public std::runtime_error {
public:
    explicit Error(const std::string& what) : std::runtime_error(what) {}
};

/// An error that every rank of the communicator raised together (same message on all ranks):
/// rank 0 prints it once and the job exits cleanly without MPI_Abort.
class CollectiveError : public Error {
public:
    explicit CollectiveError(const std::string& what) : Error(what) {}
};

namespace detail {
template <class... Args>
std::string concat(Args&&... args) {
    std::ostringstream os;
    (os << ... << args);
    return os.str();
}
[[noreturn]] void throw_mpi_error(int rc, const char* call, const char* file, int line);
[[noreturn]] void throw_hdf5_error(const char* call, const char* file, int line);
} // namespace detail

/// Throws mimic::Error with the concatenation of the arguments.
template <class... Args>
[[noreturn]] void fail(Args&&... args) {
    throw Error(detail::concat(std::forward<Args>(args)...));
}

/// Installs an HDF5 error handler that keeps the library quiet; failures are reported by MIMIC_H5_CHECK.
void silence_hdf5_errors();

} // namespace mimic

#define MIMIC_REQUIRE(cond, ...)                                                                             \
    do {                                                                                                     \
        if (!(cond)) ::mimic::fail(__VA_ARGS__);                                                             \
    } while (0)

/// Checks an MPI call; on failure throws with the call, file, line and MPI's error string.
#define MIMIC_MPI_CHECK(call)                                                                                \
    do {                                                                                                     \
        int mimic_rc_ = (call);                                                                              \
        if (mimic_rc_ != MPI_SUCCESS)                                                                        \
            ::mimic::detail::throw_mpi_error(mimic_rc_, #call, __FILE__, __LINE__);                          \
    } while (0)

/// Checks an HDF5 call returning herr_t or hid_t; negative means failure. Evaluates to the result.
#define MIMIC_H5_CHECK(call)                                                                                 \
    ([&]() {                                                                                                 \
        auto mimic_r_ = (call);                                                                              \
        if (mimic_r_ < 0) ::mimic::detail::throw_hdf5_error(#call, __FILE__, __LINE__);                      \
        return mimic_r_;                                                                                     \
    }())

/// Wraps a Kokkos call site: turns Kokkos' std::runtime_error into a mimic::Error naming the call.
#define MIMIC_KOKKOS_CHECK(call)                                                                             \
    do {                                                                                                     \
        try {                                                                                                \
            call;                                                                                            \
        } catch (const ::mimic::Error&) {                                                                    \
            throw;                                                                                           \
        } catch (const std::exception& mimic_e_) {                                                           \
            ::mimic::fail("Kokkos call `", #call, "` failed at ", __FILE__, ":", __LINE__, ": ",             \
                          mimic_e_.what());                                                                  \
        }                                                                                                    \
    } while (0)
