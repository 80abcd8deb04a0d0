/*
 * test_tlsrpt_txt.c - the _smtp._tls TXT record parser, selector and rua
 * URI checks (src/tlsrpt_txt.c, RFC 8460 section 3).  Table-driven: one
 * named case per rule; a failure prints "case NAME: got X, want Y".
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "unit_records.h"
#include "unit_run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tlsrpt/tlsrpt_txt.h"

#define LIT(s) s, sizeof(s) - 1 /* a literal that may contain NUL bytes */
#define V "v=TLSRPTv1;"
#define NAME32 "a234567890123456789012345678901b"

typedef struct parse_case {
    const char *name;
    const char *rec;
    size_t len;
    sts_status want;
    size_t want_n;         /* usable URIs, when want == STS_OK */
    size_t want_ignored;   /* skipped URIs, when want == STS_OK */
    const char *want_what; /* first usable URI: its addr (mailto) or url (https), if set */
    const char *want_why;  /* substring of the reason (PERMFAIL) or of ignored_why */
} parse_case;

static const parse_case parse_cases[] = {
    /* RFC 8460 section 3 examples and the grammar's accepted shapes. */
    { "rfc_example_mailto", LIT("v=TLSRPTv1;rua=mailto:reports@example.com"), STS_OK, 1, 0,
      "reports@example.com", NULL },
    { "rfc_example_https", LIT("v=TLSRPTv1; rua=https://reporting.example.com/v1/tlsrpt"),
      STS_OK, 1, 0, "https://reporting.example.com/v1/tlsrpt", NULL },
    { "two_uris", LIT(V " rua=mailto:a@example.com,https://r.example.com/x"), STS_OK, 2, 0,
      "a@example.com", NULL },
    { "whitespace_around_comma", LIT(V " rua=mailto:a@example.com \t, https://r.example.com/x"),
      STS_OK, 2, 0, "a@example.com", NULL },
    { "whitespace_around_semicolon", LIT("v=TLSRPTv1 ;\trua=mailto:a@b.example ;"), STS_OK, 1,
      0, "a@b.example", NULL },
    { "trailing_semicolon", LIT(V "rua=mailto:a@b.example;"), STS_OK, 1, 0, NULL, NULL },
    { "trailing_whitespace_tolerated", LIT(V "rua=mailto:a@b.example \t"), STS_OK, 1, 0, NULL,
      NULL },
    { "trailing_semicolon_and_whitespace", LIT(V "rua=mailto:a@b.example; "), STS_OK, 1, 0,
      NULL, NULL },

    /* v=TLSRPTv1 must open the record, exactly (%s: case-sensitive). */
    { "version_upper_V", LIT("V=TLSRPTv1; rua=mailto:a@b.example"), STS_PERMFAIL, 0, 0, NULL,
      "does not start with v=TLSRPTv1" },
    { "version_lower_case", LIT("v=tlsrptv1; rua=mailto:a@b.example"), STS_PERMFAIL, 0, 0, NULL,
      "does not start with v=TLSRPTv1" },
    { "version_TLSRPTv10", LIT("v=TLSRPTv10; rua=mailto:a@b.example"), STS_PERMFAIL, 0, 0, NULL,
      "does not start with v=TLSRPTv1" },
    { "version_not_first", LIT("rua=mailto:a@b.example; v=TLSRPTv1"), STS_PERMFAIL, 0, 0, NULL,
      "does not start with v=TLSRPTv1" },
    { "leading_space", LIT(" v=TLSRPTv1; rua=mailto:a@b.example"), STS_PERMFAIL, 0, 0, NULL,
      "does not start with v=TLSRPTv1" },
    { "empty_record", LIT(""), STS_PERMFAIL, 0, 0, NULL, "does not start with v=TLSRPTv1" },
    { "version_without_delimiter", LIT("v=TLSRPTv1 rua=mailto:a@b.example"), STS_PERMFAIL, 0, 0,
      NULL, "expected ';'" },

    /* rua is required; its name is case-sensitive. */
    { "version_only", LIT("v=TLSRPTv1"), STS_PERMFAIL, 0, 0, NULL, "required rua field missing" },
    { "version_and_delimiter_only", LIT(V), STS_PERMFAIL, 0, 0, NULL,
      "required rua field missing" },
    { "rua_name_upper_case_is_extension", LIT(V "RUA=mailto:a@b.example"), STS_PERMFAIL, 0, 0,
      NULL, "required rua field missing" },
    { "duplicate_rua_first_wins", LIT(V "rua=mailto:a@x.example; rua=mailto:b@x.example"),
      STS_OK, 1, 0, "a@x.example", NULL },
    { "duplicate_rua_still_checked", LIT(V "rua=mailto:a@x.example; rua="), STS_PERMFAIL, 0, 0,
      NULL, "empty URI" },

    /* Empty rua and list items break the grammar: no reports. */
    { "empty_rua", LIT(V "rua="), STS_PERMFAIL, 0, 0, NULL, "empty URI" },
    { "empty_rua_then_field", LIT(V "rua=; foo=bar"), STS_PERMFAIL, 0, 0, NULL, "empty URI" },
    { "trailing_comma", LIT(V "rua=mailto:a@b.example,"), STS_PERMFAIL, 0, 0, NULL, "empty URI" },
    { "leading_comma", LIT(V "rua=,mailto:a@b.example"), STS_PERMFAIL, 0, 0, NULL, "empty URI" },
    { "double_comma", LIT(V "rua=mailto:a@b.example,,mailto:c@b.example"), STS_PERMFAIL, 0, 0,
      NULL, "empty URI" },
    { "space_separated_uris", LIT(V "rua=mailto:a@b.example mailto:c@b.example"), STS_PERMFAIL,
      0, 0, NULL, "expected ';'" },
    { "uri_with_space_inside", LIT(V "rua=https://r.example/a b"), STS_PERMFAIL, 0, 0, NULL,
      "expected ';'" },
    { "rua_8bit", LIT(V "rua=mailto:a@b.example\xc3\xa9"), STS_PERMFAIL, 0, 0, NULL,
      "rua contains '\\xc3'" },
    { "rua_nul_byte", LIT(V "rua=mailto:a@b.example\0x"), STS_PERMFAIL, 0, 0, NULL,
      "rua contains '\\x00'" },

    /* Delimiters and extension fields (checked, then ignored). */
    { "empty_field", LIT(V ";rua=mailto:a@b.example"), STS_PERMFAIL, 0, 0, NULL, "empty field" },
    { "extensions_ignored", LIT(V " foo=bar; rua=mailto:a@b.example; x.y_z-1=q!~"), STS_OK, 1, 0,
      "a@b.example", NULL },
    { "second_version_is_extension", LIT(V " v=TLSRPTv2; rua=mailto:a@b.example"), STS_OK, 1, 0,
      NULL, NULL },
    { "extension_name_32_chars", LIT(V " " NAME32 "=x; rua=mailto:a@b.example"), STS_OK, 1, 0,
      NULL, NULL },
    { "extension_name_33_chars", LIT(V " " NAME32 "c=x; rua=mailto:a@b.example"), STS_PERMFAIL,
      0, 0, NULL, "longer than 32" },
    { "extension_without_equals", LIT(V " rua=mailto:a@b.example; foo"), STS_PERMFAIL, 0, 0, NULL,
      "field 'foo' has no '='" },
    { "extension_empty_value", LIT(V " rua=mailto:a@b.example; foo="), STS_PERMFAIL, 0, 0, NULL,
      "empty value" },
    { "extension_value_with_equals", LIT(V " rua=mailto:a@b.example; foo=a=b"), STS_PERMFAIL, 0,
      0, NULL, "contains '='" },
    { "extension_name_starts_with_dash", LIT(V " -foo=bar; rua=mailto:a@b.example"),
      STS_PERMFAIL, 0, 0, NULL, "expected a field name" },

    /* Schemes: only mailto and https are used, others skipped. */
    { "http_skipped", LIT(V "rua=http://r.example/x"), STS_OK, 0, 1, NULL, "not supported" },
    { "ftp_skipped_mailto_kept", LIT(V "rua=ftp://r.example/x,mailto:a@b.example"), STS_OK, 1, 1,
      "a@b.example", "scheme 'ftp'" },
    { "scheme_case_insensitive", LIT(V "rua=MAILTO:a@b.example,HTTPS://R.Example/x"), STS_OK, 2,
      0, "a@b.example", NULL },
    { "no_scheme_skipped", LIT(V "rua=reports@example.com"), STS_OK, 0, 1, NULL, "no URI scheme" },

    /* RFC 8460: ',', '!' and ';' in a URI must be percent-encoded; no
     * DMARC-style size suffix. */
    { "dmarc_size_suffix_skipped", LIT(V "rua=mailto:a@b.example!10m"), STS_OK, 0, 1, NULL,
      "'!' must be percent-encoded" },
    { "encoded_bang_in_local_part", LIT(V "rua=mailto:a%21b@b.example"), STS_OK, 1, 0,
      "a!b@b.example", NULL },
    { "encoded_comma_two_addresses", LIT(V "rua=mailto:a@b.example%2Cc@b.example"), STS_OK, 0, 1,
      NULL, "several addresses" },
    { "bad_percent_escape", LIT(V "rua=mailto:a%2@b.example"), STS_OK, 0, 1, NULL,
      "not followed by two hex digits" },
    { "quote_not_a_uri_char", LIT(V "rua=mailto:\"a\"@b.example"), STS_OK, 0, 1, NULL,
      "not allowed in a URI" },

    /* mailto: (RFC 6068) - the address part only. */
    { "mailto_hfields_ignored", LIT(V "rua=mailto:reports@example.com?subject=TLS%20report"),
      STS_OK, 1, 0, "reports@example.com", NULL },
    { "mailto_percent_decoded", LIT(V "rua=mailto:tls%2Dreports@example.com"), STS_OK, 1, 0,
      "tls-reports@example.com", NULL },
    { "mailto_domain_normalised", LIT(V "rua=mailto:Rep@EXAMPLE.COM."), STS_OK, 1, 0,
      "Rep@example.com", NULL },
    { "mailto_empty", LIT(V "rua=mailto:"), STS_OK, 0, 1, NULL, "without an address" },
    { "mailto_only_hfields", LIT(V "rua=mailto:?to=a@b.example"), STS_OK, 0, 1, NULL,
      "without an address" },
    { "mailto_no_at", LIT(V "rua=mailto:reports"), STS_OK, 0, 1, NULL, "not local@domain" },
    { "mailto_two_at", LIT(V "rua=mailto:a@b@c.example"), STS_OK, 0, 1, NULL, "not local@domain" },
    { "mailto_dot_dot_local", LIT(V "rua=mailto:a..b@c.example"), STS_OK, 0, 1, NULL,
      "dot-atom" },
    { "mailto_address_literal", LIT(V "rua=mailto:a@[127.0.0.1]"), STS_OK, 0, 1, NULL,
      "mailto domain" },
    { "mailto_bad_domain", LIT(V "rua=mailto:a@-x.example"), STS_OK, 0, 1, NULL, "mailto domain" },
    { "mailto_encoded_newline", LIT(V "rua=mailto:a%0A@b.example"), STS_OK, 0, 1, NULL,
      "dot-atom" },

    /* https: host, port, no credentials, no IP literal. */
    { "https_port_and_fragment", LIT(V "rua=https://r.example:8443/p?q=1#frag"), STS_OK, 1, 0,
      "https://r.example:8443/p?q=1", NULL },
    { "https_port_443_dropped", LIT(V "rua=https://r.example:443/p"), STS_OK, 1, 0,
      "https://r.example/p", NULL },
    { "https_host_normalised", LIT(V "rua=https://R.EXAMPLE./p"), STS_OK, 1, 0,
      "https://r.example/p", NULL },
    { "https_no_path", LIT(V "rua=https://r.example"), STS_OK, 1, 0, "https://r.example", NULL },
    { "https_empty_port", LIT(V "rua=https://r.example:/p"), STS_OK, 1, 0, "https://r.example/p",
      NULL },
    { "https_port_too_big", LIT(V "rua=https://r.example:65536/"), STS_OK, 0, 1, NULL,
      "bad port" },
    { "https_port_zero", LIT(V "rua=https://r.example:0/"), STS_OK, 0, 1, NULL, "bad port" },
    { "https_port_not_numeric", LIT(V "rua=https://r.example:x/"), STS_OK, 0, 1, NULL,
      "bad port" },
    { "https_userinfo", LIT(V "rua=https://u:p@r.example/"), STS_OK, 0, 1, NULL,
      "user information" },
    { "https_ipv6_literal", LIT(V "rua=https://[::1]/x"), STS_OK, 0, 1, NULL, "IP literal" },
    { "https_ipv4_host", LIT(V "rua=https://127.0.0.1/x"), STS_OK, 0, 1, NULL, "https host" },
    { "https_no_slashes", LIT(V "rua=https:r.example/x"), STS_OK, 0, 1, NULL, "without '//'" },
    { "https_empty_host", LIT(V "rua=https:///x"), STS_OK, 0, 1, NULL, "plain host name" },

    /* Duplicates and the limit. */
    { "same_uri_twice", LIT(V "rua=mailto:a@b.example,mailto:a@b.example"), STS_OK, 1, 1,
      "a@b.example", "listed twice" },
};

static void run_parse_case(void **state)
{
    const parse_case *tc = *state;
    sts_tlsrpt *got = calloc(1, sizeof(*got));
    sts_why why;
    sts_status st;

    assert_non_null(got);
    memset(&why, 0, sizeof(why));
    st = sts_tlsrpt_parse(tc->rec, tc->len, got, &why);
    if (st != tc->want)
        fail_msg("case %s: got %s (%s), want %s", tc->name, sts_status_name(st), why.text,
                 sts_status_name(tc->want));
    if (st == STS_OK) {
        if (got->n != tc->want_n || got->ignored != tc->want_ignored)
            fail_msg("case %s: got %zu usable / %zu skipped (%s), want %zu / %zu", tc->name,
                     got->n, got->ignored, got->ignored_why.text, tc->want_n, tc->want_ignored);
        if (tc->want_what != NULL) {
            const sts_tlsrpt_uri *u = &got->rua[0];
            const char *what = u->scheme == STS_TLSRPT_MAILTO ? u->addr : u->url;

            if (strcmp(what, tc->want_what) != 0)
                fail_msg("case %s: got '%s', want '%s'", tc->name, what, tc->want_what);
        }
        if (tc->want_why != NULL && strstr(got->ignored_why.text, tc->want_why) == NULL)
            fail_msg("case %s: got skip reason '%s', want it to contain '%s'", tc->name,
                     got->ignored_why.text, tc->want_why);
        if (tc->want_ignored == 0 && got->ignored_why.text[0] != '\0')
            fail_msg("case %s: got skip reason '%s', want none", tc->name, got->ignored_why.text);
    } else {
        if (got->n != 0)
            fail_msg("case %s: got %zu URIs on failure, want 0", tc->name, got->n);
        if (tc->want_why != NULL && strstr(why.text, tc->want_why) == NULL)
            fail_msg("case %s: got reason '%s', want it to contain '%s'", tc->name, why.text,
                     tc->want_why);
    }
    free(got);
}

typedef struct select_case {
    const char *name;
    const char *recs[UNIT_RECORDS_MAX]; /* NULL after the last */
    sts_status want;
    size_t want_n;
    const char *want_why;
    size_t n_other; /* unrelated records around them (unit_records.h) */
} select_case;

static const select_case select_cases[] = {
    { "select_no_records", { NULL }, STS_NOTFOUND, 0, "no v=TLSRPTv1 record among 0" },
    { "select_only_other_records", { "v=spf1 -all", "v=STSv1; id=1" }, STS_NOTFOUND, 0,
      "among 2 TXT records" },
    { "select_one_among_others", { "v=spf1 -all", V "rua=mailto:a@b.example", "hello" }, STS_OK,
      1, NULL },
    { "select_two_records", { V "rua=mailto:a@b.example", V "rua=mailto:c@b.example" },
      STS_PERMFAIL, 0, "found 2 v=TLSRPTv1 records" },
    { "select_two_one_invalid", { V "rua=mailto:a@b.example", "v=TLSRPTv1" }, STS_PERMFAIL, 0,
      "found 2" },
    { "select_space_before_semicolon_counts",
      { "v=TLSRPTv1 ;rua=mailto:a@b.example", V "rua=mailto:c@b.example" }, STS_PERMFAIL, 0,
      "found 2" },
    { "select_TLSRPTv10_discarded", { "v=TLSRPTv10; rua=mailto:x@b.example", V "rua=mailto:a@b.example" },
      STS_OK, 1, NULL },
    { "select_case_discarded", { "V=TLSRPTv1; rua=mailto:x@b.example", V "rua=mailto:a@b.example" },
      STS_OK, 1, NULL },
    { "select_one_invalid", { V " rua=" }, STS_PERMFAIL, 0, "invalid v=TLSRPTv1 record" },
    { "select_valid_no_usable_uri", { V "rua=http://x.example/" }, STS_OK, 0, NULL },
    /* Discarded first, however many: no limit on the count of records. */
    { "select_one_among_300_unrelated", { V "rua=mailto:a@b.example" }, STS_OK, 1, NULL, 300 },
    { "select_none_among_300_unrelated", { NULL }, STS_NOTFOUND, 0,
      "no v=TLSRPTv1 record among 300 TXT records", 300 },
    { "select_two_among_300_unrelated", { V "rua=mailto:a@b.example", V "rua=mailto:c@b.example" },
      STS_PERMFAIL, 0, "found 2 v=TLSRPTv1 records", 300 },
};

static void run_select_case(void **state)
{
    const select_case *tc = *state;
    size_t n;
    sts_txt_rr *rr = unit_records(tc->recs, tc->n_other, &n);
    sts_tlsrpt *got = calloc(1, sizeof(*got));
    sts_why why;
    sts_status st;

    assert_non_null(got);
    memset(&why, 0, sizeof(why));
    st = sts_tlsrpt_select(rr, n, got, &why);
    free(rr);
    if (st != tc->want || (st == STS_OK && got->n != tc->want_n))
        fail_msg("case %s: got %s n=%zu (%s), want %s n=%zu", tc->name, sts_status_name(st),
                 got->n, why.text, sts_status_name(tc->want), tc->want_n);
    if (tc->want_why != NULL && strstr(why.text, tc->want_why) == NULL)
        fail_msg("case %s: got reason '%s', want it to contain '%s'", tc->name, why.text,
                 tc->want_why);
    free(got);
}

typedef struct is_case {
    const char *name;
    const char *rec;
    size_t len;
    bool want;
} is_case;

static const is_case is_cases[] = {
    { "is_semicolon", LIT("v=TLSRPTv1;"), true },
    { "is_space", LIT("v=TLSRPTv1 ;rua=x"), true },
    { "is_tab", LIT("v=TLSRPTv1\t;"), true },
    { "is_bare", LIT("v=TLSRPTv1"), true },
    { "is_v10", LIT("v=TLSRPTv10;"), false },
    { "is_prefix", LIT("v=TLSRPTv"), false },
    { "is_leading_space", LIT(" v=TLSRPTv1;"), false },
    { "is_lower", LIT("v=tlsrptv1;"), false },
    { "is_nul_after", LIT("v=TLSRPTv1\0"), false },
    { "is_comma_after", LIT("v=TLSRPTv1,rua=x"), false },
    { "is_empty", LIT(""), false },
};

static void test_is_record(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(is_cases) / sizeof(is_cases[0]); i++) {
        const is_case *tc = &is_cases[i];
        bool got = sts_tlsrpt_is_record(tc->rec, tc->len);

        if (got != tc->want)
            fail_msg("case %s: got %d, want %d", tc->name, got, tc->want);
    }
    if (sts_tlsrpt_is_record(NULL, 0))
        fail_msg("case is_null: got true, want false");
}

/* Bytes after len are never looked at (DNS data is not NUL-terminated). */
static void test_length_bounds_input(void **state)
{
    static const char rec[] = V "rua=mailto:a@b.example,http://x";
    sts_tlsrpt *got = calloc(1, sizeof(*got));
    sts_status st;

    (void)state;
    assert_non_null(got);
    st = sts_tlsrpt_parse(rec, strlen(V "rua=mailto:a@b.example"), got, NULL);
    if (st != STS_OK || got->n != 1 || got->ignored != 0)
        fail_msg("case length_bounds_input: got %s n=%zu ignored=%zu, want ok 1/0",
                 sts_status_name(st), got->n, got->ignored);
    free(got);
}

/* More usable URIs than STS_TLSRPT_MAX_RUA: the first ones are kept. */
static void test_uri_limit(void **state)
{
    char rec[4096];
    size_t o = (size_t)snprintf(rec, sizeof(rec), "%s", V "rua=");
    sts_tlsrpt *got = calloc(1, sizeof(*got));
    sts_status st;

    (void)state;
    assert_non_null(got);
    for (int i = 0; i <= STS_TLSRPT_MAX_RUA; i++)
        o += (size_t)snprintf(rec + o, sizeof(rec) - o, "%smailto:r%d@b.example", i ? "," : "", i);
    st = sts_tlsrpt_parse(rec, o, got, NULL);
    if (st != STS_OK || got->n != STS_TLSRPT_MAX_RUA || got->ignored != 1 ||
        strcmp(got->rua[0].addr, "r0@b.example") != 0 ||
        strstr(got->ignored_why.text, "too many") == NULL)
        fail_msg("case uri_limit: got %s n=%zu ignored=%zu (%s), want ok %d/1 too many",
                 sts_status_name(st), got->n, got->ignored, got->ignored_why.text,
                 STS_TLSRPT_MAX_RUA);
    free(got);
}

/* A URI longer than STS_TLSRPT_URI_MAX is skipped, not cut. */
static void test_long_uri(void **state)
{
    char rec[STS_TLSRPT_URI_MAX + 200];
    size_t o = (size_t)snprintf(rec, sizeof(rec), "%s", V "rua=https://r.example/");
    sts_tlsrpt *got = calloc(1, sizeof(*got));
    sts_status st;

    (void)state;
    assert_non_null(got);
    while (o < STS_TLSRPT_URI_MAX + 20)
        rec[o++] = 'a';
    st = sts_tlsrpt_parse(rec, o, got, NULL);
    if (st != STS_OK || got->n != 0 || got->ignored != 1 ||
        strstr(got->ignored_why.text, "longer than") == NULL)
        fail_msg("case long_uri: got %s n=%zu ignored=%zu (%s), want ok 0/1 longer than",
                 sts_status_name(st), got->n, got->ignored, got->ignored_why.text);
    free(got);
}

/* The fields of a parsed https URI and the uri identity kept verbatim. */
static void test_uri_fields(void **state)
{
    sts_tlsrpt_uri u;
    sts_status st;

    (void)state;
    st = sts_tlsrpt_uri_parse(LIT("HTTPS://Reports.Example:8443/a%20b?x=1#f"), &u, NULL);
    if (st != STS_OK || u.scheme != STS_TLSRPT_HTTPS || strcmp(u.host, "reports.example") != 0 ||
        u.port != 8443 || strcmp(u.url, "https://reports.example:8443/a%20b?x=1") != 0 ||
        strcmp(u.uri, "HTTPS://Reports.Example:8443/a%20b?x=1#f") != 0)
        fail_msg("case uri_fields_https: got %s host '%s' port %u url '%s' uri '%s'",
                 sts_status_name(st), u.host, u.port, u.url, u.uri);
    st = sts_tlsrpt_uri_parse(LIT("mailto:tls+rpt@Example.NET?subject=x"), &u, NULL);
    if (st != STS_OK || u.scheme != STS_TLSRPT_MAILTO || strcmp(u.addr, "tls+rpt@example.net") != 0)
        fail_msg("case uri_fields_mailto: got %s addr '%s'", sts_status_name(st), u.addr);
    st = sts_tlsrpt_uri_parse(LIT("gopher://x.example/"), &u, NULL);
    if (st != STS_NOTFOUND)
        fail_msg("case uri_unsupported_scheme: got %s, want notfound", sts_status_name(st));
}

#define N_PARSE (sizeof(parse_cases) / sizeof(parse_cases[0]))
#define N_SELECT (sizeof(select_cases) / sizeof(select_cases[0]))

int main(void)
{
    struct CMUnitTest tests[N_PARSE + N_SELECT + 5];
    size_t n = 0;

    for (size_t i = 0; i < N_PARSE; i++) {
        tests[n] = (struct CMUnitTest)cmocka_unit_test_prestate(run_parse_case,
                                                                (void *)&parse_cases[i]);
        tests[n++].name = parse_cases[i].name;
    }
    for (size_t i = 0; i < N_SELECT; i++) {
        tests[n] = (struct CMUnitTest)cmocka_unit_test_prestate(run_select_case,
                                                                (void *)&select_cases[i]);
        tests[n++].name = select_cases[i].name;
    }
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_is_record);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_length_bounds_input);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_uri_limit);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_long_uri);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_uri_fields);
    return UNIT_RUN("tlsrpt_txt", tests, n);
}
