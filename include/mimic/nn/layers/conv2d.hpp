// 2-D convolution (NCHW per sample, activations flat [B, C*H*W]): the execution space's direct backend
// where it has one (host CPUs, impl/conv2d_direct.hpp), else im2col + sgemm with backward by two sgemms and
// a race-free col2im gather. Grouped and depthwise convolutions (G > 1) take a direct Kokkos kernel on
// every execution space (src/nn/layers/conv2d_grouped.cpp), except their forward passes on hosts with the
// direct backend (conv_backend).
#pragma once

#include "mimic/nn/layer.hpp"
#include "mimic/nn/layers/activation.hpp"

#include <memory>

namespace mimic::nn {

/// Geometry of a convolution: input C x H x W, F filters of K x K, stride S, zero padding P, G groups (the
/// channels and filters split into G equal groups, filter f reading only the C/G channels of its group
/// f / (F/G); G = C = F: depthwise).
struct ConvGeometry {
    int c = 1, h = 1, w = 1, f = 1, k = 1, s = 1, p = 0, g = 1;
    int oh() const { return (h + 2 * p - k) / s + 1; }
    int ow() const { return (w + 2 * p - k) / s + 1; }
    std::int64_t pixels() const { return std::int64_t(oh()) * ow(); } ///< output pixels per channel
    std::int64_t patch() const { return std::int64_t(c) * k * k; }    ///< GEMM inner dimension C*K*K
    /// Rows of the weight matrix [C/G*K*K, F] (= patch() when G = 1).
    std::int64_t weight_rows() const { return std::int64_t(c / g) * k * k; }
};

/// Patches of a batch x [B, C*H*W] as columns: col [C*K*K, B*P] with
/// col[(c*K + kh)*K + kw, b*P + oh*OW + ow] = x[b, c, oh*S - pad + kh, ow*S - pad + kw] (0 outside).
/// im2col_rows for host spaces (a thread copies runs of a patch row), im2col_elements for devices (a
/// thread per entry); im2col picks one by execution space at compile time.
void im2col(const Matrix& x, const ConvGeometry& g, const Matrix& col);
void im2col_rows(const Matrix& x, const ConvGeometry& g, const Matrix& col);
void im2col_elements(const Matrix& x, const ConvGeometry& g, const Matrix& col);
/// The adjoint of im2col: dx[b, c, ih, iw] = sum of the dcol entries that im2col copied x[b, c, ih, iw]
/// into. Overwrites dx without atomics: col2im_rows (host; a thread per input row or plane, may zero
/// entries of dcol that lie outside the image) or col2im_elements (device; a thread per input element).
void col2im(const Matrix& dcol, const ConvGeometry& g, const Matrix& dx);
void col2im_rows(const Matrix& dcol, const ConvGeometry& g, const Matrix& dx);
void col2im_elements(const Matrix& dcol, const ConvGeometry& g, const Matrix& dx);
/// db[f] += sum over samples and pixels of dy[b, f*P + p]: a thread per filter in a fixed order (host) or a
/// team reduction per filter (device).
void conv_bias_grad_rows(const Matrix& dy, std::int64_t P, const UnmanagedVector& db);
void conv_bias_grad_teams(const Matrix& dy, std::int64_t P, const UnmanagedVector& db);

namespace impl {
struct DirectConvWorkspace;
} // namespace impl

/// How a convolution runs, held by each Conv2D (Model::set_conv_tuning) and passed to conv2d_forward and
/// conv2d_backward: which backends it may take and their knobs.
struct ConvTuning {
    /// May take the execution space's direct backend where it has one for the geometry; MIMIC_CONV_IM2COL=1
    /// in the environment turns it off for every convolution (im2col + sgemm, as on a CPU without one).
    bool direct = true;
    /// The direct backend's tiles: 0 chosen per shape, 1 pixel tiles, 2 filter tiles (depthwise: 1 grid
    /// tiles, 2 channel tiles; tests and tuning).
    int direct_tiles = 0;
    /// im2col's chunk budget in floats; 0: the default (conv_chunk_rows).
    std::int64_t chunk_floats = 0;
};

/// The activation of a convolution's output pass: none, relu (v > 0 ? v : 0, as relu_forward), or, in
/// inference only (plan_inference), relu6, silu, hardswish, hardsigmoid, leakyrelu, elu and gelu as
/// activation_forward computes them and sigmoid as sigmoid_forward (leakyrelu's slope and elu's scale
/// from the epilogue's alpha).
enum class ConvAct : int { none, relu, relu6, silu, hardswish, hardsigmoid, sigmoid, leakyrelu, elu, gelu };

/// The ConvAct that computes activation a as activation_forward does (none for softplus, which no output
/// pass applies: it stays a layer of its own).
inline ConvAct conv_act_of(Activation a) {
    switch (a) {
    case Activation::ReLU6:
        return ConvAct::relu6;
    case Activation::SiLU:
        return ConvAct::silu;
    case Activation::HardSwish:
        return ConvAct::hardswish;
    case Activation::HardSigmoid:
        return ConvAct::hardsigmoid;
    case Activation::LeakyReLU:
        return ConvAct::leakyrelu;
    case Activation::ELU:
        return ConvAct::elu;
    case Activation::GELU:
        return ConvAct::gelu;
    case Activation::Softplus:
        return ConvAct::none;
    }
    return ConvAct::none;
}

/// a(v) with alpha for leakyrelu and elu: the scalar definition, on any execution space.
KOKKOS_INLINE_FUNCTION float conv_activate(ConvAct a, float v, float alpha = 0.0f) {
    switch (a) {
    case ConvAct::none:
        return v;
    case ConvAct::relu:
        return v > 0.0f ? v : 0.0f;
    case ConvAct::relu6:
        return clamp06(v);
    case ConvAct::silu:
        return v * stable_sigmoid(v);
    case ConvAct::hardswish:
        return v * clamp06(v + 3.0f) / 6.0f;
    case ConvAct::hardsigmoid:
        return clamp06(v + 3.0f) / 6.0f;
    case ConvAct::sigmoid:
        return stable_sigmoid(v);
    case ConvAct::leakyrelu:
        return v > 0.0f ? v : alpha * v;
    case ConvAct::elu:
        return v > 0.0f ? v : alpha * kmath::expm1(v);
    case ConvAct::gelu:
        return v * normal_cdf(v);
    }
    return v;
}

/// A convolution's output pass (its epilogue), applied to each output as it is stored, in this order:
/// v = conv + b (a bn folded into W and b); v = act(v) (alpha: leakyrelu's slope, elu's scale); v += the
/// residual (when set); v = post(v) (none, relu or relu6); stored at row stride ld. One pass over the outputs
/// for conv + bias + activation + residual add + the activation after the join (inference of res blocks), and
/// for writing into a channel slice of a concatenation.
struct ConvEpilogue {
    ConvAct act = ConvAct::none;
    /// [B, F*OH*OW] rows residual_ld floats apart, added after act; must not overlap the output.
    const float* residual = nullptr;
    std::int64_t residual_ld = 0;
    ConvAct post = ConvAct::none;
    /// Floats between the output rows of two samples; 0: F*OH*OW (a contiguous [B, F*OH*OW] output).
    std::int64_t ld = 0;
    float alpha = 0.0f;

    /// The stored value of output i of sample b, from v = conv + b.
    KOKKOS_INLINE_FUNCTION float apply(float v, std::int64_t b, std::int64_t i) const {
        v = conv_activate(act, v, alpha);
        if (residual) v += residual[b * residual_ld + i];
        return conv_activate(post, v);
    }
};

/// Which formulation a convolution takes. direct: the direct kernels (a group at a time when G > 1;
/// backward by the grouped kernels when G > 1 and S > 1); direct_depthwise: the direct depthwise forward and
/// backward.
enum class ConvBackend { im2col_gemm, direct, grouped, direct_depthwise };
/// The one backend choice of conv2d_forward and conv2d_backward for geometry g under tuning t on the
/// default execution space. Where impl::DirectConvAvailable holds for it, t allows it and
/// MIMIC_CONV_IM2COL=1 is not set: direct_depthwise when G > 1 and this CPU and g suit that kernel
/// (depthwise), else direct when they suit the direct kernels for one group of g. Otherwise grouped when
/// G > 1, im2col + sgemm else.
ConvBackend conv_backend(const ConvGeometry& g, const ConvTuning& t);

/// Grow-only scratch of one convolution: patches, the [F, rows*P] GEMM output / gradient and the gradient
/// through a fused ReLU; the direct backend keeps its own (created on its first use).
struct ConvWorkspace {
    Vector col, out, masked;
    std::shared_ptr<impl::DirectConvWorkspace> direct;
};

/// Samples per chunk of im2col + sgemm: as many as keep the patch matrix within budget_floats, at least
/// one; budget 0: the whole batch on a GPU, and on the host about 1 MiB (L2 resident between im2col and the
/// GEMMs). A chunk of one sample needs no layout permutation: its GEMM output [F, P] is already that
/// sample's NCHW activation.
std::int64_t conv_chunk_rows(const ConvGeometry& g, std::int64_t batch, std::int64_t budget_floats = 0);

/// Grouped convolution (any G, on any execution space), W [C/G*K*K, F]: y = the epilogue e of conv(x, W) + b
/// (y points at sample 0's outputs, rows e.ld apart), a thread per output row (sample, filter, output row)
/// summing over its group's channels, then the taps.
void grouped_conv_forward(const Matrix& x, const UnmanagedMatrix& W, const UnmanagedVector& b,
                          const ConvGeometry& g, float* y, const ConvEpilogue& e);
/// Its backward without atomics: dW += (a thread per weight, summing over samples and pixels), dx = (a
/// thread per input row, gathering over its group's filters and the taps) when dx.extent(0) > 0. The bias
/// gradient is conv2d_backward's.
void grouped_conv_backward(const Matrix& x, const Matrix& dy, const UnmanagedMatrix& W, const ConvGeometry& g,
                           const UnmanagedMatrix& dW, const Matrix& dx);
/// grouped_conv_backward's two halves: dW += the weight gradient; dx = the input gradient.
void grouped_conv_weight_grad(const Matrix& x, const Matrix& dy, const ConvGeometry& g,
                              const UnmanagedMatrix& dW);
void grouped_conv_input_grad(const Matrix& dy, const UnmanagedMatrix& W, const ConvGeometry& g,
                             const Matrix& dx);

/// y = conv(x, W) + b for x [B, C*H*W], y [B, F*OH*OW]; W is [C/G*K*K, F] (parameter shape {C/G, K, K, F});
/// y = relu(conv(x, W) + b) when relu is set.
void conv2d_forward(const Matrix& x, const UnmanagedMatrix& W, const UnmanagedVector& b,
                    const ConvGeometry& g, const ConvTuning& t, ConvWorkspace& ws, const Matrix& y,
                    bool relu = false);
/// The same with any epilogue: y points at sample 0's outputs, the rows e.ld apart (F*OH*OW when 0).
void conv2d_forward(const Matrix& x, const UnmanagedMatrix& W, const UnmanagedVector& b,
                    const ConvGeometry& g, const ConvTuning& t, ConvWorkspace& ws, float* y,
                    const ConvEpilogue& e);
/// conv2d_forward on the inference path (no backward follows; Conv2D::forward with ForwardContext::inference
/// and forward_into): a 1x1 convolution without padding or groups takes sgemms where the direct backend is
/// available and allowed (impl::direct_pointwise_forward: no padded copy, the epilogue in one pass over the
/// outputs; results within float rounding of conv2d_forward's), anything else conv2d_forward.
void conv2d_forward_inference(const Matrix& x, const UnmanagedMatrix& W, const UnmanagedVector& b,
                              const ConvGeometry& g, const ConvTuning& t, ConvWorkspace& ws, float* y,
                              const ConvEpilogue& e);
/// dym = dy where y > 0, else 0 (the gradient through a fused ReLU, as relu_backward computes it).
void conv_relu_mask(const Matrix& y, const Matrix& dy, const Matrix& dym);
/// Accumulates dW += col·dY^T and db += sum(dY) (patches recomputed from x, chunk by chunk); writes
/// dx = col2im(W·dY) when dx.extent(0) > 0.
void conv2d_backward(const Matrix& x, const Matrix& dy, const UnmanagedMatrix& W, const ConvGeometry& g,
                     const ConvTuning& t, ConvWorkspace& ws, const UnmanagedMatrix& dW,
                     const UnmanagedVector& db, const Matrix& dx);

/// conv:FxK[sS][pP][gG] and dwconv:K[sS][pP] (F = G = C). Parameters "layer<i>.conv.W" {C/G, K, K, F}
/// (PyTorch's [F, C/G, K, K] permuted (1, 2, 3, 0)) and "layer<i>.conv.b" {F}.
class Conv2D : public Layer {
public:
    Conv2D(int index, std::string token, Shape in, int filters, int kernel, int stride, int pad,
           int groups = 1);

    const char* kind() const override { return "conv"; }
    const ConvGeometry& geometry() const { return g_; }
    std::vector<ParamDecl> param_decls() const override;
    void bind(const std::vector<UnmanagedVector>& params, const std::vector<UnmanagedVector>& grads) override;
    void init(std::uint64_t seed, bool he) override;
    void forward(const Matrix& x, const Matrix& y, const ForwardContext& ctx) override;
    void backward(const Matrix& x, const Matrix& y, const Matrix& dy, const Matrix& dx) override;
    double flops_per_sample() const override {
        return 2.0 * double(g_.pixels()) * g_.f * double(g_.weight_rows());
    }
    /// Applies the ReLU that follows this layer (the Model fuses them): rectified output, and the incoming
    /// gradient masked by it.
    void fuse_relu() { act_ = ConvAct::relu; }
    /// Inference only (no backward after it): applies the activation a (relu6, silu, hardswish,
    /// hardsigmoid, sigmoid, leakyrelu, elu or gelu; alpha: leakyrelu's slope, elu's scale) that follows
    /// this layer in its output pass.
    void fuse_activation(ConvAct a, float alpha) { act_ = a, alpha_ = alpha; }
    /// The activation this layer applies to its outputs (a fused one) and its alpha.
    ConvAct activation() const { return act_; }
    float activation_alpha() const { return alpha_; }
    /// Inference forward with the epilogue e (its act and alpha are this layer's) into y (sample 0's
    /// outputs, rows e.ld apart): a residual add, the activation after it, a channel slice.
    void forward_into(const Matrix& x, float* y, ConvEpilogue e);
    /// Which backends this layer may take and their knobs (default: ConvTuning{}).
    void set_tuning(const ConvTuning& t) { tuning_ = t; }
    const ConvTuning& tuning() const { return tuning_; }

private:
    ConvGeometry g_;
    ConvAct act_ = ConvAct::none;
    float alpha_ = 0.0f;
    ConvTuning tuning_;
    UnmanagedMatrix W_, dW_;
    UnmanagedVector b_, db_;
    ConvWorkspace ws_;
};

} // namespace mimic::nn
