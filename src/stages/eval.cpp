// `mimic eval`: loads what is evaluated (make_scorer), checks it against the data (shape, classes), runs
// the collective evaluation and prints accuracy, top-k accuracy, loss, per-class accuracy and the
// confusion matrix on rank 0; with --compare, the paired margin over a second model and its interval.
#include "mimic/stages/eval.hpp"
#include "mimic/stages/ensemble.hpp"

#include "mimic/core/error.hpp"
#include "mimic/core/host_readback.hpp"
#include "mimic/core/log.hpp"
#include "mimic/core/timer.hpp"
#include "mimic/io/dataset.hpp"
#include "mimic/io/model_file.hpp"
#include "mimic/nn/fold.hpp"
#include "mimic/nn/paired.hpp"

#include <cstdio>
#include <sstream>

namespace po = boost::program_options;

namespace mimic::stages {

void describe(po::options_description& d, EvalOptions& o) {
    // clang-format off
    d.add_options()
        ("model", po::value(&o.model), "model file to evaluate (from mimic train or mimic distill)")
        ("ensemble", po::value(&o.ensemble), "ensemble manifest to evaluate (alone, or beside --model)")
        ("compare", po::value(&o.compare), "second model file: the paired accuracy margin of --model over it, "
                                           "with a 95% interval over the rows and McNemar's test")
        ("data", po::value(&o.data)->required(), "labelled dataset file, e.g. test.h5")
        ("top-k", po::value(&o.top_k)->default_value(o.top_k), "k of the top-k accuracy")
        ("batch", po::value(&o.batch)->default_value(o.batch), "rows per forward pass");
    // clang-format on
}

Scorer make_scorer(const EvalOptions& o, const par::Comm&) {
    Scorer s;
    io::ModelMeta meta;
    auto model = std::make_shared<nn::Model>(nn::fold_for_inference(io::load_model(o.model, &meta)));
    s.what = o.model;
    s.input = model->input_shape();
    s.num_classes = int(model->output_size());
    s.predict = train::model_predictor(*model);
    s.keep_alive = model;
    return s;
}

namespace {

/// The largest --batch: one forward pass of this many rows already needs gigabytes per rank.
constexpr std::int64_t kMaxBatchRows = std::int64_t(1) << 24;

/// Collective: which rows each model gets right, over every row of `data` (each rank its contiguous share).
nn::PairedCounts paired_counts(const Scorer& a, const Scorer& b, const io::DatasetReader& data,
                               std::int64_t batch, const par::Comm& comm) {
    nn::PairedCounts pc;
    auto argmax = [](const auto& z, std::int64_t i) {
        std::int64_t best = 0;
        for (std::int64_t c = 1; c < std::int64_t(z.extent(1)); ++c)
            if (z(i, c) > z(i, best)) best = c;
        return int(best);
    };
    HostReadback read_a("mimic::eval::compare::logits_a"), read_b("mimic::eval::compare::logits_b");
    train::for_each_batch(data, batch, comm, [&](const Matrix& x, const int* y, std::int64_t count) {
        const Matrix logits_a = a.predict(x), logits_b = b.predict(x);
        const auto za = read_a.read(logits_a), zb = read_b.read(logits_b);
        for (std::int64_t i = 0; i < count; ++i)
            pc.add(argmax(za, i) == y[i], argmax(zb, i) == y[i]);
    });
    std::vector<long long> v = {pc.n, pc.both, pc.only_a, pc.only_b};
    comm.allreduce(v, par::ReduceOp::sum);
    pc.n = v[0], pc.both = v[1], pc.only_a = v[2], pc.only_b = v[3];
    return pc;
}

/// `--model A --compare B`: loads B, checks it against A, and prints the paired margin of A over B.
void compare(const EvalOptions& o, const Scorer& a, const io::DatasetReader& data, const par::Comm& comm) {
    Scorer b;
    par::agree(comm, [&] {
        EvalOptions ob = o;
        ob.model = o.compare;
        b = make_scorer(ob, comm);
        if (b.input != a.input || b.num_classes != a.num_classes)
            fail("--compare: ", o.compare, " takes ", b.input.size(), " features to ", b.num_classes,
                 " classes but ", o.model, " takes ", a.input.size(), " to ", a.num_classes);
    });
    const nn::PairedCounts pc = paired_counts(a, b, data, o.batch, comm);
    const double n = double(std::max<std::int64_t>(1, pc.n));
    const double m = 100 * pc.margin(), h = 100 * pc.half_width();
    char line[200];
    log::info("");
    log::info("paired comparison on ", o.data, " (", pc.n, " rows): A = ", o.model, ", B = ", o.compare);
    std::snprintf(line, sizeof line, "  accuracy A %.2f%%, B %.2f%%", 100 * double(pc.both + pc.only_a) / n,
                  100 * double(pc.both + pc.only_b) / n);
    log::info(line);
    std::snprintf(line, sizeof line,
                  "  rows only A gets right %lld, only B %lld (McNemar's exact test p = %.3g)",
                  (long long)pc.only_a, (long long)pc.only_b, pc.p_value());
    log::info(line);
    std::snprintf(line, sizeof line, "  margin A - B  %+.2f points, 95%% interval %+.2f to %+.2f points", m,
                  m - h, m + h);
    log::info(line);
    log::info(pc.within_noise() ? "  verdict: within noise (the 95% interval includes 0)"
              : pc.margin() > 0 ? "  verdict: A is better (the 95% interval excludes 0)"
                                : "  verdict: B is better (the 95% interval excludes 0)");
}

} // namespace

void run(const EvalOptions& o, const par::Comm& comm) {
    par::agree(comm, [&] {
        if (!o.compare.empty() && o.model.empty()) fail("--compare: give the model to compare with --model");
        if (o.model.empty() && o.ensemble.empty()) fail("give --model, --ensemble, or both");
        if (o.top_k < 1) fail("--top-k: must be >= 1, got ", o.top_k);
        if (o.batch < 1 || o.batch > kMaxBatchRows)
            fail("--batch: must be from 1 to ", kMaxBatchRows, " rows, got ", o.batch);
    });
    if (!o.ensemble.empty()) {
        log::info(ensemble_report(evaluate_ensemble(o.ensemble, o.data, o.top_k, o.batch, comm)));
        if (o.model.empty()) return;
        log::info("");
    }
    Scorer scorer;
    std::unique_ptr<io::DatasetReader> data;
    PhaseTimers timers;
    par::agree(comm, [&] {
        ScopedPhase p(timers, "load", "eval::load");
        scorer = make_scorer(o, comm);
        data = std::make_unique<io::DatasetReader>(o.data, comm);
        const auto& m = data->meta();
        if (!m.has_labels) fail(o.data, ": has no labels (/y), so accuracy cannot be measured");
        if (m.n == 0) fail(o.data, ": holds no rows, so there is nothing to evaluate");
        const nn::Shape in{m.c, m.h, m.w};
        if (in != scorer.input)
            fail(o.data, ": samples are ", m.c, "x", m.h, "x", m.w, " (", m.d, " features) but ", scorer.what,
                 " expects ", scorer.input.c, "x", scorer.input.h, "x", scorer.input.w, " (",
                 scorer.input.size(), " features)");
        if (m.num_classes > scorer.num_classes)
            fail(o.data, ": has ", m.num_classes, " classes but ", scorer.what, " predicts ",
                 scorer.num_classes);
    });
    train::EvalCounts counts;
    {
        ScopedPhase p(timers, "evaluate", "eval::evaluate");
        counts = train::evaluate(scorer.predict, scorer.num_classes, *data, o.top_k, o.batch, comm);
    }
    char line[160];
    log::info("");
    log::info(scorer.what, " on ", o.data, " (", counts.n, " rows):");
    std::snprintf(line, sizeof line, "  accuracy        %7.2f%%  (%lld / %lld)", 100.0 * counts.accuracy(),
                  (long long)counts.correct, (long long)counts.n);
    log::info(line);
    std::snprintf(line, sizeof line, "  top-%d accuracy  %7.2f%%", o.top_k, 100.0 * counts.topk_accuracy());
    log::info(line);
    std::snprintf(line, sizeof line, "  loss (CE)       %9.4f", counts.loss());
    log::info(line);
    log::info("per-class accuracy:");
    for (int c = 0; c < counts.num_classes; ++c) {
        std::snprintf(line, sizeof line, "  class %-3d %7.2f%%  (%lld rows)", c,
                      100.0 * counts.class_accuracy(c), (long long)counts.class_count(c));
        log::info(line);
    }
    log::info("confusion matrix (rows: true class, columns: predicted class):");
    std::istringstream table(counts.confusion_table());
    for (std::string l; std::getline(table, l);)
        log::info("  ", l);
    if (!o.compare.empty()) {
        ScopedPhase p(timers, "compare", "eval::compare");
        compare(o, scorer, *data, comm);
    }
    timers.report(comm, "eval timings");
}

} // namespace mimic::stages
