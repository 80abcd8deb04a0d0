/*
 * test_report.c - RFC 8460 aggregate reports from hand-made sessions
 * (src/report.c).  The expected reports are the golden files under
 * tests/golden/report/unit/, written by hand from RFC 8460 section 4; they
 * are compared semantically (jansson, json_equal, the order of policies and
 * of failure-details ignored).  Every report produced is also checked
 * against the RFC's field list: required keys present, types right, no
 * unknown keys, counts consistent.
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "tlsrpt/report.h"

#define D 1795737600LL /* 2026-11-27T00:00:00Z */
#define RT_INDEX_VALIDATION 4 /* sts_report_result_name(4) == "validation-failure" */
#define H 3600LL

/* ------------------------------------------------------------- sessions */

typedef enum kind {
    K_POLICY,   /* attempt joined to a decision with a policy */
    K_NONE,     /* attempt joined to a decision "none" */
    K_TEMP,     /* attempt joined to a temperror decision without a policy */
    K_UNJOINED, /* attempt without a decision line */
    K_ENGINE,   /* engine-side failure (no attempt) */
    K_ENGINE_POLICY, /* engine-side failure under a policy (decision tempfail-no-mx) */
} kind;

typedef struct spec {
    int64_t t;
    const char *qid, *domain;
    kind k;
    sts_mode mode;
    const char *mx; /* policy patterns, ',' joined */
    long max_age;   /* -1: unknown */
    const char *id;
    bool ok;
    const char *rtype, *host, *ip, *detail;
} spec;

#define ENF_MX "mx1.enforce.example,*.backup.enforce.example"
#define NOTLS "TLS is required, but was not offered by host mx2.backup.enforce.example[198.51.100.2]"
#define FETCH404 "HTTP status 404 from https://mta-sts.fetcherr.example/.well-known/mta-sts.txt"
#define MISMATCH "num=62:hostname mismatch"

static const spec day_specs[] = {
    /* enforce.example: 3 successes, one STARTTLS missing, one unjoined
     * success (the policy in force is the enforce one), two sessions on
     * other days (ignored). */
    { D - H, "A0", "enforce.example", K_POLICY, STS_MODE_ENFORCE, ENF_MX, 604800, "20261101", true,
      NULL, "mx1.enforce.example", "198.51.100.1", "" },
    { D + 1 * H, "A1", "enforce.example", K_POLICY, STS_MODE_ENFORCE, ENF_MX, 604800, "20261101",
      true, NULL, "mx1.enforce.example", "198.51.100.1", "" },
    { D + 2 * H, "A2", "enforce.example", K_POLICY, STS_MODE_ENFORCE, ENF_MX, 604800, "20261101",
      true, NULL, "mx1.enforce.example", "198.51.100.1", "" },
    { D + 3 * H, "A3", "enforce.example", K_POLICY, STS_MODE_ENFORCE, ENF_MX, 604800, "20261101",
      true, NULL, "mx1.enforce.example", "198.51.100.1", "" },
    { D + 4 * H, "A4", "enforce.example", K_POLICY, STS_MODE_ENFORCE, ENF_MX, 604800, "20261101",
      false, "starttls-not-supported", "mx2.backup.enforce.example", "198.51.100.2", NOTLS },
    { D + 5 * H, "A5", "enforce.example", K_UNJOINED, 0, "", -1, "", true, NULL,
      "mx1.enforce.example", "198.51.100.1", "" },
    { D + STS_REPORT_DAY + 60, "A6", "enforce.example", K_POLICY, STS_MODE_ENFORCE, ENF_MX,
      604800, "20261101", false, "starttls-not-supported", "mx2.backup.enforce.example",
      "198.51.100.2", NOTLS },
    /* testing.example: certificate-host-mismatch from two MX hosts (one
     * over IPv6: the IPv6 sending address is used), one success. */
    { D + 10 * H, "T1", "testing.example", K_POLICY, STS_MODE_TESTING, "*.testing.example", 86400,
      "t1", false, "certificate-host-mismatch", "mx1.testing.example", "203.0.113.5", MISMATCH },
    { D + 11 * H, "T2", "testing.example", K_POLICY, STS_MODE_TESTING, "*.testing.example", 86400,
      "t1", false, "certificate-host-mismatch", "mx1.testing.example", "203.0.113.5", MISMATCH },
    { D + 12 * H, "T3", "testing.example", K_POLICY, STS_MODE_TESTING, "*.testing.example", 86400,
      "t1", false, "certificate-host-mismatch", "mx2.testing.example", "2001:db8:5::25", MISMATCH },
    { D + 13 * H, "T4", "testing.example", K_POLICY, STS_MODE_TESTING, "*.testing.example", 86400,
      "t1", true, NULL, "mx3.testing.example", "203.0.113.7", "" },
    /* fetcherr.example: the policy host answers 404 (engine failure),
     * mail goes out as without MTA-STS. */
    { D + 6 * H, "F1", "fetcherr.example", K_ENGINE, 0, "", -1, "x1", false,
      "sts-policy-fetch-error", "", "", FETCH404 },
    { D + 6 * H, "F1", "fetcherr.example", K_TEMP, 0, "", -1, "x1", true, NULL,
      "mx.fetcherr.example", "192.0.2.77", "" },
    { D + 7 * H, "F2", "fetcherr.example", K_ENGINE, 0, "", -1, "x1", false,
      "sts-policy-fetch-error", "", "", FETCH404 },
    { D + 7 * H, "F2", "fetcherr.example", K_TEMP, 0, "", -1, "x1", true, NULL,
      "mx.fetcherr.example", "192.0.2.77", "" },
    /* change.example: testing in the morning, enforce from the afternoon. */
    { D + 8 * H, "C1", "change.example", K_POLICY, STS_MODE_TESTING, "mail.change.example", 86400,
      "a1", true, NULL, "mail.change.example", "192.0.2.30", "" },
    { D + 9 * H, "C2", "change.example", K_POLICY, STS_MODE_TESTING, "mail.change.example", 86400,
      "a1", false, "certificate-expired", "mail.change.example", "192.0.2.30",
      "num=10:certificate has expired" },
    { D + 15 * H, "C3", "change.example", K_POLICY, STS_MODE_ENFORCE, "mail.change.example",
      604800, "b2", true, NULL, "mail.change.example", "192.0.2.30", "" },
    { D + 16 * H, "C4", "change.example", K_POLICY, STS_MODE_ENFORCE, "mail.change.example",
      604800, "b2", true, NULL, "mail.change.example", "192.0.2.30", "" },
    /* none.example publishes nothing: no report. */
    { D + 1 * H, "N1", "none.example", K_NONE, 0, "", -1, "", true, NULL, "mx.none.example",
      "192.0.2.99", "" },
    /* unknown.example: an attempt without any decision: unattributed. */
    { D + 2 * H, "U1", "unknown.example", K_UNJOINED, 0, "", -1, "", false,
      "starttls-not-supported", "mx.unknown.example", "192.0.2.98", "" },
    /* old.example: only a session of the day before. */
    { D - STS_REPORT_DAY, "O1", "old.example", K_POLICY, STS_MODE_ENFORCE, "mx.old.example", 86400,
      "o1", true, NULL, "mx.old.example", "192.0.2.97", "" },
};
#define N_DAY_SPECS (sizeof(day_specs) / sizeof(day_specs[0]))

static void make_session(const spec *p, sts_rsession *s)
{
    memset(s, 0, sizeof(*s));
    s->time = p->t;
    (void)snprintf(s->queue_id, sizeof(s->queue_id), "%s", p->qid);
    (void)snprintf(s->domain, sizeof(s->domain), "%s", p->domain);
    s->has_decision = p->k != K_UNJOINED;
    s->result = p->k == K_POLICY || p->k == K_ENGINE_POLICY ? STS_RESULT_POLICY
              : p->k == K_NONE                              ? STS_RESULT_NONE
                                                            : STS_RESULT_TEMPERROR;
    s->has_policy = p->k == K_POLICY || p->k == K_ENGINE_POLICY;
    s->mode = p->mode;
    (void)snprintf(s->policy_id, sizeof(s->policy_id), "%s", p->id);
    (void)snprintf(s->mx, sizeof(s->mx), "%s", p->mx);
    s->max_age_known = p->max_age >= 0;
    s->max_age = p->max_age >= 0 ? (uint32_t)p->max_age : 0;
    s->engine_failure = p->k == K_ENGINE || p->k == K_ENGINE_POLICY;
    s->success = p->ok;
    s->result_type = p->rtype;
    (void)snprintf(s->mx_host, sizeof(s->mx_host), "%s", p->host);
    (void)snprintf(s->mx_ip, sizeof(s->mx_ip), "%s", p->ip);
    (void)snprintf(s->detail, sizeof(s->detail), "%s", p->detail);
}

static sts_rsession *make_sessions(const spec *p, size_t n)
{
    sts_rsession *s = calloc(n, sizeof(*s));

    assert_non_null(s);
    for (size_t i = 0; i < n; i++)
        make_session(&p[i], &s[i]);
    return s;
}

static const sts_report_opts opts = {
    .organization = "Sender Example Org",
    .contact = "tlsrpt@sender.example",
    .submitter = "sender.example",
    .host_id = "mta1.sender.example",
    .sending_ips = "192.0.2.10, 2001:db8::10",
};

/* ------------------------------------------------- RFC 8460 field check */

static bool is_rfc3339_utc(const char *s)
{
    /* YYYY-MM-DDTHH:MM:SSZ (RFC 3339 date-time, UTC) */
    static const char shape[] = "dddd-dd-ddTdd:dd:ddZ";

    if (strlen(s) != sizeof(shape) - 1)
        return false;
    for (size_t i = 0; shape[i] != '\0'; i++)
        if (shape[i] == 'd' ? !(s[i] >= '0' && s[i] <= '9') : s[i] != shape[i])
            return false;
    return true;
}

static bool is_ip(const char *s)
{
    unsigned char a[16];

    return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

static bool in_list(const char *s, const char *const *list)
{
    for (size_t i = 0; list[i] != NULL; i++)
        if (strcmp(s, list[i]) == 0)
            return true;
    return false;
}

/* Keys of o must all be in allowed; each of required must be there. */
static void check_keys(const char *where, json_t *o, const char *const *allowed,
                       const char *const *required)
{
    const char *k;
    json_t *v;

    if (!json_is_object(o))
        fail_msg("%s: got %s, want an object", where, o == NULL ? "nothing" : "a non-object");
    json_object_foreach(o, k, v) {
        (void)v;
        if (!in_list(k, allowed))
            fail_msg("%s: unknown key \"%s\" (not in RFC 8460 section 4)", where, k);
    }
    for (size_t i = 0; required[i] != NULL; i++)
        if (json_object_get(o, required[i]) == NULL)
            fail_msg("%s: required key \"%s\" missing", where, required[i]);
}

static void check_string(const char *where, json_t *v)
{
    if (!json_is_string(v) || json_string_length(v) == 0)
        fail_msg("%s: want a non-empty string", where);
}

static json_int_t check_count(const char *where, json_t *v, json_int_t min)
{
    if (!json_is_integer(v) || json_integer_value(v) < min)
        fail_msg("%s: want an integer >= %lld", where, (long long)min);
    return json_integer_value(v);
}

static void check_string_array(const char *where, json_t *a)
{
    size_t i;
    json_t *v;

    if (!json_is_array(a))
        fail_msg("%s: want an array", where);
    json_array_foreach(a, i, v) check_string(where, v);
}

static void validate_rfc8460(json_t *r)
{
    static const char *const top[] = { "organization-name", "date-range", "contact-info",
                                       "report-id", "policies", NULL };
    static const char *const range[] = { "start-datetime", "end-datetime", NULL };
    static const char *const item[] = { "policy", "summary", "failure-details", NULL };
    static const char *const item_req[] = { "policy", "summary", NULL };
    static const char *const pol[] = { "policy-type", "policy-string", "policy-domain", "mx-host",
                                       NULL };
    static const char *const pol_req[] = { "policy-type", "policy-domain", NULL };
    static const char *const sum[] = { "total-successful-session-count",
                                       "total-failure-session-count", NULL };
    static const char *const fd[] = { "result-type", "sending-mta-ip", "receiving-mx-hostname",
                                      "receiving-mx-helo", "receiving-ip", "failed-session-count",
                                      "additional-information", "failure-reason-code", NULL };
    static const char *const fd_req[] = { "result-type", "failed-session-count", NULL };
    static const char *const ptypes[] = { "tlsa", "sts", "no-policy-found", NULL };
    const char *rtypes[STS_REPORT_NTYPES + 1];
    json_t *pols, *p;
    size_t i;

    for (i = 0; i < STS_REPORT_NTYPES; i++)
        rtypes[i] = sts_report_result_name(i);
    rtypes[i] = NULL;
    check_keys("report", r, top, top);
    check_string("organization-name", json_object_get(r, "organization-name"));
    check_string("contact-info", json_object_get(r, "contact-info"));
    check_string("report-id", json_object_get(r, "report-id"));
    check_keys("date-range", json_object_get(r, "date-range"), range, range);
    for (i = 0; range[i] != NULL; i++) {
        json_t *v = json_object_get(json_object_get(r, "date-range"), range[i]);

        if (!json_is_string(v) || !is_rfc3339_utc(json_string_value(v)))
            fail_msg("date-range %s: want an RFC 3339 UTC date-time", range[i]);
    }
    pols = json_object_get(r, "policies");
    if (!json_is_array(pols) || json_array_size(pols) == 0)
        fail_msg("policies: want a non-empty array");
    json_array_foreach(pols, i, p) {
        json_t *po = json_object_get(p, "policy"), *su = json_object_get(p, "summary");
        json_t *det = json_object_get(p, "failure-details"), *f;
        const char *type;
        json_int_t failed, sum_failed = 0;
        size_t j;

        check_keys("policies[]", p, item, item_req);
        check_keys("policy", po, pol, pol_req);
        check_string("policy-type", json_object_get(po, "policy-type"));
        type = json_string_value(json_object_get(po, "policy-type"));
        if (!in_list(type, ptypes))
            fail_msg("policy-type: got \"%s\", want tlsa, sts or no-policy-found", type);
        check_string("policy-domain", json_object_get(po, "policy-domain"));
        if (strcmp(type, "sts") == 0) {
            /* An applied MTA-STS policy: its lines, and its mx patterns. */
            check_string_array("policy-string", json_object_get(po, "policy-string"));
            check_string_array("mx-host", json_object_get(po, "mx-host"));
        } else if (json_object_get(po, "policy-string") != NULL ||
                   json_object_get(po, "mx-host") != NULL) {
            fail_msg("policy %s: no policy applied, want no policy-string/mx-host", type);
        }
        check_keys("summary", su, sum, sum);
        (void)check_count("total-successful-session-count",
                          json_object_get(su, "total-successful-session-count"), 0);
        failed = check_count("total-failure-session-count",
                             json_object_get(su, "total-failure-session-count"), 0);
        if (det != NULL && (!json_is_array(det) || json_array_size(det) == 0))
            fail_msg("failure-details: want a non-empty array when present");
        json_array_foreach(det, j, f) {
            const char *k;
            json_t *v;

            check_keys("failure-details[]", f, fd, fd_req);
            check_string("result-type", json_object_get(f, "result-type"));
            if (!in_list(json_string_value(json_object_get(f, "result-type")), rtypes))
                fail_msg("result-type \"%s\" not in RFC 8460 4.4",
                         json_string_value(json_object_get(f, "result-type")));
            sum_failed += check_count("failed-session-count",
                                      json_object_get(f, "failed-session-count"), 1);
            json_object_foreach(f, k, v) {
                if (strcmp(k, "failed-session-count") == 0)
                    continue;
                check_string(k, v);
                if ((strcmp(k, "sending-mta-ip") == 0 || strcmp(k, "receiving-ip") == 0) &&
                    !is_ip(json_string_value(v)))
                    fail_msg("%s: \"%s\" is not an IP address", k, json_string_value(v));
            }
        }
        if (sum_failed != failed)
            fail_msg("policy %zu: failure-details add up to %lld, summary says %lld", i,
                     (long long)sum_failed, (long long)failed);
    }
}

/* ------------------------------------------------ semantic comparison */

static char *dump_sorted(json_t *v)
{
    return json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

static int cmp_dumped(const void *a, const void *b)
{
    char *da = dump_sorted(*(json_t *const *)a), *db = dump_sorted(*(json_t *const *)b);
    int c = strcmp(da, db);

    free(da);
    free(db);
    return c;
}

/* Sort the array at o[key] by content: RFC 8460 gives its elements no order. */
static void sort_array(json_t *o, const char *key)
{
    json_t *a = json_object_get(o, key), *sorted;
    json_t **v;
    size_t n = json_array_size(a);

    if (n < 2)
        return;
    v = calloc(n, sizeof(*v));
    assert_non_null(v);
    for (size_t i = 0; i < n; i++)
        v[i] = json_incref(json_array_get(a, i));
    qsort(v, n, sizeof(*v), cmp_dumped);
    sorted = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(sorted, v[i]);
    json_object_set_new(o, key, sorted);
    free(v);
}

static void canonical(json_t *r)
{
    size_t i;
    json_t *p;

    json_array_foreach(json_object_get(r, "policies"), i, p) sort_array(p, "failure-details");
    sort_array(r, "policies");
}

static json_t *load_golden(const char *name)
{
    const char *top = getenv("top_srcdir");
    char path[1024];
    json_error_t err;
    json_t *g;

    (void)snprintf(path, sizeof(path), "%s/tests/golden/report/unit/%s", top ? top : ".", name);
    g = json_load_file(path, 0, &err);
    if (g == NULL)
        fail_msg("golden file %s: %s (line %d)", path, err.text, err.line);
    return g;
}

static void expect_golden(const sts_report *r, const char *file)
{
    json_error_t err;
    json_t *got = json_loads(r->json, 0, &err), *want = load_golden(file);

    if (got == NULL)
        fail_msg("%s: report is not JSON: %s", r->domain, err.text);
    validate_rfc8460(got);
    validate_rfc8460(want); /* the golden file itself follows the RFC */
    canonical(got);
    canonical(want);
    if (!json_equal(got, want)) {
        char *g = json_dumps(got, JSON_INDENT(1) | JSON_SORT_KEYS);
        char *w = json_dumps(want, JSON_INDENT(1) | JSON_SORT_KEYS);

        fail_msg("%s: got\n%s\nwant (%s)\n%s", r->domain, g, file, w);
    }
    json_decref(got);
    json_decref(want);
}

static const sts_report *find(const sts_report_set *set, const char *domain)
{
    for (size_t i = 0; i < set->n; i++)
        if (strcmp(set->r[i].domain, domain) == 0)
            return &set->r[i];
    return NULL;
}

static const sts_report *must_find(const sts_report_set *set, const char *domain)
{
    const sts_report *r = find(set, domain);

    if (r == NULL) {
        fail_msg("no report for %s", domain);
        abort(); /* not reached: tells the compiler r is not NULL below */
    }
    return r;
}

static sts_report_set *build(const sts_report_opts *o, const spec *p, size_t n)
{
    sts_rsession *s = make_sessions(p, n);
    sts_report_set *set = NULL;
    sts_why why = { "" };
    sts_status st = sts_report_build(o, D, s, n, &set, &why);

    if (st != STS_OK)
        fail_msg("sts_report_build: got %s (%s), want ok", sts_status_name(st), why.text);
    /* The reports point to nothing in the sessions: free them now. */
    free(s);
    /* Every report this test file produces follows RFC 8460's field list. */
    for (size_t i = 0; i < set->n; i++) {
        json_error_t err;
        json_t *j = json_loads(set->r[i].json, 0, &err);

        if (j == NULL)
            fail_msg("%s: report is not JSON: %s", set->r[i].domain, err.text);
        validate_rfc8460(j);
        json_decref(j);
    }
    return set;
}

/* ---------------------------------------------------------------- tests */

static void test_golden_reports(void **state)
{
    static const char *const want[] = { "change.example", "enforce.example", "fetcherr.example",
                                        "testing.example" };
    sts_report_set *set;

    (void)state;
    set = build(&opts, day_specs, N_DAY_SPECS);
    if (set->n != 4)
        fail_msg("reports: got %zu, want 4 (change, enforce, fetcherr, testing)", set->n);
    for (size_t i = 0; i < 4; i++) {
        char file[64];

        if (strcmp(set->r[i].domain, want[i]) != 0)
            fail_msg("report %zu: got domain %s, want %s (sorted by domain)", i, set->r[i].domain,
                     want[i]);
        (void)snprintf(file, sizeof(file), "%s.json", want[i]);
        expect_golden(&set->r[i], file);
    }
    sts_report_set_free(set);
}

static void test_summary_figures_and_stats(void **state)
{
    sts_report_set *set;
    const sts_report *r;

    (void)state;
    set = build(&opts, day_specs, N_DAY_SPECS);
    r = must_find(set, "change.example");
    if (strcmp(r->modes, "testing,enforce") != 0 || r->n_policies != 2)
        fail_msg("change.example modes: got '%s' (%zu), want 'testing,enforce' (2)", r->modes,
                 r->n_policies);
    r = must_find(set, "testing.example");
    if (r->successes != 1 || r->failures != 3 || r->by_type[1] != 3)
        fail_msg("testing.example: got %llu ok, %llu failed (%llu mismatch), want 1, 3, 3",
                 (unsigned long long)r->successes, (unsigned long long)r->failures,
                 (unsigned long long)r->by_type[1]);
    if (strcmp(sts_report_result_name(1), "certificate-host-mismatch") != 0)
        fail_msg("result type 1: got %s", sts_report_result_name(1));
    r = must_find(set, "fetcherr.example");
    if (strcmp(r->modes, "no-policy-found") != 0 || r->by_type[8] != 2)
        fail_msg("fetcherr.example: got modes '%s', %llu fetch errors, want no-policy-found, 2",
                 r->modes, (unsigned long long)r->by_type[8]);
    r = must_find(set, "enforce.example");
    if (r->begin != D || r->end != D + STS_REPORT_DAY - 1)
        fail_msg("date range: got %lld..%lld, want %lld..%lld", (long long)r->begin,
                 (long long)r->end, D, D + STS_REPORT_DAY - 1);
    if (find(set, "none.example") != NULL || find(set, "unknown.example") != NULL ||
        find(set, "old.example") != NULL)
        fail_msg("none/unknown/old.example must get no report");
    /* domains_no_policy: none.example only; unknown.example's policy is
     * unknown (unattributed), not known to be absent. */
    if (set->stats.in_day != 19 || set->stats.outside_day != 3 || set->stats.unattributed != 1 ||
        set->stats.no_policy != 1 || set->stats.domains_no_policy != 1 ||
        set->stats.unknown_type != 0)
        fail_msg("stats: got in_day %llu outside %llu unattributed %llu no_policy %llu "
                 "domains_no_policy %zu unknown_type %llu, want 19 3 1 1 1 0",
                 (unsigned long long)set->stats.in_day,
                 (unsigned long long)set->stats.outside_day,
                 (unsigned long long)set->stats.unattributed,
                 (unsigned long long)set->stats.no_policy, set->stats.domains_no_policy,
                 (unsigned long long)set->stats.unknown_type);
    sts_report_set_free(set);
}

/* An enforce policy that matches none of the domain's MX hosts (decision
 * tempfail-no-mx): a policy was found and applied, so RFC 8460 section 4
 * wants it reported as policy-type "sts" with its policy-string and
 * mx-host, the failures as validation-failure without an MX host; and an
 * unjoined attempt next to it belongs to that policy. */
static void test_no_mx_match_is_reported_under_its_policy(void **state)
{
#define NOMX_MX "mx1.nomx.example,*.backup.nomx.example"
#define NOMX_WHY "enforce policy matches none of the domain's MX hosts: deferred"
    static const spec nomx[] = {
        { D + 2 * H, "X1", "nomx.example", K_ENGINE_POLICY, STS_MODE_ENFORCE, NOMX_MX, 604800,
          "n1", false, "validation-failure", "", "", NOMX_WHY },
        { D + 3 * H, "X2", "nomx.example", K_ENGINE_POLICY, STS_MODE_ENFORCE, NOMX_MX, 604800,
          "n1", false, "validation-failure", "", "", NOMX_WHY },
        { D + 4 * H, "X3", "nomx.example", K_UNJOINED, 0, "", -1, "", false,
          "starttls-not-supported", "mx.nomx.example", "192.0.2.60",
          "TLS is required, but was not offered by host mx.nomx.example[192.0.2.60]" },
    };
#undef NOMX_MX
#undef NOMX_WHY
    sts_report_set *set;
    const sts_report *r;

    (void)state;
    set = build(&opts, nomx, sizeof(nomx) / sizeof(nomx[0]));
    if (set->n != 1)
        fail_msg("reports: got %zu, want 1 (nomx.example)", set->n);
    r = must_find(set, "nomx.example");
    expect_golden(r, "nomx.example.json");
    if (strcmp(r->modes, "enforce") != 0 || r->n_policies != 1 || r->failures != 3 ||
        r->by_type[RT_INDEX_VALIDATION] != 2 || r->by_type[0] != 1)
        fail_msg("nomx.example: got modes '%s' (%zu), %llu failures (%llu validation-failure), "
                 "want 'enforce' (1), 3 (2)",
                 r->modes, r->n_policies, (unsigned long long)r->failures,
                 (unsigned long long)r->by_type[RT_INDEX_VALIDATION]);
    if (set->stats.unattributed != 0)
        fail_msg("unattributed: got %llu, want 0", (unsigned long long)set->stats.unattributed);
    sts_report_set_free(set);
}

static void test_input_order_does_not_matter(void **state)
{
    spec rev[N_DAY_SPECS];
    sts_report_set *a, *b;

    (void)state;
    for (size_t i = 0; i < N_DAY_SPECS; i++)
        rev[i] = day_specs[N_DAY_SPECS - 1 - i];
    a = build(&opts, day_specs, N_DAY_SPECS);
    b = build(&opts, rev, N_DAY_SPECS);
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->r[i].json, b->r[i].json) != 0)
            fail_msg("%s: reversed input gives\n%s\nwant\n%s", a->r[i].domain, b->r[i].json,
                     a->r[i].json);
    sts_report_set_free(a);
    sts_report_set_free(b);
}

static json_t *first_detail(const sts_report *r)
{
    json_t *j = json_loads(r->json, 0, NULL);
    json_t *d = json_incref(json_array_get(
        json_object_get(json_array_get(json_object_get(j, "policies"), 0), "failure-details"), 0));

    json_decref(j);
    return d;
}

static void test_sending_ip_by_family(void **state)
{
    static const spec v6[] = {
        { D + H, "S1", "six.example", K_POLICY, STS_MODE_TESTING, "mx.six.example", 86400, "s",
          false, "certificate-not-trusted", "mx.six.example", "2001:db8:6::1", "" },
    };
    sts_report_opts o4 = opts, none = opts;
    sts_report_set *set;
    json_t *d;

    (void)state;
    o4.sending_ips = "192.0.2.10";
    set = build(&o4, v6, 1);
    d = first_detail(&set->r[0]);
    if (json_object_get(d, "sending-mta-ip") != NULL)
        fail_msg("IPv6 session with only an IPv4 sending address: got sending-mta-ip %s, want none",
                 json_string_value(json_object_get(d, "sending-mta-ip")));
    json_decref(d);
    sts_report_set_free(set);

    none.sending_ips = NULL;
    set = build(&none, v6, 1);
    d = first_detail(&set->r[0]);
    if (json_object_get(d, "sending-mta-ip") != NULL || json_object_get(d, "failure-reason-code"))
        fail_msg("no ReportSendingIP, no MTA text: want neither sending-mta-ip nor reason");
    if (strcmp(json_string_value(json_object_get(d, "receiving-ip")), "2001:db8:6::1") != 0)
        fail_msg("receiving-ip: want 2001:db8:6::1");
    json_decref(d);
    sts_report_set_free(set);
}

static void test_cut_mx_list_and_unknown_max_age(void **state)
{
    static const spec cut[] = {
        { D + H, "M1", "many.example", K_POLICY, STS_MODE_ENFORCE,
          "a.many.example,b.many.example,...", -1, "m", true, NULL, "a.many.example", "192.0.2.1",
          "" },
    };
    sts_report_set *set;
    json_t *j, *want;

    (void)state;
    set = build(&opts, cut, 1);
    j = json_loads(set->r[0].json, 0, NULL);
    validate_rfc8460(j);
    want = json_pack("{s:s, s:[s,s,s,s], s:s, s:[s,s]}", "policy-type", "sts", "policy-string",
                     "version: STSv1", "mode: enforce", "mx: a.many.example", "mx: b.many.example",
                     "policy-domain", "many.example", "mx-host", "a.many.example",
                     "b.many.example");
    if (!json_equal(json_object_get(json_array_get(json_object_get(j, "policies"), 0), "policy"),
                    want))
        fail_msg("cut mx list: got %s", set->r[0].json);
    json_decref(want);
    json_decref(j);
    sts_report_set_free(set);
}

static void test_unknown_result_type_is_validation_failure(void **state)
{
    static const spec odd[] = {
        { D + H, "V1", "odd.example", K_POLICY, STS_MODE_TESTING, "mx.odd.example", 86400, "o",
          false, "something-new", "mx.odd.example", "192.0.2.5", "" },
        { D + H, "V2", "odd.example", K_POLICY, STS_MODE_TESTING, "mx.odd.example", 86400, "o",
          false, NULL, "mx.odd.example", "192.0.2.5", "" },
    };
    sts_report_set *set;
    json_t *d;

    (void)state;
    set = build(&opts, odd, 2);
    d = first_detail(&set->r[0]);
    if (strcmp(json_string_value(json_object_get(d, "result-type")), "validation-failure") != 0 ||
        json_integer_value(json_object_get(d, "failed-session-count")) != 2)
        fail_msg("unknown result types: got %s, want 2 x validation-failure", set->r[0].json);
    if (set->stats.unknown_type != 2)
        fail_msg("unknown_type: got %llu, want 2", (unsigned long long)set->stats.unknown_type);
    json_decref(d);
    sts_report_set_free(set);
}

static void test_empty_input_and_bad_options(void **state)
{
    sts_report_set *set = NULL;
    sts_report_opts bad = opts;
    sts_why why = { "" };

    (void)state;
    assert_int_equal(sts_report_build(&opts, D, NULL, 0, &set, &why), STS_OK);
    assert_int_equal(set->n, 0);
    sts_report_set_free(set);
    bad.sending_ips = "192.0.2.10,not-an-ip";
    assert_int_equal(sts_report_build(&bad, D, NULL, 0, &set, &why), STS_PERMFAIL);
    if (strstr(why.text, "not-an-ip") == NULL)
        fail_msg("why: got '%s', want the bad address quoted", why.text);
    assert_null(set);
    bad = opts;
    bad.submitter = "";
    assert_int_equal(sts_report_build(&bad, D, NULL, 0, &set, &why), STS_PERMFAIL);
    bad = opts;
    bad.host_id = "two words";
    assert_int_equal(sts_report_build(&bad, D, NULL, 0, &set, &why), STS_PERMFAIL);
    bad.host_id = NULL;
    assert_int_equal(sts_report_build(&bad, D, NULL, 0, &set, &why), STS_PERMFAIL);
    assert_int_equal(sts_report_build(&opts, D + 1, NULL, 0, &set, &why), STS_PERMFAIL);
}

static void test_parse_day(void **state)
{
    static const struct {
        const char *in;
        bool ok;
        int64_t want;
    } cases[] = {
        { "2026-11-27", true, D },
        { "1970-01-01", true, 0 },
        { "2024-02-29", true, 1709164800 },
        { "2000-02-29", true, 951782400 },
        { "2100-02-29", false, 0 },
        { "2025-02-29", false, 0 },
        { "2026-04-31", false, 0 },
        { "2026-13-01", false, 0 },
        { "2026-00-10", false, 0 },
        { "2026-1-10", false, 0 },
        { "2026-11-27T00:00:00Z", false, 0 },
        { "1969-12-31", false, 0 },
        { "", false, 0 },
        { "yesterday", false, 0 },
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t day = -1;
        sts_why why = { "" };
        sts_status st = sts_report_parse_day(cases[i].in, &day, &why);

        if ((st == STS_OK) != cases[i].ok)
            fail_msg("parse_day('%s'): got %s (%s), want %s", cases[i].in, sts_status_name(st),
                     why.text, cases[i].ok ? "ok" : "permfail");
        if (cases[i].ok && day != cases[i].want)
            fail_msg("parse_day('%s'): got %lld, want %lld", cases[i].in, (long long)day,
                     (long long)cases[i].want);
    }
}

static void test_report_id_is_stable_and_distinct(void **state)
{
    char a[STS_REPORT_ID_MAX + 1], b[STS_REPORT_ID_MAX + 1], c[STS_REPORT_ID_MAX + 1];
    char tiny[8];

    (void)state;
    assert_int_equal(sts_report_id("sender.example", "mta1", "a.example", D, a, sizeof(a)),
                     STS_OK);
    assert_int_equal(sts_report_id("sender.example", "mta1", "a.example", D, b, sizeof(b)),
                     STS_OK);
    assert_string_equal(a, b);
    /* RFC 8460 4.1: shaped like an RFC 5322 msg-id (id-left "@" id-right). */
    assert_string_equal(a, "2026-11-27_a.example_mta1@sender.example");
    assert_int_equal(sts_report_id("sender.example", "mta1", "a.example", D + STS_REPORT_DAY, c,
                                   sizeof(c)),
                     STS_OK);
    assert_string_not_equal(a, c);
    /* Two hosts of one submitter: two ids (issue 11: receivers de-duplicate
     * by id). */
    assert_int_equal(sts_report_id("sender.example", "mta2", "a.example", D, c, sizeof(c)),
                     STS_OK);
    assert_string_not_equal(a, c);
    assert_int_equal(sts_report_id("other.example", "mta1", "a.example", D, c, sizeof(c)),
                     STS_OK);
    assert_string_not_equal(a, c);
    assert_int_equal(sts_report_id("sender.example", "mta1", "a.example", D, tiny, sizeof(tiny)),
                     STS_PERMFAIL);
    assert_true(sts_report_host_id_valid("mta1.sender.example"));
    assert_false(sts_report_host_id_valid(""));
    assert_false(sts_report_host_id_valid("a..b"));
    assert_false(sts_report_host_id_valid("a_b"));
    assert_false(sts_report_host_id_valid("a@b"));
}

/* RFC 8461 5: mode none is "as if no policy"; a domain retiring MTA-STS
 * hears nothing, and its sessions do not count elsewhere. */
static void test_mode_none_is_never_reported(void **state)
{
    static const spec none[] = {
        { D + H, "Z1", "retired.example", K_POLICY, STS_MODE_NONE, "", 86400, "z", false,
          "starttls-not-supported", "mx.retired.example", "192.0.2.40", "" },
        { D + 2 * H, "Z2", "retired.example", K_UNJOINED, 0, "", -1, "", false,
          "certificate-not-trusted", "mx.retired.example", "192.0.2.40", "" },
    };
    sts_report_opts np = opts;
    sts_report_set *set;

    (void)state;
    np.no_policy_reports = true;
    set = build(&np, none, 2);
    if (set->n != 0)
        fail_msg("mode none: got %zu reports (%s), want none", set->n, set->r[0].json);
    if (set->stats.mode_none != 2)
        fail_msg("stats.mode_none: got %llu, want 2", (unsigned long long)set->stats.mode_none);
    sts_report_set_free(set);
}

/* ReportNoPolicy: a domain without MTA-STS gets a no-policy-found report
 * with its sessions (rsend drops it unless the domain has a TLSRPT record);
 * without the switch, none. */
static void test_no_policy_found_report(void **state)
{
    static const spec nop[] = {
        { D + H, "P1", "plain.example", K_NONE, 0, "", -1, "", true, NULL, "mx.plain.example",
          "192.0.2.41", "" },
        { D + 2 * H, "P2", "plain.example", K_NONE, 0, "", -1, "", false, "starttls-not-supported",
          "mx.plain.example", "192.0.2.41", "" },
    };
    sts_report_opts np = opts;
    sts_report_set *set;
    json_t *j, *pol;

    (void)state;
    set = build(&opts, nop, 2);
    if (set->n != 0 || set->stats.domains_no_policy != 1)
        fail_msg("no switch: got %zu reports, %zu no-policy domains; want 0 and 1", set->n,
                 set->stats.domains_no_policy);
    sts_report_set_free(set);
    np.no_policy_reports = true;
    set = build(&np, nop, 2);
    if (set->n != 1 || set->r[0].successes != 1 || set->r[0].failures != 1 ||
        strcmp(set->r[0].modes, "no-policy-found") != 0)
        fail_msg("ReportNoPolicy: got %zu reports, want one no-policy-found with 1 + 1", set->n);
    j = json_loads(set->r[0].json, 0, NULL);
    pol = json_object_get(json_array_get(json_object_get(j, "policies"), 0), "policy");
    if (strcmp(json_string_value(json_object_get(pol, "policy-type")), "no-policy-found") != 0)
        fail_msg("policy-type: got %s", set->r[0].json);
    json_decref(j);
    sts_report_set_free(set);
}

/* RFC 8461 6: a refresh that failed while a cached policy applied is an
 * sts-policy-fetch-error under that policy; the deliveries still count. */
static void test_refresh_failure_under_cached_policy(void **state)
{
    static const spec rf[] = {
        { D + H, "R1", "cached.example", K_ENGINE_POLICY, STS_MODE_ENFORCE, "mx.cached.example",
          86400, "c1", false, "sts-policy-fetch-error", "", "", FETCH404 },
        { D + H, "R1", "cached.example", K_POLICY, STS_MODE_ENFORCE, "mx.cached.example", 86400,
          "c1", true, NULL, "mx.cached.example", "192.0.2.42", "" },
    };
    sts_report_set *set;
    json_t *d;

    (void)state;
    set = build(&opts, rf, 2);
    if (set->n != 1 || set->r[0].n_policies != 1 || set->r[0].successes != 1 ||
        set->r[0].failures != 1)
        fail_msg("refresh failure: got %s, want one sts entry with 1 success, 1 failure",
                 set->n > 0 ? set->r[0].json : "no report");
    d = first_detail(&set->r[0]);
    if (strcmp(json_string_value(json_object_get(d, "result-type")), "sts-policy-fetch-error") != 0 ||
        json_object_get(d, "sending-mta-ip") != NULL)
        fail_msg("refresh failure detail: got %s", set->r[0].json);
    json_decref(d);
    sts_report_set_free(set);
}

/* The policy-string is the policy as published when the decision log had
 * its text: every line kept, in its order, mx-host from its mx lines. */
static void test_policy_string_as_published(void **state)
{
    static const spec pub[] = {
        { D + H, "Q1", "pub.example", K_POLICY, STS_MODE_TESTING, "b.pub.example,...", 86400, "q",
          true, NULL, "a.pub.example", "192.0.2.43", "" },
    };
    sts_rsession s;
    sts_report_set *set = NULL;
    sts_why why = { "" };
    json_t *j, *want;

    (void)state;
    make_session(&pub[0], &s);
    s.policy_text = "version: STSv1\r\nmode: testing\r\nmx: b.pub.example\r\n"
                    "mx: *.a.pub.example\r\nmax_age: 86400\r\nextension: kept\r\n\r\n";
    assert_int_equal(sts_report_build(&opts, D, &s, 1, &set, &why), STS_OK);
    j = json_loads(set->r[0].json, 0, NULL);
    want = json_pack("{s:s, s:[s,s,s,s,s,s], s:s, s:[s,s]}", "policy-type", "sts",
                     "policy-string", "version: STSv1", "mode: testing", "mx: b.pub.example",
                     "mx: *.a.pub.example", "max_age: 86400", "extension: kept", "policy-domain",
                     "pub.example", "mx-host", "b.pub.example", "*.a.pub.example");
    if (!json_equal(json_object_get(json_array_get(json_object_get(j, "policies"), 0), "policy"),
                    want))
        fail_msg("policy as published: got %s", set->r[0].json);
    json_decref(want);
    json_decref(j);
    sts_report_set_free(set);
}

static const char *fake_route(void *arg, const char *rip)
{
    (void)arg;
    return strchr(rip, ':') != NULL ? "2001:db8::99" : "192.0.2.99";
}

/* Without ReportSendingIP the local address towards the receiving IP. */
static void test_sending_ip_from_route(void **state)
{
    static const spec v6[] = {
        { D + H, "S2", "six.example", K_POLICY, STS_MODE_TESTING, "mx.six.example", 86400, "s",
          false, "certificate-not-trusted", "mx.six.example", "2001:db8:6::1", "Untrusted TLS connection" },
    };
    sts_report_opts o = opts;
    sts_report_set *set;
    json_t *d;

    (void)state;
    o.sending_ips = NULL;
    o.sending_ip = fake_route;
    set = build(&o, v6, 1);
    d = first_detail(&set->r[0]);
    if (strcmp(json_string_value(json_object_get(d, "sending-mta-ip")), "2001:db8::99") != 0 ||
        strcmp(json_string_value(json_object_get(d, "failure-reason-code")),
               "Untrusted TLS connection") != 0)
        fail_msg("route: got %s, want sending-mta-ip 2001:db8::99 and the reason", set->r[0].json);
    json_decref(d);
    sts_report_set_free(set);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_reports),
        cmocka_unit_test(test_summary_figures_and_stats),
        cmocka_unit_test(test_no_mx_match_is_reported_under_its_policy),
        cmocka_unit_test(test_input_order_does_not_matter),
        cmocka_unit_test(test_sending_ip_by_family),
        cmocka_unit_test(test_cut_mx_list_and_unknown_max_age),
        cmocka_unit_test(test_unknown_result_type_is_validation_failure),
        cmocka_unit_test(test_empty_input_and_bad_options),
        cmocka_unit_test(test_parse_day),
        cmocka_unit_test(test_report_id_is_stable_and_distinct),
        cmocka_unit_test(test_mode_none_is_never_reported),
        cmocka_unit_test(test_no_policy_found_report),
        cmocka_unit_test(test_refresh_failure_under_cached_policy),
        cmocka_unit_test(test_policy_string_as_published),
        cmocka_unit_test(test_sending_ip_from_route),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
