// Constant folding for the ONNX import: nodes whose inputs are all constants (ConstantOfShape, 1-D Concat,
// Reshape, Slice, Transpose, Cast, as PyTorch writes the pads of F.pad) evaluated into constants.
#include "mimic/io/impl/onnx_import.hpp"

#include "mimic/core/error.hpp"

#include <algorithm>
#include <cstddef>

namespace mimic::io::impl {

namespace {

/// Row-major strides of dims.
std::vector<std::int64_t> strides_of(const std::vector<std::int64_t>& dims) {
    std::vector<std::int64_t> st(dims.size(), 1);
    for (std::size_t i = dims.size(); i-- > 1;)
        st[i - 1] = st[i] * dims[i];
    return st;
}

/// out[i] = in[index(i)] over the multi-indices of out.dims, where idx[a] lists the input positions along
/// axis a of in (a Slice or Transpose as gathered indices).
void gather_axes(const Const& in, const std::vector<std::vector<std::int64_t>>& idx,
                 const std::vector<std::int64_t>& in_axis, Const& out) {
    const auto ist = strides_of(in.dims);
    out.v.resize(std::size_t(out.size()));
    std::vector<std::int64_t> pos(out.dims.size(), 0);
    for (std::int64_t e = 0; e < out.size(); ++e) {
        std::int64_t src = 0;
        for (std::size_t a = 0; a < pos.size(); ++a)
            src += idx[a][std::size_t(pos[a])] * ist[std::size_t(in_axis[a])];
        out.v[std::size_t(e)] = in.v[std::size_t(src)];
        for (std::size_t a = pos.size(); a-- > 0;)
            if (++pos[a] < out.dims[a])
                break;
            else
                pos[a] = 0;
    }
}

/// Slice of a constant (opset 10+: starts, ends, axes, steps as inputs), negative steps included.
Const slice_const(const Const& x, const std::vector<const Const*>& a, const std::string& where) {
    const std::int64_t r = std::int64_t(x.dims.size());
    std::vector<std::vector<std::int64_t>> idx(x.dims.size());
    std::vector<std::int64_t> axis(x.dims.size());
    for (std::int64_t d = 0; d < r; ++d) {
        axis[std::size_t(d)] = d;
        for (std::int64_t i = 0; i < x.dims[std::size_t(d)]; ++i)
            idx[std::size_t(d)].push_back(i);
    }
    const std::size_t k = a[0]->v.size();
    for (std::size_t i = 0; i < k; ++i) {
        std::int64_t ax = a.size() > 2 && a[2] ? std::int64_t(a[2]->v.at(i)) : std::int64_t(i);
        ax += ax < 0 ? r : 0;
        const double step = a.size() > 3 && a[3] ? a[3]->v.at(i) : 1.0;
        if (ax < 0 || ax >= r || step == 0) fail(where, ": axis or step out of range");
        const double n = double(x.dims[std::size_t(ax)]);
        auto clampi = [&](double v, double lo, double hi) {
            return std::min(std::max(v < 0 ? v + n : v, lo), hi);
        };
        const double lo = step > 0 ? 0 : -1, hi = step > 0 ? n : n - 1;
        double b = clampi(a[0]->v[i], lo, hi), e = clampi(a[1]->v.at(i), lo, hi);
        std::vector<std::int64_t> sel;
        for (double j = b; step > 0 ? j < e : j > e; j += step)
            sel.push_back(std::int64_t(j));
        idx[std::size_t(ax)] = sel;
    }
    Const out;
    for (const auto& v : idx)
        out.dims.push_back(std::int64_t(v.size()));
    gather_axes(x, idx, axis, out);
    return out;
}

/// Transpose of a constant (perm absent: the axes reversed).
Const transpose_const(const onnx::NodeProto& n, const Const& x, const std::string& where) {
    Const out;
    std::vector<std::int64_t> perm = attr_ints(n, "perm");
    if (perm.empty())
        for (std::size_t i = x.dims.size(); i-- > 0;)
            perm.push_back(std::int64_t(i));
    if (perm.size() != x.dims.size())
        fail(where, ": perm ", dims_text(perm), " for shape ", dims_text(x.dims));
    std::vector<std::vector<std::int64_t>> idx;
    for (auto p : perm) {
        if (p < 0 || p >= std::int64_t(x.dims.size()))
            fail(where, ": perm ", dims_text(perm), " out of range");
        out.dims.push_back(x.dims[std::size_t(p)]);
        idx.emplace_back();
        for (std::int64_t i = 0; i < out.dims.back(); ++i)
            idx.back().push_back(i);
    }
    gather_axes(x, idx, perm, out);
    return out;
}

} // namespace

bool fold_const(const onnx::NodeProto& n, const std::vector<const Const*>& in, Const& out,
                const std::string& where) {
    const std::string& op = n.op_type();
    if (in.empty() || !in[0]) return false;
    const Const& x = *in[0];
    if (op == "Cast" || (op == "ConstantOfShape" && x.dims.size() == 1)) {
        out = x;
        if (op == "Cast") return true;
        out.dims.assign(x.v.begin(), x.v.end());
        if (out.size() < 0 || out.size() > 4096)
            fail(where, ": shape ", dims_text(out.dims), " is too large");
        const auto* a = find_attr(n, "value");
        out.v.assign(std::size_t(out.size()), a && a->has_t() ? to_const(a->t(), where).v.at(0) : 0.0);
        return true;
    }
    if (op == "Concat") {
        for (const Const* c : in)
            if (!c || c->dims.size() != 1) return false;
        out.dims = {0};
        for (const Const* c : in)
            out.v.insert(out.v.end(), c->v.begin(), c->v.end()), out.dims[0] += c->dims[0];
        return true;
    }
    if (op == "Reshape" && in.size() == 2 && in[1]) {
        out.v = x.v;
        std::int64_t known = 1, free = -1;
        for (std::size_t i = 0; i < in[1]->v.size(); ++i) {
            std::int64_t d = std::int64_t(in[1]->v[i]);
            if (d == 0 && i < x.dims.size()) d = x.dims[i];
            if (d == -1) free = std::int64_t(i);
            out.dims.push_back(d);
            known *= d == -1 ? 1 : d;
        }
        if (free >= 0 && known > 0) out.dims[std::size_t(free)] = x.size() / known;
        if (out.size() != x.size())
            fail(where, ": cannot reshape ", dims_text(x.dims), " to ", dims_text(out.dims));
        return true;
    }
    if (op == "Slice" && in.size() >= 3) {
        for (std::size_t i = 1; i < in.size(); ++i)
            if (!in[i] && !n.input(int(i)).empty()) return false;
        out = slice_const(x, std::vector<const Const*>(in.begin() + 1, in.end()), where);
        return true;
    }
    if (op == "Transpose") {
        out = transpose_const(n, x, where);
        return true;
    }
    return false;
}

} // namespace mimic::io::impl
