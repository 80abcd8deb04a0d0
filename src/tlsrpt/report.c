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
#include "tlsrpt/report_impl.h"

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

int sts_report_detail_cmp(const void *pa, const void *pb)
{
    const rdetail *a = pa, *b = pb;
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

static json_t *policy_json(const rentry *e, const char *domain)
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
    if (e->pol.text != NULL) {
        rc |= text_lines(e->pol.text, lines, mx);
        goto fields;
    }
    rc |= push_line(lines, "version", "STSv1");
    rc |= push_line(lines, "mode", sts_mode_name(e->pol.mode));
    {
        sts_cur list = sts_cur_str(e->pol.mx), item;

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
    if (e->pol.max_age_known) {
        char age[24];

        (void)snprintf(age, sizeof(age), "%lu", (unsigned long)e->pol.max_age);
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

static json_t *details_json(rentry *e)
{
    json_t *a = json_array();
    int rc = 0;

    if (a == NULL)
        return NULL;
    for (size_t i = 0; i < e->nd && rc == 0; i++) {
        const rdetail *d = &e->d[i];
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

static sts_status report_json(const sts_report_opts *o, rentry *e, size_t n, sts_report *r)
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
    rc |= put(root, "organization-name", json_string(o->organization));
    rc |= put(root, "date-range", range);
    range = NULL;
    rc |= put(root, "contact-info", json_string(o->contact));
    rc |= put(root, "report-id", json_string(r->report_id));
    for (size_t i = 0; i < n && rc == 0; i++) {
        json_t *item = json_object(), *sum = json_object();

        rc |= put(item, "policy", policy_json(&e[i], r->domain));
        rc |= put(sum, "total-successful-session-count", json_integer((json_int_t)e[i].ok));
        rc |= put(sum, "total-failure-session-count", json_integer((json_int_t)e[i].fail));
        rc |= put(item, "summary", sum);
        if (e[i].nd > 0)
            rc |= put(item, "failure-details", details_json(&e[i]));
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

static void add_mode(sts_report *r, const char *name)
{
    size_t len = strlen(r->modes);
    sts_cur list = sts_cur_str(r->modes), item;

    while (sts_cur_take_item(&list, ',', &item))
        if (sts_cur_eq(&item, name))
            return;
    (void)snprintf(r->modes + len, sizeof(r->modes) - len, "%s%s", len > 0 ? "," : "", name);
}

sts_status sts_report_make(const sts_report_opts *o, int64_t day, const char *domain,
                           rentry *e, size_t n, sts_report *r)
{
    memset(r, 0, sizeof(*r));
    (void)snprintf(r->domain, sizeof(r->domain), "%s", domain);
    if (sts_report_id(o->submitter, o->host_id, r->domain, day, r->report_id,
                      sizeof(r->report_id)) != STS_OK)
        return STS_PERMFAIL; /* cannot happen: the sizes are fixed by the header */
    r->begin = day;
    r->end = day + STS_REPORT_DAY - 1;
    r->n_policies = n;
    for (size_t i = 0; i < n; i++) {
        add_mode(r, e[i].sts ? sts_mode_name(e[i].pol.mode) : "no-policy-found");
        r->successes += e[i].ok;
        r->failures += e[i].fail;
        for (size_t j = 0; j < e[i].nd; j++)
            r->by_type[e[i].d[j].type] += e[i].d[j].count;
    }
    return report_json(o, e, n, r);
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

/* Time order, then queue id, then input order: the order the streaming
 * join gives sessions in, so that both ways make the same reports. */
static int cmp_session(const void *pa, const void *pb)
{
    const sts_rsession *a = *(const sts_rsession *const *)pa;
    const sts_rsession *b = *(const sts_rsession *const *)pb;
    int c;

    if (a->time != b->time)
        return a->time < b->time ? -1 : 1;
    if ((c = strcmp(a->queue_id, b->queue_id)) != 0)
        return c;
    return a < b ? -1 : a > b ? 1 : 0;
}

sts_status sts_report_build(const sts_report_opts *o, int64_t day, const sts_rsession *s,
                            size_t n, sts_report_set **out, sts_why *why)
{
    const sts_rsession **idx = NULL;
    sts_report_acc *acc = NULL;
    sts_status rc;

    *out = NULL;
    if ((rc = sts_report_acc_new(o, day, &acc, why)) != STS_OK)
        return rc;
    if (n > 0 && (idx = sts_calloc_array(n, sizeof(*idx))) == NULL) {
        sts_report_acc_free(acc);
        sts_why_set(why, "out of memory building reports");
        return STS_NOMEM;
    }
    for (size_t i = 0; i < n; i++)
        idx[i] = &s[i];
    if (n > 1)
        qsort(idx, n, sizeof(*idx), cmp_session);
    for (size_t i = 0; i < n; i++)
        sts_report_acc_add(acc, idx[i]);
    free(idx);
    rc = sts_report_acc_finish(acc, out, why);
    sts_report_acc_free(acc);
    return rc;
}
