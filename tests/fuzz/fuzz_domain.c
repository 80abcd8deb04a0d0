/*
 * fuzz_domain.c - libFuzzer target for src/domain.c and src/mx.c.
 *
 * The whole input is a domain for sts_domain_normalize; a name it accepts
 * must keep every promise of domain.h.  The input split at its first '\n'
 * is also an mx pattern and an MX host for sts_mx_match (RFC 8461 4.1),
 * whose answer must not depend on letter case or a trailing dot.
 * Linked with tests/fuzz/replay.c it replays tests/corpus/domain/.
 * A broken invariant calls abort() so the fuzzer keeps the input.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "sts/domain.h"
#include "sts/mx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok)
        abort();
}

/* Reasons end up in logs: they must be printable ASCII whatever the input. */
static void check_why(const sts_why *why)
{
    size_t n = strnlen(why->text, sizeof(why->text));

    check(n > 0 && n < sizeof(why->text));
    for (size_t i = 0; i < n; i++)
        check(why->text[i] >= 0x20 && why->text[i] < 0x7f);
}

static void check_normalize(const char *in, size_t len)
{
    char out[STS_DOMAIN_MAX + 1];
    char again[STS_DOMAIN_MAX + 1];
    sts_why why = { "" };
    sts_status st;
    size_t n;

    st = sts_domain_normalize(in, len, out, &why);
    if (st != STS_OK) {
        check(st == STS_PERMFAIL || st == STS_NOMEM);
        check(out[0] == '\0');
        check_why(&why);
        return;
    }
    n = strnlen(out, sizeof(out));
    check(n > 0 && n <= STS_DOMAIN_MAX);
    check(sts_hostname_valid(out, n));
    for (size_t i = 0; i < n; i++)
        check(!(out[i] >= 'A' && out[i] <= 'Z'));
    check(!sts_domain_is_literal(in, len));

    st = sts_domain_normalize(out, n, again, &why);
    check(st == STS_OK && strcmp(again, out) == 0);

    /* A normalised name is a valid exact mx pattern that matches itself,
     * and "*." + name matches one label under it. */
    check(sts_mx_pattern_valid(out, n));
    check(sts_mx_match(out, out));
    if (n + 2 <= STS_DOMAIN_MAX) {
        char wild[STS_DOMAIN_MAX + 3];
        char sub[STS_DOMAIN_MAX + 3];

        memcpy(wild, "*.", 2);
        memcpy(wild + 2, out, n + 1);
        memcpy(sub, "x.", 2);
        memcpy(sub + 2, out, n + 1);
        check(sts_mx_pattern_valid(wild, n + 2));
        check(sts_mx_match(wild, sub));
        check(!sts_mx_match(wild, out));
    }
}

static void flip_case(char *s)
{
    for (; *s != '\0'; s++)
        if (sts_is_alpha((unsigned char)*s))
            *s = (char)(*s ^ 0x20);
}

static void check_mx(const char *pat, const char *host)
{
    size_t plen = strlen(pat), hlen = strlen(host);
    bool valid = sts_mx_pattern_valid(pat, plen);
    bool m = sts_mx_match(pat, host);
    char *p2 = NULL, *h2 = NULL;

    if (m) {
        size_t h = hlen > 0 && host[hlen - 1] == '.' ? hlen - 1 : hlen;

        check(valid);
        check(sts_hostname_valid(host, h));
    }

    /* Case-insensitive on both sides. */
    p2 = sts_strndup(pat, plen);
    h2 = sts_strndup(host, hlen + 1); /* room for a trailing dot below */
    if (p2 == NULL || h2 == NULL)
        goto done;
    flip_case(p2);
    flip_case(h2);
    check(sts_mx_pattern_valid(p2, plen) == valid);
    check(sts_mx_match(p2, h2) == m);

    /* One trailing dot on the host is not significant. */
    if (hlen == 0 || host[hlen - 1] != '.') {
        h2[hlen] = '.';
        h2[hlen + 1] = '\0';
        check(sts_mx_match(pat, h2) == m);
    }
done:
    free(p2);
    free(h2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    const char *nl = size > 0 ? memchr(in, '\n', size) : NULL;
    char *pat = NULL, *host = NULL;

    check_normalize(in, size);

    if (nl != NULL) {
        size_t k = (size_t)(nl - in);

        pat = sts_strndup(in, k);
        host = sts_strndup(nl + 1, size - k - 1);
    } else {
        pat = sts_strndup(in, size);
        host = sts_strndup(in, size);
    }
    if (pat != NULL && host != NULL)
        check_mx(pat, host);
    free(pat);
    free(host);
    return 0;
}
