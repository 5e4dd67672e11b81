// Row planning for transfer sets: the row layout (copies, then generated passes over the sources),
// the generator mix, augmentation parameters, mixup partners and Beta draws, all from counter-based seeds.
#include "mimic/transfer/recipe.hpp"

#include "mimic/core/error.hpp"
#include "mimic/core/rng.hpp"

#include <cmath>
#include <sstream>

namespace mimic::transfer {

std::int64_t Recipe::source_of(std::int64_t i) const {
    if (n >= s) return i % s;
    // floor(i * s / n) = i * q + floor(i * rem / n) with s = q * n + rem; i * rem < n * n does not overflow.
    const std::int64_t q = s / n, rem = s % n;
    return i * q + (i * rem) / n;
}

std::int64_t Recipe::mixup_offset(std::int64_t pass) const {
    if (s < 2) return 0;
    return 1 + std::int64_t(derive_seed(seed, std::uint64_t(pass), kPassStream) % std::uint64_t(s - 1));
}

std::int8_t generator_of(const Recipe& r, std::int64_t i) {
    const double total = r.w_augment + r.w_munge;
    if (total <= 0) return kSource;
    CounterRng rng(derive_seed(r.seed, std::uint64_t(i), kRowStream), 0);
    const double u = rng.uniform_double() * total;
    return u < r.w_augment ? kAugment : kMunge;
}

namespace {
/// Marsaglia-Tsang Gamma(a, 1) for a >= 1.
double gamma_ge1(CounterRng& rng, double a) {
    const double d = a - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
    for (int it = 0; it < 1000; ++it) {
        const double x = rng.normal();
        double v = 1.0 + c * x;
        if (v <= 0) continue;
        v = v * v * v;
        const double u = rng.uniform_double();
        if (u < 1.0 - 0.0331 * x * x * x * x) return d * v;
        if (u > 0 && std::log(u) < 0.5 * x * x + d * (1.0 - v + std::log(v))) return d * v;
    }
    return d; // not reached in practice (acceptance rate > 95%)
}

double gamma(CounterRng& rng, double a) {
    if (a >= 1) return gamma_ge1(rng, a);
    // Gamma(a) = Gamma(a + 1) * U^(1/a); in log space to keep tiny values finite.
    const double g = gamma_ge1(rng, a + 1.0);
    double u = rng.uniform_double();
    if (u < 1e-300) u = 1e-300;
    return g * std::exp(std::log(u) / a);
}
} // namespace

double beta_symmetric(std::uint64_t key, double alpha) {
    CounterRng rng(key, 0);
    const double x = gamma(rng, alpha), y = gamma(rng, alpha);
    if (!(x + y > 0)) return rng.uniform_double() < 0.5 ? 0.0 : 1.0;
    return x / (x + y);
}

void draw_augment(std::uint64_t key, int shift, bool flip, int& dx, int& dy, bool& mirror) {
    dx = dy = 0;
    if (shift > 0) {
        const std::uint64_t span = std::uint64_t(2 * shift + 1);
        dx = int(CounterRng(key, 2).below(span)) - shift;
        dy = int(CounterRng(key, 3).below(span)) - shift;
    }
    mirror = flip && (CounterRng(key, 4).next_u64() >> 63) != 0;
}

RowPlan plan_row(const Recipe& r, std::int64_t i, std::int64_t neighbour) {
    RowPlan p;
    p.e = r.source_of(i);
    p.source_row = p.e;
    if (i < r.copies()) return p;
    p.gen = generator_of(r, i);
    const std::uint64_t key = derive_seed(r.seed, std::uint64_t(i), kRowStream);
    if (p.gen == kMunge) {
        MIMIC_REQUIRE(neighbour >= 0 && neighbour < r.s, "internal: MUNGE row ", i, " has no neighbour");
        p.munge_side = (CounterRng(key, 1).next_u64() >> 63) != 0;
        p.source_row = p.munge_side ? neighbour : p.e;
        p.partner_row = p.munge_side ? p.e : neighbour;
        return p;
    }
    // Augmentation: each choice reads its own counter, so enabling one never changes another.
    draw_augment(key, r.shift, r.flip, p.dx, p.dy, p.flip);
    if (r.mixup_prob > 0 && CounterRng(key, 5).uniform_double() < r.mixup_prob) {
        p.mix = true;
        p.partner_row = (p.e + r.mixup_offset(i / r.s)) % r.s;
        p.lambda = float(beta_symmetric(derive_seed(r.seed, std::uint64_t(i), kBetaStream), r.mixup_alpha));
    }
    return p;
}

std::string describe(const Recipe& r) {
    std::ostringstream os;
    os << r.n << " rows from " << r.s << " source rows: " << r.copies() << " copies";
    if (r.generates()) {
        os << ", " << (r.n - r.s) << " generated (weights augment " << r.w_augment << ", munge " << r.w_munge
           << ")";
        if (r.w_augment > 0)
            os << "; augment: shift " << r.shift << ", flip " << (r.flip ? "on" : "off") << ", noise "
               << r.noise << ", mixup prob " << r.mixup_prob << " alpha " << r.mixup_alpha;
        if (r.w_munge > 0) os << "; munge: p " << r.munge_p << ", s " << r.munge_s;
    } else if (r.n < r.s) {
        os << " (evenly spaced subset)";
    }
    os << "; seed " << r.seed;
    return os.str();
}

} // namespace mimic::transfer
