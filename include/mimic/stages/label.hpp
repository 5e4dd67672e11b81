// `mimic label`: ranks split an ensemble (member groups) and a transfer set (data shards), run every
// member on every row, and collectively write the averaged logits to a restartable parallel HDF5 file.
#pragma once

#include "mimic/core/comm.hpp"

#include <boost/program_options.hpp>

#include <cstdint>
#include <string>

namespace mimic::stages {

struct LabelOptions {
    std::string ensemble;            ///< manifest.h5
    std::string transfer;            ///< transfer set (dataset format; labels ignored)
    std::string out;                 ///< logits.h5
    int groups = 0;                  ///< member groups G (0: automatic); data shards S = ranks / G
    std::int64_t block_rows = 8192;  ///< rows per block: unit of work, of I/O and of restart
    std::int64_t batch = 256;        ///< rows per forward pass (divides block_rows)
    std::string combine = "logits";  ///< logits | prob
    double temperature = 1.0;        ///< T for combine = prob
    bool variance = false;           ///< also write /variance and /disagreement
    std::string storage = "float32"; ///< float32 | float16
    std::int64_t chunk_rows = 0;     ///< 0: contiguous /logits; else chunked by this many rows
    int deflate = 0;                 ///< deflate level for chunked storage (0: off)
    double memory_mb = 0;            ///< memory per rank for member weights (0: from /proc/meminfo)
    double flush_seconds = 0;        ///< 0: flush OUT.partial every round; S: at most every S seconds
    bool overwrite = false;          ///< replace an existing complete or foreign logits file
    std::string timings_csv;         ///< append per-phase timings to this CSV (scaling studies)
};

void describe(boost::program_options::options_description& desc, LabelOptions& o);
void run(const LabelOptions& o, const par::Comm& comm);

} // namespace mimic::stages
