/*
 * test_cache.c - the in-memory policy table (src/engine/cache.c): which
 * entry a full table gives up.  Pins the eviction order: entries holding
 * no policy (negative answers, failure markers) before policies; among
 * policies mode none, then testing, then enforce; the least recently used
 * within a class.  So no number of domains without MTA-STS can push a
 * policy out (issue 15, item 8).  Each case is a script of puts, gets and
 * removes with injected times; the last case runs readers against a
 * writer that evicts, for the sanitizers.
 */
#include <setjmp.h> /* cmocka needs these first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "unit_run.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cache.h"
#include "sts/policy.h"

enum { NOPOL = 1, FAILED, NONE, TESTING, ENFORCE };       /* what an entry holds */
enum { PUT = 1, GET, HAS, LACKS, REMOVE, CLEAR, FLOOD, COUNT };

typedef struct step {
    int op;
    const char *domain;  /* FLOOD: the prefix of <domain><i>.test */
    int what;            /* PUT, FLOOD: NOPOL..ENFORCE; COUNT: the count */
    int n;               /* FLOOD: how many domains */
    int64_t t;           /* PUT: last_used; FLOOD: the first one's; GET: now */
    const char *evicted; /* PUT: the domain the put must evict ("" none;
                            "x*": any whose name starts with x) */
} step;

typedef struct cache_case {
    const char *name;
    size_t max;
    step steps[16];
} cache_case;

#define P(d, w, t, ev) { PUT, d, w, 0, t, ev }
#define G(d, t) { GET, d, 0, 0, t, NULL }
#define H(d) { HAS, d, 0, 0, 0, NULL }
#define L(d) { LACKS, d, 0, 0, 0, NULL }
#define R(d) { REMOVE, d, 0, 0, 0, NULL }
#define C() { CLEAR, NULL, 0, 0, 0, NULL }
#define F(prefix, w, n, t) { FLOOD, prefix, w, n, t, NULL }
#define N(n) { COUNT, NULL, n, 0, 0, NULL }

static const cache_case cases[] = {
    { "no_policy_entry_goes_before_a_less_recently_used_policy", 3,
      { P("a", ENFORCE, 1, ""), P("b", NOPOL, 2, ""), P("c", NOPOL, 3, ""),
        P("d", ENFORCE, 4, "b"), H("a"), H("c"), N(3) } },
    { "a_new_no_policy_entry_is_dropped_rather_than_a_policy", 2,
      { P("a", ENFORCE, 1, ""), P("b", TESTING, 2, ""), P("x", NOPOL, 3, "x"), H("a"), H("b"),
        L("x"), N(2) } },
    { "flood_of_no_policy_domains_keeps_every_policy", 4,
      { P("a", ENFORCE, 1, ""), P("b", TESTING, 2, ""), P("c", NONE, 3, ""),
        F("flood", NOPOL, 2000, 10), H("a"), H("b"), H("c"), N(4) } },
    { "flood_keeps_policies_in_a_larger_table", 64,
      { P("a", ENFORCE, 1, ""), P("b", ENFORCE, 2, ""), F("early", NOPOL, 40, 3),
        P("c", ENFORCE, 4, ""), F("flood", NOPOL, 5000, 10), H("a"), H("b"), H("c"), N(64) } },
    { "failure_markers_go_before_policies", 2,
      { P("a", NONE, 1, ""), P("f", FAILED, 5, ""), P("x", ENFORCE, 6, "f"), H("a"), H("x") } },
    { "mode_none_goes_before_testing_before_enforce", 3,
      { P("e", ENFORCE, 1, ""), P("t", TESTING, 2, ""), P("n", NONE, 3, ""),
        P("e2", ENFORCE, 4, "n"), P("e3", ENFORCE, 5, "t"), P("e4", ENFORCE, 6, "e"),
        H("e2"), H("e3"), H("e4") } },
    { "least_recently_used_within_a_class", 3,
      { P("a", ENFORCE, 1, ""), P("b", ENFORCE, 2, ""), P("c", ENFORCE, 3, ""), G("a", 10),
        P("d", ENFORCE, 11, "b"), G("c", 12), P("e", ENFORCE, 13, "a"), H("c"), H("d") } },
    { "a_new_policy_alone_in_the_lowest_class_is_the_one_dropped", 2,
      { P("a", ENFORCE, 1, ""), P("b", ENFORCE, 2, ""), P("t", TESTING, 3, "t"), H("a"),
        H("b"), N(2) } },
    { "replacing_moves_an_entry_to_its_new_class", 2,
      { P("a", NOPOL, 1, ""), P("b", ENFORCE, 2, ""), P("a", ENFORCE, 3, ""),
        P("x", NOPOL, 4, "x"), H("a"), H("b"), N(2) } },
    { "a_policy_replaced_by_no_policy_goes_first", 2,
      { P("a", ENFORCE, 1, ""), P("b", ENFORCE, 2, ""), P("a", NOPOL, 3, ""),
        P("c", ENFORCE, 4, "a"), H("b"), H("c") } },
    { "replacing_keeps_the_count", 2,
      { P("a", ENFORCE, 1, ""), P("a", TESTING, 2, ""), P("a", NOPOL, 3, ""), N(1),
        P("b", ENFORCE, 4, ""), N(2) } },
    { "removed_entries_leave_the_order", 2,
      { P("a", NOPOL, 1, ""), R("a"), P("b", ENFORCE, 2, ""), P("c", ENFORCE, 3, ""),
        P("d", NOPOL, 4, "d"), N(2), R("b"), P("e", NOPOL, 5, ""), H("c"), H("e") } },
    { "clear_leaves_the_order_empty", 2,
      { P("a", ENFORCE, 1, ""), P("b", NOPOL, 2, ""), C(), N(0), P("c", NOPOL, 3, ""),
        P("d", ENFORCE, 4, ""), P("e", ENFORCE, 5, "c"), H("d"), H("e") } },
    { "a_recently_used_policy_outlives_unused_ones", 20,
      { P("hot", ENFORCE, 1, ""), F("cold", ENFORCE, 19, 2), G("hot", 100),
        P("q0", ENFORCE, 101, "cold*"), P("q1", ENFORCE, 102, "cold*"),
        P("q2", ENFORCE, 103, "cold*"), P("q3", ENFORCE, 104, "cold*"), H("hot"), H("q0"),
        N(20) } },
};

/* ------------------------------------------------------------ helpers */

static const char *const bodies[] = {
    [NONE] = "version: STSv1\nmode: none\nmax_age: 86400\n",
    [TESTING] = "version: STSv1\nmode: testing\nmx: mx.example.com\nmax_age: 86400\n",
    [ENFORCE] = "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 86400\n",
};

static sts_entry_kind kind_of(int what)
{
    return what == NOPOL ? STS_ENTRY_NOPOLICY : what == FAILED ? STS_ENTRY_FAILED
                                                               : STS_ENTRY_POLICY;
}

/* An entry holding `what`, used last at t. */
static void entry_make(sts_cache_entry *e, int what, int64_t t)
{
    memset(e, 0, sizeof(*e));
    e->kind = kind_of(what);
    e->last_used = t;
    e->checked_at = t;
    e->expires_at = t + 86400;
    if (e->kind == STS_ENTRY_POLICY) {
        sts_policy *p = NULL;
        sts_why why;

        if (sts_policy_parse(bodies[what], strlen(bodies[what]), &p, &why) != STS_OK)
            fail_msg("policy of kind %d: %s", what, why.text);
        e->pol = sts_polref_new(p);
        assert_non_null(e->pol);
        e->fetched_at = t;
    }
}

/* Put domain; what was evicted to make room into *ev. */
static void put(sts_cache *c, const char *domain, int what, int64_t t, sts_cache_evicted *ev)
{
    sts_cache_entry e;

    entry_make(&e, what, t);
    if (sts_cache_put(c, domain, &e, ev) != STS_OK)
        fail_msg("put %s: out of memory", domain);
    sts_cache_entry_release(&e);
}

/* What the script last put for domain before step upto; 0 if nothing. */
static int last_put(const cache_case *k, int upto, const char *domain)
{
    int what = 0;

    for (int i = 0; i < upto; i++)
        if (k->steps[i].op == PUT && strcmp(k->steps[i].domain, domain) == 0)
            what = k->steps[i].what;
    return what;
}

typedef struct find_arg {
    const char *domain;
    bool found;
} find_arg;

static bool find_cb(void *arg, const char *domain, const sts_cache_entry *e)
{
    find_arg *f = arg;

    (void)e;
    if (strcmp(domain, f->domain) == 0)
        f->found = true;
    return !f->found;
}

/* Present without touching its recency (sts_cache_get would). */
static bool has(sts_cache *c, const char *domain)
{
    find_arg f = { domain, false };

    sts_cache_each(c, find_cb, &f);
    return f.found;
}

static void flood(sts_cache *c, const step *s, int at)
{
    sts_cache_evicted ev;
    char d[STS_DOMAIN_MAX + 1];

    for (int i = 0; i < s->n; i++) {
        (void)snprintf(d, sizeof(d), "%s%d.test", s->domain, i);
        put(c, d, s->what, s->t + i, &ev);
        /* A flood without policies gives up only entries without one. */
        if (s->what == NOPOL && ev.domain[0] != '\0' && ev.kind == STS_ENTRY_POLICY)
            fail_msg("step %d: put %s evicted the policy of %s", at, d, ev.domain);
    }
}

static bool evicted_is(const char *got, const char *want)
{
    size_t len = strlen(want);

    if (len > 0 && want[len - 1] == '*')
        return strncmp(got, want, len - 1) == 0;
    return strcmp(got, want) == 0;
}

static void run_case(void **state)
{
    const cache_case *k = *state;
    sts_cache *c = NULL;
    sts_cache_evicted ev;

    assert_int_equal(sts_cache_new(k->max, &c), STS_OK);
    for (int i = 0; i < (int)(sizeof(k->steps) / sizeof(k->steps[0])) && k->steps[i].op != 0;
         i++) {
        const step *s = &k->steps[i];
        sts_cache_entry e;

        switch (s->op) {
        case PUT:
            put(c, s->domain, s->what, s->t, &ev);
            if (!evicted_is(ev.domain, s->evicted))
                fail_msg("step %d: put %s: evicted '%s', want '%s'", i, s->domain, ev.domain,
                         s->evicted);
            /* The kind reported is the one the evicted entry held. */
            if (ev.domain[0] != '\0' && last_put(k, i + 1, ev.domain) != 0 &&
                ev.kind != kind_of(last_put(k, i + 1, ev.domain)))
                fail_msg("step %d: put %s: evicted kind %d, want %d", i, s->domain,
                         (int)ev.kind, (int)kind_of(last_put(k, i + 1, ev.domain)));
            break;
        case GET:
            if (!sts_cache_get(c, s->domain, s->t, &e))
                fail_msg("step %d: get %s: absent, want present", i, s->domain);
            sts_cache_entry_release(&e);
            break;
        case HAS:
        case LACKS:
            if (has(c, s->domain) != (s->op == HAS))
                fail_msg("step %d: %s: %s, want %s", i, s->domain,
                         s->op == HAS ? "absent" : "present", s->op == HAS ? "present" : "absent");
            break;
        case REMOVE:
            if (!sts_cache_remove(c, s->domain))
                fail_msg("step %d: remove %s: absent, want present", i, s->domain);
            break;
        case CLEAR:
            sts_cache_clear(c);
            break;
        case FLOOD:
            flood(c, s, i);
            break;
        case COUNT:
            if (sts_cache_count(c) != (size_t)s->what)
                fail_msg("step %d: count: got %zu, want %d", i, sts_cache_count(c), s->what);
            break;
        }
    }
    sts_cache_free(c);
}

/* ------------------------------------------------------------ threads */

#define RACE_DOMAINS 64
#define RACE_ROUNDS 20000
#define RACE_READERS 3

typedef struct race {
    sts_cache *c;
    _Atomic int stop;
} race;

static void *reader(void *p)
{
    race *r = p;
    char d[32];
    unsigned i = 0;

    while (!r->stop) {
        sts_cache_entry e;

        (void)snprintf(d, sizeof(d), "r%u.test", i++ % RACE_DOMAINS);
        if (sts_cache_get(r->c, d, (int64_t)i, &e)) {
            if (e.kind == STS_ENTRY_POLICY && sts_polref_policy(e.pol)->text_len == 0)
                fail_msg("%s: a policy without its text", d);
            sts_cache_entry_release(&e);
        }
    }
    return NULL;
}

/* Readers copy entries while one writer inserts, replaces (changing the
 * class), removes and evicts: under ASan any entry freed too early shows. */
static void test_readers_during_evictions(void **state)
{
    pthread_t t[RACE_READERS];
    race r;
    sts_cache_evicted ev;
    char d[32];

    (void)state;
    memset(&r, 0, sizeof(r));
    assert_int_equal(sts_cache_new(16, &r.c), STS_OK);
    for (int i = 0; i < RACE_READERS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, reader, &r), 0);
    for (int i = 0; i < RACE_ROUNDS; i++) {
        (void)snprintf(d, sizeof(d), "r%d.test", (i * 7) % RACE_DOMAINS);
        if (i % 11 == 0)
            (void)sts_cache_remove(r.c, d);
        else
            put(r.c, d, NOPOL + i % 5, i, &ev);
        if (sts_cache_count(r.c) > 16)
            fail_msg("round %d: count %zu, want at most 16", i, sts_cache_count(r.c));
    }
    r.stop = 1;
    for (int i = 0; i < RACE_READERS; i++)
        pthread_join(t[i], NULL);
    sts_cache_free(r.c);
}

int main(void)
{
    struct CMUnitTest tests[UNIT_RUN_SLOTS(cases) + 1];
    size_t n = 0;

    for (size_t i = 0; i < UNIT_RUN_SLOTS(cases); i++) {
        tests[n] = (struct CMUnitTest)cmocka_unit_test_prestate(run_case, (void *)&cases[i]);
        tests[n++].name = cases[i].name;
    }
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_readers_during_evictions);
    return UNIT_RUN("cache", tests, n);
}
