// `mimic distill`: the student-training stage. Ranks form R data replicas x M model shards; the stage
// opens the transfer set and the ensemble's logits, builds the sharded student and wires both into the
// training engine (block streamer with read-ahead, mimic/KD/CE objective, validation against the
// ensemble's logits), then prints the summary.
#include "mimic/stages/distill.hpp"

#include "mimic/core/kokkos.hpp"
#include "mimic/core/log.hpp"
#include "mimic/core/progress.hpp"
#include "mimic/core/stop_signal.hpp"
#include "mimic/core/timer.hpp"
#include "mimic/io/dataset.hpp"
#include "mimic/io/logits_file.hpp"
#include "mimic/io/paths.hpp"
#include "mimic/parallel/grid.hpp"
#include "mimic/parallel/sharded_model.hpp"
#include "mimic/train/engine.hpp"

#include <cmath>
#include <cstring>
#include <memory>

namespace po = boost::program_options;

namespace mimic::stages {

// clang-format off
void describe(po::options_description& d, DistillOptions& o) {
    d.add_options()
        ("transfer", po::value(&o.transfer)->required(), "transfer set (dataset file)")
        ("logits", po::value(&o.logits)->required(), "the ensemble's logits over the transfer set (from `mimic label`)")
        ("arch", po::value(&o.arch)->required(), "student architecture spec, e.g. bottleneck:250,dense:8000,relu,dense:10")
        ("loss", po::value(&o.loss)->default_value(o.loss), "mimic (L2 on logits) | kd:T[,alpha] (Hinton; alpha<1 mixes hard labels) | ce (hard labels)")
        ("val", po::value(&o.val), "validation set with labels: accuracy every epoch")
        ("val-logits", po::value(&o.val_logits), "the ensemble's logits on --val: logit RMSE and agreement every epoch")
        ("out", po::value(&o.out)->required(), "student model file")
        ("checkpoint", po::value(&o.checkpoint), "checkpoint file (default OUT.ckpt); a rerun resumes from it")
        ("model-shards", po::value(&o.model_shards)->default_value(o.model_shards), "M: ranks that split the wide layer; data replicas R = ranks / M")
        ("block-rows", po::value(&o.block_rows)->default_value(o.block_rows), "rows per shuffled read block (memory per rank is bounded by it)")
        ("keep-checkpoint", po::bool_switch(&o.keep_checkpoint), "keep the checkpoint after the student is written")
        ("overwrite", po::bool_switch(&o.overwrite), "start over: replace an existing output (even one of these settings) and ignore a checkpoint");
    const char* refused = "refused by distill: its rows must match their teachers' logits (augment the transfer set "
                          "with `mimic transfer --augment` instead)";
    train::describe(d, o.engine, {{"epochs", "epochs over the transfer set"}, {"augment-shift", refused},
                                  {"augment-flip", refused}});
}
// clang-format on

namespace {

/// The inputs, opened and checked together: the transfer set, its logits, the validation set and its logits.
struct DistillInputs {
    std::unique_ptr<par::Comm> io_comm; ///< a duplicate of the world for the prefetch thread's reads
    std::unique_ptr<io::DatasetReader> transfer, val;
    h5::File lfile, vlfile;
    h5::Handle ldset, vldset;
    io::LogitsMeta lm, vlm;
};

void check_options(const DistillOptions& o, const train::Objective&, const par::Comm& world) {
    if (o.model_shards < 1 || world.size() % o.model_shards != 0)
        fail("--model-shards: ", o.model_shards, " does not divide the number of ranks (", world.size(), ")");
    if (o.block_rows < 1) fail("--block-rows: must be >= 1");
    if (!o.val_logits.empty() && o.val.empty()) fail("--val-logits needs --val");
}

void open_inputs(const DistillOptions& o, const train::Objective& loss, const par::Comm& world,
                 DistillInputs& in) {
    in.io_comm = std::make_unique<par::Comm>(world.dup());
    in.transfer = std::make_unique<io::DatasetReader>(o.transfer, *in.io_comm);
    in.lfile = h5::File::open(o.logits, *in.io_comm);
    in.lm = io::read_logits_meta(in.lfile);
    io::check_logits_match(o.logits, in.lm, o.transfer, in.transfer->meta());
    in.ldset = h5::open_dataset(in.lfile, "/logits");
    // Verified once before any training: corrupted logits never reach the student.
    io::verify_logits_blocks(in.lfile, in.ldset, in.lm, world.size() > 1 ? *in.io_comm : world);
    if (loss.needs_labels() && !in.transfer->meta().has_labels)
        fail("--loss ", o.loss, " needs hard labels but ", o.transfer, " has no /y");
    if (!o.val.empty()) {
        in.val = std::make_unique<io::DatasetReader>(o.val, world);
        if (!in.val->meta().has_labels) fail(o.val, ": the validation set has no labels (/y)");
        if (in.val->meta().d != in.transfer->meta().d)
            fail(o.val, ": rows have D = ", in.val->meta().d,
                 " but the transfer set has D = ", in.transfer->meta().d);
    }
    if (!o.val_logits.empty()) {
        in.vlfile = h5::File::open(o.val_logits, world);
        in.vlm = io::read_logits_meta(in.vlfile);
        io::check_logits_match(o.val_logits, in.vlm, o.val, in.val->meta());
        in.vldset = h5::open_dataset(in.vlfile, "/logits");
        io::verify_logits_blocks(in.vlfile, in.vldset, in.vlm, world);
        if (in.vlm.ensemble_checksum != in.lm.ensemble_checksum)
            fail(o.val_logits, ": holds the logits of ensemble ", in.vlm.ensemble_checksum, " but ", o.logits,
                 " those of ensemble ", in.lm.ensemble_checksum,
                 "; --val-logits must come from the same ensemble");
    }
}

/// A logits file's content identity: its ensemble, the transfer set it labelled, its block-hash digest and
/// how it combined and stored the logits, so relabelled logits under the same name are a changed input.
std::string logits_identity(const h5::File& f, const io::LogitsMeta& m) {
    const std::string digest =
        h5::has_attr(f.id(), "logits_fingerprint") ? h5::read_attr_string(f.id(), "logits_fingerprint") : "?";
    return detail::concat(m.ensemble_checksum, "/", m.transfer_fingerprint, "/", digest, "/", m.combine, ":",
                          m.temperature, "/", m.storage);
}

/// The settings that decide the student (checked on resume and against an existing --out).
io::ResumeIdentity distill_identity(const DistillOptions& o, const DistillInputs& in) {
    io::ResumeIdentity id;
    id.add("--arch", o.arch).add("--loss", o.loss).add("--transfer", in.transfer->meta().fingerprint);
    id.add("--logits", logits_identity(in.lfile, in.lm))
        .add("--val", in.val ? in.val->meta().fingerprint : "");
    id.add("--val-logits", in.vlfile.id() >= 0 ? logits_identity(in.vlfile, in.vlm) : "");
    id.add("--block-rows", o.block_rows);
    train::add_identity(id, o.engine, false); // distill had no --warmup: recorded only when not 0
    return id;
}

/// Validation of the student: accuracy on --val and, with --val-logits, the logit RMSE and the agreement
/// with the ensemble. Replicas split the rows; every model shard of a replica computes the same numbers.
class StudentValidator {
public:
    StudentValidator(const DistillInputs& in, std::int64_t batch, int replicas, int replica,
                     const par::Comm& replica_comm)
        : in_(in), batch_(batch), R_(replicas), replica_(replica), replica_comm_(replica_comm),
          D_(in.transfer->meta().d), C_(in.lm.num_classes),
          x_(Kokkos::view_alloc(Kokkos::WithoutInitializing, "mimic::distill::val_x"), batch, D_),
          hx_(Kokkos::create_mirror_view(x_)), z_("mimic::distill::val_z", batch, C_), T_(size_t(batch * C_)),
          y_(size_t(batch)) {}
    train::Validation operator()(par::ShardedModel& net);

private:
    const DistillInputs& in_;
    std::int64_t batch_;
    int R_, replica_;
    const par::Comm& replica_comm_;
    std::int64_t D_, C_;
    Matrix x_;
    Matrix::HostMirror hx_;
    Matrix::HostMirror z_;
    std::vector<float> T_;
    std::vector<int> y_;
};

train::Validation StudentValidator::operator()(par::ShardedModel& net) {
    const bool with_logits = in_.vlfile.id() >= 0;
    const std::int64_t Nv = in_.val->meta().n;
    const auto mine = par::split_range(Nv, R_, replica_);
    const std::int64_t most = par::split_range(Nv, R_, 0).size();
    double correct = 0, agree = 0, sq = 0;
    for (std::int64_t off = 0; off < most; off += batch_) {
        const std::int64_t n = std::max<std::int64_t>(0, std::min(batch_, mine.size() - off));
        const std::int64_t row = mine.begin + std::min(off, mine.size());
        in_.val->read(row, n, hx_.data(), y_.data()); // collective: every replica reads, maybe 0 rows
        if (with_logits) io::read_logits_rows(in_.vlfile, in_.vldset, in_.vlm, row, n, T_.data());
        if (n == 0) continue;
        Kokkos::deep_copy(x_, hx_);
        Matrix xs = Kokkos::subview(x_, std::make_pair(std::int64_t(0), n), Kokkos::ALL());
        Kokkos::deep_copy(Kokkos::subview(z_, std::make_pair(std::int64_t(0), n), Kokkos::ALL()),
                          net.forward(xs, false));
        for (std::int64_t i = 0; i < n; ++i) {
            const float* zi = z_.data() + i * C_;
            const int top = int(std::max_element(zi, zi + C_) - zi);
            correct += top == y_[size_t(i)];
            if (!with_logits) continue;
            const float* ti = T_.data() + i * C_;
            agree += top == int(std::max_element(ti, ti + C_) - ti);
            for (std::int64_t c = 0; c < C_; ++c)
                sq += double(zi[c] - ti[c]) * double(zi[c] - ti[c]);
        }
    }
    train::Validation v;
    v.accuracy = replica_comm_.sum(correct) / double(Nv);
    v.metric = 1.0 - v.accuracy;
    if (with_logits) {
        v.agreement = replica_comm_.sum(agree) / double(Nv);
        v.rmse = std::sqrt(replica_comm_.sum(sq) / double(Nv * C_));
        v.metric = v.rmse;
    }
    return v;
}

void print_summary(const DistillOptions& o, const train::TrainResult& r, const par::ShardedModel& student) {
    const auto& last = r.history.back();
    log::info("");
    log::info("distill summary: ", o.out, " (", student.full_num_params(), " parameters, ", r.history.size(),
              " epochs", r.stopped_early ? ", stopped early" : "", ")");
    if (last.val_accuracy >= 0) log::info("  validation accuracy ", 100 * last.val_accuracy, "%");
    if (last.val_rmse >= 0)
        log::info("  validation logit RMSE ", last.val_rmse, ", agreement with the ensemble ",
                  100 * last.val_agreement, "%");
    const double s = std::max(r.train_seconds, 1e-9);
    log::info("  ", r.samples_run, " samples in ", Progress::format_duration(r.train_seconds), ": ",
              r.samples_run / s, " samples/s, ",
              r.samples_run * 3.0 * student.local().flops_per_sample() * o.model_shards / s / 1e9,
              " GFLOP/s (forward+backward = 3x forward)");
}

} // namespace

void run(const DistillOptions& o, const par::Comm& world) {
    const double t_start = wall_seconds();
    const std::string ckpt = o.checkpoint.empty() ? o.out + ".ckpt" : o.checkpoint;
    const auto& e = o.engine;
    par::agree(world, [&] {
        train::validate(e); // before anything is written
        train::refuse_augment(e, "distill's rows must match their teachers' logits (augment the transfer set "
                                 "with `mimic transfer --augment` instead)");
    });
    const auto lock = io::claim_outputs({o.out, ckpt, e.log_csv, e.timings_csv},
                                        {o.transfer, o.logits, o.val, o.val_logits}, world.get());

    // Plan, open inputs and build the student: every rank reaches the same verdict.
    train::Objective loss;
    DistillInputs in;
    par::agree(world, [&] {
        loss = train::parse_objective(o.loss);
        check_options(o, loss, world);
        open_inputs(o, loss, world, in);
    });
    const auto& tm = in.transfer->meta();
    const std::int64_t C = in.lm.num_classes;
    par::Grid grid(world, o.model_shards);
    const int R = grid.outer(), replica = grid.outer_index();
    std::unique_ptr<par::ShardedModel> student;
    par::agree(world, [&] {
        student = std::make_unique<par::ShardedModel>(o.arch, nn::Shape{tm.c, tm.h, tm.w}, grid.inner_comm());
        if (student->local().output_size() != C)
            fail("--arch: the student has ", student->local().output_size(), " outputs but ", o.logits,
                 " has C = ", C, " classes; end the spec with dense:", C);
    });
    const bool prefetch = par::mpi_thread_multiple() || world.size() == 1;

    // The engine: shuffled blocks of transfer rows with their logits, the loss, validation.
    train::BlockStreamer::Inputs src{in.transfer.get(),   &in.lfile,       in.ldset.id(), in.lm,
                                     loss.needs_labels(), in.io_comm.get()};
    train::BlockStreamer blocks(src, e.batch * e.accumulate, o.block_rows, std::uint64_t(e.seed), R, replica,
                                prefetch);
    auto config = train::engine_config(e, "distill");
    config.out = o.out, config.checkpoint = ckpt, config.keep_checkpoint = o.keep_checkpoint;
    config.overwrite = o.overwrite;
    train::Engine engine(std::move(config), *student, blocks, loss, world, grid.outer_comm(),
                         distill_identity(o, in));
    std::unique_ptr<StudentValidator> validator;
    if (in.val) {
        validator = std::make_unique<StudentValidator>(in, e.batch, R, replica, grid.outer_comm());
        engine.set_validator([&](par::ShardedModel& m) { return (*validator)(m); });
    }
    log::info("distill: ", tm.n, " transfer rows x C = ", C, ", grid ", R, " replica", R == 1 ? "" : "s",
              " x ", o.model_shards, " model shard", o.model_shards == 1 ? "" : "s", "; ",
              student->describe());
    log::info("distill: student '", o.arch, "', ", student->full_num_params(), " parameters, ",
              student->local().flops_per_sample() / 1e6, " MFLOP/sample forward (this shard); loss ", o.loss,
              "; ", blocks.steps_per_epoch(), " steps/epoch",
              e.accumulate > 1 ? detail::concat(" of ", e.accumulate, " micro-batches of ", e.batch, " rows")
                               : "",
              prefetch ? "" : " (no prefetch: MPI lacks MPI_THREAD_MULTIPLE)");
    io::ModelMeta meta;
    meta.loss = o.loss;
    meta.seed = std::uint64_t(e.seed);
    meta.data_fingerprint = tm.fingerprint;
    const auto result = engine.run(meta);
    if (result.completed) StopSignals::output_complete(); // a late SIGTERM is no failure
    if (!result.completed || result.already_done) return;

    // Finish: summary and timings.
    print_summary(o, result, *student);
    auto& timers = engine.timers();
    timers.add("total", wall_seconds() - t_start);
    timers.report(world, "distill timings");
    timers.append_csv(world, e.timings_csv,
                      {{"stage", "distill"},
                       {"ranks", std::to_string(world.size())},
                       {"replicas", std::to_string(R)},
                       {"model_shards", std::to_string(o.model_shards)},
                       {"rows", std::to_string(std::int64_t(result.samples_run))},
                       {"params", std::to_string(student->full_num_params())},
                       {"batch", std::to_string(e.batch)},
                       {"accumulate", std::to_string(e.accumulate)}});
}

} // namespace mimic::stages
