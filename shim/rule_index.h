// rule_index.h — the rule index of keepalive_config (see keepalive_rule_index):
// built once by keepalive_config_load, read by keepalive_decide. Pure, no
// allocation.
#ifndef KEEPALIVE_SHIM_RULE_INDEX_H
#define KEEPALIVE_SHIM_RULE_INDEX_H

#include "keepalive/keepalive.h"

namespace keepalive {

// Fills cfg->index from cfg->rules[0..nrules); index.usable = 0 when a kind
// needs more than KEEPALIVE_INDEX_BOUNDS boundaries.
void build_rule_index(keepalive_config *cfg);

// The first rule that matches `facts` (as keepalive_rule_matches would
// find scanning in order), or KEEPALIVE_RULE_GLOBAL. Requires index.usable
// and a direction of KEEPALIVE_IN or KEEPALIVE_OUT.
int indexed_first_match(const keepalive_config *cfg, const keepalive_socket_facts *facts);

}  // namespace keepalive

#endif
