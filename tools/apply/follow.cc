// follow.cc — see follow.h.

#include "apply/follow.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <iterator>
#include <set>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "lib/cli.h"
#include "lib/output.h"
#include "lib/sockdiag.h"
#include "lib/socket_report.h"
#include "lib/stop_signals.h"

namespace keepalive_cli {
namespace {

constexpr char kName[] = "apply";
constexpr int kExitNoAccess = kExitNoProcess;  // as `keepalive apply`
// Established connections to set, listeners for the directions (and for
// --listeners).
constexpr unsigned kListedStates = diag_state_bit(TCP_ESTABLISHED) | diag_state_bit(TCP_LISTEN);

// Seconds since the epoch, for the events' "time".
double wall_clock_s() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec / 1000000) / 1000.0;
}

std::string clock_text() {
  time_t t = time(nullptr);
  tm local;
  localtime_r(&t, &local);
  char text[16];
  strftime(text, sizeof text, "%H:%M:%S", &local);
  return text;
}

double cpu_ms(const timeval &tv) {
  return static_cast<double>(tv.tv_sec) * 1000.0 + static_cast<double>(tv.tv_usec) / 1000.0;
}

// The CPU time the command has used so far, as JSON fields (the benchmark
// reads the cost per tick and per new connection from them).
void cpu_fields(JsonWriter *json) {
  rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  json->field("cpu_user_ms", cpu_ms(usage.ru_utime));
  json->field("cpu_system_ms", cpu_ms(usage.ru_stime));
}

// Opens one line of --json output: the event's name and the time.
void begin_event(JsonWriter *json, const char *event) {
  json->begin_object();
  json->field("event", event);
  json->field("time", wall_clock_s());
}

// A socket of the process built from the listing: what apply reads from the
// socket, but taken from the kernel's description; the keepalive options are
// read from the socket itself when it is set.
TcpSocket socket_from_listing(const DiagSocket &listed, int fd) {
  TcpSocket socket;
  socket.fd = fd;
  socket.inode = listed.inode;
  socket.family = listed.family;
  socket.state = listed.state;
  socket.has_local = true;
  socket.local = listed.local;
  socket.listening = listed.state == TCP_LISTEN;
  socket.connected = listed.state == TCP_ESTABLISHED;
  socket.has_peer = socket.connected;
  socket.peer = listed.peer;
  return socket;
}

class Follower {
 public:
  Follower(const TargetProcess &target, const keepalive_config &config, const PassOptions &pass,
           const FollowOptions &options)
      : target_(target), config_(config), pass_(pass), options_(options) {}

  int run();

 private:
  enum class Scan { kOk, kExited, kDenied };

  int initial_pass();
  // The first line: which process, how often.
  void announce_start();
  // One tick: returns false when following must end with *status.
  bool tick(int *status);
  std::vector<const DiagSocket *> fresh_sockets(
      const std::vector<DiagSocket> &listing, std::unordered_set<unsigned long long> *listed,
      std::unordered_set<unsigned long long> *wanted) const;
  void forget_closed_listeners(const std::unordered_set<unsigned long long> &listed);
  void handle_fresh(const std::vector<const DiagSocket *> &fresh,
                    const std::unordered_map<unsigned long long, int> &fds,
                    std::unordered_set<unsigned long long> *listed,
                    std::unordered_set<unsigned long long> *look_again);
  void handle_new_connections(std::vector<TcpSocket> *connections);
  Scan map_inodes_to_fds(const std::unordered_set<unsigned long long> &wanted,
                         std::unordered_map<unsigned long long, int> *fds,
                         std::string *error) const;
  void handle(const TcpSocket &socket, bool initial);
  void report(const Outcome &outcome, bool initial);
  void finish(const std::string &reason);
  // The counts so far and the CPU time used, as JSON fields.
  void totals_json(JsonWriter *json) const;
  bool dry_run() const { return pass_.mode == PassMode::kPredict; }

  const TargetProcess &target_;
  const keepalive_config &config_;
  const PassOptions &pass_;
  const FollowOptions &options_;
  SockDiag diag_;
  const StopSignals signals_;  // SIGINT, SIGTERM: the end
  std::string command_;

  // Inodes of the namespace's listed sockets already looked at (the
  // process's and everyone else's), as of the last listing.
  std::unordered_set<unsigned long long> seen_;
  // Inodes the process did not hold at the last look: looked at once more,
  // for a socket listed between its creation and its descriptor.
  std::unordered_set<unsigned long long> look_again_;
  // The process's listening sockets: inode → port (directions).
  std::unordered_map<unsigned long long, uint16_t> listeners_;

  long long ticks_ = 0;
  Totals totals_;  // every socket handled, once
};

void Follower::report(const Outcome &outcome, bool initial) {
  totals_.add(outcome.action);
  if (outcome.action == Action::kFailed) {
    print_error(kName, "fd " + fds_text(outcome) + " (" + endpoint_pair(outcome.socket) +
                           "): not set: " + outcome.error);
  }
  if (options_.json) {
    JsonWriter json(JsonWriter::kOneLine);
    begin_event(&json, "socket");
    json.field("initial", initial);
    socket_json_fields(&json, config_, outcome);
    json.end_object();
    fputs(json.str().c_str(), stdout);
  } else if (options_.verbose) {
    std::string line = clock_text() + " fd " + fds_text(outcome) + " " +
                       direction_name(outcome.socket) + " " + endpoint_pair(outcome.socket) + ": " +
                       action_info(outcome.action).word + ", rule " + rule_text(config_, outcome) +
                       ": " + keepalive_column(config_, outcome) + "\n";
    fputs(line.c_str(), stdout);
  }
}

void Follower::handle(const TcpSocket &socket, bool initial) {
  report(pass_socket(target_, config_, socket, pass_), initial);
}

void Follower::announce_start() {
  if (options_.json) {
    JsonWriter json(JsonWriter::kOneLine);
    begin_event(&json, "start");
    json.field("pid", static_cast<long long>(target_.pid()));
    json.field("command", command_);
    json.field("interval_ms", options_.interval_ms);
    json.field("kernel_idle_s", pass_.kernel.values().idle_s);
    json.end_object();
    fputs(json.str().c_str(), stdout);
  } else {
    printf("Following process %d (%s) every %s; it ends when the process exits.\n",
           static_cast<int>(target_.pid()), command_.c_str(),
           format_duration_ms(options_.interval_ms).c_str());
  }
}

int Follower::initial_pass() {
  std::string error;
  std::vector<DiagSocket> listing;
  if (!diag_.dump_tcp(kListedStates, &listing, &error)) {
    print_error(kName, error + "; nothing changed");
    return kExitNoAccess;
  }
  // Listed before the descriptors are read: a connection made in between is
  // set now and not again.
  for (const DiagSocket &listed : listing) seen_.insert(listed.inode);
  std::vector<TcpSocket> sockets;
  Unexamined unexamined;
  if (!target_.read_tcp_sockets(&sockets, &unexamined, &error)) {
    print_error(kName, error + "; nothing changed");
    return kExitNoAccess;
  }
  if (!unexamined.fds.empty()) {
    // As apply says it; following goes on with the sockets it can reach.
    print_error(kName, unexamined_text(unexamined) + "; they may be TCP connections, not set");
  }
  command_ = target_.command_name();
  announce_start();
  for (const TcpSocket &socket : sockets) {
    if (socket.listening && socket.has_local) listeners_[socket.inode] = port_of(socket.local);
    // A socket not yet connected (socket() before connect()) is new to the
    // tick that first lists it established.
    if (established_or_listening(socket)) seen_.insert(socket.inode);
  }
  std::vector<Outcome> outcomes;
  pass_listing(target_, config_, pass_, sockets, false, &outcomes);
  for (const Outcome &outcome : outcomes) report(outcome, true);
  if (options_.json) {
    JsonWriter json(JsonWriter::kOneLine);
    begin_event(&json, "applied");
    totals_json(&json);
    json.end_object();
    fputs(json.str().c_str(), stdout);
  } else if (!options_.verbose) {
    fputs(("Now: " + totals_line(config_, dry_run(), totals_)).c_str(), stdout);
  }
  fflush(stdout);
  return 0;
}

Follower::Scan Follower::map_inodes_to_fds(const std::unordered_set<unsigned long long> &wanted,
                                           std::unordered_map<unsigned long long, int> *fds,
                                           std::string *error) const {
  std::vector<std::pair<int, unsigned long long>> descriptors;
  Unexamined unexamined;  // their sockets were not listed as the process's: left
  if (!target_.socket_descriptors(&descriptors, &unexamined, error)) {
    return target_.exited() ? Scan::kExited : Scan::kDenied;
  }
  for (const auto &[fd, inode] : descriptors) {
    if (wanted.count(inode) != 0) fds->emplace(inode, fd);  // the lowest, as apply
  }
  return Scan::kOk;
}

// The listed sockets not seen at the last listing, and their inodes in
// *wanted; *listed gets every listed inode.
std::vector<const DiagSocket *> Follower::fresh_sockets(
    const std::vector<DiagSocket> &listing, std::unordered_set<unsigned long long> *listed,
    std::unordered_set<unsigned long long> *wanted) const {
  std::vector<const DiagSocket *> fresh;
  for (const DiagSocket &socket : listing) {
    if (socket.inode == 0) continue;  // not yet accepted: no descriptor yet
    listed->insert(socket.inode);
    if (seen_.count(socket.inode) != 0) continue;
    fresh.push_back(&socket);
    wanted->insert(socket.inode);
  }
  return fresh;
}

void Follower::forget_closed_listeners(const std::unordered_set<unsigned long long> &listed) {
  for (auto it = listeners_.begin(); it != listeners_.end();) {
    it = listed.count(it->first) != 0 ? std::next(it) : listeners_.erase(it);
  }
}

// Handles the fresh sockets the process holds (`fds`): each new listener at
// once, then the new connections. One it does not hold is looked at once
// more at the next tick: taken out of *listed, put in *look_again.
void Follower::handle_fresh(const std::vector<const DiagSocket *> &fresh,
                            const std::unordered_map<unsigned long long, int> &fds,
                            std::unordered_set<unsigned long long> *listed,
                            std::unordered_set<unsigned long long> *look_again) {
  std::vector<TcpSocket> connections;
  for (const DiagSocket *listed_socket : fresh) {
    auto fd = fds.find(listed_socket->inode);
    if (fd == fds.end()) {
      // Not the process's, or its descriptor is not installed yet.
      if (look_again_.count(listed_socket->inode) == 0) {
        look_again->insert(listed_socket->inode);
        listed->erase(listed_socket->inode);
      }
      continue;
    }
    TcpSocket socket = socket_from_listing(*listed_socket, fd->second);
    if (socket.listening) {
      listeners_[socket.inode] = port_of(socket.local);
      handle(socket, false);
    } else {
      connections.push_back(socket);
    }
  }
  handle_new_connections(&connections);
}

// In descriptor order, with their directions once the new listeners are known.
void Follower::handle_new_connections(std::vector<TcpSocket> *connections) {
  std::sort(connections->begin(), connections->end(),
            [](const TcpSocket &a, const TcpSocket &b) { return a.fd < b.fd; });
  std::set<uint16_t> listening_ports;
  for (const auto &[inode, port] : listeners_) listening_ports.insert(port);
  for (TcpSocket &socket : *connections) {
    socket.direction = connection_direction(socket, listening_ports);
    handle(socket, false);
  }
}

bool Follower::tick(int *status) {
  ++ticks_;
  std::string error;
  std::vector<DiagSocket> listing;
  if (!diag_.dump_tcp(kListedStates, &listing, &error)) {
    print_error(kName, error + "; trying again at the next tick");
    return true;
  }
  std::unordered_set<unsigned long long> listed, wanted;
  std::vector<const DiagSocket *> fresh = fresh_sockets(listing, &listed, &wanted);
  forget_closed_listeners(listed);
  std::unordered_set<unsigned long long> look_again;
  if (!fresh.empty()) {
    std::unordered_map<unsigned long long, int> fds;
    Scan scan = map_inodes_to_fds(wanted, &fds, &error);
    if (scan == Scan::kExited) return true;  // the pidfd says so at the next wait
    if (scan == Scan::kDenied) {
      print_error(kName, error + "; stopped following");
      *status = kExitNoAccess;
      return false;
    }
    handle_fresh(fresh, fds, &listed, &look_again);
    fflush(stdout);
  }
  seen_ = std::move(listed);
  look_again_ = std::move(look_again);
  return true;
}

void Follower::totals_json(JsonWriter *json) const {
  totals_json_fields(json, dry_run(), totals_);
  cpu_fields(json);
}

void Follower::finish(const std::string &reason) {
  if (options_.json) {
    JsonWriter json(JsonWriter::kOneLine);
    begin_event(&json, "end");
    json.field("reason", reason);
    json.field("ticks", ticks_);
    totals_json(&json);
    json.end_object();
    fputs(json.str().c_str(), stdout);
  } else {
    printf("Stopped following process %d (%s): %s", static_cast<int>(target_.pid()), reason.c_str(),
           totals_line(config_, dry_run(), totals_).c_str());
  }
  fflush(stdout);
}

int Follower::run() {
  std::string error;
  if (!diag_.open(target_.pid(), &error)) {
    print_error(kName, error + "; nothing changed");
    return kExitNoAccess;
  }
  if (int status = initial_pass(); status != 0) return status;
  for (;;) {
    std::vector<pollfd> waits = {{target_.pidfd(), POLLIN, 0}};
    int ready = signals_.wait(&waits, monotonic_s() + options_.interval_ms / 1000.0);
    if (StopSignals::stopped()) {
      finish(StopSignals::caught() == SIGINT ? "SIGINT" : "SIGTERM");
      return kExitOk;
    }
    if (ready < 0 && errno != EINTR) {
      print_error(kName, std::string("poll: ") + strerror(errno));
      return kExitNoAccess;
    }
    if (ready > 0 && (waits[0].revents & POLLIN) != 0) {
      finish("process exited");
      return kExitOk;
    }
    int status = kExitOk;
    if (!tick(&status)) return status;
  }
}

}  // namespace

bool parse_follow_interval(const char *text, int *interval_ms, std::string *error) {
  long long ms = 0;
  if (!keepalive_parse_duration_ms(text, &ms) || ms < kMinFollowIntervalMs ||
      ms > kMaxFollowIntervalMs) {
    *error = "--interval must be a duration from " + format_duration_ms(kMinFollowIntervalMs) +
             " to " + format_duration_ms(kMaxFollowIntervalMs) + " (1s, 250ms, 1.5s), not '" +
             text + "'";
    return false;
  }
  *interval_ms = static_cast<int>(ms);
  return true;
}

int follow_process(const TargetProcess &target, const keepalive_config &config,
                   const PassOptions &pass, const FollowOptions &options) {
  Follower follower(target, config, pass, options);
  return follower.run();
}

}  // namespace keepalive_cli
