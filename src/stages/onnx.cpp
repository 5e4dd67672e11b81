// `mimic import onnx` / `mimic export onnx`: rank 0 converts, every rank agrees on the outcome, and the
// output is written atomically (a failed import leaves no file behind).
#include "mimic/stages/onnx.hpp"

#include "mimic/core/log.hpp"
#include "mimic/io/dataset.hpp"
#include "mimic/io/model_file.hpp"
#include "mimic/io/onnx.hpp"

#include <sstream>

namespace po = boost::program_options;

namespace mimic::stages {

// clang-format off
void describe(po::options_description& d, OnnxImportOptions& o) {
    d.add_options()
        ("model", po::value(&o.model)->required(), "ONNX model to import (positional; opset 11 or later)")
        ("out", po::value(&o.out)->required(), "Mimic model file to write")
        ("overwrite", po::bool_switch(&o.overwrite), "replace an existing output file");
}

void describe(po::options_description& d, OnnxExportOptions& o) {
    d.add_options()
        ("model", po::value(&o.model)->required(), "Mimic model file to export (positional)")
        ("out", po::value(&o.out)->required(), "ONNX file to write (opset 13)")
        ("overwrite", po::bool_switch(&o.overwrite), "replace an existing output file");
}
// clang-format on

std::string import_onnx_file(const std::string& onnx_path, const std::string& out) {
    if (!io::file_exists(onnx_path)) fail(onnx_path, ": no such ONNX file");
    io::ModelMeta meta;
    const nn::Model model = io::import_onnx(onnx_path, &meta);
    io::save_model(out, model, meta);
    std::ostringstream os;
    os << onnx_path << " -> " << out << ": " << meta.spec << " on " << meta.input.c << "x" << meta.input.h
       << "x" << meta.input.w << ", " << meta.num_classes << " outputs, " << model.num_params()
       << " parameters";
    return os.str();
}

void run(const OnnxImportOptions& o, const par::Comm& comm) {
    std::string line;
    par::agree(comm, [&] {
        if (comm.rank() != 0) return;
        if (io::file_exists(o.out) && !o.overwrite) fail(o.out, ": exists (use --overwrite to replace it)");
        line = import_onnx_file(o.model, o.out);
    });
    log::info("import onnx: ", line);
}

void run(const OnnxExportOptions& o, const par::Comm& comm) {
    std::string line;
    par::agree(comm, [&] {
        if (comm.rank() != 0) return;
        if (!io::file_exists(o.model)) fail(o.model, ": no such model file");
        if (io::file_exists(o.out) && !o.overwrite) fail(o.out, ": exists (use --overwrite to replace it)");
        io::ModelMeta meta;
        const nn::Model model = io::load_model(o.model, &meta);
        io::export_onnx(model, o.out);
        std::ostringstream os;
        os << o.model << " -> " << o.out << ": " << meta.spec << ", opset " << io::kOnnxExportOpset
           << ", input 'input', output 'logits' [N, " << model.output_size() << "]";
        line = os.str();
    });
    log::info("export onnx: ", line);
}

} // namespace mimic::stages
