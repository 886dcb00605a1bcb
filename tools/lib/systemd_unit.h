// systemd_unit.h — what `keepalive enable/disable/status` need to know of
// systemd's unit files, without systemd: quoting an Environment= assignment
// the way systemd unquotes it, splitting an Environment= value back into
// assignments, reading a unit's [Service] lines, and finding a unit's file
// and drop-ins in the usual directories. Pure text handling but for
// find_unit_files.
#ifndef KEEPALIVE_TOOLS_SYSTEMD_UNIT_H
#define KEEPALIVE_TOOLS_SYSTEMD_UNIT_H

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace keepalive_cli {

// "NAME=VALUE" as one Environment= word that systemd reads back as exactly
// NAME=VALUE: in double quotes, with \ and " escaped, % doubled (systemd
// expands specifiers in Environment=), control bytes as \xNN.
std::string systemd_quote(std::string_view assignment);

// Splits an Environment= value into its words as systemd does (quotes
// removed, C escapes decoded, %% read as %; other specifiers are kept as
// written). Returns false, as systemd ignores such a line, on an unfinished
// quote or escape.
bool systemd_split(std::string_view value, std::vector<std::string> *words);

// The Key=Value assignments of a unit file's [Service] section, in order,
// with continuation lines joined and comments skipped.
std::vector<std::pair<std::string, std::string>> service_assignments(std::string_view text);

// A unit's environment as its Environment= lines build it, file after file
// (an empty Environment= empties it), with the file that set each variable
// last, the EnvironmentFile= lines seen (systemd reads those later, and they
// win) and the UnsetEnvironment= words (applied last).
struct UnitEnvironment {
  struct Variable {
    std::string name, value, file;
  };
  std::vector<Variable> variables;
  std::vector<std::string> environment_files;  // "FILE: VALUE"
  std::string emptied_by;  // the last file with an empty Environment= ("": none)
  // UnsetEnvironment= words (NAME, or NAME=VALUE: only that value) and their
  // file: systemd removes them from the final environment, wherever read.
  std::vector<Variable> unset;
  // Whether UnsetEnvironment= removes `variable` (*file: the line's file).
  bool unsets(const Variable &variable, std::string *file) const;
  void add_file(const std::string &path, std::string_view text);
  const Variable *find(std::string_view name) const;
};

// "prosody" → "prosody.service"; "" when NAME is not a service unit name.
std::string service_unit_name(std::string_view name);

// The directories systemd reads system units from, `unit_dir` first, then
// /etc/systemd/system, /run/systemd/system, /lib/systemd/system and
// /usr/lib/systemd/system, each only once (the same directory through a
// symlink, as /lib on a merged /usr, is skipped).
std::vector<std::string> unit_directories(const std::string &unit_dir);

// The unit's file (the first directory that has it; "" if none) and its
// drop-ins UNIT.d/*.conf, in the order systemd applies them (by file name;
// a name in an earlier directory hides the same name in later ones).
struct UnitFiles {
  std::string unit_file;
  std::vector<std::string> drop_ins;
};
UnitFiles find_unit_files(const std::vector<std::string> &directories, const std::string &unit);

// A line diff of two texts: lines only in `before` as "-line", only in
// `after` as "+line", common lines as " line".
std::string line_diff(std::string_view before, std::string_view after);

}  // namespace keepalive_cli

#endif  // KEEPALIVE_TOOLS_SYSTEMD_UNIT_H
