/*
 * rlog_dlog.c - the decision log (one JSON object per line, written by
 * decision/dlog.c) read back for the session join: which policy applied
 * to a queue id and recipient domain, and the engine-side failures that
 * are sessions of their own (the sts-* result types of RFC 8460 4.3; not
 * a failed refresh under a valid cached policy, RFC 8461 5.1).  Keeps one
 * decision per message and domain, in a hash index for
 * sts_rlog_find_decision.
 */
#include "tlsrpt/rlog.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/buf.h"
#include "tlsrpt/rlog_impl.h"
#include "tlsrpt/rprobe.h"

static size_t dec_hash(const char *qid, const char *domain)
{
    uint64_t h = (uint64_t)(uintptr_t)qid * 0x9E3779B97F4A7C15ull;

    h ^= (uint64_t)(uintptr_t)domain * 0xC2B2AE3D27D4EB4Full;
    return (size_t)(h ^ (h >> 29));
}

static bool dec_index_grow(sts_rlog *r)
{
    size_t nn = r->ndh != 0 ? r->ndh * 2 : 4096;
    uint32_t *nh = sts_calloc_array(nn, sizeof(*nh));

    if (nh == NULL)
        return false;
    for (size_t i = 0; i < r->nd; i++)
        r->d[i].next = 0;
    for (size_t i = 0; i < r->nd; i++) {
        dec *d = &r->d[i];
        size_t b;

        if (d->qid[0] == '-')
            continue;
        b = dec_hash(d->qid, d->domain) & (nn - 1);
        d->next = nh[b];
        nh[b] = (uint32_t)(i + 1);
    }
    free(r->dh);
    r->dh = nh;
    r->ndh = nn;
    return true;
}

static const char *json_str(json_t *o, const char *k, size_t *len)
{
    json_t *v = json_object_get(o, k);
    const char *s;

    if (!json_is_string(v))
        return NULL;
    s = json_string_value(v);
    *len = json_string_length(v);
    if (memchr(s, '\0', *len) != NULL)
        return NULL;
    return s;
}

sts_rlog_line_kind sts_rlog_decision_line(sts_rlog *r, sts_cur line)
{
    static const struct {
        const char *name;
        sts_result result;
    } results[] = {
        { "policy", STS_RESULT_POLICY },
        { "none", STS_RESULT_NONE },
        { "temperror", STS_RESULT_TEMPERROR },
        { "invalid", STS_RESULT_INVALID },
    };
    json_error_t err;
    json_t *o = json_loadb(line.p, line.len, 0, &err), *v;
    sts_rlog_line_kind k = STS_RLOG_DECISION;
    const char *ts, *qs, *ds, *res, *act, *s;
    size_t tl, ql, dl, rl, al, sl;
    char dom[STS_DOMAIN_MAX + 1];
    sts_cur tc;
    int64_t t;
    dec nd, *na;
    bool found = false, deliverable, qid_ok;

    memset(&nd, 0, sizeof(nd));
    if (o == NULL || !json_is_object(o)) {
        k = sts_rlog_malformed(r, o == NULL ? "not JSON" : "not a JSON object", line);
        goto done;
    }
    if (json_object_get(o, "record") != NULL) { /* not a decision: another record kind */
        k = sts_rlog_probe_line(r, o, line);
        goto done;
    }
    ts = json_str(o, "time", &tl);
    qs = json_str(o, "queue_id", &ql);
    ds = json_str(o, "domain", &dl);
    res = json_str(o, "result", &rl);
    act = json_str(o, "action", &al);
    if (ts == NULL || qs == NULL || ds == NULL || res == NULL || act == NULL) {
        k = sts_rlog_malformed(r, "decision without time, queue_id, domain, result or action",
                               line);
        goto done;
    }
    tc = sts_cur_make(ts, tl);
    if (!sts_rlog_take_rfc3339(&tc, &t) || tc.len != 0) {
        k = sts_rlog_malformed(r, "decision with a bad time", line);
        goto done;
    }
    if (strcmp(res, "skipped") == 0 || strcmp(act, "skip") == 0 || strcmp(act, "split") == 0 ||
        strcmp(act, "aborted") == 0 || strcmp(act, "tempfail") == 0) {
        r->st.no_session++;
        goto done;
    }
    deliverable = strcmp(act, "accept") == 0 || strcmp(act, "route-enforce") == 0;
    if (!deliverable && strcmp(act, "tempfail-no-mx") != 0) {
        k = sts_rlog_malformed(r, "decision with an unknown action", line);
        goto done;
    }
    for (size_t i = 0; i < sizeof(results) / sizeof(results[0]); i++)
        if (strcmp(res, results[i].name) == 0) {
            nd.result = (uint8_t)results[i].result;
            found = true;
        }
    if (!found) {
        k = sts_rlog_malformed(r, "decision with an unknown result", line);
        goto done;
    }
    qid_ok = ql > 0 && ql <= STS_RLOG_QID_MAX;
    for (size_t i = 0; qid_ok && i < ql && !(ql == 1 && qs[0] == '-'); i++)
        qid_ok = sts_rlog_is_qid_char((unsigned char)qs[i]);
    if (!qid_ok) {
        k = sts_rlog_malformed(r, "decision with a bad queue_id", line);
        goto done;
    }
    if (sts_domain_normalize(ds, dl, dom, NULL) != STS_OK) {
        k = sts_rlog_malformed(r, "decision with a bad domain", line);
        goto done;
    }
    if (strcmp(act, "tempfail-no-mx") == 0) {
        nd.engine_rt = sts_rlog_rt_validation;
    } else if ((s = json_str(o, "report_type", &sl)) != NULL &&
               nd.result != STS_RESULT_POLICY) {
        /* With result "policy" the report_type is that of a failed refresh
         * while a valid cached policy applied (RFC 8461 5.1): the mail went
         * out under that policy and its connections are the sessions. */
        static const sts_report_type rts[] = { STS_RT_FETCH_ERROR, STS_RT_POLICY_INVALID,
                                               STS_RT_WEBPKI_INVALID };

        for (size_t i = 0; i < sizeof(rts) / sizeof(rts[0]); i++)
            if (strcmp(s, sts_report_type_name(rts[i])) == 0)
                nd.engine_rt = sts_report_type_name(rts[i]);
        if (nd.engine_rt == NULL) {
            k = sts_rlog_malformed(r, "decision with an unknown report_type", line);
            goto done;
        }
    }
    if ((s = json_str(o, "mode", &sl)) != NULL) {
        sts_mode m;

        if (!sts_mode_from_name(s, sl, &m)) {
            k = sts_rlog_malformed(r, "decision with an unknown mode", line);
            goto done;
        }
        nd.has_policy = true;
        nd.mode = (uint8_t)m;
    }
    nd.policy_id = "";
    if ((s = json_str(o, "policy_id", &sl)) != NULL && sl > 0) {
        sts_cur idc = sts_cur_make(s, sl), idw;

        if (sl > STS_ID_MAX || !sts_cur_take_while(&idc, sts_rlog_is_qid_char, &idw) ||
            idc.len != 0) {
            k = sts_rlog_malformed(r, "decision with a bad policy_id", line);
            goto done;
        }
        nd.policy_id = sts_rlog_intern(r, s, sl);
    }
    nd.mx = "";
    if ((s = json_str(o, "mx", &sl)) != NULL && sl > 0) {
        char q[STS_RLOG_MX_MAX + 1];
        size_t ql2;

        sts_quote(q, sizeof(q), s, sl);
        ql2 = strlen(q);
        nd.mx_truncated = sl > STS_RLOG_MX_MAX || strcmp(q, s) != 0 ||
                          (ql2 >= 4 && strcmp(q + ql2 - 4, ",...") == 0);
        nd.mx = sts_rlog_intern(r, q, ql2);
    }
    v = json_object_get(o, "max_age");
    if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= UINT32_MAX) {
        nd.max_age = (uint32_t)json_integer_value(v);
        nd.max_age_known = true;
    }
    nd.reason = "";
    if ((s = json_str(o, "reason", &sl)) != NULL)
        nd.reason = sts_rlog_intern_quoted(r, s, sl);
    nd.time = t;
    nd.qid = sts_rlog_intern(r, qs, ql);
    nd.domain = sts_rlog_intern(r, dom, strlen(dom));
    if (nd.qid == NULL || nd.domain == NULL || nd.policy_id == NULL || nd.mx == NULL ||
        nd.reason == NULL)
        goto done;
    if (nd.qid[0] != '-' && r->ndh != 0) {
        /* One line per recipient: keep one per message and domain. */
        for (uint32_t i = r->dh[dec_hash(nd.qid, nd.domain) & (r->ndh - 1)]; i != 0;
             i = r->d[i - 1].next) {
            const dec *x = &r->d[i - 1];

            if (x->qid == nd.qid && x->domain == nd.domain && x->time - t <= DUP_WINDOW &&
                t - x->time <= DUP_WINDOW) {
                r->st.duplicate_decisions++;
                goto done;
            }
        }
    }
    if (r->nd >= DECISIONS_MAX) {
        r->st.dropped++;
        goto done;
    }
    if ((na = sts_array_reserve(r->d, r->nd, &r->capd, 256, sizeof(*na))) == NULL) {
        r->nomem = true;
        goto done;
    }
    r->d = na;
    r->d[r->nd++] = nd;
    r->st.decisions++;
    if (r->nd > r->ndh / 2) {
        if (!dec_index_grow(r))
            r->nomem = true;
    } else if (nd.qid[0] != '-') {
        size_t b = dec_hash(nd.qid, nd.domain) & (r->ndh - 1);

        r->d[r->nd - 1].next = r->dh[b];
        r->dh[b] = (uint32_t)r->nd;
    }
done:
    json_decref(o);
    return k;
}

dec *sts_rlog_find_decision(sts_rlog *r, const char *qid, const char *domain, int64_t t)
{
    dec *best = NULL;

    if (r->ndh == 0)
        return NULL;
    for (uint32_t i = r->dh[dec_hash(qid, domain) & (r->ndh - 1)]; i != 0; i = r->d[i - 1].next) {
        dec *x = &r->d[i - 1];

        if (x->qid == qid && x->domain == domain && x->time <= t + JOIN_SKEW &&
            (best == NULL || x->time > best->time))
            best = x;
    }
    return best;
}
