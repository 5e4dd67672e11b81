// Blocked exact nearest-neighbour search: per (query block, candidate block) one KokkosBlas::gemm
// Q * C^T, then a per-query scan that keeps the running minimum, its index and the neighbour's row.
#include "mimic/transfer/neighbours.hpp"

#include <KokkosBlas3_gemm.hpp>

#include <limits>

namespace mimic::transfer {

void nearest_neighbours(const io::DatasetSet& src, const par::Comm& comm, const NeighbourSink& sink,
                        std::int64_t block, Progress* progress) {
    MIMIC_REQUIRE(block > 0, "nearest_neighbours: block must be positive");
    const std::int64_t S = src.rows(), D = src.d();
    MIMIC_REQUIRE(S >= 2, "nearest neighbours need at least 2 source rows, found ", S);
    const std::int64_t nb = (S + block - 1) / block;
    const int P = comm.size();
    const std::int64_t rounds = (nb + P - 1) / P;

    Matrix q("mimic::transfer::nn_query", block, D), c("mimic::transfer::nn_candidates", block, D);
    Matrix g("mimic::transfer::nn_products", block, block), nx("mimic::transfer::nn_rows", block, D);
    Vector cn("mimic::transfer::nn_candidate_norms", block), best("mimic::transfer::nn_best_distance", block);
    Kokkos::View<std::int64_t*, Kokkos::LayoutRight, MemSpace> best_j("mimic::transfer::nn_best_index",
                                                                      block);
    auto q_h = Kokkos::create_mirror_view(q);
    auto c_h = Kokkos::create_mirror_view(c);
    auto nx_h = Kokkos::create_mirror_view(nx);
    auto best_j_h = Kokkos::create_mirror_view(best_j);

    for (std::int64_t t = 0; t < rounds; ++t) {
        const std::int64_t b = t * P + comm.rank();
        par::Range mine;
        if (b < nb) mine = {b * block, std::min(S, (b + 1) * block)};
        const std::int64_t m = mine.size(), q0 = mine.begin;
        std::vector<par::Range> qr;
        if (m > 0) qr.push_back(mine);
        src.read_ranges(qr, q_h.data());
        Kokkos::deep_copy(q, q_h);
        const float inf = std::numeric_limits<float>::infinity();
        Kokkos::parallel_for(
            "mimic::transfer::nn_init", RangePolicy(0, block), KOKKOS_LAMBDA(const std::int64_t i) {
                best(i) = inf;
                best_j(i) = -1;
            });
        UnmanagedMatrix qm(q.data(), m, D);
        for (std::int64_t cb = 0; cb < nb; ++cb) {
            const par::Range cr{cb * block, std::min(S, (cb + 1) * block)};
            const std::int64_t n = cr.size(), c0 = cr.begin;
            std::vector<par::Range> crs;
            if (m > 0) crs.push_back(cr);
            src.read_ranges(crs, c_h.data());
            if (m == 0) continue;
            Kokkos::deep_copy(c, c_h);
            UnmanagedMatrix cm(c.data(), n, D), gm(g.data(), m, n);
            Kokkos::parallel_for(
                "mimic::transfer::nn_norms", RangePolicy(0, n), KOKKOS_LAMBDA(const std::int64_t j) {
                    float s = 0;
                    for (std::int64_t k = 0; k < D; ++k)
                        s += cm(j, k) * cm(j, k);
                    cn(j) = s;
                });
            KokkosBlas::gemm("N", "T", 1.0f, qm, cm, 0.0f, gm);
            Kokkos::parallel_for(
                "mimic::transfer::nn_scan", RangePolicy(0, m), KOKKOS_LAMBDA(const std::int64_t i) {
                    float bd = best(i);
                    std::int64_t bj = -1;
                    for (std::int64_t j = 0; j < n; ++j) {
                        if (c0 + j == q0 + i) continue;
                        const float dist = cn(j) - 2.0f * gm(i, j);
                        if (dist < bd) {
                            bd = dist;
                            bj = j;
                        }
                    }
                    if (bj >= 0) { // strictly better than every earlier (lower-index) block
                        best(i) = bd;
                        best_j(i) = c0 + bj;
                        for (std::int64_t k = 0; k < D; ++k)
                            nx(i, k) = cm(bj, k);
                    }
                });
        }
        Kokkos::deep_copy(best_j_h, best_j);
        Kokkos::deep_copy(nx_h, nx);
        sink(q0, m, best_j_h.data(), nx_h.data());
        if (progress) progress->update(std::min(S, (t + 1) * P * block));
    }
}

} // namespace mimic::transfer
