// natprobe.cc — see natprobe.h.

#include "natprobe/natprobe.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>

#include "keepalive/keepalive.h"
#include "lib/cli.h"
#include "lib/output.h"
#include "lib/stop_signals.h"

namespace keepalive_natprobe {
namespace {

using keepalive_cli::format_duration_ms;

constexpr long long kMaxNumberDigits = 15;  // far above kMaxIdleMs, far below LLONG_MAX
// Rounds a simulation plays at most (a sane plan needs a handful).
constexpr int kMaxPlannedRounds = 64;

// A decimal number of 1..kMaxNumberDigits digits and nothing else.
bool parse_number(std::string_view text, long long *value) {
  if (text.empty() || text.size() > static_cast<size_t>(kMaxNumberDigits)) return false;
  long long number = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    number = number * 10 + (c - '0');
  }
  *value = number;
  return true;
}

// "WORD rest": true and *rest when `line` is `word` followed by one space.
bool take_word(std::string_view line, std::string_view word, std::string_view *rest) {
  if (line.size() <= word.size() || line.substr(0, word.size()) != word ||
      line[word.size()] != ' ') {
    return false;
  }
  *rest = line.substr(word.size() + 1);
  return true;
}

// A greeting's "VERSION[ INSTANCE]": the version, and the instance (1 to 32
// lower-case hex digits; "" without one, as version 1 sent it).
bool greeting_fields(std::string_view rest, long long *version, std::string *instance) {
  const size_t space = rest.find(' ');
  instance->clear();
  if (space == std::string_view::npos) return parse_number(rest, version);
  const std::string_view id = rest.substr(space + 1);
  if (id.empty() || id.size() > 32 ||
      id.find_first_not_of("0123456789abcdef") != std::string_view::npos) {
    return false;
  }
  *instance = std::string(id);
  return parse_number(rest.substr(0, space), version);
}

long long ceil_div(long long a, long long b) { return (a + b - 1) / b; }

double to_s(long long ms) { return static_cast<double>(ms) / 1000.0; }

bool is_lost(const Trial &trial) { return trial.outcome != Outcome::kSurvived; }

std::string outcome_text(const Trial &trial) {
  if (trial.outcome == Outcome::kFailed && !trial.detail.empty()) return trial.detail;
  return outcome_name(trial.outcome);
}

std::vector<long long> sorted_idle(const std::vector<Trial> &trials, bool survived) {
  std::vector<long long> idle;
  for (const Trial &trial : trials) {
    if (is_lost(trial) != survived) idle.push_back(trial.idle_ms);
  }
  std::sort(idle.begin(), idle.end());
  return idle;
}

// Keeps the points inside the bracket (and not above max when nothing was
// lost), ascending and without duplicates.
std::vector<long long> inside(std::vector<long long> points, const Bracket &bracket,
                              const Settings &settings) {
  std::sort(points.begin(), points.end());
  points.erase(std::unique(points.begin(), points.end()), points.end());
  std::vector<long long> kept;
  for (long long point : points) {
    if (still_needed(bracket, point) && point <= settings.max_ms) kept.push_back(point);
  }
  return kept;
}

}  // namespace

// ---- protocol ---------------------------------------------------------------

std::string new_instance() {
  unsigned char bytes[8] = {};
  if (getrandom(bytes, sizeof bytes, 0) != static_cast<ssize_t>(sizeof bytes)) {
    // No entropy source: the process and the time still tell instances apart.
    const unsigned long long mixed =
        static_cast<unsigned long long>(getpid()) << 32 ^
        static_cast<unsigned long long>(keepalive_cli::monotonic_s() * 1e6);
    memcpy(bytes, &mixed, sizeof bytes);
  }
  char text[sizeof bytes * 2 + 1];
  for (size_t i = 0; i < sizeof bytes; ++i) snprintf(text + 2 * i, 3, "%02x", bytes[i]);
  return text;
}

std::string greeting_line(std::string_view instance) {
  return std::string(kMagic) + " " + std::to_string(kProtocolVersion) + " " +
         std::string(instance) + "\n";
}
std::string idle_line(long long idle_ms) { return "IDLE " + std::to_string(idle_ms) + "\n"; }
std::string armed_line(long long idle_ms) { return "ARMED " + std::to_string(idle_ms) + "\n"; }
std::string wake_line(long long silence_ms) { return "WAKE " + std::to_string(silence_ms) + "\n"; }

std::string error_line(std::string_view message) {
  std::string line = "ERROR ";
  for (char c : message) {
    if (line.size() + 1 >= kMaxLineBytes) break;
    if (static_cast<unsigned char>(c) >= 0x20 && c != 0x7f) line += c;
  }
  return line + "\n";
}

ServerLine parse_server_line(std::string_view line) {
  ServerLine parsed;
  std::string_view rest;
  long long number = 0;
  if (take_word(line, kMagic, &rest) && greeting_fields(rest, &number, &parsed.instance) &&
      number <= 1000000) {
    parsed.kind = ServerLine::Kind::kGreeting;
    parsed.version = static_cast<int>(number);
  } else if (take_word(line, "ARMED", &rest) && parse_number(rest, &number)) {
    parsed.kind = ServerLine::Kind::kArmed;
    parsed.ms = number;
  } else if (take_word(line, "WAKE", &rest) && parse_number(rest, &number)) {
    parsed.kind = ServerLine::Kind::kWake;
    parsed.ms = number;
  } else if (line == "ERROR" || take_word(line, "ERROR", &rest)) {
    parsed.kind = ServerLine::Kind::kError;
    parsed.text = printable(line == "ERROR" ? std::string_view() : rest, kMaxLineBytes);
  }
  return parsed;
}

bool parse_idle_line(std::string_view line, long long *idle_ms, std::string *error) {
  std::string_view rest;
  long long number = 0;
  if (!take_word(line, "IDLE", &rest) || !parse_number(rest, &number)) {
    *error = "expected IDLE <milliseconds>";
    return false;
  }
  if (number < 1 || number > kMaxIdleMs) {
    *error = "idle time out of range: 1 to " + std::to_string(kMaxIdleMs) + " ms";
    return false;
  }
  *idle_ms = number;
  return true;
}

std::string printable(std::string_view bytes, size_t max) {
  std::string text;
  bool cut = bytes.size() > max;
  for (char c : bytes.substr(0, max)) {
    unsigned char u = static_cast<unsigned char>(c);
    if (c == '\r') {
      text += "\\r";
    } else if (c == '\n') {
      text += "\\n";
    } else if (c == '\t') {
      text += "\\t";
    } else if (c == '\\') {
      text += "\\\\";
    } else if (u < 0x20 || u >= 0x7f) {
      char escaped[8];
      snprintf(escaped, sizeof escaped, "\\x%02x", u);
      text += escaped;
    } else {
      text += c;
    }
  }
  if (cut) text += "...";
  return text;
}

// ---- trials and the bracket -------------------------------------------------

const char *outcome_name(Outcome outcome) {
  switch (outcome) {
    case Outcome::kSurvived:
      return "survived";
    case Outcome::kSilent:
      return "silent";
    case Outcome::kReset:
      return "reset";
    case Outcome::kClosed:
      return "closed";
    case Outcome::kFailed:
      return "failed";
  }
  return "?";
}

Bracket bracket_of(const std::vector<Trial> &trials) {
  // The longest survival below `limit` (-1: none).
  auto lower_below = [&trials](long long limit) {
    long long lower = 0;
    for (const Trial &trial : trials) {
      if (!is_lost(trial) && (limit < 0 || trial.idle_ms < limit)) {
        lower = std::max(lower, trial.idle_ms);
      }
    }
    return lower;
  };
  // Confirmed upper bound: the shortest loss L such that the losses in
  // (longest survival below L, L] come from two rounds or more.
  Bracket bracket;
  for (long long candidate : sorted_idle(trials, false)) {
    const long long lower = lower_below(candidate);
    int first_round = 0;
    bool two_rounds = false;
    for (const Trial &trial : trials) {
      if (!is_lost(trial) || trial.idle_ms <= lower || trial.idle_ms > candidate) continue;
      if (first_round == 0) first_round = trial.round;
      if (trial.round != first_round) two_rounds = true;
    }
    if (two_rounds) {
      bracket.confirmed_upper_ms = candidate;
      break;
    }
  }
  bracket.lower_ms = lower_below(bracket.confirmed_upper_ms);
  for (const Trial &trial : trials) {
    if (is_lost(trial)) {
      if (trial.idle_ms <= bracket.lower_ms) {
        ++bracket.transient;
      } else if (!bracket.has_upper() || trial.idle_ms < bracket.upper_ms) {
        bracket.upper_ms = trial.idle_ms;
      }
    } else if (bracket.confirmed_upper_ms >= 0 && trial.idle_ms >= bracket.confirmed_upper_ms) {
      ++bracket.contradicting;
    }
  }
  return bracket;
}

std::string bracket_text(const Bracket &bracket) {
  if (!bracket.has_upper()) return "> " + format_duration_ms(bracket.lower_ms);
  std::string text = "in [" + format_duration_ms(bracket.lower_ms) + ", " +
                     format_duration_ms(bracket.reported_upper_ms()) + "]";
  if (!bracket.upper_confirmed()) {
    text += " (" + format_duration_ms(bracket.upper_ms) + " lost once, probed again)";
  }
  return text;
}

long long longest_round_trip_ms(const std::vector<Trial> &trials) {
  long long longest = -1;
  for (const Trial &trial : trials) longest = std::max(longest, trial.round_trip_ms);
  return longest;
}

bool still_needed(const Bracket &bracket, long long idle_ms) {
  if (idle_ms <= bracket.lower_ms) return false;
  return !bracket.has_upper() || idle_ms < bracket.upper_ms ||
         (idle_ms == bracket.upper_ms && !bracket.upper_confirmed());
}

Progress progress_of(const Bracket &bracket, const Settings &settings) {
  if (bracket.has_upper()) {
    return bracket.confirmed_upper_ms >= 0 &&
                   bracket.confirmed_upper_ms - bracket.lower_ms <= settings.resolution_ms
               ? Progress::kMeasured
               : Progress::kNarrowing;
  }
  return bracket.lower_ms >= settings.max_ms ? Progress::kNoTimeoutUpToMax : Progress::kNarrowing;
}

long long wave_offset_ms(const Settings &settings) {
  return std::max(settings.resolution_ms, 2 * settings.grace_ms);
}

RoundPlan plan_round(const Bracket &bracket, const Settings &settings) {
  RoundPlan plan;
  if (progress_of(bracket, settings) != Progress::kNarrowing) return plan;
  const long long n = std::max(1, settings.parallel);
  const long long resolution = std::max(1LL, settings.resolution_ms);
  std::vector<long long> points;
  if (bracket.has_upper()) {
    const bool again = !bracket.upper_confirmed();
    const long long width = bracket.upper_ms - bracket.lower_ms;
    long long k;
    if (n >= 2) {
      // Two waves, each splitting the bracket as finely as its probes allow.
      plan.waves = 2;
      plan.wave_offset_ms = wave_offset_ms(settings);
      k = std::min(n / 2 - (again ? 1 : 0), width - 1);
    } else {
      k = std::min(n - (again ? 1 : 0), ceil_div(width, resolution) - 1);
    }
    k = std::max(0LL, k);
    for (long long i = 1; i <= k; ++i) {
      points.push_back(bracket.lower_ms + (width * i + (k + 1) / 2) / (k + 1));
    }
    if (again) points.push_back(bracket.upper_ms);
    plan.idle_ms = inside(points, bracket, settings);
    if (plan.idle_ms.empty()) plan.waves = 1;
    return plan;
  }
  const long long top = settings.max_ms;
  const long long span = top - bracket.lower_ms;
  const long long linear = ceil_div(span, resolution);
  if (linear <= n) {
    for (long long i = 1; i <= linear; ++i) {
      points.push_back(bracket.lower_ms + (span * i + linear / 2) / linear);
    }
    plan.idle_ms = inside(points, bracket, settings);
    return plan;
  }
  // Geometric: equal ratios between neighbours. From the resolution when
  // nothing survived yet (a NAT may forget within seconds), else from above
  // the lower bound.
  const bool from_zero = bracket.lower_ms == 0;
  const double base = static_cast<double>(from_zero ? std::min(resolution, top) : bracket.lower_ms);
  const double ratio = static_cast<double>(top) / base;
  const long long steps = from_zero ? n - 1 : n;
  for (long long i = from_zero ? 0 : 1; i <= steps; ++i) {
    double exponent = steps == 0 ? 1.0 : static_cast<double>(i) / static_cast<double>(steps);
    points.push_back(std::llround(base * std::pow(ratio, exponent)));
  }
  points.push_back(top);  // exactly max, whatever the rounding did
  plan.idle_ms = inside(points, bracket, settings);
  return plan;
}

long long play_round(const RoundPlan &plan, int first_round, long long timeout_ms,
                     const Settings &settings, std::vector<Trial> *trials) {
  struct Ending {
    long long at_ms;
    Trial trial;
  };
  std::vector<Ending> endings;
  for (int wave = 0; wave < plan.waves; ++wave) {
    for (long long idle : plan.idle_ms) {
      Ending ending;
      const bool lost = idle >= timeout_ms;
      ending.trial.round = first_round + wave;
      ending.trial.idle_ms = idle;
      ending.trial.outcome = lost ? Outcome::kSilent : Outcome::kSurvived;
      ending.trial.silence_ms = lost ? -1 : idle;
      ending.at_ms = wave * plan.wave_offset_ms + idle + (lost ? settings.grace_ms : 0);
      endings.push_back(ending);
    }
  }
  std::stable_sort(endings.begin(), endings.end(),
                   [](const Ending &a, const Ending &b) { return a.at_ms < b.at_ms; });
  long long last = 0;
  for (const Ending &ending : endings) {
    if (!still_needed(bracket_of(*trials), ending.trial.idle_ms)) continue;  // dropped
    trials->push_back(ending.trial);
    last = ending.at_ms;
  }
  return last;
}

namespace {

// The rounds after the current one, played against `timeout_ms`: the
// pending probes of the current round end first.
long long play_later_rounds(std::vector<Trial> trials, const std::vector<Trial> &pending,
                            long long timeout_ms, const Settings &settings) {
  int number = 0;
  for (const Trial &trial : trials) number = std::max(number, trial.round);
  for (Trial trial : pending) {
    trial.outcome = trial.idle_ms < timeout_ms ? Outcome::kSurvived : Outcome::kSilent;
    trials.push_back(trial);
    number = std::max(number, trial.round);
  }
  long long total = 0;
  for (int later = 0; later < kMaxPlannedRounds; ++later) {
    RoundPlan plan = plan_round(bracket_of(trials), settings);
    if (plan.empty()) break;
    total += play_round(plan, number + 1, timeout_ms, settings, &trials);
    number += plan.waves;
  }
  return total;
}

}  // namespace

SimulatedRun simulate_run(const Settings &settings, long long timeout_ms) {
  SimulatedRun run;
  for (int round = 0; round < kMaxPlannedRounds; ++round) {
    RoundPlan plan = plan_round(bracket_of(run.trials), settings);
    if (plan.empty()) break;
    run.elapsed_ms += play_round(plan, run.rounds + 1, timeout_ms, settings, &run.trials);
    run.rounds += plan.waves;
  }
  return run;
}

long long later_rounds_ms(const std::vector<Trial> &trials, const std::vector<Trial> &pending,
                          const Settings &settings) {
  const Bracket now = bracket_of(trials);
  if (progress_of(now, settings) != Progress::kNarrowing) return 0;
  // The timeouts still possible, each just at an idle period still to be
  // probed or bounding the bracket (that one lost), and one beyond --max.
  std::vector<long long> timeouts = plan_round(now, settings).idle_ms;
  for (const Trial &trial : pending) timeouts.push_back(trial.idle_ms);
  timeouts.push_back(now.has_upper() ? now.reported_upper_ms() : settings.max_ms + 1);
  long long longest = 0;
  for (long long timeout : timeouts) {
    if (timeout <= now.lower_ms) continue;
    longest = std::max(longest, play_later_rounds(trials, pending, timeout, settings));
  }
  return longest;
}

long long expected_later_rounds_ms(const std::vector<Trial> &trials,
                                   const std::vector<Trial> &pending, const Settings &settings) {
  const Bracket now = bracket_of(trials);
  if (progress_of(now, settings) != Progress::kNarrowing) return 0;
  long long timeout;
  if (now.has_upper()) {
    timeout = (now.lower_ms + now.reported_upper_ms()) / 2;
  } else {
    const double from = static_cast<double>(std::max(now.lower_ms, settings.resolution_ms));
    timeout = std::llround(std::sqrt(from * static_cast<double>(settings.max_ms)));
  }
  return play_later_rounds(trials, pending, timeout, settings);
}

// ---- recommendation ---------------------------------------------------------

Recommendation recommend(const Bracket &bracket, const Settings &settings) {
  Recommendation recommendation;
  if (!bracket.has_upper()) return recommendation;
  recommendation.available = true;
  recommendation.margin_ms = std::max(settings.resolution_ms, ceil_div(bracket.lower_ms, 10));
  long long idle_ms = bracket.lower_ms - recommendation.margin_ms;
  long long idle_s = idle_ms >= 0 ? idle_ms / 1000 : -ceil_div(-idle_ms, 1000);
  if (idle_s < 1) {
    idle_s = 1;
    recommendation.raised_to_minimum = true;
  } else if (idle_s > KEEPALIVE_IDLE_MAX_S) {
    idle_s = KEEPALIVE_IDLE_MAX_S;
    recommendation.capped = true;
  }
  recommendation.idle_s = idle_s;
  return recommendation;
}

// ---- report -----------------------------------------------------------------

namespace {

// The "survived" and "lost" lines, idle periods in order; *unsilent counts
// the lost probes that were reset or closed rather than silent.
std::string trials_text(const std::vector<Trial> &trials, int *unsilent) {
  std::string survived;
  for (long long idle : sorted_idle(trials, true)) {
    survived += " " + format_duration_ms(idle);
  }
  std::vector<const Trial *> lost;
  for (const Trial &trial : trials) {
    if (is_lost(trial)) lost.push_back(&trial);
  }
  std::sort(lost.begin(), lost.end(),
            [](const Trial *a, const Trial *b) { return a->idle_ms < b->idle_ms; });
  std::string lost_text;
  for (const Trial *trial : lost) {
    lost_text += " " + format_duration_ms(trial->idle_ms);
    if (trial->outcome != Outcome::kSilent) {
      lost_text += " (" + outcome_text(*trial) + ")";
      ++*unsilent;
    }
  }
  std::string out = "  survived  " + (survived.empty() ? std::string(" none") : survived) + "\n";
  out += "  lost      " + (lost_text.empty() ? std::string(" none") : lost_text) + "\n";
  return out;
}

// The recommended KEEPALIVE_IDLE for a bracket with an upper bound, why,
// and the drop-in line that sets it.
std::string recommendation_text(const Bracket &bracket, const Settings &settings) {
  const std::string lower = format_duration_ms(bracket.lower_ms);
  const long long upper = bracket.reported_upper_ms();
  std::string out;
  const Recommendation r = recommend(bracket, settings);
  out += "Recommended KEEPALIVE_IDLE=" + std::to_string(r.idle_s) + ": the lower bound " + lower +
         " minus a safety margin of " + format_duration_ms(r.margin_ms) +
         " (the larger of the resolution " + format_duration_ms(settings.resolution_ms) +
         " and 10 % of the lower bound), rounded down to whole seconds";
  if (r.raised_to_minimum) {
    out += ", raised to 1 s, the shortest KEEPALIVE_IDLE: this NAT forgets within " +
           format_duration_ms(upper) + ", check it with a second run";
  } else if (r.capped) {
    out += ", capped at " + std::to_string(KEEPALIVE_IDLE_MAX_S) +
           " s, the kernel's longest keepalive idle time";
  }
  out +=
      ".\nWith KEEPALIVE_IDLE alone, libkeepalive probes every min(IDLE, the kernel's "
      "interval), so an idle connection is never silent longer than IDLE.\n"
      "For the server's systemd drop-in ([Service] section, beside its LD_PRELOAD line):\n"
      "Environment=KEEPALIVE_IDLE=" +
      std::to_string(r.idle_s) + "\n";
  return out;
}

// The notes under the verdict: probes reset or closed, a bound seen once,
// losses put down to the path, survivals beyond the shortest loss.
std::string notes_text(const Bracket &bracket, int unsilent) {
  std::string out;
  if (unsilent > 0) {
    out += "Note: " + std::to_string(unsilent) + " probe connection" +
           (unsilent == 1 ? " was" : "s were") +
           " reset or closed instead of staying silent, counted as lost: something on the path "
           "ended " +
           (unsilent == 1 ? "it" : "them") +
           " (a NAT that resets a flow when it forgets it; or the server's machine, if it "
           "restarted meanwhile).\n";
  }
  if (bracket.has_upper() && bracket.confirmed_upper_ms < 0) {
    out += "Note: the upper bound " + format_duration_ms(bracket.upper_ms) +
           " rests on a single lost probe, not yet seen again: it may have been the path's fault "
           "(an outage, a lost packet) rather than the NAT's. The lower bound is proof.\n";
  } else if (bracket.has_upper() && bracket.upper_ms < bracket.confirmed_upper_ms) {
    out += "Note: a single loss at " + format_duration_ms(bracket.upper_ms) +
           " lies inside the bracket, not yet seen again.\n";
  }
  if (bracket.transient > 0) {
    out += "Note: " + std::to_string(bracket.transient) + " probe" +
           (bracket.transient == 1 ? " was" : "s were") +
           " lost although a longer silence survived: counted as the path's fault (an outage, a "
           "lost packet), not as the NAT's timeout.\n";
  }
  if (bracket.contradicting > 0) {
    out += "Note: " + std::to_string(bracket.contradicting) + " probe" +
           (bracket.contradicting == 1 ? "" : "s") +
           " survived an idle period at or above the shortest loss (" +
           format_duration_ms(bracket.confirmed_upper_ms) +
           "): this NAT does not forget at one sharp time (it may expire mappings lazily, or a "
           "packet was lost), so the bracket uses the shortest loss.\n";
  }
  return out;
}

// The timeout bracketed: the bracket, its precision and the recommendation.
std::string bracket_found_text(const Report &report, const Bracket &bracket, Progress progress) {
  const Settings &settings = report.settings;
  const std::string lower = format_duration_ms(bracket.lower_ms);
  const long long upper = bracket.reported_upper_ms();
  const long long width = upper - bracket.lower_ms;
  std::string out =
      "Timeout between " + lower + " (longest silence that survived) and " +
      format_duration_ms(upper) +
      (bracket.confirmed_upper_ms >= 0 ? " (shortest loss, confirmed)"
                                       : " (shortest that was lost, seen once)") +
      ": bracket [" + lower + ", " + format_duration_ms(upper) + "], width " +
      format_duration_ms(width) +
      (progress == Progress::kMeasured
           ? ""
           : ", not yet narrowed to the resolution " + format_duration_ms(settings.resolution_ms)) +
      ".\n";
  const long long round_trip = longest_round_trip_ms(report.trials);
  if (round_trip >= 0) {
    out +=
        "Precision: the NAT saw up to one NAT-to-server round trip more silence than the "
        "server counted; the probes' round trip was at most " +
        format_duration_ms(round_trip) + ", so the timeout is at most " +
        format_duration_ms(upper + round_trip) +
        " (the lower bound needs no correction: it errs on the safe side).\n";
  }
  return out + recommendation_text(bracket, settings);
}

}  // namespace

std::string format_text(const Report &report) {
  const Settings &settings = report.settings;
  const Bracket bracket = bracket_of(report.trials);
  const Progress progress = progress_of(bracket, settings);
  std::string out;
  out += "NAT idle timeout on the path to " + report.server + ": " +
         std::to_string(report.trials.size()) + " probe" + (report.trials.size() == 1 ? "" : "s") +
         " in " + std::to_string(report.rounds) + " round" + (report.rounds == 1 ? "" : "s") +
         ", " + format_duration_ms(std::llround(report.elapsed_s * 1000)) + "\n";
  if (report.interrupted) {
    out += "Interrupted: this is what was learned so far.\n";
  } else if (!report.error.empty()) {
    out += "Stopped early (" + report.error + "): this is what was learned so far.\n";
  }
  if (report.trials.empty()) {
    out += "No probe finished: nothing was learned.\n";
    return out;
  }

  int unsilent = 0;
  out += trials_text(report.trials, &unsilent);
  if (report.server_gone) {
    return out +
           "No timeout and no KEEPALIVE_IDLE recommendation: the server went away during the "
           "run, and the connections it held ended with it, not by a NAT. Run again with the "
           "server running throughout.\n";
  }

  const std::string lower = format_duration_ms(bracket.lower_ms);
  if (progress == Progress::kNoTimeoutUpToMax) {
    out += "No timeout up to --max " + format_duration_ms(settings.max_ms) +
           ": every idle period up to " + format_duration_ms(settings.max_ms) +
           " survived. There is no NAT on this path, or it keeps idle mappings longer.\n"
           "No KEEPALIVE_IDLE recommendation; to look further, run again with a larger --max.\n";
  } else if (!bracket.has_upper()) {
    out += "No loss yet: the timeout is longer than " + lower + " (--max " +
           format_duration_ms(settings.max_ms) + " was not reached).\n";
  } else {
    out += bracket_found_text(report, bracket, progress);
  }
  out += notes_text(bracket, unsilent);
  return out;
}

namespace {

using keepalive_cli::JsonWriter;

// `name`: `ms` in seconds when `known`, else null.
void seconds_or_null(JsonWriter *json, std::string_view name, bool known, long long ms) {
  json->key(name);
  if (known) {
    json->number(to_s(ms));
  } else {
    json->null();
  }
}

// The bracket: its bounds, and the upper one corrected by the round trip.
void write_bracket_json(JsonWriter *json, const Bracket &bracket, long long round_trip,
                        bool measured) {
  seconds_or_null(json, "timeout_lower_s", measured, bracket.lower_ms);
  seconds_or_null(json, "timeout_upper_s", bracket.has_upper(), bracket.reported_upper_ms());
  json->field("upper_confirmed", bracket.confirmed_upper_ms >= 0);
  seconds_or_null(json, "round_trip_s", round_trip >= 0, round_trip);
  // the upper bound plus the round trip
  seconds_or_null(json, "timeout_upper_bound_s", bracket.has_upper() && round_trip >= 0,
                  bracket.reported_upper_ms() + round_trip);
}

void write_recommendation_json(JsonWriter *json, const Recommendation &r) {
  json->optional_field("recommended_idle_s", r.available ? r.idle_s : KEEPALIVE_UNSET);
  seconds_or_null(json, "safety_margin_s", r.available, r.margin_ms);
  json->optional_field("systemd", r.available
                                      ? "Environment=KEEPALIVE_IDLE=" + std::to_string(r.idle_s)
                                      : std::string());
}

void write_trials_json(JsonWriter *json, const std::vector<Trial> &trials) {
  json->key("trials").begin_array();
  for (const Trial &trial : trials) {
    json->begin_object();
    json->field("round", trial.round);
    json->field("idle_s", to_s(trial.idle_ms));
    json->field("survived", !is_lost(trial));
    json->field("outcome", outcome_name(trial.outcome));
    if (trial.outcome == Outcome::kFailed) json->field("error", trial.detail);
    seconds_or_null(json, "server_silence_s", trial.silence_ms >= 0, trial.silence_ms);
    seconds_or_null(json, "round_trip_s", trial.round_trip_ms >= 0, trial.round_trip_ms);
    json->end_object();
  }
  json->end_array();
}

}  // namespace

std::string format_json(const Report &report) {
  const Settings &settings = report.settings;
  const Bracket bracket = bracket_of(report.trials);
  const Progress progress = progress_of(bracket, settings);
  JsonWriter json;
  json.begin_object();
  json.field("server", report.server);
  json.field("status", report.server_gone                        ? "server_gone"
                       : progress == Progress::kMeasured         ? "measured"
                       : progress == Progress::kNoTimeoutUpToMax ? "no_timeout_up_to_max"
                                                                 : "incomplete");
  json.field("interrupted", report.interrupted);
  json.optional_field("error", report.error);
  // A server that went away measured no NAT: no bracket, no recommendation.
  const Bracket measured = report.server_gone ? Bracket{} : bracket;
  write_bracket_json(&json, measured, longest_round_trip_ms(report.trials), !report.server_gone);
  write_recommendation_json(&json, recommend(measured, settings));
  json.field("max_s", to_s(settings.max_ms));
  json.field("resolution_s", to_s(settings.resolution_ms));
  json.field("grace_s", to_s(settings.grace_ms));
  json.field("parallel", settings.parallel);
  json.field("rounds", report.rounds);
  json.field("elapsed_s", report.elapsed_s);
  json.field("contradicting_trials", bracket.contradicting);
  json.field("transient_losses", bracket.transient);
  write_trials_json(&json, report.trials);
  json.end_object();
  return json.str();
}

}  // namespace keepalive_natprobe
