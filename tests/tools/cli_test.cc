// cli_test.cc — unit tests of the command's shared pieces (tools/cli.*,
// tools/figures.*): derived figures, duration formatting, JSON output, text
// tables, and the configuration flags as a lookup for the core. No
// processes, no network.

#include "lib/cli.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <string>
#include <vector>

#include "lib/figures.h"
#include "lib/options.h"
#include "lib/output.h"

namespace keepalive_cli {
namespace {

// ---- derived figures -------------------------------------------------------

struct FiguresCase {
  const char *name;
  EffectiveTimers timers;
  long long longest_silence_ms;
  long long dead_peer_ms;
  bool bounded_by_user_timeout;
  double probes_per_hour;
};

class FiguresTest : public ::testing::TestWithParam<FiguresCase> {};

TEST_P(FiguresTest, MatchesTheKernelsArithmetic) {
  const FiguresCase &c = GetParam();
  Figures figures = derive_figures(c.timers);
  EXPECT_EQ(figures.longest_silence_ms, c.longest_silence_ms);
  EXPECT_EQ(figures.dead_peer_ms, c.dead_peer_ms);
  EXPECT_EQ(figures.dead_peer_bounded_by_user_timeout, c.bounded_by_user_timeout);
  EXPECT_NEAR(figures.probes_per_hour, c.probes_per_hour, 1e-9);
}

INSTANTIATE_TEST_SUITE_P(
    Table, FiguresTest,
    ::testing::Values(
        // Kernel defaults: 2 h idle, 9 probes 75 s apart.
        FiguresCase{"kernel_defaults", {7200, 75, 9, 0}, 7200000, 7875000, false, 0.5},
        // The Prosody client rule: 270 s idle, cnt 4, interval min(270, 75).
        FiguresCase{"prosody_c2s", {270, 75, 4, 0}, 270000, 570000, false, 3600.0 / 270},
        // Interval longer than idle: the silence is the interval.
        FiguresCase{"intvl_over_idle", {1, 75, 9, 0}, 75000, 676000, false, 48.0},
        // User timeout reached before the first probe's timer: one probe.
        FiguresCase{"user_timeout_short", {60, 45, 9, 30000}, 60000, 105000, true, 60.0},
        // Exactly at idle + intvl: still the first probe timer.
        FiguresCase{"user_timeout_at_first_timer", {60, 45, 9, 105000}, 60000, 105000, true, 60.0},
        // One millisecond later: the next timer.
        FiguresCase{"user_timeout_just_after", {60, 45, 9, 105001}, 60000, 150000, true, 60.0},
        // 10 s idle, 10 s interval, 95 s: ceil(85 / 10) = 9 probes → 100 s.
        FiguresCase{"user_timeout_many_probes", {10, 10, 3, 95000}, 10000, 100000, true, 360.0}),
    [](const ::testing::TestParamInfo<FiguresCase> &case_info) {
      return std::string(case_info.param.name);
    });

TEST(EffectiveTimers, FillsUnsetValuesFromTheKernel) {
  KernelDefaults kernel{};
  kernel.idle_s = 7000;
  kernel.intvl_s = 70;
  kernel.cnt = 8;
  keepalive_settings settings{};
  settings.enable = 1;
  settings.idle_s = 270;
  settings.intvl_s = KEEPALIVE_UNSET;
  settings.cnt = KEEPALIVE_UNSET;
  settings.user_timeout_ms = KEEPALIVE_UNSET;
  EffectiveTimers timers = effective_timers(settings, kernel);
  EXPECT_EQ(timers.idle_s, 270);
  EXPECT_EQ(timers.intvl_s, 70);
  EXPECT_EQ(timers.cnt, 8);
  EXPECT_EQ(timers.user_timeout_ms, 0);
  settings.user_timeout_ms = 0;  // 0 is the kernel default too
  EXPECT_EQ(effective_timers(settings, kernel).user_timeout_ms, 0);
  settings.user_timeout_ms = 2500;
  EXPECT_EQ(effective_timers(settings, kernel).user_timeout_ms, 2500);
}

// ---- formatting -------------------------------------------------------------

TEST(FormatDuration, ReadsLikeTheInput) {
  const std::vector<std::pair<long long, std::string>> table = {
      {0, "0s"},
      {250, "250ms"},
      {1000, "1s"},
      {1500, "1.5s"},
      {75000, "1m15s"},
      {270000, "4m30s"},
      {600000, "10m"},
      {3600000, "1h"},
      {7875000, "2h11m15s"},
      {3661001, "1h1m1.001s"},
  };
  for (const auto &[ms, text] : table) EXPECT_EQ(format_duration_ms(ms), text) << ms;
}

TEST(JsonQuote, EscapesWhatJsonRequires) {
  EXPECT_EQ(json_quote("plain"), "\"plain\"");
  EXPECT_EQ(json_quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(json_quote("line\nnext\ttab"), "\"line\\nnext\\ttab\"");
  EXPECT_EQ(json_quote(std::string("nul\0x", 5)), "\"nul\\u0000x\"");
  EXPECT_EQ(json_quote("\x1b[0m"), "\"\\u001b[0m\"");
  // DEL is a control byte too (a terminal would act on it); '~' is not.
  EXPECT_EQ(json_quote("del\x7f~"), "\"del\\u007f~\"");
  // Valid UTF-8 passes through; a stray byte becomes U+00XX.
  EXPECT_EQ(json_quote("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
  EXPECT_EQ(json_quote("bad\xff"), "\"bad\\u00ff\"");
  EXPECT_EQ(json_quote("\xc3"), "\"\\u00c3\"");                        // truncated sequence
  EXPECT_EQ(json_quote("\xed\xa0\x80"), "\"\\u00ed\\u00a0\\u0080\"");  // surrogate
}

TEST(JsonQuote, KeepsEveryValidUtf8SequenceToItsBoundsAndEscapesWhatIsNot) {
  // A process name is bytes: the first and last code point of each length
  // pass through unchanged, a sequence just outside them is escaped byte by
  // byte.
  for (const char *valid : {"\xc2\x80", "\xdf\xbf", "\xe0\xa0\x80", "\xef\xbf\xbf",
                            "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf"}) {
    EXPECT_EQ(json_quote(valid), std::string("\"") + valid + "\"") << valid;
  }
  EXPECT_EQ(json_quote("\xc1\xbf"), "\"\\u00c1\\u00bf\"");                        // overlong
  EXPECT_EQ(json_quote("\xe0\x9f\xbf"), "\"\\u00e0\\u009f\\u00bf\"");             // overlong
  EXPECT_EQ(json_quote("\xf4\x90\x80\x80"), "\"\\u00f4\\u0090\\u0080\\u0080\"");  // > U+10FFFF
  EXPECT_EQ(json_quote("\xf5\x80\x80\x80"), "\"\\u00f5\\u0080\\u0080\\u0080\"");
}

TEST(JsonWriter, WritesNestedDocuments) {
  JsonWriter json;
  json.begin_object();
  json.field("n", 3);
  json.field("ok", true);
  json.optional_field("unset", KEEPALIVE_UNSET);
  json.field("rate", 3600.0 / 270);
  json.key("list").begin_array();
  json.string("a");
  json.begin_object().end_object();
  json.begin_array().end_array();
  json.end_array();
  json.end_object();
  EXPECT_EQ(json.str(),
            "{\n"
            "  \"n\": 3,\n"
            "  \"ok\": true,\n"
            "  \"unset\": null,\n"
            "  \"rate\": 13.333,\n"
            "  \"list\": [\n"
            "    \"a\",\n"
            "    {},\n"
            "    []\n"
            "  ]\n"
            "}\n");
}

TEST(SocketSettingsJson, AnObjectWhenReadNullWhenNot) {
  keepalive_settings settings{};
  settings.enable = 1;
  settings.idle_s = 270;
  settings.intvl_s = 75;
  settings.cnt = 9;
  settings.user_timeout_ms = 0;
  JsonWriter json;
  json.begin_object();
  socket_settings_json(&json, "before", true, settings);
  socket_settings_json(&json, "after", false, settings);
  json.end_object();
  EXPECT_EQ(json.str(),
            "{\n"
            "  \"before\": {\n"
            "    \"enabled\": true,\n"
            "    \"idle_s\": 270,\n"
            "    \"intvl_s\": 75,\n"
            "    \"cnt\": 9,\n"
            "    \"user_timeout_ms\": 0\n"
            "  },\n"
            "  \"after\": null\n"
            "}\n");
}

// ---- text ---------------------------------------------------------------------

TEST(FormatTable, PadsEveryColumnButTheLastToItsWidestCell) {
  EXPECT_EQ(format_table({{"FD", "DIR", "PEER"}, {"10", "listen", "-"}, {"3", "in", "[::1]:5222"}}),
            "FD  DIR     PEER\n"
            "10  listen  -\n"
            "3   in      [::1]:5222\n");
  EXPECT_EQ(format_table({}), "");
}

TEST(Summary, CountsIdenticalRowsInOrderOfFirstAppearance) {
  std::vector<std::vector<std::string>> keys = {{"in", "set"}, {"out", "set"}, {"in", "set"}};
  EXPECT_EQ(summary_table({"DIR", "ACTION"}, keys),
            "SOCKETS  DIR  ACTION\n"
            "2        in   set\n"
            "1        out  set\n");
  JsonWriter json;
  json.begin_object();
  summary_json(&json, true, {"direction", "action"}, keys);
  json.end_object();
  EXPECT_NE(json.str().find("\"direction\": \"out\",\n      \"action\": \"set\",\n      "
                            "\"sockets\": 1"),
            std::string::npos)
      << json.str();
}

TEST(Summary, ByFlagOrAboveTheThreshold) {
  Detail detail = Detail::kAuto;
  EXPECT_FALSE(use_summary(detail, kSummaryAbove));
  EXPECT_TRUE(use_summary(detail, kSummaryAbove + 1));
  ASSERT_TRUE(parse_detail_option("--summary", &detail));
  EXPECT_TRUE(use_summary(detail, 1));
  ASSERT_TRUE(parse_detail_option("--full", &detail));
  EXPECT_FALSE(use_summary(detail, 5000));
  EXPECT_FALSE(parse_detail_option("--json", &detail));
}

TEST(HelpOption, BothSpellingsAndNothingElse) {
  EXPECT_TRUE(is_help_option("-h"));
  EXPECT_TRUE(is_help_option("--help"));
  EXPECT_FALSE(is_help_option("-help"));
  EXPECT_FALSE(is_help_option("--help=1"));
  EXPECT_FALSE(is_help_option("help"));
}

TEST(HelpEntry, WrapsTextAtItsColumnWithinTheWidth) {
  EXPECT_EQ(help_entry("--json", "one JSON object"), "  --json                  one JSON object\n");
  std::string text;
  for (int i = 0; i < 30; ++i) text += "word ";
  std::string entry = help_entry("--idle DURATION", text);
  size_t start = 0;
  int lines = 0;
  while (start < entry.size()) {
    size_t end = entry.find('\n', start);
    EXPECT_LE(end - start, kHelpWidth);
    if (lines > 0) {
      EXPECT_EQ(entry.substr(start, kHelpColumn + 4), std::string(kHelpColumn, ' ') + "word");
    }
    start = end + 1;
    ++lines;
  }
  EXPECT_GE(lines, 3);
  // A term that reaches the column puts its text on the next line.
  EXPECT_EQ(help_entry("--user-timeout DURATION", "x"),
            "  --user-timeout DURATION\n" + std::string(kHelpColumn, ' ') + "x\n");
  EXPECT_EQ(help_entry("keepalive run", "run it", 6), "  keepalive run\n      run it\n");
}

// ---- flags ------------------------------------------------------------------

// Reads argv (without a program name) into flags with the one option
// reader, for a subcommand whose only option is --json; returns the first
// usage error, or "operand: ARG".
std::string parse_all(ConfigFlags *flags, std::vector<std::string> args) {
  args.insert(args.begin(), "test");
  std::vector<char *> argv;
  for (std::string &arg : args) argv.push_back(arg.data());
  const std::vector<Option> json = {{"--json", nullptr, "one JSON object"}};
  OptionReader reader("test", static_cast<int>(argv.size()), argv.data(), json, flags);
  for (;;) {
    switch (reader.next()) {
      case OptionReader::kEnd:
        return "";
      case OptionReader::kError:
        return reader.error();
      case OptionReader::kOperand:
        return std::string("operand: ") + reader.value();
      default:
        break;  // --json, or -h
    }
  }
}

TEST(ConfigFlags, SeparateAndInlineValues) {
  ConfigFlags flags;
  EXPECT_EQ(parse_all(&flags, {"--idle", "4m30s", "--cnt=4", "--strict", "--rules=a=b; c"}), "");
  EXPECT_STREQ(flags.flag_value("KEEPALIVE_IDLE"), "4m30s");
  EXPECT_STREQ(flags.flag_value("KEEPALIVE_CNT"), "4");
  EXPECT_STREQ(flags.flag_value("KEEPALIVE_STRICT"), "1");
  EXPECT_STREQ(flags.flag_value("KEEPALIVE_RULES"), "a=b; c");  // split at the first '='
  EXPECT_STREQ(flags.flag_name("KEEPALIVE_IDLE"), "--idle");
  EXPECT_EQ(flags.flag_value("KEEPALIVE_INTVL"), nullptr);
}

// Every flag stands for a variable of the core's one list (the usage lines
// end with it in brackets), and that list is the command's.
TEST(ConfigFlags, EveryFlagIsAVariableOfTheCore) {
  std::vector<std::string> core;
  for (int i = 0; keepalive_variable_name(i) != nullptr; ++i)
    core.push_back(keepalive_variable_name(i));
  EXPECT_EQ(
      std::vector<std::string>(configuration_variables().begin(), configuration_variables().end()),
      core);
  std::string usage = ConfigFlags::usage();
  int flags = 0;
  for (size_t open = usage.find('['); open != std::string::npos; open = usage.find('[', open + 1)) {
    std::string variable = usage.substr(open + 1, usage.find(']', open) - open - 1);
    EXPECT_NE(std::find(core.begin(), core.end(), variable), core.end()) << variable;
    ++flags;
  }
  EXPECT_EQ(flags, 7);
}

TEST(ConfigFlags, ErrorsNameTheFlagAndItsForm) {
  ConfigFlags missing;
  EXPECT_EQ(parse_all(&missing, {"--user-timeout"})
                .rfind("--user-timeout needs a value: "
                       "--user-timeout DURATION",
                       0),
            0u);
  ConfigFlags twice;
  EXPECT_EQ(parse_all(&twice, {"--idle", "1", "--idle=2"}), "--idle is given twice");
  ConfigFlags switch_value;
  EXPECT_EQ(parse_all(&switch_value, {"--strict=yes"}), "--strict takes no value");
  ConfigFlags other;
  EXPECT_EQ(parse_all(&other, {"--json", "--idle", "5"}), "");  // the subcommand's, then a flag
  EXPECT_STREQ(other.flag_value("KEEPALIVE_IDLE"), "5");
  EXPECT_EQ(parse_all(&other, {"--idlex=3"}), "unknown option --idlex=3");
  EXPECT_EQ(parse_all(&other, {"5"}), "operand: 5");
}

TEST(ConfigFlags, FlagsWinOverTheEnvironment) {
  setenv("KEEPALIVE_IDLE", "100", 1);
  setenv("KEEPALIVE_CNT", "5", 1);
  ConfigFlags flags;
  ASSERT_EQ(parse_all(&flags, {"--idle", "200"}), "");
  EXPECT_STREQ(ConfigFlags::lookup("KEEPALIVE_IDLE", &flags), "200");
  EXPECT_STREQ(ConfigFlags::lookup("KEEPALIVE_CNT", &flags), "5");
  LoadedConfig loaded = load_config(flags);
  ASSERT_TRUE(loaded.config->valid);
  EXPECT_EQ(loaded.config->global.idle_s, 200);
  EXPECT_EQ(loaded.config->global.cnt, 5);
  unsetenv("KEEPALIVE_IDLE");
  unsetenv("KEEPALIVE_CNT");
}

TEST(ConfigFlags, ProblemsSayWhichFlagGaveTheValue) {
  setenv("KEEPALIVE_CNT", "0", 1);
  ConfigFlags flags;
  ASSERT_EQ(parse_all(&flags, {"--idle", "abc"}), "");
  LoadedConfig loaded = load_config(flags);
  ASSERT_FALSE(loaded.config->valid);
  std::vector<std::string> problems = describe_problems(*loaded.config, flags);
  ASSERT_EQ(problems.size(), 2u);
  // The core's message, then the flag; a value from the environment stays as it is.
  std::string idle = problems[0].find("KEEPALIVE_IDLE") == 0 ? problems[0] : problems[1];
  std::string cnt = problems[0].find("KEEPALIVE_CNT") == 0 ? problems[0] : problems[1];
  EXPECT_NE(idle.find("\"abc\""), std::string::npos) << idle;
  const std::string suffix = " (given as --idle)";
  ASSERT_GT(idle.size(), suffix.size());
  EXPECT_EQ(idle.substr(idle.size() - suffix.size()), suffix) << idle;
  EXPECT_EQ(cnt.find("given as"), std::string::npos) << cnt;
  unsetenv("KEEPALIVE_CNT");
}

}  // namespace
}  // namespace keepalive_cli
