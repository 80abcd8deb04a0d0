/*
 * mx.c - the "mx" patterns of an MTA-STS policy (see mx.h).
 *
 * RFC 8461 3.2 gives their syntax (a host name, or "*." and a host name;
 * no IP addresses) and RFC 8461 4.1 how an MX host is matched against
 * them: case-insensitively, a wildcard covering exactly one left-most
 * label.  The trailing dot of a fully qualified name is not significant.
 */
#include "sts/mx.h"

#include <string.h>

#include "base/buf.h"
#include "sts/domain.h"

/* One trailing dot is the root of a fully qualified name, not an empty
 * label; a second one would be. */
static size_t strip_one_dot(const char *s, size_t len)
{
    return len > 0 && s[len - 1] == '.' ? len - 1 : len;
}

static bool is_wildcard(const char *pat, size_t len)
{
    return len >= 2 && pat[0] == '*' && pat[1] == '.';
}

bool sts_mx_pattern_valid(const char *pat, size_t len)
{
    if (pat == NULL)
        return false;
    len = strip_one_dot(pat, len);
    if (is_wildcard(pat, len))
        return sts_hostname_valid(pat + 2, len - 2);
    return sts_hostname_valid(pat, len);
}

bool sts_mx_match(const char *pattern, const char *host)
{
    size_t plen, hlen;
    const char *dot;

    if (pattern == NULL || host == NULL)
        return false;
    plen = strlen(pattern);
    hlen = strip_one_dot(host, strlen(host));
    /* Only well-formed names match: a malformed host could otherwise
     * satisfy a wildcard with an empty or dotted left-most "label". */
    if (!sts_mx_pattern_valid(pattern, plen) || !sts_hostname_valid(host, hlen))
        return false;
    plen = strip_one_dot(pattern, plen);

    if (!is_wildcard(pattern, plen))
        return plen == hlen && sts_mem_eq_nocase(pattern, host, hlen);

    /* "*.base" matches "label.base": the host's first label stands for
     * the '*', everything after its first dot must be base. */
    dot = memchr(host, '.', hlen);
    if (dot == NULL)
        return false;
    dot++;
    return hlen - (size_t)(dot - host) == plen - 2 && sts_mem_eq_nocase(dot, pattern + 2, plen - 2);
}
