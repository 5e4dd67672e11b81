// Dense and bottleneck layers: bias broadcast + sgemm forward; backward with two sgemms (dW = x^T·dy,
// dx = dy·W^T, skipped for the first layer) and a column sum for the bias.
#include "mimic/nn/layers/dense.hpp"

namespace mimic::nn {

void dense_forward(const Matrix& x, const UnmanagedMatrix& W, const UnmanagedVector& b, const Matrix& y) {
    Kokkos::Profiling::pushRegion("mimic::nn::dense::forward");
    if (b.extent(0) > 0) {
        broadcast_rows(y, b);
        gemm("N", "N", 1.0f, x, W, 1.0f, y);
    } else {
        gemm("N", "N", 1.0f, x, W, 0.0f, y);
    }
    Kokkos::Profiling::popRegion();
}

void dense_backward(const Matrix& x, const UnmanagedMatrix& W, const Matrix& dy, const UnmanagedMatrix& dW,
                    const UnmanagedVector& db, const Matrix& dx) {
    Kokkos::Profiling::pushRegion("mimic::nn::dense::backward");
    gemm("T", "N", 1.0f, x, dy, 1.0f, dW);
    if (db.extent(0) > 0) accumulate_column_sums(dy, db);
    if (dx.extent(0) > 0) gemm("N", "T", 1.0f, dy, W, 0.0f, dx);
    Kokkos::Profiling::popRegion();
}

Dense::Dense(int index, std::string token, Shape in, int units, bool bias)
    : Layer(index, std::move(token), in, Shape{1, 1, units}), units_(units), bias_(bias) {}

std::vector<ParamDecl> Dense::param_decls() const {
    std::vector<ParamDecl> d{{"W", {in_.size(), units_}}};
    if (bias_) d.push_back({"b", {units_}});
    return d;
}

void Dense::bind(const std::vector<UnmanagedVector>& params, const std::vector<UnmanagedVector>& grads) {
    W_ = UnmanagedMatrix(params[0].data(), in_.size(), units_);
    dW_ = UnmanagedMatrix(grads[0].data(), in_.size(), units_);
    if (bias_) {
        b_ = params[1];
        db_ = grads[1];
    }
}

void Dense::init(std::uint64_t seed, bool he) {
    init_weights(UnmanagedVector(W_.data(), W_.size()), in_.size(), units_, he, seed);
    if (bias_) Kokkos::deep_copy(b_, 0.0f);
}

void Dense::forward(const Matrix& x, const Matrix& y, const ForwardContext&) {
    dense_forward(x, W_, b_, y);
}

void Dense::backward(const Matrix& x, const Matrix&, const Matrix& dy, const Matrix& dx) {
    dense_backward(x, W_, dy, dW_, db_, dx);
}

} // namespace mimic::nn
