// socket_report.cc — see socket_report.h.

#include "lib/socket_report.h"

#include "lib/output.h"

namespace keepalive_cli {
namespace {

// "rule 1 (peer=127.0.0.0/8,::1 off)", "rules 1 (...), 3 (...)".
std::string rules_text(const keepalive_config &config, const std::vector<int> &rules) {
  std::vector<std::string> each;
  for (int rule : rules) {
    each.push_back(std::to_string(rule + 1) + " (" + config.rules[rule].text + ")");
  }
  return (rules.size() == 1 ? "rule " : "rules ") + joined(each);
}

// Why a socket the pass left, looked past or could not reach reads as it
// does; "" for the actions that show before -> after.
std::string why_left(const keepalive_config &config, const Outcome &outcome) {
  switch (outcome.action) {
    case Action::kLeft:
      return config.enabled ? "the rule says off: left as it is" : "KEEPALIVE=off: left as it is";
    case Action::kOwnTimings:
      return "timings chosen by the program, or set earlier: left alone";
    case Action::kByPeer:
      if (!outcome.stricter_peer_rules.empty()) {
        return rules_text(config, outcome.stricter_peer_rules) +
               " asks more for some peers than this port's settings give: each connection is "
               "set when accepted, by libkeepalive if preloaded";
      }
      return "a peer= rule decides connections on this port (--exact-listeners): each is set "
             "when accepted, by libkeepalive if preloaded";
    case Action::kNotCarried:
      return "not the configuration's values: left as it is";
    case Action::kListenerNotSet:
      return "listening: --listeners sets it for connections accepted from now on";
    case Action::kNotEstablished:
      return std::string(tcp_state_name(outcome.socket.state)) +
             ": only established connections are changed";
    default:
      return "";
  }
}

// "decision": the core's settings and the rule that chose them, or null.
void decision_json(JsonWriter *json, const keepalive_config &config, const Outcome &outcome) {
  json->key("decision");
  if (!outcome.decided) {
    json->null();
    return;
  }
  const bool global = outcome.settings.rule == KEEPALIVE_RULE_GLOBAL;
  json->begin_object();
  json->optional_field("rule", global ? KEEPALIVE_UNSET : outcome.settings.rule + 1LL);
  json->optional_field("rule_text", global ? "" : config.rules[outcome.settings.rule].text);
  json->field("enable", outcome.settings.enable != 0);
  json->optional_field("idle_s", outcome.settings.idle_s);
  json->optional_field("intvl_s", outcome.settings.intvl_s);
  json->optional_field("cnt", outcome.settings.cnt);
  json->optional_field("user_timeout_ms", outcome.settings.user_timeout_ms);
  json->end_object();
}

}  // namespace

std::string plural(int n, const char *one, const char *many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

std::string joined(const std::vector<std::string> &items) {
  std::string text;
  for (size_t i = 0; i < items.size(); ++i) text += (i == 0 ? "" : ", ") + items[i];
  return text;
}

std::string rule_text(const keepalive_config &config, const Outcome &outcome) {
  if (!outcome.decided) return "-";
  if (!config.enabled) return "off (KEEPALIVE=off)";
  if (outcome.settings.rule == KEEPALIVE_RULE_GLOBAL) return "global";
  return std::to_string(outcome.settings.rule + 1) + " (" +
         config.rules[outcome.settings.rule].text + ")";
}

std::string fds_text(const Outcome &outcome) {
  std::string text = std::to_string(outcome.socket.fd);
  for (int fd : outcome.same_socket_fds) text += "," + std::to_string(fd);
  return text;
}

std::string endpoint_pair(const TcpSocket &socket) {
  std::string text = socket.has_local ? format_endpoint(socket.local) : "?";
  if (socket.has_peer) text += " <-> " + format_endpoint(socket.peer);
  return text;
}

std::string keepalive_column(const keepalive_config &config, const Outcome &outcome) {
  std::string before = settings_text(outcome.before_read, outcome.before);
  std::string after = settings_text(outcome.after_read, outcome.after);
  switch (outcome.action) {
    case Action::kSet:
    case Action::kWouldSet:
      if (outcome.socket.listening && !outcome.peer_rules.empty()) {
        return before + " -> " + after + " (" + rules_text(config, outcome.peer_rules) +
               " asks less for some peers: they get these values too, until the program "
               "restarts)";
      }
      return before + " -> " + after;
    case Action::kReset:
      return before + " -> " + after;
    case Action::kOverridden:
    case Action::kWouldOverride:
      return before + " -> " + after + " (the program's own timings, replaced: --override)";
    case Action::kWouldReset:
      return before + " -> kernel defaults";
    case Action::kGone:
      return "(" + outcome.error + ")";
    case Action::kFailed:
      if (!outcome.decided) return before + " (" + outcome.error + ")";
      return before + " -> " + after + " (" + outcome.error + ")";
    default:
      break;
  }
  std::string why = why_left(config, outcome);
  return why.empty() ? before : before + " (" + why + ")";
}

std::vector<std::string> socket_cells(const keepalive_config &config, const Outcome &outcome) {
  const TcpSocket &socket = outcome.socket;
  return {fds_text(outcome), direction_name(socket),
          socket.has_local ? format_endpoint(socket.local) : "-",
          socket.has_peer ? format_endpoint(socket.peer) : "-", rule_text(config, outcome)};
}

void socket_json_fields(JsonWriter *json, const keepalive_config &config, const Outcome &outcome) {
  const TcpSocket &socket = outcome.socket;
  json->field("fd", socket.fd);
  json->key("same_socket_fds").begin_array();
  for (int fd : outcome.same_socket_fds) json->number(static_cast<long long>(fd));
  json->end_array();
  socket_identity_json(json, socket);
  json->field("action", action_info(outcome.action).name);
  decision_json(json, config, outcome);
  socket_settings_json(json, "before", outcome.before_read, outcome.before);
  if (outcome.action == Action::kGone) {
    json->key("after").null();
  } else {
    socket_settings_json(json, "after", outcome.after_read, outcome.after);
  }
  json->field("inherited_by_new_connections",
              socket.listening && action_info(outcome.action).group == Group::kChanged);
  json->field("second_look", outcome.second_look);
  json->key("peer_rules_asking_more").begin_array();
  for (int rule : outcome.stricter_peer_rules) json->number(static_cast<long long>(rule + 1));
  json->end_array();
  json->key("peer_rules_not_honoured").begin_array();
  for (int rule : outcome.peer_rules) json->number(static_cast<long long>(rule + 1));
  json->end_array();
  json->optional_field("error", outcome.error);
}

void totals_json_fields(JsonWriter *json, bool dry_run, const Totals &totals) {
  json->field("sockets", totals.sockets());
  json->field(dry_run ? "would_set" : "set", totals.of(Group::kChanged));
  json->field("left", totals.of(Group::kLeft));
  json->field("skipped", totals.of(Group::kSkipped));
  json->field("gone", totals.of(Group::kGone));
  json->field("failed", totals.of(Group::kFailed));
}

std::string totals_line(const keepalive_config &config, bool dry_run, const Totals &totals) {
  std::vector<std::string> parts;
  parts.push_back(plural(totals.of(Group::kChanged), "socket", "sockets") +
                  (dry_run ? " would be set" : " set"));
  const int by_rule = totals.of(Action::kLeft);
  const int alone = totals.of(Group::kLeft) - by_rule;
  if (by_rule > 0) {
    parts.push_back(std::to_string(by_rule) +
                    (config.enabled ? " left as the rules say" : " left as they are"));
  }
  if (alone > 0) parts.push_back(std::to_string(alone) + " left alone");
  const int listeners = totals.of(Action::kListenerNotSet);
  const int not_established = totals.of(Action::kNotEstablished);
  if (listeners > 0) {
    parts.push_back(plural(listeners, "listening socket", "listening sockets") +
                    " skipped (--listeners)");
  }
  if (not_established > 0) {
    parts.push_back(std::to_string(not_established) + " not established, skipped");
  }
  const int gone = totals.of(Group::kGone), failed = totals.of(Group::kFailed);
  if (gone > 0) parts.push_back(std::to_string(gone) + " closed meanwhile");
  if (failed > 0) parts.push_back(std::to_string(failed) + " FAILED");
  return joined(parts) + ".\n";
}

void socket_identity_json(JsonWriter *json, const TcpSocket &socket) {
  json->field("inode", static_cast<long long>(socket.inode));
  json->field("family", socket.family == AF_INET6 ? "ipv6" : "ipv4");
  json->field("state", tcp_state_name(socket.state));
  json->key("direction");
  if (socket.listening || socket.connected) {
    json->string(direction_name(socket));
  } else {
    json->null();
  }
  json->key("local");
  if (socket.has_local) {
    json->string(format_endpoint(socket.local));
  } else {
    json->null();
  }
  json->key("peer");
  if (socket.has_peer) {
    json->string(format_endpoint(socket.peer));
  } else {
    json->null();
  }
}

std::string unexamined_text(const Unexamined &unexamined) {
  if (unexamined.fds.empty()) return "";
  size_t n = unexamined.fds.size();
  std::string text = std::to_string(n) + (n == 1 ? " descriptor" : " descriptors") +
                     " could not be examined (" + (n == 1 ? "fd " : "fds ");
  for (size_t i = 0; i < n; ++i) text += (i == 0 ? "" : ", ") + std::to_string(unexamined.fds[i]);
  return text + "): " + unexamined.reason;
}

void unexamined_json(JsonWriter *json, const Unexamined &unexamined) {
  json->key("unexamined").begin_object();
  json->key("fds").begin_array();
  for (int fd : unexamined.fds) json->number(static_cast<long long>(fd));
  json->end_array();
  json->key("reason");
  if (unexamined.fds.empty()) {
    json->null();
  } else {
    json->string(unexamined.reason);
  }
  json->end_object();
}

}  // namespace keepalive_cli
