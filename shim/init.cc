// init.cc — see init.h. The only place that decides whether the shim is
// active: secure execution, the off switch and invalid configurations all
// end here, and KEEPALIVE_STRICT turns an invalid configuration into exit 1.

#include "init.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <time.h>
#include <unistd.h>

#include "compat.h"
#include "connect_path.h"
#include "default_idle.h"
#include "errno_guard.h"
#include "log.h"
#include "policy.h"
#include "sockopts.h"

namespace keepalive {
namespace {

enum State : int { kUnloaded = 0, kLoading = 1, kActive = 2, kInert = 3 };

keepalive_config config;  // written once by load(), read-only afterwards
int state = kUnloaded;
// The thread and process loading, while state is kLoading.
pid_t loader_tid = 0;
pid_t loader_pid = 0;
// A load takes microseconds (getenv, parsing, one /proc read); a caller
// gives up waiting for another thread's after about a second.
constexpr int kLoadWaits = 20000;
constexpr long kLoadWaitNs = 50000;

void report_loaded(const keepalive_config &cfg) {
  char global[KEEPALIVE_SETTINGS_TEXT_LEN];
  keepalive_format_settings(&cfg.global, global, sizeof global);
  log_line("active (pid %d): %s%s; %d rule%s", static_cast<int>(getpid()), global,
           cfg.intvl_derived ? " (intvl from idle)" : "", cfg.nrules, cfg.nrules == 1 ? "" : "s");
}

void report_warnings(const keepalive_config &cfg) {
  int shown = keepalive_kept_warnings(&cfg);
  for (int i = 0; i < shown; ++i) log_line("%s (ignored)", cfg.warnings[i]);
  if (cfg.nwarnings > shown) log_line("%d more warnings not shown", cfg.nwarnings - shown);
}

void load() {
  int expected = kUnloaded;
  if (!__atomic_compare_exchange_n(&state, &expected, kLoading, false, __ATOMIC_ACQ_REL,
                                   __ATOMIC_ACQUIRE)) {
    return;  // loaded, or being loaded by another thread
  }
  ErrnoGuard guard;
  __atomic_store_n(&loader_pid, getpid(), __ATOMIC_RELAXED);
  __atomic_store_n(&loader_tid, current_tid(), __ATOMIC_RELAXED);
  State result = kInert;
  // Under secure execution (setuid, setgid, file capabilities) the
  // environment is not the caller's to trust: stay inert and silent.
  if (getauxval(AT_SECURE) == 0) {
    log_remember_stderr();
    keepalive_config_from_environment(&config);
    // Shown at every log level: a misspelled name silently means the
    // kernel's timings, which the library exists to avoid.
    report_warnings(config);
    load_default_idle();
    if (!config.valid) {
      int shown = keepalive_kept_problems(&config);
      char outcome[64] = "libkeepalive is inactive in this process";
      if (config.strict) {
        snprintf(outcome, sizeof outcome, "exiting because KEEPALIVE_STRICT=%s",
                 config.strict_word);
      }
      for (int i = 0; i < shown; ++i) log_line("%s (%s)", config.problems[i], outcome);
      if (config.nproblems > shown) {
        log_line("%d more problems not shown (%s)", config.nproblems - shown, outcome);
      }
      if (config.strict) _exit(1);
    } else if (!config.enabled) {
      if (config.log_level >= KEEPALIVE_LOG_INFO) log_line("disabled by KEEPALIVE=off");
    } else {
      if (config.log_level >= KEEPALIVE_LOG_INFO) report_loaded(config);
      remember_our_idle_times(&config);
      result = kActive;
    }
  }
  __atomic_store_n(&state, result, __ATOMIC_RELEASE);
}

// The fork handler is registered here, never from a hooked call: a call
// from another library's fork handler would wait for the lock fork holds.
__attribute__((constructor)) void load_at_startup() {
  load();
  watch_forks();
}

// A hooked call that arrives while another thread loads (threads started by
// a constructor that ran before ours) waits for that load, so that its
// socket is configured like every other. It does not wait for itself (a
// signal handler's connect() during the load) nor, in a child forked
// during a load, for a thread that is not there. Returns the state after.
int wait_for_load() {
  ErrnoGuard guard;
  int current = kLoading;
  // Both are 0 until the loader has stored them: wait then too.
  pid_t pid = __atomic_load_n(&loader_pid, __ATOMIC_RELAXED);
  bool forked_away = pid != 0 && pid != getpid();
  if (!forked_away && __atomic_load_n(&loader_tid, __ATOMIC_RELAXED) != current_tid()) {
    for (int i = 0; i < kLoadWaits && current == kLoading; ++i) {
      timespec pause = {0, kLoadWaitNs};
      nanosleep(&pause, nullptr);
      current = __atomic_load_n(&state, __ATOMIC_ACQUIRE);
    }
  }
  return current;
}

const char *direction_name(keepalive_direction direction) {
  return direction == KEEPALIVE_IN ? "in" : "out";
}

}  // namespace

const keepalive_config *active_config() {
  int current = __atomic_load_n(&state, __ATOMIC_ACQUIRE);
  if (current == kUnloaded) {
    load();
    current = __atomic_load_n(&state, __ATOMIC_ACQUIRE);
  }
  if (current == kLoading) current = wait_for_load();
  return current == kActive ? &config : nullptr;
}

bool timings_chosen(int fd, bool *readable) {
  int idle_s = 0;
  *readable = read_idle(fd, &idle_s);
  return *readable && idle_chosen(idle_s);
}

bool decide_and_apply(const keepalive_config *cfg, int fd, keepalive_direction direction,
                      keepalive_socket_facts *facts, keepalive_settings *settings,
                      keepalive_apply_failure *failure) {
  keepalive_read_facts(fd, direction, keepalive_needs(cfg, direction), facts);
  keepalive_decide(cfg, facts, settings);
  if (!settings->enable) {
    // Nothing to set (failure stays as the caller made it: none), so nothing
    // to classify by; only a debug line needs it.
    return cfg->log_level >= KEEPALIVE_LOG_DEBUG && has_inet_domain(fd);
  }
  return apply_if_inet(fd, settings, failure);
}

namespace {

// The errno name of a failed setsockopt, for a log line.
const char *failure_name(const keepalive_apply_failure &failure) {
  const char *name = errno_name(failure.error);
  return name != nullptr ? name : "unknown error";
}

// "127.0.0.1:5222", "[::1]:5222" or "unknown": the peer of fd, for a log line.
void format_peer(int fd, char *buf, size_t size) {
  // Read as an outgoing socket's facts: the peer address and the peer's port.
  keepalive_socket_facts facts;
  keepalive_read_facts(fd, KEEPALIVE_OUT, KEEPALIVE_NEED_PEER | KEEPALIVE_NEED_PORT, &facts);
  snprintf(buf, size, "unknown");
  if (!facts.has_peer) return;
  char address[INET6_ADDRSTRLEN];
  inet_ntop(facts.peer.family == 4 ? AF_INET : AF_INET6, facts.peer.addr, address, sizeof address);
  snprintf(buf, size, facts.peer.family == 4 ? "%s:%u" : "[%s]:%u", address,
           static_cast<unsigned>(facts.port));
}

// What a listener can carry for every connection on its port: the decision
// for a peer that no peer= rule names (keepalive_decide without the peer).
// False when the port is needed and unknown.
bool decide_for_any_peer(const keepalive_config *cfg, const keepalive_socket_facts &facts,
                         keepalive_settings *out) {
  keepalive_socket_facts any_peer = facts;
  any_peer.has_peer = 0;
  if ((keepalive_needs(cfg, facts.direction) & KEEPALIVE_NEED_PORT) != 0 && !facts.has_port) {
    return false;
  }
  keepalive_decide(cfg, &any_peer, out);
  return true;
}

// The listening socket carries the decision for any peer from now on
// (decide_for_any_peer), so that the sockets it accepts inherit it; those
// whose peer a peer= rule decides otherwise are corrected when accepted
// (correct_inherited). Not when inheritance could not be recognised (no idle
// time of ours, or the kernel's: every accepted socket takes the per-socket
// path then), the decision is off, or the program chose the listener's
// timings itself.
void configure_listener(const keepalive_config *cfg, int listener,
                        const keepalive_socket_facts &facts) {
  keepalive_settings decided;
  if (!decide_for_any_peer(cfg, facts, &decided) || !decided.enable ||
      decided.idle_s == KEEPALIVE_UNSET || decided.idle_s == default_idle()) {
    return;
  }
  bool readable = false;
  if (timings_chosen(listener, &readable) || !readable) return;
  keepalive_apply_failure failure;
  keepalive_apply(listener, &decided, &failure);
  if (cfg->log_level < KEEPALIVE_LOG_DEBUG) return;
  char values[KEEPALIVE_SETTINGS_TEXT_LEN];
  keepalive_format_settings(&decided, values, sizeof values);
  if (failure.option != nullptr) {
    log_line("listen fd=%d: %s; setting %s failed: %s", listener, values, failure.option,
             failure_name(failure));
  } else {
    log_line("listen fd=%d: %s; the sockets it accepts from now on inherit them", listener, values);
  }
}

// An accepted socket whose idle time is `idle_s`, not the kernel's: when it
// carries what configure_listener set (the decision for any peer) and a
// peer= rule decides its peer otherwise, it gets its own decision, changing
// only the values that differ. The peer is read first (one getpeername), the
// port only when a peer= rule names the peer. Returns true when the socket
// was changed (and logged); false leaves it alone: inherited as it should
// be, or the program's own timings.
bool correct_inherited(const keepalive_config *cfg, int fd, int idle_s) {
  const unsigned needs = keepalive_needs(cfg, KEEPALIVE_IN);
  if ((needs & KEEPALIVE_NEED_PEER) == 0) return false;
  keepalive_socket_facts facts;
  keepalive_read_facts(fd, KEEPALIVE_IN, KEEPALIVE_NEED_PEER, &facts);
  if (!peer_rule_names(cfg, &facts)) return false;
  if ((needs & KEEPALIVE_NEED_PORT) != 0) {
    keepalive_socket_facts port;
    keepalive_read_facts(fd, KEEPALIVE_IN, KEEPALIVE_NEED_PORT, &port);
    facts.port = port.port;
    facts.has_port = port.has_port;
  }
  keepalive_settings inherited, decided;
  if (!decide_for_any_peer(cfg, facts, &inherited) || !inherited.enable ||
      inherited.idle_s != idle_s) {
    return false;  // not what the listener would carry from us
  }
  keepalive_decide(cfg, &facts, &decided);
  if (same_values(inherited, decided)) return false;
  keepalive_apply_failure failure;
  change_settings(fd, inherited, decided, kernel_defaults(), &failure);
  log_socket(cfg, fd, KEEPALIVE_IN, decided, failure);
  return true;
}

}  // namespace

int configure_accepted(int listener, int client) {
  if (client < 0) return client;
  const keepalive_config *cfg = active_config();
  if (cfg == nullptr) return client;
  int idle_s = 0;
  if (!read_idle(client, &idle_s)) return client;
  if (idle_chosen(idle_s)) {
    if (!correct_inherited(cfg, client, idle_s)) log_left_alone(cfg, client, KEEPALIVE_IN);
    return client;
  }
  if (!has_tcp_protocol(client)) return client;
  keepalive_socket_facts facts;
  keepalive_settings settings;
  keepalive_apply_failure failure = {nullptr, 0};
  if (!decide_and_apply(cfg, client, KEEPALIVE_IN, &facts, &settings, &failure)) {
    // Left off (below debug logging): the listener may still carry the
    // decision for other peers.
    if (!settings.enable) configure_listener(cfg, listener, facts);
    return client;
  }
  log_socket(cfg, client, KEEPALIVE_IN, settings, failure);
  if (failure.option == nullptr) configure_listener(cfg, listener, facts);
  return client;
}

void log_socket(const keepalive_config *cfg, int fd, keepalive_direction direction,
                const keepalive_settings &settings, const keepalive_apply_failure &failure) {
  if (cfg->log_level < KEEPALIVE_LOG_DEBUG) return;
  char peer[INET6_ADDRSTRLEN + 8];
  format_peer(fd, peer, sizeof peer);
  char rule[KEEPALIVE_RULE_TEXT_LEN + 16] = "global";
  if (settings.rule != KEEPALIVE_RULE_GLOBAL) {
    snprintf(rule, sizeof rule, "%d (%s)", settings.rule + 1, cfg->rules[settings.rule].text);
  }
  char values[KEEPALIVE_SETTINGS_TEXT_LEN];
  keepalive_format_settings(&settings, values, sizeof values);
  if (failure.option != nullptr) {
    log_line("%s fd=%d peer=%s rule=%s: %s; setting %s failed: %s", direction_name(direction), fd,
             peer, rule, values, failure.option, failure_name(failure));
  } else {
    log_line("%s fd=%d peer=%s rule=%s: %s", direction_name(direction), fd, peer, rule, values);
  }
}

void log_left_alone(const keepalive_config *cfg, int fd, keepalive_direction direction) {
  if (cfg->log_level < KEEPALIVE_LOG_DEBUG) return;
  char peer[INET6_ADDRSTRLEN + 8];
  format_peer(fd, peer, sizeof peer);
  keepalive_settings now, ours;
  keepalive_read_settings(fd, &now);
  keepalive_socket_facts facts;
  keepalive_read_facts(fd, direction, keepalive_needs(cfg, direction), &facts);
  keepalive_decide(cfg, &facts, &ours);
  // The values, even while SO_KEEPALIVE is off (a listener given only an
  // idle time by its program): "off" alone would hide what was chosen.
  keepalive_settings shown = now;
  shown.enable = 1;
  char values[KEEPALIVE_SETTINGS_TEXT_LEN];
  keepalive_format_settings(&shown, values, sizeof values);
  const char *why = !keepalive_settings_carry(&now, &ours)
                        ? "the program chose its own keepalive timings"
                    : direction == KEEPALIVE_IN ? "inherited from its listening socket"
                                                : "already configured by an earlier connect()";
  log_line("%s fd=%d peer=%s: left alone: %s (%s%s)", direction_name(direction), fd, peer, why,
           values, now.enable ? "" : ", SO_KEEPALIVE off");
}

void configure_socket(const keepalive_config *cfg, int fd, keepalive_direction direction) {
  keepalive_socket_facts facts;
  keepalive_settings settings;
  keepalive_apply_failure failure = {nullptr, 0};
  if (decide_and_apply(cfg, fd, direction, &facts, &settings, &failure)) {
    log_socket(cfg, fd, direction, settings, failure);
  }
}

}  // namespace keepalive
