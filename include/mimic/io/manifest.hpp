// Ensemble manifests: one HDF5 file listing every member model (path, architecture, seed, validation
// accuracy, parameter count, FLOPs per sample, checksum) with validation of the members it points at.
#pragma once

#include "mimic/nn/model.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace mimic::io {

/// Schema version written to every manifest (attribute `mimic_format`).
inline constexpr const char* kManifestFormat = "mimic-ensemble-1";

struct MemberInfo {
    std::string path;         ///< as stored: relative to the manifest's directory, or absolute
    std::string spec;         ///< architecture spec
    std::uint64_t seed = 0;   ///< training seed (0 when imported)
    double val_accuracy = -1; ///< validation accuracy recorded at training (-1: unknown)
    std::int64_t params = 0;  ///< parameter count
    double flops = 0;         ///< forward FLOPs per sample
    std::string checksum;     ///< weights checksum (io::weights_checksum) of the member file
    nn::Shape input;          ///< sample shape
    int num_classes = 0;      ///< output size
};

struct Manifest {
    std::vector<MemberInfo> members;
    /// Directory of the manifest file; relative member paths resolve against it.
    std::string base_dir = ".";

    /// Absolute-or-cwd-relative path of member i.
    std::string member_path(std::size_t i) const;
    /// Hash of the ordered member checksums (16 hex digits): identifies the ensemble.
    std::string ensemble_checksum() const;
    int num_classes() const { return members.empty() ? 0 : members.front().num_classes; }
    nn::Shape input() const { return members.empty() ? nn::Shape{} : members.front().input; }
};

/// Reads a manifest; a missing file, a wrong format or a malformed member entry is a clear error.
Manifest read_manifest(const std::string& path);
/// Writes a manifest atomically (path.partial + rename); called by one rank.
void write_manifest(const std::string& path, const Manifest& m);
/// Describes a model file as a manifest entry (reads its metadata; path stored as given).
MemberInfo member_from_model_file(const std::string& model_path, const std::string& stored_path);
/// Checks that the members agree on classes and input shape and that every member file exists, is a
/// valid model and still has the recorded checksum. Throws a clear error naming the member otherwise.
/// With deep = true every member's weights are loaded and verified (slower).
void validate_manifest(const Manifest& m, const std::string& manifest_path, bool deep);

} // namespace mimic::io
