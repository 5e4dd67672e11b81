// Fuzz entry points over Mimic's parsers of untrusted input: the IDX reader, the NumPy .npy/.npz, CIFAR
// binary and HDF5 array sources, the architecture spec, the INI config reader, the ONNX importer, and the
// model-file and checkpoint readers (edited valid files). Shared by the libFuzzer targets and the corpus
// replay test.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace mimic::fuzz {

/// Feeds one input to `target` ("idx", "npy", "cifar", "hdf5", "spec", "ini", "onnx", "model" or
/// "checkpoint"). A mimic::Error
/// is the expected answer to a bad input and is swallowed; anything else (another exception, a crash) is a
/// finding. Returns false for an unknown target name.
bool run_one(const std::string& target, const std::uint8_t* data, std::size_t size);

/// The target names, for usage messages.
const char* target_names();

} // namespace mimic::fuzz
