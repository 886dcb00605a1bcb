#!/usr/bin/env python3
"""preload_test.py - integration tests of the `keepalive` command: check, run
and inspect, run as a user would run them, with their exit codes, text and
JSON (the JSON is also fed to `python3 -m json.tool`).

Run by CTest (tests/tools/CMakeLists.txt), one test class per CTest test:
    preload_test.py MainTest|CheckTest|RunTest|InspectTest|ExamplesTest
Environment: LIBKEEPALIVE_COMMAND (the built bin/keepalive), LIBKEEPALIVE_TEST_PRELOAD
(the lib/libkeepalive.so that `run` must preload) and LIBKEEPALIVE_TEST_SOURCE_DIR.
"""

import json
import re
import os
import shlex
import signal
import subprocess
import tempfile
import textwrap
import threading
import unittest

from command_testlib import (COMMAND, KERNEL_CNT, KERNEL_IDLE, KERNEL_INTVL, PYTHON,
                              TIMEOUT, clean_env, copy_of_command, keepalive, main, parse_json,
                              require, require_root)

PRELOAD = os.environ["LIBKEEPALIVE_TEST_PRELOAD"]
# A C program with the section the Go toolchain writes (.note.go.buildid).
GO_MARKED = os.environ["LIBKEEPALIVE_TEST_GO_MARKED"]
IDEL_WARNING = ("KEEPALIVE_IDEL is not a libkeepalive variable: did you mean KEEPALIVE_IDLE? "
                "(ignored)")
SOURCE_DIR = os.environ["LIBKEEPALIVE_TEST_SOURCE_DIR"]

PROSODY_RULES = ("peer=127.0.0.0/8,::1 off; in port=5222,5223 idle=270 cnt=4; "
                 "in port=5269 idle=600; out port=5269 idle=600; off")


class MainTest(unittest.TestCase):
    def test_version(self):
        result = keepalive("--version")
        self.assertEqual(result.returncode, 0)
        self.assertRegex(result.stdout, r"^keepalive \d+\.\d+\.\d+\n"
                         r"License: MIT; see /\S+/doc/libkeepalive/copyright \(LICENSE in the sources\)\n$")

    def test_help_lists_every_command(self):
        # The commands main.cc dispatches to, from its table: each one is in
        # the overview and has its own help, the same by both spellings.
        with open(os.path.join(SOURCE_DIR, "tools", "main.cc"), encoding="utf-8") as f:
            commands = re.findall(r'\{"([a-z]+)", keepalive_cmd_', f.read())
        self.assertIn("natprobe", commands)
        result = keepalive("--help")
        self.assertEqual(result.returncode, 0)
        for name in ("--idle", "--rules", "--strict"):
            self.assertIn(name, result.stdout)
        for command in commands:
            self.assertRegex(result.stdout, rf"\n  keepalive {command}\b")
            sub = keepalive(command, "--help")
            self.assertEqual(sub.returncode, 0, sub.stderr)
            self.assertIn(f"Usage: keepalive {command}", sub.stdout)
            self.assertEqual(keepalive("help", command).stdout, sub.stdout)

    def test_usage_errors_exit_2(self):
        for args in ([], ["frobnicate"], ["help", "frobnicate"]):
            result = keepalive(*args)
            self.assertEqual(result.returncode, 2, args)
            self.assertNotEqual(result.stderr, "", args)
        self.assertIn("unknown command 'frobnicate'", keepalive("frobnicate").stderr)


class CheckTest(unittest.TestCase):
    def check_json(self, *args, env=None, expect=0):
        result = keepalive("check", "--json", *args, env=env)
        self.assertEqual(result.returncode, expect, result.stdout + result.stderr)
        return parse_json(self, result.stdout)

    def test_kernel_defaults_are_read_up_to_the_largest_int(self):
        """tcp_keepalive_time as large as an int holds is read as it is; one
        digit more falls back to the kernel's documented default. The sysctl
        is replaced by a file in a mount namespace of the command's own."""
        require_root(self, "to bind-mount a file over the sysctl in a mount namespace")
        for written, idle_s, from_proc in (("2147483647", 2147483647, True),
                                           ("21474836470", 7200, False)):
            with self.subTest(written=written), tempfile.TemporaryDirectory() as directory:
                fake = os.path.join(directory, "tcp_keepalive_time")
                with open(fake, "w") as f:
                    f.write(written + "\n")
                result = subprocess.run(
                    ["unshare", "-m", "sh", "-c",
                     'mount --bind "$1" /proc/sys/net/ipv4/tcp_keepalive_time && '
                     'exec "$2" check --json', "sh", fake, COMMAND],
                    capture_output=True, text=True, timeout=TIMEOUT, env=clean_env())
                self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
                kernel = parse_json(self, result.stdout)["kernel_defaults"]
                self.assertEqual((kernel["idle_s"], kernel["from_proc"]), (idle_s, from_proc))
        # An interval or a count that cannot be read: the kernel's documented
        # default stands in for it, and the report says the values are not
        # all the kernel's.
        for sysctl, key, fallback in (("tcp_keepalive_intvl", "intvl_s", 75),
                                      ("tcp_keepalive_probes", "cnt", 9)):
            with self.subTest(sysctl=sysctl), tempfile.TemporaryDirectory() as directory:
                fake = os.path.join(directory, sysctl)
                with open(fake, "w") as f:
                    f.write("none\n")
                result = subprocess.run(
                    ["unshare", "-m", "sh", "-c",
                     f'mount --bind "$1" /proc/sys/net/ipv4/{sysctl} && exec "$2" check --json',
                     "sh", fake, COMMAND],
                    capture_output=True, text=True, timeout=TIMEOUT, env=clean_env())
                self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
                kernel = parse_json(self, result.stdout)["kernel_defaults"]
                self.assertEqual((kernel[key], kernel["from_proc"]), (fallback, False))

    def test_prosody_rules_text(self):
        result = keepalive("check", "--idle", "270", "--rules", PROSODY_RULES)
        self.assertEqual(result.returncode, 0, result.stderr)
        out = result.stdout
        intvl = min(270, KERNEL_INTVL)
        self.assertIn("Configuration is valid.", out)
        self.assertIn("KEEPALIVE_IDLE=270   (from --idle)", out)
        self.assertIn("rule 1: peer=127.0.0.0/8,::1 off", out)
        self.assertIn("peer 127.0.0.0/8 or ::1/128", out)
        self.assertIn("rule 2: in port=5222,5223 idle=270 cnt=4", out)
        self.assertIn("incoming (accept), local port 5222 or 5223, any peer", out)
        self.assertIn(f"idle=270s intvl={intvl}s cnt=4 user_timeout=kernel", out)
        self.assertIn(f"at most 270s (4m30s) on an idle connection: max(idle 270s, "
                      f"intvl {intvl}s)", out)
        self.assertIn(f"detected after {270 + 4 * intvl}s", out)
        self.assertIn(f"idle 270s + cnt 4 x intvl {intvl}s", out)
        self.assertIn(f"{3600 / 270:.1f} per hour per idle connection", out)
        self.assertIn("outgoing (connect), remote port 5269", out)
        # Rule 3 takes cnt from the kernel.
        self.assertIn(f"detected after {600 + KERNEL_CNT * min(600, KERNEL_INTVL)}s", out)
        # The final "off" matches everything: the default is never used.
        self.assertIn("never used: no socket it could match gets past rule 5", out)

    def test_prosody_rules_json(self):
        doc = self.check_json("--idle", "270", "--rules", PROSODY_RULES)
        intvl = min(270, KERNEL_INTVL)
        self.assertTrue(doc["valid"])
        self.assertTrue(doc["enabled"])
        self.assertEqual((doc["strict"], doc["log"]), (False, "quiet"))
        strict = self.check_json("--idle", "270", "--strict", "--log", "debug")
        self.assertEqual((strict["strict"], strict["log"]), (True, "debug"))
        self.assertEqual(doc["problems"], [])
        self.assertEqual(doc["kernel_defaults"],
                         {"idle_s": KERNEL_IDLE, "intvl_s": KERNEL_INTVL, "cnt": KERNEL_CNT,
                          "from_proc": True})
        self.assertEqual([(v["name"], v["source"], v.get("flag")) for v in doc["variables"]],
                         [("KEEPALIVE_IDLE", "flag", "--idle"),
                          ("KEEPALIVE_RULES", "flag", "--rules")])
        rules = doc["rules"]
        self.assertEqual([r["number"] for r in rules], [1, 2, 3, 4, 5])
        self.assertEqual(rules[0]["peers"], ["127.0.0.0/8", "::1/128"])
        self.assertEqual(rules[0]["directions"], ["in", "out"])
        self.assertFalse(rules[0]["settings"]["enable"])
        self.assertIsNone(rules[0]["figures"])
        c2s = rules[1]
        self.assertEqual(c2s["directions"], ["in"])
        self.assertEqual(c2s["ports"], [{"first": 5222, "last": 5222},
                                        {"first": 5223, "last": 5223}])
        self.assertEqual(c2s["settings"], {"enable": True, "idle_s": 270, "intvl_s": intvl,
                                           "cnt": 4, "user_timeout_ms": None})
        self.assertEqual(c2s["figures"]["longest_silence_s"], 270)
        self.assertEqual(c2s["figures"]["dead_peer_detection_s"], 270 + 4 * intvl)
        self.assertEqual(c2s["figures"]["dead_peer_bound"], "cnt")
        self.assertAlmostEqual(c2s["figures"]["probes_per_hour"], 3600 / 270, places=3)
        self.assertEqual(rules[3]["directions"], ["out"])
        self.assertTrue(all(r["reachable"] for r in rules))
        self.assertFalse(doc["default"]["reachable"])
        self.assertEqual(doc["default"]["settings"]["idle_s"], 270)
        self.assertTrue(doc["default"]["intvl_derived"])

    def test_rules_hidden_by_earlier_rules(self):
        doc = self.check_json("--rules", "in off; out port=5 idle=5")
        self.assertEqual([r["reachable"] for r in doc["rules"]], [True, True])
        self.assertTrue(doc["default"]["reachable"])  # outgoing sockets of other ports
        doc = self.check_json("--rules", "in off; out port=5 idle=5; out off; idle=9")
        self.assertEqual([r["reachable"] for r in doc["rules"]], [True, True, True, False])
        self.assertFalse(doc["default"]["reachable"])
        text = keepalive("check", "--rules", "in off; out port=5 idle=5; out off; idle=9")
        self.assertIn("rule 4: idle=9\n    matches    both directions, any port, any peer\n"
                      "    never used: no socket it could match gets past rule 3\n", text.stdout)

    def test_user_timeout_bounds_detection(self):
        doc = self.check_json("--idle", "60", "--intvl", "45", "--user-timeout", "90s")
        figures = doc["default"]["figures"]
        self.assertEqual(figures["user_timeout_ms"], 90000)
        self.assertEqual(figures["dead_peer_bound"], "user_timeout")
        self.assertEqual(figures["dead_peer_detection_s"], 105)  # 60 + 1 x 45 >= 90
        text = keepalive("check", "--idle", "60", "--intvl", "45", "--user-timeout", "90s")
        self.assertIn("the first probe timer after user_timeout 1m30s", text.stdout)
        self.assertIn("cnt is not used", text.stdout)

    def test_no_configuration_means_kernel_timers(self):
        doc = self.check_json()
        self.assertEqual(doc["variables"], [])
        self.assertEqual(doc["rules"], [])
        self.assertEqual(doc["default"]["settings"],
                         {"enable": True, "idle_s": None, "intvl_s": None, "cnt": None,
                          "user_timeout_ms": None})
        self.assertEqual(doc["default"]["figures"]["dead_peer_detection_s"],
                         KERNEL_IDLE + KERNEL_CNT * KERNEL_INTVL)

    def test_flags_win_over_environment(self):
        env = clean_env(KEEPALIVE_IDLE="100", KEEPALIVE_CNT="5")
        doc = self.check_json("--idle", "200", env=env)
        self.assertEqual(doc["default"]["settings"]["idle_s"], 200)
        self.assertEqual(doc["default"]["settings"]["cnt"], 5)
        sources = {v["name"]: v["source"] for v in doc["variables"]}
        self.assertEqual(sources, {"KEEPALIVE_IDLE": "flag", "KEEPALIVE_CNT": "environment"})
        text = keepalive("check", env=env)
        self.assertIn("KEEPALIVE_IDLE=100   (from the environment)", text.stdout)

    def test_intvl_longer_than_idle_is_pointed_out(self):
        result = keepalive("check", "--intvl", "45", "--rules", "out idle=1")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("intvl 45s is longer than idle 1s", result.stdout)
        self.assertIn("at most 45s on an idle connection", result.stdout)

    def test_invalid_flag_value_exits_1(self):
        result = keepalive("check", "--idle", "abc")
        self.assertEqual(result.returncode, 1)
        self.assertIn("Configuration is invalid", result.stdout)
        self.assertIn('KEEPALIVE_IDLE="abc" is invalid: expected whole seconds', result.stdout)
        self.assertIn("(given as --idle)", result.stdout)
        doc = self.check_json("--idle", "abc", "--cnt", "0", expect=1)
        self.assertFalse(doc["valid"])
        self.assertEqual(len(doc["problems"]), 2)
        self.assertEqual(doc["rules"], [])
        self.assertIsNone(doc["default"])

    def test_invalid_environment_exits_1(self):
        env = clean_env(KEEPALIVE_RULES="in port=5222 idle=270; out port=0")
        result = keepalive("check", env=env)
        self.assertEqual(result.returncode, 1)
        self.assertIn("KEEPALIVE_RULES rule 2", result.stdout)
        self.assertIn('"0" is not a port', result.stdout)
        self.assertNotIn("given as", result.stdout)

    def test_misspelled_variable_is_a_warning_and_invalid_under_strict(self):
        env = clean_env(KEEPALIVE_IDEL="270", KEEPALIVE_CNT="4")
        result = keepalive("check", env=env)
        self.assertEqual(result.returncode, 0, result.stdout)
        self.assertIn(f"Configuration is valid.\n  warning: {IDEL_WARNING}\n", result.stdout)
        self.assertEqual(self.check_json(env=env)["warnings"], [IDEL_WARNING])
        # As in the library: under KEEPALIVE_STRICT (or --strict) it is a problem.
        for args, strict_env in ((["--strict"], env), ([], dict(env, KEEPALIVE_STRICT="yes"))):
            result = keepalive("check", *args, env=strict_env)
            self.assertEqual(result.returncode, 1, (args, result.stdout))
            self.assertIn("Configuration is invalid", result.stdout)
            self.assertIn("KEEPALIVE_IDEL is not a libkeepalive variable: did you mean "
                          "KEEPALIVE_IDLE?\n", result.stdout)
        self.assertIn("(KEEPALIVE_STRICT=yes: the program exits at start)",
                      keepalive("check", env=dict(env, KEEPALIVE_STRICT="yes")).stdout)
        # Known names are not reported: the command's own KEEPALIVE_LIBRARY neither.
        result = keepalive("check", env=clean_env(KEEPALIVE_LIBRARY=PRELOAD))
        self.assertNotIn("warning", result.stdout)

    def test_disabled(self):
        result = keepalive("check", env=clean_env(KEEPALIVE="off", KEEPALIVE_IDLE="30"))
        self.assertEqual(result.returncode, 0)
        self.assertIn("KEEPALIVE is off", result.stdout)
        doc = self.check_json(env=clean_env(KEEPALIVE="off"))
        self.assertTrue(doc["valid"])
        self.assertFalse(doc["enabled"])

    def test_usage_errors_exit_2(self):
        cases = {
            ("--bogus",): "unknown option --bogus",
            ("--idle",): "--idle needs a value: --idle DURATION",
            ("--idle", "1", "--idle", "2"): "--idle is given twice",
            ("--strict=1",): "--strict takes no value",
            ("extra",): "unexpected argument extra",
        }
        for args, message in cases.items():
            result = keepalive("check", *args)
            self.assertEqual(result.returncode, 2, args)
            self.assertIn(message, result.stderr, args)
            self.assertEqual(result.stdout, "", args)


# A child that reports its environment and the keepalive options of the two
# ends of a loopback connection, as JSON on stdout.
REPORT_CHILD = textwrap.dedent("""
    import json, os, socket
    def opts(s):
        return [s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
                s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT)]
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    client = socket.create_connection(listener.getsockname())
    accepted, _ = listener.accept()
    print(json.dumps({"pid": os.getpid(),
                      "env": {k: v for k, v in os.environ.items()
                              if k.startswith("KEEPALIVE") or k == "LD_PRELOAD"},
                      "out": opts(client), "in": opts(accepted)}))
""")


class RunTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def run_report(self, *flags, env=None):
        result = keepalive("run", *flags, "--", PYTHON, "-c", REPORT_CHILD, env=env)
        self.assertEqual(result.returncode, 0, result.stderr)
        return json.loads(result.stdout)

    def test_invalid_flag_starts_nothing(self):
        marker = os.path.join(self.tmp.name, "started")
        result = keepalive("run", "--idle", "abc", "--", "touch", marker)
        self.assertEqual(result.returncode, 2)
        self.assertIn("invalid configuration, touch not started", result.stderr)
        self.assertIn('KEEPALIVE_IDLE="abc"', result.stderr)
        self.assertIn("(given as --idle)", result.stderr)
        self.assertFalse(os.path.exists(marker))

    def test_invalid_environment_starts_nothing(self):
        marker = os.path.join(self.tmp.name, "started")
        result = keepalive("run", "touch", marker, env=clean_env(KEEPALIVE_CNT="200"))
        self.assertEqual(result.returncode, 2)
        self.assertIn("KEEPALIVE_CNT", result.stderr)
        self.assertFalse(os.path.exists(marker))

    def test_bad_command_lines_start_nothing(self):
        marker = os.path.join(self.tmp.name, "started")
        for args in (["--bogus", "touch", marker], ["--idle"], []):
            result = keepalive("run", *args)
            self.assertEqual(result.returncode, 2, args)
            self.assertNotEqual(result.stderr, "", args)
        self.assertFalse(os.path.exists(marker))

    def test_exit_status_is_the_commands(self):
        for status in (0, 1, 7, 255):
            result = keepalive("run", "--", "sh", "-c", f"exit {status}")
            self.assertEqual(result.returncode, status)

    def test_command_replaces_keepalive(self):
        # exec, not fork: the command has keepalive's PID, and its signal is the caller's.
        process = subprocess.Popen([COMMAND, "run", "--", "sh", "-c", "echo $$; kill -TERM $$"],
                                   env=clean_env(), stdout=subprocess.PIPE, text=True)
        out, _ = process.communicate(timeout=TIMEOUT)
        self.assertEqual(int(out), process.pid)
        self.assertEqual(process.returncode, -signal.SIGTERM)

    def test_library_first_in_ld_preload_existing_entries_kept(self):
        self.assertEqual(self.run_report()["env"]["LD_PRELOAD"], PRELOAD)
        # libm is harmless to preload; both separators are the loader's.
        for existing in ("libm.so.6", "libm.so.6 libc.so.6", "libm.so.6:libc.so.6"):
            report = self.run_report(env=clean_env(LD_PRELOAD=existing))
            self.assertEqual(report["env"]["LD_PRELOAD"], f"{PRELOAD}:{existing}")
        # Already listed: left as it is, not added twice.
        already = f"libm.so.6:{PRELOAD}"
        self.assertEqual(self.run_report(env=clean_env(LD_PRELOAD=already))["env"]["LD_PRELOAD"],
                         already)

    def test_flags_exported_and_applied_by_the_library(self):
        rules = "in idle=50 intvl=6 cnt=2; out port=1-65535 idle=42"
        report = self.run_report("--idle", "30", "--intvl", "7", "--cnt", "3",
                                 "--rules", rules)
        self.assertEqual(report["env"]["KEEPALIVE_IDLE"], "30")
        self.assertEqual(report["env"]["KEEPALIVE_RULES"], rules)
        self.assertEqual(report["in"], [1, 50, 6, 2])
        self.assertEqual(report["out"], [1, 42, 7, 3])

    def test_environment_is_used_too(self):
        report = self.run_report(env=clean_env(KEEPALIVE_IDLE="33", KEEPALIVE_CNT="4"))
        self.assertEqual(report["in"], [1, 33, min(33, KERNEL_INTVL), 4])
        self.assertNotIn("KEEPALIVE_INTVL", report["env"])

    def test_command_not_found_or_not_executable(self):
        result = keepalive("run", "--", "keepalive-test-no-such-command")
        self.assertEqual(result.returncode, 127)
        self.assertIn("cannot run keepalive-test-no-such-command", result.stderr)
        not_executable = os.path.join(self.tmp.name, "data")
        with open(not_executable, "w") as f:
            f.write("data\n")
        result = keepalive("run", "--", not_executable)
        self.assertEqual(result.returncode, 126)

    def test_library_override_and_missing_library(self):
        real_file = os.path.realpath(PRELOAD)
        report = self.run_report(env=clean_env(KEEPALIVE_LIBRARY=real_file))
        self.assertEqual(report["env"]["LD_PRELOAD"], real_file)
        marker = os.path.join(self.tmp.name, "started")
        result = keepalive("run", "touch", marker,
                           env=clean_env(KEEPALIVE_LIBRARY="/nonexistent/libkeepalive.so"))
        self.assertEqual(result.returncode, 2)
        self.assertIn("KEEPALIVE_LIBRARY=/nonexistent/libkeepalive.so", result.stderr)
        self.assertFalse(os.path.exists(marker))

    def test_children_are_configured_and_can_opt_out(self):
        """What libkeepalive(7) says: a preloaded program's children are
        configured too, unless started without LD_PRELOAD or with KEEPALIVE=off."""
        python = shlex.quote(PYTHON)
        script = (f'{python} -c "$1"; KEEPALIVE=off {python} -c "$1"; '
                  f'env -u LD_PRELOAD {python} -c "$1"')
        result = keepalive("run", "--idle", "41", "--", "sh", "-c", script, "sh", REPORT_CHILD)
        self.assertEqual(result.returncode, 0, result.stderr)
        child, switched_off, unloaded = (json.loads(line) for line in result.stdout.splitlines())
        self.assertEqual(child["out"], [1, 41, min(41, KERNEL_INTVL), KERNEL_CNT])
        self.assertEqual(child["in"], [1, 41, min(41, KERNEL_INTVL), KERNEL_CNT])
        untouched = [0, KERNEL_IDLE, KERNEL_INTVL, KERNEL_CNT]
        for report in (switched_off, unloaded):
            self.assertEqual((report["out"], report["in"]), (untouched, untouched))

    def test_warns_about_go_programs(self):
        result = keepalive("run", "--", GO_MARKED, "--exit")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stderr,
                         f"keepalive run: warning: {GO_MARKED} is a Go program: the Go runtime "
                         "makes its system calls itself, not through the C library, so "
                         "libkeepalive configures none of its sockets even when it is loaded; "
                         "and Go sets its own keepalive, 15 s, on every connection it accepts "
                         "or dials, which keepalive leaves alone as the program's choice: "
                         "replace it from outside with keepalive apply PID --override --follow "
                         "(connections inherit from a listener set with --listeners only where "
                         "the program turned Go's keepalive off, KeepAlive: -1)\n")
        # A real Go program: go_test.py.

    def test_warns_about_static_programs(self):
        ldconfig = "/sbin/ldconfig"  # statically linked on Debian
        if not os.path.exists(ldconfig):
            require(self, f"no {ldconfig} to serve as a static program")
        result = keepalive("run", "--", ldconfig, "--version")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("is statically linked", result.stderr)
        self.assertIn("keepalive apply PID --listeners", result.stderr)
        dynamic = keepalive("run", "--", "sh", "-c", "true")
        self.assertEqual(dynamic.stderr, "")
        # A script is no ELF file: its interpreter is what runs; no warning.
        with tempfile.TemporaryDirectory() as directory:
            script = os.path.join(directory, "script")
            with open(script, "w") as f:
                f.write("#!/bin/sh\n# " + "padding past an ELF header's 64 bytes " * 3 + "\nexit 0\n")
            os.chmod(script, 0o755)
            result = keepalive("run", "--", script)
            self.assertEqual((result.returncode, result.stderr), (0, ""))


# A process holding known sockets: a listener, both ends of a loopback
# connection (the outgoing end with keepalive set by hand), an IPv6 listener
# when IPv6 works, plus a UDP and a Unix socket that inspect must not list.
HOLDER = textwrap.dedent("""
    import json, os, socket, sys
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    client = socket.create_connection(listener.getsockname())
    client.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 42)
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 7)
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 9000)
    accepted, _ = listener.accept()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    unix_a, unix_b = socket.socketpair()
    fds = {"listener": listener.fileno(), "client": client.fileno(),
           "accepted": accepted.fileno()}
    try:
        listener6 = socket.socket(socket.AF_INET6)
        listener6.bind(("::1", 0))
        listener6.listen()
        fds["listener6"] = listener6.fileno()
        port6 = listener6.getsockname()[1]
    except OSError:
        port6 = None
    print(json.dumps({"pid": os.getpid(), "port": listener.getsockname()[1],
                      "client_port": client.getsockname()[1], "port6": port6, "fds": fds}),
          flush=True)
    sys.stdin.read()
""")


class InspectTest(unittest.TestCase):
    def start_holder(self, prefix=(), env=None):
        process = subprocess.Popen([*prefix, PYTHON, "-c", HOLDER], env=env or clean_env(),
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

        def stop():
            process.stdin.close()
            process.wait(timeout=TIMEOUT)
            process.stdout.close()
        self.addCleanup(stop)
        line = process.stdout.readline()
        self.assertNotEqual(line, "", "the socket holder did not start")
        return process, json.loads(line)

    def inspect_json(self, pid):
        result = keepalive("inspect", str(pid), "--json")
        self.assertEqual(result.returncode, 0, result.stderr)
        return parse_json(self, result.stdout)

    def test_known_sockets_json(self):
        process, holder = self.start_holder()
        doc = self.inspect_json(holder["pid"])
        self.assertEqual(doc["pid"], holder["pid"])
        self.assertEqual(doc["library"]["loaded"], False)
        self.assertEqual(doc["environment"], {})
        self.assertEqual(doc["program"], {"path": os.path.realpath(PYTHON), "go": False,
                                          "out_of_reach": None})
        self.assertEqual(doc["unexamined"], {"fds": [], "reason": None})
        by_fd = {s["fd"]: s for s in doc["sockets"]}
        expected_fds = set(holder["fds"].values())
        self.assertEqual(set(by_fd), expected_fds, "exactly the TCP sockets, no UDP/Unix")
        port, client_port = holder["port"], holder["client_port"]

        listener = by_fd[holder["fds"]["listener"]]
        self.assertEqual((listener["state"], listener["direction"], listener["family"]),
                         ("LISTEN", "listen", "ipv4"))
        self.assertEqual(listener["local"], f"127.0.0.1:{port}")
        self.assertIsNone(listener["peer"])

        client = by_fd[holder["fds"]["client"]]
        self.assertEqual((client["state"], client["direction"]), ("ESTAB", "out"))
        self.assertEqual(client["local"], f"127.0.0.1:{client_port}")
        self.assertEqual(client["peer"], f"127.0.0.1:{port}")
        self.assertEqual(client["keepalive"], {"enabled": True, "idle_s": 42, "intvl_s": 7,
                                               "cnt": 3, "user_timeout_ms": 9000})

        accepted = by_fd[holder["fds"]["accepted"]]
        self.assertEqual((accepted["state"], accepted["direction"]), ("ESTAB", "in"))
        self.assertEqual(accepted["local"], f"127.0.0.1:{port}")
        self.assertEqual(accepted["peer"], f"127.0.0.1:{client_port}")
        self.assertEqual(accepted["keepalive"], {"enabled": False, "idle_s": KERNEL_IDLE,
                                                 "intvl_s": KERNEL_INTVL, "cnt": KERNEL_CNT,
                                                 "user_timeout_ms": 0})
        if holder["port6"] is not None:
            listener6 = by_fd[holder["fds"]["listener6"]]
            self.assertEqual(listener6["family"], "ipv6")
            self.assertEqual(listener6["local"], f"[::1]:{holder['port6']}")
        # The holder is unharmed: its connection still carries data.
        self.assertIsNone(process.poll())

    def test_known_sockets_table(self):
        _, holder = self.start_holder()
        result = keepalive("inspect", str(holder["pid"]))
        self.assertEqual(result.returncode, 0, result.stderr)
        lines = result.stdout.splitlines()
        self.assertEqual(lines[0], f"Process {holder['pid']} ({os.path.basename(PYTHON)[:15]})")
        self.assertIn("libkeepalive: not loaded", result.stdout)
        header = next(line for line in lines if line.startswith("FD"))
        self.assertEqual(header.split(), ["FD", "STATE", "DIR", "LOCAL", "PEER", "KEEPALIVE"])
        client_row = next(line for line in lines
                          if line.split()[:1] == [str(holder["fds"]["client"])])
        self.assertEqual(client_row.split(),
                         [str(holder["fds"]["client"]), "ESTAB", "out",
                          f"127.0.0.1:{holder['client_port']}", f"127.0.0.1:{holder['port']}",
                          "idle=42s", "intvl=7s", "cnt=3", "user_timeout=9000ms"])
        accepted_row = next(line for line in lines
                            if line.split()[:1] == [str(holder["fds"]["accepted"])])
        self.assertEqual(accepted_row.split()[1:3], ["ESTAB", "in"])
        self.assertEqual(accepted_row.split()[-1], "off")

    def test_preloaded_process(self):
        rules = "in idle=55 intvl=5 cnt=2; off"
        _, holder = self.start_holder(prefix=(COMMAND, "run", "--rules", rules, "--"))
        doc = self.inspect_json(holder["pid"])
        self.assertTrue(doc["library"]["loaded"])
        self.assertEqual([os.path.basename(p) for p in doc["library"]["paths"]],
                         [os.path.basename(os.path.realpath(PRELOAD))])
        self.assertEqual(doc["environment"], {"KEEPALIVE_RULES": rules, "LD_PRELOAD": PRELOAD})
        self.assertEqual(doc["configuration"],
                         {"valid": True, "enabled": True, "rules": 2, "problems": [],
                          "warnings": []})
        accepted = next(s for s in doc["sockets"] if s["fd"] == holder["fds"]["accepted"])
        self.assertEqual(accepted["keepalive"], {"enabled": True, "idle_s": 55, "intvl_s": 5,
                                                 "cnt": 2, "user_timeout_ms": 0})
        # Why the library leaves each socket as it is now.
        by_fd = {s["fd"]: s for s in doc["sockets"]}
        self.assertEqual(accepted["left_alone"], "libkeepalive's (set once, then left alone)")
        self.assertEqual(by_fd[holder["fds"]["listener"]]["left_alone"],
                         "libkeepalive's: accepted sockets inherit them")
        self.assertEqual(by_fd[holder["fds"]["client"]]["left_alone"],
                         "the program's own timings: left alone")
        text = keepalive("inspect", str(holder["pid"])).stdout
        client_row = next(line for line in text.splitlines()
                          if line.split()[:1] == [str(holder["fds"]["client"])])
        self.assertTrue(client_row.endswith("(the program's own timings: left alone)"), client_row)
        self.assertIn("libkeepalive: loaded", text)
        self.assertIn(f"KEEPALIVE_RULES={rules}", text)
        self.assertIn("Configuration in that environment: valid, 2 rules", text)

    def test_invalid_configuration_in_the_process_is_shown(self):
        env = clean_env(LD_PRELOAD=PRELOAD, KEEPALIVE_IDLE="soon")
        _, holder = self.start_holder(env=env)
        doc = self.inspect_json(holder["pid"])
        self.assertTrue(doc["library"]["loaded"])
        self.assertFalse(doc["configuration"]["valid"])
        self.assertIn('KEEPALIVE_IDLE="soon"', doc["configuration"]["problems"][0])
        text = keepalive("inspect", str(holder["pid"])).stdout
        self.assertIn("invalid, so libkeepalive is inactive in it", text)

    def test_misspelled_variable_in_the_process_is_shown(self):
        env = clean_env(LD_PRELOAD=PRELOAD, KEEPALIVE_IDEL="270")
        _, holder = self.start_holder(env=env)
        doc = self.inspect_json(holder["pid"])
        self.assertTrue(doc["configuration"]["valid"])
        self.assertEqual(doc["configuration"]["warnings"], [IDEL_WARNING])
        text = keepalive("inspect", str(holder["pid"])).stdout
        self.assertIn(f"Configuration in that environment: valid, 0 rules (keepalive check "
                      f"explains it)\n  warning: {IDEL_WARNING}\n", text)

    def test_go_program_is_out_of_the_librarys_reach(self):
        # Preloaded, the library is loaded and says the configuration is
        # valid: inspect must still say that it could not reach the sockets.
        env = clean_env(LD_PRELOAD=PRELOAD, KEEPALIVE_IDLE="60")
        process = subprocess.Popen([GO_MARKED], env=env, stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, text=True)
        self.addCleanup(process.wait, timeout=TIMEOUT)
        self.addCleanup(process.stdin.close)
        self.assertTrue(process.stdout.readline().startswith("ready "))
        process.stdout.close()
        doc = self.inspect_json(process.pid)
        self.assertTrue(doc["library"]["loaded"])
        self.assertEqual(doc["program"]["path"], GO_MARKED)
        self.assertTrue(doc["program"]["go"])
        self.assertIn("is a Go program: the Go runtime makes its system calls itself",
                      doc["program"]["out_of_reach"])
        text = keepalive("inspect", str(process.pid)).stdout
        self.assertIn(f"Out of the library's reach: {GO_MARKED} is a Go program: the Go runtime "
                      "makes its system calls itself, not through the C library, so libkeepalive "
                      "configures none of its sockets even when it is loaded; and Go sets its "
                      "own keepalive, 15 s, on every connection it accepts or dials, which "
                      "keepalive leaves alone as the program's choice: replace it from outside "
                      "with keepalive apply PID --override --follow",
                      text)

    def test_no_such_process(self):
        gone = subprocess.Popen(["true"])
        gone.wait()  # reaped: its PID is free
        result = keepalive("inspect", str(gone.pid))
        # The same code as apply's for a process it cannot reach.
        self.assertEqual(result.returncode, 3)
        self.assertEqual(result.stderr, f"keepalive inspect: no such process: {gone.pid}\n")
        self.assertEqual(result.stdout, "")

    def test_thread_id_is_not_a_process(self):
        results = []

        def inspect_own_thread():
            results.append(keepalive("inspect", str(threading.get_native_id())))
        thread = threading.Thread(target=inspect_own_thread)
        thread.start()
        thread.join()
        self.assertEqual(results[0].returncode, 3)
        self.assertIn("is not a process ID but a thread of one", results[0].stderr)

    def test_usage_errors_exit_2(self):
        for args, message in ((["abc"], "PID must be a process ID"),
                              (["0"], "PID must be a process ID"),
                              (["-5"], "unknown option -5"),
                              ([], "no PID given"),
                              (["1", "2"], "one PID only")):
            result = keepalive("inspect", *args)
            self.assertEqual(result.returncode, 2, args)
            self.assertIn(message, result.stderr, args)

    def test_permission_denied_names_what_is_needed(self):
        if os.geteuid() == 0:
            # Inspect this root-owned holder as an unprivileged user.
            _, holder = self.start_holder()
            target = holder["pid"]

            # A copy that the unprivileged user can reach whatever the build
            # directory's permissions (inspect needs no library).
            command = copy_of_command(self)

            def drop():
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            result = subprocess.run([command, "inspect", str(target)], env=clean_env(),
                                    capture_output=True, text=True, timeout=TIMEOUT,
                                    preexec_fn=drop)
        else:
            target = 1  # init: another user's process
            result = keepalive("inspect", str(target))
        self.assertEqual(result.returncode, 3, result.stdout)
        self.assertIn(f"permission denied: reading the descriptors of process {target} needs "
                      "ptrace access to it", result.stderr)
        self.assertIn("CAP_SYS_PTRACE", result.stderr)
        self.assertIn("it runs as root (uid 0)", result.stderr)


class ExamplesTest(unittest.TestCase):
    """The files in examples/ stay valid: their configuration passes `keepalive check`."""

    def examples(self, *path):
        return os.path.join(SOURCE_DIR, "examples", *path)

    def check_environment(self, variables):
        settings = {k: v for k, v in variables.items() if k != "LD_PRELOAD"}
        result = keepalive("check", "--json", env=clean_env(**settings))
        self.assertEqual(result.returncode, 0, result.stdout)
        return json.loads(result.stdout)

    def test_prosody_drop_in(self):
        variables = {}
        with open(self.examples("prosody", "prosody.service.d", "keepalive.conf")) as f:
            for line in f:
                if line.startswith("Environment="):
                    # systemd unquotes like a shell: Environment="NAME=a b".
                    for assignment in shlex.split(line[len("Environment="):]):
                        name, _, value = assignment.partition("=")
                        variables[name] = value
        self.assertEqual(variables["LD_PRELOAD"], "/usr/local/lib/libkeepalive.so")
        self.assertEqual(variables["KEEPALIVE_IDLE"], "270")
        doc = self.check_environment(variables)
        self.assertEqual([r["text"] for r in doc["rules"]],
                         [rule.strip() for rule in PROSODY_RULES.split(";")])
        self.assertEqual(doc["rules"][1]["settings"]["cnt"], 4)

    def test_container_env_file(self):
        variables = {}
        with open(self.examples("container", "keepalive.env")) as f:
            for line in f:
                line = line.rstrip("\n")
                if line and not line.startswith("#"):
                    name, _, value = line.partition("=")  # taken literally, as docker does
                    variables[name] = value
        self.assertEqual(variables["LD_PRELOAD"], "/opt/keepalive/libkeepalive.so")
        doc = self.check_environment(variables)
        self.assertEqual(len(doc["rules"]), 5)
        self.assertEqual(variables["KEEPALIVE_RULES"], PROSODY_RULES)

    def test_try_it_script(self):
        script = self.examples("run", "try-it.sh")
        result = subprocess.run([script, COMMAND], env=clean_env(), capture_output=True,
                                text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        # ss: a keepalive timer on the server's end (preloaded), none on the client's.
        ss_lines = [line for line in result.stdout.splitlines() if " ino:" in line]
        self.assertEqual(len(ss_lines), 2, result.stdout)
        self.assertEqual(sum("timer:(keepalive," in line for line in ss_lines), 1, result.stdout)
        self.assertRegex(result.stdout, r"ESTAB +in +127\.0\.0\.1:\d+ +127\.0\.0\.1:\d+ +"
                                        r"idle=20s intvl=5s cnt=3 user_timeout=kernel")


if __name__ == "__main__":
    main()
