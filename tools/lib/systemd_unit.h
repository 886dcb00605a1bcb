// systemd_unit.h — what `keepalive enable/disable/status` need to know of
// systemd's unit files, without systemd: quoting an Environment= assignment
// the way systemd unquotes it, splitting an Environment= value back into
// assignments, resolving specifiers, reading a unit's [Service] lines, and
// finding a unit's file and drop-ins as systemd does. Pure text handling
// but for find_unit_files and unit_environment.
#ifndef KEEPALIVE_TOOLS_SYSTEMD_UNIT_H
#define KEEPALIVE_TOOLS_SYSTEMD_UNIT_H

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace keepalive_cli {

// Environment= text keeps systemd's specifiers (%N, %i, ...) "as written":
// systemd resolves them when it loads the unit. Literal text goes in with
// its % doubled (specifier_escape); text read from a unit goes back as it
// was written, so that systemd resolves its specifiers for the service.
std::string specifier_escape(std::string_view literal);

// "NAME=VALUE", as written, as one Environment= word that systemd reads back
// as exactly that text: in double quotes, with \ and " escaped, control
// bytes as \xNN (a % stays as it is: see specifier_escape).
std::string systemd_quote(std::string_view written);

// Splits an Environment= value into its words as systemd does (quotes
// removed, C escapes decoded; specifiers stay as written). Returns false, as
// systemd stops reading such a line, on an unfinished quote or an unknown
// escape; `words` then holds the words before it, which systemd keeps.
bool systemd_split(std::string_view value, std::vector<std::string> *words);

// Resolves the specifiers of `written` as systemd does for service `unit`
// (foo@bar.service): %% and the unit name's own (%n %N %p %P %i %I %j %J
// %f); the others systemd knows (%H, %t, ...) are kept as written. Returns
// false, as systemd ignores such a word, for a specifier it does not know.
bool resolve_specifiers(std::string_view written, std::string_view unit, std::string *resolved);

// The Key=Value assignments of a unit file's [Service] section, in order,
// with continuation lines joined and comments skipped.
std::vector<std::pair<std::string, std::string>> service_assignments(std::string_view text);

// A unit's environment as its Environment= lines build it, file after file
// (an empty Environment= empties it), with the file that set each variable
// last, the EnvironmentFile= lines seen (systemd reads those later, and they
// win) and the UnsetEnvironment= words (applied last). Specifiers are
// resolved for `unit` (see UnitFiles).
struct UnitEnvironment {
  struct Variable {
    std::string name, value, file;
    std::string written;  // the value before its specifiers were resolved
  };
  explicit UnitEnvironment(std::string unit_name) : unit(std::move(unit_name)) {}
  std::string unit;
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

// The directories systemd reads system units from, in its order: `unit_dir`
// first (unless it is one of them), then systemd's own, from
// /etc/systemd/system.control to /usr/lib/systemd/system, each only once
// (the same directory through a symlink, as /lib on a merged /usr, is
// skipped).
std::vector<std::string> unit_directories(const std::string &unit_dir);

// The files systemd reads for service `unit`, found as systemd finds them:
// the unit's file (its own, else its template's for an instance; an alias,
// a symlink, leads to its target's), and the drop-ins *.conf of every
// directory systemd reads for each of the unit's names (the name, its
// template, its dash prefixes — web-app-x.service: web-app-.service.d,
// web-.service.d — its aliases, then service.d), in the order systemd
// applies them: by file name, a name found earlier (an earlier directory,
// or a more specific name in the same one) hiding the same name later.
// The drop-in `absent` is taken as not there (the one being replaced: a
// file of the same name that it hides is read instead).
// systemd resolves the specifiers of the unit's file with the name asked
// for, those of the drop-ins with the unit's own name (`id`: an alias's
// target, foo-bar@q.service for al-x@q.service when al-x@.service is a
// symlink to foo-bar@.service).
struct UnitFiles {
  std::string unit;                  // the name asked for
  std::string id;                    // the unit's own name
  std::vector<std::string> aliases;  // its other names: the alias's target, other aliases
  std::string unit_file;             // "" when there is none
  std::vector<std::string> drop_ins;
};
UnitFiles find_unit_files(const std::vector<std::string> &directories, const std::string &unit,
                          const std::string &absent = "");

// The environment systemd builds from `files`.
UnitEnvironment unit_environment(const UnitFiles &files);
// The same with the drop-in at `drop_in_path` (which may not exist yet) read
// as `drop_in_text`: it hides every drop-in of the same file name.
UnitEnvironment unit_environment(const UnitFiles &files, const std::string &drop_in_path,
                                 const std::string &drop_in_text);

// A line diff of two texts: lines only in `before` as "-line", only in
// `after` as "+line", common lines as " line".
std::string line_diff(std::string_view before, std::string_view after);

}  // namespace keepalive_cli

#endif  // KEEPALIVE_TOOLS_SYSTEMD_UNIT_H
