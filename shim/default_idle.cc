// default_idle.cc — see default_idle.h.

#include "default_idle.h"

#include <time.h>

#include "errno_guard.h"
#include "keepalive/keepalive.h"
#include "sockopts.h"

namespace keepalive {
namespace {

constexpr long long kNsPerS = 1000000000LL;
constexpr long long kRereadAfterNs = kNsPerS;

int cached_idle_s = KEEPALIVE_FALLBACK_KERNEL_IDLE_S;
// The interval and count, read at load (written once).
keepalive_kernel_defaults at_load = {KEEPALIVE_FALLBACK_KERNEL_IDLE_S,
                                     KEEPALIVE_FALLBACK_KERNEL_INTVL_S,
                                     KEEPALIVE_FALLBACK_KERNEL_CNT, 0};
// The distinct idle times the configuration sets; written once at load.
int our_idle_s[KEEPALIVE_MAX_RULES + 1];
int our_idle_count = 0;
// CLOCK_MONOTONIC_COARSE of the last reading again; 0 (none yet): the first
// socket whose idle time differs from the default read at load reads it again.
long long read_at_ns = 0;

// The coarse clock is read through the vDSO: no system call. -1 on failure.
long long coarse_now_ns() {
  timespec now;
  if (clock_gettime(CLOCK_MONOTONIC_COARSE, &now) != 0) return -1;
  return static_cast<long long>(now.tv_sec) * kNsPerS + now.tv_nsec;
}

bool is_ours(int idle_s) {
  for (int i = 0; i < our_idle_count; ++i) {
    if (our_idle_s[i] == idle_s) return true;
  }
  return false;
}

void remember(const keepalive_settings &settings) {
  if (!settings.enable || settings.idle_s == KEEPALIVE_UNSET || is_ours(settings.idle_s)) return;
  our_idle_s[our_idle_count++] = settings.idle_s;
}

bool chosen(int idle_s, int default_s) {
  keepalive_settings read_back;
  read_back.idle_s = idle_s;
  return keepalive_timings_chosen(&read_back, default_s) != 0;
}

}  // namespace

void load_default_idle() {
  ErrnoGuard guard;
  keepalive_read_kernel_defaults(&at_load);
  __atomic_store_n(&cached_idle_s, at_load.idle_s, __ATOMIC_RELAXED);
}

void remember_our_idle_times(const keepalive_config *cfg) {
  our_idle_count = 0;
  remember(cfg->global);
  for (int i = 0; i < cfg->nrules; ++i) remember(cfg->rules[i].settings);
}

int default_idle() { return __atomic_load_n(&cached_idle_s, __ATOMIC_RELAXED); }

keepalive_kernel_defaults kernel_defaults() {
  keepalive_kernel_defaults kernel = at_load;
  kernel.idle_s = default_idle();
  return kernel;
}

bool idle_chosen(int idle_s) {
  if (!chosen(idle_s, default_idle())) return false;
  if (is_ours(idle_s)) return true;
  ErrnoGuard guard;
  long long now = coarse_now_ns();
  long long last = __atomic_load_n(&read_at_ns, __ATOMIC_RELAXED);
  if (now < 0 || now - last < kRereadAfterNs) return true;
  // One thread re-reads; the others go on with the value they have.
  if (!__atomic_compare_exchange_n(&read_at_ns, &last, now, false, __ATOMIC_RELAXED,
                                   __ATOMIC_RELAXED)) {
    return chosen(idle_s, default_idle());
  }
  // A failed read (no descriptor left) keeps what is known.
  int current = kernel_default_idle_or(default_idle());
  __atomic_store_n(&cached_idle_s, current, __ATOMIC_RELAXED);
  return chosen(idle_s, current);
}

}  // namespace keepalive
