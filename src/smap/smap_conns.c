/*
 * smap_conns.c - the socketmap server's connection table (smap_conns.h).
 *
 * A fixed array of slots, one per connection, so that a scan is a walk
 * through contiguous memory: at a few thousand connections, admitting one
 * (count its peer's, find the longest idle) takes microseconds.  A slot's
 * state and the time it began share one atomic word, so the table closes
 * a connection only if it is still in the very state it was seen in: an
 * owner that took it meanwhile (or made it idle again) wins, and the table
 * looks again.  The lock orders the table's changes against removal, so a
 * socket is shut down only while its owner has not closed it yet.
 */
#include "smap/smap_conns.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

enum { FREE = 0, BUSY, IDLE, WAITING, CLOSED };
#define STATE_BITS 3
#define STATE_MASK ((uint64_t)7)
#define WORD(state, since) (((uint64_t)(since) << STATE_BITS) | (uint64_t)(state))
#define STATE(w) ((unsigned)((w) & STATE_MASK))
#define SINCE(w) ((int64_t)((w) >> STATE_BITS))
#define ADMIT_TRIES 4 /* scans before giving up when owners keep taking the victims */

typedef struct slot {
    _Atomic uint64_t word; /* state and since */
    void *owner;
    sts_sockpeer peer;
} slot;

struct sts_smap_conns {
    pthread_mutex_t mu;
    sts_smap_conns_close_fn *close_fn;
    unsigned max;     /* live connections */
    unsigned cap;     /* slots: live and on their way out */
    unsigned hi;      /* slots at and above hi have never been used */
    unsigned nfree;
    unsigned used;    /* slots not FREE */
    unsigned closing; /* slots CLOSED */
    unsigned *free;   /* stack of free slot numbers */
    slot *slots;
};

sts_smap_conns *sts_smap_conns_new(unsigned max_conns, sts_smap_conns_close_fn *close_fn)
{
    sts_smap_conns *t;

    if (max_conns == 0 || max_conns > UINT32_MAX / 2 || (t = calloc(1, sizeof(*t))) == NULL)
        return NULL;
    pthread_mutex_init(&t->mu, NULL);
    t->max = max_conns;
    t->cap = 2 * max_conns;
    t->close_fn = close_fn;
    t->slots = calloc(t->cap, sizeof(*t->slots)); /* all zero: FREE */
    t->free = calloc(t->cap, sizeof(*t->free));
    if (t->slots == NULL || t->free == NULL) {
        sts_smap_conns_free(t);
        return NULL;
    }
    /* Lowest numbers on top: the used slots stay packed below hi. */
    for (unsigned i = 0; i < t->cap; i++)
        t->free[i] = t->cap - 1 - i;
    t->nfree = t->cap;
    return t;
}

void sts_smap_conns_free(sts_smap_conns *t)
{
    if (t == NULL)
        return;
    pthread_mutex_destroy(&t->mu);
    free(t->slots);
    free(t->free);
    free(t);
}

/* What one scan saw: the live connections and the longest idle, in all
 * and of the new connection's peer. */
typedef struct census {
    unsigned live, peer_live;
    int all_oldest, peer_oldest; /* slot numbers, -1 for none */
    uint64_t all_word, peer_word;
} census;

static void take_census(sts_smap_conns *t, const sts_sockpeer *peer, census *c)
{
    c->live = c->peer_live = 0;
    c->all_oldest = c->peer_oldest = -1;
    c->all_word = c->peer_word = 0;
    for (unsigned i = 0; i < t->hi; i++) {
        slot *s = &t->slots[i];
        uint64_t w = atomic_load(&s->word);
        bool same;

        if (STATE(w) == FREE || STATE(w) == CLOSED)
            continue;
        same = sts_sockpeer_same(peer, &s->peer);
        c->live++;
        c->peer_live += same;
        if (STATE(w) != IDLE)
            continue;
        if (c->all_oldest < 0 || SINCE(w) < SINCE(c->all_word)) {
            c->all_oldest = (int)i;
            c->all_word = w;
        }
        if (same && (c->peer_oldest < 0 || SINCE(w) < SINCE(c->peer_word))) {
            c->peer_oldest = (int)i;
            c->peer_word = w;
        }
    }
}

/* Close slot i if it still holds word w (CLOSED keeps its since). */
static bool evict(sts_smap_conns *t, int i, uint64_t w)
{
    slot *s = &t->slots[i];

    if (!atomic_compare_exchange_strong(&s->word, &w, WORD(CLOSED, SINCE(w))))
        return false;
    t->closing++;
    t->close_fn(s->owner);
    return true;
}

sts_smap_admit sts_smap_conns_admit(sts_smap_conns *t, const sts_sockpeer *peer, void *owner,
                                    unsigned max_per_peer, int64_t now, unsigned *slot_out)
{
    sts_smap_admit r = STS_SMAP_ADMITTED;
    census c;
    unsigned i;

    pthread_mutex_lock(&t->mu);
    /* Before any eviction: one that could not be followed by the
     * admission would close a connection for nothing. */
    if (t->nfree == 0) {
        r = STS_SMAP_NO_SLOT;
        goto out;
    }
    for (int tries = 0;; tries++) {
        bool per_peer;

        take_census(t, peer, &c);
        per_peer = max_per_peer > 0 && c.peer_live >= max_per_peer;
        if (!per_peer && c.live < t->max) {
            r = STS_SMAP_ADMITTED;
            break;
        }
        /* The peer's own first: a peer at its limit makes room among its
         * own connections, never among another's. */
        if (per_peer ? c.peer_oldest < 0 : c.all_oldest < 0) {
            r = per_peer ? STS_SMAP_REFUSED_PEER : STS_SMAP_REFUSED_FULL;
            goto out;
        }
        /* One eviction makes room under both limits: live never exceeds
         * max, so the peer's room is also a place in the table. */
        if (per_peer ? evict(t, c.peer_oldest, c.peer_word) : evict(t, c.all_oldest, c.all_word)) {
            r = per_peer ? STS_SMAP_ADMITTED_PEER : STS_SMAP_ADMITTED_FULL;
            break;
        }
        if (tries + 1 >= ADMIT_TRIES) {
            r = per_peer ? STS_SMAP_REFUSED_PEER : STS_SMAP_REFUSED_FULL;
            goto out;
        }
    }
    i = t->free[--t->nfree];
    if (i >= t->hi)
        t->hi = i + 1;
    t->used++;
    t->slots[i].owner = owner;
    t->slots[i].peer = *peer;
    atomic_store(&t->slots[i].word, WORD(IDLE, now));
    *slot_out = i;
out:
    pthread_mutex_unlock(&t->mu);
    return r;
}

bool sts_smap_conns_take(sts_smap_conns *t, unsigned i)
{
    _Atomic uint64_t *word = &t->slots[i].word;
    uint64_t w = atomic_load(word);

    for (;;) {
        if (STATE(w) == CLOSED)
            return false;
        if (STATE(w) == BUSY)
            return true;
        if (atomic_compare_exchange_weak(word, &w, WORD(BUSY, SINCE(w))))
            return true;
    }
}

void sts_smap_conns_idle(sts_smap_conns *t, unsigned i, int64_t now)
{
    atomic_store(&t->slots[i].word, WORD(IDLE, now));
}

void sts_smap_conns_wait(sts_smap_conns *t, unsigned i, int64_t since)
{
    atomic_store(&t->slots[i].word, WORD(WAITING, since));
}

void sts_smap_conns_remove(sts_smap_conns *t, unsigned i)
{
    slot *s = &t->slots[i];

    pthread_mutex_lock(&t->mu);
    if (STATE(atomic_load(&s->word)) == CLOSED)
        t->closing--;
    atomic_store(&s->word, WORD(FREE, 0));
    s->owner = NULL;
    t->used--;
    t->free[t->nfree++] = i;
    pthread_mutex_unlock(&t->mu);
}

void sts_smap_conns_sweep(sts_smap_conns *t, int64_t idle_for, int64_t wait_for, int64_t now,
                          unsigned *idle, unsigned *stalled)
{
    pthread_mutex_lock(&t->mu);
    for (unsigned i = 0; i < t->hi; i++) {
        uint64_t w = atomic_load(&t->slots[i].word);

        if (STATE(w) == IDLE && now - SINCE(w) >= idle_for && evict(t, (int)i, w))
            (*idle)++;
        else if (STATE(w) == WAITING && now - SINCE(w) >= wait_for && evict(t, (int)i, w))
            (*stalled)++;
    }
    pthread_mutex_unlock(&t->mu);
}

size_t sts_smap_conns_count(sts_smap_conns *t)
{
    size_t n;

    pthread_mutex_lock(&t->mu);
    n = t->used;
    pthread_mutex_unlock(&t->mu);
    return n;
}

void *sts_smap_conns_any(sts_smap_conns *t)
{
    void *owner = NULL;

    pthread_mutex_lock(&t->mu);
    for (unsigned i = 0; i < t->hi && owner == NULL; i++)
        if (STATE(atomic_load(&t->slots[i].word)) != FREE)
            owner = t->slots[i].owner;
    pthread_mutex_unlock(&t->mu);
    return owner;
}
