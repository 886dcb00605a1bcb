// output.cc — see output.h.

#include "lib/output.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include <algorithm>
#include <cmath>

namespace keepalive_cli {

std::string help_entry(std::string_view term, std::string_view text, size_t column) {
  std::string out = "  ";
  out += term;
  if (out.size() + 2 > column) {  // at least two spaces before TEXT
    out += '\n';
    out.append(column, ' ');
  } else {
    out.resize(column, ' ');
  }
  size_t line_start = out.rfind('\n') + 1;  // npos + 1 == 0
  bool first_word = true;
  while (!text.empty()) {
    size_t space = text.find(' ');
    std::string_view word = text.substr(0, space);
    text = space == std::string_view::npos ? std::string_view() : text.substr(space + 1);
    if (word.empty()) continue;
    if (!first_word && out.size() - line_start + 1 + word.size() > kHelpWidth) {
      out += '\n';
      line_start = out.size();
      out.append(column, ' ');
      first_word = true;
    }
    if (!first_word) out += ' ';
    out += word;
    first_word = false;
  }
  out += '\n';
  return out;
}

std::string settings_text(bool read, const keepalive_settings &settings) {
  if (!read) return "unreadable";
  keepalive_settings shown = settings;
  if (shown.user_timeout_ms == 0) shown.user_timeout_ms = KEEPALIVE_UNSET;
  char text[KEEPALIVE_SETTINGS_TEXT_LEN];
  keepalive_format_settings(&shown, text, sizeof text);
  return text;
}

std::string format_duration_ms(long long ms) {
  if (ms <= 0) return "0s";
  if (ms < 1000) return std::to_string(ms) + "ms";
  std::string text;
  long long hours = ms / 3600000;
  long long minutes = ms / 60000 % 60;
  long long seconds = ms / 1000 % 60;
  long long millis = ms % 1000;
  if (hours > 0) text += std::to_string(hours) + "h";
  if (minutes > 0) text += std::to_string(minutes) + "m";
  if (seconds > 0 || millis > 0) {
    text += std::to_string(seconds);
    if (millis > 0) {
      char fraction[8];
      snprintf(fraction, sizeof fraction, ".%03lld", millis);
      std::string f = fraction;
      while (f.back() == '0') f.pop_back();
      text += f;
    }
    text += "s";
  }
  return text;
}

std::string format_endpoint(const sockaddr_storage &address) {
  char host[INET6_ADDRSTRLEN];
  if (address.ss_family == AF_INET) {
    const auto &in = reinterpret_cast<const sockaddr_in &>(address);
    inet_ntop(AF_INET, &in.sin_addr, host, sizeof host);
    return std::string(host) + ":" + std::to_string(ntohs(in.sin_port));
  }
  if (address.ss_family == AF_INET6) {
    const auto &in6 = reinterpret_cast<const sockaddr_in6 &>(address);
    inet_ntop(AF_INET6, &in6.sin6_addr, host, sizeof host);
    return std::string("[") + host + "]:" + std::to_string(ntohs(in6.sin6_port));
  }
  return "";
}

std::string format_cidr(const keepalive_cidr &cidr) {
  char host[INET6_ADDRSTRLEN];
  inet_ntop(cidr.net.family == 4 ? AF_INET : AF_INET6, cidr.net.addr, host, sizeof host);
  return std::string(host) + "/" + std::to_string(cidr.prefix);
}

std::vector<std::pair<std::vector<std::string>, int>> count_rows(
    const std::vector<std::vector<std::string>> &rows) {
  std::vector<std::pair<std::vector<std::string>, int>> counted;
  for (const auto &row : rows) {
    auto found = std::find_if(counted.begin(), counted.end(),
                              [&row](const auto &entry) { return entry.first == row; });
    if (found != counted.end()) {
      ++found->second;
    } else {
      counted.push_back({row, 1});
    }
  }
  return counted;
}

bool parse_detail_option(std::string_view arg, Detail *detail) {
  if (arg == "--summary") {
    *detail = Detail::kSummary;
  } else if (arg == "--full") {
    *detail = Detail::kFull;
  } else {
    return false;
  }
  return true;
}

std::string summary_table(const std::vector<std::string> &header,
                          const std::vector<std::vector<std::string>> &keys) {
  std::vector<std::vector<std::string>> rows = {{"SOCKETS"}};
  rows[0].insert(rows[0].end(), header.begin(), header.end());
  for (const auto &[key, n] : count_rows(keys)) {
    rows.push_back({std::to_string(n)});
    rows.back().insert(rows.back().end(), key.begin(), key.end());
  }
  return format_table(rows);
}

std::string format_table(const std::vector<std::vector<std::string>> &rows) {
  std::vector<size_t> widths;
  for (const auto &row : rows) {
    if (row.size() > widths.size()) widths.resize(row.size(), 0);
    for (size_t column = 0; column < row.size(); ++column) {
      if (row[column].size() > widths[column]) widths[column] = row[column].size();
    }
  }
  std::string out;
  for (const auto &row : rows) {
    std::string line;
    for (size_t column = 0; column < row.size(); ++column) {
      std::string cell = row[column];
      if (column + 1 < row.size()) cell.resize(widths[column] + 2, ' ');
      line += cell;
    }
    out += line + "\n";
  }
  return out;
}

namespace {

// Length of the valid UTF-8 sequence starting at text[i], or 0.
size_t utf8_sequence_length(std::string_view text, size_t i) {
  unsigned char c = static_cast<unsigned char>(text[i]);
  size_t length = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c <= 0xdf ? 2 : 0;
  if (c >= 0xf5 || length == 0 || i + length > text.size()) return 0;
  unsigned long code = c & (0x7fu >> length);
  for (size_t k = 1; k < length; ++k) {
    unsigned char next = static_cast<unsigned char>(text[i + k]);
    if ((next & 0xc0) != 0x80) return 0;
    code = code << 6 | (next & 0x3fu);
  }
  static const unsigned long kMinimum[] = {0, 0, 0x80, 0x800, 0x10000};
  if (code < kMinimum[length] || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return 0;
  return length;
}

}  // namespace

std::string json_quote(std::string_view text) {
  std::string out = "\"";
  for (size_t i = 0; i < text.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    switch (c) {
      case '"':
        out += "\\\"";
        continue;
      case '\\':
        out += "\\\\";
        continue;
      case '\n':
        out += "\\n";
        continue;
      case '\r':
        out += "\\r";
        continue;
      case '\t':
        out += "\\t";
        continue;
      default:
        break;
    }
    if (c >= 0x80) {
      size_t length = utf8_sequence_length(text, i);
      if (length > 0) {
        out.append(text.substr(i, length));
        i += length - 1;
        continue;
      }
    }
    if (c < 0x20 || c >= 0x7f) {
      // Control bytes, and bytes that are not UTF-8 (environments and paths
      // from /proc need not be): shown as U+00XX so the document stays valid.
      char escaped[8];
      snprintf(escaped, sizeof escaped, "\\u%04x", c);
      out += escaped;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
  return out;
}

void JsonWriter::before_value() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (!has_items_.empty()) {
    if (has_items_.back()) out_ += ',';
    has_items_.back() = true;
    if (one_line_) return;
    out_ += '\n';
    out_.append(2 * has_items_.size(), ' ');
  }
}

void JsonWriter::open(char bracket) {
  before_value();
  out_ += bracket;
  has_items_.push_back(false);
}

void JsonWriter::close(char bracket) {
  bool had_items = has_items_.back();
  has_items_.pop_back();
  if (had_items && !one_line_) {
    out_ += '\n';
    out_.append(2 * has_items_.size(), ' ');
  }
  out_ += bracket;
}

JsonWriter &JsonWriter::begin_object() {
  open('{');
  return *this;
}
JsonWriter &JsonWriter::end_object() {
  close('}');
  return *this;
}
JsonWriter &JsonWriter::begin_array() {
  open('[');
  return *this;
}
JsonWriter &JsonWriter::end_array() {
  close(']');
  return *this;
}

JsonWriter &JsonWriter::key(std::string_view name) {
  before_value();
  out_ += json_quote(name);
  out_ += ": ";
  after_key_ = true;
  return *this;
}

JsonWriter &JsonWriter::string(std::string_view value) {
  before_value();
  out_ += json_quote(value);
  return *this;
}

JsonWriter &JsonWriter::number(long long value) {
  before_value();
  out_ += std::to_string(value);
  return *this;
}

JsonWriter &JsonWriter::number(double value) {
  if (!std::isfinite(value)) return null();
  before_value();
  char text[64];
  snprintf(text, sizeof text, "%.3f", value);
  std::string s = text;
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  if (s == "-0") s = "0";
  out_ += s;
  return *this;
}

JsonWriter &JsonWriter::boolean(bool value) {
  before_value();
  out_ += value ? "true" : "false";
  return *this;
}

JsonWriter &JsonWriter::null() {
  before_value();
  out_ += "null";
  return *this;
}

JsonWriter &JsonWriter::optional_field(std::string_view name, std::string_view text) {
  key(name);
  return text.empty() ? null() : string(text);
}

JsonWriter &JsonWriter::optional_field(std::string_view name, long long value) {
  key(name);
  return value == KEEPALIVE_UNSET ? null() : number(value);
}

void summary_json(JsonWriter *json, bool summary, const std::vector<const char *> &names,
                  const std::vector<std::vector<std::string>> &keys) {
  json->field("summary_only", summary);
  if (!summary) return;
  json->key("groups").begin_array();
  for (const auto &[key, n] : count_rows(keys)) {
    json->begin_object();
    for (size_t i = 0; i < names.size() && i < key.size(); ++i) json->field(names[i], key[i]);
    json->field("sockets", n);
    json->end_object();
  }
  json->end_array();
}

void socket_settings_json(JsonWriter *json, std::string_view name, bool read,
                          const keepalive_settings &settings) {
  json->key(name);
  if (!read) {
    json->null();
    return;
  }
  json->begin_object();
  json->field("enabled", settings.enable != 0);
  json->field("idle_s", settings.idle_s);
  json->field("intvl_s", settings.intvl_s);
  json->field("cnt", settings.cnt);
  json->field("user_timeout_ms", settings.user_timeout_ms);
  json->end_object();
}
}  // namespace keepalive_cli
