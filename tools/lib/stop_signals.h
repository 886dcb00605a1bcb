// stop_signals.h — the command's one way to wait and be stopped: SIGINT and
// SIGTERM are blocked except while waiting in ppoll, so that a signal can
// never slip in between the check and the wait. natprobe and apply --follow
// wait with it; deadlines are on the monotonic clock.
#ifndef KEEPALIVE_TOOLS_STOP_SIGNALS_H
#define KEEPALIVE_TOOLS_STOP_SIGNALS_H

#include <poll.h>
#include <signal.h>

#include <vector>

namespace keepalive_cli {

// Seconds on the monotonic clock: deadlines and durations, never dates.
double monotonic_s();

class StopSignals {
 public:
  // Catches SIGINT and SIGTERM (and ignores SIGPIPE) from now on.
  StopSignals();
  // Waits like poll() until `deadline` (monotonic_s(); <= now: no wait) or
  // a stop signal (then -1 with EINTR).
  int wait(std::vector<pollfd> *fds, double deadline) const;
  // The stop signal caught, or 0.
  static int caught();
  static bool stopped() { return caught() != 0; }

 private:
  sigset_t wait_mask_{};
};

}  // namespace keepalive_cli

#endif  // KEEPALIVE_TOOLS_STOP_SIGNALS_H
