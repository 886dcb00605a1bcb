// e2e_test.cc — the six end-to-end scenarios: real TCP connections
// between e2e_client (the phone) and e2e_server (the XMPP server) through the
// emulated carrier-grade NAT of tests/e2e/cgnat, with and without
// libkeepalive preloaded.
//
// Prerequisites (root, ip, nft, namespaces allowed) are judged by
// `cgnat check`: when one is missing each test is skipped with the reason,
// or fails when LIBKEEPALIVE_E2E_REQUIRED=1. Namespaces are named after this
// process (kanat-<pid>-<tag>) and removed on every exit path: by the Nat
// guard's destructor (also on a failed assertion or an exception), by the
// SIGINT/SIGTERM/SIGHUP handler, and, after a SIGKILL, by the `cgnat sweep`
// each test starts with (all from cgnat_harness.h).
#include <gtest/gtest.h>

#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "cgnat_harness.h"

namespace cgnat_harness {
namespace {

// One client–server connection through its own NAT.
struct Connection {
  std::unique_ptr<Nat> nat;  // declared first: destroyed after the peers
  std::unique_ptr<Process> server, client;
  std::optional<Event> server_start, accepted, client_start, connected;

  std::string transcript() const {
    return (server ? server->transcript() : "") + (client ? client->transcript() : "");
  }
};

// Brings up a NAT, starts the server (with `server_args` after --listen) and
// the client, and waits until they exchanged hello and welcome.
void connect(const std::string &tag, const Strings &server_env, const Strings &server_args,
             const Strings &client_env, double client_wait, Connection *c) {
  c->nat = std::make_unique<Nat>(tag, kNatTimeout);
  ASSERT_TRUE(c->nat->up()) << "cgnat up " << c->nat->name() << " failed:\n" << c->nat->up_output();
  Strings server = {program("e2e_server"), "--listen", kServerEndpoint};
  server.insert(server.end(), server_args.begin(), server_args.end());
  c->server = std::make_unique<Process>(tag + " server", c->nat->exec("s", server_env, server));
  ASSERT_TRUE(c->server->started());
  ASSERT_TRUE(c->server->wait_for_event({"listening"}, kStartupTimeout)) << c->transcript();

  c->client = std::make_unique<Process>(
      tag + " client", c->nat->exec("c", client_env,
                                    {program("e2e_client"), "--connect", kServerEndpoint, "--wait",
                                     seconds(client_wait)}));
  ASSERT_TRUE(c->client->started());
  ASSERT_TRUE(c->client->wait_for_event({"welcome_received"}, kStartupTimeout)) << c->transcript();
  ASSERT_TRUE(c->server->wait_for_event({"welcome_sent"}, kStartupTimeout)) << c->transcript();
  c->server_start = c->server->find_event("start");
  c->accepted = c->server->find_event("accepted");
  c->client_start = c->client->find_event("start");
  c->connected = c->client->find_event("connected");
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
  auto verdict = c->client->wait_for_event(
      {"message_received", "nothing_received", "read_error", "peer_closed", "error"},
      kClientWait + kStartupTimeout);
  ASSERT_TRUE(verdict) << "the client reported no outcome\n" << c->transcript();
  auto message_sent = c->server->wait_for_event({"message_sent"}, kStartupTimeout);
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

class CgnatTest : public LibraryCgnatTest {};

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

  auto failed = with.server->wait_for_event({"read_error", "still_open", "peer_closed", "error"},
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

  auto control = without.server->wait_for_event(
      {"read_error", "still_open", "peer_closed", "error"}, kControlWatch + kStartupTimeout);
  ASSERT_TRUE(control) << without.transcript();
  ASSERT_EQ(control->name, "still_open") << without.transcript();
  EXPECT_EQ((*control)["state"], "ESTABLISHED");
  std::string ss = connection_sockets(*without.nat, "s");
  EXPECT_NE(ss.find(kServerEndpoint), std::string::npos) << ss;
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

  auto sent = with.server->wait_for_event({"message_sent"}, kSendAfter + kStartupTimeout);
  ASSERT_TRUE(sent) << with.transcript();
  auto failed = with.server->wait_for_event({"read_error", "still_open", "peer_closed", "error"},
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

  auto control =
      without.server->wait_for_event({"read_error", "still_open", "peer_closed", "error"},
                                     kSendAfter + kControlWatch + kStartupTimeout);
  ASSERT_TRUE(control) << without.transcript();
  ASSERT_EQ(control->name, "still_open") << without.transcript();
  EXPECT_EQ((*control)["state"], "ESTABLISHED");
  EXPECT_GE(control->number("unacked"), 1);
  EXPECT_GE(control->number("retransmits"), 1);
  std::string ss = connection_sockets(*without.nat, "s");
  std::cout << "pending data without libkeepalive: still " << (*control)["state"] << " "
            << seconds(kControlWatch) << " s after the send, " << (*control)["retransmits"]
            << " retransmissions; ss -tnoe says:\n"
            << ss;

  // Had a client seen the message, the link was not down when it was sent
  // and this scenario proved nothing.
  for (Connection *c : {&with, &without})
    EXPECT_FALSE(c->client->find_event("message_received")) << c->transcript();
}

// 6. An invalid setting: the library says so and stays out of the way, so
// the server behaves exactly like the baseline (the message is lost).
TEST_F(CgnatTest, InvalidConfigurationBehavesLikeBaseline) {
  Connection c;
  Event sent, outcome;
  ASSERT_NO_FATAL_FAILURE(
      send_after_silence("invalid", with_library({"KEEPALIVE_IDLE=abc"}), {}, &c, &sent, &outcome));
  ASSERT_EQ((*c.server_start)["libkeepalive_loaded"], "1") << c.transcript();
  EXPECT_NE(c.server->err().find("KEEPALIVE_IDLE"), std::string::npos)
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
            << c.server->err().substr(0, c.server->err().find('\n')) << "\"; message sent after "
            << seconds(sent.number("silence")) << " s of silence was lost, as in the baseline\n";
}

}  // namespace
}  // namespace cgnat_harness
