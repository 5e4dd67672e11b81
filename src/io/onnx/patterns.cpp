// Patterns the ONNX import fuses into one node each, matched by their constants' values: exact GELU's Erf
// pattern, layer normalisation as written before opset 17, and the option-A shortcut of CIFAR ResNets
// (x[:, :, ::2, ::2] then a Pad of zero channels).
#include "mimic/io/impl/onnx_import.hpp"

#include <algorithm>
#include <cmath>

namespace mimic::io::impl {

struct Importer::Pattern {
    std::map<std::string, std::vector<int>> readers; ///< tensor -> the nodes reading it as data
    std::map<std::string, int> writer;               ///< tensor -> the node writing it
    /// The node that writes t and is its writer's only reader (-1: none).
    int sole_writer(const std::string& t) const {
        const auto w = writer.find(t);
        const auto r = readers.find(t);
        return w == writer.end() || r == readers.end() || r->second.size() != 1 ? -1 : w->second;
    }
    /// The only reader of t (-1: none or several).
    int sole_reader(const std::string& t) const {
        const auto r = readers.find(t);
        return r == readers.end() || r->second.size() != 1 ? -1 : r->second[0];
    }
};

/// Exact GELU as exporters write it (Div(x, √2) or Mul(x, 1/√2), Erf, Add 1, then the product of x,
/// that and 0.5 in any order), layer normalisation before opset 17 (match_layer_norm) and the option-A
/// shortcut of CIFAR ResNets (x[:, :, ::2, ::2] as one or two Slice nodes, then a Pad of zero channels)
/// become one node each, matched by their constants' values; their inner tensors must have no other
/// reader.
void Importer::fuse_patterns() {
    Pattern pt;
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
        for (const auto& s : data_inputs(nodes_[i]))
            pt.readers[s].push_back(int(i));
        for (const auto& o : nodes_[i].out)
            pt.writer[o] = int(i);
    }
    std::set<int> gone;
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
        std::vector<int> used;
        std::string x, op;
        std::vector<std::int64_t> pads;
        double eps = 0;
        std::int64_t axis = 0;
        if (nodes_[i].op_type() == "Erf" && match_gelu(int(i), pt, used, x)) {
            op = kGeluOp;
        } else if (nodes_[i].op_type() == "Sqrt" && match_layer_norm(int(i), pt, used, x, eps, axis)) {
            op = kLayerNormOp;
        } else if (nodes_[i].op_type() == "Pad" && match_shortcut(int(i), pt, used, x, pads)) {
            op = kShortcutOp;
        } else {
            continue;
        }
        const int last = *std::max_element(used.begin(), used.end());
        onnx::NodeProto& proto = fused_protos_.emplace_back();
        proto.set_op_type(op);
        proto.set_name(nodes_[std::size_t(last)].proto->name());
        if (!pads.empty()) set_attr_ints(&proto, "pads", pads);
        if (op == kLayerNormOp)
            set_attr_int(&proto, "axis", axis), set_attr_float(&proto, "epsilon", float(eps));
        GraphNode& g = nodes_[std::size_t(last)];
        g.proto = &proto;
        g.in = {x};
        g.out.resize(1);
        for (int u : used)
            if (u != last) gone.insert(u);
    }
    std::vector<GraphNode> kept;
    for (std::size_t i = 0; i < nodes_.size(); ++i)
        if (!gone.count(int(i))) kept.push_back(std::move(nodes_[i]));
    nodes_ = std::move(kept);
}

/// s is a scalar constant equal to v (to float precision).
bool Importer::scalar_is(const std::string& s, double v) const {
    const Const* c = constant(s);
    return c && c->size() == 1 && std::fabs(c->v[0] - v) <= 1e-6 * std::max(1.0, std::fabs(v));
}

/// Node m is a binary op whose inputs are t and another; that other (empty: not so).
std::string Importer::other_input(const GraphNode& m, const char* op, const std::string& t) const {
    if (m.op_type() != op || m.input_size() != 2) return {};
    return m.input(0) == t ? m.input(1) : m.input(1) == t ? m.input(0) : std::string();
}

/// Erf node e inside x·0.5·(1 + erf(x/√2)): the pattern's nodes in used, x.
bool Importer::match_gelu(int e, const Pattern& pt, std::vector<int>& used, std::string& x) const {
    const GraphNode& E = nodes_[std::size_t(e)];
    const int d = pt.sole_writer(E.input(0));
    if (d < 0) return false;
    const GraphNode& D = nodes_[std::size_t(d)];
    if (D.op_type() == "Div" && D.input_size() == 2 && scalar_is(D.input(1), std::sqrt(2.0)))
        x = D.input(0);
    else if (D.op_type() == "Mul" && scalar_is(D.input(1), std::sqrt(0.5)))
        x = D.input(0);
    else if (D.op_type() == "Mul" && scalar_is(D.input(0), std::sqrt(0.5)))
        x = D.input(1);
    else
        return false;
    const int a = pt.sole_reader(E.output(0));
    if (a < 0 || !scalar_is(other_input(nodes_[std::size_t(a)], "Add", E.output(0)), 1.0)) return false;
    const std::string& sum = nodes_[std::size_t(a)].output(0);
    const int m1 = pt.sole_reader(sum);
    if (m1 < 0) return false;
    const std::string o = other_input(nodes_[std::size_t(m1)], "Mul", sum);
    used = {d, e, a, m1};
    if (o.empty()) return false;
    if (o == x || scalar_is(o, 0.5)) { // (x·s)·0.5 or (s·0.5)·x
        const int m2 = pt.sole_reader(nodes_[std::size_t(m1)].output(0));
        if (m2 < 0) return false;
        const std::string o2 = other_input(nodes_[std::size_t(m2)], "Mul", nodes_[std::size_t(m1)].output(0));
        used.push_back(m2);
        return o == x ? scalar_is(o2, 0.5) : o2 == x;
    }
    const int h = pt.sole_writer(o); // (x·0.5)·s
    if (h < 0) return false;
    used.push_back(h);
    const std::string o2 = other_input(nodes_[std::size_t(h)], "Mul", x);
    return !o2.empty() && scalar_is(o2, 0.5);
}

/// Sqrt node q inside layer normalisation as PyTorch writes it before opset 17: m = ReduceMean(x), d = Sub(x,
/// m), v = ReduceMean(Pow(d, 2) or Mul(d, d)), Div(d, Sqrt(Add(v, epsilon))), both means over the same one
/// axis with keepdims; d read by the square and the Div only. The pattern's nodes in used, x, epsilon, the
/// axis (as written: negative from the end).
bool Importer::match_layer_norm(int q, const Pattern& pt, std::vector<int>& used, std::string& x, double& eps,
                                std::int64_t& axis) const {
    // A ReduceMean over one axis (an attribute, or a constant input from opset 18), keeping it.
    const auto one_axis_mean = [this](const GraphNode& r, std::int64_t& ax) {
        if (r.op_type() != "ReduceMean" || r.input_size() < 1 || attr_int(r, "keepdims", 1) != 1)
            return false;
        std::vector<std::int64_t> axes = attr_ints(r, "axes");
        if (r.input_size() > 1 && !r.input(1).empty()) {
            const Const* c = constant(r.input(1));
            if (!c) return false;
            axes.assign(c->v.begin(), c->v.end());
        }
        if (axes.size() != 1) return false;
        ax = axes[0];
        return true;
    };
    const GraphNode& S = nodes_[std::size_t(q)];
    if (S.input_size() != 1 || S.output_size() < 1) return false;
    const int a = pt.sole_writer(S.input(0));
    if (a < 0 || nodes_[std::size_t(a)].op_type() != "Add" || nodes_[std::size_t(a)].input_size() != 2)
        return false;
    const GraphNode& A = nodes_[std::size_t(a)];
    const int ci = constant(A.input(1)) ? 1 : constant(A.input(0)) ? 0 : -1;
    if (ci < 0 || constant(A.input(ci))->size() != 1) return false;
    eps = constant(A.input(ci))->v[0];
    const int r2 = pt.sole_writer(A.input(1 - ci));
    std::int64_t axis2 = 0;
    if (r2 < 0 || !one_axis_mean(nodes_[std::size_t(r2)], axis2)) return false;
    const int p = pt.sole_writer(nodes_[std::size_t(r2)].input(0));
    if (p < 0) return false;
    const GraphNode& P = nodes_[std::size_t(p)];
    const bool square = (P.op_type() == "Pow" && P.input_size() == 2 && scalar_is(P.input(1), 2.0)) ||
                        (P.op_type() == "Mul" && P.input_size() == 2 && P.input(0) == P.input(1));
    if (!square) return false;
    const std::string& d = P.input(0);
    const auto w = pt.writer.find(d);
    if (w == pt.writer.end() || nodes_[std::size_t(w->second)].op_type() != "Sub" ||
        nodes_[std::size_t(w->second)].input_size() != 2)
        return false;
    const int u = w->second;
    const GraphNode& U = nodes_[std::size_t(u)];
    const int r1 = pt.sole_writer(U.input(1));
    if (r1 < 0 || !one_axis_mean(nodes_[std::size_t(r1)], axis) || axis != axis2 ||
        nodes_[std::size_t(r1)].input(0) != U.input(0))
        return false;
    const int v = pt.sole_reader(S.output(0));
    if (v < 0 || nodes_[std::size_t(v)].op_type() != "Div" || nodes_[std::size_t(v)].input_size() != 2 ||
        nodes_[std::size_t(v)].input(0) != d || nodes_[std::size_t(v)].input(1) != S.output(0))
        return false;
    for (int reader : pt.readers.at(d))
        if (reader != p && reader != v) return false;
    x = U.input(0);
    used = {r1, u, p, r2, a, q, v};
    return eps > 0;
}

/// Pad node p of zero channels after x[:, :, ::2, ::2] (one or two Slice nodes, steps 2 on H and W from
/// 0 to the end): the nodes in used, x, and the channels padded before and after.
bool Importer::match_shortcut(int p, const Pattern& pt, std::vector<int>& used, std::string& x,
                              std::vector<std::int64_t>& pads) const {
    const GraphNode& P = nodes_[std::size_t(p)];
    const Const* v = P.input_size() >= 2 ? constant(P.input(1)) : nullptr;
    if (!v || v->size() != 8 || attr_string(P, "mode", "constant") != "constant") return false;
    for (int i = 0; i < 8; ++i)
        if (i != 1 && i != 5 ? v->v[size_t(i)] != 0 : v->v[size_t(i)] < 0 || v->v[size_t(i)] > 1e6)
            return false;
    if (P.input_size() >= 3 && !P.input(2).empty() && !scalar_is(P.input(2), 0.0)) return false;
    used = {p};
    std::set<std::int64_t> axes;
    x = P.input(0);
    for (int s = pt.sole_writer(x); s >= 0 && nodes_[std::size_t(s)].op_type() == "Slice";
         s = pt.sole_writer(x)) {
        if (!halving_slice(nodes_[std::size_t(s)], axes)) return false;
        used.push_back(s);
        x = nodes_[std::size_t(s)].input(0);
    }
    pads = {std::int64_t(v->v[1]), std::int64_t(v->v[5])};
    return axes == std::set<std::int64_t>{2, 3};
}

/// Slice node s takes every second row or column from the first to the end, on axes 2 or 3 of a 4-D
/// tensor only, which it adds to axes (false: any other Slice, or an axis twice).
bool Importer::halving_slice(const GraphNode& s, std::set<std::int64_t>& axes) const {
    const Const* c[4] = {};
    for (int i = 0; i < 4; ++i)
        c[i] = s.input_size() > i + 1 ? constant(s.input(i + 1)) : nullptr;
    if (!c[0] || !c[1] || !c[2] || !c[3] || s.input_size() != 5) return false;
    for (std::size_t i = 0; i < c[0]->v.size(); ++i) {
        if (c[1]->v.size() <= i || c[2]->v.size() <= i || c[3]->v.size() <= i) return false;
        const std::int64_t axis = std::int64_t(c[2]->v[i]) + (c[2]->v[i] < 0 ? 4 : 0);
        if ((axis != 2 && axis != 3) || c[0]->v[i] != 0 || c[3]->v[i] != 2 || c[1]->v[i] < 2147483647.0 ||
            !axes.insert(axis).second)
            return false;
    }
    return true;
}

} // namespace mimic::io::impl
