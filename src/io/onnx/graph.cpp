// The ONNX import's graph: the model parsed, its input and output checked, its nodes with constants taken out
// and inference identities bypassed, the output Softmax dropped, DenseNet's concatenations nested, readers.
#include "mimic/io/impl/onnx_import.hpp"

#include "mimic/core/error.hpp"
#include "mimic/core/log.hpp"

#include <algorithm>
#include <sstream>

namespace mimic::io::impl {

std::string Importer::node_where(int i, const onnx::NodeProto& n) const {
    std::ostringstream os;
    os << path_ << ": node " << i;
    if (!n.name().empty()) os << " '" << n.name() << "'";
    os << " (" << n.op_type() << ")";
    return os.str();
}

void Importer::load() {
    read_model_file(path_, model_);
    if (!model_.has_graph()) fail(path_, ": the ONNX model has no graph");
    std::int64_t opset = -1;
    for (const auto& o : model_.opset_import())
        if (o.domain().empty() || o.domain() == "ai.onnx") opset = o.version();
    if (opset < 0) fail(path_, ": the model imports no standard ONNX opset");
    if (opset < kOnnxMinImportOpset)
        fail(path_, ": opset ", opset, " is too old; export with opset ", kOnnxMinImportOpset, " or later");
    opset_ = opset;
}

void Importer::check_operators() const {
    static const std::set<std::string> supported = {
        "Gemm",      "MatMul",        "Add",         "Conv",
        "MaxPool",   "Relu",          "Sigmoid",     "Tanh",
        "Flatten",   "Reshape",       "Dropout",     "BatchNormalization",
        "Identity",  "Constant",      "AveragePool", "GlobalAveragePool",
        "Pad",       "Clip",          "HardSigmoid", "HardSwish",
        "Mul",       "Sum",           "Concat",      "ReduceMean",
        "Softmax",   "LogSoftmax",    "Shape",       "Gather",
        "Unsqueeze", "Squeeze",       "Slice",       "Cast",
        "Sub",       "Div",           "Expand",      "ConstantOfShape",
        "LeakyRelu", "Elu",           "Erf",         "Transpose",
        "Split",     "GlobalMaxPool", "ReduceMax",   "PRelu",
        "Softplus",  "Pow",           "Sqrt",        "LayerNormalization"};
    std::set<std::string> bad;
    for (const auto& n : graph().node()) {
        const bool std_domain = n.domain().empty() || n.domain() == "ai.onnx";
        if (!std_domain)
            bad.insert(n.domain() + "::" + n.op_type());
        else if (!supported.count(n.op_type()))
            bad.insert(n.op_type());
    }
    if (bad.empty()) return;
    std::string list;
    for (const auto& b : bad)
        list += (list.empty() ? "" : ", ") + b;
    fail(path_, ": unsupported operators: ", list);
}

void Importer::collect_initializers() {
    for (const auto& t : graph().initializer())
        consts_[t.name()] = to_const(t, path_);
}

void Importer::read_input() {
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
            fail(where, ": dimension ", k, " is not a fixed positive size (only the batch may be symbolic)");
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

void Importer::read_output() {
    std::string names;
    for (const auto& v : graph().output())
        names += (names.empty() ? "'" : ", '") + v.name() + "'";
    if (graph().output_size() != 1)
        fail(path_, ": the graph has ", graph().output_size(), " outputs", names.empty() ? "" : " (", names,
             names.empty() ? "" : ")", "; Mimic imports models with one output");
    output_name_ = graph().output(0).name();
}

/// The graph's nodes with their constants (initializers, Constant nodes, Identity of a constant) taken
/// out and the identities of inference (Identity, Dropout, one-input Concat or Sum) bypassed: their
/// readers read their input instead.
void Importer::make_graph() {
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
            if (!a || !a->has_t()) fail(g.where, ": only Constant nodes with a tensor 'value' are supported");
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
std::vector<const Const*> Importer::const_inputs(const GraphNode& g) const {
    std::vector<const Const*> c;
    for (const auto& s : g.in)
        c.push_back(constant(s));
    return c;
}

/// Every tensor node g reads is a constant, the input or written by an earlier node, and g writes only
/// new tensors (ONNX's topological order, which the decomposition relies on).
void Importer::check_order(const GraphNode& g, std::set<std::string>& written) const {
    for (const auto& s : g.in)
        if (is_data(s) && s != input_name_ && !written.count(s))
            fail(g.where, ": reads '", s,
                 "', which no earlier node writes (nodes must be in topological order)");
    for (const auto& s : g.out)
        if (!written.insert(s).second || s == input_name_) fail(g.where, ": writes '", s, "' a second time");
}

void Importer::check_dropout(const GraphNode& n) const {
    if (n.input_size() >= 3 && !n.input(2).empty()) {
        const Const* t = constant(n.input(2));
        if (!t || (t->size() == 1 && t->v[0] != 0))
            fail(n.where, ": training_mode must be a constant false (Mimic imports inference graphs)");
    }
}

/// A Softmax or LogSoftmax over the classes at the graph's output is dropped with a notice: the member's
/// logits are then the tensor before it (log-probabilities up to a constant per row: the same softmax
/// at every temperature).
void Importer::drop_output_softmax() {
    for (auto& n : nodes_) {
        if (!n.live || n.out[0] != output_name_) continue;
        if (n.op_type() != "Softmax" && n.op_type() != "LogSoftmax") return;
        const auto axis = attr_int(n, "axis", opset_ >= 13 ? -1 : 1);
        if (axis != 1 && axis != -1) fail(n.where, ": axis ", axis, " is not the class axis of [N, classes]");
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
void Importer::rewrite_dense_concats() {
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

/// Where the path to tensor t starts: back through nodes of one data input, one output and one reader, to
/// the first tensor with several readers (a fork) or a node that joins paths.
std::string Importer::path_origin(std::string t, const std::map<std::string, int>& nreaders,
                                  const std::map<std::string, int>& writer) const {
    for (;;) {
        const auto r = nreaders.find(t);
        const auto w = writer.find(t);
        if ((r != nreaders.end() && r->second > 1) || w == writer.end()) return t;
        const GraphNode& g = nodes_[std::size_t(w->second)];
        const auto d = data_inputs(g);
        if (d.size() != 1 || g.out.size() != 1) return t;
        t = d[0];
    }
}

/// Concatenations nested in one (PyTorch's exporter flattens cat([a, cat([b, c]), d]), as in Inception's
/// 3x3 branches, into one Concat of a, b, c, d): consecutive inputs whose paths start at a fork that no
/// other input's path starts at become a Concat of their own, before it (the same values: concatenation is
/// associative), so that each fork is joined by one node.
void Importer::nest_concats() {
    std::map<std::string, int> nreaders, writer;
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
        for (const auto& s : data_inputs(nodes_[i]))
            ++nreaders[s];
        for (const auto& o : nodes_[i].out)
            writer[o] = int(i);
    }
    std::vector<GraphNode> out; // copies: path_origin reads the nodes before each Concat
    for (const auto& old : nodes_) {
        GraphNode n = old;
        const std::size_t k = n.in.size();
        if (n.op_type() != "Concat" || k < 3 || data_inputs(n).size() != k) {
            out.push_back(std::move(n));
            continue;
        }
        std::vector<std::string> origin, in;
        for (const auto& t : n.in)
            origin.push_back(path_origin(t, nreaders, writer));
        for (std::size_t a = 0, b; a < k; a = b) {
            for (b = a + 1; b < k && origin[b] == origin[a];)
                ++b;
            const bool own =
                b - a >= 2 && b - a < k && std::count(origin.begin(), origin.end(), origin[a]) == long(b - a);
            if (!own) {
                in.insert(in.end(), n.in.begin() + long(a), n.in.begin() + long(b));
                continue;
            }
            onnx::NodeProto& proto = fused_protos_.emplace_back(*n.proto);
            proto.set_name(n.proto->name() + "/nested" + std::to_string(in.size()));
            GraphNode g = n;
            g.proto = &proto;
            g.in.assign(n.in.begin() + long(a), n.in.begin() + long(b));
            g.out = {n.out[0] + "/nested" + std::to_string(in.size())};
            in.push_back(g.out[0]);
            out.push_back(std::move(g));
        }
        n.in = std::move(in);
        out.push_back(std::move(n));
    }
    nodes_ = std::move(out);
}

bool Importer::is_data(const std::string& name) const {
    return !name.empty() && !constant(name) && !shape_node_of_.count(name);
}

std::vector<std::string> Importer::data_inputs(const GraphNode& n) const {
    std::vector<std::string> d;
    for (const auto& s : n.in)
        if (is_data(s)) d.push_back(s);
    return d;
}

/// Drops the nodes no graph output depends on, then lists the readers of every tensor.
void Importer::index_consumers() {
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

const std::vector<int>& Importer::readers(const std::string& t) const {
    static const std::vector<int> none;
    const auto it = readers_.find(t);
    return it == readers_.end() ? none : it->second;
}

const Const* Importer::constant(const std::string& name) const {
    auto it = consts_.find(name);
    return it == consts_.end() ? nullptr : &it->second;
}

const Const& Importer::need_const(const std::string& name, const std::string& where, const char* what) const {
    const Const* c = constant(name);
    if (!c)
        fail(where, ": its ", what, " '", name,
             "' is not a constant (initializer); Mimic imports fixed weights");
    return *c;
}

/// The axes of a Squeeze, Unsqueeze or ReduceMean: an attribute in older opsets, a constant input in newer.
std::vector<std::int64_t> Importer::axes_of(const GraphNode& n) const {
    std::vector<std::int64_t> axes = attr_ints(n, "axes");
    if (n.input_size() > 1 && !n.input(1).empty()) {
        const auto& v = need_const(n.input(1), n.where, "axes").v;
        axes.assign(v.begin(), v.end());
    }
    return axes;
}

} // namespace mimic::io::impl
