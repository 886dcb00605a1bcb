#!/usr/bin/env python3
"""qemu_preload_test.py - the cross-built library preloaded for real: an
aarch64 server and an aarch64 client (the integration tests' ka_peer, built
for the target) run under qemu-user with the aarch64 libkeepalive.so in
LD_PRELOAD; each reads its socket's options back (getsockopt, through qemu's
system-call translation), and `ss -tnoe` sees the host kernel's keepalive
timers on both ends. A control run without the library must leave the
client's socket untouched.

Usage: qemu_preload_test.py EMULATOR... -- KA_PEER LIBRARY
(EMULATOR is e.g. `qemu-aarch64 -L /usr/aarch64-linux-gnu`.)
"""
import socket
import subprocess
import sys
import time

# in: accepted by the server; out: opened by the client. Distinct values
# show that each side got its own rule.
RULES = "in idle=41 intvl=7 cnt=5 user_timeout=23s; out idle=53 intvl=9 cnt=3"
EXPECTED = {
    "in": {"keepalive": "1", "idle": "41", "intvl": "7", "cnt": "5", "user_timeout": "23000"},
    "out": {"keepalive": "1", "idle": "53", "intvl": "9", "cnt": "3", "user_timeout": "0"},
}


def start(emulator, peer, library, args, **popen):
    env = ["-E", "KEEPALIVE_RULES=" + RULES]
    env += ["-E", "LD_PRELOAD=" + library] if library else ["-U", "LD_PRELOAD"]
    return subprocess.Popen(emulator + env + [peer, "script"] + args, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, **popen)


def until_ready(process, what):
    lines = []
    for line in process.stdout:
        if line.strip() == "ready":
            return lines
        lines.append(line.strip())
    raise SystemExit(f"FAIL: {what} ended before it was ready: {lines}")


def finish(process):
    process.stdin.close()
    rest = process.stdout.read()
    if process.wait(timeout=60) != 0:
        raise SystemExit(f"FAIL: exit status {process.returncode}")
    return rest


def values(lines, name):
    prefix = f"sock.{name}."
    return {l[len(prefix):].split("=", 1)[0]: l.split("=", 1)[1]
            for l in lines if l.startswith(prefix)}


def main():
    split = sys.argv.index("--")
    emulator, (peer, library) = sys.argv[1:split], sys.argv[split + 1:]
    machine = subprocess.run(["readelf", "-h", library], capture_output=True, text=True).stdout
    if "AArch64" not in machine:
        raise SystemExit(f"FAIL: {library} is not an aarch64 library")
    failures = 0

    began = time.monotonic()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    port = listener.getsockname()[1]
    server = start(emulator, peer, library,
                   ["inherit", "srv", str(listener.fileno()), "accept", "in", "srv", "accept", "show"],
                   pass_fds=(listener.fileno(),))
    client = start(emulator, peer, library, ["connect", "out", "127.0.0.1", str(port), "show"])
    client_lines = until_ready(client, "client")
    server_lines = until_ready(server, "server")
    started = time.monotonic() - began
    ss = subprocess.run(["ss", "-tnoe", "state", "established", f"( sport = :{port} or dport = :{port} )"],
                        capture_output=True, text=True).stdout
    client_lines += finish(client).split()
    server_lines += finish(server).split()
    listener.close()

    for lines, who in ((server_lines, "server"), (client_lines, "client")):
        if "process.preloaded=1" not in lines:
            print(f"FAIL: the aarch64 {who} did not load the library: {lines}")
            failures += 1
    for name, lines in (("in", server_lines), ("out", client_lines)):
        got = {k: v for k, v in values(lines, name).items() if k in EXPECTED[name]}
        if got == EXPECTED[name]:
            print(f"ok: aarch64 {'server' if name == 'in' else 'client'} socket reads back {got}")
        else:
            print(f"FAIL: {name}: read back {got}, expected {EXPECTED[name]}")
            failures += 1
    timers = [l for l in ss.splitlines() if "timer:(keepalive," in l]
    if len(timers) == 2:
        print("ok: ss -tnoe shows a keepalive timer on both ends:")
        for line in timers:
            print("   ", " ".join(line.split()[2:5]))
    else:
        print(f"FAIL: ss -tnoe, expected two keepalive timers:\n{ss}")
        failures += 1

    # Control: the same client without the library stays untouched.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    control = start(emulator, peer, None, ["connect", "out", "127.0.0.1", str(listener.getsockname()[1]), "show"])
    control_lines = until_ready(control, "control client")
    control_lines += finish(control).split()
    listener.close()
    keepalive = values(control_lines, "out").get("keepalive")
    if keepalive == "0" and "process.preloaded=0" in control_lines:
        print("ok: without the library the aarch64 client's socket has SO_KEEPALIVE=0")
    else:
        print(f"FAIL: control run: {control_lines}")
        failures += 1

    print(f"qemu figures: server and client started, connected and reported in {started:.2f} s; "
          f"whole test {time.monotonic() - began:.2f} s")
    if failures:
        raise SystemExit(f"qemu preload test: {failures} check(s) failed")
    print("qemu preload test: all checks passed")


if __name__ == "__main__":
    main()
