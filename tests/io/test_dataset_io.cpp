// Tests of the dataset file layer: collective block writes from any rank count give the same file,
// 2 ranks reading disjoint row blocks equal one serial read, an uncommitted writer leaves nothing, and
// uint8 and fp16 stores read back as their float32 twin (bit for bit, and rounded to half); the block
// record flushes on the schedule it is given.
#include "mimic/core/rng.hpp"
#include "mimic/io/block_record.hpp"
#include "mimic/io/dataset.hpp"
#include "mimic/io/half.hpp"
#include "mimic/io/source_rows.hpp"
#include "test_util.hpp"

#include <chrono>
#include <cstring>
#include <thread>

#include <gtest/gtest.h>

using namespace mimic;

namespace {
io::DatasetMeta small_meta(std::int64_t n) {
    io::DatasetMeta m;
    m.n = n;
    m.d = 6;
    m.c = 1, m.h = 2, m.w = 3;
    m.num_classes = 4;
    m.has_labels = true;
    m.source = "unit-test";
    return m;
}
float value(std::int64_t r, std::int64_t j) {
    return float(r) * 10.0f + float(j) * 0.5f - 3.0f;
}

void write_file(const std::string& path, const par::Comm& comm, std::int64_t n) {
    io::DatasetWriter w(path, comm, small_meta(n));
    auto mine = par::split_range(n, comm.size(), comm.rank());
    std::vector<float> X(size_t(mine.size() * 6));
    std::vector<int> y(size_t(mine.size()));
    for (std::int64_t i = 0; i < mine.size(); ++i) {
        for (int j = 0; j < 6; ++j)
            X[size_t(i * 6 + j)] = value(mine.begin + i, j);
        y[size_t(i)] = int((mine.begin + i) % 4);
    }
    w.write(mine.begin, mine.size(), X.data(), y.data());
    w.commit();
}
} // namespace

TEST(DatasetIO, CollectiveWriteThenSerialReadRoundTrips) {
    par::Comm world;
    auto dir = test::scratch_dir(world);
    const std::int64_t n = 103;
    write_file(dir + "/d.h5", world, n);
    ASSERT_FALSE(io::file_exists(dir + "/d.h5.partial"));
    if (world.rank() == 0) {
        par::Comm self(MPI_COMM_SELF, false);
        io::DatasetReader r(dir + "/d.h5", self);
        EXPECT_EQ(r.meta().n, n);
        EXPECT_EQ(r.meta().d, 6);
        EXPECT_EQ(r.meta().h, 2);
        EXPECT_EQ(r.meta().num_classes, 4);
        EXPECT_EQ(r.meta().fingerprint.size(), 16u);
        std::vector<float> X(size_t(n * 6));
        std::vector<int> y(static_cast<size_t>(n));
        r.read(0, n, X.data(), y.data());
        for (std::int64_t i = 0; i < n; ++i) {
            for (int j = 0; j < 6; ++j)
                ASSERT_EQ(X[size_t(i * 6 + j)], value(i, j));
            ASSERT_EQ(y[size_t(i)], int(i % 4));
        }
    }
}

TEST(DatasetIO, FingerprintIsIndependentOfRankCount) {
    par::Comm world;
    auto dir = test::scratch_dir(world);
    write_file(dir + "/all.h5", world, 57);
    std::string fp_all, fp_one;
    {
        io::DatasetReader r(dir + "/all.h5", world);
        fp_all = r.meta().fingerprint;
    }
    if (world.rank() == 0) {
        par::Comm self(MPI_COMM_SELF, false);
        write_file(dir + "/one.h5", self, 57);
        io::DatasetReader r(dir + "/one.h5", self);
        fp_one = r.meta().fingerprint;
        EXPECT_EQ(fp_all, fp_one);
    }
}

TEST(DatasetIO, DisjointParallelBlockReadsEqualTheSerialRead) {
    par::Comm world;
    auto dir = test::scratch_dir(world);
    const std::int64_t n = 1000;
    write_file(dir + "/d.h5", world, n);
    io::DatasetReader r(dir + "/d.h5", world);
    // Each rank reads its own rows in blocks of 64; the last block of a rank may be short or empty.
    auto mine = par::split_range(n, world.size(), world.rank());
    std::vector<float> X(size_t(mine.size() * 6));
    std::vector<int> y(size_t(mine.size()));
    const std::int64_t per = (n + world.size() - 1) / world.size();
    for (std::int64_t b = 0; b < per; b += 64) {
        const std::int64_t cnt = std::max<std::int64_t>(0, std::min<std::int64_t>(64, mine.size() - b));
        r.read(mine.begin + std::min(b, mine.size()), cnt, X.data() + std::min(b, mine.size()) * 6,
               y.data() + std::min(b, mine.size()));
    }
    // Gather to rank 0 and compare with a serial read of the whole file.
    std::vector<int> counts(size_t(world.size())), displs(size_t(world.size()));
    int mycount = int(mine.size() * 6);
    MPI_Gather(&mycount, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, world.get());
    for (int i = 1; i < world.size(); ++i)
        displs[size_t(i)] = displs[size_t(i - 1)] + counts[size_t(i - 1)];
    std::vector<float> gathered(size_t(n * 6));
    MPI_Gatherv(X.data(), mycount, MPI_FLOAT, gathered.data(), counts.data(), displs.data(), MPI_FLOAT, 0,
                world.get());
    if (world.rank() == 0) {
        par::Comm self(MPI_COMM_SELF, false);
        io::DatasetReader serial(dir + "/d.h5", self);
        std::vector<float> all(size_t(n * 6));
        serial.read(0, n, all.data(), nullptr);
        EXPECT_EQ(all, gathered);
        for (std::int64_t i = 0; i < n * 6; ++i)
            ASSERT_EQ(all[size_t(i)], value(i / 6, i % 6));
    }
}

TEST(DatasetIO, UncommittedWriterLeavesNoFile) {
    par::Comm world;
    auto dir = test::scratch_dir(world);
    {
        io::DatasetWriter w(dir + "/never.h5", world, small_meta(10));
        EXPECT_TRUE(io::file_exists(dir + "/never.h5.partial"));
    }
    world.barrier();
    EXPECT_FALSE(io::file_exists(dir + "/never.h5"));
    EXPECT_FALSE(io::file_exists(dir + "/never.h5.partial"));
}

// Every rank adds one block per round (rank r adds block round * size + r); recorded() after each round
// counts the rounds whose done records are on disk, and after the drain every block reads back done.
TEST(BlockRecord, FlushesEveryRoundOrOnlyWhenTheSecondsHavePassed) {
    par::Comm world;
    auto dir = test::scratch_dir(world);
    const int p = world.size(), rounds = 3;
    auto run = [&](const std::string& name, double seconds, bool rank0_waits) {
        auto f = h5::File::create(dir + "/" + name, world);
        auto record = io::BlockRecord::create(f, rounds * p);
        std::vector<std::int64_t> recorded;
        for (int r = 0; r < rounds; ++r) {
            if (rank0_waits && world.rank() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(60));
            record.add_and_flush(true, r * p + world.rank(), 100 + r, seconds, world);
            recorded.push_back(record.recorded());
        }
        record.drain();
        recorded.push_back(record.recorded());
        record.read();
        for (int k = 0; k < rounds * p; ++k) {
            EXPECT_EQ(record.done()[size_t(k)], 1) << name << " block " << k;
            EXPECT_EQ(record.hashes()[size_t(k)], 100u + unsigned(k / p)) << name << " block " << k;
        }
        record.close();
        return recorded;
    };
    using V = std::vector<std::int64_t>;
    // 0: each round commits the previous round's records (pipelined), the last one at the drain.
    EXPECT_EQ(run("every_round.h5", 0, false), (V{0, 1, 2, 3}));
    // Seconds not yet passed: nothing is recorded until the drain.
    EXPECT_EQ(run("timed.h5", 1e6, false), (V{0, 0, 0, 3}));
    // Rank 0 alone finds the seconds passed: every rank drains with it (collective).
    EXPECT_EQ(run("due.h5", 0.05, true), (V{1, 2, 3, 3}));
}

TEST(DatasetIO, ReaderRejectsFilesThatAreNotDatasets) {
    par::Comm world;
    auto dir = test::scratch_dir(world);
    if (world.rank() == 0) {
        FILE* f = std::fopen((dir + "/junk.h5").c_str(), "w");
        std::fputs("not hdf5", f);
        std::fclose(f);
    }
    world.barrier();
    par::Comm self(MPI_COMM_SELF, false);
    try {
        io::DatasetReader r(dir + "/junk.h5", self);
        FAIL();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("junk.h5: not an HDF5 file"), std::string::npos) << e.what();
    }
    EXPECT_THROW(io::DatasetReader(dir + "/missing.h5", self), Error);
}

TEST(DatasetIO, AnErrorOnEveryRankClosesAnOpenParallelFileCleanly) {
    // Every rank unwinds through an open writer (datasets and a parallel file): the close guard finds all
    // ranks unwinding, lets the collective closes run once, and the partial file is left intact.
    par::Comm world;
    auto dir = test::scratch_dir(world);
    bool caught = false;
    try {
        io::DatasetWriter w(dir + "/kept.h5", world, small_meta(8));
        w.keep_partial();
        throw Error("raised on every rank");
    } catch (const Error&) {
        caught = true;
    }
    EXPECT_TRUE(caught);
    world.barrier();
    io::DatasetReader r(dir + "/kept.h5.partial", world);
    EXPECT_EQ(r.meta().n, 8);
}

TEST(DatasetIO, ObjectsNameTheirFilesOwnId) {
    // h5::guard_close_while_unwinding finds an object's file (and its guard) by this id.
    par::Comm world;
    auto dir = test::scratch_dir(world);
    auto f = h5::File::create(dir + "/ids.h5", world.size() > 1 ? world.get() : MPI_COMM_NULL);
    auto d = h5::create_dataset(f, "/x", H5T_NATIVE_FLOAT, {4});
    const hid_t fid = H5Iget_file_id(d);
    EXPECT_EQ(fid, f.id());
    H5Idec_ref(fid);
}

namespace {
/// Rows of 8-bit pixels normalised per feature as `data import` does, written on comm stored as `store`.
std::vector<float> pixel_rows(std::int64_t first, std::int64_t count, const std::vector<float>& mean,
                              const std::vector<float>& sd) {
    std::vector<float> X(size_t(count * 6));
    for (std::int64_t i = 0; i < count; ++i)
        for (int j = 0; j < 6; ++j)
            X[size_t(i * 6 + j)] = io::normalized_value(float(((first + i) * 7 + j * 31) % 256),
                                                        float(1.0 / 255.0), mean[size_t(j)], sd[size_t(j)]);
    return X;
}

void write_stored(const std::string& path, const par::Comm& comm, std::int64_t n, io::Store store) {
    io::DatasetMeta m = small_meta(n);
    m.has_labels = false;
    m.norm_scale = 1.0 / 255.0;
    m.store = store;
    const std::vector<float> mean{0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f},
        sd{0.3f, 0.25f, 0.2f, 0.35f, 0.4f, 1.0f};
    io::DatasetWriter w(path, comm, m);
    w.set_normalization("per-feature", m.norm_scale, mean, sd);
    auto mine = par::split_range(n, comm.size(), comm.rank());
    const std::int64_t per = (n + comm.size() - 1) / comm.size(); // the same rounds on every rank
    for (std::int64_t b = 0; b < per; b += 16) {                  // blocks of 16 rows
        const std::int64_t lo = std::min(mine.begin + b, mine.end);
        const std::int64_t cnt = std::min<std::int64_t>(16, mine.end - lo);
        const auto X = pixel_rows(lo, cnt, mean, sd);
        w.write(lo, cnt, X.data(), nullptr);
    }
    w.commit();
}

/// Every rank reads its own rows (collectively), gathered on rank 0 in row order; empty elsewhere.
std::vector<float> read_all_rows(const std::string& path, const par::Comm& comm, io::DatasetMeta& meta) {
    io::DatasetReader r(path, comm);
    meta = r.meta();
    auto mine = par::split_range(meta.n, comm.size(), comm.rank());
    std::vector<float> X(size_t(mine.size() * 6));
    r.read(mine.begin, mine.size(), X.data(), nullptr);
    std::vector<int> counts(size_t(comm.size())), displs(size_t(comm.size()));
    int mycount = int(X.size());
    MPI_Gather(&mycount, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, comm.get());
    for (int i = 1; i < comm.size(); ++i)
        displs[size_t(i)] = displs[size_t(i - 1)] + counts[size_t(i - 1)];
    std::vector<float> all(comm.rank() == 0 ? size_t(meta.n * 6) : 0);
    MPI_Gatherv(X.data(), mycount, MPI_FLOAT, all.data(), counts.data(), displs.data(), MPI_FLOAT, 0,
                comm.get());
    return all;
}
} // namespace

TEST(DatasetIO, Uint8AndFp16StoresReadBackAsTheirFloat32Twin) {
    par::Comm world;
    auto dir = test::scratch_dir(world);
    const std::int64_t n = 77;
    io::DatasetMeta m32, m8, m16;
    write_stored(dir + "/f32.h5", world, n, io::Store::fp32);
    write_stored(dir + "/u8.h5", world, n, io::Store::uint8);
    write_stored(dir + "/f16.h5", world, n, io::Store::fp16);
    const auto x32 = read_all_rows(dir + "/f32.h5", world, m32);
    const auto x8 = read_all_rows(dir + "/u8.h5", world, m8);
    const auto x16 = read_all_rows(dir + "/f16.h5", world, m16);
    EXPECT_EQ(m8.store, io::Store::uint8);
    EXPECT_EQ(m16.store, io::Store::fp16);
    EXPECT_EQ(m8.fingerprint, m32.fingerprint); // the fingerprint is over the float32 rows
    EXPECT_NE(m16.fingerprint, m32.fingerprint);
    if (world.rank() != 0) return;
    ASSERT_EQ(x8.size(), x32.size());
    EXPECT_EQ(0, std::memcmp(x8.data(), x32.data(), x32.size() * sizeof(float))) << "uint8 rows differ";
    for (size_t i = 0; i < x32.size(); ++i)
        ASSERT_EQ(x16[i], io::half_to_float(io::float_to_half(x32[i]))) << "value " << i;
}

TEST(DatasetIO, Uint8StoreRefusesAValueNoPixelGives) {
    par::Comm world;
    auto dir = test::scratch_dir(world);
    io::DatasetMeta m = small_meta(world.size());
    m.has_labels = false;
    m.norm_scale = 1.0 / 255.0;
    m.store = io::Store::uint8;
    io::DatasetWriter w(dir + "/u8.h5", world, m);
    w.set_normalization("none", m.norm_scale, std::vector<float>(6, 0.0f), std::vector<float>(6, 1.0f));
    std::vector<float> X(6, 0.001f); // between the pixels 0 and 1
    if (world.rank() == 0) X[0] = 2.0f / 255.0f;
    EXPECT_THROW(w.write(world.rank(), 1, X.data(), nullptr), Error);
}

TEST(DatasetIO, ReaderRefusesAStoreThatDoesNotMatchX) {
    par::Comm world;
    auto dir = test::scratch_dir(world);
    write_file(dir + "/d.h5", world, 10);
    if (world.rank() != 0) return;
    {
        auto f = h5::File::open(dir + "/d.h5", MPI_COMM_NULL, true);
        h5::write_attr(f.id(), "store", std::string("uint8"));
    }
    par::Comm self(MPI_COMM_SELF, false);
    try {
        io::DatasetReader r(dir + "/d.h5", self);
        FAIL() << "opened a file whose @store says uint8 over float32 /X";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("attribute 'store' says uint8"), std::string::npos) << e.what();
    }
}

TEST(DatasetIO, Uint8RowsTooWideForATableReadBackAsTheirFloat32Twin) {
    par::Comm world;
    auto dir = test::scratch_dir(world);
    const std::int64_t d = std::int64_t(io::DatasetReader::kPixelTableMaxBytes / 1024) + 16, n = 3;
    std::vector<float> mean(static_cast<size_t>(d)), sd(static_cast<size_t>(d)), X(size_t(n * d));
    for (std::int64_t j = 0; j < d; ++j)
        mean[size_t(j)] = float(j % 97) / 97.0f, sd[size_t(j)] = 0.2f + float(j % 13) / 13.0f;
    for (std::int64_t i = 0; i < n * d; ++i)
        X[size_t(i)] = io::normalized_value(float((i * 5) % 256), float(1.0 / 255.0), mean[size_t(i % d)],
                                            sd[size_t(i % d)]);
    std::string fp[2];
    for (int k = 0; k < 2; ++k) {
        io::DatasetMeta m;
        m.n = n, m.d = d, m.w = int(d), m.norm_scale = 1.0 / 255.0;
        m.store = k ? io::Store::uint8 : io::Store::fp32;
        const std::string path = dir + (k ? "/wide8.h5" : "/wide32.h5");
        {
            io::DatasetWriter w(path, world, m);
            w.set_normalization("per-feature", m.norm_scale, mean, sd);
            const bool mine = world.rank() == 0;
            w.write(0, mine ? n : 0, X.data(), nullptr);
            w.commit();
        }
        io::DatasetReader r(path, world);
        std::vector<float> back(size_t(n * d));
        r.read(0, n, back.data(), nullptr);
        EXPECT_EQ(0, std::memcmp(back.data(), X.data(), X.size() * sizeof(float))) << path;
        fp[k] = r.meta().fingerprint;
    }
    EXPECT_EQ(fp[0], fp[1]);
}

namespace {
/// Writes n rows of d pixels (with labels) stored as uint8 on comm, in blocks of 5 rows: through
/// write_pixels when `pixels`, else through write() of their normalised values as `data import` computed
/// them. Returns rank 0's copy of /X's bytes and sets the fingerprint and this rank's summed block hashes.
std::vector<std::uint8_t> write_pixel_file(const std::string& path, const par::Comm& comm, std::int64_t n,
                                           std::int64_t d, const std::vector<float>& mean,
                                           const std::vector<float>& sd, bool pixels, std::string& fp,
                                           std::uint64_t& hashes) {
    io::DatasetMeta m;
    m.n = n, m.d = d, m.w = int(d), m.num_classes = 3, m.has_labels = true;
    m.norm_scale = 1.0 / 255.0;
    m.store = io::Store::uint8;
    {
        io::DatasetWriter w(path, comm, m);
        w.set_normalization("per-feature", m.norm_scale, mean, sd);
        const auto mine = par::split_range(n, comm.size(), comm.rank());
        hashes = 0;
        for (std::int64_t b = 0; b < (n + comm.size() - 1) / comm.size(); b += 5) { // same rounds everywhere
            const std::int64_t lo = std::min(mine.begin + b, mine.end);
            const std::int64_t cnt = std::min<std::int64_t>(5, mine.end - lo);
            std::vector<std::uint8_t> px(size_t(cnt * d));
            std::vector<float> X(px.size());
            std::vector<int> y(static_cast<size_t>(cnt));
            for (std::int64_t i = 0; i < cnt * d; ++i) {
                px[size_t(i)] = std::uint8_t(((lo + i / d) * 37 + (i % d) * 11) % 256);
                X[size_t(i)] = io::normalized_value(float(double(px[size_t(i)])), float(m.norm_scale),
                                                    mean[size_t(i % d)], sd[size_t(i % d)]);
            }
            for (std::int64_t i = 0; i < cnt; ++i)
                y[size_t(i)] = int((lo + i) % 3);
            hashes +=
                pixels ? w.write_pixels(lo, cnt, px.data(), y.data()) : w.write(lo, cnt, X.data(), y.data());
        }
        fp = w.commit();
    }
    std::vector<std::uint8_t> all(comm.rank() == 0 ? size_t(n * d) : 0);
    if (comm.rank() == 0) {
        auto f = h5::File::open(path, MPI_COMM_NULL);
        h5::read_rows(h5::open_dataset(f, "/X"), H5T_NATIVE_UINT8, 0, n, all.data(), false);
    }
    return all;
}

/// write_pixels and write() of the same rows give the same /X bytes, fingerprint and block hashes.
void expect_same_pixel_files(const std::string& dir, const par::Comm& comm, std::int64_t d,
                             const std::vector<float>& mean, const std::vector<float>& sd) {
    const std::int64_t n = 23;
    std::string fp_raw, fp_float;
    std::uint64_t h_raw = 0, h_float = 0;
    const auto raw = write_pixel_file(dir + "/raw.h5", comm, n, d, mean, sd, true, fp_raw, h_raw);
    const auto flt = write_pixel_file(dir + "/float.h5", comm, n, d, mean, sd, false, fp_float, h_float);
    EXPECT_EQ(fp_raw, fp_float);
    EXPECT_EQ(h_raw, h_float);
    EXPECT_TRUE(raw == flt) << "the stored pixels differ";
    io::DatasetReader r(dir + "/raw.h5", comm); // its rows hash to its @fingerprint
    EXPECT_EQ(r.meta().fingerprint, fp_float);
}
} // namespace

TEST(DatasetIO, Uint8PixelsWriteTheFileOfTheirNormalisedValues) {
    par::Comm world;
    auto dir = test::scratch_dir(world);
    const std::vector<float> mean{0.1f, 0.2f, 0.3f, 0.45f, 0.5f, 0.0f},
        sd{0.3f, 0.25f, 0.2f, 0.35f, 0.4f, 1.0f};
    expect_same_pixel_files(dir, world, 6, mean, sd); // per feature, through the table
    expect_same_pixel_files(dir, world, 6, std::vector<float>(6, 0.4f),
                            std::vector<float>(6, 0.3f)); // global
    // A mean so large that neighbouring pixels round to one float: write()'s encoding picks the pixel.
    expect_same_pixel_files(dir, world, 6, {0.1f, 1.0e5f, 0.3f, 0.4f, 0.5f, 0.6f}, sd);
    // Rows too wide for a table: decoded value by value.
    const std::int64_t d = std::int64_t(io::PixelDecoder::kTableMaxBytes / 1024) + 8;
    std::vector<float> wm(static_cast<size_t>(d)), ws(static_cast<size_t>(d));
    for (std::int64_t j = 0; j < d; ++j)
        wm[size_t(j)] = float(j % 89) / 89.0f, ws[size_t(j)] = 0.2f + float(j % 11) / 11.0f;
    expect_same_pixel_files(dir, world, d, wm, ws);
}

/// PixelDecoder::hash gives row_hash_sum of the rows decode() writes: odd and even widths, row counts that
/// do and do not fill its four lanes, with and without labels, through a per-feature table, the global one
/// and, beyond kTableMaxBytes, the expression value by value.
TEST(DatasetIO, PixelHashIsTheHashOfTheDecodedRows) {
    const auto check = [](std::int64_t d, bool global) {
        std::vector<float> mean(static_cast<size_t>(d)), sd(static_cast<size_t>(d));
        for (std::int64_t j = 0; j < d; ++j)
            mean[size_t(j)] = global ? 0.4f : float(j % 13) / 13.0f,
            sd[size_t(j)] = global ? 0.3f : 0.2f + float(j % 7) / 7.0f;
        const io::PixelDecoder dec(mean, sd, 1.0 / 255.0);
        for (std::int64_t count : {0, 1, 3, 4, 5, 9}) {
            std::vector<std::uint8_t> px(size_t(count * d));
            for (size_t i = 0; i < px.size(); ++i)
                px[i] = std::uint8_t((i * 151 + i / 7) % 256);
            std::vector<float> X(px.size());
            dec.decode(px.data(), count, X.data());
            std::vector<int> y(static_cast<size_t>(count));
            for (std::int64_t i = 0; i < count; ++i)
                y[size_t(i)] = int(i % 5);
            for (bool labelled : {false, true})
                EXPECT_EQ(dec.hash(17, px.data(), count, labelled ? y.data() : nullptr, labelled),
                          io::row_hash_sum(17, X.data(), count, d, labelled ? y.data() : nullptr, labelled))
                    << "d " << d << (global ? " global" : " per feature") << ", " << count << " rows"
                    << (labelled ? ", labelled" : "");
        }
    };
    for (std::int64_t d : {1, 6, 7, 3073})
        for (bool global : {false, true})
            check(d, global);
    check(std::int64_t(io::PixelDecoder::kTableMaxBytes / 1024) + 9, false); // no table
}

/// row_hash_sum and PixelDecoder::hash through both kernels equal the plain loop of row_hash: widths odd and
/// even, below, at and past the wide kernel's round of 32 words; row counts below, at and past its 32 rows
/// and the scalar kernel's 8; first rows past 2^32; labels (up to 2^31 - 1) or none; a per-feature table and
/// the global one. On a CPU without AVX-512 both kernels are the scalar one.
TEST(DatasetIO, RowHashKernelsGiveTheSumOfRowHashes) {
    constexpr std::int64_t kMaxRows = 100;
    std::vector<int> y(static_cast<size_t>(kMaxRows));
    for (std::int64_t i = 0; i < kMaxRows; ++i)
        y[size_t(i)] = i % 9 == 8 ? 2147483647 : int(i * 37 % 1000);
    std::uint64_t state = 7;
    for (std::int64_t d : {1, 2, 3, 15, 16, 17, 63, 64, 65, 66, 129, 3073})
        for (bool global : {false, true}) {
            std::vector<float> mean(static_cast<size_t>(d)), sd(static_cast<size_t>(d));
            for (std::int64_t j = 0; j < d; ++j)
                mean[size_t(j)] = global ? 0.45f : float(j % 17) / 17.0f,
                sd[size_t(j)] = global ? 0.25f : 0.1f + float(j % 5) / 5.0f;
            const io::PixelDecoder dec(mean, sd, 1.0 / 255.0);
            std::vector<std::uint8_t> px(size_t(kMaxRows * d));
            for (auto& p : px)
                p = std::uint8_t((state = mix64(state)) >> 56);
            std::vector<float> X(px.size());
            dec.decode(px.data(), kMaxRows, X.data());
            for (std::int64_t count : {0, 1, 7, 8, 9, 31, 32, 33, 63, 64, 65, 100})
                for (std::int64_t first : {std::int64_t(0), std::int64_t(13), (std::int64_t(1) << 33) + 5})
                    for (bool labelled : {false, true}) {
                        const int* labels = labelled ? y.data() : nullptr;
                        std::uint64_t want = 0;
                        for (std::int64_t r = 0; r < count; ++r)
                            want += io::row_hash(first + r, X.data() + r * d, d, labelled ? y[size_t(r)] : 0,
                                                 labelled);
                        for (auto k : {io::RowHashKernel::wide, io::RowHashKernel::scalar}) {
                            const char* kernel = k == io::RowHashKernel::wide ? "wide" : "scalar";
                            EXPECT_EQ(io::row_hash_sum(first, X.data(), count, d, labels, labelled, k), want)
                                << kernel << " row_hash_sum, d " << d << ", " << count << " rows from "
                                << first << (labelled ? ", labelled" : "");
                            EXPECT_EQ(dec.hash(first, px.data(), count, labels, labelled, k), want)
                                << kernel << " PixelDecoder::hash" << (global ? " (global table)" : "")
                                << ", d " << d << ", " << count << " rows from " << first
                                << (labelled ? ", labelled" : "");
                        }
                    }
        }
    RecordProperty("wide_kernel", io::wide_row_hash_available() ? "AVX-512" : "scalar (no AVX-512 here)");
}

namespace {
/// Rows of uint8 elements held in memory, shaped (n, dims...).
class BytesSource : public io::ArraySource {
public:
    BytesSource(std::vector<std::int64_t> dims, std::vector<std::uint8_t> bytes)
        : ArraySource("memory", std::move(dims), io::Elem::u8), bytes_(std::move(bytes)) {}
    void read(std::int64_t begin, std::int64_t count, void* buf) const override {
        std::memcpy(buf, bytes_.data() + begin * row_elements(), size_t(count * row_elements()));
    }

private:
    std::vector<std::uint8_t> bytes_;
};
} // namespace

/// ImageRows::read_pixels of H, W, C rows gives byte (p, k) of each row at k * H * W + p: 1 to 5 channels
/// (3: the AVX-512 permutes where the CPU has VBMI, 64 pixels a round), H * W below, at and past multiples
/// of 64, blocks that start past row 0; and read() the same values as doubles.
TEST(ImageRows, ReadPixelsTransposesHwcRowsToChw) {
    std::uint64_t state = 3;
    for (int c : {1, 2, 3, 4, 5})
        for (auto hw : {std::pair<int, int>{1, 1}, {7, 9}, {8, 8}, {13, 5}, {16, 8}, {32, 32}, {33, 31}}) {
            const std::int64_t n = 5, d = std::int64_t(c) * hw.first * hw.second;
            std::vector<std::uint8_t> bytes(size_t(n * d));
            for (auto& b : bytes)
                b = std::uint8_t((state = mix64(state)) >> 56);
            const io::ImageRows rows(
                std::make_unique<BytesSource>(std::vector<std::int64_t>{n, hw.first, hw.second, c}, bytes),
                "nhwc");
            const std::int64_t begin = 1, count = 3, plane = std::int64_t(hw.first) * hw.second;
            std::vector<std::uint8_t> px(size_t(count * d));
            std::vector<double> values(size_t(count * d));
            rows.read_pixels(begin, count, px.data());
            rows.read(begin, count, values.data());
            for (std::int64_t r = 0; r < count; ++r)
                for (std::int64_t p = 0; p < plane; ++p)
                    for (int k = 0; k < c; ++k) {
                        const std::uint8_t want = bytes[size_t((begin + r) * d + p * c + k)];
                        const size_t at = size_t(r * d + k * plane + p);
                        ASSERT_EQ(px[at], want) << c << " channels of " << hw.first << "x" << hw.second
                                                << ": row " << r << ", pixel " << p << ", channel " << k;
                        ASSERT_EQ(values[at], double(want)) << c << " channels of " << hw.first << "x"
                                                            << hw.second << ": row " << r << ", pixel " << p;
                    }
        }
}

TEST(DatasetIO, Uint8PixelsOfNoFiniteValueAreRefusedAsByWrite) {
    par::Comm world;
    auto dir = test::scratch_dir(world);
    const std::vector<float> mean(6, 0.1f), sd{0.3f, 0.0f, 0.3f, 0.3f, 0.3f, 0.3f}; // feature 1: std 0
    std::string fp;
    std::uint64_t h = 0;
    for (bool pixels : {false, true}) {
        try {
            write_pixel_file(dir + "/bad.h5", world, 9, 6, mean, sd, pixels, fp, h);
            ADD_FAILURE() << "wrote pixels that normalise to infinity ("
                          << (pixels ? "write_pixels" : "write") << ")";
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find("which no 8-bit pixel normalises to"), std::string::npos)
                << e.what();
        }
    }
}
