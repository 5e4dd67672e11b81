// ONNX import: parse, simplify, decompose into a chain of layers and blocks, then the model with its weights
// (the steps in the Importer's other files); import_onnx, the entry of include/mimic/io/onnx.hpp.
#include "mimic/io/impl/onnx_import.hpp"

#include "mimic/core/error.hpp"

namespace mimic::io {

namespace impl {

namespace {

void to_device(const Vector& dst, const std::vector<float>& src) {
    if (!src.empty())
        Kokkos::deep_copy(dst, Kokkos::View<const float*, Kokkos::LayoutRight, HostSpace,
                                            Kokkos::MemoryTraits<Kokkos::Unmanaged>>(src.data(), src.size()));
}

} // namespace

nn::Model Importer::run(ModelMeta* meta) {
    load();
    check_operators();
    read_input();
    read_output();
    collect_initializers();
    make_graph();
    fold_shapes();
    fuse_patterns();
    rewrite_splits();
    drop_output_softmax();
    rewrite_dense_concats();
    nest_concats();
    index_consumers();
    tensor_dims_[input_name_] = logical();
    chain(input_name_, -1, -1, top_);
    if (top_.empty()) fail(path_, ": the graph has no layers");
    if (input_norm_) top_.insert(top_.begin(), input_bn());
    return build(meta);
}

/// values into buf at tensor t (a parameter or state tensor of the model), checking the size.
void Importer::copy_into(const nn::ParamTensor& t, const std::vector<double>& values,
                         std::vector<float>& buf) const {
    MIMIC_REQUIRE(t.size == std::int64_t(values.size()), path_, ": internal: ", t.name, " has ", t.size,
                  " values, the import built ", values.size());
    for (size_t k = 0; k < values.size(); ++k)
        buf[size_t(t.offset) + k] = float(values[k]);
}

/// The weights and bn statistics of `chain` into the model's host buffers: layer k of it is named
/// prefix<k>.<kind>.<W|b|running_mean|running_var>, a block's branch j prefix<k>.<join>.b<j>.
/// (block.hpp).
void Importer::assign(const std::vector<Pending>& chain, const std::string& prefix, const nn::Model& model,
                      std::vector<float>& host, std::vector<float>& state) const {
    for (size_t i = 0; i < chain.size(); ++i) {
        const Pending& l = chain[i];
        const std::string base = prefix + std::to_string(i) + ".";
        if (l.kind == nn::LayerKind::Block) {
            for (size_t j = 0; j < l.branches.size(); ++j)
                assign(l.branches[j], base + nn::join_name(l.join) + ".b" + std::to_string(j) + ".", model,
                       host, state);
            continue;
        }
        if (l.W.empty()) continue;
        const std::string name = base + nn::kind_name(l.kind) + ".";
        copy_into(model.param_tensor(name + "W"), l.W, host);
        if (l.kind != nn::LayerKind::Bottleneck) copy_into(model.param_tensor(name + "b"), l.b, host);
        if (l.kind != nn::LayerKind::BatchNorm) continue;
        for (const auto& t : model.state_tensors())
            if (t.name == name + "running_mean" || t.name == name + "running_var")
                copy_into(t, t.name.back() == 'n' ? l.mean : l.var, state);
    }
}

nn::Model Importer::build(ModelMeta* meta) {
    std::string spec;
    for (const auto& l : top_)
        spec += (spec.empty() ? "" : ",") + l.token;
    nn::Model model(spec, input_);
    std::vector<float> host(size_t(model.num_params())), state(size_t(model.num_state()));
    assign(top_, "layer", model, host, state);
    to_device(model.params(), host);
    to_device(model.state(), state);
    if (meta) {
        *meta = ModelMeta{};
        meta->spec = spec;
        meta->input = input_;
        meta->num_classes = int(model.output_size());
        meta->loss = "onnx-import";
        const auto slash = path_.find_last_of('/');
        meta->data_fingerprint = "onnx:" + (slash == std::string::npos ? path_ : path_.substr(slash + 1)) +
                                 (model_.producer_name().empty()
                                      ? ""
                                      : " from " + model_.producer_name() + " " + model_.producer_version());
    }
    return model;
}

} // namespace impl

nn::Model import_onnx(const std::string& path, ModelMeta* meta, const InputNorm* input) {
    GOOGLE_PROTOBUF_VERIFY_VERSION;
    return impl::Importer(path, input).run(meta);
}

} // namespace mimic::io
