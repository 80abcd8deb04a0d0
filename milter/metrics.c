/*
 * metrics.c - the metrics page (see metrics.h): the milter's and the
 * socketmap's families, the engine's (engine/engine_metrics.h), the
 * report spool read at render time, and the HTTP responder.
 *
 * The responder answers exactly:
 *   GET /metrics HTTP/1.x   200, text/plain; version=0.0.4
 *   HEAD /metrics ...       the same headers, no body
 *   GET or HEAD of another path: 404; another method: 405; anything
 *   that is not a request line: 400.
 * and closes the connection after the answer (Connection: close).
 */
#include "buildconf.h"

#include "metrics.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/buf.h"
#include "base/log.h"
#include "base/sockspec.h"
#include "engine/engine_metrics.h"
#include "tlsrpt/rspool.h"
#include "runtime.h"

#define MT_METRICS_REQ_MAX 4096
#define MT_METRICS_PAGE_MAX (4u << 20)
#define MT_METRICS_UMASK 0117 /* unix socket: 0660 */

STS_METRIC_FAMILY(mt_metric_smap_requests, "mtasts_socketmap_requests_total", COUNTER,
                  "Socketmap requests answered, by profile (map name; unknown for a name "
                  "that is no profile, none for a malformed request) and reply (the TLS "
                  "level of an OK answer, or NOTFOUND, TEMP, PERM).",
                  "profile", "reply");
STS_METRIC_FAMILY(mt_metric_smap_seconds, "mtasts_socketmap_reply_seconds", HISTOGRAM,
                  "Time from a socketmap request received whole to its reply, by profile.",
                  "profile", NULL);
STS_METRIC_FAMILY(mt_metric_decisions, "mtasts_milter_decisions_total", COUNTER,
                  "Recipient decisions of the milter, by action (as in the decision log).",
                  "action", NULL);
STS_METRIC_FAMILY(mt_metric_answers, "mtasts_lookup_answers_total", COUNTER,
                  "Engine answers given to the milter and the socketmap, by result "
                  "(policy, none, temperror, invalid) and source (cache, discovery, or "
                  "pending when the caller's time ran out first).",
                  "result", "source");

void mt_metrics_smap_reply(const char *profile, const char *reply, size_t len, double seconds)
{
    char kind[24];
    size_t i = 0, start = 0;

    /* "OK secure match=..." counts as secure; other replies by their
     * first word.  The reply is ours: these are words of our own. */
    if (len >= 3 && memcmp(reply, "OK ", 3) == 0)
        start = 3;
    while (start + i < len && i + 1 < sizeof(kind) && reply[start + i] != ' ')
        i++;
    memcpy(kind, reply + start, i);
    kind[i] = '\0';
    sts_metric_add(&mt_metric_smap_requests, profile, i > 0 ? kind : "empty", 1);
    sts_metric_observe(&mt_metric_smap_seconds, profile, NULL, seconds);
}

void mt_metrics_answer(sts_result result, bool from_cache, bool pending)
{
    sts_metric_add(&mt_metric_answers, sts_result_name(result),
                   pending ? "pending" : from_cache ? "cache" : "discovery", 1);
}

/* Reports waiting in the spool (ReportSpool): their number and the age of
 * the oldest, read now.  Unreadable or absent: nothing is shown. */
static sts_status render_spool(sts_buf *out)
{
    mt_runtime *rt = mt_runtime_acquire();
    const char *dir = rt != NULL ? rt->cfg.report_spool : NULL;
    uint64_t files = 0;
    time_t oldest = 0;
    sts_status st = STS_OK;
    DIR *d = NULL;
    int dfd;

    if (dir != NULL && (dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0 &&
        (d = fdopendir(dfd)) == NULL)
        (void)close(dfd);
    if (d != NULL) {
        const struct dirent *e;
        struct stat sb;

        while ((e = readdir(d)) != NULL) {
            if (!sts_rspool_is_name(e->d_name) ||
                fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0)
                continue;
            files++;
            if (oldest == 0 || sb.st_mtime < oldest)
                oldest = sb.st_mtime;
        }
        (void)closedir(d);
        st = sts_metrics_render_value(out, "mtasts_report_spool_files",
                                      "Reports waiting in the report spool (ReportSpool) for "
                                      "mtasts-report to deliver them.",
                                      STS_METRIC_GAUGE, files);
        if (st == STS_OK)
            st = sts_metrics_render_value(
                out, "mtasts_report_spool_oldest_age_seconds",
                "Age of the oldest report waiting in the spool (0 when empty).",
                STS_METRIC_GAUGE,
                files > 0 && time(NULL) > oldest ? (uint64_t)(time(NULL) - oldest) : 0);
    }
    if (rt != NULL)
        mt_runtime_release(rt);
    return st;
}

char *mt_metrics_page(void)
{
    static sts_metric_family *const fams[] = {
        &mt_metric_smap_requests,
        &mt_metric_smap_seconds,
        &mt_metric_decisions,
        &mt_metric_answers,
    };
    sts_buf out;
    sts_status st;

    sts_buf_init(&out, MT_METRICS_PAGE_MAX);
    st = sts_metrics_render(fams, sizeof(fams) / sizeof(fams[0]), &out);
    if (st == STS_OK && mt_engine != NULL)
        st = sts_engine_metrics_render(mt_engine, &out);
    if (st == STS_OK)
        st = render_spool(&out);
    if (st != STS_OK) {
        sts_buf_free(&out);
        return NULL;
    }
    return sts_buf_steal(&out);
}

/* ------------------------------------------------------------ responder */

typedef struct mconn {
    int fd;                        /* -1: free slot */
    char in[MT_METRICS_REQ_MAX];
    size_t in_len;
    char *out;                     /* the whole answer, once the request is read */
    size_t out_len, out_off;
    int64_t deadline_ms;
} mconn;

struct mt_metrics {
    int lfd;
    int stopfd[2];                 /* a byte on [1] stops the thread */
    char unix_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    pthread_t thread;
    bool started;
    mconn c[MT_METRICS_MAX_CONNS];
};

sts_status mt_metrics_open(const char *spec, mt_metrics **out, sts_why *why)
{
    mt_metrics *m = calloc(1, sizeof(*m));
    struct sockaddr_storage ss;
    socklen_t sl = 0;
    mode_t old_mask;
    int one = 1, rc;

    *out = NULL;
    if (m == NULL) {
        sts_why_set(why, "out of memory");
        return STS_NOMEM;
    }
    m->lfd = m->stopfd[0] = m->stopfd[1] = -1;
    for (size_t i = 0; i < MT_METRICS_MAX_CONNS; i++)
        m->c[i].fd = -1;
    if (sts_sockspec_parse(spec, &ss, &sl, why) != STS_OK)
        goto fail;
    if (ss.ss_family == AF_UNIX) {
        struct stat sb;

        memcpy(m->unix_path, ((struct sockaddr_un *)&ss)->sun_path, sizeof(m->unix_path));
        /* Only a stale socket of ours is removed, never another file. */
        if (lstat(m->unix_path, &sb) == 0) {
            if (!S_ISSOCK(sb.st_mode)) {
                sts_why_set(why, "metrics socket %s: exists and is not a socket", spec);
                m->unix_path[0] = '\0';
                goto fail;
            }
            (void)unlink(m->unix_path);
        }
    }
    m->lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (m->lfd < 0)
        goto syserr;
    if (ss.ss_family != AF_UNIX)
        (void)setsockopt(m->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    old_mask = umask(MT_METRICS_UMASK);
    rc = bind(m->lfd, (struct sockaddr *)&ss, sl);
    (void)umask(old_mask);
    if (rc != 0 || listen(m->lfd, 64) != 0 || pipe2(m->stopfd, O_CLOEXEC | O_NONBLOCK) != 0)
        goto syserr;
    *out = m;
    return STS_OK;
syserr:
    sts_why_set(why, "metrics socket %s: %s", spec, strerror(errno));
fail:
    mt_metrics_close(m);
    return STS_PERMFAIL;
}

static void mconn_close(mconn *c)
{
    if (c->fd >= 0)
        (void)close(c->fd);
    free(c->out);
    memset(c, 0, sizeof(*c));
    c->fd = -1;
}

/* The answer to the request line in c->in (complete up to the first
 * CRLF or LF). */
static void mconn_answer(mconn *c)
{
    static const char *const reason[] = { "200 OK", "400 Bad Request", "404 Not Found",
                                          "405 Method Not Allowed", "503 Service Unavailable" };
    char *nl = memchr(c->in, '\n', c->in_len);
    size_t line = nl != NULL ? (size_t)(nl - c->in) : c->in_len;
    bool head = false;
    char *page = NULL;
    const char *body = "";
    int code = 1;
    sts_buf out;

    if (line > 0 && c->in[line - 1] == '\r')
        line--;
    if (line >= 4 && memcmp(c->in, "GET ", 4) == 0)
        code = 0;
    else if (line >= 5 && memcmp(c->in, "HEAD ", 5) == 0)
        code = 0, head = true;
    else if (memchr(c->in, ' ', line) != NULL)
        code = 3;
    if (code == 0) {
        const char *path = c->in + (head ? 5 : 4);
        size_t plen = line - (size_t)(path - c->in);
        const char *sp = memchr(path, ' ', plen);
        size_t rest = sp != NULL ? plen - (size_t)(sp - path) - 1 : 0; /* after the space */

        if (sp == NULL || rest < 8 || memcmp(sp + 1, "HTTP/1.", 7) != 0)
            code = 1;
        else if ((size_t)(sp - path) != 8 || memcmp(path, "/metrics", 8) != 0)
            code = 2;
    }
    if (code == 0) {
        page = mt_metrics_page();
        if (page == NULL)
            code = 4;
        else
            body = page;
    }
    if (code != 0)
        body = reason[code];
    sts_buf_init(&out, MT_METRICS_PAGE_MAX + 512);
    if (sts_buf_printf(&out,
                       "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                       "Connection: close\r\n\r\n%s%s",
                       reason[code], code == 0 ? "text/plain; version=0.0.4; charset=utf-8"
                                               : "text/plain; charset=utf-8",
                       strlen(body) + (code != 0 ? 1 : 0), head ? "" : body,
                       head || code == 0 ? "" : "\n") != STS_OK) {
        sts_buf_free(&out);
        free(page);
        c->out_len = 0;
        return;
    }
    free(page);
    c->out_len = out.len;
    c->out = sts_buf_steal(&out);
    c->out_off = 0;
}

/* Read what is there; answer once the request line is complete. */
static void mconn_read(mconn *c)
{
    ssize_t n = read(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len);

    if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EINTR))
            mconn_close(c);
        return;
    }
    c->in_len += (size_t)n;
    /* The request line is all we look at; the headers may follow or not. */
    if (memchr(c->in, '\n', c->in_len) != NULL) {
        mconn_answer(c);
        if (c->out == NULL)
            mconn_close(c);
    } else if (c->in_len == sizeof(c->in)) {
        mconn_close(c); /* no request line in 4 KiB */
    }
}

static void mconn_write(mconn *c)
{
    ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        mconn_close(c);
        return;
    }
    c->out_off += (size_t)n;
    if (c->out_off == c->out_len) {
        (void)shutdown(c->fd, SHUT_WR);
        mconn_close(c);
    }
}

static void accept_one(mt_metrics *m)
{
    int fd = accept4(m->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    size_t i;

    if (fd < 0)
        return;
    for (i = 0; i < MT_METRICS_MAX_CONNS && m->c[i].fd >= 0; i++)
        ;
    if (i == MT_METRICS_MAX_CONNS) {
        /* Full: the oldest connection that has not sent its request line
         * makes room, so silent clients cannot keep the page from a
         * scraper; if every one is being answered, the newcomer goes. */
        size_t old = MT_METRICS_MAX_CONNS;

        for (size_t k = 0; k < MT_METRICS_MAX_CONNS; k++)
            if (m->c[k].out == NULL &&
                (old == MT_METRICS_MAX_CONNS || m->c[k].deadline_ms < m->c[old].deadline_ms))
                old = k;
        if (old == MT_METRICS_MAX_CONNS) {
            (void)close(fd);
            return;
        }
        mconn_close(&m->c[old]);
        i = old;
    }
    m->c[i].fd = fd;
    m->c[i].deadline_ms = sts_mono_ms() + MT_METRICS_TIMEOUT_MS;
}

static void *serve(void *arg)
{
    mt_metrics *m = arg;
    struct pollfd pfd[MT_METRICS_MAX_CONNS + 2];
    int map[MT_METRICS_MAX_CONNS + 2];

    for (;;) {
        int64_t now = sts_mono_ms(), wait = MT_METRICS_TIMEOUT_MS;
        nfds_t n = 0;

        pfd[n].fd = m->stopfd[0], pfd[n].events = POLLIN, map[n++] = -1;
        pfd[n].fd = m->lfd, pfd[n].events = POLLIN, map[n++] = -2;
        for (int i = 0; i < MT_METRICS_MAX_CONNS; i++) {
            mconn *c = &m->c[i];

            if (c->fd < 0)
                continue;
            if (now >= c->deadline_ms) {
                mconn_close(c);
                continue;
            }
            if (c->deadline_ms - now < wait)
                wait = c->deadline_ms - now;
            pfd[n].fd = c->fd;
            pfd[n].events = c->out != NULL ? POLLOUT : POLLIN;
            map[n++] = i;
        }
        if (poll(pfd, n, (int)wait) < 0 && errno != EINTR)
            break;
        if (pfd[0].revents != 0)
            break;
        for (nfds_t k = 2; k < n; k++) {
            mconn *c = &m->c[map[k]];

            if (pfd[k].revents == 0 || c->fd != pfd[k].fd)
                continue;
            if (c->out != NULL)
                mconn_write(c);
            else
                mconn_read(c);
        }
        if (pfd[1].revents & POLLIN)
            accept_one(m);
    }
    return NULL;
}

sts_status mt_metrics_start(mt_metrics *m, sts_why *why)
{
    int rc = pthread_create(&m->thread, NULL, serve, m);

    if (rc != 0) {
        sts_why_set(why, "metrics thread: %s", strerror(rc));
        return STS_PERMFAIL;
    }
    m->started = true;
    return STS_OK;
}

void mt_metrics_close(mt_metrics *m)
{
    if (m == NULL)
        return;
    if (m->started) {
        if (write(m->stopfd[1], "x", 1) != 1)
            sts_log(STS_LOG_WARNING, "-", "metrics", "cannot wake the metrics thread: %s",
                    strerror(errno));
        (void)pthread_join(m->thread, NULL);
    }
    for (size_t i = 0; i < MT_METRICS_MAX_CONNS; i++)
        if (m->c[i].fd >= 0)
            mconn_close(&m->c[i]);
    if (m->lfd >= 0)
        (void)close(m->lfd);
    if (m->unix_path[0] != '\0')
        (void)unlink(m->unix_path);
    if (m->stopfd[0] >= 0)
        (void)close(m->stopfd[0]);
    if (m->stopfd[1] >= 0)
        (void)close(m->stopfd[1]);
    free(m);
}
