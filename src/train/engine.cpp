// The training engine: start or resume, the epoch loop of steps (read, forward, objective, backward,
// gradient allreduce, optimizer), the end of an epoch (validation, schedule, early stop, log, CSV,
// checkpoint), stop requests, and the model file at the end.
#include "mimic/train/engine.hpp"

#include "mimic/core/error.hpp"
#include "mimic/core/log.hpp"
#include "mimic/core/progress.hpp"
#include "mimic/core/rng.hpp"
#include "mimic/core/stop_signal.hpp"
#include "mimic/core/timer.hpp"
#include "mimic/io/dataset.hpp"
#include "mimic/nn/optim/layer_lr.hpp"
#include "mimic/nn/schedule.hpp"
#include "mimic/parallel/bucket_reduce.hpp"
#include "mimic/parallel/reduce.hpp"
#include "mimic/parallel/sharded_model_file.hpp"
#include "mimic/train/checkpoint.hpp"
#include "mimic/train/evaluate.hpp"
#include "mimic/train/log_csv.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iomanip>
#include <optional>
#include <sstream>

namespace mimic::train {

const std::vector<std::string>& epoch_log_columns() {
    static const std::vector<std::string> c = {"epoch",    "lr",           "train_loss",     "train_acc",
                                               "val_loss", "val_acc",      "val_logit_rmse", "val_agreement",
                                               "seconds",  "samples_per_s"};
    return c;
}

std::int64_t bucket_floats(double mib) {
    return mib <= 0 ? 0 : std::max<std::int64_t>(1, std::llround(mib * double(1 << 20) / sizeof(float)));
}

namespace {

std::vector<double> to_row(const EpochLog& e) {
    return {double(e.epoch), e.lr,       e.train_loss,    e.train_accuracy, e.val_loss,
            e.val_accuracy,  e.val_rmse, e.val_agreement, e.seconds,        e.samples_per_second};
}

EpochLog from_row(const double* r) {
    EpochLog e;
    e.epoch = int(r[0]), e.lr = r[1], e.train_loss = r[2], e.train_accuracy = r[3], e.val_loss = r[4];
    e.val_accuracy = r[5], e.val_rmse = r[6], e.val_agreement = r[7], e.seconds = r[8];
    e.samples_per_second = r[9];
    return e;
}

std::string percent(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f%%", 100.0 * v);
    return buf;
}

} // namespace

/// Device buffers for this rank's slice of a batch and their host mirrors, the optimizer, the schedule,
/// phase timers and the scoped stop-signal handlers: everything a run holds besides the cursor.
struct Engine::Impl {
    std::unique_ptr<nn::optim::Optimizer> opt;
    std::unique_ptr<nn::Schedule> sched;
    Matrix x, soft, dlogits;
    IntVector y;
    Matrix::HostMirror hx, hsoft;
    IntVector::HostMirror hy;
    PhaseTimers timers;
    std::unique_ptr<par::BucketedAllreduce> buckets; ///< the overlapped replica allreduce (null: blocking)
    io::ModelMeta meta;
    std::optional<StopSignals> signals;
    std::string last_checkpoint = "none yet";
};

struct Engine::State {
    int epoch = 0;
    std::int64_t step_in_epoch = 0, global_step = 0;
    double best = 0;
    int best_epoch = -1, bad_epochs = 0;
    double loss_sum = 0, correct = 0, rows = 0, seconds = 0; ///< this epoch so far
    double rows_at_start = 0, t0 = 0;                        ///< where this run entered the epoch
    std::vector<EpochLog> history;
    bool stop = false;
};

Engine::Engine(EngineConfig cfg, par::ShardedModel& net, BatchSource& data, Objective objective,
               const par::Comm& world, const par::Comm& replicas, io::ResumeIdentity identity)
    : cfg_(std::move(cfg)), net_(net), data_(data), objective_(std::move(objective)), world_(world),
      replicas_(replicas), identity_(std::move(identity)), impl_(std::make_shared<Impl>()) {
    net_.time_into(&impl_->timers);
    // Batch normalisation normalises with the statistics of the whole micro-batch, every replica's rows:
    // one small allreduce per layer and pass, on a communicator of its own (the gradient buckets may be in
    // flight on the replica communicator meanwhile).
    if (net_.local().uses_batch_stats() && replicas_.size() > 1) {
        auto comm = std::make_shared<par::Comm>(replicas_.dup());
        net_.local().set_stat_reducer(
            [comm](std::vector<double>& v) { comm->allreduce(v, par::ReduceOp::sum); });
    }
}

void Engine::scale_rows(const Matrix& m, std::int64_t rows, float w) {
    auto s = Kokkos::subview(m, std::make_pair(std::int64_t(0), rows), Kokkos::ALL());
    const std::int64_t cols = m.extent(1);
    Kokkos::parallel_for(
        "mimic::train::scale_rows", RangePolicy(0, rows * cols),
        KOKKOS_LAMBDA(const std::int64_t e) { s(e / cols, e % cols) *= w; });
}

PhaseTimers& Engine::timers() {
    return impl_->timers;
}

namespace {

/// A finished model counts as done only once its content is verified (format, shapes, finite weights,
/// the weights checksum): a file that fails is refused as corrupt, or with --overwrite retrained.
bool verified_model_file(const h5::File& f, bool overwrite) {
    try {
        io::read_model(f);
    } catch (const Error& e) {
        if (!overwrite) fail(e.what(), "; it is not reused: pass --overwrite to retrain it");
        return false;
    }
    return true;
}

} // namespace

bool Engine::finished_output_exists() {
    if (cfg_.out.empty() || !io::file_exists(cfg_.out)) return false;
    bool same = false;
    par::agree(world_, [&] {
        auto f = h5::File::open(cfg_.out, world_);
        const std::string diff = identity_.difference(f);
        same = diff.empty();
        if (!same && !cfg_.overwrite)
            fail(cfg_.out, ": exists and was not trained with these settings (", diff,
                 "); pass --overwrite to replace it, or choose another --out");
        if (same && !cfg_.overwrite) same = verified_model_file(f, false);
    });
    if (same && cfg_.overwrite) {
        log::info(cfg_.stage, ": ", cfg_.out,
                  " is already trained with these settings; --overwrite: training again");
        return false;
    }
    if (same) log::info(cfg_.stage, ": ", cfg_.out, " is already trained with these settings; nothing to do");
    return same;
}

TrainResult Engine::run(io::ModelMeta meta) {
    TrainResult result;
    if (finished_output_exists()) {
        result.completed = result.already_done = true;
        return result;
    }
    impl_->meta = meta;
    State st;
    start_or_resume(st, result);
    impl_->signals.emplace();
    const double t_start = wall_seconds();
    while (st.epoch < cfg_.epochs && !st.stop) {
        run_epoch(st, result);
        if (st.stop) break;
        end_epoch(st, result);
        if (result.stopped_early) break;
    }
    result.train_seconds = wall_seconds() - t_start;
    result.history = st.history;
    // The handlers stay installed until the engine is destroyed: a stop request during the final save
    // is recorded, the save completes, and the stage decides (StopSignals::output_complete).
    const int signal = StopSignals::received();
    if (st.stop) {
        save_checkpoint(st);
        log::info(cfg_.stage, ": stopped after ", result.steps_run, " steps (",
                  signal ? "signal" : "--stop-after-steps", "); checkpoint ", cfg_.checkpoint,
                  " saved at epoch ", st.epoch + 1, ", step ", st.step_in_epoch,
                  "; rerun the same command to resume");
        if (world_.any(signal != 0))
            throw par::collective_error(
                world_, cfg_.stage + ": interrupted by a signal; the checkpoint is saved, rerun to resume");
        return result;
    }
    write_output(st, meta);
    result.completed = true;
    return result;
}

void Engine::start_or_resume(State& st, TrainResult& result) {
    auto& im = *impl_;
    par::agree(world_, [&] {
        MIMIC_REQUIRE(net_.local().input_size() == data_.features(), "the data rows have ", data_.features(),
                      " features but the model expects ", net_.local().input_size());
        if (cfg_.epochs < 1) fail("--epochs: must be >= 1, got ", cfg_.epochs);
        if (cfg_.batch < 1) fail("--batch: must be >= 1, got ", cfg_.batch);
        if (cfg_.accumulate < 1) fail("--accumulate: must be >= 1, got ", cfg_.accumulate);
        if (cfg_.bucket_floats < 0) fail("--bucket-mb: must be >= 0");
        if (cfg_.checkpoint_every < 0) fail("--checkpoint-every: must be >= 0, got ", cfg_.checkpoint_every);
        if (cfg_.stop_after_steps < 0) fail("--stop-after-steps: must be >= 0, got ", cfg_.stop_after_steps);
        if (cfg_.early_stop < 0) fail("--early-stop: must be >= 0, got ", cfg_.early_stop);
        im.opt = nn::optim::make_optimizer(cfg_.optimizer, net_.local().num_params());
        // By layer index of the spec: a model shard's local spec keeps the indices (it narrows the wide
        // layer only), so every shard scales its part of the same layers.
        im.opt->set_lr_scales(
            nn::optim::layer_lr_scales(net_.local(), nn::optim::parse_layer_lr(cfg_.layer_lr)));
        im.sched = std::make_unique<nn::Schedule>(cfg_.schedule, cfg_.lr, cfg_.epochs,
                                                  data_.steps_per_epoch(), cfg_.warmup_epochs);
    });
    const std::int64_t rows = data_.max_local_rows(), C = net_.local().output_size(), sw = data_.soft_width();
    im.x = Matrix(Kokkos::view_alloc(Kokkos::WithoutInitializing, "mimic::train::x"), rows, data_.features());
    im.y = IntVector("mimic::train::y", data_.has_labels() ? rows : 0);
    im.soft = Matrix("mimic::train::soft", sw > 0 ? rows : 0, sw);
    im.dlogits = Matrix("mimic::train::dlogits", rows, C);
    im.hx = Kokkos::create_mirror_view(im.x);
    im.hy = Kokkos::create_mirror_view(im.y);
    im.hsoft = Kokkos::create_mirror_view(im.soft);
    if (cfg_.bucket_floats > 0 && replicas_.size() > 1)
        im.buckets = net_.replica_reducer(replicas_, cfg_.bucket_floats);

    if (cfg_.checkpoint.empty() || cfg_.overwrite || !io::file_exists(cfg_.checkpoint)) {
        net_.init(cfg_.seed);
    } else {
        CheckpointState cs;
        par::agree(world_, [&] {
            auto os = im.opt->state();
            cs = read_checkpoint(cfg_.checkpoint, net_, os, identity_, int(epoch_log_columns().size()),
                                 {cfg_.epochs, data_.steps_per_epoch()}, replicas_.rank() == 0, world_);
            im.opt->load_state(os);
            im.sched->load_state(cs.schedule);
        });
        st.epoch = cs.epoch, st.step_in_epoch = cs.step_in_epoch, st.global_step = cs.global_step;
        st.best = cs.best_metric, st.best_epoch = cs.best_epoch, st.bad_epochs = cs.bad_epochs;
        st.loss_sum = cs.sums[0], st.correct = cs.sums[1], st.rows = cs.sums[2], st.seconds = cs.sums[3];
        const size_t w = epoch_log_columns().size();
        for (size_t i = 0; i + w <= cs.history.size(); i += w)
            st.history.push_back(from_row(cs.history.data() + i));
        result.resumed = true;
        im.last_checkpoint =
            detail::concat(cfg_.checkpoint, " (epoch ", st.epoch + 1, ", step ", st.step_in_epoch, ")");
        log::info(cfg_.stage, ": resuming from ", cfg_.checkpoint, " at epoch ", st.epoch + 1, ", step ",
                  st.step_in_epoch, " of ", data_.steps_per_epoch(),
                  cs.ranks != world_.size() || cs.model_shards != net_.shards()
                      ? detail::concat(" (written on ", cs.ranks, " ranks with ", cs.model_shards,
                                       " model shards: the result matches an uninterrupted run up to float "
                                       "summation order)")
                      : std::string());
    }
    if (!cfg_.log_csv.empty())
        par::agree(world_, [&] {
            if (!world_.is_root()) return;
            std::vector<std::vector<double>> rows;
            for (const auto& e : st.history)
                rows.push_back(to_row(e));
            write_csv_rows(cfg_.log_csv, epoch_log_columns(), rows);
        });
}

void Engine::run_epoch(State& st, TrainResult& result) {
    const std::int64_t steps = data_.steps_per_epoch();
    data_.start_epoch(st.epoch, st.step_in_epoch);
    st.t0 = wall_seconds();
    st.rows_at_start = st.rows;
    Progress progress(detail::concat(cfg_.stage, " epoch ", st.epoch + 1, "/", cfg_.epochs), data_.rows(),
                      "samples");
    for (std::int64_t step = st.step_in_epoch; step < steps && !st.stop; ++step) {
        st.stop = train_step(st, step, result);
        progress.update(std::min(data_.rows(), (step + 1) * cfg_.batch * cfg_.accumulate),
                        detail::concat("loss ", st.loss_sum / st.rows));
        if (!st.stop && cfg_.checkpoint_every > 0 && st.global_step % cfg_.checkpoint_every == 0 &&
            step + 1 < steps)
            save_checkpoint(st);
    }
    st.seconds += wall_seconds() - st.t0;
    if (!st.stop) progress.finish();
}

/// Forward, objective and backward of rows [begin, begin + rows) of this rank's slice: adds the gradient of
/// their loss, weighted by their share of the step's global rows, to the gradient buffer, and their loss
/// sum and correct predictions to sums.
void Engine::micro_step(const Slice& sl, std::int64_t begin, std::int64_t rows, std::uint64_t dropout_seed,
                        bool last, double sums[2]) {
    auto& im = *impl_;
    auto& timers = im.timers;
    const auto range = std::make_pair(begin, begin + rows);
    Matrix xs = Kokkos::subview(im.x, range, Kokkos::ALL());
    IntVector ys = data_.has_labels() ? IntVector(Kokkos::subview(im.y, range)) : im.y;
    Matrix ss = data_.soft_width() > 0 ? Matrix(Kokkos::subview(im.soft, range, Kokkos::ALL())) : im.soft;
    Matrix dl = Kokkos::subview(im.dlogits, range, Kokkos::ALL());
    Matrix logits;
    {
        ScopedPhase phase(timers, "forward", "train::forward");
        logits = net_.forward(xs, true, dropout_seed, sl.first + begin);
    }
    {
        ScopedPhase phase(timers, "loss", "train::loss");
        sums[0] += objective_(logits, ys, ss, dl) * double(rows);
        if (data_.has_labels()) sums[1] += double(count_correct(logits, ys));
        // The objective is a mean over these rows: weight it by their share of the step's global rows.
        if (rows != sl.global_rows) scale_rows(dl, rows, float(double(rows) / double(sl.global_rows)));
    }
    ScopedPhase phase(timers, "backward", "train::backward");
    net_.accumulate_grads(dl, last ? im.buckets.get() : nullptr);
}

/// One optimizer step; returns true when a stop was requested on any rank.
bool Engine::train_step(State& st, std::int64_t step, TrainResult& result) {
    auto& im = *impl_;
    auto& timers = im.timers;
    const double lr = im.sched->lr(st.epoch, step);
    Slice sl;
    {
        ScopedPhase phase(timers, "read", "train::read");
        sl = data_.next(step, im.hx.data(), im.hy.data(), im.hsoft.data());
        Kokkos::deep_copy(im.x, im.hx);
        if (data_.has_labels()) Kokkos::deep_copy(im.y, im.hy);
        if (data_.soft_width() > 0) Kokkos::deep_copy(im.soft, im.hsoft);
        data_.augment(im.x, sl); // training-time augmentation, if any (part of the read phase)
    }
    net_.zero_grads();
    // loss sum, correct predictions (when labels are read), stop request of this rank
    const bool want_stop = StopSignals::received() != 0 ||
                           (cfg_.stop_after_steps > 0 && result.steps_run + 1 >= cfg_.stop_after_steps);
    double local[3] = {0.0, 0.0, want_stop ? 1.0 : 0.0};
    // Same seed on every rank, offset by each row's position in the global batch: the dropout masks of a
    // step depend neither on how its rows are split over ranks nor on how they are cut into micro-batches.
    const std::uint64_t dropout_seed = derive_seed(cfg_.seed, 0x44524f50ULL, std::uint64_t(st.global_step));
    // K micro-batches of ceil(rows / K) rows of this rank's slice (the last may be shorter): the same rows
    // and masks as one pass over the slice, with activations for a K-th of it.
    const std::int64_t chunk = (sl.rows + cfg_.accumulate - 1) / cfg_.accumulate;
    if (im.buckets) im.buckets->start(net_.local().grads());
    for (std::int64_t begin = 0; begin < sl.rows; begin += chunk)
        micro_step(sl, begin, std::min(chunk, sl.rows - begin), dropout_seed, begin + chunk >= sl.rows,
                   local);
    // With batch statistics every replica runs cfg_.accumulate passes, so that the statistic reductions
    // match: a replica whose slice gives fewer micro-batches (fewer rows, or none) runs the rest without
    // rows.
    if (net_.local().uses_batch_stats() && replicas_.size() > 1)
        for (std::int64_t k = sl.rows > 0 ? (sl.rows + chunk - 1) / chunk : 0; k < cfg_.accumulate; ++k)
            net_.local().idle_pass();
    if (sl.rows > 0) {
        ScopedPhase phase(timers, "backward", "train::backward");
        net_.finish_grads(im.buckets.get());
    } // a replica without rows in this batch contributes zero gradients
    double global[3] = {0.0, 0.0, 0.0};
    {
        ScopedPhase phase(timers, "allreduce", "train::allreduce");
        if (im.buckets)
            im.buckets->finish(); // waits for the buckets started during backward, starts the rest
        else
            par::allreduce_sum(net_.local().grads(), replicas_);
        std::copy(local, local + 3, global);
        replicas_.allreduce(global, 3, par::ReduceOp::sum);
    }
    const double batch_loss = global[0] / double(sl.global_rows);
    if (!std::isfinite(batch_loss))
        throw par::collective_error(
            world_, detail::concat(cfg_.stage, ": epoch ", st.epoch + 1, ", step ", step + 1, ": loss is ",
                                   std::isnan(batch_loss) ? "nan" : "inf", " (learning rate ", lr,
                                   "); no model written; last good checkpoint: ", im.last_checkpoint));
    {
        ScopedPhase phase(timers, "optimizer", "train::optimizer");
        im.opt->step(net_.local().params(), net_.local().grads(), lr);
    }
    st.loss_sum += global[0];
    st.correct += global[1];
    st.rows += double(sl.global_rows);
    st.step_in_epoch = step + 1;
    ++st.global_step;
    ++result.steps_run;
    result.samples_run += double(sl.global_rows);
    // The stop flag summed over the replicas covers every rank when there is one model shard.
    return world_.size() == replicas_.size() ? global[2] > 0 : world_.any(want_stop);
}

void Engine::end_epoch(State& st, TrainResult& result) {
    auto& im = *impl_;
    data_.pause();
    par::agree(world_,
               [&] { data_.check_rows(false); }); // the first full pass verifies a pending fingerprint
    EpochLog e;
    e.epoch = st.epoch + 1;
    e.lr = im.sched->lr(st.epoch, std::max<std::int64_t>(0, data_.steps_per_epoch() - 1));
    e.seconds = st.seconds;
    e.train_loss = st.loss_sum / std::max(1.0, st.rows);
    e.train_accuracy = data_.has_labels() ? st.correct / std::max(1.0, st.rows) : -1.0;
    e.samples_per_second = (st.rows - st.rows_at_start) / std::max(wall_seconds() - st.t0, 1e-9);
    double metric = e.train_loss;
    if (validator_) {
        ScopedPhase phase(im.timers, "validate", "train::validate");
        const Validation v = validator_(net_);
        e.val_loss = v.loss, e.val_accuracy = v.accuracy, e.val_rmse = v.rmse, e.val_agreement = v.agreement;
        metric = v.metric;
    }
    if (!std::isfinite(metric))
        throw par::collective_error(
            world_, detail::concat(cfg_.stage, ": epoch ", e.epoch, ": ",
                                   validator_ ? "the validation metric" : "the training loss", " is ", metric,
                                   "; no model written; last good checkpoint: ", im.last_checkpoint));
    const bool reduced = im.sched->end_epoch(metric);
    if (st.best_epoch < 0 || metric < st.best) {
        st.best = metric, st.best_epoch = e.epoch, st.bad_epochs = 0;
    } else {
        ++st.bad_epochs;
    }
    st.history.push_back(e);
    log_epoch(e, reduced);
    if (!cfg_.log_csv.empty())
        par::agree(world_, [&] {
            if (world_.is_root()) append_csv(cfg_.log_csv, to_row(e));
        });
    ++st.epoch;
    st.step_in_epoch = 0;
    st.loss_sum = st.correct = st.rows = st.seconds = 0;
    if (cfg_.early_stop > 0 && st.bad_epochs >= cfg_.early_stop) {
        log::info(cfg_.stage, ": no improvement for ", st.bad_epochs, " epochs; stopping early");
        result.stopped_early = true;
        return;
    }
    if (st.epoch < cfg_.epochs) save_checkpoint(st);
}

void Engine::log_epoch(const EpochLog& e, bool lr_reduced) const {
    std::ostringstream line;
    line << "epoch " << e.epoch << "/" << cfg_.epochs << "  lr " << std::setprecision(4) << e.lr << "  loss "
         << std::fixed << std::setprecision(4) << e.train_loss;
    if (e.train_accuracy >= 0) line << "  acc " << percent(e.train_accuracy);
    if (e.val_loss >= 0) line << "  val_loss " << e.val_loss;
    if (e.val_accuracy >= 0) line << "  val_acc " << percent(e.val_accuracy);
    if (e.val_rmse >= 0) line << "  val_rmse " << e.val_rmse << "  val_agree " << percent(e.val_agreement);
    line << "  time " << std::setprecision(1) << e.seconds << "s  " << std::setprecision(0)
         << e.samples_per_second << " samples/s";
    log::info(line.str());
    if (lr_reduced)
        log::info("  no improvement for a while: learning rate now ", impl_->sched->lr(e.epoch, 0));
}

void Engine::save_checkpoint(const State& st) {
    if (cfg_.checkpoint.empty()) return;
    auto& im = *impl_;
    data_.pause();
    ScopedPhase phase(im.timers, "checkpoint", "train::checkpoint");
    CheckpointState cs;
    cs.epoch = st.epoch, cs.step_in_epoch = st.step_in_epoch, cs.global_step = st.global_step;
    cs.best_metric = st.best, cs.best_epoch = st.best_epoch, cs.bad_epochs = st.bad_epochs;
    cs.sums = {st.loss_sum, st.correct, st.rows, st.seconds};
    cs.schedule = im.sched->state();
    cs.history_width = int(epoch_log_columns().size());
    for (const auto& e : st.history)
        for (double v : to_row(e))
            cs.history.push_back(v);
    cs.ranks = world_.size();
    cs.model_shards = net_.shards();
    io::ModelMeta meta = im.meta;
    meta.epochs = st.epoch;
    par::agree(world_, [&] {
        write_checkpoint(cfg_.checkpoint, net_, meta, im.opt->state(), cs, identity_, replicas_.rank() == 0,
                         world_);
    });
    im.last_checkpoint =
        detail::concat(cfg_.checkpoint, " (epoch ", st.epoch + 1, ", step ", st.step_in_epoch, ")");
}

void Engine::write_output(const State& st, io::ModelMeta meta) {
    if (cfg_.out.empty()) return;
    data_.pause();
    par::agree(world_, [&] { data_.check_rows(true); }); // every row verified before the model is written
    ScopedPhase phase(impl_->timers, "save", "train::save");
    meta.epochs = std::min(st.epoch, cfg_.epochs);
    meta.val_accuracy = st.history.empty() ? -1.0 : st.history.back().val_accuracy;
    par::agree(world_, [&] {
        const std::string partial = cfg_.out + ".partial";
        auto f = h5::File::create(partial, world_);
        par::write_sharded_model(f, net_, meta, replicas_.rank() == 0, world_);
        identity_.write(f);
        f.close();
        if (world_.rank() == 0) io::rename_file(partial, cfg_.out);
    });
    if (!cfg_.keep_checkpoint && !cfg_.checkpoint.empty())
        par::agree(world_, [&] {
            if (world_.is_root()) io::remove_file(cfg_.checkpoint);
        });
}

} // namespace mimic::train
