// systemd_unit_test.cc — the pure parts of `keepalive enable/disable/status`:
// quoting an Environment= assignment, splitting one back as systemd does,
// a unit's [Service] lines and environment, unit names and the line diff.
// (That systemd itself reads back what systemd_quote writes is shown by
// tests/tools/drop_in_test.py with systemd's own parser.)

#include "lib/systemd_unit.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

using keepalive_cli::line_diff;
using keepalive_cli::service_assignments;
using keepalive_cli::service_unit_name;
using keepalive_cli::systemd_quote;
using keepalive_cli::systemd_split;
using keepalive_cli::UnitEnvironment;

struct QuoteCase {
  const char *assignment;
  const char *quoted;
};

class QuoteTest : public testing::TestWithParam<QuoteCase> {};

TEST_P(QuoteTest, QuotesAndSplitsBackToTheSameWord) {
  const QuoteCase &c = GetParam();
  EXPECT_EQ(systemd_quote(c.assignment), c.quoted);
  std::vector<std::string> words;
  ASSERT_TRUE(systemd_split(systemd_quote(c.assignment), &words));
  EXPECT_EQ(words, std::vector<std::string>{c.assignment});
}

INSTANTIATE_TEST_SUITE_P(
    Assignments, QuoteTest,
    testing::Values(QuoteCase{"KEEPALIVE_IDLE=270", "\"KEEPALIVE_IDLE=270\""},
                    QuoteCase{"KEEPALIVE_RULES=in port=5222 idle=270; off",
                              "\"KEEPALIVE_RULES=in port=5222 idle=270; off\""},
                    QuoteCase{"LD_PRELOAD=/a b/lib.so /c.so", "\"LD_PRELOAD=/a b/lib.so /c.so\""},
                    QuoteCase{"A=100%", "\"A=100%%\""}, QuoteCase{"A=%n", "\"A=%%n\""},
                    QuoteCase{"A=say \"hi\"", "\"A=say \\\"hi\\\"\""},
                    QuoteCase{"A=back\\slash", "\"A=back\\\\slash\""},
                    QuoteCase{"A=it's $HOME", "\"A=it's $HOME\""},
                    QuoteCase{"A=tab\there", "\"A=tab\\x09here\""},
                    QuoteCase{"A=line\nbreak", "\"A=line\\x0abreak\""},
                    QuoteCase{"A=trailing\\", "\"A=trailing\\\\\""},
                    QuoteCase{"A=caf\xc3\xa9", "\"A=caf\xc3\xa9\""}));

struct SplitCase {
  const char *value;
  bool ok;
  std::vector<std::string> words;
};

class SplitTest : public testing::TestWithParam<SplitCase> {};

TEST_P(SplitTest, SplitsAsSystemd) {
  const SplitCase &c = GetParam();
  std::vector<std::string> words;
  EXPECT_EQ(systemd_split(c.value, &words), c.ok) << c.value;
  if (c.ok) {
    EXPECT_EQ(words, c.words) << c.value;
  }
}

// The first is systemd.exec(5)'s own example for Environment=.
INSTANTIATE_TEST_SUITE_P(
    Values, SplitTest,
    testing::Values(SplitCase{"\"VAR1=word1 word2\" VAR2=word3 \"VAR3=$word 5 6\"",
                              true,
                              {"VAR1=word1 word2", "VAR2=word3", "VAR3=$word 5 6"}},
                    SplitCase{"A=1   B=2", true, {"A=1", "B=2"}}, SplitCase{"", true, {}},
                    SplitCase{"'A=x y' B=\"z\"", true, {"A=x y", "B=z"}},
                    SplitCase{"A=a\"b c\"d", true, {"A=ab cd"}},
                    SplitCase{"A=50%%", true, {"A=50%"}},
                    SplitCase{"A=\\x41\\101\\n", true, {"A=AA\n"}},
                    SplitCase{"A=\\x41", true, {"A=A"}}, SplitCase{"A=\\x4", false, {}},
                    SplitCase{"A=\"open", false, {}}, SplitCase{"A=x\\", false, {}},
                    SplitCase{"A=\\q", false, {}},
                    // systemd 252 --test: "Invalid syntax, ignoring" (8 is no octal digit).
                    SplitCase{"A=\\018 B=1", false, {}}, SplitCase{"A=\\1a1", false, {}}));

TEST(ServiceAssignmentsTest, ReadsOnlyServiceWithContinuationsAndComments) {
  auto assignments = service_assignments(
      "[Unit]\nEnvironment=NOT=this\n[Service]\n# Environment=COMMENTED=1\n"
      "  Environment = A=1 \\\n   B=2\n; also a comment\nExecStart=/bin/true\n[Install]\n"
      "Environment=NOR=this\n");
  std::vector<std::pair<std::string, std::string>> expected = {{"Environment", "A=1  B=2"},
                                                               {"ExecStart", "/bin/true"}};
  EXPECT_EQ(assignments, expected);
}

TEST(ServiceAssignmentsTest, CommentLinesInsideAContinuedLineAreSkipped) {
  // systemd drops comment lines between the parts of a continued line; the
  // parts after them still belong to it, up to the first line that ends
  // without a backslash.
  auto assignments = service_assignments(
      "[Service]\nEnvironment=A=1 \\\n# B=2 \\\n  ; C=3\n  D=4 \\\nE=5\nExecStart=/bin/true\n");
  std::vector<std::pair<std::string, std::string>> expected = {{"Environment", "A=1  D=4  E=5"},
                                                               {"ExecStart", "/bin/true"}};
  EXPECT_EQ(assignments, expected);
}

TEST(UnitEnvironmentTest, LaterFilesWinAndAnEmptyAssignmentEmpties) {
  UnitEnvironment environment;
  environment.add_file("unit", "[Service]\nEnvironment=LD_PRELOAD=/a.so X=1\n");
  environment.add_file("10.conf", "[Service]\nEnvironment=\"LD_PRELOAD=/b.so /c.so\"\n");
  ASSERT_NE(environment.find("LD_PRELOAD"), nullptr);
  EXPECT_EQ(environment.find("LD_PRELOAD")->value, "/b.so /c.so");
  EXPECT_EQ(environment.find("LD_PRELOAD")->file, "10.conf");
  EXPECT_EQ(environment.find("X")->value, "1");
  environment.add_file("20.conf", "[Service]\nEnvironment=\nEnvironmentFile=-/etc/default/x\n");
  EXPECT_EQ(environment.find("LD_PRELOAD"), nullptr);
  EXPECT_EQ(environment.environment_files, std::vector<std::string>{"20.conf: -/etc/default/x"});
  environment.add_file("30.conf", "[Service]\nEnvironment=\"BROKEN=\nEnvironment=Y=2\n");
  EXPECT_EQ(environment.find("BROKEN"), nullptr);  // systemd ignores the line too
  EXPECT_EQ(environment.find("Y")->value, "2");
}

TEST(ServiceUnitNameTest, NamesAService) {
  EXPECT_EQ(service_unit_name("prosody"), "prosody.service");
  EXPECT_EQ(service_unit_name("prosody.service"), "prosody.service");
  EXPECT_EQ(service_unit_name("getty@tty1"), "getty@tty1.service");
  EXPECT_EQ(service_unit_name("prosody.socket"), "");
  EXPECT_EQ(service_unit_name("../etc/passwd"), "");
  EXPECT_EQ(service_unit_name("a b"), "");
  EXPECT_EQ(service_unit_name(""), "");
  EXPECT_EQ(service_unit_name(".service"), "");
  // Templates and instances as systemd names them: one '@', after a prefix.
  EXPECT_EQ(service_unit_name("getty@"), "getty@.service");
  EXPECT_EQ(service_unit_name("@"), "");
  EXPECT_EQ(service_unit_name("@tty1"), "");
  EXPECT_EQ(service_unit_name("a@b@c"), "");
  EXPECT_EQ(service_unit_name(std::string(247, 'a')), std::string(247, 'a') + ".service");
  EXPECT_EQ(service_unit_name(std::string(248, 'a')), "");
  EXPECT_EQ(service_unit_name(std::string(247, 'a') + ".service"),
            std::string(247, 'a') + ".service");
  EXPECT_EQ(service_unit_name(std::string(248, 'a') + ".service"), "");
}

TEST(LineDiffTest, ShowsRemovedThenAddedLines) {
  EXPECT_EQ(line_diff("a\nb\nc\n", "a\nB\nc\nd\n"), " a\n-b\n+B\n c\n+d\n");
  EXPECT_EQ(line_diff("same\n", "same\n"), " same\n");
}

}  // namespace
