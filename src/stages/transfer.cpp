// `mimic transfer`: validates the sources and options, finds MUNGE neighbours (GEMM on Kokkos), then
// streams the output in blocks of rows (read windows, plan, generate, collective write) with provenance;
// a per-block done record in OUT.partial lets a killed run resume on any rank count.
#include "mimic/stages/transfer.hpp"

#include "mimic/core/log.hpp"
#include "mimic/core/progress.hpp"
#include "mimic/core/stop_signal.hpp"
#include "mimic/core/timer.hpp"
#include "mimic/io/block_record.hpp"
#include "mimic/io/dataset_set.hpp"
#include "mimic/transfer/generate.hpp"
#include "mimic/transfer/neighbours.hpp"
#include "mimic/transfer/recipe.hpp"

#include <algorithm>
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
        ("stop-after-blocks", po::value(&o.stop_after_blocks)->default_value(o.stop_after_blocks), "keep OUT.partial and stop after N rounds of blocks (testing and time-boxed jobs; 0: never)")
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

void validate_options(const TransferOptions& o) {
    auto finite = [](double v) { return std::isfinite(v); };
    if (o.from.empty()) fail("--from: give at least one source dataset file");
    if (o.out.empty()) fail("--out: the output path is empty");
    if (o.size < 1) fail("--size: must be at least 1, got ", o.size);
    if (o.block_rows < 1) fail("--block-rows: must be at least 1, got ", o.block_rows);
    if (o.stop_after_blocks < 0) fail("--stop-after-blocks: must be >= 0, got ", o.stop_after_blocks);
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
    for (const auto& f : o.from)
        if (f == o.out) fail("--out: ", o.out, " is also a --from source");
    if (io::file_exists(o.out) && !o.overwrite)
        fail(o.out, ": the output file exists; pass --overwrite to replace it");
}

void validate_against_sources(const TransferOptions& o, const io::DatasetSet& src) {
    const std::int64_t S = src.rows();
    const auto& m = src.meta();
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
      << ";block_rows=" << o.block_rows << ";neighbour_block=" << transfer::kNeighbourBlock << ";sources=";
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
        auto f = h5::File::open(partial);
        have = h5::read_attr_string(f.id(), "transfer_resume_key");
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

} // namespace

void run(const TransferOptions& o, const par::Comm& comm) {
    PhaseTimers timers;
    const double t_start = wall_seconds();
    std::unique_ptr<io::DatasetSet> src;
    par::agree(comm, [&] {
        validate_options(o);
        src = std::make_unique<io::DatasetSet>(o.from, comm);
        validate_against_sources(o, *src);
    });
    const std::int64_t S = src->rows(), D = src->d(), N = o.size;
    const auto& sm = src->meta();

    transfer::Recipe rc;
    rc.seed = o.seed;
    rc.n = N;
    rc.s = S;
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
    if (N <= S && o.augment + o.munge > 0)
        log::info("transfer: note: --size <= source rows, so no rows are generated");

    // --- the blocks: B rows each, the copies [0, C) and the generated rows [C, N) blocked apart --------
    const std::int64_t B = o.block_rows, C = rc.copies();
    const std::int64_t copy_blocks = (C + B - 1) / B, num_blocks = copy_blocks + (N - C + B - 1) / B;
    auto block_rows = [&](std::int64_t k) {
        return k < copy_blocks
                   ? par::Range{k * B, std::min(C, (k + 1) * B)}
                   : par::Range{C + (k - copy_blocks) * B, std::min(N, C + (k - copy_blocks + 1) * B)};
    };

    // --- resume decision (rank 0 looks at the files, everyone follows) --------------------------------
    const std::string key = resume_key(o, *src);
    bool resume = false;
    par::agree(comm, [&] {
        if (comm.rank() == 0) resume = decide_resume(o, key);
    });
    resume = comm.any(resume);

    // --- the output file, its provenance datasets and the done record ---------------------------------
    io::DatasetMeta meta = sm;
    meta.n = N;
    meta.has_labels = false;
    meta.source = "transfer set from " + join(o.from, ", ");
    std::unique_ptr<io::DatasetWriter> writer_ptr =
        resume ? std::make_unique<io::DatasetWriter>(o.out, comm, meta, io::DatasetWriter::Resume{})
               : std::make_unique<io::DatasetWriter>(o.out, comm, meta);
    io::DatasetWriter& writer = *writer_ptr;
    h5::File& f = writer.file();
    const bool coll = f.parallel();
    h5::Handle prov_src, prov_gen, prov_par;
    io::BlockRecord record;
    par::agree(comm, [&] {
        if (resume) {
            prov_src = h5::open_dataset(f, "/provenance/source_row");
            prov_gen = h5::open_dataset(f, "/provenance/generator");
            prov_par = h5::open_dataset(f, "/provenance/partner_row");
            record = io::BlockRecord::open(f);
            return;
        }
        writer.set_normalization(sm.norm_kind, sm.norm_scale, src->norm_mean(), src->norm_std());
        prov_src = h5::create_dataset(f, "/provenance/source_row", H5T_NATIVE_INT64, {hsize_t(N)});
        prov_gen = h5::create_dataset(f, "/provenance/generator", H5T_NATIVE_INT8, {hsize_t(N)});
        prov_par = h5::create_dataset(f, "/provenance/partner_row", H5T_NATIVE_INT64, {hsize_t(N)});
        h5::write_attr(prov_gen, "names", transfer::kGeneratorNames);
        const hid_t root = f.id();
        std::vector<std::string> fps;
        std::vector<long long> rows;
        for (size_t i = 0; i < src->files(); ++i) {
            fps.push_back(src->reader(i).meta().fingerprint);
            rows.push_back(src->reader(i).meta().n);
        }
        h5::write_attr(root, "transfer_format", "mimic-transfer-1");
        h5::write_attr(root, "transfer_sources", join(o.from, "\n"));
        h5::write_attr(root, "transfer_source_rows", rows);
        h5::write_attr(root, "transfer_source_fingerprints", join(fps, "\n"));
        h5::write_attr(root, "transfer_seed", std::to_string(o.seed));
        h5::write_attr(root, "transfer_weights", std::vector<double>{o.augment, o.munge});
        h5::write_attr(root, "transfer_shift", (long long)o.shift);
        h5::write_attr(root, "transfer_flip", (long long)o.flip);
        h5::write_attr(root, "transfer_noise", o.noise);
        h5::write_attr(root, "transfer_mixup_prob", o.mixup_prob);
        h5::write_attr(root, "transfer_mixup_alpha", o.mixup_alpha);
        h5::write_attr(root, "transfer_munge_p", o.munge_p);
        h5::write_attr(root, "transfer_munge_s", o.munge_s);
        h5::write_attr(root, "transfer_neighbour_block", (long long)transfer::kNeighbourBlock);
        h5::write_attr(root, "transfer_block_rows", (long long)B);
        // The resume key goes last, after a flush: a partial file that has it has a valid done record.
        record = io::BlockRecord::create(f, num_blocks);
        f.flush();
        h5::write_attr(root, "transfer_resume_key", key);
        f.flush();
    });
    writer.keep_partial(); // from here on a failed or killed run leaves a partial file the rerun resumes

    record.read();
    std::int64_t rows_done_before = 0, blocks_done_before = 0;
    std::uint64_t hash_before = 0;
    std::vector<std::int64_t> todo_copy, todo_gen;
    for (std::int64_t k = 0; k < num_blocks; ++k) {
        if (record.done()[size_t(k)]) {
            rows_done_before += block_rows(k).size();
            hash_before += record.hashes()[size_t(k)];
            ++blocks_done_before;
        } else {
            (k < copy_blocks ? todo_copy : todo_gen).push_back(k);
        }
    }
    if (comm.rank() == 0) writer.add_to_fingerprint(hash_before);
    if (resume)
        log::info("transfer: resuming ", writer.partial_path(), ": ", blocks_done_before, " of ",
                  log::count(num_blocks, "block"), " (", log::count(rows_done_before, "row"),
                  ") already done");

    // --- MUNGE: nearest neighbour of every source row, and a scratch copy of the neighbours' rows ---
    ScratchFile scratch_guard{o.out + ".neighbours", comm};
    std::unique_ptr<io::DatasetSet> nbr_rows;
    h5::Handle nbr_index;
    double t_neighbours = 0;
    // (A resumed run finds them again when generated blocks remain: the search is deterministic.)
    const bool munge = rc.uses_munge() && !todo_gen.empty();
    if (munge) {
        ScopedPhase phase(timers, "neighbours", "transfer::neighbours");
        const double t0 = wall_seconds();
        auto nbr_out = resume && f.has("/munge/neighbour")
                           ? h5::open_dataset(f, "/munge/neighbour")
                           : h5::create_dataset(f, "/munge/neighbour", H5T_NATIVE_INT64, {hsize_t(S)});
        io::DatasetMeta smeta = sm;
        smeta.n = S;
        smeta.has_labels = false;
        smeta.source = "MUNGE neighbour rows (scratch)";
        {
            io::DatasetWriter scratch(scratch_guard.path, comm, smeta);
            auto scratch_index =
                h5::create_dataset(scratch.file(), "/neighbour", H5T_NATIVE_INT64, {hsize_t(S)});
            Progress prog("transfer neighbours", transfer::neighbour_block_pairs(S), "block pairs");
            transfer::nearest_neighbours(
                *src, comm,
                [&](std::int64_t begin, std::int64_t count, const std::int64_t* index, const float* rows) {
                    h5::write_rows(nbr_out, H5T_NATIVE_INT64, begin, count, index, coll);
                    h5::write_rows(scratch_index, H5T_NATIVE_INT64, begin, count, index,
                                   scratch.file().parallel());
                    scratch.write(begin, count, rows, nullptr);
                },
                transfer::kNeighbourBlock, &prog);
            prog.finish();
            scratch_index.reset();
            scratch.commit();
        }
        nbr_rows = std::make_unique<io::DatasetSet>(std::vector<std::string>{scratch_guard.path}, comm);
        nbr_index = h5::open_dataset(nbr_rows->reader(0).file(), "/neighbour");
        t_neighbours = wall_seconds() - t0;
    }

    // --- generation: each rank streams a contiguous run of the blocks still to do ---------------------
    // Copies are cheap and generated rows are not: each rank takes a contiguous share of each kind.
    std::vector<std::int64_t> mine;
    for (const auto* todo : {&todo_copy, &todo_gen}) {
        const auto share = par::split_range(std::int64_t(todo->size()), comm.size(), comm.rank());
        for (std::int64_t t = share.begin; t < share.end; ++t)
            mine.push_back((*todo)[size_t(t)]);
    }
    const std::int64_t iters = std::int64_t(comm.max(double(mine.size())));
    std::int64_t done_rows = 0;
    const std::int64_t cap = std::min(B, S);
    const bool subsample = N < S, mixup = rc.uses_mixup();

    Matrix xa("mimic::transfer::source_rows", cap, D);
    Matrix xn("mimic::transfer::neighbour_rows", munge ? cap : 0, D);
    Matrix xp("mimic::transfer::partner_rows", mixup ? cap : 0, D);
    Matrix xo("mimic::transfer::out_rows", B, D);
    transfer::RowSpecs spec("mimic::transfer::row_specs", B);
    auto xa_h = Kokkos::create_mirror_view(xa);
    auto xn_h = Kokkos::create_mirror_view(xn);
    auto xp_h = Kokkos::create_mirror_view(xp);
    auto xo_h = Kokkos::create_mirror_view(xo);
    auto spec_h = Kokkos::create_mirror_view(spec);
    Int64View nb_h("mimic::transfer::neighbour_index", munge ? cap : 0);
    std::vector<float> piece(subsample ? size_t(B * D) : 0);
    std::vector<std::int64_t> p_src(static_cast<size_t>(B)), p_par(static_cast<size_t>(B));
    std::vector<std::int8_t> p_gen(static_cast<size_t>(B));

    Vector mean("mimic::transfer::norm_mean", D), stdev("mimic::transfer::norm_std", D);
    {
        auto mean_h = Kokkos::create_mirror_view(mean);
        auto std_h = Kokkos::create_mirror_view(stdev);
        for (std::int64_t j = 0; j < D; ++j) {
            mean_h(j) = src->norm_mean()[size_t(j)];
            std_h(j) = src->norm_std()[size_t(j)];
        }
        Kokkos::deep_copy(mean, mean_h);
        Kokkos::deep_copy(stdev, std_h);
    }
    transfer::GenerateParams gp;
    gp.c = sm.c, gp.h = sm.h, gp.w = sm.w;
    gp.noise = float(o.noise);
    gp.munge_p = float(o.munge_p);
    gp.munge_s = float(o.munge_s);
    {
        const auto& mv = src->norm_mean();
        const auto& sv = src->norm_std();
        gp.per_feature = std::any_of(mv.begin(), mv.end(), [&](float v) { return v != mv.front(); }) ||
                         std::any_of(sv.begin(), sv.end(), [&](float v) { return v != sv.front(); });
    }

    Window loaded_a, loaded_n, loaded_p; // windows whose rows the buffers hold (reads are skipped when equal)
    long long counts[3] = {0, 0, 0};
    Progress prog("transfer", N, "rows");
    StopSignals stop_signals;
    bool stopped = false;
    const double t_gen0 = wall_seconds();
    for (std::int64_t it = 0; it < iters; ++it) {
        const bool have_block = it < std::int64_t(mine.size());
        const par::Range chunk = have_block ? block_rows(mine[size_t(it)]) : par::Range{};
        const std::int64_t a = chunk.begin, b = chunk.end, count = b - a;
        Window wa, wp;
        {
            ScopedPhase phase(timers, "read", "transfer::read");
            if (subsample) {
                // Copies of rows floor(i * S / N): read the spanned source rows in pieces of at most B rows.
                std::int64_t lo = 0, hi = 0;
                if (count > 0) lo = rc.source_of(a), hi = rc.source_of(b - 1) + 1;
                std::int64_t i = a;
                for (std::int64_t p0 = lo; p0 < hi; p0 += B) {
                    const par::Range pr{p0, std::min(hi, p0 + B)};
                    src->read_ranges({pr}, piece.data());
                    for (; i < b && rc.source_of(i) < pr.end; ++i)
                        std::copy_n(piece.data() + (rc.source_of(i) - pr.begin) * D, D,
                                    xa_h.data() + (i - a) * D);
                }
                loaded_a = Window{};
            } else {
                wa = cyclic_window(a, count, S);
                src->read_ranges(wa == loaded_a ? std::vector<par::Range>{} : wa.ranges, xa_h.data());
                loaded_a = wa;
                if (munge) {
                    const Window wn = b > S ? wa : Window{};
                    const bool skip = wn == loaded_n;
                    nbr_rows->read_ranges(skip ? std::vector<par::Range>{} : wn.ranges, xn_h.data());
                    io::read_row_ranges(nbr_index, H5T_NATIVE_INT64, 1, sizeof(std::int64_t),
                                        skip ? std::vector<par::Range>{} : wn.ranges, nb_h.data());
                    loaded_n = wn;
                }
                if (mixup) {
                    // Partners of pass k are the window shifted by mixup_offset(k): at most two passes per
                    // block.
                    if (wa.rows() == S) {
                        wp = wa;
                    } else {
                        for (std::int64_t k = std::max(a, S) / S; count > 0 && k <= (b - 1) / S; ++k) {
                            const std::int64_t lo = std::max({a, S, k * S}), hi = std::min(b, (k + 1) * S);
                            if (hi <= lo) continue;
                            auto w = cyclic_window(lo - k * S + rc.mixup_offset(k), hi - lo, S);
                            wp.ranges.insert(wp.ranges.end(), w.ranges.begin(), w.ranges.end());
                        }
                    }
                    const bool reuse = wp.rows() == S;
                    const bool skip = reuse || wp == loaded_p;
                    src->read_ranges(skip ? std::vector<par::Range>{} : wp.ranges, xp_h.data());
                    if (!reuse) loaded_p = wp;
                }
            }
        }
        {
            ScopedPhase phase(timers, "generate", "transfer::generate");
            const bool partners_in_a = mixup && wp.rows() == S;
            for (std::int64_t i = a; i < b; ++i) {
                const std::int64_t r = i - a;
                transfer::RowSpec s;
                transfer::set_row_keys(s, o.seed, i);
                if (subsample) {
                    s.a = std::int32_t(r);
                    p_src[size_t(r)] = rc.source_of(i);
                    p_par[size_t(r)] = -1;
                    p_gen[size_t(r)] = transfer::kSource;
                } else {
                    const std::int64_t e = rc.source_of(i);
                    const std::int64_t ia = wa.index_of(e);
                    const std::int64_t nb = munge && i >= S ? nb_h(ia) : -1;
                    const auto p = transfer::plan_row(rc, i, nb);
                    s.a = std::int32_t(ia);
                    s.gen = p.gen;
                    s.side = p.munge_side;
                    s.flip = p.flip;
                    s.mix = p.mix;
                    s.dx = std::int16_t(p.dx);
                    s.dy = std::int16_t(p.dy);
                    s.lambda = p.lambda;
                    if (p.mix)
                        s.p = std::int32_t(partners_in_a ? wa.index_of(p.partner_row)
                                                         : wp.index_of(p.partner_row));
                    p_src[size_t(r)] = p.source_row;
                    p_par[size_t(r)] = p.partner_row;
                    p_gen[size_t(r)] = p.gen;
                }
                ++counts[int(p_gen[size_t(r)])];
                spec_h(r) = s;
            }
            Kokkos::deep_copy(xa, xa_h);
            if (munge) Kokkos::deep_copy(xn, xn_h);
            if (mixup) Kokkos::deep_copy(xp, xp_h);
            Kokkos::deep_copy(spec, spec_h);
            transfer::generate_rows(gp, spec, count, xa, xn, partners_in_a ? xa : xp, mean, stdev, xo);
            Kokkos::deep_copy(xo_h, xo);
        }
        { // write the block; its done record follows a flush, so a done flag never points at rows that
            // are not on disk.
            ScopedPhase phase(timers, "write", "transfer::write");
            const unsigned long long h = writer.write(a, count, xo_h.data(), nullptr);
            h5::write_rows(prov_src, H5T_NATIVE_INT64, a, count, p_src.data(), coll);
            h5::write_rows(prov_gen, H5T_NATIVE_INT8, a, count, p_gen.data(), coll);
            h5::write_rows(prov_par, H5T_NATIVE_INT64, a, count, p_par.data(), coll);
            record.mark(have_block, have_block ? mine[size_t(it)] : 0, h);
        }
        done_rows += count;
        prog.update(rows_done_before + comm.sum_ll(done_rows));
        // Stop requests: a signal on any rank, or --stop-after-blocks (rounds of this run).
        if (comm.any(StopSignals::received() != 0) ||
            (o.stop_after_blocks > 0 && it + 1 >= o.stop_after_blocks && it + 1 < iters)) {
            stopped = true;
            break;
        }
    }
    const double t_gen = wall_seconds() - t_gen0;
    prog.finish();
    prov_src.reset();
    prov_gen.reset();
    prov_par.reset();
    record.close();
    nbr_index.reset();
    nbr_rows.reset();
    if (stopped) {
        const std::int64_t rows_now = rows_done_before + comm.sum_ll(done_rows);
        const bool by_signal = comm.any(StopSignals::received() != 0);
        log::info("transfer: stopped (", by_signal ? "signal" : "--stop-after-blocks", ") with ", rows_now,
                  " of ", N, " rows written; ", writer.partial_path(),
                  " keeps them: rerun the same command to resume");
        if (by_signal)
            throw CollectiveError("transfer: interrupted by a signal; " + writer.partial_path() +
                                  " keeps the finished blocks, rerun the same command to resume");
        return;
    }
    std::string fingerprint;
    {
        ScopedPhase phase(timers, "commit", "transfer::commit");
        fingerprint = writer.commit();
    }
    const double total = wall_seconds() - t_start;
    for (auto& c : counts)
        c = comm.sum_ll(c);
    log::info("");
    log::info("transfer summary: ", o.out, ": ", N, " rows x ", D, " (",
              resume ? "rows made by this run: " : "", counts[0], " source copies, ", counts[1],
              " augmented, ", counts[2], " MUNGE), fingerprint ", fingerprint);
    const std::int64_t made = N - rows_done_before; // rows of this run (all of them unless resumed)
    char line[256];
    std::snprintf(line, sizeof line,
                  "  %.0f rows/s overall (%.2f s on %d rank%s); generate+write %.0f rows/s (%.2f s); "
                  "neighbours %.2f s",
                  double(made) / total, total, comm.size(), comm.size() == 1 ? "" : "s", double(made) / t_gen,
                  t_gen, t_neighbours);
    log::info(line);
    timers.report(comm, "transfer timings");
}

} // namespace mimic::stages
