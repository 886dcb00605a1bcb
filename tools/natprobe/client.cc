// client.cc — `keepalive natprobe client HOST:PORT`: rounds of probe
// connections to the server, each left idle for a period and then waited on
// for the server's line, until the NAT's idle timeout is bracketed closely
// enough (natprobe.h plans the rounds and writes the report).

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
#include <regex>
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
  std::string text;      // "198.51.100.2:7200"
  std::string instance;  // its greeting's: the server process probed
};

// Why a run ended before its plan did.
enum class Stop { kNone, kInterrupted, kFailed };

// The greeting of a natprobe server of our version (its instance into
// *instance); else *error says what answered instead.
bool greeting_ok(const std::string &line, const std::string &server, std::string *instance,
                 std::string *error) {
  ServerLine parsed = keepalive_natprobe::parse_server_line(line);
  if (parsed.kind == ServerLine::Kind::kGreeting) {
    *instance = parsed.instance;
    if (parsed.version == keepalive_natprobe::kProtocolVersion && !parsed.instance.empty()) {
      return true;
    }
    if (parsed.version == keepalive_natprobe::kProtocolVersion) {
      *error = server + " sent a natprobe greeting without the server's instance: \"" +
               keepalive_natprobe::printable(line) + "\"";
      return false;
    }
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
UniqueFd start_connection(const ServerAddress &server, std::string *error, bool *refused) {
  *refused = false;
  UniqueFd fd(socket(server.address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) {
    *error = std::string("cannot create a socket: ") + strerror(errno);
    return UniqueFd();
  }
  if (connect(fd.get(), reinterpret_cast<const sockaddr *>(&server.address), server.length) != 0 &&
      errno != EINPROGRESS) {
    const int failure = errno;
    *refused = failure == ECONNREFUSED;
    *error = "cannot connect to " + server.text + ": " + strerror(failure);
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
Greeting read_greeting(int fd, const std::string &server, std::string *buffer,
                       std::string *instance, std::string *error) {
  ReadState state = read_ready(fd, buffer);
  std::string line;
  if (take_line(buffer, &line)) {
    return greeting_ok(line, server, instance, error) ? Greeting::kGood : Greeting::kBad;
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

// Connects to `server` and reads its greeting (its instance into
// *instance), within the setup timeout. Used before the rounds, to choose
// among the addresses of HOST and to report an unreachable or foreign server
// before anything else, and after a round with losses, to see that the
// server that held them is still there. On failure *answered (may be null)
// tells whether something answered (refused the connection, or sent no
// natprobe greeting) rather than nothing (a timeout, an unreachable network:
// the path may be down for a while).
bool check_server(const StopSignals &signals, const ServerAddress &server, std::string *instance,
                  std::string *error, bool *answered = nullptr) {
  bool refused = false, ignored = false;
  if (answered == nullptr) answered = &ignored;
  *answered = false;
  UniqueFd connection = start_connection(server, error, &refused);
  if (!connection.valid()) {
    *answered = refused;
    return false;
  }
  const int fd = connection.get();
  double deadline = monotonic_s() + kSetupTimeoutS;
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
    if (ready == 0 && monotonic_s() >= deadline) {
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
        *answered = result == ECONNREFUSED;
        *error = "cannot connect to " + server.text + ": " + strerror(result);
        break;
      }
      connected = true;
      continue;
    }
    Greeting greeting = read_greeting(fd, server.text, &buffer, instance, error);
    if (greeting == Greeting::kWaiting) continue;
    close_abortively(&connection);
    *answered = greeting == Greeting::kBad && !buffer.empty();
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
    ok = check_server(signals, candidate, &candidate.instance, &failure);
    if (ok) *chosen = candidate;
    if (!ok) errors += (errors.empty() ? "" : "; ") + failure;
    if (StopSignals::stopped()) break;
  }
  freeaddrinfo(found);
  if (!ok) *error = errors.empty() ? "no usable address for " + host : errors;
  return ok;
}

// Whether a probe of round `first` or a later one was lost.
bool lost_since_round(const Report &report, int first) {
  return std::any_of(report.trials.begin(), report.trials.end(), [first](const Trial &trial) {
    return trial.round >= first && trial.outcome != Outcome::kSurvived;
  });
}

struct Probe {
  // kWaiting: a second wave's, set up at its deadline; kRetry: its set-up
  // failed, no connection until its deadline.
  enum class Stage { kWaiting, kRetry, kConnecting, kGreeting, kArming, kIdle };
  UniqueFd fd;
  int round = 0;
  long long idle_ms = 0;
  Stage stage = Stage::kConnecting;
  double deadline = 0;           // of the current stage
  double idle_since = 0;         // kIdle: when ARMED arrived
  int failures = 0;              // set-ups that failed in a row
  long long round_trip_ms = -1;  // kIdle: the smoothed RTT when ARMED came
  std::string buffer;
  bool pending() const { return fd.valid() || stage == Stage::kRetry || stage == Stage::kWaiting; }
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

// One round: its probes run in parallel (a second wave set up later, as the
// next round); each finished one becomes a trial (and a progress line), and
// probes that can no longer tell anything new are dropped at once.
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

  Stop run(const RoundPlan &plan, std::string *error);

 private:
  void progress(const std::string &text, int round = 0) const {
    keepalive_cli::print_error(
        kName, "round " + std::to_string(round != 0 ? round : number_) + ": " + text);
  }
  void announce(const RoundPlan &plan) const;
  bool connect_probe(Probe *probe, std::string *error);
  bool stopped_listening(std::string *error);
  bool setup_failed(Probe *probe, const std::string &observed, std::string *error);
  void finish(Probe *probe, Outcome outcome, long long silence_ms, const std::string &detail);
  std::string drop_unneeded(const Bracket &bracket);
  bool handle_readable(Probe *probe, std::string *error);
  bool handle_line(Probe *probe, const std::string &line, std::string *error);
  bool handle_deadline(Probe *probe, std::string *error);
  std::string time_left() const;
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
  // time_left's worst case of the later rounds, when computed and after how
  // many losses.
  struct WorstCase {
    double at = -1;
    long long later_ms = 0;
    size_t losses = 0;
  };
  mutable WorstCase worst_;
};

// The round's first progress line: its probes and when they end.
void Round::announce(const RoundPlan &plan) const {
  std::string list;
  long long longest = 0;
  for (long long idle : plan.idle_ms) {
    list += " " + format_duration_ms(idle);
    longest = std::max(longest, idle);
  }
  const long long offset = plan.waves == 2 ? plan.wave_offset_ms : 0;
  const std::string probes = std::to_string(plan.idle_ms.size()) +
                             (plan.idle_ms.size() == 1 ? " probe:" : " probes:") + list;
  const std::string ends = format_duration_ms(offset + longest + settings_.grace_ms);
  if (plan.waves == 2) {
    progress(probes + "; round " + std::to_string(number_ + 1) + ": the same, set up " +
             format_duration_ms(offset) + " later (both end within " + ends + ")");
  } else {
    progress(probes + " (ends within " + ends + ")");
  }
}

Stop Round::run(const RoundPlan &plan, std::string *error) {
  announce(plan);
  const long long offset = plan.waves == 2 ? plan.wave_offset_ms : 0;
  const double start = monotonic_s();
  probes_.resize(plan.idle_ms.size() * static_cast<size_t>(plan.waves));
  for (size_t i = 0; i < probes_.size(); ++i) {
    Probe &probe = probes_[i];
    const bool second = i >= plan.idle_ms.size();
    probe.idle_ms = plan.idle_ms[i % plan.idle_ms.size()];
    probe.round = number_ + (second ? 1 : 0);
    if (second) {
      probe.stage = Probe::Stage::kWaiting;
      probe.deadline = start + static_cast<double>(offset) / 1000;
    } else if (!connect_probe(&probe, error)) {
      return Stop::kFailed;
    }
  }
  for (;;) {
    std::vector<pollfd> fds;
    std::vector<Probe *> polled;
    double deadline = monotonic_s() + 3600;
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
      } else if (monotonic_s() >= probe->deadline) {
        ok = handle_deadline(probe, error);
      }
      if (!ok) return Stop::kFailed;
    }
    for (Probe &probe : probes_) {
      const bool later =
          probe.stage == Probe::Stage::kRetry || probe.stage == Probe::Stage::kWaiting;
      if (later && monotonic_s() >= probe.deadline && !connect_probe(&probe, error)) {
        return Stop::kFailed;
      }
    }
  }
}

// Starts (or restarts) a probe's connection; a failure to start is a failed
// set-up like any other.
bool Round::connect_probe(Probe *probe, std::string *error) {
  std::string failure;
  bool refused = false;
  probe->buffer.clear();
  probe->fd = start_connection(server_, &failure, &refused);
  probe->stage = Probe::Stage::kConnecting;
  probe->deadline = monotonic_s() + kSetupTimeoutS;
  if (refused) return stopped_listening(error);
  return probe->fd.valid() || setup_failed(probe, failure, error);
}

// A probe's connection was refused: the server answered before, and nothing
// listens there any more. False, with *error.
bool Round::stopped_listening(std::string *error) {
  report_->server_gone = true;
  *error = "the natprobe server at " + server_.text + " stopped during round " +
           std::to_string(number_) +
           ": it refuses new connections, and the connections it held ended with it, not by a "
           "NAT";
  return false;
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
  const double now = monotonic_s();
  if (contact_->first_failure == 0) contact_->first_failure = now;
  const double silent_s = now - contact_->last_answer;
  const double failing_s = now - contact_->first_failure;
  if (failing_s * 1000 >= static_cast<double>(give_up_ms_)) {
    // The losses of this round came before the contact was lost: the
    // server's end may be theirs too.
    report_->server_gone = lost_since_round(*report_, number_);
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
               whole_seconds_text(silent_s) + " ago",
           probe->round);
  return true;
}

bool Round::handle_readable(Probe *probe, std::string *error) {
  if (probe->stage == Probe::Stage::kConnecting) {
    int result = connect_result(probe->fd.get());
    if (result == ECONNREFUSED) return stopped_listening(error);
    if (result != 0) {
      return setup_failed(probe, std::string("connecting failed: ") + strerror(result), error);
    }
    probe->stage = Probe::Stage::kGreeting;
    probe->deadline = monotonic_s() + kSetupTimeoutS;
    return true;
  }
  ReadState state = read_ready(probe->fd.get(), &probe->buffer);
  int read_error = errno;
  std::string line;
  while (probe->fd.valid() && take_line(&probe->buffer, &line)) {
    contact_->last_answer = monotonic_s();
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
    std::string instance;
    if (!greeting_ok(line, server_.text, &instance, error)) return false;
    if (instance != server_.instance) {
      report_->server_gone = true;
      *error = "the natprobe server at " + server_.text + " restarted during round " +
               std::to_string(number_) + " (instance " + server_.instance + ", now " + instance +
               "): the connections it held ended with it, not by a NAT";
      return false;
    }
    if (!send_all(probe->fd.get(), keepalive_natprobe::idle_line(probe->idle_ms))) {
      return setup_failed(probe, std::string("greeted, but sending failed: ") + strerror(errno),
                          error);
    }
    probe->stage = Probe::Stage::kArming;
    probe->deadline = monotonic_s() + kSetupTimeoutS;
    return true;
  }
  if (parsed.kind == ServerLine::Kind::kError) {
    *error = "the natprobe server at " + server_.text + " said: " + parsed.text;
    // A stopping server ends the connections it holds: no loss is a NAT's.
    report_->server_gone = parsed.text == keepalive_natprobe::kStoppingMessage;
    return false;
  }
  if (probe->stage == Probe::Stage::kArming && parsed.kind == ServerLine::Kind::kArmed &&
      parsed.ms == probe->idle_ms) {
    probe->stage = Probe::Stage::kIdle;
    probe->failures = 0;
    probe->round_trip_ms = round_trip_ms(probe->fd.get());
    probe->idle_since = monotonic_s();
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
    case Probe::Stage::kWaiting:
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
  std::string after = format_duration_ms(to_ms(monotonic_s() - probe.idle_since));
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
  trial.round = probe->round;
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
  text += "; " + time_left();
  progress(text, probe->round);
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

// "N pending" and how long the run may still take.
std::string Round::time_left() const {
  double now = monotonic_s();
  double round_end = now;
  std::vector<Trial> pending;
  for (const Probe &probe : probes_) {
    if (!probe.pending()) continue;
    Trial trial;
    trial.round = probe.round;
    trial.idle_ms = probe.idle_ms;
    pending.push_back(trial);
    const double set_up = probe.stage == Probe::Stage::kWaiting ? probe.deadline : now;
    double end = probe.stage == Probe::Stage::kIdle
                     ? probe.deadline
                     : set_up + static_cast<double>(probe.idle_ms + settings_.grace_ms) / 1000;
    round_end = std::max(round_end, end);
  }
  // The worst case plays every timeout still possible (tens of ms with 64
  // probes): again after a loss or a second, else the last one, less the
  // time since (it stays an upper bound).
  const size_t losses = static_cast<size_t>(
      std::count_if(report_->trials.begin(), report_->trials.end(),
                    [](const Trial &trial) { return trial.outcome != Outcome::kSurvived; }));
  if (worst_.at < 0 || now - worst_.at >= 1 || losses != worst_.losses) {
    worst_ = {now, keepalive_natprobe::later_rounds_ms(report_->trials, pending, settings_),
              losses};
  }
  const long long later = std::max(0LL, worst_.later_ms - to_ms(now - worst_.at));
  long long left_ms = to_ms(round_end - now) + later;
  long long expected_ms = to_ms(round_end - now) + keepalive_natprobe::expected_later_rounds_ms(
                                                       report_->trials, pending, settings_);
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
  // The core refuses a duration past its own bound, or not a whole number of
  // milliseconds, like any other text: one written as a duration is out of range.
  static const std::regex kDurationShape(
      R"(\s*([0-9]+(\.[0-9]+)?)?(([0-9]+(\.[0-9]+)?h)?([0-9]+(\.[0-9]+)?(m|min))?)"
      R"(([0-9]+(\.[0-9]+)?s)?([0-9]+(\.[0-9]+)?ms)?)\s*)");
  const bool parsed = keepalive_parse_duration_ms(value, &ms) != 0;
  if (!parsed && !(std::regex_match(value, kDurationShape) && strpbrk(value, "0123456789"))) {
    *error = std::string(flag) + " " + value +
             ": expected a duration: seconds (90) or numbers with units h, m, s, ms (30m, 1h, 10s)";
    return false;
  }
  if (!parsed || ms < minimum_ms || ms > maximum_ms) {
    *error = std::string(flag) + " " + value + ": must be from " + format_duration_ms(minimum_ms) +
             " to " + format_duration_ms(maximum_ms) + (parsed ? "" : ", in whole milliseconds");
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
  if (!split_endpoint(options->target, 1, &options->host, &options->port, error)) {
    *error = options->target + ": " + *error;
    return false;
  }
  if (options->host.empty()) {
    *error = options->target + ": expected HOST:PORT with a host";
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

// After a round with losses: the same server instance still answers, or the
// losses may be its own end, not a NAT's (report->server_gone, *error). A
// look that gets no answer (the path may be down for a while) is repeated
// with back-off, as a failed set-up is, until --give-up-after.
// `rounds`: "round 3" or "rounds 2 and 3", those just run.
bool server_still_there(const StopSignals &signals, const ServerAddress &server,
                        const ClientOptions &options, int first_round, const std::string &rounds,
                        Report *report, std::string *error) {
  if (!lost_since_round(*report, first_round)) return true;
  const double first_look = monotonic_s();
  std::string instance, failure;
  bool answered = false;
  for (double wait_s = 1;; wait_s = std::min(30.0, 2 * wait_s)) {
    if (check_server(signals, server, &instance, &failure, &answered)) {
      if (instance == server.instance) return true;
      failure.clear();
      break;
    }
    if (StopSignals::stopped()) return true;  // interrupted: reported as such
    if (answered ||
        (monotonic_s() - first_look) * 1000 >= static_cast<double>(options.give_up_ms)) {
      break;
    }
    keepalive_cli::print_error(
        kName, "after the losses of " + rounds + ": no answer from the server (" + failure +
                   "); looking again in " + format_duration_ms(to_ms(wait_s)));
    std::vector<pollfd> none;
    signals.wait(&none, monotonic_s() + wait_s);
    if (StopSignals::stopped()) return true;
  }
  report->server_gone = true;
  *error = "after the losses of " + rounds + " the natprobe server at " + server.text +
           (failure.empty() ? " answers as a new instance (" + instance + ", was " +
                                  server.instance + "): it restarted"
                            : " no longer answers (" + failure + ")") +
           "; the connections it held ended with it, not by a NAT";
  return false;
}

// Runs rounds until the plan is done or the run stops: interrupted, or
// failed with *error.
Stop run_rounds(const StopSignals &signals, const ServerAddress &server,
                const ClientOptions &options, double start, Report *report, std::string *error) {
  Contact contact;
  contact.last_answer = monotonic_s();  // find_server read its greeting
  for (;;) {
    RoundPlan plan = keepalive_natprobe::plan_round(keepalive_natprobe::bracket_of(report->trials),
                                                    options.settings);
    if (plan.empty()) return Stop::kNone;
    if (report->rounds + plan.waves > kMaxRounds) {  // cannot happen with a sane plan
      *error = "gave up after " + std::to_string(report->rounds) + " rounds";
      return Stop::kFailed;
    }
    const int first = report->rounds + 1;
    report->rounds += plan.waves;
    const std::string rounds = plan.waves == 2 ? "rounds " + std::to_string(first) + " and " +
                                                     std::to_string(report->rounds)
                                               : "round " + std::to_string(first);
    double round_start = monotonic_s();
    Stop stop;
    {
      Round round(signals, server, options, first, report, &contact, start);
      stop = round.run(plan, error);
    }
    if (stop != Stop::kNone) return stop;
    if (!server_still_there(signals, server, options, first, rounds, report, error)) {
      return Stop::kFailed;
    }
    Bracket bracket = keepalive_natprobe::bracket_of(report->trials);
    keepalive_cli::print_error(kName, rounds + " done in " +
                                          format_duration_ms(to_ms(monotonic_s() - round_start)) +
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

}  // namespace

int run_client(int argc, char **argv) {
  ClientOptions options;
  std::string error;
  int status = keepalive_cli::kExitOk;
  if (!parse_client_options(argc, argv, &options, &status)) return status;
  StopSignals signals;
  const double start = monotonic_s();
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
                 std::to_string(settings.parallel) + " connections at a time, grace " +
                 format_duration_ms(settings.grace_ms) + "; Ctrl-C stops with what was learned");
  Report report;
  report.server = server.text;
  report.settings = settings;
  Stop stop = run_rounds(signals, server, options, start, &report, &error);
  report.elapsed_s = monotonic_s() - start;
  return finish_run(options, stop, error, &report);
}

}  // namespace keepalive_natprobe
