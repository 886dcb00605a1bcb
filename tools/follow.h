// follow.h — `keepalive apply --follow PID`: sets the process's connections
// now, as `keepalive apply` does, then every interval lists the TCP sockets
// of its network namespace with socket diagnostics (sockdiag.h), maps only
// inodes not seen before to the process's descriptors, and sets the new
// connections with the same decision. Reaches what no libc hook sees:
// static programs, Go, raw syscall(SYS_connect), io_uring.
#ifndef KEEPALIVE_TOOLS_FOLLOW_H
#define KEEPALIVE_TOOLS_FOLLOW_H

#include <functional>
#include <string>

#include "keepalive/keepalive.h"
#include "process.h"

namespace keepalive_cli {

// Why 1 s: a NAT forgets after minutes, so a connection set one second late
// loses nothing; a connection that lives less than the interval may be
// missed, and one second keeps the cost of a tick (one netlink dump) small.
inline constexpr int kDefaultFollowIntervalMs = 1000;
inline constexpr int kMinFollowIntervalMs = 10;
inline constexpr int kMaxFollowIntervalMs = 3600 * 1000;

struct FollowOptions {
  bool follow = false;
  int interval_ms = kDefaultFollowIntervalMs;
  bool verbose = false;  // one line per connection
  bool json = false;     // one JSON object per line
};

// What was done to one socket, as `keepalive apply` reports it.
struct SocketReport {
  std::string action;     // apply's JSON action: set, would_set, left, gone, failed, ...
  std::string rule;       // the deciding rule, as apply's table shows it
  std::string keepalive;  // "before -> after", as apply's table shows it
  bool before_read = false;
  keepalive_settings before{};
  bool after_read = false;
  keepalive_settings after{};
  std::string error;  // for failed and gone
};

// Decides one socket and sets it, exactly as `keepalive apply` does.
using ConfigureSocket = std::function<SocketReport(const TargetProcess &, const TcpSocket &)>;

// Parses --interval's value with the core's duration parser; false with
// *error naming the accepted form.
bool parse_follow_interval(const char *text, int *interval_ms, std::string *error);

// Follows `target` until it exits (returns 0), SIGINT or SIGTERM (returns
// 0), or access to it is lost (returns 3, after a message on stderr).
int follow_process(const TargetProcess &target, const FollowOptions &options,
                   const ConfigureSocket &configure);

}  // namespace keepalive_cli

#endif  // KEEPALIVE_TOOLS_FOLLOW_H
