/*
 * discover.h - one MTA-STS policy discovery per domain (RFC 8461 3):
 * TXT _mta-sts.<domain> -> addresses of mta-sts.<domain> -> HTTPS fetch
 * -> policy parse, ending in an sts_outcome.
 *
 * An sts_discover owns one resolver and one fetcher and is driven by
 * sts_discover_run() from a single thread (the engine's loop thread, or
 * mtasts-query's main thread).  Only sts_discover_wakeup() may be called
 * from other threads.
 */
#ifndef STS_DISCOVER_H
#define STS_DISCOVER_H

#include <stddef.h>

#include "sts/dns.h"
#include "sts/fetch.h"
#include "sts/outcome.h"
#include "base/status.h"

typedef struct sts_discover sts_discover;

/* What a discovery needs to know: the resolver's and the fetcher's options
 * (conf/ fills them from DNSServers, DNSTimeout, DNSTries, CAFile,
 * HTTPSConnectTimeout, HTTPSTimeout, PolicyPort, AllowInternalAddresses,
 * MaxPolicyFetches).  fetch.max_body is set here to the RFC's policy size
 * limit whatever the caller gives. */
typedef struct sts_discover_opts {
    sts_dns_opts dns;
    sts_fetch_opts fetch;
    /* Discoveries in the fetch stage (address of mta-sts.<domain>, HTTPS
     * GET) at once; 0 = no limit.  A discovery whose TXT record calls for
     * a fetch beyond it is parked (its MX lookup goes on) and enters the
     * stage, in order, when another leaves it, however that one ended. */
    unsigned max_fetches;
    /* A fetch still running this long after it entered the stage no longer
     * holds its slot while discoveries are parked: it waits on a slow or
     * silent host, not on our CPU, and goes on beside the next one (whose
     * TLS handshake the limit is for).  0 = STS_DISCOVER_LEND_MS. */
    unsigned fetch_lend_ms;
} sts_discover_opts;

#define STS_DISCOVER_LEND_MS 1000u

/* Build a discoverer; the strings of opts are copied by the resolver and
 * the fetcher, opts may go after this returns. */
sts_status sts_discover_new(const sts_discover_opts *opts, sts_discover **out,
                            sts_why *why) STS_MUST_CHECK;

/* Cancel what is in flight and parked (callbacks run with temperror) and free. */
void sts_discover_free(sts_discover *d);

/* The callback gets the outcome; it may take o->policy (set it to NULL),
 * everything else is freed after it returns. */
typedef void sts_discover_cb(void *arg, sts_outcome *o);

/* Start discovering the policy of a normalised domain (domain.h).  The
 * callback runs exactly once, from sts_discover_run() or
 * sts_discover_free(), never from here.  Returns STS_OK or STS_NOMEM. */
sts_status sts_discover_start(sts_discover *d, const char *domain, sts_discover_cb *cb,
                              void *arg) STS_MUST_CHECK;

typedef enum sts_discover_mode {
    STS_DISCOVER_FULL,    /* TXT record, then the policy if the record is valid */
    STS_DISCOVER_RECHECK, /* TXT record; if its id equals known_id stop with
                             o->unchanged (RFC 8461 5.1: same id, keep the policy) */
    STS_DISCOVER_REFRESH, /* fetch the policy even when the TXT lookup fails or
                             finds nothing (proactive refresh, 3.3/5.1); the id
                             then stays known_id */
} sts_discover_mode;

/* sts_discover_start with a mode; known_id is the cached policy's id ("" or
 * NULL when there is none). */
sts_status sts_discover_start_mode(sts_discover *d, const char *domain, sts_discover_mode mode,
                                   const char *known_id, sts_discover_cb *cb,
                                   void *arg) STS_MUST_CHECK;

/* Also look up the TLSA records (_25._tcp.HOST) of the MX hosts of each
 * policy, through the validating resolver's AD bit, to fill o->dane.  Off
 * by default; any thread; applies to discoveries that start afterwards. */
void sts_discover_set_dane(sts_discover *d, bool on);

/* Read the trust store for policy fetches again (sts_fetch_set_ca): any
 * thread; applies to fetches that start afterwards. */
sts_status sts_discover_set_ca(sts_discover *d, const char *ca_file, sts_why *why) STS_MUST_CHECK;

/* Look up the MX hosts of a domain with the same resolver (callback as in dns.h). */
void sts_discover_mx(sts_discover *d, const char *domain, sts_dns_mx_cb *cb, void *arg);

/* One loop iteration: wait up to timeout_ms for network activity, then
 * advance every discovery and run the callbacks of finished ones. */
sts_status sts_discover_run(sts_discover *d, int timeout_ms) STS_MUST_CHECK;

/* Discoveries (and MX lookups) not yet completed. */
size_t sts_discover_pending(const sts_discover *d);

/* Discoveries in the fetch stage now (those that lent their slot
 * included), and parked waiting for it (max_fetches).  Loop thread only. */
void sts_discover_fetches(const sts_discover *d, size_t *running, size_t *parked);

/* Interrupt a sleeping sts_discover_run().  Any thread. */
void sts_discover_wakeup(sts_discover *d);

#endif
