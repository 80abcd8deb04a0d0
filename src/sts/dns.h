/*
 * dns.h - asynchronous DNS for policy discovery (the only user of c-ares).
 *
 * Queries are started from the thread that drives the event loop and
 * complete through callbacks run from sts_dns_process().  Not thread-safe:
 * one sts_dns belongs to one loop thread.
 *
 * Result statuses keep the invariant of status.h:
 *   STS_OK        answer with at least one record of the asked type;
 *   STS_NOTFOUND  the server said NXDOMAIN or NODATA;
 *   STS_TEMPFAIL  SERVFAIL, REFUSED, timeout, network or malformed answer;
 *   STS_PERMFAIL  the name cannot be queried (bad name), or a CNAME loop;
 *   STS_NOMEM     allocation failure.
 * CNAMEs are followed, both when the server returns the chain with the
 * target's records and when it returns only the alias (at most
 * STS_DNS_MAX_CNAME hops).
 *
 * Every query asks for the AD bit (RFC 6840 5.7), so a validating resolver
 * says whether the data was DNSSEC-validated (`secure` below, for DANE).
 * The bit is only as trustworthy as the path to the resolver: DNSServers
 * must be a validating resolver on a trusted path (e.g. 127.0.0.1).
 */
#ifndef STS_DNS_H
#define STS_DNS_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>

#include "base/status.h"
#include "sts/txt.h"

#define STS_DNS_MAX_CNAME 8
#define STS_DNS_MAX_ADDRS 16   /* addresses kept per host name */
#define STS_DNS_MAX_RECORDS 64 /* MX hosts kept per answer */
#define STS_DNS_MAX_TXT_BYTES 65535 /* a TXT answer's joined strings: a DNS message holds less */
#define STS_DNS_MAX_POLLFDS 32 /* sockets a channel reports for polling */

typedef struct sts_dns sts_dns;

typedef struct sts_dns_opts {
    const char *servers; /* "ip[:port],[ip6]:port,..." (c-ares CSV); NULL = /etc/resolv.conf */
    unsigned timeout_ms; /* per try; 0 = 2000 */
    unsigned tries;      /* 0 = 2 */
} sts_dns_opts;

/* Create a resolver.  STS_PERMFAIL (bad server list) or STS_NOMEM, with why. */
sts_status sts_dns_new(const sts_dns_opts *opts, sts_dns **out, sts_why *why) STS_MUST_CHECK;

/* Cancel every pending query (their callbacks run with STS_TEMPFAIL) and free. */
void sts_dns_free(sts_dns *dns);

/* TXT records of one name, each record's character-strings concatenated
 * (record boundaries kept): all of them, however many, as the RFCs'
 * discard-then-count selection (sts_txt_select, sts_tlsrpt_select) needs
 * them; bounded by the answer's size.  Only valid during the callback. */
typedef struct sts_dns_txt {
    size_t n;
    const sts_txt_rr *rr; /* rr[i].data: rr[i].len bytes (may contain NUL), NUL-terminated */
} sts_dns_txt;

/* Host names of MX records sorted by preference (lowest first); valid
 * during the callback.  A "null MX" (RFC 7505, ".") yields n == 0 with
 * STS_OK and null_mx set. */
typedef struct sts_dns_mx {
    size_t n;
    const char *const *host;
    const unsigned short *pref;
    bool null_mx;
    bool secure; /* the answer (and every CNAME hop) had the AD bit */
} sts_dns_mx;

/* TLSA records of one name (RFC 6698), counted, not kept: `usable` are
 * those RFC 7672 3.1 lets SMTP use (usage DANE-TA(2) or DANE-EE(3),
 * selector 0/1, matching type 0/1/2 with a digest of the right size). */
typedef struct sts_dns_tlsa {
    size_t n;
    size_t usable;
    bool secure; /* the answer (and every CNAME hop) had the AD bit */
} sts_dns_tlsa;

/* Textual IPv4/IPv6 addresses of a host (A and AAAA); valid during the callback. */
typedef struct sts_dns_addrs {
    size_t n;
    const char *const *addr;
} sts_dns_addrs;

/* `why` in callbacks is a human-readable reason for a non-OK status, else "". */
typedef void sts_dns_txt_cb(void *arg, sts_status st, const sts_dns_txt *res, const char *why);
typedef void sts_dns_mx_cb(void *arg, sts_status st, const sts_dns_mx *res, const char *why);
typedef void sts_dns_addrs_cb(void *arg, sts_status st, const sts_dns_addrs *res, const char *why);
typedef void sts_dns_tlsa_cb(void *arg, sts_status st, const sts_dns_tlsa *res, const char *why);

/* Start a query.  The callback always runs exactly once, possibly before
 * the function returns (e.g. on immediate failure). */
void sts_dns_txt_query(sts_dns *dns, const char *name, sts_dns_txt_cb *cb, void *arg);
void sts_dns_mx_query(sts_dns *dns, const char *name, sts_dns_mx_cb *cb, void *arg);
void sts_dns_tlsa_query(sts_dns *dns, const char *name, sts_dns_tlsa_cb *cb, void *arg);
/* A and AAAA in parallel: STS_OK if either gave addresses; else
 * STS_TEMPFAIL if either failed temporarily; else STS_NOTFOUND. */
void sts_dns_addrs_query(sts_dns *dns, const char *name, sts_dns_addrs_cb *cb, void *arg);

/* Event loop integration.  Fill fds (events set, revents cleared) with the
 * sockets to watch; returns how many (<= max). */
int sts_dns_pollfds(sts_dns *dns, struct pollfd *fds, int max);

/* Milliseconds until c-ares needs sts_dns_process() for a timeout, capped
 * at max_ms; max_ms when no query is pending. */
int sts_dns_timeout_ms(sts_dns *dns, int max_ms);

/* Handle readiness in fds[0..n) (as returned by poll) and expired timers;
 * runs the callbacks of completed queries. */
void sts_dns_process(sts_dns *dns, const struct pollfd *fds, int n);

/* Number of queries not yet completed. */
size_t sts_dns_pending(const sts_dns *dns);

#endif
