// Ensemble evaluation: every member on every row of a labelled set, combined as the mean of logits
// (Ba & Caruana's teacher) and as the mean of probabilities, with per-member accuracies and their spread.
#include "mimic/core/host_readback.hpp"
#include "mimic/core/log.hpp"
#include "mimic/io/dataset.hpp"
#include "mimic/io/manifest.hpp"
#include "mimic/io/model_file.hpp"
#include "mimic/nn/fold.hpp"
#include "mimic/stages/ensemble.hpp"
#include "mimic/train/evaluate.hpp"

#include <cmath>
#include <cstring>
#include <sstream>

namespace mimic::stages {

EnsembleScores evaluate_ensemble(const std::string& manifest_path, const std::string& data_path, int top_k,
                                 std::int64_t batch, const par::Comm& comm) {
    io::Manifest m;
    std::unique_ptr<io::DatasetReader> data;
    std::vector<nn::Model> models;
    par::agree(comm, [&] {
        m = io::read_manifest(manifest_path);
        if (comm.rank() == 0) io::validate_manifest(m, manifest_path, false);
    });
    par::agree(comm, [&] { // the collective open only once every rank has a valid manifest
        data = std::make_unique<io::DatasetReader>(data_path, comm);
        const auto& dm = data->meta();
        if (!dm.has_labels) fail(data_path, ": has no labels (/y), so accuracy cannot be measured");
        if (dm.n == 0) fail(data_path, ": holds no rows, so there is nothing to evaluate");
        const auto in = m.input();
        if (dm.d != in.size())
            fail(data_path, ": samples have ", dm.d, " features but the ensemble's members take ", in.size());
        for (size_t i = 0; i < m.members.size(); ++i)
            models.push_back(nn::fold_for_inference(io::load_model(m.member_path(i))));
    });
    const int C = m.num_classes(), M = int(models.size());
    const std::int64_t D = data->meta().d, N = data->meta().n;
    std::vector<train::EvalCounts> member(size_t(M), train::EvalCounts(C, top_k));
    train::EvalCounts by_logits(C, top_k), by_prob(C, top_k);
    const auto mine = par::split_range(N, comm.size(), comm.rank());
    const std::int64_t most = par::split_range(N, comm.size(), 0).size();
    std::vector<float> X(size_t(batch * D)), mean_z(size_t(batch * C)), mean_p(size_t(batch * C));
    std::vector<double> acc_z(size_t(batch * C)), acc_p(size_t(batch * C));
    std::vector<int> y(static_cast<size_t>(batch));
    Matrix x(Kokkos::view_alloc(Kokkos::WithoutInitializing, "mimic::ensemble::x"), size_t(batch), size_t(D));
    auto xh = Kokkos::create_mirror_view(x);
    HostReadback readback("mimic::ensemble::eval::member_logits");
    for (std::int64_t off = 0; off < most; off += batch) {
        const std::int64_t n = std::max<std::int64_t>(0, std::min(batch, mine.size() - off));
        data->read(mine.begin + std::min(off, mine.size()), n, X.data(), y.data());
        if (n == 0) continue;
        std::memcpy(xh.data(), X.data(), size_t(n * D) * sizeof(float));
        Kokkos::deep_copy(x, xh);
        Matrix xs = Kokkos::subview(x, std::make_pair(std::int64_t(0), n), Kokkos::ALL());
        std::fill(acc_z.begin(), acc_z.end(), 0.0);
        std::fill(acc_p.begin(), acc_p.end(), 0.0);
        for (int k = 0; k < M; ++k) {
            const Matrix logits = models[size_t(k)].forward(xs, false);
            const auto z = readback.read(logits);
            member[size_t(k)].add(z.data(), y.data(), n);
            for (std::int64_t i = 0; i < n; ++i) {
                const float* zi = z.data() + i * C;
                double mx = zi[0], s = 0;
                for (int c = 1; c < C; ++c)
                    mx = std::max(mx, double(zi[c]));
                for (int c = 0; c < C; ++c)
                    s += std::exp(double(zi[c]) - mx);
                for (int c = 0; c < C; ++c) {
                    acc_z[size_t(i * C + c)] += zi[c];
                    acc_p[size_t(i * C + c)] += std::exp(double(zi[c]) - mx) / s;
                }
            }
        }
        for (std::int64_t e = 0; e < n * C; ++e) {
            mean_z[size_t(e)] = float(acc_z[size_t(e)] / M);
            mean_p[size_t(e)] = float(std::log(std::max(acc_p[size_t(e)] / M, 1e-30)));
        }
        by_logits.add(mean_z.data(), y.data(), n);
        by_prob.add(mean_p.data(), y.data(), n);
    }
    EnsembleScores s;
    s.top_k = top_k;
    for (auto& c : member) {
        c.allreduce(comm);
        s.member_accuracy.push_back(c.accuracy());
    }
    by_logits.allreduce(comm);
    by_prob.allreduce(comm);
    s.logits_accuracy = by_logits.accuracy();
    s.logits_topk = by_logits.topk_accuracy();
    s.prob_accuracy = by_prob.accuracy();
    s.rows = by_logits.n;
    s.confusion = by_logits.confusion_table();
    return s;
}

std::string ensemble_report(const EnsembleScores& s) {
    std::ostringstream os;
    os.setf(std::ios::fixed);
    os.precision(2);
    double sum = 0, mn = 1, mx = 0;
    for (double a : s.member_accuracy)
        sum += a, mn = std::min(mn, a), mx = std::max(mx, a);
    const double mean = s.member_accuracy.empty() ? 0 : sum / double(s.member_accuracy.size());
    double var = 0;
    for (double a : s.member_accuracy)
        var += (a - mean) * (a - mean);
    const double sd =
        s.member_accuracy.size() > 1 ? std::sqrt(var / double(s.member_accuracy.size() - 1)) : 0;
    os << "ensemble of " << log::count((long long)s.member_accuracy.size(), "member") << " on " << s.rows
       << " rows:\n";
    os << "  accuracy, mean of logits:        " << 100 * s.logits_accuracy << "%  (top-" << s.top_k << " "
       << 100 * s.logits_topk << "%)\n";
    os << "  accuracy, mean of probabilities: " << 100 * s.prob_accuracy << "%\n";
    os << "  members: mean " << 100 * mean << "%, min " << 100 * mn << "%, max " << 100 * mx << "%, std "
       << 100 * sd << " points; ensemble gain over the mean member " << 100 * (s.logits_accuracy - mean)
       << " points\n";
    os << "  per member:";
    for (size_t i = 0; i < s.member_accuracy.size(); ++i)
        os << (i % 8 == 0 ? "\n   " : "") << " " << 100 * s.member_accuracy[i] << "%";
    return os.str();
}

} // namespace mimic::stages
