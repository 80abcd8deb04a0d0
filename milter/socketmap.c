/*
 * socketmap.c - the socketmap listener: one acceptor thread and a pool of
 * workers sharing an epoll set with EPOLLONESHOT, so each connection is
 * served by one worker at a time and its pipelined requests are answered
 * in order.  Waking a sleeping thread costs more than a cache hit, so
 * only a few workers (an "event slot" each: half the CPUs, at least one)
 * wait in epoll at a time, each taking up to SM_BATCH ready connections
 * per wake-up; the others sleep until a slot is free.  A cache hit is
 * answered at once; a cold domain waits up to the profile's budget in
 * its worker, which first hands the rest of its batch back to the epoll
 * set and its slot to a sleeping worker, so every other connection is
 * served meanwhile.  Bounded: request size, connection buffers,
 * connection count.
 */
#include "buildconf.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "milter.h"
#include "netstring.h"
#include "smap.h"
#include "socketmap.h"
#include "sockspec.h"

#define SM_WORKERS 16
#define SM_MAX_REQUEST 1024      /* payload bytes: "name key" */
#define SM_MAX_INBUF 8192        /* unparsed bytes per connection */
#define SM_MAX_OUTBUF 65536      /* unsent replies per connection */
#define SM_MAX_REPLY 16384       /* one reply payload (TLSRPT attributes make it long) */
#define SM_OUT_HIGH (SM_MAX_OUTBUF - SM_MAX_REPLY - 16) /* no new request above this:
                                                           room for one framed reply */
#define SM_MAX_CONNECTIONS 4096
#define SM_BATCH 32              /* ready connections taken per epoll_wait */

typedef struct conn {
    struct conn *prev, *next; /* every open connection, for the final close */
    int fd;
    sts_buf in;
    sts_buf out;
    size_t out_off;
    bool closing; /* close once out is sent */
    bool eof;     /* the client has closed its side */
} conn;

struct mt_socketmap {
    int lfd;
    int epfd;
    int wakefd; /* eventfd: tells workers and the acceptor to stop */
    char *spec;
    char unix_path[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* "" for inet */
    sts_engine *engine;
    pthread_t acceptor;
    pthread_t workers[SM_WORKERS];
    int nworkers;
    bool acceptor_started;
    atomic_bool stopping;
    atomic_int nconns;
    pthread_mutex_t list_mu;
    conn *conns;
    sem_t slots; /* event slots: workers allowed to wait in epoll at once */
    int nslots;
    bool slots_ready;
};

/* The ready connections a worker took from epoll and has not served yet
 * (EPOLLONESHOT: no other worker sees them until they are re-armed). */
typedef struct batch {
    mt_socketmap *sm;
    struct epoll_event *ev;
    int next, n; /* ev[next..n) are still to serve */
    bool slot;   /* this worker holds an event slot */
} batch;

static _Thread_local batch *my_batch; /* the calling worker's, or NULL */

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

/* An answer worth waiting the budget for: the discovery is still running,
 * or match=exact lacks the MX hosts of a cached policy (engine.h). */
static bool worth_waiting(const sts_answer *a, unsigned flags)
{
    return a->pending || ((flags & STS_LOOKUP_NEED_MX) != 0 &&
                          a->result == STS_RESULT_POLICY && !a->mx_known);
}

/* inet:PORT@HOST, inet6:PORT@HOST, unix:PATH / local:PATH (as for the milter). */
sts_status mt_socketmap_open(const char *spec, mt_socketmap **out, sts_why *why)
{
    mt_socketmap *sm = calloc(1, sizeof(*sm));
    struct sockaddr_storage ss;
    socklen_t sl = 0;
    int one = 1, fam;

    *out = NULL;
    if (sm == NULL || (sm->spec = strdup(spec)) == NULL) {
        free(sm);
        sts_why_set(why, "out of memory");
        return STS_NOMEM;
    }
    sm->lfd = sm->epfd = sm->wakefd = -1;
    pthread_mutex_init(&sm->list_mu, NULL);
    if (sts_sockspec_parse(spec, &ss, &sl, why) != STS_OK)
        goto fail;
    fam = ss.ss_family;
    if (fam == AF_UNIX) {
        /* sun_path is NUL-terminated by sts_sockspec_parse and the same size. */
        memcpy(sm->unix_path, ((struct sockaddr_un *)&ss)->sun_path, sizeof(sm->unix_path));
        (void)unlink(sm->unix_path); /* stale socket of an earlier run */
    }
    sm->lfd = socket(fam, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (sm->lfd < 0)
        goto syserr;
    if (fam != AF_UNIX)
        (void)setsockopt(sm->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(sm->lfd, (struct sockaddr *)&ss, sl) != 0 || listen(sm->lfd, 1024) != 0)
        goto syserr;
    if (fam == AF_UNIX)
        (void)chmod(((struct sockaddr_un *)&ss)->sun_path, 0666);
    *out = sm;
    return STS_OK;
syserr:
    sts_why_set(why, "socketmap socket %s: %s", spec, strerror(errno));
fail:
    if (sm->lfd >= 0)
        (void)close(sm->lfd);
    pthread_mutex_destroy(&sm->list_mu);
    free(sm->spec);
    free(sm);
    return STS_PERMFAIL;
}

static void conn_free(mt_socketmap *sm, conn *c)
{
    pthread_mutex_lock(&sm->list_mu);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        sm->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    pthread_mutex_unlock(&sm->list_mu);
    (void)epoll_ctl(sm->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    (void)close(c->fd);
    sts_buf_free(&c->in);
    sts_buf_free(&c->out);
    free(c);
    atomic_fetch_sub(&sm->nconns, 1);
}

static uint32_t interest(const conn *c);

/* Before a wait for a discovery: re-arm the connections of this worker's
 * batch that it has not served yet, so that other workers serve them
 * meanwhile instead of leaving them behind this lookup. */
static void release_batch(void)
{
    batch *b = my_batch;

    if (b == NULL)
        return;
    for (int i = b->next; i < b->n; i++) {
        conn *o = b->ev[i].data.ptr;
        struct epoll_event ev;

        if (o == NULL)
            continue; /* the stop eventfd is never disarmed */
        ev.events = interest(o);
        ev.data.ptr = o;
        if (epoll_ctl(b->sm->epfd, EPOLL_CTL_MOD, o->fd, &ev) != 0)
            conn_free(b->sm, o);
    }
    b->n = b->next;
}

/* Answer one request payload into c->out.  False: malformed, close. */
static bool answer(mt_socketmap *sm, conn *c, sts_cur req)
{
    sts_cur name, key;
    char domain[STS_DOMAIN_MAX + 1];
    char shown[4 * STS_SMAP_NAME_MAX + 8];
    const sts_smap_profile *p;
    sts_why why = { "" };
    sts_answer a;
    mt_runtime *rt = current_runtime();
    sts_buf *reply = &my_state.reply;
    unsigned flags;
    sts_status st;
    bool ok = true;

    sts_buf_reset(reply);
    if (!sts_smap_split(req, &name, &key)) {
        st = sts_buf_append_str(reply, "PERM request is not \"name key\"");
        ok = false;
        goto send;
    }
    /* An unknown map is refused like a table that does not exist, so a
     * typo in main.cf defers mail visibly instead of answering with some
     * other profile's kind of result. */
    p = sts_smap_profiles_find(rt->profiles, name.p, name.len);
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
    /* Ask the cache alone first; only a miss hands the rest of the batch
     * and the event slot over, then waits. */
    if (my_batch != NULL && p->budget_ms > 0) {
        st = sts_engine_lookup_flags(sm->engine, domain, 0, flags, &a);
        if (st == STS_OK && worth_waiting(&a, flags)) {
            sts_answer_release(&a);
            release_batch();
            if (my_batch->slot) {
                my_batch->slot = false;
                (void)sem_post(&sm->slots);
            }
            st = sts_engine_lookup_flags(sm->engine, domain, (int)p->budget_ms, flags, &a);
        }
    } else {
        st = sts_engine_lookup_flags(sm->engine, domain, (int)p->budget_ms, flags, &a);
    }
    if (st != STS_OK) {
        st = sts_buf_append_str(reply, "TEMP out of memory");
        goto send;
    }
    st = sts_smap_reply(p, domain, &a, reply);
    sts_answer_release(&a);
send:
    if (st != STS_OK) {
        /* Over SM_MAX_REPLY (thousands of mx patterns) cannot be framed. */
        sts_buf_reset(reply);
        st = sts_buf_append_str(reply, "TEMP reply too long");
    }
    if (st != STS_OK || sts_netstring_append(&c->out, reply->data, reply->len) != STS_OK)
        ok = false; /* output full: the client does not read its answers */
    return ok;
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
    sts_buf_reset(&c->out);
    c->out_off = 0;
    return 0;
}

/* Answer the complete requests in c->in, in order, while the unsent
 * replies stay below the high-water mark (the rest waits for EPOLLOUT). */
static void process(mt_socketmap *sm, conn *c)
{
    while (!c->closing && c->in.len > 0 && c->out.len < SM_OUT_HIGH) {
        sts_cur payload;
        size_t used = 0;
        sts_why why = { "" };
        sts_ns_result nr = sts_netstring_parse(c->in.data, c->in.len, SM_MAX_REQUEST, &payload,
                                               &used, &why);

        if (nr == STS_NS_MORE)
            return;
        if (nr == STS_NS_BAD) {
            say_perm(c, why.text);
            return;
        }
        if (!answer(sm, c, payload))
            c->closing = true;
        memmove(c->in.data, c->in.data + used, c->in.len - used);
        c->in.len -= used;
        c->in.data[c->in.len] = '\0';
    }
}

/* Serve one readiness event of a connection: requests are answered as
 * they arrive, so a client may pipeline any number of them; reading stops
 * while its replies are not being read.  Returns false to close. */
static bool serve(mt_socketmap *sm, conn *c)
{
    char chunk[4096];

    if (flush_out(c) != 0)
        return false;
    process(sm, c);
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
            return false;
        }
        if (sts_buf_append(&c->in, chunk, (size_t)r) != STS_OK) {
            say_perm(c, "request too long"); /* more than one request's worth unparsed */
            break;
        }
        process(sm, c);
        if (flush_out(c) != 0)
            return false;
        /* A short read emptied the socket: no recv() only to see EAGAIN
         * (the re-armed event reports whatever arrives later). */
        if ((size_t)r < sizeof(chunk))
            break;
    }
    if (flush_out(c) != 0)
        return false;
    /* Done when nothing is left to send and nothing more will come (a
     * truncated request at EOF has nothing to answer). */
    return c->out.len > 0 || (!c->closing && !c->eof);
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

static void *worker_main(void *arg)
{
    mt_socketmap *sm = arg;
    struct epoll_event evs[SM_BATCH];
    batch b = { sm, evs, 0, 0, false };

    my_batch = &b;
    while (!atomic_load(&sm->stopping)) {
        int n;

        if (!b.slot) {
            /* A slot is kept until a discovery wait hands it over. */
            if (sem_wait(&sm->slots) == 0)
                b.slot = true;
            continue;
        }
        n = epoll_wait(sm->epfd, evs, SM_BATCH, 1000);
        b.n = n > 0 ? n : 0;
        for (b.next = 0; b.next < b.n;) {
            struct epoll_event ev = evs[b.next++];
            conn *c = ev.data.ptr;

            if (c == NULL) /* the stop eventfd; the close frees the rest */
                goto out;
            if (!serve(sm, c)) {
                conn_free(sm, c);
                continue;
            }
            ev.events = interest(c);
            if (epoll_ctl(sm->epfd, EPOLL_CTL_MOD, c->fd, &ev) != 0)
                conn_free(sm, c);
        }
    }
out:
    my_batch = NULL;
    worker_state_free();
    return NULL;
}

static void *acceptor_main(void *arg)
{
    mt_socketmap *sm = arg;

    while (!atomic_load(&sm->stopping)) {
        int fd = accept4(sm->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        struct epoll_event ev;
        conn *c;

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN)
                continue;
            if (atomic_load(&sm->stopping))
                break;
            sts_log(STS_LOG_WARNING, "-", "socketmap-accept", "%s", strerror(errno));
            usleep(100000); /* EMFILE and friends: do not spin */
            continue;
        }
        if (atomic_load(&sm->nconns) >= SM_MAX_CONNECTIONS || (c = calloc(1, sizeof(*c))) == NULL) {
            (void)close(fd);
            continue;
        }
        c->fd = fd;
        sts_buf_init(&c->in, SM_MAX_INBUF);
        sts_buf_init(&c->out, SM_MAX_OUTBUF);
        atomic_fetch_add(&sm->nconns, 1);
        pthread_mutex_lock(&sm->list_mu);
        c->next = sm->conns;
        if (sm->conns != NULL)
            sm->conns->prev = c;
        sm->conns = c;
        pthread_mutex_unlock(&sm->list_mu);
        ev.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
        ev.data.ptr = c;
        if (epoll_ctl(sm->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
            conn_free(sm, c);
    }
    return NULL;
}

sts_status mt_socketmap_start(mt_socketmap *sm, sts_engine *engine, sts_why *why)
{
    struct epoll_event ev;

    sm->engine = engine;
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
    {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

        sm->nslots = ncpu > 1 ? (int)(ncpu / 2) : 1;
        if (sm->nslots > SM_WORKERS / 2)
            sm->nslots = SM_WORKERS / 2;
    }
    if (sem_init(&sm->slots, 0, (unsigned)sm->nslots) != 0) {
        sts_why_set(why, "socketmap: %s", strerror(errno));
        return STS_TEMPFAIL;
    }
    sm->slots_ready = true;
    for (int i = 0; i < SM_WORKERS; i++) {
        if (pthread_create(&sm->workers[i], NULL, worker_main, sm) != 0)
            break;
        sm->nworkers++;
    }
    if (sm->nworkers == 0 || pthread_create(&sm->acceptor, NULL, acceptor_main, sm) != 0) {
        sts_why_set(why, "socketmap: cannot start threads");
        return STS_TEMPFAIL;
    }
    sm->acceptor_started = true;
    sts_log(STS_LOG_INFO, "-", "socketmap", "listening on %s with %d workers, %d in epoll",
            sm->spec, sm->nworkers, sm->nslots);
    return STS_OK;
}

void mt_socketmap_close(mt_socketmap *sm)
{
    uint64_t one = 1;

    if (sm == NULL)
        return;
    atomic_store(&sm->stopping, true);
    if (sm->wakefd >= 0)
        (void)write(sm->wakefd, &one, sizeof(one));
    /* shutdown() wakes the acceptor blocked in accept(). */
    (void)shutdown(sm->lfd, SHUT_RDWR);
    for (int i = 0; sm->slots_ready && i < sm->nworkers; i++)
        (void)sem_post(&sm->slots); /* workers waiting for a slot */
    if (sm->acceptor_started)
        pthread_join(sm->acceptor, NULL);
    for (int i = 0; i < sm->nworkers; i++)
        pthread_join(sm->workers[i], NULL);
    while (sm->conns != NULL)
        conn_free(sm, sm->conns);
    pthread_mutex_destroy(&sm->list_mu);
    if (sm->slots_ready)
        (void)sem_destroy(&sm->slots);
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
