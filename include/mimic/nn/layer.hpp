// The common base of every network layer (forward/backward on [B, features] minibatches, parameters as
// slices of the Model's flat buffers) and the shared GEMM/initialisation helpers the layers build on.
#pragma once

#include "mimic/core/error.hpp"
#include "mimic/core/kokkos.hpp"
#include "mimic/nn/shape.hpp"
#include "mimic/nn/stat_reducer.hpp"

#include <KokkosBlas3_gemm.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace mimic::nn {

/// One parameter tensor a layer declares: its name suffix ("W", "b") and shape. The Model places it in
/// the flat buffer as "layer<i>.<kind>.<suffix>".
struct ParamDecl {
    std::string suffix;
    std::vector<std::int64_t> shape;
    std::int64_t size() const {
        std::int64_t n = 1;
        for (auto d : shape)
            n *= d;
        return n;
    }
};

/// What forward() needs beyond the input: training mode (dropout on) and the dropout seed of this step.
struct ForwardContext {
    bool train = false;
    std::uint64_t dropout_seed = 0;
    std::int64_t row_offset = 0; ///< index of this batch's first row in the global batch (data parallelism)
    /// Sums per-channel statistics over the data replicas (batch normalisation); null: this rank alone.
    const StatReducer* reduce_stats = nullptr;
    /// No backward follows (the model is planned for inference): layers may skip what only backward needs.
    bool inference = false;
};

/// A layer of a sequential network. Activations are [B, C*H*W] LayoutRight (NCHW per sample).
/// Contract: forward() overwrites y; backward() overwrites dx (skipped when dx.extent(0) == 0, i.e. for
/// the first layer) and ACCUMULATES parameter gradients into its gradient slices (Model::zero_grads()
/// resets them). Layers keep their own workspaces sized for the largest batch seen, so the hot path does
/// not allocate once the batch size is stable.
class Layer {
public:
    Layer(int index, std::string token, Shape in, Shape out)
        : index_(index), token_(std::move(token)), in_(in), out_(out) {}
    virtual ~Layer() = default;
    Layer(const Layer&) = delete;
    Layer& operator=(const Layer&) = delete;

    /// Short kind used in parameter names and the summary: "dense", "bottleneck", "conv", "pool", ...
    virtual const char* kind() const = 0;
    int index() const { return index_; }
    const std::string& token() const { return token_; }
    Shape in_shape() const { return in_; }
    Shape out_shape() const { return out_; }

    /// Parameter tensors, in the order they are laid out in the flat buffer.
    virtual std::vector<ParamDecl> param_decls() const { return {}; }
    /// Points the layer at its parameter and gradient slices (one per ParamDecl, same order).
    virtual void bind(const std::vector<UnmanagedVector>& /*params*/,
                      const std::vector<UnmanagedVector>& /*grads*/) {}
    /// Non-trained state tensors (batch normalisation's running statistics), laid out after the
    /// parameters' order in Model::state().
    virtual std::vector<ParamDecl> state_decls() const { return {}; }
    /// Points the layer at its state slices (one per state_decls() entry) and sets their initial values.
    virtual void bind_state(const std::vector<UnmanagedVector>& /*state*/) {}
    /// True for layers whose training forward and backward reduce statistics over the data replicas.
    virtual bool uses_batch_stats() const { return false; }
    /// On a replica with no rows in a micro-batch: the reductions (and state updates) of a training forward
    /// (forward = true) or backward over zero rows, so the collectives match the other replicas'.
    virtual void idle_pass(bool /*forward*/, const StatReducer* /*reduce*/) {}
    /// Initialises its parameters: He normal (he = true, for a layer followed by ReLU) or Glorot
    /// uniform; biases zero. Deterministic in seed.
    virtual void init(std::uint64_t /*seed*/, bool /*he*/) {}
    /// True for layers whose output is their input buffer unchanged (flatten): the Model aliases them.
    virtual bool is_alias() const { return false; }

    virtual void forward(const Matrix& x, const Matrix& y, const ForwardContext& ctx) = 0;
    virtual void backward(const Matrix& x, const Matrix& y, const Matrix& dy, const Matrix& dx) = 0;

    /// Forward GEMM flops per sample (2 x multiply-adds); 0 for layers without a GEMM.
    virtual double flops_per_sample() const { return 0; }

protected:
    int index_;
    std::string token_;
    Shape in_, out_;
};

/// C = alpha * op(A) * op(B) + beta * C on contiguous LayoutRight float matrices, through
/// KokkosBlas::gemm (OpenBLAS/cuBLAS sgemm). Checks shapes with a clear message.
template <class AV, class BV, class CV>
void gemm(const char* ta, const char* tb, float alpha, const AV& A, const BV& B, float beta, const CV& C) {
    static_assert(AV::rank == 2 && BV::rank == 2 && CV::rank == 2, "mimic::nn::gemm takes rank-2 views");
    static_assert(std::is_same<typename AV::array_layout, Kokkos::LayoutRight>::value &&
                      std::is_same<typename BV::array_layout, Kokkos::LayoutRight>::value &&
                      std::is_same<typename CV::array_layout, Kokkos::LayoutRight>::value,
                  "mimic::nn::gemm: keep every operand LayoutRight so the BLAS path is taken");
    const bool at = ta[0] == 'T', bt = tb[0] == 'T';
    const auto m = at ? A.extent(1) : A.extent(0), k = at ? A.extent(0) : A.extent(1);
    const auto kb = bt ? B.extent(1) : B.extent(0), n = bt ? B.extent(0) : B.extent(1);
    MIMIC_REQUIRE(k == kb && C.extent(0) == m && C.extent(1) == n, "mimic::nn::gemm: shape mismatch (", ta,
                  tb, ") A ", A.extent(0), "x", A.extent(1), " B ", B.extent(0), "x", B.extent(1), " C ",
                  C.extent(0), "x", C.extent(1));
    if (m == 0 || n == 0) return;
    if (k == 0) {
        // KokkosBlas returns early on an empty inner dimension; keep BLAS semantics (C = beta * C).
        MIMIC_REQUIRE(beta == 0.0f || beta == 1.0f, "mimic::nn::gemm: empty inner dimension with beta ",
                      beta);
        if (beta == 0.0f) Kokkos::deep_copy(C, 0.0f);
        return;
    }
    KokkosBlas::gemm(ta, tb, alpha, A, B, beta, C);
}

/// Which elements of a [rows, cols] weight matrix a buffer holds: all of it (axis -1), the rows
/// [begin, begin + len) (axis 0) or the columns [begin, begin + len) (axis 1, row-major inside the slice).
/// Model-parallel shards initialise their slice exactly as the whole matrix would be.
struct WeightSlice {
    int axis = -1;
    std::int64_t begin = 0, len = 0, cols = 0;
    /// Index in the whole matrix of the slice's element e.
    KOKKOS_INLINE_FUNCTION std::int64_t whole_index(std::int64_t e) const {
        return axis < 0 ? e : axis == 0 ? begin * cols + e : (e / len) * cols + begin + e % len;
    }
};

/// Fills w with He normal (std sqrt(2/fan_in)) or Glorot uniform (limit sqrt(6/(fan_in+fan_out)))
/// values; element g of the whole matrix depends only on (seed, g).
void init_weights(const UnmanagedVector& w, std::int64_t fan_in, std::int64_t fan_out, bool he,
                  std::uint64_t seed, WeightSlice slice = {});

/// y[i, j] = b[j] for every row (a bias broadcast before a beta = 1 GEMM).
void broadcast_rows(const Matrix& y, const UnmanagedVector& b);
/// db[j] += sum_i dy[i, j] in a fixed summation order, independent of thread timing: the blocked kernel
/// on a host execution space, the team kernel on a device.
void accumulate_column_sums(const Matrix& dy, const UnmanagedVector& db);
/// Host kernel: each thread streams every row through 64 column accumulators (sequential order over rows).
void accumulate_column_sums_blocked(const Matrix& dy, const UnmanagedVector& db);
/// Device kernel: one team per column, its threads reduce the rows (a tree order fixed by the team size).
void accumulate_column_sums_teams(const Matrix& dy, const UnmanagedVector& db);

/// A [rows, cols] matrix view of the first rows*cols elements of a workspace, reallocated (grown only)
/// when too small. Used for per-layer scratch (im2col, permuted gradients).
Matrix workspace(Vector& buffer, const char* label, std::int64_t rows, std::int64_t cols);
/// The first `rows` rows of m as a Matrix (contiguous).
inline Matrix leading_rows(const Matrix& m, std::int64_t rows) {
    return Kokkos::subview(m, std::make_pair(std::int64_t(0), rows), Kokkos::ALL());
}

} // namespace mimic::nn
