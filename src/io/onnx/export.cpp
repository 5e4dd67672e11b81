// ONNX export: a Mimic model (spec and weights) as a standard ONNX graph at opset 13 (Gemm, MatMul, Conv,
// pools, activations, Add/Sum, Concat, Mul), checked by onnx::checker and written atomically.
#include "mimic/io/onnx.hpp"

#include "mimic/core/error.hpp"
#include "mimic/core/version_info.hpp"
#include "mimic/io/impl/onnx_proto.hpp"
#include "mimic/nn/layers/batchnorm.hpp"
#include "mimic/nn/spec.hpp"

#include <onnx/checker.h>

namespace mimic::io {

namespace impl {

namespace {

/// The values of view src into dst (resized to match).
void to_host(const Vector& src, std::vector<float>& dst) {
    dst.resize(src.extent(0));
    if (!dst.empty())
        Kokkos::deep_copy(
            Kokkos::View<float*, Kokkos::LayoutRight, HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>(
                dst.data(), dst.size()),
            src);
}

class Exporter {
public:
    Exporter(const nn::Model& model, const std::string& name) : model_(model) {
        proto_.set_ir_version(7); // the IR of opset 13
        proto_.set_producer_name("mimic");
        proto_.set_producer_version(MIMIC_VERSION_STRING);
        auto* op = proto_.add_opset_import();
        op->set_domain("");
        op->set_version(kOnnxExportOpset);
        g_ = proto_.mutable_graph();
        g_->set_name(name);
        to_host(model.params(), host_);
        to_host(model.state(), state_);
    }

    onnx::ModelProto build(const RawInput* raw) {
        const nn::Shape in = model_.input_shape();
        image_ = !(in.c == 1 && in.h == 1);
        if (image_ && !raw)
            value_info(g_->add_input(), "input", {in.c, in.h, in.w});
        else
            value_info(g_->add_input(), "input", {std::int64_t(in.size())});
        cur_ = "input";
        if (raw) normalise(*raw, in);
        const auto layers = nn::parse_spec(model_.spec());
        shape_ = in;
        for (size_t i = 0; i < layers.size(); ++i)
            layer("layer", int(i), layers[i]);
        if (image_) flatten("output"); // logits are [N, C*H*W] in Mimic
        if (g_->node_size() == 0) node("Identity", "output", {cur_});
        g_->mutable_node(g_->node_size() - 1)->set_output(0, "logits");
        value_info(g_->add_output(), "logits", {model_.output_size()});
        return proto_;
    }

private:
    const nn::Model& model_;
    onnx::ModelProto proto_;
    onnx::GraphProto* g_ = nullptr;
    std::vector<float> host_, state_;
    std::string cur_;
    bool image_ = false;
    nn::Shape shape_; ///< Mimic's shape of cur_ (per sample)

    static void value_info(onnx::ValueInfoProto* v, const std::string& name,
                           const std::vector<std::int64_t>& dims) {
        v->set_name(name);
        auto* t = v->mutable_type()->mutable_tensor_type();
        t->set_elem_type(onnx::TensorProto::FLOAT);
        auto* s = t->mutable_shape();
        s->add_dim()->set_dim_param("N");
        for (auto d : dims)
            s->add_dim()->set_dim_value(d);
    }

    onnx::NodeProto* node(const std::string& op, const std::string& name,
                          const std::vector<std::string>& inputs) {
        auto* n = g_->add_node();
        n->set_op_type(op);
        n->set_name(name);
        for (const auto& s : inputs)
            n->add_input(s);
        n->add_output(name);
        cur_ = name;
        return n;
    }
    const float* param(const std::string& name) const {
        return host_.data() + model_.param_tensor(name).offset;
    }
    /// Raw rows [N, D] -> (x · scale − mean) / std in float, as `mimic data import` computed the stored
    /// rows, then [N, C, H, W] for an image model.
    void normalise(const RawInput& raw, const nn::Shape& in) {
        const std::int64_t D = in.size();
        MIMIC_REQUIRE(std::int64_t(raw.mean.size()) == D && std::int64_t(raw.std.size()) == D, raw.source,
                      ": normalisation statistics for ", raw.mean.size(), " features but the model takes ",
                      D);
        g_->set_doc_string("input: raw feature rows; normalisation from " + raw.source);
        add_initializer(*g_, "raw.scale", {}, &raw.scale);
        add_initializer(*g_, "raw.mean", {D}, raw.mean.data());
        add_initializer(*g_, "raw.std", {D}, raw.std.data());
        node("Mul", "raw.scaled", {cur_, "raw.scale"});
        node("Sub", "raw.centred", {cur_, "raw.mean"});
        node("Div", "raw.normalised", {cur_, "raw.std"});
        if (!image_) return;
        add_int64_initializer(*g_, "raw.shape", {-1, in.c, in.h, in.w});
        node("Reshape", "raw.image", {cur_, "raw.shape"});
    }

    void flatten(const std::string& name) {
        set_attr_int(node("Flatten", name, {cur_}), "axis", 1);
        image_ = false;
    }

    /// Pooling at opset 13 (MaxPool, AveragePool with count_include_pad, GlobalAveragePool) and the
    /// activations: Clip(0, 6); SiLU as x * Sigmoid(x); HardSwish as x * HardSigmoid(x) (HardSwish is
    /// opset 14); HardSigmoid(alpha 1/6, beta 1/2).
    void pool_or_activation(const std::string& base, const nn::LayerSpec& l) {
        const std::string x = cur_;
        switch (l.kind) {
        case nn::LayerKind::Pool:
        case nn::LayerKind::AvgPool: {
            const bool avg = l.kind == nn::LayerKind::AvgPool;
            // Ceil mode: a window reaching past the padding divides by its cells up to the padding's edge
            // (PyTorch's rule), as an AveragePool reads the zeros of a Pad before it; count_include_pad 1
            // would count the cells past the edge too. Without padding, the real cells alone.
            const bool pad_node = avg && l.ceil && l.count_pad && l.pad > 0;
            if (pad_node) {
                const std::int64_t P = l.pad;
                add_int64_initializer(*g_, base + ".pads", {0, 0, P, P, 0, 0, P, P});
                node("Pad", base + ".padded", {x, base + ".pads"});
            }
            auto* n = node(avg ? "AveragePool" : "MaxPool", base, {cur_});
            set_attr_ints(n, "kernel_shape", {l.kernel, l.kernel});
            set_attr_ints(n, "strides", {l.stride, l.stride});
            if (l.pad > 0 && !pad_node) set_attr_ints(n, "pads", {l.pad, l.pad, l.pad, l.pad});
            if (avg) set_attr_int(n, "count_include_pad", l.count_pad && !l.ceil ? 1 : 0);
            if (l.ceil) set_attr_int(n, "ceil_mode", 1);
            break;
        }
        case nn::LayerKind::GlobalAvgPool:
            node("GlobalAveragePool", base, {x});
            break;
        case nn::LayerKind::ReLU6: {
            const float lo = 0.0f, hi = 6.0f;
            add_initializer(*g_, base + ".min", {}, &lo);
            add_initializer(*g_, base + ".max", {}, &hi);
            node("Clip", base, {x, base + ".min", base + ".max"});
            break;
        }
        case nn::LayerKind::SiLU:
            node("Sigmoid", base + ".sigmoid", {x});
            node("Mul", base, {x, cur_});
            break;
        default: { // HardSigmoid, and HardSwish = x * HardSigmoid(x)
            const bool swish = l.kind == nn::LayerKind::HardSwish;
            auto* n = node("HardSigmoid", swish ? base + ".hardsigmoid" : base, {x});
            set_attr_float(n, "alpha", 1.0f / 6.0f);
            set_attr_float(n, "beta", 0.5f);
            if (swish) node("Mul", base, {x, cur_});
        }
        }
    }

    /// LeakyRelu and Elu with their alpha; exact GELU as PyTorch writes it at opset 13:
    /// Mul(Mul(x, Add(Erf(Div(x, √2)), 1)), 0.5) (Gelu is opset 20).
    void alpha_activation(const std::string& base, const nn::LayerSpec& l) {
        const std::string x = cur_;
        if (l.kind != nn::LayerKind::GELU) {
            auto* n = node(l.kind == nn::LayerKind::LeakyReLU ? "LeakyRelu" : "Elu", base, {x});
            set_attr_float(n, "alpha", l.alpha);
            return;
        }
        const float sqrt2 = 1.41421356237309505f, one = 1.0f, half = 0.5f;
        add_initializer(*g_, base + ".sqrt2", {}, &sqrt2);
        add_initializer(*g_, base + ".one", {}, &one);
        add_initializer(*g_, base + ".half", {}, &half);
        node("Div", base + ".div", {x, base + ".sqrt2"});
        node("Erf", base + ".erf", {cur_});
        node("Add", base + ".add", {cur_, base + ".one"});
        node("Mul", base + ".mul", {x, cur_});
        node("Mul", base, {cur_, base + ".half"});
    }

    /// bn as BatchNormalization (epsilon 1e-5) with its running statistics.
    void batchnorm(const std::string& base) {
        std::vector<std::string> inputs{cur_, base + ".W", base + ".b"};
        for (const char* s : {".W", ".b"}) {
            const auto& t = model_.param_tensor(base + s);
            add_initializer(*g_, t.name, t.shape, param(t.name));
        }
        for (const auto& t : model_.state_tensors())
            if (t.name.rfind(base + ".", 0) == 0) {
                add_initializer(*g_, t.name, t.shape, state_.data() + t.offset);
                inputs.push_back(t.name);
            }
        auto* n = node("BatchNormalization", base, inputs);
        set_attr_float(n, "epsilon", float(nn::BatchNorm::kEps));
    }

    /// ln as PyTorch writes LayerNorm at opset 13, over axis 1 (the channels of [N, C, H, W], the features
    /// of [N, D]): ReduceMean, Sub, Mul (the square), ReduceMean, Add epsilon, Sqrt, Div, then the scale and
    /// shift per channel ([C, 1, 1] on an image).
    void layernorm(const std::string& base, const nn::LayerSpec& l) {
        const std::string x = cur_;
        const float eps = l.alpha;
        add_initializer(*g_, base + ".eps", {}, &eps);
        const std::int64_t C = image_ ? shape_.c : shape_.size();
        const std::vector<std::int64_t> dims = image_ ? std::vector<std::int64_t>{C, 1, 1} : std::vector{C};
        for (const char* s : {".W", ".b"}) {
            const auto& t = model_.param_tensor(base + s);
            add_initializer(*g_, t.name, dims, param(t.name));
        }
        set_attr_ints(node("ReduceMean", base + ".mean", {x}), "axes", {1});
        const std::string d = node("Sub", base + ".centred", {x, cur_})->output(0);
        node("Mul", base + ".square", {d, d});
        set_attr_ints(node("ReduceMean", base + ".var", {cur_}), "axes", {1});
        node("Add", base + ".var_eps", {cur_, base + ".eps"});
        node("Sqrt", base + ".std", {cur_});
        node("Div", base + ".normalised", {d, cur_});
        node("Mul", base + ".scaled", {cur_, base + ".W"});
        node("Add", base, {cur_, base + ".b"});
    }

    /// Layer i of a chain whose parameter names start with prefix ("layer", or "layer3.res.b0." in a block).
    void layer(const std::string& prefix, int i, const nn::LayerSpec& l) {
        const nn::Shape in = shape_;
        const bool is_block = l.kind == nn::LayerKind::Block;
        const std::string base =
            prefix + std::to_string(i) + "." + (is_block ? nn::join_name(l.join) : nn::kind_name(l.kind));
        if (is_block)
            block(base, l);
        else
            op(base, l);
        shape_ = nn::infer_shape(l, in);
    }

    /// A block: each branch from the block's input, then Add (Sum for more than two), Concat over channels,
    /// or Mul of the input by the gate (a [N, C] gate reshaped to [N, C, 1, 1] on an image).
    void block(const std::string& base, const nn::LayerSpec& l) {
        const std::string in = cur_;
        const bool in_image = image_;
        const nn::Shape in_shape = shape_;
        std::vector<std::string> outs;
        std::vector<bool> images;
        bool flat = false;
        for (std::size_t j = 0; j < l.branches.size(); ++j) {
            cur_ = in, image_ = in_image, shape_ = in_shape;
            for (std::size_t k = 0; k < l.branches[j].size(); ++k)
                layer(base + ".b" + std::to_string(j) + ".", int(k), l.branches[j][k]);
            outs.push_back(cur_);
            images.push_back(image_);
            flat = flat || !image_;
            if (l.join == nn::Join::Mul && in_image && !image_) { // [N, C] -> [N, C, 1, 1]
                const std::string& shape =
                    add_int64_initializer(*g_, base + ".gate_shape", {-1, in_shape.c, 1, 1});
                outs.back() = node("Reshape", base + ".gate_image", {cur_, shape})->output(0);
            } else if (l.join == nn::Join::Mul && !in_image && image_) {
                flatten(base + ".gate_flat");
                outs.back() = cur_;
            }
        }
        if (l.join == nn::Join::Mul) {
            image_ = in_image;
            node("Mul", base, {in, outs[0]});
            return;
        }
        for (std::size_t j = 0; j < outs.size(); ++j) { // a flat branch makes the join flat
            if (!flat || !images[j]) continue;
            cur_ = outs[j];
            flatten(base + ".b" + std::to_string(j) + ".flat");
            outs[j] = cur_;
        }
        image_ = !flat;
        if (l.join == nn::Join::Concat)
            set_attr_int(node("Concat", base, outs), "axis", 1);
        else
            node(outs.size() == 2 ? "Add" : "Sum", base, outs);
    }

    void op(const std::string& base, const nn::LayerSpec& l) {
        switch (l.kind) {
        case nn::LayerKind::Dense:
        case nn::LayerKind::Bottleneck: {
            if (image_) flatten(base + ".flatten");
            const auto& W = model_.param_tensor(base + ".W");
            add_initializer(*g_, W.name, W.shape, param(W.name));
            if (l.kind == nn::LayerKind::Dense) {
                const auto& b = model_.param_tensor(base + ".b");
                add_initializer(*g_, b.name, b.shape, param(b.name));
                node("Gemm", base, {cur_, W.name, b.name});
            } else {
                node("MatMul", base, {cur_, W.name});
            }
            break;
        }
        case nn::LayerKind::Conv: {
            const auto& W = model_.param_tensor(base + ".W"); // {C/G, K, K, F}
            const std::int64_t C = W.shape[0], K = W.shape[1], F = W.shape[3];
            const std::int64_t G = shape_.c / C; // shape_: this layer's input
            std::vector<float> w(size_t(F * C * K * K));
            const float* src = param(W.name);
            for (std::int64_t f = 0; f < F; ++f)
                for (std::int64_t c = 0; c < C; ++c)
                    for (std::int64_t kh = 0; kh < K; ++kh)
                        for (std::int64_t kw = 0; kw < K; ++kw)
                            w[size_t(((f * C + c) * K + kh) * K + kw)] = src[((c * K + kh) * K + kw) * F + f];
            add_initializer(*g_, W.name, {F, C, K, K}, w.data());
            const auto& b = model_.param_tensor(base + ".b");
            add_initializer(*g_, b.name, b.shape, param(b.name));
            auto* n = node("Conv", base, {cur_, W.name, b.name});
            set_attr_ints(n, "kernel_shape", {K, K});
            set_attr_ints(n, "strides", {l.stride, l.stride});
            set_attr_ints(n, "pads", {l.pad, l.pad, l.pad, l.pad});
            if (G != 1) set_attr_int(n, "group", G);
            break;
        }
        case nn::LayerKind::Pool:
        case nn::LayerKind::AvgPool:
        case nn::LayerKind::GlobalAvgPool:
        case nn::LayerKind::ReLU6:
        case nn::LayerKind::SiLU:
        case nn::LayerKind::HardSwish:
        case nn::LayerKind::HardSigmoid:
            pool_or_activation(base, l);
            break;
        case nn::LayerKind::LeakyReLU:
        case nn::LayerKind::ELU:
        case nn::LayerKind::GELU:
            alpha_activation(base, l);
            break;
        case nn::LayerKind::BatchNorm:
            batchnorm(base);
            break;
        case nn::LayerKind::LayerNorm:
            layernorm(base, l);
            break;
        case nn::LayerKind::ReLU:
            node("Relu", base, {cur_});
            break;
        case nn::LayerKind::Sigmoid:
            node("Sigmoid", base, {cur_});
            break;
        case nn::LayerKind::Tanh:
            node("Tanh", base, {cur_});
            break;
        case nn::LayerKind::Softplus:
            node("Softplus", base, {cur_});
            break;
        case nn::LayerKind::Dropout:
            break; // inference graph
        case nn::LayerKind::Flatten:
            if (image_) flatten(base);
            break;
        case nn::LayerKind::Block:
            fail("internal: a block reached Exporter::op");
        }
    }
};

} // namespace

} // namespace impl

void export_onnx(const nn::Model& model, const std::string& path, const RawInput* raw,
                 const std::string& graph_name) {
    GOOGLE_PROTOBUF_VERIFY_VERSION;
    const onnx::ModelProto proto = impl::Exporter(model, graph_name).build(raw);
    try {
        onnx::checker::check_model(proto);
    } catch (const std::exception& e) {
        fail(path, ": internal: the exported graph fails the ONNX checker: ", e.what());
    }
    impl::write_model_file(proto, path);
}

} // namespace mimic::io
