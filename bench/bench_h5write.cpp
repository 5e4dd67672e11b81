// Parallel HDF5 write bandwidth through the project's io layer: every rank writes its blocks of an [N, C]
// float dataset with collective h5::write_rows, round by round as `mimic label` does; optional flush per
// round, contiguous or chunked layout; MPI-IO hints from MIMIC_IO_HINTS (printed as the library sees them).
#include "mimic/core/comm.hpp"
#include "mimic/core/runtime.hpp"
#include "mimic/core/timer.hpp"
#include "mimic/io/hdf5.hpp"

#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

using namespace mimic;

// usage: bench_h5write PATH ROWS COLS BLOCK_ROWS FLUSH(0|1) [CHUNK_ROWS (0: contiguous)]
int main(int argc, char** argv) {
    Runtime rt(argc, argv);
    par::Comm world;
    if (argc != 6 && argc != 7) {
        if (world.is_root())
            std::fprintf(
                stderr,
                "usage: bench_h5write PATH ROWS COLS BLOCK_ROWS FLUSH(0|1) [CHUNK_ROWS (0: contiguous)]\n");
        return 2;
    }
    const std::string path = argv[1];
    const std::int64_t N = std::atoll(argv[2]), C = std::atoll(argv[3]), B = std::atoll(argv[4]);
    const bool flush = std::atoi(argv[5]) != 0;
    const std::int64_t chunk = argc == 7 ? std::atoll(argv[6]) : 0;
    const int P = world.size(), me = world.rank();
    std::vector<float> buf(size_t(B * C));
    for (size_t i = 0; i < buf.size(); ++i)
        buf[i] = float(i % 1000) * 0.001f + float(me);

    try {
        h5::io_hints(); // a malformed MIMIC_IO_HINTS is a one-line error here, on every rank
    } catch (const Error& e) {
        if (world.is_root()) std::fprintf(stderr, "bench_h5write: error: %s\n", e.what());
        return 2;
    }
    MPI_Barrier(world.get());
    const double t0 = wall_seconds();
    {
        h5::File f = h5::File::create(path, P > 1 ? world.get() : MPI_COMM_NULL);
        h5::Handle d =
            h5::create_dataset(f, "/logits", H5T_NATIVE_FLOAT, {hsize_t(N), hsize_t(C)}, {chunk, 0});
        if (world.is_root() && f.parallel()) {
            std::string hints;
            for (const auto& [k, v] : f.mpi_hints())
                hints += (hints.empty() ? "" : ",") + k + "=" + v;
            std::printf("bench_h5write: MPI-IO hints given (MIMIC_IO_HINTS): %s\n", hints.c_str());
        }
        const std::int64_t blocks = (N + B - 1) / B, rounds = (blocks + P - 1) / P;
        for (std::int64_t r = 0; r < rounds; ++r) {
            const std::int64_t blk = r * P + me;
            const std::int64_t row0 = blk < blocks ? blk * B : 0,
                               n = blk < blocks ? std::min(B, N - row0) : 0;
            h5::write_rows(d, H5T_NATIVE_FLOAT, row0, n, buf.data(), f.parallel());
            if (flush) f.flush();
        }
        d.reset();
        f.close();
    }
    MPI_Barrier(world.get());
    const double el = wall_seconds() - t0;
    if (world.is_root())
        std::printf("bench_h5write: %d ranks, %lld x %lld floats (%.1f MB), block %lld rows, flush %d, chunk "
                    "%lld rows: %.3f s, %.1f MB/s\n",
                    P, (long long)N, (long long)C, double(N * C * 4) / 1e6, (long long)B, int(flush),
                    (long long)chunk, el, double(N * C * 4) / 1e6 / el);
    return 0;
}
