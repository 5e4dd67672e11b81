// `mimic data import`: reads images and labels through the io array sources (IDX, .npy/.npz, HDF5, CIFAR
// binary, image folders), splits validation rows off the end of the training set, normalises, and writes
// train.h5 / val.h5 / test.h5 (or one unlabelled transfer file) collectively, each rank streaming its own
// rows block by block, and renames the files into place only when all are written.
#include "mimic/stages/data_import.hpp"

#include "mimic/core/log.hpp"
#include "mimic/core/progress.hpp"
#include "mimic/core/timer.hpp"
#include "mimic/io/block_record.hpp"
#include "mimic/io/dataset.hpp"
#include "mimic/io/paths.hpp"
#include "mimic/io/row_tally.hpp"
#include "mimic/io/source_rows.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <sstream>
#include <utility>

#include <sys/stat.h>

namespace po = boost::program_options;

namespace mimic::stages {

namespace {
const char* kFashionTrainLabels = "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz";
const char* kFashionTestLabels = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz";
} // namespace

// clang-format off
void describe(po::options_description& d, DataImportOptions& o) {
    d.add_options()
        ("train-images", po::value(&o.train_images)->default_value(o.train_images), "training images: an IDX file (.gz or plain), FILE.npy, FILE.npz:KEY, FILE.h5:/DATASET, CIFAR batch files (comma-separated, with --format cifar|cifar100) or a directory of class subfolders of PNG/JPEG images")
        ("train-labels", po::value(&o.train_labels)->default_value(o.train_labels), "training labels: IDX, FILE.npy, FILE.npz:KEY or FILE.h5:/DATASET (1-D integers); none for CIFAR and image folders, which carry them (default: Fashion-MNIST's with the default images)")
        ("test-images", po::value(&o.test_images)->default_value(o.test_images), "test images (as --train-images)")
        ("test-labels", po::value(&o.test_labels)->default_value(o.test_labels), "test labels (as --train-labels)")
        ("format", po::value(&o.format)->default_value(o.format), "image format: auto (by content) | idx | npy | npz | hdf5 | cifar | cifar100 | images")
        ("layout", po::value(&o.layout)->default_value(o.layout), "layout of rank-4 arrays (.npy, .npz, HDF5): nhwc | nchw")
        ("unlabelled", po::value(&o.unlabelled)->default_value(o.unlabelled), "unlabelled rows (any image format) to one transfer file --out without /y, normalised as --norm-from")
        ("norm-from", po::value(&o.norm_from)->default_value(o.norm_from), "with --unlabelled: the training dataset file whose normalisation is applied")
        ("out", po::value(&o.out)->default_value(o.out), "with --unlabelled: the transfer file to write")
        ("out-dir", po::value(&o.out_dir)->default_value(o.out_dir), "directory for train.h5, val.h5 and test.h5")
        ("val", po::value(&o.val)->default_value(o.val), "rows split off the end of the training set into val.h5 (0: none)")
        ("norm", po::value(&o.norm)->default_value(o.norm), "normalisation: global | per-channel (one mean and std per channel, as torchvision's Normalize) | per-feature | none (8-bit pixels scaled to [0,1] first)")
        ("name", po::value(&o.name)->default_value(o.name), "data set name stored in the files")
        ("num-classes", po::value(&o.num_classes)->default_value(o.num_classes), "number of classes C: every label must lie in [0, C) (0: the largest label + 1, each class having training rows)")
        ("block-rows", po::value(&o.block_rows)->default_value(o.block_rows), "rows each rank converts per block (0: about 32 MiB of values); memory per rank is bounded by a block")
        ("store", po::value(&o.store)->default_value(o.store), "how /X is stored: fp32 | fp16 (half the bytes, rounded to IEEE half) | uint8 (8-bit sources only: the pixels as they are, normalised on read to the same float32 values)")
        ("flush-seconds", po::value(&o.flush_seconds)->default_value(o.flush_seconds), "S: flush the partial files once every S seconds, so a killed import redoes up to S seconds of work (a flush writes the rows to disk, which costs more than converting them); 0: once per round of blocks");
}
// clang-format on

namespace {

struct Input {
    std::unique_ptr<io::ImageRows> x;
    std::unique_ptr<io::LabelRows> y; ///< null: unlabelled
};

/// Opens images (as --format) and their labels: the label file when given, else the labels the images
/// carry. A label file for a format that carries labels, and labels missing where needed, are refused.
Input open_input(const std::string& images, const std::string& labels, const DataImportOptions& o,
                 const std::string& labels_option, bool need_labels) {
    Input in;
    in.x = std::make_unique<io::ImageRows>(io::open_array_source(images, o.format), o.layout);
    const auto& src = in.x->source();
    if (!labels.empty() && src.has_labels())
        fail(labels_option, ": ", images, " carries its own labels; drop ", labels_option);
    if (!need_labels) return in;
    if (labels.empty() && !src.has_labels())
        fail(images, ": carries no labels; name them with ", labels_option);
    in.y = labels.empty() ? std::make_unique<io::LabelRows>(src)
                          : std::make_unique<io::LabelRows>(io::open_array_source(labels, "auto"));
    if (in.y->rows() != in.x->rows())
        fail(in.y->name(), ": holds ", in.y->rows(), " labels but ", images, " holds ", in.x->rows(),
             " images");
    return in;
}

std::int64_t block_rows(const DataImportOptions& o, std::int64_t d) {
    if (o.block_rows < 0) fail("--block-rows: must be >= 0, got ", o.block_rows);
    if (o.block_rows > (std::int64_t(1) << 28) / d) // a block is held as double, float and raw values
        fail("--block-rows: ", o.block_rows, " rows of ", d, " features exceed 2^28 values per block (",
             (std::int64_t(1) << 28) / d, " rows at most)");
    return o.block_rows > 0 ? o.block_rows : std::max<std::int64_t>(1, (std::int64_t(32) << 20) / (8 * d));
}

/// Label statistics of this rank's share of rows: counts of labels below 256 and the largest label.
struct LabelScan {
    std::vector<long long> count = std::vector<long long>(256, 0);
    long long max_label = -1;
};

/// Calls f(first_row, labels) for this rank's share of rows [0, n) of y, read `block` rows at a time.
template <class F>
void for_each_label_block(const io::LabelRows& y, std::int64_t n, std::int64_t block, const par::Comm& comm,
                          F&& f) {
    const auto mine = par::split_range(n, comm.size(), comm.rank());
    std::vector<int> buf;
    for (std::int64_t b = mine.begin; b < mine.end; b += block) {
        buf.resize(size_t(std::min(block, mine.end - b)));
        y.read(b, std::int64_t(buf.size()), buf.data());
        f(b, buf);
    }
}

LabelScan scan_labels(const io::LabelRows& y, std::int64_t n, std::int64_t block, const par::Comm& comm) {
    LabelScan s;
    for_each_label_block(y, n, block, comm, [&](std::int64_t, const std::vector<int>& buf) {
        for (int v : buf) {
            if (v < 256) ++s.count[size_t(v)];
            s.max_label = std::max<long long>(s.max_label, v);
        }
    });
    return s;
}

/// Refuses the first label >= C among rows [0, n) (the lowest failing rank reports).
void refuse_labels_from(const io::LabelRows& y, std::int64_t n, int C, std::int64_t block, bool from_option,
                        const par::Comm& comm) {
    par::agree(comm, [&] {
        for_each_label_block(y, n, block, comm, [&](std::int64_t b, const std::vector<int>& buf) {
            for (std::size_t i = 0; i < buf.size(); ++i)
                if (buf[i] >= C)
                    fail(y.name(), ": row ", b + std::int64_t(i), " has label ", buf[i], " but there are ", C,
                         " classes (", from_option ? "--num-classes" : "from the training labels",
                         "); fix the labels or pass --num-classes");
        });
    });
}

/// The class count: --num-classes when given (every label below it), else the largest training label + 1
/// with every class in between present in the training labels (a stray label such as 12 among 0-9 is
/// refused). Each rank scans its own rows; counts are summed.
int decide_classes(const Input& train, const Input& test, const DataImportOptions& o, std::int64_t block,
                   const par::Comm& comm) {
    if (o.num_classes < 0 || o.num_classes > 256)
        fail("--num-classes: must be in [0, 256], got ", o.num_classes);
    LabelScan tr, te;
    par::agree(comm, [&] {
        tr = scan_labels(*train.y, train.x->rows(), block, comm);
        te = scan_labels(*test.y, test.x->rows(), block, comm);
    });
    tr.max_label = (long long)comm.max(double(tr.max_label)); // labels are below 2^31: exact in a double
    te.max_label = (long long)comm.max(double(te.max_label));
    for (long long c = 0; c <= std::min(tr.max_label, 255LL); ++c)
        tr.count[size_t(c)] = comm.sum_ll(tr.count[size_t(c)]);
    const long long C = o.num_classes > 0 ? o.num_classes : std::max(tr.max_label + 1, 1LL);
    par::agree(comm, [&] {
        if (C > 256)
            fail(train.y->name(), ": labels go up to ", tr.max_label, "; at most 256 classes are supported");
    });
    if (tr.max_label >= C)
        refuse_labels_from(*train.y, train.x->rows(), int(C), block, o.num_classes > 0, comm);
    if (te.max_label >= C)
        refuse_labels_from(*test.y, test.x->rows(), int(C), block, o.num_classes > 0, comm);
    par::agree(comm, [&] {
        if (o.num_classes == 0)
            for (int c = 0; c < C; ++c)
                if (tr.count[size_t(c)] == 0)
                    fail(train.y->name(), ": no training row has label ", c, " although labels go up to ",
                         tr.max_label, "; labels must be 0..C-1 (pass --num-classes C if class ", c,
                         " is really empty)");
    });
    return int(C);
}

/// Σu and Σu² of each feature over this rank's share of rows [0, n) of an 8-bit source, added to s and q:
/// integers, exact in any order. Rows are summed in the source's own element order (no transpose), counted
/// in 32 bits over at most 65,536 rows (65,536 x 255² < 2^32), then added to the 64-bit sums of their
/// C, H, W feature.
void add_pixel_sums(const io::ImageRows& x, std::int64_t n, std::int64_t block, const par::Comm& comm,
                    std::vector<long long>& s, std::vector<long long>& q) {
    const std::int64_t d = x.d();
    const auto mine = par::split_range(n, comm.size(), comm.rank());
    std::vector<std::uint8_t> px;
    std::vector<std::uint32_t> s32(size_t(d), 0), q32(size_t(d), 0);
    std::vector<std::int64_t> feature(static_cast<size_t>(d));
    for (std::int64_t i = 0; i < d; ++i)
        feature[size_t(i)] = x.chw_index(i);
    std::int64_t counted = 0;
    const auto flush = [&] {
        for (std::int64_t i = 0; i < d; ++i) {
            const auto j = size_t(feature[size_t(i)]);
            s[j] += s32[size_t(i)], q[j] += q32[size_t(i)];
            s32[size_t(i)] = q32[size_t(i)] = 0;
        }
        counted = 0;
    };
    for (std::int64_t b = mine.begin; b < mine.end; b += block) {
        const std::int64_t k = std::min(block, mine.end - b);
        px.resize(size_t(k * d));
        x.read_source_pixels(b, k, px.data());
        for (std::int64_t r = 0; r < k; ++r) {
            const std::uint8_t* row = px.data() + r * d;
            std::uint32_t* sp = s32.data();
            std::uint32_t* qp = q32.data();
            for (std::int64_t i = 0; i < d; ++i) {
                const std::uint32_t u = row[i];
                sp[i] += u;
                qp[i] += u * u;
            }
            if (++counted == 65536) flush();
        }
    }
    flush();
}

/// per-channel statistics from per-feature sums over n rows (H·W features per channel, in order): each
/// channel's sums added, then `moments` over n·H·W values; a channel of variance ≤ 1e-8 keeps std 1.
template <class Sum, class Moments>
void channel_statistics(const std::vector<Sum>& s, const std::vector<Sum>& q, int channels, std::int64_t n,
                        Moments moments, std::vector<float>& mean, std::vector<float>& stdev) {
    const std::int64_t hw = std::int64_t(s.size()) / channels;
    for (std::int64_t c = 0; c < channels; ++c) {
        Sum st = 0, qt = 0;
        for (std::int64_t j = c * hw; j < (c + 1) * hw; ++j)
            st += s[size_t(j)], qt += q[size_t(j)];
        double m = 0, var = 0;
        moments(st, qt, double(n * hw), m, var);
        std::fill(mean.begin() + c * hw, mean.begin() + (c + 1) * hw, float(m));
        std::fill(stdev.begin() + c * hw, stdev.begin() + (c + 1) * hw,
                  var > 1e-8 ? float(std::sqrt(var)) : 1.0f);
    }
}

/// --norm of an 8-bit source: the integer sums Σu and Σu² of each feature over the n training rows, each
/// rank summing its own rows and the sums added over the ranks (exact, so the same for any rank count),
/// then mean = Σu·scale / n and std = sqrt(Σu²·scale² / n − mean²) in double (over every feature at once
/// for global, over each channel's features for per-channel), rounded to float32.
void pixel_statistics(const std::string& norm, const io::ImageRows& x, std::int64_t n, std::int64_t block,
                      double scale, std::vector<float>& mean, std::vector<float>& stdev,
                      const par::Comm& comm) {
    const bool global = norm == "global";
    const std::int64_t d = x.d();
    std::vector<long long> s(size_t(d), 0), q(size_t(d), 0);
    par::agree(comm, [&] { add_pixel_sums(x, n, block, comm, s, q); });
    comm.allreduce(s, par::ReduceOp::sum);
    comm.allreduce(q, par::ReduceOp::sum);
    const auto moments = [&](long long sum, long long squares, double count, double& m, double& var) {
        m = double(sum) * scale / count;
        var = double(squares) * scale * scale / count - m * m;
    };
    if (global) {
        long long st = 0, qt = 0;
        for (std::int64_t j = 0; j < d; ++j)
            st += s[size_t(j)], qt += q[size_t(j)];
        double m = 0, var = 0;
        moments(st, qt, double(n * d), m, var);
        std::fill(mean.begin(), mean.end(), float(m));
        std::fill(stdev.begin(), stdev.end(), float(std::sqrt(std::max(var, 1e-12))));
        return;
    }
    if (norm == "per-channel") return channel_statistics(s, q, x.c(), n, moments, mean, stdev);
    for (std::int64_t j = 0; j < d; ++j) {
        double m = 0, var = 0;
        moments(s[size_t(j)], q[size_t(j)], double(n), m, var);
        mean[size_t(j)] = float(m);
        stdev[size_t(j)] = var > 1e-8 ? float(std::sqrt(var)) : 1.0f; // constant pixels stay centred
    }
}

/// Mean and standard deviation of each feature for --norm, from the first n_train training rows only
/// (validation and test rows never leak into them); `none` keeps 0 and 1. 8-bit sources: exact integer sums
/// over the ranks (pixel_statistics). Others: rank 0 streams the rows in order, so that the double sums
/// (and the files) do not depend on the rank count; the vectors are broadcast.
void train_statistics(const std::string& norm, const io::ImageRows& x, std::int64_t n_train,
                      std::int64_t block, double scale, std::vector<float>& mean, std::vector<float>& stdev,
                      const par::Comm& comm) {
    const std::int64_t d = x.d();
    mean.assign(size_t(d), 0.0f);
    stdev.assign(size_t(d), 1.0f);
    if (norm == "none") return;
    const bool global = norm == "global";
    if (x.source().elem() == io::Elem::u8)
        return pixel_statistics(norm, x, n_train, block, scale, mean, stdev, comm);
    par::agree(comm, [&] {
        if (comm.rank() != 0) return;
        std::vector<double> s(global ? 1 : size_t(d), 0), ss(global ? 1 : size_t(d), 0), buf;
        for (std::int64_t b = 0; b < n_train; b += block) {
            const std::int64_t k = std::min(block, n_train - b);
            buf.resize(size_t(k * d));
            x.read(b, k, buf.data());
            for (std::int64_t r = 0; r < k; ++r)
                for (std::int64_t j = 0; j < d; ++j) {
                    const double v = buf[size_t(r * d + j)] * scale;
                    s[global ? 0 : size_t(j)] += v;
                    ss[global ? 0 : size_t(j)] += v * v;
                }
        }
        if (global) {
            const double cnt = double(n_train * d);
            const double m = s[0] / cnt, sd = std::sqrt(std::max(ss[0] / cnt - m * m, 1e-12));
            std::fill(mean.begin(), mean.end(), float(m));
            std::fill(stdev.begin(), stdev.end(), float(sd));
            return;
        }
        if (norm == "per-channel") {
            const auto moments = [](double sum, double squares, double count, double& m, double& var) {
                m = sum / count;
                var = squares / count - m * m;
            };
            return channel_statistics(s, ss, x.c(), n_train, moments, mean, stdev);
        }
        for (std::int64_t j = 0; j < d; ++j) {
            const double m = s[size_t(j)] / double(n_train);
            const double var = ss[size_t(j)] / double(n_train) - m * m;
            mean[size_t(j)] = float(m);
            stdev[size_t(j)] = var > 1e-8 ? float(std::sqrt(var)) : 1.0f; // constant pixels stay centred
        }
    });
    for (auto* v : {&mean, &stdev}) { // rank 0's vectors, byte for byte
        const std::string bytes =
            comm.bcast(std::string(reinterpret_cast<const char*>(v->data()), v->size() * 4));
        std::memcpy(v->data(), bytes.data(), bytes.size());
    }
}

/// The input files of a spec, for the output-over-input check (CIFAR lists, FILE.npz:key, FILE.h5:/path).
void add_inputs(const std::string& spec, std::vector<std::string>& inputs) {
    std::stringstream ss(spec);
    std::string part;
    while (std::getline(ss, part, ',')) {
        const auto colon = part.rfind(':');
        inputs.push_back(io::file_exists(part) || colon == std::string::npos ? part : part.substr(0, colon));
    }
}

/// One output file: its writer and block record, the rows it takes from an input, and the blocks of B rows
/// this rank still has to write (blocks are fixed by B alone, so any rank count resumes any partial file).
struct Out {
    Out() = default;
    Out(std::string name, std::string path, const Input* src, std::int64_t first, std::int64_t n)
        : name(std::move(name)), path(std::move(path)), src(src), first(first), n(n) {}
    std::string name, path;
    const Input* src = nullptr;
    std::int64_t first = 0, n = 0;
    std::unique_ptr<io::DatasetWriter> w;
    io::BlockRecord record;
    std::vector<std::int64_t> todo;
    std::string fingerprint;
};

constexpr const char* kResumeKey = "import_resume_key";

/// Rank 0: whether PATH.partial was left by an import with the same resume key.
bool resumable(const std::string& path, const std::string& key) {
    if (!io::file_exists(path + ".partial")) return false;
    try {
        auto f = h5::File::open(path + ".partial");
        return h5::has_attr(f.id(), kResumeKey) && h5::read_attr_string(f.id(), kResumeKey) == key;
    } catch (const Error&) {
        return false; // not a readable partial file: written again
    }
}

/// Collective: reopens OUT.partial of an interrupted import with the same key, or creates it (normalisation,
/// extra attributes, an empty block record, then the key); notes the blocks left to this rank.
void open_output(Out& out, io::DatasetMeta meta, const std::vector<float>& mean,
                 const std::vector<float>& stdev,
                 const std::vector<std::pair<std::string, std::string>>& attrs, const std::string& key,
                 std::int64_t B, const par::Comm& comm) {
    meta.n = out.n;
    bool resume = false;
    par::agree(comm, [&] { resume = comm.rank() == 0 && resumable(out.path, key); });
    resume = comm.any(resume);
    const std::int64_t nb = (out.n + B - 1) / B;
    if (resume) {
        out.w = std::make_unique<io::DatasetWriter>(out.path, comm, meta, io::DatasetWriter::Resume{});
        par::agree(comm, [&] { out.record = io::BlockRecord::open(out.w->file()); });
    } else {
        out.w = std::make_unique<io::DatasetWriter>(out.path, comm, meta);
        out.w->set_normalization(meta.norm_kind, meta.norm_scale, mean, stdev);
        for (const auto& [name, value] : attrs)
            h5::write_attr(out.w->file().id(), name, value);
        out.record = io::BlockRecord::create(out.w->file(), nb);
        out.w->file().flush();
        h5::write_attr(out.w->file().id(), kResumeKey, key); // last: a file with the key has a valid record
        out.w->file().flush();
    }
    out.record.read();
    // Done blocks are trusted only once their rows hash to what was recorded when they were written.
    if (resume)
        par::agree(comm, [&] {
            std::vector<std::int64_t> starts;
            for (std::int64_t k = 0; k <= nb; ++k)
                starts.push_back(std::min(out.n, k * B));
            io::verify_done_blocks(out.w->file(), out.record.done(), out.record.hashes(), starts, comm);
        });
    std::uint64_t before = 0;
    std::int64_t blocks_before = 0;
    const auto mine = par::split_range(nb, comm.size(), comm.rank());
    for (std::int64_t k = 0; k < nb; ++k) {
        if (out.record.done()[size_t(k)]) {
            before += out.record.hashes()[size_t(k)];
            ++blocks_before;
        } else if (k >= mine.begin && k < mine.end) {
            out.todo.push_back(k);
        }
    }
    if (comm.rank() == 0) out.w->add_to_fingerprint(before);
    if (resume)
        log::info("data import: resuming ", out.w->partial_path(), ": ", blocks_before, " of ",
                  log::count(nb, "block"), " already done");
}

/// Reads rows [b, b + count) of an output's input and converts them: an 8-bit source stored as uint8 as its
/// pixels (px); an 8-bit source stored otherwise as its pixels decoded by `decoder` (the table of
/// normalized_value per feature, the same bits as the expression) into X; any other source as normalised
/// float32 values (X). Labels into y.
void read_block(const Input& in, std::int64_t b, std::int64_t count, bool pixels,
                const io::PixelDecoder* decoder, double scale, const std::vector<float>& mean,
                const std::vector<float>& stdev, std::vector<std::uint8_t>& px, std::vector<double>& raw,
                std::vector<float>& X, std::vector<int>& y) {
    const std::int64_t d = in.x->d();
    y.resize(size_t(count));
    if (in.y) in.y->read(b, count, y.data());
    if (pixels || decoder) {
        px.resize(size_t(count * d));
        in.x->read_pixels(b, count, px.data());
        if (pixels) return;
        X.resize(size_t(count * d));
        return decoder->decode(px.data(), count, X.data());
    }
    raw.resize(size_t(count * d));
    X.resize(size_t(count * d));
    in.x->read(b, count, raw.data());
    for (std::int64_t i = 0; i < count; ++i)
        for (std::int64_t j = 0; j < d; ++j)
            X[size_t(i * d + j)] = io::normalized_value(float(raw[size_t(i * d + j)]), float(scale),
                                                        mean[size_t(j)], stdev[size_t(j)]);
}

/// Writes the blocks left of an output: each rank converts its own blocks, one at a time (reads and checks
/// agreed on, then one collective write per round; the block is marked done once on disk, by the block
/// record's pipelined commits, every round or every --flush-seconds). With `pixels`
/// (--store uint8, an 8-bit source) the pixels go to the file as they are, hashed as a reader decodes them;
/// other stores of an 8-bit source decode its pixels through a PixelDecoder.
void write_output(Out& out, bool pixels, double scale, const std::vector<float>& mean,
                  const std::vector<float>& stdev, std::int64_t B, double flush_seconds,
                  const par::Comm& comm, Progress& prog, std::int64_t& rows_done) {
    const Input& in = *out.src;
    const auto rounds = std::int64_t(comm.max(double(out.todo.size())));
    const bool decoded = !pixels && in.x->source().elem() == io::Elem::u8;
    const io::PixelDecoder decoder = decoded ? io::PixelDecoder(mean, stdev, scale) : io::PixelDecoder();
    std::vector<std::uint8_t> px;
    std::vector<double> raw;
    std::vector<float> X;
    std::vector<int> y;
    for (std::int64_t r = 0; r < rounds; ++r) {
        const bool have = r < std::int64_t(out.todo.size());
        const std::int64_t k = have ? out.todo[size_t(r)] : 0;
        const std::int64_t b = have ? k * B : 0, count = have ? std::min(B, out.n - b) : 0;
        par::agree(comm, [&] {
            read_block(in, out.first + b, count, pixels, decoded ? &decoder : nullptr, scale, mean, stdev, px,
                       raw, X, y);
        });
        const int* labels = in.y ? y.data() : nullptr;
        const std::uint64_t hash = pixels ? out.w->write_pixels(b, count, px.data(), labels)
                                          : out.w->write(b, count, X.data(), labels);
        out.record.add_and_flush(have, k, hash, flush_seconds, comm);
        rows_done += comm.sum_ll(count);
        prog.update(rows_done);
    }
    out.record.drain();
}

/// Collective: drops the resume record and key, then renames the file into place.
void commit_output(Out& out) {
    out.record.close();
    const hid_t f = out.w->file().id();
    MIMIC_H5_CHECK(H5Ldelete(f, "/progress", H5P_DEFAULT));
    MIMIC_H5_CHECK(H5Adelete(f, kResumeKey));
    out.fingerprint = out.w->commit();
}

/// Opens (or resumes) every output, writes them, and renames them into place only when all are written.
void write_outputs(std::vector<Out>& outs, const io::DatasetMeta& meta, const std::vector<float>& mean,
                   const std::vector<float>& stdev,
                   const std::vector<std::pair<std::string, std::string>>& attrs, const std::string& key,
                   std::int64_t B, double flush_seconds, const par::Comm& comm) {
    std::int64_t total = 0, done = 0;
    for (auto& out : outs) {
        open_output(out, meta, mean, stdev, attrs, key, B, comm);
        total += out.n;
        std::int64_t left = 0;
        for (auto k : out.todo)
            left += std::min(B, out.n - k * B);
        done += out.n - comm.sum_ll(left);
    }
    Progress prog("data import", total, "rows");
    prog.update(done);
    const bool pixels = meta.store == io::Store::uint8; // 8-bit sources only (check_store)
    for (auto& out : outs)
        write_output(out, pixels, meta.norm_scale, mean, stdev, B, flush_seconds, comm, prog, done);
    for (auto& out : outs)
        commit_output(out);
    prog.finish();
}

/// Everything that decides the rows of the outputs and their blocks, as one line: a partial file is resumed
/// only when its key is the same. Sources are named with their shape and each file's size and mtime.
std::string resume_key(const DataImportOptions& o, const std::vector<const Input*>& ins, int classes,
                       std::int64_t B, const std::vector<float>& mean, const std::vector<float>& stdev) {
    std::ostringstream k;
    k << "format=" << o.format << ";layout=" << o.layout << ";norm=" << o.norm << ";val=" << o.val
      << ";classes=" << classes << ";name=" << o.name << ";block_rows=" << B
      << (o.store == "fp32" ? "" : ";store=" + o.store) << ";stats="
      << io::hex64(io::row_hash(0, mean.data(), std::int64_t(mean.size()), 0, false) ^
                   io::row_hash(1, stdev.data(), std::int64_t(stdev.size()), 0, false));
    for (const Input* in : ins) {
        k << ";source=" << in->x->name() << ":" << in->x->rows() << "x" << in->x->d() << ":"
          << io::elem_name(in->x->source().elem());
        if (in->y) k << ";labels=" << in->y->name();
    }
    std::vector<std::string> files;
    for (const auto* s :
         {&o.train_images, &o.train_labels, &o.test_images, &o.test_labels, &o.unlabelled, &o.norm_from})
        add_inputs(*s, files);
    for (const auto& f : files) {
        struct stat st {};
        if (!f.empty() && stat(f.c_str(), &st) == 0)
            k << ";file=" << f << ":" << st.st_size << ":" << st.st_mtim.tv_sec << "." << st.st_mtim.tv_nsec;
    }
    return k.str();
}

std::string join_lines(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v)
        s += (s.empty() ? "" : "\n") + x;
    return s;
}

/// Shape, class count, normalisation and name of the files, from the training rows.
io::DatasetMeta make_meta(const io::ImageRows& x, int num_classes, const DataImportOptions& o) {
    io::DatasetMeta meta;
    meta.d = x.d();
    meta.c = x.c(), meta.h = x.h(), meta.w = x.w();
    meta.num_classes = num_classes;
    meta.has_labels = true;
    meta.norm_kind = o.norm;
    meta.norm_scale = x.scale();
    meta.source = o.name;
    meta.store = io::parse_store("--store", o.store);
    return meta;
}

/// --store uint8 keeps 8-bit sources only: any other source is refused naming it.
void check_store(const DataImportOptions& o, const std::vector<const io::ImageRows*>& sources) {
    if (io::parse_store("--store", o.store) != io::Store::uint8) return;
    for (const auto* x : sources)
        if (x->source().elem() != io::Elem::u8)
            fail("--store uint8: ", x->name(), " holds ", io::elem_name(x->source().elem()),
                 " values; uint8 keeps 8-bit sources only (use --store fp16 or fp32)");
}

void open_inputs(const DataImportOptions& o, Input& train, Input& test) {
    if (o.norm != "global" && o.norm != "per-channel" && o.norm != "per-feature" && o.norm != "none")
        fail("--norm: '", o.norm, "' is not one of global, per-channel, per-feature, none");
    if (o.val < 0) fail("--val: must be >= 0, got ", o.val);
    const DataImportOptions defaults;
    // Fashion-MNIST's label files go with its image files, the defaults.
    const std::string train_labels = o.train_labels.empty() && o.train_images == defaults.train_images
                                         ? kFashionTrainLabels
                                         : o.train_labels;
    const std::string test_labels =
        o.test_labels.empty() && o.test_images == defaults.test_images ? kFashionTestLabels : o.test_labels;
    train = open_input(o.train_images, train_labels, o, "--train-labels", true);
    test = open_input(o.test_images, test_labels, o, "--test-labels", true);
    check_store(o, {train.x.get(), test.x.get()});
    if (train.x->c() != test.x->c() || train.x->h() != test.x->h() || train.x->w() != test.x->w())
        fail(o.test_images, ": images are ", test.x->c(), "x", test.x->h(), "x", test.x->w(), " (",
             test.x->d(), " features) but the training images are ", train.x->c(), "x", train.x->h(), "x",
             train.x->w(), " (", train.x->d(), ")");
    const auto train_names = train.x->source().class_names(), test_names = test.x->source().class_names();
    if (!train_names.empty() && !test_names.empty() && train_names != test_names)
        fail(o.test_images, ": its class folders differ from the training set's (", o.train_images,
             "); both need the same class names");
}

void log_summary(const DataImportOptions& o, const io::DatasetMeta& meta, const std::vector<float>& mean,
                 const std::vector<float>& stdev, const std::vector<Out>& outs) {
    log::info("");
    log::info("data import summary: ", o.name, ", D = ", meta.d, " (", meta.c, "x", meta.h, "x", meta.w,
              "), ", meta.num_classes, " classes, norm = ", o.norm, " (mean ", mean[0], ", std ", stdev[0],
              " for feature 0)");
    for (const auto& out : outs)
        log::info("  ", o.out_dir, "/", out.name, ".h5: ", out.n, " rows, fingerprint ", out.fingerprint);
}

void run_labelled(const DataImportOptions& o, const par::Comm& comm) {
    PhaseTimers timers;
    Input train, test;
    std::vector<std::string> inputs;
    for (const auto* s : {&o.train_images, &o.train_labels, &o.test_images, &o.test_labels})
        add_inputs(*s, inputs);
    const auto lock = io::claim_outputs(
        {o.out_dir + "/train.h5", o.out_dir + "/val.h5", o.out_dir + "/test.h5"}, inputs, comm.get());
    {
        ScopedPhase p(timers, "open", "data::import::open");
        par::agree(comm, [&] { open_inputs(o, train, test); });
    }
    std::int64_t block = 0;
    par::agree(comm, [&] { block = block_rows(o, train.x->d()); });
    int num_classes = 0;
    {
        ScopedPhase p(timers, "labels", "data::import::labels");
        num_classes = decide_classes(train, test, o, block, comm);
        par::agree(comm, [&] {
            if (comm.rank() == 0) io::make_dirs(o.out_dir);
            if (o.val >= train.x->rows())
                fail("--val: ", o.val, " validation rows leave no training rows (the training set has ",
                     train.x->rows(), ")");
        });
    }
    const std::int64_t n_train = train.x->rows() - o.val;
    const io::DatasetMeta meta = make_meta(*train.x, num_classes, o);
    std::vector<float> mean, stdev;
    {
        ScopedPhase p(timers, "statistics", "data::import::statistics");
        train_statistics(o.norm, *train.x, n_train, block, meta.norm_scale, mean, stdev, comm);
    }
    std::vector<Out> outs(o.val > 0 ? 3 : 2);
    outs[0] = Out("train", o.out_dir + "/train.h5", &train, 0, n_train);
    if (o.val > 0) outs[1] = Out("val", o.out_dir + "/val.h5", &train, n_train, o.val);
    outs.back() = Out("test", o.out_dir + "/test.h5", &test, 0, test.x->rows());
    {
        ScopedPhase p(timers, "write", "data::import::write");
        std::vector<std::pair<std::string, std::string>> attrs;
        const auto classes = join_lines(train.x->source().class_names());
        if (!classes.empty()) attrs.emplace_back("class_names", classes);
        const auto key = resume_key(o, {&train, &test}, num_classes, block, mean, stdev);
        write_outputs(outs, meta, mean, stdev, attrs, key, block, o.flush_seconds, comm);
    }
    log_summary(o, meta, mean, stdev, outs);
    timers.report(comm, "data import timings");
}

void run_unlabelled(const DataImportOptions& o, const par::Comm& comm) {
    PhaseTimers timers;
    std::vector<std::string> inputs{o.norm_from};
    add_inputs(o.unlabelled, inputs);
    const auto lock = io::claim_outputs({o.out}, inputs, comm.get());
    Input in;
    io::Normalization norm;
    {
        ScopedPhase p(timers, "open", "data::import::open");
        par::agree(comm, [&] {
            if (o.out.empty()) fail("--out: name the transfer file to write with --unlabelled");
            if (o.norm_from.empty())
                fail(
                    "--norm-from: name the training dataset file whose normalisation --unlabelled rows take");
            in = open_input(o.unlabelled, "", o, "--train-labels", false);
            check_store(o, {in.x.get()});
            norm = io::read_normalization_for(o.norm_from, *in.x);
            if (comm.rank() == 0) io::make_dirs(h5::parent_dir(o.out));
        });
    }
    io::DatasetMeta meta = norm.meta;
    meta.n = in.x->rows();
    meta.has_labels = false;
    meta.source = o.unlabelled;
    meta.store = io::parse_store("--store", o.store);
    std::vector<Out> outs(1);
    outs[0] = Out("transfer", o.out, &in, 0, meta.n);
    {
        ScopedPhase p(timers, "write", "data::import::write");
        std::int64_t B = 0;
        par::agree(comm, [&] { B = block_rows(o, meta.d); });
        const auto key = resume_key(o, {&in}, meta.num_classes, B, norm.mean, norm.stdev);
        write_outputs(outs, meta, norm.mean, norm.stdev, {{"norm_from", norm.meta.fingerprint}}, key, B,
                      o.flush_seconds, comm);
    }
    log::info("");
    log::info("data import summary: ", o.unlabelled, ", D = ", meta.d, " (", meta.c, "x", meta.h, "x", meta.w,
              "), unlabelled, normalised as ", o.norm_from, " (fingerprint ", norm.meta.fingerprint, ")");
    log::info("  ", o.out, ": ", meta.n, " rows, fingerprint ", outs[0].fingerprint);
    timers.report(comm, "data import timings");
}

} // namespace

void run(const DataImportOptions& o, const par::Comm& comm) {
    if (!std::isfinite(o.flush_seconds) || o.flush_seconds < 0)
        fail("--flush-seconds: must be a finite number >= 0, got ", o.flush_seconds);
    if (o.unlabelled.empty()) {
        par::agree(comm, [&] {
            if (!o.out.empty() || !o.norm_from.empty()) fail("--out and --norm-from go with --unlabelled");
        });
        return run_labelled(o, comm);
    }
    run_unlabelled(o, comm);
}

} // namespace mimic::stages
