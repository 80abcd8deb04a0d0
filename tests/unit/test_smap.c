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

#include "smap/netstring.h"
#include "sts/policy.h"
#include "smap/smap.h"
#include "smap/smap_profile.h"
#include "unit_run.h"

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
    /* transport_maps keys: addresses, the domain, parent forms, "*" */
    { "address", "user@example.com", STS_OK, "example.com" },
    { "address_extension_upper", "user+ext@Example.COM", STS_OK, "example.com" },
    { "address_empty_local", "@example.com", STS_OK, "example.com" },
    { "address_at_in_local_part", "\"a@b\"@example.com", STS_OK, "example.com" },
    { "address_without_domain", "user@", STS_PERMFAIL, NULL },
    { "address_ip_literal", "user@[192.0.2.1]", STS_NOTFOUND, NULL },
    { "transport_wildcard", "*", STS_NOTFOUND, NULL },
    { "transport_parent", ".sub.example.com", STS_NOTFOUND, NULL },
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


/* ------------------------------------------------------------ profiles */

static sts_smap_profile profile(const char *def)
{
    sts_smap_profile p;
    sts_why why = { "" };

    if (sts_smap_profile_parse(sts_cur_str(def), &p, &why) != STS_OK)
        fail_msg("profile '%s': got permfail (%s), want ok", def, why.text);
    return p;
}

typedef struct prof_case {
    const char *name, *def, *want; /* want: canonical text, or a reason fragment */
    bool ok;
} prof_case;

static const prof_case prof_cases[] = {
    { "defaults", "postfix", "postfix kind=tls servername=yes strict_testing=no on_fail=notfound "
      "budget=3000ms match=exact tlsrpt=no dane=no site=yes", true },
    { "every_tls_option", "p1 servername=no strict_testing=yes on_fail=temp budget=500ms "
      "match=exact tlsrpt=yes dane=dane-only", "p1 kind=tls servername=no strict_testing=yes "
      "on_fail=temp budget=500ms match=exact tlsrpt=yes dane=dane-only", true },
    { "budget_seconds_and_bare_ms", "a budget=2s", "budget=2000ms", true },
    { "budget_zero_is_cache_only", "a budget=0", "budget=0ms", true },
    { "bool_spellings_and_case", "a SERVERNAME=Off strict_testing=1 tlsrpt=TRUE",
      "servername=no strict_testing=yes on_fail=notfound budget=3000ms match=exact tlsrpt=yes",
      true },
    { "dane_dane", "a dane=dane", "dane=dane", true },
    { "tabs_between_options", "a\tmatch=exact\t dane=no", "match=exact", true },
    { "wildcard_on_request", "postfix match=wildcard", "match=wildcard", true },
    { "transport_kind_anywhere", "route enforce=mtasts-enforce: kind=transport testing= "
      "none=smtp:[relay.example]:25", "route kind=transport enforce=mtasts-enforce: testing= "
      "none=smtp:[relay.example]:25 on_fail=notfound budget=3000ms", true },
    { "transport_defaults_empty", "r kind=transport", "r kind=transport enforce= testing= none= "
      "on_fail=notfound budget=3000ms", true },
    { "name_chars", "my-map_2.x", "my-map_2.x kind=tls", true },
    /* refusals */
    { "empty", "", "missing map name", false },
    { "bad_name", "a/b", "map name 'a/b' is not", false },
    { "long_name", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "is not 1..64",
      false },
    { "unknown_option", "a colour=red", "unknown option 'colour'", false },
    { "not_option_value", "a servername", "'servername' is not option=value", false },
    { "repeated_option", "a dane=no dane=dane", "option dane given twice", false },
    { "bad_bool", "a servername=maybe", "servername: 'maybe' is not yes or no", false },
    { "bad_on_fail", "a on_fail=bounce", "on_fail: 'bounce' is not notfound or temp", false },
    { "bad_budget_unit", "a budget=3m", "budget: '3m' is not a duration", false },
    { "budget_too_long", "a budget=61s", "budget: '61s' is not a duration up to 60s", false },
    { "bad_match", "a match=strict", "match: 'strict' is not wildcard or exact", false },
    { "bad_dane", "a dane=yes", "dane: 'yes' is not no, dane or dane-only", false },
    { "bad_kind", "a kind=relay", "kind: 'relay' is not tls or transport", false },
    { "tls_option_on_transport", "a kind=transport servername=no",
      "option servername does not apply to a transport profile", false },
    { "transport_option_on_tls", "a enforce=x:", "option enforce does not apply to a tls profile",
      false },
    { "transport_without_colon", "a kind=transport enforce=mtasts", "enforce: 'mtasts' is not",
      false },
    { "transport_control_char", "a kind=transport enforce=a:\x01", "enforce: 'a:\\x01' is not",
      false },
};

static void test_profile_parse(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(prof_cases) / sizeof(prof_cases[0]); i++) {
        const prof_case *c = &prof_cases[i];
        sts_smap_profile p;
        sts_why why = { "" };
        char text[1024];
        sts_status st = sts_smap_profile_parse(sts_cur_str(c->def), &p, &why);

        if (c->ok) {
            if (st != STS_OK)
                fail_msg("case %s: got %s (%s), want ok", c->name, sts_status_name(st), why.text);
            assert_true(sts_smap_profile_format(&p, text, sizeof(text)));
            if (strstr(text, c->want) == NULL)
                fail_msg("case %s: got '%s', want it to contain '%s'", c->name, text, c->want);
        } else {
            if (st != STS_PERMFAIL)
                fail_msg("case %s: got %s, want permfail", c->name, sts_status_name(st));
            if (strstr(why.text, c->want) == NULL)
                fail_msg("case %s: reason got '%s', want it to contain '%s'", c->name, why.text,
                         c->want);
        }
    }
}

static void test_profile_format_round_trip(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(prof_cases) / sizeof(prof_cases[0]); i++) {
        sts_smap_profile p, q;
        sts_why why = { "" };
        char a[1024], b[1024];

        if (!prof_cases[i].ok)
            continue;
        p = profile(prof_cases[i].def);
        assert_true(sts_smap_profile_format(&p, a, sizeof(a)));
        if (sts_smap_profile_parse(sts_cur_str(a), &q, &why) != STS_OK)
            fail_msg("case %s: canonical '%s' refused: %s", prof_cases[i].name, a, why.text);
        assert_true(sts_smap_profile_format(&q, b, sizeof(b)));
        if (strcmp(a, b) != 0 || memcmp(&p, &q, sizeof(p)) != 0)
            fail_msg("case %s: got '%s', want '%s'", prof_cases[i].name, b, a);
    }
}

static void test_profile_set(void **state)
{
    sts_smap_profiles *set = NULL;
    sts_why why = { "" };
    const sts_smap_profile *p;

    (void)state;
    /* No configuration: the two built-ins. */
    assert_int_equal(sts_smap_profiles_build(NULL, &set, &why), STS_OK);
    assert_int_equal(set->n, 2);
    assert_non_null(sts_smap_profiles_find(set, "postfix", 7));
    assert_non_null(sts_smap_profiles_find(set, "sts", 3));
    assert_null(sts_smap_profiles_find(set, "Postfix", 7)); /* map names are exact */
    assert_null(sts_smap_profiles_find(set, "post", 4));
    assert_null(sts_smap_profiles_find(set, "unknown-map", 11));
    assert_false(sts_smap_profiles_want_dane(set));
    free(set);

    /* Redefining a built-in replaces it; others are added. */
    assert_int_equal(sts_smap_profiles_build("postfix servername=no dane=dane\nroute kind=transport "
                                             "enforce=x:",
                                             &set, &why),
                     STS_OK);
    assert_int_equal(set->n, 3);
    p = sts_smap_profiles_find(set, "postfix", 7);
    assert_non_null(p);
    assert_false(p->servername);
    p = sts_smap_profiles_find(set, "route", 5);
    assert_non_null(p);
    assert_int_equal(p->kind, STS_SMAP_KIND_TRANSPORT);
    assert_string_equal(p->transport[STS_SMAP_T_ENFORCE], "x:");
    assert_true(sts_smap_profiles_want_dane(set));
    assert_true(sts_smap_profiles_find(set, "sts", 3)->servername);
    free(set);

    set = NULL;
    assert_int_equal(sts_smap_profiles_build("a\nb\na match=exact", &set, &why), STS_PERMFAIL);
    assert_null(set);
    if (strstr(why.text, "profile a defined twice") == NULL)
        fail_msg("duplicate: got '%s'", why.text);
}

static void test_lookup_flags(void **state)
{
    sts_smap_profile p;

    (void)state;
    p = profile("a match=exact");
    assert_int_equal(sts_smap_lookup_flags(&p), STS_LOOKUP_NEED_MX);
    p = profile("a");
    assert_int_equal(sts_smap_lookup_flags(&p), STS_LOOKUP_NEED_MX);
    p = profile("a match=wildcard");
    assert_int_equal(sts_smap_lookup_flags(&p), 0);
    p = profile("a kind=transport");
    assert_int_equal(sts_smap_lookup_flags(&p), 0);
}

/* ------------------------------------------------------------ replies */

#define POLICY(mode) "version: STSv1\r\nmode: " mode "\r\nmx: mx1.a.example\r\nmx: *.b.example\r\n" \
                     "max_age: 86400\r\n"
#define SECURE "OK secure match=mx1.a.example:.b.example servername=hostname"

typedef struct reply_case {
    const char *name;
    const char *profile;
    sts_result result;
    const char *policy; /* NULL: none */
    const char *mx;     /* comma list of the domain's MX hosts; NULL: not known; "": null MX */
    sts_dane_state dane;
    const char *error;
    const char *want;
    const char *want_dropped; /* "keywords/left" reported; NULL: nothing left out */
    size_t unexpanded;        /* "*." patterns left unexpanded (MX hosts unknown) */
} reply_case;

/* Not const: cmocka takes each case as its test state. */
static reply_case reply_cases[] = {
    { "enforce_wildcard", "postfix match=wildcard", STS_RESULT_POLICY, POLICY("enforce"), NULL,
      0, "", SECURE },
    /* the built-in profiles answer RFC 8461 4.1 exactly by default */
    { "postfix_default_is_exact", "postfix", STS_RESULT_POLICY, POLICY("enforce"),
      "a.mx.b.example,mx2.b.example", 0, "",
      "OK secure match=mx1.a.example:mx2.b.example servername=hostname" },
    { "sendmail_default_is_exact", "sts", STS_RESULT_POLICY, POLICY("enforce"), "m.b.example", 0,
      "", "OK secure match=mx1.a.example:m.b.example servername=hostname" },
    { "servername_off", "p servername=no match=wildcard", STS_RESULT_POLICY, POLICY("enforce"),
      NULL, 0, "", "OK secure match=mx1.a.example:.b.example" },
    { "testing_notfound", "postfix", STS_RESULT_POLICY, POLICY("testing"), NULL, 0, "",
      "NOTFOUND " },
    { "testing_strict", "p strict_testing=yes match=wildcard", STS_RESULT_POLICY,
      POLICY("testing"), NULL, 0, "", SECURE },
    { "mode_none", "p strict_testing=yes", STS_RESULT_POLICY,
      "version: STSv1\nmode: none\nmax_age: 60\n", NULL, 0, "", "NOTFOUND " },
    { "no_policy", "postfix", STS_RESULT_NONE, NULL, NULL, 0, "", "NOTFOUND " },
    { "invalid_is_no_policy", "p on_fail=temp", STS_RESULT_INVALID, NULL, NULL, 0, "bad cert",
      "NOTFOUND " },
    { "temperror_fail_open", "postfix", STS_RESULT_TEMPERROR, NULL, NULL, 0, "timeout",
      "NOTFOUND " },
    { "temperror_on_fail_temp", "p on_fail=temp", STS_RESULT_TEMPERROR, NULL, NULL, 0,
      "policy discovery still running after 3000 ms",
      "TEMP policy discovery still running after 3000 ms" },
    { "temperror_on_fail_temp_no_text", "p on_fail=temp", STS_RESULT_TEMPERROR, NULL, NULL, 0, "",
      "TEMP MTA-STS lookup failed" },
    { "temperror_reason_stays_one_printable_line", "p on_fail=temp", STS_RESULT_TEMPERROR, NULL,
      NULL, 0, "DNS: a\r\nb\x01" "c\x7f\xc3\xa9 match=x", "TEMP DNS: a??b?c??? match=x" },
    /* match=exact */
    { "exact_expands_wildcards", "p match=exact", STS_RESULT_POLICY, POLICY("enforce"),
      "x.b.example,deep.y.b.example,y.b.example,other.example", 0, "",
      "OK secure match=mx1.a.example:x.b.example:y.b.example servername=hostname" },
    { "exact_literal_kept_without_mx", "p match=exact", STS_RESULT_POLICY, POLICY("enforce"),
      "other.example", 0, "", "OK secure match=mx1.a.example servername=hostname" },
    { "exact_no_duplicates", "p match=exact servername=no", STS_RESULT_POLICY,
      "version: STSv1\nmode: enforce\nmx: *.b.example\nmx: x.b.example\nmx: *.B.example\n"
      "max_age: 60\n", "X.b.example,x.b.example", 0, "", "OK secure match=x.b.example" },
    { "exact_nothing_left_defers", "p match=exact", STS_RESULT_POLICY,
      "version: STSv1\nmode: enforce\nmx: *.b.example\nmax_age: 60\n", "mx.elsewhere.example", 0,
      "", "TEMP the MTA-STS policy of a.example allows none of its MX hosts" },
    { "exact_null_mx_defers", "p match=exact", STS_RESULT_POLICY,
      "version: STSv1\nmode: enforce\nmx: *.b.example\nmax_age: 60\n", "", 0, "",
      "TEMP the MTA-STS policy of a.example allows none of its MX hosts" },
    /* MX lookup failed: literal names stay, "*." ones cannot be narrowed */
    { "exact_mx_unknown_literals_only", "p match=exact", STS_RESULT_POLICY, POLICY("enforce"),
      NULL, 0, "", "OK secure match=mx1.a.example servername=hostname", NULL, 1 },
    { "exact_mx_unknown_wildcards_only_defers", "postfix", STS_RESULT_POLICY,
      "version: STSv1\nmode: enforce\nmx: *.b.example\nmx: *.c.example\nmax_age: 60\n", NULL,
      0, "", "TEMP MX hosts of a.example not known (their lookup failed): no host allowed by "
      "its MTA-STS policy can be named", NULL, 2 },
    /* RFC 8461 4.1: "*." is exactly one label; case and a trailing dot do not matter */
    { "exact_one_label", "postfix", STS_RESULT_POLICY,
      "version: STSv1\nmode: enforce\nmx: *.b.example\nmax_age: 60\n", "mx.b.example", 0, "",
      "OK secure match=mx.b.example servername=hostname" },
    { "exact_deeper_name_not_allowed", "postfix", STS_RESULT_POLICY,
      "version: STSv1\nmode: enforce\nmx: *.d.test\nmax_age: 60\n", "a.b.d.test,mx1.d.test", 0,
      "", "OK secure match=mx1.d.test servername=hostname" },
    { "exact_only_deeper_names_defers", "postfix", STS_RESULT_POLICY,
      "version: STSv1\nmode: enforce\nmx: *.d.test\nmax_age: 60\n", "a.b.d.test,x.y.z.d.test",
      0, "", "TEMP the MTA-STS policy of a.example allows none of its MX hosts" },
    { "exact_bare_domain_not_allowed", "postfix", STS_RESULT_POLICY,
      "version: STSv1\nmode: enforce\nmx: *.d.test\nmax_age: 60\n", "d.test", 0, "",
      "TEMP the MTA-STS policy of a.example allows none of its MX hosts" },
    { "exact_bare_domain_listed_literally", "postfix", STS_RESULT_POLICY,
      "version: STSv1\nmode: enforce\nmx: *.d.test\nmx: d.test\nmax_age: 60\n",
      "d.test,mx.d.test", 0, "", "OK secure match=mx.d.test:d.test servername=hostname" },
    { "exact_deeper_pattern", "postfix", STS_RESULT_POLICY,
      "version: STSv1\nmode: enforce\nmx: *.mx.d.test\nmax_age: 60\n",
      "mx.d.test,a.mx.d.test,b.a.mx.d.test", 0, "", "OK secure match=a.mx.d.test servername=hostname" },
    { "exact_upper_case_mx_host", "postfix", STS_RESULT_POLICY,
      "version: STSv1\nmode: enforce\nmx: *.d.test\nmax_age: 60\n", "MX1.D.Test", 0, "",
      "OK secure match=mx1.d.test servername=hostname" },
    { "exact_upper_case_pattern", "postfix", STS_RESULT_POLICY,
      "version: STSv1\nmode: enforce\nmx: *.D.TEST\nmax_age: 60\n", "mx1.d.test", 0, "",
      "OK secure match=mx1.d.test servername=hostname" },
    { "exact_trailing_dots", "postfix", STS_RESULT_POLICY,
      "version: STSv1\nmode: enforce\nmx: *.d.test.\nmax_age: 60\n", "mx1.d.test.,MX1.d.test", 0,
      "", "OK secure match=mx1.d.test servername=hostname" },
    { "exact_testing_strict", "p match=exact strict_testing=yes servername=no", STS_RESULT_POLICY,
      POLICY("testing"), "z.b.example", 0, "", "OK secure match=mx1.a.example:z.b.example" },
    { "exact_testing_not_strict", "p match=exact", STS_RESULT_POLICY, POLICY("testing"), NULL, 0,
      "", "NOTFOUND " },
    /* mx patterns Postfix would read as match= keywords (tls_client.c:
     * "hostname", "nexthop", "dot-nexthop", any case) are left out */
#define KW_TEMP "TEMP the MTA-STS policy of a.example allows none of its MX hosts " \
                "(left out, read by Postfix as keywords: "
    { "keyword_patterns_dropped", "postfix match=wildcard", STS_RESULT_POLICY,
      "version: STSv1\nmode: enforce\nmx: hostname\nmx: mx1.a.example\nmx: nexthop\n"
      "mx: *.b.example\nmx: dot-nexthop\nmax_age: 60\n", NULL, 0, "", SECURE,
      "hostname,nexthop,dot-nexthop/2" },
    { "keyword_any_case_dropped", "p servername=no", STS_RESULT_POLICY,
      "version: STSv1\nmode: enforce\nmx: HostName\nmx: NEXTHOP.\nmx: mx1.a.example\n"
      "max_age: 60\n", NULL, 0, "", "OK secure match=mx1.a.example", "hostname,nexthop/1" },
    { "keyword_below_wildcard_kept", "p servername=no match=wildcard", STS_RESULT_POLICY,
      "version: STSv1\nmode: enforce\nmx: *.hostname\nmax_age: 60\n", NULL, 0, "",
      "OK secure match=.hostname" },
    { "keyword_only_enforce_defers", "postfix", STS_RESULT_POLICY,
      "version: STSv1\nmode: enforce\nmx: hostname\nmx: nexthop\nmx: dot-nexthop\n"
      "max_age: 60\n", NULL, 0, "", KW_TEMP "hostname, nexthop, dot-nexthop)",
      "hostname,nexthop,dot-nexthop/0" },
    { "keyword_only_sendmail_defers", "sts", STS_RESULT_POLICY,
      "version: STSv1\nmode: enforce\nmx: nexthop\nmax_age: 60\n", NULL, 0, "",
      KW_TEMP "nexthop)", "nexthop/0" },
    { "keyword_only_exact_defers", "p match=exact", STS_RESULT_POLICY,
      "version: STSv1\nmode: enforce\nmx: hostname\nmax_age: 60\n", "hostname,mx.a.example",
      0, "", KW_TEMP "hostname)", "hostname/0" },
    { "keyword_exact_literal_dropped", "p match=exact servername=no", STS_RESULT_POLICY,
      "version: STSv1\nmode: enforce\nmx: dot-nexthop\nmx: *.b.example\nmax_age: 60\n",
      "x.b.example", 0, "", "OK secure match=x.b.example", "dot-nexthop/1" },
    { "keyword_only_testing_delivers", "postfix", STS_RESULT_POLICY,
      "version: STSv1\nmode: testing\nmx: hostname\nmax_age: 60\n", NULL, 0, "",
      "NOTFOUND " },
    { "keyword_only_strict_testing_defers", "p strict_testing=yes", STS_RESULT_POLICY,
      "version: STSv1\nmode: testing\nmx: hostname\nmax_age: 60\n", NULL, 0, "",
      KW_TEMP "hostname)", "hostname/0" },
    { "keyword_only_dane_answers_dane", "p dane=dane", STS_RESULT_POLICY,
      "version: STSv1\nmode: enforce\nmx: hostname\nmax_age: 60\n", NULL, STS_DANE_ALL, "",
      "OK dane" },
    { "keyword_tlsrpt_reports_published_policy", "p tlsrpt=yes servername=no",
      STS_RESULT_POLICY,
      "version: STSv1\nmode: enforce\nmx: nexthop\nmx: m.a.example\nmax_age: 60\n", NULL, 0,
      "", "OK secure match=m.a.example policy_type=sts policy_domain=a.example "
      "mx_host_pattern=nexthop mx_host_pattern=m.a.example { policy_string = version: STSv1 } "
      "{ policy_string = mode: enforce } { policy_string = mx: nexthop } "
      "{ policy_string = mx: m.a.example } { policy_string = max_age: 60 }", "nexthop/1" },
    /* tlsrpt=yes */
    { "tlsrpt_attributes", "p tlsrpt=yes match=wildcard", STS_RESULT_POLICY, POLICY("enforce"),
      NULL, 0, "",
      SECURE " policy_type=sts policy_domain=a.example mx_host_pattern=mx1.a.example "
      "mx_host_pattern=*.b.example { policy_string = version: STSv1 } { policy_string = mode: "
      "enforce } { policy_string = mx: mx1.a.example } { policy_string = mx: *.b.example } "
      "{ policy_string = max_age: 86400 }" },
    { "tlsrpt_skips_unsafe_lines", "p tlsrpt=yes servername=no match=exact", STS_RESULT_POLICY,
      "version: STSv1  \nmode: enforce\next: {x}\nmx: m.a.example\nmax_age: 60\n\n", "m.a.example",
      0, "", "OK secure match=m.a.example policy_type=sts policy_domain=a.example "
      "mx_host_pattern=m.a.example { policy_string = version: STSv1 } { policy_string = mode: "
      "enforce } { policy_string = mx: m.a.example } { policy_string = max_age: 60 }" },
    { "tlsrpt_not_on_notfound", "p tlsrpt=yes", STS_RESULT_POLICY, POLICY("testing"), NULL, 0, "",
      "NOTFOUND " },
    /* dane */
    { "dane_all_covered", "p dane=dane tlsrpt=yes", STS_RESULT_POLICY, POLICY("enforce"), NULL,
      STS_DANE_ALL, "", "OK dane" },
    { "dane_partial_keeps_sts", "p dane=dane match=wildcard", STS_RESULT_POLICY,
      POLICY("enforce"), NULL,
      STS_DANE_PARTIAL, "", SECURE },
    { "dane_only_partial", "p dane=dane-only", STS_RESULT_POLICY, POLICY("enforce"), NULL,
      STS_DANE_PARTIAL, "", "OK dane-only" },
    { "dane_only_all", "p dane=dane-only", STS_RESULT_POLICY, POLICY("enforce"), NULL,
      STS_DANE_ALL, "", "OK dane-only" },
    { "dane_none", "p dane=dane-only match=wildcard", STS_RESULT_POLICY, POLICY("enforce"), NULL,
      STS_DANE_NONE, "", SECURE },
    { "dane_off_ignores_tlsa", "postfix match=wildcard", STS_RESULT_POLICY, POLICY("enforce"), NULL,
      STS_DANE_ALL, "", SECURE },
    { "dane_not_for_testing", "p dane=dane", STS_RESULT_POLICY, POLICY("testing"), NULL,
      STS_DANE_ALL, "", "NOTFOUND " },
    /* kind=transport */
    { "transport_enforce", "r kind=transport enforce=mtasts-enforce: testing=", STS_RESULT_POLICY,
      POLICY("enforce"), NULL, 0, "", "OK mtasts-enforce:" },
    { "transport_testing_empty", "r kind=transport enforce=mtasts-enforce: testing=",
      STS_RESULT_POLICY, POLICY("testing"), NULL, 0, "", "NOTFOUND " },
    { "transport_testing_set", "r kind=transport testing=smtp:[relay.example]:25",
      STS_RESULT_POLICY, POLICY("testing"), NULL, 0, "", "OK smtp:[relay.example]:25" },
    { "transport_none_mode", "r kind=transport none=plain:", STS_RESULT_POLICY,
      "version: STSv1\nmode: none\nmax_age: 60\n", NULL, 0, "", "OK plain:" },
    { "transport_no_policy", "r kind=transport none=plain:", STS_RESULT_NONE, NULL, NULL, 0, "",
      "OK plain:" },
    { "transport_invalid_is_none", "r kind=transport enforce=x: none=plain:",
      STS_RESULT_INVALID, NULL, NULL, 0, "bad", "OK plain:" },
    { "transport_temperror_open", "r kind=transport enforce=x: none=plain:",
      STS_RESULT_TEMPERROR, NULL, NULL, 0, "dns", "NOTFOUND " },
    { "transport_temperror_temp", "r kind=transport enforce=x: on_fail=temp",
      STS_RESULT_TEMPERROR, NULL, NULL, 0, "dns down", "TEMP dns down" },
};

/* The reply for a case with an output cap of cap bytes. */
static sts_status reply_with(const reply_case *c, size_t cap, sts_buf *out, sts_smap_dropped *d)
{
    sts_smap_profile p = profile(c->profile);
    sts_policy *pol = NULL;
    sts_answer a;
    sts_why why;
    char mxbuf[1024];
    const char *hosts[16];
    sts_status st;

    if (c->policy != NULL && sts_policy_parse(c->policy, strlen(c->policy), &pol, &why) != STS_OK)
        fail_msg("case %s: policy: %s", c->name, why.text);
    memset(&a, 0, sizeof(a));
    a.result = c->result;
    a.policy = pol;
    a.dane = c->dane;
    (void)snprintf(a.error, sizeof(a.error), "%s", c->error);
    if (c->mx != NULL) {
        char *save = NULL;

        (void)snprintf(mxbuf, sizeof(mxbuf), "%s", c->mx);
        a.mx_known = true;
        for (char *h = strtok_r(mxbuf, ",", &save); h != NULL && a.n_mx < 16;
             h = strtok_r(NULL, ",", &save))
            hosts[a.n_mx++] = h;
        a.mx_hosts = hosts;
    }
    sts_buf_init(out, cap);
    st = sts_smap_reply(&p, "a.example", &a, NULL, out, d);
    sts_policy_free(pol);
    return st;
}

static void run_reply_case(void **state)
{
    const reply_case *c = *state;
    sts_buf out;
    sts_smap_dropped d;
    char words[STS_SMAP_DROPPED_TEXT], got[64];
    sts_status st = reply_with(c, 16384, &out, &d);

    if (st != STS_OK)
        fail_msg("case %s: got %s, want ok", c->name, sts_status_name(st));
    if (strcmp(out.data, c->want) != 0)
        fail_msg("case %s: got '%s', want '%s'", c->name, out.data, c->want);
    (void)snprintf(got, sizeof(got), "%s/%zu", sts_smap_dropped_text(d.keywords, ",", words),
                   d.left);
    if (c->want_dropped != NULL ? strcmp(got, c->want_dropped) != 0 : d.keywords != 0)
        fail_msg("case %s: dropped got '%s', want '%s'", c->name, got,
                 c->want_dropped != NULL ? c->want_dropped : "nothing");
    if (d.wild_unexpanded != c->unexpanded)
        fail_msg("case %s: unexpanded got %zu, want %zu", c->name, d.wild_unexpanded,
                 c->unexpanded);
    sts_buf_free(&out);
}

/* The keywords of a dropped mask as text: none, some, all; a separator
 * too long for the buffer gives what fits, still a string. */
static void test_dropped_text(void **state)
{
    static const struct {
        unsigned mask;
        const char *sep, *want;
    } cases[] = {
        { 0, ", ", "" },
        { 2, ", ", "nexthop" },
        { 5, ",", "hostname,dot-nexthop" },
        { 7, ", ", "hostname, nexthop, dot-nexthop" },
        { 7, " and also ", "hostname and also nexthop" },
    };
    char out[STS_SMAP_DROPPED_TEXT];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *got = sts_smap_dropped_text(cases[i].mask, cases[i].sep, out);

        if (got != out || strcmp(out, cases[i].want) != 0)
            fail_msg("case %zu: got '%s', want '%s'", i, out, cases[i].want);
    }
}

/* TLSRPT attributes that do not fit are left out; the policy stays. */
static void test_tlsrpt_dropped_when_too_long(void **state)
{
    const reply_case c = { "long", "p tlsrpt=yes match=wildcard", STS_RESULT_POLICY,
                           POLICY("enforce"), NULL, 0, "", SECURE, NULL, 0 };
    sts_buf out;

    (void)state;
    assert_int_equal(reply_with(&c, strlen(SECURE) + 40, &out, NULL), STS_OK);
    if (strcmp(out.data, SECURE) != 0)
        fail_msg("got '%s', want '%s'", out.data, SECURE);
    sts_buf_free(&out);
    /* The policy itself too long for the buffer: an error the caller maps. */
    assert_int_not_equal(reply_with(&c, 20, &out, NULL), STS_OK);
    sts_buf_free(&out);
}

#define N_REPLY (sizeof(reply_cases) / sizeof(reply_cases[0]))

int main(void)
{
    struct CMUnitTest tests[N_REPLY + 10];
    size_t n = 0;

    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_netstring_parse);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_netstring_append);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_key_domain);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_split);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_profile_parse);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_profile_format_round_trip);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_profile_set);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_lookup_flags);
    for (size_t i = 0; i < N_REPLY; i++) {
        tests[n] = (struct CMUnitTest)cmocka_unit_test_prestate(run_reply_case, &reply_cases[i]);
        tests[n++].name = reply_cases[i].name;
    }
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_dropped_text);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_tlsrpt_dropped_when_too_long);
    return UNIT_RUN("smap", tests, n);
}
