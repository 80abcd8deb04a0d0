/*
 * cache.c - in-memory policy table (see cache.h): chained hash table under
 * striped rwlocks, eviction by rank then approximate LRU over one list per
 * rank, reference-counted immutable policies so readers never hold a lock
 * while using one.
 */
#include "engine/cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_EVICT_WINDOW 8 /* entries of a rank compared per eviction */

struct sts_polref {
    atomic_uint refs;
    sts_policy *p;
    bool mx_known;
    bool mx_tried; /* made from a discovery (its MX lookup may have failed) */
    sts_dane_state dane;
    size_t n_mx;
    const char *mx[STS_OUTCOME_MAX_MX]; /* into names */
    char names[];                       /* the host names, NUL-separated */
};

sts_polref *sts_polref_new(sts_policy *p)
{
    sts_polref *r = malloc(sizeof(*r));

    if (r == NULL) {
        sts_policy_free(p);
        return NULL;
    }
    atomic_init(&r->refs, 1);
    r->p = p;
    r->mx_known = false;
    r->mx_tried = false;
    r->dane = STS_DANE_UNKNOWN;
    r->n_mx = 0;
    return r;
}

sts_polref *sts_polref_new_mx(sts_policy *p, const sts_outcome *o)
{
    size_t n = o->mx_known && o->n_mx <= STS_OUTCOME_MAX_MX ? o->n_mx : 0;
    size_t bytes = 0, off = 0;
    sts_polref *r;

    for (size_t i = 0; i < n; i++)
        bytes += strlen(o->mx_hosts[i]) + 1;
    /* One block: bytes <= STS_OUTCOME_MAX_MX * (STS_DOMAIN_MAX + 1). */
    r = malloc(sizeof(*r) + bytes);
    if (r == NULL) {
        sts_policy_free(p);
        return NULL;
    }
    atomic_init(&r->refs, 1);
    r->p = p;
    r->mx_known = o->mx_known;
    r->mx_tried = true;
    r->dane = o->dane;
    r->n_mx = n;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(o->mx_hosts[i]) + 1;

        memcpy(r->names + off, o->mx_hosts[i], len);
        r->mx[i] = r->names + off;
        off += len;
    }
    return r;
}

bool sts_polref_mx(const sts_polref *r, const char *const **hosts, size_t *n)
{
    *hosts = r->mx;
    *n = r->n_mx;
    return r->mx_known;
}

bool sts_polref_mx_tried(const sts_polref *r)
{
    return r->mx_tried;
}

sts_dane_state sts_polref_dane(const sts_polref *r)
{
    return r->dane;
}

bool sts_polref_mx_differs(const sts_polref *r, const sts_outcome *o)
{
    if (!o->mx_known)
        return false; /* nothing new learnt: keep what r has */
    if (!r->mx_known || r->dane != o->dane || r->n_mx != o->n_mx)
        return true;
    for (size_t i = 0; i < r->n_mx; i++)
        if (strcmp(r->mx[i], o->mx_hosts[i]) != 0)
            return true;
    return false;
}

sts_polref *sts_polref_get(sts_polref *r)
{
    if (r != NULL)
        atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
    return r;
}

void sts_polref_put(sts_polref *r)
{
    if (r == NULL)
        return;
    /* acq_rel: the last owner must see every write made through the others. */
    if (atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1) {
        sts_policy_free(r->p);
        free(r);
    }
}

const sts_policy *sts_polref_policy(const sts_polref *r)
{
    return r->p;
}

/* Eviction ranks, the lowest given up first (see cache.h). */
enum { RANK_NO_POLICY, RANK_NONE, RANK_TESTING, RANK_ENFORCE, RANK_COUNT };

/* Stored entry: the hot fields first; the failure text only when there is one. */
typedef struct node {
    struct node *next;
    uint64_t hash;
    struct node *oprev, *onext; /* its rank's list; under order_mu */
    bool listed;                /* on that list; false once chosen for eviction */
    unsigned char rank;         /* fixed when the node is made */
    sts_entry_kind kind;
    char id[STS_ID_MAX + 1];
    sts_polref *pol;
    int64_t fetched_at, checked_at, expires_at;
    _Atomic int64_t last_used; /* written by readers under the read lock */
    bool mx_mismatch;
    int64_t fail_at;
    sts_result fail_result;
    sts_report_type fail_rt;
    char *fail_error;          /* NULL when fail_at == 0 */
    char domain[];             /* flexible: exact size */
} node;

/* Lock striping: bucket b is guarded by stripes[b % CACHE_STRIPES], so
 * readers on different domains rarely share a lock's cache line. */
#define CACHE_STRIPES 64

typedef struct stripe {
    _Alignas(64) pthread_rwlock_t lock;
} stripe;

/* Locks: a bucket's stripe before order_mu, never the other way.  A node
 * in a bucket chain is on its rank's list unless an eviction has chosen
 * it, so "in the chain and not listed" names a chosen victim. */
struct sts_cache {
    stripe stripes[CACHE_STRIPES];
    node **buckets;
    size_t nbuckets; /* power of two, >= CACHE_STRIPES */
    atomic_size_t count;
    size_t max;
    pthread_mutex_t order_mu; /* the rank lists, in order of placement */
    node *ohead[RANK_COUNT], *otail[RANK_COUNT];
};

static pthread_rwlock_t *lock_of(sts_cache *c, size_t bucket)
{
    return &c->stripes[bucket % CACHE_STRIPES].lock;
}

static uint64_t hash_domain(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */

    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

sts_status sts_cache_new(size_t max_entries, sts_cache **out)
{
    sts_cache *c = NULL;
    size_t nb = 64;
    void *mem = NULL;

    *out = NULL;
    /* The lock stripes are cache-line aligned: so must the struct be. */
    if (posix_memalign(&mem, 64, sizeof(*c)) != 0)
        return STS_NOMEM;
    c = mem;
    memset(c, 0, sizeof(*c));
    if (max_entries == 0)
        max_entries = 1;
    /* Load factor <= 1 at the bound. */
    while (nb < max_entries && nb < ((size_t)1 << 30))
        nb <<= 1;
    c->buckets = calloc(nb, sizeof(*c->buckets));
    if (c->buckets == NULL) {
        free(c);
        return STS_NOMEM;
    }
    for (size_t i = 0; i < CACHE_STRIPES; i++)
        pthread_rwlock_init(&c->stripes[i].lock, NULL);
    pthread_mutex_init(&c->order_mu, NULL);
    atomic_init(&c->count, 0);
    c->nbuckets = nb;
    c->max = max_entries;
    *out = c;
    return STS_OK;
}

static void node_free(node *n)
{
    sts_polref_put(n->pol);
    free(n->fail_error);
    free(n);
}

/* Every stripe held (or the cache private to the caller). */
static void clear_locked(sts_cache *c)
{
    pthread_mutex_lock(&c->order_mu);
    memset(c->ohead, 0, sizeof(c->ohead));
    memset(c->otail, 0, sizeof(c->otail));
    pthread_mutex_unlock(&c->order_mu);
    for (size_t i = 0; i < c->nbuckets; i++) {
        node *n = c->buckets[i];

        while (n != NULL) {
            node *next = n->next;

            node_free(n);
            n = next;
        }
        c->buckets[i] = NULL;
    }
    atomic_store(&c->count, 0);
}

static void lock_all(sts_cache *c)
{
    for (size_t i = 0; i < CACHE_STRIPES; i++)
        pthread_rwlock_wrlock(&c->stripes[i].lock);
}

static void unlock_all(sts_cache *c)
{
    for (size_t i = 0; i < CACHE_STRIPES; i++)
        pthread_rwlock_unlock(&c->stripes[i].lock);
}

void sts_cache_free(sts_cache *c)
{
    if (c == NULL)
        return;
    clear_locked(c);
    for (size_t i = 0; i < CACHE_STRIPES; i++)
        pthread_rwlock_destroy(&c->stripes[i].lock);
    pthread_mutex_destroy(&c->order_mu);
    free(c->buckets);
    free(c);
}

static node **find_slot(sts_cache *c, const char *domain, uint64_t h)
{
    node **pp = &c->buckets[h & (c->nbuckets - 1)];

    for (; *pp != NULL; pp = &(*pp)->next)
        if ((*pp)->hash == h && strcmp((*pp)->domain, domain) == 0)
            return pp;
    return pp;
}

static void copy_out(const node *n, sts_cache_entry *out)
{
    out->kind = n->kind;
    memcpy(out->id, n->id, sizeof(out->id));
    out->pol = sts_polref_get(n->pol);
    out->fetched_at = n->fetched_at;
    out->checked_at = n->checked_at;
    out->expires_at = n->expires_at;
    out->last_used = atomic_load_explicit(&n->last_used, memory_order_relaxed);
    out->mx_mismatch = n->mx_mismatch;
    out->fail_at = n->fail_at;
    out->fail_result = n->fail_result;
    out->fail_rt = n->fail_rt;
    if (n->fail_error != NULL) {
        size_t len = strlen(n->fail_error);

        if (len >= sizeof(out->fail_error))
            len = sizeof(out->fail_error) - 1;
        memcpy(out->fail_error, n->fail_error, len);
        out->fail_error[len] = '\0';
    } else {
        out->fail_error[0] = '\0';
    }
}

bool sts_cache_get(sts_cache *c, const char *domain, int64_t now, sts_cache_entry *out)
{
    uint64_t h = hash_domain(domain);
    pthread_rwlock_t *lk = lock_of(c, (size_t)(h & (c->nbuckets - 1)));
    node *n;

    pthread_rwlock_rdlock(lk);
    n = *find_slot(c, domain, h);
    if (n != NULL) {
        /* Write only when the second changes: a store on every hit would
         * bounce the line between cores. */
        if (atomic_load_explicit(&n->last_used, memory_order_relaxed) != now)
            atomic_store_explicit(&n->last_used, now, memory_order_relaxed);
        copy_out(n, out);
    }
    pthread_rwlock_unlock(lk);
    return n != NULL;
}

void sts_cache_entry_release(sts_cache_entry *e)
{
    sts_polref_put(e->pol);
    e->pol = NULL;
}

/* ---- the rank lists, under order_mu */

static void order_append(sts_cache *c, node *n)
{
    n->onext = NULL;
    n->oprev = c->otail[n->rank];
    if (n->oprev != NULL)
        n->oprev->onext = n;
    else
        c->ohead[n->rank] = n;
    c->otail[n->rank] = n;
    n->listed = true;
}

static void order_unlink(sts_cache *c, node *n)
{
    if (!n->listed)
        return;
    if (n->oprev != NULL)
        n->oprev->onext = n->onext;
    else
        c->ohead[n->rank] = n->onext;
    if (n->onext != NULL)
        n->onext->oprev = n->oprev;
    else
        c->otail[n->rank] = n->oprev;
    n->oprev = n->onext = NULL;
    n->listed = false;
}

static int64_t used_at(const node *n)
{
    return atomic_load_explicit(&n->last_used, memory_order_relaxed);
}

/* Choose and unlist the victim: in the lowest rank present, the least
 * recently used of its first CACHE_EVICT_WINDOW entries other than keep
 * (keep itself when it is all its rank holds).  The others compared move
 * to the back of the list, so the next choice compares other entries:
 * every entry of a rank is looked at within a bounded number of
 * evictions, and one used since stays. */
static node *order_pick(sts_cache *c, const char *keep)
{
    for (int r = 0; r < RANK_COUNT; r++) {
        node *seen[CACHE_EVICT_WINDOW], *v = NULL, *self = NULL;
        size_t k = 0;

        for (node *n = c->ohead[r]; n != NULL && k < CACHE_EVICT_WINDOW; n = n->onext) {
            if (strcmp(n->domain, keep) == 0) {
                self = n;
                continue;
            }
            seen[k++] = n;
            if (v == NULL || used_at(n) < used_at(v))
                v = n;
        }
        if (v == NULL)
            v = self;
        if (v == NULL)
            continue;
        for (size_t i = 0; i < k; i++)
            if (seen[i] != v) {
                order_unlink(c, seen[i]);
                order_append(c, seen[i]);
            }
        order_unlink(c, v);
        return v;
    }
    return NULL;
}

/* Evict one entry (see order_pick).  The victim is chosen under order_mu,
 * then removed under its stripe if it is still the chosen one. */
static void evict_one(sts_cache *c, const char *keep, sts_cache_evicted *ev)
{
    char victim[STS_DOMAIN_MAX + 1];
    uint64_t vh = 0;
    node **pp, *v;
    pthread_rwlock_t *lk;

    victim[0] = '\0';
    pthread_mutex_lock(&c->order_mu);
    v = order_pick(c, keep);
    if (v != NULL) {
        /* Copied while order_mu keeps it alive: whoever frees a node
         * unlists it under order_mu first. */
        vh = v->hash;
        memcpy(victim, v->domain, strlen(v->domain) + 1);
    }
    pthread_mutex_unlock(&c->order_mu);
    if (victim[0] == '\0')
        return;
    lk = lock_of(c, (size_t)(vh & (c->nbuckets - 1)));
    pthread_rwlock_wrlock(lk);
    pp = find_slot(c, victim, vh);
    v = *pp;
    if (v != NULL) {
        pthread_mutex_lock(&c->order_mu);
        if (v->listed)
            v = NULL; /* replaced meanwhile by a listed entry: not ours to drop */
        pthread_mutex_unlock(&c->order_mu);
    }
    if (v != NULL) {
        *pp = v->next;
        atomic_fetch_sub(&c->count, 1);
    }
    pthread_rwlock_unlock(lk);
    if (v != NULL) {
        memcpy(ev->domain, victim, strlen(victim) + 1);
        ev->kind = v->kind;
        node_free(v);
    }
}

static int entry_rank(const sts_cache_entry *e)
{
    if (e->kind != STS_ENTRY_POLICY || e->pol == NULL)
        return RANK_NO_POLICY;
    switch (sts_polref_policy(e->pol)->mode) {
    case STS_MODE_ENFORCE:
        return RANK_ENFORCE;
    case STS_MODE_TESTING:
        return RANK_TESTING;
    case STS_MODE_NONE:
        break;
    }
    return RANK_NONE;
}

sts_status sts_cache_put(sts_cache *c, const char *domain, const sts_cache_entry *e,
                         sts_cache_evicted *evicted)
{
    size_t len = strlen(domain);
    uint64_t h = hash_domain(domain);
    node *n = malloc(sizeof(*n) + len + 1);
    node **pp, *old;
    pthread_rwlock_t *lk;

    evicted->domain[0] = '\0';
    evicted->kind = 0;
    if (n == NULL)
        return STS_NOMEM;
    n->next = NULL;
    n->hash = h;
    n->oprev = n->onext = NULL;
    n->listed = false;
    n->rank = (unsigned char)entry_rank(e);
    n->kind = e->kind;
    memcpy(n->id, e->id, sizeof(n->id));
    n->pol = e->pol;
    n->fetched_at = e->fetched_at;
    n->checked_at = e->checked_at;
    n->expires_at = e->expires_at;
    atomic_init(&n->last_used, e->last_used);
    n->mx_mismatch = e->mx_mismatch;
    n->fail_at = e->fail_at;
    n->fail_result = e->fail_result;
    n->fail_rt = e->fail_rt;
    n->fail_error = NULL;
    if (e->fail_at != 0 && e->fail_error[0] != '\0' && (n->fail_error = strdup(e->fail_error)) == NULL) {
        free(n);
        return STS_NOMEM;
    }
    memcpy(n->domain, domain, len + 1);
    sts_polref_get(n->pol);

    lk = lock_of(c, (size_t)(h & (c->nbuckets - 1)));
    pthread_rwlock_wrlock(lk);
    pp = find_slot(c, domain, h);
    old = *pp;
    if (old != NULL) {
        n->next = old->next;
        /* Keep the recency the readers recorded on the old node. */
        if (atomic_load_explicit(&old->last_used, memory_order_relaxed) > e->last_used)
            atomic_store_explicit(&n->last_used,
                                  atomic_load_explicit(&old->last_used, memory_order_relaxed),
                                  memory_order_relaxed);
    }
    *pp = n;
    pthread_mutex_lock(&c->order_mu);
    if (old != NULL)
        order_unlink(c, old);
    order_append(c, n);
    pthread_mutex_unlock(&c->order_mu);
    pthread_rwlock_unlock(lk);
    if (old != NULL)
        node_free(old);
    else if (atomic_fetch_add(&c->count, 1) + 1 > c->max)
        evict_one(c, domain, evicted);
    return STS_OK;
}

bool sts_cache_remove(sts_cache *c, const char *domain)
{
    uint64_t h = hash_domain(domain);
    pthread_rwlock_t *lk = lock_of(c, (size_t)(h & (c->nbuckets - 1)));
    node **pp, *n;

    pthread_rwlock_wrlock(lk);
    pp = find_slot(c, domain, h);
    n = *pp;
    if (n != NULL) {
        *pp = n->next;
        atomic_fetch_sub(&c->count, 1);
        pthread_mutex_lock(&c->order_mu);
        order_unlink(c, n);
        pthread_mutex_unlock(&c->order_mu);
    }
    pthread_rwlock_unlock(lk);
    if (n != NULL)
        node_free(n);
    return n != NULL;
}

void sts_cache_clear(sts_cache *c)
{
    lock_all(c);
    clear_locked(c);
    unlock_all(c);
}

size_t sts_cache_count(sts_cache *c)
{
    return atomic_load(&c->count);
}

void sts_cache_each(sts_cache *c, sts_cache_each_cb *cb, void *arg)
{
    sts_cache_entry e;
    bool go = true;

    /* One bucket at a time under its stripe: writers are never held up
     * for a whole sweep. */
    for (size_t i = 0; go && i < c->nbuckets; i++) {
        pthread_rwlock_t *lk = lock_of(c, i);

        pthread_rwlock_rdlock(lk);
        for (node *n = c->buckets[i]; go && n != NULL; n = n->next) {
            copy_out(n, &e);
            go = cb(arg, n->domain, &e);
            sts_cache_entry_release(&e);
        }
        pthread_rwlock_unlock(lk);
    }
}
