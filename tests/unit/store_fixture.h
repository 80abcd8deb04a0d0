/*
 * store_fixture.h - records for the store tests (test_store_codec.c,
 * test_store_sqlite.c, test_store_redis.c): build one, compare two with a
 * "got X, want Y" message.  Include after <cmocka.h>.
 */
#ifndef STS_TEST_STORE_FIXTURE_H
#define STS_TEST_STORE_FIXTURE_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/store.h"

#define FIXTURE_UNUSED __attribute__((unused))

#define FIXTURE_POLICY "version: STSv1\nmode: enforce\nmx: mx1.example.com\nmx: *.example.net\n" \
                       "max_age: 604800\n"

/* Fill r; policy is copied (NULL for none); times derive from base. */
static FIXTURE_UNUSED void rec_make(sts_cache_record *r, const char *domain, sts_entry_kind kind,
                                    const char *id, const char *policy, int64_t base)
{
    memset(r, 0, sizeof(*r));
    (void)snprintf(r->domain, sizeof(r->domain), "%s", domain);
    r->kind = kind;
    (void)snprintf(r->id, sizeof(r->id), "%s", id);
    if (policy != NULL) {
        r->policy_len = strlen(policy);
        r->policy_text = strdup(policy);
        assert_non_null(r->policy_text);
    }
    r->fetched_at = base;
    r->checked_at = base + 10;
    r->expires_at = base + 604800;
    r->last_used = base + 20;
}

/* One of each kind for domain, by index 0..2. */
static FIXTURE_UNUSED void rec_of_kind(sts_cache_record *r, int i, const char *domain, int64_t base)
{
    switch (i) {
    case 0:
        rec_make(r, domain, STS_ENTRY_POLICY, "20240101T000000", FIXTURE_POLICY, base);
        break;
    case 1:
        rec_make(r, domain, STS_ENTRY_NOPOLICY, "", NULL, base);
        break;
    default:
        rec_make(r, domain, STS_ENTRY_FAILED, "abc123", NULL, base);
        break;
    }
}

/* Fail with the first difference between got and want. */
static FIXTURE_UNUSED void rec_expect(const char *what, const sts_cache_record *got,
                                      const sts_cache_record *want)
{
    if (strcmp(got->domain, want->domain) != 0)
        fail_msg("%s: domain: got '%s', want '%s'", what, got->domain, want->domain);
    if (got->kind != want->kind)
        fail_msg("%s: kind: got %d, want %d", what, (int)got->kind, (int)want->kind);
    if (strcmp(got->id, want->id) != 0)
        fail_msg("%s: id: got '%s', want '%s'", what, got->id, want->id);
    if ((got->policy_text == NULL) != (want->policy_text == NULL))
        fail_msg("%s: policy: got %s, want %s", what, got->policy_text ? "text" : "none",
                 want->policy_text ? "text" : "none");
    if (got->policy_len != want->policy_len)
        fail_msg("%s: policy_len: got %zu, want %zu", what, got->policy_len, want->policy_len);
    if (want->policy_text != NULL &&
        (memcmp(got->policy_text, want->policy_text, want->policy_len) != 0 ||
         got->policy_text[got->policy_len] != '\0'))
        fail_msg("%s: policy text differs from the one stored", what);
    if (got->fetched_at != want->fetched_at || got->checked_at != want->checked_at ||
        got->expires_at != want->expires_at || got->last_used != want->last_used)
        fail_msg("%s: times: got %" PRId64 "/%" PRId64 "/%" PRId64 "/%" PRId64
                 ", want %" PRId64 "/%" PRId64 "/%" PRId64 "/%" PRId64,
                 what, got->fetched_at, got->checked_at, got->expires_at, got->last_used,
                 want->fetched_at, want->checked_at, want->expires_at, want->last_used);
}

static FIXTURE_UNUSED void expect_status(const char *what, sts_status got, sts_status want,
                                         const sts_why *why)
{
    if (got != want)
        fail_msg("%s: got %s (%s), want %s", what, sts_status_name(got), why->text,
                 sts_status_name(want));
}

static FIXTURE_UNUSED void expect_why(const char *what, const sts_why *why, const char *want)
{
    if (strstr(why->text, want) == NULL)
        fail_msg("%s: reason: got '%s', want it to contain '%s'", what, why->text, want);
}

/* A policy body of exactly len bytes (len >= 64): valid lines padded with
 * an unknown key whose value fills the rest. */
static FIXTURE_UNUSED char *big_policy(size_t len)
{
    static const char head[] = "version: STSv1\nmode: enforce\nmx: mx.example.com\n"
                               "max_age: 86400\npad: ";
    char *p = malloc(len + 1);

    assert_non_null(p);
    assert_true(len > sizeof(head));
    memcpy(p, head, sizeof(head) - 1);
    for (size_t i = sizeof(head) - 1; i < len - 1; i++)
        p[i] = (char)('a' + (int)(i % 26));
    p[len - 1] = '\n';
    p[len] = '\0';
    return p;
}

/* ---- the purge log (store.h), the same behaviour for every backend */

typedef struct purge_seen {
    char names[8][64]; /* "*" for a purge of everything */
    size_t n;
} purge_seen;

static FIXTURE_UNUSED void purge_collect(void *arg, const char *domain)
{
    purge_seen *ps = arg;

    if (ps->n < 8)
        (void)snprintf(ps->names[ps->n], sizeof(ps->names[0]), "%s",
                       domain != NULL ? domain : "*");
    ps->n++;
}

/* Writer a notes purges, reader b (another handle on the same store, as
 * a daemon beside mtasts-query) sees them once each, in order; a reader
 * starting later sees only what comes after its start. */
static FIXTURE_UNUSED void purge_log_check(sts_store *a, sts_store *b)
{
    static const char *const want1[] = { "one.example", "*", "two.example" };
    uint64_t seq = 0, start = 0, late = 0;
    purge_seen ps;
    sts_why why;

    expect_status("init", sts_store_purges_since(b, &start, NULL, NULL, &why), STS_OK, &why);
    seq = start;
    memset(&ps, 0, sizeof(ps));
    expect_status("empty poll", sts_store_purges_since(b, &seq, purge_collect, &ps, &why),
                  STS_OK, &why);
    if (ps.n != 0 || seq != start)
        fail_msg("empty poll: got %zu notes, seq %llu; want 0, %llu", ps.n,
                 (unsigned long long)seq, (unsigned long long)start);
    expect_status("note 1", sts_store_purge_note(a, "one.example", &why), STS_OK, &why);
    expect_status("note all", sts_store_purge_note(a, NULL, &why), STS_OK, &why);
    expect_status("note 2", sts_store_purge_note(a, "two.example", &why), STS_OK, &why);
    expect_status("bad domain", sts_store_purge_note(a, "not a domain", &why), STS_PERMFAIL,
                  &why);
    expect_status("poll", sts_store_purges_since(b, &seq, purge_collect, &ps, &why), STS_OK,
                  &why);
    if (ps.n != 3)
        fail_msg("poll: got %zu notes, want 3", ps.n);
    for (size_t i = 0; i < 3; i++)
        if (strcmp(ps.names[i], want1[i]) != 0)
            fail_msg("poll note %zu: got %s, want %s", i, ps.names[i], want1[i]);
    if (seq <= start)
        fail_msg("poll: seq %llu did not grow past %llu", (unsigned long long)seq,
                 (unsigned long long)start);
    memset(&ps, 0, sizeof(ps));
    expect_status("poll again", sts_store_purges_since(b, &seq, purge_collect, &ps, &why),
                  STS_OK, &why);
    if (ps.n != 0)
        fail_msg("poll again: got %zu notes, want 0 (each note once)", ps.n);
    expect_status("late init", sts_store_purges_since(b, &late, NULL, NULL, &why), STS_OK, &why);
    if (late != seq)
        fail_msg("late init: got seq %llu, want %llu", (unsigned long long)late,
                 (unsigned long long)seq);
    expect_status("note 3", sts_store_purge_note(a, "three.example", &why), STS_OK, &why);
    expect_status("late poll", sts_store_purges_since(b, &late, purge_collect, &ps, &why),
                  STS_OK, &why);
    if (ps.n != 1 || strcmp(ps.names[0], "three.example") != 0)
        fail_msg("late poll: got %zu notes (%s), want three.example only", ps.n,
                 ps.n > 0 ? ps.names[0] : "");
}

#endif
