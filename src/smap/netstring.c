/*
 * netstring.c - netstring framing for the socketmap (see netstring.h).
 * Input comes from any local process that can reach the socket: every
 * length is bounded before anything is buffered.
 */
#include "smap/netstring.h"

#include <stdio.h>

#define NS_MAX_DIGITS 7

sts_ns_result sts_netstring_parse(const char *buf, size_t len, size_t max, sts_cur *payload,
                                  size_t *consumed, sts_why *why)
{
    size_t n = 0, i = 0;

    while (i < len && sts_is_digit((unsigned char)buf[i])) {
        if (i == NS_MAX_DIGITS) {
            sts_why_set(why, "netstring length has more than %d digits", NS_MAX_DIGITS);
            return STS_NS_BAD;
        }
        n = n * 10 + (size_t)(buf[i] - '0');
        i++;
    }
    if (i == len)
        return STS_NS_MORE;
    if (i == 0) {
        sts_why_set(why, "netstring does not start with a length");
        return STS_NS_BAD;
    }
    if (buf[i] != ':') {
        sts_why_set(why, "netstring length not followed by ':'");
        return STS_NS_BAD;
    }
    if (n > max) {
        sts_why_set(why, "netstring of %zu bytes, the limit is %zu", n, max);
        return STS_NS_BAD;
    }
    i++;
    if (len - i < n + 1)
        return STS_NS_MORE;
    if (buf[i + n] != ',') {
        sts_why_set(why, "netstring payload not followed by ','");
        return STS_NS_BAD;
    }
    *payload = sts_cur_make(buf + i, n);
    *consumed = i + n + 1;
    return STS_NS_OK;
}

sts_status sts_netstring_append(sts_buf *out, const char *data, size_t n)
{
    char head[24];
    int h = snprintf(head, sizeof(head), "%zu:", n);
    size_t before = out->len;
    sts_status st;

    if (h < 0)
        return STS_PERMFAIL;
    st = sts_buf_append(out, head, (size_t)h);
    if (st == STS_OK)
        st = sts_buf_append(out, data, n);
    if (st == STS_OK)
        st = sts_buf_append(out, ",", 1);
    if (st != STS_OK) {
        /* Never leave half a netstring behind. */
        out->len = before;
        if (out->data != NULL)
            out->data[before] = '\0';
    }
    return st;
}
