// cmd_apply.cc — `keepalive apply PID [FLAGS] [--listeners] [--dry-run] [--json]`:
// gives the established TCP connections of a running process (and, with
// --listeners, its listening sockets) the keepalive settings the library
// would have given them, without a restart. Each socket is duplicated with
// pidfd_getfd (process.h), decided by the core exactly as the preloaded
// library decides (direction from the socket, keepalive_read_facts,
// keepalive_decide), set with keepalive_apply and read back; socket options
// belong to the socket, so the process's own descriptor is changed in place.
// Exit 0 done, 1 some socket could not be set, 2 usage or invalid
// configuration (nothing changed), 3 cannot reach the process. With
// --follow, follow.h takes over after the configuration is loaded and the
// process opened, and sets each socket with process_socket.

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>

#include <iterator>
#include <map>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "cli.h"
#include "commands.h"
#include "follow.h"
#include "process.h"

namespace {

using keepalive_cli::JsonWriter;
using keepalive_cli::settings_text;
using keepalive_cli::TcpSocket;

constexpr char kName[] = "apply";
constexpr char kUsage[] =
    "usage: keepalive apply PID [FLAGS] [--listeners] [--dry-run] [--summary|--full] [--json]"
    " [--follow [--interval D] [--verbose]]";

// Some socket could not be set, or some descriptor not examined.
constexpr int kExitSomeNotSet = keepalive_cli::kExitFailure;
constexpr int kExitNoAccess = keepalive_cli::kExitNoProcess;

// The help text around the FLAGS that ConfigFlags::usage() lists.
constexpr char kHelpHead[] =
    "Usage: keepalive apply PID [FLAGS] [--listeners] [--dry-run]\n"
    "                       [--summary|--full] [--json]\n"
    "                       [--follow [--interval DURATION] [--verbose]]\n"
    "Gives the TCP connections that process PID holds now the keepalive settings\n"
    "that libkeepalive would have given them, without restarting it. The\n"
    "configuration comes from the KEEPALIVE_* environment and FLAGS (FLAGS win),\n"
    "as for `keepalive run`.\n"
    "\n"
    "Every established TCP connection of PID is decided as the library decides:\n"
    "incoming when its local port is one the process listens on, else outgoing;\n"
    "then KEEPALIVE_RULES by direction, service port and peer, else the global\n"
    "settings. The options are set on the process's own socket (a duplicate taken\n"
    "with pidfd_getfd shares it); the process is not stopped, and nothing but TCP\n"
    "sockets is touched. A socket a rule turns `off` is left as it is: apply never\n"
    "switches keepalive off.\n"
    "As with the library, a socket whose idle time is not the kernel's default\n"
    "has had its timings chosen (by the program, or earlier) and is left alone.\n"
    "Sockets accepted while apply runs are found by a second look at the process\n"
    "and set like the others.\n"
    "\n"
    "FLAGS:\n";
constexpr char kHelpAfterFlags[] =
    "  (--log and --strict are checked like the others but change nothing here)\n"
    "\n"
    "Options:\n";

// apply's own options, in --help order; help_entry wraps each text.
struct HelpOption {
  const char *term;
  const char *text;
};
constexpr HelpOption kHelpOptions[] = {
    {"--listeners",
     "also set the listening sockets: connections accepted from now on inherit their "
     "options, even without the library (a listener cannot tell peers apart: one whose "
     "port a peer= rule decides is left alone); connections waiting in their accept "
     "queues keep the old settings: they are counted and reported as NOT COVERED"},
    {"--dry-run", "show what would be set, set nothing"},
    {"--json", "one JSON object on stdout instead of a table"},
    {"--summary",
     "counts by direction, rule and action, and the failed sockets in full (the default "
     "above 200 sockets); --full: every socket"},
    {"--follow",
     "keep following PID: set its connections now, then each new one (accepted or "
     "connected, by any means: static and Go programs too) within --interval; ends 0 "
     "when PID exits or on SIGINT/SIGTERM; with --json, one object per line"},
    {"--interval DURATION",
     "how often --follow looks for new connections (default 1s; one that lives less "
     "may be missed)"},
    {"--verbose", "with --follow, one line per connection"},
};

constexpr char kHelpTail[] =
    "\n"
    "Setting another process's socket options needs ptrace access to it: the same\n"
    "user where the ptrace policy allows it, otherwise root or CAP_SYS_PTRACE.\n"
    "Linux 5.6 or later.\n"
    "\n"
    "Exit status: 0 done (or nothing to do); 1 some socket could not be set, or some\n"
    "descriptor not examined (named on stderr; the others were set); 2 usage error or\n"
    "invalid configuration (nothing changed); 3 no such process, permission denied or\n"
    "kernel too old (nothing changed).\n"
    "\n"
    "Example (pidof does not find Prosody: its process is lua5.4):\n"
    "  sudo keepalive apply $(systemctl show -p MainPID --value prosody) \\\n"
    "      --listeners \\\n"
    "      --rules 'peer=127.0.0.0/8,::1 off; in port=5222,5223 idle=270 cnt=4; off'\n";

void print_help() {
  std::string text = kHelpHead;
  text += keepalive_cli::ConfigFlags::usage();
  text += kHelpAfterFlags;
  for (const HelpOption &option : kHelpOptions) {
    text += keepalive_cli::help_entry(option.term, option.text);
  }
  text += kHelpTail;
  fputs(text.c_str(), stdout);
}

struct Options {
  keepalive_cli::ConfigFlags flags;
  pid_t pid = 0;
  bool listeners = false;
  bool dry_run = false;
  bool json = false;
  keepalive_cli::Detail detail = keepalive_cli::Detail::kAuto;  // --summary, --full
  keepalive_cli::FollowOptions follow;
  bool interval_given = false;
};

// What happened to one socket. kActionNames (below) names each, in this
// order; kFailed stays last: the table is checked up to it.
enum class Action {
  kSet,           // options set and read back
  kWouldSet,      // --dry-run: what kSet would do
  kLeft,          // the decision is off: left as it is
  kChosen,        // its keepalive timings were chosen (keepalive_timings_chosen): left alone
  kByPeer,        // a listener whose connections a peer= rule decides: left alone
  kListener,      // a listening socket, and no --listeners
  kNotConnected,  // neither established nor listening
  kGone,          // closed (or its descriptor reused) since it was listed
  kFailed,        // a setsockopt, or reaching the socket, failed
};

struct Outcome {
  TcpSocket socket;
  std::vector<int> same_socket_fds;  // further descriptors of the very same socket
  Action action = Action::kLeft;
  bool decided = false;  // `settings` holds the core's decision
  keepalive_settings settings{};
  bool before_read = false;
  keepalive_settings before{};
  bool after_read = false;
  keepalive_settings after{};  // read back; for --dry-run, what would be read back
  std::string error;           // kFailed, kGone
  keepalive_apply_failure failure{};
  std::vector<int> peer_rules;  // listeners: rules by peer= the listener cannot honour
  bool second_look = false;     // not in the first listing: accepted (or opened) while apply ran
};

// What setting the listeners could not reach: per listener set, the
// connections waiting in its accept queue once it was set. They were
// established before, copied the listener's old options then, and are in no
// descriptor yet; the program accepts them later, with the old settings.
struct AcceptQueue {
  int fd = -1;
  std::string local;
  unsigned int waiting = 0;  // TCP_INFO's tcpi_unacked on a listening socket
};

// Reports a usage error; returns false, for parse_arguments to return.
bool usage_error(const std::string &message, int *status) {
  keepalive_cli::print_error(kName, message);
  *status = keepalive_cli::kExitUsage;
  return false;
}

// Records one of apply's own switches; false when `arg` is none of them.
bool parse_switch(std::string_view arg, Options *options) {
  if (arg == "--listeners") {
    options->listeners = true;
  } else if (arg == "--dry-run") {
    options->dry_run = true;
  } else if (arg == "--json") {
    options->json = true;
  } else if (keepalive_cli::parse_detail_option(arg, &options->detail)) {
    // --summary or --full, recorded by parse_detail_option
  } else if (arg == "--follow") {
    options->follow.follow = true;
  } else if (arg == "--verbose") {
    options->follow.verbose = true;
  } else {
    return false;
  }
  return true;
}

// --interval D or --interval=D, at argv[*index]; false with *error set when
// the duration is missing or invalid.
bool parse_interval(int argc, char **argv, int *index, Options *options, std::string *error) {
  std::string_view arg = argv[*index];
  const char *value = arg == "--interval" ? (*index + 1 < argc ? argv[++*index] : nullptr)
                                          : argv[*index] + strlen("--interval=");
  if (value == nullptr) {
    *error = "--interval needs a duration";
    return false;
  }
  if (!keepalive_cli::parse_follow_interval(value, &options->follow.interval_ms, error)) {
    return false;
  }
  options->interval_given = true;
  return true;
}

// Fills `options`; returns false when the command ends here with *status
// (help printed, or a usage error reported).
bool parse_arguments(int argc, char **argv, Options *options, int *status) {
  const char *pid_text = nullptr;
  for (int index = 1; index < argc; ++index) {
    std::string_view arg = argv[index];
    if (keepalive_cli::is_help_option(arg)) {
      print_help();
      *status = keepalive_cli::kExitOk;
      return false;
    }
    std::string error;
    auto parsed = options->flags.parse(argc, argv, &index, &error);
    if (parsed == keepalive_cli::ConfigFlags::Parse::kConsumed) continue;
    if (parsed == keepalive_cli::ConfigFlags::Parse::kError) {
      return usage_error(error + "; nothing changed", status);
    }
    if (parse_switch(arg, options)) continue;
    if (arg == "--interval" || arg.rfind("--interval=", 0) == 0) {
      if (!parse_interval(argc, argv, &index, options, &error)) return usage_error(error, status);
    } else if (arg.size() > 1 && arg[0] == '-') {
      return usage_error(std::string("unknown option ") + argv[index] + " (" + kUsage + ")",
                         status);
    } else if (pid_text == nullptr) {
      pid_text = argv[index];
    } else {
      return usage_error(std::string("one PID only, got also ") + argv[index] + " (" + kUsage + ")",
                         status);
    }
  }
  if ((options->interval_given || options->follow.verbose) && !options->follow.follow) {
    return usage_error("--interval and --verbose go with --follow", status);
  }
  options->follow.json = options->json;
  if (pid_text == nullptr) return usage_error(std::string("no PID given (") + kUsage + ")", status);
  if (!keepalive_cli::parse_pid(pid_text, &options->pid)) {
    return usage_error(
        std::string("PID must be a process ID (a positive number), not '") + pid_text + "'",
        status);
  }
  return true;
}

bool same_settings(const keepalive_settings &a, const keepalive_settings &b) {
  return a.enable == b.enable && a.idle_s == b.idle_s && a.intvl_s == b.intvl_s && a.cnt == b.cnt &&
         a.user_timeout_ms == b.user_timeout_ms;
}

// What keepalive_read_settings returns after keepalive_apply(decision) on a
// socket that reads `before`: SO_KEEPALIVE on, the values the decision sets,
// the others as they were.
keepalive_settings predicted_after(const keepalive_settings &before,
                                   const keepalive_settings &decision) {
  keepalive_settings after = before;
  after.enable = 1;
  if (decision.idle_s != KEEPALIVE_UNSET) after.idle_s = decision.idle_s;
  if (decision.intvl_s != KEEPALIVE_UNSET) after.intvl_s = decision.intvl_s;
  if (decision.cnt != KEEPALIVE_UNSET) after.cnt = decision.cnt;
  if (decision.user_timeout_ms != KEEPALIVE_UNSET) after.user_timeout_ms = decision.user_timeout_ms;
  return after;
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

// As the library: the program's own timings win (on a listener too), and a
// listener carries only settings that cannot depend on the peer. Sets the
// action and returns true when the decided socket is left as it is.
bool leave_as_it_is(const keepalive_config &config, const TcpSocket &socket,
                    const keepalive_socket_facts &facts, Outcome *outcome) {
  // A sysctl read (open, read, close): once a run, not once a socket.
  static const int kernel_idle_s = keepalive_kernel_default_idle();
  keepalive_settings listener_settings;
  if (!outcome->settings.enable) {
    outcome->action = Action::kLeft;
  } else if (outcome->before_read && keepalive_timings_chosen(&outcome->before, kernel_idle_s)) {
    outcome->action = Action::kChosen;
  } else if (socket.listening && !keepalive_decide_listener(&config, &facts, &listener_settings)) {
    outcome->action = Action::kByPeer;
  } else {
    return false;
  }
  outcome->after_read = outcome->before_read;
  outcome->after = outcome->before;
  return true;
}

// Sets the decided settings on `fd` and reads them back; with --dry-run,
// predicts what would be read back instead.
void set_decided(int fd, bool dry_run, Outcome *outcome) {
  if (dry_run) {
    outcome->action = Action::kWouldSet;
    outcome->after_read = outcome->before_read;
    outcome->after = predicted_after(outcome->before, outcome->settings);
    return;
  }
  int failures = keepalive_apply(fd, &outcome->settings, &outcome->failure);
  outcome->after_read = keepalive_read_settings(fd, &outcome->after) == 1;
  if (failures > 0) {
    outcome->action = Action::kFailed;
    outcome->error = std::string("setting ") + outcome->failure.option +
                     " failed: " + strerror(outcome->failure.error);
    if (failures > 1) outcome->error += " (and " + std::to_string(failures - 1) + " more)";
  } else {
    outcome->action = Action::kSet;
  }
}

// Decides one socket, and sets it unless `dry_run`. `socket` comes from the
// listing; the socket is read again through a fresh duplicate, which is
// closed before this returns.
Outcome process_socket(const keepalive_cli::TargetProcess &target, const keepalive_config &config,
                       const TcpSocket &socket, const Options &options) {
  Outcome outcome;
  outcome.socket = socket;
  outcome.before_read = socket.keepalive_read;
  outcome.before = socket.keepalive;
  if (socket.listening && !options.listeners) {
    outcome.action = Action::kListener;
    return outcome;
  }
  if (!socket.listening && socket.state != TCP_ESTABLISHED) {
    outcome.action = Action::kNotConnected;
    return outcome;
  }
  bool gone = false;
  keepalive_cli::UniqueFd dup = target.duplicate_socket(socket, &outcome.error, &gone);
  if (!dup.valid()) {
    outcome.action = gone ? Action::kGone : Action::kFailed;
    return outcome;
  }
  outcome.before_read = keepalive_read_settings(dup.get(), &outcome.before) == 1;

  const keepalive_socket_facts facts =
      keepalive_cli::decide_for_socket(config, socket, dup.get(), &outcome.settings);
  outcome.decided = true;
  if (socket.listening && socket.has_local) {
    outcome.peer_rules = peer_rules_a_listener_cannot_honour(
        config, keepalive_cli::port_of(socket.local), outcome.settings);
  }
  if (!leave_as_it_is(config, socket, facts, &outcome)) {
    set_decided(dup.get(), options.dry_run, &outcome);
  }
  return outcome;
}

// ---- reporting -------------------------------------------------------------

// The closing line's counts.
struct Counts {
  int set = 0, left = 0, own = 0, listeners_skipped = 0, other_skipped = 0, gone = 0, failed = 0;
};

// Each action's name in JSON and for --follow, its word in the table's
// ACTION column, and the count it adds to; in the order of enum Action.
struct ActionNames {
  Action action;
  const char *name;
  const char *text;
  int Counts::*count;
};
constexpr ActionNames kActionNames[] = {
    {Action::kSet, "set", "set", &Counts::set},
    {Action::kWouldSet, "would_set", "would set", &Counts::set},
    {Action::kLeft, "left", "left", &Counts::left},
    {Action::kChosen, "own_timings", "left", &Counts::own},
    {Action::kByPeer, "decided_by_peer", "left", &Counts::own},
    {Action::kListener, "listener_not_set", "skipped", &Counts::listeners_skipped},
    {Action::kNotConnected, "not_established", "skipped", &Counts::other_skipped},
    {Action::kGone, "gone", "gone", &Counts::gone},
    {Action::kFailed, "failed", "FAILED", &Counts::failed},
};

constexpr bool every_action_in_order() {
  for (size_t i = 0; i < std::size(kActionNames); ++i) {
    if (kActionNames[i].action != static_cast<Action>(i)) return false;
  }
  return std::size(kActionNames) == static_cast<size_t>(Action::kFailed) + 1;
}
static_assert(every_action_in_order(), "kActionNames: one entry per Action, in order");

const ActionNames &names_of(Action action) { return kActionNames[static_cast<size_t>(action)]; }

std::string rule_text(const keepalive_config &config, const Outcome &outcome) {
  if (!outcome.decided) return "-";
  if (!config.enabled) return "off (KEEPALIVE=off)";
  if (outcome.settings.rule == KEEPALIVE_RULE_GLOBAL) return "global";
  return std::to_string(outcome.settings.rule + 1) + " (" +
         config.rules[outcome.settings.rule].text + ")";
}

std::string fds_text(const Outcome &outcome) {
  std::string text = std::to_string(outcome.socket.fd);
  for (int fd : outcome.same_socket_fds) text += "," + std::to_string(fd);
  return text;
}

std::string endpoint_pair(const TcpSocket &socket) {
  std::string text = socket.has_local ? keepalive_cli::format_endpoint(socket.local) : "?";
  if (socket.has_peer) text += " <-> " + keepalive_cli::format_endpoint(socket.peer);
  return text;
}

std::string keepalive_column(const keepalive_config &config, const Outcome &outcome) {
  std::string before = settings_text(outcome.before_read, outcome.before);
  switch (outcome.action) {
    case Action::kSet:
    case Action::kWouldSet:
      return before + " -> " + settings_text(outcome.after_read, outcome.after);
    case Action::kLeft:
      return before + (config.enabled ? " (the rule says off: left as it is)"
                                      : " (KEEPALIVE=off: left as it is)");
    case Action::kChosen:
      return before + " (timings chosen by the program, or set earlier: left alone)";
    case Action::kByPeer:
      return before + " (a peer= rule decides connections on this port: each is set when " +
             "accepted, by libkeepalive if preloaded)";
    case Action::kListener:
      return before + " (listening: --listeners sets it for connections accepted from now on)";
    case Action::kNotConnected:
      return before + " (" + keepalive_cli::tcp_state_name(outcome.socket.state) +
             ": only established connections are changed)";
    case Action::kGone:
      return "(" + outcome.error + ")";
    case Action::kFailed:
      if (!outcome.decided) return before + " (" + outcome.error + ")";
      return before + " -> " + settings_text(outcome.after_read, outcome.after) + " (" +
             outcome.error + ")";
  }
  return before;
}

Counts count(const std::vector<Outcome> &outcomes) {
  Counts counts;
  for (const Outcome &outcome : outcomes) ++(counts.*names_of(outcome.action).count);
  return counts;
}

std::string plural(int n, const char *one, const char *many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

// Items (listening addresses) grouped by a key, in order of first appearance.
using Grouped = std::vector<std::pair<std::string, std::vector<std::string>>>;

void add_to_group(Grouped *groups, const std::string &key, const std::string &item) {
  for (auto &[existing, items] : *groups) {
    if (existing == key) {
      items.push_back(item);
      return;
    }
  }
  groups->push_back({key, {item}});
}

std::string joined(const std::vector<std::string> &items) {
  std::string text;
  for (size_t i = 0; i < items.size(); ++i) text += (i == 0 ? "" : ", ") + items[i];
  return text;
}

// The summary of many sockets: a count per direction, rule and action, then
// the sockets that failed, in full.
std::vector<std::vector<std::string>> summary_keys(const keepalive_config &config,
                                                   const std::vector<Outcome> &outcomes) {
  std::vector<std::vector<std::string>> keys;
  for (const Outcome &outcome : outcomes) {
    keys.push_back({keepalive_cli::direction_name(outcome.socket), rule_text(config, outcome),
                    names_of(outcome.action).text});
  }
  return keys;
}

// The cells that name a socket and its rule, first in every row of a table.
std::vector<std::string> socket_cells(const keepalive_config &config, const Outcome &outcome) {
  const TcpSocket &socket = outcome.socket;
  return {fds_text(outcome), keepalive_cli::direction_name(socket),
          socket.has_local ? keepalive_cli::format_endpoint(socket.local) : "-",
          socket.has_peer ? keepalive_cli::format_endpoint(socket.peer) : "-",
          rule_text(config, outcome)};
}

std::string summary_tables(const keepalive_config &config, const std::vector<Outcome> &outcomes) {
  std::string out =
      "Summary (--full shows every socket):\n" +
      keepalive_cli::summary_table({"DIR", "RULE", "ACTION"}, summary_keys(config, outcomes));
  std::vector<std::vector<std::string>> failed = {{"FD", "DIR", "LOCAL", "PEER", "RULE", "ERROR"}};
  for (const Outcome &outcome : outcomes) {
    if (outcome.action != Action::kFailed) continue;
    failed.push_back(socket_cells(config, outcome));
    failed.back().push_back(outcome.error);
  }
  if (failed.size() > 1) out += "\nFailed:\n" + keepalive_cli::format_table(failed);
  return out;
}

// Every socket, one row each (--full).
std::string socket_table(const keepalive_config &config, const std::vector<Outcome> &outcomes) {
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"FD", "DIR", "LOCAL", "PEER", "RULE", "ACTION", "KEEPALIVE BEFORE -> AFTER"});
  for (const Outcome &outcome : outcomes) {
    rows.push_back(socket_cells(config, outcome));
    rows.back().push_back(names_of(outcome.action).text);
    rows.back().push_back(keepalive_column(config, outcome));
  }
  return keepalive_cli::format_table(rows);
}

// What the table cannot say in a cell: what connections accepted from now on
// inherit from the listeners set; listeners with the same settings share one
// line.
std::string listener_notes(bool dry_run, const std::vector<Outcome> &outcomes) {
  Grouped inherited;
  for (const Outcome &outcome : outcomes) {
    if (!outcome.socket.listening) continue;
    if (outcome.action == Action::kSet || outcome.action == Action::kWouldSet) {
      add_to_group(&inherited, settings_text(outcome.after_read, outcome.after),
                   keepalive_cli::format_endpoint(outcome.socket.local));
    }
  }
  std::string notes;
  for (const auto &[settings, locals] : inherited) {
    notes += (locals.size() == 1 ? "Listening socket " : "Listening sockets ") + joined(locals) +
             (dry_run              ? " would be"
              : locals.size() == 1 ? " is"
                                   : " are") +
             " set: connections accepted from now on inherit " + settings +
             ", even without libkeepalive.\n";
  }
  return notes;
}

// The closing line: how many sockets were set, left, skipped, gone, failed.
std::string totals_line(const keepalive_config &config, bool dry_run, const Counts &counts) {
  std::vector<std::string> parts;
  parts.push_back(plural(counts.set, "socket", "sockets") + (dry_run ? " would be set" : " set"));
  if (counts.left > 0) {
    parts.push_back(std::to_string(counts.left) +
                    (config.enabled ? " left as the rules say" : " left as they are"));
  }
  if (counts.own > 0) parts.push_back(std::to_string(counts.own) + " left alone");
  if (counts.listeners_skipped > 0) {
    parts.push_back(plural(counts.listeners_skipped, "listening socket", "listening sockets") +
                    " skipped (--listeners)");
  }
  if (counts.other_skipped > 0) {
    parts.push_back(std::to_string(counts.other_skipped) + " not established, skipped");
  }
  if (counts.gone > 0) parts.push_back(std::to_string(counts.gone) + " closed meanwhile");
  if (counts.failed > 0) parts.push_back(std::to_string(counts.failed) + " FAILED");
  return joined(parts) + ".\n";
}

std::string text_report(const keepalive_cli::TargetProcess &target, const std::string &command,
                        const keepalive_config &config, const Options &options,
                        const std::vector<Outcome> &outcomes,
                        const keepalive_cli::Unexamined &unexamined) {
  std::string out = "Process " + std::to_string(target.pid());
  if (!command.empty()) out += " (" + command + ")";
  out += ": " + (outcomes.empty()
                     ? std::string("no TCP sockets")
                     : plural(static_cast<int>(outcomes.size()), "TCP socket", "TCP sockets"));
  if (options.dry_run) out += "; dry run, nothing is changed";
  out += "\n";
  if (!config.enabled) {
    out += "KEEPALIVE is off in this configuration: every socket is left as it is.\n";
  }
  std::string not_examined = keepalive_cli::unexamined_text(unexamined);
  if (!not_examined.empty()) not_examined += "; they may be TCP connections, not set.\n";
  if (outcomes.empty()) {
    return out + (not_examined.empty() ? "Nothing to do.\n" : "\n" + not_examined);
  }
  out += "\n";
  out += keepalive_cli::use_summary(options.detail, outcomes.size())
             ? summary_tables(config, outcomes)
             : socket_table(config, outcomes);
  std::string notes = listener_notes(options.dry_run, outcomes);
  if (!notes.empty()) out += "\n" + notes;
  return out + "\n" + totals_line(config, options.dry_run, count(outcomes)) + not_examined;
}

// "decision": the core's settings and the rule that chose them, or null.
void decision_json(JsonWriter *json, const keepalive_config &config, const Outcome &outcome) {
  json->key("decision");
  if (!outcome.decided) {
    json->null();
    return;
  }
  const bool global = outcome.settings.rule == KEEPALIVE_RULE_GLOBAL;
  json->begin_object();
  json->key("rule");
  if (global) {
    json->null();
  } else {
    json->number(static_cast<long long>(outcome.settings.rule + 1));
  }
  json->key("rule_text");
  if (global) {
    json->null();
  } else {
    json->string(config.rules[outcome.settings.rule].text);
  }
  json->field("enable", outcome.settings.enable != 0);
  json->optional_field("idle_s", outcome.settings.idle_s);
  json->optional_field("intvl_s", outcome.settings.intvl_s);
  json->optional_field("cnt", outcome.settings.cnt);
  json->optional_field("user_timeout_ms", outcome.settings.user_timeout_ms);
  json->end_object();
}

// One entry of "sockets".
void socket_json(JsonWriter *json, const keepalive_config &config, const Outcome &outcome) {
  const TcpSocket &socket = outcome.socket;
  json->begin_object();
  json->field("fd", socket.fd);
  json->key("same_socket_fds").begin_array();
  for (int fd : outcome.same_socket_fds) json->number(static_cast<long long>(fd));
  json->end_array();
  keepalive_cli::socket_identity_json(json, socket);
  json->field("action", names_of(outcome.action).name);
  decision_json(json, config, outcome);
  keepalive_cli::socket_settings_json(json, "before", outcome.before_read, outcome.before);
  if (outcome.action == Action::kGone) {
    json->key("after").null();
  } else {
    keepalive_cli::socket_settings_json(json, "after", outcome.after_read, outcome.after);
  }
  json->field(
      "inherited_by_new_connections",
      socket.listening && (outcome.action == Action::kSet || outcome.action == Action::kWouldSet));
  json->field("second_look", outcome.second_look);
  json->key("peer_rules_not_honoured").begin_array();
  for (int rule : outcome.peer_rules) json->number(static_cast<long long>(rule + 1));
  json->end_array();
  json->optional_field("error", outcome.error);
  json->end_object();
}

// "summary": the counts of the text report's closing line.
void totals_json(JsonWriter *json, bool dry_run, const std::vector<Outcome> &outcomes,
                 const keepalive_cli::Unexamined &unexamined) {
  Counts counts = count(outcomes);
  json->key("summary").begin_object();
  json->field("sockets", static_cast<int>(outcomes.size()));
  json->field(dry_run ? "would_set" : "set", counts.set);
  json->field("left", counts.left + counts.own);
  json->field("skipped", counts.listeners_skipped + counts.other_skipped);
  json->field("gone", counts.gone);
  json->field("failed", counts.failed);
  json->field("unexamined", static_cast<int>(unexamined.fds.size()));
  json->end_object();
}

void accept_queues_json(JsonWriter *json, const std::vector<AcceptQueue> &queues) {
  json->key("accept_queues").begin_array();
  for (const AcceptQueue &queue : queues) {
    json->begin_object();
    json->field("fd", queue.fd);
    json->field("local", queue.local);
    json->field("waiting_not_covered", static_cast<long long>(queue.waiting));
    json->end_object();
  }
  json->end_array();
}

std::string json_report(const keepalive_cli::TargetProcess &target, const std::string &command,
                        const keepalive_config &config, const Options &options,
                        const std::vector<Outcome> &outcomes,
                        const keepalive_cli::Unexamined &unexamined,
                        const std::vector<AcceptQueue> &queues) {
  JsonWriter json;
  json.begin_object();
  json.field("pid", static_cast<long long>(target.pid()));
  json.field("command", command);
  json.field("dry_run", options.dry_run);
  json.field("listeners", options.listeners);
  json.field("enabled", config.enabled != 0);
  // A summary: the groups, and only the failed sockets in "sockets".
  const bool summary = keepalive_cli::use_summary(options.detail, outcomes.size());
  keepalive_cli::summary_json(&json, summary, {"direction", "rule", "action"},
                              summary_keys(config, outcomes));
  json.key("sockets").begin_array();
  for (const Outcome &outcome : outcomes) {
    if (!summary || outcome.action == Action::kFailed) socket_json(&json, config, outcome);
  }
  json.end_array();
  totals_json(&json, options.dry_run, outcomes, unexamined);
  keepalive_cli::unexamined_json(&json, unexamined);
  accept_queues_json(&json, queues);
  json.end_object();
  return json.str();
}

// process_socket's outcome as --follow reports it.
keepalive_cli::SocketReport follow_report(const keepalive_config &config, const Outcome &outcome) {
  keepalive_cli::SocketReport report;
  report.action = names_of(outcome.action).name;
  report.rule = rule_text(config, outcome);
  report.keepalive = keepalive_column(config, outcome);
  report.before_read = outcome.before_read;
  report.before = outcome.before;
  report.after_read = outcome.after_read;
  report.after = outcome.after;
  report.error = outcome.error;
  return report;
}

// One entry per socket: a socket the process holds under several
// descriptors (dup, inherited stdin/stdout) is decided and set once.
std::vector<TcpSocket> distinct_sockets(const std::vector<TcpSocket> &sockets,
                                        std::map<unsigned long long, std::vector<int>> *more_fds) {
  std::vector<TcpSocket> distinct;
  std::unordered_set<unsigned long long> kept;
  for (const TcpSocket &socket : sockets) {
    if (socket.inode != 0 && !kept.insert(socket.inode).second) {
      (*more_fds)[socket.inode].push_back(socket.fd);
    } else {
      distinct.push_back(socket);
    }
  }
  return distinct;
}

// The accept queue of each listener that was set, read after setting it.
std::vector<AcceptQueue> accept_queues(const keepalive_cli::TargetProcess &target,
                                       const std::vector<Outcome> &outcomes) {
  std::vector<AcceptQueue> queues;
  for (const Outcome &outcome : outcomes) {
    if (!outcome.socket.listening || outcome.action != Action::kSet) continue;
    std::string error;
    keepalive_cli::UniqueFd dup = target.duplicate_socket(outcome.socket, &error);
    tcp_info info{};
    socklen_t length = sizeof info;
    if (!dup.valid() || getsockopt(dup.get(), IPPROTO_TCP, TCP_INFO, &info, &length) != 0) {
      continue;
    }
    AcceptQueue queue;
    queue.fd = outcome.socket.fd;
    queue.local = keepalive_cli::format_endpoint(outcome.socket.local);
    queue.waiting = info.tcpi_unacked;
    queues.push_back(queue);
  }
  return queues;
}

// Decides and sets each socket of a listing once, however many descriptors
// hold it, and appends the outcomes. A second look skips the sockets
// `outcomes` holds already, and those it cannot tell apart (no inode).
void process_listing(const keepalive_cli::TargetProcess &target, const keepalive_config &config,
                     const Options &options, const std::vector<TcpSocket> &sockets,
                     bool second_look, std::vector<Outcome> *outcomes) {
  std::map<unsigned long long, std::vector<int>> more_fds;
  std::unordered_set<unsigned long long> done;
  for (const Outcome &outcome : *outcomes) done.insert(outcome.socket.inode);
  for (const TcpSocket &socket : distinct_sockets(sockets, &more_fds)) {
    if (done.count(socket.inode) != 0 || (second_look && socket.inode == 0)) continue;
    Outcome outcome = process_socket(target, config, socket, options);
    outcome.second_look = second_look;
    auto more = more_fds.find(socket.inode);
    if (more != more_fds.end()) outcome.same_socket_fds = more->second;
    outcomes->push_back(std::move(outcome));
  }
}

// A second look at the process, after the first pass (and after the
// listeners were set): the sockets it accepted or opened meanwhile landed on
// descriptors the first pass did not see. They are decided and set like the
// others; what is accepted after this look inherits from the listeners.
void second_look(const keepalive_cli::TargetProcess &target, const keepalive_config &config,
                 const Options &options, std::vector<Outcome> *outcomes) {
  std::vector<TcpSocket> sockets;
  keepalive_cli::Unexamined unexamined;  // reported by the first look
  std::string error;
  if (!target.read_tcp_sockets(&sockets, &unexamined, &error)) return;
  process_listing(target, config, options, sockets, true, outcomes);
}

// The notes on what the run could not cover, for the text report.
std::string coverage_notes(const std::vector<Outcome> &outcomes,
                           const std::vector<AcceptQueue> &queues) {
  std::string notes;
  int late = 0;
  for (const Outcome &outcome : outcomes) late += outcome.second_look ? 1 : 0;
  if (late > 0) {
    notes += plural(late, "socket", "sockets") +
             " accepted or opened while apply ran (not in the first listing) " +
             (late == 1 ? "was" : "were") +
             " found by a second look and handled like the others.\n";
  }
  for (const AcceptQueue &queue : queues) {
    if (queue.waiting == 0) continue;
    notes +=
        "NOT COVERED: " + plural(static_cast<int>(queue.waiting), "connection", "connections") +
        " waiting in the accept queue of " + queue.local +
        " after it was set: established before, they keep the old settings when the "
        "program accepts them; run apply again once they are accepted.\n";
  }
  return notes;
}

// Prints the configuration's problems (it is invalid: returns false) or its
// warnings.
bool config_is_valid(const keepalive_config &config, const keepalive_cli::ConfigFlags &flags) {
  if (!config.valid) {
    keepalive_cli::print_invalid_configuration(kName, "nothing changed", config, flags);
    return false;
  }
  for (const std::string &warning : keepalive_cli::describe_warnings(config)) {
    keepalive_cli::print_error(kName, "warning: " + warning);
  }
  return true;
}

// Names on stderr what was not set (or that the process exited meanwhile),
// and returns the exit status.
int report_not_set(pid_t pid, const std::vector<Outcome> &outcomes,
                   const keepalive_cli::Unexamined &unexamined, bool exited) {
  if (exited) {
    keepalive_cli::print_error(
        kName, "process " + std::to_string(pid) + " exited while it was being changed");
    return kExitNoAccess;
  }
  int failed = 0;
  for (const Outcome &outcome : outcomes) {
    if (outcome.action != Action::kFailed) continue;
    ++failed;
    keepalive_cli::print_error(kName, "fd " + fds_text(outcome) + " (" +
                                          endpoint_pair(outcome.socket) +
                                          "): not set: " + outcome.error);
  }
  if (!unexamined.fds.empty()) {
    keepalive_cli::print_error(kName, keepalive_cli::unexamined_text(unexamined) +
                                          "; they may be TCP connections, not set");
  }
  if (failed > 0) {
    keepalive_cli::print_error(
        kName, std::to_string(failed) + " of " + std::to_string(outcomes.size()) +
                   " TCP sockets could not be set" +
                   (failed < static_cast<int>(outcomes.size()) ? "; the others are as shown" : ""));
    return kExitSomeNotSet;
  }
  return unexamined.fds.empty() ? keepalive_cli::kExitOk : kExitSomeNotSet;
}

}  // namespace

int keepalive_cmd_apply(int argc, char **argv) {
  Options options;
  int status = keepalive_cli::kExitOk;
  if (!parse_arguments(argc, argv, &options, &status)) return status;

  // The configuration first: when it is invalid, the process is not even opened.
  keepalive_cli::LoadedConfig loaded = keepalive_cli::load_config(options.flags);
  const keepalive_config &config = *loaded.config;
  if (!config_is_valid(config, options.flags)) return keepalive_cli::kExitUsage;

  keepalive_cli::TargetProcess target;
  std::string error;
  if (!target.open(options.pid, &error)) {
    keepalive_cli::print_error(kName, error + "; nothing changed");
    return kExitNoAccess;
  }
  if (options.follow.follow) {
    return keepalive_cli::follow_process(
        target, options.follow,
        [&](const keepalive_cli::TargetProcess &process, const TcpSocket &socket) {
          return follow_report(config, process_socket(process, config, socket, options));
        });
  }
  std::vector<TcpSocket> sockets;
  keepalive_cli::Unexamined unexamined;
  if (!target.read_tcp_sockets(&sockets, &unexamined, &error)) {
    keepalive_cli::print_error(kName, error + "; nothing changed");
    return kExitNoAccess;
  }
  std::vector<Outcome> outcomes;
  process_listing(target, config, options, sockets, false, &outcomes);
  std::vector<AcceptQueue> queues;
  if (!options.dry_run) {
    queues = accept_queues(target, outcomes);
    second_look(target, config, options, &outcomes);
  }
  std::string command = target.command_name();
  bool exited = target.exited();

  std::string report =
      options.json ? json_report(target, command, config, options, outcomes, unexamined, queues)
                   : text_report(target, command, config, options, outcomes, unexamined) +
                         coverage_notes(outcomes, queues);
  fputs(report.c_str(), stdout);
  fflush(stdout);
  return report_not_set(options.pid, outcomes, unexamined, exited);
}
