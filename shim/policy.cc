// policy.cc — (configuration, socket facts) → the settings to apply.
//
// Pure and cheap: the effective settings of every rule were resolved when the
// configuration was loaded, so deciding is a first-match scan over the rules.
// No allocation, no lock, no syscall.

#include <stdio.h>
#include <string.h>

#include "keepalive/keepalive.h"

namespace {

bool port_matches(const keepalive_rule &rule, const keepalive_socket_facts &facts) {
  if (rule.nports == 0) return true;
  if (!facts.has_port) return false;
  for (int i = 0; i < rule.nports; ++i) {
    if (facts.port >= rule.ports[i].first && facts.port <= rule.ports[i].last) return true;
  }
  return false;
}

bool cidr_contains(const keepalive_cidr &cidr, const keepalive_address &address) {
  if (cidr.net.family != address.family) return false;
  int whole_bytes = cidr.prefix / 8;
  if (memcmp(cidr.net.addr, address.addr, static_cast<size_t>(whole_bytes)) != 0) return false;
  int rest = cidr.prefix % 8;
  if (rest == 0) return true;
  unsigned mask = (0xffu << (8 - rest)) & 0xffu;
  return (address.addr[whole_bytes] & mask) == cidr.net.addr[whole_bytes];
}

bool peer_matches(const keepalive_rule &rule, const keepalive_socket_facts &facts) {
  if (rule.npeers == 0) return true;
  if (!facts.has_peer) return false;
  for (int i = 0; i < rule.npeers; ++i) {
    if (cidr_contains(rule.peers[i], facts.peer)) return true;
  }
  return false;
}

}  // namespace

extern "C" {

unsigned keepalive_needs(const keepalive_config *cfg, keepalive_direction direction) {
  return cfg->needs[direction == KEEPALIVE_OUT ? KEEPALIVE_OUT : KEEPALIVE_IN];
}

int keepalive_rule_matches(const keepalive_rule *rule, const keepalive_socket_facts *facts) {
  if (rule->directions != 0 && (rule->directions & facts->direction) == 0) return 0;
  return port_matches(*rule, *facts) && peer_matches(*rule, *facts) ? 1 : 0;
}

void keepalive_decide(const keepalive_config *cfg, const keepalive_socket_facts *facts,
                      keepalive_settings *out) {
  if (!cfg->enabled) {
    *out = cfg->global;
    out->enable = 0;
    return;
  }
  for (int i = 0; i < cfg->nrules; ++i) {
    if (keepalive_rule_matches(&cfg->rules[i], facts)) {
      *out = cfg->rules[i].settings;
      return;
    }
  }
  *out = cfg->global;
}

int keepalive_format_settings(const keepalive_settings *s, char *buf, size_t size) {
  if (!s->enable) return snprintf(buf, size, "off");
  char idle[16] = "kernel", intvl[16] = "kernel", cnt[16] = "kernel", timeout[24] = "kernel";
  if (s->idle_s != KEEPALIVE_UNSET) snprintf(idle, sizeof idle, "%ds", s->idle_s);
  if (s->intvl_s != KEEPALIVE_UNSET) snprintf(intvl, sizeof intvl, "%ds", s->intvl_s);
  if (s->cnt != KEEPALIVE_UNSET) snprintf(cnt, sizeof cnt, "%d", s->cnt);
  if (s->user_timeout_ms != KEEPALIVE_UNSET) {
    snprintf(timeout, sizeof timeout, "%lldms", s->user_timeout_ms);
  }
  return snprintf(buf, size, "idle=%s intvl=%s cnt=%s user_timeout=%s", idle, intvl, cnt, timeout);
}

}  // extern "C"
