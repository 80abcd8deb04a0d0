/*
 * config_keys.c - the keys of the configuration file (see config_keys.h).
 *
 * One table of keys below drives everything: the defaults (written in
 * config syntax and parsed by the same code as the file, so a default can
 * never be a value the parser would refuse), the parser and range checks,
 * sts_config_print (`mtasts-milter -n`), and tests/check-docs.sh, which
 * greps the STS_KEY lines of this file and fails if
 * doc/mtasts-milter.conf.5 misses a key.  Adding a key is one STS_KEY line
 * plus the struct field; the _Generic in the FIELD_* macros refuses a
 * field of the wrong C type.  Below the table: what a value of each type
 * may be, how it is converted and stored, moved, freed and printed.
 *
 * RFC 8461 choices carried here: HTTPSTimeout defaults to a minute (3.3
 * suggests about a minute for the fetch); PolicyPort exists only so the
 * tests can run an HTTPS server on a free port (3.3 fixes 443), and
 * AllowInternalAddresses so they (and labs) can run it on loopback or a
 * private network: a domain's DNS must not point our fetches and report
 * uploads at this host's or this network's own services.
 */
#include "conf/config_keys.h"
#include "sts/cafile.h"
#include "sts/domain.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "smap/smap_profile.h"

#define CONFIG_MAX_NAME 64            /* user and group names, host names below 253 */
#define CONFIG_MAX_DB 2147483647u     /* Redis database index is a C int */

/* ------------------------------------------------------------ the table */

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
#define FIELD_KT_NAMELIST FIELD_STR
#define FIELD_KT_SMAP_PROFILE FIELD_STR
#define FIELD_KT_LOGLEVEL FIELD_STR
#define FIELD_KT_MODE FIELD_UNS
#define FIELD_KT_GROUP FIELD_STR
#define FIELD_KT_CAFILE FIELD_STR

/* Keep name, type and default on the STS_KEY line: check-docs.sh reads them. */
#define STS_KEY(name, type, def, min, max, field, doc) \
    { name, STS_KT_##type, def, min, max, FIELD_KT_##type(field), doc }

const sts_config_key sts_config_keys[] = {
    STS_KEY("Socket", SOCKET, "inet:8462@127.0.0.1", 0, 0, socket,
            "milter socket the MTA connects to"),
    STS_KEY("SocketmapSocket", SOCKET, "inet:8461@127.0.0.1", 0, 0, socketmap_socket,
            "socketmap socket (postfix-mta-sts-resolver compatible)"),
    STS_KEY("SocketMode", MODE, "0660", 0, 0777, socket_mode,
            "mode (octal) of the unix sockets Socket and SocketmapSocket"),
    STS_KEY("SocketGroup", GROUP, NULL, 0, 0, socket_group,
            "group of the unix sockets; unset = the group of UserID"),
    STS_KEY("MetricsSocket", SOCKET, NULL, 0, 0, metrics_socket,
            "where GET /metrics serves Prometheus metrics (unset: no metrics page)"),
    STS_KEY("SocketmapProfile", SMAP_PROFILE, NULL, 0, 0, socketmap_profiles,
            "socketmap map NAME and its options; repeatable, once per NAME"),
    STS_KEY("SiteTLSPolicyFile", FILE, NULL, 0, 0, site_tls_policy_file,
            "domains (and .parents) given a TLS level by the site where MTA-STS asks for less"),
    STS_KEY("SocketmapMaxConnections", UINT, "4096", 16, 100000, socketmap_max_connections,
            "socketmap connections kept at most; at the limit the longest idle one goes"),
    STS_KEY("SocketmapMaxPerPeer", UINT, "2048", 0, 100000, socketmap_max_per_peer,
            "socketmap connections of one local user or remote address at most; 0 = no limit"),
    STS_KEY("SocketmapIdleTimeout", DURATION_S, "300s", 1, 86400, socketmap_idle_timeout,
            "a socketmap connection with no request in progress is closed after this long"),
    STS_KEY("SocketmapRequestTimeout", DURATION_S, "30s", 1, 3600, socketmap_request_timeout,
            "time a socketmap client has to finish sending a request and to read its replies"),
    STS_KEY("UserID", USER, "mtasts", 0, 0, user_id,
            "user[:group] the daemon runs as after opening its sockets"),
    STS_KEY("PidFile", PATH, NULL, 0, 0, pid_file,
            "file the daemon writes its process id to"),
    STS_KEY("SyslogFacility", FACILITY, "mail", 0, 0, syslog_facility,
            "syslog facility: mail, daemon, user, local0..local7"),
    STS_KEY("LogLevel", LOGLEVEL, "info", 0, 0, log_level,
            "least important messages logged: error, warning, notice, info or debug"),
    STS_KEY("DecisionLog", PATH, NULL, 0, 0, decision_log,
            "file receiving one JSON line per recipient decision"),
    STS_KEY("DNSServers", DNSLIST, NULL, 0, 0, dns_servers,
            "DNS servers to query; unset = /etc/resolv.conf"),
    STS_KEY("DNSTimeout", DURATION_MS, "2000ms", 100, 60000, dns_timeout_ms,
            "time to wait for one DNS answer, per try"),
    STS_KEY("DNSTries", UINT, "2", 1, 10, dns_tries,
            "number of times a DNS query is sent before giving up"),
    STS_KEY("CAFile", CAFILE, NULL, 0, 0, ca_file,
            "PEM bundle of trusted CAs for policy fetches; unset = system store"),
    STS_KEY("HTTPSConnectTimeout", DURATION_MS, "10000ms", 100, 120000,
            https_connect_timeout_ms, "time to set up the TLS connection to mta-sts.DOMAIN"),
    STS_KEY("HTTPSTimeout", DURATION_MS, "60000ms", 100, 300000, https_timeout_ms,
            "time allowed for a whole policy fetch (RFC 8461 3.3)"),
    STS_KEY("PolicyPort", UINT, "443", 1, 65535, policy_port,
            "FOR TESTS ONLY: TCP port policies are fetched from"),
    STS_KEY("AllowInternalAddresses", BOOL, "no", 0, 0, allow_internal_addresses,
            "FOR TESTS AND LABS: fetch policies and post reports to loopback, private "
            "and other special-purpose addresses"),
    STS_KEY("CacheStore", STORE, "sqlite:/var/lib/mtasts-milter/cache.db", 0, 0, cache_store,
            "where policies are cached: sqlite:PATH, redis://HOST[:PORT][/DB] or none"),
    STS_KEY("CacheStoreMaxEntries", UINT, "1000000", 100, 1000000000, cache_store_max_entries,
            "most records in an SQLite cache store (failed and no-policy ones make room "
            "first)"),
    STS_KEY("CacheSize", UINT, "100000", 10, 10000000, cache_size,
            "most domains kept in memory (those without a policy make room first)"),
    STS_KEY("NegativeCacheTime", DURATION_S, "3600s", 1, 604800, negative_ttl,
            "how long \"this domain has no MTA-STS\" is remembered"),
    STS_KEY("RecheckInterval", DURATION_S, "3600s", 60, 604800, recheck_interval,
            "age of the last TXT check after which a cache hit re-checks the policy id"),
    STS_KEY("RetryInterval", DURATION_S, "300s", 60, 86400, retry_interval,
            "least time between two failed attempts for one domain (RFC 8461 3.3)"),
    STS_KEY("RefreshIdle", DURATION_S, "2592000s", 3600, 31557600, refresh_idle,
            "stop refreshing policies of domains unused for this long"),
    STS_KEY("MaxDiscoveries", UINT, "1024", 1, 10000, max_discoveries,
            "policy discoveries running at once (DNS stage, fetch stage or waiting for it)"),
    STS_KEY("MaxPolicyFetches", UINT, "128", 1, 10000, max_policy_fetches,
            "discoveries fetching a policy (policy host address and HTTPS) at once"),
    STS_KEY("PolicyFetchSlotTime", DURATION_MS, "1000ms", 100, 600000, policy_fetch_slot_ms,
            "a policy fetch running this long gives its MaxPolicyFetches slot to a waiting one"),
    STS_KEY("DiscoveryQueue", UINT, "10000", 1, 1000000, discovery_queue,
            "discoveries waiting to start; beyond it lookups of unknown domains answer temperror"),
    STS_KEY("EnvelopeTimeout", DURATION_MS, "2000ms", 0, 30000, envelope_timeout_ms,
            "how long RCPT TO waits for a policy discovery"),
    STS_KEY("LookupFailAction", FAILACTION, "accept", 0, 0, lookup_fail_action,
            "accept or tempfail a recipient whose lookup failed or timed out"),
    STS_KEY("TagHeader", HEADER, "X-MTA-STS", 0, 0, tag_header,
            "header added per recipient domain with the MTA-STS result"),
    STS_KEY("RouteHeader", HEADER, "X-MTA-STS-Route", 0, 0, route_header,
            "header naming the delivery class, for Postfix milter_header_checks"),
    STS_KEY("SplitMixed", BOOL, "yes", 0, 0, split_mixed,
            "452 4.5.3 to split an enforce recipient from one the MTA routes itself"),
    STS_KEY("EarlyTempfail", BOOL, "no", 0, 0, early_tempfail,
            "451 4.7.5 at RCPT for enforce domains whose policy allows none of their MX"),
    STS_KEY("SMTPTransports", NAMELIST, "smtp,relay,esmtp,smtp8,dsmtp", 0, 0, smtp_transports,
            "MTA transports/mailers that deliver by SMTP to the recipient domain's MX"),
    STS_KEY("LocalDomains", DOMAINLIST, NULL, 0, 0, local_domains,
            "recipient domains delivered locally: never looked up"),
    /* MX probes: what an enforce delivery would meet (engine/prober.h) */
    STS_KEY("ProbeTestingMX", BOOL, "yes", 0, 0, probe_testing_mx,
            "probe the MX hosts of testing-mode domains mail is seen for (TLS reports)"),
    STS_KEY("ProbeEnforceMX", BOOL, "no", 0, 0, probe_enforce_mx,
            "probe the MX hosts of enforce-mode domains mail is seen for, too"),
    STS_KEY("ProbeInterval", DURATION_S, "21600s", 60, 604800, probe_interval,
            "each MX host is probed at most once per this interval (per policy domain)"),
    STS_KEY("ProbeConcurrency", UINT, "2", 1, 64, probe_concurrency,
            "probes running at once (threads)"),
    STS_KEY("ProbeQueue", UINT, "1024", 1, 100000, probe_queue,
            "probes waiting at most; beyond, a probe is skipped until the next mail"),
    STS_KEY("ProbeTimeout", DURATION_MS, "60000ms", 1000, 600000, probe_timeout_ms,
            "time allowed for a whole probe; connect at most 10 s, each wait 30 s of it"),
    STS_KEY("ProbeHeloName", STRING, NULL, 0, 0, probe_helo_name,
            "EHLO name of probes (unset: this host's name)"),
    STS_KEY("ProbePort", UINT, "25", 1, 65535, probe_port,
            "FOR TESTS ONLY: TCP port MX hosts are probed on"),
    /* mtasts-report (RFC 8460) */
    STS_KEY("ReportOrganization", STRING, NULL, 0, 0, report_organization,
            "organization-name in TLS reports (unset: this host's name)"),
    STS_KEY("ReportContact", STRING, NULL, 0, 0, report_contact,
            "contact-info in TLS reports (unset: postmaster@ the submitter domain)"),
    STS_KEY("ReportFrom", STRING, NULL, 0, 0, report_from,
            "From: address of report mail (unset: the contact address)"),
    STS_KEY("ReportSubmitter", STRING, NULL, 0, 0, report_submitter,
            "TLS-Report-Submitter domain (unset: the contact address's domain)"),
    STS_KEY("ReportHostID", STRING, NULL, 0, 0, report_host_id,
            "this host's part of report ids (unset: this host's name)"),
    STS_KEY("ReportSendingIP", STRING, NULL, 0, 0, report_sending_ip,
            "sending-mta-ip in failure details (comma list; unset: this host's route)"),
    STS_KEY("ReportNoPolicy", BOOL, "yes", 0, 0, report_no_policy,
            "no-policy-found reports to domains with a TLSRPT record and no MTA-STS"),
    STS_KEY("ReportSpool", PATH, "/var/lib/mtasts-milter/reports", 0, 0, report_spool,
            "directory of reports waiting to be sent"),
    STS_KEY("ReportSendmail", STRING, "/usr/sbin/sendmail -i -t", 0, 0, report_sendmail,
            "command that submits report mail (message on stdin)"),
    STS_KEY("ReportRetryTime", DURATION_S, "86400s", 0, 604800, report_retry_time,
            "how long a report that cannot be delivered is retried"),
};

#define NKEYS (sizeof(sts_config_keys) / sizeof(sts_config_keys[0]))
_Static_assert(NKEYS <= STS_CONFIG_KEYS_MAX, "raise STS_CONFIG_KEYS_MAX in config_keys.h");
const size_t sts_config_keys_n = NKEYS;

static bool type_is_string(sts_config_key_type t)
{
    return t != STS_KT_DURATION_MS && t != STS_KT_DURATION_S && t != STS_KT_UINT &&
           t != STS_KT_BOOL && t != STS_KT_MODE;
}

static char **str_slot(const sts_config_key *k, sts_config *cfg)
{
    return (void *)((char *)cfg + k->off);
}

static unsigned *uns_slot(const sts_config_key *k, sts_config *cfg)
{
    return (void *)((char *)cfg + k->off);
}

static bool *bool_slot(const sts_config_key *k, sts_config *cfg)
{
    return (void *)((char *)cfg + k->off);
}

static const char *str_get(const sts_config_key *k, const sts_config *cfg)
{
    const char *const *p = (const void *)((const char *)cfg + k->off);

    return *p;
}

static unsigned uns_get(const sts_config_key *k, const sts_config *cfg)
{
    const unsigned *p = (const void *)((const char *)cfg + k->off);

    return *p;
}

static bool bool_get(const sts_config_key *k, const sts_config *cfg)
{
    const bool *p = (const void *)((const char *)cfg + k->off);

    return *p;
}

const sts_config_key *sts_config_keys_find(sts_cur name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (sts_cur_eq_nocase(&name, sts_config_keys[i].name))
            return &sts_config_keys[i];
    return NULL;
}

const char *sts_config_keys_show(sts_config_shown *s, sts_cur v)
{
    size_t n = v.len > STS_CONFIG_SHOW_MAX ? STS_CONFIG_SHOW_MAX : v.len;
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
    sts_config_shown s;
    sts_cur all = v, host;
    unsigned p;
    uint64_t db;

    /* Memory only: nothing survives a restart. */
    if (sts_cur_eq_nocase(&v, "none"))
        return true;
    if (sts_cur_take_lit_nocase(&v, "sqlite:")) {
        if (v.len > 0)
            return true;
        sts_why_set(why, "'%s' has no file name after sqlite:", sts_config_keys_show(&s, all));
        return false;
    }
    if (!sts_cur_take_lit_nocase(&v, "redis://")) {
        sts_why_set(why, "'%s' is not a cache store %s", sts_config_keys_show(&s, all),
                    store_examples);
        return false;
    }
    if (sts_cur_take_char(&v, '[')) {
        if (!sts_cur_take_until(&v, ']', &host) || !v6_literal_ok(host)) {
            sts_why_set(why, "'%s': bad IPv6 address in brackets", sts_config_keys_show(&s, all));
            return false;
        }
        (void)sts_cur_take_char(&v, ']');
    } else if (!sts_cur_take_while(&v, is_name_char, &host) || host.len > 253) {
        sts_why_set(why, "'%s': missing or bad host after redis://", sts_config_keys_show(&s, all));
        return false;
    }
    if (sts_cur_take_char(&v, ':')) {
        sts_cur port;

        if (!sts_cur_take_until(&v, '/', &port)) {
            port = v;
            v = sts_cur_make(v.p + v.len, 0);
        }
        if (!parse_port(port, &p)) {
            sts_why_set(why, "'%s': port is not in 1..65535", sts_config_keys_show(&s, all));
            return false;
        }
    }
    if (sts_cur_take_char(&v, '/')) {
        if (!sts_cur_take_number(&v, 10, CONFIG_MAX_DB, &db) || !sts_cur_empty(&v)) {
            sts_why_set(why, "'%s': database is not a number in 0..%u",
                        sts_config_keys_show(&s, all), CONFIG_MAX_DB);
            return false;
        }
    }
    if (!sts_cur_empty(&v)) {
        sts_why_set(why, "'%s' is not a cache store %s", sts_config_keys_show(&s, all),
                    store_examples);
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
    sts_config_shown s;

    if (sts_cur_take_char(&e, '[')) {
        if (!sts_cur_take_until(&e, ']', &host)) {
            sts_why_set(why, "'%s': missing ']'", sts_config_keys_show(&s, host));
            return STS_PERMFAIL;
        }
        (void)sts_cur_take_char(&e, ']');
        if (!sts_cur_empty(&e) && (!sts_cur_take_char(&e, ':') || sts_cur_empty(&e))) {
            sts_why_set(why, "'%s': expected ':PORT' after ']'", sts_config_keys_show(&s, e));
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
        sts_why_set(why, "'%s' is not an IPv4 or IPv6 address", sts_config_keys_show(&s, host));
        return STS_PERMFAIL;
    }
    if (!parse_port(port, &p)) {
        sts_why_set(why, "port '%s' is not in 1..65535", sts_config_keys_show(&s, port));
        return STS_PERMFAIL;
    }
    if (inet_ntop(af, a, text, sizeof(text)) == NULL) {
        sts_why_set(why, "'%s' is not an IPv4 or IPv6 address", sts_config_keys_show(&s, host));
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

/* At most this many DNS servers: the list is printed back in its longest
 * form ("[v6]:port" each, at most 48 bytes), and `mtasts-milter -n` must
 * print a line the parser takes again (fuzz_config found a list of 96
 * short entries whose printed form passed the line limit). */
#define STS_CONFIG_DNS_MAX_SERVERS 32

static sts_status dns_list(sts_cur v, char **out, sts_why *why)
{
    sts_buf b;
    sts_status st = STS_OK;
    bool last = false;
    size_t n = 0;

    /* The value is at most STS_CONFIG_MAX_LINE bytes (apply) and an element
     * grows by a few bytes at most ("[" "]:53" and the 0 fields inet_ntop
     * writes out): 16 times is far beyond what any value needs. */
    sts_buf_init(&b, (size_t)STS_CONFIG_MAX_LINE * 16);
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
        if (++n > STS_CONFIG_DNS_MAX_SERVERS) {
            sts_why_set(why, "more than %d DNS servers", STS_CONFIG_DNS_MAX_SERVERS);
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

static sts_status apply_number(const sts_config_key *k, const number_kind *nk, sts_cur v,
                               sts_config *cfg, sts_why *why)
{
    sts_cur all = v;
    uint64_t n, mult = 0;
    bool range;
    sts_config_shown s;

    if (!parse_u64(&v, &n, &range) && !range)
        goto bad;
    for (size_t i = 0; i < nk->nunits; i++)
        if (sts_cur_eq_nocase(&v, nk->units[i].suffix))
            mult = nk->units[i].mult;
    if (mult == 0)
        goto bad;
    n = n > UINT64_MAX / mult ? UINT64_MAX : n * mult;
    if (n < k->min || n > k->max) {
        sts_why_set(why, "%s is out of range %llu%s..%llu%s", sts_config_keys_show(&s, all),
                    (unsigned long long)k->min, nk->range_unit, (unsigned long long)k->max,
                    nk->range_unit);
        return STS_PERMFAIL;
    }
    *uns_slot(k, cfg) = (unsigned)n;
    return STS_OK;
bad:
    sts_why_set(why, "'%s' is not %s", sts_config_keys_show(&s, all), nk->what);
    return STS_PERMFAIL;
}

/* An octal mode such as 0660 or 660: 1 to 4 octal digits, at most k->max. */
static sts_status apply_mode(const sts_config_key *k, sts_cur v, sts_config *cfg, sts_why *why)
{
    unsigned mode = 0;
    sts_config_shown s;

    if (v.len == 0 || v.len > 4)
        goto bad;
    for (size_t i = 0; i < v.len; i++) {
        if (v.p[i] < '0' || v.p[i] > '7')
            goto bad;
        mode = mode * 8 + (unsigned)(v.p[i] - '0');
    }
    if (mode > k->max)
        goto bad;
    *uns_slot(k, cfg) = mode;
    return STS_OK;
bad:
    sts_why_set(why, "'%s' is not an octal file mode 0000..%04llo (example: 0660)",
                sts_config_keys_show(&s, v), (unsigned long long)k->max);
    return STS_PERMFAIL;
}

static sts_status apply_bool(const sts_config_key *k, sts_cur v, sts_config *cfg, sts_why *why)
{
    static const char *const yes[] = { "yes", "true", "on", "1" };
    static const char *const no[] = { "no", "false", "off", "0" };
    sts_config_shown s;

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
    sts_why_set(why, "'%s' is not yes or no", sts_config_keys_show(&s, v));
    return STS_PERMFAIL;
}

/* Syntax of the text types; the value is kept as written apart from the
 * case of scheme and facility names. */
/* Comma list of Postfix transport / Sendmail mailer names: letters,
 * digits, '-', '_' and '.', 1..64 each (master.cf service names). */
static bool name_list_ok(sts_cur v, sts_why *why)
{
    sts_cur item;
    size_t n = 0;

    while (sts_cur_take_item(&v, ',', &item)) {
        sts_config_shown s;

        if (item.len == 0) {
            sts_why_set(why, "empty element in the transport list");
            return false;
        }
        for (size_t i = 0; i < item.len; i++) {
            unsigned char ch = (unsigned char)item.p[i];

            if (item.len > 64 || !(sts_is_alnum(ch) || ch == '-' || ch == '_' || ch == '.')) {
                sts_why_set(why, "'%s' is not a transport name (letters, digits, '-', '_', "
                            "'.', at most 64)", sts_config_keys_show(&s, item));
                return false;
            }
        }
        if (++n > 100) {
            sts_why_set(why, "more than 100 transports");
            return false;
        }
    }
    return true;
}

/* Comma list of domains, each as sts_domain_normalize accepts it. */
static bool domain_list_ok(sts_cur v, sts_why *why)
{
    sts_cur item;
    size_t n = 0;

    while (sts_cur_take_item(&v, ',', &item)) {
        char norm[STS_DOMAIN_MAX + 1];
        sts_why dwhy;
        sts_config_shown s;

        if (item.len == 0) {
            sts_why_set(why, "empty element in the domain list");
            return false;
        }
        if (sts_domain_normalize(item.p, item.len, norm, &dwhy) != STS_OK) {
            sts_why_set(why, "'%s' is not a domain: %s", sts_config_keys_show(&s, item), dwhy.text);
            return false;
        }
        if (++n > 10000) {
            sts_why_set(why, "more than 10000 domains");
            return false;
        }
    }
    return true;
}

static bool text_ok(const sts_config_key *k, sts_cur v, sts_why *why)
{
    sts_config_shown s;

    switch (k->type) {
    case STS_KT_SOCKET:
        if (socket_ok(v))
            return true;
        sts_why_set(why, "'%s' is not a socket %s", sts_config_keys_show(&s, v), socket_examples);
        return false;
    case STS_KT_USER:
        if (user_ok(v))
            return true;
        sts_why_set(why, "'%s' is not a user or user:group name", sts_config_keys_show(&s, v));
        return false;
    case STS_KT_GROUP:
        if (name_ok(v))
            return true;
        sts_why_set(why, "'%s' is not a group name", sts_config_keys_show(&s, v));
        return false;
    case STS_KT_LOGLEVEL: {
        sts_log_level lvl;

        if (sts_log_level_parse(v.p, v.len, &lvl))
            return true;
        sts_why_set(why, "'%s' is not a log level (error, warning, notice, info, debug)",
                    sts_config_keys_show(&s, v));
        return false;
    }
    case STS_KT_STORE:
        return store_ok(v, why);
    case STS_KT_HEADER:
        if (v.len > 64)
            goto bad_header;
        for (size_t i = 0; i < v.len; i++)
            if ((unsigned char)v.p[i] < 33 || (unsigned char)v.p[i] > 126 || v.p[i] == ':')
                goto bad_header;
        return true;
    case STS_KT_FAILACTION:
        if (sts_cur_eq_nocase(&v, "accept") || sts_cur_eq_nocase(&v, "tempfail"))
            return true;
        sts_why_set(why, "'%s' is not accept or tempfail", sts_config_keys_show(&s, v));
        return false;
    case STS_KT_DOMAINLIST:
        return domain_list_ok(v, why);
    case STS_KT_NAMELIST:
        return name_list_ok(v, why);
    default:
        return true;
    }
bad_header:
    sts_why_set(why, "'%s' is not a header field name (printable ASCII without ':', at most 64)",
                sts_config_keys_show(&s, v));
    return false;
}

/* Final checks on the NUL-terminated copy. */
static bool copy_ok(const sts_config_key *k, char *copy, sts_why *why)
{
    sts_config_shown s;
    sts_why sub = { "" };
    struct stat sb;
    int fd;

    switch (k->type) {
    case STS_KT_FAILACTION:
    case STS_KT_LOGLEVEL:
        for (char *c = copy; *c != '\0'; c++)
            *c = (char)sts_to_lower((unsigned char)*c);
        return true;
    case STS_KT_FACILITY:
        for (char *c = copy; *c != '\0'; c++)
            *c = (char)sts_to_lower((unsigned char)*c);
        if (sts_log_facility_valid(copy))
            return true;
        sts_why_set(why, "'%s' is not a syslog facility (mail, daemon, user, local0..local7)",
                    sts_config_keys_show(&s, sts_cur_str(copy)));
        return false;
    case STS_KT_SOCKET:
    case STS_KT_STORE:
        for (char *c = copy; *c != '\0' && *c != ':'; c++)
            *c = (char)sts_to_lower((unsigned char)*c);
        return true;
    case STS_KT_FILE:
    case STS_KT_CAFILE:
        /* Checked now so that `mtasts-milter -n` and a reload report a
         * missing CA bundle instead of every fetch failing later.
         * O_NONBLOCK: a FIFO must not hang the parser. */
        fd = open(copy, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        if (fd < 0) {
            sts_why_set(why, "cannot read '%s': %s", sts_config_keys_show(&s, sts_cur_str(copy)),
                        strerror(errno));
            return false;
        }
        if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
            (void)close(fd);
            sts_why_set(why, "'%s' is not a regular file",
                        sts_config_keys_show(&s, sts_cur_str(copy)));
            return false;
        }
        (void)close(fd);
        /* A file of junk would pass: every fetch would then fail, and the
         * socketmap answer NOTFOUND for every domain. */
        if (k->type == STS_KT_CAFILE && sts_cafile_check(copy, &sub) != STS_OK) {
            sts_why_set(why, "%s", sub.text);
            return false;
        }
        return true;
    default:
        return true;
    }
}

/* What every value must be: present, not too long, no control characters. */
bool sts_config_keys_value_ok(sts_cur v, sts_why *why)
{
    if (v.len == 0) {
        sts_why_set(why, "missing value");
        return false;
    }
    if (v.len > STS_CONFIG_MAX_LINE) {
        sts_why_set(why, "value longer than %d bytes", STS_CONFIG_MAX_LINE);
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
sts_status sts_config_keys_apply_profile(const sts_config_key *k, sts_cur v, sts_config *cfg,
                                         size_t *dup, sts_why *why)
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
sts_status sts_config_keys_apply(const sts_config_key *k, sts_cur v, sts_config *cfg,
                                 sts_why *why)
{
    char *copy;
    sts_status st;

    if (!sts_config_keys_value_ok(v, why))
        return STS_PERMFAIL;
    switch (k->type) {
    case STS_KT_UINT:
        return apply_number(k, &kind_uint, v, cfg, why);
    case STS_KT_DURATION_MS:
        return apply_number(k, &kind_ms, v, cfg, why);
    case STS_KT_DURATION_S:
        return apply_number(k, &kind_s, v, cfg, why);
    case STS_KT_BOOL:
        return apply_bool(k, v, cfg, why);
    case STS_KT_MODE:
        return apply_mode(k, v, cfg, why);
    case STS_KT_DNSLIST:
        st = dns_list(v, &copy, why);
        if (st == STS_OK)
            *str_slot(k, cfg) = copy;
        return st;
    case STS_KT_SMAP_PROFILE: {
        size_t dup;

        return sts_config_keys_apply_profile(k, v, cfg, &dup, why);
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
void sts_config_keys_move(const sts_config_key *k, sts_config *dst, sts_config *src)
{
    if (type_is_string(k->type)) {
        free(*str_slot(k, dst));
        *str_slot(k, dst) = *str_slot(k, src);
        *str_slot(k, src) = NULL;
    } else if (k->type == STS_KT_BOOL) {
        *bool_slot(k, dst) = *bool_slot(k, src);
    } else {
        *uns_slot(k, dst) = *uns_slot(k, src);
    }
}

/* Free key k's value if it is allocated (config.c: sts_config_free). */
void sts_config_keys_free(const sts_config_key *k, sts_config *cfg)
{
    if (type_is_string(k->type)) {
        free(*str_slot(k, cfg));
        *str_slot(k, cfg) = NULL;
    }
}

/* ------------------------------------------------------------ printing */

void sts_config_keys_print(const sts_config_key *k, const sts_config *cfg, FILE *fp)
{
    if (k->type == STS_KT_SMAP_PROFILE) {
        /* One line per profile in force, the built-ins included. */
        sts_smap_profiles_print(str_get(k, cfg), k->name, fp);
    } else if (type_is_string(k->type)) {
        const char *v = str_get(k, cfg);

        if (v == NULL)
            (void)fprintf(fp, "# %s (unset)\n", k->name);
        else
            (void)fprintf(fp, "%s %s\n", k->name, v);
    } else if (k->type == STS_KT_BOOL) {
        (void)fprintf(fp, "%s %s\n", k->name, bool_get(k, cfg) ? "yes" : "no");
    } else if (k->type == STS_KT_DURATION_MS) {
        (void)fprintf(fp, "%s %ums\n", k->name, uns_get(k, cfg));
    } else if (k->type == STS_KT_MODE) {
        (void)fprintf(fp, "%s %04o\n", k->name, uns_get(k, cfg));
    } else if (k->type == STS_KT_DURATION_S) {
        (void)fprintf(fp, "%s %us\n", k->name, uns_get(k, cfg));
    } else {
        (void)fprintf(fp, "%s %u\n", k->name, uns_get(k, cfg));
    }
}
