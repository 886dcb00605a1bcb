// socket_pass.cc — see socket_pass.h.

#include "lib/socket_pass.h"

#include <netinet/tcp.h>
#include <string.h>

#include <iterator>
#include <unordered_set>
#include <utility>

#include "lib/sockdiag.h"
#include "lib/stop_signals.h"

namespace keepalive_cli {
namespace {

// In the order of enum Action.
constexpr ActionInfo kActions[] = {
    {Action::kSet, "set", "set", Group::kChanged},
    {Action::kWouldSet, "would_set", "would set", Group::kChanged},
    {Action::kOverridden, "overridden", "overridden", Group::kChanged},
    {Action::kWouldOverride, "would_override", "would override", Group::kChanged},
    {Action::kReset, "reset", "reset", Group::kChanged},
    {Action::kWouldReset, "would_reset", "would reset", Group::kChanged},
    {Action::kCarries, "carries", "yes", Group::kCompared},
    {Action::kDiffers, "differs", "no", Group::kCompared},
    {Action::kDescribed, "decided", "-", Group::kCompared},
    {Action::kLeft, "left", "left", Group::kLeft},
    {Action::kOwnTimings, "own_timings", "left", Group::kLeft},
    {Action::kByPeer, "decided_by_peer", "left", Group::kLeft},
    {Action::kNotCarried, "not_carried", "left", Group::kLeft},
    {Action::kListenerNotSet, "listener_not_set", "skipped", Group::kSkipped},
    {Action::kNotEstablished, "not_established", "skipped", Group::kSkipped},
    {Action::kGone, "gone", "gone", Group::kGone},
    {Action::kFailed, "failed", "FAILED", Group::kFailed},
};

constexpr bool every_action_in_order() {
  for (size_t i = 0; i < std::size(kActions); ++i) {
    if (kActions[i].action != static_cast<Action>(i)) return false;
  }
  return std::size(kActions) == kActionCount;
}
static_assert(every_action_in_order(), "kActions: one entry per Action, in order");

bool same_settings(const keepalive_settings &a, const keepalive_settings &b) {
  return a.enable == b.enable && a.idle_s == b.idle_s && a.intvl_s == b.intvl_s && a.cnt == b.cnt &&
         a.user_timeout_ms == b.user_timeout_ms;
}

// Rules by peer= that come before the listener's deciding rule and could
// match a connection accepted on `port`, with other settings: with the
// library, such a connection would get that rule's settings; inheriting from
// the listener, it gets the listener's.
std::vector<int> peer_rules_a_listener_cannot_honour(const keepalive_config &config, uint16_t port,
                                                     const keepalive_settings &decision) {
  keepalive_socket_facts accepted{};  // a connection accepted on `port`, from a peer yet unknown
  accepted.direction = KEEPALIVE_IN;
  accepted.has_port = 1;
  accepted.port = port;
  std::vector<int> rules;
  int end = decision.rule == KEEPALIVE_RULE_GLOBAL ? config.nrules : decision.rule;
  for (int i = 0; i < end; ++i) {
    const keepalive_rule &rule = config.rules[i];
    if (rule.npeers == 0) continue;
    // The rule without its peer= list matches when some peer would.
    keepalive_rule any_peer = rule;
    any_peer.npeers = 0;
    if (!keepalive_rule_matches(&any_peer, &accepted)) continue;
    bool both_off = !rule.settings.enable && !decision.enable;
    if (!both_off && !same_settings(rule.settings, decision)) rules.push_back(i);
  }
  return rules;
}

// Whether the connections a peer= rule decides lose nothing when they
// inherit `listener` instead: the rule switches keepalive off, or asks for
// no shorter idle time, interval or count (unset: the kernel's) and for no
// user timeout that the listener does not bound as tightly.
bool gives_what_the_rule_asks(const keepalive_settings &rule, const keepalive_settings &listener,
                              const keepalive_kernel_defaults &kernel) {
  if (!rule.enable) return true;
  auto value = [](long long set, long long kernel_value) {
    return set != KEEPALIVE_UNSET ? set : kernel_value;
  };
  const bool bounded =
      rule.user_timeout_ms == KEEPALIVE_UNSET || rule.user_timeout_ms == 0 ||
      (listener.user_timeout_ms != KEEPALIVE_UNSET && listener.user_timeout_ms > 0 &&
       listener.user_timeout_ms <= rule.user_timeout_ms);
  return listener.enable && bounded &&
         value(rule.idle_s, kernel.idle_s) >= value(listener.idle_s, kernel.idle_s) &&
         value(rule.intvl_s, kernel.intvl_s) >= value(listener.intvl_s, kernel.intvl_s) &&
         value(rule.cnt, kernel.cnt) >= value(listener.cnt, kernel.cnt);
}

// What keepalive_read_settings returns after keepalive_apply(values) on a
// socket that reads `before`: SO_KEEPALIVE on, the values set, the others
// as they were.
keepalive_settings predicted_after(const keepalive_settings &before,
                                   const keepalive_settings &values) {
  keepalive_settings after = before;
  after.enable = 1;
  if (values.idle_s != KEEPALIVE_UNSET) after.idle_s = values.idle_s;
  if (values.intvl_s != KEEPALIVE_UNSET) after.intvl_s = values.intvl_s;
  if (values.cnt != KEEPALIVE_UNSET) after.cnt = values.cnt;
  if (values.user_timeout_ms != KEEPALIVE_UNSET) after.user_timeout_ms = values.user_timeout_ms;
  return after;
}

// The kernel's defaults for the values `decision` sets (a user timeout of 0
// is the kernel's), SO_KEEPALIVE staying on; the others unset.
keepalive_settings kernel_values_for(const keepalive_settings &decision,
                                     const keepalive_kernel_defaults &kernel) {
  keepalive_settings values{};
  values.enable = 1;
  values.idle_s = decision.idle_s != KEEPALIVE_UNSET ? kernel.idle_s : KEEPALIVE_UNSET;
  values.intvl_s = decision.intvl_s != KEEPALIVE_UNSET ? kernel.intvl_s : KEEPALIVE_UNSET;
  values.cnt = decision.cnt != KEEPALIVE_UNSET ? kernel.cnt : KEEPALIVE_UNSET;
  values.user_timeout_ms = decision.user_timeout_ms != KEEPALIVE_UNSET ? 0 : KEEPALIVE_UNSET;
  values.rule = decision.rule;
  return values;
}

// Sets `values` on `fd` and reads the socket back: `done`, or kFailed with
// the first failing option named.
void set_values(int fd, const keepalive_settings &values, Action done, Outcome *outcome) {
  keepalive_apply_failure failure{};
  int failures = keepalive_apply(fd, &values, &failure);
  outcome->after_read = keepalive_read_settings(fd, &outcome->after) == 1;
  if (failures == 0) {
    outcome->action = done;
    return;
  }
  outcome->action = Action::kFailed;
  outcome->error = std::string("setting ") + failure.option + " failed: " + strerror(failure.error);
  if (failures > 1) outcome->error += " (and " + std::to_string(failures - 1) + " more)";
}

// Whether the socket's timings were chosen (by the program, or set
// earlier): its idle time read before is not the kernel's default in the
// process's namespace. The one place that tells (NamespaceDefaults).
bool timings_chosen(const Outcome &outcome, const PassOptions &options) {
  return outcome.before_read && options.kernel.timings_chosen(outcome.before);
}

// Whether the socket carries what the replaced configuration decided for
// it: our earlier values, which a new configuration moves on.
bool carries_replaced(const keepalive_socket_facts &facts, const PassOptions &options,
                      const Outcome &outcome) {
  if (options.replaced == nullptr || !outcome.before_read) return false;
  keepalive_settings earlier;
  keepalive_decide(options.replaced, &facts, &earlier);
  return earlier.enable && earlier.idle_s != KEEPALIVE_UNSET &&
         keepalive_settings_carry(&outcome.before, &earlier);
}

// The leave-alone rule, as the library's: timings the socket carries
// already and that were chosen win (unless they are the decision, which
// reset and compare look for); a decision `off` leaves a socket as it is; a
// listener carries only settings that cannot depend on the peer. Sets the
// action and returns true when the socket is left as it is.
bool left_alone(const keepalive_config &config, const keepalive_socket_facts &facts,
                const PassOptions &options, Outcome *outcome) {
  const keepalive_settings &decision = outcome->settings;
  const bool set_modes = options.mode == PassMode::kSet || options.mode == PassMode::kPredict;
  const bool chosen = timings_chosen(*outcome, options) &&
                      !(set_modes && carries_replaced(facts, options, *outcome));
  const bool carries =
      outcome->before_read && keepalive_settings_carry(&outcome->before, &decision);
  keepalive_settings listener;
  outcome->chosen = chosen;
  if (!set_modes && options.mode != PassMode::kDescribe && carries) return false;
  if (options.mode == PassMode::kDescribe && chosen && carries &&
      decision.idle_s != KEEPALIVE_UNSET) {
    outcome->action = Action::kCarries;
  } else if (chosen && !(set_modes && options.override && decision.enable)) {
    outcome->action = Action::kOwnTimings;
  } else if (!decision.enable) {
    outcome->action = Action::kLeft;
  } else if (set_modes && outcome->socket.listening &&
             !keepalive_decide_listener(&config, &facts, &listener) &&
             (options.exact_listeners || !facts.has_port ||
              !outcome->stricter_peer_rules.empty())) {
    outcome->action = Action::kByPeer;
  } else {
    return false;
  }
  outcome->after_read = outcome->before_read;
  outcome->after = outcome->before;
  return true;
}

// The mode's work on a decided socket that is not left alone.
void act(int fd, const PassOptions &options, Outcome *outcome) {
  const keepalive_settings kernel = kernel_values_for(outcome->settings, options.kernel.values());
  const bool carries = keepalive_settings_carry(&outcome->before, &outcome->settings);
  const bool overrides = outcome->chosen && !carries;  // --override over the program's timings
  outcome->after_read = outcome->before_read;
  outcome->after = outcome->before;
  switch (options.mode) {
    case PassMode::kSet:
      return set_values(fd, outcome->settings, overrides ? Action::kOverridden : Action::kSet,
                        outcome);
    case PassMode::kPredict:
      outcome->action = overrides ? Action::kWouldOverride : Action::kWouldSet;
      outcome->after = predicted_after(outcome->before, outcome->settings);
      return;
    case PassMode::kReset:
      if (!carries) break;
      return set_values(fd, kernel, Action::kReset, outcome);
    case PassMode::kPredictReset:
      if (!carries) break;
      outcome->action = Action::kWouldReset;
      outcome->after = predicted_after(outcome->before, kernel);
      return;
    case PassMode::kCompare:
      outcome->action = carries ? Action::kCarries : Action::kDiffers;
      return;
    case PassMode::kDescribe:
      outcome->action = Action::kDescribed;
      return;
  }
  outcome->action = Action::kNotCarried;
}

// Whether the pass looks at `socket` at all: established connections, and
// listeners when asked.
bool part_of_pass(const TcpSocket &socket, const PassOptions &options, Outcome *outcome) {
  if (socket.listening && !options.listeners) {
    outcome->action = Action::kListenerNotSet;
    return false;
  }
  if (!established_or_listening(socket)) {
    outcome->action = Action::kNotEstablished;
    return false;
  }
  return true;
}

// Decides the socket read into *outcome, applies the leave-alone rule, and
// does the mode's work on `fd`, a duplicate of it (-1 for kDescribe).
void decide(const keepalive_config &config, const PassOptions &options, int fd, Outcome *outcome) {
  const keepalive_socket_facts facts = socket_facts(outcome->socket);
  keepalive_decide(&config, &facts, &outcome->settings);
  outcome->decided = true;
  const TcpSocket &socket = outcome->socket;
  if (socket.listening && socket.has_local) {
    outcome->peer_rules =
        peer_rules_a_listener_cannot_honour(config, port_of(socket.local), outcome->settings);
    for (int rule : outcome->peer_rules) {
      if (!gives_what_the_rule_asks(config.rules[rule].settings, outcome->settings,
                                    options.kernel.values())) {
        outcome->stricter_peer_rules.push_back(rule);
      }
    }
  }
  if (!left_alone(config, facts, options, outcome)) act(fd, options, outcome);
}

}  // namespace

const ActionInfo &action_info(Action action) { return kActions[static_cast<size_t>(action)]; }

int Totals::of(Group group) const {
  int total = 0;
  for (const ActionInfo &info : kActions) total += info.group == group ? of(info.action) : 0;
  return total;
}

int Totals::sockets() const {
  int total = 0;
  for (int count : counts_) total += count;
  return total;
}

Totals count(const std::vector<Outcome> &outcomes) {
  Totals totals;
  for (const Outcome &outcome : outcomes) totals.add(outcome.action);
  return totals;
}

NamespaceDefaults::NamespaceDefaults(pid_t pid) : pid_(pid) { read(); }

void NamespaceDefaults::read() const {
  read_at_s_ = monotonic_s();
  auto read_here = [this] { keepalive_read_kernel_defaults(&values_); };
  std::string error;
  if (!in_network_namespace(pid_, "reading its kernel defaults", read_here, &error)) read_here();
}

NamespaceDefaults NamespaceDefaults::fixed(const keepalive_kernel_defaults &values) {
  NamespaceDefaults defaults;
  defaults.values_ = values;
  return defaults;
}

bool NamespaceDefaults::timings_chosen(const keepalive_settings &read_back) const {
  if (!keepalive_timings_chosen(&read_back, values_.idle_s)) return false;
  if (pid_ < 0 || monotonic_s() - read_at_s_ < 1.0) return true;
  read();
  return keepalive_timings_chosen(&read_back, values_.idle_s) != 0;
}

PassOptions pass_options(PassMode mode, bool listeners, pid_t pid) {
  PassOptions options;
  options.mode = mode;
  options.listeners = listeners;
  options.kernel = NamespaceDefaults(pid);
  return options;
}

bool established_or_listening(const TcpSocket &socket) {
  return socket.listening || socket.state == TCP_ESTABLISHED;
}

keepalive_socket_facts socket_facts(const TcpSocket &socket) {
  keepalive_direction direction = socket.listening ? KEEPALIVE_IN : socket.direction;
  const auto *local = reinterpret_cast<const sockaddr *>(&socket.local);
  const auto *peer = reinterpret_cast<const sockaddr *>(&socket.peer);
  keepalive_socket_facts facts;
  keepalive_facts_from_sockaddr(direction, socket.has_local ? local : nullptr,
                                socket.has_peer && !socket.listening ? peer : nullptr, &facts);
  return facts;
}

Outcome describe_socket(const keepalive_config &config, const TcpSocket &socket,
                        const PassOptions &options) {
  Outcome outcome;
  outcome.socket = socket;
  outcome.before_read = socket.keepalive_read;
  outcome.before = socket.keepalive;
  decide(config, options, -1, &outcome);
  return outcome;
}

Outcome pass_socket(const TargetProcess &target, const keepalive_config &config,
                    const TcpSocket &socket, const PassOptions &options) {
  if (options.mode == PassMode::kDescribe) return describe_socket(config, socket, options);
  Outcome outcome;
  outcome.socket = socket;
  outcome.before_read = socket.keepalive_read;
  outcome.before = socket.keepalive;
  if (!part_of_pass(socket, options, &outcome)) return outcome;
  bool gone = false;
  UniqueFd dup = target.duplicate_socket(socket, &outcome.error, &gone);
  if (!dup.valid()) {
    outcome.action = gone ? Action::kGone : Action::kFailed;
    return outcome;
  }
  outcome.before_read = keepalive_read_settings(dup.get(), &outcome.before) == 1;
  decide(config, options, dup.get(), &outcome);
  return outcome;
}

std::vector<TcpSocket> distinct_sockets(const std::vector<TcpSocket> &sockets,
                                        std::map<unsigned long long, std::vector<int>> *more_fds) {
  std::vector<TcpSocket> distinct;
  std::unordered_set<unsigned long long> kept;
  for (const TcpSocket &socket : sockets) {
    if (socket.inode != 0 && !kept.insert(socket.inode).second) {
      if (more_fds != nullptr) (*more_fds)[socket.inode].push_back(socket.fd);
    } else {
      distinct.push_back(socket);
    }
  }
  return distinct;
}

void pass_listing(const TargetProcess &target, const keepalive_config &config,
                  const PassOptions &options, const std::vector<TcpSocket> &sockets,
                  bool second_look, std::vector<Outcome> *outcomes) {
  std::map<unsigned long long, std::vector<int>> more_fds;
  std::unordered_set<unsigned long long> done;
  for (const Outcome &outcome : *outcomes) done.insert(outcome.socket.inode);
  for (const TcpSocket &socket : distinct_sockets(sockets, &more_fds)) {
    if (done.count(socket.inode) != 0 || (second_look && socket.inode == 0)) continue;
    Outcome outcome = pass_socket(target, config, socket, options);
    outcome.second_look = second_look;
    auto more = more_fds.find(socket.inode);
    if (more != more_fds.end()) outcome.same_socket_fds = more->second;
    outcomes->push_back(std::move(outcome));
  }
}

}  // namespace keepalive_cli
