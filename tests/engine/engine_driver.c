/*
 * engine_driver - drives the lookup engine from a test script, one command
 * per line on stdin, one JSON object per answer on stdout.  Time is
 * injected so the RFC 8461 caching rules can be tested without waiting.
 *
 *   engine_driver --config FILE [--store SPEC] [--negative-ttl S]
 *                 [--retry S] [--recheck S] [--refresh-idle S]
 *                 [--max-entries N] [--inflight N] [--queue N]
 *                 [--waiters N] [--store-max-entries N] [--time T]
 * Commands:
 *   lookup DOMAIN TIMEOUT_MS      one lookup; prints the answer
 *   lookup-mx DOMAIN TIMEOUT_MS   the same with STS_LOOKUP_NEED_MX
 *   burst DOMAIN N TIMEOUT_MS     N threads look DOMAIN up at once;
 *                                 prints counts of each result
 *   bursts PREFIX N TIMEOUT_MS    N threads, domains PREFIX0..PREFIX{N-1}
 *   flood PREFIX N TIMEOUT_MS     N lookups one after the other, of
 *                                 PREFIX0.test..PREFIX{N-1}.test; prints
 *                                 the counts of each result
 *   async DOMAIN N TIMEOUT_MS     N asynchronous lookups from this thread;
 *                                 prints how many parked and the counts of
 *                                 the answers given at once
 *   asyncs PREFIX N TIMEOUT_MS    the same over PREFIX0..PREFIX{N-1}.test
 *   async-mx DOMAIN N TIMEOUT_MS  async with STS_LOOKUP_NEED_MX
 *   async-wait                    until every parked lookup has called
 *                                 back (30 s max); prints the counts of
 *                                 those answers and of callbacks run twice,
 *                                 on this thread, or late (for lookups of
 *                                 an earlier async-wait); forgets them
 *   async-cancel                  sts_engine_lookup_cancel for all of them
 *   advance S | time T            move the injected clock
 *   wait-idle                     until nothing is queued or running
 *   wait-stat NAME N              until the counter NAME reaches N (10 s max)
 *   stats | purge DOMAIN|* | restart | quit
 */
#include "buildconf.h"

#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "base/buf.h"
#include "conf/config.h"
#include "conf/opts.h"
#include "engine/engine.h"
#include "base/log.h"
#include "engine/store.h"

#define DRIVER_MAX_THREADS 1000
#define DRIVER_MAX_ASYNC 20000

static _Atomic int64_t fake_now;

static int64_t fake_clock(void *arg)
{
    (void)arg;
    return atomic_load(&fake_now);
}

typedef struct driver {
    sts_config cfg;
    sts_engine_opts opts;
    const char *store_spec;
    sts_engine *engine;
} driver;

static int engine_up(driver *d)
{
    sts_store *store = NULL;
    sts_why why = { "" };

    if (d->store_spec != NULL && sts_engine_open_store(d->store_spec, &store) != STS_OK) {
        fprintf(stderr, "engine_driver: out of memory opening the store\n");
        return -1;
    }
    sts_opts_discover(&d->cfg, &d->opts.discover);
    if (sts_engine_new(&d->opts, store, &d->engine, &why) != STS_OK ||
        sts_engine_start(d->engine, &why) != STS_OK) {
        fprintf(stderr, "engine_driver: engine: %s\n", why.text);
        return -1;
    }
    return 0;
}

static void print_answer(const char *domain, const sts_answer *a)
{
    json_t *o = json_object();
    const char *rt = sts_report_type_name(a->report_type);

    json_object_set_new(o, "domain", json_string(domain));
    json_object_set_new(o, "result", json_string(sts_result_name(a->result)));
    json_object_set_new(o, "pending", json_boolean(a->pending));
    json_object_set_new(o, "from_cache", json_boolean(a->from_cache));
    json_object_set_new(o, "id", json_string(a->id));
    json_object_set_new(o, "report_type", rt != NULL ? json_string(rt) : json_null());
    json_object_set_new(o, "error", json_string(a->error));
    if (a->policy != NULL) {
        json_t *mx = json_array();

        json_object_set_new(o, "mode", json_string(sts_mode_name(a->policy->mode)));
        json_object_set_new(o, "max_age", json_integer(a->policy->max_age));
        json_object_set_new(o, "fetched_at", json_integer(a->fetched_at));
        json_object_set_new(o, "expires_at", json_integer(a->expires_at));
        for (size_t i = 0; i < a->policy->n_mx; i++)
            json_array_append_new(mx, json_string(a->policy->mx[i]));
        json_object_set_new(o, "mx", mx);
        json_object_set_new(o, "mx_known", json_boolean(a->mx_known));
        mx = json_array();
        for (size_t i = 0; a->mx_known && i < a->n_mx; i++)
            json_array_append_new(mx, json_string(a->mx_hosts[i]));
        json_object_set_new(o, "mx_hosts", mx);
    }
    json_dumpf(o, stdout, JSON_COMPACT | JSON_SORT_KEYS);
    putchar('\n');
    json_decref(o);
}

typedef struct burst_arg {
    driver *d;
    char domain[STS_DOMAIN_MAX + 1];
    int timeout_ms;
    pthread_barrier_t *barrier;
    sts_answer a;
    sts_status st;
} burst_arg;

/* ------------------------------------------------------------ async lookups */

typedef struct async_rec {
    int calls;
    bool late; /* called back after its async-wait */
    bool on_main;
    sts_result result;
    bool pending, from_cache, mx_known;
    char error[STS_WHY_MAX];
} async_rec;

static pthread_mutex_t async_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t async_cv = PTHREAD_COND_INITIALIZER;
static async_rec *async_recs; /* DRIVER_MAX_ASYNC, never reused: a late
                                 callback always finds its own record */
static size_t async_base;     /* the records of the current async-wait */
static size_t async_n;        /* records given to parked lookups */
static pthread_t main_thread;

static void async_cb(void *arg, const sts_answer *a)
{
    async_rec *r = arg;

    pthread_mutex_lock(&async_mu);
    if ((size_t)(r - async_recs) < async_base)
        r->late = true;
    r->calls++;
    r->on_main = pthread_equal(pthread_self(), main_thread) != 0;
    r->result = a->result;
    r->pending = a->pending;
    r->from_cache = a->from_cache;
    r->mx_known = a->mx_known;
    (void)snprintf(r->error, sizeof(r->error), "%s", a->error);
    pthread_cond_broadcast(&async_cv);
    pthread_mutex_unlock(&async_mu);
}

typedef struct async_counts {
    json_int_t res[4], pending, from_cache, mx_known;
} async_counts;

static void count_answer(async_counts *c, sts_result result, bool pending, bool from_cache,
                         bool mx_known)
{
    c->res[result]++;
    c->pending += pending;
    c->from_cache += from_cache;
    c->mx_known += mx_known;
}

static void counts_json(json_t *o, const async_counts *c)
{
    json_object_set_new(o, "policy", json_integer(c->res[STS_RESULT_POLICY]));
    json_object_set_new(o, "none", json_integer(c->res[STS_RESULT_NONE]));
    json_object_set_new(o, "temperror", json_integer(c->res[STS_RESULT_TEMPERROR]));
    json_object_set_new(o, "invalid", json_integer(c->res[STS_RESULT_INVALID]));
    json_object_set_new(o, "pending", json_integer(c->pending));
    json_object_set_new(o, "from_cache", json_integer(c->from_cache));
    json_object_set_new(o, "mx_known", json_integer(c->mx_known));
}

static void print_json(json_t *o)
{
    json_dumpf(o, stdout, JSON_COMPACT | JSON_SORT_KEYS);
    putchar('\n');
    json_decref(o);
}

/* N lookups in turn of PREFIX<i>.test, like a sender trying one random
 * domain after another. */
static void flood(driver *d, const char *prefix, int n, int timeout_ms)
{
    async_counts got;
    json_int_t failed = 0;
    json_t *o;

    memset(&got, 0, sizeof(got));
    for (int i = 0; i < n; i++) {
        char domain[STS_DOMAIN_MAX + 1];
        sts_answer a;

        (void)snprintf(domain, sizeof(domain), "%.200s%d.test", prefix, i);
        if (sts_engine_lookup(d->engine, domain, timeout_ms, &a) != STS_OK) {
            failed++;
            continue;
        }
        count_answer(&got, a.result, a.pending, a.from_cache, a.mx_known);
        sts_answer_release(&a);
    }
    o = json_object();
    counts_json(o, &got);
    json_object_set_new(o, "failed", json_integer(failed));
    print_json(o);
}

/* N lookups; a parked one gets a record (its callback's argument), which
 * is filled before the call since the callback may run before it returns. */
static void async_start(driver *d, const char *name, int n, int timeout_ms, unsigned flags,
                        bool distinct)
{
    async_counts now;
    json_int_t parked = 0, failed = 0;
    json_t *o;
    char errors[STS_WHY_MAX] = "";

    memset(&now, 0, sizeof(now));
    if (n < 1 || async_n + (size_t)n > DRIVER_MAX_ASYNC) {
        printf("{\"error\":\"bad async\"}\n");
        return;
    }
    for (int i = 0; i < n; i++) {
        char domain[STS_DOMAIN_MAX + 1];
        async_rec *r = &async_recs[async_n];
        sts_answer a;
        bool is_parked;

        if (distinct && strlen(name) < STS_DOMAIN_MAX - 20)
            (void)snprintf(domain, sizeof(domain), "%.200s%d.test", name, i);
        else
            (void)snprintf(domain, sizeof(domain), "%s", name);
        pthread_mutex_lock(&async_mu);
        memset(r, 0, sizeof(*r));
        pthread_mutex_unlock(&async_mu);
        if (sts_engine_lookup_async(d->engine, domain, timeout_ms, flags, async_cb, r, &a,
                                    &is_parked) != STS_OK) {
            failed++;
            continue;
        }
        if (is_parked) {
            parked++;
            async_n++;
            continue;
        }
        count_answer(&now, a.result, a.pending, a.from_cache, a.mx_known);
        (void)snprintf(errors, sizeof(errors), "%s", a.error);
        sts_answer_release(&a);
    }
    o = json_object();
    counts_json(o, &now);
    json_object_set_new(o, "parked", json_integer(parked));
    json_object_set_new(o, "failed", json_integer(failed));
    json_object_set_new(o, "error", json_string(errors));
    print_json(o);
}

static void async_wait(void)
{
    struct timespec deadline;
    async_counts got;
    json_int_t called = 0, twice = 0, late = 0, on_main = 0;
    json_t *o;
    char error[STS_WHY_MAX] = "";
    bool all = false;

    memset(&got, 0, sizeof(got));
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 30;
    pthread_mutex_lock(&async_mu);
    while (!all) {
        all = true;
        for (size_t i = async_base; i < async_n && all; i++)
            all = async_recs[i].calls > 0;
        if (!all && pthread_cond_timedwait(&async_cv, &async_mu, &deadline) != 0)
            break;
    }
    for (size_t i = 0; i < async_n; i++)
        late += async_recs[i].late;
    for (size_t i = async_base; i < async_n; i++) {
        const async_rec *r = &async_recs[i];

        if (r->calls == 0)
            continue;
        called++;
        twice += r->calls > 1;
        on_main += r->on_main;
        count_answer(&got, r->result, r->pending, r->from_cache, r->mx_known);
        if (error[0] == '\0')
            (void)snprintf(error, sizeof(error), "%s", r->error);
    }
    async_base = async_n;
    pthread_mutex_unlock(&async_mu);
    o = json_object();
    counts_json(o, &got);
    json_object_set_new(o, "called", json_integer(called));
    json_object_set_new(o, "twice", json_integer(twice));
    json_object_set_new(o, "late", json_integer(late));
    json_object_set_new(o, "on_main", json_integer(on_main));
    json_object_set_new(o, "error", json_string(error));
    print_json(o);
}

static void async_cancel(driver *d)
{
    json_int_t called = 0;
    json_t *o;

    sts_engine_lookup_cancel(d->engine, async_cb, NULL, "cancelled by the driver");
    pthread_mutex_lock(&async_mu);
    for (size_t i = async_base; i < async_n; i++)
        called += async_recs[i].calls > 0;
    pthread_mutex_unlock(&async_mu);
    o = json_object();
    json_object_set_new(o, "called", json_integer(called));
    print_json(o);
}

static void *burst_thread(void *p)
{
    burst_arg *b = p;

    pthread_barrier_wait(b->barrier);
    b->st = sts_engine_lookup(b->d->engine, b->domain, b->timeout_ms, &b->a);
    return NULL;
}

static void burst(driver *d, const char *name, int n, int timeout_ms, bool distinct)
{
    pthread_t *tid = calloc((size_t)n, sizeof(*tid));
    burst_arg *args = calloc((size_t)n, sizeof(*args));
    pthread_barrier_t barrier;
    int counts[4] = { 0, 0, 0, 0 }, pending = 0, cached = 0, failed = 0;
    json_t *o;

    if (tid == NULL || args == NULL || n < 1 || n > DRIVER_MAX_THREADS) {
        printf("{\"error\":\"bad burst\"}\n");
        free(tid);
        free(args);
        return;
    }
    pthread_barrier_init(&barrier, NULL, (unsigned)n);
    for (int i = 0; i < n; i++) {
        args[i].d = d;
        if (distinct && strlen(name) < STS_DOMAIN_MAX - 20)
            (void)snprintf(args[i].domain, sizeof(args[i].domain), "%.200s%d.test", name, i);
        else
            (void)snprintf(args[i].domain, sizeof(args[i].domain), "%s", name);
        args[i].timeout_ms = timeout_ms;
        args[i].barrier = &barrier;
        pthread_create(&tid[i], NULL, burst_thread, &args[i]);
    }
    for (int i = 0; i < n; i++) {
        pthread_join(tid[i], NULL);
        if (args[i].st != STS_OK) {
            failed++;
            continue;
        }
        counts[args[i].a.result]++;
        pending += args[i].a.pending;
        cached += args[i].a.from_cache;
        sts_answer_release(&args[i].a);
    }
    pthread_barrier_destroy(&barrier);
    o = json_object();
    json_object_set_new(o, "policy", json_integer(counts[STS_RESULT_POLICY]));
    json_object_set_new(o, "none", json_integer(counts[STS_RESULT_NONE]));
    json_object_set_new(o, "temperror", json_integer(counts[STS_RESULT_TEMPERROR]));
    json_object_set_new(o, "invalid", json_integer(counts[STS_RESULT_INVALID]));
    json_object_set_new(o, "pending", json_integer(pending));
    json_object_set_new(o, "from_cache", json_integer(cached));
    json_object_set_new(o, "failed", json_integer(failed));
    json_dumpf(o, stdout, JSON_COMPACT | JSON_SORT_KEYS);
    putchar('\n');
    json_decref(o);
    free(tid);
    free(args);
}

static json_t *stats_json(driver *d)
{
    sts_engine_stats s;
    json_t *o = json_object();

    sts_engine_get_stats(d->engine, &s);
    json_object_set_new(o, "lookups", json_integer((json_int_t)s.lookups));
    json_object_set_new(o, "hits", json_integer((json_int_t)s.hits));
    json_object_set_new(o, "misses", json_integer((json_int_t)s.misses));
    json_object_set_new(o, "joined", json_integer((json_int_t)s.joined));
    json_object_set_new(o, "pending", json_integer((json_int_t)s.pending));
    json_object_set_new(o, "overloaded", json_integer((json_int_t)s.overloaded));
    json_object_set_new(o, "discoveries", json_integer((json_int_t)s.discoveries));
    json_object_set_new(o, "rechecks", json_integer((json_int_t)s.txt_rechecks));
    json_object_set_new(o, "refreshes", json_integer((json_int_t)s.refreshes));
    json_object_set_new(o, "store_errors", json_integer((json_int_t)s.store_errors));
    json_object_set_new(o, "entries", json_integer((json_int_t)s.entries));
    json_object_set_new(o, "inflight", json_integer((json_int_t)s.inflight));
    json_object_set_new(o, "queued", json_integer((json_int_t)s.queued));
    json_object_set_new(o, "fetching", json_integer((json_int_t)s.fetching));
    json_object_set_new(o, "parked", json_integer((json_int_t)s.parked));
    json_object_set_new(o, "waiting", json_integer((json_int_t)s.waiting));
    return o;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
}

/* Poll a counter until it reaches want; prints the stats either way. */
static void wait_stat(driver *d, const char *name, json_int_t want)
{
    for (int i = 0; i < 1000; i++) {
        json_t *o = stats_json(d);
        json_t *v = json_object_get(o, name);
        bool ok = v != NULL && json_integer_value(v) >= want;

        if (ok || i == 999) {
            json_object_set_new(o, "reached", json_boolean(ok));
            json_dumpf(o, stdout, JSON_COMPACT | JSON_SORT_KEYS);
            putchar('\n');
            json_decref(o);
            return;
        }
        json_decref(o);
        sleep_ms(10);
    }
}

static void wait_idle(driver *d)
{
    for (int i = 0; i < 2000; i++) {
        sts_engine_stats s;

        sts_engine_get_stats(d->engine, &s);
        if (s.inflight == 0 && s.queued == 0)
            break;
        sleep_ms(10);
    }
    wait_stat(d, "lookups", 0);
}

static bool take_word(sts_cur *c, char *out, size_t outsz)
{
    sts_cur w;

    sts_cur_skip_wsp(c);
    if (!sts_cur_take_until(c, ' ', &w)) {
        w = *c;
        c->p += c->len;
        c->len = 0;
    }
    if (w.len == 0 || w.len >= outsz)
        return false;
    memcpy(out, w.p, w.len);
    out[w.len] = '\0';
    return true;
}

static bool take_int(sts_cur *c, uint64_t *v)
{
    sts_cur_skip_wsp(c);
    return sts_cur_take_number(c, 12, 100000000000ULL, v);
}

static bool opt_uint(const char *s, uint64_t *v)
{
    sts_cur c = sts_cur_str(s);

    return sts_cur_take_number(&c, 12, 100000000000ULL, v) && sts_cur_empty(&c);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "config", required_argument, NULL, 'c' },
        { "store", required_argument, NULL, 's' },
        { "negative-ttl", required_argument, NULL, 'n' },
        { "retry", required_argument, NULL, 'r' },
        { "recheck", required_argument, NULL, 'k' },
        { "refresh-idle", required_argument, NULL, 'i' },
        { "max-entries", required_argument, NULL, 'm' },
        { "inflight", required_argument, NULL, 'f' },
        { "queue", required_argument, NULL, 'q' },
        { "waiters", required_argument, NULL, 'w' },
        { "store-max-entries", required_argument, NULL, 'x' },
        { "time", required_argument, NULL, 't' },
        { NULL, 0, NULL, 0 },
    };
    driver d;
    sts_why why = { "" };
    char line[1024];
    uint64_t v;
    int ch;

    memset(&d, 0, sizeof(d));
    main_thread = pthread_self();
    async_recs = calloc(DRIVER_MAX_ASYNC, sizeof(*async_recs));
    if (async_recs == NULL)
        return 70;
    atomic_store(&fake_now, (int64_t)time(NULL)); /* real dates: the store outlives the driver */
    if (sts_config_defaults(&d.cfg) != STS_OK)
        return 70;
    d.opts.clock = fake_clock;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (ch == 'c') {
            if (sts_config_load(optarg, &d.cfg, &why) != STS_OK) {
                fprintf(stderr, "engine_driver: %s\n", why.text);
                return 78;
            }
            continue;
        }
        if (ch == 's') {
            d.store_spec = optarg;
            continue;
        }
        if (ch == '?' || !opt_uint(optarg, &v)) {
            fprintf(stderr, "engine_driver: bad option\n");
            return 64;
        }
        switch (ch) {
        case 'n': d.opts.negative_ttl = (unsigned)v; break;
        case 'r': d.opts.retry_interval = (unsigned)v; break;
        case 'k': d.opts.recheck_interval = (unsigned)v; break;
        case 'i': d.opts.refresh_idle = (unsigned)v; break;
        case 'm': d.opts.max_entries = (size_t)v; break;
        case 'f': d.opts.max_inflight = (unsigned)v; break;
        case 'q': d.opts.queue_limit = (unsigned)v; break;
        case 'w': d.opts.max_waiters = (unsigned)v; break;
        case 'x': d.opts.store_max_entries = v; break;
        case 't': atomic_store(&fake_now, (int64_t)v); break;
        default: return 64;
        }
    }
    if (sts_log_open("engine_driver", NULL, true) != STS_OK || engine_up(&d) != 0)
        return 70;
    setvbuf(stdout, NULL, _IOLBF, 0);
    while (fgets(line, sizeof(line), stdin) != NULL) {
        sts_cur c = sts_cur_str(line);
        char cmd[32], arg[STS_DOMAIN_MAX + 1];
        uint64_t n, t;

        while (c.len > 0 && (c.p[c.len - 1] == '\n' || c.p[c.len - 1] == '\r'))
            c.len--;
        if (!take_word(&c, cmd, sizeof(cmd)))
            continue;
        if ((strcmp(cmd, "lookup") == 0 || strcmp(cmd, "lookup-mx") == 0) &&
            take_word(&c, arg, sizeof(arg)) && take_int(&c, &t)) {
            sts_answer a;
            unsigned flags = strcmp(cmd, "lookup-mx") == 0 ? STS_LOOKUP_NEED_MX : 0;

            if (sts_engine_lookup_flags(d.engine, arg, (int)t, flags, &a) != STS_OK) {
                printf("{\"error\":\"lookup failed\"}\n");
                continue;
            }
            print_answer(arg, &a);
            sts_answer_release(&a);
        } else if ((strcmp(cmd, "burst") == 0 || strcmp(cmd, "bursts") == 0) &&
                   take_word(&c, arg, sizeof(arg)) && take_int(&c, &n) && take_int(&c, &t)) {
            burst(&d, arg, (int)n, (int)t, strcmp(cmd, "bursts") == 0);
        } else if (strcmp(cmd, "flood") == 0 && take_word(&c, arg, sizeof(arg)) &&
                   take_int(&c, &n) && take_int(&c, &t)) {
            flood(&d, arg, (int)n, (int)t);
        } else if ((strcmp(cmd, "async") == 0 || strcmp(cmd, "asyncs") == 0 ||
                    strcmp(cmd, "async-mx") == 0) &&
                   take_word(&c, arg, sizeof(arg)) && take_int(&c, &n) && take_int(&c, &t)) {
            async_start(&d, arg, (int)n, (int)t,
                        strcmp(cmd, "async-mx") == 0 ? STS_LOOKUP_NEED_MX : 0,
                        strcmp(cmd, "asyncs") == 0);
        } else if (strcmp(cmd, "async-wait") == 0) {
            async_wait();
        } else if (strcmp(cmd, "async-cancel") == 0) {
            async_cancel(&d);
        } else if (strcmp(cmd, "advance") == 0 && take_int(&c, &n)) {
            atomic_fetch_add(&fake_now, (int64_t)n);
            printf("{\"now\":%lld}\n", (long long)atomic_load(&fake_now));
        } else if (strcmp(cmd, "time") == 0 && take_int(&c, &n)) {
            atomic_store(&fake_now, (int64_t)n);
            printf("{\"now\":%lld}\n", (long long)atomic_load(&fake_now));
        } else if (strcmp(cmd, "wait-idle") == 0) {
            wait_idle(&d);
        } else if (strcmp(cmd, "wait-stat") == 0 && take_word(&c, arg, sizeof(arg)) &&
                   take_int(&c, &n)) {
            wait_stat(&d, arg, (json_int_t)n);
        } else if (strcmp(cmd, "stats") == 0) {
            wait_stat(&d, "lookups", 0);
        } else if (strcmp(cmd, "purge") == 0 && take_word(&c, arg, sizeof(arg))) {
            sts_status st = sts_engine_purge(d.engine, strcmp(arg, "*") == 0 ? NULL : arg, &why);

            printf("{\"purged\":%s}\n", st == STS_OK ? "true" : "false");
        } else if (strcmp(cmd, "restart") == 0) {
            sts_engine_free(d.engine);
            d.engine = NULL;
            if (engine_up(&d) != 0)
                return 70;
            printf("{\"restarted\":true}\n");
        } else if (strcmp(cmd, "quit") == 0) {
            break;
        } else {
            printf("{\"error\":\"bad command\"}\n");
        }
    }
    sts_engine_free(d.engine);
    sts_config_free(&d.cfg);
    free(async_recs);
    return 0;
}
