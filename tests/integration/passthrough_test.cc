// passthrough_test.cc — the library is invisible to the application: every
// call of ka_peer's error table (ECONNREFUSED, EINPROGRESS, EAGAIN, EBADF,
// ENOTSOCK, EINVAL, EFAULT, EISCONN, ENOENT, short and missing address
// buffers, accept4 flags) returns the same value, errno and address output
// with the library as without, under several configurations; a failing
// connect() changes no socket; and Unix, UDP and MPTCP sockets are left
// untouched while TCP ones are configured.
#include <gtest/gtest.h>

#include <string>

#include "harness.h"
#include "require.h"

namespace ka_test {
namespace {

struct Config {
  std::string name;
  Env env;
};

std::string Name(const testing::TestParamInfo<Config> &info) { return info.param.name; }

class ErrorPassThrough : public testing::TestWithParam<Config> {};

TEST_P(ErrorPassThrough, EveryCallMatchesTheRunWithoutTheLibrary) {
  PeerRun with = RunPeer({"errors"}, GetParam().env, Preload::kYes);
  PeerRun without = RunPeer({"errors"}, {}, Preload::kNo);
  EXPECT_EQ(with.status, 0) << with.err;
  EXPECT_EQ(without.status, 0) << without.err;
  EXPECT_EQ(Get(with.report, "process.preloaded"), "1");
  EXPECT_EQ(Calls(with.report), Calls(without.report));

  // The table really produced the errors it is about.
  const Report &r = without.report;
  EXPECT_EQ(Get(r, "call.connect_refused_v4.errno"), "ECONNREFUSED");
  EXPECT_EQ(Get(r, "call.connect_refused_v6.errno"), "ECONNREFUSED");
  EXPECT_EQ(Get(r, "call.connect_refused_nonblock.so_error"), "ECONNREFUSED");
  EXPECT_EQ(Get(r, "call.connect_inprogress.errno"), "EINPROGRESS");
  EXPECT_EQ(Get(r, "call.accept_again.errno"), "EAGAIN");
  EXPECT_EQ(Get(r, "call.accept4_again.errno"), "EAGAIN");
  EXPECT_EQ(Get(r, "call.accept_badf.errno"), "EBADF");
  EXPECT_EQ(Get(r, "call.connect_badf.errno"), "EBADF");
  EXPECT_EQ(Get(r, "call.accept_notsock.errno"), "ENOTSOCK");
  EXPECT_EQ(Get(r, "call.connect_notsock.errno"), "ENOTSOCK");
  EXPECT_EQ(Get(r, "call.connect_bad_pointer.errno"), "EFAULT");
  EXPECT_EQ(Get(r, "call.accept_small_addrlen.addrlen"), "16");
  EXPECT_EQ(Get(r, "call.accept4_nonblock_cloexec.nonblock"), "1");
  EXPECT_EQ(Get(r, "call.accept4_nonblock_cloexec.cloexec"), "1");
  EXPECT_EQ(Get(r, "call.accept_v4.errno"), "EDOM");
}

INSTANTIATE_TEST_SUITE_P(
    Configs, ErrorPassThrough,
    testing::Values(Config{"no_variables", {}},
                    Config{"globals",
                           {{"KEEPALIVE_IDLE", "240"},
                            {"KEEPALIVE_INTVL", "17"},
                            {"KEEPALIVE_CNT", "4"},
                            {"KEEPALIVE_USER_TIMEOUT", "45s"}}},
                    // Rules that need the peer and the port in both directions, and a
                    // debug line for every configured socket.
                    Config{"rules_and_debug_log",
                           {{"KEEPALIVE_RULES",
                             "in peer=10.0.0.0/8 port=1-9 off; out peer=10.0.0.0/8 port=1-9 off"},
                            {"KEEPALIVE_IDLE", "240"},
                            {"KEEPALIVE_LOG", "debug"}}},
                    Config{"invalid", {{"KEEPALIVE_IDLE", "abc"}}},
                    Config{"off", {{"KEEPALIVE", "off"}, {"KEEPALIVE_IDLE", "240"}}}),
    Name);

// ---- calls that fail ----------------------------------------------------------

// A connect() that fails changes no socket: not a listener (whose accepted
// sockets would inherit SO_KEEPALIVE, past an `in off` rule), and not a
// connected socket whose application has set its own values since (programs
// that poll a non-blocking connect by calling connect() again get EALREADY
// or EISCONN).
TEST(FailedConnect, ChangesNoSocket) {
  const std::vector<std::string> script = Words(
      "script listen listener 4  again on_listener listener 127.0.0.1 @listener  "
      "connect client 127.0.0.1 @listener  accept server listener accept  "
      "setidle client 60  again on_connected client 127.0.0.1 @listener  show");
  const Env env = {{"KEEPALIVE_IDLE", "240"}, {"KEEPALIVE_RULES", "in off"}};
  PeerRun with = RunPeer(script, env, Preload::kYes);
  PeerRun without = RunPeer(script, env, Preload::kNo);
  EXPECT_EQ(with.status, 0) << with.err;
  EXPECT_EQ(Calls(with.report), Calls(without.report));
  EXPECT_EQ(Get(without.report, "call.on_listener.ret"), "-1");
  EXPECT_EQ(Get(without.report, "call.on_connected.errno"), "EISCONN");
  EXPECT_EQ(Get(with.report, "sock.listener.keepalive"), "0");
  EXPECT_EQ(Get(with.report, "sock.server.keepalive"), "0") << "in off";
  EXPECT_EQ(Get(with.report, "sock.client.keepalive"), "1") << "out: configured by its connect()";
  EXPECT_EQ(Get(with.report, "sock.client.idle"), "60") << "the application's own later value";
}

// ---- sockets that are not TCP ------------------------------------------------

const Env kEnv = {{"KEEPALIVE_IDLE", "240"}, {"KEEPALIVE_INTVL", "17"}, {"KEEPALIVE_CNT", "4"}};

TEST(NotTcp, UnixAndUdpSocketsAreUntouched) {
  PeerRun with = RunPeer({"untouched"}, kEnv, Preload::kYes);
  PeerRun without = RunPeer({"untouched"}, kEnv, Preload::kNo);
  EXPECT_EQ(with.status, 0) << with.err;
  EXPECT_EQ(Calls(with.report), Calls(without.report));
  const Report &r = with.report;
  for (const char *name : {"unix_accept_client", "unix_accept_server", "unix_accept4_client",
                           "unix_accept4_server", "udp4", "udp6"}) {
    EXPECT_EQ(Get(r, std::string("sock.") + name + ".keepalive"), "0") << name;
  }
  // The control: the same process's TCP sockets were configured.
  ExpectInside(r, "tcp_client", {true, 240, 17, 4, 0});
  ExpectInside(r, "tcp_server", {true, 240, 17, 4, 0});
}

// MPTCP answers the TCP_KEEPIDLE read like TCP. connect() then tells it
// apart by SO_PROTOCOL, or, with a user timeout configured, by the
// TCP_USER_TIMEOUT it sets first and MPTCP refuses: both ways are checked.
TEST(NotTcp, MptcpSocketsAreUntouched) {
  Env with_user_timeout = kEnv;
  with_user_timeout.emplace_back("KEEPALIVE_USER_TIMEOUT", "5s");
  for (const Env &env : {kEnv, with_user_timeout}) {
    SCOPED_TRACE(env.size() == kEnv.size() ? "without a user timeout" : "with a user timeout");
    PeerRun with = RunPeer({"untouched"}, env, Preload::kYes);
    EXPECT_EQ(with.status, 0) << with.err;
    if (Get(with.report, "mptcp.available") != "1") {
      KA_REQUIRE_OR_SKIP("LIBKEEPALIVE_E2E_REQUIRED",
                         "this kernel has no MPTCP (net.mptcp.enabled=0 or no CONFIG_MPTCP); "
                         "MPTCP sockets were not checked");
    }
    EXPECT_EQ(Get(with.report, "call.mptcp_connect.ret"), "0");
    for (const char *name : {"mptcp_client", "mptcp_server"}) {
      EXPECT_EQ(Get(with.report, std::string("sock.") + name + ".keepalive"), "0") << name;
      EXPECT_EQ(Get(with.report, std::string("sock.") + name + ".idle"),
                std::to_string(ReadKernelDefaults().time_s))
          << name;
    }
    EXPECT_EQ(Get(with.report, "sock.tcp_client.keepalive"), "1") << "control: TCP configured";
  }
}

}  // namespace
}  // namespace ka_test
