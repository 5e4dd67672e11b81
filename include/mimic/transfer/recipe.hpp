// The transfer-set recipe: which output row copies or generates from which source row, and every
// per-row random choice, derived from (seed, row index) alone so the file is the same for any rank count.
#pragma once

#include <cstdint>
#include <string>

namespace mimic::transfer {

/// Generator ids stored per row in /provenance/generator.
enum Generator : std::int8_t { kSource = 0, kAugment = 1, kMunge = 2 };
/// The names, in id order, stored as the attribute `names` of /provenance/generator.
inline constexpr const char* kGeneratorNames = "source,augment,munge";

/// Seed streams: derive_seed(seed, row, stream).
enum Stream : std::uint64_t {
    kRowStream = 0,
    kNoiseStream = 1,
    kMungeStream = 2,
    kBetaStream = 3,
    kPassStream = 5
};

struct Recipe {
    std::uint64_t seed = 1;
    std::int64_t n = 0; ///< output rows
    std::int64_t s = 0; ///< source rows (all --from files concatenated)
    double w_augment = 0, w_munge = 0;
    int c = 1, h = 1, w = 1; ///< image shape
    int shift = 0;           ///< translation (pad-and-crop) by up to this many pixels each way
    bool flip = false;       ///< horizontal flip with probability 1/2
    double noise = 0;        ///< Gaussian noise sigma, in the units of /X
    double mixup_prob = 0;   ///< probability that an augmented row is mixed with a partner row
    double mixup_alpha = 1;  ///< lambda ~ Beta(alpha, alpha)
    double munge_p = 0.5;    ///< MUNGE swap probability per attribute
    double munge_s = 1;      ///< MUNGE spread divisor: sd = |e_a - e'_a| / s

    /// Rows that are plain copies of source rows: rows [0, copies()).
    std::int64_t copies() const { return n < s ? n : s; }
    /// Generated rows [copies(), n) exist.
    bool generates() const { return n > s; }
    bool uses_munge() const { return generates() && w_munge > 0; }
    bool uses_mixup() const { return generates() && w_augment > 0 && mixup_prob > 0; }

    /// The source row of output row i: i mod s when n >= s (row i is in pass i / s), else the evenly
    /// spaced subset floor(i * s / n).
    std::int64_t source_of(std::int64_t i) const;
    /// Mixup partner of source row e in pass k: (e + offset(k)) mod s, offset(k) in [1, s).
    std::int64_t mixup_offset(std::int64_t pass) const;
};

/// Every choice made for one output row.
struct RowPlan {
    std::int8_t gen = kSource;
    std::int64_t e = 0;          ///< source_of(i): the row whose window this row reads
    std::int64_t source_row = 0; ///< provenance: the row this one descends from
    std::int64_t partner_row =
        -1;                  ///< provenance: the second row (MUNGE neighbour or mixup partner), -1 if none
    bool munge_side = false; ///< MUNGE: false modifies e towards its neighbour, true the neighbour towards e
    int dx = 0, dy = 0;      ///< augment: translation in pixels (output(y, x) = input(y - dy, x - dx))
    bool flip = false;       ///< augment: mirror left-right (before the translation)
    bool mix = false;        ///< augment: mixup with partner_row
    float lambda = 1.0f;     ///< augment: weight of the source row in the mix
};

/// The augmentation choices of one row from its key (counters 2, 3 and 4 of CounterRng(key)): dx and dy
/// uniform in [-shift, shift] (0 when shift is 0), flip with probability 1/2 when `flip`. Shared by the
/// transfer recipe and the training batches' augmentation (train::BatchAugmenter).
void draw_augment(std::uint64_t key, int shift, bool flip, int& dx, int& dy, bool& mirror);

/// The plan for output row i. `neighbour` is the nearest neighbour of source_of(i) (needed for MUNGE rows
/// only; pass -1 when MUNGE is unused).
RowPlan plan_row(const Recipe& r, std::int64_t i, std::int64_t neighbour);

/// The generator of generated row i (i >= copies()), by the mix weights.
std::int8_t generator_of(const Recipe& r, std::int64_t i);

/// A Beta(alpha, alpha) draw from the counter-based stream `key` (host code).
double beta_symmetric(std::uint64_t key, double alpha);

/// One-line description of the recipe for logs.
std::string describe(const Recipe& r);

} // namespace mimic::transfer
