// Exact nearest neighbours of every row of a dataset set, by GEMM-based squared distances in blocks
// (||b||^2 - 2 a.b per candidate), query blocks dealt to ranks, candidate blocks streamed from the files.
#pragma once

#include "mimic/core/kokkos.hpp"
#include "mimic/core/progress.hpp"
#include "mimic/io/dataset_set.hpp"

#include <cstdint>
#include <functional>

namespace mimic::transfer {

/// Rows per query and per candidate block. Part of the recipe: every rank count uses the same blocks,
/// so each distance is computed by the same GEMM call shape and the argmin is identical everywhere.
inline constexpr std::int64_t kNeighbourBlock = 2048;

/// Receives, on every rank together, the neighbours of source rows [begin, begin + count): index[count]
/// (global rows) and rows[count * D] (the neighbours' feature rows). count is 0 on ranks without a block.
using NeighbourSink =
    std::function<void(std::int64_t begin, std::int64_t count, const std::int64_t* index, const float* rows)>;

/// Collective: for every row e of src, the row e' != e with the smallest squared Euclidean distance;
/// ties go to the lowest index. Query blocks of `block` rows are dealt round-robin to ranks; every
/// rank streams all candidate blocks. Memory per rank: about 4 * block * D + block^2 floats.
void nearest_neighbours(const io::DatasetSet& src, const par::Comm& comm, const NeighbourSink& sink,
                        std::int64_t block = kNeighbourBlock, Progress* progress = nullptr);

} // namespace mimic::transfer
