// e2e_client — the client peer of the end-to-end tests (tests/e2e) and of
// examples/demo, in the role of the phone: it connects (through the NAT),
// says "hello", waits for "welcome", then stays silent and waits for the
// server's "message". Report lines are described in peer.h.
//
//   e2e_client --connect ADDR:PORT --wait S
//
//   --wait S  how long to wait for the message, counted from the welcome
//
// Events: start, connected (with the socket's keepalive options),
// welcome_received, then one of message_received (silence=seconds since the
// welcome), nothing_received, read_error (errno=NAME), peer_closed, or error.
// Exit status: 0 message received, 3 nothing within S, 4 the connection
// failed or closed, 1 setup failed, 2 usage.
#include "peer.h"

using peer::report;

int main(int argc, char **argv) {
  if (argc != 5 || strcmp(argv[1], "--connect") != 0 || strcmp(argv[3], "--wait") != 0) {
    fprintf(stderr, "usage: %s --connect ADDR:PORT --wait S\n", argv[0]);
    return 2;
  }
  sockaddr_in server = peer::parse_endpoint(argv[2]);
  double wait_s = peer::parse_seconds(argv[4]);
  report("start", "libkeepalive_loaded=%d", peer::libkeepalive_loaded());

  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) peer::fail("socket");
  if (connect(fd, reinterpret_cast<sockaddr *>(&server), sizeof server) != 0)  // hooked
    peer::fail("connect");
  report("connected", "%s", peer::keepalive_state(fd).c_str());

  peer::write_all(fd, "hello\n");
  std::string received;
  if (peer::wait_for_line(fd, "welcome\n", peer::now_s() + 10, &received) != peer::Wait::kLine)
    peer::fail("welcome");
  double quiet_since = peer::now_s();
  report("welcome_received");

  switch (peer::wait_for_line(fd, "message\n", quiet_since + wait_s, &received)) {
    case peer::Wait::kLine:
      report("message_received", "silence=%.3f", peer::now_s() - quiet_since);
      return 0;
    case peer::Wait::kTimeout:
      report("nothing_received", "waited=%.3f", peer::now_s() - quiet_since);
      return 3;
    case peer::Wait::kError:
      report("read_error", "errno=%s", peer::errno_name(errno));
      return 4;
    case peer::Wait::kClosed:
      report("peer_closed");
      return 4;
  }
  return 1;
}
