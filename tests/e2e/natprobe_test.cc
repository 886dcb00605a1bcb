// natprobe_test.cc — `keepalive natprobe` end to end.
//
// Through the emulated carrier-grade NAT of tests/e2e/cgnat (needs root, ip,
// nft; skipped loudly without them, failed with LIBKEEPALIVE_E2E_REQUIRED=1):
// the client in the client namespace measures the NAT's idle timeout T
// against the server in the server namespace; the bracket it reports must
// contain T and be at most 1 s wide, for T = 4 s and, with libkeepalive
// preloaded into both ends (KEEPALIVE_IDLE=1, which would keep every mapping
// alive were the probe connections not switched back off), T = 9 s.
//
// On loopback (no NAT, no root): no timeout up to --max; a path that resets
// connections (a fake server) counts as lost and is named; an unreachable
// server, foreign peers and bad command lines give clear errors; Ctrl-C
// prints what was learned; the server refuses a foreign request.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <functional>
#include <iomanip>
#include <iostream>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "cgnat_harness.h"

namespace {

using cgnat_harness::kStartupTimeout;
using cgnat_harness::Nat;
using cgnat_harness::Process;
using cgnat_harness::Strings;

const std::string kServerEndpoint = std::string(cgnat_harness::kServerAddress) + ":7200";
constexpr double kRunLimit = 50;  // a run at 1 s resolution, its loss confirmed: at most 50 s

std::string command() { return cgnat_harness::program("keepalive"); }

// The value of "key" in the client's JSON object: a number, or nullopt for
// null (or a missing key, which the test then reports).
std::optional<double> json_number(const std::string &json, const std::string &key) {
  std::smatch match;
  std::regex pattern("\"" + key + "\": (-?[0-9.]+|null)");
  if (!std::regex_search(json, match, pattern) || match[1] == "null") return std::nullopt;
  return std::stod(match[1]);
}

std::string json_string(const std::string &json, const std::string &key) {
  std::smatch match;
  std::regex pattern("\"" + key + "\": \"([^\"]*)\"");
  return std::regex_search(json, match, pattern) ? std::string(match[1]) : "";
}

size_t count(const std::string &text, const std::string &what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// A natprobe server on 127.0.0.1, on a port the kernel chose.
struct LoopbackServer {
  std::unique_ptr<Process> process;
  std::string endpoint;  // "127.0.0.1:PORT"

  // `listen`: 127.0.0.1:0, or [::]:0 (IPv4 clients then arrive v4-mapped).
  void start(const std::string &listen = "127.0.0.1:0") {
    process = std::make_unique<Process>(
        "server", Strings{command(), "natprobe", "server", "--listen", listen});
    ASSERT_TRUE(process->started());
    ASSERT_TRUE(process->wait_for_output("\n", kStartupTimeout)) << process->transcript();
    std::smatch match;
    std::regex listening("listening on (127\\.0\\.0\\.1|\\[::\\]):([0-9]+) ");
    ASSERT_TRUE(std::regex_search(process->out(), match, listening)) << process->transcript();
    endpoint = "127.0.0.1:" + match[2].str();
    // The line says what to run behind the NAT, with the port it listens on.
    ASSERT_NE(process->out().find("behind the NAT run: keepalive natprobe client THIS-HOST:" +
                                  match[2].str() + "\n"),
              std::string::npos)
        << process->transcript();
  }
};

// A TCP server on 127.0.0.1 that plays a peer other than natprobe's, one
// thread per connection; `serve` gets each accepted connection.
class FakeServer {
 public:
  explicit FakeServer(std::function<void(int fd)> serve) : serve_(std::move(serve)) {
    listener_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (bind(listener_, reinterpret_cast<sockaddr *>(&address), length) != 0 ||
        listen(listener_, 64) != 0 ||
        getsockname(listener_, reinterpret_cast<sockaddr *>(&address), &length) != 0) {
      return;
    }
    port_ = ntohs(address.sin_port);
    acceptor_ = std::thread([this] {
      for (;;) {
        int fd = accept(listener_, nullptr, nullptr);
        if (fd < 0 || stopping_) {
          if (fd >= 0) close(fd);
          return;
        }
        handlers_.emplace_back([this, fd] { serve_(fd); });
      }
    });
  }
  FakeServer(const FakeServer &) = delete;
  FakeServer &operator=(const FakeServer &) = delete;
  ~FakeServer() {
    stopping_ = true;
    shutdown(listener_, SHUT_RDWR);  // wakes accept()
    if (acceptor_.joinable()) acceptor_.join();
    for (std::thread &handler : handlers_) handler.join();  // each ends within seconds
    close(listener_);
  }

  std::string endpoint() const { return "127.0.0.1:" + std::to_string(port_); }
  bool listening() const { return port_ != 0; }

 private:
  std::function<void(int fd)> serve_;
  int listener_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  std::vector<std::thread> handlers_;
};

// Reads one line (without "\n") within `timeout` seconds; "" on EOF/timeout.
std::string read_line(int fd, double timeout) {
  std::string line;
  double deadline = cgnat_harness::now_s() + timeout;
  while (cgnat_harness::now_s() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    char c;
    if (read(fd, &c, 1) != 1) break;
    if (c == '\n') return line;
    line += c;
  }
  return line;
}

void send_text(int fd, const std::string &text) {
  ASSERT_EQ(send(fd, text.data(), text.size(), MSG_NOSIGNAL), static_cast<ssize_t>(text.size()));
}

// A natprobe server behind a path that resets every probe still idle after
// kResetAfter: it arms the probe, then wakes the client after its idle time,
// or resets the connection when that is kResetAfter or longer (closes it,
// with a FIN, when `close_instead`).
constexpr double kResetAfter = 1.5;
constexpr char kInstance[] = "00000000000000aa";  // the fake servers' instance
void serve_through_resetting_path(int fd, const std::string &instance = kInstance,
                                  bool close_instead = false) {
  // (Sent without checking: a client that ended its run is gone.)
  auto send_line = [fd](const std::string &line) {
    send(fd, line.data(), line.size(), MSG_NOSIGNAL);
  };
  send_line("KEEPALIVE-NATPROBE 2 " + instance + "\n");
  std::string request = read_line(fd, 5);
  long long idle_ms = request.rfind("IDLE ", 0) == 0 ? atoll(request.c_str() + 5) : 0;
  if (idle_ms > 0) {
    send_line("ARMED " + std::to_string(idle_ms) + "\n");
    bool reset = static_cast<double>(idle_ms) >= kResetAfter * 1000;
    usleep(static_cast<useconds_t>((reset ? kResetAfter * 1000 : static_cast<double>(idle_ms)) *
                                   1000));
    if (reset && !close_instead) {
      linger abort_now{1, 0};
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort_now, sizeof abort_now);
    } else if (!reset) {
      send_line("WAKE " + std::to_string(idle_ms) + "\n");
    }
  }
  close(fd);
}

// Runs `keepalive natprobe ARGS…` on this machine to its end.
struct ProbeRun {
  int status = -1;
  std::string out, err;
  double seconds = 0;
};
ProbeRun natprobe(const Strings &args, double timeout = 30) {
  Strings argv = {command(), "natprobe"};
  argv.insert(argv.end(), args.begin(), args.end());
  Process process("client", argv);
  ProbeRun run;
  run.status = process.wait_exit(timeout);
  run.out = process.out();
  run.err = process.err();
  run.seconds = process.run_time();
  return run;
}

class NatprobeLoopbackTest : public testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(cgnat_harness::env_or_empty("LIBKEEPALIVE_TEST_BINDIR").empty())
        << "LIBKEEPALIVE_TEST_BINDIR must be set (CTest sets it)";
    struct stat st {};
    ASSERT_EQ(stat(command().c_str(), &st), 0) << "the keepalive command is not built";
  }
};

class NatprobeCgnatTest : public testing::Test {
 protected:
  void SetUp() override {
    CGNAT_REQUIRE_OR_SKIP();
    struct stat st {};
    ASSERT_EQ(stat(command().c_str(), &st), 0) << "the keepalive command is not built";
    ASSERT_EQ(stat(cgnat_harness::library().c_str(), &st), 0)
        << "library not built: " << cgnat_harness::library();
  }

  // Measures through a NAT with timeout T; the client's run and the server's
  // log. `env` is given to both ends. `impair`, when given, runs once the
  // client has started (the path's impairments: see Impairment).
  // `prepare`, when given, runs before the server starts.
  void measure(const std::string &tag, int nat_timeout_s, const Strings &env,
               const Strings &client_args, ProbeRun *run, std::string *server_log,
               const std::function<void(const Nat &, Process *)> &impair = nullptr,
               const std::function<void(const Nat &)> &prepare = nullptr) {
    Nat nat(tag, nat_timeout_s);
    ASSERT_TRUE(nat.up()) << "cgnat up " << nat.name() << " failed:\n" << nat.up_output();
    if (prepare) {
      prepare(nat);
      if (HasFatalFailure()) return;
    }
    Process server(
        "server",
        nat.exec("s", env, {command(), "natprobe", "server", "--listen", kServerEndpoint}));
    ASSERT_TRUE(
        server.wait_for_output(std::string("listening on ") + kServerEndpoint, kStartupTimeout))
        << server.transcript();
    Strings args = {command(), "natprobe", "client", kServerEndpoint};
    args.insert(args.end(), client_args.begin(), client_args.end());
    Process client("client", nat.exec("c", env, args));
    if (impair) impair(nat, &client);
    run->status = client.wait_exit(kRunLimit + 20);
    run->out = client.out();
    run->err = client.err();
    run->seconds = client.run_time();
    server.signal(SIGTERM);
    server.wait_exit(kStartupTimeout);
    *server_log = server.transcript();
    ASSERT_NE(run->status, -1) << "the client did not finish\n" << client.transcript();
  }
};

// A server name with two addresses, ::1 first, whose server listens on
// 127.0.0.1 only: the client tries the next address when one refuses. The
// name is in the hosts file of a network namespace of the test's own (`ip
// netns exec` puts /etc/netns/NAME/hosts in place of /etc/hosts).
TEST_F(NatprobeCgnatTest, ClientTriesEachAddressOfTheServersName) {
  const std::string ns = "kanp-" + std::to_string(getpid()) + "-hosts";
  const std::string hosts_dir = "/etc/netns/" + ns;
  auto shell = [](const std::string &script) {
    return cgnat_harness::run_command({"/bin/sh", "-c", script});
  };
  struct Cleanup {
    std::function<void()> run;
    ~Cleanup() { run(); }
  } cleanup{[&] { shell("ip netns del " + ns + "; rm -rf " + hosts_dir); }};
  cgnat_harness::CommandResult setup =
      shell("ip netns add " + ns + " && ip -n " + ns + " link set lo up && mkdir -p " + hosts_dir +
            " && printf '::1 natprobe-server\\n127.0.0.1 natprobe-server\\n' > " + hosts_dir +
            "/hosts && ip netns exec " + ns + " getent ahosts natprobe-server");
  ASSERT_EQ(setup.status, 0) << setup.output;
  ASSERT_EQ(setup.output.rfind("::1 ", 0), 0u) << "::1 must come first:\n" << setup.output;
  auto in_ns = [&ns](Strings args) {
    args.insert(args.begin(), {"/sbin/ip", "netns", "exec", ns});
    return args;
  };
  Process server("server", in_ns({command(), "natprobe", "server", "--listen", "127.0.0.1:7201"}));
  ASSERT_TRUE(server.wait_for_output("listening on 127.0.0.1:7201", kStartupTimeout))
      << server.transcript();
  Process client("client", in_ns({command(), "natprobe", "client", "natprobe-server:7201", "--max",
                                  "1s", "--resolution", "1s", "--grace", "1s"}));
  EXPECT_EQ(client.wait_exit(30), 0) << client.transcript();
  EXPECT_NE(client.err().find("probing 127.0.0.1:7201 (protocol"), std::string::npos)
      << client.transcript();
  EXPECT_NE(client.out().find("No timeout up to --max 1s"), std::string::npos)
      << client.transcript();
}

// ---- through an impaired path -----------------------------------------------
// This kernel may lack netem: the impairments are nft rules in the NAT's
// namespace, in a chain that runs before conntrack (priority raw), so that a
// dropped packet is one the NAT never saw — loss or an outage between the
// client and the NAT, or between the NAT and the server.

class Impairment {
 public:
  explicit Impairment(const Nat &nat) : nat_(nat) {
    nft("add table ip impair");
    nft("add chain ip impair early { type filter hook prerouting priority raw; policy accept; }");
  }
  // Drops `percent` % of the packets both ways.
  void loss(int percent) {
    nft("add rule ip impair early numgen random mod 100 < " + std::to_string(percent) + " drop");
  }
  // Drops every packet both ways for `seconds`, then lets them pass again.
  void outage(double seconds) {
    nft("add rule ip impair early drop");
    usleep(static_cast<useconds_t>(seconds * 1e6));
    nft("flush chain ip impair early");
  }

 private:
  void nft(const std::string &command) {
    cgnat_harness::CommandResult result =
        cgnat_harness::run_command(nat_.exec("n", {}, {"nft", command}));
    EXPECT_EQ(result.status, 0) << "nft " << command << ": " << result.output;
  }
  const Nat &nat_;
};

// The client's JSON result, judged against the NAT's timeout T; one line
// for the table of impaired runs (KEEPALIVE_NATPROBE_TABLE).
struct Judged {
  std::optional<double> lower, upper, recommended, corrected_upper;
  bool contains_t = false;
};
Judged judge(const std::string &name, int nat_timeout_s, const ProbeRun &run) {
  Judged j;
  j.lower = json_number(run.out, "timeout_lower_s");
  j.upper = json_number(run.out, "timeout_upper_s");
  j.recommended = json_number(run.out, "recommended_idle_s");
  j.corrected_upper = json_number(run.out, "timeout_upper_bound_s");
  j.contains_t = j.lower && j.upper && *j.lower < nat_timeout_s && *j.upper >= nat_timeout_s;
  auto shown = [](const std::optional<double> &v) {
    return v ? std::to_string(*v).substr(0, std::to_string(*v).find('.') + 4) : std::string("-");
  };
  std::cout << "IMPAIRED | " << name << " | T=" << nat_timeout_s << "s | exit " << run.status
            << " | status " << json_string(run.out, "status") << " | bracket [" << shown(j.lower)
            << ", " << shown(j.upper) << "] | contains T: " << (j.contains_t ? "yes" : "no")
            << " | upper + round trip " << shown(j.corrected_upper) << " | recommendation "
            << shown(j.recommended) << " | " << std::fixed << std::setprecision(1) << run.seconds
            << " s\n";
  return j;
}

// Through the NAT of timeout T (whole seconds): the run completed, the
// bracket contains T and the recommendation stays under it.
void expect_measured(const Judged &j, const ProbeRun &run, const std::string &transcript) {
  EXPECT_EQ(run.status, 0) << transcript;
  EXPECT_EQ(json_string(run.out, "status"), "measured") << transcript;
  EXPECT_TRUE(j.contains_t) << transcript;
  ASSERT_TRUE(j.recommended && j.lower) << transcript;
  EXPECT_LT(*j.recommended, *j.lower) << transcript;
  EXPECT_NE(run.out.find("\"upper_confirmed\": true"), std::string::npos) << transcript;
  // The round trip the probes saw, and the upper bound corrected by it.
  auto round_trip = json_number(run.out, "round_trip_s");
  auto corrected = json_number(run.out, "timeout_upper_bound_s");
  ASSERT_TRUE(round_trip && corrected && j.upper) << transcript;
  EXPECT_NEAR(*corrected, *j.upper + *round_trip, 0.0015) << transcript;
}

// Eight connections at a time: the rounds these scenarios time their
// impairments by (round 1: 1s 1.426s 2.034s 2.901s 4.137s 5.9s 8.414s 12s).
const Strings kImpairedArgs = {"--max", "12s", "--resolution", "1s", "--parallel", "8", "--json"};

Strings impaired_args(const char *grace) {
  Strings args = kImpairedArgs;
  args.insert(args.end(), {"--grace", grace});
  return args;
}

// 20 % of the packets lost each way (SYNs, greetings, ARMED and WAKE lines,
// their ACKs): set-ups are retried, lines retransmitted within the grace
// period; the bracket is right.
TEST_F(NatprobeCgnatTest, LossBothWaysStillBracketsT) {
  constexpr int kT = 4;
  ProbeRun run;
  std::string server_log;
  ASSERT_NO_FATAL_FAILURE(measure("nploss", kT, {}, impaired_args("2s"), &run, &server_log,
                                  [](const Nat &nat, Process *) { Impairment(nat).loss(20); }));
  const std::string transcript = run.out + run.err + server_log;
  expect_measured(judge("loss 20% both ways", kT, run), run, transcript);
}

// A 12 s outage from 4.4 s into round 1 (after the line of its last
// survivor, 2.901 s; at T = 4 s the longer ones are lost anyway) until well
// into the next round: the probes of round 2 cannot be set up (no answer to
// the SYNs for 10 s) and are retried until the path is back.
TEST_F(NatprobeCgnatTest, OutageAtARoundBoundaryIsWaitedOut) {
  constexpr int kT = 4;
  ProbeRun run;
  std::string server_log;
  ASSERT_NO_FATAL_FAILURE(measure(
      "npgap", kT, {}, impaired_args("2s"), &run, &server_log, [](const Nat &nat, Process *client) {
        ASSERT_TRUE(client->wait_for_output("round 1: 8 probes:", 10, true))
            << client->transcript();
        double t0 = cgnat_harness::now_s();
        Impairment impairment(nat);
        cgnat_harness::sleep_until(t0 + 4.4);
        impairment.outage(12);
      }));
  const std::string transcript = run.out + run.err + server_log;
  expect_measured(judge("12 s outage at a round boundary", kT, run), run, transcript);
  // Waited out by the look at the server after round 1's losses, or by the
  // next round's set-ups.
  const bool looked_again = run.err.find(
                                "after the losses of round 1: no answer from the server "
                                "(cannot connect to ") != std::string::npos;
  const bool set_up_again = run.err.find(
                                "set-up failed (no answer to the connection within "
                                "10s); retrying") != std::string::npos;
  EXPECT_TRUE(looked_again || set_up_again) << transcript;
}

// T = 6 s. Round 1 probes 1 s ... 12 s from t0; an outage of 2.5 s from just
// before the 4.137 s probe's line is due loses that line: the NAT forgets
// the mapping meanwhile, the grace period passes. A loss at 4.137 s < T
// must not become the result: it is probed again (and survives).
TEST_F(NatprobeCgnatTest, OutageDuringAWakeUpLineIsNotTheResult) {
  constexpr int kT = 6;
  constexpr double kVictimS = 4.137;  // round 1 of --max 12s --resolution 1s --parallel 8
  ProbeRun run;
  std::string server_log;
  ASSERT_NO_FATAL_FAILURE(
      measure("npwake", kT, {}, impaired_args("1s"), &run, &server_log,
              [kVictimS](const Nat &nat, Process *client) {
                ASSERT_TRUE(client->wait_for_output("round 1: 8 probes:", 10, true))
                    << client->transcript();
                double t0 = cgnat_harness::now_s();
                ASSERT_NE(client->err().find(" 4.137s "), std::string::npos) << client->err();
                Impairment impairment(nat);
                cgnat_harness::sleep_until(t0 + kVictimS - 0.3);
                impairment.outage(2.5);
              }));
  const std::string transcript = run.out + run.err + server_log;
  expect_measured(judge("2.5 s outage during a wake-up line", kT, run), run, transcript);
  EXPECT_NE(run.err.find("4.137s lost: nothing arrived"), std::string::npos)
      << "the outage missed the line it was meant for\n"
      << transcript;
}

// The server 0.6 s from the NAT each way (`cgnat delay`: a 1.2 s round trip
// between them). The server counts the silence from when the client's ACK
// reaches it, the NAT from when it passed: the NAT sees 1.2 s more silence
// than asked for, so the 3 s probe is lost (4.2 s at the NAT) and the plain
// bracket [2 s, 3 s] misses T = 4 s — on the safe side. The report gives the
// round trip and the upper bound it allows, which contains T.
TEST_F(NatprobeCgnatTest, ServerFarFromTheNatIsAccountedFor) {
  constexpr int kT = 4;
  ProbeRun run;
  std::string server_log;
  std::unique_ptr<Process> bridge;
  ASSERT_NO_FATAL_FAILURE(measure(
      "npfar", kT, {}, {"--max", "8s", "--resolution", "1s", "--grace", "2s", "--json"}, &run,
      &server_log, nullptr, [&bridge](const Nat &nat) {
        bridge = std::make_unique<Process>(
            "bridge", Strings{cgnat_harness::harness(), "delay", nat.name(), "0.6"});
        ASSERT_TRUE(bridge->wait_for_output("bridging", kStartupTimeout)) << bridge->transcript();
      }));
  const std::string transcript = run.out + run.err + server_log;
  Judged j = judge("server 0.6 s from the NAT each way", kT, run);
  ASSERT_EQ(run.status, 0) << transcript;
  EXPECT_EQ(json_string(run.out, "status"), "measured") << transcript;
  auto round_trip = json_number(run.out, "round_trip_s");
  ASSERT_TRUE(round_trip && j.corrected_upper && j.lower && j.recommended) << transcript;
  EXPECT_GE(*round_trip, 1.2) << transcript;
  EXPECT_LT(*j.lower, kT) << transcript;
  EXPECT_GE(*j.corrected_upper, kT) << "the corrected upper bound must hold T\n" << transcript;
  EXPECT_LT(*j.recommended, *j.lower) << transcript;
  EXPECT_NE(run.out.find("\"upper_confirmed\": true"), std::string::npos) << transcript;
}

// ---- through the emulated CGNAT --------------------------------------------

// The time to the answer, against the target of about two silences as long
// as the timeout: printed, not asserted (the machine is shared).
void print_time_to_answer(int timeout_s, double seconds) {
  const double target = 2.5 * timeout_s + 6;
  std::cout << "natprobe time to the answer, T = " << timeout_s << " s (--max 60s --resolution 1s "
            << "--grace 1s, default --parallel): " << seconds << " s = " << seconds / timeout_s
            << " T; target 2.5 T + 6 s = " << target
            << " s: " << (seconds <= target ? "met" : "MISSED") << "\n";
}

const Strings kTimingArgs = {"--max", "60s", "--resolution", "1s", "--grace", "1s"};

TEST_F(NatprobeCgnatTest, Timeout6sIsBracketedWithin1s) {
  constexpr int kT = 6;
  ProbeRun run;
  std::string server_log;
  Strings args = kTimingArgs;
  args.push_back("--json");
  ASSERT_NO_FATAL_FAILURE(measure("np6", kT, {}, args, &run, &server_log));
  const std::string transcript = run.out + run.err + server_log;
  ASSERT_EQ(run.status, 0) << transcript;
  EXPECT_EQ(json_string(run.out, "status"), "measured") << transcript;
  auto lower = json_number(run.out, "timeout_lower_s");
  auto upper = json_number(run.out, "timeout_upper_s");
  auto recommended = json_number(run.out, "recommended_idle_s");
  ASSERT_TRUE(lower && upper && recommended) << transcript;
  EXPECT_LT(*lower, kT) << "an idle period of T or more survived the NAT\n" << transcript;
  EXPECT_GE(*upper, kT) << "an idle period shorter than T was lost\n" << transcript;
  EXPECT_LE(*upper - *lower, 1.0) << transcript;
  EXPECT_GE(*recommended, 1);
  EXPECT_LT(*recommended, *lower) << "the recommendation must stay under the lower bound";
  EXPECT_EQ(json_string(run.out, "systemd"),
            "Environment=KEEPALIVE_IDLE=" + std::to_string(std::lround(*recommended)));
  EXPECT_EQ(*json_number(run.out, "max_s"), 60);
  EXPECT_EQ(*json_number(run.out, "resolution_s"), 1);
  EXPECT_EQ(*json_number(run.out, "parallel"), 64);
  // Every trial was reported on stderr as it ended.
  size_t trials = count(run.out, "\"idle_s\":");
  EXPECT_GE(count(run.out, "\"survived\": true"), 1u) << transcript;
  EXPECT_GE(count(run.out, "\"survived\": false"), 1u) << transcript;
  EXPECT_EQ(count(run.err, " survived (") + count(run.err, " lost: "), trials) << run.err;
  EXPECT_LE(run.seconds, kRunLimit) << transcript;
  print_time_to_answer(kT, run.seconds);
  std::cout << "--- progress (stderr):\n" << run.err << "--- result (stdout):\n" << run.out;
}

// libkeepalive preloaded into both ends with KEEPALIVE_IDLE=1 would keep
// every mapping alive (a probe each second), and the NAT would seem to have
// no timeout, unless natprobe switches keepalive off on its connections.
TEST_F(NatprobeCgnatTest, Timeout10sIsBracketedWithin1sWithTheLibraryPreloaded) {
  constexpr int kT = 10;
  ProbeRun run;
  std::string server_log;
  Strings env = {"LD_PRELOAD=" + cgnat_harness::library(), "KEEPALIVE_IDLE=1",
                 "KEEPALIVE_LOG=debug"};
  ASSERT_NO_FATAL_FAILURE(measure("np10", kT, env, kTimingArgs, &run, &server_log));
  const std::string transcript = run.out + run.err + server_log;
  ASSERT_EQ(run.status, 0) << transcript;
  // The library was there and configured the probe connections.
  EXPECT_NE(run.err.find("libkeepalive: out fd="), std::string::npos) << transcript;
  EXPECT_NE(server_log.find("libkeepalive: in fd="), std::string::npos) << transcript;
  std::smatch bracket, line;
  ASSERT_TRUE(std::regex_search(run.out, bracket,
                                std::regex("Timeout between ([0-9.]+)s \\(.* and ([0-9.]+)s \\(")))
      << "no bracket in the report: did the preloaded library keep the mappings alive?\n"
      << transcript;
  double lower = std::stod(bracket[1]), upper = std::stod(bracket[2]);
  EXPECT_LT(lower, kT) << transcript;
  EXPECT_GE(upper, kT) << transcript;
  EXPECT_LE(upper - lower, 1.0) << transcript;
  ASSERT_TRUE(
      std::regex_search(run.out, line, std::regex("\nEnvironment=KEEPALIVE_IDLE=([0-9]+)\n")))
      << transcript;
  int recommended = std::stoi(line[1]);
  EXPECT_GE(recommended, 1);
  EXPECT_LT(recommended, lower);
  EXPECT_LE(run.seconds, kRunLimit) << transcript;
  print_time_to_answer(kT, run.seconds);
  std::cout << "libkeepalive preloaded:\n" << run.out;
}

// ---- on loopback: no NAT ----------------------------------------------------

TEST_F(NatprobeLoopbackTest, NoNatFindsNoTimeoutUpToMax) {
  LoopbackServer server;
  ASSERT_NO_FATAL_FAILURE(server.start());
  ProbeRun text =
      natprobe({"client", server.endpoint, "--max", "2s", "--resolution", "1s", "--grace", "1s"});
  ASSERT_EQ(text.status, 0) << text.out << text.err;
  // The round's line: its probes, and when it ends at the latest (the
  // longest idle period and the grace).
  EXPECT_NE(text.err.find("round 1: 2 probes: 1s 2s (ends within 3s)"), std::string::npos)
      << text.err;
  EXPECT_NE(text.out.find("No timeout up to --max 2s"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("No KEEPALIVE_IDLE recommendation"), std::string::npos) << text.out;
  EXPECT_EQ(text.out.find("Environment="), std::string::npos) << text.out;

  ProbeRun json = natprobe(
      {"client", server.endpoint, "--max", "1s", "--resolution", "1s", "--grace", "1s", "--json"});
  ASSERT_EQ(json.status, 0) << json.out << json.err;
  EXPECT_EQ(json_string(json.out, "status"), "no_timeout_up_to_max") << json.out;
  EXPECT_EQ(json_number(json.out, "timeout_lower_s"), 1.0) << json.out;
  EXPECT_NE(json.out.find("\"timeout_upper_s\": null"), std::string::npos) << json.out;
  EXPECT_NE(json.out.find("\"recommended_idle_s\": null"), std::string::npos) << json.out;
  EXPECT_EQ(count(json.out, "\"survived\": false"), 0u) << json.out;
  std::cout << text.out;
}

// A path that resets a connection when it forgets it (here: a fake server
// that resets every probe still idle after 1.5 s) — lost, and said so.
// The same with a FIN: lost as "closed", with no silence the server measured.
TEST_F(NatprobeLoopbackTest, ClosedByThePathCountsAsLost) {
  FakeServer fake([](int fd) { serve_through_resetting_path(fd, kInstance, true); });
  ASSERT_TRUE(fake.listening());
  ProbeRun run = natprobe(
      {"client", fake.endpoint(), "--max", "4s", "--resolution", "1s", "--grace", "1s", "--json"});
  ASSERT_EQ(run.status, 0) << run.out << run.err;
  EXPECT_EQ(json_string(run.out, "status"), "measured") << run.out;
  std::string compact = run.out;  // the JSON without its line breaks and indentation
  compact.erase(std::remove_if(compact.begin(), compact.end(), ::isspace), compact.end());
  EXPECT_GE(count(compact, "\"outcome\":\"closed\",\"server_silence_s\":null"), 1u) << run.out;
  EXPECT_EQ(count(compact, "\"outcome\":\"closed\",\"server_silence_s\":0"), 0u) << run.out;
  EXPECT_NE(run.err.find("lost: the connection was closed after"), std::string::npos) << run.err;
}

TEST_F(NatprobeLoopbackTest, ResetByThePathCountsAsLost) {
  FakeServer fake([](int fd) { serve_through_resetting_path(fd); });
  ASSERT_TRUE(fake.listening());
  ProbeRun run = natprobe(
      {"client", fake.endpoint(), "--max", "4s", "--resolution", "1s", "--grace", "1s", "--json"});
  ASSERT_EQ(run.status, 0) << run.out << run.err;
  EXPECT_EQ(json_string(run.out, "status"), "measured") << run.out;
  auto lower = json_number(run.out, "timeout_lower_s");
  auto upper = json_number(run.out, "timeout_upper_s");
  ASSERT_TRUE(lower && upper) << run.out;
  EXPECT_LT(*lower, kResetAfter);
  EXPECT_GE(*upper, kResetAfter);
  EXPECT_GE(count(run.out, "\"outcome\": \"reset\""), 1u) << run.out;
  EXPECT_NE(run.err.find("lost: the connection was reset after"), std::string::npos) << run.err;

  ProbeRun text =
      natprobe({"client", fake.endpoint(), "--max", "4s", "--resolution", "1s", "--grace", "1s"});
  ASSERT_EQ(text.status, 0) << text.out << text.err;
  EXPECT_NE(text.out.find("(reset)"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("reset or closed instead of staying silent, counted as lost"),
            std::string::npos)
      << text.out;
  std::cout << text.out;
}

// The server answers the first round, then closes every connection at
// once (a server restarting, a middlebox): each set-up fails and is retried
// with back-off, and after --give-up-after the client stops and says what
// it observed, with what was learned.
TEST_F(NatprobeLoopbackTest, ServerGoneBeforeAnyProbeEndsTheRunAfterGiveUpAfter) {
  // The server serves the client's first check of it, and then accepts every
  // connection and closes it at once: no probe can be set up, and nothing
  // was lost that could be a NAT's. Counted, not timed.
  std::atomic<int> accepted{0};
  FakeServer fake([&accepted](int fd) {
    if (accepted++ >= 1) {
      close(fd);
      return;
    }
    serve_through_resetting_path(fd);
  });
  ASSERT_TRUE(fake.listening());
  Process client("client", {command(), "natprobe", "client", fake.endpoint(), "--max", "4s",
                            "--resolution", "1s", "--grace", "1s", "--give-up-after", "10s"});
  EXPECT_EQ(client.wait_exit(30), 1) << client.transcript();
  const std::string &err = client.err();
  EXPECT_NE(err.find("round 1: 4 probes: 1s 2s 3s 4s"), std::string::npos) << err;
  EXPECT_NE(err.find("set-up failed (connected, but the connection closed before the greeting); "
                     "retrying in 1s"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("retrying in 8s"), std::string::npos) << "back-off\n" << err;
  std::smatch gave_up;
  ASSERT_TRUE(std::regex_search(
      err, gave_up,
      std::regex("lost contact with 127\\.0\\.0\\.1:[0-9]+: no probe could be set up for "
                 "([0-9]+)s \\(--give-up-after 10s; [0-9]+ attempts\\), the server last "
                 "answered [0-9]+s ago; the last attempt: connected, but the connection closed "
                 "before the greeting")))
      << err;
  EXPECT_GE(std::stoi(gave_up[1]), 10);
  EXPECT_EQ(client.out(), "") << "no probe finished: nothing to report";
  std::cout << "gave up after " << client.run_time() << " s:\n" << err;
}

// What a run reports when the server went away under its probes: the losses
// and what was seen, no bracket, no recommendation, exit 1.
void expect_no_nat_result(Process *client, const std::string &seen) {
  EXPECT_EQ(client->wait_exit(30), 1) << client->transcript();
  EXPECT_NE(client->err().find(seen), std::string::npos) << client->err();
  const std::string &out = client->out();
  EXPECT_NE(out.find("No timeout and no KEEPALIVE_IDLE recommendation: the server went away"),
            std::string::npos)
      << out;
  EXPECT_EQ(out.find("Recommended"), std::string::npos) << out;
  EXPECT_EQ(out.find("Environment="), std::string::npos) << out;
  EXPECT_EQ(out.find("Timeout between"), std::string::npos) << out;
}

TEST_F(NatprobeLoopbackTest, ServerKilledUnderItsProbesIsNotANat) {
  // The real server, stopped while the probes of round 1 are idle: SIGKILL
  // (the kernel ends their connections, which look like losses) or SIGTERM
  // (it tells them it is stopping).
  for (int signal_number : {SIGKILL, SIGTERM}) {
    SCOPED_TRACE(strsignal(signal_number));
    LoopbackServer server;
    ASSERT_NO_FATAL_FAILURE(server.start());
    Process client("client", {command(), "natprobe", "client", server.endpoint, "--max", "30s",
                              "--resolution", "1s", "--grace", "1s"});
    ASSERT_TRUE(client.wait_for_output("round 1: 1s survived", 10, true)) << client.transcript();
    server.process->signal(signal_number);
    expect_no_nat_result(
        &client, signal_number == SIGKILL
                     ? "the natprobe server at " + server.endpoint +
                           " no longer answers (cannot connect to " + server.endpoint +
                           ": Connection refused); the connections it held ended with it, not "
                           "by a NAT"
                     : "the natprobe server at " + server.endpoint + " said: server stopping");
  }
}

TEST_F(NatprobeLoopbackTest, ServerRestartedUnderItsProbesIsNotANat) {
  // A server that lost its probes' connections answers the client's look
  // after the round as a new instance (or already greets a probe as one).
  for (bool during_the_round : {false, true}) {
    SCOPED_TRACE(during_the_round ? "a probe greeted by the new instance" : "the look after");
    std::atomic<int> accepted{0};
    FakeServer fake([&accepted, during_the_round](int fd) {
      // 0: the first check; 1-4: round 1 (1 s survives, the others are
      // reset); 5: the look after it; 6 on: round 2.
      const int n = accepted++;
      const bool restarted = n >= (during_the_round ? 6 : 5);
      serve_through_resetting_path(fd, restarted ? "00000000000000bb" : kInstance);
    });
    ASSERT_TRUE(fake.listening());
    Process client("client", {command(), "natprobe", "client", fake.endpoint(), "--max", "4s",
                              "--resolution", "1s", "--grace", "1s", "--parallel", "4"});
    expect_no_nat_result(
        &client, during_the_round
                     ? "restarted during round 2 (instance 00000000000000aa, now "
                       "00000000000000bb): the connections it held ended with it, not by a NAT"
                     : "after the losses of round 1 the natprobe server at " + fake.endpoint() +
                           " answers as a new instance (00000000000000bb, was "
                           "00000000000000aa): it restarted");
  }
}

TEST_F(NatprobeLoopbackTest, UnreachableServerFailsClearly) {
  // A port nobody listens on: bound, then closed.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr *>(&address), length), 0);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr *>(&address), &length), 0);
  close(fd);
  std::string endpoint = "127.0.0.1:" + std::to_string(ntohs(address.sin_port));
  for (bool json : {false, true}) {
    Strings args = {"client", endpoint, "--max", "10s", "--resolution", "1s"};
    if (json) args.push_back("--json");
    ProbeRun run = natprobe(args);
    EXPECT_EQ(run.status, 1) << run.err;
    EXPECT_EQ(run.err,
              "keepalive natprobe: cannot connect to " + endpoint + ": Connection refused\n");
    EXPECT_EQ(run.out, "") << "nothing was learned: no report";
  }
}

// Something other than a natprobe server of this version answers.
TEST_F(NatprobeLoopbackTest, ForeignPeerIsNamed) {
  struct Case {
    const char *greeting;     // sent on accept
    const char *idle_answer;  // sent in answer to the IDLE line, or nullptr
    const char *expected;     // in the client's error
  };
  const Case cases[] = {
      {"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", nullptr,
       "is not a keepalive natprobe server: it sent \"SSH-2.0-OpenSSH_9.2p1 Debian-2\\r\""},
      {"KEEPALIVE-NATPROBE 1\n", nullptr,
       "speaks natprobe protocol version 1, this keepalive speaks version 2"},
      {"KEEPALIVE-NATPROBE 2\n", nullptr,
       "sent a natprobe greeting without the server's instance: \"KEEPALIVE-NATPROBE 2\""},
      {"", nullptr, "closed the connection without a natprobe greeting"},
      {"ERROR busy: 256 probes are running already\n", nullptr,
       "refused: busy: 256 probes are running already"},
      {"KEEPALIVE-NATPROBE 2 ab\n", "HTTP/1.1 400 Bad Request\r\n",
       "broke the natprobe protocol: it sent \"HTTP/1.1 400 Bad Request\\r\""},
  };
  for (const Case &c : cases) {
    FakeServer fake([&c](int fd) {
      send(fd, c.greeting, strlen(c.greeting), MSG_NOSIGNAL);
      if (c.idle_answer != nullptr && !read_line(fd, 5).empty()) {
        send(fd, c.idle_answer, strlen(c.idle_answer), MSG_NOSIGNAL);
        read_line(fd, 1);  // until the client gives up
      }
      close(fd);
    });
    ASSERT_TRUE(fake.listening());
    ProbeRun run = natprobe({"client", fake.endpoint(), "--max", "10s", "--resolution", "1s"});
    EXPECT_EQ(run.status, 1) << c.greeting << "\n" << run.err;
    EXPECT_NE(run.err.find(c.expected), std::string::npos) << run.err;
    EXPECT_EQ(run.out, "");
  }
}

TEST_F(NatprobeLoopbackTest, InterruptPrintsWhatWasLearned) {
  LoopbackServer server;
  ASSERT_NO_FATAL_FAILURE(server.start());
  Process client("client", {command(), "natprobe", "client", server.endpoint, "--max", "1m",
                            "--resolution", "1s", "--grace", "1s"});
  ASSERT_TRUE(client.wait_for_output("round 1: 1s survived", 10, true)) << client.transcript();
  client.signal(SIGINT);
  EXPECT_EQ(client.wait_exit(5), 130) << client.transcript();
  EXPECT_NE(client.out().find("Interrupted: this is what was learned so far."), std::string::npos)
      << client.out();
  EXPECT_NE(client.out().find("  survived   1s"), std::string::npos) << client.out();
  EXPECT_NE(client.out().find("No loss yet: the timeout is longer than"), std::string::npos)
      << client.out();
  // The probes still waiting were closed: the server hears of them at once.
  EXPECT_TRUE(server.process->wait_for_output("ECONNRESET after", 5))
      << server.process->transcript();
}

// Refused and said so, naming the client as it is: an IPv4 client of a
// server listening on [::] too.
TEST_F(NatprobeLoopbackTest, ServerRefusesAForeignRequest) {
  for (const char *listen : {"127.0.0.1:0", "[::]:0"}) {
    SCOPED_TRACE(listen);
    LoopbackServer server;
    ASSERT_NO_FATAL_FAILURE(server.start(listen));
    std::string port = server.endpoint.substr(server.endpoint.find(':') + 1);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(static_cast<uint16_t>(std::stoi(port)));
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr *>(&address), sizeof address), 0);
    sockaddr_in local{};
    socklen_t length = sizeof local;
    ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr *>(&local), &length), 0);
    const std::string greeting = read_line(fd, 5);
    EXPECT_TRUE(std::regex_match(greeting, std::regex("KEEPALIVE-NATPROBE 2 [0-9a-f]{16}")))
        << greeting;
    send_text(fd, "GET / HTTP/1.0\r\n\r\n");
    EXPECT_EQ(read_line(fd, 5), "ERROR expected IDLE <milliseconds> (got \"GET / HTTP/1.0\\r\")");
    char byte;
    EXPECT_EQ(read(fd, &byte, 1), 0) << "the server should close after its ERROR line";
    close(fd);
    std::string client = "127.0.0.1:" + std::to_string(ntohs(local.sin_port));
    EXPECT_TRUE(server.process->wait_for_output(client + ": refused: expected IDLE", 5))
        << server.process->transcript();
  }
}

// SIGTERM (systemd's stop) and SIGINT (Ctrl-C) end a server that waits for
// probes as it should: said so, exit 0, no error.
TEST_F(NatprobeLoopbackTest, ServerStopsOnSigtermAndSigint) {
  for (auto [signal_number, name] : {std::pair{SIGTERM, "Terminated"}, {SIGINT, "Interrupt"}}) {
    SCOPED_TRACE(name);
    LoopbackServer server;
    ASSERT_NO_FATAL_FAILURE(server.start());
    server.process->signal(signal_number);
    EXPECT_EQ(server.process->wait_exit(kStartupTimeout), 0) << server.process->transcript();
    std::string transcript = server.process->transcript();
    EXPECT_NE(transcript.find(std::string("keepalive natprobe server: stopped (") + name + ")"),
              std::string::npos)
        << transcript;
    EXPECT_EQ(transcript.find("poll:"), std::string::npos) << transcript;
  }
}

TEST_F(NatprobeLoopbackTest, UsageErrorsExit2) {
  struct Case {
    Strings args;
    const char *expected;
  };
  const Case cases[] = {
      {{}, "expected server or client"},
      {{"probe"}, "unknown mode 'probe'"},
      {{"client"}, "client needs the server's HOST:PORT"},
      {{"client", "h:7200", "--max", "abc"}, "--max abc: expected a duration"},
      {{"client", "h:7200", "--resolution", "500ms"}, "--resolution 500ms: must be from 1s to 24h"},
      {{"client", "h:7200", "--max", "5s"}, "--resolution 10s is longer than --max 5s"},
      {{"client", "h:7200", "--parallel", "0"}, "--parallel 0: expected a number from 1 to 128"},
      {{"client", "h:7200", "--grace"}, "--grace needs a value"},
      {{"client", "h:7200", "--bogus"}, "unknown option --bogus"},
      {{"client", "2001:db8::1:7200"}, "write an IPv6 address in brackets"},
      {{"client", "h"}, "expected HOST:PORT"},
      {{"client", "h:0"}, "h:0: the port must be a number from 1 to 65535"},
      {{"client", "h:70000"}, "h:70000: the port must be a number from 1 to 65535"},
      {{"client", "h:72x"}, "h:72x: the port must be a number from 1 to 65535"},
      {{"client", ":7200"}, ":7200: expected HOST:PORT with a host"},
      {{"client", "h:7200", "--give-up-after", "9999999h"},
       "--give-up-after 9999999h: must be from 10s to 24h, in whole milliseconds"},
      {{"client", "h:7200", "--max", "1.0005s"},
       "--max 1.0005s: must be from 1s to 24h, in whole milliseconds"},
      {{"server", "--listen", "7200"}, "--listen 7200: expected HOST:PORT"},
      {{"server", "--listen", "999.1.1.1:7200"},
       "--listen 999.1.1.1:7200: expected a numeric address"},
      {{"server", "--listen", "0.0.0.0:70000"}, "the port must be a number from 0 to 65535"},
      {{"server", "--listen", "0.0.0.0:http"}, "the port must be a number from 0 to 65535"},
      {{"server", "extra"}, "unexpected argument extra"},
  };
  for (const Case &c : cases) {
    ProbeRun run = natprobe(c.args);
    std::string shown;
    for (const auto &arg : c.args) shown += arg + " ";
    EXPECT_EQ(run.status, 2) << shown << run.err;
    EXPECT_NE(run.err.find(c.expected), std::string::npos) << shown << run.err;
  }
  ProbeRun help = natprobe({"--help"});
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.out.find("Usage: keepalive natprobe server"), std::string::npos);
}

}  // namespace
