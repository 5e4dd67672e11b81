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

/// A fresh scratch directory under the test's working directory, the same path on every rank.
inline std::string scratch_dir(const par::Comm& comm) {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string dir = std::string("scratch/") + info->test_suite_name() + "." + info->name() + ".np" +
                      std::to_string(comm.size());
    if (comm.rank() == 0) {
        std::string cmd = "rm -rf '" + dir + "' && mkdir -p '" + dir + "'";
        if (std::system(cmd.c_str()) != 0) ADD_FAILURE() << "cannot create " << dir;
    }
    comm.barrier();
    return dir;
}

} // namespace mimic::test
