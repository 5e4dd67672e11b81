// The fuzz targets. File-based readers get the input through a private scratch file (under
// TMPDIR, /dev/shm when it exists), so they are fuzzed exactly as `mimic` calls them; the model and
// checkpoint targets write a valid file and apply the input as a program of HDF5 edits (h5_mutate).
#include "targets.hpp"

#include "h5_mutate.hpp"

#include "mimic/cli/app.hpp"
#include "mimic/core/error.hpp"
#include "mimic/io/idx.hpp"
#include "mimic/io/model_file.hpp"
#include "mimic/io/onnx.hpp"
#include "mimic/io/sources/cifar_source.hpp"
#include "mimic/io/sources/hdf5_source.hpp"
#include "mimic/io/sources/npy_source.hpp"
#include "mimic/nn/optim/optimizer.hpp"
#include "mimic/nn/spec.hpp"
#include "mimic/parallel/sharded_model.hpp"
#include "mimic/train/checkpoint.hpp"

#include <hdf5.h>
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

/// Reads every row of an array source when they take under 1 MiB (its size promise checked first).
void read_small(const io::ArraySource& src) {
    const std::int64_t bytes = src.rows() * src.row_elements() * std::int64_t(io::elem_size(src.elem()));
    if (bytes < 0) std::abort(); // the reader refuses shapes that overflow
    if (bytes > (std::int64_t(1) << 20)) return;
    std::vector<unsigned char> buf(static_cast<size_t>(bytes));
    src.read(0, src.rows(), buf.data());
}

/// The NumPy sources: an .npz member `x` when the input is a zip, else an .npy; rows are read when small.
void npy(const std::uint8_t* data, std::size_t size) {
    const bool zip = size >= 2 && data[0] == 'P' && data[1] == 'K';
    const std::string path = write_scratch(data, size, zip ? ".npz" : ".npy");
    read_small(*(zip ? io::open_npz_member(path, "x") : io::open_npy(path)));
}

/// The CIFAR binary source: the first byte picks CIFAR-10 or CIFAR-100 records, the rest is the file.
void cifar(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return;
    const std::string path = write_scratch(data + 1, size - 1, ".bin");
    read_small(*io::open_cifar(path, data[0] % 2 == 1));
}

/// The HDF5 array source: a file as h5py writes one (/x uint8 [4, 2, 3, 1], /y int64 [4]), edited by the
/// input (h5_mutate), then /x opened and read.
void hdf5(const std::uint8_t* data, std::size_t size) {
    const std::string path = scratch_path(".h5");
    {
        const hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
        const hsize_t xd[4] = {4, 2, 3, 1}, yd[1] = {4};
        const unsigned char x[24] = {0, 1, 2, 3, 250, 251, 252, 253, 7, 8, 9, 10,
                                     0, 0, 0, 0, 255, 255, 1,   2,   3, 4, 5, 6};
        const long long y[4] = {0, 1, 2, 1};
        const hid_t xs = H5Screate_simple(4, xd, nullptr), ys = H5Screate_simple(1, yd, nullptr);
        const hid_t dx = H5Dcreate2(f, "x", H5T_STD_U8LE, xs, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        const hid_t dy = H5Dcreate2(f, "y", H5T_STD_I64LE, ys, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        H5Dwrite(dx, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, x);
        H5Dwrite(dy, H5T_NATIVE_LLONG, H5S_ALL, H5S_ALL, H5P_DEFAULT, y);
        H5Dclose(dx), H5Dclose(dy), H5Sclose(xs), H5Sclose(ys), H5Fclose(f);
    }
    mutate_h5(path, data, size);
    read_small(*io::open_hdf5_source(path, "x"));
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

/// The seeds the model and checkpoint targets edit: the first input byte picks one.
const char* seed_spec(std::uint8_t k) {
    static const char* specs[] = {"dense:4,relu,dense:3", "conv:2x3p1,bn,relu,pool:2,dense:3",
                                  "bottleneck:2,dense:4,relu,dense:3"};
    return specs[k % 3];
}

/// A valid model file (seed_spec(data[0]) on 1x4x4 inputs), edited by the rest of the input, then loaded.
void model(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return;
    const std::string path = scratch_path(".h5");
    nn::Model m(seed_spec(data[0]), nn::Shape{1, 4, 4});
    m.init(7);
    io::ModelMeta meta;
    meta.loss = "ce";
    io::save_model(path, m, meta);
    mutate_h5(path, data + 1, size - 1);
    io::ModelMeta got;
    const nn::Model loaded = io::load_model(path, &got);
    if (loaded.output_size() != got.num_classes) std::abort(); // the loader's own promise
}

/// A valid checkpoint (seed_spec(data[0]), Adam or Nesterov by data[1]), edited by the rest of the input,
/// then resumed as the engine resumes it.
void checkpoint(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return;
    const std::string path = scratch_path(".ckpt");
    const par::Comm self = par::Comm::self();
    par::ShardedModel net(seed_spec(data[0]), nn::Shape{1, 4, 4}, self);
    net.local().init(7);
    nn::optim::OptimizerConfig cfg;
    cfg.kind = data[1] % 2 ? "adam" : "nesterov";
    auto opt = nn::optim::make_optimizer(cfg, net.local().num_params());
    io::ResumeIdentity identity;
    identity.add("--arch", seed_spec(data[0])).add("--lr", 0.1);
    train::CheckpointState st;
    st.epoch = 1, st.step_in_epoch = 2, st.global_step = 7;
    st.sums = {1.5, 3, 8, 0.25};
    st.schedule = {0.1};
    st.history_width = 2;
    st.history = {1, 0.5};
    io::ModelMeta meta;
    meta.loss = "ce";
    train::write_checkpoint(path, net, meta, opt->state(), st, identity, true, self);
    mutate_h5(path, data + 2, size - 2);
    par::ShardedModel into(seed_spec(data[0]), nn::Shape{1, 4, 4}, self);
    nn::optim::OptimizerState os = opt->state();
    const auto got = train::read_checkpoint(path, into, os, identity, 2, {3, 4}, true, self);
    if (got.epoch < 0 || got.epoch >= 3 || got.step_in_epoch < 0 || got.step_in_epoch > 4) std::abort();
}

} // namespace

const char* target_names() {
    return "idx, npy, cifar, hdf5, spec, ini, onnx, model, checkpoint";
}

bool run_one(const std::string& target, const std::uint8_t* data, std::size_t size) {
    void (*fn)(const std::uint8_t*, std::size_t) = target == "idx"          ? idx
                                                   : target == "npy"        ? npy
                                                   : target == "cifar"      ? cifar
                                                   : target == "hdf5"       ? hdf5
                                                   : target == "spec"       ? spec
                                                   : target == "ini"        ? ini
                                                   : target == "onnx"       ? onnx
                                                   : target == "model"      ? model
                                                   : target == "checkpoint" ? checkpoint
                                                                            : nullptr;
    if (!fn) return false;
    try {
        fn(data, size);
    } catch (const Error& e) {
        // A refused input: the expected outcome for most of them (MIMIC_FUZZ_VERBOSE=1 prints why).
        if (std::getenv("MIMIC_FUZZ_VERBOSE")) std::fprintf(stderr, "refused: %s\n", e.what());
    }
    return true;
}

} // namespace mimic::fuzz
