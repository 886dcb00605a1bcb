#!/usr/bin/env python3
"""follow_bench.py - what `keepalive apply --follow` costs on a busy server:
a plain server process holds N connections (default 10 000; the clients are a
second process on loopback), and the follower's own CPU time (getrusage, from
its JSON `applied` and `end` lines) is read
  - per tick, while nothing changes (an idle run of S seconds at 100 ms), and
  - per new connection, for a burst of M connections accepted while it follows
    (the burst run's CPU less its ticks at the idle cost).
The listing covers the whole network namespace: with the clients on loopback
it holds both ends, 2 N sockets, more than a server with remote clients
lists. Prints figures, asserts nothing (label bench).

Usage: follow_bench.py KEEPALIVE [--connections N] [--burst M] [--seconds S]
"""

import argparse
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from server_script import LISTENER_SETUP  # noqa: E402 (tests/tools, added above)

TIMEOUT = 300

# The server (its listener set up as the tests' servers are): accepts every
# connection it is told to and keeps it; prints its pid, its port, then one
# line after each `accept N`.
SERVER = LISTENER_SETUP + textwrap.dedent("""
    kept = []
    print(json.dumps({"pid": os.getpid(), "port": listener.getsockname()[1]}), flush=True)
    for line in sys.stdin:
        for _ in range(int(line)):
            kept.append(listener.accept()[0])
        print(len(kept), flush=True)
""")


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class Server:
    def __init__(self):
        self.process = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        hello = json.loads(self.process.stdout.readline())
        self.pid, self.port = hello["pid"], hello["port"]
        self.clients = []

    def connect(self, n):
        """n more connections, accepted and kept by the server."""
        self.process.stdin.write(f"{n}\n")
        self.process.stdin.flush()
        for _ in range(n):
            self.clients.append(socket.create_connection(("127.0.0.1", self.port)))
        return int(self.process.stdout.readline())

    def stop(self):
        self.process.stdin.close()
        self.process.wait(timeout=TIMEOUT)
        for client in self.clients:
            client.close()


def follow(command, pid, interval, until):
    """Runs the follower, calls until(lines) after its `applied` line, then
    SIGTERM; returns (applied, end, socket events)."""
    process = subprocess.Popen([command, "apply", str(pid), "--follow", "--json", "--idle", "4m",
                                "--interval", interval],
                               stdout=subprocess.PIPE, text=True)
    events = []
    applied = threading.Event()

    def read():  # always: a follower writing into a full pipe would wait
        for line in process.stdout:
            events.append(json.loads(line))
            if events[-1]["event"] == "applied":
                applied.set()

    reader = threading.Thread(target=read)
    reader.start()
    applied.wait(timeout=TIMEOUT)
    until()
    process.send_signal(signal.SIGTERM)
    reader.join(timeout=TIMEOUT)
    process.wait(timeout=TIMEOUT)
    applied = next(e for e in events if e["event"] == "applied")
    end = events[-1]
    assert end["event"] == "end", end
    return applied, end, [e for e in events if e["event"] == "socket"]


def cpu(event):
    return event["cpu_user_ms"] + event["cpu_system_ms"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("keepalive")
    parser.add_argument("--connections", type=int, default=10000)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()

    limit = raise_fd_limit()
    if limit < args.connections + args.burst + 100:
        print(f"follow_bench: SKIPPED: the descriptor limit ({limit}) is below "
              f"{args.connections + args.burst + 100}", flush=True)
        return 0
    server = Server()
    try:
        started = time.monotonic()
        server.connect(args.connections)
        print(f"follow_bench: {args.connections} connections held by process {server.pid} "
              f"(made in {time.monotonic() - started:.1f} s)", flush=True)

        def idle():
            time.sleep(args.seconds)

        applied, end, _ = follow(args.keepalive, server.pid, "100ms", idle)
        per_tick_ms = (cpu(end) - cpu(applied)) / max(1, end["ticks"])
        print(f"follow_bench: start, {applied['sockets']} sockets set: "
              f"{cpu(applied):.1f} ms CPU ({1000 * cpu(applied) / applied['sockets']:.1f} us "
              f"per socket, with pidfd_getfd and the read of every descriptor)")
        user_ms = (end["cpu_user_ms"] - applied["cpu_user_ms"]) / max(1, end["ticks"])
        print(f"follow_bench: idle, {end['ticks']} ticks at 100ms: "
              f"{per_tick_ms:.3f} ms CPU per tick ({user_ms:.3f} ms user, the rest in the "
              f"kernel), {per_tick_ms / 10:.3f} % of one CPU at the default --interval 1s",
              flush=True)

        def burst():
            time.sleep(0.5)
            server.connect(args.burst)
            time.sleep(2.0)

        applied, end, sockets = follow(args.keepalive, server.pid, "100ms", burst)
        new = [s for s in sockets if not s["initial"]]
        burst_ms = cpu(end) - cpu(applied) - end["ticks"] * per_tick_ms
        print(f"follow_bench: burst of {args.burst} connections while following: "
              f"{len(new)} set at the next ticks, "
              f"{burst_ms:.1f} ms CPU beyond the ticks: "
              f"{1000 * burst_ms / max(1, len(new)):.1f} us per new connection", flush=True)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
