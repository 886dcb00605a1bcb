// churn.cc — the connection-churn workload of the cost benchmark: the two
// processes that bench_cost.cc starts, with or without libkeepalive preloaded.
//
//   ka_bench_churn server <listening-fd> <shared-fd> <connections> [--memory|--exchange]
//   ka_bench_churn client <port> <shared-fd> <connections> [--memory|--exchange]
//
// The server accepts (accept()) and closes each connection (with --exchange,
// after reading 512 bytes and writing 512 back: one request and its answer,
// which the client awaits before its next connect); the client
// connects to 127.0.0.1:<port> and closes with SO_LINGER 0 (a reset: no
// TIME_WAIT, so ephemeral ports never run out). The client closes connection
// i only once the server has accepted it (a counter in the shared memory of
// <shared-fd>, no syscall), and keeps at most kWindow connections open: so
// the accept queue never overflows, and the library always meets a live
// connection on both sides, whose facts (getpeername) can be read. The
// second connection waits until the first was accepted.
//
// The connection loop allocates nothing. Reports, one `key=value` line each,
// on stdout, for the driver:
//   allocations ... — when alloc_counter.cc is preloaded: heap allocations
//       during the first connection and during all the others;
//   flow ...        — the client's flow-control pauses (a nanosleep each);
//   memory ...      — with --memory: VmRSS, RssAnon and the resident size of
//       the libkeepalive mappings (its file mappings and the anonymous .bss
//       tail).

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

namespace {

constexpr long kWindow = 64;  // client connections open at most
struct Shared {
  long accepted;  // connections the server has accepted (and configured)
};

[[noreturn]] void die(const char *what) {
  fprintf(stderr, "ka_bench_churn: %s: %s\n", what, strerror(errno));
  exit(1);
}

constexpr size_t kExchangeBytes = 512;

// Reads or writes exactly n bytes (blocking socket).
void transfer(int fd, char *buf, size_t n, bool write_it) {
  for (size_t done = 0; done < n;) {
    ssize_t got = write_it ? write(fd, buf + done, n - done) : read(fd, buf + done, n - done);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) die(write_it ? "write" : "read");
    done += static_cast<size_t>(got);
  }
}

long parse_long(const char *text) {
  char *end = nullptr;
  long value = strtol(text, &end, 10);
  if (*text == '\0' || *end != '\0' || value < 0) {
    fprintf(stderr, "ka_bench_churn: not a number: %s\n", text);
    exit(2);
  }
  return value;
}

Shared *map_shared(int fd) {
  void *p = mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) die("mmap shared");
  return static_cast<Shared *>(p);
}

// The allocation counter of alloc_counter.cc, when it is preloaded.
using CountFn = unsigned long (*)();

CountFn find_allocation_counter() {
  CountFn count = reinterpret_cast<CountFn>(dlsym(RTLD_DEFAULT, "ka_alloc_count"));
  if (count == nullptr) return nullptr;
  // Self-check: a counter that misses this allocation would report 0 for
  // everything; the volatile pointer keeps the compiler from removing it.
  unsigned long before = count();
  void *volatile probe = malloc(24);
  free(probe);
  if (count() <= before) {
    fprintf(stderr, "ka_bench_churn: allocation counter self-check failed\n");
    exit(1);
  }
  return count;
}

// Counts allocations around the loop: the first connection apart (one-time
// work such as lazy symbol resolution), then all the others.
class AllocationProbe {
 public:
  AllocationProbe() : count_(find_allocation_counter()) { start_ = read(); }
  void first_done() { first_ = read(); }
  void report(const char *side, long connections) const {
    if (count_ == nullptr) return;
    unsigned long end = read();
    printf("allocations side=%s connections=%ld first=%lu rest=%lu process=%lu\n", side,
           connections, first_ - start_, end - first_, end);
  }

 private:
  unsigned long read() const { return count_ != nullptr ? count_() : 0; }
  CountFn count_;
  unsigned long start_ = 0, first_ = 0;
};

// Sums the smaps fields of libkeepalive's mappings: those of its file, and
// the anonymous mapping right after them (the part of .bss beyond the file).
void report_memory(const char *side) {
  FILE *smaps = fopen("/proc/self/smaps", "r");
  if (smaps == nullptr) die("open /proc/self/smaps");
  char line[512];
  bool in_library = false;
  unsigned long library_end = 0;
  long size = 0, rss = 0, pss = 0, private_dirty = 0;
  while (fgets(line, sizeof line, smaps) != nullptr) {
    unsigned long start = 0, end = 0;
    int path_at = 0;
    if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %n", &start, &end, &path_at) == 2 &&
        strchr(line, '-') < strchr(line, ' ')) {
      const char *path = line + path_at;
      bool anonymous = *path == '\n' || *path == '\0';
      in_library = strstr(path, "libkeepalive.so") != nullptr ||
                   (anonymous && library_end != 0 && start == library_end);
      if (in_library) library_end = end;
      continue;
    }
    if (!in_library) continue;
    long kib = 0;
    if (sscanf(line, "Size: %ld kB", &kib) == 1) size += kib;
    if (sscanf(line, "Rss: %ld kB", &kib) == 1) rss += kib;
    if (sscanf(line, "Pss: %ld kB", &kib) == 1) pss += kib;
    if (sscanf(line, "Private_Dirty: %ld kB", &kib) == 1) private_dirty += kib;
  }
  fclose(smaps);
  long vmrss = 0, rss_anon = 0;
  FILE *status = fopen("/proc/self/status", "r");
  if (status == nullptr) die("open /proc/self/status");
  while (fgets(line, sizeof line, status) != nullptr) {
    sscanf(line, "VmRSS: %ld kB", &vmrss);
    sscanf(line, "RssAnon: %ld kB", &rss_anon);
  }
  fclose(status);
  printf(
      "memory side=%s vmrss_kib=%ld rss_anon_kib=%ld lib_size_kib=%ld lib_rss_kib=%ld "
      "lib_pss_kib=%ld lib_private_dirty_kib=%ld\n",
      side, vmrss, rss_anon, size, rss, pss, private_dirty);
}

// "keepalive side=SIDE on=0|1 idle=N": what the last connection carried, so
// that the driver sees each variant configured it (two getsockopt calls, on
// one connection of each run, in every variant).
void report_keepalive(const char *side, int fd) {
  int on = -1, idle = -1;
  socklen_t len = sizeof on;
  getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, &len);
  len = sizeof idle;
  getsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, &len);
  printf("keepalive side=%s on=%d idle=%d\n", side, on, idle);
}

void run_server(int listener, Shared *shared, long connections, bool exchange) {
  AllocationProbe allocations;
  char buf[kExchangeBytes];
  for (long i = 0; i < connections; ++i) {
    sockaddr_storage peer;
    socklen_t len = sizeof peer;
    int fd = accept(listener, reinterpret_cast<sockaddr *>(&peer), &len);
    if (fd < 0) {
      if (errno == EINTR) {
        --i;
        continue;
      }
      die("accept");
    }
    if (exchange) {
      transfer(fd, buf, sizeof buf, false);
      transfer(fd, buf, sizeof buf, true);
    }
    if (i == connections - 1) report_keepalive("server", fd);
    close(fd);
    __atomic_store_n(&shared->accepted, i + 1, __ATOMIC_RELEASE);
    if (i == 0) allocations.first_done();
  }
  allocations.report("server", connections);
}

long pauses;  // flow-control pauses of the client, reported for the driver

// Waits (without spinning a core) until the server has accepted connection i.
void wait_accepted(const Shared *shared, long i) {
  const timespec pause = {0, 20 * 1000};
  while (__atomic_load_n(&shared->accepted, __ATOMIC_ACQUIRE) <= i) {
    nanosleep(&pause, nullptr);
    ++pauses;
  }
}

void close_with_reset(int fd) {
  const linger reset = {1, 0};
  if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset) != 0) die("SO_LINGER");
  close(fd);
}

void run_client(unsigned port, Shared *shared, long connections, bool exchange) {
  char buf[kExchangeBytes];
  memset(buf, 'x', sizeof buf);
  sockaddr_in server;
  memset(&server, 0, sizeof server);
  server.sin_family = AF_INET;
  server.sin_port = htons(static_cast<uint16_t>(port));
  server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int open_fds[kWindow];
  AllocationProbe allocations;
  for (long i = 0; i < connections; ++i) {
    if (i >= kWindow) {
      wait_accepted(shared, i - kWindow);
      close_with_reset(open_fds[i % kWindow]);
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    if (connect(fd, reinterpret_cast<const sockaddr *>(&server), sizeof server) != 0) {
      die("connect");
    }
    if (exchange) {
      transfer(fd, buf, sizeof buf, true);
      transfer(fd, buf, sizeof buf, false);
    }
    open_fds[i % kWindow] = fd;
    if (i == 0) {
      allocations.first_done();
      // The first accept configures the listener (when the library can):
      // every later connection then meets the same listener, so that the
      // per-connection counts are exact.
      wait_accepted(shared, 0);
    }
  }
  report_keepalive("client", open_fds[(connections - 1) % kWindow]);
  for (long i = connections > kWindow ? connections - kWindow : 0; i < connections; ++i) {
    wait_accepted(shared, i);
    close_with_reset(open_fds[i % kWindow]);
  }
  allocations.report("client", connections);
  printf("flow side=client pauses=%ld\n", pauses);
}

}  // namespace

int main(int argc, char **argv) {
  bool memory = argc == 6 && strcmp(argv[5], "--memory") == 0;
  bool exchange = argc == 6 && strcmp(argv[5], "--exchange") == 0;
  if (argc < 5 || argc > 6 || (argc == 6 && !memory && !exchange)) {
    fprintf(stderr,
            "usage: ka_bench_churn server <listening-fd> <shared-fd> <connections> "
            "[--memory|--exchange]\n"
            "       ka_bench_churn client <port> <shared-fd> <connections> "
            "[--memory|--exchange]\n");
    return 2;
  }
  bool server = strcmp(argv[1], "server") == 0;
  if (!server && strcmp(argv[1], "client") != 0) return 2;
  long target = parse_long(argv[2]);
  Shared *shared = map_shared(static_cast<int>(parse_long(argv[3])));
  long connections = parse_long(argv[4]);
  if (server) {
    run_server(static_cast<int>(target), shared, connections, exchange);
  } else {
    run_client(static_cast<unsigned>(target), shared, connections, exchange);
  }
  if (memory) report_memory(server ? "server" : "client");
  return 0;
}
