/*
 * rlog.c - the log reader behind mtasts-report (see rlog.h): the decision
 * log and the MTA's log, line by line, joined into the sessions of RFC 8460
 * section 4 (a session is one SMTP connection, its TLS outcome and, where
 * it failed, the result type of RFC 8460 4.3).
 *
 * Line formats read (everything else is "ignored"; a line that starts like
 * one of these but cannot be parsed is "malformed", warned and counted):
 *
 *   Time stamps and syslog header: "Mmm dd hh:mm:ss [HOST ]TAG[PID]: MSG"
 *   (BSD syslog and postlogd, local time, year inferred, see
 *   sts_rlog_set_now) or "YYYY-MM-DDThh:mm:ss[.frac](Z|+hh:mm|+hhmm) [HOST ]
 *   TAG[PID]: MSG" (rsyslog RFC 3339, journalctl -o short-iso).  Postfix is
 *   any TAG ending in "/smtp" or "/lmtp" (postfix/smtp, postfix/lmtp, and
 *   services with their own syslog_name such as postfix/mtasts-enforce/smtp
 *   or postfix-out/smtp); Sendmail is TAG "sm-mta" or "sendmail".
 *
 *   Decision log: one JSON object per line (dlog.c): time, queue_id,
 *   domain, result, action required; mode, policy_id, report_type, mx,
 *   max_age, reason used when present; other fields ignored.
 *
 *   Postfix smtp(8)/lmtp(8), as Postfix 3.7 writes them (smtp_tls_loglevel
 *   >= 1 for the TLS lines):
 *     P1 "(Verified|Trusted|Untrusted|Anonymous) TLS connection (established|
 *         reused) to HOST[IP]:PORT: ..."           TLS up (no queue id)
 *     P2 "[server |CA ]certificate verification failed for HOST[IP]:PORT:
 *         REASON"                                  precedes P1 (no queue id)
 *     P3 "SSL_connect error to HOST[IP]:PORT: TEXT" handshake failed
 *     P4 "QID: to=<ADDR>, [orig_to=<ADDR>, ]relay=HOST[IP]:PORT, [conn_use=N, ]
 *         delay=.., delays=.., dsn=X.Y.Z, status=WORD (TEXT)" one recipient
 *     P5 "QID: Cannot start TLS: handshake failure" the retry in plaintext
 *   Sendmail (LogLevel >= 9; 12 and 14 add the reason lines):
 *     S1 "STARTTLS=client, relay=HOST, version=.., verify=WORD, cipher=..,
 *         bits=../.." TLS up (no queue id)
 *     S2 "STARTTLS: TLS cert verify: depth=N SUBJECT, state=N, reason=TEXT"
 *         before S1;  S3 "STARTTLS=client, cert-subject=.., cert-issuer=..,
 *         verifymsg=TEXT" after S1
 *     S4 "ruleset=tls_server, arg1=WORD, relay=HOST, reject=TEXT"
 *     S5 "QID: to=<A>[,<B>...], ..., relay=HOST [IP], dsn=.., stat=WORD ..."
 *
 * Connections.  The TLS lines carry no queue id: they are tied to the
 * delivery lines of the same process (host + PID) that follow them.  A TLS
 * line, an SSL_connect error or a verification failure that does not
 * belong to the connection in progress starts a new connection; a
 * delivery line for another queue id, another relay, or a recipient
 * already seen on the connection starts one too (Postfix does not cache
 * TLS connections unless smtp_tls_connection_reuse is set, and then logs
 * "reused" per delivery; Sendmail may carry several messages over one
 * cached connection, so there the connection is handed on to the next
 * queue id of the same relay).  Connections that end without a delivery
 * line - an MX host tried before the one that took the mail - belong to
 * the delivery that follows in the same process.  Each connection counts
 * once per recipient domain and queue id, however many recipients of the
 * domain it carried.  A delivery that made no connection (relay=none,
 * "delivery temporarily suspended") is no session.
 *
 * Result types (RFC 8460 4.3):
 *   starttls-not-supported     Postfix "TLS is required, but was not offered
 *                              by host" / "... but host H refused to start
 *                              TLS"; Sendmail verify or arg1 NONE,
 *                              DANE_NOTLS, "other side does not support
 *                              STARTTLS"; a delivery without TLS by a
 *                              service that logs its TLS handshakes (tls
 *                              PLAINTEXT: it did not see STARTTLS offered)
 *   certificate-expired        reason "certificate has expired", "not yet
 *                              valid" (OpenSSL sends the certificate_expired
 *                              alert for both)
 *   certificate-host-mismatch  reason "hostname mismatch" (Postfix
 *                              "num=62:hostname mismatch")
 *   certificate-not-trusted    reason "untrusted issuer", "self-signed",
 *                              "not trusted", "unable to get (local) issuer",
 *                              "rejected"; Postfix "Untrusted" or Sendmail
 *                              verify=FAIL without a logged reason (Postfix
 *                              logs no reason at security level "may")
 *   validation-failure         any other verification reason ("not
 *                              designated for use", "chain longer than
 *                              limit", ...), "Server certificate not
 *                              verified" without a reason, Postfix
 *                              "Anonymous" (no certificate), the handshake
 *                              failures (P3, P5, "Cannot start TLS:
 *                              handshake failure"), Sendmail verify NO, NOT,
 *                              TEMP, PROTOCOL, SOFTWARE, DANE_FAIL,
 *                              DANE_TEMP; and the decision "tempfail-no-mx"
 *   sts-policy-fetch-error, sts-policy-invalid, sts-webpki-invalid
 *                              the decision log's report_type, unless the
 *                              result is "policy" (a failed refresh while
 *                              a valid cached policy applied: ignored)
 * Success: Postfix "Verified" or "Trusted" (at level "may" Postfix checks
 * the chain but not the name: "Trusted" is the best the log can say),
 * Sendmail verify=OK, TRUSTED, DANE_PASS.
 */
#include "tlsrpt/rlog.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <zlib.h>

#include "base/buf.h"

/* Memory caps (each counted in stats.dropped when reached). */
#define DECISIONS_MAX (2u << 20)
#define ATTEMPTS_MAX (4u << 20)
#define SESSIONS_MAX (1u << 20)   /* about 1.7 KB each */
#define STRBYTES_MAX (256u << 20) /* interned text */
#define PIDS_MAX 4096             /* MTA processes followed at once (LRU) */
#define CONNS_MAX 8               /* open connections per process */
#define CONN_DOMAINS 32           /* distinct domains remembered per connection */
#define CONN_RCPTS 32             /* recipients remembered per connection */
#define WARN_MAX 50
#define JOIN_SKEW 300             /* an attempt logged up to 5 min before its decision */
#define DUP_WINDOW 3600           /* repeated decision lines of one message */
#define CONN_STALE 900            /* a connection not tied to a delivery line this long
                                     after its TLS line never will be (a log gap) */
#define FUTURE_SLACK (7 * 86400)
#define READ_CHUNK 65536

static const char rt_starttls[] = "starttls-not-supported";
static const char rt_host[] = "certificate-host-mismatch";
static const char rt_expired[] = "certificate-expired";
static const char rt_untrusted[] = "certificate-not-trusted";
static const char rt_validation[] = "validation-failure";

typedef enum mta_kind {
    MTA_POSTFIX = 1,
    MTA_SENDMAIL = 2,
} mta_kind;

typedef struct strnode {
    struct strnode *next;
    uint64_t hash;
    bool logs_tls; /* for service names: a TLS handshake line was seen */
    char s[];
} strnode;

typedef struct dec {
    int64_t time;
    const char *qid, *domain, *policy_id, *mx, *reason; /* interned */
    const char *engine_rt;                               /* static, NULL: none */
    uint32_t next;                                       /* hash chain, index + 1 */
    uint32_t max_age;
    uint8_t result, mode;
    bool has_policy, max_age_known, mx_truncated, joined;
} dec;

typedef struct att {
    int64_t time;
    const char *qid, *domain, *host, *ip, *detail, *service; /* interned */
    const char *rt;                                          /* static */
    uint8_t tls;
    bool sent;
} att;

typedef struct conn {
    int64_t time;
    const char *host, *ip, *detail; /* interned, "" unknown */
    const char *rt;                 /* result type from a verification reason */
    const char *qid;                /* bound to this delivery, NULL: not yet */
    uint8_t tls;                    /* sts_rlog_tls */
    bool verify_failed;             /* a verification failure, no TLS line yet */
    size_t ndom, nrcpt;
    const char *dom[CONN_DOMAINS];
    uint64_t rcpt[CONN_RCPTS];
} conn;

typedef struct pidstate {
    struct pidstate *hnext, *prev, *next; /* hash chain; LRU list, most recent first */
    const char *host;                     /* interned syslog host ("" none) */
    const char *service;                  /* interned "HOST TAG" */
    uint32_t pid;
    uint8_t kind;
    const char *pend_rt, *pend_detail;    /* Sendmail S2, waiting for its S1 */
    size_t nconn;
    conn c[CONNS_MAX];                    /* c[nconn - 1] is the newest */
} pidstate;

#define PID_BUCKETS 8192

struct sts_rlog {
    void (*warn)(void *arg, const char *msg);
    void *warn_arg;
    unsigned warned;
    int64_t now, win_from, win_until;
    bool window, nomem, built;
    sts_rlog_stats st;
    const char *name; /* current input, for warnings */
    uint64_t lineno;

    strnode **sb;
    size_t nsb, nstr, strbytes;

    dec *d;
    size_t nd, capd;
    uint32_t *dh; /* hash heads, index + 1 */
    size_t ndh;

    att *a;
    size_t na, capa;

    pidstate *ph[PID_BUCKETS];
    pidstate *lru_head, *lru_tail;
    size_t npid;

    sts_rsession *out;
    size_t nout;
};

/* ------------------------------------------------------------ warnings */

static void warnf(sts_rlog *r, const char *fmt, ...) STS_PRINTF(2, 3);

static void warnf(sts_rlog *r, const char *fmt, ...)
{
    char msg[512], line[700];
    va_list ap;

    if (r->warn == NULL)
        return;
    if (r->warned >= WARN_MAX) {
        if (r->warned == WARN_MAX)
            r->warn(r->warn_arg, "further malformed lines are counted but not shown");
        r->warned = WARN_MAX + 1;
        return;
    }
    r->warned++;
    va_start(ap, fmt);
    (void)vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    (void)snprintf(line, sizeof(line), "%s:%llu: %s", r->name != NULL ? r->name : "-",
                   (unsigned long long)r->lineno, msg);
    r->warn(r->warn_arg, line);
}

static sts_rlog_line_kind malformed(sts_rlog *r, const char *why, sts_cur what)
{
    char q[96];

    warnf(r, "%s: \"%s\"", why, sts_quote(q, sizeof(q), what.p, what.len));
    return STS_RLOG_MALFORMED;
}

/* ------------------------------------------------------------- strings */

static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;

    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ull;
    }
    return h;
}

static strnode *node_of(const char *s)
{
    return (strnode *)(void *)(s - offsetof(strnode, s));
}

/* The one copy of p[0..n) (NUL-terminated), "" for n == 0; NULL when out of
 * memory or over STRBYTES_MAX (r->nomem / stats.dropped say which). */
static const char *intern(sts_rlog *r, const char *p, size_t n)
{
    uint64_t h;
    strnode *x;
    size_t b;

    if (n == 0)
        return "";
    h = hash_bytes(p, n);
    if (r->nstr >= r->nsb) {
        size_t nn = r->nsb != 0 ? r->nsb * 2 : 1024;
        strnode **nb = sts_calloc_array(nn, sizeof(*nb));

        if (nb == NULL) {
            r->nomem = true;
            return NULL;
        }
        for (size_t i = 0; i < r->nsb; i++) {
            strnode *next;

            for (x = r->sb[i]; x != NULL; x = next) {
                next = x->next;
                x->next = nb[x->hash & (nn - 1)];
                nb[x->hash & (nn - 1)] = x;
            }
        }
        free(r->sb);
        r->sb = nb;
        r->nsb = nn;
    }
    b = h & (r->nsb - 1);
    for (x = r->sb[b]; x != NULL; x = x->next)
        if (x->hash == h && memcmp(x->s, p, n) == 0 && x->s[n] == '\0')
            return x->s;
    if (r->strbytes + n > STRBYTES_MAX) {
        r->st.dropped++;
        return NULL;
    }
    x = malloc(sizeof(*x) + n + 1);
    if (x == NULL) {
        r->nomem = true;
        return NULL;
    }
    x->hash = h;
    x->logs_tls = false;
    memcpy(x->s, p, n);
    x->s[n] = '\0';
    x->next = r->sb[b];
    r->sb[b] = x;
    r->nstr++;
    r->strbytes += n + sizeof(*x);
    return x->s;
}

/* Untrusted text made printable ASCII and cut to fit a
 * STS_RLOG_DETAIL_MAX field ("..." marks the cut), then interned.  Unlike
 * sts_quote (for log lines) quotes and backslashes stay as they are: the
 * text goes into report JSON, whose encoder escapes what JSON needs, and
 * "can't" must not reach a report as "can\x27t". */
static const char *intern_quoted(sts_rlog *r, const char *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char q[STS_RLOG_DETAIL_MAX + 1];
    size_t o = 0;

    if (n == 0)
        return "";
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        bool plain = ch >= 0x20 && ch < 0x7f;

        if (o + (plain ? 1 : 4) + 4 > sizeof(q)) {
            memcpy(q + o, "...", 3);
            o += 3;
            break;
        }
        if (plain) {
            q[o++] = (char)ch;
        } else {
            q[o++] = '\\';
            q[o++] = 'x';
            q[o++] = hex[ch >> 4];
            q[o++] = hex[ch & 0x0f];
        }
    }
    q[o] = '\0';
    return intern(r, q, o);
}

/* A host name as logged (trailing dot allowed), lower-cased; "" when it is
 * not a host name (an address, "unknown", a Unix socket path). */
static const char *intern_host(sts_rlog *r, sts_cur h)
{
    char low[STS_DOMAIN_MAX + 1];

    if (h.len > 0 && h.p[h.len - 1] == '.')
        h.len--;
    if (h.len == 0 || h.len > STS_DOMAIN_MAX || !sts_hostname_valid(h.p, h.len))
        return "";
    for (size_t i = 0; i < h.len; i++)
        low[i] = (char)sts_to_lower((unsigned char)h.p[i]);
    return intern(r, low, h.len);
}

/* An IPv4 or IPv6 address in text form; "" when ip is not one. */
static const char *intern_ip(sts_rlog *r, sts_cur ip)
{
    char buf[STS_RLOG_IP_MAX + 1];
    unsigned char bin[16];

    if (ip.len == 0 || ip.len > STS_RLOG_IP_MAX)
        return "";
    memcpy(buf, ip.p, ip.len);
    buf[ip.len] = '\0';
    if (inet_pton(AF_INET, buf, bin) != 1 && inet_pton(AF_INET6, buf, bin) != 1)
        return "";
    return intern(r, buf, ip.len);
}

/* --------------------------------------------------------------- time */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    int64_t era;
    unsigned yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned)(y - era * 400);
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static bool is_leap(uint64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned month_days(uint64_t y, uint64_t m)
{
    static const unsigned md[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

    return m == 2 && is_leap(y) ? 29 : md[m - 1];
}

/* Exactly two digits (more may follow: "+0100"), value <= max. */
static bool take_2(sts_cur *c, uint64_t max, uint64_t *v)
{
    uint64_t x;

    if (c->len < 2 || !sts_is_digit((unsigned char)c->p[0]) ||
        !sts_is_digit((unsigned char)c->p[1]))
        return false;
    x = (uint64_t)(c->p[0] - '0') * 10 + (uint64_t)(c->p[1] - '0');
    if (x > max)
        return false;
    *v = x;
    c->p += 2;
    c->len -= 2;
    return true;
}

/* RFC 3339 date-time (also "+hhmm" offsets and a space for 'T'); *t in UTC
 * seconds.  Consumes it on success. */
static bool take_rfc3339(sts_cur *c, int64_t *t)
{
    sts_cur s = *c, digits;
    uint64_t y, mo, d, h, mi, se, oh = 0, om = 0;
    int sign = 0;

    if (s.len < 4 || !sts_cur_take_number(&s, 4, 9999, &y) || y < 1970 ||
        !sts_cur_take_char(&s, '-') || !take_2(&s, 12, &mo) || mo == 0 ||
        !sts_cur_take_char(&s, '-') || !take_2(&s, 31, &d) || d == 0 ||
        d > month_days(y, mo))
        return false;
    if (!sts_cur_take_char(&s, 'T') && !sts_cur_take_char(&s, 't') &&
        !sts_cur_take_char(&s, ' '))
        return false;
    if (!take_2(&s, 23, &h) || !sts_cur_take_char(&s, ':') || !take_2(&s, 59, &mi) ||
        !sts_cur_take_char(&s, ':') || !take_2(&s, 60, &se))
        return false;
    if (sts_cur_take_char(&s, '.') && !sts_cur_take_while(&s, sts_is_digit, &digits))
        return false;
    if (sts_cur_take_char(&s, 'Z') || sts_cur_take_char(&s, 'z')) {
        sign = 0;
    } else if (sts_cur_take_char(&s, '+')) {
        sign = 1;
    } else if (sts_cur_take_char(&s, '-')) {
        sign = -1;
    } else {
        return false;
    }
    if (sign != 0) {
        if (!take_2(&s, 23, &oh))
            return false;
        (void)sts_cur_take_char(&s, ':');
        if (!take_2(&s, 59, &om))
            return false;
    }
    *t = days_from_civil((int64_t)y, (unsigned)mo, (unsigned)d) * 86400 + (int64_t)(h * 3600) +
         (int64_t)(mi * 60) + (int64_t)se - sign * (int64_t)(oh * 3600 + om * 60);
    *c = s;
    return true;
}

/* BSD syslog "Mmm dd hh:mm:ss" (day space-padded or not), local time; the
 * year is the one that puts the stamp at most FUTURE_SLACK after r->now. */
static bool take_bsd_time(const sts_rlog *r, sts_cur *c, int64_t *t)
{
    static const char *const months[12] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    sts_cur s = *c;
    uint64_t d, h, mi, se;
    int mo = -1;
    struct tm now_tm, tm;
    time_t now = (time_t)r->now, when;

    for (int i = 0; i < 12; i++)
        if (sts_cur_take_lit(&s, months[i])) {
            mo = i;
            break;
        }
    if (mo < 0 || !sts_cur_take_char(&s, ' '))
        return false;
    (void)sts_cur_take_char(&s, ' ');
    if (!sts_cur_take_number(&s, 2, 31, &d) || d == 0 || !sts_cur_take_char(&s, ' ') ||
        !take_2(&s, 23, &h) || !sts_cur_take_char(&s, ':') || !take_2(&s, 59, &mi) ||
        !sts_cur_take_char(&s, ':') || !take_2(&s, 60, &se))
        return false;
    if (localtime_r(&now, &now_tm) == NULL)
        return false;
    for (int back = 0; back < 2; back++) {
        memset(&tm, 0, sizeof(tm));
        tm.tm_year = now_tm.tm_year - back;
        tm.tm_mon = mo;
        tm.tm_mday = (int)d;
        tm.tm_hour = (int)h;
        tm.tm_min = (int)mi;
        tm.tm_sec = (int)se;
        tm.tm_isdst = -1;
        if (d > month_days((uint64_t)tm.tm_year + 1900, (uint64_t)mo + 1))
            continue; /* Feb 29 of another year */
        when = mktime(&tm);
        if (when == (time_t)-1)
            continue;
        if ((int64_t)when <= r->now + FUTURE_SLACK || back == 1) {
            *t = (int64_t)when;
            *c = s;
            return true;
        }
    }
    return false;
}

/* ------------------------------------------------------- cursor helpers */

/* Position of lit in c, or false. */
static bool cur_find(const sts_cur *c, const char *lit, size_t *pos)
{
    size_t n = strlen(lit);

    if (n == 0 || c->len < n)
        return false;
    for (size_t i = 0; i + n <= c->len; i++)
        if (c->p[i] == lit[0] && memcmp(c->p + i, lit, n) == 0) {
            *pos = i;
            return true;
        }
    return false;
}

static bool cur_has(const sts_cur *c, const char *lit)
{
    size_t pos;

    return cur_find(c, lit, &pos);
}

static bool cur_has_nocase(const sts_cur *c, const char *lit)
{
    size_t n = strlen(lit);

    for (size_t i = 0; n > 0 && i + n <= c->len; i++)
        if (sts_mem_eq_nocase(c->p + i, lit, n))
            return true;
    return false;
}

static bool is_key_char(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || ch == '_' || ch == '-' || sts_is_digit(ch);
}

static bool is_not_space(unsigned char ch)
{
    return ch != ' ';
}

/* The next "key=value" of a ", "-separated list.  A value ends at ", "
 * followed by a field name and '=' (a value may contain ", " otherwise),
 * or at the end; the value of the terminal key (status / stat) is the
 * rest of the line. */
static bool take_field(sts_cur *c, const char *terminal, sts_cur *key, sts_cur *val)
{
    sts_cur s = *c;
    size_t i;

    if (!sts_cur_take_while(&s, is_key_char, key) || !sts_cur_take_char(&s, '='))
        return false;
    if (sts_cur_eq(key, terminal)) {
        *val = s;
        s.p += s.len;
        s.len = 0;
        *c = s;
        return true;
    }
    for (i = 0; i + 1 < s.len; i++) {
        if (s.p[i] == ',' && s.p[i + 1] == ' ') {
            size_t j = i + 2;

            while (j < s.len && is_key_char((unsigned char)s.p[j]))
                j++;
            if (j > i + 2 && j < s.len && s.p[j] == '=')
                break;
        }
    }
    if (i + 1 >= s.len)
        i = s.len;
    *val = sts_cur_make(s.p, i);
    s.p += i;
    s.len -= i;
    (void)sts_cur_take_lit(&s, ", ");
    *c = s;
    return true;
}

static bool is_qid_char(unsigned char ch)
{
    return sts_is_alnum(ch);
}

/* "QID: " at the start of a message. */
static bool take_qid(sts_cur *m, sts_cur *qid)
{
    sts_cur s = *m;

    if (!sts_cur_take_while(&s, is_qid_char, qid) || qid->len < 5 ||
        qid->len > STS_RLOG_QID_MAX || !sts_cur_take_lit(&s, ": "))
        return false;
    *m = s;
    return true;
}

/* Postfix "HOST[ADDR]" with an optional ":PORT". */
static bool take_namaddr(sts_rlog *r, sts_cur *c, const char **host, const char **ip)
{
    sts_cur s = *c, h, a, port;

    if (!sts_cur_take_until(&s, '[', &h) || h.len == 0 || cur_has(&h, " ") ||
        !sts_cur_take_char(&s, '[') || !sts_cur_take_until(&s, ']', &a) ||
        !sts_cur_take_char(&s, ']'))
        return false;
    if (sts_cur_take_char(&s, ':') && !sts_cur_take_while(&s, sts_is_digit, &port))
        return false;
    if ((*host = intern_host(r, h)) == NULL || (*ip = intern_ip(r, a)) == NULL)
        return false;
    *c = s;
    return true;
}

/* Sendmail "NAME[.]", "[IP]", "NAME. [IP]", "[IP] [IP] (may be forged)". */
static bool parse_sm_relay(sts_rlog *r, sts_cur v, const char **host, const char **ip)
{
    sts_cur w;

    *host = "";
    *ip = "";
    if (!sts_cur_take_while(&v, is_not_space, &w))
        return false;
    if (w.len >= 2 && w.p[0] == '[' && w.p[w.len - 1] == ']') {
        *ip = intern_ip(r, sts_cur_make(w.p + 1, w.len - 2));
    } else {
        *host = intern_host(r, w);
    }
    if (*host == NULL || *ip == NULL)
        return false;
    if (sts_cur_take_lit(&v, " [") && sts_cur_take_until(&v, ']', &w) && (*ip)[0] == '\0' &&
        (*ip = intern_ip(r, w)) == NULL)
        return false;
    return true;
}

/* ---------------------------------------------------- result-type maps */

/* An OpenSSL / Postfix verification reason to its RFC 8460 result type. */
static const char *reason_rt(sts_cur why)
{
    if (cur_has_nocase(&why, "expired") || cur_has_nocase(&why, "not yet valid"))
        return rt_expired;
    if (cur_has_nocase(&why, "hostname mismatch") || cur_has_nocase(&why, "name mismatch"))
        return rt_host;
    if (cur_has_nocase(&why, "self-signed") || cur_has_nocase(&why, "self signed") ||
        cur_has_nocase(&why, "issuer") || cur_has_nocase(&why, "not trusted") ||
        cur_has_nocase(&why, "untrusted") || cur_has_nocase(&why, "certificate rejected") ||
        cur_has_nocase(&why, "unable to verify the first certificate"))
        return rt_untrusted;
    return rt_validation;
}

/* Sendmail ${verify}. */
static bool sm_verify(sts_cur w, uint8_t *tls, const char **rt)
{
    static const struct {
        const char *word;
        sts_rlog_tls tls;
        const char *rt;
    } map[] = {
        { "OK", STS_RLOG_TLS_TRUSTED, NULL },
        { "TRUSTED", STS_RLOG_TLS_TRUSTED, NULL },
        { "DANE_PASS", STS_RLOG_TLS_VERIFIED, NULL },
        { "FAIL", STS_RLOG_TLS_UNTRUSTED, NULL },
        { "DANE_FAIL", STS_RLOG_TLS_UNTRUSTED, rt_validation },
        { "NO", STS_RLOG_TLS_ANONYMOUS, rt_validation },
        { "NOT", STS_RLOG_TLS_ANONYMOUS, rt_validation },
        { "NONE", STS_RLOG_TLS_NOT_OFFERED, rt_starttls },
        { "DANE_NOTLS", STS_RLOG_TLS_NOT_OFFERED, rt_starttls },
        { "TEMP", STS_RLOG_TLS_FAILED, rt_validation },
        { "DANE_TEMP", STS_RLOG_TLS_FAILED, rt_validation },
        { "PROTOCOL", STS_RLOG_TLS_FAILED, rt_validation },
        { "SOFTWARE", STS_RLOG_TLS_FAILED, rt_validation },
    };

    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (sts_cur_eq(&w, map[i].word)) {
            *tls = (uint8_t)map[i].tls;
            *rt = map[i].rt;
            return true;
        }
    return false;
}

static const char *conn_rt(const conn *c)
{
    switch ((sts_rlog_tls)c->tls) {
    case STS_RLOG_TLS_VERIFIED:
    case STS_RLOG_TLS_TRUSTED:
    case STS_RLOG_TLS_NONE:
        return NULL;
    case STS_RLOG_TLS_UNTRUSTED:
        return c->rt != NULL ? c->rt : rt_untrusted;
    case STS_RLOG_TLS_ANONYMOUS:
    case STS_RLOG_TLS_FAILED:
        return c->rt != NULL ? c->rt : rt_validation;
    case STS_RLOG_TLS_NOT_OFFERED:
    case STS_RLOG_TLS_PLAINTEXT:
        return rt_starttls;
    }
    return rt_validation;
}

/* ------------------------------------------------------ process states */

static size_t pid_bucket(const char *host, uint32_t pid, uint8_t kind)
{
    uintptr_t h = (uintptr_t)host * 0x9E3779B97F4A7C15ull;

    return (size_t)((h ^ (pid * 2654435761u) ^ kind) % PID_BUCKETS);
}

static void lru_unlink(sts_rlog *r, pidstate *p)
{
    if (p->prev != NULL)
        p->prev->next = p->next;
    else
        r->lru_head = p->next;
    if (p->next != NULL)
        p->next->prev = p->prev;
    else
        r->lru_tail = p->prev;
    p->prev = p->next = NULL;
}

static void lru_front(sts_rlog *r, pidstate *p)
{
    p->next = r->lru_head;
    p->prev = NULL;
    if (r->lru_head != NULL)
        r->lru_head->prev = p;
    r->lru_head = p;
    if (r->lru_tail == NULL)
        r->lru_tail = p;
}

static void pid_drop(sts_rlog *r, pidstate *p)
{
    pidstate **pp = &r->ph[pid_bucket(p->host, p->pid, p->kind)];

    while (*pp != NULL && *pp != p)
        pp = &(*pp)->hnext;
    if (*pp == p)
        *pp = p->hnext;
    lru_unlink(r, p);
    for (size_t i = 0; i < p->nconn; i++)
        if (p->c[i].qid == NULL && p->c[i].tls != STS_RLOG_TLS_NONE)
            r->st.dropped++; /* a connection never tied to a delivery */
    free(p);
    r->npid--;
}

static pidstate *pid_get(sts_rlog *r, const char *host, const char *service, uint32_t pid,
                         uint8_t kind)
{
    size_t b = pid_bucket(host, pid, kind);
    pidstate *p;

    for (p = r->ph[b]; p != NULL; p = p->hnext)
        if (p->host == host && p->pid == pid && p->kind == kind) {
            lru_unlink(r, p);
            lru_front(r, p);
            p->service = service;
            return p;
        }
    if (r->npid >= PIDS_MAX)
        pid_drop(r, r->lru_tail);
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        r->nomem = true;
        return NULL;
    }
    p->host = host;
    p->service = service;
    p->pid = pid;
    p->kind = kind;
    p->hnext = r->ph[b];
    r->ph[b] = p;
    lru_front(r, p);
    r->npid++;
    return p;
}

static conn *conn_cur(pidstate *p)
{
    return p->nconn > 0 ? &p->c[p->nconn - 1] : NULL;
}

/* Forget connections whose delivery is over (bound ones), except keep. */
static void conn_purge_bound(pidstate *p, const conn *keep)
{
    size_t j = 0;

    for (size_t i = 0; i < p->nconn; i++)
        if (p->c[i].qid == NULL || &p->c[i] == keep)
            p->c[j++] = p->c[i];
    p->nconn = j;
}

/* A new connection at the end of the list: the ones already tied to a
 * delivery are over; if the list is full, the oldest goes. */
static conn *conn_new(sts_rlog *r, pidstate *p, int64_t t, const char *host, const char *ip)
{
    conn *c;

    conn_purge_bound(p, NULL);
    if (p->nconn == CONNS_MAX) {
        if (p->c[0].tls != STS_RLOG_TLS_NONE)
            r->st.dropped++;
        memmove(&p->c[0], &p->c[1], (CONNS_MAX - 1) * sizeof(p->c[0]));
        p->nconn--;
    }
    c = &p->c[p->nconn++];
    memset(c, 0, sizeof(*c));
    c->time = t;
    c->host = host;
    c->ip = ip;
    c->detail = "";
    return c;
}

static bool same_relay(const conn *c, const char *host, const char *ip)
{
    if (c->ip[0] != '\0' && ip[0] != '\0')
        return c->ip == ip;
    if (c->host[0] != '\0' && host[0] != '\0')
        return c->host == host;
    return true;
}

static bool rcpt_seen(const conn *c, uint64_t h)
{
    for (size_t i = 0; i < c->nrcpt; i++)
        if (c->rcpt[i] == h)
            return true;
    return false;
}

/* ----------------------------------------------------------- attempts */

static void add_attempt(sts_rlog *r, conn *c, const char *qid, const char *domain, int64_t t,
                        bool sent, const char *service)
{
    att *a, *na;

    for (size_t i = 0; i < c->ndom; i++)
        if (c->dom[i] == domain)
            return; /* this connection already counts for the domain */
    if (c->ndom < CONN_DOMAINS)
        c->dom[c->ndom++] = domain;
    if (r->na >= ATTEMPTS_MAX) {
        r->st.dropped++;
        return;
    }
    if ((na = sts_array_reserve(r->a, r->na, &r->capa, 256, sizeof(*na))) == NULL) {
        r->nomem = true;
        return;
    }
    r->a = na;
    a = &r->a[r->na++];
    a->time = t;
    a->qid = qid;
    a->domain = domain;
    a->host = c->host;
    a->ip = c->ip;
    a->detail = c->detail;
    a->service = service;
    if (c->tls == STS_RLOG_TLS_NONE && c->verify_failed) {
        /* "Server certificate not verified" without its TLS line. */
        a->tls = STS_RLOG_TLS_UNTRUSTED;
        a->rt = c->rt != NULL ? c->rt : rt_validation;
    } else {
        a->tls = c->tls;
        a->rt = conn_rt(c);
    }
    a->sent = sent;
    r->st.attempts++;
}

/* The recipient domain of "<user@domain>" (brackets optional), normalised;
 * NULL when there is none usable (a local name, an address literal). */
static const char *rcpt_domain(sts_rlog *r, sts_cur addr)
{
    char dom[STS_DOMAIN_MAX + 1];
    size_t at = SIZE_MAX;

    if (addr.len > 0 && addr.p[0] == '<') {
        addr.p++;
        addr.len--;
    }
    if (addr.len > 0 && addr.p[addr.len - 1] == '>')
        addr.len--;
    for (size_t i = 0; i < addr.len; i++)
        if (addr.p[i] == '@')
            at = i;
    if (at == SIZE_MAX || at + 1 >= addr.len ||
        sts_domain_normalize(addr.p + at + 1, addr.len - at - 1, dom, NULL) != STS_OK)
        return NULL;
    return intern(r, dom, strlen(dom));
}

/* Tie a delivery line's recipient to connection c (and the connections
 * the same delivery made before it, to other MX hosts).  Returns c, which
 * may have moved in p->c. */
static conn *deliver(sts_rlog *r, pidstate *p, conn *c, const char *qid, sts_cur addr,
                    int64_t t, bool sent)
{
    const char *domain = rcpt_domain(r, addr);
    uint64_t h = hash_bytes(addr.p, addr.len);
    size_t j = 0;

    /* Earlier connections still waiting belong to this delivery, unless
     * they are so old that their own delivery line must be missing. */
    for (size_t i = 0; i < p->nconn; i++) {
        if (p->c[i].qid == NULL && &p->c[i] != c && t - p->c[i].time > CONN_STALE) {
            if (p->c[i].tls != STS_RLOG_TLS_NONE || p->c[i].verify_failed)
                r->st.dropped++;
            continue;
        }
        if (&p->c[i] == c)
            c = &p->c[j];
        p->c[j++] = p->c[i];
    }
    p->nconn = j;
    for (size_t i = 0; i < p->nconn; i++)
        if (p->c[i].qid == NULL)
            p->c[i].qid = qid;
    if (c->nrcpt < CONN_RCPTS)
        c->rcpt[c->nrcpt++] = h;
    if (domain == NULL)
        return c;
    for (size_t i = 0; i < p->nconn; i++)
        if (p->c[i].qid == qid)
            add_attempt(r, &p->c[i], qid, domain, t, sent && &p->c[i] == c, p->service);
    return c;
}

/* ------------------------------------------------------------- Postfix */

typedef enum pf_text {
    PF_TEXT_OTHER,
    PF_TEXT_NOT_OFFERED,
    PF_TEXT_NOT_VERIFIED,
    PF_TEXT_HANDSHAKE,
    PF_TEXT_NO_CONNECTION,
} pf_text;

static pf_text postfix_text(sts_cur text)
{
    if (sts_cur_take_lit(&text, "delivery temporarily suspended: ") ||
        cur_has(&text, "TLS is required, but our TLS engine is unavailable"))
        return PF_TEXT_NO_CONNECTION;
    if (cur_has(&text, "TLS is required, but was not offered by host") ||
        (cur_has(&text, "TLS is required, but host") && cur_has(&text, "refused to start TLS")))
        return PF_TEXT_NOT_OFFERED;
    if (sts_cur_take_lit(&text, "Server certificate not verified") ||
        sts_cur_take_lit(&text, "Server certificate not trusted"))
        return PF_TEXT_NOT_VERIFIED;
    if (sts_cur_take_lit(&text, "Cannot start TLS: handshake failure"))
        return PF_TEXT_HANDSHAKE;
    return PF_TEXT_OTHER;
}

static sts_rlog_line_kind postfix_delivery(sts_rlog *r, pidstate *p, int64_t t, const char *qid,
                                           sts_cur line, sts_cur f)
{
    sts_cur key, val, addr = { NULL, 0 }, relay = { NULL, 0 }, status = { NULL, 0 }, word, text;
    const char *host = "", *ip = "";
    bool have_to = false, no_relay = false;
    pf_text kind;
    conn *c;

    while (take_field(&f, "status", &key, &val)) {
        if (sts_cur_eq(&key, "to") && !have_to) {
            addr = val;
            have_to = true;
        } else if (sts_cur_eq(&key, "relay")) {
            relay = val;
        } else if (sts_cur_eq(&key, "status")) {
            status = val;
        }
    }
    if (!have_to || addr.len < 2 || addr.p[0] != '<' || addr.p[addr.len - 1] != '>' ||
        relay.p == NULL || status.p == NULL || !sts_cur_take_while(&status, sts_is_alpha, &word))
        return malformed(r, "Postfix delivery line without to=<>, relay= or status=", line);
    text = status;
    if (sts_cur_take_lit(&text, " (") && text.len > 0 && text.p[text.len - 1] == ')')
        text.len--;
    else
        text.len = 0;
    if (sts_cur_eq(&relay, "none")) {
        no_relay = true;
    } else {
        sts_cur rv = relay;

        if (!take_namaddr(r, &rv, &host, &ip)) {
            if (r->nomem)
                return STS_RLOG_POSTFIX;
            /* relay=local, relay=virtual, a Unix socket: no SMTP connection. */
            return STS_RLOG_IGNORED;
        }
        if (ip[0] == '\0')
            return STS_RLOG_IGNORED; /* lmtp to a Unix socket: no TLS here */
    }
    kind = postfix_text(text);
    if (kind == PF_TEXT_NO_CONNECTION)
        return STS_RLOG_POSTFIX;
    if (no_relay) {
        /* No connection took the mail, but earlier ones of this delivery
         * (other MX hosts that failed) still count. */
        conn *last = conn_cur(p);

        if (last != NULL && (last->qid == NULL || last->qid == qid))
            (void)deliver(r, p, last, qid, addr, t, false);
        return STS_RLOG_POSTFIX;
    }
    c = conn_cur(p);
    if (c != NULL && c->qid == qid && same_relay(c, host, ip) &&
        !rcpt_seen(c, hash_bytes(addr.p, addr.len))) {
        /* another recipient on the connection in progress */
    } else if (c != NULL && c->qid == NULL && same_relay(c, host, ip) &&
               t - c->time <= CONN_STALE) {
        /* the first delivery line of the connection the TLS lines opened */
    } else {
        c = conn_new(r, p, t, host, ip);
    }
    if (kind == PF_TEXT_NOT_OFFERED && c->tls != STS_RLOG_TLS_NOT_OFFERED) {
        /* No TLS line comes before this one: STARTTLS never happened. */
        if (c->tls != STS_RLOG_TLS_NONE || c->verify_failed)
            c = conn_new(r, p, t, host, ip);
        c->tls = STS_RLOG_TLS_NOT_OFFERED;
    }
    if (c->host[0] == '\0')
        c->host = host;
    if (c->ip[0] == '\0')
        c->ip = ip;
    if (kind == PF_TEXT_NOT_VERIFIED && c->tls == STS_RLOG_TLS_NONE)
        c->verify_failed = true;
    if (kind == PF_TEXT_HANDSHAKE && c->tls == STS_RLOG_TLS_NONE)
        c->tls = STS_RLOG_TLS_FAILED;
    if (kind != PF_TEXT_OTHER && c->detail[0] == '\0' &&
        (c->detail = intern_quoted(r, text.p, text.len)) == NULL)
        c->detail = "";
    (void)deliver(r, p, c, qid, addr, t, sts_cur_eq(&word, "sent"));
    return STS_RLOG_POSTFIX;
}

static sts_rlog_line_kind postfix_line(sts_rlog *r, pidstate *p, int64_t t, sts_cur m)
{
    static const struct {
        const char *lit;
        sts_rlog_tls tls;
    } summaries[] = {
        { "Verified TLS connection ", STS_RLOG_TLS_VERIFIED },
        { "Trusted TLS connection ", STS_RLOG_TLS_TRUSTED },
        { "Untrusted TLS connection ", STS_RLOG_TLS_UNTRUSTED },
        { "Anonymous TLS connection ", STS_RLOG_TLS_ANONYMOUS },
    };
    sts_cur s = m, qidc;
    const char *host, *ip;
    conn *c;

    for (size_t i = 0; i < sizeof(summaries) / sizeof(summaries[0]); i++) {
        if (!sts_cur_take_lit(&s, summaries[i].lit))
            continue;
        if ((!sts_cur_take_lit(&s, "established to ") && !sts_cur_take_lit(&s, "reused to ")) ||
            !take_namaddr(r, &s, &host, &ip) || !sts_cur_take_char(&s, ':'))
            return r->nomem ? STS_RLOG_POSTFIX : malformed(r, "bad Postfix TLS line", m);
        node_of(p->service)->logs_tls = true;
        r->st.tls_lines++;
        c = conn_cur(p);
        /* The verification failure logged just before belongs to it. */
        if (c == NULL || c->qid != NULL || c->tls != STS_RLOG_TLS_NONE || !c->verify_failed ||
            !same_relay(c, host, ip))
            c = conn_new(r, p, t, host, ip);
        c->tls = (uint8_t)summaries[i].tls;
        return STS_RLOG_POSTFIX;
    }
    s = m;
    if (!sts_cur_take_lit(&s, "server "))
        (void)sts_cur_take_lit(&s, "CA ");
    if (sts_cur_take_lit(&s, "certificate verification failed for ")) {
        if (!take_namaddr(r, &s, &host, &ip) || !sts_cur_take_lit(&s, ": "))
            return r->nomem ? STS_RLOG_POSTFIX : malformed(r, "bad Postfix verification line", m);
        c = conn_cur(p);
        if (c == NULL || c->qid != NULL || c->tls != STS_RLOG_TLS_NONE || !same_relay(c, host, ip))
            c = conn_new(r, p, t, host, ip);
        if (!c->verify_failed) {
            c->verify_failed = true;
            c->rt = reason_rt(s);
            if ((c->detail = intern_quoted(r, s.p, s.len)) == NULL)
                c->detail = "";
        }
        return STS_RLOG_POSTFIX;
    }
    s = m;
    if (sts_cur_take_lit(&s, "SSL_connect error to ")) {
        if (!take_namaddr(r, &s, &host, &ip) || !sts_cur_take_lit(&s, ": "))
            return r->nomem ? STS_RLOG_POSTFIX : malformed(r, "bad Postfix SSL_connect line", m);
        c = conn_cur(p);
        if (c == NULL || c->qid != NULL || c->tls != STS_RLOG_TLS_NONE || !same_relay(c, host, ip))
            c = conn_new(r, p, t, host, ip);
        c->tls = STS_RLOG_TLS_FAILED;
        if (c->detail[0] == '\0' && (c->detail = intern_quoted(r, s.p, s.len)) == NULL)
            c->detail = "";
        return STS_RLOG_POSTFIX;
    }
    s = m;
    if (!take_qid(&s, &qidc))
        return STS_RLOG_IGNORED;
    if (sts_cur_take_lit(&s, "Cannot start TLS: handshake failure")) {
        const char *qid = intern(r, qidc.p, qidc.len);

        if (qid == NULL)
            return STS_RLOG_POSTFIX;
        c = conn_cur(p);
        if (c == NULL || c->tls != STS_RLOG_TLS_FAILED || (c->qid != NULL && c->qid != qid)) {
            c = conn_new(r, p, t, "", "");
            c->tls = STS_RLOG_TLS_FAILED;
        }
        /* The plaintext retry on the same delivery follows: it inherits this. */
        for (size_t i = 0; i < p->nconn; i++)
            if (p->c[i].qid == NULL)
                p->c[i].qid = qid;
        if (c->detail[0] == '\0')
            c->detail = "Cannot start TLS: handshake failure";
        return STS_RLOG_POSTFIX;
    }
    if (sts_cur_take_lit(&s, "to=")) {
        const char *qid = intern(r, qidc.p, qidc.len);

        if (qid == NULL)
            return STS_RLOG_POSTFIX;
        return postfix_delivery(r, p, t, qid, m, sts_cur_make(s.p - 3, s.len + 3));
    }
    return STS_RLOG_IGNORED;
}

/* ------------------------------------------------------------ Sendmail */

static sts_rlog_line_kind sendmail_delivery(sts_rlog *r, pidstate *p, int64_t t, const char *qid,
                                            sts_cur line, sts_cur f)
{
    sts_cur key, val, to = { NULL, 0 }, relay = { NULL, 0 }, stat = { NULL, 0 }, mailer = { NULL, 0 };
    sts_cur word, addr, first, rest;
    const char *host, *ip;
    bool not_offered, sent;
    conn *c;

    while (take_field(&f, "stat", &key, &val)) {
        if (sts_cur_eq(&key, "to") && to.p == NULL)
            to = val;
        else if (sts_cur_eq(&key, "relay"))
            relay = val;
        else if (sts_cur_eq(&key, "stat"))
            stat = val;
        else if (sts_cur_eq(&key, "mailer"))
            mailer = val;
    }
    if (to.p == NULL || stat.p == NULL)
        return malformed(r, "Sendmail delivery line without to= or stat=", line);
    if (relay.p == NULL || sts_cur_eq(&mailer, "local") || sts_cur_eq(&mailer, "prog") ||
        sts_cur_eq(&mailer, "*file*") || sts_cur_eq(&mailer, "*include*"))
        return STS_RLOG_IGNORED;
    if (!parse_sm_relay(r, relay, &host, &ip))
        return r->nomem ? STS_RLOG_SENDMAIL : malformed(r, "bad Sendmail relay=", line);
    if (ip[0] == '\0')
        return STS_RLOG_IGNORED; /* no connection made */
    if (!sts_cur_take_while(&stat, sts_is_alpha, &word))
        return malformed(r, "bad Sendmail stat=", line);
    sent = sts_cur_eq(&word, "Sent");
    rest = to;
    if (!sts_cur_take_item(&rest, ',', &first))
        first = to;
    not_offered = cur_has(&stat, "does not support STARTTLS");
    p->pend_rt = p->pend_detail = NULL;
    c = conn_cur(p);
    if (not_offered &&
        (c == NULL || c->tls != STS_RLOG_TLS_NOT_OFFERED || !same_relay(c, host, ip))) {
        c = conn_new(r, p, t, host, ip);
        c->tls = STS_RLOG_TLS_NOT_OFFERED;
    } else if (c != NULL && same_relay(c, host, ip) && c->qid == NULL &&
               t - c->time <= CONN_STALE) {
        /* the first message on the connection the STARTTLS line opened */
    } else if (c != NULL && same_relay(c, host, ip) && c->qid == qid &&
               !rcpt_seen(c, hash_bytes(first.p, first.len))) {
        /* another recipient list on the same connection */
    } else if (c != NULL && same_relay(c, host, ip) && c->qid != qid && c->tls != STS_RLOG_TLS_NONE) {
        /* Sendmail's connection cache: the next message on it. */
        conn_purge_bound(p, c);
        c = conn_cur(p);
        if (c == NULL)
            return STS_RLOG_SENDMAIL; /* cannot happen: c was kept */
        c->qid = NULL;
        c->ndom = 0;
        c->nrcpt = 0;
    } else {
        c = conn_new(r, p, t, host, ip);
    }
    if (c->host[0] == '\0')
        c->host = host;
    if (c->ip[0] == '\0')
        c->ip = ip;
    if ((not_offered || c->tls != STS_RLOG_TLS_NONE) && !sent && c->detail[0] == '\0' &&
        (c->detail = intern_quoted(r, stat.p, stat.len)) == NULL)
        c->detail = "";
    /* The recipient list: "<a>,<b>" (or bare addresses). */
    while (sts_cur_take_item(&to, ',', &addr))
        if (addr.len > 0)
            c = deliver(r, p, c, qid, addr, t, sent);
    return STS_RLOG_SENDMAIL;
}

static sts_rlog_line_kind sendmail_line(sts_rlog *r, pidstate *p, int64_t t, sts_cur m)
{
    sts_cur s = m, key, val, qidc;
    const char *host = "", *ip = "";
    conn *c;
    size_t pos;

    if (sts_cur_take_lit(&s, "STARTTLS=client, relay=")) {
        sts_cur verify = { NULL, 0 }, relay;
        uint8_t tls;
        const char *rt;

        s = sts_cur_make(s.p - 6, s.len + 6); /* back to "relay=" */
        relay.p = NULL;
        relay.len = 0;
        while (take_field(&s, "", &key, &val)) {
            if (sts_cur_eq(&key, "relay"))
                relay = val;
            else if (sts_cur_eq(&key, "verify"))
                verify = val;
        }
        if (relay.p == NULL || verify.p == NULL || !sm_verify(verify, &tls, &rt) ||
            !parse_sm_relay(r, relay, &host, &ip))
            return r->nomem ? STS_RLOG_SENDMAIL : malformed(r, "bad Sendmail STARTTLS line", m);
        node_of(p->service)->logs_tls = true;
        r->st.tls_lines++;
        c = conn_new(r, p, t, host, ip);
        c->tls = tls;
        c->rt = rt;
        if (tls == STS_RLOG_TLS_UNTRUSTED && rt == NULL && p->pend_rt != NULL) {
            c->rt = p->pend_rt;
            c->detail = p->pend_detail;
        }
        p->pend_rt = p->pend_detail = NULL;
        return STS_RLOG_SENDMAIL;
    }
    s = m;
    if (sts_cur_take_lit(&s, "STARTTLS=client, cert-subject=")) {
        if (!cur_find(&s, ", verifymsg=", &pos))
            return STS_RLOG_IGNORED;
        val = sts_cur_make(s.p + pos + 12, s.len - pos - 12);
        c = conn_cur(p);
        if (c != NULL && c->qid == NULL && c->tls == STS_RLOG_TLS_UNTRUSTED && c->rt == NULL &&
            !sts_cur_eq(&val, "ok")) {
            c->rt = reason_rt(val);
            if ((c->detail = intern_quoted(r, val.p, val.len)) == NULL)
                c->detail = "";
        }
        return STS_RLOG_SENDMAIL;
    }
    s = m;
    if (sts_cur_take_lit(&s, "STARTTLS: TLS cert verify: ")) {
        if (!cur_find(&s, ", reason=", &pos))
            return malformed(r, "Sendmail cert verify line without reason=", m);
        val = sts_cur_make(s.p + pos + 9, s.len - pos - 9);
        if (p->pend_rt == NULL) {
            p->pend_rt = reason_rt(val);
            if ((p->pend_detail = intern_quoted(r, val.p, val.len)) == NULL)
                p->pend_rt = NULL;
        }
        return STS_RLOG_SENDMAIL;
    }
    s = m;
    if (sts_cur_take_lit(&s, "ruleset=tls_server, ")) {
        sts_cur arg1 = { NULL, 0 }, relay = { NULL, 0 }, reject = { NULL, 0 };
        uint8_t tls;
        const char *rt;

        while (take_field(&s, "reject", &key, &val)) {
            if (sts_cur_eq(&key, "arg1"))
                arg1 = val;
            else if (sts_cur_eq(&key, "relay"))
                relay = val;
            else if (sts_cur_eq(&key, "reject"))
                reject = val;
        }
        if (arg1.p == NULL || relay.p == NULL || !parse_sm_relay(r, relay, &host, &ip))
            return r->nomem ? STS_RLOG_SENDMAIL : malformed(r, "bad Sendmail tls_server line", m);
        if (!sm_verify(arg1, &tls, &rt))
            return STS_RLOG_IGNORED;
        c = conn_cur(p);
        if (c == NULL || c->qid != NULL || c->tls == STS_RLOG_TLS_NONE || !same_relay(c, host, ip)) {
            /* No STARTTLS line for it: STARTTLS was not even tried. */
            c = conn_new(r, p, t, host, ip);
            c->tls = tls;
            c->rt = rt;
        }
        if (c->detail[0] == '\0' && reject.p != NULL &&
            (c->detail = intern_quoted(r, reject.p, reject.len)) == NULL)
            c->detail = "";
        return STS_RLOG_SENDMAIL;
    }
    s = m;
    if (take_qid(&s, &qidc) && sts_cur_take_lit(&s, "to=")) {
        const char *qid = intern(r, qidc.p, qidc.len);

        if (qid == NULL)
            return STS_RLOG_SENDMAIL;
        return sendmail_delivery(r, p, t, qid, m, sts_cur_make(s.p - 3, s.len + 3));
    }
    return STS_RLOG_IGNORED;
}

/* ---------------------------------------------------------- decisions */

static size_t dec_hash(const char *qid, const char *domain)
{
    uint64_t h = (uint64_t)(uintptr_t)qid * 0x9E3779B97F4A7C15ull;

    h ^= (uint64_t)(uintptr_t)domain * 0xC2B2AE3D27D4EB4Full;
    return (size_t)(h ^ (h >> 29));
}

static bool dec_index_grow(sts_rlog *r)
{
    size_t nn = r->ndh != 0 ? r->ndh * 2 : 4096;
    uint32_t *nh = sts_calloc_array(nn, sizeof(*nh));

    if (nh == NULL)
        return false;
    for (size_t i = 0; i < r->nd; i++)
        r->d[i].next = 0;
    for (size_t i = 0; i < r->nd; i++) {
        dec *d = &r->d[i];
        size_t b;

        if (d->qid[0] == '-')
            continue;
        b = dec_hash(d->qid, d->domain) & (nn - 1);
        d->next = nh[b];
        nh[b] = (uint32_t)(i + 1);
    }
    free(r->dh);
    r->dh = nh;
    r->ndh = nn;
    return true;
}

static const char *json_str(json_t *o, const char *k, size_t *len)
{
    json_t *v = json_object_get(o, k);
    const char *s;

    if (!json_is_string(v))
        return NULL;
    s = json_string_value(v);
    *len = json_string_length(v);
    if (memchr(s, '\0', *len) != NULL)
        return NULL;
    return s;
}

static sts_rlog_line_kind decision_line(sts_rlog *r, sts_cur line)
{
    static const struct {
        const char *name;
        sts_result result;
    } results[] = {
        { "policy", STS_RESULT_POLICY },
        { "none", STS_RESULT_NONE },
        { "temperror", STS_RESULT_TEMPERROR },
        { "invalid", STS_RESULT_INVALID },
    };
    json_error_t err;
    json_t *o = json_loadb(line.p, line.len, 0, &err), *v;
    sts_rlog_line_kind k = STS_RLOG_DECISION;
    const char *ts, *qs, *ds, *res, *act, *s;
    size_t tl, ql, dl, rl, al, sl;
    char dom[STS_DOMAIN_MAX + 1];
    sts_cur tc;
    int64_t t;
    dec nd, *na;
    bool found = false, deliverable, qid_ok;

    memset(&nd, 0, sizeof(nd));
    if (o == NULL || !json_is_object(o)) {
        k = malformed(r, o == NULL ? "not JSON" : "not a JSON object", line);
        goto done;
    }
    ts = json_str(o, "time", &tl);
    qs = json_str(o, "queue_id", &ql);
    ds = json_str(o, "domain", &dl);
    res = json_str(o, "result", &rl);
    act = json_str(o, "action", &al);
    if (ts == NULL || qs == NULL || ds == NULL || res == NULL || act == NULL) {
        k = malformed(r, "decision without time, queue_id, domain, result or action", line);
        goto done;
    }
    tc = sts_cur_make(ts, tl);
    if (!take_rfc3339(&tc, &t) || tc.len != 0) {
        k = malformed(r, "decision with a bad time", line);
        goto done;
    }
    if (strcmp(res, "skipped") == 0 || strcmp(act, "skip") == 0 || strcmp(act, "split") == 0 ||
        strcmp(act, "aborted") == 0 || strcmp(act, "tempfail") == 0) {
        r->st.no_session++;
        goto done;
    }
    deliverable = strcmp(act, "accept") == 0 || strcmp(act, "route-enforce") == 0;
    if (!deliverable && strcmp(act, "tempfail-no-mx") != 0) {
        k = malformed(r, "decision with an unknown action", line);
        goto done;
    }
    for (size_t i = 0; i < sizeof(results) / sizeof(results[0]); i++)
        if (strcmp(res, results[i].name) == 0) {
            nd.result = (uint8_t)results[i].result;
            found = true;
        }
    if (!found) {
        k = malformed(r, "decision with an unknown result", line);
        goto done;
    }
    qid_ok = ql > 0 && ql <= STS_RLOG_QID_MAX;
    for (size_t i = 0; qid_ok && i < ql && !(ql == 1 && qs[0] == '-'); i++)
        qid_ok = is_qid_char((unsigned char)qs[i]);
    if (!qid_ok) {
        k = malformed(r, "decision with a bad queue_id", line);
        goto done;
    }
    if (sts_domain_normalize(ds, dl, dom, NULL) != STS_OK) {
        k = malformed(r, "decision with a bad domain", line);
        goto done;
    }
    if (strcmp(act, "tempfail-no-mx") == 0) {
        nd.engine_rt = rt_validation;
    } else if ((s = json_str(o, "report_type", &sl)) != NULL &&
               nd.result != STS_RESULT_POLICY) {
        /* With result "policy" the report_type is that of a failed refresh
         * while a valid cached policy applied (RFC 8461 5.1): the mail went
         * out under that policy and its connections are the sessions. */
        static const sts_report_type rts[] = { STS_RT_FETCH_ERROR, STS_RT_POLICY_INVALID,
                                               STS_RT_WEBPKI_INVALID };

        for (size_t i = 0; i < sizeof(rts) / sizeof(rts[0]); i++)
            if (strcmp(s, sts_report_type_name(rts[i])) == 0)
                nd.engine_rt = sts_report_type_name(rts[i]);
        if (nd.engine_rt == NULL) {
            k = malformed(r, "decision with an unknown report_type", line);
            goto done;
        }
    }
    if ((s = json_str(o, "mode", &sl)) != NULL) {
        sts_mode m;

        if (!sts_mode_from_name(s, sl, &m)) {
            k = malformed(r, "decision with an unknown mode", line);
            goto done;
        }
        nd.has_policy = true;
        nd.mode = (uint8_t)m;
    }
    nd.policy_id = "";
    if ((s = json_str(o, "policy_id", &sl)) != NULL && sl > 0) {
        sts_cur idc = sts_cur_make(s, sl), idw;

        if (sl > STS_ID_MAX || !sts_cur_take_while(&idc, is_qid_char, &idw) || idc.len != 0) {
            k = malformed(r, "decision with a bad policy_id", line);
            goto done;
        }
        nd.policy_id = intern(r, s, sl);
    }
    nd.mx = "";
    if ((s = json_str(o, "mx", &sl)) != NULL && sl > 0) {
        char q[STS_RLOG_MX_MAX + 1];
        size_t ql2;

        sts_quote(q, sizeof(q), s, sl);
        ql2 = strlen(q);
        nd.mx_truncated = sl > STS_RLOG_MX_MAX || strcmp(q, s) != 0 ||
                          (ql2 >= 4 && strcmp(q + ql2 - 4, ",...") == 0);
        nd.mx = intern(r, q, ql2);
    }
    v = json_object_get(o, "max_age");
    if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= UINT32_MAX) {
        nd.max_age = (uint32_t)json_integer_value(v);
        nd.max_age_known = true;
    }
    nd.reason = "";
    if ((s = json_str(o, "reason", &sl)) != NULL)
        nd.reason = intern_quoted(r, s, sl);
    nd.time = t;
    nd.qid = intern(r, qs, ql);
    nd.domain = intern(r, dom, strlen(dom));
    if (nd.qid == NULL || nd.domain == NULL || nd.policy_id == NULL || nd.mx == NULL ||
        nd.reason == NULL)
        goto done;
    if (nd.qid[0] != '-' && r->ndh != 0) {
        /* One line per recipient: keep one per message and domain. */
        for (uint32_t i = r->dh[dec_hash(nd.qid, nd.domain) & (r->ndh - 1)]; i != 0;
             i = r->d[i - 1].next) {
            const dec *x = &r->d[i - 1];

            if (x->qid == nd.qid && x->domain == nd.domain && x->time - t <= DUP_WINDOW &&
                t - x->time <= DUP_WINDOW) {
                r->st.duplicate_decisions++;
                goto done;
            }
        }
    }
    if (r->nd >= DECISIONS_MAX) {
        r->st.dropped++;
        goto done;
    }
    if ((na = sts_array_reserve(r->d, r->nd, &r->capd, 256, sizeof(*na))) == NULL) {
        r->nomem = true;
        goto done;
    }
    r->d = na;
    r->d[r->nd++] = nd;
    r->st.decisions++;
    if (r->nd > r->ndh / 2) {
        if (!dec_index_grow(r))
            r->nomem = true;
    } else if (nd.qid[0] != '-') {
        size_t b = dec_hash(nd.qid, nd.domain) & (r->ndh - 1);

        r->d[r->nd - 1].next = r->dh[b];
        r->dh[b] = (uint32_t)r->nd;
    }
done:
    json_decref(o);
    return k;
}

/* ----------------------------------------------------------- lines */

static bool is_tag_char(unsigned char ch)
{
    return ch > ' ' && ch < 0x7f && ch != '[' && ch != ':';
}

static bool ends_with(sts_cur c, const char *lit)
{
    size_t n = strlen(lit);

    return c.len > n && memcmp(c.p + c.len - n, lit, n) == 0;
}

sts_rlog_line_kind sts_rlog_feed_line(sts_rlog *r, const char *line, size_t len, const char *name,
                                      uint64_t lineno)
{
    sts_cur c = sts_cur_make(line, len), s, w, host = { "", 0 }, tag, pidc;
    sts_rlog_line_kind k;
    uint64_t pid;
    int64_t t;
    uint8_t kind;
    char svc[STS_DOMAIN_MAX + 200];
    const char *hosti, *svci;
    pidstate *p;

    r->name = name;
    r->lineno = lineno;
    r->st.lines++;
    if (len > 0 && line[len - 1] == '\r')
        c.len--;
    if (len > STS_RLOG_LINE_MAX) {
        k = malformed(r, "line too long", sts_cur_make(line, 40));
        goto out;
    }
    s = c;
    (void)sts_cur_skip_wsp(&s);
    if (s.len > 0 && s.p[0] == '{') {
        k = decision_line(r, c);
        goto out;
    }
    k = STS_RLOG_IGNORED;
    s = c;
    if (!(s.len > 0 && sts_is_digit((unsigned char)s.p[0]) ? take_rfc3339(&s, &t)
                                                             : take_bsd_time(r, &s, &t)))
        goto out;
    if (sts_cur_skip_wsp(&s) == 0)
        goto out;
    w = s;
    if (!sts_cur_take_while(&w, is_not_space, &host))
        goto out;
    if (host.p[host.len - 1] == ':') {
        host = sts_cur_make("", 0); /* no host field: "TAG[PID]: MSG" */
    } else {
        s = w;
        if (sts_cur_skip_wsp(&s) == 0)
            goto out;
    }
    if (!sts_cur_take_while(&s, is_tag_char, &tag) || !sts_cur_take_char(&s, '[') ||
        !sts_cur_take_while(&s, sts_is_digit, &pidc) || pidc.len > 10 ||
        !sts_cur_take_number(&pidc, 10, UINT32_MAX, &pid) || !sts_cur_take_lit(&s, "]:"))
        goto out;
    (void)sts_cur_take_char(&s, ' ');
    if (ends_with(tag, "/smtp") || ends_with(tag, "/lmtp"))
        kind = MTA_POSTFIX;
    else if (sts_cur_eq(&tag, "sm-mta") || sts_cur_eq(&tag, "sendmail"))
        kind = MTA_SENDMAIL;
    else
        goto out;
    if (host.len > STS_DOMAIN_MAX || tag.len > 190)
        goto out;
    (void)snprintf(svc, sizeof(svc), "%.*s %.*s", (int)host.len, host.p, (int)tag.len, tag.p);
    if ((hosti = intern(r, host.p, host.len)) == NULL ||
        (svci = intern(r, svc, strlen(svc))) == NULL)
        goto out;
    if (svci[0] == '\0')
        goto out;
    p = pid_get(r, hosti, svci, (uint32_t)pid, kind);
    if (p == NULL)
        goto out;
    k = kind == MTA_POSTFIX ? postfix_line(r, p, t, s) : sendmail_line(r, p, t, s);
out:
    switch (k) {
    case STS_RLOG_DECISION:
        r->st.decision_lines++;
        break;
    case STS_RLOG_POSTFIX:
    case STS_RLOG_SENDMAIL:
        r->st.mta_lines++;
        break;
    case STS_RLOG_IGNORED:
        r->st.ignored_lines++;
        break;
    case STS_RLOG_MALFORMED:
        r->st.malformed_lines++;
        break;
    }
    return k;
}

/* ------------------------------------------------------------ reading */

sts_status sts_rlog_read_file(sts_rlog *r, const char *path, sts_why *why)
{
    gzFile gz;
    char *chunk = NULL, *line = NULL;
    size_t ll = 0;
    bool too_long = false;
    uint64_t lineno = 0;
    const char *name = strcmp(path, "-") == 0 ? "(stdin)" : path;
    sts_status st = STS_OK;
    int errnum, fd = -1;
    const char *msg;

    if (strcmp(path, "-") == 0) {
        fd = dup(0);
        gz = fd >= 0 ? gzdopen(fd, "rb") : NULL;
    } else {
        gz = gzopen(path, "rb");
    }
    if (gz == NULL) {
        sts_why_set(why, "cannot open %s: %s", name, errno != 0 ? strerror(errno) : "out of memory");
        if (fd >= 0)
            (void)close(fd);
        return STS_PERMFAIL;
    }
    (void)gzbuffer(gz, 128 * 1024);
    chunk = malloc(READ_CHUNK);
    line = malloc(STS_RLOG_LINE_MAX + 1);
    if (chunk == NULL || line == NULL) {
        sts_why_set(why, "out of memory reading %s", name);
        st = STS_NOMEM;
        goto done;
    }
    for (;;) {
        int n = gzread(gz, chunk, READ_CHUNK);
        size_t off = 0;

        if (n < 0) {
            msg = gzerror(gz, &errnum);
            sts_why_set(why, "%s: %s", name, errnum == Z_ERRNO ? strerror(errno) : msg);
            st = STS_PERMFAIL;
            break;
        }
        if (n == 0)
            break;
        while (off < (size_t)n) {
            const char *nl = memchr(chunk + off, '\n', (size_t)n - off);
            size_t take = (nl != NULL ? (size_t)(nl - chunk) : (size_t)n) - off;

            if (!too_long && ll + take <= STS_RLOG_LINE_MAX) {
                memcpy(line + ll, chunk + off, take);
                ll += take;
            } else if (!too_long) {
                too_long = true;
            }
            off += take;
            if (nl != NULL) {
                off++;
                lineno++;
                /* A too-long line is fed as its first part plus one byte
                 * too many, so sts_rlog_feed_line counts it malformed. */
                (void)sts_rlog_feed_line(r, line, too_long ? STS_RLOG_LINE_MAX + 1 : ll, name,
                                         lineno);
                ll = 0;
                too_long = false;
            }
        }
    }
    if (ll > 0 || too_long) {
        lineno++;
        (void)sts_rlog_feed_line(r, line, too_long ? STS_RLOG_LINE_MAX + 1 : ll, name, lineno);
    }
    if (st == STS_OK) {
        msg = gzerror(gz, &errnum);
        if (errnum != Z_OK && errnum != Z_STREAM_END) {
            sts_why_set(why, "%s: %s", name, errnum == Z_ERRNO ? strerror(errno) : msg);
            st = STS_PERMFAIL;
        }
    }
done:
    free(chunk);
    free(line);
    (void)gzclose(gz);
    if (st == STS_OK && r->nomem) {
        sts_why_set(why, "out of memory reading %s", name);
        st = STS_NOMEM;
    }
    return st;
}

#define PEEK_BYTES 65536

bool sts_rlog_first_time(const sts_rlog *r, const char *path, int64_t *t)
{
    char *buf = NULL;
    struct stat sb;
    gzFile gz = NULL;
    bool found = false;
    int fd, n;

    /* Only regular files: a pipe or FIFO read here would lose its data. */
    if (strcmp(path, "-") == 0 || (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return false;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || (gz = gzdopen(fd, "rb")) == NULL) {
        (void)close(fd);
        return false;
    }
    buf = malloc(PEEK_BYTES);
    n = buf != NULL ? gzread(gz, buf, PEEK_BYTES) : -1;
    for (size_t off = 0; n > 0 && off < (size_t)n && !found;) {
        const char *nl = memchr(buf + off, '\n', (size_t)n - off);
        sts_cur c;

        if (nl == NULL)
            break; /* a cut line proves nothing */
        c = sts_cur_make(buf + off, (size_t)(nl - (buf + off)));
        off += c.len + 1;
        if (c.len > 0 && c.p[0] != '{')
            found = sts_is_digit((unsigned char)c.p[0]) ? take_rfc3339(&c, t)
                                                        : take_bsd_time(r, &c, t);
    }
    free(buf);
    (void)gzclose(gz);
    return found;
}

/* ------------------------------------------------------------ results */

static dec *find_decision(sts_rlog *r, const char *qid, const char *domain, int64_t t)
{
    dec *best = NULL;

    if (r->ndh == 0)
        return NULL;
    for (uint32_t i = r->dh[dec_hash(qid, domain) & (r->ndh - 1)]; i != 0; i = r->d[i - 1].next) {
        dec *x = &r->d[i - 1];

        if (x->qid == qid && x->domain == domain && x->time <= t + JOIN_SKEW &&
            (best == NULL || x->time > best->time))
            best = x;
    }
    return best;
}

static bool in_window(const sts_rlog *r, int64_t t)
{
    return !r->window || (t >= r->win_from && t < r->win_until);
}

static void copy_text(char *dst, size_t sz, const char *s)
{
    (void)snprintf(dst, sz, "%s", s);
}

static void fill_decision(sts_rsession *s, const dec *d)
{
    s->has_decision = true;
    s->result = (sts_result)d->result;
    s->has_policy = d->has_policy;
    s->mode = (sts_mode)d->mode;
    copy_text(s->policy_id, sizeof(s->policy_id), d->policy_id);
    copy_text(s->mx, sizeof(s->mx), d->mx);
    s->mx_truncated = d->mx_truncated || strlen(d->mx) >= sizeof(s->mx);
    s->max_age = d->max_age;
    s->max_age_known = d->max_age_known;
}

static sts_rsession *new_session(sts_rlog *r, size_t *cap)
{
    sts_rsession *no;

    if (r->nout >= SESSIONS_MAX) {
        r->st.dropped++;
        return NULL;
    }
    if ((no = sts_array_reserve(r->out, r->nout, cap, 64, sizeof(*no))) == NULL) {
        r->nomem = true;
        return NULL;
    }
    r->out = no;
    memset(&r->out[r->nout], 0, sizeof(r->out[0]));
    return &r->out[r->nout++];
}

static int cmp_str(const char *a, const char *b)
{
    return strcmp(a != NULL ? a : "", b != NULL ? b : "");
}

static int cmp_rsession(const void *pa, const void *pb)
{
    const sts_rsession *a = pa, *b = pb;
    int c;

    if (a->time != b->time)
        return a->time < b->time ? -1 : 1;
    if ((c = strcmp(a->queue_id, b->queue_id)) != 0 || (c = strcmp(a->domain, b->domain)) != 0)
        return c;
    if (a->engine_failure != b->engine_failure)
        return a->engine_failure ? -1 : 1;
    if ((c = strcmp(a->mx_host, b->mx_host)) != 0 || (c = strcmp(a->mx_ip, b->mx_ip)) != 0 ||
        (c = cmp_str(a->result_type, b->result_type)) != 0)
        return c;
    if (a->tls != b->tls)
        return a->tls < b->tls ? -1 : 1;
    return strcmp(a->detail, b->detail);
}

sts_status sts_rlog_sessions(sts_rlog *r, const sts_rsession **out, size_t *n)
{
    size_t cap = 0;

    *out = NULL;
    *n = 0;
    if (r->nomem)
        return STS_NOMEM;
    if (r->built)
        goto done;
    /* Connections still waiting for their delivery line when the input
     * ended: their outcome is lost, say so. */
    for (const pidstate *p = r->lru_head; p != NULL; p = p->next)
        for (size_t i = 0; i < p->nconn; i++)
            if (p->c[i].qid == NULL && (p->c[i].tls != STS_RLOG_TLS_NONE || p->c[i].verify_failed))
                r->st.dropped++;
    for (size_t i = 0; i < r->na; i++) {
        const att *a = &r->a[i];
        uint8_t tls = a->tls;
        const char *rt = a->rt;
        dec *d;
        sts_rsession *s;

        /* Joined first: a decision whose attempts say nothing about TLS
         * still had its delivery, it is not an unjoined decision. */
        d = find_decision(r, a->qid, a->domain, a->time);
        if (d != NULL)
            d->joined = true;
        if (tls == STS_RLOG_TLS_NONE) {
            if (!a->sent || !node_of(a->service)->logs_tls) {
                r->st.no_tls_info++;
                continue;
            }
            tls = STS_RLOG_TLS_PLAINTEXT;
            rt = rt_starttls;
        }
        if (d != NULL && d->engine_rt != NULL) {
            r->st.absorbed++;
            continue;
        }
        if (!in_window(r, a->time)) {
            r->st.outside_window++;
            continue;
        }
        if ((s = new_session(r, &cap)) == NULL) {
            if (r->nomem)
                return STS_NOMEM;
            continue;
        }
        s->time = a->time;
        copy_text(s->queue_id, sizeof(s->queue_id), a->qid);
        copy_text(s->domain, sizeof(s->domain), a->domain);
        if (d != NULL) {
            fill_decision(s, d);
            r->st.joined++;
        } else {
            r->st.unjoined_attempts++;
        }
        s->tls = (sts_rlog_tls)tls;
        s->success = tls == STS_RLOG_TLS_VERIFIED || tls == STS_RLOG_TLS_TRUSTED;
        s->result_type = s->success ? NULL : rt;
        copy_text(s->mx_host, sizeof(s->mx_host), a->host);
        copy_text(s->mx_ip, sizeof(s->mx_ip), a->ip);
        copy_text(s->detail, sizeof(s->detail), s->success ? "" : a->detail);
    }
    for (size_t i = 0; i < r->nd; i++) {
        const dec *d = &r->d[i];
        sts_rsession *s;

        if (!in_window(r, d->time)) {
            if (d->engine_rt != NULL)
                r->st.outside_window++;
            continue;
        }
        if (d->engine_rt == NULL) {
            if (!d->joined)
                r->st.unjoined_decisions++;
            continue;
        }
        if ((s = new_session(r, &cap)) == NULL) {
            if (r->nomem)
                return STS_NOMEM;
            continue;
        }
        s->time = d->time;
        copy_text(s->queue_id, sizeof(s->queue_id), d->qid);
        copy_text(s->domain, sizeof(s->domain), d->domain);
        fill_decision(s, d);
        s->engine_failure = true;
        s->tls = STS_RLOG_TLS_NONE;
        s->success = false;
        s->result_type = d->engine_rt;
        copy_text(s->detail, sizeof(s->detail), d->reason);
        r->st.engine_failures++;
    }
    if (r->nout > 1)
        qsort(r->out, r->nout, sizeof(r->out[0]), cmp_rsession);
    r->built = true;
done:
    *out = r->out;
    *n = r->nout;
    return STS_OK;
}

/* ------------------------------------------------------------ life */

sts_status sts_rlog_new(void (*warn)(void *arg, const char *msg), void *warn_arg, sts_rlog **out)
{
    sts_rlog *r = calloc(1, sizeof(*r));

    *out = NULL;
    if (r == NULL)
        return STS_NOMEM;
    r->warn = warn;
    r->warn_arg = warn_arg;
    r->now = (int64_t)time(NULL);
    *out = r;
    return STS_OK;
}

void sts_rlog_set_now(sts_rlog *r, int64_t now)
{
    r->now = now;
}

void sts_rlog_set_window(sts_rlog *r, int64_t from, int64_t until)
{
    r->window = true;
    r->win_from = from;
    r->win_until = until;
}

const sts_rlog_stats *sts_rlog_get_stats(const sts_rlog *r)
{
    return &r->st;
}

void sts_rlog_free(sts_rlog *r)
{
    if (r == NULL)
        return;
    while (r->lru_head != NULL) {
        pidstate *p = r->lru_head;

        r->lru_head = p->next;
        free(p);
    }
    for (size_t i = 0; i < r->nsb; i++) {
        strnode *x, *next;

        for (x = r->sb[i]; x != NULL; x = next) {
            next = x->next;
            free(x);
        }
    }
    free(r->sb);
    free(r->d);
    free(r->dh);
    free(r->a);
    free(r->out);
    free(r);
}
