/*
 * test_txt.c - the _mta-sts TXT record parser and selector (src/txt.c,
 * RFC 8461 3.1).  Table-driven: one named case per rule; a failure prints
 * "case NAME: got X, want Y".
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "unit_records.h"
#include "unit_run.h"

#include <stdio.h>
#include <string.h>

#include "sts/txt.h"

#define LIT(s) s, sizeof(s) - 1 /* a literal that may contain NUL bytes */
#define ID32 "abcdefghijklmnopqrstuvwxyz012345"
#define NAME32 "a234567890123456789012345678901b"

typedef struct parse_case {
    const char *name;
    const char *rec;
    size_t len;
    sts_status want;
    const char *want_id;  /* checked when want == STS_OK */
    const char *want_why; /* substring of the reason, checked when not NULL */
} parse_case;

static parse_case parse_cases[] = {
    /* The grammar's accepted shapes. */
    { "basic", LIT("v=STSv1; id=20160831085700Z;"), STS_OK, "20160831085700Z", NULL },
    { "no_trailing_semicolon", LIT("v=STSv1; id=abc"), STS_OK, "abc", NULL },
    { "no_whitespace", LIT("v=STSv1;id=abc"), STS_OK, "abc", NULL },
    { "whitespace_around_semicolon", LIT("v=STSv1 ;\tid=abc \t;  "), STS_OK, "abc", NULL },
    { "trailing_semicolon", LIT("v=STSv1; id=abc;"), STS_OK, "abc", NULL },
    { "trailing_whitespace_tolerated", LIT("v=STSv1; id=abc \t"), STS_OK, "abc", NULL },
    { "trailing_semicolon_and_whitespace", LIT("v=STSv1; id=abc; \t"), STS_OK, "abc", NULL },
    { "id_1_char_ok", LIT("v=STSv1; id=Z"), STS_OK, "Z", NULL },
    { "id_32_chars_ok", LIT("v=STSv1; id=" ID32), STS_OK, ID32, NULL },

    /* v=STSv1 must open the record, exactly. */
    { "v_STSv10_is_not_sts", LIT("v=STSv10; id=1"), STS_PERMFAIL, NULL, "does not start with v=STSv1" },
    { "leading_space_not_sts", LIT(" v=STSv1; id=1"), STS_PERMFAIL, NULL, "does not start with v=STSv1" },
    { "version_case_sensitive", LIT("v=stsv1; id=1"), STS_PERMFAIL, NULL, "does not start with v=STSv1" },
    { "version_not_first", LIT("id=1; v=STSv1"), STS_PERMFAIL, NULL, "does not start with v=STSv1" },
    { "empty_record", LIT(""), STS_PERMFAIL, NULL, "does not start with v=STSv1" },
    { "version_without_delimiter", LIT("v=STSv1 id=1"), STS_PERMFAIL, NULL, "expected ';'" },

    /* The id field. */
    { "missing_id", LIT("v=STSv1;"), STS_PERMFAIL, NULL, "required id field missing" },
    { "version_only", LIT("v=STSv1"), STS_PERMFAIL, NULL, "required id field missing" },
    { "id_name_case_sensitive", LIT("v=STSv1; ID=abc"), STS_PERMFAIL, NULL, "required id field missing" },
    { "id_33_chars_invalid", LIT("v=STSv1; id=" ID32 "6"), STS_PERMFAIL, NULL, "33 characters" },
    { "id_empty_invalid", LIT("v=STSv1; id=;"), STS_PERMFAIL, NULL, "id field is empty" },
    { "id_empty_at_end_invalid", LIT("v=STSv1; id="), STS_PERMFAIL, NULL, "id field is empty" },
    { "id_with_dash_invalid", LIT("v=STSv1; id=abc-def"), STS_PERMFAIL, NULL, "id contains '-'" },
    { "id_with_dot_invalid", LIT("v=STSv1; id=1.2"), STS_PERMFAIL, NULL, "id contains '.'" },
    { "id_starting_with_dash_invalid", LIT("v=STSv1; id=-1"), STS_PERMFAIL, NULL, "id contains '-'" },
    { "id_with_space_inside_invalid", LIT("v=STSv1; id=abc def"), STS_PERMFAIL, NULL, "expected ';'" },
    { "id_8bit_invalid", LIT("v=STSv1; id=caf\xc3\xa9"), STS_PERMFAIL, NULL, "id contains '\\xc3'" },
    { "duplicate_id_first_wins", LIT("v=STSv1; id=first; id=second"), STS_OK, "first", NULL },
    { "duplicate_id_still_checked", LIT("v=STSv1; id=first; id=bad-one"), STS_PERMFAIL, NULL, "id contains '-'" },

    /* Delimiters and empty fields. */
    { "empty_field_invalid", LIT("v=STSv1;;id=1"), STS_PERMFAIL, NULL, "empty field" },
    { "empty_field_with_space_invalid", LIT("v=STSv1; ; id=1"), STS_PERMFAIL, NULL, "empty field" },
    { "double_trailing_semicolon_invalid", LIT("v=STSv1; id=1;;"), STS_PERMFAIL, NULL, "empty field" },
    { "comma_delimiter_invalid", LIT("v=STSv1, id=1"), STS_PERMFAIL, NULL, "does not start with v=STSv1" },

    /* Extension fields: checked against the grammar, then ignored. */
    { "extension_ignored", LIT("v=STSv1; id=1; foo=bar"), STS_OK, "1", NULL },
    { "extension_before_id", LIT("v=STSv1; a.b_c-d=x!y:~; id=1"), STS_OK, "1", NULL },
    { "second_version_is_extension", LIT("v=STSv1; v=STSv2; id=1"), STS_OK, "1", NULL },
    { "extension_name_32_chars_ok", LIT("v=STSv1; id=1; " NAME32 "=x"), STS_OK, "1", NULL },
    { "extension_name_33_chars_invalid", LIT("v=STSv1; id=1; " NAME32 "c=x"), STS_PERMFAIL, NULL, "longer than 32" },
    { "bad_extension_invalid", LIT("v=STSv1; id=1; foo"), STS_PERMFAIL, NULL, "field 'foo' has no '='" },
    { "extension_empty_value_invalid", LIT("v=STSv1; id=1; foo="), STS_PERMFAIL, NULL, "empty value" },
    { "extension_value_with_equals_invalid", LIT("v=STSv1; id=1; foo=a=b"), STS_PERMFAIL, NULL, "contains '='" },
    { "extension_name_starts_with_dash_invalid", LIT("v=STSv1; id=1; -foo=bar"), STS_PERMFAIL, NULL, "expected a field name" },
    { "extension_name_with_space_invalid", LIT("v=STSv1; id=1; foo =bar"), STS_PERMFAIL, NULL, "has no '='" },
    { "extension_value_control_invalid", LIT("v=STSv1; id=1; foo=a\x01"), STS_PERMFAIL, NULL, "contains '\\x01'" },
    { "extension_value_8bit_invalid", LIT("v=STSv1; id=1; foo=\xc3\xa9"), STS_PERMFAIL, NULL, "contains '\\xc3'" },
    { "extension_value_del_invalid", LIT("v=STSv1; id=1; foo=a\x7f"), STS_PERMFAIL, NULL, "contains '\\x7f'" },

    /* Bytes outside the grammar. */
    { "nul_byte_invalid", LIT("v=STSv1; id=1\0"), STS_PERMFAIL, NULL, "id contains '\\x00'" },
    { "nul_after_delimiter_invalid", LIT("v=STSv1; id=1;\0"), STS_PERMFAIL, NULL, "expected a field name" },
    { "newline_invalid", LIT("v=STSv1; id=1\n"), STS_PERMFAIL, NULL, "id contains '\\x0a'" },
};

typedef struct select_case {
    const char *name;
    const char *recs[UNIT_RECORDS_MAX]; /* NULL after the last */
    sts_status want;
    const char *want_id;
    const char *want_why;
    size_t n_other; /* unrelated records around them (unit_records.h) */
} select_case;

static select_case select_cases[] = {
    { "select_single", { "v=STSv1; id=1", NULL }, STS_OK, "1", NULL },
    { "select_discards_before_counting", { "v=spf1 -all", "v=STSv1; id=abc", NULL }, STS_OK, "abc", NULL },
    { "select_discards_STSv10", { "v=STSv10; id=2", "v=STSv1; id=1", NULL }, STS_OK, "1", NULL },
    { "select_discards_leading_space", { " v=STSv1; id=2", "v=STSv1; id=1", NULL }, STS_OK, "1", NULL },
    { "select_discards_malformed_non_sts", { "garbage\x01", "v=STSv1; id=1", "", NULL }, STS_OK, "1", NULL },
    { "select_two_sts_records_invalid", { "v=STSv1; id=1", "v=STSv1; id=2", NULL }, STS_PERMFAIL, NULL,
      "found 2 v=STSv1 records, exactly one is allowed" },
    { "select_two_identical_records_invalid", { "v=STSv1; id=1", "v=STSv1; id=1", NULL }, STS_PERMFAIL, NULL,
      "found 2 v=STSv1 records" },
    { "select_two_sts_one_malformed_invalid", { "v=STSv1; id=1", "v=STSv1", NULL }, STS_PERMFAIL, NULL,
      "found 2 v=STSv1 records" },
    { "select_three_sts_records_invalid", { "v=STSv1; id=1", "v=STSv1;id=2", "v=STSv1 ; id=3", NULL },
      STS_PERMFAIL, NULL, "found 3 v=STSv1 records" },
    { "select_none_notfound", { "v=spf1 -all", "google-site-verification=x", NULL }, STS_NOTFOUND, NULL,
      "no v=STSv1 record" },
    { "select_no_records_notfound", { NULL }, STS_NOTFOUND, NULL, "no v=STSv1 record among 0" },
    { "select_only_STSv10_notfound", { "v=STSv10; id=1", NULL }, STS_NOTFOUND, NULL, NULL },
    { "select_malformed_single_invalid", { "v=STSv1; id=a-b", NULL }, STS_PERMFAIL, NULL,
      "invalid v=STSv1 record: id contains '-'" },
    { "select_version_only_invalid", { "v=STSv1", "v=spf1 -all", NULL }, STS_PERMFAIL, NULL,
      "required id field missing" },
    /* Discarded first, however many: no limit on the count of records. */
    { "select_one_among_300_unrelated", { "v=STSv1; id=among300", NULL }, STS_OK, "among300",
      NULL, 300 },
    { "select_none_among_300_unrelated", { NULL }, STS_NOTFOUND, NULL,
      "no v=STSv1 record among 300 TXT records", 300 },
    { "select_two_among_300_unrelated_invalid", { "v=STSv1; id=1", "v=STSv1; id=2", NULL },
      STS_PERMFAIL, NULL, "found 2 v=STSv1 records", 300 },
};

static void check_result(const char *name, sts_status st, const sts_txt *got, const sts_why *why,
                         sts_status want, const char *want_id, const char *want_why)
{
    if (st != want)
        fail_msg("case %s: got %s (%s), want %s", name, sts_status_name(st), why->text,
                 sts_status_name(want));
    if (st == STS_OK && strcmp(got->id, want_id) != 0)
        fail_msg("case %s: got id '%s', want '%s'", name, got->id, want_id);
    if (want_why != NULL && strstr(why->text, want_why) == NULL)
        fail_msg("case %s: got reason '%s', want it to contain '%s'", name, why->text, want_why);
    if (strlen(why->text) >= STS_WHY_MAX)
        fail_msg("case %s: got an unterminated reason, want a NUL within %d bytes", name,
                 STS_WHY_MAX);
}

static void run_parse_case(void **state)
{
    const parse_case *tc = *state;
    sts_txt got;
    sts_why why;
    sts_status st;

    memset(&got, 0, sizeof(got));
    memset(&why, 0, sizeof(why));
    st = sts_txt_parse(tc->rec, tc->len, &got, &why);
    check_result(tc->name, st, &got, &why, tc->want, tc->want_id, tc->want_why);

    /* The parser and the discard test must agree on what is an STS record. */
    if (st == STS_OK && !sts_txt_is_sts(tc->rec, tc->len))
        fail_msg("case %s: got is_sts false for a valid record, want true", tc->name);

    /* A NULL reason is accepted and does not change the outcome. */
    st = sts_txt_parse(tc->rec, tc->len, &got, NULL);
    if (st != tc->want)
        fail_msg("case %s (why NULL): got %s, want %s", tc->name, sts_status_name(st),
                 sts_status_name(tc->want));
}

static void run_select_case(void **state)
{
    const select_case *tc = *state;
    size_t n;
    sts_txt_rr *rrs = unit_records(tc->recs, tc->n_other, &n);
    sts_txt got;
    sts_why why;
    sts_status st;

    memset(&got, 0, sizeof(got));
    memset(&why, 0, sizeof(why));
    st = sts_txt_select(rrs, n, &got, &why);
    free(rrs);
    check_result(tc->name, st, &got, &why, tc->want, tc->want_id, tc->want_why);
}

/* DNS hands a TXT record over as several character-strings; the caller
 * joins them (txt.h) and the parser sees one record. */
static void test_multi_string_concatenation(void **state)
{
    static const char *const parts[] = { "v=STSv1; id=", "2024", "0101T000000Z;" };
    char joined[64];
    size_t len = 0;
    sts_txt_rr rr;
    sts_txt got;
    sts_why why;
    sts_status st;

    (void)state;
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        size_t n = strlen(parts[i]);

        memcpy(joined + len, parts[i], n);
        len += n;
    }
    rr.data = joined; /* deliberately not NUL-terminated */
    rr.len = len;
    memset(&why, 0, sizeof(why));
    st = sts_txt_select(&rr, 1, &got, &why);
    if (st != STS_OK || strcmp(got.id, "20240101T000000Z") != 0)
        fail_msg("case multi_string_concatenation: got %s id '%s' (%s), want ok id "
                 "'20240101T000000Z'",
                 sts_status_name(st), st == STS_OK ? got.id : "", why.text);
}

typedef struct is_sts_case {
    const char *name;
    const char *rec;
    size_t len;
    bool want;
} is_sts_case;

static const is_sts_case is_sts_cases[] = {
    { "is_sts_semicolon", LIT("v=STSv1;"), true },
    { "is_sts_space", LIT("v=STSv1 ;id=1"), true },
    { "is_sts_tab", LIT("v=STSv1\t;id=1"), true },
    { "is_sts_bare", LIT("v=STSv1"), true },
    { "is_sts_STSv10", LIT("v=STSv10;"), false },
    { "is_sts_prefix", LIT("v=STSv"), false },
    { "is_sts_leading_space", LIT(" v=STSv1;"), false },
    { "is_sts_lower", LIT("v=stsv1;"), false },
    { "is_sts_nul_after", LIT("v=STSv1\0"), false },
    { "is_sts_empty", LIT(""), false },
};

static void test_is_sts(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(is_sts_cases) / sizeof(is_sts_cases[0]); i++) {
        const is_sts_case *tc = &is_sts_cases[i];
        bool got = sts_txt_is_sts(tc->rec, tc->len);

        if (got != tc->want)
            fail_msg("case %s: got %d, want %d", tc->name, got, tc->want);
    }
    if (sts_txt_is_sts(NULL, 0))
        fail_msg("case is_sts_null: got true, want false");
}

/* The length is honoured: bytes after len are never looked at. */
static void test_length_bounds_input(void **state)
{
    static const char rec[] = "v=STSv1; id=abc-def";
    sts_txt got;
    sts_status st;

    (void)state;
    st = sts_txt_parse(rec, strlen("v=STSv1; id=abc"), &got, NULL);
    if (st != STS_OK || strcmp(got.id, "abc") != 0)
        fail_msg("case length_bounds_input: got %s, want ok id 'abc'", sts_status_name(st));
}

/* On failure the output is left alone. */
static void test_out_untouched_on_failure(void **state)
{
    sts_txt got;
    sts_status st;

    (void)state;
    memcpy(got.id, "keep", 5);
    st = sts_txt_parse(LIT("v=STSv1; id=a-b"), &got, NULL);
    if (st != STS_PERMFAIL || strcmp(got.id, "keep") != 0)
        fail_msg("case out_untouched_on_failure: got %s id '%s', want permfail id 'keep'",
                 sts_status_name(st), got.id);
}

/* A made-up grammar for the walker: "k=" fields are counted and their
 * value must be "ok"; everything else is left to the walker. */
static sts_status test_field(void *arg, sts_cur *c, const char *rec, sts_why *why)
{
    size_t *nk = arg;

    (void)rec;
    if (!sts_cur_take_lit(c, "k="))
        return STS_NOTFOUND;
    if (!sts_cur_take_lit(c, "ok") || !sts_txt_at_field_end(c)) {
        sts_why_set(why, "k is not ok");
        return STS_PERMFAIL;
    }
    (*nk)++;
    return STS_OK;
}

/* The field walker shared with tlsrpt_txt.c knows no version or field of
 * its own: walk records of a made-up "v=TEST1" grammar with it. */
static void test_field_walker(void **state)
{
    sts_txt_rr rrs[3] = { { LIT("v=TEST10; k=ok") }, { LIT("v=TEST1; k=ok") },
                          { LIT("v=STSv1; id=1") } };
    size_t nk = 0, which = 99;
    sts_why why = { "" };

    (void)state;
    if (sts_txt_walk(LIT("v=TEST1 ; k=ok;b.c=x ;k=ok"), "v=TEST1", test_field, &nk, &why) !=
            STS_OK || nk != 2)
        fail_msg("case walker_fields: got %zu k fields (%s), want 2", nk, why.text);
    if (sts_txt_walk(LIT("v=TEST1; k=bad"), "v=TEST1", test_field, &nk, &why) != STS_PERMFAIL ||
        strcmp(why.text, "k is not ok") != 0)
        fail_msg("case walker_field_reason: got '%s', want the field's own reason", why.text);
    if (sts_txt_walk(LIT("v=TEST1; x"), "v=TEST1", test_field, &nk, &why) != STS_PERMFAIL ||
        strcmp(why.text, "field 'x' has no '='") != 0)
        fail_msg("case walker_extension_checked: got '%s', want no '='", why.text);
    if (sts_txt_walk(LIT("v=STSv1; k=ok"), "v=TEST1", test_field, &nk, &why) != STS_PERMFAIL ||
        strcmp(why.text, "record does not start with v=TEST1") != 0)
        fail_msg("case walker_wrong_version: got '%s', want the version named", why.text);
    if (sts_txt_select_one(rrs, 3, "v=TEST1", &which, &why) != STS_OK || which != 1)
        fail_msg("case walker_select_one: got which=%zu (%s), want 1", which, why.text);
    if (sts_txt_select_one(rrs, 1, "v=TEST1", &which, &why) != STS_NOTFOUND ||
        strcmp(why.text, "no v=TEST1 record among 1 TXT records") != 0)
        fail_msg("case walker_select_none: got '%s', want the version named", why.text);
}

#define N_PARSE (sizeof(parse_cases) / sizeof(parse_cases[0]))
#define N_SELECT (sizeof(select_cases) / sizeof(select_cases[0]))

int main(void)
{
    struct CMUnitTest tests[N_PARSE + N_SELECT + 5];
    size_t n = 0;

    for (size_t i = 0; i < N_PARSE; i++) {
        tests[n] = (struct CMUnitTest)cmocka_unit_test_prestate(run_parse_case, &parse_cases[i]);
        tests[n++].name = parse_cases[i].name;
    }
    for (size_t i = 0; i < N_SELECT; i++) {
        tests[n] = (struct CMUnitTest)cmocka_unit_test_prestate(run_select_case, &select_cases[i]);
        tests[n++].name = select_cases[i].name;
    }
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_multi_string_concatenation);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_is_sts);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_length_bounds_input);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_out_untouched_on_failure);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_field_walker);
    return UNIT_RUN("txt", tests, n);
}
