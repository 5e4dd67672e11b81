// `mimic eval`: loads what is evaluated (make_scorer), checks it against the data (shape, classes), runs
// the collective evaluation and prints accuracy, top-k accuracy, loss, per-class accuracy and the
// confusion matrix on rank 0.
#include "mimic/stages/eval.hpp"
#include "mimic/stages/ensemble.hpp"

#include "mimic/core/error.hpp"
#include "mimic/core/log.hpp"
#include "mimic/core/timer.hpp"
#include "mimic/io/dataset.hpp"
#include "mimic/io/model_file.hpp"

#include <cstdio>
#include <sstream>

namespace po = boost::program_options;

namespace mimic::stages {

void describe(po::options_description& d, EvalOptions& o) {
    // clang-format off
    d.add_options()
        ("model", po::value(&o.model), "model file to evaluate (from mimic train or mimic distill)")
        ("ensemble", po::value(&o.ensemble), "ensemble manifest to evaluate (alone, or beside --model)")
        ("data", po::value(&o.data)->required(), "labelled dataset file, e.g. test.h5")
        ("top-k", po::value(&o.top_k)->default_value(o.top_k), "k of the top-k accuracy")
        ("batch", po::value(&o.batch)->default_value(o.batch), "rows per forward pass");
    // clang-format on
}

Scorer make_scorer(const EvalOptions& o, const par::Comm&) {
    Scorer s;
    io::ModelMeta meta;
    auto model = std::make_shared<nn::Model>(io::load_model(o.model, &meta));
    s.what = o.model;
    s.input = model->input_shape();
    s.num_classes = int(model->output_size());
    s.predict = train::model_predictor(*model);
    s.keep_alive = model;
    return s;
}

void run(const EvalOptions& o, const par::Comm& comm) {
    par::agree(comm, [&] {
        if (o.model.empty() && o.ensemble.empty()) fail("give --model, --ensemble, or both");
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
        if (o.top_k < 1) fail("--top-k: must be >= 1, got ", o.top_k);
        if (o.batch < 1) fail("--batch: must be >= 1, got ", o.batch);
        ScopedPhase p(timers, "load", "eval::load");
        scorer = make_scorer(o, comm);
        data = std::make_unique<io::DatasetReader>(o.data, comm);
        const auto& m = data->meta();
        if (!m.has_labels) fail(o.data, ": has no labels (/y), so accuracy cannot be measured");
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
    timers.report(comm, "eval timings");
}

} // namespace mimic::stages
