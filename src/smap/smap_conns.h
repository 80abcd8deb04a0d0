/*
 * smap_conns.h - the socketmap server's connection table: how many
 * connections it keeps and from whom, which one makes room when a limit is
 * reached, and which have been quiet too long.  A flood of idle
 * connections must not lock the MTA out (issue 15): at a limit the
 * longest-idle connection goes, never one with a request in progress.
 *
 * Each connection is in one state, which its owner (the thread serving
 * it) sets without a lock, and which the table changes only from IDLE or
 * WAITING to CLOSED, under its lock:
 *   BUSY     its owner is at work on it (reading, answering, a lookup
 *            parked): never closed from here;
 *   IDLE     nothing pending, waiting for the next request: closed after
 *            the idle timeout, and the first to go at a limit;
 *   WAITING  part of a request received, or replies not yet read by the
 *            peer: closed after the request timeout, never to make room;
 *   CLOSED   chosen to go: close_fn has shut its socket down, and its
 *            owner removes it at its next event.
 * Times are passed in (the tests inject them): any monotonic clock, in
 * one unit for all the calls on a table (the daemon: microseconds, so that
 * a flood's connections, accepted microseconds apart, have an order).
 */
#ifndef STS_SMAP_CONNS_H
#define STS_SMAP_CONNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/sockpeer.h"

typedef struct sts_smap_conns sts_smap_conns;

/* Called with the table's lock held for a connection chosen to go: make
 * its owner see an event (shutdown(2) its socket) and touch nothing else.
 * The socket is still open: its owner removes the connection from the
 * table, under the same lock, before closing it. */
typedef void sts_smap_conns_close_fn(void *owner);

/* A table for at most max_conns live connections (and as many again on
 * their way out).  NULL on out of memory. */
sts_smap_conns *sts_smap_conns_new(unsigned max_conns, sts_smap_conns_close_fn *close_fn);
void sts_smap_conns_free(sts_smap_conns *t);

typedef enum sts_smap_admit {
    STS_SMAP_ADMITTED,
    STS_SMAP_ADMITTED_PEER, /* the peer was at its limit: its longest-idle connection went */
    STS_SMAP_ADMITTED_FULL, /* the table was full: the longest-idle connection went */
    STS_SMAP_REFUSED_PEER,  /* the peer at its limit, none of its connections idle */
    STS_SMAP_REFUSED_FULL,  /* full, no connection idle */
    STS_SMAP_NO_SLOT,       /* as many on their way out as live: nothing changed, try
                               again once their owners have removed some */
} sts_smap_admit;

/* Take a new connection of peer into the table, IDLE since now; owner is
 * what close_fn gets.  max_per_peer: most live connections of one told
 * peer (sts_sockpeer_same), 0 for no such limit.  When admitted, *slot
 * names it in the calls below.  Any thread. */
sts_smap_admit sts_smap_conns_admit(sts_smap_conns *t, const sts_sockpeer *peer, void *owner,
                                    unsigned max_per_peer, int64_t now, unsigned *slot);

/* The owner's calls, without the lock.  take: on each event, before
 * touching the connection; false when it was CLOSED from here (remove and
 * free it), else it is BUSY.  idle / wait: before handing it back to be
 * woken again, IDLE since now, or WAITING since its last progress. */
bool sts_smap_conns_take(sts_smap_conns *t, unsigned slot);
void sts_smap_conns_idle(sts_smap_conns *t, unsigned slot, int64_t now);
void sts_smap_conns_wait(sts_smap_conns *t, unsigned slot, int64_t since);

/* The owner, before closing the connection's socket. */
void sts_smap_conns_remove(sts_smap_conns *t, unsigned slot);

/* Close (close_fn) every IDLE connection idle for idle_for or more and
 * every WAITING one waiting for wait_for or more; the numbers of each are
 * added to *idle and *stalled. */
void sts_smap_conns_sweep(sts_smap_conns *t, int64_t idle_for, int64_t wait_for, int64_t now,
                          unsigned *idle, unsigned *stalled);

/* Connections in the table, those on their way out included. */
size_t sts_smap_conns_count(sts_smap_conns *t);

/* At stop, when nothing else uses the table: the owner of some connection
 * still in it, NULL when it is empty. */
void *sts_smap_conns_any(sts_smap_conns *t);

#endif
