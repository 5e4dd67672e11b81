// Runtime set-up and teardown (MPI, Kokkos, HDF5) and the version strings shown by `mimic --version`.
// The GPU is picked from the node-local rank so that one rank per GPU needs no wrapper script.
#include "mimic/core/runtime.hpp"

#include "mimic/core/error.hpp"
#include "mimic/core/kokkos.hpp"
#include "mimic/core/version_info.hpp"

#include <hdf5.h>
#include <mpi.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <sstream>

namespace mimic {

Runtime::Runtime(int& argc, char**& argv) {
    // A file-size limit (ulimit -f, quotas) must surface as a write error naming the file, not a crash.
    std::signal(SIGXFSZ, SIG_IGN);
    int provided = 0;
    // MULTIPLE: the distillation stage prefetches blocks with collective reads on an I/O thread.
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &world_rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &world_size_);
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, world_rank_, MPI_INFO_NULL, &local);
    MPI_Comm_rank(local, &local_rank_);
    MPI_Comm_size(local, &local_size_);
    MPI_Comm_free(&local);
    init_error_comm();

#if defined(KOKKOS_ENABLE_CUDA) || defined(KOKKOS_ENABLE_HIP) || defined(KOKKOS_ENABLE_SYCL)
    int ndev = 1;
    if (const char* s = std::getenv("MIMIC_NUM_DEVICES")) ndev = std::max(1, std::atoi(s));
#if defined(KOKKOS_ENABLE_CUDA)
    else {
        int n = 0;
        if (cudaGetDeviceCount(&n) == cudaSuccess && n > 0) ndev = n;
    }
#endif
    device_id_ = local_rank_ % ndev;
#endif

#if KOKKOS_VERSION >= 40000
    Kokkos::InitializationSettings settings;
    if (device_id_ >= 0) settings.set_device_id(device_id_);
    Kokkos::initialize(settings);
#else
    Kokkos::InitArguments args;
    if (device_id_ >= 0) args.device_id = device_id_;
    Kokkos::initialize(args);
#endif
    H5open();
    silence_hdf5_errors();
}

Runtime::~Runtime() {
    Kokkos::finalize();
    int fin = 0;
    MPI_Finalized(&fin);
    if (!fin) MPI_Finalize();
}

bool env_is_one(const char* name) {
    const char* s = std::getenv(name);
    return s && std::strcmp(s, "1") == 0;
}

namespace {

/// The wait times read from the environment: default and the range a value must lie in.
struct EnvWait {
    const char* name;
    double fallback, lo, hi;
};
constexpr EnvWait kEnvWaits[] = {{"MIMIC_ABORT_GRACE", 3.0, 0.001, 300.0},
                                 {"MIMIC_ERROR_WAIT", 10.0, 0.001, 600.0},
                                 {"MIMIC_LOCK_WAIT", 5.0, 0.0, 3600.0},
                                 {"MIMIC_PROGRESS_INTERVAL", 10.0, 0.001, 86400.0}};

/// True when all of `s` is one number (stored in v).
bool parse_number(const char* s, double& v) {
    char* end = nullptr;
    v = std::strtod(s, &end);
    while (end && *end != '\0' && std::isspace(static_cast<unsigned char>(*end)))
        ++end;
    return end != s && end && *end == '\0';
}

} // namespace

double env_seconds(const char* name) {
    for (const auto& w : kEnvWaits) {
        if (std::strcmp(w.name, name) != 0) continue;
        const char* s = std::getenv(name);
        double v = 0;
        if (!s || !parse_number(s, v) || !std::isfinite(v)) return w.fallback;
        return std::min(w.hi, std::max(w.lo, v));
    }
    fail("internal: ", name, " is not a known wait time");
}

void check_environment() {
    for (const auto& w : kEnvWaits) {
        const char* s = std::getenv(w.name);
        double v = 0;
        if (s && (!parse_number(s, v) || !std::isfinite(v) || v < w.lo || v > w.hi))
            fail(w.name, "=", s, ": must be a number of seconds from ", w.lo, " to ", w.hi,
                 " (unset: ", w.fallback, ")");
    }
}

std::string mpi_version_string() {
    char buf[MPI_MAX_LIBRARY_VERSION_STRING] = {0};
    int len = 0;
    MPI_Get_library_version(buf, &len);
    std::string s(buf, len);
    auto nl = s.find_first_of("\n,");
    if (nl != std::string::npos) s = s.substr(0, nl);
    int v = 0, sv = 0;
    MPI_Get_version(&v, &sv);
    return s + " (MPI " + std::to_string(v) + "." + std::to_string(sv) + ")";
}

std::string hdf5_version_string() {
    unsigned maj = 0, min = 0, rel = 0;
    H5get_libversion(&maj, &min, &rel);
    std::ostringstream os;
    os << maj << "." << min << "." << rel;
#ifdef H5_HAVE_PARALLEL
    os << " (parallel)";
#else
    os << " (serial)";
#endif
    return os.str();
}

std::string kokkos_version_string() {
    std::ostringstream os;
    os << KOKKOS_VERSION / 10000 << "." << KOKKOS_VERSION / 100 % 100 << "." << KOKKOS_VERSION % 100 << " ("
       << ExecSpace::name() << " backend)";
    return os.str();
}

std::string mimic_version_string() {
    return std::string("mimic ") + MIMIC_VERSION_STRING + " (git " + MIMIC_GIT_HASH + ", " +
           MIMIC_BUILD_TYPE + ")";
}

} // namespace mimic
