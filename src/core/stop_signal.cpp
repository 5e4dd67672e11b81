// StopSignals: scoped SIGTERM/SIGUSR1 handlers that only record the signal (async-signal-safe), for
// stages that checkpoint or keep their partial output and stop at the next safe point.
#include "mimic/core/stop_signal.hpp"

#include <atomic>
#include <csignal>

namespace mimic {

namespace {
std::atomic<int> g_stop_signal{0};
extern "C" void on_stop_signal(int sig) {
    g_stop_signal = sig;
}
} // namespace

StopSignals::StopSignals() {
    g_stop_signal = 0;
    prev_term_ = std::signal(SIGTERM, on_stop_signal);
    prev_usr1_ = std::signal(SIGUSR1, on_stop_signal);
}

StopSignals::~StopSignals() {
    std::signal(SIGTERM, prev_term_);
    std::signal(SIGUSR1, prev_usr1_);
}

int StopSignals::received() {
    return g_stop_signal.load();
}

} // namespace mimic
