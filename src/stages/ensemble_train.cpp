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
#include <limits>
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
        ("overwrite", po::bool_switch(&o.overwrite), "start over: retrain every member, also those already trained with these settings");
    train::describe(d, o.engine,
        {{"seed", "member i trains with seed + i"},
         {"epochs", "epochs per member"},
         {"batch", "global rows per micro-batch of a member (split over its group's ranks)"},
         {"checkpoint-every", "each member also checkpoints (OUT_DIR/member-NNN.h5.ckpt) every N of its steps (0: at "
                              "the end of every epoch only)"},
         {"stop-after-steps", "each member trained by this run checkpoints and stops after N of its steps, and its "
                              "group trains no further member; no manifest is written, rerun to continue (0: never)"},
         {"log-csv", "per-member CSV log: a path in which {member} stands for the member number NNN (default "
                     "OUT_DIR/member-{member}.csv)"},
         {"timings-csv", "append the ensemble's per-phase min/avg/max timings to this CSV file"}});
}
// clang-format on

namespace {

/// What every rank knows before training: the member specs and costs and the data's metadata.
struct EnsemblePlan {
    std::string manifest;
    std::vector<std::string> specs;
    std::vector<double> flops;
    io::DatasetMeta dm;
    std::string val_fp;
};

constexpr const char* kMemberToken = "{member}";

void check_options(const EnsembleTrainOptions& o, const par::Comm& world) {
    train::validate(o.engine);
    if (o.members < 1) fail("--members: must be >= 1, got ", o.members);
    if (o.engine.seed > std::numeric_limits<long long>::max() - (o.members - 1))
        fail("--seed: ", o.engine.seed, " + member number overflows; choose a smaller seed");
    if (o.arch.empty() == o.arch_file.empty()) fail("give exactly one of --arch and --arch-file");
    if (o.group_size < 1 || world.size() % o.group_size != 0)
        fail("--group-size: ", o.group_size, " does not divide the number of ranks (", world.size(), ")");
    if (!o.engine.log_csv.empty() && o.engine.log_csv.find(kMemberToken) == std::string::npos)
        fail("--log-csv: must contain ", kMemberToken, " (each member writes its own log), got '",
             o.engine.log_csv, "'");
}

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

std::string member_number(int i) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%03d", i);
    return buf;
}

std::string member_file(const EnsembleTrainOptions& o, int i) {
    return o.out_dir + "/member-" + member_number(i) + ".h5";
}

/// Member i's CSV log: the --log-csv pattern with {member} replaced, or OUT_DIR/member-NNN.csv.
std::string member_log(const EnsembleTrainOptions& o, int i) {
    std::string path =
        o.engine.log_csv.empty() ? o.out_dir + "/member-" + kMemberToken + ".csv" : o.engine.log_csv;
    for (auto at = path.find(kMemberToken); at != std::string::npos; at = path.find(kMemberToken, at))
        path.replace(at, std::string(kMemberToken).size(), member_number(i));
    return path;
}

/// The `mimic train` options of member i.
TrainOptions member_options(const EnsembleTrainOptions& o, const std::vector<std::string>& specs, int i) {
    TrainOptions t;
    t.data = o.data, t.val = o.val, t.arch = specs[size_t(i)], t.out = member_file(o, i);
    t.engine = o.engine;
    t.engine.seed = o.engine.seed + i;
    t.engine.log_csv = member_log(o, i);
    t.engine.timings_csv.clear(); // the ensemble's own timings go to --timings-csv
    t.bootstrap = o.bootstrap, t.overwrite = o.overwrite;
    t.final_output = false; // the manifest is the command's result
    return t;
}

/// A member is done when its file is a model trained with exactly the member's settings; a file trained
/// with other settings is an error (a run with --overwrite retrains every member instead of asking).
bool member_done(const TrainOptions& t, const EnsemblePlan& p) {
    if (!io::file_exists(t.out)) return false;
    std::string diff;
    try {
        const auto f = h5::File::open(t.out);
        diff = train_identity(t, p.dm.fingerprint, p.val_fp).difference(f);
    } catch (const Error& e) {
        diff = e.what();
    }
    if (diff.empty()) {
        // Kept only once its content is verified (format, finite weights, the weights checksum).
        try {
            io::read_model(h5::File::open(t.out));
        } catch (const Error& e) {
            fail(e.what(), "; it is not reused: pass --overwrite to retrain it");
        }
        return true;
    }
    fail(t.out, ": exists but was not trained with this run's settings (", diff,
         "); pass --overwrite to retrain it, or choose another --out-dir");
}

/// Collective (inside par::agree): the member specs, their FLOPs (checked against the data) and the
/// fingerprints of the data; creates OUT_DIR.
EnsemblePlan make_plan(const EnsembleTrainOptions& o, const par::Comm& world) {
    EnsemblePlan p;
    p.manifest = o.manifest.empty() ? o.out_dir + "/manifest.h5" : o.manifest;
    p.specs = member_specs(o);
    p.dm = io::DatasetReader(o.data, world).meta();
    train::check_augment_shape(train::augment_options(o.engine), nn::Shape{p.dm.c, p.dm.h, p.dm.w}, o.data);
    if (!o.val.empty()) p.val_fp = io::DatasetReader(o.val, world).meta().fingerprint;
    for (size_t i = 0; i < p.specs.size(); ++i) {
        try {
            nn::Model m(p.specs[i], nn::Shape{p.dm.c, p.dm.h, p.dm.w});
            if (m.output_size() != p.dm.num_classes)
                fail("gives ", m.output_size(), " outputs but ", o.data, " has ", p.dm.num_classes,
                     " classes");
            p.flops.push_back(m.flops_per_sample());
        } catch (const Error& e) {
            fail("member ", i, " architecture '", p.specs[i], "': ", e.what());
        }
    }
    if (world.rank() == 0) io::make_dirs(o.out_dir);
    return p;
}

/// Trains this group's members of `todo`, one after another; false when one of them stopped with its
/// checkpoint saved (--stop-after-steps): the group then trains no further member.
bool train_group_members(const EnsembleTrainOptions& o, const EnsemblePlan& p, const std::vector<int>& todo,
                         const std::vector<int>& bin, const par::Grid& grid) {
    for (int i : todo) {
        if (bin[size_t(i)] != grid.outer_index()) continue;
        const TrainOptions t = member_options(o, p.specs, i);
        log::info("ensemble train: member ", i, " (", t.arch, ", seed ", t.engine.seed, ") on group ",
                  grid.outer_index());
        if (!run(t, grid.inner_comm())) return false;
    }
    return true;
}

/// Rank 0 writes the manifest of every member, in member order (validated before it is written).
void write_members_manifest(const EnsembleTrainOptions& o, const EnsemblePlan& p, const par::Comm& world) {
    par::agree(world, [&] {
        if (world.rank() != 0) return;
        io::Manifest m;
        m.base_dir = h5::parent_dir(p.manifest);
        for (int i = 0; i < o.members; ++i) {
            const std::string path = member_file(o, i);
            if (!member_done(member_options(o, p.specs, i), p))
                fail(path, ": member ", i, " did not finish; rerun the same command to train it");
            // Stored relative to the manifest's directory when the member lives below it.
            std::string stored = path;
            if (path.rfind(m.base_dir + "/", 0) == 0) stored = path.substr(m.base_dir.size() + 1);
            m.members.push_back(io::member_from_model_file(path, stored));
        }
        io::validate_manifest(m, p.manifest, false);
        io::write_manifest(p.manifest, m);
    });
}

} // namespace

void run(const EnsembleTrainOptions& o, const par::Comm& world) {
    PhaseTimers timers;
    par::agree(world, [&] { check_options(o, world); }); // before anything is written
    const auto lock = io::claim_outputs(
        {o.manifest.empty() ? o.out_dir + "/manifest.h5" : o.manifest, o.engine.timings_csv},
        {o.data, o.val, o.arch_file}, world.get());
    EnsemblePlan p;
    par::agree(world, [&] { p = make_plan(o, world); });

    par::Grid grid(world, o.group_size);
    const int G = grid.outer();
    const auto bin = par::assign_lpt(p.flops, G);
    std::vector<int> todo, kept;
    par::agree(world, [&] {
        for (int i = 0; i < o.members; ++i)
            (!o.overwrite && member_done(member_options(o, p.specs, i), p) ? kept : todo).push_back(i);
    });
    log::info("ensemble train: ", o.members, " members on ", G, " group", G == 1 ? "" : "s", " of ",
              o.group_size, " rank", o.group_size == 1 ? "" : "s", "; ", kept.size(), " already trained, ",
              todo.size(), " to train",
              G > 1 ? detail::concat(" (training logs below are group 0's; every member writes ",
                                     member_log(o, 0), " and so on)")
                    : "");

    const double t0 = wall_seconds();
    bool finished = true;
    {
        ScopedPhase phase(timers, "train", "ensemble::train");
        finished = train_group_members(o, p, todo, bin, grid);
    }
    if (!world.all(finished)) {
        log::info("ensemble train: stopped by --stop-after-steps; the members' checkpoints are saved and no "
                  "manifest is written; rerun the same command to continue");
        return;
    }
    const double train_s = wall_seconds() - t0;

    // Every member is done: a stop request (SIGTERM) from here on is recorded and ignored on every rank.
    StopSignals::output_complete();
    write_members_manifest(o, p, world);
    log::info("");
    log::info("ensemble train summary: ", p.manifest, ", ", log::count(std::int64_t(todo.size()), "member"),
              " trained in ", Progress::format_duration(train_s), ", ", kept.size(), " kept");
    if (world.rank() == 0) log::info(members_table(p.manifest));
    if (!o.val.empty()) {
        ScopedPhase phase(timers, "evaluate", "ensemble::evaluate");
        log::info(ensemble_report(evaluate_ensemble(p.manifest, o.val, 5, 1000, world)));
    }
    timers.report(world, "ensemble train timings");
    timers.append_csv(world, o.engine.timings_csv,
                      {{"stage", "ensemble-train"},
                       {"ranks", std::to_string(world.size())},
                       {"groups", std::to_string(G)},
                       {"members_trained", std::to_string(todo.size())},
                       {"members_kept", std::to_string(kept.size())}});
}

} // namespace mimic::stages
