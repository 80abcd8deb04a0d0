/*
 * rlog_text.c - the words of a log line, for the log reader (rlog.h):
 * interned text (one copy per distinct string, so that the join compares
 * pointers), the time stamps of syslog headers and of the decision log
 * (RFC 3339; BSD syslog with the year inferred), and the key=value fields
 * and queue ids of MTA lines, all taken through bounded cursors.
 */
#include "tlsrpt/rlog.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/buf.h"
#include "tlsrpt/rlog_impl.h"

/* ------------------------------------------------------------- strings */

uint64_t sts_rlog_hash_bytes(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;

    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ull;
    }
    return h;
}

strnode *sts_rlog_node_of(const char *s)
{
    return (strnode *)(void *)(s - offsetof(strnode, s));
}

/* The one copy of p[0..n) (NUL-terminated), "" for n == 0; NULL when out of
 * memory or over STRBYTES_MAX (r->nomem / stats.dropped say which). */
const char *sts_rlog_intern(sts_rlog *r, const char *p, size_t n)
{
    uint64_t h;
    strnode *x;
    size_t b;

    if (n == 0)
        return "";
    h = sts_rlog_hash_bytes(p, n);
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
const char *sts_rlog_intern_quoted(sts_rlog *r, const char *p, size_t n)
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
    /* Past the cap a reason is left out, not its session. */
    if (r->strbytes + o + sizeof(strnode) > STRBYTES_MAX) {
        r->st.details_cut++;
        return "";
    }
    return sts_rlog_intern(r, q, o);
}

/* A host name as logged (trailing dot allowed), lower-cased; "" when it is
 * not a host name (an address, "unknown", a Unix socket path). */
const char *sts_rlog_intern_host(sts_rlog *r, sts_cur h)
{
    char low[STS_DOMAIN_MAX + 1];

    if (h.len > 0 && h.p[h.len - 1] == '.')
        h.len--;
    if (h.len == 0 || h.len > STS_DOMAIN_MAX || !sts_hostname_valid(h.p, h.len))
        return "";
    for (size_t i = 0; i < h.len; i++)
        low[i] = (char)sts_to_lower((unsigned char)h.p[i]);
    return sts_rlog_intern(r, low, h.len);
}

/* An IPv4 or IPv6 address in text form; "" when ip is not one. */
const char *sts_rlog_intern_ip(sts_rlog *r, sts_cur ip)
{
    char buf[STS_RLOG_IP_MAX + 1];
    unsigned char bin[16];

    if (ip.len == 0 || ip.len > STS_RLOG_IP_MAX)
        return "";
    memcpy(buf, ip.p, ip.len);
    buf[ip.len] = '\0';
    if (inet_pton(AF_INET, buf, bin) != 1 && inet_pton(AF_INET6, buf, bin) != 1)
        return "";
    return sts_rlog_intern(r, buf, ip.len);
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
bool sts_rlog_take_rfc3339(sts_cur *c, int64_t *t)
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

static bool bsd_convert(const sts_rlog *r, int mo, uint64_t d, uint64_t h, uint64_t mi,
                        uint64_t se, int64_t *t);

/* BSD syslog "Mmm dd hh:mm:ss" (day space-padded or not), local time; the
 * year is the one that puts the stamp at most FUTURE_SLACK after r->now.
 * The start of the hour is cached (r->bsd): one mktime per hour of log. */
bool sts_rlog_take_bsd_time(const sts_rlog *r, sts_cur *c, int64_t *t)
{
    static const char *const months[12] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    sts_cur s = *c;
    uint64_t d, h, mi, se;
    int mo = -1;

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
    for (int i = 0; r->bsd != NULL && i < 2; i++)
        if (r->bsd[i].mo == mo && r->bsd[i].d == (int)d && r->bsd[i].h == (int)h) {
            *t = r->bsd[i].base + (int64_t)(mi * 60 + se);
            *c = s;
            return true;
        }
    if (r->bsd != NULL) {
        /* The hour's start, converted once (DST moves whole hours). */
        int64_t base;

        if (bsd_convert(r, mo, d, h, 0, 0, &base)) {
            r->bsd[1] = r->bsd[0];
            r->bsd[0].mo = mo;
            r->bsd[0].d = (int)d;
            r->bsd[0].h = (int)h;
            r->bsd[0].base = base;
            *t = base + (int64_t)(mi * 60 + se);
            *c = s;
            return true;
        }
    }
    if (!bsd_convert(r, mo, d, h, mi, se, t))
        return false;
    *c = s;
    return true;
}

/* mo (0-11) d h:mi:se in local time, the year inferred from r->now. */
/* mo (0-11) d h:mi:se, local time, into UTC seconds; the year inferred from
 * r->now as above. */
static bool bsd_convert(const sts_rlog *r, int mo, uint64_t d, uint64_t h, uint64_t mi,
                        uint64_t se, int64_t *t)
{
    struct tm now_tm, tm;
    time_t now = (time_t)r->now, when;

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
            return true;
        }
    }
    return false;
}

/* ------------------------------------------------------- cursor helpers */

/* Position of lit in c, or false. */
bool sts_rlog_cur_find(const sts_cur *c, const char *lit, size_t *pos)
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

/* Position of the last lit in c, or false. */
bool sts_rlog_cur_rfind(const sts_cur *c, const char *lit, size_t *pos)
{
    size_t n = strlen(lit);

    if (n == 0 || c->len < n)
        return false;
    for (size_t i = c->len - n + 1; i-- > 0;)
        if (c->p[i] == lit[0] && memcmp(c->p + i, lit, n) == 0) {
            *pos = i;
            return true;
        }
    return false;
}

bool sts_rlog_cur_has(const sts_cur *c, const char *lit)
{
    size_t pos;

    return sts_rlog_cur_find(c, lit, &pos);
}

static bool is_key_char(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || ch == '_' || ch == '-' || sts_is_digit(ch);
}

bool sts_rlog_is_not_space(unsigned char ch)
{
    return ch != ' ';
}

/* The next "key=value" of a ", "-separated list.  A value ends at ", "
 * followed by a field name and '=' (a value may contain ", " otherwise),
 * or at the end; the value of the terminal key (status / stat) is the
 * rest of the line. */
bool sts_rlog_take_field(sts_cur *c, const char *terminal, sts_cur *key, sts_cur *val)
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

bool sts_rlog_is_qid_char(unsigned char ch)
{
    return sts_is_alnum(ch);
}

uint64_t sts_rlog_qid_hash(sts_cur qid)
{
    uint64_t h = sts_rlog_hash_bytes(qid.p, qid.len);

    return h != 0 ? h : 1;
}

/* "QID: " at the start of a message. */
bool sts_rlog_take_qid(sts_cur *m, sts_cur *qid)
{
    sts_cur s = *m;

    if (!sts_cur_take_while(&s, sts_rlog_is_qid_char, qid) || qid->len < 5 ||
        qid->len > STS_RLOG_QID_MAX || !sts_cur_take_lit(&s, ": "))
        return false;
    *m = s;
    return true;
}

/* ------------------------------------------------------------ addresses */

/* RFC 5322 specials and what Postfix's quote_822_local treats alike: a
 * local part holding one of these is logged as a quoted string. */
static bool is_dot_string_char(unsigned char ch)
{
    if (ch <= ' ' || ch == 0x7f)
        return false;
    switch (ch) {
    case '(': case ')': case '<': case '>': case '@': case ',': case ';':
    case ':': case '\\': case '"': case '[': case ']':
        return false;
    default:
        return true;
    }
}

/* A domain as an MTA logs one: host name characters (8-bit allowed for
 * SMTPUTF8), or an address literal "[...]". */
static bool is_domain_char(unsigned char ch)
{
    return sts_is_alnum(ch) || ch == '.' || ch == '-' || ch == '_' || ch >= 0x80;
}

/* A local part: a quoted string ("..." with backslash escapes) or a
 * dot-string. */
static bool take_local_part(sts_cur *s)
{
    if (s->len > 0 && s->p[0] == '"') {
        size_t i = 1;

        while (i < s->len && s->p[i] != '"') {
            if (s->p[i] == '\\')
                i++; /* the escaped byte, whatever it is */
            i++;
        }
        if (i >= s->len)
            return false;
        s->p += i + 1;
        s->len -= i + 1;
        return true;
    }
    {
        sts_cur w;

        return sts_cur_take_while(s, is_dot_string_char, &w);
    }
}

bool sts_rlog_take_addr(sts_cur *c, bool brackets, sts_cur *addr)
{
    sts_cur s = *c, w;
    const char *start = s.p;

    if (brackets && !sts_cur_take_char(&s, '<'))
        return false;
    if (!(brackets && s.len > 0 && s.p[0] == '>')) {
        if (!take_local_part(&s))
            return false;
        if (sts_cur_take_char(&s, '@')) {
            if (sts_cur_take_char(&s, '[')) {
                if (!sts_cur_take_until(&s, ']', &w) || sts_rlog_cur_has(&w, " ") ||
                    !sts_cur_take_char(&s, ']'))
                    return false;
            } else if (!sts_cur_take_while(&s, is_domain_char, &w)) {
                return false;
            }
        }
    }
    if (brackets && !sts_cur_take_char(&s, '>'))
        return false;
    *addr = sts_cur_make(start, (size_t)(s.p - start));
    *c = s;
    return true;
}
