// ONNX import (a series-parallel graph of supported nodes -> spec tokens with res/cat/gate blocks and
// weights, BatchNormalization folded, Pad folded, x * Sigmoid(x) as SiLU, exact GELU's Erf pattern as gelu,
// the option-A shortcut (Slice ::2 then a channel Pad) as a fixed 1x1 stride-2 conv, constant subgraphs
// folded, shape computations from Shape evaluated with the batch as one symbol, Reshape/Squeeze/Unsqueeze
// as views) and export (spec ->
// Gemm/MatMul/Conv/MaxPool/AveragePool/Add/Concat/Mul/... nodes, checked by onnx::checker), on Debian's
// libonnx protobufs.
#include "mimic/io/onnx.hpp"

#include "mimic/core/error.hpp"
#include "mimic/core/log.hpp"
#include "mimic/core/version_info.hpp"
#include "mimic/io/dataset.hpp"
#include "mimic/nn/layers/batchnorm.hpp"
#include "mimic/nn/layers/maxpool2d.hpp"
#include "mimic/nn/spec.hpp"

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace mimic::io {

namespace {

// ------------------------------------------------------------------------------------------ import

/// A constant of the graph (initializer, Constant node or Identity of one) as doubles.
struct Const {
    std::vector<std::int64_t> dims;
    std::vector<double> v;
    std::int64_t size() const {
        std::int64_t n = 1;
        for (auto d : dims)
            n *= d;
        return n;
    }
};

std::string dims_text(const std::vector<std::int64_t>& d) {
    std::ostringstream os;
    os << "[";
    for (size_t i = 0; i < d.size(); ++i)
        os << (i ? ", " : "") << d[i];
    os << "]";
    return os.str();
}

template <class T>
void append_raw(const std::string& raw, std::vector<double>& out) {
    const size_t n = raw.size() / sizeof(T);
    for (size_t i = 0; i < n; ++i) {
        T x;
        std::memcpy(&x, raw.data() + i * sizeof(T), sizeof(T));
        out.push_back(double(x));
    }
}

Const to_const(const onnx::TensorProto& t, const std::string& where) {
    Const c;
    c.dims.assign(t.dims().begin(), t.dims().end());
    if (t.data_location() == onnx::TensorProto::EXTERNAL)
        fail(where, ": tensor '", t.name(), "' keeps its data in an external file; save the model with all ",
             "tensors inside the .onnx file");
    const bool raw = t.has_raw_data();
    switch (t.data_type()) {
    case onnx::TensorProto::FLOAT:
        if (raw)
            append_raw<float>(t.raw_data(), c.v);
        else
            c.v.assign(t.float_data().begin(), t.float_data().end());
        break;
    case onnx::TensorProto::DOUBLE:
        if (raw)
            append_raw<double>(t.raw_data(), c.v);
        else
            c.v.assign(t.double_data().begin(), t.double_data().end());
        break;
    case onnx::TensorProto::INT64:
        if (raw)
            append_raw<std::int64_t>(t.raw_data(), c.v);
        else
            c.v.assign(t.int64_data().begin(), t.int64_data().end());
        break;
    case onnx::TensorProto::INT32:
        if (raw)
            append_raw<std::int32_t>(t.raw_data(), c.v);
        else
            c.v.assign(t.int32_data().begin(), t.int32_data().end());
        break;
    default:
        fail(where, ": tensor '", t.name(), "' has ONNX data type ", t.data_type(),
             "; only float, double, int32 and int64 constants are supported");
    }
    if (std::int64_t(c.v.size()) != c.size())
        fail(where, ": tensor '", t.name(), "' holds ", c.v.size(), " values for shape ", dims_text(c.dims));
    return c;
}

/// A value of a shape computation (Shape, Gather, Concat, ... over int64 vectors): each entry a known
/// number or k times the batch size N, the one dimension that is not known at import.
struct SymDim {
    std::int64_t k = 0;
    bool batch = false; ///< k * N
};
struct Sym {
    std::vector<SymDim> v;
    bool scalar = false; ///< rank 0 (one entry)
};

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

// Attributes of a NodeProto or of the GraphNode that wraps one.
template <class Node>
const onnx::AttributeProto* find_attr(const Node& n, const char* name) {
    for (const auto& a : n.attribute())
        if (a.name() == name) return &a;
    return nullptr;
}
template <class Node>
std::int64_t attr_int(const Node& n, const char* name, std::int64_t def) {
    const auto* a = find_attr(n, name);
    return a ? a->i() : def;
}
template <class Node>
double attr_float(const Node& n, const char* name, double def) {
    const auto* a = find_attr(n, name);
    return a ? double(a->f()) : def;
}
template <class Node>
std::vector<std::int64_t> attr_ints(const Node& n, const char* name) {
    const auto* a = find_attr(n, name);
    return a ? std::vector<std::int64_t>(a->ints().begin(), a->ints().end()) : std::vector<std::int64_t>{};
}
template <class Node>
std::string attr_string(const Node& n, const char* name, const std::string& def) {
    const auto* a = find_attr(n, name);
    return a ? a->s() : def;
}

bool all_equal(const std::vector<std::int64_t>& v, std::int64_t x) {
    for (auto e : v)
        if (e != x) return false;
    return true;
}

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

/// Folds node op of constant inputs in (ConstantOfShape, 1-D Concat, Reshape, Slice, Transpose, Cast, as
/// PyTorch writes the pads of F.pad) into out; false where it is no such node.
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

/// The shortest decimal text that reads back as the float v (a token's argument, e.g. leakyrelu:0.1).
std::string float_text(double v) {
    char buf[32];
    for (int digits = 1; digits <= 9; ++digits) {
        std::snprintf(buf, sizeof buf, "%.*g", digits, v);
        if (float(std::strtod(buf, nullptr)) == float(v)) break;
    }
    return buf;
}

/// The operators of the nodes fuse_patterns() writes (no ONNX operator has a dot in its name).
const char* const kGeluOp = "mimic.Gelu";
const char* const kShortcutOp = "mimic.ShortcutA";

/// One Mimic layer being built; weights in Mimic's layout (dense W [in, out], conv W {C, K, K, F}), so the
/// output unit is always the fastest index of W. A block holds its branches' layers instead.
struct Pending {
    nn::LayerKind kind = nn::LayerKind::ReLU;
    std::string token;
    std::vector<double> W, b;                   ///< b empty for bottleneck
    int out = 0;                                ///< output units / filters
    std::vector<double> mean, var;              ///< bn: the running statistics
    nn::Join join = nn::Join::Add;              ///< block: how its branches join
    std::vector<std::vector<Pending>> branches; ///< block: its branches in spec order (empty: the identity)
};

/// "res(A)", "cat(|A)", "gate(A)": the token of a block from its branches' tokens (an empty branch is the
/// identity; res with one chain and the identity is written res(A)).
std::string block_token(const Pending& b) {
    const bool res1 = b.join == nn::Join::Add && b.branches.size() == 2 && b.branches[1].empty();
    std::string s = std::string(nn::join_name(b.join)) + "(";
    for (std::size_t j = 0; j < (res1 ? 1 : b.branches.size()); ++j) {
        if (j) s += "|";
        for (std::size_t k = 0; k < b.branches[j].size(); ++k)
            s += (k ? "," : "") + b.branches[j][k].token;
    }
    return s + ")";
}

/// A node of the graph being imported, after the simplification passes: inputs with Identity, Dropout and
/// one-input Concat/Sum resolved to their source and DenseNet concatenations rewritten; attributes and the
/// operator from its NodeProto.
struct GraphNode {
    const onnx::NodeProto* proto = nullptr;
    std::string where; ///< "model.onnx: node 12 'name' (Conv)", for errors
    std::vector<std::string> in, out;
    bool live = true; ///< false: removed by a pass, or no graph output depends on it
    const std::string& op_type() const { return proto->op_type(); }
    int input_size() const { return int(in.size()); }
    const std::string& input(int i) const { return in[std::size_t(i)]; }
    int output_size() const { return int(out.size()); }
    const std::string& output(int i) const { return out[std::size_t(i)]; }
    const auto& attribute() const { return proto->attribute(); }
};

class Importer {
public:
    explicit Importer(std::string path) : path_(std::move(path)) {}

    /// parse -> graph of nodes over tensors -> simplification passes -> series-parallel decomposition into
    /// a chain of layers and blocks -> the model with its weights.
    nn::Model run(ModelMeta* meta) {
        load();
        check_operators();
        read_input();
        read_output();
        collect_initializers();
        make_graph();
        fold_shapes();
        fuse_patterns();
        drop_output_softmax();
        rewrite_dense_concats();
        index_consumers();
        tensor_dims_[input_name_] = logical();
        chain(input_name_, -1, -1, top_);
        if (top_.empty()) fail(path_, ": the graph has no layers");
        return build(meta);
    }

private:
    std::string path_;
    onnx::ModelProto model_;
    std::map<std::string, Const> consts_;
    std::string cur_;    ///< name of the current activation tensor
    nn::Shape shape_;    ///< its per-sample shape
    bool image_ = false; ///< 4-D (N, C, H, W) rather than 2-D (N, D)
    nn::Shape input_;
    std::string input_name_, output_name_; ///< the graph's data input and (after the passes) its output
    std::int64_t opset_ = 0;
    std::vector<GraphNode> nodes_;                    ///< in the ONNX graph's (topological) order
    std::deque<onnx::NodeProto> fused_protos_;        ///< the nodes fuse_patterns() wrote
    std::map<std::string, std::vector<int>> readers_; ///< tensor -> the live nodes reading it as data
    std::vector<Pending> top_;                        ///< the model's chain
    std::vector<Pending>* layers_ = &top_;            ///< the chain being built (the model, or a branch)
    bool fresh_param_ = false;           ///< cur_ is the direct output of layers_->back(), a parameter layer
    int pad_ = -1;                       ///< padding of a Pad waiting for its Conv or AveragePool (-1: none)
    std::string pad_where_;              ///< that Pad node, for errors
    std::map<std::string, Sym> syms_;    ///< shape values that depend on the batch size (fold_shapes)
    std::vector<GraphNode> shape_nodes_; ///< the shape computations fold_shapes took out
    std::map<std::string, int> shape_node_of_;                     ///< their outputs -> index in shape_nodes_
    std::map<std::string, std::vector<std::int64_t>> tensor_dims_; ///< per-sample shapes the walk reached
    /// The per-sample ONNX shape of cur_ where Reshape, Squeeze or Unsqueeze left it neither the layers'
    /// [C, H, W] nor [D] (e.g. [C, 1] between two Squeeze); empty otherwise.
    std::vector<std::int64_t> dims_;

    /// A Pad is waiting for its Conv or AveragePool but the tensor goes elsewhere.
    [[noreturn]] void pad_not_folded() const {
        fail(pad_where_,
             ": Pad is supported only right before a Conv or AveragePool (folded into its padding)");
    }

    /// Where the walk stands: saved before each branch of a block, restored after.
    struct Walk {
        std::vector<Pending>* layers;
        std::string cur;
        nn::Shape shape;
        bool image, fresh_param;
        int pad;
        std::vector<std::int64_t> dims;
    };
    Walk save() const { return Walk{layers_, cur_, shape_, image_, fresh_param_, pad_, dims_}; }
    void restore(const Walk& w) {
        layers_ = w.layers, cur_ = w.cur, shape_ = w.shape, image_ = w.image;
        fresh_param_ = w.fresh_param, pad_ = w.pad, dims_ = w.dims;
    }

    const onnx::GraphProto& graph() const { return model_.graph(); }

    std::string node_where(int i, const onnx::NodeProto& n) const {
        std::ostringstream os;
        os << path_ << ": node " << i;
        if (!n.name().empty()) os << " '" << n.name() << "'";
        os << " (" << n.op_type() << ")";
        return os.str();
    }

    void load() {
        std::ifstream in(path_, std::ios::binary);
        if (!in) fail(path_, ": cannot open the ONNX file");
        if (!model_.ParseFromIstream(&in)) fail(path_, ": not an ONNX model (protobuf parsing failed)");
        if (!model_.has_graph()) fail(path_, ": the ONNX model has no graph");
        std::int64_t opset = -1;
        for (const auto& o : model_.opset_import())
            if (o.domain().empty() || o.domain() == "ai.onnx") opset = o.version();
        if (opset < 0) fail(path_, ": the model imports no standard ONNX opset");
        if (opset < kOnnxMinImportOpset)
            fail(path_, ": opset ", opset, " is too old; export with opset ", kOnnxMinImportOpset,
                 " or later");
        opset_ = opset;
    }

    void check_operators() const {
        static const std::set<std::string> supported = {
            "Gemm",      "MatMul",     "Add",         "Conv",
            "MaxPool",   "Relu",       "Sigmoid",     "Tanh",
            "Flatten",   "Reshape",    "Dropout",     "BatchNormalization",
            "Identity",  "Constant",   "AveragePool", "GlobalAveragePool",
            "Pad",       "Clip",       "HardSigmoid", "HardSwish",
            "Mul",       "Sum",        "Concat",      "ReduceMean",
            "Softmax",   "LogSoftmax", "Shape",       "Gather",
            "Unsqueeze", "Squeeze",    "Slice",       "Cast",
            "Sub",       "Div",        "Expand",      "ConstantOfShape",
            "LeakyRelu", "Elu",        "Erf"};
        // Tensors computed from constants alone (a Transpose of them, as in F.pad's pads, is folded).
        std::set<std::string> fixed;
        for (const auto& t : graph().initializer())
            fixed.insert(t.name());
        std::set<std::string> bad;
        for (const auto& n : graph().node()) {
            bool from_constants = true;
            for (const auto& s : n.input())
                from_constants = from_constants && (s.empty() || fixed.count(s));
            if (from_constants) fixed.insert(n.output().begin(), n.output().end());
            const bool std_domain = n.domain().empty() || n.domain() == "ai.onnx";
            if (!std_domain)
                bad.insert(n.domain() + "::" + n.op_type());
            else if (!supported.count(n.op_type()) && !(n.op_type() == "Transpose" && from_constants))
                bad.insert(n.op_type());
        }
        if (bad.empty()) return;
        std::string list;
        for (const auto& b : bad)
            list += (list.empty() ? "" : ", ") + b;
        fail(path_, ": unsupported operators: ", list);
    }

    void collect_initializers() {
        for (const auto& t : graph().initializer())
            consts_[t.name()] = to_const(t, path_);
    }

    void read_input() {
        std::set<std::string> inits;
        for (const auto& t : graph().initializer())
            inits.insert(t.name());
        const onnx::ValueInfoProto* in = nullptr;
        int count = 0;
        std::string names;
        for (const auto& v : graph().input())
            if (!inits.count(v.name())) in = &v, ++count, names += (count > 1 ? ", '" : "'") + v.name() + "'";
        if (count != 1)
            fail(path_, ": the graph has ", count, " data inputs", count ? " (" + names + ")" : "",
                 "; Mimic imports models with one input");
        const std::string where = path_ + ": input '" + in->name() + "'";
        if (!in->type().has_tensor_type() || !in->type().tensor_type().has_shape())
            fail(where, " has no tensor shape");
        if (in->type().tensor_type().elem_type() != onnx::TensorProto::FLOAT)
            fail(where, " is not float32 (ONNX type ", in->type().tensor_type().elem_type(), ")");
        const auto& dims = in->type().tensor_type().shape().dim();
        std::vector<std::int64_t> d;
        for (int k = 1; k < dims.size(); ++k) {
            if (!dims[k].has_dim_value() || dims[k].dim_value() < 1)
                fail(where, ": dimension ", k,
                     " is not a fixed positive size (only the batch may be symbolic)");
            d.push_back(dims[k].dim_value());
        }
        if (dims.size() == 2) {
            input_ = {1, 1, int(d[0])};
            image_ = false;
        } else if (dims.size() == 4) {
            input_ = {int(d[0]), int(d[1]), int(d[2])};
            image_ = true;
        } else {
            fail(where, " has rank ", dims.size(), "; Mimic takes [N, D] or [N, C, H, W]");
        }
        input_name_ = in->name();
        shape_ = input_;
    }

    void read_output() {
        std::string names;
        for (const auto& v : graph().output())
            names += (names.empty() ? "'" : ", '") + v.name() + "'";
        if (graph().output_size() != 1)
            fail(path_, ": the graph has ", graph().output_size(), " outputs", names.empty() ? "" : " (",
                 names, names.empty() ? "" : ")", "; Mimic imports models with one output");
        output_name_ = graph().output(0).name();
    }

    /// The graph's nodes with their constants (initializers, Constant nodes, Identity of a constant) taken
    /// out and the identities of inference (Identity, Dropout, one-input Concat or Sum) bypassed: their
    /// readers read their input instead.
    void make_graph() {
        std::map<std::string, std::string> alias;
        std::set<std::string> written;
        auto source = [&](const std::string& s) {
            const auto it = alias.find(s);
            return it == alias.end() ? s : it->second;
        };
        for (int i = 0; i < graph().node_size(); ++i) {
            const onnx::NodeProto& n = graph().node(i);
            GraphNode g;
            g.proto = &n;
            g.where = node_where(i, n);
            if (n.output_size() < 1) fail(g.where, ": has no output");
            for (const auto& s : n.input())
                g.in.push_back(source(s));
            g.out.assign(n.output().begin(), n.output().end());
            const std::string& op = n.op_type();
            if (op == "Constant") {
                const auto* a = find_attr(n, "value");
                if (!a || !a->has_t())
                    fail(g.where, ": only Constant nodes with a tensor 'value' are supported");
                consts_[g.out[0]] = to_const(a->t(), g.where);
            } else if (op == "Identity" && g.input_size() == 1 && constant(g.in[0])) {
                consts_[g.out[0]] = *constant(g.in[0]);
            } else if (Const c; g.out.size() == 1 && fold_const(n, const_inputs(g), c, g.where)) {
                consts_[g.out[0]] = std::move(c);
            } else if ((op == "Identity" || op == "Dropout" || op == "Concat" || op == "Sum") &&
                       g.input_size() >= 1 && (op == "Dropout" || g.input_size() == 1)) {
                if (op == "Dropout") check_dropout(g);
                alias[g.out[0]] = g.in[0];
            } else {
                check_order(g, written);
                nodes_.push_back(std::move(g));
            }
        }
        output_name_ = source(output_name_);
    }

    /// The constants node g reads (nullptr for an input that is absent or no constant).
    std::vector<const Const*> const_inputs(const GraphNode& g) const {
        std::vector<const Const*> c;
        for (const auto& s : g.in)
            c.push_back(constant(s));
        return c;
    }

    /// Every tensor node g reads is a constant, the input or written by an earlier node, and g writes only
    /// new tensors (ONNX's topological order, which the decomposition relies on).
    void check_order(const GraphNode& g, std::set<std::string>& written) const {
        for (const auto& s : g.in)
            if (is_data(s) && s != input_name_ && !written.count(s))
                fail(g.where, ": reads '", s,
                     "', which no earlier node writes (nodes must be in topological order)");
        for (const auto& s : g.out)
            if (!written.insert(s).second || s == input_name_)
                fail(g.where, ": writes '", s, "' a second time");
    }

    void check_dropout(const GraphNode& n) const {
        if (n.input_size() >= 3 && !n.input(2).empty()) {
            const Const* t = constant(n.input(2));
            if (!t || (t->size() == 1 && t->v[0] != 0))
                fail(n.where, ": training_mode must be a constant false (Mimic imports inference graphs)");
        }
    }

    /// The shape computations PyTorch writes for x.view(x.size(0), -1), expand_as and the like (Shape of a
    /// data tensor, then Gather, Unsqueeze, Squeeze, Concat, Slice, Cast, Add/Sub/Mul/Div,
    /// ConstantOfShape over its values and constants) leave the graph, so that a Shape is no reader of
    /// the tensor it measures; the Reshape or Expand that reads one evaluates it (sym_of) with the batch
    /// size as one symbol N and every other dimension as the walk found it.
    void fold_shapes() {
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
    const Sym* sym_of(const std::string& s, Sym& tmp) {
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
    Sym shape_of(const GraphNode& n) const {
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
    Sym eval_shape_op(const GraphNode& n, const std::vector<Sym>& a) const {
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
                if (i.batch || k < 0 || k >= len)
                    fail(w, ": index ", sym_text(a[1]), " out of ", sym_text(a[0]));
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
            if (attr_int(n, "axis", 0) != 0)
                fail(w, ": only Concat over axis 0 of shape vectors is supported");
            for (const Sym& x : a)
                r.v.insert(r.v.end(), x.v.begin(), x.v.end());
        } else {
            return sym_binary(n, a);
        }
        return r;
    }

    /// ConstantOfShape([k]) with k known: a vector of k copies of its value (as in -1 tests of shape
    /// vectors).
    static Sym constant_of_shape(const GraphNode& n, const Sym& shape) {
        if (shape.v.size() != 1 || shape.v[0].batch || shape.v[0].k < 0 || shape.v[0].k > 64)
            fail(n.where,
                 ": only a 1-D result of known length up to 64 (a shape vector) is supported (shape ",
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
    Sym sym_binary(const GraphNode& n, const std::vector<Sym>& a) const {
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

    /// Exact GELU as exporters write it (Div(x, √2) or Mul(x, 1/√2), Erf, Add 1, then the product of x,
    /// that and 0.5 in any order) and the option-A shortcut of CIFAR ResNets (x[:, :, ::2, ::2] as one or
    /// two Slice nodes, then a Pad of zero channels) become one node each, matched by their constants'
    /// values; their inner tensors must have no other reader.
    void fuse_patterns() {
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
            if (nodes_[i].op_type() == "Erf" && match_gelu(int(i), pt, used, x)) {
                op = kGeluOp;
            } else if (nodes_[i].op_type() == "Pad" && match_shortcut(int(i), pt, used, x, pads)) {
                op = kShortcutOp;
            } else {
                continue;
            }
            const int last = *std::max_element(used.begin(), used.end());
            onnx::NodeProto& proto = fused_protos_.emplace_back();
            proto.set_op_type(op);
            proto.set_name(nodes_[std::size_t(last)].proto->name());
            if (!pads.empty()) {
                auto* a = proto.add_attribute();
                a->set_name("pads");
                a->set_type(onnx::AttributeProto::INTS);
                for (auto v : pads)
                    a->add_ints(v);
            }
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

    struct Pattern {
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

    /// s is a scalar constant equal to v (to float precision).
    bool scalar_is(const std::string& s, double v) const {
        const Const* c = constant(s);
        return c && c->size() == 1 && std::fabs(c->v[0] - v) <= 1e-6 * std::max(1.0, std::fabs(v));
    }
    /// Node m is a binary op whose inputs are t and another; that other (empty: not so).
    std::string other_input(const GraphNode& m, const char* op, const std::string& t) const {
        if (m.op_type() != op || m.input_size() != 2) return {};
        return m.input(0) == t ? m.input(1) : m.input(1) == t ? m.input(0) : std::string();
    }

    /// Erf node e inside x·0.5·(1 + erf(x/√2)): the pattern's nodes in used, x.
    bool match_gelu(int e, const Pattern& pt, std::vector<int>& used, std::string& x) const {
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
            const std::string o2 =
                other_input(nodes_[std::size_t(m2)], "Mul", nodes_[std::size_t(m1)].output(0));
            used.push_back(m2);
            return o == x ? scalar_is(o2, 0.5) : o2 == x;
        }
        const int h = pt.sole_writer(o); // (x·0.5)·s
        if (h < 0) return false;
        used.push_back(h);
        const std::string o2 = other_input(nodes_[std::size_t(h)], "Mul", x);
        return !o2.empty() && scalar_is(o2, 0.5);
    }

    /// Pad node p of zero channels after x[:, :, ::2, ::2] (one or two Slice nodes, steps 2 on H and W from
    /// 0 to the end): the nodes in used, x, and the channels padded before and after.
    bool match_shortcut(int p, const Pattern& pt, std::vector<int>& used, std::string& x,
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
    bool halving_slice(const GraphNode& s, std::set<std::int64_t>& axes) const {
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

    /// A Softmax or LogSoftmax over the classes at the graph's output is dropped with a notice: the member's
    /// logits are then the tensor before it (log-probabilities up to a constant per row: the same softmax
    /// at every temperature).
    void drop_output_softmax() {
        for (auto& n : nodes_) {
            if (!n.live || n.out[0] != output_name_) continue;
            if (n.op_type() != "Softmax" && n.op_type() != "LogSoftmax") return;
            const auto axis = attr_int(n, "axis", opset_ >= 13 ? -1 : 1);
            if (axis != 1 && axis != -1)
                fail(n.where, ": axis ", axis, " is not the class axis of [N, classes]");
            if (n.in.empty() || !is_data(n.in[0])) fail(n.where, ": has no data input");
            n.live = false;
            output_name_ = n.in[0];
            if (log::world_rank() == 0)
                log::warn(
                    n.where, ": dropped at the output; the imported member's logits are the values before ",
                    "it (log-probabilities up to a constant per row, the same softmax at every temperature)");
            return;
        }
    }

    /// DenseNet as torchvision writes it: each dense layer reads Concat(x0, n1, ..., nk) of every earlier
    /// feature map. A Concat whose leading inputs are exactly another (earlier) Concat's inputs, over the
    /// same axis, reads that Concat instead: Concat(x0, n1, n2) -> Concat(Concat(x0, n1), n2), so that
    /// each dense layer is one cat(|layer) block.
    void rewrite_dense_concats() {
        std::map<std::vector<std::string>, std::string> seen; // axis, then a Concat's inputs -> its output
        for (auto& n : nodes_) {
            if (n.op_type() != "Concat") continue;
            std::vector<std::string> key{std::to_string(attr_int(n, "axis", 0))};
            key.insert(key.end(), n.in.begin(), n.in.end());
            for (std::size_t k = key.size() - 1; k >= 3; --k) {
                const auto it = seen.find(std::vector<std::string>(key.begin(), key.begin() + long(k)));
                if (it == seen.end()) continue;
                n.in.assign(1, it->second);
                n.in.insert(n.in.end(), key.begin() + long(k), key.end());
                break;
            }
            seen[key] = n.out[0];
        }
    }

    bool is_data(const std::string& name) const {
        return !name.empty() && !constant(name) && !shape_node_of_.count(name);
    }
    std::vector<std::string> data_inputs(const GraphNode& n) const {
        std::vector<std::string> d;
        for (const auto& s : n.in)
            if (is_data(s)) d.push_back(s);
        return d;
    }

    /// Drops the nodes no graph output depends on, then lists the readers of every tensor.
    void index_consumers() {
        std::set<std::string> needed{output_name_};
        for (auto it = nodes_.rbegin(); it != nodes_.rend(); ++it) {
            bool used = false;
            for (const auto& o : it->out)
                used = used || needed.count(o);
            it->live = it->live && used;
            if (it->live) needed.insert(it->in.begin(), it->in.end());
        }
        for (std::size_t i = 0; i < nodes_.size(); ++i)
            if (nodes_[i].live)
                for (const auto& s : data_inputs(nodes_[i]))
                    readers_[s].push_back(int(i));
    }
    const std::vector<int>& readers(const std::string& t) const {
        static const std::vector<int> none;
        const auto it = readers_.find(t);
        return it == readers_.end() ? none : it->second;
    }

    /// The join of the paths that fork at tensor t (read by `cons`): the first node, in topological order,
    /// that every path reaches (the immediate post-dominator of the fork in a series-parallel graph).
    int join_of(const std::string& t, std::vector<int> cons) const {
        std::sort(cons.begin(), cons.end());
        cons.erase(std::unique(cons.begin(), cons.end()), cons.end());
        std::vector<int> hits(nodes_.size(), 0);
        for (int c : cons) {
            std::vector<char> seen(nodes_.size(), 0);
            std::vector<int> todo{c};
            while (!todo.empty()) {
                const int x = todo.back();
                todo.pop_back();
                if (seen[std::size_t(x)]) continue;
                seen[std::size_t(x)] = 1;
                ++hits[std::size_t(x)];
                for (const auto& o : nodes_[std::size_t(x)].out)
                    for (int y : readers(o))
                        todo.push_back(y);
            }
        }
        for (std::size_t i = std::size_t(cons.front()); i < nodes_.size(); ++i)
            if (hits[i] == int(cons.size())) return int(i);
        fail(path_, ": the paths from tensor '", t, "' never join again (the graph is not series-parallel)");
    }

    /// The chain of nodes from tensor t (the graph's input, or a fork) into `out`: node `first` (a reader
    /// of t; -1: t's only reader), then on, each fork becoming one block, until the tensor reached is read
    /// by node `stop` alone (the join of the block this chain is a branch of; -1: the graph's output).
    /// Returns that tensor.
    std::string chain(const std::string& t, int first, int stop, std::vector<Pending>& out) {
        layers_ = &out, cur_ = t, fresh_param_ = false, pad_ = -1, dims_.clear();
        for (int next = first;; next = -1) {
            if (next < 0) {
                if (stop < 0 && cur_ == output_name_) break;
                const auto& cons = readers(cur_);
                if (cons.empty())
                    fail(path_, ": tensor '", cur_, "' is read by no node and is not the graph's output");
                if (stop >= 0 && std::count(cons.begin(), cons.end(), stop) == long(cons.size())) break;
                if (cons.size() > 1) {
                    fork(cons, stop);
                    continue;
                }
                next = cons[0];
            }
            const GraphNode& n = nodes_[std::size_t(next)];
            if (data_inputs(n).size() > 1 || (stop >= 0 && next > stop))
                fail(n.where,
                     ": joins paths that do not fork from one tensor (the graph is not series-parallel)");
            visit(n);
        }
        if (pad_ >= 0) pad_not_folded();
        need_layer_shape(path_ + ": tensor '" + cur_ + "'");
        return cur_;
    }

    /// The paths that fork at cur_ (read by `cons`), up to their join, as one block; cur_ becomes the join's
    /// output. A path that is the fork tensor itself is the identity (an empty branch).
    void fork(const std::vector<int>& cons, int stop) {
        if (pad_ >= 0) pad_not_folded();
        need_layer_shape(path_ + ": tensor '" + cur_ + "', read by several nodes,");
        const std::string t = cur_;
        const int J = join_of(t, cons);
        const GraphNode& j = nodes_[std::size_t(J)];
        if (stop >= 0 && J >= stop)
            fail(j.where, ": joins paths from tensor '", t, "' that fork inside the block joined at",
                 nodes_[std::size_t(stop)].where.substr(path_.size() + 1),
                 " (the graph is not series-parallel)");
        Pending b;
        b.kind = nn::LayerKind::Block;
        b.join = join_kind(j, t);
        const std::vector<std::string> ins = data_inputs(j);
        b.branches.resize(ins.size());
        std::vector<bool> done(ins.size(), false);
        const Walk saved = save();
        bool flat = false;
        for (int c : cons) {
            std::vector<Pending> branch;
            restore(saved);
            const std::string end = c == J ? t : chain(t, c, J, branch);
            flat = flat || !image_;
            std::size_t p = 0;
            while (p < ins.size() && (done[p] || ins[p] != end))
                ++p;
            if (p == ins.size()) fail(j.where, ": reads '", end, "' fewer times than paths reach it");
            b.branches[p] = std::move(branch);
            done[p] = true;
        }
        for (std::size_t p = 0; p < ins.size(); ++p)
            if (!done[p])
                fail(j.where, ": its input '", ins[p], "' does not come from tensor '", t,
                     "', where the other paths fork (the graph is not series-parallel)");
        restore(saved);
        image_ = saved.image && (b.join == nn::Join::Mul || !flat);
        push_block(std::move(b), j.where);
        reach(j.output(0));
    }

    /// How node j joins the paths from tensor t: Add or Sum -> res, Concat over channels -> cat, Mul of t
    /// by a path from it -> gate.
    nn::Join join_kind(const GraphNode& j, const std::string& t) const {
        const std::string& op = j.op_type();
        if (op == "Add" || op == "Sum") return nn::Join::Add;
        if (op == "Concat") {
            const auto axis = attr_int(j, "axis", 0);
            if (axis == 1 || (image_ && axis == -3) || (!image_ && axis == -1)) return nn::Join::Concat;
            fail(j.where, ": concatenates over axis ", axis, "; only the channel axis 1 joins paths");
        }
        const auto d = data_inputs(j);
        if (op == "Mul" && d.size() == 2 && (d[0] == t) != (d[1] == t)) return nn::Join::Mul;
        fail(j.where, ": joins the paths from tensor '", t,
             "'; only Add, Sum, Concat over channels and Mul of ",
             "that tensor by one path from it (a gate) join paths");
    }

    /// A block as its token; gate(sigmoid) is silu and gate(hardsigmoid) hardswish (x * f(x)).
    void push_block(Pending b, const std::string& where) {
        if (b.join == nn::Join::Mul) {
            std::vector<Pending> g = std::move(b.branches[b.branches[0].empty() ? 1 : 0]);
            const auto k = g.size() == 1 ? g[0].kind : nn::LayerKind::Block;
            if (k == nn::LayerKind::Sigmoid || k == nn::LayerKind::HardSigmoid) {
                Pending p;
                p.kind = k == nn::LayerKind::Sigmoid ? nn::LayerKind::SiLU : nn::LayerKind::HardSwish;
                p.token = nn::kind_name(p.kind);
                return push(std::move(p), where);
            }
            b.branches.assign(1, std::move(g));
        }
        if (b.join == nn::Join::Add && b.branches.size() == 2 && b.branches[0].empty())
            std::swap(b.branches[0], b.branches[1]); // res(A): A first, the identity second
        b.token = block_token(b);
        push(std::move(b), where);
    }

    const Const* constant(const std::string& name) const {
        auto it = consts_.find(name);
        return it == consts_.end() ? nullptr : &it->second;
    }
    const Const& need_const(const std::string& name, const std::string& where, const char* what) const {
        const Const* c = constant(name);
        if (!c)
            fail(where, ": its ", what, " '", name,
                 "' is not a constant (initializer); Mimic imports fixed weights");
        return *c;
    }
    void need_cur(const GraphNode& n, const std::string& where) const {
        if (n.input_size() < 1 || n.input(0) != cur_)
            fail(where, ": takes '", n.input_size() ? n.input(0) : std::string(),
                 "' instead of the previous layer's output '", cur_,
                 "'; Mimic imports a single chain of layers");
    }

    void push(Pending p, const std::string& where) {
        try {
            shape_ = nn::infer_shape(nn::parse_spec(p.token).at(0), shape_);
        } catch (const Error& e) {
            fail(where, ": ", e.what());
        }
        fresh_param_ = p.kind == nn::LayerKind::Dense || p.kind == nn::LayerKind::Bottleneck ||
                       p.kind == nn::LayerKind::Conv;
        layers_->push_back(std::move(p));
    }
    void advance(const GraphNode& n) { reach(n.output(0)); }
    /// cur_ becomes t, whose shape a Shape node may read.
    void reach(const std::string& t) {
        cur_ = t;
        tensor_dims_[t] = logical();
    }

    void visit(const GraphNode& n) {
        const std::string& where = n.where;
        const std::string& op = n.op_type();
        if (pad_ >= 0 && op != "AveragePool" && op != "Conv") pad_not_folded();
        const bool view_op =
            op == "Flatten" || op == "Reshape" || op == "Squeeze" || op == "Unsqueeze" || op == "Expand";
        if (!view_op) need_layer_shape(where);
        if (op == "Relu" || op == "Sigmoid" || op == "Tanh") {
            need_cur(n, where);
            Pending p;
            p.kind = op == "Relu"      ? nn::LayerKind::ReLU
                     : op == "Sigmoid" ? nn::LayerKind::Sigmoid
                                       : nn::LayerKind::Tanh;
            p.token = op == "Relu" ? "relu" : op == "Sigmoid" ? "sigmoid" : "tanh";
            push(std::move(p), where);
            advance(n);
            return;
        }
        if (op == "Flatten" || op == "Reshape" || op == "Squeeze" || op == "Unsqueeze") return view(n);
        if (op == "Expand") return expand(n);
        if (op == "Gemm") return gemm(n, where);
        if (op == "MatMul") return matmul(n, where);
        if (op == "Add") return add(n, where);
        if (op == "Conv") return conv(n, where);
        if (op == "MaxPool" || op == "AveragePool") return pool(n, where, op == "AveragePool");
        if (op == "Pad") return pad(n, where);
        if (op == "Clip" || op == "HardSigmoid" || op == "HardSwish" || op == "GlobalAveragePool" ||
            op == "ReduceMean" || op == "LeakyRelu" || op == "Elu")
            return unary(n, where);
        if (op == kGeluOp || op == kShortcutOp) return fused(n, where);
        if (op == "BatchNormalization") return batchnorm(n, where);
        if (op == "Softmax" || op == "LogSoftmax")
            fail(where, ": supported only as the graph's output (dropped: Mimic's members give logits)");
        if (op == "Mul" || op == "Add" || op == "Sum" || op == "Concat")
            fail(where, ": ", op, " is supported as the join of paths that fork from one tensor",
                 op == "Add" ? " or as the bias of a MatMul, Gemm or Conv" : "",
                 op == "Mul" || op == "Add" || op == "Concat" ? " or on shape values (from Shape nodes)" : "",
                 ", not on one path");
        if (op == "Slice")
            fail(where,
                 ": Slice is supported only on shape values (computed from Shape nodes and constants) "
                 "and as x[:, :, ::2, ::2] followed by a Pad of zero channels (a CIFAR ResNet's option-A "
                 "shortcut)");
        if (op == "Erf") fail(where, ": Erf is supported only inside exact GELU, x·0.5·(1 + erf(x/√2))");
        if (op == "Shape" || op == "Gather" || op == "Cast" || op == "Sub" || op == "Div" ||
            op == "ConstantOfShape")
            fail(where, ": ", op,
                 " is supported only on shape values (computed from Shape nodes and constants)");
        fail(where, ": unsupported operator"); // unreachable: check_operators() listed them
    }

    /// The per-sample ONNX shape of cur_.
    std::vector<std::int64_t> logical() const {
        if (!dims_.empty()) return dims_;
        if (image_) return {shape_.c, shape_.h, shape_.w};
        return {shape_.size()};
    }

    /// cur_ is a flat [D] viewed as [D, 1, 1] (y.view(b, c, 1, 1) of an excitation), as a gate reads it.
    bool flat_gate_view() const {
        return !image_ && dims_.size() == 3 && dims_[0] == shape_.size() && dims_[1] == 1 && dims_[2] == 1;
    }

    /// A layer, a fork or the end of a path needs cur_ as [C, H, W] or [D] (or a flat gate view); another
    /// pending view is refused.
    void need_layer_shape(const std::string& where) const {
        if (dims_.empty() || flat_gate_view()) return;
        fail(where, ": reads '", cur_, "' of shape [N, ", dims_text(dims_).substr(1),
             " left by a Reshape, Squeeze or Unsqueeze; Mimic's layers take [N, C, H, W] or [N, D]");
    }

    /// cur_ becomes n's output, of per-sample shape d (the same values in the same order): [D] flattens,
    /// [C, H, W] as the layers before is the tensor as it is, and so is [D, 1, 1] of a flat tensor (a gate
    /// broadcasts it the same); any other shape waits for the next Reshape, Squeeze or Unsqueeze.
    void set_view(const std::vector<std::int64_t>& d, const GraphNode& n) {
        std::int64_t size = 1;
        for (auto x : d)
            size *= x;
        MIMIC_REQUIRE(size == shape_.size(), n.where, ": internal: a view of ", size, " values per row from ",
                      shape_.size());
        dims_.clear();
        const bool same_image = image_ && d == std::vector<std::int64_t>{shape_.c, shape_.h, shape_.w};
        if (d.size() == 1 && image_) {
            Pending p;
            p.kind = nn::LayerKind::Flatten;
            p.token = "flatten";
            push(std::move(p), n.where);
            image_ = false;
        } else if (d.size() != 1 && !same_image) {
            dims_ = d; // [D, 1, 1] of a flat tensor stays too: a gate broadcasts it as the flat [D]
        }
        advance(n);
    }

    /// Flatten (axis 1), Reshape to a constant or computed target, Squeeze and Unsqueeze (axes as an
    /// attribute before opset 13, an input from 13 on): views of the same values.
    void view(const GraphNode& n) {
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
        std::vector<std::int64_t> axes = attr_ints(n, "axes");
        if (n.input_size() > 1 && !n.input(1).empty()) {
            const auto& v = need_const(n.input(1), n.where, "axes").v;
            axes.assign(v.begin(), v.end());
        }
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
    std::vector<std::int64_t> reshape_target(const GraphNode& n, const std::vector<std::int64_t>& L) {
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
        if (infer >= 0 && known > 0 && shape_.size() % known == 0)
            d[std::size_t(infer)] = shape_.size() / known;
        std::int64_t size = 1;
        for (auto x : d)
            size *= x;
        if (size != shape_.size() || (!b.batch && b.k == -1 && infer >= 0))
            fail(n.where, ": reshape to ", text, " does not keep ", shape_.size(),
                 " values per row (input [N, ", dims_text(L).substr(1), ")");
        return d;
    }

    /// Expand (expand_as of a gate): the same values where every reader is a Mul, which broadcasts them
    /// alike, and the target only repeats dimensions of size 1.
    void expand(const GraphNode& n) {
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

    void gemm(const GraphNode& n, const std::string& where) {
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
                p.W[size_t(r * out + c)] =
                    alpha * (transB ? B.v[size_t(c * in + r)] : B.v[size_t(r * out + c)]);
        p.b.assign(size_t(out), 0.0);
        if (n.input_size() >= 3 && !n.input(2).empty()) {
            const Const& C = need_const(n.input(2), where, "bias C");
            add_bias(p, C, beta, where, false);
        }
        push(std::move(p), where);
        advance(n);
    }

    void matmul(const GraphNode& n, const std::string& where) {
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
        push(std::move(p), where);
        advance(n);
    }

    /// b += scale * C, where C broadcasts to the layer's output ([out] / [1, out] for dense, [F, 1, 1] /
    /// [1, F, 1, 1] for conv, or a scalar).
    void add_bias(Pending& p, const Const& C, double scale, const std::string& where, bool conv) {
        std::vector<std::int64_t> d = C.dims;
        while (!d.empty() && d.front() == 1 && std::int64_t(d.size()) > (conv ? 3 : 1))
            d.erase(d.begin());
        const bool scalar = C.size() == 1;
        const bool ok = scalar || (conv ? (d.size() == 3 && d[0] == p.out && d[1] == 1 && d[2] == 1)
                                        : (d.size() == 1 && d[0] == p.out));
        if (!ok)
            fail(where, ": bias of shape ", dims_text(C.dims), " does not broadcast per output unit (", p.out,
                 conv ? " filters)" : " units)");
        if (p.b.empty()) p.b.assign(size_t(p.out), 0.0);
        for (int f = 0; f < p.out; ++f)
            p.b[size_t(f)] += scale * C.v[scalar ? 0 : size_t(f)];
    }

    void add(const GraphNode& n, const std::string& where) {
        if (n.input_size() != 2) fail(where, ": expected 2 inputs");
        const int data = n.input(0) == cur_ ? 0 : n.input(1) == cur_ ? 1 : -1;
        if (data < 0) fail(where, ": neither input is the previous layer's output '", cur_, "'");
        if (!fresh_param_)
            fail(where, ": Add is supported only as the bias right after a MatMul, Gemm or Conv");
        const Const& C = need_const(n.input(1 - data), where, "addend");
        Pending& p = layers_->back();
        add_bias(p, C, 1.0, where, p.kind == nn::LayerKind::Conv);
        if (p.kind == nn::LayerKind::Bottleneck) {
            p.kind = nn::LayerKind::Dense;
            p.token = "dense:" + std::to_string(p.out);
        }
        advance(n);
    }

    void conv(const GraphNode& n, const std::string& where) {
        need_cur(n, where);
        if (!image_) fail(where, ": input is not 4-D [N, C, H, W]");
        if (n.input_size() < 2) fail(where, ": has no weight input");
        const Const& Wc = need_const(n.input(1), where, "weight");
        if (Wc.dims.size() != 4)
            fail(where, ": weight has shape ", dims_text(Wc.dims), ", expected [F, C, K, K]");
        // C: the channels of one group (the input's / G).
        const std::int64_t F = Wc.dims[0], C = Wc.dims[1], KH = Wc.dims[2], KW = Wc.dims[3];
        const std::int64_t G = attr_int(n, "group", 1);
        if (G < 1 || shape_.c % G != 0 || F % G != 0)
            fail(where, ": group ", G, " does not divide the input's ", shape_.c, " channels and ", F,
                 " filters");
        const auto dil = attr_ints(n, "dilations");
        if (!all_equal(dil, 1)) fail(where, ": dilations ", dims_text(dil), " are not supported (only 1)");
        if (KH != KW) fail(where, ": kernel ", KH, "x", KW, " is not square");
        if (C * G != shape_.c)
            fail(where, ": weight takes ", C, " channels per group (", G, " groups) but the input has ",
                 shape_.c);
        const auto ks = attr_ints(n, "kernel_shape");
        if (!ks.empty() && !all_equal(ks, KH))
            fail(where, ": kernel_shape ", dims_text(ks), " does not match the weight");
        const auto st = attr_ints(n, "strides");
        const std::int64_t S = st.empty() ? 1 : st[0];
        if (!all_equal(st, S)) fail(where, ": strides ", dims_text(st), " differ between height and width");
        const std::string auto_pad = attr_string(n, "auto_pad", "NOTSET");
        std::int64_t P = 0;
        if (auto_pad == "NOTSET") {
            const auto pads = attr_ints(n, "pads");
            P = pads.empty() ? 0 : pads[0];
            if (!all_equal(pads, P)) fail(where, ": pads ", dims_text(pads), " are not symmetric");
        } else if (auto_pad == "VALID") {
            P = 0;
        } else if ((auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") && S == 1 && KH % 2 == 1) {
            P = KH / 2;
        } else {
            fail(where, ": auto_pad ", auto_pad, " with kernel ", KH, " and stride ", S,
                 " is not supported (use explicit symmetric pads)");
        }
        P += pad_ > 0 ? pad_ : 0; // a zero Pad right before: more zero padding
        pad_ = -1;
        Pending p;
        p.kind = nn::LayerKind::Conv;
        p.out = int(F);
        p.token = "conv:" + std::to_string(F) + "x" + std::to_string(KH) +
                  (S != 1 ? "s" + std::to_string(S) : "") + "p" + std::to_string(P) +
                  (G != 1 ? "g" + std::to_string(G) : "");
        const std::int64_t K = KH;
        p.W.resize(size_t(F * C * K * K));
        for (std::int64_t f = 0; f < F; ++f)
            for (std::int64_t c = 0; c < C; ++c)
                for (std::int64_t kh = 0; kh < K; ++kh)
                    for (std::int64_t kw = 0; kw < K; ++kw)
                        p.W[size_t(((c * K + kh) * K + kw) * F + f)] =
                            Wc.v[size_t(((f * C + c) * K + kh) * K + kw)];
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
    void pool(const GraphNode& n, const std::string& where, bool avg) {
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
        if (ceil && avg)
            fail(where, ": ceil_mode = 1 on a ", shape_.h, "x", shape_.w,
                 " input is not supported for AveragePool");
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
    void pad(const GraphNode& n, const std::string& where) {
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
    void fused(const GraphNode& n, const std::string& where) {
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
    double clip_bound(const GraphNode& n, int i, const std::string& where, double none) const {
        if (n.input_size() <= i || n.input(i).empty()) return none;
        const Const& c = need_const(n.input(i), where, i == 1 ? "min" : "max");
        if (c.size() != 1) fail(where, ": its bound '", n.input(i), "' is not a scalar");
        return c.v[0];
    }

    /// Clip(0, 6) as relu6, HardSigmoid(alpha 1/6, beta 1/2), HardSwish, LeakyRelu and Elu (alpha as the
    /// token's argument) and global pooling.
    void unary(const GraphNode& n, const std::string& where) {
        need_cur(n, where);
        const std::string& op = n.op_type();
        Pending p;
        if (op == "Clip") {
            const double lo = clip_bound(n, 1, where, -HUGE_VAL), hi = clip_bound(n, 2, where, HUGE_VAL);
            if (lo != 0 || hi != 6)
                fail(where, ": Clip(", lo, ", ", hi, ") is not supported (only Clip(0, 6))");
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
            p.token = std::string(elu ? "elu:" : "leakyrelu:") +
                      float_text(attr_float(n, "alpha", elu ? 1.0 : 0.01));
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
    void global_pool(const GraphNode& n, const std::string& where) {
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
                if (!m || m->op_type() != "ReduceMean" ||
                    reduce_axes(*m, keep ? 4 : 3) != std::vector{other} ||
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
        if (!keep) {
            Pending f;
            f.kind = nn::LayerKind::Flatten;
            f.token = "flatten";
            push(std::move(f), where);
            image_ = false;
        }
        advance(*last);
    }

    /// The axes of a ReduceMean (attribute, or input from opset 18) over a tensor of the given rank, sorted
    /// and non-negative.
    std::vector<std::int64_t> reduce_axes(const GraphNode& n, std::int64_t rank) const {
        auto axes = attr_ints(n, "axes");
        if (n.input_size() > 1 && !n.input(1).empty()) {
            const auto& v = need_const(n.input(1), n.where, "axes").v;
            axes.assign(v.begin(), v.end());
        }
        for (auto& a : axes)
            a += a < 0 ? rank : 0;
        std::sort(axes.begin(), axes.end());
        return axes;
    }

    /// BatchNormalization (inference): folded into the Conv, Gemm or MatMul right before it, or else a bn
    /// layer with these statistics (an epsilon other than bn's moves into the variance).
    void batchnorm(const GraphNode& n, const std::string& where) {
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
        if (p.kind == nn::LayerKind::Bottleneck) {
            p.kind = nn::LayerKind::Dense;
            p.token = "dense:" + std::to_string(p.out);
        }
        advance(n);
    }

    /// values into buf at tensor t (a parameter or state tensor of the model), checking the size.
    void copy_into(const nn::ParamTensor& t, const std::vector<double>& values,
                   std::vector<float>& buf) const {
        MIMIC_REQUIRE(t.size == std::int64_t(values.size()), path_, ": internal: ", t.name, " has ", t.size,
                      " values, the import built ", values.size());
        for (size_t k = 0; k < values.size(); ++k)
            buf[size_t(t.offset) + k] = float(values[k]);
    }

    /// The weights and bn statistics of `chain` into the model's host buffers: layer k of it is named
    /// prefix<k>.<kind>.<W|b|running_mean|running_var>, a block's branch j prefix<k>.<join>.b<j>.
    /// (block.hpp).
    void assign(const std::vector<Pending>& chain, const std::string& prefix, const nn::Model& model,
                std::vector<float>& host, std::vector<float>& state) const {
        for (size_t i = 0; i < chain.size(); ++i) {
            const Pending& l = chain[i];
            const std::string base = prefix + std::to_string(i) + ".";
            if (l.kind == nn::LayerKind::Block) {
                for (size_t j = 0; j < l.branches.size(); ++j)
                    assign(l.branches[j], base + nn::join_name(l.join) + ".b" + std::to_string(j) + ".",
                           model, host, state);
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

    static void to_device(const Vector& dst, const std::vector<float>& src) {
        if (!src.empty())
            Kokkos::deep_copy(dst,
                              Kokkos::View<const float*, Kokkos::LayoutRight, HostSpace,
                                           Kokkos::MemoryTraits<Kokkos::Unmanaged>>(src.data(), src.size()));
    }

    nn::Model build(ModelMeta* meta) {
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
            meta->data_fingerprint =
                "onnx:" + (slash == std::string::npos ? path_ : path_.substr(slash + 1)) +
                (model_.producer_name().empty()
                     ? ""
                     : " from " + model_.producer_name() + " " + model_.producer_version());
        }
        return model;
    }
};

// ------------------------------------------------------------------------------------------ export

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
        host_.resize(size_t(model.num_params()));
        if (!host_.empty())
            Kokkos::deep_copy(
                Kokkos::View<float*, Kokkos::LayoutRight, HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>(
                    host_.data(), host_.size()),
                model.params());
        state_.resize(size_t(model.num_state()));
        if (!state_.empty())
            Kokkos::deep_copy(
                Kokkos::View<float*, Kokkos::LayoutRight, HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>(
                    state_.data(), state_.size()),
                model.state());
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
    static void ints(onnx::NodeProto* n, const char* name, const std::vector<std::int64_t>& v) {
        auto* a = n->add_attribute();
        a->set_name(name);
        a->set_type(onnx::AttributeProto::INTS);
        for (auto x : v)
            a->add_ints(x);
    }
    static void float1(onnx::NodeProto* n, const char* name, float v) {
        auto* a = n->add_attribute();
        a->set_name(name);
        a->set_type(onnx::AttributeProto::FLOAT);
        a->set_f(v);
    }
    static void int1(onnx::NodeProto* n, const char* name, std::int64_t v) {
        auto* a = n->add_attribute();
        a->set_name(name);
        a->set_type(onnx::AttributeProto::INT);
        a->set_i(v);
    }
    void initializer(const std::string& name, const std::vector<std::int64_t>& dims, const float* data) {
        auto* t = g_->add_initializer();
        t->set_name(name);
        t->set_data_type(onnx::TensorProto::FLOAT);
        std::int64_t n = 1;
        for (auto d : dims)
            t->add_dims(d), n *= d;
        t->mutable_float_data()->Add(data, data + n);
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
        initializer("raw.scale", {}, &raw.scale);
        initializer("raw.mean", {D}, raw.mean.data());
        initializer("raw.std", {D}, raw.std.data());
        node("Mul", "raw.scaled", {cur_, "raw.scale"});
        node("Sub", "raw.centred", {cur_, "raw.mean"});
        node("Div", "raw.normalised", {cur_, "raw.std"});
        if (!image_) return;
        auto* t = g_->add_initializer();
        t->set_name("raw.shape");
        t->set_data_type(onnx::TensorProto::INT64);
        t->add_dims(4);
        for (std::int64_t v : {std::int64_t(-1), std::int64_t(in.c), std::int64_t(in.h), std::int64_t(in.w)})
            t->add_int64_data(v);
        node("Reshape", "raw.image", {cur_, "raw.shape"});
    }

    void flatten(const std::string& name) {
        int1(node("Flatten", name, {cur_}), "axis", 1);
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
            auto* n = node(avg ? "AveragePool" : "MaxPool", base, {x});
            ints(n, "kernel_shape", {l.kernel, l.kernel});
            ints(n, "strides", {l.stride, l.stride});
            if (l.pad > 0) ints(n, "pads", {l.pad, l.pad, l.pad, l.pad});
            if (avg) int1(n, "count_include_pad", l.count_pad ? 1 : 0);
            if (l.ceil) int1(n, "ceil_mode", 1);
            break;
        }
        case nn::LayerKind::GlobalAvgPool:
            node("GlobalAveragePool", base, {x});
            break;
        case nn::LayerKind::ReLU6: {
            const float lo = 0.0f, hi = 6.0f;
            initializer(base + ".min", {}, &lo);
            initializer(base + ".max", {}, &hi);
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
            float1(n, "alpha", 1.0f / 6.0f);
            float1(n, "beta", 0.5f);
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
            float1(n, "alpha", l.alpha);
            return;
        }
        const float sqrt2 = 1.41421356237309505f, one = 1.0f, half = 0.5f;
        initializer(base + ".sqrt2", {}, &sqrt2);
        initializer(base + ".one", {}, &one);
        initializer(base + ".half", {}, &half);
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
            initializer(t.name, t.shape, param(t.name));
        }
        for (const auto& t : model_.state_tensors())
            if (t.name.rfind(base + ".", 0) == 0) {
                initializer(t.name, t.shape, state_.data() + t.offset);
                inputs.push_back(t.name);
            }
        auto* n = node("BatchNormalization", base, inputs);
        float1(n, "epsilon", float(nn::BatchNorm::kEps));
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
                auto* t = g_->add_initializer();
                t->set_name(base + ".gate_shape");
                t->set_data_type(onnx::TensorProto::INT64);
                t->add_dims(4);
                for (std::int64_t v :
                     {std::int64_t(-1), std::int64_t(in_shape.c), std::int64_t(1), std::int64_t(1)})
                    t->add_int64_data(v);
                outs.back() = node("Reshape", base + ".gate_image", {cur_, t->name()})->output(0);
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
            int1(node("Flatten", base + ".b" + std::to_string(j) + ".flat", {cur_}), "axis", 1);
            outs[j] = cur_;
        }
        image_ = !flat;
        if (l.join == nn::Join::Concat)
            int1(node("Concat", base, outs), "axis", 1);
        else
            node(outs.size() == 2 ? "Add" : "Sum", base, outs);
    }

    void op(const std::string& base, const nn::LayerSpec& l) {
        switch (l.kind) {
        case nn::LayerKind::Dense:
        case nn::LayerKind::Bottleneck: {
            if (image_) flatten(base + ".flatten");
            const auto& W = model_.param_tensor(base + ".W");
            initializer(W.name, W.shape, param(W.name));
            if (l.kind == nn::LayerKind::Dense) {
                const auto& b = model_.param_tensor(base + ".b");
                initializer(b.name, b.shape, param(b.name));
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
            initializer(W.name, {F, C, K, K}, w.data());
            const auto& b = model_.param_tensor(base + ".b");
            initializer(b.name, b.shape, param(b.name));
            auto* n = node("Conv", base, {cur_, W.name, b.name});
            ints(n, "kernel_shape", {K, K});
            ints(n, "strides", {l.stride, l.stride});
            ints(n, "pads", {l.pad, l.pad, l.pad, l.pad});
            if (G != 1) int1(n, "group", G);
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
        case nn::LayerKind::ReLU:
            node("Relu", base, {cur_});
            break;
        case nn::LayerKind::Sigmoid:
            node("Sigmoid", base, {cur_});
            break;
        case nn::LayerKind::Tanh:
            node("Tanh", base, {cur_});
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

nn::Model import_onnx(const std::string& path, ModelMeta* meta) {
    GOOGLE_PROTOBUF_VERIFY_VERSION;
    return Importer(path).run(meta);
}

void export_onnx(const nn::Model& model, const std::string& path, const RawInput* raw,
                 const std::string& graph_name) {
    GOOGLE_PROTOBUF_VERIFY_VERSION;
    const onnx::ModelProto proto = Exporter(model, graph_name).build(raw);
    try {
        onnx::checker::check_model(proto);
    } catch (const std::exception& e) {
        fail(path, ": internal: the exported graph fails the ONNX checker: ", e.what());
    }
    const std::string partial = path + ".partial";
    {
        std::ofstream out(partial, std::ios::binary | std::ios::trunc);
        if (!out) fail(partial, ": cannot create the file");
        if (!proto.SerializeToOstream(&out) || !out.flush()) {
            out.close();
            remove_file(partial);
            fail(partial, ": write failed (disk full?)");
        }
    }
    rename_file(partial, path);
}

} // namespace mimic::io
