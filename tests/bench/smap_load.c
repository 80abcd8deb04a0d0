/*
 * smap_load.c - the load generator of `make bench` for socketmap servers
 * (tests/bench/bench_socketmap.py): CONNS connections, each sending one
 * netstring request, waiting for the reply, then sending the next (no
 * pipelining: what Postfix's smtp client does per lookup), for a fixed
 * time.  Prints requests per second and latency percentiles.  Written in
 * C so that the generator is not the bottleneck.
 *
 *   smap_load -p PORT [-l HOST] [-c CONNS] [-t THREADS] [-d SECONDS]
 *             [-w WARMUP_SECONDS] REQUEST...
 *
 * REQUEST is a payload such as "postfix example.com"; connection i sends
 * the requests in turn starting at the i-th.  THREADS (default 1) share
 * the connections; a thread with one connection uses blocking I/O, one
 * with several an epoll set.  Replies during the first WARMUP_SECONDS
 * (default 1) are not counted; then SECONDS (default 5) are measured: a
 * request counts when it was sent and answered inside that window.
 *
 * Every reply is checked: TEMP/PERM count as errors, and a reply that
 * differs from the first reply to the same request in the same thread as
 * a mismatch.  Output, one line:
 *   SMAP_LOAD conns=C threads=T seconds=S requests=N rps=R p50_us=X
 *     p90_us=X p99_us=X p999_us=X max_us=X errors=E mismatches=M
 *     client_cpu_s=U
 * Exit status 0, or 1 when a connection failed (connect, reset, a
 * malformed reply) or nothing was measured.
 */
#include "buildconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "smap/netstring.h"

#define LOAD_MAX_CONNS 10000
#define LOAD_MAX_THREADS 64
#define LOAD_MAX_REPLY 8192
#define LOAD_MAX_SAMPLES 100000000u
#define LOAD_REPLY_TIMEOUT_S 10 /* a blocking connection gives up after this */

typedef struct lconn {
    int fd;
    size_t next_req; /* index into the request list */
    size_t cur_req;
    int64_t sent_ns;
    size_t rlen;
    char rbuf[LOAD_MAX_REPLY + 16];
} lconn;

typedef struct lthread {
    pthread_t th;
    lconn *conns;
    size_t nconns;
    uint32_t *lat; /* ns, one per counted request */
    size_t nlat, caplat;
    uint64_t errors, mismatches;
    char **first; /* first reply per request index */
    size_t *first_len;
    bool failed;
    char fail_text[256];
} lthread;

static struct sockaddr_in target;
static sts_buf *reqs; /* framed requests */
static size_t nreqs;
static int64_t t_measure, t_end; /* ns, CLOCK_MONOTONIC */

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void fail(lthread *t, const char *what, int err)
{
    if (!t->failed)
        (void)snprintf(t->fail_text, sizeof(t->fail_text), "%s%s%s", what, err ? ": " : "",
                       err ? strerror(err) : "");
    t->failed = true;
}

static bool send_request(lthread *t, lconn *c)
{
    const sts_buf *r = &reqs[c->next_req];
    size_t off = 0;

    c->cur_req = c->next_req;
    c->next_req = (c->next_req + 1) % nreqs;
    c->sent_ns = now_ns();
    c->rlen = 0;
    while (off < r->len) {
        ssize_t w = send(c->fd, r->data + off, r->len - off, MSG_NOSIGNAL);

        if (w < 0) {
            if (errno == EINTR)
                continue;
            fail(t, "send", errno);
            return false;
        }
        off += (size_t)w;
    }
    return true;
}

/* A reply is complete in c->rbuf: check and count it. */
static bool take_reply(lthread *t, lconn *c, sts_cur payload, size_t used)
{
    int64_t now = now_ns();
    size_t i = c->cur_req;

    if (used != c->rlen) {
        fail(t, "more than one reply to one request", 0);
        return false;
    }
    if (payload.len >= 4 &&
        (memcmp(payload.p, "TEMP", 4) == 0 || memcmp(payload.p, "PERM", 4) == 0))
        t->errors++;
    if (t->first[i] == NULL) {
        t->first[i] = malloc(payload.len + 1);
        if (t->first[i] == NULL) {
            fail(t, "out of memory", 0);
            return false;
        }
        memcpy(t->first[i], payload.p, payload.len);
        t->first_len[i] = payload.len;
    } else if (t->first_len[i] != payload.len || memcmp(t->first[i], payload.p, payload.len) != 0) {
        t->mismatches++;
    }
    if (c->sent_ns >= t_measure && now <= t_end) {
        int64_t d = now - c->sent_ns;

        if (t->nlat == t->caplat) {
            size_t ncap = t->caplat ? t->caplat * 2 : 65536;
            uint32_t *n;

            if (ncap > LOAD_MAX_SAMPLES) {
                fail(t, "too many samples", 0);
                return false;
            }
            n = realloc(t->lat, ncap * sizeof(*n));
            if (n == NULL) {
                fail(t, "out of memory", 0);
                return false;
            }
            t->lat = n;
            t->caplat = ncap;
        }
        t->lat[t->nlat++] = d > (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)d;
    }
    return true;
}

/* Read what is there; true with *done when a whole reply was handled.  A
 * blocking socket that times out (LOAD_REPLY_TIMEOUT_S) is a failure. */
static bool read_reply(lthread *t, lconn *c, bool blocking, bool *done)
{
    sts_cur payload;
    size_t used = 0;
    sts_why why = { "" };
    ssize_t r;

    *done = false;
    r = recv(c->fd, c->rbuf + c->rlen, sizeof(c->rbuf) - c->rlen, 0);
    if (r == 0) {
        fail(t, "server closed the connection", 0);
        return false;
    }
    if (r < 0) {
        if (errno == EINTR || (!blocking && (errno == EAGAIN || errno == EWOULDBLOCK)))
            return true;
        fail(t, errno == EAGAIN || errno == EWOULDBLOCK ? "no reply in time" : "recv", errno);
        return false;
    }
    c->rlen += (size_t)r;
    switch (sts_netstring_parse(c->rbuf, c->rlen, LOAD_MAX_REPLY, &payload, &used, &why)) {
    case STS_NS_MORE:
        return true;
    case STS_NS_BAD:
        fail(t, "malformed reply", 0);
        return false;
    case STS_NS_OK:
        break;
    }
    *done = true;
    return take_reply(t, c, payload, used);
}

static void run_blocking(lthread *t)
{
    lconn *c = &t->conns[0];

    while (!t->failed && now_ns() < t_end) {
        bool done = false;

        if (!send_request(t, c))
            return;
        while (!done)
            if (!read_reply(t, c, true, &done))
                return;
    }
}

static void run_epoll(lthread *t)
{
    struct epoll_event evs[256];
    int ep = epoll_create1(EPOLL_CLOEXEC);

    if (ep < 0) {
        fail(t, "epoll_create1", errno);
        return;
    }
    for (size_t i = 0; i < t->nconns; i++) {
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &t->conns[i] };

        if (epoll_ctl(ep, EPOLL_CTL_ADD, t->conns[i].fd, &ev) != 0) {
            fail(t, "epoll_ctl", errno);
            goto done;
        }
    }
    for (size_t i = 0; i < t->nconns; i++)
        if (!send_request(t, &t->conns[i]))
            goto done;
    while (!t->failed) {
        int64_t now = now_ns();
        int n;

        if (now >= t_end)
            break;
        n = epoll_wait(ep, evs, 256, (int)((t_end - now) / 1000000) + 1);
        for (int i = 0; i < n && !t->failed; i++) {
            lconn *c = evs[i].data.ptr;
            bool done = false;

            if (read_reply(t, c, false, &done) && done)
                (void)send_request(t, c);
        }
    }
done:
    (void)close(ep);
}

static void *thread_main(void *arg)
{
    lthread *t = arg;

    if (t->nconns == 1)
        run_blocking(t);
    else
        run_epoll(t);
    return NULL;
}

static int connect_one(void)
{
    int one = 1;
    struct timeval tv = { LOAD_REPLY_TIMEOUT_S, 0 };
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&target, sizeof(target)) != 0) {
        int e = errno;

        (void)close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);

    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

static unsigned long number(const char *s, unsigned long min, unsigned long max, const char *what)
{
    char *end = NULL;
    unsigned long v;

    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
        fprintf(stderr, "smap_load: bad %s '%s' (%lu..%lu)\n", what, s, min, max);
        exit(1);
    }
    return v;
}

static double pct_us(const uint32_t *v, size_t n, double p)
{
    size_t i;

    if (n == 0)
        return 0;
    i = (size_t)(p * (double)n);
    if (i >= n)
        i = n - 1;
    return v[i] / 1000.0;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    unsigned long port = 0, nconns = 1, nthreads = 1, seconds = 5, warmup = 1;
    lthread *ts = NULL;
    lconn *conns = NULL;
    uint32_t *all = NULL;
    size_t nall = 0;
    uint64_t errors = 0, mismatches = 0;
    struct rusage ru;
    int opt, rc = 1;
    bool failed = false;

    while ((opt = getopt(argc, argv, "l:p:c:t:d:w:")) != -1) {
        switch (opt) {
        case 'l': host = optarg; break;
        case 'p': port = number(optarg, 1, 65535, "port"); break;
        case 'c': nconns = number(optarg, 1, LOAD_MAX_CONNS, "connection count"); break;
        case 't': nthreads = number(optarg, 1, LOAD_MAX_THREADS, "thread count"); break;
        case 'd': seconds = number(optarg, 1, 3600, "duration"); break;
        case 'w': warmup = number(optarg, 0, 3600, "warm-up"); break;
        default: goto usage;
        }
    }
    if (port == 0 || optind >= argc)
        goto usage;
    if (nthreads > nconns)
        nthreads = nconns;
    memset(&target, 0, sizeof(target));
    target.sin_family = AF_INET;
    target.sin_port = htons((unsigned short)port);
    if (inet_pton(AF_INET, host, &target.sin_addr) != 1) {
        fprintf(stderr, "smap_load: bad IPv4 address '%s'\n", host);
        return 1;
    }
    nreqs = (size_t)(argc - optind);
    reqs = calloc(nreqs, sizeof(*reqs));
    ts = calloc(nthreads, sizeof(*ts));
    conns = calloc(nconns, sizeof(*conns));
    if (reqs == NULL || ts == NULL || conns == NULL)
        goto nomem;
    for (size_t i = 0; i < nreqs; i++) {
        sts_buf_init(&reqs[i], 4096);
        if (sts_netstring_append(&reqs[i], argv[optind + (int)i], strlen(argv[optind + (int)i])) !=
            STS_OK) {
            fprintf(stderr, "smap_load: request too long\n");
            return 1;
        }
    }
    for (size_t i = 0; i < nconns; i++) {
        conns[i].next_req = i % nreqs;
        conns[i].fd = connect_one();
        if (conns[i].fd < 0) {
            fprintf(stderr, "smap_load: connect to %s:%lu: %s\n", host, port, strerror(errno));
            return 1;
        }
    }
    for (size_t i = 0, at = 0; i < nthreads; i++) {
        size_t n = nconns / nthreads + (i < nconns % nthreads ? 1 : 0);

        ts[i].conns = &conns[at];
        ts[i].nconns = n;
        at += n;
        ts[i].first = calloc(nreqs, sizeof(char *));
        ts[i].first_len = calloc(nreqs, sizeof(size_t));
        if (ts[i].first == NULL || ts[i].first_len == NULL)
            goto nomem;
        if (n > 1)
            for (size_t j = 0; j < n; j++)
                if (set_nonblock(ts[i].conns[j].fd) != 0) {
                    perror("smap_load: fcntl");
                    return 1;
                }
    }
    t_measure = now_ns() + (int64_t)warmup * 1000000000;
    t_end = t_measure + (int64_t)seconds * 1000000000;
    for (size_t i = 0; i < nthreads; i++)
        if (pthread_create(&ts[i].th, NULL, thread_main, &ts[i]) != 0) {
            fprintf(stderr, "smap_load: cannot start threads\n");
            return 1;
        }
    for (size_t i = 0; i < nthreads; i++) {
        pthread_join(ts[i].th, NULL);
        nall += ts[i].nlat;
        errors += ts[i].errors;
        mismatches += ts[i].mismatches;
        if (ts[i].failed) {
            fprintf(stderr, "smap_load: %s\n", ts[i].fail_text);
            failed = true;
        }
    }
    all = malloc((nall ? nall : 1) * sizeof(*all));
    if (all == NULL)
        goto nomem;
    for (size_t i = 0, at = 0; i < nthreads; i++) {
        if (ts[i].nlat > 0)
            memcpy(all + at, ts[i].lat, ts[i].nlat * sizeof(*all));
        at += ts[i].nlat;
    }
    qsort(all, nall, sizeof(*all), cmp_u32);
    getrusage(RUSAGE_SELF, &ru);
    printf("SMAP_LOAD conns=%lu threads=%lu seconds=%lu requests=%zu rps=%.0f p50_us=%.1f "
           "p90_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f errors=%llu mismatches=%llu "
           "client_cpu_s=%.2f\n",
           nconns, nthreads, seconds, nall, (double)nall / (double)seconds,
           pct_us(all, nall, 0.50), pct_us(all, nall, 0.90), pct_us(all, nall, 0.99),
           pct_us(all, nall, 0.999), nall ? all[nall - 1] / 1000.0 : 0.0,
           (unsigned long long)errors, (unsigned long long)mismatches,
           (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
               (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
    rc = failed || nall == 0 ? 1 : 0;
    for (size_t i = 0; i < nconns; i++)
        (void)close(conns[i].fd);
    return rc;
nomem:
    fprintf(stderr, "smap_load: out of memory\n");
    return 1;
usage:
    fprintf(stderr, "usage: smap_load -p PORT [-l HOST] [-c CONNS] [-t THREADS] [-d SECONDS] "
                    "[-w WARMUP_SECONDS] REQUEST...\n");
    return 1;
}
