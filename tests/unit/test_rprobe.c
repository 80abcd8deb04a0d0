/*
 * test_rprobe.c - MX probe records joined to the log reader's sessions
 * (src/tlsrpt/rprobe.h): which sessions a probe turns into failures, with
 * which result type, and where the MTA's own log wins.  Each row is a
 * decision log + Postfix log of one delivery, and probe records.  Then
 * the streaming join: a probe logged hours after the session it judges,
 * loaded by the pass ahead of sts_rlog_read_files.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "unit_run.h"
#include "unit_tmp.h"

#include "tlsrpt/rlog.h"
#include "tlsrpt/rprobe.h"

#define NOW 1795874400 /* 2026-11-28T14:00:00Z */
#define PF "Nov 28 13:49:25 mta "
#define TLS_TAIL ": TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)"

#define DEC(mode, action, mx) \
    "{\"time\":\"2026-11-28T13:49:24Z\",\"queue_id\":\"189C8A8442C\",\"domain\":\"d.test\"," \
    "\"result\":\"policy\",\"mode\":\"" mode "\",\"policy_id\":\"p1\",\"action\":\"" action "\"," \
    "\"reason\":\"r\",\"mx\":\"" mx "\",\"max_age\":86400,\"from_cache\":false}"
#define TESTING DEC("testing", "accept", "mx.d.test")
#define TLS_LINE(level) \
    PF "postfix/smtp[30533]: " level " TLS connection established to " \
       "mx.d.test[192.0.2.25]:25" TLS_TAIL
#define TLS_LINE_HOST(level, host) \
    PF "postfix/smtp[30533]: " level " TLS connection established to " \
       host "[192.0.2.26]:25" TLS_TAIL
#define SENT_TO(host, ip) \
    PF "postfix/smtp[30533]: 189C8A8442C: to=<bob@d.test>, relay=" host "[" ip "]:25, " \
       "delay=0.11, delays=0.01/0.01/0.04/0.05, dsn=2.0.0, status=sent (250 2.0.0 Ok)"
#define SENT SENT_TO("mx.d.test", "192.0.2.25")
#define PROBE_AT(time, dom, id, mx, rt) \
    "{\"time\":\"" time "\",\"record\":\"probe\",\"domain\":\"" dom "\",\"policy_id\":\"" id \
    "\",\"mode\":\"testing\",\"mx\":\"" mx "\",\"in_policy\":true,\"ip\":\"192.0.2.25\"," \
    "\"result_type\":\"" rt "\",\"reason\":\"certificate not valid for " mx "\"}"
#define PROBE(rt) PROBE_AT("2026-11-28T13:49:30Z", "d.test", "p1", "mx.d.test", rt)

typedef struct rp_case {
    const char *name;
    const char *const *lines;
    const char *want_rt; /* NULL: success */
    const char *detail;  /* substring of the detail, NULL: not checked */
    uint64_t changed, outside;
} rp_case;

#define LINES(...) ((const char *const[]){ __VA_ARGS__, NULL })

static const rp_case cases[] = {
    { "trusted_session_with_mismatch_probe_is_mismatch",
      LINES(TESTING, TLS_LINE("Trusted"), SENT, PROBE("certificate-host-mismatch")),
      "certificate-host-mismatch", "MX probe at 2026-11-28T13:49:30Z: certificate not valid",
      1, 0 },
    { "probe_read_before_the_session_applies_too",
      LINES(PROBE("certificate-expired"), TESTING, TLS_LINE("Trusted"), SENT),
      "certificate-expired", NULL, 1, 0 },
    { "probe_not_trusted", LINES(TESTING, TLS_LINE("Trusted"), SENT,
                                 PROBE("certificate-not-trusted")),
      "certificate-not-trusted", NULL, 1, 0 },
    { "probe_no_starttls", LINES(TESTING, TLS_LINE("Trusted"), SENT,
                                 PROBE("starttls-not-supported")),
      "starttls-not-supported", NULL, 1, 0 },
    { "success_probe_keeps_success", LINES(TESTING, TLS_LINE("Trusted"), SENT, PROBE("success")),
      NULL, NULL, 0, 0 },
    { "unreachable_probe_is_no_verdict",
      LINES(TESTING, TLS_LINE("Trusted"), SENT, PROBE("unreachable")), NULL, NULL, 0, 0 },
    { "verified_session_log_wins",
      LINES(DEC("enforce", "route-enforce", "mx.d.test"), TLS_LINE("Verified"), SENT,
            PROBE("certificate-host-mismatch")),
      NULL, NULL, 0, 0 },
    { "untrusted_session_log_wins_over_a_name_verdict",
      LINES(TESTING, TLS_LINE("Untrusted"), SENT, PROBE("certificate-host-mismatch")),
      "certificate-not-trusted", NULL, 0, 0 },
    { "unexplained_untrusted_session_takes_probe_expiry",
      LINES(TESTING, TLS_LINE("Untrusted"), SENT, PROBE("certificate-expired")),
      "certificate-expired", "MX probe at", 1, 0 },
    { "explained_untrusted_session_keeps_its_reason",
      LINES(TESTING,
            PF "postfix/smtp[30533]: certificate verification failed for "
               "mx.d.test[192.0.2.25]:25: untrusted issuer /CN=x",
            TLS_LINE("Untrusted"), SENT, PROBE("certificate-expired")),
      "certificate-not-trusted", "untrusted issuer", 0, 0 },
    { "probe_of_another_domain_does_not_apply",
      LINES(TESTING, TLS_LINE("Trusted"), SENT,
            PROBE_AT("2026-11-28T13:49:30Z", "e.test", "p1", "mx.d.test",
                     "certificate-host-mismatch")),
      NULL, NULL, 0, 0 },
    { "probe_of_another_policy_id_does_not_apply",
      LINES(TESTING, TLS_LINE("Trusted"), SENT,
            PROBE_AT("2026-11-28T13:49:30Z", "d.test", "p0", "mx.d.test",
                     "certificate-host-mismatch")),
      NULL, NULL, 0, 0 },
    { "probe_of_another_mx_does_not_apply",
      LINES(TESTING, TLS_LINE("Trusted"), SENT,
            PROBE_AT("2026-11-28T13:49:30Z", "d.test", "p1", "mx2.d.test",
                     "certificate-host-mismatch")),
      NULL, NULL, 0, 0 },
    { "probe_a_day_away_does_not_apply",
      LINES(TESTING, TLS_LINE("Trusted"), SENT,
            PROBE_AT("2026-11-29T13:49:30Z", "d.test", "p1", "mx.d.test",
                     "certificate-host-mismatch")),
      NULL, NULL, 0, 0 },
    { "nearest_probe_decides",
      LINES(TESTING, TLS_LINE("Trusted"), SENT,
            PROBE_AT("2026-11-28T07:00:00Z", "d.test", "p1", "mx.d.test",
                     "certificate-host-mismatch"),
            PROBE_AT("2026-11-28T13:00:00Z", "d.test", "p1", "mx.d.test", "success")),
      NULL, NULL, 0, 0 },
    { "mx_name_compared_case_insensitively",
      LINES(TESTING, TLS_LINE("Trusted"), SENT,
            PROBE_AT("2026-11-28T13:49:30Z", "D.test", "p1", "MX.d.test.",
                     "certificate-expired")),
      "certificate-expired", NULL, 1, 0 },
    { "mx_outside_policy_without_probe_is_validation_failure",
      LINES(TESTING, TLS_LINE_HOST("Trusted", "mail.elsewhere.test"),
            SENT_TO("mail.elsewhere.test", "192.0.2.26")),
      "validation-failure", "matches none of the policy's mx patterns", 0, 1 },
    { "mx_inside_wildcard_policy_stays_success",
      LINES(DEC("testing", "accept", "*.d.test"), TLS_LINE("Trusted"), SENT), NULL, NULL, 0, 0 },
    { "mode_none_not_judged",
      LINES(DEC("none", "accept", ""), TLS_LINE_HOST("Trusted", "mail.elsewhere.test"),
            SENT_TO("mail.elsewhere.test", "192.0.2.26"), PROBE("certificate-host-mismatch")),
      NULL, NULL, 0, 0 },
};

static void run_case(void **state)
{
    const rp_case *c = *state;
    const sts_rsession *s;
    sts_rprobe_stats st;
    sts_rlog *r;
    size_t n;

    assert_int_equal(sts_rlog_new(NULL, NULL, &r), STS_OK);
    sts_rlog_set_now(r, NOW);
    for (size_t i = 0; c->lines[i] != NULL; i++)
        if (sts_rlog_feed_line(r, c->lines[i], strlen(c->lines[i]), "test", i + 1) ==
            STS_RLOG_MALFORMED)
            fail_msg("%s: line %zu malformed", c->name, i + 1);
    assert_int_equal(sts_rlog_sessions(r, &s, &n), STS_OK);
    if (n != 1)
        fail_msg("%s: got %zu sessions, want 1", c->name, n);
    if (c->want_rt == NULL ? !s[0].success
                           : (s[0].success || strcmp(s[0].result_type, c->want_rt) != 0))
        fail_msg("%s: got %s, want %s", c->name,
                 s[0].success ? "success" : s[0].result_type,
                 c->want_rt != NULL ? c->want_rt : "success");
    if (c->detail != NULL && strstr(s[0].detail, c->detail) == NULL)
        fail_msg("%s: got detail \"%s\", want \"%s\" in it", c->name, s[0].detail, c->detail);
    st = sts_rlog_probe_stats(r);
    if (st.changed != c->changed || st.outside != c->outside)
        fail_msg("%s: got changed %llu outside %llu, want %llu %llu", c->name,
                 (unsigned long long)st.changed, (unsigned long long)st.outside,
                 (unsigned long long)c->changed, (unsigned long long)c->outside);
    sts_rlog_free(r);
}

static void test_unknown_record_kind_ignored(void **state)
{
    static const char line[] = "{\"time\":\"2026-11-28T13:49:30Z\",\"record\":\"future\"}";
    static const char bad[] = "{\"time\":\"2026-11-28T13:49:30Z\",\"record\":\"probe\","
                              "\"domain\":\"d.test\",\"mx\":\"mx.d.test\","
                              "\"result_type\":\"maybe\"}";
    sts_rlog *r;

    (void)state;
    assert_int_equal(sts_rlog_new(NULL, NULL, &r), STS_OK);
    assert_int_equal(sts_rlog_feed_line(r, line, strlen(line), "t", 1), STS_RLOG_IGNORED);
    assert_int_equal(sts_rlog_feed_line(r, bad, strlen(bad), "t", 2), STS_RLOG_MALFORMED);
    sts_rlog_free(r);
}

/* ---------------------------------------------------------- streaming */

#define PF_LATER "Nov 28 14:30:00 mta "
#define PROBE_LATE PROBE_AT("2026-11-28T15:00:00Z", "d.test", "p1", "mx.d.test", \
                            "certificate-host-mismatch")

static void write_text(const char *path, const char *const *lines)
{
    FILE *fh = fopen(path, "w");

    assert_non_null(fh);
    for (size_t i = 0; lines[i] != NULL; i++)
        assert_true(fputs(lines[i], fh) >= 0 && fputc('\n', fh) != EOF);
    assert_int_equal(fclose(fh), 0);
}

typedef struct got {
    size_t n;
    sts_rsession s; /* the last one */
} got;

static void collect(void *arg, const sts_rsession *s)
{
    got *g = arg;

    g->n++;
    g->s = *s;
}

static void count_warning(void *arg, const char *msg)
{
    (void)msg;
    (*(unsigned *)arg)++;
}

/* The mail log moves on (14:30) before the decision log's probe (15:00):
 * merged by time, the session is given out before the join reads the
 * probe; the pass ahead has it already.  Read by the join alone (as
 * from standard input) it comes too late for that session. */
static void test_streaming_probe_logged_after_the_session(void **state)
{
    static const char *const decisions[] = {
        TESTING, PROBE_LATE,
        "{\"time\":\"2026-11-28T15:00:01Z\",\"record\":\"probe\",\"domain\":\"d.test\"}",
        "{\"time\":\"2026-11-28T15:00:02Z\",\"record\":\"future\",\"x\":1}", NULL,
    };
    static const char *const mail[] = {
        TLS_LINE("Trusted"), SENT,
        PF_LATER "postfix/qmgr[30500]: 2AB3C4D5E6F: removed", NULL,
    };
    char dpath[256], mpath[256];
    const char *paths[2];
    sts_why why = { "" };
    sts_rprobe_stats st;
    unsigned warnings = 0;
    got g;
    sts_rlog *r;

    (void)state;
    assert_true(unit_mkstemp(dpath, sizeof(dpath), "test_rprobe"));
    assert_true(unit_mkstemp(mpath, sizeof(mpath), "test_rprobe"));
    write_text(dpath, decisions);
    write_text(mpath, mail);
    paths[0] = mpath;
    paths[1] = dpath;

    memset(&g, 0, sizeof(g));
    assert_int_equal(sts_rlog_new(count_warning, &warnings, &r), STS_OK);
    sts_rlog_set_now(r, NOW);
    sts_rlog_set_sink(r, collect, &g);
    assert_int_equal(sts_rlog_read_files(r, paths, 2, &why), STS_OK);
    assert_int_equal(sts_rlog_finish(r), STS_OK);
    st = sts_rlog_probe_stats(r);
    if (g.n != 1 || g.s.success || strcmp(g.s.result_type, "certificate-host-mismatch") != 0)
        fail_msg("pass ahead: got %zu sessions, %s, want 1, certificate-host-mismatch", g.n,
                 g.n == 0 || g.s.success ? "success" : g.s.result_type);
    /* Read twice, kept once; the bad record warned once, by the join. */
    if (st.records != 1 || st.changed != 1 || warnings != 1 ||
        sts_rlog_get_stats(r)->malformed_lines != 1 || sts_rlog_get_stats(r)->ignored_lines != 2)
        fail_msg("pass ahead: got records %llu changed %llu warnings %u malformed %llu "
                 "ignored %llu, want 1 1 1 1 2",
                 (unsigned long long)st.records, (unsigned long long)st.changed, warnings,
                 (unsigned long long)sts_rlog_get_stats(r)->malformed_lines,
                 (unsigned long long)sts_rlog_get_stats(r)->ignored_lines);
    sts_rlog_free(r);

    /* Without the pass ahead (lines fed in time order, as a pipe gives
     * them): the probe applies only to sessions after it. */
    memset(&g, 0, sizeof(g));
    assert_int_equal(sts_rlog_new(NULL, NULL, &r), STS_OK);
    sts_rlog_set_now(r, NOW);
    sts_rlog_set_sink(r, collect, &g);
    {
        static const char *const merged[] = { TESTING, TLS_LINE("Trusted"), SENT,
                                              PF_LATER "postfix/qmgr[30500]: 2AB3C4D5E6F: removed",
                                              PROBE_LATE, NULL };

        for (size_t i = 0; merged[i] != NULL; i++)
            (void)sts_rlog_feed_line(r, merged[i], strlen(merged[i]), "-", i + 1);
    }
    assert_int_equal(sts_rlog_finish(r), STS_OK);
    st = sts_rlog_probe_stats(r);
    if (g.n != 1 || !g.s.success || st.records != 1 || st.changed != 0)
        fail_msg("in-stream probe: got %zu sessions, %s, records %llu changed %llu, want 1, "
                 "success, 1, 0", g.n, g.s.success ? "success" : g.s.result_type,
                 (unsigned long long)st.records, (unsigned long long)st.changed);
    sts_rlog_free(r);

    /* A report window the probe cannot reach: counted, not kept. */
    memset(&g, 0, sizeof(g));
    assert_int_equal(sts_rlog_new(NULL, NULL, &r), STS_OK);
    sts_rlog_set_now(r, NOW);
    sts_rlog_set_window(r, NOW - 10 * 86400, NOW - 3 * 86400);
    sts_rlog_set_sink(r, collect, &g);
    assert_int_equal(sts_rlog_read_files(r, paths, 2, &why), STS_OK);
    assert_int_equal(sts_rlog_finish(r), STS_OK);
    st = sts_rlog_probe_stats(r);
    if (st.records != 1 || st.far != 1 || g.n != 0)
        fail_msg("far probe: got records %llu far %llu sessions %zu, want 1 1 0",
                 (unsigned long long)st.records, (unsigned long long)st.far, g.n);
    sts_rlog_free(r);
    (void)unlink(dpath);
    (void)unlink(mpath);
}

/* Probes without a verdict are counted, never kept: a session with only
 * an unreachable probe near it takes the nearest one with a verdict. */
static void test_no_verdict_probe_not_kept(void **state)
{
    static const char *const lines[] = {
        TESTING, TLS_LINE("Trusted"), SENT,
        PROBE_AT("2026-11-28T13:49:30Z", "d.test", "p1", "mx.d.test", "unreachable"),
        PROBE_AT("2026-11-28T10:00:00Z", "d.test", "p1", "mx.d.test", "certificate-expired"),
    };
    const sts_rsession *s;
    sts_rprobe_stats st;
    sts_rlog *r;
    size_t n;

    (void)state;
    assert_int_equal(sts_rlog_new(NULL, NULL, &r), STS_OK);
    sts_rlog_set_now(r, NOW);
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
        (void)sts_rlog_feed_line(r, lines[i], strlen(lines[i]), "t", i + 1);
    assert_int_equal(sts_rlog_sessions(r, &s, &n), STS_OK);
    st = sts_rlog_probe_stats(r);
    if (n != 1 || s[0].success || strcmp(s[0].result_type, "certificate-expired") != 0 ||
        st.records != 2 || st.no_verdict != 1)
        fail_msg("got %zu sessions, %s, records %llu no_verdict %llu, want 1, "
                 "certificate-expired, 2, 1", n, n == 0 || s[0].success ? "success" : s[0].result_type,
                 (unsigned long long)st.records, (unsigned long long)st.no_verdict);
    sts_rlog_free(r);
}

int main(void)
{
    struct CMUnitTest tests[sizeof(cases) / sizeof(cases[0]) + 3];
    size_t n = 0;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tests[n] = (struct CMUnitTest)cmocka_unit_test_prestate(run_case, (void *)&cases[i]);
        tests[n++].name = cases[i].name;
    }
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_unknown_record_kind_ignored);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_streaming_probe_logged_after_the_session);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_no_verdict_probe_not_kept);
    return UNIT_RUN("rprobe", tests, n);
}
