// stop_signals.cc — see stop_signals.h.

#include "lib/stop_signals.h"

#include <time.h>

#include <algorithm>

namespace keepalive_cli {
namespace {

volatile sig_atomic_t g_stop_signal = 0;

void on_stop_signal(int signal_number) { g_stop_signal = signal_number; }

}  // namespace

double monotonic_s() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

StopSignals::StopSignals() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  signal(SIGPIPE, SIG_IGN);
  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGTERM);
  sigprocmask(SIG_BLOCK, &block, &wait_mask_);
  sigdelset(&wait_mask_, SIGINT);
  sigdelset(&wait_mask_, SIGTERM);
}

int StopSignals::wait(std::vector<pollfd> *fds, double deadline) const {
  double left = std::max(0.0, deadline - monotonic_s());
  timespec timeout{};
  timeout.tv_sec = static_cast<time_t>(left);
  timeout.tv_nsec = static_cast<long>((left - static_cast<double>(timeout.tv_sec)) * 1e9);
  return ppoll(fds->data(), fds->size(), &timeout, &wait_mask_);
}

int StopSignals::caught() { return g_stop_signal; }

}  // namespace keepalive_cli
