/*
 * outcome.h - how one MTA-STS discovery ended (RFC 8461 3, RFC 8460 4.3).
 *
 * Every discovery ends as exactly one of:
 *   policy     a valid policy was fetched (policy != NULL), or a re-check
 *              found the TXT id unchanged (unchanged, policy == NULL);
 *   none       the domain does not use MTA-STS: no _mta-sts TXT record, no
 *              v=STSv1 record, or several / a malformed one (3.1);
 *   temperror  the answer could not be had now: DNS failure, policy host
 *              unreachable or not answering 200 (report type
 *              sts-policy-fetch-error where the domain is at fault);
 *   invalid    the domain published something broken: certificate rejected
 *              by WebPKI (sts-webpki-invalid), wrong media type, body too
 *              large or syntax errors (sts-policy-invalid).
 */
#ifndef STS_OUTCOME_H
#define STS_OUTCOME_H

#include <stddef.h>

#include "sts/domain.h"
#include "sts/policy.h"
#include "base/status.h"
#include "sts/txt.h"

typedef enum sts_result {
    STS_RESULT_POLICY,
    STS_RESULT_NONE,
    STS_RESULT_TEMPERROR,
    STS_RESULT_INVALID,
} sts_result;

typedef enum sts_report_type {
    STS_RT_NONE,
    STS_RT_FETCH_ERROR,    /* sts-policy-fetch-error */
    STS_RT_POLICY_INVALID, /* sts-policy-invalid */
    STS_RT_WEBPKI_INVALID, /* sts-webpki-invalid */
} sts_report_type;

#define STS_OUTCOME_MAX_MX 16 /* MX host names kept per domain (by preference) */

/* DANE (RFC 7672) as seen through a validating resolver (AD bit), for
 * RFC 8461 section 2: DANE takes precedence over MTA-STS. */
typedef enum sts_dane_state {
    STS_DANE_UNKNOWN, /* not looked at (DANE lookups off, or no answer) */
    STS_DANE_NONE,    /* MX RRset not validated, or no validated TLSA record */
    STS_DANE_PARTIAL, /* validated MX RRset; some MX hosts have validated TLSA records */
    STS_DANE_ALL,     /* validated MX RRset; every MX host has validated TLSA records */
} sts_dane_state;

typedef struct sts_outcome {
    char domain[STS_DOMAIN_MAX + 1];
    sts_result result;
    char id[STS_ID_MAX + 1];     /* TXT id, "" if no valid record */
    sts_policy *policy;          /* owned; non-NULL iff result == STS_RESULT_POLICY */
    sts_report_type report_type;
    char error[STS_WHY_MAX];     /* human text, "" when there is nothing to say */
    bool unchanged;              /* re-check only: the TXT id equals the known one, nothing
                                    was fetched (result == policy, policy == NULL) */
    bool mx_checked;             /* an enforce policy was compared with the domain's MX hosts */
    bool mx_mismatch;            /* ... and none of them matches a pattern (RFC 8461 4.1) */
    /* The domain's MX hosts, looked up beside the policy (also on a
     * re-check), for answers that name them (socketmap match=exact). */
    bool mx_known;               /* the lookup answered: n_mx and mx_hosts are the list */
    size_t n_mx;                 /* 0 with mx_known: null MX (RFC 7505) */
    char mx_hosts[STS_OUTCOME_MAX_MX][STS_DOMAIN_MAX + 1]; /* no MX record: the domain */
    sts_dane_state dane;
    /* What ended it, for metrics (a static string): "none" (a policy),
     * "no-policy", "dns-txt", "dns-policy-host", "https-network",
     * "https-refused-address", "https-status", "https-certificate",
     * "https-media-type", "https-too-big", "policy-syntax", "local"
     * (our own failure, or shutting down).  NULL until it ended. */
    const char *failure;
} sts_outcome;

/* Start as temperror with no policy (callers set the real result). */
void sts_outcome_init(sts_outcome *o, const char *domain);

/* Free the policy, if any. */
void sts_outcome_clear(sts_outcome *o);

/* "policy", "none", "temperror", "invalid". */
const char *sts_result_name(sts_result r);

/* RFC 8460 result type string, NULL for STS_RT_NONE. */
const char *sts_report_type_name(sts_report_type t);

/* One MX host checked against the policy, for the JSON "mx_match" map. */
typedef struct sts_mx_check {
    const char *host;
    int match; /* 1 match, 0 no match */
} sts_mx_check;

/* Serialise as the mtasts-query JSON object (ARCHITECTURE.md contract):
 * domain, result, mode, mx, max_age, id, error, report_type, mx_match,
 * source; keys that do not apply are absent (report_type is null when the
 * result has none).  *out is a NUL-terminated string to free().
 * Returns STS_OK or STS_NOMEM. */
sts_status sts_outcome_json(const sts_outcome *o, const sts_mx_check *mx, size_t nmx,
                            const char *source, char **out) STS_MUST_CHECK;

#endif
