// Parsing the --loss spec and dispatching one batch to the loss kernels of nn/loss.hpp.
#include "mimic/train/objective.hpp"

#include "mimic/core/error.hpp"
#include "mimic/nn/loss.hpp"

namespace mimic::train {

double Objective::operator()(const Matrix& logits, const IntVector& labels, const Matrix& soft,
                             const Matrix& dlogits) const {
    switch (kind) {
    case Kind::CrossEntropy:
        return nn::cross_entropy(logits, labels, dlogits);
    case Kind::MimicL2:
        return nn::mimic_l2(logits, soft, dlogits);
    case Kind::KD:
        break;
    }
    return nn::distill_kd(logits, soft, labels, T, alpha, dlogits);
}

Objective parse_objective(const std::string& s, const std::string& option) {
    Objective o;
    o.name = s;
    if (s == "ce") return o;
    if (s == "mimic") {
        o.kind = Objective::Kind::MimicL2;
        return o;
    }
    if (s.rfind("kd:", 0) != 0) fail(option, ": '", s, "' is not mimic, kd:T[,alpha] or ce");
    o.kind = Objective::Kind::KD;
    const std::string rest = s.substr(3);
    const auto comma = rest.find(',');
    try {
        size_t used = 0;
        const std::string t = rest.substr(0, comma);
        o.T = std::stof(t, &used);
        if (used != t.size()) throw std::invalid_argument(t);
        if (comma != std::string::npos) {
            const std::string a = rest.substr(comma + 1);
            o.alpha = std::stof(a, &used);
            if (used != a.size()) throw std::invalid_argument(a);
        }
    } catch (const std::exception&) {
        fail(option, ": '", s, "' is not kd:T[,alpha] with numbers T > 0 and 0 <= alpha <= 1");
    }
    if (!(o.T > 0) || !(o.alpha >= 0 && o.alpha <= 1))
        fail(option, ": '", s, "' needs T > 0 and 0 <= alpha <= 1");
    return o;
}

} // namespace mimic::train
