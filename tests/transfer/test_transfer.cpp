// Tests of `mimic transfer`: GEMM nearest neighbours against brute force, bit-identical output for any
// rank count and block size, resuming a stopped run, MUNGE statistics, augmentation bounds, the row layout
// and subsampling.
#include "mimic/core/log.hpp"
#include "mimic/core/rng.hpp"
#include "mimic/io/dataset_set.hpp"
#include "mimic/stages/transfer.hpp"
#include "mimic/transfer/neighbours.hpp"
#include "mimic/transfer/recipe.hpp"
#include "test_util.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>

// The tests live in namespace mimic instead of a global `using namespace mimic;`, which would make
// mimic::log ambiguous with ::log inside the math_functions.hpp that nvcc appends to the translation unit.
namespace mimic {

namespace {

struct Source {
    std::int64_t n = 0;
    int c = 1, h = 1, w = 1;
    std::string norm = "global";
    double mean = 0.25, sd = 0.5; ///< global statistics (per-feature: mean + 0.01 j, sd + 0.02 j)
    std::uint64_t seed = 7;
    bool integers = false; ///< small integer values (exact distances, many ties)
    std::int64_t d() const { return std::int64_t(c) * h * w; }
};

std::vector<float> norm_vector(const Source& s, bool stdev) {
    std::vector<float> v(size_t(s.d()));
    for (std::int64_t j = 0; j < s.d(); ++j) {
        const double base = stdev ? s.sd : s.mean;
        v[size_t(j)] = float(s.norm == "per-feature" ? base + (stdev ? 0.02 : 0.01) * double(j % 17) : base);
    }
    return v;
}

float source_value(const Source& s, std::int64_t r, std::int64_t j) {
    CounterRng rng(derive_seed(s.seed, std::uint64_t(r), 99), std::uint64_t(j));
    if (s.integers) return float(std::int64_t(rng.below(7)) - 3);
    return 0.1f + 2.9f * rng.uniform(); // never the background value (negative)
}

/// Writes a dataset file with the rows of `s` (labels included, which transfer drops).
void write_source(const std::string& path, const Source& s, const par::Comm& comm) {
    io::DatasetMeta m;
    m.n = s.n;
    m.d = s.d();
    m.c = s.c, m.h = s.h, m.w = s.w;
    m.num_classes = 3;
    m.has_labels = true;
    m.source = "transfer-test";
    m.norm_kind = s.norm;
    io::DatasetWriter w(path, comm, m);
    w.set_normalization(s.norm, 1.0, norm_vector(s, false), norm_vector(s, true));
    const auto mine = par::split_range(s.n, comm.size(), comm.rank());
    std::vector<float> X(size_t(mine.size() * s.d()));
    std::vector<int> y(size_t(mine.size()));
    for (std::int64_t i = 0; i < mine.size(); ++i) {
        for (std::int64_t j = 0; j < s.d(); ++j)
            X[size_t(i * s.d() + j)] = source_value(s, mine.begin + i, j);
        y[size_t(i)] = int((mine.begin + i) % 3);
    }
    w.write(mine.begin, mine.size(), X.data(), y.data());
    w.commit();
}

/// Everything in a transfer file, read serially.
struct Out {
    std::vector<float> X;
    std::vector<long long> src, partner, neighbour;
    std::vector<unsigned char> gen;
    std::vector<long long> shape;
    std::string fingerprint, norm;
    std::vector<float> mean, sd;
    bool has_y = false;
};

Out read_out(const std::string& path) {
    auto f = h5::File::open(path);
    Out o;
    o.X = h5::read_all<float>(f, "/X");
    o.src = h5::read_all<long long>(f, "/provenance/source_row");
    o.partner = h5::read_all<long long>(f, "/provenance/partner_row");
    o.gen = h5::read_all<unsigned char>(f, "/provenance/generator");
    if (f.has("/munge/neighbour")) o.neighbour = h5::read_all<long long>(f, "/munge/neighbour");
    o.shape = h5::read_attr_ints(f.id(), "shape");
    o.fingerprint = h5::read_attr_string(f.id(), "fingerprint");
    o.norm = h5::read_attr_string(f.id(), "norm");
    o.mean = h5::read_all<float>(f, "/norm/mean");
    o.sd = h5::read_all<float>(f, "/norm/std");
    o.has_y = f.has("/y");
    return o;
}

/// All source rows (concatenated files), read serially.
std::vector<float> read_sources(const std::vector<std::string>& paths) {
    std::vector<float> all;
    for (const auto& p : paths) {
        auto f = h5::File::open(p);
        auto X = h5::read_all<float>(f, "/X");
        all.insert(all.end(), X.begin(), X.end());
    }
    return all;
}

stages::TransferOptions options(const std::vector<std::string>& from, const std::string& out,
                                std::int64_t n) {
    stages::TransferOptions o;
    o.from = from;
    o.out = out;
    o.size = n;
    o.seed = 12345;
    return o;
}

std::vector<std::int64_t> brute_force_neighbours(const std::vector<float>& X, std::int64_t S,
                                                 std::int64_t D) {
    std::vector<std::int64_t> nb(size_t(S), -1);
    for (std::int64_t e = 0; e < S; ++e) {
        double best = std::numeric_limits<double>::infinity();
        for (std::int64_t f = 0; f < S; ++f) {
            if (f == e) continue;
            double d = 0;
            for (std::int64_t k = 0; k < D; ++k) {
                const double t = double(X[size_t(e * D + k)]) - double(X[size_t(f * D + k)]);
                d += t * t;
            }
            if (d < best) best = d, nb[size_t(e)] = f;
        }
    }
    return nb;
}

double sqdist(const std::vector<float>& X, std::int64_t D, std::int64_t a, std::int64_t b) {
    double d = 0;
    for (std::int64_t k = 0; k < D; ++k) {
        const double t = double(X[size_t(a * D + k)]) - double(X[size_t(b * D + k)]);
        d += t * t;
    }
    return d;
}

class Quiet : public ::testing::Test {
protected:
    void SetUp() override { log::set_quiet(true); }
    void TearDown() override { log::set_quiet(false); }
};

using NearestNeighbours = Quiet;
using Transfer = Quiet;

/// Runs nearest_neighbours and gathers (index, rows) for every source row on every rank.
void gathered_neighbours(const io::DatasetSet& set, const par::Comm& comm, std::int64_t block,
                         std::vector<long long>& index, std::vector<float>& rows) {
    const std::int64_t S = set.rows(), D = set.d();
    std::vector<long long> idx(size_t(S), -1);
    std::vector<float> r(size_t(S * D), -std::numeric_limits<float>::infinity());
    transfer::nearest_neighbours(
        set, comm,
        [&](std::int64_t begin, std::int64_t count, const std::int64_t* i, const float* x) {
            for (std::int64_t k = 0; k < count; ++k)
                idx[size_t(begin + k)] = i[k];
            std::copy_n(x, count * D, r.data() + begin * D);
        },
        block);
    index.assign(size_t(S), 0);
    rows.assign(size_t(S * D), 0);
    MPI_Allreduce(idx.data(), index.data(), int(S), MPI_LONG_LONG, MPI_MAX, comm.get());
    MPI_Allreduce(r.data(), rows.data(), int(S * D), MPI_FLOAT, MPI_MAX, comm.get());
}

} // namespace

TEST_F(NearestNeighbours, IntegerDataMatchesBruteForceWithLowestIndexTies) {
    par::Comm world;
    auto dir = test::scratch_dir(world);
    Source s;
    s.n = 333, s.w = 5, s.integers = true; // 7^5 values for 333 rows: exact distances and many ties
    write_source(dir + "/int.h5", s, world);
    io::DatasetSet set({dir + "/int.h5"}, world);
    std::vector<long long> index;
    std::vector<float> rows;
    gathered_neighbours(set, world, 32, index, rows); // 11 blocks, the last one partial
    const auto X = read_sources({dir + "/int.h5"});
    const auto want = brute_force_neighbours(X, s.n, s.d());
    std::int64_t ties = 0;
    for (std::int64_t e = 0; e < s.n; ++e) {
        ASSERT_EQ(index[size_t(e)], want[size_t(e)]) << "row " << e;
        for (std::int64_t f = 0; f < want[size_t(e)]; ++f)
            ties += f != e && sqdist(X, s.d(), e, f) == sqdist(X, s.d(), e, want[size_t(e)]);
        for (std::int64_t k = 0; k < s.d(); ++k)
            ASSERT_EQ(rows[size_t(e * s.d() + k)], X[size_t(index[size_t(e)] * s.d() + k)]);
    }
    EXPECT_EQ(ties, 0) << "a lower index at the same distance exists";
    // The data must actually contain ties for the lowest-index rule to be exercised.
    std::int64_t tied_rows = 0;
    for (std::int64_t e = 0; e < s.n; ++e) {
        int at_min = 0;
        for (std::int64_t f = 0; f < s.n; ++f)
            at_min += f != e && sqdist(X, s.d(), e, f) == sqdist(X, s.d(), e, want[size_t(e)]);
        tied_rows += at_min > 1;
    }
    EXPECT_GT(tied_rows, 20);
}

TEST_F(NearestNeighbours, FloatDataMatchesBruteForceDistances) {
    par::Comm world;
    auto dir = test::scratch_dir(world);
    Source s;
    s.n = 300, s.w = 37;
    write_source(dir + "/f.h5", s, world);
    io::DatasetSet set({dir + "/f.h5"}, world);
    std::vector<long long> index, index_one_block;
    std::vector<float> rows, rows_one_block;
    gathered_neighbours(set, world, 64, index, rows); // 5 blocks, 15 block pairs dealt to the ranks
    gathered_neighbours(set, world, 4096, index_one_block, rows_one_block);
    // One rank computes every block pair itself: the same GEMM calls, so the same neighbours.
    std::vector<long long> index_one_rank;
    par::Comm self(MPI_COMM_SELF, false);
    if (world.rank() == 0) {
        io::DatasetSet one({dir + "/f.h5"}, self);
        std::vector<float> r1;
        gathered_neighbours(one, self, 64, index_one_rank, r1);
        EXPECT_EQ(index_one_rank, index);
        EXPECT_EQ(r1, rows);
    }
    const auto X = read_sources({dir + "/f.h5"});
    const auto want = brute_force_neighbours(X, s.n, s.d());
    std::int64_t same = 0;
    for (std::int64_t e = 0; e < s.n; ++e) {
        ASSERT_NE(index[size_t(e)], e);
        const double got = sqdist(X, s.d(), e, index[size_t(e)]), best = sqdist(X, s.d(), e, want[size_t(e)]);
        ASSERT_LE(got, best * (1 + 1e-5) + 1e-6) << "row " << e;
        same += index[size_t(e)] == want[size_t(e)];
        EXPECT_EQ(index[size_t(e)], index_one_block[size_t(e)]);
    }
    EXPECT_EQ(same, s.n);
}

TEST_F(Transfer, OutputIsBitIdenticalForAnyRankCountAndBlockSize) {
    par::Comm world;
    auto dir = test::scratch_dir(world);
    Source a, b;
    a.n = 150, b.n = 90;
    a.c = b.c = 2, a.h = b.h = 6, a.w = b.w = 5;
    b.seed = 8;
    write_source(dir + "/a.h5", a, world);
    write_source(dir + "/b.h5", b, world);
    auto opt = options({dir + "/a.h5", dir + "/b.h5"}, "", 1000);
    opt.augment = 1, opt.munge = 1;
    opt.shift = 2, opt.flip = true, opt.noise = 0.1, opt.mixup_prob = 0.5, opt.mixup_alpha = 0.4;
    opt.munge_p = 0.4, opt.munge_s = 3;
    struct Run {
        int ranks;
        std::int64_t block;
    };
    std::vector<Run> runs = {{1, 4096}, {1, 37}};
    if (world.size() >= 2) runs.push_back({2, 64});
    if (world.size() >= 4) runs.push_back({4, 29});
    for (size_t k = 0; k < runs.size(); ++k) {
        par::Comm sub = world.split(world.rank() < runs[k].ranks ? 0 : 1, world.rank());
        if (world.rank() < runs[k].ranks) {
            auto o = opt;
            o.out = dir + "/out" + std::to_string(k) + ".h5";
            o.block_rows = runs[k].block;
            stages::run(o, sub);
        }
        world.barrier();
    }
    if (world.rank() != 0) return;
    EXPECT_FALSE(io::file_exists(dir + "/out0.h5.neighbours"));
    const Out ref = read_out(dir + "/out0.h5");
    EXPECT_EQ(ref.X.size(), size_t(1000 * 60));
    EXPECT_EQ(ref.neighbour.size(), size_t(240));
    EXPECT_FALSE(ref.has_y);
    for (size_t k = 1; k < runs.size(); ++k) {
        const Out o = read_out(dir + "/out" + std::to_string(k) + ".h5");
        EXPECT_TRUE(o.X == ref.X) << runs[k].ranks << " ranks, block " << runs[k].block;
        EXPECT_EQ(o.src, ref.src);
        EXPECT_EQ(o.partner, ref.partner);
        EXPECT_EQ(o.gen, ref.gen);
        EXPECT_EQ(o.neighbour, ref.neighbour);
        EXPECT_EQ(o.fingerprint, ref.fingerprint);
    }
    // Layout: the concatenated sources first, in order, then generated rows of every kind.
    const auto S = read_sources({dir + "/a.h5", dir + "/b.h5"});
    for (std::int64_t i = 0; i < 240; ++i) {
        ASSERT_EQ(ref.gen[size_t(i)], transfer::kSource);
        ASSERT_EQ(ref.src[size_t(i)], i);
        ASSERT_EQ(ref.partner[size_t(i)], -1);
        for (int j = 0; j < 60; ++j)
            ASSERT_EQ(ref.X[size_t(i * 60 + j)], S[size_t(i * 60 + j)]);
    }
    std::map<int, int> kinds;
    for (std::int64_t i = 240; i < 1000; ++i)
        ++kinds[ref.gen[size_t(i)]];
    EXPECT_EQ(kinds[transfer::kSource], 0);
    EXPECT_GT(kinds[transfer::kAugment], 300);
    EXPECT_GT(kinds[transfer::kMunge], 300);
    EXPECT_EQ(ref.shape, (std::vector<long long>{2, 6, 5}));
    EXPECT_EQ(ref.mean, norm_vector(a, false));
}

TEST_F(Transfer, StoppedRunResumesBitIdenticalOnAnotherRankCount) {
    par::Comm world;
    auto dir = test::scratch_dir(world);
    Source a;
    a.n = 130;
    a.c = 1, a.h = 6, a.w = 6;
    write_source(dir + "/a.h5", a, world);
    auto opt = options({dir + "/a.h5"}, dir + "/ref.h5", 700);
    opt.augment = 1, opt.munge = 1;
    opt.shift = 1, opt.flip = true, opt.mixup_prob = 0.5;
    opt.block_rows = 31;
    stages::run(opt, world); // the uninterrupted reference

    // Stopped after 2 rounds on every rank: OUT.partial holds the finished blocks, OUT does not exist.
    auto o = opt;
    o.out = dir + "/t.h5";
    o.stop_after_blocks = 2;
    stages::run(o, world);
    EXPECT_FALSE(io::file_exists(o.out));
    ASSERT_TRUE(io::file_exists(o.out + ".partial"));
    world.barrier();
    if (world.rank() == 0) {
        auto f = h5::File::open(o.out + ".partial");
        const auto done = h5::read_all<unsigned char>(f, "/progress/done");
        const auto n_done = std::count(done.begin(), done.end(), 1);
        EXPECT_EQ(done.size(), size_t((130 + 30) / 31 + (570 + 30) / 31));
        EXPECT_EQ(n_done, std::min<long>(long(done.size()), 2L * world.size()));
    }
    world.barrier();

    // Other settings are refused while the partial file exists.
    auto other = o;
    other.stop_after_blocks = 0;
    other.seed = o.seed + 1;
    try {
        stages::run(other, world);
        ADD_FAILURE() << "expected an error";
    } catch (const CollectiveError& e) {
        EXPECT_NE(std::string(e.what()).find("a partial transfer set from other sources or settings exists"),
                  std::string::npos)
            << e.what();
    }
    ASSERT_TRUE(io::file_exists(o.out + ".partial"));

    // Resumed on rank 0 alone (another layout), in two more runs.
    par::Comm sub = world.split(world.rank() == 0 ? 0 : 1, world.rank());
    if (world.rank() == 0) {
        o.stop_after_blocks = 3;
        stages::run(o, sub);
        EXPECT_FALSE(io::file_exists(o.out));
        { // resumed, not started over: the blocks of both runs are done
            auto f = h5::File::open(o.out + ".partial");
            const auto done = h5::read_all<unsigned char>(f, "/progress/done");
            EXPECT_EQ(std::count(done.begin(), done.end(), 1), 2L * world.size() + 3);
        }
        o.stop_after_blocks = 0;
        stages::run(o, sub);
        EXPECT_FALSE(io::file_exists(o.out + ".partial"));
        const Out ref = read_out(dir + "/ref.h5"), got = read_out(o.out);
        EXPECT_TRUE(got.X == ref.X);
        EXPECT_EQ(got.src, ref.src);
        EXPECT_EQ(got.partner, ref.partner);
        EXPECT_EQ(got.gen, ref.gen);
        EXPECT_EQ(got.neighbour, ref.neighbour);
        EXPECT_EQ(got.mean, ref.mean);
        EXPECT_EQ(got.fingerprint, ref.fingerprint);
    }
    world.barrier();
}

TEST_F(Transfer, MungeSwapRateAndSpreadFollowTheNeighbours) {
    par::Comm world;
    auto dir = test::scratch_dir(world);
    Source s;
    s.n = 400, s.w = 20;
    write_source(dir + "/s.h5", s, world);
    const double p = 0.3, sdiv = 2.0;
    auto o = options({dir + "/s.h5"}, dir + "/m.h5", 2400);
    o.munge = 1, o.munge_p = p, o.munge_s = sdiv, o.block_rows = 333;
    stages::run(o, world);
    if (world.rank() != 0) return;
    const Out out = read_out(dir + "/m.h5");
    const auto X = read_sources({dir + "/s.h5"});
    const std::int64_t D = s.d();
    // Stored neighbours are the nearest rows.
    const auto want = brute_force_neighbours(X, s.n, D);
    for (std::int64_t e = 0; e < s.n; ++e)
        ASSERT_LE(sqdist(X, D, e, out.neighbour[size_t(e)]), sqdist(X, D, e, want[size_t(e)]) * (1 + 1e-5));
    std::int64_t attrs = 0, swapped = 0, sides = 0;
    double zsum = 0, zsq = 0, zmax = 0;
    for (std::int64_t i = s.n; i < 2400; ++i) {
        ASSERT_EQ(out.gen[size_t(i)], transfer::kMunge);
        const std::int64_t e = i % s.n, src = out.src[size_t(i)], par = out.partner[size_t(i)];
        // The pair is (e, neighbour(e)); either side may be the one resampled.
        ASSERT_TRUE((src == e && par == out.neighbour[size_t(e)]) ||
                    (par == e && src == out.neighbour[size_t(e)]))
            << "row " << i;
        sides += src != e;
        for (std::int64_t j = 0; j < D; ++j) {
            const float v = out.X[size_t(i * D + j)], xs = X[size_t(src * D + j)],
                        xp = X[size_t(par * D + j)];
            if (xs == xp) {
                ASSERT_EQ(v, xs);
                continue;
            }
            ++attrs;
            if (v == xs) continue; // kept
            ++swapped;
            const double sd = std::fabs(double(xs) - double(xp)) / sdiv;
            const double z = (double(v) - double(xp)) / sd;
            ASSERT_LE(std::fabs(z), 5.8)
                << "row " << i << " attribute " << j << ": outside the neighbour's spread";
            zsum += z, zsq += z * z, zmax = std::max(zmax, std::fabs(z));
        }
    }
    const double rate = double(swapped) / double(attrs);
    const double tol = 5 * std::sqrt(p * (1 - p) / double(attrs));
    EXPECT_NEAR(rate, p, tol) << swapped << " of " << attrs << " attributes resampled";
    const double zmean = zsum / double(swapped), zstd = std::sqrt(zsq / double(swapped) - zmean * zmean);
    EXPECT_NEAR(zmean, 0.0, 0.05);
    EXPECT_NEAR(zstd, 1.0, 0.05);
    EXPECT_GT(zmax, 3.0);
    EXPECT_NEAR(double(sides) / 2000.0, 0.5, 0.06);
}

namespace {
/// The augmented image of a source row for a given translation and flip (no mix, no noise), in raw units
/// mapped back through the normalisation of the output pixel.
std::vector<float> expected_shift(const std::vector<float>& X, std::int64_t row, int c, int h, int w, int dx,
                                  int dy, bool flip, const std::vector<float>& mean,
                                  const std::vector<float>& sd) {
    const std::int64_t D = std::int64_t(c) * h * w;
    std::vector<float> out(static_cast<size_t>(D));
    for (int ch = 0; ch < c; ++ch)
        for (int y = 0; y < h; ++y)
            for (int x = 0; x < w; ++x) {
                const std::int64_t j = (std::int64_t(ch) * h + y) * w + x;
                const int ys = y - dy, xt = x - dx;
                if (ys < 0 || ys >= h || xt < 0 || xt >= w) {
                    out[size_t(j)] = -mean[size_t(j)] / sd[size_t(j)];
                    continue;
                }
                const std::int64_t js = (std::int64_t(ch) * h + ys) * w + (flip ? w - 1 - xt : xt);
                const double raw = double(X[size_t(row * D + js)]) * sd[size_t(js)] + mean[size_t(js)];
                out[size_t(j)] = float((raw - mean[size_t(j)]) / sd[size_t(j)]);
            }
    return out;
}
} // namespace

TEST_F(Transfer, ShiftAndFlipMoveWholeImagesWithinBounds) {
    par::Comm world;
    auto dir = test::scratch_dir(world);
    for (const std::string norm : {"global", "per-feature"}) {
        Source s;
        s.n = 50, s.c = 2, s.h = 7, s.w = 6, s.norm = norm;
        write_source(dir + "/s.h5", s, world);
        auto o = options({dir + "/s.h5"}, dir + "/a.h5", 450);
        o.augment = 1, o.shift = 2, o.flip = true, o.overwrite = true;
        stages::run(o, world);
        if (world.rank() == 0) {
            const Out out = read_out(dir + "/a.h5");
            const auto X = read_sources({dir + "/s.h5"});
            const std::int64_t D = s.d();
            std::set<int> dxs, dys;
            int flips = 0;
            for (std::int64_t i = s.n; i < 450; ++i) {
                ASSERT_EQ(out.gen[size_t(i)], transfer::kAugment);
                ASSERT_EQ(out.src[size_t(i)], i % s.n);
                const std::vector<float> got(out.X.begin() + i * D, out.X.begin() + (i + 1) * D);
                bool found = false;
                for (int dx = -2; dx <= 2 && !found; ++dx)
                    for (int dy = -2; dy <= 2 && !found; ++dy)
                        for (int f = 0; f < 2 && !found; ++f) {
                            const auto want = expected_shift(X, out.src[size_t(i)], s.c, s.h, s.w, dx, dy, f,
                                                             out.mean, out.sd);
                            bool eq = true;
                            for (std::int64_t j = 0; j < D && eq; ++j)
                                eq = std::fabs(want[size_t(j)] - got[size_t(j)]) <=
                                     1e-5f * (1 + std::fabs(want[size_t(j)]));
                            if (eq) found = true, dxs.insert(dx), dys.insert(dy), flips += f;
                        }
                ASSERT_TRUE(found) << norm << ": row " << i << " is no translation/flip of its source row";
            }
            EXPECT_EQ(dxs.size(), 5u);
            EXPECT_EQ(dys.size(), 5u);
            EXPECT_GT(flips, 120);
            EXPECT_LT(flips, 280);
        }
        world.barrier();
    }
}

TEST_F(Transfer, NoiseHasTheRequestedSigma) {
    par::Comm world;
    auto dir = test::scratch_dir(world);
    Source s;
    s.n = 64, s.h = 8, s.w = 8;
    write_source(dir + "/s.h5", s, world);
    auto o = options({dir + "/s.h5"}, dir + "/n.h5", 64 + 640);
    o.augment = 1, o.noise = 0.3;
    stages::run(o, world);
    if (world.rank() != 0) return;
    const Out out = read_out(dir + "/n.h5");
    const auto X = read_sources({dir + "/s.h5"});
    double sum = 0, sq = 0, mx = 0;
    std::int64_t n = 0;
    for (std::int64_t i = 64; i < 704; ++i)
        for (std::int64_t j = 0; j < 64; ++j) {
            const double r =
                double(out.X[size_t(i * 64 + j)]) - double(X[size_t(out.src[size_t(i)] * 64 + j)]);
            sum += r, sq += r * r, mx = std::max(mx, std::fabs(r)), ++n;
        }
    const double mean = sum / double(n), sd = std::sqrt(sq / double(n) - mean * mean);
    EXPECT_NEAR(mean, 0.0, 0.01);
    EXPECT_NEAR(sd, 0.3, 0.01);
    EXPECT_LE(mx, 0.3 * 5.78);
}

TEST_F(Transfer, MixupIsAConvexCombinationOfTwoSourceRows) {
    par::Comm world;
    auto dir = test::scratch_dir(world);
    Source s;
    s.n = 97, s.h = 5, s.w = 4;
    write_source(dir + "/s.h5", s, world);
    auto o = options({dir + "/s.h5"}, dir + "/x.h5", 97 + 900);
    o.augment = 1, o.mixup_prob = 1, o.mixup_alpha = 1, o.block_rows = 50;
    stages::run(o, world);
    if (world.rank() != 0) return;
    const Out out = read_out(dir + "/x.h5");
    const auto X = read_sources({dir + "/s.h5"});
    const std::int64_t D = 20;
    double lsum = 0;
    for (std::int64_t i = 97; i < 997; ++i) {
        const std::int64_t a = out.src[size_t(i)], b = out.partner[size_t(i)];
        ASSERT_EQ(a, i % 97);
        ASSERT_TRUE(b >= 0 && b < 97 && b != a) << "row " << i;
        std::int64_t jm = 0;
        for (std::int64_t j = 1; j < D; ++j)
            if (std::fabs(X[size_t(a * D + j)] - X[size_t(b * D + j)]) >
                std::fabs(X[size_t(a * D + jm)] - X[size_t(b * D + jm)]))
                jm = j;
        const double lam = (double(out.X[size_t(i * D + jm)]) - X[size_t(b * D + jm)]) /
                           (double(X[size_t(a * D + jm)]) - X[size_t(b * D + jm)]);
        ASSERT_GE(lam, -1e-5);
        ASSERT_LE(lam, 1 + 1e-5);
        lsum += lam;
        for (std::int64_t j = 0; j < D; ++j) {
            const double xa = X[size_t(a * D + j)], xb = X[size_t(b * D + j)], v = out.X[size_t(i * D + j)];
            ASSERT_NEAR(v, lam * xa + (1 - lam) * xb, 1e-5) << "row " << i;
            ASSERT_GE(v, std::min(xa, xb) - 1e-5);
            ASSERT_LE(v, std::max(xa, xb) + 1e-5);
        }
    }
    EXPECT_NEAR(lsum / 900.0, 0.5, 0.05); // Beta(1, 1) is uniform
}

TEST_F(Transfer, MixWeightsSetTheGeneratorShares) {
    par::Comm world;
    auto dir = test::scratch_dir(world);
    Source s;
    s.n = 40, s.h = 4, s.w = 4;
    write_source(dir + "/s.h5", s, world);
    auto o = options({dir + "/s.h5"}, dir + "/w.h5", 4040);
    o.augment = 1, o.munge = 3, o.flip = true;
    stages::run(o, world);
    if (world.rank() != 0) return;
    const Out out = read_out(dir + "/w.h5");
    std::int64_t munge = 0;
    for (std::int64_t i = 40; i < 4040; ++i) {
        ASSERT_NE(out.gen[size_t(i)], transfer::kSource);
        munge += out.gen[size_t(i)] == transfer::kMunge;
    }
    EXPECT_NEAR(double(munge) / 4000.0, 0.75, 5 * std::sqrt(0.75 * 0.25 / 4000.0));
}

TEST_F(Transfer, SubsampleKeepsEvenlySpacedSourceRows) {
    par::Comm world;
    auto dir = test::scratch_dir(world);
    Source a, b;
    a.n = 61, b.n = 42, a.w = b.w = 3, b.seed = 3;
    write_source(dir + "/a.h5", a, world);
    write_source(dir + "/b.h5", b, world);
    auto o = options({dir + "/a.h5", dir + "/b.h5"}, dir + "/sub.h5", 10);
    o.subsample = true, o.block_rows = 2, o.augment = 1, o.flip = true; // generators unused: N < S
    stages::run(o, world);
    if (world.rank() != 0) return;
    const Out out = read_out(dir + "/sub.h5");
    const auto X = read_sources({dir + "/a.h5", dir + "/b.h5"});
    ASSERT_EQ(out.X.size(), 30u);
    for (std::int64_t i = 0; i < 10; ++i) {
        const std::int64_t e = i * 103 / 10;
        EXPECT_EQ(out.src[size_t(i)], e);
        EXPECT_EQ(out.gen[size_t(i)], transfer::kSource);
        for (int j = 0; j < 3; ++j)
            EXPECT_EQ(out.X[size_t(i * 3 + j)], X[size_t(e * 3 + j)]);
    }
}

TEST(TransferRecipe, RowPlansDependOnlyOnSeedAndRow) {
    transfer::Recipe r;
    r.seed = 5, r.n = 1000, r.s = 100, r.w_augment = 1, r.w_munge = 1, r.shift = 3, r.flip = true;
    r.mixup_prob = 0.5, r.c = 1, r.h = 10, r.w = 10;
    int mixes = 0;
    for (std::int64_t i = 100; i < 1000; ++i) {
        const auto p = transfer::plan_row(r, i, (i + 1) % 100);
        const auto q = transfer::plan_row(r, i, (i + 1) % 100);
        EXPECT_EQ(p.gen, q.gen);
        EXPECT_EQ(p.dx, q.dx);
        EXPECT_EQ(p.lambda, q.lambda);
        EXPECT_GE(p.dx, -3);
        EXPECT_LE(p.dx, 3);
        if (p.mix) {
            ++mixes;
            EXPECT_EQ(p.partner_row, (i % 100 + r.mixup_offset(i / 100)) % 100);
            EXPECT_GE(p.lambda, 0.0f);
            EXPECT_LE(p.lambda, 1.0f);
        }
    }
    EXPECT_GT(mixes, 150);
    for (std::int64_t k = 0; k < 50; ++k) {
        EXPECT_GE(r.mixup_offset(k), 1);
        EXPECT_LT(r.mixup_offset(k), 100);
    }
    // Beta(alpha, alpha): mean 1/2, variance 1 / (4 (2 alpha + 1)).
    for (double alpha : {0.2, 1.0, 4.0}) {
        double s = 0, sq = 0;
        const int n = 20000;
        for (int i = 0; i < n; ++i) {
            const double x = transfer::beta_symmetric(derive_seed(9, std::uint64_t(i)), alpha);
            ASSERT_GE(x, 0.0);
            ASSERT_LE(x, 1.0);
            s += x, sq += x * x;
        }
        const double m = s / n, v = sq / n - m * m;
        EXPECT_NEAR(m, 0.5, 0.01) << alpha;
        EXPECT_NEAR(v, 1.0 / (4 * (2 * alpha + 1)), 0.01) << alpha;
    }
}

} // namespace mimic
