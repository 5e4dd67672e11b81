// Tests of the bucketed gradient allreduce: the plan of buckets (layer cuts, forced cuts, size), and sums
// equal to one blocking allreduce (bit for bit on 2 ranks) whatever order the ranks start the buckets in.
#include "mimic/core/comm.hpp"
#include "mimic/core/rng.hpp"
#include "mimic/parallel/bucket_reduce.hpp"
#include "mimic/parallel/reduce.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

using namespace mimic;

namespace {

using Plan = std::vector<std::pair<std::int64_t, std::int64_t>>;

/// A vector of n values drawn from (seed, rank).
Vector random_vector(std::int64_t n, std::uint64_t seed, int rank) {
    Vector v("test::v", size_t(n));
    auto h = Kokkos::create_mirror_view(v);
    CounterRng g(derive_seed(seed, std::uint64_t(rank)));
    for (std::int64_t i = 0; i < n; ++i)
        h(i) = g.normal() * 3.0f;
    Kokkos::deep_copy(v, h);
    return v;
}

std::vector<float> host(const Vector& v) {
    std::vector<float> out(v.extent(0));
    Kokkos::deep_copy(
        Kokkos::View<float*, HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>(out.data(), out.size()), v);
    return out;
}

} // namespace

TEST(BucketedAllreduce, PlanCutsAtLayerBoundariesFromTheEnd) {
    par::Comm world;
    // Layers [0,10) [10,50) [50,60) [60,200): buckets of at least 45 floats, a forced cut at 50.
    par::BucketedAllreduce r(world, 200, {60, 10, 50, 0}, {50}, 45);
    EXPECT_EQ(r.buckets(), (Plan{{60, 200}, {50, 60}, {0, 50}}));
    par::BucketedAllreduce one(world, 200, {60, 10, 50}, {}, 1000); // one bucket: the whole buffer
    EXPECT_EQ(one.buckets(), (Plan{{0, 200}}));
    par::BucketedAllreduce each(world, 200, {60, 10, 50}, {}, 1); // one bucket per layer
    EXPECT_EQ(each.buckets(), (Plan{{60, 200}, {50, 60}, {10, 50}, {0, 10}}));
}

TEST(BucketedAllreduce, SumsEqualOneBlockingAllreduce) {
    par::Comm world;
    const std::int64_t n = 5000;
    const std::vector<std::int64_t> cuts = {0, 700, 1300, 4000, 4100};
    for (std::int64_t bucket : {std::int64_t(1), std::int64_t(1000), std::int64_t(1) << 20}) {
        Vector want = random_vector(n, 7, world.rank()), got = random_vector(n, 7, world.rank());
        par::allreduce_sum(want, world);
        par::BucketedAllreduce r(world, n, cuts, {1300}, bucket);
        for (int step = 0; step < 2; ++step) { // the plan is reused step after step
            Kokkos::deep_copy(got, random_vector(n, 7, world.rank()));
            r.start(got);
            // Odd ranks announce nothing (a replica without rows): finish() starts every bucket in order.
            if (world.rank() % 2 == 0)
                for (auto it = cuts.rbegin(); it != cuts.rend(); ++it)
                    r.ready(*it);
            r.finish();
            const auto a = host(got), b = host(want);
            if (world.size() <= 2) {
                EXPECT_EQ(a, b) << "bucket " << bucket; // a + b in any bucketing
            } else {
                for (std::int64_t i = 0; i < n; ++i)
                    ASSERT_NEAR(a[size_t(i)], b[size_t(i)], 1e-5f * (1 + std::fabs(b[size_t(i)])));
            }
        }
    }
}

// The reductions against plain MPI on host vectors, so that a fault shared by the blocking and the
// bucketed path (e.g. host staging that does not copy back) shows. The ctest entry
// test_parallel.host_staged.np2 runs this file again with MIMIC_HOST_STAGED_MPI=1: the path a GPU build
// without GPU-aware MPI takes.
TEST(Allreduce, SumsEqualPlainMpiOnHostVectors) {
    par::Comm world;
    const char* staged = std::getenv("MIMIC_HOST_STAGED_MPI");
    EXPECT_EQ(par::mpi_reads_views(), !(staged && std::string(staged) == "1"));
    const std::int64_t n = 3000, begin = 1000, count = 1500;
    const auto mine = host(random_vector(n, 11, world.rank()));
    std::vector<float> want = mine;
    MIMIC_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, want.data(), int(n), MPI_FLOAT, MPI_SUM, world.get()));

    // Two ranks add a + b in one order whatever the message size; more may pick other MPI algorithms.
    const auto close = [&](float x, float y) {
        return world.size() <= 2 ? x == y : std::fabs(x - y) <= 1e-5f * (1 + std::fabs(y));
    };

    Vector part = random_vector(n, 11, world.rank());
    par::allreduce_sum(part, world, begin, count); // a sub-range: the rest stays this rank's own
    const auto a = host(part);
    for (std::int64_t i = 0; i < n; ++i) {
        const bool inside = i >= begin && i < begin + count;
        ASSERT_TRUE(inside ? close(a[size_t(i)], want[size_t(i)]) : a[size_t(i)] == mine[size_t(i)])
            << "element " << i << ": " << a[size_t(i)];
    }

    Vector got = random_vector(n, 11, world.rank());
    par::BucketedAllreduce r(world, n, {0, 500, 2000}, {}, 600);
    r.start(got);
    for (std::int64_t cut : {2000, 500, 0})
        r.ready(cut);
    r.finish();
    const auto b = host(got);
    for (std::int64_t i = 0; i < n; ++i)
        ASSERT_TRUE(close(b[size_t(i)], want[size_t(i)])) << "element " << i << ": " << b[size_t(i)];
}
