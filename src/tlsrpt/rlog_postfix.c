/*
 * rlog_postfix.c - Postfix smtp(8)/lmtp(8) lines (P1-P5 at the top of
 * rlog.c) into the connections and attempts of rlog_mta.c: the TLS and
 * verification lines open a connection or say how its TLS went, the
 * delivery lines tie it to a queue id and recipient, and Postfix's words
 * give the RFC 8460 4.3 result type.
 */
#include "tlsrpt/rlog.h"

#include <string.h>

#include "base/buf.h"
#include "tlsrpt/rlog_impl.h"

/* Postfix "HOST[ADDR]" with an optional ":PORT". */
static bool take_namaddr(sts_rlog *r, sts_cur *c, const char **host, const char **ip)
{
    sts_cur s = *c, h, a, port;

    if (!sts_cur_take_until(&s, '[', &h) || h.len == 0 || sts_rlog_cur_has(&h, " ") ||
        !sts_cur_take_char(&s, '[') || !sts_cur_take_until(&s, ']', &a) ||
        !sts_cur_take_char(&s, ']'))
        return false;
    if (sts_cur_take_char(&s, ':') && !sts_cur_take_while(&s, sts_is_digit, &port))
        return false;
    if ((*host = sts_rlog_intern_host(r, h)) == NULL ||
        (*ip = sts_rlog_intern_ip(r, a)) == NULL)
        return false;
    *c = s;
    return true;
}

typedef enum pf_text {
    PF_TEXT_OTHER,
    PF_TEXT_NOT_OFFERED,
    PF_TEXT_NOT_VERIFIED,
    PF_TEXT_HANDSHAKE,
    PF_TEXT_NO_CONNECTION,
} pf_text;

static bool is_key_char(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || ch == '_';
}

static bool is_relay_char(unsigned char ch)
{
    return ch > ' ' && ch < 0x7f && ch != ',';
}

/* The reason inside "status=WORD (REASON)", as smtp(8) words it
 * (smtp_proto.c).  Only the start of the reason is Postfix's: a remote
 * server's reply is quoted after "host H said: " or after "refused to
 * start TLS: ", so every test is anchored at the start, never a search. */
static pf_text postfix_text(sts_cur text)
{
    sts_cur s = text, host;

    if (sts_cur_take_lit(&s, "delivery temporarily suspended: ") ||
        sts_cur_eq(&text, "TLS is required, but our TLS engine is unavailable") ||
        sts_cur_eq(&text, "TLS is required, but unavailable"))
        return PF_TEXT_NO_CONNECTION;
    s = text;
    if (sts_cur_take_lit(&s, "TLS is required, but was not offered by host ") &&
        sts_cur_take_while(&s, is_relay_char, &host) && s.len == 0)
        return PF_TEXT_NOT_OFFERED;
    s = text;
    if (sts_cur_take_lit(&s, "TLS is required, but host ") &&
        sts_cur_take_while(&s, is_relay_char, &host) &&
        sts_cur_take_lit(&s, " refused to start TLS: "))
        return PF_TEXT_NOT_OFFERED;
    s = text;
    if (sts_cur_take_lit(&s, "Server certificate not verified") ||
        sts_cur_take_lit(&s, "Server certificate not trusted"))
        return PF_TEXT_NOT_VERIFIED;
    if (sts_cur_take_lit(&s, "Cannot start TLS: handshake failure"))
        return PF_TEXT_HANDSHAKE;
    return PF_TEXT_OTHER;
}

/* The fields of a delivery line in the order log_adhoc.c writes them:
 * "to=<ADDR>[, orig_to=<ADDR>], relay=R[, conn_use=N], delay=D,
 * delays=D/D/D/D[, tls=...], dsn=X.Y.Z, status=WORD (REASON)".  The
 * addresses are the sender's text, taken by their grammar
 * (sts_rlog_take_addr); the fields between relay and status are Postfix's
 * own (no ", " inside); REASON, which quotes the remote server, is the
 * rest of the line and is never searched for fields. */
static bool postfix_fields(sts_cur f, sts_cur *addr, sts_cur *relay, sts_cur *word,
                           sts_cur *text)
{
    sts_cur orig, key, val;
    bool have_dsn = false;

    if (!sts_cur_take_lit(&f, "to=") || !sts_rlog_take_addr(&f, true, addr))
        return false;
    if (sts_cur_take_lit(&f, ", orig_to=") && !sts_rlog_take_addr(&f, true, &orig))
        return false;
    if (!sts_cur_take_lit(&f, ", relay=") || !sts_cur_take_while(&f, is_relay_char, relay))
        return false;
    for (;;) {
        if (!sts_cur_take_lit(&f, ", ") || !sts_cur_take_while(&f, is_key_char, &key) ||
            !sts_cur_take_char(&f, '='))
            return false;
        if (sts_cur_eq(&key, "status"))
            break;
        if (sts_cur_eq(&key, "to") || sts_cur_eq(&key, "orig_to") || sts_cur_eq(&key, "relay") ||
            !sts_cur_take_while(&f, is_relay_char, &val))
            return false;
        if (sts_cur_eq(&key, "dsn"))
            have_dsn = true;
    }
    if (!have_dsn || !sts_cur_take_while(&f, sts_is_alpha, word))
        return false;
    if (f.len == 0) {
        *text = f;
        return true;
    }
    if (!sts_cur_take_lit(&f, " (") || f.len == 0 || f.p[f.len - 1] != ')')
        return false;
    *text = sts_cur_make(f.p, f.len - 1);
    return true;
}

static sts_rlog_line_kind postfix_delivery(sts_rlog *r, pidstate *p, int64_t t, sts_cur qtext,
                                           sts_cur line, sts_cur f)
{
    sts_cur addr, relay, word, text;
    const char *host = "", *ip = "";
    bool no_relay = false;
    pf_text kind;
    conn *c;
    uint64_t qid = sts_rlog_qid_hash(qtext);

    if (!postfix_fields(f, &addr, &relay, &word, &text))
        return sts_rlog_malformed(r, "Postfix delivery line not as log_adhoc writes it", line);
    if (sts_cur_eq(&relay, "none")) {
        no_relay = true;
    } else {
        sts_cur rv = relay;

        if (!take_namaddr(r, &rv, &host, &ip)) {
            if (r->nomem)
                return STS_RLOG_POSTFIX;
            /* relay=local, relay=virtual, a Unix socket: no SMTP connection. */
            return STS_RLOG_IGNORED;
        }
        if (ip[0] == '\0')
            return STS_RLOG_IGNORED; /* lmtp to a Unix socket: no TLS here */
    }
    kind = postfix_text(text);
    if (kind == PF_TEXT_NO_CONNECTION)
        return STS_RLOG_POSTFIX;
    if (no_relay) {
        /* No connection took the mail, but earlier ones of this delivery
         * (other MX hosts that failed) still count. */
        conn *last = sts_rlog_conn_cur(p);

        if (last != NULL && (last->qid == 0 || last->qid == qid))
            (void)sts_rlog_deliver(r, p, last, qtext, addr, t, false);
        return STS_RLOG_POSTFIX;
    }
    c = sts_rlog_conn_cur(p);
    if (c != NULL && c->qid == qid && sts_rlog_same_relay(c, host, ip) &&
        !sts_rlog_rcpt_seen(c, sts_rlog_hash_bytes(addr.p, addr.len))) {
        /* another recipient on the connection in progress */
    } else if (c != NULL && c->qid == 0 && sts_rlog_same_relay(c, host, ip) &&
               t - c->time <= CONN_STALE) {
        /* the first delivery line of the connection the TLS lines opened */
    } else {
        c = sts_rlog_conn_new(r, p, t, host, ip);
    }
    if (kind == PF_TEXT_NOT_OFFERED && c->tls != STS_RLOG_TLS_NOT_OFFERED) {
        /* No TLS line comes before this one: STARTTLS never happened. */
        if (c->tls != STS_RLOG_TLS_NONE || c->verify_failed)
            c = sts_rlog_conn_new(r, p, t, host, ip);
        c->tls = STS_RLOG_TLS_NOT_OFFERED;
    }
    if (c->host[0] == '\0')
        c->host = host;
    if (c->ip[0] == '\0')
        c->ip = ip;
    if (kind == PF_TEXT_NOT_VERIFIED && c->tls == STS_RLOG_TLS_NONE)
        c->verify_failed = true;
    if (kind == PF_TEXT_HANDSHAKE && c->tls == STS_RLOG_TLS_NONE)
        c->tls = STS_RLOG_TLS_FAILED;
    if (kind != PF_TEXT_OTHER && c->detail[0] == '\0' &&
        (c->detail = sts_rlog_intern_quoted(r, text.p, text.len)) == NULL)
        c->detail = "";
    (void)sts_rlog_deliver(r, p, c, qtext, addr, t, sts_cur_eq(&word, "sent"));
    return STS_RLOG_POSTFIX;
}

sts_rlog_line_kind sts_rlog_postfix_line(sts_rlog *r, pidstate *p, int64_t t, sts_cur m)
{
    static const struct {
        const char *lit;
        sts_rlog_tls tls;
    } summaries[] = {
        { "Verified TLS connection ", STS_RLOG_TLS_VERIFIED },
        { "Trusted TLS connection ", STS_RLOG_TLS_TRUSTED },
        { "Untrusted TLS connection ", STS_RLOG_TLS_UNTRUSTED },
        { "Anonymous TLS connection ", STS_RLOG_TLS_ANONYMOUS },
    };
    sts_cur s = m, qidc;
    const char *host, *ip;
    conn *c;

    for (size_t i = 0; i < sizeof(summaries) / sizeof(summaries[0]); i++) {
        if (!sts_cur_take_lit(&s, summaries[i].lit))
            continue;
        if ((!sts_cur_take_lit(&s, "established to ") && !sts_cur_take_lit(&s, "reused to ")) ||
            !take_namaddr(r, &s, &host, &ip) || !sts_cur_take_char(&s, ':'))
            return r->nomem ? STS_RLOG_POSTFIX : sts_rlog_malformed(r, "bad Postfix TLS line", m);
        sts_rlog_node_of(p->service)->logs_tls = true;
        r->st.tls_lines++;
        c = sts_rlog_conn_cur(p);
        /* The verification failure logged just before belongs to it. */
        if (c == NULL || c->qid != 0 || c->tls != STS_RLOG_TLS_NONE || !c->verify_failed ||
            !sts_rlog_same_relay(c, host, ip))
            c = sts_rlog_conn_new(r, p, t, host, ip);
        c->tls = (uint8_t)summaries[i].tls;
        /* At level "may" Postfix logs no reason for an unverified chain:
         * its own verdict is the failure-reason-code. */
        if ((summaries[i].tls == STS_RLOG_TLS_UNTRUSTED ||
             summaries[i].tls == STS_RLOG_TLS_ANONYMOUS) &&
            c->detail[0] == '\0' &&
            (c->detail = sts_rlog_intern(r, summaries[i].lit, strlen(summaries[i].lit) - 1)) ==
                NULL)
            c->detail = "";
        return STS_RLOG_POSTFIX;
    }
    s = m;
    if (!sts_cur_take_lit(&s, "server "))
        (void)sts_cur_take_lit(&s, "CA ");
    if (sts_cur_take_lit(&s, "certificate verification failed for ")) {
        if (!take_namaddr(r, &s, &host, &ip) || !sts_cur_take_lit(&s, ": "))
            return r->nomem ? STS_RLOG_POSTFIX
                            : sts_rlog_malformed(r, "bad Postfix verification line", m);
        c = sts_rlog_conn_cur(p);
        if (c == NULL || c->qid != 0 || c->tls != STS_RLOG_TLS_NONE ||
            !sts_rlog_same_relay(c, host, ip))
            c = sts_rlog_conn_new(r, p, t, host, ip);
        if (!c->verify_failed) {
            c->verify_failed = true;
            c->rt = sts_rlog_reason_rt(s);
            if ((c->detail = sts_rlog_intern_quoted(r, s.p, s.len)) == NULL)
                c->detail = "";
        }
        return STS_RLOG_POSTFIX;
    }
    s = m;
    if (sts_cur_take_lit(&s, "SSL_connect error to ")) {
        if (!take_namaddr(r, &s, &host, &ip) || !sts_cur_take_lit(&s, ": "))
            return r->nomem ? STS_RLOG_POSTFIX
                            : sts_rlog_malformed(r, "bad Postfix SSL_connect line", m);
        c = sts_rlog_conn_cur(p);
        if (c == NULL || c->qid != 0 || c->tls != STS_RLOG_TLS_NONE ||
            !sts_rlog_same_relay(c, host, ip))
            c = sts_rlog_conn_new(r, p, t, host, ip);
        c->tls = STS_RLOG_TLS_FAILED;
        if (c->detail[0] == '\0' && (c->detail = sts_rlog_intern_quoted(r, s.p, s.len)) == NULL)
            c->detail = "";
        return STS_RLOG_POSTFIX;
    }
    s = m;
    if (!sts_rlog_take_qid(&s, &qidc))
        return STS_RLOG_IGNORED;
    if (sts_cur_take_lit(&s, "Cannot start TLS: handshake failure")) {
        uint64_t qid = sts_rlog_qid_hash(qidc);

        c = sts_rlog_conn_cur(p);
        if (c == NULL || c->tls != STS_RLOG_TLS_FAILED || (c->qid != 0 && c->qid != qid)) {
            c = sts_rlog_conn_new(r, p, t, "", "");
            c->tls = STS_RLOG_TLS_FAILED;
        }
        /* The plaintext retry on the same delivery follows: it inherits this. */
        for (size_t i = 0; i < p->nconn; i++)
            if (p->c[i].qid == 0)
                p->c[i].qid = qid;
        if (c->detail[0] == '\0')
            c->detail = "Cannot start TLS: handshake failure";
        return STS_RLOG_POSTFIX;
    }
    if (sts_cur_take_lit(&s, "to="))
        return postfix_delivery(r, p, t, qidc, m, sts_cur_make(s.p - 3, s.len + 3));
    return STS_RLOG_IGNORED;
}
