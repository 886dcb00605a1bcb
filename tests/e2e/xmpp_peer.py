#!/usr/bin/python3
"""tests/e2e/xmpp_peer.py — a real XMPP client (slixmpp) for the Prosody
end-to-end test and examples/prosody/demo, run by tests/e2e/prosody-in-cgnat.

  receiver  the idle phone: logs in, sends presence, then stays silent and
            reports whether and when a message arrives; exits after the first
            message, after --wait seconds, or on SIGTERM.
  sender    the friend: logs in, sends one chat message to --to, waits until
            the server has processed it (a roster query answered after it) and
            exits. It logs in just before sending, so its own connection is
            fresh and the NAT's timeout cannot touch it.

Neither sends anything on its own while idle: slixmpp's whitespace keepalive
is switched off and no XEP-0199 (ping) or XEP-0198 (stream management) plugin
is loaded, so only the server's side can keep the NAT mapping alive. The
client connects by address with the domain given explicitly (no DNS), without
TLS (the test server allows unencrypted SCRAM; see prosody-in-cgnat).

Report format, as the other e2e peers (peer.h): one line per event on stdout,
flushed at once, "EVENT key=value ... t=SECONDS", t counted from --t0 (Unix
time, default: program start) so that several programs share one clock.
Exit status: 0 when the mode's task was done (for the receiver: it stayed
online until told to stop, message or not), 1 on a failure.
"""
import argparse
import signal
import sys
import time

try:
    import slixmpp
except ImportError:
    print("error reason=no_slixmpp (apt-get install python3-slixmpp)", flush=True)
    sys.exit(1)

T0 = time.time()


def report(event, **fields):
    words = [event] + [f"{key}={value}" for key, value in fields.items()]
    print(" ".join(words) + f" t={time.time() - T0:.3f}", flush=True)


class Peer(slixmpp.ClientXMPP):
    def __init__(self, args):
        super().__init__(args.jid, args.password)
        self.args = args
        self.whitespace_keepalive = False  # the client must stay silent while idle
        # When the server last sent anything (bytes, not stanzas), and the
        # time before that: a message is handled inside data_received, after
        # last_data moved to now.
        self.last_data = self.previous_data = None
        self.outcome = None
        self.add_event_handler("session_start", self.on_session_start)
        self.add_event_handler("failed_auth", lambda _: self.fail("auth_failed"))
        self.add_event_handler("connection_failed", lambda e: self.fail("connection_failed"))
        self.add_event_handler("disconnected", self.on_disconnected)
        self.add_event_handler("message", self.on_message)

    async def get_dns_records(self, domain, port=None):
        # slixmpp looks the JID's domain up even when given an address (and
        # waits for the resolver to time out here); the server is an address.
        return [(self.args.server, self.args.server, self.args.port)]

    def data_received(self, data):
        self.previous_data, self.last_data = self.last_data, time.time()
        super().data_received(data)

    def connection_made(self, transport):
        super().connection_made(transport)
        host, port = transport.get_extra_info("sockname")[:2]
        report("connected", local=f"{host}:{port}")

    def fail(self, reason):
        if self.outcome is None:
            self.outcome = "error"
            report("error", reason=reason)
        self.stop()

    def stop(self):
        self.disconnect(wait=1.0)
        self.loop.call_later(2.0, self.loop.stop)

    def on_disconnected(self, _event):
        if self.outcome is None:
            self.outcome = "error"
            report("error", reason="disconnected")
        self.loop.stop()

    async def on_session_start(self, _event):
        if self.args.mode == "receiver":
            self.send_presence()
            await self.get_roster()
            report("online", jid=self.boundjid.full)
            self.loop.call_later(self.args.wait, self.finish, "deadline")
        else:
            self.send_message(mto=self.args.to, mbody=self.args.body, mtype="chat")
            report("message_sent", to=self.args.to)
            # The server handles one session's stanzas in order: once this
            # query is answered, the message has been routed.
            await self.get_roster()
            report("message_routed")
            self.outcome = "sent"
            self.stop()

    def on_message(self, msg):
        if self.args.mode != "receiver" or msg["type"] not in ("chat", "normal"):
            return
        # idle: how long the connection had been silent before the message.
        idle = self.last_data - self.previous_data if self.previous_data else -1
        self.outcome = "received"
        report("message_received", sender=msg["from"].bare, idle=f"{idle:.3f}")
        self.stop()

    def finish(self, reason):
        if self.outcome is None:
            self.outcome = "nothing"
            since = time.time() - self.last_data if self.last_data else -1
            report("nothing_received", reason=reason, idle=f"{since:.3f}")
        # No goodbye: through a NAT that forgot the connection it would not
        # arrive anyway. The socket closes with the process.
        self.loop.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["receiver", "sender"])
    parser.add_argument("--server", required=True, help="server address (no DNS lookup)")
    parser.add_argument("--port", type=int, default=5222)
    parser.add_argument("--jid", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--to", help="sender: the recipient's JID")
    parser.add_argument("--body", default="ping from the other side of the NAT")
    parser.add_argument("--wait", type=float, default=60,
                        help="receiver: seconds to stay online (default 60)")
    parser.add_argument("--timeout", type=float, default=10,
                        help="sender: give up after this many seconds (default 10)")
    parser.add_argument("--t0", type=float, help="Unix time that t= counts from")
    args = parser.parse_args()
    if args.mode == "sender" and not args.to:
        parser.error("sender needs --to")
    global T0
    if args.t0 is not None:
        T0 = args.t0

    peer = Peer(args)
    report("start", mode=args.mode, jid=args.jid, server=f"{args.server}:{args.port}")
    if args.mode == "receiver":
        peer.loop.add_signal_handler(signal.SIGTERM, peer.finish, "stopped")
    else:
        peer.loop.call_later(args.timeout, peer.fail, "timeout")
    # By address (no SRV lookup), never STARTTLS: the test server offers none.
    peer.connect(address=(args.server, args.port), force_starttls=False, disable_starttls=True)
    peer.loop.run_forever()
    return 0 if peer.outcome in ("received", "nothing", "sent") else 1


if __name__ == "__main__":
    sys.exit(main())
