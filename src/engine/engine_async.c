/*
 * engine_async.c - asynchronous lookups (sts_engine_lookup_async, see
 * engine.h), for servers that must not hold a thread per cold domain.
 * A lookup that has to wait becomes a waiter on its domain's flight and
 * in a deadline heap, under e->mu; the loop thread answers it when the
 * flight completes or the deadline passes, and runs the callbacks outside
 * the lock, one at a time.  The cache rules and coalescing are those of
 * the synchronous lookup (engine.c).
 */
#include "engine/engine_impl.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/buf.h"
#include "base/log.h"
#include "sts/discover.h"

#define ENGINE_LOOP_TICK_MS 1000

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
    int64_t deadline;             /* sts_mono_ms() */
    int timeout_ms;
    bool have_cached;             /* ce: the NEED_MX fallback (see lookup_state) */
    sts_cache_entry ce;
    sts_lookup_cb *cb;
    void *arg;
    sts_answer a;                 /* answered: what cb gets */
} waiter;

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
    sts_engine_lookup_finish_locked(e, &ls, w->timeout_ms, &w->a);
    w->rnext = NULL;
    if (e->ready_tail != NULL)
        e->ready_tail->rnext = w;
    else
        e->ready_head = w;
    e->ready_tail = w;
}

void sts_engine_async_flight_done_locked(sts_engine *e, flight *f)
{
    while (f->waiters != NULL)
        waiter_ready_locked(e, f->waiters);
}

/* Answer the waiters whose deadline has passed; the milliseconds until the
 * next deadline (at most a loop tick).  Under e->mu. */
static int waiters_expire_locked(sts_engine *e)
{
    int64_t now = sts_mono_ms(), left;

    while (e->nheap > 0 && e->heap[0]->deadline <= now)
        waiter_ready_locked(e, e->heap[0]);
    if (e->nheap == 0)
        return ENGINE_LOOP_TICK_MS;
    left = e->heap[0]->deadline - now;
    return left < ENGINE_LOOP_TICK_MS ? (int)left : ENGINE_LOOP_TICK_MS;
}

void sts_engine_async_fire(sts_engine *e)
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

int sts_engine_async_service(sts_engine *e)
{
    int wait;

    pthread_mutex_lock(&e->mu);
    wait = waiters_expire_locked(e);
    pthread_mutex_unlock(&e->mu);
    sts_engine_async_fire(e);
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
    st = sts_engine_lookup_begin(e, domain, timeout_ms, flags, out, &ls);
    if (st != STS_OK || ls.f == NULL)
        return st;
    if (timeout_ms <= 0) {
        sts_engine_lookup_finish_locked(e, &ls, 0, out);
        pthread_mutex_unlock(&e->mu);
        return STS_OK;
    }
    if (e->nwaiters >= e->o.max_waiters) {
        /* Like timeout 0: the discovery goes on and fills the cache. */
        uint64_t quiet = 0;
        bool warn = sts_engine_overload_note_locked(e, ls.now, &quiet);

        sts_engine_lookup_finish_locked(e, &ls, 0, out);
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
        sts_engine_lookup_finish_locked(e, &ls, 0, out);
        pthread_mutex_unlock(&e->mu);
        sts_answer_release(out);
        return STS_NOMEM;
    }
    w->f = ls.f;
    w->have_cached = ls.have_cached;
    w->ce = ls.ce;
    w->timeout_ms = timeout_ms;
    w->deadline = sts_mono_ms() + timeout_ms;
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
        sts_engine_lookup_finish_locked(e, &ls, w->timeout_ms, &w->a);
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
