// config_fuzzer.cc — libFuzzer target over the whole configuration parser.
//
// One input is a whole environment: NUL-separated fields, in this order
//   KEEPALIVE_RULES, KEEPALIVE_IDLE, KEEPALIVE_INTVL, KEEPALIVE_CNT,
//   KEEPALIVE_USER_TIMEOUT, KEEPALIVE, KEEPALIVE_LOG, KEEPALIVE_STRICT,
//   then up to 4 bytes of the kernel's default interval (little-endian int).
// A field past the end of the input is unset (lookup returns NULL), and so
// is every field of the empty input; an empty field is set to "". Example:
//   printf 'in port=5222 idle=4m30s\0270' > seed   (RULES and IDLE set)
// NUL cannot occur in an environment value, so every
// possible environment is one input.
//
// Each input goes through keepalive_config_load and every other parser entry
// point, then through these checks (any failure aborts, so that libFuzzer
// saves the input):
//   - the parser asks for no variable this target does not feed;
//   - problems: each one line of printable ASCII, NUL-terminated within
//     KEEPALIVE_PROBLEM_LEN; unused slots untouched; valid == no problem;
//     an invalid configuration configures nothing;
//   - every accepted value is in the kernel's range, and the kernel accepts
//     it: keepalive_apply on a real TCP socket reports 0 failures for the
//     global settings and each rule's, and reads back what was set;
//   - rules: lists, prefixes and texts within their bounds; a rule's text
//     (quoted in the shim's debug lines) is one printable line;
//   - keepalive_needs is sound: deciding with only the facts it names gives
//     the same settings as deciding with every fact;
//   - the shim's peer_rule_names is sound: when no peer= rule names the
//     peer, the decision has the values of the decision without the peer
//     (what a listener carries for its accepted sockets);
//   - the settings text fits KEEPALIVE_SETTINGS_TEXT_LEN, the buffer every caller
//     (the shim's log lines, the command) gives it;
//   - errno is preserved where the API promises it;
//   - each field, also taken as the name KEEPALIVE_<field> of an environment
//     entry, is reported as keepalive_config_load_names promises (a warning,
//     or a problem under KEEPALIVE_STRICT), and the fields are exactly the
//     library's variables (keepalive_variable_name).
// replay_main.cc runs the same checks over the checked-in corpus without
// libFuzzer, so that every build (GCC too) replays it.

#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "keepalive/keepalive.h"
#include "policy.h"  // shim/: the shim's own question to the policy

namespace {

constexpr const char *kVariables[] = {
    "KEEPALIVE_RULES",        "KEEPALIVE_IDLE", "KEEPALIVE_INTVL", "KEEPALIVE_CNT",
    "KEEPALIVE_USER_TIMEOUT", "KEEPALIVE",      "KEEPALIVE_LOG",   "KEEPALIVE_STRICT",
};
constexpr size_t kVariableCount = sizeof kVariables / sizeof kVariables[0];
constexpr int kErrnoSentinel = 12345;  // no errno has this value

struct Input {
  // One heap block per set variable, exactly strlen + 1 bytes, so that the
  // sanitizer catches any read past a value's NUL.
  std::unique_ptr<char[]> values[kVariableCount];
  bool set[kVariableCount] = {};
  int kernel_intvl_s = KEEPALIVE_FALLBACK_KERNEL_INTVL_S;
  std::string unknown_variable;  // first name looked up that we do not feed
};

std::string Escaped(const char *text) {
  std::string out = "\"";
  for (const unsigned char *p = reinterpret_cast<const unsigned char *>(text); *p; ++p) {
    if (*p < 0x20 || *p >= 0x7f || *p == '"' || *p == '\\') {
      char hex[8];
      snprintf(hex, sizeof hex, "\\x%02x", *p);
      out += hex;
    } else {
      out += static_cast<char>(*p);
    }
  }
  return out + "\"";
}

const Input *current_input = nullptr;  // for the failure report

[[noreturn]] __attribute__((format(printf, 1, 2))) void Fail(const char *format, ...) {
  fprintf(stderr, "\nconfig_fuzzer: CHECK FAILED: ");
  va_list args;
  va_start(args, format);
  vfprintf(stderr, format, args);
  va_end(args);
  fprintf(stderr, "\n");
  if (current_input != nullptr) {
    for (size_t i = 0; i < kVariableCount; ++i) {
      fprintf(stderr, "  %s=%s\n", kVariables[i],
              current_input->set[i] ? Escaped(current_input->values[i].get()).c_str() : "(unset)");
    }
    fprintf(stderr, "  kernel_intvl_s=%d\n", current_input->kernel_intvl_s);
  }
  abort();
}

#define CHECK(condition, ...)            \
  do {                                   \
    if (!(condition)) Fail(__VA_ARGS__); \
  } while (0)

Input Split(const uint8_t *data, size_t size) {
  Input input;
  if (size == 0) return input;  // the empty input: nothing set
  const uint8_t *p = data, *end = data + size;
  for (size_t field = 0; field < kVariableCount; ++field) {
    const uint8_t *nul = static_cast<const uint8_t *>(memchr(p, 0, static_cast<size_t>(end - p)));
    size_t n = static_cast<size_t>((nul != nullptr ? nul : end) - p);
    input.values[field].reset(new char[n + 1]);
    memcpy(input.values[field].get(), p, n);
    input.values[field][n] = '\0';
    input.set[field] = true;
    if (nul == nullptr) return input;
    p = nul + 1;
  }
  uint32_t raw = 0;
  for (size_t i = 0; i < 4 && p + i < end; ++i) raw |= static_cast<uint32_t>(p[i]) << (8 * i);
  if (p < end) input.kernel_intvl_s = static_cast<int>(raw);
  return input;
}

const char *Lookup(const char *name, void *context) {
  Input *input = static_cast<Input *>(context);
  for (size_t i = 0; i < kVariableCount; ++i) {
    if (strcmp(name, kVariables[i]) == 0) return input->set[i] ? input->values[i].get() : nullptr;
  }
  if (input->unknown_variable.empty()) input->unknown_variable = name;
  return nullptr;
}

// A fresh TCP socket per process, reused: the checks only ever set values.
int TestSocket() {
  static int fd = -1;
  if (fd < 0) {
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      perror("config_fuzzer: socket");
      abort();
    }
  }
  return fd;
}

void CheckSettingsInRange(const keepalive_settings &s, const char *what) {
  CHECK(s.enable == 0 || s.enable == 1, "%s: enable=%d", what, s.enable);
  CHECK(s.idle_s == KEEPALIVE_UNSET || (s.idle_s >= 1 && s.idle_s <= KEEPALIVE_IDLE_MAX_S),
        "%s: idle_s=%d out of range", what, s.idle_s);
  CHECK(s.intvl_s == KEEPALIVE_UNSET || (s.intvl_s >= 1 && s.intvl_s <= KEEPALIVE_INTVL_MAX_S),
        "%s: intvl_s=%d out of range", what, s.intvl_s);
  CHECK(s.cnt == KEEPALIVE_UNSET || (s.cnt >= 1 && s.cnt <= KEEPALIVE_CNT_MAX),
        "%s: cnt=%d out of range", what, s.cnt);
  CHECK(s.user_timeout_ms == KEEPALIVE_UNSET ||
            (s.user_timeout_ms >= 0 && s.user_timeout_ms <= KEEPALIVE_USER_TIMEOUT_MAX_MS),
        "%s: user_timeout_ms=%lld out of range", what, s.user_timeout_ms);
}

// Whatever the parser accepted, the kernel accepts, and keeps.
void CheckKernelAccepts(const keepalive_settings &s, const char *what) {
  if (!s.enable) return;
  int fd = TestSocket();
  keepalive_apply_failure failure;
  errno = kErrnoSentinel;
  int failures = keepalive_apply(fd, &s, &failure);
  CHECK(errno == kErrnoSentinel, "%s: keepalive_apply changed errno to %d", what, errno);
  CHECK(failures == 0, "%s: the kernel refused %s (errno %d): %d failures", what,
        failure.option ? failure.option : "?", failure.error, failures);
  keepalive_settings got;
  CHECK(keepalive_read_settings(fd, &got) == 1, "%s: keepalive_read_settings failed", what);
  CHECK(errno == kErrnoSentinel, "%s: keepalive_read_settings changed errno", what);
  CHECK(got.enable == 1, "%s: SO_KEEPALIVE not on after apply", what);
  CHECK(s.idle_s == KEEPALIVE_UNSET || got.idle_s == s.idle_s, "%s: idle %d read back as %d", what,
        s.idle_s, got.idle_s);
  CHECK(s.intvl_s == KEEPALIVE_UNSET || got.intvl_s == s.intvl_s, "%s: intvl %d read back as %d",
        what, s.intvl_s, got.intvl_s);
  CHECK(s.cnt == KEEPALIVE_UNSET || got.cnt == s.cnt, "%s: cnt %d read back as %d", what, s.cnt,
        got.cnt);
  CHECK(s.user_timeout_ms == KEEPALIVE_UNSET || got.user_timeout_ms == s.user_timeout_ms,
        "%s: user_timeout %lld read back as %lld", what, s.user_timeout_ms, got.user_timeout_ms);
}

void CheckFormat(const keepalive_settings &s, const char *what) {
  char buf[KEEPALIVE_SETTINGS_TEXT_LEN];
  int n = keepalive_format_settings(&s, buf, sizeof buf);
  CHECK(n >= 0 && static_cast<size_t>(n) < sizeof buf,
        "%s: settings text needs %d bytes, KEEPALIVE_SETTINGS_TEXT_LEN is %zu", what, n,
        sizeof buf);
}

bool IsOneLine(const char *text, size_t capacity) {
  const char *nul = static_cast<const char *>(memchr(text, '\0', capacity));
  if (nul == nullptr || nul == text) return false;
  for (const char *p = text; p < nul; ++p) {
    if (*p < 0x20 || *p > 0x7e) return false;
  }
  return true;
}

// What every configuration is filled with before it is loaded.
constexpr unsigned char kFill = 0xa5;

void CheckProblems(const keepalive_config &cfg) {
  CHECK(cfg.nproblems >= 0, "nproblems=%d", cfg.nproblems);
  CHECK(cfg.valid == (cfg.nproblems == 0), "valid=%d with %d problems", cfg.valid, cfg.nproblems);
  int kept = keepalive_kept_problems(&cfg);
  for (int i = 0; i < kept; ++i) {
    CHECK(IsOneLine(cfg.problems[i], KEEPALIVE_PROBLEM_LEN),
          "problem %d is not one NUL-terminated line of printable ASCII within %d bytes: %s", i,
          KEEPALIVE_PROBLEM_LEN,
          Escaped(std::string(cfg.problems[i], KEEPALIVE_PROBLEM_LEN - 1).c_str()).c_str());
    // A name with bytes that need escaping is quoted: "KEEPALIVE_\x01".
    const char *named = cfg.problems[i] + (cfg.problems[i][0] == '"' ? 1 : 0);
    CHECK(strncmp(named, "KEEPALIVE", 9) == 0, "problem %d does not name its variable: %s", i,
          cfg.problems[i]);
  }
  for (int i = kept; i < KEEPALIVE_MAX_PROBLEMS; ++i) {
    for (int j = 0; j < KEEPALIVE_PROBLEM_LEN; ++j) {
      CHECK(static_cast<unsigned char>(cfg.problems[i][j]) == kFill,
            "unused problem slot %d written", i);
    }
  }
  if (!cfg.valid) {
    CHECK(!cfg.enabled && cfg.nrules == 0 && cfg.global.enable == 0,
          "invalid configuration still configures (enabled=%d nrules=%d global.enable=%d)",
          cfg.enabled, cfg.nrules, cfg.global.enable);
  }
}

void CheckRule(const keepalive_rule &rule, int index) {
  char what[32];
  snprintf(what, sizeof what, "rule %d", index + 1);
  CHECK(rule.directions == 0 || rule.directions == KEEPALIVE_IN || rule.directions == KEEPALIVE_OUT,
        "%s: directions=%d", what, rule.directions);
  CHECK(rule.nports >= 0 && rule.nports <= KEEPALIVE_MAX_ITEMS, "%s: nports=%d", what, rule.nports);
  CHECK(rule.npeers >= 0 && rule.npeers <= KEEPALIVE_MAX_ITEMS, "%s: npeers=%d", what, rule.npeers);
  for (int i = 0; i < rule.nports; ++i) {
    CHECK(rule.ports[i].first >= 1 && rule.ports[i].first <= rule.ports[i].last,
          "%s: port range %u-%u", what, rule.ports[i].first, rule.ports[i].last);
  }
  for (int i = 0; i < rule.npeers; ++i) {
    const keepalive_cidr &c = rule.peers[i];
    int bits = c.net.family == 4 ? 32 : c.net.family == 6 ? 128 : -1;
    CHECK(bits > 0 && c.prefix <= bits, "%s: peer %d family %u prefix %u", what, i, c.net.family,
          c.prefix);
    for (int bit = c.prefix; bit < 128; ++bit) {
      CHECK((c.net.addr[bit / 8] & (0x80u >> (bit % 8))) == 0,
            "%s: peer %d has host bit %d set (prefix %u)", what, i, bit, c.prefix);
    }
  }
  // The shim quotes a rule's text in its debug lines: one printable line.
  CHECK(IsOneLine(rule.text, sizeof rule.text) || rule.text[0] == '\0',
        "%s: text is not one NUL-terminated line of printable ASCII: %s", what,
        Escaped(std::string(rule.text, strnlen(rule.text, sizeof rule.text)).c_str()).c_str());
  CHECK(rule.settings.rule == index, "%s: settings.rule=%d", what, rule.settings.rule);
  CheckSettingsInRange(rule.settings, what);
  CheckKernelAccepts(rule.settings, what);
  CheckFormat(rule.settings, what);
}

bool SameValues(const keepalive_settings &a, const keepalive_settings &b) {
  return a.enable == b.enable && a.idle_s == b.idle_s && a.intvl_s == b.intvl_s && a.cnt == b.cnt &&
         a.user_timeout_ms == b.user_timeout_ms;
}

bool SameSettings(const keepalive_settings &a, const keepalive_settings &b) {
  return SameValues(a, b) && a.rule == b.rule;
}

// keepalive_needs is what lets the shim skip getsockname/getpeername: the
// decision from the facts it names must equal the decision from all facts.
void CheckNeedsAreSound(const keepalive_config &cfg) {
  std::vector<uint16_t> ports = {1, 80, 5222, 65535};
  std::vector<keepalive_address> peers;
  keepalive_address a{};
  a.family = 4;
  a.addr[0] = 127, a.addr[3] = 1;
  peers.push_back(a);
  a = keepalive_address{};
  a.family = 6;
  a.addr[15] = 1;
  peers.push_back(a);
  for (int i = 0; i < cfg.nrules; ++i) {
    const keepalive_rule &r = cfg.rules[i];
    if (r.nports > 0) ports.push_back(r.ports[0].last);
    if (r.npeers > 0) peers.push_back(r.peers[0].net);
  }
  for (keepalive_direction direction : {KEEPALIVE_IN, KEEPALIVE_OUT}) {
    unsigned needs = keepalive_needs(&cfg, direction);
    CHECK((needs & ~(KEEPALIVE_NEED_PORT | KEEPALIVE_NEED_PEER)) == 0, "needs=%u", needs);
    for (uint16_t port : ports) {
      for (const keepalive_address &peer : peers) {
        keepalive_socket_facts all{};
        all.direction = direction;
        all.has_port = 1;
        all.port = port;
        all.has_peer = 1;
        all.peer = peer;
        keepalive_socket_facts named = all;
        named.has_port = (needs & KEEPALIVE_NEED_PORT) != 0;
        named.has_peer = (needs & KEEPALIVE_NEED_PEER) != 0;
        keepalive_settings from_all, from_named;
        keepalive_decide(&cfg, &all, &from_all);
        keepalive_decide(&cfg, &named, &from_named);
        CHECK(SameSettings(from_all, from_named),
              "needs(%s)=%u is unsound: port %u peer family %u decides rule %d with every fact, "
              "rule %d with the named ones",
              direction == KEEPALIVE_IN ? "in" : "out", needs, port, peer.family, from_all.rule,
              from_named.rule);
        CHECK(cfg.enabled || from_all.enable == 0, "disabled configuration decided enable=1");
        // What an accepted socket inherits from its listener is the decision
        // without the peer; the shim changes it only where peer_rule_names.
        keepalive_settings any_peer;
        keepalive_socket_facts without_peer = all;
        without_peer.has_peer = 0;
        keepalive_decide(&cfg, &without_peer, &any_peer);
        CHECK(keepalive::peer_rule_names(&cfg, &all) || SameValues(from_all, any_peer),
              "peer_rule_names(%s) is unsound: port %u peer family %u decides rule %d, rule %d "
              "without the peer, and no peer= rule names the peer",
              direction == KEEPALIVE_IN ? "in" : "out", port, peer.family, from_all.rule,
              any_peer.rule);
        CheckSettingsInRange(from_all, "decision");
      }
    }
  }
}

void CheckOtherEntryPoints(const Input &input) {
  for (size_t i = 0; i < kVariableCount; ++i) {
    if (!input.set[i]) continue;
    const char *text = input.values[i].get();
    long long ms = -7;
    errno = kErrnoSentinel;
    if (keepalive_parse_duration_ms(text, &ms)) {
      CHECK(ms >= 0 && ms <= KEEPALIVE_USER_TIMEOUT_MAX_MS, "duration %s -> %lld ms",
            Escaped(text).c_str(), ms);
    } else {
      CHECK(ms == -7, "rejected duration %s still wrote %lld", Escaped(text).c_str(), ms);
    }
    // keepalive_parse_cidr takes (text, len): give it exactly len bytes
    // and no terminator, so that reading past len is caught.
    size_t len = strlen(text);
    std::unique_ptr<char[]> exact(new char[len > 0 ? len : 1]);
    memcpy(exact.get(), text, len);
    keepalive_cidr cidr;
    if (keepalive_parse_cidr(exact.get(), len, &cidr)) {
      int bits = cidr.net.family == 4 ? 32 : cidr.net.family == 6 ? 128 : -1;
      CHECK(bits > 0 && cidr.prefix <= bits, "cidr %s -> family %u prefix %u",
            Escaped(text).c_str(), cidr.net.family, cidr.prefix);
    }
    CHECK(errno == kErrnoSentinel, "a parser changed errno to %d", errno);
  }
}

bool IsKnownName(const std::string &name) {
  for (int i = 0; keepalive_variable_name(i) != nullptr; ++i) {
    if (name == keepalive_variable_name(i)) return true;
  }
  return name == "KEEPALIVE_LIBRARY";
}

// Every field is also the name of an environment entry, "KEEPALIVE_" + the
// field (the name ends at '=', as in environ): each unknown name is reported
// once, in one printable line, as a warning, or as a problem under
// KEEPALIVE_STRICT (besides the value problems of the plain load), and
// keepalive_closest_variable answers a known name or NULL.
void CheckNames(Input *input, const keepalive_config &plain) {
  std::vector<std::string> entries;
  int unknown = 0;
  for (size_t i = 0; i < kVariableCount; ++i) {
    if (!input->set[i]) continue;
    entries.push_back(std::string("KEEPALIVE_") + input->values[i].get());
    std::string name = entries.back().substr(0, entries.back().find('='));
    if (!IsKnownName(name)) ++unknown;
    errno = kErrnoSentinel;
    const char *closest = keepalive_closest_variable(name.c_str());
    CHECK(errno == kErrnoSentinel, "keepalive_closest_variable changed errno");
    CHECK(closest == nullptr || IsKnownName(closest), "closest to %s: %s",
          Escaped(name.c_str()).c_str(), closest);
  }
  std::vector<const char *> names;
  for (const std::string &entry : entries) names.push_back(entry.c_str());
  names.push_back(nullptr);
  std::unique_ptr<keepalive_config> cfg(new keepalive_config);
  memset(cfg.get(), kFill, sizeof *cfg);
  errno = kErrnoSentinel;
  keepalive_config_load_names(cfg.get(), Lookup, input, input->kernel_intvl_s, names.data());
  CHECK(errno == kErrnoSentinel, "keepalive_config_load_names changed errno to %d", errno);
  CheckProblems(*cfg);
  int warnings = cfg->strict ? 0 : unknown;
  CHECK(cfg->nwarnings == warnings, "%d warnings for %d unknown names", cfg->nwarnings, unknown);
  CHECK(cfg->nproblems == plain.nproblems + (cfg->strict ? unknown : 0),
        "%d problems with names, %d without, %d unknown names", cfg->nproblems, plain.nproblems,
        unknown);
  int kept = warnings < KEEPALIVE_MAX_WARNINGS ? warnings : KEEPALIVE_MAX_WARNINGS;
  for (int i = 0; i < KEEPALIVE_MAX_WARNINGS; ++i) {
    if (i < kept) {
      CHECK(IsOneLine(cfg->warnings[i], KEEPALIVE_PROBLEM_LEN),
            "warning %d is not one NUL-terminated line of printable ASCII", i);
      const char *named = cfg->warnings[i] + (cfg->warnings[i][0] == '"' ? 1 : 0);
      CHECK(strncmp(named, "KEEPALIVE_", 10) == 0, "warning %d does not name the variable: %s", i,
            cfg->warnings[i]);
    } else {
      for (int j = 0; j < KEEPALIVE_PROBLEM_LEN; ++j) {
        CHECK(static_cast<unsigned char>(cfg->warnings[i][j]) == kFill,
              "unused warning slot %d written", i);
      }
    }
  }
}

// The fields of an input are exactly the library's variables.
void CheckVariablesAreTheLibrarys() {
  size_t listed = 0;
  for (; keepalive_variable_name(static_cast<int>(listed)) != nullptr; ++listed) {
    bool fed = false;
    for (const char *variable : kVariables) {
      fed = fed || strcmp(variable, keepalive_variable_name(static_cast<int>(listed))) == 0;
    }
    CHECK(fed, "the library lists %s, which this fuzzer does not feed: add it to kVariables",
          keepalive_variable_name(static_cast<int>(listed)));
  }
  CHECK(listed == kVariableCount, "the library lists %zu variables, this fuzzer feeds %zu", listed,
        kVariableCount);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  Input input = Split(data, size);
  current_input = &input;
  // keepalive_config is large (fixed-size rule storage): keep it off the stack.
  std::unique_ptr<keepalive_config> cfg(new keepalive_config);
  // Load must not rely on zeroed memory, and must leave what it does not use
  // untouched (so that the pages of unused rule storage never become resident).
  memset(cfg.get(), kFill, sizeof *cfg);
  errno = kErrnoSentinel;
  int valid = keepalive_config_load(cfg.get(), Lookup, &input, input.kernel_intvl_s);
  CHECK(errno == kErrnoSentinel, "keepalive_config_load changed errno to %d", errno);
  CHECK(input.unknown_variable.empty(),
        "the parser reads %s, which this fuzzer does not feed: add it to kVariables",
        input.unknown_variable.c_str());
  CHECK(valid == cfg->valid, "returned %d, valid=%d", valid, cfg->valid);
  CHECK(!cfg->enabled || cfg->valid, "enabled but invalid");
  CHECK(cfg->log_level >= KEEPALIVE_LOG_QUIET && cfg->log_level <= KEEPALIVE_LOG_DEBUG,
        "log_level=%d", static_cast<int>(cfg->log_level));
  CHECK(cfg->kernel_intvl_s >= 1, "kernel_intvl_s=%d", cfg->kernel_intvl_s);
  CHECK(cfg->nrules >= 0 && cfg->nrules <= KEEPALIVE_MAX_RULES, "nrules=%d", cfg->nrules);
  CheckProblems(*cfg);
  CheckSettingsInRange(cfg->global, "global");
  CHECK(cfg->global.rule == KEEPALIVE_RULE_GLOBAL, "global.rule=%d", cfg->global.rule);
  CheckKernelAccepts(cfg->global, "global");
  CheckFormat(cfg->global, "global");
  for (int i = 0; i < cfg->nrules; ++i) CheckRule(cfg->rules[i], i);
  if (!cfg->enabled) {
    CHECK(cfg->needs[KEEPALIVE_IN] == 0 && cfg->needs[KEEPALIVE_OUT] == 0,
          "a disabled configuration needs facts");
  }
  CheckNeedsAreSound(*cfg);
  CheckOtherEntryPoints(input);
  CheckNames(&input, *cfg);
  CheckVariablesAreTheLibrarys();
  current_input = nullptr;
  return 0;
}
