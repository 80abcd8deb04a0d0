/*
 * bench_engine.c - figures for the lookup engine (engine.h), run by
 * `make bench` through tests/bench/run-bench.sh, which starts the DNS and
 * HTTPS fixtures (50 ms latency each way) and passes their ports.
 *
 * Measured, not asserted: each subcommand prints readable results and one
 * machine-readable line "BENCH <subcommand> key=value ...", and exits 0
 * whatever the figures are (non-zero only when the benchmark could not
 * run: bad arguments, an engine that would not start).
 *
 *   hits      cache-hit lookups per second and latency percentiles with 1
 *             and N threads, next to two baselines that find the entry and
 *             do nothing else: bsearch over a sorted array, and a plain
 *             lock-free hash table (the real ceiling for a hash cache);
 *   cold      N cold domains at once (callers parked at a barrier, so
 *             thread creation is not measured), against one cold domain
 *             alone and against domains discovered one after another; the
 *             CPU of the engine's loop thread says whether the engine or
 *             the fixtures were the limit;
 *   coalesce  many callers at once for one cold domain (the fixtures'
 *             counters, read by the driver, say how many TXT queries and
 *             fetches that caused);
 *   rss       resident memory per cached policy, next to the same policies
 *             in a plain array (measured in a forked child).
 *
 * Domain names are fixed here and in bench_fixtures.py, which serves them:
 * d<i>.bench.test (cold), single.bench.test, s<i>.bench.test (serial),
 * coalesce.bench.test.  hits and rss never touch the network: their DNS
 * server is 127.0.0.1:9 (discard), should the engine ever ask.
 */
#include "buildconf.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "conf/config.h"
#include "conf/opts.h"
#include "engine/engine.h"
#include "base/log.h"
#include "sts/outcome.h"
#include "sts/policy.h"
#include "base/status.h"

#define HIT_DOMAINS 10000u
#define HIT_REPS 3 /* lookups/s: best of this many runs */
#define HIT_SAMPLES_TOTAL (2u * 1000u * 1000u) /* latency samples kept per run */
#define NAME_LEN 48
#define CALLER_STACK (256u * 1024u)
#define MAX_CALLERS 1000u
#define MAX_THREADS_HITS 64u
#define SEED_ID "bench1"

/* A typical enforce policy (two MX patterns, a week's max_age). */
static const char typical_policy[] = "version: STSv1\r\n"
                                     "mode: enforce\r\n"
                                     "mx: mx1.example.net\r\n"
                                     "mx: *.mx.example.net\r\n"
                                     "max_age: 604800\r\n";

/* ------------------------------------------------------------ helpers */

static void die(const char *fmt, ...) STS_PRINTF(1, 2) __attribute__((noreturn));

static void die(const char *fmt, ...)
{
    va_list ap;

    fputs("bench_engine: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size); /* calloc checks n * size for overflow */

    if (p == NULL)
        die("out of memory (%zu x %zu bytes)", n, size);
    return p;
}

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return (x > y) - (x < y);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return (x > y) - (x < y);
}

/* Value at quantile q (0..1) of n sorted samples. */
static uint32_t pct_u32(const uint32_t *s, size_t n, double q)
{
    if (n == 0)
        return 0;
    return s[(size_t)(q * (double)(n - 1))];
}

static uint64_t pct_u64(const uint64_t *s, size_t n, double q)
{
    if (n == 0)
        return 0;
    return s[(size_t)(q * (double)(n - 1))];
}

/* out = prefix + i + suffix, e.g. "d" 7 ".bench.test". */
static void name_fmt(char out[NAME_LEN], const char *prefix, unsigned i, const char *suffix)
{
    int n = snprintf(out, NAME_LEN, "%s%u%s", prefix, i, suffix);

    if (n < 0 || n >= NAME_LEN)
        die("domain name too long");
}

static void start_threads(pthread_t *tids, size_t n, void *(*fn)(void *), void *args,
                          size_t argsize)
{
    pthread_attr_t attr;

    if (pthread_attr_init(&attr) != 0 || pthread_attr_setstacksize(&attr, CALLER_STACK) != 0)
        die("pthread_attr");
    for (size_t i = 0; i < n; i++) {
        int err = pthread_create(&tids[i], &attr, fn, (char *)args + i * argsize);

        if (err != 0)
            die("pthread_create (thread %zu of %zu): %s", i + 1, n, strerror(err));
    }
    pthread_attr_destroy(&attr);
}

static void join_threads(pthread_t *tids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        pthread_join(tids[i], NULL);
}

/* ------------------------------------------------------------ arguments */

typedef struct args {
    const char *dns;     /* --dns 127.0.0.1:P */
    unsigned https_port; /* --https-port Q */
    const char *ca;      /* --ca FILE */
    unsigned domains;    /* cold: --domains N */
    unsigned serial;     /* cold: --serial N (baseline) */
    unsigned callers;    /* cold: caller threads, at most MAX_CALLERS */
    unsigned requests;   /* coalesce: --requests N */
    unsigned policies;   /* rss: --policies N */
    unsigned threads;    /* hits: --threads N */
    unsigned seconds;    /* hits: --seconds S per run */
    unsigned timeout_ms; /* --timeout-ms T per lookup */
    unsigned max_inflight; /* --max-inflight: engine override, 0 = engine default */
    bool verbose;        /* --verbose: engine logs at info level */
} args;

static unsigned parse_uint(const char *opt, const char *s, unsigned min, unsigned max)
{
    char *end = NULL;
    unsigned long v;

    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < min || v > max)
        die("%s: want a number from %u to %u, got \"%s\"", opt, min, max, s);
    return (unsigned)v;
}

static void usage(void) __attribute__((noreturn));

static void usage(void)
{
    fputs("usage: bench_engine hits [--threads N] [--seconds S]\n"
          "       bench_engine cold --dns HOST:PORT --https-port Q --ca FILE --domains N\n"
          "                         [--serial N (0: none)] [--callers N] [--timeout-ms T]\n"
          "       bench_engine coalesce --dns HOST:PORT --https-port Q --ca FILE\n"
          "                         [--requests N] [--timeout-ms T]\n"
          "       bench_engine rss [--policies N]\n"
          "common: [--max-inflight N] [--verbose]\n",
          stderr);
    exit(64);
}

static void parse_args(int argc, char **argv, args *a)
{
    memset(a, 0, sizeof(*a));
    a->domains = 1000;
    a->serial = 20;
    a->callers = MAX_CALLERS;
    a->requests = 500;
    a->policies = 100000;
    a->seconds = 1;
    a->timeout_ms = 30000;
    for (int i = 2; i < argc; i++) {
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(o, "--verbose") == 0) {
            a->verbose = true;
            continue;
        }
        if (v == NULL)
            usage();
        i++;
        if (strcmp(o, "--dns") == 0)
            a->dns = v;
        else if (strcmp(o, "--https-port") == 0)
            a->https_port = parse_uint(o, v, 1, 65535);
        else if (strcmp(o, "--ca") == 0)
            a->ca = v;
        else if (strcmp(o, "--domains") == 0)
            a->domains = parse_uint(o, v, 1, 100000);
        else if (strcmp(o, "--serial") == 0)
            a->serial = parse_uint(o, v, 0, 1000);
        else if (strcmp(o, "--callers") == 0)
            a->callers = parse_uint(o, v, 1, MAX_CALLERS);
        else if (strcmp(o, "--requests") == 0)
            a->requests = parse_uint(o, v, 1, MAX_CALLERS);
        else if (strcmp(o, "--policies") == 0)
            a->policies = parse_uint(o, v, 1, 10000000);
        else if (strcmp(o, "--threads") == 0)
            a->threads = parse_uint(o, v, 1, MAX_THREADS_HITS);
        else if (strcmp(o, "--seconds") == 0)
            a->seconds = parse_uint(o, v, 1, 60);
        else if (strcmp(o, "--timeout-ms") == 0)
            a->timeout_ms = parse_uint(o, v, 0, 600000);
        else if (strcmp(o, "--max-inflight") == 0)
            a->max_inflight = parse_uint(o, v, 1, 100000);
        else
            usage();
    }
}

/* ------------------------------------------------------------ engine set-up */

static void cfg_set(sts_config *cfg, const char *key, const char *value)
{
    sts_why why = { { 0 } };

    if (sts_config_set(cfg, key, value, &why) != STS_OK)
        die("config %s %s: %s", key, value, why.text);
}

/* Embedded defaults, pointed at the fixtures (or at the discard port of
 * loopback when there are none, so nothing ever leaves the machine). */
static void make_config(sts_config *cfg, const args *a)
{
    char port[16];

    if (sts_config_defaults(cfg) != STS_OK)
        die("out of memory");
    cfg_set(cfg, "DNSServers", a->dns != NULL ? a->dns : "127.0.0.1:9");
    if (a->ca != NULL)
        cfg_set(cfg, "CAFile", a->ca);
    snprintf(port, sizeof(port), "%u", a->https_port != 0 ? a->https_port : 9u);
    cfg_set(cfg, "PolicyPort", port);
    cfg_set(cfg, "AllowInternalAddresses", "yes"); /* the fixtures are on loopback */
    cfg_set(cfg, "DNSTimeout", "2s");
    cfg_set(cfg, "DNSTries", "2");
    cfg_set(cfg, "HTTPSConnectTimeout", "10s");
    cfg_set(cfg, "HTTPSTimeout", "20s");
}

static sts_engine *make_engine(const sts_config *cfg, const args *a, size_t min_entries,
                               sts_engine_opts *o)
{
    sts_engine *e = NULL;
    sts_why why = { { 0 } };
    size_t entries;

    sts_opts_engine(cfg, o);
    if (a->max_inflight != 0)
        o->max_inflight = a->max_inflight;
    entries = o->max_entries != 0 ? o->max_entries : 100000;
    if (entries < min_entries)
        o->max_entries = min_entries;
    if (sts_engine_new(o, NULL, &e, &why) != STS_OK)
        die("sts_engine_new: %s", why.text);
    /* 0 means the engine's default (engine.h). */
    printf("engine: max_inflight %u, max_fetches %u, queue_limit %u, max_entries %zu, "
           "store none\n",
           o->max_inflight != 0 ? o->max_inflight : 1024u, o->discover.max_fetches,
           o->queue_limit != 0 ? o->queue_limit : 10000u,
           o->max_entries != 0 ? o->max_entries : (size_t)100000);
    return e;
}

static void start_engine(sts_engine *e)
{
    sts_why why = { { 0 } };

    if (sts_engine_start(e, &why) != STS_OK)
        die("sts_engine_start: %s", why.text);
}

static void print_stats(const char *when, sts_engine *e)
{
    sts_engine_stats st;

    sts_engine_get_stats(e, &st);
    printf("engine stats %s: lookups %" PRIu64 " hits %" PRIu64 " misses %" PRIu64
           " joined %" PRIu64 " pending %" PRIu64 " overloaded %" PRIu64
           " discoveries %" PRIu64 " txt_rechecks %" PRIu64 " refreshes %" PRIu64
           " store_errors %" PRIu64 " entries %zu inflight %zu queued %zu\n",
           when, st.lookups, st.hits, st.misses, st.joined, st.pending, st.overloaded,
           st.discoveries, st.txt_rechecks, st.refreshes, st.store_errors, st.entries,
           st.inflight, st.queued);
}

static sts_policy *parse_policy(const char *text)
{
    sts_policy *p = NULL;
    sts_why why = { { 0 } };

    if (sts_policy_parse(text, strlen(text), &p, &why) != STS_OK)
        die("policy does not parse: %s", why.text);
    return p;
}

/* How the answers of a run came out. */
typedef struct tally {
    unsigned policy, none, temperror, invalid, pending, from_cache, failed;
} tally;

typedef enum ans_kind {
    ANS_POLICY,
    ANS_NONE,
    ANS_TEMPERROR,
    ANS_INVALID,
    ANS_PENDING,
    ANS_FAILED,
} ans_kind;

typedef struct lookup_res {
    ans_kind kind;
    bool from_cache;
    char error[96];
} lookup_res;

static void lookup_once(sts_engine *e, const char *domain, int timeout_ms, lookup_res *r)
{
    sts_answer a;
    sts_status st = sts_engine_lookup(e, domain, timeout_ms, &a);

    r->from_cache = false;
    r->error[0] = '\0';
    if (st != STS_OK) {
        r->kind = ANS_FAILED;
        snprintf(r->error, sizeof(r->error), "lookup returned %s", sts_status_name(st));
        return;
    }
    r->from_cache = a.from_cache;
    if (a.pending)
        r->kind = ANS_PENDING;
    else if (a.result == STS_RESULT_POLICY)
        r->kind = a.policy != NULL ? ANS_POLICY : ANS_FAILED;
    else if (a.result == STS_RESULT_NONE)
        r->kind = ANS_NONE;
    else if (a.result == STS_RESULT_INVALID)
        r->kind = ANS_INVALID;
    else
        r->kind = ANS_TEMPERROR;
    if (r->kind == ANS_FAILED && a.error[0] == '\0')
        snprintf(r->error, sizeof(r->error), "result policy without a policy");
    else
        snprintf(r->error, sizeof(r->error), "%.95s", a.error);
    sts_answer_release(&a);
}

static void tally_add(tally *t, const lookup_res *r)
{
    switch (r->kind) {
    case ANS_POLICY: t->policy++; break;
    case ANS_NONE: t->none++; break;
    case ANS_TEMPERROR: t->temperror++; break;
    case ANS_INVALID: t->invalid++; break;
    case ANS_PENDING: t->pending++; break;
    case ANS_FAILED: t->failed++; break;
    }
    if (r->from_cache)
        t->from_cache++;
}

static const char *kind_name(ans_kind k)
{
    static const char *const names[] = { "policy", "none", "temperror", "invalid", "pending",
                                         "failed" };

    return names[k];
}

static void print_tally(const tally *t)
{
    printf("policy %u, pending %u, temperror %u, none %u, invalid %u, failed %u "
           "(from cache %u)",
           t->policy, t->pending, t->temperror, t->none, t->invalid, t->failed, t->from_cache);
}

/* ------------------------------------------------------------ hits */

typedef struct hit_entry {
    const char *name;
    const sts_policy *policy;
} hit_entry;

/* The baselines: the same names in a sorted array (bsearch, as asked for)
 * and in a plain open-addressing hash table (what a lock-free, copy-free
 * hash lookup costs: the real ceiling for a hash-based cache). */
#define HASH_SLOTS 16384u /* power of two, load 0.61 */

typedef enum hit_mode { HIT_ENGINE, HIT_BSEARCH, HIT_HASH } hit_mode;

typedef struct hit_run {
    hit_mode mode;
    sts_engine *e;
    const hit_entry *table;          /* sorted by name */
    const hit_entry *const *slots;   /* HASH_SLOTS, NULL = empty */
    size_t n;
    char (*names)[NAME_LEN];
    bool timed;                      /* clock_gettime around every call */
    uint64_t duration_ns;
    pthread_barrier_t bar;
} hit_run;

typedef struct hit_thread {
    hit_run *run;
    unsigned idx;
    uint64_t ops, misses, sink, start, end;
    uint32_t *samples;
    size_t cap, nsamples;
} hit_thread;

static int cmp_hit(const void *key, const void *el)
{
    return strcmp(key, ((const hit_entry *)el)->name);
}

static int cmp_hit_sort(const void *a, const void *b)
{
    return strcmp(((const hit_entry *)a)->name, ((const hit_entry *)b)->name);
}

static uint32_t fnv1a(const char *s)
{
    uint32_t h = 2166136261u;

    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
    return h;
}

static const hit_entry *hash_find(const hit_entry *const *slots, const char *name)
{
    for (uint32_t i = fnv1a(name) & (HASH_SLOTS - 1);; i = (i + 1) & (HASH_SLOTS - 1)) {
        if (slots[i] == NULL)
            return NULL;
        if (strcmp(slots[i]->name, name) == 0)
            return slots[i];
    }
}

static void hash_insert(const hit_entry **slots, const hit_entry *h)
{
    uint32_t i = fnv1a(h->name) & (HASH_SLOTS - 1);

    while (slots[i] != NULL)
        i = (i + 1) & (HASH_SLOTS - 1);
    slots[i] = h;
}

/* One lookup; true if it was the expected cache hit. */
static inline bool hit_one(hit_run *run, const char *name, uint64_t *sink)
{
    const hit_entry *h;

    switch (run->mode) {
    case HIT_ENGINE: {
        sts_answer a;
        bool ok;

        if (sts_engine_lookup(run->e, name, 0, &a) != STS_OK)
            return false;
        ok = a.result == STS_RESULT_POLICY && a.from_cache && a.policy != NULL;
        if (ok)
            *sink += a.policy->max_age;
        sts_answer_release(&a);
        return ok;
    }
    case HIT_BSEARCH:
        h = bsearch(name, run->table, run->n, sizeof(*h), cmp_hit);
        break;
    case HIT_HASH:
    default:
        h = hash_find(run->slots, name);
        break;
    }
    if (h == NULL)
        return false;
    *sink += h->policy->max_age;
    return true;
}

static void *hit_main(void *arg)
{
    hit_thread *t = arg;
    hit_run *run = t->run;
    uint64_t rnd = 0x9e3779b97f4a7c15ull ^ ((uint64_t)t->idx * 0x2545f4914f6cdd1dull);
    uint64_t deadline, ops = 0, misses = 0, sink = 0;

    pthread_barrier_wait(&run->bar);
    t->start = now_ns();
    deadline = t->start + run->duration_ns;
    if (!run->timed) {
        for (;;) {
            for (unsigned k = 0; k < 256; k++)
                misses += !hit_one(run, run->names[xorshift(&rnd) % run->n], &sink);
            ops += 256;
            if (now_ns() >= deadline)
                break;
        }
    } else {
        for (;;) {
            const char *name = run->names[xorshift(&rnd) % run->n];
            uint64_t t1 = now_ns(), t2, lat;

            misses += !hit_one(run, name, &sink);
            t2 = now_ns();
            lat = t2 - t1;
            if (lat > UINT32_MAX)
                lat = UINT32_MAX;
            /* Reservoir sampling: every call has the same chance to be kept. */
            if (t->nsamples < t->cap) {
                t->samples[t->nsamples++] = (uint32_t)lat;
            } else {
                uint64_t j = xorshift(&rnd) % (ops + 1);

                if (j < t->cap)
                    t->samples[j] = (uint32_t)lat;
            }
            ops++;
            if (t2 >= deadline)
                break;
        }
    }
    t->end = now_ns();
    t->ops = ops;
    t->misses = misses;
    t->sink = sink;
    return NULL;
}

typedef struct hit_result {
    double ops_per_s;
    uint64_t misses;
    uint32_t p50, p99, p999, max;
} hit_result;

static void hit_measure(hit_run *run, unsigned nthreads, bool timed, hit_result *res)
{
    pthread_t tids[MAX_THREADS_HITS];
    hit_thread th[MAX_THREADS_HITS];
    uint64_t ops = 0, start = UINT64_MAX, end = 0;
    size_t cap = HIT_SAMPLES_TOTAL / nthreads, total = 0;
    uint32_t *all = NULL;

    memset(th, 0, sizeof(th));
    run->timed = timed;
    if (pthread_barrier_init(&run->bar, NULL, nthreads + 1) != 0)
        die("pthread_barrier_init");
    for (unsigned i = 0; i < nthreads; i++) {
        th[i].run = run;
        th[i].idx = i + 1;
        if (timed) {
            /* Preallocated and touched now: no page faults while timing. */
            th[i].samples = xcalloc(cap, sizeof(uint32_t));
            memset(th[i].samples, 0xff, cap * sizeof(uint32_t));
            th[i].cap = cap;
        }
    }
    start_threads(tids, nthreads, hit_main, th, sizeof(th[0]));
    pthread_barrier_wait(&run->bar);
    join_threads(tids, nthreads);
    pthread_barrier_destroy(&run->bar);

    memset(res, 0, sizeof(*res));
    for (unsigned i = 0; i < nthreads; i++) {
        ops += th[i].ops;
        res->misses += th[i].misses;
        if (th[i].start < start)
            start = th[i].start;
        if (th[i].end > end)
            end = th[i].end;
        total += th[i].nsamples;
    }
    res->ops_per_s = end > start ? (double)ops * 1e9 / (double)(end - start) : 0.0;
    if (!timed)
        return;
    all = xcalloc(total ? total : 1, sizeof(uint32_t));
    total = 0;
    for (unsigned i = 0; i < nthreads; i++) {
        memcpy(all + total, th[i].samples, th[i].nsamples * sizeof(uint32_t));
        total += th[i].nsamples;
        free(th[i].samples);
    }
    qsort(all, total, sizeof(uint32_t), cmp_u32);
    res->p50 = pct_u32(all, total, 0.50);
    res->p99 = pct_u32(all, total, 0.99);
    res->p999 = pct_u32(all, total, 0.999);
    res->max = total ? all[total - 1] : 0;
    free(all);
}

/* Cost of the two clock_gettime calls around each timed lookup. */
static uint64_t timer_overhead_ns(void)
{
    uint64_t s[1001];

    for (unsigned i = 0; i < 1001; i++) {
        uint64_t t1 = now_ns();

        s[i] = now_ns() - t1;
    }
    qsort(s, 1001, sizeof(s[0]), cmp_u64);
    return s[500];
}

static void pct3(char *out, size_t outsz, const hit_result *r)
{
    snprintf(out, outsz, "%" PRIu32 "/%" PRIu32 "/%" PRIu32, r->p50, r->p99, r->p999);
}

static size_t bench_add(char *buf, size_t bl, size_t bufsz, const char *fmt, ...)
    STS_PRINTF(4, 5);

/* Append to the BENCH line; returns the new length (never past bufsz - 1). */
static size_t bench_add(char *buf, size_t bl, size_t bufsz, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (bl >= bufsz - 1)
        return bl;
    va_start(ap, fmt);
    n = vsnprintf(buf + bl, bufsz - bl, fmt, ap);
    va_end(ap);
    if (n < 0)
        return bl;
    return bl + (size_t)n < bufsz - 1 ? bl + (size_t)n : bufsz - 1;
}

static int cmd_hits(const args *a)
{
    sts_config cfg;
    sts_engine_opts o;
    sts_engine *e;
    sts_policy *pol;
    char (*names)[NAME_LEN];
    hit_entry *table;
    const hit_entry **slots;
    unsigned counts[3];
    unsigned ncounts = 0;
    int64_t now = (int64_t)time(NULL);
    uint64_t t0, total_misses = 0;
    char bench[4096];
    size_t bl = 0;

    if (a->threads != 0) {
        counts[ncounts++] = 1;
        if (a->threads != 1)
            counts[ncounts++] = a->threads;
    } else {
        counts[0] = 1;
        counts[1] = 2;
        counts[2] = 8;
        ncounts = 3;
    }
    make_config(&cfg, a);
    e = make_engine(&cfg, a, HIT_DOMAINS, &o);
    pol = parse_policy(typical_policy);

    names = xcalloc(HIT_DOMAINS, NAME_LEN);
    table = xcalloc(HIT_DOMAINS, sizeof(*table));
    slots = xcalloc(HASH_SLOTS, sizeof(*slots));
    t0 = now_ns();
    for (unsigned i = 0; i < HIT_DOMAINS; i++) {
        name_fmt(names[i], "h", i, ".hits.bench.test");
        if (sts_engine_seed(e, names[i], SEED_ID, pol, now) != STS_OK)
            die("sts_engine_seed %s failed", names[i]);
        table[i].name = names[i];
        table[i].policy = pol;
    }
    printf("seeded %u policies in %.1f ms\n", HIT_DOMAINS, ms(now_ns() - t0));
    qsort(table, HIT_DOMAINS, sizeof(*table), cmp_hit_sort);
    for (unsigned i = 0; i < HIT_DOMAINS; i++)
        hash_insert(slots, &table[i]);
    start_engine(e);

    printf("\ncache hits: sts_engine_lookup(timeout 0) on %u seeded domains, random order, "
           "%u s per run\n",
           HIT_DOMAINS, a->seconds);
    printf("baselines: bsearch in a static sorted array of the same names, and a plain\n"
           "open-addressing hash table (FNV-1a, no lock, no copy): find, nothing else\n");
    printf("latencies include two clock_gettime calls (~%" PRIu64 " ns together)\n\n",
           timer_overhead_ns());
    printf("%-7s %12s %12s %12s %7s %7s   %-19s %-19s %-19s\n", "threads", "engine/s",
           "bsearch/s", "hash/s", "e/bs", "e/hash", "engine p50/99/99.9", "bsearch p50/99/99.9",
           "hash p50/99/99.9");
    bl = bench_add(bench, bl, sizeof(bench), "BENCH hits domains=%u seconds=%u", HIT_DOMAINS,
                   a->seconds);
    for (unsigned c = 0; c < ncounts; c++) {
        hit_run run;
        hit_result r[3], rt[3]; /* by hit_mode: untimed (per second), timed (latency) */
        char l[3][40];
        unsigned t = counts[c];

        memset(&run, 0, sizeof(run));
        run.e = e;
        run.n = HIT_DOMAINS;
        run.names = names;
        run.table = table;
        run.slots = slots;
        /* Lookups per second: the best of HIT_REPS short runs, the three
         * kinds interleaved, so that a neighbour stealing a core for a
         * moment (shared machines, CI) hurts one run, not one kind. */
        memset(r, 0, sizeof(r));
        run.duration_ns = (uint64_t)a->seconds * 1000000000u / HIT_REPS;
        for (unsigned rep = 0; rep < HIT_REPS; rep++) {
            for (int m = HIT_ENGINE; m <= HIT_HASH; m++) {
                hit_result one;

                run.mode = (hit_mode)m;
                hit_measure(&run, t, false, &one);
                total_misses += one.misses;
                if (m == HIT_ENGINE)
                    r[m].misses += one.misses;
                if (one.ops_per_s > r[m].ops_per_s)
                    r[m].ops_per_s = one.ops_per_s;
            }
        }
        run.duration_ns = (uint64_t)a->seconds * 1000000000u;
        for (int m = HIT_ENGINE; m <= HIT_HASH; m++) {
            run.mode = (hit_mode)m;
            hit_measure(&run, t, true, &rt[m]);
            total_misses += rt[m].misses;
            if (m == HIT_ENGINE)
                r[m].misses += rt[m].misses;
            pct3(l[m], sizeof(l[m]), &rt[m]);
        }
        printf("%-7u %12.0f %12.0f %12.0f %7.3f %7.3f   %-19s %-19s %-19s\n", t,
               r[HIT_ENGINE].ops_per_s, r[HIT_BSEARCH].ops_per_s, r[HIT_HASH].ops_per_s,
               r[HIT_ENGINE].ops_per_s / r[HIT_BSEARCH].ops_per_s,
               r[HIT_ENGINE].ops_per_s / r[HIT_HASH].ops_per_s, l[0], l[1], l[2]);
        if (r[HIT_ENGINE].misses != 0)
            printf("  !! %" PRIu64 " engine lookups were not cache hits with a policy\n",
                   r[HIT_ENGINE].misses);
        bl = bench_add(bench, bl, sizeof(bench),
                       " t%u_engine_ops=%.0f t%u_bsearch_ops=%.0f t%u_hash_ops=%.0f"
                       " t%u_ratio_bsearch=%.4f t%u_ratio_hash=%.4f"
                       " t%u_p50_ns=%" PRIu32 " t%u_p99_ns=%" PRIu32 " t%u_p999_ns=%" PRIu32
                       " t%u_max_ns=%" PRIu32,
                       t, r[HIT_ENGINE].ops_per_s, t, r[HIT_BSEARCH].ops_per_s, t,
                       r[HIT_HASH].ops_per_s, t,
                       r[HIT_ENGINE].ops_per_s / r[HIT_BSEARCH].ops_per_s, t,
                       r[HIT_ENGINE].ops_per_s / r[HIT_HASH].ops_per_s, t, rt[HIT_ENGINE].p50,
                       t, rt[HIT_ENGINE].p99, t, rt[HIT_ENGINE].p999, t, rt[HIT_ENGINE].max);
        bl = bench_add(bench, bl, sizeof(bench),
                       " t%u_bsearch_p50_ns=%" PRIu32 " t%u_bsearch_p99_ns=%" PRIu32
                       " t%u_bsearch_p999_ns=%" PRIu32 " t%u_hash_p50_ns=%" PRIu32
                       " t%u_hash_p99_ns=%" PRIu32 " t%u_hash_p999_ns=%" PRIu32,
                       t, rt[HIT_BSEARCH].p50, t, rt[HIT_BSEARCH].p99, t, rt[HIT_BSEARCH].p999,
                       t, rt[HIT_HASH].p50, t, rt[HIT_HASH].p99, t, rt[HIT_HASH].p999);
    }
    printf("(e/bs, e/hash: engine lookups per second over the baseline's; per second: best of\n"
           " %u runs of %.2f s without per-call timing; percentiles (ns): one timed %u s run)\n",
           HIT_REPS, (double)a->seconds / HIT_REPS, a->seconds);
    print_stats("after hits", e);
    bl = bench_add(bench, bl, sizeof(bench), " misses=%" PRIu64, total_misses);
    printf("%s\n", bench);
    fflush(stdout);

    sts_engine_free(e);
    sts_policy_free(pol);
    free(slots);
    free(table);
    free(names);
    sts_config_free(&cfg);
    return 0;
}

/* ------------------------------------------------------------ cold and coalesce */

/* CPU time of this process's threads, from /proc/self/task/TID/stat
 * (utime + stime, in clock ticks).  The engine's loop thread is the one
 * that exists before and after a run and used the most CPU during it:
 * the callers only wait. */
#define MAX_TASKS 64

typedef struct task_cpu {
    long tid;
    unsigned long long ticks;
} task_cpu;

static size_t tasks_cpu(task_cpu *out, size_t max)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *de;
    size_t n = 0;

    if (d == NULL)
        return 0;
    while (n < max && (de = readdir(d)) != NULL) {
        char path[300], buf[1024], *p, *end;
        unsigned long long f[2] = { 0, 0 };
        size_t len;
        long tid;
        FILE *fp;

        errno = 0;
        tid = strtol(de->d_name, &end, 10);
        if (end == de->d_name || *end != '\0' || errno != 0)
            continue;
        snprintf(path, sizeof(path), "/proc/self/task/%s/stat", de->d_name);
        fp = fopen(path, "r");
        if (fp == NULL)
            continue;
        len = fread(buf, 1, sizeof(buf) - 1, fp);
        fclose(fp);
        buf[len] = '\0';
        /* "tid (comm) state ppid ...": utime and stime are fields 14 and
         * 15, the 12th and 13th after the closing parenthesis. */
        p = strrchr(buf, ')');
        if (p == NULL)
            continue;
        p++;
        for (int field = 3; field <= 15 && *p != '\0'; field++) {
            while (*p == ' ')
                p++;
            if (field >= 14) {
                f[field - 14] = strtoull(p, &end, 10);
                if (end == p)
                    break;
                p = end;
            } else {
                while (*p != ' ' && *p != '\0')
                    p++;
            }
        }
        out[n].tid = tid;
        out[n].ticks = f[0] + f[1];
        n++;
    }
    closedir(d);
    return n;
}

/* CPU ns used between two snapshots by the busiest thread present in both. */
static uint64_t busiest_thread_ns(const task_cpu *a, size_t na, const task_cpu *b, size_t nb)
{
    unsigned long long best = 0;
    long hz = sysconf(_SC_CLK_TCK);

    for (size_t j = 0; j < nb; j++)
        for (size_t i = 0; i < na; i++)
            if (a[i].tid == b[j].tid && b[j].ticks - a[i].ticks > best)
                best = b[j].ticks - a[i].ticks;
    return hz > 0 ? (uint64_t)(best * 1000000000ull / (unsigned long long)hz) : 0;
}

/* Callers parked at a barrier, released together; each takes the next
 * name and waits on its own lookup.  With as many callers as names every
 * lookup is in flight at once and thread creation is not measured. */
typedef struct call_run {
    sts_engine *e;
    char (*names)[NAME_LEN];
    size_t n;
    int timeout_ms;
    atomic_size_t next;
    pthread_barrier_t bar;
    uint64_t *start, *end;
    lookup_res *res;
} call_run;

static void *call_main(void *arg)
{
    call_run *run = *(call_run **)arg;

    pthread_barrier_wait(&run->bar);
    for (;;) {
        size_t i = atomic_fetch_add(&run->next, 1);

        if (i >= run->n)
            break;
        run->start[i] = now_ns();
        lookup_once(run->e, run->names[i], run->timeout_ms, &run->res[i]);
        run->end[i] = now_ns();
    }
    return NULL;
}

typedef struct call_out {
    uint64_t total_ns; /* first lookup started .. last one answered */
    uint64_t loop_cpu_ns; /* CPU of the engine's loop thread meanwhile */
    uint64_t p50_ns, p99_ns, max_ns;
    tally t;
} call_out;

static void print_failures(char (*names)[NAME_LEN], const lookup_res *res, size_t n)
{
    unsigned shown = 0;

    for (size_t i = 0; i < n && shown < 3; i++) {
        if (res[i].kind == ANS_POLICY)
            continue;
        printf("  e.g. %s: %s%s%s\n", names[i], kind_name(res[i].kind),
               res[i].error[0] ? ": " : "", res[i].error);
        shown++;
    }
}

static void call_concurrent(sts_engine *e, char (*names)[NAME_LEN], size_t n, unsigned callers,
                            int timeout_ms, call_out *out)
{
    call_run run;
    call_run **argv;
    pthread_t *tids;
    uint64_t *lat, first = UINT64_MAX, last = 0;
    task_cpu before[MAX_TASKS], after[MAX_TASKS];
    size_t nbefore, nafter;

    if (callers > n)
        callers = (unsigned)n;
    memset(&run, 0, sizeof(run));
    memset(out, 0, sizeof(*out));
    run.e = e;
    run.names = names;
    run.n = n;
    run.timeout_ms = timeout_ms;
    atomic_init(&run.next, 0);
    run.start = xcalloc(n, sizeof(uint64_t));
    run.end = xcalloc(n, sizeof(uint64_t));
    run.res = xcalloc(n, sizeof(lookup_res));
    lat = xcalloc(n, sizeof(uint64_t));
    tids = xcalloc(callers, sizeof(pthread_t));
    argv = xcalloc(callers, sizeof(call_run *));
    for (unsigned i = 0; i < callers; i++)
        argv[i] = &run;
    if (pthread_barrier_init(&run.bar, NULL, callers + 1) != 0)
        die("pthread_barrier_init");
    nbefore = tasks_cpu(before, MAX_TASKS);
    start_threads(tids, callers, call_main, argv, sizeof(argv[0]));
    pthread_barrier_wait(&run.bar);
    join_threads(tids, callers);
    nafter = tasks_cpu(after, MAX_TASKS);
    out->loop_cpu_ns = busiest_thread_ns(before, nbefore, after, nafter);
    pthread_barrier_destroy(&run.bar);

    for (size_t i = 0; i < n; i++) {
        if (run.start[i] < first)
            first = run.start[i];
        if (run.end[i] > last)
            last = run.end[i];
        lat[i] = run.end[i] - run.start[i];
        tally_add(&out->t, &run.res[i]);
    }
    qsort(lat, n, sizeof(uint64_t), cmp_u64);
    out->total_ns = last - first;
    out->p50_ns = pct_u64(lat, n, 0.50);
    out->p99_ns = pct_u64(lat, n, 0.99);
    out->max_ns = lat[n - 1];
    print_failures(names, run.res, n);

    free(argv);
    free(tids);
    free(lat);
    free(run.res);
    free(run.end);
    free(run.start);
}

static void need_fixtures(const args *a, const char *cmd)
{
    if (a->dns == NULL || a->https_port == 0 || a->ca == NULL) {
        fprintf(stderr, "bench_engine %s: --dns, --https-port and --ca are required\n", cmd);
        usage();
    }
}

static int cmd_cold(const args *a)
{
    sts_config cfg;
    sts_engine_opts o;
    sts_engine *e;
    char (*names)[NAME_LEN];
    char (*snames)[NAME_LEN];
    char single[NAME_LEN] = "single.bench.test";
    lookup_res r;
    call_out c;
    tally st = { 0 };
    uint64_t t0, single_ns, serial_ns;
    unsigned inflight, callers = a->callers < a->domains ? a->callers : a->domains;
    double ratio, serial_each, extrap, waves;
    char bench[1024];
    size_t bl = 0;

    need_fixtures(a, "cold");
    make_config(&cfg, a);
    e = make_engine(&cfg, a, 0, &o);
    inflight = o.max_inflight != 0 ? o.max_inflight : 1024u;
    start_engine(e);
    names = xcalloc(a->domains, NAME_LEN);
    for (unsigned i = 0; i < a->domains; i++)
        name_fmt(names[i], "d", i, ".bench.test");
    snames = xcalloc(a->serial ? a->serial : 1, NAME_LEN);
    for (unsigned i = 0; i < a->serial; i++)
        name_fmt(snames[i], "s", i, ".bench.test");

    printf("\ncold discovery (fixtures answer each DNS query and each HTTPS request after "
           "their latency)\n");
    t0 = now_ns();
    lookup_once(e, single, (int)a->timeout_ms, &r);
    single_ns = now_ns() - t0;
    printf("one cold domain alone:     %9.1f ms  (%s%s%s)\n", ms(single_ns), kind_name(r.kind),
           r.error[0] ? ": " : "", r.error);

    call_concurrent(e, names, a->domains, callers, (int)a->timeout_ms, &c);
    ratio = single_ns ? (double)c.total_ns / (double)single_ns : 0.0;
    waves = (double)((a->domains + inflight - 1) / inflight);
    printf("%u cold domains at once: %9.1f ms  (%u caller threads released together)\n",
           a->domains, ms(c.total_ns), callers);
    printf("  answers: ");
    print_tally(&c.t);
    printf("\n  per-lookup latency p50 %.1f ms, p99 %.1f ms, max %.1f ms\n", ms(c.p50_ns),
           ms(c.p99_ns), ms(c.max_ns));
    printf("  total/single: %.2f  (ideal ~1; a serial engine ~%u; max_inflight %u alone "
           "allows no better than ~%.0f)\n",
           ratio, a->domains, inflight, waves);
    printf("  engine loop thread CPU: %.0f ms in %.0f ms (%.0f%% busy; %.2f ms per discovery)\n",
           ms(c.loop_cpu_ns), ms(c.total_ns),
           c.total_ns ? 100.0 * (double)c.loop_cpu_ns / (double)c.total_ns : 0.0,
           ms(c.loop_cpu_ns) / a->domains);
    print_stats("after the concurrent run", e);
    bl = bench_add(bench, bl, sizeof(bench),
                   "BENCH cold domains=%u callers=%u max_inflight=%u single_ms=%.1f "
                   "total_ms=%.1f ratio=%.2f p50_ms=%.1f p99_ms=%.1f max_ms=%.1f policy=%u "
                   "pending=%u other=%u loop_cpu_ms=%.0f loop_busy_pct=%.0f",
                   a->domains, callers, inflight, ms(single_ns), ms(c.total_ns), ratio,
                   ms(c.p50_ns), ms(c.p99_ns), ms(c.max_ns), c.t.policy, c.t.pending,
                   c.t.none + c.t.temperror + c.t.invalid + c.t.failed, ms(c.loop_cpu_ns),
                   c.total_ns ? 100.0 * (double)c.loop_cpu_ns / (double)c.total_ns : 0.0);

    if (a->serial > 0) {
        t0 = now_ns();
        for (unsigned i = 0; i < a->serial; i++) {
            lookup_once(e, snames[i], (int)a->timeout_ms, &r);
            tally_add(&st, &r);
        }
        serial_ns = now_ns() - t0;
        serial_each = ms(serial_ns) / a->serial;
        extrap = serial_each * a->domains;
        printf("\nbaseline, one after another: %u domains in %.1f ms = %.1f ms each; "
               "extrapolated to %u: %.1f ms\n",
               a->serial, ms(serial_ns), serial_each, a->domains, extrap);
        printf("  answers: ");
        print_tally(&st);
        printf("\n  concurrent vs serial (extrapolated): %.1f ms vs %.1f ms = %.1fx faster\n",
               ms(c.total_ns), extrap, c.total_ns ? extrap / ms(c.total_ns) : 0.0);
        print_stats("at the end", e);
        bl = bench_add(bench, bl, sizeof(bench),
                       " serial_n=%u serial_ms=%.1f serial_each_ms=%.1f"
                       " serial_extrapolated_ms=%.1f speedup=%.1f serial_policy=%u",
                       a->serial, ms(serial_ns), serial_each, extrap,
                       c.total_ns ? extrap / ms(c.total_ns) : 0.0, st.policy);
    }
    printf("%s\n", bench);
    fflush(stdout);

    sts_engine_free(e);
    free(snames);
    free(names);
    sts_config_free(&cfg);
    return 0;
}

static int cmd_coalesce(const args *a)
{
    static const char domain[] = "coalesce.bench.test";
    sts_config cfg;
    sts_engine_opts o;
    sts_engine *e;
    sts_engine_stats before, after;
    char (*names)[NAME_LEN];
    call_out c;
    uint64_t disc, joined;

    need_fixtures(a, "coalesce");
    make_config(&cfg, a);
    e = make_engine(&cfg, a, 0, &o);
    start_engine(e);
    names = xcalloc(a->requests, NAME_LEN);
    for (unsigned i = 0; i < a->requests; i++)
        memcpy(names[i], domain, sizeof(domain));

    printf("\ncoalescing: %u callers released together, all for %s (cold)\n", a->requests,
           domain);
    sts_engine_get_stats(e, &before);
    call_concurrent(e, names, a->requests, a->requests, (int)a->timeout_ms, &c);
    sts_engine_get_stats(e, &after);
    disc = after.discoveries - before.discoveries;
    joined = after.joined - before.joined;
    printf("  answers: ");
    print_tally(&c.t);
    printf("\n  all answered within %.1f ms (p50 %.1f ms, max %.1f ms)\n", ms(c.total_ns),
           ms(c.p50_ns), ms(c.max_ns));
    printf("  engine counted %" PRIu64 " discover%s and %" PRIu64 " joined requests%s\n", disc,
           disc == 1 ? "y" : "ies", joined, disc == 1 ? "" : "   <<< MISMATCH: want 1 discovery");
    print_stats("at the end", e);
    printf("BENCH coalesce requests=%u domain=%s policy=%u pending=%u other=%u from_cache=%u "
           "total_ms=%.1f max_ms=%.1f discoveries=%" PRIu64 " joined=%" PRIu64 "\n",
           a->requests, domain, c.t.policy, c.t.pending,
           c.t.none + c.t.temperror + c.t.invalid + c.t.failed, c.t.from_cache, ms(c.total_ns),
           ms(c.max_ns), disc, joined);
    fflush(stdout);

    sts_engine_free(e);
    free(names);
    sts_config_free(&cfg);
    return 0;
}

/* ------------------------------------------------------------ rss */

static size_t rss_bytes(void)
{
    char buf[256], *p, *end;
    unsigned long pages;
    long psz = sysconf(_SC_PAGESIZE);
    FILE *f = fopen("/proc/self/statm", "r");

    if (f == NULL || fgets(buf, sizeof(buf), f) == NULL)
        die("cannot read /proc/self/statm");
    fclose(f);
    /* "size resident shared ...": the second field, in pages. */
    (void)strtoul(buf, &end, 10);
    if (end == buf)
        die("cannot parse /proc/self/statm: %s", buf);
    p = end;
    errno = 0;
    pages = strtoul(p, &end, 10);
    if (end == p || errno != 0 || psz <= 0)
        die("cannot parse /proc/self/statm: %s", buf);
    return (size_t)pages * (size_t)psz;
}

static void rss_policy_text(char *out, size_t outsz, const char *name)
{
    int n = snprintf(out, outsz,
                     "version: STSv1\r\nmode: enforce\r\nmx: mx1.%s\r\nmx: *.mx.%s\r\n"
                     "max_age: 604800\r\n",
                     name, name);

    if (n < 0 || (size_t)n >= outsz)
        die("policy text too long");
}

static size_t payload_bytes(const char *name, const sts_policy *p)
{
    size_t b = strlen(name) + 1 + p->text_len + 1;

    for (size_t i = 0; i < p->n_mx; i++)
        b += strlen(p->mx[i]) + 1;
    return b;
}

/* The same policies parsed into a plain array (what holding them costs
 * with no index at all), measured in a child so the parent's heap stays
 * untouched.  Returns the RSS growth in bytes, 0 if it could not run. */
static size_t rss_plain_array(unsigned n)
{
    int fds[2];
    pid_t pid;
    size_t grown = 0;
    ssize_t got;

    if (pipe(fds) != 0)
        return 0;
    pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return 0;
    }
    if (pid == 0) {
        size_t before = rss_bytes(), after;
        sts_policy **pols = xcalloc(n, sizeof(*pols));
        char **names = xcalloc(n, sizeof(*names));
        char name[NAME_LEN], text[256];

        close(fds[0]);
        for (unsigned i = 0; i < n; i++) {
            name_fmt(name, "r", i, ".bench.test");
            rss_policy_text(text, sizeof(text), name);
            pols[i] = parse_policy(text);
            names[i] = strdup(name);
            if (names[i] == NULL)
                die("out of memory");
        }
        after = rss_bytes();
        grown = after - before;
        if (write(fds[1], &grown, sizeof(grown)) != (ssize_t)sizeof(grown))
            _exit(1);
        _exit(0);
    }
    close(fds[1]);
    got = read(fds[0], &grown, sizeof(grown));
    close(fds[0]);
    waitpid(pid, NULL, 0);
    return got == (ssize_t)sizeof(grown) ? grown : 0;
}

static int cmd_rss(const args *a)
{
    sts_config cfg;
    sts_engine_opts o;
    sts_engine *e;
    sts_engine_stats st;
    size_t before, after, plain, payload = 0;
    char name[NAME_LEN], text[256];
    int64_t now = (int64_t)time(NULL);
    uint64_t t0, seed_ns, rnd = 0x1234567;
    unsigned found = 0, probes = 1000;
    double per, plain_per;

    /* Before any thread exists: the child of fork() is then a clean copy. */
    plain = rss_plain_array(a->policies);

    make_config(&cfg, a);
    e = make_engine(&cfg, a, (size_t)a->policies + 1024, &o);
    start_engine(e);
    before = rss_bytes();
    t0 = now_ns();
    for (unsigned i = 0; i < a->policies; i++) {
        sts_policy *p;

        name_fmt(name, "r", i, ".bench.test");
        rss_policy_text(text, sizeof(text), name);
        p = parse_policy(text);
        payload += payload_bytes(name, p);
        if (sts_engine_seed(e, name, SEED_ID, p, now) != STS_OK)
            die("sts_engine_seed %s failed", name);
        sts_policy_free(p);
    }
    seed_ns = now_ns() - t0;
    after = rss_bytes();
    sts_engine_get_stats(e, &st);

    /* Are they all still there?  (LRU limits, seed bugs.) */
    for (unsigned k = 0; k < probes; k++) {
        lookup_res r;

        name_fmt(name, "r", (unsigned)(xorshift(&rnd) % a->policies), ".bench.test");
        lookup_once(e, name, 0, &r);
        if (r.kind == ANS_POLICY && r.from_cache)
            found++;
    }

    per = after > before ? (double)(after - before) / a->policies : 0.0;
    plain_per = (double)plain / a->policies;
    printf("\nmemory: %u policies (2 mx patterns, ~%zu-byte text each) seeded in %.1f ms "
           "(%.0f seeds/s)\n",
           a->policies, strlen(text), ms(seed_ns),
           seed_ns ? (double)a->policies * 1e9 / (double)seed_ns : 0.0);
    printf("  RSS before %.1f MiB, after %.1f MiB: +%.1f MiB = %.0f bytes per policy\n",
           (double)before / 1048576.0, (double)after / 1048576.0,
           (double)(after - before) / 1048576.0, per);
    printf("  side by side: payload (domain + text + mx strings) %.0f bytes per policy; "
           "the parsed policies in a plain array %.0f bytes per policy\n",
           (double)payload / a->policies, plain_per);
    printf("  engine/plain: %.2f; engine entries %zu; %u of %u random seeded domains found "
           "in the cache%s\n",
           plain_per > 0 ? per / plain_per : 0.0, st.entries, found, probes,
           found == probes ? "" : "   <<< MISMATCH: seeded policies missing");
    printf("BENCH rss policies=%u rss_before=%zu rss_after=%zu bytes_per_policy=%.0f "
           "payload_per_policy=%.0f plain_per_policy=%.0f engine_vs_plain=%.2f entries=%zu "
           "found=%u/%u seed_ms=%.1f\n",
           a->policies, before, after, per, (double)payload / a->policies, plain_per,
           plain_per > 0 ? per / plain_per : 0.0, st.entries, found, probes, ms(seed_ns));
    fflush(stdout);

    sts_engine_free(e);
    sts_config_free(&cfg);
    return 0;
}

/* ------------------------------------------------------------ main */

int main(int argc, char **argv)
{
    args a;

    if (argc < 2)
        usage();
    parse_args(argc, argv, &a);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (sts_log_open("bench_engine", NULL, true) != STS_OK)
        die("sts_log_open");
    sts_log_set_level(a.verbose ? STS_LOG_INFO : STS_LOG_WARNING);
    if (strcmp(argv[1], "hits") == 0)
        return cmd_hits(&a);
    if (strcmp(argv[1], "cold") == 0)
        return cmd_cold(&a);
    if (strcmp(argv[1], "coalesce") == 0)
        return cmd_coalesce(&a);
    if (strcmp(argv[1], "rss") == 0)
        return cmd_rss(&a);
    usage();
}
