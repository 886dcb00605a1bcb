// natprobe.h — the pure parts of `keepalive natprobe` (natprobe_command.cc holds
// the sockets): the line protocol between client and server, the idle periods
// each round probes, the bracket of the NAT's idle timeout the trials give,
// the recommended KEEPALIVE_IDLE, and the final report as text and JSON.
// No I/O and no clock: tests/tools/natprobe_plan_test.cc tests all of it.
//
// Durations are whole milliseconds, as keepalive_parse_duration_ms gives them.
#ifndef KEEPALIVE_TOOLS_NATPROBE_H
#define KEEPALIVE_TOOLS_NATPROBE_H

#include <stddef.h>

#include <string>
#include <string_view>
#include <vector>

namespace keepalive_natprobe {

// ---- protocol ---------------------------------------------------------------
// One probe is one TCP connection carrying a few ASCII lines ending in "\n":
//
//   server  KEEPALIVE-NATPROBE 2 ID  greeting: magic, protocol version and the
//                                    server process's instance (16 hex digits,
//                                    random at its start: a restarted server
//                                    is told from the one before)
//   client  IDLE <ms>                "after <ms> of silence, send me a line"
//   server  ARMED <ms>               the silence starts with the client's ACK of this
//           ... no packet in either direction: no data, no keepalive ...
//   server  WAKE <ms>                the silence the server's kernel saw; then it closes
//
// Instead of any line the server may send "ERROR <text>" and close. Lines are
// at most kMaxLineBytes long, "\n" included.
inline constexpr char kMagic[] = "KEEPALIVE-NATPROBE";
inline constexpr int kProtocolVersion = 2;
inline constexpr size_t kMaxLineBytes = 128;
// The ERROR text a stopping server sends on the probes it still holds.
inline constexpr char kStoppingMessage[] = "server stopping";
inline constexpr long long kMaxIdleMs = 24LL * 3600 * 1000;  // longest IDLE a server accepts

std::string new_instance();                            // "9f86d081884c7d65", random
std::string greeting_line(std::string_view instance);  // "KEEPALIVE-NATPROBE 2 9f86...\n"
std::string idle_line(long long idle_ms);              // "IDLE 4550\n"
std::string armed_line(long long idle_ms);             // "ARMED 4550\n"
std::string wake_line(long long silence_ms);           // "WAKE 4551\n"
std::string error_line(std::string_view message);      // "ERROR busy\n" (control bytes dropped)

// A line from the server (without its "\n"), as the client reads it.
struct ServerLine {
  enum class Kind { kGreeting, kArmed, kWake, kError, kUnknown };
  Kind kind = Kind::kUnknown;
  int version = 0;       // kGreeting: the server's protocol version (any number)
  std::string instance;  // kGreeting: the server's instance ("" from version 1)
  long long ms = 0;      // kArmed: the idle time; kWake: the silence measured
  std::string text;      // kError: the server's message
};
ServerLine parse_server_line(std::string_view line);

// The client's request (without "\n"): true and *idle_ms for "IDLE <ms>" with
// 1 <= ms <= kMaxIdleMs; false and *error (short, for an ERROR line) otherwise.
bool parse_idle_line(std::string_view line, long long *idle_ms, std::string *error);

// Bytes from a peer, fit for an error message: printable ASCII kept, "\r"
// "\n" "\t" and other bytes as \r \n \t \xNN, cut to `max` bytes with "...".
std::string printable(std::string_view bytes, size_t max = 60);

// ---- trials and the bracket -------------------------------------------------

struct Settings {
  long long max_ms = 30 * 60 * 1000;    // --max: the longest idle period probed
  long long resolution_ms = 10 * 1000;  // --resolution: stop when the bracket is this narrow
  long long grace_ms = 5 * 1000;        // --grace: how long after the idle period to wait
  int parallel = 8;                     // --parallel: connections per round
};

// How a probe ended. Everything but kSurvived counts as lost.
enum class Outcome {
  kSurvived,  // the WAKE line arrived
  kSilent,    // nothing arrived within the idle period plus the grace period
  kReset,     // the connection was reset (a NAT that sends RST when it forgets)
  kClosed,    // the connection was closed (FIN) before the WAKE line
  kFailed,    // another socket error (e.g. host unreachable) while idle
};
const char *outcome_name(Outcome outcome);  // "survived", "silent", "reset", "closed", "failed"

struct Trial {
  int round = 0;          // 1-based
  long long idle_ms = 0;  // the idle period asked for
  Outcome outcome = Outcome::kSilent;
  long long silence_ms = -1;     // kSurvived: the silence the server measured; else -1
  std::string detail;            // kFailed: the error's name (EHOSTUNREACH); else ""
  long long round_trip_ms = -1;  // the client's smoothed RTT when ARMED came (TCP_INFO); -1 unknown
};

// The longest round trip the trials saw (-1: none known). The server counts
// the silence from when the client's ACK of ARMED reaches it, the NAT from
// when that ACK passed it, and the WAKE line reaches the NAT after it left
// the server: the NAT sees up to one NAT-to-server round trip more silence
// than asked for. So a loss at U bounds T only to T <= U + this.
long long longest_round_trip_ms(const std::vector<Trial> &trials);

// The NAT's idle timeout T, as the trials bound it: lower_ms < T <= upper_ms.
//
// A survival is proof (the line arrived after that much silence); a loss may
// be the path's fault (an outage, a lost packet, a radio that wakes late)
// rather than the NAT's. So a loss bounds T only once it is confirmed: a
// loss at L is confirmed when the losses above the lower bound and at most L
// were seen in at least two rounds (two probes, set up at different times).
// A single loss is probed again before it counts; a loss that a longer
// silence survived later is ignored as transient.
struct Bracket {
  long long lower_ms = 0;   // longest idle period that survived below the confirmed upper (0: none)
  long long upper_ms = -1;  // shortest idle period lost above lower_ms (-1: none), confirmed or not
  int contradicting = 0;    // trials that survived an idle period >= the confirmed upper bound
  long long confirmed_upper_ms = -1;  // shortest confirmed loss (-1: none); >= upper_ms
  int transient = 0;                  // losses at or below lower_ms: a longer silence survived
  bool has_upper() const { return upper_ms != -1; }
  bool upper_confirmed() const { return has_upper() && upper_ms == confirmed_upper_ms; }
  // The upper bound a report states: the confirmed one, else the single loss.
  long long reported_upper_ms() const {
    return confirmed_upper_ms >= 0 ? confirmed_upper_ms : upper_ms;
  }
};
Bracket bracket_of(const std::vector<Trial> &trials);

// For progress lines: "in [3.611s, 5.539s]", "> 3.611s", with
// " (4.575s lost once, probed again)" while a loss awaits its confirmation.
std::string bracket_text(const Bracket &bracket);

// Whether a probe of this idle period still tells something: lower < idle <
// upper, or idle == upper while that loss awaits its confirmation.
bool still_needed(const Bracket &bracket, long long idle_ms);

enum class Progress { kNarrowing, kMeasured, kNoTimeoutUpToMax };
// kMeasured: a confirmed upper bound and confirmed upper - lower <=
// resolution; kNoTimeoutUpToMax: nothing was lost and --max survived;
// kNarrowing otherwise.
Progress progress_of(const Bracket &bracket, const Settings &settings);

// The idle periods of the next round, ascending, all strictly inside the
// bracket (and at most max_ms); empty when progress_of is not kNarrowing.
//  - Nothing lost yet: a spread up to max_ms, ending at max_ms — linear with a
//    step of at most the resolution when `parallel` probes allow it (the round
//    then finishes the job), else geometric from the resolution (or the
//    lower bound) up, as timeouts range from seconds to hours.
//  - Else bisection of [lower, upper]: k = min(parallel, ceil(width /
//    resolution) - 1) probes splitting it into k + 1 equal parts, so that no
//    more probes than needed are used; plus upper itself again while that
//    loss is not confirmed (one of the parallel probes).
std::vector<long long> plan_round(const Bracket &bracket, const Settings &settings);

// How long the rounds after the current one may take at most, roughly, for
// the progress lines: the bracket is assumed to end up between the two
// farthest-apart neighbours of {lower, pending probes, upper or max}, the
// loss at its top, and each later round to last its upper bound plus the
// grace period.
long long later_rounds_ms(const Bracket &bracket, const std::vector<long long> &pending_idle_ms,
                          const Settings &settings);

// How long the rounds after the current one take if the timeout lies in the
// middle of what is left (the middle of the bracket; without a loss the
// geometric middle of lower bound (or resolution) and --max): the current
// round's `pending` probes and each later round are played against that
// timeout, a round lasting its longest survivor or its shortest loss plus
// the grace period. An expectation beside later_rounds_ms' worst case.
long long expected_later_rounds_ms(std::vector<Trial> trials,
                                   const std::vector<long long> &pending_idle_ms, int round,
                                   const Settings &settings);

// ---- recommendation ---------------------------------------------------------

// KEEPALIVE_IDLE = lower bound - margin, margin = max(resolution, 10 % of the
// lower bound), rounded down to whole seconds, at least 1, at most 32767.
struct Recommendation {
  bool available = false;  // false when no loss was seen: there is nothing to stay under
  long long idle_s = 0;
  long long margin_ms = 0;
  bool raised_to_minimum = false;  // lower - margin was below 1 s
  bool capped = false;             // lower - margin was above 32767 s
};
Recommendation recommend(const Bracket &bracket, const Settings &settings);

// ---- report -----------------------------------------------------------------

struct Report {
  std::string server;  // the endpoint probed, "198.51.100.2:7200"
  Settings settings;
  std::vector<Trial> trials;  // in the order they ended
  int rounds = 0;             // rounds started
  double elapsed_s = 0;
  bool interrupted = false;  // Ctrl-C (or SIGTERM) ended the run early
  std::string error;         // a failure that ended the run early, else ""
  // The server stopped or restarted during the run (error says which): the
  // connections it held ended with it, so no loss is the NAT's. No bracket,
  // no recommendation.
  bool server_gone = false;
};

// For the humans: the trials, the bracket, the recommendation with its margin
// and the systemd line, and notes (resets, contradicting trials, an early end).
std::string format_text(const Report &report);
// One JSON object; see keepalive(1) for the fields.
std::string format_json(const Report &report);

}  // namespace keepalive_natprobe

#endif  // KEEPALIVE_TOOLS_NATPROBE_H
