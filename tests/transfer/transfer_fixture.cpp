// Writes a small synthetic dataset file for the transfer CLI tests:
// transfer_fixture OUT ROWS C H W [SEED]  (normalised values, labels in [0, 3), global normalisation).
#include "mimic/core/rng.hpp"
#include "mimic/core/runtime.hpp"
#include "mimic/io/dataset.hpp"

#include <cstdio>
#include <cstdlib>
#include <string>

int main(int argc, char** argv) {
    mimic::Runtime runtime(argc, argv);
    if (argc < 6) {
        std::fprintf(stderr, "usage: transfer_fixture OUT ROWS C H W [SEED]\n");
        return 2;
    }
    try {
        mimic::par::Comm world;
        mimic::io::DatasetMeta m;
        m.n = std::atoll(argv[2]);
        m.c = std::atoi(argv[3]), m.h = std::atoi(argv[4]), m.w = std::atoi(argv[5]);
        m.d = std::int64_t(m.c) * m.h * m.w;
        m.num_classes = 3;
        m.has_labels = true;
        m.source = "transfer-fixture";
        m.norm_kind = "global";
        const std::uint64_t seed = argc > 6 ? std::strtoull(argv[6], nullptr, 10) : 1;
        mimic::io::DatasetWriter w(argv[1], world, m);
        w.set_normalization("global", 1.0, std::vector<float>(size_t(m.d), 0.25f),
                            std::vector<float>(size_t(m.d), 0.5f));
        const auto mine = mimic::par::split_range(m.n, world.size(), world.rank());
        std::vector<float> X(size_t(mine.size() * m.d));
        std::vector<int> y(size_t(mine.size()));
        for (std::int64_t i = 0; i < mine.size(); ++i) {
            mimic::CounterRng rng(mimic::derive_seed(seed, std::uint64_t(mine.begin + i)));
            for (std::int64_t j = 0; j < m.d; ++j)
                X[size_t(i * m.d + j)] = rng.normal();
            y[size_t(i)] = int((mine.begin + i) % 3);
        }
        if (m.n > 0) w.write(mine.begin, mine.size(), X.data(), y.data()); // an empty /X takes no writes
        w.commit();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "transfer_fixture: %s\n", e.what());
        return 1;
    }
    return 0;
}
