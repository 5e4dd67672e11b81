// Entry point of the `mimic` executable: sets up the runtime and hands over to the CLI.
// Everything else lives in the library so that tests can link it.
#include "mimic/cli/app.hpp"
#include "mimic/core/runtime.hpp"
#include "mimic/io/hdf5.hpp"

#include <cstdio>
#include <cstdlib>

int main(int argc, char** argv) {
    int rc = 0;
    {
        mimic::Runtime runtime(argc, argv);
        rc = mimic::cli::main(argc, argv);
        if (rc != 0 && mimic::h5::had_close_failure()) {
            // A file could not be closed (full disk): HDF5 would crash while cleaning it up inside
            // MPI_Finalize, so leave with the error already reported and the exit code intact.
            std::fflush(stdout);
            std::fflush(stderr);
            std::_Exit(rc);
        }
    }
    return rc;
}
