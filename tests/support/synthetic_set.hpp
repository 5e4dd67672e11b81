// A small learnable labelled set for the training tests: rows of shape 1x4x3 drawn per row from a
// counter-based RNG (the same rows at any rank count), labelled by the argmax of a fixed linear map.
#pragma once

#include "mimic/core/comm.hpp"
#include "mimic/core/rng.hpp"
#include "mimic/io/dataset.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace mimic::test {

constexpr int kSyntheticD = 12, kSyntheticClasses = 3;

/// Writes n rows x ~ N(mean, scale^2) to path (collective over comm: each rank writes its share).
inline void write_synthetic_set(const std::string& path, const par::Comm& comm, std::int64_t n,
                                std::uint64_t seed, float mean = 0.0f, float scale = 1.0f) {
    constexpr int D = kSyntheticD, C = kSyntheticClasses;
    io::DatasetMeta m;
    m.n = n, m.d = D, m.c = 1, m.h = 4, m.w = 3, m.num_classes = C, m.has_labels = true;
    m.source = "synthetic";
    io::DatasetWriter w(path, comm, m);
    const auto mine = par::split_range(n, comm.size(), comm.rank());
    std::vector<float> X(size_t(mine.size() * D));
    std::vector<int> y(size_t(mine.size()));
    for (std::int64_t i = 0; i < mine.size(); ++i) {
        CounterRng r(derive_seed(seed, std::uint64_t(mine.begin + i)));
        double score[C] = {0, 0, 0};
        for (int j = 0; j < D; ++j) {
            const float v = mean + scale * r.normal();
            X[size_t(i * D + j)] = v;
            for (int c = 0; c < C; ++c)
                score[c] += v * std::sin(1.0 + 0.7 * j + 2.1 * c);
        }
        y[size_t(i)] = int(std::max_element(score, score + C) - score);
    }
    w.write(mine.begin, mine.size(), X.data(), y.data());
    w.commit();
}

} // namespace mimic::test
