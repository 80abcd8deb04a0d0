/*
 * smap.c - socketmap requests and replies (see smap.h): RFC 8461 section
 * 4 expressed in Postfix's TLS policy table syntax (postconf(5)
 * smtp_tls_policy_maps: "secure match=... servername=hostname") and in
 * transport(5) results; RFC 8461 section 2 (DANE first) as Postfix's
 * "dane" / "dane-only" levels.
 */
#include "smap/smap.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "sts/mx.h"
#include "sts/policy.h"

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

    /* transport(5) ends its search with the wildcard "*". */
    if (sts_cur_eq(&key, "*"))
        return STS_NOTFOUND;
    /* transport_maps looks up "user+ext@domain" and "user@domain" first:
     * the policy is the domain's (the local part may itself hold '@'). */
    for (size_t i = key.len; i > 0; i--)
        if (key.p[i - 1] == '@') {
            key = sts_cur_make(key.p + i, key.len - i);
            if (key.len == 0) {
                sts_why_set(why, "address without a domain");
                return STS_PERMFAIL;
            }
            break;
        }
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

unsigned sts_smap_lookup_flags(const sts_smap_profile *p)
{
    return p->kind == STS_SMAP_KIND_TLS && p->match == STS_SMAP_MATCH_EXACT ? STS_LOOKUP_NEED_MX
                                                                             : 0;
}

/* Nothing usable in time (no policy cached, discovery failed or late). */
static sts_status reply_fail(const sts_smap_profile *p, const sts_answer *a, sts_buf *out)
{
    char text[201];
    size_t n = 0;

    if (p->on_fail != STS_SMAP_FAIL_TEMP)
        return sts_buf_append_str(out, "NOTFOUND ");
    /* The reason is ours but may quote a server (escaped where it was
     * made); whatever it holds, a reply stays one line of printable
     * ASCII, as the MTA logs it. */
    for (; n < sizeof(text) - 1 && a->error[n] != '\0'; n++) {
        unsigned char c = (unsigned char)a->error[n];

        text[n] = c >= 0x20 && c <= 0x7e ? (char)c : '?';
    }
    text[n] = '\0';
    return sts_buf_printf(out, "TEMP %s", n > 0 ? text : "MTA-STS lookup failed");
}

static sts_status reply_transport(const sts_smap_profile *p, const sts_answer *a, sts_buf *out)
{
    const sts_policy *pol = a->result == STS_RESULT_POLICY ? a->policy : NULL;
    const char *t;

    if (a->result == STS_RESULT_TEMPERROR)
        return reply_fail(p, a, out);
    /* invalid with nothing cached: as if the domain had no MTA-STS (3.3). */
    if (pol == NULL || pol->mode == STS_MODE_NONE)
        t = p->transport[STS_SMAP_T_NONE];
    else if (pol->mode == STS_MODE_ENFORCE)
        t = p->transport[STS_SMAP_T_ENFORCE];
    else
        t = p->transport[STS_SMAP_T_TESTING];
    if (t[0] == '\0')
        return sts_buf_append_str(out, "NOTFOUND ");
    return sts_buf_printf(out, "OK %s", t);
}

/* Words Postfix reads as match= keywords, not names: tls_client.c
 * (match_servername, add_namechecks) compares each ':'-separated item with
 * strcasecmp against these before it takes the item as a name.  Bit i of
 * sts_smap_dropped.keywords stands for keyword_names[i]. */
static const char *const keyword_names[] = { "hostname", "nexthop", "dot-nexthop" };
#define N_KEYWORDS (sizeof(keyword_names) / sizeof(keyword_names[0]))

/* The index of name[0..len) among the keywords, or -1. */
static int keyword_index(const char *name, size_t len)
{
    for (size_t i = 0; i < N_KEYWORDS; i++)
        if (len == strlen(keyword_names[i]) && sts_mem_eq_nocase(name, keyword_names[i], len))
            return (int)i;
    return -1;
}

const char *sts_smap_dropped_text(unsigned keywords, const char *sep,
                                  char out[STS_SMAP_DROPPED_TEXT])
{
    size_t len = 0;

    out[0] = '\0';
    for (size_t i = 0; i < N_KEYWORDS; i++) {
        int n;

        if ((keywords & (1u << i)) == 0)
            continue;
        n = snprintf(out + len, STS_SMAP_DROPPED_TEXT - len, "%s%s", len > 0 ? sep : "",
                     keyword_names[i]);
        if (n < 0 || (size_t)n >= STS_SMAP_DROPPED_TEXT - len) {
            out[len] = '\0'; /* a longer sep than ", ": the whole words that fit */
            break;
        }
        len += (size_t)n;
    }
    return out;
}

/* The match= list being written at out->data[start..]. */
typedef struct match_list {
    size_t start;
    sts_smap_dropped *note; /* names so far (left), keywords left out */
} match_list;

/* Append one match= name, ':'-separated, unless it is there already or is
 * a keyword (RFC 8461 3.2 lets "hostname" be an mx line, a valid
 * single-label host name; Postfix would read it as "the MX host's own
 * name" and accept any certificate valid for whichever host it reached). */
static sts_status add_name(sts_buf *out, match_list *ml, const char *name)
{
    size_t nlen = strlen(name);
    const char *list = out->data + ml->start, *end = out->data + out->len;
    int kw = keyword_index(name, nlen);

    if (kw >= 0) {
        ml->note->keywords |= 1u << kw;
        return STS_OK;
    }
    while (ml->note->left > 0 && list < end) {
        const char *colon = memchr(list, ':', (size_t)(end - list));
        size_t len = colon != NULL ? (size_t)(colon - list) : (size_t)(end - list);

        if (len == nlen && sts_mem_eq_nocase(list, name, nlen))
            return STS_OK;
        list += len + 1;
    }
    if (ml->note->left > 0) {
        sts_status st = sts_buf_append(out, ":", 1);

        if (st != STS_OK)
            return st;
    }
    ml->note->left++;
    return sts_buf_append(out, name, nlen);
}

/* A host name as Postfix compares it: lower case, no trailing dot (a DNS
 * answer may carry either; the match= list is easier to read and to
 * de-duplicate this way). */
static sts_status add_host(sts_buf *out, match_list *ml, const char *host)
{
    char name[STS_DOMAIN_MAX + 1];
    size_t n = strnlen(host, STS_DOMAIN_MAX);

    if (n > 0 && host[n - 1] == '.')
        n--;
    for (size_t i = 0; i < n; i++)
        name[i] = (char)sts_to_lower((unsigned char)host[i]);
    name[n] = '\0';
    return add_name(out, ml, name);
}

/* The match= list.  wildcard: each pattern, "*.d" written ".d" (Postfix
 * then accepts any depth below d).  exact: literal patterns as they are,
 * each "*.d" replaced by the domain's MX hosts it matches (one label,
 * RFC 8461 4.1), so the certificate must name an MX host the policy
 * allows and the DNS now lists.  MX hosts unknown (their lookup failed):
 * the "*." patterns give no name, the literal ones still do, which is
 * never wider than the policy.  Keywords are left out (add_name). */
static sts_status match_list_build(const sts_smap_profile *p, const sts_answer *a, sts_buf *out,
                                   sts_smap_dropped *note)
{
    const sts_policy *pol = a->policy;
    match_list ml = { out->len, note };
    sts_status st = STS_OK;

    for (size_t i = 0; st == STS_OK && i < pol->n_mx; i++) {
        const char *m = pol->mx[i];

        if (m[0] != '*')
            st = add_name(out, &ml, m);
        else if (p->match == STS_SMAP_MATCH_WILDCARD)
            st = add_name(out, &ml, m + 1);
        else if (!a->mx_known)
            note->wild_unexpanded++;
        else
            for (size_t j = 0; st == STS_OK && j < a->n_mx; j++)
                if (sts_mx_match(m, a->mx_hosts[j]))
                    st = add_host(out, &ml, a->mx_hosts[j]);
    }
    return st;
}

/* Postfix 3.10 TLSRPT attributes of an STS policy.  The syntax, as Postfix
 * parses it in smtp_tls_policy.c (tls_policy_lookup_one) and checks it in
 * smtp_tls_policy_test.c:
 *     "secure match=example:.example servername=example policy_ttl=123
 *      policy_type=sts policy_string=one policy_string=two
 *      policy_domain=example mx_host_pattern=example
 *      mx_host_pattern=*.example"
 * with "{ name = value }" for a value holding spaces (Postfix's extpar()
 * attribute syntax), one policy_string per line of the policy (RFC 8460
 * 4.4 policy-string) and one mx_host_pattern per mx line as published.
 * Before 3.10 these names are unknown and Postfix refuses the whole
 * policy ("invalid attribute name", 4.7.5 "client TLS configuration
 * problem": mail deferred), hence off by default. */
static sts_status tlsrpt_attrs(const char *domain, const sts_policy *pol, sts_buf *out)
{
    sts_cur text = sts_cur_make(pol->text != NULL ? pol->text : "", pol->text_len), line;
    sts_status st = sts_buf_printf(out, " policy_type=sts policy_domain=%s", domain);

    for (size_t i = 0; st == STS_OK && i < pol->n_mx; i++)
        st = sts_buf_printf(out, " mx_host_pattern=%s", pol->mx[i]);
    while (st == STS_OK && sts_cur_take_item(&text, '\n', &line)) {
        bool ok = line.len > 0;

        if (line.len > 0 && line.p[line.len - 1] == '\r')
            line.len--;
        sts_cur_rtrim_wsp(&line);
        /* A line the attribute syntax cannot carry (braces, control or
         * non-ASCII bytes: only unknown extension keys can have them) is
         * left out rather than garbling the policy. */
        for (size_t i = 0; ok && i < line.len; i++) {
            unsigned char c = (unsigned char)line.p[i];

            ok = c >= 0x20 && c <= 0x7e && c != '{' && c != '}';
        }
        if (ok && line.len > 0)
            st = sts_buf_printf(out, " { policy_string = %.*s }", (int)line.len, line.p);
    }
    return st;
}

/* The site's level for a domain whose MTA-STS answer asks for less. */
static sts_status reply_site(const sts_smap_profile *p, const sts_site_rule *site, sts_buf *out,
                             sts_smap_dropped *note)
{
    sts_status st = sts_buf_printf(out, "OK %s", sts_site_level_name(site->level));

    note->site = true;
    if (st == STS_OK && site->match[0] != '\0')
        st = sts_buf_printf(out, " match=%s", site->match);
    if (st == STS_OK && p->servername && site->level != STS_SITE_ENCRYPT)
        st = sts_buf_append_str(out, " servername=hostname");
    return st;
}

static sts_status reply_tls(const sts_smap_profile *p, const char *domain, const sts_answer *a,
                            const sts_site_rule *site, sts_buf *out, sts_smap_dropped *note)
{
    const sts_policy *pol = a->result == STS_RESULT_POLICY ? a->policy : NULL;
    bool secure = pol != NULL && (pol->mode == STS_MODE_ENFORCE ||
                                  (pol->mode == STS_MODE_TESTING && p->strict_testing));
    char words[STS_SMAP_DROPPED_TEXT];
    size_t base;
    sts_status st;

    if (!secure) {
        bool temp = a->result == STS_RESULT_TEMPERROR && p->on_fail == STS_SMAP_FAIL_TEMP;

        /* The site's level replaces what would be opportunistic TLS (no
         * policy, testing, none; a failed lookup answered NOTFOUND): never
         * an enforce answer (that is the policy's), never a TEMP. */
        if (site != NULL && p->site && !temp)
            return reply_site(p, site, out, note);
        if (a->result == STS_RESULT_TEMPERROR)
            return reply_fail(p, a, out);
        return sts_buf_append_str(out, "NOTFOUND ");
    }
    /* RFC 8461 2: a valid MTA-STS policy must not override DANE. */
    if (p->dane == STS_SMAP_DANE_DANE && a->dane == STS_DANE_ALL)
        return sts_buf_append_str(out, "OK dane");
    if (p->dane == STS_SMAP_DANE_ONLY && (a->dane == STS_DANE_ALL || a->dane == STS_DANE_PARTIAL))
        return sts_buf_append_str(out, "OK dane-only");
    note->exact = p->match == STS_SMAP_MATCH_EXACT;
    st = sts_buf_append_str(out, "OK secure match=");
    if (st == STS_OK)
        st = match_list_build(p, a, out, note);
    if (st == STS_OK && note->left == 0) {
        /* No name Postfix could match: with match=exact, no MX host the
         * DNS lists now is one the policy allows, or the MX hosts are not
         * known and every pattern is a "*." one; or every pattern was a
         * keyword.  No MX host is then known to be usable (RFC 8461 4.1,
         * 5: one that does not match is treated as unreachable), so
         * defer, never NOTFOUND (that would deliver an enforce domain's
         * mail without MTA-STS), and never a "match=" Postfix would
         * refuse.  A TEMP costs no connection and says why in Postfix's
         * log, where a list no certificate can match would fail every
         * MX host with "Server certificate not verified". */
        sts_buf_reset(out);
        if (note->wild_unexpanded > 0)
            st = sts_buf_printf(out, "TEMP MX hosts of %s not known (their lookup failed): "
                                "no host allowed by its MTA-STS policy can be named",
                                domain);
        else
            st = sts_buf_printf(out, "TEMP the MTA-STS policy of %s allows none of its MX hosts",
                                domain);
        if (st == STS_OK && note->keywords != 0)
            st = sts_buf_printf(out, " (left out, read by Postfix as keywords: %s)",
                                sts_smap_dropped_text(note->keywords, ", ", words));
        return st;
    }
    if (st == STS_OK && p->servername)
        st = sts_buf_append_str(out, " servername=hostname");
    if (st != STS_OK || !p->tlsrpt)
        return st;
    base = out->len;
    st = tlsrpt_attrs(domain, pol, out);
    if (st == STS_PERMFAIL) {
        /* Too long to carry the report details: the policy itself matters. */
        out->len = base;
        out->data[base] = '\0';
        st = STS_OK;
    }
    return st;
}

sts_status sts_smap_reply(const sts_smap_profile *p, const char *domain, const sts_answer *a,
                          const sts_site_rule *site, sts_buf *out, sts_smap_dropped *dropped)
{
    sts_smap_dropped none;

    if (dropped == NULL)
        dropped = &none;
    memset(dropped, 0, sizeof(*dropped));
    if (p->kind == STS_SMAP_KIND_TRANSPORT)
        return reply_transport(p, a, out);
    return reply_tls(p, domain, a, site, out, dropped);
}
