/*
 * test_rcpt.c - the domain of an SMTP recipient as the MTA routes it
 * (src/decision/rcpt.c): RCPT TO arguments as clients send them and as
 * Postfix's tok822 reads them, and {rcpt_addr} as Postfix and Sendmail
 * send it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "unit_run.h"

#include "decision/rcpt.h"
#include "sts/domain.h"

#define OUT_SZ (STS_DOMAIN_MAX * 4 + 1) /* what the milter gives the parser */

typedef struct rcpt_case {
    const char *name;
    const char *in;
    size_t len; /* 0: strlen(in) */
    sts_rcpt_status want;
    const char *want_domain; /* STS_RCPT_DOMAIN only */
} rcpt_case;

#define D STS_RCPT_DOMAIN
#define NODOM STS_RCPT_NO_DOMAIN
#define BAD STS_RCPT_MALFORMED

static const rcpt_case cases[] = {
    /* The plain forms. */
    { "angle_brackets", "<bob@Example.COM>", 0, D, "Example.COM" },
    { "no_brackets_as_in_rcpt_addr", "bob@example.com", 0, D, "example.com" },
    { "trailing_dot_kept_for_normalisation", "<bob@example.com.>", 0, D, "example.com." },
    { "address_literal_keeps_brackets", "<bob@[192.0.2.1]>", 0, D, "[192.0.2.1]" },
    { "ipv6_literal_with_colons", "<bob@[IPv6:2001:db8::1]>", 0, D, "[IPv6:2001:db8::1]" },
    /* Quoted local parts (RFC 5321 Quoted-string, quoted pairs). */
    { "quoted_local_part_with_gt", "<\"a>b\"@enforce.example>", 0, D, "enforce.example" },
    { "quoted_local_part_with_at", "<\"a@b\"@example.com>", 0, D, "example.com" },
    { "quoted_local_part_escaped_quote_at_and_gt", "<\"a\\\"@>b\"@enforce.example>", 0, D,
      "enforce.example" },
    { "quoted_local_part_escaped_backslash_before_close", "<\"a\\\\\"@example.com>", 0, D,
      "example.com" },
    { "quoted_local_part_with_space", "<\"bob smith\"@example.com>", 0, D, "example.com" },
    { "postfix_rcpt_addr_quoted", "\"a>b\"@enforce.example", 0, D, "enforce.example" },
    { "postfix_rcpt_addr_8bit_escaped", "\"j\\\xc3\\\xb6rg\"@example.com", 0, D,
      "example.com" },
    /* What Postfix's tok822 drops between tokens, and routes anyway. */
    { "comment_before_domain", "<bob@(c)enforce.example>", 0, D, "enforce.example" },
    { "trailing_space_inside_brackets", "<bob@enforce.example >", 0, D, "enforce.example" },
    { "leading_space", " <bob@example.com>", 0, D, "example.com" },
    { "trailing_space_after_brackets", "<bob@example.com>\t ", 0, D, "example.com" },
    { "spaces_around_at_and_dots", "<bob @ example . com>", 0, D, "example.com" },
    { "comment_between_labels", "<bob@example(c).com>", 0, D, "example.com" },
    { "comment_after_domain", "<bob@example.com (Bob)>", 0, D, "example.com" },
    { "nested_comment_with_at_in_local_part", "<bob(x@y (z@w) \\) )@example.com>", 0, D,
      "example.com" },
    { "quoted_domain_dequoted_as_tok822_does", "<bob@\"example\".com>", 0, D, "example.com" },
    { "backslash_in_domain_dropped_as_tok822_does", "<bob@exa\\mple.com>", 0, D,
      "example.com" },
    { "two_words_in_domain_get_a_space", "<bob@exa mple.com>", 0, D, "exa mple.com" },
    { "last_at_wins", "<a@b@example.com>", 0, D, "example.com" },
    { "percent_hack_is_the_mtas_business", "<bob%other.example@example.com>", 0, D,
      "example.com" },
    /* Source routes (RFC 5321 A-d-l, to be ignored by the receiver). */
    { "source_route", "<@relay.example,@r2.example:bob@example.com>", 0, D, "example.com" },
    { "source_route_with_literals", "<@[192.0.2.9],@[IPv6:2001:db8::9]:bob@example.com>", 0,
      D, "example.com" },
    { "source_route_with_spaces", "< @relay.example , @r2.example : bob@example.com >", 0, D,
      "example.com" },
    { "source_route_colon_in_quoted_local_part", "<@r.example:\"a:b@c\"@example.com>", 0, D,
      "example.com" },
    { "at_domain_without_colon_is_an_empty_local_part", "<@example.com>", 0, D,
      "example.com" },
    /* SMTPUTF8 (RFC 6531): UTF-8 in either part. */
    { "smtputf8_domain", "<bob@b\xc3\xbc" "cher.example>", 0, D, "b\xc3\xbc" "cher.example" },
    { "smtputf8_local_part", "<j\xc3\xb6rg@example.com>", 0, D, "example.com" },
    { "smtputf8_quoted_local_part", "<\"j\xc3\xb6 rg\"@example.com>", 0, D, "example.com" },
    /* No domain. */
    { "empty", "", 0, NODOM, NULL },
    { "only_spaces", "   ", 0, NODOM, NULL },
    { "null_path", "<>", 0, NODOM, NULL },
    { "local_only", "<postmaster>", 0, NODOM, NULL },
    { "local_only_quoted_with_at", "<\"a@b\">", 0, NODOM, NULL },
    { "empty_domain", "<bob@>", 0, NODOM, NULL },
    { "comment_only_domain", "<bob@(example.com)>", 0, NODOM, NULL },
    { "sendmail_local_rcpt_addr", "root", 0, NODOM, NULL },
    /* Not one address. */
    { "missing_closing_bracket", "<bob@example.com", 0, BAD, NULL },
    { "lone_open_bracket", "<", 0, BAD, NULL },
    { "closing_bracket_inside_quotes_only", "<\"bob@example.com>\"", 0, BAD, NULL },
    { "stray_closing_bracket", "bob@example.com>", 0, BAD, NULL },
    { "nested_brackets", "<<bob@example.com>>", 0, BAD, NULL },
    { "unclosed_quote", "<\"bob@example.com>", 0, BAD, NULL },
    { "escaped_closing_quote", "<\"bob\\\"@example.com>", 0, BAD, NULL },
    { "unclosed_comment", "<bob@(example.com>", 0, BAD, NULL },
    { "unbalanced_nested_comment", "<bob@((c)example.com>", 0, BAD, NULL },
    { "stray_closing_paren", "<bob@c)example.com>", 0, BAD, NULL },
    { "unclosed_literal", "<bob@[192.0.2.1>", 0, BAD, NULL },
    { "two_addresses", "<a@b.example, c@d.example>", 0, BAD, NULL },
    { "colon_without_route", "<bob:x@example.com>", 0, BAD, NULL },
    { "semicolon", "<bob@example.com;>", 0, BAD, NULL },
    { "route_then_nothing", "<@relay.example:>", 0, NODOM, NULL },
    { "nul_byte_in_domain", "<bob@exa\0mple.com>", 18, BAD, NULL },
};

#define N_CASES (sizeof(cases) / sizeof(cases[0]))

static const char *status_name(sts_rcpt_status st)
{
    return st == STS_RCPT_DOMAIN ? "domain" : st == STS_RCPT_NO_DOMAIN ? "no-domain"
                                                                        : "malformed";
}

/* A reason is a printable one-liner. */
static void check_why(const char *name, const sts_why *why)
{
    if (why->text[0] == '\0')
        fail_msg("case %s: malformed without a reason", name);
    for (const char *p = why->text; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
            fail_msg("case %s: reason has byte 0x%02x: %s", name, (unsigned char)*p,
                     why->text);
}

static void run_case(void **state)
{
    const rcpt_case *c = *state;
    size_t len = c->len != 0 ? c->len : strlen(c->in);
    char out[OUT_SZ];
    sts_why why = { "" };
    sts_rcpt_status st;

    memset(out, 'X', sizeof(out));
    st = sts_rcpt_parse(c->in, len, out, sizeof(out), &why);
    if (st != c->want)
        fail_msg("case %s: got %s%s%s, want %s", c->name, status_name(st),
                 st == STS_RCPT_MALFORMED ? ": " : "", st == STS_RCPT_MALFORMED ? why.text : "",
                 status_name(c->want));
    if (st == STS_RCPT_DOMAIN && strcmp(out, c->want_domain) != 0)
        fail_msg("case %s: got domain '%s', want '%s'", c->name, out, c->want_domain);
    if (st == STS_RCPT_MALFORMED)
        check_why(c->name, &why);
}

/* The local part may be as long as the line the MTA took; only the domain
 * has to fit. */
static void test_long_local_part_is_no_trouble(void **state)
{
    size_t n = 100000;
    char *in = malloc(n + 32);
    char out[OUT_SZ];

    (void)state;
    assert_non_null(in);
    in[0] = '<';
    memset(in + 1, 'a', n);
    memcpy(in + 1 + n, "@example.com>", 14);
    if (sts_rcpt_parse(in, strlen(in), out, sizeof(out), NULL) != STS_RCPT_DOMAIN ||
        strcmp(out, "example.com") != 0)
        fail_msg("100000-byte local part: want domain example.com");
    free(in);
}

/* A domain that does not fit is refused, never cut: the cut name could be
 * another domain. */
static void test_domain_longer_than_the_buffer_is_malformed(void **state)
{
    char in[64], out[16];
    sts_why why = { "" };
    sts_rcpt_status st;

    (void)state;
    /* 15 bytes fit a 16-byte buffer with its NUL. */
    (void)snprintf(in, sizeof(in), "<bob@%s>", "abcdefghij.test");
    st = sts_rcpt_parse(in, strlen(in), out, sizeof(out), &why);
    if (st != STS_RCPT_DOMAIN || strcmp(out, "abcdefghij.test") != 0)
        fail_msg("15-byte domain in 16 bytes: got %s '%s', want the domain", status_name(st),
                 st == STS_RCPT_DOMAIN ? out : why.text);
    (void)snprintf(in, sizeof(in), "<bob@%s>", "abcdefghijk.test");
    st = sts_rcpt_parse(in, strlen(in), out, sizeof(out), &why);
    if (st != STS_RCPT_MALFORMED || strstr(why.text, "longer than 15") == NULL)
        fail_msg("16-byte domain in 16 bytes: got %s (%s), want malformed, longer than 15",
                 status_name(st), why.text);
    /* A long name before the last '@' does not count against the domain. */
    (void)snprintf(in, sizeof(in), "<a@abcdefghijklmnopqrstuvwxyz.example@d.test>");
    st = sts_rcpt_parse(in, strlen(in), out, sizeof(out), NULL);
    if (st != STS_RCPT_DOMAIN || strcmp(out, "d.test") != 0)
        fail_msg("long domain before the last '@': got %s, want d.test", status_name(st));
}

static void test_overlong_domain_is_malformed(void **state)
{
    size_t n = 5000;
    char *in = malloc(n + 32);
    char out[OUT_SZ];
    sts_why why = { "" };

    (void)state;
    assert_non_null(in);
    memcpy(in, "<bob@", 5);
    memset(in + 5, 'a', n);
    memcpy(in + 5 + n, ".example>", 10);
    if (sts_rcpt_parse(in, strlen(in), out, sizeof(out), &why) != STS_RCPT_MALFORMED)
        fail_msg("5000-byte domain: want malformed");
    check_why("overlong_domain", &why);
    free(in);
}

/* Which address decides: {rcpt_addr}, what the MTA resolved, when it has
 * a domain. */
typedef struct pick_case {
    const char *name;
    const char *arg, *mta_addr;
    sts_rcpt_status want;
    const char *want_domain;
} pick_case;

static const pick_case picks[] = {
    { "rcpt_addr_wins_postfix_percent_hack", "<bob%enforce.example@local.example>",
      "bob@enforce.example", D, "enforce.example" },
    { "rcpt_addr_postfix_quoted_local_part", "<\"a>b\"@enforce.example>",
      "\"a>b\"@enforce.example", D, "enforce.example" },
    { "rcpt_addr_sendmail_parsed", "<bob@(c)enforce.example>", "bob@enforce.example", D,
      "enforce.example" },
    { "no_rcpt_addr_argument_decides", "<bob@(c)enforce.example>", NULL, D,
      "enforce.example" },
    { "rcpt_addr_without_domain_argument_names_it", "<root@hosted.example>", "root", D,
      "hosted.example" },
    { "malformed_rcpt_addr_argument_decides", "<bob@x.example>", "\"unclosed", D,
      "x.example" },
    { "neither_has_a_domain", "<postmaster>", "postmaster", NODOM, NULL },
    { "malformed_argument_no_rcpt_addr", "<bob@example.com", NULL, BAD, NULL },
    { "null_argument", NULL, NULL, NODOM, NULL },
};

static void test_pick(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(picks) / sizeof(picks[0]); i++) {
        const pick_case *c = &picks[i];
        char out[OUT_SZ];
        sts_why why = { "" };
        sts_rcpt_status st = sts_rcpt_domain(c->arg, c->mta_addr, out, sizeof(out), &why);

        if (st != c->want)
            fail_msg("case %s: got %s, want %s", c->name, status_name(st),
                     status_name(c->want));
        if (st == STS_RCPT_DOMAIN && strcmp(out, c->want_domain) != 0)
            fail_msg("case %s: got domain '%s', want '%s'", c->name, out, c->want_domain);
        if (st == STS_RCPT_MALFORMED)
            check_why(c->name, &why);
    }
}

int main(void)
{
    struct CMUnitTest tests[N_CASES + 4];
    size_t n = 0;

    for (size_t i = 0; i < N_CASES; i++) {
        tests[n] = (struct CMUnitTest)cmocka_unit_test_prestate(run_case, (void *)&cases[i]);
        tests[n++].name = cases[i].name;
    }
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_long_local_part_is_no_trouble);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_domain_longer_than_the_buffer_is_malformed);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_overlong_domain_is_malformed);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_pick);
    return UNIT_RUN("rcpt", tests, n);
}
