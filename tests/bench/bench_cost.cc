// bench_cost.cc — ka_bench_cost: what libkeepalive costs on the connection
// path, measured side by side in one run.
//
// It starts the churn workload (churn.cc: one server process accepting, one
// client process connecting and closing N loopback connections; bare, and
// with one 512-byte request and answer per connection) in these variants:
//   without  — no preload;
//   hooks    — libkeepalive preloaded in both processes with KEEPALIVE=off:
//              the hooks alone, nothing to set;
//   options  — libkeepalive preloaded in both processes, all four
//              KEEPALIVE_* options set;
//   rules16  — the same plus 16 rules by port whose last one matches
//              (bench_rules.h port_rules): the listener can carry them;
//   peer     — options plus one peer= rule that matches (127.0.0.0/8):
//              every accepted socket is an exception to its listener's
//              values, changed where they differ;
//   prosody  — options plus README's Prosody rules for the benchmark's port,
//              the loopback exception naming 127.0.0.2,::1 (the benchmark's
//              clients, from 127.0.0.1, stand for phones): the listener
//              carries the port's values, no accepted socket is an exception;
//   kernel   — no preload: `keepalive attach` with the options on the cgroup
//              the benchmark and its processes run in (root only);
//   options* rules16* peer* prosody* — the same with a candidate build of the library
//              (--candidate), to measure a proposed change in the same run.
// The listening socket is shared by all runs; it is reset to the kernel's
// values before each, so that every run starts from an unconfigured one.
// It prints, from measurement only:
//   1. time, for each workload: R rounds, each running every variant once
//      (order rotated per round); per round the ratio with/without of the
//      CPU time (user+sys of both processes, from wait4) and of the wall
//      time; the median ratio and its min–max over the rounds, the extra CPU
//      per connection, and the ratio of the fastest runs (least disturbed by
//      other load). Each run also reports how busy the machine was with
//      other work meanwhile (/proc/stat), to show the noise;
//   2. syscalls per connection and side, from `strace -c` at two loop sizes
//      (the difference cancels start-up), and one connection traced in full
//      to show exactly which calls are added;
//   3. heap allocations per connection, with alloc_counter.cc preloaded;
//   4. resident memory: the library's mappings, RssAnon and VmRSS;
//   5. the targets, met or missed (reported, never asserted).
// Nothing is hard-coded but the targets. The exit status is 0 unless the
// harness itself failed.
//
// Usage: ka_bench_cost --library <libkeepalive.so> --churn <ka_bench_churn>
//                      --alloc-counter <libka_alloc_counter.so>
//                      [--candidate <libkeepalive.so>] [--rounds R] [--seconds S]
//                      [--check-allocations]
// --check-allocations measures only the heap allocations and exits 1 unless
// the library adds none on the connection path, in any variant (the CTest
// bench_allocations, label integration).
// LIBKEEPALIVE_BENCH_ROUNDS, LIBKEEPALIVE_BENCH_SECONDS and
// LIBKEEPALIVE_BENCH_CANDIDATE set the defaults (7 rounds, 2.5 s per run, none).

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gnu/libc-version.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "bench_rules.h"

extern char **environ;

namespace {

// The cost targets (variant `options`, both ends configured): reported,
// never asserted.
constexpr double kTargetCpuRatioBare = 1.10;
constexpr double kTargetCpuRatioExchange = 1.04;
// Socket options the library sets with all four values given: SO_KEEPALIVE,
// TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT, TCP_USER_TIMEOUT.
constexpr int kOptionsSet = 5;
// Extra syscalls per connection: an accepted socket that inherits from its
// listener costs one read; a connecting socket the options and one read
// (its TCP_KEEPIDLE); with rules, the TCP state and (when a rule needs the
// destination) the copy of connect()'s address on top.
constexpr int kTargetServerCalls = 1;
// With peer= rules for incoming connections, the peer is read too; an
// exception to the listener's values costs the port and what it changes
// (target: on average, with the recommended rules).
constexpr int kTargetServerCallsWithPeerRules = 3;
constexpr int kTargetClientCalls = kOptionsSet + 1;

constexpr int kRuleCount = 16;

// Loop sizes of the probes (strace slows the loop down ~10x).
constexpr long kStraceSmall = 1000, kStraceLarge = 3000;
constexpr long kAllocationConnections = 5000;
constexpr long kMemoryConnections = 2000;
constexpr long kCalibrationConnections = 20000;

// The benchmark's own syscalls that vary from run to run: the client's
// flow-control pause (churn.cc). Left out of the syscall comparison.
const std::set<std::string> kFlowControl = {"nanosleep", "clock_nanosleep"};

const char *const kSides[] = {"server", "client"};

[[noreturn]] void fail(const std::string &what) {
  fprintf(stderr, "ka_bench_cost: %s%s%s\n", what.c_str(), errno ? ": " : "",
          errno ? strerror(errno) : "");
  exit(1);
}

double now_s() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

double cpu_s(const rusage &ru) {
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

std::string read_file(const std::string &path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string trim(const std::string &s) {
  size_t b = s.find_first_not_of(" \t\n"), e = s.find_last_not_of(" \t\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// --- statistics -------------------------------------------------------------

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string spread(const std::vector<double> &v, const char *format) {
  char buf[128];
  auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  std::string f = std::string("median ") + format + " (min " + format + ", max " + format + ")";
  snprintf(buf, sizeof buf, f.c_str(), median(v), *lo, *hi);
  return buf;
}

// --- the machine ------------------------------------------------------------

std::string cpu_model() {
  std::istringstream in(read_file("/proc/cpuinfo"));
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) return trim(line.substr(line.find(':') + 1));
  }
  return "unknown";
}

std::string load_average() { return trim(read_file("/proc/loadavg")); }

// Busy CPU seconds of the whole machine so far (every state but idle and
// iowait, steal included), from the first line of /proc/stat.
double machine_busy_s() {
  std::istringstream in(read_file("/proc/stat"));
  std::string cpu;
  double user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  in >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
  return (user + nice + system + irq + softirq + steal) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// --- the workload -----------------------------------------------------------

struct Variant {
  std::string name;
  std::string library;                   // empty: not preloaded
  std::vector<std::string> env;          // the KEEPALIVE_* variables
  std::vector<std::string> attach = {};  // kernel mode: `keepalive attach` environment
  bool preloaded() const { return !library.empty(); }
  bool kernel() const { return !attach.empty(); }
  bool baseline() const { return !preloaded() && !kernel(); }
};

std::vector<std::string> options_env() {
  std::vector<std::string> env;
  for (const auto &option : keepalive_bench::kGlobalOptions) {
    env.push_back(std::string(option[0]) + "=" + option[1]);
  }
  return env;
}

std::vector<std::string> with(std::vector<std::string> env, const std::string &entry) {
  env.push_back(entry);
  return env;
}

const char kPeerRule[] = "peer=127.0.0.0/8 idle=240";

// README's recommended Prosody rules, with `port` for 5222 and the loopback
// exception narrowed to addresses the benchmark's clients do not use.
std::string prosody_rules(unsigned port) {
  return "peer=127.0.0.2,::1 off; in port=" + std::to_string(port) +
         " idle=270 cnt=4; in port=5269 idle=600; out port=5269 idle=600; off";
}

std::vector<Variant> make_variants(const std::string &library, const std::string &candidate,
                                   unsigned port, bool kernel) {
  std::string rules16 = "KEEPALIVE_RULES=" + keepalive_bench::port_rules(kRuleCount, port);
  std::vector<Variant> variants = {
      {"without", "", {}},
      {"hooks", library, {"KEEPALIVE=off"}},
      {"options", library, options_env()},
      {"rules16", library, with(options_env(), rules16)},
      {"peer", library, with(options_env(), std::string("KEEPALIVE_RULES=") + kPeerRule)},
      {"prosody", library, with(options_env(), "KEEPALIVE_RULES=" + prosody_rules(port))}};
  if (kernel) variants.push_back({"kernel", "", {}, options_env()});
  if (!candidate.empty()) {
    variants.push_back({"options*", candidate, options_env()});
    variants.push_back({"rules16*", candidate, with(options_env(), rules16)});
    variants.push_back(
        {"peer*", candidate, with(options_env(), std::string("KEEPALIVE_RULES=") + kPeerRule)});
    variants.push_back(
        {"prosody*", candidate, with(options_env(), "KEEPALIVE_RULES=" + prosody_rules(port))});
  }
  return variants;
}

// The kernel's default for one keepalive value.
int kernel_default(const char *name) {
  return atoi(read_file(std::string("/proc/sys/net/ipv4/") + name).c_str());
}

enum class Probe { kNone, kStraceCount, kStraceTrace, kAllocations, kMemory };

struct Run {
  double cpu_s = 0, wall_s = 0;
  double others = 0;   // share of the machine busy with other work (or stolen) meanwhile
  std::string output;  // both processes' stdout
  std::string server_strace, client_strace;  // strace -o files
};

double ncpus() { return static_cast<double>(sysconf(_SC_NPROCESSORS_ONLN)); }

class Bench {
 public:
  Bench(std::string churn, std::string alloc_counter, std::string strace)
      : churn_(std::move(churn)),
        alloc_counter_(std::move(alloc_counter)),
        strace_(std::move(strace)) {
    listener_ = socket(AF_INET, SOCK_STREAM, 0);  // inherited by the server: no CLOEXEC
    if (listener_ < 0) fail("socket");
    sockaddr_in address;
    memset(&address, 0, sizeof address);
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof address;
    if (bind(listener_, reinterpret_cast<sockaddr *>(&address), sizeof address) != 0 ||
        listen(listener_, 4096) != 0 ||
        getsockname(listener_, reinterpret_cast<sockaddr *>(&address), &len) != 0) {
      fail("listening socket");
    }
    port_ = ntohs(address.sin_port);
    shared_fd_ = memfd_create("ka-bench-shared", 0);  // inherited: no CLOEXEC
    if (shared_fd_ < 0 || ftruncate(shared_fd_, 4096) != 0) fail("memfd");
    shared_ =
        static_cast<long *>(mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, shared_fd_, 0));
    if (shared_ == MAP_FAILED) fail("mmap");
  }
  Bench(const Bench &) = delete;
  Bench &operator=(const Bench &) = delete;
  ~Bench() {
    for (const std::string &path : temporaries_) unlink(path.c_str());
  }

  bool has_strace() const { return !strace_.empty(); }
  unsigned port() const { return port_; }
  // Kernel mode: the command that attaches, and the cgroup this process and
  // its children are in.
  void use_kernel_mode(std::string keepalive, std::string cgroup) {
    keepalive_ = std::move(keepalive);
    cgroup_ = std::move(cgroup);
  }

  // Runs server and client to completion; fails the benchmark if one fails.
  Run run(const Variant &variant, long connections, Probe probe, bool exchange = false) {
    *shared_ = 0;  // churn.cc's Shared::accepted
    reset_listener();
    std::vector<std::string> env = environment(variant, probe);
    Run result;
    std::string n = std::to_string(connections);
    std::vector<std::string> server = {churn_, "server", std::to_string(listener_),
                                       std::to_string(shared_fd_), n};
    std::vector<std::string> client = {churn_, "client", std::to_string(port_),
                                       std::to_string(shared_fd_), n};
    if (probe == Probe::kMemory || exchange) {
      server.push_back(exchange ? "--exchange" : "--memory");
      client.push_back(exchange ? "--exchange" : "--memory");
    }
    if (probe == Probe::kStraceCount || probe == Probe::kStraceTrace) {
      result.server_strace = temporary_path();
      result.client_strace = temporary_path();
      server = under_strace(server, env, result.server_strace, probe);
      client = under_strace(client, env, result.client_strace, probe);
      env = without_preload(env);
    }
    if (variant.kernel()) keepalive({"attach", cgroup_}, variant.attach);
    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0) fail("pipe");
    double start = now_s(), busy_start = machine_busy_s();
    pid_t pids[2] = {spawn(server, env, out[1]), spawn(client, env, out[1])};
    close(out[1]);
    for (int remaining = 2; remaining > 0; --remaining) {
      int status = 0;
      rusage ru;
      pid_t pid = wait4(-1, &status, 0, &ru);
      if (pid < 0) fail("wait4");
      result.cpu_s += cpu_s(ru);
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        for (pid_t other : pids) {
          if (other != pid) kill(other, SIGKILL);
        }
        errno = 0;
        fail("a churn process failed (" + variant.name + ")");
      }
    }
    result.wall_s = now_s() - start;
    if (variant.kernel()) keepalive({"detach", cgroup_}, {});
    double foreign_s = machine_busy_s() - busy_start - result.cpu_s;
    result.others = std::max(0.0, foreign_s / (result.wall_s * ncpus()));
    // The reports are a few lines: they fit the pipe, so reading after the
    // processes ended cannot block them.
    char buf[4096];
    for (ssize_t got; (got = read(out[0], buf, sizeof buf)) > 0;) result.output.append(buf, got);
    close(out[0]);
    return result;
  }

 private:
  // The listener as the kernel makes it: what a preloaded server set on it
  // in an earlier run must not decide this one.
  void reset_listener() const {
    const int values[][3] = {{SOL_SOCKET, SO_KEEPALIVE, 0},
                             {IPPROTO_TCP, TCP_KEEPIDLE, kernel_default("tcp_keepalive_time")},
                             {IPPROTO_TCP, TCP_KEEPINTVL, kernel_default("tcp_keepalive_intvl")},
                             {IPPROTO_TCP, TCP_KEEPCNT, kernel_default("tcp_keepalive_probes")},
                             {IPPROTO_TCP, TCP_USER_TIMEOUT, 0}};
    for (const auto &v : values) {
      if (setsockopt(listener_, v[0], v[1], &v[2], sizeof v[2]) != 0) fail("reset the listener");
    }
  }

  std::vector<std::string> environment(const Variant &variant, Probe probe) const {
    std::vector<std::string> env;
    for (char **e = environ; *e != nullptr; ++e) {
      std::string entry = *e;
      if (entry.rfind("LD_PRELOAD=", 0) == 0 || entry.rfind("KEEPALIVE", 0) == 0) continue;
      env.push_back(entry);
    }
    std::string preload;
    if (probe == Probe::kAllocations) preload = alloc_counter_;
    if (variant.preloaded()) {
      preload += (preload.empty() ? "" : " ") + variant.library;
      env.insert(env.end(), variant.env.begin(), variant.env.end());
    }
    if (!preload.empty()) env.push_back("LD_PRELOAD=" + preload);
    return env;
  }

  static std::vector<std::string> without_preload(std::vector<std::string> env) {
    env.erase(std::remove_if(env.begin(), env.end(),
                             [](const std::string &e) { return e.rfind("LD_PRELOAD=", 0) == 0; }),
              env.end());
    return env;
  }

  // strace's own environment has no LD_PRELOAD; the traced program gets it
  // with -E, so that only the program is preloaded.
  std::vector<std::string> under_strace(const std::vector<std::string> &command,
                                        const std::vector<std::string> &env,
                                        const std::string &output, Probe probe) const {
    std::vector<std::string> argv = {strace_, "-o", output};
    if (probe == Probe::kStraceCount) {
      argv.push_back("-c");
    } else {
      argv.insert(argv.end(), {"-e", "trace=getsockopt,setsockopt,getsockname,getpeername"});
    }
    for (const std::string &e : env) {
      if (e.rfind("LD_PRELOAD=", 0) == 0) argv.insert(argv.end(), {"-E", e});
    }
    argv.push_back("--");
    argv.insert(argv.end(), command.begin(), command.end());
    return argv;
  }

  // `keepalive ARGS` with `env` (the configuration) and nothing else; its
  // output discarded unless it fails.
  void keepalive(std::vector<std::string> args, const std::vector<std::string> &env) const {
    args.insert(args.begin(), keepalive_);
    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0) fail("pipe");
    pid_t pid = spawn(args, env, out[1]);
    close(out[1]);
    std::string output;
    char buf[4096];
    for (ssize_t got; (got = read(out[0], buf, sizeof buf)) > 0;) output.append(buf, got);
    close(out[0]);
    int status = 0;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      errno = 0;
      fail("keepalive " + args[1] + " failed: " + output);
    }
  }

  std::string temporary_path() {
    char path[] = "/tmp/ka-bench-strace-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) fail("mkstemp");
    close(fd);
    temporaries_.push_back(path);
    return path;
  }

  static pid_t spawn(const std::vector<std::string> &argv, const std::vector<std::string> &env,
                     int stdout_fd) {
    std::vector<char *> args, envp;
    for (const std::string &a : argv) args.push_back(const_cast<char *>(a.c_str()));
    for (const std::string &e : env) envp.push_back(const_cast<char *>(e.c_str()));
    args.push_back(nullptr);
    envp.push_back(nullptr);
    pid_t pid = fork();
    if (pid < 0) fail("fork");
    if (pid == 0) {
      dup2(stdout_fd, STDOUT_FILENO);
      execve(args[0], args.data(), envp.data());
      fprintf(stderr, "ka_bench_cost: exec %s: %s\n", args[0], strerror(errno));
      _exit(127);
    }
    return pid;
  }

  std::string churn_, alloc_counter_, strace_, keepalive_, cgroup_;
  int listener_ = -1, shared_fd_ = -1;
  unsigned port_ = 0;
  long *shared_ = nullptr;
  std::vector<std::string> temporaries_;
};

// The value of `key` on the output line that starts with `prefix`.
long field(const std::string &output, const std::string &prefix, const std::string &key) {
  std::istringstream in(output);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(prefix, 0) != 0) continue;
    size_t at = line.find(" " + key + "=");
    if (at == std::string::npos) break;
    return atol(line.c_str() + at + key.size() + 2);
  }
  errno = 0;
  fail("no " + key + " in the output line " + prefix + ":\n" + output);
}

// --- 1. time ----------------------------------------------------------------

long calibrate(Bench &bench, const Variant &without, double seconds, bool exchange) {
  Run run = bench.run(without, kCalibrationConnections, Probe::kNone, exchange);
  double per_connection = run.wall_s / static_cast<double>(kCalibrationConnections);
  long n = std::max(kCalibrationConnections,
                    static_cast<long>(std::ceil(seconds / per_connection / 1000.0)) * 1000);
  printf("calibration%s: %ld connections without the library took %.2f s wall -> N = %ld\n",
         exchange ? " (512-byte exchange)" : "", kCalibrationConnections, run.wall_s, n);
  return n;
}

struct TimeFigures {
  std::map<std::string, std::vector<double>> cpu_ratio, wall_ratio, extra_cpu_us;
};

TimeFigures measure_time(Bench &bench, const std::vector<Variant> &variants, long n, int rounds,
                         bool exchange) {
  printf(
      "\n== 1%s. %s: %ld connections per run, %d rounds, variant order rotated "
      "each round\n",
      exchange ? "b" : "a",
      exchange ? "One 512-byte request and answer per connection" : "Bare connection churn", n,
      rounds);
  printf(
      "   cpu = user+sys s of server and client (wait4); others = share of the machine busy "
      "with other work or stolen meanwhile (noise)\n");
  TimeFigures figures;
  std::map<std::string, std::vector<double>> cpu_per_connection;
  std::vector<double> others, pauses;
  std::map<std::string, std::string> carried;  // the last connection's keepalive, per variant
  size_t count = variants.size();
  for (int round = 0; round < rounds; ++round) {
    std::map<std::string, Run> runs;
    for (size_t j = 0; j < count; ++j) {
      const Variant &v = variants[(static_cast<size_t>(round) + j) % count];
      runs[v.name] = bench.run(v, n, Probe::kNone, exchange);
    }
    const Run &base = runs[variants[0].name];
    printf("round %d:", round + 1);
    for (const Variant &v : variants) {
      const Run &r = runs[v.name];
      printf("  %s cpu %.2f wall %.2f others %.0f%%", v.name.c_str(), r.cpu_s, r.wall_s,
             r.others * 100);
      others.push_back(r.others * 100);
      pauses.push_back(static_cast<double>(field(r.output, "flow side=client", "pauses")) /
                       static_cast<double>(n));
      cpu_per_connection[v.name].push_back(r.cpu_s / static_cast<double>(n) * 1e6);
      carried[v.name] = "server SO_KEEPALIVE " +
                        std::to_string(field(r.output, "keepalive side=server", "on")) + " idle " +
                        std::to_string(field(r.output, "keepalive side=server", "idle")) +
                        ", client SO_KEEPALIVE " +
                        std::to_string(field(r.output, "keepalive side=client", "on")) + " idle " +
                        std::to_string(field(r.output, "keepalive side=client", "idle"));
      if (v.baseline()) continue;
      figures.cpu_ratio[v.name].push_back(r.cpu_s / base.cpu_s);
      figures.wall_ratio[v.name].push_back(r.wall_s / base.wall_s);
      figures.extra_cpu_us[v.name].push_back((r.cpu_s - base.cpu_s) / static_cast<double>(n) * 1e6);
    }
    printf("\n");
    fflush(stdout);
  }
  printf("other work on the machine during these runs: %s %%\n", spread(others, "%.0f").c_str());
  printf("client flow-control pauses per connection: %s\n", spread(pauses, "%.4f").c_str());
  printf("what each variant's last connection carried (read by the churn processes):\n");
  for (const Variant &v : variants) printf("  %-8s %s\n", v.name.c_str(), carried[v.name].c_str());
  printf("CPU per connection, both processes (us):\n");
  for (const Variant &v : variants) {
    printf("  %-8s %s\n", v.name.c_str(), spread(cpu_per_connection[v.name], "%.2f").c_str());
  }
  const std::vector<double> &base = cpu_per_connection[variants[0].name];
  printf("with/without (ratios within each round; spread over the rounds):\n");
  for (const Variant &v : variants) {
    if (v.baseline()) continue;
    const std::vector<double> &cpu = cpu_per_connection[v.name];
    printf("  %-8s CPU ratio %s; fastest runs' ratio %.3f\n", v.name.c_str(),
           spread(figures.cpu_ratio[v.name], "%.3f").c_str(),
           *std::min_element(cpu.begin(), cpu.end()) / *std::min_element(base.begin(), base.end()));
    printf("  %-8s wall ratio %s\n", "", spread(figures.wall_ratio[v.name], "%.3f").c_str());
    printf("  %-8s extra CPU per connection %s us\n", "",
           spread(figures.extra_cpu_us[v.name], "%.2f").c_str());
  }
  return figures;
}

// --- 2. syscalls ------------------------------------------------------------

struct SyscallCount {
  long calls = 0, errors = 0;
};
using SyscallCounts = std::map<std::string, SyscallCount>;

// Parses the table of `strace -c`: the rows between the first two rulers.
SyscallCounts parse_strace_summary(const std::string &path) {
  SyscallCounts counts;
  std::istringstream in(read_file(path));
  int rulers = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("------", 0) == 0) {
      ++rulers;
      continue;
    }
    if (rulers != 1) continue;
    std::istringstream words(line);
    std::vector<std::string> w;
    for (std::string word; words >> word;) w.push_back(word);
    if (w.size() < 5) continue;  // % time, seconds, usecs/call, calls, [errors,] syscall
    counts[w.back()] = {atol(w[3].c_str()), w.size() == 6 ? atol(w[4].c_str()) : 0};
  }
  if (counts.empty()) {
    errno = 0;
    fail("no strace summary in " + path);
  }
  return counts;
}

SyscallCount count_of(const SyscallCounts &counts, const std::string &name) {
  auto it = counts.find(name);
  return it == counts.end() ? SyscallCount() : it->second;
}

// One side's counts at the two loop sizes.
struct SizedCounts {
  SyscallCounts small, large;
};

// Calls per connection of one side: (large − small) / (large − small size).
double calls_per_connection(const SizedCounts &c) {
  long calls = 0;
  for (const auto &[name, count] : c.large) {
    if (!kFlowControl.count(name)) calls += count.calls - count_of(c.small, name).calls;
  }
  return static_cast<double>(calls) / static_cast<double>(kStraceLarge - kStraceSmall);
}

// Extra calls per connection, with − without, per syscall; start-up costs
// cancel out in the difference of the two sizes.
struct Extra {
  std::map<std::string, double> per_connection, errors_per_connection;
  double total = 0;
  long one_time = 0;  // calls added once per process (loading the library)
};

Extra extra_calls(const SizedCounts &with, const SizedCounts &without) {
  std::set<std::string> names;
  for (const SyscallCounts *counts : {&with.small, &with.large, &without.small, &without.large}) {
    for (const auto &entry : *counts) names.insert(entry.first);
  }
  Extra extra;
  double span = static_cast<double>(kStraceLarge - kStraceSmall);
  for (const std::string &name : names) {
    if (kFlowControl.count(name)) continue;
    auto added = [&](const SyscallCounts &w, const SyscallCounts &wo) {
      return count_of(w, name).calls - count_of(wo, name).calls;
    };
    auto added_errors = [&](const SyscallCounts &w, const SyscallCounts &wo) {
      return count_of(w, name).errors - count_of(wo, name).errors;
    };
    long small = added(with.small, without.small);
    double per = static_cast<double>(added(with.large, without.large) - small) / span;
    double errors = static_cast<double>(added_errors(with.large, without.large) -
                                        added_errors(with.small, without.small)) /
                    span;
    if (per != 0) extra.per_connection[name] = per;
    if (errors != 0) extra.errors_per_connection[name] = errors;
    extra.total += per;
    extra.one_time += small - std::lround(per * static_cast<double>(kStraceSmall));
  }
  return extra;
}

void print_extra(const std::string &variant, const char *side, const Extra &extra) {
  printf("  %-8s %-7s %5.2f extra calls per connection:", variant.c_str(), side, extra.total);
  for (const auto &[name, per] : extra.per_connection) printf(" %s %+.2f", name.c_str(), per);
  if (extra.per_connection.empty()) printf(" none");
  for (const auto &[name, per] : extra.errors_per_connection) {
    printf(" (failing: %s %+.2f)", name.c_str(), per);
  }
  printf("; once per process %+ld\n", extra.one_time);
}

// Prints the traced socket calls of two connections, per side: the first
// may configure the listener, the second shows what every later one costs.
void print_one_connection(Bench &bench, const Variant &variant) {
  Run run = bench.run(variant, 2, Probe::kStraceTrace);
  for (const char *side : kSides) {
    bool server = strcmp(side, "server") == 0;
    printf("  %s, %s, two connections:\n", variant.name.c_str(),
           server ? "server (accept)" : "client (connect)");
    std::istringstream in(read_file(server ? run.server_strace : run.client_strace));
    for (std::string line; std::getline(in, line);) {
      if (line.find("+++ exited") != std::string::npos) continue;
      bool own = line.find("SO_LINGER") != std::string::npos;
      printf("    %s%s\n", line.c_str(), own ? "   <- the benchmark's own close" : "");
    }
  }
}

// variant → side → extra calls per connection.
using SyscallFigures = std::map<std::string, std::map<std::string, Extra>>;

SyscallFigures measure_syscalls(Bench &bench, const std::vector<Variant> &variants) {
  SyscallFigures figures;
  printf(
      "\n== 2. Syscalls per connection and side (strace -c at %ld and %ld connections; "
      "the client's flow-control pauses left out)\n",
      kStraceSmall, kStraceLarge);
  if (!bench.has_strace()) {
    printf("  SKIPPED: strace not found (Debian: apt-get install strace)\n");
    return figures;
  }
  std::map<std::string, std::map<std::string, SizedCounts>> counts;  // variant → side
  for (const Variant &v : variants) {
    for (long n : {kStraceSmall, kStraceLarge}) {
      Run run = bench.run(v, n, Probe::kStraceCount);
      SyscallCounts server = parse_strace_summary(run.server_strace);
      SyscallCounts client = parse_strace_summary(run.client_strace);
      (n == kStraceSmall ? counts[v.name]["server"].small : counts[v.name]["server"].large) =
          server;
      (n == kStraceSmall ? counts[v.name]["client"].small : counts[v.name]["client"].large) =
          client;
    }
  }
  const auto &base = counts[variants[0].name];
  printf("  without the library: server %.2f calls per connection, client %.2f\n",
         calls_per_connection(base.at("server")), calls_per_connection(base.at("client")));
  for (const Variant &v : variants) {
    if (v.baseline()) continue;
    for (const char *side : kSides) {
      figures[v.name][side] = extra_calls(counts[v.name][side], base.at(side));
      print_extra(v.name, side, figures[v.name][side]);
    }
  }
  for (const Variant &v : variants) {
    if (v.preloaded()) print_one_connection(bench, v);
  }
  return figures;
}

// --- 3. allocations ---------------------------------------------------------

// variant → extra allocations per connection (the larger side), with − without.
std::map<std::string, double> measure_allocations(Bench &bench,
                                                  const std::vector<Variant> &variants) {
  printf(
      "\n== 3. Heap allocations, counted inside the connection loop (%ld connections; the "
      "allocation counter preloaded in every variant)\n",
      kAllocationConnections);
  std::map<std::string, double> extra;
  std::map<std::string, double> base;  // side → per connection without
  for (const Variant &v : variants) {
    Run run = bench.run(v, kAllocationConnections, Probe::kAllocations);
    for (const char *side : kSides) {
      std::string prefix = std::string("allocations side=") + side;
      long rest = field(run.output, prefix, "rest");
      double per = static_cast<double>(rest) / static_cast<double>(kAllocationConnections - 1);
      printf(
          "  %-8s %-7s %.4f per connection (connections 2..%ld: %ld); first connection %ld; "
          "whole process %ld\n",
          v.name.c_str(), side, per, kAllocationConnections, rest,
          field(run.output, prefix, "first"), field(run.output, prefix, "process"));
      if (v.baseline()) {
        base[side] = per;
      } else {
        extra[v.name] = std::max(extra[v.name], per - base[side]);
      }
    }
  }
  return extra;
}

// --- 4. memory --------------------------------------------------------------

void measure_memory(Bench &bench, const std::vector<Variant> &variants) {
  printf(
      "\n== 4. Resident memory at the end of a %ld-connection run (library: its file "
      "mappings and its anonymous .bss tail)\n",
      kMemoryConnections);
  std::map<std::string, std::string> outputs;
  for (const Variant &v : variants) {
    outputs[v.name] = bench.run(v, kMemoryConnections, Probe::kMemory).output;
  }
  const std::string &base = outputs[variants[0].name];
  for (const char *side : kSides) {
    std::string prefix = std::string("memory side=") + side;
    for (const Variant &v : variants) {
      if (!v.preloaded()) continue;
      const std::string &out = outputs[v.name];
      printf(
          "  %-8s %-7s library: size %ld KiB, resident %ld KiB, private dirty %ld KiB, "
          "PSS %ld KiB; process vs without: RssAnon %+ld KiB, VmRSS %+ld KiB (with shared file "
          "pages: noisy)\n",
          v.name.c_str(), side, field(out, prefix, "lib_size_kib"),
          field(out, prefix, "lib_rss_kib"), field(out, prefix, "lib_private_dirty_kib"),
          field(out, prefix, "lib_pss_kib"),
          field(out, prefix, "rss_anon_kib") - field(base, prefix, "rss_anon_kib"),
          field(out, prefix, "vmrss_kib") - field(base, prefix, "vmrss_kib"));
    }
  }
}

// --- 5. targets -------------------------------------------------------------

void print_targets(const std::vector<Variant> &variants, const TimeFigures &bare,
                   const TimeFigures &exchange, const SyscallFigures &syscalls,
                   const std::map<std::string, double> &allocs) {
  printf("\n== 5. Targets (reported, not asserted)\n");
  auto met = [](bool ok) { return ok ? "met" : "MISSED"; };
  double ratio = median(bare.cpu_ratio.at("options"));
  printf("  options  median CPU ratio, bare churn %.3f <= %.2f: %s\n", ratio, kTargetCpuRatioBare,
         met(ratio <= kTargetCpuRatioBare));
  ratio = median(exchange.cpu_ratio.at("options"));
  printf("  options  median CPU ratio, 512-byte exchange %.3f <= %.2f: %s\n", ratio,
         kTargetCpuRatioExchange, met(ratio <= kTargetCpuRatioExchange));
  for (const Variant &v : variants) {
    if (v.baseline()) continue;
    auto found = syscalls.find(v.name);
    if (found == syscalls.end()) {
      printf("  %-8s extra syscalls per connection: not measured (no strace)\n", v.name.c_str());
    } else {
      double server = found->second.at("server").total, client = found->second.at("client").total;
      const bool peer_rules = v.name.rfind("peer", 0) == 0 || v.name.rfind("prosody", 0) == 0;
      const int target = v.kernel()   ? 0
                         : peer_rules ? kTargetServerCallsWithPeerRules
                                      : kTargetServerCalls;
      printf("  %-8s server: extra syscalls per accepted socket %.2f <= %d%s: %s\n", v.name.c_str(),
             server, target, v.name.rfind("peer", 0) == 0 ? " (every socket an exception)" : "",
             met(server <= target));
      bool by_destination = v.name.rfind("rules16", 0) == 0;
      if (v.kernel()) {
        printf("  %-8s client: extra syscalls per connected socket %.2f <= 0: %s\n", v.name.c_str(),
               client, met(client <= 0));
      } else if (!peer_rules) {  // theirs: the options with a peer to read, or off
        printf(
            "  %-8s client: extra syscalls per connected socket %.2f <= %d (%d options + 1): %s\n",
            v.name.c_str(), client, kTargetClientCalls, kOptionsSet,
            by_destination ? "(rules: the TCP state and a copy of connect()'s address, +2 expected)"
                           : met(client <= kTargetClientCalls));
      }
    }
    double per = allocs.at(v.name);
    printf("  %-8s extra heap allocations per connection %.4f == 0: %s\n", v.name.c_str(), per,
           met(per == 0));
  }
  printf("  decision < 100 ns with 64 rules: see the bench_core test (ka_bench_core)\n");
}

// Kernel mode's cgroup: this process moves into a cgroup of its own (so do
// the listener, made next, and the churn processes it starts), and the
// kernel variant attaches the program there for its runs only. Back where
// it was, and the directory removed, at the end. Needs root and a cgroup2
// mount; `why` says what is missing.
struct KernelCgroup {
  std::string home, dir, why;

  explicit KernelCgroup(const std::string &keepalive) {
    if (keepalive.empty()) {
      why = "no --keepalive command given";
      return;
    }
    if (geteuid() != 0) {
      why = "needs root";
      return;
    }
    std::string mount_point, relative = "/";
    std::istringstream mounts(read_file("/proc/self/mountinfo"));
    for (std::string line; std::getline(mounts, line) && mount_point.empty();) {
      std::istringstream fields(line);
      std::string field, point;
      for (int i = 0; i < 5 && fields >> field; ++i) point = field;
      while (fields >> field && field != "-") {
      }
      if (fields >> field && field == "cgroup2") mount_point = point;
    }
    std::istringstream cgroups(read_file("/proc/self/cgroup"));
    for (std::string line; std::getline(cgroups, line);) {
      if (line.rfind("0::", 0) == 0) relative = line.substr(3);
    }
    if (mount_point.empty()) {
      why = "no cgroup2 mount";
      return;
    }
    home = mount_point + (relative == "/" ? "" : relative);
    dir = home + "/ka-bench-" + std::to_string(getpid());
    if (mkdir(dir.c_str(), 0755) != 0 || !move_here(dir)) {
      why = "cannot make and enter " + dir + ": " + strerror(errno);
      rmdir(dir.c_str());
      dir.clear();
    }
  }
  KernelCgroup(const KernelCgroup &) = delete;
  KernelCgroup &operator=(const KernelCgroup &) = delete;
  ~KernelCgroup() {
    if (dir.empty()) return;
    move_here(home);
    rmdir(dir.c_str());
  }
  static bool move_here(const std::string &cgroup) {
    std::ofstream procs(cgroup + "/cgroup.procs");
    procs << getpid() << std::flush;
    return static_cast<bool>(procs);
  }
};

std::string find_in_path(const char *name) {
  const char *path = getenv("PATH");
  std::istringstream dirs(path != nullptr ? path : "/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    std::string candidate = dir + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

const char *env_or(const char *name, const char *fallback) {
  const char *value = getenv(name);
  return value != nullptr && *value != '\0' ? value : fallback;
}

}  // namespace

int main(int argc, char **argv) {
  std::string library, churn, alloc_counter, keepalive;
  std::string candidate = env_or("LIBKEEPALIVE_BENCH_CANDIDATE", "");
  int rounds = atoi(env_or("LIBKEEPALIVE_BENCH_ROUNDS", "7"));
  double seconds = atof(env_or("LIBKEEPALIVE_BENCH_SECONDS", "2.5"));
  bool check_allocations = argc > 1 && strcmp(argv[argc - 1], "--check-allocations") == 0;
  if (check_allocations) --argc;
  bool usage = argc % 2 == 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--library") {
      library = argv[i + 1];
    } else if (flag == "--churn") {
      churn = argv[i + 1];
    } else if (flag == "--alloc-counter") {
      alloc_counter = argv[i + 1];
    } else if (flag == "--keepalive") {
      keepalive = argv[i + 1];
    } else if (flag == "--candidate") {
      candidate = argv[i + 1];
    } else if (flag == "--rounds") {
      rounds = atoi(argv[i + 1]);
    } else if (flag == "--seconds") {
      seconds = atof(argv[i + 1]);
    } else {
      usage = true;
    }
  }
  if (usage || library.empty() || churn.empty() || alloc_counter.empty() || rounds < 1 ||
      seconds <= 0) {
    fprintf(stderr,
            "usage: ka_bench_cost --library <libkeepalive.so> --churn <ka_bench_churn> "
            "--alloc-counter <libka_alloc_counter.so> [--candidate <libkeepalive.so>] "
            "[--keepalive <keepalive command>] [--rounds R] [--seconds S] "
            "[--check-allocations]\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);

  utsname u;
  uname(&u);
  printf("machine: %ld CPUs online, %s, kernel %s %s, glibc %s\n", sysconf(_SC_NPROCESSORS_ONLN),
         cpu_model().c_str(), u.release, u.machine, gnu_get_libc_version());
  printf("library: %s (build type %s)\n", library.c_str(), LIBKEEPALIVE_BENCH_BUILD_TYPE);
  if (!candidate.empty()) printf("candidate (variants marked *): %s\n", candidate.c_str());
  printf("load average at start: %s\n", load_average().c_str());

  KernelCgroup cgroup(keepalive);  // before the listener: it belongs to the cgroup
  Bench bench(churn, alloc_counter, find_in_path("strace"));
  if (cgroup.why.empty()) bench.use_kernel_mode(keepalive, cgroup.dir);
  std::vector<Variant> variants =
      make_variants(library, candidate, bench.port(), cgroup.why.empty());
  if (check_allocations) {
    // The test form (CTest bench_allocations): the exact figure, asserted.
    std::map<std::string, double> allocations = measure_allocations(bench, variants);
    bool none = true;
    for (const auto &[name, per] : allocations) none = none && per == 0;
    printf("%s\n", none ? "no extra heap allocation on the connection path"
                        : "FAILED: extra heap allocations on the connection path");
    return none ? 0 : 1;
  }
  printf("hooks: LD_PRELOAD in both processes, KEEPALIVE=off\n");
  printf("options: LD_PRELOAD in both processes, ");
  for (const auto &option : keepalive_bench::kGlobalOptions) printf("%s=%s ", option[0], option[1]);
  printf(
      "\nrules16: options + KEEPALIVE_RULES of %d rules by port, only the last matching:\n  %s\n",
      kRuleCount, keepalive_bench::port_rules(kRuleCount, bench.port()).c_str());
  printf("peer: options + KEEPALIVE_RULES=%s\n", kPeerRule);
  printf("prosody: options + KEEPALIVE_RULES=%s\n", prosody_rules(bench.port()).c_str());
  if (cgroup.why.empty()) {
    printf("kernel: no preload; `keepalive attach` with the options on the cgroup %s\n",
           cgroup.dir.c_str());
  } else {
    printf("kernel: SKIPPED (%s)\n", cgroup.why.c_str());
  }
  fflush(stdout);

  long n = calibrate(bench, variants[0], seconds, false);
  TimeFigures bare = measure_time(bench, variants, n, rounds, false);
  long n_exchange = calibrate(bench, variants[0], seconds, true);
  TimeFigures exchange = measure_time(bench, variants, n_exchange, rounds, true);
  SyscallFigures syscalls = measure_syscalls(bench, variants);
  std::map<std::string, double> allocations = measure_allocations(bench, variants);
  measure_memory(bench, variants);
  print_targets(variants, bare, exchange, syscalls, allocations);
  printf("\nload average at end: %s\n", load_average().c_str());
  return 0;
}
