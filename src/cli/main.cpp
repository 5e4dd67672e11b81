// Entry point of the `mimic` executable: sets up the runtime and hands over to the CLI.
// Everything else lives in the library so that tests can link it.
#include "mimic/cli/app.hpp"
#include "mimic/core/runtime.hpp"

int main(int argc, char** argv) {
    int rc = 0;
    {
        mimic::Runtime runtime(argc, argv);
        rc = mimic::cli::main(argc, argv);
    }
    return rc;
}
