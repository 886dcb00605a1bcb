// follow.h — `keepalive apply --follow PID`: sets the process's connections
// now, with the pass `keepalive apply` uses, then every interval lists the TCP sockets
// of its network namespace with socket diagnostics (sockdiag.h), maps only
// inodes not seen before to the process's descriptors, and sets the new
// connections with the same decision. Reaches what no libc hook sees:
// static programs, Go, raw syscall(SYS_connect), io_uring.
#ifndef KEEPALIVE_TOOLS_FOLLOW_H
#define KEEPALIVE_TOOLS_FOLLOW_H

#include <string>

#include "keepalive/keepalive.h"
#include "lib/process.h"
#include "lib/socket_pass.h"

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

// Parses --interval's value with the core's duration parser; false with
// *error naming the accepted form.
bool parse_follow_interval(const char *text, int *interval_ms, std::string *error);

// Follows `target` until it exits (returns 0), SIGINT or SIGTERM (returns
// 0), or access to it is lost (returns 3, after a message on stderr): every
// socket goes through the pass (socket_pass.h) with `pass`, and is reported
// as `keepalive apply` reports it.
int follow_process(const TargetProcess &target, const keepalive_config &config,
                   const PassOptions &pass, const FollowOptions &options);

}  // namespace keepalive_cli

#endif  // KEEPALIVE_TOOLS_FOLLOW_H
