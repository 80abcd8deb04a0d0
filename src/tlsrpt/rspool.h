/*
 * rspool.h - the report spool (ReportSpool) behind rsend.h: its files,
 * written so that a crash never leaves a half-written one, and the index of
 * finished reports that keeps a report from being queued or sent twice.
 * Private to the delivery modules; the layout is described in rspool.c.
 * The caller holds the spool lock (rsend.c) around every call.
 */
#ifndef STS_RSPOOL_H
#define STS_RSPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/status.h"
#include "tlsrpt/rsend.h"

#define STS_RSPOOL_NAME_MAX 64 /* a spool file name, NUL included */

/* The spool file name of a report id: "r-" + 32 hex of its SHA-256 +
 * ".json" (an id may be longer than a file name).  STS_NOMEM if the
 * digest cannot be made. */
sts_status sts_rspool_name(const char *id, char out[STS_RSPOOL_NAME_MAX]) STS_MUST_CHECK;

/* Whether a directory entry has the form of a spool file name. */
bool sts_rspool_is_name(const char *n);

/* Open o->spool_dir (made first, mode 0700, when create).  STS_NOTFOUND
 * when it does not exist, STS_PERMFAIL when none is configured,
 * STS_TEMPFAIL otherwise. */
sts_status sts_rspool_open(const sts_rsend_opts *o, bool create, int *dirfd,
                           sts_why *why) STS_MUST_CHECK;

/* Read a whole file of at most max bytes; *data (malloc'd) is
 * NUL-terminated.  STS_NOTFOUND when it does not exist. */
sts_status sts_rspool_read(int dirfd, const char *name, size_t max, char **data, size_t *len,
                           sts_why *why) STS_MUST_CHECK;

/* Atomically make name hold data: temp file, fsync, then rename (or link
 * when exclusive, so that an existing file is never replaced: *existed,
 * STS_OK), then fsync the directory. */
sts_status sts_rspool_write(int dirfd, const char *name, const char *data, size_t len,
                            bool exclusive, bool *existed, sts_why *why) STS_MUST_CHECK;

/* Move an unreadable spool file aside as corrupt-NAME, with a log line. */
void sts_rspool_set_aside(int dirfd, const char *fname, const char *why);

/* The ids of finished reports (delivered, given up or not wanted), as read
 * from the index file, with the time each was finished. */
typedef struct sts_rspool_entry {
    char *id;
    int64_t t;
} sts_rspool_entry;

typedef struct sts_rspool_index {
    sts_rspool_entry *e;
    size_t n, cap;
} sts_rspool_index;

/* Load the index (empty when there is no index file yet). */
sts_status sts_rspool_index_load(int dirfd, sts_rspool_index *x, sts_why *why) STS_MUST_CHECK;
bool sts_rspool_index_has(const sts_rspool_index *x, const char *id);
void sts_rspool_index_free(sts_rspool_index *x);

/* Drop the entries finished more than max(2 * ReportRetryTime, 14 days)
 * before now; a failure is logged, the old index kept. */
void sts_rspool_index_prune(int dirfd, sts_rspool_index *x, const sts_rsend_opts *o,
                            int64_t now);

/* A report is finished: its id is appended to the index (fsync'd) before
 * its spool file fname is removed, so a crash in between neither loses the
 * record nor sends the report again.  Failures are logged. */
void sts_rspool_finish(int dirfd, sts_rspool_index *x, const char *id, const char *fname,
                       int64_t now);

#endif
