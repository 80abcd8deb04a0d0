/*
 * rsend.h - delivering RFC 8460 aggregate reports (section 3 and 5):
 * where to (TXT _smtp._tls.DOMAIN, "v=TLSRPTv1;" with a rua list of
 * mailto: and https: URIs), how (mail: multipart/report; report-type=tlsrpt
 * with an application/tlsrpt+gzip attachment, handed to the local
 * submission command so the MTA signs it; https: POST of the gzip'd report
 * as application/tlsrpt+gzip, success on 2xx), and a spool directory so
 * that a crash or restart neither loses nor duplicates a report: a report
 * is written to the spool before the first attempt, each rua's delivery
 * is recorded as it succeeds, failures are retried with backoff until
 * ReportRetryTime has passed, then given up with a log line.
 */
#ifndef STS_RSEND_H
#define STS_RSEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

typedef struct sts_rsend_opts {
    const char *spool_dir;      /* ReportSpool */
    const char *sendmail_cmd;   /* ReportSendmail, run with /bin/sh -c */
    const char *from;           /* From: of report mail */
    const char *submitter;      /* TLS-Report-Submitter domain, file name */
    const char *dns_servers;    /* DNSServers (c-ares csv form), NULL = system */
    const char *ca_file;        /* CAFile for https rua, NULL = system store */
    unsigned dns_timeout_ms, dns_tries;
    unsigned https_timeout_ms;
    unsigned retry_time_s;      /* ReportRetryTime */
    unsigned sendmail_timeout_ms; /* how long ReportSendmail may take; 0 = 120000 */
    bool allow_internal;        /* AllowInternalAddresses: https rua hosts may be
                                   special-purpose addresses (fetch.h) */
} sts_rsend_opts;

/* A report id is 1..STS_RSEND_ID_MAX characters: dot-separated atoms of
 * letters, digits, '_', '+' and '-', optionally followed by '@' and a
 * second such dot-atom (so that "<id>" or "<id@submitter>" is a valid
 * RFC 5322 msg-id for the RFC 8460 5.3 Subject). */
#define STS_RSEND_ID_MAX 600
bool sts_rsend_id_valid(const char *id);

/* One report to deliver. */
typedef struct sts_rsend_report {
    const char *policy_domain;  /* the domain the report is about (and sent to) */
    const char *report_id;      /* RFC 8460 report-id: unique, stable across runs
                                   (sts_rsend_id_valid) */
    int64_t begin, end;         /* date-range, UTC seconds */
    const char *json;           /* the report, RFC 8460 section 4 JSON */
} sts_rsend_report;

/* Counters are added to (never reset) by enqueue and run. */
typedef struct sts_rsend_stats {
    unsigned queued;        /* reports newly written to the spool */
    unsigned duplicates;    /* already in the spool (same report id): not queued twice */
    unsigned delivered;     /* report/rua pairs delivered this run */
    unsigned deferred;      /* report/rua pairs that failed and will be retried (a
                               TXT lookup that failed temporarily counts as one) */
    unsigned given_up;      /* report/rua pairs past ReportRetryTime, https ruas whose
                               host has only addresses we may not connect to (at the
                               first attempt), and spool files that cannot be read
                               (moved aside as corrupt-*) */
    unsigned no_rua;        /* no usable TLSRPT record: nothing to send (not an error) */
} sts_rsend_stats;

/* Write a report into the spool (atomically: temp file + fsync + link,
 * under an flock of the spool directory, created if missing).  A report
 * whose report_id is already spooled, or was finished (delivered, given up
 * or not wanted: the spool keeps a record of finished ids for
 * max(2 * ReportRetryTime, 14 days)), is not queued again
 * (stats->duplicates, STS_OK).  STS_PERMFAIL with why for a bad report
 * (id, domain, range, JSON) or missing options; STS_TEMPFAIL on I/O errors
 * or when the spool stays locked for 10 minutes. */
sts_status sts_rsend_enqueue(const sts_rsend_opts *o, const sts_rsend_report *r,
                             sts_rsend_stats *stats, sts_why *why) STS_MUST_CHECK;

/* Attempt every spooled report that is due at `now`: discover its rua
 * (the TXT lookup is repeated on each attempt), deliver to every rua not
 * yet done, record each success in the spool file at once, then:
 * all done -> finished; a failure -> retried after 5 min, doubling up to
 * 4 h, never later than first attempt + ReportRetryTime; a failure at or
 * after that time -> given up (logged).  A permanent failure of one rua (an
 * https host with only special-purpose addresses, AllowInternalAddresses
 * off) gives that rua up at once, recorded like a success: it is not
 * tried again for this report, which waits only for its other ruas.  No usable TLSRPT record ->
 * finished (no_rua).  The whole run holds the spool lock, so concurrent
 * runs never deliver twice.  Per-report failures are logged and counted,
 * not returned; the return is STS_OK unless the spool itself is unusable
 * (a missing spool directory is an empty spool).  SIGPIPE is ignored
 * while it runs (libcurl runs with CURLOPT_NOSIGNAL). */
sts_status sts_rsend_run(const sts_rsend_opts *o, int64_t now, sts_rsend_stats *stats,
                         sts_why *why) STS_MUST_CHECK;

/* The gzip'd file name of RFC 8460 section 5.1:
 * "submitter!policy-domain!begin!end[!unique-id].json.gz" into out; the
 * unique-id (1*(ALPHA / DIGIT)) is the report id when it has that form,
 * else left out.  STS_PERMFAIL if a part is invalid or out is too small. */
sts_status sts_rsend_filename(const sts_rsend_opts *o, const sts_rsend_report *r, char *out,
                              size_t outsz) STS_MUST_CHECK;

/* gzip (RFC 1952) of len bytes into a malloc'd buffer (*out, *outlen). */
sts_status sts_rsend_gzip(const void *data, size_t len, unsigned char **out, size_t *outlen,
                          sts_why *why) STS_MUST_CHECK;

#endif
