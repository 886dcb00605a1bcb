// policy.cc — (configuration, socket facts) → the settings to apply.
//
// Pure and cheap: the effective settings of every rule were resolved when the
// configuration was loaded, and so was the rule index (rule_index.h), so
// deciding is two binary searches; a configuration too large for the index
// is decided by a first-match scan over the rules.
// No allocation, no lock, no syscall.

#include "policy.h"

#include <stdio.h>
#include <string.h>

#include "keepalive/keepalive.h"
#include "rule_index.h"

namespace {

bool port_matches(const keepalive_rule &rule, const keepalive_socket_facts &facts) {
  if (rule.nports == 0) return true;
  if (!facts.has_port) return false;
  for (int i = 0; i < rule.nports; ++i) {
    if (facts.port >= rule.ports[i].first && facts.port <= rule.ports[i].last) return true;
  }
  return false;
}

// Whole-word comparisons under a mask: no memcmp call per CIDR, which
// dominated the scan (a call and a variable-length compare for 2-4 bytes).
uint64_t load_be64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, sizeof v);
  return __builtin_bswap64(v);
}

uint64_t prefix_mask64(int bits) {  // the top `bits` (0..64) bits set
  return bits <= 0 ? 0 : bits >= 64 ? ~uint64_t{0} : ~uint64_t{0} << (64 - bits);
}

bool cidr_contains(const keepalive_cidr &cidr, const keepalive_address &address) {
  if (cidr.net.family != address.family) return false;
  if (address.family == 4) {
    uint32_t net, addr;
    memcpy(&net, cidr.net.addr, 4);
    memcpy(&addr, address.addr, 4);
    uint32_t mask = static_cast<uint32_t>(prefix_mask64(cidr.prefix) >> 32);
    return ((__builtin_bswap32(net) ^ __builtin_bswap32(addr)) & mask) == 0;
  }
  uint64_t high = load_be64(cidr.net.addr) ^ load_be64(address.addr);
  uint64_t low = load_be64(cidr.net.addr + 8) ^ load_be64(address.addr + 8);
  return (high & prefix_mask64(cidr.prefix)) == 0 && (low & prefix_mask64(cidr.prefix - 64)) == 0;
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

namespace keepalive {

bool peer_rule_names(const keepalive_config *cfg, const keepalive_socket_facts *facts) {
  if (!facts->has_peer) return false;
  for (int i = 0; i < cfg->nrules; ++i) {
    const keepalive_rule &rule = cfg->rules[i];
    if (rule.npeers == 0) continue;
    if (rule.directions != 0 && (rule.directions & facts->direction) == 0) continue;
    if (peer_matches(rule, *facts)) return true;
  }
  return false;
}

bool same_values(const keepalive_settings &a, const keepalive_settings &b) {
  return a.enable == b.enable && a.idle_s == b.idle_s && a.intvl_s == b.intvl_s && a.cnt == b.cnt &&
         a.user_timeout_ms == b.user_timeout_ms;
}

}  // namespace keepalive

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
  int rule = KEEPALIVE_RULE_GLOBAL;
  if (cfg->nrules == 0) {
    // The global settings: nothing to look up.
  } else if (cfg->index.usable &&
             (facts->direction == KEEPALIVE_IN || facts->direction == KEEPALIVE_OUT)) {
    rule = keepalive::indexed_first_match(cfg, facts);
  } else {
    for (int i = 0; i < cfg->nrules && rule == KEEPALIVE_RULE_GLOBAL; ++i) {
      if (keepalive_rule_matches(&cfg->rules[i], facts)) rule = i;
    }
  }
  *out = rule == KEEPALIVE_RULE_GLOBAL ? cfg->global : cfg->rules[rule].settings;
}

int keepalive_decide_listener(const keepalive_config *cfg, const keepalive_socket_facts *facts,
                              keepalive_settings *out) {
  *out = cfg->global;
  out->enable = 0;
  if (!cfg->enabled) return 0;
  // First match over the incoming rules, as keepalive_decide, but a rule
  // that needs the peer ends it: connections from some peers would match.
  int rule = KEEPALIVE_RULE_GLOBAL;
  for (int i = 0; i < cfg->nrules && rule == KEEPALIVE_RULE_GLOBAL; ++i) {
    const keepalive_rule &r = cfg->rules[i];
    if (r.directions != 0 && (r.directions & KEEPALIVE_IN) == 0) continue;
    if (r.nports != 0 && !facts->has_port) return 0;
    if (!port_matches(r, *facts)) continue;
    if (r.npeers != 0) return 0;
    rule = i;
  }
  const keepalive_settings &decided =
      rule == KEEPALIVE_RULE_GLOBAL ? cfg->global : cfg->rules[rule].settings;
  if (!decided.enable) return 0;
  *out = decided;
  return 1;
}

int keepalive_timings_chosen(const keepalive_settings *read_back, int kernel_idle_s) {
  return read_back->idle_s != kernel_idle_s ? 1 : 0;
}

int keepalive_settings_carry(const keepalive_settings *read_back,
                             const keepalive_settings *decided) {
  auto same = [](long long read, long long value) {
    return value == KEEPALIVE_UNSET || read == value;
  };
  return decided->enable && read_back->enable && same(read_back->idle_s, decided->idle_s) &&
                 same(read_back->intvl_s, decided->intvl_s) && same(read_back->cnt, decided->cnt) &&
                 same(read_back->user_timeout_ms, decided->user_timeout_ms)
             ? 1
             : 0;
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
