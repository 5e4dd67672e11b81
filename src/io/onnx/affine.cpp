// Mul, Add, Sub and Div of a data tensor by a constant (a scalar, or one value per channel or unit) in the
// ONNX import, as users write normalisations inside the model: folded into the layer before, or a bn.
#include "mimic/io/impl/onnx_import.hpp"

#include "mimic/core/error.hpp"
#include "mimic/nn/layers/batchnorm.hpp"

namespace mimic::io::impl {

/// n is Mul, Add, Sub or Div of cur_ and a constant: y = x * s + t per channel (image) or unit (flat), s
/// and t from the constant, which must be a scalar or [C, 1, 1] ([D] on flat tensors), leading 1s allowed.
/// Folded into the Conv, Gemm or MatMul right before (as a BatchNormalization is), or into the bn an
/// earlier one made; else a bn with these as scale and B, mean 0 and variance 1 (less bn's epsilon).
void Importer::affine(const GraphNode& n, const std::string& where) {
    const std::string& op = n.op_type();
    const int data = n.input(0) == cur_ ? 0 : 1;
    const Const& c = need_const(n.input(1 - data), where, "operand");
    if (op == "Div" && data == 1)
        fail(where, ": divides the constant by the data; supported is data / constant");
    const int units = fresh_param_ ? layers_->back().out : image_ ? shape_.c : int(shape_.size());
    std::vector<std::int64_t> d = c.dims;
    while (!d.empty() && d.front() == 1 && d.size() > (image_ ? 3u : 1u))
        d.erase(d.begin());
    const bool scalar = c.size() == 1;
    const bool per_unit =
        image_ ? d.size() == 3 && d[0] == units && d[1] == 1 && d[2] == 1 : d.size() == 1 && d[0] == units;
    if (!scalar && !per_unit)
        fail(where, ": constant of shape ", dims_text(c.dims), " is neither a scalar nor one value per ",
             image_ ? "channel [C, 1, 1]" : "unit [D]", " of the ", units, image_ ? " channels" : " units");
    std::vector<double> s(std::size_t(units), 1.0), t(std::size_t(units), 0.0);
    for (int u = 0; u < units; ++u) {
        const double v = c.v[scalar ? 0 : std::size_t(u)];
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
    Pending p;
    p.kind = nn::LayerKind::BatchNorm;
    p.token = "bn";
    p.out = units;
    p.W = s;
    p.b = t;
    p.mean.assign(std::size_t(units), 0.0);
    p.var.assign(std::size_t(units), 1.0 - nn::BatchNorm::kEps);
    push(std::move(p), where);
    fresh_affine_ = true;
    advance(n);
}

} // namespace mimic::io::impl
