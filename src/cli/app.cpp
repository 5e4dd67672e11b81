// Parses `mimic <command> [options]` with Boost.Program_options (command line first, then --config
// INI sections), echoes the resolved configuration on rank 0, runs the stage and maps errors to exit codes.
#include "mimic/cli/app.hpp"

#include "mimic/core/error.hpp"
#include "mimic/core/kokkos.hpp"
#include "mimic/core/log.hpp"
#include "mimic/core/runtime.hpp"

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace po = boost::program_options;

namespace mimic::cli {

namespace {

std::string section_of(const std::string& command) {
    std::string s = command;
    for (auto& ch : s)
        if (ch == ' ') ch = '-';
    return s;
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
        os << *p;
    else if (auto p = boost::any_cast<float>(&a))
        os << *p;
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
            os << (i ? " " : "") << (*p)[i];
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

void print_version() {
    std::printf("%s\n", mimic_version_string().c_str());
    std::printf("  Kokkos  %s\n", kokkos_version_string().c_str());
    std::printf("  MPI     %s\n", mpi_version_string().c_str());
    std::printf("  HDF5    %s\n", hdf5_version_string().c_str());
}

/// Parses the INI file: unsectioned keys and keys in this command's section must be options of the
/// command; sections of other commands are skipped; anything else is an error naming the file.
void store_config_file(const std::string& path, const std::string& command,
                       const po::options_description& desc, po::variables_map& vm) {
    std::ifstream in(path);
    if (!in) fail(path, ": cannot open the config file");
    po::parsed_options parsed(&desc);
    try {
        parsed = po::parse_config_file(in, desc, true);
    } catch (const po::error& e) {
        fail(path, ": ", e.what());
    }
    po::parsed_options kept(&desc);
    const std::string mine = section_of(command);
    for (auto opt : parsed.options) {
        std::string key = opt.string_key;
        const auto dot = key.find('.');
        if (dot != std::string::npos) {
            const std::string section = key.substr(0, dot);
            if (section != mine) {
                bool known = false;
                for (const auto& c : commands())
                    known = known || section_of(c.name) == section;
                if (!known) fail(path, ": unknown section [", section, "]");
                continue;
            }
            key = key.substr(dot + 1);
        }
        if (key == "config" || !desc.find_nothrow(key, false))
            fail(path, ": unknown option '", key, "' for `mimic ", command, "`");
        opt.string_key = key;
        opt.unregistered = false;
        kept.options.push_back(opt);
    }
    try {
        po::store(kept, vm);
    } catch (const po::error& e) {
        fail(path, ": ", e.what());
    }
}

void echo_configuration(const std::string& command, const po::options_description& desc,
                        const po::variables_map& vm) {
    log::info(mimic_version_string(), " | Kokkos ", kokkos_version_string(), " | ", mpi_version_string(),
              " | HDF5 ", hdf5_version_string());
    int size = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    log::info("mimic ", command, " on ", size, " rank", size == 1 ? "" : "s", ", resolved configuration:");
    for (const auto& o : desc.options()) {
        const std::string& name = o->long_name();
        if (name == "help" || !vm.count(name)) continue;
        const auto& v = vm[name];
        log::info("  ", name, " = ", any_to_string(v.value()), v.defaulted() ? "  (default)" : "");
    }
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

    const Command* cmd = nullptr;
    size_t consumed = 0;
    for (const auto& c : commands()) {
        if (args.size() >= 2 && c.name == args[0] + " " + args[1]) cmd = &c, consumed = 2;
    }
    if (!cmd)
        for (const auto& c : commands())
            if (c.name == args[0]) cmd = &c, consumed = 1;
    if (!cmd) {
        if (root) {
            std::fprintf(stderr, "mimic: error: unknown command '%s'\n", args[0].c_str());
            print_usage();
        }
        return 2;
    }
    args.erase(args.begin(), args.begin() + long(consumed));

    auto stage = cmd->make();
    po::options_description desc("options of `mimic " + cmd->name + "`", 100, 40);
    std::string config_path;
    bool quiet = false;
    desc.add_options()("help,h", "show this help")("config", po::value(&config_path),
                                                   "INI file with options (the command line wins)")(
        "quiet", po::bool_switch(&quiet), "print errors only");
    stage->describe(desc);
    po::positional_options_description pos;
    for (const auto& p : stage->positional()) {
        const bool many = p.size() > 3 && p.compare(p.size() - 3, 3, "...") == 0;
        pos.add(many ? p.substr(0, p.size() - 3).c_str() : p.c_str(), many ? -1 : 1);
    }

    po::variables_map vm;
    try {
        po::store(po::command_line_parser(args).options(desc).positional(pos).run(), vm);
        if (vm.count("help")) {
            if (root) {
                std::ostringstream os;
                os << desc;
                std::printf("usage: mimic %s [options]", cmd->name.c_str());
                for (const auto& p : stage->positional())
                    std::printf(" <%s>", p.c_str());
                std::printf("\n%s — %s\n\n%s", cmd->name.c_str(), cmd->summary.c_str(), os.str().c_str());
            }
            return 0;
        }
        if (vm.count("config")) store_config_file(vm["config"].as<std::string>(), cmd->name, desc, vm);
        po::notify(vm);
    } catch (const po::error& e) {
        if (root)
            std::fprintf(stderr, "mimic %s: error: %s (see `mimic %s --help`)\n", cmd->name.c_str(), e.what(),
                         cmd->name.c_str());
        return 2;
    } catch (const Error& e) {
        if (root) std::fprintf(stderr, "mimic %s: error: %s\n", cmd->name.c_str(), e.what());
        return 2;
    }
    log::set_quiet(quiet);
    echo_configuration(cmd->name, desc, vm);

    par::Comm world;
    try {
        stage->run(world);
    } catch (const CollectiveError& e) {
        if (root) std::fprintf(stderr, "mimic %s: error: %s\n", cmd->name.c_str(), e.what());
        return 1;
    } catch (const std::exception& e) {
        // Raised on this rank only: the others may be waiting in a collective, so abort the job.
        if (world.size() == 1) {
            std::fprintf(stderr, "mimic %s: error: %s\n", cmd->name.c_str(), e.what());
            return 1;
        }
        std::fprintf(stderr, "mimic %s: error (rank %d): %s\n", cmd->name.c_str(), world.rank(), e.what());
        std::fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    return 0;
}

} // namespace mimic::cli
