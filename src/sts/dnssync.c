/*
 * dnssync.c - blocking lookups over dns.h (see dnssync.h): start one
 * query, then poll the channel's sockets and let c-ares run its timers
 * until the callback has run.  c-ares ends every query (answer, or its
 * timeout after the configured tries), so the loop ends too.
 */
#include "sts/dnssync.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

typedef struct sync_req {
    bool done;
    sts_status st;
    char (*hosts)[STS_DOMAIN_MAX + 1];
    char (*addrs)[STS_IPADDR_TEXT_MAX];
    size_t max, n;
    char why[STS_WHY_MAX];
} sync_req;

static void run(sts_dns *dns, sync_req *q)
{
    while (!q->done) {
        struct pollfd fds[STS_DNS_MAX_POLLFDS];
        int n = sts_dns_pollfds(dns, fds, STS_DNS_MAX_POLLFDS);
        int t = sts_dns_timeout_ms(dns, 1000);

        if (poll(fds, (nfds_t)n, t) < 0 && errno != EINTR)
            n = 0;
        sts_dns_process(dns, fds, n);
    }
}

/* The query is over: keep its status and reason; true if it found records. */
static bool req_finish(sync_req *q, sts_status st, const char *why)
{
    q->done = true;
    q->st = st;
    (void)snprintf(q->why, sizeof(q->why), "%s", why != NULL ? why : "");
    return st == STS_OK;
}

static void on_mx(void *arg, sts_status st, const sts_dns_mx *res, const char *why)
{
    sync_req *q = arg;

    if (!req_finish(q, st, why))
        return;
    for (size_t i = 0; i < res->n && q->n < q->max; i++) {
        size_t len = strlen(res->host[i]);

        if (len > STS_DOMAIN_MAX)
            continue;
        memcpy(q->hosts[q->n], res->host[i], len + 1);
        q->n++;
    }
}

static void on_addrs(void *arg, sts_status st, const sts_dns_addrs *res, const char *why)
{
    sync_req *q = arg;

    if (!req_finish(q, st, why))
        return;
    for (size_t i = 0; i < res->n && q->n < q->max; i++) {
        size_t len = strlen(res->addr[i]);

        if (len >= STS_IPADDR_TEXT_MAX)
            continue;
        memcpy(q->addrs[q->n], res->addr[i], len + 1);
        q->n++;
    }
}

sts_status sts_dnssync_mx(sts_dns *dns, const char *name, char (*hosts)[STS_DOMAIN_MAX + 1],
                          size_t max, size_t *n, sts_why *why)
{
    sync_req q = { .hosts = hosts, .max = max };

    sts_dns_mx_query(dns, name, on_mx, &q);
    run(dns, &q);
    *n = q.n;
    if (q.st != STS_OK)
        sts_why_set(why, "MX %s: %s", name, q.why);
    return q.st;
}

sts_status sts_dnssync_addrs(sts_dns *dns, const char *host, char (*addrs)[STS_IPADDR_TEXT_MAX],
                             size_t max, size_t *n, sts_why *why)
{
    sync_req q = { .addrs = addrs, .max = max };

    sts_dns_addrs_query(dns, host, on_addrs, &q);
    run(dns, &q);
    *n = q.n;
    if (q.st != STS_OK)
        sts_why_set(why, "addresses of %s: %s", host, q.why);
    return q.st;
}
