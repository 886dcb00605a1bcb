// early_connect_lib.cc — libka_early.so, preloaded next to libkeepalive.so by
// odd_callers_test.cc: its constructor connects before libkeepalive's
// constructor has run (when LD_PRELOAD lists it after libkeepalive, ld.so
// runs its constructor first), so the hook has to load the configuration
// itself. Steered by the environment:
//   KA_EARLY_PORT=P      connect to 127.0.0.1:P from the constructor and
//                        print early.sock=<state> (stdout)
//   KA_EARLY_THREADS=N   also from N threads at once, started by the
//                        constructor: early.thread.<i>=<state>
// stderr gets "early: connecting" and "early: connected" around the work, so
// that the test sees where libkeepalive's own load line falls.
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include <string>

#include "peer_util.h"

namespace {

uint16_t port;

void Say(int fd, const std::string &text) {
  if (write(fd, text.data(), text.size()) < 0) _exit(5);
}

std::string ConnectAndRead() {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in to = ka_peer::Loopback4("127.0.0.1", port);
  errno = ka_peer::kErrnoSentinel;
  int ret = connect(s, reinterpret_cast<sockaddr *>(&to), sizeof to);
  std::string text = ka_peer::Outcome(ret, errno) + " " + ka_peer::StateText(ka_peer::ReadState(s));
  close(s);
  return text;
}

struct ThreadResult {
  pthread_t thread;
  std::string text;
};

void *ThreadMain(void *arg) {
  static_cast<ThreadResult *>(arg)->text = ConnectAndRead();
  return nullptr;
}

__attribute__((constructor)) void ConnectEarly() {
  const char *port_text = getenv("KA_EARLY_PORT");
  if (port_text == nullptr) return;
  port = static_cast<uint16_t>(atoi(port_text));
  Say(2, "early: connecting\n");
  int threads = 0;
  if (const char *n = getenv("KA_EARLY_THREADS")) threads = atoi(n);
  ThreadResult results[64];
  if (threads > 64) threads = 64;
  // The threads first, so that they race the constructor's own connect.
  for (int i = 0; i < threads; ++i)
    pthread_create(&results[i].thread, nullptr, ThreadMain, &results[i]);
  std::string text = ConnectAndRead();
  for (int i = 0; i < threads; ++i) pthread_join(results[i].thread, nullptr);
  Say(1, "early.sock=" + text + "\n");
  for (int i = 0; i < threads; ++i) {
    Say(1, "early.thread." + std::to_string(i) + "=" + results[i].text + "\n");
  }
  Say(2, "early: connected\n");
}

}  // namespace
