/*
 * test_smap_site.c - the site TLS policy table (src/smap/smap_site.c):
 * the SiteTLSPolicyFile parser with its FILE:LINE errors, the lookup of
 * a domain (exact entry first, then the nearest ".parent"), and the
 * socketmap answers that combine it with a domain's MTA-STS state
 * (never weaker than an enforce policy, never instead of a TEMP).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "smap/smap.h"
#include "smap/smap_profile.h"
#include "smap/smap_site.h"
#include "sts/policy.h"
#include "unit_run.h"

/* ------------------------------------------------------------ parse + find */

typedef struct site_case {
    const char *name;
    const char *file;   /* the file's text */
    const char *err;    /* NULL: it parses; else a fragment of the reason */
    const char *domain; /* looked up when it parses (NULL: no lookup) */
    const char *want;   /* "KEY LEVEL MATCH LINE" of the entry found, NULL: none */
} site_case;

static const site_case site_cases[] = {
    { "empty_file", "", NULL, "a.test", NULL },
    { "comments_and_blanks", "# site policy\n\n   \t\n  # indented comment\n", NULL, "a.test",
      NULL },
    { "exact_domain", "a.test encrypt\n", NULL, "a.test", "a.test encrypt - 1" },
    { "exact_not_below", "a.test encrypt\n", NULL, "mx.a.test", NULL },
    { "parent_matches_below_any_depth", ".a.test verify\n", NULL, "x.y.a.test",
      ".a.test verify - 1" },
    { "parent_not_the_domain_itself", ".a.test verify\n", NULL, "a.test", NULL },
    { "nearest_parent_wins", ".test encrypt\n.b.test secure match=.b.test\n", NULL, "x.b.test",
      ".b.test secure .b.test 2" },
    { "exact_beats_parent", ".b.test encrypt\nx.b.test verify\n", NULL, "x.b.test",
      "x.b.test verify - 2" },
    { "not_a_suffix_by_bytes", ".b.test encrypt\n", NULL, "ab.test", NULL },
    { "case_and_trailing_dot_normalised", "  A.Test.\tSECURE   match=MX1.A.Test:.A.test  \r\n",
      NULL, "a.test", "a.test secure mx1.a.test:.a.test 1" },
    { "idn_u_label", "b\xc3\xbc" "cher.test encrypt\n", NULL, "xn--bcher-kva.test",
      "xn--bcher-kva.test encrypt - 1" },
    { "keywords_in_match", "a.test secure match=nexthop:dot-nexthop\n", NULL, "a.test",
      "a.test secure nexthop:dot-nexthop 1" },
    { "verify_default_match", "a.test verify\n", NULL, "a.test", "a.test verify - 1" },
    { "crlf_lines", "a.test encrypt\r\nb.test verify\r\n", NULL, "b.test", "b.test verify - 2" },
    { "no_final_newline", "a.test encrypt", NULL, "a.test", "a.test encrypt - 1" },
    /* refusals, with FILE:LINE */
    { "no_level", "a.test\n", "t.site:1: 'a.test' has no level", NULL, NULL },
    { "bad_level", "\na.test may\n", "t.site:2: level 'may' is not encrypt, verify or secure",
      NULL, NULL },
    { "bad_domain", "a..test encrypt\n", "t.site:1: 'a..test' is not a domain", NULL, NULL },
    { "ip_literal", "[192.0.2.1] encrypt\n", "t.site:1: '[192.0.2.1]' is not a domain", NULL,
      NULL },
    { "star_pattern", "*.a.test encrypt\n", "t.site:1: '*.a.test': write .domain", NULL, NULL },
    { "dot_alone", ". encrypt\n", "t.site:1: '.' is not a domain", NULL, NULL },
    { "match_on_encrypt", "a.test encrypt match=a.test\n",
      "t.site:1: match= does not apply to encrypt", NULL, NULL },
    { "unknown_option", "a.test secure servername=x\n",
      "t.site:1: 'servername=x' is not match=NAME", NULL, NULL },
    { "empty_match", "a.test secure match=\n", "t.site:1: match= is empty", NULL, NULL },
    { "empty_match_name", "a.test secure match=a.test::b.test\n",
      "t.site:1: match= holds a name", NULL, NULL },
    { "match_trailing_colon", "a.test secure match=a.test:\n", "t.site:1: match=", NULL, NULL },
    { "bad_match_name", "a.test secure match=a_b.test\n", "t.site:1: match= holds a name", NULL,
      NULL },
    { "trailing_garbage", "a.test secure match=a.test extra\n",
      "t.site:1: unexpected 'extra' after match=", NULL, NULL },
    { "duplicate_after_normalising", "a.test encrypt\n\nA.TEST. verify\n",
      "t.site:3: a.test listed already at line 1", NULL, NULL },
    { "nul_byte", "a.test encrypt\nb.test\0 encrypt\n", "t.site:2: NUL byte", NULL, NULL },
};

static void run_site_case(void **state)
{
    const site_case *c = *state;
    sts_site_table *t = NULL;
    sts_why why = { "" };
    size_t len = strlen(c->file);
    sts_status st;

    /* The NUL case: the text goes on after its NUL. */
    if (strcmp(c->name, "nul_byte") == 0)
        len = sizeof("a.test encrypt\nb.test\0 encrypt\n") - 1;
    st = sts_site_parse(c->file, len, "t.site", &t, &why);
    if (c->err != NULL) {
        if (st != STS_PERMFAIL || strstr(why.text, c->err) == NULL)
            fail_msg("case %s: got %s '%s', want permfail '%s'", c->name, sts_status_name(st),
                     why.text, c->err);
        assert_null(t);
        return;
    }
    if (st != STS_OK)
        fail_msg("case %s: got %s '%s', want ok", c->name, sts_status_name(st), why.text);
    if (c->domain != NULL) {
        const sts_site_rule *r = sts_site_find(t, c->domain);
        char got[512];

        if (r != NULL)
            (void)snprintf(got, sizeof(got), "%s %s %s %u", r->key, sts_site_level_name(r->level),
                           r->match[0] != '\0' ? r->match : "-", r->line);
        if (c->want == NULL ? r != NULL : r == NULL || strcmp(got, c->want) != 0)
            fail_msg("case %s: %s: got '%s', want '%s'", c->name, c->domain,
                     r != NULL ? got : "(none)", c->want != NULL ? c->want : "(none)");
    }
    sts_site_free(t);
}

/* Limits: a line too long, too many names in match=. */
static void test_site_limits(void **state)
{
    char *text = malloc(STS_SITE_MAX_LINE + 64);
    sts_site_table *t = NULL;
    sts_why why = { "" };
    size_t n;

    (void)state;
    assert_non_null(text);
    n = (size_t)snprintf(text, 64, "a.test secure match=");
    memset(text + n, 'a', STS_SITE_MAX_LINE);
    text[n + STS_SITE_MAX_LINE] = '\n';
    assert_int_equal(sts_site_parse(text, n + STS_SITE_MAX_LINE + 1, "t", &t, &why),
                     STS_PERMFAIL);
    if (strstr(why.text, "t:1: line longer than") == NULL)
        fail_msg("got '%s', want a too-long line", why.text);
    n = (size_t)snprintf(text, 64, "a.test secure match=");
    for (int i = 0; i <= STS_SITE_MAX_NAMES; i++)
        n += (size_t)snprintf(text + n, 8, "%sx%d", i > 0 ? ":" : "", i % 10);
    assert_int_equal(sts_site_parse(text, n, "t", &t, &why), STS_PERMFAIL);
    if (strstr(why.text, "too many names") == NULL)
        fail_msg("got '%s', want too many names", why.text);
    free(text);
}

/* The file reader: a missing file, a directory, and a real file. */
static void test_site_load(void **state)
{
    char path[] = "/tmp/test_smap_site.XXXXXX";
    sts_site_table *t = NULL;
    sts_why why = { "" };
    int fd;

    (void)state;
    assert_int_equal(sts_site_load("/nonexistent/site", &t, &why), STS_PERMFAIL);
    assert_non_null(strstr(why.text, "/nonexistent/site: No such file"));
    assert_int_equal(sts_site_load("/tmp", &t, &why), STS_PERMFAIL);
    assert_non_null(strstr(why.text, "not a regular file"));
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "a.test encrypt\nb.test bogus\n", 28), 28);
    (void)close(fd);
    assert_int_equal(sts_site_load(path, &t, &why), STS_PERMFAIL);
    if (strstr(why.text, ":2: level 'bogus'") == NULL || strncmp(why.text, path, strlen(path)))
        fail_msg("got '%s', want %s:2: level 'bogus'", why.text, path);
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "a.test encrypt\n.b.test verify\n", 30), 30);
    (void)close(fd);
    assert_int_equal(sts_site_load(path, &t, &why), STS_OK);
    assert_int_equal(sts_site_count(t), 2);
    assert_non_null(sts_site_find(t, "x.b.test"));
    sts_site_free(t);
    (void)unlink(path);
}

/* ------------------------------------------------------------ replies */

#define SITE_FILE "nopol.test encrypt\n" \
                  "test.test secure match=mx1.test.test\n" \
                  "enf.test encrypt\n" \
                  ".ver.test verify\n"

typedef struct site_reply_case {
    const char *name;
    const char *profile;
    const char *domain;
    sts_result result;
    const char *policy; /* NULL: none */
    const char *want;
} site_reply_case;

#define ENF_POLICY "version: STSv1\nmode: enforce\nmx: mx1.enf.test\nmax_age: 60\n"
#define TEST_POLICY "version: STSv1\nmode: testing\nmx: mx9.test.test\nmax_age: 60\n"

static const site_reply_case reply_cases[] = {
    { "no_policy_gets_site_level", "postfix", "nopol.test", STS_RESULT_NONE, NULL, "OK encrypt" },
    { "invalid_policy_gets_site_level", "postfix", "nopol.test", STS_RESULT_INVALID, NULL,
      "OK encrypt" },
    { "failed_lookup_notfound_gets_site_level", "postfix", "nopol.test", STS_RESULT_TEMPERROR,
      NULL, "OK encrypt" },
    { "failed_lookup_on_fail_temp_stays_temp", "p on_fail=temp", "nopol.test",
      STS_RESULT_TEMPERROR, NULL, "TEMP MTA-STS lookup failed" },
    { "testing_policy_site_stronger", "postfix", "test.test", STS_RESULT_POLICY, TEST_POLICY,
      "OK secure match=mx1.test.test servername=hostname" },
    { "testing_strict_policy_wins", "p strict_testing=yes servername=no", "test.test",
      STS_RESULT_POLICY, TEST_POLICY, "OK secure match=mx9.test.test" },
    { "enforce_policy_wins_over_site", "postfix", "enf.test", STS_RESULT_POLICY, ENF_POLICY,
      "OK secure match=mx1.enf.test servername=hostname" },
    { "mode_none_gets_site_level", "postfix", "nopol.test", STS_RESULT_POLICY,
      "version: STSv1\nmode: none\nmax_age: 60\n", "OK encrypt" },
    { "parent_entry_verify", "postfix", "mx.ver.test", STS_RESULT_NONE, NULL,
      "OK verify servername=hostname" },
    { "verify_without_servername", "p servername=no", "mx.ver.test", STS_RESULT_NONE, NULL,
      "OK verify" },
    { "unlisted_domain_unchanged", "postfix", "other.test", STS_RESULT_NONE, NULL, "NOTFOUND " },
    { "profile_site_no", "p site=no", "nopol.test", STS_RESULT_NONE, NULL, "NOTFOUND " },
    { "transport_profile_unchanged", "r kind=transport enforce=x:", "nopol.test",
      STS_RESULT_NONE, NULL, "NOTFOUND " },
};

static sts_site_table *reply_table;

static void run_site_reply_case(void **state)
{
    const site_reply_case *c = *state;
    sts_smap_profile p;
    sts_policy *pol = NULL;
    sts_answer a;
    sts_buf out;
    sts_smap_dropped d;
    sts_why why = { "" };
    const sts_site_rule *rule = sts_site_find(reply_table, c->domain);

    if (sts_smap_profile_parse(sts_cur_str(c->profile), &p, &why) != STS_OK)
        fail_msg("case %s: profile: %s", c->name, why.text);
    if (c->policy != NULL && sts_policy_parse(c->policy, strlen(c->policy), &pol, &why) != STS_OK)
        fail_msg("case %s: policy: %s", c->name, why.text);
    memset(&a, 0, sizeof(a));
    a.result = c->result;
    a.policy = pol;
    a.mx_known = true; /* no MX hosts: literal patterns only */
    sts_buf_init(&out, 4096);
    assert_int_equal(sts_smap_reply(&p, c->domain, &a, rule, &out, &d), STS_OK);
    if (strcmp(out.data, c->want) != 0)
        fail_msg("case %s: got '%s', want '%s'", c->name, out.data, c->want);
    /* The site answered exactly when the answer is not the policy's own. */
    if (d.site != (rule != NULL && strncmp(c->want, "OK ", 3) == 0 &&
                   (c->result != STS_RESULT_POLICY || strstr(c->policy, "mode: enforce") == NULL) &&
                   strcmp(c->name, "testing_strict_policy_wins") != 0))
        fail_msg("case %s: dropped.site got %d", c->name, d.site);
    sts_buf_free(&out);
    sts_policy_free(pol);
}

#define N_SITE (sizeof(site_cases) / sizeof(site_cases[0]))
#define N_REPLY (sizeof(reply_cases) / sizeof(reply_cases[0]))

int main(void)
{
    struct CMUnitTest tests[N_SITE + N_REPLY + 2];
    size_t n = 0;
    sts_why why = { "" };

    if (sts_site_parse(SITE_FILE, strlen(SITE_FILE), "site", &reply_table, &why) != STS_OK) {
        fprintf(stderr, "reply table: %s\n", why.text);
        return 1;
    }
    for (size_t i = 0; i < N_SITE; i++) {
        tests[n] = (struct CMUnitTest)cmocka_unit_test_prestate(run_site_case,
                                                                (void *)&site_cases[i]);
        tests[n++].name = site_cases[i].name;
    }
    for (size_t i = 0; i < N_REPLY; i++) {
        tests[n] = (struct CMUnitTest)cmocka_unit_test_prestate(run_site_reply_case,
                                                                (void *)&reply_cases[i]);
        tests[n++].name = reply_cases[i].name;
    }
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_site_limits);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_site_load);
    {
        int rc = UNIT_RUN("smap_site", tests, n);

        sts_site_free(reply_table);
        return rc;
    }
}
