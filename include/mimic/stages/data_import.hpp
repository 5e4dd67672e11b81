// `mimic data import`: a user's images and labels (IDX, .npy/.npz, HDF5, CIFAR binary, image folders) to
// train/val/test dataset files normalised with statistics of the training rows only, or unlabelled rows
// to a transfer file normalised with a training file's statistics.
#pragma once

#include "mimic/core/comm.hpp"

#include <boost/program_options.hpp>

#include <cstdint>
#include <string>

namespace mimic::stages {

struct DataImportOptions {
    std::string train_images = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";
    std::string train_labels; ///< "": the images' own labels, or Fashion-MNIST's with its default images
    std::string test_images = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
    std::string test_labels;
    std::string format = "auto";
    std::string layout;     ///< nhwc | nchw for rank-4 arrays whose format does not fix it
    std::string unlabelled; ///< unlabelled rows to a transfer file (--out), normalised as --norm-from
    std::string norm_from;
    std::string out;
    std::string out_dir = "data";
    std::int64_t val = 5000;
    std::string norm = "global";
    std::string name = "fashion-mnist";
    int num_classes = 0;         ///< 0: max label + 1, provided every class below it has training rows
    std::int64_t block_rows = 0; ///< rows converted per block and rank (0: about 32 MiB of values)
    std::string store = "fp32";  ///< how /X is stored: fp32 | fp16 | uint8 (8-bit sources only)
    double flush_seconds = 10;   ///< 0: flush the partial files every round; S: at most every S seconds
};

void describe(boost::program_options::options_description& desc, DataImportOptions& o);
void run(const DataImportOptions& o, const par::Comm& comm);

} // namespace mimic::stages
