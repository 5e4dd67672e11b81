// `mimic import onnx` and `mimic export onnx`: teachers from ONNX graphs into Mimic model files, and any
// Mimic model file (students included, bottleneck or model-parallel) out to a standard ONNX graph.
#pragma once

#include "mimic/core/comm.hpp"

#include <boost/program_options.hpp>

#include <string>

namespace mimic::stages {

/// What an ONNX model's inputs were when it was trained (`import onnx`, and `ensemble add` of .onnx files):
/// with norm_from, the imported model takes the rows of that dataset file (and of any file of its import)
/// and maps them to (raw · @norm_scale − mean) / std per channel, as torchvision's ToTensor and
/// Normalize(mean, std) did in training. Empty: the model takes the stored rows as they are.
struct OnnxInputOptions {
    std::string norm_from;  ///< a dataset file whose normalisation the rows given to the model have
    std::string mean = "0"; ///< comma-separated: one value, or one per channel
    std::string std = "1";
};

struct OnnxImportOptions {
    std::string model;      ///< the .onnx file
    std::string out;        ///< Mimic model file to write
    bool overwrite = false; ///< replace an existing OUT
    OnnxInputOptions input;
};

struct OnnxExportOptions {
    std::string model;      ///< Mimic model file
    std::string out;        ///< the .onnx file to write
    std::string raw_input;  ///< a dataset file: its normalisation goes into the graph, which takes raw rows
    bool overwrite = false; ///< replace an existing OUT
};

void describe(boost::program_options::options_description& desc, OnnxImportOptions& o);
void run(const OnnxImportOptions& o, const par::Comm& comm);
void describe(boost::program_options::options_description& desc, OnnxExportOptions& o);
void run(const OnnxExportOptions& o, const par::Comm& comm);

/// --norm-from, --input-mean and --input-std into `d`.
void describe(boost::program_options::options_description& d, OnnxInputOptions& o);

/// Imports `onnx_path` and writes the Mimic model file `out` (atomically); returns its one-line summary.
/// Serial (call on one rank). Used by `mimic import onnx` and by `mimic ensemble add` for .onnx members.
std::string import_onnx_file(const std::string& onnx_path, const std::string& out,
                             const OnnxInputOptions& input = {});

} // namespace mimic::stages
