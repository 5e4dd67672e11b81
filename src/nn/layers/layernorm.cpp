// Layer normalisation kernels: per (row, position) moments over the channels in double, the input gradient
// per (row, position), and the parameter gradients as per-plane sums then batchnorm's per-channel totals.
#include "mimic/nn/layers/layernorm.hpp"

#include <cmath>

namespace mimic::nn {

void layernorm_forward(const Matrix& x, int C, int HW, double eps, const UnmanagedVector& gamma,
                       const UnmanagedVector& beta, const Vector& mean, const Vector& rstd, const Matrix& y) {
    const std::int64_t n = std::int64_t(x.extent(0)) * HW;
    Kokkos::parallel_for(
        "mimic::nn::ln::forward", RangePolicy(0, n), KOKKOS_LAMBDA(const std::int64_t i) {
            const std::int64_t b = i / HW, p = i % HW;
            double s = 0;
            for (int c = 0; c < C; ++c)
                s += x(b, c * HW + p);
            const double m = s / C;
            double q = 0;
            for (int c = 0; c < C; ++c) {
                const double d = x(b, c * HW + p) - m;
                q += d * d;
            }
            const float mf = float(m), r = float(1.0 / kmath::sqrt(q / C + eps));
            mean(i) = mf;
            rstd(i) = r;
            for (int c = 0; c < C; ++c)
                y(b, c * HW + p) = (x(b, c * HW + p) - mf) * r * gamma(c) + beta(c);
        });
}

void layernorm_dx(const Matrix& x, const Matrix& dy, int C, int HW, const UnmanagedVector& gamma,
                  const Vector& mean, const Vector& rstd, const Matrix& dx) {
    const std::int64_t n = std::int64_t(x.extent(0)) * HW;
    Kokkos::parallel_for(
        "mimic::nn::ln::dx", RangePolicy(0, n), KOKKOS_LAMBDA(const std::int64_t i) {
            const std::int64_t b = i / HW, p = i % HW;
            const float m = mean(i), r = rstd(i);
            double sg = 0, sgx = 0;
            for (int c = 0; c < C; ++c) {
                const double g = double(dy(b, c * HW + p)) * gamma(c);
                sg += g;
                sgx += g * double((x(b, c * HW + p) - m) * r);
            }
            const float a = float(sg / C), bb = float(sgx / C);
            for (int c = 0; c < C; ++c) {
                const float xhat = (x(b, c * HW + p) - m) * r;
                dx(b, c * HW + p) = r * (dy(b, c * HW + p) * gamma(c) - a - xhat * bb);
            }
        });
}

void layernorm_param_grads(const Matrix& x, const Matrix& dy, int C, int HW, const Vector& mean,
                           const Vector& rstd, const DoubleVector& planes, const DoubleVector& sums,
                           const UnmanagedVector& dgamma, const UnmanagedVector& dbeta) {
    const std::int64_t B = std::int64_t(x.extent(0));
    Kokkos::parallel_for(
        "mimic::nn::ln::planes", RangePolicy(0, B * C), KOKKOS_LAMBDA(const std::int64_t i) {
            const std::int64_t b = i / C, c = i % C;
            double s = 0, sx = 0;
            for (std::int64_t p = 0; p < HW; ++p) {
                const float g = dy(b, c * HW + p);
                s += g;
                sx += double(g) * double((x(b, c * HW + p) - mean(b * HW + p)) * rstd(b * HW + p));
            }
            planes(2 * i) = s;
            planes(2 * i + 1) = sx;
        });
    batchnorm_plane_totals(planes, B, C, sums); // per channel, in row order
    batchnorm_param_grads(sums, dgamma, dbeta);
}

LayerNorm::LayerNorm(int index, std::string token, Shape in, double eps)
    : Layer(index, std::move(token), in, in), C_(in.c), HW_(in.h * in.w), eps_(eps) {
    if (in.c == 1 && in.h == 1) C_ = in.w, HW_ = 1; // flat features: one position of D values
}

void LayerNorm::bind(const std::vector<UnmanagedVector>& params, const std::vector<UnmanagedVector>& grads) {
    gamma_ = params[0];
    beta_ = params[1];
    dgamma_ = grads[0];
    dbeta_ = grads[1];
}

void LayerNorm::init(std::uint64_t, bool) {
    Kokkos::deep_copy(gamma_, 1.0f);
    Kokkos::deep_copy(beta_, 0.0f);
}

void LayerNorm::forward(const Matrix& x, const Matrix& y, const ForwardContext&) {
    const std::int64_t n = std::int64_t(x.extent(0)) * HW_;
    if (std::int64_t(mean_.extent(0)) < n) {
        mean_ = Vector("mimic::nn::LayerNorm::mean", size_t(n));
        rstd_ = Vector("mimic::nn::LayerNorm::rstd", size_t(n));
    }
    layernorm_forward(x, C_, HW_, eps_, gamma_, beta_, mean_, rstd_, y);
}

void LayerNorm::backward(const Matrix& x, const Matrix&, const Matrix& dy, const Matrix& dx) {
    const std::int64_t planes = 2 * std::int64_t(x.extent(0)) * C_;
    if (std::int64_t(planes_.extent(0)) < planes)
        planes_ = DoubleVector("mimic::nn::LayerNorm::planes", size_t(planes));
    if (sums_.extent(0) == 0) sums_ = DoubleVector("mimic::nn::LayerNorm::sums", size_t(2 * C_));
    layernorm_param_grads(x, dy, C_, HW_, mean_, rstd_, planes_, sums_, dgamma_, dbeta_);
    if (dx.extent(0) > 0) layernorm_dx(x, dy, C_, HW_, gamma_, mean_, rstd_, dx);
}

} // namespace mimic::nn
