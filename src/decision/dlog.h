/*
 * dlog.h - the decision log: one JSON object per line, one line per
 * recipient decision (ARCHITECTURE.md contract), read by mtasts-report and
 * log shippers.  Fields: time (UTC, RFC 3339), queue_id, domain, result,
 * mode, policy_id, action, reason, and report_type, mx, max_age, from_cache,
 * pending when they apply.  Thread-safe; reopen() for logrotate.
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

void sts_dlog_close(sts_dlog *l);

#endif
