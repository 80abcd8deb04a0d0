/*
 * engine_impl.h - private contract between the three parts of the lookup
 * engine: engine.c (life, flights, lookups, the loop thread),
 * engine_async.c (asynchronous lookups and their callbacks) and
 * engine_rules.c (the RFC 8461 caching rules and the store behind the
 * cache).  Nobody else includes this header; callers use engine.h.
 */
#ifndef STS_ENGINE_IMPL_H
#define STS_ENGINE_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "engine/cache.h"
#include "engine/engine.h"
#include "engine/store.h"
#include "sts/discover.h"
#include "sts/outcome.h"

#define ENGINE_FLIGHT_BUCKETS 1024
#define ENGINE_FAILLOG_SLOTS 4096 /* domains whose last failure line is remembered */

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

struct waiter; /* engine_async.c */

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
    struct timespec started; /* CLOCK_MONOTONIC at the discovery's start (metrics) */
} flight;

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
    size_t nfetching, nparked; /* copied from the discoverer by the loop */
    bool running, started;
    atomic_bool stopping; /* written under mu; read by on_done without it */
    pthread_t thread;
    int64_t next_sweep;
    int64_t next_prune;      /* loop thread: when the store drops expired records next */
    int64_t store_err_logged;
    uint64_t purge_seq;      /* loop thread: the newest purge note seen (store.h) */
    struct timespec next_purge_poll; /* loop thread: CLOCK_MONOTONIC */
    int64_t overload_logged; /* under mu: one overload warning per second */
    uint64_t overload_quiet; /* under mu: refusals since the last warning */

    /* Asynchronous lookups, under mu: pending ones in a min-heap by
     * deadline (the loop sleeps no longer than the earliest), answered
     * ones on the ready list until the loop runs their callbacks. */
    struct waiter **heap;
    size_t nheap, heap_cap;
    struct waiter *ready_head, *ready_tail;
    size_t nwaiters;
    sts_lookup_cb *firing_cb; /* the callback running now, NULL if none */
    void *firing_arg;
    pthread_cond_t fire_cv;   /* signalled after each callback (for cancel) */

    /* Failed discoveries are logged once per domain per retry_interval:
     * slot hash % ENGINE_FAILLOG_SLOTS holds the domain's hash and when it
     * was last logged (a collision at worst logs a domain again sooner).
     * Loop thread only. */
    struct {
        uint32_t hash;
        int64_t at;
    } faillog[ENGINE_FAILLOG_SLOTS];

    stat_stripe stats[STAT_STRIPES];
};

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

static inline int64_t engine_now(const sts_engine *e)
{
    return e->o.clock != NULL ? e->o.clock(e->o.clock_arg) : (int64_t)time(NULL);
}

/* ---- engine.c */

void sts_engine_stat_inc(sts_engine *e, int which);

/* FNV-1a of a domain name: flight buckets and refresh jitter. */
uint32_t sts_engine_domain_hash(const char *domain);

/* Fill a zeroed answer from a cache entry (taking a policy reference). */
void sts_engine_answer_from_entry(sts_answer *a, const sts_cache_entry *ce);

/* Queue a discovery nobody waits for (re-check, refresh) unless the
 * domain has one already or the engine is not running. */
void sts_engine_request_background(sts_engine *e, const char *domain, sts_discover_mode mode,
                                   const char *known_id);

/* Count an overload; under e->mu.  True when the caller is to log it,
 * with *quiet refused since the last such line. */
bool sts_engine_overload_note_locked(sts_engine *e, int64_t now, uint64_t *quiet);

/* The common start of every lookup: the cache, then joining or starting
 * the domain's discovery.  STS_NOMEM, or STS_OK with either *out
 * answered (ls->f NULL) or ls->f set and e->mu held. */
sts_status sts_engine_lookup_begin(sts_engine *e, const char *domain, int timeout_ms,
                                   unsigned flags, sts_answer *out, lookup_state *ls);

/* The answer of a lookup holding ls->f as the flight stands now (done, or
 * still running after timeout_ms: pending); drops the reference and what
 * ls holds.  Under e->mu. */
void sts_engine_lookup_finish_locked(sts_engine *e, lookup_state *ls, int timeout_ms,
                                     sts_answer *out);

/* ---- engine_async.c */

/* Answer the asynchronous lookups waiting for f, which is done; their
 * callbacks run later, outside the lock.  Under e->mu. */
void sts_engine_async_flight_done_locked(sts_engine *e, flight *f);

/* The loop's part: answer expired lookups, run the ready callbacks; how
 * long the loop may sleep (ms). */
int sts_engine_async_service(sts_engine *e);

/* Run the callbacks of answered lookups, one at a time, outside e->mu:
 * the loop thread (or the stopper once the loop has ended). */
void sts_engine_async_fire(sts_engine *e);

/* ---- engine_rules.c */

/* Fill the cache from e->store at start-up, logging what was read. */
void sts_engine_rules_load(sts_engine *e);

/* Turn a discovery's outcome into the new cache state and, in a zeroed
 * *a, the answer of the domain's flight.  background: a re-check or
 * refresh (the domain was cached when it started).  Loop thread only.
 * Returns true (a untouched) when the flight must go on with a fetch
 * instead. */
bool sts_engine_rules_apply(sts_engine *e, sts_outcome *o, bool background, sts_answer *a);

/* A cache hit: whether the TXT id is due for a background re-check. */
bool sts_engine_rules_recheck_due(const sts_engine *e, const sts_cache_entry *ce, int64_t now);

/* A cache hit for a NEED_MX lookup: whether the policy must be refreshed
 * (and waited for) because it lacks the MX hosts. */
bool sts_engine_rules_lacks_mx(const sts_engine *e, const sts_cache_entry *ce, int64_t now,
                               unsigned flags);

/* The purge notes other programs (mtasts-query --cache-purge) left in
 * the store since the last poll: those domains leave memory, so that the
 * next lookup reads the store and discovers afresh.  init: only take the
 * newest number (at start-up).  Loop thread (or before it starts). */
void sts_engine_rules_purges(sts_engine *e, bool init);

/* Drop long-expired entries and queue the refreshes that are due. */
void sts_engine_rules_sweep(sts_engine *e);

/* Read-through of a domain missing from memory: true with a zeroed *a
 * filled when the store holds a usable record.  fill: cache it too (the
 * loop thread only); else only answer (any thread: a lookup the full
 * discovery queue could not take). */
bool sts_engine_rules_read_store(sts_engine *e, const char *domain, bool fill, sts_answer *a);

#endif
