// Shape computations of the ONNX import (Shape, Gather, Concat, Slice, arithmetic, ... over int64 vectors)
// taken out of the graph and evaluated with the batch as one symbol N where a Reshape or Expand reads them.
#include "mimic/io/impl/onnx_import.hpp"

#include "mimic/core/error.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace mimic::io::impl {

namespace {

/// x op y for one entry of Add, Sub, Mul or Div (integer, truncating as ONNX does); false where the result
/// is not a known number or k * N.
bool sym_arith(const std::string& op, SymDim x, SymDim y, SymDim& r) {
    constexpr double kMax = 9.0e15; // shape values stay far from int64's range (no overflow below)
    if (std::fabs(double(x.k)) > kMax || std::fabs(double(y.k)) > kMax ||
        (op == "Mul" && std::fabs(double(x.k) * double(y.k)) > kMax))
        return false;
    if (op == "Mul") {
        if (x.batch && y.batch) return false;
        r = SymDim{x.k * y.k, x.batch || y.batch};
        return true;
    }
    if (op == "Div") {
        if (y.batch || y.k == 0 || (x.batch && x.k % y.k != 0)) return false;
        r = SymDim{x.k / y.k, x.batch};
        return true;
    }
    const std::int64_t sign = op == "Sub" ? -1 : 1;
    if (x.batch && y.batch) {
        r = SymDim{x.k + sign * y.k, x.k + sign * y.k != 0};
        return true;
    }
    if (x.batch || y.batch) {
        const SymDim& b = x.batch ? x : y;
        const SymDim& c = x.batch ? y : x;
        if (c.k != 0 || (op == "Sub" && y.batch)) return false;
        r = b;
        return true;
    }
    r = SymDim{x.k + sign * y.k, false};
    return true;
}

/// Slice of a 1-D shape value (starts, ends, axes, steps as ONNX's Slice, opset 10 and later).
Sym sym_slice(const Sym& d, const std::vector<Sym>& a, const std::string& where) {
    auto one = [&](std::size_t i, std::int64_t def) -> std::int64_t {
        if (i >= a.size() || a[i].v.empty()) return def;
        if (a[i].v.size() != 1 || a[i].v[0].batch) fail(where, ": only a slice over axis 0 is supported");
        return a[i].v[0].k;
    };
    if (one(3, 0) != 0 && one(3, 0) != -1) fail(where, ": only a slice over axis 0 is supported");
    const std::int64_t n = std::int64_t(d.v.size()), step = one(4, 1);
    if (step < 1) fail(where, ": only a positive slice step is supported");
    auto clamp = [&](std::int64_t x) { return std::max<std::int64_t>(0, std::min(n, x < 0 ? x + n : x)); };
    Sym r;
    for (std::int64_t i = clamp(one(1, 0)), e = clamp(one(2, n)); i < e; i += step)
        r.v.push_back(d.v[std::size_t(i)]);
    return r;
}

} // namespace

std::string sym_text(const Sym& s) {
    std::ostringstream os;
    os << "[";
    for (size_t i = 0; i < s.v.size(); ++i) {
        os << (i ? ", " : "");
        if (!s.v[i].batch)
            os << s.v[i].k;
        else
            os << (s.v[i].k == 1 ? "" : std::to_string(s.v[i].k) + "*") << "N";
    }
    os << "]";
    return os.str();
}

/// The shape computations PyTorch writes for x.view(x.size(0), -1), expand_as and the like (Shape of a
/// data tensor, then Gather, Unsqueeze, Squeeze, Concat, Slice, Cast, Add/Sub/Mul/Div,
/// ConstantOfShape over its values and constants) leave the graph, so that a Shape is no reader of
/// the tensor it measures; the Reshape or Expand that reads one evaluates it (sym_of) with the batch
/// size as one symbol N and every other dimension as the walk found it.
void Importer::fold_shapes() {
    static const std::set<std::string> ops = {"Gather",         "Unsqueeze", "Squeeze", "Concat", "Slice",
                                              "Cast",           "Add",       "Sub",     "Mul",    "Div",
                                              "ConstantOfShape"};
    std::vector<GraphNode> kept;
    for (auto& n : nodes_) {
        bool from_shape = false, operands = n.output_size() == 1;
        for (const auto& s : n.in) {
            from_shape = from_shape || shape_node_of_.count(s);
            operands = operands && (s.empty() || shape_node_of_.count(s) || constant(s));
        }
        if ((n.op_type() == "Shape" && n.output_size() == 1) ||
            (ops.count(n.op_type()) && from_shape && operands)) {
            shape_node_of_[n.out[0]] = int(shape_nodes_.size());
            shape_nodes_.push_back(std::move(n));
        } else {
            kept.push_back(std::move(n));
        }
    }
    nodes_ = std::move(kept);
}

/// The value of tensor s as a shape value: computed from shape nodes (evaluated once), or an integral
/// constant of rank 0 or 1 (in tmp); nullptr otherwise.
const Sym* Importer::sym_of(const std::string& s, Sym& tmp) {
    const auto it = syms_.find(s);
    if (it != syms_.end()) return &it->second;
    const auto sn = shape_node_of_.find(s);
    if (sn != shape_node_of_.end()) {
        const GraphNode& n = shape_nodes_[std::size_t(sn->second)];
        if (n.op_type() == "Shape") return &(syms_[s] = shape_of(n));
        std::vector<Sym> a;
        for (const auto& x : n.in) {
            Sym t;
            const Sym* p = x.empty() ? &t : sym_of(x, t);
            if (!p) fail(n.where, ": its input '", x, "' is not a shape value");
            a.push_back(*p);
        }
        return &(syms_[s] = eval_shape_op(n, a));
    }
    const Const* c = constant(s);
    if (!c || c->dims.size() > 1) return nullptr;
    tmp = Sym{};
    tmp.scalar = c->dims.empty();
    for (double x : c->v) {
        if (x != std::floor(x) || std::fabs(x) > 9.0e15) return nullptr;
        tmp.v.push_back(SymDim{std::int64_t(x), false});
    }
    return &tmp;
}

/// Shape of a data tensor the walk has reached: N, then its per-sample dimensions (start and end as
/// in opset 15).
Sym Importer::shape_of(const GraphNode& n) const {
    const std::string x = n.in.empty() ? std::string() : n.in[0];
    const auto it = tensor_dims_.find(x);
    if (it == tensor_dims_.end())
        fail(n.where, ": measures '", x, "', which is not a tensor on the path to the node that reads",
             " the shape");
    Sym all;
    all.v.push_back(SymDim{1, true});
    for (auto d : it->second)
        all.v.push_back(SymDim{d, false});
    std::vector<Sym> range(3);
    for (int k = 0; k < 2; ++k)
        if (const auto* a = find_attr(n, k == 0 ? "start" : "end"))
            range[std::size_t(k + 1)].v.push_back(SymDim{a->i(), false});
    return sym_slice(all, range, n.where);
}

/// Gather, Unsqueeze, Squeeze, Concat, Slice, Cast and arithmetic over shape values.
Sym Importer::eval_shape_op(const GraphNode& n, const std::vector<Sym>& a) const {
    const std::string& op = n.op_type();
    const std::string& w = n.where;
    if (op == "Cast") return a[0];
    if (op == "ConstantOfShape") return constant_of_shape(n, a[0]);
    if (op == "Slice") return a[0].scalar ? fail(w, ": slices a scalar"), a[0] : sym_slice(a[0], a, w);
    Sym r;
    if (op == "Gather") {
        if (attr_int(n, "axis", 0) != 0 || a[0].scalar || a.size() != 2)
            fail(w, ": only Gather over axis 0 of a shape vector is supported");
        const auto len = std::int64_t(a[0].v.size());
        for (const SymDim& i : a[1].v) {
            const std::int64_t k = i.k < 0 ? i.k + len : i.k;
            if (i.batch || k < 0 || k >= len) fail(w, ": index ", sym_text(a[1]), " out of ", sym_text(a[0]));
            r.v.push_back(a[0].v[std::size_t(k)]);
        }
        r.scalar = a[1].scalar;
    } else if (op == "Unsqueeze" || op == "Squeeze") {
        const bool un = op == "Unsqueeze";
        if (a[0].v.size() != 1 || a[0].scalar != un)
            fail(w, ": only ", un ? "Unsqueeze of a scalar" : "Squeeze of a 1-element vector",
                 " shape value is supported (", sym_text(a[0]), ")");
        r.v = a[0].v;
        r.scalar = !un;
    } else if (op == "Concat") {
        if (attr_int(n, "axis", 0) != 0) fail(w, ": only Concat over axis 0 of shape vectors is supported");
        for (const Sym& x : a)
            r.v.insert(r.v.end(), x.v.begin(), x.v.end());
    } else {
        return sym_binary(n, a);
    }
    return r;
}

/// ConstantOfShape([k]) with k known: a vector of k copies of its value (as in -1 tests of shape
/// vectors).
Sym Importer::constant_of_shape(const GraphNode& n, const Sym& shape) {
    if (shape.v.size() != 1 || shape.v[0].batch || shape.v[0].k < 0 || shape.v[0].k > 64)
        fail(n.where, ": only a 1-D result of known length up to 64 (a shape vector) is supported (shape ",
             sym_text(shape), ")");
    const auto* a = find_attr(n, "value");
    const Const fill = a && a->has_t() ? to_const(a->t(), n.where) : Const{{1}, {0.0}};
    if (fill.v.size() != 1 || fill.v[0] != std::floor(fill.v[0]))
        fail(n.where, ": its value is not one integer");
    Sym r;
    r.v.assign(std::size_t(shape.v[0].k), SymDim{std::int64_t(fill.v[0]), false});
    return r;
}

/// Add, Sub, Mul, Div of two shape values (a scalar or 1-element operand broadcasts).
Sym Importer::sym_binary(const GraphNode& n, const std::vector<Sym>& a) const {
    if (a.size() != 2) fail(n.where, ": expected 2 inputs");
    const Sym &x = a[0], &y = a[1];
    const std::size_t len = std::max(x.v.size(), y.v.size());
    if ((x.v.size() != len && x.v.size() != 1) || (y.v.size() != len && y.v.size() != 1))
        fail(n.where, ": shapes ", sym_text(x), " and ", sym_text(y), " do not broadcast");
    Sym r;
    r.scalar = x.scalar && y.scalar;
    for (std::size_t i = 0; i < len; ++i) {
        SymDim e;
        if (!sym_arith(n.op_type(), x.v[x.v.size() == 1 ? 0 : i], y.v[y.v.size() == 1 ? 0 : i], e))
            fail(n.where, ": ", sym_text(x), " ", n.op_type(), " ", sym_text(y),
                 " is not a known number or a multiple of the batch size");
        r.v.push_back(e);
    }
    return r;
}

} // namespace mimic::io::impl
