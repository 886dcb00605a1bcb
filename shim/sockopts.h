// sockopts.h — the shim's own socket calls (beyond the public API of
// keepalive.h): classification and configuration in the fewest syscalls.
#ifndef KEEPALIVE_SHIM_SOCKOPTS_H
#define KEEPALIVE_SHIM_SOCKOPTS_H

#include <sys/socket.h>

#include "keepalive/keepalive.h"

namespace keepalive {

// Reads fd's TCP_KEEPIDLE: one getsockopt. False for sockets without the
// IPPROTO_TCP level (Unix, UDP, SCTP, other families); true for TCP and
// MPTCP, which has_tcp_protocol then tells apart. Preserves errno.
bool read_idle(int fd, int *idle_s);

// True when fd's SO_PROTOCOL is IPPROTO_TCP: one getsockopt. Rules out Unix,
// UDP, SCTP and MPTCP sockets, but not other families that reuse the number
// 6 (netlink, CAN, Bluetooth); apply_if_inet finishes the classification.
// Preserves errno.
bool has_tcp_protocol(int fd);

// True when fd is AF_INET or AF_INET6 (SO_DOMAIN). Preserves errno.
bool has_inet_domain(int fd);

// keepalive_apply for a socket that passed has_tcp_protocol: the first
// IPPROTO_TCP-level option doubles as the family check (only AF_INET and
// AF_INET6 TCP sockets accept it; SO_DOMAIN is asked only when it fails, or
// when no TCP-level value is set). Returns false, having set nothing, when
// the socket is not AF_INET/AF_INET6. Preserves errno.
bool apply_if_inet(int fd, const keepalive_settings *s, keepalive_apply_failure *failure);

// keepalive_kernel_default_idle, but `fallback` when the sysctl cannot be
// read (no descriptor left, no /proc). Preserves errno.
int kernel_default_idle_or(int fallback);

// keepalive_apply for a socket whose TCP_KEEPIDLE read succeeded (read_idle:
// an AF_INET/AF_INET6 TCP or MPTCP socket), which must not be MPTCP. When
// `s` sets a user timeout, TCP_USER_TIMEOUT is set first: MPTCP refuses it,
// so it doubles as the protocol check (SO_PROTOCOL is asked only when it
// fails); otherwise SO_PROTOCOL is asked first. Returns false, having set
// nothing, when the socket is not TCP. Preserves errno.
bool apply_to_tcp(int fd, const keepalive_settings *s, keepalive_apply_failure *failure);

// Changes fd, which carries `from` (a listener's settings it inherited, with
// the kernel's values for what `from` leaves unset), to what `to` asks, in
// the fewest calls: only the values that differ are set. A value `to` leaves
// unset, and every value when `to` is off, goes back to the kernel's
// (`kernel`; TCP_USER_TIMEOUT 0), as if it had never been set; `to` off
// switches SO_KEEPALIVE off first. Requires from->enable. Returns the number
// of failed calls, the first in *failure. Preserves errno.
int change_settings(int fd, const keepalive_settings &from, const keepalive_settings &to,
                    const keepalive_kernel_defaults &kernel, keepalive_apply_failure *failure);

// Fills the facts of an outgoing socket (peer address and port, as
// keepalive_read_facts would read them once connected) from connect()'s
// address, copied by the caller into `storage` (`len` bytes of it are the
// application's). Returns false when that address cannot stand for the
// connection: too short or of a family other than AF_INET/AF_INET6, or the
// unspecified address, which the kernel replaces (0.0.0.0 connects to a
// local address). Pure.
bool destination_facts(const sockaddr_storage &storage, socklen_t len, unsigned needs,
                       keepalive_socket_facts *facts);

}  // namespace keepalive

#endif
