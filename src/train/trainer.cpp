// The training loop: per step read -> forward -> loss -> backward -> one gradient allreduce -> optimizer;
// per epoch validation, schedule, log line, CSV row and checkpoint; resume from a checkpoint file.
#include "mimic/train/trainer.hpp"

#include "mimic/core/error.hpp"
#include "mimic/core/log.hpp"
#include "mimic/core/progress.hpp"
#include "mimic/core/rng.hpp"
#include "mimic/core/timer.hpp"
#include "mimic/io/checkpoint.hpp"
#include "mimic/nn/loss.hpp"
#include "mimic/nn/schedule.hpp"
#include "mimic/train/evaluate.hpp"

#include <climits>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <sstream>

namespace mimic::train {

namespace {

const std::vector<std::string> kColumns = {"epoch",    "lr",      "train_loss", "train_acc",
                                           "val_loss", "val_acc", "seconds",    "samples_per_s"};

std::vector<double> to_row(const EpochLog& e) {
    return {double(e.epoch), e.lr,           e.train_loss, e.train_accuracy,
            e.val_loss,      e.val_accuracy, e.seconds,    e.samples_per_second};
}

EpochLog from_row(const std::vector<double>& r) {
    EpochLog e;
    e.epoch = int(r.at(0)), e.lr = r.at(1), e.train_loss = r.at(2), e.train_accuracy = r.at(3);
    e.val_loss = r.at(4), e.val_accuracy = r.at(5), e.seconds = r.at(6), e.samples_per_second = r.at(7);
    return e;
}

std::string csv_line(const EpochLog& e) {
    std::ostringstream os;
    os << std::setprecision(8) << e.epoch << "," << e.lr << "," << e.train_loss << "," << e.train_accuracy
       << "," << e.val_loss << "," << e.val_accuracy << "," << e.seconds << "," << e.samples_per_second;
    return os.str();
}

/// Rewrites the CSV log with the epochs finished so far (drops rows of epochs a resumed run redoes).
void write_csv(const std::string& path, const std::vector<EpochLog>& history) {
    const std::string partial = path + ".partial";
    {
        std::ofstream out(partial, std::ios::trunc);
        if (!out) fail("--log-csv: cannot write '", path, "'");
        for (size_t i = 0; i < kColumns.size(); ++i)
            out << (i ? "," : "") << kColumns[i];
        out << "\n";
        for (const auto& e : history)
            out << csv_line(e) << "\n";
        if (!out) fail("--log-csv: writing '", path, "' failed");
    }
    io::rename_file(partial, path);
}

void append_csv(const std::string& path, const EpochLog& e) {
    std::ofstream out(path, std::ios::app);
    out << csv_line(e) << "\n";
    if (!out) fail("--log-csv: appending to '", path, "' failed");
}

/// The first key whose value differs between two "key=value" line sets, as a readable message.
std::string first_difference(const std::string& want, const std::string& have) {
    auto parse = [](const std::string& s) {
        std::vector<std::pair<std::string, std::string>> kv;
        std::istringstream in(s);
        std::string line;
        while (std::getline(in, line)) {
            const auto eq = line.find('=');
            kv.emplace_back(line.substr(0, eq), eq == std::string::npos ? "" : line.substr(eq + 1));
        }
        return kv;
    };
    const auto a = parse(want), b = parse(have);
    for (const auto& [k, v] : a) {
        std::string other = "<absent>";
        for (const auto& [k2, v2] : b)
            if (k2 == k) other = v2;
        if (other != v)
            return detail::concat(k, " is '", other, "' in the checkpoint but '", v, "' in this run");
    }
    for (const auto& [k, v] : b) {
        bool found = false;
        for (const auto& [k2, v2] : a)
            found = found || k2 == k;
        if (!found)
            return detail::concat("the checkpoint has ", k, "='", v, "', which this run does not set");
    }
    return "";
}

std::string percent(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f%%", 100.0 * v);
    return buf;
}

} // namespace

Loss cross_entropy_loss() {
    return Loss{"ce", [](const Matrix& logits, const IntVector& labels, const Matrix&,
                         const Matrix& dlogits) { return nn::cross_entropy(logits, labels, dlogits); }};
}

void allreduce_gradients(const Vector& grads, float scale, const par::Comm& comm) {
    const std::int64_t n = grads.extent(0);
    if (scale != 1.0f) {
        auto g = grads;
        Kokkos::parallel_for(
            "mimic::train::scale_grads", RangePolicy(0, n),
            KOKKOS_LAMBDA(const std::int64_t i) { g(i) *= scale; });
    }
    if (comm.size() == 1 || n == 0) return;
    auto h = Kokkos::create_mirror_view(grads);
    Kokkos::deep_copy(h, grads);
    // One allreduce for any model below 2^31 parameters; larger buffers go in 2^30-float pieces.
    for (std::int64_t off = 0; off < n; off += (std::int64_t(1) << 30)) {
        const int count = int(std::min<std::int64_t>(n - off, std::int64_t(1) << 30));
        MIMIC_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, h.data() + off, count, MPI_FLOAT, MPI_SUM, comm.get()));
    }
    Kokkos::deep_copy(grads, h);
}

Trainer::Trainer(const TrainConfig& cfg, TrainSource& data, Loss loss, const par::Comm& comm)
    : cfg_(cfg), data_(data), loss_(std::move(loss)), comm_(comm) {}

std::string Trainer::resume_key(const Model& model) const {
    const auto in = model.input_shape();
    const auto& o = cfg_.optimizer;
    std::ostringstream os;
    os << std::setprecision(17);
    os << "spec=" << model.spec() << "\ninput=" << in.c << "x" << in.h << "x" << in.w
       << "\ndata=" << data_.describe() << "\ndata_fingerprint=" << data_.fingerprint()
       << "\nrows=" << data_.rows() << "\nloss=" << loss_.name << "\nepochs=" << cfg_.epochs
       << "\nbatch=" << cfg_.batch << "\nseed=" << cfg_.seed << "\nlr=" << cfg_.lr
       << "\nschedule=" << cfg_.schedule << "\nwarmup=" << cfg_.warmup_epochs << "\noptimizer=" << o.kind
       << "\nmomentum=" << o.momentum << "\nweight_decay=" << o.weight_decay << "\nbeta1=" << o.beta1
       << "\nbeta2=" << o.beta2 << "\neps=" << o.eps << "\nshuffle_block=" << cfg_.shuffle_block
       << "\nshuffle_window=" << cfg_.shuffle_window;
    if (!identity_.empty()) os << "\n" << identity_;
    return os.str();
}

TrainResult Trainer::run(Model& model, io::ModelMeta meta) {
    TrainResult result;
    PhaseTimers timers;
    std::unique_ptr<BatchLoader> loader_ptr;
    std::unique_ptr<nn::Schedule> sched_ptr;
    std::unique_ptr<nn::optim::Optimizer> opt;
    // Validation of the configuration: every rank reaches the same verdict and they leave together.
    par::agree(comm_, [&] {
        MIMIC_REQUIRE(model.input_size() == data_.features(), data_.describe(), ": rows have ",
                      data_.features(), " features but the model expects ", model.input_size());
        if (cfg_.epochs < 1) fail("--epochs: must be >= 1, got ", cfg_.epochs);
        if (cfg_.checkpoint_every < 0) fail("--checkpoint-every: must be >= 0, got ", cfg_.checkpoint_every);
        loader_ptr =
            std::make_unique<BatchLoader>(data_, cfg_.batch, cfg_.shuffle_block, cfg_.shuffle_window, comm_);
        sched_ptr = std::make_unique<nn::Schedule>(cfg_.schedule, cfg_.lr, cfg_.epochs,
                                                   loader_ptr->steps_per_epoch(), cfg_.warmup_epochs);
        opt = nn::optim::make_optimizer(cfg_.optimizer, model.num_params());
    });
    BatchLoader& loader = *loader_ptr;
    nn::Schedule& sched = *sched_ptr;
    const std::int64_t steps = loader.steps_per_epoch();
    meta.loss = loss_.name;
    meta.seed = cfg_.seed;
    meta.data_fingerprint = data_.fingerprint();
    const std::string key = resume_key(model);

    io::TrainState st;
    st.seed = cfg_.seed;
    st.history_columns = kColumns;
    std::vector<EpochLog> history;
    if (!cfg_.checkpoint.empty() && io::file_exists(cfg_.checkpoint)) {
        par::agree(comm_, [&] {
            io::ModelMeta cmeta;
            Model saved = io::load_checkpoint(cfg_.checkpoint, &cmeta, &st);
            if (st.config != key)
                fail(cfg_.checkpoint, ": this checkpoint belongs to a different run (",
                     first_difference(key, st.config),
                     "); delete it to start afresh, or pass another --checkpoint");
            if (st.history_columns != kColumns) fail(cfg_.checkpoint, ": unexpected history columns");
            Kokkos::deep_copy(model.params(), saved.params());
            opt->load_state(st.optimizer);
            sched.load_state(st.schedule);
            meta.val_accuracy = cmeta.val_accuracy;
        });
        for (const auto& r : st.history)
            history.push_back(from_row(r));
        result.resumed = true;
        log::info("resuming from checkpoint ", cfg_.checkpoint, ": epoch ", st.epoch + 1, ", step ",
                  st.step_in_epoch, " of ", steps, " (", st.global_step, " steps done",
                  st.ranks != comm_.size()
                      ? detail::concat("; written by ", st.ranks,
                                       " ranks, so the result matches an uninterrupted run "
                                       "only up to float summation order")
                      : std::string(),
                  ")");
    }
    if (!cfg_.log_csv.empty())
        par::agree(comm_, [&] {
            if (comm_.is_root()) write_csv(cfg_.log_csv, history);
        });

    auto save_checkpoint = [&](int epoch, std::int64_t step_in_epoch, std::int64_t global_step,
                               const std::vector<double>& accum) {
        if (cfg_.checkpoint.empty()) return;
        ScopedPhase phase(timers, "checkpoint", "train::checkpoint");
        par::agree(comm_, [&] {
            if (!comm_.is_root()) return;
            st.epoch = epoch;
            st.step_in_epoch = step_in_epoch;
            st.global_step = global_step;
            st.optimizer = opt->state();
            st.schedule = sched.state();
            st.epoch_accum = accum;
            st.history.clear();
            for (const auto& e : history)
                st.history.push_back(to_row(e));
            st.config = key;
            st.ranks = comm_.size();
            io::ModelMeta m = meta;
            m.epochs = epoch;
            io::save_checkpoint(cfg_.checkpoint, model, m, st);
        });
    };

    // Device buffers for this rank's slice of a batch, with host mirrors the loader fills.
    const std::int64_t rows_max = loader.max_local_rows(), d = data_.features(), C = model.output_size();
    const std::int64_t sw = data_.soft_width();
    Matrix x(Kokkos::view_alloc(Kokkos::WithoutInitializing, "mimic::train::x"), rows_max, d);
    IntVector y("mimic::train::y", data_.has_labels() ? rows_max : 0);
    Matrix soft("mimic::train::soft", sw > 0 ? rows_max : 0, sw);
    Matrix dlogits("mimic::train::dlogits", rows_max, C);
    auto hx = Kokkos::create_mirror_view(x);
    auto hy = Kokkos::create_mirror_view(y);
    auto hsoft = Kokkos::create_mirror_view(soft);

    std::int64_t global_step = st.global_step;
    const double start = wall_seconds();
    for (int epoch = st.epoch; epoch < cfg_.epochs; ++epoch) {
        const bool resuming_here = epoch == st.epoch && st.step_in_epoch > 0;
        const std::int64_t first_step = resuming_here ? st.step_in_epoch : 0;
        // loss sum, correct, samples, seconds of this epoch so far
        std::vector<double> acc =
            resuming_here && st.epoch_accum.size() == 4 ? st.epoch_accum : std::vector<double>(4, 0.0);
        loader.start_epoch(cfg_.seed, epoch);
        const double t0 = wall_seconds();
        double lr = sched.lr(epoch, first_step);
        Progress progress(detail::concat("epoch ", epoch + 1, "/", cfg_.epochs), data_.rows(), "samples");
        for (std::int64_t step = first_step; step < steps; ++step) {
            if (cfg_.stop_after_steps > 0 && result.steps_run >= cfg_.stop_after_steps) {
                log::info("stopping after ", result.steps_run,
                          " steps as asked (--stop-after-steps); no model written");
                result.train_seconds = wall_seconds() - start;
                result.history = history;
                return result;
            }
            lr = sched.lr(epoch, step);
            BatchLoader::Slice sl;
            {
                ScopedPhase phase(timers, "read", "train::read");
                sl = loader.load(step, hx.data(), data_.has_labels() ? hy.data() : nullptr,
                                 sw > 0 ? hsoft.data() : nullptr);
                Kokkos::deep_copy(x, hx);
                if (data_.has_labels()) Kokkos::deep_copy(y, hy);
                if (sw > 0) Kokkos::deep_copy(soft, hsoft);
            }
            model.zero_grads();
            double local[2] = {0.0, 0.0};
            if (sl.rows > 0) {
                const std::pair<std::int64_t, std::int64_t> rows(0, sl.rows);
                Matrix xs = Kokkos::subview(x, rows, Kokkos::ALL());
                IntVector ys = data_.has_labels() ? IntVector(Kokkos::subview(y, rows)) : y;
                Matrix ss = sw > 0 ? Matrix(Kokkos::subview(soft, rows, Kokkos::ALL())) : soft;
                Matrix dl = Kokkos::subview(dlogits, rows, Kokkos::ALL());
                Matrix logits;
                {
                    ScopedPhase phase(timers, "forward", "train::forward");
                    // Same seed on every rank, offset by the slice's first row: the dropout masks of a
                    // global batch do not depend on how it is split over ranks.
                    logits = model.forward(xs, true,
                                           derive_seed(cfg_.seed, 0x44524f50ULL, std::uint64_t(global_step)),
                                           sl.first);
                }
                {
                    ScopedPhase phase(timers, "loss", "train::loss");
                    local[0] = loss_.fn(logits, ys, ss, dl) * double(sl.rows);
                    if (data_.has_labels()) local[1] = double(count_correct(logits, ys));
                }
                {
                    ScopedPhase phase(timers, "backward", "train::backward");
                    model.backward(dl);
                }
            }
            double global[2] = {0.0, 0.0};
            {
                ScopedPhase phase(timers, "allreduce", "train::allreduce");
                allreduce_gradients(model.grads(), float(double(sl.rows) / double(sl.global_rows)), comm_);
                MIMIC_MPI_CHECK(MPI_Allreduce(local, global, 2, MPI_DOUBLE, MPI_SUM, comm_.get()));
            }
            const double batch_loss = global[0] / double(sl.global_rows);
            if (!std::isfinite(batch_loss))
                throw CollectiveError(detail::concat("epoch ", epoch + 1, ", step ", step + 1, ": loss is ",
                                                     std::isnan(batch_loss) ? "nan" : "inf",
                                                     " (learning rate ", lr,
                                                     "); stopping without writing a model"));
            {
                ScopedPhase phase(timers, "optimizer", "train::optimizer");
                opt->step(model.params(), model.grads(), lr);
            }
            ++global_step;
            ++result.steps_run;
            acc[0] += global[0];
            acc[1] += global[1];
            acc[2] += double(sl.global_rows);
            progress.update((step + 1) * cfg_.batch > data_.rows() ? data_.rows() : (step + 1) * cfg_.batch,
                            detail::concat("loss ", acc[0] / acc[2]));
            if (cfg_.checkpoint_every > 0 && global_step % cfg_.checkpoint_every == 0 && step + 1 < steps) {
                std::vector<double> a = acc;
                a[3] += wall_seconds() - t0;
                save_checkpoint(epoch, step + 1, global_step, a);
            }
        }
        progress.finish();
        EpochLog e;
        e.epoch = epoch + 1;
        e.lr = lr;
        e.seconds = acc[3] + (wall_seconds() - t0);
        e.train_loss = acc[0] / acc[2];
        e.train_accuracy = data_.has_labels() ? acc[1] / acc[2] : -1.0;
        e.samples_per_second = acc[2] / std::max(e.seconds, 1e-9);
        double metric = e.train_loss;
        if (validator_) {
            ScopedPhase phase(timers, "validate", "train::validate");
            const Validation v = validator_(model);
            e.val_loss = v.loss;
            e.val_accuracy = v.accuracy;
            metric = v.loss;
            meta.val_accuracy = v.accuracy;
        }
        if (!std::isfinite(metric))
            throw CollectiveError(
                detail::concat("epoch ", epoch + 1, ": ", validator_ ? "validation" : "training", " loss is ",
                               std::isnan(metric) ? "nan" : "inf", "; stopping without writing a model"));
        if (st.best_epoch < 0 || metric < st.best_metric) {
            st.best_metric = metric;
            st.best_epoch = epoch + 1;
        }
        const bool reduced = sched.end_epoch(metric);
        history.push_back(e);
        std::ostringstream line;
        line << "epoch " << e.epoch << "/" << cfg_.epochs << "  lr " << std::setprecision(4) << e.lr
             << "  loss " << std::fixed << std::setprecision(4) << e.train_loss;
        if (e.train_accuracy >= 0) line << "  acc " << percent(e.train_accuracy);
        if (validator_) line << "  val_loss " << e.val_loss << "  val_acc " << percent(e.val_accuracy);
        line << "  time " << std::setprecision(1) << e.seconds << "s  " << std::setprecision(0)
             << e.samples_per_second << " samples/s";
        log::info(line.str());
        if (reduced) log::info("  no improvement for a while: learning rate now ", sched.lr(epoch + 1, 0));
        if (!cfg_.log_csv.empty())
            par::agree(comm_, [&] {
                if (comm_.is_root()) append_csv(cfg_.log_csv, e);
            });
        save_checkpoint(epoch + 1, 0, global_step, {});
    }
    result.completed = true;
    result.history = history;
    result.train_seconds = wall_seconds() - start;
    timers.report(comm_, "training timings");
    return result;
}

} // namespace mimic::train
