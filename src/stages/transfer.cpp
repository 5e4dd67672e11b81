// `mimic transfer`: validates the sources and options, finds MUNGE neighbours (GEMM on Kokkos), then
// streams the output in blocks of rows (read windows, plan, generate, collective write) with provenance;
// a per-block done record in OUT.partial lets a killed run resume on any rank count.
#include "mimic/stages/transfer.hpp"

#include "mimic/core/log.hpp"
#include "mimic/core/progress.hpp"
#include "mimic/core/stop_signal.hpp"
#include "mimic/core/timer.hpp"
#include "mimic/io/block_record.hpp"
#include "mimic/io/dataset.hpp"
#include "mimic/io/dataset_set.hpp"
#include "mimic/io/paths.hpp"
#include "mimic/io/row_tally.hpp"
#include "mimic/io/transfer_file.hpp"
#include "mimic/transfer/generate.hpp"
#include "mimic/transfer/neighbours.hpp"
#include "mimic/transfer/recipe.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <memory>
#include <sstream>

namespace po = boost::program_options;

namespace mimic::stages {

// clang-format off
void describe(po::options_description& d, TransferOptions& o) {
    d.add_options()
        ("from", po::value(&o.from)->required(), "source dataset file; repeat for several (rows concatenated in order, labels dropped)")
        ("size", po::value(&o.size)->required(), "rows N of the transfer set: the source rows, then generated rows")
        ("out", po::value(&o.out)->required(), "output transfer file (dataset format: /X, no /y, plus /provenance)")
        ("seed", po::value(&o.seed)->default_value(o.seed), "global seed; row i draws from seeds derived from (seed, i)")
        ("subsample", po::bool_switch(&o.subsample), "allow N below the source rows: keep an evenly spaced subset")
        ("augment", po::value(&o.augment)->default_value(o.augment), "mix weight of augmented rows among the generated rows")
        ("munge", po::value(&o.munge)->default_value(o.munge), "mix weight of MUNGE rows among the generated rows")
        ("shift", po::value(&o.shift)->default_value(o.shift), "augment: random translation (pad and crop) by up to this many pixels")
        ("flip", po::bool_switch(&o.flip), "augment: horizontal flip with probability 1/2")
        ("noise", po::value(&o.noise)->default_value(o.noise), "augment: Gaussian noise sigma, in units of the stored values")
        ("mixup-prob", po::value(&o.mixup_prob)->default_value(o.mixup_prob), "augment: probability of mixing a row with a partner")
        ("mixup-alpha", po::value(&o.mixup_alpha)->default_value(o.mixup_alpha), "augment: mixup weight lambda ~ Beta(alpha, alpha)")
        ("munge-p", po::value(&o.munge_p)->default_value(o.munge_p), "MUNGE: per-attribute swap probability p in [0, 1]")
        ("munge-s", po::value(&o.munge_s)->default_value(o.munge_s), "MUNGE: spread divisor s > 0, sd = |e_a - e'_a| / s")
        ("block-rows", po::value(&o.block_rows)->default_value(o.block_rows), "output rows per block (memory ~ 4 x block-rows x D floats)")
        ("drop-nonfinite", po::bool_switch(&o.drop_nonfinite), "leave out source rows holding a NaN or infinite value, with a one-line notice of how many and which (without it such a row is an error)")
        ("flush-seconds", po::value(&o.flush_seconds)->default_value(o.flush_seconds), "S: flush OUT.partial once every S seconds, so a killed run redoes up to S seconds of work; 0: once per round of blocks (a stop by signal or --stop-after-blocks flushes everything written)")
        ("stop-after-blocks", po::value(&o.stop_after_blocks)->default_value(o.stop_after_blocks), "keep OUT.partial and stop after N rounds of blocks (testing and time-boxed jobs; 0: never)")
        ("store", po::value(&o.store)->default_value(o.store), "how /X is stored: fp32 | fp16 (half the bytes, rounded to IEEE half) | uint8 (only when every row is a copy of a uint8-stored source: no generated rows)")
        ("overwrite", po::bool_switch(&o.overwrite), "replace an existing output file, and discard a partial one from other settings");
}
// clang-format on

namespace {

using Int64View = Kokkos::View<std::int64_t*, Kokkos::LayoutRight, HostSpace>;

/// Global source rows held in a buffer, in the order of `ranges`.
struct Window {
    std::vector<par::Range> ranges;
    std::int64_t rows() const {
        std::int64_t n = 0;
        for (const auto& r : ranges)
            n += r.size();
        return n;
    }
    std::int64_t index_of(std::int64_t e) const {
        std::int64_t off = 0;
        for (const auto& r : ranges) {
            if (e >= r.begin && e < r.end) return off + (e - r.begin);
            off += r.size();
        }
        fail("internal: source row ", e, " is not in the loaded window");
    }
    bool operator==(const Window& o) const {
        if (ranges.size() != o.ranges.size()) return false;
        for (size_t i = 0; i < ranges.size(); ++i)
            if (ranges[i].begin != o.ranges[i].begin || ranges[i].end != o.ranges[i].end) return false;
        return true;
    }
};

/// Rows [lo, lo + count) of a cyclic row space of s rows as at most two ranges (all of it if count >= s).
Window cyclic_window(std::int64_t lo, std::int64_t count, std::int64_t s) {
    Window w;
    if (count <= 0) return w;
    if (count >= s) {
        w.ranges.push_back({0, s});
        return w;
    }
    lo %= s;
    if (lo + count <= s) {
        w.ranges.push_back({lo, lo + count});
    } else {
        w.ranges.push_back({lo, s});
        w.ranges.push_back({0, lo + count - s});
    }
    return w;
}

/// Removes the MUNGE scratch file (and its .partial) when the stage ends, however it ends.
struct ScratchFile {
    std::string path;
    const par::Comm& comm;
    ~ScratchFile() {
        if (comm.rank() == 0) {
            io::remove_file(path);
            io::remove_file(path + ".partial");
        }
    }
};

/// The largest --block-rows: a block of this many rows is gigabytes per rank already.
constexpr std::int64_t kMaxBlockRows = std::int64_t(1) << 24;

void validate_options(const TransferOptions& o) {
    auto finite = [](double v) { return std::isfinite(v); };
    if (o.from.empty()) fail("--from: give at least one source dataset file");
    if (o.out.empty()) fail("--out: the output path is empty");
    if (o.size < 1) fail("--size: must be at least 1, got ", o.size);
    if (o.block_rows < 1 || o.block_rows > kMaxBlockRows)
        fail("--block-rows: must be from 1 to ", kMaxBlockRows, " rows, got ", o.block_rows);
    if (o.stop_after_blocks < 0) fail("--stop-after-blocks: must be >= 0, got ", o.stop_after_blocks);
    if (!std::isfinite(o.flush_seconds) || o.flush_seconds < 0)
        fail("--flush-seconds: must be a finite number >= 0, got ", o.flush_seconds);
    if (!finite(o.munge_p) || o.munge_p < 0 || o.munge_p > 1)
        fail("--munge-p: the MUNGE swap probability must be in [0, 1], got ", o.munge_p);
    if (!finite(o.munge_s) || o.munge_s <= 0)
        fail("--munge-s: the MUNGE spread divisor s must be a positive number, got ", o.munge_s);
    if (!finite(o.augment) || o.augment < 0) fail("--augment: the mix weight must be >= 0, got ", o.augment);
    if (!finite(o.munge) || o.munge < 0) fail("--munge: the mix weight must be >= 0, got ", o.munge);
    if (o.shift < 0) fail("--shift: must be >= 0 pixels, got ", o.shift);
    if (!finite(o.noise) || o.noise < 0) fail("--noise: sigma must be >= 0, got ", o.noise);
    if (!finite(o.mixup_prob) || o.mixup_prob < 0 || o.mixup_prob > 1)
        fail("--mixup-prob: must be in [0, 1], got ", o.mixup_prob);
    if (!finite(o.mixup_alpha) || o.mixup_alpha <= 0) fail("--mixup-alpha: must be > 0, got ", o.mixup_alpha);
    io::parse_store("--store", o.store);
}

/// --store uint8 holds unchanged 8-bit rows: every source stored as uint8 and no generated rows (augmented
/// and MUNGE rows are not 8-bit pixels).
void check_store(const TransferOptions& o, const io::DatasetSet& src) {
    if (io::parse_store("--store", o.store) != io::Store::uint8) return;
    for (size_t i = 0; i < src.files(); ++i)
        if (src.reader(i).meta().store != io::Store::uint8)
            fail("--store uint8: ", src.reader(i).path(), " stores its rows as ",
                 io::store_name(src.reader(i).meta().store),
                 "; uint8 keeps copies of uint8 sources only (use --store fp16 or fp32)");
    if (o.size > src.rows())
        fail("--store uint8: ", o.size - src.rows(),
             " generated rows are not 8-bit pixels; uint8 keeps copies of the sources only (--size at most ",
             src.rows(), ", or --store fp16 or fp32)");
}

/// Rank 0: true when OUT is a finished transfer set made with these settings (a rerun is a no-op);
/// an OUT from other settings is refused unless --overwrite.
bool already_complete(const TransferOptions& o, const std::string& key) {
    if (!io::file_exists(o.out)) return false;
    std::string have;
    try {
        have = io::read_transfer_resume_key(h5::File::open(o.out));
    } catch (const Error&) {
        have.clear(); // not a readable transfer set: treated as made by other settings
    }
    if (have == key && !o.overwrite) return true;
    if (!o.overwrite)
        fail(o.out, ": the output file exists and was not made with these sources and settings; pass "
                    "--overwrite to replace it");
    return false;
}

/// Collective: a finished OUT counts as done only once its rows hash to its stored @fingerprint (every
/// row read once, whatever its size); one without, or that differs, is reported as corrupt, never reused.
void verify_finished(const TransferOptions& o, const par::Comm& comm) {
    try {
        par::agree(comm, [&] {
            io::DatasetReader r(o.out, comm);
            if (!h5::has_attr(r.file().id(), "fingerprint"))
                fail(o.out, ": has no @fingerprint, so its rows cannot be verified");
            if (r.fingerprint_pending()) r.verify_fingerprint(comm);
        });
    } catch (const CollectiveError& e) {
        throw par::collective_error(
            comm, detail::concat(e.what(), "; it is not reused: pass --overwrite to make it again"));
    }
}

void validate_against_sources(const TransferOptions& o, const io::DatasetSet& src) {
    const std::int64_t S = src.rows();
    const auto& m = src.meta();
    // /X as stored (--store) plus the provenance rows (int64 source, int8 generator, int64 partner), before
    // any allocation: the per-block record alone would take memory in proportion to --size.
    const io::Store store = io::parse_store("--store", o.store);
    const double bytes = store == io::Store::fp32 ? 4.0 : store == io::Store::fp16 ? 2.0 : 1.0;
    const char* type = store == io::Store::fp32 ? "float32" : store == io::Store::fp16 ? "float16" : "uint8";
    io::require_space(o.out, double(o.size) * (bytes * double(m.d) + 17.0),
                      detail::concat("--size ", o.size, " (", m.d, " ", type, " features per row)"));
    if (o.size < S && !o.subsample)
        fail("--size: ", o.size, " rows is smaller than the ", S,
             " source rows; pass --subsample to keep an "
             "evenly spaced subset of the sources");
    if (o.size <= S) return; // no generated rows: generator options are unused
    if (o.augment + o.munge <= 0)
        fail("--size: ", o.size, " rows exceeds the ", S,
             " source rows but no generator is enabled "
             "(give --augment and/or --munge a positive weight)");
    if (o.augment > 0) {
        if (o.shift == 0 && !o.flip && o.noise == 0 && o.mixup_prob == 0)
            fail("--augment: no augmentation is enabled (set --shift, --flip, --noise or --mixup-prob)");
        if ((o.shift > 0 || o.flip) && m.h == 1)
            fail("--shift/--flip: need image-shaped sources, but ", o.from.front(), " has shape (", m.c, ", ",
                 m.h, ", ", m.w, ")");
        if (o.shift >= std::min(m.h, m.w))
            fail("--shift: ", o.shift, " pixels is not smaller than the ", m.h, "x", m.w, " image");
        if (o.mixup_prob > 0 && S < 2) fail("--mixup-prob: mixup needs at least 2 source rows, found ", S);
    }
    if (o.munge > 0 && S < 2)
        fail("--munge: MUNGE needs at least 2 source rows to find neighbours, found ", S);
}

std::string join(const std::vector<std::string>& v, const std::string& sep) {
    std::string s;
    for (size_t i = 0; i < v.size(); ++i)
        s += (i ? sep : "") + v[i];
    return s;
}

/// Everything that decides the rows of the output and its block layout, as one line of text: a partial
/// file is resumed only when its key is the same (attribute `transfer_resume_key`).
std::string resume_key(const TransferOptions& o, const io::DatasetSet& src) {
    std::ostringstream k;
    k.precision(17);
    k << "n=" << o.size << ";seed=" << o.seed << ";subsample=" << o.subsample << ";augment=" << o.augment
      << ";munge=" << o.munge << ";shift=" << o.shift << ";flip=" << o.flip << ";noise=" << o.noise
      << ";mixup=" << o.mixup_prob << "," << o.mixup_alpha << ";munge_ps=" << o.munge_p << "," << o.munge_s
      << ";block_rows=" << o.block_rows << ";neighbour_block=" << transfer::kNeighbourBlock;
    if (o.store != "fp32") k << ";store=" << o.store;
    if (!src.dropped().empty()) k << ";dropped_nonfinite=" << src.dropped().size();
    k << ";sources=";
    for (size_t i = 0; i < src.files(); ++i)
        k << (i ? "," : "") << src.reader(i).meta().n << ":" << src.reader(i).meta().fingerprint;
    return k.str();
}

/// Rank 0: true to resume OUT.partial, false to start fresh (a stale partial file is removed or refused).
bool decide_resume(const TransferOptions& o, const std::string& key) {
    const std::string partial = o.out + ".partial";
    if (!io::file_exists(partial)) return false;
    if (o.overwrite) {
        io::remove_file(partial);
        return false;
    }
    std::string have;
    try {
        have = io::read_transfer_resume_key(h5::File::open(partial));
        if (have.empty()) fail("it has no transfer_resume_key");
    } catch (const Error& e) {
        log::info("transfer: ", partial, " is not a resumable partial file (", e.what(), "); starting over");
        io::remove_file(partial);
        return false;
    }
    if (have != key)
        fail(partial, ": a partial transfer set from other sources or settings exists; rerun with the same "
                      "options to resume it, or pass --overwrite to discard it");
    return true;
}

// --- plan: the sizes, the recipe and the block layout ------------------------------------------------------

/// What the options and the sources fix before any row is made: the sizes (S source rows of D features,
/// N output rows), the recipe, and the blocks: B rows each, the copies [0, C) and the generated rows
/// [C, N) blocked apart.
struct Plan {
    std::int64_t S = 0, D = 0, N = 0, B = 0, C = 0;
    std::int64_t copy_blocks = 0, num_blocks = 0;
    transfer::Recipe rc;
    std::string key; ///< the resume key (resume_key())
    bool subsample = false, mixup = false;

    /// Output rows of block k.
    par::Range block(std::int64_t k) const {
        return k < copy_blocks
                   ? par::Range{k * B, std::min(C, (k + 1) * B)}
                   : par::Range{C + (k - copy_blocks) * B, std::min(N, C + (k - copy_blocks + 1) * B)};
    }
};

/// --drop-nonfinite: finds the source rows with a NaN or infinite value (collective), leaves them out of
/// the row space and says so in one line.
void drop_nonfinite_rows(const TransferOptions& o, io::DatasetSet& src, const par::Comm& comm) {
    const std::int64_t total = src.rows();
    const std::vector<std::int64_t> bad = src.nonfinite_rows(comm, o.block_rows);
    if (bad.empty()) return;
    if (std::int64_t(bad.size()) == total)
        fail("--drop-nonfinite: every one of the ", total, " source rows holds a NaN or infinite value");
    std::string which;
    for (size_t i = 0; i < bad.size() && i < 3; ++i)
        which += (i ? ", " : "") + src.describe_row(bad[i]);
    if (bad.size() > 3) which += ", ...";
    log::info("transfer: --drop-nonfinite: dropped ", log::count(std::int64_t(bad.size()), "source row"),
              " of ", total, " holding a NaN or infinite value (", which, ")");
    src.drop_rows(bad);
}

/// Validates the options, opens the sources and checks the options against them (collective).
std::unique_ptr<io::DatasetSet> open_sources(const TransferOptions& o, const par::Comm& comm) {
    std::unique_ptr<io::DatasetSet> src;
    par::agree(comm, [&] {
        validate_options(o);
        src = std::make_unique<io::DatasetSet>(o.from, comm);
        src->set_nonfinite_advice("clean that row, or pass --drop-nonfinite to leave such rows out");
        if (o.drop_nonfinite) drop_nonfinite_rows(o, *src, comm);
        validate_against_sources(o, *src);
        check_store(o, *src);
    });
    return src;
}

Plan make_plan(const TransferOptions& o, const io::DatasetSet& src) {
    Plan p;
    const auto& sm = src.meta();
    p.S = src.rows(), p.D = src.d(), p.N = o.size;
    transfer::Recipe& rc = p.rc;
    rc.seed = o.seed;
    rc.n = p.N;
    rc.s = p.S;
    rc.w_augment = o.augment;
    rc.w_munge = o.munge;
    rc.c = sm.c, rc.h = sm.h, rc.w = sm.w;
    rc.shift = o.shift;
    rc.flip = o.flip;
    rc.noise = o.noise;
    rc.mixup_prob = o.mixup_prob;
    rc.mixup_alpha = o.mixup_alpha;
    rc.munge_p = o.munge_p;
    rc.munge_s = o.munge_s;
    log::info("transfer: ", transfer::describe(rc));
    if (p.N <= p.S && o.augment + o.munge > 0)
        log::info("transfer: note: --size <= source rows, so no rows are generated");

    p.B = o.block_rows, p.C = rc.copies();
    p.copy_blocks = (p.C + p.B - 1) / p.B;
    p.num_blocks = p.copy_blocks + (p.N - p.C + p.B - 1) / p.B;
    p.key = resume_key(o, src);
    p.subsample = p.N < p.S;
    p.mixup = rc.uses_mixup();
    return p;
}

// --- open the output: the dataset file, its provenance datasets and the done record
// -------------------------

struct Output {
    std::unique_ptr<io::DatasetWriter> writer;
    io::TransferProvenance prov;
    io::BlockRecord record;
    bool resume = false;
    bool coll = false; ///< collective writes (a parallel file)
};

/// A fresh output's provenance datasets, attributes and done record; the resume key goes last, after a
/// flush, so a partial file that has it has a valid done record.
void create_layout(const TransferOptions& o, const Plan& p, const io::DatasetSet& src, Output& out) {
    const auto& sm = src.meta();
    h5::File& f = out.writer->file();
    out.writer->set_normalization(sm.norm_kind, sm.norm_scale, src.norm_mean(), src.norm_std());
    out.prov = io::create_transfer_provenance(f, p.N, transfer::kGeneratorNames, src.dropped());
    io::TransferMeta m;
    m.sources = o.from;
    for (size_t i = 0; i < src.files(); ++i) {
        m.source_fingerprints.push_back(src.reader(i).meta().fingerprint);
        m.source_rows.push_back(src.reader(i).meta().n);
    }
    m.seed = o.seed, m.augment = o.augment, m.munge = o.munge, m.shift = o.shift, m.flip = o.flip;
    m.noise = o.noise, m.mixup_prob = o.mixup_prob, m.mixup_alpha = o.mixup_alpha;
    m.munge_p = o.munge_p, m.munge_s = o.munge_s;
    m.neighbour_block = transfer::kNeighbourBlock, m.block_rows = p.B;
    io::write_transfer_meta(f, m);
    out.record = io::BlockRecord::create(f, p.num_blocks);
    f.flush();
    io::write_transfer_resume_key(f, p.key);
    f.flush();
}

/// Opens OUT.partial to resume it, or creates it (collective).
Output open_output(const TransferOptions& o, const Plan& p, const io::DatasetSet& src, bool resume,
                   const par::Comm& comm) {
    Output out;
    out.resume = resume;
    io::DatasetMeta meta = src.meta();
    meta.n = p.N;
    meta.has_labels = false;
    meta.source = "transfer set from " + join(o.from, ", ");
    meta.store = io::parse_store("--store", o.store);
    out.writer = resume ? std::make_unique<io::DatasetWriter>(o.out, comm, meta, io::DatasetWriter::Resume{})
                        : std::make_unique<io::DatasetWriter>(o.out, comm, meta);
    h5::File& f = out.writer->file();
    out.coll = f.parallel();
    par::agree(comm, [&] {
        if (!resume) return create_layout(o, p, src, out);
        out.prov = io::open_transfer_provenance(f);
        out.record = io::BlockRecord::open(f);
    });
    out.writer->keep_partial(); // from here on a failed or killed run leaves a partial file the rerun resumes
    return out;
}

/// The blocks an earlier run finished (counted into the fingerprint) and those still to do.
struct Todo {
    std::int64_t rows_before = 0, blocks_before = 0;
    std::vector<std::int64_t> copy, gen; ///< blocks of source copies and of generated rows
};

Todo read_done_record(const Plan& p, Output& out, const par::Comm& comm) {
    Todo t;
    std::uint64_t hash_before = 0;
    out.record.read();
    // Done blocks are trusted only once their rows hash to what was recorded when they were written.
    if (out.resume)
        par::agree(comm, [&] {
            std::vector<std::int64_t> starts;
            for (std::int64_t k = 0; k < p.num_blocks; ++k)
                starts.push_back(p.block(k).begin);
            starts.push_back(p.N);
            io::verify_done_blocks(out.writer->file(), out.record.done(), out.record.hashes(), starts, comm);
        });
    for (std::int64_t k = 0; k < p.num_blocks; ++k) {
        if (out.record.done()[size_t(k)]) {
            t.rows_before += p.block(k).size();
            hash_before += out.record.hashes()[size_t(k)];
            ++t.blocks_before;
        } else {
            (k < p.copy_blocks ? t.copy : t.gen).push_back(k);
        }
    }
    if (comm.rank() == 0) out.writer->add_to_fingerprint(hash_before);
    if (out.resume)
        log::info("transfer: resuming ", out.writer->partial_path(), ": ", t.blocks_before, " of ",
                  log::count(p.num_blocks, "block"), " (", log::count(t.rows_before, "row"),
                  ") already done");
    return t;
}

// --- MUNGE: nearest neighbour of every source row, and a scratch copy of the neighbours' rows --------------

struct Neighbours {
    ScratchFile scratch;                  ///< removed when the stage ends
    bool on = false;                      ///< MUNGE rows remain to be generated
    std::unique_ptr<io::DatasetSet> rows; ///< row i: the neighbour of source row i
    h5::Handle index;                     ///< /neighbour of the scratch file
    double seconds = 0;

    Neighbours(std::string scratch_path, const par::Comm& comm) : scratch{std::move(scratch_path), comm} {}
};

/// Finds the neighbours when generated blocks remain to do (a resumed run finds them again: the search is
/// deterministic); writes them to /munge/neighbour of the output and the scratch file.
void find_neighbours(const Plan& p, const io::DatasetSet& src, Output& out, const Todo& todo,
                     PhaseTimers& timers, const par::Comm& comm, Neighbours& nbr) {
    nbr.on = p.rc.uses_munge() && !todo.gen.empty();
    if (!nbr.on) return;
    ScopedPhase phase(timers, "neighbours", "transfer::neighbours");
    const double t0 = wall_seconds();
    h5::File& f = out.writer->file();
    auto nbr_out = out.resume && f.has("/munge/neighbour")
                       ? h5::open_dataset(f, "/munge/neighbour")
                       : h5::create_dataset(f, "/munge/neighbour", H5T_NATIVE_INT64, {hsize_t(p.S)});
    io::DatasetMeta smeta = src.meta();
    smeta.n = p.S;
    smeta.has_labels = false;
    smeta.source = "MUNGE neighbour rows (scratch)";
    smeta.store = io::Store::fp32;
    {
        io::DatasetWriter scratch(nbr.scratch.path, comm, smeta);
        auto scratch_index =
            h5::create_dataset(scratch.file(), "/neighbour", H5T_NATIVE_INT64, {hsize_t(p.S)});
        Progress prog("transfer neighbours", transfer::neighbour_block_pairs(p.S), "block pairs");
        transfer::nearest_neighbours(
            src, comm,
            [&](std::int64_t begin, std::int64_t count, const std::int64_t* index, const float* rows) {
                h5::write_rows(nbr_out, H5T_NATIVE_INT64, begin, count, index, out.coll);
                h5::write_rows(scratch_index, H5T_NATIVE_INT64, begin, count, index,
                               scratch.file().parallel());
                scratch.write(begin, count, rows, nullptr);
            },
            transfer::kNeighbourBlock, &prog);
        prog.finish();
        scratch_index.reset();
        scratch.commit();
    }
    nbr.rows = std::make_unique<io::DatasetSet>(std::vector<std::string>{nbr.scratch.path}, comm);
    nbr.index = h5::open_dataset(nbr.rows->reader(0).file(), "/neighbour");
    nbr.seconds = wall_seconds() - t0;
}

// --- compute loop: read the windows of source rows, plan each row, generate, write ------------------------

/// The generator's parameters, and the normalisation it clamps to.
struct Generator {
    transfer::GenerateParams gp;
    Vector mean, stdev;
};

Generator make_generator(const TransferOptions& o, const io::DatasetSet& src) {
    const std::int64_t D = src.d();
    const auto& mv = src.norm_mean();
    const auto& sv = src.norm_std();
    Generator g{{}, Vector("mimic::transfer::norm_mean", D), Vector("mimic::transfer::norm_std", D)};
    auto mean_h = Kokkos::create_mirror_view(g.mean);
    auto std_h = Kokkos::create_mirror_view(g.stdev);
    for (std::int64_t j = 0; j < D; ++j) {
        mean_h(j) = mv[size_t(j)];
        std_h(j) = sv[size_t(j)];
    }
    Kokkos::deep_copy(g.mean, mean_h);
    Kokkos::deep_copy(g.stdev, std_h);
    const auto& sm = src.meta();
    g.gp.c = sm.c, g.gp.h = sm.h, g.gp.w = sm.w;
    g.gp.noise = float(o.noise);
    g.gp.munge_p = float(o.munge_p);
    g.gp.munge_s = float(o.munge_s);
    g.gp.per_feature = std::any_of(mv.begin(), mv.end(), [&](float v) { return v != mv.front(); }) ||
                       std::any_of(sv.begin(), sv.end(), [&](float v) { return v != sv.front(); });
    return g;
}

/// One block's buffers (source, neighbour, partner and output rows, the row specs, the provenance), and
/// the windows of source rows they hold: a read is skipped when the next block needs the same window.
struct Buffers {
    Matrix xa, xn, xp, xo;
    transfer::RowSpecs spec;
    Matrix::HostMirror xa_h, xn_h, xp_h, xo_h;
    transfer::RowSpecs::HostMirror spec_h;
    Int64View nb_h;
    std::vector<float> piece; ///< subsample: a piece of the spanned source rows
    std::vector<std::int64_t> p_src, p_par;
    std::vector<std::int8_t> p_gen;
    Window loaded_a, loaded_n, loaded_p;

    Buffers(const Plan& p, bool munge) {
        const std::int64_t cap = std::min(p.B, p.S), D = p.D, B = p.B;
        xa = Matrix("mimic::transfer::source_rows", cap, D);
        xn = Matrix("mimic::transfer::neighbour_rows", munge ? cap : 0, D);
        xp = Matrix("mimic::transfer::partner_rows", p.mixup ? cap : 0, D);
        xo = Matrix("mimic::transfer::out_rows", B, D);
        spec = transfer::RowSpecs("mimic::transfer::row_specs", B);
        xa_h = Kokkos::create_mirror_view(xa);
        xn_h = Kokkos::create_mirror_view(xn);
        xp_h = Kokkos::create_mirror_view(xp);
        xo_h = Kokkos::create_mirror_view(xo);
        spec_h = Kokkos::create_mirror_view(spec);
        nb_h = Int64View("mimic::transfer::neighbour_index", munge ? cap : 0);
        piece.resize(p.subsample ? size_t(B * D) : 0);
        p_src.resize(size_t(B));
        p_par.resize(size_t(B));
        p_gen.resize(size_t(B));
    }
};

/// One block: output rows [a, b), and the windows of source rows (wa) and mixup partners (wp) read for it.
struct Block {
    std::int64_t a = 0, b = 0;
    Window wa, wp;
    bool partners_in_a = false; ///< the partners are the source rows (the window holds all S of them)
    std::int64_t count() const { return b - a; }
};

/// Subsample: copies of rows floor(i * S / N); reads the spanned source rows in pieces of at most B rows.
void read_subsample(const Plan& p, io::DatasetSet& src, Buffers& buf, const Block& blk) {
    std::int64_t lo = 0, hi = 0;
    if (blk.count() > 0) lo = p.rc.source_of(blk.a), hi = p.rc.source_of(blk.b - 1) + 1;
    std::int64_t i = blk.a;
    for (std::int64_t p0 = lo; p0 < hi; p0 += p.B) {
        const par::Range pr{p0, std::min(hi, p0 + p.B)};
        src.read_ranges({pr}, buf.piece.data());
        for (; i < blk.b && p.rc.source_of(i) < pr.end; ++i)
            std::copy_n(buf.piece.data() + (p.rc.source_of(i) - pr.begin) * p.D, p.D,
                        buf.xa_h.data() + (i - blk.a) * p.D);
    }
    buf.loaded_a = Window{};
}

/// Mixup partners of the block: those of pass k are the window shifted by mixup_offset(k), at most two
/// passes per block.
Window partner_window(const Plan& p, const Block& blk) {
    if (blk.wa.rows() == p.S) return blk.wa;
    const std::int64_t a = blk.a, b = blk.b, S = p.S;
    Window wp;
    for (std::int64_t k = std::max(a, S) / S; blk.count() > 0 && k <= (b - 1) / S; ++k) {
        const std::int64_t lo = std::max({a, S, k * S}), hi = std::min(b, (k + 1) * S);
        if (hi <= lo) continue;
        auto w = cyclic_window(lo - k * S + p.rc.mixup_offset(k), hi - lo, S);
        wp.ranges.insert(wp.ranges.end(), w.ranges.begin(), w.ranges.end());
    }
    return wp;
}

/// Reads the block's source rows, and the neighbours' and partners' rows it needs, into the host buffers.
void read_block(const Plan& p, io::DatasetSet& src, const Neighbours& nbr, Buffers& buf, Block& blk) {
    if (p.subsample) return read_subsample(p, src, buf, blk);
    const std::vector<par::Range> none;
    blk.wa = cyclic_window(blk.a, blk.count(), p.S);
    src.read_ranges(blk.wa == buf.loaded_a ? none : blk.wa.ranges, buf.xa_h.data());
    buf.loaded_a = blk.wa;
    if (nbr.on) {
        const Window wn = blk.b > p.S ? blk.wa : Window{};
        const bool skip = wn == buf.loaded_n;
        nbr.rows->read_ranges(skip ? none : wn.ranges, buf.xn_h.data());
        io::read_row_ranges(nbr.index, H5T_NATIVE_INT64, 1, sizeof(std::int64_t), skip ? none : wn.ranges,
                            buf.nb_h.data());
        buf.loaded_n = wn;
    }
    if (p.mixup) {
        blk.wp = partner_window(p, blk);
        const bool reuse = blk.wp.rows() == p.S;
        const bool skip = reuse || blk.wp == buf.loaded_p;
        src.read_ranges(skip ? none : blk.wp.ranges, buf.xp_h.data());
        if (!reuse) buf.loaded_p = blk.wp;
    }
}

/// The row specs and provenance of the block's rows; counts the rows of each generator.
void plan_rows(const TransferOptions& o, const Plan& p, const io::DatasetSet& src, bool munge, Buffers& buf,
               Block& blk, std::array<long long, 3>& counts) {
    blk.partners_in_a = p.mixup && blk.wp.rows() == p.S;
    for (std::int64_t i = blk.a; i < blk.b; ++i) {
        const size_t r = size_t(i - blk.a);
        transfer::RowSpec s;
        transfer::set_row_keys(s, o.seed, i);
        if (p.subsample) {
            s.a = std::int32_t(r);
            buf.p_src[r] = src.source_row(p.rc.source_of(i));
            buf.p_par[r] = -1;
            buf.p_gen[r] = transfer::kSource;
        } else {
            const std::int64_t ia = blk.wa.index_of(p.rc.source_of(i));
            const std::int64_t nb = munge && i >= p.S ? buf.nb_h(ia) : -1;
            const auto row = transfer::plan_row(p.rc, i, nb);
            s.a = std::int32_t(ia);
            s.gen = row.gen;
            s.side = row.munge_side;
            s.flip = row.flip;
            s.mix = row.mix;
            s.dx = std::int16_t(row.dx);
            s.dy = std::int16_t(row.dy);
            s.lambda = row.lambda;
            if (row.mix)
                s.p = std::int32_t(blk.partners_in_a ? blk.wa.index_of(row.partner_row)
                                                     : blk.wp.index_of(row.partner_row));
            // Provenance names global source rows, also when --drop-nonfinite left rows out.
            buf.p_src[r] = src.source_row(row.source_row);
            buf.p_par[r] = row.partner_row < 0 ? -1 : src.source_row(row.partner_row);
            buf.p_gen[r] = row.gen;
        }
        ++counts[size_t(buf.p_gen[r])];
        buf.spec_h(r) = s;
    }
}

/// Generates the block's rows on the device into buf.xo_h.
void generate_block(const Generator& g, bool munge, bool mixup, Buffers& buf, const Block& blk) {
    Kokkos::deep_copy(buf.xa, buf.xa_h);
    if (munge) Kokkos::deep_copy(buf.xn, buf.xn_h);
    if (mixup) Kokkos::deep_copy(buf.xp, buf.xp_h);
    Kokkos::deep_copy(buf.spec, buf.spec_h);
    transfer::generate_rows(g.gp, buf.spec, blk.count(), buf.xa, buf.xn, blk.partners_in_a ? buf.xa : buf.xp,
                            g.mean, g.stdev, buf.xo);
    Kokkos::deep_copy(buf.xo_h, buf.xo);
}

// --- write: the rows and provenance of a block, then its done record ---------------------------------------

/// Collective write of block k's rows (none when this rank has no block this round), added to the done
/// record, which commits every round or drains every --flush-seconds (io::BlockRecord): a done flag never
/// points at rows that are not on disk.
void write_block(Output& out, const Buffers& buf, const Block& blk, bool have_block, std::int64_t k,
                 double flush_seconds, const par::Comm& comm) {
    const unsigned long long h = out.writer->write(blk.a, blk.count(), buf.xo_h.data(), nullptr);
    h5::write_rows(out.prov.source_row, H5T_NATIVE_INT64, blk.a, blk.count(), buf.p_src.data(), out.coll);
    h5::write_rows(out.prov.generator, H5T_NATIVE_INT8, blk.a, blk.count(), buf.p_gen.data(), out.coll);
    h5::write_rows(out.prov.partner_row, H5T_NATIVE_INT64, blk.a, blk.count(), buf.p_par.data(), out.coll);
    out.record.add_and_flush(have_block, have_block ? k : 0, h, flush_seconds, comm);
}

/// This rank's blocks: copies are cheap and generated rows are not, so each rank takes a contiguous share
/// of each kind.
std::vector<std::int64_t> my_blocks(const Todo& todo, const par::Comm& comm) {
    std::vector<std::int64_t> mine;
    for (const auto* list : {&todo.copy, &todo.gen}) {
        const auto share = par::split_range(std::int64_t(list->size()), comm.size(), comm.rank());
        for (std::int64_t t = share.begin; t < share.end; ++t)
            mine.push_back((*list)[size_t(t)]);
    }
    return mine;
}

struct LoopResult {
    bool stopped = false;
    std::int64_t done_rows = 0; ///< rows this rank made
    double seconds = 0;
    std::array<long long, 3> counts{}; ///< rows this rank made per generator (source, augment, MUNGE)
};

/// The compute loop: every rank runs the same number of rounds (collective writes), one of its blocks per
/// round; stops early on a signal on any rank or after --stop-after-blocks rounds.
LoopResult generate_blocks(const TransferOptions& o, const Plan& p, io::DatasetSet& src, Output& out,
                           const Todo& todo, const Neighbours& nbr, PhaseTimers& timers,
                           const par::Comm& comm) {
    const std::vector<std::int64_t> mine = my_blocks(todo, comm);
    const std::int64_t iters = std::int64_t(comm.max(double(mine.size())));
    Buffers buf(p, nbr.on);
    const Generator gen = make_generator(o, src);
    LoopResult res;
    Progress prog("transfer", p.N, "rows");
    const double t0 = wall_seconds();
    for (std::int64_t it = 0; it < iters; ++it) {
        const bool have_block = it < std::int64_t(mine.size());
        const par::Range chunk = have_block ? p.block(mine[size_t(it)]) : par::Range{};
        Block blk{chunk.begin, chunk.end, {}, {}, false};
        {
            ScopedPhase phase(timers, "read", "transfer::read");
            read_block(p, src, nbr, buf, blk);
        }
        {
            ScopedPhase phase(timers, "generate", "transfer::generate");
            plan_rows(o, p, src, nbr.on, buf, blk, res.counts);
            generate_block(gen, nbr.on, p.mixup, buf, blk);
        }
        {
            ScopedPhase phase(timers, "write", "transfer::write");
            write_block(out, buf, blk, have_block, have_block ? mine[size_t(it)] : 0, o.flush_seconds, comm);
        }
        res.done_rows += blk.count();
        prog.update(todo.rows_before + comm.sum_ll(res.done_rows));
        // Stop requests: a signal on any rank, or --stop-after-blocks (rounds of this run).
        // After the last round the output is whole: a late signal no longer turns it into a failure.
        if (it + 1 < iters && (comm.any(StopSignals::received() != 0) ||
                               (o.stop_after_blocks > 0 && it + 1 >= o.stop_after_blocks))) {
            res.stopped = true;
            break;
        }
    }
    {
        ScopedPhase phase(timers, "write", "transfer::write");
        out.record.drain(); // a stopped run keeps every block it wrote
    }
    res.seconds = wall_seconds() - t0;
    prog.finish();
    return res;
}

// --- finish: a stopped run keeps OUT.partial; a whole one commits OUT and reports
// ---------------------------

void report_stopped(const Plan& p, const Output& out, const Todo& todo, const LoopResult& res,
                    const par::Comm& comm) {
    const std::int64_t rows_now = todo.rows_before + comm.sum_ll(res.done_rows);
    const bool by_signal = comm.any(StopSignals::received() != 0);
    log::info("transfer: stopped (", by_signal ? "signal" : "--stop-after-blocks", ") with ", rows_now,
              " of ", p.N, " rows written; ", out.writer->partial_path(),
              " keeps them: rerun the same command to resume");
    if (by_signal)
        throw CollectiveError("transfer: interrupted by a signal; " + out.writer->partial_path() +
                              " keeps the finished blocks, rerun the same command to resume");
}

void report_summary(const TransferOptions& o, const Plan& p, const Output& out, const Todo& todo,
                    LoopResult res, const std::string& fingerprint, double total, double t_neighbours,
                    const par::Comm& comm) {
    for (auto& c : res.counts)
        c = comm.sum_ll(c);
    log::info("");
    log::info("transfer summary: ", o.out, ": ", p.N, " rows x ", p.D, " (",
              out.resume ? "rows made by this run: " : "", res.counts[0], " source copies, ", res.counts[1],
              " augmented, ", res.counts[2], " MUNGE), fingerprint ", fingerprint);
    const std::int64_t made = p.N - todo.rows_before; // rows of this run (all of them unless resumed)
    char line[256];
    std::snprintf(line, sizeof line,
                  "  %.0f rows/s overall (%.2f s on %d rank%s); generate+write %.0f rows/s (%.2f s); "
                  "neighbours %.2f s",
                  double(made) / total, total, comm.size(), comm.size() == 1 ? "" : "s",
                  double(made) / res.seconds, res.seconds, t_neighbours);
    log::info(line);
}

} // namespace

void run(const TransferOptions& o, const par::Comm& comm) {
    PhaseTimers timers;
    const double t_start = wall_seconds();

    // Plan: the options checked against the sources, the sizes, the recipe and the blocks.
    const auto lock = io::claim_outputs({o.out}, o.from, comm.get());
    std::unique_ptr<io::DatasetSet> src = open_sources(o, comm);
    const Plan plan = make_plan(o, *src);

    // Open the output: rank 0 looks at the files and decides whether to resume, everyone follows.
    bool resume = false, done = false;
    par::agree(comm, [&] {
        if (comm.rank() == 0) done = already_complete(o, plan.key);
        if (comm.rank() == 0 && !done) resume = decide_resume(o, plan.key);
    });
    if (comm.any(done)) {
        verify_finished(o, comm);
        StopSignals::output_complete();
        if (comm.rank() == 0) // a scratch file left by a run killed after its commit
            for (const char* ext : {".neighbours", ".neighbours.partial"})
                io::remove_file(o.out + ext);
        log::info("transfer: ", o.out, " is already complete with these sources and settings; nothing to do");
        return;
    }
    resume = comm.any(resume);
    Output out = open_output(o, plan, *src, resume, comm);
    const Todo todo = read_done_record(plan, out, comm);
    Neighbours nbr(o.out + ".neighbours", comm);
    find_neighbours(plan, *src, out, todo, timers, comm, nbr);

    // Compute loop: each rank streams its blocks (read, generate, write) until done or stopped.
    StopSignals stop_signals;
    const LoopResult res = generate_blocks(o, plan, *src, out, todo, nbr, timers, comm);
    out.prov = {};
    out.record.close();
    nbr.index.reset();
    nbr.rows.reset();

    // Finish: keep OUT.partial when stopped, else commit OUT and report.
    if (res.stopped) return report_stopped(plan, out, todo, res, comm);
    std::string fingerprint;
    {
        ScopedPhase phase(timers, "commit", "transfer::commit");
        fingerprint = out.writer->commit();
    }
    StopSignals::output_complete(); // OUT is in place: a late SIGTERM no longer makes this a failure
    report_summary(o, plan, out, todo, res, fingerprint, wall_seconds() - t_start, nbr.seconds, comm);
    timers.report(comm, "transfer timings");
}

} // namespace mimic::stages
