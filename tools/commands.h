// commands.h — the subcommands of `keepalive`. Each takes its own argument
// vector (argv[0] is the subcommand's name) and returns the exit status.
// A new subcommand is one function here, its source in the folder of its
// family (tools/CMakeLists.txt lists them) and one line in kCommands (main.cc).
#ifndef KEEPALIVE_TOOLS_COMMANDS_H
#define KEEPALIVE_TOOLS_COMMANDS_H

#include <sys/types.h>

#include <string>
#include <vector>

#include "kernel/bpf.h"
#include "lib/cli.h"
#include "lib/output.h"

int keepalive_cmd_run(int argc, char **argv);
int keepalive_cmd_check(int argc, char **argv);
int keepalive_cmd_inspect(int argc, char **argv);
int keepalive_cmd_apply(int argc, char **argv);
int keepalive_cmd_natprobe(int argc, char **argv);
// unit/unit.cc: a systemd service's drop-in.
int keepalive_cmd_enable(int argc, char **argv);
int keepalive_cmd_disable(int argc, char **argv);
int keepalive_cmd_status(int argc, char **argv);
// kernel/attach.cc: kernel mode, a sock_ops program on a cgroup.
int keepalive_cmd_attach(int argc, char **argv);
int keepalive_cmd_detach(int argc, char **argv);

// What one command reuses of another, with what it has parsed and loaded
// already (no argument vector built again, no variable set to be read back).
// `keepalive check`'s report of the configuration `flags` stand for; its exit status.
int keepalive_check_report(const keepalive_cli::ConfigFlags &flags, bool json);
// `keepalive inspect PID`'s report; its exit status.
int keepalive_inspect_report(pid_t pid, bool json, keepalive_cli::Detail detail);
// `keepalive apply PID --listeners [--exact-listeners] [--override] [--dry-run]`
// with a loaded,
// valid configuration (enable --now); `replaced`: the configuration of the
// drop-in it replaces (may be null), whose values on a socket are ours, not
// the program's. Its exit status.
struct ApplyNow {
  bool dry_run = false;
  bool override = false;
  bool exact_listeners = false;
  const keepalive_config *replaced = nullptr;
};
int keepalive_apply_now(const keepalive_config &config, pid_t pid, const ApplyNow &now);

// What `keepalive enable --kernel`, `status` and `disable` reuse of `attach`,
// with a loaded, valid, enabled configuration.
// The text our program carries for the cgroup of `pid` (0: in this command's
// network namespace): the configuration and the kernel's default idle time.
std::string keepalive_attach_description(const keepalive_config &config, pid_t pid);
// Whether the kernel takes the program of `config` (compiled and loaded,
// attached nowhere); false with *error when not.
bool keepalive_attach_check(const keepalive_config &config, std::string *error);
// `keepalive attach` to the cgroup at `path`, opened as `cgroup_fd` (`pid`:
// the process that named it, or 0), errors said as `command`'s; its exit status.
int keepalive_attach_to(const char *command, const keepalive_config &config,
                        const std::string &path, int cgroup_fd, pid_t pid);
// `keepalive attach --list`'s lines for that cgroup, and the programs listed;
// false, said, when they cannot be listed.
bool keepalive_attach_list(const std::string &path, int cgroup_fd,
                           std::vector<keepalive_kernel::Attached> *attached);

#endif  // KEEPALIVE_TOOLS_COMMANDS_H
