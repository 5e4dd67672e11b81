// Writing and reading the engine's checkpoint: sharded weights and optimizer state, the cursor and
// history as root attributes, the resume identity as the /identity group.
#include "mimic/train/checkpoint.hpp"

#include "mimic/core/error.hpp"
#include "mimic/io/dataset.hpp"
#include "mimic/parallel/sharded_model_file.hpp"

namespace mimic::train {

namespace {
const std::string kOptimizer = "/checkpoint/optimizer/";
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
    f.close();
    if (world.rank() == 0) io::rename_file(partial, path);
}

CheckpointState read_checkpoint(const std::string& path, par::ShardedModel& net,
                                nn::optim::OptimizerState& opt, const io::ResumeIdentity& identity,
                                int history_width, const par::Comm& world) {
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
    return st;
}

} // namespace mimic::train
