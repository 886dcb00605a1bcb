// apply.cc — `keepalive apply PID [FLAGS] [--listeners] [--dry-run] [--json]`:
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

#include "apply/follow.h"
#include "commands.h"
#include "lib/cli.h"
#include "lib/options.h"
#include "lib/output.h"
#include "lib/process.h"
#include "lib/socket_pass.h"
#include "lib/socket_report.h"

namespace {

using keepalive_cli::Action;
using keepalive_cli::joined;
using keepalive_cli::JsonWriter;
using keepalive_cli::Outcome;
using keepalive_cli::PassOptions;
using keepalive_cli::plural;
using keepalive_cli::rule_text;
using keepalive_cli::settings_text;
using keepalive_cli::socket_cells;
using keepalive_cli::TcpSocket;

constexpr char kName[] = "apply";
// Some socket could not be set, or some descriptor not examined.
constexpr int kExitSomeNotSet = keepalive_cli::kExitFailure;
constexpr int kExitNoAccess = keepalive_cli::kExitNoProcess;

// The help text around the FLAGS that ConfigFlags::usage() lists.
constexpr char kHelpHead[] =
    "Usage: keepalive apply PID [FLAGS] [--listeners [--exact-listeners]]\n"
    "                       [--override] [--dry-run]\n"
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
    "(of the process's network namespace, now) has had its timings chosen (by the\n"
    "program, or earlier) and is left alone; --override sets it too.\n"
    "Sockets accepted while apply runs are found by a second look at the process\n"
    "and set like the others.\n"
    "\n"
    "FLAGS:\n";
constexpr char kHelpAfterFlags[] =
    "  (--log and --strict are checked like the others but change nothing here)\n"
    "\n"
    "Options:\n";

// apply's own options, in --help order.
const std::vector<keepalive_cli::Option> kOptions = {
    {"--listeners", nullptr,
     "also set the listening sockets: connections accepted from now on inherit their "
     "options, even without the library (a listener cannot tell peers apart: one whose "
     "port a peer= rule decides is left alone); connections waiting in their accept "
     "queues keep the old settings: they are counted and reported as NOT COVERED"},
    {"--exact-listeners", nullptr,
     "set a listener only when every connection it accepts gets exactly its settings: "
     "without this, a listener whose port a peer= rule decides for some peers is set when "
     "that rule asks less (off, or longer timings), and those peers get its values too"},
    {"--override", nullptr,
     "also set the sockets whose timings the program chose itself (a Go program sets 15 s "
     "on every connection): each is reported as overridden, with its values before"},
    {"--dry-run", nullptr, "show what would be set, set nothing"},
    {"--json", nullptr, "one JSON object on stdout instead of a table"},
    {"--summary", nullptr,
     "counts by direction, rule and action, and the failed sockets in full (the default "
     "above 200 sockets); --full: every socket"},
    {"--full", nullptr, nullptr},
    {"--follow", nullptr,
     "keep following PID: set its connections now, then each new one (accepted or "
     "connected, by any means: static and Go programs too) within --interval; ends 0 "
     "when PID exits or on SIGINT/SIGTERM; with --json, one object per line"},
    {"--interval", "DURATION",
     "how often --follow looks for new connections (default 1s; one that lives less "
     "may be missed)"},
    {"--verbose", nullptr, "with --follow, one line per connection"},
};

constexpr char kHelpTail[] =
    "\n"
    "Setting another process's socket options needs ptrace access to it: the same\n"
    "user where the ptrace policy allows it, otherwise root or CAP_SYS_PTRACE.\n"
    "Linux 5.6 or later.\n"
    "\n"
    "Exit status: 0 done (or nothing to do); 1 some socket could not be set, some\n"
    "descriptor not examined, or some connection waiting in an accept queue not\n"
    "covered (named on stderr; the others were set); 2 usage error or\n"
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
  text += keepalive_cli::options_help(kOptions);
  text += kHelpTail;
  fputs(text.c_str(), stdout);
}

struct Options {
  keepalive_cli::ConfigFlags flags;
  pid_t pid = 0;
  bool listeners = false;
  bool override = false;
  bool exact_listeners = false;
  bool dry_run = false;
  bool json = false;
  keepalive_cli::Detail detail = keepalive_cli::Detail::kAuto;  // --summary, --full
  keepalive_cli::FollowOptions follow;
  bool interval_given = false;
  const keepalive_config *replaced = nullptr;  // enable --now: the drop-in it replaces
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

// Records one of apply's options; false after a usage error.
bool take_option(const keepalive_cli::OptionReader &reader, Options *options) {
  std::string error;
  if (reader.is("--listeners")) {
    options->listeners = true;
  } else if (reader.is("--override")) {
    options->override = true;
  } else if (reader.is("--exact-listeners")) {
    options->exact_listeners = true;
  } else if (reader.is("--dry-run")) {
    options->dry_run = true;
  } else if (reader.is("--json")) {
    options->json = true;
  } else if (reader.is("--follow")) {
    options->follow.follow = true;
  } else if (reader.is("--verbose")) {
    options->follow.verbose = true;
  } else if (reader.is("--interval")) {
    options->interval_given = true;
    if (!keepalive_cli::parse_follow_interval(reader.value(), &options->follow.interval_ms,
                                              &error)) {
      return reader.usage_error(error);
    }
  } else {
    keepalive_cli::parse_detail_option(reader.name(), &options->detail);  // --summary, --full
  }
  return true;
}

// Fills `options`; returns false when the command ends here with *status
// (help printed, or a usage error reported).
bool parse_arguments(int argc, char **argv, Options *options, int *status) {
  keepalive_cli::OptionReader reader(kName, argc, argv, kOptions, &options->flags,
                                     "nothing changed");
  const char *pid_text = nullptr;
  auto take = [&](keepalive_cli::OptionReader::Kind kind) {
    return kind == keepalive_cli::OptionReader::kOption ? take_option(reader, options)
                                                        : reader.take_operand("PID", &pid_text);
  };
  if (!reader.read_all(print_help, take, status)) return false;
  options->follow.json = options->json;
  *status = keepalive_cli::kExitUsage;
  if ((options->interval_given || options->follow.verbose) && !options->follow.follow) {
    return reader.usage_error("--interval and --verbose go with --follow");
  }
  return reader.pid_operand(pid_text, &options->pid);
}

// The summary of many sockets: a count per direction, rule and action, then
// the sockets that failed, in full.
std::vector<std::vector<std::string>> summary_keys(const keepalive_config &config,
                                                   const std::vector<Outcome> &outcomes) {
  std::vector<std::vector<std::string>> keys;
  for (const Outcome &outcome : outcomes) {
    keys.push_back({keepalive_cli::direction_name(outcome.socket), rule_text(config, outcome),
                    keepalive_cli::action_info(outcome.action).word});
  }
  return keys;
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
    rows.back().push_back(keepalive_cli::action_info(outcome.action).word);
    rows.back().push_back(keepalive_cli::keepalive_column(config, outcome));
  }
  return keepalive_cli::format_table(rows);
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

// What the table cannot say in a cell: what connections accepted from now on
// inherit from the listeners set; listeners with the same settings share one
// line.
std::string listener_notes(bool dry_run, const std::vector<Outcome> &outcomes) {
  Grouped inherited;
  for (const Outcome &outcome : outcomes) {
    if (!outcome.socket.listening) continue;
    if (keepalive_cli::action_info(outcome.action).group == keepalive_cli::Group::kChanged) {
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
  return out + "\n" +
         keepalive_cli::totals_line(config, options.dry_run, keepalive_cli::count(outcomes)) +
         not_examined;
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
    if (summary && outcome.action != Action::kFailed) continue;
    json.begin_object();
    keepalive_cli::socket_json_fields(&json, config, outcome);
    json.end_object();
  }
  json.end_array();
  // "summary": the counts of the text report's closing line.
  json.key("summary").begin_object();
  keepalive_cli::totals_json_fields(&json, options.dry_run, keepalive_cli::count(outcomes));
  json.field("unexamined", static_cast<int>(unexamined.fds.size()));
  json.end_object();
  keepalive_cli::unexamined_json(&json, unexamined);
  accept_queues_json(&json, queues);
  json.end_object();
  return json.str();
}

// The accept queue of each listener that carries the decision (set now, or
// by an earlier run and so left alone), read after setting it.
std::vector<AcceptQueue> accept_queues(const keepalive_cli::TargetProcess &target,
                                       const std::vector<Outcome> &outcomes) {
  std::vector<AcceptQueue> queues;
  for (const Outcome &outcome : outcomes) {
    const bool carries = outcome.decided && outcome.after_read &&
                         keepalive_settings_carry(&outcome.after, &outcome.settings);
    if (!outcome.socket.listening || !carries) continue;
    std::string error;
    keepalive_cli::UniqueFd dup = target.duplicate_socket(outcome.socket, &error);
    tcp_info info{};
    socklen_t length = sizeof info;
    // An invalid duplicate fails here too (EBADF): its queue is not shown.
    if (getsockopt(dup.get(), IPPROTO_TCP, TCP_INFO, &info, &length) != 0) continue;
    AcceptQueue queue;
    queue.fd = outcome.socket.fd;
    queue.local = keepalive_cli::format_endpoint(outcome.socket.local);
    queue.waiting = info.tcpi_unacked;
    queues.push_back(queue);
  }
  return queues;
}

// A second look at the process, after the first pass (and after the
// listeners were set): the sockets it accepted or opened meanwhile landed on
// descriptors the first pass did not see. They are decided and set like the
// others; what is accepted after this look inherits from the listeners.
void second_look(const keepalive_cli::TargetProcess &target, const keepalive_config &config,
                 const PassOptions &pass, std::vector<Outcome> *outcomes) {
  std::vector<TcpSocket> sockets;
  keepalive_cli::Unexamined unexamined;  // reported by the first look
  std::string error;
  if (!target.read_tcp_sockets(&sockets, &unexamined, &error)) return;
  keepalive_cli::pass_listing(target, config, pass, sockets, true, outcomes);
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
        "program accepts them; run apply again once they are accepted: it sets them.\n";
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
                   const keepalive_cli::Unexamined &unexamined,
                   const std::vector<AcceptQueue> &queues, bool exited) {
  if (exited) {
    keepalive_cli::print_error(
        kName, "process " + std::to_string(pid) + " exited while it was being changed");
    return kExitNoAccess;
  }
  int failed = 0;
  for (const Outcome &outcome : outcomes) {
    if (outcome.action != Action::kFailed) continue;
    ++failed;
    keepalive_cli::print_error(kName, "fd " + keepalive_cli::fds_text(outcome) + " (" +
                                          keepalive_cli::endpoint_pair(outcome.socket) +
                                          "): not set: " + outcome.error);
  }
  if (!unexamined.fds.empty()) {
    keepalive_cli::print_error(kName, keepalive_cli::unexamined_text(unexamined) +
                                          "; they may be TCP connections, not set");
  }
  unsigned waiting = 0;
  for (const AcceptQueue &queue : queues) waiting += queue.waiting;
  if (waiting > 0) {
    keepalive_cli::print_error(
        kName, plural(static_cast<int>(waiting), "connection", "connections") +
                   " waiting in accept queues keep the old settings (NOT COVERED); run apply "
                   "again once the program has accepted them");
  }
  if (failed > 0) {
    keepalive_cli::print_error(
        kName, std::to_string(failed) + " of " + std::to_string(outcomes.size()) +
                   " TCP sockets could not be set" +
                   (failed < static_cast<int>(outcomes.size()) ? "; the others are as shown" : ""));
    return kExitSomeNotSet;
  }
  return unexamined.fds.empty() && waiting == 0 ? keepalive_cli::kExitOk : kExitSomeNotSet;
}

}  // namespace

namespace {

// apply on a process, once the configuration is loaded and valid.
int apply_to_process(const keepalive_config &config, const Options &options) {
  keepalive_cli::TargetProcess target;
  std::string error;
  if (!target.open(options.pid, &error)) {
    keepalive_cli::print_error(kName, error + "; nothing changed");
    return kExitNoAccess;
  }
  PassOptions pass = keepalive_cli::pass_options(
      options.dry_run ? keepalive_cli::PassMode::kPredict : keepalive_cli::PassMode::kSet,
      options.listeners, options.pid);
  pass.override = options.override;
  pass.exact_listeners = options.exact_listeners;
  pass.replaced = options.replaced;
  if (options.follow.follow) {
    return keepalive_cli::follow_process(target, config, pass, options.follow);
  }
  std::vector<TcpSocket> sockets;
  keepalive_cli::Unexamined unexamined;
  if (!target.read_tcp_sockets(&sockets, &unexamined, &error)) {
    keepalive_cli::print_error(kName, error + "; nothing changed");
    return kExitNoAccess;
  }
  std::vector<Outcome> outcomes;
  keepalive_cli::pass_listing(target, config, pass, sockets, false, &outcomes);
  std::vector<AcceptQueue> queues;
  if (!options.dry_run) {
    queues = accept_queues(target, outcomes);
    second_look(target, config, pass, &outcomes);
  }
  std::string command = target.command_name();
  bool exited = target.exited();

  std::string report =
      options.json ? json_report(target, command, config, options, outcomes, unexamined, queues)
                   : text_report(target, command, config, options, outcomes, unexamined) +
                         coverage_notes(outcomes, queues);
  fputs(report.c_str(), stdout);
  fflush(stdout);
  return report_not_set(options.pid, outcomes, unexamined, queues, exited);
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
  return apply_to_process(config, options);
}

int keepalive_apply_now(const keepalive_config &config, pid_t pid, const ApplyNow &now) {
  Options options;
  options.pid = pid;
  options.listeners = true;
  options.dry_run = now.dry_run;
  options.override = now.override;
  options.exact_listeners = now.exact_listeners;
  options.replaced = now.replaced;
  fflush(stdout);
  int status = apply_to_process(config, options);
  fflush(stdout);
  return status;
}
