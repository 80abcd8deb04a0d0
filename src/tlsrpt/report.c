/*
 * report.c - RFC 8460 aggregate reports (section 4: report fields and
 * result types; 4.1-4.2 one report per policy domain covering one UTC
 * day) built from rlog sessions.  The rules - which domains get a report,
 * which policy a session belongs to, how failures are grouped - are in
 * report.h; this file only follows them.  JSON through jansson.
 */
#include "tlsrpt/report.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "base/buf.h"

static const char *const result_names[STS_REPORT_NTYPES] = {
    /* 4.4.1 negotiation failures */
    "starttls-not-supported",
    "certificate-host-mismatch",
    "certificate-expired",
    "certificate-not-trusted",
    "validation-failure",
    /* 4.4.2.1 DANE */
    "tlsa-invalid",
    "dnssec-invalid",
    "dane-required",
    /* 4.4.2.2 MTA-STS */
    "sts-policy-fetch-error",
    "sts-policy-invalid",
    "sts-webpki-invalid",
};
#define RT_VALIDATION_FAILURE 4

#define MAX_SENDING_IPS 16

typedef struct sending_ip {
    char text[STS_RLOG_IP_MAX + 1];
    bool v6;
} sending_ip;

typedef struct detail {
    size_t type;        /* index into result_names */
    const char *sip;    /* sending-mta-ip or NULL */
    const char *host;   /* "" = unknown; the rest point into the sessions */
    const char *ip;
    const char *reason;
    uint64_t count;
} detail;

typedef enum state {
    ST_UNKNOWN, /* the decision said nothing about the policy */
    ST_NOPOL,   /* no policy applied: none, invalid, engine failure */
    ST_POLICY,  /* has_policy, mode enforce or testing */
    ST_MODE_NONE, /* has_policy, mode none: as if no policy, and never reported */
} state;

typedef struct entry {
    bool sts;
    const sts_rsession *rep; /* the policy fields (sts entries) */
    uint64_t ok, fail;
    detail *d;
    size_t nd, capd;
} entry;

typedef struct builder {
    const sts_report_opts *o;
    int64_t day;
    sending_ip sip[MAX_SENDING_IPS];
    size_t nsip;
    entry *e;
    size_t ne, cape;
    sts_report_set *set;
    size_t capr;
} builder;

const char *sts_report_result_name(size_t i)
{
    return i < STS_REPORT_NTYPES ? result_names[i] : NULL;
}

/* ------------------------------------------------------------- calendar */

static bool leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil); valid for the years accepted here. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    int64_t era;
    unsigned yoe, doy, doe;

    y -= m <= 2;
    era = y / 400;
    yoe = (unsigned)(y - era * 400);
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

sts_status sts_report_parse_day(const char *s, int64_t *day, sts_why *why)
{
    static const unsigned mdays[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    sts_cur c = sts_cur_str(s);
    uint64_t y, m, d;
    char q[64];

    if (!sts_cur_take_number(&c, 4, 9999, &y) || c.p - s != 4 || !sts_cur_take_char(&c, '-') ||
        !sts_cur_take_number(&c, 2, 12, &m) || c.p - s != 7 || !sts_cur_take_char(&c, '-') ||
        !sts_cur_take_number(&c, 2, 31, &d) || c.p - s != 10 || !sts_cur_empty(&c)) {
        sts_why_set(why, "'%s' is not a date of the form YYYY-MM-DD",
                    sts_quote(q, sizeof(q), s, strlen(s)));
        return STS_PERMFAIL;
    }
    if (y < 1970 || m < 1 || d < 1 ||
        d > mdays[m - 1] + (m == 2 && leap((int64_t)y) ? 1u : 0u)) {
        sts_why_set(why, "'%s' is not a calendar day (1970-01-01 or later)", s);
        return STS_PERMFAIL;
    }
    *day = days_from_civil((int64_t)y, (unsigned)m, (unsigned)d) * STS_REPORT_DAY;
    return STS_OK;
}

void sts_report_datetime(int64_t t, char *out, size_t outsz)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (gmtime_r(&tt, &tm) == NULL || strftime(out, outsz, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        (void)snprintf(out, outsz, "%lld", (long long)t);
}

bool sts_report_host_id_valid(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > STS_REPORT_HOSTID_MAX || s[0] == '.' || s[n - 1] == '.' ||
        strstr(s, "..") != NULL)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!sts_is_alnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '.')
            return false;
    return true;
}

sts_status sts_report_id(const char *submitter, const char *host_id, const char *domain,
                         int64_t day, char *out, size_t outsz)
{
    char date[32];
    int w;

    sts_report_datetime(day, date, sizeof(date));
    date[10] = '\0'; /* the YYYY-MM-DD part */
    w = snprintf(out, outsz, "%s_%s_%s@%s", date, domain, host_id, submitter);
    if (w < 0 || (size_t)w >= outsz) {
        if (outsz > 0)
            out[0] = '\0';
        return STS_PERMFAIL;
    }
    return STS_OK;
}

/* -------------------------------------------------------------- options */

static bool is_v6(const char *ip)
{
    return strchr(ip, ':') != NULL;
}

static sts_status parse_sending_ips(builder *b, sts_why *why)
{
    sts_cur list = sts_cur_str(b->o->sending_ips), item;
    char q[64];

    while (sts_cur_take_item(&list, ',', &item)) {
        sending_ip *s = &b->sip[b->nsip];
        unsigned char addr[16];

        if (item.len == 0)
            continue;
        if (b->nsip == MAX_SENDING_IPS) {
            sts_why_set(why, "ReportSendingIP: more than %d addresses", MAX_SENDING_IPS);
            return STS_PERMFAIL;
        }
        if (item.len >= sizeof(s->text)) {
            sts_why_set(why, "ReportSendingIP: '%s' is not an IP address",
                        sts_quote(q, sizeof(q), item.p, item.len));
            return STS_PERMFAIL;
        }
        memcpy(s->text, item.p, item.len);
        s->text[item.len] = '\0';
        s->v6 = is_v6(s->text);
        if (inet_pton(s->v6 ? AF_INET6 : AF_INET, s->text, addr) != 1) {
            sts_why_set(why, "ReportSendingIP: '%s' is not an IP address",
                        sts_quote(q, sizeof(q), item.p, item.len));
            return STS_PERMFAIL;
        }
        b->nsip++;
    }
    return STS_OK;
}

/* The configured local address the session must have used: the first one
 * of the receiving IP's family; the first one at all when that is unknown. */
static const char *sending_ip_for(const builder *b, const char *rip)
{
    const char *a;

    for (size_t i = 0; i < b->nsip; i++)
        if (rip[0] == '\0' || b->sip[i].v6 == is_v6(rip))
            return b->sip[i].text;
    if (b->o->sending_ip == NULL || rip[0] == '\0' ||
        (a = b->o->sending_ip(b->o->sending_ip_arg, rip)) == NULL || a[0] == '\0')
        return NULL;
    return a;
}

/* ------------------------------------------------------------- grouping */

static int cmp_session(const void *pa, const void *pb)
{
    const sts_rsession *a = *(const sts_rsession *const *)pa;
    const sts_rsession *b = *(const sts_rsession *const *)pb;
    int c = strcmp(a->domain, b->domain);

    if (c != 0)
        return c;
    if (a->time != b->time)
        return a->time < b->time ? -1 : 1;
    if ((c = strcmp(a->queue_id, b->queue_id)) != 0)
        return c;
    /* Same message and second: keep the reader's order (stable). */
    return a < b ? -1 : a > b ? 1 : 0;
}

static state state_of(const sts_rsession *s)
{
    if (!s->has_decision)
        return ST_UNKNOWN;
    /* An engine failure under a policy (an enforce policy that matches none
     * of the MX hosts) happened while that policy applied: it is reported
     * under it (RFC 8460 4: the policy applied). */
    if (s->has_policy)
        return s->mode == STS_MODE_NONE ? ST_MODE_NONE : ST_POLICY;
    if (s->engine_failure)
        return ST_NOPOL;
    if (s->result == STS_RESULT_NONE || s->result == STS_RESULT_INVALID)
        return ST_NOPOL;
    return ST_UNKNOWN; /* temperror or pending: delivery may have used a cached policy */
}

static bool same_policy(const sts_rsession *a, const sts_rsession *b)
{
    if (a->policy_text != NULL && b->policy_text != NULL)
        return strcmp(a->policy_text, b->policy_text) == 0;
    return a->mode == b->mode && a->max_age_known == b->max_age_known &&
           (!a->max_age_known || a->max_age == b->max_age) && strcmp(a->mx, b->mx) == 0;
}

static size_t result_index(const char *name, bool *known)
{
    *known = true;
    if (name != NULL)
        for (size_t i = 0; i < STS_REPORT_NTYPES; i++)
            if (strcmp(name, result_names[i]) == 0)
                return i;
    *known = false;
    return RT_VALIDATION_FAILURE;
}

static entry *entry_for(builder *b, bool sts, const sts_rsession *rep)
{
    entry *ne;

    for (size_t i = 0; i < b->ne; i++)
        if (b->e[i].sts == sts && (!sts || same_policy(b->e[i].rep, rep)))
            return &b->e[i];
    if ((ne = sts_array_reserve(b->e, b->ne, &b->cape, 4, sizeof(*ne))) == NULL)
        return NULL;
    b->e = ne;
    memset(&b->e[b->ne], 0, sizeof(b->e[b->ne]));
    b->e[b->ne].sts = sts;
    b->e[b->ne].rep = rep;
    return &b->e[b->ne++];
}

static bool str_eq_opt(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static sts_status add_failure(builder *b, entry *e, const sts_rsession *s, sts_report *r)
{
    detail key, *nd;
    bool known;

    memset(&key, 0, sizeof(key));
    key.type = result_index(s->result_type, &known);
    if (!known)
        b->set->stats.unknown_type++;
    key.host = s->mx_host;
    key.ip = s->mx_ip;
    key.reason = s->detail;
    key.sip = s->engine_failure ? NULL : sending_ip_for(b, s->mx_ip);
    r->by_type[key.type]++;
    for (size_t i = 0; i < e->nd; i++) {
        detail *d = &e->d[i];

        if (d->type == key.type && str_eq_opt(d->sip, key.sip) && strcmp(d->host, key.host) == 0 &&
            strcmp(d->ip, key.ip) == 0 && strcmp(d->reason, key.reason) == 0) {
            d->count++;
            return STS_OK;
        }
    }
    if ((nd = sts_array_reserve(e->d, e->nd, &e->capd, 4, sizeof(*nd))) == NULL)
        return STS_NOMEM;
    e->d = nd;
    key.count = 1;
    e->d[e->nd++] = key;
    return STS_OK;
}

static int cmp_detail(const void *pa, const void *pb)
{
    const detail *a = pa, *b = pb;
    int c;

    if (a->type != b->type)
        return strcmp(result_names[a->type], result_names[b->type]);
    if ((c = strcmp(a->host, b->host)) != 0 || (c = strcmp(a->ip, b->ip)) != 0)
        return c;
    if ((c = strcmp(a->sip != NULL ? a->sip : "", b->sip != NULL ? b->sip : "")) != 0)
        return c;
    return strcmp(a->reason, b->reason);
}

/* ----------------------------------------------------------------- JSON */

static int put(json_t *o, const char *key, json_t *v)
{
    return v == NULL ? -1 : json_object_set_new(o, key, v);
}

static int push(json_t *a, json_t *v)
{
    return v == NULL ? -1 : json_array_append_new(a, v);
}

static int push_line(json_t *a, const char *key, const char *value)
{
    char line[STS_RLOG_MX_MAX + 32];

    (void)snprintf(line, sizeof(line), "%s: %s", key, value);
    return push(a, json_string(line));
}

/* The policy's lines as published (RFC 8460 4.3 policy-string): every
 * non-empty line of the text, CR of CRLF removed; mx-host from its "mx"
 * lines. */
static int text_lines(const char *text, json_t *lines, json_t *mx)
{
    sts_cur c = sts_cur_str(text), line;
    int rc = 0;

    while (c.len > 0 && rc == 0) {
        if (!sts_cur_take_until(&c, '\n', &line)) {
            line = c;
            c.p += c.len;
            c.len = 0;
        }
        (void)sts_cur_take_char(&c, '\n');
        if (line.len > 0 && line.p[line.len - 1] == '\r')
            line.len--;
        if (line.len == 0)
            continue;
        rc |= push(lines, json_stringn(line.p, line.len));
        if (sts_cur_take_lit(&line, "mx:")) {
            (void)sts_cur_skip_wsp(&line);
            sts_cur_rtrim_wsp(&line);
            if (line.len > 0)
                rc |= push(mx, json_stringn(line.p, line.len));
        }
    }
    return rc;
}

static json_t *policy_json(const entry *e, const char *domain)
{
    json_t *p = json_object(), *lines = json_array(), *mx = json_array();
    int rc = 0;

    if (p == NULL || lines == NULL || mx == NULL) {
        rc = -1;
        goto done;
    }
    if (!e->sts) {
        rc |= put(p, "policy-type", json_string("no-policy-found"));
        rc |= put(p, "policy-domain", json_string(domain));
        goto done;
    }
    if (e->rep->policy_text != NULL) {
        rc |= text_lines(e->rep->policy_text, lines, mx);
        goto fields;
    }
    rc |= push_line(lines, "version", "STSv1");
    rc |= push_line(lines, "mode", sts_mode_name(e->rep->mode));
    {
        sts_cur list = sts_cur_str(e->rep->mx), item;

        while (sts_cur_take_item(&list, ',', &item)) {
            char pat[STS_DOMAIN_MAX + 3];

            /* ",..." marks a list the decision log had to cut: the patterns
             * before it are real, the marker is not one. */
            if (item.len == 0 || item.len >= sizeof(pat) || sts_cur_eq(&item, "..."))
                continue;
            memcpy(pat, item.p, item.len);
            pat[item.len] = '\0';
            rc |= push_line(lines, "mx", pat);
            rc |= push(mx, json_string(pat));
        }
    }
    if (e->rep->max_age_known) {
        char age[24];

        (void)snprintf(age, sizeof(age), "%lu", (unsigned long)e->rep->max_age);
        rc |= push_line(lines, "max_age", age);
    }
fields:
    rc |= put(p, "policy-type", json_string("sts"));
    rc |= put(p, "policy-string", lines);
    lines = NULL;
    rc |= put(p, "policy-domain", json_string(domain));
    rc |= put(p, "mx-host", mx);
    mx = NULL;
done:
    json_decref(lines);
    json_decref(mx);
    if (rc != 0) {
        json_decref(p);
        return NULL;
    }
    return p;
}

static json_t *details_json(entry *e)
{
    json_t *a = json_array();
    int rc = 0;

    if (a == NULL)
        return NULL;
    qsort(e->d, e->nd, sizeof(e->d[0]), cmp_detail);
    for (size_t i = 0; i < e->nd && rc == 0; i++) {
        const detail *d = &e->d[i];
        json_t *o = json_object();

        if (o == NULL) {
            rc = -1;
            break;
        }
        rc |= put(o, "result-type", json_string(result_names[d->type]));
        if (d->sip != NULL)
            rc |= put(o, "sending-mta-ip", json_string(d->sip));
        if (d->host[0] != '\0')
            rc |= put(o, "receiving-mx-hostname", json_string(d->host));
        if (d->ip[0] != '\0')
            rc |= put(o, "receiving-ip", json_string(d->ip));
        rc |= put(o, "failed-session-count", json_integer((json_int_t)d->count));
        if (d->reason[0] != '\0')
            rc |= put(o, "failure-reason-code", json_string(d->reason));
        rc |= push(a, o);
    }
    if (rc != 0) {
        json_decref(a);
        return NULL;
    }
    return a;
}

static sts_status report_json(builder *b, sts_report *r)
{
    json_t *root = json_object(), *range = json_object(), *pols = json_array();
    char start[32], end[32];
    sts_status st = STS_NOMEM;
    int rc = 0;

    if (root == NULL || range == NULL || pols == NULL)
        goto done;
    sts_report_datetime(r->begin, start, sizeof(start));
    sts_report_datetime(r->end, end, sizeof(end));
    rc |= put(range, "start-datetime", json_string(start));
    rc |= put(range, "end-datetime", json_string(end));
    rc |= put(root, "organization-name", json_string(b->o->organization));
    rc |= put(root, "date-range", range);
    range = NULL;
    rc |= put(root, "contact-info", json_string(b->o->contact));
    rc |= put(root, "report-id", json_string(r->report_id));
    for (size_t i = 0; i < b->ne && rc == 0; i++) {
        entry *e = &b->e[i];
        json_t *item = json_object(), *sum = json_object();

        rc |= put(item, "policy", policy_json(e, r->domain));
        rc |= put(sum, "total-successful-session-count", json_integer((json_int_t)e->ok));
        rc |= put(sum, "total-failure-session-count", json_integer((json_int_t)e->fail));
        rc |= put(item, "summary", sum);
        if (e->nd > 0)
            rc |= put(item, "failure-details", details_json(e));
        rc |= push(pols, item);
    }
    rc |= put(root, "policies", pols);
    pols = NULL;
    if (rc != 0)
        goto done;
    r->json = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (r->json != NULL)
        st = STS_OK;
done:
    json_decref(range);
    json_decref(pols);
    json_decref(root);
    return st;
}

/* ------------------------------------------------------------ one domain */

static void entries_reset(builder *b)
{
    for (size_t i = 0; i < b->ne; i++)
        free(b->e[i].d);
    b->ne = 0;
}

static void add_mode(sts_report *r, const char *name)
{
    size_t len = strlen(r->modes);
    sts_cur list = sts_cur_str(r->modes), item;

    while (sts_cur_take_item(&list, ',', &item))
        if (sts_cur_eq(&item, name))
            return;
    (void)snprintf(r->modes + len, sizeof(r->modes) - len, "%s%s", len > 0 ? "," : "", name);
}

/* Sessions g[0..m) of one domain, sorted by time; st/prev/next are
 * scratch arrays of m elements. */
static sts_status do_domain(builder *b, const sts_rsession *const *g, size_t m, state *st,
                            size_t *prev, size_t *next)
{
    const int64_t end = b->day + STS_REPORT_DAY;
    sts_report r, *nr;
    bool reportable = false;
    uint64_t in_day = 0, attributed = 0;
    sts_status rc = STS_OK;
    size_t last = SIZE_MAX;

    memset(&r, 0, sizeof(r));
    entries_reset(b);
    for (size_t i = 0; i < m; i++) {
        st[i] = state_of(g[i]);
        prev[i] = last;
        if (st[i] != ST_UNKNOWN)
            last = i;
    }
    last = SIZE_MAX;
    for (size_t i = m; i-- > 0;) {
        next[i] = last;
        if (st[i] != ST_UNKNOWN)
            last = i;
    }
    for (size_t i = 0; i < m; i++) {
        const sts_rsession *s = g[i];
        size_t k = i;
        entry *e;

        if (s->time < b->day || s->time >= end) {
            b->set->stats.outside_day++;
            continue;
        }
        in_day++;
        if (st[i] == ST_UNKNOWN)
            k = prev[i] != SIZE_MAX ? prev[i] : next[i];
        if (k == SIZE_MAX) {
            b->set->stats.unattributed++;
            continue;
        }
        if (st[k] == ST_MODE_NONE) {
            b->set->stats.mode_none++;
            continue;
        }
        attributed++;
        if (st[k] == ST_POLICY || s->engine_failure || b->o->no_policy_reports)
            reportable = true;
        e = entry_for(b, st[k] == ST_POLICY, g[k]);
        if (e == NULL) {
            rc = STS_NOMEM;
            goto done;
        }
        if (s->success && !s->engine_failure) {
            e->ok++;
            r.successes++;
        } else {
            e->fail++;
            r.failures++;
            if ((rc = add_failure(b, e, s, &r)) != STS_OK)
                goto done;
        }
    }
    b->set->stats.in_day += in_day;
    if (!reportable) {
        /* A domain whose every session is unattributed is not known to
         * have no policy: it is counted in unattributed only. */
        if (attributed > 0) {
            b->set->stats.no_policy += attributed;
            b->set->stats.domains_no_policy++;
        }
        goto done;
    }
    (void)snprintf(r.domain, sizeof(r.domain), "%s", g[0]->domain);
    if (sts_report_id(b->o->submitter, b->o->host_id, r.domain, b->day, r.report_id,
                      sizeof(r.report_id)) != STS_OK) {
        rc = STS_PERMFAIL; /* cannot happen: the sizes are fixed by the header */
        goto done;
    }
    r.begin = b->day;
    r.end = end - 1;
    r.n_policies = b->ne;
    for (size_t i = 0; i < b->ne; i++)
        add_mode(&r, b->e[i].sts ? sts_mode_name(b->e[i].rep->mode) : "no-policy-found");
    if ((rc = report_json(b, &r)) != STS_OK)
        goto done;
    if ((nr = sts_array_reserve(b->set->r, b->set->n, &b->capr, 8, sizeof(*nr))) == NULL) {
        rc = STS_NOMEM;
        goto done;
    }
    b->set->r = nr;
    b->set->r[b->set->n++] = r;
    r.json = NULL;
done:
    free(r.json);
    return rc;
}

void sts_report_set_free(sts_report_set *set)
{
    if (set == NULL)
        return;
    for (size_t i = 0; i < set->n; i++)
        free(set->r[i].json);
    free(set->r);
    free(set);
}

sts_status sts_report_build(const sts_report_opts *o, int64_t day, const sts_rsession *s,
                            size_t n, sts_report_set **out, sts_why *why)
{
    builder b;
    const sts_rsession **idx = NULL;
    state *st = NULL;
    size_t *prev = NULL, *next = NULL;
    sts_status rc = STS_NOMEM;

    *out = NULL;
    memset(&b, 0, sizeof(b));
    b.o = o;
    b.day = day;
    if (o->organization == NULL || o->organization[0] == '\0' || o->contact == NULL ||
        o->contact[0] == '\0' || o->submitter == NULL || o->submitter[0] == '\0' ||
        strlen(o->submitter) > STS_DOMAIN_MAX || o->host_id == NULL ||
        !sts_report_host_id_valid(o->host_id)) {
        sts_why_set(why, "report options: organization, contact, submitter and a host id "
                         "(letters, digits, '-', '.') are required");
        return STS_PERMFAIL;
    }
    if (day % STS_REPORT_DAY != 0) {
        sts_why_set(why, "report day %lld is not 00:00 UTC", (long long)day);
        return STS_PERMFAIL;
    }
    if ((rc = parse_sending_ips(&b, why)) != STS_OK)
        return rc;
    rc = STS_NOMEM;
    b.set = calloc(1, sizeof(*b.set));
    if (b.set == NULL)
        goto done;
    if (n > 0) {
        idx = sts_calloc_array(n, sizeof(*idx));
        st = sts_calloc_array(n, sizeof(*st));
        prev = sts_calloc_array(n, sizeof(*prev));
        next = sts_calloc_array(n, sizeof(*next));
        if (idx == NULL || st == NULL || prev == NULL || next == NULL)
            goto done;
    }
    for (size_t i = 0; i < n; i++)
        idx[i] = &s[i];
    if (n > 1)
        qsort(idx, n, sizeof(*idx), cmp_session);
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;

        while (j < n && strcmp(idx[j]->domain, idx[i]->domain) == 0)
            j++;
        if ((rc = do_domain(&b, idx + i, j - i, st, prev, next)) != STS_OK)
            goto done;
        i = j;
    }
    rc = STS_OK;
    *out = b.set;
    b.set = NULL;
done:
    if (rc == STS_NOMEM)
        sts_why_set(why, "out of memory building reports");
    entries_reset(&b);
    free(b.e);
    sts_report_set_free(b.set);
    free(idx);
    free(st);
    free(prev);
    free(next);
    return rc;
}
