// e2e_server — the server peer of the end-to-end tests (tests/e2e) and of
// examples/demo, in the role of the XMPP server: it accepts one connection,
// answers the client's "hello" with "welcome", stays silent, may send a
// "message" after a while, then watches the socket and reports how the
// connection ended. Report lines are described in peer.h.
//
//   e2e_server --listen ADDR:PORT [--send-after S] [--watch S] [--hold S]
//
//   --send-after S  send "message\n" after S seconds of silence (after welcome)
//   --watch S       then wait S seconds for the connection to fail or close
//   --hold S        if it is still open then, keep it open S more seconds
//                   (time for an observer to look at it with `ss -tnoe`)
//
// Events: start, listening, accepted (with the accepted socket's keepalive
// options), hello_received, welcome_sent, message_sent (silence=seconds),
// then one of read_error (errno=NAME and the kernel's state), peer_closed,
// still_open (the kernel's state), or error (setup failed, exit 1).
#include <signal.h>

#include "peer.h"

using peer::report;

namespace {

struct Options {
  sockaddr_in listen{};
  double send_after = -1;  // < 0: send nothing
  double watch = 0;
  double hold = 0;
};

[[noreturn]] void usage(const char *program) {
  fprintf(stderr, "usage: %s --listen ADDR:PORT [--send-after S] [--watch S] [--hold S]\n",
          program);
  exit(2);
}

Options parse_options(int argc, char **argv) {
  Options options;
  bool have_listen = false;
  if (argc % 2 == 0) usage(argv[0]);  // every flag takes one value
  for (int i = 1; i < argc; i += 2) {
    const char *flag = argv[i], *value = argv[i + 1];
    if (!strcmp(flag, "--listen")) {
      options.listen = peer::parse_endpoint(value);
      have_listen = true;
    } else if (!strcmp(flag, "--send-after")) {
      options.send_after = peer::parse_seconds(value);
    } else if (!strcmp(flag, "--watch")) {
      options.watch = peer::parse_seconds(value);
    } else if (!strcmp(flag, "--hold")) {
      options.hold = peer::parse_seconds(value);
    } else {
      usage(argv[0]);
    }
  }
  if (!have_listen) usage(argv[0]);
  return options;
}

}  // namespace

int main(int argc, char **argv) {
  Options options = parse_options(argc, argv);
  signal(SIGPIPE, SIG_IGN);  // a write to a dead connection must report, not kill
  report("start", "libkeepalive_loaded=%d", peer::libkeepalive_loaded());

  int listener = socket(AF_INET, SOCK_STREAM, 0);
  if (listener < 0) peer::fail("socket");
  int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(listener, reinterpret_cast<sockaddr *>(&options.listen), sizeof options.listen) != 0)
    peer::fail("bind");
  if (listen(listener, 1) != 0) peer::fail("listen");
  char address[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &options.listen.sin_addr, address, sizeof address);
  report("listening", "address=%s:%u", address, ntohs(options.listen.sin_port));

  sockaddr_in from{};
  socklen_t from_len = sizeof from;
  int fd = accept(listener, reinterpret_cast<sockaddr *>(&from), &from_len);  // hooked
  if (fd < 0) peer::fail("accept");
  close(listener);
  inet_ntop(AF_INET, &from.sin_addr, address, sizeof address);
  report("accepted", "peer=%s:%u %s", address, ntohs(from.sin_port),
         peer::keepalive_state(fd).c_str());

  std::string received;
  if (peer::wait_for_line(fd, "hello\n", peer::now_s() + 10, &received) != peer::Wait::kLine)
    peer::fail("hello");
  report("hello_received");
  peer::write_all(fd, "welcome\n");
  double quiet_since = peer::now_s();
  report("welcome_sent");

  if (options.send_after >= 0) {
    peer::sleep_until(quiet_since + options.send_after);
    double silence = peer::now_s() - quiet_since;
    // The send succeeds either way: the kernel only queues the bytes.
    peer::write_all(fd, "message\n");
    report("message_sent", "silence=%.3f", silence);
  }

  switch (peer::wait_for_line(fd, nullptr, peer::now_s() + options.watch, &received)) {
    case peer::Wait::kError: {
      int error = errno;
      report("read_error", "errno=%s %s", peer::errno_name(error), peer::tcp_state(fd).c_str());
      break;
    }
    case peer::Wait::kClosed:
      report("peer_closed");
      break;
    default:
      report("still_open", "%s", peer::tcp_state(fd).c_str());
      peer::sleep_until(peer::now_s() + options.hold);
  }
  close(fd);
  return 0;
}
