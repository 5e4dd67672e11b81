// `mimic label`: the ensemble-labelling stage. Ranks form G member groups x S data shards; each shard
// streams blocks of transfer rows, each group runs its members, the shard leader averages the member
// logits in member order (double accumulation, so the result is bitwise independent of the grid) and
// all shards write collectively. A per-block done record in FILE.partial makes every run resumable.
#include "mimic/stages/label.hpp"

#include "mimic/core/kokkos.hpp"
#include "mimic/core/log.hpp"
#include "mimic/core/progress.hpp"
#include "mimic/core/rng.hpp"
#include "mimic/core/timer.hpp"
#include "mimic/core/version_info.hpp"
#include "mimic/io/block_record.hpp"
#include "mimic/io/dataset.hpp"
#include "mimic/io/logits_file.hpp"
#include "mimic/io/manifest.hpp"
#include "mimic/io/model_file.hpp"
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
    MPI_Comm local;
    MIMIC_MPI_CHECK(
        MPI_Comm_split_type(world.get(), MPI_COMM_TYPE_SHARED, world.rank(), MPI_INFO_NULL, &local));
    par::Comm lc(local, true);
    return lc.size();
}

/// Picks G: the smallest divisor of P whose heaviest group's weights fit in memory, raised (up to the
/// member count) while there are fewer blocks than data shards.
int choose_groups(const io::Manifest& m, int P, std::int64_t blocks, double mem_mb, std::string& why) {
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
    for (int g : par::divisors(P)) {
        if (g <= best || g > M) continue;
        if (P / best <= blocks) break;
        best = g;
        why += "; raised so that every data shard gets a block";
    }
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

} // namespace

void run(const LabelOptions& o, const par::Comm& world) {
    PhaseTimers timers;
    const double t_start = wall_seconds();

    // --- validate inputs (every rank leaves together on error) ---------------------------------
    io::Manifest manifest;
    std::unique_ptr<io::DatasetReader> transfer;
    par::agree(world, [&] {
        if (o.combine != "logits" && o.combine != "prob")
            fail("--combine: '", o.combine, "' is not logits or prob");
        if (!(o.temperature > 0)) fail("--temperature: must be > 0, got ", o.temperature);
        if (o.storage != "float32" && o.storage != "float16")
            fail("--storage: '", o.storage, "' is not float32 or float16");
        if (o.block_rows <= 0 || o.batch <= 0 || o.block_rows % o.batch != 0)
            fail("--block-rows (", o.block_rows, ") must be a positive multiple of --batch (", o.batch, ")");
        if (o.deflate < 0 || o.deflate > 9) fail("--deflate: must be 0-9, got ", o.deflate);
        if (o.deflate > 0 && o.chunk_rows <= 0) fail("--deflate needs chunked storage: set --chunk-rows");
        if (o.groups < 0 || (o.groups > 0 && world.size() % o.groups != 0))
            fail("--groups: ", o.groups, " does not divide the number of ranks (", world.size(), ")");
        manifest = io::read_manifest(o.ensemble);
        if (world.rank() == 0) io::validate_manifest(manifest, o.ensemble, false);
    });
    par::agree(world, [&] { transfer = std::make_unique<io::DatasetReader>(o.transfer, world); });
    const auto& tm = transfer->meta();
    const nn::Shape in = manifest.input();
    const int M = int(manifest.members.size());
    const int C = manifest.num_classes();
    par::agree(world, [&] {
        if (tm.d != in.size())
            fail(o.transfer, ": rows have D = ", tm.d, " (shape ", tm.c, "x", tm.h, "x", tm.w,
                 ") but the ensemble's members take D = ", in.size(), " (shape ", in.c, "x", in.h, "x", in.w,
                 ")");
        if (tm.n == 0) fail(o.transfer, ": the transfer set is empty");
        if (o.groups > M) fail("--groups: ", o.groups, " groups for only ", M, " members");
    });

    const std::int64_t N = tm.n, B = o.block_rows, D = tm.d;
    const std::int64_t num_blocks = (N + B - 1) / B;

    io::LogitsMeta want;
    want.n = N;
    want.num_classes = C;
    want.block_rows = B;
    want.combine = o.combine;
    want.temperature = o.combine == "prob" ? o.temperature : 1.0;
    want.storage = o.storage;
    want.num_members = M;
    want.ensemble_checksum = manifest.ensemble_checksum();
    {
        std::vector<std::string> sums, paths;
        for (size_t i = 0; i < manifest.members.size(); ++i) {
            sums.push_back(manifest.members[i].checksum);
            paths.push_back(manifest.member_path(i));
        }
        want.member_checksums = join_lines(sums);
        want.member_paths = join_lines(paths);
    }
    want.transfer_path = o.transfer;
    want.transfer_fingerprint = tm.fingerprint;
    want.has_variance = o.variance;

    // --- resume decision (rank 0 looks at the files, everyone follows) ----------------------------
    Plan plan;
    par::agree(world, [&] {
        if (world.rank() == 0) plan = decide(o, want);
    });
    {
        int kind = int(plan.kind);
        MIMIC_MPI_CHECK(MPI_Bcast(&kind, 1, MPI_INT, 0, world.get()));
        plan.kind = Plan::Kind(kind);
    }
    if (!plan.note.empty()) log::info("label: ", plan.note);
    if (plan.kind == Plan::Done) {
        log::info("label: ", o.out, " is already complete for this ensemble and transfer set; nothing to do");
        return;
    }

    // --- process grid and member assignment -----------------------------------------------------
    std::string why = "set by --groups";
    int G = o.groups;
    par::agree(world, [&] {
        if (G == 0) {
            const double mem =
                o.memory_mb > 0 ? o.memory_mb : available_memory_mb() / local_ranks(world) * 0.5;
            G = choose_groups(manifest, world.size(), num_blocks, mem, why);
        }
    });
    par::Grid grid(world, G);
    const int S = grid.outer();
    std::vector<double> flops;
    for (const auto& e : manifest.members)
        flops.push_back(e.flops);
    const auto bin = par::assign_lpt(flops, G);
    std::vector<int> mine; // global member indices of this rank's group, in member order
    for (int i = 0; i < M; ++i)
        if (bin[size_t(i)] == grid.inner_index()) mine.push_back(i);
    std::vector<std::vector<int>> group_members(static_cast<size_t>(G));
    for (int i = 0; i < M; ++i)
        group_members[size_t(bin[size_t(i)])].push_back(i);

    log::info("label: ", M, " members x ", N, " rows (", num_blocks, " blocks of ", B, "), C = ", C,
              ", grid ", G, " member group", G == 1 ? "" : "s", " x ", S, " data shard", S == 1 ? "" : "s",
              " (", why, ")");
    for (int g = 0; g < G; ++g) {
        double f = 0;
        for (int i : group_members[size_t(g)])
            f += flops[size_t(i)];
        log::info("  group ", g, ": members ", group_members[size_t(g)].size(), ", ", f / 1e6,
                  " MFLOP/sample");
    }

    std::vector<nn::Model> models;
    {
        ScopedPhase p(timers, "load", "label::load");
        par::agree(world, [&] {
            for (int i : mine)
                models.push_back(io::load_model(manifest.member_path(static_cast<size_t>(i))));
        });
    }

    // --- open or create OUT.partial collectively ------------------------------------------------
    const std::string partial = o.out + ".partial";
    const MPI_Comm fcomm = world.size() > 1 ? world.get() : MPI_COMM_NULL;
    h5::File file;
    h5::Handle dlogits, dvar, ddis;
    io::BlockRecord record;
    const hid_t store_type = o.storage == "float16" ? H5T_NATIVE_USHORT : H5T_NATIVE_FLOAT;
    h5::Handle half_type = io::make_half_type();
    const hid_t logits_type = o.storage == "float16" ? half_type.id() : H5T_NATIVE_FLOAT;
    (void)store_type;
    par::agree(world, [&] {
        if (plan.kind == Plan::Resume) {
            file = h5::File::open(partial, fcomm, true);
            dlogits = h5::open_dataset(file, "/logits");
            record = io::BlockRecord::open(file);
            if (o.variance) {
                dvar = h5::open_dataset(file, "/variance");
                ddis = h5::open_dataset(file, "/disagreement");
            }
        } else {
            file = h5::File::create(partial, fcomm);
            // Attributes and the small datasets first, /logits last: then the metadata sits in front of
            // the big raw-data block, and a disk that fills up mid-run fails a block write (an error we
            // report) rather than a metadata flush, so the partial file stays readable for the rerun.
            write_logits_meta(file, want);
            h5::write_attr(file.id(), "mimic_version", MIMIC_VERSION_STRING);
            h5::write_attr(file.id(), "logits_fingerprint", std::string(16, '0'));
            record = io::BlockRecord::create(file, num_blocks);
            h5::DatasetOptions lo{o.chunk_rows, o.deflate};
            if (o.variance) {
                dvar = h5::create_dataset(file, "/variance", H5T_NATIVE_FLOAT, {hsize_t(N)}, lo);
                ddis = h5::create_dataset(file, "/disagreement", H5T_NATIVE_FLOAT, {hsize_t(N)}, lo);
            }
            dlogits = h5::create_dataset(file, "/logits", logits_type, {hsize_t(N), hsize_t(C)}, lo);
            file.flush();
        }
    });
    record.read();
    const auto& done = record.done();
    std::vector<std::int64_t> todo;
    for (std::int64_t b = 0; b < num_blocks; ++b)
        if (!done[size_t(b)]) todo.push_back(b);
    std::int64_t rows_done_before = 0;
    for (std::int64_t b = 0; b < num_blocks; ++b)
        if (done[size_t(b)]) rows_done_before += std::min(B, N - b * B);
    if (plan.kind == Plan::Resume)
        log::info("label: resuming ", partial, ": ", num_blocks - std::int64_t(todo.size()), " of ",
                  num_blocks, " blocks already done");

    // --- the block loop ---------------------------------------------------------------------------
    const bool leader = grid.inner_index() == 0;
    const std::int64_t rounds = (std::int64_t(todo.size()) + S - 1) / S;
    std::vector<float> X(size_t(B * D));
    std::vector<float> local(size_t(std::max<size_t>(mine.size(), 1) * size_t(B * C)));
    std::vector<float> gathered(leader ? size_t(M) * size_t(B * C) : 0);
    std::vector<float> out(leader ? size_t(B * C) : 0), var(leader ? size_t(B) : 0),
        dis(leader ? size_t(B) : 0);
    std::vector<std::uint16_t> out16(leader && o.storage == "float16" ? size_t(B * C) : 0);
    Matrix xdev(Kokkos::view_alloc(Kokkos::WithoutInitializing, "mimic::label::x"), size_t(o.batch),
                size_t(D));
    auto xhost = Kokkos::create_mirror_view(xdev);
    // Global member order of the gathered buffer: group 0's members, then group 1's, ...
    std::vector<int> gathered_member;
    for (int g = 0; g < G; ++g)
        for (int i : group_members[size_t(g)])
            gathered_member.push_back(i);
    std::vector<int> slot_of_member(static_cast<size_t>(M));
    for (int s = 0; s < M; ++s)
        slot_of_member[size_t(gathered_member[size_t(s)])] = s;

    Progress progress("label", N, "rows");
    std::int64_t rows_done = rows_done_before;
    const double t_loop = wall_seconds();
    for (std::int64_t r = 0; r < rounds; ++r) {
        const std::int64_t idx = r * S + grid.outer_index();
        const std::int64_t blk = idx < std::int64_t(todo.size()) ? todo[size_t(idx)] : -1;
        const std::int64_t row0 = blk >= 0 ? blk * B : 0;
        const std::int64_t n = blk >= 0 ? std::min(B, N - row0) : 0;

        { // read: the shard leader reads the block collectively, then shares it with its groups
            ScopedPhase p(timers, "read", "label::read");
            transfer->read(row0, leader ? n : 0, X.data(), nullptr);
            if (G > 1 && n > 0)
                MIMIC_MPI_CHECK(MPI_Bcast(X.data(), int(n * D), MPI_FLOAT, 0, grid.inner_comm().get()));
        }
        { // compute: every member of this group on every row, in fixed sub-batches aligned to the block
            ScopedPhase p(timers, "compute", "label::compute");
            for (size_t j = 0; j < models.size(); ++j) {
                for (std::int64_t b0 = 0; b0 < n; b0 += o.batch) {
                    const std::int64_t nb = std::min(o.batch, n - b0);
                    std::memcpy(xhost.data(), X.data() + b0 * D, size_t(nb * D) * sizeof(float));
                    Kokkos::deep_copy(xdev, xhost);
                    Matrix xs = Kokkos::subview(xdev, std::make_pair(std::int64_t(0), nb), Kokkos::ALL());
                    Matrix z = models[j].forward(xs, false);
                    auto zh = Kokkos::create_mirror_view_and_copy(HostSpace(), z);
                    std::memcpy(local.data() + (j * size_t(B) + size_t(b0)) * size_t(C), zh.data(),
                                size_t(nb * C) * sizeof(float));
                }
            }
        }
        { // reduce: gather member logits to the shard leader, average in member order in double
            ScopedPhase p(timers, "reduce", "label::reduce");
            const std::int64_t per = n * C;
            if (G > 1) {
                // Pack local members contiguously as [member][row][class] with n rows each.
                std::vector<float> packed(mine.size() * size_t(per));
                for (size_t j = 0; j < mine.size(); ++j)
                    std::memcpy(packed.data() + j * size_t(per), local.data() + j * size_t(B * C),
                                size_t(per) * sizeof(float));
                std::vector<int> counts(static_cast<size_t>(G)), displs(static_cast<size_t>(G));
                for (int g = 0; g < G; ++g) {
                    counts[size_t(g)] = int(group_members[size_t(g)].size() * size_t(per));
                    displs[size_t(g)] = g == 0 ? 0 : displs[size_t(g - 1)] + counts[size_t(g - 1)];
                }
                MIMIC_MPI_CHECK(MPI_Gatherv(packed.data(), int(packed.size()), MPI_FLOAT, gathered.data(),
                                            counts.data(), displs.data(), MPI_FLOAT, 0,
                                            grid.inner_comm().get()));
            } else if (leader) {
                for (size_t j = 0; j < mine.size(); ++j)
                    std::memcpy(gathered.data() + j * size_t(per), local.data() + j * size_t(B * C),
                                size_t(per) * sizeof(float));
            }
            if (leader && n > 0) {
                const double T = want.temperature;
                std::vector<double> acc(static_cast<size_t>(C)), p(static_cast<size_t>(C)),
                    mean(static_cast<size_t>(C)), m2(static_cast<size_t>(C));
                for (std::int64_t i = 0; i < n; ++i) {
                    std::fill(acc.begin(), acc.end(), 0.0);
                    std::fill(mean.begin(), mean.end(), 0.0);
                    std::fill(m2.begin(), m2.end(), 0.0);
                    for (int m = 0; m < M; ++m) { // member order, whatever the grid
                        const float* z =
                            gathered.data() + size_t(slot_of_member[size_t(m)]) * size_t(per) + size_t(i * C);
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
                    float* dst = out.data() + i * C;
                    for (int c = 0; c < C; ++c)
                        dst[c] = o.combine == "logits"
                                     ? float(acc[size_t(c)] / M)
                                     : float(T * std::log(std::max(acc[size_t(c)] / M, 1e-300)));
                    if (o.variance) {
                        double v = 0;
                        for (int c = 0; c < C; ++c)
                            v += m2[size_t(c)] / M;
                        var[size_t(i)] = float(v / C);
                        const int top = int(std::max_element(dst, dst + C) - dst);
                        int disagree = 0;
                        for (int m = 0; m < M; ++m) {
                            const float* z = gathered.data() +
                                             size_t(slot_of_member[size_t(m)]) * size_t(per) + size_t(i * C);
                            disagree += int(std::max_element(z, z + C) - z) != top;
                        }
                        dis[size_t(i)] = float(disagree) / float(M);
                    }
                }
            }
        }
        { // write: every shard leader writes its block; its done record follows a flush, so a done flag
            // never points at rows that are not on disk, and every row progress has shown is kept.
            ScopedPhase p(timers, "write", "label::write");
            const std::int64_t wn = leader ? n : 0;
            unsigned long long h = 0;
            for (std::int64_t i = 0; i < wn; ++i)
                h += io::row_hash(row0 + i, out.data() + i * C, C, 0, false);
            par::agree(world, [&] {
                if (o.storage == "float16") {
                    for (std::int64_t i = 0; i < wn * C; ++i)
                        out16[size_t(i)] = io::float_to_half(out[size_t(i)]);
                    h5::write_rows(dlogits, logits_type, row0, wn, out16.data(), file.parallel());
                } else {
                    h5::write_rows(dlogits, H5T_NATIVE_FLOAT, row0, wn, out.data(), file.parallel());
                }
                if (o.variance) {
                    h5::write_rows(dvar, H5T_NATIVE_FLOAT, row0, wn, var.data(), file.parallel());
                    h5::write_rows(ddis, H5T_NATIVE_FLOAT, row0, wn, dis.data(), file.parallel());
                }
                record.mark(wn > 0, blk, h);
            });
        }
        // Rows finished this round, over all shards (deterministic from the todo list).
        for (int s = 0; s < S; ++s) {
            const std::int64_t t = r * S + s;
            if (t < std::int64_t(todo.size())) rows_done += std::min(B, N - todo[size_t(t)] * B);
        }
        const double el = wall_seconds() - t_loop;
        const double rate = el > 0 ? double(rows_done - rows_done_before) / el : 0;
        std::ostringstream extra;
        extra.precision(4);
        extra << rate * M << " member-samples/s";
        progress.update(rows_done, extra.str());
    }
    progress.finish();

    // --- finish: fingerprint from the block hashes, completion flag, rename ----------------------
    par::agree(world, [&] {
        record.read();
        for (auto d : record.done())
            if (!d) fail(partial, ": internal error: a block is not marked done at the end");
        unsigned long long total = 0;
        for (auto h : record.hashes())
            total += h;
        h5::write_attr(file.id(), "logits_fingerprint", io::hex64(total));
        h5::write_attr(file.id(), "complete", 1LL);
        dlogits.reset();
        dvar.reset();
        ddis.reset();
        record.close();
        file.close();
        if (world.rank() == 0) io::rename_file(partial, o.out);
    });

    const double el = wall_seconds() - t_start;
    const double rows = double(N - rows_done_before);
    log::info("");
    log::info("label summary: ", o.out, " (", N, " x ", C, ", ", o.storage, ", combine = ", o.combine, ")");
    log::info("  ensemble ", manifest.ensemble_checksum(), " (", M, " members), transfer fingerprint ",
              tm.fingerprint);
    log::info("  grid ", G, " groups x ", S, " shards; ", rows, " rows in ", Progress::format_duration(el),
              ": ", rows / el, " samples/s, ", rows * M / el, " member-samples/s");
    timers.add("total", el);
    timers.report(world, "label timings");
    timers.append_csv(world, o.timings_csv,
                      {{"stage", "label"},
                       {"ranks", std::to_string(world.size())},
                       {"groups", std::to_string(G)},
                       {"shards", std::to_string(S)},
                       {"rows", std::to_string(N - rows_done_before)},
                       {"members", std::to_string(M)},
                       {"block_rows", std::to_string(B)}});
}

} // namespace mimic::stages
