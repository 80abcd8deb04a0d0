/*
 * test_store_codec.c - what every store shares (src/store.c): the rules a
 * stored record obeys, the JSON form of a record (the Redis value, shared
 * by every MTA using one Redis, so its exact text is pinned here), the
 * CacheStore spec dispatch, and the memory-only "none" store.
 * Table-driven; a failure prints "case NAME: got X, want Y".
 */
#include <setjmp.h> /* cmocka needs these first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "unit_run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sts/policy.h"
#include "engine/store.h"
#include "engine/store_impl.h"
#include "store_fixture.h"

#define LIT(s) s, sizeof(s) - 1

/* ------------------------------------------------------------ decode table */

typedef struct decode_case {
    const char *name;
    const char *json;
    size_t len;
    sts_status want;
    const char *why; /* substring of the reason when not OK */
} decode_case;

#define TIMES "\"fetched_at\":1700000000,\"checked_at\":1700000010,\"expires_at\":1700604800," \
              "\"last_used\":1700000020"
#define POL "\"policy\":\"version: STSv1\\nmode: enforce\\nmx: mx.example.com\\nmax_age: 86400\\n\""
#define GOOD1 "{\"v\":1,\"domain\":\"example.com\",\"kind\":1,\"id\":\"abc123\"," POL "," TIMES "}"
#define GOOD2 "{\"v\":1,\"domain\":\"example.com\",\"kind\":2,\"id\":\"\"," TIMES "}"
#define OKD(name, json) { name, LIT(json), STS_OK, NULL }
#define BADD(name, json, why) { name, LIT(json), STS_PERMFAIL, why }
#define REC(body) "{\"v\":1," body "," TIMES "}"

static const decode_case decode_cases[] = {
    OKD("policy_record", GOOD1),
    OKD("nopolicy_record", GOOD2),
    OKD("failed_record_empty_id", REC("\"domain\":\"example.com\",\"kind\":3,\"id\":\"\"")),
    OKD("failed_record_with_id", REC("\"domain\":\"example.com\",\"kind\":3,\"id\":\"x1\"")),
    OKD("members_in_any_order",
        "{\"last_used\":3,\"id\":\"a\",\"kind\":2,\"expires_at\":2,\"domain\":\"a.example\","
        "\"checked_at\":1,\"v\":1,\"fetched_at\":0}"),
    OKD("whitespace_around_tokens", " { \"v\" : 1 , \"domain\" : \"example.com\" , \"kind\" : 2 ,"
                                    " \"id\" : \"\" , " TIMES " } \n"),
    OKD("utf8_escape_in_policy",
        REC("\"domain\":\"example.com\",\"kind\":1,\"id\":\"a\",\"policy\":\"x: caf\\u00e9\\n\"")),
    OKD("all_times_zero", "{\"v\":1,\"domain\":\"example.com\",\"kind\":2,\"id\":\"\","
                          "\"fetched_at\":0,\"checked_at\":0,\"expires_at\":0,\"last_used\":0}"),
    OKD("id_32_chars", REC("\"domain\":\"example.com\",\"kind\":3,"
                           "\"id\":\"abcdefghijklmnopqrstuvwxyz012345\"")),
    OKD("idn_a_label_domain", REC("\"domain\":\"xn--bcher-kva.example\",\"kind\":2,\"id\":\"\"")),

    BADD("empty_input", "", "not JSON"),
    BADD("not_json", "hello", "not JSON"),
    BADD("truncated_json", "{\"v\":1,\"domain\":\"example.com\"", "not JSON"),
    BADD("trailing_garbage", GOOD2 "x", "not JSON"),
    BADD("two_objects", GOOD2 GOOD2, "not JSON"),
    BADD("array_top_level", "[" GOOD2 "]", "not a JSON object"),
    BADD("string_top_level", "\"example.com\"", "not JSON"),
    BADD("null_top_level", "null", "not JSON"),
    BADD("version_2", "{\"v\":2,\"domain\":\"example.com\",\"kind\":2,\"id\":\"\"," TIMES "}",
         "format version 2, want 1"),
    BADD("version_0", "{\"v\":0,\"domain\":\"example.com\",\"kind\":2,\"id\":\"\"," TIMES "}",
         "format version 0"),
    BADD("version_missing", "{\"domain\":\"example.com\",\"kind\":2,\"id\":\"\"," TIMES "}",
         "member 'v' is missing"),
    BADD("version_as_string", "{\"v\":\"1\",\"domain\":\"example.com\",\"kind\":2,\"id\":\"\","
                              TIMES "}", "member 'v' is not an integer"),
    BADD("unknown_member", REC("\"domain\":\"example.com\",\"kind\":2,\"id\":\"\",\"extra\":1"),
         "unknown member 'extra'"),
    BADD("duplicate_member", REC("\"domain\":\"example.com\",\"kind\":2,\"kind\":2,\"id\":\"\""),
         "duplicate"),
    BADD("domain_missing", REC("\"kind\":2,\"id\":\"\""), "member 'domain' is missing"),
    BADD("domain_not_string", REC("\"domain\":5,\"kind\":2,\"id\":\"\""),
         "member 'domain' is not a string"),
    BADD("domain_object", REC("\"domain\":{\"a\":1},\"kind\":2,\"id\":\"\""), "not a string"),
    BADD("domain_upper_case", REC("\"domain\":\"Example.com\",\"kind\":2,\"id\":\"\""),
         "not a lower-case host name"),
    BADD("domain_trailing_dot", REC("\"domain\":\"example.com.\",\"kind\":2,\"id\":\"\""),
         "not a lower-case host name"),
    BADD("domain_space", REC("\"domain\":\"exa mple.com\",\"kind\":2,\"id\":\"\""),
         "not a lower-case host name"),
    BADD("domain_empty", REC("\"domain\":\"\",\"kind\":2,\"id\":\"\""),
         "not a lower-case host name"),
    BADD("domain_ipv4", REC("\"domain\":\"192.0.2.1\",\"kind\":2,\"id\":\"\""),
         "not a lower-case host name"),
    BADD("domain_utf8", REC("\"domain\":\"b\\u00fccher.example\",\"kind\":2,\"id\":\"\""),
         "not a lower-case host name"),
    BADD("domain_nul_escape", REC("\"domain\":\"a\\u0000b.example\",\"kind\":2,\"id\":\"\""),
         "not JSON"),
    BADD("kind_0", REC("\"domain\":\"example.com\",\"kind\":0,\"id\":\"\""), "kind 0 is not"),
    BADD("kind_4", REC("\"domain\":\"example.com\",\"kind\":4,\"id\":\"\""), "kind 4 is not"),
    BADD("kind_negative", REC("\"domain\":\"example.com\",\"kind\":-1,\"id\":\"\""),
         "kind -1 is not"),
    BADD("kind_real", REC("\"domain\":\"example.com\",\"kind\":2.0,\"id\":\"\""),
         "member 'kind' is not an integer"),
    BADD("kind_huge", REC("\"domain\":\"example.com\",\"kind\":4294967298,\"id\":\"\""),
         "kind 4294967298 is not"),
    BADD("id_missing", REC("\"domain\":\"example.com\",\"kind\":2"), "member 'id' is missing"),
    BADD("id_33_chars", REC("\"domain\":\"example.com\",\"kind\":3,"
                            "\"id\":\"abcdefghijklmnopqrstuvwxyz0123456\""), "id longer than 32"),
    BADD("id_hyphen", REC("\"domain\":\"example.com\",\"kind\":3,\"id\":\"a-b\""),
         "other than a letter or digit"),
    BADD("id_null", REC("\"domain\":\"example.com\",\"kind\":3,\"id\":null"),
         "member 'id' is not a string"),
    BADD("policy_missing_for_policy", REC("\"domain\":\"example.com\",\"kind\":1,\"id\":\"a\""),
         "without policy text"),
    BADD("policy_for_nopolicy", REC("\"domain\":\"example.com\",\"kind\":2,\"id\":\"\"," POL),
         "policy text in a record of kind 2"),
    BADD("policy_for_failed", REC("\"domain\":\"example.com\",\"kind\":3,\"id\":\"\"," POL),
         "policy text in a record of kind 3"),
    BADD("policy_null", REC("\"domain\":\"example.com\",\"kind\":1,\"id\":\"a\",\"policy\":null"),
         "member 'policy' is not a string"),
    BADD("policy_nul_escape",
         REC("\"domain\":\"example.com\",\"kind\":1,\"id\":\"a\",\"policy\":\"a\\u0000b\""),
         "not JSON"),
    BADD("policy_lone_surrogate",
         REC("\"domain\":\"example.com\",\"kind\":1,\"id\":\"a\",\"policy\":\"\\ud800\""),
         "not JSON"),
    BADD("policy_raw_invalid_utf8",
         REC("\"domain\":\"example.com\",\"kind\":1,\"id\":\"a\",\"policy\":\"\xff\""),
         "not JSON"),
    BADD("time_negative", "{\"v\":1,\"domain\":\"example.com\",\"kind\":2,\"id\":\"\","
                          "\"fetched_at\":0,\"checked_at\":-1,\"expires_at\":0,\"last_used\":0}",
         "negative time"),
    BADD("time_real", "{\"v\":1,\"domain\":\"example.com\",\"kind\":2,\"id\":\"\","
                      "\"fetched_at\":0,\"checked_at\":1e3,\"expires_at\":0,\"last_used\":0}",
         "member 'checked_at' is not an integer"),
    BADD("time_too_big", "{\"v\":1,\"domain\":\"example.com\",\"kind\":2,\"id\":\"\","
                         "\"fetched_at\":99999999999999999999,\"checked_at\":0,"
                         "\"expires_at\":0,\"last_used\":0}", "not JSON"),
    BADD("time_missing", "{\"v\":1,\"domain\":\"example.com\",\"kind\":2,\"id\":\"\","
                         "\"fetched_at\":0,\"checked_at\":0,\"expires_at\":0}",
         "member 'last_used' is missing"),
    /* jansson would skip a NUL byte silently: refused before parsing. */
    BADD("nul_byte_between_tokens", "{\"v\":1,\0" "\"domain\":\"example.com\",\"kind\":2,"
                                    "\"id\":\"\"," TIMES "}", "NUL byte"),
    BADD("nul_byte_at_end", GOOD2 "\0", "NUL byte"),
};

#define N_DECODE (sizeof(decode_cases) / sizeof(decode_cases[0]))

static void run_decode_case(void **state)
{
    const decode_case *tc = *state;
    sts_cache_record r, zero;
    char *copy = malloc(tc->len + 1);
    sts_why why;
    sts_status st;

    /* An exact-size copy, not NUL-terminated, so ASan sees any over-read. */
    assert_non_null(copy);
    memcpy(copy, tc->json, tc->len);
    why.text[0] = '\0';
    st = sts_store_record_decode(copy, tc->len, &r, &why);
    free(copy);
    if (st != tc->want)
        fail_msg("case %s: got %s (%s), want %s", tc->name, sts_status_name(st), why.text,
                 sts_status_name(tc->want));
    if (st != STS_OK) {
        memset(&zero, 0, sizeof(zero));
        if (memcmp(&r, &zero, sizeof(r)) != 0)
            fail_msg("case %s: got a filled record on failure, want it zeroed", tc->name);
        if (strstr(why.text, tc->why) == NULL)
            fail_msg("case %s: reason: got '%s', want it to contain '%s'", tc->name, why.text,
                     tc->why);
        return;
    }
    /* What decodes encodes again to something that decodes the same. */
    {
        sts_cache_record again;
        char *json;
        size_t len;

        st = sts_store_record_encode(&r, &json, &len, &why);
        expect_status(tc->name, st, STS_OK, &why);
        st = sts_store_record_decode(json, len, &again, &why);
        free(json);
        expect_status(tc->name, st, STS_OK, &why);
        rec_expect(tc->name, &again, &r);
        sts_cache_record_clear(&again);
    }
    sts_cache_record_clear(&r);
}

static void test_decode_utf8_escape_gives_utf8(void **state)
{
    static const char json[] =
        REC("\"domain\":\"example.com\",\"kind\":1,\"id\":\"a\",\"policy\":\"x: caf\\u00e9\\n\"");
    sts_cache_record r;
    sts_why why;

    (void)state;
    expect_status("decode", sts_store_record_decode(json, sizeof(json) - 1, &r, &why), STS_OK,
                  &why);
    if (r.policy_len != 9 || memcmp(r.policy_text, "x: caf\xc3\xa9\n", 9) != 0)
        fail_msg("policy: got '%s' (%zu bytes), want 'x: caf\\xc3\\xa9\\n' (9 bytes)",
                 r.policy_text, r.policy_len);
    sts_cache_record_clear(&r);
}

static void test_decode_fields(void **state)
{
    sts_cache_record r;
    sts_why why;
    static const char want_policy[] =
        "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 86400\n";

    (void)state;
    expect_status("decode", sts_store_record_decode(LIT(GOOD1), &r, &why), STS_OK, &why);
    if (strcmp(r.domain, "example.com") != 0 || r.kind != STS_ENTRY_POLICY ||
        strcmp(r.id, "abc123") != 0 || r.policy_len != sizeof(want_policy) - 1 ||
        strcmp(r.policy_text, want_policy) != 0 || r.fetched_at != 1700000000 ||
        r.checked_at != 1700000010 || r.expires_at != 1700604800 || r.last_used != 1700000020)
        fail_msg("got domain=%s kind=%d id=%s times=%lld/%lld/%lld/%lld, want the GOOD1 values",
                 r.domain, (int)r.kind, r.id, (long long)r.fetched_at, (long long)r.checked_at,
                 (long long)r.expires_at, (long long)r.last_used);
    sts_cache_record_clear(&r);
}

static char *policy_json(const char *policy_escaped_body, size_t n)
{
    static const char head[] = "{\"v\":1,\"domain\":\"example.com\",\"kind\":1,\"id\":\"a\","
                               "\"policy\":\"";
    static const char tail[] = "\"," TIMES "}";
    char *json = malloc(sizeof(head) + n + sizeof(tail));

    assert_non_null(json);
    memcpy(json, head, sizeof(head) - 1);
    memcpy(json + sizeof(head) - 1, policy_escaped_body, n);
    memcpy(json + sizeof(head) - 1 + n, tail, sizeof(tail));
    return json;
}

static void test_decode_policy_64k_ok_and_one_more_refused(void **state)
{
    sts_cache_record r;
    sts_why why;
    char *body, *json;

    (void)state;
    for (size_t extra = 0; extra <= 1; extra++) {
        size_t n = STS_POLICY_MAX_BODY + extra;

        body = malloc(n);
        assert_non_null(body);
        memset(body, 'a', n);
        json = policy_json(body, n);
        free(body);
        why.text[0] = '\0';
        if (extra == 0) {
            expect_status("policy_64k", sts_store_record_decode(json, strlen(json), &r, &why),
                          STS_OK, &why);
            if (r.policy_len != n)
                fail_msg("policy_64k: got %zu bytes, want %zu", r.policy_len, n);
            sts_cache_record_clear(&r);
        } else {
            expect_status("policy_64k_plus_1",
                          sts_store_record_decode(json, strlen(json), &r, &why), STS_PERMFAIL,
                          &why);
            expect_why("policy_64k_plus_1", &why, "policy text is 65537 bytes, the limit is 65536");
        }
        free(json);
    }
}

static void test_decode_refuses_oversized_input_unread(void **state)
{
    size_t n = STS_STORE_JSON_MAX + 1;
    char *json = malloc(n);
    sts_cache_record r;
    sts_why why;

    (void)state;
    assert_non_null(json);
    memset(json, ' ', n);
    expect_status("oversized", sts_store_record_decode(json, n, &r, &why), STS_PERMFAIL, &why);
    expect_why("oversized", &why, "the limit is 524288");
    free(json);
}

static void test_decode_deep_nesting(void **state)
{
    size_t depth = 100000;
    char *json = malloc(2 * depth);
    sts_cache_record r;
    sts_why why;

    (void)state;
    assert_non_null(json);
    memset(json, '[', depth);
    memset(json + depth, ']', depth);
    expect_status("deep_nesting", sts_store_record_decode(json, 2 * depth, &r, &why),
                  STS_PERMFAIL, &why);
    free(json);
}

/* ------------------------------------------------------------ encode */

static void test_encode_exact_text(void **state)
{
    static const struct {
        const char *name;
        int kind_index;
        const char *want;
    } cases[] = {
        { "encode_policy", 0,
          "{\"v\":1,\"domain\":\"example.com\",\"kind\":1,\"id\":\"20240101T000000\","
          "\"policy\":\"version: STSv1\\nmode: enforce\\nmx: mx1.example.com\\nmx: "
          "*.example.net\\nmax_age: 604800\\n\",\"fetched_at\":1700000000,"
          "\"checked_at\":1700000010,\"expires_at\":1700604800,\"last_used\":1700000020}" },
        { "encode_nopolicy", 1,
          "{\"v\":1,\"domain\":\"example.com\",\"kind\":2,\"id\":\"\",\"fetched_at\":1700000000,"
          "\"checked_at\":1700000010,\"expires_at\":1700604800,\"last_used\":1700000020}" },
        { "encode_failed", 2,
          "{\"v\":1,\"domain\":\"example.com\",\"kind\":3,\"id\":\"abc123\","
          "\"fetched_at\":1700000000,\"checked_at\":1700000010,\"expires_at\":1700604800,"
          "\"last_used\":1700000020}" },
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sts_cache_record r, back;
        char *json = NULL;
        size_t len = 0;
        sts_why why;

        rec_of_kind(&r, cases[i].kind_index, "example.com", 1700000000);
        expect_status(cases[i].name, sts_store_record_encode(&r, &json, &len, &why), STS_OK,
                      &why);
        if (strcmp(json, cases[i].want) != 0 || len != strlen(cases[i].want))
            fail_msg("case %s: got %s, want %s", cases[i].name, json, cases[i].want);
        expect_status(cases[i].name, sts_store_record_decode(json, len, &back, &why), STS_OK,
                      &why);
        rec_expect(cases[i].name, &back, &r);
        free(json);
        sts_cache_record_clear(&back);
        sts_cache_record_clear(&r);
    }
}

static void test_encode_round_trips_64k_policy_byte_exact(void **state)
{
    sts_cache_record r, back;
    char *json;
    size_t len;
    sts_why why;

    (void)state;
    rec_make(&r, "big.example", STS_ENTRY_POLICY, "x", NULL, 5);
    r.policy_text = big_policy(STS_POLICY_MAX_BODY);
    r.policy_len = STS_POLICY_MAX_BODY;
    /* Bytes that JSON must escape, and UTF-8. */
    memcpy(r.policy_text + 100, "\"\\\t\x01\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 13);
    expect_status("encode", sts_store_record_encode(&r, &json, &len, &why), STS_OK, &why);
    expect_status("decode", sts_store_record_decode(json, len, &back, &why), STS_OK, &why);
    rec_expect("64k", &back, &r);
    free(json);
    sts_cache_record_clear(&back);
    sts_cache_record_clear(&r);
}

/* ------------------------------------------------------------ record rules */

typedef struct check_case {
    const char *name;
    void (*mutate)(sts_cache_record *r);
    const char *why;
} check_case;

static void m_upper(sts_cache_record *r) { r->domain[0] = 'E'; }
static void m_dot(sts_cache_record *r) { memcpy(r->domain, "example.com.", 13); }
static void m_empty(sts_cache_record *r) { r->domain[0] = '\0'; }
static void m_unterminated(sts_cache_record *r) { memset(r->domain, 'a', sizeof(r->domain)); }
static void m_kind0(sts_cache_record *r) { r->kind = (sts_entry_kind)0; }
static void m_kind4(sts_cache_record *r) { r->kind = (sts_entry_kind)4; }
static void m_id(sts_cache_record *r) { memcpy(r->id, "a_b", 4); }
static void m_id_unterminated(sts_cache_record *r) { memset(r->id, 'a', sizeof(r->id)); }
static void m_no_text(sts_cache_record *r)
{
    free(r->policy_text);
    r->policy_text = NULL;
    r->policy_len = 0;
}
static void m_text_for_nopolicy(sts_cache_record *r) { r->kind = STS_ENTRY_NOPOLICY; }
static void m_len_short(sts_cache_record *r) { r->policy_len -= 1; }
static void m_nul_inside(sts_cache_record *r) { r->policy_text[3] = '\0'; }
static void m_bad_utf8(sts_cache_record *r) { r->policy_text[3] = '\xff'; }
static void m_overlong_utf8(sts_cache_record *r) { memcpy(r->policy_text, "\xc0\xaf", 2); }
static void m_surrogate_utf8(sts_cache_record *r) { memcpy(r->policy_text, "\xed\xa0\x80", 3); }
static void m_truncated_utf8(sts_cache_record *r)
{
    r->policy_text[r->policy_len - 1] = '\xc3';
}
static void m_too_long(sts_cache_record *r)
{
    free(r->policy_text);
    r->policy_text = big_policy(STS_POLICY_MAX_BODY + 1);
    r->policy_len = STS_POLICY_MAX_BODY + 1;
}
static void m_negative(sts_cache_record *r) { r->last_used = -5; }

static const check_case check_cases[] = {
    { "check_domain_upper_case", m_upper, "not a lower-case host name" },
    { "check_domain_trailing_dot", m_dot, "not a lower-case host name" },
    { "check_domain_empty", m_empty, "not a lower-case host name" },
    { "check_domain_unterminated", m_unterminated, "not a lower-case host name" },
    { "check_kind_0", m_kind0, "kind 0 is not" },
    { "check_kind_4", m_kind4, "kind 4 is not" },
    { "check_id_underscore", m_id, "other than a letter or digit" },
    { "check_id_unterminated", m_id_unterminated, "id is not NUL-terminated" },
    { "check_policy_without_text", m_no_text, "without policy text" },
    { "check_text_in_nopolicy", m_text_for_nopolicy, "policy text in a record of kind 2" },
    { "check_len_mismatch", m_len_short, "does not match" },
    { "check_nul_inside", m_nul_inside, "does not match" },
    { "check_invalid_utf8", m_bad_utf8, "not valid UTF-8" },
    { "check_overlong_utf8", m_overlong_utf8, "not valid UTF-8" },
    { "check_surrogate_utf8", m_surrogate_utf8, "not valid UTF-8" },
    { "check_truncated_utf8", m_truncated_utf8, "not valid UTF-8" },
    { "check_policy_over_64k", m_too_long, "65537 bytes, the limit is 65536" },
    { "check_negative_time", m_negative, "negative time" },
};

#define N_CHECK (sizeof(check_cases) / sizeof(check_cases[0]))

/* Every broken record is refused by the check, by encode, and by
 * sts_store_put (even on the "none" store), with the same reason. */
static void run_check_case(void **state)
{
    const check_case *tc = *state;
    sts_cache_record r;
    sts_store *s = NULL;
    char *json = NULL;
    size_t len;
    sts_why why;

    rec_of_kind(&r, 0, "example.com", 1);
    tc->mutate(&r);
    why.text[0] = '\0';
    expect_status(tc->name, sts_store_record_check(&r, &why), STS_PERMFAIL, &why);
    expect_why(tc->name, &why, tc->why);
    why.text[0] = '\0';
    expect_status(tc->name, sts_store_record_encode(&r, &json, &len, &why), STS_PERMFAIL, &why);
    expect_why(tc->name, &why, tc->why);
    if (json != NULL)
        fail_msg("case %s: got JSON from encode, want NULL", tc->name);
    expect_status(tc->name, sts_store_open("none", &s, &why), STS_OK, &why);
    why.text[0] = '\0';
    expect_status(tc->name, sts_store_put(s, &r, &why), STS_PERMFAIL, &why);
    expect_why(tc->name, &why, tc->why);
    sts_store_close(s);
    sts_cache_record_clear(&r);
}

static void test_check_accepts_each_kind(void **state)
{
    (void)state;
    for (int i = 0; i < 3; i++) {
        sts_cache_record r;
        sts_why why;

        rec_of_kind(&r, i, "a-b.example.co.uk", 0);
        expect_status("check", sts_store_record_check(&r, &why), STS_OK, &why);
        sts_cache_record_clear(&r);
    }
}

static void test_record_clear(void **state)
{
    sts_cache_record r, zero;

    (void)state;
    rec_of_kind(&r, 0, "example.com", 1);
    sts_cache_record_clear(&r);
    memset(&zero, 0, sizeof(zero));
    if (memcmp(&r, &zero, sizeof(r)) != 0)
        fail_msg("got a non-zero record after clear, want all zero");
    sts_cache_record_clear(&r); /* twice is harmless */
    sts_cache_record_clear(NULL);
}

/* ------------------------------------------------------------ open and "none" */

typedef struct spec_case {
    const char *name;
    const char *spec;
    const char *why;
} spec_case;

static const spec_case bad_specs[] = {
    { "spec_empty", "", "is not a cache store" },
    { "spec_unknown_scheme", "mysql://db", "is not a cache store" },
    { "spec_bare_path", "/var/lib/c.db", "is not a cache store" },
    { "spec_none_suffix", "none2", "is not a cache store" },
    { "spec_sqlite_no_path", "sqlite:", "needs a file name" },
    { "spec_redis_no_host", "redis://", "is not redis://HOST[:PORT][/DB]" },
    { "spec_redis_port_0", "redis://127.0.0.1:0", "is not redis://" },
    { "spec_redis_port_65536", "redis://127.0.0.1:65536", "is not redis://" },
    { "spec_redis_bad_db", "redis://127.0.0.1:6379/x", "is not redis://" },
    { "spec_redis_db_too_big", "redis://127.0.0.1/2147483648", "is not redis://" },
    { "spec_redis_trailing_path", "redis://127.0.0.1:6379/1/2", "is not redis://" },
    { "spec_redis_bad_ipv6", "redis://[::g]:6379", "is not redis://" },
    { "spec_redis_unclosed_ipv6", "redis://[::1:6379", "is not redis://" },
};

#define N_SPECS (sizeof(bad_specs) / sizeof(bad_specs[0]))

static void run_bad_spec(void **state)
{
    const spec_case *tc = *state;
    sts_store *s = (sts_store *)&s; /* must be reset to NULL */
    sts_why why;

    why.text[0] = '\0';
    expect_status(tc->name, sts_store_open(tc->spec, &s, &why), STS_PERMFAIL, &why);
    expect_why(tc->name, &why, tc->why);
    if (s != NULL)
        fail_msg("case %s: got a store, want NULL", tc->name);
}

static bool count_each(void *arg, const sts_cache_record *r)
{
    (void)r;
    (*(size_t *)arg)++;
    return true;
}

static void test_none_store(void **state)
{
    static const char *const specs[] = { "none", "NONE", "None" };

    (void)state;
    for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
        sts_store *s = NULL;
        sts_cache_record r, got;
        size_t seen = 0, skipped = 99;
        sts_why why;

        expect_status(specs[i], sts_store_open(specs[i], &s, &why), STS_OK, &why);
        assert_non_null(s);
        if (strcmp(sts_store_backend(s), "none") != 0)
            fail_msg("%s: backend: got %s, want none", specs[i], sts_store_backend(s));
        for (int k = 0; k < 3; k++) {
            rec_of_kind(&r, k, "example.com", 1);
            expect_status("none put", sts_store_put(s, &r, &why), STS_OK, &why);
            sts_cache_record_clear(&r);
        }
        expect_status("none get", sts_store_get(s, "example.com", &got, &why), STS_NOTFOUND,
                      &why);
        expect_status("none delete", sts_store_delete(s, "example.com", &why), STS_OK, &why);
        expect_status("none clear", sts_store_clear(s, &why), STS_OK, &why);
        expect_status("none load", sts_store_load(s, count_each, &seen, &skipped, &why), STS_OK,
                      &why);
        if (seen != 0 || skipped != 0)
            fail_msg("none load: got %zu records, %zu skipped, want 0 and 0", seen, skipped);
        sts_store_close(s);
    }
}

/* The front end refuses bad arguments before any backend sees them. */
static void test_arguments_checked(void **state)
{
    static const char *const bad_domains[] = {
        "Example.com", "example.com.", "", "exa mple.com", "192.0.2.1", "-a.example",
    };
    sts_store *s = NULL;
    sts_cache_record got;
    sts_why why;

    (void)state;
    expect_status("open", sts_store_open("none", &s, &why), STS_OK, &why);
    for (size_t i = 0; i < sizeof(bad_domains) / sizeof(bad_domains[0]); i++) {
        why.text[0] = '\0';
        expect_status(bad_domains[i], sts_store_get(s, bad_domains[i], &got, &why), STS_PERMFAIL,
                      &why);
        expect_why(bad_domains[i], &why, "not a lower-case host name");
        expect_status(bad_domains[i], sts_store_delete(s, bad_domains[i], &why), STS_PERMFAIL,
                      &why);
    }
    expect_status("get NULL", sts_store_get(s, NULL, &got, &why), STS_PERMFAIL, &why);
    expect_status("put NULL", sts_store_put(s, NULL, &why), STS_PERMFAIL, &why);
    expect_status("load NULL cb", sts_store_load(s, NULL, NULL, NULL, &why), STS_PERMFAIL, &why);
    sts_store_close(s);
    expect_status("open NULL", sts_store_open(NULL, &s, &why), STS_PERMFAIL, &why);
    expect_status("put on no store", sts_store_put(NULL, NULL, NULL), STS_PERMFAIL, &why);
    sts_store_close(NULL);
    /* NULL why everywhere is accepted. */
    expect_status("open none, NULL why", sts_store_open("none", &s, NULL), STS_OK, &why);
    expect_status("get NULL why", sts_store_get(s, "a.example", &got, NULL), STS_NOTFOUND, &why);
    sts_store_close(s);
}

/* ------------------------------------------------------------ main */

int main(void)
{
    struct CMUnitTest tests[N_DECODE + N_CHECK + N_SPECS + 11];
    size_t n = 0;

    for (size_t i = 0; i < N_DECODE; i++) {
        tests[n] = (struct CMUnitTest)cmocka_unit_test_prestate(run_decode_case,
                                                                (void *)&decode_cases[i]);
        tests[n++].name = decode_cases[i].name;
    }
    for (size_t i = 0; i < N_CHECK; i++) {
        tests[n] = (struct CMUnitTest)cmocka_unit_test_prestate(run_check_case,
                                                                (void *)&check_cases[i]);
        tests[n++].name = check_cases[i].name;
    }
    for (size_t i = 0; i < N_SPECS; i++) {
        tests[n] = (struct CMUnitTest)cmocka_unit_test_prestate(run_bad_spec,
                                                                (void *)&bad_specs[i]);
        tests[n++].name = bad_specs[i].name;
    }
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_decode_utf8_escape_gives_utf8);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_decode_fields);
    tests[n++] =
        (struct CMUnitTest)cmocka_unit_test(test_decode_policy_64k_ok_and_one_more_refused);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_decode_refuses_oversized_input_unread);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_decode_deep_nesting);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_encode_exact_text);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_encode_round_trips_64k_policy_byte_exact);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_check_accepts_each_kind);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_record_clear);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_none_store);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_arguments_checked);
    return UNIT_RUN("store_codec", tests, n);
}
