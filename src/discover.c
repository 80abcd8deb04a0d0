/*
 * discover.c - the RFC 8461 section 3 discovery state machine:
 *   1. TXT _mta-sts.<domain>   (3.1: discard non-v=STSv1, exactly one)
 *   2. A/AAAA mta-sts.<domain> (our resolver, handed to the fetcher)
 *   3. HTTPS GET of the policy (3.3), 4. parse and validate it (3.2).
 * Each step's failure is mapped to an outcome (outcome.h) with the RFC 8460
 * 4.3 result type, keeping "the server said no" (none) apart from "no
 * answer now" (temperror).
 */
#include "discover.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fetch.h"
#include "policy.h"
#include "txt.h"

#define DISCOVER_MAX_POLLFDS STS_DNS_MAX_POLLFDS
#define DISCOVER_MAX_MX 16

struct sts_discover {
    sts_dns *dns;
    sts_fetch *fetch;
    size_t pending;
    bool closing;
};

typedef struct job {
    sts_discover *d;
    sts_discover_mode mode;
    char known_id[STS_ID_MAX + 1];
    sts_discover_cb *cb;
    void *arg;
    sts_outcome o;
    char name[STS_DOMAIN_MAX + 16];
    /* The domain's MX hosts are looked up beside the policy fetch, so an
     * enforce policy that allows none of them can be told at once. */
    unsigned parts;   /* callbacks outstanding: the policy chain, the MX query */
    sts_status mx_status;
    bool null_mx;
    size_t nmx;
    char mx[DISCOVER_MAX_MX][STS_DOMAIN_MAX + 1];
} job;

sts_status sts_discover_new(const sts_config *cfg, sts_discover **out, sts_why *why)
{
    sts_dns_opts dopts = { 0 };
    sts_fetch_opts fopts = { 0 };
    sts_discover *d;
    sts_status st;

    *out = NULL;
    d = calloc(1, sizeof(*d));
    if (d == NULL) {
        sts_why_set(why, "out of memory");
        return STS_NOMEM;
    }
    dopts.servers = cfg->dns_servers;
    dopts.timeout_ms = cfg->dns_timeout_ms;
    dopts.tries = cfg->dns_tries;
    st = sts_dns_new(&dopts, &d->dns, why);
    if (st != STS_OK)
        goto fail;
    fopts.ca_file = cfg->ca_file;
    fopts.connect_timeout_ms = cfg->https_connect_timeout_ms;
    fopts.timeout_ms = cfg->https_timeout_ms;
    fopts.port = cfg->policy_port;
    fopts.max_body = STS_POLICY_MAX_BODY;
    st = sts_fetch_new(&fopts, &d->fetch, why);
    if (st != STS_OK)
        goto fail;
    *out = d;
    return STS_OK;
fail:
    sts_dns_free(d->dns);
    free(d);
    return st;
}

void sts_discover_free(sts_discover *d)
{
    if (d == NULL)
        return;
    d->closing = true;
    /* Fetches first: their callbacks end jobs without touching DNS; DNS
     * callbacks of the remaining jobs see `closing` and end them too. */
    sts_fetch_free(d->fetch);
    d->fetch = NULL;
    sts_dns_free(d->dns);
    free(d);
}

size_t sts_discover_pending(const sts_discover *d)
{
    return d->pending;
}

void sts_discover_wakeup(sts_discover *d)
{
    sts_fetch_wakeup(d->fetch);
}

/* Compare an enforce policy with the MX hosts found (RFC 8461 4.1); a
 * domain without MX records receives mail at its own name (RFC 5321 5.1). */
static void check_mx(job *j)
{
    const sts_policy *p = j->o.policy;

    if (p == NULL || p->mode != STS_MODE_ENFORCE || j->null_mx)
        return;
    if (j->mx_status == STS_OK && j->nmx > 0) {
        j->o.mx_checked = true;
        j->o.mx_mismatch = true;
        for (size_t i = 0; i < j->nmx; i++)
            if (sts_policy_mx_match(p, j->mx[i]))
                j->o.mx_mismatch = false;
    } else if (j->mx_status == STS_NOTFOUND) {
        j->o.mx_checked = true;
        j->o.mx_mismatch = !sts_policy_mx_match(p, j->o.domain);
    }
}

/* One of the job's parallel parts ended; the last one delivers. */
static void job_part_done(job *j)
{
    if (--j->parts > 0)
        return;
    check_mx(j);
    j->d->pending--;
    j->cb(j->arg, &j->o);
    sts_outcome_clear(&j->o);
    free(j);
}

/* End the policy chain: error text is prefix + why (both may be NULL). */
static void job_finish(job *j, sts_result r, sts_report_type rt, const char *prefix, const char *why)
{
    j->o.result = r;
    j->o.report_type = rt;
    if (prefix != NULL || why != NULL)
        (void)snprintf(j->o.error, sizeof(j->o.error), "%s%s", prefix != NULL ? prefix : "",
                       why != NULL ? why : "");
    job_part_done(j);
}

static void on_job_mx(void *arg, sts_status st, const sts_dns_mx *res, const char *why)
{
    job *j = arg;

    (void)why;
    j->mx_status = st;
    j->null_mx = res->null_mx;
    for (size_t i = 0; st == STS_OK && i < res->n && j->nmx < DISCOVER_MAX_MX; i++)
        (void)snprintf(j->mx[j->nmx++], STS_DOMAIN_MAX + 1, "%s", res->host[i]);
    job_part_done(j);
}

static void on_fetch(void *arg, const sts_fetch_result *res)
{
    job *j = arg;
    sts_why why;
    sts_status st;

    switch (res->err) {
    case STS_FETCH_OK:
        break;
    case STS_FETCH_NETWORK:
    case STS_FETCH_HTTP:
        job_finish(j, STS_RESULT_TEMPERROR, STS_RT_FETCH_ERROR, NULL, res->why);
        return;
    case STS_FETCH_WEBPKI:
        job_finish(j, STS_RESULT_INVALID, STS_RT_WEBPKI_INVALID, NULL, res->why);
        return;
    case STS_FETCH_MEDIA_TYPE:
    case STS_FETCH_TOO_BIG:
        job_finish(j, STS_RESULT_INVALID, STS_RT_POLICY_INVALID, NULL, res->why);
        return;
    case STS_FETCH_LOCAL:
        job_finish(j, STS_RESULT_TEMPERROR, STS_RT_NONE, NULL, res->why);
        return;
    }
    why.text[0] = '\0';
    st = sts_policy_parse(res->body, res->body_len, &j->o.policy, &why);
    switch (st) {
    case STS_OK:
        job_finish(j, STS_RESULT_POLICY, STS_RT_NONE, NULL, NULL);
        return;
    case STS_NOMEM:
        job_finish(j, STS_RESULT_TEMPERROR, STS_RT_NONE, NULL, "out of memory parsing the policy");
        return;
    default:
        job_finish(j, STS_RESULT_INVALID, STS_RT_POLICY_INVALID, "invalid policy: ", why.text);
        return;
    }
}

static void on_addrs(void *arg, sts_status st, const sts_dns_addrs *res, const char *why)
{
    job *j = arg;
    sts_why fwhy;

    if (j->d->closing) {
        job_finish(j, STS_RESULT_TEMPERROR, STS_RT_NONE, NULL, "discovery cancelled: shutting down");
        return;
    }
    switch (st) {
    case STS_OK:
        break;
    case STS_NOMEM:
        job_finish(j, STS_RESULT_TEMPERROR, STS_RT_NONE, NULL, "out of memory");
        return;
    default:
        /* The TXT record says a policy exists but its host cannot be found:
         * a fetch error in RFC 8460 terms, whether the DNS said no or failed. */
        job_finish(j, STS_RESULT_TEMPERROR, STS_RT_FETCH_ERROR, "policy host: ", why);
        return;
    }
    fwhy.text[0] = '\0';
    st = sts_fetch_start(j->d->fetch, j->o.domain, res->addr, res->n, on_fetch, j, &fwhy);
    if (st != STS_OK)
        job_finish(j, STS_RESULT_TEMPERROR, st == STS_NOMEM ? STS_RT_NONE : STS_RT_FETCH_ERROR,
                   NULL, fwhy.text);
}

/* Step 2: the policy host's addresses, then the fetch (on_addrs); the
 * domain's MX hosts at the same time. */
static void fetch_policy(job *j)
{
    if (!j->d->closing) {
        j->parts++;
        sts_dns_mx_query(j->d->dns, j->o.domain, on_job_mx, j);
    }
    (void)snprintf(j->name, sizeof(j->name), "mta-sts.%s", j->o.domain);
    sts_dns_addrs_query(j->d->dns, j->name, on_addrs, j);
}

static void on_txt(void *arg, sts_status st, const sts_dns_txt *res, const char *why)
{
    job *j = arg;
    sts_txt_rr rr[STS_DNS_MAX_RECORDS];
    sts_txt txt;
    sts_why twhy;
    sts_status sel;

    if (j->d->closing) {
        job_finish(j, STS_RESULT_TEMPERROR, STS_RT_NONE, NULL, "discovery cancelled: shutting down");
        return;
    }
    if (st != STS_OK && j->mode == STS_DISCOVER_REFRESH && st != STS_NOMEM) {
        /* A refresh renews the policy independently of the TXT record. */
        memcpy(j->o.id, j->known_id, sizeof(j->o.id));
        fetch_policy(j);
        return;
    }
    switch (st) {
    case STS_OK:
        break;
    case STS_NOTFOUND:
        job_finish(j, STS_RESULT_NONE, STS_RT_NONE, "no MTA-STS TXT record: ", why);
        return;
    case STS_PERMFAIL:
        job_finish(j, STS_RESULT_NONE, STS_RT_NONE, "unusable MTA-STS TXT record: ", why);
        return;
    case STS_NOMEM:
        job_finish(j, STS_RESULT_TEMPERROR, STS_RT_NONE, NULL, "out of memory");
        return;
    default:
        job_finish(j, STS_RESULT_TEMPERROR, STS_RT_NONE, "DNS: ", why);
        return;
    }
    for (size_t i = 0; i < res->n && i < STS_DNS_MAX_RECORDS; i++) {
        rr[i].data = res->rec[i];
        rr[i].len = res->len[i];
    }
    twhy.text[0] = '\0';
    sel = sts_txt_select(rr, res->n < STS_DNS_MAX_RECORDS ? res->n : STS_DNS_MAX_RECORDS, &txt, &twhy);
    if (sel != STS_OK && j->mode == STS_DISCOVER_REFRESH) {
        memcpy(j->o.id, j->known_id, sizeof(j->o.id));
        fetch_policy(j);
        return;
    }
    switch (sel) {
    case STS_OK:
        break;
    case STS_NOTFOUND:
        job_finish(j, STS_RESULT_NONE, STS_RT_NONE, NULL,
                   "no MTA-STS TXT record: no TXT record starts with v=STSv1");
        return;
    default:
        /* RFC 8461 3.1: several or malformed records = no MTA-STS. */
        job_finish(j, STS_RESULT_NONE, STS_RT_NONE, "unusable MTA-STS TXT record: ", twhy.text);
        return;
    }
    memcpy(j->o.id, txt.id, sizeof(j->o.id));
    if (j->mode == STS_DISCOVER_RECHECK && strcmp(j->o.id, j->known_id) == 0) {
        j->o.unchanged = true;
        job_finish(j, STS_RESULT_POLICY, STS_RT_NONE, NULL, NULL);
        return;
    }
    fetch_policy(j);
}

sts_status sts_discover_start_mode(sts_discover *d, const char *domain, sts_discover_mode mode,
                                   const char *known_id, sts_discover_cb *cb, void *arg)
{
    job *j = calloc(1, sizeof(*j));

    if (j == NULL)
        return STS_NOMEM;
    j->d = d;
    j->mode = mode;
    j->cb = cb;
    j->arg = arg;
    if (known_id != NULL)
        (void)snprintf(j->known_id, sizeof(j->known_id), "%s", known_id);
    j->parts = 1;
    j->mx_status = STS_TEMPFAIL;
    sts_outcome_init(&j->o, domain);
    (void)snprintf(j->name, sizeof(j->name), "_mta-sts.%s", j->o.domain);
    d->pending++;
    sts_dns_txt_query(d->dns, j->name, on_txt, j);
    return STS_OK;
}

sts_status sts_discover_start(sts_discover *d, const char *domain, sts_discover_cb *cb, void *arg)
{
    return sts_discover_start_mode(d, domain, STS_DISCOVER_FULL, NULL, cb, arg);
}

typedef struct mx_job {
    sts_discover *d;
    sts_dns_mx_cb *cb;
    void *arg;
} mx_job;

static void on_mx(void *arg, sts_status st, const sts_dns_mx *res, const char *why)
{
    mx_job *m = arg;

    m->d->pending--;
    m->cb(m->arg, st, res, why);
    free(m);
}

void sts_discover_mx(sts_discover *d, const char *domain, sts_dns_mx_cb *cb, void *arg)
{
    mx_job *m = calloc(1, sizeof(*m));
    sts_dns_mx empty = { 0, NULL, NULL, false };

    if (m == NULL) {
        cb(arg, STS_NOMEM, &empty, "out of memory");
        return;
    }
    m->d = d;
    m->cb = cb;
    m->arg = arg;
    d->pending++;
    sts_dns_mx_query(d->dns, domain, on_mx, m);
}

sts_status sts_discover_run(sts_discover *d, int timeout_ms)
{
    struct pollfd fds[DISCOVER_MAX_POLLFDS];
    int n = sts_dns_pollfds(d->dns, fds, DISCOVER_MAX_POLLFDS);
    int wait_ms = sts_dns_timeout_ms(d->dns, timeout_ms);
    sts_status st;

    /* One wait covers both libraries: curl polls its own sockets plus the
     * resolver's, and returns early on sts_discover_wakeup(). */
    st = sts_fetch_wait(d->fetch, fds, n, wait_ms);
    sts_dns_process(d->dns, fds, n);
    return st;
}
