// Inverted dropout kernels; the backward pass recomputes the forward mask from the counter-based RNG
// instead of storing it.
#include "mimic/nn/layers/dropout.hpp"

#include "mimic/core/rng.hpp"

namespace mimic::nn {

namespace {
void apply_mask(const char* label, const Matrix& in, const Matrix& out, float p, std::uint64_t seed,
                int layer, std::int64_t row_offset) {
    const std::int64_t rows = in.extent(0), cols = in.extent(1);
    MIMIC_REQUIRE(out.extent(0) == in.extent(0) && out.extent(1) == in.extent(1), label, ": shape mismatch");
    const float scale = 1.0f / (1.0f - p);
    Kokkos::parallel_for(
        label, RangePolicy(0, rows * cols), KOKKOS_LAMBDA(const std::int64_t i) {
            const std::int64_t r = i / cols, u = i % cols;
            CounterRng rng(derive_seed(seed, std::uint64_t(layer), std::uint64_t(row_offset + r)),
                           std::uint64_t(u));
            out.data()[i] = rng.uniform() >= p ? in.data()[i] * scale : 0.0f;
        });
}
} // namespace

void dropout_forward(const Matrix& x, const Matrix& y, float p, std::uint64_t seed, int layer,
                     std::int64_t row_offset) {
    apply_mask("mimic::nn::dropout::forward", x, y, p, seed, layer, row_offset);
}

void dropout_backward(const Matrix& dy, const Matrix& dx, float p, std::uint64_t seed, int layer,
                      std::int64_t row_offset) {
    apply_mask("mimic::nn::dropout::backward", dy, dx, p, seed, layer, row_offset);
}

void Dropout::forward(const Matrix& x, const Matrix& y, const ForwardContext& ctx) {
    train_ = ctx.train && p_ > 0.0f;
    seed_ = ctx.dropout_seed;
    row_offset_ = ctx.row_offset;
    if (train_)
        dropout_forward(x, y, p_, seed_, index_, row_offset_);
    else
        Kokkos::deep_copy(y, x);
}

void Dropout::backward(const Matrix&, const Matrix&, const Matrix& dy, const Matrix& dx) {
    if (dx.extent(0) == 0) return;
    if (train_)
        dropout_backward(dy, dx, p_, seed_, index_, row_offset_);
    else
        Kokkos::deep_copy(dx, dy);
}

} // namespace mimic::nn
