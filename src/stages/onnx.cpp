// `mimic import onnx` / `mimic export onnx`: rank 0 converts, every rank agrees on the outcome, and the
// output is written atomically (a failed import leaves no file behind).
#include "mimic/stages/onnx.hpp"

#include "mimic/core/log.hpp"
#include "mimic/io/dataset.hpp"
#include "mimic/io/model_file.hpp"
#include "mimic/io/onnx.hpp"
#include "mimic/io/paths.hpp"
#include "mimic/nn/fold.hpp"

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
        ("raw-input", po::value(&o.raw_input), "dataset file the model was trained on (e.g. data/train.h5): its "
                                               "normalisation and the reshape go into the graph, whose input is "
                                               "then raw feature rows [N, D] (e.g. 0-255 pixels)")
        ("overwrite", po::bool_switch(&o.overwrite), "replace an existing output file");
}
// clang-format on

namespace {

/// The normalisation stored in a dataset file (/norm/mean, /norm/std, @norm_scale). Serial.
io::RawInput read_raw_input(const std::string& path, const nn::Shape& input) {
    if (!io::file_exists(path)) fail("--raw-input: ", path, ": no such dataset file");
    const par::Comm self = par::Comm::self();
    const io::DatasetReader data(path, self);
    const auto& m = data.meta();
    if (nn::Shape{m.c, m.h, m.w} != input)
        fail("--raw-input: ", path, ": samples are ", m.c, "x", m.h, "x", m.w, " but the model takes ",
             input.c, "x", input.h, "x", input.w);
    io::RawInput raw;
    raw.source = path;
    raw.scale = float(m.norm_scale);
    raw.mean = data.norm_mean();
    raw.std = data.norm_std();
    return raw;
}

} // namespace

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
    const auto lock = io::claim_outputs({o.out}, {o.model}, comm.get());
    std::string line;
    par::agree(comm, [&] {
        if (comm.rank() != 0) return;
        if (io::file_exists(o.out) && !o.overwrite) fail(o.out, ": exists (use --overwrite to replace it)");
        line = import_onnx_file(o.model, o.out);
    });
    log::info("import onnx: ", line);
}

void run(const OnnxExportOptions& o, const par::Comm& comm) {
    const auto lock = io::claim_outputs({o.out}, {o.model}, comm.get());
    std::string line;
    par::agree(comm, [&] {
        if (comm.rank() != 0) return;
        if (!io::file_exists(o.model)) fail(o.model, ": no such model file");
        if (io::file_exists(o.out) && !o.overwrite) fail(o.out, ": exists (use --overwrite to replace it)");
        io::ModelMeta meta;
        const nn::Model model = nn::fold_for_inference(io::load_model(o.model, &meta));
        const nn::Shape in = model.input_shape();
        std::ostringstream os;
        os << o.model << " -> " << o.out << ": " << meta.spec << ", opset " << io::kOnnxExportOpset;
        if (o.raw_input.empty()) {
            io::export_onnx(model, o.out);
            os << ", input 'input' (normalised rows";
            if (!(in.c == 1 && in.h == 1)) os << " as [N, " << in.c << ", " << in.h << ", " << in.w << "]";
            os << ")";
        } else {
            const io::RawInput raw = read_raw_input(o.raw_input, in);
            io::export_onnx(model, o.out, &raw);
            os << ", input 'input' [N, " << in.size() << "] of raw rows (normalisation of " << o.raw_input
               << " inside)";
        }
        os << ", output 'logits' [N, " << model.output_size() << "]";
        line = os.str();
    });
    log::info("export onnx: ", line);
}

} // namespace mimic::stages
