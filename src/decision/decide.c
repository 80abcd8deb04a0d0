/*
 * decide.c - recipient decisions and tag header text (see decide.h;
 * RFC 8461 sections 3.3, 4 and 5).
 */
#include "decision/decide.h"

#include <stdio.h>
#include <string.h>

#include "base/buf.h"

static void set_domain(sts_decision *d, const char *domain)
{
    (void)snprintf(d->domain, sizeof(d->domain), "%s", domain);
}

void sts_decide_skip(const char *domain, const char *reason, sts_decision *out)
{
    memset(out, 0, sizeof(*out));
    set_domain(out, domain);
    out->result = STS_RESULT_NONE;
    out->cls = STS_CLASS_NORMAL;
    out->action = STS_ACT_SKIP;
    out->skipped = true;
    (void)snprintf(out->reason, sizeof(out->reason), "%s", reason);
}

static void join_mx(const sts_policy *p, char *buf, size_t sz)
{
    size_t used = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < p->n_mx; i++) {
        size_t len = strlen(p->mx[i]);
        size_t need = len + (i > 0 ? 1 : 0);

        /* Keep room for ",..." so a cut list says it was cut. */
        if (used + need + 4 >= sz) {
            (void)snprintf(buf + used, sz - used, "%s...", i > 0 ? "," : "");
            return;
        }
        if (i > 0)
            buf[used++] = ',';
        memcpy(buf + used, p->mx[i], len);
        used += len;
        buf[used] = '\0';
    }
}

void sts_decide(const char *domain, const sts_answer *a, sts_fail_action fail, bool early,
                sts_decision *out)
{
    memset(out, 0, sizeof(*out));
    set_domain(out, domain);
    out->result = a->result;
    out->pending = a->pending;
    out->from_cache = a->from_cache;
    out->report_type = a->report_type;
    memcpy(out->id, a->id, sizeof(out->id));
    out->cls = STS_CLASS_NORMAL;
    out->action = STS_ACT_ACCEPT;
    if (a->policy != NULL) {
        out->has_policy = true;
        out->mode = a->policy->mode;
        out->max_age = a->policy->max_age;
        join_mx(a->policy, out->mx, sizeof(out->mx));
    }
    if (a->result == STS_RESULT_POLICY && a->report_type != STS_RT_NONE)
        (void)snprintf(out->refresh_error, sizeof(out->refresh_error), "%s", a->error);
    switch (a->result) {
    case STS_RESULT_POLICY:
        if (a->policy != NULL && a->policy->mode == STS_MODE_ENFORCE && a->mx_mismatch && early) {
            /* Such mail could never be delivered (4.1 makes every MX
             * unusable): say so now, temporarily - the policy may be fixed. */
            out->cls = STS_CLASS_ENFORCE;
            out->action = STS_ACT_NO_MX;
            (void)snprintf(out->reason, sizeof(out->reason),
                           "enforce policy matches none of the domain's MX hosts: deferred");
        } else if (a->policy != NULL && a->policy->mode == STS_MODE_ENFORCE) {
            out->cls = STS_CLASS_ENFORCE;
            out->action = STS_ACT_ROUTE_ENFORCE;
            (void)snprintf(out->reason, sizeof(out->reason), "%s",
                           a->mx_mismatch ? "enforce policy (it matches none of the domain's "
                                            "MX hosts: delivery will be deferred)"
                                          : "enforce policy");
        } else {
            (void)snprintf(out->reason, sizeof(out->reason), "%s policy: delivered as usual",
                           a->policy != NULL ? sts_mode_name(a->policy->mode) : "unchanged");
        }
        break;
    case STS_RESULT_NONE:
        (void)snprintf(out->reason, sizeof(out->reason), "no MTA-STS policy");
        break;
    case STS_RESULT_INVALID:
        /* RFC 8461 3.3: an unusable policy and no cached one - deliver as
         * if the domain had no MTA-STS; the failure goes to TLS reports. */
        (void)snprintf(out->reason, sizeof(out->reason), "invalid policy, delivered as without "
                                                         "MTA-STS: %.180s", a->error);
        break;
    case STS_RESULT_TEMPERROR:
        if (fail == STS_FAIL_TEMPFAIL) {
            out->action = STS_ACT_TEMPFAIL;
            (void)snprintf(out->reason, sizeof(out->reason), "lookup failed, deferred: %.190s",
                           a->error);
        } else {
            (void)snprintf(out->reason, sizeof(out->reason),
                           "lookup failed, delivered as without MTA-STS: %.170s", a->error);
        }
        break;
    }
}

size_t sts_decision_tag(const sts_decision *d, char *buf, size_t sz)
{
    sts_buf b;
    size_t n;
    sts_status st;

    if (sz == 0)
        return 0;
    sts_buf_init(&b, sz - 1);
    st = sts_buf_printf(&b, "%s; result=%s", d->domain,
                        d->skipped ? "skipped" : sts_result_name(d->result));
    if (st == STS_OK && d->has_policy)
        st = sts_buf_printf(&b, "; mode=%s", sts_mode_name(d->mode));
    if (st == STS_OK && d->id[0] != '\0')
        st = sts_buf_printf(&b, "; id=%s", d->id);
    if (st == STS_OK && d->has_policy && d->mx[0] != '\0')
        st = sts_buf_printf(&b, "; mx=%s", d->mx);
    if (st == STS_OK && d->pending)
        st = sts_buf_printf(&b, "; pending=yes");
    (void)st; /* a cut tag is still a valid header */
    n = b.len;
    if (b.data != NULL)
        memcpy(buf, b.data, n);
    buf[n] = '\0';
    sts_buf_free(&b);
    return n;
}

const char *sts_action_name(sts_action a)
{
    switch (a) {
    case STS_ACT_ACCEPT:
        return "accept";
    case STS_ACT_ROUTE_ENFORCE:
        return "route-enforce";
    case STS_ACT_TEMPFAIL:
        return "tempfail";
    case STS_ACT_SPLIT:
        return "split";
    case STS_ACT_NO_MX:
        return "tempfail-no-mx";
    case STS_ACT_SKIP:
        return "skip";
    case STS_ACT_ABORTED:
        return "aborted";
    }
    return "accept";
}

const char *sts_class_name(sts_class c)
{
    return c == STS_CLASS_ENFORCE ? "enforce" : "none";
}
