/*
 * libkeepalive public C API.
 *
 * One parser and one policy, shared by the preloaded library, the `keepalive`
 * command and the tests:
 *
 *   environment text --keepalive_config_load--> keepalive_config (immutable)
 *   (config, socket facts) --keepalive_decide--> keepalive_settings
 *   (fd, settings) --keepalive_apply--> socket options
 *
 * Everything here is plain C, allocates nothing, throws nothing and never
 * changes errno unless a function says so.
 */
#ifndef KEEPALIVE_KEEPALIVE_H
#define KEEPALIVE_KEEPALIVE_H

#include <stddef.h>
#include <stdint.h>

#if defined(KEEPALIVE_BUILDING_LIBRARY)
#define KEEPALIVE_API __attribute__((visibility("default")))
#else
#define KEEPALIVE_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define KEEPALIVE_VERSION_STRING "0.1.0"

/* Fixed limits of the configuration storage; exceeding one is an error. */
#define KEEPALIVE_MAX_RULES 64          /* rules in KEEPALIVE_RULES */
#define KEEPALIVE_MAX_ITEMS 64          /* ports/ranges or CIDRs in one list */
#define KEEPALIVE_MAX_PROBLEMS 16       /* problems kept (further ones are counted) */
#define KEEPALIVE_MAX_WARNINGS 8        /* warnings kept (further ones are counted) */
#define KEEPALIVE_PROBLEM_LEN 384       /* one problem message, NUL included */
#define KEEPALIVE_RULE_TEXT_LEN 128     /* a rule's text as kept for messages */
#define KEEPALIVE_SETTINGS_TEXT_LEN 160 /* settings as text, NUL included */

/* Kernel ranges (tcp(7)). */
#define KEEPALIVE_IDLE_MAX_S 32767
#define KEEPALIVE_INTVL_MAX_S 32767
#define KEEPALIVE_CNT_MAX 127
#define KEEPALIVE_USER_TIMEOUT_MAX_MS 2147483647LL
/* Used when the kernel's default interval or idle time cannot be read. */
#define KEEPALIVE_FALLBACK_KERNEL_INTVL_S 75
#define KEEPALIVE_FALLBACK_KERNEL_IDLE_S 7200
#define KEEPALIVE_FALLBACK_KERNEL_CNT 9

/* A value that is not set: the kernel's (or the socket's) value stays. */
#define KEEPALIVE_UNSET (-1)

typedef enum keepalive_direction {
  KEEPALIVE_IN = 1, /* accepted by accept()/accept4() */
  KEEPALIVE_OUT = 2 /* opened by connect() */
} keepalive_direction;

typedef enum keepalive_log_level {
  KEEPALIVE_LOG_QUIET = 0,
  KEEPALIVE_LOG_INFO = 1,
  KEEPALIVE_LOG_DEBUG = 2
} keepalive_log_level;

/* Rule index reported for sockets that no rule matched. */
#define KEEPALIVE_RULE_GLOBAL (-1)

/* What to do with one socket. Every numeric field may be KEEPALIVE_UNSET. */
typedef struct keepalive_settings {
  int enable;                /* 1: SO_KEEPALIVE on and the values below; 0: untouched */
  int idle_s;                /* TCP_KEEPIDLE, 1..32767 */
  int intvl_s;               /* TCP_KEEPINTVL, 1..32767 */
  int cnt;                   /* TCP_KEEPCNT, 1..127 */
  long long user_timeout_ms; /* TCP_USER_TIMEOUT, 0 = kernel default */
  int rule;                  /* index of the rule that decided, or KEEPALIVE_RULE_GLOBAL */
} keepalive_settings;

typedef struct keepalive_port_range {
  uint16_t first, last;
} keepalive_port_range;

/* An address: family 4 (first 4 bytes of addr used) or 6. */
typedef struct keepalive_address {
  uint8_t family;
  uint8_t addr[16];
} keepalive_address;

typedef struct keepalive_cidr {
  keepalive_address net; /* host bits cleared */
  uint8_t prefix;        /* 0..32 or 0..128 */
} keepalive_cidr;

/* One rule of KEEPALIVE_RULES, with its effective settings resolved at load. */
typedef struct keepalive_rule {
  int directions; /* bit mask of keepalive_direction; 0 = both */
  int nports;     /* 0 = any port */
  int npeers;     /* 0 = any peer */
  keepalive_port_range ports[KEEPALIVE_MAX_ITEMS];
  keepalive_cidr peers[KEEPALIVE_MAX_ITEMS];
  keepalive_settings settings; /* effective: rule values, then globals, then the INTVL rule */
  char text[KEEPALIVE_RULE_TEXT_LEN];
} keepalive_rule;

/* Facts a rule may need about a socket (see keepalive_needs). */
#define KEEPALIVE_NEED_PORT 1u
#define KEEPALIVE_NEED_PEER 2u

typedef struct keepalive_socket_facts {
  keepalive_direction direction;
  int has_port;
  uint16_t port; /* service port: local for IN, remote for OUT */
  int has_peer;
  keepalive_address peer; /* IPv4-mapped IPv6 already turned into family 4 */
} keepalive_socket_facts;

/* Capacity of the rule index: key boundaries per kind (ports, IPv4, IPv6).
 * A configuration that needs more is decided by scanning its rules. */
#define KEEPALIVE_INDEX_BOUNDS 512

/* From `key` up to the next boundary's key, exactly the rules in `rules`
 * (bit i: rule i) contain the key. A port or an IPv4 address is in lo; an
 * IPv6 address is hi:lo, both in host byte order. */
typedef struct keepalive_index_bound {
  uint64_t hi, lo;
  uint64_t rules;
} keepalive_index_bound;

typedef enum keepalive_index_kind {
  KEEPALIVE_INDEX_PORTS = 0,
  KEEPALIVE_INDEX_IPV4 = 1,
  KEEPALIVE_INDEX_IPV6 = 2
} keepalive_index_kind;

/* The rules by the facts they accept, built at load: keepalive_decide then
 * intersects three bit sets and takes the lowest rule, with two binary
 * searches, however many rules there are. */
typedef struct keepalive_rule_index {
  int usable;               /* 0: too many boundaries; the rules are scanned */
  uint64_t by_direction[3]; /* indexed by keepalive_direction */
  uint64_t any_port;        /* rules without port= */
  uint64_t any_peer;        /* rules without peer= */
  int nbounds[3];           /* indexed by keepalive_index_kind */
  /* Sorted by key; only the first nbounds[kind] are written, so that the
   * pages of an unused capacity are never touched. */
  keepalive_index_bound bounds[3][KEEPALIVE_INDEX_BOUNDS];
} keepalive_rule_index;

/* The whole configuration: load it once, then only read it. */
typedef struct keepalive_config {
  int valid;           /* 1 when no problem was found */
  int enabled;         /* 1 when valid and KEEPALIVE is not off: the shim configures sockets */
  int strict;          /* KEEPALIVE_STRICT is on */
  char strict_word[8]; /* the word that put it on, as given ("1", "yes", "TRUE") */
  int nwarnings;       /* warnings found (see `warnings`) */
  keepalive_log_level log_level;
  int kernel_intvl_s;        /* the kernel's default interval used by the INTVL rule */
  int intvl_derived;         /* 1 when the global INTVL came from the INTVL rule */
  keepalive_settings global; /* effective settings for sockets no rule matches */
  int nrules;
  keepalive_rule rules[KEEPALIVE_MAX_RULES];
  unsigned needs[3]; /* indexed by keepalive_direction: facts decide() may need */
  keepalive_rule_index index;
  int nproblems; /* problems found; only the first KEEPALIVE_MAX_PROBLEMS are kept */
  char problems[KEEPALIVE_MAX_PROBLEMS][KEEPALIVE_PROBLEM_LEN];
  /* For each kept problem, the variable it is about: an index of
   * keepalive_variable_name, or -1 for none (an unknown KEEPALIVE_* name). */
  int problem_variables[KEEPALIVE_MAX_PROBLEMS];
  /* What is suspicious but leaves the configuration valid: a KEEPALIVE_*
   * name the library does not know, without KEEPALIVE_STRICT. Only the
   * first KEEPALIVE_MAX_WARNINGS of nwarnings are kept; the slots are
   * written only when used, so that they cost no resident page. */
  char warnings[KEEPALIVE_MAX_WARNINGS][KEEPALIVE_PROBLEM_LEN];
} keepalive_config;

/* Returns the value of the variable `name`, or NULL when it is not set. */
typedef const char *(*keepalive_lookup_fn)(const char *name, void *context);

/*
 * Parses the configuration given by `lookup` (KEEPALIVE, KEEPALIVE_IDLE,
 * KEEPALIVE_INTVL, KEEPALIVE_CNT, KEEPALIVE_USER_TIMEOUT, KEEPALIVE_RULES,
 * KEEPALIVE_LOG, KEEPALIVE_STRICT). `kernel_intvl_s` is the kernel's default
 * keepalive interval (see keepalive_kernel_default_intvl). Pure: no I/O.
 * On any problem, cfg->valid and cfg->enabled are 0 and cfg->problems holds
 * one message per problem. Returns cfg->valid.
 */
KEEPALIVE_API int keepalive_config_load(keepalive_config *cfg, keepalive_lookup_fn lookup,
                                        void *context, int kernel_intvl_s);

/*
 * keepalive_config_load, and also looks at the names of the environment:
 * `names` holds NAME or NAME=VALUE entries (as environ(7) does), ended by
 * NULL; it may be NULL. Every name that starts with "KEEPALIVE_" and is
 * neither a variable of the library (keepalive_variable_name) nor
 * KEEPALIVE_LIBRARY (read by the keepalive command) is reported, with the
 * known name it is close to (keepalive_closest_variable): as a problem under
 * KEEPALIVE_STRICT, otherwise as a warning. Pure: no I/O. Returns cfg->valid.
 */
KEEPALIVE_API int keepalive_config_load_names(keepalive_config *cfg, keepalive_lookup_fn lookup,
                                              void *context, int kernel_intvl_s,
                                              const char *const *names);

/* keepalive_config_load_names from the process environment (getenv, environ). */
KEEPALIVE_API int keepalive_config_from_environment(keepalive_config *cfg);

/* How many problems cfg->problems holds: nproblems, at most
 * KEEPALIVE_MAX_PROBLEMS (further ones are only counted). Pure. */
KEEPALIVE_API int keepalive_kept_problems(const keepalive_config *cfg);

/* How many warnings cfg->warnings holds: nwarnings, at most
 * KEEPALIVE_MAX_WARNINGS (further ones are only counted). Pure. */
KEEPALIVE_API int keepalive_kept_warnings(const keepalive_config *cfg);

/* The variables the library reads, in the order they are documented:
 * index 0 is KEEPALIVE, then KEEPALIVE_IDLE ...; NULL past the last. */
KEEPALIVE_API const char *keepalive_variable_name(int index);

/*
 * The known variable (keepalive_variable_name, or KEEPALIVE_LIBRARY) that
 * `name`, a KEEPALIVE_* name the library does not know, was probably meant
 * to be; NULL when none is close. The parts after "KEEPALIVE_" are compared
 * in upper case without underscores, and the closest by this order wins (the
 * first listed on a tie):
 *   1. equal (KEEPALIVE_idle, KEEPALIVE_USERTIMEOUT);
 *   2. the kernel's word for it: TIME for IDLE, PROBES for CNT
 *      (net.ipv4.tcp_keepalive_time, tcp_keepalive_probes);
 *   3. one is the other with letters left out, the shorter having at least
 *      3 letters (INTERVAL, COUNT, LOGLEVEL, TIMEOUT, INT);
 *   4. one letter added, dropped or changed, or two neighbours swapped
 *      (IDEL, IDLF, LGO).
 * Pure.
 */
KEEPALIVE_API const char *keepalive_closest_variable(const char *name);

/* The kernel's default TCP keepalive interval in seconds, from
 * /proc/sys/net/ipv4/tcp_keepalive_intvl; KEEPALIVE_FALLBACK_KERNEL_INTVL_S
 * when it cannot be read. Preserves errno. */
KEEPALIVE_API int keepalive_kernel_default_intvl(void);

/* The kernel's default TCP keepalive idle time in seconds, from
 * /proc/sys/net/ipv4/tcp_keepalive_time (what TCP_KEEPIDLE reads on a socket
 * whose idle time was never set); KEEPALIVE_FALLBACK_KERNEL_IDLE_S when it
 * cannot be read. Preserves errno. */
KEEPALIVE_API int keepalive_kernel_default_idle(void);

/* The kernel's three keepalive defaults, as keepalive_read_kernel_defaults
 * reads them. */
typedef struct keepalive_kernel_defaults {
  int idle_s;    /* net.ipv4.tcp_keepalive_time */
  int intvl_s;   /* net.ipv4.tcp_keepalive_intvl */
  int cnt;       /* net.ipv4.tcp_keepalive_probes */
  int from_proc; /* 1: all three read; 0: a KEEPALIVE_FALLBACK_KERNEL_* stands in */
} keepalive_kernel_defaults;

/* Reads /proc/sys/net/ipv4/tcp_keepalive_{time,intvl,probes} of the
 * caller's network namespace into *out, the KEEPALIVE_FALLBACK_KERNEL_*
 * value for one that cannot be read. Returns out->from_proc. Preserves
 * errno. */
KEEPALIVE_API int keepalive_read_kernel_defaults(keepalive_kernel_defaults *out);

/* 1 when a socket's keepalive timings were chosen for it — by the program,
 * or inherited from a listening socket whose timings were chosen — i.e. when
 * its TCP_KEEPIDLE (read_back->idle_s, as keepalive_read_settings reads it)
 * differs from the kernel's default idle time. Such a socket is left alone
 * entirely: the program's own timings win, and are never mixed with ours. A
 * socket that only has SO_KEEPALIVE switched on, with the kernel's timings,
 * has not chosen them. (A program that sets exactly the kernel's default, or
 * only INTVL/CNT/USER_TIMEOUT, is not recognised.) Pure. */
KEEPALIVE_API int keepalive_timings_chosen(const keepalive_settings *read_back, int kernel_idle_s);

/* 1 when a socket's settings as read back (keepalive_read_settings) carry
 * `decided`: decided->enable and read_back->enable are 1, and every value
 * `decided` sets is the one read back (values it leaves unset are not
 * compared). Pure. */
KEEPALIVE_API int keepalive_settings_carry(const keepalive_settings *read_back,
                                           const keepalive_settings *decided);

/*
 * Parses a duration: a bare number is seconds; otherwise numbers with units
 * h, m/min, s, ms in that order, each at most once ("4m30s", "1h", "90s",
 * "1500ms"); a decimal fraction is allowed ("1.5s") when the result is a
 * whole number of milliseconds. Surrounding spaces are ignored. Stores
 * milliseconds in *out_ms and returns 1, or returns 0 for anything else
 * (including values above KEEPALIVE_USER_TIMEOUT_MAX_MS).
 */
KEEPALIVE_API int keepalive_parse_duration_ms(const char *text, long long *out_ms);

/* Which facts keepalive_decide may need for a socket of this direction
 * (KEEPALIVE_NEED_* bits); 0 means the decision needs no syscall. */
KEEPALIVE_API unsigned keepalive_needs(const keepalive_config *cfg, keepalive_direction direction);

/* Decides a socket's settings: the first matching rule, else the global
 * settings; enable = 0 when the configuration is disabled or invalid. Pure. */
KEEPALIVE_API void keepalive_decide(const keepalive_config *cfg,
                                    const keepalive_socket_facts *facts, keepalive_settings *out);

/* Decides the settings of the listening socket that accepted a socket with
 * these facts (its local port is the listener's), so that the sockets it
 * accepts later inherit them. Returns 1 and fills *out only when every
 * connection the listener accepts on facts->port gets the same enabled
 * decision whatever its peer: no rule with peer= is reachable for that port
 * (facts->has_peer is ignored), and the decision is not `off` (an `off` rule
 * leaves the listener untouched). Otherwise returns 0 with out->enable = 0.
 * Pure. */
KEEPALIVE_API int keepalive_decide_listener(const keepalive_config *cfg,
                                            const keepalive_socket_facts *facts,
                                            keepalive_settings *out);

/* 1 when `rule` matches `facts`. A rule that needs a fact the facts lack does
 * not match. Pure. */
KEEPALIVE_API int keepalive_rule_matches(const keepalive_rule *rule,
                                         const keepalive_socket_facts *facts);

/* Parses an IPv4/IPv6 address or CIDR ("127.0.0.0/8", "::1", "2001:db8::/32").
 * IPv4-mapped IPv6 forms are turned into IPv4. Returns 1 on success. */
KEEPALIVE_API int keepalive_parse_cidr(const char *text, size_t len, keepalive_cidr *out);

/* 1 when fd is an AF_INET/AF_INET6 socket with protocol IPPROTO_TCP.
 * Preserves errno. */
KEEPALIVE_API int keepalive_socket_is_tcp(int fd);

/* The TCP state of a TCP socket (TCP_ESTABLISHED, TCP_CLOSE, TCP_LISTEN, ...
 * as in <netinet/tcp.h>), read with TCP_INFO; -1 when it cannot be read.
 * Preserves errno. */
KEEPALIVE_API int keepalive_tcp_state(int fd);

/* Fills `facts` for fd: only the facts named in `needs` are read
 * (getsockname/getpeername). Facts that cannot be read stay absent.
 * Preserves errno. */
KEEPALIVE_API void keepalive_read_facts(int fd, keepalive_direction direction, unsigned needs,
                                        keepalive_socket_facts *facts);

struct sockaddr;

/* The facts of a socket of `direction` whose addresses are known, as
 * keepalive_read_facts would read them from the socket, without a syscall:
 * the service port (from `local` for KEEPALIVE_IN, from `peer` for
 * KEEPALIVE_OUT) and the peer address (IPv4-mapped IPv6 turned into IPv4).
 * `local` and `peer` point to a struct sockaddr_in or sockaddr_in6, or are
 * NULL when unknown (a listening socket has no peer); a fact whose address
 * is unknown or of another family stays absent. Pure. */
KEEPALIVE_API void keepalive_facts_from_sockaddr(keepalive_direction direction,
                                                 const struct sockaddr *local,
                                                 const struct sockaddr *peer,
                                                 keepalive_socket_facts *facts);

/* Option that keepalive_apply failed to set, for diagnostics. */
typedef struct keepalive_apply_failure {
  const char *option; /* "SO_KEEPALIVE", "TCP_KEEPIDLE", ... or NULL */
  int error;          /* errno of that setsockopt */
} keepalive_apply_failure;

/* Sets SO_KEEPALIVE and every set value of `s` on fd (nothing when
 * s->enable is 0). Returns the number of setsockopt calls that failed and
 * reports the first in *failure (may be NULL). Preserves errno. */
KEEPALIVE_API int keepalive_apply(int fd, const keepalive_settings *s,
                                  keepalive_apply_failure *failure);

/* Reads a socket's current keepalive state: enable = SO_KEEPALIVE, and the
 * four values (the kernel reports its defaults for values never set).
 * Returns 1 on success, 0 when any read failed. Preserves errno. */
KEEPALIVE_API int keepalive_read_settings(int fd, keepalive_settings *out);

/* Writes "idle=270s intvl=75s cnt=kernel user_timeout=3000ms" into buf:
 * unset values read "kernel", a user timeout of 0 reads "0ms" (the kernel
 * default, set explicitly); "off" when s->enable is 0. Returns the length
 * snprintf would have written, always below KEEPALIVE_SETTINGS_TEXT_LEN. */
KEEPALIVE_API int keepalive_format_settings(const keepalive_settings *s, char *buf, size_t size);

/* The library's version, KEEPALIVE_VERSION_STRING. */
KEEPALIVE_API const char *keepalive_version(void);

#ifdef __cplusplus
}
#endif

#endif /* KEEPALIVE_KEEPALIVE_H */
