// Learning-rate schedules: constant, step decay, cosine annealing and halve-on-plateau (Urban et al.
// 2017), each with an optional linear warmup; the plateau state is saved in checkpoints.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mimic::nn {

class Schedule {
public:
    /// spec is one of
    ///   constant
    ///   step:EVERY[,GAMMA]              lr * GAMMA^(epoch / EVERY), GAMMA default 0.1
    ///   cosine[:MIN_LR]                 MIN_LR + (lr - MIN_LR) (1 + cos(pi t / T)) / 2 per step, MIN_LR
    ///   default 0 plateau:PATIENCE[,FACTOR[,MIN_LR]]  lr *= FACTOR (default 0.5) after PATIENCE epochs
    ///   without a new best
    ///                                   monitored metric (lower is better); never below MIN_LR (default 0)
    /// warmup_epochs > 0 ramps linearly from lr/steps to lr over the first warmup_epochs epochs (per step).
    /// A malformed spec is a clear error naming --schedule.
    Schedule(const std::string& spec, double base_lr, int epochs, std::int64_t steps_per_epoch,
             int warmup_epochs = 0);

    /// Learning rate for step `step_in_epoch` (0-based) of epoch `epoch` (0-based).
    double lr(int epoch, std::int64_t step_in_epoch) const;
    /// Call once at the end of every epoch with the monitored metric (validation loss, or training loss
    /// without a validation set); only plateau uses it. Returns true when the rate was just reduced.
    bool end_epoch(double metric);

    /// The schedule's mutable state (plateau: scale, best, bad epochs) for checkpoints.
    std::vector<double> state() const;
    void load_state(const std::vector<double>& s);

    const std::string& kind() const { return kind_; }
    double base_lr() const { return base_lr_; }
    /// e.g. "plateau(patience=10, factor=0.5, min_lr=0) after 2 warmup epochs"
    std::string describe() const;

private:
    std::string kind_ = "constant";
    double base_lr_ = 0.01;
    int epochs_ = 1;
    std::int64_t steps_per_epoch_ = 1;
    int warmup_ = 0;
    int every_ = 1;
    double gamma_ = 0.1, min_lr_ = 0.0, factor_ = 0.5;
    int patience_ = 10;
    // plateau state
    double scale_ = 1.0, best_ = 0.0;
    bool have_best_ = false;
    int bad_epochs_ = 0;
};

} // namespace mimic::nn
