// The linear bottleneck of Ba & Caruana: k linear units without bias or activation, so that the next
// dense layer's W = U·V is factored (D·H parameters become k·(D + H)); it runs the Dense kernels.
#pragma once

#include "mimic/nn/layers/dense.hpp"

namespace mimic::nn {

/// bottleneck:K. Parameter "layer<i>.bottleneck.W" {in, K} (U); the following dense layer holds V. Folding
/// it back into one matrix is U·V (a GEMM on the two tensors).
class Bottleneck : public Dense {
public:
    Bottleneck(int index, std::string token, Shape in, int units)
        : Dense(index, std::move(token), in, units, /*bias=*/false) {}
};

} // namespace mimic::nn
