// socket_report.h — one socket after the pass (socket_pass.h) as text and
// JSON, and the totals: what apply's table and JSON, apply --follow's
// lines and events, and the tables of status and disable --now show. The
// same socket reads the same in each.
#ifndef KEEPALIVE_TOOLS_SOCKET_REPORT_H
#define KEEPALIVE_TOOLS_SOCKET_REPORT_H

#include <string>
#include <vector>

#include "lib/cli.h"
#include "lib/output.h"
#include "lib/socket_pass.h"

namespace keepalive_cli {

// "3 sockets", "1 socket".
std::string plural(int n, const char *one, const char *many);
// "a, b, c".
std::string joined(const std::vector<std::string> &items);

// The deciding rule: "global", "2 (in port=5222 idle=270)", "off
// (KEEPALIVE=off)", or "-" when the socket was not decided.
std::string rule_text(const keepalive_config &config, const Outcome &outcome);
// The descriptors holding the socket: "5", "5,9".
std::string fds_text(const Outcome &outcome);
// "LOCAL <-> PEER", "LOCAL" without a peer, "?" for an unknown local address.
std::string endpoint_pair(const TcpSocket &socket);
// The socket's keepalive options and what became of them: "off -> idle=1s
// ...", or the options and why they were left.
std::string keepalive_column(const keepalive_config &config, const Outcome &outcome);
// The cells that name a socket and its rule, first in every row of a
// table: FD, DIR, LOCAL, PEER, RULE.
std::vector<std::string> socket_cells(const keepalive_config &config, const Outcome &outcome);

// Writes the fields of one socket into the open JSON object: fd,
// same_socket_fds, the identity, action, decision, before, after,
// inherited_by_new_connections, second_look, peer_rules_asking_more,
// peer_rules_not_honoured, error.
void socket_json_fields(JsonWriter *json, const keepalive_config &config, const Outcome &outcome);

// Writes the totals as fields of the open JSON object: sockets, then set
// (would_set for a dry run), left, skipped, gone and failed, which add up
// to sockets.
void totals_json_fields(JsonWriter *json, bool dry_run, const Totals &totals);

// The closing line: "3 sockets set, 1 left alone, 1 listening socket
// skipped (--listeners)." — every group that is not empty.
std::string totals_line(const keepalive_config &config, bool dry_run, const Totals &totals);

// Writes what identifies `socket` as fields of the open JSON object: inode,
// family, state, direction (null when neither listening nor connected),
// local and peer (null when unknown). The descriptor number ("fd") is the
// caller's to write first, with any other descriptors of the same socket.
void socket_identity_json(JsonWriter *json, const TcpSocket &socket);

// "2 descriptors could not be examined (fds 4, 7): REASON", or "" when
// every descriptor was.
std::string unexamined_text(const Unexamined &unexamined);

// Writes "unexamined": {"fds": [...], "reason": text or null} into the open
// JSON object.
void unexamined_json(JsonWriter *json, const Unexamined &unexamined);

}  // namespace keepalive_cli

#endif  // KEEPALIVE_TOOLS_SOCKET_REPORT_H
