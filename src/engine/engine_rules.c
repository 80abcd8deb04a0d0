/*
 * engine_rules.c - what the lookup engine's cache holds and for how long:
 * the caching rules of RFC 8461 applied to each discovery's outcome and
 * to each hit, the periodic sweep, and the store the cache is written
 * through to (so that policies survive a restart).
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
 * The store holds what memory holds plus the policies memory gave up for
 * room (cache.h: those go last), each until it expires; a lookup missing
 * from memory reads it through before any network, also when the
 * discovery queue is full (5.1: a valid cached policy is applied).
 * Only the loop thread writes the cache (apply, sweep, read-through);
 * seed and purge are for tests and administration.  The store is used
 * under e->store_mu.
 */
#include "engine/engine_impl.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "engine/cache.h"
#include "engine/store.h"
#include "sts/policy.h"

#define ENGINE_SWEEP_BATCH 2000    /* refreshes queued per sweep at most */
#define ENGINE_TXT_FAIL_RETRY 30   /* s to remember a failed TXT lookup */
#define ENGINE_EXPIRED_KEEP 86400  /* s an expired entry stays for diagnostics */
#define ENGINE_PRUNE_INTERVAL 3600 /* s between prunings of the store */

/* ------------------------------------------------------------------ store */

static void store_log_error(sts_engine *e, const char *what, const sts_why *why)
{
    int64_t now = engine_now(e);

    sts_engine_stat_inc(e, ST_STORE_ERRORS);
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
    else if (why.text[0] != '\0')
        sts_log(STS_LOG_NOTICE, "-", "store-trimmed", "backend=%s reason=\"%s\"",
                sts_store_backend(e->store), why.text);
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

/* Insert into memory and write through to the store.  What memory gives
 * up for room (cache.h: entries without a policy first) leaves the store
 * too, unless it is a policy: that stays stored until the store prunes it
 * at its expiry, and the next lookup reads it back (RFC 8461 5.1), so a
 * flood of other domains cannot turn a known enforce domain into a first
 * contact (10.2).  The store thus holds what memory holds plus the
 * policies memory gave up, each until it expires. */
static sts_status cache_put(sts_engine *e, const char *domain, const sts_cache_entry *ce,
                            bool persist)
{
    sts_cache_evicted ev;
    sts_status st = sts_cache_put(e->cache, domain, ce, &ev);
    bool drop;

    if (st != STS_OK)
        return st;
    drop = ev.domain[0] != '\0' && ev.kind != STS_ENTRY_POLICY;
    /* A newcomer without a policy that memory had no room for: not stored. */
    if (persist && !(drop && strcmp(ev.domain, domain) == 0))
        store_put(e, domain, ce);
    if (drop)
        store_delete(e, ev.domain);
    return STS_OK;
}

typedef enum record_use { RECORD_USABLE, RECORD_EXPIRED, RECORD_BAD } record_use;

/* A stored record as a cache entry (a policy is parsed again, its
 * reference in ce->pol); ce holds nothing unless it is usable at now. */
static record_use entry_from_record(const sts_cache_record *r, int64_t now, sts_cache_entry *ce)
{
    sts_policy *p = NULL;
    sts_why why = { "" };

    memset(ce, 0, sizeof(*ce));
    if (r->expires_at <= now)
        return RECORD_EXPIRED;
    if (r->kind == STS_ENTRY_POLICY) {
        if (r->policy_text == NULL ||
            sts_policy_parse(r->policy_text, r->policy_len, &p, &why) != STS_OK)
            return RECORD_BAD;
        ce->pol = sts_polref_new(p);
        if (ce->pol == NULL)
            return RECORD_BAD;
    }
    ce->kind = r->kind;
    memcpy(ce->id, r->id, sizeof(ce->id));
    ce->fetched_at = r->fetched_at;
    ce->checked_at = r->checked_at;
    ce->expires_at = r->expires_at;
    ce->last_used = r->last_used;
    return RECORD_USABLE;
}

typedef struct load_ctx {
    sts_engine *e;
    int64_t now;
    size_t loaded, bad, expired;
} load_ctx;

static bool load_one(void *arg, const sts_cache_record *r)
{
    load_ctx *lc = arg;
    sts_cache_entry ce;
    sts_cache_evicted ev;

    switch (entry_from_record(r, lc->now, &ce)) {
    case RECORD_EXPIRED:
        lc->expired++;
        return true;
    case RECORD_BAD:
        lc->bad++;
        return true;
    case RECORD_USABLE:
        break;
    }
    /* The store is being iterated: it keeps what memory has no room for
     * (each record until the store prunes it at its expiry). */
    if (sts_cache_put(lc->e->cache, r->domain, &ce, &ev) == STS_OK)
        lc->loaded++;
    sts_polref_put(ce.pol);
    return true;
}

void sts_engine_rules_load(sts_engine *e)
{
    load_ctx lc = { e, engine_now(e), 0, 0, 0 };
    size_t skipped = 0;
    sts_why lwhy = { "" };

    if (sts_store_load(e->store, load_one, &lc, &skipped, &lwhy) != STS_OK)
        sts_log(STS_LOG_WARNING, "-", "cache-load",
                "backend=%s reason=\"%s\" starting with what was read",
                sts_store_backend(e->store), lwhy.text);
    sts_log(STS_LOG_INFO, "-", "cache-load",
            "backend=%s loaded=%zu expired=%zu undecodable=%zu", sts_store_backend(e->store),
            lc.loaded, lc.expired, lc.bad + skipped);
}

/* The store's record of domain as an entry in *ce (a policy reference
 * owned by it): true when it has one usable at now, last used now. */
static bool store_entry(sts_engine *e, const char *domain, int64_t now, sts_cache_entry *ce)
{
    sts_cache_record r;
    sts_why why = { "" };
    sts_status st;
    bool ok;

    memset(ce, 0, sizeof(*ce));
    if (e->store == NULL)
        return false;
    memset(&r, 0, sizeof(r));
    pthread_mutex_lock(&e->store_mu);
    st = sts_store_get(e->store, domain, &r, &why);
    if (st != STS_OK && st != STS_NOTFOUND)
        store_log_error(e, "get", &why); /* store_err_logged is guarded by store_mu */
    pthread_mutex_unlock(&e->store_mu);
    ok = st == STS_OK && entry_from_record(&r, now, ce) == RECORD_USABLE;
    sts_cache_record_clear(&r);
    ce->last_used = now; /* in use again */
    return ok;
}

/* Read-through: memory may have given the domain's policy up for room,
 * or another daemon sharing the store (Redis) may hold the domain.  A
 * usable record answers without any network. */
bool sts_engine_rules_read_store(sts_engine *e, const char *domain, bool fill, sts_answer *a)
{
    int64_t now = engine_now(e);
    sts_cache_entry ce;

    if (!store_entry(e, domain, now, &ce))
        return false;
    if (fill)
        (void)cache_put(e, domain, &ce, false);
    sts_engine_answer_from_entry(a, &ce);
    sts_polref_put(ce.pol);
    return true;
}

/* ------------------------------------------------------------------ outcomes */

static void entry_note_failure(sts_cache_entry *ce, const sts_outcome *o, int64_t now)
{
    ce->fail_at = now;
    ce->fail_result = o->result;
    ce->fail_rt = o->report_type;
    (void)snprintf(ce->fail_error, sizeof(ce->fail_error), "%s", o->error);
}

/* RFC 8461 5.1 rules: see the top of this file. */
bool sts_engine_rules_apply(sts_engine *e, sts_outcome *o, bool background, sts_answer *a)
{
    int64_t now = engine_now(e);
    sts_cache_entry old, ne;
    bool have_old, old_valid;

    memset(&old, 0, sizeof(old));
    memset(&ne, 0, sizeof(ne));
    have_old = sts_cache_get(e->cache, o->domain, now, &old);
    /* A re-check or refresh of a domain memory gave up for room while it
     * ran: its policy is in the store, and it is kept like any other. */
    if (!have_old && background) {
        have_old = store_entry(e, o->domain, now, &old);
        if (have_old && old.kind != STS_ENTRY_POLICY) {
            sts_cache_entry_release(&old);
            have_old = false;
        }
    }
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
            sts_engine_answer_from_entry(a, &ne);
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
            a->result = STS_RESULT_TEMPERROR;
            (void)snprintf(a->error, sizeof(a->error), "out of memory caching the policy");
        } else {
            sts_engine_answer_from_entry(a, &ne);
        }
        sts_polref_put(ne.pol);
        ne.pol = NULL;
    } else if (old_valid) {
        /* Keep the valid cached policy; remember why the attempt failed so
         * that answers and TLS reports can say so. */
        ne = old;
        entry_note_failure(&ne, o, now);
        (void)cache_put(e, o->domain, &ne, false);
        sts_engine_answer_from_entry(a, &ne);
    } else if (o->result == STS_RESULT_NONE) {
        ne.kind = STS_ENTRY_NOPOLICY;
        ne.checked_at = now;
        ne.expires_at = now + e->o.negative_ttl;
        ne.last_used = now;
        entry_note_failure(&ne, o, now);
        ne.fail_rt = STS_RT_NONE;
        (void)cache_put(e, o->domain, &ne, true);
        sts_engine_answer_from_entry(a, &ne);
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
        sts_engine_answer_from_entry(a, &ne);
    }
    if (have_old)
        sts_cache_entry_release(&old);
    return false;
}

/* ------------------------------------------------------------------ hits */

/* After a failed attempt, not again within retry_interval (3.3). */
bool sts_engine_rules_recheck_due(const sts_engine *e, const sts_cache_entry *ce, int64_t now)
{
    return ce->kind == STS_ENTRY_POLICY && now - ce->checked_at >= (int64_t)e->o.recheck_interval &&
           (ce->fail_at == 0 || now - ce->fail_at >= (int64_t)e->o.retry_interval);
}

/* True if some mx pattern is "*.": only those need the MX hosts (a
 * literal pattern names its host itself). */
static bool policy_has_wildcard(const sts_policy *p)
{
    for (size_t i = 0; i < p->n_mx; i++)
        if (p->mx[i][0] == '*')
            return true;
    return false;
}

/* Refresh now, unless the policy has no "*." pattern (nothing to expand),
 * a failed attempt was too recent (RFC 8461 3.3), or the policy came from
 * a discovery whose MX lookup failed less than retry_interval ago (no
 * fetch per request while a domain's DNS is broken). */
bool sts_engine_rules_lacks_mx(const sts_engine *e, const sts_cache_entry *ce, int64_t now,
                               unsigned flags)
{
    const char *const *hosts;
    size_t n;
    int64_t retry = (int64_t)e->o.retry_interval;

    return (flags & STS_LOOKUP_NEED_MX) != 0 && ce->kind == STS_ENTRY_POLICY && ce->pol != NULL &&
           policy_has_wildcard(sts_polref_policy(ce->pol)) && !sts_polref_mx(ce->pol, &hosts, &n) &&
           (!sts_polref_mx_tried(ce->pol) || now - ce->checked_at >= retry) &&
           (ce->fail_at == 0 || now - ce->fail_at >= retry);
}

/* ------------------------------------------------------------------ sweep */

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
    return (int64_t)(sts_engine_domain_hash(domain) % (uint64_t)(span + 1));
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

/* The store holds records memory has given up (policies, until they
 * expire): they leave it here, as long after expiry as memory keeps its
 * own expired entries. */
static void store_prune(sts_engine *e, int64_t now)
{
    sts_why why = { "" };

    if (e->store == NULL || now < e->next_prune)
        return;
    e->next_prune = now + ENGINE_PRUNE_INTERVAL;
    pthread_mutex_lock(&e->store_mu);
    if (sts_store_prune(e->store, now - ENGINE_EXPIRED_KEEP, &why) != STS_OK)
        store_log_error(e, "prune", &why);
    pthread_mutex_unlock(&e->store_mu);
}

void sts_engine_rules_sweep(sts_engine *e)
{
    sweep_ctx s;

    memset(&s, 0, sizeof(s));
    s.e = e;
    s.now = engine_now(e);
    store_prune(e, s.now);
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
            sts_engine_request_background(e, s.refresh[i], STS_DISCOVER_REFRESH, s.refresh_id[i]);
    }
    free(s.refresh);
    free(s.refresh_id);
    free(s.expired);
}

/* ------------------------------------------------------------------ admin */

static void purge_one(void *arg, const char *domain)
{
    sts_engine *e = arg;

    if (domain == NULL)
        sts_cache_clear(e->cache);
    else
        (void)sts_cache_remove(e->cache, domain);
    sts_log(STS_LOG_NOTICE, "-", "cache-purged", "domain=%s by=purge-log",
            domain != NULL ? domain : "*");
}

void sts_engine_rules_purges(sts_engine *e, bool init)
{
    sts_why why = { "" };
    sts_status st;

    if (e->store == NULL)
        return;
    pthread_mutex_lock(&e->store_mu);
    st = sts_store_purges_since(e->store, &e->purge_seq, init ? NULL : purge_one, e, &why);
    if (st != STS_OK)
        store_log_error(e, "purge-log", &why);
    pthread_mutex_unlock(&e->store_mu);
}

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
