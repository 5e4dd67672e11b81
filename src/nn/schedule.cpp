// Learning-rate schedules: parsing of the --schedule spec, the per-step rate, and the plateau logic
// (a new best resets the counter; PATIENCE epochs without one multiply the rate by FACTOR).
#include "mimic/nn/schedule.hpp"

#include "mimic/core/error.hpp"

#include <cmath>
#include <cstdlib>
#include <limits>
#include <sstream>

namespace mimic::nn {

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> out;
    std::string cur;
    for (char ch : s) {
        if (ch == sep) {
            out.push_back(cur);
            cur.clear();
        } else {
            cur += ch;
        }
    }
    out.push_back(cur);
    return out;
}

double number(const std::string& spec, const std::string& tok) {
    char* end = nullptr;
    const double v = std::strtod(tok.c_str(), &end);
    if (tok.empty() || *end != '\0' || !std::isfinite(v))
        fail("--schedule '", spec, "': '", tok, "' is not a number");
    return v;
}

int integer(const std::string& spec, const std::string& tok) {
    const double v = number(spec, tok);
    if (v != std::floor(v) || v < 1 || v > 1e9)
        fail("--schedule '", spec, "': '", tok, "' must be a positive integer");
    return int(v);
}

} // namespace

Schedule::Schedule(const std::string& spec, double base_lr, int epochs, std::int64_t steps_per_epoch,
                   int warmup_epochs)
    : base_lr_(base_lr), epochs_(std::max(1, epochs)),
      steps_per_epoch_(std::max<std::int64_t>(1, steps_per_epoch)), warmup_(warmup_epochs) {
    if (!(base_lr > 0) || !std::isfinite(base_lr)) fail("--lr: must be a positive number, got ", base_lr);
    if (warmup_epochs < 0) fail("--warmup: must be >= 0, got ", warmup_epochs);
    const auto colon = spec.find(':');
    kind_ = spec.substr(0, colon);
    const std::vector<std::string> args =
        colon == std::string::npos ? std::vector<std::string>{} : split(spec.substr(colon + 1), ',');
    auto nargs = [&](size_t lo, size_t hi) {
        if (args.size() < lo || args.size() > hi)
            fail("--schedule '", spec, "': ", kind_, " takes ", lo,
                 lo == hi ? "" : " to " + std::to_string(hi), " argument", hi == 1 ? "" : "s",
                 " (see `mimic train --help`)");
    };
    if (kind_ == "constant") {
        nargs(0, 0);
    } else if (kind_ == "step") {
        nargs(1, 2);
        every_ = integer(spec, args[0]);
        if (args.size() > 1) gamma_ = number(spec, args[1]);
        if (!(gamma_ > 0 && gamma_ <= 1)) fail("--schedule '", spec, "': GAMMA must be in (0, 1]");
    } else if (kind_ == "cosine") {
        nargs(0, 1);
        if (!args.empty()) min_lr_ = number(spec, args[0]);
        if (min_lr_ < 0 || min_lr_ > base_lr) fail("--schedule '", spec, "': MIN_LR must be in [0, --lr]");
    } else if (kind_ == "plateau") {
        nargs(1, 3);
        patience_ = integer(spec, args[0]);
        if (args.size() > 1) factor_ = number(spec, args[1]);
        if (args.size() > 2) min_lr_ = number(spec, args[2]);
        if (!(factor_ > 0 && factor_ < 1)) fail("--schedule '", spec, "': FACTOR must be in (0, 1)");
        if (min_lr_ < 0) fail("--schedule '", spec, "': MIN_LR must be >= 0");
    } else {
        fail("--schedule '", spec, "': unknown schedule '", kind_,
             "' (constant, step:EVERY[,GAMMA], cosine[:MIN_LR], ", "plateau:PATIENCE[,FACTOR[,MIN_LR]])");
    }
}

double Schedule::lr(int epoch, std::int64_t step_in_epoch) const {
    const double t = double(epoch) * double(steps_per_epoch_) + double(step_in_epoch); // global step
    double rate = base_lr_;
    if (kind_ == "step") {
        rate = base_lr_ * std::pow(gamma_, double(epoch / every_));
    } else if (kind_ == "cosine") {
        const double start = double(warmup_) * double(steps_per_epoch_);
        const double total = double(epochs_) * double(steps_per_epoch_) - start;
        const double x = total > 0 ? std::min(1.0, std::max(0.0, (t - start) / total)) : 0.0;
        rate = min_lr_ + (base_lr_ - min_lr_) * 0.5 * (1.0 + std::cos(M_PI * x));
    } else if (kind_ == "plateau") {
        rate = std::max(min_lr_, base_lr_ * scale_);
    }
    if (warmup_ > 0 && epoch < warmup_) {
        const double w = double(warmup_) * double(steps_per_epoch_);
        rate *= (t + 1.0) / w;
    }
    return rate;
}

bool Schedule::end_epoch(double metric) {
    if (kind_ != "plateau") return false;
    if (!have_best_ || metric < best_) {
        best_ = metric;
        have_best_ = true;
        bad_epochs_ = 0;
        return false;
    }
    if (++bad_epochs_ >= patience_) {
        bad_epochs_ = 0;
        const double before = std::max(min_lr_, base_lr_ * scale_);
        scale_ *= factor_;
        return std::max(min_lr_, base_lr_ * scale_) < before;
    }
    return false;
}

std::vector<double> Schedule::state() const {
    return {scale_, best_, have_best_ ? 1.0 : 0.0, double(bad_epochs_)};
}

void Schedule::load_state(const std::vector<double>& s) {
    if (s.size() != 4) fail("schedule state holds ", s.size(), " values, expected 4");
    scale_ = s[0];
    best_ = s[1];
    have_best_ = s[2] != 0.0;
    bad_epochs_ = int(s[3]);
}

std::string Schedule::describe() const {
    std::ostringstream os;
    if (kind_ == "constant")
        os << "constant(lr=" << base_lr_ << ")";
    else if (kind_ == "step")
        os << "step(lr=" << base_lr_ << ", every=" << every_ << ", gamma=" << gamma_ << ")";
    else if (kind_ == "cosine")
        os << "cosine(lr=" << base_lr_ << ", min_lr=" << min_lr_ << ", epochs=" << epochs_ << ")";
    else
        os << "plateau(lr=" << base_lr_ << ", patience=" << patience_ << ", factor=" << factor_
           << ", min_lr=" << min_lr_ << ")";
    if (warmup_ > 0) os << " after " << warmup_ << " warmup epoch" << (warmup_ == 1 ? "" : "s");
    return os.str();
}

} // namespace mimic::nn
