/*
 * engine.c - the lookup engine (see engine.h): cache-first answers, one
 * coalesced discovery per domain on a single loop thread.  What a
 * discovery's outcome does to the cache, and when a cached entry is
 * re-checked or refreshed (RFC 8461 3.3 and 5.1), is engine_rules.c;
 * asynchronous lookups are engine_async.c.
 * Threads: callers run sts_engine_lookup concurrently (cache under a
 * rwlock in cache.c; flights and the queue under e->mu); only the loop
 * thread runs discoveries and writes the cache; the store is used under
 * e->store_mu.
 */
#include "engine/engine.h"

#include <errno.h>
#include <stdint.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/cache.h"
#include "engine/engine_metrics.h"
#include "engine/engine_impl.h"
#include "sts/discover.h"
#include "base/log.h"

#define ENGINE_SWEEP_INTERVAL 30   /* s between refresh/expiry sweeps */
#define ENGINE_PURGE_POLL_MS 1000  /* between two looks at the store's purge log */

static atomic_uint stat_next_stripe;
static _Thread_local unsigned stat_my_stripe = UINT32_MAX;

void sts_engine_stat_inc(sts_engine *e, int which)
{
    if (stat_my_stripe == UINT32_MAX)
        stat_my_stripe = atomic_fetch_add(&stat_next_stripe, 1) % STAT_STRIPES;
    atomic_fetch_add_explicit(&e->stats[stat_my_stripe].v[which], 1, memory_order_relaxed);
}

static uint64_t stat_sum(sts_engine *e, int which)
{
    uint64_t n = 0;

    for (size_t i = 0; i < STAT_STRIPES; i++)
        n += atomic_load_explicit(&e->stats[i].v[which], memory_order_relaxed);
    return n;
}

static void opts_defaults(sts_engine_opts *o)
{
    if (o->max_inflight == 0)
        o->max_inflight = 1024;
    if (o->queue_limit == 0)
        o->queue_limit = 10000;
    if (o->negative_ttl == 0)
        o->negative_ttl = 3600;
    if (o->retry_interval == 0)
        o->retry_interval = 300;
    if (o->recheck_interval == 0)
        o->recheck_interval = 3600;
    if (o->refresh_idle == 0)
        o->refresh_idle = 30 * 86400;
    if (o->max_entries == 0)
        o->max_entries = 100000;
    if (o->max_waiters == 0)
        o->max_waiters = 10000;
}

/* ------------------------------------------------------------------ life */

sts_status sts_engine_open_store(const char *spec, sts_store **out)
{
    sts_why why = { "" };
    sts_status st;

    *out = NULL;
    st = sts_store_open(spec, out, &why);
    if (st == STS_OK) {
        if (why.text[0] != '\0')
            sts_log(STS_LOG_WARNING, "-", "cache-store", "store=%s note=\"%s\"", spec, why.text);
        return STS_OK;
    }
    if (*out != NULL) {
        /* Reachable later (Redis down): keep it, it reconnects by itself. */
        sts_log(STS_LOG_WARNING, "-", "cache-store",
                "store=%s unreachable reason=\"%s\" serving from memory until it is back", spec,
                why.text);
        return STS_OK;
    }
    sts_log(STS_LOG_ERR, "-", "cache-store",
            "store=%s unusable reason=\"%s\" running with a memory-only cache: policies will "
            "not survive a restart",
            spec, why.text);
    why.text[0] = '\0';
    return sts_store_open("none", out, &why);
}

sts_status sts_engine_new(const sts_engine_opts *opts, sts_store *store, sts_engine **out,
                          sts_why *why)
{
    sts_engine *e = NULL;
    sts_status st = STS_NOMEM;
    void *mem = NULL;

    *out = NULL;
    /* The counter stripes are cache-line aligned: so must the struct be. */
    if (posix_memalign(&mem, 64, sizeof(*e)) == 0) {
        e = mem;
        memset(e, 0, sizeof(*e));
    }
    if (e == NULL) {
        sts_store_close(store);
        sts_why_set(why, "out of memory");
        return STS_NOMEM;
    }
    if (opts != NULL)
        e->o = *opts;
    opts_defaults(&e->o);
    e->store = store;
    sts_store_set_max_entries(store, e->o.store_max_entries);
    pthread_mutex_init(&e->mu, NULL);
    pthread_mutex_init(&e->store_mu, NULL);
    pthread_cond_init(&e->fire_cv, NULL);
    if (sts_cache_new(e->o.max_entries, &e->cache) != STS_OK) {
        sts_why_set(why, "out of memory for the cache");
        goto fail;
    }
    st = sts_discover_new(&e->o.discover, &e->disc, why);
    /* The discoverer copied what it keeps: no pointer into the caller's
     * strings outlives this call. */
    memset(&e->o.discover, 0, sizeof(e->o.discover));
    if (st != STS_OK)
        goto fail;
    if (store != NULL) {
        /* The newest purge note first: what is loaded now is already
         * without the domains it names. */
        sts_engine_rules_purges(e, true);
        sts_engine_rules_load(e);
    }
    e->next_sweep = engine_now(e) + ENGINE_SWEEP_INTERVAL;
    *out = e;
    return STS_OK;
fail:
    sts_cache_free(e->cache);
    sts_store_close(e->store);
    pthread_mutex_destroy(&e->mu);
    pthread_mutex_destroy(&e->store_mu);
    pthread_cond_destroy(&e->fire_cv);
    free(e);
    return st;
}

/* ------------------------------------------------------------------ flights */

/* FNV-1a: flight buckets and refresh jitter only need a cheap, stable
 * spread of domain names. */
uint32_t sts_engine_domain_hash(const char *domain)
{
    uint32_t h = 2166136261u;

    for (; *domain != '\0'; domain++)
        h = (h ^ (unsigned char)*domain) * 16777619u;
    return h;
}

static size_t flight_bucket(const char *domain)
{
    return sts_engine_domain_hash(domain) & (ENGINE_FLIGHT_BUCKETS - 1);
}

static flight *flight_find(sts_engine *e, const char *domain)
{
    for (flight *f = e->flights[flight_bucket(domain)]; f != NULL; f = f->hnext)
        if (strcmp(f->domain, domain) == 0)
            return f;
    return NULL;
}

static void flight_unlink(sts_engine *e, flight *f)
{
    flight **pp = &e->flights[flight_bucket(f->domain)];

    for (; *pp != NULL; pp = &(*pp)->hnext)
        if (*pp == f) {
            *pp = f->hnext;
            return;
        }
}

/* Drop one reference; under e->mu. */
static void flight_unref(flight *f)
{
    if (--f->refs > 0)
        return;
    sts_polref_put(f->pol);
    pthread_cond_destroy(&f->cv);
    free(f);
}

static flight *flight_new(sts_engine *e, const char *domain, sts_discover_mode mode,
                          const char *known_id)
{
    flight *f = calloc(1, sizeof(*f));
    pthread_condattr_t ca;

    if (f == NULL)
        return NULL;
    /* Callers wait on deadlines of the monotonic clock. */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (pthread_cond_init(&f->cv, &ca) != 0) {
        pthread_condattr_destroy(&ca);
        free(f);
        return NULL;
    }
    pthread_condattr_destroy(&ca);
    (void)snprintf(f->domain, sizeof(f->domain), "%s", domain);
    f->mode = mode;
    if (known_id != NULL)
        (void)snprintf(f->known_id, sizeof(f->known_id), "%s", known_id);
    f->refs = 1; /* the loop's */
    f->e = e;
    return f;
}

/* Complete a flight with its answer: waiting callers wake up, waiters are
 * answered (their callbacks run later, outside the lock); under e->mu. */
static void flight_complete(sts_engine *e, flight *f)
{
    f->done = true;
    flight_unlink(e, f);
    pthread_cond_broadcast(&f->cv);
    sts_engine_async_flight_done_locked(e, f);
    flight_unref(f);
}

/* ------------------------------------------------------------------ answers */

/* The policy part of an answer: a reference to pol and what it carries. */
static void answer_set_policy(sts_answer *a, sts_polref *pol)
{
    a->ref_ = sts_polref_get(pol);
    a->policy = pol != NULL ? sts_polref_policy(pol) : NULL;
    a->mx_known = pol != NULL && sts_polref_mx(pol, &a->mx_hosts, &a->n_mx);
    a->dane = pol != NULL ? sts_polref_dane(pol) : STS_DANE_UNKNOWN;
}

void sts_engine_answer_from_entry(sts_answer *a, const sts_cache_entry *ce)
{
    memcpy(a->id, ce->id, sizeof(a->id));
    if (ce->fail_at != 0) {
        a->report_type = ce->fail_rt;
        (void)snprintf(a->error, sizeof(a->error), "%s", ce->fail_error);
    }
    switch (ce->kind) {
    case STS_ENTRY_POLICY:
        a->result = STS_RESULT_POLICY;
        answer_set_policy(a, ce->pol);
        a->fetched_at = ce->fetched_at;
        a->expires_at = ce->expires_at;
        a->mx_mismatch = ce->mx_mismatch;
        break;
    case STS_ENTRY_NOPOLICY:
        a->result = STS_RESULT_NONE;
        break;
    case STS_ENTRY_FAILED:
        a->result = ce->fail_result;
        break;
    }
}

void sts_answer_release(sts_answer *a)
{
    sts_polref_put(a->ref_);
    a->ref_ = NULL;
    a->policy = NULL;
}

static void flight_set_answer(flight *f, const sts_answer *a)
{
    f->result = a->result;
    f->pol = a->ref_; /* the reference moves to the flight */
    memcpy(f->id, a->id, sizeof(f->id));
    f->fetched_at = a->fetched_at;
    f->expires_at = a->expires_at;
    f->rt = a->report_type;
    f->mx_mismatch = a->mx_mismatch;
    memcpy(f->error, a->error, sizeof(f->error));
}

/* A discovery that failed (DNS, fetch, certificate, policy syntax)
 * leaves the domain without MTA-STS, unless a cached
 * policy is kept: say so where an admin looks, with the reason, once per
 * domain per retry_interval (a failing domain is not tried more often,
 * RFC 8461 3.3, except the TXT lookup).  Loop thread. */
static void log_failure(sts_engine *e, const sts_outcome *o, const sts_answer *a)
{
    uint32_t h = sts_engine_domain_hash(o->domain);
    size_t slot = h % ENGINE_FAILLOG_SLOTS;
    int64_t now = engine_now(e);
    const char *rt = sts_report_type_name(o->report_type);
    bool kept = a->result == STS_RESULT_POLICY;

    /* "none" is the domain's own answer (no record, or one RFC 8461 3.1
     * says to ignore): not a failure. */
    if (o->result != STS_RESULT_TEMPERROR && o->result != STS_RESULT_INVALID)
        return;
    if (e->faillog[slot].at != 0 && e->faillog[slot].hash == h &&
        now - e->faillog[slot].at < (int64_t)e->o.retry_interval)
        return;
    e->faillog[slot].hash = h;
    e->faillog[slot].at = now;
    sts_log(kept ? STS_LOG_INFO : STS_LOG_NOTICE, "-", "discovery-failed",
            "domain=%s result=%s report_type=%s %s reason=\"%s\"", o->domain,
            sts_result_name(o->result), rt != NULL ? rt : "none",
            kept ? "kept=cached-policy" : "mta-sts=not-applied", o->error);
}

static void on_done(void *arg, sts_outcome *o)
{
    flight *f = arg;
    sts_engine *e = f->e;
    sts_answer a;
    struct timespec now;

    (void)clock_gettime(CLOCK_MONOTONIC, &now);
    sts_engine_metrics_outcome(o, (double)(now.tv_sec - f->started.tv_sec) +
                                      (double)(now.tv_nsec - f->started.tv_nsec) / 1e9);
    memset(&a, 0, sizeof(a));
    if (!e->stopping && sts_engine_rules_apply(e, o, f->mode != STS_DISCOVER_FULL, &a)) {
        f->mode = STS_DISCOVER_REFRESH;
        (void)clock_gettime(CLOCK_MONOTONIC, &f->started);
        if (sts_discover_start_mode(e->disc, f->domain, f->mode, o->id, on_done, f) == STS_OK)
            return;
        f->result = STS_RESULT_TEMPERROR;
        (void)snprintf(f->error, sizeof(f->error), "out of memory starting a discovery");
    } else {
        /* a is still zeroed, like the flight, if the rules did not run. */
        if (!e->stopping)
            log_failure(e, o, &a);
        flight_set_answer(f, &a);
        if (e->stopping) {
            f->result = STS_RESULT_TEMPERROR;
            (void)snprintf(f->error, sizeof(f->error), "%s", o->error);
        }
    }
    sts_log(STS_LOG_DEBUG, "-", "discovery", "domain=%s mode=%d result=%s unchanged=%d error=\"%s\"",
            o->domain, (int)f->mode, sts_result_name(o->result), (int)o->unchanged, o->error);
    pthread_mutex_lock(&e->mu);
    e->ninflight--;
    flight_complete(e, f);
    pthread_mutex_unlock(&e->mu);
}

/* ------------------------------------------------------------------ requests */

/* Queue a discovery unless one for the domain is queued or running;
 * under e->mu.  Returns the flight, or NULL when overloaded/out of memory
 * (*overloaded says which). */
static flight *request_locked(sts_engine *e, const char *domain, sts_discover_mode mode,
                              const char *known_id, bool *overloaded)
{
    flight *f = flight_find(e, domain);

    *overloaded = false;
    if (f != NULL)
        return f;
    if (e->nqueued >= e->o.queue_limit) {
        *overloaded = true;
        return NULL;
    }
    f = flight_new(e, domain, mode, known_id);
    if (f == NULL)
        return NULL;
    f->hnext = e->flights[flight_bucket(domain)];
    e->flights[flight_bucket(domain)] = f;
    if (e->qtail != NULL)
        e->qtail->qnext = f;
    else
        e->qhead = f;
    e->qtail = f;
    e->nqueued++;
    switch (mode) {
    case STS_DISCOVER_FULL:
        sts_engine_stat_inc(e, ST_DISCOVERIES);
        break;
    case STS_DISCOVER_RECHECK:
        sts_engine_stat_inc(e, ST_RECHECKS);
        break;
    case STS_DISCOVER_REFRESH:
        sts_engine_stat_inc(e, ST_REFRESHES);
        break;
    }
    if (e->running)
        sts_discover_wakeup(e->disc);
    return f;
}

void sts_engine_request_background(sts_engine *e, const char *domain, sts_discover_mode mode,
                                   const char *known_id)
{
    bool overloaded;

    pthread_mutex_lock(&e->mu);
    if (e->running && !e->stopping)
        (void)request_locked(e, domain, mode, known_id, &overloaded);
    pthread_mutex_unlock(&e->mu);
}

static void deadline_after(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

sts_status sts_engine_lookup(sts_engine *e, const char *domain, int timeout_ms, sts_answer *out)
{
    return sts_engine_lookup_flags(e, domain, timeout_ms, 0, out);
}

/* An overload refuses thousands of lookups a second: warn once a second
 * with the number refused meanwhile, not once per lookup. */
bool sts_engine_overload_note_locked(sts_engine *e, int64_t now, uint64_t *quiet)
{
    sts_engine_stat_inc(e, ST_OVERLOADED);
    if (now == e->overload_logged) {
        e->overload_quiet++;
        return false;
    }
    *quiet = e->overload_quiet;
    e->overload_logged = now;
    e->overload_quiet = 0;
    return true;
}

static void answer_cached(sts_answer *out, sts_cache_entry *ce)
{
    sts_engine_answer_from_entry(out, ce);
    out->from_cache = true;
    sts_cache_entry_release(ce);
}

/* The cache rules of a hit are engine_rules.c's; then coalescing and the
 * queue bound. */
sts_status sts_engine_lookup_begin(sts_engine *e, const char *domain, int timeout_ms,
                                   unsigned flags, sts_answer *out, lookup_state *ls)
{
    sts_cache_entry *ce = &ls->ce;
    flight *f;
    bool overloaded;

    memset(out, 0, sizeof(*out));
    ls->now = engine_now(e);
    ls->f = NULL;
    ls->have_cached = false;
    if (sts_cache_get(e->cache, domain, ls->now, ce)) {
        if (ce->expires_at > ls->now && sts_engine_rules_lacks_mx(e, ce, ls->now, flags) &&
            timeout_ms > 0) {
            /* Served from the cache after all if the refresh is late. */
            sts_engine_stat_inc(e, ST_HITS);
            ls->have_cached = true;
        } else if (ce->expires_at > ls->now) {
            bool recheck = sts_engine_rules_recheck_due(e, ce, ls->now);

            sts_engine_stat_inc(e, ST_HITS);
            answer_cached(out, ce);
            if (recheck)
                sts_engine_request_background(e, domain, STS_DISCOVER_RECHECK, out->id);
            return STS_OK;
        } else {
            sts_cache_entry_release(ce);
        }
    }
    if (!ls->have_cached)
        sts_engine_stat_inc(e, ST_MISSES);

    pthread_mutex_lock(&e->mu);
    if (!e->running || e->stopping) {
        pthread_mutex_unlock(&e->mu);
        if (ls->have_cached) {
            answer_cached(out, ce);
            return STS_OK;
        }
        out->result = STS_RESULT_TEMPERROR;
        (void)snprintf(out->error, sizeof(out->error), "lookup engine is not running");
        return STS_OK;
    }
    f = flight_find(e, domain);
    if (f != NULL)
        sts_engine_stat_inc(e, ST_JOINED);
    else if (ls->have_cached)
        f = request_locked(e, domain, STS_DISCOVER_REFRESH, ce->id, &overloaded);
    else
        f = request_locked(e, domain, STS_DISCOVER_FULL, NULL, &overloaded);
    if (f == NULL && ls->have_cached) {
        pthread_mutex_unlock(&e->mu);
        answer_cached(out, ce);
        return STS_OK;
    }
    if (f == NULL) {
        uint64_t quiet = 0;
        bool warn;

        pthread_mutex_unlock(&e->mu);
        if (!overloaded) {
            out->result = STS_RESULT_TEMPERROR;
            return STS_NOMEM;
        }
        /* RFC 8461 5.1: a valid policy is applied, queue full or not; the
         * store keeps those memory gave up for room.  Read here, in the
         * caller's thread, only for lookups the queue refuses (a local
         * file, or one Redis command of at most 500 ms). */
        if (sts_engine_rules_read_store(e, domain, false, out)) {
            out->from_cache = true;
            return STS_OK;
        }
        pthread_mutex_lock(&e->mu);
        warn = sts_engine_overload_note_locked(e, ls->now, &quiet);
        pthread_mutex_unlock(&e->mu);
        out->result = STS_RESULT_TEMPERROR;
        (void)snprintf(out->error, sizeof(out->error),
                       "lookup engine overloaded: %u discoveries queued", e->o.queue_limit);
        if (warn)
            sts_log(STS_LOG_WARNING, "-", "overloaded",
                    "domain=%s queued=%u refused_since_last=%llu", domain, e->o.queue_limit,
                    (unsigned long long)quiet);
        return STS_OK;
    }
    f->refs++;
    ls->f = f;
    return STS_OK;
}

void sts_engine_lookup_finish_locked(sts_engine *e, lookup_state *ls, int timeout_ms,
                                     sts_answer *out)
{
    flight *f = ls->f;

    if (ls->have_cached && (!f->done || f->result != STS_RESULT_POLICY || f->pol == NULL)) {
        answer_cached(out, &ls->ce);
    } else {
        if (ls->have_cached)
            sts_cache_entry_release(&ls->ce);
        if (f->done) {
            out->result = f->result;
            answer_set_policy(out, f->pol);
            memcpy(out->id, f->id, sizeof(out->id));
            out->fetched_at = f->fetched_at;
            out->expires_at = f->expires_at;
            out->report_type = f->rt;
            out->mx_mismatch = f->mx_mismatch;
            memcpy(out->error, f->error, sizeof(out->error));
        } else {
            sts_engine_stat_inc(e, ST_PENDING);
            out->pending = true;
            out->result = STS_RESULT_TEMPERROR;
            (void)snprintf(out->error, sizeof(out->error),
                           "policy discovery still running after %d ms", timeout_ms);
        }
    }
    ls->f = NULL;
    ls->have_cached = false;
    flight_unref(f);
}

sts_status sts_engine_lookup_flags(sts_engine *e, const char *domain, int timeout_ms,
                                   unsigned flags, sts_answer *out)
{
    lookup_state ls;
    struct timespec deadline;
    sts_status st = sts_engine_lookup_begin(e, domain, timeout_ms, flags, out, &ls);

    if (st != STS_OK || ls.f == NULL)
        return st;
    deadline_after(&deadline, timeout_ms > 0 ? timeout_ms : 0);
    while (!ls.f->done && timeout_ms > 0)
        if (pthread_cond_timedwait(&ls.f->cv, &e->mu, &deadline) == ETIMEDOUT)
            break;
    sts_engine_lookup_finish_locked(e, &ls, timeout_ms, out);
    pthread_mutex_unlock(&e->mu);
    return STS_OK;
}

void sts_engine_set_dane(sts_engine *e, bool on)
{
    /* Set before the loop starts and on reload, from the main thread,
     * which is also the one that frees e->disc at the end. */
    if (e->disc != NULL)
        sts_discover_set_dane(e->disc, on);
}

sts_status sts_engine_set_ca(sts_engine *e, const char *ca_file, sts_why *why)
{
    /* Like sts_engine_set_dane: from the main thread, which also frees
     * e->disc at the end. */
    if (e->disc == NULL) {
        sts_why_set(why, "lookup engine stopped");
        return STS_TEMPFAIL;
    }
    return sts_discover_set_ca(e->disc, ca_file, why);
}

/* ------------------------------------------------------------------ loop */

/* Another daemon sharing the store may have fetched the domain already:
 * loop thread, before a FULL discovery starts. */
static bool answer_from_store(sts_engine *e, flight *f)
{
    sts_answer a;

    memset(&a, 0, sizeof(a));
    if (f->mode != STS_DISCOVER_FULL || !sts_engine_rules_read_store(e, f->domain, true, &a))
        return false;
    flight_set_answer(f, &a);
    return true;
}

/* Look at the store's purge log when it is due; ms until the next look
 * (-1: never, no store). */
static int purge_poll(sts_engine *e)
{
    struct timespec ts;
    int64_t left;

    if (e->store == NULL)
        return -1;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    left = (int64_t)(e->next_purge_poll.tv_sec - ts.tv_sec) * 1000 +
           (e->next_purge_poll.tv_nsec - ts.tv_nsec) / 1000000;
    if (left > 0)
        return left > ENGINE_PURGE_POLL_MS ? ENGINE_PURGE_POLL_MS : (int)left;
    sts_engine_rules_purges(e, false);
    e->next_purge_poll = ts;
    e->next_purge_poll.tv_sec += ENGINE_PURGE_POLL_MS / 1000;
    return ENGINE_PURGE_POLL_MS;
}

static void *loop_main(void *arg)
{
    sts_engine *e = arg;

    for (;;) {
        flight *start = NULL, **tail = &start;
        int64_t now;
        int wait, svc;

        pthread_mutex_lock(&e->mu);
        sts_discover_fetches(e->disc, &e->nfetching, &e->nparked);
        if (e->stopping) {
            pthread_mutex_unlock(&e->mu);
            break;
        }
        while (e->qhead != NULL && e->ninflight < e->o.max_inflight) {
            flight *f = e->qhead;

            e->qhead = f->qnext;
            if (e->qhead == NULL)
                e->qtail = NULL;
            f->qnext = NULL;
            e->nqueued--;
            e->ninflight++;
            *tail = f;
            tail = &f->qnext;
        }
        pthread_mutex_unlock(&e->mu);

        while (start != NULL) {
            flight *f = start;

            start = f->qnext;
            f->qnext = NULL;
            if (answer_from_store(e, f)) {
                pthread_mutex_lock(&e->mu);
                e->ninflight--;
                flight_complete(e, f);
                pthread_mutex_unlock(&e->mu);
                continue;
            }
            (void)clock_gettime(CLOCK_MONOTONIC, &f->started);
            if (sts_discover_start_mode(e->disc, f->domain, f->mode, f->known_id, on_done, f) !=
                STS_OK) {
                pthread_mutex_lock(&e->mu);
                f->result = STS_RESULT_TEMPERROR;
                (void)snprintf(f->error, sizeof(f->error), "out of memory starting a discovery");
                e->ninflight--;
                flight_complete(e, f);
                pthread_mutex_unlock(&e->mu);
            }
        }
        now = engine_now(e);
        if (now >= e->next_sweep) {
            e->next_sweep = now + ENGINE_SWEEP_INTERVAL;
            sts_engine_rules_sweep(e);
        }
        wait = purge_poll(e);
        svc = sts_engine_async_service(e);
        if (svc >= 0 && (wait < 0 || svc < wait))
            wait = svc;
        if (sts_discover_run(e->disc, wait) != STS_OK)
            sts_log(STS_LOG_ERR, "-", "loop-error", "event loop wait failed");
    }
    return NULL;
}

sts_status sts_engine_start(sts_engine *e, sts_why *why)
{
    int rc;

    pthread_mutex_lock(&e->mu);
    if (e->started) {
        pthread_mutex_unlock(&e->mu);
        sts_why_set(why, "engine already started");
        return STS_PERMFAIL;
    }
    e->running = true;
    e->started = true;
    pthread_mutex_unlock(&e->mu);
    rc = pthread_create(&e->thread, NULL, loop_main, e);
    if (rc != 0) {
        pthread_mutex_lock(&e->mu);
        e->running = false;
        pthread_mutex_unlock(&e->mu);
        sts_why_set(why, "cannot start the engine thread: %s", strerror(rc));
        return STS_TEMPFAIL;
    }
    return STS_OK;
}

void sts_engine_stop(sts_engine *e)
{
    bool join;

    pthread_mutex_lock(&e->mu);
    join = e->running && !e->stopping;
    e->stopping = true;
    pthread_mutex_unlock(&e->mu);
    if (!join)
        return;
    sts_discover_wakeup(e->disc);
    pthread_join(e->thread, NULL);
    /* The loop is gone: end what it had started, then what was queued. */
    sts_discover_free(e->disc);
    e->disc = NULL;
    pthread_mutex_lock(&e->mu);
    while (e->qhead != NULL) {
        flight *f = e->qhead;

        e->qhead = f->qnext;
        e->nqueued--;
        f->result = STS_RESULT_TEMPERROR;
        (void)snprintf(f->error, sizeof(f->error), "lookup engine stopped");
        flight_complete(e, f);
    }
    e->qtail = NULL;
    e->nfetching = 0;
    e->nparked = 0;
    e->running = false;
    pthread_mutex_unlock(&e->mu);
    /* Every flight is complete, so every waiter is answered: call back
     * here, the loop being gone. */
    sts_engine_async_fire(e);
}

void sts_engine_free(sts_engine *e)
{
    if (e == NULL)
        return;
    sts_engine_stop(e);
    sts_discover_free(e->disc);
    sts_cache_free(e->cache);
    sts_store_close(e->store);
    pthread_mutex_destroy(&e->mu);
    pthread_mutex_destroy(&e->store_mu);
    pthread_cond_destroy(&e->fire_cv);
    free(e->heap);
    free(e);
}

/* ------------------------------------------------------------------ stats */

void sts_engine_get_stats(sts_engine *e, sts_engine_stats *st)
{
    memset(st, 0, sizeof(*st));
    st->hits = stat_sum(e, ST_HITS);
    st->misses = stat_sum(e, ST_MISSES);
    st->lookups = st->hits + st->misses; /* every lookup is exactly one of them */
    st->joined = stat_sum(e, ST_JOINED);
    st->pending = stat_sum(e, ST_PENDING);
    st->overloaded = stat_sum(e, ST_OVERLOADED);
    st->discoveries = stat_sum(e, ST_DISCOVERIES);
    st->txt_rechecks = stat_sum(e, ST_RECHECKS);
    st->refreshes = stat_sum(e, ST_REFRESHES);
    st->store_errors = stat_sum(e, ST_STORE_ERRORS);
    st->entries = sts_cache_count(e->cache);
    pthread_mutex_lock(&e->mu);
    st->inflight = e->ninflight;
    st->queued = e->nqueued;
    st->fetching = e->nfetching;
    st->parked = e->nparked;
    st->waiting = e->nwaiters;
    pthread_mutex_unlock(&e->mu);
}
