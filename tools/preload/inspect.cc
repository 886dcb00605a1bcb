// inspect.cc — `keepalive inspect PID [--summary|--full] [--json]`: a running process's TCP
// sockets with state, addresses, direction and keepalive settings (read via
// pidfd_getfd + getsockopt, process.h), whether libkeepalive is mapped in it,
// its KEEPALIVE_* environment and whether the core accepts that environment.
// Whether the library could reach its sockets at all (a Go program's, never).
// Exit 0 shown, 1 shown but some descriptors not examined, 2 usage, 3 cannot
// inspect (no such process, permission, kernel).

#include <stdio.h>
#include <string.h>

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "commands.h"
#include "kernel/bpf.h"
#include "lib/cli.h"
#include "lib/options.h"
#include "lib/output.h"
#include "lib/process.h"
#include "lib/program.h"
#include "lib/socket_pass.h"
#include "lib/socket_report.h"

namespace {

using keepalive_cli::JsonWriter;
using keepalive_cli::settings_text;
using keepalive_cli::TcpSocket;
using Environment = std::vector<std::pair<std::string, std::string>>;

constexpr char kName[] = "inspect";

const std::vector<keepalive_cli::Option> kOptions = {
    {"--json", nullptr, "one JSON object on stdout instead of a table"},
    {"--summary", nullptr,
     "counts by state, direction and keepalive settings instead of one line per socket "
     "(the default above 200 sockets); --full: every socket"},
    {"--full", nullptr, nullptr},
};

void print_help() {
  std::string text =
      "Usage: keepalive inspect PID [--summary|--full] [--json]\n"
      "Shows the TCP sockets of process PID with their state, local and peer address,\n"
      "direction (in: local port is one the process listens on) and keepalive settings\n"
      "as the kernel reports them; whether libkeepalive is loaded in the process; and\n"
      "its KEEPALIVE_* environment as it was when the process started.\n"
      "With the library loaded, a socket whose timings were chosen says why the\n"
      "library leaves it alone.\n"
      "\n"
      "Reading another process's sockets needs ptrace access to it (pidfd_getfd): the\n"
      "same user where the ptrace policy allows it, otherwise root or CAP_SYS_PTRACE.\n"
      "\n";
  text += keepalive_cli::options_help(kOptions);
  text +=
      "\n"
      "Exit status: 0 shown; 1 shown, but some descriptors could not be examined\n"
      "(named); 2 usage error; 3 no such process, permission denied or kernel too old\n"
      "(Linux 5.6 is needed).\n"
      "\n"
      "Example: keepalive inspect $(systemctl show -p MainPID --value prosody)\n";
  fputs(text.c_str(), stdout);
}

// What is known about the process besides its sockets; each part may be
// unavailable (error set) without making the inspection fail.
struct ProcessFacts {
  std::string command;
  bool maps_read = false;
  std::vector<std::string> libraries;
  std::string maps_error;
  bool environment_read = false;
  Environment environment;
  std::string environment_error;
  std::unique_ptr<keepalive_config> config;  // from its environment, when read
  std::string program;                       // its program file, /proc/PID/exe
  bool program_read = false;
  keepalive_cli::ProgramFacts program_facts;
  std::string obstacle;  // why the library cannot reach its sockets, or ""
  keepalive_cli::Unexamined unexamined;
  keepalive_cli::PassOptions pass;  // the kernel's defaults, read once for left_alone_reason
  // Kernel mode: our sock_ops programs on its cgroup or an ancestor.
  bool kernel_read = false;
  std::vector<keepalive_kernel::Applying> kernel;
  std::string kernel_error;
};

// Why libkeepalive (loaded, with a valid configuration) leaves this socket
// as it is, or "" when it does not: its idle time is not the kernel's
// default, so its timings were chosen — by the program, or by the library
// (on its listener, or before its connect) when it carries the library's
// decision.
std::string left_alone_reason(const ProcessFacts &facts, const TcpSocket &socket) {
  if (facts.config == nullptr || facts.libraries.empty() || !facts.config->enabled ||
      !socket.keepalive_read) {
    return "";
  }
  switch (keepalive_cli::describe_socket(*facts.config, socket, facts.pass).action) {
    case keepalive_cli::Action::kCarries:
      return socket.listening ? "libkeepalive's: accepted sockets inherit them"
                              : "libkeepalive's (set once, then left alone)";
    case keepalive_cli::Action::kOwnTimings:
      return "the program's own timings: left alone";
    default:
      return "";
  }
}

// The summary of many sockets: a count per state, direction and keepalive
// settings.
std::vector<std::vector<std::string>> summary_keys(const std::vector<TcpSocket> &sockets) {
  std::vector<std::vector<std::string>> keys;
  for (const TcpSocket &socket : sockets) {
    keys.push_back({keepalive_cli::tcp_state_name(socket.state),
                    keepalive_cli::direction_name(socket),
                    settings_text(socket.keepalive_read, socket.keepalive)});
  }
  return keys;
}

// "libkeepalive: " and what the process's mappings say of the library.
std::string library_text(const ProcessFacts &facts) {
  std::string out = "libkeepalive: ";
  if (!facts.maps_read) return out + "unknown (" + facts.maps_error + ")\n";
  if (facts.libraries.empty()) return out + "not loaded\n";
  out += "loaded";
  for (const std::string &path : facts.libraries) out += " " + path;
  return out + "\n";
}

// The process's KEEPALIVE_* variables and LD_PRELOAD, one a line.
std::string environment_text(const ProcessFacts &facts) {
  std::string out = "Environment at start: ";
  if (!facts.environment_read) return out + "unknown (" + facts.environment_error + ")\n";
  if (facts.environment.empty()) return out + "no KEEPALIVE_* variable, no LD_PRELOAD\n";
  bool first = true;
  for (const auto &[name, value] : facts.environment) {
    out += (first ? "" : "                      ") + name + "=" + value + "\n";
    first = false;
  }
  return out;
}

// Whether the library, loaded in the process, is active with the
// configuration of its environment.
std::string configuration_text(const keepalive_config &config) {
  if (!config.valid) {
    std::string out =
        "Configuration in that environment: invalid, so libkeepalive is inactive in it:\n";
    int shown = keepalive_kept_problems(&config);
    for (int i = 0; i < shown; ++i) out += std::string("  ") + config.problems[i] + "\n";
    return out;
  }
  if (!config.enabled) {
    return "Configuration in that environment: KEEPALIVE is off, libkeepalive is inactive\n";
  }
  return "Configuration in that environment: valid, " + std::to_string(config.nrules) +
         (config.nrules == 1 ? " rule" : " rules") + " (keepalive check explains it)\n";
}

// The sockets, one a line or summarized, and the descriptors not examined.
std::string sockets_text(const ProcessFacts &facts, const std::vector<TcpSocket> &sockets,
                         bool summary) {
  std::string not_examined = keepalive_cli::unexamined_text(facts.unexamined);
  if (!not_examined.empty()) not_examined += "; they may be TCP sockets.\n";
  if (sockets.empty()) {
    return not_examined.empty() ? "No TCP sockets.\n"
                                : "No TCP socket among the descriptors examined.\n" + not_examined;
  }
  if (summary) {
    return std::to_string(sockets.size()) + " TCP sockets; summary (--full shows every socket):\n" +
           keepalive_cli::summary_table({"STATE", "DIR", "KEEPALIVE"}, summary_keys(sockets));
  }
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"FD", "STATE", "DIR", "LOCAL", "PEER", "KEEPALIVE"});
  for (const TcpSocket &socket : sockets) {
    rows.push_back({std::to_string(socket.fd), keepalive_cli::tcp_state_name(socket.state),
                    keepalive_cli::direction_name(socket),
                    socket.has_local ? keepalive_cli::format_endpoint(socket.local) : "-",
                    socket.has_peer ? keepalive_cli::format_endpoint(socket.peer) : "-",
                    settings_text(socket.keepalive_read, socket.keepalive)});
    std::string reason = left_alone_reason(facts, socket);
    if (!reason.empty()) rows.back().back() += " (" + reason + ")";
  }
  return keepalive_cli::format_table(rows) + not_examined;
}

std::string text_report(pid_t pid, const ProcessFacts &facts, const std::vector<TcpSocket> &sockets,
                        bool summary) {
  std::string out = "Process " + std::to_string(pid);
  if (!facts.command.empty()) out += " (" + facts.command + ")";
  out += "\n";
  out += library_text(facts);
  if (!facts.obstacle.empty()) {
    out += "Out of the library's reach: " + facts.program + " " + facts.obstacle + ".\n";
  }
  for (const keepalive_kernel::Applying &applying : facts.kernel) {
    out += "Kernel mode: sock_ops program " + std::to_string(applying.program.id) + " on " +
           applying.cgroup + ": " + applying.program.description + "\n";
  }
  out += environment_text(facts);
  if (facts.config != nullptr && !facts.libraries.empty()) out += configuration_text(*facts.config);
  if (facts.config != nullptr) {
    for (const std::string &warning : keepalive_cli::describe_warnings(*facts.config)) {
      out += "  warning: " + warning + "\n";
    }
  }
  out += "\n";
  return out + sockets_text(facts, sockets, summary);
}

void library_json(JsonWriter *json, const ProcessFacts &facts) {
  json->key("library").begin_object();
  json->key("loaded");
  if (facts.maps_read) {
    json->boolean(!facts.libraries.empty());
  } else {
    json->null();
    json->field("error", facts.maps_error);
  }
  json->key("paths").begin_array();
  for (const std::string &path : facts.libraries) json->string(path);
  json->end_array();
  json->end_object();
}

// "environment", and "environment_error" beside it when it could not be read.
void environment_json(JsonWriter *json, const ProcessFacts &facts) {
  json->key("environment");
  if (facts.environment_read) {
    json->begin_object();
    for (const auto &[name, value] : facts.environment) json->field(name, value);
    json->end_object();
  } else {
    json->null();
    json->field("environment_error", facts.environment_error);
  }
}

void configuration_json(JsonWriter *json, const ProcessFacts &facts) {
  json->key("configuration");
  if (facts.config == nullptr) {
    json->null();
    return;
  }
  const keepalive_config &config = *facts.config;
  json->begin_object();
  json->field("valid", config.valid != 0);
  json->field("enabled", config.enabled != 0);
  json->field("rules", config.nrules);
  json->key("problems").begin_array();
  int shown = keepalive_kept_problems(&config);
  for (int i = 0; i < shown; ++i) json->string(config.problems[i]);
  json->end_array();
  json->key("warnings").begin_array();
  for (const std::string &warning : keepalive_cli::describe_warnings(config)) {
    json->string(warning);
  }
  json->end_array();
  json->end_object();
}

void program_json(JsonWriter *json, const ProcessFacts &facts) {
  json->key("program").begin_object();
  json->field("path", facts.program);
  json->key("go");
  if (facts.program_read) {
    json->boolean(facts.program_facts.go);
  } else {
    json->null();
  }
  json->optional_field("out_of_reach", facts.obstacle);
  json->end_object();
}

// A summary: the groups, and in "sockets" only those whose options could
// not be read.
void sockets_json(JsonWriter *json, const ProcessFacts &facts,
                  const std::vector<TcpSocket> &sockets, bool summary) {
  keepalive_cli::summary_json(json, summary, {"state", "direction", "keepalive"},
                              summary_keys(sockets));
  json->key("sockets").begin_array();
  for (const TcpSocket &socket : sockets) {
    if (summary && socket.keepalive_read) continue;
    json->begin_object();
    json->field("fd", socket.fd);
    keepalive_cli::socket_identity_json(json, socket);
    keepalive_cli::socket_settings_json(json, "keepalive", socket.keepalive_read, socket.keepalive);
    std::string reason = left_alone_reason(facts, socket);
    json->optional_field("left_alone", reason);
    json->end_object();
  }
  json->end_array();
}

// "kernel_mode": our sock_ops programs that apply to its connections, or
// null and "kernel_mode_error" when that cannot be told (not root).
void kernel_json(JsonWriter *json, const ProcessFacts &facts) {
  json->key("kernel_mode");
  if (!facts.kernel_read) {
    json->null();
    json->field("kernel_mode_error", facts.kernel_error);
    return;
  }
  json->begin_array();
  for (const keepalive_kernel::Applying &applying : facts.kernel) {
    json->begin_object();
    json->field("cgroup", applying.cgroup);
    json->field("program_id", static_cast<long long>(applying.program.id));
    json->field("configuration", applying.program.description);
    json->end_object();
  }
  json->end_array();
}

std::string json_report(pid_t pid, const ProcessFacts &facts, const std::vector<TcpSocket> &sockets,
                        bool summary) {
  JsonWriter json;
  json.begin_object();
  json.field("pid", static_cast<long long>(pid));
  json.field("command", facts.command);
  library_json(&json, facts);
  environment_json(&json, facts);
  configuration_json(&json, facts);
  program_json(&json, facts);
  kernel_json(&json, facts);
  keepalive_cli::unexamined_json(&json, facts.unexamined);
  sockets_json(&json, facts, sockets, summary);
  json.end_object();
  return json.str();
}

struct Options {
  bool as_json = false;
  keepalive_cli::Detail detail = keepalive_cli::Detail::kAuto;  // --summary, --full
  pid_t pid = 0;
};

// Fills `options`; returns false when the command ends here with *status
// (help printed, or a usage error reported).
bool parse_arguments(int argc, char **argv, Options *options, int *status) {
  keepalive_cli::OptionReader reader(kName, argc, argv, kOptions);
  const char *pid_text = nullptr;
  auto take = [&](keepalive_cli::OptionReader::Kind kind) {
    if (kind == keepalive_cli::OptionReader::kOperand) return reader.take_operand("PID", &pid_text);
    if (reader.is("--json")) options->as_json = true;
    keepalive_cli::parse_detail_option(reader.name(), &options->detail);  // --summary, --full
    return true;
  };
  if (!reader.read_all(print_help, take, status)) return false;
  *status = keepalive_cli::kExitUsage;
  return reader.pid_operand(pid_text, &options->pid);
}

// The configuration the core makes of the process's environment, its names
// too: a misspelled KEEPALIVE_* variable is shown as the library reported
// it at the process's start.
std::unique_ptr<keepalive_config> config_of_environment(const Environment &environment) {
  keepalive_cli::ConfigFlags no_flags;
  no_flags.use_environment(environment);
  return std::move(keepalive_cli::load_config(no_flags).config);
}

// Its command name, the libkeepalive it maps and its environment (and, when
// the library is loaded, the kernel's default idle time).
void read_library_and_environment(const keepalive_cli::TargetProcess &target, ProcessFacts *facts) {
  facts->command = target.command_name();
  facts->maps_read = target.loaded_keepalive_libraries(&facts->libraries, &facts->maps_error);
  facts->environment_read =
      target.keepalive_environment(&facts->environment, &facts->environment_error);
  if (facts->environment_read) facts->config = config_of_environment(facts->environment);
  if (facts->config != nullptr && !facts->libraries.empty()) {
    facts->pass =
        keepalive_cli::pass_options(keepalive_cli::PassMode::kDescribe, true, target.pid());
  }
}

}  // namespace

int keepalive_cmd_inspect(int argc, char **argv) {
  Options options;
  int status = keepalive_cli::kExitOk;
  if (!parse_arguments(argc, argv, &options, &status)) return status;
  return keepalive_inspect_report(options.pid, options.as_json, options.detail);
}

int keepalive_inspect_report(pid_t pid, bool json, keepalive_cli::Detail detail) {
  keepalive_cli::TargetProcess target;
  std::string error;
  if (!target.open(pid, &error)) {
    keepalive_cli::print_error(kName, error);
    return keepalive_cli::kExitNoProcess;
  }
  ProcessFacts facts;
  std::vector<TcpSocket> sockets;
  if (!target.read_tcp_sockets(&sockets, &facts.unexamined, &error)) {
    keepalive_cli::print_error(kName, error);
    return keepalive_cli::kExitNoProcess;
  }
  read_library_and_environment(target, &facts);
  keepalive_cli::UniqueFd program = target.open_executable(&facts.program);
  if (program.valid()) {
    facts.program_read = true;
    facts.program_facts = keepalive_cli::read_program_facts(program.get());
    facts.obstacle = keepalive_cli::library_obstacle(facts.program_facts);
  }
  facts.kernel_read =
      keepalive_kernel::programs_applying_to(pid, &facts.kernel, &facts.kernel_error);
  const bool summary = keepalive_cli::use_summary(detail, sockets.size());
  std::string report =
      json ? json_report(pid, facts, sockets, summary) : text_report(pid, facts, sockets, summary);
  fputs(report.c_str(), stdout);
  fflush(stdout);
  if (!facts.unexamined.fds.empty()) {
    keepalive_cli::print_error(
        kName, keepalive_cli::unexamined_text(facts.unexamined) + "; they may be TCP sockets");
    return keepalive_cli::kExitFailure;
  }
  return keepalive_cli::kExitOk;
}
