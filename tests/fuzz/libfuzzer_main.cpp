// The libFuzzer entry for one target, chosen at compile time (MIMIC_FUZZ_TARGET), built only with
// -DMIMIC_ENABLE_FUZZ=ON and clang (see tests/fuzz/README.md).
#include "targets.hpp"

#include "mimic/core/runtime.hpp"

#include <cstdlib>
#include <memory>

// Open MPI and the components it loads allocate memory at MPI_Init that they never free; LeakSanitizer's
// check at exit reports it (after MPI_Finalize has unloaded the components, so the frames cannot even be
// named). Those are not Mimic's leaks: the exit check is off and they are suppressed by library. Leaks of
// Mimic's code are still found, by libFuzzer's check after every input that allocated more than it freed.
extern "C" const char* __asan_default_options() {
    return "leak_check_at_exit=0";
}
extern "C" const char* __lsan_default_suppressions() {
    return "leak:libmpi.so\nleak:libopen-pal.so\nleak:libopen-rte.so\nleak:libhwloc.so\nleak:libpmix.so\n"
           "leak:libevent\nleak:mca_\n";
}

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
    // Open MPI would replace libFuzzer's SIGABRT/SIGSEGV handlers with its own, and no crash input would
    // be saved: keep libFuzzer's.
    setenv("OMPI_MCA_opal_signal", "", 0);
    // MPI, Kokkos and HDF5 stay up for the whole run (the ONNX importer builds models in Kokkos Views).
    static std::unique_ptr<mimic::Runtime> runtime = std::make_unique<mimic::Runtime>(*argc, *argv);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    mimic::fuzz::run_one(MIMIC_FUZZ_TARGET, data, size);
    return 0;
}
