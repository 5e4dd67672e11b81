// Transfer-set generator kernel: each output value is computed independently from its row's spec and
// its own counter-based random stream, so results do not depend on blocking, rank count or threads.
#include "mimic/transfer/generate.hpp"

#include "mimic/core/error.hpp"
#include "mimic/transfer/recipe.hpp"

namespace mimic::transfer {

void set_row_keys(RowSpec& s, std::uint64_t seed, std::int64_t row) {
    s.key_noise = derive_seed(seed, std::uint64_t(row), kNoiseStream);
    s.key_munge = derive_seed(seed, std::uint64_t(row), kMungeStream);
}

namespace {

/// One work item is one image row (channel ch, pixel row y) of one output row: a loop over x with no
/// integer division. Feature j's normal is cos (j even) or sin (j odd) of the Box-Muller pair j / 2.
struct Generate {
    RowSpecs spec;
    Matrix A, N, P, out;
    Vector mean, stdev;
    int h, w;
    float noise, munge_p, munge_s;
    bool per_feature;

    KOKKOS_INLINE_FUNCTION void operator()(const std::int64_t r, const std::int64_t cy) const {
        const RowSpec s = spec(r);
        const std::int64_t base = cy * w;
        std::uint64_t pair = ~std::uint64_t(0);
        float z0 = 0, z1 = 0;
        if (s.gen == kMunge) {
            for (int x = 0; x < w; ++x) {
                const std::int64_t j = base + x;
                const float a = A(s.a, j), n = N(s.a, j);
                const float b = s.side ? n : a, o = s.side ? a : n;
                const std::uint64_t k = std::uint64_t(j) >> 1;
                float v = b;
                if (CounterRng(s.key_munge, 4 * k + 2 + (std::uint64_t(j) & 1)).uniform() < munge_p) {
                    if (k != pair) normal_pair(s.key_munge, 4 * k, z0, z1), pair = k;
                    v = o + kmath::fabs(b - o) / munge_s * ((j & 1) ? z1 : z0);
                }
                out(r, j) = v;
            }
        } else if (s.gen == kAugment) {
            const int ch = int(cy / h), y = int(cy % h), ys = y - s.dy;
            const bool row_inside = ys >= 0 && ys < h;
            const std::int64_t src_base = (std::int64_t(ch) * h + ys) * w;
            for (int x = 0; x < w; ++x) {
                const std::int64_t j = base + x;
                const int xt = x - s.dx;
                float v;
                if (!row_inside || xt < 0 || xt >= w) {
                    v = -mean(j) / stdev(j); // uncovered pixel: a raw zero (background)
                } else {
                    const std::int64_t js = src_base + (s.flip ? w - 1 - xt : xt);
                    v = A(s.a, js);
                    if (s.mix) v = s.lambda * v + (1.0f - s.lambda) * P(s.p, js);
                    if (per_feature && js != j) v = (v * stdev(js) + mean(js) - mean(j)) / stdev(j);
                }
                if (noise > 0) {
                    const std::uint64_t k = std::uint64_t(j) >> 1;
                    if (k != pair) normal_pair(s.key_noise, 2 * k, z0, z1), pair = k;
                    v += noise * ((j & 1) ? z1 : z0);
                }
                out(r, j) = v;
            }
        } else {
            for (int x = 0; x < w; ++x)
                out(r, base + x) = A(s.a, base + x);
        }
    }
};

} // namespace

void generate_rows(const GenerateParams& g, const RowSpecs& spec, std::int64_t count, const Matrix& A,
                   const Matrix& N, const Matrix& P, const Vector& mean, const Vector& stdev,
                   const Matrix& out) {
    static_assert(Matrix::rank == 2 && Vector::rank == 1, "generate_rows: Matrix must be 2-D, Vector 1-D");
    const std::int64_t d = std::int64_t(g.c) * g.h * g.w;
    MIMIC_REQUIRE(std::int64_t(A.extent(1)) == d && std::int64_t(out.extent(1)) == d &&
                      std::int64_t(out.extent(0)) >= count && std::int64_t(spec.extent(0)) >= count &&
                      std::int64_t(mean.extent(0)) == d && std::int64_t(stdev.extent(0)) == d,
                  "generate_rows: buffers do not match D = ", d, " and ", count, " rows");
    if (count == 0) return;
    Generate f{spec, A, N, P, out, mean, stdev, g.h, g.w, g.noise, g.munge_p, g.munge_s, g.per_feature};
    Kokkos::parallel_for("mimic::transfer::generate", MDPolicy2({0, 0}, {count, std::int64_t(g.c) * g.h}), f);
}

} // namespace mimic::transfer
