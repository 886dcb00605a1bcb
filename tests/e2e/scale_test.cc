// scale_test.cc — the scale scenario: 10 000 idle connections from the
// client namespace to one server (scale_server) through the emulated
// carrier-grade NAT of tests/e2e/cgnat, which forgets a mapping after
// T = 3 s of silence. Half of them go to port 5222, half to 5223. After 8 s
// of silence the server writes a short message on every connection and
// scale_client counts, per port, how many arrive within 2 s.
//
//  - With the library (KEEPALIVE_IDLE=1, KEEPALIVE_RULES="in port=5223 off"),
//    every message on 5222 arrives; the `off` port 5223 is the control of
//    the same run and loses (nearly) all of its messages.
//  - Without the library (same scenario, nothing preloaded), (nearly) all
//    10 000 are lost.
//
// nftables counters in the NAT namespace count the keepalive traffic that
// crosses the NAT: pure ACKs without data from the server (the probes) and
// from the clients (their answers), per server port, over a window of the
// silence; and the server's packets the NAT dropped because it had
// forgotten their mapping. Each run prints the server's memory (Rss and
// Private_Dirty of smaps_rollup) and how long it took.
//
// Prerequisites, skipping and cleanup as in e2e_test.cc (cgnat_harness.h).
#include <gtest/gtest.h>
#include <signal.h>

#include <cmath>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>

#include "cgnat_harness.h"

namespace {

using cgnat_harness::CommandResult;
using cgnat_harness::Event;
using cgnat_harness::kNatTimeout;
using cgnat_harness::kServerAddress;
using cgnat_harness::kStartupTimeout;
using cgnat_harness::Nat;
using cgnat_harness::now_s;
using cgnat_harness::Process;
using cgnat_harness::program;
using cgnat_harness::run_command;
using cgnat_harness::seconds;
using cgnat_harness::sleep_until;
using cgnat_harness::Strings;
using cgnat_harness::with_library;

constexpr long kPerPort = 5000;        // connections to each server port
constexpr long kTotal = 2 * kPerPort;  // ... and in all
constexpr int kConfiguredPort = 5222;
constexpr int kOffPort = 5223;       // KEEPALIVE_RULES turns this one off
constexpr double kSilence = 8;       // the server writes after 8 s > 2T of silence
constexpr double kDeliveryWait = 2;  // delivery takes milliseconds: 2 s is ample
constexpr double kConnectWithin = 30;
// The counting window ends this long before the server writes, so that the
// message and its acknowledgement are not counted.
constexpr double kWindowMargin = 1;
// At most this share of the messages of an unprotected connection may
// arrive: with the NAT's mapping gone, none can.
constexpr double kLostShare = 0.10;

// How often a configured connection's keepalive exchange crosses the NAT.
// IDLE = 1 s and, by the library's rule, INTVL = IDLE. The kernel sends the
// next probe only when it has heard nothing for IDLE (measured in jiffies:
// up to one jiffy, 10 ms at HZ=100, short), and the answer to the previous
// probe came an RTT after it: no two probes closer than kPeriodMin. The
// keepalive timer is a timer-wheel timer: it fires late by at most its
// level's granularity, 8/63 of the timeout (12.7 %); if it fires before
// IDLE has passed since the answer, it re-arms for the rest (≤ RTT + one
// jiffy). So no two probes further apart than IDLE·(1 + 8/63) plus 10 ms,
// plus 10 ms for the RTT and for the timer softirq to run under load.
constexpr double kIdle = 1;
constexpr double kPeriodMin = kIdle - 0.010;
constexpr double kPeriodMax = kIdle * (1 + 8.0 / 63) + 0.010 + 0.010;

std::string endpoint(int port) { return std::string(kServerAddress) + ":" + std::to_string(port); }

// The nftables table of counters in the NAT namespace, per server port:
// probes_PORT and acks_PORT count the pure ACKs without data (IP length =
// 20 + 4·TCP data offset: Linux sends no IP options) that the NAT forwarded
// from the server and from the clients, after `ct state invalid drop`;
// dropped_PORT the server's packets conntrack calls invalid on their way
// to the NAT's own address: those whose mapping the NAT had forgotten.
std::string counting_table() {
  std::string counters, counted, dropped, bare;
  for (int port : {kConfiguredPort, kOffPort}) {
    std::string p = std::to_string(port), from = std::string("ip saddr ") + kServerAddress;
    for (const char *name : {"probes_", "acks_", "dropped_"})
      counters += "  counter " + std::string(name) + p + " {\n  }\n";
    counted += "    " + from + " tcp sport " + p + " counter name probes_" + p + "\n";
    counted += "    ip daddr " + std::string(kServerAddress) + " tcp dport " + p +
               " counter name acks_" + p + "\n";
    dropped +=
        "    " + from + " tcp sport " + p + " ct state invalid counter name dropped_" + p + "\n";
  }
  for (int doff = 5; doff <= 15; ++doff)
    bare += "    ip length " + std::to_string(20 + 4 * doff) + " tcp doff " + std::to_string(doff) +
            " goto counted\n";
  return "add table ip scale {\n" + counters +
         "  chain crossing {\n"
         "    type filter hook forward priority filter + 10; policy accept;\n"
         "    ip hdrlength 5 tcp flags & (fin|syn|rst|psh|ack) == ack goto bare\n"
         "  }\n"
         "  chain bare {\n" +
         bare +
         "  }\n"
         "  chain counted {\n" +
         counted +
         "  }\n"
         "  chain forgotten {\n"
         "    type filter hook input priority filter - 10; policy accept;\n" +
         dropped +
         "  }\n"
         "}\n";
}

// The counters' packets at one moment, read between `before` and `after`.
struct Counters {
  std::map<std::string, long> packets;
  double before = 0, after = 0;
  long operator()(const char *name, int port) const {
    auto it = packets.find(name + std::to_string(port));
    return it == packets.end() ? -1 : it->second;
  }
};

// Parses `nft list counters`: "counter NAME {" then "packets N bytes M".
Counters read_counters(const Nat &nat) {
  Counters counters;
  counters.before = now_s();
  CommandResult listed =
      run_command(nat.exec("n", {}, {"nft", "list", "counters", "table", "ip", "scale"}));
  counters.after = now_s();
  std::istringstream lines(listed.output);
  std::string name;
  for (std::string word; lines >> word;) {
    if (word == "counter") lines >> name;
    if (word == "packets") lines >> counters.packets[name];
  }
  return counters;
}

// One run of the scenario, in its own NAT.
struct ScaleRun {
  std::unique_ptr<Nat> nat;  // declared first: destroyed after the peers
  std::unique_ptr<Process> server, client;
  Counters window_start, window_end, end;
  double connect_seconds = 0, scenario_seconds = 0;

  std::string transcript() const {
    return (server ? server->transcript() : "") + (client ? client->transcript() : "");
  }

  // The report line NAME of `peer` with port=PORT (or the first NAME when
  // port is 0); an empty event when there is none.
  static Event event(const Process &peer, const char *name, int port = 0) {
    std::istringstream lines(peer.out());
    for (std::string line; std::getline(lines, line);) {
      Event event = Event::parse(line);
      if (event.name == name && (port == 0 || event["port"] == std::to_string(port))) return event;
    }
    return {};
  }
  long server_number(const char *name, int port, const char *key) const {
    return static_cast<long>(event(*server, name, port).number(key));
  }
  long received(int port) const {
    return static_cast<long>(event(*client, "messages", port).number("received"));
  }
};

void run_scale(const std::string &tag, const Strings &server_env, ScaleRun *r) {
  double started = now_s();
  r->nat = std::make_unique<Nat>(tag, kNatTimeout);
  ASSERT_TRUE(r->nat->up()) << "cgnat up " << r->nat->name() << " failed:\n" << r->nat->up_output();
  // The NAT needs one conntrack entry per connection; the limit is the
  // host's (it cannot be raised inside a namespace).
  CommandResult max =
      run_command(r->nat->exec("n", {}, {"cat", "/proc/sys/net/netfilter/nf_conntrack_max"}));
  ASSERT_GE(atol(max.output.c_str()), kTotal + 1000)
      << "net.netfilter.nf_conntrack_max is too small for " << kTotal << " connections";
  CommandResult table = run_command(r->nat->exec("n", {}, {"nft", counting_table()}));
  ASSERT_EQ(table.status, 0) << "cannot load the counters:\n" << table.output << counting_table();

  r->server = std::make_unique<Process>(
      tag + " server",
      r->nat->exec("s", server_env,
                   {program("scale_server"), "--listen", endpoint(kConfiguredPort), "--listen",
                    endpoint(kOffPort), "--connections", std::to_string(kTotal), "--send-after",
                    seconds(kSilence), "--watch", seconds(kDeliveryWait), "--accept-within",
                    seconds(kConnectWithin)}));
  ASSERT_TRUE(r->server->started());
  ASSERT_TRUE(
      r->server->wait_for_output("listening address=" + endpoint(kOffPort), kStartupTimeout))
      << r->transcript();

  // The client waits for SIGUSR1 below; --wait only bounds it if the test
  // goes away.
  r->client = std::make_unique<Process>(
      tag + " client",
      r->nat->exec(
          "c", {},
          {program("scale_client"), "--connect", endpoint(kConfiguredPort), "--connect",
           endpoint(kOffPort), "--connections", std::to_string(kPerPort), "--wait",
           seconds(kSilence + kDeliveryWait + 30), "--connect-within", seconds(kConnectWithin)}));
  ASSERT_TRUE(r->client->started());
  auto accepted =
      r->server->wait_for_event({"all_accepted", "error"}, kConnectWithin + kStartupTimeout);
  ASSERT_TRUE(accepted && accepted->name == "all_accepted")
      << "the server did not get its " << kTotal << " connections\n"
      << r->transcript();
  double silent_since = now_s();  // the server writes kSilence after its last accept
  r->connect_seconds = accepted->number("seconds");

  r->window_start = read_counters(*r->nat);
  sleep_until(silent_since + kSilence - kWindowMargin);
  r->window_end = read_counters(*r->nat);
  auto sent = r->server->wait_for_event({"message_sent", "error"}, kWindowMargin + kStartupTimeout);
  ASSERT_TRUE(sent && sent->name == "message_sent") << r->transcript();
  ASSERT_GE(sent->number("silence_min"), kSilence) << r->transcript();
  // Both clocks are CLOCK_MONOTONIC: the window closed before the first write.
  ASSERT_LT(r->window_end.after, sent->number("written_at")) << r->transcript();

  sleep_until(now_s() + kDeliveryWait);
  r->client->signal(SIGUSR1);  // count now
  ASSERT_EQ(r->client->wait_exit(kStartupTimeout), 0) << r->transcript();
  ASSERT_EQ(r->server->wait_exit(kDeliveryWait + kStartupTimeout), 0) << r->transcript();
  r->end = read_counters(*r->nat);
  r->scenario_seconds = now_s() - started;
  // Every connection was counted on both sides (else "0 received" would
  // prove nothing).
  for (int port : {kConfiguredPort, kOffPort}) {
    ASSERT_EQ(ScaleRun::event(*r->client, "messages", port).number("connections"), kPerPort)
        << r->transcript();
    ASSERT_EQ(r->server_number("delivery", port, "connections"), kPerPort) << r->transcript();
  }
}

// Probes and answers of one port in the window, and the bounds the
// physics above allows for `connections` configured connections: with
// consecutive probes kPeriodMin to kPeriodMax apart, a window of W seconds
// holds at least ⌊W / kPeriodMax⌋ and at most ⌊W / kPeriodMin⌋ + 1 probes
// of each connection, and as many answers (each follows its probe by an
// RTT).
struct Window {
  long probes, acks;
  double shortest, longest;  // the window, allowing for the time nft took
  long low(long connections) const {
    return connections * static_cast<long>(std::floor(shortest / kPeriodMax));
  }
  long high(long connections) const {
    return connections * (static_cast<long>(std::floor(longest / kPeriodMin)) + 1);
  }
  double rate(long connections) const {
    return static_cast<double>(probes) / static_cast<double>(connections) /
           ((shortest + longest) / 2);
  }
};

Window window(const ScaleRun &r, int port) {
  return {r.window_end("probes_", port) - r.window_start("probes_", port),
          r.window_end("acks_", port) - r.window_start("acks_", port),
          r.window_end.before - r.window_start.after, r.window_end.after - r.window_start.before};
}

std::string memory(const ScaleRun &r) {
  Event memory = ScaleRun::event(*r.server, "memory");
  return "Rss " + memory["rss_kb"] + " kB, Private_Dirty " + memory["private_dirty_kb"] + " kB";
}

// ---------------------------------------------------------------------------

class ScaleTest : public cgnat_harness::LibraryCgnatTest {};

// With the library: every message on the configured port arrives, its
// connections exchange about one probe and one answer per second, and the
// `off` port, the control of the same run, is silent and loses its
// messages.
TEST_F(ScaleTest, WithIdle1EveryMessageArrivesExceptOnTheOffPort) {
  ScaleRun r;
  ASSERT_NO_FATAL_FAILURE(
      run_scale("scale",
                with_library({"KEEPALIVE_IDLE=" + seconds(kIdle, 0),
                              "KEEPALIVE_RULES=in port=" + std::to_string(kOffPort) + " off"}),
                &r));
  ASSERT_EQ(ScaleRun::event(*r.server, "start")["libkeepalive_loaded"], "1") << r.transcript();
  Event on = ScaleRun::event(*r.server, "accepted", kConfiguredPort);
  Event off = ScaleRun::event(*r.server, "accepted", kOffPort);
  EXPECT_EQ(on.number("count"), kPerPort) << r.transcript();
  EXPECT_EQ(on.number("keepalive_on"), kPerPort) << r.transcript();
  EXPECT_EQ(on["keepidle"], "1");
  EXPECT_EQ(on["keepintvl"], "1");
  EXPECT_EQ(off.number("keepalive_on"), 0) << r.transcript();

  long lost_off = kPerPort - r.received(kOffPort);
  EXPECT_EQ(r.received(kConfiguredPort), kPerPort) << r.transcript();
  EXPECT_EQ(r.server_number("delivery", kConfiguredPort, "acked"), kPerPort) << r.transcript();
  EXPECT_LT(r.received(kOffPort), kLostShare * kPerPort)
      << "the off port's connections have no keepalive: the NAT must forget them\n"
      << r.transcript();
  // Lost at the NAT, not elsewhere: it dropped each lost message at least once.
  EXPECT_GE(r.end("dropped_", kOffPort), lost_off);

  Window configured = window(r, kConfiguredPort), control = window(r, kOffPort);
  EXPECT_GE(configured.probes, configured.low(kPerPort));
  EXPECT_LE(configured.probes, configured.high(kPerPort));
  EXPECT_GE(configured.acks, configured.low(kPerPort));
  EXPECT_LE(configured.acks, configured.high(kPerPort));
  EXPECT_EQ(control.probes, 0);
  EXPECT_EQ(control.acks, 0);

  std::cout << "scale with libkeepalive (IDLE=" << kIdle << ", port " << kOffPort << " off), "
            << kTotal << " connections through a NAT with T=" << kNatTimeout << " s:\n"
            << "  connected in " << seconds(r.connect_seconds, 2) << " s; server memory "
            << memory(r) << "\n"
            << "  after " << seconds(kSilence) << " s of silence, messages received: port "
            << kConfiguredPort << " " << r.received(kConfiguredPort) << "/" << kPerPort << ", port "
            << kOffPort << " (off) " << r.received(kOffPort) << "/" << kPerPort
            << " (the NAT dropped " << r.end("dropped_", kOffPort) << " of its packets)\n"
            << "  in a window of " << seconds(configured.shortest, 2) << "–"
            << seconds(configured.longest, 2) << " s the NAT forwarded: port " << kConfiguredPort
            << " " << configured.probes << " probes, " << configured.acks << " answers ("
            << seconds(configured.rate(kPerPort), 3) << " per connection per second; bounds "
            << configured.low(kPerPort) << "–" << configured.high(kPerPort) << "), port "
            << kOffPort << " " << control.probes << " probes, " << control.acks << " answers\n"
            << "  scenario time " << seconds(r.scenario_seconds) << " s\n";
}

// Without the library, the same scenario: the NAT forgets every idle
// connection and (nearly) all messages are lost. Were they delivered, the
// emulation would be broken and the test above would prove nothing.
TEST_F(ScaleTest, WithoutTheLibraryTheMessagesAreLost) {
  ScaleRun r;
  ASSERT_NO_FATAL_FAILURE(run_scale("scalebase", {}, &r));
  ASSERT_EQ(ScaleRun::event(*r.server, "start")["libkeepalive_loaded"], "0") << r.transcript();
  long received = r.received(kConfiguredPort) + r.received(kOffPort);
  EXPECT_LT(received, kLostShare * kTotal) << r.transcript();
  for (int port : {kConfiguredPort, kOffPort}) {
    EXPECT_EQ(r.server_number("accepted", port, "keepalive_on"), 0) << r.transcript();
    EXPECT_EQ(window(r, port).probes, 0);
    EXPECT_GE(r.end("dropped_", port), kPerPort - r.received(port));
  }
  std::cout << "scale without libkeepalive, " << kTotal
            << " connections through a NAT with T=" << kNatTimeout << " s:\n"
            << "  connected in " << seconds(r.connect_seconds, 2) << " s; server memory "
            << memory(r) << "\n"
            << "  after " << seconds(kSilence) << " s of silence, messages received: " << received
            << "/" << kTotal << " (" << seconds(100.0 * static_cast<double>(received) / kTotal, 1)
            << " %; the NAT dropped "
            << r.end("dropped_", kConfiguredPort) + r.end("dropped_", kOffPort)
            << " of the server's packets)\n"
            << "  keepalive probes in the window: "
            << window(r, kConfiguredPort).probes + window(r, kOffPort).probes << "\n"
            << "  scenario time " << seconds(r.scenario_seconds) << " s\n";
}

}  // namespace
