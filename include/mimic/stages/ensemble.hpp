// `mimic ensemble train|add|info`: train N teacher members across ranks (each rank or group of ranks
// its own members), register members trained elsewhere, and print the members table of a manifest.
#pragma once

#include "mimic/parallel/comm.hpp"

#include <boost/program_options.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace mimic::stages {

struct EnsembleAddOptions {
    std::string manifest;             ///< manifest to create or extend
    std::vector<std::string> models;  ///< member model files to register
    bool absolute = false;            ///< store absolute paths instead of paths relative to the manifest
};

struct EnsembleInfoOptions {
    std::string manifest;
    bool deep = false; ///< load and verify every member's weights
};

void describe(boost::program_options::options_description& desc, EnsembleAddOptions& o);
void run(const EnsembleAddOptions& o, const par::Comm& comm);
void describe(boost::program_options::options_description& desc, EnsembleInfoOptions& o);
void run(const EnsembleInfoOptions& o, const par::Comm& comm);

/// The members table printed by `mimic ensemble info` (also shown after `ensemble train`).
std::string members_table(const std::string& manifest_path);

} // namespace mimic::stages
