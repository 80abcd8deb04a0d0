/*
 * report_impl.h - private contract between report.c (calendar, ids, the
 * JSON of one report, sts_report_build) and report_acc.c (the streaming
 * accumulator): what one domain's report holds.  Only those two include
 * it.
 */
#ifndef STS_REPORT_IMPL_H
#define STS_REPORT_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tlsrpt/report.h"

#define RT_VALIDATION_FAILURE 4 /* index of "validation-failure" */

/* One failure-details element.  Texts are the accumulator's own copies
 * (one per distinct string), so they compare by pointer. */
typedef struct rdetail {
    size_t type;        /* index into the result type names */
    const char *sip;    /* sending-mta-ip or NULL */
    const char *host;   /* "" = unknown */
    const char *ip;
    const char *reason;
    uint64_t count;
} rdetail;

/* The policy of an sts entry (copies; freed with the entry). */
typedef struct rpolicy {
    sts_mode mode;
    bool max_age_known;
    uint32_t max_age;
    char *mx;   /* patterns, ',' joined (",..." when the log cut them) */
    char *text; /* the policy as published, NULL when unknown */
} rpolicy;

/* One element of "policies": an sts policy, or no-policy-found. */
typedef struct rentry {
    bool sts;
    rpolicy pol; /* sts entries */
    uint64_t ok, fail;
    rdetail *d;
    size_t nd, capd;
} rentry;

/* qsort order of failure-details: result type, host, receiving IP,
 * sending IP, reason. */
int sts_report_detail_cmp(const void *a, const void *b);

/* The report of domain for the day of o into r: domain, report_id,
 * begin/end, json and the summary figures, from entries e[0..n) (their
 * details sorted by sts_report_detail_cmp).  STS_NOMEM, or STS_PERMFAIL
 * when the id does not fit. */
sts_status sts_report_make(const sts_report_opts *o, int64_t day, const char *domain,
                           rentry *e, size_t n, sts_report *r) STS_MUST_CHECK;

#endif
