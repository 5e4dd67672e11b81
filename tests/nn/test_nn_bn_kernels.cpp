// Tests of the bn kernels (nn/layers/batchnorm.hpp) against scalar references written here in their
// documented order: the same bits whichever path serves them (AVX-512 on hosts that have it), for odd planes.
#include "mimic/nn/layers/batchnorm.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

namespace {

using mimic::Matrix;
using mimic::Vector;
using mimic::nn::DoubleVector;

/// Normal values times 2^e, e uniform in [-spread, spread]: with a spread their sums in double round, so
/// the order of the additions shows in the bits.
std::vector<float> random_floats(std::size_t n, std::uint32_t seed, float zero_share, int spread = 0) {
    std::mt19937 g(seed);
    std::normal_distribution<float> d(0.3f, 1.7f);
    std::uniform_real_distribution<float> u(0.0f, 1.0f);
    std::uniform_int_distribution<int> e(-spread, spread);
    std::vector<float> v(n);
    for (auto& x : v)
        x = u(g) < zero_share ? 0.0f : std::ldexp(d(g), e(g));
    return v;
}

Matrix matrix_of(const std::vector<float>& v, std::int64_t rows) {
    Matrix m("test::bn::m", rows, std::int64_t(v.size()) / rows);
    auto h = Kokkos::create_mirror_view(m);
    std::memcpy(h.data(), v.data(), v.size() * sizeof(float));
    Kokkos::deep_copy(m, h);
    return m;
}
Vector vector_of(const std::vector<float>& v) {
    Vector m("test::bn::v", v.size());
    auto h = Kokkos::create_mirror_view(m);
    std::memcpy(h.data(), v.data(), v.size() * sizeof(float));
    Kokkos::deep_copy(m, h);
    return m;
}
template <class V>
std::vector<typename V::non_const_value_type> host(const V& v) {
    auto h = Kokkos::create_mirror_view(v);
    Kokkos::deep_copy(h, v);
    return std::vector<typename V::non_const_value_type>(h.data(), h.data() + h.size());
}

/// The plane sums of the kernels' contract: four lanes (i % 4, the tail in lane 0), paired (0+1)+(2+3).
struct Lanes {
    double s[4] = {0, 0, 0, 0}, q[4] = {0, 0, 0, 0};
    void add(int i, int n4, double a, double b) {
        const int l = i < n4 ? i % 4 : 0;
        s[l] += a;
        q[l] += b;
    }
    double sum() const { return (s[0] + s[1]) + (s[2] + s[3]); }
    double sum_q() const { return (q[0] + q[1]) + (q[2] + q[3]); }
};

void expect_same_bits(const std::vector<float>& got, const std::vector<float>& want, const char* what) {
    ASSERT_EQ(got.size(), want.size());
    for (std::size_t i = 0; i < got.size(); ++i)
        ASSERT_EQ(std::memcmp(&got[i], &want[i], sizeof(float)), 0)
            << what << "[" << i << "]: " << got[i] << " vs " << want[i];
}

/// Runs every kernel on B rows of C planes of HW values and compares their bits with the references.
void check_shape(std::int64_t B, int C, int HW, std::uint32_t seed) {
    SCOPED_TRACE("B=" + std::to_string(B) + " C=" + std::to_string(C) + " HW=" + std::to_string(HW));
    const std::size_t n = std::size_t(B) * C * HW;
    const auto xv = random_floats(n, seed, 0.0f, 24), dyv = random_floats(n, seed + 1, 0.0f, 24);
    const auto yv = random_floats(n, seed + 2, 0.2f); // a fused ReLU's output: zeros and negatives gate dy
    const auto mean = random_floats(std::size_t(C), seed + 3, 0.0f);
    auto invstd = random_floats(std::size_t(C), seed + 4, 0.0f);
    for (auto& v : invstd)
        v = 0.5f + std::abs(v);
    const auto scale = random_floats(std::size_t(C), seed + 5, 0.0f),
               shift = random_floats(std::size_t(C), seed + 6, 0.0f);
    const auto a = random_floats(std::size_t(C), seed + 7, 0.0f),
               b = random_floats(std::size_t(C), seed + 8, 0.0f);
    const Matrix x = matrix_of(xv, B), dy = matrix_of(dyv, B), y = matrix_of(yv, B);
    const Vector m = vector_of(mean), is = vector_of(invstd), sc = vector_of(scale), sh = vector_of(shift),
                 av = vector_of(a), bv = vector_of(b);
    DoubleVector planes("test::bn::planes", 2 * B * C), sums("test::bn::sums", 2 * C);
    const int n4 = HW / 4 * 4;

    mimic::nn::batchnorm_sums(x, C, HW, planes, sums);
    const auto p = host(planes);
    for (std::int64_t r = 0; r < B * C; ++r) {
        Lanes l;
        for (int i = 0; i < HW; ++i) {
            const double v = xv[std::size_t(r * HW + i)];
            l.add(i, n4, v, v * v);
        }
        ASSERT_EQ(p[std::size_t(2 * r)], l.sum()) << "sums of plane " << r;
        ASSERT_EQ(p[std::size_t(2 * r + 1)], l.sum_q()) << "sums of squares of plane " << r;
    }
    for (const bool relu : {false, true}) {
        SCOPED_TRACE(relu ? "with the fused ReLU" : "without");
        const Matrix out("test::bn::out", B, std::int64_t(C) * HW);
        mimic::nn::batchnorm_apply(x, C, HW, m, sc, sh, out, relu);
        const Matrix mask = relu ? y : Matrix();
        mimic::nn::batchnorm_grad_sums(x, dy, mask, C, HW, m, is, planes, sums);
        const Matrix dx("test::bn::dx", B, std::int64_t(C) * HW);
        mimic::nn::batchnorm_dx(x, dy, mask, C, HW, m, is, sc, av, bv, dx);
        const auto gp = host(planes);
        std::vector<float> want_y(n), want_dx(n);
        for (std::int64_t r = 0; r < B * C; ++r) {
            const std::size_t c = std::size_t(r % C);
            Lanes l;
            for (int i = 0; i < HW; ++i) {
                const std::size_t k = std::size_t(r * HW + i);
                const float v = (xv[k] - mean[c]) * scale[c] + shift[c];
                want_y[k] = relu ? (v > 0.0f ? v : 0.0f) : v;
                const float g = relu ? (yv[k] > 0.0f ? dyv[k] : 0.0f) : dyv[k];
                const float xhat = (xv[k] - mean[c]) * invstd[c];
                l.add(i, n4, g, double(g) * double(xhat));
                want_dx[k] = scale[c] * (g - a[c] - xhat * b[c]);
            }
            ASSERT_EQ(gp[std::size_t(2 * r)], l.sum()) << "gradient sums of plane " << r;
            ASSERT_EQ(gp[std::size_t(2 * r + 1)], l.sum_q()) << "gradient sums of plane " << r;
        }
        expect_same_bits(host(out), want_y, "y");
        expect_same_bits(host(dx), want_dx, "dx");
    }
}

TEST(BatchNormKernels, SameBitsAsTheScalarOrder) {
    check_shape(3, 5, 49, 11);   // 15 planes (groups of four and a rest), 7x7 (a tail of one)
    check_shape(2, 8, 784, 12);  // 28x28
    check_shape(1, 3, 7, 13);    // shorter than a register
    check_shape(4, 10, 1, 14);   // bn over features: planes of one value
    check_shape(2, 16, 196, 15); // 14x14
}

} // namespace
