// systemd_unit.cc — see systemd_unit.h.

#include "lib/systemd_unit.h"

#include <ctype.h>
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <sstream>

#include "lib/files.h"

namespace keepalive_cli {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string_view trim(std::string_view text) {
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes the escape at text[*i] (just after the backslash) into *out, as
// systemd's cunescape does for the sequences it knows; false for others.
bool decode_escape(std::string_view text, size_t *i, std::string *out) {
  if (*i >= text.size()) return false;
  char c = text[*i];
  static constexpr std::string_view kFrom = "abfnrtv\\\"'s";
  static constexpr std::string_view kTo = "\a\b\f\n\r\t\v\\\"' ";
  size_t simple = kFrom.find(c);
  if (simple != std::string_view::npos) {
    *out += kTo[simple];
    ++*i;
    return true;
  }
  if (c == 'x') {
    int high = *i + 1 < text.size() ? hex_value(text[*i + 1]) : -1;
    int low = *i + 2 < text.size() ? hex_value(text[*i + 2]) : -1;
    if (high < 0 || low < 0 || (high == 0 && low == 0)) return false;
    *out += static_cast<char>(high * 16 + low);
    *i += 3;
    return true;
  }
  if (c >= '0' && c <= '3' && *i + 2 < text.size()) {
    int value = 0;
    for (size_t k = 0; k < 3; ++k) {
      char digit = text[*i + k];
      if (digit < '0' || digit > '7') return false;
      value = value * 8 + (digit - '0');
    }
    if (value == 0) return false;
    *out += static_cast<char>(value);
    *i += 3;
    return true;
  }
  return false;
}

}  // namespace

std::string specifier_escape(std::string_view literal) {
  std::string out;
  for (char c : literal) out += c == '%' ? "%%" : std::string(1, c);
  return out;
}

std::string systemd_quote(std::string_view written) {
  std::string out = "\"";
  for (char c : written) {
    unsigned char byte = static_cast<unsigned char>(c);
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (byte < 0x20 || byte == 0x7f) {
      char escaped[8];
      snprintf(escaped, sizeof escaped, "\\x%02x", byte);
      out += escaped;
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

bool systemd_split(std::string_view value, std::vector<std::string> *words) {
  words->clear();
  size_t i = 0;
  while (true) {
    while (i < value.size() && is_space(value[i])) ++i;
    if (i >= value.size()) return true;
    std::string word;
    char quote = 0;
    while (i < value.size() && (quote != 0 || !is_space(value[i]))) {
      char c = value[i];
      if (c == '\\') {
        ++i;
        if (!decode_escape(value, &i, &word)) return false;
      } else if (quote == 0 && (c == '"' || c == '\'')) {
        quote = c;
        ++i;
      } else if (c == quote) {
        quote = 0;
        ++i;
      } else {
        word += c;
        ++i;
      }
    }
    if (quote != 0) return false;
    words->push_back(std::move(word));
  }
}

namespace {

// The parts of a unit name: "foo-bar@baz.service" has the prefix "foo-bar",
// the instance "baz" (an instance: '@' and text before the suffix), the
// suffix ".service"; "foo@.service" is a template, with no instance.
struct UnitName {
  std::string prefix, instance, suffix;
  bool has_at = false;
  explicit UnitName(std::string_view name) {
    size_t dot = name.rfind('.');
    if (dot == std::string_view::npos) dot = name.size();
    suffix = std::string(name.substr(dot));
    std::string_view stem = name.substr(0, dot);
    size_t at = stem.find('@');
    has_at = at != std::string_view::npos;
    prefix = std::string(stem.substr(0, at));
    if (has_at) instance = std::string(stem.substr(at + 1));
  }
  bool is_instance() const { return has_at && !instance.empty(); }
  std::string templated() const { return prefix + "@" + suffix; }
  std::string with_instance(const std::string &other) const {
    return prefix + (has_at ? "@" + other : "") + suffix;
  }
};

// systemd's unescaping of a unit name part: \xNN is the byte, '-' is '/'.
std::string unescape_name(std::string_view part) {
  std::string out;
  for (size_t i = 0; i < part.size(); ++i) {
    if (part[i] == '-') {
      out += '/';
    } else if (part[i] == '\\' && i + 3 < part.size() && part[i + 1] == 'x' &&
               hex_value(part[i + 2]) >= 0 && hex_value(part[i + 3]) >= 0) {
      out += static_cast<char>(hex_value(part[i + 2]) * 16 + hex_value(part[i + 3]));
      i += 3;
    } else {
      out += part[i];
    }
  }
  return out;
}

}  // namespace

bool resolve_specifiers(std::string_view written, std::string_view unit, std::string *resolved) {
  // Those systemd resolves from the machine, the user or the unit's file:
  // kept as written.
  static constexpr std::string_view kKeptAsWritten = "aAbBCdEgGhHlLmMoqsStTuUvVwWyY";
  const UnitName name(unit);
  const std::string stem = name.prefix + (name.has_at ? "@" + name.instance : "");
  const size_t dash = name.prefix.rfind('-');
  const std::string last = dash == std::string::npos ? name.prefix : name.prefix.substr(dash + 1);
  resolved->clear();
  for (size_t i = 0; i < written.size(); ++i) {
    if (written[i] != '%' || i + 1 == written.size()) {  // a lone % at the end stays
      *resolved += written[i];
      continue;
    }
    const char c = written[++i];
    switch (c) {
      case '%':
        *resolved += '%';
        break;
      case 'n':
        *resolved += std::string(unit);
        break;
      case 'N':
        *resolved += stem;
        break;
      case 'p':
        *resolved += name.prefix;
        break;
      case 'P':
        *resolved += unescape_name(name.prefix);
        break;
      case 'i':
        *resolved += name.instance;
        break;
      case 'I':
        *resolved += unescape_name(name.instance);
        break;
      case 'j':
        *resolved += last;
        break;
      case 'J':
        *resolved += unescape_name(last);
        break;
      case 'f':
        *resolved += "/" + unescape_name(name.is_instance() ? name.instance : name.prefix);
        break;
      default:
        // An unknown letter or digit is an error; any other character is
        // no specifier.
        if (kKeptAsWritten.find(c) == std::string_view::npos &&
            isalnum(static_cast<unsigned char>(c))) {
          return false;
        }
        *resolved += '%';
        *resolved += c;
    }
  }
  return true;
}

std::vector<std::pair<std::string, std::string>> service_assignments(std::string_view text) {
  std::vector<std::pair<std::string, std::string>> out;
  bool in_service = false;
  std::string pending;  // a line continued with a trailing backslash
  std::istringstream lines{std::string(text)};
  std::string raw;
  while (std::getline(lines, raw)) {
    std::string_view line = trim(raw);
    // A comment is skipped, inside a continued line too; an empty line ends one.
    const bool comment = !line.empty() && (line[0] == '#' || line[0] == ';');
    if (comment || (line.empty() && pending.empty())) continue;
    if (!line.empty() && line.back() == '\\') {
      line.remove_suffix(1);
      pending += std::string(line) + " ";
      continue;
    }
    std::string full = pending + std::string(line);
    pending.clear();
    if (full.size() >= 2 && full.front() == '[' && full.back() == ']') {
      in_service = full == "[Service]";
      continue;
    }
    if (!in_service) continue;
    size_t equals = full.find('=');
    if (equals == std::string::npos) continue;
    out.emplace_back(std::string(trim(std::string_view(full).substr(0, equals))),
                     std::string(trim(std::string_view(full).substr(equals + 1))));
  }
  return out;
}

void UnitEnvironment::add_file(const std::string &path, std::string_view text) {
  for (const auto &[key, value] : service_assignments(text)) {
    if (key == "EnvironmentFile") {
      environment_files.push_back(path + ": " + value);
      continue;
    }
    if (key != "Environment" && key != "UnsetEnvironment") continue;
    if (value.empty()) {
      if (key == "Environment") {
        variables.clear();
        emptied_by = path;
      } else {
        unset.clear();
      }
      continue;
    }
    std::vector<std::string> words;
    systemd_split(value, &words);  // systemd keeps the words before a syntax error
    for (const std::string &written : words) {
      std::string word;
      if (!resolve_specifiers(written, unit, &word)) continue;  // systemd ignores it too
      const size_t equals = word.find('=');
      if (key == "UnsetEnvironment") {
        unset.push_back(Variable{word.substr(0, equals),
                                 equals == std::string::npos ? "" : word.substr(equals), path, ""});
        continue;
      }
      if (equals == std::string::npos || equals == 0) continue;
      Variable variable{word.substr(0, equals), word.substr(equals + 1), path,
                        written.substr(written.find('=') + 1)};
      // A variable set again keeps its place, as in systemd's list.
      auto same = [&](const Variable &v) { return v.name == variable.name; };
      auto known = std::find_if(variables.begin(), variables.end(), same);
      if (known != variables.end()) {
        *known = std::move(variable);
      } else {
        variables.push_back(std::move(variable));
      }
    }
  }
}

bool UnitEnvironment::unsets(const Variable &variable, std::string *file) const {
  for (const Variable &word : unset) {
    // value: "" for NAME, "=VALUE" for NAME=VALUE.
    if (word.name == variable.name && (word.value.empty() || word.value == "=" + variable.value)) {
      *file = word.file;
      return true;
    }
  }
  return false;
}

const UnitEnvironment::Variable *UnitEnvironment::find(std::string_view name) const {
  for (const Variable &variable : variables) {
    if (variable.name == name) return &variable;
  }
  return nullptr;
}

std::string service_unit_name(std::string_view name) {
  if (name.empty() || name.find('/') != std::string_view::npos || name[0] == '.') return "";
  // systemd's rules: at most one '@', with a prefix before it (foo@.service is
  // a template, foo@bar.service an instance), at most 255 characters.
  const size_t at = name.find('@');
  if (at == 0 ||
      (at != std::string_view::npos && name.find('@', at + 1) != std::string_view::npos)) {
    return "";
  }
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == ':' || c == '-' || c == '_' || c == '.' || c == '\\' || c == '@';
    if (!ok) return "";
  }
  constexpr std::string_view kSuffix = ".service";
  constexpr size_t kLongest = 255;
  if (name.size() > kSuffix.size() && name.substr(name.size() - kSuffix.size()) == kSuffix) {
    return name.size() <= kLongest ? std::string(name) : "";
  }
  size_t dot = name.rfind('.');
  if (dot != std::string_view::npos) {
    std::string_view suffix = name.substr(dot + 1);
    static constexpr std::string_view kOtherTypes[] = {"socket",    "target", "timer", "mount",
                                                       "automount", "swap",   "path",  "slice",
                                                       "scope",     "device"};
    for (std::string_view type : kOtherTypes) {
      if (suffix == type) return "";
    }
  }
  return name.size() + kSuffix.size() <= kLongest ? std::string(name) + std::string(kSuffix) : "";
}

std::vector<std::string> unit_directories(const std::string &unit_dir) {
  // systemd's search path for system units (`systemd-analyze unit-paths`).
  static const char *const kSystemDirectories[] = {
      "/etc/systemd/system.control", "/run/systemd/system.control",
      "/run/systemd/transient",      "/run/systemd/generator.early",
      "/etc/systemd/system",         "/etc/systemd/system.attached",
      "/run/systemd/system",         "/run/systemd/system.attached",
      "/run/systemd/generator",      "/usr/local/lib/systemd/system",
      "/lib/systemd/system",         "/usr/lib/systemd/system",
      "/run/systemd/generator.late"};
  std::vector<std::string> candidates(std::begin(kSystemDirectories), std::end(kSystemDirectories));
  if (std::find(candidates.begin(), candidates.end(), unit_dir) == candidates.end()) {
    candidates.insert(candidates.begin(), unit_dir);
  }
  std::vector<std::string> directories, resolved;
  for (const std::string &dir : candidates) {
    char real[PATH_MAX];
    std::string key = realpath(dir.c_str(), real) != nullptr ? real : dir;
    if (std::find(resolved.begin(), resolved.end(), key) != resolved.end()) continue;
    resolved.push_back(key);
    directories.push_back(dir);
  }
  return directories;
}

namespace {

std::string real_path(const std::string &path) {
  char real[PATH_MAX];
  return realpath(path.c_str(), real) != nullptr ? real : "";
}

std::string base_name(const std::string &path) { return path.substr(path.rfind('/') + 1); }

// The first DIR/name of `directories` that exists (a file or a symlink).
std::string first_in(const std::vector<std::string> &directories, const std::string &name) {
  struct stat st;
  for (const std::string &dir : directories) {
    if (lstat((dir + "/" + name).c_str(), &st) == 0) return dir + "/" + name;
  }
  return "";
}

// The drop-in directories systemd reads in `dir` for `name`, most specific
// first: NAME.d, its template's, then those of its dash prefix ("foo-bar-x"
// → "foo-bar-", keeping an instance), recursively.
void add_drop_in_dirs(const std::string &dir, const std::string &name,
                      std::vector<std::string> *out) {
  out->push_back(dir + "/" + name + ".d");
  const UnitName parts(name);
  if (parts.is_instance()) add_drop_in_dirs(dir, parts.templated(), out);
  std::string prefix = parts.prefix;
  bool chopped = false;
  while (true) {
    const size_t dash = prefix.rfind('-');
    if (dash == std::string::npos || dash == 0) return;
    if (dash + 1 < prefix.size() || chopped) {
      prefix.resize(dash + 1);
      break;
    }
    prefix.resize(dash);  // a trailing dash: the next one up, once
    chopped = true;
  }
  const std::string instance = parts.is_instance() ? "@" + parts.instance : "";
  add_drop_in_dirs(dir, prefix + instance + parts.suffix, out);
}

// The unit's other names, its id among them: the target of the name found,
// when a symlink, and every symlink in the directories to the same file (an
// instance's names carry its instance).
void add_other_names(const std::vector<std::string> &directories, bool from_template,
                     UnitFiles *files) {
  const UnitName name(files->unit);
  auto add_alias = [&](const std::string &alias) {
    const std::string named = from_template ? UnitName(alias).with_instance(name.instance) : alias;
    const UnitName parts(alias);
    if (named == files->unit || parts.suffix != name.suffix ||
        parts.has_at != (from_template || name.has_at) ||
        std::find(files->aliases.begin(), files->aliases.end(), named) != files->aliases.end()) {
      return;
    }
    files->aliases.push_back(named);
  };
  files->id = files->unit;
  if (files->unit_file.empty() || files->unit_file == "/dev/null") return;
  add_alias(base_name(files->unit_file));
  if (!files->aliases.empty()) files->id = files->aliases.front();
  for (const std::string &dir : directories) {
    DIR *listing = opendir(dir.c_str());
    if (listing == nullptr) continue;
    while (const dirent *entry = readdir(listing)) {
      if (entry->d_type != DT_LNK) continue;
      if (real_path(dir + "/" + entry->d_name) == files->unit_file) add_alias(entry->d_name);
    }
    closedir(listing);
  }
}

}  // namespace

UnitFiles find_unit_files(const std::vector<std::string> &directories, const std::string &unit,
                          const std::string &absent) {
  UnitFiles files;
  files.unit = unit;
  const UnitName name(unit);
  std::string found = first_in(directories, unit);
  const bool from_template = found.empty() && name.is_instance();
  if (from_template) found = first_in(directories, name.templated());
  if (!found.empty()) files.unit_file = real_path(found);
  add_other_names(directories, from_template, &files);
  std::vector<std::string> drop_in_dirs;
  std::vector<std::string> names = {unit};
  names.insert(names.end(), files.aliases.begin(), files.aliases.end());
  for (const std::string &each : names) {
    for (const std::string &dir : directories) add_drop_in_dirs(dir, each, &drop_in_dirs);
  }
  for (const std::string &dir : directories) drop_in_dirs.push_back(dir + "/service.d");
  std::vector<std::pair<std::string, std::string>> drop_ins;  // name, path
  for (const std::string &drop_in_dir : drop_in_dirs) {
    DIR *listing = opendir(drop_in_dir.c_str());
    if (listing == nullptr) continue;
    while (const dirent *entry = readdir(listing)) {
      std::string file = entry->d_name;
      if (file.size() <= 5 || file[0] == '.' || file.substr(file.size() - 5) != ".conf") continue;
      auto same = [&](const auto &known) { return known.first == file; };
      if (drop_in_dir + "/" + file == absent ||
          std::any_of(drop_ins.begin(), drop_ins.end(), same)) {
        continue;
      }
      drop_ins.emplace_back(file, drop_in_dir + "/" + file);
    }
    closedir(listing);
  }
  std::sort(drop_ins.begin(), drop_ins.end());
  for (const auto &[file, path] : drop_ins) files.drop_ins.push_back(path);
  return files;
}

UnitEnvironment unit_environment(const UnitFiles &files) {
  UnitEnvironment environment(files.unit);
  std::string text;
  if (!files.unit_file.empty() && read_file(files.unit_file, &text)) {
    environment.add_file(files.unit_file, text);
  }
  environment.unit = files.id;  // systemd resolves the drop-ins' specifiers with it
  for (const std::string &file : files.drop_ins) {
    if (read_file(file, &text)) environment.add_file(file, text);
  }
  return environment;
}

UnitEnvironment unit_environment(const UnitFiles &files, const std::string &drop_in_path,
                                 const std::string &drop_in_text) {
  auto by_name = [](const std::string &a, const std::string &b) {
    return base_name(a) < base_name(b);
  };
  std::vector<std::string> drop_ins;
  for (const std::string &file : files.drop_ins) {
    if (base_name(file) != base_name(drop_in_path)) drop_ins.push_back(file);
  }
  drop_ins.insert(std::upper_bound(drop_ins.begin(), drop_ins.end(), drop_in_path, by_name),
                  drop_in_path);
  UnitEnvironment environment(files.unit);
  std::string text;
  if (!files.unit_file.empty() && read_file(files.unit_file, &text)) {
    environment.add_file(files.unit_file, text);
  }
  environment.unit = files.id;
  for (const std::string &file : drop_ins) {
    if (file == drop_in_path) {
      environment.add_file(file, drop_in_text);
    } else if (read_file(file, &text)) {
      environment.add_file(file, text);
    }
  }
  return environment;
}

std::string line_diff(std::string_view before, std::string_view after) {
  auto split = [](std::string_view text) {
    std::vector<std::string> lines;
    std::istringstream in{std::string(text)};
    std::string line;
    while (std::getline(in, line)) lines.push_back(line);
    return lines;
  };
  std::vector<std::string> a = split(before), b = split(after);
  // Longest common subsequence; unit files are a few lines long.
  std::vector<std::vector<int>> common(a.size() + 1, std::vector<int>(b.size() + 1, 0));
  for (size_t i = a.size(); i-- > 0;) {
    for (size_t j = b.size(); j-- > 0;) {
      common[i][j] =
          a[i] == b[j] ? common[i + 1][j + 1] + 1 : std::max(common[i + 1][j], common[i][j + 1]);
    }
  }
  std::string out;
  size_t i = 0, j = 0;
  while (i < a.size() || j < b.size()) {
    if (i < a.size() && j < b.size() && a[i] == b[j]) {
      out += " " + a[i++] + "\n";
      ++j;
    } else if (i < a.size() && (j == b.size() || common[i + 1][j] >= common[i][j + 1])) {
      out += "-" + a[i++] + "\n";
    } else {
      out += "+" + b[j++] + "\n";
    }
  }
  return out;
}

}  // namespace keepalive_cli
