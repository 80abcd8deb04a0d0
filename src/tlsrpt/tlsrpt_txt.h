/*
 * tlsrpt_txt.h - the _smtp._tls TXT record (RFC 8460 section 3): whether a
 * policy domain wants TLS reports, and where to (its "rua" URIs).
 *
 * Only mailto: and https: URIs are usable (RFC 8460 section 3); a URI with
 * another scheme, or one that is malformed, is skipped and counted, and
 * the other URIs of the record are still used.  A record whose field
 * structure breaks the ABNF is invalid as a whole.
 */
#ifndef STS_TLSRPT_TXT_H
#define STS_TLSRPT_TXT_H

#include <stdbool.h>
#include <stddef.h>

#include "sts/domain.h"
#include "base/status.h"
#include "sts/txt.h"

#define STS_TLSRPT_MAX_RUA 16   /* usable URIs kept per record; more are skipped */
#define STS_TLSRPT_URI_MAX 1024 /* longer URIs are skipped */
#define STS_TLSRPT_ADDR_MAX 254 /* local@domain of a mailto: URI */

typedef enum sts_tlsrpt_scheme {
    STS_TLSRPT_MAILTO = 1,
    STS_TLSRPT_HTTPS,
} sts_tlsrpt_scheme;

/* One usable reporting URI.  All strings NUL-terminated printable ASCII. */
typedef struct sts_tlsrpt_uri {
    sts_tlsrpt_scheme scheme;
    char uri[STS_TLSRPT_URI_MAX + 1];  /* exactly as published: its identity */
    /* mailto: the address part, percent-decoded, domain normalised
     * (domain.h); RFC 6068 header fields ("?subject=...") are ignored. */
    char addr[STS_TLSRPT_ADDR_MAX + 1];
    /* https: host (normalised), port (443 unless given) and the URL to
     * POST to: "https://host[:port]/path[?query]" without fragment. */
    char host[STS_DOMAIN_MAX + 1];
    unsigned port;
    char url[STS_TLSRPT_URI_MAX + 1];
} sts_tlsrpt_uri;

typedef struct sts_tlsrpt {
    size_t n; /* usable URIs in rua[], in record order, no duplicates */
    sts_tlsrpt_uri rua[STS_TLSRPT_MAX_RUA];
    size_t ignored;      /* URIs skipped (scheme, syntax, duplicate, over the limit) */
    sts_why ignored_why; /* why the first one was skipped; "" if none */
} sts_tlsrpt;

/* True if the record takes part in RFC 8460's selection: it starts with
 * "v=TLSRPTv1" (case-sensitive) followed by ';', WSP or its end.
 * "v=TLSRPTv10;" and " v=TLSRPTv1;" do not. */
bool sts_tlsrpt_is_record(const char *rec, size_t len);

/* Parse one record per the RFC 8460 section 3 ABNF:
 *   tlsrpt-record = tlsrpt-version 1*(field-delim tlsrpt-field) [field-delim]
 *   field-delim = *WSP ";" *WSP;  tlsrpt-version = %s"v=TLSRPTv1"
 *   tlsrpt-rua = %s"rua=" tlsrpt-uri *(*WSP "," *WSP tlsrpt-uri)
 *   extensions name=value as in RFC 8461, checked and ignored.
 * rua is required; if it appears twice, the first counts (the second is
 * still checked).  Each URI goes through sts_tlsrpt_uri_parse; the ones
 * it refuses are counted in out->ignored.  Returns STS_OK (out->n may be
 * 0: no usable URI) or STS_PERMFAIL with a reason (out->n is then 0). */
sts_status sts_tlsrpt_parse(const char *rec, size_t len, sts_tlsrpt *out,
                            sts_why *why) STS_MUST_CHECK;

/* RFC 8460 section 3 over all TXT records of _smtp._tls.<domain>: discard
 * the records that are not sts_tlsrpt_is_record(), require exactly one,
 * parse it.  STS_OK; STS_NOTFOUND (no TLSRPT record); STS_PERMFAIL
 * (several, or the one is invalid) - both mean "no reports wanted". */
sts_status sts_tlsrpt_select(const sts_txt_rr *recs, size_t n, sts_tlsrpt *out,
                             sts_why *why) STS_MUST_CHECK;

/* Check one rua URI (RFC 3986 characters; ',', '!' and ';' must be
 * percent-encoded, RFC 8460 section 3; no DMARC-style "!size" suffix):
 *   mailto:local@domain[?hfields] - one dot-atom address, no quoted local
 *     part, no address literal, not several addresses;
 *   https://host[:port][/path][?query][#fragment] - a DNS host name (no IP
 *     literal, no user information), port 1..65535.
 * The scheme is case-insensitive.  STS_OK with *out filled; STS_NOTFOUND
 * for a well-formed URI of another scheme; STS_PERMFAIL if malformed. */
sts_status sts_tlsrpt_uri_parse(const char *uri, size_t len, sts_tlsrpt_uri *out,
                                sts_why *why) STS_MUST_CHECK;

#endif
