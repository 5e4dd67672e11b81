// Blocked exact nearest-neighbour search: one KokkosBlas::gemm A * B^T per pair of row blocks (i <= j),
// scanned along rows and columns for both blocks' running minima, then a lexicographic (distance, index)
// minimum over ranks and a read of every neighbour's row.
#include "mimic/transfer/neighbours.hpp"

#include <KokkosBlas3_gemm.hpp>

#include <algorithm>
#include <limits>

namespace mimic::transfer {

namespace {
using Int64Vector = Kokkos::View<std::int64_t*, Kokkos::LayoutRight, MemSpace>;
constexpr int kTile = 16; ///< columns per work item of the column scan (one 64-byte line of floats)

/// (d, j) is better than (bd, bj): a smaller distance, or the same distance at a lower index.
KOKKOS_INLINE_FUNCTION bool better(float d, std::int64_t j, float bd, std::int64_t bj) {
    return d < bd || (d == bd && j < bj);
}
} // namespace

namespace detail {
/// The row norms of both blocks and every row's best (distance, index) so far.
struct PairScratch {
    Vector na, nb, best_d;
    Int64Vector best_j;
};
/// One pair of row blocks: their norms, the products am * bm^T into gm, and both blocks' running minima
/// (rows of block i against block j's rows, and, off the diagonal, rows of block j against block i's).
void scan_block_pair(const UnmanagedMatrix& am, const UnmanagedMatrix& bm, const UnmanagedMatrix& gm,
                     const PairScratch& w, std::int64_t i0, std::int64_t j0, bool diagonal, std::int64_t S);
} // namespace detail

namespace detail {

void scan_block_pair(const UnmanagedMatrix& am, const UnmanagedMatrix& bm, const UnmanagedMatrix& gm,
                     const PairScratch& w, std::int64_t i0, std::int64_t j0, bool diagonal, std::int64_t S) {
    const std::int64_t mi = am.extent(0), mj = bm.extent(0), D = am.extent(1);
    const Vector na = w.na, nbn = w.nb, best_d = w.best_d;
    const Int64Vector best_j = w.best_j;
    const float inf = std::numeric_limits<float>::infinity();
    Kokkos::parallel_for(
        "mimic::transfer::nn_norms", RangePolicy(0, std::max(mi, mj)), KOKKOS_LAMBDA(const std::int64_t r) {
            float sa = 0, sb = 0;
            if (r < mi)
                for (std::int64_t k = 0; k < D; ++k)
                    sa += am(r, k) * am(r, k);
            if (r < mj)
                for (std::int64_t k = 0; k < D; ++k)
                    sb += bm(r, k) * bm(r, k);
            na(r) = sa;
            nbn(r) = sb;
        });
    KokkosBlas::gemm("N", "T", 1.0f, am, bm, 0.0f, gm);
    // Rows of block i against the candidates of block j (on the diagonal: every other row).
    Kokkos::parallel_for(
        "mimic::transfer::nn_scan_rows", RangePolicy(0, mi), KOKKOS_LAMBDA(const std::int64_t r) {
            float bd = inf;
            std::int64_t bjx = S;
            for (std::int64_t c = 0; c < mj; ++c) {
                if (diagonal && c == r) continue;
                const float d = nbn(c) - 2.0f * gm(r, c);
                if (d < bd) bd = d, bjx = j0 + c; // ascending c: ties keep the lowest index
            }
            if (better(bd, bjx, best_d(i0 + r), best_j(i0 + r))) best_d(i0 + r) = bd, best_j(i0 + r) = bjx;
        });
    // Rows of block j against the candidates of block i: the same products read by column, a tile of
    // kTile columns per work item so that each row of products is read a cache line at a time.
    if (!diagonal) {
        const std::int64_t tiles = (mj + kTile - 1) / kTile;
        Kokkos::parallel_for(
            "mimic::transfer::nn_scan_columns", RangePolicy(0, tiles),
            KOKKOS_LAMBDA(const std::int64_t tile) {
                const std::int64_t c0 = tile * kTile, nc = mj - c0 < kTile ? mj - c0 : kTile;
                float bd[kTile];
                std::int64_t bix[kTile];
                for (int k = 0; k < kTile; ++k)
                    bd[k] = inf, bix[k] = S;
                for (std::int64_t r = 0; r < mi; ++r) {
                    const float nr = na(r);
                    for (int k = 0; k < nc; ++k) {
                        const float d = nr - 2.0f * gm(r, c0 + k);
                        if (d < bd[k]) bd[k] = d, bix[k] = i0 + r; // ascending r: lowest index on ties
                    }
                }
                for (int k = 0; k < nc; ++k)
                    if (better(bd[k], bix[k], best_d(j0 + c0 + k), best_j(j0 + c0 + k)))
                        best_d(j0 + c0 + k) = bd[k], best_j(j0 + c0 + k) = bix[k];
            });
    }
}

/// The lexicographic minimum over ranks of each row's (distance, index): the smallest distance, then the
/// lowest index at that distance. Every rank gets every row's neighbour.
std::vector<std::int64_t> reduce_over_ranks(const Vector& best_d, const Int64Vector& best_j, std::int64_t S,
                                            const par::Comm& comm) {
    auto bd_h = Kokkos::create_mirror_view_and_copy(HostSpace(), best_d);
    auto bj_h = Kokkos::create_mirror_view_and_copy(HostSpace(), best_j);
    std::vector<float> dmin(bd_h.data(), bd_h.data() + S);
    comm.allreduce(dmin, par::ReduceOp::min);
    for (std::int64_t e = 0; e < S; ++e)
        if (bd_h(e) != dmin[size_t(e)]) bj_h(e) = std::numeric_limits<std::int64_t>::max();
    std::vector<std::int64_t> index(bj_h.data(), bj_h.data() + S);
    comm.allreduce(index, par::ReduceOp::min);
    for (std::int64_t e = 0; e < S; ++e)
        MIMIC_REQUIRE(index[size_t(e)] >= 0 && index[size_t(e)] < S && index[size_t(e)] != e,
                      "nearest neighbours: no finite distance for source row ", e,
                      " (NaN or infinite values?)");
    return index;
}

/// Each rank reads the neighbours' rows of its share of the rows, in rounds of `block` rows (ascending
/// order, consecutive rows as one range), puts them in place and hands them to the sink.
void emit_neighbour_rows(const io::DatasetSet& src, const par::Comm& comm, const NeighbourSink& sink,
                         const std::vector<std::int64_t>& index, std::int64_t block) {
    const std::int64_t S = src.rows(), D = src.d();
    const int P = comm.size();
    const auto mine = par::split_range(S, P, comm.rank());
    const std::int64_t rounds = (par::split_range(S, P, 0).size() + block - 1) / block;
    std::vector<float> rows(static_cast<size_t>(block * D));
    std::vector<std::pair<std::int64_t, std::int64_t>> order; // (neighbour, position)
    std::vector<par::Range> runs;
    std::vector<float> sorted(static_cast<size_t>(block * D));
    for (std::int64_t round = 0; round < rounds; ++round) {
        const std::int64_t r0 = std::min(mine.end, mine.begin + round * block);
        const std::int64_t n = std::min(mine.end, r0 + block) - r0;
        // Read the neighbour rows in ascending order, consecutive rows as one range, then put them in place.
        order.clear();
        for (std::int64_t k = 0; k < n; ++k)
            order.push_back({index[size_t(r0 + k)], k});
        std::sort(order.begin(), order.end());
        runs.clear();
        for (const auto& o : order) {
            if (!runs.empty() && runs.back().end == o.first)
                ++runs.back().end;
            else if (runs.empty() || runs.back().end - 1 != o.first)
                runs.push_back({o.first, o.first + 1});
        }
        src.read_ranges(runs, sorted.data());
        std::int64_t pos = 0;
        for (size_t k = 0; k < order.size(); ++k) {
            if (k > 0 && order[k].first != order[k - 1].first) ++pos;
            std::copy_n(sorted.data() + pos * D, D, rows.data() + order[k].second * D);
        }
        sink(r0, n, index.data() + r0, rows.data());
    }
}

} // namespace detail

void nearest_neighbours(const io::DatasetSet& src, const par::Comm& comm, const NeighbourSink& sink,
                        std::int64_t block, Progress* progress) {
    MIMIC_REQUIRE(block > 0, "nearest_neighbours: block must be positive");
    const std::int64_t S = src.rows(), D = src.d();
    MIMIC_REQUIRE(S >= 2, "nearest neighbours need at least 2 source rows, found ", S);
    const std::int64_t nb = (S + block - 1) / block;
    const std::int64_t npairs = nb * (nb + 1) / 2;
    const int P = comm.size();

    Matrix a("mimic::transfer::nn_rows_a", block, D), b("mimic::transfer::nn_rows_b", block, D);
    Matrix g("mimic::transfer::nn_products", block, block);
    Vector na("mimic::transfer::nn_norms_a", block), nbn("mimic::transfer::nn_norms_b", block);
    Vector best_d("mimic::transfer::nn_best_distance", S);
    Int64Vector best_j("mimic::transfer::nn_best_index", S);
    auto a_h = Kokkos::create_mirror_view(a);
    auto b_h = Kokkos::create_mirror_view(b);
    const float inf = std::numeric_limits<float>::infinity();
    Kokkos::parallel_for(
        "mimic::transfer::nn_init", RangePolicy(0, S), KOKKOS_LAMBDA(const std::int64_t e) {
            best_d(e) = inf;
            best_j(e) = S; // no candidate yet: every real index is lower
        });

    // Pair t of the fixed order (i, j), i <= j, goes to rank t mod P: the same GEMM calls for any rank count.
    std::int64_t t = 0, done = 0, loaded_a = -1;
    for (std::int64_t bi = 0; bi < nb; ++bi) {
        for (std::int64_t bj = bi; bj < nb; ++bj, ++t) {
            if (t % P != comm.rank()) continue;
            const std::int64_t i0 = bi * block, mi = std::min(S, i0 + block) - i0;
            const std::int64_t j0 = bj * block, mj = std::min(S, j0 + block) - j0;
            const bool diagonal = bi == bj;
            if (bi != loaded_a) { // consecutive pairs of a rank often share block i
                src.read_ranges({{i0, i0 + mi}}, a_h.data());
                Kokkos::deep_copy(a, a_h);
                loaded_a = bi;
            }
            if (!diagonal) {
                src.read_ranges({{j0, j0 + mj}}, b_h.data());
                Kokkos::deep_copy(b, b_h);
            }
            UnmanagedMatrix am(a.data(), mi, D), bm(diagonal ? a.data() : b.data(), mj, D),
                gm(g.data(), mi, mj);
            detail::scan_block_pair(am, bm, gm, {na, nbn, best_d, best_j}, i0, j0, diagonal, S);
            ++done;
            if (progress) progress->update(std::min(npairs, done * P));
        }
    }

    const auto index = detail::reduce_over_ranks(best_d, best_j, S, comm);
    detail::emit_neighbour_rows(src, comm, sink, index, block);
}

} // namespace mimic::transfer
