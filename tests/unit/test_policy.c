/*
 * test_policy.c - the MTA-STS policy file parser (src/policy.c, RFC 8461
 * 3.2 and the size limit of 3.3).  Table-driven: one named case per rule;
 * a failure prints "case NAME: got X, want Y".
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "unit_run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sts/policy.h"

#define LIT(s) s, sizeof(s) - 1 /* a literal that may contain NUL bytes */
#define MAX_WANT_MX 4

/* A valid policy body, to which a case adds one line. */
#define V "version: STSv1\n"
#define ENF "mode: enforce\n"
#define MX "mx: mx.example.com\n"
#define AGE "max_age: 86400\n"
#define OK_BODY V ENF MX AGE

typedef struct policy_case {
    const char *name;
    const char *body;
    size_t len;
    sts_status want;
    /* checked when want == STS_OK */
    sts_mode mode;
    uint32_t max_age;
    const char *mx[MAX_WANT_MX + 1]; /* NULL-terminated */
    /* substring of the reason, checked when not NULL */
    const char *why;
} policy_case;

#define OKC(name, body, mode, age, ...) \
    { name, LIT(body), STS_OK, mode, age, { __VA_ARGS__, NULL }, NULL }
#define BAD(name, body, why) { name, LIT(body), STS_PERMFAIL, STS_MODE_NONE, 0, { NULL }, why }

static policy_case cases[] = {
    /* Line ends (3.2: LF or CRLF). */
    OKC("lf", OK_BODY, STS_MODE_ENFORCE, 86400, "mx.example.com"),
    OKC("crlf", "version: STSv1\r\nmode: enforce\r\nmx: mx.example.com\r\nmax_age: 86400\r\n",
        STS_MODE_ENFORCE, 86400, "mx.example.com"),
    OKC("mixed_line_ends", "version: STSv1\r\nmode: enforce\nmx: mx.example.com\r\nmax_age: 86400\n",
        STS_MODE_ENFORCE, 86400, "mx.example.com"),
    OKC("no_final_newline", V ENF MX "max_age: 86400", STS_MODE_ENFORCE, 86400, "mx.example.com"),
    OKC("no_final_crlf", "version: STSv1\r\nmode: enforce\r\nmx: mx.example.com\r\nmax_age: 86400",
        STS_MODE_ENFORCE, 86400, "mx.example.com"),
    OKC("empty_lines_ignored", "\n\r\n" V "\n" ENF MX "\r\n" AGE "\n\n", STS_MODE_ENFORCE, 86400,
        "mx.example.com"),
    OKC("whitespace_only_line_ignored", V " \t\n" ENF MX "\t\r\n" AGE, STS_MODE_ENFORCE, 86400,
        "mx.example.com"),
    BAD("bare_cr_invalid", V "mode: enforce\rmx: mx.example.com\n" AGE, "control byte 0x0d"),
    BAD("final_cr_without_lf_invalid", V ENF MX "max_age: 86400\r", "control byte 0x0d"),
    BAD("cr_cr_lf_invalid", V "mode: enforce\r\r\n" MX AGE, "control byte 0x0d"),

    /* key ":" *WSP value *WSP */
    OKC("whitespace_after_colon", "version:\t STSv1\nmode:   enforce\nmx:\tmx.example.com\nmax_age: \t86400\n",
        STS_MODE_ENFORCE, 86400, "mx.example.com"),
    OKC("no_whitespace_after_colon", "version:STSv1\nmode:enforce\nmx:mx.example.com\nmax_age:86400\n",
        STS_MODE_ENFORCE, 86400, "mx.example.com"),
    OKC("trailing_whitespace", "version: STSv1 \nmode: enforce\t\r\nmx: mx.example.com \t \nmax_age: 86400  ",
        STS_MODE_ENFORCE, 86400, "mx.example.com"),
    BAD("whitespace_before_colon_invalid", V "mode : enforce\n" MX AGE, "not followed directly by ':'"),
    BAD("leading_whitespace_invalid", V " mode: enforce\n" MX AGE, "line 2 starts with whitespace"),
    BAD("line_without_colon_invalid", OK_BODY "hello world\n", "line 5 has no ':'"),
    BAD("key_only_line_invalid", OK_BODY "mode\n", "line 5 has no ':'"),
    BAD("line_starting_with_colon_invalid", OK_BODY ": x\n", "expected a key"),
    BAD("empty_value_invalid", OK_BODY "comment:\n", "empty value"),
    BAD("whitespace_only_value_invalid", OK_BODY "comment: \t \n", "empty value"),
    BAD("mode_empty_value_invalid", V "mode:\n" MX AGE, "empty value"),

    /* Keys: (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / "."), case-sensitive. */
    OKC("keys_case_sensitive", V "Mode: testing\n" ENF "MX: other.example.com\n" MX AGE,
        STS_MODE_ENFORCE, 86400, "mx.example.com"),
    BAD("keys_case_sensitive_version", "Version: STSv1\n" ENF MX AGE, "version field missing"),
    OKC("key_32_chars_ok", OK_BODY "a234567890123456789012345678901b: x\n", STS_MODE_ENFORCE, 86400,
        "mx.example.com"),
    BAD("key_33_chars_invalid", OK_BODY "a234567890123456789012345678901bc: x\n", "longer than 32"),
    BAD("key_starting_with_underscore_invalid", OK_BODY "_x: y\n", "expected a key"),
    BAD("key_with_slash_invalid", OK_BODY "a/b: y\n", "key 'a' is not followed directly by ':'"),
    BAD("utf8_bom_invalid", "\xef\xbb\xbf" OK_BODY, "expected a key"),

    /* version (3.2: must be "STSv1", required). */
    BAD("version_missing", ENF MX AGE, "version field missing"),
    BAD("version_wrong", "version: STSv2\n" ENF MX AGE, "version 'STSv2' is not STSv1"),
    BAD("version_case_sensitive", "version: stsv1\n" ENF MX AGE, "is not STSv1"),
    BAD("version_with_suffix_invalid", "version: STSv1 x\n" ENF MX AGE, "is not STSv1"),
    OKC("duplicate_version_first_wins", V "version: STSv2\n" ENF MX AGE, STS_MODE_ENFORCE, 86400,
        "mx.example.com"),

    /* mode (enforce | testing | none, case-sensitive, required). */
    OKC("mode_each_enforce", V "mode: enforce\n" MX AGE, STS_MODE_ENFORCE, 86400, "mx.example.com"),
    OKC("mode_each_testing", V "mode: testing\n" MX AGE, STS_MODE_TESTING, 86400, "mx.example.com"),
    OKC("mode_each_none", V "mode: none\n" MX AGE, STS_MODE_NONE, 86400, "mx.example.com"),
    BAD("mode_case_sensitive", V "mode: Enforce\n" MX AGE, "mode 'Enforce' is not enforce, testing or none"),
    BAD("mode_unknown_invalid", V "mode: report\n" MX AGE, "mode 'report'"),
    BAD("mode_missing", V MX AGE, "mode field missing"),
    OKC("duplicate_mode_first_wins", V "mode: testing\n" ENF MX AGE, STS_MODE_TESTING, 86400,
        "mx.example.com"),
    OKC("duplicate_mode_later_value_not_checked", V ENF "mode: bogus\n" MX AGE, STS_MODE_ENFORCE, 86400,
        "mx.example.com"),
    BAD("first_mode_invalid_later_valid", V "mode: bogus\n" ENF MX AGE, "mode 'bogus'"),

    /* max_age (1*10DIGIT, clamped to 31557600, required). */
    OKC("max_age_leading_zeros", V ENF MX "max_age: 0000086400\n", STS_MODE_ENFORCE, 86400,
        "mx.example.com"),
    OKC("max_age_zero", V ENF MX "max_age: 0\n", STS_MODE_ENFORCE, 0, "mx.example.com"),
    OKC("max_age_limit_exact", V ENF MX "max_age: 31557600\n", STS_MODE_ENFORCE, 31557600,
        "mx.example.com"),
    OKC("max_age_clamped", V ENF MX "max_age: 31557601\n", STS_MODE_ENFORCE, 31557600,
        "mx.example.com"),
    OKC("max_age_10_digits_clamped", V ENF MX "max_age: 9999999999\n", STS_MODE_ENFORCE, 31557600,
        "mx.example.com"),
    BAD("max_age_11_digits_invalid", V ENF MX "max_age: 00000086400\n", "not 1 to 10 decimal digits"),
    BAD("max_age_negative_invalid", V ENF MX "max_age: -1\n", "max_age '-1'"),
    BAD("max_age_plus_invalid", V ENF MX "max_age: +86400\n", "max_age '+86400'"),
    BAD("max_age_space_inside_invalid", V ENF MX "max_age: 86 400\n", "max_age '86 400'"),
    BAD("max_age_hex_invalid", V ENF MX "max_age: 0x10\n", "max_age '0x10'"),
    BAD("max_age_suffix_invalid", V ENF MX "max_age: 86400s\n", "max_age '86400s'"),
    BAD("max_age_missing", V ENF MX, "max_age field missing"),
    OKC("duplicate_max_age_first_wins", V ENF MX AGE "max_age: 5\n", STS_MODE_ENFORCE, 86400,
        "mx.example.com"),

    /* mx (3.2: host name or "*." host name; repeated; required unless mode none). */
    BAD("mx_required_enforce", V ENF AGE, "mx field missing (required when mode is enforce)"),
    BAD("mx_required_testing", V "mode: testing\n" AGE, "mx field missing (required when mode is testing)"),
    { "mx_optional_none", LIT(V "mode: none\n" AGE), STS_OK, STS_MODE_NONE, 86400, { NULL }, NULL },
    BAD("mx_checked_in_mode_none", V "mode: none\nmx: 1.2.3.4\n" AGE, "mx value '1.2.3.4'"),
    BAD("mx_ip_invalid", V ENF "mx: 1.2.3.4\n" AGE,
        "mx value '1.2.3.4' is not a host name or *.host name"),
    BAD("mx_ipv6_invalid", V ENF "mx: [2001:db8::1]\n" AGE, "is not a host name"),
    BAD("mx_star_foo_invalid", V ENF "mx: *foo.example.com\n" AGE, "mx value '*foo.example.com'"),
    BAD("mx_star_alone_invalid", V ENF "mx: *\n" AGE, "mx value '*'"),
    BAD("mx_inner_wildcard_invalid", V ENF "mx: a.*.example.com\n" AGE, "mx value 'a.*.example.com'"),
    BAD("mx_empty_label_invalid", V ENF "mx: mx..example.com\n" AGE, "is not a host name"),
    BAD("mx_underscore_invalid", V ENF "mx: mx_1.example.com\n" AGE, "is not a host name"),
    BAD("mx_utf8_invalid", V ENF "mx: b\xc3\xbc" "cher.example\n" AGE, "mx value 'b\\xc3\\xbccher.example'"),
    OKC("mx_wildcard_ok", V ENF "mx: *.example.com\n" AGE, STS_MODE_ENFORCE, 86400, "*.example.com"),
    OKC("mx_lowercased", V ENF "mx: MX1.Example.COM\nmx: *.EXAMPLE.net\n" AGE, STS_MODE_ENFORCE, 86400,
        "mx1.example.com", "*.example.net"),
    OKC("mx_trailing_dot_removed", V ENF "mx: mx.example.com.\n" AGE, STS_MODE_ENFORCE, 86400,
        "mx.example.com"),
    OKC("mx_idna_a_label_ok", V ENF "mx: xn--bcher-kva.example\n" AGE, STS_MODE_ENFORCE, 86400,
        "xn--bcher-kva.example"),
    OKC("mx_repeated_collected", V ENF "mx: mx1.example.com\n" AGE "mx: mx2.example.com\nmx: *.example.org\n",
        STS_MODE_ENFORCE, 86400, "mx1.example.com", "mx2.example.com", "*.example.org"),

    /* Unknown keys: ignored, but the line must still follow the grammar. */
    OKC("unknown_key_ignored", OK_BODY "foo_bar.baz-1: anything = ; goes # here\n", STS_MODE_ENFORCE, 86400,
        "mx.example.com"),
    OKC("unknown_key_utf8_value_ok", OK_BODY "comment: caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa7\n",
        STS_MODE_ENFORCE, 86400, "mx.example.com"),
    BAD("unknown_key_bad_utf8_invalid", OK_BODY "comment: \xc3\x28\n", "not valid UTF-8 at byte 0xc3"),
    BAD("unknown_key_overlong_utf8_invalid", OK_BODY "comment: \xc0\xaf\n", "not valid UTF-8 at byte 0xc0"),
    BAD("unknown_key_surrogate_invalid", OK_BODY "comment: \xed\xa0\x80\n", "not valid UTF-8"),
    BAD("unknown_key_truncated_utf8_invalid", OK_BODY "comment: \xe2\x82", "not valid UTF-8"),
    BAD("unknown_key_latin1_invalid", OK_BODY "comment: caf\xe9\n", "not valid UTF-8"),
    BAD("unknown_key_tab_inside_invalid", OK_BODY "comment: a\tb\n", "control byte 0x09"),
    BAD("unknown_key_del_invalid", OK_BODY "comment: a\x7f\n", "control byte 0x7f"),

    /* Whole-body rules. */
    BAD("nul_byte_invalid", V ENF "mx: mx.example.com\0\n" AGE, "control byte 0x00"),
    BAD("nul_byte_in_key_invalid", OK_BODY "a\0: b\n", "not followed directly by ':'"),
    BAD("empty_body_invalid", "", "policy body is empty"),
    BAD("only_blank_lines_invalid", "\n\r\n \n", "version field missing"),
    BAD("html_invalid", "<html><body>Not Found</body></html>\n", "expected a key"),
    BAD("json_invalid", "{\"version\": \"STSv1\"}\n", "expected a key"),
};

#define N_CASES (sizeof(cases) / sizeof(cases[0]))

static void check_policy(const char *name, const sts_policy *p, sts_mode mode, uint32_t max_age,
                         const char *const *mx)
{
    size_t n_want = 0;

    while (n_want < MAX_WANT_MX && mx[n_want] != NULL)
        n_want++;
    if (p->mode != mode)
        fail_msg("case %s: got mode %s, want %s", name, sts_mode_name(p->mode), sts_mode_name(mode));
    if (p->max_age != max_age)
        fail_msg("case %s: got max_age %u, want %u", name, (unsigned)p->max_age, (unsigned)max_age);
    if (p->n_mx != n_want)
        fail_msg("case %s: got %zu mx, want %zu", name, p->n_mx, n_want);
    for (size_t i = 0; i < n_want; i++)
        if (strcmp(p->mx[i], mx[i]) != 0)
            fail_msg("case %s: got mx[%zu] '%s', want '%s'", name, i, p->mx[i], mx[i]);
}

static void run_case(void **state)
{
    const policy_case *tc = *state;
    sts_policy *p = NULL, *d = NULL;
    sts_why why;
    sts_status st;

    memset(&why, 0, sizeof(why));
    st = sts_policy_parse(tc->body, tc->len, &p, &why);
    if (st != tc->want) {
        sts_policy_free(p);
        fail_msg("case %s: got %s (%s), want %s", tc->name, sts_status_name(st), why.text,
                 sts_status_name(tc->want));
    }
    if (tc->why != NULL && strstr(why.text, tc->why) == NULL)
        fail_msg("case %s: got reason '%s', want it to contain '%s'", tc->name, why.text, tc->why);
    if (st != STS_OK) {
        if (p != NULL)
            fail_msg("case %s: got a policy with %s, want NULL", tc->name, sts_status_name(st));
        return;
    }
    check_policy(tc->name, p, tc->mode, tc->max_age, tc->mx);
    if (p->text_len != tc->len || memcmp(p->text, tc->body, tc->len) != 0 || p->text[tc->len] != '\0')
        fail_msg("case %s: got text of %zu bytes, want the %zu-byte body, NUL-terminated", tc->name,
                 p->text_len, tc->len);

    /* The deep copy is equal and independent. */
    d = sts_policy_dup(p);
    if (d == NULL)
        fail_msg("case %s: got NULL from sts_policy_dup, want a copy", tc->name);
    sts_policy_free(p);
    check_policy(tc->name, d, tc->mode, tc->max_age, tc->mx);
    if (d->text_len != tc->len || memcmp(d->text, tc->body, tc->len) != 0)
        fail_msg("case %s: got a copy whose text differs, want the body", tc->name);
    sts_policy_free(d);
}

/* Build a valid policy padded with a comment line to exactly len bytes. */
static char *padded_body(size_t len)
{
    static const char head[] = OK_BODY "pad: ";
    size_t hl = sizeof(head) - 1;
    char *b = malloc(len);

    assert_non_null(b);
    assert_true(len > hl + 1);
    memcpy(b, head, hl);
    memset(b + hl, 'x', len - hl - 1);
    b[len - 1] = '\n';
    return b;
}

static void test_body_64k_ok(void **state)
{
    char *b = padded_body(STS_POLICY_MAX_BODY);
    sts_policy *p = NULL;
    sts_why why;
    sts_status st;

    (void)state;
    st = sts_policy_parse(b, STS_POLICY_MAX_BODY, &p, &why);
    if (st != STS_OK || p->text_len != STS_POLICY_MAX_BODY) {
        free(b);
        sts_policy_free(p);
        fail_msg("case body_64k_ok: got %s (%s), want ok", sts_status_name(st), why.text);
    }
    sts_policy_free(p);
    free(b);
}

static void test_body_over_64k_rejected(void **state)
{
    char *b = padded_body(STS_POLICY_MAX_BODY + 1);
    sts_policy *p = NULL;
    sts_why why;
    sts_status st;

    (void)state;
    st = sts_policy_parse(b, STS_POLICY_MAX_BODY + 1, &p, &why);
    free(b);
    if (st != STS_PERMFAIL || p != NULL ||
        strcmp(why.text, "policy body is 65537 bytes, the limit is 65536") != 0) {
        sts_policy_free(p);
        fail_msg("case body_over_64k_rejected: got %s (%s), want permfail (policy body is 65537 "
                 "bytes, the limit is 65536)",
                 sts_status_name(st), why.text);
    }
}

/* STS_POLICY_MAX_MX mx lines are fine, one more is not. */
static char *mx_body(size_t n_mx, size_t *len)
{
    size_t cap = 128 + n_mx * 32, o = 0;
    char *b = malloc(cap);

    assert_non_null(b);
    o += (size_t)snprintf(b + o, cap - o, "%s", V ENF AGE);
    for (size_t i = 0; i < n_mx; i++)
        o += (size_t)snprintf(b + o, cap - o, "mx: mx%zu.example.com\n", i);
    assert_true(o < cap);
    *len = o;
    return b;
}

static void test_mx_limit(void **state)
{
    size_t len;
    char *b;
    sts_policy *p = NULL;
    sts_why why;
    sts_status st;

    (void)state;
    b = mx_body(STS_POLICY_MAX_MX, &len);
    st = sts_policy_parse(b, len, &p, &why);
    free(b);
    if (st != STS_OK || p->n_mx != STS_POLICY_MAX_MX || strcmp(p->mx[255], "mx255.example.com") != 0) {
        sts_policy_free(p);
        fail_msg("case mx_256_ok: got %s (%s), want ok with 256 mx", sts_status_name(st), why.text);
    }
    sts_policy_free(p);
    p = NULL;

    b = mx_body(STS_POLICY_MAX_MX + 1, &len);
    st = sts_policy_parse(b, len, &p, &why);
    free(b);
    if (st != STS_PERMFAIL || strstr(why.text, "more than 256 mx lines") == NULL) {
        sts_policy_free(p);
        fail_msg("case mx_257_invalid: got %s (%s), want permfail (more than 256 mx lines)",
                 sts_status_name(st), why.text);
    }
}

static void test_why_null_accepted(void **state)
{
    sts_policy *p = NULL;
    sts_status st;

    (void)state;
    st = sts_policy_parse(LIT("version: STSv2\n"), &p, NULL);
    if (st != STS_PERMFAIL || p != NULL)
        fail_msg("case why_null_accepted: got %s, want permfail", sts_status_name(st));
    st = sts_policy_parse(LIT(OK_BODY), &p, NULL);
    if (st != STS_OK)
        fail_msg("case why_null_ok: got %s, want ok", sts_status_name(st));
    sts_policy_free(p);
    sts_policy_free(NULL); /* a no-op */
    if (sts_policy_dup(NULL) != NULL)
        fail_msg("case dup_null: got a copy, want NULL");
}

/* The length is honoured: bytes after len are never looked at. */
static void test_length_bounds_input(void **state)
{
    static const char body[] = OK_BODY "garbage without a colon";
    sts_policy *p = NULL;
    sts_why why;
    sts_status st;

    (void)state;
    st = sts_policy_parse(body, sizeof(OK_BODY) - 1, &p, &why);
    if (st != STS_OK || p->text_len != sizeof(OK_BODY) - 1)
        fail_msg("case length_bounds_input: got %s (%s), want ok", sts_status_name(st), why.text);
    sts_policy_free(p);
}

typedef struct match_case {
    const char *name;
    const char *host;
    bool want;
} match_case;

static void test_mx_match(void **state)
{
    static const char body[] = V ENF "mx: mx1.example.com\nmx: *.example.net\n" AGE;
    static const match_case mc[] = {
        { "match_exact", "mx1.example.com", true },
        { "match_exact_case", "MX1.Example.Com", true },
        { "match_exact_trailing_dot", "mx1.example.com.", true },
        { "match_other_host", "mx2.example.com", false },
        { "match_wildcard_one_label", "mail.example.net", true },
        { "match_wildcard_not_base", "example.net", false },
        { "match_wildcard_not_two_labels", "a.b.example.net", false },
        { "match_suffix_not_enough", "xmx1.example.com", false },
        { "match_empty", "", false },
    };
    sts_policy *p = NULL;
    sts_why why;
    sts_status st;

    (void)state;
    st = sts_policy_parse(LIT(body), &p, &why);
    if (st != STS_OK)
        fail_msg("case mx_match: got %s (%s), want ok", sts_status_name(st), why.text);
    for (size_t i = 0; i < sizeof(mc) / sizeof(mc[0]); i++) {
        bool got = sts_policy_mx_match(p, mc[i].host);

        if (got != mc[i].want) {
            sts_policy_free(p);
            fail_msg("case %s: got %d, want %d", mc[i].name, got, mc[i].want);
        }
    }
    if (sts_policy_mx_match(p, NULL) || sts_policy_mx_match(NULL, "mx1.example.com")) {
        sts_policy_free(p);
        fail_msg("case match_null: got true, want false");
    }
    sts_policy_free(p);
}

static void test_mode_names(void **state)
{
    static const struct {
        const char *name;
        bool ok;
        sts_mode mode;
    } mn[] = {
        { "enforce", true, STS_MODE_ENFORCE },
        { "testing", true, STS_MODE_TESTING },
        { "none", true, STS_MODE_NONE },
        { "Enforce", false, STS_MODE_NONE },
        { "enforce ", false, STS_MODE_NONE },
        { "enforc", false, STS_MODE_NONE },
        { "", false, STS_MODE_NONE },
    };

    (void)state;
    for (size_t i = 0; i < sizeof(mn) / sizeof(mn[0]); i++) {
        sts_mode m = STS_MODE_NONE;
        bool ok = sts_mode_from_name(mn[i].name, strlen(mn[i].name), &m);

        if (ok != mn[i].ok || (ok && m != mn[i].mode))
            fail_msg("case mode_from_name '%s': got %d/%d, want %d/%d", mn[i].name, ok, (int)m,
                     mn[i].ok, (int)mn[i].mode);
        if (ok && strcmp(sts_mode_name(m), mn[i].name) != 0)
            fail_msg("case mode_name '%s': got '%s', want '%s'", mn[i].name, sts_mode_name(m),
                     mn[i].name);
    }
    /* Only the given length counts. */
    if (!sts_mode_from_name("nonesuch", 4, NULL))
        fail_msg("case mode_from_name_len: got false, want true");
}

int main(void)
{
    struct CMUnitTest tests[N_CASES + 7];
    size_t n = 0;

    for (size_t i = 0; i < N_CASES; i++) {
        tests[n] = (struct CMUnitTest)cmocka_unit_test_prestate(run_case, &cases[i]);
        tests[n++].name = cases[i].name;
    }
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_body_64k_ok);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_body_over_64k_rejected);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_mx_limit);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_why_null_accepted);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_length_bounds_input);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_mx_match);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_mode_names);
    return UNIT_RUN("policy", tests, n);
}
