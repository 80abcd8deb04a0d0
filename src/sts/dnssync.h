/*
 * dnssync.h - blocking MX and address lookups on a resolver of one's own
 * (dns.h), for a worker thread that may wait (the MX prober): the query
 * runs on the calling thread's sts_dns until c-ares ends it, which its
 * per-try timeout and tries bound.  Statuses as in dns.h.
 */
#ifndef STS_DNSSYNC_H
#define STS_DNSSYNC_H

#include <stddef.h>

#include "base/ipaddr.h"
#include "base/status.h"
#include "sts/dns.h"
#include "sts/domain.h"

/* The MX host names of name, by preference, into hosts[0..max) (*n of
 * them; a null MX gives STS_OK with *n 0). */
sts_status sts_dnssync_mx(sts_dns *dns, const char *name, char (*hosts)[STS_DOMAIN_MAX + 1],
                          size_t max, size_t *n, sts_why *why) STS_MUST_CHECK;

/* The textual IPv4/IPv6 addresses of host into addrs[0..max). */
sts_status sts_dnssync_addrs(sts_dns *dns, const char *host, char (*addrs)[STS_IPADDR_TEXT_MAX],
                             size_t max, size_t *n, sts_why *why) STS_MUST_CHECK;

#endif
