/*
 * test_decide.c - recipient decisions, tag header text and decision log
 * lines (src/decision/decide.c, src/decision/dlog.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "decision/decide.h"
#include "decision/dlog.h"
#include "sts/policy.h"
#include "unit_tmp.h"

#include <unistd.h>

static sts_policy *make_policy(const char *text)
{
    sts_policy *p = NULL;
    sts_why why;

    if (sts_policy_parse(text, strlen(text), &p, &why) != STS_OK)
        fail_msg("test policy does not parse: %s", why.text);
    return p;
}

typedef struct decide_case {
    const char *name;
    sts_result result;
    const char *policy; /* NULL: none */
    bool pending;
    sts_fail_action fail;
    sts_class want_class;
    sts_action want_action;
    const char *want_tag;
} decide_case;

#define ENF "version: STSv1\nmode: enforce\nmx: mx1.a.example\nmx: *.b.example\nmax_age: 600\n"
#define TST "version: STSv1\nmode: testing\nmx: mx1.a.example\nmax_age: 600\n"
#define NON "version: STSv1\nmode: none\nmax_age: 600\n"

static const decide_case decide_cases[] = {
    { "enforce_routes", STS_RESULT_POLICY, ENF, false, STS_FAIL_ACCEPT, STS_CLASS_ENFORCE,
      STS_ACT_ROUTE_ENFORCE, "a.example; result=policy; mode=enforce; id=id7; mx=mx1.a.example,*.b.example" },
    { "testing_delivers_as_usual", STS_RESULT_POLICY, TST, false, STS_FAIL_ACCEPT,
      STS_CLASS_NORMAL, STS_ACT_ACCEPT, "a.example; result=policy; mode=testing; id=id7; mx=mx1.a.example" },
    { "mode_none_delivers_as_usual", STS_RESULT_POLICY, NON, false, STS_FAIL_ACCEPT,
      STS_CLASS_NORMAL, STS_ACT_ACCEPT, "a.example; result=policy; mode=none; id=id7" },
    { "no_policy_accepts", STS_RESULT_NONE, NULL, false, STS_FAIL_TEMPFAIL, STS_CLASS_NORMAL,
      STS_ACT_ACCEPT, "a.example; result=none; id=id7" },
    { "invalid_is_no_policy_even_with_tempfail", STS_RESULT_INVALID, NULL, false,
      STS_FAIL_TEMPFAIL, STS_CLASS_NORMAL, STS_ACT_ACCEPT, "a.example; result=invalid; id=id7" },
    { "temperror_accept", STS_RESULT_TEMPERROR, NULL, false, STS_FAIL_ACCEPT, STS_CLASS_NORMAL,
      STS_ACT_ACCEPT, "a.example; result=temperror; id=id7" },
    { "temperror_tempfail", STS_RESULT_TEMPERROR, NULL, false, STS_FAIL_TEMPFAIL,
      STS_CLASS_NORMAL, STS_ACT_TEMPFAIL, "a.example; result=temperror; id=id7" },
    { "pending_is_tagged", STS_RESULT_TEMPERROR, NULL, true, STS_FAIL_ACCEPT, STS_CLASS_NORMAL,
      STS_ACT_ACCEPT, "a.example; result=temperror; id=id7; pending=yes" },
};

static void test_decide_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(decide_cases) / sizeof(decide_cases[0]); i++) {
        const decide_case *c = &decide_cases[i];
        sts_answer a;
        sts_decision d;
        sts_policy *p = c->policy != NULL ? make_policy(c->policy) : NULL;
        char tag[1024];

        memset(&a, 0, sizeof(a));
        a.result = c->result;
        a.policy = p;
        a.pending = c->pending;
        (void)snprintf(a.id, sizeof(a.id), "id7");
        sts_decide("a.example", &a, c->fail, false, &d);
        if (d.cls != c->want_class)
            fail_msg("case %s: class got %d, want %d", c->name, d.cls, c->want_class);
        if (d.action != c->want_action)
            fail_msg("case %s: action got %s, want %s", c->name, sts_action_name(d.action),
                     sts_action_name(c->want_action));
        (void)sts_decision_tag(&d, tag, sizeof(tag));
        if (strcmp(tag, c->want_tag) != 0)
            fail_msg("case %s: tag got '%s', want '%s'", c->name, tag, c->want_tag);
        if (d.reason[0] == '\0')
            fail_msg("case %s: empty reason", c->name);
        sts_policy_free(p);
    }
}

static void test_tag_mx_list_is_cut_visibly(void **state)
{
    char text[8192] = "version: STSv1\nmode: enforce\nmax_age: 600\n";
    sts_policy *p;
    sts_answer a;
    sts_decision d;
    char tag[2048];

    (void)state;
    for (int i = 0; i < 100; i++) {
        char line[64];

        (void)snprintf(line, sizeof(line), "mx: mx%03d.some-long-name.example\n", i);
        strncat(text, line, sizeof(text) - strlen(text) - 1); /* banned-ok: bounded test setup */
    }
    p = make_policy(text);
    memset(&a, 0, sizeof(a));
    a.result = STS_RESULT_POLICY;
    a.policy = p;
    sts_decide("a.example", &a, STS_FAIL_ACCEPT, false, &d);
    if (strlen(d.mx) > STS_TAG_MX_MAX || strcmp(d.mx + strlen(d.mx) - 3, "...") != 0)
        fail_msg("mx list: got %zu bytes ending '%s', want <= %d ending '...'", strlen(d.mx),
                 d.mx + strlen(d.mx) - 3, STS_TAG_MX_MAX);
    /* A small buffer keeps the whole fields that fit. */
    (void)sts_decision_tag(&d, tag, 40);
    if (strcmp(tag, "a.example; result=policy; mode=enforce") != 0)
        fail_msg("tag in a 40-byte buffer: got '%s'", tag);
    sts_policy_free(p);
}

static void test_early_verdict(void **state)
{
    sts_policy *p = make_policy(ENF);
    sts_answer a;
    sts_decision d;

    (void)state;
    memset(&a, 0, sizeof(a));
    a.result = STS_RESULT_POLICY;
    a.policy = p;
    a.mx_mismatch = true;
    sts_decide("a.example", &a, STS_FAIL_ACCEPT, true, &d);
    if (d.action != STS_ACT_NO_MX)
        fail_msg("mismatch with EarlyTempfail: got %s, want tempfail-no-mx",
                 sts_action_name(d.action));
    sts_decide("a.example", &a, STS_FAIL_ACCEPT, false, &d);
    if (d.action != STS_ACT_ROUTE_ENFORCE || strstr(d.reason, "none of the domain") == NULL)
        fail_msg("mismatch without EarlyTempfail: got %s (%s), want route-enforce noting it",
                 sts_action_name(d.action), d.reason);
    a.mx_mismatch = false;
    sts_decide("a.example", &a, STS_FAIL_ACCEPT, true, &d);
    if (d.action != STS_ACT_ROUTE_ENFORCE)
        fail_msg("matching MX with EarlyTempfail: got %s", sts_action_name(d.action));
    sts_policy_free(p);
}

static void test_skip(void **state)
{
    sts_decision d;
    char tag[256];

    (void)state;
    sts_decide_skip("[192.0.2.1]", "address literal", &d);
    (void)sts_decision_tag(&d, tag, sizeof(tag));
    assert_int_equal(d.action, STS_ACT_SKIP);
    if (strcmp(tag, "[192.0.2.1]; result=skipped") != 0)
        fail_msg("skip tag: got '%s'", tag);
}

static void test_dlog_line(void **state)
{
    sts_policy *p = make_policy(ENF);
    sts_answer a;
    sts_decision d;
    char *line;
    const char *want = "{\"time\":\"2026-11-28T12:00:00Z\",\"queue_id\":\"4QX1\","
                       "\"domain\":\"a.example\",\"result\":\"policy\",\"mode\":\"enforce\","
                       "\"policy_id\":\"id7\",\"action\":\"route-enforce\","
                       "\"reason\":\"enforce policy\",\"mx\":\"mx1.a.example,*.b.example\","
                       "\"max_age\":600,\"from_cache\":true}";

    (void)state;
    memset(&a, 0, sizeof(a));
    a.result = STS_RESULT_POLICY;
    a.policy = p;
    a.from_cache = true;
    (void)snprintf(a.id, sizeof(a.id), "id7");
    sts_decide("a.example", &a, STS_FAIL_ACCEPT, false, &d);
    line = sts_dlog_format(1795867200, "4QX1", &d);
    if (line == NULL || strcmp(line, want) != 0)
        fail_msg("line: got\n%s\nwant\n%s", line != NULL ? line : "(null)", want);
    free(line);
    /* A skipped recipient that is then split stays "skipped", never a
     * lookup result it never had. */
    sts_decide_skip("internal.example", "transport map to an internal host", &d);
    d.action = STS_ACT_SPLIT;
    line = sts_dlog_format(0, "Q", &d);
    if (line == NULL || strstr(line, "\"result\":\"skipped\"") == NULL ||
        strstr(line, "\"action\":\"split\"") == NULL || strstr(line, "from_cache") != NULL)
        fail_msg("split of a skipped recipient: got %s, want result skipped, action split, "
                 "no from_cache", line != NULL ? line : "(null)");
    free(line);
    /* Peer bytes never break the JSON. */
    sts_decide_skip("x", "bad \x01\xff byte", &d);
    line = sts_dlog_format(0, "q\"\n", &d);
    if (line == NULL || strstr(line, "\"reason\":\"bad ?? byte\"") == NULL ||
        strstr(line, "\"queue_id\":\"q\\\"?\"") == NULL)
        fail_msg("escaping: got %s", line != NULL ? line : "(null)");
    free(line);
    sts_policy_free(p);
}

/* A refresh that failed while the cached policy applied: its error is in
 * the line (RFC 8461 6 reports need it); none otherwise. */
static void test_dlog_refresh_error(void **state)
{
    sts_policy *p = NULL;
    sts_why why = { "" };
    sts_answer a;
    sts_decision d;
    char *line;
    static const char body[] = "version: STSv1\nmode: testing\nmx: mx.a.example\nmax_age: 600\n";

    (void)state;
    assert_int_equal(sts_policy_parse(body, strlen(body), &p, &why), STS_OK);
    memset(&a, 0, sizeof(a));
    a.result = STS_RESULT_POLICY;
    a.policy = p;
    a.from_cache = true;
    a.report_type = STS_RT_FETCH_ERROR;
    (void)snprintf(a.error, sizeof(a.error), "HTTP status 503");
    sts_decide("a.example", &a, STS_FAIL_ACCEPT, false, &d);
    line = sts_dlog_format(0, "Q1", &d);
    if (line == NULL || strstr(line, "\"report_type\":\"sts-policy-fetch-error\",\"refresh_error\":"
                                     "\"HTTP status 503\"") == NULL)
        fail_msg("refresh failure: got %s", line != NULL ? line : "(null)");
    free(line);
    a.report_type = STS_RT_NONE;
    sts_decide("a.example", &a, STS_FAIL_ACCEPT, false, &d);
    line = sts_dlog_format(0, "Q1", &d);
    if (line == NULL || strstr(line, "refresh_error") != NULL)
        fail_msg("no failure: got %s, want no refresh_error", line != NULL ? line : "(null)");
    free(line);
    sts_policy_free(p);
}

/* Policy records: once per (domain, id, text) and file, again in the file
 * opened after a rotation; the text as fetched, CRLF and all. */
static void test_dlog_policy_record(void **state)
{
    static const char text[] = "version: STSv1\r\nmode: enforce\r\nmx: mx.a.example\r\n"
                               "max_age: 86400\r\nx-ext: kept\r\n";
    char dir[512], path[600], moved[600], buf[4096];
    sts_safefile_owner owner = { getuid(), getgid() };
    sts_why why = { "" };
    sts_dlog *l;
    FILE *fh;
    size_t n;
    char *want;

    (void)state;
    assert_true(unit_mkdtemp(dir, sizeof(dir), "dlog"));
    (void)snprintf(path, sizeof(path), "%s/decisions.log", dir);
    (void)snprintf(moved, sizeof(moved), "%s/decisions.log.1", dir);
    assert_int_equal(sts_dlog_open(path, &owner, &l, &why), STS_OK);
    for (int i = 0; i < 3; i++)
        assert_int_equal(sts_dlog_note_policy(l, 0, "a.example", "id1", text, strlen(text), &why),
                         STS_OK);
    assert_int_equal(sts_dlog_note_policy(l, 0, "a.example", "", text, strlen(text), &why), STS_OK);
    assert_int_equal(rename(path, moved), 0);
    assert_int_equal(sts_dlog_reopen(l, &why), STS_OK);
    assert_int_equal(sts_dlog_note_policy(l, 0, "a.example", "id1", text, strlen(text), &why),
                     STS_OK);
    sts_dlog_close(l);
    want = sts_dlog_format_policy(0, "a.example", "id1", text, strlen(text));
    assert_non_null(want);
    if (strcmp(want, "{\"time\":\"1970-01-01T00:00:00Z\",\"record\":\"policy\",\"domain\":"
                     "\"a.example\",\"policy_id\":\"id1\",\"policy\":\"version: STSv1\\r\\nmode: "
                     "enforce\\r\\nmx: mx.a.example\\r\\nmax_age: 86400\\r\\nx-ext: kept\\r\\n\"}") != 0)
        fail_msg("policy record: got %s", want);
    for (int f = 0; f < 2; f++) {
        assert_non_null(fh = fopen(f == 0 ? moved : path, "r"));
        n = fread(buf, 1, sizeof(buf) - 1, fh);
        buf[n] = '\0';
        (void)fclose(fh);
        if (n != strlen(want) + 1 || strncmp(buf, want, strlen(want)) != 0)
            fail_msg("file %d: got %zu bytes \"%s\", want the record once", f, n, buf);
        (void)unlink(f == 0 ? moved : path);
    }
    free(want);
    (void)rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decide_table),
        cmocka_unit_test(test_tag_mx_list_is_cut_visibly),
        cmocka_unit_test(test_early_verdict),
        cmocka_unit_test(test_skip),
        cmocka_unit_test(test_dlog_line),
        cmocka_unit_test(test_dlog_refresh_error),
        cmocka_unit_test(test_dlog_policy_record),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
