// init.h — the shim's state: the configuration is loaded once (in the
// constructor, or by the first hooked call if that comes earlier), then
// frozen; and the routines the hooks call to configure a socket.
#ifndef KEEPALIVE_SHIM_INIT_H
#define KEEPALIVE_SHIM_INIT_H

#include "keepalive/keepalive.h"

namespace keepalive {

// The frozen configuration, or nullptr while the shim is inert: secure
// execution, KEEPALIVE=off, an invalid configuration, or loading still in
// progress on another thread. Never blocks.
const keepalive_config *active_config();

// The one accept path of accept() and accept4(): `client` is what the real
// call returned on `listener`. A new socket whose TCP_KEEPIDLE differs from
// the kernel's default has had its timings chosen (inherited from a
// listener configured by the program or by us) and is left alone: one
// getsockopt — unless peer= rules exist for incoming connections and it
// carries what we set on its listener: then its peer is read (a second
// call), and when a peer= rule decides that peer otherwise, the values that
// differ are changed. Otherwise it is classified, decided and configured,
// and so is the listener, with the decision for a peer no peer= rule names,
// unless that is off or the program chose its own timings there: the
// sockets it accepts later inherit them. Returns client; preserves errno.
int configure_accepted(int listener, int client);

// True when fd reads back a TCP_KEEPIDLE other than the kernel's default
// (keepalive_timings_chosen): leave it alone. False too when the read fails
// (the socket has no TCP level). *readable says whether the read worked.
bool timings_chosen(int fd, bool *readable);

// Decides and applies the settings of fd, which passed has_tcp_protocol (facts read as the
// configuration needs them). Preserves errno; never fails visibly.
void configure_socket(const keepalive_config *cfg, int fd, keepalive_direction direction);

// Decides and applies without logging, to a socket that passed
// has_tcp_protocol; *facts, *settings and *failure receive what happened,
// for log_socket (*failure, made {nullptr, 0} by the caller, is written only
// when there was something to set). Returns false when the socket turned out not to be an
// AF_INET/AF_INET6 TCP socket (or, below debug logging, was left off).
// Preserves errno.
bool decide_and_apply(const keepalive_config *cfg, int fd, keepalive_direction direction,
                      keepalive_socket_facts *facts, keepalive_settings *settings,
                      keepalive_apply_failure *failure);

// At KEEPALIVE_LOG=debug, writes one line about a configured socket.
void log_socket(const keepalive_config *cfg, int fd, keepalive_direction direction,
                const keepalive_settings &settings, const keepalive_apply_failure &failure);

// At KEEPALIVE_LOG=debug, writes why a socket whose timings were chosen was
// left alone: the program's own timings, or ours inherited from its
// listening socket (or set by an earlier connect()). Makes the extra reads
// this needs only at debug level.
void log_left_alone(const keepalive_config *cfg, int fd, keepalive_direction direction);

}  // namespace keepalive

#endif
