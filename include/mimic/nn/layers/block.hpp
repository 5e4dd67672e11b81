// Series-parallel blocks: a layer that runs several branches (chains of layers, which may hold blocks again)
// on one input and joins their outputs by a sum (res), a channel concatenation (cat) or a gate (x * A(x)).
#pragma once

#include "mimic/nn/layer.hpp"
#include "mimic/nn/layers/conv2d.hpp"
#include "mimic/nn/spec.hpp"

#include <memory>
#include <vector>

namespace mimic::nn {

/// Builds the layer of any kind that `l` describes (blocks included) for inputs of shape `in`.
std::unique_ptr<Layer> make_layer(const LayerSpec& l, int index, Shape in);
/// Lets every convolution, bn and res block apply the ReLU right after it in `layers` (the ReLU then aliases
/// its output).
void fuse_conv_relu(const std::vector<std::unique_ptr<Layer>>& layers);
/// The inference buffers that the blocks of one model share: three per nesting depth (entry d for the
/// blocks nested d deep). A block uses them only while it runs (its intermediates are dead once it has
/// returned), and a nested block runs while its parent's hold live data, hence one set per depth.
using BlockBuffers = std::vector<std::vector<Vector>>;

/// Plans `layers` (a chain: the Model's, or a branch of a block at nesting depth - 1) for inference, with no
/// backward after it: every block in it is planned (Block::plan_inference) over `buffers`; the activation
/// right after a convolution (relu6, silu, hardswish, hardsigmoid, sigmoid, leakyrelu, elu, gelu; a relu is
/// fused at construction) and a ReLU or ReLU6 right after a res block whose output pass is a convolution's
/// are applied by that pass (and then alias it).
void plan_inference(const std::vector<std::unique_ptr<Layer>>& layers,
                    const std::shared_ptr<BlockBuffers>& buffers, std::size_t depth = 0);
/// True when the weights of layers[i] take He initialisation: the next activation after it, looking through
/// dropout, flatten and pooling, is ReLU; `at_end` when no activation follows inside `layers`.
bool he_init_after(const std::vector<std::unique_ptr<Layer>>& layers, std::size_t i, bool at_end);

// The join kernels: flat parallel_for over [B, n] rows (each element written by one thread, sums in a fixed
// order), so they run on any execution space.
/// y = a (accumulate false) or y += a; a and y are [B, n].
void add_into(const Matrix& y, const Matrix& a, bool accumulate);
/// add_into, then y = y > 0 ? y : 0 (relu_forward's select) in the same pass.
void add_relu_into(const Matrix& y, const Matrix& a, bool accumulate);
/// y[:, col + k] = a[:, k] for k < a.extent(1): a branch's output into its channels of the concatenation.
/// copy_columns_rows for host spaces (a thread copies a row's contiguous run, no index arithmetic per
/// element), copy_columns_elements for devices (a thread per element); copy_columns_into picks one by
/// execution space at compile time.
void copy_columns_into(const Matrix& a, const Matrix& y, std::int64_t col);
void copy_columns_rows(const Matrix& a, const Matrix& y, std::int64_t col);
void copy_columns_elements(const Matrix& a, const Matrix& y, std::int64_t col);
/// a[:, k] = y[:, col + k]: a branch's share of the concatenation's gradient.
void copy_columns_from(const Matrix& y, std::int64_t col, const Matrix& a);
/// y[b, i] = x[b, i] * g[b, i / hw] with hw = x.extent(1) / g.extent(1) (1: elementwise; H*W: per channel).
void gate_forward(const Matrix& x, const Matrix& g, const Matrix& y);
/// dg[b, c] = sum over p < hw of dy[b, c*hw + p] * x[b, c*hw + p], and dx = dy * g broadcast (when
/// dx.extent(0) > 0); the gradients of gate_forward.
void gate_backward(const Matrix& x, const Matrix& g, const Matrix& dy, const Matrix& dx, const Matrix& dg);

struct BlockBranch;

/// A block token res(...), cat(...) or gate(...). Its parameters are those of its branches' layers, in
/// branch order, layer order, W before b, named "b<j>.<k>.<kind>.<suffix>" (j the 0-based branch, k the
/// 0-based layer in it), so the Model names them "layer<i>.res.b0.1.conv.W"; a nested block adds its own
/// "b<j>.<k>." parts ("layer2.cat.b1.0.res.b0.0.conv.W").
///
/// Memory: the block owns each branch's activations and gradients (sized for the largest batch seen, grown
/// only: no allocation once the batch size is stable). Its output and dL/dx are the Model's buffers. In
/// training a branch keeps all its intermediate activations, as backward needs them.
///
/// Inference (after plan_inference(), no backward): the branches' intermediates live in the three buffers
/// of the block's depth, shared with the model's other blocks at that depth, each reused once its reader
/// has run (a branch alternates between two; the output of a res block's shortcut branch stays in the third
/// while the other branch runs), so a model holds the live set, not the sum. A res block of two branches, one
/// ending in a convolution, lets that convolution's output pass add the other branch's output (y =
/// act(conv(x) + b) + shortcut, then the activation after the block when fuse_activation took it) straight
/// into the block's output; in a cat block a branch ending in a convolution writes its channels of the output
/// directly (a row stride), the others are copied. Results equal the training-time path's to float rounding
/// (bit for bit with two branches).
class Block : public Layer {
public:
    Block(int index, const LayerSpec& spec, Shape in);
    ~Block() override;

    const char* kind() const override { return join_name(join_); }
    Join join() const { return join_; }
    std::size_t num_branches() const;
    /// Layers of branch j (empty: the identity).
    const std::vector<std::unique_ptr<Layer>>& branch(std::size_t j) const;

    std::vector<ParamDecl> param_decls() const override;
    void bind(const std::vector<UnmanagedVector>& params, const std::vector<UnmanagedVector>& grads) override;
    /// The branches' state tensors (batch normalisation's running statistics), named like the parameters.
    std::vector<ParamDecl> state_decls() const override;
    void bind_state(const std::vector<UnmanagedVector>& state) override;
    bool uses_batch_stats() const override;
    /// The statistic reductions of a forward (forward = true) or of a backward that computes dL/dx, over
    /// zero rows, in the order of a real pass; idle_backward(need_dx) for a backward with or without dL/dx.
    void idle_pass(bool forward, const StatReducer* reduce) override;
    void idle_backward(bool need_dx, const StatReducer* reduce);
    /// Sets the tuning of every convolution in the branches (Model::set_conv_tuning).
    void set_conv_tuning(const ConvTuning& t);
    void init(std::uint64_t seed, bool he) override;
    void forward(const Matrix& x, const Matrix& y, const ForwardContext& ctx) override;
    void backward(const Matrix& x, const Matrix& y, const Matrix& dy, const Matrix& dx) override;
    double flops_per_sample() const override;

    /// Plans this block, nested `depth` blocks deep, and the chains of its branches for inference over
    /// `buffers` (see Memory); backward() is refused afterwards.
    void plan_inference(const std::shared_ptr<BlockBuffers>& buffers, std::size_t depth);
    /// After plan_inference(): applies the activation a (relu or relu6) that follows the block in its
    /// output pass, when that pass is a convolution's (a res block). True when taken.
    bool fuse_activation(ConvAct a);
    /// res: applies the ReLU that follows (which then aliases this block's output) in the join of the last
    /// branch, and its gradient (y > 0 ? dy : 0) before the branches' backward: the same values, one pass
    /// over the activations less in forward and one buffer less. Kept by plan_inference().
    void fuse_relu();
    /// Bytes of activation and gradient buffers the block (and the blocks inside it) hold now, not counting
    /// the shared inference buffers (the Model's).
    std::int64_t activation_bytes() const;
    /// The inference forward (plan_inference()): shared buffers, fused joins.
    void forward_inference(const Matrix& x, const Matrix& y, const ForwardContext& ctx);

private:
    Join join_;
    bool inference_ = false;
    int fused_branch_ = -1;                 ///< res, inference: the branch whose last conv does the join
    ConvAct post_ = ConvAct::none;          ///< res, inference: the activation after the block, fused
    bool relu_ = false;                     ///< res: the ReLU after the block is applied here (fuse_relu)
    Vector drelu_store_;                    ///< res with relu_: dL/d(the sum before the ReLU)
    std::shared_ptr<BlockBuffers> buffers_; ///< inference: the model's shared buffers
    std::size_t depth_ = 0;                 ///< inference: this block's entry in buffers_
    std::vector<std::unique_ptr<BlockBranch>> branches_;
    std::vector<std::int64_t> columns_; ///< cat: first column of each branch in the output
    Vector dg_store_;                   ///< gate: dL/d(gate)
    std::int64_t batch_ = 0;
    /// Joins branch j's output into y (the sum, its channels of the concatenation, or the gate of x); the
    /// last branch's join applies the fused ReLU (relu_).
    void join_into(std::size_t j, const Matrix& x, const Matrix& out, const Matrix& y) const;
    void backward_add(const Matrix& x, const Matrix& dy, const Matrix& dx);
    void backward_concat(const Matrix& x, const Matrix& dy, const Matrix& dx);
    void backward_gate(const Matrix& x, const Matrix& dy, const Matrix& dx);
};

} // namespace mimic::nn
