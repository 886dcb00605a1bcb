// socket_pass.h — the one pass over a running process's TCP sockets that
// apply, apply --follow, status, disable --now and inspect share. For each
// socket: duplicate it (pidfd_getfd), read its keepalive options, decide it
// as the library decides (keepalive_facts_from_sockaddr, keepalive_decide),
// apply the leave-alone rule, then, as the mode says, set, predict, reset,
// compare or only describe. One vocabulary of actions (Action), one totals
// structure (Totals) in which every socket is counted once; the commands
// only choose a mode and a presenter (socket_report.h). Another way to act
// on a socket is one more PassMode and Action; another reason to leave one
// alone is one more check in left_alone (socket_pass.cc), and whether its
// timings were chosen is told in one place there (timings_chosen).
#ifndef KEEPALIVE_TOOLS_SOCKET_PASS_H
#define KEEPALIVE_TOOLS_SOCKET_PASS_H

#include <array>
#include <map>
#include <string>
#include <vector>

#include "keepalive/keepalive.h"
#include "lib/process.h"

namespace keepalive_cli {

// What the pass does to a socket once it is decided and not left alone.
enum class PassMode {
  kSet,           // apply: set the decision, read the socket back
  kPredict,       // apply --dry-run: what kSet would read back
  kReset,         // disable --now: a socket carrying the decision gets the kernel's values
  kPredictReset,  // disable --now --dry-run
  kCompare,       // status: whether the socket carries the decision
  kDescribe,      // inspect: decided and classified, nothing compared or changed
};

// What the pass found or did. action_info() names each; kFailed stays last.
enum class Action {
  kSet,             // options set and read back
  kWouldSet,        // kPredict: what kSet would do
  kOverridden,      // --override: set over timings the program chose (`before` holds them)
  kWouldOverride,   // kPredict: what kOverridden would do
  kReset,           // the kernel's values set back
  kWouldReset,      // kPredictReset: what kReset would do
  kCarries,         // kCompare: the socket carries the decision
  kDiffers,         // kCompare: it does not (apply would set it)
  kDescribed,       // kDescribe: decided, not left alone
  kLeft,            // the decision is off: left as it is
  kOwnTimings,      // its timings were chosen (keepalive_timings_chosen): left alone
  kByPeer,          // a listener a peer= rule asks more of (or --exact-listeners): left alone
  kNotCarried,      // kReset: it does not carry the decision: left as it is
  kListenerNotSet,  // a listening socket, and listeners are not part of the pass
  kNotEstablished,  // neither established nor listening
  kGone,            // closed (or its descriptor reused) since it was listed
  kFailed,          // a setsockopt, or reaching the socket, failed
};
inline constexpr size_t kActionCount = static_cast<size_t>(Action::kFailed) + 1;

// The totals' groups: every action belongs to exactly one.
enum class Group { kChanged, kLeft, kSkipped, kGone, kFailed, kCompared };

struct ActionInfo {
  Action action;
  const char *name;  // in JSON: "set", "own_timings", ...
  const char *word;  // in tables and lines: "set", "left", "skipped", "FAILED", ...
  Group group;
};
const ActionInfo &action_info(Action action);

// The kernel's defaults in the network namespace of the process the pass is
// over (the sysctls are per namespace; keepalive_read_kernel_defaults read
// there): read when the pass starts, and again, at most once a second, when
// a socket's idle time differs from them, so that a sysctl changed since is
// not taken for timings the program chose.
class NamespaceDefaults {
 public:
  NamespaceDefaults() = default;
  // Reads them in the namespace of process `pid` (in the caller's own when
  // that cannot be entered: listing the process's sockets then fails too,
  // and says why).
  explicit NamespaceDefaults(pid_t pid);
  // These values, never read again (a pass over sockets as listed: tests).
  static NamespaceDefaults fixed(const keepalive_kernel_defaults &values);
  const keepalive_kernel_defaults &values() const { return values_; }
  // Whether a socket that reads `read_back` had its timings chosen
  // (keepalive_timings_chosen), against the defaults as they are now.
  bool timings_chosen(const keepalive_settings &read_back) const;

 private:
  void read() const;
  pid_t pid_ = -1;  // -1: fixed
  mutable keepalive_kernel_defaults values_{};
  mutable double read_at_s_ = 0;
};

struct PassOptions {
  PassMode mode = PassMode::kSet;
  bool listeners = false;  // listening sockets are part of the pass (apply --listeners)
  bool override = false;   // kSet, kPredict: timings the program chose are set too (--override)
  // A listener is set only when every connection it accepts gets exactly its
  // settings (--exact-listeners); otherwise also when the peer= rules it
  // cannot honour ask less than it gives (off, or longer timings).
  bool exact_listeners = false;
  // The configuration this one replaces (enable --now over an earlier
  // drop-in; may be null): a socket that carries its decision carries our
  // earlier values, not the program's, and is set like one that chose none.
  const keepalive_config *replaced = nullptr;
  NamespaceDefaults kernel;
};
// The pass over process `pid`, with the kernel's defaults of its network
// namespace.
PassOptions pass_options(PassMode mode, bool listeners, pid_t pid);

// One socket after the pass.
struct Outcome {
  TcpSocket socket;
  std::vector<int> same_socket_fds;  // further descriptors of the very same socket
  Action action = Action::kLeft;
  bool decided = false;  // `settings` holds the core's decision
  keepalive_settings settings{};
  bool before_read = false;
  keepalive_settings before{};
  bool after_read = false;
  keepalive_settings after{};            // read back; predicted for kPredict
  std::string error;                     // kFailed, kGone
  std::vector<int> peer_rules;           // listeners: rules by peer= the listener cannot honour
  std::vector<int> stricter_peer_rules;  // of those, the ones that ask more than it gives
  bool second_look = false;              // apply: not in the first listing
  bool chosen = false;                   // its timings were chosen (the program's, not ours)
};

// Every socket counted once, by action.
class Totals {
 public:
  void add(Action action) { ++counts_[static_cast<size_t>(action)]; }
  int of(Action action) const { return counts_[static_cast<size_t>(action)]; }
  int of(Group group) const;
  int sockets() const;

 private:
  std::array<int, kActionCount> counts_{};
};
Totals count(const std::vector<Outcome> &outcomes);

// The pass over one socket of `target` listed as `socket` (its keepalive
// options, when read, are taken as the state before).
Outcome pass_socket(const TargetProcess &target, const keepalive_config &config,
                    const TcpSocket &socket, const PassOptions &options);

// The pass in mode kDescribe over a socket as listed (its keepalive
// options read by the listing): decided and classified, no syscall.
Outcome describe_socket(const keepalive_config &config, const TcpSocket &socket,
                        const PassOptions &options);

// One entry per socket: a socket the process holds under several
// descriptors (dup, inherited stdin/stdout) appears once, the lowest
// descriptor first, the others in *more_fds (may be null).
std::vector<TcpSocket> distinct_sockets(const std::vector<TcpSocket> &sockets,
                                        std::map<unsigned long long, std::vector<int>> *more_fds);

// The pass over each distinct socket of a listing not in *outcomes yet,
// appended to it. `second_look`: the listing came after a first one; a
// socket without inode cannot be told apart then and is skipped.
void pass_listing(const TargetProcess &target, const keepalive_config &config,
                  const PassOptions &options, const std::vector<TcpSocket> &sockets,
                  bool second_look, std::vector<Outcome> *outcomes);

// The sockets the pass sets: established connections and listeners.
bool established_or_listening(const TcpSocket &socket);

// The socket facts the core decides `socket` on: a listener stands for the
// connections it will accept (incoming, on its port, from a peer no one
// knows yet).
keepalive_socket_facts socket_facts(const TcpSocket &socket);

}  // namespace keepalive_cli

#endif  // KEEPALIVE_TOOLS_SOCKET_PASS_H
