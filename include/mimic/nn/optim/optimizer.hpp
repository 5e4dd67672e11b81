// The optimizer interface: an in-place update of a flat parameter buffer from a flat gradient buffer,
// with state (named flat buffers + step count) that checkpoints save and restore exactly.
#pragma once

#include "mimic/core/kokkos.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace mimic::nn::optim {

/// A learning-rate multiplier for the parameters [begin, end) of the flat buffer (--layer-lr).
struct LrScale {
    std::int64_t begin = 0, end = 0;
    double scale = 1.0;
};

/// What a checkpoint stores of an optimizer: its kind, the steps taken and its flat state buffers.
struct OptimizerState {
    std::string kind;
    std::int64_t step = 0;
    std::vector<std::string> names;         ///< e.g. {"momentum"} or {"m", "v"}
    std::vector<std::vector<float>> values; ///< one flat buffer [num_params] per name
};

/// Hyperparameters of every optimizer Mimic has (each kind reads the ones it needs).
struct OptimizerConfig {
    std::string kind = "nesterov"; ///< sgd | nesterov | adam | adamw
    double momentum = 0.9;         ///< sgd / nesterov
    double weight_decay = 0.0;     ///< L2-coupled for sgd, nesterov and adam; decoupled for adamw
    double beta1 = 0.9, beta2 = 0.999, eps = 1e-8; ///< adam / adamw
};

class Optimizer {
public:
    explicit Optimizer(std::int64_t num_params) : n_(num_params) {}
    virtual ~Optimizer() = default;
    Optimizer(const Optimizer&) = delete;
    Optimizer& operator=(const Optimizer&) = delete;

    /// "sgd", "nesterov", "adam" or "adamw".
    virtual std::string kind() const = 0;
    /// Hyperparameters as text, e.g. "nesterov(momentum=0.9, weight_decay=0.0005)".
    virtual std::string describe() const = 0;

    /// One update: params -= f(grads, state) at learning rate lr (times the multiplier of each range set
    /// by set_lr_scales). Both buffers are [num_params].
    void step(const Vector& params, const Vector& grads, double lr);
    /// Learning-rate multipliers of parameter ranges (disjoint, inside [0, num_params)); elements in no
    /// range keep multiplier 1, like a PyTorch parameter group of its own lr. Not part of state().
    void set_lr_scales(std::vector<LrScale> scales);
    /// Updates taken so far (Adam's bias correction uses it).
    std::int64_t steps() const { return step_; }
    std::int64_t num_params() const { return n_; }

    /// Copies the state to the host (for checkpoints).
    OptimizerState state() const;
    /// Restores a state saved by state(); a different kind, buffer name or size is a clear error.
    void load_state(const OptimizerState& s);

protected:
    /// The kernel(s) of one update of elements [begin, end); t is the 1-based step number.
    virtual void update(const Vector& params, const Vector& grads, float lr, std::int64_t t,
                        std::int64_t begin, std::int64_t end) = 0;
    /// Allocates a zeroed state buffer named "mimic::optim::<name>" and registers it for state().
    Vector add_buffer(const std::string& name);

    std::int64_t n_ = 0;
    std::int64_t step_ = 0;
    std::vector<std::pair<std::string, Vector>> buffers_;
    std::vector<LrScale> segments_; ///< [0, n) cut into ranges of one multiplier each, in order
};

/// Builds the optimizer `cfg.kind` for a model with num_params parameters; an unknown kind or an
/// out-of-range hyperparameter is a clear error.
std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& cfg, std::int64_t num_params);

} // namespace mimic::nn::optim
