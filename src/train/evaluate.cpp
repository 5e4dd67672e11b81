// Metric accumulation on host copies of the logits (log-sum-exp in double), device arg-max counting
// for training batches, and the collective evaluation loop over a dataset file.
#include "mimic/train/evaluate.hpp"

#include "mimic/core/error.hpp"
#include "mimic/core/host_readback.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iomanip>
#include <sstream>

namespace mimic::train {

EvalCounts::EvalCounts(int classes, int k) : num_classes(classes), top_k(k) {
    MIMIC_REQUIRE(classes >= 1, "evaluation needs at least one class");
    MIMIC_REQUIRE(k >= 1, "--top-k: must be >= 1, got ", k);
    confusion.assign(size_t(classes) * size_t(classes), 0);
}

void EvalCounts::add(const float* logits, const int* labels, std::int64_t rows) {
    const int C = num_classes;
    for (std::int64_t i = 0; i < rows; ++i) {
        const float* z = logits + i * C;
        const int y = labels[i];
        if (y < 0 || y >= C) fail("label ", y, " of an evaluated row is outside [0, ", C, ")");
        int pred = 0;
        double zmax = z[0];
        for (int c = 1; c < C; ++c)
            if (z[c] > z[pred]) pred = c;
        zmax = z[pred];
        // Rank of the true class: classes with a larger logit, or an equal one at a lower index.
        int ahead = 0;
        double sum = 0;
        for (int c = 0; c < C; ++c) {
            if (z[c] > z[y] || (z[c] == z[y] && c < y)) ++ahead;
            sum += std::exp(double(z[c]) - zmax);
        }
        loss_sum += -(double(z[y]) - zmax - std::log(sum));
        correct += pred == y;
        topk_correct += ahead < top_k;
        ++confusion[size_t(y) * size_t(C) + size_t(pred)];
        ++n;
    }
}

void EvalCounts::allreduce(const par::Comm& comm) {
    std::vector<long long> v = {n, correct, topk_correct};
    v.insert(v.end(), confusion.begin(), confusion.end());
    comm.allreduce(v, par::ReduceOp::sum);
    n = v[0], correct = v[1], topk_correct = v[2];
    std::copy(v.begin() + 3, v.end(), confusion.begin());
    loss_sum = comm.sum(loss_sum);
}

std::int64_t EvalCounts::class_count(int c) const {
    std::int64_t s = 0;
    for (int p = 0; p < num_classes; ++p)
        s += confusion[size_t(c) * size_t(num_classes) + size_t(p)];
    return s;
}

double EvalCounts::class_accuracy(int c) const {
    const auto total = class_count(c);
    return total ? double(confusion[size_t(c) * size_t(num_classes) + size_t(c)]) / double(total) : 0.0;
}

std::string EvalCounts::confusion_table() const {
    std::int64_t biggest = 1;
    for (auto v : confusion)
        biggest = std::max(biggest, v);
    const int w = std::max(4, int(std::to_string(biggest).size()) + 1);
    std::ostringstream os;
    os << std::left << std::setw(10) << "true\\pred" << std::right;
    for (int c = 0; c < num_classes; ++c)
        os << std::setw(w) << c;
    os << "\n";
    for (int t = 0; t < num_classes; ++t) {
        os << std::left << std::setw(10) << t << std::right;
        for (int p = 0; p < num_classes; ++p)
            os << std::setw(w) << confusion[size_t(t) * size_t(num_classes) + size_t(p)];
        os << "\n";
    }
    return os.str();
}

std::int64_t count_correct(const Matrix& logits, const IntVector& labels) {
    const std::int64_t B = logits.extent(0), C = logits.extent(1);
    MIMIC_REQUIRE(std::int64_t(labels.extent(0)) >= B, "count_correct: ", labels.extent(0), " labels for ", B,
                  " rows");
    auto z = logits;
    auto y = labels;
    std::int64_t correct = 0;
    Kokkos::parallel_reduce(
        "mimic::train::count_correct", RangePolicy(0, B),
        KOKKOS_LAMBDA(const std::int64_t i, std::int64_t& acc) {
            std::int64_t best = 0;
            for (std::int64_t c = 1; c < C; ++c)
                if (z(i, c) > z(i, best)) best = c;
            acc += best == std::int64_t(y(i)) ? 1 : 0;
        },
        correct);
    return correct;
}

Predictor model_predictor(Model& model) {
    return [&model](const Matrix& x) { return model.forward(x, false, 0); };
}

void for_each_batch(const io::DatasetReader& data, std::int64_t batch, const par::Comm& comm,
                    const std::function<void(const Matrix& x, const int* labels, std::int64_t count)>& fn) {
    if (batch < 1) fail("evaluation batch must be >= 1, got ", batch);
    const auto& meta = data.meta();
    const auto mine = par::split_range(meta.n, comm.size(), comm.rank());
    const std::int64_t most = (meta.n + comm.size() - 1) / comm.size();
    const std::int64_t chunks = (most + batch - 1) / batch; // the same on every rank: reads stay collective
    Matrix x(Kokkos::view_alloc(Kokkos::WithoutInitializing, "mimic::train::eval_x"),
             size_t(std::min(batch, std::max<std::int64_t>(1, mine.size()))), size_t(meta.d));
    auto hx = Kokkos::create_mirror_view(x);
    std::vector<int> y(size_t(x.extent(0)));
    for (std::int64_t k = 0; k < chunks; ++k) {
        const std::int64_t begin = std::min(mine.end, mine.begin + k * batch);
        const std::int64_t count = std::min(mine.end, begin + batch) - begin;
        data.read(begin, count, hx.data(), meta.has_labels ? y.data() : nullptr);
        if (count == 0) continue;
        Kokkos::deep_copy(x, hx);
        fn(Matrix(Kokkos::subview(x, std::pair<std::int64_t, std::int64_t>(0, count), Kokkos::ALL())),
           y.data(), count);
    }
}

EvalCounts evaluate(const Predictor& predict, int num_classes, const io::DatasetReader& data, int top_k,
                    std::int64_t batch, const par::Comm& comm) {
    if (!data.meta().has_labels) fail(data.path(), ": cannot evaluate accuracy: the file has no labels (/y)");
    EvalCounts counts(num_classes, top_k);
    HostReadback readback("mimic::train::evaluate::logits");
    for_each_batch(data, batch, comm, [&](const Matrix& x, const int* labels, std::int64_t count) {
        Matrix logits = predict(x);
        if (std::int64_t(logits.extent(1)) != num_classes)
            fail("the model gives ", logits.extent(1), " outputs but ", data.path(), " has ", num_classes,
                 " classes");
        counts.add(readback.read(logits).data(), labels, count);
    });
    counts.allreduce(comm);
    return counts;
}

} // namespace mimic::train
