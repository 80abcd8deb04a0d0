/*
 * decide.h - what the milter does with one recipient domain, given the
 * engine's answer and the site's choices (RFC 8461 sections 4 and 5):
 *   enforce policy      deliver only over authenticated TLS: route the
 *                       message to the enforced-TLS transport;
 *   testing / none /
 *   no policy / invalid deliver as usual (invalid: RFC 8461 3.3, as if the
 *                       domain had no MTA-STS), failures go to TLS reports;
 *   temperror / pending the site's LookupFailAction: accept as usual
 *                       (default: a slow DNS server never blocks mail) or
 *                       tempfail the recipient.
 * Pure functions: no I/O, no libmilter, so every rule is unit-tested.
 */
#ifndef STS_DECIDE_H
#define STS_DECIDE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sts/domain.h"
#include "engine/engine.h"
#include "sts/outcome.h"
#include "sts/policy.h"
#include "sts/txt.h"

/* How a message is delivered: the class decides the transport. */
typedef enum sts_class {
    STS_CLASS_NORMAL,  /* opportunistic TLS (testing, none, no policy, failures) */
    STS_CLASS_ENFORCE, /* MTA-STS enforce: verified TLS to policy MX hosts only */
} sts_class;

typedef enum sts_action {
    STS_ACT_ACCEPT,        /* deliver as usual, tagged */
    STS_ACT_ROUTE_ENFORCE, /* deliver through the enforced-TLS transport, tagged */
    STS_ACT_TEMPFAIL,      /* 451 4.4.3: lookup failed and LookupFailAction tempfail */
    STS_ACT_NO_MX,         /* 451 4.7.5: enforce policy allows none of the MX hosts
                              (EarlyTempfail); never a permanent failure (RFC 8461 5.1) */
    STS_ACT_SPLIT,         /* 452 4.5.3: another class than the message's first recipient */
    STS_ACT_SKIP,          /* no lookup: address literal, local domain, null sender */
    STS_ACT_ABORTED,       /* the SMTP client gave up before the end of the message */
} sts_action;

typedef enum sts_fail_action {
    STS_FAIL_ACCEPT,
    STS_FAIL_TEMPFAIL,
} sts_fail_action;

#define STS_TAG_MX_MAX 700 /* bytes of mx patterns quoted in a tag header */

typedef struct sts_decision {
    char domain[STS_DOMAIN_MAX + 1];
    sts_result result;
    bool has_policy;
    sts_mode mode;             /* valid when has_policy */
    uint32_t max_age;          /* valid when has_policy (RFC 8460 policy-string) */
    char id[STS_ID_MAX + 1];
    char mx[STS_TAG_MX_MAX + 1]; /* patterns joined with ',' (",..." when cut) */
    bool pending, from_cache;
    bool skipped;              /* never looked up (sts_decide_skip): result "skipped" */
    sts_report_type report_type;
    sts_class cls;
    sts_action action;
    char reason[STS_WHY_MAX];
    /* result POLICY with a report_type: the refresh that failed while the
     * cached policy applied (RFC 8461 6), "" otherwise. */
    char refresh_error[STS_WHY_MAX];
} sts_decision;

/* Decide for one recipient domain from the engine's answer; early: defer
 * an enforce domain none of whose MX hosts matches its policy. */
void sts_decide(const char *domain, const sts_answer *a, sts_fail_action fail, bool early,
                sts_decision *out);

/* A recipient that is not looked up (reason: why it was skipped). */
void sts_decide_skip(const char *domain, const char *reason, sts_decision *out);

/* The tag header value for a decision:
 *   "DOMAIN; result=R[; mode=M][; id=I][; mx=P1,P2][; pending=yes]"
 * Returns the length written; always NUL-terminated; when sz is too small,
 * only the leading fields that fit whole are written. */
size_t sts_decision_tag(const sts_decision *d, char *buf, size_t sz);

/* "accept", "route-enforce", "tempfail", "split", "skip", "aborted". */
const char *sts_action_name(sts_action a);

/* "enforce" / "none": the routing header value for a class. */
const char *sts_class_name(sts_class c);

#endif
