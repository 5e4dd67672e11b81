// Inverted dropout: in training, each unit is kept with probability 1 - p and scaled by 1 / (1 - p); the
// mask is drawn from CounterRng keyed by (dropout seed, layer index, row, unit), so it is thread-order free.
#pragma once

#include "mimic/nn/layer.hpp"

namespace mimic::nn {

/// y = x * keep / (1 - p) with keep = (uniform(seed, layer, row_offset + row, unit) >= p).
void dropout_forward(const Matrix& x, const Matrix& y, float p, std::uint64_t seed, int layer,
                     std::int64_t row_offset = 0);
/// dx = dy * keep / (1 - p), the same mask recomputed from (seed, layer, row_offset + row, unit).
void dropout_backward(const Matrix& dy, const Matrix& dx, float p, std::uint64_t seed, int layer,
                      std::int64_t row_offset = 0);

class Dropout : public Layer {
public:
    Dropout(int index, std::string token, Shape in, float p)
        : Layer(index, std::move(token), in, in), p_(p) {}
    const char* kind() const override { return "dropout"; }
    float rate() const { return p_; }
    void forward(const Matrix& x, const Matrix& y, const ForwardContext& ctx) override;
    void backward(const Matrix& x, const Matrix& y, const Matrix& dy, const Matrix& dx) override;

private:
    float p_;
    bool train_ = false;          ///< mode of the last forward
    std::uint64_t seed_ = 0;      ///< dropout seed of the last forward
    std::int64_t row_offset_ = 0; ///< row offset of the last forward
};

} // namespace mimic::nn
