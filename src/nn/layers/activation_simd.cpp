// The activations in AVX-512 registers over flat arrays (impl/activation_simd.hpp): the inference forward
// of standalone activation layers on x86-64 hosts with AVX-512F.
#include "mimic/nn/layers/impl/activation_simd.hpp"

#include <algorithm>

namespace mimic::nn::impl {

#if MIMIC_CONV_DIRECT

bool simd_activations_available() {
    static const bool cpu = __builtin_cpu_supports("avx512f");
    return cpu;
}

namespace {

template <ConvAct A>
MIMIC_AVX512 void activate_span(float alpha, const float* x, float* y, std::int64_t n) {
    std::int64_t j = 0;
    for (; j + 16 <= n; j += 16)
        _mm512_storeu_ps(y + j, simd::activate(_mm512_loadu_ps(x + j), A, alpha));
    if (j == n) return;
    const __mmask16 m = __mmask16((1u << (n - j)) - 1);
    _mm512_mask_storeu_ps(y + j, m, simd::activate(_mm512_maskz_loadu_ps(m, x + j), A, alpha));
}

} // namespace

void activate_rows(ConvAct a, float alpha, const float* x, float* y, std::int64_t n) {
    switch (a) { // one instantiation per activation: no switch in the loop
    case ConvAct::none:
        return activate_span<ConvAct::none>(alpha, x, y, n);
    case ConvAct::relu:
        return activate_span<ConvAct::relu>(alpha, x, y, n);
    case ConvAct::relu6:
        return activate_span<ConvAct::relu6>(alpha, x, y, n);
    case ConvAct::silu:
        return activate_span<ConvAct::silu>(alpha, x, y, n);
    case ConvAct::hardswish:
        return activate_span<ConvAct::hardswish>(alpha, x, y, n);
    case ConvAct::hardsigmoid:
        return activate_span<ConvAct::hardsigmoid>(alpha, x, y, n);
    case ConvAct::sigmoid:
        return activate_span<ConvAct::sigmoid>(alpha, x, y, n);
    case ConvAct::leakyrelu:
        return activate_span<ConvAct::leakyrelu>(alpha, x, y, n);
    case ConvAct::elu:
        return activate_span<ConvAct::elu>(alpha, x, y, n);
    case ConvAct::gelu:
        return activate_span<ConvAct::gelu>(alpha, x, y, n);
    }
}

void activate_matrix(ConvAct a, float alpha, const Matrix& x, const Matrix& y) {
    const std::int64_t n = std::int64_t(x.size());
    MIMIC_REQUIRE(std::int64_t(y.size()) == n, "activate_matrix: ", n, " inputs but ", y.size(), " outputs");
    const float* xp = x.data();
    float* yp = y.data();
    // Chunks of 16 Ki floats, a host thread each (the results do not depend on the split).
    constexpr std::int64_t chunk = std::int64_t(1) << 14;
    Kokkos::parallel_for("mimic::nn::activation::simd_forward",
                         Kokkos::RangePolicy<Kokkos::DefaultHostExecutionSpace>(0, (n + chunk - 1) / chunk),
                         [&](const std::int64_t c) {
                             const std::int64_t begin = c * chunk;
                             activate_rows(a, alpha, xp + begin, yp + begin, std::min(chunk, n - begin));
                         });
}

#else

bool simd_activations_available() {
    return false;
}

void activate_rows(ConvAct a, float, const float*, float*, std::int64_t) {
    fail("activate_rows: activation ", int(a), " asked for, but the AVX-512 activations are not compiled in");
}

void activate_matrix(ConvAct a, float, const Matrix&, const Matrix&) {
    fail("activate_matrix: activation ", int(a),
         " asked for, but the AVX-512 activations are not compiled in");
}

#endif

} // namespace mimic::nn::impl
