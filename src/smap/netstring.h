/*
 * netstring.h - netstrings (D. J. Bernstein; the framing of Postfix's
 * socketmap_table(5) and Sendmail socket maps): "LEN:DATA,".
 */
#ifndef STS_NETSTRING_H
#define STS_NETSTRING_H

#include <stddef.h>

#include "base/buf.h"
#include "base/status.h"

typedef enum sts_ns_result {
    STS_NS_OK,   /* one netstring parsed: *payload, *consumed set */
    STS_NS_MORE, /* a valid prefix: read more bytes */
    STS_NS_BAD,  /* not a netstring, or longer than max: close the connection */
} sts_ns_result;

/* Parse the netstring at the start of buf[0..len).  The length is 1..7
 * decimal digits (leading zeros allowed) and at most max; the payload is
 * not NUL-terminated (a view into buf).  why says what is wrong for BAD. */
sts_ns_result sts_netstring_parse(const char *buf, size_t len, size_t max, sts_cur *payload,
                                  size_t *consumed, sts_why *why);

/* Append "LEN:DATA," to out.  STS_OK, STS_PERMFAIL (out's cap), STS_NOMEM. */
sts_status sts_netstring_append(sts_buf *out, const char *data, size_t n) STS_MUST_CHECK;

#endif
