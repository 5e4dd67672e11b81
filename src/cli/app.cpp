// Parses `mimic <command> [options]` with Boost.Program_options (command line first, then --config
// INI sections; names must be spelled out, with "did you mean" hints), echoes the resolved configuration
// on rank 0, runs the stage and maps errors to exit codes.
#include "mimic/cli/app.hpp"

#include "mimic/core/comm.hpp"
#include "mimic/core/error.hpp"
#include "mimic/core/kokkos.hpp"
#include "mimic/core/log.hpp"
#include "mimic/core/runtime.hpp"
#include "mimic/core/version_info.hpp"
#include "mimic/io/hdf5.hpp"
#include "mimic/nn/precision.hpp"
#include "mimic/nn/spec.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

namespace po = boost::program_options;

namespace mimic::cli {

namespace {

/// The substitutions (option name, value, ...) of a program_options error.
struct PoSubstitutions : po::error_with_option_name {
    static const std::map<std::string, std::string>& of(const po::error_with_option_name& e) {
        return e.*(&PoSubstitutions::m_substitutions);
    }
};

/// po::error::what(), safe for any text the user typed. Boost 1.74 replaces a placeholder such as %value%
/// for as long as the message still contains it, so a value holding its own placeholder (`--epochs
/// %value%`, or the same in a config file) made what() loop forever; each '%' of a value is escaped first.
std::string what_of(const po::error& e) {
    const auto* named = dynamic_cast<const po::error_with_option_name*>(&e);
    if (!named) return e.what();
    po::error_with_option_name safe = *named;
    for (const auto& [name, value] : PoSubstitutions::of(*named)) {
        std::string v;
        for (char c : value)
            v += c == '%' ? std::string("\\%") : std::string(1, c);
        safe.set_substitute(name, v);
    }
    return safe.what();
}

std::string section_of(const std::string& command) {
    std::string s = command;
    for (auto& ch : s)
        if (ch == ' ') ch = '-';
    return s;
}

/// Levenshtein distance between a and b (insertions, deletions and substitutions cost 1).
std::size_t edit_distance(const std::string& a, const std::string& b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j)
        row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diag = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t up = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diag = up;
        }
    }
    return row[b.size()];
}

/// The candidate closest to `word`, or "" when none is within max(2, |word| / 3) edits.
std::string closest(const std::string& word, const std::vector<std::string>& candidates) {
    std::string best;
    std::size_t best_d = std::max<std::size_t>(2, word.size() / 3) + 1;
    for (const auto& c : candidates) {
        const std::size_t d = edit_distance(word, c);
        if (d < best_d) best = c, best_d = d;
    }
    return best;
}

std::vector<std::string> option_names(const po::options_description& desc) {
    std::vector<std::string> names;
    for (const auto& o : desc.options())
        if (o->long_name() != "help") names.push_back(o->long_name());
    return names;
}

/// "; did you mean '--epochs'?" for an unknown option name (dashes optional), or "".
std::string option_hint(const std::string& typed, const po::options_description& desc, const char* dashes) {
    const std::string bare = typed.substr(std::min(typed.find_first_not_of('-'), typed.size()));
    const std::string best = closest(bare, option_names(desc));
    return best.empty() ? std::string() : detail::concat("; did you mean '", dashes, best, "'?");
}

/// The shortest decimal text that reads back as v ("0.9", not Boost's "0.90000000000000002").
template <class T>
std::string shortest_text(T v) {
    char buf[64];
    for (int digits = 1; digits <= 17; ++digits) {
        std::snprintf(buf, sizeof buf, "%.*g", digits, double(v));
        if (T(std::strtod(buf, nullptr)) == v) break;
    }
    return buf;
}

/// Rewrites the --help text of floating-point defaults as written in the source (0.9, 1e-08).
void print_defaults_as_written(const po::options_description& desc) {
    for (const auto& o : desc.options()) {
        const po::value_semantic* sem = o->semantic().get();
        boost::any v;
        if (auto d = dynamic_cast<const po::typed_value<double>*>(sem); d && d->apply_default(v)) {
            const double x = boost::any_cast<double>(v);
            const_cast<po::typed_value<double>*>(d)->default_value(x, shortest_text(x));
        } else if (auto f = dynamic_cast<const po::typed_value<float>*>(sem); f && f->apply_default(v)) {
            const float x = boost::any_cast<float>(v);
            const_cast<po::typed_value<float>*>(f)->default_value(x, shortest_text(x));
        }
    }
}

std::string any_to_string(const boost::any& a) {
    std::ostringstream os;
    if (a.empty()) return "";
    if (auto p = boost::any_cast<std::string>(&a)) return *p;
    if (auto p = boost::any_cast<int>(&a))
        os << *p;
    else if (auto p = boost::any_cast<long>(&a))
        os << *p;
    else if (auto p = boost::any_cast<long long>(&a))
        os << *p;
    else if (auto p = boost::any_cast<unsigned>(&a))
        os << *p;
    else if (auto p = boost::any_cast<unsigned long>(&a))
        os << *p;
    else if (auto p = boost::any_cast<double>(&a))
        os << shortest_text(*p);
    else if (auto p = boost::any_cast<float>(&a))
        os << shortest_text(*p);
    else if (auto p = boost::any_cast<bool>(&a))
        os << (*p ? "true" : "false");
    else if (auto p = boost::any_cast<std::vector<std::string>>(&a)) {
        for (size_t i = 0; i < p->size(); ++i)
            os << (i ? " " : "") << (*p)[i];
    } else if (auto p = boost::any_cast<std::vector<int>>(&a)) {
        for (size_t i = 0; i < p->size(); ++i)
            os << (i ? " " : "") << (*p)[i];
    } else if (auto p = boost::any_cast<std::vector<double>>(&a)) {
        for (size_t i = 0; i < p->size(); ++i)
            os << (i ? " " : "") << shortest_text((*p)[i]);
    } else {
        os << "<set>";
    }
    return os.str();
}

void print_usage() {
    std::printf(
        "Mimic: compress ensembles of deep nets into shallow or small students (MPI + HDF5 + Kokkos)\n\n");
    std::printf("usage: mimic <command> [options]      (mimic <command> --help for its options)\n");
    std::printf("       mimic --version\n\ncommands:\n");
    for (const auto& c : commands())
        std::printf("  %-18s %s\n", c.name.c_str(), c.summary.c_str());
    std::printf(
        "\nEvery option can also be set in an INI file given with --config FILE: plain `key = value`\n"
        "lines, or a [command] section (e.g. [train], [data-import]); the command line wins.\n");
}

/// Where this executable runs from: "P (share P/share/mimic)" when it is PREFIX/<bindir>/mimic of an
/// install (its share directory holds the job scripts), else the executable's path and the configured prefix.
std::string install_string() {
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::path exe = fs::canonical("/proc/self/exe", ec);
    if (ec) return "unknown (/proc/self/exe: " + ec.message() + ")";
    const std::string dir = exe.parent_path().string(), bindir = MIMIC_INSTALL_BINDIR;
    const bool relative = !bindir.empty() && bindir.front() != '/';
    if (relative && dir.size() > bindir.size() &&
        dir.compare(dir.size() - bindir.size(), bindir.size(), bindir) == 0 &&
        dir[dir.size() - bindir.size() - 1] == '/') {
        const fs::path prefix = dir.substr(0, dir.size() - bindir.size() - 1);
        const fs::path share = prefix / MIMIC_INSTALL_DATADIR / "mimic";
        if (fs::is_regular_file(share / "jobs" / "slurm" / "common.sh", ec))
            return prefix.string() + " (share " + share.string() + ")";
    }
    return std::string("none: ") + exe.string() + " is not installed (configured prefix " +
           MIMIC_INSTALL_PREFIX + ")";
}

void print_version() {
    std::printf("%s\n", mimic_version_string().c_str());
    std::printf("  Kokkos  %s\n", kokkos_version_string().c_str());
    std::printf("  MPI     %s\n", mpi_version_string().c_str());
    std::printf("  HDF5    %s\n", hdf5_version_string().c_str());
    std::printf("  install %s\n", install_string().c_str());
}

} // namespace

void store_config_file(const std::string& path, const std::string& command,
                       const po::options_description& desc, po::variables_map& vm) {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) fail(path, ": --config names a directory, not an INI file");
    std::ifstream file(path);
    if (!file) fail(path, ": cannot open the config file");
    std::ostringstream text;
    text << file.rdbuf();
    std::string body = text.str();
    // A UTF-8 byte-order mark, as some editors write, is not part of the first option's name.
    if (body.compare(0, 3, "\xEF\xBB\xBF") == 0) body.erase(0, 3);
    std::istringstream in(body);
    po::parsed_options parsed(&desc);
    try {
        parsed = po::parse_config_file(in, desc, true);
    } catch (const po::error& e) {
        fail(path, ": ", what_of(e));
    }
    po::parsed_options kept(&desc);
    const std::string mine = section_of(command);
    for (auto opt : parsed.options) {
        std::string key = opt.string_key;
        const auto dot = key.find('.');
        if (dot != std::string::npos) {
            const std::string section = key.substr(0, dot);
            if (section != mine) {
                std::vector<std::string> sections;
                for (const auto& c : commands())
                    sections.push_back(section_of(c.name));
                if (std::find(sections.begin(), sections.end(), section) == sections.end()) {
                    const std::string best = closest(section, sections);
                    fail(path, ": unknown section [", section, "]",
                         best.empty() ? std::string() : detail::concat("; did you mean [", best, "]?"));
                }
                continue;
            }
            key = key.substr(dot + 1);
        }
        if (key.empty()) fail(path, ": a line has a value but no option name (`", opt.string_key, "=...`)");
        const po::option_description* known = nullptr;
        try {
            known = desc.find_nothrow(key, false);
        } catch (const po::error& e) { // e.g. an ambiguous name
            fail(path, ": option '", key, "': ", what_of(e));
        }
        if (key == "config" || !known)
            fail(path, ": unknown option '", key, "' for `mimic ", command, "`", option_hint(key, desc, ""));
        opt.string_key = key;
        opt.unregistered = false;
        kept.options.push_back(opt);
    }
    try {
        po::store(kept, vm);
    } catch (const po::error& e) {
        fail(path, ": ", what_of(e));
    }
}

namespace {

void echo_configuration(const std::string& command, const po::options_description& desc,
                        const po::variables_map& vm) {
    log::info(mimic_version_string(), " | Kokkos ", kokkos_version_string(), " | ", mpi_version_string(),
              " | HDF5 ", hdf5_version_string());
    const int size = par::Comm().size();
    log::info("mimic ", command, " on ", size, " rank", size == 1 ? "" : "s", ", resolved configuration:");
    for (const auto& o : desc.options()) {
        const std::string& name = o->long_name();
        if (name == "help" || !vm.count(name)) continue;
        const auto& v = vm[name];
        const bool from_env = name == "io-hints" && v.defaulted() && std::getenv("MIMIC_IO_HINTS");
        log::info("  ", name, " = ", any_to_string(v.value()),
                  from_env        ? "  (MIMIC_IO_HINTS)"
                  : v.defaulted() ? "  (default)"
                                  : "");
    }
}

/// "unknown command 'distil'; did you mean 'mimic distill'?", or the subcommands of a group ("ensemble").
std::string unknown_command_message(const std::vector<std::string>& args) {
    std::vector<std::string> names;
    std::string group;
    for (const auto& c : commands()) {
        names.push_back(c.name);
        if (c.name.rfind(args[0] + " ", 0) == 0) group += (group.empty() ? "'" : ", '") + c.name + "'";
    }
    if (args.size() >= 2 && !args[1].empty() && args[1][0] != '-') {
        const std::string two = args[0] + " " + args[1];
        const std::string best = closest(two, names);
        if (!best.empty())
            return detail::concat("unknown command '", two, "'; did you mean 'mimic ", best, "'?");
    }
    if (!group.empty()) return detail::concat("'", args[0], "' needs a subcommand: ", group);
    const std::string best = closest(args[0], names);
    return detail::concat("unknown command '", args[0], "'",
                          best.empty() ? std::string("; `mimic --help` lists the commands")
                                       : detail::concat("; did you mean 'mimic ", best, "'?"));
}

/// Checks the syntax of --arch before anything runs (throws nn::SpecSyntaxError); whether the
/// architecture fits the data is the stage's to check.
void check_arch_syntax(const po::variables_map& vm) {
    if (!vm.count("arch")) return;
    const auto* spec = boost::any_cast<std::string>(&vm["arch"].value());
    if (spec && !spec->empty()) nn::parse_spec(*spec);
}

/// Prints an error after the stage's output has begun, so that it is the last line a user sees. Under a
/// launcher (mpirun, srun) stdout and stderr are forwarded separately and an error written at once could
/// overtake the configuration echo: stdout is flushed and the launcher given a moment to forward it first.
/// A line every rank raised is left out when a rank that gave up waiting for the others printed it.
void print_error_last(const std::string& line, bool shared = false) {
    std::fflush(stdout);
    const bool launched = std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMI_SIZE") ||
                          std::getenv("PMIX_RANK") || std::getenv("SLURM_STEP_ID");
    if (launched) std::this_thread::sleep_for(std::chrono::milliseconds(300));
    if (shared && another_rank_reported()) return;
    std::fprintf(stderr, "%s\n", line.c_str());
    std::fflush(stderr);
}

/// Runs a parsed command on every rank: an error raised by every rank is printed once and exits 1; one
/// raised by a group or a single rank ends the whole job (the others may wait in a collective).
int run_stage(StageBase& stage, bool root) {
    par::Comm world;
    try {
        stage.run(world);
    } catch (const CollectiveError& e) {
        if (e.whole_job()) {
            // Every rank raised it: rank 0 prints it and every rank leaves with the same exit code.
            if (root) print_error_last(detail::concat(error_prefix(), ": error: ", e.what()), true);
            if (world.size() > 1) arm_exit_watchdog(1);
            return 1;
        }
        // Raised by every rank of one group (an ensemble group): the other groups know nothing of it.
        // The group's rank 0 prints it and ends the job; the others give it time to do so.
        if (!e.reporter()) std::this_thread::sleep_for(std::chrono::seconds(5));
        abort_job(e.what());
    } catch (const std::exception& e) {
        // Raised on this rank only: the others may be waiting in a collective, so end the job now.
        if (world.size() == 1) {
            print_error_last(detail::concat(error_prefix(), ": error: ", e.what()));
            return 1;
        }
        abort_job_once(e.what());
    }
    return 0;
}

/// The command args name ("ensemble train", "train"), with its words removed from args; null if none.
const Command* find_command(std::vector<std::string>& args) {
    const Command* cmd = nullptr;
    size_t consumed = 0;
    for (const auto& c : commands()) {
        if (args.size() >= 2 && c.name == args[0] + " " + args[1]) cmd = &c, consumed = 2;
    }
    if (!cmd)
        for (const auto& c : commands())
            if (c.name == args[0]) cmd = &c, consumed = 1;
    if (cmd) args.erase(args.begin(), args.begin() + long(consumed));
    return cmd;
}

/// The options every command takes, besides its own.
struct GlobalOptions {
    std::string config_path;
    bool quiet = false;
    std::string precision = "fp32";
    const char* env_hints = std::getenv("MIMIC_IO_HINTS");
    std::string io_hints = env_hints ? env_hints : "";
};

void describe_global(po::options_description& desc, GlobalOptions& g) {
    desc.add_options()("help,h", "show this help")("config", po::value(&g.config_path),
                                                   "INI file with options (the command line wins)")(
        "quiet", po::bool_switch(&g.quiet), "print errors only")(
        "precision", po::value(&g.precision)->default_value(g.precision),
        "GEMM precision: fp32 | tf32 (TF32 tensor cores through cuBLAS; CUDA builds only)")(
        "io-hints", po::value(&g.io_hints)->default_value(g.io_hints),
        "MPI-IO hints for every parallel file, key=value[,key=value] (e.g. romio_cb_write=enable,"
        "cb_nodes=8,striping_unit=4194304); default: $MIMIC_IO_HINTS");
}

po::positional_options_description positional_of(const StageBase& stage) {
    po::positional_options_description pos;
    for (const auto& p : stage.positional()) {
        const bool many = p.size() > 3 && p.compare(p.size() - 3, 3, "...") == 0;
        pos.add(many ? p.substr(0, p.size() - 3).c_str() : p.c_str(), many ? -1 : 1);
    }
    return pos;
}

void print_command_help(const Command& cmd, const StageBase& stage, const po::options_description& desc,
                        bool root) {
    print_defaults_as_written(desc);
    if (!root) return;
    std::ostringstream os;
    os << desc;
    std::printf("usage: mimic %s [options]", cmd.name.c_str());
    for (const auto& p : stage.positional())
        std::printf(" <%s>", p.c_str());
    std::printf("\n%s — %s\n\n%s", cmd.name.c_str(), cmd.summary.c_str(), os.str().c_str());
}

/// Parses the command line and the config file into vm and applies the global options. Returns -1 to go
/// on, or the exit code: 0 after --help, 2 after a bad option (reported by rank 0).
int parse_command_line(const Command& cmd, const StageBase& stage, const std::vector<std::string>& args,
                       const po::options_description& desc, const GlobalOptions& g, po::variables_map& vm,
                       bool root) {
    try {
        // unix_style without allow_guessing: `--epoch 3` is an error, not --epochs.
        const int style = po::command_line_style::unix_style & ~po::command_line_style::allow_guessing;
        po::store(
            po::command_line_parser(args).options(desc).positional(positional_of(stage)).style(style).run(),
            vm);
        if (vm.count("help")) {
            print_command_help(cmd, stage, desc, root);
            return 0;
        }
        if (vm.count("config")) store_config_file(vm["config"].as<std::string>(), cmd.name, desc, vm);
        po::notify(vm);
        check_arch_syntax(vm);
        nn::set_precision(nn::parse_precision(g.precision));
        h5::set_io_hints(g.io_hints,
                         vm["io-hints"].defaulted() && g.env_hints ? "MIMIC_IO_HINTS" : "--io-hints");
        check_environment();
    } catch (const po::unknown_option& e) {
        if (root)
            std::fprintf(stderr, "mimic %s: error: %s%s (see `mimic %s --help`)\n", cmd.name.c_str(),
                         what_of(e).c_str(), option_hint(e.get_option_name(), desc, "--").c_str(),
                         cmd.name.c_str());
        return 2;
    } catch (const nn::SpecSyntaxError& e) {
        if (root) {
            // The spec with a caret under the bad token, then the error as the last line.
            const std::string& spec = vm["arch"].as<std::string>();
            std::fprintf(stderr, "  --arch %s\n  %*s%s\n", spec.c_str(), int(7 + e.offset), "",
                         std::string(std::max<std::size_t>(1, e.length), '^').c_str());
            std::fprintf(stderr, "mimic %s: error: --%s\n", cmd.name.c_str(), e.what());
        }
        return 2;
    } catch (const po::error& e) {
        if (root)
            std::fprintf(stderr, "mimic %s: error: %s (see `mimic %s --help`)\n", cmd.name.c_str(),
                         what_of(e).c_str(), cmd.name.c_str());
        return 2;
    } catch (const Error& e) {
        if (root) std::fprintf(stderr, "mimic %s: error: %s\n", cmd.name.c_str(), e.what());
        return 2;
    }
    return -1;
}

} // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    const bool root = log::world_rank() == 0;
    if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
        if (root) print_usage();
        return args.empty() ? 2 : 0;
    }
    if (args[0] == "--version" || args[0] == "-V" || args[0] == "version") {
        if (root) print_version();
        return 0;
    }
    const Command* cmd = find_command(args);
    if (!cmd) {
        if (root) std::fprintf(stderr, "mimic: error: %s\n", unknown_command_message(args).c_str());
        return 2;
    }
    set_error_prefix("mimic " + cmd->name);

    auto stage = cmd->make();
    po::options_description desc("options of `mimic " + cmd->name + "`", 100, 40);
    GlobalOptions g;
    describe_global(desc, g);
    stage->describe(desc);
    po::variables_map vm;
    const int rc = parse_command_line(*cmd, *stage, args, desc, g, vm, root);
    if (rc >= 0) return rc;
    log::set_quiet(g.quiet);
    echo_configuration(cmd->name, desc, vm);
    return run_stage(*stage, root);
}

} // namespace mimic::cli
