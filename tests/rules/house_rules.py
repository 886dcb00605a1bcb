#!/usr/bin/env python3
"""The design rules of the tree, checked rather than remembered.

- The core (the objects CMake lists in keepalive_core_objects) knows nothing
  of the hooks: it includes no hook-side header of shim/ (only its own and
  the header-only helpers shared by both sides, such as errno_guard.h).
- The command includes no header of shim/: it uses the public API only, and
  shim/compat.h, the header-only fallbacks for functions older glibc lacks.
- Every exported hook has its own shim/hook_<name>.cc.
- Every C/C++ file is formatted by the project's .clang-format.

Run: house_rules.py SOURCE_DIR [unittest args]
"""
import os
import re
import shutil
import subprocess
import sys
import unittest

SOURCE = os.path.abspath(sys.argv.pop(1) if len(sys.argv) > 1 else ".")
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
        tools_headers = {os.path.basename(p) for p in source_files("tools") if p.endswith(".h")}
        self.assertIn("cli.h", tools_headers)
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


if __name__ == "__main__":
    unittest.main()
