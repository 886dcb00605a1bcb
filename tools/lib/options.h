// options.h — the one option reader of every subcommand: the options it
// takes (Option, cli.h), read in both forms (--name VALUE and
// --name=VALUE) together with the configuration flags (ConfigFlags) where
// it takes them, its usage errors in one form, its PIDs with one message,
// and its --help lines from the same table.
#ifndef KEEPALIVE_TOOLS_OPTIONS_H
#define KEEPALIVE_TOOLS_OPTIONS_H

#include <sys/types.h>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "lib/cli.h"
#include "lib/output.h"

namespace keepalive_cli {

// Reads a subcommand's arguments in order:
//   for (;;) switch (reader.next()) { ... }
// Usage errors take one form: "keepalive COMMAND: MESSAGE (see keepalive
// COMMAND --help); CONSEQUENCE" on stderr, exit status 2.
class OptionReader {
 public:
  enum Kind {
    kOption,   // one of the table's: name() and, for an option with a value, value()
    kOperand,  // an argument that is no option: value()
    kHelp,     // -h or --help
    kEnd,      // no more arguments (or "--": the rest are operands, from index())
    kError,    // a usage error, already reported
  };

  // `command` names the subcommand ("apply", "natprobe"); `flags`, when
  // given, takes the configuration flags; `consequence` ends every usage
  // error ("nothing changed"), unless empty.
  OptionReader(const char *command, int argc, char **argv, const std::vector<Option> &options,
               ConfigFlags *flags = nullptr, const char *consequence = "");

  Kind next();
  // The option just read is `name`.
  bool is(std::string_view name) const { return option_ != nullptr && name == option_->name; }
  std::string_view name() const { return option_ != nullptr ? option_->name : ""; }
  const char *value() const { return value_; }
  // The argument after the one just read.
  int index() const { return index_; }
  // The last usage error's message, as reported after "keepalive COMMAND: ".
  const std::string &error() const { return error_; }

  // Reports a usage error in the one form; returns false, for read_all's
  // `take` to return.
  bool usage_error(const std::string &message) const;

  // The operand just read, into *slot: the only one of its kind the command
  // takes (`what`: "PID", "UNIT"); a second is a usage error.
  bool take_operand(const char *what, const char **slot) const;
  // *pid from `text`, the command's PID operand (nullptr when none was
  // given); false after a usage error.
  bool pid_operand(const char *text, pid_t *pid) const;

  // Reads every argument up to the end (or "--"), handing each option and
  // operand to `take`, which returns false after a usage_error. Returns
  // false when the command ends here, with *status: `help` printed (0), or
  // a usage error reported (kExitUsage).
  bool read_all(void (*help)(), const std::function<bool(Kind)> &take, int *status);

 private:
  Kind read_option(std::string_view arg);
  const Option *find_option(std::string_view name) const;
  Kind fail(const std::string &message) const {
    usage_error(message);
    return kError;
  }

  const char *command_;
  int argc_;
  char **argv_;
  const std::vector<Option> &options_;
  ConfigFlags *flags_;
  const char *consequence_;
  int index_ = 1;
  const Option *option_ = nullptr;
  const char *value_ = nullptr;
  mutable std::string error_;
};

// The options of a table as --help lines, one help_entry each.
std::string options_help(const std::vector<Option> &options);

// A process ID given as `what` ("PID", "--pid"): a positive number that fits
// pid_t; false with *error "WHAT must be a process ID (a positive number),
// not 'TEXT'".
bool read_pid(const char *what, const char *text, pid_t *out, std::string *error);

}  // namespace keepalive_cli

#endif  // KEEPALIVE_TOOLS_OPTIONS_H
