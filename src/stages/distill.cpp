// `mimic distill`: the student-training stage. Ranks form R data replicas x M model shards; every step
// the replicas split a global batch of shuffled transfer rows, the model group computes full logits
// with one allreduce, the loss compares them with the ensemble's logits, and the gradients are summed
// over replicas. Blocks are prefetched on an I/O thread; checkpoints are layout-independent.
#include "mimic/stages/distill.hpp"

#include "mimic/core/kokkos.hpp"
#include "mimic/core/log.hpp"
#include "mimic/core/progress.hpp"
#include "mimic/core/rng.hpp"
#include "mimic/core/stop_signal.hpp"
#include "mimic/core/timer.hpp"
#include "mimic/io/dataset.hpp"
#include "mimic/io/logits_file.hpp"
#include "mimic/nn/loss.hpp"
#include "mimic/nn/optim/optimizer.hpp"
#include "mimic/nn/schedule.hpp"
#include "mimic/parallel/grid.hpp"
#include "mimic/parallel/reduce.hpp"
#include "mimic/parallel/sharded_model.hpp"
#include "mimic/parallel/sharded_model_file.hpp"

#include <cmath>
#include <cstring>
#include <future>
#include <numeric>
#include <optional>
#include <sstream>

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
        ("log-csv", po::value(&o.log_csv), "per-epoch CSV log")
        ("timings-csv", po::value(&o.timings_csv), "append per-phase min/avg/max timings to this CSV file")
        ("model-shards", po::value(&o.model_shards)->default_value(o.model_shards), "M: ranks that split the wide layer; data replicas R = ranks / M")
        ("epochs", po::value(&o.epochs)->default_value(o.epochs), "epochs over the transfer set")
        ("batch", po::value(&o.batch)->default_value(o.batch), "global batch size (split over the replicas)")
        ("lr", po::value(&o.lr)->default_value(o.lr), "learning rate")
        ("optimizer", po::value(&o.optimizer)->default_value(o.optimizer), "sgd | nesterov | adam | adamw")
        ("momentum", po::value(&o.momentum)->default_value(o.momentum), "momentum (sgd, nesterov)")
        ("weight-decay", po::value(&o.weight_decay)->default_value(o.weight_decay), "weight decay")
        ("schedule", po::value(&o.schedule)->default_value(o.schedule), "constant | step:E[,G] | cosine[:MIN] | plateau:P[,F[,MIN]] (halve after P epochs without improvement)")
        ("early-stop", po::value(&o.early_stop)->default_value(o.early_stop), "stop after this many epochs without improvement (0: never)")
        ("seed", po::value(&o.seed)->default_value(o.seed), "seed for initialisation, shuffling and dropout")
        ("block-rows", po::value(&o.block_rows)->default_value(o.block_rows), "rows per shuffled read block (memory per rank is bounded by it)")
        ("checkpoint-every", po::value(&o.checkpoint_every)->default_value(o.checkpoint_every), "also checkpoint every N steps (0: at the end of each epoch only)")
        ("stop-after-steps", po::value(&o.stop_after_steps)->default_value(o.stop_after_steps), "checkpoint and stop after N steps of this run (testing and time-boxed jobs)")
        ("overwrite", po::bool_switch(&o.overwrite), "ignore an existing checkpoint or output and start over");
}
// clang-format on

namespace {

struct LossSpec {
    std::string kind; // mimic | kd | ce
    float T = 1, alpha = 1;
};

LossSpec parse_loss(const std::string& s) {
    LossSpec l;
    if (s == "mimic" || s == "ce") {
        l.kind = s;
        return l;
    }
    if (s.rfind("kd:", 0) == 0) {
        l.kind = "kd";
        std::string rest = s.substr(3);
        const auto comma = rest.find(',');
        try {
            l.T = std::stof(rest.substr(0, comma));
            if (comma != std::string::npos) l.alpha = std::stof(rest.substr(comma + 1));
        } catch (const std::exception&) {
            fail("--loss: '", s, "' is not kd:T[,alpha] with numbers T > 0 and 0 <= alpha <= 1");
        }
        if (!(l.T > 0) || !(l.alpha >= 0 && l.alpha <= 1))
            fail("--loss: '", s, "' needs T > 0 and 0 <= alpha <= 1");
        return l;
    }
    fail("--loss: '", s, "' is not mimic, kd:T[,alpha] or ce");
}

/// A block of transfer rows with their teacher logits (and labels when the loss needs them).
struct Block {
    std::int64_t id = -1, row0 = 0, n = 0;
    std::vector<float> X, T;
    std::vector<int> y;
};

/// Everything needed to (re)start training: the data cursor and optimiser/schedule state.
struct State {
    int epoch = 0;
    std::int64_t step_in_epoch = 0, global_step = 0;
    double best = 0;
    int best_epoch = -1, bad_epochs = 0;
    double epoch_loss = 0, epoch_rows = 0;
};

std::string config_string(const DistillOptions& o, const std::string& tfp, const std::string& lfp) {
    std::ostringstream os;
    os << "arch=" << o.arch << "\nloss=" << o.loss << "\nbatch=" << o.batch << "\nseed=" << o.seed
       << "\nblock_rows=" << o.block_rows << "\noptimizer=" << o.optimizer << "\nlr=" << o.lr
       << "\nschedule=" << o.schedule << "\nepochs=" << o.epochs << "\ntransfer=" << tfp
       << "\nlogits=" << lfp;
    return os.str();
}

} // namespace

void run(const DistillOptions& o, const par::Comm& world) {
    PhaseTimers timers;
    const double t_start = wall_seconds();
    const std::string ckpt = o.checkpoint.empty() ? o.out + ".ckpt" : o.checkpoint;
    LossSpec loss;

    // --- options and inputs ---------------------------------------------------------------------
    par::agree(world, [&] {
        loss = parse_loss(o.loss);
        if (o.model_shards < 1 || world.size() % o.model_shards != 0)
            fail("--model-shards: ", o.model_shards, " does not divide the number of ranks (", world.size(),
                 ")");
        if (o.batch < 1) fail("--batch: must be >= 1");
        if (o.block_rows < 1) fail("--block-rows: must be >= 1");
        if (o.epochs < 1) fail("--epochs: must be >= 1");
        if (!o.val_logits.empty() && o.val.empty()) fail("--val-logits needs --val");
    });
    // A duplicate communicator for the prefetch thread's collective reads.
    MPI_Comm dup;
    MIMIC_MPI_CHECK(MPI_Comm_dup(world.get(), &dup));
    par::Comm io_comm(dup, true);
    int thread_level = MPI_THREAD_SINGLE;
    MPI_Query_thread(&thread_level);
    const bool prefetch = thread_level >= MPI_THREAD_MULTIPLE || world.size() == 1;

    std::unique_ptr<io::DatasetReader> transfer, val;
    h5::File lfile, vlfile;
    h5::Handle ldset, vldset;
    io::LogitsMeta lm, vlm;
    par::agree(world, [&] {
        transfer = std::make_unique<io::DatasetReader>(o.transfer, io_comm);
        lfile = h5::File::open(o.logits, world.size() > 1 ? io_comm.get() : MPI_COMM_NULL);
        lm = io::read_logits_meta(lfile);
        io::check_logits_match(o.logits, lm, o.transfer, transfer->meta());
        ldset = h5::open_dataset(lfile, "/logits");
        if (loss.kind == "ce" || (loss.kind == "kd" && loss.alpha < 1))
            if (!transfer->meta().has_labels)
                fail("--loss ", o.loss, " needs hard labels but ", o.transfer, " has no /y");
        if (!o.val.empty()) {
            val = std::make_unique<io::DatasetReader>(o.val, world);
            if (!val->meta().has_labels) fail(o.val, ": the validation set has no labels (/y)");
            if (val->meta().d != transfer->meta().d)
                fail(o.val, ": rows have D = ", val->meta().d,
                     " but the transfer set has D = ", transfer->meta().d);
        }
        if (!o.val_logits.empty()) {
            vlfile = h5::File::open(o.val_logits, world.size() > 1 ? world.get() : MPI_COMM_NULL);
            vlm = io::read_logits_meta(vlfile);
            io::check_logits_match(o.val_logits, vlm, o.val, val->meta());
            vldset = h5::open_dataset(vlfile, "/logits");
        }
    });
    const auto& tm = transfer->meta();
    const std::int64_t N = tm.n, D = tm.d, C = lm.num_classes;

    // --- grid and student -----------------------------------------------------------------------
    par::Grid grid(world, o.model_shards);
    const int R = grid.outer(), replica = grid.outer_index();
    const auto& model_comm = grid.inner_comm();
    const auto& replica_comm = grid.outer_comm();
    std::unique_ptr<par::ShardedModel> student;
    par::agree(world, [&] {
        student = std::make_unique<par::ShardedModel>(o.arch, nn::Shape{tm.c, tm.h, tm.w}, model_comm);
        if (student->local().output_size() != C)
            fail("--arch: the student has ", student->local().output_size(), " outputs but ", o.logits,
                 " has C = ", C, " classes; end the spec with dense:", C);
    });
    nn::Model& net = student->local();
    nn::optim::OptimizerConfig ocfg;
    ocfg.kind = o.optimizer;
    ocfg.momentum = o.momentum;
    ocfg.weight_decay = o.weight_decay;
    std::unique_ptr<nn::optim::Optimizer> opt;
    par::agree(world, [&] { opt = nn::optim::make_optimizer(ocfg, net.num_params()); });

    // The epoch plan: blocks in a seeded order, rows shuffled within each block, global batches.
    const std::int64_t num_blocks = (N + o.block_rows - 1) / o.block_rows;
    auto block_rows = [&](std::int64_t b) { return std::min(o.block_rows, N - b * o.block_rows); };
    auto batches_in = [&](std::int64_t b) { return (block_rows(b) + o.batch - 1) / o.batch; };
    std::int64_t steps_per_epoch = 0;
    for (std::int64_t b = 0; b < num_blocks; ++b)
        steps_per_epoch += batches_in(b);
    auto block_order = [&](int epoch) {
        std::vector<std::int64_t> p(static_cast<size_t>(num_blocks));
        std::iota(p.begin(), p.end(), 0);
        CounterRng r(derive_seed(o.seed, 0xB10C, std::uint64_t(epoch)));
        for (std::int64_t i = num_blocks - 1; i > 0; --i)
            std::swap(p[size_t(i)], p[size_t(r.below(std::uint64_t(i + 1)))]);
        return p;
    };
    auto row_order = [&](int epoch, std::int64_t b) {
        std::vector<std::int64_t> p(size_t(block_rows(b)));
        std::iota(p.begin(), p.end(), 0);
        CounterRng r(derive_seed(o.seed, 0x5107 + std::uint64_t(epoch), std::uint64_t(b)));
        for (std::int64_t i = std::int64_t(p.size()) - 1; i > 0; --i)
            std::swap(p[size_t(i)], p[size_t(r.below(std::uint64_t(i + 1)))]);
        return p;
    };
    nn::Schedule schedule(o.schedule, o.lr, o.epochs, steps_per_epoch);

    // --- resume or start --------------------------------------------------------------------------
    State st;
    const std::string config = config_string(o, tm.fingerprint, lm.ensemble_checksum);
    bool finished = false;
    par::agree(world, [&] {
        if (o.overwrite || !io::file_exists(ckpt)) {
            student->init(o.seed);
            return;
        }
        auto f = h5::File::open(ckpt, world.size() > 1 ? world.get() : MPI_COMM_NULL);
        const std::string have = h5::read_attr_string(f.id(), "config");
        if (have != config)
            fail(ckpt, ": the checkpoint belongs to a different run (its settings or inputs differ); pass "
                       "--overwrite "
                       "to start over or choose another --checkpoint");
        par::read_sharded_weights(f, *student);
        nn::optim::OptimizerState os;
        os.kind = h5::read_attr_string(f.id(), "optimizer");
        os.step = h5::read_attr_int(f.id(), "optimizer_step");
        for (const auto& name : opt->state().names) {
            os.names.push_back(name);
            os.values.push_back(par::read_sharded_flat(f, "/checkpoint/optimizer/" + name, *student));
        }
        opt->load_state(os);
        schedule.load_state(h5::read_attr_doubles(f.id(), "schedule"));
        st.epoch = int(h5::read_attr_int(f.id(), "epoch"));
        st.step_in_epoch = h5::read_attr_int(f.id(), "step_in_epoch");
        st.global_step = h5::read_attr_int(f.id(), "global_step");
        st.best = h5::read_attr_double(f.id(), "best_metric");
        st.best_epoch = int(h5::read_attr_int(f.id(), "best_epoch"));
        st.bad_epochs = int(h5::read_attr_int(f.id(), "bad_epochs"));
        st.epoch_loss = h5::read_attr_double(f.id(), "epoch_loss");
        st.epoch_rows = h5::read_attr_double(f.id(), "epoch_rows");
        finished = h5::read_attr_int(f.id(), "finished") != 0;
    });
    if (finished && io::file_exists(o.out)) {
        log::info("distill: ", o.out, " is already trained (checkpoint ", ckpt,
                  " is finished); nothing to do");
        return;
    }

    const bool writer = replica == 0;
    auto save = [&](const std::string& path, bool with_state, bool done) {
        ScopedPhase p(timers, "checkpoint", "distill::checkpoint");
        par::agree(world, [&] {
            const std::string partial = path + ".partial";
            auto f = h5::File::create(partial, world.size() > 1 ? world.get() : MPI_COMM_NULL);
            io::ModelMeta meta;
            meta.loss = o.loss;
            meta.epochs = st.epoch;
            meta.seed = o.seed;
            meta.data_fingerprint = tm.fingerprint;
            meta.val_accuracy = -1;
            par::write_sharded_model(f, *student, meta, writer, world);
            if (with_state) {
                const auto os = opt->state();
                for (size_t i = 0; i < os.names.size(); ++i)
                    par::write_sharded_flat(f, "/checkpoint/optimizer/" + os.names[i], *student, os.values[i],
                                            writer);
                const hid_t r = f.id();
                h5::write_attr(r, "config", config);
                h5::write_attr(r, "optimizer", os.kind);
                h5::write_attr(r, "optimizer_step", (long long)os.step);
                h5::write_attr(r, "schedule", schedule.state());
                h5::write_attr(r, "epoch", (long long)st.epoch);
                h5::write_attr(r, "step_in_epoch", (long long)st.step_in_epoch);
                h5::write_attr(r, "global_step", (long long)st.global_step);
                h5::write_attr(r, "best_metric", st.best);
                h5::write_attr(r, "best_epoch", (long long)st.best_epoch);
                h5::write_attr(r, "bad_epochs", (long long)st.bad_epochs);
                h5::write_attr(r, "epoch_loss", st.epoch_loss);
                h5::write_attr(r, "epoch_rows", st.epoch_rows);
                h5::write_attr(r, "finished", (long long)done);
                h5::write_attr(r, "replicas", (long long)R);
                h5::write_attr(r, "model_shards", (long long)o.model_shards);
            }
            f.close();
            if (world.rank() == 0) io::rename_file(partial, path);
        });
    };

    log::info("distill: ", N, " transfer rows x C = ", C, ", grid ", R, " replica", R == 1 ? "" : "s", " x ",
              o.model_shards, " model shard", o.model_shards == 1 ? "" : "s", "; ", student->describe());
    log::info("distill: student '", o.arch, "', ", student->full_num_params(), " parameters, ",
              net.flops_per_sample() / 1e6, " MFLOP/sample forward (this shard); loss ", o.loss, ", ",
              opt->describe(), ", ", schedule.describe(), "; ", steps_per_epoch, " steps/epoch",
              prefetch ? "" : " (no prefetch: MPI lacks MPI_THREAD_MULTIPLE)");
    if (st.epoch > 0 || st.step_in_epoch > 0)
        log::info("distill: resuming from ", ckpt, " at epoch ", st.epoch + 1, ", step ", st.step_in_epoch);

    // --- reading ----------------------------------------------------------------------------------
    const bool need_labels = loss.kind == "ce" || (loss.kind == "kd" && loss.alpha < 1);
    auto read_block = [&](std::int64_t b) {
        Block blk;
        blk.id = b;
        blk.row0 = b * o.block_rows;
        blk.n = block_rows(b);
        blk.X.resize(size_t(blk.n * D));
        blk.T.resize(size_t(blk.n * C));
        if (need_labels) blk.y.resize(size_t(blk.n));
        transfer->read(blk.row0, blk.n, blk.X.data(), need_labels ? blk.y.data() : nullptr);
        io::read_logits_rows(lfile, ldset, lm, blk.row0, blk.n, blk.T.data());
        return blk;
    };

    // --- evaluation on the validation set (all ranks; replicas split the rows) ---------------------
    struct ValStats {
        double acc = -1, rmse = -1, agree = -1, loss = 0;
    };
    Matrix xb(Kokkos::view_alloc(Kokkos::WithoutInitializing, "mimic::distill::x"), size_t(o.batch),
              size_t(D));
    Matrix tb(Kokkos::view_alloc(Kokkos::WithoutInitializing, "mimic::distill::t"), size_t(o.batch),
              size_t(C));
    Matrix db(Kokkos::view_alloc(Kokkos::WithoutInitializing, "mimic::distill::dlogits"), size_t(o.batch),
              size_t(C));
    IntVector yb("mimic::distill::y", size_t(o.batch));
    auto xh = Kokkos::create_mirror_view(xb);
    auto th = Kokkos::create_mirror_view(tb);
    auto yh = Kokkos::create_mirror_view(yb);
    auto evaluate = [&]() {
        ValStats v;
        if (!val) return v;
        ScopedPhase p(timers, "validate", "distill::validate");
        const std::int64_t Nv = val->meta().n;
        const auto mine = par::split_range(Nv, R, replica);
        const std::int64_t most = par::split_range(Nv, R, 0).size();
        double correct = 0, agree = 0, sq = 0;
        std::vector<float> X(size_t(o.batch * D)), T(size_t(o.batch * C));
        std::vector<int> y(size_t(o.batch));
        for (std::int64_t off = 0; off < most; off += o.batch) {
            const std::int64_t n = std::max<std::int64_t>(0, std::min(o.batch, mine.size() - off));
            const std::int64_t row = mine.begin + std::min(off, mine.size());
            val->read(row, n, X.data(), y.data());
            if (vlfile.id() >= 0) io::read_logits_rows(vlfile, vldset, vlm, row, n, T.data());
            if (n == 0) continue;
            std::memcpy(xh.data(), X.data(), size_t(n * D) * sizeof(float));
            Kokkos::deep_copy(xb, xh);
            Matrix xs = Kokkos::subview(xb, std::make_pair(std::int64_t(0), n), Kokkos::ALL());
            auto z = Kokkos::create_mirror_view_and_copy(HostSpace(), student->forward(xs, false));
            for (std::int64_t i = 0; i < n; ++i) {
                const float* zi = z.data() + i * C;
                const int top = int(std::max_element(zi, zi + C) - zi);
                correct += top == y[size_t(i)];
                if (vlfile.id() >= 0) {
                    const float* ti = T.data() + i * C;
                    agree += top == int(std::max_element(ti, ti + C) - ti);
                    for (std::int64_t c = 0; c < C; ++c)
                        sq += double(zi[c] - ti[c]) * double(zi[c] - ti[c]);
                }
            }
        }
        // Each model group computed the same numbers: reduce over replicas only.
        correct = replica_comm.sum(correct);
        agree = replica_comm.sum(agree);
        sq = replica_comm.sum(sq);
        v.acc = correct / double(Nv);
        if (vlfile.id() >= 0) {
            v.agree = agree / double(Nv);
            v.rmse = std::sqrt(sq / double(Nv * C));
        }
        return v;
    };

    // --- training -----------------------------------------------------------------------------------
    FILE* csv = nullptr;
    if (world.rank() == 0 && !o.log_csv.empty()) {
        const bool fresh = !io::file_exists(o.log_csv) || (st.epoch == 0 && st.step_in_epoch == 0);
        csv = std::fopen(o.log_csv.c_str(), fresh ? "w" : "a");
        if (!csv) log::warn(o.log_csv, ": cannot write the CSV log");
        if (csv && fresh)
            std::fprintf(
                csv, "epoch,lr,train_loss,val_accuracy,val_logit_rmse,val_agreement,seconds,samples_per_s\n");
    }
    std::optional<StopSignals> stop_signals(std::in_place);
    std::int64_t steps_this_run = 0;
    bool stop_now = false, early_stopped = false, evaluated = false;
    ValStats last;
    double samples_this_run = 0;
    const double t_train = wall_seconds();

    for (; st.epoch < o.epochs && !stop_now; ++st.epoch) {
        const double t_epoch = wall_seconds();
        const double rows_at_start = st.epoch_rows; // > 0 when a resumed run starts mid-epoch
        const auto order = block_order(st.epoch);
        // Skip the blocks (and batches) a resumed run has already done.
        std::int64_t first_block = 0, skip_batches = st.step_in_epoch;
        while (first_block < num_blocks && skip_batches >= batches_in(order[size_t(first_block)]))
            skip_batches -= batches_in(order[size_t(first_block++)]);
        Progress progress("distill epoch " + std::to_string(st.epoch + 1), steps_per_epoch, "steps");
        std::future<Block> next;
        auto launch = [&](std::int64_t k) {
            if (k >= num_blocks) return;
            const std::int64_t b = order[size_t(k)];
            next = prefetch ? std::async(std::launch::async, read_block, b)
                            : std::async(std::launch::deferred, read_block, b);
        };
        launch(first_block);
        for (std::int64_t k = first_block; k < num_blocks && !stop_now; ++k) {
            Block blk;
            {
                ScopedPhase p(timers, "read-wait", "distill::read");
                blk = next.get();
            }
            launch(k + 1); // overlaps with the compute on this block
            const auto rows = row_order(st.epoch, blk.id);
            const std::int64_t nbat = batches_in(blk.id);
            for (std::int64_t j = (k == first_block ? skip_batches : 0); j < nbat; ++j) {
                ScopedPhase p(timers, "step", "distill::step");
                const std::int64_t b0 = j * o.batch, nb = std::min(o.batch, blk.n - b0);
                const auto part = par::split_range(nb, R, replica);
                const std::int64_t nl = part.size();
                for (std::int64_t i = 0; i < nl; ++i) {
                    const std::int64_t r = rows[size_t(b0 + part.begin + i)];
                    std::memcpy(xh.data() + i * D, blk.X.data() + r * D, size_t(D) * sizeof(float));
                    std::memcpy(th.data() + i * C, blk.T.data() + r * C, size_t(C) * sizeof(float));
                    if (need_labels) yh(i) = blk.y[size_t(r)];
                }
                student->zero_grads();
                double local_loss = 0;
                if (nl > 0) {
                    Kokkos::deep_copy(xb, xh);
                    Kokkos::deep_copy(tb, th);
                    if (need_labels) Kokkos::deep_copy(yb, yh);
                    const auto sub = std::make_pair(std::int64_t(0), nl);
                    Matrix xs = Kokkos::subview(xb, sub, Kokkos::ALL()),
                           ts = Kokkos::subview(tb, sub, Kokkos::ALL()),
                           ds = Kokkos::subview(db, sub, Kokkos::ALL());
                    IntVector ys = Kokkos::subview(yb, sub);
                    Matrix z = student->forward(
                        xs, true, derive_seed(o.seed, 0xD80, std::uint64_t(st.global_step)), part.begin);
                    if (loss.kind == "mimic")
                        local_loss = nn::mimic_l2(z, ts, ds);
                    else if (loss.kind == "ce")
                        local_loss = nn::cross_entropy(z, ys, ds);
                    else
                        local_loss = nn::distill_kd(z, ts, ys, loss.T, loss.alpha, ds);
                    // Each replica's loss is a mean over its rows: weight it by its share of the batch.
                    const float w = float(double(nl) / double(nb));
                    Kokkos::parallel_for(
                        "mimic::distill::scale", RangePolicy(0, nl * C),
                        KOKKOS_LAMBDA(const std::int64_t e) { ds.data()[e] *= w; });
                    student->backward(ds);
                } // a replica without rows in this batch (nb < R) contributes zero gradients
                par::allreduce_sum(net.grads(), replica_comm);
                const double batch_loss = replica_comm.sum(local_loss * double(nl)) / double(nb);
                if (!kmath::isfinite(batch_loss))
                    throw CollectiveError(detail::concat("distill: epoch ", st.epoch + 1, ", step ",
                                                         st.step_in_epoch + 1, ": loss is ", batch_loss,
                                                         " (lower --lr?); no model written"));
                opt->step(net.params(), net.grads(), schedule.lr(st.epoch, st.step_in_epoch));
                st.epoch_loss += batch_loss * double(nb);
                st.epoch_rows += double(nb);
                ++st.step_in_epoch;
                ++st.global_step;
                ++steps_this_run;
                samples_this_run += double(nb);
                progress.update(st.step_in_epoch, detail::concat("loss ", st.epoch_loss / st.epoch_rows));
                // Stop requests: a signal on any rank, or --stop-after-steps.
                const bool want = StopSignals::received() != 0 ||
                                  (o.stop_after_steps > 0 && steps_this_run >= o.stop_after_steps);
                if (world.any(want)) stop_now = true;
                if (stop_now || (o.checkpoint_every > 0 && st.global_step % o.checkpoint_every == 0)) {
                    if (next.valid()) next.wait();
                    save(ckpt, true, false);
                }
                if (stop_now) break;
            }
        }
        if (next.valid()) next.wait();
        if (stop_now) break;
        progress.finish();

        // End of epoch: validation, schedule, early stopping, log, checkpoint.
        const auto v = evaluate();
        last = v;
        evaluated = true;
        const double train_loss = st.epoch_loss / std::max(1.0, st.epoch_rows);
        const double metric = v.rmse >= 0 ? v.rmse : v.acc >= 0 ? 1.0 - v.acc : train_loss;
        const double lr_used = schedule.lr(st.epoch, std::max<std::int64_t>(0, st.step_in_epoch - 1));
        schedule.end_epoch(metric);
        if (st.best_epoch < 0 || metric < st.best) {
            st.best = metric;
            st.best_epoch = st.epoch;
            st.bad_epochs = 0;
        } else {
            ++st.bad_epochs;
        }
        const double el = wall_seconds() - t_epoch;
        const double rate = (st.epoch_rows - rows_at_start) / el; // rows of this run over its time
        std::ostringstream line;
        line.precision(5);
        line << "epoch " << st.epoch + 1 << "/" << o.epochs << ": train loss " << train_loss;
        if (v.acc >= 0) line << ", val acc " << 100 * v.acc << "%";
        if (v.rmse >= 0) line << ", val logit RMSE " << v.rmse << ", agreement " << 100 * v.agree << "%";
        line << ", lr " << lr_used << ", " << el << " s, " << rate << " samples/s";
        log::info(line.str());
        if (csv) {
            std::fprintf(csv, "%d,%g,%.6f,%.6f,%.6f,%.6f,%.3f,%.1f\n", st.epoch + 1, lr_used, train_loss,
                         v.acc, v.rmse, v.agree, el, rate);
            std::fflush(csv);
        }
        st.step_in_epoch = 0;
        st.epoch_loss = st.epoch_rows = 0;
        if (o.early_stop > 0 && st.bad_epochs >= o.early_stop) {
            log::info("distill: no improvement for ", st.bad_epochs, " epochs; stopping early");
            early_stopped = true;
            ++st.epoch;
            break;
        }
        if (st.epoch + 1 < o.epochs) {
            ++st.epoch;
            save(ckpt, true, false);
            --st.epoch;
        }
    }
    const int stop_signal = StopSignals::received();
    stop_signals.reset();
    if (csv) std::fclose(csv);

    if (stop_now) {
        log::info("distill: stopped after ", steps_this_run, " steps (",
                  stop_signal ? "signal" : "--stop-after-steps", "); checkpoint ", ckpt, " saved at epoch ",
                  st.epoch + 1, ", step ", st.step_in_epoch, "; rerun the same command to resume");
        if (stop_signal)
            throw CollectiveError(
                "distill: interrupted by a signal; the checkpoint is saved, rerun to resume");
        return;
    }

    // --- the student ---------------------------------------------------------------------------------
    const auto v = evaluated ? last : evaluate(); // a resumed run that had no epoch left still reports
    st.epoch = std::min(st.epoch, o.epochs);
    {
        ScopedPhase p(timers, "save", "distill::save");
        par::agree(world, [&] {
            const std::string partial = o.out + ".partial";
            auto f = h5::File::create(partial, world.size() > 1 ? world.get() : MPI_COMM_NULL);
            io::ModelMeta meta;
            meta.loss = o.loss;
            meta.epochs = st.epoch;
            meta.seed = o.seed;
            meta.data_fingerprint = tm.fingerprint;
            meta.val_accuracy = v.acc;
            par::write_sharded_model(f, *student, meta, writer, world);
            f.close();
            if (world.rank() == 0) io::rename_file(partial, o.out);
        });
    }
    save(ckpt, true, true);

    const double el = wall_seconds() - t_start, train_s = wall_seconds() - t_train;
    log::info("");
    log::info("distill summary: ", o.out, " (", student->full_num_params(), " parameters, ", st.epoch,
              " epochs", early_stopped ? ", stopped early" : "", ")");
    if (v.acc >= 0) log::info("  validation accuracy ", 100 * v.acc, "%");
    if (v.rmse >= 0)
        log::info("  validation logit RMSE ", v.rmse, ", agreement with the ensemble ", 100 * v.agree, "%");
    log::info("  ", samples_this_run, " samples in ", Progress::format_duration(train_s), ": ",
              samples_this_run / std::max(train_s, 1e-9), " samples/s, ",
              samples_this_run * 3.0 * net.flops_per_sample() * o.model_shards / std::max(train_s, 1e-9) /
                  1e9,
              " GFLOP/s (forward+backward = 3x forward)");
    timers.add("total", el);
    timers.report(world, "distill timings");
    timers.append_csv(world, o.timings_csv,
                      {{"stage", "distill"},
                       {"ranks", std::to_string(world.size())},
                       {"replicas", std::to_string(R)},
                       {"model_shards", std::to_string(o.model_shards)},
                       {"rows", std::to_string(std::int64_t(samples_this_run))},
                       {"params", std::to_string(student->full_num_params())},
                       {"batch", std::to_string(o.batch)}});
}

} // namespace mimic::stages
