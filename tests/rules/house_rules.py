#!/usr/bin/env python3
"""The design rules of the tree, checked rather than remembered.

- The core (the objects CMake lists in keepalive_core_objects) knows nothing
  of the hooks: it includes no hook-side header of shim/ (only its own and
  the header-only helpers shared by both sides, such as errno_guard.h).
- The command includes no header of shim/: it uses the public API only, and
  shim/compat.h, the header-only fallbacks for functions older glibc lacks.
- Every exported hook has its own shim/hook_<name>.cc.
- Every C/C++ file is formatted by the project's .clang-format.
- No function of the library or the command has a body over 60 lines.
- Every GoogleTest test and every Python test class under tests/ is registered
  with CTest (Registration: needs the build tree, --build-dir), and a Python
  test skips only through command_testlib.require(), which CI turns into a
  failure (OneSkipHelper).

Run: house_rules.py SOURCE_DIR [--build-dir BUILD_DIR] [unittest args]
"""
import ast
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import unittest

SOURCE = os.path.abspath(sys.argv.pop(1) if len(sys.argv) > 1 else ".")
BUILD = None
if len(sys.argv) > 2 and sys.argv[1] == "--build-dir":
    BUILD = os.path.abspath(sys.argv[2])
    del sys.argv[1:3]
INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.M)
C_SUFFIXES = (".c", ".cc", ".h")


def read(path):
    with open(os.path.join(SOURCE, path), encoding="utf-8") as f:
        return f.read()


def local_includes(path):
    return INCLUDE.findall(read(path))


def core_sources():
    """The sources of keepalive_core_objects, as shim/CMakeLists.txt lists them."""
    match = re.search(r"add_library\(keepalive_core_objects OBJECT([^)]*)\)",
                      read("shim/CMakeLists.txt"))
    return [word for word in match.group(1).split() if word.endswith(".cc")]


def source_files(*directories):
    for directory in directories:
        for root, dirs, files in os.walk(os.path.join(SOURCE, directory)):
            dirs[:] = [d for d in dirs if not d.startswith(("build", "."))]
            for name in sorted(files):
                if name.endswith(C_SUFFIXES):
                    yield os.path.relpath(os.path.join(root, name), SOURCE)


class IncludeBoundaries(unittest.TestCase):
    def test_core_includes_no_hook_header(self):
        sources = core_sources()
        self.assertIn("config.cc", sources)  # the list was found
        core_headers = {s[:-3] + ".h" for s in sources}
        allowed = core_headers | {"keepalive/keepalive.h", "errno_guard.h"}
        for source in sources:
            for path in ("shim/" + source, "shim/" + source[:-3] + ".h"):
                if not os.path.exists(os.path.join(SOURCE, path)):
                    continue
                for header in local_includes(path):
                    self.assertIn(header, allowed,
                                  f"{path} includes {header}: the core must not know the hooks")

    def test_command_includes_no_shim_header(self):
        tools_headers = {os.path.relpath(p, "tools") for p in source_files("tools")
                         if p.endswith(".h")}
        self.assertIn("lib/cli.h", tools_headers)
        shared = {"keepalive/keepalive.h", "compat.h"}
        for path in source_files("tools"):
            for header in local_includes(path):
                self.assertTrue(header in shared or header in tools_headers,
                                f"{path} includes {header}: the command uses the public API only")


class OneFilePerHook(unittest.TestCase):
    def test_every_exported_hook_has_its_file(self):
        exports = read("shim/exports.map")
        hooks = [name for name in re.findall(r"\b([a-z_0-9]+);", exports)
                 if not name.startswith("keepalive_")]
        self.assertIn("connect", hooks)
        for hook in hooks:
            path = f"shim/hook_{hook}.cc"
            self.assertTrue(os.path.exists(os.path.join(SOURCE, path)), f"{hook}: no {path}")
            self.assertRegex(read(path), rf"\b{hook}\(", path)


MAX_FUNCTION_LINES = 60
NOT_A_FUNCTION = re.compile(r"(if|for|while|switch|else|do|catch|try|namespace|struct|class|enum|"
                            r"union|return|case|default)\b")


def without_comments(line):
    """The line without a trailing // comment (a // inside a string literal stays)."""
    quote = None
    index = 0
    while index < len(line):
        char = line[index]
        if quote:
            if char == "\\":
                index += 1
            elif char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif line.startswith("//", index):
            return line[:index].rstrip()
        index += 1
    return line.rstrip()


def function_lengths(text):
    """(first line, name, body lines) of each function defined in clang-formatted C/C++ text.

    A definition is a statement with parentheses that ends in "{" and is not a control statement,
    a type or an initialiser; its body ends at the first "}" alone at the statement's indent.
    Lines are counted as clang-tidy's readability-function-size counts them (braces to brace).
    """
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    lines = [without_comments(line) for line in text.split("\n")]
    for number, line in enumerate(lines):
        if not line.endswith("{"):
            continue
        start = number
        while start > 0:
            previous = lines[start - 1].strip()
            if not previous or previous.endswith((";", "{", "}", ":")) or previous.startswith("#"):
                break
            start -= 1
        statement = " ".join(part.strip() for part in lines[start:number + 1])
        statement = re.sub(r"__attribute__\(\(.*?\)\)\)?\s*", "", statement)
        head = statement.split("(")[0]
        if ("(" not in statement or NOT_A_FUNCTION.match(statement.lstrip("} "))
                or "=" in head or "[" in head):
            continue
        closing = " " * (len(lines[start]) - len(lines[start].lstrip())) + "}"
        end = next((end for end in range(number + 1, len(lines)) if lines[end] == closing), None)
        if end is not None:
            names = re.findall(r"([~\w:]+)\s*\(", statement)
            yield start + 1, names[0] if names else statement, end - number


class FunctionLength(unittest.TestCase):
    maxDiff = None

    def test_the_measure_finds_functions_and_counts_their_lines(self):
        body = "\n".join(f"  call({n});" for n in range(61))
        sample = (f"namespace {{\n\n// A comment (with parentheses) {{\nint long_one(int a,\n"
                  f"             int b) {{\n  if (a) {{\n    return b;\n  }}\n{body}\n}}\n\n"
                  f"}}  // namespace\n\nstruct S {{\n  void f() const {{\n    if (x) {{\n"
                  f"    }}\n  }}\n}};\nconst auto g = [](int) {{\n}};\n")
        self.assertEqual(list(function_lengths(sample)),
                         [(4, "long_one", 65), (75, "f", 3)])
        hooks = {name: lines for _, name, lines in function_lengths(read("shim/hook_connect.cc"))}
        self.assertGreater(hooks.get("connect", 0), 10)

    def test_no_function_over_the_limit_in_library_and_command(self):
        too_long = [f"{path}:{line} {name} ({lines} lines)"
                    for path in source_files("shim", "include", "tools")
                    for line, name, lines in function_lengths(read(path))
                    if lines > MAX_FUNCTION_LINES]
        self.assertEqual(too_long, [], f"split where a reader would name the parts "
                         f"(at most {MAX_FUNCTION_LINES} lines)")


class Formatting(unittest.TestCase):
    def test_clang_format_leaves_every_file_unchanged(self):
        tool = shutil.which("clang-format")
        self.assertIsNotNone(tool, "clang-format not found: apt-get install clang-format")
        files = list(source_files("shim", "include", "tools", "tests", "examples"))
        self.assertGreater(len(files), 20)
        result = subprocess.run([tool, "--dry-run", "--Werror", *files], cwd=SOURCE,
                                capture_output=True, text=True)
        unformatted = sorted({line.split(":")[0] for line in result.stderr.splitlines()
                              if ": error:" in line})
        self.assertEqual(result.returncode, 0,
                         "not formatted (clang-format -i FILE…): " + " ".join(unformatted))


def test_files(suffix):
    for root, dirs, files in os.walk(os.path.join(SOURCE, "tests")):
        dirs[:] = [d for d in dirs if not d.startswith(("build", "."))]
        for name in sorted(files):
            if name.endswith(suffix):
                yield os.path.relpath(os.path.join(root, name), SOURCE)


GTEST = re.compile(r"^(TEST|TEST_F|TEST_P)\(\s*(\w+),\s*(\w+)\)", re.M)
INSTANTIATION = re.compile(r"^INSTANTIATE_TEST_SUITE_P\(\s*(\w+),\s*(\w+),", re.M)


def gtest_tests():
    """(file, name) of every GoogleTest test in tests/: Suite.Name, or
    Prefix/Suite.Name/* for each instantiation of a parameterised one."""
    sources = {path: read(path) for path in test_files(".cc")}
    for path, text in sources.items():
        # Instantiated in the same file (suites of different programs may share a name).
        prefixes = {}
        for prefix, suite in INSTANTIATION.findall(text):
            prefixes.setdefault(suite, []).append(prefix)
        for macro, suite, name in GTEST.findall(text):
            if macro != "TEST_P":
                yield path, f"{suite}.{name}"
                continue
            for prefix in prefixes.get(suite, ["(no INSTANTIATE_TEST_SUITE_P)"]):
                yield path, f"{prefix}/{suite}.{name}/*"


def python_test_classes():
    """(file, class) of every unittest.TestCase class under tests/ with a test_ method
    of its own or of a base class in the same file."""
    for path in test_files(".py"):
        classes = {node.name: node for node in ast.walk(ast.parse(read(path)))
                   if isinstance(node, ast.ClassDef)}

        def is_test_case(node):
            for base in node.bases:
                name = ast.unparse(base)
                if name in ("unittest.TestCase", "TestCase") or (
                        name in classes and is_test_case(classes[name])):
                    return True
            return False

        def has_tests(node):
            own = any(isinstance(item, ast.FunctionDef) and item.name.startswith("test")
                      for item in node.body)
            return own or any(has_tests(classes[ast.unparse(base)]) for base in node.bases
                              if ast.unparse(base) in classes)

        for name, node in classes.items():
            if is_test_case(node) and has_tests(node):
                yield path, name


def registered_tests():
    """{name: command} of every test CTest knows in the build tree."""
    result = subprocess.run(["ctest", "--show-only=json-v1"], cwd=BUILD, capture_output=True,
                            text=True, timeout=120)
    if result.returncode != 0:
        raise AssertionError(f"ctest --show-only in {BUILD}: {result.stderr}")
    return {test["name"]: test.get("command", []) for test in json.loads(result.stdout)["tests"]}


def gtest_filters(command):
    """The positive patterns of a --gtest_filter in a test's command."""
    for argument in command:
        if argument.startswith("--gtest_filter="):
            yield from argument.split("=", 1)[1].split("-")[0].split(":")


class Registration(unittest.TestCase):
    """A test that no CTest test runs never runs: every GoogleTest test and every
    Python test class is registered (gtest_discover_tests, a --gtest_filter of an
    e2e program's SCENARIOS, or a class named on a Python test's command line)."""

    @classmethod
    def setUpClass(cls):
        if BUILD is None:
            raise AssertionError("Registration needs --build-dir BUILD_DIR")
        cls.tests = registered_tests()

    def test_every_gtest_test_is_registered(self):
        names = list(self.tests)
        filters = [f for command in self.tests.values() for f in gtest_filters(command)]
        found = list(gtest_tests())
        self.assertGreater(len(found), 100)
        missing = [f"{path}: {test}" for path, test in found
                   if not any(fnmatch.fnmatchcase(name, test) for name in names)
                   and not any(fnmatch.fnmatchcase(test, f) for f in filters)]
        self.assertEqual(missing, [], "never run by CTest: register them (docs/testing.md)")

    def test_every_python_test_class_is_registered(self):
        found = list(python_test_classes())
        self.assertGreater(len(found), 10)
        missing = [f"{path}: {name}" for path, name in found
                   if not any(name in command and any(
                       arg.endswith(os.path.basename(path)) for arg in command)
                       for command in self.tests.values())]
        self.assertEqual(missing, [], "never run by CTest: register them (docs/testing.md)")


PYTHON_SKIP = re.compile(r"\.skipTest\(|unittest\.skip|SkipTest|\bskip(If|Unless)\b")
GTEST_SKIP = re.compile(r"\bGTEST_SKIP\b")


class OneSkipHelper(unittest.TestCase):
    """A test skips through one helper only, which fails instead when CI's
    LIBKEEPALIVE_*_REQUIRED says so: command_testlib.require() in Python (whose
    main() makes CTest report the skip, exit status 77, rather than a pass),
    KA_REQUIRE_OR_SKIP of tests/common/require.h in C++."""

    def direct_skips(self, helper, pattern, suffixes):
        self.assertEqual(len(pattern.findall(read(helper))), 1, helper)
        return [f"{path}:{number}" for suffix in suffixes for path in test_files(suffix)
                if path not in (helper, "tests/rules/house_rules.py")
                for number, line in enumerate(read(path).split("\n"), 1)
                if pattern.search(line)]

    def test_python_tests_skip_through_require(self):
        direct = self.direct_skips("tests/tools/command_testlib.py", PYTHON_SKIP, [".py"])
        self.assertEqual(direct, [], "skip through command_testlib.require()")

    def test_cxx_tests_skip_through_ka_require_or_skip(self):
        direct = self.direct_skips("tests/common/require.h", GTEST_SKIP, [".cc", ".h", ".c"])
        self.assertEqual(direct, [], "skip through KA_REQUIRE_OR_SKIP (tests/common/require.h)")


if __name__ == "__main__":
    unittest.main()
