// Mul, Add, Sub and Div of a data tensor by a constant (a scalar, or one value per channel or unit) in the
// ONNX import, as users write normalisations inside the model: folded into the layer before, or a bn; PRelu;
// and the bn that maps a dataset's stored rows to the normalisation the model was trained with.
#include "mimic/io/impl/onnx_import.hpp"

#include "mimic/core/error.hpp"
#include "mimic/nn/layers/batchnorm.hpp"

#include <cmath>

namespace mimic::io::impl {

namespace {

/// A bn of `units` channels or units that computes y = x * s + t: mean 0 and variance 1 (less bn's
/// epsilon).
Pending affine_bn(int units, std::vector<double> s, std::vector<double> t) {
    Pending p;
    p.kind = nn::LayerKind::BatchNorm;
    p.token = "bn";
    p.out = units;
    p.W = std::move(s);
    p.b = std::move(t);
    p.mean.assign(std::size_t(units), 0.0);
    p.var.assign(std::size_t(units), 1.0 - nn::BatchNorm::kEps);
    return p;
}

} // namespace

/// The constant c, which must be a scalar or [C, 1, 1] ([D] on flat tensors; leading 1s allowed), as one
/// value per channel (image) or unit (flat) of the `units` there.
std::vector<double> Importer::unit_values(const Const& c, int units, const std::string& where) const {
    std::vector<std::int64_t> d = c.dims;
    const bool per_map = image_ && !channels_last_; // [C, 1, 1]; channels-last values take [C]
    while (!d.empty() && d.front() == 1 && d.size() > (per_map ? 3u : 1u))
        d.erase(d.begin());
    const bool scalar = c.size() == 1;
    const bool per_unit =
        per_map ? d.size() == 3 && d[0] == units && d[1] == 1 && d[2] == 1 : d.size() == 1 && d[0] == units;
    if (!scalar && !per_unit)
        fail(where, ": constant of shape ", dims_text(c.dims), " is neither a scalar nor one value per ",
             per_map  ? "channel [C, 1, 1]"
             : image_ ? "channel [C] (channels-last values)"
                      : "unit [D]",
             " of the ", units, image_ ? " channels" : " units");
    std::vector<double> v(static_cast<std::size_t>(units));
    for (int u = 0; u < units; ++u)
        v[std::size_t(u)] = c.v[scalar ? 0 : std::size_t(u)];
    return v;
}

/// n is Mul, Add, Sub or Div of cur_ and a constant: y = x * s + t per channel (image) or unit (flat), s
/// and t from the constant (unit_values). Folded into the Conv, Gemm or MatMul right before (as a
/// BatchNormalization is), or into the bn an earlier one made; else a bn with these as scale and B.
void Importer::affine(const GraphNode& n, const std::string& where) {
    const std::string& op = n.op_type();
    const int data = n.input(0) == cur_ ? 0 : 1;
    const Const& c = need_const(n.input(1 - data), where, "operand");
    if (op == "Div" && data == 1)
        fail(where, ": divides the constant by the data; supported is data / constant");
    const int units = fresh_param_ ? layers_->back().out : image_ ? shape_.c : int(shape_.size());
    const std::vector<double> cv = unit_values(c, units, where);
    std::vector<double> s(std::size_t(units), 1.0), t(std::size_t(units), 0.0);
    for (int u = 0; u < units; ++u) {
        const double v = cv[std::size_t(u)];
        if (op == "Mul") s[std::size_t(u)] = v;
        if (op == "Div") s[std::size_t(u)] = 1.0 / v;
        if (op == "Add") t[std::size_t(u)] = v;
        if (op == "Sub") s[std::size_t(u)] = data == 0 ? 1.0 : -1.0, t[std::size_t(u)] = data == 0 ? -v : v;
    }
    if (fresh_param_ || fresh_affine_) {
        Pending& p = layers_->back();
        if (p.b.empty()) p.b.assign(std::size_t(p.out), 0.0);
        for (int u = 0; u < p.out; ++u)
            p.b[std::size_t(u)] = p.b[std::size_t(u)] * s[std::size_t(u)] + t[std::size_t(u)];
        for (std::size_t k = 0; k < p.W.size(); ++k)
            p.W[k] *= s[k % std::size_t(p.out)];
        if (p.kind == nn::LayerKind::Bottleneck) {
            p.kind = nn::LayerKind::Dense;
            p.token = "dense:" + std::to_string(p.out);
        }
        return advance(n);
    }
    push(affine_bn(units, std::move(s), std::move(t)), where);
    fresh_affine_ = true;
    advance(n);
}

/// PRelu(x, slope), one slope or one per channel (unit_values): relu(x) - slope * relu(-x), imported as
/// res(relu|bn,relu,bn), the first bn negating and the second scaling by -slope: a negative x gives
/// (-a)·(-x), one product as PyTorch's a·x (the bn's scale of 1 over sqrt(var + eps) is 1.0 in float).
void Importer::prelu(const GraphNode& n, const std::string& where) {
    need_cur(n, where);
    if (n.input_size() != 2) fail(where, ": expected 2 inputs (X, slope)");
    const int units = image_ ? shape_.c : int(shape_.size());
    std::vector<double> neg_slope = unit_values(need_const(n.input(1), where, "slope"), units, where);
    for (double& a : neg_slope)
        a = -a;
    Pending relu;
    relu.kind = nn::LayerKind::ReLU;
    relu.token = "relu";
    const std::vector<double> zero(std::size_t(units), 0.0), minus_one(std::size_t(units), -1.0);
    Pending b;
    b.kind = nn::LayerKind::Block;
    b.join = nn::Join::Add;
    b.branches = {{relu}, {affine_bn(units, minus_one, zero), relu, affine_bn(units, neg_slope, zero)}};
    push_block(std::move(b), where);
    advance(n);
}

/// The first layer for import_onnx's `input`: a bn giving x · a + b per channel (image models) or feature
/// (flat models), a = data std / std and b = (data mean − mean) / std, so that rows stored as (raw · scale −
/// data mean) / data std become (raw · scale − mean) / std. An image model needs the data's statistics to be
/// one value per channel.
Pending Importer::input_bn() const {
    const InputNorm& in = *input_norm_;
    const RawInput& d = in.data;
    const bool flat = input_.c == 1 && input_.h == 1;
    const std::int64_t D = input_.size(), units = flat ? D : input_.c, per_unit = D / units;
    if (std::int64_t(d.mean.size()) != D || std::int64_t(d.std.size()) != D)
        fail("--norm-from: ", d.source, ": samples have ", d.mean.size(), " features but ", path_, " takes ",
             input_.c, "x", input_.h, "x", input_.w, " = ", D);
    for (const auto* v : {&in.mean, &in.std})
        if (v->size() != 1 && std::int64_t(v->size()) != units)
            fail("--input-", v == &in.mean ? "mean" : "std", ": ", v->size(), " values for a model of ",
                 units, flat ? " input features" : " channels", " (give one, or one per ",
                 flat ? "feature)" : "channel)");
    std::vector<double> a(static_cast<std::size_t>(units)), b(static_cast<std::size_t>(units));
    for (std::int64_t u = 0; u < units; ++u) {
        const std::int64_t f0 = u * per_unit;
        for (std::int64_t f = f0; f < f0 + per_unit; ++f)
            if (d.mean[size_t(f)] != d.mean[size_t(f0)] || d.std[size_t(f)] != d.std[size_t(f0)])
                fail("--norm-from: ", d.source, ": normalised per feature (feature ", f, " of channel ", u,
                     " has mean ", d.mean[size_t(f)], " and std ", d.std[size_t(f)], ", feature ", f0, " ",
                     d.mean[size_t(f0)], " and ", d.std[size_t(f0)],
                     "); a per-channel input normalisation needs data imported with --norm global, "
                     "per-channel or none");
        const double m = in.mean[in.mean.size() == 1 ? 0 : size_t(u)];
        const double s = in.std[in.std.size() == 1 ? 0 : size_t(u)];
        a[size_t(u)] = double(d.std[size_t(f0)]) / s;
        b[size_t(u)] = (double(d.mean[size_t(f0)]) - m) / s;
        if (!std::isfinite(float(a[size_t(u)])) || !std::isfinite(float(b[size_t(u)])))
            fail("--input-mean, --input-std: mean ", m, " and std ", s, " give channel ", u,
                 " a scale or shift beyond float range");
    }
    return affine_bn(int(units), std::move(a), std::move(b));
}

} // namespace mimic::io::impl
