"""kernel_test.py - kernel mode: `keepalive attach` / `keepalive detach`, a
sock_ops program on a cgroup v2 directory (a cgroup2 file system the test
mounts itself, or the host's).

KernelModeTest.test_rule_corpus_decides_as_the_library is the differential
test: each configuration of a corpus (the library's rule tests: directions,
local and peer ports, IPv4, IPv6 and IPv4-mapped peers, `off`) runs one
scenario twice - a Python peer with libkeepalive preloaded, and the same peer
without it in a cgroup with the program attached - and every accepted and
connected socket must read back the same five values in both.
The scenario: three listeners (IPv4 127.0.0.1, IPv6 ::1, dual-stack
::ffff:127.0.0.1) made by the test (inside the cgroup: a socket belongs to
the cgroup of the process that makes it) with connections from 127.0.0.1,
127.0.0.2, 127.0.0.3 and ::1 waiting in their queues; the peer accepts them
and connects to three listeners outside (127.0.0.1, 127.0.0.2, ::1).
Reach: raw_peer.c, linked statically with glibc (built by CMake) and with
musl (musl-gcc, by the test), makes its sockets with raw system calls: no
preload reaches it, the program does; so does go_peer.go (go_test.py's), whose
own 15 s wins where Go sets it, as a program's own setsockopt always does.
Environment: LIBKEEPALIVE_COMMAND, LIBKEEPALIVE_TEST_PRELOAD (the library),
LIBKEEPALIVE_TEST_RAW_PEER (raw_peer, static), LIBKEEPALIVE_TEST_SOURCE_DIR.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

from command_testlib import (COMMAND, KERNEL_CNT, KERNEL_IDLE, KERNEL_INTVL, PYTHON, TIMEOUT,
                             clean_env, copy_of_command, keepalive, main, require, require_root)

LIBRARY = os.environ["LIBKEEPALIVE_TEST_PRELOAD"]
RAW_PEER = os.environ["LIBKEEPALIVE_TEST_RAW_PEER"]
RAW_PEER_SOURCE = os.path.join(os.environ["LIBKEEPALIVE_TEST_SOURCE_DIR"], "tests", "tools",
                               "raw_peer.c")

# The peer: accepts on the listeners it inherits (fds 3, 4, 5; how many from
# argv), connects to the destinations in argv, prints every socket's values.
PEER = textwrap.dedent("""
    import json, socket, sys
    plan = json.loads(sys.argv[1])
    values = {}
    def read(sock):
        get = lambda level, name: sock.getsockopt(level, name)
        return [get(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                get(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                get(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
                get(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
                get(socket.IPPROTO_TCP, 18)]  # TCP_USER_TIMEOUT
    kept = []
    for fd, names in plan["accept"]:
        listener = socket.socket(fileno=fd)
        for name in names:
            conn, _ = listener.accept()
            kept.append(conn)
            values[name] = read(conn)
    for name, family, host, port in plan["connect"]:
        conn = socket.socket(socket.AF_INET6 if family == 6 else socket.AF_INET)
        conn.connect((host, port))
        kept.append(conn)
        values[name] = read(conn)
    print(json.dumps(values))
""")

# (ka name, listener, client address); the peer accepts in this order.
CLIENTS = [("a1", "a", "127.0.0.1"), ("a2", "a", "127.0.0.2"), ("a3", "a", "127.0.0.3"),
           ("b1", "b", "::1"), ("m1", "m", "127.0.0.3"), ("m2", "m", "127.0.0.1")]
# (name, family, address) of the listeners outside that the peer connects to.
DESTINATIONS = [("out_c", 4, "127.0.0.1"), ("out_c2", 4, "127.0.0.2"), ("out_d", 6, "::1")]

# {A} {B} {M}: the peer's listeners' ports; {C} {C2} {D}: the destinations'.
CORPUS = [
    "",
    "peer=127.0.0.2,127.0.0.3 idle=120 cnt=3; in port={A} idle=180 cnt=4; in port={B} off; "
    "out port={C},{D} idle=240 intvl=7",
    "peer=127.0.0.0/8,::1 off; in port={A} idle=180",
    "peer=127.0.0.2 off; in port={A} idle=123; off",
    "in peer=127.0.0.2 idle=50 intvl=5 user_timeout=9s",
    "in port={M} peer=127.0.0.3 cnt=2; in port=1024-65535 idle=200; out peer=127.0.0.2 idle=70",
    "out peer=::1 idle=61; out port={C2} off; in peer=::/0 idle=62; in peer=127.0.0.0/30 idle=63",
    "in port=1-1023 off; out port=1-1023 off; in idle=300 user_timeout=1m",
    "peer=::ffff:127.0.0.3 idle=64; off",
]
GLOBALS = [{"KEEPALIVE_IDLE": "100", "KEEPALIVE_CNT": "5", "KEEPALIVE_USER_TIMEOUT": "20s"},
           {"KEEPALIVE_IDLE": "240", "KEEPALIVE_INTVL": "17", "KEEPALIVE_CNT": "4",
            "KEEPALIVE_USER_TIMEOUT": "45s"}]


def cgroup2_mount():
    """An existing cgroup2 mount point, or None."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[fields.index("-") + 1] == "cgroup2":
                return fields[4]
    return None


def own_cgroup(mount):
    """This process's cgroup v2 directory under `mount`."""
    with open("/proc/self/cgroup") as f:
        for line in f:
            if line.startswith("0::"):
                return os.path.join(mount, line[3:].strip().lstrip("/"))
    return mount


def make_cgroup(test):
    """A new child of this process's cgroup v2 directory (on a cgroup2 mount
    of the test's own when none is mounted), removed when the test ends:
    (this process's cgroup, the child). Needs root, else the test is skipped."""
    require_root(test, "to load BPF programs and move processes between cgroups")
    mount = cgroup2_mount()
    if mount is None:
        mount = tempfile.mkdtemp(prefix="ka-cgroup2-")
        test.addCleanup(os.rmdir, mount)
        mounted = subprocess.run(["mount", "-t", "cgroup2", "none", mount],
                                 capture_output=True, text=True)
        require(test, mounted.returncode != 0 and f"cannot mount cgroup2: {mounted.stderr}")
        test.addCleanup(subprocess.run, ["umount", mount])
    home = own_cgroup(mount)
    cgroup = tempfile.mkdtemp(prefix="ka-kernel-", dir=home)
    test.addCleanup(os.rmdir, cgroup)
    return home, cgroup


def process_in(test, cgroup):
    """A process (sleep) moved into `cgroup` before it runs, ended when the
    test ends: its PID, once /proc shows it there."""
    sleeper = subprocess.Popen(["sh", "-c", f'echo $$ > {cgroup}/cgroup.procs && exec sleep 60'])
    test.addCleanup(sleeper.wait)
    test.addCleanup(sleeper.kill)
    for _ in range(100):
        with open(f"/proc/{sleeper.pid}/cgroup") as f:
            if os.path.basename(cgroup) in f.read():
                break
        time.sleep(0.05)
    return sleeper.pid


class KernelModeTest(unittest.TestCase):
    def setUp(self):
        self.home, self.cgroup = make_cgroup(self)
        os.chmod(self.cgroup, 0o755)  # others may open it: their refusal is the kernel\'s

    def attach(self, *args):
        result = keepalive("attach", self.cgroup, *args)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.addCleanup(keepalive, "detach", self.cgroup)
        return result

    def move_self(self, directory):
        with open(os.path.join(directory, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))

    def run_scenario(self, rules, globals_, kernel):
        """The values of every socket of the scenario, with the library
        preloaded (kernel False) or in the cgroup with the program attached."""
        if kernel:
            self.move_self(self.cgroup)
        try:
            listeners = {"a": socket.create_server(("127.0.0.1", 0)),
                         "b": socket.create_server(("::1", 0), family=socket.AF_INET6),
                         "m": socket.socket(socket.AF_INET6)}
            listeners["m"].setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            listeners["m"].bind(("::ffff:127.0.0.1", 0))
            listeners["m"].listen()
        finally:
            if kernel:
                self.move_self(self.home)
        outside = [socket.create_server((address, 0), family=socket.AF_INET6 if family == 6
                                        else socket.AF_INET)
                   for _, family, address in DESTINATIONS]
        ports = {"{A}": listeners["a"].getsockname()[1], "{B}": listeners["b"].getsockname()[1],
                 "{M}": listeners["m"].getsockname()[1], "{C}": outside[0].getsockname()[1],
                 "{C2}": outside[1].getsockname()[1], "{D}": outside[2].getsockname()[1]}
        for name, port in sorted(ports.items(), key=lambda item: -len(item[0])):
            rules = rules.replace(name, str(port))
        env = clean_env(**globals_, KEEPALIVE_RULES=rules)
        if kernel:  # before the connections: they are configured when established
            self.attach(*self.flags(globals_, rules))
        clients = []
        for _, listener, address in CLIENTS:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            client = socket.socket(family)
            client.bind((address, 0))
            target = listeners[listener].getsockname()
            client.connect(("127.0.0.1" if listener == "m" else target[0], target[1]))
            clients.append(client)
        order = ["a", "b", "m"]
        plan = {"accept": [[3 + i, [c for c, lst, _ in CLIENTS if lst == name]]
                           for i, name in enumerate(order)],
                "connect": [[name, family, address, sock.getsockname()[1]]
                            for (name, family, address), sock in zip(DESTINATIONS, outside)]}
        fds = [listeners[name].fileno() for name in order]

        def place_listeners():
            moved = [os.dup(fd) for fd in fds]
            for i, fd in enumerate(moved):
                os.dup2(fd, 3 + i)

        if kernel:
            command = ["sh", "-c", f'echo $$ > {self.cgroup}/cgroup.procs && exec "$0" "$@"',
                       PYTHON, "-c", PEER, json.dumps(plan)]
        else:
            command = [PYTHON, "-c", PEER, json.dumps(plan)]
            env["LD_PRELOAD"] = LIBRARY
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=TIMEOUT,
                                pass_fds=(3, 4, 5), preexec_fn=place_listeners)
        for sock in clients + outside + list(listeners.values()):
            sock.close()
        self.assertEqual(result.returncode, 0, result.stderr)
        if kernel:
            keepalive("detach", self.cgroup)
        return json.loads(result.stdout)

    @staticmethod
    def flags(globals_, rules):
        names = {"KEEPALIVE_IDLE": "--idle", "KEEPALIVE_INTVL": "--intvl",
                 "KEEPALIVE_CNT": "--cnt", "KEEPALIVE_USER_TIMEOUT": "--user-timeout"}
        return [item for name, value in globals_.items() for item in (names[name], value)] + \
            ["--rules", rules]

    def test_rule_corpus_decides_as_the_library(self):
        differences = []
        for globals_ in GLOBALS:
            for rules in CORPUS:
                library = self.run_scenario(rules, globals_, kernel=False)
                kernel = self.run_scenario(rules, globals_, kernel=True)
                print(f"{rules or '(no rules)'} with {globals_}:")
                for name in sorted(library):
                    print(f"  {name}: library {library[name]}, kernel {kernel[name]}")
                    if library[name] != kernel[name]:
                        differences.append((rules, globals_, name, library[name], kernel[name]))
        self.assertEqual(differences, [])
        self.assertGreater(len(CORPUS) * len(GLOBALS), 0)

    def test_attach_replaces_only_its_own_program_and_detach_removes_it(self):
        first = self.attach("--idle", "123")
        self.assertIn("attached to " + self.cgroup, first.stdout)
        second = self.attach("--idle", "124", "--rules", "in port=5222 idle=270")
        self.assertIn("replaced our program on " + self.cgroup, second.stdout)
        listed = keepalive("attach", self.cgroup, "--list")
        self.assertEqual(listed.returncode, 0, listed.stderr)
        self.assertIn("1 sock_ops program\n", listed.stdout)
        self.assertIn("keepalive: global idle=124s", listed.stdout)
        self.assertIn("rule 1: in port=5222 idle=270", listed.stdout)
        detached = keepalive("detach", self.cgroup)
        self.assertEqual((detached.returncode, detached.stdout),
                         (0, f"{self.cgroup}: detached our program\n"))
        listed = keepalive("attach", self.cgroup, "--list")
        self.assertIn("0 sock_ops programs\n", listed.stdout)
        again = keepalive("detach", self.cgroup)
        self.assertIn("no program of ours was attached", again.stdout)

    def in_cgroup(self, *command, env=None):
        """Runs `command` inside the test's cgroup; its stdout."""
        result = subprocess.run(["sh", "-c", f'echo $$ > {self.cgroup}/cgroup.procs && '
                                 'exec "$0" "$@"', *command], env=env or clean_env(),
                                capture_output=True, text=True, timeout=TIMEOUT)
        self.assertEqual(result.returncode, 0, result.stderr)
        return result.stdout

    def raw_peers(self):
        """raw_peer linked with glibc, and with musl when musl-gcc is there."""
        musl_gcc = shutil.which("musl-gcc")
        require(self, musl_gcc is None and "musl-gcc not found (Debian: musl-tools)")
        musl = os.path.join(tempfile.mkdtemp(prefix="ka-musl-"), "raw_peer_musl")
        self.addCleanup(shutil.rmtree, os.path.dirname(musl))
        built = subprocess.run([musl_gcc, "-static", "-O1", "-o", musl, RAW_PEER_SOURCE],
                               capture_output=True, text=True)
        self.assertEqual(built.returncode, 0, built.stderr)
        return {"static glibc": RAW_PEER, "static musl": musl}

    def test_programs_no_preload_reaches_get_the_settings(self):
        untouched = f"0 {KERNEL_IDLE} {KERNEL_INTVL} {KERNEL_CNT} 0"
        for name, program in self.raw_peers().items():
            with self.subTest(program=name):
                # The preload cannot enter them ...
                preloaded = subprocess.run([program], env=clean_env(LD_PRELOAD=LIBRARY,
                                                                    KEEPALIVE_IDLE="123"),
                                           capture_output=True, text=True, timeout=TIMEOUT)
                self.assertEqual(preloaded.stdout,
                                 f"client {untouched}\nserver {untouched}\n", preloaded.stderr)
                # ... the program on their cgroup configures both ends.
                self.attach("--idle", "123", "--intvl", "11", "--cnt", "4", "--user-timeout", "9s")
                self.assertEqual(self.in_cgroup(program),
                                 "client 1 123 11 4 9000\nserver 1 123 11 4 9000\n")

    def test_a_go_program_gets_the_settings_where_it_sets_none(self):
        from go_test import Peer, build_go_peer  # its environment: this class's only
        directory = tempfile.mkdtemp(prefix="ka-go-")
        self.addCleanup(shutil.rmtree, directory)
        program, missing = build_go_peer(directory)
        require(self, missing)
        self.attach("--idle", "123", "--intvl", "11", "--cnt", "4")
        enter = ["sh", "-c", f'echo $$ > {self.cgroup}/cgroup.procs && exec "$0" "$@"', program]
        # Go's keepalive off (KeepAlive: -1): every connection gets ours.
        peer = Peer(self, enter + ["-keepalive=off"])
        self.assertEqual(peer.accept("in")["options"], [1, 123, 11, 4])
        self.assertEqual(peer.dial("out")["options"], [1, 123, 11, 4])
        peer.stop()
        # By default Go sets 15 s itself after accept and dial: its own
        # values win, ours stay where it sets none (the count).
        peer = Peer(self, enter)
        for options in (peer.accept("in")["options"], peer.dial("out")["options"]):
            self.assertEqual(options[:3], [1, 15, 15])
            self.assertEqual(options[3], 4)
        peer.stop()

    def test_own_timings_are_left_alone(self):
        # The client sets TCP_KEEPIDLE 600 before connect(): left alone, as
        # the library leaves it; the accepted end gets ours.
        self.attach("--idle", "123", "--intvl", "11")
        self.assertEqual(self.in_cgroup(RAW_PEER, "600"),
                         f"client 0 600 {KERNEL_INTVL} {KERNEL_CNT} 0\n"
                         f"server 1 123 11 {KERNEL_CNT} 0\n")

    def test_others_programs_stay(self):
        # Someone else's program on the cgroup stays through our attach,
        # replace and detach; theirs and ours both run.
        foreign = os.environ["LIBKEEPALIVE_TEST_FOREIGN_SOCKOPS"]
        subprocess.run([foreign, "attach", self.cgroup], check=True, timeout=TIMEOUT)
        self.addCleanup(subprocess.run, [foreign, "detach", self.cgroup], timeout=TIMEOUT)
        self.attach("--idle", "123")
        self.attach("--idle", "124")
        listed = keepalive("attach", self.cgroup, "--list").stdout
        self.assertIn("2 sock_ops programs\n", listed)
        self.assertRegex(listed, r"id \d+ other \(not ours\)")
        ours = f"1 124 {min(124, KERNEL_INTVL)} {KERNEL_CNT} 0"
        self.assertEqual(self.in_cgroup(RAW_PEER), f"client {ours}\nserver {ours}\n")
        detached = keepalive("detach", self.cgroup)
        self.assertEqual(detached.returncode, 0, detached.stderr)
        listed = keepalive("attach", self.cgroup, "--list").stdout
        self.assertIn("1 sock_ops program\n", listed)
        self.assertRegex(listed, r"id \d+ other \(not ours\)")

    def test_a_process_outside_the_cgroup_is_untouched(self):
        self.attach("--idle", "123")
        server = socket.create_server(("127.0.0.1", 0))
        client = socket.create_connection(server.getsockname())
        conn, _ = server.accept()
        for sock in (client, conn):
            self.assertEqual(
                [sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                 sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                 sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
                 sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT)],
                [0, KERNEL_IDLE, KERNEL_INTVL, KERNEL_CNT])
            sock.close()
        server.close()

    @staticmethod
    def large_rules(items):
        """64 rules, each with `items` ports and `items` IPv6 CIDRs."""
        return "; ".join(
            ("in" if i % 2 else "out") + " port=" +
            ",".join(str(1000 + i * 64 + j) for j in range(items)) + " peer=" +
            ",".join(f"2001:db8:{i:x}:{j:x}::/127" for j in range(items)) + f" idle={60 + i}"
            for i in range(64))

    def test_the_verifier_takes_large_configurations_and_its_refusal_is_explained(self):
        # 64 rules of 16 ports and 16 IPv6 CIDRs each: loaded and attached.
        result = self.attach("--idle", "100", "--rules", self.large_rules(16))
        self.assertRegex(result.stdout, r"\((\d{5}) instructions\)")
        # 24 of each: more paths than the verifier explores (1 million
        # instructions); refused, with its reason, and nothing attached.
        result = keepalive("attach", self.cgroup, "--idle", "100", "--rules", self.large_rules(24))
        self.assertEqual(result.returncode, 3, result.stdout + result.stderr)
        self.assertIn("the kernel refused the program: Argument list too long (verifier: BPF "
                      "program is too large.", result.stderr)
        listed = keepalive("attach", self.cgroup, "--list")
        self.assertIn("keepalive: global idle=100s", listed.stdout)  # the first one stays

    def test_usage_and_refusals(self):
        cases = [
            (["attach"], 2, "give a cgroup directory, --pid PID or --own-cgroup"),
            (["attach", self.cgroup, "--pid", "1"], 2, "give a cgroup directory, --pid PID or --own-cgroup"),
            (["attach", "/tmp"], 3, "/tmp: not a cgroup v2 directory"),
            (["attach", "/nonexistent"], 3, "/nonexistent: No such file or directory"),
            (["attach", "--pid", "999999999"], 3, "no such process 999999999"),
            (["attach", self.cgroup, "--idle", "0"], 2, "KEEPALIVE_IDLE"),
            (["detach"], 2, "give a cgroup directory, --pid PID or --own-cgroup"),
        ]
        for args, status, message in cases:
            result = keepalive(*args)
            self.assertEqual(result.returncode, status, f"{args}: {result.stderr}")
            self.assertIn(message, result.stderr, args)
        # Not root: the reason, exit 3, nothing changed.
        from apply_test import as_nobody  # its environment: this class's only
        for args in (["attach", self.cgroup, "--idle", "100"], ["detach", self.cgroup]):
            result = keepalive(*args, prefix=as_nobody(), command=copy_of_command(self))
            self.assertEqual(result.returncode, 3, result.stderr)
            self.assertIn("kernel mode needs root (CAP_BPF, CAP_NET_ADMIN); nothing changed",
                          result.stderr)
        result = keepalive("attach", self.cgroup, env=clean_env(KEEPALIVE="off"))
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("KEEPALIVE=off: nothing to attach", result.stderr)
        listed = keepalive("attach", self.cgroup, "--list")
        self.assertIn("0 sock_ops programs\n", listed.stdout)

    def test_pid_names_the_process_cgroup(self):
        self.attach("--idle", "123")
        pid = process_in(self, self.cgroup)
        listed = keepalive("attach", "--pid", str(pid), "--list")
        self.assertEqual(listed.returncode, 0, listed.stderr)
        self.assertTrue(listed.stdout.startswith(self.cgroup + ": 1 sock_ops program"),
                        listed.stdout)

    def test_inspect_shows_the_programs_that_apply(self):
        # Ours on the cgroup and on its parent's child: both apply to a
        # process in the child, nearest first; none to this test process.
        child = os.path.join(self.cgroup, "child")
        os.mkdir(child)
        self.addCleanup(os.rmdir, child)
        self.attach("--idle", "123")
        attached = keepalive("attach", child, "--idle", "77")
        self.assertEqual(attached.returncode, 0, attached.stderr)
        self.addCleanup(keepalive, "detach", child)
        sleeper = subprocess.Popen(["sh", "-c", f'echo $$ > {child}/cgroup.procs && exec sleep 30'])
        self.addCleanup(sleeper.wait)
        self.addCleanup(sleeper.kill)
        for _ in range(100):
            with open(f"/proc/{sleeper.pid}/cgroup") as f:
                if "/child" in f.read():
                    break
            time.sleep(0.05)
        report = json.loads(keepalive("inspect", str(sleeper.pid), "--json").stdout)
        self.assertEqual([(k["cgroup"], k["configuration"].split(";")[0])
                          for k in report["kernel_mode"]],
                         [(child, f"global idle=77s intvl={min(77, KERNEL_INTVL)}s cnt=kernel "
                                  "user_timeout=kernel"),
                          (self.cgroup, f"global idle=123s intvl={min(123, KERNEL_INTVL)}s "
                                        "cnt=kernel user_timeout=kernel")])
        text = keepalive("inspect", str(sleeper.pid)).stdout
        self.assertIn(f" on {child}: global idle=77s", text)
        mine = json.loads(keepalive("inspect", str(os.getpid()), "--json").stdout)
        self.assertEqual(mine["kernel_mode"], [])

    def test_own_cgroup_is_the_commands_own(self):
        # As a service's ExecStartPre=+ runs it: inside the cgroup, and in a
        # delegated unit's .control subgroup, which stands for its parent.
        control = os.path.join(self.cgroup, ".control")
        os.mkdir(control)
        self.addCleanup(os.rmdir, control)
        for where in (self.cgroup, control):
            result = subprocess.run(
                ["sh", "-c", f'echo $$ > {where}/cgroup.procs && exec "$0" "$@"', COMMAND,
                 "attach", "--own-cgroup", "--idle", "123"],
                env=clean_env(), capture_output=True, text=True, timeout=TIMEOUT)
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertIn(f" {self.cgroup}: global idle=123s", result.stdout)
        self.addCleanup(keepalive, "detach", self.cgroup)
        ours = f"1 123 {min(123, KERNEL_INTVL)} {KERNEL_CNT} 0"
        self.assertEqual(self.in_cgroup(RAW_PEER), f"client {ours}\nserver {ours}\n")


if __name__ == "__main__":
    main()
