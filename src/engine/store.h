/*
 * store.h - persistent copies of the policy cache (write-through, loaded at
 * start-up, read through on a miss), so a restart or a crash keeps every
 * policy: MTA-STS is only as safe as its cache (RFC 8461 5.1, 8.1).  It
 * also keeps the policies the memory cache gave up for room, each until it
 * expires (sts_store_prune), so memory pressure never forgets one.
 *
 * Backends, chosen by the CacheStore value:
 *   sqlite:PATH              embedded file (WAL), created on first use
 *   redis://HOST[:PORT][/DB] shared by several MTAs, keys expire with the data
 *   none                     memory only (tests, or by choice)
 * Each backend is its own module (store_sqlite.c, store_redis.c); this
 * header is their common contract.  A store is used by one thread at a
 * time (the engine's loop thread, or mtasts-query).
 *
 * Policies are stored as the policy text as fetched and parsed again on
 * load, so the stored form never depends on in-memory layouts.
 */
#ifndef STS_STORE_H
#define STS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sts/domain.h"
#include "base/status.h"
#include "sts/txt.h"

typedef enum sts_entry_kind {
    STS_ENTRY_POLICY = 1,   /* a fetched policy, any mode */
    STS_ENTRY_NOPOLICY = 2, /* the domain said it has no MTA-STS (negative caching) */
    STS_ENTRY_FAILED = 3,   /* discovery failed, no policy known: when, for the retry limit */
} sts_entry_kind;

typedef struct sts_cache_record {
    char domain[STS_DOMAIN_MAX + 1];
    sts_entry_kind kind;
    char id[STS_ID_MAX + 1]; /* POLICY: the policy's TXT id; FAILED: id of the failed attempt, may be "" */
    char *policy_text;       /* POLICY: NUL-terminated policy body; NULL otherwise (malloc'd) */
    size_t policy_len;
    int64_t fetched_at;      /* POLICY: unix time the policy was fetched */
    int64_t checked_at;      /* unix time the TXT id was last confirmed (or the failure time) */
    int64_t expires_at;      /* POLICY: fetched_at + max_age; others: end of the negative/failed period */
    int64_t last_used;       /* unix time of the last lookup (refresh stops for idle domains) */
} sts_cache_record;

/* Free policy_text and zero the record. */
void sts_cache_record_clear(sts_cache_record *r);

typedef struct sts_store sts_store;

/* Open the store named by spec (see above).  STS_PERMFAIL with a reason
 * for a bad spec; an unusable sqlite file (corrupt, not a database) is
 * moved aside as PATH.corrupt-<unixtime> and a new empty one created (the
 * reason says so, with STS_OK); STS_TEMPFAIL when the backend cannot be
 * reached now (Redis down: the store still opens and reconnects later). */
sts_status sts_store_open(const char *spec, sts_store **out, sts_why *why) STS_MUST_CHECK;

void sts_store_close(sts_store *s);

/* Insert or replace the record for r->domain.  Redis: key TTL = expires_at
 * - now (records already expired are deleted instead). */
sts_status sts_store_put(sts_store *s, const sts_cache_record *r, sts_why *why) STS_MUST_CHECK;

/* Read one record; STS_NOTFOUND if absent.  *out is owned by the caller
 * (sts_cache_record_clear). */
sts_status sts_store_get(sts_store *s, const char *domain, sts_cache_record *out,
                         sts_why *why) STS_MUST_CHECK;

sts_status sts_store_delete(sts_store *s, const char *domain, sts_why *why) STS_MUST_CHECK;

/* Delete every record this store holds (for Redis: only our key prefix). */
sts_status sts_store_clear(sts_store *s, sts_why *why) STS_MUST_CHECK;

/* Delete the records whose expires_at is before `before` (unix time): the
 * store holds policies the memory cache gave up for room, and they leave
 * it here, at their expiry, never before.  Redis drops them by itself
 * (the key's time to live): nothing to do there, nor for none. */
sts_status sts_store_prune(sts_store *s, int64_t before, sts_why *why) STS_MUST_CHECK;

/* Cap the number of records (0: no cap, the default).  SQLite: a put
 * that finds the file over max removes the records least worth keeping
 * until 9/10 of max remain - failed and no-policy records first, then
 * policies, each kind least recently used first - and says so in *why with
 * STS_OK (the caller logs it).  The count is taken every min(1024,
 * max/8 + 1) puts, so the file holds at most that many records more than
 * max.  Redis: nothing here (keys expire by themselves; its maxmemory
 * policy bounds it); none: nothing to bound. */
void sts_store_set_max_entries(sts_store *s, uint64_t max);

/* Call each(arg, record) for every record (order unspecified); the record
 * is only valid during the call.  A record that cannot be decoded is
 * skipped and counted in *skipped (may be NULL).  each returns false to stop. */
typedef bool sts_store_each_cb(void *arg, const sts_cache_record *r);
sts_status sts_store_load(sts_store *s, sts_store_each_cb *each, void *arg, size_t *skipped,
                          sts_why *why) STS_MUST_CHECK;

/* The purge log: how `mtasts-query --cache-purge` reaches the daemons
 * that share the store, whose memory still holds what was deleted from it
 * (they may run as another user, on other hosts with Redis: no signal or
 * socket reaches them all).  A purge appends a note with a sequence
 * number that only grows; each daemon polls for notes newer than the last
 * it saw and drops those domains from memory.  SQLite: table
 * mtasts_purge in the same file (added to schema 1 on open, ignored by
 * older programs); Redis: keys mtasts:purge:v1:seq (counter) and
 * mtasts:purge:v1:log (sorted set, domain by number, the newest 1000);
 * none: no log.  Notes older than a day are dropped. */

/* Note that domain (NULL: every domain) was purged. */
sts_status sts_store_purge_note(sts_store *s, const char *domain, sts_why *why) STS_MUST_CHECK;

/* Call each(arg, domain) (domain NULL: every domain) for the notes
 * numbered above *seq, oldest first, at most 1000 a call, and set *seq to
 * the last one seen.  each NULL: only set *seq to the newest number (the
 * start of a daemon, whose memory was just loaded from the store).
 * A store without a log (none) answers STS_OK and calls nothing. */
typedef void sts_store_purge_cb(void *arg, const char *domain);
sts_status sts_store_purges_since(sts_store *s, uint64_t *seq, sts_store_purge_cb *each,
                                  void *arg, sts_why *why) STS_MUST_CHECK;

/* "sqlite", "redis" or "none". */
const char *sts_store_backend(const sts_store *s);

#endif
