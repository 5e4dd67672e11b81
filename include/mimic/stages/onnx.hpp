// `mimic import onnx` and `mimic export onnx`: teachers from ONNX graphs into Mimic model files, and any
// Mimic model file (students included, bottleneck or model-parallel) out to a standard ONNX graph.
#pragma once

#include "mimic/core/comm.hpp"

#include <boost/program_options.hpp>

#include <string>

namespace mimic::stages {

struct OnnxImportOptions {
    std::string model;      ///< the .onnx file
    std::string out;        ///< Mimic model file to write
    bool overwrite = false; ///< replace an existing OUT
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

/// Imports `onnx_path` and writes the Mimic model file `out` (atomically); returns its one-line summary.
/// Serial (call on one rank). Used by `mimic import onnx` and by `mimic ensemble add` for .onnx members.
std::string import_onnx_file(const std::string& onnx_path, const std::string& out);

} // namespace mimic::stages
