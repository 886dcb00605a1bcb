"""docs_test.py - the documentation cannot drift from the code without a test failing.

- HelpTest: every `--help` line fits 80 columns; each subcommand's `--help` names exactly the
  flags that keepalive(1) gives it in its SYNOPSIS, and keepalive(1) describes each of them;
  the exit statuses of each `--help`, keepalive(1)'s EXIT STATUS table and README's sentence
  agree (the codes each subcommand has, and which one an invalid configuration gets).
- VariablesTest: every KEEPALIVE_* variable the library reads (the names shim/config.cc
  looks up) is described in libkeepalive(7) and has a row in README's configuration table,
  and the table names no other variable.
- MarkdownTest: README.md, CONTRIBUTING.md, CHANGELOG.md and docs/*.md keep their lines
  within 100 columns outside code blocks, README.md within 12 KiB, and every relative link
  points to a file that exists (and to a heading that exists in it, for `#anchor`).
- CommandsTest: the `keepalive check`/`keepalive help` commands shown in ```sh blocks of
  that Markdown run and exit 0, as the docs imply.

Usage: docs_test.py --source DIR [--command PATH] [unittest arguments...]
Without --command the classes that need the built command are skipped.
"""

import argparse
import os
import re
import subprocess
import sys
import unittest

HELP_WIDTH = 80
MARKDOWN_WIDTH = 100
README_LIMIT = 12 * 1024

# Variables of the project's own tests and scripts, not of the library (both spellings while
# they move to the LIBKEEPALIVE_ prefix).
TEST_VARIABLE = re.compile(
    r"^(LIB)?KEEPALIVE_(TEST_\w*|BENCH_\w*|E2E_REQUIRED|HARDENING_REQUIRED|BUILD_DIR|"
    r"FUZZ_SECONDS|STRESS_CONNECTIONS|COMMAND)$")
# Read by the command (keepalive run), not the library: keepalive(1) describes it.
COMMAND_VARIABLES = {"KEEPALIVE_LIBRARY"}

SOURCE = ""
COMMAND = ""


def read(*path):
    with open(os.path.join(SOURCE, *path), encoding="utf-8") as f:
        return f.read()


def roff_text(text):
    """Man page source as plain words: escapes and font changes removed."""
    text = text.replace("\\-", "-").replace("\\e", "\\")
    text = re.sub(r"\\f[BIRP]", "", text)
    text = re.sub(r"\\\(\w\w", " ", text)
    return text


def flags_in(text):
    text = re.sub(r"\$\([^)]*\)", "", text)  # flags of other programs: $(systemctl show ...)
    text = re.sub(r"`[^`]*`", "", text)  # another command quoted: `keepalive apply --listeners`
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", text))


def clean_env():
    """This environment without any KEEPALIVE* or LD_PRELOAD."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith("KEEPALIVE") and k != "LD_PRELOAD"}


def run_command(*args):
    return subprocess.run([COMMAND, *args], capture_output=True, text=True, env=clean_env(),
                          timeout=30)


def markdown_files():
    names = ["README.md", "CONTRIBUTING.md", "CHANGELOG.md"]
    docs = os.path.join(SOURCE, "docs")
    if os.path.isdir(docs):
        names += sorted(os.path.join("docs", n) for n in os.listdir(docs) if n.endswith(".md"))
    return names


def prose_lines(text):
    """(line number, line, inside a fenced code block) for each line of Markdown."""
    fence = None
    for number, line in enumerate(text.split("\n"), 1):
        marker = re.match(r"^\s*(```+|~~~+)", line)
        if marker:
            if fence is None:
                fence = marker.group(1)
                yield number, line, True
                continue
            if line.strip().startswith(fence):
                fence = None
                yield number, line, True
                continue
        yield number, line, fence is not None


def code_blocks(text, languages):
    """The text of each fenced block whose info string is one of `languages`."""
    return [m.group(2) for m in re.finditer(r"^```(\w*)[^\n]*\n(.*?)^```", text, re.M | re.S)
            if m.group(1) in languages]


def github_anchor(heading):
    """The id GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    heading = re.sub(r"`([^`]*)`", r"\1", heading.strip()).lower()
    heading = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    return re.sub(r"[^\w\- ]", "", heading).replace(" ", "-")


def anchors_of(text):
    anchors, seen = set(), {}
    for _, line, in_code in prose_lines(text):
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m and not in_code:
            base = github_anchor(m.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            anchors.add(base if count == 0 else f"{base}-{count}")
    return anchors


class MarkdownTest(unittest.TestCase):
    def test_lines_fit_100_columns_outside_code(self):
        wide = []
        for name in markdown_files():
            for number, line, in_code in prose_lines(read(name)):
                if not in_code and len(line) > MARKDOWN_WIDTH:
                    wide.append(f"{name}:{number}: {len(line)} columns")
        self.assertEqual(wide, [], "Markdown lines over 100 columns outside code blocks")

    def test_readme_within_12_kib(self):
        size = len(read("README.md").encode("utf-8"))
        self.assertLessEqual(size, README_LIMIT, f"README.md is {size} bytes")

    def test_relative_links_resolve(self):
        broken = []
        for name in markdown_files():
            text = read(name)
            prose = "\n".join(line for _, line, in_code in prose_lines(text) if not in_code)
            prose = re.sub(r"`[^`\n]*`", "", prose)
            for target in re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", prose):
                if re.match(r"^[a-z][a-z0-9+.-]*:", target):
                    continue  # https:, mailto:
                path, _, anchor = target.partition("#")
                resolved = os.path.normpath(
                    os.path.join(SOURCE, os.path.dirname(name), path)) if path else \
                    os.path.join(SOURCE, name)
                if not os.path.exists(resolved):
                    broken.append(f"{name}: {target}: no such file")
                elif anchor and resolved.endswith(".md"):
                    with open(resolved, encoding="utf-8") as f:
                        if anchor not in anchors_of(f.read()):
                            broken.append(f"{name}: {target}: no such heading")
        self.assertEqual(broken, [])


class VariablesTest(unittest.TestCase):
    @staticmethod
    def library_variables():
        names = set(re.findall(r'"(KEEPALIVE(?:_[A-Z0-9_]*[A-Z0-9])?)"', read("shim", "config.cc")))
        return {n for n in names if not TEST_VARIABLE.match(n)} - COMMAND_VARIABLES

    def test_the_code_reads_variables(self):
        # Guards the extraction itself: an empty set would make the other tests vacuous.
        self.assertTrue({"KEEPALIVE", "KEEPALIVE_IDLE", "KEEPALIVE_RULES"}
                        <= self.library_variables())

    def test_each_variable_is_in_libkeepalive_7(self):
        page = roff_text(read("tools", "man", "libkeepalive.7"))
        environment = page.split(".SH ENVIRONMENT", 1)[1].split("\n.SH ", 1)[0]
        described = set(re.findall(r"^\.B (KEEPALIVE\w*)\s*$", environment, re.M))
        self.assertEqual(self.library_variables() - described, set(),
                         "variables the library reads but libkeepalive(7) does not describe")

    def test_readme_table_names_exactly_the_variables(self):
        rows = set(re.findall(r"^\| `(KEEPALIVE\w*)` \|", read("README.md"), re.M))
        self.assertEqual(self.library_variables() - rows, set(), "missing from README's table")
        self.assertEqual(rows - self.library_variables(), set(),
                         "README's table names variables the library does not read")

    def test_command_variables_are_in_keepalive_1(self):
        page = roff_text(read("tools", "man", "keepalive.1"))
        for name in COMMAND_VARIABLES:
            self.assertRegex(page, rf"\.B {name}\b")


def synopsis_flags():
    """{subcommand: flags} from keepalive(1)'s SYNOPSIS ("" = the command itself), with
    FLAGS expanded to the flags of the FLAGS section, and the text after SYNOPSIS."""
    page = roff_text(read("tools", "man", "keepalive.1"))
    synopsis = page.split(".SH SYNOPSIS", 1)[1].split(".SH DESCRIPTION", 1)[0]
    body = page.split(".SH DESCRIPTION", 1)[1]
    flags_section = body.split(".SH FLAGS", 1)[1].split("\n.SH ", 1)[0]
    config_flags = set(re.findall(r"^\.BI? (--[a-z-]+)", flags_section, re.M))
    result = {}
    for entry in synopsis.split(".br"):
        words = re.sub(r"^\.\w+ ?", "", entry, flags=re.M).replace('"', " ").split()
        if len(words) < 2 or words[0] != "keepalive" or words[1] == "help":
            continue
        name = "" if words[1].startswith("-") else words[1]
        flags = flags_in(entry)
        if "FLAGS" in words:
            flags |= config_flags
        result.setdefault(name, set()).update(flags)
    return result, body


def exit_codes(text):
    """{code: meaning} of an exit status sentence: "0 done; 1 ...; 2 ...", or with commas."""
    codes = {}
    for part in re.split(r"[;,]\s*(?=\d+ )", text):
        match = re.match(r"(\d+) (.*)", part.strip())
        if match:
            codes[int(match.group(1))] = match.group(2)
    return codes


def invalid_code(codes, subcommand, subcommands):
    """The code that `codes` ({code: meaning}) gives an invalid configuration of
    `subcommand`: the one with a clause naming it with "invalid", else the only
    one with a clause that says "invalid" and names no subcommand."""
    def names(clause, name):
        return re.search(rf"\b{name}\b", clause) is not None

    clauses = [(code, clause) for code, meaning in codes.items()
               for clause in meaning.split(";") if "invalid" in clause]
    named = [code for code, clause in clauses if names(clause, subcommand)]
    generic = [code for code, clause in clauses
               if not any(names(clause, name) for name in subcommands)]
    return named[0] if named else generic[0] if len(generic) == 1 else None


class HelpTest(unittest.TestCase):
    def setUp(self):
        if not COMMAND:
            self.fail("no --command given: the built keepalive is needed")

    def help_of(self, name):
        result = run_command(*([name, "--help"] if name else ["--help"]))
        self.assertEqual(result.returncode, 0, result.stderr)
        return result.stdout

    def subcommands(self):
        names = re.findall(r"^  keepalive ([a-z]+)", self.help_of(""), re.M)
        return [n for n in names if n != "help"]

    def test_help_lines_fit_80_columns(self):
        wide = []
        for name in [""] + self.subcommands():
            for line in self.help_of(name).split("\n"):
                if len(line) > HELP_WIDTH:
                    wide.append(f"keepalive {name} --help: {len(line)}: {line}")
        self.assertEqual(wide, [])

    def test_every_subcommand_has_a_synopsis(self):
        synopsis, _ = synopsis_flags()
        self.assertEqual(set(self.subcommands()) - set(synopsis), set(),
                         "subcommands missing from keepalive(1)'s SYNOPSIS")
        self.assertEqual(set(synopsis) - set(self.subcommands()) - {""}, set(),
                         "keepalive(1) has subcommands that keepalive --help does not list")

    def test_help_and_man_page_name_the_same_flags(self):
        synopsis, body = synopsis_flags()
        for name in self.subcommands():
            with self.subTest(subcommand=name):
                in_help = flags_in(self.help_of(name)) - {"--help"}
                in_man = synopsis.get(name, set())
                self.assertEqual(in_help - in_man, set(),
                                 f"keepalive {name} --help names flags keepalive(1) lacks")
                self.assertEqual(in_man - in_help, set(),
                                 f"keepalive(1) gives keepalive {name} flags its --help lacks")
        # The command's own help may only name flags keepalive(1) knows.
        known = set().union(*synopsis.values())
        self.assertEqual(flags_in(self.help_of("")) - known, set())

    def test_man_page_describes_every_flag(self):
        synopsis, body = synopsis_flags()
        described = flags_in(body)
        for name, flags in synopsis.items():
            self.assertEqual(flags - described, set(),
                             f"keepalive(1) lists but never describes these flags of {name!r}")

    def test_description_names_every_subcommand(self):
        page = roff_text(read("tools", "man", "keepalive.1"))
        description = page.split(".SH DESCRIPTION", 1)[1].split("\n.SH ", 1)[0]
        named = set(re.findall(r"^\.RB \( (\w+) \)", description, re.M))
        self.assertEqual(set(self.subcommands()) - named, set(),
                         "subcommands keepalive(1)'s DESCRIPTION does not name")

    def test_exit_status_tables_agree(self):
        """One meaning per code: the codes keepalive(1)'s EXIT STATUS table gives a
        subcommand (naming it in the code's row) are among those its --help lists,
        every code a --help lists has a row, and an invalid configuration gets the
        same code in --help, in keepalive(1) and in README."""
        subcommands = self.subcommands()
        page = roff_text(read("tools", "man", "keepalive.1"))
        table = page.split(".SH EXIT STATUS", 1)[1].split(".TE", 1)[0]
        man = {}
        for codes, text in re.findall(r"^([\d, ]+)\tT\{\n(.*?)\nT\}", table, re.M | re.S):
            for code in codes.split(","):
                man[int(code)] = re.sub(r"^\.\w+ ?", "", text, flags=re.M).replace("\n", " ")
        self.assertTrue(man, "no EXIT STATUS table in keepalive(1)")
        readme = " ".join(read("README.md").split())
        sentence = readme.split("Every subcommand exits ", 1)[1].split(").", 1)[0]
        readme_codes = exit_codes(sentence)
        self.assertEqual(set(readme_codes) - set(man), set(), "README's codes not in keepalive(1)")
        for name in subcommands:
            with self.subTest(subcommand=name):
                text = " ".join(self.help_of(name).split("Exit status:", 1)[1]
                                .split("\n\n", 1)[0].split())
                helps = exit_codes(text)
                self.assertEqual(set(helps) - set(man), set(),
                                 f"{name} --help has codes keepalive(1) lacks")
                named = {code for code, row in man.items() if re.search(rf"\b{name}\b", row)}
                self.assertEqual(named - set(helps), set(),
                                 f"keepalive(1) gives {name} codes its --help lacks")
                invalid = [code for code, meaning in helps.items() if "invalid" in meaning]
                if invalid:
                    self.assertEqual(invalid_code(man, name, subcommands), invalid[0],
                                     "keepalive(1)")
                    self.assertEqual(invalid_code(readme_codes, name, subcommands), invalid[0],
                                     "README")

    def test_help_subcommand_prints_the_same(self):
        for name in self.subcommands():
            self.assertEqual(run_command("help", name).stdout, self.help_of(name))


# Commands the docs show that change nothing and need no privileges: they are run.
RUNNABLE = re.compile(r"^(?:[A-Z_]+=\S+\s+)*keepalive\s+(check|help|--help|--version)\b")


class CommandsTest(unittest.TestCase):
    def setUp(self):
        if not COMMAND:
            self.fail("no --command given: the built keepalive is needed")

    def test_shown_commands_exit_0(self):
        commands = []
        for name in markdown_files():
            for block in code_blocks(read(name), ("sh", "bash", "shell")):
                for line in block.replace("\\\n", " ").split("\n"):
                    line = re.sub(r"\s+#.*$", "", line).strip()
                    if RUNNABLE.match(line) and "$" not in line:
                        commands.append((name, line))
        self.assertGreater(len(commands), 0, "no runnable command found in the docs")
        bindir = os.path.dirname(os.path.abspath(COMMAND))
        env = clean_env()
        env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
        for name, line in commands:
            with self.subTest(file=name, command=line):
                result = subprocess.run(["bash", "-o", "pipefail", "-c", line], env=env,
                                        capture_output=True, text=True, timeout=30)
                self.assertEqual(result.returncode, 0, f"{line}\n{result.stderr}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--source", required=True)
    parser.add_argument("--command", default="")
    options, rest = parser.parse_known_args()
    SOURCE = os.path.abspath(options.source)
    COMMAND = options.command
    unittest.main(argv=[sys.argv[0], *rest], verbosity=2)
