// natprobe_probe_test.cc — unit tests of how `keepalive natprobe` makes a
// probe connection silent (tools/natprobe/probe.*): a probe that sends
// keepalive probes of its own would keep the NAT's mapping alive and measure
// nothing, so a connection whose keepalive stays on is refused.
//
// This program interposes setsockopt: with `g_keepalive_stays_on` set, a
// request to switch SO_KEEPALIVE off succeeds without doing anything, as a
// layer between the program and the kernel might.

#include <dlfcn.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "natprobe/probe.h"

namespace {
bool g_keepalive_stays_on = false;
}

extern "C" int setsockopt(int fd, int level, int option, const void *value, socklen_t length) {
  using Real = int (*)(int, int, int, const void *, socklen_t);
  static const Real real = reinterpret_cast<Real>(dlsym(RTLD_NEXT, "setsockopt"));
  if (g_keepalive_stays_on && level == SOL_SOCKET && option == SO_KEEPALIVE &&
      length == sizeof(int) && *static_cast<const int *>(value) == 0) {
    return 0;
  }
  if (real == nullptr) {
    errno = ENOSYS;
    return -1;
  }
  return real(fd, level, option, value, length);
}

namespace keepalive_natprobe {
namespace {

class ProbeConnection : public ::testing::Test {
 protected:
  void SetUp() override {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd_, 0);
    // What a preloaded libkeepalive or an inheriting listener leaves behind.
    int on = 1;
    unsigned int user_timeout_ms = 30000;
    ASSERT_EQ(setsockopt(fd_, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on), 0);
    ASSERT_EQ(
        setsockopt(fd_, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof user_timeout_ms),
        0);
  }
  void TearDown() override {
    g_keepalive_stays_on = false;
    if (fd_ >= 0) close(fd_);
  }
  int option(int level, int name) const {
    int value = -1;
    socklen_t length = sizeof value;
    EXPECT_EQ(getsockopt(fd_, level, name, &value, &length), 0);
    return value;
  }
  int fd_ = -1;
};

TEST_F(ProbeConnection, KeepaliveAndUserTimeoutAreSwitchedOff) {
  std::string error;
  EXPECT_TRUE(switch_keepalive_off(fd_, &error)) << error;
  EXPECT_EQ(error, "");
  EXPECT_EQ(option(SOL_SOCKET, SO_KEEPALIVE), 0);
  EXPECT_EQ(option(IPPROTO_TCP, TCP_USER_TIMEOUT), 0);
}

TEST_F(ProbeConnection, AConnectionWhoseKeepaliveStaysOnIsRefused) {
  g_keepalive_stays_on = true;
  std::string error;
  EXPECT_FALSE(switch_keepalive_off(fd_, &error));
  EXPECT_EQ(error, "SO_KEEPALIVE is still on after switching it off on a probe connection");
  EXPECT_EQ(option(SOL_SOCKET, SO_KEEPALIVE), 1);
}

TEST(ProbeConnectionFailure, AnOptionTheKernelRefusesIsNamedWithItsError) {
  std::string error;
  EXPECT_FALSE(switch_keepalive_off(-1, &error));
  EXPECT_EQ(error, "cannot switch keepalive off on a probe connection: Bad file descriptor");
}

}  // namespace
}  // namespace keepalive_natprobe
