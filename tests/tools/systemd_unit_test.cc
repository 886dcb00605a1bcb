// systemd_unit_test.cc — the parts of `keepalive enable/disable/status` that
// read units: quoting an Environment= assignment, splitting one back and
// resolving its specifiers as systemd does, a unit's [Service] lines and
// environment, unit names, the files systemd reads for a unit (in a
// temporary directory) and the line diff.
// (That systemd itself reads back what systemd_quote writes is shown by
// tests/tools/drop_in_test.py with systemd's own parser.)

#include "lib/systemd_unit.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

namespace {

using keepalive_cli::find_unit_files;
using keepalive_cli::line_diff;
using keepalive_cli::resolve_specifiers;
using keepalive_cli::service_assignments;
using keepalive_cli::service_unit_name;
using keepalive_cli::specifier_escape;
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
                    QuoteCase{"A=100%%", "\"A=100%%\""}, QuoteCase{"A=%n", "\"A=%n\""},
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
  EXPECT_EQ(words, c.words) << c.value;
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
                    SplitCase{"A=50%% %N", true, {"A=50%%", "%N"}},
                    SplitCase{"A=\\x41\\101\\n", true, {"A=AA\n"}},
                    SplitCase{"A=\\x41", true, {"A=A"}}, SplitCase{"A=\\x4", false, {}},
                    SplitCase{"A=\"open", false, {}}, SplitCase{"A=x\\", false, {}},
                    SplitCase{"A=\\q", false, {}},
                    // systemd 252 --test: A=1 is kept, the rest of the line not.
                    SplitCase{"A=1 B=\\q C=2", false, {"A=1"}},
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

struct SpecifierCase {
  const char *unit, *written;
  bool ok;
  const char *resolved;
};

class SpecifierTest : public testing::TestWithParam<SpecifierCase> {};

TEST_P(SpecifierTest, ResolvesAsSystemd) {
  const SpecifierCase &c = GetParam();
  std::string resolved;
  EXPECT_EQ(resolve_specifiers(c.written, c.unit, &resolved), c.ok) << c.written;
  if (c.ok) {
    EXPECT_EQ(resolved, c.resolved) << c.written;
  }
}

// What systemd 252 --test printed for these units' Environment= words.
INSTANTIATE_TEST_SUITE_P(
    Words, SpecifierTest,
    testing::Values(
        SpecifierCase{"foo-bar@a-b\\x2dc.service", "A=%n|%N|%p|%P|%i|%I|%j|%J|%f", true,
                      "A=foo-bar@a-b\\x2dc.service|foo-bar@a-b\\x2dc|foo-bar|foo/bar|a-b\\x2dc|"
                      "a/b-c|bar|bar|/a/b-c"},
        SpecifierCase{"real.service", "A=%n|%N|%p|%P|%i|%I|%j|%J|%f", true,
                      "A=real.service|real|real|real|||real|real|/real"},
        SpecifierCase{"x.service", "B=%%x", true, "B=%x"},
        SpecifierCase{"x.service", "D=end%", true, "D=end%"},
        SpecifierCase{"x.service", "E=50% off%-", true, "E=50% off%-"},  // no specifiers
        SpecifierCase{"x.service", "H=%H", true, "H=%H"},  // systemd's hostname: as written
        SpecifierCase{"x.service", "C=%z", false, ""}));

TEST(SpecifierEscapeTest, DoublesEveryPercent) {
  EXPECT_EQ(specifier_escape("/opt/100%/%n"), "/opt/100%%/%%n");
  std::string resolved;
  ASSERT_TRUE(resolve_specifiers(specifier_escape("/opt/100%/%n"), "x.service", &resolved));
  EXPECT_EQ(resolved, "/opt/100%/%n");
}

TEST(UnitEnvironmentTest, SpecifiersResolvedForTheUnitAndKeptAsWritten) {
  UnitEnvironment environment("web@a-b.service");
  environment.add_file("unit",
                       "[Service]\nEnvironment=\"LD_PRELOAD=/opt/%N/libx.so\" BAD=%z OK=%%\n"
                       "UnsetEnvironment=X=%i\n");
  ASSERT_NE(environment.find("LD_PRELOAD"), nullptr);
  EXPECT_EQ(environment.find("LD_PRELOAD")->value, "/opt/web@a-b/libx.so");
  EXPECT_EQ(environment.find("LD_PRELOAD")->written, "/opt/%N/libx.so");
  EXPECT_EQ(environment.find("BAD"), nullptr);  // systemd ignores the word
  EXPECT_EQ(environment.find("OK")->value, "%");
  std::string file;
  EXPECT_TRUE(environment.unsets({"X", "a-b", "", ""}, &file));
  EXPECT_FALSE(environment.unsets({"X", "%i", "", ""}, &file));
}

TEST(UnitEnvironmentTest, LaterFilesWinAndAnEmptyAssignmentEmpties) {
  UnitEnvironment environment("svc.service");
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

// A directory tree of unit files, removed at the end of the test.
class UnitTree : public testing::Test {
 protected:
  void SetUp() override {
    char name[] = "/tmp/systemd_unit_test.XXXXXX";
    ASSERT_NE(mkdtemp(name), nullptr);
    root_ = name;
  }
  void TearDown() override { ASSERT_EQ(system(("rm -rf '" + root_ + "'").c_str()), 0); }
  std::string dir(const std::string &name) {
    const std::string path = root_ + "/" + name;
    mkdir(path.c_str(), 0755);
    return path;
  }
  void file(const std::string &path) {
    const std::string parent = path.substr(0, path.rfind('/'));
    if (parent != root_) mkdir(parent.c_str(), 0755);
    std::ofstream(path) << "[Service]\n";
  }
  std::string root_;
};

TEST_F(UnitTree, FindsTheTemplateAndEveryDropInDirectoryOfTheName) {
  const std::string etc = dir("etc"), lib = dir("lib");
  file(lib + "/foo-bar@.service");
  file(etc + "/foo-bar@x-y.service.d/50-instance.conf");
  file(lib + "/foo-bar@.service.d/40-template.conf");
  file(lib + "/foo-.service.d/30-template-prefix.conf");
  file(lib + "/foo-@x-y.service.d/20-instance-prefix.conf");
  file(etc + "/service.d/10-all.conf");
  file(lib + "/other.service.d/00-other.conf");
  // The same name: the earlier directory hides the later, the instance's
  // directory its template's in the same one.
  file(lib + "/foo-bar@x-y.service.d/40-template.conf");
  file(etc + "/service.d/50-instance.conf");
  const auto files = find_unit_files({etc, lib}, "foo-bar@x-y.service");
  EXPECT_EQ(files.unit_file, lib + "/foo-bar@.service");
  EXPECT_EQ(files.drop_ins,
            (std::vector<std::string>{etc + "/service.d/10-all.conf",
                                      lib + "/foo-@x-y.service.d/20-instance-prefix.conf",
                                      lib + "/foo-.service.d/30-template-prefix.conf",
                                      lib + "/foo-bar@x-y.service.d/40-template.conf",
                                      etc + "/foo-bar@x-y.service.d/50-instance.conf"}));
}

TEST_F(UnitTree, AnAliasLeadsToItsTargetsFileAndDropIns) {
  const std::string etc = dir("etc");
  file(etc + "/real.service");
  ASSERT_EQ(symlink("real.service", (etc + "/alias.service").c_str()), 0);
  file(etc + "/alias.service.d/a.conf");
  file(etc + "/real.service.d/r.conf");
  file(etc + "/web-app-x.service.d/n.conf");  // another unit's
  for (const char *unit : {"alias.service", "real.service"}) {
    const auto files = find_unit_files({etc}, unit);
    EXPECT_EQ(files.unit_file, etc + "/real.service") << unit;
    EXPECT_EQ(files.drop_ins, (std::vector<std::string>{etc + "/alias.service.d/a.conf",
                                                        etc + "/real.service.d/r.conf"}))
        << unit;
  }
  EXPECT_EQ(find_unit_files({etc}, "alias.service").aliases,
            std::vector<std::string>{"real.service"});
  file(etc + "/web-.service.d/w.conf");
  file(etc + "/web-app-.service.d/wa.conf");
  const auto dashed = find_unit_files({etc}, "web-app-x.service");
  EXPECT_EQ(dashed.unit_file, "");
  EXPECT_EQ(dashed.drop_ins, (std::vector<std::string>{etc + "/web-app-x.service.d/n.conf",
                                                       etc + "/web-.service.d/w.conf",
                                                       etc + "/web-app-.service.d/wa.conf"}));
}

TEST(LineDiffTest, ShowsRemovedThenAddedLines) {
  EXPECT_EQ(line_diff("a\nb\nc\n", "a\nB\nc\nd\n"), " a\n-b\n+B\n c\n+d\n");
  EXPECT_EQ(line_diff("same\n", "same\n"), " same\n");
}

}  // namespace
