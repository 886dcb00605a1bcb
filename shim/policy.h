// policy.h — the shim's own questions to the policy (beyond keepalive.h),
// asked by the command's kernel mode too.
#ifndef KEEPALIVE_SHIM_POLICY_H
#define KEEPALIVE_SHIM_POLICY_H

#include "keepalive/keepalive.h"

namespace keepalive {

// True when a rule with peer= for facts->direction contains facts->peer,
// whatever its ports: only then can the peer make a connection's decision
// differ from the decision for a peer no peer= rule names. False without a
// peer. Pure.
bool peer_rule_names(const keepalive_config *cfg, const keepalive_socket_facts *facts);

// True when `a` and `b` set the same values (whichever rule decided them):
// a socket carrying one carries the other. Pure.
bool same_values(const keepalive_settings &a, const keepalive_settings &b);

}  // namespace keepalive

#endif
