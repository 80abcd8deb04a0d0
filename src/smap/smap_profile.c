/*
 * smap_profile.c - socketmap profiles (see smap_profile.h): the option
 * syntax, the built-in "postfix" and "sts" profiles, and the set the
 * socketmap server looks names up in.
 */
#include "smap/smap_profile.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[] = { "tls", "transport" };
static const char *const fail_names[] = { "notfound", "temp" };
static const char *const match_names[] = { "wildcard", "exact" };
static const char *const dane_names[] = { "no", "dane", "dane-only" };

static void profile_defaults(sts_smap_profile *p, const char *name, size_t len)
{
    memset(p, 0, sizeof(*p));
    memcpy(p->name, name, len);
    p->name[len] = '\0';
    p->kind = STS_SMAP_KIND_TLS;
    p->servername = true;
    p->site = true;
    p->on_fail = STS_SMAP_FAIL_NOTFOUND;
    /* RFC 8461 4.1: "*.d" covers one label; Postfix's ".d" any depth.
     * Exact is the default; wildcard gives postfix-mta-sts-resolver's
     * answers for those who want them. */
    p->match = STS_SMAP_MATCH_EXACT;
    p->dane = STS_SMAP_DANE_NO;
    p->budget_ms = STS_SMAP_BUDGET_DEFAULT_MS;
}

/* "postfix" for smtp_tls_policy_maps, "sts" for Sendmail's FEATURE(`sts'). */
static const char *const builtin_names[] = { "postfix", "sts" };
#define N_BUILTINS (sizeof(builtin_names) / sizeof(builtin_names[0]))

static bool is_name_char(unsigned char c)
{
    return sts_is_alnum(c) || c == '-' || c == '_' || c == '.';
}

static bool not_wsp(unsigned char c)
{
    return !sts_is_wsp(c);
}

/* The index of v in names[0..n), or -1. */
static int pick(sts_cur v, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (sts_cur_eq_nocase(&v, names[i]))
            return (int)i;
    return -1;
}

static bool parse_bool(sts_cur v, bool *out)
{
    static const char *const yes[] = { "yes", "true", "on", "1" };
    static const char *const no[] = { "no", "false", "off", "0" };

    if (pick(v, yes, 4) >= 0) {
        *out = true;
        return true;
    }
    if (pick(v, no, 4) >= 0) {
        *out = false;
        return true;
    }
    return false;
}

/* N (milliseconds), Nms or Ns, at most STS_SMAP_BUDGET_MAX_MS. */
static bool parse_budget(sts_cur v, unsigned *out)
{
    uint64_t n;

    if (!sts_cur_take_number(&v, 9, 999999999, &n))
        return false;
    if (sts_cur_eq_nocase(&v, "s"))
        n *= 1000;
    else if (!sts_cur_empty(&v) && !sts_cur_eq_nocase(&v, "ms"))
        return false;
    if (n > STS_SMAP_BUDGET_MAX_MS)
        return false;
    *out = (unsigned)n;
    return true;
}

/* A transport(5) result "transport:nexthop" (either part may be empty),
 * or nothing at all for NOTFOUND. */
static bool parse_transport(sts_cur v, char out[STS_SMAP_TRANSPORT_MAX + 1])
{
    if (v.len > STS_SMAP_TRANSPORT_MAX)
        return false;
    for (size_t i = 0; i < v.len; i++)
        if ((unsigned char)v.p[i] < 0x21 || (unsigned char)v.p[i] > 0x7e)
            return false;
    if (v.len > 0 && memchr(v.p, ':', v.len) == NULL)
        return false;
    memcpy(out, v.p, v.len);
    out[v.len] = '\0';
    return true;
}

typedef enum opt_id {
    O_KIND, O_SERVERNAME, O_STRICT, O_ON_FAIL, O_BUDGET, O_MATCH, O_TLSRPT, O_DANE, O_SITE,
    O_ENFORCE, O_TESTING, O_NONE, O_COUNT
} opt_id;

static const struct {
    const char *name;
    int kind; /* -1 both, else the sts_smap_kind it belongs to */
} opts[O_COUNT] = {
    [O_KIND] = { "kind", -1 },
    [O_SERVERNAME] = { "servername", STS_SMAP_KIND_TLS },
    [O_STRICT] = { "strict_testing", STS_SMAP_KIND_TLS },
    [O_ON_FAIL] = { "on_fail", -1 },
    [O_BUDGET] = { "budget", -1 },
    [O_MATCH] = { "match", STS_SMAP_KIND_TLS },
    [O_TLSRPT] = { "tlsrpt", STS_SMAP_KIND_TLS },
    [O_DANE] = { "dane", STS_SMAP_KIND_TLS },
    [O_SITE] = { "site", STS_SMAP_KIND_TLS },
    [O_ENFORCE] = { "enforce", STS_SMAP_KIND_TRANSPORT },
    [O_TESTING] = { "testing", STS_SMAP_KIND_TRANSPORT },
    [O_NONE] = { "none", STS_SMAP_KIND_TRANSPORT },
};

static bool apply_opt(sts_smap_profile *p, opt_id id, sts_cur v)
{
    int k;

    switch (id) {
    case O_KIND:
        k = pick(v, kind_names, 2);
        p->kind = (sts_smap_kind)k;
        return k >= 0;
    case O_SERVERNAME:
        return parse_bool(v, &p->servername);
    case O_STRICT:
        return parse_bool(v, &p->strict_testing);
    case O_TLSRPT:
        return parse_bool(v, &p->tlsrpt);
    case O_SITE:
        return parse_bool(v, &p->site);
    case O_ON_FAIL:
        k = pick(v, fail_names, 2);
        p->on_fail = (sts_smap_on_fail)k;
        return k >= 0;
    case O_MATCH:
        k = pick(v, match_names, 2);
        p->match = (sts_smap_match)k;
        return k >= 0;
    case O_DANE:
        k = pick(v, dane_names, 3);
        p->dane = (sts_smap_dane)k;
        return k >= 0;
    case O_BUDGET:
        return parse_budget(v, &p->budget_ms);
    case O_ENFORCE:
        return parse_transport(v, p->transport[STS_SMAP_T_ENFORCE]);
    case O_TESTING:
        return parse_transport(v, p->transport[STS_SMAP_T_TESTING]);
    case O_NONE:
        return parse_transport(v, p->transport[STS_SMAP_T_NONE]);
    case O_COUNT:
        break;
    }
    return false;
}

static const char *const value_hint[O_COUNT] = {
    [O_KIND] = "tls or transport",
    [O_SERVERNAME] = "yes or no",
    [O_STRICT] = "yes or no",
    [O_ON_FAIL] = "notfound or temp",
    [O_BUDGET] = "a duration up to 60s (examples: 500ms, 3s)",
    [O_MATCH] = "wildcard or exact",
    [O_TLSRPT] = "yes or no",
    [O_DANE] = "no, dane or dane-only",
    [O_SITE] = "yes or no",
    [O_ENFORCE] = "a transport:nexthop result (printable, no spaces, with ':') or empty",
    [O_TESTING] = "a transport:nexthop result (printable, no spaces, with ':') or empty",
    [O_NONE] = "a transport:nexthop result (printable, no spaces, with ':') or empty",
};

sts_status sts_smap_profile_parse(sts_cur text, sts_smap_profile *out, sts_why *why)
{
    sts_cur name, word, whole;
    sts_cur given[O_COUNT];
    bool seen[O_COUNT] = { false };
    char shown[64];

    sts_cur_skip_wsp(&text);
    sts_cur_rtrim_wsp(&text);
    if (!sts_cur_take_while(&text, not_wsp, &name)) {
        sts_why_set(why, "missing map name");
        return STS_PERMFAIL;
    }
    whole = name;
    if (name.len > STS_SMAP_NAME_MAX || !sts_cur_take_while(&name, is_name_char, &word) ||
        !sts_cur_empty(&name)) {
        sts_why_set(why, "map name '%s' is not 1..%d letters, digits, '-', '_' or '.'",
                    sts_quote(shown, sizeof(shown), whole.p, whole.len),
                    STS_SMAP_NAME_MAX);
        return STS_PERMFAIL;
    }
    profile_defaults(out, word.p, word.len);
    /* Collect first, apply after: kind decides which options are allowed,
     * wherever it is written. */
    while (sts_cur_skip_wsp(&text), !sts_cur_empty(&text)) {
        sts_cur key, val;
        int id;

        (void)sts_cur_take_while(&text, not_wsp, &word);
        val = word;
        if (!sts_cur_take_until(&val, '=', &key) || key.len == 0) {
            sts_why_set(why, "'%s' is not option=value",
                        sts_quote(shown, sizeof(shown), word.p, word.len));
            return STS_PERMFAIL;
        }
        (void)sts_cur_take_char(&val, '=');
        id = -1;
        for (int i = 0; i < O_COUNT; i++)
            if (sts_cur_eq_nocase(&key, opts[i].name))
                id = i;
        if (id < 0) {
            sts_why_set(why,
                        "unknown option '%s' (kind, servername, strict_testing, on_fail, budget, "
                        "match, tlsrpt, dane, site, enforce, testing, none)",
                        sts_quote(shown, sizeof(shown), key.p, key.len));
            return STS_PERMFAIL;
        }
        if (seen[id]) {
            sts_why_set(why, "option %s given twice", opts[id].name);
            return STS_PERMFAIL;
        }
        seen[id] = true;
        given[id] = val;
    }
    if (seen[O_KIND] && !apply_opt(out, O_KIND, given[O_KIND])) {
        sts_why_set(why, "kind: '%s' is not %s",
                    sts_quote(shown, sizeof(shown), given[O_KIND].p, given[O_KIND].len),
                    value_hint[O_KIND]);
        return STS_PERMFAIL;
    }
    for (int i = 0; i < O_COUNT; i++) {
        if (!seen[i] || i == O_KIND)
            continue;
        if (opts[i].kind >= 0 && opts[i].kind != (int)out->kind) {
            sts_why_set(why, "option %s does not apply to a %s profile", opts[i].name,
                        kind_names[out->kind]);
            return STS_PERMFAIL;
        }
        if (!apply_opt(out, (opt_id)i, given[i])) {
            sts_why_set(why, "%s: '%s' is not %s", opts[i].name,
                        sts_quote(shown, sizeof(shown), given[i].p, given[i].len), value_hint[i]);
            return STS_PERMFAIL;
        }
    }
    return STS_OK;
}

bool sts_smap_profile_format(const sts_smap_profile *p, char *out, size_t size)
{
    int n;

    if (p->kind == STS_SMAP_KIND_TRANSPORT)
        n = snprintf(out, size, "%s kind=transport enforce=%s testing=%s none=%s on_fail=%s budget=%ums",
                     p->name, p->transport[STS_SMAP_T_ENFORCE], p->transport[STS_SMAP_T_TESTING],
                     p->transport[STS_SMAP_T_NONE], fail_names[p->on_fail], p->budget_ms);
    else
        n = snprintf(out, size,
                     "%s kind=tls servername=%s strict_testing=%s on_fail=%s budget=%ums match=%s "
                     "tlsrpt=%s dane=%s site=%s",
                     p->name, p->servername ? "yes" : "no", p->strict_testing ? "yes" : "no",
                     fail_names[p->on_fail], p->budget_ms, match_names[p->match],
                     p->tlsrpt ? "yes" : "no", dane_names[p->dane], p->site ? "yes" : "no");
    return n >= 0 && (size_t)n < size;
}

/* ------------------------------------------------------------ the set */

sts_status sts_smap_profiles_build(const char *lines, sts_smap_profiles **out, sts_why *why)
{
    sts_cur all = sts_cur_str(lines), line;
    sts_smap_profiles *set;
    size_t max = STS_SMAP_MAX_PROFILES + N_BUILTINS;

    *out = NULL;
    set = malloc(sizeof(*set) + max * sizeof(set->p[0]));
    if (set == NULL) {
        sts_why_set(why, "out of memory");
        return STS_NOMEM;
    }
    set->n = 0;
    while (lines != NULL && sts_cur_take_item(&all, '\n', &line)) {
        sts_smap_profile p;

        if (line.len == 0)
            continue;
        if (sts_smap_profile_parse(line, &p, why) != STS_OK)
            goto bad;
        if (sts_smap_profiles_find(set, p.name, strlen(p.name)) != NULL) {
            sts_why_set(why, "profile %s defined twice", p.name);
            goto bad;
        }
        if (set->n == STS_SMAP_MAX_PROFILES) {
            sts_why_set(why, "more than %d profiles", STS_SMAP_MAX_PROFILES);
            goto bad;
        }
        set->p[set->n++] = p;
    }
    for (size_t i = 0; i < N_BUILTINS; i++)
        if (sts_smap_profiles_find(set, builtin_names[i], strlen(builtin_names[i])) == NULL)
            profile_defaults(&set->p[set->n++], builtin_names[i], strlen(builtin_names[i]));
    *out = set;
    return STS_OK;
bad:
    free(set);
    return STS_PERMFAIL;
}

const sts_smap_profile *sts_smap_profiles_find(const sts_smap_profiles *set, const char *name,
                                               size_t len)
{
    for (size_t i = 0; i < set->n; i++)
        if (strnlen(set->p[i].name, sizeof(set->p[i].name)) == len &&
            memcmp(set->p[i].name, name, len) == 0)
            return &set->p[i];
    return NULL;
}

bool sts_smap_profiles_want_dane(const sts_smap_profiles *set)
{
    for (size_t i = 0; i < set->n; i++)
        if (set->p[i].kind == STS_SMAP_KIND_TLS && set->p[i].dane != STS_SMAP_DANE_NO)
            return true;
    return false;
}

void sts_smap_profiles_print(const char *lines, const char *key, FILE *fp)
{
    sts_smap_profiles *set = NULL;
    sts_why why;
    char text[STS_SMAP_NAME_MAX + 4 * STS_SMAP_TRANSPORT_MAX + 128];

    /* The lines were checked when they were parsed into the config. */
    if (sts_smap_profiles_build(lines, &set, &why) != STS_OK) {
        (void)fprintf(fp, "# %s: %s\n", key, why.text);
        return;
    }
    for (size_t i = 0; i < set->n; i++)
        if (sts_smap_profile_format(&set->p[i], text, sizeof(text)))
            (void)fprintf(fp, "%s %s\n", key, text);
    free(set);
}
