// `mimic ensemble add` and `mimic ensemble info`: register existing model files into a manifest
// (validated before anything is written) and print a manifest's members table.
#include "mimic/core/log.hpp"
#include "mimic/io/dataset.hpp"
#include "mimic/io/manifest.hpp"
#include "mimic/io/paths.hpp"
#include "mimic/stages/ensemble.hpp"
#include "mimic/stages/onnx.hpp"

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace po = boost::program_options;

namespace mimic::stages {

// clang-format off
void describe(po::options_description& d, EnsembleAddOptions& o) {
    d.add_options()
        ("manifest", po::value(&o.manifest)->required(), "manifest to create or extend")
        ("model", po::value(&o.models)->multitoken()->required(), "member model file(s) to register (positional); .onnx files are imported to <manifest dir>/<name>.h5 first")
        ("absolute", po::bool_switch(&o.absolute), "store absolute member paths (default: relative to the manifest)");
    describe(d, o.onnx_input); // for the .onnx members
}
// clang-format on

// clang-format off
void describe(po::options_description& d, EnsembleInfoOptions& o) {
    d.add_options()
        ("manifest", po::value(&o.manifest)->required(), "the manifest (positional)")
        ("deep", po::bool_switch(&o.deep), "load every member and verify its weights");
}
// clang-format on

namespace {
std::string absolute_path(const std::string& p) {
    char buf[PATH_MAX];
    if (realpath(p.c_str(), buf)) return buf;
    return p;
}

/// Path of `target` relative to directory `base` (both made absolute).
std::string relative_to(const std::string& target, const std::string& base) {
    const std::string t = absolute_path(target), b = absolute_path(base);
    std::vector<std::string> tp, bp;
    auto split = [](const std::string& s, std::vector<std::string>& out) {
        std::stringstream ss(s);
        std::string part;
        while (std::getline(ss, part, '/'))
            if (!part.empty()) out.push_back(part);
    };
    split(t, tp);
    split(b, bp);
    size_t i = 0;
    while (i < tp.size() && i < bp.size() && tp[i] == bp[i])
        ++i;
    std::string rel;
    for (size_t j = i; j < bp.size(); ++j)
        rel += "../";
    for (size_t j = i; j < tp.size(); ++j)
        rel += tp[j] + (j + 1 < tp.size() ? "/" : "");
    return rel.empty() ? "." : rel;
}

} // namespace

std::string members_table(const std::string& manifest_path) {
    const auto m = io::read_manifest(manifest_path);
    std::ostringstream os;
    char line[512];
    std::snprintf(line, sizeof line, "%4s  %-34s %8s %11s %10s %9s  %s\n", "#", "path", "val acc", "params",
                  "MFLOP/smp", "seed", "architecture");
    os << line;
    double acc_sum = 0, acc_min = 1e9, acc_max = -1e9;
    int acc_n = 0;
    for (size_t i = 0; i < m.members.size(); ++i) {
        const auto& e = m.members[i];
        std::string path = e.path.size() > 34 ? "..." + e.path.substr(e.path.size() - 31) : e.path;
        char acc[32];
        if (e.val_accuracy >= 0) {
            std::snprintf(acc, sizeof acc, "%.2f%%", 100 * e.val_accuracy);
            acc_sum += e.val_accuracy, acc_min = std::min(acc_min, e.val_accuracy),
                                       acc_max = std::max(acc_max, e.val_accuracy), ++acc_n;
        } else {
            std::snprintf(acc, sizeof acc, "-");
        }
        std::snprintf(line, sizeof line, "%4zu  %-34s %8s %11lld %10.2f %9llu  %s\n", i, path.c_str(), acc,
                      (long long)e.params, e.flops / 1e6, (unsigned long long)e.seed, e.spec.c_str());
        os << line;
    }
    const auto in = m.input();
    os << log::count((long long)m.members.size(), "member") << ", " << m.num_classes() << " classes, input "
       << in.c << "x" << in.h << "x" << in.w << ", ensemble checksum " << m.ensemble_checksum();
    if (acc_n > 0) {
        std::snprintf(line, sizeof line, "; member val accuracy mean %.2f%%, range %.2f%%-%.2f%%",
                      100 * acc_sum / acc_n, 100 * acc_min, 100 * acc_max);
        os << line;
    }
    os << "\n";
    return os.str();
}

void run(const EnsembleAddOptions& o, const par::Comm& comm) {
    const auto is_onnx = [](const std::string& p) {
        return p.size() > 5 && p.compare(p.size() - 5, 5, ".onnx") == 0;
    };
    if (!o.onnx_input.norm_from.empty() && std::none_of(o.models.begin(), o.models.end(), is_onnx))
        fail("--norm-from: applies to the .onnx members, and none was given (Mimic model files keep their "
             "own inputs)");
    const auto lock = io::claim_outputs({o.manifest}, o.models, comm.get());
    par::agree(comm, [&] {
        if (comm.rank() != 0) return;
        io::Manifest m;
        if (io::file_exists(o.manifest)) {
            m = io::read_manifest(o.manifest);
        } else {
            m.base_dir = h5::parent_dir(o.manifest);
        }
        std::vector<std::string> imported; // model files written from .onnx members (removed on failure)
        try {
            for (const auto& given : o.models) {
                std::string p = given;
                if (is_onnx(p)) {
                    // An ONNX teacher: imported first to <manifest dir>/<name>.h5, then registered.
                    const auto slash = p.find_last_of('/');
                    const std::string stem = p.substr(slash == std::string::npos ? 0 : slash + 1);
                    const std::string target = m.base_dir + "/" + stem.substr(0, stem.size() - 5) + ".h5";
                    if (io::file_exists(target))
                        fail(p, ": the import target ", target, " exists; register it directly or remove it");
                    log::info("ensemble add: ", import_onnx_file(p, target, o.onnx_input));
                    imported.push_back(target);
                    p = target;
                }
                if (!io::file_exists(p)) fail(p, ": no such model file");
                const std::string stored = o.absolute ? absolute_path(p) : relative_to(p, m.base_dir);
                for (const auto& e : m.members)
                    if (e.path == stored) fail(p, ": already registered in ", o.manifest);
                m.members.push_back(io::member_from_model_file(p, stored));
            }
            io::validate_manifest(m, o.manifest, false); // shapes, classes and checksums agree before writing
            io::write_manifest(o.manifest, m);
        } catch (...) {
            for (const auto& f : imported)
                io::remove_file(f);
            throw;
        }
    });
    log::info("ensemble add: ", o.models.size(), " member(s) registered in ", o.manifest);
    if (comm.rank() == 0) log::info(members_table(o.manifest));
}

void run(const EnsembleInfoOptions& o, const par::Comm& comm) {
    std::string table;
    par::agree(comm, [&] {
        if (comm.rank() != 0) return;
        const auto m = io::read_manifest(o.manifest);
        io::validate_manifest(m, o.manifest, o.deep);
        table = members_table(o.manifest);
    });
    log::info(table);
}

} // namespace mimic::stages
