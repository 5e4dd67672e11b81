// `mimic label`: the ensemble-labelling stage. Ranks form G member groups x S data shards; each shard
// streams blocks of transfer rows, each group runs its members, the shard leader averages the member
// logits in member order (double accumulation, so the result is bitwise independent of the grid) and
// all shards write collectively. A per-block done record in FILE.partial makes every run resumable.
#include "mimic/stages/label.hpp"

#include "mimic/core/kokkos.hpp"
#include "mimic/core/log.hpp"
#include "mimic/core/progress.hpp"
#include "mimic/core/rng.hpp"
#include "mimic/core/stop_signal.hpp"
#include "mimic/core/timer.hpp"
#include "mimic/core/version_info.hpp"
#include "mimic/io/block_record.hpp"
#include "mimic/io/dataset.hpp"
#include "mimic/io/logits_file.hpp"
#include "mimic/io/manifest.hpp"
#include "mimic/io/model_file.hpp"
#include "mimic/io/paths.hpp"
#include "mimic/io/row_tally.hpp"
#include "mimic/nn/fold.hpp"
#include "mimic/nn/model.hpp"
#include "mimic/parallel/grid.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

namespace po = boost::program_options;

namespace mimic::stages {

// clang-format off
void describe(po::options_description& d, LabelOptions& o) {
    d.add_options()
        ("ensemble", po::value(&o.ensemble)->required(), "ensemble manifest (from `mimic ensemble train|add`)")
        ("transfer", po::value(&o.transfer)->required(), "transfer set to label (dataset file; labels are ignored)")
        ("out", po::value(&o.out)->required(), "logits file to write (resumed if OUT.partial exists)")
        ("groups", po::value(&o.groups)->default_value(o.groups), "member groups G; data shards S = ranks / G (0: automatic)")
        ("block-rows", po::value(&o.block_rows)->default_value(o.block_rows), "rows per block: unit of I/O, work and restart")
        ("batch", po::value(&o.batch)->default_value(o.batch), "rows per forward pass (must divide --block-rows)")
        ("combine", po::value(&o.combine)->default_value(o.combine), "logits (mean of logits) | prob (mean of softmax(z/T), stored as T*log)")
        ("temperature", po::value(&o.temperature)->default_value(o.temperature), "temperature T for --combine prob")
        ("variance", po::bool_switch(&o.variance), "also write per-row /variance and /disagreement")
        ("storage", po::value(&o.storage)->default_value(o.storage), "float32 | float16 storage of /logits")
        ("chunk-rows", po::value(&o.chunk_rows)->default_value(o.chunk_rows), "0: contiguous /logits; N: chunked by N rows")
        ("deflate", po::value(&o.deflate)->default_value(o.deflate), "deflate level 1-9 for chunked storage (0: off)")
        ("memory-mb", po::value(&o.memory_mb)->default_value(o.memory_mb), "memory per rank for member weights when choosing G (0: from /proc/meminfo)")
        ("flush-seconds", po::value(&o.flush_seconds)->default_value(o.flush_seconds), "0: flush OUT.partial once per round; S: once every S seconds (a restart redoes up to S seconds of work)")
        ("overwrite", po::bool_switch(&o.overwrite), "replace an existing logits file made from other inputs")
        ("timings-csv", po::value(&o.timings_csv), "append per-phase min/avg/max timings to this CSV file");
}
// clang-format on

namespace {

double available_memory_mb() {
    std::ifstream in("/proc/meminfo");
    std::string key;
    double kb = 0;
    while (in >> key >> kb) {
        if (key == "MemAvailable:") return kb / 1024.0;
        in.ignore(1 << 10, '\n');
    }
    return 4096.0;
}

int local_ranks(const par::Comm& world) {
    return world.split_shared().size();
}

/// Rows on the critical path of a run over N rows in blocks of B with S data shards: each round waits for
/// its longest block, and only the last block is short.
std::int64_t critical_rows(std::int64_t N, std::int64_t B, std::int64_t S) {
    const std::int64_t blocks = (N + B - 1) / B, rounds = (blocks + S - 1) / S;
    const bool last_alone = (blocks - 1) % S == 0; // the short last block has its round to itself
    return (rounds - 1) * B + (last_alone ? N - (blocks - 1) * B : B);
}

/// Picks G: among the divisors of P (up to the member count) from the smallest whose heaviest group's
/// weights fit in memory, the one with the least compute on the critical path, critical rows x the
/// heaviest group's FLOPs per row (the compute term of bench/model/model.py; a tie goes to the smaller G,
/// which broadcasts and gathers less). So G rises when the blocks spread unevenly over the shards.
int choose_groups(const io::Manifest& m, int P, std::int64_t N, std::int64_t B, double mem_mb,
                  std::string& why) {
    std::vector<double> flops, bytes;
    for (const auto& e : m.members) {
        flops.push_back(e.flops);
        bytes.push_back(double(e.params) * 4.0 * 1.25);
    }
    const int M = int(m.members.size());
    int best = 0;
    for (int g : par::divisors(P)) {
        if (g > M && g != 1) break;
        auto bin = par::assign_lpt(flops, g);
        std::vector<double> load(size_t(g), 0.0);
        for (size_t i = 0; i < bin.size(); ++i)
            load[size_t(bin[i])] += bytes[i];
        const double heaviest = *std::max_element(load.begin(), load.end()) / (1024.0 * 1024.0);
        if (heaviest <= mem_mb) {
            best = g;
            std::ostringstream os;
            os << "largest group holds " << heaviest << " MB of weights (budget " << mem_mb
               << " MB per rank)";
            why = os.str();
            break;
        }
    }
    if (best == 0)
        fail("the ensemble's weights do not fit in ", mem_mb, " MB per rank for any grid of ", P,
             " ranks; use more ranks or set --memory-mb / --groups");
    auto compute = [&](int g) {
        const auto bin = par::assign_lpt(flops, g);
        std::vector<double> f(size_t(g), 0.0);
        for (size_t i = 0; i < bin.size(); ++i)
            f[size_t(bin[i])] += flops[i];
        return double(critical_rows(N, B, P / g)) * *std::max_element(f.begin(), f.end());
    };
    const int fits = best;
    double least = compute(best);
    for (int g : par::divisors(P)) {
        if (g <= fits || g > M) continue;
        const double c = compute(g);
        if (c < least * (1.0 - 1e-9)) best = g, least = c;
    }
    if (best != fits) why += "; raised to spread the blocks' compute evenly over the shards";
    return best;
}

struct Plan {
    enum Kind { Fresh, Resume, Done } kind = Fresh;
    std::string note;
};

bool same_run(const io::LogitsMeta& a, const io::LogitsMeta& b) {
    return a.n == b.n && a.num_classes == b.num_classes && a.block_rows == b.block_rows &&
           a.combine == b.combine && a.temperature == b.temperature && a.storage == b.storage &&
           a.ensemble_checksum == b.ensemble_checksum && a.transfer_fingerprint == b.transfer_fingerprint &&
           a.has_variance == b.has_variance;
}

/// Decides (rank 0) whether to start fresh, resume OUT.partial, or stop because OUT is complete.
Plan decide(const LabelOptions& o, const io::LogitsMeta& want) {
    Plan r;
    const std::string partial = o.out + ".partial";
    if (io::file_exists(o.out)) {
        io::LogitsMeta have;
        bool readable = true;
        try {
            have = io::read_logits_meta(o.out);
        } catch (const Error&) {
            readable = false;
        }
        if (readable && same_run(have, want) && have.complete) {
            if (!o.overwrite) {
                r.kind = Plan::Done;
                return r;
            }
        } else if (!o.overwrite) {
            fail(o.out, ": exists and holds ",
                 readable ? "logits of a different ensemble, transfer set or settings"
                          : "something that is not a readable logits file",
                 "; pass --overwrite to replace it or choose another --out");
        }
        io::remove_file(o.out);
    }
    if (io::file_exists(partial)) {
        io::LogitsMeta have;
        try {
            have = io::read_logits_meta(partial);
        } catch (const Error& e) {
            r.note = partial + " is unreadable (" + e.what() + "); starting over";
            io::remove_file(partial);
            return r;
        }
        if (same_run(have, want)) {
            r.kind = Plan::Resume;
            return r;
        }
        if (!o.overwrite)
            fail(partial,
                 ": a partial logits file from a different ensemble, transfer set or settings exists; "
                 "pass --overwrite to discard it");
        io::remove_file(partial);
    }
    return r;
}

std::string join_lines(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v)
        s += (s.empty() ? "" : "\n") + x;
    return s;
}

/// What a run computes: the ensemble, the transfer set and the logits file it must produce.
struct LabelJob {
    io::Manifest manifest;
    std::unique_ptr<io::DatasetReader> transfer;
    io::LogitsMeta want;
    std::int64_t N = 0, B = 0, D = 0, num_blocks = 0;
    int M = 0, C = 0;
};

/// The largest --block-rows (and --chunk-rows): a block of this many rows is gigabytes per rank already.
constexpr std::int64_t kMaxBlockRows = std::int64_t(1) << 24;

void check_options(const LabelOptions& o, const par::Comm& world) {
    if (o.combine != "logits" && o.combine != "prob")
        fail("--combine: '", o.combine, "' is not logits or prob");
    if (!std::isfinite(o.temperature) || o.temperature <= 0)
        fail("--temperature: must be a finite number > 0, got ", o.temperature);
    if (o.storage != "float32" && o.storage != "float16")
        fail("--storage: '", o.storage, "' is not float32 or float16");
    if (o.block_rows <= 0 || o.block_rows > kMaxBlockRows)
        fail("--block-rows: must be from 1 to ", kMaxBlockRows, " rows, got ", o.block_rows);
    if (o.chunk_rows < 0 || o.chunk_rows > kMaxBlockRows)
        fail("--chunk-rows: must be from 0 to ", kMaxBlockRows, " rows, got ", o.chunk_rows);
    if (!std::isfinite(o.memory_mb) || o.memory_mb < 0)
        fail("--memory-mb: must be a finite number >= 0, got ", o.memory_mb);
    if (o.block_rows <= 0 || o.batch <= 0 || o.block_rows % o.batch != 0)
        fail("--block-rows (", o.block_rows, ") must be a positive multiple of --batch (", o.batch, ")");
    if (o.deflate < 0 || o.deflate > 9) fail("--deflate: must be 0-9, got ", o.deflate);
    if (!std::isfinite(o.flush_seconds) || o.flush_seconds < 0)
        fail("--flush-seconds: must be a finite number >= 0, got ", o.flush_seconds);
    if (o.deflate > 0 && o.chunk_rows <= 0) fail("--deflate needs chunked storage: set --chunk-rows");
    if (o.groups < 0 || (o.groups > 0 && world.size() % o.groups != 0))
        fail("--groups: ", o.groups, " does not divide the number of ranks (", world.size(), ")");
}

/// Plan: the options, the manifest and the transfer set checked together; the logits file to make.
LabelJob plan_job(const LabelOptions& o, const par::Comm& world) {
    LabelJob j;
    par::agree(world, [&] {
        check_options(o, world);
        j.manifest = io::read_manifest(o.ensemble);
        if (world.rank() == 0) io::validate_manifest(j.manifest, o.ensemble, false);
    });
    par::agree(world, [&] { j.transfer = std::make_unique<io::DatasetReader>(o.transfer, world); });
    const auto& tm = j.transfer->meta();
    const nn::Shape in = j.manifest.input();
    j.M = int(j.manifest.members.size()), j.C = j.manifest.num_classes();
    par::agree(world, [&] {
        if (tm.d != in.size())
            fail(o.transfer, ": rows have D = ", tm.d, " (shape ", tm.c, "x", tm.h, "x", tm.w,
                 ") but the ensemble's members take D = ", in.size(), " (shape ", in.c, "x", in.h, "x", in.w,
                 ")");
        if (tm.n == 0) fail(o.transfer, ": the transfer set is empty");
        if (o.groups > j.M) fail("--groups: ", o.groups, " groups for only ", j.M, " members");
    });
    j.N = tm.n, j.B = o.block_rows, j.D = tm.d, j.num_blocks = (j.N + j.B - 1) / j.B;
    auto& w = j.want;
    w.n = j.N, w.num_classes = j.C, w.block_rows = j.B, w.combine = o.combine;
    w.temperature = o.combine == "prob" ? o.temperature : 1.0;
    w.storage = o.storage, w.num_members = j.M, w.ensemble_checksum = j.manifest.ensemble_checksum();
    std::vector<std::string> sums, paths;
    for (size_t i = 0; i < j.manifest.members.size(); ++i) {
        sums.push_back(j.manifest.members[i].checksum);
        paths.push_back(j.manifest.member_path(i));
    }
    w.member_checksums = join_lines(sums), w.member_paths = join_lines(paths);
    w.transfer_path = o.transfer, w.transfer_fingerprint = tm.fingerprint, w.has_variance = o.variance;
    return j;
}

/// Rank 0 decides from the files whether to start, resume or stop; every rank follows.
Plan agree_on_plan(const LabelOptions& o, const LabelJob& j, const par::Comm& world) {
    Plan plan;
    par::agree(world, [&] {
        if (world.rank() == 0) plan = decide(o, j.want);
    });
    int kind = int(plan.kind);
    world.broadcast(&kind, 1);
    plan.kind = Plan::Kind(kind);
    if (!plan.note.empty()) log::info("label: ", plan.note);
    return plan;
}

/// The G x S grid and which member group runs which members (longest processing time first).
struct LabelGrid {
    int G = 1, S = 1;
    std::unique_ptr<par::Grid> grid;
    std::vector<int> mine;                       ///< members of this rank's group, in member order
    std::vector<std::vector<int>> group_members; ///< members of each group
    std::vector<int> slot_of_member;             ///< member -> its slot in the gathered buffer
    bool leader() const { return grid->inner_index() == 0; }
};

LabelGrid make_grid(const LabelOptions& o, const LabelJob& j, const par::Comm& world) {
    LabelGrid g;
    std::string why = "set by --groups";
    g.G = o.groups;
    par::agree(world, [&] {
        if (g.G > 0) return;
        const double mem = o.memory_mb > 0 ? o.memory_mb : available_memory_mb() / local_ranks(world) * 0.5;
        g.G = choose_groups(j.manifest, world.size(), j.N, j.B, mem, why);
    });
    g.grid = std::make_unique<par::Grid>(world, g.G);
    g.S = g.grid->outer();
    std::vector<double> flops;
    for (const auto& e : j.manifest.members)
        flops.push_back(e.flops);
    const auto bin = par::assign_lpt(flops, g.G);
    g.group_members.resize(size_t(g.G));
    for (int i = 0; i < j.M; ++i) {
        if (bin[size_t(i)] == g.grid->inner_index()) g.mine.push_back(i);
        g.group_members[size_t(bin[size_t(i)])].push_back(i);
    }
    // The gathered buffer holds group 0's members, then group 1's, ...
    g.slot_of_member.resize(size_t(j.M));
    int slot = 0;
    for (const auto& members : g.group_members)
        for (int i : members)
            g.slot_of_member[size_t(i)] = slot++;
    log::info("label: ", log::count(j.M, "member"), " x ", log::count(j.N, "row"), " (",
              log::count(j.num_blocks, "block"), " of ", j.B, "), C = ", j.C, ", grid ", g.G, " member group",
              g.G == 1 ? "" : "s", " x ", g.S, " data shard", g.S == 1 ? "" : "s", " (", why, ")");
    for (int k = 0; k < g.G; ++k) {
        double f = 0;
        for (int i : g.group_members[size_t(k)])
            f += flops[size_t(i)];
        log::info("  group ", k, ": members ", g.group_members[size_t(k)].size(), ", ", f / 1e6,
                  " MFLOP/sample");
    }
    return g;
}

/// OUT.partial, opened to resume or created with its metadata, datasets and the per-block done record.
struct LabelOutput {
    h5::File file;
    h5::Handle dlogits, dvar, ddis, half_type;
    hid_t logits_type = H5T_NATIVE_FLOAT;
    io::BlockRecord record;
    std::vector<std::int64_t> todo; ///< blocks not done yet, ascending
    std::int64_t rows_done_before = 0;
};

void open_output(const LabelOptions& o, const LabelJob& j, bool resume, const par::Comm& world,
                 LabelOutput& out) {
    const std::string partial = o.out + ".partial";
    out.half_type = io::make_half_type();
    out.logits_type = o.storage == "float16" ? out.half_type.id() : H5T_NATIVE_FLOAT;
    // A fresh file must fit: refused before anything is written, rather than by a full disk mid-run.
    par::agree(world, [&] {
        const double bytes =
            double(j.N) * (double(j.C) * (o.storage == "float16" ? 2 : 4) + (o.variance ? 8 : 0));
        if (!resume && world.rank() == 0)
            io::require_space(
                o.out, bytes,
                detail::concat(o.transfer, " (", j.N, " rows x ", j.C, " classes, ", o.storage, ")"));
    });
    par::agree(world, [&] {
        if (resume) {
            out.file = h5::File::open(partial, world, true);
            if (world.rank() == 0) io::hold_partial(o.out);
            out.dlogits = h5::open_dataset(out.file, "/logits");
            out.record = io::BlockRecord::open(out.file);
            if (o.variance) {
                out.dvar = h5::open_dataset(out.file, "/variance");
                out.ddis = h5::open_dataset(out.file, "/disagreement");
            }
            return;
        }
        out.file = h5::File::create(partial, world);
        if (world.rank() == 0) io::hold_partial(o.out);
        // Attributes and the small datasets first, /logits last: then the metadata sits in front of the
        // big raw-data block, and a disk that fills up mid-run fails a block write (an error we report)
        // rather than a metadata flush, so the partial file stays readable for the rerun.
        write_logits_meta(out.file, j.want);
        h5::write_attr(out.file.id(), "mimic_version", MIMIC_VERSION_STRING);
        h5::write_attr(out.file.id(), "logits_fingerprint", std::string(16, '0'));
        h5::write_attr(out.file.id(), io::kBlockHashAttr, io::kBlockHashStored);
        out.record = io::BlockRecord::create(out.file, j.num_blocks);
        h5::DatasetOptions lo{o.chunk_rows, o.deflate};
        if (o.variance) {
            out.dvar = h5::create_dataset(out.file, "/variance", H5T_NATIVE_FLOAT, {hsize_t(j.N)}, lo);
            out.ddis = h5::create_dataset(out.file, "/disagreement", H5T_NATIVE_FLOAT, {hsize_t(j.N)}, lo);
        }
        out.dlogits =
            h5::create_dataset(out.file, "/logits", out.logits_type, {hsize_t(j.N), hsize_t(j.C)}, lo);
        out.file.flush();
    });
    out.record.read();
    const auto& done = out.record.done();
    for (std::int64_t b = 0; b < j.num_blocks; ++b) {
        if (!done[size_t(b)])
            out.todo.push_back(b);
        else
            out.rows_done_before += std::min(j.B, j.N - b * j.B);
    }
    if (resume)
        log::info("label: resuming ", partial, ": ", j.num_blocks - std::int64_t(out.todo.size()), " of ",
                  log::count(j.num_blocks, "block"), " already done");
}

/// Per-block buffers, allocated once: the rows, this group's member logits, and on shard leaders the
/// gathered logits of every member and the combined rows.
struct BlockBuffers {
    std::vector<float> X, local, gathered, out, var, dis;
    std::vector<std::uint16_t> out16;
    Matrix xdev;
    Matrix::HostMirror xhost;
    BlockBuffers(const LabelOptions& o, const LabelJob& j, const LabelGrid& g)
        : X(size_t(j.B * j.D)), local(std::max<size_t>(g.mine.size(), 1) * size_t(j.B * j.C)),
          gathered(g.leader() ? size_t(j.M) * size_t(j.B * j.C) : 0), out(g.leader() ? size_t(j.B * j.C) : 0),
          var(g.leader() ? size_t(j.B) : 0), dis(g.leader() ? size_t(j.B) : 0),
          out16(g.leader() && o.storage == "float16" ? size_t(j.B * j.C) : 0),
          xdev(Kokkos::view_alloc(Kokkos::WithoutInitializing, "mimic::label::x"), size_t(o.batch),
               size_t(j.D)),
          xhost(Kokkos::create_mirror_view(xdev)) {}
};

/// Every member of this group on the block's n rows, in fixed sub-batches aligned to the block; member
/// j's logits land in buf.local at [j][row][class].
void compute_block(const LabelOptions& o, const LabelJob& j, std::vector<nn::Model>& models, std::int64_t n,
                   BlockBuffers& buf) {
    using HostRows =
        Kokkos::View<float**, Kokkos::LayoutRight, HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>;
    for (size_t m = 0; m < models.size(); ++m) {
        for (std::int64_t b0 = 0; b0 < n; b0 += o.batch) {
            const std::int64_t nb = std::min(o.batch, n - b0);
            std::memcpy(buf.xhost.data(), buf.X.data() + b0 * j.D, size_t(nb * j.D) * sizeof(float));
            Kokkos::deep_copy(buf.xdev, buf.xhost);
            Matrix xs = Kokkos::subview(buf.xdev, std::make_pair(std::int64_t(0), nb), Kokkos::ALL());
            HostRows dst(buf.local.data() + (m * size_t(j.B) + size_t(b0)) * size_t(j.C), size_t(nb),
                         size_t(j.C));
            Kokkos::deep_copy(dst, models[m].forward(xs, false)); // no host allocation per batch
        }
    }
}

/// Gathers the members' logits of the block's n rows to the shard leader ([slot][row][class]).
void gather_block(const LabelJob& j, const LabelGrid& g, std::int64_t n, BlockBuffers& buf) {
    const std::int64_t per = n * j.C;
    if (g.G == 1) {
        if (g.leader())
            for (size_t m = 0; m < g.mine.size(); ++m)
                std::memcpy(buf.gathered.data() + m * size_t(per), buf.local.data() + m * size_t(j.B * j.C),
                            size_t(per) * sizeof(float));
        return;
    }
    // Pack local members contiguously as [member][row][class] with n rows each.
    std::vector<float> packed(g.mine.size() * size_t(per));
    for (size_t m = 0; m < g.mine.size(); ++m)
        std::memcpy(packed.data() + m * size_t(per), buf.local.data() + m * size_t(j.B * j.C),
                    size_t(per) * sizeof(float));
    std::vector<std::int64_t> counts(static_cast<size_t>(g.G));
    for (int k = 0; k < g.G; ++k)
        counts[size_t(k)] = std::int64_t(g.group_members[size_t(k)].size()) * per;
    g.grid->inner_comm().gatherv(packed.data(), std::int64_t(packed.size()), buf.gathered.data(), counts);
}

/// The shard leader's combination of the gathered member logits, row by row in member order with double
/// accumulation (so the result does not depend on the grid): the mean of logits or T log of the mean of
/// probabilities at T, and optionally the members' variance and disagreement with the combined top class.
void combine_block(const LabelOptions& o, const LabelJob& j, const LabelGrid& g, std::int64_t n,
                   BlockBuffers& buf) {
    const int M = j.M, C = j.C;
    const std::int64_t per = n * C;
    const double T = j.want.temperature;
    std::vector<double> acc(static_cast<size_t>(C)), p(static_cast<size_t>(C)), mean(static_cast<size_t>(C)),
        m2(static_cast<size_t>(C));
    auto member_row = [&](int m, std::int64_t i) {
        return buf.gathered.data() + size_t(g.slot_of_member[size_t(m)]) * size_t(per) + size_t(i * C);
    };
    for (std::int64_t i = 0; i < n; ++i) {
        std::fill(acc.begin(), acc.end(), 0.0);
        std::fill(mean.begin(), mean.end(), 0.0);
        std::fill(m2.begin(), m2.end(), 0.0);
        for (int m = 0; m < M; ++m) { // member order, whatever the grid
            const float* z = member_row(m, i);
            if (o.combine == "logits") {
                for (int c = 0; c < C; ++c)
                    acc[size_t(c)] += double(z[c]);
            } else {
                double mx = -1e300, s = 0;
                for (int c = 0; c < C; ++c)
                    mx = std::max(mx, double(z[c]) / T);
                for (int c = 0; c < C; ++c)
                    s += (p[size_t(c)] = std::exp(double(z[c]) / T - mx));
                for (int c = 0; c < C; ++c)
                    acc[size_t(c)] += p[size_t(c)] / s;
            }
            if (o.variance) // Welford over members, per class
                for (int c = 0; c < C; ++c) {
                    const double dlt = double(z[c]) - mean[size_t(c)];
                    mean[size_t(c)] += dlt / (m + 1);
                    m2[size_t(c)] += dlt * (double(z[c]) - mean[size_t(c)]);
                }
        }
        float* dst = buf.out.data() + i * C;
        for (int c = 0; c < C; ++c)
            dst[c] = o.combine == "logits" ? float(acc[size_t(c)] / M)
                                           : float(T * std::log(std::max(acc[size_t(c)] / M, 1e-300)));
        if (!o.variance) continue;
        double v = 0;
        for (int c = 0; c < C; ++c)
            v += m2[size_t(c)] / M;
        buf.var[size_t(i)] = float(v / C);
        const int top = int(std::max_element(dst, dst + C) - dst);
        int disagree = 0;
        for (int m = 0; m < M; ++m) {
            const float* z = member_row(m, i);
            disagree += int(std::max_element(z, z + C) - z) != top;
        }
        buf.dis[size_t(i)] = float(disagree) / float(M);
    }
}

/// Every shard leader writes its block (wn rows; 0 elsewhere, still collective) and adds it to the done
/// record, which commits (one flush) every round, or with --flush-seconds S drains (records everything
/// written so far) once S seconds have passed on any rank. Done records are written only for rows an
/// earlier flush put on disk (io::BlockRecord), so a done flag never points at rows that are not there.
void write_block(const LabelOptions& o, const LabelJob& j, std::int64_t blk, std::int64_t row0,
                 std::int64_t wn, BlockBuffers& buf, LabelOutput& out, const par::Comm& world) {
    // The hash covers the values as stored (float16 rounding included), so that a reader can verify them.
    unsigned long long h = 0;
    std::vector<float> stored(o.storage == "float16" ? size_t(j.C) : 0);
    for (std::int64_t i = 0; i < wn; ++i) {
        const float* row = buf.out.data() + i * j.C;
        for (size_t c = 0; c < stored.size(); ++c)
            stored[c] = io::half_to_float(io::float_to_half(row[c]));
        h += io::row_hash(row0 + i, stored.empty() ? row : stored.data(), j.C, 0, false);
    }
    const bool due = out.record.flush_due(o.flush_seconds, world);
    par::agree(world, [&] {
        if (o.storage == "float16") {
            for (std::int64_t i = 0; i < wn * j.C; ++i)
                buf.out16[size_t(i)] = io::float_to_half(buf.out[size_t(i)]);
            h5::write_rows(out.dlogits, out.logits_type, row0, wn, buf.out16.data(), out.file.parallel());
        } else {
            h5::write_rows(out.dlogits, H5T_NATIVE_FLOAT, row0, wn, buf.out.data(), out.file.parallel());
        }
        if (o.variance) {
            h5::write_rows(out.dvar, H5T_NATIVE_FLOAT, row0, wn, buf.var.data(), out.file.parallel());
            h5::write_rows(out.ddis, H5T_NATIVE_FLOAT, row0, wn, buf.dis.data(), out.file.parallel());
        }
        out.record.add_and_flush(wn > 0, blk, h, o.flush_seconds, due);
    });
}

/// Rows of round r's blocks over all shards (deterministic from the todo list).
std::int64_t rows_of_round(const LabelJob& j, const LabelGrid& g, const LabelOutput& out, std::int64_t r) {
    std::int64_t rows = 0;
    for (std::int64_t s = 0; s < g.S; ++s) {
        const std::int64_t idx = r * g.S + s;
        if (idx < std::int64_t(out.todo.size())) rows += std::min(j.B, j.N - out.todo[size_t(idx)] * j.B);
    }
    return rows;
}

/// The compute loop: round r gives data shard s the (r * S + s)-th block still to do; each block is
/// read by the shard leader and shared with its groups, run by every member, combined and written.
/// Progress counts the rows whose done records are on disk: every row it has shown survives a kill.
void label_blocks(const LabelOptions& o, const LabelJob& j, const LabelGrid& g,
                  std::vector<nn::Model>& models, LabelOutput& out, PhaseTimers& timers,
                  const par::Comm& world) {
    BlockBuffers buf(o, j, g);
    // A transfer set too large to hash when opened: its row hashes are folded into this pass, each block
    // by the shard leader that reads it, and compared before the output is finished.
    io::RowTally tally(*j.transfer, j.B);
    std::vector<int> y(tally.wants_labels() ? size_t(j.B) : 0);
    int* yp = y.empty() ? nullptr : y.data();
    const std::int64_t todo = std::int64_t(out.todo.size()), rounds = (todo + g.S - 1) / g.S;
    Progress progress("label", j.N, "rows");
    std::int64_t rows_done = out.rows_done_before, rounds_shown = 0;
    const double t_loop = wall_seconds();
    auto show = [&] {
        for (; rounds_shown < out.record.recorded(); ++rounds_shown)
            rows_done += rows_of_round(j, g, out, rounds_shown);
        const double el = wall_seconds() - t_loop;
        std::ostringstream extra;
        extra.precision(4);
        extra << (el > 0 ? double(rows_done - out.rows_done_before) / el : 0) * j.M << " member-samples/s";
        progress.update(rows_done, extra.str());
    };
    for (std::int64_t r = 0; r < rounds; ++r) {
        const std::int64_t idx = r * g.S + g.grid->outer_index();
        const std::int64_t blk = idx < todo ? out.todo[size_t(idx)] : -1;
        const std::int64_t row0 = blk >= 0 ? blk * j.B : 0, n = blk >= 0 ? std::min(j.B, j.N - row0) : 0;
        {
            ScopedPhase p(timers, "read", "label::read");
            j.transfer->read(row0, g.leader() ? n : 0, buf.X.data(), yp);
            if (g.leader()) tally.add(row0, n, buf.X.data(), yp);
            if (g.G > 1 && n > 0) g.grid->inner_comm().broadcast(buf.X.data(), n * j.D);
        }
        {
            ScopedPhase p(timers, "compute", "label::compute");
            compute_block(o, j, models, n, buf);
        }
        {
            ScopedPhase p(timers, "reduce", "label::reduce");
            gather_block(j, g, n, buf);
            if (g.leader() && n > 0) combine_block(o, j, g, n, buf);
        }
        {
            ScopedPhase p(timers, "write", "label::write");
            write_block(o, j, blk, row0, g.leader() ? n : 0, buf, out, world);
        }
        show();
    }
    {
        ScopedPhase p(timers, "write", "label::write");
        par::agree(world, [&] { out.record.drain(); });
    }
    {
        ScopedPhase p(timers, "read", "label::read");
        par::agree(world, [&] { tally.check(world, true); }); // also reads the blocks an earlier run did
    }
    show();
    progress.finish();
}

/// Finish: the fingerprint from the block hashes, the completion flag, and the rename to OUT.
void finish_output(const LabelOptions& o, LabelOutput& out, const par::Comm& world) {
    const std::string partial = o.out + ".partial";
    // Every block is on disk: a stop request (SIGTERM) from here on, on any rank, is recorded and ignored,
    // so it cannot turn the finished job into a failure.
    StopSignals::output_complete();
    par::agree(world, [&] {
        out.record.read();
        for (auto d : out.record.done())
            if (!d) fail(partial, ": internal error: a block is not marked done at the end");
        unsigned long long total = 0;
        for (auto h : out.record.hashes())
            total += h;
        h5::write_attr(out.file.id(), "logits_fingerprint", io::hex64(total));
        h5::write_attr(out.file.id(), "complete", 1LL);
        out.dlogits.reset();
        out.dvar.reset();
        out.ddis.reset();
        out.record.close();
        out.file.close();
        if (world.rank() == 0) io::rename_file(partial, o.out);
    });
}

/// A finished OUT counts as done only once its content is verified against its block hashes; a file that
/// fails is reported as corrupt, never reused.
void verify_finished(const LabelOptions& o, const par::Comm& world) {
    try {
        const auto f = h5::File::open(o.out, world);
        const auto meta = io::read_logits_meta(f);
        const auto dset = h5::open_dataset(f, "/logits");
        io::verify_logits_blocks(f, dset, meta, world);
    } catch (const CollectiveError& e) {
        throw par::collective_error(
            world, detail::concat(e.what(), "; it is not reused: pass --overwrite to relabel"));
    }
}

} // namespace

void run(const LabelOptions& o, const par::Comm& world) {
    PhaseTimers timers;
    const double t_start = wall_seconds();
    const auto lock = io::claim_outputs({o.out, o.timings_csv}, {o.ensemble, o.transfer}, world.get());
    // Plan: validate everything together, then decide between start, resume and nothing to do.
    const LabelJob job = plan_job(o, world);
    const Plan plan = agree_on_plan(o, job, world);
    if (plan.kind == Plan::Done) {
        verify_finished(o, world);
        StopSignals::output_complete();
        log::info("label: ", o.out, " is already complete for this ensemble and transfer set; nothing to do");
        return;
    }
    // Open inputs: the grid, this group's members, and OUT.partial.
    const LabelGrid grid = make_grid(o, job, world);
    std::vector<nn::Model> models;
    {
        ScopedPhase p(timers, "load", "label::load");
        par::agree(world, [&] {
            for (int i : grid.mine)
                models.push_back(nn::fold_for_inference(io::load_model(job.manifest.member_path(size_t(i)))));
        });
    }
    LabelOutput out;
    open_output(o, job, plan.kind == Plan::Resume, world, out);
    // Compute loop, then write the finished file.
    label_blocks(o, job, grid, models, out, timers, world);
    finish_output(o, out, world);

    // Finish: summary and timings.
    const double el = wall_seconds() - t_start, rows = double(job.N - out.rows_done_before);
    log::info("");
    log::info("label summary: ", o.out, " (", job.N, " x ", job.C, ", ", o.storage, ", combine = ", o.combine,
              ")");
    log::info("  ensemble ", job.manifest.ensemble_checksum(), " (", log::count(job.M, "member"),
              "), transfer fingerprint ", job.transfer->meta().fingerprint);
    log::info("  grid ", log::count(grid.G, "group"), " x ", log::count(grid.S, "shard"), "; ", rows,
              " rows in ", Progress::format_duration(el), ": ", rows / el, " samples/s, ", rows * job.M / el,
              " member-samples/s");
    timers.add("total", el);
    timers.report(world, "label timings");
    timers.append_csv(world, o.timings_csv,
                      {{"stage", "label"},
                       {"ranks", std::to_string(world.size())},
                       {"groups", std::to_string(grid.G)},
                       {"shards", std::to_string(grid.S)},
                       {"rows", std::to_string(job.N - out.rows_done_before)},
                       {"members", std::to_string(job.M)},
                       {"block_rows", std::to_string(job.B)}});
}

} // namespace mimic::stages
