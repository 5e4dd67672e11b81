// Writing and reading the engine's checkpoint: sharded weights and optimizer state, the cursor and
// history as root attributes, the resume identity as the /identity group, and a state checksum over all.
#include "mimic/train/checkpoint.hpp"

#include "mimic/core/error.hpp"
#include "mimic/core/log.hpp"
#include "mimic/core/rng.hpp"
#include "mimic/io/dataset.hpp"
#include "mimic/parallel/sharded_model_file.hpp"

#include <cmath>
#include <cstring>

namespace mimic::train {

namespace {
const std::string kOptimizer = "/checkpoint/optimizer/";
/// The root attribute holding the digest of everything a resume restores.
const char* const kStateChecksum = "state_checksum";

void fold(std::uint64_t& h, std::uint64_t v) {
    h = mix64(h ^ mix64(v + 0x9e3779b97f4a7c15ULL));
}
void fold(std::uint64_t& h, double v) {
    std::uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof bits);
    fold(h, bits);
}
void fold(std::uint64_t& h, const std::string& s) {
    fold(h, std::uint64_t(s.size()));
    for (char c : s)
        fold(h, std::uint64_t(static_cast<unsigned char>(c)));
}
void fold(std::uint64_t& h, const std::vector<double>& v) {
    fold(h, std::uint64_t(v.size()));
    for (double x : v)
        fold(h, x);
}

/// The hash sums of the weights and of each optimizer buffer (collective), and whether all are finite.
std::vector<par::HashSum> state_sums(const par::ShardedModel& net, const nn::optim::OptimizerState& opt,
                                     bool writer, const par::Comm& world) {
    std::vector<par::HashSum> sums{par::sharded_hash_sum(net, par::host_local_params(net), writer, world)};
    for (const auto& v : opt.values)
        sums.push_back(par::sharded_hash_sum(net, v, writer, world));
    return sums;
}

/// The digest over everything a resume restores: weights, optimizer state, cursor, schedule, history.
std::string state_checksum(const std::vector<par::HashSum>& sums, const nn::optim::OptimizerState& opt,
                           const CheckpointState& st) {
    std::uint64_t h = 0x6d696d69632d636bULL;
    for (const auto& s : sums)
        fold(h, s.sum);
    fold(h, opt.kind);
    for (const auto& n : opt.names)
        fold(h, n);
    fold(h, std::uint64_t(opt.step));
    for (long long v : {(long long)st.epoch, (long long)st.step_in_epoch, (long long)st.global_step,
                        (long long)st.best_epoch, (long long)st.bad_epochs, (long long)st.history_width,
                        (long long)st.ranks, (long long)st.model_shards})
        fold(h, std::uint64_t(v));
    fold(h, st.best_metric);
    fold(h, st.sums);
    fold(h, st.schedule);
    fold(h, st.history);
    return io::hex64(h);
}

/// Fails unless the restored state is usable: finite weights, moments and sums, a cursor in the run.
void check_state(const std::string& path, const std::vector<par::HashSum>& sums,
                 const nn::optim::OptimizerState& opt, const CheckpointState& st,
                 const CheckpointLimits& lim) {
    const char* const again = "; pass --overwrite to start over";
    if (!sums[0].finite) fail(path, ": the checkpoint holds a non-finite weight", again);
    for (size_t i = 1; i < sums.size(); ++i)
        if (!sums[i].finite)
            fail(path, ": the checkpoint's optimizer state '", opt.names[i - 1], "' holds a non-finite value",
                 again);
    for (double v : st.sums)
        if (!std::isfinite(v)) fail(path, ": the checkpoint's epoch sums hold a non-finite value", again);
    for (double v : st.schedule)
        if (!std::isfinite(v))
            fail(path, ": the checkpoint's schedule state holds a non-finite value", again);
    if (!std::isfinite(st.best_metric)) fail(path, ": the checkpoint's best metric is not finite", again);
    if (st.epoch < 0 || st.epoch >= lim.epochs)
        fail(path, ": the checkpoint's epoch ", st.epoch, " is outside this run's epochs [0, ", lim.epochs,
             ")", again);
    if (st.step_in_epoch < 0 || st.step_in_epoch > lim.steps_per_epoch)
        fail(path, ": the checkpoint's step_in_epoch ", st.step_in_epoch, " is outside the ",
             lim.steps_per_epoch, " steps of an epoch", again);
    if (st.global_step < 0 || opt.step < 0)
        fail(path, ": the checkpoint's step counters are negative (global_step ", st.global_step,
             ", optimizer_step ", opt.step, ")", again);
}
} // namespace

void write_checkpoint(const std::string& path, const par::ShardedModel& net, io::ModelMeta meta,
                      const nn::optim::OptimizerState& opt, const CheckpointState& st,
                      const io::ResumeIdentity& identity, bool writer, const par::Comm& world) {
    const std::string partial = path + ".partial";
    auto f = h5::File::create(partial, world);
    par::write_sharded_model(f, net, meta, writer, world);
    for (size_t i = 0; i < opt.names.size(); ++i)
        par::write_sharded_flat(f, kOptimizer + opt.names[i], net, opt.values[i], writer);
    identity.write(f);
    const hid_t r = f.id();
    h5::write_attr(r, "optimizer", opt.kind);
    h5::write_attr(r, "optimizer_step", (long long)opt.step);
    h5::write_attr(r, "schedule", st.schedule);
    h5::write_attr(r, "epoch", (long long)st.epoch);
    h5::write_attr(r, "step_in_epoch", (long long)st.step_in_epoch);
    h5::write_attr(r, "global_step", (long long)st.global_step);
    h5::write_attr(r, "best_metric", st.best_metric);
    h5::write_attr(r, "best_epoch", (long long)st.best_epoch);
    h5::write_attr(r, "bad_epochs", (long long)st.bad_epochs);
    h5::write_attr(r, "epoch_sums", st.sums);
    // Led by the row width, so that the attribute is never empty (HDF5 refuses empty attributes).
    std::vector<double> history{double(st.history_width)};
    history.insert(history.end(), st.history.begin(), st.history.end());
    h5::write_attr(r, "history", history);
    h5::write_attr(r, "ranks", (long long)st.ranks);
    h5::write_attr(r, "model_shards", (long long)st.model_shards);
    h5::write_attr(r, kStateChecksum, state_checksum(state_sums(net, opt, writer, world), opt, st));
    f.close();
    if (world.rank() == 0) io::rename_file(partial, path);
}

CheckpointState read_checkpoint(const std::string& path, par::ShardedModel& net,
                                nn::optim::OptimizerState& opt, const io::ResumeIdentity& identity,
                                int history_width, const CheckpointLimits& limits, bool writer,
                                const par::Comm& world) {
    auto f = h5::File::open(path, world);
    const std::string diff = identity.difference(f);
    if (!diff.empty())
        fail(path, ": this checkpoint belongs to a run with other settings (", diff,
             "); rerun with the same settings, or pass --overwrite to start over");
    par::read_sharded_weights(f, net);
    const hid_t r = f.id();
    opt.kind = h5::read_attr_string(r, "optimizer");
    opt.step = h5::read_attr_int(r, "optimizer_step");
    opt.values.clear();
    for (const auto& name : opt.names)
        opt.values.push_back(par::read_sharded_flat(f, kOptimizer + name, net));
    CheckpointState st;
    st.history_width = history_width;
    st.schedule = h5::read_attr_doubles(r, "schedule");
    st.epoch = int(h5::read_attr_int(r, "epoch"));
    st.step_in_epoch = h5::read_attr_int(r, "step_in_epoch");
    st.global_step = h5::read_attr_int(r, "global_step");
    st.best_metric = h5::read_attr_double(r, "best_metric");
    st.best_epoch = int(h5::read_attr_int(r, "best_epoch"));
    st.bad_epochs = int(h5::read_attr_int(r, "bad_epochs"));
    st.sums = h5::read_attr_doubles(r, "epoch_sums");
    const auto history = h5::read_attr_doubles(r, "history");
    MIMIC_REQUIRE(!history.empty() && int(history[0]) == st.history_width, path,
                  ": attribute history has rows of ", history.empty() ? 0 : int(history[0]), " values, not ",
                  st.history_width);
    st.history.assign(history.begin() + 1, history.end());
    st.ranks = int(h5::read_attr_int(r, "ranks"));
    st.model_shards = int(h5::read_attr_int(r, "model_shards"));
    MIMIC_REQUIRE(st.sums.size() == 4, path, ": attribute epoch_sums has ", st.sums.size(), " values, not 4");
    const auto sums = state_sums(net, opt, writer, world);
    const bool verified = h5::has_attr(r, kStateChecksum);
    if (verified) {
        const std::string stored = h5::read_attr_string(r, kStateChecksum),
                          computed = state_checksum(sums, opt, st);
        if (stored != computed)
            fail(path, ": the checkpoint is corrupt (state checksum ", stored, " stored, ", computed,
                 " computed); pass --overwrite to start over");
    }
    check_state(path, sums, opt, st, limits);
    if (!verified && world.is_root())
        log::warn(path, ": written before checkpoints carried a state checksum; resuming it with its values "
                        "checked but its content unverified");
    return st;
}

} // namespace mimic::train
