/*
 * smap_site.c - the site TLS policy table (see smap_site.h): the bounded
 * parser of SiteTLSPolicyFile and the lookup of a domain in it.  RFC 8461
 * section 1 and 5 leave a domain without a policy to the sending site:
 * this is where the site says which of them get authenticated or at least
 * encrypted delivery.
 */
#include "smap/smap_site.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sts/domain.h"

struct sts_site_table {
    size_t n, cap;
    sts_site_rule *r; /* sorted by key for bsearch */
};

static const char *const level_names[] = { "encrypt", "verify", "secure" };

const char *sts_site_level_name(sts_site_level level)
{
    return (unsigned)level < 3 ? level_names[level] : "?";
}

static bool not_wsp(unsigned char c)
{
    return !sts_is_wsp(c);
}

void sts_site_free(sts_site_table *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n; i++) {
        free((char *)t->r[i].key);
        free((char *)t->r[i].match);
    }
    free(t->r);
    free(t);
}

size_t sts_site_count(const sts_site_table *t)
{
    return t != NULL ? t->n : 0;
}

const sts_site_rule *sts_site_at(const sts_site_table *t, size_t i)
{
    return t != NULL && i < t->n ? &t->r[i] : NULL;
}

/* One match= name: a Postfix keyword, or a host name, optionally after
 * one '.' (Postfix: any name below it).  Written lower case into out. */
static bool match_name_ok(sts_cur name)
{
    static const char *const keywords[] = { "hostname", "nexthop", "dot-nexthop" };

    for (size_t i = 0; i < 3; i++)
        if (sts_cur_eq_nocase(&name, keywords[i]))
            return true;
    if (name.len > 1 && name.p[0] == '.') {
        name.p++;
        name.len--;
    }
    return sts_hostname_valid(name.p, name.len);
}

/* The match= value: 1..STS_SITE_MAX_NAMES valid names separated by ':',
 * lower-cased into a new string. */
static sts_status parse_match(sts_cur v, char **out, const char **bad)
{
    sts_cur list = v, item;
    size_t n = 0;
    char *copy;

    *bad = NULL;
    if (v.len == 0 || v.len > STS_SITE_MAX_MATCH) {
        *bad = v.len == 0 ? "match= is empty" : "match= is too long";
        return STS_PERMFAIL;
    }
    while (sts_cur_take_item(&list, ':', &item)) {
        if (++n > STS_SITE_MAX_NAMES) {
            *bad = "match= has too many names";
            return STS_PERMFAIL;
        }
        if (item.len == 0 || !match_name_ok(item)) {
            *bad = "match= holds a name that is not a host name, .parent name or "
                   "hostname/nexthop/dot-nexthop";
            return STS_PERMFAIL;
        }
    }
    if (v.p[v.len - 1] == ':') {
        *bad = "match= ends in ':'";
        return STS_PERMFAIL;
    }
    copy = sts_strndup(v.p, v.len);
    if (copy == NULL)
        return STS_NOMEM;
    for (size_t i = 0; i < v.len; i++)
        copy[i] = (char)sts_to_lower((unsigned char)copy[i]);
    *out = copy;
    return STS_OK;
}

static int cmp_rule(const void *a, const void *b)
{
    return strcmp(((const sts_site_rule *)a)->key, ((const sts_site_rule *)b)->key);
}

/* Parse one non-empty, non-comment line into *r (strings allocated). */
static sts_status parse_line(sts_cur line, sts_site_rule *r, char *err, size_t errsz)
{
    sts_cur dom, lev, opt;
    char norm[STS_DOMAIN_MAX + 2], shown[64];
    sts_why why = { "" };
    bool parent;
    int level = -1;
    sts_status st;

    memset(r, 0, sizeof(*r));
    (void)sts_cur_take_while(&line, not_wsp, &dom);
    sts_cur_skip_wsp(&line);
    if (!sts_cur_take_while(&line, not_wsp, &lev)) {
        (void)snprintf(err, errsz, "'%s' has no level (encrypt, verify or secure)",
                       sts_quote(shown, sizeof(shown), dom.p, dom.len));
        return STS_PERMFAIL;
    }
    parent = dom.len > 1 && dom.p[0] == '.';
    if (parent) {
        dom.p++;
        dom.len--;
    }
    if (dom.len > 0 && dom.p[0] == '*') {
        (void)snprintf(err, errsz, "'%s': write .domain for the names below a domain",
                       sts_quote(shown, sizeof(shown), dom.p, dom.len));
        return STS_PERMFAIL;
    }
    st = sts_domain_normalize(dom.p, dom.len, norm + 1, &why);
    if (st == STS_NOMEM)
        return st;
    if (st != STS_OK) {
        (void)snprintf(err, errsz, "'%s' is not a domain: %s",
                       sts_quote(shown, sizeof(shown), dom.p, dom.len), why.text);
        return STS_PERMFAIL;
    }
    for (int i = 0; i < 3; i++)
        if (sts_cur_eq_nocase(&lev, level_names[i]))
            level = i;
    if (level < 0) {
        (void)snprintf(err, errsz, "level '%s' is not encrypt, verify or secure",
                       sts_quote(shown, sizeof(shown), lev.p, lev.len));
        return STS_PERMFAIL;
    }
    r->level = (sts_site_level)level;
    sts_cur_skip_wsp(&line);
    if (sts_cur_take_while(&line, not_wsp, &opt)) {
        const char *bad = NULL;
        char *m = NULL;

        if (!sts_cur_take_lit_nocase(&opt, "match=")) {
            (void)snprintf(err, errsz, "'%s' is not match=NAME[:NAME...]",
                           sts_quote(shown, sizeof(shown), opt.p, opt.len));
            return STS_PERMFAIL;
        }
        if (r->level == STS_SITE_ENCRYPT) {
            (void)snprintf(err, errsz, "match= does not apply to encrypt (no names are checked)");
            return STS_PERMFAIL;
        }
        st = parse_match(opt, &m, &bad);
        if (st != STS_OK) {
            if (bad != NULL)
                (void)snprintf(err, errsz, "%s", bad);
            return st;
        }
        r->match = m;
        sts_cur_skip_wsp(&line);
        if (!sts_cur_empty(&line)) {
            (void)snprintf(err, errsz, "unexpected '%s' after match=",
                           sts_quote(shown, sizeof(shown), line.p, line.len));
            free(m);
            r->match = NULL;
            return STS_PERMFAIL;
        }
    }
    if (r->match == NULL && (r->match = sts_strndup("", 0)) == NULL)
        return STS_NOMEM;
    norm[0] = '.';
    r->key = sts_strndup(parent ? norm : norm + 1, strlen(norm + 1) + (parent ? 1 : 0));
    if (r->key == NULL) {
        free((char *)r->match);
        r->match = NULL;
        return STS_NOMEM;
    }
    return STS_OK;
}

sts_status sts_site_parse(const char *text, size_t len, const char *name, sts_site_table **out,
                          sts_why *why)
{
    sts_cur all = sts_cur_make(text, len), line;
    sts_site_table *t;
    unsigned lineno = 0;
    char err[STS_WHY_MAX];
    sts_status st = STS_OK;

    *out = NULL;
    if (len > STS_SITE_MAX_FILE) {
        sts_why_set(why, "%s: larger than %u bytes", name, STS_SITE_MAX_FILE);
        return STS_PERMFAIL;
    }
    t = calloc(1, sizeof(*t));
    if (t == NULL)
        goto nomem;
    while (sts_cur_take_item(&all, '\n', &line)) {
        sts_site_rule r;
        sts_site_rule *grown;

        lineno++;
        if (line.len > 0 && line.p[line.len - 1] == '\r')
            line.len--;
        if (line.len > STS_SITE_MAX_LINE) {
            sts_why_set(why, "%s:%u: line longer than %d bytes", name, lineno, STS_SITE_MAX_LINE);
            goto bad;
        }
        if (memchr(line.p, '\0', line.len) != NULL) {
            sts_why_set(why, "%s:%u: NUL byte", name, lineno);
            goto bad;
        }
        sts_cur_skip_wsp(&line);
        sts_cur_rtrim_wsp(&line);
        if (line.len == 0 || line.p[0] == '#')
            continue;
        if (t->n == STS_SITE_MAX_ENTRIES) {
            sts_why_set(why, "%s:%u: more than %d entries", name, lineno, STS_SITE_MAX_ENTRIES);
            goto bad;
        }
        err[0] = '\0';
        st = parse_line(line, &r, err, sizeof(err));
        if (st == STS_NOMEM)
            goto nomem;
        if (st != STS_OK) {
            sts_why_set(why, "%s:%u: %s", name, lineno, err);
            goto bad;
        }
        r.line = lineno;
        grown = sts_array_reserve(t->r, t->n, &t->cap, 16, sizeof(*t->r));
        if (grown == NULL) {
            free((char *)r.key);
            free((char *)r.match);
            goto nomem;
        }
        t->r = grown;
        t->r[t->n++] = r;
    }
    if (t->n > 1)
        qsort(t->r, t->n, sizeof(*t->r), cmp_rule);
    for (size_t i = 1; i < t->n; i++)
        if (strcmp(t->r[i - 1].key, t->r[i].key) == 0) {
            const sts_site_rule *a = &t->r[i - 1], *b = &t->r[i];

            sts_why_set(why, "%s:%u: %s listed already at line %u", name,
                        a->line > b->line ? a->line : b->line, a->key,
                        a->line > b->line ? b->line : a->line);
            goto bad;
        }
    *out = t;
    return STS_OK;
nomem:
    sts_why_set(why, "%s: out of memory", name);
    sts_site_free(t);
    return STS_NOMEM;
bad:
    sts_site_free(t);
    return STS_PERMFAIL;
}

sts_status sts_site_load(const char *path, sts_site_table **out, sts_why *why)
{
    struct stat sb;
    char *text = NULL;
    size_t len = 0;
    sts_status st;
    /* O_NONBLOCK: a FIFO must not hang a reload. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);

    *out = NULL;
    if (fd < 0) {
        sts_why_set(why, "%s: %s", path, strerror(errno));
        return STS_PERMFAIL;
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        sts_why_set(why, "%s: not a regular file", path);
        st = STS_PERMFAIL;
        goto done;
    }
    if ((uint64_t)sb.st_size > STS_SITE_MAX_FILE) {
        sts_why_set(why, "%s: larger than %u bytes", path, STS_SITE_MAX_FILE);
        st = STS_PERMFAIL;
        goto done;
    }
    /* One byte more than the size: a file that grew meanwhile is seen. */
    text = malloc((size_t)sb.st_size + 1);
    if (text == NULL) {
        sts_why_set(why, "%s: out of memory", path);
        st = STS_NOMEM;
        goto done;
    }
    for (;;) {
        ssize_t got = read(fd, text + len, (size_t)sb.st_size + 1 - len);

        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            sts_why_set(why, "%s: %s", path, strerror(errno));
            st = STS_PERMFAIL;
            goto done;
        }
        if (got == 0)
            break;
        len += (size_t)got;
        if (len > (size_t)sb.st_size) {
            sts_why_set(why, "%s: changed while it was read", path);
            st = STS_PERMFAIL;
            goto done;
        }
    }
    st = sts_site_parse(text, len, path, out, why);
done:
    free(text);
    (void)close(fd);
    return st;
}

static const sts_site_rule *find_key(const sts_site_table *t, const char *key)
{
    sts_site_rule k;

    memset(&k, 0, sizeof(k));
    k.key = key;
    return bsearch(&k, t->r, t->n, sizeof(*t->r), cmp_rule);
}

const sts_site_rule *sts_site_find(const sts_site_table *t, const char *domain)
{
    const sts_site_rule *r;

    if (t == NULL || t->n == 0)
        return NULL;
    if ((r = find_key(t, domain)) != NULL)
        return r;
    /* ".parent" entries, nearest first: each '.' of the domain starts one. */
    for (const char *dot = strchr(domain, '.'); dot != NULL; dot = strchr(dot + 1, '.'))
        if ((r = find_key(t, dot)) != NULL)
            return r;
    return NULL;
}
