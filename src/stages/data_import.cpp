// `mimic data import`: decodes IDX images and labels, splits validation rows off the end of the
// training set, normalises, and writes train.h5 / val.h5 / test.h5 collectively and atomically.
#include "mimic/stages/data_import.hpp"

#include "mimic/core/log.hpp"
#include "mimic/core/timer.hpp"
#include "mimic/io/dataset.hpp"
#include "mimic/io/idx.hpp"
#include "mimic/io/paths.hpp"

#include <cmath>
#include <memory>

namespace po = boost::program_options;

namespace mimic::stages {

// clang-format off
void describe(po::options_description& d, DataImportOptions& o) {
    d.add_options()
        ("train-images", po::value(&o.train_images)->default_value(o.train_images), "training images (IDX, .gz or plain)")
        ("train-labels", po::value(&o.train_labels)->default_value(o.train_labels), "training labels (IDX)")
        ("test-images", po::value(&o.test_images)->default_value(o.test_images), "test images (IDX)")
        ("test-labels", po::value(&o.test_labels)->default_value(o.test_labels), "test labels (IDX)")
        ("out-dir", po::value(&o.out_dir)->default_value(o.out_dir), "directory for train.h5, val.h5 and test.h5")
        ("val", po::value(&o.val)->default_value(o.val), "rows split off the end of the training set into val.h5 (0: none)")
        ("norm", po::value(&o.norm)->default_value(o.norm), "normalisation: global | per-feature | none (pixels scaled to [0,1] first)")
        ("name", po::value(&o.name)->default_value(o.name), "data set name stored in the files")
        ("num-classes", po::value(&o.num_classes)->default_value(o.num_classes), "number of classes C: every label must lie in [0, C) (0: the largest label + 1, each class having training rows)");
}
// clang-format on

namespace {

struct Split {
    io::IdxArray images, labels;
};

Split load_pair(const std::string& images_path, const std::string& labels_path) {
    Split s{io::read_idx(images_path), io::read_idx(labels_path)};
    if (s.images.dims.size() < 2)
        fail(images_path, ": image file must have at least 2 dimensions (count, features...), found ",
             s.images.dims.size());
    if (s.labels.dims.size() != 1)
        fail(labels_path, ": label file must be 1-D, found ", s.labels.dims.size(), " dimensions");
    if (s.images.count() != s.labels.count())
        fail(labels_path, ": holds ", s.labels.count(), " labels but ", images_path, " holds ",
             s.images.count(), " images");
    return s;
}

/// Mean and standard deviation of each feature for --norm, from the first n_train training rows only
/// (validation and test rows never leak into them); `none` keeps 0 and 1.
void train_statistics(const std::string& norm, const Split& train, std::int64_t n_train, std::int64_t d,
                      double scale, std::vector<float>& mean, std::vector<float>& stdev) {
    mean.assign(size_t(d), 0.0f);
    stdev.assign(size_t(d), 1.0f);
    if (norm == "global") {
        double s = 0, ss = 0;
        const std::int64_t cnt = n_train * d;
        for (std::int64_t i = 0; i < cnt; ++i) {
            const double v = train.images.data[size_t(i)] * scale;
            s += v;
            ss += v * v;
        }
        const double m = s / double(cnt), sd = std::sqrt(std::max(ss / double(cnt) - m * m, 1e-12));
        std::fill(mean.begin(), mean.end(), float(m));
        std::fill(stdev.begin(), stdev.end(), float(sd));
    } else if (norm == "per-feature") {
        std::vector<double> s(size_t(d), 0), ss(size_t(d), 0);
        for (std::int64_t r = 0; r < n_train; ++r)
            for (std::int64_t j = 0; j < d; ++j) {
                const double v = train.images.data[size_t(r * d + j)] * scale;
                s[size_t(j)] += v;
                ss[size_t(j)] += v * v;
            }
        for (std::int64_t j = 0; j < d; ++j) {
            const double m = s[size_t(j)] / double(n_train);
            const double var = ss[size_t(j)] / double(n_train) - m * m;
            mean[size_t(j)] = float(m);
            stdev[size_t(j)] = var > 1e-8 ? float(std::sqrt(var)) : 1.0f; // constant pixels stay centred
        }
    }
}

/// The class count: --num-classes when given (every label below it), else the largest label + 1 with
/// every class in between present in the training labels (a stray label such as 12 among 0-9 is refused).
int decide_classes(const Split& train, const Split& test, const DataImportOptions& o) {
    if (o.num_classes < 0 || o.num_classes > 256) fail("--num-classes: must be in [0, 256], got ", o.num_classes);
    std::vector<std::int64_t> count(256, 0);
    for (auto v : train.labels.data)
        ++count[v];
    int max_label = 0;
    for (int c = 0; c < 256; ++c)
        if (count[size_t(c)] > 0) max_label = c;
    const int C = o.num_classes > 0 ? o.num_classes : max_label + 1;
    const std::pair<const Split*, const std::string*> files[] = {{&train, &o.train_labels}, {&test, &o.test_labels}};
    for (const auto& [split, path] : files) {
        const auto& y = split->labels.data;
        for (size_t i = 0; i < y.size(); ++i)
            if (int(y[i]) >= C)
                fail(*path, ": row ", i, " has label ", int(y[i]), " but there are ", C, " classes (",
                     o.num_classes > 0 ? "--num-classes" : "from the training labels",
                     "); fix the labels or pass --num-classes");
    }
    if (o.num_classes == 0)
        for (int c = 0; c < C; ++c)
            if (count[size_t(c)] == 0)
                fail(o.train_labels, ": no training row has label ", c, " although labels go up to ", max_label,
                     "; labels must be 0..C-1 (pass --num-classes C if class ", c, " is really empty)");
    return C;
}

/// Writes rows [first, first + n) of an IDX pair as a dataset file; ranks split the rows.
std::string write_split(const std::string& path, const Split& s, std::int64_t first, std::int64_t n,
                        io::DatasetMeta meta, const std::vector<float>& mean, const std::vector<float>& stdev,
                        const par::Comm& comm) {
    meta.n = n;
    io::DatasetWriter w(path, comm, meta);
    w.set_normalization(meta.norm_kind, meta.norm_scale, mean, stdev);
    const auto mine = par::split_range(n, comm.size(), comm.rank());
    const std::int64_t d = meta.d;
    std::vector<float> X(size_t(mine.size() * d));
    std::vector<int> y(size_t(mine.size()));
    for (std::int64_t i = 0; i < mine.size(); ++i) {
        const std::int64_t r = first + mine.begin + i;
        const std::uint8_t* px = s.images.data.data() + r * d;
        for (std::int64_t j = 0; j < d; ++j)
            X[size_t(i * d + j)] =
                (float(px[j]) * float(meta.norm_scale) - mean[size_t(j)]) / stdev[size_t(j)];
        y[size_t(i)] = s.labels.data[size_t(r)];
    }
    w.write(mine.begin, mine.size(), X.data(), y.data());
    return w.commit();
}

} // namespace

void run(const DataImportOptions& o, const par::Comm& comm) {
    PhaseTimers timers;
    std::unique_ptr<Split> train, test;
    int num_classes = 0;
    const auto lock = io::claim_outputs(
        {o.out_dir + "/train.h5", o.out_dir + "/val.h5", o.out_dir + "/test.h5"},
        {o.train_images, o.train_labels, o.test_images, o.test_labels}, comm.get());
    par::agree(comm, [&] {
        if (o.norm != "global" && o.norm != "per-feature" && o.norm != "none")
            fail("--norm: '", o.norm, "' is not one of global, per-feature, none");
        if (o.val < 0) fail("--val: must be >= 0, got ", o.val);
        ScopedPhase p(timers, "decode", "data::import::decode");
        train = std::make_unique<Split>(load_pair(o.train_images, o.train_labels));
        test = std::make_unique<Split>(load_pair(o.test_images, o.test_labels));
        if (train->images.row_size() != test->images.row_size())
            fail(o.test_images, ": images have ", test->images.row_size(),
                 " features but the training images have ", train->images.row_size());
        num_classes = decide_classes(*train, *test, o);
        if (comm.rank() == 0) io::make_dirs(o.out_dir);
        if (o.val >= train->images.count())
            fail("--val: ", o.val, " validation rows leave no training rows (the training set has ",
                 train->images.count(), ")");
    });

    const std::int64_t d = train->images.row_size();
    const std::int64_t n_train = train->images.count() - o.val;
    io::DatasetMeta meta;
    meta.d = d;
    const auto& dims = train->images.dims;
    if (dims.size() == 3) {
        meta.c = 1, meta.h = int(dims[1]), meta.w = int(dims[2]);
    } else if (dims.size() == 4) {
        meta.c = int(dims[1]), meta.h = int(dims[2]), meta.w = int(dims[3]);
    } else {
        meta.c = 1, meta.h = 1, meta.w = int(d);
    }
    meta.num_classes = num_classes;
    meta.has_labels = true;
    meta.norm_kind = o.norm;
    meta.norm_scale = 1.0 / 255.0;
    meta.source = o.name;

    std::vector<float> mean, stdev;
    {
        ScopedPhase p(timers, "statistics", "data::import::statistics");
        train_statistics(o.norm, *train, n_train, d, meta.norm_scale, mean, stdev);
    }

    struct Out {
        std::string name;
        const Split* src;
        std::int64_t first, n;
        std::string fingerprint;
    };
    std::vector<Out> outs = {{"train", train.get(), 0, n_train, ""}};
    if (o.val > 0) outs.push_back({"val", train.get(), n_train, o.val, ""});
    outs.push_back({"test", test.get(), 0, test->images.count(), ""});
    {
        ScopedPhase p(timers, "write", "data::import::write");
        for (auto& out : outs)
            out.fingerprint = write_split(o.out_dir + "/" + out.name + ".h5", *out.src, out.first, out.n,
                                          meta, mean, stdev, comm);
    }

    log::info("");
    log::info("data import summary: ", o.name, ", D = ", d, " (", meta.c, "x", meta.h, "x", meta.w, "), ",
              meta.num_classes, " classes, norm = ", o.norm, " (mean ", mean[0], ", std ", stdev[0],
              " for feature 0)");
    for (const auto& out : outs)
        log::info("  ", o.out_dir, "/", out.name, ".h5: ", out.n, " rows, fingerprint ", out.fingerprint);
    timers.report(comm, "data import timings");
}

} // namespace mimic::stages
