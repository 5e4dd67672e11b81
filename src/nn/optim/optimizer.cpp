// The optimizer base (step counting, state save/restore through host copies) and the factory that
// turns an OptimizerConfig into an Sgd or Adam instance.
#include "mimic/nn/optim/optimizer.hpp"

#include "mimic/core/error.hpp"
#include "mimic/nn/optim/adam.hpp"
#include "mimic/nn/optim/sgd.hpp"

#include <algorithm>
#include <cmath>

namespace mimic::nn::optim {

namespace {
using HostUnmanaged =
    Kokkos::View<float*, Kokkos::LayoutRight, HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>;
}

void Optimizer::step(const Vector& params, const Vector& grads, double lr) {
    MIMIC_REQUIRE(std::int64_t(params.extent(0)) == n_ && std::int64_t(grads.extent(0)) == n_, "optimizer ",
                  kind(), ": parameter/gradient buffers have ", params.extent(0), "/", grads.extent(0),
                  " entries, expected ", n_);
    ++step_;
    if (segments_.empty()) return update(params, grads, float(lr), step_, 0, n_);
    for (const auto& s : segments_)
        update(params, grads, float(lr * s.scale), step_, s.begin, s.end);
}

void Optimizer::set_lr_scales(std::vector<LrScale> scales) {
    std::sort(scales.begin(), scales.end(),
              [](const LrScale& a, const LrScale& b) { return a.begin < b.begin; });
    segments_.clear();
    std::int64_t at = 0;
    for (const auto& s : scales) {
        MIMIC_REQUIRE(s.begin >= at && s.begin <= s.end && s.end <= n_, "optimizer: learning-rate range [",
                      s.begin, ", ", s.end, ") overlaps another or leaves [0, ", n_, ")");
        MIMIC_REQUIRE(std::isfinite(s.scale) && s.scale > 0, "optimizer: learning-rate multiplier ", s.scale,
                      " is not a finite number > 0");
        if (s.begin > at) segments_.push_back(LrScale{at, s.begin, 1.0});
        if (s.end > s.begin) segments_.push_back(s);
        at = s.end;
    }
    if (at < n_ && !segments_.empty()) segments_.push_back(LrScale{at, n_, 1.0});
}

Vector Optimizer::add_buffer(const std::string& name) {
    Vector v("mimic::optim::" + name, size_t(n_)); // zero-initialised
    buffers_.emplace_back(name, v);
    return v;
}

OptimizerState Optimizer::state() const {
    OptimizerState s;
    s.kind = kind();
    s.step = step_;
    for (const auto& [name, buf] : buffers_) {
        s.names.push_back(name);
        std::vector<float> host(static_cast<size_t>(n_));
        Kokkos::deep_copy(HostUnmanaged(host.data(), size_t(n_)), buf);
        s.values.push_back(std::move(host));
    }
    return s;
}

void Optimizer::load_state(const OptimizerState& s) {
    if (s.kind != kind()) fail("optimizer state is for '", s.kind, "' but the optimizer is '", kind(), "'");
    if (s.names.size() != buffers_.size() || s.values.size() != buffers_.size())
        fail("optimizer state for '", kind(), "' holds ", s.names.size(), " buffers, expected ",
             buffers_.size(), " (different hyperparameters, e.g. momentum 0 vs > 0?)");
    if (s.step < 0) fail("optimizer state: negative step count ", s.step);
    for (size_t i = 0; i < buffers_.size(); ++i) {
        if (s.names[i] != buffers_[i].first)
            fail("optimizer state buffer ", i, " is '", s.names[i], "', expected '", buffers_[i].first, "'");
        if (std::int64_t(s.values[i].size()) != n_)
            fail("optimizer state buffer '", s.names[i], "' has ", s.values[i].size(), " entries, expected ",
                 n_);
    }
    for (size_t i = 0; i < buffers_.size(); ++i)
        Kokkos::deep_copy(buffers_[i].second, Kokkos::View<const float*, Kokkos::LayoutRight, HostSpace,
                                                           Kokkos::MemoryTraits<Kokkos::Unmanaged>>(
                                                  s.values[i].data(), size_t(n_)));
    step_ = s.step;
}

std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& c, std::int64_t num_params) {
    MIMIC_REQUIRE(num_params >= 0, "optimizer: negative parameter count");
    if (c.weight_decay < 0) fail("--weight-decay: must be >= 0, got ", c.weight_decay);
    if (c.kind == "sgd" || c.kind == "nesterov") {
        if (c.momentum < 0 || c.momentum >= 1) fail("--momentum: must be in [0, 1), got ", c.momentum);
        if (c.kind == "nesterov" && c.momentum <= 0) fail("--momentum: nesterov needs a momentum > 0");
        return std::make_unique<Sgd>(num_params, c.momentum, c.weight_decay, c.kind == "nesterov");
    }
    if (c.kind == "adam" || c.kind == "adamw") {
        if (c.beta1 < 0 || c.beta1 >= 1) fail("--beta1: must be in [0, 1), got ", c.beta1);
        if (c.beta2 < 0 || c.beta2 >= 1) fail("--beta2: must be in [0, 1), got ", c.beta2);
        if (c.eps <= 0) fail("--eps: must be > 0, got ", c.eps);
        return std::make_unique<Adam>(num_params, c.beta1, c.beta2, c.eps, c.weight_decay, c.kind == "adamw");
    }
    fail("--optimizer: '", c.kind, "' is not one of sgd, nesterov, adam, adamw");
}

} // namespace mimic::nn::optim
