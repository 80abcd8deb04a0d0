/*
 * fuzz_smap_reply.c - libFuzzer target for the socketmap reply builder
 * (src/smap/smap.c, sts_smap_reply): a policy parsed from fuzz bytes, an
 * engine answer and a request go in; the reply must be one well-formed
 * netstring that Postfix (smtp_tls_policy.c, tls_policy_lookup_one) would
 * read as only the attributes we emit, with a match= list that is exactly
 * the policy's patterns (or, match=exact, the MX hosts they allow) and
 * never a Postfix keyword, and what it reports as left out must be the
 * keywords among them.  Any violation aborts.
 *
 * Input:
 *   byte 0          the answer: bits 0-1 result (policy, none, temperror,
 *                   invalid), bits 2-3 DANE state (unknown, none, partial, all),
 *                   bit 4 MX hosts known, bit 5 pending, bits 6-7 the
 *                   error text (none, two of ours, or line 2 as it is)
 *   line 1          the request payload "NAME KEY" (profiles below)
 *   line 2          the domain's MX hosts, separated by spaces
 *   the rest        the policy text (a result "policy" whose text does
 *                   not parse becomes "none", as the engine never answers
 *                   a policy it could not parse)
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "smap/netstring.h"
#include "smap/smap.h"
#include "smap/smap_profile.h"
#include "sts/domain.h"
#include "sts/mx.h"
#include "sts/policy.h"

#define FUZZ_MAX_MX 16
#define FUZZ_MAX_REPLY 16384 /* the daemon's reply cap (milter/socketmap.c) */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every option of both kinds, so the fuzzer reaches every reply shape. */
static const char profile_lines[] =
    "exact match=exact\n"
    "strict strict_testing=yes\n"
    "rpt tlsrpt=yes\n"
    "nosni servername=no\n"
    "dane dane=dane\n"
    "daneonly dane=dane-only tlsrpt=yes\n"
    "temp on_fail=temp\n"
    "all match=exact strict_testing=yes tlsrpt=yes dane=dane on_fail=temp servername=no\n"
    "route kind=transport enforce=mtasts-enforce: testing=smtp:[relay.example]:25 none=\n";

static sts_smap_profiles *profiles;

/* Postfix's match= keywords (tls_client.c, compared with strcasecmp); kept
 * here apart from smap.c's list, as the oracle. */
static bool is_keyword(const char *s, size_t n)
{
    static const char *const kw[] = { "hostname", "nexthop", "dot-nexthop" };

    for (size_t i = 0; i < sizeof(kw) / sizeof(kw[0]); i++)
        if (n == strlen(kw[i]) && sts_mem_eq_nocase(s, kw[i], n))
            return true;
    return false;
}

static bool cur_is(sts_cur c, const char *s)
{
    return c.len == strlen(s) && memcmp(c.p, s, c.len) == 0;
}

/* Names, NUL-separated and case-insensitively distinct: those the match=
 * list must hold, computed apart from smap.c, and the keywords left out. */
typedef struct names {
    char buf[FUZZ_MAX_REPLY];
    size_t len, n;
} names;

static bool names_has(const names *w, const char *s, size_t n)
{
    for (size_t off = 0; off < w->len;) {
        size_t l = strlen(w->buf + off);

        if (l == n && sts_mem_eq_nocase(w->buf + off, s, n))
            return true;
        off += l + 1;
    }
    return false;
}

static void names_add(names *w, const char *s, size_t n, names *kw)
{
    if (kw != NULL && is_keyword(s, n)) {
        char low[16];

        for (size_t i = 0; i < n; i++)
            low[i] = (char)sts_to_lower((unsigned char)s[i]);
        names_add(kw, low, n, NULL);
        return;
    }
    if (names_has(w, s, n) || w->len + n + 1 > sizeof(w->buf))
        return;
    memcpy(w->buf + w->len, s, n);
    w->buf[w->len + n] = '\0';
    w->len += n + 1;
    w->n++;
}

static void want_names(const sts_smap_profile *p, const sts_answer *a, names *w, names *kw)
{
    const sts_policy *pol = a->policy;

    w->len = w->n = 0;
    kw->len = kw->n = 0;
    for (size_t i = 0; i < pol->n_mx; i++) {
        const char *m = pol->mx[i];

        if (m[0] != '*')
            names_add(w, m, strlen(m), kw);
        else if (p->match == STS_SMAP_MATCH_WILDCARD)
            names_add(w, m + 1, strlen(m + 1), kw);
        else if (a->mx_known) /* MX hosts unknown: "*." gives no name */
            for (size_t j = 0; j < a->n_mx; j++)
                if (sts_mx_match(m, a->mx_hosts[j]))
                    names_add(w, a->mx_hosts[j], strlen(a->mx_hosts[j]), kw);
    }
}

/* Postfix's tokeniser for a policy table value: separators ", \t\r\n",
 * braces group (mystrtokq with CHARS_COMMA_SP and CHARS_BRACE). */
static bool next_token(sts_cur *c, sts_cur *tok)
{
    size_t i = 0, depth = 0;

    while (c->len > 0 && strchr(", \t\r\n", c->p[0]) != NULL && c->p[0] != '\0') {
        c->p++;
        c->len--;
    }
    if (c->len == 0)
        return false;
    for (; i < c->len; i++) {
        char ch = c->p[i];

        if (ch == '{')
            depth++;
        else if (ch == '}' && depth > 0)
            depth--;
        else if (depth == 0 && strchr(", \t\r\n", ch) != NULL && ch != '\0')
            break;
    }
    if (depth != 0)
        abort(); /* unbalanced brace: Postfix would refuse the policy */
    *tok = sts_cur_make(c->p, i);
    c->p += i;
    c->len -= i;
    return true;
}

/* "{ name = value }" as extpar() + split_nameval() see it. */
static void brace_nameval(sts_cur tok, sts_cur *name, sts_cur *val)
{
    if (tok.len < 2 || tok.p[tok.len - 1] != '}')
        abort();
    tok = sts_cur_make(tok.p + 1, tok.len - 2);
    if (memchr(tok.p, '{', tok.len) != NULL || memchr(tok.p, '}', tok.len) != NULL)
        abort();
    sts_cur_skip_wsp(&tok);
    sts_cur_rtrim_wsp(&tok);
    if (!sts_cur_take_until(&tok, '=', name))
        abort();
    (void)sts_cur_take_char(&tok, '=');
    sts_cur_rtrim_wsp(name);
    sts_cur_skip_wsp(&tok);
    *val = tok;
}

/* The match= list: every name wanted, none twice, nothing else. */
static void check_match(sts_cur val, const names *w)
{
    size_t seen = 0;
    sts_cur item;

    while (sts_cur_take_item(&val, ':', &item)) {
        if (item.len == 0 || is_keyword(item.p, item.len) || !names_has(w, item.p, item.len))
            abort();
        seen++;
    }
    if (seen != w->n)
        abort();
}

/* A line of the policy text, as tlsrpt_attrs() may carry it. */
static bool policy_has_line(const sts_policy *pol, sts_cur v)
{
    sts_cur text = sts_cur_make(pol->text, pol->text_len), line;

    while (sts_cur_take_item(&text, '\n', &line)) {
        if (line.len > 0 && line.p[line.len - 1] == '\r')
            line.len--;
        sts_cur_rtrim_wsp(&line);
        sts_cur_skip_wsp(&line);
        if (line.len == v.len && memcmp(line.p, v.p, v.len) == 0)
            return true;
    }
    return false;
}

static bool policy_has_mx(const sts_policy *pol, sts_cur v)
{
    for (size_t i = 0; i < pol->n_mx; i++)
        if (cur_is(v, pol->mx[i]))
            return true;
    return false;
}

/* An "OK secure ..." value: only our attributes, each as we write it. */
static void check_secure(const sts_smap_profile *p, const char *domain, const sts_answer *a,
                         const names *w, sts_cur rest)
{
    size_t n_match = 0, n_sni = 0, n_type = 0, n_domain = 0, n_pattern = 0;
    sts_cur tok, name, val;

    if (w->n == 0)
        abort(); /* nothing to match: must have been TEMP */
    while (next_token(&rest, &tok)) {
        bool braced = tok.p[0] == '{';

        if (braced) {
            brace_nameval(tok, &name, &val);
        } else {
            val = tok;
            if (!sts_cur_take_until(&val, '=', &name))
                abort();
            (void)sts_cur_take_char(&val, '=');
        }
        if (cur_is(name, "match") && !braced) {
            check_match(val, w);
            n_match++;
        } else if (cur_is(name, "servername") && !braced && cur_is(val, "hostname") &&
                   p->servername) {
            n_sni++;
        } else if (cur_is(name, "policy_type") && !braced && cur_is(val, "sts") && p->tlsrpt) {
            n_type++;
        } else if (cur_is(name, "policy_domain") && !braced && cur_is(val, domain) &&
                   p->tlsrpt) {
            n_domain++;
        } else if (cur_is(name, "mx_host_pattern") && !braced && policy_has_mx(a->policy, val) &&
                   p->tlsrpt) {
            n_pattern++;
        } else if (cur_is(name, "policy_string") && braced && val.len > 0 &&
                   policy_has_line(a->policy, val) && p->tlsrpt) {
            ;
        } else {
            abort(); /* an attribute we do not emit, or not like this */
        }
    }
    if (n_match != 1 || n_sni > 1 || n_type > 1 || n_domain != n_type ||
        (n_type == 0 && n_pattern > 0) || (n_type == 1 && n_pattern != a->policy->n_mx))
        abort();
}

/* What the reply builder says it left out is what the oracle left out. */
static void check_dropped(const sts_smap_dropped *d, const names *w, const names *kw,
                          bool mx_known)
{
    char text[STS_SMAP_DROPPED_TEXT];
    sts_cur list = sts_cur_str(sts_smap_dropped_text(d->keywords, ",", text)), item;
    size_t n = 0;

    if (d->left != w->n)
        abort();
    /* "*." patterns unexpanded: only with match=exact and the MX unknown. */
    if (d->wild_unexpanded > 0 && (!d->exact || mx_known))
        abort();
    while (d->keywords != 0 && sts_cur_take_item(&list, ',', &item)) {
        if (!names_has(kw, item.p, item.len))
            abort();
        n++;
    }
    if (n != kw->n)
        abort();
}

static void check_reply(const sts_smap_profile *p, const char *domain, const sts_answer *a,
                        const sts_buf *reply, const sts_smap_dropped *d)
{
    sts_cur c = sts_cur_make(reply->data, reply->len), word;
    const sts_policy *pol = a->result == STS_RESULT_POLICY ? a->policy : NULL;
    static names w, kw; /* 32 KiB: not on the stack */
    bool secure = pol != NULL && p->kind == STS_SMAP_KIND_TLS &&
                  (pol->mode == STS_MODE_ENFORCE ||
                   (pol->mode == STS_MODE_TESTING && p->strict_testing));

    /* One line of printable ASCII. */
    for (size_t i = 0; i < reply->len; i++)
        if ((unsigned char)reply->data[i] < 0x20 || (unsigned char)reply->data[i] > 0x7e)
            abort();
    if (pol != NULL && p->kind == STS_SMAP_KIND_TLS)
        want_names(p, a, &w, &kw);
    if (cur_is(c, "NOTFOUND ")) {
        if (d->keywords != 0)
            abort();
        return;
    }
    if (!sts_cur_take_until(&c, ' ', &word) || !sts_cur_take_char(&c, ' '))
        abort();
    if (cur_is(word, "TEMP")) {
        /* A secure answer whose match= list was built: TEMP only when it
         * came out empty.  Any other TEMP built no list. */
        if (secure) {
            if (w.n != 0)
                abort();
            check_dropped(d, &w, &kw, a->mx_known);
        } else if (d->keywords != 0) {
            abort();
        }
        return;
    }
    if (!cur_is(word, "OK"))
        abort();
    if (p->kind == STS_SMAP_KIND_TRANSPORT) {
        if (d->keywords != 0)
            abort();
        for (int i = 0; i < STS_SMAP_T_COUNT; i++)
            if (p->transport[i][0] != '\0' && cur_is(c, p->transport[i]))
                return;
        abort();
    }
    if (!secure)
        abort();
    if (!sts_cur_take_until(&c, ' ', &word)) {
        word = c; /* a level alone */
        c = sts_cur_make(c.p + c.len, 0);
    }
    if (cur_is(word, "dane") || cur_is(word, "dane-only")) {
        if (c.len != 0 || p->dane == STS_SMAP_DANE_NO || d->keywords != 0)
            abort();
        return;
    }
    if (!cur_is(word, "secure"))
        abort();
    check_secure(p, domain, a, &w, c);
    check_dropped(d, &w, &kw, a->mx_known);
}

/* The reply framed as the daemon frames it must read back as one netstring. */
static void check_framing(const sts_buf *reply)
{
    sts_buf framed;
    sts_cur payload;
    size_t used = 0;
    sts_why why;

    sts_buf_init(&framed, FUZZ_MAX_REPLY + 16);
    if (sts_netstring_append(&framed, reply->data, reply->len) != STS_OK)
        abort();
    if (sts_netstring_parse(framed.data, framed.len, FUZZ_MAX_REPLY, &payload, &used, &why) !=
            STS_NS_OK ||
        used != framed.len || payload.len != reply->len ||
        memcmp(payload.p, reply->data, reply->len) != 0)
        abort();
    sts_buf_free(&framed);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const errors[] = { "", "DNS: timeout", "policy discovery still running" };
    sts_cur in = sts_cur_make((const char *)data, size), req, mxline, host, name, key;
    char domain[STS_DOMAIN_MAX + 1];
    char hosts_buf[1024];
    const char *hosts[FUZZ_MAX_MX];
    const sts_smap_profile *p;
    sts_policy *pol = NULL;
    sts_answer a;
    sts_smap_dropped dropped;
    sts_buf reply;
    sts_why why;
    sts_status st;
    unsigned ctl;

    if (profiles == NULL && sts_smap_profiles_build(profile_lines, &profiles, &why) != STS_OK)
        abort();
    if (size < 1)
        return 0;
    ctl = data[0];
    in.p++;
    in.len--;
    if (!sts_cur_take_item(&in, '\n', &req) || !sts_smap_split(req, &name, &key))
        return 0;
    p = sts_smap_profiles_find(profiles, name.p, name.len);
    if (p == NULL || sts_smap_key_domain(key, domain, &why) != STS_OK)
        return 0;

    memset(&a, 0, sizeof(a));
    a.result = (sts_result)(ctl & 3);
    a.dane = (sts_dane_state)(STS_DANE_UNKNOWN + ((ctl >> 2) & 3));
    a.mx_known = (ctl & 0x10) != 0;
    a.pending = (ctl & 0x20) != 0;
    memcpy(a.id, "fuzz1", 6);
    if (!sts_cur_take_item(&in, '\n', &mxline))
        mxline = sts_cur_make("", 0);
    if ((ctl >> 6) == 3) /* any bytes, as a reason quoting a server could */
        (void)snprintf(a.error, sizeof(a.error), "%.*s", (int)mxline.len, mxline.p);
    else
        (void)snprintf(a.error, sizeof(a.error), "%s", errors[ctl >> 6]);

    /* MX hosts as the DNS module hands them over: host names only. */
    if (a.mx_known && mxline.len < sizeof(hosts_buf)) {
        char *q = hosts_buf;

        while (a.n_mx < FUZZ_MAX_MX && sts_cur_take_item(&mxline, ' ', &host)) {
            if (host.len == 0 || !sts_hostname_valid(host.p, host.len))
                continue;
            memcpy(q, host.p, host.len);
            q[host.len] = '\0';
            hosts[a.n_mx++] = q;
            q += host.len + 1;
        }
        a.mx_hosts = hosts;
    }
    if (a.result == STS_RESULT_POLICY) {
        st = sts_policy_parse(in.p, in.len, &pol, &why);
        if (st == STS_NOMEM)
            return 0;
        if (st != STS_OK)
            a.result = STS_RESULT_NONE;
        a.policy = pol;
    }

    sts_buf_init(&reply, FUZZ_MAX_REPLY);
    st = sts_smap_reply(p, domain, &a, NULL, &reply, &dropped);
    if (st == STS_OK) {
        check_reply(p, domain, &a, &reply, &dropped);
        check_framing(&reply);
    } else if (st != STS_PERMFAIL && st != STS_NOMEM) {
        abort();
    }
    sts_buf_free(&reply);
    sts_policy_free(pol);
    return 0;
}
