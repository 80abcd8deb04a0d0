/*
 * engine.h - the lookup engine: "what is the MTA-STS state of domain D,
 * within T milliseconds?" for callers on any thread (milter callbacks,
 * socketmap connections, mtasts-query, benchmarks).
 *
 * A cache hit is answered in the caller's thread under a read lock,
 * without touching the network.  A miss starts one discovery on the
 * engine's loop thread (one c-ares channel, one curl multi handle);
 * concurrent requests for the same domain join it, so N simultaneous
 * requests for a cold domain cause one TXT query and at most one fetch.
 * A caller whose deadline passes gets `pending` and the discovery goes on
 * and fills the cache.  A server that must not hold a thread per cold
 * domain asks with sts_engine_lookup_async(): a miss is answered later by
 * a callback on the loop thread, at completion or deadline.  RFC 8461
 * caching rules (3.3, 5.1, 8.1, 8.3) are applied here; see engine_rules.c.
 */
#ifndef STS_ENGINE_H
#define STS_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sts/discover.h"
#include "sts/outcome.h"
#include "sts/policy.h"
#include "base/status.h"
#include "engine/store.h"

typedef struct sts_engine sts_engine;

typedef struct sts_engine_opts {
    sts_discover_opts discover; /* resolver and fetcher; read once by sts_engine_new */
    unsigned max_inflight;     /* discoveries running at once (any stage, parked
                                  fetches included); 0 = 1024 */
    unsigned queue_limit;      /* discoveries waiting to start; 0 = 10000 */
    unsigned negative_ttl;     /* s to remember "no MTA-STS"; 0 = 3600 */
    unsigned retry_interval;   /* s between failed attempts per domain+id (3.3); 0 = 300 */
    unsigned recheck_interval; /* s after which a hit re-checks the TXT id; 0 = 3600 */
    unsigned refresh_idle;     /* s unused after which refreshing stops; 0 = 30 days */
    size_t max_entries;        /* cache entries (beyond: cache.h's order); 0 = 100000 */
    uint64_t store_max_entries; /* records in the store (sts_store_set_max_entries); 0 = no cap */
    unsigned max_waiters;      /* asynchronous lookups waiting at once; 0 = 10000 */
    int64_t (*clock)(void *arg); /* unix time source (tests inject); NULL = time() */
    void *clock_arg;
} sts_engine_opts;

/* Create an engine.  store may be NULL (memory only); the engine takes it
 * over and closes it in sts_engine_free.  Records in the store are loaded
 * now (undecodable ones are skipped and logged).  No thread starts yet. */
sts_status sts_engine_new(const sts_engine_opts *opts, sts_store *store, sts_engine **out,
                          sts_why *why) STS_MUST_CHECK;

/* Open the configured store for an engine, never failing the daemon over
 * it (MTA-STS must keep working): a usable store, or a memory-only store
 * after one clear log line when the configured one cannot be used (bad
 * file permissions, missing directory).  A repaired corrupt file or an
 * unreachable Redis (which reconnects later) is logged too.  *out is NULL
 * only on STS_NOMEM. */
sts_status sts_engine_open_store(const char *spec, sts_store **out) STS_MUST_CHECK;

/* Start the loop thread (after privileges are dropped). */
sts_status sts_engine_start(sts_engine *e, sts_why *why) STS_MUST_CHECK;

/* Stop the loop thread: discoveries in flight are cancelled, waiting
 * callers return at once with temperror, and the callbacks of waiting
 * asynchronous lookups run (in this thread) with temperror before it
 * returns.  Idempotent. */
void sts_engine_stop(sts_engine *e);

/* Stop (if needed) and free everything, closing the store. */
void sts_engine_free(sts_engine *e);

/* What a caller gets.  policy, when non-NULL, is an immutable shared
 * object kept alive until sts_answer_release(). */
typedef struct sts_answer {
    sts_result result;        /* policy, none, temperror, invalid */
    bool pending;             /* deadline passed; result is temperror, discovery goes on */
    bool from_cache;          /* answered from the cache (no wait) */
    const sts_policy *policy; /* result == policy: the policy to apply (may be a cached
                                 one kept after a failed refresh, RFC 8461 5.1) */
    char id[STS_ID_MAX + 1];
    int64_t fetched_at;       /* policy: when it was fetched */
    int64_t expires_at;       /* policy: fetched_at + max_age */
    bool mx_mismatch;         /* enforce policy that matches none of the domain's MX hosts
                                 (as of the last fetch; RFC 8461 4.1) */
    bool mx_known;            /* policy: mx_hosts is the domain's MX list as of the last
                                 fetch or re-check (false: not known, e.g. read from the
                                 store after a restart) */
    const char *const *mx_hosts; /* by preference; valid until sts_answer_release() */
    size_t n_mx;
    sts_dane_state dane;      /* policy: DANE state of the MX hosts (outcome.h) */
    sts_report_type report_type; /* of the latest failed attempt, for TLSRPT */
    char error[STS_WHY_MAX];  /* latest failure text, "" if none */
    void *ref_;               /* internal */
} sts_answer;

/* Look up a normalised domain (domain.h), waiting at most timeout_ms for a
 * discovery (0 = only the cache).  Returns STS_OK with *out filled, or
 * STS_NOMEM; when the engine is overloaded (queue_limit) the answer is
 * temperror with a reason and the request is not queued. */
sts_status sts_engine_lookup(sts_engine *e, const char *domain, int timeout_ms,
                             sts_answer *out) STS_MUST_CHECK;

/* sts_engine_lookup with flags:
 *   STS_LOOKUP_NEED_MX  the caller needs the MX hosts of a cached policy
 *       with a "*." mx pattern (answer.mx_known; one with literal patterns
 *       only is answered as it is): a policy without them (read from the store) is
 *       refreshed now and waited for like a miss, within timeout_ms and not
 *       sooner than retry_interval after a failed attempt (or after a
 *       discovery whose MX lookup failed); on timeout or failure the cached
 *       policy is answered as it is (mx_known false). */
#define STS_LOOKUP_NEED_MX 1u
sts_status sts_engine_lookup_flags(sts_engine *e, const char *domain, int timeout_ms,
                                   unsigned flags, sts_answer *out) STS_MUST_CHECK;

/* The answer of an asynchronous lookup.  a is valid during the call only
 * (the engine releases it afterwards: copy what is needed).  Callbacks run
 * one at a time on the engine's loop thread; those answered by
 * sts_engine_stop() (after the loop has ended) or sts_engine_lookup_cancel()
 * run in that function's caller.  A callback must be cheap, must not block
 * and must not call any sts_engine_* function: the loop serves every
 * discovery. */
typedef void sts_lookup_cb(void *arg, const sts_answer *a);

/* sts_engine_lookup_flags without waiting in the caller's thread, for
 * servers that must not hold a thread per cold domain (the socketmap).
 * Same cache rules, coalescing and overload answers as the synchronous
 * lookup.  Returns STS_NOMEM, or STS_OK and either
 *   *parked false: *out holds the answer now (a cache hit, an overload,
 *       timeout_ms 0, an engine not running); cb will never run for it;
 *   *parked true: *out is untouched and cb(arg, answer) runs exactly once
 *       later: when the domain's discovery completes, or when timeout_ms
 *       has passed (the answer the synchronous lookup gives at its
 *       deadline: pending temperror, or the cached policy for NEED_MX),
 *       or a temperror from sts_engine_stop() or sts_engine_lookup_cancel().
 *       cb may run before this function returns (on the loop thread): the
 *       caller must have everything cb needs in place before the call and
 *       must not touch what cb owns afterwards.
 * At most max_waiters lookups wait at once; beyond, the lookup is answered
 * now as with timeout_ms 0 (the discovery still starts) with an
 * "overloaded" reason. */
sts_status sts_engine_lookup_async(sts_engine *e, const char *domain, int timeout_ms,
                                   unsigned flags, sts_lookup_cb *cb, void *arg, sts_answer *out,
                                   bool *parked) STS_MUST_CHECK;

/* Answer now the waiting asynchronous lookups with callback cb and (arg
 * NULL: any) argument arg, without waiting for their discoveries: each
 * callback runs in the calling thread before this returns, with what
 * the lookup has at this point (a pending temperror whose error text is
 * reason, or the cached NEED_MX policy; one answered already keeps its
 * answer), and never again; one being called back on the loop thread is
 * waited for first.  The discoveries go on.  Any thread except from a
 * callback; the caller makes no new such lookup meanwhile. */
void sts_engine_lookup_cancel(sts_engine *e, sts_lookup_cb *cb, void *arg, const char *reason);

/* Look up TLSA records of the MX hosts of the domains it discovers (for
 * DANE answers, RFC 8461 section 2); off by default.  Any thread; applies
 * to discoveries that start afterwards. */
void sts_engine_set_dane(sts_engine *e, bool on);

/* Read the CAs trusted for policy fetches again, from ca_file (NULL: the
 * system store); fetches that start afterwards use them.  Any thread
 * (SIGHUP).  STS_OK, or STS_TEMPFAIL/STS_NOMEM with a reason: the CAs in
 * use stay. */
sts_status sts_engine_set_ca(sts_engine *e, const char *ca_file, sts_why *why) STS_MUST_CHECK;

void sts_answer_release(sts_answer *a);

/* Put a policy straight into the cache (and store), as if fetched at
 * fetched_at: for tests and benchmarks.  The policy is copied. */
sts_status sts_engine_seed(sts_engine *e, const char *domain, const char *id,
                           const sts_policy *policy, int64_t fetched_at) STS_MUST_CHECK;

/* Drop one domain (NULL: all) from memory and store. */
sts_status sts_engine_purge(sts_engine *e, const char *domain, sts_why *why) STS_MUST_CHECK;

typedef struct sts_engine_stats {
    uint64_t lookups, hits, misses, joined, pending, overloaded;
    uint64_t discoveries, txt_rechecks, refreshes, store_errors;
    size_t entries, inflight, queued;
    size_t fetching, parked;   /* of inflight: in the fetch stage, waiting for it
                                  (MaxPolicyFetches); as of the loop's last turn */
    size_t waiting;            /* asynchronous lookups not yet called back */
} sts_engine_stats;

void sts_engine_get_stats(sts_engine *e, sts_engine_stats *st);

#endif
