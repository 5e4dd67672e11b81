// The host backend of Conv2D: direct register-tiled kernels on x86-64 CPUs with AVX-512F (strides 1 and 2,
// grouped passes at stride 1 and grouped forward at 2, depthwise forward and backward passes), the trait on
// the execution space that makes them available, their tuning knobs and their workspace.
#pragma once

#include "mimic/nn/layers/conv2d.hpp"

#include <array>
#include <cstdint>
#include <type_traits>
#include <vector>

// The kernels (src/nn/layers/conv2d_direct.cpp) need x86-64 and GCC-style target attributes; device
// compilers skip them.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__CUDACC__) && !defined(__HIPCC__)
#define MIMIC_CONV_DIRECT 1
#else
#define MIMIC_CONV_DIRECT 0
#endif

namespace mimic::nn::impl {

/// Whether the direct kernels can serve convolutions that run on ExecSpace over Views of MemorySpace: they
/// are compiled in and the space runs on the host with access to that memory (Serial, OpenMP, Threads).
/// Device spaces take im2col + sgemm.
template <class ExecSpace, class MemorySpace = typename ExecSpace::memory_space>
struct DirectConvAvailable
    : std::integral_constant<bool, MIMIC_CONV_DIRECT &&
                                       Kokkos::SpaceAccessibility<ExecSpace, Kokkos::HostSpace>::accessible &&
                                       Kokkos::SpaceAccessibility<ExecSpace, MemorySpace>::accessible> {};

/// Knobs of the direct kernels, passed in with each call.
struct DirectConvTuning {
    /// 0: pixel or filter tiles chosen per shape; 1: pixel tiles (8 filters x 16-48 outputs per tile);
    /// 2: filter tiles (16-32 channels x up to 14 outputs).
    int tiles = 0;
    /// Weight gradient: samples per chunk such that their padded inputs and transposed gradients stay within
    /// this many floats (about the L2 of a core), streamed once per weight tile.
    std::int64_t grad_chunk_floats = std::int64_t(1) << 18;
    /// Parts the samples are split into, each run by one thread of the host execution space with its own
    /// scratch; 0: one per thread (the results do not depend on it).
    int parts = 0;
};

/// Host scratch of one thread of the direct kernels (grow-only): padded input planes, outputs on the padded
/// grid and padded output gradients.
struct DirectConvScratch {
    std::vector<float> in, out, grad_padded;
};

/// The direct kernels' workspace of one convolution (host memory, grow-only), what the threads share: the
/// flipped and the packed filters, a chunk's padded inputs and transposed gradients; and one scratch per
/// thread.
struct DirectConvWorkspace {
    std::vector<float> weights, packed, chunk_in, chunk_grad;
    /// The geometry (C, H, W, F, K, padding, stride) and chunk samples whose zero borders chunk_in and
    /// chunk_grad hold: the backward pass writes only the interiors, so it zeroes them only when these
    /// change.
    std::array<std::int64_t, 8> chunk_layout{};
    /// A group's inputs, outputs (dy) and weights (and their gradient), contiguous (direct_grouped_forward,
    /// direct_grouped_backward); its input gradient (direct_grouped_backward).
    std::vector<float> group_in, group_out, group_weights, group_grad;
    /// The 1x1 sgemms' gathered inputs [C, n*P] and products [F, n*P] (direct_pointwise_forward).
    std::vector<float> pointwise_in, pointwise_out;
    std::vector<DirectConvScratch> threads;
};

/// Whether this CPU and geometry (of one group) suit the direct kernels: AVX-512F, K <= 8, and stride 1, or
/// stride 2 with K > 1, P < K and 4 output pixels or more (false where they are not compiled in).
bool direct_conv_supported(const ConvGeometry& g);

/// Direct forward on host pointers: y [B, F*OH*OW] (rows e.ld apart when set) = the epilogue e of
/// conv(x [B, C*H*W], W [C*K*K, F]) + b. Samples are split over the host execution space's threads.
void direct_conv_forward(const float* x, std::int64_t batch, const float* W, const float* b,
                         const ConvGeometry& g, const DirectConvTuning& t, DirectConvWorkspace& ws, float* y,
                         const ConvEpilogue& e);
/// Grouped forward (1 < G, W [C/G*K*K, F]) by the direct kernels, a group at a time: the group's input
/// channels, weight columns and bias as a convolution of C/G channels and F/G filters, its outputs copied
/// into y's channels of that group through the epilogue e. Serves the geometries whose one group
/// direct_conv_supported accepts.
void direct_grouped_forward(const float* x, std::int64_t batch, const float* W, const float* b,
                            const ConvGeometry& g, const DirectConvTuning& t, DirectConvWorkspace& ws,
                            float* y, const ConvEpilogue& e);

/// Whether this CPU and geometry suit direct_pointwise_forward: AVX-512F (its output pass), a 1x1 filter
/// without padding or groups, any stride (false where it is not compiled in).
bool direct_pointwise_supported(const ConvGeometry& g);

/// Inference forward of a 1x1 convolution (direct_pointwise_supported) on host pointers by sgemm:
/// y [B, F*OH*OW] (rows e.ld apart when set) = the epilogue e of W^T [F, C] times each sample's inputs
/// [C, OH*OW] + b. A plane of 256 outputs or more is one sgemm of its own, read in place at stride 1 and
/// written into its NCHW rows, the epilogue then in place; smaller planes (and strides > 1, subsampled)
/// are gathered into [C, n*P] for n samples, one sgemm per chunk of about 256 columns. Results within
/// float rounding of direct_conv_forward.
void direct_pointwise_forward(const float* x, std::int64_t batch, const float* W, const float* b,
                              const ConvGeometry& g, DirectConvWorkspace& ws, float* y,
                              const ConvEpilogue& e);

/// dst [F][P] (sample s's NCHW outputs) = the epilogue e of src row f (lds floats apart) + bias[f], with
/// sample s's residual (ConvEpilogue::apply's arithmetic, vectorised); in place when src == dst and lds == P.
/// The output pass of the 1x1 convolutions that conv2d.cpp runs as sgemms at inference.
void direct_rows_epilogue(const float* src, std::int64_t lds, int F, std::int64_t P, const float* bias,
                          const ConvEpilogue& e, std::int64_t s, float* dst);

/// Whether this CPU and geometry suit the direct depthwise kernel: AVX-512F, G = C = F, K <= 8, padding
/// below K, any stride (false where it is not compiled in).
bool direct_depthwise_supported(const ConvGeometry& g);

/// Direct depthwise forward on host pointers: y [B, C*OH*OW] = dwconv(x [B, C*H*W], W [K*K, C]) + b
/// (then the epilogue e: in the kernel for none or relu into a contiguous output, else in a second pass over
/// the outputs), each output summing its taps in (kh, kw) order with fused multiply-adds from 0,
/// then the bias. Tiles (t.tiles): 1 grid tiles (a channel's outputs on a grid over its padded phase planes,
/// 16 a register), 2 channel tiles (16 channels a register per output, for small planes), 0 chosen per
/// shape; both give the same bits. Samples are split over the host execution space's threads.
void direct_depthwise_forward(const float* x, std::int64_t batch, const float* W, const float* b,
                              const ConvGeometry& g, const DirectConvTuning& t, DirectConvWorkspace& ws,
                              float* y, const ConvEpilogue& e);

/// Direct depthwise backward on host pointers (the geometries direct_depthwise_supported accepts): dW [K*K,
/// C] += the weight gradient, each sample's sum over its output pixels in a fixed order, the samples then
/// summed in order; dx (when not null) = the input gradient, each input summing the taps that reach it in
/// (kh, kw) order from 0. Tiles (t.tiles): 1 grid tiles on the NCHW planes at stride 1 with 3x3 or 5x5
/// filters (16 pixels a register, each tap's weight gradient summed in the lanes then across them), 2
/// channel tiles (16 channels a register, inputs and dy transposed to channels-last; the only tiles for
/// other shapes), 0 chosen per shape (grid tiles for 12 to 32 outputs a row). Both give the same dx bits.
/// Samples split over the host execution space's threads, with the same results for any split.
void direct_depthwise_backward(const float* x, const float* dy, std::int64_t batch, const float* W,
                               const ConvGeometry& g, const DirectConvTuning& t, DirectConvWorkspace& ws,
                               float* dW, float* dx);

/// Direct backward on host pointers (stride 1, or 2 with K > 1 and padding under K): dW += the weight
/// gradient (threads over input channels; at stride 2 the inputs as the forward pass' phase planes); dx (when
/// not null) = the input gradient (threads over samples): at stride 1 the forward kernels over dy padded by
/// K-1-p with the flipped filters, at stride 2 four such passes with k2 x k2 filters (k2 = ceil(K/2)), one
/// per phase of dx (the inputs of even or odd padded row and column), dy padded once by k2 - 1.
void direct_conv_backward(const float* x, const float* dy, std::int64_t batch, const float* W,
                          const ConvGeometry& g, const DirectConvTuning& t, DirectConvWorkspace& ws,
                          float* dW, float* dx);
/// Grouped backward (1 < G, stride 1, W [C/G*K*K, F]) by direct_conv_backward a group at a time: the
/// group's inputs, output gradients, weight columns and their gradient copied contiguous, its dW columns
/// and dx channels (when dx is not null) copied back.
void direct_grouped_backward(const float* x, const float* dy, std::int64_t batch, const float* W,
                             const ConvGeometry& g, const DirectConvTuning& t, DirectConvWorkspace& ws,
                             float* dW, float* dx);

} // namespace mimic::nn::impl
