/*
 * smap.h - the socketmap face of the engine: TLS policy answers for
 * Postfix smtp_tls_policy_maps and Sendmail FEATURE(`sts'), compatible
 * with postfix-mta-sts-resolver.  Pure functions (no I/O).
 *
 * Request "NAME KEY"; NAME selects a profile, KEY is the next-hop domain as
 * the MTA sends it ("example.com", "example.com.", "[example.com]",
 * "[example.com]:25", any case).  Replies:
 *   enforce policy     "OK secure match=MX1:.DOMAIN2 servername=hostname"
 *                      (a pattern "*.d" becomes ".d", which Postfix matches
 *                      at any depth: wider than RFC 8461 4.1's one label)
 *   testing            "NOTFOUND " (or like enforce with strict_testing)
 *   none/no policy/invalid, parent-domain probes (".d"), IP literals:
 *                      "NOTFOUND "
 *   lookup failed      "NOTFOUND " (fail open) or "TEMP reason" per profile
 */
#ifndef STS_SMAP_H
#define STS_SMAP_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "domain.h"
#include "engine.h"
#include "status.h"

typedef struct sts_smap_profile {
    const char *name;
    bool servername;     /* append servername=hostname (Postfix >= 3.4) */
    bool strict_testing; /* answer testing policies like enforce */
    bool temp_on_fail;   /* TEMP instead of NOTFOUND when nothing can be had */
    int budget_ms;       /* how long a cold domain may be waited for */
} sts_smap_profile;

/* The built-in profile for a map name: "postfix" (also any unknown name)
 * and "sts" (Sendmail). */
const sts_smap_profile *sts_smap_profile_for(const char *name, size_t len);

/* Split a request payload at its first space. */
bool sts_smap_split(sts_cur req, sts_cur *name, sts_cur *key);

/* Turn a key into a normalised domain.  STS_OK, STS_NOTFOUND (parent-domain
 * probe or IP literal: no policy by definition), STS_PERMFAIL (not a
 * domain: why says). */
sts_status sts_smap_key_domain(sts_cur key, char out[STS_DOMAIN_MAX + 1], sts_why *why);

/* The reply payload for an answer (without netstring framing). */
sts_status sts_smap_reply(const sts_smap_profile *p, const sts_answer *a, sts_buf *out) STS_MUST_CHECK;

#endif
