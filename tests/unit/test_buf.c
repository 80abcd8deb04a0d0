/*
 * test_buf.c - the bounded cursor and the capped buffer (src/buf.h) that
 * every parser of network input stands on.  One table row per behaviour;
 * each row runs as its own cmocka test named after the row.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "unit_run.h"

#include "base/buf.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define S(lit) lit, sizeof(lit) - 1

/* Print a view for a failure message: "%.*s" with an int length. */
#define VIEW(c) (int)(c).len, (c).p

/* ------------------------------------------------------- take_number */

struct number_case {
    const char *name;
    const char *in;
    size_t len;
    size_t maxdigits;
    uint64_t max;
    bool want_ok;
    uint64_t want_value;
    size_t want_rest; /* bytes left in the view afterwards */
};

static struct number_case number_cases[] = {
    { "number_simple", S("123"), 10, 1000, true, 123, 0 },
    { "number_stops_at_non_digit", S("42abc"), 10, 1000, true, 42, 3 },
    { "number_stops_at_space", S("7 8"), 10, 1000, true, 7, 2 },
    { "number_no_digit_fails", S("abc"), 10, 1000, false, 0, 3 },
    { "number_empty_fails", S(""), 10, 1000, false, 0, 0 },
    { "number_plus_sign_fails", S("+5"), 10, 1000, false, 0, 2 },
    { "number_minus_sign_fails", S("-5"), 10, 1000, false, 0, 2 },
    { "number_leading_space_fails", S(" 5"), 10, 1000, false, 0, 2 },
    { "number_zero", S("0"), 10, 1000, true, 0, 0 },
    { "number_leading_zeros_ok", S("007"), 3, 1000, true, 7, 0 },
    { "number_leading_zeros_count_as_digits", S("0007"), 3, 1000, false, 0, 4 },
    { "number_maxdigits_exact", S("1234"), 4, 100000, true, 1234, 0 },
    { "number_maxdigits_exceeded", S("12345"), 4, 100000, false, 0, 5 },
    { "number_maxdigits_exceeded_then_text", S("12345x"), 4, 100000, false, 0, 6 },
    { "number_maxdigits_zero_fails", S("5"), 0, 100000, false, 0, 1 },
    { "number_equal_to_max", S("31557600"), 10, 31557600, true, 31557600, 0 },
    { "number_above_max", S("31557601"), 10, 31557600, false, 0, 8 },
    { "number_single_digit_above_max", S("7"), 10, 5, false, 0, 1 },
    { "number_last_digit_above_max", S("19"), 10, 15, false, 0, 2 },
    { "number_max_zero_takes_zero", S("0"), 10, 0, true, 0, 0 },
    { "number_max_zero_refuses_one", S("1"), 10, 0, false, 0, 1 },
    { "number_ten_digit_max_age", S("9999999999"), 10, UINT64_MAX, true, 9999999999u, 0 },
    { "number_uint64_max_ok", S("18446744073709551615"), 20, UINT64_MAX, true, UINT64_MAX, 0 },
    { "number_uint64_overflow_fails", S("18446744073709551616"), 20, UINT64_MAX, false, 0, 20 },
    { "number_uint64_overflow_big_fails", S("99999999999999999999"), 20, UINT64_MAX, false, 0,
      20 },
    { "number_many_digits_overflow_fails", S("123456789012345678901234567890"), 40, UINT64_MAX,
      false, 0, 30 },
    { "number_many_zeros_ok", S("000000000000000000000000000001"), 40, UINT64_MAX, true, 1, 0 },
    { "number_view_bounds_respected", "12345", 3, 10, 100000, true, 123, 0 },
};

static void run_number(void **state)
{
    const struct number_case *c = *state;
    sts_cur cur = sts_cur_make(c->in, c->len);
    uint64_t v = 0xdeadbeef;
    bool ok = sts_cur_take_number(&cur, c->maxdigits, c->max, &v);

    if (ok != c->want_ok)
        fail_msg("case %s: got %s, want %s", c->name, ok ? "ok" : "fail",
                 c->want_ok ? "ok" : "fail");
    if (ok && v != c->want_value)
        fail_msg("case %s: got value %llu, want %llu", c->name, (unsigned long long)v,
                 (unsigned long long)c->want_value);
    if (cur.len != c->want_rest || cur.p != c->in + (c->len - c->want_rest))
        fail_msg("case %s: got %zu bytes left, want %zu", c->name, cur.len, c->want_rest);
    if (!ok && v != 0xdeadbeef)
        fail_msg("case %s: got *out written (%llu) on failure, want it untouched", c->name,
                 (unsigned long long)v);
}

/* -------------------------------------------------------- take_until */

struct until_case {
    const char *name;
    const char *in;
    size_t len;
    char ch;
    bool want_ok;
    const char *want_out;
    size_t want_rest;
};

static struct until_case until_cases[] = {
    { "until_finds_char", S("key:value"), ':', true, "key", 6 },
    { "until_char_not_consumed", S(":x"), ':', true, "", 2 },
    { "until_first_occurrence", S("a;b;c"), ';', true, "a", 4 },
    { "until_missing_fails", S("keyvalue"), ':', false, NULL, 8 },
    { "until_empty_fails", S(""), ':', false, NULL, 0 },
    { "until_char_past_view_fails", "ab:c", 2, ':', false, NULL, 2 },
    { "until_nul_byte", S("ab\0cd"), '\0', true, "ab", 3 },
    { "until_high_byte", S("ab\xff" "cd"), '\xff', true, "ab", 3 },
};

static void run_until(void **state)
{
    const struct until_case *c = *state;
    sts_cur cur = sts_cur_make(c->in, c->len);
    sts_cur out = sts_cur_make(NULL, 0);
    bool ok = sts_cur_take_until(&cur, c->ch, &out);

    if (ok != c->want_ok)
        fail_msg("case %s: got %s, want %s", c->name, ok ? "ok" : "fail",
                 c->want_ok ? "ok" : "fail");
    if (ok && (out.p != c->in || !sts_cur_eq(&out, c->want_out)))
        fail_msg("case %s: got \"%.*s\", want \"%s\"", c->name, VIEW(out), c->want_out);
    if (cur.len != c->want_rest || cur.p != c->in + (c->len - c->want_rest))
        fail_msg("case %s: got %zu bytes left, want %zu", c->name, cur.len, c->want_rest);
}

/* -------------------------------------------------------- take_while */

static bool is_alpha_pred(unsigned char ch)
{
    return sts_is_alpha(ch);
}

struct while_case {
    const char *name;
    const char *in;
    size_t len;
    bool want_ok;
    const char *want_out;
    size_t want_rest;
};

static struct while_case while_cases[] = {
    { "while_prefix", S("abc123"), true, "abc", 3 },
    { "while_whole_view", S("abc"), true, "abc", 0 },
    { "while_first_byte_fails", S("1abc"), false, NULL, 4 },
    { "while_empty_fails", S(""), false, NULL, 0 },
    { "while_view_bounds_respected", "abcdef", 2, true, "ab", 0 },
    { "while_stops_at_high_byte", S("ab\xe4" "c"), true, "ab", 2 },
};

static void run_while(void **state)
{
    const struct while_case *c = *state;
    sts_cur cur = sts_cur_make(c->in, c->len);
    sts_cur out = sts_cur_make(NULL, 0);
    bool ok = sts_cur_take_while(&cur, is_alpha_pred, &out);

    if (ok != c->want_ok)
        fail_msg("case %s: got %s, want %s", c->name, ok ? "ok" : "fail",
                 c->want_ok ? "ok" : "fail");
    if (ok && (out.p != c->in || !sts_cur_eq(&out, c->want_out)))
        fail_msg("case %s: got \"%.*s\", want \"%s\"", c->name, VIEW(out), c->want_out);
    if (cur.len != c->want_rest || cur.p != c->in + (c->len - c->want_rest))
        fail_msg("case %s: got %zu bytes left, want %zu", c->name, cur.len, c->want_rest);
}

/* ------------------------------------------------------------- rtrim */

struct rtrim_case {
    const char *name;
    const char *in;
    size_t len;
    size_t want_len;
};

static struct rtrim_case rtrim_cases[] = {
    { "rtrim_spaces_and_tabs", S("abc \t "), 3 },
    { "rtrim_nothing_to_trim", S("abc"), 3 },
    { "rtrim_inner_space_kept", S("a b"), 3 },
    { "rtrim_leading_space_kept", S("  a"), 3 },
    { "rtrim_all_space", S(" \t "), 0 },
    { "rtrim_empty", S(""), 0 },
    { "rtrim_newline_not_wsp", S("abc\n"), 4 },
    { "rtrim_cr_not_wsp", S("abc\r"), 4 },
};

static void run_rtrim(void **state)
{
    const struct rtrim_case *c = *state;
    sts_cur cur = sts_cur_make(c->in, c->len);

    sts_cur_rtrim_wsp(&cur);
    if (cur.p != c->in || cur.len != c->want_len)
        fail_msg("case %s: got length %zu, want %zu (start unchanged)", c->name, cur.len,
                 c->want_len);
}

/* ---------------------------------------------------------- eq_nocase */

struct eq_case {
    const char *name;
    const char *a;
    size_t alen;
    const char *b;
    bool want;
};

static struct eq_case eq_cases[] = {
    { "nocase_equal", S("example"), "example", true },
    { "nocase_upper_lower", S("EXAMPLE"), "example", true },
    { "nocase_mixed", S("eXaMpLe.CoM"), "ExAmPlE.cOm", true },
    { "nocase_different", S("abc"), "abd", false },
    { "nocase_view_shorter", S("abc"), "abcd", false },
    { "nocase_view_longer", S("abcd"), "abc", false },
    { "nocase_empty_equal", S(""), "", true },
    { "nocase_at_not_backtick", S("@"), "`", false },
    { "nocase_bracket_not_brace", S("["), "{", false },
    { "nocase_latin1_not_folded", S("\xc4"), "\xe4", false },
    { "nocase_digits_exact", S("a1"), "A1", true },
    { "nocase_view_bounds_respected", "abcdef", 3, "ABC", true },
};

static void run_eq(void **state)
{
    const struct eq_case *c = *state;
    sts_cur cur = sts_cur_make(c->a, c->alen);
    bool got = sts_cur_eq_nocase(&cur, c->b);

    if (got != c->want)
        fail_msg("case %s: sts_cur_eq_nocase got %s, want %s", c->name, got ? "true" : "false",
                 c->want ? "true" : "false");
    /* The NUL-terminated variant must agree whenever a is a whole string. */
    if (strlen(c->a) == c->alen) {
        got = sts_str_eq_nocase(c->a, c->b);
        if (got != c->want)
            fail_msg("case %s: sts_str_eq_nocase got %s, want %s", c->name,
                     got ? "true" : "false", c->want ? "true" : "false");
    }
}

/* ------------------------------------------------- small cursor calls */

static void test_take_char(void **state)
{
    sts_cur c = sts_cur_str("ab");

    (void)state;
    if (sts_cur_take_char(&c, 'b') || c.len != 2)
        fail_msg("case take_char_mismatch: got consumed, want nothing consumed");
    if (!sts_cur_take_char(&c, 'a') || c.len != 1)
        fail_msg("case take_char_match: got not consumed, want 'a' consumed");
    c.len = 0;
    if (sts_cur_take_char(&c, 'b'))
        fail_msg("case take_char_empty: got true, want false");
}

static void test_take_lit(void **state)
{
    sts_cur c = sts_cur_str("v=STSv1; id=1");

    (void)state;
    if (sts_cur_take_lit(&c, "v=stsv1") || c.len != 13)
        fail_msg("case take_lit_case_sensitive: got consumed, want nothing consumed");
    if (sts_cur_take_lit(&c, "v=STSv1; id=12") || c.len != 13)
        fail_msg("case take_lit_longer_than_view: got consumed, want nothing consumed");
    if (!sts_cur_take_lit(&c, "v=STSv1;") || !sts_cur_eq(&c, " id=1"))
        fail_msg("case take_lit_prefix: got \"%.*s\" left, want \" id=1\"", VIEW(c));
    if (!sts_cur_take_lit_nocase(&c, " ID=") || !sts_cur_eq(&c, "1"))
        fail_msg("case take_lit_nocase: got \"%.*s\" left, want \"1\"", VIEW(c));
    if (!sts_cur_take_lit(&c, "") || c.len != 1)
        fail_msg("case take_lit_empty: got consumed or failed, want ok with nothing consumed");
}

static void test_skip_wsp(void **state)
{
    sts_cur c = sts_cur_str(" \t x ");
    size_t n;

    (void)state;
    n = sts_cur_skip_wsp(&c);
    if (n != 3 || !sts_cur_eq(&c, "x "))
        fail_msg("case skip_wsp: got %zu skipped, \"%.*s\" left, want 3 and \"x \"", n, VIEW(c));
    n = sts_cur_skip_wsp(&c);
    if (n != 0 || c.len != 2)
        fail_msg("case skip_wsp_none: got %zu skipped, want 0", n);
}

static void test_cur_str_null(void **state)
{
    sts_cur c = sts_cur_str(NULL);

    (void)state;
    if (c.len != 0 || !sts_cur_empty(&c))
        fail_msg("case cur_str_null: got length %zu, want 0", c.len);
}

static void test_eq_exact(void **state)
{
    sts_cur c = sts_cur_str("Mode");

    (void)state;
    if (sts_cur_eq(&c, "mode"))
        fail_msg("case eq_exact_case_sensitive: got true, want false");
    if (!sts_cur_eq(&c, "Mode"))
        fail_msg("case eq_exact_same: got false, want true");
}

/* ------------------------------------------------------------ sts_buf */

static void test_buf_append_within_cap(void **state)
{
    sts_buf b;

    (void)state;
    sts_buf_init(&b, 10);
    if (sts_buf_append(&b, "hello", 5) != STS_OK || b.len != 5 || strcmp(b.data, "hello") != 0)
        fail_msg("case buf_append_within_cap: got len %zu, want \"hello\"", b.len);
    if (sts_buf_append_str(&b, "world") != STS_OK || b.len != 10 ||
        strcmp(b.data, "helloworld") != 0)
        fail_msg("case buf_append_exactly_to_cap: got len %zu, want \"helloworld\"", b.len);
    sts_buf_free(&b);
}

static void test_buf_over_cap_rejected_unchanged(void **state)
{
    sts_buf b;
    sts_status st;

    (void)state;
    sts_buf_init(&b, 10);
    if (sts_buf_append_str(&b, "hello") != STS_OK)
        fail_msg("case buf_over_cap: setup append failed");
    st = sts_buf_append_str(&b, "world!");
    if (st != STS_PERMFAIL)
        fail_msg("case buf_over_cap_rejected: got %s, want permfail", sts_status_name(st));
    if (b.len != 5 || strcmp(b.data, "hello") != 0)
        fail_msg("case buf_over_cap_unchanged: got len %zu \"%s\", want 5 \"hello\"", b.len,
                 b.data);
    sts_buf_free(&b);
}

static void test_buf_over_cap_on_empty(void **state)
{
    sts_buf b;
    sts_status st;

    (void)state;
    sts_buf_init(&b, 3);
    st = sts_buf_append_str(&b, "abcd");
    if (st != STS_PERMFAIL || b.len != 0 || b.data != NULL)
        fail_msg("case buf_over_cap_on_empty: got %s len %zu, want permfail, len 0, no data",
                 sts_status_name(st), b.len);
    sts_buf_free(&b);
}

static void test_buf_cap_zero(void **state)
{
    sts_buf b;
    sts_status st;

    (void)state;
    sts_buf_init(&b, 0);
    st = sts_buf_append(&b, "", 0);
    if (st != STS_OK || b.len != 0 || b.data == NULL || b.data[0] != '\0')
        fail_msg("case buf_cap_zero_empty_append: got %s, want ok and \"\"", sts_status_name(st));
    st = sts_buf_append(&b, "x", 1);
    if (st != STS_PERMFAIL || b.len != 0)
        fail_msg("case buf_cap_zero_refuses_byte: got %s, want permfail", sts_status_name(st));
    sts_buf_free(&b);
}

static void test_buf_binary_data(void **state)
{
    sts_buf b;

    (void)state;
    sts_buf_init(&b, 16);
    if (sts_buf_append(&b, "a\0b", 3) != STS_OK || b.len != 3 || memcmp(b.data, "a\0b", 4) != 0)
        fail_msg("case buf_binary_data: got len %zu, want 3 bytes a NUL b + NUL", b.len);
    sts_buf_free(&b);
}

static void test_buf_growth(void **state)
{
    sts_buf b;
    size_t n = 10000;

    (void)state;
    sts_buf_init(&b, n);
    for (size_t i = 0; i < n; i++) {
        char ch = (char)('a' + i % 26);

        if (sts_buf_append(&b, &ch, 1) != STS_OK)
            fail_msg("case buf_growth: got failure at byte %zu, want ok", i);
    }
    if (b.len != n || b.data[n] != '\0' || b.data[n - 1] != (char)('a' + (n - 1) % 26))
        fail_msg("case buf_growth: got len %zu, want %zu NUL-terminated", b.len, n);
    if (sts_buf_append(&b, "x", 1) != STS_PERMFAIL || b.len != n)
        fail_msg("case buf_growth_cap: got len %zu, want permfail at %zu", b.len, n);
    sts_buf_free(&b);
}

static void test_buf_huge_cap(void **state)
{
    sts_buf b;
    sts_status st;

    (void)state;
    /* A cap of SIZE_MAX means "no practical limit" and must not wrap. */
    sts_buf_init(&b, SIZE_MAX);
    st = sts_buf_append_str(&b, "hello");
    if (st != STS_OK || b.len != 5 || strcmp(b.data, "hello") != 0)
        fail_msg("case buf_huge_cap: got %s len %zu, want ok \"hello\"", sts_status_name(st),
                 b.len);
    st = sts_buf_append(&b, "x", SIZE_MAX - 5);
    if (st == STS_OK || b.len != 5)
        fail_msg("case buf_huge_cap_no_wrap: got %s len %zu, want failure and len 5",
                 sts_status_name(st), b.len);
    sts_buf_free(&b);
}

static void test_buf_printf(void **state)
{
    sts_buf b;
    sts_status st;

    (void)state;
    sts_buf_init(&b, 16);
    st = sts_buf_printf(&b, "%s=%d", "max_age", 86400);
    if (st != STS_OK || strcmp(b.data, "max_age=86400") != 0 || b.len != 13)
        fail_msg("case buf_printf: got %s \"%s\", want ok \"max_age=86400\"", sts_status_name(st),
                 b.data != NULL ? b.data : "(null)");
    st = sts_buf_printf(&b, "%s", "xyz");
    if (st != STS_OK || strcmp(b.data, "max_age=86400xyz") != 0 || b.len != 16)
        fail_msg("case buf_printf_to_cap: got %s \"%s\", want ok \"max_age=86400xyz\"",
                 sts_status_name(st), b.data);
    st = sts_buf_printf(&b, "%d", 1);
    if (st != STS_PERMFAIL || b.len != 16 || strcmp(b.data, "max_age=86400xyz") != 0)
        fail_msg("case buf_printf_over_cap: got %s \"%s\", want permfail, unchanged",
                 sts_status_name(st), b.data);
    sts_buf_free(&b);
}

static void test_buf_printf_over_cap_unchanged(void **state)
{
    sts_buf b;
    sts_status st;

    (void)state;
    sts_buf_init(&b, 8);
    if (sts_buf_append_str(&b, "abc") != STS_OK)
        fail_msg("case buf_printf_over_cap_unchanged: setup append failed");
    st = sts_buf_printf(&b, "%d", 123456);
    if (st != STS_PERMFAIL || b.len != 3 || strcmp(b.data, "abc") != 0)
        fail_msg("case buf_printf_over_cap_unchanged: got %s \"%s\", want permfail \"abc\"",
                 sts_status_name(st), b.data);
    sts_buf_free(&b);
}

static void test_buf_printf_empty(void **state)
{
    sts_buf b;
    sts_status st;

    (void)state;
    sts_buf_init(&b, 4);
    st = sts_buf_printf(&b, "%s", "");
    if (st != STS_OK || b.len != 0 || b.data == NULL || b.data[0] != '\0')
        fail_msg("case buf_printf_empty: got %s, want ok and \"\"", sts_status_name(st));
    sts_buf_free(&b);
}

static void test_buf_reset_keeps_cap(void **state)
{
    sts_buf b;

    (void)state;
    sts_buf_init(&b, 5);
    if (sts_buf_append_str(&b, "12345") != STS_OK)
        fail_msg("case buf_reset: setup append failed");
    sts_buf_reset(&b);
    if (b.len != 0 || b.data == NULL || b.data[0] != '\0')
        fail_msg("case buf_reset_empties: got len %zu, want 0 and \"\"", b.len);
    if (sts_buf_append_str(&b, "abcde") != STS_OK || strcmp(b.data, "abcde") != 0)
        fail_msg("case buf_reset_reusable: got failure, want \"abcde\"");
    if (sts_buf_append_str(&b, "f") != STS_PERMFAIL)
        fail_msg("case buf_reset_keeps_cap: got ok, want permfail");
    sts_buf_free(&b);
}

static void test_buf_steal(void **state)
{
    sts_buf b;
    char *s;

    (void)state;
    sts_buf_init(&b, 8);
    s = sts_buf_steal(&b);
    if (s != NULL)
        fail_msg("case buf_steal_never_appended: got non-NULL, want NULL");
    if (sts_buf_append_str(&b, "abc") != STS_OK)
        fail_msg("case buf_steal: setup append failed");
    s = sts_buf_steal(&b);
    if (s == NULL || strcmp(s, "abc") != 0 || b.data != NULL || b.len != 0)
        fail_msg("case buf_steal: got \"%s\" and len %zu left, want \"abc\" and empty",
                 s != NULL ? s : "(null)", b.len);
    free(s);
    if (sts_buf_append_str(&b, "12345678") != STS_OK || sts_buf_append_str(&b, "9") != STS_PERMFAIL)
        fail_msg("case buf_steal_keeps_cap: got wrong cap after steal, want 8");
    sts_buf_free(&b);
}

static void test_buf_free_twice(void **state)
{
    sts_buf b;

    (void)state;
    sts_buf_init(&b, 8);
    if (sts_buf_append_str(&b, "abc") != STS_OK)
        fail_msg("case buf_free_twice: setup append failed");
    sts_buf_free(&b);
    sts_buf_free(&b);
    if (b.data != NULL || b.len != 0)
        fail_msg("case buf_free_twice: got data left, want empty");
}

/* ----------------------------------------------------- alloc helpers */

static void test_calloc_array_overflow(void **state)
{
    void *p;

    (void)state;
    p = sts_calloc_array(SIZE_MAX / 2, 4);
    if (p != NULL)
        fail_msg("case calloc_array_overflow: got a block, want NULL");
    p = sts_calloc_array(4, 8);
    if (p == NULL || ((const char *)p)[31] != 0)
        fail_msg("case calloc_array_zeroed: got NULL or dirty memory, want 32 zero bytes");
    free(p);
    /* NULL means failure only, so a zero-sized request gets a block. */
    p = sts_calloc_array(0, 8);
    if (p == NULL)
        fail_msg("case calloc_array_zero: got NULL, want a block the caller can free");
    free(p);
}

static void test_realloc_array(void **state)
{
    char *p = malloc(4);
    char *q;

    (void)state;
    assert_non_null(p);
    memcpy(p, "abc", 4);
    q = sts_realloc_array(p, SIZE_MAX / 2, 4);
    if (q != NULL)
        fail_msg("case realloc_array_overflow: got a block, want NULL");
    /* On failure the old block is untouched and still owned by the caller. */
    if (strcmp(p, "abc") != 0)
        fail_msg("case realloc_array_overflow_keeps_block: got \"%s\", want \"abc\"", p);
    q = sts_realloc_array(p, 8, 2);
    if (q == NULL || strcmp(q, "abc") != 0)
        fail_msg("case realloc_array_grow: got NULL or lost data, want \"abc\"");
    p = q;
    /* A zero size must not free the block behind the caller's back
     * (glibc realloc(p, 0) frees p and returns NULL, which reads as OOM). */
    q = sts_realloc_array(p, 0, 8);
    if (q == NULL)
        fail_msg("case realloc_array_zero: got NULL, want a block the caller can free");
    free(q);
}

/* A growable array: same block while there is room, doubling from
 * `first`, and on overflow NULL with the block and capacity kept. */
static void test_array_reserve(void **state)
{
    int *a = NULL, *q;
    size_t n = 0, cap = 0;

    (void)state;
    for (int i = 0; i < 9; i++) {
        if ((q = sts_array_reserve(a, n, &cap, 4, sizeof(*a))) == NULL)
            fail_msg("case array_reserve_grow: got NULL at %d, want a block", i);
        a = q;
        a[n++] = i;
    }
    if (cap != 16 || a[0] != 0 || a[8] != 8)
        fail_msg("case array_reserve_doubles: got cap %zu, a[0]=%d a[8]=%d, want 16, 0, 8", cap,
                 a[0], a[8]);
    if (sts_array_reserve(a, n, &cap, 4, sizeof(*a)) != a)
        fail_msg("case array_reserve_room_same_block: got another block, want the same");
    cap = n = SIZE_MAX / 2 + 1;
    if (sts_array_reserve(a, n, &cap, 4, sizeof(*a)) != NULL || cap != SIZE_MAX / 2 + 1)
        fail_msg("case array_reserve_overflow: got a block or cap %zu, want NULL, cap kept", cap);
    cap = n = 0;
    if ((q = sts_array_reserve(a, n, &cap, 0, sizeof(*a))) == NULL || cap != 1)
        fail_msg("case array_reserve_first_zero: got cap %zu, want room for one", cap);
    free(q);
}

static void test_strndup(void **state)
{
    char *s;

    (void)state;
    s = sts_strndup("abcdef", 3);
    if (s == NULL || strcmp(s, "abc") != 0)
        fail_msg("case strndup_prefix: got \"%s\", want \"abc\"", s != NULL ? s : "(null)");
    free(s);
    s = sts_strndup("a\0b", 3);
    if (s == NULL || memcmp(s, "a\0b", 4) != 0)
        fail_msg("case strndup_binary: got wrong bytes, want a NUL b NUL");
    free(s);
    s = sts_strndup("x", 0);
    if (s == NULL || s[0] != '\0')
        fail_msg("case strndup_empty: got NULL or non-empty, want \"\"");
    free(s);
}

#define TABLE_TESTS(cases, fn)                                                          \
    for (size_t i = 0; i < ARRAY_LEN(cases); i++)                                      \
        tests[n++] = (struct CMUnitTest){ cases[i].name, fn, NULL, NULL, &cases[i] }

int main(void)
{
    static const struct CMUnitTest single[] = {
        cmocka_unit_test(test_take_char),
        cmocka_unit_test(test_take_lit),
        cmocka_unit_test(test_skip_wsp),
        cmocka_unit_test(test_cur_str_null),
        cmocka_unit_test(test_eq_exact),
        cmocka_unit_test(test_buf_append_within_cap),
        cmocka_unit_test(test_buf_over_cap_rejected_unchanged),
        cmocka_unit_test(test_buf_over_cap_on_empty),
        cmocka_unit_test(test_buf_cap_zero),
        cmocka_unit_test(test_buf_binary_data),
        cmocka_unit_test(test_buf_growth),
        cmocka_unit_test(test_buf_huge_cap),
        cmocka_unit_test(test_buf_printf),
        cmocka_unit_test(test_buf_printf_over_cap_unchanged),
        cmocka_unit_test(test_buf_printf_empty),
        cmocka_unit_test(test_buf_reset_keeps_cap),
        cmocka_unit_test(test_buf_steal),
        cmocka_unit_test(test_buf_free_twice),
        cmocka_unit_test(test_calloc_array_overflow),
        cmocka_unit_test(test_realloc_array),
        cmocka_unit_test(test_array_reserve),
        cmocka_unit_test(test_strndup),
    };
    struct CMUnitTest tests[ARRAY_LEN(number_cases) + ARRAY_LEN(until_cases) +
                            ARRAY_LEN(while_cases) + ARRAY_LEN(rtrim_cases) +
                            ARRAY_LEN(eq_cases) + ARRAY_LEN(single)];
    size_t n = 0;

    TABLE_TESTS(number_cases, run_number);
    TABLE_TESTS(until_cases, run_until);
    TABLE_TESTS(while_cases, run_while);
    TABLE_TESTS(rtrim_cases, run_rtrim);
    TABLE_TESTS(eq_cases, run_eq);
    for (size_t i = 0; i < ARRAY_LEN(single); i++)
        tests[n++] = single[i];
    return UNIT_RUN("buf", tests, n);
}
