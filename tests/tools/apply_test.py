#!/usr/bin/env python3
"""apply_test.py - integration tests of `keepalive apply PID`: a
plain server process, not preloaded, holds idle connections; `keepalive
apply` is run against it as an administrator would, and the result is read
back from inside the server (its own getsockopt) and from outside (`ss -tnoe`
shows `timer:(keepalive,...)` on a socket with keepalive on).

Run by CTest (tests/tools/CMakeLists.txt), one test class per CTest test:
    apply_test.py ApplyTest|ApplyErrorsTest
Environment: LIBKEEPALIVE_COMMAND (the built bin/keepalive),
LIBKEEPALIVE_TEST_SETSOCKOPT_FAULT (a library preloaded into the command to make
one socket fail) and LIBKEEPALIVE_TEST_WITHOUT_SYSCALL (runs a command as on a
kernel without one system call).
"""

import json
import os
import re
import shutil
import socket
import subprocess
import textwrap
import unittest

from command_testlib import (KERNEL_CNT, KERNEL_IDLE, KERNEL_INTVL, PYTHON, TIMEOUT,
                             JsonLineServer, clean_env, copy_of_command, keepalive, main,
                             parse_json, require_root)

SETSOCKOPT_FAULT = os.environ["LIBKEEPALIVE_TEST_SETSOCKOPT_FAULT"]
WITHOUT_SYSCALL = os.environ["LIBKEEPALIVE_TEST_WITHOUT_SYSCALL"]
NOBODY = 65534


# What a socket nobody configured reads: [SO_KEEPALIVE, IDLE, INTVL, CNT, USER_TIMEOUT].
UNTOUCHED = [0, KERNEL_IDLE, KERNEL_INTVL, KERNEL_CNT, 0]


def ss_lines():
    """{inode: its `ss -tnoe` line} for every TCP connection."""
    out = subprocess.run(["ss", "-tnoe"], capture_output=True, text=True, check=True,
                         timeout=TIMEOUT).stdout
    lines = {}
    for line in out.splitlines():
        match = re.search(r"\bino:(\d+)\b", line)
        if match:
            lines[int(match.group(1))] = line
    return lines


def keepalive_timers():
    """{inode: True when ss shows a keepalive timer} for every TCP connection."""
    return {inode: "timer:(keepalive," in line for inode, line in ss_lines().items()}


def as_nobody():
    """The prefix that runs a command as nobody, with no supplementary groups."""
    return ("setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups")


# The server: a plain Python process (no LD_PRELOAD) with two listeners on
# 127.0.0.1, a UDP and a Unix socket. It obeys one command a line on stdin
# and answers each with one JSON line describing every socket it holds:
#   report                     nothing else
#   accept NAME LISTENER       accept one connection on listener a or b
#   connect NAME PORT          open a connection to 127.0.0.1:PORT
#   dup NAME NEWNAME           a second descriptor for the same socket
#   send NAME TEXT             send TEXT on a connection
#   setopt NAME IDLE INTVL CNT SO_KEEPALIVE on and the program's own timings
HOLDER = textwrap.dedent("""
    import json, os, socket, sys
    TCP_OPTIONS = (socket.TCP_KEEPIDLE, socket.TCP_KEEPINTVL, socket.TCP_KEEPCNT,
                   socket.TCP_USER_TIMEOUT)
    sockets = {}
    for name in ("a", "b"):
        sockets[name] = socket.socket()
        sockets[name].bind(("127.0.0.1", 0))
        sockets[name].listen(8)
    sockets["udp"] = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sockets["unix"], unix_peer = socket.socketpair()

    def describe(s):
        options = [s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)]
        info = {"fd": s.fileno(), "inode": os.fstat(s.fileno()).st_ino}
        if s.family == socket.AF_INET and s.type == socket.SOCK_STREAM:
            options += [s.getsockopt(socket.IPPROTO_TCP, o) for o in TCP_OPTIONS]
            info["local"] = "%s:%d" % s.getsockname()
        info["options"] = options
        return info

    def report():
        print(json.dumps({"pid": os.getpid(),
                          "sockets": {n: describe(s) for n, s in sockets.items()}}), flush=True)

    report()
    for line in sys.stdin:
        words = line.split()
        if words[0] == "accept":
            sockets[words[1]], _ = sockets[words[2]].accept()
        elif words[0] == "connect":
            sockets[words[1]] = socket.create_connection(("127.0.0.1", int(words[2])))
        elif words[0] == "dup":
            sockets[words[2]] = sockets[words[1]].dup()
        elif words[0] == "send":
            sockets[words[1]].sendall(words[2].encode())
        elif words[0] == "setopt":
            sockets[words[1]].setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            for option, value in zip(TCP_OPTIONS, words[2:]):
                sockets[words[1]].setsockopt(socket.IPPROTO_TCP, option, int(value))
        report()
""")


# A server that accepts, when told how many, the connections waiting in its
# listener's queue one by one, 0.5 ms apart, keeps them, says so
# ({"accepted": n}), and on EOF of stdin prints whether each has
# SO_KEEPALIVE on ([0|1, ...]).
SLOW_ACCEPTER = textwrap.dedent("""
    import json, socket, sys, time
    listener = socket.create_server(("127.0.0.1", 0), backlog=512)
    print(json.dumps({"port": listener.getsockname()[1]}), flush=True)
    count = int(sys.stdin.readline())
    accepted = []
    for _ in range(count):
        accepted.append(listener.accept()[0])
        time.sleep(0.0005)
    print(json.dumps({"accepted": len(accepted)}), flush=True)
    sys.stdin.read()
    print(json.dumps([c.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) for c in accepted]),
          flush=True)
""")


def slow_accepter(test, count):
    """A SLOW_ACCEPTER with `count` connections from the test waiting in its
    accept queue, just told to accept them: (process, its port)."""
    server = subprocess.Popen([PYTHON, "-c", SLOW_ACCEPTER], env=clean_env(),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    test.addCleanup(server.wait, TIMEOUT)
    port = json.loads(server.stdout.readline())["port"]
    for _ in range(count):
        client = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        test.addCleanup(client.close)
    server.stdin.write(f"{count}\n")
    server.stdin.flush()
    return server


class Holder(JsonLineServer):
    """The server process, and the test's ends of its connections."""

    def __init__(self, test, prefix=()):
        super().__init__(test, [*prefix, PYTHON, "-c", HOLDER])
        self.pid = self.state["pid"]

    def stop(self):
        for peer in self.peers:
            peer.close()
        self.process.stdin.close()
        self.process.wait(timeout=TIMEOUT)
        self.process.stdout.close()

    def port(self, listener):
        return int(self.state["sockets"][listener]["local"].rsplit(":", 1)[1])

    def accept(self, name, listener, source="127.0.0.1"):
        """A connection from the test (bound to `source`) accepted by the server as `name`."""
        client = socket.create_connection(("127.0.0.1", self.port(listener)),
                                          source_address=(source, 0), timeout=TIMEOUT)
        self.peers.append(client)
        self.command(f"accept {name} {listener}")
        return client

    def connect(self, name):
        """A connection the server opens to a listener of the test, as `name`."""
        listener = socket.create_server(("127.0.0.1", 0))
        self.peers.append(listener)
        self.command(f"connect {name} {listener.getsockname()[1]}")
        accepted, _ = listener.accept()
        self.peers.append(accepted)
        return listener.getsockname()[1]

    def options(self, name):
        """What the server reads from inside for socket `name`."""
        return self.command("report")["sockets"][name]["options"]

    def socket(self, name):
        return self.state["sockets"][name]

    def timers(self, *names):
        """For each socket `name`: does ss show a keepalive timer on it?"""
        timers = keepalive_timers()
        return [timers[self.socket(name)["inode"]] for name in names]


def rows(test, text):
    """The socket table of apply's text output: {fd cell: row text}."""
    lines = text.splitlines()
    header = next((i for i, line in enumerate(lines) if line.startswith("FD ")), None)
    test.assertIsNotNone(header, text)
    table = {}
    for line in lines[header + 1:]:
        if not line.strip():
            break
        table[line.split()[0]] = line
    return table


class ApplyTest(unittest.TestCase):
    def standard_holder(self):
        """Incoming connections on a (from 127.0.0.1) and b (from 127.0.0.1 and
        127.0.0.2), and one outgoing connection."""
        holder = Holder(self)
        self.clients = {"in_a": holder.accept("in_a", "a"),
                        "in_b": holder.accept("in_b", "b"),
                        "in_b2": holder.accept("in_b2", "b", source="127.0.0.2")}
        self.out_port = holder.connect("out")
        return holder

    def assert_untouched(self, holder, *names):
        for name in names:
            self.assertEqual(holder.options(name), UNTOUCHED, name)
        self.assertEqual(holder.options("udp"), [0], "a UDP socket was changed")
        self.assertEqual(holder.options("unix"), [0], "a Unix socket was changed")
        self.assertEqual(holder.options("a")[0], 0, "a listener was changed")

    def test_sets_every_established_connection(self):
        holder = self.standard_holder()
        connections = ("in_a", "in_b", "in_b2", "out")
        self.assertEqual(holder.timers(*connections), [False] * 4, "keepalive on before apply")
        self.assert_untouched(holder, *connections)

        result = keepalive("apply", str(holder.pid), "--idle", "40", "--intvl", "8", "--cnt", "3",
                           "--user-timeout", "20s")
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertEqual(result.stderr, "")
        # From inside: the server's own sockets have the values.
        for name in connections:
            self.assertEqual(holder.options(name), [1, 40, 8, 3, 20000], name)
        # From outside: ss shows the keepalive timer now.
        self.assertEqual(holder.timers(*connections), [True] * 4)
        # Not touched: UDP, Unix, listeners (no --listeners).
        self.assertEqual(holder.options("udp"), [0])
        self.assertEqual(holder.options("unix"), [0])
        self.assertEqual(holder.options("a"), UNTOUCHED)

        out = result.stdout
        self.assertTrue(out.startswith(f"Process {holder.pid} (python3): 6 TCP sockets\n"), out)
        table = rows(self, out)
        self.assertEqual(set(table), {str(holder.socket(n)["fd"])
                                      for n in ("a", "b", *connections)},
                         "one line per TCP socket, none for UDP and Unix")
        in_a = table[str(holder.socket("in_a")["fd"])].split()
        client = "%s:%d" % self.clients["in_a"].getsockname()
        self.assertEqual(in_a[1:], ["in", f"127.0.0.1:{holder.port('a')}", client, "global",
                                    "set", "off", "->", "idle=40s", "intvl=8s", "cnt=3",
                                    "user_timeout=20000ms"])
        out_row = table[str(holder.socket("out")["fd"])].split()
        self.assertEqual(out_row[1:6], ["out", holder.socket("out")["local"],
                                        f"127.0.0.1:{self.out_port}", "global", "set"])
        listener = table[str(holder.socket("a")["fd"])]
        self.assertIn("skipped", listener)
        self.assertIn("--listeners sets it for connections accepted from now on", listener)
        self.assertIn("4 sockets set, 2 listening sockets skipped (--listeners).", out)

        # The server is undisturbed: it still serves, its connections still carry data.
        holder.command("send in_a hello")
        self.assertEqual(self.clients["in_a"].recv(16), b"hello")

    def test_json(self):
        holder = self.standard_holder()
        result = keepalive("apply", str(holder.pid), "--json",
                           env=clean_env(KEEPALIVE_IDLE="45", KEEPALIVE_CNT="4"))
        self.assertEqual(result.returncode, 0, result.stderr)
        doc = parse_json(self, result.stdout)
        self.assertEqual((doc["pid"], doc["dry_run"], doc["listeners"], doc["enabled"]),
                         (holder.pid, False, False, True))
        by_fd = {s["fd"]: s for s in doc["sockets"]}
        in_a = by_fd[holder.socket("in_a")["fd"]]
        self.assertEqual((in_a["direction"], in_a["state"], in_a["action"], in_a["family"]),
                         ("in", "ESTAB", "set", "ipv4"))
        self.assertEqual(in_a["inode"], holder.socket("in_a")["inode"])
        intvl = min(45, KERNEL_INTVL)
        self.assertEqual(in_a["decision"], {"rule": None, "rule_text": None, "enable": True,
                                            "idle_s": 45, "intvl_s": intvl, "cnt": 4,
                                            "user_timeout_ms": None})
        self.assertEqual(in_a["before"], {"enabled": False, "idle_s": KERNEL_IDLE,
                                          "intvl_s": KERNEL_INTVL, "cnt": KERNEL_CNT,
                                          "user_timeout_ms": 0})
        self.assertEqual(in_a["after"], {"enabled": True, "idle_s": 45, "intvl_s": intvl,
                                         "cnt": 4, "user_timeout_ms": 0})
        self.assertIsNone(in_a["error"])
        self.assertEqual(by_fd[holder.socket("out")["fd"]]["direction"], "out")
        listener = by_fd[holder.socket("a")["fd"]]
        self.assertEqual((listener["action"], listener["decision"], listener["after"]),
                         ("listener_not_set", None, None))
        self.assertEqual(doc["summary"], {"sockets": 6, "set": 4, "left": 0, "skipped": 2,
                                          "gone": 0, "failed": 0, "unexamined": 0})
        self.assertEqual(doc["unexamined"], {"fds": [], "reason": None})
        self.assertEqual(holder.options("in_b2"), [1, 45, intvl, 4, 0])

    def test_dry_run_changes_nothing(self):
        holder = self.standard_holder()
        connections = ("in_a", "in_b", "in_b2", "out")
        rules = f"in port={holder.port('a')} idle=30; off"
        result = keepalive("apply", str(holder.pid), "--dry-run", "--listeners", "--idle", "50",
                           "--rules", rules)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assert_untouched(holder, *connections)
        self.assertEqual(holder.options("a"), UNTOUCHED)
        self.assertEqual(holder.timers(*connections), [False] * 4)
        out = result.stdout
        self.assertIn("; dry run, nothing is changed\n", out)
        row = rows(self, out)[str(holder.socket("in_a")["fd"])]
        self.assertRegex(row, re.escape(f"1 (in port={holder.port('a')} idle=30)") +
                         r" +would set +" + re.escape(
                             f"off -> idle=30s intvl={min(30, KERNEL_INTVL)}s cnt={KERNEL_CNT} "
                             "user_timeout=kernel"))
        self.assertIn(f"Listening socket 127.0.0.1:{holder.port('a')} would be set", out)
        self.assertIn("2 sockets would be set, 4 left as the rules say.", out)

        doc = parse_json(self, keepalive("apply", str(holder.pid), "--dry-run", "--json",
                                         "--idle", "50").stdout)
        self.assertTrue(doc["dry_run"])
        in_a = next(s for s in doc["sockets"] if s["fd"] == holder.socket("in_a")["fd"])
        self.assertEqual(in_a["action"], "would_set")
        self.assertEqual(in_a["after"]["idle_s"], 50)  # what a real run would read back
        self.assertEqual(doc["summary"]["would_set"], 4)
        self.assert_untouched(holder, *connections)

    def test_rules_honoured(self):
        holder = self.standard_holder()
        port_a, port_b = holder.port("a"), holder.port("b")
        rules = (f"in port={port_a} idle=30 cnt=4; out port={self.out_port} idle=50 intvl=5; "
                 "in peer=127.0.0.2 idle=60 user_timeout=9s; off")
        result = keepalive("apply", str(holder.pid), "--rules", rules)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(holder.options("in_a"), [1, 30, min(30, KERNEL_INTVL), 4, 0])
        self.assertEqual(holder.options("out"), [1, 50, 5, KERNEL_CNT, 0])
        self.assertEqual(holder.options("in_b2"), [1, 60, min(60, KERNEL_INTVL), KERNEL_CNT,
                                                   9000])
        # Port b from 127.0.0.1: the final `off` takes it, it is left exactly as it was.
        self.assertEqual(holder.options("in_b"), UNTOUCHED)
        self.assertEqual(holder.timers("in_a", "in_b", "in_b2", "out"),
                         [True, False, True, True])
        table = rows(self, result.stdout)
        self.assertIn(f"1 (in port={port_a} idle=30 cnt=4)",
                      table[str(holder.socket("in_a")["fd"])])
        self.assertIn(f"2 (out port={self.out_port} idle=50 intvl=5)",
                      table[str(holder.socket("out")["fd"])])
        self.assertIn("3 (in peer=127.0.0.2 idle=60 user_timeout=9s)",
                      table[str(holder.socket("in_b2")["fd"])])
        in_b = table[str(holder.socket("in_b")["fd"])]
        self.assertIn(f"127.0.0.1:{port_b}", in_b)
        self.assertRegex(in_b, r"4 \(off\) +left ")
        self.assertIn("(the rule says off: left as it is)", in_b)

    def test_off_never_switches_keepalive_off(self):
        holder = self.standard_holder()
        keepalive("apply", str(holder.pid), "--idle", "70")
        result = keepalive("apply", str(holder.pid), "--rules", "off")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(holder.options("in_a")[:2], [1, 70])
        # Set before, their timings are chosen: left alone, as the library
        # leaves them, before any rule is looked at.
        self.assertIn("0 sockets set, 4 left alone", result.stdout)
        result = keepalive("apply", str(holder.pid), env=clean_env(KEEPALIVE="off"))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("KEEPALIVE is off in this configuration", result.stdout)
        self.assertIn("off (KEEPALIVE=off)", result.stdout)
        self.assertEqual(holder.options("in_a")[:2], [1, 70])

    def test_listeners_make_later_connections_inherit(self):
        holder = Holder(self)
        port_a = holder.port("a")
        rules = f"in port={port_a} idle=33 intvl=4 cnt=2; off"
        # Without --listeners, a connection accepted afterwards is not set.
        result = keepalive("apply", str(holder.pid), "--rules", rules)
        self.assertEqual(result.returncode, 0, result.stderr)
        holder.accept("before", "a")
        self.assertEqual(holder.options("before"), UNTOUCHED)

        doc = parse_json(self, keepalive("apply", str(holder.pid), "--listeners", "--json",
                                         "--dry-run", "--rules", rules).stdout)
        listener = next(s for s in doc["sockets"] if s["fd"] == holder.socket("a")["fd"])
        self.assertEqual((listener["direction"], listener["action"]), ("listen", "would_set"))
        self.assertTrue(listener["inherited_by_new_connections"])
        result = keepalive("apply", str(holder.pid), "--listeners", "--rules", rules)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn(f"Listening socket 127.0.0.1:{port_a} is set: connections accepted from "
                      "now on inherit idle=33s intvl=4s cnt=2 user_timeout=kernel, even without "
                      "libkeepalive.", result.stdout)
        self.assertEqual(holder.options("a"), [1, 33, 4, 2, 0])
        self.assertEqual(holder.options("b"), UNTOUCHED, "rule `off` keeps listener b as it is")
        holder.accept("after_a", "a")
        holder.accept("after_b", "b")
        self.assertEqual(holder.options("after_a"), [1, 33, 4, 2, 0])
        self.assertEqual(holder.options("after_b"), UNTOUCHED)
        self.assertEqual(holder.timers("after_a", "after_b"), [True, False])
        # Applied again: the listener's timings are chosen now (as the
        # library sees it), so it is left alone, with what it carries.
        doc = parse_json(self, keepalive("apply", str(holder.pid), "--listeners", "--json",
                                         "--rules", "in idle=99").stdout)
        listener = next(s for s in doc["sockets"] if s["fd"] == holder.socket("a")["fd"])
        self.assertEqual((listener["direction"], listener["action"]), ("listen", "own_timings"))
        self.assertEqual(holder.options("a"), [1, 33, 4, 2, 0])

    def test_accept_queue_is_reported_as_not_covered(self):
        holder = Holder(self)
        port_a = holder.port("a")
        rules = f"in port={port_a} idle=33 intvl=4 cnt=2; off"
        # Two connections the server has not accepted yet: in a's accept queue.
        for _ in range(2):
            holder.peers.append(socket.create_connection(("127.0.0.1", port_a), timeout=TIMEOUT))
        result = keepalive("apply", str(holder.pid), "--listeners", "--rules", rules)
        # Not every connection is covered: exit 1, and said on stderr too.
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertIn(f"NOT COVERED: 2 connections waiting in the accept queue of "
                      f"127.0.0.1:{port_a} after it was set: established before, they keep the "
                      "old settings when the program accepts them", result.stdout)
        self.assertIn("2 connections waiting in accept queues keep the old settings",
                      result.stderr)
        # What the report says: accepted now, they have the old settings...
        holder.command("accept queued1 a")
        holder.command("accept queued2 a")
        self.assertEqual(holder.options("queued1"), UNTOUCHED)
        self.assertEqual(holder.options("queued2"), UNTOUCHED)
        # ... while a connection made after the listener was set inherits.
        holder.accept("after", "a")
        self.assertEqual(holder.options("after"), [1, 33, 4, 2, 0])
        # Run again, as advised: the accepted ones are set, the listener (ours
        # already) has an empty queue to report, and all is covered.
        doc = parse_json(self, keepalive("apply", str(holder.pid), "--listeners", "--json",
                                         "--rules", rules).stdout)
        by_fd = {s["fd"]: s["action"] for s in doc["sockets"]}
        self.assertEqual([by_fd[holder.socket(n)["fd"]] for n in ("queued1", "queued2")],
                         ["set", "set"])
        self.assertEqual([(q["fd"], q["waiting_not_covered"]) for q in doc["accept_queues"]],
                         [(holder.socket("a")["fd"], 0)])
        self.assertEqual(holder.options("queued1"), [1, 33, 4, 2, 0])
        again = keepalive("apply", str(holder.pid), "--listeners", "--rules", rules)
        self.assertEqual(again.returncode, 0, again.stderr)
        # An empty queue is no note; JSON gives each listener's queue. (A
        # listener set once has its timings chosen and is left alone after:
        # each of these runs takes a fresh process.)
        quiet = Holder(self)
        result = keepalive("apply", str(quiet.pid), "--listeners", "--rules",
                           f"in port={quiet.port('a')} idle=33 intvl=4 cnt=2; off")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertNotIn("NOT COVERED", result.stdout)
        self.assertEqual(quiet.options("a"), [1, 33, 4, 2, 0])
        fresh = Holder(self)
        doc = parse_json(self, keepalive("apply", str(fresh.pid), "--listeners", "--json",
                                         "--rules", f"in port={fresh.port('a')} idle=33; off")
                         .stdout)
        queue = next(q for q in doc["accept_queues"] if q["fd"] == fresh.socket("a")["fd"])
        self.assertEqual(queue["waiting_not_covered"], 0)
        self.assertEqual(queue["local"], f"127.0.0.1:{fresh.port('a')}")

    def test_connections_accepted_during_the_run_are_set_or_reported(self):
        """While apply runs, the program accepts connections that were waiting
        in the accept queue (established before the listener was set): each
        one is either set (found by the second look) or counted as not
        covered in the listener's accept queue."""
        count = 200
        server = slow_accepter(self, count)
        result = keepalive("apply", str(server.pid), "--listeners", "--idle", "33", "--json")
        doc = parse_json(self, result.stdout)
        waiting = sum(q["waiting_not_covered"] for q in doc["accept_queues"])
        self.assertEqual(result.returncode, 1 if waiting > 0 else 0, result.stderr)
        self.assertEqual(json.loads(server.stdout.readline()), {"accepted": count})
        server.stdin.close()
        keepalive_on = json.loads(server.stdout.readline())
        server.stdout.close()
        self.assertEqual(len(keepalive_on), count)
        not_set = keepalive_on.count(0)
        second_look = sum(1 for s in doc["sockets"] if s["second_look"])
        print(f"accepted during the run: {second_look} found by the second look; "
              f"{waiting} reported waiting; {not_set} of {count} without keepalive")
        self.assertEqual(len(doc["accept_queues"]), 1)
        self.assertLessEqual(not_set, waiting,
                             "connections without keepalive that the report did not count")

    def test_summary_counts_and_shows_failures_in_full(self):
        holder = self.standard_holder()
        port_a = holder.port("a")
        in_a = holder.socket("in_a")
        env = clean_env(LD_PRELOAD=SETSOCKOPT_FAULT, LIBKEEPALIVE_TEST_FAULT_PORT=str(port_a))
        result = keepalive("apply", str(holder.pid), "--idle", "35", "--cnt", "5", "--summary",
                           env=env)
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        out = result.stdout
        self.assertIn("Summary (--full shows every socket):\n", out)
        counts = {tuple(line.split()[1:]): int(line.split()[0])
                  for line in out.split("Summary (--full shows every socket):\n")[1]
                  .split("\n\n")[0].splitlines()[1:]}
        self.assertEqual(counts, {("in", "global", "FAILED"): 1, ("in", "global", "set"): 2,
                                  ("out", "global", "set"): 1, ("listen", "-", "skipped"): 2},
                         out)
        failed = out.split("\nFailed:\n")[1].splitlines()
        self.assertTrue(failed[0].startswith("FD "), out)
        self.assertIn(f"{in_a['fd']}", failed[1].split()[0])
        self.assertIn("setting TCP_KEEPCNT failed: Operation not permitted", failed[1])
        self.assertNotIn("KEEPALIVE BEFORE", out, "no line per socket")

        # The sockets set above now have chosen timings: JSON on a fresh process.
        holder = self.standard_holder()
        in_a = holder.socket("in_a")
        env = clean_env(LD_PRELOAD=SETSOCKOPT_FAULT,
                        LIBKEEPALIVE_TEST_FAULT_PORT=str(holder.port("a")))
        doc = parse_json(self, keepalive("apply", str(holder.pid), "--idle", "36", "--cnt", "6",
                                         "--summary", "--json", env=env).stdout)
        self.assertTrue(doc["summary_only"])
        self.assertIn({"direction": "in", "rule": "global", "action": "set", "sockets": 2},
                      doc["groups"])
        self.assertEqual([s["fd"] for s in doc["sockets"]], [in_a["fd"]], "only the failure")
        full = keepalive("apply", str(holder.pid), "--idle", "37", "--full", "--json").stdout
        self.assertFalse(parse_json(self, full)["summary_only"])
        # Two options failing on one socket: the first named, the others counted.
        holder = self.standard_holder()
        env = clean_env(LD_PRELOAD=SETSOCKOPT_FAULT, LIBKEEPALIVE_TEST_FAULT_PORT="any",
                        LIBKEEPALIVE_TEST_FAULT_INTVL_TOO="1")
        result = keepalive("apply", str(holder.pid), "--idle", "38", "--intvl", "9", "--cnt", "3",
                           env=env)
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        self.assertIn("not set: setting TCP_KEEPINTVL failed: Operation not permitted "
                      "(and 1 more)", result.stderr)

    def test_many_sockets_are_summarized_by_default(self):
        count = 201  # with the listener, 202 TCP sockets: above 200
        server = slow_accepter(self, count)
        self.addCleanup(server.stdout.close)
        self.addCleanup(server.stdin.close)
        self.assertEqual(json.loads(server.stdout.readline()), {"accepted": count})
        pid = str(server.pid)
        out = keepalive("apply", pid, "--idle", "33").stdout
        self.assertIn("Summary (--full shows every socket):", out)
        self.assertRegex(out, r"\n201 +in +global +set\n")
        self.assertLess(len(out.splitlines()), 15, out)
        self.assertEqual(len(rows(self, keepalive("apply", pid, "--idle", "33", "--full")
                                  .stdout)), 202)
        out = keepalive("inspect", pid).stdout
        self.assertIn("202 TCP sockets; summary (--full shows every socket):", out)
        self.assertRegex(out, r"\n201 +ESTAB +in +idle=33s ")
        self.assertEqual(len(rows(self, keepalive("inspect", pid, "--full").stdout)), 202)
        doc = parse_json(self, keepalive("inspect", pid, "--json").stdout)
        self.assertTrue(doc["summary_only"])
        self.assertEqual(doc["sockets"], [], "every socket was readable")
        self.assertEqual(sum(g["sockets"] for g in doc["groups"]), 202)
        self.assertEqual(len(parse_json(self, keepalive("inspect", pid, "--json", "--full")
                                        .stdout)["sockets"]), 202)

    def test_listener_is_set_when_its_peer_rules_ask_less(self):
        # A listener cannot tell peers apart: connections from a peer= rule's
        # peers inherit its settings. When that rule asks less (off, longer
        # timings) the listener is set, and the report names the rule.
        holder = Holder(self)
        port_a = holder.port("a")
        for peer_rule in ("peer=127.0.0.2 off", "peer=127.0.0.2 idle=60 cnt=9"):
            with self.subTest(peer_rule=peer_rule):
                rules = f"{peer_rule}; in port={port_a} idle=20; off"
                doc = parse_json(self, keepalive("apply", str(holder.pid), "--listeners",
                                                 "--dry-run", "--json", "--rules", rules).stdout)
                listener = {s["fd"]: s for s in doc["sockets"]}[holder.socket("a")["fd"]]
                self.assertEqual((listener["action"], listener["peer_rules_not_honoured"],
                                  listener["peer_rules_asking_more"]), ("would_set", [1], []))
        rules = f"peer=127.0.0.2 off; in port={port_a} idle=20; off"
        result = keepalive("apply", str(holder.pid), "--listeners", "--rules", rules)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("idle=20s intvl=20s cnt=9 user_timeout=kernel (rule 1 (peer=127.0.0.2 off) "
                      "asks less for some peers: they get these values too, until the program "
                      "restarts)", result.stdout)
        self.assertEqual(holder.options("a")[:2], [1, 20])
        # What the report says: a peer of the rule gets the listener's values.
        holder.accept("from_peer", "a", source="127.0.0.2")
        holder.accept("other", "a")
        self.assertEqual([holder.options("from_peer")[:2], holder.options("other")[:2]],
                         [[1, 20], [1, 20]])

    def test_listener_is_left_alone_when_a_peer_rule_asks_more_or_exact_listeners(self):
        # A peer rule with a shorter idle time: its peers would get less than
        # it asks from the listener, so the listener is left (as the library
        # leaves it); --exact-listeners leaves it for any reachable peer rule.
        holder = Holder(self)
        port_a = holder.port("a")
        rules = f"peer=127.0.0.2 idle=10; in port={port_a} idle=20; off"
        result = keepalive("apply", str(holder.pid), "--listeners", "--rules", rules)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("(rule 1 (peer=127.0.0.2 idle=10) asks more for some peers than this "
                      "port's settings give: each connection is set when accepted, by "
                      "libkeepalive if preloaded)", result.stdout)
        self.assertEqual(holder.options("a"), UNTOUCHED)
        rules = f"peer=127.0.0.2 off; in port={port_a} idle=20; off"
        result = keepalive("apply", str(holder.pid), "--listeners", "--exact-listeners",
                           "--rules", rules)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("(a peer= rule decides connections on this port (--exact-listeners): each "
                      "is set when accepted, by libkeepalive if preloaded)", result.stdout)
        self.assertEqual(holder.options("a"), UNTOUCHED)
        doc = parse_json(self, keepalive("apply", str(holder.pid), "--listeners", "--dry-run",
                                         "--json", "--exact-listeners", "--rules", rules).stdout)
        by_fd = {s["fd"]: s for s in doc["sockets"]}
        self.assertEqual(by_fd[holder.socket("a")["fd"]]["action"], "decided_by_peer")
        self.assertEqual(by_fd[holder.socket("a")["fd"]]["peer_rules_not_honoured"], [1])
        self.assertEqual(by_fd[holder.socket("b")["fd"]]["peer_rules_not_honoured"], [])
        self.assertEqual(by_fd[holder.socket("b")["fd"]]["action"], "left")
        # Listeners with the same outcome share one line.
        result = keepalive("apply", str(holder.pid), "--listeners", "--dry-run", "--rules",
                           "in idle=20")
        both = f"127.0.0.1:{port_a}, 127.0.0.1:{holder.port('b')}"
        self.assertIn(f"Listening sockets {both} would be set: connections accepted from now on "
                      "inherit idle=20s", result.stdout)

    def test_peer_rules_not_honoured_are_those_an_accepted_connection_could_match(self):
        # Only a peer= rule for incoming connections on the listener's port,
        # before the rule that decides the listener, is one it cannot honour.
        holder = Holder(self)
        port_a, port_b = holder.port("a"), holder.port("b")
        rules = (f"out peer=127.0.0.2 idle=30; in port={port_b} peer=127.0.0.2 idle=40; "
                 f"in port={port_a} peer=127.0.0.2 idle=50; in port={port_a} idle=20; "
                 f"in port={port_a} peer=127.0.0.3 idle=60")
        doc = parse_json(self, keepalive("apply", str(holder.pid), "--listeners", "--dry-run",
                                         "--json", "--rules", rules).stdout)
        by_fd = {s["fd"]: s for s in doc["sockets"]}
        self.assertEqual(by_fd[holder.socket("a")["fd"]]["peer_rules_not_honoured"], [3])
        self.assertEqual(by_fd[holder.socket("b")["fd"]]["peer_rules_not_honoured"], [2])

    def test_own_timings_are_left_alone(self):
        # A connection whose idle time the program chose keeps all its values.
        holder = self.standard_holder()
        holder.command("setopt in_a 1800 10 3")
        result = keepalive("apply", str(holder.pid), "--idle", "40", "--cnt", "5")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(holder.options("in_a"), [1, 1800, 10, 3, 0])
        row = next(line for line in result.stdout.splitlines()
                   if line.startswith(f"{holder.socket('in_a')['fd']} "))
        self.assertIn("(timings chosen by the program, or set earlier: left alone)", row)
        self.assertIn("left alone", result.stdout.splitlines()[-1])

    def test_socket_under_two_descriptors_is_one_line(self):
        holder = Holder(self)
        holder.accept("conn", "a")
        holder.command("dup conn copy")
        fds = f"{holder.socket('conn')['fd']},{holder.socket('copy')['fd']}"
        result = keepalive("apply", str(holder.pid), "--idle", "25")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn(fds, rows(self, result.stdout))
        self.assertEqual(holder.options("copy")[:2], [1, 25])

    def test_socket_that_cannot_be_set_exits_1(self):
        holder = self.standard_holder()
        port_a = holder.port("a")
        # The command itself (not the server) gets a setsockopt that fails for
        # TCP_KEEPCNT on sockets bound to port a.
        env = clean_env(LD_PRELOAD=SETSOCKOPT_FAULT, LIBKEEPALIVE_TEST_FAULT_PORT=str(port_a))
        result = keepalive("apply", str(holder.pid), "--idle", "35", "--cnt", "5", env=env)
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        in_a = holder.socket("in_a")
        self.assertIn(f"keepalive apply: fd {in_a['fd']} (127.0.0.1:{port_a} <-> "
                      f"127.0.0.1:", result.stderr)
        self.assertIn("not set: setting TCP_KEEPCNT failed: Operation not permitted",
                      result.stderr)
        self.assertIn("keepalive apply: 1 of 6 TCP sockets could not be set; the others are as "
                      "shown", result.stderr)
        row = rows(self, result.stdout)[str(in_a["fd"])]
        self.assertIn("FAILED", row)
        # What did get set on it is reported as it reads: all but CNT.
        self.assertIn(f"-> idle=35s intvl={min(35, KERNEL_INTVL)}s cnt={KERNEL_CNT}", row)
        self.assertEqual(holder.options("in_a")[:4], [1, 35, min(35, KERNEL_INTVL), KERNEL_CNT])
        for name in ("in_b", "in_b2", "out"):
            self.assertEqual(holder.options(name)[:4], [1, 35, min(35, KERNEL_INTVL), 5], name)


class ApplyErrorsTest(unittest.TestCase):
    def test_help(self):
        result = keepalive("apply", "--help")
        self.assertEqual(result.returncode, 0)
        self.assertIn("Usage: keepalive apply PID", result.stdout)
        for text in ("--listeners", "--dry-run", "--json", "--idle DURATION", "--rules RULES",
                     "CAP_SYS_PTRACE", "3 no such process"):
            self.assertIn(text, result.stdout)
        self.assertEqual(keepalive("help", "apply").stdout, result.stdout)
        self.assertIn("keepalive apply PID", keepalive("--help").stdout)

    def test_usage_errors_exit_2(self):
        for args, message in ((["abc"], "PID must be a process ID"),
                              (["0"], "PID must be a process ID"),
                              (["-5"], "unknown option -5"),
                              (["1", "--bogus"], "unknown option --bogus"),
                              ([], "no PID given"),
                              (["1", "2"], "one PID only"),
                              (["1", "--idle"], "--idle needs a value"),
                              (["1", "--cnt", "3", "--cnt", "4"], "--cnt is given twice")):
            result = keepalive("apply", *args)
            self.assertEqual(result.returncode, 2, args)
            self.assertIn(message, result.stderr, args)
            self.assertEqual(result.stdout, "", args)

    def test_invalid_configuration_changes_nothing(self):
        holder = Holder(self)
        holder.accept("conn", "a")
        cases = ((["--idle", "abc"], {}, 'KEEPALIVE_IDLE="abc" is invalid', "(given as --idle)"),
                 ([], {"KEEPALIVE_CNT": "200"}, 'KEEPALIVE_CNT="200" is invalid', None),
                 (["--idle", "5", "--rules", "in prt=5222 idle=9"], {},
                  'KEEPALIVE_RULES rule 1 ("in prt=5222 idle=9")', "(given as --rules)"))
        for flags, variables, problem, origin in cases:
            result = keepalive("apply", str(holder.pid), *flags, "--listeners",
                               env=clean_env(**variables))
            self.assertEqual(result.returncode, 2, (flags, result.stderr))
            self.assertTrue(result.stderr.startswith(
                "keepalive apply: invalid configuration, nothing changed:\n"), result.stderr)
            self.assertIn(problem, result.stderr)
            if origin:
                self.assertIn(origin, result.stderr)
            self.assertEqual(result.stdout, "")
        self.assertEqual(holder.options("conn"), UNTOUCHED)
        self.assertEqual(holder.options("a"), UNTOUCHED)

    def test_no_such_process(self):
        gone = subprocess.Popen(["true"])
        gone.wait()  # reaped: its PID is free
        result = keepalive("apply", str(gone.pid), "--idle", "30")
        self.assertEqual(result.returncode, 3)
        self.assertEqual(result.stderr,
                         f"keepalive apply: no such process: {gone.pid}; nothing changed\n")
        self.assertEqual(result.stdout, "")
        # --json changes nothing to that: the error is on stderr, stdout stays empty.
        result = keepalive("apply", str(gone.pid), "--json")
        self.assertEqual((result.returncode, result.stdout), (3, ""))

    def test_permission_denied_as_unprivileged_user(self):
        require_root(self, "to start a root-owned server and drop to nobody")
        if shutil.which("setpriv") is None:
            self.fail("setpriv not found: apt-get install util-linux")
        holder = Holder(self)
        holder.accept("conn", "a")
        result = keepalive("apply", str(holder.pid), "--idle", "30", "--listeners",
                           prefix=as_nobody(), command=copy_of_command(self))
        self.assertEqual(result.returncode, 3, result.stdout + result.stderr)
        self.assertEqual(result.stdout, "")
        self.assertIn(f"keepalive apply: permission denied: reading the descriptors of process "
                      f"{holder.pid} needs ptrace access to it: it runs as root (uid 0) and you "
                      f"are nobody (uid {NOBODY}); run it as root (e.g. with sudo) or with "
                      "CAP_SYS_PTRACE; nothing changed", result.stderr)
        self.assertEqual(holder.options("conn"), UNTOUCHED)
        self.assertEqual(holder.options("a"), UNTOUCHED)
        self.assertEqual(holder.timers("conn"), [False])

    def test_descriptor_directory_refused_with_eperm_is_read_by_duplication(self):
        """/proc/PID/fd refused with EPERM (a security module) as with EACCES:
        each descriptor number is duplicated instead, and every socket set."""
        holder = Holder(self)
        holder.accept("in_a", "a")
        holder.connect("out")
        env = clean_env(LD_PRELOAD=SETSOCKOPT_FAULT, LIBKEEPALIVE_TEST_FAULT_FD_DIR_EPERM="1")
        result = keepalive("apply", str(holder.pid), "--idle", "36", env=env)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        for name in ("in_a", "out"):
            self.assertEqual(holder.options(name)[:2], [1, 36], name)

    def test_descriptor_that_cannot_be_examined_is_reported(self):
        """One descriptor whose link cannot be read (the command's readlinkat
        fails for it): inspect and apply report the others and name it, exit 1."""
        holder = Holder(self)
        holder.accept("conn", "a")
        holder.accept("hidden", "b")
        hidden = holder.socket("hidden")["fd"]
        env = clean_env(LD_PRELOAD=SETSOCKOPT_FAULT,
                        LIBKEEPALIVE_TEST_FAULT_UNREADABLE_FD=str(hidden))
        reason = (f"1 descriptor could not be examined (fd {hidden}): permission denied: "
                  f"reading the descriptors of process {holder.pid} needs ptrace access to it")
        result = keepalive("apply", str(holder.pid), "--idle", "34", env=env)
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        self.assertIn(f"keepalive apply: {reason}", result.stderr)
        self.assertIn("; they may be TCP connections, not set", result.stderr)
        self.assertIn(reason, result.stdout)
        self.assertEqual(holder.options("conn")[:2], [1, 34])
        self.assertEqual(holder.options("hidden"), UNTOUCHED)
        doc = parse_json(self, keepalive("apply", str(holder.pid), "--dry-run", "--json",
                                         env=env).stdout)
        self.assertEqual(doc["unexamined"]["fds"], [hidden])
        self.assertEqual(doc["summary"]["unexamined"], 1)

        result = keepalive("inspect", str(holder.pid), env=env)
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        self.assertIn(f"keepalive inspect: {reason}", result.stderr)
        self.assertIn(reason, result.stdout)
        self.assertIn(holder.socket("conn")["local"], rows(self, result.stdout)[
            str(holder.socket("conn")["fd"])])
        self.assertNotIn(str(hidden), rows(self, result.stdout))
        result = keepalive("inspect", str(holder.pid), "--json", env=env)
        self.assertEqual(result.returncode, 1)
        self.assertEqual(parse_json(self, result.stdout)["unexamined"]["fds"], [hidden])

    def test_root_without_cap_sys_ptrace_cannot_look(self):
        """Root whose capability set lacks CAP_SYS_PTRACE (a container, a unit's
        CapabilityBoundingSet) can list /proc/PID/fd of another user's process
        but not read a single link: inspect and apply must fail as for any
        permission denied, naming what is missing, not report no sockets."""
        require_root(self, "to be root without CAP_SYS_PTRACE")
        if shutil.which("capsh") is None:
            self.fail("capsh not found: apt-get install libcap2-bin")
        holder = Holder(self, prefix=as_nobody())
        holder.accept("conn", "a")
        holder.connect("out")
        # capsh runs bash -c: "$0" "$@" is the command and its arguments.
        without_ptrace = ("capsh", "--drop=cap_sys_ptrace", "--", "-c", 'exec "$0" "$@"')
        denied = (f"permission denied: reading the descriptors of process {holder.pid} needs "
                  f"ptrace access to it: it runs as nobody (uid {NOBODY}) and you are root "
                  "(uid 0) without CAP_SYS_PTRACE in your effective capabilities")
        for args in (("inspect", str(holder.pid)), ("inspect", str(holder.pid), "--json"),
                     ("apply", str(holder.pid), "--idle", "30", "--listeners")):
            result = keepalive(*args, prefix=without_ptrace)
            self.assertEqual(result.returncode, 3, (args, result.stdout + result.stderr))
            self.assertEqual(result.stdout, "", args)
            self.assertIn(f"keepalive {args[0]}: {denied}", result.stderr)
            self.assertIn("run with CAP_SYS_PTRACE", result.stderr)
        self.assertEqual(holder.options("conn"), UNTOUCHED)
        self.assertEqual(holder.options("out"), UNTOUCHED)
        # With the capability, the same command sees the connections.
        result = keepalive("inspect", str(holder.pid))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn(holder.socket("conn")["local"], result.stdout)

    def test_misspelled_variable_is_a_warning_and_refused_under_strict(self):
        holder = Holder(self)
        holder.accept("conn", "a")
        result = keepalive("apply", str(holder.pid), "--idle", "32",
                           env=clean_env(KEEPALIVE_IDEL="270"))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stderr, "keepalive apply: warning: KEEPALIVE_IDEL is not a "
                         "libkeepalive variable: did you mean KEEPALIVE_IDLE? (ignored)\n")
        self.assertEqual(holder.options("conn")[:2], [1, 32])
        result = keepalive("apply", str(holder.pid), "--idle", "33", "--strict",
                           env=clean_env(KEEPALIVE_IDEL="270"))
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("KEEPALIVE_IDEL is not a libkeepalive variable", result.stderr)
        self.assertEqual(holder.options("conn")[:2], [1, 32], "nothing changed")

    def test_same_user_under_the_ptrace_policy(self):
        """An unprivileged user applies to its own server: allowed unless Yama's
        ptrace_scope forbids it, and then the message names that policy."""
        require_root(self, "to run both processes as nobody")
        holder = Holder(self, prefix=as_nobody())
        holder.accept("conn", "a")
        result = keepalive("apply", str(holder.pid), "--idle", "31", prefix=as_nobody(),
                           command=copy_of_command(self))
        try:
            with open("/proc/sys/kernel/yama/ptrace_scope") as f:
                scope = int(f.read())
        except FileNotFoundError:
            scope = None  # no Yama: classic ptrace rules, the same user may
        if scope in (None, 0):
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertEqual(holder.options("conn")[:2], [1, 31])
        else:
            # The server is not a descendant of the command: Yama 1 refuses
            # it, 2 wants CAP_SYS_PTRACE, 3 refuses everyone.
            self.assertEqual(result.returncode, 3, result.stdout + result.stderr)
            self.assertIn(f"kernel.yama.ptrace_scope={scope}", result.stderr)
            self.assertEqual(holder.options("conn"), UNTOUCHED)

    def test_kernel_without_pidfd_calls(self):
        holder = Holder(self)
        holder.accept("conn", "a")
        for call, message in (("pidfd_open", "this kernel has no pidfd_open()"),
                              ("pidfd_getfd", "this kernel has no pidfd_getfd()")):
            result = keepalive("apply", str(holder.pid), "--idle", "30",
                               prefix=(WITHOUT_SYSCALL, call))
            self.assertEqual(result.returncode, 3, (call, result.stdout + result.stderr))
            self.assertIn(message, result.stderr)
            self.assertIn("Linux 5.6 or later", result.stderr)
            self.assertIn("; nothing changed", result.stderr)
            self.assertEqual(result.stdout, "")
        self.assertEqual(holder.options("conn"), UNTOUCHED)


if __name__ == "__main__":
    main()
