/*
 * smap_const.c - the ceiling of `make bench` (tests/bench/
 * bench_socketmap.py): a socketmap server (Postfix socketmap_table(5)
 * framing) that answers every netstring request with one constant reply
 * and does no lookup at all.  What a real socketmap server gets below
 * this, with the same load generator on the same machine, is the cost of
 * its own work.
 *
 *   smap_const [-l HOST] [-p PORT] [-t THREADS] [-r REPLY] [-P PORTFILE]
 *
 * Listens on HOST:PORT (default 127.0.0.1, port 0 = any free port; the
 * port bound is printed, and written to PORTFILE when given).  THREADS
 * event loops (default 1), each with its own epoll set, share the
 * listening socket (EPOLLEXCLUSIVE) and serve the connections they
 * accepted.  Requests may be pipelined; each gets REPLY (default the
 * enforce reply of the bench's first domain) framed as a netstring, in
 * order.  A malformed or oversized request closes the connection.  Runs
 * until killed.
 */
#include "buildconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/buf.h"
#include "smap/netstring.h"

#define CONST_MAX_THREADS 64
#define CONST_MAX_REQUEST 1024 /* payload bytes, as the daemon */
#define CONST_INBUF 8192
#define CONST_OUTBUF 65536
#define CONST_EVENTS 256

typedef struct cconn {
    int fd;
    size_t in_len;
    size_t out_off, out_len;
    bool want_out; /* registered for EPOLLOUT instead of EPOLLIN */
    char in[CONST_INBUF];
    char out[CONST_OUTBUF];
} cconn;

static int listen_fd = -1;
static sts_buf reply; /* the framed reply */

static void die(const char *what)
{
    fprintf(stderr, "smap_const: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void conn_close(int ep, cconn *c)
{
    (void)epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    (void)close(c->fd);
    free(c);
}

/* Send pending output; false on a dead peer. */
static bool flush_out(cconn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);

        if (w < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
        c->out_off += (size_t)w;
    }
    c->out_off = c->out_len = 0;
    return true;
}

/* Answer every complete request in c->in while the replies fit. */
static bool answer_all(cconn *c)
{
    size_t off = 0;

    while (off < c->in_len && c->out_len + reply.len <= sizeof(c->out)) {
        sts_cur payload;
        size_t used = 0;
        sts_why why = { "" };
        sts_ns_result r = sts_netstring_parse(c->in + off, c->in_len - off, CONST_MAX_REQUEST,
                                              &payload, &used, &why);

        if (r == STS_NS_BAD)
            return false;
        if (r == STS_NS_MORE)
            break;
        memcpy(c->out + c->out_len, reply.data, reply.len);
        c->out_len += reply.len;
        off += used;
    }
    if (off > 0) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
    return true;
}

/* One readiness event; false: close the connection. */
static bool serve(int ep, cconn *c)
{
    struct epoll_event ev;

    /* Requests left over while the output was full come first. */
    if (!flush_out(c) || !answer_all(c) || !flush_out(c))
        return false;
    while (c->out_len == 0) {
        size_t room = sizeof(c->in) - c->in_len;
        ssize_t r;

        if (room == 0)
            return false; /* no request is this long */
        r = recv(c->fd, c->in + c->in_len, room, 0);
        if (r == 0)
            return false;
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            return false;
        }
        c->in_len += (size_t)r;
        if (!answer_all(c) || !flush_out(c))
            return false;
        /* A short read drained the socket: no recv() just to see EAGAIN
         * (level-triggered, so anything that arrives later wakes us). */
        if ((size_t)r < room)
            break;
    }
    if ((c->out_len > 0) != c->want_out) {
        c->want_out = c->out_len > 0;
        ev.events = c->want_out ? EPOLLOUT : EPOLLIN;
        ev.data.ptr = c;
        if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) != 0)
            return false;
    }
    return true;
}

static void accept_all(int ep)
{
    int one = 1;

    for (;;) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        struct epoll_event ev;
        cconn *c;

        if (fd < 0)
            return; /* EAGAIN: another loop took it, or none left */
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c = calloc(1, sizeof(*c));
        if (c == NULL) {
            (void)close(fd);
            continue;
        }
        c->fd = fd;
        ev.events = EPOLLIN;
        ev.data.ptr = c;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
            (void)close(fd);
            free(c);
        }
    }
}

static void *loop_main(void *arg)
{
    struct epoll_event evs[CONST_EVENTS];
    struct epoll_event lev;
    int ep = epoll_create1(EPOLL_CLOEXEC);

    (void)arg;
    if (ep < 0)
        die("epoll_create1");
    lev.events = EPOLLIN | EPOLLEXCLUSIVE;
    lev.data.ptr = NULL;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, listen_fd, &lev) != 0)
        die("epoll_ctl listen");
    for (;;) {
        int n = epoll_wait(ep, evs, CONST_EVENTS, -1);

        for (int i = 0; i < n; i++) {
            cconn *c = evs[i].data.ptr;

            if (c == NULL)
                accept_all(ep);
            else if (!serve(ep, c))
                conn_close(ep, c);
        }
    }
    return NULL;
}

static unsigned long number(const char *s, unsigned long max, const char *what)
{
    char *end = NULL;
    unsigned long v;

    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v > max) {
        fprintf(stderr, "smap_const: bad %s '%s'\n", what, s);
        exit(1);
    }
    return v;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *portfile = NULL;
    const char *text = "OK secure match=mx1.b0.bench.test:.mx.b0.bench.test servername=hostname";
    unsigned long port = 0, nthreads = 1;
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    pthread_t th[CONST_MAX_THREADS];
    int opt, one = 1;

    while ((opt = getopt(argc, argv, "l:p:t:r:P:")) != -1) {
        switch (opt) {
        case 'l': host = optarg; break;
        case 'p': port = number(optarg, 65535, "port"); break;
        case 't': nthreads = number(optarg, CONST_MAX_THREADS, "thread count"); break;
        case 'r': text = optarg; break;
        case 'P': portfile = optarg; break;
        default:
            fprintf(stderr, "usage: smap_const [-l HOST] [-p PORT] [-t THREADS] [-r REPLY] "
                            "[-P PORTFILE]\n");
            return 1;
        }
    }
    if (nthreads == 0)
        nthreads = 1;
    sts_buf_init(&reply, 4096);
    if (sts_netstring_append(&reply, text, strlen(text)) != STS_OK) {
        fprintf(stderr, "smap_const: reply too long\n");
        return 1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "smap_const: bad IPv4 address '%s'\n", host);
        return 1;
    }
    listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listen_fd < 0)
        die("socket");
    (void)setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(listen_fd, 1024) != 0)
        die("bind/listen");
    if (getsockname(listen_fd, (struct sockaddr *)&sa, &sl) != 0)
        die("getsockname");
    port = ntohs(sa.sin_port);
    if (portfile != NULL) {
        char tmp[4096];
        FILE *f;

        if (snprintf(tmp, sizeof(tmp), "%s.tmp", portfile) >= (int)sizeof(tmp))
            return 1;
        f = fopen(tmp, "w");
        if (f == NULL || fprintf(f, "%lu\n", port) < 0 || fclose(f) != 0 ||
            rename(tmp, portfile) != 0)
            die(portfile);
    }
    printf("smap_const: listening on %s:%lu with %lu thread(s)\n", host, port, nthreads);
    fflush(stdout);
    for (unsigned long i = 1; i < nthreads; i++)
        if (pthread_create(&th[i], NULL, loop_main, NULL) != 0)
            die("pthread_create");
    loop_main(NULL);
    return 0;
}
