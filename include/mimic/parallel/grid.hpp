// Process grids: MPI_COMM_WORLD split into outer × inner (label: data shards × member groups; distill:
// data replicas × model shards), and longest-processing-time assignment of weighted work to groups.
#pragma once

#include "mimic/core/comm.hpp"

#include <string>
#include <vector>

namespace mimic::par {

/// world rank r sits at inner index r % inner and outer index r / inner, so the ranks of one inner
/// group are consecutive (usually on one node).
class Grid {
public:
    Grid(const Comm& world, int inner);
    int inner() const { return inner_; }
    int outer() const { return outer_; }
    int inner_index() const { return inner_index_; }
    int outer_index() const { return outer_index_; }
    /// Ranks with the same outer index (size inner): e.g. the member groups of one data shard.
    const Comm& inner_comm() const { return inner_comm_; }
    /// Ranks with the same inner index (size outer): e.g. the data shards of one member group.
    const Comm& outer_comm() const { return outer_comm_; }

private:
    int inner_ = 1, outer_ = 1, inner_index_ = 0, outer_index_ = 0;
    Comm inner_comm_, outer_comm_;
};

/// Assigns items with the given costs to `groups` bins, longest first onto the least-loaded bin
/// (ties: lower item index first, lower bin first). Returns the bin of each item. Deterministic.
std::vector<int> assign_lpt(const std::vector<double>& costs, int groups);

/// Divisors of n in increasing order.
std::vector<int> divisors(int n);

} // namespace mimic::par
