/*
 * cache.h - the in-memory policy table: the hot path of every lookup.
 *
 * A hash table of entries under striped reader-writer locks: any number of
 * threads read at once; the engine's loop thread writes.  Policies are
 * immutable, reference-counted objects (sts_polref), so a reader takes a
 * reference under the read lock and uses the policy after unlocking while
 * the writer replaces the entry.
 *
 * Size-bounded: inserting into a full table evicts one entry, chosen by
 * rank first and recency second, so that what is cheap to learn again
 * goes before what protects mail (issue 15, item 8):
 *   1. entries holding no policy: "no MTA-STS" answers and failure
 *      markers (a DNS query or a retry brings them back);
 *   2. policies of mode none, then 3. testing, then 4. enforce.
 * No number of domains without a policy can push a policy out: a
 * newcomer ranked below everything cached is itself the one dropped.
 * Within a rank the least recently used goes, approximately: the first
 * few entries of the rank's list are compared and the others looked at
 * move to its back (nothing to update on a hit; a bounded cost per
 * insert).
 */
#ifndef STS_CACHE_H
#define STS_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sts/domain.h"
#include "sts/outcome.h"
#include "sts/policy.h"
#include "base/status.h"
#include "engine/store.h"
#include "sts/txt.h"

/* An immutable, reference-counted policy. */
typedef struct sts_polref sts_polref;

/* Wrap p (ownership moves to the polref; p is freed on failure too).
 * NULL on OOM.  The MX hosts are unknown (a policy read from the store). */
sts_polref *sts_polref_new(sts_policy *p);
/* The same with what the discovery learnt about the domain's MX hosts
 * along with the policy (copied; at most STS_OUTCOME_MAX_MX of them). */
sts_polref *sts_polref_new_mx(sts_policy *p, const sts_outcome *o);
sts_polref *sts_polref_get(sts_polref *r); /* +1, returns r */
void sts_polref_put(sts_polref *r);        /* -1, frees at 0; NULL is a no-op */
const sts_policy *sts_polref_policy(const sts_polref *r);
/* The MX hosts stored with the policy: false when they are unknown; else
 * *hosts (by preference, valid while r is held) and *n. */
bool sts_polref_mx(const sts_polref *r, const char *const **hosts, size_t *n);
/* True if r was made by a discovery that looked the MX hosts up (whether
 * or not that lookup answered); false for a policy read from the store. */
bool sts_polref_mx_tried(const sts_polref *r);
sts_dane_state sts_polref_dane(const sts_polref *r);
/* True if the outcome learnt MX information (o->mx_known) that differs
 * from r's (hosts or DANE state). */
bool sts_polref_mx_differs(const sts_polref *r, const sts_outcome *o);

/* A copy of one entry as readers see it. */
typedef struct sts_cache_entry {
    sts_entry_kind kind;
    char id[STS_ID_MAX + 1];
    sts_polref *pol;             /* kind == POLICY: a reference owned by this copy */
    int64_t fetched_at;
    int64_t checked_at;
    int64_t expires_at;
    int64_t last_used;
    bool mx_mismatch;            /* enforce policy matching none of the domain's MX hosts */
    /* the latest failed attempt, for answers and TLS reports */
    int64_t fail_at;             /* 0 = none since the entry was made */
    sts_result fail_result;
    sts_report_type fail_rt;
    char fail_error[STS_WHY_MAX];
} sts_cache_entry;

typedef struct sts_cache sts_cache;

sts_status sts_cache_new(size_t max_entries, sts_cache **out) STS_MUST_CHECK;
void sts_cache_free(sts_cache *c);

/* Copy the entry of domain into *out (taking a policy reference) and set
 * its last_used to now.  False if absent. */
bool sts_cache_get(sts_cache *c, const char *domain, int64_t now, sts_cache_entry *out);

/* Release what a copy holds (the policy reference). */
void sts_cache_entry_release(sts_cache_entry *e);

/* What a put gave up to make room. */
typedef struct sts_cache_evicted {
    char domain[STS_DOMAIN_MAX + 1]; /* "" when nothing was evicted */
    sts_entry_kind kind;             /* what the evicted entry held */
} sts_cache_evicted;

/* Insert or replace (the table takes its own policy reference).  When the
 * table is full one entry is evicted by the order above (it may be the
 * new one, when it holds no policy and every other entry does) and
 * reported in *evicted.  STS_OK or STS_NOMEM. */
sts_status sts_cache_put(sts_cache *c, const char *domain, const sts_cache_entry *e,
                         sts_cache_evicted *evicted) STS_MUST_CHECK;

/* Remove one domain; true if it was there. */
bool sts_cache_remove(sts_cache *c, const char *domain);
void sts_cache_clear(sts_cache *c);
size_t sts_cache_count(sts_cache *c);

/* Visit every entry under the read lock (cb must not call into the cache;
 * the entry is valid during the call only).  cb returns false to stop. */
typedef bool sts_cache_each_cb(void *arg, const char *domain, const sts_cache_entry *e);
void sts_cache_each(sts_cache *c, sts_cache_each_cb *cb, void *arg);

#endif
