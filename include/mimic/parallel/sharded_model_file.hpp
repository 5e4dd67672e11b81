// Model files and checkpoints written and read by every rank of a model-parallel grid at once: each
// model shard moves its slices of the full tensors with collective hyperslab transfers, so the files
// are the ordinary, layout-independent model format (a student trained on 4 ranks loads on 1).
#pragma once

#include "mimic/io/hdf5.hpp"
#include "mimic/io/model_file.hpp"
#include "mimic/nn/optim/optimizer.hpp"
#include "mimic/parallel/sharded_model.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace mimic::par {

using io::ModelMeta;

/// Collective over the file's communicator: writes the model-file part (root attributes, /weights) of
/// `m`. Only ranks with writer = true (one full model group) contribute data. Fills meta's checksum.
void write_sharded_model(const h5::File& f, const par::ShardedModel& m, ModelMeta& meta, bool writer,
                         const par::Comm& world);
/// Collective: reads /weights of a model file or checkpoint into the local slices of `m` (any grid).
/// The spec and shapes are checked against the file.
void read_sharded_weights(const h5::File& f, par::ShardedModel& m);
/// Collective: a flat [full_num_params] buffer (e.g. optimizer state) from/to local slices.
void write_sharded_flat(const h5::File& f, const std::string& name, const par::ShardedModel& m,
                        const std::vector<float>& local, bool writer);
std::vector<float> read_sharded_flat(const h5::File& f, const std::string& name, const par::ShardedModel& m);

/// Collective over world: the composable hash sum (io::param_hash by global index) of a local flat buffer
/// laid out like m's parameters, every element counted once whatever the grid: by the ranks with
/// writer = true (one model group), sliced tensors from every shard, whole tensors from shard 0. Also
/// tells whether every element counted is finite (on every rank).
struct HashSum {
    std::uint64_t sum = 0;
    bool finite = true;
};
HashSum sharded_hash_sum(const par::ShardedModel& m, const std::vector<float>& local, bool writer,
                         const par::Comm& world);
/// The local parameters of m on the host.
std::vector<float> host_local_params(const par::ShardedModel& m);

} // namespace mimic::par
