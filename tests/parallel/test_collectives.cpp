// Tests of par::Comm's typed collectives at 1, 2 and 4 ranks: element-wise sum/min/max of arrays of each
// element type, broadcast, gatherv to a root, the node-local split, dup, self and the thread level.
#include "mimic/core/comm.hpp"

#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdint>
#include <numeric>
#include <vector>

namespace {

using mimic::par::Comm;
using mimic::par::ReduceOp;

/// Element i of rank r: distinct per rank, exact in every element type, and with rank order reversed at
/// odd i (so that min and max come from different ranks).
template <class T>
std::vector<T> values(int rank, int n) {
    std::vector<T> v(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i)
        v[size_t(i)] = T(i % 2 == 0 ? 10 * i + rank : 10 * i - rank);
    return v;
}

template <class T>
void check_allreduce() {
    const Comm world;
    const int R = world.size(), n = 7;
    for (ReduceOp op : {ReduceOp::sum, ReduceOp::min, ReduceOp::max}) {
        std::vector<T> v = values<T>(world.rank(), n);
        world.allreduce(v, op);
        for (int i = 0; i < n; ++i) {
            T want = 0;
            if (op == ReduceOp::sum)
                for (int r = 0; r < R; ++r)
                    want += values<T>(r, n)[size_t(i)];
            else
                want = T(10 * i + (i % 2 == 0) * (op == ReduceOp::max ? R - 1 : 0) -
                         (i % 2 == 1) * (op == ReduceOp::min ? R - 1 : 0));
            EXPECT_EQ(v[size_t(i)], want) << "op " << int(op) << " element " << i;
        }
    }
}

} // namespace

TEST(Collectives, AllreduceSumMinMaxOfEachType) {
    check_allreduce<float>();
    check_allreduce<double>();
    check_allreduce<int>();
    check_allreduce<std::int64_t>();
    check_allreduce<long long>();
}

TEST(Collectives, AllreduceOfAPointerRangeAndOfNothing) {
    const Comm world;
    double v[3] = {1.0, 2.0 * world.rank(), 0.5};
    world.allreduce(v + 1, 1, ReduceOp::sum); // the other elements stay as they were
    EXPECT_EQ(v[0], 1.0);
    EXPECT_EQ(v[1], double(world.size() * (world.size() - 1)));
    EXPECT_EQ(v[2], 0.5);
    std::vector<float> none;
    world.allreduce(none, ReduceOp::max);
    EXPECT_TRUE(none.empty());
}

TEST(Collectives, BroadcastFromAnyRoot) {
    const Comm world;
    for (int root : {0, world.size() - 1}) {
        std::vector<float> buf(5, float(world.rank()));
        if (world.rank() == root) std::iota(buf.begin(), buf.end(), 1.5f);
        world.broadcast(buf.data(), std::int64_t(buf.size()), root);
        for (int i = 0; i < 5; ++i)
            EXPECT_EQ(buf[size_t(i)], 1.5f + float(i)) << "root " << root;
        int kind = world.rank() == root ? 42 : -1;
        world.broadcast(&kind, 1, root);
        EXPECT_EQ(kind, 42);
    }
}

TEST(Collectives, GathervConcatenatesRowsInRankOrder) {
    const Comm world;
    // Rank r sends 2*r + 1 values r*100 + i, except rank 1 which sends none.
    auto count = [](int r) { return r == 1 ? 0 : 2 * r + 1; };
    std::vector<std::int64_t> counts;
    for (int r = 0; r < world.size(); ++r)
        counts.push_back(count(r));
    for (int root : {0, world.size() - 1}) {
        std::vector<float> mine;
        for (int i = 0; i < count(world.rank()); ++i)
            mine.push_back(float(world.rank() * 100 + i));
        const std::int64_t total = std::accumulate(counts.begin(), counts.end(), std::int64_t(0));
        std::vector<float> got(size_t(total), -1.0f);
        world.gatherv(mine.data(), std::int64_t(mine.size()), got.data(), counts, root);
        if (world.rank() != root) continue;
        std::vector<float> want;
        for (int r = 0; r < world.size(); ++r)
            for (int i = 0; i < count(r); ++i)
                want.push_back(float(r * 100 + i));
        EXPECT_EQ(got, want) << "root " << root;
    }
}

TEST(Collectives, GathervRejectsCountsThatDoNotMatchTheRanks) {
    const Comm world;
    const std::vector<std::int64_t> counts(size_t(world.size()) + 1, 1);
    float one = 1.0f;
    std::vector<float> out(counts.size());
    // The root checks the counts before the collective (on a communicator of one rank, so none waits).
    EXPECT_THROW(Comm::self().gatherv(&one, 1, out.data(), counts), std::exception);
}

TEST(Collectives, SplitSharedDupAndSelf) {
    const Comm world;
    // The tests run on one node: every rank shares it.
    const Comm local = world.split_shared();
    EXPECT_EQ(local.size(), world.size());
    EXPECT_EQ(local.rank(), world.rank());
    const Comm d = world.dup();
    EXPECT_EQ(d.size(), world.size());
    EXPECT_EQ(d.rank(), world.rank());
    int cmp = MPI_IDENT;
    MPI_Comm_compare(d.get(), world.get(), &cmp);
    EXPECT_EQ(cmp, MPI_CONGRUENT); // the same ranks, another context
    EXPECT_EQ(d.sum(1.0), double(world.size()));
    const Comm self = Comm::self();
    EXPECT_EQ(self.size(), 1);
    EXPECT_EQ(self.rank(), 0);
    EXPECT_EQ(self.sum(2.5), 2.5);
}

TEST(Collectives, ThreadLevelAsMpiReportsIt) {
    int level = MPI_THREAD_SINGLE;
    MPI_Query_thread(&level);
    EXPECT_EQ(mimic::par::mpi_thread_multiple(), level >= MPI_THREAD_MULTIPLE);
}
