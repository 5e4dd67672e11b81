// The hook through which batch statistics are summed over the data replicas: nn has no MPI, so the
// data-parallel engine hands layers a StatReducer that sums a small vector over its replica communicator.
#pragma once

#include <functional>
#include <vector>

namespace mimic::nn {

/// Sums a small vector over the data replicas in place (a data-parallel engine sets one; nn has no MPI).
/// Every replica calls it the same number of times in the same order.
using StatReducer = std::function<void(std::vector<double>&)>;

} // namespace mimic::nn
