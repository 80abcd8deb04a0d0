/*
 * test_prober.c - the MX prober's schedule (src/engine/prober.h) with an
 * injected clock, runner and MX lookup: which notes become probes, once
 * per (domain, policy id, MX) and per MX per interval, an MX outside the
 * policy judged without a connection, the bounded queue, the modes, and
 * the worker threads.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "unit_run.h"

#include "engine/prober.h"
#include "sts/policy.h"

#define MAX_RECS 32

typedef struct fixture {
    int64_t now;
    unsigned runs;
    char ran[8][64];
    unsigned lookups;
    size_t nrec;
    struct {
        char domain[64], mx[64], id[40];
        sts_probe_result result;
        bool in_policy;
        int64_t time;
    } rec[MAX_RECS];
    sts_prober *p;
    sts_policy *testing, *enforce, *none;
} fixture;

static int64_t clock_fn(void *arg)
{
    return ((fixture *)arg)->now;
}

/* The worker threads of test_threads_do_the_work call back at once. */
static pthread_mutex_t fmu = PTHREAD_MUTEX_INITIALIZER;

static void run_fn(void *arg, const char *mx, sts_probe_out *out)
{
    fixture *f = arg;

    pthread_mutex_lock(&fmu);
    if (f->runs < 8)
        (void)snprintf(f->ran[f->runs], sizeof(f->ran[0]), "%s", mx);
    f->runs++;
    pthread_mutex_unlock(&fmu);
    out->result = strncmp(mx, "bad", 3) == 0 ? STS_PROBE_CERT_HOST_MISMATCH : STS_PROBE_SUCCESS;
    (void)snprintf(out->ip, sizeof(out->ip), "192.0.2.25");
    (void)snprintf(out->detail, sizeof(out->detail), "probed %s", mx);
}

static size_t mx_fn(void *arg, const char *domain, char (*hosts)[STS_DOMAIN_MAX + 1], size_t max,
                    char *why, size_t whysz)
{
    fixture *f = arg;

    (void)domain;
    (void)why;
    (void)whysz;
    f->lookups++;
    if (max < 2)
        return 0;
    (void)snprintf(hosts[0], sizeof(hosts[0]), "mx1.example.test");
    (void)snprintf(hosts[1], sizeof(hosts[1]), "other.elsewhere.test");
    return 2;
}

static void on_result(void *arg, const sts_probe_record *r)
{
    fixture *f = arg;

    pthread_mutex_lock(&fmu);
    if (f->nrec >= MAX_RECS)
        fail_msg("too many records");
    (void)snprintf(f->rec[f->nrec].domain, sizeof(f->rec[0].domain), "%s", r->domain);
    (void)snprintf(f->rec[f->nrec].mx, sizeof(f->rec[0].mx), "%s", r->mx);
    (void)snprintf(f->rec[f->nrec].id, sizeof(f->rec[0].id), "%s", r->policy_id);
    f->rec[f->nrec].result = r->result;
    f->rec[f->nrec].in_policy = r->in_policy;
    f->rec[f->nrec].time = r->time;
    f->nrec++;
    pthread_mutex_unlock(&fmu);
}

static sts_policy *policy(const char *text)
{
    sts_policy *p = NULL;
    sts_why why;

    if (sts_policy_parse(text, strlen(text), &p, &why) != STS_OK)
        fail_msg("policy: %s", why.text);
    return p;
}

static fixture *make(unsigned queue_max, bool enforce)
{
    static fixture f;
    sts_prober_opts o;
    sts_why why;

    memset(&f, 0, sizeof(f));
    f.now = 1000000;
    memset(&o, 0, sizeof(o));
    o.interval_s = 3600;
    o.queue_max = queue_max;
    o.testing = true;
    o.enforce = enforce;
    o.clock = clock_fn;
    o.clock_arg = &f;
    o.run = run_fn;
    o.mx_lookup = mx_fn;
    o.run_arg = &f;
    o.on_result = on_result;
    o.result_arg = &f;
    if (sts_prober_new(&o, &f.p, &why) != STS_OK)
        fail_msg("prober: %s", why.text);
    f.testing = policy("version: STSv1\nmode: testing\nmx: *.example.test\nmax_age: 86400\n");
    f.enforce = policy("version: STSv1\nmode: enforce\nmx: *.example.test\nmax_age: 86400\n");
    f.none = policy("version: STSv1\nmode: none\nmax_age: 86400\n");
    return &f;
}

static void drop(fixture *f)
{
    sts_prober_free(f->p);
    sts_policy_free(f->testing);
    sts_policy_free(f->enforce);
    sts_policy_free(f->none);
}

static void note(fixture *f, const char *domain, const sts_policy *pol, const char *mx)
{
    const char *hosts[] = { mx };

    sts_prober_note(f->p, domain, "id1", pol, hosts, mx != NULL ? 1 : 0, mx != NULL);
}

static size_t run_all(fixture *f)
{
    size_t n = 0;

    while (sts_prober_run_one(f->p))
        n++;
    return n;
}

static void test_testing_domain_probed_once(void **state)
{
    fixture *f = make(0, false);

    (void)state;
    note(f, "a.test", f->testing, "mx1.example.test");
    note(f, "a.test", f->testing, "mx1.example.test");
    assert_int_equal(run_all(f), 1);
    assert_int_equal(f->runs, 1);
    assert_int_equal(f->nrec, 1);
    assert_string_equal(f->rec[0].domain, "a.test");
    assert_string_equal(f->rec[0].mx, "mx1.example.test");
    assert_string_equal(f->rec[0].id, "id1");
    assert_int_equal(f->rec[0].result, STS_PROBE_SUCCESS);
    assert_true(f->rec[0].in_policy);
    /* Within the interval: nothing new. */
    f->now += 3599;
    note(f, "a.test", f->testing, "mx1.example.test");
    assert_int_equal(run_all(f), 0);
    drop(f);
}

static void test_probed_again_after_interval(void **state)
{
    fixture *f = make(0, false);

    (void)state;
    note(f, "a.test", f->testing, "mx1.example.test");
    assert_int_equal(run_all(f), 1);
    f->now += 3600;
    note(f, "a.test", f->testing, "mx1.example.test");
    assert_int_equal(run_all(f), 1);
    assert_int_equal(f->runs, 2);
    assert_int_equal(f->nrec, 2);
    assert_int_equal(f->rec[1].time, f->now);
    drop(f);
}

static void test_shared_mx_probed_once_for_two_domains(void **state)
{
    fixture *f = make(0, false);
    sts_prober_stats st;

    (void)state;
    note(f, "a.test", f->testing, "badmx.example.test");
    note(f, "b.test", f->testing, "badmx.example.test");
    assert_int_equal(run_all(f), 2);
    assert_int_equal(f->runs, 1);
    assert_int_equal(f->nrec, 2);
    assert_string_equal(f->rec[1].domain, "b.test");
    assert_int_equal(f->rec[1].result, STS_PROBE_CERT_HOST_MISMATCH);
    assert_int_equal(f->rec[1].time, f->rec[0].time);
    sts_prober_get_stats(f->p, &st);
    assert_int_equal(st.probes, 1);
    assert_int_equal(st.cached, 1);
    drop(f);
}

static void test_new_policy_id_is_noted_again(void **state)
{
    fixture *f = make(0, false);
    const char *hosts[] = { "mx1.example.test" };

    (void)state;
    note(f, "a.test", f->testing, "mx1.example.test");
    sts_prober_note(f->p, "a.test", "id2", f->testing, hosts, 1, true);
    assert_int_equal(run_all(f), 2);
    assert_int_equal(f->runs, 1); /* the MX's facts are shared */
    assert_string_equal(f->rec[1].id, "id2");
    drop(f);
}

static void test_mx_outside_policy_without_connection(void **state)
{
    fixture *f = make(0, false);

    (void)state;
    note(f, "a.test", f->testing, "mx.elsewhere.test");
    assert_int_equal(run_all(f), 1);
    assert_int_equal(f->runs, 0);
    assert_int_equal(f->nrec, 1);
    assert_int_equal(f->rec[0].result, STS_PROBE_VALIDATION_FAILURE);
    assert_false(f->rec[0].in_policy);
    drop(f);
}

static void test_modes_probed_as_configured(void **state)
{
    fixture *f = make(0, false);

    (void)state;
    note(f, "e.test", f->enforce, "mx1.example.test");
    note(f, "n.test", f->none, "mx1.example.test");
    note(f, "t.test", NULL, "mx1.example.test");
    assert_int_equal(run_all(f), 0);
    drop(f);
    f = make(0, true);
    note(f, "e.test", f->enforce, "mx1.example.test");
    assert_int_equal(run_all(f), 1);
    assert_int_equal(f->nrec, 1);
    drop(f);
}

static void test_full_queue_drops_and_forgets(void **state)
{
    fixture *f = make(1, false);
    sts_prober_stats st;

    (void)state;
    note(f, "a.test", f->testing, "mx1.example.test");
    note(f, "b.test", f->testing, "mx2.example.test");
    sts_prober_get_stats(f->p, &st);
    assert_int_equal(st.queued, 1);
    assert_int_equal(st.dropped, 1);
    assert_int_equal(st.waiting, 1);
    assert_int_equal(run_all(f), 1);
    /* The dropped one was not marked as done: the next mail queues it. */
    note(f, "b.test", f->testing, "mx2.example.test");
    assert_int_equal(run_all(f), 1);
    assert_int_equal(f->runs, 2);
    assert_string_equal(f->ran[1], "mx2.example.test");
    drop(f);
}

static void test_unknown_mx_hosts_looked_up(void **state)
{
    fixture *f = make(0, false);

    (void)state;
    note(f, "a.test", f->testing, NULL);
    note(f, "a.test", f->testing, NULL);
    assert_int_equal(run_all(f), 1);
    assert_int_equal(f->lookups, 1);
    assert_int_equal(f->nrec, 2);
    assert_string_equal(f->rec[0].mx, "mx1.example.test");
    assert_int_equal(f->rec[0].result, STS_PROBE_SUCCESS);
    assert_string_equal(f->rec[1].mx, "other.elsewhere.test");
    assert_int_equal(f->rec[1].result, STS_PROBE_VALIDATION_FAILURE);
    /* The hosts found count as noted for this interval. */
    note(f, "a.test", f->testing, "mx1.example.test");
    assert_int_equal(run_all(f), 0);
    drop(f);
}

static void test_threads_do_the_work(void **state)
{
    fixture *f = make(0, false);
    sts_prober_stats st;
    sts_why why;

    (void)state;
    if (sts_prober_start(f->p, &why) != STS_OK)
        fail_msg("start: %s", why.text);
    note(f, "a.test", f->testing, "mx1.example.test");
    note(f, "b.test", f->testing, "mx2.example.test");
    for (int i = 0; i < 500; i++) {
        struct timespec ts = { 0, 10000000L };

        sts_prober_get_stats(f->p, &st);
        if (st.records == 2)
            break;
        nanosleep(&ts, NULL);
    }
    sts_prober_stop(f->p);
    sts_prober_get_stats(f->p, &st);
    assert_int_equal(st.records, 2);
    assert_int_equal(f->nrec, 2);
    drop(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_testing_domain_probed_once),
        cmocka_unit_test(test_probed_again_after_interval),
        cmocka_unit_test(test_shared_mx_probed_once_for_two_domains),
        cmocka_unit_test(test_new_policy_id_is_noted_again),
        cmocka_unit_test(test_mx_outside_policy_without_connection),
        cmocka_unit_test(test_modes_probed_as_configured),
        cmocka_unit_test(test_full_queue_drops_and_forgets),
        cmocka_unit_test(test_unknown_mx_hosts_looked_up),
        cmocka_unit_test(test_threads_do_the_work),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
