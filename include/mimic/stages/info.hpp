// `mimic info FILE`: prints what a Mimic HDF5 file is (its format attribute), its attributes and its
// datasets with shapes, for datasets, models, manifests and logits alike.
#pragma once

#include "mimic/core/comm.hpp"

#include <boost/program_options.hpp>

#include <string>

namespace mimic::stages {

struct InfoOptions {
    std::string file;
};

void describe(boost::program_options::options_description& desc, InfoOptions& o);
void run(const InfoOptions& o, const par::Comm& comm);

/// The description printed by `mimic info`, as text (used by tests too).
std::string describe_file(const std::string& path);

} // namespace mimic::stages
