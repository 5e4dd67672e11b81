// GoogleTest main for Mimic's tests: initialises the runtime (MPI, Kokkos, HDF5) once per process
// and keeps the report to rank 0 so that multi-rank runs stay readable.
#include "mimic/core/runtime.hpp"

#include <gtest/gtest.h>
#include <mpi.h>

int main(int argc, char** argv) {
    int rc = 0;
    {
        mimic::Runtime runtime(argc, argv);
        ::testing::InitGoogleTest(&argc, argv);
        if (runtime.world_rank() != 0) {
            auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
            delete listeners.Release(listeners.default_result_printer());
        }
        rc = RUN_ALL_TESTS();
        // A failure on any rank fails the test on every rank.
        int any = 0;
        MPI_Allreduce(&rc, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
        rc = any;
    }
    return rc;
}
