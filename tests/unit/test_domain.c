/*
 * test_domain.c - sts_domain_normalize, sts_domain_is_literal and
 * sts_hostname_valid (src/domain.h).  One table row per behaviour; each
 * row runs as its own cmocka test named after the row.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "unit_run.h"

#include "sts/domain.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* A string literal as pointer and length, so rows can hold NUL bytes. */
#define S(lit) lit, sizeof(lit) - 1

#define A10 "aaaaaaaaaa"
#define L61 A10 A10 A10 A10 A10 A10 "a"
#define L62 L61 "a"
#define L63 L62 "a"
#define L64 L63 "a"
/* 63 + 1 + 63 + 1 + 63 + 1 + 61 = 253 octets */
#define NAME253 L63 "." L63 "." L63 "." L61
#define NAME254 L63 "." L63 "." L63 "." L62

struct norm_case {
    const char *name;
    const char *in;
    size_t len;
    sts_status want;
    const char *want_out; /* for STS_OK */
    const char *want_why; /* substring of the reason, for refusals */
};

#define OK(n, in, out) { n, S(in), STS_OK, out, NULL }
#define NO(n, in, why) { n, S(in), STS_PERMFAIL, NULL, why }

static struct norm_case norm_cases[] = {
    /* accepted, ASCII */
    OK("simple_name_unchanged", "example.com", "example.com"),
    OK("single_label_ok", "localhost", "localhost"),
    OK("trailing_dot_removed", "example.com.", "example.com"),
    OK("uppercase_lowered", "ExAmPle.COM", "example.com"),
    OK("uppercase_and_trailing_dot", "MX.EXAMPLE.COM.", "mx.example.com"),
    OK("digits_and_hyphens_ok", "a-1.2b.example", "a-1.2b.example"),
    OK("numeric_inner_label_ok", "123.example", "123.example"),
    OK("tld_with_digit_ok", "example.a1", "example.a1"),
    OK("hyphens_at_3_4_ok", "r3---sn-abc.example", "r3---sn-abc.example"),
    OK("one_char_labels_ok", "a.b.c", "a.b.c"),
    OK("label_63_ok", L63 ".example", L63 ".example"),
    OK("name_253_ok", NAME253, NAME253),
    OK("name_253_trailing_dot_ok", NAME253 ".", NAME253),
    OK("alabel_passes_through", "xn--bcher-kva.example", "xn--bcher-kva.example"),
    OK("alabel_uppercase_lowered", "XN--BCHER-KVA.Example", "xn--bcher-kva.example"),
    OK("alabel_sharp_s_ok", "xn--zca.example", "xn--zca.example"),
    /* accepted, IDN */
    OK("ulabel_to_alabel", "B\xc3\xbc" "cher.example", "xn--bcher-kva.example"),
    OK("ulabel_uppercase_mapped", "B\xc3\x9c" "CHER.EXAMPLE", "xn--bcher-kva.example"),
    OK("ulabel_trailing_dot_removed", "b\xc3\xbc" "cher.example.", "xn--bcher-kva.example"),
    OK("ulabel_sharp_s_nontransitional", "fa\xc3\x9f.de", "xn--fa-hia.de"),
    OK("ulabel_nfd_composed", "bu\xcc\x88" "cher.example", "xn--bcher-kva.example"),
    OK("ulabel_ideographic_full_stop_mapped", "b\xc3\xbc" "cher\xe3\x80\x82" "example",
       "xn--bcher-kva.example"),
    OK("ulabel_tld", "example.\xd1\x80\xd1\x84", "example.xn--p1ai"),
    OK("ulabel_next_to_alabel", "b\xc3\xbc" "cher.xn--bcher-kva.example",
       "xn--bcher-kva.xn--bcher-kva.example"),

    /* refused: shape */
    NO("empty_refused", "", "empty domain name"),
    NO("lone_dot_refused", ".", "empty domain name"),
    NO("two_trailing_dots_refused", "example.com..", "label 3 is empty"),
    NO("empty_label_refused", "a..b", "label 2 is empty"),
    NO("leading_dot_refused", ".example.com", "label 1 is empty"),
    NO("label_64_refused", L64 ".example", "label 1 is 64 octets, the limit is 63"),
    NO("label_64_second_refused", "mx." L64 ".example", "label 2 is 64 octets, the limit is 63"),
    NO("name_254_refused", NAME254, "name is 254 octets, the limit is 253"),
    NO("name_254_trailing_dot_refused", NAME254 ".", "name is 254 octets, the limit is 253"),
    NO("leading_hyphen_refused", "-example.com", "label 1 starts with a hyphen"),
    NO("trailing_hyphen_refused", "example-.com", "label 1 ends with a hyphen"),
    NO("hyphen_tld_refused", "example.-com", "label 2 starts with a hyphen"),
    NO("lone_hyphen_label_refused", "a.-.b", "label 2 starts with a hyphen"),
    NO("numeric_tld_refused", "example.123", "all-numeric"),
    NO("ipv4_address_refused", "192.0.2.1", "all-numeric"),
    NO("ipv4_address_trailing_dot_refused", "192.0.2.1.", "all-numeric"),
    NO("numeric_single_label_refused", "42", "all-numeric"),
    /* refused: address literals */
    NO("address_literal_ipv4_refused", "[192.0.2.1]", "address literal"),
    NO("address_literal_ipv6_refused", "[IPv6:2001:db8::1]", "address literal"),
    NO("address_literal_unterminated_refused", "[192.0.2.1", "address literal"),
    /* refused: bytes */
    NO("ipv6_bare_refused", "2001:db8::1", "':' at offset 4"),
    NO("underscore_refused", "_mta-sts.example.com", "'_' at offset 0"),
    NO("space_refused", "exa mple.com", "' ' at offset 3"),
    NO("leading_space_refused", " example.com", "' ' at offset 0"),
    NO("trailing_space_refused", "example.com ", "' ' at offset 11"),
    NO("nul_byte_refused", "example\0.com", "NUL byte at offset 7"),
    NO("trailing_nul_refused", "example.com\0", "NUL byte at offset 11"),
    NO("control_char_refused", "exa\x01mple.com", "control character 0x01 at offset 3"),
    NO("newline_refused", "example.com\n", "control character 0x0a at offset 11"),
    NO("del_refused", "exa\x7fmple.com", "control character 0x7f at offset 3"),
    NO("at_sign_refused", "user@example.com", "'@' at offset 4"),
    NO("slash_refused", "example.com/x", "'/' at offset 11"),
    NO("star_refused", "*.example.com", "'*' at offset 0"),
    NO("bracket_inside_refused", "a[1].example", "'[' at offset 1"),
    NO("non_ascii_with_underscore_refused", "b\xc3\xbc_cher.example", "'_' at offset 3"),
    /* refused: IDNA */
    NO("broken_punycode_refused", "xn--zz.example", "label 1 is not a valid A-label"),
    NO("broken_punycode_second_label_refused", "mx.xn--bcher-kva1.example",
       "label 2 is not a valid A-label"),
    NO("empty_punycode_refused", "xn--.example", "label 1 ends with a hyphen"),
    NO("punycode_of_ascii_refused", "xn--abc-.example", "label 1 ends with a hyphen"),
    NO("punycode_not_nfc_refused", "xn--bucher-xyd.example", "does not round-trip"),
    NO("punycode_of_control_refused", "xn--a.example", "label 1 is not a valid A-label"),
    NO("punycode_unmapped_uppercase_refused", "xn--bcher-2pa.example",
       "label 1 is not a valid A-label"),
    NO("punycode_disallowed_refused", "xn--n3h.com", "label 1 is not a valid A-label"),
    NO("broken_punycode_next_to_ulabel_refused", "b\xc3\xbc" "cher.xn--zz.example",
       "invalid IDN"),
    NO("ulabel_disallowed_refused", "\xe2\x98\x83.com", "invalid IDN"),
    NO("ulabel_emoji_refused", "\xf0\x9f\x98\x80.example", "invalid IDN"),
    NO("invalid_utf8_refused", "\xff.example", "invalid IDN"),
    NO("truncated_utf8_refused", "b\xc3.example", "invalid IDN"),
    NO("overlong_utf8_dot_refused", "a\xc0\xae" "example", "invalid IDN"),
    NO("ulabel_zwj_refused", "a\xe2\x80\x8d" "b.example", "invalid IDN"),
    NO("ulabel_leading_combining_mark_refused", "\xcc\x81" "a.example", "invalid IDN"),
    NO("ulabel_mapped_to_underscore_refused", "a\xef\xbc\xbf" "b.example",
       "'_' in label 1 is not allowed"),
    NO("ulabel_empty_label_refused", "b\xc3\xbc" "cher..example", "label 2 is empty"),
    NO("ulabel_numeric_tld_refused", "b\xc3\xbc" "cher.123", "all-numeric"),
    NO("ulabel_two_trailing_dots_refused", "b\xc3\xbc" "cher.example..", "label 3 is empty"),
    NO("ulabel_too_long_refused",
       "\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc"
       "\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc"
       "\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc"
       "\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc"
       "\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc"
       "\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc"
       "\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc.example",
       "invalid IDN"),
};

/* An ASCII name far over every limit: refused by the label rule without
 * reading past the end. */
static void test_huge_ascii_refused(void **state)
{
    size_t n = 100000;
    char *in = malloc(n);
    char out[STS_DOMAIN_MAX + 1];
    sts_why why = { "" };
    sts_status st;

    (void)state;
    assert_non_null(in);
    memset(in, 'a', n);
    st = sts_domain_normalize(in, n, out, &why);
    free(in);
    if (st != STS_PERMFAIL || strstr(why.text, "label 1 is 100000 octets") == NULL)
        fail_msg("case huge_ascii_refused: got %s (%s), want permfail (label 1 is 100000 octets)",
                 sts_status_name(st), why.text);
}

/* UTF-8 input over the libidn2 input cap is refused before conversion. */
static void test_long_utf8_refused(void **state)
{
    size_t n = 2000;
    char *in = malloc(n);
    char out[STS_DOMAIN_MAX + 1];
    sts_why why = { "" };
    sts_status st;

    (void)state;
    assert_non_null(in);
    for (size_t i = 0; i + 1 < n; i += 2) {
        in[i] = '\xc3';
        in[i + 1] = '\xbc';
    }
    st = sts_domain_normalize(in, n, out, &why);
    free(in);
    if (st != STS_PERMFAIL || strstr(why.text, "limit is 1024") == NULL)
        fail_msg("case long_utf8_refused: got %s (%s), want permfail (limit is 1024)",
                 sts_status_name(st), why.text);
}

/* The input need not be NUL-terminated: only in[0..len) is read. */
static void test_length_bounds_input(void **state)
{
    static const char in[] = "mx.example.com.evil";
    char out[STS_DOMAIN_MAX + 1];
    sts_status st;

    (void)state;
    st = sts_domain_normalize(in, 14, out, NULL);
    if (st != STS_OK || strcmp(out, "mx.example.com") != 0)
        fail_msg("case length_bounds_input: got %s \"%s\", want ok \"mx.example.com\"",
                 sts_status_name(st), out);
}

/* A refusal leaves an empty string, never a half-written name, and a NULL
 * why is allowed. */
static void test_refusal_clears_out(void **state)
{
    char out[STS_DOMAIN_MAX + 1];
    sts_status st;

    (void)state;
    memcpy(out, "stale", 6);
    st = sts_domain_normalize("exam ple.com", 12, out, NULL);
    if (st != STS_PERMFAIL || out[0] != '\0')
        fail_msg("case refusal_clears_out: got %s \"%s\", want permfail \"\"",
                 sts_status_name(st), out);
}

static void test_null_input_refused(void **state)
{
    char out[STS_DOMAIN_MAX + 1];
    sts_why why = { "" };
    sts_status st;

    (void)state;
    st = sts_domain_normalize(NULL, 0, out, &why);
    if (st != STS_PERMFAIL || strstr(why.text, "empty") == NULL)
        fail_msg("case null_input_refused: got %s (%s), want permfail (empty)",
                 sts_status_name(st), why.text);
}

static void run_norm(void **state)
{
    const struct norm_case *c = *state;
    char out[STS_DOMAIN_MAX + 1];
    char again[STS_DOMAIN_MAX + 1];
    sts_why why = { "" };
    sts_status st;

    st = sts_domain_normalize(c->in, c->len, out, &why);
    if (st != c->want)
        fail_msg("case %s: got %s (%s), want %s", c->name, sts_status_name(st), why.text,
                 sts_status_name(c->want));
    if (st != STS_OK) {
        if (c->want_why != NULL && strstr(why.text, c->want_why) == NULL)
            fail_msg("case %s: got reason \"%s\", want it to contain \"%s\"", c->name, why.text,
                     c->want_why);
        if (out[0] != '\0')
            fail_msg("case %s: got output \"%s\" after a refusal, want \"\"", c->name, out);
        return;
    }
    if (strcmp(out, c->want_out) != 0)
        fail_msg("case %s: got \"%s\", want \"%s\"", c->name, out, c->want_out);
    /* Invariants of every normalised name. */
    if (!sts_hostname_valid(out, strlen(out)))
        fail_msg("case %s: got \"%s\" which sts_hostname_valid refuses, want a valid host name",
                 c->name, out);
    st = sts_domain_normalize(out, strlen(out), again, &why);
    if (st != STS_OK || strcmp(again, out) != 0)
        fail_msg("case %s: renormalising got %s \"%s\" (%s), want ok \"%s\"", c->name,
                 sts_status_name(st), again, why.text, out);
}

struct bool_case {
    const char *name;
    const char *in;
    size_t len;
    bool want;
};

static struct bool_case literal_cases[] = {
    { "literal_ipv4", S("[192.0.2.1]"), true },
    { "literal_ipv6", S("[IPv6:2001:db8::1]"), true },
    { "literal_lone_bracket", S("["), true },
    { "literal_not_domain", S("example.com"), false },
    { "literal_not_empty", S(""), false },
    { "literal_not_inner_bracket", S("a[1]"), false },
    { "literal_not_bare_ipv4", S("192.0.2.1"), false },
};

static void run_literal(void **state)
{
    const struct bool_case *c = *state;
    bool got = sts_domain_is_literal(c->in, c->len);

    if (got != c->want)
        fail_msg("case %s: got %s, want %s", c->name, got ? "true" : "false",
                 c->want ? "true" : "false");
}

static struct bool_case hostname_cases[] = {
    { "hostname_plain", S("mx.example.com"), true },
    { "hostname_uppercase_ok", S("MX.Example.COM"), true },
    { "hostname_single_label_ok", S("localhost"), true },
    { "hostname_alabel_ok", S("xn--bcher-kva.example"), true },
    { "hostname_label_63_ok", S(L63 ".example"), true },
    { "hostname_name_253_ok", S(NAME253), true },
    { "hostname_label_64_refused", S(L64 ".example"), false },
    { "hostname_name_254_refused", S(NAME254), false },
    { "hostname_trailing_dot_refused", S("mx.example.com."), false },
    { "hostname_empty_refused", S(""), false },
    { "hostname_empty_label_refused", S("a..b"), false },
    { "hostname_leading_dot_refused", S(".example.com"), false },
    { "hostname_underscore_refused", S("_x.example.com"), false },
    { "hostname_ipv4_refused", S("192.0.2.1"), false },
    { "hostname_leading_hyphen_refused", S("-a.example"), false },
    { "hostname_trailing_hyphen_refused", S("a-.example"), false },
    { "hostname_wildcard_refused", S("*.example.com"), false },
    { "hostname_ulabel_refused", S("b\xc3\xbc" "cher.example"), false },
    { "hostname_nul_refused", S("mx\0.example.com"), false },
    { "hostname_literal_refused", S("[192.0.2.1]"), false },
};

static void run_hostname(void **state)
{
    const struct bool_case *c = *state;
    bool got = sts_hostname_valid(c->in, c->len);

    if (got != c->want)
        fail_msg("case %s: got %s, want %s", c->name, got ? "true" : "false",
                 c->want ? "true" : "false");
}

static void test_hostname_null_refused(void **state)
{
    (void)state;
    if (sts_hostname_valid(NULL, 0))
        fail_msg("case hostname_null_refused: got true, want false");
}

int main(void)
{
    struct CMUnitTest tests[ARRAY_LEN(norm_cases) + ARRAY_LEN(literal_cases) +
                            ARRAY_LEN(hostname_cases) + 6];
    size_t n = 0;

    for (size_t i = 0; i < ARRAY_LEN(norm_cases); i++)
        tests[n++] = (struct CMUnitTest){ norm_cases[i].name, run_norm, NULL, NULL,
                                          &norm_cases[i] };
    for (size_t i = 0; i < ARRAY_LEN(literal_cases); i++)
        tests[n++] = (struct CMUnitTest){ literal_cases[i].name, run_literal, NULL, NULL,
                                          &literal_cases[i] };
    for (size_t i = 0; i < ARRAY_LEN(hostname_cases); i++)
        tests[n++] = (struct CMUnitTest){ hostname_cases[i].name, run_hostname, NULL, NULL,
                                          &hostname_cases[i] };
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_huge_ascii_refused);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_long_utf8_refused);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_length_bounds_input);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_refusal_clears_out);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_null_input_refused);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_hostname_null_refused);
    return UNIT_RUN("domain", tests, n);
}
