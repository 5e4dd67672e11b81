// Process grid construction and the LPT (longest processing time first) balancer used to spread
// ensemble members over member groups by FLOPs.
#include "mimic/parallel/grid.hpp"

#include <algorithm>
#include <numeric>

namespace mimic::par {

Grid::Grid(const Comm& world, int inner) {
    MIMIC_REQUIRE(inner >= 1 && world.size() % inner == 0, "process grid: ", inner,
                  " does not divide the number of ranks (", world.size(), ")");
    inner_ = inner;
    outer_ = world.size() / inner;
    inner_index_ = world.rank() % inner;
    outer_index_ = world.rank() / inner;
    inner_comm_ = world.split(outer_index_, inner_index_);
    outer_comm_ = world.split(inner_index_, outer_index_);
}

std::vector<int> assign_lpt(const std::vector<double>& costs, int groups) {
    std::vector<int> order(costs.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return costs[size_t(a)] > costs[size_t(b)]; });
    std::vector<double> load(size_t(std::max(groups, 1)), 0.0);
    std::vector<int> bin(costs.size(), 0);
    for (int item : order) {
        const auto g = std::min_element(load.begin(), load.end()) - load.begin();
        bin[size_t(item)] = int(g);
        load[size_t(g)] += costs[size_t(item)];
    }
    return bin;
}

std::vector<int> divisors(int n) {
    std::vector<int> d;
    for (int i = 1; i <= n; ++i)
        if (n % i == 0) d.push_back(i);
    return d;
}

} // namespace mimic::par
