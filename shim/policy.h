// policy.h — the shim's own question to the policy (beyond keepalive.h).
#ifndef KEEPALIVE_SHIM_POLICY_H
#define KEEPALIVE_SHIM_POLICY_H

#include "keepalive/keepalive.h"

namespace keepalive {

// True when a rule with peer= for facts->direction contains facts->peer,
// whatever its ports: only then can the peer make a connection's decision
// differ from the decision for a peer no peer= rule names. False without a
// peer. Pure.
bool peer_rule_names(const keepalive_config *cfg, const keepalive_socket_facts *facts);

}  // namespace keepalive

#endif
