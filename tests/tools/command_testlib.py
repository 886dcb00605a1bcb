"""command_testlib.py - what the `keepalive` command's Python tests share:
the command under test, the kernel's keepalive defaults, a clean environment,
running the command (or a copy any user can run), the keepalive timer in a
line of `ss -tnoe`, JSON that
`python3 -m json.tool` must accept, and the one way a test skips: require()
(require_root()), a failure instead with LIBKEEPALIVE_E2E_REQUIRED=1 (CI), and
main(), whose exit status 77 makes CTest report a class with a skipped test as
skipped, not passed (SKIP_RETURN_CODE).
Environment: LIBKEEPALIVE_COMMAND (the built bin/keepalive).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

COMMAND = os.environ["LIBKEEPALIVE_COMMAND"]
PYTHON = sys.executable
TIMEOUT = 30


def kernel_default(name):
    with open(f"/proc/sys/net/ipv4/tcp_keepalive_{name}") as f:
        return int(f.read())


KERNEL_IDLE = kernel_default("time")
KERNEL_INTVL = kernel_default("intvl")
KERNEL_CNT = kernel_default("probes")


def clean_env(**extra):
    """The test's environment without any KEEPALIVE* or LD_PRELOAD, plus extra."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("KEEPALIVE") and k != "LD_PRELOAD"}
    env.update(extra)
    return env


def keepalive(*args, env=None, prefix=(), command=COMMAND, **kwargs):
    """Runs the command (after `prefix`, e.g. a wrapper) with a clean
    environment unless `env` is given; returns the CompletedProcess."""
    return subprocess.run([*prefix, command, *args], env=clean_env() if env is None else env,
                          capture_output=True, text=True, timeout=TIMEOUT, **kwargs)


def keepalive_timer_seconds(ss_line):
    """The seconds left on the keepalive timer that a line of `ss -tnoe` shows
    ("timer:(keepalive,9min58sec,0)", "1.500ms", ...), or None when it shows none."""
    match = re.search(r"timer:\(keepalive,([^,]+),", ss_line)
    if match is None:
        return None
    parts = re.findall(r"([\d.]+)(min|sec|ms)", match.group(1))
    return sum(float(value) * {"min": 60, "sec": 1, "ms": 0.001}[unit] for value, unit in parts)


def copy_of_command(test):
    """A copy of the command that any user (nobody, too) can run, whatever the
    build tree's modes; removed when the test ends."""
    copy_dir = tempfile.TemporaryDirectory()
    test.addCleanup(copy_dir.cleanup)
    os.chmod(copy_dir.name, 0o755)
    command = os.path.join(copy_dir.name, "keepalive")
    shutil.copy(COMMAND, command)
    os.chmod(command, 0o755)
    return command


def prerequisites_required():
    """True under LIBKEEPALIVE_E2E_REQUIRED=1 (CI): a missing prerequisite is a failure."""
    return os.environ.get("LIBKEEPALIVE_E2E_REQUIRED") == "1"


def require(test, missing):
    """Skips loudly when `missing` (a reason) is set; fails under LIBKEEPALIVE_E2E_REQUIRED=1."""
    if not missing:
        return
    if prerequisites_required():
        test.fail(f"prerequisite missing (LIBKEEPALIVE_E2E_REQUIRED=1): {missing}")
    test.skipTest(f"SKIPPED: {missing}")


def require_root(test, purpose):
    """require() root, which the test needs for `purpose` ("to drop to nobody")."""
    require(test, None if os.geteuid() == 0 else f"needs root, {purpose}")


SKIPPED_EXIT_STATUS = 77  # SKIP_RETURN_CODE of keepalive_add_python_tests


def main():
    """Runs the test classes named on the command line (unittest.main) and exits
    1 when a test failed or none ran, 77 when one was skipped, 0 otherwise."""
    result = unittest.main(verbosity=2, exit=False).result
    if not result.wasSuccessful() or result.testsRun == 0:
        sys.exit(1)
    sys.exit(SKIPPED_EXIT_STATUS if result.skipped else 0)


def parse_json(test, text):
    """Parses text with json.loads, and checks that `python3 -m json.tool` accepts it."""
    tool = subprocess.run([PYTHON, "-m", "json.tool"], input=text, capture_output=True,
                          text=True, timeout=TIMEOUT)
    test.assertEqual(tool.returncode, 0, f"json.tool rejects:\n{text}\n{tool.stderr}")
    return json.loads(text)


class JsonLineServer:
    """A helper process driven one command a line on its stdin, answering
    each with one JSON line: the base of the tests' servers. It runs `argv`
    (with a clean environment unless `env` is given) and reads its first
    answer into self.state; the subclass's stop() ends it when the test
    ends, and closes the test's sockets kept in self.peers."""

    def __init__(self, test, argv, env=None, **popen):
        self.test = test
        self.process = subprocess.Popen(argv, env=clean_env() if env is None else env,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, **popen)
        test.addCleanup(self.stop)
        self.peers = []
        self.state = self.read()

    def read(self):
        line = self.process.stdout.readline()
        self.test.assertNotEqual(line, "", "the server died")
        return json.loads(line)

    def command(self, line):
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        self.state = self.read()
        return self.state
