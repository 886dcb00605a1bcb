// default_idle.h — the kernel's default keepalive idle time as the library
// knows it: net.ipv4.tcp_keepalive_time, which TCP_KEEPIDLE reads on a
// socket whose idle time was never set. Read at load; read again, at most
// once a second, when a socket disagrees with it (the sysctl is per network
// namespace and may change while the program runs).
#ifndef KEEPALIVE_SHIM_DEFAULT_IDLE_H
#define KEEPALIVE_SHIM_DEFAULT_IDLE_H

#include "keepalive/keepalive.h"

namespace keepalive {

// Reads the default for the first time (the constructor). Preserves errno.
void load_default_idle();

// The default as last read: no call.
int default_idle();

// The kernel's defaults as a socket whose values were never set reads them:
// the idle time as last read (default_idle), the interval and the count as
// read at load. No call.
keepalive_kernel_defaults kernel_defaults();

// Remembers the idle times `cfg` sets (the global one and the rules'): a
// socket that reads one of them carries the library's own, inherited from
// a listener it configured or set by an earlier connect(), and idle_chosen
// says so without reading the sysctl again — the accepted sockets of a
// configured listener, the common case of a server, cost no reading. (A
// sysctl changed to exactly one of these values is therefore not seen.)
void remember_our_idle_times(const keepalive_config *cfg);

// True when `idle_s`, read from a socket, is not the kernel's default idle
// time: the socket's timings were chosen (keepalive_timings_chosen). When it
// differs from the default as last read, is none of ours and that reading is
// a second old or more, /proc/sys/net/ipv4/tcp_keepalive_time is read again first (an open,
// a read and a close, by one thread at a time; lock-free), so that a changed
// sysctl is not taken for the program's choice. The calling thread's network
// namespace is read: a socket made in another one is judged by this one's
// default. Preserves errno.
bool idle_chosen(int idle_s);

}  // namespace keepalive

#endif
