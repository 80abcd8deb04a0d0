/*
 * smap.h - the socketmap face of the engine: TLS policy answers for
 * Postfix smtp_tls_policy_maps and Sendmail FEATURE(`sts'), compatible
 * with postfix-mta-sts-resolver, and transport answers for Postfix
 * transport_maps.  Pure functions (no I/O).
 *
 * Request "NAME KEY"; NAME selects a profile (smap_profile.h), KEY is the
 * next-hop domain as the MTA sends it ("example.com", "example.com.",
 * "[example.com]", "[example.com]:25", any case) or, from transport_maps,
 * an address ("user@example.com", "@example.com").
 *
 * TLS profile replies:
 *   enforce policy     "OK secure match=MX1:.DOMAIN2 servername=hostname"
 *                      match=exact (the default): "*.d" becomes the
 *                      domain's current MX hosts that match it
 *                      (sts_mx_match, RFC 8461 4.1: one label), lower
 *                      case; MX hosts not known (lookup failed): "*."
 *                      patterns give no name, literal ones still do;
 *                      with no name left the reply is TEMP (defer);
 *                      match=wildcard: "*.d" becomes ".d", which Postfix
 *                      matches at any depth (wider than RFC 8461 4.1's one
 *                      label: postfix-mta-sts-resolver's answer);
 *                      an mx pattern Postfix would read as a keyword
 *                      (hostname, nexthop, dot-nexthop) is never written:
 *                      it is left out and reported, and with no name
 *                      left the reply is TEMP too (RFC 8461 4.1: no MX
 *                      host matches, so none may be used);
 *                      tlsrpt=yes appends Postfix 3.10 TLSRPT attributes;
 *                      with dane and validated TLSA: "OK dane" / "OK dane-only"
 *   testing            "NOTFOUND " (or like enforce with strict_testing)
 *   site rule          where the answer above would be "NOTFOUND " (testing,
 *                      none, no policy, invalid, or a failed lookup with
 *                      on_fail=notfound) and the profile has site=yes:
 *                      the site's level, "OK encrypt", "OK verify [match=...]"
 *                      or "OK secure [match=...]" (servername=hostname per
 *                      the profile); never instead of an enforce answer,
 *                      nor of a TEMP
 * Transport profile replies: "OK <transport>" for the class's configured
 * transport, "NOTFOUND " when it is empty.
 * Both: none/no policy/invalid, parent-domain probes (".d"), IP literals
 * and the transport wildcard "*": "NOTFOUND "; lookup failed with nothing
 * cached: "NOTFOUND " or "TEMP reason" per on_fail.
 */
#ifndef STS_SMAP_H
#define STS_SMAP_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"
#include "sts/domain.h"
#include "engine/engine.h"
#include "smap/smap_profile.h"
#include "smap/smap_site.h"
#include "base/status.h"

/* Split a request payload at its first space. */
bool sts_smap_split(sts_cur req, sts_cur *name, sts_cur *key);

/* Turn a key into a normalised domain.  STS_OK, STS_NOTFOUND (parent-domain
 * probe, IP literal, "*": no policy by definition), STS_PERMFAIL (not a
 * domain: why says).  An address key gives its domain part. */
sts_status sts_smap_key_domain(sts_cur key, char out[STS_DOMAIN_MAX + 1], sts_why *why);

/* The sts_engine_lookup_flags() a profile needs. */
unsigned sts_smap_lookup_flags(const sts_smap_profile *p);

/* What a TLS reply left out of its match= list, for the caller to log
 * (this module does no I/O). */
typedef struct sts_smap_dropped {
    unsigned keywords; /* one bit per Postfix keyword left out (sts_smap_dropped_text) */
    size_t left;       /* names the match= list kept; 0 once a list was begun: TEMP */
    bool exact;        /* a match= list was begun with match=exact */
    bool site;         /* the answer is the site rule's */
    size_t wild_unexpanded; /* exact: "*." patterns that gave no name because the
                               MX hosts were not known */
} sts_smap_dropped;

/* The reply payload (without netstring framing) for the engine's answer
 * about domain (normalised); site: the SiteTLSPolicyFile entry that
 * applies to domain (sts_site_find), NULL if none.  STS_OK, or STS_PERMFAIL / STS_NOMEM when out
 * cannot hold it (out may then hold part of it: reset it).  dropped (may
 * be NULL) is filled in either case (zero unless a match= list was
 * begun): what was left out, for the caller to log. */
sts_status sts_smap_reply(const sts_smap_profile *p, const char *domain, const sts_answer *a,
                          const sts_site_rule *site, sts_buf *out,
                          sts_smap_dropped *dropped) STS_MUST_CHECK;

/* The keywords of a sts_smap_dropped.keywords mask as text, sep between
 * them ("hostname, nexthop, dot-nexthop" with ", "); "" for 0.  Returns out. */
#define STS_SMAP_DROPPED_TEXT 32
const char *sts_smap_dropped_text(unsigned keywords, const char *sep,
                                  char out[STS_SMAP_DROPPED_TEXT]);

#endif
