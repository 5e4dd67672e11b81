// Tests of `mimic label`: the logits file is bitwise identical for every rank count and grid shape
// (against a 1-rank run inside the test), agrees with a member-by-member reference, supports prob/float16/
// variance, resumes from a partial file, and rejects mismatched inputs.
#include "mimic/core/kokkos.hpp"
#include "mimic/core/rng.hpp"
#include "mimic/io/dataset.hpp"
#include "mimic/io/logits_file.hpp"
#include "mimic/io/manifest.hpp"
#include "mimic/io/model_file.hpp"
#include "mimic/nn/model.hpp"
#include "mimic/parallel/grid.hpp"
#include "mimic/stages/label.hpp"
#include "test_util.hpp"

#include <gtest/gtest.h>

#include <cmath>

using namespace mimic;

namespace {

constexpr std::int64_t kN = 1000, kD = 20;
constexpr int kC = 3;
const char* kSpecs[] = {"dense:16,relu,dense:3", "dense:8,tanh,dense:3", "dense:3",
                        "dense:32,relu,dense:16,relu,dense:3", "dense:12,sigmoid,dense:3"};

float feature(std::int64_t r, std::int64_t j) {
    CounterRng g(derive_seed(7, std::uint64_t(r), std::uint64_t(j)));
    return g.normal();
}

/// Transfer set, 5 members with different architectures and a manifest, written by rank 0.
void make_fixture(const std::string& dir, const par::Comm& world) {
    if (world.rank() == 0) {
        par::Comm self(MPI_COMM_SELF, false);
        io::DatasetMeta dm;
        dm.n = kN, dm.d = kD, dm.c = 1, dm.h = 4, dm.w = 5, dm.num_classes = kC;
        io::DatasetWriter w(dir + "/transfer.h5", self, dm);
        std::vector<float> X(size_t(kN * kD));
        for (std::int64_t r = 0; r < kN; ++r)
            for (std::int64_t j = 0; j < kD; ++j)
                X[size_t(r * kD + j)] = feature(r, j);
        w.write(0, kN, X.data(), nullptr);
        w.commit();
        io::Manifest m;
        m.base_dir = dir;
        for (int i = 0; i < 5; ++i) {
            nn::Model model(kSpecs[i], nn::Shape{1, 4, 5});
            model.init(100 + std::uint64_t(i));
            io::ModelMeta meta;
            meta.spec = kSpecs[i];
            meta.input = nn::Shape{1, 4, 5};
            meta.num_classes = kC;
            meta.seed = 100 + std::uint64_t(i);
            const std::string name = "member" + std::to_string(i) + ".h5";
            io::save_model(dir + "/" + name, model, meta);
            m.members.push_back(io::member_from_model_file(dir + "/" + name, name));
        }
        io::write_manifest(dir + "/ensemble.h5", m);
    }
    world.barrier();
}

std::vector<float> read_logits(const std::string& path) {
    auto f = h5::File::open(path);
    auto meta = io::read_logits_meta(f);
    auto d = h5::open_dataset(f, "/logits");
    std::vector<float> v(size_t(meta.n * meta.num_classes));
    io::read_logits_rows(f, d, meta, 0, meta.n, v.data());
    return v;
}

stages::LabelOptions options(const std::string& dir, const std::string& out) {
    stages::LabelOptions o;
    o.ensemble = dir + "/ensemble.h5";
    o.transfer = dir + "/transfer.h5";
    o.out = dir + "/" + out;
    o.block_rows = 128;
    o.batch = 32;
    return o;
}

/// Runs the stage on rank 0 alone (the 1-rank reference) while the other ranks wait.
void run_serial(const stages::LabelOptions& o, const par::Comm& world) {
    if (world.rank() == 0) {
        par::Comm self(MPI_COMM_SELF, false);
        stages::run(o, self);
    }
    world.barrier();
}

} // namespace

TEST(Label, BitwiseIdenticalForEveryGridShapeAndEqualToMemberByMemberReference) {
    par::Comm world;
    const auto dir = test::scratch_dir(world);
    make_fixture(dir, world);
    run_serial(options(dir, "serial.h5"), world);
    const auto ref = read_logits(dir + "/serial.h5");

    for (int g : par::divisors(world.size())) {
        auto o = options(dir, "grid" + std::to_string(g) + ".h5");
        o.groups = g;
        stages::run(o, world);
        const auto got = read_logits(o.out);
        ASSERT_EQ(got.size(), ref.size());
        EXPECT_EQ(0, std::memcmp(got.data(), ref.data(), ref.size() * sizeof(float)))
            << "grid " << g << " x " << world.size() / g << " differs from the 1-rank file";
        EXPECT_EQ(io::read_logits_meta(o.out).complete, true);
        EXPECT_FALSE(io::file_exists(o.out + ".partial"));
    }
    // Automatic grid too.
    auto o = options(dir, "auto.h5");
    stages::run(o, world);
    EXPECT_EQ(read_logits(o.out), ref);

    // Member-by-member reference: each member over all rows in one batch, averaged in double.
    if (world.rank() == 0) {
        io::DatasetReader tr(dir + "/transfer.h5", par::Comm(MPI_COMM_SELF, false));
        HostMatrix xh("mimic::test::x", size_t(kN), size_t(kD));
        tr.read(0, kN, xh.data(), nullptr);
        Matrix x("mimic::test::xd", size_t(kN), size_t(kD));
        Kokkos::deep_copy(x, xh);
        std::vector<double> acc(size_t(kN * kC), 0.0);
        for (int i = 0; i < 5; ++i) {
            auto model = io::load_model(dir + "/member" + std::to_string(i) + ".h5");
            auto z = Kokkos::create_mirror_view_and_copy(HostSpace(), model.forward(x, false));
            for (std::int64_t r = 0; r < kN; ++r)
                for (int c = 0; c < kC; ++c)
                    acc[size_t(r * kC + c)] += z(r, c);
        }
        for (size_t k = 0; k < acc.size(); ++k)
            ASSERT_NEAR(ref[k], acc[k] / 5.0, 1e-5 * (1 + std::fabs(acc[k] / 5)));
    }
}

TEST(Label, ProbabilityCombineFloat16AndVariance) {
    par::Comm world;
    const auto dir = test::scratch_dir(world);
    make_fixture(dir, world);
    auto base = options(dir, "f32.h5");
    base.variance = true;
    stages::run(base, world);
    auto half = options(dir, "f16.h5");
    half.storage = "float16";
    stages::run(half, world);
    auto prob = options(dir, "prob.h5");
    prob.combine = "prob";
    prob.temperature = 4.0;
    stages::run(prob, world);
    if (world.rank() != 0) return;

    const auto f32 = read_logits(base.out), f16 = read_logits(half.out), p = read_logits(prob.out);
    for (size_t k = 0; k < f32.size(); ++k)
        ASSERT_EQ(f16[k], io::half_to_float(io::float_to_half(f32[k])));

    // Member logits, for the probability average and the variance.
    io::DatasetReader tr(dir + "/transfer.h5", par::Comm(MPI_COMM_SELF, false));
    HostMatrix xh("mimic::test::x", size_t(kN), size_t(kD));
    tr.read(0, kN, xh.data(), nullptr);
    Matrix x("mimic::test::xd", size_t(kN), size_t(kD));
    Kokkos::deep_copy(x, xh);
    std::vector<HostMatrix> z;
    for (int i = 0; i < 5; ++i) {
        auto model = io::load_model(dir + "/member" + std::to_string(i) + ".h5");
        z.push_back(Kokkos::create_mirror_view_and_copy(HostSpace(), model.forward(x, false)));
    }
    auto f = h5::File::open(base.out);
    const auto var = h5::read_all<float>(f, "/variance");
    const auto dis = h5::read_all<float>(f, "/disagreement");
    for (std::int64_t r = 0; r < kN; r += 37) {
        double pbar[kC] = {0, 0, 0}, v = 0;
        for (int c = 0; c < kC; ++c) {
            double m = 0, m2 = 0;
            for (int i = 0; i < 5; ++i)
                m += z[size_t(i)](r, c) / 5.0;
            for (int i = 0; i < 5; ++i)
                m2 += (z[size_t(i)](r, c) - m) * (z[size_t(i)](r, c) - m) / 5.0;
            v += m2 / kC;
        }
        EXPECT_NEAR(var[size_t(r)], v, 1e-4 * (1 + v));
        for (int i = 0; i < 5; ++i) {
            double mx = -1e9, s = 0, e[kC];
            for (int c = 0; c < kC; ++c)
                mx = std::max(mx, double(z[size_t(i)](r, c)) / 4.0);
            for (int c = 0; c < kC; ++c)
                s += (e[c] = std::exp(z[size_t(i)](r, c) / 4.0 - mx));
            for (int c = 0; c < kC; ++c)
                pbar[c] += e[c] / s / 5.0;
        }
        for (int c = 0; c < kC; ++c)
            EXPECT_NEAR(p[size_t(r * kC + c)], 4.0 * std::log(pbar[c]), 1e-4);
        EXPECT_GE(dis[size_t(r)], 0.0f);
        EXPECT_LE(dis[size_t(r)],
                  0.8f + 1e-6f); // at most 4 of 5 members can disagree with the mean's top class
    }
}

TEST(Label, ResumesFromAPartialFileToTheSameBytes) {
    par::Comm world;
    const auto dir = test::scratch_dir(world);
    make_fixture(dir, world);
    auto full = options(dir, "full.h5");
    stages::run(full, world);
    // Make a partial file as a killed run leaves it: complete run renamed back, half its blocks undone
    // and their rows overwritten with garbage.
    auto o = options(dir, "resumed.h5");
    if (world.rank() == 0) {
        std::system(("cp " + full.out + " " + o.out + ".partial").c_str());
        auto f = h5::File::open(o.out + ".partial", MPI_COMM_NULL, true);
        h5::write_attr(f.id(), "complete", 0LL);
        auto done = h5::open_dataset(f, "/progress/done");
        auto logits = h5::open_dataset(f, "/logits");
        std::vector<float> junk(size_t(128 * kC), 1234.5f);
        for (std::int64_t b = 0; b < 8; b += 2) {
            const unsigned char zero = 0;
            h5::write_rows(done, H5T_NATIVE_UCHAR, b, 1, &zero, false);
            h5::write_rows(logits, H5T_NATIVE_FLOAT, b * 128, 128, junk.data(), false);
        }
    }
    world.barrier();
    stages::run(o, world);
    EXPECT_EQ(read_logits(o.out), read_logits(full.out));
    auto a = io::read_logits_meta(o.out);
    EXPECT_TRUE(a.complete);
    // Rerunning a complete file is a no-op.
    EXPECT_NO_THROW(stages::run(o, world));
}

TEST(Label, RejectsMismatchedInputs) {
    par::Comm world;
    const auto dir = test::scratch_dir(world);
    make_fixture(dir, world);
    // A transfer set whose rows do not fit the members.
    if (world.rank() == 0) {
        io::DatasetMeta dm;
        dm.n = 10, dm.d = 7, dm.c = 1, dm.h = 1, dm.w = 7;
        io::DatasetWriter w(dir + "/wrong.h5", par::Comm(MPI_COMM_SELF, false), dm);
        std::vector<float> X(70, 0.5f);
        w.write(0, 10, X.data(), nullptr);
        w.commit();
    }
    world.barrier();
    auto o = options(dir, "x.h5");
    o.transfer = dir + "/wrong.h5";
    try {
        stages::run(o, world);
        FAIL() << "expected an error";
    } catch (const CollectiveError& e) {
        EXPECT_NE(std::string(e.what()).find("wrong.h5: rows have D = 7"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(io::file_exists(o.out + ".partial"));

    // An existing logits file from another transfer set is not overwritten without --overwrite.
    auto first = options(dir, "taken.h5");
    stages::run(first, world);
    if (world.rank() == 0) {
        io::DatasetMeta dm;
        dm.n = 300, dm.d = kD, dm.c = 1, dm.h = 4, dm.w = 5;
        io::DatasetWriter w(dir + "/other.h5", par::Comm(MPI_COMM_SELF, false), dm);
        std::vector<float> X(size_t(300 * kD), 0.25f);
        w.write(0, 300, X.data(), nullptr);
        w.commit();
    }
    world.barrier();
    auto second = first;
    second.transfer = dir + "/other.h5";
    try {
        stages::run(second, world);
        FAIL() << "expected an error";
    } catch (const CollectiveError& e) {
        EXPECT_NE(std::string(e.what()).find("taken.h5: exists and holds logits of a different"),
                  std::string::npos)
            << e.what();
    }
    second.overwrite = true;
    stages::run(second, world);
    EXPECT_EQ(io::read_logits_meta(second.out).n, 300);

    // Bad option values.
    auto bad = options(dir, "bad.h5");
    bad.batch = 33;
    EXPECT_THROW(stages::run(bad, world), CollectiveError);
    bad = options(dir, "bad.h5");
    bad.groups = 7 * world.size() + 1;
    EXPECT_THROW(stages::run(bad, world), CollectiveError);
}
