// Rank-0 progress reporter for long loops: percent, rate and ETA.
// On a terminal it redraws one line; otherwise (SLURM logs, mpirun) it prints one line per interval.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace mimic {

class Progress {
public:
    /// `what` names the work ("label"), `unit` the items ("samples"); total may be 0 when unknown.
    Progress(std::string what, std::int64_t total, std::string unit);
    ~Progress();
    /// Sets the number of items done so far (call as often as you like; printing is rate-limited).
    void update(std::int64_t done, const std::string& extra = "");
    /// Prints the final line with the average rate.
    void finish(const std::string& extra = "");

    /// Seconds between lines when stdout is not a terminal (MIMIC_PROGRESS_INTERVAL, default 10).
    static double line_interval();
    /// Formats seconds as 1h02m03s / 2m03s / 3.4s.
    static std::string format_duration(double seconds);

private:
    void print(bool final, const std::string& extra);
    std::string what_, unit_;
    std::int64_t total_ = 0, done_ = 0, start_done_ = 0;
    std::chrono::steady_clock::time_point start_, last_print_;
    bool active_ = false, tty_ = false, finished_ = false;
    double interval_ = 10.0;
};

} // namespace mimic
