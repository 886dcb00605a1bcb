// scale_client — the client side of the scale scenario
// (tests/e2e/scale_test.cc), in the role of thousands of phones behind one
// carrier NAT: it opens N connections to each server endpoint (non-blocking
// connects, a bounded number in flight, one epoll), stays silent, and counts
// per endpoint the connections on which the server's "message\n" arrived.
// Report lines are described in peer.h.
//
//   scale_client --connect ADDR:PORT [--connect ADDR:PORT ...] --connections N
//                --wait S [--batch B] [--connect-within S]
//
//   --connections N     connections to each endpoint, opened in turn
//   --wait S            after all are connected, count messages for at most S
//                       seconds; SIGUSR1 ends the count earlier
//   --batch B           connects in flight at once (default 256)
//   --connect-within S  fail when connecting took longer (default 30)
//
// Events: start (open_files, local_ports: the size of ip_local_port_range),
// connected (count, seconds), messages (one per endpoint: port,
// connections, received, closed, errors), done (waited, signalled), or error
// (exit 1).
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>

#include <vector>

#include "peer.h"

using peer::report;

namespace {

constexpr char kMessage[] = "message\n";
constexpr size_t kMessageLength = sizeof kMessage - 1;
constexpr uint64_t kSignalTag = ~uint64_t{0};  // epoll data of the signalfd

struct Options {
  std::vector<sockaddr_in> connect;
  long connections = 0;  // per endpoint
  double wait = 0;
  long batch = 256;
  double connect_within = 30;
};

enum class State : uint8_t { kConnecting, kOpen, kReceived, kClosed, kError };

struct Connection {
  int fd;
  uint32_t endpoint;  // index into Options::connect
  State state;
  uint8_t got;  // bytes of kMessage read so far
};

constexpr char kUsage[] =
    "--connect ADDR:PORT [--connect ADDR:PORT ...] --connections N\n"
    "          --wait S [--batch B] [--connect-within S]";

Options parse_options(int argc, char **argv) {
  Options o;
  peer::parse_flags(
      argc, argv,
      {{"--connect", [&](const char *v) { o.connect.push_back(peer::parse_endpoint(v)); }},
       {"--connections", [&](const char *v) { o.connections = peer::parse_count(v); }},
       {"--wait", [&](const char *v) { o.wait = peer::parse_seconds(v); }},
       {"--batch", [&](const char *v) { o.batch = peer::parse_count(v); }},
       {"--connect-within", [&](const char *v) { o.connect_within = peer::parse_seconds(v); }}},
      kUsage);
  if (o.connect.empty() || o.connections < 1) peer::usage_error(argv[0], kUsage);
  return o;
}

// How many ports ip_local_port_range offers in this namespace (0: unread).
long local_ports() {
  FILE *range = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
  if (!range) return 0;
  long low = 0, high = -1;
  int read = fscanf(range, "%ld %ld", &low, &high);
  fclose(range);
  return read == 2 && high >= low ? high - low + 1 : 0;
}

class Client {
 public:
  Client(const Options &options, int signal_fd) : options_(options), signal_fd_(signal_fd) {
    epoll_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_ < 0) peer::fail("epoll_create1");
    peer::epoll_watch(epoll_, EPOLL_CTL_ADD, signal_fd, EPOLLIN, kSignalTag);
    connections_.reserve(static_cast<size_t>(total()));
  }

  size_t total() const {
    return static_cast<size_t>(options_.connections) * options_.connect.size();
  }

  // Opens every connection, at most --batch in flight; fails on the first
  // connection that cannot be made.
  void connect_all() {
    double started = peer::now_s(), deadline = started + options_.connect_within;
    while (open_ < total()) {
      while (in_flight_ < static_cast<size_t>(options_.batch) && connections_.size() < total())
        start_connect();
      if (peer::now_s() >= deadline) {
        report("error", "what=connect_timeout connected=%zu", open_);
        exit(1);
      }
      pump(deadline);
    }
    report("connected", "count=%zu seconds=%.3f", open_, peer::now_s() - started);
  }

  // Counts arriving messages until all came, SIGUSR1, or --wait seconds.
  void count_messages() {
    double started = peer::now_s();
    pump(started + options_.wait);
    for (size_t e = 0; e < options_.connect.size(); ++e) {
      size_t count = 0, received = 0, closed = 0, errors = 0;
      for (const Connection &c : connections_) {
        if (c.endpoint != e) continue;
        ++count;
        received += c.state == State::kReceived;
        closed += c.state == State::kClosed;
        errors += c.state == State::kError;
      }
      report("messages", "port=%u connections=%zu received=%zu closed=%zu errors=%zu",
             ntohs(options_.connect[e].sin_port), count, received, closed, errors);
    }
    report("done", "waited=%.3f signalled=%d", peer::now_s() - started, signalled_);
  }

 private:
  // Starts the next connection, to the endpoints in turn.
  void start_connect() {
    uint32_t endpoint = static_cast<uint32_t>(connections_.size() % options_.connect.size());
    const sockaddr_in &server = options_.connect[endpoint];
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) peer::fail("socket");
    connections_.push_back({fd, endpoint, State::kConnecting, 0});
    if (connect(fd, reinterpret_cast<const sockaddr *>(&server), sizeof server) != 0 &&
        errno != EINPROGRESS)
      peer::fail("connect");
    peer::epoll_watch(epoll_, EPOLL_CTL_ADD, fd, EPOLLOUT, connections_.size() - 1);
    ++in_flight_;
  }

  void connected(Connection *c, size_t index) {
    int error = 0;
    socklen_t len = sizeof error;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0) peer::fail("getsockopt");
    if (error != 0) {
      errno = error;
      peer::fail("connect");
    }
    c->state = State::kOpen;
    --in_flight_;
    ++open_;
    peer::epoll_watch(epoll_, EPOLL_CTL_MOD, c->fd, EPOLLIN | EPOLLRDHUP, index);
  }

  void receive(Connection *c) {
    char buf[64];
    ssize_t n = read(c->fd, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n > 0 && c->got + static_cast<size_t>(n) <= kMessageLength &&
        memcmp(buf, kMessage + c->got, static_cast<size_t>(n)) == 0) {
      c->got = static_cast<uint8_t>(c->got + n);
      if (c->got < kMessageLength) return;
      c->state = State::kReceived;
      ++received_;
    } else {
      c->state = n == 0 ? State::kClosed : State::kError;
    }
    // Nothing more is expected on this connection.
    if (epoll_ctl(epoll_, EPOLL_CTL_DEL, c->fd, nullptr) != 0) peer::fail("epoll_ctl");
  }

  // Handles events until `deadline`; returns earlier when the phase is
  // over: a connect finished (room for the next) or every message came or
  // SIGUSR1 arrived.
  void pump(double deadline) {
    epoll_event events[256];
    for (int n; (n = peer::epoll_wait_until(epoll_, events, 256, deadline)) >= 0;) {
      bool connects_done = false;
      for (int i = 0; i < n; ++i) {
        uint64_t data = events[i].data.u64;
        if (data == kSignalTag) {
          signalfd_siginfo info;
          if (read(signal_fd_, &info, sizeof info) == sizeof info) signalled_ = 1;
          continue;
        }
        Connection *c = &connections_[data];
        if (c->state == State::kConnecting) {
          connected(c, data);
          connects_done = true;
        } else if (c->state == State::kOpen) {
          receive(c);
        }
      }
      if (connects_done || signalled_ || received_ == total()) return;
    }
  }

  const Options &options_;
  int signal_fd_;
  int epoll_ = -1;
  std::vector<Connection> connections_;
  size_t in_flight_ = 0, open_ = 0, received_ = 0;
  int signalled_ = 0;
};

}  // namespace

int main(int argc, char **argv) {
  Options options = parse_options(argc, argv);
  // SIGUSR1 ("count now") is read from a signalfd; blocked from the start so
  // that an early one cannot kill the process.
  sigset_t usr1;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  sigprocmask(SIG_BLOCK, &usr1, nullptr);
  int signal_fd = signalfd(-1, &usr1, SFD_NONBLOCK | SFD_CLOEXEC);
  if (signal_fd < 0) peer::fail("signalfd");

  size_t total = static_cast<size_t>(options.connections) * options.connect.size();
  rlim_t need = total + 16;
  rlim_t open_files = peer::raise_open_files(need);
  long ports = local_ports();
  report("start", "open_files=%llu local_ports=%ld", static_cast<unsigned long long>(open_files),
         ports);
  if (open_files < need) {
    report("error", "what=open_files need=%llu have=%llu", static_cast<unsigned long long>(need),
           static_cast<unsigned long long>(open_files));
    return 1;
  }
  // Each connection to one endpoint needs its own local port.
  if (ports < options.connections) {
    report("error", "what=local_ports need=%ld have=%ld", options.connections, ports);
    return 1;
  }
  Client client(options, signal_fd);
  client.connect_all();
  client.count_messages();
  return 0;
}
