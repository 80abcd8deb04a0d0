/*
 * rhttps.h - TLS report upload to an https: rua (RFC 8460 section 5.4),
 * one step of the delivery of rsend.h.
 */
#ifndef STS_RHTTPS_H
#define STS_RHTTPS_H

#include <stddef.h>

#include "base/status.h"
#include "tlsrpt/rsend.h"
#include "tlsrpt/tlsrpt_txt.h"

/* POST the gzip'd report (gz, gzlen) to the URL of u as
 * application/tlsrpt+gzip, connecting to the naddrs textual addresses that
 * the caller's resolver found for u->host (DNSServers applies to uploads
 * too), with o's CAFile, HTTPS timeout and AllowInternalAddresses.  STS_OK
 * for a 2xx answer; else what sts_fetch_post returns (fetch.h), with a
 * reason: STS_PERMFAIL when u's host has no address we may connect to. */
sts_status sts_rhttps_post(const sts_rsend_opts *o, const sts_tlsrpt_uri *u,
                           const char *const *addrs, size_t naddrs, const unsigned char *gz,
                           size_t gzlen, sts_why *why) STS_MUST_CHECK;

#endif
