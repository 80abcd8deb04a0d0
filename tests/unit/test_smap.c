/*
 * test_smap.c - netstring framing and socketmap requests and replies
 * (src/netstring.c, src/smap.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "netstring.h"
#include "policy.h"
#include "smap.h"

typedef struct ns_case {
    const char *name, *in;
    size_t max;
    sts_ns_result want;
    const char *want_payload; /* for OK */
    size_t want_used;
} ns_case;

static const ns_case ns_cases[] = {
    { "simple", "3:abc,", 100, STS_NS_OK, "abc", 6 },
    { "empty_payload", "0:,", 100, STS_NS_OK, "", 3 },
    { "leading_zeros", "003:abc,", 100, STS_NS_OK, "abc", 8 },
    { "pipelined_first_only", "1:a,1:b,", 100, STS_NS_OK, "a", 4 },
    { "payload_with_comma_and_colon", "5:a,b:c,", 100, STS_NS_OK, "a,b:c", 8 },
    { "need_digits", "1", 100, STS_NS_MORE, NULL, 0 },
    { "need_payload", "5:ab", 100, STS_NS_MORE, NULL, 0 },
    { "need_comma", "2:ab", 100, STS_NS_MORE, NULL, 0 },
    { "empty_input", "", 100, STS_NS_MORE, NULL, 0 },
    { "no_length", "abc", 100, STS_NS_BAD, NULL, 0 },
    { "no_colon", "3;abc,", 100, STS_NS_BAD, NULL, 0 },
    { "wrong_terminator", "3:abc.", 100, STS_NS_BAD, NULL, 0 },
    { "over_max", "101:", 100, STS_NS_BAD, NULL, 0 },
    { "eight_digits", "12345678", 1000, STS_NS_BAD, NULL, 0 },
    { "seven_digits_ok_prefix", "1234567", 10000000, STS_NS_MORE, NULL, 0 },
    { "negative", "-1:", 100, STS_NS_BAD, NULL, 0 },
};

static void test_netstring_parse(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(ns_cases) / sizeof(ns_cases[0]); i++) {
        const ns_case *c = &ns_cases[i];
        sts_cur payload = { NULL, 0 };
        size_t used = 0;
        sts_why why = { "" };
        sts_ns_result r = sts_netstring_parse(c->in, strlen(c->in), c->max, &payload, &used, &why);

        if (r != c->want)
            fail_msg("case %s: result got %d, want %d (%s)", c->name, r, c->want, why.text);
        if (r == STS_NS_OK && (!sts_cur_eq(&payload, c->want_payload) || used != c->want_used))
            fail_msg("case %s: got '%.*s' used %zu, want '%s' used %zu", c->name,
                     (int)payload.len, payload.p, used, c->want_payload, c->want_used);
        if (r == STS_NS_BAD && why.text[0] == '\0')
            fail_msg("case %s: no reason", c->name);
    }
}

static void test_netstring_append(void **state)
{
    sts_buf b;

    (void)state;
    sts_buf_init(&b, 12);
    assert_int_equal(sts_netstring_append(&b, "hello", 5), STS_OK);
    assert_string_equal(b.data, "5:hello,");
    /* Too long for the cap: refused whole, nothing half-written. */
    assert_int_equal(sts_netstring_append(&b, "abcd", 4), STS_PERMFAIL);
    assert_string_equal(b.data, "5:hello,");
    sts_buf_free(&b);
}

typedef struct key_case {
    const char *name, *key;
    sts_status want;
    const char *want_domain;
} key_case;

static const key_case key_cases[] = {
    { "plain", "example.com", STS_OK, "example.com" },
    { "trailing_dot", "example.com.", STS_OK, "example.com" },
    { "upper_case", "EXAMPLE.Com", STS_OK, "example.com" },
    { "bracketed", "[example.com]", STS_OK, "example.com" },
    { "bracketed_port", "[example.com]:25", STS_OK, "example.com" },
    { "port", "example.com:587", STS_OK, "example.com" },
    { "parent_probe", ".example.com", STS_NOTFOUND, NULL },
    { "ipv4", "192.0.2.1", STS_NOTFOUND, NULL },
    { "ipv4_bracketed", "[192.0.2.1]", STS_NOTFOUND, NULL },
    { "ipv6_tagged", "[IPv6:2001:db8::1]", STS_NOTFOUND, NULL },
    { "ipv6_bracketed_port", "[2001:db8::1]:25", STS_NOTFOUND, NULL },
    { "unbalanced", "[example.com", STS_PERMFAIL, NULL },
    { "garbage", "exa mple.com", STS_PERMFAIL, NULL },
};

static void test_key_domain(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(key_cases) / sizeof(key_cases[0]); i++) {
        const key_case *c = &key_cases[i];
        char out[STS_DOMAIN_MAX + 1] = "";
        sts_why why = { "" };
        sts_status st = sts_smap_key_domain(sts_cur_str(c->key), out, &why);

        if (st != c->want)
            fail_msg("case %s: got %s, want %s (%s)", c->name, sts_status_name(st),
                     sts_status_name(c->want), why.text);
        if (st == STS_OK && strcmp(out, c->want_domain) != 0)
            fail_msg("case %s: got '%s', want '%s'", c->name, out, c->want_domain);
    }
}

static void test_split(void **state)
{
    sts_cur name, key;

    (void)state;
    assert_true(sts_smap_split(sts_cur_str("postfix example.com"), &name, &key));
    assert_true(sts_cur_eq(&name, "postfix") && sts_cur_eq(&key, "example.com"));
    assert_false(sts_smap_split(sts_cur_str("postfix"), &name, &key));
    assert_false(sts_smap_split(sts_cur_str("postfix "), &name, &key));
    assert_false(sts_smap_split(sts_cur_str(" example.com"), &name, &key));
}

static void reply_for(const char *profile, sts_result r, const char *policy, const char *err,
                      const char *want)
{
    const sts_smap_profile *p = sts_smap_profile_for(profile, strlen(profile));
    sts_policy *pol = NULL;
    sts_answer a;
    sts_buf out;
    sts_why why;

    if (policy != NULL && sts_policy_parse(policy, strlen(policy), &pol, &why) != STS_OK)
        fail_msg("policy: %s", why.text);
    memset(&a, 0, sizeof(a));
    a.result = r;
    a.policy = pol;
    (void)snprintf(a.error, sizeof(a.error), "%s", err);
    sts_buf_init(&out, 4096);
    assert_int_equal(sts_smap_reply(p, &a, &out), STS_OK);
    if (strcmp(out.data, want) != 0)
        fail_msg("reply: got '%s', want '%s'", out.data, want);
    sts_buf_free(&out);
    sts_policy_free(pol);
}

static void test_replies(void **state)
{
    (void)state;
    reply_for("postfix", STS_RESULT_POLICY,
              "version: STSv1\nmode: enforce\nmx: mx1.a.example\nmx: *.b.example\nmax_age: 60\n",
              "", "OK secure match=mx1.a.example:.b.example servername=hostname");
    reply_for("sts", STS_RESULT_POLICY,
              "version: STSv1\nmode: enforce\nmx: mx1.a.example\nmax_age: 60\n", "",
              "OK secure match=mx1.a.example servername=hostname");
    reply_for("postfix", STS_RESULT_POLICY,
              "version: STSv1\nmode: testing\nmx: mx1.a.example\nmax_age: 60\n", "", "NOTFOUND ");
    reply_for("postfix", STS_RESULT_POLICY, "version: STSv1\nmode: none\nmax_age: 60\n", "",
              "NOTFOUND ");
    reply_for("postfix", STS_RESULT_NONE, NULL, "", "NOTFOUND ");
    reply_for("postfix", STS_RESULT_INVALID, NULL, "bad cert", "NOTFOUND ");
    reply_for("postfix", STS_RESULT_TEMPERROR, NULL, "timeout", "NOTFOUND ");
    reply_for("unknown-map", STS_RESULT_POLICY,
              "version: STSv1\nmode: enforce\nmx: mx1.a.example\nmax_age: 60\n", "",
              "OK secure match=mx1.a.example servername=hostname");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_netstring_parse), cmocka_unit_test(test_netstring_append),
        cmocka_unit_test(test_key_domain),      cmocka_unit_test(test_split),
        cmocka_unit_test(test_replies),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
