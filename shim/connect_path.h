// connect_path.h — what connect() does around the real call (hook_connect.cc
// stays a screen long).
#ifndef KEEPALIVE_SHIM_CONNECT_PATH_H
#define KEEPALIVE_SHIM_CONNECT_PATH_H

#include <sys/socket.h>

#include "keepalive/keepalive.h"
#include "real_calls.h"

namespace keepalive {

// Calls `real` (connect) and returns exactly what it returned, with its
// errno, for fd, whose TCP_KEEPIDLE read succeeded and showed no timings
// chosen (read_idle, idle_chosen): configured before the call when it is a
// TCP socket about to connect. See connect_path.cc.
int connect_configured(const keepalive_config *cfg, ConnectFn real, int fd, const sockaddr *addr,
                       socklen_t addrlen);

// At debug level, the line about a socket whose timings were chosen, when it
// is about to connect (not when connect() polls one already connecting).
void log_left_alone_before_connect(const keepalive_config *cfg, int fd);

// Registers the fork handler that keeps the process id connect_configured
// uses to copy connect()'s address (a child reads its own memory, not its
// parent's). Call once, from the constructor: registering may allocate and
// takes the lock fork() holds.
void watch_forks();

}  // namespace keepalive

#endif
