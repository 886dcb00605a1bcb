// init.h — the shim's state: the configuration is loaded once (in the
// constructor, or by the first hooked call if that comes earlier), then
// frozen; and the one routine the hooks call to configure a socket.
#ifndef KEEPALIVE_SHIM_INIT_H
#define KEEPALIVE_SHIM_INIT_H

#include "keepalive/keepalive.h"

namespace keepalive {

// The frozen configuration, or nullptr while the shim is inert: secure
// execution, KEEPALIVE=off, an invalid configuration, or loading still in
// progress on another thread. Never blocks.
const keepalive_config *active_config();

// Decides and applies the settings of fd, which passed has_tcp_protocol (facts read as the
// configuration needs them). Preserves errno; never fails visibly.
void configure_socket(const keepalive_config *cfg, int fd, keepalive_direction direction);

// Decides and applies without logging, to a socket that passed
// has_tcp_protocol; *settings and *failure receive what happened, for
// log_socket. Returns false when the socket turned out not to be an
// AF_INET/AF_INET6 TCP socket (or, below debug logging, was left off).
// Preserves errno.
bool decide_and_apply(const keepalive_config *cfg, int fd, keepalive_direction direction,
                      keepalive_settings *settings, keepalive_apply_failure *failure);

// At KEEPALIVE_LOG=debug, writes one line about a configured socket.
void log_socket(const keepalive_config *cfg, int fd, keepalive_direction direction,
                const keepalive_settings &settings, const keepalive_apply_failure &failure);

}  // namespace keepalive

#endif
