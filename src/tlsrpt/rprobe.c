/*
 * rprobe.c - MX probe records joined to sessions (see rprobe.h).  The
 * records are few (one per policy domain and MX host per ProbeInterval),
 * kept in one array, sorted once by (domain, policy id, MX, time) and
 * looked up by binary search for each session.
 */
#include "tlsrpt/rprobe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "sts/domain.h"
#include "sts/mx.h"
#include "sts/probe.h"
#include "tlsrpt/rlog_impl.h"

typedef struct prec {
    int64_t time;
    const char *domain, *policy_id, *mx, *ip, *reason; /* interned */
    const char *rt;                                     /* static; NULL: success */
    bool verdict;                                       /* not unreachable/refused */
} prec;

struct sts_rprobe {
    prec *p;
    size_t n, cap;
    bool sorted;
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

/* A host name lower-cased without its trailing dot, interned. */
static const char *intern_name(sts_rlog *r, const char *s, size_t n)
{
    char low[STS_DOMAIN_MAX + 1];

    if (n > 0 && s[n - 1] == '.')
        n--;
    if (n == 0 || n > STS_DOMAIN_MAX || !sts_hostname_valid(s, n))
        return NULL;
    for (size_t i = 0; i < n; i++)
        low[i] = (char)sts_to_lower((unsigned char)s[i]);
    return sts_rlog_intern(r, low, n);
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

sts_rlog_line_kind sts_rlog_probe_line(sts_rlog *r, json_t *o, sts_cur line)
{
    const char *kind, *ts, *ds, *ms, *rs, *s;
    size_t kl, tl, dl, ml, rl, sl;
    char dom[STS_DOMAIN_MAX + 1], stamp[48], why[STS_WHY_MAX];
    sts_probe_result res;
    sts_rprobe *pb = r->probes;
    sts_cur tc;
    prec rec, *np;

    kind = json_text(o, "record", &kl);
    if (kind == NULL)
        return sts_rlog_malformed(r, "record kind is not a string", line);
    if (kl != 5 || memcmp(kind, "probe", 5) != 0)
        return STS_RLOG_IGNORED; /* a record kind of a newer writer */
    memset(&rec, 0, sizeof(rec));
    ts = json_text(o, "time", &tl);
    ds = json_text(o, "domain", &dl);
    ms = json_text(o, "mx", &ml);
    rs = json_text(o, "result_type", &rl);
    if (ts == NULL || ds == NULL || ms == NULL || rs == NULL)
        return sts_rlog_malformed(r, "probe without time, domain, mx or result_type", line);
    tc = sts_cur_make(ts, tl);
    if (!sts_rlog_take_rfc3339(&tc, &rec.time) || tc.len != 0)
        return sts_rlog_malformed(r, "probe with a bad time", line);
    if (sts_domain_normalize(ds, dl, dom, NULL) != STS_OK)
        return sts_rlog_malformed(r, "probe with a bad domain", line);
    if (!sts_probe_result_from_name(rs, rl, &res))
        return sts_rlog_malformed(r, "probe with an unknown result_type", line);
    if ((rec.mx = intern_name(r, ms, ml)) == NULL)
        return r->nomem ? STS_RLOG_DECISION : sts_rlog_malformed(r, "probe with a bad mx", line);
    rec.domain = sts_rlog_intern(r, dom, strlen(dom));
    s = json_text(o, "policy_id", &sl);
    rec.policy_id = sts_rlog_intern(r, s != NULL ? s : "", s != NULL ? sl : 0);
    s = json_text(o, "ip", &sl);
    rec.ip = s != NULL ? sts_rlog_intern_ip(r, sts_cur_make(s, sl)) : "";
    s = json_text(o, "reason", &sl);
    (void)snprintf(stamp, sizeof(stamp), "%.*s", (int)(tl < 40 ? tl : 40), ts);
    (void)snprintf(why, sizeof(why), "MX probe at %s: %.*s", stamp,
                   (int)(s != NULL && sl < 200 ? sl : (s != NULL ? 200 : 0)), s != NULL ? s : "");
    rec.reason = sts_rlog_intern_quoted(r, why, strlen(why));
    rec.rt = result_rt(res);
    rec.verdict = res != STS_PROBE_UNREACHABLE && res != STS_PROBE_REFUSED;
    if (rec.domain == NULL || rec.policy_id == NULL || rec.ip == NULL || rec.reason == NULL)
        return STS_RLOG_DECISION; /* out of memory or the text cap: counted by intern */
    if (pb == NULL) {
        if ((pb = calloc(1, sizeof(*pb))) == NULL) {
            r->nomem = true;
            return STS_RLOG_DECISION;
        }
        r->probes = pb;
    }
    if (pb->n >= RPROBE_MAX) {
        pb->st.dropped++;
        r->st.dropped++;
        return STS_RLOG_DECISION;
    }
    if ((np = sts_array_reserve(pb->p, pb->n, &pb->cap, 64, sizeof(*np))) == NULL) {
        r->nomem = true;
        return STS_RLOG_DECISION;
    }
    pb->p = np;
    pb->p[pb->n++] = rec;
    pb->sorted = false;
    pb->st.records++;
    return STS_RLOG_DECISION;
}

/* Interned strings compare by pointer for equality; the order only has to
 * be consistent, so the addresses serve. */
static int cmp_ptr(const void *a, const void *b)
{
    return a == b ? 0 : ((uintptr_t)a < (uintptr_t)b ? -1 : 1);
}

static int cmp_key(const prec *a, const char *domain, const char *id, const char *mx)
{
    int c;

    if ((c = cmp_ptr(a->domain, domain)) != 0 || (c = cmp_ptr(a->policy_id, id)) != 0)
        return c;
    return cmp_ptr(a->mx, mx);
}

static int cmp_prec(const void *pa, const void *pb)
{
    const prec *a = pa, *b = pb;
    int c = cmp_key(a, b->domain, b->policy_id, b->mx);

    if (c != 0)
        return c;
    return a->time < b->time ? -1 : (a->time > b->time ? 1 : 0);
}

/* The probe with a verdict for (domain, id, mx) nearest to t, within the
 * skew; NULL when none. */
static const prec *nearest(const sts_rprobe *pb, const char *domain, const char *id,
                           const char *mx, int64_t t)
{
    size_t lo = 0, hi = pb->n;
    const prec *best = NULL;
    int64_t bestd = RPROBE_MAX_SKEW + 1;

    while (lo < hi) { /* first record not below the key */
        size_t mid = lo + (hi - lo) / 2;

        if (cmp_key(&pb->p[mid], domain, id, mx) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i < pb->n && cmp_key(&pb->p[i], domain, id, mx) == 0; i++) {
        int64_t d = pb->p[i].time > t ? pb->p[i].time - t : t - pb->p[i].time;

        if (pb->p[i].verdict && d < bestd) {
            best = &pb->p[i];
            bestd = d;
        }
    }
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

void sts_rlog_probe_apply(sts_rlog *r, sts_rsession *s, size_t n)
{
    sts_rprobe *pb = r->probes;
    sts_rprobe_stats *st;

    if (pb == NULL && (pb = r->probes = calloc(1, sizeof(*pb))) == NULL) {
        r->nomem = true;
        return;
    }
    st = &pb->st;
    if (!pb->sorted) {
        if (pb->n > 1)
            qsort(pb->p, pb->n, sizeof(pb->p[0]), cmp_prec);
        pb->sorted = true;
    }
    for (size_t i = 0; i < n; i++) {
        sts_rsession *x = &s[i];
        const char *dom, *id, *mx;
        const prec *p = NULL;

        bool unexplained;

        /* Only what the MTA could not check: a success whose name was not
         * verified, or a certificate it found untrusted without saying why
         * (Postfix at level "may"), under a policy that asks for it. */
        unexplained = !x->success && x->tls == STS_RLOG_TLS_UNTRUSTED &&
                      x->result_type == sts_rlog_rt_untrusted && x->detail[0] == '\0';
        if (x->engine_failure || !(x->success ? x->tls == STS_RLOG_TLS_TRUSTED : unexplained) ||
            !x->has_decision || !x->has_policy ||
            (x->mode != STS_MODE_TESTING && x->mode != STS_MODE_ENFORCE) ||
            x->mx_host[0] == '\0')
            continue;
        if (pb->n > 0) {
            /* Look-ups only: a name never interned has no probe. */
            dom = sts_rlog_intern(r, x->domain, strlen(x->domain));
            id = sts_rlog_intern(r, x->policy_id, strlen(x->policy_id));
            mx = sts_rlog_intern(r, x->mx_host, strlen(x->mx_host));
            if (dom != NULL && id != NULL && mx != NULL)
                p = nearest(pb, dom, id, mx, x->time);
        }
        if (unexplained) {
            /* The probe may say why; a chain our CA store trusts where the
             * MTA's did not is theirs to judge, not ours. */
            if (p != NULL && (p->rt == sts_rlog_rt_expired || p->rt == sts_rlog_rt_untrusted)) {
                x->result_type = p->rt;
                (void)snprintf(x->detail, sizeof(x->detail), "%s", p->reason);
                st->changed++;
            }
            continue;
        }
        if (p != NULL) {
            if (p->rt == NULL) {
                st->confirmed++;
                continue;
            }
            x->success = false;
            x->result_type = p->rt;
            (void)snprintf(x->detail, sizeof(x->detail), "%s", p->reason);
            if (x->mx_ip[0] == '\0')
                (void)snprintf(x->mx_ip, sizeof(x->mx_ip), "%s", p->ip);
            st->changed++;
        } else if (outside_policy(x)) {
            x->success = false;
            x->result_type = sts_rlog_rt_validation;
            (void)snprintf(x->detail, sizeof(x->detail),
                           "MX host %s matches none of the policy's mx patterns", x->mx_host);
            st->outside++;
        }
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
    free(r->probes->p);
    free(r->probes);
    r->probes = NULL;
}
