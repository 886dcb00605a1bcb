// cli.h — the command line shared by the `keepalive` subcommands: exit
// codes, errors on stderr, the configuration flags (--idle … --strict)
// turned into a lookup for keepalive_config_load, loading and reporting a
// configuration, finding the library to preload and LD_PRELOAD's entries.
// Text and JSON output: output.h; the options of each subcommand: options.h.
//
// Nothing here parses a duration, a count or a rule: every value goes to the
// core (keepalive_config_load), which is the project's only parser.
#ifndef KEEPALIVE_TOOLS_CLI_H
#define KEEPALIVE_TOOLS_CLI_H

#include <sys/socket.h>

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "keepalive/keepalive.h"

namespace keepalive_cli {

// Exit codes shared by the subcommands: one meaning each (keepalive(1),
// EXIT STATUS). run also passes on CMD's status, 126 and 127.
inline constexpr int kExitOk = 0;
// Done only in part, or the answer is no: check found the configuration
// invalid; inspect or apply could not examine (or set) every socket;
// natprobe could not measure.
inline constexpr int kExitFailure = 1;
// Nothing done: a wrong command line, or an invalid configuration given to
// run or apply.
inline constexpr int kExitUsage = 2;
// Nothing done: the process cannot be reached (inspect, apply): no such
// process, permission denied, kernel too old.
inline constexpr int kExitNoProcess = 3;

// Prints "keepalive SUBCOMMAND: MESSAGE" to stderr.
void print_error(std::string_view subcommand, std::string_view message);

// True for "-h" and "--help": every subcommand answers both with its help.
bool is_help_option(std::string_view arg);

// The KEEPALIVE_* variables the core reads, in the order they are reported
// (keepalive_variable_name).
const std::vector<const char *> &configuration_variables();

// One option of a subcommand, in the one option table and reader
// (options.h).
struct Option {
  const char *name;                // "--pid"
  const char *metavar;             // "PID", or nullptr for a switch
  const char *help;                // its --help text (help_entry wraps it)
  const char *variable = nullptr;  // a configuration flag: the KEEPALIVE_* it stands for
};

// The configuration flags shared by run, check (and apply): each one stands
// for one KEEPALIVE_* variable and wins over the environment.
class ConfigFlags {
 public:
  // The flags as options of the one option reader (options.h), each with
  // its variable, its help ending in " [VARIABLE]".
  static const std::vector<Option> &options();

  // Records the value given by `flag` (one of options()); false with
  // *error set when the flag was given before.
  bool give(const Option &flag, const char *value, std::string *error);

  // The value given by a flag for `variable`, or nullptr.
  const char *flag_value(const char *variable) const;
  // The flag that set `variable` ("--idle"), or nullptr.
  const char *flag_name(const char *variable) const;
  // The value the core sees: the flag's when given, else the environment's.
  const char *value(const char *variable) const;

  // keepalive_lookup_fn: the flag's value when given, else the
  // environment's. `context` is the ConfigFlags.
  static const char *lookup(const char *name, void *context);

  // The environment under the flags: the process's own (getenv, environ) by
  // default, else these NAME, VALUE pairs (a drop-in's, or a process's at
  // its start), read through the same lookup.
  void use_environment(std::vector<std::pair<std::string, std::string>> variables);
  // The environment's names (NAME or NAME=VALUE, as environ), ended by nullptr.
  std::vector<const char *> environment_names() const;

  // Puts every flag's value into the environment (for `run`).
  // Returns false with *error set when setenv fails.
  bool export_to_environment(std::string *error) const;

  // Usage lines for --help, one flag a line.
  static const char *usage();

 private:
  struct Given {
    const char *variable;
    const char *flag;
    std::string value;
  };
  std::vector<Given> given_;
  bool own_environment_ = true;
  std::vector<std::pair<std::string, std::string>> environment_;
};

// A loaded configuration with the facts needed to report it.
struct LoadedConfig {
  std::unique_ptr<keepalive_config> config;  // large: kept on the heap
  int kernel_intvl_s = 0;
};

// Loads the configuration from flags and environment with the core, which
// also reports the environment's KEEPALIVE_* names it does not know.
LoadedConfig load_config(const ConfigFlags &flags);

// The configuration's problems, one line each, with " (given as --idle)"
// after a problem about a variable that came from a flag.
std::vector<std::string> describe_problems(const keepalive_config &config,
                                           const ConfigFlags &flags);

// "SUBCOMMAND: invalid configuration, CONSEQUENCE:" and describe_problems,
// one indented line each, on stderr.
void print_invalid_configuration(std::string_view subcommand, std::string_view consequence,
                                 const keepalive_config &config, const ConfigFlags &flags);

// The configuration's warnings, one line each, as the library prints them.
std::vector<std::string> describe_warnings(const keepalive_config &config);

// This command's own file, absolute (/proc/self/exe); "" with *error set.
std::string own_executable(std::string *error);

// Finds libkeepalive.so: $KEEPALIVE_LIBRARY when set, else the library
// installed beside the command (<dir of /proc/self/exe>/<bin→lib>/libkeepalive.so).
// Returns an absolute, normalized path, or "" with *error set.
std::string locate_library(std::string *error);

// LD_PRELOAD's entries, separated by spaces or colons as ld.so reads them.
std::vector<std::string> preload_entries(std::string_view value);

}  // namespace keepalive_cli

#endif  // KEEPALIVE_TOOLS_CLI_H
