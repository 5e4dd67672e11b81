// `mimic import onnx` / `mimic export onnx`: rank 0 converts, every rank agrees on the outcome, and the
// output is written atomically (a failed import leaves no file behind).
#include "mimic/stages/onnx.hpp"

#include "mimic/core/log.hpp"
#include "mimic/io/dataset.hpp"
#include "mimic/io/model_file.hpp"
#include "mimic/io/onnx.hpp"
#include "mimic/io/paths.hpp"
#include "mimic/nn/fold.hpp"

#include <cmath>
#include <cstdlib>
#include <optional>
#include <sstream>

namespace po = boost::program_options;

namespace mimic::stages {

// clang-format off
void describe(po::options_description& d, OnnxImportOptions& o) {
    d.add_options()
        ("model", po::value(&o.model)->required(), "ONNX model to import (positional; opset 11 or later)")
        ("out", po::value(&o.out)->required(), "Mimic model file to write")
        ("overwrite", po::bool_switch(&o.overwrite), "replace an existing output file");
    describe(d, o.input);
}

void describe(po::options_description& d, OnnxInputOptions& o) {
    d.add_options()
        ("norm-from", po::value(&o.norm_from), "dataset file (e.g. data/train.h5) whose rows the model will label: a first bn layer maps "
                                               "them to (raw pixel scaled to [0,1] - input-mean) / input-std per channel, the inputs the "
                                               "model was trained on (torchvision's ToTensor, Normalize); without it the model takes the "
                                               "stored rows as they are")
        ("input-mean", po::value(&o.mean)->default_value(o.mean), "with --norm-from: the mean the model's inputs were normalised with, "
                                                                 "one value or one per channel, comma-separated (e.g. 0.4914,0.4822,0.4465)")
        ("input-std", po::value(&o.std)->default_value(o.std), "with --norm-from: the std the model's inputs were normalised with, "
                                                              "one value or one per channel (e.g. 0.2470,0.2435,0.2616)");
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

/// The normalisation stored in a dataset file (/norm/mean, /norm/std, @norm_scale), whose samples must have
/// the model's `input` shape when given (errors name `option`). Serial.
io::RawInput read_raw_input(const std::string& path, const nn::Shape* input,
                            const std::string& option = "--raw-input") {
    if (!io::file_exists(path)) fail(option, ": ", path, ": no such dataset file");
    const par::Comm self = par::Comm::self();
    const io::DatasetReader data(path, self);
    const auto& m = data.meta();
    if (input && nn::Shape{m.c, m.h, m.w} != *input)
        fail(option, ": ", path, ": samples are ", m.c, "x", m.h, "x", m.w, " but the model takes ", input->c,
             "x", input->h, "x", input->w);
    io::RawInput raw;
    raw.source = path;
    raw.scale = float(m.norm_scale);
    raw.mean = data.norm_mean();
    raw.std = data.norm_std();
    return raw;
}

/// A comma-separated list of finite numbers (`positive`: each > 0) given to `option`.
std::vector<double> number_list(const std::string& option, const std::string& text, bool positive) {
    std::vector<double> out;
    std::stringstream ss(text);
    std::string part;
    while (std::getline(ss, part, ',')) {
        char* end = nullptr;
        const double v = std::strtod(part.c_str(), &end);
        if (part.empty() || end == part.c_str() || *end != '\0' || !std::isfinite(v) || (positive && v <= 0))
            fail(option, ": '", part, "' in '", text, "' is not a finite", positive ? " positive" : "",
                 " number");
        out.push_back(v);
    }
    if (out.empty() || text.back() == ',')
        fail(option, ": '", text, "' is not a comma-separated list of numbers");
    return out;
}

/// The options' input normalisation (nullopt: none asked for); the importer checks the data's shape.
std::optional<io::InputNorm> input_norm(const OnnxInputOptions& o) {
    const bool given = o.mean != "0" || o.std != "1";
    if (o.norm_from.empty()) {
        if (given)
            fail("--input-mean, --input-std: need --norm-from DATA.h5 (the rows the model will be given)");
        return std::nullopt;
    }
    io::InputNorm in;
    in.data = read_raw_input(o.norm_from, nullptr, "--norm-from");
    in.mean = number_list("--input-mean", o.mean, false);
    in.std = number_list("--input-std", o.std, true);
    return in;
}

} // namespace

std::string import_onnx_file(const std::string& onnx_path, const std::string& out,
                             const OnnxInputOptions& input) {
    if (!io::file_exists(onnx_path)) fail(onnx_path, ": no such ONNX file");
    const std::optional<io::InputNorm> norm = input_norm(input);
    io::ModelMeta meta;
    const nn::Model model = io::import_onnx(onnx_path, &meta, norm ? &*norm : nullptr);
    io::save_model(out, model, meta);
    std::ostringstream os;
    os << onnx_path << " -> " << out << ": " << meta.spec << " on " << meta.input.c << "x" << meta.input.h
       << "x" << meta.input.w << ", " << meta.num_classes << " outputs, " << model.num_params()
       << " parameters";
    if (norm)
        os << "; takes the rows of " << input.norm_from << " (its first bn maps them to (raw x "
           << norm->data.scale << " - " << input.mean << ") / " << input.std << ")";
    return os.str();
}

void run(const OnnxImportOptions& o, const par::Comm& comm) {
    const auto lock = io::claim_outputs({o.out}, {o.model}, comm.get());
    std::string line;
    par::agree(comm, [&] {
        if (comm.rank() != 0) return;
        if (io::file_exists(o.out) && !o.overwrite) fail(o.out, ": exists (use --overwrite to replace it)");
        line = import_onnx_file(o.model, o.out, o.input);
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
            const io::RawInput raw = read_raw_input(o.raw_input, &in);
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
