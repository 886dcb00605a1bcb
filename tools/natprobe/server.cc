// server.cc — `keepalive natprobe server`: accepts the client's probe
// connections and, on each, sends one line after the idle period the client
// asked for, unless the connection is gone by then.

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <string_view>
#include <vector>

#include "keepalive/keepalive.h"
#include "lib/cli.h"
#include "lib/options.h"
#include "lib/output.h"
#include "lib/process.h"
#include "lib/stop_signals.h"
#include "natprobe/natprobe.h"
#include "natprobe/probe.h"

namespace keepalive_natprobe {
namespace {

void say(const std::string &line) {
  fputs((line + "\n").c_str(), stdout);
  fflush(stdout);
}

// Milliseconds since the connection last carried a packet either way, as the
// kernel saw it (TCP_INFO, in jiffies): the last ACK received covers the
// client's ACK of ARMED, the last data sent ARMED itself. -1 when unreadable.
long long silence_ms(int fd) {
  tcp_info info{};
  socklen_t length = sizeof info;
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length) != 0) return -1;
  return std::min({info.tcpi_last_data_sent, info.tcpi_last_ack_recv, info.tcpi_last_data_recv});
}

struct ServerConnection {
  enum class Stage { kRequest, kIdle };
  UniqueFd fd;
  std::string peer;
  Stage stage = Stage::kRequest;
  double deadline = 0;
  double armed_at = 0;
  long long idle_ms = 0;
  std::string buffer;
};

// Listens on ADDR:PORT (numeric). Returns the listening socket and *shown
// (the address bound, with the port chosen for port 0), or none with *error
// and *failure (the errno, 0 for a bad address).
UniqueFd open_listener(const std::string &endpoint, std::string *shown, std::string *error,
                       int *failure) {
  *failure = 0;
  std::string host, port;
  if (!split_endpoint(endpoint, 0, &host, &port, error)) {
    *error = "--listen " + endpoint + ": " + *error;
    return UniqueFd();
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
  addrinfo *found = nullptr;
  int status = getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &found);
  if (status != 0) {
    *error = "--listen " + endpoint +
             ": expected a numeric address (0.0.0.0, [::], 198.51.100.2): " + gai_strerror(status);
    return UniqueFd();
  }
  UniqueFd fd(socket(found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.valid()) {
    int one = 1, zero = 0;
    setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    // [::] takes IPv4 clients too, as ::ffff:a.b.c.d.
    if (found->ai_family == AF_INET6) {
      setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    }
    if (bind(fd.get(), found->ai_addr, found->ai_addrlen) != 0 || listen(fd.get(), 128) != 0) {
      *failure = errno;
      fd.reset();
    }
  } else {
    *failure = errno;
  }
  if (!fd.valid()) *error = "cannot listen on " + endpoint + ": " + strerror(*failure);
  freeaddrinfo(found);
  if (fd.valid()) {
    sockaddr_storage bound{};
    socklen_t length = sizeof bound;
    getsockname(fd.get(), reinterpret_cast<sockaddr *>(&bound), &length);
    *shown = format_endpoint(bound);
  }
  return fd;
}

// A client's address; an IPv4 client of a [::] listener as plain IPv4.
std::string peer_text(const sockaddr_storage &peer) {
  const auto &in6 = reinterpret_cast<const sockaddr_in6 &>(peer);
  if (peer.ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&in6.sin6_addr)) {
    sockaddr_storage v4{};
    auto &in = reinterpret_cast<sockaddr_in &>(v4);
    in.sin_family = AF_INET;
    in.sin_port = in6.sin6_port;
    memcpy(&in.sin_addr, &in6.sin6_addr.s6_addr[12], 4);
    return format_endpoint(v4);
  }
  return format_endpoint(peer);
}

void close_connection(ServerConnection *connection, const std::string &why) {
  if (!why.empty()) say(connection->peer + ": " + why);
  connection->fd.reset();
}

void refuse(ServerConnection *connection, const std::string &message) {
  send_all(connection->fd.get(), keepalive_natprobe::error_line(message));
  close_connection(connection, "refused: " + message);
}

// This server process's instance, in every greeting: a client tells a
// restarted server from the one it probed by it.
const std::string &instance() {
  static const std::string id = keepalive_natprobe::new_instance();
  return id;
}

void accept_clients(int listener, std::vector<ServerConnection> *connections) {
  for (;;) {
    sockaddr_storage peer{};
    socklen_t length = sizeof peer;
    UniqueFd fd(accept4(listener, reinterpret_cast<sockaddr *>(&peer), &length,
                        SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd.valid()) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) say(std::string("accept: ") + strerror(errno));
      return;
    }
    ServerConnection connection;
    connection.fd = std::move(fd);
    connection.peer = peer_text(peer);
    connection.deadline = monotonic_s() + kSetupTimeoutS;
    std::string error;
    if (connections->size() >= kMaxServerConnections) {
      refuse(&connection,
             "busy: " + std::to_string(kMaxServerConnections) + " probes are running already");
      continue;
    }
    if (!switch_keepalive_off(connection.fd.get(), &error)) {
      refuse(&connection, error);
      continue;
    }
    if (!send_all(connection.fd.get(), keepalive_natprobe::greeting_line(instance()))) {
      close_connection(&connection, "");
      continue;
    }
    connections->push_back(std::move(connection));
  }
}

void handle_request(ServerConnection *connection) {
  ReadState state = read_ready(connection->fd.get(), &connection->buffer);
  std::string line;
  if (take_line(&connection->buffer, &line)) {
    std::string error;
    long long idle_ms = 0;
    if (!keepalive_natprobe::parse_idle_line(line, &idle_ms, &error)) {
      refuse(connection, error + " (got \"" + keepalive_natprobe::printable(line) + "\")");
      return;
    }
    connection->idle_ms = idle_ms;
    connection->stage = ServerConnection::Stage::kIdle;
    connection->armed_at = monotonic_s();
    connection->deadline =
        connection->armed_at + static_cast<double>(idle_ms + kJiffySlackMs) / 1000;
    if (!send_all(connection->fd.get(), keepalive_natprobe::armed_line(idle_ms))) {
      close_connection(connection, std::string("cannot confirm the probe: ") + strerror(errno));
      return;
    }
    say(connection->peer + ": probe of " + format_duration_ms(idle_ms) + " of silence");
    return;
  }
  if (connection->buffer.size() >= keepalive_natprobe::kMaxLineBytes) {
    refuse(connection, "expected IDLE <milliseconds> (got \"" +
                           keepalive_natprobe::printable(connection->buffer) + "\")");
  } else if (state != ReadState::kMore) {
    close_connection(connection, "");  // a client checking the greeting, or a port scan
  }
}

void handle_idle_input(ServerConnection *connection) {
  std::string data;
  ReadState state = read_ready(connection->fd.get(), &data);
  std::string after = format_duration_ms(to_ms(monotonic_s() - connection->armed_at));
  if (!data.empty()) {
    refuse(connection, "data during the idle period after " + after + " breaks the probe");
  } else if (state == ReadState::kEof) {
    close_connection(connection, "client left after " + after + " of silence");
  } else if (state == ReadState::kError) {
    close_connection(connection,
                     "connection " + errno_name(errno) + " after " + after + " of silence");
  }
}

void handle_server_deadline(ServerConnection *connection) {
  if (connection->stage == ServerConnection::Stage::kRequest) {
    refuse(connection, "no request within " + format_duration_ms(to_ms(kSetupTimeoutS)));
    return;
  }
  double now = monotonic_s();
  long long silence = silence_ms(connection->fd.get());
  if (silence < 0) silence = to_ms(now - connection->armed_at);
  long long wanted = connection->idle_ms + kJiffySlackMs;
  if (silence < wanted) {
    // The client's ACK of ARMED came later than ARMED left: wait the rest.
    connection->deadline = now + static_cast<double>(wanted - silence) / 1000;
    return;
  }
  // A WAKE line the NAT drops is retransmitted into the void; let the kernel
  // give up after kWakeUserTimeoutMs rather than its ~15 minutes.
  unsigned int user_timeout = static_cast<unsigned int>(kWakeUserTimeoutMs);
  setsockopt(connection->fd.get(), IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout,
             sizeof user_timeout);
  if (!send_all(connection->fd.get(), keepalive_natprobe::wake_line(silence))) {
    close_connection(connection, "cannot send after " + format_duration_ms(silence) +
                                     " of silence: " + errno_name(errno) +
                                     " (the connection was reset or closed meanwhile)");
    return;
  }
  close_connection(connection, "sent the line after " + format_duration_ms(silence) +
                                   " of silence (asked " + format_duration_ms(connection->idle_ms) +
                                   ")");
}

struct ServerOptions {
  std::string endpoint = kDefaultListen;  // --listen
  bool endpoint_given = false;
};

// Reads the server's arguments (argv[0] is "server"); false when the
// command ends here with *status.
bool parse_server_options(int argc, char **argv, ServerOptions *options, int *status) {
  keepalive_cli::OptionReader reader(kName, argc, argv, kServerOptions);
  auto take = [&](keepalive_cli::OptionReader::Kind kind) {
    if (kind == keepalive_cli::OptionReader::kOperand) {
      return reader.usage_error(std::string("unexpected argument ") + reader.value());
    }
    options->endpoint = reader.value();  // --listen, the only option
    options->endpoint_given = true;
    return true;
  };
  if (!reader.read_all(print_help, take, status)) return false;
  std::string host, port, error;
  *status = keepalive_cli::kExitUsage;
  if (!split_endpoint(options->endpoint, 0, &host, &port, &error)) {
    return reader.usage_error("--listen " + options->endpoint + ": " + error);
  }
  in6_addr address;
  if (!host.empty() && inet_pton(AF_INET, host.c_str(), &address) != 1 &&
      inet_pton(AF_INET6, host.c_str(), &address) != 1) {
    return reader.usage_error("--listen " + options->endpoint +
                              ": expected a numeric address (0.0.0.0, [::], 198.51.100.2)");
  }
  *status = keepalive_cli::kExitOk;
  return true;
}

// Listens where the options say; without --listen, falls back to IPv4 only
// on a machine without IPv6.
UniqueFd listen_for_clients(const ServerOptions &options, std::string *shown, std::string *error) {
  int failure = 0;
  UniqueFd listener = open_listener(options.endpoint, shown, error, &failure);
  if (!listener.valid() && !options.endpoint_given && failure == EAFNOSUPPORT) {
    listener = open_listener(kDefaultListenIpv4, shown, error, &failure);
  }
  return listener;
}

// Serves probes until a stop signal, or until poll fails.
void serve_until_stopped(const StopSignals &signals, int listener,
                         std::vector<ServerConnection> *connections) {
  while (!StopSignals::stopped()) {
    std::vector<pollfd> fds = {{listener, POLLIN, 0}};
    double deadline = monotonic_s() + 3600;
    for (const ServerConnection &connection : *connections) {
      fds.push_back({connection.fd.get(), POLLIN, 0});
      deadline = std::min(deadline, connection.deadline);
    }
    int ready = signals.wait(&fds, deadline);
    if (ready < 0 && errno != EINTR) {
      keepalive_cli::print_error(kName, std::string("poll: ") + strerror(errno));
      return;
    }
    for (size_t i = 0; i < connections->size(); ++i) {
      ServerConnection &connection = (*connections)[i];
      if (fds[i + 1].revents != 0) {
        if (connection.stage == ServerConnection::Stage::kRequest) {
          handle_request(&connection);
        } else {
          handle_idle_input(&connection);
        }
      } else if (monotonic_s() >= connection.deadline) {
        handle_server_deadline(&connection);
      }
    }
    connections->erase(std::remove_if(connections->begin(), connections->end(),
                                      [](const ServerConnection &c) { return !c.fd.valid(); }),
                       connections->end());
    if (fds[0].revents != 0) accept_clients(listener, connections);
  }
}

}  // namespace

int run_server(int argc, char **argv) {
  ServerOptions options;
  std::string error;
  int status = keepalive_cli::kExitOk;
  if (!parse_server_options(argc, argv, &options, &status)) return status;
  StopSignals signals;
  std::string shown;
  UniqueFd listener = listen_for_clients(options, &shown, &error);
  if (!listener.valid()) {
    keepalive_cli::print_error(kName, error);
    return keepalive_cli::kExitFailure;
  }
  say("keepalive natprobe server: listening on " + shown + " (protocol " +
      std::to_string(keepalive_natprobe::kProtocolVersion) + ", instance " + instance() +
      "); behind the NAT run: keepalive natprobe client THIS-HOST:" +
      shown.substr(shown.rfind(':') + 1));
  std::vector<ServerConnection> connections;
  serve_until_stopped(signals, listener.get(), &connections);
  // Probes still running are told, so that their clients stop with a clear
  // error instead of counting the closed connections as lost. (A client
  // whose mapping is gone does not hear it, and rightly counts it lost.)
  for (ServerConnection &connection : connections) {
    send_all(connection.fd.get(),
             keepalive_natprobe::error_line(keepalive_natprobe::kStoppingMessage));
    connection.fd.reset();
  }
  listener.reset();
  if (!StopSignals::stopped()) return keepalive_cli::kExitFailure;  // poll failed
  say("keepalive natprobe server: stopped (" + std::string(strsignal(StopSignals::caught())) + ")");
  return keepalive_cli::kExitOk;
}

}  // namespace keepalive_natprobe
