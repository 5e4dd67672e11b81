// Progress reporter: rate-limited printing on rank 0 with rate and ETA.
// Interval lines go to stdout so that they interleave correctly with the stage's other output.
#include "mimic/core/progress.hpp"

#include "mimic/core/log.hpp"
#include "mimic/core/runtime.hpp"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace mimic {

double Progress::line_interval() {
    return env_seconds("MIMIC_PROGRESS_INTERVAL");
}

std::string Progress::format_duration(double s) {
    char buf[64];
    if (!std::isfinite(s) || s < 0) return "?";
    if (s < 60) {
        std::snprintf(buf, sizeof buf, "%.1fs", s);
    } else if (s < 3600) {
        std::snprintf(buf, sizeof buf, "%dm%02ds", int(s) / 60, int(s) % 60);
    } else {
        std::snprintf(buf, sizeof buf, "%dh%02dm%02ds", int(s) / 3600, (int(s) / 60) % 60, int(s) % 60);
    }
    return buf;
}

Progress::Progress(std::string what, std::int64_t total, std::string unit)
    : what_(std::move(what)), unit_(std::move(unit)), total_(total) {
    active_ = log::world_rank() == 0 && !log::quiet();
    // Under mpirun a rank's stdout is often a pseudo-terminal even when the job's output goes to a file,
    // so a terminal is trusted only outside a launcher; MIMIC_PROGRESS=tty|lines overrides.
    const char* mode = std::getenv("MIMIC_PROGRESS");
    const bool launched =
        std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMIX_RANK") || std::getenv("SLURM_JOB_ID");
    if (mode && std::string(mode) == "tty")
        tty_ = true;
    else if (mode && std::string(mode) == "lines")
        tty_ = false;
    else
        tty_ = !launched && isatty(fileno(stdout)) != 0;
    interval_ = tty_ ? 0.25 : line_interval();
    start_ = last_print_ = std::chrono::steady_clock::now();
}

Progress::~Progress() {
    if (active_ && tty_ && !finished_) std::fputc('\n', stdout);
}

void Progress::update(std::int64_t done, const std::string& extra) {
    done_ = done;
    if (!active_) return;
    auto now = std::chrono::steady_clock::now();
    if (std::chrono::duration<double>(now - last_print_).count() < interval_) return;
    last_print_ = now;
    print(false, extra);
}

void Progress::finish(const std::string& extra) {
    if (!active_ || finished_) return;
    print(true, extra);
    finished_ = true;
}

void Progress::print(bool final, const std::string& extra) {
    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double rate = el > 0 ? double(done_ - start_done_) / el : 0.0;
    char line[512];
    if (total_ > 0) {
        const double pct = 100.0 * double(done_) / double(total_);
        const double eta = rate > 0 ? double(total_ - done_) / rate : NAN;
        if (final) {
            std::snprintf(line, sizeof line, "[%s] %lld/%lld %s in %s (%.4g %s/s)", what_.c_str(),
                          (long long)done_, (long long)total_, unit_.c_str(), format_duration(el).c_str(),
                          rate, unit_.c_str());
        } else {
            std::snprintf(line, sizeof line, "[%s] %5.1f%% %lld/%lld %s, %.4g %s/s, elapsed %s, ETA %s",
                          what_.c_str(), pct, (long long)done_, (long long)total_, unit_.c_str(), rate,
                          unit_.c_str(), format_duration(el).c_str(), format_duration(eta).c_str());
        }
    } else {
        std::snprintf(line, sizeof line, "[%s] %lld %s, %.4g %s/s, elapsed %s", what_.c_str(),
                      (long long)done_, unit_.c_str(), rate, unit_.c_str(), format_duration(el).c_str());
    }
    std::string s = line;
    if (!extra.empty()) s += ", " + extra;
    if (tty_) {
        std::printf("\r\033[K%s", s.c_str());
        if (final) std::fputc('\n', stdout);
        std::fflush(stdout);
    } else {
        log::write_info(s);
    }
}

} // namespace mimic
