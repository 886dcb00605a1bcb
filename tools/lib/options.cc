// options.cc — see options.h.

#include "lib/options.h"

#include <string.h>

#include "lib/output.h"
#include "lib/process.h"

namespace keepalive_cli {

OptionReader::OptionReader(const char *command, int argc, char **argv,
                           const std::vector<Option> &options, ConfigFlags *flags,
                           const char *consequence)
    : command_(command),
      argc_(argc),
      argv_(argv),
      options_(options),
      flags_(flags),
      consequence_(consequence) {}

bool OptionReader::usage_error(const std::string &message) const {
  std::string line = message + " (see keepalive " + command_ + " --help)";
  if (*consequence_ != '\0') line += std::string("; ") + consequence_;
  print_error(command_, line);
  error_ = message;
  return false;
}

OptionReader::Kind OptionReader::next() {
  option_ = nullptr;
  value_ = nullptr;
  if (index_ >= argc_) return kEnd;
  std::string_view arg = argv_[index_];
  if (arg == "--") {
    ++index_;
    return kEnd;
  }
  if (is_help_option(arg)) {
    ++index_;
    return kHelp;
  }
  if (arg.size() > 1 && arg[0] == '-') return read_option(arg);
  value_ = argv_[index_++];
  return kOperand;
}

// argv[index_], which starts with '-': one of the table's options, with its
// value when it takes one.
OptionReader::Kind OptionReader::read_option(std::string_view arg) {
  size_t equals = arg.find('=');
  option_ = find_option(arg.substr(0, equals));
  if (option_ == nullptr) return fail(std::string("unknown option ") + argv_[index_]);
  ++index_;
  if (option_->metavar == nullptr) {
    if (equals != std::string_view::npos) {
      return fail(std::string(option_->name) + " takes no value");
    }
  } else if (equals != std::string_view::npos) {
    value_ = argv_[index_ - 1] + equals + 1;
  } else if (index_ < argc_) {
    value_ = argv_[index_++];
  } else {
    return fail(std::string(option_->name) + " needs a value: " + option_->name + " " +
                option_->metavar);
  }
  if (option_->variable == nullptr) return kOption;
  // A configuration flag: recorded in the flags, not handed on.
  std::string error;
  if (!flags_->give(*option_, value_ != nullptr ? value_ : "1", &error)) return fail(error);
  return next();
}

// The subcommand's option `name`, or the configuration flag when the
// subcommand takes them; nullptr for none.
const Option *OptionReader::find_option(std::string_view name) const {
  for (const Option &option : options_) {
    if (name == option.name) return &option;
  }
  if (flags_ == nullptr) return nullptr;
  for (const Option &option : ConfigFlags::options()) {
    if (name == option.name) return &option;
  }
  return nullptr;
}

bool OptionReader::read_all(void (*help)(), const std::function<bool(Kind)> &take, int *status) {
  for (;;) {
    Kind kind = next();
    if (kind == kEnd) return true;
    if (kind == kHelp) {
      help();
      *status = kExitOk;
      return false;
    }
    if (kind == kError || !take(kind)) {
      *status = kExitUsage;
      return false;
    }
  }
}

bool OptionReader::take_operand(const char *what, const char **slot) const {
  if (*slot != nullptr) {
    return usage_error(std::string("one ") + what + " only, got also " + value_);
  }
  *slot = value_;
  return true;
}

bool OptionReader::pid_operand(const char *text, pid_t *pid) const {
  if (text == nullptr) return usage_error("no PID given");
  std::string error;
  return read_pid("PID", text, pid, &error) || usage_error(error);
}

std::string options_help(const std::vector<Option> &options) {
  std::string text;
  for (const Option &option : options) {
    if (option.help == nullptr) continue;
    std::string term = option.name;
    if (option.metavar != nullptr) term += std::string(" ") + option.metavar;
    text += help_entry(term, option.help);
  }
  return text;
}

bool read_pid(const char *what, const char *text, pid_t *out, std::string *error) {
  if (parse_pid(text, out)) return true;
  *error = std::string(what) + " must be a process ID (a positive number), not '" + text + "'";
  return false;
}

}  // namespace keepalive_cli
