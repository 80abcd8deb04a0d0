/*
 * log.h - the one logging API (CONVENTIONS.md "Logs").
 *
 * A line starts with an identifier (MTA queue id, connection id, or "-"),
 * then an event word, then key=value pairs.  Values that come from a peer
 * must go through sts_log_escape() first.  Output goes to stderr, to
 * syslog, or both (sts_log_open).
 */
#ifndef STS_LOG_H
#define STS_LOG_H

#include <stdbool.h>
#include <stddef.h>

#include "base/status.h"

typedef enum sts_log_level {
    STS_LOG_ERR,
    STS_LOG_WARNING,
    STS_LOG_NOTICE,
    STS_LOG_INFO,
    STS_LOG_DEBUG,
} sts_log_level;

/* ident: program name for syslog; facility: syslog facility name (e.g.
 * "mail") or NULL for none; to_stderr: also (or only) write to stderr.
 * Returns STS_PERMFAIL for an unknown facility name. */
sts_status sts_log_open(const char *ident, const char *facility, bool to_stderr) STS_MUST_CHECK;

/* Messages above this level are dropped (default STS_LOG_INFO). */
void sts_log_set_level(sts_log_level lvl);

void sts_log(sts_log_level lvl, const char *id, const char *event, const char *fmt, ...)
    STS_PRINTF(4, 5);

/* Copy src[0..len) into dst (size dstsz > 0, always NUL-terminated) with
 * every byte outside printable ASCII, and '\\', '"' and '=' escaped as
 * \\xHH, truncating if needed.  Returns dst. */
char *sts_log_escape(char *dst, size_t dstsz, const char *src, size_t len);

/* True if facility names a syslog facility we accept. */
bool sts_log_facility_valid(const char *facility);

#endif
