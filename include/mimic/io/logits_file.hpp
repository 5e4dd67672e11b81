// Logits files: the ensemble's averaged logits for every transfer row (/logits [N, C], float32 or
// float16), optional per-row variance and disagreement, provenance attributes and the block-done record.
#pragma once

#include "mimic/core/comm.hpp"
#include "mimic/io/dataset.hpp"
#include "mimic/io/half.hpp"
#include "mimic/io/hdf5.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace mimic::io {

/// Schema version written to every logits file (attribute `mimic_format`).
inline constexpr const char* kLogitsFormat = "mimic-logits-1";

struct LogitsMeta {
    std::int64_t n = 0;              ///< rows (= transfer set rows)
    int num_classes = 0;             ///< C
    std::int64_t block_rows = 0;     ///< rows per block (the unit of work and of restart)
    std::string combine = "logits";  ///< "logits" (mean of logits) or "prob" (mean of softmax(z/T))
    double temperature = 1.0;        ///< T for combine = prob
    std::string storage = "float32"; ///< "float32" or "float16"
    int num_members = 0;
    std::string ensemble_checksum;    ///< io::Manifest::ensemble_checksum()
    std::string member_checksums;     ///< one per line, member order
    std::string member_paths;         ///< one per line, member order
    std::string transfer_path;        ///< transfer set the logits belong to
    std::string transfer_fingerprint; ///< its fingerprint
    bool has_variance = false;        ///< /variance and /disagreement present
    bool complete = false;            ///< set only once every block is written
};

LogitsMeta read_logits_meta(const h5::File& f);
LogitsMeta read_logits_meta(const std::string& path);
void write_logits_meta(const h5::File& f, const LogitsMeta& m);

/// Refuses logits that do not belong to the transfer set (N, fingerprint) or are incomplete.
void check_logits_match(const std::string& logits_path, const LogitsMeta& lm,
                        const std::string& transfer_path, const DatasetMeta& tm);

/// The root attribute that marks block hashes taken over the values as stored (float16 rounding
/// included); float32 files hash the stored values whether or not they carry it.
inline constexpr const char* kBlockHashAttr = "block_hash";
inline constexpr const char* kBlockHashStored = "stored values";

/// Collective over comm (the file's communicator, or a one-rank comm for a serial file): reads every
/// block of a complete logits file once, the blocks dealt round-robin over the ranks, and compares each
/// with the hash recorded when it was written (/progress/block_hash), also refusing non-finite values.
/// Fails on every rank with one line naming the file and the first bad block's rows. Float16 files
/// written before their hashes covered the stored values are checked for finite values only.
void verify_logits_blocks(const h5::File& f, hid_t dset, const LogitsMeta& m, const par::Comm& comm);

/// Reads rows of /logits as float32 whatever the storage (collective when the file is parallel).
void read_logits_rows(const h5::File& f, hid_t dset, const LogitsMeta& m, std::int64_t row,
                      std::int64_t nrows, float* out);

} // namespace mimic::io
