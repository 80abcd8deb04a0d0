/*
 * prober.h - when to probe which MX host (sts/probe.h), in the daemon: the
 * MX hosts of domains with a testing-mode policy (and, if asked, enforce
 * ones) that mail was seen for, each (policy domain, policy id, MX) at
 * most once per interval, each MX host's TLS facts shared by the domains
 * it serves for that interval.  An MX host that none of the policy's mx
 * patterns match (RFC 8461 4.1) is a validation-failure without a
 * connection.
 *
 * sts_prober_note() is what the milter and the socketmap call: it takes
 * one mutex, looks in a hash table and may append to a bounded queue; it
 * never waits for the network.  A small pool of threads (concurrency)
 * takes jobs from the queue and does the blocking work: MX and address
 * lookups on a resolver of its own (sts/dnssync.h), the probe, whose
 * every wait is bounded.  A queue that is full drops the note (counted);
 * the next mail for the domain notes it again.  Results go to a callback
 * (the decision log), from a worker thread.
 */
#ifndef STS_PROBER_H
#define STS_PROBER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/status.h"
#include "sts/dns.h"
#include "sts/domain.h"
#include "sts/policy.h"
#include "sts/probe.h"

typedef struct sts_prober sts_prober;

/* One result, for one policy domain and one of its MX hosts. */
typedef struct sts_probe_record {
    int64_t time;            /* when the facts were learnt (unix time) */
    const char *domain;      /* policy domain */
    const char *policy_id;
    sts_mode mode;
    const char *mx;          /* MX host name */
    bool in_policy;          /* the MX matches one of the policy's mx patterns */
    sts_probe_result result;
    const char *ip;          /* "" without a connection */
    const char *detail;
} sts_probe_record;

typedef void sts_prober_result_cb(void *arg, const sts_probe_record *rec);

/* How a worker learns an MX host's facts: resolve and probe.  Tests
 * inject their own; NULL = the real one (sts_dnssync + sts_probe_run). */
typedef void sts_prober_run_fn(void *arg, const char *mx, sts_probe_out *out);
/* How a worker learns a domain's MX hosts when the caller did not know
 * them (policy read from the store after a restart); NULL = DNS.  Fills
 * hosts[0..max), returns how many (0: none or failure, why says). */
typedef size_t sts_prober_mx_fn(void *arg, const char *domain,
                                char (*hosts)[STS_DOMAIN_MAX + 1], size_t max, char *why,
                                size_t whysz);

typedef struct sts_prober_opts {
    unsigned interval_s;     /* per (domain, policy id, MX) and per MX facts; 0 = 21600 */
    unsigned concurrency;    /* worker threads; 0 = 2 */
    unsigned queue_max;      /* jobs waiting; 0 = 1024 */
    size_t max_tracked;      /* entries of each table; 0 = 20000 */
    bool testing, enforce;   /* which policy modes are probed */
    sts_probe_opts probe;    /* strings copied */
    sts_dns_opts dns;        /* strings copied */
    int64_t (*clock)(void *arg); /* unix time; NULL = time() */
    void *clock_arg;
    sts_prober_run_fn *run;
    sts_prober_mx_fn *mx_lookup;
    void *run_arg;
    sts_prober_result_cb *on_result; /* required */
    void *result_arg;
} sts_prober_opts;

sts_status sts_prober_new(const sts_prober_opts *opts, sts_prober **out,
                          sts_why *why) STS_MUST_CHECK;

/* Start the workers (after privileges are dropped).  With concurrency
 * threads none started, jobs wait for sts_prober_run_one (tests). */
sts_status sts_prober_start(sts_prober *p, sts_why *why) STS_MUST_CHECK;

/* Stop the workers: the probes running end at their deadlines at most;
 * queued jobs are dropped.  Idempotent. */
void sts_prober_stop(sts_prober *p);

void sts_prober_free(sts_prober *p);

/* Mail for domain went out under policy pol (TXT id policy_id); mx_hosts
 * are the domain's MX hosts when mx_known (else a worker looks them up).
 * Cheap, never blocks on the network; any thread. */
void sts_prober_note(sts_prober *p, const char *domain, const char *policy_id,
                     const sts_policy *pol, const char *const *mx_hosts, size_t n_mx,
                     bool mx_known);

/* Run one queued job in the calling thread; false when the queue is
 * empty.  For tests that inject time and a runner. */
bool sts_prober_run_one(sts_prober *p);

typedef struct sts_prober_stats {
    uint64_t noted, queued, dropped, probes, cached, records;
    size_t waiting; /* jobs in the queue */
} sts_prober_stats;

void sts_prober_get_stats(sts_prober *p, sts_prober_stats *st);

#endif
