/*
 * fetch.h - HTTPS retrieval of MTA-STS policy files (the only user of
 * libcurl).  RFC 8461 3.3: https://mta-sts.<domain>/.well-known/mta-sts.txt,
 * WebPKI-validated for mta-sts.<domain> with SNI, TLS >= 1.2, no redirects,
 * only status 200, media type text/plain, no HTTP caching, bounded time
 * and size (body and response headers).
 *
 * The host's addresses come from the caller (our own c-ares lookup), so one
 * resolver configuration serves everything; curl never resolves names.
 * Unless allowed, no connection is made to a special-purpose address
 * (base/ipaddr.h: loopback, private, link-local, ...): the check is made
 * on the address of each socket as curl opens it, so it holds for every
 * address curl tries, whatever the DNS answered and whenever.
 * Not thread-safe: one sts_fetch belongs to one loop thread, except
 * sts_fetch_wakeup() and sts_fetch_set_ca() which any thread may call.
 */
#ifndef STS_FETCH_H
#define STS_FETCH_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>

#include "base/status.h"

typedef struct sts_fetch sts_fetch;

typedef struct sts_fetch_opts {
    const char *ca_file;         /* PEM bundle; NULL = system trust store */
    unsigned connect_timeout_ms; /* 0 = 10000 */
    unsigned timeout_ms;         /* whole transfer; 0 = 60000 */
    unsigned port;               /* 0 = 443.  Anything else is for tests only. */
    size_t max_body;             /* 0 = 65536 */
    bool allow_internal;         /* connect to special-purpose addresses too (labs, tests) */
} sts_fetch_opts;

/* Response headers (all lines, status line included) are at most this long. */
#define STS_FETCH_MAX_HEADERS 65536

/* How a fetch ended, in RFC 8460 4.3 terms. */
typedef enum sts_fetch_err {
    STS_FETCH_OK,          /* status 200, text/plain, body within the cap */
    STS_FETCH_NETWORK,     /* connect/TLS handshake/timeout/reset: sts-policy-fetch-error */
    STS_FETCH_REFUSED,     /* every address tried was special-purpose and not allowed,
                              so no connection was made: sts-policy-fetch-error */
    STS_FETCH_HTTP,        /* status other than 200, incl. redirects, or response
                              headers over STS_FETCH_MAX_HEADERS: sts-policy-fetch-error */
    STS_FETCH_WEBPKI,      /* certificate rejected by WebPKI: sts-webpki-invalid */
    STS_FETCH_MEDIA_TYPE,  /* Content-Type not text/plain: sts-policy-invalid */
    STS_FETCH_TOO_BIG,     /* body over max_body: sts-policy-invalid */
    STS_FETCH_LOCAL,       /* our own failure (OOM, bad CA file): temporary */
} sts_fetch_err;

typedef struct sts_fetch_result {
    sts_fetch_err err;
    long http_status;  /* 0 if no response */
    const char *body;  /* NUL-terminated; valid during the callback only */
    size_t body_len;
    const char *why;   /* human-readable reason, "" on success */
} sts_fetch_result;

typedef void sts_fetch_cb(void *arg, const sts_fetch_result *res);

/* One policy transfer, from sts_fetch_start until its callback returns. */
typedef struct sts_fetch_xfer sts_fetch_xfer;

/* Where a transfer is: getting a TCP connection (waiting on the host), in
 * its TLS handshake (CPU work of ours), or handshake done (waiting on the
 * host for the response). */
typedef enum {
    STS_FETCH_CONNECTING,
    STS_FETCH_HANDSHAKE,
    STS_FETCH_AWAITING,
} sts_fetch_phase;

sts_status sts_fetch_new(const sts_fetch_opts *opts, sts_fetch **out, sts_why *why) STS_MUST_CHECK;

/* Read the trust store again, from ca_file (NULL: the system store), for
 * the transfers started from now on (SIGHUP: a changed CAFile, or new
 * contents of the same file).  Any thread.  STS_OK; STS_TEMPFAIL (it
 * cannot be read: the store in use stays) or STS_NOMEM, with a reason. */
sts_status sts_fetch_set_ca(sts_fetch *f, const char *ca_file, sts_why *why) STS_MUST_CHECK;

/* Abort every transfer (callbacks run with STS_FETCH_LOCAL) and free. */
void sts_fetch_free(sts_fetch *f);

/* Start fetching the policy of `domain` (normalised, see domain.h) from
 * the given addresses (textual IPv4/IPv6, at least one).  The callback
 * runs exactly once, from sts_fetch_wait/sts_fetch_free, never from here.
 * Returns STS_OK, STS_NOMEM, STS_PERMFAIL (no address, name too long) or
 * STS_TEMPFAIL (libcurl refused the transfer).  On STS_OK, *xfer (if xfer
 * is not NULL) is the transfer, valid until its callback returns. */
sts_status sts_fetch_start(sts_fetch *f, const char *domain, const char *const *addrs,
                           size_t naddrs, sts_fetch_cb *cb, void *arg, sts_fetch_xfer **xfer,
                           sts_why *why) STS_MUST_CHECK;

/* The phase of a running transfer.  Loop thread only. */
sts_fetch_phase sts_fetch_xfer_phase(const sts_fetch_xfer *x);

/* Wait up to timeout_ms for activity on curl's sockets or on the extra
 * file descriptors (their revents are filled in), or for a wakeup; then
 * drive transfers and run the callbacks of finished ones.
 * Returns STS_OK or STS_TEMPFAIL (curl multi error). */
sts_status sts_fetch_wait(sts_fetch *f, struct pollfd *extra, int nextra, int timeout_ms) STS_MUST_CHECK;

/* Make a sleeping sts_fetch_wait() return early.  Any thread. */
void sts_fetch_wakeup(sts_fetch *f);

/* Transfers not yet completed. */
size_t sts_fetch_pending(const sts_fetch *f);

/* ---- TLS report upload (RFC 8460 5.4), synchronous, for mtasts-report. */
typedef struct sts_fetch_post_req {
    const char *url;             /* https URL; its host and port are host/port below */
    const char *host;            /* normalised host name of the URL */
    unsigned port;
    const char *const *addrs;    /* textual IPv4/IPv6 addresses of host (our resolver) */
    size_t naddrs;
    const char *content_type;    /* e.g. "application/tlsrpt+gzip" */
    const void *body;
    size_t body_len;
    const char *ca_file;         /* NULL = system trust store */
    unsigned connect_timeout_ms; /* 0 = 10000 */
    unsigned timeout_ms;         /* whole transfer; 0 = 60000 */
    bool allow_internal;         /* as in sts_fetch_opts */
} sts_fetch_post_req;

/* POST body to url with the same transport rules as policy fetches:
 * HTTPS only, WebPKI-verified for host, TLS >= 1.2, no redirects, no proxy,
 * curl never resolves names (addresses come from addrs), no special-purpose
 * address unless allowed.  The response body is read and discarded.
 * Returns STS_OK for any 2xx status; STS_TEMPFAIL for anything else
 * (network, TLS, certificate, non-2xx, a local failure), with
 * *http_status set (0 without a response) and a reason; STS_PERMFAIL for a
 * request that cannot be made to this host: no address, or only
 * special-purpose ones that are not allowed (no connection was made);
 * STS_NOMEM.  Any thread.  The CAs of ca_file are parsed once, by the
 * first upload, into a store that later uploads with the same ca_file
 * share (the file is not read again: changes in it are not seen); an
 * upload naming another file parses that one, and its store replaces the
 * one before (uploads under way keep theirs).  A file that cannot be parsed fails that upload (TLS, temporary) and is
 * tried again by the next one. */
sts_status sts_fetch_post(const sts_fetch_post_req *req, long *http_status,
                          sts_why *why) STS_MUST_CHECK;

#endif
