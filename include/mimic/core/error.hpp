// Errors with context: mimic::Error, the collective flavour every rank agrees on, and check macros
// that carry the failing call, file and line for MPI, HDF5 and Kokkos.
#pragma once

#include <mpi.h>

#include <sstream>
#include <stdexcept>
#include <string>

namespace mimic {

namespace detail {
/// Remembers the message of the error being raised on this thread, so that a destructor that must end
/// the job while the error unwinds (see h5::File) can still print it.
void note_raised(const std::string& what);
} // namespace detail

/// A user-facing error. The message is one line that names the file or option and the problem.
class Error : public std::runtime_error {
public:
    explicit Error(const std::string& what) : std::runtime_error(what) { detail::note_raised(what); }
};

/// An error that every rank of a communicator raised together (same message on all ranks). When that
/// communicator spans the whole job, rank 0 prints it once and the job exits cleanly without MPI_Abort;
/// from a sub-communicator (an ensemble group) its rank 0 prints it and the job is aborted.
class CollectiveError : public Error {
public:
    explicit CollectiveError(const std::string& what, bool whole_job = true, bool reporter = true)
        : Error(what), whole_job_(whole_job), reporter_(reporter) {}
    /// Every rank of MPI_COMM_WORLD raised it.
    bool whole_job() const { return whole_job_; }
    /// This rank prints it (rank 0 of the communicator that agreed).
    bool reporter() const { return reporter_; }

private:
    bool whole_job_ = true;
    bool reporter_ = true;
};

/// The prefix of every error line, "mimic <command>" once the command is known.
void set_error_prefix(const std::string& prefix);
const std::string& error_prefix();
/// The message of the last mimic::Error raised on this thread ("" when none).
const std::string& last_error_message();

/// Prints "<prefix>: error: <message>" to stderr on this rank and ends the whole job at once with
/// MPI_Abort (no unwinding, no collective clean-up). The Open MPI banner is silenced by jobs/env.sh.
/// Another rank than 0 first tells rank 0 that it printed its own line (see another_rank_reported).
[[noreturn]] void abort_job(const std::string& message, int code = 1);
/// True when another rank has printed its own error line through abort_job: rank 0, reaching the same
/// error later (it agreed with ranks that gave up waiting for it), then leaves its copy of the line out.
bool another_rank_reported();

/// Like abort_job, for an error caught at the top of a multi-rank job: when every rank of the job gets
/// here within MIMIC_ABORT_GRACE seconds (they all failed alike), only rank 0 prints its line; otherwise
/// this rank prints its own at once. Either way the job is aborted.
[[noreturn]] void abort_job_once(const std::string& message, int code = 1);

/// Collective at start-up (Runtime): the private communicator abort_job_once agrees on.
void init_error_comm();
/// Seconds that a failing rank waits for the others to fail alike (MIMIC_ABORT_GRACE, default 3).
double abort_grace_seconds();
/// True when every rank of `comm` reaches this call within abort_grace_seconds() (MPI_Ibarrier).
bool all_ranks_arrive(MPI_Comm comm);
/// Waits for a nonblocking request for at most `seconds`; false when it has not completed by then.
bool wait_at_most(MPI_Request& req, double seconds);
/// Seconds a rank holding an error waits in par::agree for the others (MIMIC_ERROR_WAIT, default 10):
/// they may be blocked in a collective the failing rank skipped, so it then aborts the job instead.
double error_wait_seconds();

/// Watchdog for an error path that stalls in clean-up (MPI_Finalize, HDF5's atexit closes): unless the
/// process has exited within `seconds`, it prints one line and aborts the job with `code`.
void arm_exit_watchdog(int code, double seconds = 30);

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
