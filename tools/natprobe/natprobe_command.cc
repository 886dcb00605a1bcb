// natprobe_command.cc — `keepalive natprobe server|client`: measures the idle
// timeout of the NAT between a client behind it (a laptop on a phone's
// hotspot) and a server (beside Prosody), and recommends KEEPALIVE_IDLE.
// This file holds the help and the options; client.cc and server.cc the two
// event loops, probe.cc the sockets they share, natprobe.cc the protocol,
// the rounds and the report (pure).

#include <stdio.h>

#include <string>
#include <string_view>
#include <vector>

#include "commands.h"
#include "lib/cli.h"
#include "lib/options.h"
#include "lib/output.h"
#include "natprobe/probe.h"

namespace keepalive_natprobe {

// The options of the client and of the server, in --help order.
namespace {
const std::string kParallelHelp =
    "connections at a time, 1.." + std::to_string(kMaxParallel) + " (default 64)";
}  // namespace

const std::vector<keepalive_cli::Option> kClientOptions = {
    {"--max", "DURATION", "longest idle period probed (default 30m, up to 24h)"},
    {"--resolution", "DURATION",
     "stop when the timeout is bracketed this closely (default 10s, at least 1s)"},
    {"--grace", "DURATION",
     "how long after an idle period to wait for the line (default 5s: a phone's radio may "
     "need seconds to wake up)"},
    {"--parallel", "N", kParallelHelp.c_str()},
    {"--give-up-after", "DURATION",
     "stop when probes could not be set up, and the server did not answer, for this long "
     "(default 5m); meanwhile retried after 1s, 2s, 4s ... up to 30s"},
    {"--json", nullptr, "the result as one JSON object on stdout"},
};
const std::vector<keepalive_cli::Option> kServerOptions = {
    {"--listen", "ADDR:PORT",
     "where to listen (default [::]:7200, IPv6 and IPv4; 0.0.0.0:7200 for IPv4 only; port 0 "
     "picks a free one)"},
};

// The client's part of --help: its arguments and options.
namespace {

std::string client_help() {
  return "client:\n" +
         keepalive_cli::help_entry("HOST:PORT",
                                   "the server (IPv6 in brackets: [2001:db8::1]:7200)") +
         keepalive_cli::options_help(kClientOptions);
}

}  // namespace

void print_help() {
  using keepalive_cli::help_entry;
  std::string text =
      "Usage: keepalive natprobe server [--listen ADDR:PORT]\n"
      "       keepalive natprobe client HOST:PORT [--max DURATION]\n"
      "                                 [--resolution DURATION] [--grace DURATION]\n"
      "                                 [--parallel N] [--give-up-after DURATION]\n"
      "                                 [--json]\n"
      "Measures how long the NAT between a client and a server keeps an idle TCP\n"
      "connection (its idle timeout) and recommends KEEPALIVE_IDLE with a safety\n"
      "margin.\n"
      "\n"
      "Run the server on the machine whose connections need keepalive (beside\n"
      "Prosody), with its port open in the firewall, and the client behind the NAT (a\n"
      "laptop tethered to the phone). The client opens several connections at once; on\n"
      "each, the server sends one line after the idle period the client asked for. A\n"
      "line that arrives means the NAT still knew the connection; silence, a reset or\n"
      "a close means it had forgotten it. Rounds of probes narrow the timeout down to\n"
      "the resolution; the connections carry no keepalive, even with libkeepalive\n"
      "preloaded.\n"
      "\n"
      "server:\n";
  text += keepalive_cli::options_help(kServerOptions);
  text += client_help();
  text +=
      "A loss narrows the bracket only once it is confirmed, by a loss in another\n"
      "round (a single one may be an outage or a lost packet). After the first loss,\n"
      "two waves of probes split the bracket, the second set up max(resolution,\n"
      "2 x grace) later: what both lose is confirmed in the same pass.\n"
      "Progress goes to stderr, one line per finished probe. Ctrl-C stops the client\n"
      "and prints what was learned so far. A run takes about two silences as long\n"
      "as the timeout: with the defaults and a 5-minute timeout, about 11 minutes.\n"
      "\n"
      "Exit status: 0 measured (or no timeout up to --max); 1 the server cannot be\n"
      "reached, is not a natprobe server, or contact was lost; 2 usage error; 130\n"
      "interrupted.\n"
      "\n"
      "Example: keepalive natprobe server --listen 0.0.0.0:7200      (on the server)\n"
      "         keepalive natprobe client xmpp.example.org:7200     (behind the NAT)\n";
  fputs(text.c_str(), stdout);
}

}  // namespace keepalive_natprobe

int keepalive_cmd_natprobe(int argc, char **argv) {
  if (argc < 2) {
    keepalive_cli::print_error(keepalive_natprobe::kName,
                               "expected server or client (see keepalive natprobe --help)");
    return keepalive_cli::kExitUsage;
  }
  std::string_view mode = argv[1];
  for (int index = 1; index < argc; ++index) {
    std::string_view arg = argv[index];
    if (keepalive_cli::is_help_option(arg)) {
      keepalive_natprobe::print_help();
      return keepalive_cli::kExitOk;
    }
  }
  if (mode == "server") return keepalive_natprobe::run_server(argc - 1, argv + 1);
  if (mode == "client") return keepalive_natprobe::run_client(argc - 1, argv + 1);
  keepalive_cli::print_error(keepalive_natprobe::kName,
                             "unknown mode '" + std::string(mode) +
                                 "': expected server or client (see keepalive natprobe --help)");
  return keepalive_cli::kExitUsage;
}
