#!/usr/bin/env python3
"""drop_in_test.py - integration tests of `keepalive enable|disable|status UNIT`:
the drop-in written into a temporary --unit-dir, accepted by
`systemd-analyze verify` over Debian's real prosody.service and read back by
systemd's own parser (`systemd --test` dumps each unit's Environment= as it
understood it; it runs without systemd as init, as an unprivileged user), and
`--now` against a real Prosody run as user prosody in its own network
namespace (no systemd runs here: its PID is given with --pid), its phone
connections' keepalive timers read with `ss -tnoe`.

Run by CTest (tests/tools/CMakeLists.txt), one test class per CTest test:
    drop_in_test.py EnableTest|HelpTest|DisableStatusTest|SystemdOracleTest|ProsodyNowTest|
                    KernelDropInTest
Environment: LIBKEEPALIVE_COMMAND (the built bin/keepalive), LIBKEEPALIVE_TEST_PRELOAD
(the built library), LIBKEEPALIVE_TEST_SETSOCKOPT_FAULT (preloaded into the command to
hide one descriptor from it), LIBKEEPALIVE_TEST_RAW_PEER (kernel_test's static peer, for
KernelDropInTest). With LIBKEEPALIVE_E2E_REQUIRED=1 (CI) a missing prerequisite
(root, systemd, prosody) fails instead of skipping.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

from command_testlib import (COMMAND, KERNEL_CNT, KERNEL_INTVL, TIMEOUT, clean_env, keepalive,
                             keepalive_timer_seconds, main, require)
import kernel_test
from kernel_test import RAW_PEER, make_cgroup, process_in

LIBRARY = os.path.abspath(os.environ["LIBKEEPALIVE_TEST_PRELOAD"])
SETSOCKOPT_FAULT = os.environ["LIBKEEPALIVE_TEST_SETSOCKOPT_FAULT"]
PROSODY_UNIT = "/lib/systemd/system/prosody.service"
SYSTEMD = "/usr/lib/systemd/systemd"
NOBODY = 65534
RULES = "peer=127.0.0.0/8,::1 off; in port=5222,5223 idle=270 cnt=4; off"


def unit_dir(test):
    """A temporary --unit-dir that nobody may read (systemd --test runs as nobody)."""
    directory = tempfile.TemporaryDirectory()
    test.addCleanup(directory.cleanup)
    os.chmod(directory.name, 0o755)
    return directory.name


def read(path):
    with open(path) as f:
        return f.read()


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(os.path.dirname(path), 0o755)
    os.chmod(path, 0o644)


def drop_in(directory, unit="prosody.service"):
    return os.path.join(directory, unit + ".d", "keepalive.conf")


def verify(test, directory, unit):
    """systemd-analyze verify UNIT with DIRECTORY searched first (SYSTEMD_UNIT_PATH,
    the trailing colon keeps the usual directories): it must say nothing. It
    returns 0 even for a line it ignores, so its output is what is checked."""
    require(test, shutil.which("systemd-analyze") is None and
            "systemd-analyze not found: apt-get install systemd")
    result = subprocess.run(["systemd-analyze", "verify", unit], capture_output=True,
                            text=True, timeout=TIMEOUT,
                            env=clean_env(SYSTEMD_UNIT_PATH=directory + ":"))
    test.assertEqual((result.returncode, result.stdout + result.stderr), (0, ""))


def systemd_dump(test, directory, unit):
    """What systemd itself makes of UNIT with DIRECTORY searched first:
    `systemd --test` (which refuses root, so run as nobody) dumps every unit
    it loaded; UNIT's block (headed by its own name, or by its target's with
    an `Alias: UNIT` line) as {key: [values]}, and systemd's output."""
    require(test, os.geteuid() != 0 and "needs root, to run systemd --test as nobody")
    require(test, not os.access(SYSTEMD, os.X_OK) and f"{SYSTEMD} not found: apt-get install systemd")
    result = subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", SYSTEMD,
         "--test", "--system", f"--unit={unit}", "--no-pager"],
        capture_output=True, text=True, timeout=60,
        env=clean_env(SYSTEMD_UNIT_PATH=directory + ":"))
    test.assertEqual(result.returncode, 0, result.stderr[-2000:])
    blocks = [block for block in result.stdout.split("\n\t-> Unit ")[1:]
              if block.startswith(f"{unit}:\n") or f"\n\t\tAlias: {unit}\n" in block]
    test.assertEqual(len(blocks), 1, f"systemd --test did not dump {unit}")
    lines = {}
    for line in blocks[0].splitlines()[1:]:
        key, _, value = line.strip().partition(": ")
        lines.setdefault(key, []).append(value)
    return lines, result.stdout + result.stderr


def systemd_environment(test, directory, unit, key="Environment"):
    """The Environment= (or `key`=) of UNIT as systemd itself parsed it."""
    lines, output = systemd_dump(test, directory, unit)
    test.assertNotIn("Invalid syntax", output)
    return lines.get(key, [])


def connected_process(test, pairs, own_idle=None):
    """A plain process (no preload) with a listener on 127.0.0.1 and `pairs`
    connections to it, both ends held until the test ends (with `own_idle`,
    the process sets that TCP_KEEPIDLE on each end itself): its PID and the
    accepted sockets' descriptors, as text."""
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import os, socket, sys\n"
         "listener = socket.create_server(('127.0.0.1', 0))\n"
         f"pairs = [(socket.create_connection(listener.getsockname()), listener.accept()[0])"
         f" for _ in range({pairs})]\n"
         f"own_idle = {own_idle!r}\n"
         "for s in (s for pair in pairs for s in pair):\n"
         "    if own_idle: s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, own_idle)\n"
         "print(os.getpid(), *(accepted.fileno() for _, accepted in pairs), flush=True)\n"
         "sys.stdin.read()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    test.addCleanup(holder.wait, TIMEOUT)
    test.addCleanup(holder.stdin.close)
    test.addCleanup(holder.stdout.close)
    pid, *accepted = holder.stdout.readline().split()
    return pid, accepted


class EnableTest(unittest.TestCase):
    def test_writes_the_drop_in_that_systemd_accepts_over_prosody_service(self):
        require(self, not os.path.exists(PROSODY_UNIT) and
                f"no {PROSODY_UNIT}: apt-get install prosody")
        directory = unit_dir(self)
        result = keepalive("enable", "prosody", "--unit-dir", directory, "--idle", "270",
                           "--rules", RULES)
        self.assertEqual(result.returncode, 0, result.stderr)
        text = read(drop_in(directory))
        self.assertIn("[Service]\n", text)
        self.assertIn(f'Environment="LD_PRELOAD={LIBRARY}"\n', text)
        self.assertIn('Environment="KEEPALIVE_IDLE=270"\n', text)
        self.assertIn(f'Environment="KEEPALIVE_RULES={RULES}"\n', text)
        self.assertIn(f"Wrote {drop_in(directory)}:\n", result.stdout)
        self.assertIn(text, result.stdout)
        if not os.path.isdir("/run/systemd/system"):  # daemon-reload is advised where it runs
            self.assertNotIn("daemon-reload", result.stdout)
            self.assertIn("(systemd is not the running init here: it reads the drop-in when it "
                          "starts.)", result.stdout)
        self.assertIn("restart it, or run this again with --now", result.stdout)
        verify(self, directory, "prosody.service")
        self.assertEqual(systemd_environment(self, directory, "prosody.service"),
                         [f"LD_PRELOAD={LIBRARY}", "KEEPALIVE_IDLE=270",
                          f"KEEPALIVE_RULES={RULES}"])

    def test_systemd_reads_back_exactly_what_was_meant(self):
        """Specifier, quote, backslash, dollar and apostrophe in the library's
        path; spaces and semicolons in the rules; the unit's own LD_PRELOAD."""
        directory = unit_dir(self)
        odd = os.path.join(directory, "lib%n\"q'\\$HOME")
        os.mkdir(odd)
        os.chmod(odd, 0o755)
        library = os.path.join(odd, "libkeepalive.so")
        shutil.copy(LIBRARY, library)
        write(os.path.join(directory, "ka-readback.service"),
              "[Service]\nExecStart=/bin/true\nEnvironment=LD_PRELOAD=/usr/lib/libother.so\n")
        result = keepalive("enable", "ka-readback.service", "--unit-dir", directory,
                           "--rules", RULES, "--log", "info",
                           env=clean_env(KEEPALIVE_LIBRARY=library))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("The unit's own LD_PRELOAD (from", result.stdout)
        verify(self, directory, "ka-readback.service")
        self.assertEqual(systemd_environment(self, directory, "ka-readback.service"),
                         [f"LD_PRELOAD=/usr/lib/libother.so {library}",
                          f"KEEPALIVE_RULES={RULES}", "KEEPALIVE_LOG=info"])

    def test_keeps_the_units_preload_and_replaces_an_older_keepalive_library(self):
        directory = unit_dir(self)
        write(os.path.join(directory, "svc.service"),
              "[Service]\nExecStart=/bin/true\nEnvironment=LD_PRELOAD=/usr/lib/liba.so\n")
        write(os.path.join(directory, "svc.service.d", "10-mine.conf"),
              "[Service]\nEnvironment=\"LD_PRELOAD=/usr/lib/liba.so:/opt/old/libkeepalive.so\"\n")
        result = keepalive("enable", "svc", "--unit-dir", directory, "--idle", "60")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("preloads /opt/old/libkeepalive.so already; this drop-in's library "
                      "replaces it", result.stdout)
        self.assertIn(f'Environment="LD_PRELOAD=/usr/lib/liba.so {LIBRARY}"\n',
                      read(drop_in(directory, "svc.service")))
        # A drop-in read after ours that sets our variables is pointed out.
        write(os.path.join(directory, "svc.service.d", "override.conf"),
              "[Service]\nEnvironment=KEEPALIVE_IDLE=30\n")
        result = keepalive("enable", "svc", "--unit-dir", directory, "--idle", "60")
        self.assertIn("override.conf sets KEEPALIVE_IDLE and is read after", result.stdout)

    def test_what_keeps_the_drop_in_from_taking_effect_is_named(self):
        """systemd itself says what the service gets: a drop-in read after ours
        with an empty Environment=, or UnsetEnvironment= anywhere, defeats
        it (enable and status exit 1, naming the file); one read before it
        does not."""
        directory = unit_dir(self)
        cases = (("unset", None, "UnsetEnvironment=LD_PRELOAD\n",
                  "svc-unset.service: UnsetEnvironment= removes LD_PRELOAD"),
                 ("zz-reset.conf", "Environment=\n", "",
                  "zz-reset.conf empties the environment (an empty Environment=) after"),
                 ("aa-reset.conf", "Environment=\n", "", None))
        for name, drop_in_line, unit_line, defeated in cases:
            with self.subTest(name=name):
                unit = "svc-" + name.split(".")[0] + ".service"
                write(os.path.join(directory, unit),
                      "[Service]\nExecStart=/bin/true\n" + unit_line)
                if drop_in_line is not None:
                    write(os.path.join(directory, unit + ".d", name), "[Service]\n" + drop_in_line)
                result = keepalive("enable", unit, "--unit-dir", directory, "--idle", "60")
                status = keepalive("status", unit, "--unit-dir", directory)
                preload = [v for v in systemd_environment(self, directory, unit)
                           if v.startswith("LD_PRELOAD=")]
                unset = systemd_environment(self, directory, unit, "UnsetEnvironment")
                if defeated is None:
                    self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
                    self.assertEqual(status.returncode, 0, status.stdout + status.stderr)
                    self.assertEqual((preload, unset), ([f"LD_PRELOAD={LIBRARY}"], []))
                    continue
                self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
                self.assertIn(f"systemd would not start {unit} with the drop-in's values: ",
                              result.stderr)
                self.assertIn(defeated, result.stderr)
                self.assertEqual(status.returncode, 1, status.stdout + status.stderr)
                self.assertIn("Not in effect: ", status.stdout)
                self.assertIn(defeated, status.stdout)
                self.assertTrue(preload == [] or unset == ["LD_PRELOAD"], (preload, unset))

    def test_a_unit_file_named_after_the_drop_in_is_read_before_it(self):
        # The unit's own file comes before every drop-in, whatever its name:
        # no warning, and systemd takes the drop-in's value.
        directory = unit_dir(self)
        write(os.path.join(directory, "zsvc.service"),
              "[Service]\nExecStart=/bin/true\nEnvironment=KEEPALIVE_IDLE=30\n")
        result = keepalive("enable", "zsvc", "--unit-dir", directory, "--idle", "60")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertNotIn("Warning", result.stdout)
        self.assertIn("KEEPALIVE_IDLE=60",
                      systemd_environment(self, directory, "zsvc.service"))

    def test_replacing_shows_the_difference_and_same_file_is_left(self):
        directory = unit_dir(self)
        self.assertEqual(keepalive("enable", "prosody", "--unit-dir", directory,
                                   "--idle", "270").returncode, 0)
        result = keepalive("enable", "prosody", "--unit-dir", directory, "--idle", "300")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn(f"Replaced {drop_in(directory)}:\n", result.stdout)
        self.assertIn('\n-Environment="KEEPALIVE_IDLE=270"\n+Environment="KEEPALIVE_IDLE=300"\n',
                      result.stdout)
        result = keepalive("enable", "prosody", "--unit-dir", directory, "--idle", "300")
        self.assertIn("is already as it should be", result.stdout)
        self.assertNotIn("daemon-reload", result.stdout)

    def test_invalid_configuration_writes_nothing(self):
        directory = unit_dir(self)
        result = keepalive("enable", "prosody", "--unit-dir", directory, "--idle", "40000")
        self.assertEqual(result.returncode, 2)
        self.assertIn("keepalive enable: invalid configuration, nothing written:\n"
                      "  KEEPALIVE_IDLE=\"40000\" is invalid", result.stderr)
        self.assertIn("(given as --idle)", result.stderr)
        # The same problem `check` reports, from the same parser.
        check = keepalive("check", "--idle", "40000")
        self.assertIn(check.stdout.splitlines()[1].strip(), result.stderr)
        self.assertEqual(os.listdir(directory), [])

    def test_drop_in_that_cannot_be_written_is_an_error(self):
        directory = unit_dir(self)
        os.makedirs(drop_in(directory))  # a directory where the file goes
        result = keepalive("enable", "prosody", "--unit-dir", directory, "--idle", "270")
        self.assertEqual((result.returncode, result.stdout), (1, ""))
        self.assertEqual(result.stderr,
                         f"keepalive enable: cannot write {drop_in(directory)}: Is a directory\n")
        not_a_directory = os.path.join(directory, "file")
        write(not_a_directory, "")
        result = keepalive("enable", "prosody", "--unit-dir", not_a_directory, "--idle", "270")
        self.assertEqual((result.returncode, result.stdout), (1, ""))
        self.assertEqual(result.stderr, f"keepalive enable: cannot create "
                                        f"{not_a_directory}/prosody.service.d: Not a directory\n")

    def test_dry_run_writes_nothing(self):
        directory = unit_dir(self)
        result = keepalive("enable", "prosody", "--unit-dir", directory, "--idle", "270",
                           "--dry-run")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn(f"Would write {drop_in(directory)}:\n", result.stdout)
        self.assertIn('Environment="KEEPALIVE_IDLE=270"', result.stdout)
        self.assertEqual(os.listdir(directory), [])

    def test_where_systemd_runs_it_asks_systemctl(self):
        """In a mount namespace where /run/systemd/system exists (systemd's own
        test that it is the running init), with a systemctl on PATH that logs
        its arguments: MainPID comes from `systemctl show`, --reload runs
        `systemctl daemon-reload` (not in a dry run). The fake answers `show`
        one byte at a time: what a program writes is read whole, however the
        pipe delivers it."""
        require(self, os.geteuid() != 0 and "needs root, for a mount namespace (unshare -m)")
        directory = unit_dir(self)
        log = os.path.join(directory, "systemctl.log")
        fake = os.path.join(directory, "bin")
        write(os.path.join(fake, "systemctl"),
              f'#!/bin/sh\necho "$*" >> {log}\n'
              f'[ "$1" = show ] && for c in {" ".join(str(os.getpid()))}; do printf %s "$c"; '
              'sleep 0.05; done && echo\nexit 0\n')
        os.chmod(os.path.join(fake, "systemctl"), 0o755)

        def with_systemd(*args):
            return subprocess.run(
                ["unshare", "-m", "sh", "-c",
                 'mount -t tmpfs none /run && mkdir -p /run/systemd/system && exec "$@"', "sh",
                 COMMAND, *args, "--unit-dir", directory],
                capture_output=True, text=True, timeout=TIMEOUT,
                env=clean_env(PATH=fake + ":" + os.environ["PATH"]))

        show = "show -p MainPID --value prosody.service\n"
        result = with_systemd("enable", "prosody", "--idle", "270", "--now", "--reload",
                              "--dry-run")
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertEqual(read(log), show)
        self.assertIn("Would run: systemctl daemon-reload", result.stdout)
        self.assertIn(f"--now: keepalive apply {os.getpid()} --listeners --dry-run",
                      result.stdout)
        self.assertFalse(os.path.exists(drop_in(directory)))
        result = with_systemd("enable", "prosody", "--idle", "270", "--reload")
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertEqual(read(log), show + "daemon-reload\n")
        self.assertNotIn("Still needed", result.stdout)
        result = with_systemd("enable", "prosody", "--idle", "271")
        self.assertIn("Still needed: systemctl daemon-reload", result.stdout)
        result = with_systemd("status", "prosody")
        self.assertIn(f"as `keepalive inspect {os.getpid()}` shows it", result.stdout)
        self.assertEqual(read(log), show + "daemon-reload\n" + show)

    def test_now_override_replaces_the_programs_own_timings(self):
        pid, _ = connected_process(self, 1, own_idle=33)
        directory = unit_dir(self)
        result = keepalive("enable", "prosody", "--unit-dir", directory, "--idle", "270",
                           "--now", "--pid", pid)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("1 socket set, 2 left alone.", result.stdout)  # the listener, not the pair
        result = keepalive("enable", "prosody", "--unit-dir", directory, "--idle", "270",
                           "--now", "--override", "--pid", pid)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn(f"--now: keepalive apply {pid} --listeners --override", result.stdout)
        self.assertEqual(result.stdout.count(
            f"off -> idle=270s intvl={KERNEL_INTVL}s cnt={KERNEL_CNT} user_timeout=kernel "
            "(the program's own timings, replaced: --override)"), 2, result.stdout)
        self.assertIn("3 sockets set.", result.stdout)

    def test_now_for_a_process_that_cannot_be_reached_changes_nothing(self):
        directory = unit_dir(self)
        gone = subprocess.Popen(["true"])
        gone.wait()
        result = keepalive("enable", "prosody", "--unit-dir", directory, "--idle", "270", "--now",
                           "--pid", str(gone.pid))
        self.assertEqual(result.returncode, 3, result.stdout + result.stderr)
        self.assertIn("nothing written", result.stderr)
        self.assertEqual(os.listdir(directory), [])
        keepalive("enable", "prosody", "--unit-dir", directory, "--idle", "270")
        result = keepalive("disable", "prosody", "--unit-dir", directory, "--now", "--pid",
                           str(gone.pid))
        self.assertEqual(result.returncode, 3, result.stdout + result.stderr)
        self.assertIn("nothing removed", result.stderr)
        self.assertTrue(os.path.exists(drop_in(directory)))

    def test_usage_errors(self):
        directory = unit_dir(self)
        for args, message in (((), "no UNIT given"),
                              (("prosody.socket",), "UNIT must name a service"),
                              (("../x",), "UNIT must name a service"),
                              (("a", "b"), "one UNIT only"),
                              (("prosody", "--bogus"), "unknown option --bogus"),
                              (("prosody", "--now", "--pid", "x"), "--pid must be a process ID"),
                              (("prosody", "--override"), "--override goes with --now"),
                              (("prosody", "--pid", "1"), "--pid goes with --now"),
                              (("@",), "UNIT must name a service"),
                              (("@bar",), "UNIT must name a service"),
                              (("a@b@c",), "UNIT must name a service")):
            result = keepalive("enable", *args, "--unit-dir", directory)
            self.assertEqual(result.returncode, 2, (args, result.stdout, result.stderr))
            self.assertIn(message, result.stderr)
        if not os.path.isdir("/run/systemd/system"):
            result = keepalive("enable", "prosody", "--unit-dir", directory, "--now")
            self.assertEqual(result.returncode, 2)
            self.assertIn("give the main process with --pid PID; nothing written", result.stderr)
        self.assertEqual(os.listdir(directory), [])


class HelpTest(unittest.TestCase):
    def test_help_and_manual_agree(self):
        """Every option in enable/disable/status --help is in keepalive(1), every
        option the manual gives these commands is in their --help, and their own
        help lines fit 80 columns (the shared FLAGS lines are cli.cc's)."""
        manual = read(os.path.join(os.environ["LIBKEEPALIVE_TEST_SOURCE_DIR"], "tools", "man",
                                   "keepalive.1")).replace("\\-", "-")
        section = manual.split('.BR enable "', 1)[1].split('.BR "natprobe server"', 1)[0]
        option = r"(?<![\w-])--[a-z][a-z-]*"
        helps = ""
        for command in ("enable", "disable", "status"):
            result = keepalive(command, "--help")
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertEqual(keepalive("help", command).stdout, result.stdout)
            self.assertIn(f"Usage: keepalive {command} UNIT", result.stdout)
            self.assertIn(f".B keepalive {command}\n", manual)
            self.assertIn(f"keepalive {command} UNIT", keepalive("--help").stdout)
            helps += result.stdout
            for line in result.stdout.splitlines():
                if not re.search(r"\[KEEPALIVE_[A-Z_]+\]$", line):
                    self.assertLessEqual(len(line), 80, f"{command} --help: {line}")
            for flag in set(re.findall(option, result.stdout)) - {"--help"}:
                self.assertIn(flag, manual, f"{command} --help has {flag}, keepalive(1) not")
        for flag in set(re.findall(option, section)):
            self.assertIn(flag, helps, f"keepalive(1) gives {flag} to enable/disable/status")


class DisableStatusTest(unittest.TestCase):
    def test_status_then_disable(self):
        directory = unit_dir(self)
        result = keepalive("status", "prosody", "--unit-dir", directory)
        self.assertEqual(result.returncode, 1)
        self.assertIn("prosody.service: not enabled (no drop-in", result.stdout)
        keepalive("enable", "prosody", "--unit-dir", directory, "--rules", RULES)
        result = keepalive("status", "prosody", "--unit-dir", directory)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn(f"Library: {LIBRARY} (present)", result.stdout)
        # The drop-in's configuration, explained by `check` itself, under a
        # heading that says so.
        check = keepalive("check", "--rules", RULES)
        self.assertIn("\nConfiguration in the drop-in, as `keepalive check` explains it:\n"
                      "Configuration is valid.\n", result.stdout)
        self.assertIn(check.stdout.split("Log:", 1)[1], result.stdout)
        self.assertIn("Running process: unknown", result.stdout)

        result = keepalive("disable", "prosody", "--unit-dir", directory, "--dry-run")
        self.assertIn("Would remove", result.stdout)
        self.assertTrue(os.path.exists(drop_in(directory)))
        result = keepalive("disable", "prosody", "--unit-dir", directory)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn(f"Removed {drop_in(directory)}", result.stdout)
        self.assertEqual(os.listdir(directory), [])  # the empty .d directory too
        result = keepalive("disable", "prosody", "--unit-dir", directory)
        self.assertEqual(result.returncode, 0)
        self.assertIn("nothing to remove", result.stdout)

    def test_a_drop_in_enable_did_not_write_is_kept_without_force(self):
        directory = unit_dir(self)
        hand_written = "[Service]\nEnvironment=KEEPALIVE_IDLE=300\n"
        write(drop_in(directory), hand_written)
        result = keepalive("disable", "prosody", "--unit-dir", directory)
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        self.assertIn("was not written by keepalive enable: kept (--force removes it)",
                      result.stderr)
        self.assertIn(hand_written, result.stdout)
        self.assertEqual(read(drop_in(directory)), hand_written)
        result = keepalive("disable", "prosody", "--unit-dir", directory, "--force")
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertFalse(os.path.exists(drop_in(directory)))

    def test_now_with_a_descriptor_that_cannot_be_examined_exits_1(self):
        """status --pid and disable --now report the sockets they could read,
        name the descriptor they could not, and exit 1: the drop-in's values
        may not be in effect on every connection, or not reset on every one."""
        pid, accepted = connected_process(self, 2)
        hidden = accepted[1]
        directory = unit_dir(self)
        result = keepalive("enable", "prosody", "--unit-dir", directory, "--idle", "270",
                           "--now", "--pid", pid)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        fault = clean_env(LD_PRELOAD=SETSOCKOPT_FAULT, LIBKEEPALIVE_TEST_FAULT_UNREADABLE_FD=hidden)
        reason = f"1 descriptor could not be examined (fd {hidden}): permission denied"

        result = keepalive("status", "prosody", "--unit-dir", directory, "--pid", pid, env=fault)
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        self.assertIn(reason, result.stdout)
        self.assertIn(f"keepalive inspect: {reason}", result.stderr)

        result = keepalive("disable", "prosody", "--unit-dir", directory, "--now", "--pid", pid,
                           env=fault)
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        self.assertIn("4 sockets reset.", result.stdout)
        self.assertIn(reason, result.stdout)
        self.assertFalse(os.path.exists(drop_in(directory)))

    def test_status_of_an_invalid_drop_in_compares_no_socket(self):
        """An invalid configuration leaves every socket untouched: status says
        so, shows the process, and does not hold its sockets against values
        the library would never set."""
        pid, _ = connected_process(self, 1)
        directory = unit_dir(self)
        write(drop_in(directory), f'[Service]\nEnvironment="LD_PRELOAD={LIBRARY}"\n'
                                  'Environment="KEEPALIVE_IDLE=abc"\n')
        result = keepalive("status", "prosody", "--unit-dir", directory, "--pid", pid)
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        self.assertIn("Configuration is invalid: libkeepalive would leave every socket untouched.",
                      result.stdout)
        self.assertIn(f"Running process, as `keepalive inspect {pid}` shows it:", result.stdout)
        self.assertNotIn("against the drop-in's configuration", result.stdout)

    def test_status_of_a_drop_in_whose_library_is_gone(self):
        directory = unit_dir(self)
        write(drop_in(directory),
              '[Service]\nEnvironment="LD_PRELOAD=/nonexistent/libkeepalive.so"\n')
        result = keepalive("status", "prosody", "--unit-dir", directory)
        self.assertEqual(result.returncode, 1)
        self.assertIn("Library: /nonexistent/libkeepalive.so (MISSING", result.stdout)


def exec_start_pre(output, unit):
    """The ExecStartPre= command lines of UNIT in `systemd --test`'s dump, each
    split as the dump quotes it (shell quoting)."""
    block = [block for block in output.split("\n\t-> Unit ") if block.startswith(f"{unit}:\n")]
    found = re.search(r"\t-> ExecStartPre:\n((?:\t\t\tCommand Line: .*\n)+)", block[0])
    return [shlex.split(line.split(": ", 1)[1]) for line in
            (found.group(1).splitlines() if found else [])]


class KernelDropInTest(unittest.TestCase):
    """`enable --kernel`: the drop-in's ExecStartPre=+ line runs `keepalive attach
    --own-cgroup`, read back by systemd and run as systemd would run it inside a
    cgroup of the test (kernel_test.make_cgroup); status and disable on a
    process in that cgroup, with our program attached or not."""

    def setUp(self):
        self.home, self.cgroup = make_cgroup(self)
        self.directory = unit_dir(self)
        write(os.path.join(self.directory, "svc.service"),
              service("Environment=LD_PRELOAD=/usr/lib/liba.so\n"))
        self.drop_in = drop_in(self.directory, "svc.service")

    def keepalive_unit(self, *args, **kwargs):
        return keepalive(*args, "--unit-dir", self.directory, **kwargs)

    def listed(self, pid):
        result = keepalive("attach", "--pid", str(pid), "--list")
        self.assertEqual(result.returncode, 0, result.stderr)
        return result.stdout

    def test_systemd_reads_the_drop_in_and_its_command_attaches_in_the_cgroup(self):
        result = self.keepalive_unit("enable", "svc", "--kernel", "--idle", "123", "--cnt", "4",
                                     "--user-timeout", "9s")
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("# Kernel mode: before each start, ExecStartPre= runs", result.stdout)
        text = read(self.drop_in)
        self.assertTrue(text.startswith("# Written by `keepalive enable svc.service`."), text)
        self.assertTrue(text.endswith(
            f"\nExecStartPre=+{os.path.realpath(COMMAND)} attach --own-cgroup\n"), text)
        self.assertNotIn("LD_PRELOAD=", text)
        verify(self, self.directory, "svc.service")
        lines, output = systemd_dump(self, self.directory, "svc.service")
        environment = lines["Environment"]
        # The unit's own LD_PRELOAD as the unit has it: none of ours.
        self.assertEqual(environment, ["LD_PRELOAD=/usr/lib/liba.so", "KEEPALIVE_IDLE=123",
                                       "KEEPALIVE_CNT=4", "KEEPALIVE_USER_TIMEOUT=9s"])
        commands = exec_start_pre(output, "svc.service")
        self.assertEqual(commands, [[os.path.realpath(COMMAND), "attach", "--own-cgroup"]])
        # Run as systemd runs it: in the service's cgroup, with its environment.
        env = clean_env(**dict(v.split("=", 1) for v in environment if v.startswith("KEEPALIVE")))
        attached = subprocess.run(
            ["sh", "-c", f'echo $$ > {self.cgroup}/cgroup.procs && exec "$0" "$@"',
             *commands[0]], env=env, capture_output=True, text=True, timeout=TIMEOUT)
        self.assertEqual(attached.returncode, 0, attached.stderr)
        self.addCleanup(keepalive, "detach", self.cgroup)
        self.assertIn(f"attached to {self.cgroup}: global idle=123s", attached.stdout)
        peer = subprocess.run(
            ["sh", "-c", f'echo $$ > {self.cgroup}/cgroup.procs && exec "$0"', RAW_PEER],
            env=clean_env(), capture_output=True, text=True, timeout=TIMEOUT)
        ours = f"1 123 {min(123, KERNEL_INTVL)} 4 9000"
        self.assertEqual(peer.stdout, f"client {ours}\nserver {ours}\n", peer.stderr)

    def test_an_odd_path_is_read_back_and_one_systemd_cannot_hold_is_refused(self):
        odd = os.path.join(self.directory, "b%n x;y")
        os.mkdir(odd)
        os.chmod(odd, 0o755)
        shutil.copy(COMMAND, odd)
        command = os.path.join(odd, os.path.basename(COMMAND))
        result = keepalive("enable", "svc", "--kernel", "--unit-dir", self.directory,
                           command=command)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        verify(self, self.directory, "svc.service")
        _, output = systemd_dump(self, self.directory, "svc.service")
        self.assertEqual(exec_start_pre(output, "svc.service"), [[command, "attach", "--own-cgroup"]])
        self.assertIn(f"Command: {command} (present)",
                      self.keepalive_unit("status", "svc", command=command).stdout)
        dollar = os.path.join(self.directory, "a$b")
        os.mkdir(dollar)
        shutil.copy(COMMAND, dollar)
        before = read(self.drop_in)
        result = keepalive("enable", "svc", "--kernel", "--idle", "60", "--unit-dir",
                           self.directory, command=os.path.join(dollar, "keepalive"))
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        self.assertIn("has a $, a quote, a backslash or a control character", result.stderr)
        self.assertEqual(read(self.drop_in), before)

    def test_status_lists_the_cgroups_programs_and_disable_removes_the_drop_in(self):
        pid = process_in(self, self.cgroup)
        result = self.keepalive_unit("enable", "svc", "--kernel", "--idle", "123")
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        status = self.keepalive_unit("status", "svc")
        self.assertEqual(status.returncode, 0, status.stdout + status.stderr)
        self.assertIn(f"Command: {os.path.realpath(COMMAND)} (present)", status.stdout)
        self.assertNotIn("Library:", status.stdout)
        # Nothing attached: not in effect.
        status = self.keepalive_unit("status", "svc", "--pid", str(pid))
        self.assertEqual(status.returncode, 1, status.stdout + status.stderr)
        self.assertIn(f"{self.cgroup}: 0 sock_ops programs\n", status.stdout)
        self.assertIn(f"Not in effect: no program of ours is attached to {self.cgroup}",
                      status.stdout)
        # The test's own attach, with the drop-in's configuration: in effect.
        self.assertEqual(keepalive("attach", self.cgroup, "--idle", "123").returncode, 0)
        self.addCleanup(keepalive, "detach", self.cgroup)
        status = self.keepalive_unit("status", "svc", "--pid", str(pid))
        self.assertEqual(status.returncode, 0, status.stdout + status.stderr)
        self.assertIn(f"{self.cgroup}: 1 sock_ops program\n", status.stdout)
        self.assertIn(": global idle=123s", status.stdout)
        self.assertIn("Ours carries the drop-in's configuration", status.stdout)
        # Another configuration attached: not in effect.
        self.assertEqual(keepalive("attach", self.cgroup, "--idle", "124").returncode, 0)
        status = self.keepalive_unit("status", "svc", "--pid", str(pid))
        self.assertEqual(status.returncode, 1, status.stdout + status.stderr)
        self.assertIn("Not in effect: our program carries another configuration", status.stdout)

        result = self.keepalive_unit("disable", "svc", "--now", "--pid", str(pid), "--dry-run")
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn(f"Would detach our program from {self.cgroup}.", result.stdout)
        self.assertIn(": global idle=124s", self.listed(pid))
        result = self.keepalive_unit("disable", "svc", "--now", "--pid", str(pid))
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn(f"Removed {self.drop_in}", result.stdout)
        self.assertIn(f"{self.cgroup}: detached our program", result.stdout)
        self.assertFalse(os.path.exists(self.drop_in))
        self.assertIn("0 sock_ops programs\n", self.listed(pid))

    def test_now_attaches_to_the_main_process_cgroup(self):
        pid = process_in(self, self.cgroup)
        self.addCleanup(keepalive, "detach", self.cgroup)
        result = self.keepalive_unit("enable", "svc", "--kernel", "--idle", "123", "--now",
                                     "--pid", str(pid))
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn(f"--now: keepalive attach --pid {pid}\nattached to {self.cgroup}: "
                      "global idle=123s", result.stdout)
        self.assertIn("Connections open already keep their settings", result.stdout)
        self.assertIn(": global idle=123s", self.listed(pid))
        status = self.keepalive_unit("status", "svc", "--pid", str(pid))
        self.assertEqual(status.returncode, 0, status.stdout + status.stderr)
        result = self.keepalive_unit("enable", "svc", "--kernel", "--idle", "124", "--now",
                                     "--pid", str(pid))
        self.assertIn(f"replaced our program on {self.cgroup}: global idle=124s", result.stdout)
        self.assertIn("1 sock_ops program\n", self.listed(pid))

    def test_what_kernel_mode_cannot_do_writes_nothing(self):
        gone = subprocess.Popen(["true"])
        gone.wait()
        # (flags, environment, exit status, message; the usage error says no more)
        cases = [
            ((), clean_env(KEEPALIVE="off"), 2, "--kernel: KEEPALIVE=off leaves nothing to attach"),
            (("--idle", "100", "--rules", kernel_test.KernelModeTest.large_rules(24)), None, 2,
             "--kernel: the kernel refused the program"),
            (("--now", "--pid", str(gone.pid)), None, 3, f"no such process {gone.pid}"),
            (("--now", "--override", "--pid", "1"), None, 2,
             "--override goes with --now, not with --kernel"),
        ]
        for args, env, status, message in cases:
            with self.subTest(args=args[:2]):
                result = self.keepalive_unit("enable", "svc", "--kernel", *args, env=env)
                self.assertEqual(result.returncode, status, result.stdout + result.stderr)
                self.assertIn(message, result.stderr)
                if "--override" not in args:
                    self.assertIn("; nothing written\n", result.stderr)
                self.assertFalse(os.path.exists(self.drop_in))


def service(lines=""):
    """A unit file systemd loads: [Service] with ExecStart= and `lines`."""
    return "[Service]\nExecStart=/bin/true\n" + lines


def section(lines):
    """A drop-in: [Service] and `lines`."""
    return "[Service]\n" + lines


JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"

# The corpus of SystemdOracleTest: (case, UNIT to enable, its files in the
# unit directory (a tuple: a symlink to that name), options). Options:
# "rules" for --rules, "odd_library" to preload a copy of the library from a
# directory whose name holds a specifier, "defeated_by" the file that keeps
# the drop-in from taking effect, "stdout" what enable must say.
ORACLE_CORPUS = (
    ("plain", "svc.service", {"svc.service": service()}, {}),
    ("several preloads", "svc.service",
     {"svc.service": service('Environment="LD_PRELOAD=/usr/lib/liba.so /usr/lib/libb.so:'
                             '/usr/lib/libc.so"\n')}, {}),
    ("template without an instance file", "foo@bar.service",
     {"foo@.service": service(f"Environment=LD_PRELOAD={JEMALLOC}\n")}, {}),
    ("template and instance file", "foo@bar.service",
     {"foo@.service": service("Environment=LD_PRELOAD=/usr/lib/libtemplate.so\n"),
      "foo@bar.service": service("Environment=LD_PRELOAD=/usr/lib/libinstance.so\n")}, {}),
    ("template drop-in", "foo@bar.service",
     {"foo@.service": service(),
      "foo@.service.d/10-jemalloc.conf": section(f"Environment=LD_PRELOAD={JEMALLOC}\n")}, {}),
    ("dash-prefix drop-in", "web-app-x.service",
     {"web-app-x.service": service(),
      "web-.service.d/10-jemalloc.conf": section(f"Environment=LD_PRELOAD={JEMALLOC}\n")}, {}),
    ("two dash prefixes, later name wins", "web-app-x.service",
     {"web-app-x.service": service(),
      "web-app-.service.d/20-b.conf": section("Environment=LD_PRELOAD=/usr/lib/libb.so\n"),
      "web-.service.d/10-a.conf": section("Environment=LD_PRELOAD=/usr/lib/liba.so X=web\n")},
     {}),
    ("service.d", "svc.service",
     {"svc.service": service(),
      "service.d/10-jemalloc.conf": section(f"Environment=LD_PRELOAD={JEMALLOC}\n")}, {}),
    ("same name in service.d and the template's directory", "foo@bar.service",
     {"foo@.service": service(),
      "service.d/10-pre.conf": section("Environment=LD_PRELOAD=/usr/lib/libhidden.so\n"),
      "foo@.service.d/10-pre.conf": section("Environment=LD_PRELOAD=/usr/lib/libshown.so\n")},
     {}),
    ("alias", "alias.service",
     {"real.service": service("Environment=LD_PRELOAD=/usr/lib/libreal.so\n"),
      "alias.service": ("real.service",)}, {}),
    ("alias with drop-ins under both names", "real.service",
     {"real.service": service(),
      "alias.service": ("real.service",),
      "alias.service.d/10-alias.conf": section("Environment=LD_PRELOAD=/usr/lib/libalias.so\n"),
      "real.service.d/20-real.conf": section("Environment=REAL=1\n")}, {}),
    ("template alias", "al-x@q.service",
     {"foo-bar@.service": service("Environment=LD_PRELOAD=/opt/%p/lib%i.so\n"),
      "al-x@.service": ("foo-bar@.service",)}, {}),
    ("escaped dash in the name", r"a-b\x2dc.service",
     {r"a-b\x2dc.service": service("Environment=LD_PRELOAD=/opt/%P/%j.so\n"),
      "a-.service.d/10-a.conf": section("Environment=FROM_PREFIX=%N\n")}, {}),
    ("instance with dashes", "web-app@x-y.service",
     {"web-app@.service": service(),
      "web-@x-y.service.d/10-i.conf": section("Environment=LD_PRELOAD=/opt/%I/%f/lib.so\n"),
      "web-.service.d/20-t.conf": section("Environment=TEMPLATE_PREFIX=%n\n")}, {}),
    ("specifiers in LD_PRELOAD", "foo@bar.service",
     {"foo@.service": service(
         'Environment="LD_PRELOAD=/opt/%N/libx.so:/opt/%i/100%%.so /opt/%n/end%"\n')}, {}),
    ("single quotes", "svc.service",
     {"svc.service": service("Environment='LD_PRELOAD=/usr/lib/liba.so /usr/lib/libb.so' "
                             "'OTHER=x y'\n")}, {}),
    ("double quotes and backslashes", "svc.service",
     {"svc.service": service('Environment="LD_PRELOAD=/usr/lib/lib\\x41.so" '
                             '"Q=say \\"hi\\" back\\\\slash"\n')}, {}),
    ("tabs", "svc.service",
     {"svc.service": service("Environment=\tLD_PRELOAD=/usr/lib/liba.so\tX=1 \"T=a\tb\"\n")},
     {}),
    ("rules with spaces and semicolons, a % in the library's directory", "svc.service",
     {"svc.service": service("Environment=LD_PRELOAD=/usr/lib/liba.so\n")},
     {"rules": RULES, "odd_library": True}),
    ("a line systemd stops reading, an unknown specifier", "svc.service",
     {"svc.service": service('Environment=LD_PRELOAD=/usr/lib/liba.so B="open\n'
                             "Environment=BAD=/opt/%z\n")}, {}),
    ("an older keepalive.conf of the template", "foo@bar.service",
     {"foo@.service": service(),
      "foo@.service.d/keepalive.conf": section(
          'Environment="LD_PRELOAD=/usr/lib/liba.so /opt/old/libkeepalive.so"\n')}, {}),
    ("earlier empty Environment=", "svc.service",
     {"svc.service": service("Environment=LD_PRELOAD=/usr/lib/liba.so\n"),
      "svc.service.d/aa-reset.conf": section("Environment=\n")}, {}),
    ("UnsetEnvironment= of another value", "svc.service",
     {"svc.service": service("UnsetEnvironment=LD_PRELOAD=/usr/lib/libother.so\n")}, {}),
    ("EnvironmentFile=", "svc.service",
     {"svc.service": service("EnvironmentFile=-/etc/default/ka-oracle-none\n")},
     {"stdout": "Warning: EnvironmentFile= in "}),
    ("later empty Environment=", "svc.service",
     {"svc.service": service("Environment=LD_PRELOAD=/usr/lib/liba.so\n"),
      "svc.service.d/zz-reset.conf": section("Environment=\n")},
     {"defeated_by": "svc.service.d/zz-reset.conf"}),
    ("later empty Environment= in service.d", "svc.service",
     {"svc.service": service(), "service.d/zz-reset.conf": section("Environment=\n")},
     {"defeated_by": "service.d/zz-reset.conf"}),
    ("UnsetEnvironment=LD_PRELOAD", "svc.service",
     {"svc.service": service("UnsetEnvironment=LD_PRELOAD\n")},
     {"defeated_by": "svc.service: UnsetEnvironment= removes LD_PRELOAD"}),
    ("a later drop-in of the template sets LD_PRELOAD", "foo@bar.service",
     {"foo@.service": service(),
      "foo@.service.d/zz-mine.conf": section("Environment=LD_PRELOAD=/usr/lib/libmine.so\n")},
     {"defeated_by": "foo@.service.d/zz-mine.conf sets LD_PRELOAD"}),
)


def preloads(environment):
    """The entries of LD_PRELOAD in an `Environment:` list (separated by spaces or colons)."""
    values = [v.split("=", 1)[1] for v in environment if v.startswith("LD_PRELOAD=")]
    return re.split(r"[ :]+", values[-1].strip()) if values else []


class SystemdOracleTest(unittest.TestCase):
    """systemd as the oracle: for each unit layout of ORACLE_CORPUS, `keepalive
    enable` into a temporary unit directory; then `systemd --test` says what
    environment the service gets, which must be what `keepalive status`
    says is in effect, with the library last in LD_PRELOAD after every
    preload the unit had (as systemd resolved it), or, where a later file
    defeats the drop-in, enable and status must both name that file."""

    def test_enable_gives_the_environment_systemd_computes(self):
        for case, unit, files, options in ORACLE_CORPUS:
            with self.subTest(case=case):
                self.check_case(case, unit, files, options)

    def check_case(self, case, unit, files, options):
        directory = unit_dir(self)
        for name, content in files.items():
            if isinstance(content, tuple):
                os.symlink(content[0], os.path.join(directory, name))
            else:
                write(os.path.join(directory, name), content)
        library, env = LIBRARY, clean_env()
        if options.get("odd_library"):
            odd = os.path.join(directory, "lib%n")
            os.mkdir(odd)
            os.chmod(odd, 0o755)
            library = os.path.join(odd, "libkeepalive.so")
            shutil.copy(LIBRARY, library)
            env = clean_env(KEEPALIVE_LIBRARY=library)
        before, _ = systemd_dump(self, directory, unit)
        args = ["enable", unit, "--unit-dir", directory, "--idle", "270"]
        if "rules" in options:
            args += ["--rules", options["rules"]]
        enable = keepalive(*args, env=env)
        after, _ = systemd_dump(self, directory, unit)
        status = keepalive("status", unit, "--unit-dir", directory, env=env)
        print(f"[{case}] {unit}\n"
              f"  before: Environment {before.get('Environment', [])} "
              f"UnsetEnvironment {before.get('UnsetEnvironment', [])}\n"
              f"  after:  Environment {after.get('Environment', [])} "
              f"UnsetEnvironment {after.get('UnsetEnvironment', [])}", flush=True)
        said = {key: [line.split(": ", 1)[1] for line in status.stdout.splitlines()
                      if line.startswith(f"  {key}: ")]
                for key in ("Environment", "UnsetEnvironment")}
        self.assertEqual(said, {key: after.get(key, []) for key in said}, status.stdout)
        if "Fragment Path" in before:
            self.assertNotIn("no file for", enable.stdout)
        if "stdout" in options:
            self.assertIn(options["stdout"], enable.stdout)
        defeated_by = options.get("defeated_by")
        if defeated_by is None:
            self.assertEqual(enable.returncode, 0, enable.stdout + enable.stderr)
            self.assertEqual(status.returncode, 0, status.stdout + status.stderr)
            own = [entry for entry in preloads(before.get("Environment", []))
                   if not entry.endswith("/libkeepalive.so")]
            self.assertEqual(preloads(after["Environment"]), own + [library])
            self.assertIn("KEEPALIVE_IDLE=270", after["Environment"])
            if "rules" in options:
                self.assertIn(f"KEEPALIVE_RULES={options['rules']}", after["Environment"])
            return
        self.assertEqual(enable.returncode, 1, enable.stdout + enable.stderr)
        self.assertIn(f"systemd would not start {unit} with the drop-in's values: ",
                      enable.stderr)
        self.assertIn(defeated_by, enable.stderr)
        self.assertEqual(status.returncode, 1, status.stdout + status.stderr)
        self.assertIn(f"Not in effect: {directory}/{defeated_by}", status.stdout)
        self.assertTrue(library not in preloads(after.get("Environment", [])) or
                        "LD_PRELOAD" in after.get("UnsetEnvironment", []), after)


def ss_keepalive_timers(namespace):
    """{peer port: keepalive timer in seconds} of Prosody's established c2s connections."""
    out = subprocess.run(["ip", "netns", "exec", namespace, "ss", "-Htnoe", "state",
                          "established", "( sport = :5222 )"],
                         capture_output=True, text=True, check=True, timeout=TIMEOUT).stdout
    timers = {}
    for line in out.splitlines():
        timers[int(line.split()[3].rsplit(":", 1)[1])] = keepalive_timer_seconds(line)
    return timers


class ProsodyNowTest(unittest.TestCase):
    """Debian's Prosody as user prosody on 127.0.0.1:5222 in a network namespace
    of its own; "phones" are clients that opened an XMPP stream and stay idle."""

    def setUp(self):
        require(self, os.geteuid() != 0 and "needs root (network namespace, user prosody)")
        require(self, shutil.which("prosody") is None and "prosody not found: apt-get install prosody")
        self.namespace = f"ka-enable-{os.getpid()}"
        subprocess.run(["ip", "netns", "add", self.namespace], check=True, timeout=TIMEOUT)
        self.addCleanup(subprocess.run, ["ip", "netns", "del", self.namespace], timeout=TIMEOUT)
        subprocess.run(["ip", "-n", self.namespace, "link", "set", "lo", "up"], check=True,
                       timeout=TIMEOUT)
        work = tempfile.mkdtemp(prefix="ka-enable-prosody.")
        self.addCleanup(shutil.rmtree, work, True)
        os.chmod(work, 0o755)
        for sub in ("data", "certs"):
            os.mkdir(os.path.join(work, sub))
        with open(os.path.join(work, "prosody.cfg.lua"), "w") as f:
            f.write(f"""pidfile = "{work}/prosody.pid"
data_path = "{work}/data"
certificates = "{work}/certs"
log = {{ {{ levels = {{ min = "info" }}, to = "file", filename = "{work}/prosody.log" }} }}
modules_enabled = {{ "roster"; "saslauth"; "disco"; "ping" }}
modules_disabled = {{ "s2s"; "s2s_auth_certs"; "offline" }}
c2s_require_encryption = false
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ 5222 }}
c2s_direct_tls_ports = {{ }}
legacy_ssl_ports = {{ }}
VirtualHost "localhost"
""")
        subprocess.run(["chown", "-R", "prosody:prosody", work], check=True, timeout=TIMEOUT)
        self.prosody = subprocess.Popen(
            ["ip", "netns", "exec", self.namespace, "setpriv", "--reuid=prosody",
             "--regid=prosody", "--init-groups", "--", "env", "-i",
             "PATH=/usr/sbin:/usr/bin:/sbin:/bin", f"HOME={work}", "prosody", "--config",
             f"{work}/prosody.cfg.lua", "-F"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(self.prosody.wait, TIMEOUT)
        self.addCleanup(self.prosody.kill)
        deadline = time.monotonic() + 20
        while not self.listening():
            self.assertIsNone(self.prosody.poll(), "Prosody exited at start:\n" +
                              (read(f"{work}/prosody.log") if os.path.exists(f"{work}/prosody.log") else ""))
            self.assertLess(time.monotonic(), deadline, "Prosody did not listen on 5222")
            time.sleep(0.05)
        self.unit_dir = unit_dir(self)

    def listening(self):
        return "5222" in subprocess.run(
            ["ip", "netns", "exec", self.namespace, "ss", "-Htln", "sport = :5222"],
            capture_output=True, text=True, timeout=TIMEOUT).stdout

    def phone(self):
        """A client in the namespace that opens a stream and stays idle; its port."""
        client = subprocess.Popen(
            ["ip", "netns", "exec", self.namespace, "python3", "-c",
             "import socket, sys, time\n"
             "s = socket.create_connection(('127.0.0.1', 5222))\n"
             "s.sendall(b\"<?xml version='1.0'?><stream:stream to='localhost' "
             "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
             "version='1.0'>\")\n"
             "print(s.getsockname()[1], flush=True)\n"
             "time.sleep(120)\n"],
            stdout=subprocess.PIPE, text=True)
        self.addCleanup(client.wait, TIMEOUT)
        self.addCleanup(client.kill)
        port = int(client.stdout.readline())
        deadline = time.monotonic() + 10
        while port not in ss_keepalive_timers(self.namespace):
            self.assertLess(time.monotonic(), deadline, "Prosody did not accept the phone")
            time.sleep(0.05)
        return port

    def status_then_disable_now(self, pid, sockets):
        """`status`, which must find `sockets` with the drop-in's values, then
        `disable --now`, which must reset them; status's output."""
        result = keepalive("status", "prosody", "--unit-dir", self.unit_dir, "--pid", pid)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn(f"{sockets} sockets have the drop-in's values.", result.stdout)
        status = result.stdout
        result = keepalive("disable", "prosody", "--unit-dir", self.unit_dir, "--now",
                           "--pid", pid)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn(f"{sockets} sockets reset.", result.stdout)
        return status

    def test_enable_now_status_and_disable_now(self):
        pid = str(self.prosody.pid)
        first = self.phone()
        before = ss_keepalive_timers(self.namespace)[first]
        # Prosody's own c2s_tcp_keepalives: SO_KEEPALIVE with the kernel's 2 hours.
        self.assertIsNotNone(before)
        self.assertGreater(before, 270)

        result = keepalive("enable", "prosody", "--unit-dir", self.unit_dir, "--idle", "270",
                           "--now", "--pid", pid)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn(f"--now: keepalive apply {pid} --listeners", result.stdout)
        self.assertIn("2 sockets set.", result.stdout)
        after = ss_keepalive_timers(self.namespace)[first]
        self.assertLessEqual(after, 270, f"timer before {before}s, after {after}s")
        verify(self, self.unit_dir, "prosody.service")

        # A phone that connects now inherits the listener's settings.
        second = self.phone()
        self.assertLessEqual(ss_keepalive_timers(self.namespace)[second], 270)

        status = self.status_then_disable_now(pid, sockets=3)
        self.assertIn("libkeepalive: not loaded", status)
        timers = ss_keepalive_timers(self.namespace)
        self.assertGreater(timers[first], 270)
        self.assertGreater(timers[second], 270)
        self.assertFalse(os.path.exists(drop_in(self.unit_dir)))

    def test_enable_now_with_the_recommended_rules_sets_the_listener(self):
        """README's Prosody rules begin with `peer=127.0.0.0/8,::1 off`: the
        listener is set all the same, so that a phone connecting after
        `--now` inherits 270 s, and the report says loopback peers do too."""
        pid = str(self.prosody.pid)
        first = self.phone()
        rules = ("peer=127.0.0.0/8,::1 off; in port=5222,5223 idle=270 cnt=4; "
                 "in port=5269 idle=600; out port=5269 idle=600; off")
        # --exact-listeners: the listener stays as it was, and says why.
        result = keepalive("enable", "prosody", "--unit-dir", self.unit_dir, "--idle", "270",
                           "--rules", rules, "--now", "--exact-listeners", "--pid", pid)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("(--exact-listeners)", result.stdout)
        between = self.phone()
        self.assertGreater(ss_keepalive_timers(self.namespace)[between], 270)
        result = keepalive("enable", "prosody", "--unit-dir", self.unit_dir, "--idle", "270",
                           "--rules", rules, "--now", "--pid", pid)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("rule 1 (peer=127.0.0.0/8,::1 off) asks less for some peers: they get "
                      "these values too, until the program restarts", result.stdout)
        # The phones came from 127.0.0.1 in the test's namespace: rule 1 leaves them.
        self.assertIn("1 socket set, 2 left as the rules say", result.stdout)
        second = self.phone()
        timers = ss_keepalive_timers(self.namespace)
        self.assertGreater(timers[first], 270)
        self.assertLessEqual(timers[second], 270)

    def test_enable_now_again_moves_the_sockets_to_the_new_values(self):
        """In a namespace whose tcp_keepalive_time (600 s) is not this one's:
        the sockets read that default and are set; a second `enable --now`
        with other values moves the sockets that carry the first one's."""
        subprocess.run(["ip", "netns", "exec", self.namespace, "sysctl", "-q",
                        "net.ipv4.tcp_keepalive_time=600"], check=True, timeout=TIMEOUT)
        pid = str(self.prosody.pid)
        first = self.phone()
        self.assertGreater(ss_keepalive_timers(self.namespace)[first], 270)
        result = keepalive("enable", "prosody", "--unit-dir", self.unit_dir, "--idle", "270",
                           "--now", "--pid", pid)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("2 sockets set.", result.stdout)
        self.assertLessEqual(ss_keepalive_timers(self.namespace)[first], 270)

        result = keepalive("enable", "prosody", "--unit-dir", self.unit_dir, "--idle", "240",
                           "--now", "--pid", pid)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("values of the drop-in it replaces get the new ones", result.stdout)
        self.assertIn("2 sockets set.", result.stdout)
        self.assertLessEqual(ss_keepalive_timers(self.namespace)[first], 240)
        second = self.phone()
        self.assertLessEqual(ss_keepalive_timers(self.namespace)[second], 240)

        self.assertIn("kernel defaults idle 600s", self.status_then_disable_now(pid, sockets=3))
        # Back to that namespace's default, not this one's.
        timers = ss_keepalive_timers(self.namespace)
        for port in (first, second):
            self.assertGreater(timers[port], 240)
            self.assertLessEqual(timers[port], 600)


if __name__ == "__main__":
    main()
