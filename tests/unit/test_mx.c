/*
 * test_mx.c - sts_mx_pattern_valid and sts_mx_match (src/mx.h,
 * RFC 8461 3.2 and 4.1).  One table row per behaviour; each row runs as
 * its own cmocka test named after the row.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "unit_run.h"

#include "sts/mx.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define S(lit) lit, sizeof(lit) - 1

#define A10 "aaaaaaaaaa"
#define L61 A10 A10 A10 A10 A10 A10 "a"
#define L62 L61 "a"
#define L63 L62 "a"
#define L64 L63 "a"
#define NAME253 L63 "." L63 "." L63 "." L61
#define NAME254 L63 "." L63 "." L63 "." L62

struct valid_case {
    const char *name;
    const char *pat;
    size_t len;
    bool want;
};

static struct valid_case valid_cases[] = {
    { "valid_host", S("mx.example.com"), true },
    { "valid_wildcard", S("*.example.com"), true },
    { "valid_single_label", S("localhost"), true },
    { "valid_wildcard_single_label_base", S("*.example"), true },
    { "valid_trailing_dot", S("mx.example.com."), true },
    { "valid_wildcard_trailing_dot", S("*.example.com."), true },
    { "valid_uppercase", S("MX.Example.COM"), true },
    { "valid_alabel", S("mx.xn--bcher-kva.example"), true },
    { "valid_numeric_inner_label", S("mx1.10.example.com"), true },
    { "valid_label_63", S(L63 ".example"), true },
    { "valid_name_253", S(NAME253), true },
    { "valid_name_253_trailing_dot", S(NAME253 "."), true },
    { "invalid_empty", S(""), false },
    { "invalid_lone_dot", S("."), false },
    { "invalid_two_trailing_dots", S("mx.example.com.."), false },
    { "invalid_empty_label", S("mx..example.com"), false },
    { "invalid_leading_dot", S(".example.com"), false },
    { "invalid_ipv4", S("192.0.2.1"), false },
    { "invalid_ipv4_trailing_dot", S("192.0.2.1."), false },
    { "invalid_wildcard_ipv4", S("*.0.2.1"), false },
    { "invalid_ipv6", S("2001:db8::1"), false },
    { "invalid_address_literal", S("[192.0.2.1]"), false },
    { "invalid_star_without_dot", S("*foo.example.com"), false },
    { "invalid_star_alone", S("*"), false },
    { "invalid_star_dot", S("*."), false },
    { "invalid_star_two_dots", S("*.."), false },
    { "invalid_star_inside", S("a.*.b"), false },
    { "invalid_star_suffix", S("example.*"), false },
    { "invalid_partial_star_label", S("mx*.example.com"), false },
    { "invalid_double_star", S("**.x"), false },
    { "invalid_double_wildcard", S("*.*.example.com"), false },
    { "invalid_wildcard_empty_label", S("*..example.com"), false },
    { "invalid_label_64", S(L64 ".example"), false },
    { "invalid_name_254", S(NAME254), false },
    { "invalid_wildcard_name_254", S("*." NAME254), false },
    { "invalid_ulabel", S("mx.b\xc3\xbc" "cher.example"), false },
    { "invalid_underscore", S("_mx.example.com"), false },
    { "invalid_space", S(" mx.example.com"), false },
    { "invalid_leading_hyphen", S("-mx.example.com"), false },
    { "invalid_trailing_hyphen", S("mx-.example.com"), false },
    { "invalid_nul_inside", S("mx.example.com\0.evil"), false },
};

static void run_valid(void **state)
{
    const struct valid_case *c = *state;
    bool got = sts_mx_pattern_valid(c->pat, c->len);

    if (got != c->want)
        fail_msg("case %s: got %s, want %s", c->name, got ? "valid" : "invalid",
                 c->want ? "valid" : "invalid");
}

struct match_case {
    const char *name;
    const char *pattern;
    const char *host;
    bool want;
};

static struct match_case match_cases[] = {
    { "exact_match", "mx.example.com", "mx.example.com", true },
    { "exact_mismatch", "mx.example.com", "mx.example.org", false },
    { "exact_case_insensitive", "MX.Example.com", "mx.EXAMPLE.COM", true },
    { "exact_trailing_dot_on_host", "mx.example.com", "mx.example.com.", true },
    { "exact_trailing_dot_on_pattern", "mx.example.com.", "mx.example.com", true },
    { "exact_trailing_dots_both", "mx.example.com.", "mx.example.com.", true },
    { "exact_two_trailing_dots_host", "mx.example.com", "mx.example.com..", false },
    { "exact_not_suffix", "example.com", "mx.example.com", false },
    { "exact_not_prefix", "mx.example.com", "mx.example.com.evil", false },
    { "exact_not_longer_label", "mx.example.com", "mx1.example.com", false },
    { "wildcard_one_label", "*.example.com", "mx.example.com", true },
    { "wildcard_case_insensitive", "*.EXAMPLE.com", "MX.example.COM", true },
    { "wildcard_trailing_dot_on_host", "*.example.com", "mx.example.com.", true },
    { "wildcard_trailing_dot_on_pattern", "*.example.com.", "mx.example.com", true },
    { "wildcard_numeric_label", "*.example.com", "10.example.com", true },
    { "wildcard_alabel", "*.example.com", "xn--bcher-kva.example.com", true },
    { "wildcard_not_zero_labels", "*.example.com", "example.com", false },
    { "wildcard_not_two_labels", "*.example.com", "a.b.example.com", false },
    { "wildcard_not_empty_label", "*.example.com", ".example.com", false },
    { "wildcard_not_other_domain", "*.example.com", "mx.example.org", false },
    { "wildcard_not_label_suffix", "*.example.com", "mx.badexample.com", false },
    { "wildcard_not_glued", "*.example.com", "mxexample.com", false },
    { "wildcard_not_parent_suffix", "*.mx.example.com", "a.example.com", false },
    { "wildcard_not_literal_star_host", "*.example.com", "*.example.com", false },
    { "wildcard_not_single_label_host", "*.com", "com", false },
    { "wildcard_single_label_base", "*.com", "example.com", true },
    { "star_host_not_matched_by_name", "mx.example.com", "*.example.com", false },
    { "invalid_pattern_star_prefix_never_matches", "*foo.example.com", "xfoo.example.com",
      false },
    { "invalid_pattern_star_prefix_not_literal", "*foo.example.com", "*foo.example.com",
      false },
    { "invalid_pattern_inner_star_never_matches", "a.*.b", "a.x.b", false },
    { "invalid_pattern_ip_never_matches", "192.0.2.1", "192.0.2.1", false },
    { "invalid_pattern_empty_label_never_matches", "mx..example.com", "mx..example.com",
      false },
    { "invalid_host_underscore", "*.example.com", "m_x.example.com", false },
    { "invalid_host_space", "*.example.com", "m x.example.com", false },
    { "empty_host", "mx.example.com", "", false },
    { "empty_pattern", "", "mx.example.com", false },
    { "empty_both", "", "", false },
    { "lone_dot_both", ".", ".", false },
    { "star_dot_pattern_vs_dot_host", "*.", ".", false },
};

static void run_match(void **state)
{
    const struct match_case *c = *state;
    bool got = sts_mx_match(c->pattern, c->host);

    if (got != c->want)
        fail_msg("case %s: sts_mx_match(\"%s\", \"%s\") got %s, want %s", c->name, c->pattern,
                 c->host, got ? "match" : "no match", c->want ? "match" : "no match");
}

static void test_null_arguments(void **state)
{
    (void)state;
    if (sts_mx_match(NULL, "mx.example.com"))
        fail_msg("case null_pattern: got match, want no match");
    if (sts_mx_match("mx.example.com", NULL))
        fail_msg("case null_host: got match, want no match");
    if (sts_mx_pattern_valid(NULL, 0))
        fail_msg("case null_pattern_valid: got valid, want invalid");
}

/* Only pat[0..len) is read: a valid prefix of a longer buffer is valid. */
static void test_pattern_length_bounds(void **state)
{
    static const char buf[] = "*.example.com garbage";

    (void)state;
    if (!sts_mx_pattern_valid(buf, 13))
        fail_msg("case pattern_length_bounds: got invalid, want valid");
}

int main(void)
{
    struct CMUnitTest tests[ARRAY_LEN(valid_cases) + ARRAY_LEN(match_cases) + 2];
    size_t n = 0;

    for (size_t i = 0; i < ARRAY_LEN(valid_cases); i++)
        tests[n++] = (struct CMUnitTest){ valid_cases[i].name, run_valid, NULL, NULL,
                                          &valid_cases[i] };
    for (size_t i = 0; i < ARRAY_LEN(match_cases); i++)
        tests[n++] = (struct CMUnitTest){ match_cases[i].name, run_match, NULL, NULL,
                                          &match_cases[i] };
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_null_arguments);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_pattern_length_bounds);
    return UNIT_RUN("mx", tests, n);
}
