/*
 * test_discover.c - the fetch stage limit of the discovery module
 * (src/sts/discover.h, max_fetches): at most that many discoveries
 * fetch at once, the others wait parked and enter in the order they came
 * whenever a fetch ends, a discovery that ends before the fetch stage
 * never parks, freeing the discoverer with parked discoveries ends
 * each with its callback, once, and a fetch running longer than
 * fetch_lend_ms lends its slot to the next parked discovery (the running
 * count then exceeds the limit, the lent ones going on beside).
 *
 * The "DNS server" is a UDP socket on loopback that never answers: every
 * query times out after DNSTimeout (100 ms, one try).  A refresh goes on
 * to the policy fetch when its TXT lookup fails (RFC 8461 3.3, 5.1), so
 * it enters the fetch stage; there the policy host's address lookup times
 * out too, ending the fetch stage with "dns-policy-host".  The HTTPS side
 * of the stage is covered by tests/integration/test_fetch_stage.py.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "unit_run.h"

#include "base/clock.h"
#include "sts/discover.h"

#define MAX_JOBS 8

typedef struct tcase {
    const char *name;
    unsigned jobs;
    unsigned max_fetches;
    sts_discover_mode mode;
    unsigned free_when_parked; /* free once this many are parked; 0: run to the end */
    unsigned want_max_parked;  /* the most parked at once */
    unsigned want_max_running; /* the most in the fetch stage at once */
    const char *want_failure;  /* outcome.failure of every job */
    bool want_in_order;        /* callbacks in the order the jobs started */
    unsigned dns_timeout_ms;   /* 0: 100 */
    unsigned lend_ms;          /* opts.fetch_lend_ms (0: the default, 1 s) */
} tcase;

static const tcase cases[] = {
    { "limit_one_runs_fetches_one_at_a_time_in_order", 3, 1, STS_DISCOVER_REFRESH, 0, 2, 1,
      "dns-policy-host", true },
    { "limit_two_of_five", 5, 2, STS_DISCOVER_REFRESH, 0, 3, 2, "dns-policy-host", false },
    { "no_limit_never_parks", 3, 0, STS_DISCOVER_REFRESH, 0, 0, 3, "dns-policy-host", false },
    { "limit_above_demand_never_parks", 3, 5, STS_DISCOVER_REFRESH, 0, 0, 3, "dns-policy-host",
      false },
    { "txt_failure_ends_before_the_fetch_stage", 3, 1, STS_DISCOVER_FULL, 0, 0, 0, "dns-txt",
      false },
    { "free_with_parked_calls_each_back_once", 4, 2, STS_DISCOVER_REFRESH, 2, 2, 2, "local",
      false },
    { "free_with_one_running_and_four_parked", 5, 1, STS_DISCOVER_REFRESH, 4, 4, 1, "local",
      false },
    /* Each fetch stage lasts 600 ms (the address lookup times out); after
     * 50 ms the oldest lends its slot, so all three end up running. */
    { "slow_fetches_lend_their_slots_in_order", 3, 1, STS_DISCOVER_REFRESH, 0, 2, 3,
      "dns-policy-host", true, 600, 50 },
    /* The same with the default (1 s): nobody waits that long, no lending. */
    { "fetches_quicker_than_the_lend_time_keep_their_slots", 3, 1, STS_DISCOVER_REFRESH, 0, 2, 1,
      "dns-policy-host", true, 300, 0 },
};

typedef struct rec {
    unsigned calls;
    unsigned order;
    sts_result result;
    char failure[32];
    char error[STS_WHY_MAX];
} rec;

typedef struct run {
    sts_discover *d;
    rec recs[MAX_JOBS];
    unsigned done;
    size_t max_running, max_parked;
} run;

static void note_stage(run *r)
{
    size_t running, parked;

    sts_discover_fetches(r->d, &running, &parked);
    if (running > r->max_running)
        r->max_running = running;
    if (parked > r->max_parked)
        r->max_parked = parked;
}

static run *cb_run;

static void on_done(void *arg, sts_outcome *o)
{
    rec *rc = arg;

    rc->calls++;
    rc->order = cb_run->done++;
    rc->result = o->result;
    (void)snprintf(rc->failure, sizeof(rc->failure), "%s",
                   o->failure != NULL ? o->failure : "(null)");
    (void)snprintf(rc->error, sizeof(rc->error), "%s", o->error);
    note_stage(cb_run);
}

/* A UDP socket on loopback that takes queries and never answers. */
static int black_hole(char *servers, size_t len)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);

    assert_true(fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    (void)snprintf(servers, len, "127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
    return fd;
}

static void run_case(void **state)
{
    const tcase *tc = *state;
    sts_discover_opts opts;
    sts_why why = { "" };
    char servers[64];
    int fd = black_hole(servers, sizeof(servers));
    int64_t deadline = sts_mono_ms() + 10000;
    run r;
    bool freed = false;

    memset(&r, 0, sizeof(r));
    memset(&opts, 0, sizeof(opts));
    opts.dns.servers = servers;
    opts.dns.timeout_ms = tc->dns_timeout_ms != 0 ? tc->dns_timeout_ms : 100;
    opts.dns.tries = 1;
    opts.max_fetches = tc->max_fetches;
    opts.fetch_lend_ms = tc->lend_ms;
    assert_int_equal(sts_discover_new(&opts, &r.d, &why), STS_OK);
    cb_run = &r;
    for (unsigned i = 0; i < tc->jobs; i++) {
        char domain[32];

        (void)snprintf(domain, sizeof(domain), "d%u.test", i);
        assert_int_equal(sts_discover_start_mode(r.d, domain, tc->mode, "id1", on_done, &r.recs[i]),
                         STS_OK);
    }
    while (r.done < tc->jobs && sts_mono_ms() < deadline) {
        size_t running, parked;

        assert_int_equal(sts_discover_run(r.d, 50), STS_OK);
        note_stage(&r);
        sts_discover_fetches(r.d, &running, &parked);
        if (tc->free_when_parked != 0 && parked >= tc->free_when_parked) {
            sts_discover_free(r.d);
            freed = true;
            break;
        }
    }
    if (!freed)
        sts_discover_free(r.d);
    cb_run = NULL;
    (void)close(fd);
    if (tc->free_when_parked != 0 && !freed)
        fail_msg("never %u parked (most: %zu)", tc->free_when_parked, r.max_parked);
    assert_int_equal(r.done, tc->jobs);
    for (unsigned i = 0; i < tc->jobs; i++) {
        const rec *rc = &r.recs[i];

        if (rc->calls != 1)
            fail_msg("job %u: called back %u times", i, rc->calls);
        assert_int_equal(rc->result, STS_RESULT_TEMPERROR);
        if (strcmp(rc->failure, tc->want_failure) != 0)
            fail_msg("job %u: failure %s, want %s (%s)", i, rc->failure, tc->want_failure,
                     rc->error);
        if (tc->free_when_parked != 0 && strstr(rc->error, "shutting down") == NULL)
            fail_msg("job %u: error \"%s\", want a shutdown", i, rc->error);
        if (tc->want_in_order && rc->order != i)
            fail_msg("job %u: called back as number %u", i, rc->order);
    }
    assert_int_equal(r.max_parked, tc->want_max_parked);
    assert_int_equal(r.max_running, tc->want_max_running);
}

UNIT_MAIN_CASES("discover", cases, run_case)
