// core_bench.cc — ka_bench_core: plain timing loops over the core the hooks
// run on every connection, linked from the static keepalive_core (no
// preloading, no extra library).
//
//   1. keepalive_decide, the pure decision: no rules, 16 rules and 64 rules
//      (bench_rules.h: every rule but the last is scanned in full), with the
//      last rule matching (late match) or not (no match), in ns per decision.
//   2. For reference, the socket calls of the connection path on a connected
//      loopback socket, in ns per call of the public function:
//      keepalive_socket_is_tcp (2 getsockopt), keepalive_tcp_state (connect
//      only: 1 getsockopt), keepalive_read_facts with port and peer
//      (getpeername + getsockname), keepalive_apply with the four options
//      (5 setsockopt), and a bare getppid() as this machine's price of
//      entering the kernel at all. keepalive_apply runs on the same socket
//      again and again, where SO_KEEPALIVE is already on.
//
// Each figure: the loop runs until a sample takes >= 50 ms of this thread's
// CPU time (so that other load on a shared machine counts less); 11 samples;
// the median and min–max are printed. Facts are the same on every call, so branch
// predictors and caches are warm: these are best cases.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "bench_rules.h"
#include "keepalive/keepalive.h"

namespace {

constexpr int kSamples = 11;
constexpr double kSampleSeconds = 0.05;
constexpr unsigned kPort = 40000;  // the facts' port, matched by every rule's port list

volatile long sink;  // keeps results alive

double now_s() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);  // CPU time: other load on the machine does not count
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

// Times `body(iterations)`; prints median and spread of ns per iteration.
template <typename Body>
void time_loop(const char *name, Body body) {
  long iterations = 1;
  for (;;) {  // grow until one sample is long enough
    double start = now_s();
    body(iterations);
    if (now_s() - start >= kSampleSeconds) break;
    iterations *= 2;
  }
  std::vector<double> ns;
  for (int i = 0; i < kSamples; ++i) {
    double start = now_s();
    body(iterations);
    ns.push_back((now_s() - start) * 1e9 / static_cast<double>(iterations));
  }
  std::sort(ns.begin(), ns.end());
  printf("  %-44s %8.1f ns  (min %.1f, max %.1f; %ld calls per sample)\n", name, ns[kSamples / 2],
         ns.front(), ns.back(), iterations);
}

using Env = std::map<std::string, std::string>;

const char *lookup(const char *name, void *context) {
  const Env &env = *static_cast<const Env *>(context);
  auto it = env.find(name);
  return it == env.end() ? nullptr : it->second.c_str();
}

// keepalive_config is large (fixed rule storage): static, not on the stack.
keepalive_config config;

void load(int rules, bool last_matches) {
  Env env;
  for (const auto &option : keepalive_bench::kGlobalOptions) env[option[0]] = option[1];
  if (rules > 0) env["KEEPALIVE_RULES"] = keepalive_bench::bench_rules(rules, kPort, last_matches);
  if (!keepalive_config_load(&config, lookup, &env, 75) || config.nrules != rules) {
    fprintf(stderr, "ka_bench_core: configuration with %d rules did not load: %s\n", rules,
            config.nproblems > 0 ? config.problems[0] : "wrong rule count");
    exit(1);
  }
}

void bench_decide() {
  printf("keepalive_decide (IN socket, port %u, peer 127.0.0.1):\n", kPort);
  keepalive_socket_facts facts;
  memset(&facts, 0, sizeof facts);
  facts.direction = KEEPALIVE_IN;
  facts.has_port = 1;
  facts.port = kPort;
  facts.has_peer = 1;
  facts.peer.family = 4;
  inet_pton(AF_INET, "127.0.0.1", facts.peer.addr);
  struct Case {
    const char *name;
    int rules;
    bool last_matches;
    int expected_rule;
  };
  const Case cases[] = {
      {"no rules (global settings)", 0, false, KEEPALIVE_RULE_GLOBAL},
      {"16 rules, the 16th matches", 16, true, 15},
      {"16 rules, none matches", 16, false, KEEPALIVE_RULE_GLOBAL},
      {"64 rules, the 64th matches", 64, true, 63},
      {"64 rules, none matches", 64, false, KEEPALIVE_RULE_GLOBAL},
  };
  for (const Case &c : cases) {
    load(c.rules, c.last_matches);
    keepalive_settings out;
    keepalive_decide(&config, &facts, &out);
    if (out.rule != c.expected_rule || !out.enable) {
      fprintf(stderr, "ka_bench_core: %s: decided rule %d, expected %d\n", c.name, out.rule,
              c.expected_rule);
      exit(1);
    }
    time_loop(c.name, [&](long iterations) {
      long sum = 0;
      for (long i = 0; i < iterations; ++i) {
        keepalive_decide(&config, &facts, &out);
        sum += out.idle_s;
      }
      sink = sum;
    });
  }
}

// A connected loopback pair; returns the accepted end.
int accepted_socket() {
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address;
  memset(&address, 0, sizeof address);
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof address;
  int client = socket(AF_INET, SOCK_STREAM, 0);
  if (listener < 0 || client < 0 ||
      bind(listener, reinterpret_cast<sockaddr *>(&address), sizeof address) != 0 ||
      listen(listener, 1) != 0 ||
      getsockname(listener, reinterpret_cast<sockaddr *>(&address), &len) != 0 ||
      connect(client, reinterpret_cast<sockaddr *>(&address), sizeof address) != 0) {
    perror("ka_bench_core: loopback pair");
    exit(1);
  }
  int fd = accept(listener, nullptr, nullptr);
  if (fd < 0) {
    perror("ka_bench_core: accept");
    exit(1);
  }
  return fd;
}

void bench_socket_calls() {
  printf("socket calls of the connection path (connected loopback socket, for reference):\n");
  int fd = accepted_socket();
  load(0, false);
  time_loop("getppid() (syscall entry/exit alone)", [](long iterations) {
    long sum = 0;
    for (long i = 0; i < iterations; ++i) sum += syscall(SYS_getppid);
    sink = sum;
  });
  time_loop("keepalive_socket_is_tcp (2 getsockopt)", [fd](long iterations) {
    long sum = 0;
    for (long i = 0; i < iterations; ++i) sum += keepalive_socket_is_tcp(fd);
    sink = sum;
  });
  time_loop("keepalive_tcp_state (1 getsockopt TCP_INFO)", [fd](long iterations) {
    long sum = 0;
    for (long i = 0; i < iterations; ++i) sum += keepalive_tcp_state(fd);
    sink = sum;
  });
  time_loop("keepalive_read_facts port+peer (2 calls)", [fd](long iterations) {
    keepalive_socket_facts facts;
    long sum = 0;
    for (long i = 0; i < iterations; ++i) {
      keepalive_read_facts(fd, KEEPALIVE_IN, KEEPALIVE_NEED_PORT | KEEPALIVE_NEED_PEER, &facts);
      sum += facts.port;
    }
    sink = sum;
  });
  time_loop("keepalive_apply, 4 options (5 setsockopt)", [fd](long iterations) {
    long sum = 0;
    for (long i = 0; i < iterations; ++i) sum += keepalive_apply(fd, &config.global, nullptr);
    sink = sum;
  });
  close(fd);
}

}  // namespace

int main() {
  bench_decide();
  bench_socket_calls();
  return 0;
}
