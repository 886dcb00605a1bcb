// matrix_test.cc — the preload matrix: accept or accept4 on the server side
// and connect on the client side, × IPv4 / IPv6 / v4-mapped (an IPv6
// dual-stack listener accepting from 127.0.0.1) × blocking / non-blocking.
// In every case both ends carry the configured values, read back inside
// (getsockopt) and outside (ss -tnoe), and every call returns what it
// returns without the library.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "harness.h"

namespace ka_test {
namespace {

struct MatrixCase {
  std::string family;       // "4", "6" or "mapped"
  std::string accept_call;  // "accept" or "accept4"
  bool nonblock;
};

std::string Name(const testing::TestParamInfo<MatrixCase> &info) {
  const MatrixCase &c = info.param;
  return "v" + c.family + "_" + c.accept_call + (c.nonblock ? "_nonblocking" : "_blocking");
}

// listen; (non-blocking: accept with nothing waiting); connect; accept; show.
std::vector<std::string> Script(const MatrixCase &c) {
  std::string call = c.accept_call == "accept" ? "accept"
                     : c.nonblock              ? "accept4+nonblock+cloexec"
                                               : "accept4+cloexec";
  std::string host = c.family == "6" ? "::1" : "127.0.0.1";
  std::vector<std::string> s = {"script", "listen", "listener", c.family};
  if (c.nonblock) s.insert(s.end(), {"nonblock", "tryaccept", "early", "listener", call});
  s.insert(s.end(), {"connect", "client", host, "@listener"});
  if (c.nonblock) s.push_back("nonblock");
  s.insert(s.end(), {"accept", "server", "listener", call, "show"});
  return s;
}

const Env kEnv = {{"KEEPALIVE_IDLE", "240"},
                  {"KEEPALIVE_INTVL", "17"},
                  {"KEEPALIVE_CNT", "4"},
                  {"KEEPALIVE_USER_TIMEOUT", "45s"}};
const Keepalive kConfigured = {true, 240, 17, 4, 45000};

class PreloadMatrix : public testing::TestWithParam<MatrixCase> {};

TEST_P(PreloadMatrix, BothEndsCarryTheConfiguredValues) {
  auto peer = StartPeer(Script(GetParam()), kEnv, Preload::kYes);
  ASSERT_TRUE(peer->WaitForLine("ready")) << peer->out() << peer->err();
  SsTable ss = ReadSs();
  double elapsed = peer->Elapsed();
  EXPECT_EQ(peer->Finish(), 0) << peer->err();
  const Report &r = peer->report();
  EXPECT_EQ(Get(r, "process.preloaded"), "1");
  ExpectSocket(r, ss, "server", kConfigured, elapsed);
  ExpectSocket(r, ss, "client", kConfigured, elapsed);
  // The listener carries them too (its later connections inherit them).
  ExpectInside(r, "listener", kConfigured);
  EXPECT_EQ(peer->err(), "") << "KEEPALIVE_LOG is quiet by default";
}

TEST_P(PreloadMatrix, CallsReturnWhatTheyReturnWithoutTheLibrary) {
  const MatrixCase &c = GetParam();
  PeerRun with = RunPeer(Script(c), kEnv, Preload::kYes);
  PeerRun without = RunPeer(Script(c), kEnv, Preload::kNo);
  EXPECT_EQ(with.status, 0) << with.err;
  EXPECT_EQ(without.status, 0) << without.err;
  EXPECT_EQ(Get(with.report, "process.preloaded"), "1");
  EXPECT_EQ(Get(without.report, "process.preloaded"), "0");
  EXPECT_EQ(Calls(with.report), Calls(without.report));
  // Without the library nothing is configured: the values above are its work.
  EXPECT_EQ(Get(without.report, "sock.server.keepalive"), "0");
  EXPECT_EQ(Get(without.report, "sock.client.keepalive"), "0");

  // What the scenario exercised (so that an equal but empty report fails).
  const Report &r = with.report;
  EXPECT_EQ(Get(r, "call.server.errno"), "EDOM") << "errno changed by a successful accept";
  EXPECT_EQ(Get(r, "call.server.addr"), c.family == "6"        ? "::1"
                                        : c.family == "mapped" ? "::ffff:127.0.0.1"
                                                               : "127.0.0.1");
  EXPECT_EQ(Get(r, "call.server.addrlen"), c.family == "4" ? "16" : "28");
  EXPECT_EQ(Get(r, "call.server.addr_port_is_peer"), "1");
  bool accept4 = c.accept_call == "accept4";
  EXPECT_EQ(Get(r, "call.server.cloexec"), accept4 ? "1" : "0");
  EXPECT_EQ(Get(r, "call.server.nonblock"), accept4 && c.nonblock ? "1" : "0");
  if (c.nonblock) {
    EXPECT_EQ(Get(r, "call.early.ret"), "-1");
    EXPECT_EQ(Get(r, "call.early.errno"), "EAGAIN");
    EXPECT_EQ(Get(r, "call.client.ret"), "-1");
    EXPECT_EQ(Get(r, "call.client.errno"), "EINPROGRESS");
    EXPECT_EQ(Get(r, "call.client.so_error"), "0");
  } else {
    EXPECT_EQ(Get(r, "call.client.ret"), "0");
    EXPECT_EQ(Get(r, "call.client.errno"), "EDOM") << "errno changed by a successful connect";
  }
}

std::vector<MatrixCase> AllCases() {
  std::vector<MatrixCase> cases;
  for (const char *family : {"4", "6", "mapped"})
    for (const char *call : {"accept", "accept4"})
      for (bool nonblock : {false, true}) cases.push_back({family, call, nonblock});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Loopback, PreloadMatrix, testing::ValuesIn(AllCases()), Name);

}  // namespace
}  // namespace ka_test
