#!/usr/bin/env python3
"""go_test.py - the command against a real Go program (go_peer.go, built here
with Debian's `go`): the Go runtime makes its socket system calls itself, so
the preloaded library cannot reach its connections even when it is loaded;
`keepalive run` warns about that, `keepalive inspect` says it, and `keepalive
apply` (once or --follow) sets its connections from outside, leaving alone
those on which Go's runtime chose its own timings (keepalive on, 15 s, unless
the program disables it). Read back from inside the Go program (its own
getsockopt), with `keepalive inspect --json` and with `ss -tnoe`.

Run by CTest (tests/tools/CMakeLists.txt), one test class per CTest test:
    go_test.py GoPreloadTest|GoApplyTest
Environment: as follow_test.py, and LIBKEEPALIVE_TEST_PRELOAD (the built
library). Without `go` the tests are skipped loudly; with
LIBKEEPALIVE_E2E_REQUIRED=1 (CI) they fail instead.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import textwrap
import unittest

from apply_test import keepalive_timers, ss_lines
from command_testlib import (COMMAND, KERNEL_CNT, KERNEL_IDLE, KERNEL_INTVL, PYTHON, TIMEOUT,
                             JsonLineServer, clean_env, keepalive, keepalive_timer_seconds,
                             main, parse_json, prerequisites_required, require)
from follow_test import Follower

SOURCE_DIR = os.environ["LIBKEEPALIVE_TEST_SOURCE_DIR"]
PRELOAD = os.path.abspath(os.environ["LIBKEEPALIVE_TEST_PRELOAD"])

# [SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT] as go_peer reads them.
UNTOUCHED = [0, KERNEL_IDLE, KERNEL_INTVL, KERNEL_CNT]
GO_DEFAULT = [1, 15, 15, KERNEL_CNT]  # what Go's runtime sets (net: defaultTCPKeepAlive)
IDLE = 41
CONFIGURED = [1, IDLE, min(IDLE, KERNEL_INTVL), KERNEL_CNT]

GO_WARNING = ("is a Go program: the Go runtime makes its system calls itself, not through the "
              "C library, so libkeepalive configures none of its sockets even when it is loaded; "
              "and Go sets its own keepalive, 15 s, on every connection it accepts or dials, "
              "which keepalive leaves alone as the program's choice: replace it from outside "
              "with keepalive apply PID --override --follow (connections inherit from a "
              "listener set with --listeners only where the program turned Go's keepalive off, "
              "KeepAlive: -1)")

# The control: go_peer's protocol and answers, in Python, whose sockets the
# C library makes (and the preloaded library configures).
C_LIBRARY_PEER = textwrap.dedent("""
    import json, os, socket, sys
    OPTIONS = ((socket.SOL_SOCKET, socket.SO_KEEPALIVE), (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
               (socket.IPPROTO_TCP, socket.TCP_KEEPINTVL), (socket.IPPROTO_TCP, socket.TCP_KEEPCNT))
    listener = socket.create_server(("127.0.0.1", 0))
    print(json.dumps({"pid": os.getpid(), "port": listener.getsockname()[1]}), flush=True)
    conns = {}
    for line in sys.stdin:
        words = line.split()
        if words[0] == "accept":
            conns[words[1]] = listener.accept()[0]
        elif words[0] == "dial":
            conns[words[1]] = socket.create_connection(("127.0.0.1", int(words[2])))
        print(json.dumps({n: {"inode": os.fstat(c.fileno()).st_ino,
                              "options": [c.getsockopt(*o) for o in OPTIONS]}
                          for n, c in conns.items()}), flush=True)
""")


def build_go_peer(directory):
    """go_peer built into `directory`: its path, or why it could not be."""
    go = shutil.which("go")
    if go is None:
        return None, "no Go toolchain: apt-get install golang-go"
    # Everything Go writes stays in `directory`; no network, no go.mod. cgo
    # on (Go's default with a C compiler, as distributions build): the
    # program is dynamically linked, so LD_PRELOAD does load the library.
    env = dict(clean_env(), HOME=directory, GOPATH=os.path.join(directory, "gopath"),
               GOCACHE=os.path.join(directory, "cache"), GO111MODULE="off", GOFLAGS="",
               GOTOOLCHAIN="local", GOPROXY="off", CGO_ENABLED="1")
    program = os.path.join(directory, "go_peer")
    built = subprocess.run([go, "build", "-o", program,
                            os.path.join(SOURCE_DIR, "tests", "tools", "go_peer.go")],
                           cwd=directory, env=env, capture_output=True, text=True, timeout=90)
    if built.returncode != 0:
        raise AssertionError(f"go build failed:\n{built.stderr}")
    return program, None


class Peer(JsonLineServer):
    """go_peer (or the control) running; the test's ends of its connections."""

    def __init__(self, test, command, env=None):
        super().__init__(test, command, env, stderr=subprocess.PIPE)
        self.pid, self.port = self.state["pid"], self.state["port"]

    def stop(self):
        """Closes its input (it exits 0) and returns its standard error."""
        if self.process.stdin.closed:
            return ""
        self.process.stdin.close()
        self.test.assertEqual(self.process.wait(timeout=TIMEOUT), 0)
        errors = self.process.stderr.read()
        self.process.stdout.close()
        self.process.stderr.close()
        for peer in self.peers:
            peer.close()
        return errors

    def accept(self, name):
        """A connection from the test, accepted by the program as `name`."""
        self.peers.append(socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT))
        return self.command(f"accept {name}")[name]

    def dial(self, name):
        """A connection the program opens to a listener of the test, as `name`."""
        listener = socket.create_server(("127.0.0.1", 0))
        self.peers.append(listener)
        socket_ = self.command(f"dial {name} {listener.getsockname()[1]}")[name]
        self.peers.append(listener.accept()[0])
        return socket_

    def options(self, name):
        return self.command("report")[name]["options"]


class GoTestCase(unittest.TestCase):
    """Builds go_peer once for the class; skips (or fails) without `go`."""

    @classmethod
    def setUpClass(cls):
        directory = tempfile.TemporaryDirectory()
        cls.addClassCleanup(directory.cleanup)
        cls.go_peer, cls.missing = build_go_peer(directory.name)
        if cls.missing and not prerequisites_required():
            # Once for the class, in the log.
            print(f"SKIPPED: {cls.missing}", flush=True)

    def setUp(self):
        require(self, self.missing)

    def go(self, keepalive_mode, env=None):
        """go_peer with Go's keepalive `default` or `off` (KeepAlive: -1)."""
        return Peer(self, [self.go_peer, "-keepalive", keepalive_mode], env=env)

    def inspect_sockets(self, pid):
        """keepalive inspect --json: the whole document, and its sockets by inode."""
        result = keepalive("inspect", str(pid), "--json")
        self.assertEqual(result.returncode, 0, result.stderr)
        doc = parse_json(self, result.stdout)
        return doc, {s["inode"]: s for s in doc["sockets"]}


class GoPreloadTest(GoTestCase):
    def test_run_warns_and_the_program_runs(self):
        go = Peer(self, [COMMAND, "run", "--idle", str(IDLE), "--",
                         self.go_peer, "-keepalive", "off"])
        accepted = go.accept("in")  # it runs and serves
        self.assertEqual(accepted["options"], UNTOUCHED, "the library reached a Go socket")
        self.assertEqual(go.stop(), f"keepalive run: warning: {self.go_peer} {GO_WARNING}\n")

    def test_preloaded_library_does_not_reach_go_connections(self):
        env = clean_env(LD_PRELOAD=PRELOAD, KEEPALIVE_IDLE=str(IDLE))
        # The control: under the same preload, a program using the C
        # library's accept and connect gets the configured settings.
        control = Peer(self, [PYTHON, "-c", C_LIBRARY_PEER], env=env)
        self.assertEqual([control.accept("in")["options"], control.dial("out")["options"]],
                         [CONFIGURED, CONFIGURED])

        go = self.go("off", env=env)
        with open(f"/proc/{go.pid}/maps") as f:
            self.assertIn(os.path.realpath(PRELOAD), f.read(), "the library is not loaded")
        accepted, dialed = go.accept("in"), go.dial("out")
        # From inside: keepalive off, the kernel's defaults.
        self.assertEqual([accepted["options"], dialed["options"]], [UNTOUCHED, UNTOUCHED])
        # From outside: no keepalive timer; inspect reads the same and says why.
        timers = keepalive_timers()
        self.assertEqual([timers[accepted["inode"]], timers[dialed["inode"]]], [False, False])
        doc, sockets = self.inspect_sockets(go.pid)
        self.assertTrue(doc["library"]["loaded"])
        self.assertTrue(doc["configuration"]["valid"])
        self.assertEqual((doc["program"]["path"], doc["program"]["go"]), (self.go_peer, True))
        self.assertEqual(doc["program"]["out_of_reach"], GO_WARNING)
        for socket_ in (accepted, dialed):
            self.assertEqual(sockets[socket_["inode"]]["keepalive"]["enabled"], False)
        text = keepalive("inspect", str(go.pid)).stdout
        self.assertIn(f"Out of the library's reach: {self.go_peer} {GO_WARNING}.\n", text)


class GoApplyTest(GoTestCase):
    def apply_to_go(self, go, sockets, *args, expected):
        """`keepalive apply PID --json --idle IDLE ARGS`: each of `sockets` must
        read (action, idle before, idle after) as `expected`; the report."""
        result = keepalive("apply", str(go.pid), "--json", "--idle", str(IDLE), *args)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        doc = parse_json(self, result.stdout)
        by_inode = {s["inode"]: s for s in doc["sockets"]}
        for socket_ in sockets:
            applied = by_inode[socket_["inode"]]
            self.assertEqual((applied["action"], applied["before"]["idle_s"],
                              applied["after"]["idle_s"]), expected, applied)
        return doc

    def test_apply_sets_go_connections(self):
        go = self.go("off")
        accepted, dialed = go.accept("in"), go.dial("out")
        self.assertEqual([accepted["options"], dialed["options"]], [UNTOUCHED, UNTOUCHED])
        self.assertIsNone(keepalive_timer_seconds(ss_lines()[accepted["inode"]]))

        result = keepalive("apply", str(go.pid), "--json", "--idle", str(IDLE))
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        by_inode = {s["inode"]: s for s in parse_json(self, result.stdout)["sockets"]}
        for socket_ in (accepted, dialed):
            applied = by_inode[socket_["inode"]]
            self.assertEqual((applied["action"], applied["after"]["idle_s"]), ("set", IDLE))
        # From inside the Go program, and from outside: inspect, and ss's
        # timer counting down from 41 s (more than Go's 15 s).
        self.assertEqual([go.options("in"), go.options("out")], [CONFIGURED, CONFIGURED])
        _, sockets = self.inspect_sockets(go.pid)
        for socket_ in (accepted, dialed):
            self.assertEqual(sockets[socket_["inode"]]["keepalive"],
                             {"enabled": True, "idle_s": IDLE, "intvl_s": CONFIGURED[2],
                              "cnt": KERNEL_CNT, "user_timeout_ms": 0})
            seconds = keepalive_timer_seconds(ss_lines()[socket_["inode"]])
            self.assertIsNotNone(seconds, "ss shows no keepalive timer")
            self.assertGreater(seconds, 15)
            self.assertLessEqual(seconds, IDLE)

    def test_follow_sets_new_go_connections(self):
        go = self.go("off")
        follower = Follower(self, go.pid, "--idle", str(IDLE), "--interval", "200ms")
        follower.started()
        # (What they read before the follower's next look is not asserted:
        # it may come first on a loaded machine.)
        accepted, dialed = go.accept("in"), go.dial("out")
        for socket_, direction in ((accepted, "in"), (dialed, "out")):
            event = follower.socket_event(socket_["inode"])
            self.assertEqual((event["action"], event["direction"], event["initial"]),
                             ("set", direction, False), event)
        self.assertEqual([go.options("in"), go.options("out")], [CONFIGURED, CONFIGURED])
        timers = keepalive_timers()
        self.assertEqual([timers[accepted["inode"]], timers[dialed["inode"]]], [True, True])

    def test_listeners_advice(self):
        """What the Go warning says: connections accepted after `apply
        --listeners` inherit the listener's options only where the program
        turned Go's keepalive off; by default Go's runtime sets its own."""
        for mode, expected in (("off", CONFIGURED), ("default", GO_DEFAULT)):
            with self.subTest(mode=mode):
                go = self.go(mode)
                result = keepalive("apply", str(go.pid), "--listeners", "--idle", str(IDLE))
                self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
                self.assertIn(f"Listening socket 127.0.0.1:{go.port} is set", result.stdout)
                self.assertEqual(go.accept("after")["options"], expected)

    def test_override_replaces_go_default_keepalive(self):
        go = self.go("default")
        accepted, dialed = go.accept("in"), go.dial("out")
        self.assertEqual([accepted["options"], dialed["options"]], [GO_DEFAULT, GO_DEFAULT])
        doc = self.apply_to_go(go, (accepted, dialed), "--override",
                               expected=("overridden", 15, IDLE))
        self.assertEqual((doc["summary"]["set"], doc["summary"]["left"]), (2, 0), doc["summary"])
        self.assertEqual([go.options("in"), go.options("out")], [CONFIGURED, CONFIGURED])
        seconds = keepalive_timer_seconds(ss_lines()[accepted["inode"]])
        self.assertIsNotNone(seconds, "ss shows no keepalive timer")
        self.assertGreater(seconds, 15)
        # Once ours, a second run sees our values, not the program's.
        again = parse_json(self, keepalive("apply", str(go.pid), "--json", "--override",
                                           "--idle", str(IDLE)).stdout)
        self.assertEqual({s["inode"]: s["action"] for s in again["sockets"]
                          if s["inode"] in (accepted["inode"], dialed["inode"])},
                         {accepted["inode"]: "set", dialed["inode"]: "set"})

    def test_follow_override_replaces_go_default_keepalive_of_new_connections(self):
        go = self.go("default")
        follower = Follower(self, go.pid, "--override", "--idle", str(IDLE), "--interval",
                            "200ms")
        follower.started()
        accepted, dialed = go.accept("in"), go.dial("out")
        for socket_, direction in ((accepted, "in"), (dialed, "out")):
            event = follower.socket_event(socket_["inode"])
            self.assertEqual((event["action"], event["direction"], event["before"]["idle_s"]),
                             ("overridden", direction, 15), event)
        self.assertEqual([go.options("in"), go.options("out")], [CONFIGURED, CONFIGURED])

    def test_go_default_keepalive_is_left_as_the_programs_own(self):
        go = self.go("default")
        accepted, dialed = go.accept("in"), go.dial("out")
        # What Go's runtime set, read from inside.
        self.assertEqual([accepted["options"], dialed["options"]], [GO_DEFAULT, GO_DEFAULT])

        doc = self.apply_to_go(go, (accepted, dialed), expected=("own_timings", 15, 15))
        self.assertEqual((doc["summary"]["set"], doc["summary"]["left"]), (0, 2), doc["summary"])
        text = keepalive("apply", str(go.pid), "--idle", str(IDLE)).stdout
        self.assertIn("0 sockets set, 2 left alone", text)
        self.assertIn(f"idle=15s intvl=15s cnt={KERNEL_CNT} user_timeout=kernel (timings chosen "
                      "by the program, or set earlier: left alone)", text)

        self.assertEqual([go.options("in"), go.options("out")], [GO_DEFAULT, GO_DEFAULT])
        _, sockets = self.inspect_sockets(go.pid)
        for socket_ in (accepted, dialed):
            self.assertEqual(sockets[socket_["inode"]]["keepalive"]["idle_s"], 15)
            seconds = keepalive_timer_seconds(ss_lines()[socket_["inode"]])
            self.assertIsNotNone(seconds, "ss shows no keepalive timer")
            self.assertLessEqual(seconds, 15)


if __name__ == "__main__":
    main()
