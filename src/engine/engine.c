/*
 * engine.c - the lookup engine (see engine.h): cache-first answers, one
 * coalesced discovery per domain on a single loop thread, and the caching
 * rules of RFC 8461:
 *   3.3  a failed fetch is not retried for the same domain and id sooner
 *        than retry_interval (5 minutes);
 *   5.1  a cached policy is used until fetched_at + max_age; a policy whose
 *        TXT id was checked more than recheck_interval ago is re-checked in
 *        the background (same id: keep; new id: fetch the new policy);
 *        a missing TXT record, a DNS failure or a failed fetch never
 *        removes or shortens a valid cached policy; a fetched policy, even
 *        mode none, replaces the cached one at once;
 *   3.3/5.1 proactive refresh: policies in use are renewed before they
 *        expire, at a per-domain jittered time; refreshing stops for
 *        domains unused for refresh_idle.
 * Threads: callers run sts_engine_lookup concurrently (cache under a
 * rwlock in cache.c; flights and the queue under e->mu); only the loop
 * thread runs discoveries and writes the cache; the store is used under
 * e->store_mu.  Asynchronous lookups are waiters on a flight (and in a
 * deadline heap) under e->mu; the loop answers them when the flight
 * completes or the deadline passes and runs their callbacks outside the
 * lock, one at a time.
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

#include "base/buf.h"
#include "engine/cache.h"
#include "sts/discover.h"
#include "base/log.h"

#define ENGINE_FLIGHT_BUCKETS 1024
#define ENGINE_SWEEP_INTERVAL 30   /* s between refresh/expiry sweeps */
#define ENGINE_SWEEP_BATCH 2000    /* refreshes queued per sweep at most */
#define ENGINE_TXT_FAIL_RETRY 30   /* s to remember a failed TXT lookup */
#define ENGINE_EXPIRED_KEEP 86400  /* s an expired entry stays for diagnostics */
#define ENGINE_LOOP_TICK_MS 1000

/* Counters, striped per thread and padded to a cache line each, so that
 * cache hits on several cores do not fight over one counter. */
enum {
    ST_HITS, ST_MISSES, ST_JOINED, ST_PENDING, ST_OVERLOADED,
    ST_DISCOVERIES, ST_RECHECKS, ST_REFRESHES, ST_STORE_ERRORS, ST_COUNT
};
#define STAT_STRIPES 16

typedef struct stat_stripe {
    _Alignas(64) atomic_uint_fast64_t v[ST_COUNT];
} stat_stripe;

static atomic_uint stat_next_stripe;
static _Thread_local unsigned stat_my_stripe = UINT32_MAX;

struct waiter;

typedef struct flight {
    struct flight *hnext; /* flight table chain */
    struct flight *qnext; /* start queue */
    char domain[STS_DOMAIN_MAX + 1];
    sts_discover_mode mode;
    char known_id[STS_ID_MAX + 1];
    unsigned refs;        /* the loop's + one per waiting caller or waiter; under e->mu */
    bool done;
    pthread_cond_t cv;
    struct waiter *waiters, *waiters_tail; /* asynchronous lookups waiting for it, in
                                              the order they came; under e->mu */
    /* the answer, valid once done */
    sts_result result;
    sts_polref *pol;
    char id[STS_ID_MAX + 1];
    int64_t fetched_at, expires_at;
    sts_report_type rt;
    bool mx_mismatch;
    char error[STS_WHY_MAX];
    struct sts_engine *e;
} flight;

/* An asynchronous lookup (sts_engine_lookup_async).  Invariant, under
 * e->mu: a waiter is either pending - on its flight's list and in the
 * deadline heap, holding a flight reference - or answered - on the ready
 * list (or a canceller's private list) with its answer filled, in neither
 * of the others - until its callback has run, once, and it is freed;
 * e->nwaiters counts both. */
typedef struct waiter {
    struct waiter *fprev, *fnext; /* the flight's waiters (pending) */
    struct waiter *rnext;         /* the ready list (answered) */
    flight *f;                    /* pending: the flight (one reference) */
    size_t heap_i;                /* pending: index in e->heap */
    int64_t deadline;             /* CLOCK_MONOTONIC ms */
    int timeout_ms;
    bool have_cached;             /* ce: the NEED_MX fallback (see lookup_state) */
    sts_cache_entry ce;
    sts_lookup_cb *cb;
    void *arg;
    sts_answer a;                 /* answered: what cb gets */
} waiter;

struct sts_engine {
    sts_engine_opts o;
    sts_cache *cache;
    sts_store *store;
    pthread_mutex_t store_mu;
    sts_discover *disc;

    pthread_mutex_t mu;
    flight *flights[ENGINE_FLIGHT_BUCKETS];
    flight *qhead, *qtail;
    size_t nqueued, ninflight;
    bool running, started;
    atomic_bool stopping; /* written under mu; read by on_done without it */
    pthread_t thread;
    int64_t next_sweep;
    int64_t store_err_logged;
    int64_t overload_logged; /* under mu: one overload warning per second */
    uint64_t overload_quiet; /* under mu: refusals since the last warning */

    /* Asynchronous lookups, under mu: pending ones in a min-heap by
     * deadline (the loop sleeps no longer than the earliest), answered
     * ones on the ready list until the loop runs their callbacks. */
    waiter **heap;
    size_t nheap, heap_cap;
    waiter *ready_head, *ready_tail;
    size_t nwaiters;
    sts_lookup_cb *firing_cb; /* the callback running now, NULL if none */
    void *firing_arg;
    pthread_cond_t fire_cv;   /* signalled after each callback (for cancel) */

    stat_stripe stats[STAT_STRIPES];
};

static int64_t engine_now(const sts_engine *e)
{
    return e->o.clock != NULL ? e->o.clock(e->o.clock_arg) : (int64_t)time(NULL);
}

static void stat_inc(sts_engine *e, int which)
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
        o->max_inflight = 128;
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

/* ------------------------------------------------------------------ store */

static void store_log_error(sts_engine *e, const char *what, const sts_why *why)
{
    int64_t now = engine_now(e);

    stat_inc(e, ST_STORE_ERRORS);
    /* One line a minute at most: a dead store must not flood the log. */
    if (now - e->store_err_logged >= 60) {
        e->store_err_logged = now;
        sts_log(STS_LOG_WARNING, "-", "store-error", "backend=%s op=%s reason=\"%s\"",
                sts_store_backend(e->store), what, why->text);
    }
}

static void record_from_entry(const char *domain, const sts_cache_entry *ce, sts_cache_record *r)
{
    memset(r, 0, sizeof(*r));
    (void)snprintf(r->domain, sizeof(r->domain), "%s", domain);
    r->kind = ce->kind;
    memcpy(r->id, ce->id, sizeof(r->id));
    if (ce->kind == STS_ENTRY_POLICY && ce->pol != NULL) {
        const sts_policy *p = sts_polref_policy(ce->pol);

        /* Borrowed: the record does not outlive the entry. */
        r->policy_text = p->text;
        r->policy_len = p->text_len;
    }
    r->fetched_at = ce->fetched_at;
    r->checked_at = ce->checked_at;
    r->expires_at = ce->expires_at;
    r->last_used = ce->last_used;
}

static void store_put(sts_engine *e, const char *domain, const sts_cache_entry *ce)
{
    sts_cache_record r;
    sts_why why = { "" };

    if (e->store == NULL)
        return;
    record_from_entry(domain, ce, &r);
    pthread_mutex_lock(&e->store_mu);
    if (sts_store_put(e->store, &r, &why) != STS_OK)
        store_log_error(e, "put", &why);
    pthread_mutex_unlock(&e->store_mu);
}

static void store_delete(sts_engine *e, const char *domain)
{
    sts_why why = { "" };

    if (e->store == NULL || domain[0] == '\0')
        return;
    pthread_mutex_lock(&e->store_mu);
    if (sts_store_delete(e->store, domain, &why) != STS_OK)
        store_log_error(e, "delete", &why);
    pthread_mutex_unlock(&e->store_mu);
}

/* Insert into memory, write through to the store, and keep the store as
 * bounded as memory: an evicted domain leaves both. */
static sts_status cache_put(sts_engine *e, const char *domain, const sts_cache_entry *ce,
                            bool persist)
{
    char evicted[STS_DOMAIN_MAX + 1];
    sts_status st = sts_cache_put(e->cache, domain, ce, evicted);

    if (st != STS_OK)
        return st;
    if (persist)
        store_put(e, domain, ce);
    if (evicted[0] != '\0')
        store_delete(e, evicted);
    return STS_OK;
}

typedef struct load_ctx {
    sts_engine *e;
    int64_t now;
    size_t loaded, bad, expired;
    bool running; /* read-through at run time: evictions leave the store too */
} load_ctx;

static bool load_one(void *arg, const sts_cache_record *r)
{
    load_ctx *lc = arg;
    sts_cache_entry ce;
    sts_policy *p = NULL;
    sts_why why = { "" };
    char evicted[STS_DOMAIN_MAX + 1];

    if (r->expires_at <= lc->now) {
        lc->expired++;
        return true;
    }
    memset(&ce, 0, sizeof(ce));
    ce.kind = r->kind;
    memcpy(ce.id, r->id, sizeof(ce.id));
    ce.fetched_at = r->fetched_at;
    ce.checked_at = r->checked_at;
    ce.expires_at = r->expires_at;
    ce.last_used = r->last_used;
    if (r->kind == STS_ENTRY_POLICY) {
        if (r->policy_text == NULL ||
            sts_policy_parse(r->policy_text, r->policy_len, &p, &why) != STS_OK) {
            lc->bad++;
            return true;
        }
        ce.pol = sts_polref_new(p);
        if (ce.pol == NULL) {
            lc->bad++;
            return true;
        }
    }
    if (sts_cache_put(lc->e->cache, r->domain, &ce, evicted) == STS_OK)
        lc->loaded++;
    /* At start-up the store is being iterated: it keeps its extra records
     * (they are dropped at their expiry); later, memory and store stay one. */
    if (lc->running && evicted[0] != '\0')
        store_delete(lc->e, evicted);
    sts_polref_put(ce.pol);
    return true;
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
        load_ctx lc = { e, engine_now(e), 0, 0, 0, false };
        size_t skipped = 0;
        sts_why lwhy = { "" };

        if (sts_store_load(store, load_one, &lc, &skipped, &lwhy) != STS_OK)
            sts_log(STS_LOG_WARNING, "-", "cache-load",
                    "backend=%s reason=\"%s\" starting with what was read", sts_store_backend(store),
                    lwhy.text);
        sts_log(STS_LOG_INFO, "-", "cache-load",
                "backend=%s loaded=%zu expired=%zu undecodable=%zu", sts_store_backend(store),
                lc.loaded, lc.expired, lc.bad + skipped);
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
static uint32_t domain_hash(const char *domain)
{
    uint32_t h = 2166136261u;

    for (; *domain != '\0'; domain++)
        h = (h ^ (unsigned char)*domain) * 16777619u;
    return h;
}

static size_t flight_bucket(const char *domain)
{
    return domain_hash(domain) & (ENGINE_FLIGHT_BUCKETS - 1);
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

static void waiter_ready_locked(sts_engine *e, waiter *w);

/* Complete a flight with its answer: waiting callers wake up, waiters are
 * answered (their callbacks run later, outside the lock); under e->mu. */
static void flight_complete(sts_engine *e, flight *f)
{
    f->done = true;
    flight_unlink(e, f);
    pthread_cond_broadcast(&f->cv);
    while (f->waiters != NULL)
        waiter_ready_locked(e, f->waiters);
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

static void answer_from_entry(sts_answer *a, const sts_cache_entry *ce)
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

/* ------------------------------------------------------------------ applying outcomes */

static void entry_note_failure(sts_cache_entry *ce, const sts_outcome *o, int64_t now)
{
    ce->fail_at = now;
    ce->fail_result = o->result;
    ce->fail_rt = o->report_type;
    (void)snprintf(ce->fail_error, sizeof(ce->fail_error), "%s", o->error);
}

static void flight_set_answer(flight *f, const sts_cache_entry *ce)
{
    sts_answer a;

    memset(&a, 0, sizeof(a));
    answer_from_entry(&a, ce);
    f->result = a.result;
    f->pol = a.ref_; /* the reference moves to the flight */
    memcpy(f->id, a.id, sizeof(f->id));
    f->fetched_at = a.fetched_at;
    f->expires_at = a.expires_at;
    f->rt = a.report_type;
    f->mx_mismatch = a.mx_mismatch;
    memcpy(f->error, a.error, sizeof(f->error));
}

/* Turn an outcome into the new cache state and the waiters' answer
 * (RFC 8461 5.1 rules: see the top of this file).  Loop thread only.
 * Returns true when the flight must go on with a fetch instead. */
static bool apply(sts_engine *e, flight *f, sts_outcome *o)
{
    int64_t now = engine_now(e);
    sts_cache_entry old, ne;
    bool have_old, old_valid;

    memset(&old, 0, sizeof(old));
    memset(&ne, 0, sizeof(ne));
    have_old = sts_cache_get(e->cache, o->domain, now, &old);
    old_valid = have_old && old.kind == STS_ENTRY_POLICY && old.expires_at > now;

    if (o->result == STS_RESULT_POLICY && o->unchanged) {
        if (old_valid) {
            sts_polref *fresh = NULL;

            ne = old;
            ne.checked_at = now;
            ne.fail_at = 0;
            if (sts_polref_mx_differs(old.pol, o)) {
                /* Same policy, other MX hosts (or DANE state): a new
                 * immutable reference carries them. */
                const sts_policy *p = sts_polref_policy(old.pol);
                sts_policy *copy = sts_policy_dup(p);

                /* Out of memory: keep the old reference, refreshed later. */
                fresh = copy != NULL ? sts_polref_new_mx(copy, o) : NULL;
                if (fresh != NULL) {
                    ne.pol = fresh;
                    ne.mx_mismatch = false;
                    if (p->mode == STS_MODE_ENFORCE && o->n_mx > 0) {
                        ne.mx_mismatch = true;
                        for (size_t i = 0; i < o->n_mx; i++)
                            if (sts_policy_mx_match(p, o->mx_hosts[i]))
                                ne.mx_mismatch = false;
                    }
                }
            }
            (void)cache_put(e, o->domain, &ne, true);
            flight_set_answer(f, &ne);
            sts_polref_put(fresh);
        } else {
            /* It expired while we re-checked (and callers now wait for
             * it): same id, so fetch the policy again in this flight. */
            if (have_old)
                sts_cache_entry_release(&old);
            return true;
        }
    } else if (o->result == STS_RESULT_POLICY && o->policy != NULL) {
        const sts_policy *p = o->policy;

        ne.kind = STS_ENTRY_POLICY;
        (void)snprintf(ne.id, sizeof(ne.id), "%s", o->id[0] != '\0' ? o->id : old.id);
        ne.fetched_at = now;
        ne.checked_at = now;
        ne.expires_at = now + (int64_t)p->max_age;
        ne.last_used = have_old && old.last_used > now ? old.last_used : now;
        ne.mx_mismatch = o->mx_checked && o->mx_mismatch;
        ne.pol = sts_polref_new_mx(o->policy, o);
        o->policy = NULL;
        if (ne.pol == NULL || cache_put(e, o->domain, &ne, true) != STS_OK) {
            f->result = STS_RESULT_TEMPERROR;
            (void)snprintf(f->error, sizeof(f->error), "out of memory caching the policy");
        } else {
            flight_set_answer(f, &ne);
        }
        sts_polref_put(ne.pol);
        ne.pol = NULL;
    } else if (old_valid) {
        /* Keep the valid cached policy; remember why the attempt failed so
         * that answers and TLS reports can say so. */
        ne = old;
        entry_note_failure(&ne, o, now);
        (void)cache_put(e, o->domain, &ne, false);
        flight_set_answer(f, &ne);
    } else if (o->result == STS_RESULT_NONE) {
        ne.kind = STS_ENTRY_NOPOLICY;
        ne.checked_at = now;
        ne.expires_at = now + e->o.negative_ttl;
        ne.last_used = now;
        entry_note_failure(&ne, o, now);
        ne.fail_rt = STS_RT_NONE;
        (void)cache_put(e, o->domain, &ne, true);
        flight_set_answer(f, &ne);
    } else {
        /* temperror or invalid, nothing cached to fall back on.  RFC 8461
         * 3.3: do not try the same id again for retry_interval; a failed TXT
         * lookup (no id yet) is retried sooner. */
        ne.kind = STS_ENTRY_FAILED;
        memcpy(ne.id, o->id, sizeof(ne.id));
        ne.checked_at = now;
        ne.expires_at = now + (o->id[0] != '\0' ? (int64_t)e->o.retry_interval
                                                 : (int64_t)ENGINE_TXT_FAIL_RETRY);
        ne.last_used = now;
        entry_note_failure(&ne, o, now);
        (void)cache_put(e, o->domain, &ne, true);
        flight_set_answer(f, &ne);
    }
    if (have_old)
        sts_cache_entry_release(&old);
    return false;
}

static void on_done(void *arg, sts_outcome *o)
{
    flight *f = arg;
    sts_engine *e = f->e;

    if (!e->stopping && apply(e, f, o)) {
        f->mode = STS_DISCOVER_REFRESH;
        if (sts_discover_start_mode(e->disc, f->domain, f->mode, o->id, on_done, f) == STS_OK)
            return;
        f->result = STS_RESULT_TEMPERROR;
        (void)snprintf(f->error, sizeof(f->error), "out of memory starting a discovery");
    } else if (e->stopping) {
        f->result = STS_RESULT_TEMPERROR;
        (void)snprintf(f->error, sizeof(f->error), "%s", o->error);
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
        stat_inc(e, ST_DISCOVERIES);
        break;
    case STS_DISCOVER_RECHECK:
        stat_inc(e, ST_RECHECKS);
        break;
    case STS_DISCOVER_REFRESH:
        stat_inc(e, ST_REFRESHES);
        break;
    }
    if (e->running)
        sts_discover_wakeup(e->disc);
    return f;
}

static void background_request(sts_engine *e, const char *domain, sts_discover_mode mode,
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

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000L;
}

sts_status sts_engine_lookup(sts_engine *e, const char *domain, int timeout_ms, sts_answer *out)
{
    return sts_engine_lookup_flags(e, domain, timeout_ms, 0, out);
}

/* A cached policy whose MX hosts a NEED_MX caller lacks: refresh it now,
 * unless a failed attempt was too recent (RFC 8461 3.3), or the policy
 * came from a discovery whose MX lookup failed less than retry_interval
 * ago (no fetch per request while a domain's DNS is broken). */
static bool lacks_mx(const sts_engine *e, const sts_cache_entry *ce, int64_t now, unsigned flags)
{
    const char *const *hosts;
    size_t n;
    int64_t retry = (int64_t)e->o.retry_interval;

    return (flags & STS_LOOKUP_NEED_MX) != 0 && ce->kind == STS_ENTRY_POLICY && ce->pol != NULL &&
           !sts_polref_mx(ce->pol, &hosts, &n) &&
           (!sts_polref_mx_tried(ce->pol) || now - ce->checked_at >= retry) &&
           (ce->fail_at == 0 || now - ce->fail_at >= retry);
}

/* An overload refuses thousands of lookups a second: warn once a second
 * with the number refused meanwhile, not once per lookup.  Under e->mu;
 * true when the caller is to log, with *quiet refused since the last. */
static bool overload_note_locked(sts_engine *e, int64_t now, uint64_t *quiet)
{
    stat_inc(e, ST_OVERLOADED);
    if (now == e->overload_logged) {
        e->overload_quiet++;
        return false;
    }
    *quiet = e->overload_quiet;
    e->overload_logged = now;
    e->overload_quiet = 0;
    return true;
}

/* A lookup after the cache: f, when set, is the domain's flight with one
 * reference for this lookup, and e->mu is held.  have_cached: ce is a
 * cached policy lacking the MX hosts a NEED_MX caller wants; it is the
 * answer unless the flight brings a policy. */
typedef struct lookup_state {
    int64_t now;
    flight *f;
    bool have_cached;
    sts_cache_entry ce;
} lookup_state;

static void answer_cached(sts_answer *out, sts_cache_entry *ce)
{
    answer_from_entry(out, ce);
    out->from_cache = true;
    sts_cache_entry_release(ce);
}

/* The common start of every lookup: the cache, then joining or starting
 * the domain's discovery (RFC 8461 3.3 retry rule, coalescing, the queue
 * bound).  Returns STS_NOMEM, or STS_OK with either *out answered
 * (ls->f NULL) or ls->f set and e->mu held. */
static sts_status lookup_begin(sts_engine *e, const char *domain, int timeout_ms, unsigned flags,
                               sts_answer *out, lookup_state *ls)
{
    sts_cache_entry *ce = &ls->ce;
    flight *f;
    bool overloaded;

    memset(out, 0, sizeof(*out));
    ls->now = engine_now(e);
    ls->f = NULL;
    ls->have_cached = false;
    if (sts_cache_get(e->cache, domain, ls->now, ce)) {
        if (ce->expires_at > ls->now && lacks_mx(e, ce, ls->now, flags) && timeout_ms > 0) {
            /* Served from the cache after all if the refresh is late. */
            stat_inc(e, ST_HITS);
            ls->have_cached = true;
        } else if (ce->expires_at > ls->now) {
            /* After a failed attempt, not again within retry_interval (3.3). */
            bool recheck = ce->kind == STS_ENTRY_POLICY &&
                           ls->now - ce->checked_at >= (int64_t)e->o.recheck_interval &&
                           (ce->fail_at == 0 ||
                            ls->now - ce->fail_at >= (int64_t)e->o.retry_interval);

            stat_inc(e, ST_HITS);
            answer_cached(out, ce);
            if (recheck)
                background_request(e, domain, STS_DISCOVER_RECHECK, out->id);
            return STS_OK;
        } else {
            sts_cache_entry_release(ce);
        }
    }
    if (!ls->have_cached)
        stat_inc(e, ST_MISSES);

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
        stat_inc(e, ST_JOINED);
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
        bool warn = overloaded && overload_note_locked(e, ls->now, &quiet);

        pthread_mutex_unlock(&e->mu);
        out->result = STS_RESULT_TEMPERROR;
        if (!overloaded)
            return STS_NOMEM;
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

/* The answer of a lookup holding ls->f as the flight stands now (done, or
 * still running after timeout_ms: pending); drops the reference and what
 * ls holds.  Under e->mu. */
static void lookup_finish_locked(sts_engine *e, lookup_state *ls, int timeout_ms, sts_answer *out)
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
            stat_inc(e, ST_PENDING);
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
    sts_status st = lookup_begin(e, domain, timeout_ms, flags, out, &ls);

    if (st != STS_OK || ls.f == NULL)
        return st;
    deadline_after(&deadline, timeout_ms > 0 ? timeout_ms : 0);
    while (!ls.f->done && timeout_ms > 0)
        if (pthread_cond_timedwait(&ls.f->cv, &e->mu, &deadline) == ETIMEDOUT)
            break;
    lookup_finish_locked(e, &ls, timeout_ms, out);
    pthread_mutex_unlock(&e->mu);
    return STS_OK;
}

/* ------------------------------------------------------------------ asynchronous lookups */

static void heap_set(sts_engine *e, size_t i, waiter *w)
{
    e->heap[i] = w;
    w->heap_i = i;
}

static void heap_up(sts_engine *e, size_t i)
{
    waiter *w = e->heap[i];

    while (i > 0 && e->heap[(i - 1) / 2]->deadline > w->deadline) {
        heap_set(e, i, e->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(e, i, w);
}

static void heap_down(sts_engine *e, size_t i)
{
    waiter *w = e->heap[i];

    for (;;) {
        size_t c = 2 * i + 1;

        if (c >= e->nheap)
            break;
        if (c + 1 < e->nheap && e->heap[c + 1]->deadline < e->heap[c]->deadline)
            c++;
        if (w->deadline <= e->heap[c]->deadline)
            break;
        heap_set(e, i, e->heap[c]);
        i = c;
    }
    heap_set(e, i, w);
}

static void heap_remove(sts_engine *e, waiter *w)
{
    size_t i = w->heap_i;
    waiter *last = e->heap[--e->nheap];

    if (last == w)
        return;
    heap_set(e, i, last);
    heap_up(e, i);
    heap_down(e, last->heap_i);
}

static void waiter_unlink_flight(waiter *w)
{
    if (w->fprev != NULL)
        w->fprev->fnext = w->fnext;
    else
        w->f->waiters = w->fnext;
    if (w->fnext != NULL)
        w->fnext->fprev = w->fprev;
    else
        w->f->waiters_tail = w->fprev;
    w->fprev = w->fnext = NULL;
}

/* Take a pending waiter off its flight's list and the heap. */
static void waiter_unlink_locked(sts_engine *e, waiter *w)
{
    waiter_unlink_flight(w);
    heap_remove(e, w);
}

/* Answer a pending waiter as its flight stands now and move it to the
 * ready list.  Under e->mu. */
static void waiter_ready_locked(sts_engine *e, waiter *w)
{
    lookup_state ls;

    waiter_unlink_locked(e, w);
    ls.f = w->f;
    ls.have_cached = w->have_cached;
    ls.ce = w->ce;
    w->f = NULL;
    w->have_cached = false;
    lookup_finish_locked(e, &ls, w->timeout_ms, &w->a);
    w->rnext = NULL;
    if (e->ready_tail != NULL)
        e->ready_tail->rnext = w;
    else
        e->ready_head = w;
    e->ready_tail = w;
}

/* Answer the waiters whose deadline has passed; the milliseconds until the
 * next deadline (at most a loop tick).  Under e->mu. */
static int waiters_expire_locked(sts_engine *e)
{
    int64_t now = mono_ms(), left;

    while (e->nheap > 0 && e->heap[0]->deadline <= now)
        waiter_ready_locked(e, e->heap[0]);
    if (e->nheap == 0)
        return ENGINE_LOOP_TICK_MS;
    left = e->heap[0]->deadline - now;
    return left < ENGINE_LOOP_TICK_MS ? (int)left : ENGINE_LOOP_TICK_MS;
}

/* Run the callbacks of answered waiters, one at a time, outside e->mu:
 * the loop thread (or the stopper once the loop has ended). */
static void waiters_fire(sts_engine *e)
{
    pthread_mutex_lock(&e->mu);
    while (e->ready_head != NULL) {
        waiter *w = e->ready_head;

        e->ready_head = w->rnext;
        if (e->ready_head == NULL)
            e->ready_tail = NULL;
        e->firing_cb = w->cb;
        e->firing_arg = w->arg;
        pthread_mutex_unlock(&e->mu);
        w->cb(w->arg, &w->a);
        sts_answer_release(&w->a);
        free(w);
        pthread_mutex_lock(&e->mu);
        e->firing_cb = NULL;
        e->firing_arg = NULL;
        e->nwaiters--;
        pthread_cond_broadcast(&e->fire_cv);
    }
    pthread_mutex_unlock(&e->mu);
}

/* The loop's part: answer expired waiters, run the ready callbacks; how
 * long the loop may sleep. */
static int waiters_service(sts_engine *e)
{
    int wait;

    pthread_mutex_lock(&e->mu);
    wait = waiters_expire_locked(e);
    pthread_mutex_unlock(&e->mu);
    waiters_fire(e);
    return wait;
}

sts_status sts_engine_lookup_async(sts_engine *e, const char *domain, int timeout_ms,
                                   unsigned flags, sts_lookup_cb *cb, void *arg, sts_answer *out,
                                   bool *parked)
{
    lookup_state ls;
    waiter *w;
    sts_status st;

    *parked = false;
    st = lookup_begin(e, domain, timeout_ms, flags, out, &ls);
    if (st != STS_OK || ls.f == NULL)
        return st;
    if (timeout_ms <= 0) {
        lookup_finish_locked(e, &ls, 0, out);
        pthread_mutex_unlock(&e->mu);
        return STS_OK;
    }
    if (e->nwaiters >= e->o.max_waiters) {
        /* Like timeout 0: the discovery goes on and fills the cache. */
        uint64_t quiet = 0;
        bool warn = overload_note_locked(e, ls.now, &quiet);

        lookup_finish_locked(e, &ls, 0, out);
        pthread_mutex_unlock(&e->mu);
        if (out->pending)
            (void)snprintf(out->error, sizeof(out->error),
                           "lookup engine overloaded: %u lookups waiting", e->o.max_waiters);
        if (warn)
            sts_log(STS_LOG_WARNING, "-", "overloaded",
                    "domain=%s waiting=%u refused_since_last=%llu", domain, e->o.max_waiters,
                    (unsigned long long)quiet);
        return STS_OK;
    }
    w = calloc(1, sizeof(*w));
    if (w != NULL && e->nheap == e->heap_cap) {
        size_t cap = e->heap_cap == 0 ? 64 : 2 * e->heap_cap;
        waiter **grown = sts_realloc_array(e->heap, cap, sizeof(*grown));

        if (grown != NULL) {
            e->heap = grown;
            e->heap_cap = cap;
        } else {
            free(w);
            w = NULL;
        }
    }
    if (w == NULL) {
        lookup_finish_locked(e, &ls, 0, out);
        pthread_mutex_unlock(&e->mu);
        sts_answer_release(out);
        return STS_NOMEM;
    }
    w->f = ls.f;
    w->have_cached = ls.have_cached;
    w->ce = ls.ce;
    w->timeout_ms = timeout_ms;
    w->deadline = mono_ms() + timeout_ms;
    w->cb = cb;
    w->arg = arg;
    w->fprev = ls.f->waiters_tail;
    if (w->fprev != NULL)
        w->fprev->fnext = w;
    else
        ls.f->waiters = w;
    ls.f->waiters_tail = w;
    heap_set(e, e->nheap++, w);
    heap_up(e, w->heap_i);
    e->nwaiters++;
    /* An earlier deadline than the loop sleeps for: wake it.  Under e->mu,
     * which orders it before sts_engine_stop() frees the loop's poller. */
    if (w->heap_i == 0)
        sts_discover_wakeup(e->disc);
    pthread_mutex_unlock(&e->mu);
    *parked = true;
    return STS_OK;
}

static bool cb_matches(sts_lookup_cb *wcb, void *warg, sts_lookup_cb *cb, void *arg)
{
    return wcb == cb && (arg == NULL || warg == arg);
}

void sts_engine_lookup_cancel(sts_engine *e, sts_lookup_cb *cb, void *arg, const char *reason)
{
    waiter *head = NULL, **tail = &head, **pp;
    size_t kept = 0, n = 0;

    pthread_mutex_lock(&e->mu);
    /* Pending: answer the matching ones as they stand (pending, or the
     * cached NEED_MX policy), then rebuild the heap without them. */
    for (size_t i = 0; i < e->nheap; i++) {
        waiter *w = e->heap[i];
        lookup_state ls;

        if (!cb_matches(w->cb, w->arg, cb, arg)) {
            e->heap[kept++] = w;
            continue;
        }
        waiter_unlink_flight(w);
        ls.f = w->f;
        ls.have_cached = w->have_cached;
        ls.ce = w->ce;
        w->f = NULL;
        w->have_cached = false;
        lookup_finish_locked(e, &ls, w->timeout_ms, &w->a);
        if (w->a.pending)
            (void)snprintf(w->a.error, sizeof(w->a.error), "%s", reason);
        *tail = w;
        tail = &w->rnext;
    }
    e->nheap = kept;
    for (size_t i = 0; i < kept; i++)
        heap_set(e, i, e->heap[i]);
    for (size_t i = kept / 2; i-- > 0;)
        heap_down(e, i);
    /* Answered already: they go with the answer they have. */
    e->ready_tail = NULL;
    for (pp = &e->ready_head; *pp != NULL;) {
        waiter *w = *pp;

        if (cb_matches(w->cb, w->arg, cb, arg)) {
            *pp = w->rnext;
            *tail = w;
            tail = &w->rnext;
        } else {
            e->ready_tail = w;
            pp = &w->rnext;
        }
    }
    *tail = NULL;
    /* One being called back on the loop thread ends first. */
    while (cb_matches(e->firing_cb, e->firing_arg, cb, arg))
        pthread_cond_wait(&e->fire_cv, &e->mu);
    pthread_mutex_unlock(&e->mu);
    while (head != NULL) {
        waiter *w = head;

        head = w->rnext;
        w->cb(w->arg, &w->a);
        sts_answer_release(&w->a);
        free(w);
        n++;
    }
    pthread_mutex_lock(&e->mu);
    e->nwaiters -= n;
    pthread_mutex_unlock(&e->mu);
}

void sts_engine_set_dane(sts_engine *e, bool on)
{
    /* Set before the loop starts and on reload, from the main thread,
     * which is also the one that frees e->disc at the end. */
    if (e->disc != NULL)
        sts_discover_set_dane(e->disc, on);
}

/* ------------------------------------------------------------------ loop */

typedef struct sweep_ctx {
    sts_engine *e;
    int64_t now;
    size_t nrefresh, nexpired;
    char (*refresh)[STS_DOMAIN_MAX + 1];
    char (*refresh_id)[STS_ID_MAX + 1];
    char (*expired)[STS_DOMAIN_MAX + 1];
} sweep_ctx;

/* Deterministic per-domain jitter in [0, span], so that policies fetched
 * together are not all refreshed together. */
static int64_t jitter(const char *domain, int64_t span)
{
    if (span <= 0)
        return 0;
    return (int64_t)(domain_hash(domain) % (uint64_t)(span + 1));
}

/* When a policy is renewed: a quarter of its lifetime (at least a minute)
 * before it expires, minus up to another eighth of jitter. */
static int64_t refresh_due(const char *domain, const sts_cache_entry *ce)
{
    int64_t life = ce->expires_at - ce->fetched_at;
    int64_t margin = life / 4 > 60 ? life / 4 : 60;

    return ce->expires_at - margin - jitter(domain, life / 8);
}

static bool sweep_one(void *arg, const char *domain, const sts_cache_entry *ce)
{
    sweep_ctx *s = arg;
    sts_engine *e = s->e;

    if (ce->expires_at + ENGINE_EXPIRED_KEEP < s->now) {
        if (s->nexpired < ENGINE_SWEEP_BATCH)
            (void)snprintf(s->expired[s->nexpired++], STS_DOMAIN_MAX + 1, "%s", domain);
        return true;
    }
    if (ce->kind != STS_ENTRY_POLICY || ce->expires_at <= s->now)
        return true;
    if (s->now - ce->last_used > (int64_t)e->o.refresh_idle)
        return true; /* nobody sends there any more: let it lapse */
    if (ce->fail_at != 0 && s->now - ce->fail_at < (int64_t)e->o.retry_interval)
        return true; /* RFC 8461 3.3: not again within five minutes */
    if (s->now < refresh_due(domain, ce))
        return true;
    if (s->nrefresh < ENGINE_SWEEP_BATCH) {
        (void)snprintf(s->refresh[s->nrefresh], STS_DOMAIN_MAX + 1, "%s", domain);
        memcpy(s->refresh_id[s->nrefresh], ce->id, STS_ID_MAX + 1);
        s->nrefresh++;
    }
    return s->nrefresh < ENGINE_SWEEP_BATCH || s->nexpired < ENGINE_SWEEP_BATCH;
}

static void sweep(sts_engine *e)
{
    sweep_ctx s;

    memset(&s, 0, sizeof(s));
    s.e = e;
    s.now = engine_now(e);
    s.refresh = calloc(ENGINE_SWEEP_BATCH, sizeof(*s.refresh));
    s.refresh_id = calloc(ENGINE_SWEEP_BATCH, sizeof(*s.refresh_id));
    s.expired = calloc(ENGINE_SWEEP_BATCH, sizeof(*s.expired));
    if (s.refresh != NULL && s.refresh_id != NULL && s.expired != NULL) {
        sts_cache_each(e->cache, sweep_one, &s);
        for (size_t i = 0; i < s.nexpired; i++) {
            (void)sts_cache_remove(e->cache, s.expired[i]);
            store_delete(e, s.expired[i]);
        }
        for (size_t i = 0; i < s.nrefresh; i++)
            background_request(e, s.refresh[i], STS_DISCOVER_REFRESH, s.refresh_id[i]);
    }
    free(s.refresh);
    free(s.refresh_id);
    free(s.expired);
}

/* Read-through: another daemon sharing the store (Redis) may already hold
 * the domain.  A usable record answers the flight without any network.
 * Loop thread, before a FULL discovery starts. */
static bool answer_from_store(sts_engine *e, flight *f)
{
    sts_cache_record r;
    sts_why why = { "" };
    sts_status st;
    load_ctx lc = { e, engine_now(e), 0, 0, 0, true };
    sts_cache_entry ce;
    bool ok = false;

    if (e->store == NULL || f->mode != STS_DISCOVER_FULL)
        return false;
    memset(&r, 0, sizeof(r));
    pthread_mutex_lock(&e->store_mu);
    st = sts_store_get(e->store, f->domain, &r, &why);
    if (st != STS_OK && st != STS_NOTFOUND)
        store_log_error(e, "get", &why); /* store_err_logged is guarded by store_mu */
    pthread_mutex_unlock(&e->store_mu);
    if (st == STS_OK && load_one(&lc, &r) && lc.loaded == 1 &&
        sts_cache_get(e->cache, f->domain, lc.now, &ce)) {
        flight_set_answer(f, &ce);
        sts_cache_entry_release(&ce);
        ok = true;
    }
    sts_cache_record_clear(&r);
    return ok;
}

static void *loop_main(void *arg)
{
    sts_engine *e = arg;

    for (;;) {
        flight *start = NULL, **tail = &start;
        int64_t now;

        pthread_mutex_lock(&e->mu);
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
            sweep(e);
        }
        if (sts_discover_run(e->disc, waiters_service(e)) != STS_OK)
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
    e->running = false;
    pthread_mutex_unlock(&e->mu);
    /* Every flight is complete, so every waiter is answered: call back
     * here, the loop being gone. */
    waiters_fire(e);
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

/* ------------------------------------------------------------------ admin */

sts_status sts_engine_seed(sts_engine *e, const char *domain, const char *id,
                           const sts_policy *policy, int64_t fetched_at)
{
    sts_cache_entry ce;
    sts_policy *copy = sts_policy_dup(policy);
    sts_status st;

    if (copy == NULL)
        return STS_NOMEM;
    memset(&ce, 0, sizeof(ce));
    ce.kind = STS_ENTRY_POLICY;
    (void)snprintf(ce.id, sizeof(ce.id), "%s", id != NULL ? id : "");
    ce.fetched_at = fetched_at;
    ce.checked_at = fetched_at;
    ce.expires_at = fetched_at + (int64_t)policy->max_age;
    ce.last_used = engine_now(e);
    ce.pol = sts_polref_new(copy);
    if (ce.pol == NULL)
        return STS_NOMEM;
    st = cache_put(e, domain, &ce, true);
    sts_polref_put(ce.pol);
    return st;
}

sts_status sts_engine_purge(sts_engine *e, const char *domain, sts_why *why)
{
    sts_status st = STS_OK;

    if (domain == NULL)
        sts_cache_clear(e->cache);
    else
        (void)sts_cache_remove(e->cache, domain);
    if (e->store != NULL) {
        pthread_mutex_lock(&e->store_mu);
        st = domain == NULL ? sts_store_clear(e->store, why) : sts_store_delete(e->store, domain, why);
        pthread_mutex_unlock(&e->store_mu);
    }
    return st;
}

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
    st->waiting = e->nwaiters;
    pthread_mutex_unlock(&e->mu);
}
