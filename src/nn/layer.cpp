// Helpers shared by the layers: deterministic weight initialisation, bias broadcast and bias-gradient
// column sums, and grow-only workspaces.
#include "mimic/nn/layer.hpp"

#include "mimic/core/rng.hpp"

#include <cmath>
#include <type_traits>

namespace mimic::nn {

void init_weights(const UnmanagedVector& w, std::int64_t fan_in, std::int64_t fan_out, bool he,
                  std::uint64_t seed, WeightSlice slice) {
    MIMIC_REQUIRE(fan_in > 0 && fan_out > 0, "init_weights: fan_in and fan_out must be positive");
    const std::int64_t n = w.extent(0);
    if (he) {
        const float stddev = float(std::sqrt(2.0 / double(fan_in)));
        Kokkos::parallel_for(
            "mimic::nn::init_he", RangePolicy(0, n), KOKKOS_LAMBDA(const std::int64_t e) {
                CounterRng r(seed, 2 * std::uint64_t(slice.whole_index(e)));
                w(e) = stddev * r.normal();
            });
    } else {
        const float limit = float(std::sqrt(6.0 / double(fan_in + fan_out)));
        Kokkos::parallel_for(
            "mimic::nn::init_glorot", RangePolicy(0, n), KOKKOS_LAMBDA(const std::int64_t e) {
                CounterRng r(seed, 2 * std::uint64_t(slice.whole_index(e)));
                w(e) = limit * (2.0f * r.uniform() - 1.0f);
            });
    }
}

void broadcast_rows(const Matrix& y, const UnmanagedVector& b) {
    const std::int64_t rows = y.extent(0), cols = y.extent(1);
    MIMIC_REQUIRE(std::int64_t(b.extent(0)) == cols, "broadcast_rows: bias of ", b.extent(0), " for ", cols,
                  " columns");
    // 2-D iteration: no integer division per element (it cost 7.5% of an MLP forward pass).
    Kokkos::parallel_for(
        "mimic::nn::bias_broadcast", MDPolicy2({0, 0}, {rows, cols}),
        KOKKOS_LAMBDA(const std::int64_t i, const std::int64_t j) { y(i, j) = b(j); });
}

void accumulate_column_sums(const Matrix& dy, const UnmanagedVector& db) {
    // The host streams rows through a block of column accumulators (contiguous reads, one block per
    // thread); a device gives every column a team, whose threads split the rows.
    if (std::is_same<ExecSpace, Kokkos::DefaultHostExecutionSpace>::value)
        accumulate_column_sums_blocked(dy, db);
    else
        accumulate_column_sums_teams(dy, db);
}

void accumulate_column_sums_blocked(const Matrix& dy, const UnmanagedVector& db) {
    const std::int64_t rows = dy.extent(0), cols = dy.extent(1);
    MIMIC_REQUIRE(std::int64_t(db.extent(0)) == cols, "accumulate_column_sums: bias of ", db.extent(0),
                  " for ", cols, " columns");
    constexpr std::int64_t kBlock = 64;
    const std::int64_t blocks = (cols + kBlock - 1) / kBlock;
    Kokkos::parallel_for(
        "mimic::nn::bias_grad_blocked", RangePolicy(0, blocks), KOKKOS_LAMBDA(const std::int64_t b) {
            const std::int64_t j0 = b * kBlock;
            const std::int64_t n = cols - j0 < kBlock ? cols - j0 : kBlock;
            float s[kBlock];
            for (std::int64_t j = 0; j < n; ++j)
                s[j] = 0.0f;
            for (std::int64_t i = 0; i < rows; ++i)
                for (std::int64_t j = 0; j < n; ++j)
                    s[j] += dy(i, j0 + j);
            for (std::int64_t j = 0; j < n; ++j)
                db(j0 + j) += s[j];
        });
}

void accumulate_column_sums_teams(const Matrix& dy, const UnmanagedVector& db) {
    const std::int64_t rows = dy.extent(0), cols = dy.extent(1);
    MIMIC_REQUIRE(std::int64_t(db.extent(0)) == cols, "accumulate_column_sums: bias of ", db.extent(0),
                  " for ", cols, " columns");
    using Policy = Kokkos::TeamPolicy<ExecSpace>;
    Kokkos::parallel_for(
        "mimic::nn::bias_grad_teams", Policy(cols, Kokkos::AUTO),
        KOKKOS_LAMBDA(const Policy::member_type& team) {
            const std::int64_t j = team.league_rank();
            float s = 0.0f;
            Kokkos::parallel_reduce(
                Kokkos::TeamThreadRange(team, rows),
                [&](const std::int64_t i, float& acc) { acc += dy(i, j); }, s);
            Kokkos::single(Kokkos::PerTeam(team), [&]() { db(j) += s; });
        });
}

Matrix workspace(Vector& buffer, const char* label, std::int64_t rows, std::int64_t cols) {
    const std::int64_t need = rows * cols;
    // A grown batch or layer is where device memory runs out: name the workspace and its size.
    if (std::int64_t(buffer.extent(0)) < need)
        MIMIC_KOKKOS_CHECK(buffer = Vector(Kokkos::view_alloc(Kokkos::WithoutInitializing, std::string(label)),
                                           need));
    return Matrix(buffer.data(), rows, cols);
}

} // namespace mimic::nn
