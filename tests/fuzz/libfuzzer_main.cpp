// The libFuzzer entry for one target, chosen at compile time (MIMIC_FUZZ_TARGET), built only with
// -DMIMIC_ENABLE_FUZZ=ON and clang (see tests/fuzz/README.md).
#include "targets.hpp"

#include "mimic/core/runtime.hpp"

#include <memory>

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
    // MPI, Kokkos and HDF5 stay up for the whole run (the ONNX importer builds models in Kokkos Views).
    static std::unique_ptr<mimic::Runtime> runtime = std::make_unique<mimic::Runtime>(*argc, *argv);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    mimic::fuzz::run_one(MIMIC_FUZZ_TARGET, data, size);
    return 0;
}
