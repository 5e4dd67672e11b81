// Helpers for the nn tests: host<->device copies of small matrices and vectors, and deterministic
// random fills.
#pragma once

#include "mimic/core/kokkos.hpp"
#include "mimic/core/rng.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace mimic::test {

inline Matrix device_matrix(const std::vector<float>& v, std::int64_t rows, std::int64_t cols) {
    Matrix m("mimic::test::matrix", rows, cols);
    auto h = Kokkos::create_mirror_view(m);
    for (std::int64_t i = 0; i < rows * cols; ++i)
        h.data()[i] = v[i];
    Kokkos::deep_copy(m, h);
    return m;
}

template <class V>
std::vector<float> to_host(const V& v) {
    auto h = Kokkos::create_mirror_view(v);
    Kokkos::deep_copy(h, v);
    return std::vector<float>(h.data(), h.data() + h.size());
}

inline void set_from_host(const Vector& v, const std::vector<float>& values) {
    auto h = Kokkos::create_mirror_view(v);
    for (std::size_t i = 0; i < values.size(); ++i)
        h(i) = values[i];
    Kokkos::deep_copy(v, h);
}

inline std::vector<float> random_values(std::size_t n, std::uint64_t seed, float scale = 1.0f) {
    std::vector<float> v(n);
    CounterRng r(seed);
    for (auto& x : v)
        x = scale * r.normal();
    return v;
}

/// The largest |want| and the largest |got - want| over two outputs of the same shape (compare the second
/// against a fraction of the first).
struct OutputGap {
    double scale = 0, worst = 0;
};
inline OutputGap output_gap(const std::vector<float>& got, const std::vector<float>& want) {
    OutputGap g;
    for (std::size_t i = 0; i < want.size(); ++i) {
        g.scale = std::max(g.scale, std::abs(double(want[i])));
        g.worst = std::max(g.worst, std::abs(double(got[i]) - double(want[i])));
    }
    return g;
}

} // namespace mimic::test
