/*
 * callbacks.c - the libmilter callbacks of mtasts-milter: thin
 * translation between the MTA and the engine (no RFC logic here; that is
 * in src/decision/decide.c and src/engine/engine.c).
 *
 *   MAIL     start a message context (null sender noted)
 *   RCPT     skip recipients the MTA does not deliver by SMTP to their
 *            domain's own MX ({rcpt_mailer}, {rcpt_host}); look the others
 *            up within EnvelopeTimeout and decide; never let one route be
 *            wrong for a recipient (452 4.5.3 for one that cannot share it)
 *   header   note forged copies of our headers and TLS-Required: No
 *   EOM      remove the forged headers, add one tag header per domain and
 *            the routing header, write the decision log lines
 *   abort    log the recipients as aborted; close frees the connection.
 * Contexts: one per connection, one per message, each made in one function
 * and freed in one function; close clears the private pointer before the
 * free and touches nothing after it.
 */
#include "buildconf.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libmilter/mfapi.h>

#include "base/buf.h"
#include "decision/rcpt.h"
#include "decision/route.h"
#include "sts/domain.h"
#include "base/log.h"
#include "callbacks.h"
#include "metrics.h"
#include "probes.h"
#include "runtime.h"

#define MT_MAX_DOMAINS 256     /* distinct recipient domains tracked per message */

typedef struct msg_ctx {
    mt_runtime *rt; /* the settings snapshot for the whole message (taken at MAIL) */
    bool null_sender;
    /* Routing: FILTER mtasts-enforce sends every recipient of the message
     * to its domain's MX, bypassing local delivery and transport maps.
     * Only Postfix acts on the route header (milter_header_checks); an MTA
     * that applies the socketmap to every delivery itself (Sendmail's
     * FEATURE(`sts')) has no route to get wrong, so it never splits. */
    bool header_routing;
    bool has_enforce; /* a recipient needs the enforced-TLS transport */
    bool has_keep;    /* a recipient must keep the MTA's own route (skipped ones) */
    bool mixed;       /* both, accepted with SplitMixed off: the message is not routed */
    size_t ndom, cap;
    sts_decision *dom; /* accepted recipients' domains, first seen first (grown on demand:
                          most messages have one), and skipped ones (action SKIP: logged,
                          never tagged) */
    unsigned *nrcpt;   /* accepted recipients per entry: one log line each */
    unsigned forged_tag, forged_route; /* copies seen, removed at EOM by index */
    bool tls_required_no;
} msg_ctx;

typedef struct conn_ctx {
    char id[24]; /* our connection id, used until the MTA gives a queue id */
    msg_ctx *msg;
    bool mail_noreply; /* SMFIP_NR_MAIL negotiated: envfrom must not reply */
} conn_ctx;

static atomic_uint active_conns;
/* The milter listens on a unix-domain socket: the one opened at start,
 * not the config's Socket, which a reload may change without effect. */
static atomic_bool listening_local;

void mt_milter_set_local_socket(bool local)
{
    atomic_store(&listening_local, local);
}
static atomic_ulong next_conn_id;

unsigned mt_active_connections(void)
{
    return atomic_load(&active_conns);
}

static const char *queue_id(SMFICTX *ctx, const conn_ctx *cc)
{
    const char *qid = smfi_getsymval(ctx, (char *)"i");

    return qid != NULL && qid[0] != '\0' ? qid : cc->id;
}

static conn_ctx *conn_get(SMFICTX *ctx)
{
    conn_ctx *cc = smfi_getpriv(ctx);

    if (cc != NULL)
        return cc;
    cc = calloc(1, sizeof(*cc));
    if (cc == NULL)
        return NULL;
    (void)snprintf(cc->id, sizeof(cc->id), "c%lu", atomic_fetch_add(&next_conn_id, 1) + 1);
    if (smfi_setpriv(ctx, cc) != MI_SUCCESS) {
        free(cc);
        return NULL;
    }
    atomic_fetch_add(&active_conns, 1);
    return cc;
}

static void msg_reset(conn_ctx *cc)
{
    if (cc->msg != NULL) {
        if (cc->msg->rt != NULL)
            mt_runtime_release(cc->msg->rt);
        free(cc->msg->dom);
        free(cc->msg->nrcpt);
    }
    free(cc->msg);
    cc->msg = NULL;
}

/* Room for one more entry: STS_OK, STS_PERMFAIL when the message holds
 * MT_MAX_DOMAINS already, STS_NOMEM when memory runs out. */
static sts_status msg_grow(msg_ctx *m)
{
    size_t cap;
    sts_decision *dom;
    unsigned *nrcpt;

    if (m->ndom < m->cap)
        return STS_OK;
    if (m->cap >= MT_MAX_DOMAINS)
        return STS_PERMFAIL;
    cap = m->cap == 0 ? 2 : m->cap * 2;
    if (cap > MT_MAX_DOMAINS)
        cap = MT_MAX_DOMAINS;
    dom = sts_realloc_array(m->dom, cap, sizeof(*dom));
    if (dom == NULL)
        return STS_NOMEM;
    m->dom = dom;
    nrcpt = sts_realloc_array(m->nrcpt, cap, sizeof(*nrcpt));
    if (nrcpt == NULL)
        return STS_NOMEM;
    m->nrcpt = nrcpt;
    m->cap = cap;
    return STS_OK;
}

/* Store a recipient in the room msg_grow made: logged at the end of the
 * message, and tagged unless skipped. */
static void msg_store(msg_ctx *m, const sts_decision *d)
{
    m->nrcpt[m->ndom] = 1;
    m->dom[m->ndom++] = *d;
}

static sfsistat fail_action(const mt_runtime *rt)
{
    return rt->fail_action == STS_FAIL_TEMPFAIL ? SMFIS_TEMPFAIL : SMFIS_CONTINUE;
}

/* One syslog line and one decision log line for one recipient.  The
 * address itself is not logged: the domain is what the decision is about. */
static void log_decision(const char *qid, const sts_decision *d)
{
    sts_why why = { "" };

    sts_metric_add(&mt_metric_decisions, sts_action_name(d->action), NULL, 1);
    sts_log(d->action == STS_ACT_TEMPFAIL ? STS_LOG_WARNING : STS_LOG_INFO, qid, "decision",
            "domain=%s result=%s mode=%s id=%s action=%s cache=%s reason=\"%s\"", d->domain, d->skipped ? "skipped" : sts_result_name(d->result),
            d->has_policy ? sts_mode_name(d->mode) : "-", d->id[0] != '\0' ? d->id : "-",
            sts_action_name(d->action), d->from_cache ? "yes" : "no", d->reason);
    if (mt_dlog != NULL && sts_dlog_write(mt_dlog, (int64_t)time(NULL), qid, d, &why) != STS_OK)
        sts_log(STS_LOG_ERR, qid, "decision-log-error", "reason=\"%s\"", why.text);
}

/* Whether the message can take one more recipient of this kind without a
 * route that is wrong for some recipient.  enforce: the recipient needs
 * the enforced-TLS transport; otherwise it must keep the MTA's own route.
 * Recipients delivered by SMTP to their own MX with any other policy suit
 * both (the enforced-TLS transport answers them as usual), so they never
 * come here.  On a conflict with SplitMixed on, the recipient is refused
 * with 452 4.5.3 (the client sends it again in a new transaction) and
 * logged now; with it off, the message is marked mixed and not routed. */
static bool msg_admit(SMFICTX *ctx, msg_ctx *m, const char *qid, sts_decision *d, bool enforce)
{
    char text[STS_DOMAIN_MAX + 160];
    char why[sizeof(d->reason)];

    if (!m->header_routing || (enforce ? !m->has_keep : !m->has_enforce)) {
        if (enforce)
            m->has_enforce = true;
        else
            m->has_keep = true;
        return true;
    }
    if (!m->rt->cfg.split_mixed) {
        m->mixed = true;
        if (enforce)
            m->has_enforce = true;
        else
            m->has_keep = true;
        return true;
    }
    if (enforce)
        (void)snprintf(text, sizeof(text),
                       "%s needs MTA-STS enforced TLS: try again in a separate transaction",
                       d->domain);
    else
        (void)snprintf(text, sizeof(text),
                       "%s is delivered by another route than MTA-STS enforced TLS: "
                       "try again in a separate transaction",
                       d->domain);
    (void)smfi_setreply(ctx, (char *)"452", (char *)"4.5.3", text);
    (void)snprintf(why, sizeof(why), "%s", d->reason);
    d->action = STS_ACT_SPLIT;
    (void)snprintf(d->reason, sizeof(d->reason), "%s: deferred (452 4.5.3)",
                   enforce ? "enforce policy, but the message has recipients the MTA "
                             "delivers by its own route"
                           : "the message is routed to enforced TLS, this recipient keeps "
                             "the MTA's own route");
    if (!enforce && why[0] != '\0') {
        size_t used = strlen(d->reason);

        (void)snprintf(d->reason + used, sizeof(d->reason) - used, " (%s)", why);
    }
    log_decision(qid, d);
    return false;
}

/* A recipient that would need a new entry when the message has
 * MT_MAX_DOMAINS: refused with 452 4.5.3, the reply for too many
 * recipients (RFC 5321 4.5.3.1.10), which the client sends again in
 * another transaction, and logged as split.  Accepted, it could be
 * neither tagged nor logged at the end of the message, and the route the
 * message gets would not have been decided with it. */
static sfsistat msg_full(SMFICTX *ctx, const char *qid, sts_decision *d)
{
    char why[sizeof(d->reason)];

    (void)smfi_setreply(ctx, (char *)"452", (char *)"4.5.3",
                        (char *)"too many recipient domains in one message: try again in a "
                                "separate transaction");
    (void)snprintf(why, sizeof(why), "%s", d->reason);
    d->action = STS_ACT_SPLIT;
    (void)snprintf(d->reason, sizeof(d->reason),
                   "too many recipient domains in one message (%d at most): deferred "
                   "(452 4.5.3)%s%.160s%s",
                   MT_MAX_DOMAINS, why[0] != '\0' ? " (" : "", why, why[0] != '\0' ? ")" : "");
    log_decision(qid, d);
    return SMFIS_TEMPFAIL;
}

/* A recipient that is not looked up, and keeps the MTA's own route.  It is
 * logged at the end of the message like the others, when the MTA has given
 * the message its queue id (Postfix opens the queue file only once a first
 * recipient is accepted); the same domain and reason count once. */
static sfsistat msg_keep(SMFICTX *ctx, msg_ctx *m, const char *qid, sts_decision *d)
{
    for (size_t i = 0; i < m->ndom; i++)
        if (m->dom[i].action == STS_ACT_SKIP && strcmp(m->dom[i].domain, d->domain) == 0 &&
            strcmp(m->dom[i].reason, d->reason) == 0) {
            m->nrcpt[i]++; /* admitted with the first of them */
            return SMFIS_CONTINUE;
        }
    switch (msg_grow(m)) {
    case STS_OK:
        break;
    case STS_PERMFAIL:
        return msg_full(ctx, qid, d);
    default:
        sts_log(STS_LOG_ERR, qid, "nomem", "domain=%s no memory to record a recipient",
                d->domain);
        if (fail_action(m->rt) == SMFIS_TEMPFAIL)
            return SMFIS_TEMPFAIL;
        /* Accepted: its route still counts, and it is logged now, as it is. */
        if (!msg_admit(ctx, m, qid, d, false))
            return SMFIS_TEMPFAIL;
        log_decision(qid, d);
        return SMFIS_CONTINUE;
    }
    if (!msg_admit(ctx, m, qid, d, false))
        return SMFIS_TEMPFAIL;
    msg_store(m, d);
    return SMFIS_CONTINUE;
}

/* Said once per process: without the macros every recipient is taken as
 * outbound SMTP to its own MX, as before they were used. */
static atomic_bool warned_no_macros;

static void warn_no_route_macros(const char *qid)
{
    if (atomic_exchange(&warned_no_macros, true))
        return;
    sts_log(STS_LOG_WARNING, qid, "rcpt-macros-missing",
            "the MTA sends no {rcpt_mailer}: every recipient is taken as delivered by SMTP "
            "to its domain's MX, local and relayed ones included; send {rcpt_mailer} and "
            "{rcpt_host} at RCPT (Postfix milter_rcpt_macros, Sendmail "
            "confMILTER_MACROS_ENVRCPT) or list local domains in LocalDomains");
}

/* ------------------------------------------------------------ negotiate */

static sfsistat cb_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2,
                             unsigned long f3, unsigned long *pf0, unsigned long *pf1,
                             unsigned long *pf2, unsigned long *pf3)
{
    /* Steps we do not need are switched off where the MTA allows it, and
     * headers need no reply: the milter adds as few round trips as it can. */
    /* DATA is kept: skipping it leaves Postfix's DATA macros unanswered, the
     * delayed ACK then holds the next write behind Nagle for ~40 ms per
     * message on TCP (measured with make bench). */
    /* On a unix-domain socket (no Nagle, no delayed ACK) MAIL needs no
     * reply and DATA is skipped too: two round trips fewer per message.
     * A failure at MAIL then shows at RCPT, which tempfails a message
     * without a context anyway. */
    unsigned long want = SMFIP_NOCONNECT | SMFIP_NOHELO | SMFIP_NOBODY | SMFIP_NOEOH |
                         SMFIP_NOUNKNOWN | SMFIP_NR_HDR;
    unsigned long local_only = SMFIP_NR_MAIL | SMFIP_NODATA;
    unsigned long need = SMFIF_ADDHDRS | SMFIF_CHGHDRS;
    conn_ctx *cc;

    (void)f2;
    (void)f3;
    cc = atomic_load(&listening_local) && (f1 & local_only) == local_only ? conn_get(ctx)
                                                                          : NULL;
    if (cc != NULL) {
        want |= local_only;
        cc->mail_noreply = true;
    }
    if ((f0 & need) != need) {
        sts_log(STS_LOG_ERR, "-", "negotiate",
                "the MTA does not allow adding and changing headers (actions 0x%lx)", f0);
        return SMFIS_REJECT;
    }
    *pf0 = need;
    *pf1 = f1 & want;
    *pf2 = 0;
    *pf3 = 0;
    /* The queue id at every stage that uses it, and at RCPT the route. */
    if (f0 & SMFIF_SETSYMLIST) {
        *pf0 |= SMFIF_SETSYMLIST;
        /* v: the MTA's name and version ("Postfix 3.7.11"; Sendmail: "8.17.1.9"). */
        (void)smfi_setsymlist(ctx, SMFIM_ENVFROM, (char *)"i v");
        /* The MTA's own routing of the recipient: who delivers it, where,
         * and the address as it parsed it (whose domain it routes to). */
        (void)smfi_setsymlist(ctx, SMFIM_ENVRCPT,
                              (char *)"i {rcpt_mailer} {rcpt_host} {rcpt_addr}");
        (void)smfi_setsymlist(ctx, SMFIM_EOM, (char *)"i");
    }
    return SMFIS_CONTINUE;
}

/* ------------------------------------------------------------ envelope */

/* Whether the MTA routes by our header: Postfix (its milter macro v is
 * "Postfix VERSION" unless milter_macro_v was changed), or an MTA that
 * does not say (splitting is the safe side).  Sendmail's v is its bare
 * version number ("8.17.1.9"): it enforces with FEATURE(`sts') at every
 * delivery and ignores the header. */
static bool mta_routes_by_header(const char *v)
{
    return v == NULL || !sts_is_digit((unsigned char)v[0]);
}

static sfsistat cb_envfrom(SMFICTX *ctx, char **argv)
{
    conn_ctx *cc = conn_get(ctx);
    const char *from = argv != NULL && argv[0] != NULL ? argv[0] : "";
    mt_runtime *rt;
    sfsistat r = SMFIS_CONTINUE;

    if (cc == NULL) {
        rt = mt_runtime_acquire();
        r = fail_action(rt);
        mt_runtime_release(rt);
        sts_log(STS_LOG_ERR, "-", "nomem", "no memory for a connection context");
        return r;
    }
    msg_reset(cc);
    cc->msg = calloc(1, sizeof(*cc->msg));
    if (cc->msg == NULL) {
        rt = mt_runtime_acquire();
        r = fail_action(rt);
        mt_runtime_release(rt);
        sts_log(STS_LOG_ERR, cc->id, "nomem", "no memory for a message context");
        return cc->mail_noreply ? SMFIS_NOREPLY : r;
    }
    cc->msg->null_sender = strcmp(from, "<>") == 0 || from[0] == '\0';
    cc->msg->header_routing = mta_routes_by_header(smfi_getsymval(ctx, (char *)"v"));
    /* One snapshot per message: header names cannot change between the
     * header callbacks and EOM, and headers take no lock. */
    cc->msg->rt = mt_runtime_acquire();
    return cc->mail_noreply ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

static sfsistat cb_envrcpt(SMFICTX *ctx, char **argv)
{
    conn_ctx *cc = smfi_getpriv(ctx);
    const char *rcpt = argv != NULL && argv[0] != NULL ? argv[0] : "";
    char raw[STS_DOMAIN_MAX * 4 + 1], esc[STS_DOMAIN_MAX + 1], domain[STS_DOMAIN_MAX + 1];
    size_t rawlen;
    const char *qid;
    mt_runtime *rt;
    msg_ctx *m;
    sts_decision d;
    sts_answer a;
    sts_why why = { "" };
    char route_why[STS_WHY_MAX];
    sfsistat r = SMFIS_CONTINUE;

    if (cc == NULL || cc->msg == NULL) {
        rt = mt_runtime_acquire();
        r = fail_action(rt);
        mt_runtime_release(rt);
        return r;
    }
    m = cc->msg;
    rt = m->rt;
    qid = queue_id(ctx, cc);
    /* The domain the MTA routes the recipient to: {rcpt_addr} is the
     * address as the MTA itself parsed it (Postfix: resolved, after its
     * local-domain and percent-hack rewriting), so it wins over our
     * reading of the RCPT argument, which is kept for an MTA that does not
     * send the macro and for Sendmail's local recipients (rcpt.h). */
    switch (sts_rcpt_domain(rcpt, smfi_getsymval(ctx, (char *)"{rcpt_addr}"), raw, sizeof(raw),
                            &why)) {
    case STS_RCPT_DOMAIN:
        break;
    case STS_RCPT_NO_DOMAIN:
        sts_decide_skip("-", "local recipient without a domain", &d);
        r = msg_keep(ctx, m, qid, &d);
        goto done;
    case STS_RCPT_MALFORMED:
        sts_decide_skip("-", "", &d);
        (void)snprintf(d.reason, sizeof(d.reason), "recipient address not understood: %s",
                       why.text);
        r = msg_keep(ctx, m, qid, &d);
        goto done;
    }
    /* Peer bytes: escaped once for every place a skipped name is logged. */
    rawlen = strlen(raw);
    sts_log_escape(esc, sizeof(esc), raw, rawlen);
    if (sts_domain_is_literal(raw, rawlen)) {
        sts_decide_skip(esc, "address literal: MTA-STS does not apply (RFC 8461 3.4)", &d);
        r = msg_keep(ctx, m, qid, &d);
        goto done;
    }
    if (sts_domain_normalize(raw, rawlen, domain, &why) != STS_OK) {
        sts_decide_skip(esc, why.text, &d);
        r = msg_keep(ctx, m, qid, &d);
        goto done;
    }
    if (mt_runtime_is_local(rt, domain)) {
        sts_decide_skip(domain, "local domain (LocalDomains)", &d);
        r = msg_keep(ctx, m, qid, &d);
        goto done;
    }
    switch (sts_route_classify(domain, smfi_getsymval(ctx, (char *)"{rcpt_mailer}"),
                               smfi_getsymval(ctx, (char *)"{rcpt_host}"),
                               rt->cfg.smtp_transports, route_why, sizeof(route_why))) {
    case STS_ROUTE_ELSEWHERE:
        sts_decide_skip(domain, route_why, &d);
        r = msg_keep(ctx, m, qid, &d);
        goto done;
    case STS_ROUTE_UNKNOWN:
        warn_no_route_macros(qid);
        break;
    case STS_ROUTE_OWN_MX:
        break;
    }
    if (m->null_sender) {
        sts_decide_skip(domain, "null sender (bounce): not looked up", &d);
        r = msg_keep(ctx, m, qid, &d);
        goto done;
    }
    for (size_t i = 0; i < m->ndom; i++)
        if (m->dom[i].action != STS_ACT_SKIP && strcmp(m->dom[i].domain, domain) == 0) {
            m->nrcpt[i]++; /* same domain as an earlier recipient: same decision */
            goto done;
        }
    /* Room first: a recipient that cannot be stored is never looked up,
     * admitted to the message's route or accepted under a decision line. */
    switch (msg_grow(m)) {
    case STS_OK:
        break;
    case STS_PERMFAIL:
        sts_decide_skip(domain, "", &d);
        r = msg_full(ctx, qid, &d);
        goto done;
    default:
        sts_log(STS_LOG_ERR, qid, "nomem", "domain=%s no memory to record a recipient", domain);
        r = fail_action(rt);
        goto done;
    }
    if (sts_engine_lookup(mt_engine, domain, (int)rt->cfg.envelope_timeout_ms, &a) != STS_OK) {
        sts_log(STS_LOG_ERR, qid, "nomem", "domain=%s lookup out of memory", domain);
        r = fail_action(rt);
        goto done;
    }
    mt_metrics_answer(a.result, a.from_cache, a.pending);
    sts_decide(domain, &a, rt->fail_action, rt->cfg.early_tempfail, &d);
    if (mt_dlog != NULL && a.policy != NULL && d.has_policy &&
        sts_dlog_note_policy(mt_dlog, (int64_t)time(NULL), d.domain, d.id, a.policy->text,
                             a.policy->text_len, &why) != STS_OK)
        sts_log(STS_LOG_ERR, qid, "decision-log-error", "domain=%s reason=\"%s\"", domain, why.text);
    if (d.action == STS_ACT_ACCEPT || d.action == STS_ACT_ROUTE_ENFORCE)
        mt_probes_note(domain, &a);
    sts_answer_release(&a);
    if (d.action == STS_ACT_NO_MX) {
        char text[STS_DOMAIN_MAX + 128];

        (void)snprintf(text, sizeof(text),
                       "MTA-STS policy of %s allows none of its MX hosts, try again later",
                       domain);
        (void)smfi_setreply(ctx, (char *)"451", (char *)"4.7.5", text);
        log_decision(qid, &d);
        r = SMFIS_TEMPFAIL;
        goto done;
    }
    if (d.action == STS_ACT_TEMPFAIL) {
        (void)smfi_setreply(ctx, (char *)"451", (char *)"4.4.3",
                            (char *)"MTA-STS policy lookup failed, try again later");
        log_decision(qid, &d);
        r = SMFIS_TEMPFAIL;
        goto done;
    }
    if (d.cls == STS_CLASS_ENFORCE && !msg_admit(ctx, m, qid, &d, true)) {
        r = SMFIS_TEMPFAIL;
        goto done;
    }
    msg_store(m, &d);
done:
    return r;
}

/* ------------------------------------------------------------ headers */

static sfsistat cb_header(SMFICTX *ctx, char *name, char *value)
{
    conn_ctx *cc = smfi_getpriv(ctx);
    const mt_runtime *rt;

    if (cc == NULL || cc->msg == NULL)
        return SMFIS_NOREPLY;
    rt = cc->msg->rt;
    if (sts_str_eq_nocase(name, rt->cfg.tag_header))
        cc->msg->forged_tag++;
    else if (sts_str_eq_nocase(name, rt->cfg.route_header))
        cc->msg->forged_route++;
    else if (sts_str_eq_nocase(name, "TLS-Required")) {
        sts_cur v = sts_cur_str(value);

        sts_cur_skip_wsp(&v);
        sts_cur_rtrim_wsp(&v);
        /* RFC 8689: "No" asks that TLS requirements be ignored, e.g. for
         * TLS reports, which must reach a domain whose TLS is broken. */
        if (sts_cur_eq_nocase(&v, "No"))
            cc->msg->tls_required_no = true;
    }
    return SMFIS_NOREPLY;
}

/* ------------------------------------------------------------ end of message */

static sfsistat cb_eom(SMFICTX *ctx)
{
    conn_ctx *cc = smfi_getpriv(ctx);
    const mt_runtime *rt;
    msg_ctx *m;
    const char *qid;
    char value[STS_DOMAIN_MAX + STS_TAG_MX_MAX + 128];
    sts_class cls;
    size_t ntagged = 0;

    if (cc == NULL || cc->msg == NULL) {
        mt_runtime *cur = mt_runtime_acquire();
        sfsistat r = fail_action(cur);

        mt_runtime_release(cur);
        return r;
    }
    m = cc->msg;
    rt = m->rt;
    qid = queue_id(ctx, cc);
    /* Forged copies first, highest index first so indexes stay valid. */
    /* Every copy: the count is bounded by the MTA's header limit, and a
     * copy left behind could steer the routing. */
    for (unsigned i = m->forged_tag; i > 0; i--)
        (void)smfi_chgheader(ctx, rt->cfg.tag_header, (int)i, NULL);
    for (unsigned i = m->forged_route; i > 0; i--)
        (void)smfi_chgheader(ctx, rt->cfg.route_header, (int)i, NULL);
    if (m->forged_tag + m->forged_route > 0)
        sts_log(STS_LOG_NOTICE, qid, "forged-headers-removed", "tag=%u route=%u",
                m->forged_tag, m->forged_route);

    cls = m->has_enforce && !m->mixed ? STS_CLASS_ENFORCE : STS_CLASS_NORMAL;
    if (cls == STS_CLASS_ENFORCE && m->tls_required_no) {
        cls = STS_CLASS_NORMAL;
        sts_log(STS_LOG_INFO, qid, "tls-required-no",
                "message asks for delivery without TLS requirements (RFC 8689): not routed");
    }
    if (m->mixed)
        sts_log(STS_LOG_WARNING, qid, "not-routed",
                "enforce recipients share the message with recipients the MTA delivers by "
                "its own route (SplitMixed no): not routed to enforced TLS");
    for (size_t i = 0; i < m->ndom; i++) {
        sts_decision *d = &m->dom[i];

        if (d->action == STS_ACT_SKIP) {
            for (unsigned k = 0; k < m->nrcpt[i]; k++)
                log_decision(qid, d);
            continue;
        }
        ntagged++;
        if (cls != STS_CLASS_ENFORCE && d->action == STS_ACT_ROUTE_ENFORCE) {
            d->action = STS_ACT_ACCEPT;
            (void)snprintf(d->reason, sizeof(d->reason), "%s",
                           m->mixed ? "enforce policy, but the message also has recipients "
                                      "the MTA delivers by its own route (SplitMixed no): "
                                      "delivered as usual"
                                    : "enforce policy, but TLS-Required: No (RFC 8689): "
                                      "delivered as usual");
        }
        (void)sts_decision_tag(d, value, sizeof(value));
        if (smfi_addheader(ctx, rt->cfg.tag_header, value) != MI_SUCCESS)
            sts_log(STS_LOG_ERR, qid, "addheader-failed", "header=%s", rt->cfg.tag_header);
        for (unsigned k = 0; k < m->nrcpt[i]; k++)
            log_decision(qid, d);
    }
    if (ntagged > 0 &&
        smfi_addheader(ctx, rt->cfg.route_header, (char *)sts_class_name(cls)) != MI_SUCCESS)
        sts_log(STS_LOG_ERR, qid, "addheader-failed", "header=%s", rt->cfg.route_header);
    msg_reset(cc); /* releases rt: nothing uses it after this */
    return SMFIS_CONTINUE;
}

/* A message that ends without EOM (client abort, RSET, lost connection):
 * every recipient is still logged once, accepted ones as aborted. */
static void msg_log_unfinished(SMFICTX *ctx, conn_ctx *cc)
{
    const char *qid;

    if (cc->msg == NULL)
        return;
    qid = queue_id(ctx, cc);
    for (size_t i = 0; i < cc->msg->ndom; i++) {
        sts_decision *d = &cc->msg->dom[i];

        if (d->action != STS_ACT_SKIP) {
            d->action = STS_ACT_ABORTED;
            (void)snprintf(d->reason, sizeof(d->reason), "message aborted by the client");
        }
        for (unsigned k = 0; k < cc->msg->nrcpt[i]; k++)
            log_decision(qid, d);
    }
    msg_reset(cc);
}

static sfsistat cb_abort(SMFICTX *ctx)
{
    conn_ctx *cc = smfi_getpriv(ctx);

    if (cc != NULL)
        msg_log_unfinished(ctx, cc);
    return SMFIS_CONTINUE;
}

static sfsistat cb_close(SMFICTX *ctx)
{
    conn_ctx *cc = smfi_getpriv(ctx);

    if (cc == NULL)
        return SMFIS_CONTINUE;
    msg_log_unfinished(ctx, cc); /* a lost connection mid-message */
    (void)smfi_setpriv(ctx, NULL); /* before the free: nothing may reach it after */
    free(cc);
    atomic_fetch_sub(&active_conns, 1);
    return SMFIS_CONTINUE;
}

static struct smfiDesc desc = {
    .xxfi_name = (char *)"mtasts-milter",
    .xxfi_version = SMFI_VERSION,
    .xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS,
    .xxfi_connect = NULL,
    .xxfi_helo = NULL,
    .xxfi_envfrom = cb_envfrom,
    .xxfi_envrcpt = cb_envrcpt,
    .xxfi_header = cb_header,
    .xxfi_eoh = NULL,
    .xxfi_body = NULL,
    .xxfi_eom = cb_eom,
    .xxfi_abort = cb_abort,
    .xxfi_close = cb_close,
    .xxfi_unknown = NULL,
    .xxfi_data = NULL,
    .xxfi_negotiate = cb_negotiate,
};

const struct smfiDesc *mt_milter_desc(void)
{
    return &desc;
}
