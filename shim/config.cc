// config.cc — environment text → validated, immutable keepalive_config.
//
// The only parser of the project: the shim, the `keepalive` command and the
// tests all come through keepalive_config_load. Pure: the values arrive via a
// lookup function; nothing here does I/O (keepalive_config_from_environment
// only adds getenv and the kernel's default interval). No allocation: every
// result lands in the fixed-size keepalive_config.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keepalive/keepalive.h"
#include "rule_index.h"

namespace {

constexpr long long kMsPerSecond = 1000;

// The digits of a numeric macro, as a string literal.
#define KEEPALIVE_DIGITS_(x) #x
#define KEEPALIVE_DIGITS(x) KEEPALIVE_DIGITS_(x)

// Accepted forms, quoted in every message about a value. One form serves
// idle and interval, whose ranges are the same.
static_assert(KEEPALIVE_IDLE_MAX_S == KEEPALIVE_INTVL_MAX_S);
constexpr const char kSecondsForm[] =
    "whole seconds from 1 to " KEEPALIVE_DIGITS(KEEPALIVE_IDLE_MAX_S) ", as a number or with "
    "units h, m, s, ms (e.g. 270, 4m30s)";
constexpr const char kCountForm[] = "a whole number from 1 to " KEEPALIVE_DIGITS(KEEPALIVE_CNT_MAX);
// KEEPALIVE_USER_TIMEOUT_MAX_MS, whose digits carry a suffix (LL).
static_assert(KEEPALIVE_USER_TIMEOUT_MAX_MS == 2147483647LL);
constexpr const char kTimeoutForm[] =
    "a duration up to 2147483647ms, as seconds or with units h, m, s, ms "
    "(e.g. 30, 1m30s, 2500ms); 0 = kernel default";
constexpr const char kSwitchForm[] = "on, off, 1, 0, yes, no, true or false";
constexpr const char kLogForm[] = "quiet, info or debug";

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// A view of part of a string: never NUL-terminated, never owned.
struct Text {
  const char *begin;
  const char *end;
  size_t size() const { return static_cast<size_t>(end - begin); }
  bool empty() const { return begin == end; }
  bool equals(const char *word) const {
    size_t n = strlen(word);
    return size() == n && memcmp(begin, word, n) == 0;
  }
  bool equals_ignoring_case(const char *word) const {
    size_t n = strlen(word);
    if (size() != n) return false;
    for (size_t i = 0; i < n; ++i) {
      char c = begin[i];
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      if (c != word[i]) return false;
    }
    return true;
  }
  bool starts_with(const char *prefix) const {
    size_t n = strlen(prefix);
    return size() >= n && memcmp(begin, prefix, n) == 0;
  }
};

Text trimmed(const char *begin, const char *end) {
  while (begin < end && is_space(*begin)) ++begin;
  while (end > begin && is_space(end[-1])) --end;
  return Text{begin, end};
}

// One part of a duration: a number, with an optional fraction, and the
// unit's name after it (empty for none).
struct DurationPart {
  long long whole = 0;
  long long fraction = 0, scale = 1;  // fraction / scale: the digits after '.'
  Text unit_name{nullptr, nullptr};
};

// Reads one part from *p onwards (up to end), moving *p past it. False when
// the number is malformed or too large for any duration.
bool read_duration_part(const char **p, const char *end, DurationPart *part) {
  const char *digits = *p;
  while (*p < end && is_digit(**p)) {
    part->whole = part->whole * 10 + (**p - '0');
    if (part->whole > KEEPALIVE_USER_TIMEOUT_MAX_MS) return false;
    ++*p;
  }
  if (*p == digits) return false;
  if (*p < end && **p == '.') {
    ++*p;
    const char *fraction_digits = *p;
    while (*p < end && is_digit(**p)) {
      if (part->scale >= 1000000000LL) return false;  // finer than anything we can use
      part->fraction = part->fraction * 10 + (**p - '0');
      part->scale *= 10;
      ++*p;
    }
    if (*p == fraction_digits) return false;
  }
  const char *unit_begin = *p;
  while (*p < end && **p >= 'a' && **p <= 'z') ++*p;
  part->unit_name = Text{unit_begin, *p};
  return true;
}

// The length and rank of a unit named h, m, min, s or ms; false for another
// name. Units must appear in strictly decreasing rank.
bool find_duration_unit(Text name, long long *unit_ms, int *rank) {
  struct Unit {
    const char *name;
    long long ms;
    int rank;
  };
  static const Unit kUnits[] = {
      {"h", 3600 * kMsPerSecond, 4},
      {"m", 60 * kMsPerSecond, 3},
      {"min", 60 * kMsPerSecond, 3},
      {"s", kMsPerSecond, 2},
      {"ms", 1, 1},
  };
  for (const Unit &unit : kUnits) {
    if (name.equals(unit.name)) {
      *unit_ms = unit.ms;
      *rank = unit.rank;
      return true;
    }
  }
  return false;
}

// Parses a duration in [text.begin, text.end) (already trimmed). See the
// contract of keepalive_parse_duration_ms.
bool parse_duration(Text text, long long *out_ms) {
  if (text.empty()) return false;
  long long total = 0;
  int last_rank = 5;
  const char *p = text.begin;
  bool first = true;
  while (p < text.end) {
    DurationPart part;
    if (!read_duration_part(&p, text.end, &part)) return false;
    long long unit_ms = 0;
    int rank = 0;
    if (part.unit_name.empty()) {
      // A bare number means seconds, and only as the whole value.
      if (!first || p != text.end) return false;
      unit_ms = kMsPerSecond;
    } else if (!find_duration_unit(part.unit_name, &unit_ms, &rank)) {
      return false;
    }
    if (rank >= last_rank) return false;
    last_rank = rank;
    if (part.whole > KEEPALIVE_USER_TIMEOUT_MAX_MS / unit_ms) return false;
    if ((part.fraction * unit_ms) % part.scale != 0) return false;  // below a millisecond
    total += part.whole * unit_ms + part.fraction * unit_ms / part.scale;
    if (total > KEEPALIVE_USER_TIMEOUT_MAX_MS) return false;
    first = false;
  }
  *out_ms = total;
  return true;
}

// A whole number from 1 to `max`, written with no more digits than `max` has
// (leading zeros counted: "0001" is not a count).
bool parse_whole_number(Text text, long max, long *out) {
  size_t max_digits = 1;
  for (long rest = max; rest >= 10; rest /= 10) ++max_digits;
  if (text.empty() || text.size() > max_digits) return false;
  long value = 0;
  for (const char *p = text.begin; p < text.end; ++p) {
    if (!is_digit(*p)) return false;
    value = value * 10 + (*p - '0');
  }
  if (value < 1 || value > max) return false;
  *out = value;
  return true;
}

bool parse_count(Text text, int *out) {
  long value = 0;
  if (!parse_whole_number(text, KEEPALIVE_CNT_MAX, &value)) return false;
  *out = static_cast<int>(value);
  return true;
}

// Whole seconds from 1 to `max`.
bool parse_seconds(Text text, int max, int *out) {
  long long ms = 0;
  if (!parse_duration(text, &ms) || ms % kMsPerSecond != 0) return false;
  long long seconds = ms / kMsPerSecond;
  if (seconds < 1 || seconds > max) return false;
  *out = static_cast<int>(seconds);
  return true;
}

// Returns 1 for on, 0 for off, -1 for anything else.
int parse_switch(Text text) {
  static const char *const kOn[] = {"on", "1", "yes", "true"};
  static const char *const kOff[] = {"off", "0", "no", "false"};
  for (const char *word : kOn)
    if (text.equals_ignoring_case(word)) return 1;
  for (const char *word : kOff)
    if (text.equals_ignoring_case(word)) return 0;
  return -1;
}

bool parse_port(Text text, uint16_t *out) {
  long value = 0;
  if (!parse_whole_number(text, UINT16_MAX, &value)) return false;
  *out = static_cast<uint16_t>(value);
  return true;
}

bool parse_port_range(Text text, keepalive_port_range *out) {
  const char *dash = static_cast<const char *>(memchr(text.begin, '-', text.size()));
  if (dash == nullptr) {
    if (!parse_port(text, &out->first)) return false;
    out->last = out->first;
    return true;
  }
  return parse_port(Text{text.begin, dash}, &out->first) &&
         parse_port(Text{dash + 1, text.end}, &out->last) && out->first <= out->last;
}

// Collects problems (or warnings) into the configuration, formatting each
// into one line; those beyond the storage are only counted. Each kept
// problem also records the variable it is about (kNoVariable: none).
constexpr int kNoVariable = -1;
class Problems {
 public:
  explicit Problems(keepalive_config *cfg)
      : count_(&cfg->nproblems),
        slots_(cfg->problems),
        variables_(cfg->problem_variables),
        capacity_(KEEPALIVE_MAX_PROBLEMS) {}
  Problems(int *count, char (*slots)[KEEPALIVE_PROBLEM_LEN], int capacity)
      : count_(count), slots_(slots), variables_(nullptr), capacity_(capacity) {}

  __attribute__((format(printf, 3, 4))) void add(int variable, const char *format, ...) {
    int index = (*count_)++;
    if (index >= capacity_) return;
    if (variables_ != nullptr) variables_[index] = variable;
    va_list args;
    va_start(args, format);
    vsnprintf(slots_[index], KEEPALIVE_PROBLEM_LEN, format, args);
    va_end(args);
  }

 private:
  int *count_;
  char (*slots_)[KEEPALIVE_PROBLEM_LEN];
  int *variables_;
  int capacity_;
};

// A value quoted in a message: at most kQuotedBytes of it are shown, in a
// buffer of kQuotedLen (room for escapes, the quotes and "...(N bytes)").
constexpr size_t kQuotedBytes = 64;
constexpr size_t kQuotedLen = 96;

// Writes `text` quoted into buf, escaping control and non-ASCII bytes and
// shortening long values, so that a message stays one readable line.
const char *quote(Text text, char *buf, size_t size) {
  size_t n = 0;
  buf[n++] = '"';
  size_t shown = 0;
  for (const char *p = text.begin; p < text.end; ++p, ++shown) {
    if (shown == kQuotedBytes || n + 8 >= size) {
      n += static_cast<size_t>(snprintf(buf + n, size - n, "...(%zu bytes)", text.size()));
      break;
    }
    unsigned char c = static_cast<unsigned char>(*p);
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
      n += static_cast<size_t>(snprintf(buf + n, size - n, "\\x%02x", c));
    } else {
      buf[n++] = static_cast<char>(c);
    }
  }
  if (n + 2 > size) n = size - 2;
  buf[n++] = '"';
  buf[n] = '\0';
  return buf;
}

// Values of one rule or of the globals, before fallback and the INTVL rule.
struct Values {
  int idle_s = KEEPALIVE_UNSET;
  int intvl_s = KEEPALIVE_UNSET;
  int cnt = KEEPALIVE_UNSET;
  long long user_timeout_ms = KEEPALIVE_UNSET;
};

// Effective settings: own values, then the fallback, then the INTVL rule
// (idle given, interval not: interval = min(idle, kernel default), because an
// idle connection stays silent for max(idle, interval) between probes).
// *intvl_derived (when not nullptr) says whether that rule set the interval.
keepalive_settings resolve(const Values &own, const Values &fallback, int kernel_intvl_s,
                           int *intvl_derived) {
  keepalive_settings s;
  s.enable = 1;
  s.rule = KEEPALIVE_RULE_GLOBAL;
  s.idle_s = own.idle_s != KEEPALIVE_UNSET ? own.idle_s : fallback.idle_s;
  s.intvl_s = own.intvl_s != KEEPALIVE_UNSET ? own.intvl_s : fallback.intvl_s;
  s.cnt = own.cnt != KEEPALIVE_UNSET ? own.cnt : fallback.cnt;
  s.user_timeout_ms =
      own.user_timeout_ms != KEEPALIVE_UNSET ? own.user_timeout_ms : fallback.user_timeout_ms;
  bool derived = s.idle_s != KEEPALIVE_UNSET && s.intvl_s == KEEPALIVE_UNSET;
  if (derived) s.intvl_s = s.idle_s < kernel_intvl_s ? s.idle_s : kernel_intvl_s;
  if (intvl_derived != nullptr) *intvl_derived = derived ? 1 : 0;
  return s;
}

// One setting word's parser, shared by KEEPALIVE_* variables and rule words.
enum class Setting { kIdle, kIntvl, kCnt, kUserTimeout };

const char *form_of(Setting setting) {
  switch (setting) {
    case Setting::kIdle:
    case Setting::kIntvl:
      return kSecondsForm;
    case Setting::kCnt:
      return kCountForm;
    case Setting::kUserTimeout:
      return kTimeoutForm;
  }
  return "";
}

bool parse_setting(Setting setting, Text text, Values *values) {
  switch (setting) {
    case Setting::kIdle:
      return parse_seconds(text, KEEPALIVE_IDLE_MAX_S, &values->idle_s);
    case Setting::kIntvl:
      return parse_seconds(text, KEEPALIVE_INTVL_MAX_S, &values->intvl_s);
    case Setting::kCnt:
      return parse_count(text, &values->cnt);
    case Setting::kUserTimeout:
      return parse_duration(text, &values->user_timeout_ms);
  }
  return false;
}

bool is_set(Setting setting, const Values &values) {
  switch (setting) {
    case Setting::kIdle:
      return values.idle_s != KEEPALIVE_UNSET;
    case Setting::kIntvl:
      return values.intvl_s != KEEPALIVE_UNSET;
    case Setting::kCnt:
      return values.cnt != KEEPALIVE_UNSET;
    case Setting::kUserTimeout:
      return values.user_timeout_ms != KEEPALIVE_UNSET;
  }
  return false;
}

// The variables the library reads, in the order they are documented and
// reported: the only list of their names (keepalive_variable_name).
enum Variable : int {
  kSwitchVariable,
  kIdleVariable,
  kIntvlVariable,
  kCntVariable,
  kUserTimeoutVariable,
  kRulesVariable,
  kLogVariable,
  kStrictVariable,
  kVariableCount
};
constexpr const char *kVariableNames[kVariableCount] = {
    "KEEPALIVE",     "KEEPALIVE_IDLE",         "KEEPALIVE_INTVL",
    "KEEPALIVE_CNT", "KEEPALIVE_USER_TIMEOUT", "KEEPALIVE_RULES",
    "KEEPALIVE_LOG", "KEEPALIVE_STRICT",
};
// Not the library's, but a name of the project: `keepalive run` reads it.
constexpr const char kCommandVariable[] = "KEEPALIVE_LIBRARY";
constexpr const char kVariablePrefix[] = "KEEPALIVE_";

struct SettingName {
  Setting setting;
  Variable variable;      // kIdleVariable
  const char *rule_word;  // idle=
};

constexpr SettingName kSettings[] = {
    {Setting::kIdle, kIdleVariable, "idle="},
    {Setting::kIntvl, kIntvlVariable, "intvl="},
    {Setting::kCnt, kCntVariable, "cnt="},
    {Setting::kUserTimeout, kUserTimeoutVariable, "user_timeout="},
};

// ---- names of the environment that look like ours --------------------------

// A name's part after KEEPALIVE_ as compared: upper case, no underscores.
struct Comparable {
  char letters[64];
  size_t size = 0;
  bool fits = true;  // false: longer than `letters`, never close to anything
};

Comparable comparable(Text name) {
  Comparable out;
  Text rest = name.starts_with(kVariablePrefix)
                  ? Text{name.begin + strlen(kVariablePrefix), name.end}
                  : Text{name.end, name.end};  // the bare KEEPALIVE
  for (const char *p = rest.begin; p < rest.end; ++p) {
    char c = *p;
    if (c == '_') continue;
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    if (out.size == sizeof out.letters) {
      out.fits = false;
      return out;
    }
    out.letters[out.size++] = c;
  }
  return out;
}

bool same(const Comparable &a, const Comparable &b) {
  return a.size == b.size && memcmp(a.letters, b.letters, a.size) == 0;
}

// One letter added, dropped or changed, or two neighbours swapped.
bool one_edit_apart(const Comparable &a, const Comparable &b) {
  const Comparable &longer = a.size >= b.size ? a : b;
  const Comparable &shorter = a.size >= b.size ? b : a;
  if (longer.size - shorter.size > 1) return false;
  size_t i = 0;
  while (i < shorter.size && longer.letters[i] == shorter.letters[i]) ++i;
  if (i == shorter.size) return longer.size != shorter.size;  // one added at the end
  const char *l = longer.letters, *s = shorter.letters;
  if (longer.size != shorter.size) {
    return memcmp(l + i + 1, s + i, shorter.size - i) == 0;  // one added at i
  }
  if (memcmp(l + i + 1, s + i + 1, shorter.size - i - 1) == 0) return true;  // changed at i
  return i + 1 < shorter.size && l[i] == s[i + 1] && l[i + 1] == s[i] &&
         memcmp(l + i + 2, s + i + 2, shorter.size - i - 2) == 0;  // swapped at i
}

// `shorter` is `longer` with letters left out.
bool is_subsequence(const Comparable &shorter, const Comparable &longer) {
  size_t j = 0;
  for (size_t i = 0; i < longer.size && j < shorter.size; ++i) {
    if (longer.letters[i] == shorter.letters[j]) ++j;
  }
  return j == shorter.size;
}

// The kernel's words for two settings (tcp_keepalive_time, _probes).
struct KernelWord {
  const char *word;
  Variable variable;
};
constexpr KernelWord kKernelWords[] = {{"TIME", kIdleVariable}, {"PROBES", kCntVariable}};

// How close `unknown` is to the known name `known`: 1 (closest) to 4, or 0
// when not close. See keepalive_closest_variable.
int closeness(const Comparable &unknown, const char *known) {
  Comparable candidate = comparable(Text{known, known + strlen(known)});
  if (same(unknown, candidate)) return 1;
  for (const KernelWord &kernel : kKernelWords) {
    if (known == kVariableNames[kernel.variable] && unknown.size == strlen(kernel.word) &&
        memcmp(unknown.letters, kernel.word, unknown.size) == 0) {
      return 2;
    }
  }
  // Below, the bare KEEPALIVE (nothing to compare) is never close.
  if (unknown.size == 0 || candidate.size == 0) return 0;
  const Comparable &shorter = unknown.size < candidate.size ? unknown : candidate;
  const Comparable &longer = unknown.size < candidate.size ? candidate : unknown;
  if (shorter.size >= 3 && is_subsequence(shorter, longer)) return 3;
  if (one_edit_apart(unknown, candidate)) return 4;
  return 0;
}

const char *closest_variable(Text name) {
  if (!name.starts_with(kVariablePrefix)) return nullptr;
  Comparable unknown = comparable(name);
  if (!unknown.fits) return nullptr;
  const char *best = nullptr;
  int best_closeness = 0;
  auto consider = [&](const char *known) {
    int c = closeness(unknown, known);
    if (c != 0 && (best == nullptr || c < best_closeness)) {
      best = known;
      best_closeness = c;
    }
  };
  for (const char *known : kVariableNames) consider(known);
  consider(kCommandVariable);
  return best;
}

bool is_known_name(Text name) {
  for (const char *known : kVariableNames) {
    if (name.equals(known)) return true;
  }
  return name.equals(kCommandVariable);
}

// Names other preloaded keepalive shims read, each with the variable of
// ours that does the same: a user migrating from one gets a line that names
// ours instead of silence and the kernel's two hours. Only names with an
// equivalent are listed (msantos/libkeepalive's TCP_SYNCNT,
// TCP_DEFER_ACCEPT, TCP_WINDOW_CLAMP have none).
struct ForeignName {
  const char *name;
  const char *owner;
  Variable ours;
  const char *note;  // how our form differs, or ""
};
constexpr const char kMsantos[] = "msantos/libkeepalive";
constexpr const char kDontDie[] = "libdontdie";
constexpr ForeignName kForeignNames[] = {
    {"SO_KEEPALIVE", kMsantos, kSwitchVariable, " (on or off)"},
    {"TCP_KEEPIDLE", kMsantos, kIdleVariable, ""},
    {"TCP_KEEPINTVL", kMsantos, kIntvlVariable, ""},
    {"TCP_KEEPCNT", kMsantos, kCntVariable, ""},
    {"TCP_USER_TIMEOUT", kMsantos, kUserTimeoutVariable,
     " (a duration: a bare number is seconds, 5000ms is 5000 milliseconds)"},
    {"DD_TCP_KEEPALIVE_TIME", kDontDie, kIdleVariable, ""},
    {"DD_TCP_KEEPALIVE_INTVL", kDontDie, kIntvlVariable, ""},
    {"DD_TCP_KEEPALIVE_PROBES", kDontDie, kCntVariable, ""},
    {"DD_DEBUG", kDontDie, kLogVariable, " (KEEPALIVE_LOG=debug)"},
};

// `name` is `known` in another case (keepalive_idle for KEEPALIVE_IDLE).
bool same_but_case(Text name, const char *known) {
  if (name.size() != strlen(known) || name.equals(known)) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name.begin[i];
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    if (c != known[i]) return false;
  }
  return true;
}

// Reports `name` when another shim reads it, or when it is one of our
// variables in another case. Returns true when it did.
bool report_foreign_name(Problems *report, Text name) {
  int size = static_cast<int>(name.size());
  for (const ForeignName &foreign : kForeignNames) {
    if (name.equals(foreign.name)) {
      report->add(kNoVariable, "%s is %s's name: libkeepalive reads %s%s", foreign.name,
                  foreign.owner, kVariableNames[foreign.ours], foreign.note);
      return true;
    }
  }
  // KEEPALIVE_idle is a misspelling (report_misspelling): did you mean ...
  for (const char *known : kVariableNames) {
    if (!name.starts_with(kVariablePrefix) && same_but_case(name, known)) {
      report->add(kNoVariable, "%.*s is not in upper case: libkeepalive reads %s", size, name.begin,
                  known);
      return true;
    }
  }
  return false;
}

// Reports `name`, a KEEPALIVE_* name that is not ours, with the known name
// it is close to or, when none is, with the list of them.
void report_misspelling(Problems *report, Text name) {
  char shown[kQuotedLen];
  bool plain = name.size() <= kQuotedBytes;
  for (const char *p = name.begin; plain && p < name.end; ++p) {
    plain = *p == '_' || is_digit(*p) || (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z');
  }
  if (plain) {
    snprintf(shown, sizeof shown, "%.*s", static_cast<int>(name.size()), name.begin);
  } else {
    quote(name, shown, sizeof shown);
  }
  const char *closest = closest_variable(name);
  if (closest != nullptr) {
    report->add(kNoVariable, "%s is not a libkeepalive variable: did you mean %s?", shown, closest);
    return;
  }
  char known[192];
  size_t n = 0;
  for (const char *variable : kVariableNames) {
    n += static_cast<size_t>(snprintf(known + n, sizeof known - n, "%s, ", variable));
  }
  known[n - 2] = '\0';  // the last ", "
  report->add(kNoVariable,
              "%s is not a libkeepalive variable: expected %s or %s (read by the keepalive "
              "command)",
              shown, known, kCommandVariable);
}

// Reports each name of `names` that looks meant for the library but is not
// one of its variables — a KEEPALIVE_* name it does not know, another
// shim's name, one of ours in lower case — as a problem under
// KEEPALIVE_STRICT and as a warning otherwise.
void report_unknown_names(keepalive_config *cfg, Problems *problems, const char *const *names) {
  Problems warnings(&cfg->nwarnings, cfg->warnings, KEEPALIVE_MAX_WARNINGS);
  Problems *report = cfg->strict ? problems : &warnings;
  for (; *names != nullptr; ++names) {
    const char *entry = *names;
    const char *equals = strchr(entry, '=');
    Text name{entry, equals != nullptr ? equals : entry + strlen(entry)};
    if (is_known_name(name) || report_foreign_name(report, name)) continue;
    if (name.starts_with(kVariablePrefix)) report_misspelling(report, name);
  }
}

// Parses one KEEPALIVE_RULES rule into cfg->rules[cfg->nrules]; problems name
// the rule by number and text, and the word at fault.
class RuleParser {
 public:
  RuleParser(Problems *problems, int number, Text text)
      : problems_(problems), number_(number), text_(text) {}

  // Returns false when a problem was reported.
  bool parse(keepalive_rule *rule, Values *values, bool *off) {
    memset(rule, 0, sizeof *rule);
    *off = false;
    quote(text_, rule_text_, sizeof rule_text_);
    size_t n =
        text_.size() < KEEPALIVE_RULE_TEXT_LEN - 1 ? text_.size() : KEEPALIVE_RULE_TEXT_LEN - 1;
    // Kept for one-line messages: the tabs and newlines that may separate
    // words (and any other control byte) become spaces.
    for (size_t i = 0; i < n; ++i) {
      unsigned char c = static_cast<unsigned char>(text_.begin[i]);
      rule->text[i] = c < 0x20 || c >= 0x7f ? ' ' : static_cast<char>(c);
    }
    rule->text[n] = '\0';
    bool any_setting = false;
    const char *p = text_.begin;
    while (p < text_.end) {
      while (p < text_.end && is_space(*p)) ++p;
      const char *word_begin = p;
      while (p < text_.end && !is_space(*p)) ++p;
      Text word{word_begin, p};
      if (word.empty()) break;
      if (!parse_word(word, rule, values, off, &any_setting)) return false;
    }
    if (*off && any_setting) {
      fail(Text{text_.begin, text_.begin}, "\"off\" cannot be combined with settings");
      return false;
    }
    return true;
  }

 private:
  bool parse_word(Text word, keepalive_rule *rule, Values *values, bool *off, bool *any_setting) {
    if (word.equals("in") || word.equals("out")) {
      int bit = word.equals("in") ? KEEPALIVE_IN : KEEPALIVE_OUT;
      if (rule->directions != 0) {
        return fail(word, "a rule takes one direction (leave it out to match both)");
      }
      rule->directions = bit;
      return true;
    }
    if (word.equals("off")) {
      if (*off) return fail(word, "given twice");
      *off = true;
      return true;
    }
    if (word.starts_with("port=")) {
      if (rule->nports != 0) return fail(word, "given twice");
      return parse_list(word, strlen("port="), rule, /*ports=*/true);
    }
    if (word.starts_with("peer=")) {
      if (rule->npeers != 0) return fail(word, "given twice");
      return parse_list(word, strlen("peer="), rule, /*ports=*/false);
    }
    for (const SettingName &name : kSettings) {
      if (!word.starts_with(name.rule_word)) continue;
      if (is_set(name.setting, *values)) return fail(word, "given twice");
      Text value{word.begin + strlen(name.rule_word), word.end};
      if (!parse_setting(name.setting, value, values)) {
        char form[160];
        snprintf(form, sizeof form, "expected %s%s", name.rule_word, form_of(name.setting));
        return fail(word, form);
      }
      *any_setting = true;
      return true;
    }
    return fail(word,
                "unknown word: expected in, out, port=, peer=, idle=, intvl=, cnt=, "
                "user_timeout= or off");
  }

  bool parse_list(Text word, size_t prefix, keepalive_rule *rule, bool ports) {
    const char *p = word.begin + prefix;
    int count = 0;
    for (;;) {
      const char *comma =
          static_cast<const char *>(memchr(p, ',', static_cast<size_t>(word.end - p)));
      const char *item_end = comma != nullptr ? comma : word.end;
      Text item{p, item_end};
      if (count == KEEPALIVE_MAX_ITEMS) {
        char why[96];
        snprintf(why, sizeof why, "more than %d items in one list", KEEPALIVE_MAX_ITEMS);
        return fail(word, why);
      }
      bool ok = ports ? parse_port_range(item, &rule->ports[count])
                      : keepalive_parse_cidr(item.begin, item.size(), &rule->peers[count]) == 1;
      if (!ok) {
        char item_text[kQuotedLen];
        char why[256];
        snprintf(why, sizeof why, "%s is not %s", quote(item, item_text, sizeof item_text),
                 ports ? "a port 1-65535 or a range such as 5000-5999"
                       : "an IPv4/IPv6 address or CIDR such as 127.0.0.0/8, ::1, 2001:db8::/32");
        return fail(word, why);
      }
      ++count;
      if (comma == nullptr) break;
      p = comma + 1;
    }
    if (ports) {
      rule->nports = count;
    } else {
      rule->npeers = count;
    }
    return true;
  }

  bool fail(Text word, const char *why) {
    char word_text[kQuotedLen];
    if (word.empty()) {
      problems_->add(kRulesVariable, "KEEPALIVE_RULES rule %d (%s): %s", number_, rule_text_, why);
    } else {
      problems_->add(kRulesVariable, "KEEPALIVE_RULES rule %d (%s): %s: %s", number_, rule_text_,
                     quote(word, word_text, sizeof word_text), why);
    }
    return false;
  }

  Problems *problems_;
  int number_;
  Text text_;
  char rule_text_[kQuotedLen];
};

// The facts decide() may need for one direction: those of the rules that can
// be reached, i.e. up to the first rule that matches every such socket.
unsigned facts_needed(const keepalive_config *cfg, keepalive_direction direction) {
  unsigned needs = 0;
  for (int i = 0; i < cfg->nrules; ++i) {
    const keepalive_rule &rule = cfg->rules[i];
    if (rule.directions != 0 && (rule.directions & direction) == 0) continue;
    if (rule.nports != 0) needs |= KEEPALIVE_NEED_PORT;
    if (rule.npeers != 0) needs |= KEEPALIVE_NEED_PEER;
    if (rule.nports == 0 && rule.npeers == 0) break;
  }
  return needs;
}

Text value_of(keepalive_lookup_fn lookup, void *context, const char *name, bool *present) {
  const char *value = lookup(name, context);
  if (value == nullptr) {
    *present = false;
    return Text{nullptr, nullptr};
  }
  Text text = trimmed(value, value + strlen(value));
  // An empty value counts as not set (systemd's `Environment=NAME=` form).
  *present = !text.empty();
  return text;
}

void parse_rules(keepalive_config *cfg, Problems *problems, Text rules, const Values &globals,
                 int enabled) {
  const char *p = rules.begin;
  int number = 0;
  while (p <= rules.end) {
    const char *semicolon =
        static_cast<const char *>(memchr(p, ';', static_cast<size_t>(rules.end - p)));
    const char *rule_end = semicolon != nullptr ? semicolon : rules.end;
    Text text = trimmed(p, rule_end);
    p = rule_end + 1;
    if (text.empty()) {
      if (semicolon == nullptr) break;
      continue;  // empty rules (";;" or a trailing ";") are ignored
    }
    ++number;
    if (cfg->nrules == KEEPALIVE_MAX_RULES) {
      problems->add(kRulesVariable, "KEEPALIVE_RULES has more than %d rules", KEEPALIVE_MAX_RULES);
      return;
    }
    keepalive_rule *rule = &cfg->rules[cfg->nrules];
    Values values;
    bool off = false;
    RuleParser parser(problems, number, text);
    if (!parser.parse(rule, &values, &off)) continue;
    rule->settings = resolve(values, globals, cfg->kernel_intvl_s, nullptr);
    rule->settings.rule = cfg->nrules;
    if (off || !enabled) rule->settings.enable = 0;
    ++cfg->nrules;
    if (semicolon == nullptr) break;
  }
}

// "NAME=VALUE is invalid: expected FORM": the problem of a variable's value.
void report_invalid(Problems *problems, Variable variable, Text value, const char *form) {
  char shown[kQuotedLen];
  problems->add(variable, "%s=%s is invalid: expected %s", kVariableNames[variable],
                quote(value, shown, sizeof shown), form);
}

// KEEPALIVE: 1 (on, also when unset), 0 (off), or -1 with a problem.
int read_switch(keepalive_lookup_fn lookup, void *context, Problems *problems) {
  bool present = false;
  Text text = value_of(lookup, context, kVariableNames[kSwitchVariable], &present);
  if (!present) return 1;
  int enabled = parse_switch(text);
  if (enabled < 0) report_invalid(problems, kSwitchVariable, text, kSwitchForm);
  return enabled;
}

// KEEPALIVE_STRICT into cfg->strict and cfg->strict_word.
void read_strict(keepalive_config *cfg, keepalive_lookup_fn lookup, void *context,
                 Problems *problems) {
  bool present = false;
  Text text = value_of(lookup, context, kVariableNames[kStrictVariable], &present);
  if (!present) return;
  int strict = parse_switch(text);
  if (strict < 0) report_invalid(problems, kStrictVariable, text, kSwitchForm);
  cfg->strict = strict == 1;
  if (cfg->strict) {
    // One of the words of kSwitchForm, so it fits and is printable.
    snprintf(cfg->strict_word, sizeof cfg->strict_word, "%.*s", static_cast<int>(text.size()),
             text.begin);
  }
}

// KEEPALIVE_LOG into cfg->log_level (quiet when unset or invalid).
void read_log_level(keepalive_config *cfg, keepalive_lookup_fn lookup, void *context,
                    Problems *problems) {
  cfg->log_level = KEEPALIVE_LOG_QUIET;
  bool present = false;
  Text text = value_of(lookup, context, kVariableNames[kLogVariable], &present);
  if (!present) return;
  if (text.equals_ignoring_case("quiet")) {
    cfg->log_level = KEEPALIVE_LOG_QUIET;
  } else if (text.equals_ignoring_case("info")) {
    cfg->log_level = KEEPALIVE_LOG_INFO;
  } else if (text.equals_ignoring_case("debug")) {
    cfg->log_level = KEEPALIVE_LOG_DEBUG;
  } else {
    report_invalid(problems, kLogVariable, text, kLogForm);
  }
}

}  // namespace

extern "C" {

int keepalive_parse_duration_ms(const char *text, long long *out_ms) {
  if (text == nullptr || out_ms == nullptr) return 0;
  return parse_duration(trimmed(text, text + strlen(text)), out_ms) ? 1 : 0;
}

int keepalive_parse_cidr(const char *text, size_t len, keepalive_cidr *out) {
  char address[64];
  const char *slash = static_cast<const char *>(memchr(text, '/', len));
  size_t address_len = slash != nullptr ? static_cast<size_t>(slash - text) : len;
  if (address_len == 0 || address_len >= sizeof address) return 0;
  memcpy(address, text, address_len);
  address[address_len] = '\0';
  keepalive_cidr cidr;
  memset(&cidr, 0, sizeof cidr);
  int max_prefix = 0;
  if (memchr(address, ':', address_len) != nullptr) {
    if (inet_pton(AF_INET6, address, cidr.net.addr) != 1) return 0;
    cidr.net.family = 6;
    max_prefix = 128;
  } else {
    if (inet_pton(AF_INET, address, cidr.net.addr) != 1) return 0;
    cidr.net.family = 4;
    max_prefix = 32;
  }
  int prefix = max_prefix;
  if (slash != nullptr) {
    Text digits{slash + 1, text + len};
    if (digits.empty() || digits.size() > 3) return 0;
    prefix = 0;
    for (const char *p = digits.begin; p < digits.end; ++p) {
      if (!is_digit(*p)) return 0;
      prefix = prefix * 10 + (*p - '0');
    }
    if (prefix > max_prefix) return 0;
  }
  in6_addr as_in6;
  memcpy(&as_in6, cidr.net.addr, sizeof as_in6);
  if (cidr.net.family == 6 && IN6_IS_ADDR_V4MAPPED(&as_in6)) {
    // ::ffff:a.b.c.d is an IPv4 peer; a prefix must keep the mapped part.
    constexpr int kMappedBits = 96;  // ::ffff:0:0/96
    constexpr size_t kMappedBytes = kMappedBits / 8;
    if (prefix < kMappedBits) return 0;
    memmove(cidr.net.addr, cidr.net.addr + kMappedBytes, sizeof(in_addr));
    memset(cidr.net.addr + sizeof(in_addr), 0, kMappedBytes);
    cidr.net.family = 4;
    prefix -= kMappedBits;
  }
  // Clear host bits: 10.1.2.3/8 means 10.0.0.0/8.
  for (int bit = prefix; bit < 128; ++bit) {
    cidr.net.addr[bit / 8] = static_cast<uint8_t>(cidr.net.addr[bit / 8] & ~(0x80u >> (bit % 8)));
  }
  cidr.prefix = static_cast<uint8_t>(prefix);
  *out = cidr;
  return 1;
}

int keepalive_config_load(keepalive_config *cfg, keepalive_lookup_fn lookup, void *context,
                          int kernel_intvl_s) {
  return keepalive_config_load_names(cfg, lookup, context, kernel_intvl_s, nullptr);
}

int keepalive_config_load_names(keepalive_config *cfg, keepalive_lookup_fn lookup, void *context,
                                int kernel_intvl_s, const char *const *names) {
  // Clears the header only: rules and problems are written as they are
  // parsed, and nothing reads past nrules or nproblems. Clearing all of the
  // ~105 KiB would make every page of the shim's static configuration
  // resident in every preloaded process, although few rules are used.
  memset(cfg, 0, offsetof(keepalive_config, rules));
  memset(cfg->needs, 0, sizeof cfg->needs);
  cfg->nproblems = 0;
  Problems problems(cfg);
  cfg->kernel_intvl_s = kernel_intvl_s > 0 ? kernel_intvl_s : KEEPALIVE_FALLBACK_KERNEL_INTVL_S;
  int enabled = read_switch(lookup, context, &problems);
  read_strict(cfg, lookup, context, &problems);
  read_log_level(cfg, lookup, context, &problems);

  bool present = false;
  Text text{};
  Values globals;
  for (const SettingName &name : kSettings) {
    text = value_of(lookup, context, kVariableNames[name.variable], &present);
    if (present && !parse_setting(name.setting, text, &globals)) {
      report_invalid(&problems, name.variable, text, form_of(name.setting));
    }
  }
  cfg->global = resolve(globals, Values(), cfg->kernel_intvl_s, &cfg->intvl_derived);
  if (enabled != 1) cfg->global.enable = 0;

  text = value_of(lookup, context, kVariableNames[kRulesVariable], &present);
  if (present) parse_rules(cfg, &problems, text, globals, enabled == 1);
  if (names != nullptr) report_unknown_names(cfg, &problems, names);

  cfg->valid = cfg->nproblems == 0;
  cfg->enabled = cfg->valid && enabled == 1;
  if (!cfg->valid) {
    // Never half-applied: an invalid configuration configures nothing.
    cfg->global.enable = 0;
    cfg->nrules = 0;
  }
  cfg->needs[KEEPALIVE_IN] = cfg->enabled ? facts_needed(cfg, KEEPALIVE_IN) : 0;
  cfg->needs[KEEPALIVE_OUT] = cfg->enabled ? facts_needed(cfg, KEEPALIVE_OUT) : 0;
  keepalive::build_rule_index(cfg);
  return cfg->valid;
}

static const char *lookup_environment(const char *name, void *) { return getenv(name); }

int keepalive_config_from_environment(keepalive_config *cfg) {
  return keepalive_config_load_names(cfg, lookup_environment, nullptr,
                                     keepalive_kernel_default_intvl(), environ);
}

int keepalive_kept_problems(const keepalive_config *cfg) {
  return cfg->nproblems < KEEPALIVE_MAX_PROBLEMS ? cfg->nproblems : KEEPALIVE_MAX_PROBLEMS;
}

int keepalive_kept_warnings(const keepalive_config *cfg) {
  return cfg->nwarnings < KEEPALIVE_MAX_WARNINGS ? cfg->nwarnings : KEEPALIVE_MAX_WARNINGS;
}

const char *keepalive_variable_name(int index) {
  return index >= 0 && index < kVariableCount ? kVariableNames[index] : nullptr;
}

const char *keepalive_closest_variable(const char *name) {
  if (name == nullptr) return nullptr;
  return closest_variable(Text{name, name + strlen(name)});
}

const char *keepalive_version(void) { return KEEPALIVE_VERSION_STRING; }

}  // extern "C"
