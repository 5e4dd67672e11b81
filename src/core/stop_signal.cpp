// StopSignals: scoped SIGTERM/SIGUSR1 handlers that only record the signal (async-signal-safe), for
// stages that checkpoint or keep their partial output and stop at the next safe point.
#include "mimic/core/stop_signal.hpp"

#include <atomic>
#include <csignal>

namespace mimic {

namespace {
std::atomic<int> g_stop_signal{0};
std::atomic<bool> g_output_complete{false};
extern "C" void on_stop_signal(int sig) {
    g_stop_signal = sig;
}
} // namespace

StopSignals::StopSignals() {
    prev_term_ = std::signal(SIGTERM, on_stop_signal);
    prev_usr1_ = std::signal(SIGUSR1, on_stop_signal);
}

StopSignals::~StopSignals() {
    if (g_output_complete) return; // the recording handlers stay until the process exits
    std::signal(SIGTERM, prev_term_);
    std::signal(SIGUSR1, prev_usr1_);
}

int StopSignals::received() {
    return g_stop_signal.load();
}

void StopSignals::output_complete() {
    g_output_complete = true;
    std::signal(SIGTERM, on_stop_signal);
    std::signal(SIGUSR1, on_stop_signal);
}

} // namespace mimic
