// Architecture spec parser and shape inference: tokens to LayerSpecs, LayerSpecs to output shapes;
// every error names the offending token by number and text (syntax errors also by character offset).
#include "mimic/nn/spec.hpp"

#include "mimic/core/error.hpp"

#include <cctype>
#include <cstdlib>

namespace mimic::nn {

namespace {

constexpr long kMaxInt = 1L << 30;

/// Parses a positive decimal integer from s[pos..]; advances pos. False when no digits or too large.
bool parse_int(const std::string& s, std::size_t& pos, long& out) {
    const std::size_t start = pos;
    long v = 0;
    while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos]))) {
        v = v * 10 + (s[pos] - '0');
        if (v > kMaxInt) return false;
        ++pos;
    }
    out = v;
    return pos > start;
}

bool parse_whole_int(const std::string& s, long& out) {
    std::size_t pos = 0;
    return parse_int(s, pos, out) && pos == s.size();
}

std::string trim(const std::string& s, std::size_t& lead) {
    std::size_t a = 0, b = s.size();
    while (a < b && std::isspace(static_cast<unsigned char>(s[a])))
        ++a;
    while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1])))
        --b;
    lead = a;
    return s.substr(a, b - a);
}

std::string trim_copy(const std::string& s) {
    std::size_t lead = 0;
    return trim(s, lead);
}

/// pool:K[sS][pP][c] and avgpool:K[sS][pP][e][c] (stride K and padding 0 by default) into l; returns what was
/// expected when the argument does not parse, nullptr when it does.
const char* parse_pool(const std::string& name, const std::string& arg, bool has_arg, LayerSpec& l) {
    const bool avg = name == "avgpool";
    const char* form =
        avg ? "avgpool:<window>[s<stride>][p<padding>][e][c], e.g. avgpool:2 or avgpool:3s1p1 "
              "(e: the padding does not count in the divisor; c: ceil mode, the output size rounded up)"
            : "pool:<window>[s<stride>][p<padding>][c], e.g. pool:2 or pool:3s2p1 (c: ceil mode, "
              "the output size rounded up)";
    std::size_t p = 0;
    long k = 0, s = -1, pad = 0;
    if (!has_arg || !parse_int(arg, p, k) || k < 1) return form;
    if (p < arg.size() && arg[p] == 's') {
        ++p;
        if (!parse_int(arg, p, s) || s < 1) return form;
    }
    if (p < arg.size() && arg[p] == 'p') {
        ++p;
        if (!parse_int(arg, p, pad)) return form;
    }
    l.count_pad = !(avg && p < arg.size() && arg[p] == 'e');
    if (!l.count_pad) ++p;
    l.ceil = p < arg.size() && arg[p] == 'c';
    if (l.ceil) ++p;
    if (p != arg.size()) return form;
    if (2 * pad > k) return "pool padding at most half the window";
    l.kind = avg ? LayerKind::AvgPool : LayerKind::Pool;
    l.kernel = int(k);
    l.stride = s < 0 ? int(k) : int(s);
    l.pad = int(pad);
    return nullptr;
}

/// The argument-free tokens of global pooling, batch normalisation and the activations beyond
/// relu/sigmoid/tanh.
bool plain_kind(const std::string& name, LayerKind& kind) {
    static const std::pair<const char*, LayerKind> table[] = {{"gap", LayerKind::GlobalAvgPool},
                                                              {"relu6", LayerKind::ReLU6},
                                                              {"silu", LayerKind::SiLU},
                                                              {"hardswish", LayerKind::HardSwish},
                                                              {"hardsigmoid", LayerKind::HardSigmoid},
                                                              {"gelu", LayerKind::GELU},
                                                              {"softplus", LayerKind::Softplus},
                                                              {"bn", LayerKind::BatchNorm}};
    for (const auto& [text, k] : table)
        if (name == text) {
            kind = k;
            return true;
        }
    return false;
}

/// Output size of a pooling window over n cells: floor mode, or ceil mode with PyTorch's rule that the
/// last window starts inside the input or its left padding.
int pool_out(const LayerSpec& l, int n) {
    const int span = n + 2 * l.pad - l.kernel;
    if (!l.ceil) return span / l.stride + 1;
    const int out = (span + l.stride - 1) / l.stride + 1;
    return (out - 1) * l.stride >= n + l.pad ? out - 1 : out;
}

/// Output shape of max/average pooling; errors name the token.
Shape pool_shape(const LayerSpec& l, Shape in) {
    const char* what = kind_name(l.kind);
    if (in.c == 1 && in.h == 1)
        fail(token_context(l), ": ", what, " needs an image input (channels x height x width) but gets ",
             in.size(), " flat features (a flat data set, or after dense/flatten)");
    if (l.kind == LayerKind::GlobalAvgPool) return Shape{in.c, 1, 1};
    const int hp = in.h + 2 * l.pad, wp = in.w + 2 * l.pad;
    if (l.pad == 0 && (l.kernel > in.h || l.kernel > in.w))
        fail(token_context(l), ": ", what, " window ", l.kernel, " is larger than the input ", in.c, "x",
             in.h, "x", in.w);
    if (l.kernel > hp || l.kernel > wp)
        fail(token_context(l), ": ", what, " window ", l.kernel, " is larger than the padded input ", hp, "x",
             wp, " (input ", in.c, "x", in.h, "x", in.w, ")");
    return Shape{in.c, pool_out(l, in.h), pool_out(l, in.w)};
}

} // namespace

const char* kind_name(LayerKind kind) {
    switch (kind) {
    case LayerKind::Dense:
        return "dense";
    case LayerKind::Bottleneck:
        return "bottleneck";
    case LayerKind::Conv:
        return "conv";
    case LayerKind::Pool:
        return "pool";
    case LayerKind::ReLU:
        return "relu";
    case LayerKind::Sigmoid:
        return "sigmoid";
    case LayerKind::Tanh:
        return "tanh";
    case LayerKind::Dropout:
        return "dropout";
    case LayerKind::Flatten:
        return "flatten";
    case LayerKind::AvgPool:
        return "avgpool";
    case LayerKind::GlobalAvgPool:
        return "gap";
    case LayerKind::ReLU6:
        return "relu6";
    case LayerKind::SiLU:
        return "silu";
    case LayerKind::HardSwish:
        return "hardswish";
    case LayerKind::HardSigmoid:
        return "hardsigmoid";
    case LayerKind::LeakyReLU:
        return "leakyrelu";
    case LayerKind::ELU:
        return "elu";
    case LayerKind::GELU:
        return "gelu";
    case LayerKind::Softplus:
        return "softplus";
    case LayerKind::BatchNorm:
        return "bn";
    case LayerKind::LayerNorm:
        return "ln";
    case LayerKind::Block:
        return "block";
    }
    return "?";
}

const char* join_name(Join join) {
    switch (join) {
    case Join::Add:
        return "res";
    case Join::Concat:
        return "cat";
    case Join::Mul:
        return "gate";
    }
    return "?";
}

std::string token_context(const LayerSpec& layer) {
    if (layer.path.empty()) return detail::concat("arch: token ", layer.position, " '", layer.token, "'");
    return detail::concat("arch: token ", layer.path, " '", layer.token, "'");
}

namespace {

/// The syntax error of token l of spec: what was expected, where.
[[noreturn]] void bad_token(const std::string& spec, const LayerSpec& l, const std::string& expected) {
    throw SpecSyntaxError(detail::concat("arch: syntax error in token ", l.path, " '", l.token,
                                         "': expected ", expected, " (at character ", l.offset + 1, " of '",
                                         spec, "')"),
                          l.offset, l.token.size());
}

/// conv:<filters>x<kernel>[s<stride>][p<padding>][g<groups>] and dwconv:<kernel>[s<stride>][p<padding>]
/// (depthwise: filters and groups 0, resolved to the input channels by infer_shape) into l.
void parse_conv(const std::string& spec, const std::string& arg, bool has_arg, LayerSpec& l,
                bool depthwise = false) {
    const char* form = depthwise
                           ? "dwconv:<kernel>[s<stride>][p<padding>], e.g. dwconv:3 or dwconv:3s2"
                           : "conv:<filters>x<kernel>[s<stride>][p<padding>][g<groups>], e.g. conv:32x3, "
                             "conv:32x5s2p2 or conv:32x3g4";
    if (!has_arg) bad_token(spec, l, form);
    std::size_t p = 0;
    long f = 0, k = 0, s = 1, pad = -1, groups = depthwise ? 0 : 1;
    if (!depthwise) {
        if (!parse_int(arg, p, f) || f < 1 || p >= arg.size() || arg[p] != 'x') bad_token(spec, l, form);
        ++p;
    }
    if (!parse_int(arg, p, k) || k < 1) bad_token(spec, l, form);
    if (p < arg.size() && arg[p] == 's') {
        ++p;
        if (!parse_int(arg, p, s) || s < 1) bad_token(spec, l, form);
    }
    if (p < arg.size() && arg[p] == 'p') {
        ++p;
        if (!parse_int(arg, p, pad)) bad_token(spec, l, form);
    }
    if (!depthwise && p < arg.size() && arg[p] == 'g') {
        ++p;
        if (!parse_int(arg, p, groups) || groups < 1) bad_token(spec, l, form);
    }
    if (p != arg.size()) bad_token(spec, l, form);
    if (f % groups != 0) bad_token(spec, l, "conv filters divisible by the groups");
    l.kind = LayerKind::Conv;
    l.units = int(f);
    l.groups = int(groups);
    l.kernel = int(k);
    l.stride = int(s);
    l.pad = pad < 0 ? int(k / 2) : int(pad);
    if (l.pad >= l.kernel) bad_token(spec, l, "conv padding smaller than the kernel");
}

/// leakyrelu[:A] (A default 0.01) and elu[:A] (A default 1), A a finite number, into l.
void parse_alpha(const std::string& spec, const std::string& arg, bool has_arg, LayerSpec& l, bool elu) {
    char* endp = nullptr;
    const double a = has_arg && !arg.empty() ? std::strtod(arg.c_str(), &endp) : 0.0;
    if (has_arg && (arg.empty() || endp != arg.c_str() + arg.size() || !(a > -1e30 && a < 1e30)))
        bad_token(spec, l,
                  elu ? "elu or elu:<alpha> with alpha a number"
                      : "leakyrelu or leakyrelu:<slope> "
                        "with slope a number");
    l.kind = elu ? LayerKind::ELU : LayerKind::LeakyReLU;
    l.alpha = has_arg ? float(a) : elu ? 1.0f : 0.01f;
}

/// The layer kind and arguments of token l.token (trimmed, not a block) of spec.
void parse_token(const std::string& spec, LayerSpec& l) {
    const std::string& t = l.token;
    const std::size_t colon = t.find(':');
    const std::string name = t.substr(0, colon);
    const std::string arg = colon == std::string::npos ? std::string() : t.substr(colon + 1);
    const bool has_arg = colon != std::string::npos;
    long v = 0;
    if (t.empty()) {
        bad_token(spec, l, "a layer token (empty token: doubled or trailing comma?)");
    } else if (name == "dense" || name == "bottleneck") {
        const bool dense = name == "dense";
        if (!has_arg || !parse_whole_int(arg, v) || v < 1)
            bad_token(spec, l,
                      dense ? "dense:<units> with units a positive integer"
                            : "bottleneck:<units> with units a positive integer");
        l.kind = dense ? LayerKind::Dense : LayerKind::Bottleneck;
        l.units = int(v);
    } else if (name == "conv" || name == "dwconv") {
        parse_conv(spec, arg, has_arg, l, name == "dwconv");
    } else if (name == "pool" || name == "avgpool") {
        if (const char* expected = parse_pool(name, arg, has_arg, l)) bad_token(spec, l, expected);
    } else if (name == "dropout") {
        char* endp = nullptr;
        const double p = has_arg && !arg.empty() ? std::strtod(arg.c_str(), &endp) : -1.0;
        if (!has_arg || arg.empty() || endp != arg.c_str() + arg.size() || !(p >= 0.0 && p < 1.0))
            bad_token(spec, l, "dropout:<rate> with 0 <= rate < 1");
        l.kind = LayerKind::Dropout;
        l.rate = float(p);
    } else if (name == "leakyrelu" || name == "elu") {
        parse_alpha(spec, arg, has_arg, l, name == "elu");
    } else if (name == "ln") {
        char* endp = nullptr;
        const double e = has_arg && !arg.empty() ? std::strtod(arg.c_str(), &endp) : 1e-5;
        if (has_arg && (arg.empty() || endp != arg.c_str() + arg.size() || !(e > 0.0 && e < 1.0)))
            bad_token(spec, l, "ln or ln:<epsilon> with 0 < epsilon < 1");
        l.kind = LayerKind::LayerNorm;
        l.alpha = float(e);
    } else if (name == "relu" || name == "sigmoid" || name == "tanh" || name == "flatten") {
        if (has_arg) bad_token(spec, l, "no argument after this layer name");
        l.kind = name == "relu"      ? LayerKind::ReLU
                 : name == "sigmoid" ? LayerKind::Sigmoid
                 : name == "tanh"    ? LayerKind::Tanh
                                     : LayerKind::Flatten;
    } else if (plain_kind(name, l.kind)) {
        if (has_arg) bad_token(spec, l, "no argument after this layer name");
    } else {
        bad_token(spec, l,
                  "one of dense:N, bottleneck:K, conv:FxK[sS][pP][gG], dwconv:K[sS][pP], pool:K[sS][pP], "
                  "avgpool:K[sS][pP][e][c], gap, relu, relu6, sigmoid, silu, hardswish, hardsigmoid, "
                  "leakyrelu[:A], elu[:A], gelu, tanh, dropout:P, flatten, bn, ln[:E], or a block res(...), "
                  "cat(...), gate(...)");
    }
}

std::vector<LayerSpec> parse_chain(const std::string& spec, std::size_t begin, std::size_t end,
                                   const std::string& prefix, int depth);

constexpr int kMaxBlockDepth = 64; ///< blocks nested deeper are refused (the parser recurses per level)

/// End of the item that starts at `start` in spec[start, end): the next `sep` outside parentheses, or end.
/// Throws (naming the item) on a ')' without its '(' or a '(' without its ')'.
std::size_t item_end(const std::string& spec, std::size_t start, std::size_t end, char sep, LayerSpec& l) {
    int depth = 0;
    std::size_t i = start;
    for (; i < end && !(depth == 0 && spec[i] == sep); ++i) {
        depth += spec[i] == '(' ? 1 : spec[i] == ')' ? -1 : 0;
        if (depth < 0) break;
    }
    if (depth != 0) {
        std::size_t lead = 0;
        l.token = trim(spec.substr(start, depth < 0 ? i + 1 - start : i - start), lead);
        l.offset = start + lead;
        bad_token(spec, l, depth < 0 ? "no ')' without its '('" : "a ')' closing every '('");
    }
    return i;
}

/// Block token l.token = name(branch|branch|...) at l.offset of spec into l.
void parse_block(const std::string& spec, LayerSpec& l, int depth) {
    const std::size_t open = l.token.find('(');
    const std::string name = trim_copy(l.token.substr(0, open));
    const char* form = "a block res(A[|B...]), cat(A|B[|...]) or gate(A), A and B chains of tokens";
    if (name == "res")
        l.join = Join::Add;
    else if (name == "cat")
        l.join = Join::Concat;
    else if (name == "gate")
        l.join = Join::Mul;
    else
        bad_token(spec, l, form);
    if (l.token.back() != ')') bad_token(spec, l, std::string(form) + " (text after the closing ')')");
    if (depth >= kMaxBlockDepth)
        bad_token(spec, l, detail::concat("blocks nested at most ", kMaxBlockDepth, " deep"));
    l.kind = LayerKind::Block;
    const std::size_t first = l.offset + open + 1, last = l.offset + l.token.size() - 1;
    for (std::size_t start = first; start <= last;) {
        LayerSpec item;
        item.path = l.path;
        const std::size_t end = item_end(spec, start, last, '|', item);
        std::size_t lead = 0;
        const std::string text = trim(spec.substr(start, end - start), lead);
        const std::string prefix = detail::concat(l.path, ".", l.branches.size() + 1, ".");
        if (text.empty() || text == "id")
            l.branches.emplace_back();
        else
            l.branches.push_back(parse_chain(spec, start, end, prefix, depth + 1));
        start = end + 1;
    }
    const std::size_t n = l.branches.size();
    if (l.join == Join::Add && n == 1 && l.branches[0].empty())
        bad_token(spec, l, "res(A) with A a chain of tokens (res() adds nothing)");
    if (l.join == Join::Concat && n < 2) bad_token(spec, l, "cat(A|B[|...]) with two branches or more");
    if (l.join == Join::Mul && (n != 1 || l.branches[0].empty()))
        bad_token(spec, l, "gate(A) with A one chain of tokens (the gate)");
    if (l.join == Join::Add && n == 1) l.branches.emplace_back(); // res(A): the identity shortcut
}

/// The comma-separated chain spec[begin, end) (the whole spec, or one branch of a block); tokens are
/// numbered prefix + 1, prefix + 2, ...
std::vector<LayerSpec> parse_chain(const std::string& spec, std::size_t begin, std::size_t end,
                                   const std::string& prefix, int depth) {
    std::vector<LayerSpec> out;
    std::size_t start = begin;
    int position = 0;
    while (start <= end) {
        LayerSpec l;
        l.position = ++position;
        l.path = prefix + std::to_string(l.position);
        const std::size_t stop = item_end(spec, start, end, ',', l);
        std::size_t lead = 0;
        l.token = trim(spec.substr(start, stop - start), lead);
        l.offset = start + lead;
        if (l.token.find('(') != std::string::npos)
            parse_block(spec, l, depth);
        else
            parse_token(spec, l);
        out.push_back(std::move(l));
        start = stop + 1;
    }
    return out;
}

} // namespace

std::vector<LayerSpec> parse_spec(const std::string& spec) {
    std::size_t lead = 0;
    if (trim(spec, lead).empty())
        throw SpecSyntaxError("arch: empty architecture spec (expected e.g. dense:1200,relu,dense:10)", 0, 0);
    return parse_chain(spec, 0, spec.size(), "", 0);
}

namespace {

std::string shape_words(Shape s) {
    if (s.c == 1 && s.h == 1) return detail::concat(s.w, " features");
    return detail::concat(s.c, "x", s.h, "x", s.w);
}

/// Output shape of a block: every branch's chain, then the join's rule (errors name the block).
Shape block_shape(const LayerSpec& l, Shape in) {
    std::vector<Shape> outs;
    for (const auto& branch : l.branches) {
        Shape s = in;
        for (const auto& layer : branch)
            s = infer_shape(layer, s);
        outs.push_back(s);
    }
    auto which = [&](std::size_t j) {
        return detail::concat("branch ", j + 1, l.branches[j].empty() ? " (the input itself)" : "", " gives ",
                              shape_words(outs[j]));
    };
    if (l.join == Join::Add) {
        for (std::size_t j = 1; j < outs.size(); ++j)
            if (outs[j] != outs[0])
                fail(token_context(l), ": ", which(0), " but ", which(j),
                     ": the shapes added must match (a projection shortcut such as res(...|conv:Fx1sS) "
                     "changes channels and stride)");
        return outs[0];
    }
    if (l.join == Join::Mul) {
        const Shape g = outs[0];
        const bool channel = in.c > 1 && (g == Shape{in.c, 1, 1} || g == Shape{1, 1, in.c});
        if (g != in && !channel)
            fail(token_context(l), ": the gate ", which(0), " but the input is ", shape_words(in),
                 ": a gate gives the input's shape or one factor per channel (", in.c, "x1x1 or ", in.c,
                 " features)");
        return in;
    }
    const bool flat = outs[0].c == 1 && outs[0].h == 1;
    Shape out{0, outs[0].h, outs[0].w};
    for (std::size_t j = 0; j < outs.size(); ++j) {
        const bool flat_j = outs[j].c == 1 && outs[j].h == 1;
        if (flat_j != flat || (!flat && (outs[j].h != out.h || outs[j].w != out.w)))
            fail(token_context(l), ": ", which(0), " but ", which(j),
                 ": concatenated branches need the same height and width (or all flat features)");
        out.c += outs[j].c;
    }
    if (flat) out = Shape{1, 1, 0};
    if (flat)
        for (const auto& s : outs)
            out.w += s.w;
    return out;
}

} // namespace

Shape infer_shape(const LayerSpec& l, Shape in) {
    auto fits = [&](bool ok, auto&&... why) {
        if (!ok) fail(token_context(l), ": ", why...);
    };
    const bool image = !(in.c == 1 && in.h == 1); // (1, 1, D) is flat data
    switch (l.kind) {
    case LayerKind::Dense:
    case LayerKind::Bottleneck:
        return Shape{1, 1, l.units};
    case LayerKind::Flatten:
        return Shape{1, 1, int(in.size())};
    case LayerKind::ReLU:
    case LayerKind::Sigmoid:
    case LayerKind::Tanh:
    case LayerKind::Dropout:
    case LayerKind::ReLU6:
    case LayerKind::SiLU:
    case LayerKind::HardSwish:
    case LayerKind::HardSigmoid:
    case LayerKind::LeakyReLU:
    case LayerKind::ELU:
    case LayerKind::GELU:
    case LayerKind::Softplus:
    case LayerKind::BatchNorm:
    case LayerKind::LayerNorm:
        return in;
    case LayerKind::Conv: {
        fits(image, "conv needs an image input (channels x height x width) but gets ", in.size(),
             " flat features (a flat data set, or after dense/flatten)");
        const int hp = in.h + 2 * l.pad, wp = in.w + 2 * l.pad;
        fits(hp >= l.kernel && wp >= l.kernel, "kernel ", l.kernel, " is larger than the padded input ", hp,
             "x", wp, " (input ", in.c, "x", in.h, "x", in.w, ")");
        const int groups = l.groups > 0 ? l.groups : in.c, filters = l.units > 0 ? l.units : in.c;
        fits(in.c % groups == 0, groups, " groups do not divide the input's ", in.c, " channels");
        return Shape{filters, (hp - l.kernel) / l.stride + 1, (wp - l.kernel) / l.stride + 1};
    }
    case LayerKind::Pool:
    case LayerKind::AvgPool:
    case LayerKind::GlobalAvgPool:
        return pool_shape(l, in);
    case LayerKind::Block:
        return block_shape(l, in);
    }
    fail(token_context(l), ": unknown layer kind");
}

} // namespace mimic::nn
