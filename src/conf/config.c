/*
 * config.c - the configuration file shared by mtasts-milter and
 * mtasts-query (see config.h).
 *
 * One table of keys below drives everything: the defaults (written in
 * config syntax and parsed by the same code as the file, so a default can
 * never be a value the parser would refuse), the parser and range checks,
 * sts_config_print (`mtasts-milter -n`), and tests/check-docs.sh, which
 * greps the STS_KEY lines and fails if doc/mtasts-milter.conf.5 misses a
 * key.  Adding a key is one STS_KEY line plus the struct field; the
 * _Generic in the FIELD_* macros refuses a field of the wrong C type.
 *
 * RFC 8461 choices carried here: HTTPSTimeout defaults to a minute (3.3
 * suggests about a minute for the fetch); PolicyPort exists only so the
 * tests can run an HTTPS server on a free port (3.3 fixes 443).
 */
#include "conf/config.h"
#include "sts/domain.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/log.h"
#include "smap/smap_profile.h"

#define CONFIG_MAX_FILE (1024 * 1024) /* bytes of a whole config file */
#define CONFIG_MAX_LINE 4096          /* bytes of one line, line end excluded */
#define CONFIG_MAX_NAME 64            /* user and group names, host names below 253 */
#define CONFIG_MAX_DB 2147483647u     /* Redis database index is a C int */
#define CONFIG_SHOW_MAX 48            /* bytes of a bad value quoted in an error */

typedef enum key_type {
    KT_STRING,      /* any non-empty text */
    KT_PATH,        /* a file name */
    KT_FILE,        /* a file name that must name a readable regular file now */
    KT_SOCKET,      /* inet:PORT@HOST, inet6:PORT@HOST, unix:PATH, local:PATH */
    KT_USER,        /* user or user:group */
    KT_FACILITY,    /* syslog facility name, stored lower-case */
    KT_DNSLIST,     /* HOST[:PORT],... stored as c-ares "ports csv" */
    KT_STORE,       /* sqlite:PATH, redis://HOST[:PORT][/DB] or none */
    KT_DURATION_MS, /* N, Nms or Ns; stored in milliseconds */
    KT_DURATION_S,  /* N, Ns, Nm, Nh or Nd; stored in seconds */
    KT_UINT,        /* decimal number */
    KT_BOOL,        /* yes/no, true/false, on/off, 1/0 */
    KT_HEADER,      /* a header field name (RFC 5322 ftext), at most 64 bytes */
    KT_FAILACTION,  /* accept or tempfail, stored lower-case */
    KT_DOMAINLIST,  /* comma list of domain names */
    KT_SMAP_PROFILE, /* repeatable, once per name: socketmap profile lines, '\n'-joined */
} key_type;

typedef struct key_def {
    const char *name;
    key_type type;
    const char *def; /* default in config syntax; NULL = unset */
    uint64_t min;    /* numeric types only; durations in ms */
    uint64_t max;
    size_t off; /* offset of the field in sts_config */
    const char *doc;
} key_def;

/* The field's C type must match the key type, or this does not compile. */
#define FIELD_STR(f) _Generic(((sts_config *)0)->f, char *: offsetof(sts_config, f))
#define FIELD_UNS(f) _Generic(((sts_config *)0)->f, unsigned: offsetof(sts_config, f))
#define FIELD_BOOL(f) _Generic(((sts_config *)0)->f, bool: offsetof(sts_config, f))
#define FIELD_KT_STRING FIELD_STR
#define FIELD_KT_PATH FIELD_STR
#define FIELD_KT_FILE FIELD_STR
#define FIELD_KT_SOCKET FIELD_STR
#define FIELD_KT_USER FIELD_STR
#define FIELD_KT_FACILITY FIELD_STR
#define FIELD_KT_DNSLIST FIELD_STR
#define FIELD_KT_STORE FIELD_STR
#define FIELD_KT_DURATION_MS FIELD_UNS
#define FIELD_KT_DURATION_S FIELD_UNS
#define FIELD_KT_UINT FIELD_UNS
#define FIELD_KT_BOOL FIELD_BOOL
#define FIELD_KT_HEADER FIELD_STR
#define FIELD_KT_FAILACTION FIELD_STR
#define FIELD_KT_DOMAINLIST FIELD_STR
#define FIELD_KT_SMAP_PROFILE FIELD_STR

/* Keep name, type and default on the STS_KEY line: check-docs.sh reads them. */
#define STS_KEY(name, type, def, min, max, field, doc) \
    { name, KT_##type, def, min, max, FIELD_KT_##type(field), doc }

static const key_def keys[] = {
    STS_KEY("Socket", SOCKET, "inet:8462@127.0.0.1", 0, 0, socket,
            "milter socket the MTA connects to"),
    STS_KEY("SocketmapSocket", SOCKET, "inet:8461@127.0.0.1", 0, 0, socketmap_socket,
            "socketmap socket (postfix-mta-sts-resolver compatible)"),
    STS_KEY("SocketmapProfile", SMAP_PROFILE, NULL, 0, 0, socketmap_profiles,
            "socketmap map NAME and its options; repeatable, once per NAME"),
    STS_KEY("UserID", USER, "mtasts", 0, 0, user_id,
            "user[:group] the daemon runs as after opening its sockets"),
    STS_KEY("PidFile", PATH, NULL, 0, 0, pid_file,
            "file the daemon writes its process id to"),
    STS_KEY("SyslogFacility", FACILITY, "mail", 0, 0, syslog_facility,
            "syslog facility: mail, daemon, user, local0..local7"),
    STS_KEY("DecisionLog", PATH, NULL, 0, 0, decision_log,
            "file receiving one JSON line per recipient decision"),
    STS_KEY("DNSServers", DNSLIST, NULL, 0, 0, dns_servers,
            "DNS servers to query; unset = /etc/resolv.conf"),
    STS_KEY("DNSTimeout", DURATION_MS, "2000ms", 100, 60000, dns_timeout_ms,
            "time to wait for one DNS answer, per try"),
    STS_KEY("DNSTries", UINT, "2", 1, 10, dns_tries,
            "number of times a DNS query is sent before giving up"),
    STS_KEY("CAFile", FILE, NULL, 0, 0, ca_file,
            "PEM bundle of trusted CAs for policy fetches; unset = system store"),
    STS_KEY("HTTPSConnectTimeout", DURATION_MS, "10000ms", 100, 120000,
            https_connect_timeout_ms, "time to set up the TLS connection to mta-sts.DOMAIN"),
    STS_KEY("HTTPSTimeout", DURATION_MS, "60000ms", 100, 300000, https_timeout_ms,
            "time allowed for a whole policy fetch (RFC 8461 3.3)"),
    STS_KEY("PolicyPort", UINT, "443", 1, 65535, policy_port,
            "FOR TESTS ONLY: TCP port policies are fetched from"),
    STS_KEY("CacheStore", STORE, "sqlite:/var/lib/mtasts-milter/cache.db", 0, 0, cache_store,
            "where policies are cached: sqlite:PATH, redis://HOST[:PORT][/DB] or none"),
    STS_KEY("CacheSize", UINT, "100000", 10, 10000000, cache_size,
            "most domains kept in the cache (least recently used go first)"),
    STS_KEY("NegativeCacheTime", DURATION_S, "3600s", 1, 604800, negative_ttl,
            "how long \"this domain has no MTA-STS\" is remembered"),
    STS_KEY("RecheckInterval", DURATION_S, "3600s", 60, 604800, recheck_interval,
            "age of the last TXT check after which a cache hit re-checks the policy id"),
    STS_KEY("RetryInterval", DURATION_S, "300s", 60, 86400, retry_interval,
            "least time between two failed attempts for one domain (RFC 8461 3.3)"),
    STS_KEY("RefreshIdle", DURATION_S, "2592000s", 3600, 31557600, refresh_idle,
            "stop refreshing policies of domains unused for this long"),
    STS_KEY("MaxDiscoveries", UINT, "128", 1, 10000, max_discoveries,
            "policy discoveries running at once"),
    STS_KEY("DiscoveryQueue", UINT, "10000", 1, 1000000, discovery_queue,
            "discoveries waiting to start; beyond it lookups answer temperror"),
    STS_KEY("EnvelopeTimeout", DURATION_MS, "2000ms", 0, 30000, envelope_timeout_ms,
            "how long RCPT TO waits for a policy discovery"),
    STS_KEY("LookupFailAction", FAILACTION, "accept", 0, 0, lookup_fail_action,
            "accept or tempfail a recipient whose lookup failed or timed out"),
    STS_KEY("TagHeader", HEADER, "X-MTA-STS", 0, 0, tag_header,
            "header added per recipient domain with the MTA-STS result"),
    STS_KEY("RouteHeader", HEADER, "X-MTA-STS-Route", 0, 0, route_header,
            "header naming the delivery class, for Postfix milter_header_checks"),
    STS_KEY("SplitMixed", BOOL, "yes", 0, 0, split_mixed,
            "defer (452 4.5.3) recipients of another class than the first one"),
    STS_KEY("EarlyTempfail", BOOL, "no", 0, 0, early_tempfail,
            "451 4.7.5 at RCPT for enforce domains whose policy allows none of their MX"),
    STS_KEY("LocalDomains", DOMAINLIST, NULL, 0, 0, local_domains,
            "recipient domains delivered locally: never looked up"),
    /* mtasts-report (RFC 8460) */
    STS_KEY("ReportOrganization", STRING, NULL, 0, 0, report_organization,
            "organization-name in TLS reports (unset: this host's name)"),
    STS_KEY("ReportContact", STRING, NULL, 0, 0, report_contact,
            "contact-info in TLS reports (unset: postmaster@ this host's name)"),
    STS_KEY("ReportFrom", STRING, NULL, 0, 0, report_from,
            "From: address of report mail (unset: the contact address)"),
    STS_KEY("ReportSubmitter", STRING, NULL, 0, 0, report_submitter,
            "TLS-Report-Submitter domain (unset: this host's domain)"),
    STS_KEY("ReportSendingIP", STRING, NULL, 0, 0, report_sending_ip,
            "sending-mta-ip in failure details (comma list; unset: from the MTA log)"),
    STS_KEY("ReportSpool", PATH, "/var/lib/mtasts-milter/reports", 0, 0, report_spool,
            "directory of reports waiting to be sent"),
    STS_KEY("ReportSendmail", STRING, "/usr/sbin/sendmail -i -t", 0, 0, report_sendmail,
            "command that submits report mail (message on stdin)"),
    STS_KEY("ReportRetryTime", DURATION_S, "86400s", 0, 604800, report_retry_time,
            "how long a report that cannot be delivered is retried"),
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static bool type_is_string(key_type t)
{
    return t != KT_DURATION_MS && t != KT_DURATION_S && t != KT_UINT && t != KT_BOOL;
}

static char **str_slot(const key_def *k, sts_config *cfg)
{
    return (void *)((char *)cfg + k->off);
}

static unsigned *uns_slot(const key_def *k, sts_config *cfg)
{
    return (void *)((char *)cfg + k->off);
}

static bool *bool_slot(const key_def *k, sts_config *cfg)
{
    return (void *)((char *)cfg + k->off);
}

static const char *str_get(const key_def *k, const sts_config *cfg)
{
    const char *const *p = (const void *)((const char *)cfg + k->off);

    return *p;
}

static unsigned uns_get(const key_def *k, const sts_config *cfg)
{
    const unsigned *p = (const void *)((const char *)cfg + k->off);

    return *p;
}

static bool bool_get(const key_def *k, const sts_config *cfg)
{
    const bool *p = (const void *)((const char *)cfg + k->off);

    return *p;
}

static const key_def *key_find(sts_cur name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (sts_cur_eq_nocase(&name, keys[i].name))
            return &keys[i];
    return NULL;
}

/* A value quoted for an error message: escaped, cut at CONFIG_SHOW_MAX. */
typedef struct shown {
    char text[CONFIG_SHOW_MAX * 4 + 4];
} shown;

static const char *show(shown *s, sts_cur v)
{
    size_t n = v.len > CONFIG_SHOW_MAX ? CONFIG_SHOW_MAX : v.len;
    size_t used;

    sts_log_escape(s->text, sizeof(s->text) - 3, v.p, n);
    if (n < v.len) {
        used = strlen(s->text);
        memcpy(s->text + used, "...", 4);
    }
    return s->text;
}

/* ------------------------------------------------------------ value syntax */

/* Host names (loosely: '_' is common in internal names) and user names. */
static bool is_name_char(unsigned char c)
{
    return sts_is_alnum(c) || c == '-' || c == '.' || c == '_';
}

static bool all_match(sts_cur v, bool (*pred)(unsigned char))
{
    sts_cur out;

    return sts_cur_take_while(&v, pred, &out) && sts_cur_empty(&v);
}

/* A whole view that is a TCP/UDP port 1..65535. */
static bool parse_port(sts_cur v, unsigned *port)
{
    uint64_t n;

    if (!sts_cur_take_number(&v, 5, 65535, &n) || !sts_cur_empty(&v) || n == 0)
        return false;
    *port = (unsigned)n;
    return true;
}

/* inet_pton on a view; out must have room for struct in6_addr. */
static bool addr_parse(int af, sts_cur v, void *out)
{
    char tmp[INET6_ADDRSTRLEN + 1];

    if (v.len == 0 || v.len >= sizeof(tmp) || memchr(v.p, '\0', v.len) != NULL)
        return false;
    memcpy(tmp, v.p, v.len);
    tmp[v.len] = '\0';
    return inet_pton(af, tmp, out) == 1;
}

static bool host_name_ok(sts_cur v)
{
    return v.len <= 253 && all_match(v, is_name_char);
}

/* "[v6]" or a bare IPv6 address. */
static bool v6_literal_ok(sts_cur v)
{
    unsigned char a[sizeof(struct in6_addr)];

    if (sts_cur_take_char(&v, '[')) {
        if (v.len == 0 || v.p[v.len - 1] != ']')
            return false;
        v.len--;
    }
    return addr_parse(AF_INET6, v, a);
}

static const char socket_examples[] =
    "(examples: inet:8462@127.0.0.1, inet6:8462@[::1], unix:/run/mtasts-milter/milter.sock)";

static bool socket_ok(sts_cur v)
{
    sts_cur port;
    unsigned p;
    bool v6 = false;

    if (sts_cur_take_lit_nocase(&v, "unix:") || sts_cur_take_lit_nocase(&v, "local:"))
        return v.len > 0;
    if (sts_cur_take_lit_nocase(&v, "inet6:"))
        v6 = true;
    else if (!sts_cur_take_lit_nocase(&v, "inet:"))
        return false;
    if (!sts_cur_take_until(&v, '@', &port) || !parse_port(port, &p))
        return false;
    (void)sts_cur_take_char(&v, '@');
    if (v.len == 0)
        return false;
    return host_name_ok(v) || (v6 && v6_literal_ok(v));
}

static bool name_ok(sts_cur v)
{
    return v.len > 0 && v.len <= CONFIG_MAX_NAME && v.p[0] != '-' && all_match(v, is_name_char);
}

static bool user_ok(sts_cur v)
{
    sts_cur user;

    if (!sts_cur_take_until(&v, ':', &user))
        return name_ok(v);
    (void)sts_cur_take_char(&v, ':');
    return name_ok(user) && name_ok(v);
}

static const char store_examples[] =
    "(examples: sqlite:/var/lib/mtasts-milter/cache.db, redis://127.0.0.1:6379/0, none)";

static bool store_ok(sts_cur v, sts_why *why)
{
    shown s;
    sts_cur all = v, host;
    unsigned p;
    uint64_t db;

    /* Memory only: nothing survives a restart. */
    if (sts_cur_eq_nocase(&v, "none"))
        return true;
    if (sts_cur_take_lit_nocase(&v, "sqlite:")) {
        if (v.len > 0)
            return true;
        sts_why_set(why, "'%s' has no file name after sqlite:", show(&s, all));
        return false;
    }
    if (!sts_cur_take_lit_nocase(&v, "redis://")) {
        sts_why_set(why, "'%s' is not a cache store %s", show(&s, all), store_examples);
        return false;
    }
    if (sts_cur_take_char(&v, '[')) {
        if (!sts_cur_take_until(&v, ']', &host) || !v6_literal_ok(host)) {
            sts_why_set(why, "'%s': bad IPv6 address in brackets", show(&s, all));
            return false;
        }
        (void)sts_cur_take_char(&v, ']');
    } else if (!sts_cur_take_while(&v, is_name_char, &host) || host.len > 253) {
        sts_why_set(why, "'%s': missing or bad host after redis://", show(&s, all));
        return false;
    }
    if (sts_cur_take_char(&v, ':')) {
        sts_cur port;

        if (!sts_cur_take_until(&v, '/', &port)) {
            port = v;
            v = sts_cur_make(v.p + v.len, 0);
        }
        if (!parse_port(port, &p)) {
            sts_why_set(why, "'%s': port is not in 1..65535", show(&s, all));
            return false;
        }
    }
    if (sts_cur_take_char(&v, '/')) {
        if (!sts_cur_take_number(&v, 10, CONFIG_MAX_DB, &db) || !sts_cur_empty(&v)) {
            sts_why_set(why, "'%s': database is not a number in 0..%u", show(&s, all),
                        CONFIG_MAX_DB);
            return false;
        }
    }
    if (!sts_cur_empty(&v)) {
        sts_why_set(why, "'%s' is not a cache store %s", show(&s, all), store_examples);
        return false;
    }
    return true;
}

/* One DNS server "HOST[:PORT]" appended to b as "v4:port" or "[v6]:port". */
static sts_status dns_server(sts_cur e, sts_buf *b, sts_why *why)
{
    unsigned char a[sizeof(struct in6_addr)];
    char text[INET6_ADDRSTRLEN];
    sts_cur host = e, port = sts_cur_make("53", 2);
    unsigned p;
    int af;
    sts_status st;
    shown s;

    if (sts_cur_take_char(&e, '[')) {
        if (!sts_cur_take_until(&e, ']', &host)) {
            sts_why_set(why, "'%s': missing ']'", show(&s, host));
            return STS_PERMFAIL;
        }
        (void)sts_cur_take_char(&e, ']');
        if (!sts_cur_empty(&e) && (!sts_cur_take_char(&e, ':') || sts_cur_empty(&e))) {
            sts_why_set(why, "'%s': expected ':PORT' after ']'", show(&s, e));
            return STS_PERMFAIL;
        }
        if (!sts_cur_empty(&e))
            port = e;
        af = AF_INET6;
    } else {
        size_t colons = 0;

        for (size_t i = 0; i < e.len; i++)
            colons += e.p[i] == ':';
        if (colons >= 2) {
            af = AF_INET6; /* bare IPv6 address; a port needs the brackets */
        } else {
            af = AF_INET;
            if (colons == 1) {
                (void)sts_cur_take_until(&e, ':', &host);
                (void)sts_cur_take_char(&e, ':');
                port = e;
            }
        }
    }
    if (!addr_parse(af, host, a)) {
        sts_why_set(why, "'%s' is not an IPv4 or IPv6 address", show(&s, host));
        return STS_PERMFAIL;
    }
    if (!parse_port(port, &p)) {
        sts_why_set(why, "port '%s' is not in 1..65535", show(&s, port));
        return STS_PERMFAIL;
    }
    if (inet_ntop(af, a, text, sizeof(text)) == NULL) {
        sts_why_set(why, "'%s' is not an IPv4 or IPv6 address", show(&s, host));
        return STS_PERMFAIL;
    }
    st = b->len > 0 ? sts_buf_append(b, ",", 1) : STS_OK;
    if (st == STS_OK)
        st = af == AF_INET6 ? sts_buf_printf(b, "[%s]:%u", text, p)
                            : sts_buf_printf(b, "%s:%u", text, p);
    if (st == STS_PERMFAIL)
        sts_why_set(why, "server list too long");
    return st;
}

static sts_status dns_list(sts_cur v, char **out, sts_why *why)
{
    sts_buf b;
    sts_status st = STS_OK;
    bool last = false;

    /* The value is at most CONFIG_MAX_LINE bytes (apply) and an element
     * grows by a few bytes at most ("[" "]:53" and the 0 fields inet_ntop
     * writes out): 16 times is far beyond what any value needs. */
    sts_buf_init(&b, (size_t)CONFIG_MAX_LINE * 16);
    while (!last) {
        sts_cur e;

        if (sts_cur_take_until(&v, ',', &e)) {
            (void)sts_cur_take_char(&v, ',');
        } else {
            e = v;
            last = true;
        }
        sts_cur_skip_wsp(&e);
        sts_cur_rtrim_wsp(&e);
        if (e.len == 0) {
            sts_why_set(why, "empty element in server list (expected HOST[:PORT],...)");
            st = STS_PERMFAIL;
            goto done;
        }
        st = dns_server(e, &b, why);
        if (st != STS_OK)
            goto done;
    }
    *out = sts_buf_steal(&b);
done:
    sts_buf_free(&b);
    return st;
}

/* Digits only, without sign, into *n.  Digits that do not fit in 64 bits
 * are consumed and *range set, so "99999999999999999999999" can be told
 * "out of range" while "12x" is "not a number". */
static bool parse_u64(sts_cur *v, uint64_t *n, bool *range)
{
    sts_cur digits;

    *range = false;
    if (sts_cur_take_number(v, 20, UINT64_MAX, n))
        return true;
    if (sts_cur_take_while(v, sts_is_digit, &digits)) {
        *range = true;
        *n = UINT64_MAX;
    }
    return false;
}

/* ------------------------------------------------------------ one value */

/* A number with an optional unit suffix from a per-type table, scaled to
 * the stored unit and range-checked: plain numbers, durations in
 * milliseconds and durations in seconds all go through here. */
typedef struct unit {
    const char *suffix;
    uint64_t mult;
} unit;

typedef struct number_kind {
    const unit *units;
    size_t nunits;
    const char *range_unit; /* printed after the range bounds */
    const char *what;       /* "'%s' is not <what>" */
} number_kind;

static const unit plain_units[] = { { "", 1 } };
static const unit ms_units[] = { { "", 1 }, { "ms", 1 }, { "s", 1000 } };
static const unit s_units[] = { { "", 1 }, { "s", 1 }, { "m", 60 }, { "h", 3600 }, { "d", 86400 } };

static const number_kind kind_uint = { plain_units, 1, "", "a number" };
static const number_kind kind_ms = { ms_units, 3, "ms",
                                     "a duration (examples: 1500, 1500ms, 2s)" };
static const number_kind kind_s = { s_units, 5, "s",
                                    "a duration in seconds (examples: 300, 300s, 5m, 1h, 30d)" };

static sts_status apply_number(const key_def *k, const number_kind *nk, sts_cur v,
                               sts_config *cfg, sts_why *why)
{
    sts_cur all = v;
    uint64_t n, mult = 0;
    bool range;
    shown s;

    if (!parse_u64(&v, &n, &range) && !range)
        goto bad;
    for (size_t i = 0; i < nk->nunits; i++)
        if (sts_cur_eq_nocase(&v, nk->units[i].suffix))
            mult = nk->units[i].mult;
    if (mult == 0)
        goto bad;
    n = n > UINT64_MAX / mult ? UINT64_MAX : n * mult;
    if (n < k->min || n > k->max) {
        sts_why_set(why, "%s is out of range %llu%s..%llu%s", show(&s, all),
                    (unsigned long long)k->min, nk->range_unit, (unsigned long long)k->max,
                    nk->range_unit);
        return STS_PERMFAIL;
    }
    *uns_slot(k, cfg) = (unsigned)n;
    return STS_OK;
bad:
    sts_why_set(why, "'%s' is not %s", show(&s, all), nk->what);
    return STS_PERMFAIL;
}

static sts_status apply_bool(const key_def *k, sts_cur v, sts_config *cfg, sts_why *why)
{
    static const char *const yes[] = { "yes", "true", "on", "1" };
    static const char *const no[] = { "no", "false", "off", "0" };
    shown s;

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (sts_cur_eq_nocase(&v, yes[i])) {
            *bool_slot(k, cfg) = true;
            return STS_OK;
        }
        if (sts_cur_eq_nocase(&v, no[i])) {
            *bool_slot(k, cfg) = false;
            return STS_OK;
        }
    }
    sts_why_set(why, "'%s' is not yes or no", show(&s, v));
    return STS_PERMFAIL;
}

/* Syntax of the text types; the value is kept as written apart from the
 * case of scheme and facility names. */
/* Comma list of domains, each as sts_domain_normalize accepts it. */
static bool domain_list_ok(sts_cur v, sts_why *why)
{
    sts_cur item;
    size_t n = 0;

    while (sts_cur_take_item(&v, ',', &item)) {
        char norm[STS_DOMAIN_MAX + 1];
        sts_why dwhy;
        shown s;

        if (item.len == 0) {
            sts_why_set(why, "empty element in the domain list");
            return false;
        }
        if (sts_domain_normalize(item.p, item.len, norm, &dwhy) != STS_OK) {
            sts_why_set(why, "'%s' is not a domain: %s", show(&s, item), dwhy.text);
            return false;
        }
        if (++n > 10000) {
            sts_why_set(why, "more than 10000 domains");
            return false;
        }
    }
    return true;
}

static bool text_ok(const key_def *k, sts_cur v, sts_why *why)
{
    shown s;

    switch (k->type) {
    case KT_SOCKET:
        if (socket_ok(v))
            return true;
        sts_why_set(why, "'%s' is not a socket %s", show(&s, v), socket_examples);
        return false;
    case KT_USER:
        if (user_ok(v))
            return true;
        sts_why_set(why, "'%s' is not a user or user:group name", show(&s, v));
        return false;
    case KT_STORE:
        return store_ok(v, why);
    case KT_HEADER:
        if (v.len > 64)
            goto bad_header;
        for (size_t i = 0; i < v.len; i++)
            if ((unsigned char)v.p[i] < 33 || (unsigned char)v.p[i] > 126 || v.p[i] == ':')
                goto bad_header;
        return true;
    case KT_FAILACTION:
        if (sts_cur_eq_nocase(&v, "accept") || sts_cur_eq_nocase(&v, "tempfail"))
            return true;
        sts_why_set(why, "'%s' is not accept or tempfail", show(&s, v));
        return false;
    case KT_DOMAINLIST:
        return domain_list_ok(v, why);
    default:
        return true;
    }
bad_header:
    sts_why_set(why, "'%s' is not a header field name (printable ASCII without ':', at most 64)",
                show(&s, v));
    return false;
}

/* Final checks on the NUL-terminated copy. */
static bool copy_ok(const key_def *k, char *copy, sts_why *why)
{
    shown s;
    struct stat sb;
    int fd;

    switch (k->type) {
    case KT_FAILACTION:
        for (char *c = copy; *c != '\0'; c++)
            *c = (char)sts_to_lower((unsigned char)*c);
        return true;
    case KT_FACILITY:
        for (char *c = copy; *c != '\0'; c++)
            *c = (char)sts_to_lower((unsigned char)*c);
        if (sts_log_facility_valid(copy))
            return true;
        sts_why_set(why, "'%s' is not a syslog facility (mail, daemon, user, local0..local7)",
                    show(&s, sts_cur_str(copy)));
        return false;
    case KT_SOCKET:
    case KT_STORE:
        for (char *c = copy; *c != '\0' && *c != ':'; c++)
            *c = (char)sts_to_lower((unsigned char)*c);
        return true;
    case KT_FILE:
        /* Checked now so that `mtasts-milter -n` and a reload report a
         * missing CA bundle instead of every fetch failing later.
         * O_NONBLOCK: a FIFO must not hang the parser. */
        fd = open(copy, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        if (fd < 0) {
            sts_why_set(why, "cannot read '%s': %s", show(&s, sts_cur_str(copy)),
                        strerror(errno));
            return false;
        }
        if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
            (void)close(fd);
            sts_why_set(why, "'%s' is not a regular file", show(&s, sts_cur_str(copy)));
            return false;
        }
        (void)close(fd);
        return true;
    default:
        return true;
    }
}

/* What every value must be: present, not too long, no control characters. */
static bool value_ok(sts_cur v, sts_why *why)
{
    if (v.len == 0) {
        sts_why_set(why, "missing value");
        return false;
    }
    if (v.len > CONFIG_MAX_LINE) {
        sts_why_set(why, "value longer than %d bytes", CONFIG_MAX_LINE);
        return false;
    }
    for (size_t i = 0; i < v.len; i++) {
        unsigned char c = (unsigned char)v.p[i];

        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            sts_why_set(why, "control character 0x%02x in value", c);
            return false;
        }
    }
    return true;
}

/* One SocketmapProfile definition, checked and appended in canonical form
 * to the ones already in cfg's slot: the key repeats, once per map name.
 * A name defined before sets *dup to that definition's index (the caller
 * knows its line). */
static sts_status apply_profile(const key_def *k, sts_cur v, sts_config *cfg, size_t *dup,
                                sts_why *why)
{
    char **slot = str_slot(k, cfg);
    char text[STS_SMAP_NAME_MAX + 4 * STS_SMAP_TRANSPORT_MAX + 128];
    sts_smap_profile p;
    sts_cur all = sts_cur_str(*slot), line, name;
    size_t n = 0;
    sts_buf b;
    sts_status st;

    *dup = SIZE_MAX;
    if (sts_smap_profile_parse(v, &p, why) != STS_OK)
        return STS_PERMFAIL;
    while (*slot != NULL && sts_cur_take_item(&all, '\n', &line)) {
        if (sts_cur_take_until(&line, ' ', &name) && sts_cur_eq(&name, p.name)) {
            *dup = n;
            sts_why_set(why, "profile %s given twice", p.name);
            return STS_PERMFAIL;
        }
        n++;
    }
    if (n >= STS_SMAP_MAX_PROFILES) {
        sts_why_set(why, "more than %d profiles", STS_SMAP_MAX_PROFILES);
        return STS_PERMFAIL;
    }
    if (!sts_smap_profile_format(&p, text, sizeof(text))) {
        sts_why_set(why, "profile %s too long", p.name);
        return STS_PERMFAIL;
    }
    sts_buf_init(&b, (size_t)STS_SMAP_MAX_PROFILES * sizeof(text));
    st = *slot != NULL ? sts_buf_printf(&b, "%s\n%s", *slot, text) : sts_buf_append_str(&b, text);
    if (st == STS_OK) {
        free(*slot);
        *slot = sts_buf_steal(&b);
    }
    sts_buf_free(&b);
    return st == STS_NOMEM ? STS_NOMEM : STS_OK;
}

/* Check and convert value v for key k and store it into cfg, whose slot
 * for k must be empty (a repeatable key adds to it); why gets the reason
 * without any prefix. */
static sts_status apply(const key_def *k, sts_cur v, sts_config *cfg, sts_why *why)
{
    char *copy;
    sts_status st;

    if (!value_ok(v, why))
        return STS_PERMFAIL;
    switch (k->type) {
    case KT_UINT:
        return apply_number(k, &kind_uint, v, cfg, why);
    case KT_DURATION_MS:
        return apply_number(k, &kind_ms, v, cfg, why);
    case KT_DURATION_S:
        return apply_number(k, &kind_s, v, cfg, why);
    case KT_BOOL:
        return apply_bool(k, v, cfg, why);
    case KT_DNSLIST:
        st = dns_list(v, &copy, why);
        if (st == STS_OK)
            *str_slot(k, cfg) = copy;
        return st;
    case KT_SMAP_PROFILE: {
        size_t dup;

        return apply_profile(k, v, cfg, &dup, why);
    }
    default:
        break;
    }
    if (!text_ok(k, v, why))
        return STS_PERMFAIL;
    copy = sts_strndup(v.p, v.len);
    if (copy == NULL)
        return STS_NOMEM;
    if (!copy_ok(k, copy, why)) {
        free(copy);
        return STS_PERMFAIL;
    }
    *str_slot(k, cfg) = copy;
    return STS_OK;
}

/* Move key k's value from src to dst (dst's old value is freed). */
static void move_value(const key_def *k, sts_config *dst, sts_config *src)
{
    if (type_is_string(k->type)) {
        free(*str_slot(k, dst));
        *str_slot(k, dst) = *str_slot(k, src);
        *str_slot(k, src) = NULL;
    } else if (k->type == KT_BOOL) {
        *bool_slot(k, dst) = *bool_slot(k, src);
    } else {
        *uns_slot(k, dst) = *uns_slot(k, src);
    }
}

/* ------------------------------------------------------------ public API */

void sts_config_free(sts_config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < NKEYS; i++) {
        if (type_is_string(keys[i].type)) {
            free(*str_slot(&keys[i], cfg));
            *str_slot(&keys[i], cfg) = NULL;
        }
    }
}

sts_status sts_config_defaults(sts_config *cfg)
{
    sts_why why;

    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < NKEYS; i++) {
        sts_status st;

        if (keys[i].def == NULL)
            continue;
        st = apply(&keys[i], sts_cur_str(keys[i].def), cfg, &why);
        if (st == STS_NOMEM) {
            sts_config_free(cfg);
            return STS_NOMEM;
        }
        if (st != STS_OK) {
            /* The table is compiled in: a refused default is a bug that
             * test_config catches; never ship a half-filled config. */
            (void)fprintf(stderr, "config.c: bad default for %s: %s\n", keys[i].name,
                          why.text);
            abort();
        }
    }
    return STS_OK;
}

static bool not_wsp(unsigned char c)
{
    return !sts_is_wsp(c);
}

sts_status sts_config_parse(const char *text, size_t len, const char *name, sts_config *cfg,
                            sts_why *why)
{
    sts_config tmp;
    size_t seen[NKEYS] = { 0 }; /* line that set each key in this text, 0 = none */
    size_t prof_line[STS_SMAP_MAX_PROFILES]; /* line of each SocketmapProfile */
    size_t nprof = 0;
    sts_cur all = sts_cur_make(text, len);
    size_t lineno = 0;
    sts_status st = STS_OK;
    sts_why reason;
    shown s;

    memset(&tmp, 0, sizeof(tmp));
    if (name == NULL)
        name = "(config)";
    if (len > CONFIG_MAX_FILE) {
        sts_why_set(why, "%s: larger than %d bytes", name, CONFIG_MAX_FILE);
        return STS_PERMFAIL;
    }
    while (!sts_cur_empty(&all)) {
        sts_cur line, key;
        const key_def *k;
        size_t ki;

        lineno++;
        if (sts_cur_take_until(&all, '\n', &line)) {
            (void)sts_cur_take_char(&all, '\n');
        } else {
            line = all; /* last line without a line end */
            all = sts_cur_make(all.p + all.len, 0);
        }
        if (line.len > 0 && line.p[line.len - 1] == '\r')
            line.len--;
        if (line.len > CONFIG_MAX_LINE) {
            sts_why_set(why, "%s:%zu: line longer than %d bytes", name, lineno, CONFIG_MAX_LINE);
            st = STS_PERMFAIL;
            goto done;
        }
        if (line.len > 0 && memchr(line.p, '\0', line.len) != NULL) {
            sts_why_set(why, "%s:%zu: NUL byte in line", name, lineno);
            st = STS_PERMFAIL;
            goto done;
        }
        sts_cur_skip_wsp(&line);
        sts_cur_rtrim_wsp(&line);
        if (sts_cur_empty(&line) || line.p[0] == '#')
            continue;

        (void)sts_cur_take_while(&line, not_wsp, &key);
        k = key_find(key);
        if (k == NULL) {
            sts_why_set(why, "%s:%zu: unknown key '%s'", name, lineno, show(&s, key));
            st = STS_PERMFAIL;
            goto done;
        }
        ki = (size_t)(k - keys);
        if (k->type == KT_SMAP_PROFILE) {
            size_t dup = SIZE_MAX;
            sts_cur pname = { "", 0 }, first;

            sts_cur_skip_wsp(&line);
            first = line;
            (void)sts_cur_take_while(&first, not_wsp, &pname);
            st = value_ok(line, &reason) ? apply_profile(k, line, &tmp, &dup, &reason)
                                         : STS_PERMFAIL;
            if (st == STS_PERMFAIL && dup < nprof)
                sts_why_set(why, "%s:%zu: %s %s given twice (first on line %zu)", name, lineno,
                            k->name, show(&s, pname), prof_line[dup]);
            else if (st == STS_PERMFAIL)
                sts_why_set(why, "%s:%zu: %s: %s", name, lineno, k->name, reason.text);
            if (st != STS_OK)
                goto done;
            prof_line[nprof++] = lineno;
            seen[ki] = lineno;
            continue;
        }
        if (seen[ki] != 0) {
            sts_why_set(why, "%s:%zu: %s given twice (first on line %zu)", name, lineno,
                        k->name, seen[ki]);
            st = STS_PERMFAIL;
            goto done;
        }
        sts_cur_skip_wsp(&line);
        st = apply(k, line, &tmp, &reason);
        if (st == STS_PERMFAIL)
            sts_why_set(why, "%s:%zu: %s: %s", name, lineno, k->name, reason.text);
        if (st != STS_OK)
            goto done;
        seen[ki] = lineno;
    }
    for (size_t i = 0; i < NKEYS; i++)
        if (seen[i] != 0)
            move_value(&keys[i], cfg, &tmp);
done:
    sts_config_free(&tmp);
    return st;
}

sts_status sts_config_set(sts_config *cfg, const char *key, const char *value, sts_why *why)
{
    const key_def *k = key_find(sts_cur_str(key));
    sts_config tmp;
    sts_cur v = sts_cur_str(value);
    sts_status st;
    sts_why reason;
    shown s;

    if (k == NULL) {
        sts_why_set(why, "unknown key '%s'", show(&s, sts_cur_str(key)));
        return STS_PERMFAIL;
    }
    memset(&tmp, 0, sizeof(tmp));
    sts_cur_skip_wsp(&v);
    sts_cur_rtrim_wsp(&v);
    st = apply(k, v, &tmp, &reason);
    if (st == STS_PERMFAIL)
        sts_why_set(why, "%s: %s", k->name, reason.text);
    if (st == STS_OK)
        move_value(k, cfg, &tmp);
    sts_config_free(&tmp);
    return st;
}

sts_status sts_config_load(const char *path, sts_config *cfg, sts_why *why)
{
    sts_buf b;
    char chunk[8192];
    sts_status st = STS_OK;
    int fd;

    sts_buf_init(&b, CONFIG_MAX_FILE);
    fd = open(path, O_RDONLY | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        sts_why_set(why, "cannot open %s: %s", path, strerror(errno));
        return STS_PERMFAIL;
    }
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            sts_why_set(why, "cannot read %s: %s", path, strerror(errno));
            st = STS_PERMFAIL;
            goto done;
        }
        if (n == 0)
            break;
        st = sts_buf_append(&b, chunk, (size_t)n);
        if (st == STS_PERMFAIL)
            sts_why_set(why, "%s: larger than %d bytes", path, CONFIG_MAX_FILE);
        if (st != STS_OK)
            goto done;
    }
    st = sts_config_parse(b.data != NULL ? b.data : "", b.len, path, cfg, why);
done:
    (void)close(fd);
    sts_buf_free(&b);
    return st;
}

void sts_config_print(const sts_config *cfg, FILE *fp)
{
    for (size_t i = 0; i < NKEYS; i++) {
        const key_def *k = &keys[i];

        if (k->type == KT_SMAP_PROFILE) {
            /* One line per profile in force, the built-ins included. */
            sts_smap_profiles_print(str_get(k, cfg), k->name, fp);
        } else if (type_is_string(k->type)) {
            const char *v = str_get(k, cfg);

            if (v == NULL)
                (void)fprintf(fp, "# %s (unset)\n", k->name);
            else
                (void)fprintf(fp, "%s %s\n", k->name, v);
        } else if (k->type == KT_BOOL) {
            (void)fprintf(fp, "%s %s\n", k->name, bool_get(k, cfg) ? "yes" : "no");
        } else if (k->type == KT_DURATION_MS) {
            (void)fprintf(fp, "%s %ums\n", k->name, uns_get(k, cfg));
        } else if (k->type == KT_DURATION_S) {
            (void)fprintf(fp, "%s %us\n", k->name, uns_get(k, cfg));
        } else {
            (void)fprintf(fp, "%s %u\n", k->name, uns_get(k, cfg));
        }
    }
}

const char *sts_config_key_name(size_t i)
{
    return i < NKEYS ? keys[i].name : NULL;
}
