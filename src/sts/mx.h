/*
 * mx.h - MTA-STS "mx" patterns (RFC 8461 3.2 and 4.1).
 *
 * A pattern is a host name or "*." followed by a host name.  "*.example.com"
 * matches exactly one extra left-most label ("mx.example.com"), never
 * "example.com" nor "a.b.example.com".  Comparison is ASCII
 * case-insensitive and one trailing dot on either side is ignored.
 */
#ifndef STS_MX_H
#define STS_MX_H

#include <stdbool.h>
#include <stddef.h>

/* True if pat[0..len) is a syntactically valid mx pattern: a host name
 * (sts_hostname_valid, one trailing dot allowed) optionally preceded by
 * "*.".  IP addresses, "*foo", "*", "a.*.b" and empty labels are invalid. */
bool sts_mx_pattern_valid(const char *pat, size_t len);

/* True if the MX host name matches the pattern (both NUL-terminated). */
bool sts_mx_match(const char *pattern, const char *host);

#endif
