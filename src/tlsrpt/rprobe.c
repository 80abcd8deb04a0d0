/*
 * rprobe.c - MX probe records joined to sessions (see rprobe.h).  The
 * records are few (one per policy domain and MX host per ProbeInterval):
 * those with a verdict are kept per (domain, policy id, MX host), the
 * three interned names, in an open-addressing table, each key's probes in
 * time order, so a session finds its nearest probe by one hash look-up
 * and a binary search, whenever in the streaming join it is given out.
 */
#include "tlsrpt/rprobe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/buf.h"
#include "sts/domain.h"
#include "sts/mx.h"
#include "sts/probe.h"
#include "tlsrpt/rlog_impl.h"

typedef struct pent {
    int64_t time;
    const char *ip, *reason; /* interned; reason: the probe's words, without the stamp */
    const char *rt;          /* static; NULL: success */
} pent;

typedef struct pkey {
    const char *domain, *id, *mx; /* interned; domain NULL: an empty slot */
    pent *e;                      /* e[0..n) in time order */
    uint32_t n, cap;
} pkey;

struct sts_rprobe {
    pkey *k;       /* capk slots, a power of 2, at most half used */
    size_t nk, capk;
    size_t n;      /* entries kept over all keys (<= RPROBE_MAX) */
    sts_rprobe_stats st;
};

static const char *json_text(json_t *o, const char *k, size_t *len)
{
    json_t *v = json_object_get(o, k);

    if (!json_is_string(v))
        return NULL;
    *len = json_string_length(v);
    if (memchr(json_string_value(v), '\0', *len) != NULL)
        return NULL;
    return json_string_value(v);
}

static const char *result_rt(sts_probe_result res)
{
    switch (res) {
    case STS_PROBE_STARTTLS_NOT_SUPPORTED:
        return sts_rlog_rt_starttls;
    case STS_PROBE_CERT_HOST_MISMATCH:
        return sts_rlog_rt_host;
    case STS_PROBE_CERT_EXPIRED:
        return sts_rlog_rt_expired;
    case STS_PROBE_CERT_NOT_TRUSTED:
        return sts_rlog_rt_untrusted;
    case STS_PROBE_VALIDATION_FAILURE:
        return sts_rlog_rt_validation;
    default:
        return NULL;
    }
}

static size_t key_hash(const char *domain, const char *id, const char *mx)
{
    uint64_t h = (uint64_t)(uintptr_t)domain * 0x9E3779B97F4A7C15ull ^
                 (uint64_t)(uintptr_t)id * 0xC2B2AE3D27D4EB4Full ^
                 (uint64_t)(uintptr_t)mx * 0x165667B19E3779F9ull;

    return (size_t)(h ^ (h >> 29));
}

static pkey *key_find(const sts_rprobe *pb, const char *domain, const char *id, const char *mx)
{
    if (pb == NULL || pb->capk == 0)
        return NULL;
    for (size_t i = key_hash(domain, id, mx) & (pb->capk - 1);; i = (i + 1) & (pb->capk - 1)) {
        pkey *k = &pb->k[i];

        if (k->domain == NULL)
            return NULL;
        if (k->domain == domain && k->id == id && k->mx == mx)
            return k;
    }
}

/* The key (domain, id, mx), made when new; NULL when out of memory. */
static pkey *key_get(sts_rprobe *pb, const char *domain, const char *id, const char *mx)
{
    pkey *k = key_find(pb, domain, id, mx);
    size_t i;

    if (k != NULL)
        return k;
    if ((pb->nk + 1) * 2 > pb->capk) {
        size_t nc = pb->capk != 0 ? pb->capk * 2 : 256;
        pkey *nk = sts_calloc_array(nc, sizeof(*nk));

        if (nk == NULL)
            return NULL;
        for (size_t j = 0; j < pb->capk; j++) {
            if (pb->k[j].domain == NULL)
                continue;
            i = key_hash(pb->k[j].domain, pb->k[j].id, pb->k[j].mx) & (nc - 1);
            while (nk[i].domain != NULL)
                i = (i + 1) & (nc - 1);
            nk[i] = pb->k[j];
        }
        free(pb->k);
        pb->k = nk;
        pb->capk = nc;
    }
    i = key_hash(domain, id, mx) & (pb->capk - 1);
    while (pb->k[i].domain != NULL)
        i = (i + 1) & (pb->capk - 1);
    k = &pb->k[i];
    k->domain = domain;
    k->id = id;
    k->mx = mx;
    pb->nk++;
    return k;
}

/* Keep e under k, in time order (records come mostly in order: the
 * place is searched from the end). */
static bool key_add(sts_rprobe *pb, pkey *k, const pent *e)
{
    size_t cap = k->cap, at;
    pent *ne;

    if ((ne = sts_array_reserve(k->e, k->n, &cap, 4, sizeof(*ne))) == NULL)
        return false;
    k->e = ne;
    k->cap = (uint32_t)cap;
    for (at = k->n; at > 0 && k->e[at - 1].time > e->time; at--)
        ;
    memmove(&k->e[at + 1], &k->e[at], (k->n - at) * sizeof(*k->e));
    k->e[at] = *e;
    k->n++;
    pb->n++;
    return true;
}

/* A malformed record: warned by the join, skipped quietly ahead of it. */
static sts_rlog_line_kind bad(sts_rlog *r, sts_rprobe_mode mode, const char *why, sts_cur line)
{
    return mode == STS_RPROBE_AHEAD ? STS_RLOG_IGNORED : sts_rlog_malformed(r, why, line);
}

sts_rlog_line_kind sts_rlog_probe_line(sts_rlog *r, json_t *o, sts_cur line, sts_rprobe_mode mode)
{
    const char *ts, *ds, *ms, *rs, *s, *domain, *id, *mx;
    size_t tl, dl, ml, rl, sl;
    char dom[STS_DOMAIN_MAX + 1];
    sts_probe_result res;
    sts_rprobe *pb;
    sts_cur tc;
    pent e;
    pkey *k;

    memset(&e, 0, sizeof(e));
    ts = json_text(o, "time", &tl);
    ds = json_text(o, "domain", &dl);
    ms = json_text(o, "mx", &ml);
    rs = json_text(o, "result_type", &rl);
    if (ts == NULL || ds == NULL || ms == NULL || rs == NULL)
        return bad(r, mode, "probe without time, domain, mx or result_type", line);
    tc = sts_cur_make(ts, tl);
    if (!sts_rlog_take_rfc3339(&tc, &e.time) || tc.len != 0)
        return bad(r, mode, "probe with a bad time", line);
    if (mode != STS_RPROBE_AHEAD)
        r->line_t = e.time;
    if (sts_domain_normalize(ds, dl, dom, NULL) != STS_OK)
        return bad(r, mode, "probe with a bad domain", line);
    if (!sts_probe_result_from_name(rs, rl, &res))
        return bad(r, mode, "probe with an unknown result_type", line);
    if ((mx = sts_rlog_intern_host(r, sts_cur_make(ms, ml))) == NULL)
        return STS_RLOG_DECISION; /* out of memory or the text cap: counted by intern */
    if (mx[0] == '\0')
        return bad(r, mode, "probe with a bad mx", line);
    if (mode == STS_RPROBE_CHECK)
        return STS_RLOG_DECISION; /* kept by the pass ahead */
    if ((pb = r->probes) == NULL) {
        if ((pb = calloc(1, sizeof(*pb))) == NULL) {
            r->nomem = true;
            return STS_RLOG_DECISION;
        }
        r->probes = pb;
    }
    pb->st.records++;
    e.rt = result_rt(res);
    if (res == STS_PROBE_UNREACHABLE || res == STS_PROBE_REFUSED) {
        pb->st.no_verdict++; /* nothing to learn about the MX's TLS */
        return STS_RLOG_DECISION;
    }
    if (r->window && (e.time < r->win_from - RPROBE_MAX_SKEW ||
                      e.time >= r->win_until + RPROBE_MAX_SKEW)) {
        pb->st.far++;
        return STS_RLOG_DECISION;
    }
    if (pb->n >= RPROBE_MAX) {
        pb->st.dropped++;
        r->st.dropped++;
        return STS_RLOG_DECISION;
    }
    domain = sts_rlog_intern(r, dom, strlen(dom));
    s = json_text(o, "policy_id", &sl);
    id = sts_rlog_intern(r, s != NULL ? s : "", s != NULL ? sl : 0);
    s = json_text(o, "ip", &sl);
    e.ip = s != NULL ? sts_rlog_intern_ip(r, sts_cur_make(s, sl)) : "";
    s = json_text(o, "reason", &sl);
    e.reason = sts_rlog_intern_quoted(r, s != NULL ? s : "", s != NULL ? sl : 0);
    if (domain == NULL || id == NULL || e.ip == NULL || e.reason == NULL)
        return STS_RLOG_DECISION; /* out of memory or the text cap: counted by intern */
    if ((k = key_get(pb, domain, id, mx)) == NULL || !key_add(pb, k, &e))
        r->nomem = true;
    return STS_RLOG_DECISION;
}

void sts_rlog_probe_ahead_line(sts_rlog *r, sts_cur line)
{
    json_error_t err;
    json_t *o;
    sts_cur c = line;
    size_t pos;
    const char *kind;
    size_t kl;

    /* Most lines are decisions and MTA lines: a search settles them. */
    (void)sts_cur_skip_wsp(&c);
    if (c.len == 0 || c.p[0] != '{' || !sts_rlog_cur_find(&c, "\"probe\"", &pos))
        return;
    if ((o = json_loadb(line.p, line.len, 0, &err)) == NULL)
        return;
    if (json_is_object(o) && (kind = json_text(o, "record", &kl)) != NULL && kl == 5 &&
        memcmp(kind, "probe", 5) == 0)
        (void)sts_rlog_probe_line(r, o, line, STS_RPROBE_AHEAD);
    json_decref(o);
}

/* The probe of k nearest to t, within the skew; NULL when none. */
static const pent *nearest(const pkey *k, int64_t t)
{
    size_t lo = 0, hi = k->n;
    const pent *best = NULL;

    while (lo < hi) { /* the first probe not before t */
        size_t mid = lo + (hi - lo) / 2;

        if (k->e[mid].time < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < k->n && k->e[lo].time - t <= RPROBE_MAX_SKEW)
        best = &k->e[lo];
    if (lo > 0 && t - k->e[lo - 1].time <= RPROBE_MAX_SKEW &&
        (best == NULL || t - k->e[lo - 1].time <= best->time - t))
        best = &k->e[lo - 1];
    return best;
}

/* The session's MX host outside the decision's mx patterns (the list
 * known whole). */
static bool outside_policy(const sts_rsession *s)
{
    sts_cur list = sts_cur_str(s->mx), item;
    char pat[STS_DOMAIN_MAX + 3];

    if (s->mx[0] == '\0' || s->mx_truncated)
        return false;
    while (sts_cur_take_item(&list, ',', &item)) {
        if (item.len == 0 || item.len >= sizeof(pat))
            return false; /* not a list we can judge */
        memcpy(pat, item.p, item.len);
        pat[item.len] = '\0';
        if (sts_mx_match(pat, s->mx_host))
            return false;
    }
    return true;
}

/* "MX probe at TIME: REASON" into the session's detail. */
static void probe_detail(sts_rsession *x, const pent *p)
{
    char stamp[32];
    struct tm tm;
    time_t tt = (time_t)p->time;

    if (gmtime_r(&tt, &tm) == NULL ||
        strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        (void)snprintf(stamp, sizeof(stamp), "%lld", (long long)p->time);
    (void)snprintf(x->detail, sizeof(x->detail), "MX probe at %s: %s", stamp, p->reason);
}

/* A detail that is only the MTA's verdict, no reason: what the readers
 * write when the log says no more (rlog_postfix.c: Postfix's summary
 * word at level "may"; rlog_sendmail.c: Sendmail's "verify=WORD"). */
static bool bare_verdict(const char *detail)
{
    return detail[0] == '\0' || strcmp(detail, "Untrusted TLS connection") == 0 ||
           strncmp(detail, "verify=", 7) == 0;
}

void sts_rlog_probe_apply(sts_rlog *r, sts_rsession *x, const char *domain, const char *policy_id,
                          const char *mx_host)
{
    sts_rprobe *pb = r->probes;
    const pkey *k;
    const pent *p = NULL;
    bool unexplained;

    /* Only what the MTA could not check: a success whose name was not
     * verified, or a certificate it found untrusted without saying why
     * (Postfix at level "may"), under a policy that asks for it. */
    unexplained = !x->success && x->tls == STS_RLOG_TLS_UNTRUSTED &&
                  x->result_type == sts_rlog_rt_untrusted && bare_verdict(x->detail);
    if (x->engine_failure || !(x->success ? x->tls == STS_RLOG_TLS_TRUSTED : unexplained) ||
        !x->has_decision || !x->has_policy ||
        (x->mode != STS_MODE_TESTING && x->mode != STS_MODE_ENFORCE) || x->mx_host[0] == '\0' ||
        policy_id == NULL)
        return;
    if ((k = key_find(pb, domain, policy_id, mx_host)) != NULL)
        p = nearest(k, x->time);
    if (pb == NULL && (pb = r->probes = calloc(1, sizeof(*pb))) == NULL) {
        r->nomem = true;
        return;
    }
    if (unexplained) {
        /* The probe may say why; a chain our CA store trusts where the
         * MTA's did not is theirs to judge, not ours. */
        if (p != NULL && (p->rt == sts_rlog_rt_expired || p->rt == sts_rlog_rt_untrusted)) {
            x->result_type = p->rt;
            probe_detail(x, p);
            pb->st.changed++;
        }
        return;
    }
    if (p != NULL) {
        if (p->rt == NULL) {
            pb->st.confirmed++;
            return;
        }
        x->success = false;
        x->result_type = p->rt;
        probe_detail(x, p);
        if (x->mx_ip[0] == '\0')
            (void)snprintf(x->mx_ip, sizeof(x->mx_ip), "%s", p->ip);
        pb->st.changed++;
    } else if (outside_policy(x)) {
        x->success = false;
        x->result_type = sts_rlog_rt_validation;
        (void)snprintf(x->detail, sizeof(x->detail),
                       "MX host %.200s matches none of the policy's mx patterns", x->mx_host);
        pb->st.outside++;
    }
}

sts_rprobe_stats sts_rlog_probe_stats(const sts_rlog *r)
{
    sts_rprobe_stats none = { 0 };

    return r->probes != NULL ? r->probes->st : none;
}

void sts_rlog_probe_free(sts_rlog *r)
{
    if (r->probes == NULL)
        return;
    for (size_t i = 0; i < r->probes->capk; i++)
        free(r->probes->k[i].e);
    free(r->probes->k);
    free(r->probes);
    r->probes = NULL;
}
