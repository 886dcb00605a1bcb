// hygiene_test.cc — the built libkeepalive.so as a preloaded library must
// be: NEEDED libc only (`readelf -d`), no reference to the C++ runtime, and
// exports exactly the three hooks and the public C API declared in
// include/keepalive/keepalive.h (`nm -D --defined-only`), each with unwind
// information in .eh_frame (`readelf --debug-dump=frames`).
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "harness.h"

namespace ka_test {
namespace {

// Symbol names of `nm -D --defined-only` output, without their @VERSION.
std::set<std::string> Symbols(const std::string &nm_output) {
  std::set<std::string> names;
  std::istringstream in(nm_output);
  for (std::string line; std::getline(in, line);) {
    std::string name = line.substr(line.find_last_of(' ') + 1);
    names.insert(name.substr(0, name.find('@')));
  }
  names.erase("");
  return names;
}

// The functions the public header declares with KEEPALIVE_API.
std::set<std::string> PublicApi() {
  std::ifstream in(SourceDir() + "/include/keepalive/keepalive.h");
  std::stringstream text;
  text << in.rdbuf();
  std::set<std::string> names;
  std::string header = text.str();
  static const std::regex declaration(R"(KEEPALIVE_API\s[^;(]*?\b(keepalive_\w+)\s*\()");
  for (std::sregex_iterator it(header.begin(), header.end(), declaration), end; it != end; ++it)
    names.insert((*it)[1].str());
  return names;
}

TEST(Hygiene, NeedsOnlyLibc) {
  std::string dynamic = RunTool({"readelf", "-d", LibraryPath()});
  std::set<std::string> needed;
  static const std::regex entry(R"(\(NEEDED\)\s+Shared library: \[([^\]]+)\])");
  for (std::sregex_iterator it(dynamic.begin(), dynamic.end(), entry), end; it != end; ++it)
    needed.insert((*it)[1].str());
  EXPECT_EQ(needed, std::set<std::string>{"libc.so.6"}) << dynamic;
}

TEST(Hygiene, ReferencesNothingOfTheCxxRuntime) {
  // `nm -D --undefined-only` lines: "U memcpy@GLIBC_2.14", "w __gmon_start__".
  std::istringstream in(RunTool({"nm", "-D", "--undefined-only", LibraryPath()}));
  int from_libc = 0;
  for (std::string line; std::getline(in, line);) {
    std::istringstream words(line);
    std::string type, symbol;
    words >> type >> symbol;
    bool versioned_libc = symbol.find("@GLIBC_") != std::string::npos;
    from_libc += versioned_libc;
    // Strong references must all be libc's (libstdc++ would be GLIBCXX_ or CXXABI_).
    if (type == "U") {
      EXPECT_TRUE(versioned_libc) << line;
    }
    EXPECT_FALSE(std::regex_search(symbol, std::regex("^(_Z|__gxx_|_Unwind_)"))) << line;
  }
  EXPECT_GT(from_libc, 0) << "nm listed no libc symbol at all";
}

TEST(Hygiene, ExportsOnlyTheHooksAndThePublicApi) {
  std::set<std::string> expected = PublicApi();
  ASSERT_GE(expected.size(), 10u) << "could not read the API from keepalive.h";
  expected.insert({"accept", "accept4", "connect"});
  EXPECT_EQ(Symbols(RunTool({"nm", "-D", "--defined-only", LibraryPath()})), expected);
}

// A host program's stack must be walkable through the hooks by debuggers,
// profilers, valgrind and crash reports in every build type: .eh_frame,
// not only the .debug_frame that -g adds (a Release build has none).
TEST(Hygiene, EveryExportCanBeUnwound) {
  std::map<std::string, unsigned long long> exports;
  std::istringstream nm(RunTool({"nm", "-D", "--defined-only", LibraryPath()}));
  for (std::string line; std::getline(nm, line);) {
    std::istringstream words(line);
    std::string address, type, name;
    if (words >> address >> type >> name && (type == "T" || type == "t")) {
      exports[name.substr(0, name.find('@'))] = std::stoull(address, nullptr, 16);
    }
  }
  ASSERT_GE(exports.size(), 3u);
  std::string frames = RunTool({"readelf", "--debug-dump=frames", LibraryPath()});
  size_t begin = frames.find("Contents of the .eh_frame section:");
  ASSERT_NE(begin, std::string::npos) << "no .eh_frame";
  size_t end = frames.find("Contents of the", begin + 1);
  std::string eh_frame = frames.substr(begin, end == std::string::npos ? end : end - begin);
  static const std::regex fde(R"(FDE cie=\w+ pc=([0-9a-f]+)\.\.([0-9a-f]+))");
  std::vector<std::pair<unsigned long long, unsigned long long>> covered;
  for (std::sregex_iterator it(eh_frame.begin(), eh_frame.end(), fde), last; it != last; ++it) {
    covered.emplace_back(std::stoull((*it)[1].str(), nullptr, 16),
                         std::stoull((*it)[2].str(), nullptr, 16));
  }
  for (const auto &[name, address] : exports) {
    bool found = false;
    for (const auto &[low, high] : covered) found = found || (low <= address && address < high);
    EXPECT_TRUE(found) << name << " has no unwind information in .eh_frame";
  }
}

}  // namespace
}  // namespace ka_test
