// scale_server — the server of the scale scenario (tests/e2e/scale_test.cc),
// in the role of a chat server with thousands of idle phones: one process,
// one epoll, several listening ports. It accepts a given number of
// connections, stays silent, then writes one short message to every
// connection and reports, per port, how many the peers acknowledged. Report
// lines are described in peer.h.
//
//   scale_server --listen ADDR:PORT [--listen ADDR:PORT ...] --connections N
//                --send-after S --watch S [--accept-within S]
//
//   --connections N    accept N connections in all (any port), then close the
//                      listeners
//   --send-after S     write "message\n" to every connection S seconds after
//                      the last one was accepted (each has been silent ≥ S)
//   --watch S          then wait S seconds and count acknowledged messages
//   --accept-within S  fail when the N connections took longer (default 30)
//
// Events: start (libkeepalive_loaded, open_files), listening (one per
// port), accepted (one per port: count, how many accepted sockets have
// SO_KEEPALIVE on, and the first one's keepalive options), all_accepted
// (count, seconds), memory (rss_kb and private_dirty_kb of this process,
// from /proc/self/smaps_rollup), message_sent (count, failed, silence_min,
// silence_max, written_at: CLOCK_MONOTONIC seconds of the first write),
// delivery (one per port: connections, acked, unacked,
// closed), or error (exit 1).
#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>

#include <vector>

#include "peer.h"

using peer::report;

namespace {

constexpr char kMessage[] = "message\n";
constexpr uint64_t kListenerTag = uint64_t{1} << 63;  // epoll data of a listener

struct Options {
  std::vector<sockaddr_in> listen;
  long connections = 0;
  double send_after = 0;
  double watch = 0;
  double accept_within = 30;
};

struct Connection {
  int fd;
  size_t listener;  // index into Options::listen
  double accepted_at;
  bool closed;
  bool sent;
};

constexpr char kUsage[] =
    "--listen ADDR:PORT [--listen ADDR:PORT ...] --connections N\n"
    "          --send-after S --watch S [--accept-within S]";

Options parse_options(int argc, char **argv) {
  Options o;
  peer::parse_flags(
      argc, argv,
      {{"--listen", [&](const char *v) { o.listen.push_back(peer::parse_endpoint(v)); }},
       {"--connections", [&](const char *v) { o.connections = peer::parse_count(v); }},
       {"--send-after", [&](const char *v) { o.send_after = peer::parse_seconds(v); }},
       {"--watch", [&](const char *v) { o.watch = peer::parse_seconds(v); }},
       {"--accept-within", [&](const char *v) { o.accept_within = peer::parse_seconds(v); }}},
      kUsage);
  if (o.listen.empty() || o.connections < 1) peer::usage_error(argv[0], kUsage);
  return o;
}

unsigned port_of(const sockaddr_in &address) { return ntohs(address.sin_port); }

// "Rss" and "Private_Dirty" of /proc/self/smaps_rollup, in kB (-1: unread).
void memory(long *rss_kb, long *private_dirty_kb) {
  *rss_kb = *private_dirty_kb = -1;
  FILE *rollup = fopen("/proc/self/smaps_rollup", "r");
  if (!rollup) return;
  char line[256];
  while (fgets(line, sizeof line, rollup)) {
    sscanf(line, "Rss: %ld kB", rss_kb);
    sscanf(line, "Private_Dirty: %ld kB", private_dirty_kb);
  }
  fclose(rollup);
}

class Server {
 public:
  explicit Server(const Options &options) : options_(options) {
    epoll_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_ < 0) peer::fail("epoll_create1");
    connections_.reserve(static_cast<size_t>(options.connections));
  }

  void listen_all() {
    for (size_t i = 0; i < options_.listen.size(); ++i) {
      const sockaddr_in &address = options_.listen[i];
      int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) peer::fail("socket");
      int one = 1;
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      if (bind(fd, reinterpret_cast<const sockaddr *>(&address), sizeof address) != 0)
        peer::fail("bind");
      if (listen(fd, SOMAXCONN) != 0) peer::fail("listen");
      peer::epoll_watch(epoll_, EPOLL_CTL_ADD, fd, EPOLLIN, kListenerTag | i);
      listeners_.push_back(fd);
      char text[INET_ADDRSTRLEN];
      inet_ntop(AF_INET, &address.sin_addr, text, sizeof text);
      report("listening", "address=%s:%u", text, port_of(address));
    }
  }

  // Accepts until there are --connections, then closes the listeners.
  void accept_all() {
    double started = peer::now_s(), deadline = started + options_.accept_within;
    while (connections_.size() < static_cast<size_t>(options_.connections)) {
      if (peer::now_s() >= deadline) {
        report("error", "what=accept_timeout accepted=%zu", connections_.size());
        exit(1);
      }
      pump(deadline);
    }
    for (int fd : listeners_) close(fd);  // epoll forgets a closed descriptor
    listeners_.clear();
    report_accepted();
    report("all_accepted", "count=%zu seconds=%.3f", connections_.size(),
           connections_.back().accepted_at - started);
  }

  void send_after_silence() {
    double last = connections_.back().accepted_at, first = connections_.front().accepted_at;
    pump(last + options_.send_after);
    size_t sent = 0, failed = 0;
    double written_at = peer::now_s();
    for (Connection &c : connections_) {
      // The send buffer is empty: the message fits whole or fails (EPIPE,
      // ECONNRESET on a connection that ended).
      c.sent = !c.closed && write(c.fd, kMessage, sizeof kMessage - 1) ==
                                static_cast<ssize_t>(sizeof kMessage - 1);
      (c.sent ? sent : failed)++;
    }
    report("message_sent", "count=%zu failed=%zu silence_min=%.3f silence_max=%.3f written_at=%.6f",
           sent, failed, written_at - last, written_at - first, written_at);
  }

  // After --watch seconds, per port: messages the client's kernel
  // acknowledged (nothing left unacknowledged on the socket).
  void report_delivery() {
    pump(peer::now_s() + options_.watch);
    for (size_t i = 0; i < options_.listen.size(); ++i) {
      size_t total = 0, acked = 0, unacked = 0, closed = 0;
      for (const Connection &c : connections_) {
        if (c.listener != i) continue;
        ++total;
        tcp_info info{};
        socklen_t len = sizeof info;
        if (c.closed) {
          ++closed;
        } else if (c.sent && getsockopt(c.fd, IPPROTO_TCP, TCP_INFO, &info, &len) == 0 &&
                   info.tcpi_unacked == 0) {
          ++acked;
        } else {
          ++unacked;
        }
      }
      report("delivery", "port=%u connections=%zu acked=%zu unacked=%zu closed=%zu",
             port_of(options_.listen[i]), total, acked, unacked, closed);
    }
  }

 private:
  // Handles what happens until `deadline`: new connections while the
  // listeners are open, and connections the peer closed or reset.
  void pump(double deadline) {
    epoll_event events[256];
    for (int n; (n = peer::epoll_wait_until(epoll_, events, 256, deadline)) >= 0;) {
      for (int i = 0; i < n; ++i) {
        uint64_t data = events[i].data.u64;
        if (data & kListenerTag)
          accept_from(static_cast<size_t>(data & ~kListenerTag));
        else
          drain(&connections_[data]);
      }
      if (!listeners_.empty() && connections_.size() == static_cast<size_t>(options_.connections))
        return;
    }
  }

  void accept_from(size_t listener) {
    while (connections_.size() < static_cast<size_t>(options_.connections)) {
      int fd = accept4(listeners_[listener], nullptr, nullptr,
                       SOCK_NONBLOCK | SOCK_CLOEXEC);  // hooked
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        peer::fail("accept4");
      }
      connections_.push_back({fd, listener, peer::now_s(), false, false});
      // The peer sends nothing: an event means it closed or reset.
      peer::epoll_watch(epoll_, EPOLL_CTL_ADD, fd, EPOLLIN | EPOLLRDHUP | EPOLLET,
                        connections_.size() - 1);
    }
  }

  static void drain(Connection *c) {
    char buf[256];
    for (;;) {
      ssize_t n = read(c->fd, buf, sizeof buf);
      if (n > 0) continue;
      if (n < 0 && errno == EINTR) continue;
      if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) c->closed = true;
      return;
    }
  }

  void report_accepted() const {
    for (size_t i = 0; i < options_.listen.size(); ++i) {
      size_t count = 0, keepalive_on = 0;
      const Connection *first = nullptr;
      for (const Connection &c : connections_) {
        if (c.listener != i) continue;
        if (!first) first = &c;
        ++count;
        int on = 0;
        socklen_t len = sizeof on;
        if (getsockopt(c.fd, SOL_SOCKET, SO_KEEPALIVE, &on, &len) == 0 && on) ++keepalive_on;
      }
      report("accepted", "port=%u count=%zu keepalive_on=%zu %s", port_of(options_.listen[i]),
             count, keepalive_on, first ? peer::keepalive_state(first->fd).c_str() : "");
    }
  }

  const Options &options_;
  int epoll_ = -1;
  std::vector<int> listeners_;
  std::vector<Connection> connections_;
};

}  // namespace

int main(int argc, char **argv) {
  Options options = parse_options(argc, argv);
  signal(SIGPIPE, SIG_IGN);  // a write to a reset connection must count, not kill
  rlim_t need = static_cast<rlim_t>(options.connections) + options.listen.size() + 16;
  rlim_t open_files = peer::raise_open_files(need);
  report("start", "libkeepalive_loaded=%d open_files=%llu", peer::libkeepalive_loaded(),
         static_cast<unsigned long long>(open_files));
  if (open_files < need) {
    report("error", "what=open_files need=%llu have=%llu", static_cast<unsigned long long>(need),
           static_cast<unsigned long long>(open_files));
    return 1;
  }
  Server server(options);
  server.listen_all();
  server.accept_all();
  long rss_kb, private_dirty_kb;
  memory(&rss_kb, &private_dirty_kb);
  report("memory", "rss_kb=%ld private_dirty_kb=%ld", rss_kb, private_dirty_kb);
  server.send_after_silence();
  server.report_delivery();
  return 0;
}
