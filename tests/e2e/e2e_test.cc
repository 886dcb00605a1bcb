// e2e_test.cc — the six end-to-end scenarios: real TCP connections
// between e2e_client (the phone) and e2e_server (the XMPP server) through the
// emulated carrier-grade NAT of tests/e2e/cgnat, with and without
// libkeepalive preloaded.
//
// Prerequisites (root, ip, nft, namespaces allowed) are judged by
// `cgnat check`: when one is missing each test is skipped with the reason,
// or fails when KEEPALIVE_E2E_REQUIRED=1. Namespaces are named after this
// process (kanat-<pid>-<tag>) and removed on every exit path: by the Nat
// guard's destructor (also on a failed assertion or an exception), by the
// SIGINT/SIGTERM/SIGHUP handler, and, after a SIGKILL, by the `cgnat sweep`
// each test starts with.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

extern char **environ;

namespace {

constexpr int kNatTimeout = 3;                // T: the NAT forgets an idle mapping after T s
constexpr double kSilence = 2 * kNatTimeout;  // the server's message comes after 2T
constexpr double kClientWait = kSilence + 2;  // delivery takes milliseconds: 2 s is ample
constexpr double kStartupTimeout = 5;         // for a peer to reach its next step
const char kServerEndpoint[] = "198.51.100.2:5222";

using Strings = std::vector<std::string>;

double now_s() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

std::string env_or_empty(const char *name) {
  const char *value = getenv(name);
  return value ? value : "";
}

std::string harness() { return env_or_empty("KEEPALIVE_TEST_SOURCE_DIR") + "/tests/e2e/cgnat"; }
std::string program(const char *name) { return env_or_empty("KEEPALIVE_TEST_BINDIR") + "/" + name; }
std::string library() { return env_or_empty("KEEPALIVE_TEST_LIBRARY"); }

std::string seconds(double s, int decimals = 1) {
  char text[32];
  snprintf(text, sizeof text, "%.*f", decimals, s);
  return text;
}

// ---------------------------------------------------------------------------
// Cleanup on SIGINT/SIGTERM/SIGHUP. The handler may only use async-signal-
// safe calls, so what it needs is kept in fixed storage, filled beforehand.

constexpr int kMaxTracked = 16;
constexpr size_t kMaxText = 256;
char g_harness[kMaxText];
char g_namespaces[kMaxTracked][kMaxText];  // NAME of each Nat that is up
volatile pid_t g_children[kMaxTracked];    // peers that are running

void on_fatal_signal(int signal_number) {
  for (auto &child : g_children) {
    if (child > 0 && kill(child, SIGKILL) == 0) waitpid(child, nullptr, 0);
  }
  for (auto &name : g_namespaces) {
    if (!name[0]) continue;
    pid_t pid = fork();
    if (pid == 0) {
      char down[] = "down";
      char *argv[] = {g_harness, down, name, nullptr};
      execv(g_harness, argv);
      _exit(127);
    }
    if (pid > 0) waitpid(pid, nullptr, 0);
  }
  signal(signal_number, SIG_DFL);
  raise(signal_number);
}

// Each returns the slot used, or -1 when all are taken (then that one is
// cleaned up by the destructors and the next sweep only).
int track_child(pid_t pid) {
  for (int i = 0; i < kMaxTracked; ++i) {
    if (g_children[i] <= 0) {
      g_children[i] = pid;
      return i;
    }
  }
  return -1;
}

int track_namespaces(const std::string &name) {
  for (int i = 0; i < kMaxTracked; ++i) {
    if (!g_namespaces[i][0]) {
      snprintf(g_namespaces[i], kMaxText, "%s", name.c_str());
      return i;
    }
  }
  return -1;
}

struct SignalCleanup : testing::Environment {
  void SetUp() override {
    snprintf(g_harness, sizeof g_harness, "%s", harness().c_str());
    for (int signal_number : {SIGINT, SIGTERM, SIGHUP}) signal(signal_number, on_fatal_signal);
  }
};
const auto *const g_signal_cleanup = testing::AddGlobalTestEnvironment(new SignalCleanup);

// ---------------------------------------------------------------------------
// Running programs.

// Starts argv with stdout and stderr on pipes (stderr on the stdout pipe
// when err_fd is null); returns the pid or -1.
pid_t spawn(const Strings &args, int *out_fd, int *err_fd) {
  int out[2], err[2] = {-1, -1};
  if (pipe2(out, O_CLOEXEC) != 0) return -1;
  if (err_fd && pipe2(err, O_CLOEXEC) != 0) return -1;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_fd ? err[1] : out[1], 2);
  std::vector<char *> argv;
  for (const auto &arg : args) argv.push_back(const_cast<char *>(arg.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  if (posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ) != 0) pid = -1;
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  *out_fd = out[0];
  if (err_fd) {
    close(err[1]);
    *err_fd = err[0];
  }
  return pid;
}

struct CommandResult {
  int status = -1;     // exit status, -1 when it did not exit normally
  std::string output;  // stdout and stderr
};

CommandResult run_command(const Strings &args) {
  CommandResult result;
  int out = -1;
  pid_t pid = spawn(args, &out, nullptr);
  if (pid < 0) return {-1, "cannot start " + args[0]};
  char buf[4096];
  for (ssize_t n; (n = read(out, buf, sizeof buf)) > 0;) result.output.append(buf, n);
  close(out);
  int status = 0;
  waitpid(pid, &status, 0);
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

// One report line of a peer: "EVENT key=value ... t=SECONDS" (see peer.h).
struct Event {
  std::string name;
  std::map<std::string, std::string> fields;

  std::string operator[](const std::string &key) const {
    auto it = fields.find(key);
    return it == fields.end() ? "" : it->second;
  }
  double number(const std::string &key) const { return atof((*this)[key].c_str()); }

  static Event parse(const std::string &line) {
    Event event;
    std::istringstream words(line);
    words >> event.name;
    for (std::string word; words >> word;) {
      size_t eq = word.find('=');
      if (eq != std::string::npos) event.fields[word.substr(0, eq)] = word.substr(eq + 1);
    }
    return event;
  }
};

// A running peer program whose report lines are read as they come. The
// destructor kills it: no peer outlives its test.
class Peer {
 public:
  Peer(std::string label, const Strings &args) : label_(std::move(label)) {
    pid_ = spawn(args, &out_fd_, &err_fd_);
    if (pid_ > 0) slot_ = track_child(pid_);
  }
  Peer(const Peer &) = delete;
  Peer &operator=(const Peer &) = delete;
  ~Peer() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (slot_ >= 0) g_children[slot_] = 0;
    if (out_fd_ >= 0) close(out_fd_);
    if (err_fd_ >= 0) close(err_fd_);
  }

  bool started() const { return pid_ > 0; }

  // The first event named one of `names`, waiting up to `timeout` seconds
  // for it; nullopt when the program ended or the time ran out.
  std::optional<Event> wait_for(std::initializer_list<const char *> names, double timeout) {
    double deadline = now_s() + timeout;
    for (;;) {
      for (const auto &event : events_)
        for (const char *name : names)
          if (event.name == name) return event;
      if (!read_more(deadline)) return std::nullopt;
    }
  }

  // An event already reported (reads what is ready, waits for nothing).
  std::optional<Event> find(const char *name) {
    while (read_more(now_s())) {
    }
    return wait_for({name}, 0);
  }

  const std::string &errors() const { return err_; }

  // Everything the peer said, for failure messages.
  std::string transcript() const {
    std::string text = "--- " + label_ + " stdout:\n" + out_;
    if (!err_.empty()) text += "--- " + label_ + " stderr:\n" + err_;
    return text;
  }

 private:
  // Reads from stdout/stderr until something arrives or `deadline`; false
  // when nothing more can come in time.
  bool read_more(double deadline) {
    pollfd fds[2] = {{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}};
    if (fds[0].fd < 0 && fds[1].fd < 0) return false;
    double left = deadline - now_s();
    int ready = poll(fds, 2, left > 0 ? static_cast<int>(left * 1000) + 1 : 0);
    if (ready <= 0) return false;
    bool got = false;
    for (int i = 0; i < 2; ++i) {
      if (!fds[i].revents) continue;
      char buf[4096];
      ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        close(fds[i].fd);
        (i == 0 ? out_fd_ : err_fd_) = -1;
        continue;
      }
      got = true;
      (i == 0 ? out_ : err_).append(buf, n);
    }
    for (size_t end; (end = out_.find('\n', parsed_)) != std::string::npos; parsed_ = end + 1)
      events_.push_back(Event::parse(out_.substr(parsed_, end - parsed_)));
    return got || out_fd_ >= 0 || err_fd_ >= 0;
  }

  std::string label_;
  pid_t pid_ = -1;
  int slot_ = -1;
  int out_fd_ = -1, err_fd_ = -1;
  std::string out_, err_;
  size_t parsed_ = 0;
  std::vector<Event> events_;
};

// The three namespaces of one emulated CGNAT (`cgnat up`), removed by the
// destructor (`cgnat down`).
class Nat {
 public:
  explicit Nat(const std::string &tag) : name_("kanat-" + std::to_string(getpid()) + "-" + tag) {
    slot_ = track_namespaces(name_);
    up_ = run_command({harness(), "up", name_, std::to_string(kNatTimeout)});
  }
  Nat(const Nat &) = delete;
  Nat &operator=(const Nat &) = delete;
  ~Nat() {
    run_command({harness(), "down", name_});
    if (slot_ >= 0) g_namespaces[slot_][0] = '\0';
  }

  bool up() const { return up_.status == 0; }
  const std::string &name() const { return name_; }
  std::string up_output() const { return up_.output; }

  // The command line running `args` in namespace `side` (c, n, s) with the
  // variables `env` ("NAME=value") set for that program only.
  Strings exec(const char *side, const Strings &env, const Strings &args) const {
    Strings command = {harness(), "exec", name_, side};
    command.insert(command.end(), env.begin(), env.end());
    command.insert(command.end(), args.begin(), args.end());
    return command;
  }

  CommandResult link_down() const { return run_command({harness(), "link-down", name_}); }

  // `ss -tnoe` in the server's namespace, what an administrator would see:
  // its header and the test connection (not ss's complaints about cgroups).
  std::string server_sockets() const {
    std::istringstream lines(
        run_command(exec("s", {}, {"ss", "-tnoe", "state", "established"})).output);
    std::string shown;
    for (std::string line; std::getline(lines, line);)
      if (line.rfind("Recv-Q", 0) == 0 || line.find("198.51.100.2:") != std::string::npos)
        shown += line + "\n";
    return shown;
  }

 private:
  std::string name_;
  int slot_ = -1;
  CommandResult up_;
};

Strings with_library(Strings settings) {
  settings.insert(settings.begin(), "LD_PRELOAD=" + library());
  return settings;
}

// One client–server connection through its own NAT.
struct Connection {
  std::unique_ptr<Nat> nat;  // declared first: destroyed after the peers
  std::unique_ptr<Peer> server, client;
  std::optional<Event> server_start, accepted, client_start, connected;

  std::string transcript() const {
    return (server ? server->transcript() : "") + (client ? client->transcript() : "");
  }
};

// Brings up a NAT, starts the server (with `server_args` after --listen) and
// the client, and waits until they exchanged hello and welcome.
void connect(const std::string &tag, const Strings &server_env, const Strings &server_args,
             const Strings &client_env, double client_wait, Connection *c) {
  c->nat = std::make_unique<Nat>(tag);
  ASSERT_TRUE(c->nat->up()) << "cgnat up " << c->nat->name() << " failed:\n" << c->nat->up_output();
  Strings server = {program("e2e_server"), "--listen", kServerEndpoint};
  server.insert(server.end(), server_args.begin(), server_args.end());
  c->server = std::make_unique<Peer>(tag + " server", c->nat->exec("s", server_env, server));
  ASSERT_TRUE(c->server->started());
  ASSERT_TRUE(c->server->wait_for({"listening"}, kStartupTimeout)) << c->transcript();

  c->client = std::make_unique<Peer>(
      tag + " client", c->nat->exec("c", client_env,
                                    {program("e2e_client"), "--connect", kServerEndpoint, "--wait",
                                     seconds(client_wait)}));
  ASSERT_TRUE(c->client->started());
  ASSERT_TRUE(c->client->wait_for({"welcome_received"}, kStartupTimeout)) << c->transcript();
  ASSERT_TRUE(c->server->wait_for({"welcome_sent"}, kStartupTimeout)) << c->transcript();
  c->server_start = c->server->find("start");
  c->accepted = c->server->find("accepted");
  c->client_start = c->client->find("start");
  c->connected = c->client->find("connected");
  ASSERT_TRUE(c->server_start && c->accepted && c->client_start && c->connected) << c->transcript();
}

// The story's case: an idle connection, then a server→client message after
// 2T of silence. `outcome` is the client's verdict (message_received,
// nothing_received, ...).
void send_after_silence(const std::string &tag, const Strings &server_env,
                        const Strings &client_env, Connection *c, Event *sent, Event *outcome) {
  ASSERT_NO_FATAL_FAILURE(connect(tag, server_env,
                                  {"--send-after", seconds(kSilence), "--watch", "3"}, client_env,
                                  kClientWait, c));
  auto verdict = c->client->wait_for(
      {"message_received", "nothing_received", "read_error", "peer_closed", "error"},
      kClientWait + kStartupTimeout);
  ASSERT_TRUE(verdict) << "the client reported no outcome\n" << c->transcript();
  auto message_sent = c->server->wait_for({"message_sent"}, kStartupTimeout);
  ASSERT_TRUE(message_sent) << "the server did not send the message\n" << c->transcript();
  *sent = *message_sent;
  *outcome = *verdict;
}

// The client vanishes silently, right after the welcome (`cgnat link-down`).
void vanish(const Connection &c) {
  CommandResult down = c.nat->link_down();
  ASSERT_EQ(down.status, 0) << down.output;
}

bool is_dead_peer_error(const std::string &name) {
  // ETIMEDOUT, or the unreachable error an ICMP message from the NAT left
  // on the socket meanwhile (the kernel reports that one instead).
  return name == "ETIMEDOUT" || name == "EHOSTUNREACH";
}

// ---------------------------------------------------------------------------

class CgnatTest : public testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(env_or_empty("KEEPALIVE_TEST_SOURCE_DIR").empty() ||
                 env_or_empty("KEEPALIVE_TEST_BINDIR").empty() || library().empty())
        << "KEEPALIVE_TEST_SOURCE_DIR, KEEPALIVE_TEST_BINDIR and KEEPALIVE_TEST_LIBRARY must be "
           "set (CTest sets them)";
    CommandResult check = run_command({harness(), "check"});
    if (check.status != 0) {
      std::string reason = check.output.empty() ? "cgnat check failed" : check.output;
      if (env_or_empty("KEEPALIVE_E2E_REQUIRED") == "1")
        FAIL() << "KEEPALIVE_E2E_REQUIRED=1 but the emulated NAT cannot run here:\n" << reason;
      std::cerr << "\n*** E2E TEST SKIPPED — the emulated CGNAT cannot run here:\n"
                << reason << "*** Run as root with iproute2 and nftables to test for real.\n\n";
      GTEST_SKIP() << "emulated CGNAT unavailable: " << reason;
    }
    CommandResult sweep = run_command({harness(), "sweep"});
    if (!sweep.output.empty()) std::cout << sweep.output;
    struct stat st {};
    ASSERT_EQ(stat(library().c_str(), &st), 0) << "library not built: " << library();
  }
};

// 1. Without the library the NAT forgets the idle connection and the
// message is lost. Were it delivered, the emulation would be broken.
TEST_F(CgnatTest, BaselineMessageAfterSilenceIsLost) {
  Connection c;
  Event sent, outcome;
  ASSERT_NO_FATAL_FAILURE(send_after_silence("base", {}, {}, &c, &sent, &outcome));
  EXPECT_EQ((*c.server_start)["libkeepalive_loaded"], "0");
  EXPECT_EQ((*c.accepted)["so_keepalive"], "0");
  ASSERT_EQ(outcome.name, "nothing_received")
      << "without libkeepalive the message must be lost: the emulated NAT did not forget the "
         "idle mapping, the emulation is broken\n"
      << c.transcript();
  std::cout << "baseline: message sent after " << seconds(sent.number("silence"))
            << " s of silence was lost (client waited " << seconds(outcome.number("waited"))
            << " s, NAT timeout " << kNatTimeout << " s)\n";
}

// 2. The server (accepting side) under the library with KEEPALIVE_IDLE=1.
TEST_F(CgnatTest, IncomingWithIdle1MessageIsDelivered) {
  Connection c;
  Event sent, outcome;
  ASSERT_NO_FATAL_FAILURE(
      send_after_silence("incoming", with_library({"KEEPALIVE_IDLE=1"}), {}, &c, &sent, &outcome));
  ASSERT_EQ((*c.server_start)["libkeepalive_loaded"], "1") << c.transcript();
  EXPECT_EQ((*c.accepted)["so_keepalive"], "1");
  EXPECT_EQ((*c.accepted)["keepidle"], "1");
  ASSERT_EQ(outcome.name, "message_received")
      << "the server's keepalive should have kept the NAT mapping\n"
      << c.transcript();
  std::cout << "incoming: message delivered after " << seconds(outcome.number("silence"))
            << " s of silence (accepted socket: keepidle=" << (*c.accepted)["keepidle"]
            << " keepintvl=" << (*c.accepted)["keepintvl"] << ")\n";
}

// 3. The client (connecting side) under the library, the server without.
TEST_F(CgnatTest, OutgoingWithIdle1MessageIsDelivered) {
  Connection c;
  Event sent, outcome;
  ASSERT_NO_FATAL_FAILURE(
      send_after_silence("outgoing", {}, with_library({"KEEPALIVE_IDLE=1"}), &c, &sent, &outcome));
  ASSERT_EQ((*c.client_start)["libkeepalive_loaded"], "1") << c.transcript();
  EXPECT_EQ((*c.server_start)["libkeepalive_loaded"], "0");
  EXPECT_EQ((*c.connected)["so_keepalive"], "1");
  EXPECT_EQ((*c.connected)["keepidle"], "1");
  EXPECT_EQ((*c.accepted)["so_keepalive"], "0");
  ASSERT_EQ(outcome.name, "message_received")
      << "the client's keepalive should have kept the NAT mapping\n"
      << c.transcript();
  std::cout << "outgoing: message delivered after " << seconds(outcome.number("silence"))
            << " s of silence (connecting socket: keepidle=" << (*c.connected)["keepidle"]
            << " keepintvl=" << (*c.connected)["keepintvl"] << ")\n";
}

// 4. The client vanishes silently; the server blocks in read(). With the
// library the read fails within IDLE + INTVL·CNT + 1 s of the peer's last
// sign of life; without it the connection still looks established 12 s on.
// Both run at once, each through its own NAT.
TEST_F(CgnatTest, DeadPeerIsDetectedWithinBound) {
  constexpr int kIdle = 2, kIntvl = 1, kCnt = 2;
  constexpr double kBound = kIdle + kIntvl * kCnt + 1;
  constexpr double kControlWatch = 12;
  Connection with, without;
  ASSERT_NO_FATAL_FAILURE(connect("deadlib",
                                  with_library({"KEEPALIVE_IDLE=" + std::to_string(kIdle),
                                                "KEEPALIVE_INTVL=" + std::to_string(kIntvl),
                                                "KEEPALIVE_CNT=" + std::to_string(kCnt)}),
                                  {"--watch", "30"}, {}, 60, &with));
  ASSERT_NO_FATAL_FAILURE(vanish(with));
  ASSERT_NO_FATAL_FAILURE(connect(
      "deadctl", {}, {"--watch", seconds(kControlWatch), "--hold", "10"}, {}, 60, &without));
  ASSERT_NO_FATAL_FAILURE(vanish(without));
  ASSERT_EQ((*with.server_start)["libkeepalive_loaded"], "1") << with.transcript();
  EXPECT_EQ((*with.accepted)["keepidle"], std::to_string(kIdle));

  auto failed = with.server->wait_for({"read_error", "still_open", "peer_closed", "error"},
                                      kBound + kStartupTimeout);
  ASSERT_TRUE(failed) << with.transcript();
  ASSERT_EQ(failed->name, "read_error") << with.transcript();
  EXPECT_PRED1(is_dead_peer_error, (*failed)["errno"]) << with.transcript();
  // silence: how long the kernel had heard nothing from the peer (TCP_INFO).
  double silence = failed->number("silence");
  EXPECT_LE(silence, kBound) << with.transcript();
  EXPECT_GE(silence, kIdle) << "failed before keepalive could even start\n" << with.transcript();
  std::cout << "dead peer: detected after " << seconds(silence, 2) << " s of silence, bound "
            << kBound << " s (read() failed with " << (*failed)["errno"] << ")\n";

  auto control = without.server->wait_for({"read_error", "still_open", "peer_closed", "error"},
                                          kControlWatch + kStartupTimeout);
  ASSERT_TRUE(control) << without.transcript();
  ASSERT_EQ(control->name, "still_open") << without.transcript();
  EXPECT_EQ((*control)["state"], "ESTABLISHED");
  std::string ss = without.nat->server_sockets();
  EXPECT_NE(ss.find("198.51.100.2:5222"), std::string::npos) << ss;
  std::cout << "dead peer without libkeepalive: still " << (*control)["state"] << " after "
            << seconds(control->number("silence")) << " s of silence; ss -tnoe says:\n"
            << ss;
}

// 5. The server has sent data the vanished peer never acknowledges. With
// KEEPALIVE_USER_TIMEOUT=3 the socket fails 3–4 s after the send; without it
// the kernel is still retransmitting long after. (Observed here: 3.4 s. About
// 3 s after the send the NAT's ARP for the vanished client fails and it
// answers with ICMP host unreachable; the kernel then retransmits once more
// before giving up, and usually reports EHOSTUNREACH.)
TEST_F(CgnatTest, PendingDataFailsAfterUserTimeout) {
  constexpr double kUserTimeout = 3;
  constexpr double kSendAfter = 1;  // the link goes down within milliseconds of the welcome
  constexpr double kControlWatch = 8;
  Connection with, without;
  ASSERT_NO_FATAL_FAILURE(connect("pendlib", with_library({"KEEPALIVE_USER_TIMEOUT=3"}),
                                  {"--send-after", seconds(kSendAfter), "--watch", "30"}, {}, 60,
                                  &with));
  ASSERT_NO_FATAL_FAILURE(vanish(with));
  ASSERT_NO_FATAL_FAILURE(connect(
      "pendctl", {},
      {"--send-after", seconds(kSendAfter), "--watch", seconds(kControlWatch), "--hold", "10"}, {},
      60, &without));
  ASSERT_NO_FATAL_FAILURE(vanish(without));
  ASSERT_EQ((*with.server_start)["libkeepalive_loaded"], "1") << with.transcript();
  EXPECT_EQ((*with.accepted)["user_timeout_ms"], "3000");

  auto sent = with.server->wait_for({"message_sent"}, kSendAfter + kStartupTimeout);
  ASSERT_TRUE(sent) << with.transcript();
  auto failed = with.server->wait_for({"read_error", "still_open", "peer_closed", "error"},
                                      kUserTimeout + 1 + kStartupTimeout);
  ASSERT_TRUE(failed) << with.transcript();
  ASSERT_EQ(failed->name, "read_error") << with.transcript();
  EXPECT_PRED1(is_dead_peer_error, (*failed)["errno"]) << with.transcript();
  double after = failed->number("t") - sent->number("t");
  EXPECT_GE(after, kUserTimeout) << with.transcript();
  EXPECT_LE(after, kUserTimeout + 1) << with.transcript();
  std::cout << "pending data: socket failed " << seconds(after, 2) << " s after the send, bound "
            << kUserTimeout << "–" << kUserTimeout + 1 << " s (read() failed with "
            << (*failed)["errno"] << ")\n";

  auto control = without.server->wait_for({"read_error", "still_open", "peer_closed", "error"},
                                          kSendAfter + kControlWatch + kStartupTimeout);
  ASSERT_TRUE(control) << without.transcript();
  ASSERT_EQ(control->name, "still_open") << without.transcript();
  EXPECT_EQ((*control)["state"], "ESTABLISHED");
  EXPECT_GE(control->number("unacked"), 1);
  EXPECT_GE(control->number("retransmits"), 1);
  std::string ss = without.nat->server_sockets();
  std::cout << "pending data without libkeepalive: still " << (*control)["state"] << " "
            << seconds(kControlWatch) << " s after the send, " << (*control)["retransmits"]
            << " retransmissions; ss -tnoe says:\n"
            << ss;

  // Had a client seen the message, the link was not down when it was sent
  // and this scenario proved nothing.
  for (Connection *c : {&with, &without})
    EXPECT_FALSE(c->client->find("message_received")) << c->transcript();
}

// 6. An invalid setting: the library says so and stays out of the way, so
// the server behaves exactly like the baseline (the message is lost).
TEST_F(CgnatTest, InvalidConfigurationBehavesLikeBaseline) {
  Connection c;
  Event sent, outcome;
  ASSERT_NO_FATAL_FAILURE(
      send_after_silence("invalid", with_library({"KEEPALIVE_IDLE=abc"}), {}, &c, &sent, &outcome));
  ASSERT_EQ((*c.server_start)["libkeepalive_loaded"], "1") << c.transcript();
  EXPECT_NE(c.server->errors().find("KEEPALIVE_IDLE"), std::string::npos)
      << "the library should name the invalid variable on stderr\n"
      << c.transcript();
  // The accepted socket is exactly as the kernel made it: like the client's,
  // which nobody touched.
  for (const char *option : {"so_keepalive", "keepidle", "keepintvl", "keepcnt", "user_timeout_ms"})
    EXPECT_EQ((*c.accepted)[option], (*c.connected)[option]) << option;
  ASSERT_EQ(outcome.name, "nothing_received")
      << "with an invalid configuration the library must not act\n"
      << c.transcript();
  std::cout << "invalid configuration: the server said \""
            << c.server->errors().substr(0, c.server->errors().find('\n'))
            << "\"; message sent after " << seconds(sent.number("silence"))
            << " s of silence was lost, as in the baseline\n";
}

}  // namespace
