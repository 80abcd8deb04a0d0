/*
 * log.h - the one logging API (CONVENTIONS.md "Logs").
 *
 * A line starts with an identifier (MTA queue id, connection id, or "-"),
 * then an event word, then key=value pairs.  Values that come from a peer
 * must go through sts_log_escape() first.  Output goes to stderr, to
 * syslog, or both (sts_log_open).
 *
 * stderr lines come in two styles: "ident: level: id event ..." for a
 * terminal or a file, and "<N>id event ..." for the systemd journal
 * (sd-daemon(3) prefixes: N is the syslog priority, 3 = err .. 7 = debug),
 * chosen when stderr is the stream named by $JOURNAL_STREAM.
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
sts_log_level sts_log_get_level(void);

/* The one name<->code table of levels: "error", "warning", "notice",
 * "info", "debug" (ASCII case-insensitive).  parse: false for another
 * name.  name: the level's name ("error" for a value out of range). */
bool sts_log_level_parse(const char *name, size_t len, sts_log_level *out);
const char *sts_log_level_name(sts_log_level lvl);

typedef enum sts_log_style {
    STS_LOG_STYLE_PLAIN,   /* "ident: level: id event ..." */
    STS_LOG_STYLE_JOURNAL, /* "<N>id event ..." (sd-daemon prefix) */
} sts_log_style;

/* How stderr lines look, and the most verbose level that still goes to
 * stderr (syslog keeps the level of sts_log_set_level): a daemon that has
 * not detached yet shows its warnings and errors on the terminal.  Only
 * while one thread logs (start-up). */
void sts_log_stderr(bool on, sts_log_style style, sts_log_level max);

/* True when fd is the journal stream systemd connected it to: its device
 * and inode are those in $JOURNAL_STREAM ("DEV:INODE"). */
bool sts_log_journal_stream(int fd);

/* Format one line as sts_log writes it to stderr (without the newline)
 * into line[0..size), NUL-terminated, control bytes in the message
 * replaced by '?'; a line too long is cut and ends in "...".  Returns its
 * length; *body is where the part handed to syslog (id event message)
 * starts. */
size_t sts_log_format(char *line, size_t size, sts_log_style style, const char *ident,
                      sts_log_level lvl, const char *id, const char *event, size_t *body,
                      const char *fmt, ...) STS_PRINTF(9, 10);

void sts_log(sts_log_level lvl, const char *id, const char *event, const char *fmt, ...)
    STS_PRINTF(4, 5);

/* Copy src[0..len) into dst (size dstsz > 0, always NUL-terminated) with
 * every byte outside printable ASCII, and '\\', '"' and '=' escaped as
 * \\xHH, truncating if needed.  Returns dst. */
char *sts_log_escape(char *dst, size_t dstsz, const char *src, size_t len);

/* True if facility names a syslog facility we accept. */
bool sts_log_facility_valid(const char *facility);

#endif
