// output.h — what the subcommands write: --help entries at one column,
// durations, addresses and keepalive settings as text, tables and their
// summaries, and a small JSON writer.
#ifndef KEEPALIVE_TOOLS_OUTPUT_H
#define KEEPALIVE_TOOLS_OUTPUT_H

#include <stddef.h>
#include <sys/socket.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "keepalive/keepalive.h"

namespace keepalive_cli {

// Widest line of any --help text (keepalive(1) and the docs test hold it).
inline constexpr size_t kHelpWidth = 80;
// Column where the descriptions of options start in every --help text.
inline constexpr size_t kHelpColumn = 26;

// One entry of a --help list: "  TERM" and TEXT, TEXT starting at `column`
// and wrapped at word boundaries to kHelpWidth; TEXT starts on the next line
// when TERM reaches the column. Ends with a newline.
std::string help_entry(std::string_view term, std::string_view text, size_t column = kHelpColumn);

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

#endif  // KEEPALIVE_TOOLS_OUTPUT_H
