// Batch normalisation kernels (per-plane sums in double, then per-channel totals in a fixed order;
// normalisation and input gradient per plane; AVX-512 on the host) and the layer's host-side statistics.
#include "mimic/nn/layers/batchnorm.hpp"

#include "mimic/nn/layers/impl/batchnorm_simd.hpp"

#include <cmath>

namespace mimic::nn {

namespace {

std::vector<double> to_host_doubles(const DoubleVector& v) {
    auto h = Kokkos::create_mirror_view(v);
    Kokkos::deep_copy(h, v);
    return std::vector<double>(h.data(), h.data() + h.size());
}
std::vector<float> to_host_floats(const UnmanagedVector& v) {
    std::vector<float> out(v.extent(0));
    Kokkos::deep_copy(
        Kokkos::View<float*, HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>(out.data(), out.size()), v);
    return out;
}
template <class V, class T>
void from_host(const V& v, const std::vector<T>& values) {
    auto h = Kokkos::create_mirror_view(v);
    for (std::size_t i = 0; i < values.size(); ++i)
        h(i) = values[i];
    Kokkos::deep_copy(v, h);
}

/// s[l] += g[i], q[l] += g[i] * (x[i] - m) * is for i < n (a multiple of 4), l = i % 4: the four
/// accumulators of a plane's gradient sums, in double.
KOKKOS_INLINE_FUNCTION void grad_sums_run(const float* g, const float* x, int n, float m, float is, double* s,
                                          double* q) {
    for (int i = 0; i < n; i += 4)
        for (int l = 0; l < 4; ++l) {
            s[l] += g[i + l];
            q[l] += double(g[i + l]) * double((x[i + l] - m) * is);
        }
}

/// Whether the AVX-512 kernels of impl/batchnorm_simd.hpp serve this build's execution space here.
bool simd_here() {
    if constexpr (impl::DirectConvAvailable<ExecSpace, MemSpace>::value)
        return impl::simd_batchnorm_available();
    return false;
}

} // namespace

void batchnorm_plane_totals(const DoubleVector& planes, std::int64_t B, int C, const DoubleVector& sums) {
    Kokkos::parallel_for(
        "mimic::nn::bn::totals", RangePolicy(0, C), KOKKOS_LAMBDA(const std::int64_t c) {
            double s = 0, s2 = 0;
            for (std::int64_t b = 0; b < B; ++b) {
                s += planes(2 * (b * C + c));
                s2 += planes(2 * (b * C + c) + 1);
            }
            sums(c) = s;
            sums(C + c) = s2;
        });
}

void batchnorm_sums(const Matrix& x, int C, int HW, const DoubleVector& planes, const DoubleVector& sums) {
    const std::int64_t B = x.extent(0);
    MIMIC_REQUIRE(std::int64_t(x.extent(1)) == std::int64_t(C) * HW && int(sums.extent(0)) >= 2 * C &&
                      std::int64_t(planes.extent(0)) >= 2 * B * C,
                  "batchnorm_sums: shape mismatch");
    const float* xp = x.data();
    if (simd_here()) {
        const impl::BnPlanes p{C, HW};
        impl::bn_plane_sums(xp, p, B * C, planes.data());
        batchnorm_plane_totals(planes, B, C, sums);
        return;
    }
    // One thread per (row, channel) plane, four independent accumulators (a fixed order).
    Kokkos::parallel_for(
        "mimic::nn::bn::sums", RangePolicy(0, B * C), KOKKOS_LAMBDA(const std::int64_t r) {
            const float* xs = xp + r * HW;
            double s[4] = {0, 0, 0, 0}, q[4] = {0, 0, 0, 0};
            int i = 0;
            for (; i + 4 <= HW; i += 4)
                for (int l = 0; l < 4; ++l) {
                    const double v = xs[i + l];
                    s[l] += v;
                    q[l] += v * v;
                }
            for (; i < HW; ++i) {
                s[0] += xs[i];
                q[0] += double(xs[i]) * xs[i];
            }
            planes(2 * r) = (s[0] + s[1]) + (s[2] + s[3]);
            planes(2 * r + 1) = (q[0] + q[1]) + (q[2] + q[3]);
        });
    batchnorm_plane_totals(planes, B, C, sums);
}

void batchnorm_apply(const Matrix& x, int C, int HW, const Vector& mean, const Vector& scale,
                     const Vector& shift, const Matrix& y, bool relu) {
    const std::int64_t n = std::int64_t(x.size());
    MIMIC_REQUIRE(std::int64_t(y.size()) == n, "batchnorm_apply: size mismatch");
    const float* xp = x.data();
    float* yp = y.data();
    if (simd_here()) {
        const impl::BnPlanes p{C, HW, mean.data(), nullptr, scale.data(), shift.data()};
        impl::bn_apply_planes(xp, p, relu, n / HW, yp);
        return;
    }
    // One thread per (row, channel) plane: no index arithmetic in the inner loop, which vectorises.
    Kokkos::parallel_for(
        "mimic::nn::bn::apply", RangePolicy(0, n / HW), KOKKOS_LAMBDA(const std::int64_t r) {
            const int c = int(r % C);
            const float m = mean(c), a = scale(c), sh = shift(c);
            const float* xs = xp + r * HW;
            float* ys = yp + r * HW;
            if (relu)
                for (int i = 0; i < HW; ++i) {
                    const float v = (xs[i] - m) * a + sh;
                    ys[i] = v > 0.0f ? v : 0.0f; // relu_forward's select
                }
            else
                for (int i = 0; i < HW; ++i)
                    ys[i] = (xs[i] - m) * a + sh;
        });
}

void batchnorm_grad_sums(const Matrix& x, const Matrix& dy, const Matrix& y, int C, int HW,
                         const Vector& mean, const Vector& invstd, const DoubleVector& planes,
                         const DoubleVector& sums) {
    const std::int64_t B = x.extent(0);
    MIMIC_REQUIRE(dy.size() == x.size() && int(sums.extent(0)) >= 2 * C &&
                      std::int64_t(planes.extent(0)) >= 2 * B * C,
                  "batchnorm_grad_sums: shape mismatch");
    MIMIC_REQUIRE(y.size() == 0 || y.size() == x.size(), "batchnorm_grad_sums: mask size mismatch");
    const float* xp = x.data();
    const float* gp = dy.data();
    const float* yp = y.size() > 0 ? y.data() : nullptr;
    if (simd_here()) {
        const impl::BnPlanes p{C, HW, mean.data(), invstd.data()};
        impl::bn_grad_plane_sums(xp, gp, yp, p, B * C, planes.data());
        batchnorm_plane_totals(planes, B, C, sums);
        return;
    }
    Kokkos::parallel_for(
        "mimic::nn::bn::grad_sums", RangePolicy(0, B * C), KOKKOS_LAMBDA(const std::int64_t r) {
            const int c = int(r % C);
            const float m = mean(c), is = invstd(c);
            const float* xs = xp + r * HW;
            const float* gs = gp + r * HW;
            double s[4] = {0, 0, 0, 0}, q[4] = {0, 0, 0, 0};
            const int HW4 = HW / 4 * 4;
            if (yp) {
                // g = dy, or 0 where the fused ReLU's output is not positive (relu_backward's select), a
                // block at a time into gb: selected there, it stays a select rather than a branch on the
                // mask.
                const float* ms = yp + r * HW;
                float gb[64];
                for (int i0 = 0; i0 < HW4; i0 += 64) {
                    const int n = HW4 - i0 < 64 ? HW4 - i0 : 64;
                    for (int j = 0; j < n; ++j) {
                        const float gv = gs[i0 + j];
                        gb[j] = ms[i0 + j] > 0.0f ? gv : 0.0f;
                    }
                    grad_sums_run(gb, xs + i0, n, m, is, s, q);
                }
                for (int i = HW4; i < HW; ++i) {
                    const float g = ms[i] > 0.0f ? gs[i] : 0.0f;
                    s[0] += g;
                    q[0] += double(g) * double((xs[i] - m) * is);
                }
            } else {
                grad_sums_run(gs, xs, HW4, m, is, s, q);
                for (int i = HW4; i < HW; ++i) {
                    s[0] += gs[i];
                    q[0] += double(gs[i]) * double((xs[i] - m) * is);
                }
            }
            planes(2 * r) = (s[0] + s[1]) + (s[2] + s[3]);
            planes(2 * r + 1) = (q[0] + q[1]) + (q[2] + q[3]);
        });
    batchnorm_plane_totals(planes, B, C, sums);
}

void batchnorm_dx(const Matrix& x, const Matrix& dy, const Matrix& y, int C, int HW, const Vector& mean,
                  const Vector& invstd, const Vector& scale, const Vector& a, const Vector& b,
                  const Matrix& dx) {
    const std::int64_t n = std::int64_t(x.size());
    MIMIC_REQUIRE(std::int64_t(dy.size()) == n && std::int64_t(dx.size()) == n,
                  "batchnorm_dx: size mismatch");
    MIMIC_REQUIRE(y.size() == 0 || std::int64_t(y.size()) == n, "batchnorm_dx: mask size mismatch");
    const float* xp = x.data();
    const float* gp = dy.data();
    const float* yp = y.size() > 0 ? y.data() : nullptr;
    float* dxp = dx.data();
    if (simd_here()) {
        const impl::BnPlanes p{C, HW, mean.data(), invstd.data(), scale.data(), nullptr, a.data(), b.data()};
        impl::bn_dx_planes(xp, gp, yp, p, n / HW, dxp);
        return;
    }
    Kokkos::parallel_for(
        "mimic::nn::bn::dx", RangePolicy(0, n / HW), KOKKOS_LAMBDA(const std::int64_t r) {
            const int c = int(r % C);
            const float m = mean(c), is = invstd(c), sc = scale(c), ac = a(c), bc = b(c);
            const std::int64_t o = r * HW;
            if (yp)
                for (int i = 0; i < HW; ++i) {
                    const float xhat = (xp[o + i] - m) * is;
                    const float gv = gp[o + i]; // loaded unconditionally: a select, not a branch
                    const float g = yp[o + i] > 0.0f ? gv : 0.0f;
                    dxp[o + i] = sc * (g - ac - xhat * bc);
                }
            else
                for (int i = 0; i < HW; ++i) {
                    const float xhat = (xp[o + i] - m) * is;
                    dxp[o + i] = sc * (gp[o + i] - ac - xhat * bc);
                }
        });
}

void batchnorm_scale(const UnmanagedVector& gamma, const Vector& invstd, const Vector& scale) {
    Kokkos::parallel_for(
        "mimic::nn::bn::scale", RangePolicy(0, std::int64_t(gamma.extent(0))),
        KOKKOS_LAMBDA(const std::int64_t c) { scale(c) = gamma(c) * invstd(c); });
}

void batchnorm_param_grads(const DoubleVector& sums, const UnmanagedVector& dgamma,
                           const UnmanagedVector& dbeta) {
    const std::int64_t C = dgamma.extent(0);
    Kokkos::parallel_for(
        "mimic::nn::bn::param_grads", RangePolicy(0, C), KOKKOS_LAMBDA(const std::int64_t c) {
            dgamma(c) += float(sums(C + c));
            dbeta(c) += float(sums(c));
        });
}

BatchNorm::BatchNorm(int index, std::string token, Shape in)
    : Layer(index, std::move(token), in, in), C_(in.c == 1 && in.h == 1 ? in.w : in.c),
      HW_(in.c == 1 && in.h == 1 ? 1 : in.h * in.w), mean_("mimic::nn::bn::mean", C_),
      invstd_("mimic::nn::bn::invstd", C_), scale_("mimic::nn::bn::scale", C_), a_("mimic::nn::bn::a", C_),
      b_("mimic::nn::bn::b", C_), sums_("mimic::nn::bn::sums", 2 * C_) {}

DoubleVector BatchNorm::planes(std::int64_t rows) {
    if (std::int64_t(planes_.extent(0)) < 2 * rows * C_)
        planes_ = DoubleVector(Kokkos::view_alloc(Kokkos::WithoutInitializing, "mimic::nn::bn::planes"),
                               2 * rows * C_);
    return planes_;
}

void BatchNorm::bind(const std::vector<UnmanagedVector>& params, const std::vector<UnmanagedVector>& grads) {
    gamma_ = params[0];
    beta_ = params[1];
    dgamma_ = grads[0];
    dbeta_ = grads[1];
}

void BatchNorm::bind_state(const std::vector<UnmanagedVector>& state) {
    running_mean_ = state[0];
    running_var_ = state[1];
    Kokkos::deep_copy(running_mean_, 0.0f);
    Kokkos::deep_copy(running_var_, 1.0f);
}

void BatchNorm::init(std::uint64_t, bool) {
    Kokkos::deep_copy(gamma_, 1.0f);
    Kokkos::deep_copy(beta_, 0.0f);
    Kokkos::deep_copy(running_mean_, 0.0f);
    Kokkos::deep_copy(running_var_, 1.0f);
}

/// s = [sums, sums of squares, count] of this rank, summed over the replicas: sets mean_, invstd_ and
/// moves the running statistics (every replica computes the same update from the same sums).
void BatchNorm::batch_statistics(std::vector<double>& s) {
    if (reduce_) reduce_(s);
    count_ = s[2 * std::size_t(C_)];
    MIMIC_REQUIRE(count_ > 0, token_, ": batch statistics of an empty batch");
    auto rm = to_host_floats(running_mean_), rv = to_host_floats(running_var_);
    const std::size_t C = std::size_t(C_);
    std::vector<float> mean(C), invstd(C);
    for (std::size_t c = 0; c < C; ++c) {
        const double m = s[c] / count_, var = std::max(0.0, s[C + c] / count_ - m * m);
        mean[c] = float(m);
        invstd[c] = float(1.0 / std::sqrt(var + kEps));
        const double unbiased = count_ > 1 ? var * count_ / (count_ - 1) : var;
        rm[c] = float((1 - kMomentum) * rm[c] + kMomentum * m);
        rv[c] = float((1 - kMomentum) * rv[c] + kMomentum * unbiased);
    }
    from_host(mean_, mean);
    from_host(invstd_, invstd);
    from_host(running_mean_, rm);
    from_host(running_var_, rv);
}

void BatchNorm::use_running_statistics() {
    const auto rv = to_host_floats(running_var_);
    std::vector<float> invstd(rv.size());
    for (std::size_t c = 0; c < rv.size(); ++c)
        invstd[c] = float(1.0 / std::sqrt(double(rv[c]) + kEps));
    Kokkos::deep_copy(mean_, running_mean_);
    from_host(invstd_, invstd);
}

void BatchNorm::forward(const Matrix& x, const Matrix& y, const ForwardContext& ctx) {
    train_ = ctx.train;
    reduce_ = ctx.reduce_stats ? *ctx.reduce_stats : StatReducer();
    if (train_) {
        batchnorm_sums(x, C_, HW_, planes(x.extent(0)), sums_);
        auto s = to_host_doubles(sums_);
        s.push_back(double(x.extent(0)) * HW_);
        batch_statistics(s);
    } else {
        use_running_statistics();
    }
    batchnorm_scale(gamma_, invstd_, scale_);
    batchnorm_apply(x, C_, HW_, mean_, scale_, beta_, y, relu_);
}

void BatchNorm::backward(const Matrix& x, const Matrix& y, const Matrix& dy, const Matrix& dx) {
    const Matrix mask = relu_ ? y : Matrix(); // the fused ReLU's output gates dy
    batchnorm_grad_sums(x, dy, mask, C_, HW_, mean_, invstd_, planes(x.extent(0)), sums_);
    batchnorm_param_grads(sums_, dgamma_, dbeta_);
    if (dx.extent(0) == 0) return;
    std::vector<float> a(std::size_t(C_), 0.0f), b(std::size_t(C_), 0.0f);
    if (train_) {
        // The batch terms of the input gradient are means over the whole batch, every replica's rows.
        auto s = to_host_doubles(sums_);
        if (reduce_) reduce_(s);
        for (std::size_t c = 0; c < std::size_t(C_); ++c) {
            a[c] = float(s[c] / count_);
            b[c] = float(s[std::size_t(C_) + c] / count_);
        }
    }
    from_host(a_, a);
    from_host(b_, b);
    batchnorm_dx(x, dy, mask, C_, HW_, mean_, invstd_, scale_, a_, b_, dx);
}

void BatchNorm::idle_pass(bool forward, const StatReducer* reduce) {
    std::vector<double> s(2 * std::size_t(C_) + (forward ? 1 : 0), 0.0);
    if (forward) {
        reduce_ = reduce ? *reduce : StatReducer();
        train_ = true;
        batch_statistics(s);
    } else if (reduce_) {
        reduce_(s);
    }
}

} // namespace mimic::nn
