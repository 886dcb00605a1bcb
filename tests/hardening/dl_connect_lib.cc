// dl_connect_lib.cc — libka_dlconnect.so, dlopen()ed by ka_odd: a library
// that is not there when the process starts and calls connect() itself.
#include <unistd.h>

#include "peer_util.h"

// Connects a new TCP socket to 127.0.0.1:port; returns it, or -1.
extern "C" __attribute__((visibility("default"))) int ka_dl_connect(int port) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in to = ka_peer::Loopback4("127.0.0.1", static_cast<uint16_t>(port));
  if (connect(s, reinterpret_cast<sockaddr *>(&to), sizeof to) != 0) {
    close(s);
    return -1;
  }
  return s;
}
