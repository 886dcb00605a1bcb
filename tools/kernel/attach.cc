// attach.cc — `keepalive attach` and `keepalive detach`: kernel mode. The
// configuration compiled into a sock_ops program (sockops.h) and attached to
// a cgroup v2 directory, so that every TCP connection of every process in it
// gets its settings when established — without a preload, so also static
// programs, Go, musl and setuid programs.
//
// Exit 0 done (or --list), 2 usage or invalid configuration, 3 kernel mode
// cannot be used here (no such process or cgroup, not root, the kernel
// refuses the program); nothing changed but on 0.

#include <stdio.h>
#include <unistd.h>

#include <string>
#include <string_view>
#include <vector>

#include "commands.h"
#include "kernel/bpf.h"
#include "kernel/sockops.h"
#include "lib/cli.h"
#include "lib/options.h"
#include "lib/output.h"
#include "lib/sockdiag.h"

namespace {

using keepalive_cli::UniqueFd;

constexpr char kTooLarge[] =
    "the configuration is too large for one sock_ops program (its rules' items reach past "
    "32767 instructions)";

const std::vector<keepalive_cli::Option> kAttachOptions = {
    {"--pid", "PID", "the cgroup of this process (its 0:: line of /proc/PID/cgroup)"},
    {"--own-cgroup", nullptr,
     "the cgroup this command runs in (a service's ExecStartPre=+: the service's own; a "
     "delegated unit's .control subgroup counts as its parent)"},
    {"--list", nullptr, "show the sock_ops programs attached to the cgroup, change nothing"},
};
const std::vector<keepalive_cli::Option> kDetachOptions = {
    {"--pid", "PID", "the cgroup of this process"},
    {"--own-cgroup", nullptr, "the cgroup this command runs in"},
};

void print_attach_help() {
  std::string text =
      "Usage: keepalive attach CGROUP_DIR|--pid PID|--own-cgroup [FLAGS] [--list]\n"
      "Kernel mode: compiles the configuration (FLAGS win over the KEEPALIVE_*\n"
      "environment) into a sock_ops BPF program and attaches it to a cgroup v2\n"
      "directory. Every TCP connection of every process in that cgroup, accepted or\n"
      "outgoing, gets its settings when it is established, with the library's\n"
      "decisions (rules, off, the program's own timings left alone) — no preload:\n"
      "static programs, Go, musl and setuid programs too. Attaching again replaces\n"
      "our program in one step; programs of others on the cgroup stay. Needs root.\n"
      "\n"
      "FLAGS:\n";
  text += keepalive_cli::ConfigFlags::usage();
  text += keepalive_cli::options_help(kAttachOptions);
  text +=
      "\n"
      "A connection whose TCP_KEEPIDLE is not the kernel's default was configured by\n"
      "its program and is left alone; the default is read when attaching (in the\n"
      "network namespace of --pid): attach again after changing it.\n"
      "\n"
      "Exit status: 0 attached (or --list), 2 usage error or an invalid configuration,\n"
      "3 no such process or cgroup, not root, or the kernel refuses the program (the\n"
      "reason is shown); nothing changed but on 0.\n"
      "\n"
      "Example: keepalive attach /sys/fs/cgroup/system.slice/prosody.service --idle 270\n";
  fputs(text.c_str(), stdout);
}

void print_detach_help() {
  std::string text =
      "Usage: keepalive detach CGROUP_DIR|--pid PID|--own-cgroup\n"
      "Detaches the program `keepalive attach` attached to the cgroup, and nothing\n"
      "else. Connections keep the settings they have.\n"
      "\n";
  text += keepalive_cli::options_help(kDetachOptions);
  text +=
      "\n"
      "Exit status: 0 detached (or none was attached), 2 usage error, 3 no such\n"
      "process or cgroup, not root, or the kernel refuses.\n";
  fputs(text.c_str(), stdout);
}

struct Target {
  std::string path;
  pid_t pid = 0;  // --pid, else 0
  UniqueFd fd;
};

// How the cgroup is named: the operand, --pid or --own-cgroup.
struct Naming {
  const char *dir = nullptr;
  const char *pid_text = nullptr;
  bool own = false;
};

// The cgroup `naming` names, opened; *status on failure.
bool open_target(const char *command, const Naming &naming,
                 const keepalive_cli::OptionReader &reader, Target *target, int *status) {
  *status = keepalive_cli::kExitUsage;
  const char *dir = naming.dir;
  const char *pid_text = naming.pid_text;
  if ((dir != nullptr) + (pid_text != nullptr) + naming.own != 1) {
    reader.usage_error("give a cgroup directory, --pid PID or --own-cgroup (one of them)");
    return false;
  }
  std::string error;
  if (naming.own) {
    if (!keepalive_kernel::cgroup_of_process(getpid(), &target->path, &error)) {
      keepalive_cli::print_error(command, error + "; nothing changed");
      *status = keepalive_cli::kExitNoProcess;
      return false;
    }
    // systemd runs a delegated unit's ExecStartPre= in its .control subgroup.
    constexpr std::string_view kControl = "/.control";
    if (target->path.size() > kControl.size() &&
        target->path.compare(target->path.size() - kControl.size(), kControl.size(), kControl) ==
            0) {
      target->path.resize(target->path.size() - kControl.size());
    }
  } else if (pid_text != nullptr) {
    if (!reader.pid_operand(pid_text, &target->pid)) return false;
    if (!keepalive_kernel::cgroup_of_process(target->pid, &target->path, &error)) {
      keepalive_cli::print_error(command, error + "; nothing changed");
      *status = keepalive_cli::kExitNoProcess;
      return false;
    }
  } else {
    target->path = dir;
  }
  if (!keepalive_kernel::open_cgroup(target->path, &target->fd, &error)) {
    keepalive_cli::print_error(command, error + "; nothing changed");
    *status = keepalive_cli::kExitNoProcess;
    return false;
  }
  return true;
}

// The configuration's text, carried by the program and shown by --list.
std::string describe(const keepalive_config &config, int kernel_idle_s) {
  char global[KEEPALIVE_SETTINGS_TEXT_LEN];
  keepalive_format_settings(&config.global, global, sizeof global);
  std::string text = std::string("global ") + global + "; kernel default idle " +
                     std::to_string(kernel_idle_s) + "s";
  for (int i = 0; i < config.nrules; ++i) {
    text += "; rule " + std::to_string(i + 1) + ": " + config.rules[i].text;
  }
  return text;
}

// The kernel's default idle time where the cgroup's connections live: in
// the network namespace of `pid`, or of this command when 0.
int kernel_idle_for(pid_t pid) {
  keepalive_kernel_defaults defaults{};
  std::string error;
  auto read = [&defaults] { keepalive_read_kernel_defaults(&defaults); };
  if (pid == 0 ||
      !keepalive_cli::in_network_namespace(pid, "to read its kernel defaults", read, &error)) {
    read();
  }
  return defaults.idle_s;
}

// The program of `config` for the cgroup of `pid` (0: this command's
// namespace), with its description; empty, said, when it is too large.
std::vector<bpf_insn> compile_for(const char *command, const keepalive_config &config, pid_t pid,
                                  std::string *description) {
  const int kernel_idle_s = kernel_idle_for(pid);
  *description = describe(config, kernel_idle_s);
  std::vector<bpf_insn> program =
      keepalive_kernel::compile_sockops(config, kernel_idle_s, *description);
  if (program.empty()) {
    keepalive_cli::print_error(command, std::string(kTooLarge) + "; nothing changed");
  }
  return program;
}

}  // namespace

bool keepalive_attach_list(const std::string &path, int cgroup_fd,
                           std::vector<keepalive_kernel::Attached> *attached) {
  std::string error;
  if (!keepalive_kernel::attached_programs(cgroup_fd, attached, &error)) {
    keepalive_cli::print_error("attach", error);
    return false;
  }
  printf("%s: %zu sock_ops program%s\n", path.c_str(), attached->size(),
         attached->size() == 1 ? "" : "s");
  for (const auto &program : *attached) {
    printf("  id %u %s%s%s\n", program.id,
           program.name.empty() ? "(unnamed)" : program.name.c_str(),
           program.ours ? ": " : " (not ours)", program.description.c_str());
  }
  return true;
}

std::string keepalive_attach_description(const keepalive_config &config, pid_t pid) {
  return describe(config, kernel_idle_for(pid)).substr(0, keepalive_kernel::kMaxDescription);
}

bool keepalive_attach_check(const keepalive_config &config, std::string *error) {
  const int kernel_idle_s = kernel_idle_for(0);
  const std::vector<bpf_insn> program =
      keepalive_kernel::compile_sockops(config, kernel_idle_s, describe(config, kernel_idle_s));
  if (program.empty()) {
    *error = kTooLarge;
    return false;
  }
  return keepalive_kernel::program_loads(program, error);
}

int keepalive_attach_to(const char *command, const keepalive_config &config,
                        const std::string &path, int cgroup_fd, pid_t pid) {
  std::string description;
  const std::vector<bpf_insn> program = compile_for(command, config, pid, &description);
  if (program.empty()) return keepalive_cli::kExitUsage;
  bool replaced = false;
  std::string error;
  if (!keepalive_kernel::attach_program(cgroup_fd, program, &replaced, &error)) {
    keepalive_cli::print_error(command, error + "; nothing changed");
    return keepalive_cli::kExitFailure;
  }
  printf("%s %s: %s (%zu instructions)\n", replaced ? "replaced our program on" : "attached to",
         path.c_str(), description.c_str(), program.size());
  return keepalive_cli::kExitOk;
}

int keepalive_cmd_attach(int argc, char **argv) {
  constexpr char kName[] = "attach";
  keepalive_cli::ConfigFlags flags;
  keepalive_cli::OptionReader reader(kName, argc, argv, kAttachOptions, &flags, "nothing changed");
  Naming naming;
  bool list = false;
  auto take = [&](keepalive_cli::OptionReader::Kind kind) {
    if (kind == keepalive_cli::OptionReader::kOperand) {
      return reader.take_operand("CGROUP_DIR", &naming.dir);
    }
    if (reader.is("--pid")) {
      naming.pid_text = reader.value();
    } else if (reader.is("--own-cgroup")) {
      naming.own = true;
    } else {
      list = true;
    }
    return true;
  };
  int status = keepalive_cli::kExitOk;
  if (!reader.read_all(print_attach_help, take, &status)) return status;
  Target target;
  if (!open_target(kName, naming, reader, &target, &status)) return status;
  if (list) {
    std::vector<keepalive_kernel::Attached> attached;
    return keepalive_attach_list(target.path, target.fd.get(), &attached)
               ? keepalive_cli::kExitOk
               : keepalive_cli::kExitNoProcess;
  }
  keepalive_cli::LoadedConfig loaded = keepalive_cli::load_config(flags);
  const keepalive_config &config = *loaded.config;
  if (!config.valid) {
    keepalive_cli::print_invalid_configuration(kName, "nothing changed", config, flags);
    return keepalive_cli::kExitUsage;
  }
  if (!config.enabled) {
    keepalive_cli::print_error(kName,
                               "KEEPALIVE=off: nothing to attach (keepalive detach removes a "
                               "program attached before); nothing changed");
    return keepalive_cli::kExitUsage;
  }
  // A refusal by the kernel: kernel mode cannot be used here (exit 3).
  const int attached = keepalive_attach_to(kName, config, target.path, target.fd.get(), target.pid);
  return attached == keepalive_cli::kExitFailure ? keepalive_cli::kExitNoProcess : attached;
}

int keepalive_cmd_detach(int argc, char **argv) {
  constexpr char kName[] = "detach";
  keepalive_cli::OptionReader reader(kName, argc, argv, kDetachOptions, nullptr, "nothing changed");
  Naming naming;
  auto take = [&](keepalive_cli::OptionReader::Kind kind) {
    if (kind == keepalive_cli::OptionReader::kOperand) {
      return reader.take_operand("CGROUP_DIR", &naming.dir);
    }
    if (reader.is("--pid")) {
      naming.pid_text = reader.value();
    } else {
      naming.own = true;  // --own-cgroup
    }
    return true;
  };
  int status = keepalive_cli::kExitOk;
  if (!reader.read_all(print_detach_help, take, &status)) return status;
  Target target;
  if (!open_target(kName, naming, reader, &target, &status)) return status;
  int detached = 0;
  std::string error;
  if (!keepalive_kernel::detach_ours(target.fd.get(), &detached, &error)) {
    keepalive_cli::print_error(kName, error + "; nothing changed");
    return keepalive_cli::kExitNoProcess;
  }
  printf("%s: %s\n", target.path.c_str(),
         detached == 0 ? "no program of ours was attached" : "detached our program");
  return keepalive_cli::kExitOk;
}
