/*
 * rlog.h - reading the logs that mtasts-report turns into RFC 8460 TLS
 * reports: the decision log (dlog.h, JSON lines) and the MTA's log
 * (Postfix smtp(8) lines, Sendmail STARTTLS=client / delivery lines),
 * recognised line by line by content, plain or gzip'd, from files or stdin.
 *
 * The reader joins what the two logs say about one message and one
 * recipient domain (key: MTA queue id + recipient domain) into sessions:
 *   - one session per delivery attempt (one SMTP connection to one MX host)
 *     seen in the MTA log, carrying the TLS outcome of that attempt and, when
 *     the decision log has a line for the same queue id and domain, the
 *     policy that applied.  A connection that carried several recipients
 *     of one domain counts once for that domain; one that carried several
 *     domains counts once per domain.  An attempt whose log says nothing
 *     about TLS (tls == STS_RLOG_TLS_NONE: no TLS was tried, or the MTA
 *     does not log it) is not a TLS session: counted in no_tls_info, not
 *     returned;
 *   - one failed session per decision whose engine-side discovery failed
 *     with an RFC 8460 result type (sts-policy-fetch-error,
 *     sts-policy-invalid, sts-webpki-invalid), with no MX host; the MTA
 *     attempts of that message and domain are part of it (counted in
 *     absorbed, not returned again).  Not when the decision's result is
 *     "policy": then a refresh failed while a valid cached policy applied
 *     (RFC 8461 5.1), and the attempts are the sessions, under that policy.  A decision "tempfail-no-mx" (an
 *     enforce policy that none of the domain's MX hosts matches) is such a
 *     session too, with result type validation-failure;
 *   - decisions "skipped", and actions split, aborted and tempfail, lead
 *     to no delivery and make no session (counted in no_session).
 * What cannot be joined is counted (sts_rlog_stats) and described in
 * mtasts-report(1), never silently dropped.  The line formats read and how
 * they map to RFC 8460 result types are listed at the top of rlog.c.
 * The MTA must log its TLS handshakes: Postfix smtp_tls_loglevel >= 1,
 * Sendmail LogLevel >= 9 (stats.tls_lines is 0 otherwise).  The lines of
 * one connection are tied together in reading order, so rotated files
 * should be read oldest first (a connection cut by the rotation is
 * otherwise counted in no_tls_info; sts_rlog_first_time lets a caller sort
 * them); the sessions come out sorted anyway.
 *
 * Two ways to get the sessions:
 *   - array mode (the default): everything read is kept and joined at the
 *     end; sts_rlog_sessions returns them sorted.  Decisions of any time
 *     join.  For tests and small inputs: memory grows with the input;
 *   - streaming (sts_rlog_set_sink): each session goes to the sink as soon
 *     as it is known, and nothing of it is kept.  Memory is bounded by a
 *     window, not by the day: an attempt is joined JOIN_SKEW (5 min) after
 *     it, a decision is kept DEC_KEEP (6 h) after it (a retry of deferred
 *     mail later than that is an unjoined attempt, reported under the
 *     domain's nearest known policy), the time being the latest line read.
 *     So the inputs must be read in time order: sts_rlog_read_files
 *     merges its files line by line by their time stamps.
 *
 * Ownership: the reader owns every session it returns; they live until
 * sts_rlog_free.  A session given to a sink lives only during the call.
 * All text fields are NUL-terminated, printable ASCII.
 */
#ifndef STS_RLOG_H
#define STS_RLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sts/domain.h"
#include "sts/outcome.h"
#include "sts/policy.h"
#include "base/status.h"
#include "sts/txt.h"

#define STS_RLOG_QID_MAX 63     /* Postfix long queue ids are < 20; Sendmail ~14 */
#define STS_RLOG_MX_MAX 1023    /* policy mx patterns joined with ','; the decision log
                                   cuts them at STS_TAG_MX_MAX (700) */
#define STS_RLOG_IP_MAX 45      /* INET6_ADDRSTRLEN - 1 */
#define STS_RLOG_DETAIL_MAX 255 /* the MTA's own words, for additional-information */
#define STS_RLOG_LINE_MAX 16384 /* longer log lines are counted malformed */

typedef enum sts_rlog_line_kind {
    STS_RLOG_DECISION,  /* a decision log JSON line */
    STS_RLOG_POSTFIX,   /* a Postfix smtp/lmtp line that matters */
    STS_RLOG_SENDMAIL,  /* a Sendmail line that matters */
    STS_RLOG_IGNORED,   /* a log line of no interest (other programs, other events) */
    STS_RLOG_MALFORMED, /* looks like one of ours but cannot be parsed: counted, warned */
} sts_rlog_line_kind;

/* What the MTA log says about TLS on one connection. */
typedef enum sts_rlog_tls {
    STS_RLOG_TLS_NONE,        /* nothing: not a TLS session, never in a returned session */
    STS_RLOG_TLS_VERIFIED,    /* chain and host name verified (Postfix "Verified") */
    STS_RLOG_TLS_TRUSTED,     /* chain verified, name not checked (Postfix "Trusted",
                                 Sendmail verify=OK / TRUSTED) */
    STS_RLOG_TLS_UNTRUSTED,   /* TLS up, certificate not verified (Postfix "Untrusted",
                                 Sendmail verify=FAIL ...) */
    STS_RLOG_TLS_ANONYMOUS,   /* TLS up, no certificate (Postfix "Anonymous",
                                 Sendmail verify=NO / NOT) */
    STS_RLOG_TLS_FAILED,      /* the TLS handshake failed */
    STS_RLOG_TLS_NOT_OFFERED, /* TLS required, the server did not offer or refused it */
    STS_RLOG_TLS_PLAINTEXT,   /* delivered without TLS by an MTA service that logs its
                                 TLS handshakes (so the server did not offer STARTTLS) */
} sts_rlog_tls;

typedef struct sts_rsession {
    int64_t time;                         /* UTC seconds of the attempt (or decision) */
    char queue_id[STS_RLOG_QID_MAX + 1];
    char domain[STS_DOMAIN_MAX + 1];      /* policy domain = recipient domain, normalised */

    /* From the decision log (has_decision false: no decision line joined). */
    bool has_decision;
    sts_result result;                    /* engine result for the domain */
    bool has_policy;                      /* a policy applied (any mode) */
    sts_mode mode;                        /* when has_policy */
    char policy_id[STS_ID_MAX + 1];       /* "" when unknown */
    char mx[STS_RLOG_MX_MAX + 1];         /* policy mx patterns, ',' joined; "" when none */
    bool mx_truncated;                    /* the log cut the list (",..." at the end) */
    uint32_t max_age;                     /* when has_policy and max_age_known */
    bool max_age_known;
    const char *policy_text;              /* the policy as published (the decision
                                             log's policy record for policy_id and
                                             domain), NULL when none was read;
                                             owned by the reader */

    /* What happened. */
    bool engine_failure;                  /* a discovery failure, no MTA attempt */
    sts_rlog_tls tls;                     /* the connection's TLS; NONE for engine
                                             failures */
    bool success;                         /* TLS established and the certificate
                                             verified: tls VERIFIED or TRUSTED */
    const char *result_type;              /* RFC 8460 result-type when !success:
                                             "starttls-not-supported",
                                             "certificate-host-mismatch",
                                             "certificate-expired",
                                             "certificate-not-trusted",
                                             "validation-failure",
                                             "sts-policy-fetch-error",
                                             "sts-policy-invalid",
                                             "sts-webpki-invalid"; static text */
    char mx_host[STS_DOMAIN_MAX + 1];     /* receiving MX host name, "" when unknown */
    char mx_ip[STS_RLOG_IP_MAX + 1];      /* receiving IP, "" when unknown */
    char detail[STS_RLOG_DETAIL_MAX + 1]; /* the MTA's reason text, escaped, "" if none */
} sts_rsession;

typedef struct sts_rlog_stats {
    uint64_t lines;             /* every line read */
    uint64_t decision_lines;
    uint64_t mta_lines;         /* Postfix/Sendmail lines used */
    uint64_t ignored_lines;
    uint64_t malformed_lines;   /* counted and warned, never fatal */
    uint64_t attempts;          /* MTA delivery attempts found (one per connection and
                                   recipient domain and queue id) */
    uint64_t joined;            /* attempts joined to a decision */
    uint64_t unjoined_attempts; /* attempts with no decision line (still reported,
                                   policy unknown: has_decision false) */
    uint64_t unjoined_decisions;/* decisions with no attempt in the MTA log (attempts
                                   without TLS information count as attempts) */
    uint64_t engine_failures;   /* sessions made from decision-side failures */
    uint64_t decisions;         /* distinct (queue id, domain) decisions kept */
    uint64_t duplicate_decisions;/* repeated lines of one decision (one per recipient) */
    uint64_t no_session;        /* decisions skipped/split/aborted/tempfail: no delivery */
    uint64_t absorbed;          /* attempts folded into an engine-failure session */
    uint64_t no_tls_info;       /* attempts whose log says nothing about TLS */
    uint64_t outside_window;    /* sessions dropped by sts_rlog_set_window */
    uint64_t details_cut;       /* failure reasons left out because the text cap was
                                   reached (the sessions still count) */
    uint64_t dropped;           /* records refused because a memory cap was reached
                                   (mtasts-report warns and fails: the reports miss them) */
    uint64_t unfinished;        /* TLS connections never tied to a delivery line (a gap in
                                   the log, or the input ended first) */
    uint64_t own_reports;       /* attempts of our own report mail (RFC 8460 3: not
                                   reported; see sts_rlog_set_own_reports) */
    uint64_t tls_lines;         /* MTA lines saying TLS was up (Postfix "... TLS
                                   connection", Sendmail STARTTLS=client relay=); 0 with
                                   MTA lines read: the MTA does not log TLS (Postfix
                                   smtp_tls_loglevel 0, Sendmail LogLevel < 9) */
} sts_rlog_stats;

typedef struct sts_rlog sts_rlog;

/* A new reader; warn (may be NULL) receives one warning per malformed line
 * ("FILE:LINE: reason"), rate-limited by the reader. */
sts_status sts_rlog_new(void (*warn)(void *arg, const char *msg), void *warn_arg,
                        sts_rlog **out) STS_MUST_CHECK;

/* Syslog time stamps without a year ("Nov 28 13:49:25", local time) get the
 * year that puts them at most 7 days after now (UTC seconds); default: the
 * time sts_rlog_new ran. */
void sts_rlog_set_now(sts_rlog *r, int64_t now);

/* Leave out the deliveries of our own report mail (RFC 8460 3): the
 * queue ids whose Message-ID is the one rmail.c writes for submitter
 * ("<tlsrpt.HEX.N.N@SUBMITTER>"), from Postfix cleanup "message-id=" and
 * Sendmail "msgid=" lines.  submitter must live as long as r.  Default:
 * none left out. */
void sts_rlog_set_own_reports(sts_rlog *r, const char *submitter);

/* Keep only sessions whose time is in [from, until) (decisions outside it
 * still join, while the join keeps them); the others are counted in
 * outside_window.
 * Default: everything. */
void sts_rlog_set_window(sts_rlog *r, int64_t from, int64_t until);

/* Streaming: every session goes to sink (in roughly time order) instead
 * of being kept; see the top of this file. */
void sts_rlog_set_sink(sts_rlog *r, void (*sink)(void *arg, const sts_rsession *s), void *arg);

/* progress is called every few thousand lines with the counts so far. */
void sts_rlog_set_progress(sts_rlog *r, void (*progress)(void *arg, const sts_rlog_stats *st),
                           void *arg);

/* Read several logs at once, merged line by line by their time stamps
 * (each log is in time order; lines without a time stamp stay where they
 * are in their log), as sts_rlog_read_file reads one.  "-" is stdin.  All
 * are opened before anything is read: STS_PERMFAIL (why names the path)
 * when one cannot be.  Streaming, each regular file is first read once
 * for its MX probe records alone (rprobe.h), which may judge sessions
 * logged before them. */
sts_status sts_rlog_read_files(sts_rlog *r, const char *const *paths, size_t n,
                               sts_why *why) STS_MUST_CHECK;

/* Read a whole log: path "-" is stdin; gzip'd files are recognised by
 * their magic bytes, not their name.  STS_PERMFAIL (why says) when the
 * file cannot be opened or is a broken gzip stream; lines before the damage
 * are kept.  STS_NOMEM when memory ran out (the reader is then unusable). */
sts_status sts_rlog_read_file(sts_rlog *r, const char *path, sts_why *why) STS_MUST_CHECK;

/* The time stamp of the first syslog line among the first 64 KiB of the
 * regular file path (gzip'd or not), the year inferred as for reading, so
 * that a caller can read rotated logs oldest first whatever their order.
 * False for "-", pipes, unreadable files and files without such a line
 * (decision logs).  Reads nothing into r. */
bool sts_rlog_first_time(const sts_rlog *r, const char *path, int64_t *t);

/* Feed one line (without its line end) by hand; name/lineno for warnings.
 * Returns what the line was recognised as. */
sts_rlog_line_kind sts_rlog_feed_line(sts_rlog *r, const char *line, size_t len,
                                      const char *name, uint64_t lineno);

/* The input has ended: join and give out what is left (streaming: to the
 * sink).  STS_NOMEM when memory ran out. */
sts_status sts_rlog_finish(sts_rlog *r) STS_MUST_CHECK;

/* Array mode: sts_rlog_finish, then the sessions (stable order: by time,
 * then queue id, then domain).  Call after the last read; calling again
 * returns the same array.  Streaming: the array is empty.  STS_NOMEM when
 * memory ran out. */
sts_status sts_rlog_sessions(sts_rlog *r, const sts_rsession **out, size_t *n) STS_MUST_CHECK;

const sts_rlog_stats *sts_rlog_get_stats(const sts_rlog *r);

void sts_rlog_free(sts_rlog *r);

#endif
