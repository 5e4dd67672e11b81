// The training objective: cross-entropy on hard labels, L2 on the ensemble's logits (Ba & Caruana's
// mimic loss) or Hinton's KD loss with temperature T and label weight alpha, parsed from one spec string.
#pragma once

#include "mimic/core/kokkos.hpp"

#include <string>

namespace mimic::train {

struct Objective {
    enum class Kind { CrossEntropy, MimicL2, KD };
    Kind kind = Kind::CrossEntropy;
    float T = 1, alpha = 1;  ///< KD only
    std::string name = "ce"; ///< as given: "ce", "mimic", "kd:4,0.9" (stored in model files)

    /// Hard labels are read when the loss uses them (ce, or kd with alpha < 1).
    bool needs_labels() const { return kind == Kind::CrossEntropy || (kind == Kind::KD && alpha < 1); }
    /// Teacher logits (soft targets) are read for mimic and kd.
    bool needs_soft() const { return kind != Kind::CrossEntropy; }
    /// Mean loss over the rows of `logits`; writes dL/dlogits of that mean.
    double operator()(const Matrix& logits, const IntVector& labels, const Matrix& soft,
                      const Matrix& dlogits) const;
};

/// "ce" | "mimic" | "kd:T[,alpha]" (T > 0, 0 <= alpha <= 1); anything else is a one-line error naming
/// `option`.
Objective parse_objective(const std::string& spec, const std::string& option = "--loss");

} // namespace mimic::train
