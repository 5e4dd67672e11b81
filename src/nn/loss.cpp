// Losses on logits: cross-entropy, Ba & Caruana's L2 mimic loss and Hinton's distillation loss, each with
// a numerically stable log-softmax, one thread per row and the batch mean reduced on the device in double.
#include "mimic/nn/loss.hpp"

#include "mimic/core/error.hpp"

namespace mimic::nn {

namespace {

void check_shapes(const char* what, const Matrix& logits, const Matrix& dlogits) {
    MIMIC_REQUIRE(dlogits.extent(0) == logits.extent(0) && dlogits.extent(1) == logits.extent(1), what,
                  ": dlogits is ", dlogits.extent(0), "x", dlogits.extent(1), " but logits are ",
                  logits.extent(0), "x", logits.extent(1));
    MIMIC_REQUIRE(logits.extent(1) > 0, what, ": logits have no classes");
}

void check_labels(const char* what, const IntVector& labels, std::int64_t rows, std::int64_t classes) {
    MIMIC_REQUIRE(std::int64_t(labels.extent(0)) == rows, what, ": ", labels.extent(0), " labels for ", rows,
                  " rows of logits");
    std::int64_t bad = 0;
    const int C = int(classes);
    Kokkos::parallel_reduce(
        "mimic::nn::loss::check_labels", RangePolicy(0, rows),
        KOKKOS_LAMBDA(const std::int64_t i, std::int64_t& n) {
            n += (labels(i) < 0 || labels(i) >= C) ? 1 : 0;
        },
        bad);
    MIMIC_REQUIRE(bad == 0, what, ": ", bad, " labels outside [0, ", classes, ")");
}

/// max and log(sum exp(scale * (v - max))) over a row: log-softmax(scale * v)_c = scale * (v_c - max) - lse.
KOKKOS_INLINE_FUNCTION void row_lse(const Matrix& v, std::int64_t i, int C, float scale, float& max,
                                    float& lse) {
    float m = v(i, 0);
    for (int c = 1; c < C; ++c)
        m = v(i, c) > m ? v(i, c) : m;
    float s = 0.0f;
    for (int c = 0; c < C; ++c)
        s += kmath::exp(scale * (v(i, c) - m));
    max = m;
    lse = kmath::log(s);
}

} // namespace

double cross_entropy(const Matrix& logits, const IntVector& labels, const Matrix& dlogits) {
    check_shapes("cross_entropy", logits, dlogits);
    const std::int64_t B = logits.extent(0);
    const int C = int(logits.extent(1));
    check_labels("cross_entropy", labels, B, C);
    if (B == 0) return 0.0;
    const float inv_b = 1.0f / float(B);
    double total = 0.0;
    Kokkos::parallel_reduce(
        "mimic::nn::loss::cross_entropy", RangePolicy(0, B),
        KOKKOS_LAMBDA(const std::int64_t i, double& acc) {
            float m, lse;
            row_lse(logits, i, C, 1.0f, m, lse);
            const int y = labels(i);
            for (int c = 0; c < C; ++c) {
                const float p = kmath::exp(logits(i, c) - m - lse);
                dlogits(i, c) = (p - (c == y ? 1.0f : 0.0f)) * inv_b;
            }
            acc += double(lse) - double(logits(i, y) - m);
        },
        total);
    return total / double(B);
}

double mimic_l2(const Matrix& logits, const Matrix& target, const Matrix& dlogits) {
    check_shapes("mimic_l2", logits, dlogits);
    MIMIC_REQUIRE(target.extent(0) == logits.extent(0) && target.extent(1) == logits.extent(1),
                  "mimic_l2: target is ", target.extent(0), "x", target.extent(1), " but logits are ",
                  logits.extent(0), "x", logits.extent(1));
    const std::int64_t B = logits.extent(0);
    const int C = int(logits.extent(1));
    if (B == 0) return 0.0;
    const float inv_b = 1.0f / float(B);
    double total = 0.0;
    Kokkos::parallel_reduce(
        "mimic::nn::loss::mimic_l2", RangePolicy(0, B),
        KOKKOS_LAMBDA(const std::int64_t i, double& acc) {
            double s = 0.0;
            for (int c = 0; c < C; ++c) {
                const float d = logits(i, c) - target(i, c);
                dlogits(i, c) = d * inv_b;
                s += double(d) * double(d);
            }
            acc += 0.5 * s;
        },
        total);
    return total / double(B);
}

double distill_kd(const Matrix& logits, const Matrix& teacher, const IntVector& labels, float T, float alpha,
                  const Matrix& dlogits) {
    check_shapes("distill_kd", logits, dlogits);
    MIMIC_REQUIRE(teacher.extent(0) == logits.extent(0) && teacher.extent(1) == logits.extent(1),
                  "distill_kd: teacher logits are ", teacher.extent(0), "x", teacher.extent(1),
                  " but logits are ", logits.extent(0), "x", logits.extent(1));
    MIMIC_REQUIRE(T > 0.0f, "distill_kd: temperature must be positive, got ", T);
    MIMIC_REQUIRE(alpha >= 0.0f && alpha <= 1.0f, "distill_kd: alpha must be in [0, 1], got ", alpha);
    const std::int64_t B = logits.extent(0);
    const int C = int(logits.extent(1));
    const bool hard = alpha < 1.0f;
    if (hard) check_labels("distill_kd", labels, B, C);
    if (B == 0) return 0.0;
    const float inv_b = 1.0f / float(B), inv_t = 1.0f / T;
    // d/dz of T^2 * KL(p_t || p_z) with p = softmax(./T) is T * (p_z - p_t).
    const float soft_w = alpha * T, hard_w = 1.0f - alpha;
    const double kl_w = double(alpha) * double(T) * double(T);
    double total = 0.0;
    Kokkos::parallel_reduce(
        "mimic::nn::loss::distill_kd", RangePolicy(0, B),
        KOKKOS_LAMBDA(const std::int64_t i, double& acc) {
            float mz, lz, mt, lt;
            row_lse(logits, i, C, inv_t, mz, lz);
            row_lse(teacher, i, C, inv_t, mt, lt);
            double kl = 0.0;
            for (int c = 0; c < C; ++c) {
                const float log_pz = inv_t * (logits(i, c) - mz) - lz;
                const float log_pt = inv_t * (teacher(i, c) - mt) - lt;
                const float pt = kmath::exp(log_pt);
                kl += double(pt) * (double(log_pt) - double(log_pz));
                dlogits(i, c) = soft_w * (kmath::exp(log_pz) - pt) * inv_b;
            }
            double loss = kl_w * kl;
            if (hard) {
                float m1, l1;
                row_lse(logits, i, C, 1.0f, m1, l1);
                const int y = labels(i);
                for (int c = 0; c < C; ++c) {
                    const float p = kmath::exp(logits(i, c) - m1 - l1);
                    dlogits(i, c) += hard_w * (p - (c == y ? 1.0f : 0.0f)) * inv_b;
                }
                loss += double(hard_w) * (double(l1) - double(logits(i, y) - m1));
            }
            acc += loss;
        },
        total);
    return total / double(B);
}

} // namespace mimic::nn
