// Model files in HDF5: the architecture spec, every weight tensor as a named dataset, and training
// metadata; checkpoints add optimizer state, RNG state and the data cursor. Layout-independent.
#pragma once

#include "mimic/io/hdf5.hpp"
#include "mimic/nn/model.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace mimic::io {

/// Schema version written to every model file (attribute `mimic_format`).
inline constexpr const char* kModelFormat = "mimic-model-1";

struct ModelMeta {
    std::string spec;             ///< architecture spec
    nn::Shape input;              ///< sample shape
    int num_classes = 0;          ///< output size
    std::string loss;             ///< "ce", "mimic", "kd:T,alpha", ...
    int epochs = 0;               ///< epochs trained
    std::uint64_t seed = 0;       ///< training seed
    std::string data_fingerprint; ///< fingerprint of the training (or transfer) set
    std::string mimic_version;    ///< filled in by save_model
    double val_accuracy = -1;     ///< last validation accuracy (-1: none)
    std::string weights_checksum; ///< filled in by save_model: hash of every weight
};

/// Writes `path` atomically (path.partial, then rename). Called by one rank with the full model.
void save_model(const std::string& path, const nn::Model& model, const ModelMeta& meta);
/// Loads a model file: every weight must be present with the spec's shape, or a clear error names it.
nn::Model load_model(const std::string& path, ModelMeta* meta = nullptr);
/// Reads only the metadata (cheap).
ModelMeta read_model_meta(const std::string& path);
/// The weights checksum is composable: finish_checksum(Σ_i param_hash(i, p[i]), n) over the flat buffer,
/// so ranks holding slices of a model add their parts with one reduction.
std::uint64_t param_hash(std::int64_t index, float value);
std::string finish_checksum(std::uint64_t sum, std::int64_t num_params);
/// Order-sensitive 64-bit hash of the flat parameter buffer, as 16 hex digits.
std::string weights_checksum(const nn::Model& model);

/// The building blocks of save_model/load_model on an already open (serial) file, shared with the
/// checkpoint files: write_model stores the root attributes and /weights and fills meta.mimic_version and
/// meta.weights_checksum; read_model validates the format, every tensor and the checksum.
void write_model(const h5::File& f, const nn::Model& model, ModelMeta& meta);
/// The root attributes of a model file (shared with the sharded writer of model-parallel students).
void write_model_attributes(const h5::File& f, const ModelMeta& meta, std::int64_t num_params);
nn::Model read_model(const h5::File& f, ModelMeta* meta = nullptr);
/// The model's non-trained state (batch normalisation's running statistics) as /state/<tensor name>, one
/// float32 dataset per state tensor (nothing for a model without state). Collective on a parallel file:
/// ranks with supply = false take part without data.
void write_model_state(const h5::File& f, const nn::Model& model, bool supply);
/// Reads /state into the model's state, checking every tensor; a file without /state (written before
/// state existed, or by a model without any) leaves the initial values (mean 0, variance 1).
void read_model_state(const h5::File& f, nn::Model& model);

} // namespace mimic::io
