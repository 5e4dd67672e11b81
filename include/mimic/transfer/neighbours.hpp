// Exact nearest neighbours of every row of a dataset set, by GEMM-based squared distances in blocks
// (||b||^2 - 2 a.b per candidate): each pair of row blocks is multiplied once, pairs are dealt to ranks.
#pragma once

#include "mimic/core/kokkos.hpp"
#include "mimic/core/progress.hpp"
#include "mimic/io/dataset_set.hpp"

#include <cstdint>
#include <functional>

namespace mimic::transfer {

/// Rows per block. Part of the recipe: every rank count uses the same blocks, so each distance is
/// computed by the same GEMM call and the neighbours are identical for any rank count.
inline constexpr std::int64_t kNeighbourBlock = 2048;

/// Receives, on every rank together, the neighbours of source rows [begin, begin + count): index[count]
/// (global rows) and rows[count * D] (the neighbours' feature rows). count is 0 on ranks without a block.
using NeighbourSink =
    std::function<void(std::int64_t begin, std::int64_t count, const std::int64_t* index, const float* rows)>;

/// Collective: for every row e of src, the row e' != e with the smallest squared Euclidean distance;
/// ties go to the lowest index. The rows are cut into blocks of `block` rows; each pair of blocks
/// (i <= j) is one GEMM A_i * A_j^T whose products serve the rows of both blocks (half the flops of
/// scanning every block against every other), and the pairs are dealt round-robin to ranks. The running
/// minima are reduced over ranks as (distance, index) pairs; then each rank reads the neighbour rows
/// of its contiguous share of the rows and calls `sink` in rounds of `block` rows.
/// Memory per rank: about 3 * block * D + block^2 floats, plus 12 bytes per source row.
/// `progress` counts block pairs (see neighbour_block_pairs).
void nearest_neighbours(const io::DatasetSet& src, const par::Comm& comm, const NeighbourSink& sink,
                        std::int64_t block = kNeighbourBlock, Progress* progress = nullptr);

/// Number of block pairs the search over `rows` rows computes.
inline std::int64_t neighbour_block_pairs(std::int64_t rows, std::int64_t block = kNeighbourBlock) {
    const std::int64_t nb = (rows + block - 1) / block;
    return nb * (nb + 1) / 2;
}

} // namespace mimic::transfer
