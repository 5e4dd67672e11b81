// Layer normalisation in the ONNX import (LayerNormalization, and the pattern written before opset 17) and
// the stretches of a graph in [N, H, W, C] order between two Transposes, as ConvNeXt writes its blocks.
#include "mimic/io/impl/onnx_import.hpp"

#include "mimic/core/error.hpp"

namespace mimic::io::impl {

/// Transpose perm [0, 2, 3, 1] of an image: the values stay as they are, viewed as [H, W, C].
void Importer::enter_channels_last(const GraphNode& n) {
    channels_last_ = true;
    dims_ = {shape_.h, shape_.w, shape_.c};
    advance(n);
}

/// Transpose perm [0, 3, 1, 2] of channels-last values: [C, H, W] again.
void Importer::leave_channels_last(const GraphNode& n) {
    channels_last_ = false;
    dims_.clear();
    advance(n);
}

/// The operators supported on channels-last values: the activations, those that act per position over the
/// channels, a flatten, and the Transpose back.
bool Importer::channels_last_op(const std::string& op) const {
    static const std::set<std::string> ok = {"Transpose", "MatMul", "Add",        "Mul",
                                             "Sub",       "Div",    kLayerNormOp, "LayerNormalization",
                                             "Flatten",   "Reshape"};
    return elementwise_op(op) || ok.count(op) > 0;
}

/// LayerNormalization (X, Scale, B; axis, epsilon) or the fused pattern (axis, epsilon), over one axis
/// only: the channels (the last axis of channels-last values, axis 1 of [N, C, H, W]) or the features of
/// [N, D]. An ln whose scale and shift the Mul and Add after it fold into.
void Importer::layer_norm(const GraphNode& n, const std::string& where) {
    need_cur(n, where);
    const std::int64_t rank = std::int64_t(logical().size()) + 1;
    std::int64_t axis = attr_int(n, "axis", -1);
    if (axis < 0) axis += rank;
    // LayerNormalization normalises the axes from `axis` to the last, the pattern its one axis.
    const bool to_last = n.op_type() == "LayerNormalization";
    const bool over_channels = channels_last_ ? axis == 3
                               : image_       ? axis == 1 && (!to_last || (shape_.h == 1 && shape_.w == 1))
                                              : axis == 1 && rank == 2;
    if (!over_channels)
        fail(where, ": normalises ", to_last ? "from " : "over ", "axis ", axis, " of [N, ",
             dims_text(logical()).substr(1), to_last ? " to the last" : "",
             "; supported are the channels alone: the last axis of channels-last values (x.permute(0, 2, 3, ",
             "1)), axis 1 of [N, C, H, W] (one axis), or the features of [N, D]");
    if (n.op_type() == "LayerNormalization" && n.output_size() > 1)
        for (int k = 1; k < n.output_size(); ++k)
            if (!n.output(k).empty() && !readers(n.output(k)).empty())
                fail(where, ": its mean or inverse standard deviation output is read; only Y is supported");
    const int C = image_ ? shape_.c : int(shape_.size());
    Pending p;
    p.kind = nn::LayerKind::LayerNorm;
    const double eps = attr_float(n, "epsilon", 1e-5);
    p.token = float(eps) == float(1e-5) ? "ln" : "ln:" + float_text(eps);
    p.out = C;
    p.W.assign(std::size_t(C), 1.0);
    p.b.assign(std::size_t(C), 0.0);
    if (n.op_type() == "LayerNormalization") {
        if (n.input_size() < 2) fail(where, ": has no scale input");
        const Const& s = need_const(n.input(1), where, "scale");
        if (s.size() != C) fail(where, ": scale of ", s.size(), " values for ", C, " channels");
        p.W = s.v;
        if (n.input_size() > 2 && !n.input(2).empty()) {
            const Const& b = need_const(n.input(2), where, "bias");
            if (b.size() != C) fail(where, ": bias of ", b.size(), " values for ", C, " channels");
            p.b = b.v;
        }
    }
    push(std::move(p), where);
    fresh_affine_ = true; // a Mul and an Add of one value per channel fold into its scale and shift
    advance(n);
}

/// MatMul of channels-last values [N, H, W, C] by a constant [C, F]: a 1x1 conv (a Linear on
/// x.permute(0, 2, 3, 1)), whose bias the Add after it gives.
void Importer::channels_last_matmul(const GraphNode& n, const std::string& where) {
    need_cur(n, where);
    if (n.input_size() < 2) fail(where, ": has no weight input");
    const Const& B = need_const(n.input(1), where, "weight");
    if (B.dims.size() != 2 || B.dims[0] != shape_.c)
        fail(where, ": weight has shape ", dims_text(B.dims), ", expected [", shape_.c,
             ", units] for channels-last values of ", shape_.c, " channels");
    Pending p;
    p.kind = nn::LayerKind::Conv;
    p.out = int(B.dims[1]);
    p.token = "conv:" + std::to_string(p.out) + "x1p0";
    p.W = B.v; // [C, F] is Mimic's conv layout {C, 1, 1, F}
    p.b.assign(std::size_t(p.out), 0.0);
    push(std::move(p), where);
    dims_ = {shape_.h, shape_.w, shape_.c}; // F channels now
    advance(n);
}

/// Flatten (or Reshape to [N, D]) of channels-last values: Mimic's flatten, in C, H, W order, with the
/// ONNX order of its features kept for the weight of the Gemm or MatMul that reads them.
void Importer::flatten_channels_last(const GraphNode& n) {
    const std::int64_t C = shape_.c, HW = std::int64_t(shape_.h) * shape_.w;
    row_order_.assign(std::size_t(C * HW), 0);
    for (std::int64_t c = 0; c < C; ++c)
        for (std::int64_t p = 0; p < HW; ++p)
            row_order_[std::size_t(c * HW + p)] = p * C + c;
    channels_last_ = false;
    dims_.clear();
    push_flatten(n.where);
    advance(n);
}

/// The rows of a dense or bottleneck weight [in, out] put in Mimic's flattened order (row_order_).
void Importer::take_row_order(Pending& p) {
    if (row_order_.empty()) return;
    const std::vector<double> W = p.W;
    const std::size_t out = std::size_t(p.out);
    for (std::size_t i = 0; i < row_order_.size(); ++i)
        for (std::size_t c = 0; c < out; ++c)
            p.W[i * out + c] = W[std::size_t(row_order_[i]) * out + c];
    row_order_.clear();
}

/// Flattened channels-last values must reach a Gemm or MatMul first (through elementwise activations).
void Importer::need_no_row_order(const std::string& where) const {
    if (!row_order_.empty())
        fail(where, ": holds channels-last values flattened in H, W, C order ('", cur_,
             "'); a Gemm or MatMul must read them next (elementwise activations between), its weight rows ",
             "then reordered");
}

} // namespace mimic::io::impl
