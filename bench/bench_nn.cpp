// Throughput of the nn core on one rank: sgemm through KokkosBlas::gemm (square, or a list of shapes), the
// optimizer update per parameter, training steps (forward, loss, backward; no optimizer) of the MLP
// 784-1200-1200-10, a small CNN, single layers or a given spec, in samples/s and GFLOP/s; and inference of a
// residual net and MobileNetV2 blocks, unfused against fused (Model::plan_inference), side by side.
#include "bench_util.hpp"
#include "mimic/core/kokkos.hpp"
#include "mimic/core/rng.hpp"
#include "mimic/core/runtime.hpp"
#include "mimic/core/timer.hpp"
#include "mimic/nn/layer.hpp"
#include "mimic/nn/loss.hpp"
#include "mimic/nn/model.hpp"
#include "mimic/nn/optim/optimizer.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

using namespace mimic;
using mimic::bench::random_matrix;
using mimic::bench::thread_cpu_seconds;

namespace {

bool g_cpu_clock = false;
bool g_summary = true;

/// Best of `reps` timings of `iters` calls of f (seconds per call), on the wall or the thread CPU clock.
template <class F>
double best_time(int reps, int iters, F&& f) {
    double best = 1e300;
    auto now = [] { return g_cpu_clock ? thread_cpu_seconds() : wall_seconds(); };
    for (int r = 0; r < reps; ++r) {
        Kokkos::fence();
        const double t0 = now();
        for (int i = 0; i < iters; ++i)
            f();
        Kokkos::fence();
        best = std::min(best, (now() - t0) / iters);
    }
    return best;
}

double bench_gemm(std::int64_t n, int reps) {
    const Matrix a = random_matrix("mimic::bench::a", n, n, 1), b = random_matrix("mimic::bench::b", n, n, 2);
    Matrix c("mimic::bench::c", n, n);
    nn::gemm("N", "N", 1.0f, a, b, 0.0f, c); // warm-up
    const double t = best_time(reps, 3, [&] { nn::gemm("N", "N", 1.0f, a, b, 0.0f, c); });
    return 2.0 * double(n) * n * n / t / 1e9;
}

/// Seconds per call of C[m,n] = op(A)[m,k] op(B)[k,n] for ta, tb in {N, T}.
double bench_gemm_shape(const char* ta, const char* tb, std::int64_t m, std::int64_t n, std::int64_t k,
                        int reps) {
    const bool at = ta[0] == 'T', bt = tb[0] == 'T';
    const Matrix a = random_matrix("mimic::bench::a", at ? k : m, at ? m : k, 1);
    const Matrix b = random_matrix("mimic::bench::b", bt ? n : k, bt ? k : n, 2);
    Matrix c("mimic::bench::c", m, n);
    nn::gemm(ta, tb, 1.0f, a, b, 0.0f, c); // warm-up
    const double flops = 2.0 * double(m) * double(n) * double(k);
    const int iters = int(std::max(1.0, std::min(50.0, 2e8 / std::max(flops, 1.0))));
    return best_time(reps, iters, [&] { nn::gemm(ta, tb, 1.0f, a, b, 0.0f, c); });
}

/// "NN:128x4096x784,TN:784x4096x128": one GEMM line per shape (op(A) op(B), m x n x k).
int run_gemm_shapes(const std::string& list, int reps) {
    std::string rest = list + ",";
    for (std::size_t pos; (pos = rest.find(',')) != std::string::npos; rest.erase(0, pos + 1)) {
        const std::string item = rest.substr(0, pos);
        if (item.empty()) continue;
        long long m = 0, n = 0, k = 0;
        char ta = 0, tb = 0;
        if (std::sscanf(item.c_str(), "%c%c:%lldx%lldx%lld", &ta, &tb, &m, &n, &k) != 5 ||
            (ta != 'N' && ta != 'T') || (tb != 'N' && tb != 'T') || m < 1 || n < 1 || k < 1) {
            std::fprintf(stderr, "bench_nn: --gemm-shapes: '%s' is not OPS:MxNxK with OPS in NN|NT|TN|TT\n",
                         item.c_str());
            return 2;
        }
        const char sa[2] = {ta, 0}, sb[2] = {tb, 0};
        const double t = bench_gemm_shape(sa, sb, m, n, k, reps);
        std::printf("GEMM %c%c %lld %lld %lld %.9g %.2f\n", ta, tb, m, n, k, t, 2.0 * m * n * k / t / 1e9);
    }
    return 0;
}

/// Seconds per parameter of one optimizer update (the fused kernel over flat buffers of n parameters).
double bench_optimizer(const std::string& kind, std::int64_t n, int reps) {
    nn::optim::OptimizerConfig cfg;
    cfg.kind = kind;
    auto opt = nn::optim::make_optimizer(cfg, n);
    const Matrix p = random_matrix("mimic::bench::p", 1, n, 5), g = random_matrix("mimic::bench::g", 1, n, 6);
    const Vector pv(p.data(), size_t(n)), gv(g.data(), size_t(n));
    opt->step(pv, gv, 1e-3); // warm-up
    return best_time(reps, 5, [&] { opt->step(pv, gv, 1e-3); }) / double(n);
}

struct StepResult {
    double step_s, fwd_s, samples_per_s, gflops;
};

/// Training-step flops: forward F, backward 2F, less the input-gradient product of a first layer that
/// sees the model input directly (the Model skips it).
double train_flops_per_sample(const nn::Model& m) {
    double skipped = 0;
    for (std::size_t i = 0; i < m.num_layers(); ++i) {
        skipped = m.layer(i).flops_per_sample();
        if (!m.layer(i).is_alias()) break;
    }
    return 3.0 * m.flops_per_sample() - skipped;
}

/// with_loss: a CE loss gives dL/dlogits (whole models); otherwise a fixed random dL/dlogits is fed back
/// (single layers, whose "logits" are wide activations).
StepResult bench_model(const std::string& spec, nn::Shape in, int batch, int iters, int reps,
                       bool with_loss) {
    nn::Model m(spec, in);
    m.init(1);
    const Matrix x = random_matrix("mimic::bench::x", batch, m.input_size(), 3);
    IntVector labels("mimic::bench::labels", batch);
    const int C = int(m.output_size());
    Kokkos::parallel_for(
        "mimic::bench::labels", RangePolicy(0, batch),
        KOKKOS_LAMBDA(const std::int64_t i) { labels(i) = int(i % C); });
    const Matrix dz = random_matrix("mimic::bench::dz", batch, C, 4);
    std::uint64_t step = 0;
    auto train_step = [&] {
        m.zero_grads();
        const Matrix z = m.forward(x, true, ++step);
        if (with_loss) nn::cross_entropy(z, labels, dz);
        m.backward(dz);
    };
    for (int i = 0; i < 3; ++i)
        train_step(); // warm-up: buffers allocated, caches warm
    StepResult r{};
    r.step_s = best_time(reps, iters, train_step);
    r.fwd_s = best_time(reps, iters, [&] { m.forward(x, false); });
    r.samples_per_s = batch / r.step_s;
    r.gflops = train_flops_per_sample(m) * batch / r.step_s / 1e9;
    if (g_summary) std::printf("%s\n", m.summary().c_str());
    return r;
}

/// Inference forwards (no backward) of `spec` as trained against planned (Model::plan_inference: fused
/// conv output passes, live-set buffers), the two models holding the same parameters and timed in
/// alternation (best of reps each), so that a change in the load hits both.
void bench_inference(const char* name, const std::string& spec, nn::Shape in, int batch, int iters,
                     int reps) {
    nn::Model plain(spec, in), planned(spec, in);
    plain.init(1);
    planned.init(1);
    planned.plan_inference();
    const Matrix x = random_matrix("mimic::bench::x", batch, plain.input_size(), 3);
    for (int i = 0; i < 2; ++i)
        plain.forward(x, false), planned.forward(x, false); // warm-up: buffers allocated, caches warm
    double t_plain = 1e300, t_planned = 1e300;
    for (int r = 0; r < reps; ++r) {
        t_plain = std::min(t_plain, best_time(1, iters, [&] { plain.forward(x, false); }));
        t_planned = std::min(t_planned, best_time(1, iters, [&] { planned.forward(x, false); }));
    }
    std::printf("RESULT %s: inference unfused %.2f ms, fused %.2f ms per batch (%.0f vs %.0f samples/s): "
                "fused %.2fx; activation bytes %lld unfused, %lld fused\n\n",
                name, t_plain * 1e3, t_planned * 1e3, batch / t_plain, batch / t_planned, t_plain / t_planned,
                (long long)plain.activation_bytes(), (long long)planned.activation_bytes());
}

} // namespace

int main(int argc, char** argv) {
    Runtime runtime(argc, argv);
    int batch = 128, iters = 10, reps = 5;
    std::int64_t gemm_n = 1024;
    std::string only, gemm_shapes, optim, spec, input = "1x1x784";
    std::int64_t optim_params = 4000000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--batch"))
            batch = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--iters"))
            iters = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--reps"))
            reps = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--gemm"))
            gemm_n = std::atoll(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--clock"))
            g_cpu_clock = !std::strcmp(argv[i + 1], "cpu");
        else if (!std::strcmp(argv[i], "--summary"))
            g_summary = std::atoi(argv[i + 1]) != 0;
        else if (!std::strcmp(argv[i], "--only"))
            only = argv[i + 1];
        else if (!std::strcmp(argv[i], "--gemm-shapes"))
            gemm_shapes = argv[i + 1];
        else if (!std::strcmp(argv[i], "--optim"))
            optim = argv[i + 1];
        else if (!std::strcmp(argv[i], "--optim-params"))
            optim_params = std::atoll(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--spec"))
            spec = argv[i + 1], only = "custom";
        else if (!std::strcmp(argv[i], "--input"))
            input = argv[i + 1];
        else {
            std::fprintf(
                stderr,
                "usage: bench_nn [--batch 128] [--iters 10] [--reps 5] [--gemm 1024] [--clock wall|cpu] "
                "[--summary 0|1] [--only NAME] [--gemm-shapes NN:MxNxK,...] [--optim KIND [--optim-params "
                "N]] "
                "[--spec SPEC --input CxHxW]\n");
            return 2;
        }
    }
    nn::Shape custom_in{1, 1, 784};
    if (std::sscanf(input.c_str(), "%dx%dx%d", &custom_in.c, &custom_in.h, &custom_in.w) != 3) {
        std::fprintf(stderr, "bench_nn: --input: '%s' is not CxHxW\n", input.c_str());
        return 2;
    }
    const char* threads = std::getenv("OPENBLAS_NUM_THREADS");
    std::printf("bench_nn: Kokkos %s, OPENBLAS_NUM_THREADS=%s, batch %d, best of %d x %d steps, %s clock\n",
                kokkos_backend_name(), threads ? threads : "(unset)", batch, reps, iters,
                g_cpu_clock ? "thread CPU" : "wall");
    if (!gemm_shapes.empty()) return run_gemm_shapes(gemm_shapes, reps);
    if (!optim.empty()) {
        std::printf("OPTIM %s %lld %.6g\n", optim.c_str(), (long long)optim_params,
                    bench_optimizer(optim, optim_params, reps));
        return 0;
    }
    const double peak = bench_gemm(gemm_n, reps);
    std::printf("sgemm %lld^3 (KokkosBlas::gemm): %.1f GFLOP/s\n\n", (long long)gemm_n, peak);

    struct Case {
        const char* name;
        const char* spec;
        nn::Shape in;
    };
    std::vector<Case> cases{
        {"mlp", "dense:1200,relu,dense:1200,relu,dense:10", {1, 1, 784}},
        {"cnn",
         "conv:32x3,relu,conv:32x3,relu,pool:2,conv:64x3,relu,pool:2,dense:256,relu,dropout:0.3,dense:10",
         {1, 28, 28}},
        // Single GEMM-bound layers with their input gradient (the leading relu makes the Model compute it).
        {"layer-dense-1200", "relu,dense:1200", {1, 1, 1200}},
        {"layer-conv-32x3-28x28", "relu,conv:32x3", {32, 28, 28}},
        {"layer-conv-64x3-14x14", "relu,conv:64x3", {32, 14, 14}},
    };
    // Inference, unfused against fused: the resnet.cfg teacher with its bn folded (identity and stride-2
    // projection shortcuts, the relu after each block), and MobileNetV2 inverted residuals (1x1 expansion
    // by 6, depthwise 3x3, relu6, linear 1x1 projection plus the shortcut).
    const std::vector<Case> inference{
        {"infer-resnet",
         "conv:16x3,relu,res(conv:16x3,relu,conv:16x3),relu,res(conv:16x3,relu,conv:16x3),relu,"
         "res(conv:16x3,relu,conv:16x3),relu,res(conv:32x3s2,relu,conv:32x3|conv:32x1s2),relu,"
         "res(conv:32x3,relu,conv:32x3),relu,res(conv:32x3,relu,conv:32x3),relu,"
         "res(conv:64x3s2,relu,conv:64x3|conv:64x1s2),relu,res(conv:64x3,relu,conv:64x3),relu,"
         "res(conv:64x3,relu,conv:64x3),relu,gap,dense:10",
         {1, 28, 28}},
        {"infer-mobilenetv2",
         "conv:16x3s2,relu6,res(conv:96x1,relu6,dwconv:3,relu6,conv:16x1),"
         "res(conv:96x1,relu6,dwconv:3,relu6,conv:16x1),conv:96x1,relu6,dwconv:3s2,relu6,conv:24x1,"
         "res(conv:144x1,relu6,dwconv:3,relu6,conv:24x1),gap,dense:10",
         {1, 28, 28}},
    };
    if (!spec.empty()) cases.push_back({"custom", spec.c_str(), custom_in});
    for (const auto& c : cases) {
        if (!only.empty() && only != c.name) continue;
        const bool layer = std::string(c.name).rfind("layer-", 0) == 0;
        const auto r = bench_model(c.spec, c.in, batch, iters, reps, !layer);
        std::printf(
            "RESULT %s: train step %.2f ms (forward only %.2f ms), %.0f samples/s, %.1f GFLOP/s = %.0f%% "
            "of sgemm\n\n",
            c.name, r.step_s * 1e3, r.fwd_s * 1e3, r.samples_per_s, r.gflops, 100.0 * r.gflops / peak);
    }
    for (const auto& c : inference)
        if (only.empty() || only == c.name) bench_inference(c.name, c.spec, c.in, batch, iters, reps);
    return 0;
}
