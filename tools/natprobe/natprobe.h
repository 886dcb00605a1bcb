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
  int parallel = 64;                    // --parallel: connections at a time
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

// The probes of the next round. A round is one wave of probes set up
// together, or two: the second the same idle periods again, set up
// `wave_offset_ms` later and counted as the next round, so that a loss seen
// by both waves is confirmed (two probes set up at different times, see
// Bracket) in the same pass in which it is found.
struct RoundPlan {
  std::vector<long long> idle_ms;  // ascending, all strictly inside the bracket, at most max_ms
  int waves = 1;
  long long wave_offset_ms = 0;  // waves == 2: when the second wave is set up
  bool empty() const { return idle_ms.empty(); }
  int connections() const { return static_cast<int>(idle_ms.size()) * waves; }
};

// max(resolution, 2 x grace): the second wave's probes end that much after
// the first's, so that one outage of up to that length around their lines
// cannot lose both.
long long wave_offset_ms(const Settings &settings);

// The next round; empty when progress_of is not kNarrowing. At most
// `parallel` connections at a time.
//  - Nothing lost yet (or every loss contradicted): one wave spread up to
//    max_ms, ending at max_ms — linear with a step of at most the resolution
//    when `parallel` probes allow it, else geometric from the resolution (or
//    the lower bound) up, as timeouts range from seconds to hours. With
//    many probes the ratio between neighbours is small (64 from 10 s to
//    30 min: 1.086), so the first loss lies close above the timeout.
//  - A loss bounds the bracket: two waves of parallel / 2 probes each that
//    split [lower, upper] as finely as they can (plus upper itself while that
//    loss is not confirmed): the shortest loss of the two waves, found in
//    both, is the confirmed upper bound, and a survivor next below it the
//    lower one. With parallel 1: one wave, k = min(1, ceil(width /
//    resolution) - 1) probes, and the loss probed again in the next round.
RoundPlan plan_round(const Bracket &bracket, const Settings &settings);

// Plays one round against a simulated NAT that forgets a mapping after
// exactly `timeout_ms` of silence (an idle period of timeout_ms or more is
// lost, silently): the waves are set up at 0 and wave_offset_ms, a probe
// ends at its idle period (survived) or idle period + grace (lost), in that
// order, and a probe no longer still_needed when another ends is dropped, as
// the client does. Appends the trials (rounds `first_round` and, for a
// second wave, first_round + 1). Returns how long the round lasted.
long long play_round(const RoundPlan &plan, int first_round, long long timeout_ms,
                     const Settings &settings, std::vector<Trial> *trials);

// A whole run against such a NAT, the rounds back to back.
struct SimulatedRun {
  long long elapsed_ms = 0;
  int rounds = 0;  // as Report::rounds counts them (waves)
  std::vector<Trial> trials;
};
SimulatedRun simulate_run(const Settings &settings, long long timeout_ms);

// How long the rounds after the current one take, for the progress lines:
// the current round's pending probes end as a NAT with a timeout T would end
// them, then the later rounds are played against T (play_round).
//  - later_rounds_ms: the longest over every T the trials and the pending
//    probes leave possible (just at each of their idle periods, and beyond
//    --max), the worst case;
//  - expected_later_rounds_ms: T in the middle of what is left (the middle
//    of the bracket; without a loss the geometric middle of the lower bound
//    (or the resolution) and --max).
// `pending`: the current round's probes still running, their idle period and
// round (the outcome is what T gives them).
long long later_rounds_ms(const std::vector<Trial> &trials, const std::vector<Trial> &pending,
                          const Settings &settings);
long long expected_later_rounds_ms(const std::vector<Trial> &trials,
                                   const std::vector<Trial> &pending, const Settings &settings);

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
