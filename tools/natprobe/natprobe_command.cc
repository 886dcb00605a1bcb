// natprobe_command.cc — `keepalive natprobe server|client`: measures the idle
// timeout of the NAT between a client behind it (a laptop on a phone's
// hotspot) and a server (beside Prosody), and recommends KEEPALIVE_IDLE.
// This file holds the command line, the sockets and the two event loops; the
// protocol, the plan of each round, the bracket and the report are pure code
// in natprobe.h.
//
// Each probe is one TCP connection that stays completely silent for the idle
// period it asks for; the server then sends one line, which arrives when the
// NAT still had the mapping. The probe connections must carry no keepalive,
// even when libkeepalive is preloaded into this command (`keepalive run
// keepalive natprobe …`, a global LD_PRELOAD): the command links the core, not
// the hooks, but preloaded accept/connect hooks would still switch keepalive
// on. So SO_KEEPALIVE is switched off and TCP_USER_TIMEOUT reset right after
// accept() and right after connect() returns — after any hook — and read back.
//
// Exit status: 0 done, 1 failure (unreachable, not a natprobe peer, lost
// contact), 2 usage, 130 interrupted (after printing what was learned).

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

#include "commands.h"
#include "compat.h"
#include "keepalive/keepalive.h"
#include "lib/cli.h"
#include "lib/options.h"
#include "lib/output.h"
#include "lib/process.h"
#include "natprobe/natprobe.h"

namespace {

using keepalive_cli::format_duration_ms;
using keepalive_cli::format_endpoint;
using keepalive_cli::UniqueFd;
using keepalive_natprobe::Bracket;
using keepalive_natprobe::Outcome;
using keepalive_natprobe::Report;
using keepalive_natprobe::ServerLine;
using keepalive_natprobe::Settings;
using keepalive_natprobe::Trial;

constexpr char kName[] = "natprobe";
constexpr int kExitInterrupted = 130;
// Where the server listens without --listen: every address, IPv6 and IPv4,
// or IPv4 only on a machine without IPv6.
#define KEEPALIVE_NATPROBE_PORT "7200"
constexpr char kDefaultListen[] = "[::]:" KEEPALIVE_NATPROBE_PORT;
constexpr char kDefaultListenIpv4[] = "0.0.0.0:" KEEPALIVE_NATPROBE_PORT;
constexpr double kSetupTimeoutS = 10;            // connect, greeting, request, ARMED: each
constexpr long long kWakeUserTimeoutMs = 30000;  // the server's WAKE line stops retrying after this
constexpr size_t kMaxServerConnections = 256;
// TCP_INFO counts in jiffies (4 ms at HZ=250, 10 ms at HZ=100): the server
// waits this much beyond the idle period, so that a line that arrives proves
// at least the idle period of real silence.
constexpr long long kJiffySlackMs = 10;
constexpr int kMaxRounds = 64;
constexpr int kMaxParallel = 64;
constexpr long long kMinResolutionMs = 1000;  // KEEPALIVE_IDLE is whole seconds
constexpr long long kMinGraceMs = 100;
constexpr long long kMaxGraceMs = 10 * 60 * 1000;
constexpr long long kDefaultGiveUpMs = 5 * 60 * 1000;  // --give-up-after
constexpr long long kMinGiveUpMs = 10 * 1000;

// The options of the client and of the server, in --help order.
const std::string kParallelHelp =
    "connections per round, 1.." + std::to_string(kMaxParallel) + " (default 8)";
const std::vector<keepalive_cli::Option> kClientOptions = {
    {"--max", "DURATION", "longest idle period probed (default 30m, up to 24h)"},
    {"--resolution", "DURATION",
     "stop when the timeout is bracketed this closely (default 10s, at least 1s)"},
    {"--grace", "DURATION",
     "how long after an idle period to wait for the line (default 5s: a phone's radio may "
     "need seconds to wake up)"},
    {"--parallel", "N", kParallelHelp.c_str()},
    {"--give-up-after", "DURATION",
     "stop when probes could not be set up, and the server did not answer, for this long "
     "(default 5m); meanwhile retried after 1s, 2s, 4s ... up to 30s"},
    {"--json", nullptr, "the result as one JSON object on stdout"},
};
const std::vector<keepalive_cli::Option> kServerOptions = {
    {"--listen", "ADDR:PORT",
     "where to listen (default [::]:7200, IPv6 and IPv4; 0.0.0.0:7200 for IPv4 only; port 0 "
     "picks a free one)"},
};

// The client's part of --help: its arguments and options.
std::string client_help() {
  return "client:\n" +
         keepalive_cli::help_entry("HOST:PORT",
                                   "the server (IPv6 in brackets: [2001:db8::1]:7200)") +
         keepalive_cli::options_help(kClientOptions);
}

void print_help() {
  using keepalive_cli::help_entry;
  std::string text =
      "Usage: keepalive natprobe server [--listen ADDR:PORT]\n"
      "       keepalive natprobe client HOST:PORT [--max DURATION]\n"
      "                                 [--resolution DURATION] [--grace DURATION]\n"
      "                                 [--parallel N] [--give-up-after DURATION]\n"
      "                                 [--json]\n"
      "Measures how long the NAT between a client and a server keeps an idle TCP\n"
      "connection (its idle timeout) and recommends KEEPALIVE_IDLE with a safety\n"
      "margin.\n"
      "\n"
      "Run the server on the machine whose connections need keepalive (beside\n"
      "Prosody), with its port open in the firewall, and the client behind the NAT (a\n"
      "laptop tethered to the phone). The client opens several connections at once; on\n"
      "each, the server sends one line after the idle period the client asked for. A\n"
      "line that arrives means the NAT still knew the connection; silence, a reset or\n"
      "a close means it had forgotten it. Rounds of probes narrow the timeout down to\n"
      "the resolution; the connections carry no keepalive, even with libkeepalive\n"
      "preloaded.\n"
      "\n"
      "server:\n";
  text += keepalive_cli::options_help(kServerOptions);
  text += client_help();
  text +=
      "A loss narrows the bracket only once it is confirmed, by a loss in another\n"
      "round (a single one may be an outage or a lost packet): it is probed again,\n"
      "which may cost one more round.\n"
      "Progress goes to stderr, one line per finished probe. Ctrl-C stops the client\n"
      "and prints what was learned so far. A run takes about (rounds) x (timeout +\n"
      "grace): with the defaults and a 5-minute timeout, 15 to 20 minutes.\n"
      "\n"
      "Exit status: 0 measured (or no timeout up to --max); 1 the server cannot be\n"
      "reached, is not a natprobe server, or contact was lost; 2 usage error; 130\n"
      "interrupted.\n"
      "\n"
      "Example: keepalive natprobe server --listen 0.0.0.0:7200      (on the server)\n"
      "         keepalive natprobe client xmpp.example.org:7200     (behind the NAT)\n";
  fputs(text.c_str(), stdout);
}

double now_s() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

long long to_ms(double seconds) { return std::llround(seconds * 1000); }

// A span of time as text, cut to whole seconds: "4m30s" for 270.6 s.
std::string whole_seconds_text(double seconds) {
  return format_duration_ms(to_ms(seconds) / 1000 * 1000);
}

std::string errno_name(int error) {
  const char *name = keepalive::errno_name(error);
  return name != nullptr ? name : "error " + std::to_string(error);
}

// ---- signals ------------------------------------------------------------------
// SIGINT and SIGTERM are blocked except while waiting in ppoll, so that a
// signal can never slip in between the check of g_stop_signal and the wait.

volatile sig_atomic_t g_stop_signal = 0;

void on_stop_signal(int signal_number) { g_stop_signal = signal_number; }

class StopSignals {
 public:
  StopSignals() {
    struct sigaction action {};
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, nullptr);
    sigaction(SIGTERM, &action, nullptr);
    signal(SIGPIPE, SIG_IGN);
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigprocmask(SIG_BLOCK, &block, &wait_mask_);
    sigdelset(&wait_mask_, SIGINT);
    sigdelset(&wait_mask_, SIGTERM);
  }
  // Waits like poll() until `deadline` (monotonic seconds; <= now: no wait).
  int wait(std::vector<pollfd> *fds, double deadline) const {
    double left = std::max(0.0, deadline - now_s());
    timespec timeout{};
    timeout.tv_sec = static_cast<time_t>(left);
    timeout.tv_nsec = static_cast<long>((left - static_cast<double>(timeout.tv_sec)) * 1e9);
    return ppoll(fds->data(), fds->size(), &timeout, &wait_mask_);
  }
  static bool stopped() { return g_stop_signal != 0; }

 private:
  sigset_t wait_mask_{};
};

// ---- sockets ------------------------------------------------------------------

// Switches keepalive off on a probe connection, whatever a preloaded
// libkeepalive (or the listening socket) set: SO_KEEPALIVE 0, TCP_USER_TIMEOUT
// back to the kernel's default, and SO_KEEPALIVE read back.
bool switch_keepalive_off(int fd, std::string *error) {
  int off = 0;
  unsigned int kernel_default = 0;
  if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &off, sizeof off) != 0 ||
      setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &kernel_default, sizeof kernel_default) != 0) {
    *error = std::string("cannot switch keepalive off on a probe connection: ") + strerror(errno);
    return false;
  }
  int value = -1;
  socklen_t length = sizeof value;
  if (getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &value, &length) != 0 || value != 0) {
    *error = "SO_KEEPALIVE is still on after switching it off on a probe connection";
    return false;
  }
  return true;
}

// Closes with a reset: no FIN that the kernel would retransmit for minutes
// into a NAT that has forgotten the connection. Nothing when *fd is closed.
void close_abortively(UniqueFd *fd) {
  if (!fd->valid()) return;
  linger abort_now{1, 0};
  setsockopt(fd->get(), SOL_SOCKET, SO_LINGER, &abort_now, sizeof abort_now);
  fd->reset();
}

bool send_all(int fd, const std::string &text) {
  ssize_t sent = send(fd, text.data(), text.size(), MSG_NOSIGNAL);
  return sent == static_cast<ssize_t>(text.size());
}

// Splits "host:port" / "[v6]:port". An empty host is allowed (the caller decides).
bool split_endpoint(std::string_view text, std::string *host, std::string *port,
                    std::string *error) {
  size_t colon;
  if (!text.empty() && text[0] == '[') {
    size_t close_bracket = text.find(']');
    if (close_bracket == std::string_view::npos || close_bracket + 1 >= text.size() ||
        text[close_bracket + 1] != ':') {
      *error = "expected [IPv6]:PORT";
      return false;
    }
    *host = std::string(text.substr(1, close_bracket - 1));
    colon = close_bracket + 1;
  } else {
    colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      *error = "expected HOST:PORT";
      return false;
    }
    *host = std::string(text.substr(0, colon));
    if (host->find(':') != std::string::npos) {
      *error = "write an IPv6 address in brackets: [2001:db8::1]:7200";
      return false;
    }
  }
  *port = std::string(text.substr(colon + 1));
  bool digits =
      !port->empty() && port->size() <= 5 &&
      std::all_of(port->begin(), port->end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!digits || atoi(port->c_str()) > 65535) {
    *error = "the port must be a number from 0 to 65535";
    return false;
  }
  return true;
}

// What recv() gave for one read of a line-oriented connection.
enum class ReadState { kMore, kEof, kError };

// Reads what is ready into *buffer (never past kMaxLineBytes + what one recv
// brings). kError leaves errno set.
ReadState read_ready(int fd, std::string *buffer) {
  for (;;) {
    char chunk[256];
    ssize_t n = recv(fd, chunk, sizeof chunk, 0);
    if (n > 0) {
      buffer->append(chunk, static_cast<size_t>(n));
      if (buffer->size() > keepalive_natprobe::kMaxLineBytes) return ReadState::kMore;
      continue;
    }
    if (n == 0) return ReadState::kEof;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return ReadState::kMore;
    return ReadState::kError;
  }
}

// Takes one "\n"-terminated line off the front of *buffer.
bool take_line(std::string *buffer, std::string *line) {
  size_t end = buffer->find('\n');
  if (end == std::string::npos) return false;
  *line = buffer->substr(0, end);
  buffer->erase(0, end + 1);
  return true;
}

// ---- client -------------------------------------------------------------------

struct ClientOptions {
  std::string target;  // HOST:PORT as given
  std::string host, port;
  Settings settings;
  long long give_up_ms = kDefaultGiveUpMs;  // --give-up-after
  bool json = false;
};

struct ServerAddress {
  sockaddr_storage address{};
  socklen_t length = 0;
  std::string text;  // "198.51.100.2:7200"
};

// Why a run ended before its plan did.
enum class Stop { kNone, kInterrupted, kFailed };

// The greeting of a natprobe server of our version; else *error says what
// answered instead.
bool greeting_ok(const std::string &line, const std::string &server, std::string *error) {
  ServerLine parsed = keepalive_natprobe::parse_server_line(line);
  if (parsed.kind == ServerLine::Kind::kGreeting) {
    if (parsed.version == keepalive_natprobe::kProtocolVersion) return true;
    *error = server + " speaks natprobe protocol version " + std::to_string(parsed.version) +
             ", this keepalive speaks version " +
             std::to_string(keepalive_natprobe::kProtocolVersion) +
             ": run the same keepalive version on both ends";
  } else if (parsed.kind == ServerLine::Kind::kError) {
    *error = "the natprobe server at " + server + " refused: " + parsed.text;
  } else {
    *error = server + " is not a keepalive natprobe server: it sent \"" +
             keepalive_natprobe::printable(line) + "\"";
  }
  return false;
}

std::string no_greeting(const std::string &server, const std::string &received) {
  if (received.empty()) {
    return server + " accepted the connection but sent no natprobe greeting within " +
           format_duration_ms(to_ms(kSetupTimeoutS)) +
           ": is `keepalive natprobe server` running there?";
  }
  return server + " is not a keepalive natprobe server: it sent \"" +
         keepalive_natprobe::printable(received) + "\"";
}

// Opens a non-blocking TCP connection and switches keepalive off right after
// connect() returned (0 or EINPROGRESS). Returns the connection, or none
// with *error.
UniqueFd start_connection(const ServerAddress &server, std::string *error) {
  UniqueFd fd(socket(server.address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) {
    *error = std::string("cannot create a socket: ") + strerror(errno);
    return UniqueFd();
  }
  if (connect(fd.get(), reinterpret_cast<const sockaddr *>(&server.address), server.length) != 0 &&
      errno != EINPROGRESS) {
    *error = "cannot connect to " + server.text + ": " + strerror(errno);
    return UniqueFd();
  }
  if (!switch_keepalive_off(fd.get(), error)) return UniqueFd();
  return fd;
}

// The kernel's smoothed round-trip time of a connection, rounded up to whole
// milliseconds; -1 when unreadable.
long long round_trip_ms(int fd) {
  tcp_info info{};
  socklen_t length = sizeof info;
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length) != 0) return -1;
  return (static_cast<long long>(info.tcpi_rtt) + 999) / 1000;
}

// The outcome of a finished non-blocking connect: 0 or its errno.
int connect_result(int fd) {
  int error = 0;
  socklen_t length = sizeof error;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0) return errno;
  return error;
}

enum class Greeting { kWaiting, kGood, kBad };

// Reads what is ready of a server's greeting into *buffer: kWaiting for more,
// else whether it is a natprobe greeting of our version (kBad with *error).
Greeting read_greeting(int fd, const std::string &server, std::string *buffer, std::string *error) {
  ReadState state = read_ready(fd, buffer);
  std::string line;
  if (take_line(buffer, &line)) {
    return greeting_ok(line, server, error) ? Greeting::kGood : Greeting::kBad;
  }
  if (buffer->size() >= keepalive_natprobe::kMaxLineBytes) {
    *error = no_greeting(server, *buffer);
    return Greeting::kBad;
  }
  if (state == ReadState::kEof) {
    *error = server + " closed the connection without a natprobe greeting" +
             (buffer->empty() ? std::string(": is `keepalive natprobe server` running there?")
                              : ": it sent \"" + keepalive_natprobe::printable(*buffer) + "\"");
    return Greeting::kBad;
  }
  if (state == ReadState::kError) {
    *error = "connection to " + server + " failed: " + strerror(errno);
    return Greeting::kBad;
  }
  return Greeting::kWaiting;
}

// Connects to `server` and reads its greeting, within the setup timeout.
// Used once before the rounds, to choose among the addresses of HOST and to
// report an unreachable or foreign server before anything else.
bool check_server(const StopSignals &signals, const ServerAddress &server, std::string *error) {
  UniqueFd connection = start_connection(server, error);
  if (!connection.valid()) return false;
  const int fd = connection.get();
  double deadline = now_s() + kSetupTimeoutS;
  bool connected = false;
  std::string buffer;
  for (;;) {
    std::vector<pollfd> fds = {{fd, static_cast<short>(connected ? POLLIN : POLLOUT), 0}};
    int ready = signals.wait(&fds, deadline);
    if (StopSignals::stopped()) {
      *error = "interrupted";
      break;
    }
    if (ready < 0 && errno != EINTR) {
      *error = std::string("poll: ") + strerror(errno);
      break;
    }
    if (ready == 0 && now_s() >= deadline) {
      *error = connected ? no_greeting(server.text, buffer)
                         : "cannot connect to " + server.text + ": no answer within " +
                               format_duration_ms(to_ms(kSetupTimeoutS)) +
                               " (a firewall dropping the connection?)";
      break;
    }
    if (ready <= 0) continue;
    if (!connected) {
      int result = connect_result(fd);
      if (result != 0) {
        *error = "cannot connect to " + server.text + ": " + strerror(result);
        break;
      }
      connected = true;
      continue;
    }
    Greeting greeting = read_greeting(fd, server.text, &buffer, error);
    if (greeting == Greeting::kWaiting) continue;
    close_abortively(&connection);
    return greeting == Greeting::kGood;
  }
  close_abortively(&connection);
  return false;
}

// Resolves HOST:PORT and returns the first address whose server answers with
// a natprobe greeting; else false with the error of each address tried.
bool find_server(const StopSignals &signals, const std::string &host, const std::string &port,
                 ServerAddress *chosen, std::string *error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  addrinfo *found = nullptr;
  int status = getaddrinfo(host.c_str(), port.c_str(), &hints, &found);
  if (status != 0) {
    *error = "cannot resolve " + host + ": " + gai_strerror(status);
    return false;
  }
  bool ok = false;
  std::string errors;  // one per address tried, "; "-separated
  for (addrinfo *each = found; each != nullptr && !ok; each = each->ai_next) {
    ServerAddress candidate;
    memcpy(&candidate.address, each->ai_addr, each->ai_addrlen);
    candidate.length = each->ai_addrlen;
    candidate.text = format_endpoint(candidate.address);
    if (candidate.text.empty()) continue;
    std::string failure;
    ok = check_server(signals, candidate, &failure);
    if (ok) *chosen = candidate;
    if (!ok) errors += (errors.empty() ? "" : "; ") + failure;
    if (StopSignals::stopped()) break;
  }
  freeaddrinfo(found);
  if (!ok) *error = errors.empty() ? "no usable address for " + host : errors;
  return ok;
}

struct Probe {
  // kRetry: its set-up failed; no connection until retry_at (its deadline).
  enum class Stage { kRetry, kConnecting, kGreeting, kArming, kIdle };
  UniqueFd fd;
  long long idle_ms = 0;
  Stage stage = Stage::kConnecting;
  double deadline = 0;           // of the current stage
  double idle_since = 0;         // kIdle: when ARMED arrived
  int failures = 0;              // set-ups that failed in a row
  long long round_trip_ms = -1;  // kIdle: the smoothed RTT when ARMED came
  std::string buffer;
  bool pending() const { return fd.valid() || stage == Stage::kRetry; }
};

// What the client knows of its contact with the server across rounds: a
// probe whose set-up fails is retried with back-off, and the run gives up
// only when set-ups have failed, and no line came from the server, for
// `give_up_ms`. (Silence alone is no sign: a round of long idle periods
// hears nothing for that long.)
struct Contact {
  double last_answer = 0;    // when the server's last line arrived (monotonic s)
  double first_failure = 0;  // the first set-up that failed since then (0: none)
  int failed_setups = 0;     // set-ups that failed since then
};

// One round: its probes run in parallel; each finished one becomes a trial
// (and a progress line), and probes that can no longer tell anything new are
// dropped at once.
class Round {
 public:
  Round(const StopSignals &signals, const ServerAddress &server, const ClientOptions &options,
        int number, Report *report, Contact *contact, double run_start)
      : signals_(signals),
        server_(server),
        settings_(options.settings),
        give_up_ms_(options.give_up_ms),
        number_(number),
        report_(report),
        contact_(contact),
        run_start_(run_start) {}
  Round(const Round &) = delete;
  Round &operator=(const Round &) = delete;
  ~Round() {
    for (Probe &probe : probes_) close_abortively(&probe.fd);
  }

  Stop run(const std::vector<long long> &idle_ms, std::string *error);

 private:
  void progress(const std::string &text) const {
    keepalive_cli::print_error(kName, "round " + std::to_string(number_) + ": " + text);
  }
  bool connect_probe(Probe *probe, std::string *error);
  bool setup_failed(Probe *probe, const std::string &observed, std::string *error);
  void finish(Probe *probe, Outcome outcome, long long silence_ms, const std::string &detail);
  std::string drop_unneeded(const Bracket &bracket);
  bool handle_readable(Probe *probe, std::string *error);
  bool handle_line(Probe *probe, const std::string &line, std::string *error);
  bool handle_deadline(Probe *probe, std::string *error);
  std::string time_left(const Bracket &bracket) const;
  std::string lost_text(const Probe &probe, Outcome outcome, const std::string &detail) const;

  const StopSignals &signals_;
  const ServerAddress &server_;
  const Settings &settings_;
  const long long give_up_ms_;
  const int number_;
  Report *report_;
  Contact *contact_;
  const double run_start_;
  std::vector<Probe> probes_;
};

Stop Round::run(const std::vector<long long> &idle_ms, std::string *error) {
  std::string list;
  long long longest = 0;
  for (long long idle : idle_ms) {
    list += " " + format_duration_ms(idle);
    longest = std::max(longest, idle);
  }
  progress(std::to_string(idle_ms.size()) + (idle_ms.size() == 1 ? " probe:" : " probes:") + list +
           " (ends within " + format_duration_ms(longest + settings_.grace_ms) + ")");
  probes_.resize(idle_ms.size());
  for (size_t i = 0; i < idle_ms.size(); ++i) {
    probes_[i].idle_ms = idle_ms[i];
    if (!connect_probe(&probes_[i], error)) return Stop::kFailed;
  }
  for (;;) {
    std::vector<pollfd> fds;
    std::vector<Probe *> polled;
    double deadline = now_s() + 3600;
    bool any = false;
    for (Probe &probe : probes_) {
      if (!probe.pending()) continue;
      any = true;
      deadline = std::min(deadline, probe.deadline);
      if (!probe.fd.valid()) continue;
      short events = probe.stage == Probe::Stage::kConnecting ? POLLOUT : POLLIN;
      fds.push_back({probe.fd.get(), events, 0});
      polled.push_back(&probe);
    }
    if (!any) return Stop::kNone;
    int ready = signals_.wait(&fds, deadline);
    if (StopSignals::stopped()) return Stop::kInterrupted;
    if (ready < 0 && errno != EINTR) {
      *error = std::string("poll: ") + strerror(errno);
      return Stop::kFailed;
    }
    for (size_t i = 0; i < polled.size(); ++i) {
      Probe *probe = polled[i];
      if (!probe->fd.valid()) continue;  // dropped meanwhile
      bool ok = true;
      if (fds[i].revents != 0) {
        ok = handle_readable(probe, error);
      } else if (now_s() >= probe->deadline) {
        ok = handle_deadline(probe, error);
      }
      if (!ok) return Stop::kFailed;
    }
    for (Probe &probe : probes_) {
      if (probe.stage == Probe::Stage::kRetry && now_s() >= probe.deadline &&
          !connect_probe(&probe, error)) {
        return Stop::kFailed;
      }
    }
  }
}

// Starts (or restarts) a probe's connection; a failure to start is a failed
// set-up like any other.
bool Round::connect_probe(Probe *probe, std::string *error) {
  std::string failure;
  probe->buffer.clear();
  probe->fd = start_connection(server_, &failure);
  probe->stage = Probe::Stage::kConnecting;
  probe->deadline = now_s() + kSetupTimeoutS;
  return probe->fd.valid() || setup_failed(probe, failure, error);
}

// A probe could not be set up (the path or the server is down for a while,
// or a packet was lost): close it and try again later, with back-off: 1 s,
// 2 s, 4 s ... at most 30 s. False (with *error) when the server has not
// answered for the give-up time.
bool Round::setup_failed(Probe *probe, const std::string &observed, std::string *error) {
  constexpr double kFirstRetryS = 1, kLongestRetryS = 30;
  close_abortively(&probe->fd);
  ++probe->failures;
  ++contact_->failed_setups;
  const double now = now_s();
  if (contact_->first_failure == 0) contact_->first_failure = now;
  const double silent_s = now - contact_->last_answer;
  const double failing_s = now - contact_->first_failure;
  if (failing_s * 1000 >= static_cast<double>(give_up_ms_)) {
    *error = "lost contact with " + server_.text + ": no probe could be set up for " +
             whole_seconds_text(failing_s) + " (--give-up-after " +
             format_duration_ms(give_up_ms_) + "; " + std::to_string(contact_->failed_setups) +
             " attempts), the server last answered " + whole_seconds_text(silent_s) +
             " ago; the last attempt: " + observed;
    return false;
  }
  double wait_s = std::min(kLongestRetryS, kFirstRetryS * std::pow(2.0, probe->failures - 1));
  probe->stage = Probe::Stage::kRetry;
  probe->deadline = now + wait_s;
  progress(format_duration_ms(probe->idle_ms) + ": set-up failed (" + observed + "); retrying in " +
           format_duration_ms(to_ms(wait_s)) + ", the server last answered " +
           whole_seconds_text(silent_s) + " ago");
  return true;
}

bool Round::handle_readable(Probe *probe, std::string *error) {
  if (probe->stage == Probe::Stage::kConnecting) {
    int result = connect_result(probe->fd.get());
    if (result != 0) {
      return setup_failed(probe, std::string("connecting failed: ") + strerror(result), error);
    }
    probe->stage = Probe::Stage::kGreeting;
    probe->deadline = now_s() + kSetupTimeoutS;
    return true;
  }
  ReadState state = read_ready(probe->fd.get(), &probe->buffer);
  int read_error = errno;
  std::string line;
  while (probe->fd.valid() && take_line(&probe->buffer, &line)) {
    contact_->last_answer = now_s();
    contact_->first_failure = 0;
    contact_->failed_setups = 0;
    if (!handle_line(probe, line, error)) return false;
  }
  if (!probe->fd.valid()) return true;
  if (probe->buffer.size() >= keepalive_natprobe::kMaxLineBytes) {
    *error = probe->stage == Probe::Stage::kGreeting
                 ? no_greeting(server_.text, probe->buffer)
                 : "the server at " + server_.text + " sent an overlong line: \"" +
                       keepalive_natprobe::printable(probe->buffer) + "\"";
    return false;
  }
  if (state == ReadState::kMore) return true;
  // The connection ended. While idle that is an answer: the path (a NAT
  // that resets flows it forgets) or the server ended it — lost. Before
  // that it is a failed set-up (a foreign peer's bytes end the run).
  if (probe->stage == Probe::Stage::kIdle) {
    if (state == ReadState::kEof) {
      finish(probe, Outcome::kClosed, -1, "");
    } else {
      finish(probe, read_error == ECONNRESET ? Outcome::kReset : Outcome::kFailed, -1,
             errno_name(read_error));
    }
    return true;
  }
  if (probe->stage == Probe::Stage::kGreeting && !probe->buffer.empty()) {
    *error = server_.text + " closed the connection without a natprobe greeting: it sent \"" +
             keepalive_natprobe::printable(probe->buffer) + "\"";
    return false;
  }
  std::string how = state == ReadState::kEof ? std::string("closed")
                                             : std::string("failed: ") + strerror(read_error);
  return setup_failed(probe,
                      probe->stage == Probe::Stage::kGreeting
                          ? "connected, but the connection " + how + " before the greeting"
                          : "greeted, but the connection " + how + " before the probe was armed",
                      error);
}

bool Round::handle_line(Probe *probe, const std::string &line, std::string *error) {
  ServerLine parsed = keepalive_natprobe::parse_server_line(line);
  if (probe->stage == Probe::Stage::kGreeting) {
    if (!greeting_ok(line, server_.text, error)) return false;
    if (!send_all(probe->fd.get(), keepalive_natprobe::idle_line(probe->idle_ms))) {
      return setup_failed(probe, std::string("greeted, but sending failed: ") + strerror(errno),
                          error);
    }
    probe->stage = Probe::Stage::kArming;
    probe->deadline = now_s() + kSetupTimeoutS;
    return true;
  }
  if (parsed.kind == ServerLine::Kind::kError) {
    *error = "the natprobe server at " + server_.text + " said: " + parsed.text;
    return false;
  }
  if (probe->stage == Probe::Stage::kArming && parsed.kind == ServerLine::Kind::kArmed &&
      parsed.ms == probe->idle_ms) {
    probe->stage = Probe::Stage::kIdle;
    probe->failures = 0;
    probe->round_trip_ms = round_trip_ms(probe->fd.get());
    probe->idle_since = now_s();
    probe->deadline =
        probe->idle_since + static_cast<double>(probe->idle_ms + settings_.grace_ms) / 1000;
    return true;
  }
  if (probe->stage == Probe::Stage::kIdle && parsed.kind == ServerLine::Kind::kWake) {
    finish(probe, Outcome::kSurvived, parsed.ms, "");
    return true;
  }
  *error = "the server at " + server_.text + " broke the natprobe protocol: it sent \"" +
           keepalive_natprobe::printable(line) + "\"";
  return false;
}

bool Round::handle_deadline(Probe *probe, std::string *error) {
  const std::string within = format_duration_ms(to_ms(kSetupTimeoutS));
  switch (probe->stage) {
    case Probe::Stage::kRetry:
      return true;
    case Probe::Stage::kConnecting:
      return setup_failed(probe, "no answer to the connection within " + within, error);
    case Probe::Stage::kGreeting:
      if (!probe->buffer.empty()) {  // a foreign peer's bytes end the run
        *error = no_greeting(server_.text, probe->buffer);
        return false;
      }
      return setup_failed(probe, "connected, but no greeting within " + within, error);
    case Probe::Stage::kArming:
      return setup_failed(probe, "greeted, but the probe was not armed within " + within, error);
    case Probe::Stage::kIdle:
      finish(probe, Outcome::kSilent, -1, "");
      return true;
  }
  return true;
}

std::string Round::lost_text(const Probe &probe, Outcome outcome, const std::string &detail) const {
  std::string after = format_duration_ms(to_ms(now_s() - probe.idle_since));
  switch (outcome) {
    case Outcome::kSilent:
      return "lost: nothing arrived within " + format_duration_ms(settings_.grace_ms) +
             " after the idle period";
    case Outcome::kReset:
      return "lost: the connection was reset after " + after + " of silence";
    case Outcome::kClosed:
      return "lost: the connection was closed after " + after + " of silence";
    case Outcome::kFailed:
      return "lost: the connection failed with " + detail + " after " + after + " of silence";
    case Outcome::kSurvived:
      break;
  }
  return "";
}

void Round::finish(Probe *probe, Outcome outcome, long long silence_ms, const std::string &detail) {
  Trial trial;
  trial.round = number_;
  trial.idle_ms = probe->idle_ms;
  trial.outcome = outcome;
  trial.silence_ms = silence_ms;
  trial.round_trip_ms = probe->round_trip_ms;
  if (outcome == Outcome::kFailed) trial.detail = detail;
  std::string what = outcome == Outcome::kSurvived
                         ? "survived (the server's line came after " +
                               format_duration_ms(silence_ms) + " of silence)"
                         : lost_text(*probe, outcome, detail);
  if (outcome == Outcome::kSurvived) {
    probe->fd.reset();
  } else {
    close_abortively(&probe->fd);
  }
  report_->trials.push_back(trial);
  const Bracket bracket = keepalive_natprobe::bracket_of(report_->trials);
  std::string dropped = drop_unneeded(bracket);
  std::string text = format_duration_ms(probe->idle_ms) + " " + what + "; timeout ";
  text += keepalive_natprobe::bracket_text(bracket);
  if (!dropped.empty()) text += "; no longer needed:" + dropped;
  text += "; " + time_left(bracket);
  progress(text);
}

// Closes the probes whose idle period lies outside `bracket`, the trials'
// now: a longer one than a loss would be lost too, a shorter one than a
// survivor survive (a loss seen once is probed again next round: see
// natprobe.h). Returns their idle periods, for the progress line.
std::string Round::drop_unneeded(const Bracket &bracket) {
  std::string dropped;
  for (Probe &probe : probes_) {
    if (probe.pending() && !keepalive_natprobe::still_needed(bracket, probe.idle_ms)) {
      dropped += " " + format_duration_ms(probe.idle_ms);
      close_abortively(&probe.fd);
      probe.stage = Probe::Stage::kConnecting;  // not pending any more
    }
  }
  return dropped;
}

// "N pending" and how long the run may still take, the trials' `bracket` given.
std::string Round::time_left(const Bracket &bracket) const {
  double now = now_s();
  double round_end = now;
  std::vector<long long> pending;
  for (const Probe &probe : probes_) {
    if (!probe.pending()) continue;
    pending.push_back(probe.idle_ms);
    double end = probe.stage == Probe::Stage::kIdle
                     ? probe.deadline
                     : now + static_cast<double>(probe.idle_ms + settings_.grace_ms) / 1000;
    round_end = std::max(round_end, end);
  }
  long long later = keepalive_natprobe::later_rounds_ms(bracket, pending, settings_);
  long long left_ms = to_ms(round_end - now) + later;
  long long expected_ms =
      to_ms(round_end - now) +
      keepalive_natprobe::expected_later_rounds_ms(report_->trials, pending, number_, settings_);
  std::string text = std::to_string(pending.size()) + " pending";
  if (left_ms == 0) return text + ", nothing left to probe";
  auto whole_s = [](long long ms) { return format_duration_ms((ms + 999) / 1000 * 1000); };
  return text + ", about " + whole_s(std::min(expected_ms, left_ms)) +
         " left expected, at most about " + whole_s(left_ms) + " (" +
         whole_seconds_text(now - run_start_) + " so far)";
}

bool parse_duration_option(const char *flag, const char *value, long long minimum_ms,
                           long long maximum_ms, long long *out, std::string *error) {
  long long ms = 0;
  if (!keepalive_parse_duration_ms(value, &ms)) {
    *error = std::string(flag) + " " + value +
             ": expected a duration: seconds (90) or numbers with units h, m, s, ms (30m, 1h, 10s)";
    return false;
  }
  if (ms < minimum_ms || ms > maximum_ms) {
    *error = std::string(flag) + " " + value + ": must be from " + format_duration_ms(minimum_ms) +
             " to " + format_duration_ms(maximum_ms);
    return false;
  }
  *out = ms;
  return true;
}

// --parallel N: 1..kMaxParallel.
bool parse_parallel(const char *value, int *out, std::string *error) {
  char *end = nullptr;
  errno = 0;
  long n = strtol(value, &end, 10);
  if (errno != 0 || end == value || *end != '\0' || n < 1 || n > kMaxParallel) {
    *error = std::string("--parallel ") + value + ": expected a number from 1 to " +
             std::to_string(kMaxParallel);
    return false;
  }
  *out = static_cast<int>(n);
  return true;
}

// Records one of the client's options; false after a usage error.
bool take_client_option(const keepalive_cli::OptionReader &reader, ClientOptions *options) {
  struct DurationOption {
    const char *name;
    long long minimum_ms, maximum_ms;
    long long *out;
  };
  const DurationOption durations[] = {
      {"--max", kMinResolutionMs, keepalive_natprobe::kMaxIdleMs, &options->settings.max_ms},
      {"--resolution", kMinResolutionMs, keepalive_natprobe::kMaxIdleMs,
       &options->settings.resolution_ms},
      {"--grace", kMinGraceMs, kMaxGraceMs, &options->settings.grace_ms},
      {"--give-up-after", kMinGiveUpMs, keepalive_natprobe::kMaxIdleMs, &options->give_up_ms},
  };
  std::string error;
  if (reader.is("--json")) {
    options->json = true;
    return true;
  }
  if (reader.is("--parallel")) {
    return parse_parallel(reader.value(), &options->settings.parallel, &error) ||
           reader.usage_error(error);
  }
  for (const DurationOption &option : durations) {
    if (!reader.is(option.name)) continue;
    return parse_duration_option(option.name, reader.value(), option.minimum_ms, option.maximum_ms,
                                 option.out, &error) ||
           reader.usage_error(error);
  }
  return true;
}

// The client's target and timings once read; false with *error when they
// do not fit together.
bool check_client_options(ClientOptions *options, std::string *error) {
  if (!split_endpoint(options->target, &options->host, &options->port, error)) {
    *error = options->target + ": " + *error;
    return false;
  }
  if (options->host.empty() || options->port == "0") {
    *error = options->target + ": expected HOST:PORT with a host and a non-zero port";
    return false;
  }
  if (options->settings.resolution_ms > options->settings.max_ms) {
    *error = "--resolution " + format_duration_ms(options->settings.resolution_ms) +
             " is longer than --max " + format_duration_ms(options->settings.max_ms) +
             ": give a shorter --resolution or a longer --max";
    return false;
  }
  return true;
}

// Reads the client's arguments (argv[0] is "client"); false when the
// command ends here with *status.
bool parse_client_options(int argc, char **argv, ClientOptions *options, int *status) {
  keepalive_cli::OptionReader reader(kName, argc, argv, kClientOptions);
  const char *target = nullptr;
  auto take = [&](keepalive_cli::OptionReader::Kind kind) {
    return kind == keepalive_cli::OptionReader::kOption ? take_client_option(reader, options)
                                                        : reader.take_operand("HOST:PORT", &target);
  };
  if (!reader.read_all(print_help, take, status)) return false;
  *status = keepalive_cli::kExitUsage;
  if (target == nullptr) return reader.usage_error("client needs the server's HOST:PORT");
  options->target = target;
  std::string error;
  return check_client_options(options, &error) || reader.usage_error(error);
}

// Runs rounds until the plan is done or the run stops: interrupted, or
// failed with *error.
Stop run_rounds(const StopSignals &signals, const ServerAddress &server,
                const ClientOptions &options, double start, Report *report, std::string *error) {
  Contact contact;
  contact.last_answer = now_s();  // find_server read its greeting
  for (;;) {
    std::vector<long long> plan = keepalive_natprobe::plan_round(
        keepalive_natprobe::bracket_of(report->trials), options.settings);
    if (plan.empty()) return Stop::kNone;
    if (report->rounds == kMaxRounds) {  // cannot happen with a sane plan; bounded all the same
      *error = "gave up after " + std::to_string(kMaxRounds) + " rounds";
      return Stop::kFailed;
    }
    ++report->rounds;
    double round_start = now_s();
    Stop stop;
    {
      Round round(signals, server, options, report->rounds, report, &contact, start);
      stop = round.run(plan, error);
    }
    if (stop != Stop::kNone) return stop;
    Bracket bracket = keepalive_natprobe::bracket_of(report->trials);
    keepalive_cli::print_error(kName, "round " + std::to_string(report->rounds) + " done in " +
                                          format_duration_ms(to_ms(now_s() - round_start)) +
                                          ": timeout " + keepalive_natprobe::bracket_text(bracket));
  }
}

// Prints the report of a run that ended with `stop`; returns the exit status.
int finish_run(const ClientOptions &options, Stop stop, const std::string &error, Report *report) {
  report->interrupted = stop == Stop::kInterrupted;
  if (stop == Stop::kFailed) {
    report->error = error;
    keepalive_cli::print_error(kName, error);
  }
  // A failure before any probe finished has nothing to report but the error.
  if (stop != Stop::kFailed || !report->trials.empty()) {
    std::string text = options.json ? keepalive_natprobe::format_json(*report)
                                    : keepalive_natprobe::format_text(*report);
    fputs(text.c_str(), stdout);
    fflush(stdout);
  }
  if (stop == Stop::kInterrupted) return kExitInterrupted;
  return stop == Stop::kFailed ? keepalive_cli::kExitFailure : keepalive_cli::kExitOk;
}

int run_client(int argc, char **argv) {
  ClientOptions options;
  std::string error;
  int status = keepalive_cli::kExitOk;
  if (!parse_client_options(argc, argv, &options, &status)) return status;
  StopSignals signals;
  const double start = now_s();
  ServerAddress server;
  if (!find_server(signals, options.host, options.port, &server, &error)) {
    if (StopSignals::stopped()) {
      keepalive_cli::print_error(kName, "interrupted before the first probe: nothing was learned");
      return kExitInterrupted;
    }
    keepalive_cli::print_error(kName, error);
    return keepalive_cli::kExitFailure;
  }
  const Settings &settings = options.settings;
  keepalive_cli::print_error(
      kName, "probing " + server.text + " (protocol " +
                 std::to_string(keepalive_natprobe::kProtocolVersion) + "): idle periods up to " +
                 format_duration_ms(settings.max_ms) + ", resolution " +
                 format_duration_ms(settings.resolution_ms) + ", " +
                 std::to_string(settings.parallel) + " connections per round, grace " +
                 format_duration_ms(settings.grace_ms) + "; Ctrl-C stops with what was learned");
  Report report;
  report.server = server.text;
  report.settings = settings;
  Stop stop = run_rounds(signals, server, options, start, &report, &error);
  report.elapsed_s = now_s() - start;
  return finish_run(options, stop, error, &report);
}

// ---- server -------------------------------------------------------------------

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
  if (!split_endpoint(endpoint, &host, &port, error)) {
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
    connection.deadline = now_s() + kSetupTimeoutS;
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
    if (!send_all(connection.fd.get(), keepalive_natprobe::greeting_line())) {
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
    connection->armed_at = now_s();
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
  std::string after = format_duration_ms(to_ms(now_s() - connection->armed_at));
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
  double now = now_s();
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
  if (!split_endpoint(options->endpoint, &host, &port, &error)) {
    *status = keepalive_cli::kExitUsage;
    return reader.usage_error("--listen " + options->endpoint + ": " + error);
  }
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
    double deadline = now_s() + 3600;
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
      } else if (now_s() >= connection.deadline) {
        handle_server_deadline(&connection);
      }
    }
    connections->erase(std::remove_if(connections->begin(), connections->end(),
                                      [](const ServerConnection &c) { return !c.fd.valid(); }),
                       connections->end());
    if (fds[0].revents != 0) accept_clients(listener, connections);
  }
}

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
      std::to_string(keepalive_natprobe::kProtocolVersion) +
      "); behind the NAT run: keepalive natprobe client THIS-HOST:" +
      shown.substr(shown.rfind(':') + 1));
  std::vector<ServerConnection> connections;
  serve_until_stopped(signals, listener.get(), &connections);
  // Probes still running are told, so that their clients stop with a clear
  // error instead of counting the closed connections as lost. (A client
  // whose mapping is gone does not hear it, and rightly counts it lost.)
  for (ServerConnection &connection : connections) {
    send_all(connection.fd.get(), keepalive_natprobe::error_line("server stopping"));
    connection.fd.reset();
  }
  listener.reset();
  if (!StopSignals::stopped()) return keepalive_cli::kExitFailure;  // poll failed
  say("keepalive natprobe server: stopped (" + std::string(strsignal(g_stop_signal)) + ")");
  return keepalive_cli::kExitOk;
}

}  // namespace

int keepalive_cmd_natprobe(int argc, char **argv) {
  if (argc < 2) {
    keepalive_cli::print_error(kName, "expected server or client (see keepalive natprobe --help)");
    return keepalive_cli::kExitUsage;
  }
  std::string_view mode = argv[1];
  for (int index = 1; index < argc; ++index) {
    std::string_view arg = argv[index];
    if (keepalive_cli::is_help_option(arg)) {
      print_help();
      return keepalive_cli::kExitOk;
    }
  }
  if (mode == "server") return run_server(argc - 1, argv + 1);
  if (mode == "client") return run_client(argc - 1, argv + 1);
  keepalive_cli::print_error(kName,
                             "unknown mode '" + std::string(mode) +
                                 "': expected server or client (see keepalive natprobe --help)");
  return keepalive_cli::kExitUsage;
}
