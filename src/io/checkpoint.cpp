// Checkpoint files: write_model() plus /checkpoint (attributes for the cursor and seed, one dataset per
// optimizer buffer, schedule state, epoch accumulators and history), written through .partial + rename.
#include "mimic/io/checkpoint.hpp"

#include "mimic/io/dataset.hpp"

namespace mimic::io {

namespace {

constexpr const char* kGroup = "/checkpoint";

std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (size_t i = 0; i < v.size(); ++i)
        s += (i ? "," : "") + v[i];
    return s;
}

std::vector<std::string> split(const std::string& s) {
    std::vector<std::string> out;
    if (s.empty()) return out;
    size_t start = 0;
    while (true) {
        const auto comma = s.find(',', start);
        out.push_back(s.substr(start, comma - start));
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    return out;
}

void write_doubles(const h5::File& f, const std::string& name, const std::vector<double>& v) {
    h5::write_all(f, name, v);
}

} // namespace

void save_checkpoint(const std::string& path, const nn::Model& model, const ModelMeta& meta_in,
                     const TrainState& st) {
    const std::string partial = path + ".partial";
    ModelMeta meta = meta_in;
    try {
        auto f = h5::File::create(partial);
        write_model(f, model, meta);
        h5::ensure_groups(f, std::string(kGroup) + "/x");
        h5::Handle g(MIMIC_H5_CHECK(H5Gopen2(f.id(), kGroup, H5P_DEFAULT)), H5Gclose);
        h5::write_attr(g, "epoch", (long long)st.epoch);
        h5::write_attr(g, "step_in_epoch", (long long)st.step_in_epoch);
        h5::write_attr(g, "global_step", (long long)st.global_step);
        h5::write_attr(g, "seed", (long long)st.seed);
        h5::write_attr(g, "best_metric", st.best_metric);
        h5::write_attr(g, "best_epoch", (long long)st.best_epoch);
        h5::write_attr(g, "ranks", (long long)st.ranks);
        h5::write_attr(g, "config", st.config);
        h5::write_attr(g, "optimizer", st.optimizer.kind);
        h5::write_attr(g, "optimizer_step", (long long)st.optimizer.step);
        h5::write_attr(g, "optimizer_buffers", join(st.optimizer.names));
        for (size_t i = 0; i < st.optimizer.names.size(); ++i)
            h5::write_all(f, std::string(kGroup) + "/optimizer/" + st.optimizer.names[i],
                          st.optimizer.values[i]);
        write_doubles(f, std::string(kGroup) + "/schedule", st.schedule);
        write_doubles(f, std::string(kGroup) + "/epoch_accum", st.epoch_accum);
        h5::write_attr(g, "history_columns", join(st.history_columns));
        std::vector<double> flat;
        for (const auto& row : st.history) {
            if (row.size() != st.history_columns.size())
                fail(path, ": history row with ", row.size(), " values for ", st.history_columns.size(),
                     " columns");
            flat.insert(flat.end(), row.begin(), row.end());
        }
        {
            const hsize_t rows = st.history.size(), cols = std::max<size_t>(1, st.history_columns.size());
            auto d = h5::create_dataset(f, std::string(kGroup) + "/history", H5T_NATIVE_DOUBLE, {rows, cols});
            if (rows > 0) h5::write_rows(d, H5T_NATIVE_DOUBLE, 0, std::int64_t(rows), flat.data(), false);
        }
        g.reset();
        f.close();
    } catch (...) {
        remove_file(partial);
        throw;
    }
    rename_file(partial, path);
}

nn::Model load_checkpoint(const std::string& path, ModelMeta* meta, TrainState* st) {
    auto f = h5::File::open(path);
    auto model = read_model(f, meta);
    if (!f.has(kGroup)) fail(path, ": a model file but not a checkpoint (group /checkpoint is missing)");
    if (!st) return model;
    h5::Handle g(MIMIC_H5_CHECK(H5Gopen2(f.id(), kGroup, H5P_DEFAULT)), H5Gclose);
    TrainState s;
    s.epoch = int(h5::read_attr_int(g, "epoch"));
    s.step_in_epoch = h5::read_attr_int(g, "step_in_epoch");
    s.global_step = h5::read_attr_int(g, "global_step");
    s.seed = std::uint64_t(h5::read_attr_int(g, "seed"));
    s.best_metric = h5::read_attr_double(g, "best_metric");
    s.best_epoch = int(h5::read_attr_int(g, "best_epoch"));
    s.ranks = int(h5::read_attr_int(g, "ranks"));
    s.config = h5::read_attr_string(g, "config");
    s.optimizer.kind = h5::read_attr_string(g, "optimizer");
    s.optimizer.step = h5::read_attr_int(g, "optimizer_step");
    s.optimizer.names = split(h5::read_attr_string(g, "optimizer_buffers"));
    for (const auto& name : s.optimizer.names) {
        const std::string ds = std::string(kGroup) + "/optimizer/" + name;
        if (!f.has(ds)) fail(path, ": optimizer state '", name, "' is missing");
        s.optimizer.values.push_back(h5::read_all<float>(f, ds));
    }
    s.schedule = h5::read_all<double>(f, std::string(kGroup) + "/schedule");
    s.epoch_accum = h5::read_all<double>(f, std::string(kGroup) + "/epoch_accum");
    s.history_columns = split(h5::read_attr_string(g, "history_columns"));
    {
        auto d = h5::open_dataset(f, std::string(kGroup) + "/history");
        const auto dims = h5::dataset_dims(d);
        if (dims.size() != 2 || (dims[0] > 0 && dims[1] != s.history_columns.size()))
            fail(path, ": /checkpoint/history does not match its ", s.history_columns.size(), " columns");
        std::vector<double> flat(size_t(dims[0] * dims[1]));
        if (dims[0] > 0) h5::read_rows(d, H5T_NATIVE_DOUBLE, 0, std::int64_t(dims[0]), flat.data(), false);
        for (hsize_t r = 0; r < dims[0]; ++r)
            s.history.emplace_back(flat.begin() + long(r * dims[1]), flat.begin() + long((r + 1) * dims[1]));
    }
    if (s.epoch < 0 || s.step_in_epoch < 0 || s.global_step < 0)
        fail(path, ": negative epoch or step in /checkpoint");
    *st = std::move(s);
    return model;
}

} // namespace mimic::io
