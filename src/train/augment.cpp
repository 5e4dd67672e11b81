// Training-time augmentation: per-row choices from (seed, epoch, row) with the transfer recipe's draws,
// applied by the transfer generator's kernel into a scratch batch that replaces the rows.
#include "mimic/train/augment.hpp"

#include "mimic/core/error.hpp"
#include "mimic/core/rng.hpp"
#include "mimic/transfer/recipe.hpp"

#include <algorithm>

namespace mimic::train {

namespace {
/// Seed stream of the training augmentation (distinct from dropout's and the shuffles').
constexpr std::uint64_t kAugmentStream = 0x4155474dULL; // "AUGM"

const char* option_name(const AugmentOptions& a) {
    return a.shift > 0 ? "--augment-shift" : "--augment-flip";
}
} // namespace

transfer::RowSpec augment_choice(const AugmentOptions& a, std::uint64_t seed, int epoch, std::int64_t row) {
    transfer::RowSpec s;
    s.gen = transfer::kAugment;
    const std::uint64_t key =
        derive_seed(derive_seed(seed, std::uint64_t(epoch), kAugmentStream), std::uint64_t(row));
    int dx = 0, dy = 0;
    bool mirror = false;
    transfer::draw_augment(key, a.shift, a.flip, dx, dy, mirror);
    s.dx = std::int16_t(dx), s.dy = std::int16_t(dy), s.flip = mirror ? 1 : 0;
    return s;
}

void check_augment_shape(const AugmentOptions& a, const nn::Shape& shape, const std::string& source) {
    if (!a.active()) return;
    if (shape.c == 1 && shape.h == 1)
        fail(option_name(a), ": needs image-shaped rows (C x H x W) but ", source, " holds flat rows of ",
             shape.w, " features");
    if (a.shift >= shape.h || a.shift >= shape.w)
        fail("--augment-shift: ", a.shift, " pixels moves the whole ", shape.h, "x", shape.w, " image of ",
             source, " out (must be < ", std::min(shape.h, shape.w), ")");
}

BatchAugmenter::BatchAugmenter(const AugmentOptions& a, const nn::Shape& shape,
                               const std::vector<float>& mean, const std::vector<float>& stdev,
                               std::int64_t max_rows, const std::string& source)
    : a_(a) {
    check_augment_shape(a, shape, source);
    const std::int64_t d = shape.size();
    MIMIC_REQUIRE(std::int64_t(mean.size()) == d && std::int64_t(stdev.size()) == d,
                  "internal: normalisation of ", source, " has ", mean.size(), " values for ", d,
                  " features");
    gp_.c = shape.c, gp_.h = shape.h, gp_.w = shape.w;
    gp_.per_feature = std::any_of(mean.begin(), mean.end(), [&](float v) { return v != mean.front(); }) ||
                      std::any_of(stdev.begin(), stdev.end(), [&](float v) { return v != stdev.front(); });
    mean_ = Vector("mimic::train::augment_mean", d);
    stdev_ = Vector("mimic::train::augment_std", d);
    auto mh = Kokkos::create_mirror_view(mean_);
    auto sh = Kokkos::create_mirror_view(stdev_);
    for (std::int64_t j = 0; j < d; ++j)
        mh(j) = mean[size_t(j)], sh(j) = stdev[size_t(j)];
    Kokkos::deep_copy(mean_, mh);
    Kokkos::deep_copy(stdev_, sh);
    spec_ = transfer::RowSpecs("mimic::train::augment_spec", max_rows);
    spec_h_ = Kokkos::create_mirror_view(spec_);
    out_ = Matrix(Kokkos::view_alloc(Kokkos::WithoutInitializing, "mimic::train::augment_x"), max_rows, d);
}

void BatchAugmenter::apply(const Matrix& x, const std::vector<std::int64_t>& rows, std::uint64_t seed,
                           int epoch) {
    const std::int64_t n = std::int64_t(rows.size());
    MIMIC_REQUIRE(n <= std::int64_t(spec_.extent(0)) && n <= std::int64_t(x.extent(0)),
                  "internal: augmenting ", n, " rows in a batch of ", spec_.extent(0));
    if (n == 0) return;
    for (std::int64_t i = 0; i < n; ++i) {
        spec_h_(i) = augment_choice(a_, seed, epoch, rows[size_t(i)]);
        spec_h_(i).a = std::int32_t(i);
    }
    Kokkos::deep_copy(spec_, spec_h_);
    transfer::generate_rows(gp_, spec_, n, x, Matrix(), Matrix(), mean_, stdev_, out_);
    const auto range = std::make_pair(std::int64_t(0), n);
    Kokkos::deep_copy(Kokkos::subview(x, range, Kokkos::ALL), Kokkos::subview(out_, range, Kokkos::ALL));
}

} // namespace mimic::train
