/*
 * fuzz_policy.c - libFuzzer target for the MTA-STS policy file parser
 * (src/policy.c, RFC 8461 3.2).  On success the parsed policy is checked
 * against the invariants policy.h promises, copied with sts_policy_dup()
 * and compared; any violation aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "sts/mx.h"
#include "sts/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_policy(const sts_policy *p, const uint8_t *data, size_t size)
{
    sts_mode m;

    if (p->mode != STS_MODE_ENFORCE && p->mode != STS_MODE_TESTING && p->mode != STS_MODE_NONE)
        abort();
    if (!sts_mode_from_name(sts_mode_name(p->mode), strlen(sts_mode_name(p->mode)), &m) ||
        m != p->mode)
        abort();
    if (p->max_age > STS_MAX_AGE_LIMIT)
        abort();
    if (p->n_mx == 0 && p->mode != STS_MODE_NONE)
        abort();
    if (p->n_mx > STS_POLICY_MAX_MX || (p->n_mx > 0 && p->mx == NULL))
        abort();
    for (size_t i = 0; i < p->n_mx; i++) {
        const char *mx = p->mx[i];
        size_t n = strlen(mx);

        if (n == 0 || mx[n - 1] == '.' || !sts_mx_pattern_valid(mx, n))
            abort();
        for (size_t j = 0; j < n; j++)
            if (mx[j] >= 'A' && mx[j] <= 'Z')
                abort();
        /* A pattern matches a host spelled like itself (wildcards aside). */
        if (mx[0] != '*' && !sts_policy_mx_match(p, mx))
            abort();
    }
    if (p->text == NULL || p->text_len != size || memcmp(p->text, data, size) != 0 ||
        p->text[size] != '\0')
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sts_policy *p = NULL, *d;
    sts_why why;
    sts_status st;

    why.text[0] = '\0';
    st = sts_policy_parse((const char *)data, size, &p, &why);
    if (st == STS_OK) {
        if (p == NULL)
            abort();
        check_policy(p, data, size);
        d = sts_policy_dup(p);
        if (d == NULL) /* the fuzzer does not inject allocation failures */
            abort();
        check_policy(d, data, size);
        if (d->mode != p->mode || d->max_age != p->max_age || d->n_mx != p->n_mx)
            abort();
        for (size_t i = 0; i < p->n_mx; i++)
            if (d->mx[i] == p->mx[i] || strcmp(d->mx[i], p->mx[i]) != 0)
                abort();
        sts_policy_free(p);
        sts_policy_free(d);
    } else if (st == STS_PERMFAIL) {
        if (p != NULL || memchr(why.text, '\0', sizeof(why.text)) == NULL || why.text[0] == '\0')
            abort();
    } else {
        abort();
    }
    return 0;
}
