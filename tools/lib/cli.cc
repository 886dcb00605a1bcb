// cli.cc — see cli.h.

#include "lib/cli.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <iterator>

#include "lib/options.h"
#include "lib/output.h"

// Set by tools/CMakeLists.txt: where the library lies relative to the
// command, in the build tree and in every install tree alike.
#ifndef KEEPALIVE_BIN_TO_LIB_DIR
#error "KEEPALIVE_BIN_TO_LIB_DIR must be defined (relative path from bin/ to lib/)"
#endif
#ifndef KEEPALIVE_LIBRARY_FILE
#error "KEEPALIVE_LIBRARY_FILE must be defined (file name of the preloaded library)"
#endif

namespace keepalive_cli {
namespace {

struct FlagSpec {
  const char *flag;
  const char *variable;
  const char *metavar;  // nullptr: a switch without value
  const char *help;
};

// The digits of a numeric macro, as a string literal.
#define KEEPALIVE_DIGITS_(x) #x
#define KEEPALIVE_DIGITS(x) KEEPALIVE_DIGITS_(x)

constexpr FlagSpec kFlags[] = {
    {"--idle", "KEEPALIVE_IDLE", "DURATION",
     "idle time before the first probe, 1s.." KEEPALIVE_DIGITS(KEEPALIVE_IDLE_MAX_S) "s (270, "
                                                                                     "4m30s)"},
    {"--intvl", "KEEPALIVE_INTVL", "DURATION",
     "time between probes, 1s.." KEEPALIVE_DIGITS(KEEPALIVE_INTVL_MAX_S) "s"},
    {"--cnt", "KEEPALIVE_CNT", "N",
     "unanswered probes before the connection is dropped, 1.." KEEPALIVE_DIGITS(KEEPALIVE_CNT_MAX)},
    {"--user-timeout", "KEEPALIVE_USER_TIMEOUT", "DURATION",
     "TCP_USER_TIMEOUT (30s, 2500ms; 0 = kernel default)"},
    {"--rules", "KEEPALIVE_RULES", "RULES",
     "per direction/port/peer rules, e.g. 'in port=5222 idle=270; off'"},
    {"--log", "KEEPALIVE_LOG", "LEVEL", "library diagnostics on stderr: quiet, info or debug"},
    {"--strict", "KEEPALIVE_STRICT", nullptr,
     "an invalid configuration makes the program exit 1 at start"},
};

// realpath() of the directory part, the file name kept as given, so that a
// symlink such as lib/libkeepalive.so stays the name shown to the user.
bool normalize_file_path(const std::string &path, std::string *out) {
  std::string dir = ".";
  std::string base = path;
  size_t slash = path.rfind('/');
  if (slash != std::string::npos) {
    dir = slash == 0 ? "/" : path.substr(0, slash);
    base = path.substr(slash + 1);
  }
  if (base.empty()) return false;
  char resolved[PATH_MAX];
  if (realpath(dir.c_str(), resolved) == nullptr) return false;
  std::string full = resolved;
  if (full != "/") full += '/';
  full += base;
  struct stat st;
  if (stat(full.c_str(), &st) != 0) return false;
  if (!S_ISREG(st.st_mode)) {
    errno = EISDIR;
    return false;
  }
  *out = full;
  return true;
}

}  // namespace

void print_error(std::string_view subcommand, std::string_view message) {
  std::string line = "keepalive";
  if (!subcommand.empty()) {
    line += ' ';
    line += subcommand;
  }
  line += ": ";
  line += message;
  line += '\n';
  fputs(line.c_str(), stderr);
}

bool is_help_option(std::string_view arg) { return arg == "-h" || arg == "--help"; }

const std::vector<const char *> &configuration_variables() {
  static const std::vector<const char *> kVariables = [] {
    std::vector<const char *> names;
    for (int i = 0; keepalive_variable_name(i) != nullptr; ++i) {
      names.push_back(keepalive_variable_name(i));
    }
    return names;
  }();
  return kVariables;
}

const std::vector<Option> &ConfigFlags::options() {
  static const std::vector<Option> kOptions = [] {
    static std::vector<std::string> helps;  // storage of the texts the options point to
    helps.reserve(std::size(kFlags));
    std::vector<Option> options;
    for (const FlagSpec &spec : kFlags) {
      helps.push_back(std::string(spec.help) + " [" + spec.variable + "]");
      options.push_back({spec.flag, spec.metavar, helps.back().c_str(), spec.variable});
    }
    return options;
  }();
  return kOptions;
}

bool ConfigFlags::give(const Option &flag, const char *value, std::string *error) {
  for (const Given &given : given_) {
    if (strcmp(given.variable, flag.variable) == 0) {
      *error = std::string(flag.name) + " is given twice";
      return false;
    }
  }
  given_.push_back(Given{flag.variable, flag.name, value});
  return true;
}

const char *ConfigFlags::flag_value(const char *variable) const {
  for (const Given &given : given_) {
    if (strcmp(given.variable, variable) == 0) return given.value.c_str();
  }
  return nullptr;
}

const char *ConfigFlags::flag_name(const char *variable) const {
  for (const Given &given : given_) {
    if (strcmp(given.variable, variable) == 0) return given.flag;
  }
  return nullptr;
}

const char *ConfigFlags::value(const char *variable) const {
  const char *given = flag_value(variable);
  if (given != nullptr) return given;
  if (own_environment_) return getenv(variable);
  for (const auto &[name, value] : environment_) {
    if (name == variable) return value.c_str();
  }
  return nullptr;
}

void ConfigFlags::use_environment(std::vector<std::pair<std::string, std::string>> variables) {
  own_environment_ = false;
  environment_ = std::move(variables);
}

std::vector<const char *> ConfigFlags::environment_names() const {
  std::vector<const char *> names;
  if (own_environment_) {
    for (char **entry = environ; *entry != nullptr; ++entry) names.push_back(*entry);
  } else {
    for (const auto &variable : environment_) names.push_back(variable.first.c_str());
  }
  names.push_back(nullptr);
  return names;
}

const char *ConfigFlags::lookup(const char *name, void *context) {
  return static_cast<const ConfigFlags *>(context)->value(name);
}

bool ConfigFlags::export_to_environment(std::string *error) const {
  for (const Given &given : given_) {
    if (setenv(given.variable, given.value.c_str(), 1) != 0) {
      *error = std::string("cannot set ") + given.variable + ": " + strerror(errno);
      return false;
    }
  }
  return true;
}

const char *ConfigFlags::usage() {
  static const std::string kText = options_help(options());
  return kText.c_str();
}

LoadedConfig load_config(const ConfigFlags &flags) {
  LoadedConfig loaded;
  loaded.config = std::make_unique<keepalive_config>();
  loaded.kernel_intvl_s = keepalive_kernel_default_intvl();
  // The lookup only reads through its context; the C API takes it as void *.
  // The names of the environment too: a misspelled KEEPALIVE_* variable is
  // reported as the library reports it.
  keepalive_config_load_names(loaded.config.get(), ConfigFlags::lookup,
                              const_cast<ConfigFlags *>(&flags), loaded.kernel_intvl_s,
                              flags.environment_names().data());
  return loaded;
}

std::vector<std::string> describe_problems(const keepalive_config &config,
                                           const ConfigFlags &flags) {
  std::vector<std::string> lines;
  int shown = keepalive_kept_problems(&config);
  for (int i = 0; i < shown; ++i) {
    std::string line = config.problems[i];
    const char *variable = keepalive_variable_name(config.problem_variables[i]);
    const char *flag = variable != nullptr ? flags.flag_name(variable) : nullptr;
    if (flag != nullptr) line += std::string(" (given as ") + flag + ")";
    lines.push_back(std::move(line));
  }
  if (config.nproblems > shown) {
    lines.push_back(std::to_string(config.nproblems - shown) + " more problems not shown");
  }
  return lines;
}

void print_invalid_configuration(std::string_view subcommand, std::string_view consequence,
                                 const keepalive_config &config, const ConfigFlags &flags) {
  std::string message = "invalid configuration, " + std::string(consequence) + ":";
  for (const std::string &problem : describe_problems(config, flags)) message += "\n  " + problem;
  print_error(subcommand, message);
}

std::vector<std::string> describe_warnings(const keepalive_config &config) {
  std::vector<std::string> lines;
  int shown = keepalive_kept_warnings(&config);
  for (int i = 0; i < shown; ++i) lines.push_back(std::string(config.warnings[i]) + " (ignored)");
  if (config.nwarnings > shown) {
    lines.push_back(std::to_string(config.nwarnings - shown) + " more warnings not shown");
  }
  return lines;
}

std::string own_executable(std::string *error) {
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) {
    *error = std::string("cannot read /proc/self/exe: ") + strerror(errno);
    return "";
  }
  return std::string(exe, static_cast<size_t>(n));
}

std::string locate_library(std::string *error) {
  std::string path;
  const char *override_path = getenv("KEEPALIVE_LIBRARY");
  if (override_path != nullptr && *override_path != '\0') {
    if (!normalize_file_path(override_path, &path)) {
      *error = std::string("KEEPALIVE_LIBRARY=") + override_path + ": " + strerror(errno);
      return "";
    }
    return path;
  }
  std::string dir = own_executable(error);
  if (dir.empty()) {
    *error += " (to find the library); set KEEPALIVE_LIBRARY=/path/to/" KEEPALIVE_LIBRARY_FILE;
    return "";
  }
  dir.resize(dir.rfind('/') + 1);
  std::string expected = dir + KEEPALIVE_BIN_TO_LIB_DIR "/" KEEPALIVE_LIBRARY_FILE;
  if (!normalize_file_path(expected, &path)) {
    *error = std::string(KEEPALIVE_LIBRARY_FILE " not found at ") + expected + " (" +
             strerror(errno) +
             "); it is installed beside the command, or set "
             "KEEPALIVE_LIBRARY=/path/to/" KEEPALIVE_LIBRARY_FILE;
    return "";
  }
  return path;
}

std::vector<std::string> preload_entries(std::string_view value) {
  std::vector<std::string> entries;
  while (!value.empty()) {
    size_t end = value.find_first_of(" :");
    if (end != 0) entries.emplace_back(value.substr(0, end));
    value = end == std::string_view::npos ? std::string_view() : value.substr(end + 1);
  }
  return entries;
}

}  // namespace keepalive_cli
