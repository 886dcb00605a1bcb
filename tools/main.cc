// main.cc — the `keepalive` command: dispatches to a subcommand, and answers
// --help and --version. The command links the core statically
// (keepalive_core), never the preloaded library, so it is not hooked itself.

#include <stdio.h>
#include <string.h>

#include <string>

#include "commands.h"
#include "keepalive/keepalive.h"
#include "lib/cli.h"
#include "lib/output.h"

namespace {

struct Command {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *synopsis;
  const char *summary;
};

constexpr Command kCommands[] = {
    {"run", keepalive_cmd_run, "run [FLAGS] [--] CMD [ARGS...]",
     "run CMD with libkeepalive preloaded and configured"},
    {"check", keepalive_cmd_check, "check [FLAGS] [--json]",
     "validate the configuration and explain what it does"},
    {"inspect", keepalive_cmd_inspect, "inspect PID [--json]",
     "show a process's TCP sockets and keepalive settings"},
    {"apply", keepalive_cmd_apply, "apply PID [FLAGS] [--dry-run] [--follow]",
     "set a running process's connections now, no restart"},
    {"natprobe", keepalive_cmd_natprobe, "natprobe server|client ...",
     "measure a NAT's idle timeout, recommend KEEPALIVE_IDLE"},
    {"enable", keepalive_cmd_enable, "enable UNIT [FLAGS] [--now]",
     "start a systemd service with it"},
    {"disable", keepalive_cmd_disable, "disable UNIT [--now]", "remove the drop-in enable wrote"},
    {"status", keepalive_cmd_status, "status UNIT [--pid PID]", "a service's drop-in and process"},
    {"attach", keepalive_cmd_attach, "attach CGROUP_DIR|--pid PID|--own-cgroup [FLAGS] [--list]",
     "kernel mode: every connection of a cgroup, no preload"},
    {"detach", keepalive_cmd_detach, "detach CGROUP_DIR|--pid PID|--own-cgroup",
     "remove the program attach attached"},
};

void print_usage(FILE *out) {
  std::string text =
      "Usage: keepalive COMMAND [ARGS...]\n"
      "Per-socket TCP keepalive for any dynamically linked program, by LD_PRELOAD.\n"
      "\n"
      "Commands:\n";
  // Each synopsis on its own line, its summary indented below it.
  constexpr size_t kSummaryColumn = 6;
  for (const Command &command : kCommands) {
    text += keepalive_cli::help_entry(std::string("keepalive ") + command.synopsis, command.summary,
                                      kSummaryColumn);
  }
  text +=
      keepalive_cli::help_entry("keepalive help COMMAND", "help on one command", kSummaryColumn);
  text +=
      "\n"
      "FLAGS stand for KEEPALIVE_* variables and win over the environment:\n";
  text += keepalive_cli::ConfigFlags::usage();
  text += "\nOptions:\n";
  text += keepalive_cli::help_entry("-h, --help", "this help");
  text += keepalive_cli::help_entry("--version", "print the version");
  text += "\nSee keepalive(1) and libkeepalive(7).\n";
  fputs(text.c_str(), out);
}

std::string command_names() {
  std::string names;
  for (const Command &command : kCommands) {
    if (!names.empty()) names += ", ";
    names += command.name;
  }
  return names;
}

const Command *find_command(const char *name) {
  for (const Command &command : kCommands) {
    if (strcmp(command.name, name) == 0) return &command;
  }
  return nullptr;
}

}  // namespace

int main(int argc, char **argv) {
  if (argc < 2) {
    print_usage(stderr);
    return keepalive_cli::kExitUsage;
  }
  const char *first = argv[1];
  if (keepalive_cli::is_help_option(first)) {
    print_usage(stdout);
    return keepalive_cli::kExitOk;
  }
  if (strcmp(first, "--version") == 0 || strcmp(first, "-V") == 0) {
    printf("keepalive %s\nLicense: MIT; see %s (LICENSE in the sources)\n", keepalive_version(),
           KEEPALIVE_COPYRIGHT_FILE);
    return keepalive_cli::kExitOk;
  }
  if (strcmp(first, "help") == 0) {
    if (argc < 3) {
      print_usage(stdout);
      return keepalive_cli::kExitOk;
    }
    const Command *command = find_command(argv[2]);
    if (command == nullptr) {
      keepalive_cli::print_error("help", std::string("unknown command '") + argv[2] +
                                             "' (commands: " + command_names() + ")");
      return keepalive_cli::kExitUsage;
    }
    char help[] = "--help";
    char *help_argv[] = {argv[2], help, nullptr};
    return command->run(2, help_argv);
  }
  const Command *command = find_command(first);
  if (command == nullptr) {
    keepalive_cli::print_error("", std::string("unknown command '") + first + "' (commands: " +
                                       command_names() + "; see keepalive --help)");
    return keepalive_cli::kExitUsage;
  }
  return command->run(argc - 1, argv + 1);
}
