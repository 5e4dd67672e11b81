// Implementation of the MPI and HDF5 error reporting used by the MIMIC_*_CHECK macros.
// HDF5's own stack printing is turned off; its innermost messages are folded into one line instead.
#include "mimic/core/error.hpp"

#include <hdf5.h>

#include <vector>

namespace mimic {
namespace detail {

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

void silence_hdf5_errors() {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

} // namespace mimic
