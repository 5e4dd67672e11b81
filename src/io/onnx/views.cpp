// Views in the ONNX import: Flatten, Reshape (constant or computed target), Squeeze, Unsqueeze and a gate's
// Expand as the same values per row, flattening or waiting for the next view where Mimic's layers need it.
#include "mimic/io/impl/onnx_import.hpp"

#include "mimic/core/error.hpp"

#include <algorithm>

namespace mimic::io::impl {

/// The per-sample ONNX shape of cur_.
std::vector<std::int64_t> Importer::logical() const {
    if (!dims_.empty()) return dims_;
    if (image_) return {shape_.c, shape_.h, shape_.w};
    return {shape_.size()};
}

/// cur_ is a flat [D] viewed as [D, 1, 1] (y.view(b, c, 1, 1) of an excitation), as a gate reads it.
bool Importer::flat_gate_view() const {
    return !image_ && dims_.size() == 3 && dims_[0] == shape_.size() && dims_[1] == 1 && dims_[2] == 1;
}

/// A layer, a fork or the end of a path needs cur_ as [C, H, W] or [D] (or a flat gate view); another
/// pending view is refused.
void Importer::need_layer_shape(const std::string& where) const {
    if (channels_last_)
        fail(where, ": reads '", cur_, "' in channels-last order [N, ", dims_text(dims_).substr(1),
             "; Transpose it back (perm [0, 3, 1, 2]) first");
    if (dims_.empty() || flat_gate_view()) return;
    fail(where, ": reads '", cur_, "' of shape [N, ", dims_text(dims_).substr(1),
         " left by a Reshape, Squeeze or Unsqueeze; Mimic's layers take [N, C, H, W] or [N, D]");
}

/// cur_ becomes n's output, of per-sample shape d (the same values in the same order): [D] flattens,
/// [C, H, W] as the layers before is the tensor as it is, and so is [D, 1, 1] of a flat tensor (a gate
/// broadcasts it the same); any other shape waits for the next Reshape, Squeeze or Unsqueeze.
void Importer::set_view(const std::vector<std::int64_t>& d, const GraphNode& n) {
    const std::int64_t size = dims_product(d);
    MIMIC_REQUIRE(size == shape_.size(), n.where, ": internal: a view of ", size, " values per row from ",
                  shape_.size());
    if (channels_last_ && d.size() == 1) return flatten_channels_last(n);
    if (channels_last_)
        fail(n.where, ": views channels-last values [N, ", dims_text(dims_).substr(1), " as [N, ",
             dims_text(d).substr(1), "; supported are a flatten to [N, D] and the Transpose back");
    dims_.clear();
    const bool same_image = image_ && d == std::vector<std::int64_t>{shape_.c, shape_.h, shape_.w};
    if (d.size() == 1 && image_) {
        push_flatten(n.where);
    } else if (d.size() != 1 && !same_image) {
        dims_ = d; // [D, 1, 1] of a flat tensor stays too: a gate broadcasts it as the flat [D]
    }
    advance(n);
}

/// Flatten (axis 1), Reshape to a constant or computed target, Squeeze and Unsqueeze (axes as an
/// attribute before opset 13, an input from 13 on): views of the same values.
void Importer::view(const GraphNode& n) {
    need_cur(n, n.where);
    const std::string& op = n.op_type();
    std::vector<std::int64_t> L = logical();
    const std::int64_t rank = std::int64_t(L.size()) + 1;
    if (op == "Flatten") {
        auto axis = attr_int(n, "axis", 1);
        if (axis < 0) axis += rank;
        if (axis != 1)
            fail(n.where, ": axis ", axis, " is not supported (only Flatten to [N, C*H*W], axis 1)");
        return set_view({shape_.size()}, n);
    }
    if (op == "Reshape") return set_view(reshape_target(n, L), n);
    std::vector<std::int64_t> axes = axes_of(n);
    const std::string axes_text = dims_text(axes);
    const bool un = op == "Unsqueeze";
    const std::int64_t out_rank = un ? rank + std::int64_t(axes.size()) : rank;
    for (auto& a : axes) {
        a += a < 0 ? out_rank : 0;
        if (a <= 0 || a >= out_rank)
            fail(n.where, ": axes ", axes_text, " include the batch or are out of range");
    }
    std::sort(axes.begin(), axes.end());
    if (un) {
        for (auto a : axes) {
            if (a - 1 > std::int64_t(L.size())) fail(n.where, ": axes ", axes_text, " are out of range");
            L.insert(L.begin() + long(a - 1), 1);
        }
    } else {
        if (axes.empty())
            for (std::int64_t a = 1; a < rank; ++a)
                if (L[std::size_t(a - 1)] == 1) axes.push_back(a);
        for (auto it = axes.rbegin(); it != axes.rend(); ++it) {
            if (L[std::size_t(*it - 1)] != 1)
                fail(n.where, ": squeezes axis ", *it, " of size ", L[std::size_t(*it - 1)]);
            L.erase(L.begin() + long(*it - 1));
        }
    }
    if (L.empty()) fail(n.where, ": leaves no dimension but the batch");
    set_view(L, n);
}

/// The per-sample target of a Reshape from L: its first entry is the batch (N computed from a Shape,
/// 0, -1 or the batch the graph was exported at), then known sizes, 0 (copied) and at most one -1.
std::vector<std::int64_t> Importer::reshape_target(const GraphNode& n, const std::vector<std::int64_t>& L) {
    if (n.input_size() < 2 || n.input(1).empty()) fail(n.where, ": has no shape input");
    Sym tmp;
    const Sym* t = sym_of(n.input(1), tmp);
    if (!t)
        fail(n.where, ": its shape '", n.input(1),
             "' is neither a constant vector of integers nor computed from Shape nodes");
    const std::string text = sym_text(*t);
    if (t->v.size() < 2) fail(n.where, ": reshape to ", text, " leaves no dimension but the batch");
    const SymDim b = t->v[0];
    if ((b.batch && b.k != 1) || (!b.batch && b.k < -1))
        fail(n.where, ": reshape to ", text, " does not keep the batch as the first dimension");
    std::vector<std::int64_t> d;
    int infer = -1;
    std::int64_t known = 1;
    for (std::size_t i = 1; i < t->v.size(); ++i) {
        const SymDim e = t->v[i];
        if (e.batch) fail(n.where, ": reshape to ", text, " mixes the batch into dimension ", i);
        std::int64_t x = e.k;
        if (x == 0 && !(i - 1 < L.size()))
            fail(n.where, ": reshape to ", text, " copies a dimension the input lacks");
        if (x == 0) x = L[i - 1];
        if (x > shape_.size())
            fail(n.where, ": reshape to ", text, " does not keep ", shape_.size(), " values per row");
        if (x == -1 && infer < 0)
            infer = int(d.size()), x = 1;
        else if (x < 1)
            fail(n.where, ": reshape to ", text, " is not supported");
        known *= x;
        if (known > shape_.size())
            fail(n.where, ": reshape to ", text, " does not keep ", shape_.size(), " values per row");
        d.push_back(x);
    }
    if (infer >= 0 && known > 0 && shape_.size() % known == 0) d[std::size_t(infer)] = shape_.size() / known;
    if (dims_product(d) != shape_.size() || (!b.batch && b.k == -1 && infer >= 0))
        fail(n.where, ": reshape to ", text, " does not keep ", shape_.size(), " values per row (input [N, ",
             dims_text(L).substr(1), ")");
    return d;
}

/// Expand (expand_as of a gate): the same values where every reader is a Mul, which broadcasts them
/// alike, and the target only repeats dimensions of size 1.
void Importer::expand(const GraphNode& n) {
    need_cur(n, n.where);
    Sym tmp;
    const Sym* t = n.input_size() > 1 ? sym_of(n.input(1), tmp) : nullptr;
    if (!t) fail(n.where, ": its shape is not a known vector of integers");
    const std::vector<std::int64_t> I = logical();
    bool ok = t->v.size() == I.size() + 1 && (t->v[0].batch || t->v[0].k == 1);
    for (std::size_t i = 0; ok && i < I.size(); ++i)
        ok = !t->v[i + 1].batch && (I[i] == 1 || I[i] == t->v[i + 1].k);
    for (int r : readers(n.output(0)))
        ok = ok && nodes_[std::size_t(r)].op_type() == "Mul";
    if (!ok)
        fail(n.where, ": expands [N, ", dims_text(I).substr(1), " to ", sym_text(*t),
             "; supported only as the broadcast of a gate (every reader a Mul)");
    advance(n); // the values before the broadcast: the Mul broadcasts them alike
    std::vector<std::int64_t> to;
    for (std::size_t i = 1; i < t->v.size(); ++i)
        to.push_back(t->v[i].k);
    tensor_dims_[cur_] = to; // what a Shape of it reads
}

} // namespace mimic::io::impl
