// The fuzz targets. File-based readers get the input through a private scratch file (under
// TMPDIR, /dev/shm when it exists), so they are fuzzed exactly as `mimic` calls them.
#include "targets.hpp"

#include "mimic/cli/app.hpp"
#include "mimic/core/error.hpp"
#include "mimic/io/idx.hpp"
#include "mimic/io/onnx.hpp"
#include "mimic/io/sources/npy_source.hpp"
#include "mimic/nn/spec.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <vector>

namespace mimic::fuzz {

namespace {

std::string scratch_path(const char* ext) {
    const char* dir = std::getenv("TMPDIR");
    std::string base = dir ? dir : (access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    return base + "/mimic-fuzz-" + std::to_string(getpid()) + ext;
}

std::string write_scratch(const std::uint8_t* data, std::size_t size, const char* ext) {
    const std::string path = scratch_path(ext);
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), std::streamsize(size));
    return path;
}

void idx(const std::uint8_t* data, std::size_t size) {
    const std::string path = write_scratch(data, size, ".idx");
    const io::IdxArray a = io::read_idx(path);
    std::int64_t total = 1;
    for (auto d : a.dims)
        total *= d;
    if (std::int64_t(a.data.size()) != total) std::abort(); // the reader's own promise
}

/// The NumPy sources: an .npz member `x` when the input is a zip, else an .npy; rows are read when small.
void npy(const std::uint8_t* data, std::size_t size) {
    const bool zip = size >= 2 && data[0] == 'P' && data[1] == 'K';
    const std::string path = write_scratch(data, size, zip ? ".npz" : ".npy");
    const auto src = zip ? io::open_npz_member(path, "x") : io::open_npy(path);
    const std::int64_t bytes = src->rows() * src->row_elements() * std::int64_t(io::elem_size(src->elem()));
    if (bytes < 0) std::abort(); // the reader refuses shapes that overflow
    if (bytes > (std::int64_t(1) << 20)) return;
    std::vector<unsigned char> buf(static_cast<size_t>(bytes));
    src->read(0, src->rows(), buf.data());
}

void spec(const std::uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    nn::Shape shape{3, 32, 32};
    for (const auto& layer : nn::parse_spec(text))
        shape = nn::infer_shape(layer, shape);
}

void ini(const std::uint8_t* data, std::size_t size) {
    namespace po = boost::program_options;
    const std::string path = write_scratch(data, size, ".ini");
    // The richest option set: distill's, plus the options every command has.
    for (const auto& c : cli::commands()) {
        if (c.name != "distill") continue;
        auto stage = c.make();
        po::options_description desc;
        std::string config;
        desc.add_options()("config", po::value(&config), "")("quiet", po::bool_switch(), "");
        stage->describe(desc);
        po::variables_map vm;
        cli::store_config_file(path, c.name, desc, vm);
    }
}

void onnx(const std::uint8_t* data, std::size_t size) {
    const std::string path = write_scratch(data, size, ".onnx");
    io::ModelMeta meta;
    io::import_onnx(path, &meta);
}

} // namespace

const char* target_names() {
    return "idx, npy, spec, ini, onnx";
}

bool run_one(const std::string& target, const std::uint8_t* data, std::size_t size) {
    void (*fn)(const std::uint8_t*, std::size_t) = target == "idx"    ? idx
                                                   : target == "npy"  ? npy
                                                   : target == "spec" ? spec
                                                   : target == "ini"  ? ini
                                                   : target == "onnx" ? onnx
                                                                      : nullptr;
    if (!fn) return false;
    try {
        fn(data, size);
    } catch (const Error&) {
        // A refused input: the expected outcome for most of them.
    }
    return true;
}

} // namespace mimic::fuzz
