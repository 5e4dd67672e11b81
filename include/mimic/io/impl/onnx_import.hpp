// The internals of the ONNX import: shape values, constant folding, the layers being built, the graph's
// nodes and the Importer, whose passes and walk are defined by topic in src/io/onnx/*.cpp.
#pragma once

#include "mimic/io/impl/onnx_proto.hpp"
#include "mimic/io/model_file.hpp"
#include "mimic/io/onnx.hpp"
#include "mimic/nn/model.hpp"
#include "mimic/nn/spec.hpp"

#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace mimic::io::impl {

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

/// "[1, 2*N, 3]" (shape_values.cpp).
std::string sym_text(const Sym& s);

/// Folds node op of constant inputs in (ConstantOfShape, 1-D Concat, Reshape, Slice, Transpose, Cast, as
/// PyTorch writes the pads of F.pad) into out; false where it is no such node (const_fold.cpp).
bool fold_const(const onnx::NodeProto& n, const std::vector<const Const*>& in, Const& out,
                const std::string& where);

/// The operators of the nodes fuse_patterns() writes (no ONNX operator has a dot in its name).
inline constexpr const char* kGeluOp = "mimic.Gelu";
inline constexpr const char* kShortcutOp = "mimic.ShortcutA";
/// Layer normalisation as exporters write it before opset 17 (ReduceMean, Sub, Pow, ReduceMean, Add epsilon,
/// Sqrt, Div), with attributes axis and epsilon.
inline constexpr const char* kLayerNormOp = "mimic.LayerNorm";
/// One output of a Split (rewrite_splits()).
inline constexpr const char* kSplitPartOp = "mimic.SplitPart";

/// The shortest decimal text that reads back as the float v (a token's argument, e.g. leakyrelu:0.1).
std::string float_text(double v);
/// Whether op acts on each value alone (the activations and the fused GELU): it commutes with any reordering
/// of the values, so channels-last values and flattened ones pass through it.
bool elementwise_op(const std::string& op);
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
    explicit Importer(std::string path, const InputNorm* input = nullptr)
        : path_(std::move(path)), input_norm_(input) {}

    /// parse -> graph of nodes over tensors -> simplification passes -> series-parallel decomposition into
    /// a chain of layers and blocks -> the model with its weights (import.cpp).
    nn::Model run(ModelMeta* meta);

private:
    std::string path_;
    const InputNorm* input_norm_ = nullptr; ///< the rows the model will be given (import_onnx's `input`)
    onnx::ModelProto model_;
    std::map<std::string, Const> consts_;
    std::string cur_;    ///< name of the current activation tensor
    nn::Shape shape_;    ///< its per-sample shape
    bool image_ = false; ///< 4-D (N, C, H, W) rather than 2-D (N, D)
    nn::Shape input_;
    std::string input_name_, output_name_; ///< the graph's data input and (after the passes) its output
    std::int64_t opset_ = 0;
    std::vector<GraphNode> nodes_;                    ///< in the ONNX graph's (topological) order
    std::deque<onnx::NodeProto> fused_protos_;        ///< the nodes the passes wrote
    std::map<std::string, std::vector<int>> readers_; ///< tensor -> the live nodes reading it as data
    std::vector<Pending> top_;                        ///< the model's chain
    std::vector<Pending>* layers_ = &top_;            ///< the chain being built (the model, or a branch)
    bool fresh_param_ = false;  ///< cur_ is the direct output of layers_->back(), a parameter layer
    bool fresh_affine_ = false; ///< cur_ is the direct output of a bn that affine() made or an ln
    /// cur_ holds an image in [N, H, W, C] order (a Transpose with perm [0, 2, 3, 1]; dims_ is [H, W, C])
    /// until the Transpose back: layer norms, MatMuls as 1x1 convs, per-channel affines and activations.
    bool channels_last_ = false;
    /// Channels-last values flattened ([N, H*W*C], a Keras-style head): row_order_[i] is the ONNX feature
    /// of Mimic's flattened feature i (C, H, W order), applied to the rows of the next Gemm or MatMul's
    /// weight; only elementwise activations may come between. Empty otherwise.
    std::vector<std::int64_t> row_order_;
    int pad_ = -1;                       ///< padding of a Pad waiting for its Conv or AveragePool (-1: none)
    std::string pad_where_;              ///< that Pad node, for errors
    std::map<std::string, Sym> syms_;    ///< shape values that depend on the batch size (fold_shapes)
    std::vector<GraphNode> shape_nodes_; ///< the shape computations fold_shapes took out
    std::map<std::string, int> shape_node_of_;                     ///< their outputs -> index in shape_nodes_
    std::map<std::string, std::vector<std::int64_t>> tensor_dims_; ///< per-sample shapes the walk reached
    /// The per-sample ONNX shape of cur_ where Reshape, Squeeze or Unsqueeze left it neither the layers'
    /// [C, H, W] nor [D] (e.g. [C, 1] between two Squeeze); empty otherwise.
    std::vector<std::int64_t> dims_;

    /// Where the walk stands: saved before each branch of a block, restored after.
    struct Walk {
        std::vector<Pending>* layers;
        std::string cur;
        nn::Shape shape;
        bool image, fresh_param, fresh_affine, channels_last;
        int pad;
        std::vector<std::int64_t> dims;
    };
    Walk save() const {
        return Walk{layers_, cur_, shape_, image_, fresh_param_, fresh_affine_, channels_last_, pad_, dims_};
    }
    void restore(const Walk& w) {
        layers_ = w.layers, cur_ = w.cur, shape_ = w.shape, image_ = w.image;
        fresh_param_ = w.fresh_param, fresh_affine_ = w.fresh_affine, channels_last_ = w.channels_last;
        pad_ = w.pad, dims_ = w.dims;
    }
    void advance(const GraphNode& n) { reach(n.output(0)); }
    const onnx::GraphProto& graph() const { return model_.graph(); }

    // graph.cpp: the graph's input, output and nodes, constants out, identities bypassed, readers
    std::string node_where(int i, const onnx::NodeProto& n) const;
    void load();
    void check_operators() const;
    void collect_initializers();
    void read_input();
    void read_output();
    void make_graph();
    std::vector<const Const*> const_inputs(const GraphNode& g) const;
    void check_order(const GraphNode& g, std::set<std::string>& written) const;
    void check_dropout(const GraphNode& n) const;
    void drop_output_softmax();
    void rewrite_dense_concats();
    std::string path_origin(std::string t, const std::map<std::string, int>& nreaders,
                            const std::map<std::string, int>& writer) const;
    void nest_concats();
    bool is_data(const std::string& name) const;
    std::vector<std::string> data_inputs(const GraphNode& n) const;
    void index_consumers();
    const std::vector<int>& readers(const std::string& t) const;
    const Const* constant(const std::string& name) const;
    const Const& need_const(const std::string& name, const std::string& where, const char* what) const;
    std::vector<std::int64_t> axes_of(const GraphNode& n) const;

    // shape_values.cpp: shape computations out of the graph, evaluated where a Reshape or Expand reads them
    void fold_shapes();
    const Sym* sym_of(const std::string& s, Sym& tmp);
    Sym shape_of(const GraphNode& n) const;
    Sym eval_shape_op(const GraphNode& n, const std::vector<Sym>& a) const;
    static Sym constant_of_shape(const GraphNode& n, const Sym& shape);
    Sym sym_binary(const GraphNode& n, const std::vector<Sym>& a) const;

    // patterns.cpp: exact GELU and the option-A shortcut fused into one node each
    void fuse_patterns();
    struct Pattern;
    bool scalar_is(const std::string& s, double v) const;
    std::string other_input(const GraphNode& m, const char* op, const std::string& t) const;
    bool match_gelu(int e, const Pattern& pt, std::vector<int>& used, std::string& x) const;
    bool match_shortcut(int p, const Pattern& pt, std::vector<int>& used, std::string& x,
                        std::vector<std::int64_t>& pads) const;
    bool halving_slice(const GraphNode& s, std::set<std::int64_t>& axes) const;
    bool match_layer_norm(int q, const Pattern& pt, std::vector<int>& used, std::string& x, double& eps,
                          std::int64_t& axis) const;

    // decompose.cpp: series-parallel decomposition, a fork to its join as one block
    int join_of(const std::string& t, std::vector<int> cons) const;
    std::string chain(const std::string& t, int first, int stop, std::vector<Pending>& out);
    void fork(const std::vector<int>& cons, int stop);
    std::vector<std::vector<int>> fork_units(const std::vector<int>& cons, int J) const;
    nn::Join join_kind(const GraphNode& j, const std::string& t) const;
    void push_block(Pending b, const std::string& where);

    // views.cpp: Flatten, Reshape, Squeeze, Unsqueeze and Expand as views of the same values
    std::vector<std::int64_t> logical() const;
    bool flat_gate_view() const;
    void need_layer_shape(const std::string& where) const;
    void set_view(const std::vector<std::int64_t>& d, const GraphNode& n);
    void view(const GraphNode& n);
    std::vector<std::int64_t> reshape_target(const GraphNode& n, const std::vector<std::int64_t>& L);
    void expand(const GraphNode& n);

    // channels.cpp: channel shuffles and channel slices as fixed 1x1 convs
    void push_channel_map(const std::vector<std::int64_t>& src, const std::string& where);
    void transpose(const GraphNode& n);
    void channel_slice(const GraphNode& n);
    void slice_channels(const GraphNode& n, std::int64_t a, std::int64_t b);
    void rewrite_splits();
    void split_part(const GraphNode& n);
    void gather_channels(const GraphNode& n);
    // channels_last.cpp: layer norm, and the stretches of a graph in [N, H, W, C] order
    void enter_channels_last(const GraphNode& n);
    void leave_channels_last(const GraphNode& n);
    bool channels_last_op(const std::string& op) const;
    void layer_norm(const GraphNode& n, const std::string& where);
    void channels_last_matmul(const GraphNode& n, const std::string& where);
    void flatten_channels_last(const GraphNode& n);
    void take_row_order(Pending& p);
    void need_no_row_order(const std::string& where) const;

    // layers.cpp: one node as a Mimic layer (BatchNormalization and Pad folded into the layer they meet)
    [[noreturn]] void pad_not_folded() const;
    void need_cur(const GraphNode& n, const std::string& where) const;
    void push(Pending p, const std::string& where);
    void reach(const std::string& t);
    void push_flatten(const std::string& where);
    void visit(const GraphNode& n);
    void gemm(const GraphNode& n, const std::string& where);
    void matmul(const GraphNode& n, const std::string& where);
    void add_bias(Pending& p, const Const& C, double scale, const std::string& where, bool conv);
    void add(const GraphNode& n, const std::string& where);
    std::vector<std::int64_t> conv_pads(const GraphNode& n, const std::string& where, std::int64_t KH,
                                        std::int64_t KW, std::int64_t S) const;
    void conv(const GraphNode& n, const std::string& where);
    void pool(const GraphNode& n, const std::string& where, bool avg);
    void pad(const GraphNode& n, const std::string& where);
    void fused(const GraphNode& n, const std::string& where);
    double clip_bound(const GraphNode& n, int i, const std::string& where, double none) const;
    void unary(const GraphNode& n, const std::string& where);
    void global_pool(const GraphNode& n, const std::string& where);
    void global_max_pool(const GraphNode& n, const std::string& where);
    std::vector<std::int64_t> reduce_axes(const GraphNode& n, std::int64_t rank) const;
    void batchnorm(const GraphNode& n, const std::string& where);

    // affine.cpp: Mul, Add, Sub, Div by a constant, PRelu, and the input's normalisation
    std::vector<double> unit_values(const Const& c, int units, const std::string& where) const;
    Pending input_bn() const;
    void affine(const GraphNode& n, const std::string& where);
    void prelu(const GraphNode& n, const std::string& where);

    // import.cpp: the weights into the model
    void copy_into(const nn::ParamTensor& t, const std::vector<double>& values,
                   std::vector<float>& buf) const;
    void assign(const std::vector<Pending>& chain, const std::string& prefix, const nn::Model& model,
                std::vector<float>& host, std::vector<float>& state) const;
    nn::Model build(ModelMeta* meta);
};

} // namespace mimic::io::impl
