// sockdiag_test.cc — unit: the pure parts of `keepalive apply --follow`: the
// parsing of a socket diagnostics dump (sockdiag.h), --interval, and the
// one-line JSON of its events.

#include "lib/sockdiag.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>

#include <string>
#include <vector>

#include "apply/follow.h"
#include "lib/cli.h"
#include "lib/output.h"

namespace {

using keepalive_cli::DiagParse;
using keepalive_cli::DiagSocket;

// Appends one netlink message of `type` with `payload` to `buffer`, padded.
void append_message(std::vector<char> *buffer, int type, const void *payload, size_t len) {
  nlmsghdr header{};
  header.nlmsg_len = static_cast<__u32>(NLMSG_HDRLEN + len);
  header.nlmsg_type = static_cast<__u16>(type);
  size_t start = buffer->size();
  buffer->resize(start + NLMSG_ALIGN(header.nlmsg_len));
  memcpy(buffer->data() + start, &header, sizeof header);
  if (len > 0) memcpy(buffer->data() + start + NLMSG_HDRLEN, payload, len);
}

inet_diag_msg ipv4_socket(const char *src, int sport, const char *dst, int dport, int state,
                          unsigned inode, int timer) {
  inet_diag_msg message{};
  message.idiag_family = AF_INET;
  message.idiag_state = static_cast<__u8>(state);
  message.idiag_timer = static_cast<__u8>(timer);
  message.idiag_inode = inode;
  message.idiag_expires = 1500;
  message.id.idiag_sport = htons(static_cast<uint16_t>(sport));
  message.id.idiag_dport = htons(static_cast<uint16_t>(dport));
  inet_pton(AF_INET, src, message.id.idiag_src);
  inet_pton(AF_INET, dst, message.id.idiag_dst);
  return message;
}

TEST(ParseInetDiag, Ipv4AndIpv6SocketsThenDone) {
  std::vector<char> buffer;
  inet_diag_msg v4 =
      ipv4_socket("100.64.0.2", 40000, "198.51.100.2", 5222, TCP_ESTABLISHED, 4242, 2);
  append_message(&buffer, SOCK_DIAG_BY_FAMILY, &v4, sizeof v4);
  inet_diag_msg v6{};
  v6.idiag_family = AF_INET6;
  v6.idiag_state = TCP_LISTEN;
  v6.idiag_inode = 77;
  v6.id.idiag_sport = htons(5269);
  inet_pton(AF_INET6, "2001:db8::1", v6.id.idiag_src);
  append_message(&buffer, SOCK_DIAG_BY_FAMILY, &v6, sizeof v6);

  std::vector<DiagSocket> sockets;
  std::string error;
  ASSERT_EQ(keepalive_cli::parse_inet_diag_messages(buffer.data(), buffer.size(), &sockets, &error),
            DiagParse::kMore);
  ASSERT_EQ(sockets.size(), 2u);
  EXPECT_EQ(sockets[0].inode, 4242u);
  EXPECT_EQ(sockets[0].state, TCP_ESTABLISHED);
  EXPECT_EQ(sockets[0].timer, 2);
  EXPECT_STREQ(keepalive_cli::diag_timer_name(sockets[0].timer), "keepalive");
  EXPECT_EQ(sockets[0].expires_ms, 1500u);
  EXPECT_EQ(keepalive_cli::format_endpoint(sockets[0].local), "100.64.0.2:40000");
  EXPECT_EQ(keepalive_cli::format_endpoint(sockets[0].peer), "198.51.100.2:5222");
  EXPECT_EQ(sockets[1].family, AF_INET6);
  EXPECT_EQ(sockets[1].state, TCP_LISTEN);
  EXPECT_EQ(keepalive_cli::format_endpoint(sockets[1].local), "[2001:db8::1]:5269");

  std::vector<char> done;
  int zero = 0;
  append_message(&done, NLMSG_DONE, &zero, sizeof zero);
  EXPECT_EQ(keepalive_cli::parse_inet_diag_messages(done.data(), done.size(), &sockets, &error),
            DiagParse::kDone);
  EXPECT_EQ(sockets.size(), 2u);
}

TEST(ParseInetDiag, KernelErrorIsReported) {
  std::vector<char> buffer;
  nlmsgerr failure{};
  failure.error = -EPERM;
  append_message(&buffer, NLMSG_ERROR, &failure, sizeof failure);
  std::vector<DiagSocket> sockets;
  std::string error;
  EXPECT_EQ(keepalive_cli::parse_inet_diag_messages(buffer.data(), buffer.size(), &sockets, &error),
            DiagParse::kError);
  EXPECT_NE(error.find(strerror(EPERM)), std::string::npos) << error;
}

TEST(ParseInetDiag, MalformedMessagesAreErrorsNotReads) {
  inet_diag_msg v4 = ipv4_socket("127.0.0.1", 1, "127.0.0.1", 2, TCP_ESTABLISHED, 1, 0);
  std::vector<char> buffer;
  append_message(&buffer, SOCK_DIAG_BY_FAMILY, &v4, sizeof v4);
  std::vector<DiagSocket> sockets;
  std::string error;
  // A length beyond the buffer.
  EXPECT_EQ(
      keepalive_cli::parse_inet_diag_messages(buffer.data(), buffer.size() - 8, &sockets, &error),
      DiagParse::kError);
  // A payload shorter than an inet_diag_msg.
  std::vector<char> short_one;
  append_message(&short_one, SOCK_DIAG_BY_FAMILY, &v4, 8);
  EXPECT_EQ(
      keepalive_cli::parse_inet_diag_messages(short_one.data(), short_one.size(), &sockets, &error),
      DiagParse::kError);
  EXPECT_TRUE(sockets.empty());
}

TEST(FollowInterval, DurationsInRange) {
  struct Case {
    const char *text;
    bool ok;
    int ms;
  } cases[] = {{"1s", true, 1000}, {"250ms", true, 250},  {"1.5s", true, 1500}, {"2", true, 2000},
               {"10ms", true, 10}, {"1h", true, 3600000}, {"9ms", false, 0},    {"0", false, 0},
               {"61m", false, 0},  {"abc", false, 0},     {"", false, 0}};
  for (const Case &c : cases) {
    int ms = -1;
    std::string error;
    EXPECT_EQ(keepalive_cli::parse_follow_interval(c.text, &ms, &error), c.ok) << c.text;
    if (c.ok) {
      EXPECT_EQ(ms, c.ms) << c.text;
    } else {
      EXPECT_NE(error.find("--interval"), std::string::npos) << error;
    }
  }
}

TEST(JsonWriterOneLine, NoNewlineInsideTheObject) {
  keepalive_cli::JsonWriter json(keepalive_cli::JsonWriter::kOneLine);
  json.begin_object().field("a", 1).key("b").begin_array().number(2LL).number(3LL).end_array();
  json.key("c").begin_object().field("d", "x\ny").end_object().end_object();
  EXPECT_EQ(json.str(), "{\"a\": 1,\"b\": [2,3],\"c\": {\"d\": \"x\\ny\"}}\n");
}

}  // namespace
