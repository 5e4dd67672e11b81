// The `mimic` command-line front end: the command registry, option parsing (command line, then an
// INI file given with --config), the resolved-configuration echo, and error-to-exit-code handling.
#pragma once

#include "mimic/core/comm.hpp"

#include <boost/program_options.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace mimic::cli {

/// A stage bound to its options struct: describe() binds options to the struct, run() executes.
struct StageBase {
    virtual ~StageBase() = default;
    virtual void describe(boost::program_options::options_description& desc) = 0;
    virtual void run(const par::Comm& comm) = 0;
    /// Positional arguments (e.g. `mimic info FILE`): option names in order; "name..." takes the rest.
    virtual std::vector<std::string> positional() const { return {}; }
};

struct Command {
    std::string name;    ///< "train", "data import", ...
    std::string summary; ///< one line for `mimic --help`
    std::function<std::unique_ptr<StageBase>()> make;
};

/// Every command, in the order shown by `mimic --help`.
const std::vector<Command>& commands();

/// Parses the INI file given with --config: unsectioned keys and keys in this command's section must be
/// options of the command; sections of other commands are skipped; anything else is an error naming the
/// file (mimic::Error).
void store_config_file(const std::string& path, const std::string& command,
                       const boost::program_options::options_description& desc,
                       boost::program_options::variables_map& vm);

/// The whole program: returns the process exit code. MPI and Kokkos must be initialised.
int main(int argc, char** argv);

} // namespace mimic::cli
