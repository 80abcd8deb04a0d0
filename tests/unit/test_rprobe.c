/*
 * test_rprobe.c - MX probe records joined to the log reader's sessions
 * (src/tlsrpt/rprobe.h): which sessions a probe turns into failures, with
 * which result type, and where the MTA's own log wins.  Each row is a
 * decision log + Postfix log of one delivery, and probe records.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "unit_run.h"

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

int main(void)
{
    struct CMUnitTest tests[sizeof(cases) / sizeof(cases[0]) + 1];
    size_t n = 0;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tests[n] = (struct CMUnitTest)cmocka_unit_test_prestate(run_case, (void *)&cases[i]);
        tests[n++].name = cases[i].name;
    }
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_unknown_record_kind_ignored);
    return UNIT_RUN("rprobe", tests, n);
}
