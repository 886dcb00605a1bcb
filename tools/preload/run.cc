// run.cc — `keepalive run [FLAGS] [--] CMD [ARGS...]`: validates the
// configuration (flags over environment) with the core, exports it, puts the
// library first in LD_PRELOAD and execs CMD, so that CMD's exit status and
// signals are the caller's to see. Nothing is started when anything is wrong.

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <string>
#include <string_view>
#include <vector>

#include "commands.h"
#include "lib/cli.h"
#include "lib/options.h"
#include "lib/program.h"

namespace {

using keepalive_cli::kExitOk;
using keepalive_cli::kExitUsage;

constexpr char kName[] = "run";

// Exit statuses of a CMD that could not be started, as env(1) and the shell use.
constexpr int kExitCannotExecute = 126;
constexpr int kExitNotFound = 127;

void print_help() {
  std::string text =
      "Usage: keepalive run [FLAGS] [--] CMD [ARGS...]\n"
      "Runs CMD with libkeepalive preloaded: every TCP connection it accepts or opens\n"
      "gets the keepalive settings of the configuration (KEEPALIVE_* environment,\n"
      "FLAGS win).\n"
      "\n"
      "The configuration is validated first; when it is invalid, nothing is started\n"
      "(exit 2).\n"
      "The library's absolute path is put first in LD_PRELOAD, other entries are kept.\n"
      "CMD replaces keepalive (exec): its exit status and signals are CMD's own.\n"
      "\n"
      "FLAGS:\n";
  text += keepalive_cli::ConfigFlags::usage();
  text +=
      "\n"
      "The library is libkeepalive.so in the lib directory beside the command's bin\n"
      "directory, or taken from KEEPALIVE_LIBRARY.\n"
      "Exit status: CMD's; 2 invalid configuration or usage; 126 CMD cannot be\n"
      "executed; 127 CMD not found.\n"
      "\n"
      "Example: keepalive run --idle 270 -- prosody\n";
  fputs(text.c_str(), stdout);
}

// The LD_PRELOAD value with `library` first; an entry equal to `library`
// means it is preloaded already.
std::string preload_with(const std::string &library, const char *existing) {
  std::vector<std::string> entries =
      keepalive_cli::preload_entries(existing != nullptr ? existing : "");
  for (const std::string &entry : entries) {
    if (entry == library) return existing;
  }
  return entries.empty() ? library : library + ":" + existing;
}

// The file execvp would run for `name`, or "" when it finds none.
std::string find_program(const char *name) {
  if (strchr(name, '/') != nullptr) return name;
  const char *path = getenv("PATH");
  std::string_view dirs = path != nullptr ? path : "/bin:/usr/bin";
  for (;;) {
    size_t colon = dirs.find(':');
    std::string dir(dirs.substr(0, colon));
    std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + name;
    struct stat st;
    if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
    if (colon == std::string_view::npos) return "";
    dirs.remove_prefix(colon + 1);
  }
}

// Why the loader will not preload the library into `program`, or "" when
// nothing stands in the way that can be seen from outside.
std::string preload_obstacle(const std::string &program) {
  struct stat st;
  if (stat(program.c_str(), &st) != 0) return "";
  if (((st.st_mode & S_ISUID) != 0 && st.st_uid != getuid()) ||
      ((st.st_mode & S_ISGID) != 0 && (st.st_mode & S_IXGRP) != 0 && st.st_gid != getgid())) {
    return "is set-user-ID or set-group-ID: under secure execution the loader ignores "
           "LD_PRELOAD paths and libkeepalive stays inactive";
  }
  if (getxattr(program.c_str(), "security.capability", nullptr, 0) > 0) {
    return "has file capabilities: under secure execution the loader ignores LD_PRELOAD paths "
           "and libkeepalive stays inactive";
  }
  int fd = open(program.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  keepalive_cli::ProgramFacts facts = keepalive_cli::read_program_facts(fd);
  close(fd);
  return keepalive_cli::library_obstacle(facts);
}

// Reads FLAGS up to CMD, which starts at argv[*command_index]; returns false
// when the command ends here with *status (help printed, or a usage error
// reported).
bool parse_arguments(int argc, char **argv, keepalive_cli::ConfigFlags *flags, int *command_index,
                     int *status) {
  const std::vector<keepalive_cli::Option> no_options;  // FLAGS only
  keepalive_cli::OptionReader reader(kName, argc, argv, no_options, flags, "nothing started");
  keepalive_cli::OptionReader::Kind kind = reader.next();
  *status = kExitUsage;
  if (kind == keepalive_cli::OptionReader::kHelp) {
    print_help();
    *status = kExitOk;
    return false;
  }
  if (kind == keepalive_cli::OptionReader::kError) return false;
  // CMD: the operand just read, or what follows "--".
  *command_index = reader.index() - (kind == keepalive_cli::OptionReader::kOperand ? 1 : 0);
  if (*command_index >= argc) {
    return reader.usage_error("no command given: keepalive run [FLAGS] [--] CMD [ARGS...]");
  }
  return true;
}

// Exports the configuration and puts the library first in LD_PRELOAD;
// returns false, with the reason printed, when `command` must not be started.
bool export_and_preload(const keepalive_cli::ConfigFlags &flags, const char *command) {
  std::string error;
  std::string library = keepalive_cli::locate_library(&error);
  if (library.empty()) {
    keepalive_cli::print_error(kName, error + "; " + command + " not started");
    return false;
  }
  if (!flags.export_to_environment(&error)) {
    keepalive_cli::print_error(kName, error);
    return false;
  }
  std::string preload = preload_with(library, getenv("LD_PRELOAD"));
  if (setenv("LD_PRELOAD", preload.c_str(), 1) != 0) {
    keepalive_cli::print_error(kName, std::string("cannot set LD_PRELOAD: ") + strerror(errno));
    return false;
  }
  return true;
}

}  // namespace

int keepalive_cmd_run(int argc, char **argv) {
  keepalive_cli::ConfigFlags flags;
  int index = 0;
  int status = kExitOk;
  if (!parse_arguments(argc, argv, &flags, &index, &status)) return status;
  char **command = argv + index;
  keepalive_cli::LoadedConfig loaded = keepalive_cli::load_config(flags);
  if (!loaded.config->valid) {
    keepalive_cli::print_invalid_configuration(kName, std::string(command[0]) + " not started",
                                               *loaded.config, flags);
    return kExitUsage;
  }
  if (!export_and_preload(flags, command[0])) return kExitUsage;

  std::string program = find_program(command[0]);
  if (!program.empty()) {
    std::string obstacle = preload_obstacle(program);
    if (!obstacle.empty()) {
      keepalive_cli::print_error(kName, "warning: " + program + " " + obstacle);
    }
  }
  fflush(stdout);
  execvp(command[0], command);
  int saved = errno;
  keepalive_cli::print_error(kName,
                             std::string("cannot run ") + command[0] + ": " + strerror(saved));
  return saved == ENOENT ? kExitNotFound : kExitCannotExecute;
}
