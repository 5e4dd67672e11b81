// Unit tests of the core layer: counter-based RNG, row splitting, fingerprints, progress formatting,
// error macros for MPI and HDF5, host readback, and agree() turning one rank's failure into everyone's.
#include "mimic/core/comm.hpp"
#include "mimic/core/error.hpp"
#include "mimic/core/host_readback.hpp"
#include "mimic/core/progress.hpp"
#include "mimic/core/rng.hpp"
#include "mimic/core/timer.hpp"
#include "mimic/io/dataset.hpp"
#include "mimic/io/hdf5.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <set>

using namespace mimic;

TEST(Rng, SameSeedSameStreamDifferentSeedDifferentStream) {
    CounterRng a(derive_seed(42, 1, 7)), b(derive_seed(42, 1, 7)), c(derive_seed(42, 1, 8));
    for (int i = 0; i < 100; ++i) {
        const auto va = a.next_u64();
        EXPECT_EQ(va, b.next_u64());
        EXPECT_NE(va, c.next_u64());
    }
}

TEST(Rng, UniformAndNormalMoments) {
    CounterRng r(derive_seed(1, 2, 3));
    double s = 0, ss = 0, u = 0;
    const int n = 200000;
    for (int i = 0; i < n; ++i) {
        const double x = r.normal();
        s += x;
        ss += x * x;
        const float v = r.uniform();
        ASSERT_GE(v, 0.0f);
        ASSERT_LT(v, 1.0f);
        u += v;
    }
    EXPECT_NEAR(s / n, 0.0, 0.01);
    EXPECT_NEAR(ss / n, 1.0, 0.02);
    EXPECT_NEAR(u / n, 0.5, 0.005);
}

TEST(SplitRange, CoversEveryRowExactlyOnce) {
    for (std::int64_t n : {0, 1, 7, 100, 101}) {
        for (int parts : {1, 2, 3, 4, 7}) {
            std::int64_t next = 0;
            for (int p = 0; p < parts; ++p) {
                auto r = par::split_range(n, parts, p);
                EXPECT_EQ(r.begin, next);
                EXPECT_LE(r.size(), n / parts + 1);
                next = r.end;
            }
            EXPECT_EQ(next, n);
        }
    }
}

TEST(Fingerprint, DependsOnRowIndexValuesAndLabel) {
    std::vector<float> x = {1.f, 2.f, 3.f};
    const auto h = io::row_hash(5, x.data(), 3, 2, true);
    EXPECT_EQ(h, io::row_hash(5, x.data(), 3, 2, true));
    EXPECT_NE(h, io::row_hash(6, x.data(), 3, 2, true));
    EXPECT_NE(h, io::row_hash(5, x.data(), 3, 1, true));
    x[2] = 3.0001f;
    EXPECT_NE(h, io::row_hash(5, x.data(), 3, 2, true));
    EXPECT_EQ(io::hex64(0xabcULL), "0000000000000abc");
}

TEST(Fingerprint, KeepsTheValuesOfFilesAlreadyWritten) {
    // Fingerprints are stored in users' files: row_hash may get faster, never different.
    std::vector<float> x(7);
    for (size_t i = 0; i < x.size(); ++i)
        x[i] = 0.25f * float(i) - 1.0f;
    EXPECT_EQ(io::hex64(io::row_hash(12345, x.data(), 7, 3, true)), "16859244710773fe");
    EXPECT_EQ(io::hex64(io::row_hash(0, x.data(), 6, 0, false)), "6040cfc5391de1fe");
}

TEST(Fingerprint, RowHashSumEqualsTheSumOfRowHashes) {
    std::vector<float> X(11 * 9);
    std::vector<int> y(11);
    for (size_t i = 0; i < X.size(); ++i)
        X[i] = float(i % 13) * 0.37f - 2.0f;
    for (size_t i = 0; i < y.size(); ++i)
        y[i] = int(i * 7 % 10);
    for (std::int64_t d : {1, 2, 3, 8, 9})
        for (std::int64_t count = 0; count <= 11 && count * d <= std::int64_t(X.size()); ++count)
            for (bool labelled : {true, false}) {
                std::uint64_t want = 0;
                for (std::int64_t r = 0; r < count; ++r)
                    want += io::row_hash(40 + r, X.data() + r * d, d, labelled ? y[size_t(r)] : 0, labelled);
                EXPECT_EQ(io::row_hash_sum(40, X.data(), count, d, labelled ? y.data() : nullptr, labelled),
                          want)
                    << "d " << d << ", " << count << " rows, labelled " << labelled;
            }
}

TEST(HostReadback, ReadsTheRowsOfEveryBatchSize) {
    Matrix z("test::z", 6, 3);
    auto zh = Kokkos::create_mirror_view(z);
    for (int i = 0; i < 6; ++i)
        for (int j = 0; j < 3; ++j)
            zh(i, j) = float(10 * i + j);
    Kokkos::deep_copy(z, zh);
    HostReadback readback("test::readback");
    for (std::int64_t rows :
         {2, 6, 4}) { // a small batch, a larger one (the buffer grows), a smaller one again
        const Matrix part = Kokkos::subview(z, std::make_pair(std::int64_t(0), rows), Kokkos::ALL());
        const auto h = readback.read(part);
        ASSERT_EQ(h.extent(0), size_t(rows));
        ASSERT_EQ(h.extent(1), size_t(3));
        for (std::int64_t i = 0; i < rows; ++i)
            for (int j = 0; j < 3; ++j)
                EXPECT_EQ(h(i, j), float(10 * i + j)) << "row " << i << " column " << j;
    }
}

TEST(Progress, FormatsDurations) {
    EXPECT_EQ(Progress::format_duration(3.44), "3.4s");
    EXPECT_EQ(Progress::format_duration(125), "2m05s");
    EXPECT_EQ(Progress::format_duration(3723), "1h02m03s");
    EXPECT_EQ(Progress::format_duration(NAN), "?");
}

TEST(Errors, MpiCheckNamesTheCallAndFile) {
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    try {
        MIMIC_MPI_CHECK(MPI_Bcast(nullptr, -1, MPI_INT, 0, MPI_COMM_WORLD));
        FAIL() << "expected an error";
    } catch (const Error& e) {
        const std::string w = e.what();
        EXPECT_NE(w.find("MPI_Bcast"), std::string::npos) << w;
        EXPECT_NE(w.find("test_core.cpp"), std::string::npos) << w;
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
}

TEST(Errors, Hdf5CheckNamesTheCall) {
    try {
        MIMIC_H5_CHECK(H5Fopen("/nonexistent/file.h5", H5F_ACC_RDONLY, H5P_DEFAULT));
        FAIL() << "expected an error";
    } catch (const Error& e) {
        const std::string w = e.what();
        EXPECT_NE(w.find("H5Fopen"), std::string::npos) << w;
    }
    EXPECT_THROW(h5::File::open("/nonexistent/file.h5"), Error);
}

TEST(Agree, OneRankFailingMakesEveryRankThrowTheSameMessage) {
    par::Comm world;
    const int bad = world.size() - 1;
    try {
        par::agree(world, [&] {
            if (world.rank() == bad) fail("rank ", bad, " saw a problem");
        });
        FAIL() << "expected a CollectiveError on every rank";
    } catch (const CollectiveError& e) {
        EXPECT_EQ(std::string(e.what()), "rank " + std::to_string(bad) + " saw a problem");
    }
    EXPECT_NO_THROW(par::agree(world, [] {}));
}

TEST(Timers, ReduceMinAvgMaxOverRanks) {
    par::Comm world;
    PhaseTimers t;
    t.add("work", 1.0 + world.rank());
    auto s = t.reduce(world);
    ASSERT_EQ(s.size(), 1u);
    EXPECT_DOUBLE_EQ(s[0].min, 1.0);
    EXPECT_DOUBLE_EQ(s[0].max, double(world.size()));
    EXPECT_DOUBLE_EQ(s[0].avg, (1.0 + world.size()) / 2.0);
}
