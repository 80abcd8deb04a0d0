/*
 * dlog.h - the decision log: one JSON object per line, one line per
 * recipient decision (ARCHITECTURE.md contract), read by mtasts-report and
 * log shippers.  Fields: time (UTC, RFC 3339), queue_id, domain, result,
 * mode, policy_id, action, reason, and report_type, refresh_error (result
 * policy: the refresh that failed while the cached policy applied), mx,
 * max_age, from_cache, pending when they apply.  Thread-safe; reopen() for logrotate.
 *
 * Lines of other kinds carry a "record" field (a decision line has none,
 * as in older logs; readers skip kinds they do not know):
 *   {"time", "record":"policy", "domain", "policy_id", "policy"}  the
 *   policy text as fetched, once per (domain, policy id) and log file, so
 *   that reports can quote the policy as published (RFC 8460 4.3
 *   policy-string).
 */
#ifndef STS_DLOG_H
#define STS_DLOG_H

#include <stdint.h>

#include "decision/decide.h"
#include "base/safefile.h"
#include "base/status.h"

typedef struct sts_dlog sts_dlog;

/* Open (append; create with mode 0640) the log at path by the rules of
 * sts_safefile_open: a file created as root is handed to owner. */
sts_status sts_dlog_open(const char *path, const sts_safefile_owner *owner, sts_dlog **out,
                         sts_why *why) STS_MUST_CHECK;

/* Open the same path again (after logrotate moved it), by the same rules;
 * on failure the old file stays in use. */
sts_status sts_dlog_reopen(sts_dlog *l, sts_why *why) STS_MUST_CHECK;

/* Append one line (one write(2)); queue_id may be NULL ("-"). */
sts_status sts_dlog_write(sts_dlog *l, int64_t when, const char *queue_id,
                          const sts_decision *d, sts_why *why) STS_MUST_CHECK;

/* Append one line made by json_dumps (or NULL: STS_NOMEM), then free it:
 * its terminator is where the newline goes.  For other record kinds
 * (dlog_probe.h). */
sts_status sts_dlog_write_line(sts_dlog *l, char *line, sts_why *why) STS_MUST_CHECK;

/* The line that sts_dlog_write would append, without the newline; free(). */
char *sts_dlog_format(int64_t when, const char *queue_id, const sts_decision *d);

/* The policy record of (domain, id, text), unless this file already holds
 * it (remembered for the last STS_DLOG_POLICIES_SEEN policies; forgotten
 * on reopen, so that every rotated file has its own).  Nothing for an
 * empty id or text. */
#define STS_DLOG_POLICIES_SEEN 4096
sts_status sts_dlog_note_policy(sts_dlog *l, int64_t when, const char *domain, const char *id,
                                const char *text, size_t len, sts_why *why) STS_MUST_CHECK;

/* The line that sts_dlog_note_policy writes, without the newline; free(). */
char *sts_dlog_format_policy(int64_t when, const char *domain, const char *id, const char *text,
                             size_t len);

void sts_dlog_close(sts_dlog *l);

#endif
