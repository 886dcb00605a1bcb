// probe.h — what natprobe's client (client.cc) and server (server.cc)
// share: their limits, the options they read, and the sockets they use:
// keepalive switched off on a probe, an abortive close, whole lines read and
// sent, HOST:PORT split. The protocol, rounds and report are in natprobe.h.
#ifndef KEEPALIVE_TOOLS_NATPROBE_PROBE_H
#define KEEPALIVE_TOOLS_NATPROBE_PROBE_H

#include <stddef.h>

#include <string>
#include <string_view>
#include <vector>

#include "lib/options.h"
#include "lib/output.h"
#include "lib/process.h"
#include "lib/stop_signals.h"

namespace keepalive_natprobe {

// What the client and the server take from the command's shared pieces.
using keepalive_cli::format_duration_ms;
using keepalive_cli::format_endpoint;
using keepalive_cli::monotonic_s;
using keepalive_cli::StopSignals;
using keepalive_cli::UniqueFd;

inline constexpr char kName[] = "natprobe";
inline constexpr int kExitInterrupted = 130;
// Where the server listens without --listen: every address, IPv6 and IPv4,
// or IPv4 only on a machine without IPv6.
#define KEEPALIVE_NATPROBE_PORT "7200"
inline constexpr char kDefaultListen[] = "[::]:" KEEPALIVE_NATPROBE_PORT;
inline constexpr char kDefaultListenIpv4[] = "0.0.0.0:" KEEPALIVE_NATPROBE_PORT;
inline constexpr double kSetupTimeoutS = 10;  // connect, greeting, request, ARMED: each
inline constexpr long long kWakeUserTimeoutMs =
    30000;  // the server's WAKE line stops retrying after this
inline constexpr size_t kMaxServerConnections = 256;
// TCP_INFO counts in jiffies (4 ms at HZ=250, 10 ms at HZ=100): the server
// waits this much beyond the idle period, so that a line that arrives proves
// at least the idle period of real silence.
inline constexpr long long kJiffySlackMs = 10;
inline constexpr int kMaxRounds = 64;
inline constexpr int kMaxParallel = 128;             // at most half the server's connections
inline constexpr long long kMinResolutionMs = 1000;  // KEEPALIVE_IDLE is whole seconds
inline constexpr long long kMinGraceMs = 100;
inline constexpr long long kMaxGraceMs = 10 * 60 * 1000;
inline constexpr long long kDefaultGiveUpMs = 5 * 60 * 1000;  // --give-up-after
inline constexpr long long kMinGiveUpMs = 10 * 1000;

// The client's and the server's options (natprobe_command.cc), and the
// help that lists them.
extern const std::vector<keepalive_cli::Option> kClientOptions;
extern const std::vector<keepalive_cli::Option> kServerOptions;
void print_help();

// `keepalive natprobe client ...` and `... server ...`; argv[0] is the mode.
int run_client(int argc, char **argv);
int run_server(int argc, char **argv);

long long to_ms(double seconds);
// A span of time as text, cut to whole seconds: "4m30s" for 270.6 s.
std::string whole_seconds_text(double seconds);
// "ECONNRESET", or "error N".
std::string errno_name(int error);

// Switches keepalive off on a probe connection, whatever a preloaded
// libkeepalive (or the listening socket) set: SO_KEEPALIVE 0, TCP_USER_TIMEOUT
// back to the kernel's default, and SO_KEEPALIVE read back.
bool switch_keepalive_off(int fd, std::string *error);
// Closes with a reset: no FIN that the kernel would retransmit for minutes
// into a NAT that has forgotten the connection. Nothing when *fd is closed.
void close_abortively(keepalive_cli::UniqueFd *fd);
bool send_all(int fd, const std::string &text);
// Splits "host:port" / "[v6]:port", the port a number from `lowest_port`
// (0 for a server: any free port; 1 for a client) to 65535. An empty host
// is allowed (the caller decides).
bool split_endpoint(std::string_view text, int lowest_port, std::string *host, std::string *port,
                    std::string *error);

// What recv() gave for one read of a line-oriented connection.
enum class ReadState { kMore, kEof, kError };
// Reads what is ready into *buffer (never past kMaxLineBytes + what one recv
// brings). kError leaves errno set.
ReadState read_ready(int fd, std::string *buffer);
// Takes one "\n"-terminated line off the front of *buffer.
bool take_line(std::string *buffer, std::string *line);

}  // namespace keepalive_natprobe

#endif  // KEEPALIVE_TOOLS_NATPROBE_PROBE_H
