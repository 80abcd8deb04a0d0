/*
 * store_impl.h - private contract between store.c and the store backends
 * (store_sqlite.c, store_redis.c), and the shared record checks and JSON
 * codec.  Only the store modules, their tests and the codec fuzz target
 * include this header; everybody else uses store.h.
 */
#ifndef STS_STORE_IMPL_H
#define STS_STORE_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/status.h"
#include "engine/store.h"

/* What a backend provides.  be is the backend's own state.  The generic
 * wrappers in store.c have already checked their arguments (a valid
 * record for put, a valid domain for get and delete), zeroed *out for get
 * and *skipped for load, so a backend does not repeat that. */
typedef struct sts_store_ops {
    const char *name; /* sts_store_backend() */
    sts_status (*put)(void *be, const sts_cache_record *r, sts_why *why);
    sts_status (*get)(void *be, const char *domain, sts_cache_record *out, sts_why *why);
    sts_status (*del)(void *be, const char *domain, sts_why *why);
    sts_status (*clear)(void *be, sts_why *why);
    /* NULL when records leave the backend by themselves at their expiry */
    sts_status (*prune)(void *be, int64_t before, sts_why *why);
    sts_status (*load)(void *be, sts_store_each_cb *each, void *arg, size_t *skipped,
                       sts_why *why);
    /* NULL when the backend bounds itself: when more than max records are
     * held, remove the least worth keeping down to keep; *removed says how
     * many went (0 when the count was within max). */
    sts_status (*trim)(void *be, uint64_t max, uint64_t keep, uint64_t *removed, sts_why *why);
    /* NULL when the backend keeps no purge log (store.h) */
    sts_status (*purge_note)(void *be, const char *domain, sts_why *why);
    sts_status (*purges_since)(void *be, uint64_t *seq, sts_store_purge_cb *each, void *arg,
                               sts_why *why);
    void (*close)(void *be);
} sts_store_ops;

#define STS_STORE_PURGE_ALL "*"   /* the domain of a note that purged everything */
#define STS_STORE_PURGE_BATCH 1000 /* notes read per sts_store_purges_since call */
#define STS_STORE_PURGE_KEEP 86400 /* s a note is kept (SQLite; Redis keeps the newest 1000) */

struct sts_store {
    const sts_store_ops *ops;
    void *be;
    uint64_t max_entries;   /* sts_store_set_max_entries; 0 = no cap */
    uint64_t puts_to_check; /* puts left before the next count */
};

/* Backend constructors, called by sts_store_open with the text after the
 * scheme ("sqlite:" stripped; the whole URL for Redis).  On STS_OK, and
 * for Redis also on STS_TEMPFAIL, they fill s->ops and s->be; on any
 * other status s is left untouched and nothing is allocated. */
sts_status sts_store_sqlite_open(const char *path, sts_store *s, sts_why *why) STS_MUST_CHECK;
sts_status sts_store_redis_open(const char *url, sts_store *s, sts_why *why) STS_MUST_CHECK;

/* The rules every stored record obeys, applied before a write and after
 * every read (so a record edited or damaged behind our back is refused,
 * never half-used):
 *   domain   a valid host name (sts_hostname_valid), lower case
 *   kind     STS_ENTRY_POLICY, _NOPOLICY or _FAILED
 *   id       0..STS_ID_MAX ASCII letters and digits
 *   policy   kind POLICY: text present, at most STS_POLICY_MAX_BODY bytes,
 *            NUL-terminated at policy_len, no NUL inside, valid UTF-8;
 *            other kinds: absent (NULL, length 0)
 *   times    all four >= 0
 * STS_OK or STS_PERMFAIL with the first rule broken. */
sts_status sts_store_record_check(const sts_cache_record *r, sts_why *why) STS_MUST_CHECK;

/* A domain as stored: valid per the rule above, len bytes, no NUL. */
bool sts_store_domain_ok(const char *domain, size_t len);

/* Copy text[0..len) as out's policy text (malloc'd, NUL-terminated);
 * STS_NOMEM on allocation failure (out->policy_text stays NULL). */
sts_status sts_store_record_set_policy(sts_cache_record *out, const char *text,
                                       size_t len) STS_MUST_CHECK;

/* The JSON form of a record (used by Redis):
 *   {"v":1,"domain":D,"kind":K,"id":I,"policy":P,"fetched_at":N,
 *    "checked_at":N,"expires_at":N,"last_used":N}
 * "policy" only for kind POLICY.  Encode checks the record first
 * (STS_PERMFAIL) and returns a malloc'd NUL-terminated text in *json
 * (free()) and its length in *len; STS_NOMEM on allocation failure. */
#define STS_STORE_JSON_VERSION 1
sts_status sts_store_record_encode(const sts_cache_record *r, char **json, size_t *len,
                                   sts_why *why) STS_MUST_CHECK;

/* Decode json[0..len) (not necessarily NUL-terminated).  Strict: one JSON
 * object, no duplicate or unknown members, "v" exactly 1, every member of
 * the right JSON type (integers, not reals), and the result must pass
 * sts_store_record_check.  Longer inputs than STS_STORE_JSON_MAX are
 * refused unread.  STS_OK (*out filled, owned by the caller:
 * sts_cache_record_clear), STS_PERMFAIL "cannot be decoded" with a
 * reason (*out zeroed), or STS_NOMEM. */
#define STS_STORE_JSON_MAX (512u * 1024u) /* a 64 KiB policy escaped as \uXXXX, and room */
sts_status sts_store_record_decode(const char *json, size_t len, sts_cache_record *out,
                                   sts_why *why) STS_MUST_CHECK;

#endif
