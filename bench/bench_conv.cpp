// Convolution throughput on one core (bench/bench_conv.sh runs it beside its PyTorch twin): per shape, the
// conv layer's forward pass (labelling), forward + backward with the input gradient (training) and the
// backward pass alone (dW, db and dx), and a whole CNN's labelling (forward) and training (forward, CE,
// backward, Nesterov step) rates.
#include "bench_util.hpp"
#include "mimic/core/kokkos.hpp"
#include "mimic/core/rng.hpp"
#include "mimic/core/runtime.hpp"
#include "mimic/nn/layers/conv2d.hpp"
#include "mimic/nn/loss.hpp"
#include "mimic/nn/model.hpp"
#include "mimic/nn/optim/optimizer.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

using namespace mimic;
using mimic::bench::random_matrix;
using mimic::bench::thread_cpu_seconds;

namespace {

/// Seconds per call of f: calls repeated for at least min_s of CPU time, best of reps such runs.
template <class F>
double best_time(int reps, double min_s, F&& f) {
    f(); // warm-up: workspaces allocated, caches warm
    double best = 1e300;
    for (int r = 0; r < reps; ++r) {
        Kokkos::fence();
        const double t0 = thread_cpu_seconds();
        int calls = 0;
        double t = 0;
        do {
            f();
            Kokkos::fence();
            ++calls;
            t = thread_cpu_seconds() - t0;
        } while (t < min_s);
        best = std::min(best, t / calls);
    }
    return best;
}

/// A shape "CxHkKpPfF[sS][gG]" (C input channels, H x H image, K x K filters, zero padding P, F filters,
/// stride S (1), G groups (1; G = C = F: depthwise)).
struct ConvShape {
    std::string name;
    nn::ConvGeometry g;
};

ConvShape parse_shape(const std::string& s) {
    ConvShape r{s, {}};
    int c = 0, h = 0, k = 0, p = 0, f = 0, st = 1, gr = 1, used = 0;
    const char* str = s.c_str();
    bool ok = std::sscanf(str, "%dx%dk%dp%df%d%n", &c, &h, &k, &p, &f, &used) == 5;
    // An optional suffix "<tag><int>": its value, str advanced past it.
    const auto suffix = [&](char tag, int& v) {
        str += used;
        used = 0;
        if (ok && *str == tag) ok = std::sscanf(str + 1, "%d%n", &v, &used) == 1, ++used;
    };
    suffix('s', st);
    suffix('g', gr);
    str += used;
    used = 0;
    if (!ok || str[used] != 0 || c < 1 || h < 1 || k < 1 || p < 0 || f < 1 || st < 1 || gr < 1 ||
        c % gr != 0 || f % gr != 0 || h + 2 * p < k) {
        std::fprintf(stderr, "bench_conv: --shapes: '%s' is not CxHkKpPfF[sS][gG] (e.g. 16x28k3p1f32s2)\n",
                     s.c_str());
        std::exit(2);
    }
    r.g = nn::ConvGeometry{c, h, h, f, k, st, p, gr};
    return r;
}

void bench_shape(const ConvShape& s, const nn::ConvTuning& t, int batch, int reps, double min_s) {
    const nn::ConvGeometry& g = s.g;
    const std::int64_t in = std::int64_t(g.c) * g.h * g.w, out = std::int64_t(g.f) * g.pixels();
    const Matrix x = random_matrix("mimic::bench::x", batch, in, 1);
    const Matrix dy = random_matrix("mimic::bench::dy", batch, out, 2);
    const std::int64_t rows = g.weight_rows();
    Vector w("mimic::bench::w", rows * g.f), b("mimic::bench::b", g.f);
    Vector dw("mimic::bench::dw", rows * g.f), db("mimic::bench::db", g.f);
    Kokkos::deep_copy(w, 0.01f);
    Kokkos::deep_copy(b, 0.1f);
    const UnmanagedMatrix W(w.data(), rows, g.f), dW(dw.data(), rows, g.f);
    const UnmanagedVector bv(b.data(), g.f), dbv(db.data(), g.f);
    Matrix y("mimic::bench::y", batch, out), dx("mimic::bench::dx", batch, in);
    nn::ConvWorkspace ws;
    const double fwd = best_time(reps, min_s, [&] { nn::conv2d_forward(x, W, bv, g, t, ws, y); });
    const double train = best_time(reps, min_s, [&] {
        nn::conv2d_forward(x, W, bv, g, t, ws, y);
        nn::conv2d_backward(x, dy, W, g, t, ws, dW, dbv, dx);
    });
    const double bwd = best_time(reps, min_s, [&] { nn::conv2d_backward(x, dy, W, g, t, ws, dW, dbv, dx); });
    std::printf("mimic conv %s batch %d fwd %.1f fwdbwd %.1f bwd %.1f samples/s\n", s.name.c_str(), batch,
                batch / fwd, batch / train, batch / bwd);
    std::fflush(stdout);
}

void bench_model(const std::string& spec, nn::Shape in, const nn::ConvTuning& t, int infer_batch,
                 int train_batch, int reps, double min_s) {
    nn::Model m(spec, in);
    m.set_conv_tuning(t);
    m.init(1);
    const Matrix xi = random_matrix("mimic::bench::x", infer_batch, m.input_size(), 3);
    const double infer = best_time(reps, min_s, [&] { m.forward(xi, false); });
    const Matrix xt = random_matrix("mimic::bench::x", train_batch, m.input_size(), 4);
    IntVector labels("mimic::bench::labels", train_batch);
    const int C = int(m.output_size());
    Kokkos::parallel_for(
        "mimic::bench::labels", RangePolicy(0, train_batch),
        KOKKOS_LAMBDA(const std::int64_t i) { labels(i) = int(i % C); });
    const Matrix dz("mimic::bench::dz", train_batch, C);
    nn::optim::OptimizerConfig cfg;
    cfg.kind = "nesterov";
    cfg.momentum = 0.9;
    const auto opt = nn::optim::make_optimizer(cfg, m.num_params());
    std::uint64_t step = 0;
    const double train = best_time(reps, min_s, [&] {
        m.zero_grads();
        const Matrix z = m.forward(xt, true, ++step);
        nn::cross_entropy(z, labels, dz);
        m.backward(dz);
        opt->step(m.params(), m.grads(), 0.01);
    });
    std::printf("mimic model label batch %d %.1f samples/s\n", infer_batch, infer_batch / infer);
    std::printf("mimic model train batch %d %.1f samples/s\n", train_batch, train_batch / train);
    std::fflush(stdout);
}

} // namespace

int main(int argc, char** argv) {
    Runtime runtime(argc, argv);
    int batch = 64, reps = 3, infer_batch = 256, train_batch = 128;
    double min_s = 0.2;
    std::string shapes, model;
    nn::ConvTuning tuning;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        if (a == "--shapes")
            shapes = argv[i + 1];
        else if (a == "--batch")
            batch = std::atoi(argv[i + 1]);
        else if (a == "--reps")
            reps = std::atoi(argv[i + 1]);
        else if (a == "--min-time")
            min_s = std::atof(argv[i + 1]);
        else if (a == "--model")
            model = argv[i + 1];
        else if (a == "--infer-batch")
            infer_batch = std::atoi(argv[i + 1]);
        else if (a == "--train-batch")
            train_batch = std::atoi(argv[i + 1]);
        else if (a == "--direct")
            tuning.direct = std::atoi(argv[i + 1]) != 0;
        else if (a == "--tiles")
            tuning.direct_tiles = std::atoi(argv[i + 1]);
        else {
            std::fprintf(
                stderr,
                "usage: bench_conv [--shapes CxHkKpPfF[sS][gG],...] [--batch 64] [--reps 3] [--min-time 0.2] "
                "[--model SPEC] [--infer-batch 256] [--train-batch 128] [--direct 1|0] [--tiles 0|1|2]\n");
            return 2;
        }
    }
    std::stringstream list(shapes);
    for (std::string s; std::getline(list, s, ',');)
        if (!s.empty()) bench_shape(parse_shape(s), tuning, batch, reps, min_s);
    if (!model.empty())
        bench_model(model, nn::Shape{1, 28, 28}, tuning, infer_batch, train_batch, reps, min_s);
    return 0;
}
