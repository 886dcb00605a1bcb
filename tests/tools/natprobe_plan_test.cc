// natprobe_plan_test.cc — unit tests of the pure parts of `keepalive
// natprobe` (tools/natprobe.*): the line protocol, the bracket the trials
// give, the idle periods each round probes (also against simulated NATs of
// many timeouts), the time-left estimate, the recommendation and the report.
// No sockets, no clock.

#include <gtest/gtest.h>

#include <fstream>
#include <iostream>
#include <iterator>
#include <regex>
#include <string>
#include <vector>

#include "natprobe/natprobe.h"
#include "natprobe/probe.h"

namespace keepalive_natprobe {
namespace {

// ---- protocol ---------------------------------------------------------------

TEST(NatprobeProtocol, LinesOnTheWire) {
  EXPECT_EQ(greeting_line("0123456789abcdef"), "KEEPALIVE-NATPROBE 2 0123456789abcdef\n");
  EXPECT_EQ(idle_line(4550), "IDLE 4550\n");
  EXPECT_EQ(armed_line(4550), "ARMED 4550\n");
  EXPECT_EQ(wake_line(4561), "WAKE 4561\n");
  EXPECT_EQ(error_line("busy"), "ERROR busy\n");
  EXPECT_EQ(error_line("two\nlines\r"), "ERROR twolines\n");
  std::string long_error = error_line(std::string(500, 'x'));
  EXPECT_LE(long_error.size(), kMaxLineBytes);
  EXPECT_EQ(long_error.back(), '\n');
}

TEST(NatprobeProtocol, EachServerInstanceIsNew) {
  const std::string first = new_instance(), second = new_instance();
  EXPECT_TRUE(std::regex_match(first, std::regex("[0-9a-f]{16}"))) << first;
  EXPECT_NE(first, second);
  std::string line = greeting_line(first);
  line.pop_back();  // the "\n"
  ServerLine parsed = parse_server_line(line);
  EXPECT_EQ(std::make_pair(parsed.version, parsed.instance), std::make_pair(2, first));
}

struct ServerLineCase {
  const char *line;
  ServerLine::Kind kind;
  int version;
  long long ms;
  const char *text;
  const char *instance = "";
};

class ServerLineTest : public ::testing::TestWithParam<ServerLineCase> {};

TEST_P(ServerLineTest, Parses) {
  const ServerLineCase &c = GetParam();
  ServerLine parsed = parse_server_line(c.line);
  EXPECT_EQ(static_cast<int>(parsed.kind), static_cast<int>(c.kind)) << c.line;
  EXPECT_EQ(parsed.version, c.version) << c.line;
  EXPECT_EQ(parsed.ms, c.ms) << c.line;
  EXPECT_EQ(parsed.text, c.text) << c.line;
  EXPECT_EQ(parsed.instance, c.instance) << c.line;
}

using Kind = ServerLine::Kind;
INSTANTIATE_TEST_SUITE_P(
    Table, ServerLineTest,
    ::testing::Values(ServerLineCase{"KEEPALIVE-NATPROBE 1", Kind::kGreeting, 1, 0, ""},
                      ServerLineCase{"KEEPALIVE-NATPROBE 2", Kind::kGreeting, 2, 0, ""},
                      ServerLineCase{"KEEPALIVE-NATPROBE 2 0a9f", Kind::kGreeting, 2, 0, "",
                                     "0a9f"},
                      ServerLineCase{"KEEPALIVE-NATPROBE 2 0A9F", Kind::kUnknown, 0, 0, ""},
                      ServerLineCase{"KEEPALIVE-NATPROBE 2 0a9f x", Kind::kUnknown, 0, 0, ""},
                      ServerLineCase{"KEEPALIVE-NATPROBE 2 aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                                     Kind::kUnknown, 0, 0, ""},
                      ServerLineCase{"KEEPALIVE-NATPROBE", Kind::kUnknown, 0, 0, ""},
                      ServerLineCase{"KEEPALIVE-NATPROBE one", Kind::kUnknown, 0, 0, ""},
                      ServerLineCase{"KEEPALIVE-NATPROBE 1 ", Kind::kUnknown, 0, 0, ""},
                      ServerLineCase{"ARMED 4550", Kind::kArmed, 0, 4550, ""},
                      ServerLineCase{"ARMED -1", Kind::kUnknown, 0, 0, ""},
                      ServerLineCase{"ARMED 12a", Kind::kUnknown, 0, 0, ""},
                      ServerLineCase{"ARMED  5", Kind::kUnknown, 0, 0, ""},
                      ServerLineCase{"ARMED 1234567890123456", Kind::kUnknown, 0, 0, ""},
                      ServerLineCase{"WAKE 4561", Kind::kWake, 0, 4561, ""},
                      ServerLineCase{"WAKE", Kind::kUnknown, 0, 0, ""},
                      ServerLineCase{"ERROR busy", Kind::kError, 0, 0, "busy"},
                      ServerLineCase{"ERROR", Kind::kError, 0, 0, ""},
                      ServerLineCase{"ERRORS", Kind::kUnknown, 0, 0, ""},
                      ServerLineCase{"SSH-2.0-OpenSSH_9.2p1\r", Kind::kUnknown, 0, 0, ""},
                      ServerLineCase{"", Kind::kUnknown, 0, 0, ""}));

struct IdleLineCase {
  const char *line;
  bool ok;
  long long ms;
  const char *error;
};

class IdleLineTest : public ::testing::TestWithParam<IdleLineCase> {};

TEST_P(IdleLineTest, Parses) {
  const IdleLineCase &c = GetParam();
  long long ms = -1;
  std::string error;
  EXPECT_EQ(parse_idle_line(c.line, &ms, &error), c.ok) << c.line;
  if (c.ok) {
    EXPECT_EQ(ms, c.ms) << c.line;
  } else {
    EXPECT_EQ(error, c.error) << c.line;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Table, IdleLineTest,
    ::testing::Values(IdleLineCase{"IDLE 1", true, 1, ""},
                      IdleLineCase{"IDLE 270000", true, 270000, ""},
                      IdleLineCase{"IDLE 86400000", true, 86400000, ""},
                      IdleLineCase{"IDLE 86400001", false, 0,
                                   "idle time out of range: 1 to 86400000 ms"},
                      IdleLineCase{"IDLE 0", false, 0, "idle time out of range: 1 to 86400000 ms"},
                      IdleLineCase{"IDLE", false, 0, "expected IDLE <milliseconds>"},
                      IdleLineCase{"IDLE -5", false, 0, "expected IDLE <milliseconds>"},
                      IdleLineCase{"IDLE 5 ", false, 0, "expected IDLE <milliseconds>"},
                      IdleLineCase{"idle 5", false, 0, "expected IDLE <milliseconds>"},
                      IdleLineCase{"GET / HTTP/1.0\r", false, 0, "expected IDLE <milliseconds>"}));

TEST(NatprobeProtocol, PrintableEscapesAndCuts) {
  EXPECT_EQ(printable("SSH-2.0\r\n"), "SSH-2.0\\r\\n");
  EXPECT_EQ(printable("a\tb\\c"), "a\\tb\\\\c");
  EXPECT_EQ(printable(std::string("\x01\xff", 2)), "\\x01\\xff");
  EXPECT_EQ(printable("abcdef", 3), "abc...");
  EXPECT_EQ(printable("abc", 3), "abc");
}

// ---- the bracket --------------------------------------------------------------

Trial trial(long long idle_ms, Outcome outcome, int round = 1) {
  Trial t;
  t.round = round;
  t.idle_ms = idle_ms;
  t.outcome = outcome;
  t.silence_ms = outcome == Outcome::kSurvived ? idle_ms + 10 : -1;
  return t;
}

TEST(NatprobeBracket, FromTrials) {
  Bracket none = bracket_of({});
  EXPECT_EQ(none.lower_ms, 0);
  EXPECT_FALSE(none.has_upper());

  Bracket survived = bracket_of({trial(1000, Outcome::kSurvived), trial(3000, Outcome::kSurvived)});
  EXPECT_EQ(survived.lower_ms, 3000);
  EXPECT_FALSE(survived.has_upper());

  // Losses seen in one round only: the shortest is the upper bound, not confirmed.
  std::vector<Trial> trials = {trial(5539, Outcome::kSilent), trial(3611, Outcome::kSurvived),
                               trial(4575, Outcome::kSilent), trial(1000, Outcome::kSurvived)};
  Bracket mixed = bracket_of(trials);
  EXPECT_EQ(mixed.lower_ms, 3611);
  EXPECT_EQ(mixed.upper_ms, 4575);
  EXPECT_EQ(mixed.confirmed_upper_ms, -1);
  EXPECT_FALSE(mixed.upper_confirmed());
  EXPECT_EQ(mixed.reported_upper_ms(), 4575);
  EXPECT_EQ(mixed.contradicting, 0);
  // A loss in a second round confirms the losses up to it.
  trials.push_back(trial(5000, Outcome::kSilent, 2));
  Bracket second = bracket_of(trials);
  EXPECT_EQ(second.upper_ms, 4575);
  EXPECT_EQ(second.confirmed_upper_ms, 5000);
  EXPECT_EQ(second.reported_upper_ms(), 5000);
  trials.push_back(trial(4575, Outcome::kSilent, 3));
  EXPECT_TRUE(bracket_of(trials).upper_confirmed());
  EXPECT_EQ(bracket_of(trials).confirmed_upper_ms, 4575);

  // A reset, a close and another error are losses like silence.
  for (Outcome lost : {Outcome::kReset, Outcome::kClosed, Outcome::kFailed}) {
    Bracket b = bracket_of({trial(2000, Outcome::kSurvived), trial(3000, lost)});
    EXPECT_EQ(b.upper_ms, 3000) << outcome_name(lost);
  }

  // A single loss that a longer silence survived later was the path's fault.
  Bracket transient =
      bracket_of({trial(2000, Outcome::kSurvived), trial(3000, Outcome::kSilent),
                  trial(3000, Outcome::kSurvived, 2), trial(4000, Outcome::kSurvived, 2)});
  EXPECT_EQ(transient.lower_ms, 4000);
  EXPECT_FALSE(transient.has_upper());
  EXPECT_EQ(transient.transient, 1);
  EXPECT_EQ(transient.contradicting, 0);

  // A survivor above a confirmed loss contradicts it: it is counted and the
  // bracket keeps the confirmed loss, with the longest survivor below it.
  Bracket contradicted =
      bracket_of({trial(2000, Outcome::kSurvived), trial(3000, Outcome::kSilent),
                  trial(3000, Outcome::kSilent, 2), trial(4000, Outcome::kSurvived, 2)});
  EXPECT_EQ(contradicted.lower_ms, 2000);
  EXPECT_EQ(contradicted.upper_ms, 3000);
  EXPECT_TRUE(contradicted.upper_confirmed());
  EXPECT_EQ(contradicted.contradicting, 1);

  // T = 6 s; an outage while the 5.539 s probe's line was on its way (round
  // 2) lost it, and 6.5 s was really lost: the losses up to 8.498 s are
  // confirmed (rounds 1 and 2), 5.539 s is not.
  std::vector<Trial> outage = {trial(4575, Outcome::kSurvived), trial(8498, Outcome::kSilent),
                               trial(5539, Outcome::kSilent, 2), trial(6500, Outcome::kSilent, 2)};
  Bracket during = bracket_of(outage);
  EXPECT_EQ(during.lower_ms, 4575);
  EXPECT_EQ(during.upper_ms, 5539);
  EXPECT_EQ(during.confirmed_upper_ms, 8498);
  // Probed again in round 3, 5.539 s survives: the loss was transient.
  outage.push_back(trial(5539, Outcome::kSurvived, 3));
  Bracket after = bracket_of(outage);
  EXPECT_EQ(after.lower_ms, 5539);
  EXPECT_EQ(after.upper_ms, 6500);
  EXPECT_EQ(after.confirmed_upper_ms, 8498);
  EXPECT_EQ(after.transient, 1);
}

// Brackets for the tables: the upper bound confirmed, or resting on one loss.
Bracket confirmed(long long lower_ms, long long upper_ms) {
  Bracket b;
  b.lower_ms = lower_ms;
  b.upper_ms = upper_ms;
  b.confirmed_upper_ms = upper_ms;
  return b;
}
Bracket single(long long lower_ms, long long upper_ms) {
  Bracket b;
  b.lower_ms = lower_ms;
  b.upper_ms = upper_ms;
  return b;
}

TEST(NatprobeBracket, Text) {
  Bracket both = single(3611, 4575);
  both.confirmed_upper_ms = 5539;
  EXPECT_EQ(bracket_text(both), "in [3.611s, 5.539s] (4.575s lost once, probed again)");
  EXPECT_EQ(bracket_text(confirmed(3611, 4575)), "in [3.611s, 4.575s]");
  EXPECT_EQ(bracket_text(Bracket{}), "> 0s");
}

TEST(NatprobeBracket, StillNeededAndProgress) {
  Bracket b = confirmed(3611, 5539);
  EXPECT_FALSE(still_needed(b, 3611));
  EXPECT_TRUE(still_needed(b, 3612));
  EXPECT_TRUE(still_needed(b, 5538));
  EXPECT_FALSE(still_needed(b, 5539));
  EXPECT_TRUE(still_needed(single(3611, 5539), 5539)) << "a single loss is probed again";
  EXPECT_FALSE(still_needed(single(3611, 5539), 5540));
  EXPECT_TRUE(still_needed(Bracket{1000, -1, 0}, 20000));

  Settings s;
  s.max_ms = 20000;
  s.resolution_ms = 1000;
  EXPECT_EQ(progress_of(b, s), Progress::kNarrowing);
  EXPECT_EQ(progress_of(confirmed(3611, 4611), s), Progress::kMeasured);  // width == resolution
  EXPECT_EQ(progress_of(single(3611, 4611), s), Progress::kNarrowing) << "not confirmed";
  EXPECT_EQ(progress_of(confirmed(3611, 4612), s), Progress::kNarrowing);
  EXPECT_EQ(progress_of(confirmed(0, 1000), s), Progress::kMeasured);
  EXPECT_EQ(progress_of(Bracket{20000, -1, 0}, s), Progress::kNoTimeoutUpToMax);
  EXPECT_EQ(progress_of(Bracket{13037, -1, 0}, s), Progress::kNarrowing);
}

// ---- the plan -----------------------------------------------------------------

Settings settings(long long max_ms, long long resolution_ms, int parallel = 8,
                  long long grace_ms = 2000) {
  Settings s;
  s.max_ms = max_ms;
  s.resolution_ms = resolution_ms;
  s.parallel = parallel;
  s.grace_ms = grace_ms;
  return s;
}

struct PlanCase {
  const char *name;
  Bracket bracket;
  Settings settings;
  std::vector<long long> expected;
  int waves = 1;
};

class PlanTest : public ::testing::TestWithParam<PlanCase> {};

TEST_P(PlanTest, ProbesTheseIdlePeriods) {
  const PlanCase &c = GetParam();
  const RoundPlan plan = plan_round(c.bracket, c.settings);
  EXPECT_EQ(plan.idle_ms, c.expected);
  EXPECT_EQ(plan.waves, c.waves);
  EXPECT_EQ(plan.wave_offset_ms, c.waves == 2 ? wave_offset_ms(c.settings) : 0);
  EXPECT_LE(plan.connections(), c.settings.parallel);
}

INSTANTIATE_TEST_SUITE_P(
    Table, PlanTest,
    ::testing::Values(
        // First round, 20 s at 1 s: 8 probes would leave steps over 1 s, so
        // a geometric spread from the resolution to --max.
        PlanCase{"spread_geometric",
                 {0, -1, 0},
                 settings(20000, 1000),
                 {1000, 1534, 2354, 3611, 5539, 8498, 13037, 20000}},
        // 3 s at 1 s: three probes finish the job in one round.
        PlanCase{"spread_linear", {0, -1, 0}, settings(3000, 1000), {1000, 2000, 3000}},
        PlanCase{"spread_one_probe", {0, -1, 0}, settings(20000, 1000, 1), {20000}},
        PlanCase{"max_equals_resolution", {0, -1, 0}, settings(10000, 10000), {10000}},
        // Nothing lost up to a lower bound: the spread continues above it.
        PlanCase{"spread_above_lower",
                 {8000, -1, 0},
                 settings(20000, 1000, 4),
                 {10059, 12649, 15905, 20000}},
        // A bounded bracket: two waves of 8 / 2 probes splitting it evenly...
        PlanCase{"waves_split_the_bracket",
                 confirmed(3611, 5539),
                 settings(20000, 1000),
                 {3997, 4382, 4768, 5153},
                 2},
        // ... one of them the single loss, probed again.
        PlanCase{"waves_and_again",
                 single(3611, 5539),
                 settings(20000, 1000),
                 {4093, 4575, 5057, 5539},
                 2},
        PlanCase{"waves_finer_than_the_resolution",
                 single(3611, 4575),
                 settings(20000, 1000),
                 {3852, 4093, 4334, 4575},
                 2},
        // Never two probes of the same idle period in a wave.
        PlanCase{"waves_in_a_narrow_bracket",
                 single(4000, 4002),
                 settings(20000, 1000),
                 {4001, 4002},
                 2},
        // One connection at a time: one wave, bisection, the loss probed
        // again in the next round.
        PlanCase{"again_single_probe", single(0, 90000), settings(1800000, 1000, 1), {90000}},
        PlanCase{"bisect_single_probe", confirmed(0, 90000), settings(1800000, 1000, 1), {45000}},
        // Done: nothing to probe.
        PlanCase{"measured", confirmed(3611, 4575), settings(20000, 1000), {}},
        PlanCase{"no_timeout_up_to_max", {20000, -1, 0}, settings(20000, 1000), {}}),
    [](const ::testing::TestParamInfo<PlanCase> &case_info) {
      return std::string(case_info.param.name);
    });

TEST(NatprobePlan, DefaultFirstRoundIsGeometricFromResolutionToMax) {
  const RoundPlan plan = plan_round(Bracket{}, Settings{});  // 30m, 10s, 64
  ASSERT_EQ(plan.idle_ms.size(), 64u);
  EXPECT_EQ(plan.waves, 1);
  EXPECT_EQ(plan.idle_ms.front(), 10000);
  EXPECT_EQ(plan.idle_ms.back(), 1800000);
  for (size_t i = 2; i < plan.idle_ms.size(); ++i) {
    double ratio = static_cast<double>(plan.idle_ms[i]) / static_cast<double>(plan.idle_ms[i - 1]);
    double previous =
        static_cast<double>(plan.idle_ms[i - 1]) / static_cast<double>(plan.idle_ms[i - 2]);
    EXPECT_NEAR(ratio, previous, 0.01) << i;
    EXPECT_LT(ratio, 1.09) << i;  // the first loss lies within 9 % above the timeout
  }
}

TEST(NatprobePlan, PlayedRoundsEndAsTheClientEndsThem) {
  // Two waves of {4093, 4575, 5057, 5539} against T = 5 s, the second set
  // up 4 s later: 4.093 s and 4.575 s survive in the first, 5.057 s is lost
  // (at idle + grace) and 5.539 s dropped then; the second wave's 4.093 s
  // and 4.575 s are dropped (nothing to learn), its 5.057 s is lost too.
  const Settings s = settings(20000, 1000);
  const RoundPlan plan = plan_round(single(3611, 5539), s);
  std::vector<Trial> trials = {trial(3611, Outcome::kSurvived), trial(5539, Outcome::kSilent)};
  EXPECT_EQ(play_round(plan, 2, 5000, s, &trials), 4000 + 5057 + 2000);
  ASSERT_EQ(trials.size(), 6u);
  const Bracket b = bracket_of(trials);
  EXPECT_EQ(b.lower_ms, 4575);
  EXPECT_EQ(b.confirmed_upper_ms, 5057);
  for (size_t i = 2; i < trials.size(); ++i) EXPECT_LE(trials[i].idle_ms, 5057) << i;
  EXPECT_EQ(trials.back().round, 3);
}

// Whole measurements against simulated NATs that forget after exactly T ms
// (idle >= T is lost): the plan must end with a confirmed bracket lower < T
// <= upper no wider than the resolution — or report no timeout when T is
// beyond --max.
TEST(NatprobePlan, SimulatedNatsAreBracketedWithinTheResolution) {
  const std::vector<Settings> all = {settings(20000, 1000),
                                     settings(1800000, 10000),
                                     settings(1800000, 10000, 1),
                                     settings(3600000, 1000, 64),
                                     settings(5000, 1000, 2),
                                     settings(86400000, 1000, 8),
                                     Settings{},
                                     settings(60000, 1000, 64, 1000)};
  const std::vector<long long> timeouts = {1,      500,    999,     1000,    1001,    3999,
                                           4000,   9000,   20000,   20001,   29999,   270000,
                                           299999, 300000, 1799999, 1800000, 1800001, 86399999};
  for (const Settings &s : all) {
    for (long long t : timeouts) {
      const SimulatedRun run = simulate_run(s, t);
      const Bracket b = bracket_of(run.trials);
      std::string where = "T=" + std::to_string(t) + " max=" + std::to_string(s.max_ms) +
                          " resolution=" + std::to_string(s.resolution_ms) +
                          " parallel=" + std::to_string(s.parallel);
      ASSERT_LT(run.rounds, 40) << where;
      if (t > s.max_ms) {
        EXPECT_EQ(progress_of(b, s), Progress::kNoTimeoutUpToMax) << where;
        EXPECT_EQ(b.lower_ms, s.max_ms) << where;
      } else {
        ASSERT_EQ(progress_of(b, s), Progress::kMeasured) << where;
        EXPECT_LT(b.lower_ms, t) << where;
        EXPECT_GE(b.upper_ms, t) << where;
        EXPECT_LE(b.upper_ms - b.lower_ms, s.resolution_ms) << where;
      }
      EXPECT_EQ(b.contradicting, 0) << where;
    }
  }
}

// With the defaults, a carrier's timeout is found and confirmed in about two
// silences as long as the timeout: at most 2.3 T + 2 grace periods.
TEST(NatprobePlan, DefaultsAnswerWithinTwoSilencesOfTheTimeout) {
  const Settings s;
  for (long long t : {60000LL, 120000LL, 270000LL, 300000LL, 600000LL, 1800000LL}) {
    const SimulatedRun run = simulate_run(s, t);
    const double times = static_cast<double>(run.elapsed_ms) / static_cast<double>(t);
    std::cout << "defaults, T = " << whole_seconds_text(static_cast<double>(t) / 1000) << ": "
              << whole_seconds_text(static_cast<double>(run.elapsed_ms) / 1000) << " (" << times
              << " T), " << run.rounds << " rounds, " << run.trials.size() << " probes\n";
    EXPECT_LE(run.elapsed_ms, t * 23 / 10 + 2 * s.grace_ms) << "T=" << t;
    EXPECT_EQ(progress_of(bracket_of(run.trials), s), Progress::kMeasured) << "T=" << t;
  }
}

// The time docs/measure-your-nat.md gives for each timeout is the plan's.
TEST(NatprobePlan, DocsGiveThePlansTimes) {
  std::ifstream file(std::string(KEEPALIVE_SOURCE_DIR) + "/docs/measure-your-nat.md");
  ASSERT_TRUE(file) << "cannot read docs/measure-your-nat.md";
  const std::string docs((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  for (long long t : {60000LL, 270000LL, 300000LL, 600000LL, 1800000LL}) {
    const SimulatedRun run = simulate_run(Settings{}, t);
    const std::string row = "| " + whole_seconds_text(static_cast<double>(t) / 1000) + " | " +
                            whole_seconds_text(static_cast<double>(run.elapsed_ms) / 1000) + " |";
    EXPECT_NE(docs.find(row), std::string::npos) << "docs/measure-your-nat.md lacks: " << row;
  }
}

// The same against a path that loses one probe that should have survived
// (an outage while its line was on the way), for every such probe of the
// run in turn: the loss is probed again and the bracket still contains T.
TEST(NatprobePlan, OneFalseLossDoesNotBecomeTheResult) {
  const std::vector<Settings> all = {settings(20000, 1000), settings(1800000, 10000),
                                     settings(1800000, 10000, 1), Settings{}};
  const std::vector<long long> timeouts = {4000, 6000, 9000, 270000, 299999, 1000000};
  for (const Settings &s : all) {
    for (long long t : timeouts) {
      if (t > s.max_ms) continue;
      for (int victim = 0; victim < 12; ++victim) {
        std::vector<Trial> trials;
        int rounds = 0, survivors = 0;
        bool struck = false;
        for (RoundPlan plan; !(plan = plan_round(bracket_of(trials), s)).empty();) {
          ASSERT_LT(rounds, 40) << "no end: T=" << t << " victim " << victim;
          for (int wave = 0; wave < plan.waves; ++wave) {
            for (long long idle : plan.idle_ms) {
              bool survives = idle < t;
              if (survives && survivors++ == victim) {
                survives = false;
                struck = true;
              }
              trials.push_back(
                  trial(idle, survives ? Outcome::kSurvived : Outcome::kSilent, rounds + 1 + wave));
            }
          }
          rounds += plan.waves;
        }
        if (!struck) continue;
        Bracket b = bracket_of(trials);
        std::string where = "T=" + std::to_string(t) + " max=" + std::to_string(s.max_ms) +
                            " parallel=" + std::to_string(s.parallel) +
                            " victim=" + std::to_string(victim);
        ASSERT_EQ(progress_of(b, s), Progress::kMeasured) << where;
        EXPECT_LT(b.lower_ms, t) << where;
        EXPECT_GE(b.reported_upper_ms(), t) << where;
        EXPECT_LE(b.reported_upper_ms() - b.lower_ms, s.resolution_ms) << where;
      }
    }
  }
}

TEST(NatprobePlan, TimeLeft) {
  const Settings s = settings(20000, 1000);  // 8 probes, grace 2 s: waves 4 s apart
  // Measured: nothing left.
  std::vector<Trial> done = {trial(3611, Outcome::kSurvived), trial(4575, Outcome::kSilent, 1),
                             trial(4575, Outcome::kSilent, 2)};
  EXPECT_EQ(later_rounds_ms(done, {}, s), 0);
  EXPECT_EQ(expected_later_rounds_ms(done, {}, s), 0);
  // Confirmed [3.611 s, 5.539 s]: two waves of 3.997 4.382 4.768 5.153 s.
  // At worst T = 5.153 s, lost by the second wave at 4 + 5.153 + 2 s; with
  // T in the middle (4.575 s), 4.768 s is that loss.
  std::vector<Trial> bounded = {trial(3611, Outcome::kSurvived), trial(5539, Outcome::kSilent, 1),
                                trial(5539, Outcome::kSilent, 2)};
  EXPECT_EQ(later_rounds_ms(bounded, {}, s), 4000 + 5153 + 2000);
  EXPECT_EQ(expected_later_rounds_ms(bounded, {}, s), 4000 + 4768 + 2000);
  // Pending probes outside the bracket do not count.
  EXPECT_EQ(later_rounds_ms(done, {trial(8498, Outcome::kSilent, 1)}, s), 0);
}

// At the start of a default run the worst case assumes no timeout up to
// --max (the waves then probe up to 30 minutes again); the expectation plays
// the rounds against a timeout in the middle.
TEST(NatprobePlan, ExpectedTimeLeftIsBelowTheWorstCase) {
  Settings s;  // 30m, 10s, 64 probes, grace 5s
  std::vector<Trial> first;
  for (long long idle : plan_round(Bracket{}, s).idle_ms) first.push_back(trial(idle, {}, 1));
  long long worst = later_rounds_ms({}, first, s);
  long long expected = expected_later_rounds_ms({}, first, s);
  std::cout << "default run, start: expected " << expected << " ms, worst " << worst << " ms\n";
  EXPECT_GT(expected, 0);
  EXPECT_LT(expected, worst / 2);
}

// ---- the recommendation -------------------------------------------------------

struct RecommendCase {
  const char *name;
  Bracket bracket;
  long long resolution_ms;
  long long idle_s;
  long long margin_ms;
  bool raised, capped;
};

class RecommendTest : public ::testing::TestWithParam<RecommendCase> {};

TEST_P(RecommendTest, LowerBoundMinusMargin) {
  const RecommendCase &c = GetParam();
  Settings s = settings(86400000, c.resolution_ms);
  Recommendation r = recommend(c.bracket, s);
  ASSERT_TRUE(r.available);
  EXPECT_EQ(r.idle_s, c.idle_s);
  EXPECT_EQ(r.margin_ms, c.margin_ms);
  EXPECT_EQ(r.raised_to_minimum, c.raised);
  EXPECT_EQ(r.capped, c.capped);
}

INSTANTIATE_TEST_SUITE_P(
    Table, RecommendTest,
    ::testing::Values(
        // The emulated 4 s NAT: 3.611 s - 1 s (the resolution) = 2.611 s → 2 s.
        RecommendCase{"emulated_4s", {3611, 4575, 0}, 1000, 2, 1000, false, false},
        // A 5-minute carrier: 10 % of 295 s is more than the resolution.
        RecommendCase{"carrier_300s", {295000, 305000, 0}, 10000, 265, 29500, false, false},
        // 10 % rounds up to a whole millisecond: 12.345 s → margin 1.235 s.
        RecommendCase{"ten_percent_rounds_up", {12345, 13000, 0}, 1000, 11, 1235, false, false},
        RecommendCase{"exactly_one_second", {2000, 2500, 0}, 1000, 1, 1000, false, false},
        // Below 1 s: raised to the shortest KEEPALIVE_IDLE, and said so.
        RecommendCase{"raised", {1500, 2000, 0}, 1000, 1, 1000, true, false},
        RecommendCase{"nothing_survived", {0, 1000, 0}, 1000, 1, 1000, true, false},
        // Above what the kernel accepts: capped.
        RecommendCase{"capped", {40000000, 40001000, 0}, 1000, 32767, 4000000, false, true}),
    [](const ::testing::TestParamInfo<RecommendCase> &case_info) {
      return std::string(case_info.param.name);
    });

TEST(NatprobeRecommend, NoneWithoutALoss) {
  EXPECT_FALSE(recommend(Bracket{20000, -1, 0}, settings(20000, 1000)).available);
}

// ---- the report -------------------------------------------------------------

Report measured_report() {
  Report report;
  report.server = "198.51.100.2:7200";
  report.settings = settings(20000, 1000);
  report.trials = {trial(3611, Outcome::kSurvived), trial(5539, Outcome::kSilent)};
  report.trials.push_back(trial(4575, Outcome::kSilent, 2));
  report.trials.push_back(trial(4575, Outcome::kSilent, 3));
  report.trials[0].round_trip_ms = 48;
  report.trials[2].round_trip_ms = 31;
  report.rounds = 3;
  report.elapsed_s = 14.1234;
  return report;
}

TEST(NatprobeReport, Json) {
  EXPECT_EQ(format_json(measured_report()),
            R"({
  "server": "198.51.100.2:7200",
  "status": "measured",
  "interrupted": false,
  "error": null,
  "timeout_lower_s": 3.611,
  "timeout_upper_s": 4.575,
  "upper_confirmed": true,
  "round_trip_s": 0.048,
  "timeout_upper_bound_s": 4.623,
  "recommended_idle_s": 2,
  "safety_margin_s": 1,
  "systemd": "Environment=KEEPALIVE_IDLE=2",
  "max_s": 20,
  "resolution_s": 1,
  "grace_s": 2,
  "parallel": 8,
  "rounds": 3,
  "elapsed_s": 14.123,
  "contradicting_trials": 0,
  "transient_losses": 0,
  "trials": [
    {
      "round": 1,
      "idle_s": 3.611,
      "survived": true,
      "outcome": "survived",
      "server_silence_s": 3.621,
      "round_trip_s": 0.048
    },
    {
      "round": 1,
      "idle_s": 5.539,
      "survived": false,
      "outcome": "silent",
      "server_silence_s": null,
      "round_trip_s": null
    },
    {
      "round": 2,
      "idle_s": 4.575,
      "survived": false,
      "outcome": "silent",
      "server_silence_s": null,
      "round_trip_s": 0.031
    },
    {
      "round": 3,
      "idle_s": 4.575,
      "survived": false,
      "outcome": "silent",
      "server_silence_s": null,
      "round_trip_s": null
    }
  ]
}
)");
}

TEST(NatprobeReport, JsonWithoutATimeoutAndWithAnError) {
  Report report;
  report.server = "[2001:db8::1]:7200";
  report.settings = settings(2000, 1000);
  report.trials = {trial(1000, Outcome::kSurvived), trial(2000, Outcome::kSurvived)};
  report.rounds = 1;
  std::string json = format_json(report);
  EXPECT_NE(json.find("\"status\": \"no_timeout_up_to_max\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"timeout_lower_s\": 2,"), std::string::npos) << json;
  for (const char *key : {"timeout_upper_s", "recommended_idle_s", "safety_margin_s", "systemd"}) {
    EXPECT_NE(json.find(std::string("\"") + key + "\": null"), std::string::npos) << key;
  }

  // Lost once although 2 s survived: transient, the status stays.
  report.trials.push_back(trial(1500, Outcome::kFailed));
  report.trials.back().detail = "EHOSTUNREACH";
  report.error = "cannot connect to [2001:db8::1]:7200: Connection refused";
  json = format_json(report);
  EXPECT_NE(json.find("\"status\": \"no_timeout_up_to_max\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"transient_losses\": 1,"), std::string::npos) << json;
  EXPECT_NE(json.find("\"error\": \"cannot connect to [2001:db8::1]:7200: Connection refused\""),
            std::string::npos)
      << json;
  EXPECT_NE(json.find("\"outcome\": \"failed\",\n      \"error\": \"EHOSTUNREACH\""),
            std::string::npos)
      << json;
}

TEST(NatprobeReport, ServerGoneGivesNoBracketAndNoRecommendation) {
  Report report = measured_report();
  report.server_gone = true;
  report.error = "the natprobe server at 198.51.100.2:7200 stopped during round 3";
  std::string json = format_json(report);
  EXPECT_NE(json.find("\"status\": \"server_gone\""), std::string::npos) << json;
  for (const char *key : {"timeout_lower_s", "timeout_upper_s", "timeout_upper_bound_s",
                          "recommended_idle_s", "safety_margin_s", "systemd"}) {
    EXPECT_NE(json.find(std::string("\"") + key + "\": null"), std::string::npos) << key;
  }
  EXPECT_NE(json.find("\"trials\": ["), std::string::npos) << json;
  std::string text = format_text(report);
  EXPECT_NE(text.find("Stopped early (the natprobe server at 198.51.100.2:7200 stopped during "
                      "round 3)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("No timeout and no KEEPALIVE_IDLE recommendation: the server went away"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("Environment="), std::string::npos) << text;
  EXPECT_EQ(text.find("Recommended"), std::string::npos) << text;
}

TEST(NatprobeReport, TextMeasured) {
  std::string text = format_text(measured_report());
  EXPECT_NE(text.find("NAT idle timeout on the path to 198.51.100.2:7200: 4 probes in 3 rounds, "
                      "14.123s\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("  survived   3.611s\n  lost       4.575s 4.575s 5.539s\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("Timeout between 3.611s (longest silence that survived) and 4.575s "
                      "(shortest loss, confirmed): bracket [3.611s, 4.575s], width 964ms.\n"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("Note:"), std::string::npos) << text;
  EXPECT_NE(text.find("the probes' round trip was at most 48ms, so the timeout is at most 4.623s"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("Recommended KEEPALIVE_IDLE=2: the lower bound 3.611s minus a safety "
                      "margin of 1s"),
            std::string::npos)
      << text;
  // The systemd line stands alone, last.
  const std::string last = "\nEnvironment=KEEPALIVE_IDLE=2\n";
  ASSERT_GE(text.size(), last.size());
  EXPECT_EQ(text.substr(text.size() - last.size()), last) << text;
}

TEST(NatprobeReport, TextNoTimeoutInterruptedResetsContradictions) {
  Report none;
  none.server = "127.0.0.1:7200";
  none.settings = settings(3000, 1000);
  none.trials = {trial(1000, Outcome::kSurvived), trial(2000, Outcome::kSurvived),
                 trial(3000, Outcome::kSurvived)};
  none.rounds = 1;
  std::string text = format_text(none);
  EXPECT_NE(text.find("No timeout up to --max 3s: every idle period up to 3s survived."),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("No KEEPALIVE_IDLE recommendation"), std::string::npos) << text;
  EXPECT_EQ(text.find("Environment="), std::string::npos) << text;

  Report stopped = none;
  stopped.settings = settings(1800000, 10000);
  stopped.interrupted = true;
  text = format_text(stopped);
  EXPECT_NE(text.find("Interrupted: this is what was learned so far.\n"), std::string::npos);
  EXPECT_NE(text.find("No loss yet: the timeout is longer than 3s (--max 30m was not reached)."),
            std::string::npos)
      << text;

  Report reset = measured_report();
  reset.trials[1].outcome = Outcome::kReset;
  text = format_text(reset);
  EXPECT_NE(text.find("  lost       4.575s 4.575s 5.539s (reset)\n"), std::string::npos) << text;
  EXPECT_NE(text.find("Note: 1 probe connection was reset or closed instead of staying silent, "
                      "counted as lost"),
            std::string::npos)
      << text;

  Report once = measured_report();
  once.trials.pop_back();  // 4.575 s lost in round 2 only; 5.539 s in rounds 1 and 2
  text = format_text(once);
  EXPECT_NE(text.find("and 5.539s (shortest loss, confirmed): bracket [3.611s, 5.539s]"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("Note: a single loss at 4.575s lies inside the bracket, not yet seen again."),
            std::string::npos)
      << text;
  once.trials.pop_back();  // 5.539 s lost in round 1 only
  text = format_text(once);
  EXPECT_NE(text.find("and 5.539s (shortest that was lost, seen once): bracket [3.611s, 5.539s], "
                      "width 1.928s, not yet narrowed"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("Note: the upper bound 5.539s rests on a single lost probe"),
            std::string::npos)
      << text;

  Report transient = measured_report();
  transient.trials.push_back(trial(3000, Outcome::kSilent, 3));
  text = format_text(transient);
  EXPECT_NE(text.find("Note: 1 probe was lost although a longer silence survived"),
            std::string::npos)
      << text;

  Report contradicting = measured_report();
  contradicting.trials.push_back(trial(6000, Outcome::kSurvived));
  text = format_text(contradicting);
  EXPECT_NE(text.find("Note: 1 probe survived an idle period at or above the shortest loss "
                      "(4.575s)"),
            std::string::npos)
      << text;

  Report empty;
  empty.server = "127.0.0.1:7200";
  empty.error = "lost contact";
  text = format_text(empty);
  EXPECT_NE(text.find("Stopped early (lost contact)"), std::string::npos) << text;
  EXPECT_NE(text.find("No probe finished: nothing was learned.\n"), std::string::npos) << text;
}

}  // namespace
}  // namespace keepalive_natprobe
