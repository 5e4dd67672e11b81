// The architecture spec: a comma-separated list of layer tokens (parsing, shape inference, and errors
// that name the bad token by position and text).
#pragma once

#include "mimic/core/error.hpp"
#include "mimic/nn/shape.hpp"

#include <string>
#include <vector>

namespace mimic::nn {

/// Grammar (tokens separated by commas, spaces around tokens ignored, numbers are decimal):
///   dense:N        fully connected, N output units, with bias
///   bottleneck:K   linear bottleneck: K units, no bias, no activation (W = U·V with the next dense)
///   conv:FxK       2-D convolution, F filters of K x K, stride 1, padding K/2 ('same' for odd K)
///   conv:FxKsS     ... with stride S;  conv:FxKpP ... with zero padding P;  conv:FxKsSpP both
///   conv:FxKgG     ... in G groups (C and F divisible by G; any of s, p, g, in that order)
///   dwconv:K       depthwise: conv:CxKgC for an input of C channels (dwconv:KsS, dwconv:KpP, dwconv:KsSpP)
///   pool:K         max pooling, window K x K, stride K (output floor(H/K) x floor(W/K))
///   pool:KsS, pool:KpP, pool:KsSpP   max pooling with stride S (default K) and padding P <= K/2
///                  (default 0), output floor((H + 2P - K) / S) + 1; padded cells never win
///   avgpool:K[sS][pP]   average pooling, the same windows; the padded zeros count in the divisor
///                  (PyTorch's count_include_pad=True): every window divides by K*K
///   avgpool:K[sS][pP]e  ... dividing by the number of real (unpadded) cells (count_include_pad=False)
///   gap            global average pooling: C x H x W -> C x 1 x 1
///   relu | sigmoid | tanh
///   relu6 | silu | hardswish | hardsigmoid   (PyTorch's definitions: min(max(x, 0), 6), x·sigmoid(x),
///                  x·relu6(x + 3)/6, relu6(x + 3)/6)
///   leakyrelu | leakyrelu:A   x > 0 ? x : A·x (A default 0.01, PyTorch's)
///   elu | elu:A    x > 0 ? x : A·(exp(x) - 1) (A default 1)
///   gelu           exact GELU, x·Φ(x) = x/2·(1 + erf(x/√2))
///   softplus       log(1 + exp(x)), x itself above 20 (PyTorch's Softplus, beta 1, threshold 20)
///   dropout:P      inverted dropout with drop probability 0 <= P < 1
///   flatten        C x H x W -> C*H*W (dense after conv/pool also flattens implicitly)
///   bn             batch normalisation over channels (image input) or features (flat input)
///   ln | ln:E      layer normalisation over the channels at each position (image input; PyTorch's
///                  LayerNorm on channels-last values, ConvNeXt's LayerNorm2d) or over the features (flat
///                  input), with a learned scale and shift per channel; E: its epsilon (default 1e-5)
/// Example: conv:32x3,relu,pool:2,conv:64x3,relu,pool:2,dense:256,relu,dropout:0.3,dense:10
/// Tokens are numbered from 1 in error messages; layer i (0-based, as in parameter names) is token i+1.
///
/// Blocks (series-parallel composition; a block is one token of its chain, branches are chains separated
/// by '|', commas inside the parentheses belong to the branch):
///   res(A)         A(x) + x: residual block with an identity shortcut (shapes must match)
///   res(A|B|...)   A(x) + B(x) + ...: e.g. a projection shortcut res(conv:16x3s2,relu,conv:16x3|conv:16x1s2)
///   cat(A|B|...)   the branches' outputs concatenated over channels (equal height and width; flat inputs
///                  concatenate features); an empty branch or `id` is the input itself: cat(|conv:12x3)
///   gate(A)        x * A(x): A gives the input's shape (elementwise) or C x 1 x 1 or C features (one factor
///                  per channel, squeeze-and-excitation: gate(pool:8,conv:4x1,relu,conv:16x1,sigmoid) on
///                  16 x 8 x 8)
/// Blocks nest. A token inside a block is numbered by its path: token 3.2.1 is the first token of the second
/// branch of token 3.
enum class LayerKind {
    Dense,
    Bottleneck,
    Conv,
    Pool,
    ReLU,
    Sigmoid,
    Tanh,
    Dropout,
    Flatten,
    AvgPool,
    GlobalAvgPool,
    ReLU6,
    SiLU,
    HardSwish,
    HardSigmoid,
    LeakyReLU,
    ELU,
    GELU,
    Softplus,
    BatchNorm,
    LayerNorm,
    Block
};

/// How a block joins its branches: sum (res), channel concatenation (cat), input times branch (gate).
enum class Join { Add, Concat, Mul };

struct LayerSpec {
    LayerKind kind = LayerKind::ReLU;
    std::string token;      ///< the token's text as written (trimmed)
    int position = 0;       ///< 1-based token number
    std::size_t offset = 0; ///< character offset of the token in the spec
    int units = 0;          ///< dense/bottleneck units, conv filters
    int kernel = 0;         ///< conv/pool window
    int stride = 1;         ///< conv/pool stride (pool:K: = kernel)
    int pad = 0;            ///< conv/pool zero padding
    int groups = 1;        ///< conv groups (conv:FxKgG); 0: one per input channel (dwconv, units 0 = as many)
    bool count_pad = true; ///< avgpool: the padded zeros count in the divisor
    bool ceil = false;     ///< pool: ceil mode (pool:3s2c), the output size rounded up (PoolWindow::out)
    float rate = 0.0f;     ///< dropout probability
    float alpha = 0.0f;    ///< leakyrelu's negative slope, elu's alpha, ln's epsilon
    std::string path;      ///< token number, dotted inside blocks ("3", "3.2.1"); empty: `position`
    Join join = Join::Add; ///< block: how the branches join
    /// block: its branches, each a chain (empty: the identity, the block's input itself)
    std::vector<std::vector<LayerSpec>> branches;
};

/// A syntax error in a spec: the message, and where the bad token sits in the spec (for a caret under it).
class SpecSyntaxError : public Error {
public:
    SpecSyntaxError(const std::string& what, std::size_t offset, std::size_t length)
        : Error(what), offset(offset), length(length) {}
    std::size_t offset; ///< 0-based character offset of the bad token in the spec
    std::size_t length; ///< its length (0 for an empty token)
};

/// Parses a spec; throws SpecSyntaxError
/// "arch: syntax error in token 3 'dense:abc': expected dense:<units> with units a positive integer (at
/// character 16 of '...')".
std::vector<LayerSpec> parse_spec(const std::string& spec);

/// The output shape of `layer` on samples of shape `in`; throws mimic::Error naming the token when the
/// input does not fit (conv/pool on flat input, window larger than the (padded) image, ...).
Shape infer_shape(const LayerSpec& layer, Shape in);

/// "arch: token 3 'dense:abc'" (or "arch: token 3.1.2 'conv:abc'" inside a block): the prefix of every error
/// about a token.
std::string token_context(const LayerSpec& layer);

/// Canonical name of a kind: "dense", "bottleneck", "conv", "pool", "relu", ...; "block" for blocks.
const char* kind_name(LayerKind kind);
/// A block's kind as written and used in parameter names: "res", "cat" or "gate".
const char* join_name(Join join);

} // namespace mimic::nn
