// Sharded model-file and checkpoint I/O: every tensor is one full-shape dataset; each model shard
// writes or reads its column/row slice, replicated tensors come from shard 0; the weights checksum is
// the composable sum of per-element hashes, so it needs one reduction, not a gather.
#include "mimic/parallel/sharded_model_file.hpp"

#include "mimic/core/runtime.hpp"
#include "mimic/io/dataset.hpp"

#include <cmath>

namespace mimic::par {

using io::ModelMeta;

namespace {

std::vector<float> local_params(const par::ShardedModel& m) {
    std::vector<float> h(static_cast<size_t>(m.local().num_params()));
    if (!h.empty())
        Kokkos::deep_copy(
            Kokkos::View<float*, Kokkos::LayoutRight, HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>(
                h.data(), h.size()),
            m.local().params());
    return h;
}

/// The N-D selection of a tensor shard inside its full-shape dataset.
h5::Selection tensor_selection(const par::TensorShard& t, bool active) {
    h5::Selection s;
    const size_t nd = t.full_shape.size();
    s.start.assign(nd, 0);
    s.count.assign(nd, 1);
    s.block.resize(nd);
    s.stride.assign(nd, 1);
    for (size_t i = 0; i < nd; ++i)
        s.block[i] = hsize_t(t.full_shape[i]);
    if (t.axis >= 0) {
        s.start[size_t(t.axis)] = hsize_t(t.begin);
        s.block[size_t(t.axis)] = hsize_t(t.len);
    }
    if (!active) s.count.assign(nd, 0);
    return s;
}

/// Whether this rank supplies tensor t when writing: sliced tensors come from every shard of the
/// writing group, whole tensors from its shard 0 only.
bool supplies(const par::TensorShard& t, const par::ShardedModel& m, bool writer) {
    return writer && (t.axis >= 0 || m.shard() == 0);
}

} // namespace

void write_sharded_model(const h5::File& f, const par::ShardedModel& m, ModelMeta& meta, bool writer,
                         const par::Comm& world) {
    const auto params = local_params(m);
    std::uint64_t sum = 0;
    for (const auto& t : m.tensors())
        if (supplies(t, m, writer))
            for (std::int64_t e = 0; e < t.local_size; ++e)
                sum += io::param_hash(t.global_index(e), params[size_t(t.local_offset + e)]);
    sum = world.sum_u64(sum);
    meta.spec = m.spec();
    meta.input = m.local().input_shape();
    meta.num_classes = int(m.local().output_size());
    meta.mimic_version = mimic_version_string();
    meta.weights_checksum = io::finish_checksum(sum, m.full_num_params());
    io::write_model_attributes(f, meta, m.full_num_params());
    h5::ensure_groups(f, "/weights/x");
    for (const auto& t : m.tensors()) {
        std::vector<hsize_t> dims(t.full_shape.begin(), t.full_shape.end());
        auto d = h5::create_dataset(f, "/weights/" + t.name, H5T_NATIVE_FLOAT, dims);
        const bool act = supplies(t, m, writer);
        h5::write_selection(d, H5T_NATIVE_FLOAT, tensor_selection(t, act), params.data() + t.local_offset,
                            f.parallel());
    }
    // The state (batch normalisation's running statistics) is replicated: shard 0 of the writers supplies it.
    io::write_model_state(f, m.local(), writer && m.shard() == 0);
}

void read_sharded_weights(const h5::File& f, par::ShardedModel& m) {
    const hid_t root = f.id();
    if (!h5::has_attr(root, "spec") || h5::read_attr_string(root, "spec") != m.spec())
        fail(f.path(), ": holds a model with spec '",
             h5::has_attr(root, "spec") ? h5::read_attr_string(root, "spec") : std::string("?"), "', not '",
             m.spec(), "'");
    std::vector<float> params(static_cast<size_t>(m.local().num_params()), 0.0f);
    for (const auto& t : m.tensors()) {
        auto d = h5::open_dataset(f, "/weights/" + t.name);
        const auto dims = h5::dataset_dims(d);
        if (std::vector<std::int64_t>(dims.begin(), dims.end()) != t.full_shape)
            fail(f.path(), ": weight '", t.name, "' has the wrong shape for the spec '", m.spec(), "'");
        h5::read_selection(d, H5T_NATIVE_FLOAT, tensor_selection(t, true), params.data() + t.local_offset,
                           f.parallel());
        if (!t.owned)
            std::fill(params.begin() + t.local_offset, params.begin() + t.local_offset + t.local_size, 0.0f);
    }
    if (!params.empty())
        Kokkos::deep_copy(m.local().params(), Kokkos::View<const float*, Kokkos::LayoutRight, HostSpace,
                                                           Kokkos::MemoryTraits<Kokkos::Unmanaged>>(
                                                  params.data(), params.size()));
    io::read_model_state(f, m.local());
}

void write_sharded_flat(const h5::File& f, const std::string& name, const par::ShardedModel& m,
                        const std::vector<float>& local, bool writer) {
    auto d = h5::create_dataset(f, name, H5T_NATIVE_FLOAT, {hsize_t(m.full_num_params())});
    for (const auto& t : m.tensors()) {
        std::uint64_t s[4];
        t.flat_selection(s);
        h5::Selection sel{{s[0]}, {s[1]}, {supplies(t, m, writer) ? s[2] : 0}, {s[3]}};
        h5::write_selection(d, H5T_NATIVE_FLOAT, sel, local.data() + t.local_offset, f.parallel());
    }
}

std::vector<float> read_sharded_flat(const h5::File& f, const std::string& name, const par::ShardedModel& m) {
    auto d = h5::open_dataset(f, name);
    const auto dims = h5::dataset_dims(d);
    if (dims.size() != 1 || std::int64_t(dims[0]) != m.full_num_params())
        fail(f.path(), ": ", name, " must hold ", m.full_num_params(), " values");
    std::vector<float> local(static_cast<size_t>(m.local().num_params()), 0.0f);
    for (const auto& t : m.tensors()) {
        std::uint64_t s[4];
        t.flat_selection(s);
        h5::Selection sel{{s[0]}, {s[1]}, {s[2]}, {s[3]}};
        h5::read_selection(d, H5T_NATIVE_FLOAT, sel, local.data() + t.local_offset, f.parallel());
        if (!t.owned)
            std::fill(local.begin() + t.local_offset, local.begin() + t.local_offset + t.local_size, 0.0f);
    }
    return local;
}

HashSum sharded_hash_sum(const par::ShardedModel& m, const std::vector<float>& local, bool writer,
                         const par::Comm& world) {
    HashSum h;
    for (const auto& t : m.tensors())
        if (supplies(t, m, writer))
            for (std::int64_t e = 0; e < t.local_size; ++e) {
                const float v = local[size_t(t.local_offset + e)];
                h.sum += io::param_hash(t.global_index(e), v);
                h.finite = h.finite && std::isfinite(v);
            }
    h.sum = world.sum_u64(h.sum);
    h.finite = world.all(h.finite);
    return h;
}

std::vector<float> host_local_params(const par::ShardedModel& m) {
    return local_params(m);
}

} // namespace mimic::par
