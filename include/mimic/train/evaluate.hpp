// Classification metrics shared by `mimic train` and `mimic eval`: accuracy, top-k accuracy, mean
// cross-entropy, per-class accuracy and the confusion matrix, accumulated per rank and reduced.
#pragma once

#include "mimic/core/comm.hpp"
#include "mimic/core/kokkos.hpp"
#include "mimic/io/dataset.hpp"
#include "mimic/nn/model.hpp"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace mimic::train {

using nn::Model;
using nn::Shape;

/// Counts over labelled rows. Ties in the logits resolve to the lower class index.
struct EvalCounts {
    int num_classes = 0;
    int top_k = 1;
    std::int64_t n = 0, correct = 0, topk_correct = 0;
    double loss_sum = 0;                 ///< sum over rows of -log softmax(z)[y]
    std::vector<std::int64_t> confusion; ///< [true class * num_classes + predicted class]

    EvalCounts() = default;
    EvalCounts(int classes, int k);
    /// Adds rows: logits [rows, num_classes] on the host, labels[rows] in [0, num_classes).
    void add(const float* logits, const int* labels, std::int64_t rows);
    /// Collective: sums the counts over comm (every rank ends with the totals).
    void allreduce(const par::Comm& comm);

    double accuracy() const { return n ? double(correct) / double(n) : 0.0; }
    double topk_accuracy() const { return n ? double(topk_correct) / double(n) : 0.0; }
    double loss() const { return n ? loss_sum / double(n) : 0.0; }
    std::int64_t class_count(int c) const;
    double class_accuracy(int c) const;
    /// The confusion matrix as an aligned text table (rows: true class, columns: predicted).
    std::string confusion_table() const;
};

/// Number of rows whose arg-max logit equals the label (logits on the device, labels on the device).
std::int64_t count_correct(const Matrix& logits, const IntVector& labels);

/// Logits for a batch of rows x [B, D] -> [B, C]: one model now; an ensemble can supply its own.
using Predictor = std::function<Matrix(const Matrix& x)>;
/// A predictor that runs `model` in inference mode (no dropout).
Predictor model_predictor(Model& model);

/// Collective: this rank's contiguous share of `data`'s rows in batches of at most `batch` rows (the same
/// number of reads on every rank), each handed to fn as x [count, D] on the device and the labels (when
/// the file has them) on the host.
void for_each_batch(const io::DatasetReader& data, std::int64_t batch, const par::Comm& comm,
                    const std::function<void(const Matrix& x, const int* labels, std::int64_t count)>& fn);

/// Collective: runs `predict` over every row of `data` (each rank its contiguous share, in batches of
/// `batch` rows) and returns the reduced counts. The file must have labels.
EvalCounts evaluate(const Predictor& predict, int num_classes, const io::DatasetReader& data, int top_k,
                    std::int64_t batch, const par::Comm& comm);

} // namespace mimic::train
