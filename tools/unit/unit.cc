// unit.cc — `keepalive enable UNIT`, `keepalive disable UNIT` and
// `keepalive status UNIT`: libkeepalive for a systemd service as one
// drop-in, UNIT.service.d/keepalive.conf, written and read without systemd
// (systemd_unit.h). The configuration is validated by the core as `check`
// validates it; `--now` hands the running main process to `apply`, and
// `status` explains the drop-in with `check` and the process with `inspect`
// and `apply --dry-run`, by calling those commands.
// Exit 0 done, 1 failed (see each command's help), 2 usage or invalid
// configuration (nothing written), 3 cannot reach the process.

#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "commands.h"
#include "kernel/bpf.h"
#include "lib/cli.h"
#include "lib/figures.h"
#include "lib/files.h"
#include "lib/options.h"
#include "lib/output.h"
#include "lib/process.h"
#include "lib/socket_pass.h"
#include "lib/socket_report.h"
#include "lib/systemd_unit.h"

namespace {

using keepalive_cli::is_keepalive_library;
using keepalive_cli::PassMode;
using keepalive_cli::print_error;
using keepalive_cli::settings_text;
using keepalive_cli::TcpSocket;

constexpr char kDropInName[] = "keepalive.conf";
constexpr char kDefaultUnitDir[] = "/etc/systemd/system";

// The options of enable, disable and status, in --help order.
constexpr keepalive_cli::Option kUnitDir = {
    "--unit-dir", "DIR",
    "where the drop-in goes: DIR/UNIT.service.d/keepalive.conf (default /etc/systemd/system)"};
constexpr keepalive_cli::Option kPid = {
    "--pid", "PID",
    "the service's main process, for --now (default: its MainPID from systemctl, when "
    "systemd is the running init)"};
constexpr keepalive_cli::Option kReload = {
    "--reload", nullptr, "run `systemctl daemon-reload` (only when systemd runs)"};
constexpr keepalive_cli::Option kDryRun = {"--dry-run", nullptr,
                                           "show what would be done, change nothing"};
const std::vector<keepalive_cli::Option> kEnableOptions = {
    {"--kernel", nullptr,
     "kernel mode: no LD_PRELOAD; an ExecStartPre=+ line runs `keepalive attach "
     "--own-cgroup` before each start, which attaches the configuration to the service's "
     "cgroup as a sock_ops BPF program (every TCP connection of the service, also of "
     "static, Go and musl programs)"},
    {"--now", nullptr,
     "also set the running service now, as `keepalive apply PID --listeners` does: its "
     "connections, and its listening sockets for the connections it accepts from now on; "
     "sockets that carry the values of the drop-in this one replaces move to the new ones. "
     "With --kernel: attach to its cgroup, as `keepalive attach --pid PID` does (connections "
     "open already keep their settings: `keepalive apply PID` sets those)"},
    {"--override", nullptr,
     "with --now: also set the sockets whose timings the program chose itself, as "
     "`keepalive apply --override` does"},
    {"--exact-listeners", nullptr,
     "with --now: set a listener only when every connection it accepts gets exactly its "
     "settings, as `keepalive apply --exact-listeners` does"},
    kUnitDir,
    kPid,
    kReload,
    kDryRun};
const std::vector<keepalive_cli::Option> kDisableOptions = {
    {"--now", nullptr,
     "also give back the running process's sockets: those whose keepalive values are "
     "exactly what the drop-in's configuration set get the kernel's defaults for those "
     "values; SO_KEEPALIVE stays on; sockets with other values are left as they are. A "
     "drop-in of `keepalive enable --kernel`: detach our program from the process's cgroup, "
     "as `keepalive detach --pid PID` does (connections keep their settings)"},
    {"--force", nullptr,
     "remove UNIT.service.d/keepalive.conf also when `keepalive enable` did not write it "
     "(without, such a file is shown and kept)"},
    kUnitDir,
    kPid,
    kReload,
    kDryRun};
const std::vector<keepalive_cli::Option> kStatusOptions = {
    {"--pid", "PID",
     "the service's main process (default: its MainPID from systemctl, when systemd is the "
     "running init)"},
    {"--unit-dir", "DIR", "where the drop-in is looked for (default /etc/systemd/system)"}};

void print_enable_help() {
  std::string text =
      "Usage: keepalive enable UNIT [FLAGS] [--kernel] [--now [--override]\n"
      "                        [--exact-listeners]] [--pid PID] [--unit-dir DIR]\n"
      "                        [--reload] [--dry-run]\n"
      "Makes systemd start service UNIT with libkeepalive. Validates the configuration\n"
      "as `keepalive check` does (FLAGS over the KEEPALIVE_* environment; invalid:\n"
      "exit 2, nothing written), then writes the drop-in UNIT.service.d/keepalive.conf:\n"
      "LD_PRELOAD (the unit's own kept, this command's library added) and one\n"
      "Environment= line per KEEPALIVE_* variable. A drop-in written before is\n"
      "replaced, and the difference shown. systemd reads it after\n"
      "`systemctl daemon-reload`, at the service's next start.\n"
      "With --kernel the drop-in sets no LD_PRELOAD: the same Environment= lines,\n"
      "and ExecStartPre=+ with this command's `keepalive attach --own-cgroup`, which\n"
      "reads them and attaches the configuration to the service's cgroup as a\n"
      "sock_ops BPF program before each start (see `keepalive help attach`).\n"
      "\n"
      "FLAGS:\n";
  text += keepalive_cli::ConfigFlags::usage();
  text += "\nOptions:\n" + keepalive_cli::options_help(kEnableOptions);
  text +=
      "\n"
      "Exit status: 0 done; 1 the drop-in could not be written, a later file keeps it\n"
      "from taking effect (named), or --now could not set every socket; 2 usage error\n"
      "or invalid configuration, or with --kernel one the kernel refuses (nothing\n"
      "written); 3 --now cannot reach the process, or with --kernel its cgroup\n"
      "(nothing written).\n"
      "\n"
      "Example: sudo keepalive enable prosody --idle 270 --now\n";
  fputs(text.c_str(), stdout);
}

void print_disable_help() {
  std::string text =
      "Usage: keepalive disable UNIT [--now] [--pid PID] [--force] [--unit-dir DIR]\n"
      "                         [--reload] [--dry-run]\n"
      "Removes the drop-in UNIT.service.d/keepalive.conf that `keepalive enable` wrote:\n"
      "the service starts without libkeepalive after `systemctl daemon-reload` and a\n"
      "restart. Nothing to remove is not an error.\n"
      "\n"
      "Options:\n";
  text += keepalive_cli::options_help(kDisableOptions);
  text +=
      "\n"
      "Exit status: 0 done; 1 the drop-in could not be removed (or was not written by\n"
      "keepalive enable: --force), or --now could not set every socket; 2 usage error;\n"
      "3 --now cannot reach the process (nothing removed).\n";
  fputs(text.c_str(), stdout);
}

void print_status_help() {
  std::string text =
      "Usage: keepalive status UNIT [--pid PID] [--unit-dir DIR]\n"
      "Shows whether the drop-in UNIT.service.d/keepalive.conf is there and what its\n"
      "configuration does (as `keepalive check`), and, when the service's main process\n"
      "is known, whether it has libkeepalive loaded (as `keepalive inspect`) and what\n"
      "`keepalive enable --now` would still change on its sockets (as `keepalive apply\n"
      "--listeners --dry-run`). For a drop-in of `keepalive enable --kernel`: the\n"
      "command its ExecStartPre= runs, and the sock_ops programs of the process's\n"
      "cgroup (as `keepalive attach --pid PID --list`).\n"
      "\n"
      "Options:\n";
  text += keepalive_cli::options_help(kStatusOptions);
  text +=
      "\n"
      "Exit status: 0 the drop-in is there, valid, in effect, and its library exists\n"
      "(kernel mode: its command exists, and with a known process our program is\n"
      "attached to its cgroup with the drop-in's configuration); 1 it is not (or the\n"
      "process could not be inspected); 2 usage error.\n";
  fputs(text.c_str(), stdout);
}

struct Options {
  keepalive_cli::ConfigFlags flags;
  std::string unit;  // "prosody.service"
  std::string unit_dir = kDefaultUnitDir;
  pid_t pid = 0;  // --pid, 0 when not given
  bool now = false, reload = false, dry_run = false, override = false, exact_listeners = false;
  bool force = false;
  bool kernel = false;  // enable --kernel
};

// Records one of the subcommand's options; false after a usage error.
bool take_option(const keepalive_cli::OptionReader &reader, Options *options) {
  std::string error;
  if (reader.is("--unit-dir")) {
    options->unit_dir = reader.value();
    return !options->unit_dir.empty() || reader.usage_error("--unit-dir needs a directory");
  }
  if (reader.is("--pid")) {
    return keepalive_cli::read_pid("--pid", reader.value(), &options->pid, &error) ||
           reader.usage_error(error);
  }
  options->now = options->now || reader.is("--now");
  options->override = options->override || reader.is("--override");
  options->exact_listeners = options->exact_listeners || reader.is("--exact-listeners");
  options->reload = options->reload || reader.is("--reload");
  options->force = options->force || reader.is("--force");
  options->kernel = options->kernel || reader.is("--kernel");
  options->dry_run = options->dry_run || reader.is("--dry-run");
  return true;
}

// Returns false when the command ends here with *status. `flags`: the
// subcommand takes the configuration flags.
bool parse_arguments(const char *name, const std::vector<keepalive_cli::Option> &table, bool flags,
                     void (*help)(), int argc, char **argv, Options *options, int *status) {
  keepalive_cli::OptionReader reader(name, argc, argv, table, flags ? &options->flags : nullptr);
  const char *unit = nullptr;
  auto take = [&](keepalive_cli::OptionReader::Kind kind) {
    return kind == keepalive_cli::OptionReader::kOption ? take_option(reader, options)
                                                        : reader.take_operand("UNIT", &unit);
  };
  if (!reader.read_all(help, take, status)) return false;
  *status = keepalive_cli::kExitUsage;
  if (unit == nullptr) return reader.usage_error("no UNIT given");
  if (options->pid != 0 && !options->now && strcmp(name, "status") != 0) {
    return reader.usage_error("--pid goes with --now");
  }
  if ((options->override || options->exact_listeners) && (!options->now || options->kernel)) {
    return reader.usage_error(std::string(options->override ? "--override" : "--exact-listeners") +
                              " goes with --now, not with --kernel");
  }
  options->unit = keepalive_cli::service_unit_name(unit);
  if (options->unit.empty()) {
    return reader.usage_error(
        std::string("UNIT must name a service, as prosody or prosody.service, not '") + unit + "'");
  }
  return true;
}

bool systemd_is_running() {
  struct stat st;
  return stat("/run/systemd/system", &st) == 0 && S_ISDIR(st.st_mode);
}

// Runs a program (found in PATH, no shell); its standard output is read
// into *output when given, else it goes to ours. Returns the exit status,
// or -1 when it could not run.
int run_program(const std::vector<std::string> &args, std::string *output) {
  std::vector<char *> argv;
  for (const std::string &arg : args) argv.push_back(const_cast<char *>(arg.c_str()));
  argv.push_back(nullptr);
  int pipe_fds[2] = {-1, -1};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (output != nullptr) {
    if (pipe2(pipe_fds, O_CLOEXEC) != 0) return -1;
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  }
  fflush(stdout);
  pid_t child = 0;
  int spawned = posix_spawnp(&child, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (output != nullptr) {
    close(pipe_fds[1]);
    output->clear();
    char buffer[512];
    ssize_t n;
    while (spawned == 0 &&
           ((n = read(pipe_fds[0], buffer, sizeof buffer)) > 0 || (n < 0 && errno == EINTR))) {
      if (n > 0) output->append(buffer, static_cast<size_t>(n));
    }
    close(pipe_fds[0]);
  }
  if (spawned != 0) return -1;
  int status = 0;
  while (waitpid(child, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// The main process: --pid, else MainPID from systemctl. 0 with *error set
// when neither gives one.
pid_t main_pid(const Options &options, std::string *error) {
  pid_t pid = 0;
  if (options.pid != 0) return options.pid;
  if (!systemd_is_running()) {
    *error = "systemd is not the running init here: give the main process with --pid PID";
    return 0;
  }
  std::string output;
  int status =
      run_program({"systemctl", "show", "-p", "MainPID", "--value", options.unit}, &output);
  while (!output.empty() && (output.back() == '\n' || output.back() == ' ')) output.pop_back();
  if (status != 0 || !keepalive_cli::parse_pid(output.c_str(), &pid)) {
    *error = options.unit + " has no running main process (systemctl show -p MainPID: '" + output +
             "'); give it with --pid PID";
    return 0;
  }
  return pid;
}

// The running service --now acts on: its main process and, in kernel mode,
// its cgroup.
struct Running {
  pid_t pid = 0;
  std::string cgroup;
  keepalive_cli::UniqueFd cgroup_fd;
};

// --now: the main process, found and reachable before anything is written
// or removed: in kernel mode its cgroup opened, else its sockets listed
// (which needs ptrace access). False with *error set, and *status the exit
// status (2: none given or known, 3: not reachable), otherwise.
bool reach_running(const Options &options, bool kernel, Running *running, std::string *error,
                   int *status) {
  running->pid = main_pid(options, error);
  *status = running->pid == 0 ? keepalive_cli::kExitUsage : keepalive_cli::kExitNoProcess;
  if (running->pid == 0) return false;
  if (kernel) {
    return keepalive_kernel::cgroup_of_process(running->pid, &running->cgroup, error) &&
           keepalive_kernel::open_cgroup(running->cgroup, &running->cgroup_fd, error);
  }
  keepalive_cli::TargetProcess target;
  std::vector<TcpSocket> sockets;
  keepalive_cli::Unexamined unexamined;
  return target.open(running->pid, error) && target.read_tcp_sockets(&sockets, &unexamined, error);
}

std::string drop_in_dir(const Options &options) {
  return options.unit_dir + "/" + options.unit + ".d";
}

std::string drop_in_path(const Options &options) {
  return drop_in_dir(options) + "/" + kDropInName;
}

// The unit's files, found as systemd finds them; `absent`: a drop-in taken
// as not there.
keepalive_cli::UnitFiles unit_files(const Options &options, const std::string &absent = "") {
  return keepalive_cli::find_unit_files(keepalive_cli::unit_directories(options.unit_dir),
                                        options.unit, absent);
}

// The reload step: done with --reload where systemd runs, else said.
void reload(const char *name, const Options &options) {
  if (options.reload && systemd_is_running()) {
    if (options.dry_run) {
      puts("Would run: systemctl daemon-reload");
      return;
    }
    puts("Running: systemctl daemon-reload");
    if (run_program({"systemctl", "daemon-reload"}, nullptr) != 0) {
      print_error(name, "systemctl daemon-reload failed; run it yourself");
    }
    return;
  }
  if (!systemd_is_running()) {
    puts(options.reload ? "systemd is not the running init here: --reload has nothing to reload."
                        : "(systemd is not the running init here: it reads the drop-in when it "
                          "starts.)");
    return;
  }
  puts(
      "Still needed: systemctl daemon-reload (systemd reads the change at the service's "
      "next start).");
}

// ---- enable ----------------------------------------------------------------

// The first line of every drop-in enable writes: its mark, for disable.
constexpr char kMark[] = "# Written by `keepalive enable ";

bool written_by_enable(const std::string &text) { return text.rfind(kMark, 0) == 0; }

// What a kernel-mode drop-in says of itself, after the mark.
constexpr char kKernelComment[] =
    "# Kernel mode: before each start, ExecStartPre= runs `keepalive attach --own-cgroup` with\n"
    "# full privileges (the +). It reads the KEEPALIVE_* lines below and attaches them to the\n"
    "# service's cgroup as a sock_ops BPF program: every TCP connection of the service's\n"
    "# processes gets the settings when it is established, without LD_PRELOAD (static, Go and\n"
    "# musl programs too). When it cannot attach, the service does not start (the journal says\n"
    "# why).\n";

// `line`: the drop-in's means, the Environment= line of LD_PRELOAD (the
// unit's specifiers kept) or, in kernel mode, the ExecStartPre= line.
std::string drop_in_text(const Options &options, const std::string &line) {
  std::string text = kMark + options.unit + "`.\n# Explained by `keepalive status " + options.unit +
                     "`, removed by `keepalive disable " + options.unit + "`.\n";
  if (options.kernel) text += kKernelComment;
  text += "[Service]\n";
  if (!options.kernel) text += line + "\n";
  for (const char *variable : keepalive_cli::configuration_variables()) {
    const char *value = options.flags.value(variable);
    if (value == nullptr) continue;
    text += "Environment=" +
            keepalive_cli::systemd_quote(std::string(variable) + "=" +
                                         keepalive_cli::specifier_escape(value)) +
            "\n";
  }
  if (options.kernel) text += line + "\n";
  return text;
}

// Kernel mode: the ExecStartPre= value that runs this command's `attach
// --own-cgroup` with full privileges (+), its absolute path written for an
// Exec line (% doubled for the specifiers; in double quotes when it has a
// space); "" (said) when the path cannot be written there: systemd refuses
// an executable's path with a quote, a backslash or a control character,
// and expands $ in an Exec line's arguments but not in its path.
std::string attach_command(const char *name) {
  std::string error;
  const std::string self = keepalive_cli::own_executable(&error);
  if (self.empty() || access(self.c_str(), X_OK) != 0) {
    print_error(name, (self.empty() ? error : self + ": " + strerror(errno)) + "; nothing written");
    return "";
  }
  auto unsafe = [](char c) {
    return strchr("$\"'\\\x7f", c) != nullptr || static_cast<unsigned char>(c) < 0x20;
  };
  if (std::any_of(self.begin(), self.end(), unsafe)) {
    print_error(name, "this command's path " + self +
                          " has a $, a quote, a backslash or a control character, which an "
                          "ExecStartPre= line cannot hold; install it elsewhere; nothing "
                          "written");
    return "";
  }
  std::string word = keepalive_cli::specifier_escape(self);
  if (word.find(' ') != std::string::npos) {
    word = keepalive_cli::systemd_quote(word);
  }
  return "+" + word + " attach --own-cgroup";
}

}  // namespace

namespace {

// The drop-in's LD_PRELOAD, as written: the unit's own entries as the unit
// wrote them (said so), so that systemd resolves their specifiers — unless
// they would mean something else in the drop-in (the unit's file read under
// an alias's name: then as resolved) —, without an earlier libkeepalive
// (said so), then `library`.
std::string preload_value(const keepalive_cli::UnitFiles &files,
                          const keepalive_cli::UnitEnvironment &environment,
                          const std::string &library) {
  std::string preload;
  if (const auto *existing = environment.find("LD_PRELOAD")) {
    const std::string &read_as = existing->file == files.unit_file ? files.unit : files.id;
    for (const std::string &entry : keepalive_cli::preload_entries(existing->written)) {
      std::string resolved, in_drop_in;
      keepalive_cli::resolve_specifiers(entry, read_as, &resolved);
      keepalive_cli::resolve_specifiers(entry, files.id, &in_drop_in);
      if (is_keepalive_library(resolved)) {
        printf("Note: %s preloads %s already; this drop-in's library replaces it.\n",
               existing->file.c_str(), resolved.c_str());
        continue;
      }
      preload += (in_drop_in == resolved ? entry : keepalive_cli::specifier_escape(resolved)) + " ";
    }
    if (!preload.empty()) {
      printf("The unit's own LD_PRELOAD (from %s) is kept: %s\n", existing->file.c_str(),
             preload.substr(0, preload.size() - 1).c_str());
    }
  }
  preload += keepalive_cli::specifier_escape(library);
  return preload;
}

// One line per variable of the drop-in `text` at `path` that the service
// would not start with, naming the file that defeats it and how.
std::vector<std::string> what_defeats(const keepalive_cli::UnitFiles &files,
                                      const std::string &path, const std::string &text) {
  keepalive_cli::UnitEnvironment ours(files.id);
  ours.add_file(path, text);
  const keepalive_cli::UnitEnvironment effective =
      keepalive_cli::unit_environment(files, path, text);
  std::vector<std::string> lines;
  for (const auto &variable : ours.variables) {
    const auto *final_value = effective.find(variable.name);
    std::string file;
    if (effective.unsets(final_value != nullptr ? *final_value : variable, &file)) {
      lines.push_back(file + ": UnsetEnvironment= removes " + variable.name +
                      " from the service's environment");
    } else if (final_value == nullptr) {
      lines.push_back(effective.emptied_by + " empties the environment (an empty Environment=) " +
                      "after " + path + ": " + variable.name + " is not set");
    } else if (final_value->file != path) {
      lines.push_back(final_value->file + " sets " + variable.name + " and is read after " + path +
                      ": its value wins");
    }
  }
  return lines;
}

// Warns about EnvironmentFile= lines: what they set wins over the drop-in.
void warn_about_environment_files(const keepalive_cli::UnitEnvironment &environment) {
  for (const std::string &line : environment.environment_files) {
    printf(
        "Warning: EnvironmentFile= in %s: a LD_PRELOAD or KEEPALIVE_* set there wins over "
        "the drop-in.\n",
        line.c_str());
  }
}

// Kernel mode's own checks of a valid configuration, before anything is
// written: it has a program to attach (not off), which the kernel takes
// (loaded once, attached nowhere) when this command may load one; false,
// said, when not.
bool kernel_takes(const char *name, const keepalive_config &config) {
  if (!config.enabled) {
    print_error(name,
                "--kernel: KEEPALIVE=off leaves nothing to attach: `keepalive attach` would "
                "fail, and the service would not start; nothing written");
    return false;
  }
  if (geteuid() != 0) {
    puts(
        "Note: not root: whether the kernel takes the program is known when it is attached, "
        "at the service's start.");
    return true;
  }
  std::string error;
  if (!keepalive_attach_check(config, &error)) {
    print_error(name, "--kernel: " + error + "; the service would not start; nothing written");
    return false;
  }
  return true;
}

// Loads the configuration as `check` does: nullptr, said, when it is invalid
// (or, in kernel mode, when the kernel would not take it).
std::unique_ptr<keepalive_config> valid_config(const char *name, const Options &options) {
  keepalive_cli::LoadedConfig loaded = keepalive_cli::load_config(options.flags);
  if (!loaded.config->valid) {
    keepalive_cli::print_invalid_configuration(name, "nothing written", *loaded.config,
                                               options.flags);
    return nullptr;
  }
  if (options.kernel && !kernel_takes(name, *loaded.config)) return nullptr;
  return std::move(loaded.config);
}

// This command's library, as LD_PRELOAD can hold it; "" (said) when none.
std::string library_to_preload(const char *name) {
  std::string error;
  std::string library = keepalive_cli::locate_library(&error);
  if (library.empty()) {
    print_error(name, error);
    return "";
  }
  if (library.find_first_of(" \t:") != std::string::npos) {
    print_error(name, "the library's path " + library +
                          " has a space or a colon, which LD_PRELOAD cannot hold; install it "
                          "elsewhere or set KEEPALIVE_LIBRARY; nothing written");
    return "";
  }
  return library;
}

// Writes `text` as the drop-in at `path` (unless it is there already, or
// with --dry-run), shows what changed, and does the reload step if it did.
bool install_drop_in(const char *name, const Options &options, const std::string &path,
                     const std::string &text) {
  std::string old_text;
  bool existed = keepalive_cli::read_file(path, &old_text);
  if (existed && old_text == text) {
    printf("%s is already as it should be:\n%s", path.c_str(), text.c_str());
  } else if (options.dry_run) {
    printf("Would %s %s:\n%s", existed ? "replace" : "write", path.c_str(),
           (existed ? keepalive_cli::line_diff(old_text, text) : text).c_str());
  } else {
    if (mkdir(drop_in_dir(options).c_str(), 0755) != 0 && errno != EEXIST) {
      print_error(name, "cannot create " + drop_in_dir(options) + ": " + strerror(errno));
      return false;
    }
    std::string error;
    if (!keepalive_cli::write_file(path, text, &error)) {
      print_error(name, error);
      return false;
    }
    printf("%s %s:\n%s", existed ? "Replaced" : "Wrote", path.c_str(),
           (existed ? keepalive_cli::line_diff(old_text, text) : text).c_str());
  }
  if (!existed || old_text != text) reload(name, options);
  return true;
}

// The KEEPALIVE_* variables and LD_PRELOAD entries of our drop-in, and in
// kernel mode the command its ExecStartPre= runs.
struct DropIn {
  bool present = false;
  std::string path, text;
  keepalive_cli::UnitEnvironment environment;
  std::string attach_command;  // "": no kernel mode
  bool kernel() const { return !attach_command.empty(); }
};

// The command of the drop-in's `ExecStartPre=+COMMAND attach --own-cgroup`
// (kernel mode), as systemd reads it; "" when it has no such line.
std::string attach_command_of(const std::string &text, const std::string &unit) {
  for (const auto &[key, value] : keepalive_cli::service_assignments(text)) {
    std::vector<std::string> words;
    if (key != "ExecStartPre" || value.rfind('+', 0) != 0 ||
        !keepalive_cli::systemd_split(value.substr(1), &words) || words.size() != 3 ||
        words[1] != "attach" || words[2] != "--own-cgroup") {
      continue;
    }
    std::string command;
    if (keepalive_cli::resolve_specifiers(words[0], unit, &command)) return command;
  }
  return "";
}

DropIn read_drop_in(const Options &options) {
  DropIn drop_in{false, drop_in_path(options), "", keepalive_cli::UnitEnvironment(options.unit),
                 ""};
  drop_in.present = keepalive_cli::read_file(drop_in.path, &drop_in.text);
  if (drop_in.present) {
    drop_in.environment.add_file(drop_in.path, drop_in.text);
    drop_in.attach_command = attach_command_of(drop_in.text, options.unit);
  }
  return drop_in;
}

// The drop-in's configuration, as the core makes it of the KEEPALIVE_*
// variables the drop-in sets (flags and our own environment play no part).
keepalive_cli::LoadedConfig drop_in_config(const DropIn &drop_in,
                                           keepalive_cli::ConfigFlags *flags) {
  std::vector<std::pair<std::string, std::string>> variables;
  for (const auto &variable : drop_in.environment.variables) {
    if (variable.name.rfind("KEEPALIVE", 0) == 0 && variable.name != "KEEPALIVE_LIBRARY") {
      variables.emplace_back(variable.name, variable.value);
    }
  }
  flags->use_environment(std::move(variables));
  return keepalive_cli::load_config(*flags);
}

// The drop-in enable writes, built on the unit as systemd reads it without
// ours (at `path`); `means`: the library to preload, or in kernel mode the
// ExecStartPre= command. *defeated: what keeps it from taking effect, warned.
std::string enable_text(const Options &options, const std::string &path, const std::string &means,
                        std::vector<std::string> *defeated) {
  const keepalive_cli::UnitFiles files = unit_files(options, path);
  const keepalive_cli::UnitEnvironment environment = keepalive_cli::unit_environment(files);
  if (files.unit_file.empty()) {
    printf(
        "Note: no file for %s in %s or the usual directories; the drop-in applies once the "
        "unit is installed.\n",
        options.unit.c_str(), options.unit_dir.c_str());
  }
  const std::string line =
      options.kernel
          ? "ExecStartPre=" + means
          : "Environment=" + keepalive_cli::systemd_quote("LD_PRELOAD=" +
                                                          preload_value(files, environment, means));
  warn_about_environment_files(environment);
  const std::string text = drop_in_text(options, line);
  *defeated = what_defeats(files, path, text);
  for (const std::string &each : *defeated) printf("Warning: %s.\n", each.c_str());
  return text;
}

// Kernel mode's --now: `keepalive attach --pid PID` with the same
// configuration, on the cgroup found before anything was written.
int attach_now(const keepalive_config &config, const Options &options, const Running &running) {
  printf("\n--now: keepalive attach --pid %d%s\n", static_cast<int>(running.pid),
         options.dry_run ? " (dry run)" : "");
  if (options.dry_run) {
    printf("Would attach the configuration to %s.\n", running.cgroup.c_str());
    return keepalive_cli::kExitOk;
  }
  const int status =
      keepalive_attach_to("enable", config, running.cgroup, running.cgroup_fd.get(), running.pid);
  if (status == keepalive_cli::kExitOk) {
    printf(
        "Connections open already keep their settings: the program acts when a connection is "
        "established (`keepalive apply %d` sets the open ones).\n",
        static_cast<int>(running.pid));
  }
  return status;
}

// --now: `keepalive apply PID --listeners` with the same configuration;
// `replaced`: the configuration of the drop-in that was there before.
int apply_now(const keepalive_config &config, const Options &options, pid_t pid,
              const keepalive_config *replaced) {
  printf("\n--now: keepalive apply %d --listeners%s%s%s\n", static_cast<int>(pid),
         options.exact_listeners ? " --exact-listeners" : "", options.override ? " --override" : "",
         options.dry_run ? " --dry-run" : "");
  if (replaced != nullptr) {
    printf("(sockets with the values of the drop-in it replaces get the new ones)\n");
  }
  ApplyNow now;
  now.dry_run = options.dry_run;
  now.override = options.override;
  now.exact_listeners = options.exact_listeners;
  now.replaced = replaced;
  return keepalive_apply_now(config, pid, now);
}

}  // namespace

int keepalive_cmd_enable(int argc, char **argv) {
  constexpr char kName[] = "enable";
  Options options;
  int status = keepalive_cli::kExitOk;
  if (!parse_arguments(kName, kEnableOptions, true, print_enable_help, argc, argv, &options,
                       &status)) {
    return status;
  }
  std::unique_ptr<keepalive_config> config = valid_config(kName, options);
  if (config == nullptr) return keepalive_cli::kExitUsage;
  Running running;
  std::string error;
  if (options.now && !reach_running(options, options.kernel, &running, &error, &status)) {
    print_error(kName, "--now: " + error + "; nothing written");
    return status;
  }
  // Kernel mode: the command; else the library to preload.
  const std::string means = options.kernel ? attach_command(kName) : library_to_preload(kName);
  if (means.empty()) return keepalive_cli::kExitFailure;
  const std::string path = drop_in_path(options);
  std::vector<std::string> defeated;
  const std::string text = enable_text(options, path, means, &defeated);
  // Read before it is replaced: its values on a socket are ours (--now).
  keepalive_cli::ConfigFlags earlier_flags;
  keepalive_cli::LoadedConfig earlier;
  DropIn earlier_drop_in = read_drop_in(options);
  if (earlier_drop_in.present) earlier = drop_in_config(earlier_drop_in, &earlier_flags);
  const bool replaces = earlier.config != nullptr && earlier.config->enabled;
  if (!install_drop_in(kName, options, path, text)) return keepalive_cli::kExitFailure;
  if (!defeated.empty()) {
    print_error(kName, "systemd would not start " + options.unit + " with the drop-in's " +
                           "values: " + defeated.front() +
                           (defeated.size() > 1 ? " (and more, above)" : ""));
  }
  const int written = defeated.empty() ? keepalive_cli::kExitOk : keepalive_cli::kExitFailure;
  if (!options.now) {
    puts("The running service is unchanged: restart it, or run this again with --now.");
    return written;
  }
  const int now = options.kernel ? attach_now(*config, options, running)
                                 : apply_now(*config, options, running.pid,
                                             replaces ? earlier.config.get() : nullptr);
  return now != keepalive_cli::kExitOk ? now : written;
}

namespace {

// ---- disable and status ----------------------------------------------------

// The line under a pass's table: how many sockets have the values (or
// were, or would be, reset), how many differ, how many failed.
std::string pass_summary(PassMode mode, const keepalive_cli::Totals &totals) {
  std::string out;
  if (mode == PassMode::kCompare) {
    const int have = totals.of(keepalive_cli::Action::kCarries);
    const int differ = totals.of(keepalive_cli::Action::kDiffers);
    out += keepalive_cli::plural(have, "socket has", "sockets have") + " the drop-in's values";
    if (differ > 0)
      out += ", " + std::to_string(differ) + " not: `keepalive enable --now` sets them";
  } else {
    out += keepalive_cli::plural(totals.of(keepalive_cli::Group::kChanged), "socket", "sockets") +
           (mode == PassMode::kPredictReset ? " would be reset" : " reset");
  }
  const int failed = totals.of(keepalive_cli::Group::kFailed);
  return out + (failed > 0 ? ", " + std::to_string(failed) + " FAILED" : "") + ".\n";
}

// The established and listening sockets of the pass, one row each.
std::string pass_table(PassMode mode, const keepalive_config &config,
                       const std::vector<keepalive_cli::Outcome> &outcomes) {
  const bool compare = mode == PassMode::kCompare;
  std::vector<std::vector<std::string>> rows = {
      {"FD", "DIR", "LOCAL", "PEER", compare ? "DROP-IN'S VALUES" : "ACTION",
       compare ? "KEEPALIVE" : "KEEPALIVE BEFORE -> AFTER"}};
  for (const keepalive_cli::Outcome &outcome : outcomes) {
    if (outcome.action == keepalive_cli::Action::kNotEstablished) continue;
    std::vector<std::string> row = keepalive_cli::socket_cells(config, outcome);
    row.back() = keepalive_cli::action_info(outcome.action).word;  // RULE's place
    row.push_back(keepalive_cli::keepalive_column(config, outcome));
    rows.push_back(row);
  }
  return rows.size() > 1 ? keepalive_cli::format_table(rows)
                         : "No established or listening TCP sockets.\n";
}

// Each established or listening socket of `pid` through the pass (as
// `apply` decides it) in `mode`: kCompare tells which carry `config`'s
// values (status); kReset gives every socket that carries exactly those
// values the kernel's defaults for them back, SO_KEEPALIVE staying on, and
// leaves the others (disable --now); kPredictReset says what kReset would do.
int unit_pass(const char *name, pid_t pid, const keepalive_config &config, PassMode mode) {
  keepalive_cli::TargetProcess target;
  std::vector<TcpSocket> sockets;
  keepalive_cli::Unexamined unexamined;
  std::string error;
  if (!target.open(pid, &error) || !target.read_tcp_sockets(&sockets, &unexamined, &error)) {
    print_error(name, "--now: " + error);
    return keepalive_cli::kExitNoProcess;
  }
  const keepalive_cli::PassOptions pass = keepalive_cli::pass_options(mode, true, pid);
  std::vector<keepalive_cli::Outcome> outcomes;
  keepalive_cli::pass_listing(target, config, pass, sockets, false, &outcomes);
  const keepalive_cli::Totals totals = keepalive_cli::count(outcomes);
  std::string out = "Process " + std::to_string(pid);
  std::string command = target.command_name();
  if (!command.empty()) out += " (" + command + ")";
  const keepalive_kernel_defaults &kernel = pass.kernel.values();
  out += ": kernel defaults idle " + std::to_string(kernel.idle_s) + "s, intvl " +
         std::to_string(kernel.intvl_s) + "s, cnt " + std::to_string(kernel.cnt) + "\n";
  out += pass_table(mode, config, outcomes) + pass_summary(mode, totals);
  // A descriptor that could not be examined may be a connection not counted.
  if (!unexamined.fds.empty()) out += keepalive_cli::unexamined_text(unexamined) + "\n";
  fputs(out.c_str(), stdout);
  fflush(stdout);
  return totals.of(keepalive_cli::Group::kFailed) > 0 || !unexamined.fds.empty()
             ? keepalive_cli::kExitFailure
             : keepalive_cli::kExitOk;
}

// The files systemd reads for the unit, in its order, and the environment
// it gives the service from them, in the words of `systemd --test`'s dump.
void print_unit_environment(const keepalive_cli::UnitFiles &files) {
  std::string out = "\nFiles systemd reads for " + files.unit;
  for (size_t i = 0; i < files.aliases.size(); ++i) {
    out += (i == 0 ? " (also named " : ", ") + files.aliases[i];
  }
  out += files.aliases.empty() ? ", in order:\n" : "), in order:\n";
  out += "  " + (files.unit_file.empty() ? "(no unit file)" : files.unit_file) + "\n";
  for (const std::string &drop_in : files.drop_ins) out += "  " + drop_in + "\n";
  const keepalive_cli::UnitEnvironment environment = keepalive_cli::unit_environment(files);
  out +=
      "The service's environment, as systemd computes it from them (the specifiers of its "
      "name resolved, others as written):\n";
  for (const auto &variable : environment.variables) {
    out += "  Environment: " + variable.name + "=" + variable.value + "\n";
  }
  for (const auto &unset : environment.unset) {
    out += "  UnsetEnvironment: " + unset.name + unset.value + "\n";
  }
  for (const std::string &line : environment.environment_files) {
    out += "  EnvironmentFile= in " + line + " (not read here: what it sets wins)\n";
  }
  fputs(out.c_str(), stdout);
}

// Whether the library the drop-in preloads exists; said.
bool library_found(const DropIn &drop_in) {
  const auto *preload = drop_in.environment.find("LD_PRELOAD");
  bool found = false;
  for (const std::string &entry :
       keepalive_cli::preload_entries(preload != nullptr ? preload->value : "")) {
    if (!is_keepalive_library(entry)) continue;
    found = access(entry.c_str(), R_OK) == 0;
    printf("Library: %s (%s)\n", entry.c_str(),
           found ? "present" : "MISSING: ld.so would only warn, and preload nothing");
  }
  return found;
}

// Kernel mode: whether the command of the drop-in's ExecStartPre= exists; said.
bool command_found(const DropIn &drop_in) {
  printf(
      "Kernel mode: ExecStartPre= attaches the configuration to the service's cgroup before "
      "each start (no LD_PRELOAD).\n");
  const bool found = access(drop_in.attach_command.c_str(), X_OK) == 0;
  printf("Command: %s (%s)\n", drop_in.attach_command.c_str(),
         found ? "present" : "MISSING: the service would not start");
  return found;
}

// status with a drop-in: it, its library (or command), what defeats it, the unit's files
// and environment, its configuration; kExitOk when all is well.
int explain_drop_in(const Options &options, const DropIn &drop_in,
                    const keepalive_cli::UnitFiles &files) {
  int result = keepalive_cli::kExitOk;
  printf("%s: drop-in %s\n%s", options.unit.c_str(), drop_in.path.c_str(), drop_in.text.c_str());
  if (!(drop_in.kernel() ? command_found(drop_in) : library_found(drop_in))) {
    result = keepalive_cli::kExitFailure;
  }
  for (const std::string &line : what_defeats(files, drop_in.path, drop_in.text)) {
    printf("Not in effect: %s.\n", line.c_str());
    result = keepalive_cli::kExitFailure;
  }
  print_unit_environment(files);
  puts("\nConfiguration in the drop-in, as `keepalive check` explains it:");
  keepalive_cli::ConfigFlags no_flags;
  drop_in_config(drop_in, &no_flags);
  if (keepalive_check_report(no_flags, false) != keepalive_cli::kExitOk) {
    result = keepalive_cli::kExitFailure;
  }
  return result;
}

// disable --now: the sockets that carry exactly the drop-in's values get
// the kernel's defaults back.
int reset_now(const DropIn &drop_in, const Options &options, pid_t pid) {
  keepalive_cli::ConfigFlags no_flags;
  keepalive_cli::LoadedConfig loaded = drop_in_config(drop_in, &no_flags);
  if (!loaded.config->valid || !loaded.config->enabled) {
    puts(
        "--now: the drop-in's configuration is invalid or off: it set no socket, none is "
        "reset.");
    return keepalive_cli::kExitOk;
  }
  printf(
      "\n--now: the sockets with exactly the drop-in's values get the kernel defaults back "
      "(SO_KEEPALIVE stays on); the library stays loaded until the service restarts.\n");
  return unit_pass("disable", pid, *loaded.config,
                   options.dry_run ? PassMode::kPredictReset : PassMode::kReset);
}

// Kernel mode's disable --now: `keepalive detach --pid PID`, on the cgroup
// found before anything was removed.
int detach_now(const Options &options, const Running &running) {
  printf("\n--now: keepalive detach --pid %d%s\n", static_cast<int>(running.pid),
         options.dry_run ? " (dry run)" : "");
  if (options.dry_run) {
    printf("Would detach our program from %s.\n", running.cgroup.c_str());
    return keepalive_cli::kExitOk;
  }
  int detached = 0;
  std::string error;
  if (!keepalive_kernel::detach_ours(running.cgroup_fd.get(), &detached, &error)) {
    print_error("disable", error);
    return keepalive_cli::kExitFailure;
  }
  printf("%s: %s; connections keep the settings they have.\n", running.cgroup.c_str(),
         detached == 0 ? "no program of ours was attached" : "detached our program");
  return keepalive_cli::kExitOk;
}

// Kernel mode's status of the running process: the sock_ops programs of its
// cgroup; kExitOk when ours is there with the drop-in's configuration.
int attached_status(const Options &options, const DropIn &drop_in, pid_t pid) {
  printf(
      "\nRunning process %d: its cgroup's sock_ops programs, as `keepalive attach --pid %d "
      "--list` shows them:\n",
      static_cast<int>(pid), static_cast<int>(pid));
  std::string cgroup, error;
  keepalive_cli::UniqueFd fd;
  std::vector<keepalive_kernel::Attached> attached;
  if (!keepalive_kernel::cgroup_of_process(pid, &cgroup, &error) ||
      !keepalive_kernel::open_cgroup(cgroup, &fd, &error)) {
    printf("Not known: %s.\n", error.c_str());
    return keepalive_cli::kExitFailure;
  }
  if (!keepalive_attach_list(cgroup, fd.get(), &attached)) return keepalive_cli::kExitFailure;
  keepalive_cli::ConfigFlags no_flags;
  keepalive_cli::LoadedConfig loaded = drop_in_config(drop_in, &no_flags);
  if (!loaded.config->enabled) return keepalive_cli::kExitFailure;  // said above
  const std::string wanted = keepalive_attach_description(*loaded.config, pid);
  auto ours = std::find_if(attached.begin(), attached.end(),
                           [](const keepalive_kernel::Attached &each) { return each.ours; });
  const std::string again = "restart the service, or run `keepalive enable " + options.unit +
                            " --kernel --now` with the drop-in's flags";
  if (ours == attached.end()) {
    printf("Not in effect: no program of ours is attached to %s (%s).\n", cgroup.c_str(),
           again.c_str());
    return keepalive_cli::kExitFailure;
  }
  if (ours->description != wanted) {
    printf(
        "Not in effect: our program carries another configuration than the drop-in's (%s): "
        "%s.\n",
        wanted.c_str(), again.c_str());
    return keepalive_cli::kExitFailure;
  }
  puts(
      "Ours carries the drop-in's configuration: every connection of the cgroup established "
      "since it was attached has its settings.");
  return keepalive_cli::kExitOk;
}

}  // namespace

int keepalive_cmd_disable(int argc, char **argv) {
  constexpr char kName[] = "disable";
  Options options;
  int status = keepalive_cli::kExitOk;
  if (!parse_arguments(kName, kDisableOptions, false, print_disable_help, argc, argv, &options,
                       &status)) {
    return status;
  }
  DropIn drop_in = read_drop_in(options);
  Running running;
  std::string error;
  if (options.now && !reach_running(options, drop_in.kernel(), &running, &error, &status)) {
    print_error(kName, "--now: " + error + "; nothing removed");
    return status;
  }
  if (!drop_in.present) {
    printf("%s: no drop-in %s, nothing to remove.\n", options.unit.c_str(), drop_in.path.c_str());
    return keepalive_cli::kExitOk;
  }
  if (!written_by_enable(drop_in.text) && !options.force) {
    printf("%s was not written by `keepalive enable`:\n%s", drop_in.path.c_str(),
           drop_in.text.c_str());
    print_error(kName, drop_in.path +
                           " was not written by keepalive enable: kept (--force "
                           "removes it)");
    return keepalive_cli::kExitFailure;
  }
  if (options.dry_run) {
    printf("Would remove %s:\n%s", drop_in.path.c_str(), drop_in.text.c_str());
  } else {
    if (unlink(drop_in.path.c_str()) != 0) {
      print_error(kName, "cannot remove " + drop_in.path + ": " + strerror(errno));
      return keepalive_cli::kExitFailure;
    }
    rmdir(drop_in_dir(options).c_str());  // only when nothing else is in it
    printf("Removed %s:\n%s", drop_in.path.c_str(), drop_in.text.c_str());
  }
  reload(kName, options);
  if (!options.now) {
    puts(drop_in.kernel() ? "The running service is unchanged: our program stays on its cgroup "
                            "until the service is restarted."
                          : "The running service is unchanged: it keeps libkeepalive until it "
                            "is restarted.");
    return keepalive_cli::kExitOk;
  }
  return drop_in.kernel() ? detach_now(options, running) : reset_now(drop_in, options, running.pid);
}

int keepalive_cmd_status(int argc, char **argv) {
  constexpr char kName[] = "status";
  Options options;
  int status = keepalive_cli::kExitOk;
  if (!parse_arguments(kName, kStatusOptions, false, print_status_help, argc, argv, &options,
                       &status)) {
    return status;
  }
  DropIn drop_in = read_drop_in(options);
  const keepalive_cli::UnitFiles files = unit_files(options);
  int result = keepalive_cli::kExitOk;
  if (!drop_in.present) {
    printf("%s: not enabled (no drop-in %s).\n", options.unit.c_str(), drop_in.path.c_str());
    print_unit_environment(files);
    result = keepalive_cli::kExitFailure;
  } else {
    result = explain_drop_in(options, drop_in, files);
  }
  std::string error;
  pid_t pid = main_pid(options, &error);
  if (pid == 0) {
    printf("\nRunning process: unknown (%s).\n", error.c_str());
    return result;
  }
  if (drop_in.kernel()) {
    return attached_status(options, drop_in, pid) == keepalive_cli::kExitOk
               ? result
               : keepalive_cli::kExitFailure;
  }
  printf("\nRunning process, as `keepalive inspect %d` shows it:\n", static_cast<int>(pid));
  fflush(stdout);
  if (keepalive_inspect_report(pid, false, keepalive_cli::Detail::kAuto) !=
      keepalive_cli::kExitOk) {
    return keepalive_cli::kExitFailure;
  }
  if (!drop_in.present) return result;
  keepalive_cli::ConfigFlags no_flags;
  keepalive_cli::LoadedConfig loaded = drop_in_config(drop_in, &no_flags);
  if (loaded.config->enabled) {  // enabled: valid, and KEEPALIVE not off
    printf("\nIts sockets against the drop-in's configuration:\n");
    if (unit_pass(kName, pid, *loaded.config, PassMode::kCompare) != keepalive_cli::kExitOk) {
      result = keepalive_cli::kExitFailure;
    }
  }
  return result;
}
