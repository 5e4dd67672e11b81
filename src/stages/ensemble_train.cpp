// `mimic ensemble train`: trains N teacher members with different seeds (and optionally different
// architectures and bootstrap samples). Ranks form groups of --group-size; members are spread over the
// groups by FLOPs (LPT); each group trains its members one after another, data-parallel inside the
// group. Finished members are kept, so a rerun trains only the missing ones; then the manifest is written.
#include "mimic/core/log.hpp"
#include "mimic/core/progress.hpp"
#include "mimic/core/stop_signal.hpp"
#include "mimic/core/timer.hpp"
#include "mimic/io/dataset.hpp"
#include "mimic/io/manifest.hpp"
#include "mimic/io/model_file.hpp"
#include "mimic/io/paths.hpp"
#include "mimic/nn/model.hpp"
#include "mimic/parallel/grid.hpp"
#include "mimic/stages/ensemble.hpp"
#include "mimic/stages/train.hpp"

#include <cstdio>
#include <fstream>
#include <sstream>

namespace po = boost::program_options;

namespace mimic::stages {

// clang-format off
void describe(po::options_description& d, EnsembleTrainOptions& o) {
    d.add_options()
        ("members", po::value(&o.members)->default_value(o.members), "number of members N")
        ("arch", po::value(&o.arch), "architecture spec of every member")
        ("arch-file", po::value(&o.arch_file), "file with one spec per line (# comments); member i uses line i mod lines")
        ("data", po::value(&o.data)->required(), "labelled training set")
        ("val", po::value(&o.val), "labelled validation set (member and ensemble accuracy)")
        ("out-dir", po::value(&o.out_dir)->default_value(o.out_dir), "directory of the member files member-NNN.h5")
        ("manifest", po::value(&o.manifest), "manifest to write (default OUT_DIR/manifest.h5)")
        ("group-size", po::value(&o.group_size)->default_value(o.group_size), "ranks that train one member together (must divide the ranks)")
        ("bootstrap", po::bool_switch(&o.bootstrap), "train each member on its own bootstrap sample of the training set")
        ("overwrite", po::bool_switch(&o.overwrite), "retrain members whose files were trained with other settings")
        ("seed", po::value(&o.seed)->default_value(o.seed), "member i trains with seed + i")
        ("epochs", po::value(&o.epochs)->default_value(o.epochs), "epochs per member")
        ("batch", po::value(&o.batch)->default_value(o.batch), "global batch per member")
        ("lr", po::value(&o.lr)->default_value(o.lr), "learning rate")
        ("optimizer", po::value(&o.optimizer)->default_value(o.optimizer), "sgd | nesterov | adam | adamw")
        ("momentum", po::value(&o.momentum)->default_value(o.momentum), "momentum (sgd, nesterov)")
        ("weight-decay", po::value(&o.weight_decay)->default_value(o.weight_decay), "weight decay")
        ("schedule", po::value(&o.schedule)->default_value(o.schedule), "learning-rate schedule (see mimic train --help)")
        ("warmup", po::value(&o.warmup)->default_value(o.warmup), "linear warmup epochs")
        ("timings-csv", po::value(&o.timings_csv), "append per-phase min/avg/max timings to this CSV file");
}
// clang-format on

namespace {

std::vector<std::string> member_specs(const EnsembleTrainOptions& o) {
    std::vector<std::string> specs;
    if (!o.arch_file.empty()) {
        std::ifstream in(o.arch_file);
        if (!in) fail(o.arch_file, ": cannot open the architecture list");
        std::string line;
        while (std::getline(in, line)) {
            const auto hash = line.find('#');
            if (hash != std::string::npos) line = line.substr(0, hash);
            const auto b = line.find_first_not_of(" \t\r"), e = line.find_last_not_of(" \t\r");
            if (b != std::string::npos) specs.push_back(line.substr(b, e - b + 1));
        }
        if (specs.empty()) fail(o.arch_file, ": lists no architecture");
    } else {
        specs.push_back(o.arch);
    }
    std::vector<std::string> out;
    for (int i = 0; i < o.members; ++i)
        out.push_back(specs[size_t(i) % specs.size()]);
    return out;
}

std::string member_file(const EnsembleTrainOptions& o, int i) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "member-%03d.h5", i);
    return o.out_dir + "/" + buf;
}

/// The `mimic train` options of member i.
TrainOptions member_options(const EnsembleTrainOptions& o, const std::vector<std::string>& specs, int i) {
    TrainOptions t;
    t.data = o.data, t.val = o.val, t.arch = specs[size_t(i)], t.out = member_file(o, i);
    t.log_csv = t.out.substr(0, t.out.size() - 3) + ".csv";
    t.epochs = o.epochs, t.batch = o.batch, t.lr = o.lr, t.optimizer = o.optimizer, t.momentum = o.momentum;
    t.weight_decay = o.weight_decay, t.schedule = o.schedule, t.warmup = o.warmup, t.seed = o.seed + i;
    t.bootstrap = o.bootstrap, t.overwrite = o.overwrite;
    t.final_output = false; // the manifest is the command's result
    return t;
}

/// A member is done when its file is a model trained with exactly the member's settings; a file trained
/// with other settings is an error unless --overwrite (then it is retrained).
bool member_done(const TrainOptions& t, const std::string& data_fp, const std::string& val_fp,
                 bool overwrite) {
    if (!io::file_exists(t.out)) return false;
    std::string diff;
    try {
        const auto f = h5::File::open(t.out);
        diff = train_identity(t, data_fp, val_fp).difference(f);
    } catch (const Error& e) {
        diff = e.what();
    }
    if (diff.empty()) return true;
    if (!overwrite)
        fail(t.out, ": exists but was not trained with this run's settings (", diff,
             "); pass --overwrite to retrain it, or choose another --out-dir");
    return false;
}

} // namespace

void run(const EnsembleTrainOptions& o, const par::Comm& world) {
    PhaseTimers timers;
    std::vector<std::string> specs;
    std::vector<double> flops;
    io::DatasetMeta dm;
    std::string val_fp;
    const auto lock =
        io::claim_outputs({o.manifest.empty() ? o.out_dir + "/manifest.h5" : o.manifest, o.timings_csv},
                          {o.data, o.val, o.arch_file}, world.get());
    par::agree(world, [&] {
        if (o.members < 1) fail("--members: must be >= 1, got ", o.members);
        if (o.arch.empty() == o.arch_file.empty()) fail("give exactly one of --arch and --arch-file");
        if (o.group_size < 1 || world.size() % o.group_size != 0)
            fail("--group-size: ", o.group_size, " does not divide the number of ranks (", world.size(), ")");
        specs = member_specs(o);
        {
            io::DatasetReader r(o.data, world);
            dm = r.meta();
        }
        if (!o.val.empty()) val_fp = io::DatasetReader(o.val, world).meta().fingerprint;
        for (size_t i = 0; i < specs.size(); ++i) {
            try {
                nn::Model m(specs[i], nn::Shape{dm.c, dm.h, dm.w});
                if (m.output_size() != dm.num_classes)
                    fail("gives ", m.output_size(), " outputs but ", o.data, " has ", dm.num_classes,
                         " classes");
                flops.push_back(m.flops_per_sample());
            } catch (const Error& e) {
                fail("member ", i, " architecture '", specs[i], "': ", e.what());
            }
        }
        if (world.rank() == 0) io::make_dirs(o.out_dir);
    });
    const std::string manifest = o.manifest.empty() ? o.out_dir + "/manifest.h5" : o.manifest;

    par::Grid grid(world, o.group_size);
    const int G = grid.outer();
    const auto bin = par::assign_lpt(flops, G);
    std::vector<int> todo, kept;
    par::agree(world, [&] {
        for (int i = 0; i < o.members; ++i)
            (member_done(member_options(o, specs, i), dm.fingerprint, val_fp, o.overwrite) ? kept : todo)
                .push_back(i);
    });
    log::info("ensemble train: ", o.members, " members on ", G, " group", G == 1 ? "" : "s", " of ",
              o.group_size, " rank", o.group_size == 1 ? "" : "s", "; ", kept.size(), " already trained, ",
              todo.size(), " to train",
              G > 1 ? " (training logs below are group 0's; every member writes OUT_DIR/member-NNN.csv)"
                    : "");

    const double t0 = wall_seconds();
    {
        ScopedPhase p(timers, "train", "ensemble::train");
        for (int i : todo) {
            if (bin[size_t(i)] != grid.outer_index()) continue;
            const TrainOptions t = member_options(o, specs, i);
            log::info("ensemble train: member ", i, " (", t.arch, ", seed ", t.seed, ") on group ",
                      grid.outer_index());
            run(t, grid.inner_comm());
        }
    }
    world.barrier();
    const double train_s = wall_seconds() - t0;

    // Manifest of every member, in member order (validated before it is written). Every member is done: a
    // stop request (SIGTERM) from here on is recorded and ignored on every rank.
    StopSignals::output_complete();
    par::agree(world, [&] {
        if (world.rank() != 0) return;
        io::Manifest m;
        m.base_dir = h5::parent_dir(manifest);
        for (int i = 0; i < o.members; ++i) {
            const std::string path = member_file(o, i);
            if (!member_done(member_options(o, specs, i), dm.fingerprint, val_fp, false))
                fail(path, ": member ", i, " did not finish; rerun the same command to train it");
            // Stored relative to the manifest's directory when the member lives below it.
            std::string stored = path;
            if (path.rfind(m.base_dir + "/", 0) == 0) stored = path.substr(m.base_dir.size() + 1);
            m.members.push_back(io::member_from_model_file(path, stored));
        }
        io::validate_manifest(m, manifest, false);
        io::write_manifest(manifest, m);
    });
    log::info("");
    log::info("ensemble train summary: ", manifest, ", ", log::count(std::int64_t(todo.size()), "member"),
              " trained in ", Progress::format_duration(train_s), ", ", kept.size(), " kept");
    if (world.rank() == 0) log::info(members_table(manifest));
    if (!o.val.empty()) {
        ScopedPhase p(timers, "evaluate", "ensemble::evaluate");
        log::info(ensemble_report(evaluate_ensemble(manifest, o.val, 5, 1000, world)));
    }
    timers.report(world, "ensemble train timings");
    timers.append_csv(world, o.timings_csv,
                      {{"stage", "ensemble-train"},
                       {"ranks", std::to_string(world.size())},
                       {"groups", std::to_string(G)},
                       {"members_trained", std::to_string(todo.size())},
                       {"members_kept", std::to_string(kept.size())}});
}

} // namespace mimic::stages
