// `mimic data import`: MNIST-format IDX files (Fashion-MNIST by default) to train/val/test dataset
// files, normalised with statistics of the training rows only.
#pragma once

#include "mimic/core/comm.hpp"

#include <boost/program_options.hpp>

#include <cstdint>
#include <string>

namespace mimic::stages {

struct DataImportOptions {
    std::string train_images = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";
    std::string train_labels = "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz";
    std::string test_images = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
    std::string test_labels = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz";
    std::string out_dir = "data";
    std::int64_t val = 5000;
    std::string norm = "global";
    std::string name = "fashion-mnist";
    int num_classes = 0; ///< 0: max label + 1, provided every class below it has training rows
};

void describe(boost::program_options::options_description& desc, DataImportOptions& o);
void run(const DataImportOptions& o, const par::Comm& comm);

} // namespace mimic::stages
