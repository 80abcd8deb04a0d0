/*
 * prober.c - the MX prober's schedule (see prober.h).
 *
 * Two tables under one mutex, both bounded by max_tracked and swept of
 * entries older than the interval when full:
 *   seen:  "domain, policy id, MX" -> when it was last queued, so that a
 *          busy domain causes one job per interval, not one per mail;
 *   facts: "MX" -> the last probe's result and when it was learnt, so that
 *          an MX host serving many domains is connected to once per
 *          interval; a worker that finds another probing the same MX waits
 *          for that probe instead of starting a second one.
 * A thread pool rather than the engine's loop: a probe is a short blocking
 * dialogue whose waits are all bounded, there are few of them (once per MX
 * per interval), and the engine loop that answers every lookup must not
 * carry TLS handshakes with slow servers.
 */
#include "buildconf.h" /* _GNU_SOURCE: pipe2 */

#include "engine/prober.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/log.h"
#include "sts/dnssync.h"
#include "sts/mx.h"

#define PROBER_MAX_MX 16 /* MX hosts of one domain considered */

typedef struct tent {
    struct tent *next;
    int64_t t;         /* seen: queued at; facts: learnt at */
    bool busy, have;   /* facts: a probe is running / out holds a result */
    sts_probe_out out;
    char key[];
} tent;

typedef struct table {
    tent **b;
    size_t nb, n, max;
} table;

typedef struct job {
    struct job *next;
    char domain[STS_DOMAIN_MAX + 1];
    char id[STS_ID_MAX + 1];
    sts_mode mode;
    char mx[STS_DOMAIN_MAX + 1]; /* "" = look the MX hosts up */
    size_t n_pat;
    char *pat;                   /* n_pat NUL-terminated patterns, one after another */
} job;

struct sts_prober {
    sts_prober_opts o;
    char *ca_file, *helo_name, *servers;
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* a job was queued, or stopping */
    pthread_cond_t done_cv; /* a probe ended */
    job *head, *tail;
    size_t qlen;
    table seen, facts;
    pthread_t *threads;
    size_t nthreads;
    bool stopping;
    int stop_pipe[2]; /* written on stop: probes in progress give up at once */
    sts_prober_stats st;
};

typedef struct worker {
    sts_prober *p;
    sts_dns *dns; /* created on first use */
} worker;

static int64_t now(const sts_prober *p)
{
    return p->o.clock != NULL ? p->o.clock(p->o.clock_arg) : (int64_t)time(NULL);
}

/* ------------------------------------------------------------ tables */

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;

    for (; *s != '\0'; s++)
        h = (h ^ sts_to_lower((unsigned char)*s)) * 1099511628211ull;
    return h;
}

static bool table_init(table *t, size_t max)
{
    t->nb = 64;
    while (t->nb < max && t->nb < ((size_t)1 << 24))
        t->nb *= 2;
    t->b = sts_calloc_array(t->nb, sizeof(*t->b));
    t->n = 0;
    t->max = max;
    return t->b != NULL;
}

static void table_free(table *t)
{
    for (size_t i = 0; t->b != NULL && i < t->nb; i++)
        for (tent *e = t->b[i], *nx; e != NULL; e = nx) {
            nx = e->next;
            free(e);
        }
    free(t->b);
    t->b = NULL;
}

static tent *table_find(const table *t, const char *key)
{
    for (tent *e = t->b[hash(key) & (t->nb - 1)]; e != NULL; e = e->next)
        if (sts_str_eq_nocase(e->key, key))
            return e;
    return NULL;
}

/* Drop entries older than the interval that no probe is using. */
static void table_sweep(table *t, int64_t when, unsigned interval)
{
    for (size_t i = 0; i < t->nb; i++)
        for (tent **pe = &t->b[i]; *pe != NULL;) {
            tent *e = *pe;

            if (!e->busy && when - e->t >= (int64_t)interval) {
                *pe = e->next;
                free(e);
                t->n--;
            } else {
                pe = &e->next;
            }
        }
}

/* The entry for key, created (t = when) if absent; NULL when the table is
 * full of live entries or on OOM. */
static tent *table_get(table *t, const char *key, int64_t when, unsigned interval, bool *created)
{
    tent *e = table_find(t, key);
    size_t len = strlen(key), b;

    *created = false;
    if (e != NULL)
        return e;
    if (t->n >= t->max)
        table_sweep(t, when, interval);
    if (t->n >= t->max || (e = calloc(1, sizeof(*e) + len + 1)) == NULL)
        return NULL;
    memcpy(e->key, key, len + 1);
    e->t = when;
    b = hash(key) & (t->nb - 1);
    e->next = t->b[b];
    t->b[b] = e;
    t->n++;
    *created = true;
    return e;
}

static void seen_key(char *buf, size_t sz, const char *domain, const char *id, const char *mx)
{
    /* Spaces cannot occur in a domain name, an id or an MX host name. */
    (void)snprintf(buf, sz, "%.253s %.32s %.253s", domain, id, mx);
}

#define SEEN_KEY_MAX (2 * STS_DOMAIN_MAX + STS_ID_MAX + 4)

/* ------------------------------------------------------------ life */

static char *dup_or_null(const char *s, bool *oom)
{
    char *d;

    if (s == NULL)
        return NULL;
    if ((d = strdup(s)) == NULL)
        *oom = true;
    return d;
}

/* What sts_prober_new made before its threads and locks: undone. */
static void prober_unmake(sts_prober *p)
{
    table_free(&p->seen);
    table_free(&p->facts);
    free(p->ca_file);
    free(p->helo_name);
    free(p->servers);
    free(p);
}

sts_status sts_prober_new(const sts_prober_opts *opts, sts_prober **out, sts_why *why)
{
    sts_prober *p = calloc(1, sizeof(*p));
    bool oom = false;

    *out = NULL;
    if (opts->on_result == NULL) {
        free(p);
        sts_why_set(why, "prober without a result callback");
        return STS_PERMFAIL;
    }
    if (p == NULL)
        goto nomem;
    p->o = *opts;
    if (p->o.interval_s == 0)
        p->o.interval_s = 21600;
    if (p->o.concurrency == 0)
        p->o.concurrency = 2;
    if (p->o.queue_max == 0)
        p->o.queue_max = 1024;
    if (p->o.max_tracked == 0)
        p->o.max_tracked = 20000;
    p->ca_file = dup_or_null(opts->probe.ca_file, &oom);
    p->helo_name = dup_or_null(opts->probe.helo_name, &oom);
    p->servers = dup_or_null(opts->dns.servers, &oom);
    p->o.probe.ca_file = p->ca_file;
    p->o.probe.helo_name = p->helo_name;
    p->o.dns.servers = p->servers;
    if (oom || !table_init(&p->seen, p->o.max_tracked) ||
        !table_init(&p->facts, p->o.max_tracked))
        goto nomem;
    if (pipe2(p->stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        prober_unmake(p);
        sts_why_set(why, "cannot make the prober's stop pipe");
        return STS_TEMPFAIL;
    }
    p->o.probe.cancel_fd = &p->stop_pipe[0];
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    *out = p;
    return STS_OK;
nomem:
    if (p != NULL)
        prober_unmake(p);
    sts_why_set(why, "out of memory");
    return STS_NOMEM;
}

static void *worker_main(void *arg);

sts_status sts_prober_start(sts_prober *p, sts_why *why)
{
    p->threads = sts_calloc_array(p->o.concurrency, sizeof(*p->threads));
    if (p->threads == NULL) {
        sts_why_set(why, "out of memory");
        return STS_NOMEM;
    }
    for (unsigned i = 0; i < p->o.concurrency; i++) {
        if (pthread_create(&p->threads[i], NULL, worker_main, p) != 0) {
            sts_why_set(why, "cannot start a probe thread");
            sts_prober_stop(p);
            return STS_TEMPFAIL;
        }
        p->nthreads++;
    }
    return STS_OK;
}

static void drop_queue(sts_prober *p)
{
    while (p->head != NULL) {
        job *j = p->head;

        p->head = j->next;
        free(j->pat);
        free(j);
    }
    p->tail = NULL;
    p->qlen = 0;
}

void sts_prober_stop(sts_prober *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    /* One byte makes the read end readable for good: every probe in
     * progress and every later wait sees it. */
    if (!p->stopping && write(p->stop_pipe[1], "x", 1) != 1)
        sts_log(STS_LOG_WARNING, "-", "probe-stop", "cannot wake the probes: %s",
                strerror(errno));
    p->stopping = true;
    drop_queue(p);
    pthread_cond_broadcast(&p->cv);
    pthread_cond_broadcast(&p->done_cv);
    pthread_mutex_unlock(&p->mu);
    for (size_t i = 0; i < p->nthreads; i++)
        (void)pthread_join(p->threads[i], NULL);
    p->nthreads = 0;
    free(p->threads);
    p->threads = NULL;
}

void sts_prober_free(sts_prober *p)
{
    if (p == NULL)
        return;
    sts_prober_stop(p);
    drop_queue(p);
    table_free(&p->seen);
    table_free(&p->facts);
    pthread_cond_destroy(&p->cv);
    pthread_cond_destroy(&p->done_cv);
    pthread_mutex_destroy(&p->mu);
    (void)close(p->stop_pipe[0]);
    (void)close(p->stop_pipe[1]);
    free(p->ca_file);
    free(p->helo_name);
    free(p->servers);
    free(p);
}

void sts_prober_get_stats(sts_prober *p, sts_prober_stats *st)
{
    pthread_mutex_lock(&p->mu);
    *st = p->st;
    st->waiting = p->qlen;
    pthread_mutex_unlock(&p->mu);
}

/* ------------------------------------------------------------ noting */

static bool mode_probed(const sts_prober *p, sts_mode m)
{
    return (m == STS_MODE_TESTING && p->o.testing) || (m == STS_MODE_ENFORCE && p->o.enforce);
}

/* Queue one job unless this (domain, id, mx) was queued within the
 * interval.  Under the mutex. */
static void enqueue(sts_prober *p, const char *domain, const char *id, const sts_policy *pol,
                    const char *mx, int64_t when)
{
    char key[SEEN_KEY_MAX];
    size_t total = 0;
    bool created;
    tent *e;
    job *j;
    char *q;

    seen_key(key, sizeof(key), domain, id, mx);
    e = table_get(&p->seen, key, when, p->o.interval_s, &created);
    if (e == NULL) {
        p->st.dropped++;
        return;
    }
    if (!created && when - e->t < (int64_t)p->o.interval_s)
        return;
    if (p->qlen >= p->o.queue_max)
        goto drop;
    for (size_t i = 0; i < pol->n_mx; i++)
        total += strlen(pol->mx[i]) + 1;
    if ((j = calloc(1, sizeof(*j))) == NULL)
        goto drop;
    if (total > 0 && (j->pat = malloc(total)) == NULL) {
        free(j);
        goto drop;
    }
    (void)snprintf(j->domain, sizeof(j->domain), "%s", domain);
    (void)snprintf(j->id, sizeof(j->id), "%s", id);
    (void)snprintf(j->mx, sizeof(j->mx), "%s", mx);
    j->mode = pol->mode;
    j->n_pat = pol->n_mx;
    q = j->pat;
    for (size_t i = 0; i < pol->n_mx; i++) {
        size_t l = strlen(pol->mx[i]) + 1;

        memcpy(q, pol->mx[i], l);
        q += l;
    }
    e->t = when;
    if (p->tail != NULL)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
    p->qlen++;
    p->st.queued++;
    pthread_cond_signal(&p->cv);
    return;
drop:
    /* Not queued: the next mail may try again. */
    if (created)
        e->t = when - (int64_t)p->o.interval_s;
    p->st.dropped++;
}

void sts_prober_note(sts_prober *p, const char *domain, const char *policy_id,
                     const sts_policy *pol, const char *const *mx_hosts, size_t n_mx,
                     bool mx_known)
{
    int64_t when;

    if (p == NULL || pol == NULL || domain == NULL || !mode_probed(p, pol->mode))
        return;
    if (policy_id == NULL)
        policy_id = "";
    when = now(p);
    pthread_mutex_lock(&p->mu);
    if (!p->stopping) {
        p->st.noted++;
        if (!mx_known || n_mx == 0)
            enqueue(p, domain, policy_id, pol, "", when);
        else
            for (size_t i = 0; i < n_mx && i < PROBER_MAX_MX; i++)
                if (mx_hosts[i] != NULL && strlen(mx_hosts[i]) <= STS_DOMAIN_MAX)
                    enqueue(p, domain, policy_id, pol, mx_hosts[i], when);
    }
    pthread_mutex_unlock(&p->mu);
}

/* ------------------------------------------------------------ working */

static void emit(sts_prober *p, const job *j, const char *mx, bool in, const sts_probe_out *out,
                 int64_t learnt)
{
    sts_probe_record rec = {
        .time = learnt,
        .domain = j->domain,
        .policy_id = j->id,
        .mode = j->mode,
        .mx = mx,
        .in_policy = in,
        .result = out->result,
        .ip = out->ip,
        .detail = out->detail,
    };

    p->o.on_result(p->o.result_arg, &rec);
    pthread_mutex_lock(&p->mu);
    p->st.records++;
    pthread_mutex_unlock(&p->mu);
}

static sts_dns *worker_dns(worker *w, char *why, size_t whysz)
{
    sts_why sub = { "" };

    if (w->dns == NULL && sts_dns_new(&w->p->o.dns, &w->dns, &sub) != STS_OK) {
        (void)snprintf(why, whysz, "resolver: %s", sub.text);
        w->dns = NULL;
    }
    return w->dns;
}

static void real_run(worker *w, const char *mx, sts_probe_out *out)
{
    char addrs[STS_DNS_MAX_ADDRS][STS_IPADDR_TEXT_MAX];
    const char *ap[STS_DNS_MAX_ADDRS];
    sts_dns *dns = worker_dns(w, out->detail, sizeof(out->detail));
    size_t n = 0;
    sts_why why = { "" };

    out->result = STS_PROBE_UNREACHABLE;
    if (dns == NULL)
        return;
    if (sts_dnssync_addrs(dns, mx, addrs, STS_DNS_MAX_ADDRS, &n, &why) != STS_OK || n == 0) {
        (void)snprintf(out->detail, sizeof(out->detail), "%s",
                       why.text[0] != '\0' ? why.text : "no address");
        return;
    }
    for (size_t i = 0; i < n; i++)
        ap[i] = addrs[i];
    if (sts_probe_run(&w->p->o.probe, mx, ap, n, out) != STS_OK &&
        out->result != STS_PROBE_UNREACHABLE)
        out->result = STS_PROBE_UNREACHABLE; /* our own failure: no verdict */
}

static size_t real_mx(worker *w, const char *domain, char (*hosts)[STS_DOMAIN_MAX + 1],
                      size_t max, char *why, size_t whysz)
{
    sts_dns *dns = worker_dns(w, why, whysz);
    sts_why sub = { "" };
    size_t n = 0;
    sts_status st;

    if (dns == NULL)
        return 0;
    st = sts_dnssync_mx(dns, domain, hosts, max, &n, &sub);
    if (st == STS_NOTFOUND && max > 0) {
        /* No MX record: the domain itself is the host (RFC 5321 5.1). */
        (void)snprintf(hosts[0], sizeof(hosts[0]), "%s", domain);
        return 1;
    }
    if (st != STS_OK)
        (void)snprintf(why, whysz, "%s", sub.text);
    return st == STS_OK ? n : 0;
}

static bool in_policy(const job *j, const char *mx)
{
    const char *q = j->pat;

    for (size_t i = 0; i < j->n_pat; i++) {
        if (sts_mx_match(q, mx))
            return true;
        q += strlen(q) + 1;
    }
    return false;
}

static void do_mx(worker *w, const job *j, const char *mx)
{
    sts_prober *p = w->p;
    sts_probe_out out;
    int64_t learnt;
    bool created, stopping;
    tent *f;

    memset(&out, 0, sizeof(out));
    if (!in_policy(j, mx)) {
        out.result = STS_PROBE_VALIDATION_FAILURE;
        (void)snprintf(out.detail, sizeof(out.detail),
                       "MX host %s matches none of the policy's mx patterns", mx);
        emit(p, j, mx, false, &out, now(p));
        return;
    }
    pthread_mutex_lock(&p->mu);
    for (;;) {
        learnt = now(p);
        f = table_get(&p->facts, mx, learnt, p->o.interval_s, &created);
        if (p->stopping) {
            pthread_mutex_unlock(&p->mu);
            return;
        }
        if (f == NULL || !f->busy)
            break;
        pthread_cond_wait(&p->done_cv, &p->mu);
    }
    if (f != NULL && f->have && learnt - f->t < (int64_t)p->o.interval_s) {
        out = f->out;
        learnt = f->t;
        p->st.cached++;
        pthread_mutex_unlock(&p->mu);
        emit(p, j, mx, true, &out, learnt);
        return;
    }
    if (f != NULL)
        f->busy = true;
    p->st.probes++;
    pthread_mutex_unlock(&p->mu);

    if (p->o.run != NULL)
        p->o.run(p->o.run_arg, mx, &out);
    else
        real_run(w, mx, &out);
    learnt = now(p);

    pthread_mutex_lock(&p->mu);
    stopping = p->stopping; /* then the probe may have been cut short: no fact */
    if (f != NULL) {
        f->busy = false;
        f->have = !stopping;
        f->out = out;
        f->t = learnt;
    }
    pthread_cond_broadcast(&p->done_cv);
    pthread_mutex_unlock(&p->mu);
    if (!stopping)
        emit(p, j, mx, true, &out, learnt);
}

static void do_job(worker *w, job *j)
{
    sts_prober *p = w->p;
    char hosts[PROBER_MAX_MX][STS_DOMAIN_MAX + 1];
    char why[STS_WHY_MAX] = "";
    size_t n;

    if (j->mx[0] != '\0') {
        do_mx(w, j, j->mx);
        return;
    }
    n = p->o.mx_lookup != NULL
            ? p->o.mx_lookup(p->o.run_arg, j->domain, hosts, PROBER_MAX_MX, why, sizeof(why))
            : real_mx(w, j->domain, hosts, PROBER_MAX_MX, why, sizeof(why));
    if (n == 0)
        sts_log(STS_LOG_INFO, "-", "probe-no-mx", "domain=%s reason=\"%s\"", j->domain,
                why[0] != '\0' ? why : "no MX host");
    for (size_t i = 0; i < n; i++) {
        char key[SEEN_KEY_MAX];
        bool created, fresh;
        int64_t when = now(p);
        tent *e;

        /* Each MX host found counts as noted, so that mail noted with its
         * MX hosts known does not probe it again within the interval. */
        seen_key(key, sizeof(key), j->domain, j->id, hosts[i]);
        pthread_mutex_lock(&p->mu);
        e = table_get(&p->seen, key, when, p->o.interval_s, &created);
        fresh = e != NULL && !created && when - e->t < (int64_t)p->o.interval_s;
        if (e != NULL && !fresh)
            e->t = when;
        pthread_mutex_unlock(&p->mu);
        if (!fresh)
            do_mx(w, j, hosts[i]);
    }
}

static job *take(sts_prober *p)
{
    job *j = p->head;

    if (j != NULL) {
        p->head = j->next;
        if (p->head == NULL)
            p->tail = NULL;
        p->qlen--;
    }
    return j;
}

bool sts_prober_run_one(sts_prober *p)
{
    worker w = { p, NULL };
    job *j;

    pthread_mutex_lock(&p->mu);
    j = take(p);
    pthread_mutex_unlock(&p->mu);
    if (j == NULL)
        return false;
    do_job(&w, j);
    free(j->pat);
    free(j);
    sts_dns_free(w.dns);
    return true;
}

static void *worker_main(void *arg)
{
    worker w = { arg, NULL };
    sts_prober *p = w.p;

    for (;;) {
        job *j;

        pthread_mutex_lock(&p->mu);
        while (!p->stopping && p->head == NULL)
            pthread_cond_wait(&p->cv, &p->mu);
        j = p->stopping ? NULL : take(p);
        pthread_mutex_unlock(&p->mu);
        if (j == NULL)
            break;
        do_job(&w, j);
        free(j->pat);
        free(j);
    }
    sts_dns_free(w.dns);
    return NULL;
}
