#!/usr/bin/env python3
"""follow_test.py - integration tests of `keepalive apply --follow PID`: a
plain server process, not preloaded, opens and accepts connections while
`keepalive apply --follow --json` watches it; what the follower reports (one
JSON object per line) is checked against what the server reads from inside
(its own getsockopt) and what `ss -tnoe` shows from outside.

Run by CTest (tests/tools/CMakeLists.txt), one test class per CTest test:
    follow_test.py FollowTest|FollowEndsTest
Environment: as apply_test.py, whose helpers it uses.
"""

import json
import os
import queue
import shlex
import shutil
import signal
import socket
import subprocess
import textwrap
import threading
import time
import unittest

from apply_test import NOBODY, SETSOCKOPT_FAULT, as_nobody, keepalive_timers
from command_testlib import (COMMAND, KERNEL_IDLE, PYTHON, TIMEOUT, JsonLineServer, clean_env,
                             copy_of_command, keepalive, main, parse_json, require, require_root)
from server_script import LISTENER_SETUP

SOURCE_DIR = os.environ["LIBKEEPALIVE_TEST_SOURCE_DIR"]

# Generous: the machine running the tests may be loaded. The tests use short
# intervals; what they wait for must happen within a few of them.
WAIT = 10

# The followed server: a plain Python process with one listener on
# 127.0.0.1. One command a line on stdin, each answered by one JSON line:
#   report                  nothing else
#   accept NAME             accept one connection (the test connected first)
#   connect NAME PORT       open a connection to 127.0.0.1:PORT
#   connect6 NAME PORT      open a connection to [::1]:PORT
#   socket NAME             create a TCP socket, not connected yet
#   connect_socket NAME PORT  connect that socket to 127.0.0.1:PORT
#   close NAME              close a connection
#   listener_idle S         set TCP_KEEPIDLE on the listener (accepted sockets inherit it)
#   listen NAME             open a second listener on 127.0.0.1
#   accept_on NAME LISTENER accept one connection on that listener
#   pairs N                 N connections to its own listener, both ends kept
#   brief                   one connection to its own listener, closed at once
# The answer: pid, port, each named socket's fd, inode, local port and options
# [SO_KEEPALIVE, TCP_KEEPIDLE], and how many of the pairs' sockets read each
# [SO_KEEPALIVE, TCP_KEEPIDLE].
SERVER = LISTENER_SETUP + textwrap.dedent("""
    import collections
    port = listener.getsockname()[1]
    sockets, bulk = {}, []

    def options(s):
        return [s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE)]

    def report():
        counts = collections.Counter(json.dumps(options(s)) for s in bulk)
        print(json.dumps({"pid": os.getpid(), "port": port,
                          "sockets": {n: {"fd": s.fileno(), "inode": os.fstat(s.fileno()).st_ino,
                                          "port": s.getsockname()[1], "options": options(s)}
                                      for n, s in sockets.items()},
                          "bulk": counts}), flush=True)

    report()
    for line in sys.stdin:
        words = line.split()
        if words[0] == "accept":
            sockets[words[1]], _ = listener.accept()
        elif words[0] == "connect":
            sockets[words[1]] = socket.create_connection(("127.0.0.1", int(words[2])))
        elif words[0] == "connect6":
            sockets[words[1]] = socket.create_connection(("::1", int(words[2])))
        elif words[0] == "socket":
            sockets[words[1]] = socket.socket()
        elif words[0] == "connect_socket":
            sockets[words[1]].connect(("127.0.0.1", int(words[2])))
        elif words[0] == "close":
            sockets.pop(words[1]).close()
        elif words[0] == "listener_idle":
            listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, int(words[1]))
        elif words[0] == "listen":
            sockets[words[1]] = socket.create_server(("127.0.0.1", 0))
        elif words[0] == "accept_on":
            sockets[words[1]], _ = sockets[words[2]].accept()
        elif words[0] == "pairs":
            for _ in range(int(words[1])):
                bulk.append(socket.create_connection(("127.0.0.1", port)))
                bulk.append(listener.accept()[0])
        elif words[0] == "brief":
            client = socket.create_connection(("127.0.0.1", port))
            accepted, _ = listener.accept()
            client.close()
            accepted.close()
        report()
""")


class Server(JsonLineServer):
    """The followed process, and the test's ends of its connections."""

    def __init__(self, test, prefix=()):
        super().__init__(test, [*prefix, PYTHON, "-c", SERVER])
        self.pid = self.state["pid"]

    def stop(self):
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=TIMEOUT)
        self.process.stdout.close()
        for peer in self.peers:
            peer.close()

    def accept(self, name):
        """A connection from the test accepted by the server as `name`."""
        self.peers.append(socket.create_connection(("127.0.0.1", self.state["port"]),
                                                   timeout=TIMEOUT))
        return self.command(f"accept {name}")["sockets"][name]

    def connect(self, name):
        """A connection the server opens to a listener of the test, as `name`."""
        listener = socket.create_server(("127.0.0.1", 0))
        self.peers.append(listener)
        socket_ = self.command(f"connect {name} {listener.getsockname()[1]}")["sockets"][name]
        self.peers.append(listener.accept()[0])
        return socket_

    def options(self, name):
        return self.command("report")["sockets"][name]["options"]


class Follower:
    """`keepalive apply PID --follow --json ARGS`, its JSON lines read as they come."""

    def __init__(self, test, pid, *args, prefix=(), command=COMMAND, env=None):
        self.test = test
        self.process = subprocess.Popen(
            [*prefix, command, "apply", str(pid), "--follow", "--json", *args],
            env=clean_env() if env is None else env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        self.events = queue.Queue()
        self.seen = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        test.addCleanup(self.stop)

    def _read(self):
        for line in self.process.stdout:
            self.events.put(json.loads(line))
        self.events.put(None)

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=TIMEOUT)
        self.reader.join(timeout=TIMEOUT)
        self.process.stdout.close()
        self.process.stderr.close()

    def wait_for(self, predicate, what, timeout=WAIT):
        """The first event (from the start) for which predicate is true."""
        for event in self.seen:
            if predicate(event):
                return event
        deadline = time.monotonic() + timeout
        while True:
            try:
                event = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.test.fail(f"no {what} within {timeout}s; events: {self.seen}")
            if event is None:
                self.test.fail(f"the follower ended before {what}: {self.seen}; "
                               f"stderr: {self.process.stderr.read()}")
            self.seen.append(event)
            if predicate(event):
                return event

    def socket_event(self, inode):
        return self.wait_for(lambda e: e["event"] == "socket" and e["inode"] == inode,
                             f"socket event for inode {inode}")

    def started(self):
        return self.wait_for(lambda e: e["event"] == "start", "start event")

    def end(self):
        """The end event and the exit status, once the follower has ended."""
        event = self.wait_for(lambda e: e["event"] == "end", "end event")
        return event, self.process.wait(timeout=TIMEOUT)


class FollowTest(unittest.TestCase):
    def test_new_connections_are_set_within_the_interval(self):
        server = Server(self)
        before = server.accept("before")
        follower = Follower(self, server.pid, "--idle", "41", "--interval", "200ms")
        follower.started()
        initial = follower.socket_event(before["inode"])
        self.assertTrue(initial["initial"])
        self.assertEqual((initial["action"], initial["direction"]), ("set", "in"))

        incoming = server.accept("in")
        outgoing = server.connect("out")
        for socket_, direction in ((incoming, "in"), (outgoing, "out")):
            event = follower.socket_event(socket_["inode"])
            self.assertEqual((event["fd"], event["action"], event["direction"], event["initial"]),
                             (socket_["fd"], "set", direction, False), event)
            self.assertEqual(event["after"]["idle_s"], 41)
        for name in ("before", "in", "out"):
            self.assertEqual(server.options(name), [1, 41], name)
        timers = keepalive_timers()
        self.assertTrue(all(timers[server.state["sockets"][n]["inode"]]
                            for n in ("before", "in", "out")), "ss shows no keepalive timer")
        # The listener is not set without --listeners, and said so once.
        listener_events = [e for e in follower.seen
                           if e["event"] == "socket" and e["direction"] == "listen"]
        self.assertEqual([e["action"] for e in listener_events], ["listener_not_set"])

    def test_connection_closed_between_ticks_is_not_an_error(self):
        server = Server(self)
        follower = Follower(self, server.pid, "--idle", "42", "--interval", "300ms")
        follower.started()
        for _ in range(20):
            server.command("brief")
        late = server.accept("late")
        event = follower.socket_event(late["inode"])
        self.assertEqual(event["action"], "set")
        # The brief ones are either never seen or reported gone; none failed.
        actions = {e["action"] for e in follower.seen if e["event"] == "socket"}
        self.assertLessEqual(actions, {"set", "gone", "listener_not_set"}, follower.seen)
        self.assertEqual(follower.process.poll(), None, "the follower ended")

    def test_a_reused_descriptor_is_a_new_connection(self):
        server = Server(self)
        first = server.accept("first")
        follower = Follower(self, server.pid, "--idle", "43", "--interval", "200ms")
        follower.started()
        follower.socket_event(first["inode"])
        server.command("close first")
        second = server.accept("second")
        self.assertEqual(second["fd"], first["fd"], "the descriptor number was not reused")
        self.assertNotEqual(second["inode"], first["inode"])
        event = follower.socket_event(second["inode"])
        self.assertEqual((event["fd"], event["action"]), (first["fd"], "set"))
        self.assertEqual(server.options("second"), [1, 43])

    def test_ipv6_connection(self):
        server = Server(self)
        follower = Follower(self, server.pid, "--idle", "50", "--interval", "200ms")
        follower.started()
        try:
            listener = socket.create_server(("::1", 0), family=socket.AF_INET6)
        except OSError as e:
            require(self, f"no IPv6 loopback here: {e}")
        self.addCleanup(listener.close)
        outgoing = server.command(f"connect6 out6 {listener.getsockname()[1]}")["sockets"]["out6"]
        self.addCleanup(listener.accept()[0].close)
        event = follower.socket_event(outgoing["inode"])
        self.assertEqual((event["family"], event["action"], event["direction"]),
                         ("ipv6", "set", "out"), event)
        self.assertRegex(event["peer"], r"^\[::1\]:\d+$")
        self.assertEqual(server.options("out6"), [1, 50])

    def test_socket_created_before_and_connected_while_followed(self):
        server = Server(self)
        unconnected = server.command("socket early")["sockets"]["early"]
        follower = Follower(self, server.pid, "--idle", "47", "--interval", "200ms")
        follower.started()
        self.assertEqual(follower.socket_event(unconnected["inode"])["action"], "not_established")
        listener = socket.create_server(("127.0.0.1", 0))
        self.addCleanup(listener.close)
        server.command(f"connect_socket early {listener.getsockname()[1]}")
        self.addCleanup(listener.accept()[0].close)
        event = follower.wait_for(
            lambda e: e["event"] == "socket" and e["inode"] == unconnected["inode"]
            and not e["initial"], "the connected socket's event")
        self.assertEqual((event["action"], event["direction"]), ("set", "out"))
        self.assertEqual(server.options("early"), [1, 47])

    def test_listener_opened_while_followed_accepts_incoming_connections(self):
        server = Server(self)
        follower = Follower(self, server.pid, "--idle", "48", "--interval", "200ms")
        follower.started()
        late = server.command("listen late")["sockets"]["late"]
        event = follower.socket_event(late["inode"])
        self.assertEqual((event["direction"], event["action"]), ("listen", "listener_not_set"),
                         event)
        server.peers.append(socket.create_connection(("127.0.0.1", late["port"]),
                                                     timeout=TIMEOUT))
        accepted = server.command("accept_on accepted late")["sockets"]["accepted"]
        event = follower.socket_event(accepted["inode"])
        self.assertEqual((event["direction"], event["action"]), ("in", "set"), event)
        self.assertEqual(server.options("accepted"), [1, 48])

    def test_timings_the_program_chose_are_left(self):
        server = Server(self)
        follower = Follower(self, server.pid, "--idle", "44", "--interval", "200ms")
        follower.started()
        server.command("listener_idle 33")  # accepted sockets inherit 33 s
        chosen = server.accept("chosen")
        event = follower.socket_event(chosen["inode"])
        self.assertEqual(event["action"], "own_timings", event)
        self.assertEqual(server.options("chosen"), [0, 33])

    def test_apply_and_follow_report_a_socket_alike(self):
        """The same sockets, decided by apply and by --follow's first pass: the
        same JSON for each (--follow adds only its event's own fields), and
        totals that count every socket once."""
        server = Server(self)
        server.accept("plain")
        server.connect("out")
        server.command("listener_idle 33")  # accepted from now on: timings chosen
        server.accept("chosen")
        server.command("socket unconnected")
        args = ("--dry-run", "--idle", "44")
        result = keepalive("apply", str(server.pid), *args, "--json", "--full")
        self.assertEqual(result.returncode, 0, result.stderr)
        applied = json.loads(result.stdout)
        follower = Follower(self, server.pid, *args, "--interval", "200ms")
        totals = follower.wait_for(lambda e: e["event"] == "applied", "applied event")
        followed = {e["inode"]: {k: v for k, v in e.items()
                                 if k not in ("event", "time", "initial")}
                    for e in follower.seen if e["event"] == "socket"}
        by_inode = {s["inode"]: s for s in applied["sockets"]}
        self.assertEqual(followed, by_inode)
        self.assertEqual({s["action"] for s in by_inode.values()},
                         {"would_set", "own_timings", "listener_not_set", "not_established"})
        counts = {k: totals[k] for k in ("sockets", "would_set", "left", "skipped", "gone",
                                         "failed")}
        self.assertEqual(counts, {k: v for k, v in applied["summary"].items()
                                  if k != "unexamined"})
        self.assertEqual(counts["sockets"], len(by_inode))
        self.assertEqual(counts["sockets"], sum(v for k, v in counts.items() if k != "sockets"))

    def test_thousands_of_connections(self):
        server = Server(self)
        server.command("pairs 1000")  # 2000 sockets before the follower starts
        follower = Follower(self, server.pid, "--idle", "45", "--interval", "500ms")
        follower.started()
        server.command("pairs 1000")  # and 2000 while it follows
        deadline = time.monotonic() + 4 * WAIT
        while time.monotonic() < deadline:
            counts = server.command("report")["bulk"]
            if counts.get(json.dumps([1, 45])) == 4000:
                break
            time.sleep(0.5)
        self.assertEqual(counts, {json.dumps([1, 45]): 4000})
        os.kill(follower.process.pid, signal.SIGTERM)
        end, status = follower.end()
        self.assertEqual(status, 0)
        # Each socket once: 4000 connections and the listener.
        self.assertEqual((end["sockets"], end["set"], end["failed"]), (4001, 4000, 0), end)

    def test_verbose_one_line_per_connection(self):
        server = Server(self)
        follower = subprocess.Popen(
            [COMMAND, "apply", str(server.pid), "--follow", "--verbose", "--idle", "46",
             "--interval", "100ms"], env=clean_env(), stdout=subprocess.PIPE, text=True)
        self.addCleanup(follower.stdout.close)
        first = follower.stdout.readline()
        self.assertTrue(first.startswith(f"Following process {server.pid} (python"), first)
        self.assertIn("every 100ms", first)
        incoming = server.accept("in")
        deadline = time.monotonic() + WAIT
        lines = []
        while time.monotonic() < deadline and not any(" in " in l for l in lines):
            lines.append(follower.stdout.readline())
        follower.terminate()
        self.assertEqual(follower.wait(timeout=TIMEOUT), 0)
        line = next(l for l in lines if " in " in l)
        self.assertRegex(line, rf"^\d\d:\d\d:\d\d fd {incoming['fd']} in 127\.0\.0\.1:"
                               rf"{server.state['port']} <-> 127\.0\.0\.1:\d+: set, rule global: "
                               r"off -> idle=46s ")
        rest = follower.stdout.read()
        self.assertIn("Stopped following process", rest)
        self.assertIn("(SIGTERM)", rest)


class NamespaceTest(unittest.TestCase):
    """apply and --follow from this namespace into a process in a network
    namespace of its own whose tcp_keepalive_time is not this one's: a socket
    that reads that namespace's default has not chosen its timings, also
    after the sysctl changes there while it is followed."""

    def setUp(self):
        require_root(self, "to make a network namespace")
        self.namespace = f"ka-cmd-{os.getpid()}"
        subprocess.run(["ip", "netns", "add", self.namespace], check=True, timeout=TIMEOUT)
        self.addCleanup(subprocess.run, ["ip", "netns", "del", self.namespace], timeout=TIMEOUT)
        subprocess.run(["ip", "-n", self.namespace, "link", "set", "lo", "up"], check=True,
                       timeout=TIMEOUT)
        self.sysctl(600)
        self.assertNotEqual(KERNEL_IDLE, 600, "this namespace's default must differ")

    def sysctl(self, idle_s):
        subprocess.run(["ip", "netns", "exec", self.namespace, "sysctl", "-q",
                        f"net.ipv4.tcp_keepalive_time={idle_s}"], check=True, timeout=TIMEOUT)

    def server(self):
        server = Server(self, prefix=("ip", "netns", "exec", self.namespace))
        server.command("pairs 2")  # both ends of two connections, in that namespace
        self.assertEqual(server.command("report")["bulk"], {"[0, 600]": 4})
        return server

    def test_apply_sets_the_sockets_of_another_namespace(self):
        server = self.server()
        result = keepalive("apply", str(server.pid), "--idle", "270", "--listeners", "--json")
        self.assertEqual(result.returncode, 0, result.stderr)
        doc = parse_json(self, result.stdout)
        self.assertEqual([s["action"] for s in doc["sockets"]], ["set"] * 5, doc["sockets"])
        self.assertEqual({s["before"]["idle_s"] for s in doc["sockets"]}, {600})
        self.assertEqual(server.command("report")["bulk"], {"[1, 270]": 4})
        # A later connection inherits from the listener, in that namespace too.
        server.command("pairs 1")
        self.assertEqual(server.command("report")["bulk"], {"[1, 270]": 5, "[0, 600]": 1})

    def test_follow_sets_new_connections_after_the_sysctl_changed(self):
        server = self.server()
        follower = Follower(self, server.pid, "--idle", "270", "--interval", "200ms")
        self.assertEqual(follower.started()["kernel_idle_s"], 600)
        # Past the second in which the defaults read at the start stay trusted.
        time.sleep(1.2)
        self.sysctl(900)
        server.command("pairs 1")

        def new_sockets():
            return [e for e in follower.seen if e["event"] == "socket" and not e["initial"]]

        follower.wait_for(lambda _: len(new_sockets()) == 2, "the events of the new pair")
        new = new_sockets()
        self.assertEqual([(e["action"], e["before"]["idle_s"]) for e in new],
                         [("set", 900), ("set", 900)], new)
        self.assertEqual(server.command("report")["bulk"], {"[1, 270]": 6})


class FollowLimitTest(unittest.TestCase):
    def test_how_short_a_connection_may_live_and_be_missed(self):
        """The honest limit: a connection that opens and closes between two
        ticks is never seen. Prints the share seen by lifetime at 500 ms;
        asserts only that one living six intervals is always seen (three
        were missed once on a machine loaded far beyond its cores, where
        the follower's own ticks came late)."""
        server = Server(self)
        follower = Follower(self, server.pid, "--idle", "48", "--interval", "500ms")
        follower.started()
        print(f"\nfollow --interval 500ms: connections seen by lifetime")
        for lifetime, count in ((0.02, 8), (0.1, 8), (0.3, 8), (1.5, 3), (3.0, 3)):
            inodes = []
            for i in range(count):
                inodes.append(server.accept(f"c{i}")["inode"])
                time.sleep(lifetime)
                server.command(f"close c{i}")
            time.sleep(1.0)  # the next ticks report what they saw
            seen = sum(1 for inode in inodes for e in follower.seen + list(follower.events.queue)
                       if e and e["event"] == "socket" and e["inode"] == inode)
            print(f"  lived {lifetime * 1000:5.0f} ms: {seen} of {count} seen and set")
            if lifetime >= 3.0:
                self.assertEqual(seen, count, "a connection living 6 intervals was missed")


class FollowEndsTest(unittest.TestCase):
    def test_process_exit_ends_with_0(self):
        server = Server(self)
        follower = Follower(self, server.pid, "--interval", "200ms")
        follower.started()
        server.stop()
        end, status = follower.end()
        self.assertEqual((status, end["reason"]), (0, "process exited"))

    def test_sigint_and_sigterm_end_with_0(self):
        for signal_number, reason in ((signal.SIGINT, "SIGINT"), (signal.SIGTERM, "SIGTERM")):
            server = Server(self)
            follower = Follower(self, server.pid, "--interval", "5s")
            follower.started()
            follower.process.send_signal(signal_number)
            end, status = follower.end()
            self.assertEqual((status, end["reason"]), (0, reason))
            self.assertEqual(follower.process.stderr.read(), "")

    def test_socket_diagnostics_interrupted_are_read_again_and_failed_end_the_run(self):
        server = Server(self)
        conn = server.accept("conn")
        follower = Follower(self, server.pid, "--idle", "49", "--interval", "100ms",
                            env=clean_env(LD_PRELOAD=SETSOCKOPT_FAULT,
                                          LIBKEEPALIVE_TEST_FAULT_NETLINK_EINTR="3"))
        follower.started()
        self.assertEqual(follower.socket_event(conn["inode"])["action"], "set")
        later = server.accept("later")
        self.assertEqual(follower.socket_event(later["inode"])["action"], "set")
        self.assertEqual(server.options("later"), [1, 49])

        result = keepalive("apply", str(server.pid), "--follow", "--idle", "50",
                           env=clean_env(LD_PRELOAD=SETSOCKOPT_FAULT,
                                         LIBKEEPALIVE_TEST_FAULT_NETLINK_ENOBUFS="1"))
        self.assertEqual(result.returncode, 3, result.stdout + result.stderr)
        self.assertIn("keepalive apply: socket diagnostics: reading the answer failed: "
                      "No buffer space available", result.stderr)
        self.assertEqual(server.options("later"), [1, 49])
        # An answer that ends before its end marker is a failure too, not a
        # read to repeat.
        result = keepalive("apply", str(server.pid), "--follow", "--idle", "50",
                           env=clean_env(LD_PRELOAD=SETSOCKOPT_FAULT,
                                         LIBKEEPALIVE_TEST_FAULT_NETLINK_EOF="1"))
        self.assertEqual(result.returncode, 3, result.stdout + result.stderr)
        self.assertIn("keepalive apply: socket diagnostics: the answer ended early", result.stderr)
        # A dump the kernel refuses (an error message instead of sockets) ends
        # the run too, at once: no read waits for an answer that never comes.
        result = keepalive("apply", str(server.pid), "--follow", "--idle", "50",
                           env=clean_env(LD_PRELOAD=SETSOCKOPT_FAULT,
                                         LIBKEEPALIVE_TEST_FAULT_NETLINK_REFUSED="1"))
        self.assertEqual(result.returncode, 3, result.stdout + result.stderr)
        self.assertIn("socket diagnostics refused the dump: Operation not permitted",
                      result.stderr)

    def test_permission_denied_as_apply(self):
        require_root(self, "to start a root-owned server and drop to nobody")
        server = Server(self)
        server.accept("conn")
        # The command as nobody: a copy nobody can run (the build tree may be private).
        command = copy_of_command(self)
        result = keepalive("apply", str(server.pid), "--follow", "--idle", "30",
                           prefix=as_nobody(), command=command)
        self.assertEqual(result.returncode, 3, result.stdout + result.stderr)
        self.assertEqual(result.stdout, "")
        self.assertIn(f"keepalive apply: permission denied: reading the descriptors of process "
                      f"{server.pid} needs ptrace access to it: it runs as root (uid 0) and you "
                      f"are nobody (uid {NOBODY})", result.stderr)
        self.assertEqual(server.options("conn"), [0, KERNEL_IDLE])

    def test_cap_sys_ptrace_alone_is_enough(self):
        """What keepalive-follow@.service grants, CAP_SYS_PTRACE and nothing
        else: to a user of its own (DynamicUser=) following root's process,
        and to root following nobody's (whose /proc/PID/fd it cannot read)."""
        require_root(self, "to drop to CAP_SYS_PTRACE alone")
        command = copy_of_command(self)
        only_ptrace = ("--bounding-set=-all,+sys_ptrace", "--inh-caps=-all")
        dynamic_user = ("--reuid=61999", "--regid=61999", "--clear-groups",
                        "--bounding-set=-all,+sys_ptrace", "--inh-caps=+sys_ptrace",
                        "--ambient-caps=+sys_ptrace")
        for server_prefix, follower_options in (((), dynamic_user),
                                                (as_nobody(), only_ptrace)):
            with self.subTest(follower=follower_options[0]):
                server = Server(self, prefix=server_prefix)
                before = server.accept("before")
                follower = Follower(self, server.pid, "--idle", "49", "--interval", "200ms",
                                    prefix=("setpriv", *follower_options), command=command)
                self.assertEqual(follower.socket_event(before["inode"])["action"], "set")
                later = server.accept("later")
                self.assertEqual(follower.socket_event(later["inode"])["action"], "set")
                self.assertEqual(server.options("later"), [1, 49])

    def test_usage_errors_exit_2(self):
        for args, message in ((["--interval", "1s"], "--interval and --verbose go with --follow"),
                              (["--verbose"], "--interval and --verbose go with --follow"),
                              (["--follow", "--interval", "5ms"], "--interval must be"),
                              (["--follow", "--interval"],
                               "--interval needs a value: --interval DURATION")):
            result = keepalive("apply", "1", *args)
            self.assertEqual(result.returncode, 2, (args, result.stderr))
            self.assertIn(message, result.stderr)


class FollowExamplesTest(unittest.TestCase):
    """examples/systemd/keepalive-follow@.service and the container sidecar
    stay valid: CAP_SYS_PTRACE and nothing else, a command line apply
    accepts, a configuration `keepalive check` accepts."""

    def unit(self):
        path = os.path.join(SOURCE_DIR, "examples", "systemd", "keepalive-follow@.service")
        settings = {}
        with open(path) as f:
            for line in f:
                if "=" in line and not line.startswith(("#", "[")):
                    key, _, value = line.rstrip("\n").partition("=")
                    settings.setdefault(key, []).append(value)
        return path, settings

    def test_unit_grants_cap_sys_ptrace_only(self):
        _, unit = self.unit()
        self.assertEqual(unit["CapabilityBoundingSet"], ["CAP_SYS_PTRACE"])
        self.assertEqual(unit["AmbientCapabilities"], ["CAP_SYS_PTRACE"])
        self.assertEqual(unit["DynamicUser"], ["yes"])

    def test_unit_command_and_configuration(self):
        _, unit = self.unit()
        [exec_start] = unit["ExecStart"]
        shell = shlex.split(exec_start)
        self.assertEqual(shell[:2], ["/bin/sh", "-c"])
        words = shlex.split(shell[2].replace("$$", "$"))
        self.assertEqual(words[:3], ["exec", "keepalive", "apply"])
        self.assertIn("MainPID", words[3])
        # The rest of the command line, given to the built command with a PID
        # that cannot exist: only "no such process" may be wrong with it.
        result = keepalive("apply", "2147483647", *words[4:])
        self.assertEqual(result.returncode, 3, result.stderr)
        self.assertIn("no such process", result.stderr)
        variables = dict(v.split("=", 1) for v in unit["Environment"])
        result = keepalive("check", env=clean_env(**variables))
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_unit_verifies(self):
        if shutil.which("systemd-analyze") is None:
            require(self, "systemd-analyze not found (apt-get install systemd)")
        path, _ = self.unit()
        result = subprocess.run(["systemd-analyze", "verify", "--man=no", path],
                                capture_output=True, text=True, timeout=TIMEOUT)
        self.assertEqual((result.returncode, result.stdout + result.stderr), (0, ""))

    def test_sidecar_command(self):
        path = os.path.join(SOURCE_DIR, "examples", "container", "follow-sidecar.yaml")
        with open(path) as f:
            text = f.read()
        self.assertRegex(text, r"cap_drop:\n\s+- ALL\n\s+cap_add:\n\s+- SYS_PTRACE\s")
        command = json.loads(text.split("command: ", 1)[1].splitlines()[0])
        self.assertEqual(command[:3], ["/usr/local/bin/keepalive", "apply", "1"])
        result = keepalive("apply", "2147483647", *command[3:])
        self.assertEqual(result.returncode, 3, result.stderr)
        self.assertIn("no such process", result.stderr)

if __name__ == "__main__":
    main()
