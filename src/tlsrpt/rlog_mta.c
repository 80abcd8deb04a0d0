/*
 * rlog_mta.c - what the Postfix and Sendmail parsers share: the MTA
 * processes followed (host + PID, least recently used dropped first),
 * their SMTP connections, and the delivery attempts made of them, one per
 * connection, recipient domain and queue id, each with the RFC 8460 4.3
 * result type of its connection's TLS outcome.  The rules that tie TLS
 * lines and delivery lines into connections are under "Connections" at
 * the top of rlog.c.
 */
#include "tlsrpt/rlog.h"

#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "tlsrpt/rlog_impl.h"

const char sts_rlog_rt_starttls[] = "starttls-not-supported";
const char sts_rlog_rt_host[] = "certificate-host-mismatch";
const char sts_rlog_rt_expired[] = "certificate-expired";
const char sts_rlog_rt_untrusted[] = "certificate-not-trusted";
const char sts_rlog_rt_validation[] = "validation-failure";

/* ---------------------------------------------------- result-type maps */

/* The reasons of Postfix's tls_verify.c (after "certificate verification
 * failed for H[A]:P: ") and OpenSSL's X509_verify_cert_error_string
 * (Postfix "num=N:TEXT", Sendmail reason= and verifymsg=).  Matched at the
 * start only: "untrusted issuer /CN=..." goes on with the server's own
 * words, which must not choose the result type. */
static const struct {
    const char *start;
    const char *rt;
} reason_map[] = {
    { "certificate has expired", sts_rlog_rt_expired },
    { "certificate not yet valid", sts_rlog_rt_expired },
    { "certificate is not yet valid", sts_rlog_rt_expired },
    { "format error in certificate's notafter field", sts_rlog_rt_expired },
    { "format error in certificate's notbefore field", sts_rlog_rt_expired },
    { "hostname mismatch", sts_rlog_rt_host },
    { "name mismatch", sts_rlog_rt_host },
    { "subject name mismatch", sts_rlog_rt_host },
    { "untrusted issuer", sts_rlog_rt_untrusted },
    { "self-signed certificate", sts_rlog_rt_untrusted },
    { "self signed certificate", sts_rlog_rt_untrusted },
    { "not trusted by local or tlsa policy", sts_rlog_rt_untrusted },
    { "certificate not trusted", sts_rlog_rt_untrusted },
    { "certificate rejected", sts_rlog_rt_untrusted },
    { "unable to get local issuer certificate", sts_rlog_rt_untrusted },
    { "unable to get issuer certificate", sts_rlog_rt_untrusted },
    { "unable to verify the first certificate", sts_rlog_rt_untrusted },
};

const char *sts_rlog_reason_rt(sts_cur why)
{
    sts_cur n;

    /* Postfix's catch-all "num=N:OpenSSL text". */
    if (sts_cur_take_lit(&why, "num=") && (!sts_cur_take_while(&why, sts_is_digit, &n) ||
                                           !sts_cur_take_char(&why, ':')))
        return sts_rlog_rt_validation;
    for (size_t i = 0; i < sizeof(reason_map) / sizeof(reason_map[0]); i++) {
        size_t len = strlen(reason_map[i].start);

        if (why.len >= len && sts_mem_eq_nocase(why.p, reason_map[i].start, len))
            return reason_map[i].rt;
    }
    return sts_rlog_rt_validation;
}

static const char *conn_rt(const conn *c)
{
    switch ((sts_rlog_tls)c->tls) {
    case STS_RLOG_TLS_VERIFIED:
    case STS_RLOG_TLS_TRUSTED:
    case STS_RLOG_TLS_NONE:
        return NULL;
    case STS_RLOG_TLS_UNTRUSTED:
        return c->rt != NULL ? c->rt : sts_rlog_rt_untrusted;
    case STS_RLOG_TLS_ANONYMOUS:
    case STS_RLOG_TLS_FAILED:
        return c->rt != NULL ? c->rt : sts_rlog_rt_validation;
    case STS_RLOG_TLS_NOT_OFFERED:
    case STS_RLOG_TLS_PLAINTEXT:
        return sts_rlog_rt_starttls;
    }
    return sts_rlog_rt_validation;
}

/* ------------------------------------------------------ process states */

static size_t pid_bucket(const char *host, uint32_t pid, uint8_t kind)
{
    uintptr_t h = (uintptr_t)host * 0x9E3779B97F4A7C15ull;

    return (size_t)((h ^ (pid * 2654435761u) ^ kind) % PID_BUCKETS);
}

static void lru_unlink(sts_rlog *r, pidstate *p)
{
    if (p->prev != NULL)
        p->prev->next = p->next;
    else
        r->lru_head = p->next;
    if (p->next != NULL)
        p->next->prev = p->prev;
    else
        r->lru_tail = p->prev;
    p->prev = p->next = NULL;
}

static void lru_front(sts_rlog *r, pidstate *p)
{
    p->next = r->lru_head;
    p->prev = NULL;
    if (r->lru_head != NULL)
        r->lru_head->prev = p;
    r->lru_head = p;
    if (r->lru_tail == NULL)
        r->lru_tail = p;
}

static void pid_drop(sts_rlog *r, pidstate *p)
{
    pidstate **pp = &r->ph[pid_bucket(p->host, p->pid, p->kind)];

    while (*pp != NULL && *pp != p)
        pp = &(*pp)->hnext;
    if (*pp == p)
        *pp = p->hnext;
    lru_unlink(r, p);
    for (size_t i = 0; i < p->nconn; i++)
        if (p->c[i].qid == 0 && p->c[i].tls != STS_RLOG_TLS_NONE)
            r->st.dropped++; /* a connection never tied to a delivery */
    free(p);
    r->npid--;
}

pidstate *sts_rlog_pid_get(sts_rlog *r, const char *host, const char *service, uint32_t pid,
                           uint8_t kind)
{
    size_t b = pid_bucket(host, pid, kind);
    pidstate *p;

    if (r->ph == NULL && (r->ph = calloc(PID_BUCKETS, sizeof(*r->ph))) == NULL) {
        r->nomem = true;
        return NULL;
    }
    for (p = r->ph[b]; p != NULL; p = p->hnext)
        if (p->host == host && p->pid == pid && p->kind == kind) {
            lru_unlink(r, p);
            lru_front(r, p);
            p->service = service;
            return p;
        }
    if (r->npid >= PIDS_MAX)
        pid_drop(r, r->lru_tail);
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        r->nomem = true;
        return NULL;
    }
    p->host = host;
    p->service = service;
    p->pid = pid;
    p->kind = kind;
    p->hnext = r->ph[b];
    r->ph[b] = p;
    lru_front(r, p);
    r->npid++;
    return p;
}

conn *sts_rlog_conn_cur(pidstate *p)
{
    return p->nconn > 0 ? &p->c[p->nconn - 1] : NULL;
}

/* Forget connections whose delivery is over (bound ones), except keep. */
void sts_rlog_conn_purge_bound(pidstate *p, const conn *keep)
{
    size_t j = 0;

    for (size_t i = 0; i < p->nconn; i++)
        if (p->c[i].qid == 0 || &p->c[i] == keep)
            p->c[j++] = p->c[i];
    p->nconn = j;
}

/* A new connection at the end of the list: the ones already tied to a
 * delivery are over; if the list is full, the oldest goes. */
conn *sts_rlog_conn_new(sts_rlog *r, pidstate *p, int64_t t, const char *host, const char *ip)
{
    conn *c;

    sts_rlog_conn_purge_bound(p, NULL);
    if (p->nconn == CONNS_MAX) {
        if (p->c[0].tls != STS_RLOG_TLS_NONE)
            r->st.dropped++;
        memmove(&p->c[0], &p->c[1], (CONNS_MAX - 1) * sizeof(p->c[0]));
        p->nconn--;
    }
    c = &p->c[p->nconn++];
    memset(c, 0, sizeof(*c));
    c->time = t;
    c->host = host;
    c->ip = ip;
    c->detail = "";
    return c;
}

bool sts_rlog_same_relay(const conn *c, const char *host, const char *ip)
{
    if (c->ip[0] != '\0' && ip[0] != '\0')
        return c->ip == ip;
    if (c->host[0] != '\0' && host[0] != '\0')
        return c->host == host;
    return true;
}

bool sts_rlog_rcpt_seen(const conn *c, uint64_t h)
{
    for (size_t i = 0; i < c->nrcpt; i++)
        if (c->rcpt[i] == h)
            return true;
    return false;
}

/* ----------------------------------------------------------- attempts */

static void add_attempt(sts_rlog *r, conn *c, uint64_t qid, sts_cur qtext, const char *domain,
                        int64_t t, bool sent, const char *service)
{
    att *a, *na;

    for (size_t i = 0; i < c->ndom; i++)
        if (c->dom[i] == domain)
            return; /* this connection already counts for the domain */
    if (c->ndom < CONN_DOMAINS)
        c->dom[c->ndom++] = domain;
    if (r->na - r->ahead >= ATTEMPTS_MAX) {
        r->st.dropped++;
        return;
    }
    if ((na = sts_array_reserve(r->a, r->na, &r->capa, 256, sizeof(*na))) == NULL) {
        r->nomem = true;
        return;
    }
    r->a = na;
    a = &r->a[r->na++];
    a->time = t;
    a->qid = qid;
    memcpy(a->qtext, qtext.p, qtext.len); /* sts_rlog_take_qid bounds it */
    a->qtext[qtext.len] = '\0';
    a->domain = domain;
    a->host = c->host;
    a->ip = c->ip;
    a->detail = c->detail;
    a->service = service;
    if (c->tls == STS_RLOG_TLS_NONE && c->verify_failed) {
        /* "Server certificate not verified" without its TLS line. */
        a->tls = STS_RLOG_TLS_UNTRUSTED;
        a->rt = c->rt != NULL ? c->rt : sts_rlog_rt_validation;
    } else {
        a->tls = c->tls;
        a->rt = conn_rt(c);
    }
    a->sent = sent;
    r->st.attempts++;
}

/* The recipient domain of "<user@domain>" (brackets optional), normalised;
 * NULL when there is none usable (a local name, an address literal). */
static const char *rcpt_domain(sts_rlog *r, sts_cur addr)
{
    char dom[STS_DOMAIN_MAX + 1];
    size_t at = SIZE_MAX;

    if (addr.len > 0 && addr.p[0] == '<') {
        addr.p++;
        addr.len--;
    }
    if (addr.len > 0 && addr.p[addr.len - 1] == '>')
        addr.len--;
    for (size_t i = 0; i < addr.len; i++)
        if (addr.p[i] == '@')
            at = i;
    if (at == SIZE_MAX || at + 1 >= addr.len ||
        sts_domain_normalize(addr.p + at + 1, addr.len - at - 1, dom, NULL) != STS_OK)
        return NULL;
    return sts_rlog_intern(r, dom, strlen(dom));
}

/* Tie a delivery line's recipient to connection c (and the connections
 * the same delivery made before it, to other MX hosts).  Returns c, which
 * may have moved in p->c. */
conn *sts_rlog_deliver(sts_rlog *r, pidstate *p, conn *c, sts_cur qtext, sts_cur addr,
                       int64_t t, bool sent)
{
    uint64_t qid = sts_rlog_qid_hash(qtext);
    const char *domain = rcpt_domain(r, addr);
    uint64_t h = sts_rlog_hash_bytes(addr.p, addr.len);
    size_t j = 0;

    /* Earlier connections still waiting belong to this delivery, unless
     * they are so old that their own delivery line must be missing. */
    for (size_t i = 0; i < p->nconn; i++) {
        if (p->c[i].qid == 0 && &p->c[i] != c && t - p->c[i].time > CONN_STALE) {
            if (p->c[i].tls != STS_RLOG_TLS_NONE || p->c[i].verify_failed)
                r->st.unfinished++;
            continue;
        }
        if (&p->c[i] == c)
            c = &p->c[j];
        p->c[j++] = p->c[i];
    }
    p->nconn = j;
    for (size_t i = 0; i < p->nconn; i++)
        if (p->c[i].qid == 0)
            p->c[i].qid = qid;
    if (c->nrcpt < CONN_RCPTS)
        c->rcpt[c->nrcpt++] = h;
    if (domain == NULL)
        return c;
    for (size_t i = 0; i < p->nconn; i++)
        if (p->c[i].qid == qid)
            add_attempt(r, &p->c[i], qid, qtext, domain, t, sent && &p->c[i] == c, p->service);
    return c;
}
