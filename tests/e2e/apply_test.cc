// apply_test.cc — `keepalive apply` end to end: a server running
// WITHOUT libkeepalive (e2e_server) holds an idle connection to its client
// (e2e_client) through the emulated carrier-grade NAT of tests/e2e/cgnat,
// T = 3 s. Right after the welcome, well before the NAT forgets the mapping,
// `keepalive apply SERVERPID --idle 1` runs inside the server's namespace;
// the server's message after 2T of silence then arrives. The control, beside
// it through its own NAT, gets `keepalive apply --dry-run` instead: that must
// change nothing, and its message is lost as in e2e_test's baseline.
//
// Prerequisites, loud skips (failures with LIBKEEPALIVE_E2E_REQUIRED=1) and
// cleanup on every exit path come from cgnat_harness.h.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <iostream>
#include <memory>
#include <string>

#include "cgnat_harness.h"

namespace cgnat_harness {
namespace {

// The number after "key=" in a peer's report (peer.h), or -1.
double reported(const std::string &output, const std::string &key) {
  size_t at = output.find(" " + key + "=");
  return at == std::string::npos ? -1 : atof(output.c_str() + at + key.size() + 2);
}

// A plain server and its client through their own NAT: the server sends its
// message after 2T of silence; `idle_since` is when the welcome had been
// seen on both ends (within milliseconds of its sending).
struct IdleConnection {
  std::unique_ptr<Nat> nat;  // declared first: destroyed after the programs
  std::unique_ptr<Process> server, client;
  double idle_since = 0;

  std::string transcript() const {
    return (server ? server->transcript() : "") + (client ? client->transcript() : "");
  }

  bool keepalive_timer() const {
    return connection_sockets(*nat, "s").find("timer:(keepalive,") != std::string::npos;
  }

  // `keepalive apply SERVERPID FLAGS...` inside the server's namespace, as an
  // administrator on that machine would run it.
  CommandResult apply(const Strings &flags) const {
    Strings args = {program("keepalive"), "apply", std::to_string(server->pid())};
    args.insert(args.end(), flags.begin(), flags.end());
    return run_command(nat->exec("s", {}, args), 10);
  }
};

void start_idle_connection(const std::string &tag, IdleConnection *c) {
  c->nat = std::make_unique<Nat>(tag, kNatTimeout);
  ASSERT_TRUE(c->nat->up()) << "cgnat up " << c->nat->name() << " failed:\n" << c->nat->up_output();
  c->server = std::make_unique<Process>(
      tag + " server", c->nat->exec("s", {},
                                    {program("e2e_server"), "--listen", kServerEndpoint,
                                     "--send-after", seconds(kSilence), "--watch", "3"}));
  ASSERT_TRUE(c->server->started());
  ASSERT_TRUE(c->server->wait_for_output("listening", kStartupTimeout)) << c->transcript();
  c->client = std::make_unique<Process>(
      tag + " client", c->nat->exec("c", {},
                                    {program("e2e_client"), "--connect", kServerEndpoint, "--wait",
                                     seconds(kClientWait)}));
  ASSERT_TRUE(c->client->started());
  ASSERT_TRUE(c->client->wait_for_output("welcome_received", kStartupTimeout)) << c->transcript();
  ASSERT_TRUE(c->server->wait_for_output("welcome_sent", kStartupTimeout)) << c->transcript();
  c->idle_since = now_s();
  // A server as it is in production: no library, keepalive off.
  ASSERT_NE(c->server->out().find("libkeepalive_loaded=0"), std::string::npos) << c->transcript();
  ASSERT_NE(c->server->out().find("so_keepalive=0"), std::string::npos) << c->transcript();
  ASSERT_FALSE(c->keepalive_timer()) << "keepalive is on before apply:\n"
                                     << connection_sockets(*c->nat, "s");
}

class ApplyTest : public testing::Test {
 protected:
  void SetUp() override {
    CGNAT_REQUIRE_OR_SKIP();
    for (const char *name : {"keepalive", "e2e_server", "e2e_client"}) {
      struct stat st {};
      ASSERT_EQ(stat(program(name).c_str(), &st), 0) << "not built: " << program(name);
    }
  }
};

TEST_F(ApplyTest, ApplySavesAnIdleConnection) {
  // Each connection is applied to right after its own welcome.
  IdleConnection applied, dry;
  ASSERT_NO_FATAL_FAILURE(start_idle_connection("apply", &applied));
  CommandResult result = applied.apply({"--idle", "1"});
  double apply_after = now_s() - applied.idle_since;
  ASSERT_EQ(result.status, 0) << result.output << applied.transcript();
  ASSERT_LT(apply_after, kNatTimeout - 0.5)
      << "apply finished " << seconds(apply_after, 2)
      << " s into the silence, too close to the NAT timeout: this run proves nothing";
  EXPECT_NE(result.output.find("off -> idle=1s intvl=1s"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("1 socket set"), std::string::npos) << result.output;
  std::string ss = connection_sockets(*applied.nat, "s");
  EXPECT_NE(ss.find("timer:(keepalive,"), std::string::npos)
      << "ss shows no keepalive timer after apply:\n"
      << ss;
  std::cout << "keepalive apply, done " << seconds(apply_after, 2) << " s into the silence:\n"
            << result.output << "ss -tnoe in the server's namespace then:\n"
            << ss;

  ASSERT_NO_FATAL_FAILURE(start_idle_connection("dryrun", &dry));
  CommandResult dry_result = dry.apply({"--idle", "1", "--dry-run"});
  ASSERT_EQ(dry_result.status, 0) << dry_result.output << dry.transcript();
  EXPECT_NE(dry_result.output.find("would set"), std::string::npos) << dry_result.output;
  EXPECT_FALSE(dry.keepalive_timer()) << "--dry-run switched keepalive on:\n"
                                      << connection_sockets(*dry.nat, "s");

  std::string outcome = client_verdict(*applied.client);
  EXPECT_TRUE(applied.server->wait_for_output("message_sent", kStartupTimeout))
      << applied.transcript();
  EXPECT_EQ(outcome, "message_received")
      << "keepalive apply should have kept the NAT mapping of the running server\n"
      << applied.transcript();
  std::string control = client_verdict(*dry.client);
  EXPECT_EQ(control, "nothing_received")
      << "after `apply --dry-run` the message must be lost as in the baseline: either --dry-run "
         "changed the socket or the emulated NAT does not forget (see "
         "e2e.BaselineMessageAfterSilenceIsLost)\n"
      << dry.transcript();
  std::cout << "apply: message delivered after "
            << seconds(reported(applied.client->out(), "silence"), 2)
            << " s of silence; with --dry-run instead it was lost (client waited "
            << seconds(reported(dry.client->out(), "waited"), 2) << " s, NAT timeout "
            << kNatTimeout << " s)\n";
}

}  // namespace
}  // namespace cgnat_harness
