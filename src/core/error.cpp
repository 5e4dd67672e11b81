// Implementation of the MPI and HDF5 error reporting used by the MIMIC_*_CHECK macros.
// HDF5's own stack printing is turned off; its innermost messages are folded into one line instead.
#include "mimic/core/error.hpp"

#include "mimic/core/runtime.hpp"

#include <hdf5.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

namespace mimic {
namespace detail {

namespace {
thread_local std::string t_last_error;
std::string g_error_prefix = "mimic";
} // namespace

void note_raised(const std::string& what) {
    t_last_error = what;
}

void throw_mpi_error(int rc, const char* call, const char* file, int line) {
    char buf[MPI_MAX_ERROR_STRING] = {0};
    int len = 0;
    MPI_Error_string(rc, buf, &len);
    throw Error(concat("MPI call `", call, "` failed (", file, ":", line, "): ", std::string(buf, len),
                       ". Check the MPI launcher, the rank count and the file system."));
}

namespace {
herr_t collect_h5_error(unsigned n, const H5E_error2_t* err, void* data) {
    auto* msgs = static_cast<std::vector<std::string>*>(data);
    if (err && err->desc && msgs->size() < 3) {
        (void)n;
        msgs->emplace_back(concat(err->func_name ? err->func_name : "?", ": ", err->desc));
    }
    return 0;
}
} // namespace

void throw_hdf5_error(const char* call, const char* file, int line) {
    std::vector<std::string> msgs;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, collect_h5_error, &msgs);
    H5Eclear2(H5E_DEFAULT);
    std::string detail;
    for (const auto& m : msgs)
        detail += (detail.empty() ? "" : "; ") + m;
    throw Error(concat("HDF5 call `", call, "` failed (", file, ":", line, ")",
                       detail.empty() ? std::string() : ": " + detail));
}

} // namespace detail

void set_error_prefix(const std::string& prefix) {
    detail::g_error_prefix = prefix;
}

const std::string& error_prefix() {
    return detail::g_error_prefix;
}

const std::string& last_error_message() {
    return detail::t_last_error;
}

namespace {
MPI_Comm g_error_comm = MPI_COMM_NULL;
// The flag a rank sends to rank 0 of the job when it prints its own error line (on g_error_comm only).
constexpr int kReportedTag = 4242;

bool launched_by_mpi() {
    return std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMI_SIZE") || std::getenv("SLURM_STEP_ID");
}

/// Tells rank 0 of the job that this rank prints its own line, so that rank 0, reaching the same error
/// later through a collective, does not print it a second time. Rank 0 and single-rank jobs send nothing.
void announce_own_report() {
    if (g_error_comm == MPI_COMM_NULL) return;
    int rank = 0;
    MPI_Comm_rank(g_error_comm, &rank);
    if (rank == 0) return;
    static int flag = 1;
    MPI_Request req;
    if (MPI_Isend(&flag, 1, MPI_INT, 0, kReportedTag, g_error_comm, &req) == MPI_SUCCESS)
        MPI_Request_free(&req);
}

/// Prints "<prefix>: error: <message>" after stdout and a moment for a launcher to forward it, so that
/// the error is the last line; a line shared by every rank is left out when another rank printed it.
void print_last(const std::string& message, bool shared) {
    std::fflush(stdout);
    if (launched_by_mpi()) std::this_thread::sleep_for(std::chrono::milliseconds(300));
    if (shared && another_rank_reported()) return;
    std::fprintf(stderr, "%s: error: %s\n", detail::g_error_prefix.c_str(), message.c_str());
    std::fflush(stderr);
}

[[noreturn]] void end_job(int code) {
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (init && !fin) MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
}
} // namespace

void abort_job(const std::string& message, int code) {
    announce_own_report();
    print_last(message, false);
    end_job(code);
}

bool another_rank_reported() {
    if (g_error_comm == MPI_COMM_NULL) return false;
    int found = 0;
    if (MPI_Iprobe(MPI_ANY_SOURCE, kReportedTag, g_error_comm, &found, MPI_STATUS_IGNORE) != MPI_SUCCESS)
        return false;
    return found != 0;
}

void init_error_comm() {
    int size = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size > 1 && g_error_comm == MPI_COMM_NULL) MPI_Comm_dup(MPI_COMM_WORLD, &g_error_comm);
}

double abort_grace_seconds() {
    return env_seconds("MIMIC_ABORT_GRACE");
}

double error_wait_seconds() {
    return env_seconds("MIMIC_ERROR_WAIT");
}

bool all_ranks_arrive(MPI_Comm comm) {
    MPI_Request req;
    if (MPI_Ibarrier(comm, &req) != MPI_SUCCESS) return false;
    return wait_at_most(req, abort_grace_seconds());
}

bool wait_at_most(MPI_Request& req, double seconds) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < deadline) {
        int done = 0;
        if (MPI_Test(&req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS) return false;
        if (done) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return false;
}

void abort_job_once(const std::string& message, int code) {
    if (g_error_comm != MPI_COMM_NULL && all_ranks_arrive(g_error_comm)) {
        int rank = 0;
        MPI_Comm_rank(g_error_comm, &rank);
        if (rank != 0) {
            // Rank 0 prints the same failure and aborts the job; this rank only waits to be ended.
            std::this_thread::sleep_for(std::chrono::seconds(10));
            MPI_Abort(MPI_COMM_WORLD, code);
        }
        // Rank 0: every rank failed alike, unless one gave up waiting and printed its own line already.
        print_last(message, true);
        end_job(code);
    }
    abort_job(message, code);
}

void arm_exit_watchdog(int code, double seconds) {
    std::thread([code, seconds] {
        std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
        // Not abort_job: no MPI call but the abort from this thread while the main one is in clean-up.
        print_last(detail::concat("the job did not exit within ", seconds,
                                  " s of the error above (a rank is stuck in clean-up); aborting it"),
                   false);
        end_job(code);
    }).detach();
}

void silence_hdf5_errors() {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

} // namespace mimic
