// figures.cc — see figures.h. The arithmetic follows tcp_keepalive_timer()
// in the Linux kernel (net/ipv4/tcp_timer.c).

#include "lib/figures.h"

namespace keepalive_cli {

KernelDefaults read_kernel_defaults() {
  KernelDefaults kernel;
  keepalive_read_kernel_defaults(&kernel);
  return kernel;
}

EffectiveTimers effective_timers(const keepalive_settings &settings, const KernelDefaults &kernel) {
  EffectiveTimers timers;
  timers.idle_s = settings.idle_s != KEEPALIVE_UNSET ? settings.idle_s : kernel.idle_s;
  timers.intvl_s = settings.intvl_s != KEEPALIVE_UNSET ? settings.intvl_s : kernel.intvl_s;
  timers.cnt = settings.cnt != KEEPALIVE_UNSET ? settings.cnt : kernel.cnt;
  timers.user_timeout_ms =
      settings.user_timeout_ms != KEEPALIVE_UNSET && settings.user_timeout_ms > 0
          ? settings.user_timeout_ms
          : 0;
  return timers;
}

Figures derive_figures(const EffectiveTimers &timers) {
  const long long idle_ms = timers.idle_s * 1000LL;
  const long long intvl_ms = timers.intvl_s * 1000LL;
  Figures figures;
  figures.longest_silence_ms = idle_ms > intvl_ms ? idle_ms : intvl_ms;
  figures.probes_per_hour = 3600000.0 / static_cast<double>(figures.longest_silence_ms);
  if (timers.user_timeout_ms > 0) {
    // The kernel drops the connection at a probe timer when the silence has
    // reached USER_TIMEOUT and at least one probe went unanswered; the timer
    // fires at IDLE, then every INTVL, and the first probe leaves at IDLE.
    long long probes = 1;
    if (timers.user_timeout_ms > idle_ms + intvl_ms) {
      probes = (timers.user_timeout_ms - idle_ms + intvl_ms - 1) / intvl_ms;
    }
    figures.dead_peer_ms = idle_ms + probes * intvl_ms;
    figures.dead_peer_bounded_by_user_timeout = true;
  } else {
    figures.dead_peer_ms = idle_ms + intvl_ms * timers.cnt;
    figures.dead_peer_bounded_by_user_timeout = false;
  }
  return figures;
}

}  // namespace keepalive_cli
