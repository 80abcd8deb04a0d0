/*
 * test_smap_conns.c - the socketmap server's connection table
 * (src/smap/smap_conns.c): admission under SocketmapMaxConnections and
 * SocketmapMaxPerPeer, the longest-idle connection making room (never one
 * with a request in progress), the idle and request timeouts.  Each case
 * is a script of calls with injected times; close_fn records which
 * connections the table closed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "smap/smap_conns.h"

enum { MAXC = 8 };                /* connections of one script */
enum { ADMIT = 1, TAKE, IDLE, WAIT, REMOVE, SWEEP, COUNT };

typedef struct step {
    int op;
    int conn;     /* 0..MAXC-1 */
    int peer;     /* ADMIT: 0 unknown, else uid */
    int64_t t;    /* ADMIT, IDLE, SWEEP: now; WAIT: since */
    int want;     /* ADMIT: sts_smap_admit; TAKE: 1/0; SWEEP: idle closed; COUNT: count */
    int want2;    /* SWEEP: stalled closed */
    const char *closed; /* connections close_fn got during the step, e.g. "0 2" */
} step;

typedef struct conns_case {
    const char *name;
    unsigned max, per_peer;
    int64_t idle_for, wait_for;
    step steps[12];
} conns_case;

#define A(c, p, t, want, closed) { ADMIT, c, p, t, want, 0, closed }
#define T(c, want, closed) { TAKE, c, 0, 0, want, 0, closed }
#define I(c, t) { IDLE, c, 0, t, 0, 0, "" }
#define W(c, since) { WAIT, c, 0, since, 0, 0, "" }
#define R(c) { REMOVE, c, 0, 0, 0, 0, "" }
#define S(t, idle, stalled, closed) { SWEEP, 0, 0, t, idle, stalled, closed }
#define N(n) { COUNT, 0, 0, 0, n, 0, "" }

static const conns_case cases[] = {
    { "admits_below_the_limits", 3, 2, 100, 100,
      { A(0, 1, 1, STS_SMAP_ADMITTED, ""), A(1, 1, 2, STS_SMAP_ADMITTED, ""),
        A(2, 2, 3, STS_SMAP_ADMITTED, ""), N(3) } },
    { "full_closes_the_longest_idle", 2, 0, 100, 100,
      { A(0, 1, 10, STS_SMAP_ADMITTED, ""), A(1, 2, 20, STS_SMAP_ADMITTED, ""),
        A(2, 3, 30, STS_SMAP_ADMITTED_FULL, "0"), T(0, 0, ""), R(0), T(1, 1, ""), N(2) } },
    { "longest_idle_counts_from_the_last_request_not_the_connect", 2, 0, 100, 100,
      { A(0, 1, 10, STS_SMAP_ADMITTED, ""), A(1, 1, 20, STS_SMAP_ADMITTED, ""),
        T(0, 1, ""), I(0, 30), A(2, 1, 40, STS_SMAP_ADMITTED_FULL, "1") } },
    { "request_in_progress_never_makes_room_newcomer_refused", 2, 0, 100, 100,
      { A(0, 1, 1, STS_SMAP_ADMITTED, ""), A(1, 1, 2, STS_SMAP_ADMITTED, ""),
        T(0, 1, ""), T(1, 1, ""), W(1, 5), A(2, 1, 9, STS_SMAP_REFUSED_FULL, ""), N(2) } },
    { "peer_at_its_limit_closes_its_own_not_an_older_other", 8, 2, 100, 100,
      { A(0, 100, 1, STS_SMAP_ADMITTED, ""), A(1, 200, 2, STS_SMAP_ADMITTED, ""),
        A(2, 200, 3, STS_SMAP_ADMITTED, ""), A(3, 200, 4, STS_SMAP_ADMITTED_PEER, "1"),
        T(0, 1, "") } },
    { "peer_at_its_limit_refused_when_its_own_are_busy", 8, 1, 100, 100,
      { A(0, 100, 1, STS_SMAP_ADMITTED, ""), A(1, 200, 2, STS_SMAP_ADMITTED, ""), T(1, 1, ""),
        A(2, 200, 3, STS_SMAP_REFUSED_PEER, ""), A(3, 300, 4, STS_SMAP_ADMITTED, "") } },
    { "unknown_peers_have_no_per_peer_limit", 8, 1, 100, 100,
      { A(0, 0, 1, STS_SMAP_ADMITTED, ""), A(1, 0, 2, STS_SMAP_ADMITTED, ""),
        A(2, 0, 3, STS_SMAP_ADMITTED, "") } },
    { "per_peer_zero_is_no_limit", 8, 0, 100, 100,
      { A(0, 7, 1, STS_SMAP_ADMITTED, ""), A(1, 7, 2, STS_SMAP_ADMITTED, ""),
        A(2, 7, 3, STS_SMAP_ADMITTED, "") } },
    { "a_closed_connection_not_yet_removed_is_not_live", 2, 0, 100, 100,
      { A(0, 1, 1, STS_SMAP_ADMITTED, ""), A(1, 1, 2, STS_SMAP_ADMITTED, ""),
        A(2, 1, 3, STS_SMAP_ADMITTED_FULL, "0"), A(3, 1, 4, STS_SMAP_ADMITTED_FULL, "1"), N(4),
        T(0, 0, ""), R(0), N(3) } },
    { "no_slot_while_owners_lag_closes_nothing", 1, 0, 100, 100,
      { A(0, 1, 1, STS_SMAP_ADMITTED, ""), A(1, 1, 2, STS_SMAP_ADMITTED_FULL, "0"),
        A(2, 1, 3, STS_SMAP_NO_SLOT, ""), T(1, 1, ""), R(0),
        A(2, 1, 4, STS_SMAP_REFUSED_FULL, ""), I(1, 5), A(2, 1, 6, STS_SMAP_ADMITTED_FULL, "1") } },
    { "sweep_idle_after_idle_for_stalled_after_wait_for", 8, 0, 100, 50,
      { A(0, 1, 0, STS_SMAP_ADMITTED, ""), A(1, 1, 0, STS_SMAP_ADMITTED, ""), T(1, 1, ""),
        W(1, 10), S(59, 0, 0, ""), S(60, 0, 1, "1"), S(99, 0, 0, ""), S(100, 1, 0, "0"),
        T(0, 0, ""), T(1, 0, "") } },
    { "half_a_request_outlives_the_idle_timeout", 8, 0, 10, 100,
      { A(0, 1, 0, STS_SMAP_ADMITTED, ""), T(0, 1, ""), W(0, 0), S(50, 0, 0, ""),
        S(100, 0, 1, "0") } },
    { "busy_is_never_swept", 8, 0, 10, 10,
      { A(0, 1, 0, STS_SMAP_ADMITTED, ""), T(0, 1, ""), S(1000000, 0, 0, ""), I(0, 1000000),
        S(1000009, 0, 0, ""), S(1000010, 1, 0, "0") } },
};

static char got_closed[64];

static void record_close(void *owner)
{
    size_t n = strlen(got_closed);

    (void)snprintf(got_closed + n, sizeof(got_closed) - n, "%s%d", n > 0 ? " " : "",
                   *(const int *)owner);
}

static void run_case(const conns_case *c)
{
    static const int ids[MAXC] = { 0, 1, 2, 3, 4, 5, 6, 7 };
    sts_smap_conns *t = sts_smap_conns_new(c->max, record_close);
    unsigned slot[MAXC] = { 0 };

    assert_non_null(t);
    for (size_t i = 0; i < sizeof(c->steps) / sizeof(c->steps[0]) && c->steps[i].op != 0; i++) {
        const step *s = &c->steps[i];
        sts_sockpeer peer = { .kind = s->peer != 0 ? STS_SOCKPEER_UID : STS_SOCKPEER_UNKNOWN,
                              .uid = (uint32_t)s->peer };
        unsigned idle = 0, stalled = 0;
        int got = 0;

        got_closed[0] = '\0';
        switch (s->op) {
        case ADMIT:
            got = (int)sts_smap_conns_admit(t, &peer, (void *)&ids[s->conn], c->per_peer, s->t,
                                            &slot[s->conn]);
            break;
        case TAKE:
            got = sts_smap_conns_take(t, slot[s->conn]);
            break;
        case IDLE:
            sts_smap_conns_idle(t, slot[s->conn], s->t);
            break;
        case WAIT:
            sts_smap_conns_wait(t, slot[s->conn], s->t);
            break;
        case REMOVE:
            sts_smap_conns_remove(t, slot[s->conn]);
            break;
        case SWEEP:
            sts_smap_conns_sweep(t, c->idle_for, c->wait_for, s->t, &idle, &stalled);
            if ((int)idle != s->want || (int)stalled != s->want2)
                fail_msg("case %s, step %zu: swept got idle=%u stalled=%u, want %d %d", c->name,
                         i, idle, stalled, s->want, s->want2);
            break;
        case COUNT:
            got = (int)sts_smap_conns_count(t);
            break;
        }
        if (s->op != SWEEP && got != s->want)
            fail_msg("case %s, step %zu: got %d, want %d", c->name, i, got, s->want);
        if (strcmp(got_closed, s->closed) != 0)
            fail_msg("case %s, step %zu: closed got \"%s\", want \"%s\"", c->name, i, got_closed,
                     s->closed);
    }
    sts_smap_conns_free(t);
}

static void test_scripts(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        run_case(&cases[i]);
}

/* A flood of one peer at a table of 4096 (the default): each newcomer
 * closes exactly the oldest of the flood, and another peer's connection,
 * older than all of them, stays. */
static void test_flood_keeps_the_other_peer(void **state)
{
    enum { MAX = 4096, PER_PEER = 2048, FLOOD = 5000 };
    static int owners[FLOOD + 1];
    static unsigned slots[FLOOD + 1];
    sts_smap_conns *t = sts_smap_conns_new(MAX, record_close);
    sts_sockpeer mta = { .kind = STS_SOCKPEER_UID, .uid = 100 };
    sts_sockpeer other = { .kind = STS_SOCKPEER_UID, .uid = 65534 };

    (void)state;
    assert_non_null(t);
    owners[FLOOD] = -1;
    assert_int_equal(sts_smap_conns_admit(t, &mta, &owners[FLOOD], PER_PEER, 0, &slots[FLOOD]),
                     STS_SMAP_ADMITTED);
    for (int i = 0; i < FLOOD; i++) {
        sts_smap_admit r;
        char want[16] = "";

        owners[i] = i;
        got_closed[0] = '\0';
        r = sts_smap_conns_admit(t, &other, &owners[i], PER_PEER, 1 + i, &slots[i]);
        if (i >= PER_PEER)
            (void)snprintf(want, sizeof(want), "%d", i - PER_PEER);
        if (r != (i < PER_PEER ? STS_SMAP_ADMITTED : STS_SMAP_ADMITTED_PEER) ||
            strcmp(got_closed, want) != 0)
            fail_msg("flood %d: got %d closing \"%s\", want closing \"%s\"", i, r, got_closed,
                     want);
        /* Its owner frees the closed one, as a worker would. */
        if (i >= PER_PEER) {
            assert_false(sts_smap_conns_take(t, slots[i - PER_PEER]));
            sts_smap_conns_remove(t, slots[i - PER_PEER]);
        }
    }
    assert_int_equal(sts_smap_conns_count(t), PER_PEER + 1);
    assert_true(sts_smap_conns_take(t, slots[FLOOD]));
    sts_smap_conns_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scripts),
        cmocka_unit_test(test_flood_keeps_the_other_peer),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
