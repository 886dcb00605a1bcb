// systemd_unit.cc — see systemd_unit.h.

#include "lib/systemd_unit.h"

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

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

std::string systemd_quote(std::string_view assignment) {
  std::string out = "\"";
  for (char c : assignment) {
    unsigned char byte = static_cast<unsigned char>(c);
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '%') {
      out += "%%";
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
      } else if (c == '%' && i + 1 < value.size() && value[i + 1] == '%') {
        word += '%';
        i += 2;
      } else {
        word += c;
        ++i;
      }
    }
    if (quote != 0) return false;
    words->push_back(std::move(word));
  }
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
    if (!systemd_split(value, &words)) continue;  // systemd ignores the line too
    if (key == "UnsetEnvironment") {
      for (const std::string &word : words) {
        size_t equals = word.find('=');
        unset.push_back(Variable{word.substr(0, equals),
                                 equals == std::string::npos ? "" : word.substr(equals), path});
      }
      continue;
    }
    for (const std::string &word : words) {
      size_t equals = word.find('=');
      if (equals == std::string::npos || equals == 0) continue;
      std::string name = word.substr(0, equals);
      auto same = [&](const Variable &v) { return v.name == name; };
      variables.erase(std::remove_if(variables.begin(), variables.end(), same), variables.end());
      variables.push_back(Variable{name, word.substr(equals + 1), path});
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
  std::vector<std::string> directories, resolved;
  for (const std::string &dir :
       {unit_dir, std::string("/etc/systemd/system"), std::string("/run/systemd/system"),
        std::string("/lib/systemd/system"), std::string("/usr/lib/systemd/system")}) {
    char real[PATH_MAX];
    std::string key = realpath(dir.c_str(), real) != nullptr ? real : dir;
    if (std::find(resolved.begin(), resolved.end(), key) != resolved.end()) continue;
    resolved.push_back(key);
    directories.push_back(dir);
  }
  return directories;
}

UnitFiles find_unit_files(const std::vector<std::string> &directories, const std::string &unit) {
  UnitFiles files;
  std::vector<std::pair<std::string, std::string>> drop_ins;  // name, path
  for (const std::string &dir : directories) {
    std::string candidate = dir + "/" + unit;
    if (files.unit_file.empty() && access(candidate.c_str(), R_OK) == 0) {
      files.unit_file = candidate;
    }
    std::string drop_in_dir = dir + "/" + unit + ".d";
    DIR *listing = opendir(drop_in_dir.c_str());
    if (listing == nullptr) continue;
    while (const dirent *entry = readdir(listing)) {
      std::string name = entry->d_name;
      if (name.size() <= 5 || name.substr(name.size() - 5) != ".conf") continue;
      auto same = [&](const auto &known) { return known.first == name; };
      if (std::any_of(drop_ins.begin(), drop_ins.end(), same)) continue;
      drop_ins.emplace_back(name, drop_in_dir + "/" + name);
    }
    closedir(listing);
  }
  std::sort(drop_ins.begin(), drop_ins.end());
  for (const auto &[name, path] : drop_ins) files.drop_ins.push_back(path);
  return files;
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
