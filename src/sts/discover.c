/*
 * discover.c - the RFC 8461 section 3 discovery state machine:
 *   1. TXT _mta-sts.<domain>   (3.1: discard non-v=STSv1, exactly one)
 *   2. A/AAAA mta-sts.<domain> (our resolver, handed to the fetcher)
 *   3. HTTPS GET of the policy (3.3), 4. parse and validate it (3.2).
 * Each step's failure is mapped to an outcome (outcome.h) with the RFC 8460
 * 4.3 result type, keeping "the server said no" (none) apart from "no
 * answer now" (temperror).
 * Steps 2-3 (the fetch stage, slow when a policy host is) run for at most
 * opts.max_fetches discoveries at once; the others wait parked, in order,
 * so a burst of domains with slow policy hosts cannot hold every
 * discovery slot of the caller while the TXT lookups of other domains
 * (most answer "no record" in milliseconds) could finish.  The limit
 * bounds the TLS handshakes competing for the CPU in a burst; a fetch
 * still running opts.fetch_lend_ms after it began waits on its host, so
 * while others are parked it gives up its slot (it is "lent") and goes on
 * outside the count: slow or silent policy hosts, however many, hold no
 * quick domain's policy back for longer than that.
 * Beside the policy: the domain's MX hosts (RFC 8461 4.1), and when DANE
 * lookups are on, the TLSA records of those hosts (RFC 7672 2.2: only a
 * validated MX RRset leads to TLSA lookups; RFC 8461 2: DANE first).
 */
#include "sts/discover.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "sts/fetch.h"
#include "sts/policy.h"
#include "sts/txt.h"

#define DISCOVER_MAX_POLLFDS STS_DNS_MAX_POLLFDS

struct sts_discover {
    sts_dns *dns;
    sts_fetch *fetch;
    size_t pending;
    bool closing;
    atomic_bool dane; /* look up TLSA records of the MX hosts */
    /* The fetch stage (policy host address + HTTPS): jobs in it, the
     * limit (0: none), the jobs waiting for it (FIFO), and whether
     * fetch_slot_release() is starting parked ones (it may be re-entered
     * through callbacks that run synchronously). */
    size_t fetching;
    unsigned max_fetches;
    struct job *park_head, *park_tail;
    size_t parked;
    bool draining;
    /* The jobs counted in `fetching`, oldest first (they entered the stage
     * in this order), and the fetches that lent their slot. */
    struct job *slot_head, *slot_tail;
    size_t lent;
    unsigned lend_ms;
};

typedef struct job {
    sts_discover *d;
    sts_discover_mode mode;
    char known_id[STS_ID_MAX + 1];
    sts_discover_cb *cb;
    void *arg;
    sts_outcome o;
    char name[STS_DOMAIN_MAX + 16];
    /* The domain's MX hosts are looked up beside the policy fetch (and
     * the TXT re-check), so an enforce policy that allows none of them can
     * be told at once; they are kept in the outcome (o.mx_hosts). */
    unsigned parts;   /* callbacks outstanding: the policy chain, the MX query,
                         the TLSA queries */
    size_t dane_hosts;   /* MX hosts whose TLSA records were looked up */
    size_t dane_covered; /* ... with validated, usable TLSA records */
    bool fetch_slot;     /* counted in d->fetching until the policy chain ends */
    bool lent;           /* in the fetch stage, its slot given up (d->lent) */
    sts_fetch_xfer *xfer; /* its transfer while one runs (NULL: address lookup) */
    int64_t fetch_since; /* ms (monotonic) it entered the fetch stage */
    struct job *park_next;
    struct job *slot_prev, *slot_next; /* d->slot_head list while fetch_slot */
} job;

sts_status sts_discover_new(const sts_discover_opts *opts, sts_discover **out, sts_why *why)
{
    sts_fetch_opts fopts = opts->fetch;
    sts_discover *d;
    sts_status st;

    *out = NULL;
    d = calloc(1, sizeof(*d));
    if (d == NULL) {
        sts_why_set(why, "out of memory");
        return STS_NOMEM;
    }
    st = sts_dns_new(&opts->dns, &d->dns, why);
    if (st != STS_OK)
        goto fail;
    fopts.max_body = STS_POLICY_MAX_BODY;
    d->max_fetches = opts->max_fetches;
    d->lend_ms = opts->fetch_lend_ms != 0 ? opts->fetch_lend_ms : STS_DISCOVER_LEND_MS;
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

static void job_finish(job *j, sts_result r, sts_report_type rt, const char *prefix,
                       const char *why);

static job *unpark(sts_discover *d)
{
    job *j = d->park_head;

    if (j != NULL) {
        d->park_head = j->park_next;
        if (d->park_head == NULL)
            d->park_tail = NULL;
        j->park_next = NULL;
        d->parked--;
    }
    return j;
}

void sts_discover_free(sts_discover *d)
{
    job *j;

    if (d == NULL)
        return;
    d->closing = true;
    /* Fetches first: their callbacks end jobs without touching DNS (and
     * start no parked job, closing); then the parked jobs, whose MX
     * queries may still run; DNS callbacks of the remaining jobs see
     * `closing` and end them too. */
    sts_fetch_free(d->fetch);
    d->fetch = NULL;
    while ((j = unpark(d)) != NULL)
        job_finish(j, STS_RESULT_TEMPERROR, STS_RT_NONE, NULL,
                   "discovery cancelled: shutting down");
    sts_dns_free(d->dns);
    free(d);
}

size_t sts_discover_pending(const sts_discover *d)
{
    return d->pending;
}

void sts_discover_fetches(const sts_discover *d, size_t *running, size_t *parked)
{
    *running = d->fetching + d->lent;
    *parked = d->parked;
}

void sts_discover_set_dane(sts_discover *d, bool on)
{
    atomic_store(&d->dane, on);
}

sts_status sts_discover_set_ca(sts_discover *d, const char *ca_file, sts_why *why)
{
    return sts_fetch_set_ca(d->fetch, ca_file, why);
}

void sts_discover_wakeup(sts_discover *d)
{
    sts_fetch_wakeup(d->fetch);
}

/* Compare an enforce policy with the MX hosts found (RFC 8461 4.1); a
 * null MX (no host at all) is not compared. */
static void check_mx(job *j)
{
    const sts_policy *p = j->o.policy;

    if (p == NULL || p->mode != STS_MODE_ENFORCE || !j->o.mx_known || j->o.n_mx == 0)
        return;
    j->o.mx_checked = true;
    j->o.mx_mismatch = true;
    for (size_t i = 0; i < j->o.n_mx; i++)
        if (sts_policy_mx_match(p, j->o.mx_hosts[i]))
            j->o.mx_mismatch = false;
}

/* One of the job's parallel parts ended; the last one delivers. */
static void job_part_done(job *j)
{
    if (--j->parts > 0)
        return;
    if (j->dane_hosts > 0)
        j->o.dane = j->dane_covered == j->dane_hosts ? STS_DANE_ALL
                    : j->dane_covered > 0            ? STS_DANE_PARTIAL
                                                     : STS_DANE_NONE;
    check_mx(j);
    j->d->pending--;
    j->cb(j->arg, &j->o);
    sts_outcome_clear(&j->o);
    free(j);
}

static void fetch_slot_release(sts_discover *d);

/* j no longer holds a fetch slot: off the list of those that do. */
static void slot_unlink(sts_discover *d, job *j)
{
    if (j->slot_prev != NULL)
        j->slot_prev->slot_next = j->slot_next;
    else
        d->slot_head = j->slot_next;
    if (j->slot_next != NULL)
        j->slot_next->slot_prev = j->slot_prev;
    else
        d->slot_tail = j->slot_prev;
    j->slot_prev = j->slot_next = NULL;
    j->fetch_slot = false;
}

/* End the policy chain: error text is prefix + why (both may be NULL).
 * A job in the fetch stage leaves it here, however the fetch ended, and
 * the next parked job enters it (a lent slot has been given on already). */
static void job_finish(job *j, sts_result r, sts_report_type rt, const char *prefix, const char *why)
{
    sts_discover *d = j->d;
    bool slot = j->fetch_slot;

    if (slot)
        slot_unlink(d, j);
    if (j->lent) {
        j->lent = false;
        d->lent--;
    }
    j->o.result = r;
    j->o.report_type = rt;
    if (j->o.failure == NULL)
        j->o.failure = r == STS_RESULT_POLICY ? "none" : r == STS_RESULT_NONE ? "no-policy" : "local";
    if (prefix != NULL || why != NULL)
        (void)snprintf(j->o.error, sizeof(j->o.error), "%s%s", prefix != NULL ? prefix : "",
                       why != NULL ? why : "");
    job_part_done(j);
    if (slot)
        fetch_slot_release(d);
}

static void on_job_tlsa(void *arg, sts_status st, const sts_dns_tlsa *res, const char *why)
{
    job *j = arg;

    (void)why;
    /* Only validated, usable records count: anything else (insecure,
     * unusable, not found, a failed lookup) leaves MTA-STS in charge. */
    if (st == STS_OK && res->secure && res->usable > 0)
        j->dane_covered++;
    job_part_done(j);
}

/* TLSA records of every MX host, each one more part of the job. */
static void query_tlsa(job *j)
{
    sts_outcome *o = &j->o;

    j->dane_hosts = o->n_mx;
    for (size_t i = 0; i < o->n_mx; i++) {
        char name[STS_DOMAIN_MAX + 16];

        (void)snprintf(name, sizeof(name), "_25._tcp.%s", o->mx_hosts[i]);
        j->parts++;
        sts_dns_tlsa_query(j->d->dns, name, on_job_tlsa, j);
    }
}

static void on_job_mx(void *arg, sts_status st, const sts_dns_mx *res, const char *why)
{
    job *j = arg;
    sts_outcome *o = &j->o;
    bool dane = atomic_load(&j->d->dane);

    (void)why;
    if (st == STS_OK) {
        o->mx_known = true;
        for (size_t i = 0; i < res->n && o->n_mx < STS_OUTCOME_MAX_MX; i++)
            (void)snprintf(o->mx_hosts[o->n_mx++], STS_DOMAIN_MAX + 1, "%s", res->host[i]);
        if (dane)
            o->dane = STS_DANE_NONE;
        /* RFC 7672 2.2.1: TLSA of an MX host counts only when the MX
         * RRset itself was validated. */
        if (dane && res->secure && o->n_mx > 0 && !j->d->closing)
            query_tlsa(j);
    } else if (st == STS_NOTFOUND) {
        /* No MX record: mail goes to the domain itself (RFC 5321 5.1). */
        o->mx_known = true;
        o->n_mx = 1;
        memcpy(o->mx_hosts[0], o->domain, sizeof(o->mx_hosts[0]));
        if (dane)
            o->dane = STS_DANE_NONE; /* not looked at: see the man page */
    }
    job_part_done(j);
}

/* The domain's MX hosts, as one more part of the job. */
static void query_mx(job *j)
{
    if (j->d->closing)
        return;
    j->parts++;
    sts_dns_mx_query(j->d->dns, j->o.domain, on_job_mx, j);
}

static void on_fetch(void *arg, const sts_fetch_result *res)
{
    job *j = arg;
    sts_why why;
    sts_status st;

    j->xfer = NULL; /* freed once this returns */
    switch (res->err) {
    case STS_FETCH_OK:
        break;
    case STS_FETCH_NETWORK:
    case STS_FETCH_REFUSED: /* RFC 8461 3.3: any fetch failure; the cached policy stays */
    case STS_FETCH_HTTP:
        j->o.failure = res->err == STS_FETCH_NETWORK   ? "https-network"
                       : res->err == STS_FETCH_REFUSED ? "https-refused-address"
                                                       : "https-status";
        job_finish(j, STS_RESULT_TEMPERROR, STS_RT_FETCH_ERROR, NULL, res->why);
        return;
    case STS_FETCH_WEBPKI:
        j->o.failure = "https-certificate";
        job_finish(j, STS_RESULT_INVALID, STS_RT_WEBPKI_INVALID, NULL, res->why);
        return;
    case STS_FETCH_MEDIA_TYPE:
    case STS_FETCH_TOO_BIG:
        j->o.failure = res->err == STS_FETCH_MEDIA_TYPE ? "https-media-type" : "https-too-big";
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
        j->o.failure = "policy-syntax";
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
        j->o.failure = "dns-policy-host";
        job_finish(j, STS_RESULT_TEMPERROR, STS_RT_FETCH_ERROR, "policy host: ", why);
        return;
    }
    fwhy.text[0] = '\0';
    st = sts_fetch_start(j->d->fetch, j->o.domain, res->addr, res->n, on_fetch, j, &j->xfer,
                         &fwhy);
    if (st != STS_OK)
        job_finish(j, STS_RESULT_TEMPERROR, st == STS_NOMEM ? STS_RT_NONE : STS_RT_FETCH_ERROR,
                   NULL, fwhy.text);
}

/* Enter the fetch stage: the policy host's addresses, then the fetch
 * (on_addrs); job_finish leaves it. */
static void fetch_begin(job *j)
{
    sts_discover *d = j->d;

    d->fetching++;
    j->fetch_slot = true;
    j->fetch_since = sts_mono_ms();
    j->slot_prev = d->slot_tail;
    j->slot_next = NULL;
    if (d->slot_tail != NULL)
        d->slot_tail->slot_next = j;
    else
        d->slot_head = j;
    d->slot_tail = j;
    (void)snprintf(j->name, sizeof(j->name), "mta-sts.%s", j->o.domain);
    sts_dns_addrs_query(j->d->dns, j->name, on_addrs, j);
}

/* A job left the fetch stage: start parked ones while there is room.  A
 * start may end synchronously (and come back here): the outer call then
 * goes on with the queue instead of recursing. */
static void fetch_slot_release(sts_discover *d)
{
    d->fetching--;
    if (d->draining)
        return;
    d->draining = true;
    while (d->park_head != NULL && !d->closing &&
           (d->max_fetches == 0 || d->fetching < d->max_fetches))
        fetch_begin(unpark(d));
    d->draining = false;
}

/* Step 2: the policy (fetch stage, or parked until it has room, in
 * order); the domain's MX hosts at once, beside it. */
static void fetch_policy(job *j)
{
    sts_discover *d = j->d;

    if (d->closing) {
        job_finish(j, STS_RESULT_TEMPERROR, STS_RT_NONE, NULL, "discovery cancelled: shutting down");
        return;
    }
    query_mx(j);
    if (d->max_fetches != 0 && (d->fetching >= d->max_fetches || d->park_head != NULL)) {
        if (d->park_tail != NULL)
            d->park_tail->park_next = j;
        else
            d->park_head = j;
        d->park_tail = j;
        d->parked++;
        return;
    }
    fetch_begin(j);
}

static void on_txt(void *arg, sts_status st, const sts_dns_txt *res, const char *why)
{
    job *j = arg;
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
        j->o.failure = "dns-txt";
        job_finish(j, STS_RESULT_TEMPERROR, STS_RT_NONE, "DNS: ", why);
        return;
    }
    twhy.text[0] = '\0';
    sel = sts_txt_select(res->rr, res->n, &txt, &twhy);
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
        /* Same policy; its MX hosts may have changed meanwhile. */
        j->o.unchanged = true;
        query_mx(j);
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
    sts_dns_mx empty = { 0, NULL, NULL, false, false };

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

/* How long j must have been in the fetch stage before it lends its slot:
 * lend_ms while it waits on its host or the resolver (address lookup, TCP
 * connection, response after the handshake), three times that in its TLS
 * handshake, which is the CPU work the limit is for (on a busy CPU a
 * handshake is slow because the others are; a host that stalls its
 * handshake still gives its slot up, later). */
static int64_t lend_after(const sts_discover *d, const job *j)
{
    if (j->xfer != NULL && sts_fetch_xfer_phase(j->xfer) == STS_FETCH_HANDSHAKE)
        return 3 * (int64_t)d->lend_ms;
    return d->lend_ms;
}

/* While discoveries are parked, fetches that have waited long enough give
 * up their slots, oldest first; returns ms until the next check, or -1. */
static int lend_slots(sts_discover *d)
{
    int64_t now = sts_mono_ms(), next = -1;
    job *j = d->slot_head;

    while (j != NULL && d->park_head != NULL && !d->closing) {
        job *after = j->slot_next;
        int64_t age = now - j->fetch_since;

        if (age < d->lend_ms) {
            /* the rest are younger still */
            next = next < 0 || d->lend_ms - age < next ? d->lend_ms - age : next;
            break;
        }
        if (age >= lend_after(d, j)) {
            slot_unlink(d, j);
            j->lent = true;
            d->lent++;
            fetch_slot_release(d); /* may start (and end) parked jobs */
            /* the list may have changed: a started job goes at its end,
             * young; a job that ended left it */
            after = d->slot_head;
        } else {
            int64_t wait = lend_after(d, j) - age;

            next = next < 0 || wait < next ? wait : next;
            if (next > d->lend_ms / 4)
                next = d->lend_ms / 4; /* its phase may change before */
        }
        j = after;
    }
    return next < 0 ? -1 : (int)next;
}

sts_status sts_discover_run(sts_discover *d, int timeout_ms)
{
    struct pollfd fds[DISCOVER_MAX_POLLFDS];
    int lend = lend_slots(d);
    int n = sts_dns_pollfds(d->dns, fds, DISCOVER_MAX_POLLFDS);
    int wait_ms = sts_dns_timeout_ms(
        d->dns, lend >= 0 && (timeout_ms < 0 || lend < timeout_ms) ? lend : timeout_ms);
    sts_status st;

    /* One wait covers both libraries: curl polls its own sockets plus the
     * resolver's, and returns early on sts_discover_wakeup(). */
    st = sts_fetch_wait(d->fetch, fds, n, wait_ms);
    sts_dns_process(d->dns, fds, n);
    return st;
}
