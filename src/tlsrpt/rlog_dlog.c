/*
 * rlog_dlog.c - the decision log (one JSON object per line, written by
 * decision/dlog.c) read back for the session join: which policy applied
 * to a queue id and recipient domain, and the engine-side failures that
 * are sessions of their own (the sts-* result types of RFC 8460 4.3; not
 * and a failed refresh while a cached policy applied, RFC 8461 6).  Keeps
 * one decision per message and domain, in a hash index for
 * sts_rlog_find_decision.
 *
 * Besides decisions the log holds records of other kinds, named by a
 * "record" field (a line without one is a decision, as every line of
 * older logs is):
 *   {"time":T, "record":"policy", "domain":D, "policy_id":I, "policy":TEXT}
 *       the policy as published (written once per policy and log file by
 *       dlog.c), for the report's policy-string;
 *   {"time":T, "record":"probe", "domain":D, "policy_id":I, "mx":M, "ip":A,
 *    "result_type":R, "reason":W, ...}
 *       an MX probe (decision/dlog_probe.c), joined to sessions by rprobe.c;
 *   other kinds are counted as ignored, so that a newer daemon's log
 *   stays readable.
 * And a JSON line with "__REALTIME_TIMESTAMP" and "MESSAGE" is a record of
 * "journalctl -o json" (systemd.journal-fields(7)): the syslog message of
 * SYSLOG_IDENTIFIER[SYSLOG_PID or _PID] on _HOSTNAME at that time, read as
 * the same line from a syslog file would be.
 */
#include "tlsrpt/rlog.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/buf.h"
#include "tlsrpt/rlog_impl.h"
#include "tlsrpt/rprobe.h"

static size_t dec_hash(uint64_t qid, const char *domain)
{
    uint64_t h = qid ^ (uint64_t)(uintptr_t)domain * 0xC2B2AE3D27D4EB4Full;

    return (size_t)(h ^ (h >> 29));
}

/* Chains are built oldest first, so each runs newest to oldest; entries
 * below dhead (expired) end a walk. */
bool sts_rlog_dec_index(sts_rlog *r, size_t nn)
{
    uint32_t *nh = sts_calloc_array(nn, sizeof(*nh));

    if (nh == NULL)
        return false;
    for (size_t i = r->dhead; i < r->nd; i++) {
        dec *d = &r->d[i];
        size_t b;

        d->next = 0;
        if (d->qtext[0] == '-')
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

static bool dec_index_grow(sts_rlog *r)
{
    return sts_rlog_dec_index(r, r->ndh != 0 ? r->ndh * 2 : 4096);
}

/* A decision line's fields, from jansson or from the fast path below. */
#define FLAT_MAX 32
typedef struct dsrc {
    json_t *o; /* NULL: the flat fields */
    size_t n;
    struct {
        const char *k, *v; /* NUL-terminated, in r->fbuf */
        size_t kl, vl;
        char type;         /* 's' string, 'n' integer, 'b' true/false, 'z' null */
    } f[FLAT_MAX];
} dsrc;

/* The fast path for the lines dlog.c writes (millions a day): a flat
 * object of strings without escapes, integers, true, false and null,
 * copied into r->fbuf with each text NUL-terminated in place.  False for
 * anything else (an escape, a nested value, a fraction, bad syntax): such
 * a line goes to jansson, the reference, which also says what is wrong. */
static bool flat_parse(sts_rlog *r, sts_cur line, dsrc *d)
{
    char *b = r->fbuf, *e;
    size_t i = 0;

    if (line.len >= sizeof(r->fbuf))
        return false;
    memcpy(b, line.p, line.len);
    b[line.len] = '\0';
    e = b + line.len;
    d->o = NULL;
    d->n = 0;
#define WS() while (b < e && (*b == ' ' || *b == '\t')) b++
    WS();
    if (b == e || *b++ != '{')
        return false;
    WS();
    if (b < e && *b == '}') {
        b++;
        goto end;
    }
    for (;;) {
        char *k, *v;

        if (d->n == FLAT_MAX || b == e || *b++ != '"')
            return false;
        for (k = b; b < e && *b != '"'; b++)
            if ((unsigned char)*b < 0x20 || *b == '\\')
                return false;
        if (b == e)
            return false;
        d->f[d->n].k = k;
        d->f[d->n].kl = (size_t)(b - k);
        *b++ = '\0';
        WS();
        if (b == e || *b++ != ':')
            return false;
        WS();
        if (b == e)
            return false;
        v = b;
        if (*b == '"') {
            for (v = ++b; b < e && *b != '"'; b++)
                if ((unsigned char)*b < 0x20 || *b == '\\')
                    return false;
            if (b == e)
                return false;
            d->f[d->n].type = 's';
            d->f[d->n].vl = (size_t)(b - v);
            *b++ = '\0';
        } else if (*b == '-' || (*b >= '0' && *b <= '9')) {
            if (*b == '-')
                b++;
            for (i = 0; b < e && *b >= '0' && *b <= '9'; b++, i++)
                ;
            if (i == 0 || i > 18 || (b < e && (*b == '.' || *b == 'e' || *b == 'E')))
                return false;
            d->f[d->n].type = 'n';
            d->f[d->n].vl = (size_t)(b - v);
        } else if (e - b >= 4 && memcmp(b, "true", 4) == 0) {
            b += 4;
            d->f[d->n].type = 'b';
            d->f[d->n].vl = 4;
        } else if (e - b >= 5 && memcmp(b, "false", 5) == 0) {
            b += 5;
            d->f[d->n].type = 'b';
            d->f[d->n].vl = 5;
        } else if (e - b >= 4 && memcmp(b, "null", 4) == 0) {
            b += 4;
            d->f[d->n].type = 'z';
            d->f[d->n].vl = 4;
        } else {
            return false;
        }
        d->f[d->n++].v = v;
        WS();
        if (b == e)
            return false;
        if (*b == ',') {
            b++;
            WS();
            continue;
        }
        if (*b++ != '}')
            return false;
        break;
    }
end:
    WS();
#undef WS
    /* Numbers were not cut off: terminate them now that the syntax holds. */
    for (size_t j = 0; j < d->n; j++)
        if (d->f[j].type != 's')
            ((char *)(uintptr_t)d->f[j].v)[d->f[j].vl] = '\0';
    return b == e;
}

/* The last field k (jansson keeps the last of repeated keys too). */
static int flat_find(const dsrc *d, const char *k)
{
    size_t kl = strlen(k);

    for (size_t i = d->n; i-- > 0;)
        if (d->f[i].kl == kl && memcmp(d->f[i].k, k, kl) == 0)
            return (int)i;
    return -1;
}

static const char *json_str(json_t *o, const char *k, size_t *len);

static const char *d_str(const dsrc *d, const char *k, size_t *len)
{
    int i;

    if (d->o != NULL)
        return json_str(d->o, k, len);
    if ((i = flat_find(d, k)) < 0 || d->f[i].type != 's')
        return NULL;
    *len = d->f[i].vl;
    return d->f[i].v;
}

static bool d_has(const dsrc *d, const char *k)
{
    return d->o != NULL ? json_object_get(d->o, k) != NULL : flat_find(d, k) >= 0;
}

static bool d_int(const dsrc *d, const char *k, int64_t *v)
{
    json_t *j;
    sts_cur c;
    uint64_t u;
    int i;

    if (d->o != NULL) {
        j = json_object_get(d->o, k);
        if (!json_is_integer(j))
            return false;
        *v = (int64_t)json_integer_value(j);
        return true;
    }
    if ((i = flat_find(d, k)) < 0 || d->f[i].type != 'n')
        return false;
    c = sts_cur_make(d->f[i].v, d->f[i].vl);
    if (d->f[i].v[0] == '-')
        return false; /* never one of ours; the callers want >= 0 */
    if (!sts_cur_take_number(&c, 18, INT64_MAX, &u))
        return false;
    *v = (int64_t)u;
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

static size_t pt_bucket(const char *domain, const char *id)
{
    uint64_t h = (uint64_t)(uintptr_t)domain * 0x9E3779B97F4A7C15ull ^
                 (uint64_t)(uintptr_t)id * 0xC2B2AE3D27D4EB4Full;

    return (size_t)((h ^ (h >> 31)) % PT_BUCKETS);
}

const char *sts_rlog_policy_text(const sts_rlog *r, const char *domain, const char *id)
{
    if (id == NULL || id[0] == '\0' || r->pt == NULL)
        return NULL;
    for (const poltext *x = r->pt[pt_bucket(domain, id)]; x != NULL; x = x->next)
        if (x->domain == domain && x->id == id)
            return x->text;
    return NULL;
}

/* {"record":"policy", ...}: keep the text (the first one per domain and
 * id: an id names one policy, RFC 8461 3.1). */
static sts_rlog_line_kind policy_record(sts_rlog *r, const dsrc *o, sts_cur line)
{
    const char *ds, *is, *text;
    size_t dl, il, tl;
    char dom[STS_DOMAIN_MAX + 1];
    const char *domain, *id;
    sts_cur idc, idw;
    poltext *x;
    size_t b;

    ds = d_str(o, "domain", &dl);
    is = d_str(o, "policy_id", &il);
    text = d_str(o, "policy", &tl);
    if (ds == NULL || is == NULL || text == NULL || il == 0 || il > STS_ID_MAX ||
        tl > STS_POLICY_MAX_BODY || sts_domain_normalize(ds, dl, dom, NULL) != STS_OK)
        return sts_rlog_malformed(r, "policy record without a domain, policy_id or policy", line);
    idc = sts_cur_make(is, il);
    if (!sts_cur_take_while(&idc, sts_rlog_is_qid_char, &idw) || idc.len != 0)
        return sts_rlog_malformed(r, "policy record with a bad policy_id", line);
    if ((domain = sts_rlog_intern(r, dom, strlen(dom))) == NULL ||
        (id = sts_rlog_intern(r, is, il)) == NULL)
        return STS_RLOG_DECISION;
    if (sts_rlog_policy_text(r, domain, id) != NULL)
        return STS_RLOG_DECISION;
    if (r->ptbytes + tl > POLICY_TEXT_MAX) {
        r->st.dropped++;
        return STS_RLOG_DECISION;
    }
    if ((r->pt == NULL && (r->pt = calloc(PT_BUCKETS, sizeof(*r->pt))) == NULL) ||
        (x = malloc(sizeof(*x) + tl + 1)) == NULL) {
        r->nomem = true;
        return STS_RLOG_DECISION;
    }
    x->domain = domain;
    x->id = id;
    memcpy(x->text, text, tl);
    x->text[tl] = '\0';
    b = pt_bucket(domain, id);
    x->next = r->pt[b];
    r->pt[b] = x;
    r->ptbytes += sizeof(*x) + tl + 1;
    return STS_RLOG_DECISION;
}

/* A journal field that may be a string or, when not UTF-8, an array of
 * byte values (journalctl -o json); *buf holds the bytes of the latter. */
static bool journal_field(json_t *o, const char *k, char *buf, size_t bufsz, sts_cur *out)
{
    json_t *v = json_object_get(o, k), *b;
    size_t i;

    if (json_is_string(v)) {
        *out = sts_cur_make(json_string_value(v), json_string_length(v));
        return true;
    }
    if (!json_is_array(v) || json_array_size(v) > bufsz)
        return false;
    json_array_foreach(v, i, b) {
        if (!json_is_integer(b) || json_integer_value(b) < 0 || json_integer_value(b) > 255)
            return false;
        buf[i] = (char)json_integer_value(b);
    }
    *out = sts_cur_make(buf, json_array_size(v));
    return true;
}

static bool is_tag_byte(unsigned char ch)
{
    return ch > ' ' && ch < 0x7f && ch != '[' && ch != ':';
}

/* A "journalctl -o json" record: the syslog message it holds. */
static sts_rlog_line_kind journal_record(sts_rlog *r, json_t *o, sts_cur line)
{
    char *msgbuf = r->jbuf;
    char tagbuf[256], hostbuf[STS_DOMAIN_MAX + 1], pidbuf[16];
    sts_cur ts, msg, tag, host = { "", 0 }, pidc, w;
    uint64_t usec, pid;

    if (!journal_field(o, "__REALTIME_TIMESTAMP", pidbuf, 0, &ts) ||
        !sts_cur_take_number(&ts, 20, UINT64_MAX, &usec) || ts.len != 0 ||
        !journal_field(o, "MESSAGE", msgbuf, sizeof(r->jbuf), &msg))
        return sts_rlog_malformed(r, "journal record without a time or a message", line);
    /* Not a syslog message (the kernel, a unit's stdout): nothing of ours. */
    if (!journal_field(o, "SYSLOG_IDENTIFIER", tagbuf, sizeof(tagbuf), &tag) ||
        (!journal_field(o, "SYSLOG_PID", pidbuf, sizeof(pidbuf), &pidc) &&
         !journal_field(o, "_PID", pidbuf, sizeof(pidbuf), &pidc)))
        return STS_RLOG_IGNORED;
    w = tag;
    if (tag.len == 0 || !sts_cur_take_while(&w, is_tag_byte, &w) || w.p != tag.p + tag.len)
        return STS_RLOG_IGNORED;
    if (!sts_cur_take_number(&pidc, 10, UINT32_MAX, &pid) || pidc.len != 0)
        return STS_RLOG_IGNORED;
    if (journal_field(o, "_HOSTNAME", hostbuf, sizeof(hostbuf) - 1, &host) &&
        host.len > STS_DOMAIN_MAX)
        host.len = 0;
    if (msg.len > 0 && msg.p[msg.len - 1] == '\n')
        msg.len--;
    r->line_t = (int64_t)(usec / 1000000);
    return sts_rlog_feed_syslog(r, (int64_t)(usec / 1000000), host, tag, (uint32_t)pid, msg);
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
    json_t *jo = NULL;
    dsrc src, *o = &src;
    int64_t iv;
    sts_rlog_line_kind k = STS_RLOG_DECISION;
    const char *ts, *qs, *ds, *res, *act, *s;
    size_t tl, ql, dl, rl, al, sl;
    char dom[STS_DOMAIN_MAX + 1];
    sts_cur tc;
    int64_t t;
    dec nd, *na;
    bool found = false, deliverable, qid_ok;

    memset(&nd, 0, sizeof(nd));
    /* Journal records and records of other kinds (rare, and with texts
     * that must be valid UTF-8) always go to jansson. */
    if (!flat_parse(r, line, &src) || d_has(&src, "record") ||
        d_has(&src, "__REALTIME_TIMESTAMP")) {
        jo = json_loadb(line.p, line.len, 0, &err);
        if (jo == NULL || !json_is_object(jo)) {
            k = sts_rlog_malformed(r, jo == NULL ? "not JSON" : "not a JSON object", line);
            goto done;
        }
        src.o = jo;
    }
    if (d_has(o, "__REALTIME_TIMESTAMP") && d_has(o, "MESSAGE")) {
        k = journal_record(r, jo, line);
        goto done;
    }
    if ((s = d_str(o, "record", &sl)) != NULL && strcmp(s, "decision") != 0) {
        if (strcmp(s, "policy") == 0)
            k = policy_record(r, o, line);
        else if (strcmp(s, "probe") == 0)
            k = sts_rlog_probe_line(r, jo, line, r->probes_ahead ? STS_RPROBE_CHECK
                                                                  : STS_RPROBE_KEEP);
        else
            k = STS_RLOG_IGNORED; /* a record kind of a newer daemon */
        goto done;
    }
    ts = d_str(o, "time", &tl);
    qs = d_str(o, "queue_id", &ql);
    ds = d_str(o, "domain", &dl);
    res = d_str(o, "result", &rl);
    act = d_str(o, "action", &al);
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
    r->line_t = t;
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
    } else if ((s = d_str(o, "report_type", &sl)) != NULL) {
        /* With result "policy" the report_type is that of a failed refresh
         * while a valid cached policy applied (RFC 8461 5.1): the mail went
         * out under that policy and its connections are the sessions; the
         * failed refresh is one more failed session under that policy
         * (RFC 8461 6: sts-policy-fetch-error while the cached policy is
         * in use). */
        static const sts_report_type rts[] = { STS_RT_FETCH_ERROR, STS_RT_POLICY_INVALID,
                                               STS_RT_WEBPKI_INVALID };
        const char *rt = NULL;

        for (size_t i = 0; i < sizeof(rts) / sizeof(rts[0]); i++)
            if (strcmp(s, sts_report_type_name(rts[i])) == 0)
                rt = sts_report_type_name(rts[i]);
        if (rt == NULL) {
            k = sts_rlog_malformed(r, "decision with an unknown report_type", line);
            goto done;
        }
        if (nd.result == STS_RESULT_POLICY)
            nd.refresh_rt = rt;
        else
            nd.engine_rt = rt;
    }
    if ((s = d_str(o, "mode", &sl)) != NULL) {
        sts_mode m;

        if (!sts_mode_from_name(s, sl, &m)) {
            k = sts_rlog_malformed(r, "decision with an unknown mode", line);
            goto done;
        }
        nd.has_policy = true;
        nd.mode = (uint8_t)m;
    }
    nd.policy_id = "";
    if ((s = d_str(o, "policy_id", &sl)) != NULL && sl > 0) {
        sts_cur idc = sts_cur_make(s, sl), idw;

        if (sl > STS_ID_MAX || !sts_cur_take_while(&idc, sts_rlog_is_qid_char, &idw) ||
            idc.len != 0) {
            k = sts_rlog_malformed(r, "decision with a bad policy_id", line);
            goto done;
        }
        nd.policy_id = sts_rlog_intern(r, s, sl);
    }
    nd.mx = "";
    if ((s = d_str(o, "mx", &sl)) != NULL && sl > 0) {
        char q[STS_RLOG_MX_MAX + 1];
        size_t ql2;

        sts_quote(q, sizeof(q), s, sl);
        ql2 = strlen(q);
        nd.mx_truncated = sl > STS_RLOG_MX_MAX || strcmp(q, s) != 0 ||
                          (ql2 >= 4 && strcmp(q + ql2 - 4, ",...") == 0);
        nd.mx = sts_rlog_intern(r, q, ql2);
    }
    if (d_int(o, "max_age", &iv) && iv >= 0 && iv <= UINT32_MAX) {
        nd.max_age = (uint32_t)iv;
        nd.max_age_known = true;
    }
    nd.reason = "";
    /* A failed refresh's own words, when the log has them (older logs:
     * the decision's reason). */
    if ((nd.refresh_rt != NULL && (s = d_str(o, "refresh_error", &sl)) != NULL && sl > 0) ||
        (s = d_str(o, "reason", &sl)) != NULL)
        nd.reason = sts_rlog_intern_quoted(r, s, sl);
    nd.time = t;
    nd.qid = sts_rlog_qid_hash(sts_cur_make(qs, ql));
    memcpy(nd.qtext, qs, ql); /* ql <= STS_RLOG_QID_MAX, checked above */
    nd.qtext[ql] = '\0';
    nd.domain = sts_rlog_intern(r, dom, strlen(dom));
    if (nd.domain == NULL || nd.policy_id == NULL || nd.mx == NULL || nd.reason == NULL)
        goto done;
    if (nd.qtext[0] != '-' && r->ndh != 0) {
        /* One line per recipient: keep one per message and domain. */
        for (uint32_t i = r->dh[dec_hash(nd.qid, nd.domain) & (r->ndh - 1)];
             i != 0 && i - 1 >= r->dhead; i = r->d[i - 1].next) {
            const dec *x = &r->d[i - 1];

            if (x->qid == nd.qid && x->domain == nd.domain && x->time - t <= DUP_WINDOW &&
                t - x->time <= DUP_WINDOW) {
                r->st.duplicate_decisions++;
                goto done;
            }
        }
    }
    if (r->nd - r->dhead >= DECISIONS_MAX) {
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
    if (r->nd - r->dhead > r->ndh / 2) {
        if (!dec_index_grow(r))
            r->nomem = true;
    } else if (nd.qtext[0] != '-') {
        size_t b = dec_hash(nd.qid, nd.domain) & (r->ndh - 1);

        r->d[r->nd - 1].next = r->dh[b];
        r->dh[b] = (uint32_t)r->nd;
    }
done:
    json_decref(jo);
    return k;
}

dec *sts_rlog_find_decision(sts_rlog *r, uint64_t qid, const char *domain, int64_t t)
{
    dec *best = NULL;

    if (r->ndh == 0)
        return NULL;
    for (uint32_t i = r->dh[dec_hash(qid, domain) & (r->ndh - 1)]; i != 0 && i - 1 >= r->dhead;
         i = r->d[i - 1].next) {
        dec *x = &r->d[i - 1];

        if (x->qid == qid && x->domain == domain && x->time <= t + JOIN_SKEW &&
            (best == NULL || x->time > best->time))
            best = x;
    }
    return best;
}
