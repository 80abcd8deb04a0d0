/*
 * socketmap.c - the socketmap listener: one acceptor thread and a few
 * workers (half the CPUs, at least one: waking a sleeping thread costs
 * more than a cache hit) sharing an epoll set with EPOLLONESHOT, so each
 * connection is served by one worker at a time and its pipelined requests
 * are answered in order; a worker takes up to SM_BATCH ready connections
 * per wake-up.  No worker ever waits for the network: a cache hit is
 * answered at once, and a cold domain parks its connection on an
 * asynchronous engine lookup (sts_engine_lookup_async) while the worker
 * moves on, so every other connection is served meanwhile, however many
 * domains are cold.  The lookup's callback, on the engine's loop thread,
 * writes the reply and re-arms the connection; a worker then sends it and
 * answers the requests behind it.  Bounded: request size, connection
 * buffers, and (in the engine) waiting lookups.
 *
 * Connections are bounded too, without letting idle ones lock the MTA out
 * (issue 15): the acceptor admits each into a table (smap/smap_conns.h)
 * that counts them in all (SocketmapMaxConnections) and per peer, a user
 * of this host or a remote address (SocketmapMaxPerPeer); at a limit the
 * longest-idle connection (of that peer, or in all) is shut down to make
 * room, never one with a request in progress, and a warning says so once
 * a second.  The acceptor also closes connections idle for
 * SocketmapIdleTimeout, longer than Postfix keeps its own (10 s idle, 100 s
 * in all), and those stalled mid-request or not reading their replies for
 * SocketmapRequestTimeout.  It only shuts a socket down (under the table's
 * lock, so the socket is still open): the worker that gets the resulting
 * event sees the connection CLOSED and frees it, so ownership below holds.
 *
 * Ownership of a connection, the invariant that makes it race-free
 * without a lock per connection: at any time exactly one of
 *   ARMED   the epoll set (EPOLLONESHOT: nobody touches it until an event),
 *   SERVING the worker that took its event,
 *   PARKED  its pending engine lookup (the callback),
 * owns it, and only the owner reads or writes it (but for its entry in
 * the connection table, which the table may turn from IDLE or WAITING to
 * CLOSED, under its lock).  SERVING -> ARMED and
 * PARKED -> ARMED by epoll_ctl(MOD); ARMED -> SERVING by epoll_wait;
 * SERVING -> PARKED when sts_engine_lookup_async() parks (the worker
 * touches nothing of it afterwards: the callback may already run);
 * SERVING or PARKED -> freed by conn_free() in the owner (a peer that
 * closes while PARKED is seen once the reply is written and re-armed).
 * At stop, once the workers are joined and the parked lookups answered
 * (sts_engine_lookup_cancel runs their callbacks in the closer's thread,
 * after waiting for one in progress), the closer owns every connection
 * left in the list and frees each exactly once.
 */
#include "buildconf.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/sockpeer.h"
#include "base/sockspec.h"
#include "probes.h"
#include "runtime.h"
#include "smap/netstring.h"
#include "metrics.h"
#include "smap/smap.h"
#include "smap/smap_conns.h"
#include "socketmap.h"

#define SM_MAX_WORKERS 8
#define SM_MAX_REQUEST 1024      /* payload bytes: "name key" */
#define SM_MAX_INBUF 8192        /* unparsed bytes per connection */
#define SM_MAX_OUTBUF 65536      /* unsent replies per connection */
#define SM_MAX_REPLY 16384       /* one reply payload (TLSRPT attributes make it long) */
#define SM_OUT_HIGH (SM_MAX_OUTBUF - SM_MAX_REPLY - 16) /* no new request above this:
                                                           room for one framed reply */
#define SM_BATCH 32              /* ready connections taken per epoll_wait */
#define SM_ACCEPT_BATCH 64       /* connections accepted between two looks at the clock */
#define SM_SLOT_WAIT_MS 1000     /* most a newcomer waits for the workers to free a slot */
#define SM_NOTED_MAX 256         /* (event, domain, policy id) keys remembered as logged */
#define SM_NOTED_KEY (2 + STS_DOMAIN_MAX + 1 + STS_ID_MAX + 1)

typedef struct conn {
    mt_socketmap *sm;
    int fd;
    unsigned slot;    /* in sm->table */
    int64_t progress; /* us: last request received whole, replies drained, or
                         nothing pending: WAITING counts from here */
    sts_buf in;
    sts_buf out;
    size_t out_off;
    bool closing; /* close once out is sent */
    bool eof;     /* the client has closed its side */
    /* The request being answered; while PARKED, what the callback needs. */
    char domain[STS_DOMAIN_MAX + 1];
    const sts_smap_profile *wait_p; /* in wait_rt */
    mt_runtime *wait_rt;            /* PARKED: a runtime reference it owns */
    /* For the metrics: the request's profile name and when it came. */
    char m_profile[STS_METRIC_LABEL_MAX + 1];
    int64_t m_start_us;
} conn;

struct mt_socketmap {
    int lfd;
    int epfd;
    int wakefd; /* eventfd: tells workers and the acceptor to stop */
    char *spec;
    char unix_path[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* "" for inet */
    sts_engine *engine;
    pthread_t acceptor;
    pthread_t workers[SM_MAX_WORKERS];
    int nworkers;
    bool acceptor_started;
    atomic_bool stopping;
    sts_smap_conns *table; /* every open connection */
    sts_buf cb_reply; /* the callbacks' reply buffer (the engine runs them one at a time) */
    /* The acceptor's own. */
    sts_sockpeer_finder finder;
    bool said_peer_unknown;
    unsigned max_conns;
    /* The policies whose left-out mx patterns were logged: a ring of
     * "event domain id" keys, under noted_mu (workers and the loop thread). */
    pthread_mutex_t noted_mu;
    char noted[SM_NOTED_MAX][SM_NOTED_KEY];
    size_t noted_next;
};

/* Per worker: the settings snapshot it answers with, re-taken only when a
 * reload has installed another (no lock per request), and the reply
 * buffer, reused by every request (no allocation per request). */
typedef struct worker_state {
    mt_runtime *rt;
    unsigned gen;
    sts_buf reply;
} worker_state;

static _Thread_local worker_state my_state;

static mt_runtime *current_runtime(void)
{
    worker_state *w = &my_state;
    /* Read before acquiring: a reload in between makes the next call
     * acquire again, never keeps an old snapshot. */
    unsigned gen = mt_runtime_generation();

    if (w->rt == NULL || gen != w->gen) {
        if (w->rt != NULL)
            mt_runtime_release(w->rt);
        w->rt = mt_runtime_acquire();
        w->gen = gen;
    }
    if (w->reply.max == 0)
        sts_buf_init(&w->reply, SM_MAX_REPLY);
    return w->rt;
}

static void worker_state_free(void)
{
    if (my_state.rt != NULL)
        mt_runtime_release(my_state.rt);
    my_state.rt = NULL;
    sts_buf_free(&my_state.reply);
}

/* A stale socket of an earlier run is removed; anything else at the path
 * is left alone (the bind then fails). */
static sts_status remove_stale(const char *path, sts_why *why)
{
    struct stat sb;

    if (lstat(path, &sb) != 0)
        return STS_OK;
    if (!S_ISSOCK(sb.st_mode)) {
        sts_why_set(why, "socketmap socket %s: something other than a socket is there: "
                    "not removed", path);
        return STS_PERMFAIL;
    }
    (void)unlink(path); /* a name swapped since: only that name goes */
    return STS_OK;
}

/* inet:PORT@HOST, inet6:PORT@HOST, unix:PATH / local:PATH (as for the
 * milter).  A unix socket is made under the caller's effective ids with
 * its mode (SocketMode) from the umask at bind(): nothing is changed by
 * path later. */
sts_status mt_socketmap_open(const char *spec, unsigned mode, mt_socketmap **out, sts_why *why)
{
    mt_socketmap *sm = calloc(1, sizeof(*sm));
    struct sockaddr_storage ss;
    socklen_t sl = 0;
    mode_t old_mask;
    int one = 1, fam, rc;

    *out = NULL;
    if (sm == NULL || (sm->spec = strdup(spec)) == NULL) {
        free(sm);
        sts_why_set(why, "out of memory");
        return STS_NOMEM;
    }
    sm->lfd = sm->epfd = sm->wakefd = -1;
    pthread_mutex_init(&sm->noted_mu, NULL);
    if (sts_sockspec_parse(spec, &ss, &sl, why) != STS_OK)
        goto fail;
    fam = ss.ss_family;
    if (fam == AF_UNIX) {
        /* sun_path is NUL-terminated by sts_sockspec_parse and the same size. */
        memcpy(sm->unix_path, ((struct sockaddr_un *)&ss)->sun_path, sizeof(sm->unix_path));
        if (remove_stale(sm->unix_path, why) != STS_OK)
            goto fail;
    }
    /* Non-blocking: the acceptor polls it beside its clock. */
    sm->lfd = socket(fam, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (sm->lfd < 0)
        goto syserr;
    if (fam != AF_UNIX)
        (void)setsockopt(sm->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    /* SocketMode: who may ask is the socket group's business. */
    old_mask = umask((mode_t)(~mode & 0777));
    rc = bind(sm->lfd, (struct sockaddr *)&ss, sl);
    (void)umask(old_mask);
    if (rc != 0 || listen(sm->lfd, 1024) != 0)
        goto syserr;
    *out = sm;
    return STS_OK;
syserr:
    sts_why_set(why, "socketmap socket %s: %s", spec, strerror(errno));
fail:
    if (sm->lfd >= 0)
        (void)close(sm->lfd);
    pthread_mutex_destroy(&sm->noted_mu);
    free(sm->spec);
    free(sm);
    return STS_PERMFAIL;
}

static int64_t now_us(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Out of the table first: from then on the table never touches its socket. */
static void conn_free(mt_socketmap *sm, conn *c)
{
    sts_smap_conns_remove(sm->table, c->slot);
    (void)epoll_ctl(sm->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    (void)close(c->fd);
    sts_buf_free(&c->in);
    sts_buf_free(&c->out);
    if (c->wait_rt != NULL)
        mt_runtime_release(c->wait_rt); /* parked when the daemon stopped */
    free(c);
}

/* The table's close_fn, under its lock: the EPOLLHUP this raises hands
 * the connection to a worker, which finds it CLOSED and frees it. */
static void conn_shut(void *owner)
{
    const conn *c = owner;

    (void)shutdown(c->fd, SHUT_RDWR);
}

/* Before handing c back to epoll: idle, or waiting for its peer since its
 * last progress (a request half received, or replies not read yet). */
static void conn_rest(mt_socketmap *sm, conn *c)
{
    if (c->in.len > 0 || c->out.len > 0)
        sts_smap_conns_wait(sm->table, c->slot, c->progress);
    else
        sts_smap_conns_idle(sm->table, c->slot, now_us());
}

/* Send what can be sent now; -1 on a dead peer. */
static int flush_out(conn *c)
{
    while (c->out_off < c->out.len) {
        ssize_t w = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);

        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            if (errno == EINTR)
                continue;
            return -1;
        }
        c->out_off += (size_t)w;
    }
    if (c->out.len > 0)
        c->progress = now_us(); /* the peer has read every reply */
    sts_buf_reset(&c->out);
    c->out_off = 0;
    return 0;
}

/* What to wait for next: more requests only while replies are flowing. */
static uint32_t interest(const conn *c)
{
    uint32_t ev = EPOLLONESHOT;

    if (c->out.len > 0)
        ev |= EPOLLOUT;
    if (!c->closing && !c->eof && c->out.len < SM_OUT_HIGH)
        ev |= EPOLLIN | EPOLLRDHUP;
    return ev;
}

/* Frame a reply payload (st: how making it went) into c->out.  False when
 * the output is full: the client does not read its answers. */
static bool send_reply(conn *c, sts_buf *reply, sts_status st)
{
    if (st != STS_OK) {
        /* Over SM_MAX_REPLY (thousands of mx patterns) cannot be framed. */
        sts_buf_reset(reply);
        st = sts_buf_append_str(reply, "TEMP reply too long");
    }
    if (st == STS_OK)
        mt_metrics_smap_reply(c->m_profile, reply->data, reply->len,
                              (double)(now_us() - c->m_start_us) / 1e6);
    return st == STS_OK && sts_netstring_append(&c->out, reply->data, reply->len) == STS_OK;
}

/* True the first time (domain, policy id, event) is seen lately: the
 * last SM_NOTED_MAX keys logged are remembered, so a busy domain logs
 * once and one that comes back after many others logs again. */
static bool first_note(mt_socketmap *sm, const char *domain, const sts_answer *a, char event)
{
    char key[SM_NOTED_KEY];
    bool seen = false;

    (void)snprintf(key, sizeof(key), "%c %s %s", event, domain, a->id);
    pthread_mutex_lock(&sm->noted_mu);
    for (size_t i = 0; i < SM_NOTED_MAX && !seen; i++)
        seen = strcmp(sm->noted[i], key) == 0;
    if (!seen) {
        memcpy(sm->noted[sm->noted_next], key, strlen(key) + 1);
        sm->noted_next = (sm->noted_next + 1) % SM_NOTED_MAX;
    }
    pthread_mutex_unlock(&sm->noted_mu);
    return !seen;
}

/* Say what a reply left out of its match= list and why (smap.h), once
 * per domain, policy id and reason, not per request. */
static void note_dropped(mt_socketmap *sm, const char *domain, const sts_answer *a,
                         const sts_smap_dropped *d)
{
    char words[STS_SMAP_DROPPED_TEXT];
    const char *id = a->id[0] != '\0' ? a->id : "-";

    if (d->keywords != 0 && first_note(sm, domain, a, 'k'))
        sts_log(STS_LOG_WARNING, "-", "socketmap-mx-dropped",
                "domain=%s id=%s dropped=%s left=%zu reason=\"Postfix reads these mx patterns "
                "as match= keywords, not host names%s\"",
                domain, id, sts_smap_dropped_text(d->keywords, ",", words), d->left,
                d->left == 0 ? ": no MX host is left, mail is deferred" : "");
    /* match=exact without the MX hosts (their lookup failed, or a policy
     * read back from the store could not be completed within the budget):
     * a "*." pattern cannot be narrowed to one label, and writing it as
     * Postfix's ".d" would allow any depth (RFC 8461 4.1).  The literal
     * names are answered; with none, the mail waits (TEMP). */
    if (d->exact && d->wild_unexpanded > 0 && first_note(sm, domain, a, 'u'))
        sts_log(STS_LOG_WARNING, "-", "socketmap-mx-unknown",
                "domain=%s id=%s unexpanded=%zu left=%zu reason=\"MX hosts not known "
                "(match=exact): *. patterns cannot be limited to one label%s\"",
                domain, id, d->wild_unexpanded, d->left,
                d->left == 0 ? ", no MX host can be named: mail is deferred until they are known"
                             : ", only the policy's literal mx names are allowed meanwhile");
    /* match=exact and no MX host the DNS lists matches the policy: none
     * may be used (RFC 8461 4.1, 5), so the mail waits for the domain to
     * fix its MX records or its policy (the engine re-checks both). */
    if (d->exact && d->left == 0 && d->wild_unexpanded == 0 && d->keywords == 0 &&
        first_note(sm, domain, a, 'n'))
        sts_log(STS_LOG_WARNING, "-", "socketmap-mx-not-allowed",
                "domain=%s id=%s mx_hosts=%zu reason=\"none of the domain's MX hosts matches "
                "its MTA-STS policy (RFC 8461 4.1): mail is deferred\"",
                domain, id, a->n_mx);
}

/* The reply payload for an engine answer (reply reset by the caller),
 * with the settings of rt (its SiteTLSPolicyFile). */
static sts_status make_reply(mt_socketmap *sm, const mt_runtime *rt, const sts_smap_profile *p,
                             const char *domain, const sts_answer *a, sts_buf *reply)
{
    sts_smap_dropped d;
    const sts_site_rule *site = sts_site_find(rt->site, domain);
    sts_status st = sts_smap_reply(p, domain, a, site, reply, &d);

    note_dropped(sm, domain, a, &d);
    /* Once per domain (and policy id): which line of the site file made
     * the answer, and what the domain's own MTA-STS state was. */
    if (d.site && first_note(sm, domain, a, 's'))
        sts_log(STS_LOG_INFO, "-", "socketmap-site-policy",
                "domain=%s level=%s entry=%s line=%u mtasts=%s reason=\"%s\"", domain,
                sts_site_level_name(site->level), site->key, site->line,
                sts_result_name(a->result),
                a->result == STS_RESULT_POLICY
                    ? "SiteTLSPolicyFile asks more than the domain's MTA-STS policy"
                    : "SiteTLSPolicyFile level for a domain without a usable MTA-STS policy");
    mt_probes_note(domain, a); /* the MTA delivers under this answer now */
    return st;
}

/* The answer to a parked request, on the engine's loop thread (at stop:
 * the closer's); the connection is PARKED, so this is its only user.
 * Reply, then hand it back to the workers (EPOLLOUT is set: there is a
 * reply to send), which also answer the requests queued behind it. */
static void on_answer(void *arg, const sts_answer *a)
{
    conn *c = arg;
    mt_socketmap *sm = c->sm;
    sts_buf *reply = &sm->cb_reply;
    struct epoll_event ev;

    sts_buf_reset(reply);
    mt_metrics_answer(a->result, a->from_cache, a->pending);
    if (!send_reply(c, reply, make_reply(sm, c->wait_rt, c->wait_p, c->domain, a, reply)))
        c->closing = true;
    mt_runtime_release(c->wait_rt);
    c->wait_rt = NULL;
    c->wait_p = NULL;
    c->progress = now_us();
    conn_rest(sm, c);
    ev.events = interest(c);
    ev.data.ptr = c;
    if (epoll_ctl(sm->epfd, EPOLL_CTL_MOD, c->fd, &ev) != 0)
        conn_free(sm, c);
}

typedef enum req_result {
    REQ_ANSWERED, /* a reply is in c->out */
    REQ_CLOSE,    /* malformed or output full: close once out is sent */
    REQ_PARKED,   /* the engine's callback owns c now: do not touch it */
} req_result;

/* Answer one request payload (not in c->in) into c->out. */
static req_result answer(mt_socketmap *sm, conn *c, sts_cur req)
{
    sts_cur name, key;
    char *domain = c->domain;
    char shown[4 * STS_SMAP_NAME_MAX + 8];
    const sts_smap_profile *p;
    sts_why why = { "" };
    sts_answer a;
    mt_runtime *rt = current_runtime();
    sts_buf *reply = &my_state.reply;
    unsigned flags;
    sts_status st;
    bool ok = true, parked;

    sts_buf_reset(reply);
    c->m_start_us = now_us();
    (void)snprintf(c->m_profile, sizeof(c->m_profile), "none");
    if (!sts_smap_split(req, &name, &key)) {
        st = sts_buf_append_str(reply, "PERM request is not \"name key\"");
        ok = false;
        goto send;
    }
    /* An unknown map is refused like a table that does not exist, so a
     * typo in main.cf defers mail visibly instead of answering with some
     * other profile's kind of result. */
    p = sts_smap_profiles_find(rt->profiles, name.p, name.len);
    /* Profile names are at most STS_SMAP_NAME_MAX bytes; a label keeps
     * the first STS_METRIC_LABEL_MAX of them. */
    (void)snprintf(c->m_profile, sizeof(c->m_profile), "%.*s", STS_METRIC_LABEL_MAX,
                   p != NULL ? p->name : "unknown");
    if (p == NULL) {
        st = sts_buf_printf(reply, "PERM unknown map '%s'",
                            sts_quote(shown, sizeof(shown), name.p, name.len));
        goto send;
    }
    switch (sts_smap_key_domain(key, domain, &why)) {
    case STS_OK:
        break;
    case STS_NOTFOUND:
        st = sts_buf_append_str(reply, "NOTFOUND ");
        goto send;
    default:
        /* A key that cannot be a domain name (e.g. "under_score.test")
         * cannot have a policy: mta-sts.D needs a WebPKI certificate.
         * PERM would make Postfix defer mail it can deliver as usual. */
        sts_log(STS_LOG_INFO, "-", "socketmap-not-a-domain", "key=\"%s\" reason=\"%s\"",
                sts_quote(shown, sizeof(shown), key.p, key.len), why.text);
        st = sts_buf_append_str(reply, "NOTFOUND ");
        goto send;
    }
    if (mt_runtime_is_local(rt, domain)) {
        st = sts_buf_append_str(reply, "NOTFOUND "); /* LocalDomains: never looked up */
        goto send;
    }
    flags = sts_smap_lookup_flags(p);
    /* Replies already made go out now, not after a cold lookup (parked,
     * c is not ours to flush).  Only pipelining clients have any here. */
    if (c->out.len > 0 && flush_out(c) != 0)
        return REQ_CLOSE;
    /* Everything the callback needs is in place before the call: it may
     * run before the call returns.  If parked, the callback takes this
     * worker's runtime reference over; the worker takes a new one for its
     * next request. */
    c->wait_p = p;
    c->wait_rt = rt;
    st = sts_engine_lookup_async(sm->engine, domain, (int)p->budget_ms, flags, on_answer, c, &a,
                                 &parked);
    if (st == STS_OK && parked) {
        my_state.rt = NULL;
        return REQ_PARKED;
    }
    c->wait_p = NULL;
    c->wait_rt = NULL;
    if (st != STS_OK) {
        st = sts_buf_append_str(reply, "TEMP out of memory");
        goto send;
    }
    mt_metrics_answer(a.result, a.from_cache, a.pending);
    st = make_reply(sm, rt, p, domain, &a, reply);
    sts_answer_release(&a);
send:
    return send_reply(c, reply, st) && ok ? REQ_ANSWERED : REQ_CLOSE;
}

/* A last PERM reply before closing; a client whose output buffer is full
 * gets the close alone. */
static void say_perm(conn *c, const char *msg)
{
    char text[STS_WHY_MAX + 8];
    int n = snprintf(text, sizeof(text), "PERM %s", msg);

    c->closing = true;
    if (n < 0 || sts_netstring_append(&c->out, text, strlen(text)) != STS_OK)
        sts_log(STS_LOG_DEBUG, "-", "socketmap", "reply dropped: output buffer full");
}

/* Answer the complete requests in c->in, in order, while the unsent
 * replies stay below the high-water mark (the rest waits for EPOLLOUT).
 * True when a request parked c: the caller must not touch it any more. */
static bool process(mt_socketmap *sm, conn *c)
{
    char req[SM_MAX_REQUEST];

    while (!c->closing && c->in.len > 0 && c->out.len < SM_OUT_HIGH) {
        sts_cur payload;
        size_t used = 0;
        sts_why why = { "" };
        sts_ns_result nr = sts_netstring_parse(c->in.data, c->in.len, SM_MAX_REQUEST, &payload,
                                               &used, &why);

        if (nr == STS_NS_MORE)
            return false;
        if (nr == STS_NS_BAD) {
            say_perm(c, why.text);
            return false;
        }
        /* Off the input before it is answered: once parked, c->in is the
         * callback's and then the next worker's. */
        memcpy(req, payload.p, payload.len);
        payload.p = req;
        memmove(c->in.data, c->in.data + used, c->in.len - used);
        c->in.len -= used;
        c->in.data[c->in.len] = '\0';
        c->progress = now_us();
        switch (answer(sm, c, payload)) {
        case REQ_PARKED:
            return true;
        case REQ_CLOSE:
            c->closing = true;
            break;
        case REQ_ANSWERED:
            break;
        }
    }
    return false;
}

typedef enum serve_result {
    SERVE_REARM,  /* wait for the next event */
    SERVE_CLOSE,  /* free it */
    SERVE_PARKED, /* owned by a pending lookup: do not touch it */
} serve_result;

/* Serve one readiness event of a connection: requests are answered as
 * they arrive, so a client may pipeline any number of them; reading stops
 * while its replies are not being read or a request is parked. */
static serve_result serve(mt_socketmap *sm, conn *c)
{
    char chunk[4096];

    if (c->in.len == 0 && c->out.len == 0)
        c->progress = now_us(); /* nothing was pending until this event */
    if (flush_out(c) != 0)
        return SERVE_CLOSE;
    if (process(sm, c))
        return SERVE_PARKED;
    while (!c->closing && !c->eof && c->out.len < SM_OUT_HIGH) {
        ssize_t r = recv(c->fd, chunk, sizeof(chunk), 0);

        if (r == 0) {
            c->eof = true;
            break;
        }
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            return SERVE_CLOSE;
        }
        if (sts_buf_append(&c->in, chunk, (size_t)r) != STS_OK) {
            say_perm(c, "request too long"); /* more than one request's worth unparsed */
            break;
        }
        if (process(sm, c))
            return SERVE_PARKED;
        if (flush_out(c) != 0)
            return SERVE_CLOSE;
        /* A short read emptied the socket: no recv() only to see EAGAIN
         * (the re-armed event reports whatever arrives later). */
        if ((size_t)r < sizeof(chunk))
            break;
    }
    if (flush_out(c) != 0)
        return SERVE_CLOSE;
    /* Done when nothing is left to send and nothing more will come (a
     * truncated request at EOF has nothing to answer). */
    return c->out.len > 0 || (!c->closing && !c->eof) ? SERVE_REARM : SERVE_CLOSE;
}

static void *worker_main(void *arg)
{
    mt_socketmap *sm = arg;
    struct epoll_event evs[SM_BATCH];

    while (!atomic_load(&sm->stopping)) {
        int n = epoll_wait(sm->epfd, evs, SM_BATCH, 1000);

        for (int i = 0; i < n; i++) {
            struct epoll_event ev = evs[i];
            conn *c = ev.data.ptr;

            if (c == NULL) /* the stop eventfd; the close frees the rest */
                goto out;
            if (!sts_smap_conns_take(sm->table, c->slot)) {
                conn_free(sm, c); /* the table closed it: idle too long, or to make room */
                continue;
            }
            switch (serve(sm, c)) {
            case SERVE_PARKED:
                continue;
            case SERVE_CLOSE:
                conn_free(sm, c);
                continue;
            case SERVE_REARM:
                break;
            }
            conn_rest(sm, c);
            ev.events = interest(c);
            if (epoll_ctl(sm->epfd, EPOLL_CTL_MOD, c->fd, &ev) != 0)
                conn_free(sm, c);
        }
    }
out:
    worker_state_free();
    return NULL;
}

/* A flood makes the limits close or refuse thousands of connections a
 * second: a line at once, then at most one a second with the numbers
 * since (as the engine's overload warning). */
typedef struct tally {
    unsigned n[2]; /* evicted and refused, or idle and stalled */
    unsigned limit;
    int64_t said; /* the second of the last line */
    /* The peer named: the one that hit its limit most since the last line
     * (a majority vote, Boyer-Moore: the flooder, whoever else hit it). */
    sts_sockpeer peer;
    unsigned votes;
} tally;

typedef struct acceptor_state {
    tally full, peer, timeout;
} acceptor_state;

/* The counts since the last line into n, when a line is due (one a
 * second at most, none for nothing). */
static bool tally_take(tally *t, int64_t now, unsigned n[2])
{
    if ((t->n[0] | t->n[1]) == 0 || now / 1000000 == t->said)
        return false;
    t->said = now / 1000000;
    n[0] = t->n[0];
    n[1] = t->n[1];
    t->n[0] = t->n[1] = 0;
    return true;
}

static void say_tallies(acceptor_state *a, int64_t now)
{
    unsigned n[2];

    if (tally_take(&a->full, now, n))
        sts_log(STS_LOG_WARNING, "-", "socketmap-limit", "reason=full limit=%u evicted=%u refused=%u",
                a->full.limit, n[0], n[1]);
    if (tally_take(&a->peer, now, n)) {
        char peer[STS_SOCKPEER_SHOW_MAX];

        sts_log(STS_LOG_WARNING, "-", "socketmap-limit",
                "reason=peer peer=%s limit=%u evicted=%u refused=%u",
                sts_sockpeer_show(&a->peer.peer, peer, sizeof(peer)), a->peer.limit, n[0], n[1]);
        a->peer.votes = 0;
    }
    if (tally_take(&a->timeout, now, n))
        sts_log(STS_LOG_INFO, "-", "socketmap-timeout", "idle=%u stalled=%u", n[0], n[1]);
}

/* Who is at the other end, for SocketmapMaxPerPeer (unknown when it is
 * off: no lookup then). */
static void identify(mt_socketmap *sm, int fd, unsigned per_peer, sts_sockpeer *peer)
{
    sts_why why = { "" };

    if (per_peer == 0 || sts_sockpeer_identify(&sm->finder, fd, peer, &why) == STS_OK)
        return;
    if (sm->finder.broken && !sm->said_peer_unknown) {
        sm->said_peer_unknown = true;
        sts_log(STS_LOG_WARNING, "-", "socketmap-peer-unknown",
                "reason=\"%s\" local TCP clients cannot be told apart: SocketmapMaxPerPeer "
                "counts UNIX socket users and remote addresses only", why.text);
    }
}

/* Into the table (making room, or refused: tallied), then into epoll. */
static void admit(mt_socketmap *sm, acceptor_state *a, int fd, unsigned per_peer)
{
    sts_sockpeer peer = { .kind = STS_SOCKPEER_UNKNOWN };
    struct epoll_event ev;
    sts_smap_admit r = STS_SMAP_NO_SLOT;
    unsigned slot = 0;
    conn *c = calloc(1, sizeof(*c));

    if (c == NULL) {
        (void)close(fd);
        return;
    }
    identify(sm, fd, per_peer, &peer);
    c->sm = sm;
    c->fd = fd;
    c->progress = now_us();
    /* No slot: the workers have not yet freed the connections closed to
     * make room.  Wait for them (the flood waits in the backlog) rather
     * than refuse the newcomer, who may be the MTA. */
    for (int ms = 0; ms < SM_SLOT_WAIT_MS && !atomic_load(&sm->stopping); ms++) {
        r = sts_smap_conns_admit(sm->table, &peer, c, per_peer, c->progress, &slot);
        if (r != STS_SMAP_NO_SLOT)
            break;
        usleep(1000);
    }
    if (r == STS_SMAP_NO_SLOT)
        r = STS_SMAP_REFUSED_FULL;
    if (r == STS_SMAP_ADMITTED_FULL || r == STS_SMAP_REFUSED_FULL) {
        a->full.n[r == STS_SMAP_REFUSED_FULL]++;
        a->full.limit = sm->max_conns;
    } else if (r == STS_SMAP_ADMITTED_PEER || r == STS_SMAP_REFUSED_PEER) {
        a->peer.n[r == STS_SMAP_REFUSED_PEER]++;
        a->peer.limit = per_peer;
        if (a->peer.votes == 0)
            a->peer.peer = peer;
        if (sts_sockpeer_same(&peer, &a->peer.peer))
            a->peer.votes++;
        else
            a->peer.votes--;
    }
    if (r == STS_SMAP_REFUSED_FULL || r == STS_SMAP_REFUSED_PEER) {
        free(c);
        (void)close(fd);
        return;
    }
    c->slot = slot;
    sts_buf_init(&c->in, SM_MAX_INBUF);
    sts_buf_init(&c->out, SM_MAX_OUTBUF);
    ev.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
    ev.data.ptr = c;
    if (epoll_ctl(sm->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
        conn_free(sm, c);
}

/* Accept what is waiting, a batch at a time; false after a failure that
 * is not "none left". */
static bool accept_some(mt_socketmap *sm, acceptor_state *a, unsigned per_peer)
{
    for (int i = 0; i < SM_ACCEPT_BATCH; i++) {
        int fd = accept4(sm->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

        if (fd >= 0) {
            admit(sm, a, fd, per_peer);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK || atomic_load(&sm->stopping))
            return true;
        sts_log(STS_LOG_WARNING, "-", "socketmap-accept", "%s", strerror(errno));
        return false;
    }
    return true;
}

/* Accepts, and every quarter of the shorter timeout (at least every 0.1 s,
 * at most every second) closes what has been idle or stalled too long.
 * The limits and timeouts are the current settings' (SIGHUP changes them
 * for what comes next); the table's size is fixed at start. */
static void *acceptor_main(void *arg)
{
    mt_socketmap *sm = arg;
    acceptor_state a;
    int64_t next_sweep = 0;

    memset(&a, 0, sizeof(a));
    while (!atomic_load(&sm->stopping)) {
        const mt_runtime *rt = current_runtime();
        int64_t idle = (int64_t)rt->cfg.socketmap_idle_timeout * 1000000;
        int64_t stall = (int64_t)rt->cfg.socketmap_request_timeout * 1000000;
        int64_t period = (idle < stall ? idle : stall) / 4, now = now_us();
        struct pollfd pf[2] = { { sm->lfd, POLLIN, 0 }, { sm->wakefd, POLLIN, 0 } };

        period = period < 100000 ? 100000 : period > 1000000 ? 1000000 : period;
        if (now >= next_sweep) {
            sts_smap_conns_sweep(sm->table, idle, stall, now, &a.timeout.n[0], &a.timeout.n[1]);
            next_sweep = now + period;
        }
        say_tallies(&a, now);
        if (poll(pf, 2, (int)((next_sweep - now + 999) / 1000)) < 0 && errno != EINTR) {
            sts_log(STS_LOG_WARNING, "-", "socketmap-accept", "poll: %s", strerror(errno));
            usleep(100000);
            continue;
        }
        if (pf[1].revents != 0) /* stopping */
            break;
        if (pf[0].revents != 0 && !accept_some(sm, &a, rt->cfg.socketmap_max_per_peer))
            usleep(100000); /* EMFILE and friends: do not spin */
    }
    worker_state_free();
    return NULL;
}

sts_status mt_socketmap_start(mt_socketmap *sm, sts_engine *engine, sts_why *why)
{
    struct epoll_event ev;

    mt_runtime *rt = mt_runtime_acquire();

    sm->max_conns = rt->cfg.socketmap_max_connections;
    mt_runtime_release(rt);
    sm->engine = engine;
    sts_sockpeer_finder_init(&sm->finder);
    sm->table = sts_smap_conns_new(sm->max_conns, conn_shut);
    if (sm->table == NULL) {
        sts_why_set(why, "socketmap: out of memory");
        return STS_NOMEM;
    }
    sm->epfd = epoll_create1(EPOLL_CLOEXEC);
    sm->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (sm->epfd < 0 || sm->wakefd < 0) {
        sts_why_set(why, "socketmap: %s", strerror(errno));
        return STS_TEMPFAIL;
    }
    /* Level-triggered, never re-armed: once written, it wakes every worker. */
    ev.events = EPOLLIN;
    ev.data.ptr = NULL;
    (void)epoll_ctl(sm->epfd, EPOLL_CTL_ADD, sm->wakefd, &ev);
    sts_buf_init(&sm->cb_reply, SM_MAX_REPLY);
    {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        int want = ncpu > 1 ? (int)(ncpu / 2) : 1;

        if (want > SM_MAX_WORKERS)
            want = SM_MAX_WORKERS;
        for (int i = 0; i < want; i++) {
            if (pthread_create(&sm->workers[i], NULL, worker_main, sm) != 0)
                break;
            sm->nworkers++;
        }
    }
    if (sm->nworkers == 0 || pthread_create(&sm->acceptor, NULL, acceptor_main, sm) != 0) {
        sts_why_set(why, "socketmap: cannot start threads");
        return STS_TEMPFAIL;
    }
    sm->acceptor_started = true;
    sts_log(STS_LOG_INFO, "-", "socketmap", "listening on %s with %d workers, max_connections=%u",
            sm->spec, sm->nworkers, sm->max_conns);
    return STS_OK;
}

void mt_socketmap_close(mt_socketmap *sm)
{
    uint64_t one = 1;
    conn *c;

    if (sm == NULL)
        return;
    atomic_store(&sm->stopping, true);
    if (sm->wakefd >= 0)
        (void)write(sm->wakefd, &one, sizeof(one));
    /* shutdown() wakes the acceptor blocked in accept(). */
    (void)shutdown(sm->lfd, SHUT_RDWR);
    if (sm->acceptor_started)
        pthread_join(sm->acceptor, NULL);
    for (int i = 0; i < sm->nworkers; i++)
        pthread_join(sm->workers[i], NULL);
    /* No worker runs and no connection is accepted any more.  The parked
     * requests are answered now as failed lookups (the profile's on_fail,
     * as when the budget runs out): on_answer runs here for each, after
     * one in progress on the loop thread has returned (the daemon has one
     * socketmap per engine: all of on_answer's lookups are ours).  Then
     * every connection is the closer's: what fits in its socket is sent
     * and it is freed, once. */
    if (sm->engine != NULL)
        sts_engine_lookup_cancel(sm->engine, on_answer, NULL, "socketmap stopping");
    while (sm->table != NULL && (c = sts_smap_conns_any(sm->table)) != NULL) {
        (void)flush_out(c);
        conn_free(sm, c);
    }
    sts_smap_conns_free(sm->table);
    sts_sockpeer_finder_close(&sm->finder);
    sts_buf_free(&sm->cb_reply);
    pthread_mutex_destroy(&sm->noted_mu);
    (void)close(sm->lfd);
    if (sm->epfd >= 0)
        (void)close(sm->epfd);
    if (sm->wakefd >= 0)
        (void)close(sm->wakefd);
    if (sm->unix_path[0] != '\0')
        (void)unlink(sm->unix_path);
    free(sm->spec);
    free(sm);
}
