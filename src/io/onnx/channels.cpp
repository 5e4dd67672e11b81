// Channel shuffles (ShuffleNet's Reshape, Transpose, Reshape) and channel selections (Slice, Split and Gather
// over axis 1, as x.chunk, torch.split and x[:, i] export) in the ONNX import, each as a fixed 1x1 conv.
#include "mimic/io/impl/onnx_import.hpp"

#include "mimic/core/error.hpp"

#include <algorithm>

namespace mimic::io::impl {

/// A 1x1 conv without bias whose output channel o is input channel src[o] (weights 0 and 1: the values
/// exactly as they were).
void Importer::push_channel_map(const std::vector<std::int64_t>& src, const std::string& where) {
    const std::int64_t C = shape_.c, F = std::int64_t(src.size());
    Pending p;
    p.kind = nn::LayerKind::Conv;
    p.out = int(F);
    p.token = "conv:" + std::to_string(F) + "x1p0";
    p.W.assign(std::size_t(C * F), 0.0);
    for (std::int64_t o = 0; o < F; ++o)
        p.W[std::size_t(src[std::size_t(o)] * F + o)] = 1.0;
    p.b.assign(std::size_t(F), 0.0);
    push(std::move(p), where);
}

/// Transpose of [N, g, C/g, H, W] (a Reshape of the image [N, C, H, W]) with perm [0, 2, 1, 3, 4]: the
/// channel shuffle, channel j * C/g + i to i * g + j; the result stays viewed as [N, C/g, g, H, W] until
/// the Reshape back to [N, C, H, W].
void Importer::transpose(const GraphNode& n) {
    need_cur(n, n.where);
    const auto perm = attr_ints(n, "perm");
    if (channels_last_ && perm == std::vector<std::int64_t>{0, 3, 1, 2}) return leave_channels_last(n);
    if (!channels_last_ && image_ && dims_.empty() && perm == std::vector<std::int64_t>{0, 2, 3, 1})
        return enter_channels_last(n);
    const std::vector<std::int64_t>& d = dims_;
    const bool shuffle = image_ && d.size() == 4 && d[0] * d[1] == shape_.c && d[2] == shape_.h &&
                         d[3] == shape_.w && perm == std::vector<std::int64_t>{0, 2, 1, 3, 4};
    if (!shuffle)
        fail(n.where, ": perm ", dims_text(perm), " of [N, ", dims_text(logical()).substr(1),
             " is not supported; Transpose is supported as a channel shuffle (Reshape of [N, C, H, W] to ",
             "[N, g, C/g, H, W], perm [0, 2, 1, 3, 4], Reshape back) and to channels-last order and back ",
             "(perm [0, 2, 3, 1], then [0, 3, 1, 2])");
    const std::int64_t g = d[0], cg = d[1];
    std::vector<std::int64_t> src(std::size_t(shape_.c));
    for (std::int64_t j = 0; j < g; ++j)
        for (std::int64_t i = 0; i < cg; ++i)
            src[std::size_t(i * g + j)] = j * cg + i;
    dims_.clear();
    push_channel_map(src, n.where);
    dims_ = {cg, g, shape_.h, shape_.w};
    advance(n);
}

/// Slice of an image over the channels only (axis 1, step 1; starts and ends constant or computed from
/// Shape nodes, as x.chunk(2, dim=1) exports): the channels [start, end) as a fixed 1x1 conv.
void Importer::channel_slice(const GraphNode& n) {
    need_cur(n, n.where);
    bool known = true; // every input a constant or a shape value free of the batch
    auto value = [&](int i) -> std::vector<std::int64_t> {
        std::vector<std::int64_t> v;
        if (n.input_size() <= i || n.input(i).empty()) return v;
        Sym tmp;
        if (const Sym* s = sym_of(n.input(i), tmp)) {
            for (const auto& e : s->v)
                known = known && !e.batch, v.push_back(e.k);
        } else if (const Const* c = constant(n.input(i))) { // e.g. INT64_MAX, "to the end"
            for (double x : c->v)
                v.push_back(std::int64_t(std::max(-4.0e18, std::min(4.0e18, x))));
        } else {
            known = false;
        }
        return v;
    };
    const auto starts = value(1), ends = value(2), axes = value(3), steps = value(4);
    const bool channels = known && image_ && starts.size() == 1 && ends.size() == 1 && axes.size() == 1 &&
                          (axes[0] == 1 || axes[0] == -3) &&
                          (steps.empty() || steps == std::vector<std::int64_t>{1});
    if (!channels)
        fail(n.where,
             ": Slice is supported only on shape values (computed from Shape nodes and constants), "
             "over the channels of an image (x[:, a:b], as chunk and split export) and as x[:, :, ::2, "
             "::2] followed by a Pad of zero channels (a CIFAR ResNet's option-A shortcut)");
    const std::int64_t C = shape_.c;
    auto clamp = [C](std::int64_t x) { return std::max<std::int64_t>(0, std::min(C, x < 0 ? x + C : x)); };
    slice_channels(n, clamp(starts[0]), clamp(ends[0]));
}

/// Gather over the channels of an image by constant indices (x[:, 1] as exported: a scalar index, which
/// drops the channel axis until an Unsqueeze restores it; or a vector of them): a fixed 1x1 conv.
void Importer::gather_channels(const GraphNode& n) {
    need_cur(n, n.where);
    const Const* idx = n.input_size() == 2 ? constant(n.input(1)) : nullptr;
    const std::int64_t axis = attr_int(n, "axis", 0), C = shape_.c;
    if (!image_ || (axis != 1 && axis != -3) || !idx || idx->dims.size() > 1)
        fail(n.where,
             ": Gather is supported only on shape values (computed from Shape nodes and constants) and ",
             "over the channels of an image by constant indices (x[:, i])");
    std::vector<std::int64_t> src;
    for (double v : idx->v) {
        const std::int64_t c = std::int64_t(v) + (v < 0 ? C : 0);
        if (c < 0 || c >= C)
            fail(n.where, ": index ", std::int64_t(v), " is out of range for ", C, " channels");
        src.push_back(c);
    }
    push_channel_map(src, n.where);
    advance(n);
    if (idx->dims.empty()) { // [N, H, W]: viewed so until an Unsqueeze
        dims_ = {shape_.h, shape_.w};
        tensor_dims_[cur_] = dims_;
    }
}

/// Channels [a, b) of cur_ as a fixed 1x1 conv, cur_ then n's output.
void Importer::slice_channels(const GraphNode& n, std::int64_t a, std::int64_t b) {
    if (b <= a) fail(n.where, ": slices channels [", a, ", ", b, ") of ", shape_.c, ": none");
    std::vector<std::int64_t> src;
    for (std::int64_t c = a; c < b; ++c)
        src.push_back(c);
    push_channel_map(src, n.where);
    advance(n);
}

/// Each Split becomes one node per output, reading the same tensor: output i of k with the Split's axis and
/// sizes (input 'split' from opset 13, attribute before; none: k equal parts), for split_part().
void Importer::rewrite_splits() {
    std::vector<GraphNode> out;
    for (auto& n : nodes_) {
        if (n.op_type() != "Split") {
            out.push_back(std::move(n));
            continue;
        }
        std::vector<std::int64_t> sizes = attr_ints(n, "split");
        if (n.input_size() >= 2 && !n.input(1).empty())
            for (double v : need_const(n.input(1), n.where, "split").v)
                sizes.push_back(std::int64_t(v));
        if (!sizes.empty() && sizes.size() != n.out.size())
            fail(n.where, ": split ", dims_text(sizes), " for ", n.out.size(), " outputs");
        for (std::size_t i = 0; i < n.out.size(); ++i) {
            onnx::NodeProto& proto = fused_protos_.emplace_back(*n.proto);
            proto.set_op_type(kSplitPartOp);
            set_attr_int(&proto, "index", std::int64_t(i));
            set_attr_int(&proto, "parts", std::int64_t(n.out.size()));
            set_attr_ints(&proto, "sizes", sizes);
            GraphNode g = n;
            g.proto = &proto;
            g.in.resize(1);
            g.out = {n.out[i]};
            out.push_back(std::move(g));
        }
    }
    nodes_ = std::move(out);
}

/// One output of a Split over the channels of an image (axis 1): channels [a, b) as a fixed 1x1 conv.
void Importer::split_part(const GraphNode& n) {
    need_cur(n, n.where);
    const std::int64_t axis = attr_int(n, "axis", 0), i = attr_int(n, "index", 0),
                       k = attr_int(n, "parts", 1);
    const auto sizes = attr_ints(n, "sizes");
    const std::int64_t C = shape_.c;
    if (!image_ || (axis != 1 && axis != -3))
        fail(n.where, ": Split over axis ", axis, " of [N, ", dims_text(logical()).substr(1),
             " is not supported (only over the channels of [N, C, H, W])");
    std::int64_t a = 0, b = 0;
    if (sizes.empty()) {
        if (C % k != 0) fail(n.where, ": ", C, " channels do not split into ", k, " equal parts");
        a = i * (C / k), b = a + C / k;
    } else {
        for (std::int64_t j = 0; j < i; ++j)
            a += sizes[std::size_t(j)];
        b = a + sizes[std::size_t(i)];
        std::int64_t total = 0;
        for (auto v : sizes)
            total += v;
        if (total != C) fail(n.where, ": split ", dims_text(sizes), " does not add up to ", C, " channels");
    }
    slice_channels(n, a, b);
}

} // namespace mimic::io::impl
