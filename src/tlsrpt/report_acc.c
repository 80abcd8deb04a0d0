/*
 * report_acc.c - the streaming side of RFC 8460 aggregate reports
 * (report.h): sessions come one at a time, in time order, and only what
 * the reports will hold is kept - per policy domain its policy entries
 * (section 4.3 "policies"), their session counts and their distinct
 * failure-details - so that a day of millions of sessions takes memory in
 * proportion to domains, MX hosts and result types, not to sessions.  The
 * rules (which domains get a report, which policy a session belongs to)
 * are in report.h; report.c writes the JSON.
 */
#include "tlsrpt/report.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "tlsrpt/report_impl.h"

#define MAX_SENDING_IPS 16
#define POOL_BYTES_MAX (32u << 20) /* texts of failure details; past it a reason is "" */
#define DETAILS_MAX 4096           /* distinct failure-details per entry; past it the
                                      reason is left out to merge them */

typedef enum state {
    ST_UNKNOWN,   /* the decision said nothing about the policy */
    ST_NOPOL,     /* no policy applied: none, invalid, engine failure */
    ST_POLICY,    /* has_policy, mode enforce or testing */
    ST_MODE_NONE, /* has_policy, mode none: as if no policy, and never reported */
} state;

typedef struct sending_ip {
    char text[STS_RLOG_IP_MAX + 1];
    bool v6;
} sending_ip;

/* One policy domain's part of the day. */
typedef struct domacc {
    char *name;
    state cur;          /* the latest known state (ST_UNKNOWN: none yet) */
    size_t cur_entry;   /* its entry (ST_POLICY, ST_NOPOL), SIZE_MAX before use */
    rpolicy cur_pol;    /* ST_POLICY: the policy (owned until an entry takes it) */
    bool cur_pol_owned;
    rentry pend;        /* sessions of the day before the first known state */
    rentry *e;
    size_t ne, cape;
    uint64_t attributed;
    bool reportable;
} domacc;

struct sts_report_acc {
    sts_report_opts o;
    int64_t day;
    sending_ip sip[MAX_SENDING_IPS];
    size_t nsip;
    domacc **tab; /* open addressing by name */
    size_t ntab, ndom;
    char **pool;  /* distinct texts, open addressing */
    size_t npool, cappool, poolbytes;
    sts_report_stats st;
    bool nomem;
};

/* ------------------------------------------------------------ helpers */

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;

    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

static char *dup_str(sts_report_acc *a, const char *s)
{
    size_t n = strlen(s) + 1;
    char *c = malloc(n);

    if (c == NULL)
        a->nomem = true;
    else
        memcpy(c, s, n);
    return c;
}

/* The accumulator's copy of s (one per distinct text); NULL on OOM. */
static const char *pool_get(sts_report_acc *a, const char *s)
{
    size_t i, n;

    if (s == NULL || s[0] == '\0')
        return "";
    if ((a->npool + 1) * 2 > a->cappool) {
        size_t nc = a->cappool != 0 ? a->cappool * 2 : 1024;
        char **np = sts_calloc_array(nc, sizeof(*np));

        if (np == NULL) {
            a->nomem = true;
            return NULL;
        }
        for (size_t k = 0; k < a->cappool; k++)
            if (a->pool[k] != NULL) {
                for (i = hash_str(a->pool[k]) & (nc - 1); np[i] != NULL; i = (i + 1) & (nc - 1))
                    ;
                np[i] = a->pool[k];
            }
        free(a->pool);
        a->pool = np;
        a->cappool = nc;
    }
    for (i = hash_str(s) & (a->cappool - 1); a->pool[i] != NULL; i = (i + 1) & (a->cappool - 1))
        if (strcmp(a->pool[i], s) == 0)
            return a->pool[i];
    n = strlen(s) + 1;
    if (a->poolbytes + n > POOL_BYTES_MAX)
        return NULL;
    if ((a->pool[i] = dup_str(a, s)) == NULL)
        return NULL;
    a->npool++;
    a->poolbytes += n;
    return a->pool[i];
}

static bool is_v6(const char *ip)
{
    return strchr(ip, ':') != NULL;
}

static sts_status parse_sending_ips(sts_report_acc *a, sts_why *why)
{
    sts_cur list = sts_cur_str(a->o.sending_ips), item;
    char q[64];

    while (sts_cur_take_item(&list, ',', &item)) {
        sending_ip *s = &a->sip[a->nsip];
        unsigned char addr[16];

        sts_cur_rtrim_wsp(&item);
        (void)sts_cur_skip_wsp(&item);
        if (item.len == 0)
            continue;
        if (a->nsip == MAX_SENDING_IPS) {
            sts_why_set(why, "ReportSendingIP: more than %d addresses", MAX_SENDING_IPS);
            return STS_PERMFAIL;
        }
        if (item.len >= sizeof(s->text)) {
            sts_why_set(why, "ReportSendingIP: '%s' is not an IP address",
                        sts_quote(q, sizeof(q), item.p, item.len));
            return STS_PERMFAIL;
        }
        memcpy(s->text, item.p, item.len);
        s->text[item.len] = '\0';
        s->v6 = is_v6(s->text);
        if (inet_pton(s->v6 ? AF_INET6 : AF_INET, s->text, addr) != 1) {
            sts_why_set(why, "ReportSendingIP: '%s' is not an IP address",
                        sts_quote(q, sizeof(q), item.p, item.len));
            return STS_PERMFAIL;
        }
        a->nsip++;
    }
    return STS_OK;
}

/* The local address the session used: the first configured one of the
 * receiving IP's family (the first at all when that is unknown), else the
 * caller's route lookup. */
static const char *sending_ip_for(const sts_report_acc *a, const char *rip)
{
    const char *s;

    for (size_t i = 0; i < a->nsip; i++)
        if (rip[0] == '\0' || a->sip[i].v6 == is_v6(rip))
            return a->sip[i].text;
    if (a->o.sending_ip == NULL || rip[0] == '\0' ||
        (s = a->o.sending_ip(a->o.sending_ip_arg, rip)) == NULL || s[0] == '\0')
        return NULL;
    return s;
}

static state state_of(const sts_rsession *s)
{
    if (!s->has_decision)
        return ST_UNKNOWN;
    /* An engine failure under a policy (an enforce policy that matches none
     * of the MX hosts, a failed refresh under a cached one) happened while
     * that policy applied: it is reported under it. */
    if (s->has_policy)
        return s->mode == STS_MODE_NONE ? ST_MODE_NONE : ST_POLICY;
    if (s->engine_failure)
        return ST_NOPOL;
    if (s->result == STS_RESULT_NONE || s->result == STS_RESULT_INVALID)
        return ST_NOPOL;
    return ST_UNKNOWN; /* temperror or pending: delivery may have used a cached policy */
}

static void policy_free(rpolicy *p)
{
    free(p->mx);
    free(p->text);
    p->mx = p->text = NULL;
}

static bool same_policy(const rpolicy *a, const rpolicy *b)
{
    if (a->text != NULL && b->text != NULL)
        return strcmp(a->text, b->text) == 0;
    return a->mode == b->mode && a->max_age_known == b->max_age_known &&
           (!a->max_age_known || a->max_age == b->max_age) && strcmp(a->mx, b->mx) == 0;
}

static size_t result_index(sts_report_acc *a, const char *name)
{
    if (name != NULL)
        for (size_t i = 0; i < STS_REPORT_NTYPES; i++)
            if (strcmp(name, sts_report_result_name(i)) == 0)
                return i;
    a->st.unknown_type++;
    return RT_VALIDATION_FAILURE;
}

/* ------------------------------------------------------------ domains */

static domacc *dom_get(sts_report_acc *a, const char *name)
{
    size_t i;
    domacc *d;

    if ((a->ndom + 1) * 2 > a->ntab) {
        size_t nn = a->ntab != 0 ? a->ntab * 2 : 1024;
        domacc **nt = sts_calloc_array(nn, sizeof(*nt));

        if (nt == NULL) {
            a->nomem = true;
            return NULL;
        }
        for (size_t k = 0; k < a->ntab; k++)
            if (a->tab[k] != NULL) {
                for (i = hash_str(a->tab[k]->name) & (nn - 1); nt[i] != NULL; i = (i + 1) & (nn - 1))
                    ;
                nt[i] = a->tab[k];
            }
        free(a->tab);
        a->tab = nt;
        a->ntab = nn;
    }
    for (i = hash_str(name) & (a->ntab - 1); a->tab[i] != NULL; i = (i + 1) & (a->ntab - 1))
        if (strcmp(a->tab[i]->name, name) == 0)
            return a->tab[i];
    if ((d = calloc(1, sizeof(*d))) == NULL || (d->name = dup_str(a, name)) == NULL) {
        free(d);
        a->nomem = true;
        return NULL;
    }
    d->cur_entry = SIZE_MAX;
    a->tab[i] = d;
    a->ndom++;
    return d;
}

static void entry_free(rentry *e)
{
    policy_free(&e->pol);
    free(e->d);
}

static void dom_free(domacc *d)
{
    for (size_t i = 0; i < d->ne; i++)
        entry_free(&d->e[i]);
    free(d->e);
    entry_free(&d->pend);
    if (d->cur_pol_owned)
        policy_free(&d->cur_pol);
    free(d->name);
    free(d);
}

/* The policy of d's current ST_POLICY state. */
static const rpolicy *cur_policy(const domacc *d)
{
    return d->cur_pol_owned ? &d->cur_pol : &d->e[d->cur_entry].pol;
}

static void drop_cur_pol(domacc *d)
{
    if (d->cur_pol_owned)
        policy_free(&d->cur_pol);
    d->cur_pol_owned = false;
}

/* The entry of d's current state (ST_POLICY or ST_NOPOL), made on first
 * use; the entries keep the order of their first session. */
static rentry *cur_entry(sts_report_acc *a, domacc *d)
{
    bool sts = d->cur == ST_POLICY;
    rentry *ne;

    if (d->cur_entry != SIZE_MAX)
        return &d->e[d->cur_entry];
    for (size_t i = 0; i < d->ne; i++)
        if (d->e[i].sts == sts && (!sts || same_policy(&d->e[i].pol, &d->cur_pol))) {
            d->cur_entry = i;
            drop_cur_pol(d); /* the entry has its own copy */
            return &d->e[i];
        }
    if ((ne = sts_array_reserve(d->e, d->ne, &d->cape, 2, sizeof(*ne))) == NULL) {
        a->nomem = true;
        return NULL;
    }
    d->e = ne;
    memset(&d->e[d->ne], 0, sizeof(d->e[0]));
    d->e[d->ne].sts = sts;
    if (sts) {
        d->e[d->ne].pol = d->cur_pol; /* the entry takes the copy */
        d->cur_pol_owned = false;
    }
    d->cur_entry = d->ne;
    return &d->e[d->ne++];
}

/* count failures like k (a detail of another entry, or a new one) into e. */
static void add_detail(sts_report_acc *a, rentry *e, const rdetail *k, uint64_t count)
{
    rdetail key = *k, *nd;

    if (e->nd >= DETAILS_MAX)
        key.reason = "";
    for (size_t i = 0; i < e->nd; i++) {
        rdetail *d = &e->d[i];

        if (d->type == key.type && d->sip == key.sip && d->host == key.host &&
            d->ip == key.ip && d->reason == key.reason) {
            d->count += count;
            return;
        }
    }
    if ((nd = sts_array_reserve(e->d, e->nd, &e->capd, 4, sizeof(*nd))) == NULL) {
        a->nomem = true;
        return;
    }
    e->d = nd;
    key.count = count;
    e->d[e->nd++] = key;
}

/* s counted into e: a success, or a failure with its detail. */
static void count_into(sts_report_acc *a, rentry *e, const sts_rsession *s)
{
    rdetail key;

    if (s->success && !s->engine_failure) {
        e->ok++;
        return;
    }
    e->fail++;
    memset(&key, 0, sizeof(key));
    key.type = result_index(a, s->result_type);
    key.host = pool_get(a, s->mx_host);
    key.ip = pool_get(a, s->mx_ip);
    key.reason = pool_get(a, s->detail);
    key.sip = s->engine_failure ? NULL : sending_ip_for(a, s->mx_ip);
    if (key.sip != NULL)
        key.sip = pool_get(a, key.sip);
    if (key.host == NULL || key.ip == NULL || (key.sip == NULL && !s->engine_failure &&
                                               sending_ip_for(a, s->mx_ip) != NULL)) {
        if (a->nomem)
            return;
        /* The text cap: the session still counts, with less said. */
        key.host = key.host != NULL ? key.host : "";
        key.ip = key.ip != NULL ? key.ip : "";
    }
    if (key.reason == NULL)
        key.reason = "";
    add_detail(a, e, &key, 1);
}

/* The sessions that waited for d's first known state go to it. */
static void flush_pending(sts_report_acc *a, domacc *d)
{
    uint64_t n = d->pend.ok + d->pend.fail;
    rentry *e;

    if (n == 0)
        return;
    if (d->cur == ST_MODE_NONE) {
        a->st.mode_none += n;
    } else {
        if ((e = cur_entry(a, d)) == NULL)
            return;
        d->attributed += n;
        if (d->cur == ST_POLICY || a->o.no_policy_reports)
            d->reportable = true;
        e->ok += d->pend.ok;
        e->fail += d->pend.fail;
        for (size_t i = 0; i < d->pend.nd; i++)
            add_detail(a, e, &d->pend.d[i], d->pend.d[i].count);
    }
    free(d->pend.d);
    memset(&d->pend, 0, sizeof(d->pend));
}

/* st (known), from s, as d's current state; the sessions that waited for
 * the domain's first known state go to it. */
static void set_state(sts_report_acc *a, domacc *d, state st, const sts_rsession *s)
{
    rpolicy p;

    if (st == ST_POLICY) {
        memset(&p, 0, sizeof(p));
        p.mode = s->mode;
        p.max_age_known = s->max_age_known;
        p.max_age = s->max_age;
        /* Compared first, copied only when it changed: most sessions of a
         * domain come under the policy of the one before. */
        p.mx = (char *)(uintptr_t)s->mx;
        p.text = (char *)(uintptr_t)s->policy_text;
        if (d->cur != ST_POLICY || !same_policy(cur_policy(d), &p)) {
            p.text = NULL;
            if (s->policy_text != NULL && (p.text = dup_str(a, s->policy_text)) == NULL)
                return;
            if ((p.mx = dup_str(a, s->mx)) == NULL) {
                policy_free(&p);
                return;
            }
            drop_cur_pol(d);
            d->cur_pol = p;
            d->cur_pol_owned = true;
            d->cur_entry = SIZE_MAX;
        }
    } else if (st != d->cur) {
        drop_cur_pol(d);
        d->cur_entry = SIZE_MAX;
    }
    d->cur = st;
    flush_pending(a, d);
}

/* ------------------------------------------------------------------ API */

sts_status sts_report_acc_new(const sts_report_opts *o, int64_t day, sts_report_acc **out,
                              sts_why *why)
{
    sts_report_acc *a;
    sts_status st;

    *out = NULL;
    if (o->organization == NULL || o->organization[0] == '\0' || o->contact == NULL ||
        o->contact[0] == '\0' || o->submitter == NULL || o->submitter[0] == '\0' ||
        strlen(o->submitter) > STS_DOMAIN_MAX || o->host_id == NULL ||
        !sts_report_host_id_valid(o->host_id)) {
        sts_why_set(why, "report options: organization, contact, submitter and a host id "
                         "(letters, digits, '-', '.') are required");
        return STS_PERMFAIL;
    }
    if (day % STS_REPORT_DAY != 0) {
        sts_why_set(why, "report day %lld is not 00:00 UTC", (long long)day);
        return STS_PERMFAIL;
    }
    if ((a = calloc(1, sizeof(*a))) == NULL) {
        sts_why_set(why, "out of memory building reports");
        return STS_NOMEM;
    }
    a->o = *o;
    a->day = day;
    if ((st = parse_sending_ips(a, why)) != STS_OK) {
        free(a);
        return st;
    }
    *out = a;
    return STS_OK;
}

void sts_report_acc_add(sts_report_acc *a, const sts_rsession *s)
{
    state st = state_of(s);
    domacc *d;
    rentry *e;

    if (a->nomem || (d = dom_get(a, s->domain)) == NULL)
        return;
    if (st != ST_UNKNOWN)
        set_state(a, d, st, s);
    if (s->time < a->day || s->time >= a->day + STS_REPORT_DAY) {
        a->st.outside_day++;
        return;
    }
    a->st.in_day++;
    if (d->cur == ST_UNKNOWN) {
        count_into(a, &d->pend, s); /* waits for the domain's first known state */
        return;
    }
    if (d->cur == ST_MODE_NONE) {
        a->st.mode_none++;
        return;
    }
    d->attributed++;
    if (d->cur == ST_POLICY || s->engine_failure || a->o.no_policy_reports)
        d->reportable = true;
    if ((e = cur_entry(a, d)) != NULL)
        count_into(a, e, s);
}

static int cmp_dom(const void *pa, const void *pb)
{
    return strcmp((*(domacc *const *)pa)->name, (*(domacc *const *)pb)->name);
}

sts_status sts_report_acc_finish(sts_report_acc *a, sts_report_set **out, sts_why *why)
{
    sts_report_set *set = calloc(1, sizeof(*set));
    domacc **doms = NULL;
    size_t nd = 0, capr = 0;
    sts_status rc = STS_NOMEM;

    *out = NULL;
    if (set == NULL || a->nomem)
        goto done;
    if (a->ndom > 0 && (doms = sts_calloc_array(a->ndom, sizeof(*doms))) == NULL)
        goto done;
    for (size_t i = 0; i < a->ntab; i++)
        if (a->tab[i] != NULL)
            doms[nd++] = a->tab[i];
    if (nd > 1)
        qsort(doms, nd, sizeof(*doms), cmp_dom);
    for (size_t i = 0; i < nd; i++) {
        domacc *d = doms[i];
        sts_report r, *nr;

        /* Sessions of a domain with no known state at all: their policy
         * cannot be known. */
        a->st.unattributed += d->pend.ok + d->pend.fail;
        if (!d->reportable) {
            if (d->attributed > 0) {
                a->st.no_policy += d->attributed;
                a->st.domains_no_policy++;
            }
            continue;
        }
        for (size_t j = 0; j < d->ne; j++)
            if (d->e[j].nd > 1)
                qsort(d->e[j].d, d->e[j].nd, sizeof(d->e[j].d[0]), sts_report_detail_cmp);
        if ((rc = sts_report_make(&a->o, a->day, d->name, d->e, d->ne, &r)) != STS_OK)
            goto done;
        if ((nr = sts_array_reserve(set->r, set->n, &capr, 8, sizeof(*nr))) == NULL) {
            free(r.json);
            rc = STS_NOMEM;
            goto done;
        }
        set->r = nr;
        set->r[set->n++] = r;
    }
    set->stats = a->st;
    *out = set;
    set = NULL;
    rc = STS_OK;
done:
    if (rc == STS_NOMEM)
        sts_why_set(why, "out of memory building reports");
    free(doms);
    sts_report_set_free(set);
    return rc;
}

void sts_report_acc_free(sts_report_acc *a)
{
    if (a == NULL)
        return;
    for (size_t i = 0; i < a->ntab; i++)
        if (a->tab[i] != NULL)
            dom_free(a->tab[i]);
    free(a->tab);
    for (size_t i = 0; i < a->cappool; i++)
        free(a->pool[i]);
    free(a->pool);
    free(a);
}
