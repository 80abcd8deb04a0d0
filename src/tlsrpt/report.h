/*
 * report.h - RFC 8460 section 4 aggregate TLS reports built from the
 * sessions of rlog.h: one report per policy domain per UTC day.
 *
 * What gets a report: a domain that had, during the day, a session under
 * an MTA-STS policy in mode enforce or testing, or an engine-side failure
 * (a valid TXT record whose policy could not be fetched or was invalid, or
 * a failed refresh while a cached policy applied, RFC 8461 6).  With
 * no_policy_reports, also a domain whose sessions all had no policy: its
 * report holds one "no-policy-found" entry, and is sent only if the domain
 * publishes a TLSRPT record (rsend.h gives up on the others without a
 * word to anyone).  Sessions under a policy in mode "none" are never
 * reported: RFC 8461 5 treats such a domain as having no active policy,
 * and a domain retiring MTA-STS asked not to hear about it; they are
 * counted in stats.mode_none.
 *
 * Which policy a session belongs to: the policy of its decision line.  A
 * session whose decision said nothing about the policy (no decision line
 * joined, or a temperror/pending decision without a policy) belongs to the
 * domain's nearest known state in time - the last one at or before it, else
 * the first one after it, among the sessions given (mtasts-report reads
 * the day before and after the reported one) - where a state is a policy,
 * or "no policy" (result none or invalid, or an engine failure without a
 * policy).  A domain with no known state at all: the session is counted in
 * unattributed and left out.  Sessions under "no policy" in a reported
 * domain form one "no-policy-found" entry; engine failures without a
 * policy go there too, since no policy was applied (their result-type says
 * which MTA-STS step failed).  An engine failure that carries a policy (an
 * enforce policy matching none of the MX hosts: validation-failure) is
 * filed under that policy's "sts" entry, since that policy was applied.
 * Sessions whose policies differ (mode, mx list or max_age) form separate
 * "sts" entries, ordered by their first session of the day.
 *
 * Fields written (RFC 8460 section 4): organization-name, date-range
 * (start-datetime YYYY-MM-DDT00:00:00Z, end-datetime YYYY-MM-DDT23:59:59Z),
 * contact-info, report-id, policies[] { policy { policy-type,
 * policy-string (the policy's lines as published - every non-empty line
 * of the text the decision log's policy record holds - or, when no such
 * record was read, "version: STSv1", "mode: M", "mx: P" per pattern,
 * "max_age: N" rebuilt from the decision), policy-domain, mx-host[] } - for
 * no-policy-found only policy-type and policy-domain -, summary
 * { total-successful-session-count, total-failure-session-count },
 * failure-details[] (left out when empty) { result-type, sending-mta-ip
 * (from ReportSendingIP, same address family as receiving-ip, else from
 * the sending_ip callback - the local address this host would use towards
 * receiving-ip -; left out for engine failures or when unknown),
 * receiving-mx-hostname, receiving-ip
 * (when known), failed-session-count, failure-reason-code (the MTA's or the
 * engine's words, when any) } }.  additional-information (a URI) and
 * receiving-mx-helo are never written: the logs do not have them.
 * failure-details are sorted by result-type, host, receiving IP, sending
 * IP and reason; one element per distinct combination.
 *
 * report-id: "YYYY-MM-DD_POLICYDOMAIN_HOSTID@SUBMITTER" (the UTC day, the
 * policy domain, the reporting host's id, the submitter domain), in the
 * shape of an RFC 5322 msg-id as RFC 8460 4.1 asks.  A domain name cannot
 * contain '_', so the id is unambiguous.  The host id keeps two MTAs of
 * one organisation (say, sharing one Redis policy cache) from sending
 * different data under one id, which receivers would take for
 * duplicates.  It is the same every time the same host reports the same
 * day for the same domain, which lets the spool (rsend.h) recognise a
 * re-run as a duplicate and send nothing: a second run never reaches a
 * receiver under the first run's id.
 */
#ifndef STS_REPORT_H
#define STS_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sts/domain.h"
#include "tlsrpt/rlog.h"
#include "base/status.h"

#define STS_REPORT_DAY 86400
/* "YYYY-MM-DD_" + domain + "_" + host id + "@" + submitter domain */
#define STS_REPORT_HOSTID_MAX 63
#define STS_REPORT_ID_MAX (11 + STS_DOMAIN_MAX + 1 + STS_REPORT_HOSTID_MAX + 1 + STS_DOMAIN_MAX)
#define STS_REPORT_NTYPES 11 /* RFC 8460 4.4 result types (see sts_report_result_name) */

typedef struct sts_report_opts {
    const char *organization; /* organization-name (ReportOrganization or host name) */
    const char *contact;      /* contact-info (ReportContact or postmaster@host) */
    const char *submitter;    /* submitter domain, part of the report-id */
    const char *host_id;      /* this host's id, part of the report-id: 1..63 letters,
                                 digits, '-' and '.' (a host name) */
    const char *sending_ips;  /* ReportSendingIP: comma list of IPv4/IPv6, NULL = none */
    /* When sending_ips has no address of the family: the local address
     * towards receiving IP rip ("" unknown), or NULL; the text must live
     * until sts_report_build returns.  NULL: none. */
    const char *(*sending_ip)(void *arg, const char *rip);
    void *sending_ip_arg;
    bool no_policy_reports;   /* ReportNoPolicy: no-policy-found reports */
} sts_report_opts;

typedef struct sts_report {
    char domain[STS_DOMAIN_MAX + 1];       /* the policy domain (report goes there) */
    char report_id[STS_REPORT_ID_MAX + 1];
    int64_t begin, end;                    /* date-range: 00:00:00 and 23:59:59 UTC */
    char *json;                            /* the report, compact JSON, owned */
    /* The same figures as in json, for mtasts-report --summary. */
    char modes[64];            /* entry kinds in order, ',' joined: "testing,enforce",
                                  "no-policy-found" ... */
    size_t n_policies;
    uint64_t successes, failures;
    uint64_t by_type[STS_REPORT_NTYPES]; /* failures per result type (index as in
                                            sts_report_result_name) */
} sts_report;

typedef struct sts_report_stats {
    uint64_t in_day;          /* sessions of the day that were considered */
    uint64_t outside_day;     /* sessions of other days: used only to attribute policies */
    uint64_t no_policy;       /* sessions of the day in domains that get no report
                                 (the domain had no policy), unattributed ones aside */
    uint64_t unattributed;    /* sessions of the day whose domain's policy is unknown
                                 (no decision line for the domain in the input) */
    uint64_t unknown_type;    /* failures with an unknown result type, reported as
                                 validation-failure (RFC 8460 4.4.3) */
    size_t domains_no_policy; /* domains with sessions that day known to be without
                                 a policy (no report unless no_policy_reports;
                                 unattributed ones aside) */
    uint64_t mode_none;       /* sessions of the day under a policy in mode none:
                                 never reported */
} sts_report_stats;

typedef struct sts_report_set {
    sts_report *r; /* n reports, sorted by domain */
    size_t n;
    sts_report_stats stats;
} sts_report_set;

/* Build the reports of the UTC day starting at `day` (a multiple of
 * STS_REPORT_DAY) from n sessions (any order).  STS_PERMFAIL with why for
 * bad options (a missing field, a ReportSendingIP item that is not an IP
 * address) or a day that is not at 00:00 UTC; STS_NOMEM.  *out is freed
 * with sts_report_set_free. */
sts_status sts_report_build(const sts_report_opts *o, int64_t day, const sts_rsession *s,
                            size_t n, sts_report_set **out, sts_why *why) STS_MUST_CHECK;

void sts_report_set_free(sts_report_set *set);

/* The same, streaming: sessions are added one at a time, in time order
 * (the order of the streaming join, rlog.h), and only what the reports
 * hold is kept - per domain its entries and their distinct failure
 * details - so memory does not grow with the number of sessions.  The
 * nearest known state of a session without one is the last one before it
 * in that order, else the first after it (the sessions before a domain's
 * first known state wait, aggregated, for it).  sts_report_build is this
 * over the sessions sorted by time. */
typedef struct sts_report_acc sts_report_acc;

/* Errors as for sts_report_build (bad options, a day not at 00:00). */
sts_status sts_report_acc_new(const sts_report_opts *o, int64_t day, sts_report_acc **out,
                              sts_why *why) STS_MUST_CHECK;

/* One session (not kept: its texts are copied as needed).  Running out of
 * memory is remembered and reported by sts_report_acc_finish. */
void sts_report_acc_add(sts_report_acc *a, const sts_rsession *s);

/* The reports, sorted by domain (*out freed with sts_report_set_free);
 * STS_NOMEM when memory ran out at any point.  Call once. */
sts_status sts_report_acc_finish(sts_report_acc *a, sts_report_set **out,
                                 sts_why *why) STS_MUST_CHECK;

void sts_report_acc_free(sts_report_acc *a);

/* The i-th RFC 8460 4.4 result type (i < STS_REPORT_NTYPES), in the order of
 * the RFC's sections (negotiation 4.4.1, DANE 4.4.2.1, MTA-STS 4.4.2.2);
 * NULL past the end. */
const char *sts_report_result_name(size_t i);

/* The report-id of domain's report for the day (see above); out must hold
 * STS_REPORT_ID_MAX + 1 bytes.  STS_PERMFAIL if it does not fit. */
sts_status sts_report_id(const char *submitter, const char *host_id, const char *domain,
                         int64_t day, char *out, size_t outsz) STS_MUST_CHECK;

/* Whether s can be a host id (see sts_report_opts). */
bool sts_report_host_id_valid(const char *s);

/* Parse "YYYY-MM-DD" (a real calendar day, years 1970..9999) into the UTC
 * seconds of its 00:00.  STS_PERMFAIL with why otherwise. */
sts_status sts_report_parse_day(const char *s, int64_t *day, sts_why *why) STS_MUST_CHECK;

/* Format t as RFC 3339 "YYYY-MM-DDTHH:MM:SSZ" (UTC) into out (>= 21 bytes). */
void sts_report_datetime(int64_t t, char *out, size_t outsz);

#endif
