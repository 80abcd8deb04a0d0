/*
 * rhttps.c - TLS report upload over HTTPS (see rhttps.h).
 *
 * RFC 8460 section 5.4: the gzip'd report is the body of a POST with
 * media type application/tlsrpt+gzip, and any 2xx answer means it was
 * received.  The transport rules are those of policy fetches (fetch.c:
 * HTTPS only, WebPKI-verified, no redirects, curl never resolves names).
 */
#include "buildconf.h"
#include "tlsrpt/rhttps.h"

#include <string.h>

#include "sts/fetch.h"

#define RHTTPS_MEDIA_TYPE "application/tlsrpt+gzip"

sts_status sts_rhttps_post(const sts_rsend_opts *o, const sts_tlsrpt_uri *u,
                           const char *const *addrs, size_t naddrs, const unsigned char *gz,
                           size_t gzlen, sts_why *why)
{
    sts_fetch_post_req req;
    long status = 0;

    memset(&req, 0, sizeof(req));
    req.url = u->url;
    req.host = u->host;
    req.port = u->port;
    req.addrs = addrs;
    req.naddrs = naddrs;
    req.content_type = RHTTPS_MEDIA_TYPE;
    req.body = gz;
    req.body_len = gzlen;
    req.ca_file = o->ca_file;
    req.allow_internal = o->allow_internal;
    req.timeout_ms = o->https_timeout_ms;
    req.connect_timeout_ms = o->https_timeout_ms != 0 && o->https_timeout_ms < 10000
                                 ? o->https_timeout_ms
                                 : 10000;
    return sts_fetch_post(&req, &status, why);
}
