/*
 * status.c - reason texts and status names (see status.h).
 */
#include "base/status.h"

#include <stdarg.h>
#include <stdio.h>

void sts_why_set(sts_why *why, const char *fmt, ...)
{
    va_list ap;

    if (why == NULL)
        return;
    va_start(ap, fmt);
    /* vsnprintf always terminates and truncates; a cut reason is still useful. */
    (void)vsnprintf(why->text, sizeof(why->text), fmt, ap);
    va_end(ap);
}

const char *sts_status_name(sts_status st)
{
    switch (st) {
    case STS_OK:
        return "ok";
    case STS_NOTFOUND:
        return "notfound";
    case STS_TEMPFAIL:
        return "tempfail";
    case STS_PERMFAIL:
        return "permfail";
    case STS_NOMEM:
        return "nomem";
    }
    return "unknown";
}
