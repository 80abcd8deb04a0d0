/*
 * rlog.c - the log reader behind mtasts-report (see rlog.h): the decision
 * log and the MTA's log, line by line, joined into the sessions of RFC 8460
 * section 4 (a session is one SMTP connection, its TLS outcome and, where
 * it failed, the result type of RFC 8460 4.3).  This file reads the
 * input, hands each line to the parser of its source (rlog_dlog.c,
 * rlog_postfix.c, rlog_sendmail.c) and joins what they gathered into
 * sessions; rlog_impl.h lists the parts and what they share.
 *
 * Line formats read (everything else is "ignored"; a line that starts like
 * one of these but cannot be parsed is "malformed", warned and counted):
 *
 *   Time stamps and syslog header: "Mmm dd hh:mm:ss [HOST ]TAG[PID]: MSG"
 *   (BSD syslog and postlogd, local time, year inferred, see
 *   sts_rlog_set_now) or "YYYY-MM-DDThh:mm:ss[.frac](Z|+hh:mm|+hhmm) [HOST ]
 *   TAG[PID]: MSG" (rsyslog RFC 3339, journalctl -o short-iso).  Postfix is
 *   any TAG ending in "/smtp" or "/lmtp" (postfix/smtp, postfix/lmtp, and
 *   services with their own syslog_name such as postfix/mtasts-enforce/smtp
 *   or postfix-out/smtp); Sendmail is TAG "sm-mta" or "sendmail".
 *
 *   Decision log: one JSON object per line (dlog.c): time, queue_id,
 *   domain, result, action required; mode, policy_id, report_type, mx,
 *   max_age, reason used when present; other fields ignored.  A line with
 *   a "record" field is another kind (rlog_dlog.c): "policy" (the policy
 *   as published), "probe" (an MX probe, joined by rprobe.c), others
 *   ignored.
 *
 *   Postfix smtp(8)/lmtp(8), as Postfix 3.7 writes them (smtp_tls_loglevel
 *   >= 1 for the TLS lines):
 *     P1 "(Verified|Trusted|Untrusted|Anonymous) TLS connection (established|
 *         reused) to HOST[IP]:PORT: ..."           TLS up (no queue id)
 *     P2 "[server |CA ]certificate verification failed for HOST[IP]:PORT:
 *         REASON"                                  precedes P1 (no queue id)
 *     P3 "SSL_connect error to HOST[IP]:PORT: TEXT" handshake failed
 *     P4 "QID: to=<ADDR>, [orig_to=<ADDR>, ]relay=HOST[IP]:PORT, [conn_use=N, ]
 *         delay=.., delays=.., [tls=.., ]dsn=X.Y.Z, status=WORD (TEXT)" one
 *         recipient; ADDR as info_log_address_format = external writes it
 *         (a quoted local part may hold ", relay=": the grammar, not a
 *         search, ends it), only the start of TEXT is Postfix's words
 *     P5 "QID: Cannot start TLS: handshake failure" the retry in plaintext
 *   Sendmail (LogLevel >= 9; 12 and 14 add the reason lines):
 *     S1 "STARTTLS=client, relay=HOST, version=.., verify=WORD, cipher=..,
 *         bits=../.." TLS up (no queue id)
 *     S2 "STARTTLS: TLS cert verify: depth=N SUBJECT, state=N, reason=TEXT"
 *         before S1;  S3 "STARTTLS=client, cert-subject=.., cert-issuer=..,
 *         verifymsg=TEXT" after S1
 *     S4 "ruleset=tls_server, arg1=WORD, relay=HOST, reject=TEXT"
 *     S5 "QID: to=<A>[,<B>...], ..., relay=HOST [IP], dsn=.., stat=WORD ..."
 *         (addresses by their grammar; stat= quotes the server: not read
 *         for result types, S4 says when STARTTLS was not offered)
 *
 * Connections.  The TLS lines carry no queue id: they are tied to the
 * delivery lines of the same process (host + PID) that follow them.  A TLS
 * line, an SSL_connect error or a verification failure that does not
 * belong to the connection in progress starts a new connection; a
 * delivery line for another queue id, another relay, or a recipient
 * already seen on the connection starts one too (Postfix does not cache
 * TLS connections unless smtp_tls_connection_reuse is set, and then logs
 * "reused" per delivery; Sendmail may carry several messages over one
 * cached connection, so there the connection is handed on to the next
 * queue id of the same relay).  Connections that end without a delivery
 * line - an MX host tried before the one that took the mail - belong to
 * the delivery that follows in the same process.  Each connection counts
 * once per recipient domain and queue id, however many recipients of the
 * domain it carried.  A delivery that made no connection (relay=none,
 * "delivery temporarily suspended") is no session.
 *
 * Result types (RFC 8460 4.3):
 *   starttls-not-supported     Postfix "TLS is required, but was not offered
 *                              by host" / "... but host H refused to start
 *                              TLS" (at the start of TEXT); Sendmail
 *                              verify or arg1 NONE, DANE_NOTLS; a delivery without TLS by a
 *                              service that logs its TLS handshakes (tls
 *                              PLAINTEXT: it did not see STARTTLS offered)
 *   certificate-expired        reason "certificate has expired", "not yet
 *                              valid" (OpenSSL sends the certificate_expired
 *                              alert for both)
 *   certificate-host-mismatch  reason "hostname mismatch" (Postfix
 *                              "num=62:hostname mismatch")
 *   certificate-not-trusted    reason "untrusted issuer", "self-signed",
 *                              "not trusted", "unable to get (local) issuer",
 *                              "rejected"; Postfix "Untrusted" or Sendmail
 *                              verify=FAIL without a logged reason (Postfix
 *                              logs no reason at security level "may")
 *   validation-failure         any other verification reason ("not
 *                              designated for use", "chain longer than
 *                              limit", ...), "Server certificate not
 *                              verified" without a reason, Postfix
 *                              "Anonymous" (no certificate), the handshake
 *                              failures (P3, P5, "Cannot start TLS:
 *                              handshake failure"), Sendmail verify NO, NOT,
 *                              TEMP, PROTOCOL, SOFTWARE, DANE_FAIL,
 *                              DANE_TEMP; and the decision "tempfail-no-mx"
 *   sts-policy-fetch-error, sts-policy-invalid, sts-webpki-invalid
 *                              the decision log's report_type, unless the
 *                              result is "policy" (a failed refresh while
 *                              a valid cached policy applied: ignored)
 * Success: Postfix "Verified" or "Trusted" (at level "may" Postfix checks
 * the chain but not the name: "Trusted" is the best the log can say),
 * Sendmail verify=OK, TRUSTED, DANE_PASS.
 */
#include "tlsrpt/rlog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>

#include "base/buf.h"
#include "tlsrpt/rlog_impl.h"
#include "tlsrpt/rprobe.h"

/* ------------------------------------------------------------ warnings */

static void warnf(sts_rlog *r, const char *fmt, ...) STS_PRINTF(2, 3);

static void warnf(sts_rlog *r, const char *fmt, ...)
{
    char msg[512], line[700];
    va_list ap;

    if (r->warn == NULL)
        return;
    if (r->warned >= WARN_MAX) {
        if (r->warned == WARN_MAX)
            r->warn(r->warn_arg, "further malformed lines are counted but not shown");
        r->warned = WARN_MAX + 1;
        return;
    }
    r->warned++;
    va_start(ap, fmt);
    (void)vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    (void)snprintf(line, sizeof(line), "%s:%llu: %s", r->name != NULL ? r->name : "-",
                   (unsigned long long)r->lineno, msg);
    r->warn(r->warn_arg, line);
}

sts_rlog_line_kind sts_rlog_malformed(sts_rlog *r, const char *why, sts_cur what)
{
    char q[96];

    warnf(r, "%s: \"%s\"", why, sts_quote(q, sizeof(q), what.p, what.len));
    return STS_RLOG_MALFORMED;
}

/* ----------------------------------------------------------- lines */

static bool is_tag_char(unsigned char ch)
{
    return ch > ' ' && ch < 0x7f && ch != '[' && ch != ':';
}

static bool ends_with(sts_cur c, const char *lit)
{
    size_t n = strlen(lit);

    return c.len > n && memcmp(c.p + c.len - n, lit, n) == 0;
}

sts_rlog_line_kind sts_rlog_feed_line(sts_rlog *r, const char *line, size_t len, const char *name,
                                      uint64_t lineno)
{
    sts_cur c = sts_cur_make(line, len), s, w, host = { "", 0 }, tag, pidc;
    sts_rlog_line_kind k;
    uint64_t pid;
    int64_t t;

    r->name = name;
    r->lineno = lineno;
    r->st.lines++;
    r->line_t = INT64_MIN;
    if (len > 0 && line[len - 1] == '\r')
        c.len--;
    if (len > STS_RLOG_LINE_MAX) {
        k = sts_rlog_malformed(r, "line too long", sts_cur_make(line, 40));
        goto out;
    }
    s = c;
    (void)sts_cur_skip_wsp(&s);
    if (s.len > 0 && s.p[0] == '{') {
        k = sts_rlog_decision_line(r, c);
        goto out;
    }
    k = STS_RLOG_IGNORED;
    s = c;
    if (!(s.len > 0 && sts_is_digit((unsigned char)s.p[0])
              ? sts_rlog_take_rfc3339(&s, &t)
              : sts_rlog_take_bsd_time(r, &s, &t)))
        goto out;
    if (sts_cur_skip_wsp(&s) == 0)
        goto out;
    w = s;
    if (!sts_cur_take_while(&w, sts_rlog_is_not_space, &host))
        goto out;
    if (host.p[host.len - 1] == ':') {
        host = sts_cur_make("", 0); /* no host field: "TAG[PID]: MSG" */
    } else {
        s = w;
        if (sts_cur_skip_wsp(&s) == 0)
            goto out;
    }
    if (!sts_cur_take_while(&s, is_tag_char, &tag) || !sts_cur_take_char(&s, '[') ||
        !sts_cur_take_while(&s, sts_is_digit, &pidc) || pidc.len > 10 ||
        !sts_cur_take_number(&pidc, 10, UINT32_MAX, &pid) || !sts_cur_take_lit(&s, "]:"))
        goto out;
    (void)sts_cur_take_char(&s, ' ');
    r->line_t = t;
    k = sts_rlog_feed_syslog(r, t, host, tag, (uint32_t)pid, s);
out:
    sts_rlog_advance(r, r->line_t != INT64_MIN ? r->line_t : r->maxt);
    switch (k) {
    case STS_RLOG_DECISION:
        r->st.decision_lines++;
        break;
    case STS_RLOG_POSTFIX:
    case STS_RLOG_SENDMAIL:
        r->st.mta_lines++;
        break;
    case STS_RLOG_IGNORED:
        r->st.ignored_lines++;
        break;
    case STS_RLOG_MALFORMED:
        r->st.malformed_lines++;
        break;
    }
    return k;
}

sts_rlog_line_kind sts_rlog_feed_syslog(sts_rlog *r, int64_t t, sts_cur host, sts_cur tag,
                                        uint32_t pid, sts_cur s)
{
    sts_rlog_line_kind k = STS_RLOG_IGNORED;
    uint8_t kind;
    char svc[STS_DOMAIN_MAX + 200];
    const char *hosti, *svci;
    pidstate *p;

    if (ends_with(tag, "/cleanup")) {
        /* "QID: message-id=<...>": which queue id is our own report mail. */
        sts_cur qidc;

        if (r->own_submitter != NULL && sts_rlog_take_qid(&s, &qidc) &&
            sts_cur_take_lit(&s, "message-id=")) {
            sts_rlog_note_msgid(r, qidc, s);
            k = STS_RLOG_POSTFIX;
        }
        goto out;
    }
    if (ends_with(tag, "/smtp") || ends_with(tag, "/lmtp"))
        kind = MTA_POSTFIX;
    else if (sts_cur_eq(&tag, "sm-mta") || sts_cur_eq(&tag, "sendmail"))
        kind = MTA_SENDMAIL;
    else
        goto out;
    if (host.len > STS_DOMAIN_MAX || tag.len > 190)
        goto out;
    if (r->svc.svci != NULL && r->svc.hl == host.len && r->svc.tl == tag.len &&
        memcmp(r->svc.host, host.p, host.len) == 0 && memcmp(r->svc.tag, tag.p, tag.len) == 0) {
        hosti = r->svc.hosti; /* the same program as the line before */
        svci = r->svc.svci;
    } else {
        (void)snprintf(svc, sizeof(svc), "%.*s %.*s", (int)host.len, host.p, (int)tag.len,
                       tag.p);
        if ((hosti = sts_rlog_intern(r, host.p, host.len)) == NULL ||
            (svci = sts_rlog_intern(r, svc, strlen(svc))) == NULL)
            goto out;
        memcpy(r->svc.host, host.p, host.len);
        memcpy(r->svc.tag, tag.p, tag.len);
        r->svc.hl = host.len;
        r->svc.tl = tag.len;
        r->svc.hosti = hosti;
        r->svc.svci = svci;
    }
    if (svci[0] == '\0')
        goto out;
    p = sts_rlog_pid_get(r, hosti, svci, (uint32_t)pid, kind);
    if (p == NULL)
        goto out;
    k = kind == MTA_POSTFIX ? sts_rlog_postfix_line(r, p, t, s)
                            : sts_rlog_sendmail_line(r, p, t, s);
out:
    return k;
}

/* ------------------------------------------------------------ results */

static bool in_window(const sts_rlog *r, int64_t t)
{
    return !r->window || (t >= r->win_from && t < r->win_until);
}

static void copy_text(char *dst, size_t sz, const char *s)
{
    size_t n = strlen(s);

    if (n >= sz)
        n = sz - 1;
    memcpy(dst, s, n);
    dst[n] = '\0';
}

static void fill_decision(const sts_rlog *r, sts_rsession *s, const dec *d)
{
    if (d->has_policy)
        s->policy_text = sts_rlog_policy_text(r, d->domain, d->policy_id);
    s->has_decision = true;
    s->result = (sts_result)d->result;
    s->has_policy = d->has_policy;
    s->mode = (sts_mode)d->mode;
    copy_text(s->policy_id, sizeof(s->policy_id), d->policy_id);
    copy_text(s->mx, sizeof(s->mx), d->mx);
    s->mx_truncated = d->mx_truncated || strlen(d->mx) >= sizeof(s->mx);
    s->max_age = d->max_age;
    s->max_age_known = d->max_age_known;
}

/* A session is known: to the sink, or kept for sts_rlog_sessions. */
static void emit(sts_rlog *r, const sts_rsession *s)
{
    sts_rsession *no;

    if (r->sink != NULL) {
        r->sink(r->sink_arg, s);
        return;
    }
    if (r->nout >= SESSIONS_MAX) {
        r->st.dropped++;
        return;
    }
    if ((no = sts_array_reserve(r->out, r->nout, &r->capout, 64, sizeof(*no))) == NULL) {
        r->nomem = true;
        return;
    }
    r->out = no;
    r->out[r->nout++] = *s;
}

/* One attempt joined to its decision (or not): a session, or counted. */
static void join_attempt(sts_rlog *r, const att *a)
{
    uint8_t tls = a->tls;
    const char *rt = a->rt;
    sts_rsession s;
    dec *d;

    /* Our own report mail is not reported on (RFC 8460 3). */
    if (sts_rlog_is_own(r, a->qid)) {
        r->st.own_reports++;
        return;
    }
    /* Joined first: a decision whose attempts say nothing about TLS
     * still had its delivery, it is not an unjoined decision. */
    d = sts_rlog_find_decision(r, a->qid, a->domain, a->time);
    if (d != NULL)
        d->joined = true;
    if (tls == STS_RLOG_TLS_NONE) {
        if (!a->sent || !sts_rlog_node_of(a->service)->logs_tls) {
            r->st.no_tls_info++;
            return;
        }
        tls = STS_RLOG_TLS_PLAINTEXT;
        rt = sts_rlog_rt_starttls;
    }
    if (d != NULL && d->engine_rt != NULL) {
        r->st.absorbed++;
        return;
    }
    if (!in_window(r, a->time)) {
        r->st.outside_window++;
        return;
    }
    memset(&s, 0, sizeof(s));
    s.time = a->time;
    copy_text(s.queue_id, sizeof(s.queue_id), a->qtext);
    copy_text(s.domain, sizeof(s.domain), a->domain);
    if (d != NULL) {
        fill_decision(r, &s, d);
        r->st.joined++;
    } else {
        r->st.unjoined_attempts++;
    }
    s.tls = (sts_rlog_tls)tls;
    s.success = tls == STS_RLOG_TLS_VERIFIED || tls == STS_RLOG_TLS_TRUSTED;
    s.result_type = s.success ? NULL : rt;
    copy_text(s.mx_host, sizeof(s.mx_host), a->host);
    copy_text(s.mx_ip, sizeof(s.mx_ip), a->ip);
    copy_text(s.detail, sizeof(s.detail), s.success ? "" : a->detail);
    /* What the MTA could not check, from the MX probes (rprobe.h). */
    sts_rlog_probe_apply(r, &s, a->domain, d != NULL ? d->policy_id : NULL, a->host);
    emit(r, &s);
}

/* A decision leaving the join window: the engine's own failure, or a
 * failed refresh under a cached policy, is a session; one that no
 * attempt joined is counted. */
static void retire_decision(sts_rlog *r, const dec *d)
{
    const char *rt = d->engine_rt != NULL ? d->engine_rt : d->refresh_rt;
    sts_rsession s;

    if (sts_rlog_is_own(r, d->qid))
        return;
    if (!in_window(r, d->time)) {
        if (rt != NULL)
            r->st.outside_window++;
        return;
    }
    if (d->engine_rt == NULL && !d->joined)
        r->st.unjoined_decisions++;
    if (rt == NULL)
        return;
    memset(&s, 0, sizeof(s));
    s.time = d->time;
    copy_text(s.queue_id, sizeof(s.queue_id), d->qtext);
    copy_text(s.domain, sizeof(s.domain), d->domain);
    fill_decision(r, &s, d);
    s.engine_failure = true;
    s.tls = STS_RLOG_TLS_NONE;
    s.success = false;
    s.result_type = rt;
    copy_text(s.detail, sizeof(s.detail), d->reason);
    r->st.engine_failures++;
    emit(r, &s);
}

/* Join the attempts logged before att_before and retire the decisions
 * logged before dec_before, oldest first (a late line waits for the ones
 * before it), then give back the room they took. */
static void flush(sts_rlog *r, int64_t att_before, int64_t dec_before)
{
    while (r->ahead < r->na && r->a[r->ahead].time < att_before)
        join_attempt(r, &r->a[r->ahead++]);
    while (r->dhead < r->nd && r->d[r->dhead].time < dec_before)
        retire_decision(r, &r->d[r->dhead++]);
    if (r->ahead == r->na) {
        r->ahead = r->na = 0;
    } else if (r->ahead > 4096 && r->ahead > r->na / 2) {
        memmove(r->a, r->a + r->ahead, (r->na - r->ahead) * sizeof(*r->a));
        r->na -= r->ahead;
        r->ahead = 0;
    }
    if (r->dhead > 4096 && r->dhead > r->nd / 2) {
        memmove(r->d, r->d + r->dhead, (r->nd - r->dhead) * sizeof(*r->d));
        r->nd -= r->dhead;
        r->dhead = 0;
        if (!sts_rlog_dec_index(r, r->ndh))
            r->nomem = true;
    }
}

void sts_rlog_advance(sts_rlog *r, int64_t t)
{
    if (t > r->maxt)
        r->maxt = t;
    /* Every few thousand lines, and whenever log time moved on a minute:
     * the window is one of log time, whatever the traffic. */
    if (++r->since_flush < FLUSH_EVERY && r->maxt - r->flushed_t < 60)
        return;
    r->since_flush = 0;
    r->flushed_t = r->maxt;
    if (r->progress != NULL)
        r->progress(r->progress_arg, &r->st);
    if (r->sink != NULL)
        flush(r, r->maxt - JOIN_SKEW, r->maxt - DEC_KEEP);
}

sts_status sts_rlog_finish(sts_rlog *r)
{
    if (r->nomem)
        return STS_NOMEM;
    if (r->built)
        return STS_OK;
    /* Connections still waiting for their delivery line when the input
     * ended: their outcome is lost, say so. */
    for (const pidstate *p = r->lru_head; p != NULL; p = p->next)
        for (size_t i = 0; i < p->nconn; i++)
            if (p->c[i].qid == 0 && (p->c[i].tls != STS_RLOG_TLS_NONE || p->c[i].verify_failed))
                r->st.unfinished++;
    flush(r, INT64_MAX, INT64_MIN);
    flush(r, INT64_MAX, INT64_MAX);
    r->built = true;
    return r->nomem ? STS_NOMEM : STS_OK;
}

static int cmp_str(const char *a, const char *b)
{
    return strcmp(a != NULL ? a : "", b != NULL ? b : "");
}

static int cmp_rsession(const void *pa, const void *pb)
{
    const sts_rsession *a = pa, *b = pb;
    int c;

    if (a->time != b->time)
        return a->time < b->time ? -1 : 1;
    if ((c = strcmp(a->queue_id, b->queue_id)) != 0 || (c = strcmp(a->domain, b->domain)) != 0)
        return c;
    if (a->engine_failure != b->engine_failure)
        return a->engine_failure ? -1 : 1;
    if ((c = strcmp(a->mx_host, b->mx_host)) != 0 || (c = strcmp(a->mx_ip, b->mx_ip)) != 0 ||
        (c = cmp_str(a->result_type, b->result_type)) != 0)
        return c;
    if (a->tls != b->tls)
        return a->tls < b->tls ? -1 : 1;
    return strcmp(a->detail, b->detail);
}

sts_status sts_rlog_sessions(sts_rlog *r, const sts_rsession **out, size_t *n)
{
    bool sorted = r->built;
    sts_status st;

    *out = NULL;
    *n = 0;
    if ((st = sts_rlog_finish(r)) != STS_OK)
        return st;
    if (!sorted && r->nout > 1)
        qsort(r->out, r->nout, sizeof(r->out[0]), cmp_rsession);
    *out = r->out;
    *n = r->nout;
    return STS_OK;
}

void sts_rlog_set_sink(sts_rlog *r, void (*sink)(void *arg, const sts_rsession *s), void *arg)
{
    r->sink = sink;
    r->sink_arg = arg;
}

void sts_rlog_set_progress(sts_rlog *r, void (*progress)(void *arg, const sts_rlog_stats *st),
                           void *arg)
{
    r->progress = progress;
    r->progress_arg = arg;
}

/* ------------------------------------------------------------ life */

sts_status sts_rlog_new(void (*warn)(void *arg, const char *msg), void *warn_arg, sts_rlog **out)
{
    sts_rlog *r = calloc(1, sizeof(*r));

    *out = NULL;
    if (r == NULL)
        return STS_NOMEM;
    r->warn = warn;
    r->warn_arg = warn_arg;
    r->now = (int64_t)time(NULL);
    /* Without it (no memory) every stamp is converted in full. */
    if ((r->bsd = calloc(2, sizeof(*r->bsd))) != NULL)
        r->bsd[0].mo = r->bsd[1].mo = -1;
    *out = r;
    return STS_OK;
}

void sts_rlog_set_now(sts_rlog *r, int64_t now)
{
    r->now = now;
    if (r->bsd != NULL)
        r->bsd[0].mo = r->bsd[1].mo = -1; /* the year may change */
}

void sts_rlog_set_own_reports(sts_rlog *r, const char *submitter)
{
    r->own_submitter = submitter;
}

/* "<tlsrpt.HEX32.DIGITS.DIGITS@SUBMITTER>": the Message-ID rmail.c gives
 * our report mail. */
static bool own_msgid(const sts_rlog *r, sts_cur m)
{
    sts_cur w;

    if (r->own_submitter == NULL || !sts_cur_take_lit(&m, "<tlsrpt."))
        return false;
    for (int i = 0; i < 32; i++, m.p++, m.len--)
        if (m.len == 0 || !((m.p[0] >= '0' && m.p[0] <= '9') || (m.p[0] >= 'a' && m.p[0] <= 'f')))
            return false;
    return sts_cur_take_char(&m, '.') && sts_cur_take_while(&m, sts_is_digit, &w) &&
           sts_cur_take_char(&m, '.') && sts_cur_take_while(&m, sts_is_digit, &w) &&
           sts_cur_take_char(&m, '@') && sts_cur_take_lit_nocase(&m, r->own_submitter) &&
           sts_cur_eq(&m, ">");
}

static size_t own_slot(uint64_t qid, size_t cap)
{
    return (size_t)(qid * 0x9E3779B97F4A7C15ull >> 17) & (cap - 1);
}

bool sts_rlog_is_own(const sts_rlog *r, uint64_t qid)
{
    if (r->nown == 0)
        return false;
    for (size_t i = own_slot(qid, r->capown);; i = (i + 1) & (r->capown - 1)) {
        if (r->own[i] == 0)
            return false;
        if (r->own[i] == qid)
            return true;
    }
}

void sts_rlog_note_msgid(sts_rlog *r, sts_cur qidc, sts_cur msgid)
{
    uint64_t q;
    size_t j;

    if (!own_msgid(r, msgid) || sts_rlog_is_own(r, q = sts_rlog_qid_hash(qidc)))
        return;
    if (r->nown >= OWN_QIDS_MAX) {
        r->st.dropped++;
        return;
    }
    if ((r->nown + 1) * 2 > r->capown) {
        size_t nc = r->capown != 0 ? r->capown * 2 : 256;
        uint64_t *no = sts_calloc_array(nc, sizeof(*no));

        if (no == NULL) {
            r->nomem = true;
            return;
        }
        for (size_t i = 0; i < r->capown; i++)
            if (r->own[i] != 0) {
                j = own_slot(r->own[i], nc);
                while (no[j] != 0)
                    j = (j + 1) & (nc - 1);
                no[j] = r->own[i];
            }
        free(r->own);
        r->own = no;
        r->capown = nc;
    }
    j = own_slot(q, r->capown);
    while (r->own[j] != 0)
        j = (j + 1) & (r->capown - 1);
    r->own[j] = q;
    r->nown++;
}

void sts_rlog_set_window(sts_rlog *r, int64_t from, int64_t until)
{
    r->window = true;
    r->win_from = from;
    r->win_until = until;
}

const sts_rlog_stats *sts_rlog_get_stats(const sts_rlog *r)
{
    return &r->st;
}

void sts_rlog_free(sts_rlog *r)
{
    if (r == NULL)
        return;
    while (r->lru_head != NULL) {
        pidstate *p = r->lru_head;

        r->lru_head = p->next;
        free(p);
    }
    for (size_t i = 0; i < r->nsb; i++) {
        strnode *x, *next;

        for (x = r->sb[i]; x != NULL; x = next) {
            next = x->next;
            free(x);
        }
    }
    free(r->sb);
    for (size_t i = 0; r->pt != NULL && i < PT_BUCKETS; i++) {
        poltext *x, *next;

        for (x = r->pt[i]; x != NULL; x = next) {
            next = x->next;
            free(x);
        }
    }
    free(r->pt);
    free(r->ph);
    free(r->own);
    free(r->bsd);
    free(r->d);
    free(r->dh);
    free(r->a);
    free(r->out);
    sts_rlog_probe_free(r);
    free(r);
}
