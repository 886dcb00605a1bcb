// figures.h — what a keepalive setting means for an idle connection: the
// effective timers (kernel defaults filled in) and the derived figures that
// `keepalive check` reports. Pure functions, except read_kernel_defaults.
#ifndef KEEPALIVE_TOOLS_FIGURES_H
#define KEEPALIVE_TOOLS_FIGURES_H

#include "keepalive/keepalive.h"

namespace keepalive_cli {

// The kernel's keepalive defaults, used for values a setting leaves unset
// (read by the core: keepalive_read_kernel_defaults).
using KernelDefaults = keepalive_kernel_defaults;

// keepalive_read_kernel_defaults, returning the defaults.
KernelDefaults read_kernel_defaults();

// A setting's timers with kernel defaults filled in.
struct EffectiveTimers {
  int idle_s;
  int intvl_s;
  int cnt;
  long long user_timeout_ms;  // 0: none (kernel default)
};

EffectiveTimers effective_timers(const keepalive_settings &settings, const KernelDefaults &kernel);

// Derived figures for an idle connection (no data in flight).
struct Figures {
  // Longest time the wire stays silent while the peer answers every probe:
  // after an answered probe the kernel waits INTVL before it looks again, so
  // the period is max(IDLE, INTVL).
  long long longest_silence_ms;
  // Time from the last packet received to the drop when the peer is gone:
  // IDLE + INTVL·CNT, or, with TCP_USER_TIMEOUT set, the first probe timer
  // IDLE + k·INTVL (k ≥ 1) at which the silence has reached USER_TIMEOUT.
  long long dead_peer_ms;
  bool dead_peer_bounded_by_user_timeout;
  // Probes per hour on an idle connection whose peer answers: 3600 / period.
  double probes_per_hour;
};

Figures derive_figures(const EffectiveTimers &timers);

}  // namespace keepalive_cli

#endif  // KEEPALIVE_TOOLS_FIGURES_H
