// check.cc — `keepalive check [FLAGS] [--json]`: loads the configuration
// (flags over environment) with the core and explains it: where each value
// came from, each rule with its effective settings, and what they mean for an
// idle connection (figures.h). Exit 0 valid, 1 invalid, 2 usage.

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <string>
#include <string_view>
#include <vector>

#include "commands.h"
#include "lib/cli.h"
#include "lib/figures.h"
#include "lib/options.h"
#include "lib/output.h"

namespace {

using keepalive_cli::EffectiveTimers;
using keepalive_cli::Figures;
using keepalive_cli::format_duration_ms;
using keepalive_cli::JsonWriter;
using keepalive_cli::KernelDefaults;

constexpr char kName[] = "check";

const std::vector<keepalive_cli::Option> kOptions = {
    {"--json", nullptr, "one JSON object on stdout instead of text"},
};

void print_help() {
  std::string text =
      "Usage: keepalive check [FLAGS] [--json]\n"
      "Validates the configuration from the KEEPALIVE_* environment (FLAGS win) and\n"
      "explains it: each rule, its effective IDLE/INTVL/CNT/USER_TIMEOUT, the longest\n"
      "silence on an idle connection, the time to detect a dead idle peer and the\n"
      "probes per hour.\n"
      "\n"
      "FLAGS:\n";
  text += keepalive_cli::ConfigFlags::usage();
  text += keepalive_cli::options_help(kOptions);
  text +=
      "\n"
      "A KEEPALIVE_* variable the library does not know is a warning, and makes the\n"
      "configuration invalid under --strict (KEEPALIVE_STRICT), as in the library.\n"
      "\n"
      "Exit status: 0 valid (warnings included), 1 invalid, 2 usage error.\n"
      "\n"
      "Example: keepalive check --rules 'in port=5222,5223 idle=270 cnt=4; off'\n";
  fputs(text.c_str(), stdout);
}

// One place the configuration decides: a rule, or the settings no rule matches.
struct Entry {
  const keepalive_rule *rule;  // nullptr: the settings no rule matches
  int number;                  // 1-based rule number, 0 for the default
  const keepalive_settings *settings;
  int shadowed_by;  // 0, or the rule after which earlier rules take every
                    // socket this entry could match
};

constexpr int kBothDirections = KEEPALIVE_IN | KEEPALIVE_OUT;

// A rule without port= and peer= takes every socket of its direction(s), and
// hides what follows for them: after "in off; out off" nothing else is used.
std::vector<Entry> entries_of(const keepalive_config &config) {
  std::vector<Entry> entries;
  int covered = 0;  // directions whose every socket an earlier rule takes
  int covered_by = 0;
  auto shadowed = [&](int directions) {
    return (covered & directions) == directions ? covered_by : 0;
  };
  for (int i = 0; i < config.nrules; ++i) {
    const keepalive_rule &rule = config.rules[i];
    int directions = rule.directions != 0 ? rule.directions : kBothDirections;
    entries.push_back(Entry{&rule, i + 1, &rule.settings, shadowed(directions)});
    if (rule.nports == 0 && rule.npeers == 0 && (covered & directions) != directions) {
      covered |= directions;
      covered_by = i + 1;
    }
  }
  entries.push_back(Entry{nullptr, 0, &config.global, shadowed(kBothDirections)});
  return entries;
}

std::string directions_text(int directions) {
  if (directions == KEEPALIVE_IN) return "incoming (accept)";
  if (directions == KEEPALIVE_OUT) return "outgoing (connect)";
  return "both directions";
}

std::string port_text(const keepalive_port_range &range) {
  std::string text = std::to_string(range.first);
  if (range.last != range.first) text += "-" + std::to_string(range.last);
  return text;
}

std::string joined_or(const std::vector<std::string> &items) {
  std::string text;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) text += i + 1 == items.size() ? " or " : ", ";
    text += items[i];
  }
  return text;
}

std::string matches_text(const keepalive_rule &rule) {
  std::string text = directions_text(rule.directions) + ", ";
  if (rule.nports == 0) {
    text += "any port";
  } else {
    std::vector<std::string> ports;
    for (int i = 0; i < rule.nports; ++i) ports.push_back(port_text(rule.ports[i]));
    std::string which = rule.directions == KEEPALIVE_IN    ? "local port "
                        : rule.directions == KEEPALIVE_OUT ? "remote port "
                                                           : "service port ";
    text += which + joined_or(ports);
    if (rule.directions == 0) text += " (local when accepted, remote when connected)";
  }
  text += ", ";
  if (rule.npeers == 0) {
    text += "any peer";
  } else {
    std::vector<std::string> peers;
    for (int i = 0; i < rule.npeers; ++i)
      peers.push_back(keepalive_cli::format_cidr(rule.peers[i]));
    text += "peer " + joined_or(peers);
  }
  return text;
}

const char *log_level_name(const keepalive_config &config) {
  return config.log_level == KEEPALIVE_LOG_DEBUG  ? "debug"
         : config.log_level == KEEPALIVE_LOG_INFO ? "info"
                                                  : "quiet";
}

// A KEEPALIVE_* variable given to the command, and the flag it came from
// (nullptr: from the environment).
struct GivenVariable {
  const char *name;
  const char *value;
  const char *flag;
};

std::vector<GivenVariable> given_variables(const keepalive_cli::ConfigFlags &flags) {
  std::vector<GivenVariable> given;
  for (const char *variable : keepalive_cli::configuration_variables()) {
    const char *value = flags.value(variable);
    if (value != nullptr) given.push_back({variable, value, flags.flag_name(variable)});
  }
  return given;
}

std::string seconds_text(long long ms) {
  std::string plain = ms % 1000 == 0 ? std::to_string(ms / 1000) + "s" : format_duration_ms(ms);
  std::string friendly = format_duration_ms(ms);
  return friendly == plain ? plain : plain + " (" + friendly + ")";
}

void print_settings_text(std::string *out, const keepalive_settings &settings,
                         const KernelDefaults &kernel, const keepalive_config &config,
                         bool is_default) {
  char formatted[KEEPALIVE_SETTINGS_TEXT_LEN];
  keepalive_format_settings(&settings, formatted, sizeof formatted);
  if (!settings.enable) {
    *out += "    settings   off: libkeepalive leaves these sockets as the program sets them\n";
    return;
  }
  *out += std::string("    settings   SO_KEEPALIVE on, ") + formatted + "\n";
  if (is_default && config.intvl_derived) {
    *out +=
        "               (intvl: KEEPALIVE_INTVL is not set, so intvl = min(idle, kernel "
        "default " +
        std::to_string(config.kernel_intvl_s) + "s))\n";
  }
  EffectiveTimers timers = keepalive_cli::effective_timers(settings, kernel);
  Figures figures = keepalive_cli::derive_figures(timers);
  if (timers.intvl_s > timers.idle_s) {
    *out += "    note       intvl " + std::to_string(timers.intvl_s) + "s is longer than idle " +
            std::to_string(timers.idle_s) + "s: after an answered probe the kernel waits intvl, " +
            "so the silence is intvl; give intvl=" + std::to_string(timers.idle_s) +
            " (or less) to keep it at idle\n";
  }
  *out += "    silence    at most " + seconds_text(figures.longest_silence_ms) +
          " on an idle connection: max(idle " + std::to_string(timers.idle_s) + "s, intvl " +
          std::to_string(timers.intvl_s) + "s)\n";
  if (figures.dead_peer_bounded_by_user_timeout) {
    long long probes = (figures.dead_peer_ms / 1000 - timers.idle_s) / timers.intvl_s;
    *out += "    dead peer  detected after " + seconds_text(figures.dead_peer_ms) +
            " of silence: the first probe timer after user_timeout " +
            format_duration_ms(timers.user_timeout_ms) + ", idle " + std::to_string(timers.idle_s) +
            "s + " + std::to_string(probes) + " x intvl " + std::to_string(timers.intvl_s) +
            "s (cnt is not used)\n";
    *out += "               unacknowledged sent data also drops the connection after " +
            format_duration_ms(timers.user_timeout_ms) + "\n";
  } else {
    *out += "    dead peer  detected after " + seconds_text(figures.dead_peer_ms) +
            " of silence: idle " + std::to_string(timers.idle_s) + "s + cnt " +
            std::to_string(timers.cnt) + " x intvl " + std::to_string(timers.intvl_s) + "s\n";
  }
  char rate[32];
  snprintf(rate, sizeof rate, "%.1f", figures.probes_per_hour);
  *out += std::string("    probes     ") + rate +
          " per hour per idle connection while the peer answers\n";
}

std::string warnings_text(const keepalive_config &config) {
  std::string out;
  for (const std::string &warning : keepalive_cli::describe_warnings(config)) {
    out += "  warning: " + warning + "\n";
  }
  return out;
}

std::string invalid_text(const keepalive_config &config, const keepalive_cli::ConfigFlags &flags) {
  std::string out = "Configuration is invalid: libkeepalive would leave every socket untouched";
  out += config.strict ? std::string(" (KEEPALIVE_STRICT=") + config.strict_word +
                             ": the program exits at start).\n"
                       : ".\n";
  for (const std::string &problem : keepalive_cli::describe_problems(config, flags)) {
    out += "  " + problem + "\n";
  }
  return out + warnings_text(config);
}

// Each rule, then the sockets no rule matches, with what their settings mean.
std::string rules_text(const keepalive_config &config, const KernelDefaults &kernel) {
  std::string out;
  if (config.nrules > 0) out += "Rules (the first that matches a socket decides):\n";
  for (const Entry &entry : entries_of(config)) {
    if (entry.rule != nullptr) {
      out += "  rule " + std::to_string(entry.number) + ": " + entry.rule->text + "\n";
      out += "    matches    " + matches_text(*entry.rule) + "\n";
    } else {
      out += config.nrules > 0 ? "Sockets no rule matches:\n" : "Every TCP socket:\n";
    }
    if (entry.shadowed_by != 0) {
      out += "    never used: no socket it could match gets past rule " +
             std::to_string(entry.shadowed_by) + "\n";
      continue;
    }
    print_settings_text(&out, *entry.settings, kernel, config, entry.rule == nullptr);
  }
  return out;
}

std::string text_report(const keepalive_config &config, const keepalive_cli::ConfigFlags &flags,
                        const KernelDefaults &kernel) {
  if (!config.valid) return invalid_text(config, flags);
  std::string out = config.enabled ? "Configuration is valid.\n"
                                   : "Configuration is valid, but KEEPALIVE is off: libkeepalive "
                                     "leaves every socket untouched.\n";
  out += warnings_text(config);
  std::vector<GivenVariable> given = given_variables(flags);
  for (const GivenVariable &variable : given) {
    out +=
        std::string("  ") + variable.name + "=" + variable.value + "   (" +
        (variable.flag != nullptr ? std::string("from ") + variable.flag : "from the environment") +
        ")\n";
  }
  if (given.empty()) out += "  (no KEEPALIVE_* variable is set)\n";
  out += "Kernel defaults" +
         std::string(kernel.from_proc ? " (/proc/sys/net/ipv4/tcp_keepalive_*)"
                                      : " (assumed: /proc/sys/net/ipv4 unreadable)") +
         ": idle " + std::to_string(kernel.idle_s) + "s, intvl " + std::to_string(kernel.intvl_s) +
         "s, cnt " + std::to_string(kernel.cnt) + "\n";
  if (!config.enabled) return out;
  out += "Log: ";
  out += log_level_name(config);
  out += config.strict ? "; strict\n" : "\n";
  return out + "\n" + rules_text(config, kernel);
}

void settings_json(JsonWriter *json, const keepalive_settings &settings) {
  json->begin_object();
  json->field("enable", settings.enable != 0);
  json->optional_field("idle_s", settings.idle_s);
  json->optional_field("intvl_s", settings.intvl_s);
  json->optional_field("cnt", settings.cnt);
  json->optional_field("user_timeout_ms", settings.user_timeout_ms);
  json->end_object();
}

void figures_json(JsonWriter *json, const keepalive_settings &settings,
                  const KernelDefaults &kernel) {
  if (!settings.enable) {
    json->null();
    return;
  }
  EffectiveTimers timers = keepalive_cli::effective_timers(settings, kernel);
  Figures figures = keepalive_cli::derive_figures(timers);
  json->begin_object();
  json->field("idle_s", timers.idle_s);
  json->field("intvl_s", timers.intvl_s);
  json->field("cnt", timers.cnt);
  json->field("user_timeout_ms", timers.user_timeout_ms);
  json->field("longest_silence_s", static_cast<double>(figures.longest_silence_ms) / 1000.0);
  json->field("dead_peer_detection_s", static_cast<double>(figures.dead_peer_ms) / 1000.0);
  json->field("dead_peer_bound",
              figures.dead_peer_bounded_by_user_timeout ? "user_timeout" : "cnt");
  json->field("probes_per_hour", figures.probes_per_hour);
  json->end_object();
}

void strings_json(JsonWriter *json, std::string_view name, const std::vector<std::string> &items) {
  json->key(name).begin_array();
  for (const std::string &item : items) json->string(item);
  json->end_array();
}

void variables_json(JsonWriter *json, const keepalive_cli::ConfigFlags &flags) {
  json->key("variables").begin_array();
  for (const GivenVariable &variable : given_variables(flags)) {
    json->begin_object();
    json->field("name", variable.name);
    json->field("value", variable.value);
    json->field("source", variable.flag != nullptr ? "flag" : "environment");
    if (variable.flag != nullptr) json->field("flag", variable.flag);
    json->end_object();
  }
  json->end_array();
}

void kernel_defaults_json(JsonWriter *json, const KernelDefaults &kernel) {
  json->key("kernel_defaults").begin_object();
  json->field("idle_s", kernel.idle_s);
  json->field("intvl_s", kernel.intvl_s);
  json->field("cnt", kernel.cnt);
  json->field("from_proc", kernel.from_proc != 0);
  json->end_object();
}

// The "settings" and "figures" of a rule, or of the sockets no rule matches.
void settings_and_figures_json(JsonWriter *json, const keepalive_settings &settings,
                               const KernelDefaults &kernel) {
  json->key("settings");
  settings_json(json, settings);
  json->key("figures");
  figures_json(json, settings, kernel);
}

void rule_json(JsonWriter *json, const Entry &entry, const KernelDefaults &kernel) {
  const keepalive_rule &rule = *entry.rule;
  json->begin_object();
  json->field("number", entry.number);
  json->field("text", rule.text);
  json->key("directions").begin_array();
  if (rule.directions == 0 || (rule.directions & KEEPALIVE_IN) != 0) json->string("in");
  if (rule.directions == 0 || (rule.directions & KEEPALIVE_OUT) != 0) json->string("out");
  json->end_array();
  json->key("ports").begin_array();
  for (int i = 0; i < rule.nports; ++i) {
    json->begin_object();
    json->field("first", static_cast<int>(rule.ports[i].first));
    json->field("last", static_cast<int>(rule.ports[i].last));
    json->end_object();
  }
  json->end_array();
  json->key("peers").begin_array();
  for (int i = 0; i < rule.npeers; ++i) json->string(keepalive_cli::format_cidr(rule.peers[i]));
  json->end_array();
  json->field("reachable", entry.shadowed_by == 0);
  settings_and_figures_json(json, rule.settings, kernel);
  json->end_object();
}

// `entry`: the last of entries_of(config), the sockets no rule matches.
void default_json(JsonWriter *json, const keepalive_config &config, const Entry &entry,
                  const KernelDefaults &kernel) {
  json->begin_object();
  json->field("reachable", entry.shadowed_by == 0);
  json->field("intvl_derived", config.intvl_derived != 0);
  settings_and_figures_json(json, config.global, kernel);
  json->end_object();
}

std::string json_report(const keepalive_config &config, const keepalive_cli::ConfigFlags &flags,
                        const KernelDefaults &kernel) {
  JsonWriter json;
  json.begin_object();
  json.field("valid", config.valid != 0);
  json.field("enabled", config.enabled != 0);
  json.field("strict", config.strict != 0);
  json.field("log", log_level_name(config));
  strings_json(&json, "problems", keepalive_cli::describe_problems(config, flags));
  strings_json(&json, "warnings", keepalive_cli::describe_warnings(config));
  variables_json(&json, flags);
  kernel_defaults_json(&json, kernel);
  // An invalid configuration decides nothing: no rules, no default.
  std::vector<Entry> entries = config.valid ? entries_of(config) : std::vector<Entry>();
  json.key("rules").begin_array();
  for (const Entry &entry : entries) {
    if (entry.rule != nullptr) rule_json(&json, entry, kernel);
  }
  json.end_array();
  json.key("default");
  if (entries.empty()) {
    json.null();
  } else {
    default_json(&json, config, entries.back(), kernel);
  }
  json.end_object();
  return json.str();
}

}  // namespace

int keepalive_cmd_check(int argc, char **argv) {
  keepalive_cli::ConfigFlags flags;
  keepalive_cli::OptionReader reader(kName, argc, argv, kOptions, &flags);
  bool as_json = false;
  auto take = [&](keepalive_cli::OptionReader::Kind kind) {
    if (kind == keepalive_cli::OptionReader::kOperand) {
      return reader.usage_error(std::string("unexpected argument ") + reader.value());
    }
    as_json = true;  // --json, the only option
    return true;
  };
  int status = keepalive_cli::kExitOk;
  if (!reader.read_all(print_help, take, &status)) return status;
  return keepalive_check_report(flags, as_json);
}

int keepalive_check_report(const keepalive_cli::ConfigFlags &flags, bool json) {
  keepalive_cli::LoadedConfig loaded = keepalive_cli::load_config(flags);
  KernelDefaults kernel = keepalive_cli::read_kernel_defaults();
  const keepalive_config &config = *loaded.config;
  std::string report =
      json ? json_report(config, flags, kernel) : text_report(config, flags, kernel);
  fputs(report.c_str(), stdout);
  fflush(stdout);
  return config.valid ? keepalive_cli::kExitOk : keepalive_cli::kExitFailure;
}
