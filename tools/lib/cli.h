// cli.h — pieces shared by the `keepalive` subcommands: exit codes, the
// configuration flags (--idle … --strict) turned into a lookup for
// keepalive_config_load, loading and reporting a configuration, finding the
// library to preload, a small JSON writer and duration formatting.
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

// Widest line of any --help text (keepalive(1) and the docs test hold it).
inline constexpr size_t kHelpWidth = 80;
// Column where the descriptions of options start in every --help text.
inline constexpr size_t kHelpColumn = 26;

// One entry of a --help list: "  TERM" and TEXT, TEXT starting at `column`
// and wrapped at word boundaries to kHelpWidth; TEXT starts on the next line
// when TERM reaches the column. Ends with a newline.
std::string help_entry(std::string_view term, std::string_view text, size_t column = kHelpColumn);

// Prints "keepalive SUBCOMMAND: MESSAGE" to stderr.
void print_error(std::string_view subcommand, std::string_view message);

// True for "-h" and "--help": every subcommand answers both with its help.
bool is_help_option(std::string_view arg);

// The KEEPALIVE_* variables the core reads, in the order they are reported
// (keepalive_variable_name).
const std::vector<const char *> &configuration_variables();

// The configuration flags shared by run, check (and apply): each one stands
// for one KEEPALIVE_* variable and wins over the environment.
class ConfigFlags {
 public:
  enum class Parse { kConsumed, kNotMine, kError };

  // Looks at argv[*index]. "--idle D" and "--idle=D" are accepted. On
  // kConsumed, *index points at the last argument used; on kError, *error
  // names the flag and its accepted form.
  Parse parse(int argc, char **argv, int *index, std::string *error);

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

// Finds libkeepalive.so: $KEEPALIVE_LIBRARY when set, else the library
// installed beside the command (<dir of /proc/self/exe>/<bin→lib>/libkeepalive.so).
// Returns an absolute, normalized path, or "" with *error set.
std::string locate_library(std::string *error);

// A socket's keepalive settings as read back (keepalive_format_settings),
// a user timeout of 0 shown as the kernel default it is; "unreadable" when
// they could not be read (`read` false).
std::string settings_text(bool read, const keepalive_settings &settings);

// "4m30s", "1h", "75s", "1.5s", "250ms" for a duration in milliseconds.
std::string format_duration_ms(long long ms);

// Address and port of a socket address: "192.0.2.1:5222", "[2001:db8::1]:5222".
// Returns "" for a family other than AF_INET/AF_INET6.
std::string format_endpoint(const sockaddr_storage &address);

// A CIDR as text: "127.0.0.0/8", "::1/128".
std::string format_cidr(const keepalive_cidr &cidr);

// Rows as a text table, one line a row: every column but the last padded to
// its widest cell plus two spaces.
std::string format_table(const std::vector<std::vector<std::string>> &rows);

// Identical rows counted, in order of first appearance: {cells, count}.
std::vector<std::pair<std::vector<std::string>, int>> count_rows(
    const std::vector<std::vector<std::string>> &rows);

// One line per socket, or a summary (counts by group, failures in full) for
// inspect and apply: --summary, --full, else a summary above kSummaryAbove
// sockets (5 000 sockets would be 5 000 lines, or megabytes of JSON).
enum class Detail { kAuto, kSummary, kFull };
inline constexpr size_t kSummaryAbove = 200;
inline bool use_summary(Detail detail, size_t sockets) {
  return detail == Detail::kSummary || (detail == Detail::kAuto && sockets > kSummaryAbove);
}
// "--summary" or "--full": true with *detail set; false for another argument.
bool parse_detail_option(std::string_view arg, Detail *detail);
// The summary as a table: a SOCKETS column with each group's count, then
// the group's cells under `header`.
std::string summary_table(const std::vector<std::string> &header,
                          const std::vector<std::vector<std::string>> &keys);

// A JSON string literal, quotes included.
std::string json_quote(std::string_view text);

// Writes indented JSON into a string. Keys and values are written in order;
// commas and indentation are handled here, so output is always well formed
// when begin/end calls are balanced.
class JsonWriter {
 public:
  enum Layout { kIndented, kOneLine };  // kOneLine: a log pipeline's JSON Lines
  explicit JsonWriter(Layout layout = kIndented) : one_line_(layout == kOneLine) {}

  JsonWriter &begin_object();
  JsonWriter &end_object();
  JsonWriter &begin_array();
  JsonWriter &end_array();
  JsonWriter &key(std::string_view name);
  JsonWriter &string(std::string_view value);
  JsonWriter &number(long long value);
  JsonWriter &number(double value);  // up to 3 decimals, trailing zeros dropped
  JsonWriter &boolean(bool value);
  JsonWriter &null();

  // Convenience: key + value.
  JsonWriter &field(std::string_view name, std::string_view value) {
    return key(name).string(value);
  }
  JsonWriter &field(std::string_view name, const char *value) { return key(name).string(value); }
  JsonWriter &field(std::string_view name, long long value) { return key(name).number(value); }
  JsonWriter &field(std::string_view name, int value) {
    return key(name).number(static_cast<long long>(value));
  }
  JsonWriter &field(std::string_view name, double value) { return key(name).number(value); }
  JsonWriter &field(std::string_view name, bool value) { return key(name).boolean(value); }
  // A count or duration that may be KEEPALIVE_UNSET: null when unset.
  JsonWriter &optional_field(std::string_view name, long long value);
  // A text that may be absent: null when empty.
  JsonWriter &optional_field(std::string_view name, std::string_view text);

  // The document, with a final newline.
  std::string str() const { return out_ + "\n"; }

 private:
  void before_value();
  void open(char bracket);
  void close(char bracket);

  std::string out_;
  std::vector<bool> has_items_;  // one entry per open object/array
  bool after_key_ = false;
  bool one_line_ = false;
};

// Writes "summary_only": `summary` and, for a summary, "groups": the rows of
// `keys` counted, one object each with the fields `names` and "sockets".
void summary_json(JsonWriter *json, bool summary, const std::vector<const char *> &names,
                  const std::vector<std::vector<std::string>> &keys);

// Writes `name`: the keepalive options read from a socket (enabled, idle_s,
// intvl_s, cnt, user_timeout_ms as the kernel reports them), or null when
// they could not be read (`read` false).
void socket_settings_json(JsonWriter *json, std::string_view name, bool read,
                          const keepalive_settings &settings);

}  // namespace keepalive_cli

#endif  // KEEPALIVE_TOOLS_CLI_H
