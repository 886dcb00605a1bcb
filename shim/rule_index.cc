// rule_index.cc — see rule_index.h.
//
// Every port range and CIDR of every rule is an interval of keys. The
// intervals' ends cut the key space into pieces; each piece carries the set
// of rules (bit i = rule i) whose items contain it. A socket's port and peer
// each find their piece by binary search; the first matching rule is the
// lowest bit of (rules of its direction) & (rules for its port) & (rules for
// its peer). With at most 64 rules a set is one uint64_t.

#include "rule_index.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

namespace keepalive {
namespace {

static_assert(KEEPALIVE_MAX_RULES <= 64, "a rule set is one uint64_t");

constexpr uint64_t kAll = ~uint64_t{0};

struct Key {
  uint64_t hi, lo;
};

bool less(Key a, Key b) { return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo); }
bool equal(Key a, Key b) { return a.hi == b.hi && a.lo == b.lo; }
Key key_of(const keepalive_index_bound &b) { return Key{b.hi, b.lo}; }
Key successor(Key k) { return k.lo == kAll ? Key{k.hi + 1, 0} : Key{k.hi, k.lo + 1}; }

uint64_t load_be(const uint8_t *p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = v << 8 | p[i];
  return v;
}

// An item as the keys [first, last]; `open_end`: last is the largest key.
struct Interval {
  Key first, last;
  bool open_end;
};

Interval port_interval(const keepalive_port_range &range) {
  return Interval{Key{0, range.first}, Key{0, range.last}, range.last == UINT16_MAX};
}

// Host bits below a prefix of `bits` within a word of `width` bits.
uint64_t host_mask(int bits, int width) {
  if (bits >= width) return 0;
  uint64_t all = width == 64 ? kAll : (uint64_t{1} << width) - 1;
  return bits <= 0 ? all : all >> bits;
}

Interval cidr_interval(const keepalive_cidr &cidr) {
  if (cidr.net.family == 4) {
    uint64_t net = load_be(cidr.net.addr, 4);
    uint64_t last = net | host_mask(cidr.prefix, 32);
    return Interval{Key{0, net}, Key{0, last}, last == 0xffffffffu};
  }
  Key first{load_be(cidr.net.addr, 8), load_be(cidr.net.addr + 8, 8)};
  Key last{first.hi | host_mask(cidr.prefix, 64), first.lo | host_mask(cidr.prefix - 64, 64)};
  return Interval{first, last, last.hi == kAll && last.lo == kAll};
}

// Calls visit(Interval) for each item of `rule` of this kind.
template <typename Visit>
void for_each_item(const keepalive_rule &rule, keepalive_index_kind kind, Visit visit) {
  if (kind == KEEPALIVE_INDEX_PORTS) {
    for (int i = 0; i < rule.nports; ++i) visit(port_interval(rule.ports[i]));
    return;
  }
  int family = kind == KEEPALIVE_INDEX_IPV4 ? 4 : 6;
  for (int i = 0; i < rule.npeers; ++i) {
    if (rule.peers[i].net.family == family) visit(cidr_interval(rule.peers[i]));
  }
}

// Index of the first of the sorted `bounds` whose key is > key.
int upper_bound(const keepalive_index_bound *bounds, int count, Key key) {
  int lo = 0, hi = count;
  while (lo < hi) {
    int mid = (lo + hi) / 2;
    if (less(key, key_of(bounds[mid]))) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  return lo;
}

// Fills the bounds of one kind; returns false when it needs more than
// KEEPALIVE_INDEX_BOUNDS of them.
bool build_bounds(keepalive_config *cfg, keepalive_index_kind kind) {
  keepalive_index_bound *bounds = cfg->index.bounds[kind];
  int count = 0;
  bool fits = true;
  auto add = [&](Key key) {
    if (count == KEEPALIVE_INDEX_BOUNDS) {
      fits = false;
      return;
    }
    bounds[count++] = keepalive_index_bound{key.hi, key.lo, 0};
  };
  for (int r = 0; r < cfg->nrules; ++r) {
    for_each_item(cfg->rules[r], kind, [&](const Interval &item) {
      add(item.first);
      if (!item.open_end) add(successor(item.last));
    });
  }
  if (!fits) return false;
  // Sort (insertion sort: a few hundred keys at most, once) and deduplicate.
  for (int i = 1; i < count; ++i) {
    keepalive_index_bound b = bounds[i];
    int j = i;
    for (; j > 0 && less(key_of(b), key_of(bounds[j - 1])); --j) bounds[j] = bounds[j - 1];
    bounds[j] = b;
  }
  int unique = 0;
  for (int i = 0; i < count; ++i) {
    if (unique == 0 || !equal(key_of(bounds[i]), key_of(bounds[unique - 1]))) {
      bounds[unique++] = bounds[i];
    }
  }
  count = unique;
  // An item covers the pieces from its first key (a bound) up to the bound
  // after its last key.
  for (int r = 0; r < cfg->nrules; ++r) {
    uint64_t bit = uint64_t{1} << r;
    for_each_item(cfg->rules[r], kind, [&](const Interval &item) {
      int first = upper_bound(bounds, count, item.first) - 1;
      int end = item.open_end ? count : upper_bound(bounds, count, item.last);
      for (int i = first; i < end; ++i) bounds[i].rules |= bit;
    });
  }
  cfg->index.nbounds[kind] = count;
  return true;
}

uint64_t rules_containing(const keepalive_rule_index &index, keepalive_index_kind kind, Key key) {
  int piece = upper_bound(index.bounds[kind], index.nbounds[kind], key) - 1;
  return piece < 0 ? 0 : index.bounds[kind][piece].rules;
}

}  // namespace

void build_rule_index(keepalive_config *cfg) {
  keepalive_rule_index &index = cfg->index;
  memset(&index, 0, offsetof(keepalive_rule_index, bounds));
  for (int r = 0; r < cfg->nrules; ++r) {
    const keepalive_rule &rule = cfg->rules[r];
    uint64_t bit = uint64_t{1} << r;
    if (rule.directions == 0 || (rule.directions & KEEPALIVE_IN) != 0) {
      index.by_direction[KEEPALIVE_IN] |= bit;
    }
    if (rule.directions == 0 || (rule.directions & KEEPALIVE_OUT) != 0) {
      index.by_direction[KEEPALIVE_OUT] |= bit;
    }
    if (rule.nports == 0) index.any_port |= bit;
    if (rule.npeers == 0) index.any_peer |= bit;
  }
  index.usable = build_bounds(cfg, KEEPALIVE_INDEX_PORTS) &&
                 build_bounds(cfg, KEEPALIVE_INDEX_IPV4) && build_bounds(cfg, KEEPALIVE_INDEX_IPV6);
}

int indexed_first_match(const keepalive_config *cfg, const keepalive_socket_facts *facts) {
  const keepalive_rule_index &index = cfg->index;
  uint64_t port_rules = index.any_port;
  if (facts->has_port) {
    port_rules |= rules_containing(index, KEEPALIVE_INDEX_PORTS, Key{0, facts->port});
  }
  uint64_t peer_rules = index.any_peer;
  if (facts->has_peer && facts->peer.family == 4) {
    Key v4{0, load_be(facts->peer.addr, 4)};
    peer_rules |= rules_containing(index, KEEPALIVE_INDEX_IPV4, v4);
  } else if (facts->has_peer && facts->peer.family == 6) {
    Key v6{load_be(facts->peer.addr, 8), load_be(facts->peer.addr + 8, 8)};
    peer_rules |= rules_containing(index, KEEPALIVE_INDEX_IPV6, v6);
  }
  uint64_t rules = index.by_direction[facts->direction] & port_rules & peer_rules;
  return rules == 0 ? KEEPALIVE_RULE_GLOBAL : __builtin_ctzll(rules);
}

}  // namespace keepalive
