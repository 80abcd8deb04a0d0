/*
 * smap.c - socketmap requests and replies (see smap.h): RFC 8461 section
 * 4 expressed in Postfix's TLS policy table syntax (postconf(5)
 * smtp_tls_policy_maps: "secure match=... servername=hostname").
 */
#include "smap.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "policy.h"

static const sts_smap_profile profiles[] = {
    { "postfix", true, false, false, 3000 },
    /* Sendmail's FEATURE(`sts') sends the map name "sts". */
    { "sts", true, false, false, 3000 },
};

const sts_smap_profile *sts_smap_profile_for(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(profiles) / sizeof(profiles[0]); i++)
        if (strlen(profiles[i].name) == len && memcmp(profiles[i].name, name, len) == 0)
            return &profiles[i];
    return &profiles[0];
}

bool sts_smap_split(sts_cur req, sts_cur *name, sts_cur *key)
{
    if (!sts_cur_take_until(&req, ' ', name) || name->len == 0)
        return false;
    (void)sts_cur_take_char(&req, ' ');
    *key = req;
    return key->len > 0;
}

sts_status sts_smap_key_domain(sts_cur key, char out[STS_DOMAIN_MAX + 1], sts_why *why)
{
    char tmp[64];
    struct in6_addr a6;
    struct in_addr a4;

    /* "[host]" and "[host]:port" are next hops given without MX lookup;
     * the host inside is still the policy domain. */
    if (key.len > 0 && key.p[0] == '[') {
        sts_cur inner;

        key.p++;
        key.len--;
        if (!sts_cur_take_until(&key, ']', &inner)) {
            sts_why_set(why, "unbalanced '[' in the key");
            return STS_PERMFAIL;
        }
        key = inner;
    } else {
        /* "host:port" */
        for (size_t i = 0; i < key.len; i++)
            if (key.p[i] == ':') {
                key.len = i;
                break;
            }
    }
    if (key.len > 0 && key.p[0] == '.')
        return STS_NOTFOUND; /* parent-domain probe: policies are per exact domain (3.4) */
    if (key.len > 0 && key.len < sizeof(tmp)) {
        memcpy(tmp, key.p, key.len);
        tmp[key.len] = '\0';
        if (inet_pton(AF_INET, tmp, &a4) == 1 || inet_pton(AF_INET6, tmp, &a6) == 1 ||
            (key.len > 5 && sts_mem_eq_nocase(tmp, "ipv6:", 5)))
            return STS_NOTFOUND; /* no policy for address literals (3.4) */
    }
    return sts_domain_normalize(key.p, key.len, out, why);
}

sts_status sts_smap_reply(const sts_smap_profile *p, const sts_answer *a, sts_buf *out)
{
    const sts_policy *pol = a->policy;
    bool secure = a->result == STS_RESULT_POLICY && pol != NULL &&
                  (pol->mode == STS_MODE_ENFORCE ||
                   (pol->mode == STS_MODE_TESTING && p->strict_testing));
    sts_status st;

    if (!secure) {
        if (a->result == STS_RESULT_TEMPERROR && p->temp_on_fail)
            return sts_buf_printf(out, "TEMP %.200s", a->error[0] != '\0' ? a->error
                                                                           : "lookup failed");
        return sts_buf_append_str(out, "NOTFOUND ");
    }
    st = sts_buf_append_str(out, "OK secure match=");
    for (size_t i = 0; st == STS_OK && i < pol->n_mx; i++) {
        const char *m = pol->mx[i];

        if (i > 0)
            st = sts_buf_append(out, ":", 1);
        if (st == STS_OK)
            st = sts_buf_append_str(out, m[0] == '*' ? m + 1 : m);
    }
    if (st == STS_OK && p->servername)
        st = sts_buf_append_str(out, " servername=hostname");
    return st;
}
