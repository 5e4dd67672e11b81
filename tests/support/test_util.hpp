// Helpers shared by Mimic's C++ tests: a per-test scratch directory agreed on by all ranks and
// small comparisons for host vectors.
#pragma once

#include "mimic/io/dataset.hpp"
#include "mimic/core/comm.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <unistd.h>

namespace mimic::test {

/// A fresh scratch directory under the test's working directory, the same path on every rank; its own
/// per rank count and for the host-staged runs (MIMIC_HOST_STAGED_MPI=1), which ctest may run alongside.
inline std::string scratch_dir(const par::Comm& comm) {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    const char* staged = std::getenv("MIMIC_HOST_STAGED_MPI");
    std::string dir = std::string("scratch/") + info->test_suite_name() + "." + info->name() + ".np" +
                      std::to_string(comm.size()) + (staged && std::string(staged) == "1" ? ".staged" : "");
    if (comm.rank() == 0) {
        std::string cmd = "rm -rf '" + dir + "' && mkdir -p '" + dir + "'";
        if (std::system(cmd.c_str()) != 0) ADD_FAILURE() << "cannot create " << dir;
    }
    comm.barrier();
    return dir;
}

} // namespace mimic::test
