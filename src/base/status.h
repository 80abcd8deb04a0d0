/*
 * status.h - the result type shared by every fallible function in src/.
 *
 * The central invariant (CONVENTIONS.md "Errors"): STS_NOTFOUND means a
 * server *said* there is no such thing (NXDOMAIN, NODATA, no v=STSv1
 * record).  Anything that merely failed to get an answer - a timeout,
 * SERVFAIL, a refused connection - is STS_TEMPFAIL.  RFC 8461 5.1's
 * "keep the cached policy" rule depends on never confusing the two.
 */
#ifndef STS_STATUS_H
#define STS_STATUS_H

#include <stddef.h>

#define STS_MUST_CHECK __attribute__((warn_unused_result))
#define STS_PRINTF(f, a) __attribute__((format(printf, f, a)))

typedef enum sts_status {
    STS_OK = 0,
    STS_NOTFOUND, /* authoritative "does not exist" */
    STS_TEMPFAIL, /* may work later: timeout, SERVFAIL, network error */
    STS_PERMFAIL, /* will not work without a change: bad syntax, invalid data */
    STS_NOMEM,    /* allocation failed; callers map it to their fail action */
} sts_status;

/* Caller-owned reason text.  Every function taking a `sts_why *` accepts
 * NULL (no reason wanted) and writes a NUL-terminated, human-readable
 * sentence fragment without trailing newline. */
#define STS_WHY_MAX 256
typedef struct sts_why {
    char text[STS_WHY_MAX];
} sts_why;

/* Format a reason into why (truncating at STS_WHY_MAX - 1); NULL why is a no-op. */
void sts_why_set(sts_why *why, const char *fmt, ...) STS_PRINTF(2, 3);

/* Stable lower-case name of a status ("ok", "notfound", "tempfail", ...). */
const char *sts_status_name(sts_status st);

#endif
