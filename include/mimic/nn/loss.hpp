// Losses on logits [B, C]: cross-entropy on hard labels, Ba & Caruana's L2 on teacher logits, and
// Hinton's distillation loss at temperature T (scaled by T^2), optionally mixed with hard labels.
#pragma once

#include "mimic/core/kokkos.hpp"

namespace mimic::nn {

/// Mean over the batch of -log softmax(z)[y]. Writes dL/dz (of the mean) into dlogits.
double cross_entropy(const Matrix& logits, const IntVector& labels, const Matrix& dlogits);

/// Mean over the batch of 0.5 * sum_c (z - t)^2 (the mimic loss). Writes dL/dz into dlogits.
double mimic_l2(const Matrix& logits, const Matrix& target, const Matrix& dlogits);

/// Hinton et al.: alpha * T^2 * KL(softmax(t/T) || softmax(z/T)) + (1 - alpha) * CE(z, y), mean over
/// the batch. With alpha = 1, labels may be empty. Writes dL/dz into dlogits.
double distill_kd(const Matrix& logits, const Matrix& teacher, const IntVector& labels, float T, float alpha,
                  const Matrix& dlogits);

} // namespace mimic::nn
