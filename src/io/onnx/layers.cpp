// ONNX nodes as Mimic layers: Gemm, MatMul, Conv, pools, activations, the fused GELU and shortcut, with a
// bias Add, BatchNormalization and Pad folded into the layer they meet (layer norms: channels_last.cpp).
#include "mimic/io/impl/onnx_import.hpp"

#include "mimic/core/error.hpp"
#include "mimic/nn/layers/batchnorm.hpp"
#include "mimic/nn/layers/maxpool2d.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace mimic::io::impl {

namespace {

bool all_equal(const std::vector<std::int64_t>& v, std::int64_t x) {
    for (auto e : v)
        if (e != x) return false;
    return true;
}

/// A bottleneck that a bias (Add or BatchNormalization) turns into a dense layer.
void to_dense(Pending& p) {
    p.kind = nn::LayerKind::Dense;
    p.token = "dense:" + std::to_string(p.out);
}

} // namespace

std::string float_text(double v) {
    char buf[32];
    for (int digits = 1; digits <= 9; ++digits) {
        std::snprintf(buf, sizeof buf, "%.*g", digits, v);
        if (float(std::strtod(buf, nullptr)) == float(v)) break;
    }
    return buf;
}

bool elementwise_op(const std::string& op) {
    static const std::set<std::string> ops = {"Relu",        "Sigmoid",   "Tanh",      "Softplus", "Clip",
                                              "HardSigmoid", "HardSwish", "LeakyRelu", "Elu",      kGeluOp};
    return ops.count(op) > 0;
}

/// A Pad is waiting for its Conv or AveragePool but the tensor goes elsewhere.
void Importer::pad_not_folded() const {
    fail(pad_where_, ": Pad is supported only right before a Conv or AveragePool (folded into its padding)");
}

void Importer::need_cur(const GraphNode& n, const std::string& where) const {
    if (n.input_size() < 1 || n.input(0) != cur_)
        fail(where, ": takes '", n.input_size() ? n.input(0) : std::string(),
             "' instead of the previous layer's output '", cur_, "'; Mimic imports a single chain of layers");
}

void Importer::push(Pending p, const std::string& where) {
    try {
        shape_ = nn::infer_shape(nn::parse_spec(p.token).at(0), shape_);
    } catch (const Error& e) {
        fail(where, ": ", e.what());
    }
    fresh_affine_ = false;
    fresh_param_ = p.kind == nn::LayerKind::Dense || p.kind == nn::LayerKind::Bottleneck ||
                   p.kind == nn::LayerKind::Conv;
    layers_->push_back(std::move(p));
}

/// cur_ becomes t, whose shape a Shape node may read.
void Importer::reach(const std::string& t) {
    cur_ = t;
    tensor_dims_[t] = logical();
}

/// A flatten layer: cur_ is flat from here on.
void Importer::push_flatten(const std::string& where) {
    Pending p;
    p.kind = nn::LayerKind::Flatten;
    p.token = "flatten";
    push(std::move(p), where);
    image_ = false;
}

void Importer::visit(const GraphNode& n) {
    const std::string& where = n.where;
    const std::string& op = n.op_type();
    if (pad_ >= 0 && op != "AveragePool" && op != "Conv") pad_not_folded();
    const bool view_op = op == "Flatten" || op == "Reshape" || op == "Squeeze" || op == "Unsqueeze" ||
                         op == "Expand" || op == "Transpose";
    if (channels_last_ && !channels_last_op(op))
        fail(where, ": reads '", cur_, "' in channels-last order [N, ", dims_text(dims_).substr(1),
             " (after a Transpose with perm [0, 2, 3, 1]); supported there are layer norms, MatMul by a ",
             "constant, Mul and Add of one value per channel, activations, a flatten and the Transpose ",
             "back (perm [0, 3, 1, 2])");
    if (!view_op && !channels_last_) need_layer_shape(where);
    if (op != "Gemm" && op != "MatMul" && !elementwise_op(op)) need_no_row_order(where);
    if (op == kLayerNormOp || op == "LayerNormalization") return layer_norm(n, where);
    if (op == "MatMul" && channels_last_) return channels_last_matmul(n, where);
    if (op == "Relu" || op == "Sigmoid" || op == "Tanh" || op == "Softplus") {
        need_cur(n, where);
        Pending p;
        p.kind = op == "Relu"      ? nn::LayerKind::ReLU
                 : op == "Sigmoid" ? nn::LayerKind::Sigmoid
                 : op == "Tanh"    ? nn::LayerKind::Tanh
                                   : nn::LayerKind::Softplus;
        p.token = nn::kind_name(p.kind);
        push(std::move(p), where);
        advance(n);
        return;
    }
    if (op == "Flatten" || op == "Reshape" || op == "Squeeze" || op == "Unsqueeze") return view(n);
    if (op == "Expand") return expand(n);
    if (op == "Transpose") return transpose(n);
    if (op == "Slice") return channel_slice(n);
    if (op == kSplitPartOp) return split_part(n);
    if (op == "Gemm") return gemm(n, where);
    if (op == "MatMul") return matmul(n, where);
    if (op == "Add" && fresh_param_) return add(n, where);
    const bool by_const = n.input_size() == 2 && (constant(n.input(0)) || constant(n.input(1)));
    if ((op == "Mul" || op == "Add" || op == "Sub" || op == "Div") && by_const) {
        if (n.input(0) != cur_ && n.input(1) != cur_)
            fail(where, ": neither input is the previous layer's output '", cur_, "'");
        return affine(n, where);
    }
    if (op == "Gather") return gather_channels(n);
    if (op == "GlobalMaxPool" || op == "ReduceMax") return global_max_pool(n, where);
    if (op == "Conv") return conv(n, where);
    if (op == "MaxPool" || op == "AveragePool") return pool(n, where, op == "AveragePool");
    if (op == "Pad") return pad(n, where);
    if (op == "Clip" || op == "HardSigmoid" || op == "HardSwish" || op == "GlobalAveragePool" ||
        op == "ReduceMean" || op == "LeakyRelu" || op == "Elu")
        return unary(n, where);
    if (op == kGeluOp || op == kShortcutOp) return fused(n, where);
    if (op == "BatchNormalization") return batchnorm(n, where);
    if (op == "PRelu") return prelu(n, where);
    if (op == "Softmax" || op == "LogSoftmax")
        fail(where, ": supported only as the graph's output (dropped: Mimic's members give logits)");
    if (op == "Mul" || op == "Add" || op == "Sum" || op == "Concat")
        fail(where, ": ", op, " is supported as the join of paths that fork from one tensor",
             op == "Mul" || op == "Add" ? " or with a constant (a scalar or one value per channel)" : "",
             op == "Mul" || op == "Add" || op == "Concat" ? " or on shape values (from Shape nodes)" : "",
             ", not on one path");
    if (op == "Erf") fail(where, ": Erf is supported only inside exact GELU, x·0.5·(1 + erf(x/√2))");
    if (op == "Pow" || op == "Sqrt")
        fail(where, ": ", op, " is supported only inside a layer normalisation (x - mean) / sqrt(var + eps) ",
             "over one axis, as PyTorch writes LayerNorm before opset 17");
    if (op == "Sub" || op == "Div")
        fail(where, ": ", op,
             " is supported only with a constant (a scalar or one value per channel) and on ",
             "shape values (computed from Shape nodes and constants)");
    if (op == "Shape" || op == "Cast" || op == "ConstantOfShape")
        fail(where, ": ", op, " is supported only on shape values (computed from Shape nodes and constants)");
    fail(where, ": unsupported operator"); // unreachable: check_operators() listed them
}

void Importer::gemm(const GraphNode& n, const std::string& where) {
    need_cur(n, where);
    if (image_) fail(where, ": input is 4-D; insert a Flatten before the Gemm");
    if (attr_int(n, "transA", 0) != 0) fail(where, ": transA = 1 is not supported");
    const double alpha = attr_float(n, "alpha", 1.0), beta = attr_float(n, "beta", 1.0);
    const bool transB = attr_int(n, "transB", 0) != 0;
    if (n.input_size() < 2) fail(where, ": has no B input");
    const Const& B = need_const(n.input(1), where, "weight B");
    if (B.dims.size() != 2) fail(where, ": weight B has shape ", dims_text(B.dims), ", expected 2-D");
    const std::int64_t in = transB ? B.dims[1] : B.dims[0], out = transB ? B.dims[0] : B.dims[1];
    if (in != shape_.size())
        fail(where, ": weight B ", dims_text(B.dims), (transB ? " (transB)" : ""), " expects ", in,
             " inputs but the previous layer gives ", shape_.size());
    Pending p;
    p.kind = nn::LayerKind::Dense;
    p.token = "dense:" + std::to_string(out);
    p.out = int(out);
    p.W.resize(size_t(in * out));
    for (std::int64_t r = 0; r < in; ++r)
        for (std::int64_t c = 0; c < out; ++c)
            p.W[size_t(r * out + c)] = alpha * (transB ? B.v[size_t(c * in + r)] : B.v[size_t(r * out + c)]);
    p.b.assign(size_t(out), 0.0);
    if (n.input_size() >= 3 && !n.input(2).empty()) {
        const Const& C = need_const(n.input(2), where, "bias C");
        add_bias(p, C, beta, where, false);
    }
    take_row_order(p);
    push(std::move(p), where);
    advance(n);
}

void Importer::matmul(const GraphNode& n, const std::string& where) {
    need_cur(n, where);
    if (image_) fail(where, ": input is 4-D; insert a Flatten before the MatMul");
    if (n.input_size() < 2) fail(where, ": has no weight input");
    const Const& B = need_const(n.input(1), where, "weight");
    if (B.dims.size() != 2 || B.dims[0] != shape_.size())
        fail(where, ": weight has shape ", dims_text(B.dims), ", expected [", shape_.size(), ", units]");
    Pending p;
    p.kind = nn::LayerKind::Bottleneck; // becomes dense when an Add or BatchNormalization gives it a bias
    p.out = int(B.dims[1]);
    p.token = "bottleneck:" + std::to_string(p.out);
    p.W = B.v;
    take_row_order(p);
    push(std::move(p), where);
    advance(n);
}

/// b += scale * C, where C broadcasts to the layer's output ([out] / [1, out] for dense, [F, 1, 1] /
/// [1, F, 1, 1] for conv, or a scalar).
void Importer::add_bias(Pending& p, const Const& C, double scale, const std::string& where, bool conv) {
    std::vector<std::int64_t> d = C.dims;
    const bool per_map = conv && !channels_last_; // [F, 1, 1]; channels-last values add [F]
    while (!d.empty() && d.front() == 1 && std::int64_t(d.size()) > (per_map ? 3 : 1))
        d.erase(d.begin());
    const bool scalar = C.size() == 1;
    const bool ok = scalar || (per_map ? (d.size() == 3 && d[0] == p.out && d[1] == 1 && d[2] == 1)
                                       : (d.size() == 1 && d[0] == p.out));
    if (!ok)
        fail(where, ": bias of shape ", dims_text(C.dims), " does not broadcast per output unit (", p.out,
             conv ? " filters)" : " units)");
    if (p.b.empty()) p.b.assign(size_t(p.out), 0.0);
    for (int f = 0; f < p.out; ++f)
        p.b[size_t(f)] += scale * C.v[scalar ? 0 : size_t(f)];
}

void Importer::add(const GraphNode& n, const std::string& where) {
    if (n.input_size() != 2) fail(where, ": expected 2 inputs");
    const int data = n.input(0) == cur_ ? 0 : n.input(1) == cur_ ? 1 : -1;
    if (data < 0) fail(where, ": neither input is the previous layer's output '", cur_, "'");
    if (!fresh_param_) fail(where, ": Add is supported only as the bias right after a MatMul, Gemm or Conv");
    const Const& C = need_const(n.input(1 - data), where, "addend");
    Pending& p = layers_->back();
    add_bias(p, C, 1.0, where, p.kind == nn::LayerKind::Conv);
    if (p.kind == nn::LayerKind::Bottleneck) to_dense(p);
    advance(n);
}

/// A Conv's zero padding [top, left, bottom, right]: its pads, VALID, or SAME_UPPER / SAME_LOWER worked out
/// for this input (ONNX's rule: output = ceil(input / stride), the odd cell after or before).
std::vector<std::int64_t> Importer::conv_pads(const GraphNode& n, const std::string& where, std::int64_t KH,
                                              std::int64_t KW, std::int64_t S) const {
    const std::string auto_pad = attr_string(n, "auto_pad", "NOTSET");
    if (auto_pad == "NOTSET") {
        auto pads = attr_ints(n, "pads");
        if (pads.empty()) pads.assign(4, 0);
        if (pads.size() != 4)
            fail(where, ": pads ", dims_text(pads), " are not 2-D [top, left, bottom, right]");
        return pads;
    }
    if (auto_pad == "VALID") return {0, 0, 0, 0};
    if (auto_pad != "SAME_UPPER" && auto_pad != "SAME_LOWER")
        fail(where, ": auto_pad ", auto_pad, " is not supported");
    std::vector<std::int64_t> pads(4);
    const std::int64_t in[2] = {shape_.h, shape_.w}, k[2] = {KH, KW};
    for (int d = 0; d < 2; ++d) {
        const std::int64_t out = (in[d] + S - 1) / S,
                           total = std::max<std::int64_t>((out - 1) * S + k[d] - in[d], 0);
        pads[std::size_t(d)] = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
        pads[std::size_t(d + 2)] = total - pads[std::size_t(d)];
    }
    return pads;
}

/// Conv: a KH x KW kernel with pads [t, l, b, r] becomes conv's square K x K kernel with the same padding P
/// on every side, the weights placed at row P - t and column P - l of a zero kernel, K = KH - t - b + 2P
/// (P = the largest pad): the same windows, so the same outputs (1x7 with pads 0, 3 is a 7x7 kernel of one
/// non-zero row, pad 3). That needs KH - t - b = KW - l - r (for stride 1: the convolution changes height
/// and width alike).
void Importer::conv(const GraphNode& n, const std::string& where) {
    need_cur(n, where);
    if (!image_) fail(where, ": input is not 4-D [N, C, H, W]");
    if (n.input_size() < 2) fail(where, ": has no weight input");
    const Const& Wc = need_const(n.input(1), where, "weight");
    if (Wc.dims.size() != 4)
        fail(where, ": weight has shape ", dims_text(Wc.dims), ", expected [F, C, KH, KW]");
    // C: the channels of one group (the input's / G).
    const std::int64_t F = Wc.dims[0], C = Wc.dims[1], KH = Wc.dims[2], KW = Wc.dims[3];
    const std::int64_t G = attr_int(n, "group", 1);
    if (G < 1 || shape_.c % G != 0 || F % G != 0)
        fail(where, ": group ", G, " does not divide the input's ", shape_.c, " channels and ", F,
             " filters");
    const auto dil = attr_ints(n, "dilations");
    if (!all_equal(dil, 1)) fail(where, ": dilations ", dims_text(dil), " are not supported (only 1)");
    if (C * G != shape_.c)
        fail(where, ": weight takes ", C, " channels per group (", G, " groups) but the input has ",
             shape_.c);
    const auto ks = attr_ints(n, "kernel_shape");
    if (!ks.empty() && ks != std::vector<std::int64_t>{KH, KW})
        fail(where, ": kernel_shape ", dims_text(ks), " does not match the weight");
    const auto st = attr_ints(n, "strides");
    const std::int64_t S = st.empty() ? 1 : st[0];
    if (!all_equal(st, S)) fail(where, ": strides ", dims_text(st), " differ between height and width");
    auto pads = conv_pads(n, where, KH, KW, S);
    for (auto& v : pads)
        v += pad_ > 0 ? pad_ : 0; // a zero Pad right before: more zero padding
    pad_ = -1;
    if (KH - pads[0] - pads[2] != KW - pads[1] - pads[3])
        fail(where, ": kernel ", KH, "x", KW, " with pads ", dims_text(pads),
             " changes height and width differently (conv's kernel is square with the same padding on "
             "every side)");
    const std::int64_t P = *std::max_element(pads.begin(), pads.end());
    const std::int64_t K = KH - pads[0] - pads[2] + 2 * P, oh = P - pads[0], ow = P - pads[1];
    Pending p;
    p.kind = nn::LayerKind::Conv;
    p.out = int(F);
    p.token = "conv:" + std::to_string(F) + "x" + std::to_string(K) +
              (S != 1 ? "s" + std::to_string(S) : "") + "p" + std::to_string(P) +
              (G != 1 ? "g" + std::to_string(G) : "");
    p.W.assign(size_t(F * C * K * K), 0.0);
    for (std::int64_t f = 0; f < F; ++f)
        for (std::int64_t c = 0; c < C; ++c)
            for (std::int64_t kh = 0; kh < KH; ++kh)
                for (std::int64_t kw = 0; kw < KW; ++kw)
                    p.W[size_t(((c * K + kh + oh) * K + kw + ow) * F + f)] =
                        Wc.v[size_t(((f * C + c) * KH + kh) * KW + kw)];
    p.b.assign(size_t(F), 0.0);
    if (n.input_size() >= 3 && !n.input(2).empty()) {
        const Const& B = need_const(n.input(2), where, "bias");
        if (B.size() != F) fail(where, ": bias has shape ", dims_text(B.dims), ", expected [", F, "]");
        for (std::int64_t f = 0; f < F; ++f)
            p.b[size_t(f)] = B.v[size_t(f)];
    }
    push(std::move(p), where);
    advance(n);
}

/// MaxPool and AveragePool: square windows, equal strides, the same padding on every side, at most
/// half the window; a Pad right before an AveragePool is its padding, counted in the divisor.
void Importer::pool(const GraphNode& n, const std::string& where, bool avg) {
    need_cur(n, where);
    if (!image_) fail(where, ": input is not 4-D [N, C, H, W]");
    if (n.output_size() > 1 && !n.output(1).empty()) fail(where, ": the Indices output is not supported");
    const auto ks = attr_ints(n, "kernel_shape");
    if (ks.size() != 2 || ks[0] != ks[1])
        fail(where, ": kernel_shape ", dims_text(ks), " is not a square 2-D window");
    const std::int64_t K = ks[0];
    const auto st = attr_ints(n, "strides");
    const std::int64_t S = st.empty() ? 1 : st[0];
    if (!all_equal(st, S)) fail(where, ": strides ", dims_text(st), " differ between height and width");
    const auto pads = attr_ints(n, "pads");
    std::int64_t P = pads.empty() ? 0 : pads[0];
    const std::string auto_pad = attr_string(n, "auto_pad", "NOTSET");
    if (!all_equal(pads, P) || (auto_pad != "NOTSET" && auto_pad != "VALID"))
        fail(where, ": pads ", dims_text(pads), " (auto_pad ", auto_pad,
             ") are not the same explicit padding on every side");
    bool count_pad = avg && attr_int(n, "count_include_pad", 0) != 0;
    if (pad_ > 0 && P != 0) fail(where, ": pads ", dims_text(pads), " on top of the Pad before it");
    if (pad_ > 0) P = pad_, count_pad = true; // explicit zeros: always in the divisor
    pad_ = -1;
    if (2 * P > K) fail(where, ": padding ", P, " is more than half the window ", K);
    if (!all_equal(attr_ints(n, "dilations"), 1)) fail(where, ": dilations are not supported");
    // ceil_mode: as is where ceil and floor give the same size, else the pool token's ceil flag (c).
    const nn::PoolWindow up{int(K), int(S), int(P), true}, down{int(K), int(S), int(P), false};
    const bool ceil = attr_int(n, "ceil_mode", 0) != 0 &&
                      (up.out(shape_.h) != down.out(shape_.h) || up.out(shape_.w) != down.out(shape_.w));
    if (attr_int(n, "storage_order", 0) != 0) fail(where, ": storage_order = 1 is not supported");
    Pending p;
    p.kind = avg ? nn::LayerKind::AvgPool : nn::LayerKind::Pool;
    p.token = std::string(avg ? "avgpool:" : "pool:") + std::to_string(K) +
              (S != K ? "s" + std::to_string(S) : "") + (P ? "p" + std::to_string(P) : "") +
              (avg && P && !count_pad ? "e" : "") + (ceil ? "c" : "");
    push(std::move(p), where);
    advance(n);
}

/// Pad with constant zeros, the same on every side of H and W: held for the AveragePool that follows.
void Importer::pad(const GraphNode& n, const std::string& where) {
    need_cur(n, where);
    if (!image_) fail(where, ": input is not 4-D [N, C, H, W]");
    const std::string mode = attr_string(n, "mode", "constant");
    if (mode != "constant") fail(where, ": mode ", mode, " is not supported (only constant zeros)");
    if (n.input_size() < 2 || n.input(1).empty()) fail(where, ": has no pads input");
    const auto& v = need_const(n.input(1), where, "pads").v;
    if (n.input_size() >= 3 && !n.input(2).empty()) {
        const Const& c = need_const(n.input(2), where, "constant_value");
        if (c.size() != 1 || c.v[0] != 0) fail(where, ": the constant value is not 0");
    }
    const bool ok = v.size() == 8 && v[0] == 0 && v[1] == 0 && v[4] == 0 && v[5] == 0 && v[2] >= 0 &&
                    v[3] == v[2] && v[6] == v[2] && v[7] == v[2];
    if (!ok) {
        std::vector<std::int64_t> sv(v.begin(), v.end());
        fail(where, ": pads ", dims_text(sv), " are not the same padding on every side of H and W");
    }
    pad_ = int(v[2]);
    pad_where_ = where;
    advance(n);
}

/// The nodes of fuse_patterns(): exact GELU as gelu, and the option-A shortcut as a 1x1 stride-2 conv
/// with fixed weights (input channel c to output channel c + the channels padded before; no bias).
void Importer::fused(const GraphNode& n, const std::string& where) {
    need_cur(n, where);
    Pending p;
    if (n.op_type() == kGeluOp) {
        p.kind = nn::LayerKind::GELU;
        p.token = "gelu";
    } else {
        if (!image_) fail(where, ": input is not 4-D [N, C, H, W]");
        const auto pads = attr_ints(n, "pads");
        const std::int64_t C = shape_.c, F = C + pads.at(0) + pads.at(1);
        p.kind = nn::LayerKind::Conv;
        p.out = int(F);
        p.token = "conv:" + std::to_string(F) + "x1s2p0";
        p.W.assign(std::size_t(C * F), 0.0);
        for (std::int64_t c = 0; c < C; ++c)
            p.W[std::size_t(c * F + c + pads[0])] = 1.0;
        p.b.assign(std::size_t(F), 0.0);
    }
    push(std::move(p), where);
    advance(n);
}

/// A scalar bound input of Clip (absent: unbounded).
double Importer::clip_bound(const GraphNode& n, int i, const std::string& where, double none) const {
    if (n.input_size() <= i || n.input(i).empty()) return none;
    const Const& c = need_const(n.input(i), where, i == 1 ? "min" : "max");
    if (c.size() != 1) fail(where, ": its bound '", n.input(i), "' is not a scalar");
    return c.v[0];
}

/// Clip(0, 6) as relu6, HardSigmoid(alpha 1/6, beta 1/2), HardSwish, LeakyRelu and Elu (alpha as the
/// token's argument) and global pooling.
void Importer::unary(const GraphNode& n, const std::string& where) {
    need_cur(n, where);
    const std::string& op = n.op_type();
    Pending p;
    if (op == "Clip") {
        const double lo = clip_bound(n, 1, where, -HUGE_VAL), hi = clip_bound(n, 2, where, HUGE_VAL);
        if (lo != 0 || hi != 6) fail(where, ": Clip(", lo, ", ", hi, ") is not supported (only Clip(0, 6))");
        p.kind = nn::LayerKind::ReLU6;
    } else if (op == "HardSigmoid") {
        const double alpha = attr_float(n, "alpha", 0.2), beta = attr_float(n, "beta", 0.5);
        if (std::fabs(alpha - 1.0 / 6) > 1e-6 || beta != 0.5)
            fail(where, ": alpha ", alpha, ", beta ", beta, " are not supported (only 1/6 and 1/2)");
        p.kind = nn::LayerKind::HardSigmoid;
    } else if (op == "HardSwish") {
        p.kind = nn::LayerKind::HardSwish;
    } else if (op == "LeakyRelu" || op == "Elu") {
        const bool elu = op == "Elu";
        p.kind = elu ? nn::LayerKind::ELU : nn::LayerKind::LeakyReLU;
        p.token =
            std::string(elu ? "elu:" : "leakyrelu:") + float_text(attr_float(n, "alpha", elu ? 1.0 : 0.01));
        push(std::move(p), where);
        return advance(n);
    } else {
        return global_pool(n, where);
    }
    p.token = nn::kind_name(p.kind);
    push(std::move(p), where);
    advance(n);
}

/// GlobalAveragePool, and ReduceMean over H and W (axes [2, 3]) as gap (then flatten for keepdims 0).
void Importer::global_pool(const GraphNode& n, const std::string& where) {
    if (!image_) fail(where, ": input is not 4-D [N, C, H, W]");
    bool keep = true;
    const GraphNode* last = &n; // x.mean(3).mean(2): the second ReduceMean
    if (n.op_type() == "ReduceMean") {
        auto axes = reduce_axes(n, 4);
        keep = attr_int(n, "keepdims", 1) != 0;
        if (axes.size() == 1 && (axes[0] == 2 || axes[0] == 3)) {
            const auto& r = readers(n.output(0));
            const GraphNode* m = r.size() == 1 ? &nodes_[std::size_t(r[0])] : nullptr;
            const std::int64_t other = keep ? 5 - axes[0] : 2; // the other spatial axis, after the first
            if (!m || m->op_type() != "ReduceMean" || reduce_axes(*m, keep ? 4 : 3) != std::vector{other} ||
                (attr_int(*m, "keepdims", 1) != 0) != keep)
                fail(where, ": axes ", dims_text(axes),
                     " reduce one of height and width; supported are [2, 3]",
                     " or one then the other by a second ReduceMean");
            last = m;
        } else if (axes != std::vector<std::int64_t>{2, 3}) {
            fail(where, ": axes ", dims_text(axes), " are not the height and width [2, 3]");
        }
    }
    Pending p;
    p.kind = nn::LayerKind::GlobalAvgPool;
    p.token = nn::kind_name(p.kind);
    push(std::move(p), where);
    if (!keep) push_flatten(where);
    advance(*last);
}

/// GlobalMaxPool, and ReduceMax over H and W (axes [2, 3]), of a square image: pool:H, one window over the
/// whole plane (then flatten for keepdims 0).
void Importer::global_max_pool(const GraphNode& n, const std::string& where) {
    need_cur(n, where);
    if (!image_) fail(where, ": input is not 4-D [N, C, H, W]");
    bool keep = true;
    if (n.op_type() == "ReduceMax") {
        const auto axes = reduce_axes(n, 4);
        if (axes != std::vector<std::int64_t>{2, 3})
            fail(where, ": axes ", dims_text(axes), " are not the height and width [2, 3]");
        keep = attr_int(n, "keepdims", 1) != 0;
    }
    if (shape_.h != shape_.w)
        fail(where, ": the ", shape_.h, "x", shape_.w, " input is not square (pool's window is square)");
    Pending p;
    p.kind = nn::LayerKind::Pool;
    p.token = "pool:" + std::to_string(shape_.h);
    push(std::move(p), where);
    if (!keep) push_flatten(where);
    advance(n);
}

/// The axes of a ReduceMean (attribute, or input from opset 18) over a tensor of the given rank, sorted
/// and non-negative.
std::vector<std::int64_t> Importer::reduce_axes(const GraphNode& n, std::int64_t rank) const {
    auto axes = axes_of(n);
    for (auto& a : axes)
        a += a < 0 ? rank : 0;
    std::sort(axes.begin(), axes.end());
    return axes;
}

/// BatchNormalization (inference): folded into the Conv, Gemm or MatMul right before it, or else a bn
/// layer with these statistics (an epsilon other than bn's moves into the variance).
void Importer::batchnorm(const GraphNode& n, const std::string& where) {
    need_cur(n, where);
    if (attr_int(n, "training_mode", 0) != 0)
        fail(where, ": training_mode = 1 is not supported (export in eval mode)");
    if (n.input_size() != 5) fail(where, ": expected 5 inputs (X, scale, B, mean, var)");
    const int channels = fresh_param_ ? layers_->back().out : image_ ? shape_.c : int(shape_.size());
    const Const& scale = need_const(n.input(1), where, "scale");
    const Const& bias = need_const(n.input(2), where, "B");
    const Const& mean = need_const(n.input(3), where, "mean");
    const Const& var = need_const(n.input(4), where, "var");
    for (const Const* c : {&scale, &bias, &mean, &var})
        if (c->size() != channels)
            fail(where, ": parameters of size ", c->size(), " for ", channels, " channels");
    const double eps = attr_float(n, "epsilon", 1e-5);
    if (!fresh_param_) {
        Pending p;
        p.kind = nn::LayerKind::BatchNorm;
        p.token = "bn";
        p.out = channels;
        p.W = scale.v;
        p.b = bias.v;
        p.mean = mean.v;
        for (double v : var.v) {
            p.var.push_back(v + eps - nn::BatchNorm::kEps);
            if (p.var.back() < 0)
                fail(where, ": variance ", v, " with epsilon ", eps, " is below bn's epsilon ",
                     nn::BatchNorm::kEps);
        }
        push(std::move(p), where);
        return advance(n);
    }
    Pending& p = layers_->back();
    if (p.b.empty()) p.b.assign(size_t(p.out), 0.0);
    std::vector<double> s(size_t(p.out));
    for (int f = 0; f < p.out; ++f) {
        s[size_t(f)] = scale.v[size_t(f)] / std::sqrt(var.v[size_t(f)] + eps);
        p.b[size_t(f)] = (p.b[size_t(f)] - mean.v[size_t(f)]) * s[size_t(f)] + bias.v[size_t(f)];
    }
    for (size_t k = 0; k < p.W.size(); ++k)
        p.W[k] *= s[k % size_t(p.out)];
    if (p.kind == nn::LayerKind::Bottleneck) to_dense(p);
    advance(n);
}

} // namespace mimic::io::impl
