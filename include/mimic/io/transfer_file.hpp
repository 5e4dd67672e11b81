// Transfer files: a dataset file (io/dataset.hpp) plus each row's provenance (/provenance/...), the
// recipe as root attributes `transfer_*` and the resume key (docs/formats.md, "Transfer files").
#pragma once

#include "mimic/io/hdf5.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace mimic::io {

/// Schema version written to every transfer file (attribute `transfer_format`).
inline constexpr const char* kTransferFormat = "mimic-transfer-1";

/// The recipe a transfer file records: its sources and every generator setting.
struct TransferMeta {
    std::vector<std::string> sources;             ///< the --from paths, in order
    std::vector<long long> source_rows;           ///< rows of each source file
    std::vector<std::string> source_fingerprints; ///< each source's @fingerprint
    std::uint64_t seed = 0;
    double augment = 0, munge = 0; ///< mix weights
    long long shift = 0;
    bool flip = false;
    double noise = 0, mixup_prob = 0, mixup_alpha = 0, munge_p = 0, munge_s = 0;
    long long neighbour_block = 0; ///< rows per block of the neighbour search
    long long block_rows = 0;      ///< --block-rows of the run that wrote the file
};

/// /provenance/{source_row, generator, partner_row} of a transfer file.
struct TransferProvenance {
    h5::Handle source_row, generator, partner_row;
};

/// Creates the provenance datasets of n rows (generator ids named by `generator_names`, attribute `names`)
/// and, when rows were dropped, /provenance/dropped_rows.
TransferProvenance create_transfer_provenance(const h5::File& f, std::int64_t n,
                                              const std::string& generator_names,
                                              const std::vector<std::int64_t>& dropped);
TransferProvenance open_transfer_provenance(const h5::File& f);

/// Writes the recipe as root attributes (the resume key apart: write_transfer_resume_key).
void write_transfer_meta(const h5::File& f, const TransferMeta& m);
/// Writes `transfer_resume_key`: every setting that decides the rows and the blocks, one line of text.
void write_transfer_resume_key(const h5::File& f, const std::string& key);
/// The resume key of an open transfer file; empty when it has none.
std::string read_transfer_resume_key(const h5::File& f);

} // namespace mimic::io
