// default_idle.h — the kernel's default keepalive idle time as the library
// knows it: net.ipv4.tcp_keepalive_time, which TCP_KEEPIDLE reads on a
// socket whose idle time was never set. Read at load; read again, at most
// once a second, when a socket disagrees with it (the sysctl is per network
// namespace and may change while the program runs).
#ifndef KEEPALIVE_SHIM_DEFAULT_IDLE_H
#define KEEPALIVE_SHIM_DEFAULT_IDLE_H

namespace keepalive {

// Reads the default for the first time (the constructor). Preserves errno.
void load_default_idle();

// The default as last read: no call.
int default_idle();

// True when `idle_s`, read from a socket, is not the kernel's default idle
// time: the socket's timings were chosen (keepalive_timings_chosen). When it
// differs from the default as last read and that reading is a second old or
// more, /proc/sys/net/ipv4/tcp_keepalive_time is read again first (an open,
// a read and a close, by one thread at a time; lock-free), so that a changed
// sysctl is not taken for the program's choice. The calling thread's network
// namespace is read: a socket made in another one is judged by this one's
// default. Preserves errno.
bool idle_chosen(int idle_s);

}  // namespace keepalive

#endif
