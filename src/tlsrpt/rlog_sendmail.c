/*
 * rlog_sendmail.c - Sendmail lines (S1-S5 at the top of rlog.c) into the
 * connections and attempts of rlog_mta.c: STARTTLS=client and its
 * ${verify} open a connection and say how its TLS went, the reason lines
 * and tls_server refine it, the delivery lines tie it to a queue id and
 * recipients (also across Sendmail's connection cache), and the words
 * logged give the RFC 8460 4.3 result type.
 */
#include "tlsrpt/rlog.h"

#include <stdio.h>
#include <string.h>

#include "base/buf.h"
#include "tlsrpt/rlog_impl.h"

/* Sendmail "NAME[.]", "[IP]", "NAME. [IP]", "[IP] [IP] (may be forged)". */
static bool parse_sm_relay(sts_rlog *r, sts_cur v, const char **host, const char **ip)
{
    sts_cur w;

    *host = "";
    *ip = "";
    if (!sts_cur_take_while(&v, sts_rlog_is_not_space, &w))
        return false;
    if (w.len >= 2 && w.p[0] == '[' && w.p[w.len - 1] == ']') {
        *ip = sts_rlog_intern_ip(r, sts_cur_make(w.p + 1, w.len - 2));
    } else {
        *host = sts_rlog_intern_host(r, w);
    }
    if (*host == NULL || *ip == NULL)
        return false;
    if (sts_cur_take_lit(&v, " [") && sts_cur_take_until(&v, ']', &w) && (*ip)[0] == '\0' &&
        (*ip = sts_rlog_intern_ip(r, w)) == NULL)
        return false;
    return true;
}

/* Sendmail ${verify}. */
static bool sm_verify(sts_cur w, uint8_t *tls, const char **rt)
{
    static const struct {
        const char *word;
        sts_rlog_tls tls;
        const char *rt;
    } map[] = {
        { "OK", STS_RLOG_TLS_TRUSTED, NULL },
        { "TRUSTED", STS_RLOG_TLS_TRUSTED, NULL },
        { "DANE_PASS", STS_RLOG_TLS_VERIFIED, NULL },
        { "FAIL", STS_RLOG_TLS_UNTRUSTED, NULL },
        { "DANE_FAIL", STS_RLOG_TLS_UNTRUSTED, sts_rlog_rt_validation },
        { "NO", STS_RLOG_TLS_ANONYMOUS, sts_rlog_rt_validation },
        { "NOT", STS_RLOG_TLS_ANONYMOUS, sts_rlog_rt_validation },
        { "NONE", STS_RLOG_TLS_NOT_OFFERED, sts_rlog_rt_starttls },
        { "DANE_NOTLS", STS_RLOG_TLS_NOT_OFFERED, sts_rlog_rt_starttls },
        { "TEMP", STS_RLOG_TLS_FAILED, sts_rlog_rt_validation },
        { "DANE_TEMP", STS_RLOG_TLS_FAILED, sts_rlog_rt_validation },
        { "PROTOCOL", STS_RLOG_TLS_FAILED, sts_rlog_rt_validation },
        { "SOFTWARE", STS_RLOG_TLS_FAILED, sts_rlog_rt_validation },
    };

    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (sts_cur_eq(&w, map[i].word)) {
            *tls = (uint8_t)map[i].tls;
            *rt = map[i].rt;
            return true;
        }
    return false;
}

/* Sendmail's to= list: addresses ("<a@b>" or bare "user", "a@b")
 * separated by ',', possibly cut by Sendmail with "..." at the end.  The
 * addresses are the sender's text, taken by their grammar
 * (sts_rlog_take_addr), so that a quoted local part holding ", relay=..."
 * stays inside its address.  *list is the list, *rest what follows it. */
static bool sm_take_to_list(sts_cur *f, sts_cur *list)
{
    sts_cur s = *f, a;
    const char *start = s.p;

    for (;;) {
        if (sts_cur_take_lit(&s, "..."))
            break;
        if (!sts_rlog_take_addr(&s, s.len > 0 && s.p[0] == '<', &a) || a.len == 0)
            return false;
        /* ", " ends the list: the next field follows. */
        if (s.len < 2 || s.p[0] != ',' || s.p[1] == ' ')
            break;
        (void)sts_cur_take_char(&s, ',');
    }
    *list = sts_cur_make(start, (size_t)(s.p - start));
    *f = s;
    return true;
}

/* The next address of a list sm_take_to_list accepted; false at its end
 * (or at Sendmail's "..."). */
static bool sm_next_addr(sts_cur *list, sts_cur *addr)
{
    if (list->len == 0 || sts_cur_take_lit(list, "...") ||
        !sts_rlog_take_addr(list, list->p[0] == '<', addr))
        return false;
    (void)sts_cur_take_char(list, ',');
    return true;
}

static sts_rlog_line_kind sendmail_delivery(sts_rlog *r, pidstate *p, int64_t t, sts_cur qtext,
                                            sts_cur line, sts_cur f)
{
    sts_cur key, val, to, relay = { NULL, 0 }, stat = { NULL, 0 }, mailer = { NULL, 0 };
    sts_cur word, addr, first, rest, ctl;
    const char *host, *ip;
    bool sent;
    conn *c;
    uint64_t qid = sts_rlog_qid_hash(qtext);

    if (!sts_cur_take_lit(&f, "to=") || !sm_take_to_list(&f, &to) ||
        (f.len > 0 && !sts_cur_take_lit(&f, ", ")))
        return sts_rlog_malformed(r, "Sendmail delivery line with a bad to= list", line);
    /* ctladdr= is an address too (with " (uid/gid)" after it). */
    if (sts_cur_take_lit(&f, "ctladdr=")) {
        if (!sts_rlog_take_addr(&f, f.len > 0 && f.p[0] == '<', &ctl) ||
            !sts_cur_take_until(&f, ',', &val))
            return sts_rlog_malformed(r, "Sendmail delivery line with a bad ctladdr=", line);
        (void)sts_cur_take_lit(&f, ", ");
    }
    /* The rest is Sendmail's own fields; stat=, which quotes the remote
     * server, is the rest of the line. */
    while (sts_rlog_take_field(&f, "stat", &key, &val)) {
        if (sts_cur_eq(&key, "relay"))
            relay = val;
        else if (sts_cur_eq(&key, "stat"))
            stat = val;
        else if (sts_cur_eq(&key, "mailer"))
            mailer = val;
    }
    if (stat.p == NULL)
        return sts_rlog_malformed(r, "Sendmail delivery line without to= or stat=", line);
    if (relay.p == NULL || sts_cur_eq(&mailer, "local") || sts_cur_eq(&mailer, "prog") ||
        sts_cur_eq(&mailer, "*file*") || sts_cur_eq(&mailer, "*include*"))
        return STS_RLOG_IGNORED;
    if (!parse_sm_relay(r, relay, &host, &ip))
        return r->nomem ? STS_RLOG_SENDMAIL : sts_rlog_malformed(r, "bad Sendmail relay=", line);
    if (ip[0] == '\0')
        return STS_RLOG_IGNORED; /* no connection made */
    if (!sts_cur_take_while(&stat, sts_is_alpha, &word))
        return sts_rlog_malformed(r, "bad Sendmail stat=", line);
    sent = sts_cur_eq(&word, "Sent");
    rest = to;
    if (!sm_next_addr(&rest, &first))
        first = to;
    /* Whether STARTTLS was offered comes from Sendmail's own tls_server
     * line (S4, arg1=NONE, which opened the connection), never from
     * stat=, which quotes the server. */
    p->pend_rt = p->pend_detail = NULL;
    c = sts_rlog_conn_cur(p);
    if (c != NULL && sts_rlog_same_relay(c, host, ip) && c->qid == 0 &&
               t - c->time <= CONN_STALE) {
        /* the first message on the connection the STARTTLS line opened */
    } else if (c != NULL && sts_rlog_same_relay(c, host, ip) && c->qid == qid &&
               !sts_rlog_rcpt_seen(c, sts_rlog_hash_bytes(first.p, first.len))) {
        /* another recipient list on the same connection */
    } else if (c != NULL && sts_rlog_same_relay(c, host, ip) && c->qid != qid &&
               c->tls != STS_RLOG_TLS_NONE) {
        /* Sendmail's connection cache: the next message on it. */
        sts_rlog_conn_purge_bound(p, c);
        c = sts_rlog_conn_cur(p);
        if (c == NULL)
            return STS_RLOG_SENDMAIL; /* cannot happen: c was kept */
        c->qid = 0;
        c->ndom = 0;
        c->nrcpt = 0;
    } else {
        c = sts_rlog_conn_new(r, p, t, host, ip);
    }
    if (c->host[0] == '\0')
        c->host = host;
    if (c->ip[0] == '\0')
        c->ip = ip;
    if (c->tls != STS_RLOG_TLS_NONE && !sent && c->detail[0] == '\0' &&
        (c->detail = sts_rlog_intern_quoted(r, stat.p, stat.len)) == NULL)
        c->detail = "";
    /* The recipient list: "<a>,<b>" (or bare addresses). */
    while (sm_next_addr(&to, &addr))
        c = sts_rlog_deliver(r, p, c, qtext, addr, t, sent);
    return STS_RLOG_SENDMAIL;
}

sts_rlog_line_kind sts_rlog_sendmail_line(sts_rlog *r, pidstate *p, int64_t t, sts_cur m)
{
    sts_cur s = m, key, val, qidc;
    const char *host = "", *ip = "";
    conn *c;
    size_t pos;

    if (sts_cur_take_lit(&s, "STARTTLS=client, relay=")) {
        sts_cur verify = { NULL, 0 }, relay;
        uint8_t tls;
        const char *rt;

        s = sts_cur_make(s.p - 6, s.len + 6); /* back to "relay=" */
        relay.p = NULL;
        relay.len = 0;
        while (sts_rlog_take_field(&s, "", &key, &val)) {
            if (sts_cur_eq(&key, "relay"))
                relay = val;
            else if (sts_cur_eq(&key, "verify"))
                verify = val;
        }
        if (relay.p == NULL || verify.p == NULL || !sm_verify(verify, &tls, &rt) ||
            !parse_sm_relay(r, relay, &host, &ip))
            return r->nomem ? STS_RLOG_SENDMAIL
                            : sts_rlog_malformed(r, "bad Sendmail STARTTLS line", m);
        sts_rlog_node_of(p->service)->logs_tls = true;
        r->st.tls_lines++;
        c = sts_rlog_conn_new(r, p, t, host, ip);
        c->tls = tls;
        c->rt = rt;
        if (tls == STS_RLOG_TLS_UNTRUSTED && rt == NULL && p->pend_rt != NULL) {
            c->rt = p->pend_rt;
            c->detail = p->pend_detail;
        } else if (tls != STS_RLOG_TLS_TRUSTED && tls != STS_RLOG_TLS_VERIFIED) {
            /* No reason logged (yet): Sendmail's own verdict is the
             * failure-reason-code; a verifymsg line may still refine it. */
            char w[40];

            (void)snprintf(w, sizeof(w), "verify=%.*s", (int)verify.len, verify.p);
            if ((c->detail = sts_rlog_intern(r, w, strlen(w))) == NULL)
                c->detail = "";
        }
        p->pend_rt = p->pend_detail = NULL;
        return STS_RLOG_SENDMAIL;
    }
    s = m;
    if (sts_cur_take_lit(&s, "STARTTLS=client, cert-subject=")) {
        /* The subject and issuer are the server's (xtext-encoded, but the
         * last field is Sendmail's, an OpenSSL verify message). */
        if (!sts_rlog_cur_rfind(&s, ", verifymsg=", &pos))
            return STS_RLOG_IGNORED;
        val = sts_cur_make(s.p + pos + 12, s.len - pos - 12);
        c = sts_rlog_conn_cur(p);
        if (c != NULL && c->qid == 0 && c->tls == STS_RLOG_TLS_UNTRUSTED && c->rt == NULL &&
            !sts_cur_eq(&val, "ok") && !sts_cur_eq(&val, "OK")) {
            c->rt = sts_rlog_reason_rt(val);
            if ((c->detail = sts_rlog_intern_quoted(r, val.p, val.len)) == NULL)
                c->detail = "";
        }
        return STS_RLOG_SENDMAIL;
    }
    s = m;
    if (sts_cur_take_lit(&s, "STARTTLS: TLS cert verify: ")) {
        /* "depth=N SUBJECT, state=N, reason=TEXT": SUBJECT is the
         * server's certificate (X509_NAME_oneline, commas and '=' kept),
         * TEXT an OpenSSL verify message: the last ", reason=" is ours. */
        if (!sts_rlog_cur_rfind(&s, ", reason=", &pos))
            return sts_rlog_malformed(r, "Sendmail cert verify line without reason=", m);
        val = sts_cur_make(s.p + pos + 9, s.len - pos - 9);
        if (p->pend_rt == NULL) {
            p->pend_rt = sts_rlog_reason_rt(val);
            if ((p->pend_detail = sts_rlog_intern_quoted(r, val.p, val.len)) == NULL)
                p->pend_rt = NULL;
        }
        return STS_RLOG_SENDMAIL;
    }
    s = m;
    if (sts_cur_take_lit(&s, "ruleset=tls_server, ")) {
        sts_cur arg1 = { NULL, 0 }, relay = { NULL, 0 }, reject = { NULL, 0 };
        uint8_t tls;
        const char *rt;

        while (sts_rlog_take_field(&s, "reject", &key, &val)) {
            if (sts_cur_eq(&key, "arg1"))
                arg1 = val;
            else if (sts_cur_eq(&key, "relay"))
                relay = val;
            else if (sts_cur_eq(&key, "reject"))
                reject = val;
        }
        if (arg1.p == NULL || relay.p == NULL || !parse_sm_relay(r, relay, &host, &ip))
            return r->nomem ? STS_RLOG_SENDMAIL
                            : sts_rlog_malformed(r, "bad Sendmail tls_server line", m);
        if (!sm_verify(arg1, &tls, &rt))
            return STS_RLOG_IGNORED;
        c = sts_rlog_conn_cur(p);
        if (c == NULL || c->qid != 0 || c->tls == STS_RLOG_TLS_NONE ||
            !sts_rlog_same_relay(c, host, ip)) {
            /* No STARTTLS line for it: STARTTLS was not even tried. */
            c = sts_rlog_conn_new(r, p, t, host, ip);
            c->tls = tls;
            c->rt = rt;
        }
        if (c->detail[0] == '\0' && reject.p != NULL &&
            (c->detail = sts_rlog_intern_quoted(r, reject.p, reject.len)) == NULL)
            c->detail = "";
        return STS_RLOG_SENDMAIL;
    }
    s = m;
    if (sts_rlog_take_qid(&s, &qidc) && sts_cur_take_lit(&s, "from=")) {
        /* "from=ADDR, size=.., ..., msgid=<..>, ...": our own report mail
         * is known by its Message-ID (sts_rlog_set_own_reports). */
        sts_cur from;

        if (r->own_submitter == NULL)
            return STS_RLOG_IGNORED;
        if (!sts_rlog_take_addr(&s, s.len > 0 && s.p[0] == '<', &from) ||
            !sts_cur_take_lit(&s, ", "))
            return STS_RLOG_IGNORED;
        while (sts_rlog_take_field(&s, "", &key, &val))
            if (sts_cur_eq(&key, "msgid")) {
                sts_rlog_note_msgid(r, qidc, val);
                return STS_RLOG_SENDMAIL;
            }
        return STS_RLOG_IGNORED;
    }
    s = m;
    if (sts_rlog_take_qid(&s, &qidc) && sts_cur_take_lit(&s, "to="))
        return sendmail_delivery(r, p, t, qidc, m, sts_cur_make(s.p - 3, s.len + 3));
    return STS_RLOG_IGNORED;
}
