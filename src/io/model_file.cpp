// Model files: root attributes (format, spec, input shape, classes, training metadata, checksum) and
// one float32 dataset per parameter tensor under /weights, validated tensor by tensor on load.
#include "mimic/io/model_file.hpp"

#include "mimic/core/error.hpp"
#include "mimic/core/rng.hpp"
#include "mimic/core/runtime.hpp"
#include "mimic/io/dataset.hpp"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <set>
#include <sstream>

namespace mimic::io {

namespace {

std::string shape_text(const std::vector<std::int64_t>& s) {
    std::ostringstream os;
    os << "[";
    for (size_t i = 0; i < s.size(); ++i)
        os << (i ? ", " : "") << s[i];
    os << "]";
    return os.str();
}

std::vector<float> host_params(const nn::Model& model) {
    std::vector<float> h(static_cast<size_t>(model.num_params()));
    if (!h.empty())
        Kokkos::deep_copy(
            Kokkos::View<float*, Kokkos::LayoutRight, HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>(
                h.data(), h.size()),
            model.params());
    return h;
}

std::uint64_t checksum_of(const std::vector<float>& p) {
    std::uint64_t sum = 0;
    for (size_t i = 0; i < p.size(); ++i)
        sum += param_hash(std::int64_t(i), p[i]);
    return sum;
}

herr_t collect_names(hid_t, const char* name, const H5L_info_t*, void* data) {
    static_cast<std::vector<std::string>*>(data)->push_back(name);
    return 0;
}

std::vector<std::string> weight_names(const h5::File& f) {
    std::vector<std::string> names;
    h5::Handle g(MIMIC_H5_CHECK(H5Gopen2(f.id(), "/weights", H5P_DEFAULT)), H5Gclose);
    hsize_t idx = 0;
    MIMIC_H5_CHECK(H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx, collect_names, &names));
    return names;
}

/// Elements of every dataset under /weights (read from their shapes only).
std::int64_t stored_weights(const h5::File& f) {
    constexpr std::int64_t kMax = std::int64_t(1) << 62; // saturated: only a bound
    std::int64_t total = 0;
    for (const auto& name : weight_names(f)) {
        std::int64_t n = 1;
        for (auto e : h5::dataset_dims(h5::open_dataset(f, "/weights/" + name)))
            n = e == 0 ? 0 : n > kMax / std::int64_t(e) ? kMax : n * std::int64_t(e);
        total = std::min(kMax, total + n);
    }
    return total;
}

} // namespace

std::uint64_t param_hash(std::int64_t index, float value) {
    std::uint32_t bits;
    std::memcpy(&bits, &value, 4);
    return mix64((std::uint64_t(index) << 32 | bits) ^ mix64(std::uint64_t(index) + 0x6d696d69632d6d31ULL));
}

std::string finish_checksum(std::uint64_t sum, std::int64_t num_params) {
    return hex64(mix64(sum ^ mix64(std::uint64_t(num_params))));
}

std::string weights_checksum(const nn::Model& model) {
    return finish_checksum(checksum_of(host_params(model)), model.num_params());
}

void write_model_attributes(const h5::File& f, const ModelMeta& meta, std::int64_t num_params) {
    const hid_t root = f.id();
    h5::write_attr(root, "mimic_format", kModelFormat);
    h5::write_attr(root, "spec", meta.spec);
    h5::write_attr(root, "input_shape", std::vector<long long>{meta.input.c, meta.input.h, meta.input.w});
    h5::write_attr(root, "num_classes", (long long)meta.num_classes);
    h5::write_attr(root, "num_params", (long long)num_params);
    h5::write_attr(root, "loss", meta.loss);
    h5::write_attr(root, "epochs", (long long)meta.epochs);
    h5::write_attr(root, "seed", (long long)meta.seed); // the unsigned seed's bit pattern
    h5::write_attr(root, "data_fingerprint", meta.data_fingerprint);
    h5::write_attr(root, "mimic_version", meta.mimic_version);
    h5::write_attr(root, "val_accuracy", meta.val_accuracy);
    h5::write_attr(root, "weights_checksum", meta.weights_checksum);
}

void write_model(const h5::File& f, const nn::Model& model, ModelMeta& meta) {
    const auto params = host_params(model);
    meta.spec = model.spec();
    meta.input = model.input_shape();
    meta.num_classes = int(model.output_size());
    meta.mimic_version = mimic_version_string();
    meta.weights_checksum = finish_checksum(checksum_of(params), model.num_params());
    write_model_attributes(f, meta, model.num_params());
    h5::ensure_groups(f, "/weights/x");
    for (const auto& t : model.param_tensors()) {
        std::vector<hsize_t> dims(t.shape.begin(), t.shape.end());
        auto d = h5::create_dataset(f, "/weights/" + t.name, H5T_NATIVE_FLOAT, dims);
        h5::write_rows(d, H5T_NATIVE_FLOAT, 0, std::int64_t(dims.empty() ? 1 : dims[0]),
                       params.data() + t.offset, false);
    }
    write_model_state(f, model, true);
}

void write_model_state(const h5::File& f, const nn::Model& model, bool supply) {
    if (model.num_state() == 0) return;
    std::vector<float> state(static_cast<size_t>(model.num_state()));
    Kokkos::deep_copy(
        Kokkos::View<float*, Kokkos::LayoutRight, HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>(
            state.data(), state.size()),
        model.state());
    h5::ensure_groups(f, "/state/x");
    for (const auto& t : model.state_tensors()) {
        auto d = h5::create_dataset(f, "/state/" + t.name, H5T_NATIVE_FLOAT, {hsize_t(t.size)});
        h5::write_rows(d, H5T_NATIVE_FLOAT, 0, supply ? t.size : 0, state.data() + t.offset, f.parallel());
    }
}

void read_model_state(const h5::File& f, nn::Model& model) {
    if (model.num_state() == 0 || !f.has("/state")) return;
    std::vector<float> state(static_cast<size_t>(model.num_state()));
    for (const auto& t : model.state_tensors()) {
        const std::string name = "/state/" + t.name;
        if (!f.has(name)) fail(f.path(), ": state tensor '", t.name, "' is missing");
        auto d = h5::open_dataset(f, name);
        const auto dims = h5::dataset_dims(d);
        if (dims.size() != 1 || std::int64_t(dims[0]) != t.size)
            fail(f.path(), ": state tensor '", t.name, "' does not hold ", t.size, " values");
        h5::read_rows(d, H5T_NATIVE_FLOAT, 0, t.size, state.data() + t.offset, f.parallel());
        for (std::int64_t k = 0; k < t.size; ++k)
            if (!std::isfinite(state[size_t(t.offset + k)]))
                fail(f.path(), ": state tensor '", t.name, "' element ", k, " is not finite");
    }
    Kokkos::deep_copy(
        model.state(),
        Kokkos::View<const float*, Kokkos::LayoutRight, HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>(
            state.data(), state.size()));
}

void save_model(const std::string& path, const nn::Model& model, const ModelMeta& meta_in) {
    const std::string partial = path + ".partial";
    ModelMeta meta = meta_in;
    try {
        auto f = h5::File::create(partial);
        write_model(f, model, meta);
        f.close();
    } catch (...) {
        remove_file(partial);
        throw;
    }
    rename_file(partial, path);
}

static ModelMeta read_model_meta_from(const h5::File& f) {
    const hid_t root = f.id();
    const std::string& path = f.path();
    if (!h5::has_attr(root, "mimic_format"))
        fail(path, ": not a Mimic model file (attribute 'mimic_format' is missing)");
    const std::string format = h5::read_attr_string(root, "mimic_format");
    if (format != kModelFormat)
        fail(path, ": not a Mimic model file (mimic_format is '", format, "', expected '", kModelFormat,
             "')");
    ModelMeta m;
    m.spec = h5::read_attr_string(root, "spec");
    const auto s = h5::read_attr_ints(root, "input_shape");
    if (s.size() != 3 || s[0] < 1 || s[1] < 1 || s[2] < 1 || s[0] > INT_MAX || s[1] > INT_MAX ||
        s[2] > INT_MAX)
        fail(path, ": attribute 'input_shape' must hold three positive values (C, H, W) below 2^31");
    m.input = nn::Shape{int(s[0]), int(s[1]), int(s[2])};
    m.num_classes = int(h5::read_attr_int(root, "num_classes"));
    m.loss = h5::read_attr_string(root, "loss");
    m.epochs = int(h5::read_attr_int(root, "epochs"));
    m.seed = std::uint64_t(h5::read_attr_int(root, "seed"));
    m.data_fingerprint = h5::read_attr_string(root, "data_fingerprint");
    m.mimic_version = h5::read_attr_string(root, "mimic_version");
    m.val_accuracy = h5::read_attr_double(root, "val_accuracy");
    m.weights_checksum = h5::read_attr_string(root, "weights_checksum");
    return m;
}

nn::Model read_model(const h5::File& f, ModelMeta* meta_out) {
    const std::string& path = f.path();
    const ModelMeta meta = read_model_meta_from(f);
    if (!f.has("/weights")) fail(path, ": group /weights is missing (no weights stored)");
    std::unique_ptr<nn::Model> model;
    try {
        // Bounded by the weights the file stores (plus 64 Mi, so that a missing or misshapen weight is
        // still named below), so that an edited spec or input shape cannot make the loader allocate far
        // more than the file could fill.
        model =
            std::make_unique<nn::Model>(meta.spec, meta.input, stored_weights(f) + (std::int64_t(1) << 26));
    } catch (const Error& e) {
        fail(path, ": the stored spec '", meta.spec, "' does not build: ", e.what());
    }
    if (model->output_size() != meta.num_classes)
        fail(path, ": the spec gives ", model->output_size(), " outputs but num_classes is ",
             meta.num_classes);

    std::vector<float> params(static_cast<size_t>(model->num_params()));
    std::set<std::string> expected;
    for (const auto& t : model->param_tensors()) {
        expected.insert(t.name);
        const std::string name = "/weights/" + t.name;
        if (!f.has(name)) fail(path, ": weight '", t.name, "' is missing");
        auto d = h5::open_dataset(f, name);
        const auto dims = h5::dataset_dims(d);
        const std::vector<std::int64_t> got(dims.begin(), dims.end());
        if (got != t.shape)
            fail(path, ": weight '", t.name, "' has shape ", shape_text(got), " but the spec '", meta.spec,
                 "' needs ", shape_text(t.shape));
        {
            h5::Handle type(MIMIC_H5_CHECK(H5Dget_type(d)), H5Tclose);
            if (H5Tget_class(type) != H5T_FLOAT) fail(path, ": weight '", t.name, "' is not floating-point");
        }
        h5::read_rows(d, H5T_NATIVE_FLOAT, 0, std::int64_t(dims.empty() ? 1 : dims[0]),
                      params.data() + t.offset, false);
        std::int64_t count = 1;
        for (auto e : t.shape)
            count *= e;
        for (std::int64_t k = 0; k < count; ++k)
            if (!std::isfinite(params[size_t(t.offset + k)]))
                fail(path, ": weight '", t.name, "' element ", k, " is ", params[size_t(t.offset + k)],
                     "; a model with non-finite weights is refused (its training diverged: retrain it)");
    }
    for (const auto& name : weight_names(f))
        if (!expected.count(name))
            fail(path, ": weight '", name, "' is not a parameter of the spec '", meta.spec, "'");
    const std::string sum = finish_checksum(checksum_of(params), model->num_params());
    if (sum != meta.weights_checksum)
        fail(path, ": weights checksum mismatch (stored ", meta.weights_checksum, ", computed ", sum,
             "): the weights were modified or the file is corrupt");
    if (!params.empty())
        Kokkos::deep_copy(model->params(), Kokkos::View<const float*, Kokkos::LayoutRight, HostSpace,
                                                        Kokkos::MemoryTraits<Kokkos::Unmanaged>>(
                                               params.data(), params.size()));
    read_model_state(f, *model);
    if (meta_out) *meta_out = meta;
    return std::move(*model);
}

nn::Model load_model(const std::string& path, ModelMeta* meta) {
    auto f = h5::File::open(path);
    return read_model(f, meta);
}

ModelMeta read_model_meta(const std::string& path) {
    auto f = h5::File::open(path);
    return read_model_meta_from(f);
}

} // namespace mimic::io
