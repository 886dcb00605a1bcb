// sockdiag.h — every TCP socket of a network namespace, listed by the
// kernel's socket diagnostics (NETLINK_SOCK_DIAG, INET_DIAG: what ss(8)
// uses): inode, state, addresses and timer, IPv4 and IPv6, in one dump per
// family, without touching a single descriptor. `keepalive apply --follow`
// lists this way every tick and looks at a process's descriptors only for
// inodes it has not seen before.
//
// The parsing of the kernel's answer is a pure function
// (parse_inet_diag_messages), unit-tested without a kernel.
#ifndef KEEPALIVE_TOOLS_SOCKDIAG_H
#define KEEPALIVE_TOOLS_SOCKDIAG_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "lib/process.h"

namespace keepalive_cli {

// One TCP socket as the kernel's socket diagnostics describe it.
struct DiagSocket {
  unsigned long long inode = 0;  // 0 for sockets no process holds (TIME-WAIT, ...)
  int family = 0;                // AF_INET or AF_INET6
  int state = 0;                 // TCP_ESTABLISHED, TCP_LISTEN, ...
  int timer = 0;                 // idiag_timer: 0 none, 1 retransmit, 2 keepalive, ...
  unsigned expires_ms = 0;       // when the timer fires
  unsigned uid = 0;
  sockaddr_storage local{};
  sockaddr_storage peer{};
};

// Bit of a TCP state in a dump's state filter.
constexpr unsigned diag_state_bit(int state) { return 1u << state; }

// ss-style name of an idiag_timer value: "off", "on", "keepalive",
// "timewait", "persist", "unknown".
const char *diag_timer_name(int timer);

enum class DiagParse {
  kMore,   // the messages were read; the dump goes on
  kDone,   // NLMSG_DONE seen: the dump is complete
  kError,  // NLMSG_ERROR or a malformed message; *error says which
};

// Appends the sockets described by the netlink messages in buf[0, len) (one
// recv() of an inet_diag dump) to *out. Pure.
DiagParse parse_inet_diag_messages(const void *buf, size_t len, std::vector<DiagSocket> *out,
                                   std::string *error);

// Runs `work` in the network namespace of process `pid`: entered (setns)
// for the call when it is not the caller's, and left again. A namespace
// that cannot be read (no such process, /proc/PID/ns closed to the caller)
// runs `work` in the caller's own: the best there is. False, with *error
// naming `purpose` and the missing permission, when it could not be entered
// (work not run) or not left again.
bool in_network_namespace(pid_t pid, const char *purpose, const std::function<void()> &work,
                          std::string *error);

// A NETLINK_SOCK_DIAG socket in the network namespace of a process.
class SockDiag {
 public:
  // Opens the socket in the network namespace of `pid` (entering it for the
  // socket() call when it is not the caller's: that needs CAP_SYS_ADMIN).
  // False with *error set on failure.
  bool open(pid_t pid, std::string *error);

  // Every TCP socket (IPv4 and IPv6) whose state is in `states` (bits of
  // diag_state_bit). False with *error set when the dump fails.
  bool dump_tcp(unsigned states, std::vector<DiagSocket> *out, std::string *error) const;

 private:
  bool dump_family(int family, unsigned states, std::vector<DiagSocket> *out,
                   std::string *error) const;

  UniqueFd fd_;
};

}  // namespace keepalive_cli

#endif  // KEEPALIVE_TOOLS_SOCKDIAG_H
