// Tests of ensemble manifests and ensemble evaluation: validation catches missing, corrupt, changed and
// mismatched members; LPT balances FLOPs; the ensemble accuracies equal a direct computation.
#include "mimic/core/rng.hpp"
#include "mimic/io/dataset.hpp"
#include "mimic/io/manifest.hpp"
#include "mimic/io/model_file.hpp"
#include "mimic/parallel/grid.hpp"
#include "mimic/stages/ensemble.hpp"
#include "test_util.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

using namespace mimic;

namespace {
const nn::Shape kShape{1, 2, 3};

std::string save_member(const std::string& dir, const std::string& name, const std::string& spec,
                        nn::Shape in, std::uint64_t seed) {
    nn::Model m(spec, in);
    m.init(seed);
    io::ModelMeta meta;
    meta.spec = spec;
    meta.input = in;
    meta.num_classes = int(m.output_size());
    meta.seed = seed;
    io::save_model(dir + "/" + name, m, meta);
    return name;
}

io::Manifest three_members(const std::string& dir) {
    io::Manifest m;
    m.base_dir = dir;
    const char* specs[] = {"dense:5,relu,dense:4", "dense:4", "dense:9,tanh,dense:4"};
    for (int i = 0; i < 3; ++i) {
        const auto name =
            save_member(dir, "m" + std::to_string(i) + ".h5", specs[i], kShape, 10 + std::uint64_t(i));
        m.members.push_back(io::member_from_model_file(dir + "/" + name, name));
    }
    return m;
}

void expect_invalid(const io::Manifest& m, const std::string& what) {
    try {
        io::validate_manifest(m, "ens.h5", true);
        ADD_FAILURE() << "expected an error containing '" << what << "'";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
}
} // namespace

TEST(Manifest, RoundTripsAndValidates) {
    par::Comm world;
    const auto dir = test::scratch_dir(world);
    if (world.rank() != 0) return;
    auto m = three_members(dir);
    io::write_manifest(dir + "/ens.h5", m);
    auto r = io::read_manifest(dir + "/ens.h5");
    ASSERT_EQ(r.members.size(), 3u);
    EXPECT_EQ(r.members[2].spec, "dense:9,tanh,dense:4");
    EXPECT_EQ(r.members[1].params, 6 * 4 + 4);
    EXPECT_EQ(r.ensemble_checksum(), m.ensemble_checksum());
    EXPECT_NO_THROW(io::validate_manifest(r, dir + "/ens.h5", true));
    EXPECT_NE(stages::members_table(dir + "/ens.h5").find("3 members, 4 classes"), std::string::npos);
}

TEST(Manifest, CatchesMissingCorruptChangedAndMismatchedMembers) {
    par::Comm world;
    const auto dir = test::scratch_dir(world);
    if (world.rank() != 0) return;
    auto m = three_members(dir);
    // Missing member file.
    auto missing = m;
    missing.members[1].path = "gone.h5";
    expect_invalid(missing, "member 1 (" + dir + "/gone.h5): member file is missing");
    // Corrupt member: truncated file.
    std::system(("cp " + dir + "/m2.h5 " + dir + "/bad.h5 && truncate -s 700 " + dir + "/bad.h5").c_str());
    auto corrupt = m;
    corrupt.members[2].path = "bad.h5";
    expect_invalid(corrupt, "member file is corrupt");
    // Changed member: same spec, other weights.
    save_member(dir, "m0.h5", "dense:5,relu,dense:4", kShape, 999);
    expect_invalid(m, "differs from the manifest's");
    save_member(dir, "m0.h5", "dense:5,relu,dense:4", kShape, 10);
    EXPECT_NO_THROW(io::validate_manifest(m, "ens.h5", true));
    // Different number of classes, different input shape.
    auto classes = m;
    classes.members.push_back(
        io::member_from_model_file(dir + "/" + save_member(dir, "c5.h5", "dense:5", kShape, 1), "c5.h5"));
    expect_invalid(classes, "has 5 classes but member 0 has 4");
    auto shape = m;
    shape.members.push_back(io::member_from_model_file(
        dir + "/" + save_member(dir, "s.h5", "dense:4", nn::Shape{1, 3, 3}, 1), "s.h5"));
    expect_invalid(shape, "takes inputs of shape (1, 3, 3) but member 0 takes (1, 2, 3)");
    // Not a manifest at all.
    EXPECT_THROW(io::read_manifest(dir + "/m0.h5"), Error);
}

TEST(Grid, LptBalancesCostsDeterministically) {
    const std::vector<double> costs = {7, 5, 4, 3, 3, 2};
    const auto bin = par::assign_lpt(costs, 2);
    double load[2] = {0, 0};
    for (size_t i = 0; i < costs.size(); ++i)
        load[bin[i]] += costs[i];
    EXPECT_EQ(load[0], 12);
    EXPECT_EQ(load[1], 12);
    EXPECT_EQ(bin, par::assign_lpt(costs, 2));
    EXPECT_EQ(par::divisors(12), (std::vector<int>{1, 2, 3, 4, 6, 12}));
}

TEST(EnsembleEval, MatchesADirectComputation) {
    par::Comm world;
    const auto dir = test::scratch_dir(world);
    const std::int64_t n = 211;
    if (world.rank() == 0) {
        io::write_manifest(dir + "/ens.h5", three_members(dir));
        io::DatasetMeta dm;
        dm.n = n, dm.d = 6, dm.c = 1, dm.h = 2, dm.w = 3, dm.num_classes = 4, dm.has_labels = true;
        io::DatasetWriter w(dir + "/data.h5", par::Comm(MPI_COMM_SELF, false), dm);
        std::vector<float> X(size_t(n * 6));
        std::vector<int> y(static_cast<size_t>(n));
        for (std::int64_t i = 0; i < n; ++i) {
            CounterRng r(derive_seed(5, std::uint64_t(i)));
            for (int j = 0; j < 6; ++j)
                X[size_t(i * 6 + j)] = r.normal();
            y[size_t(i)] = int(r.below(4));
        }
        w.write(0, n, X.data(), y.data());
        w.commit();
    }
    world.barrier();
    const auto s = stages::evaluate_ensemble(dir + "/ens.h5", dir + "/data.h5", 2, 50, world);
    if (world.rank() != 0) return;
    // Direct: all rows at once, per member, then both averages.
    io::DatasetReader data(dir + "/data.h5", par::Comm(MPI_COMM_SELF, false));
    HostMatrix xh("mimic::test::x", size_t(n), 6);
    std::vector<int> y(static_cast<size_t>(n));
    data.read(0, n, xh.data(), y.data());
    Matrix x("mimic::test::xd", size_t(n), 6);
    Kokkos::deep_copy(x, xh);
    std::vector<double> zsum(size_t(n * 4), 0), psum(size_t(n * 4), 0);
    for (int k = 0; k < 3; ++k) {
        auto model = io::load_model(dir + "/m" + std::to_string(k) + ".h5");
        auto z = Kokkos::create_mirror_view_and_copy(HostSpace(), model.forward(x, false));
        int correct = 0;
        for (std::int64_t i = 0; i < n; ++i) {
            int top = 0;
            double mx = z(i, 0), s2 = 0;
            for (int c = 0; c < 4; ++c) {
                if (z(i, c) > z(i, top)) top = c;
                mx = std::max(mx, double(z(i, c)));
            }
            correct += top == y[size_t(i)];
            for (int c = 0; c < 4; ++c)
                s2 += std::exp(z(i, c) - mx);
            for (int c = 0; c < 4; ++c) {
                zsum[size_t(i * 4 + c)] += z(i, c);
                psum[size_t(i * 4 + c)] += std::exp(z(i, c) - mx) / s2;
            }
        }
        EXPECT_DOUBLE_EQ(s.member_accuracy[size_t(k)], double(correct) / n);
    }
    int cz = 0, cp = 0;
    for (std::int64_t i = 0; i < n; ++i) {
        int tz = 0, tp = 0;
        for (int c = 1; c < 4; ++c) {
            if (zsum[size_t(i * 4 + c)] > zsum[size_t(i * 4 + tz)]) tz = c;
            if (psum[size_t(i * 4 + c)] > psum[size_t(i * 4 + tp)]) tp = c;
        }
        cz += tz == y[size_t(i)];
        cp += tp == y[size_t(i)];
    }
    EXPECT_DOUBLE_EQ(s.logits_accuracy, double(cz) / n);
    EXPECT_DOUBLE_EQ(s.prob_accuracy, double(cp) / n);
    EXPECT_EQ(s.rows, n);
}
