/*
 * dns.c - asynchronous DNS for MTA-STS discovery with c-ares 1.18
 * (RFC 8461 3.1 TXT discovery, 3.3 address of the policy host, 4 MX).
 *
 * c-ares 1.18 has no generic record API, so answers are parsed with the
 * ares_parse_*_reply functions and a small bounded walker that only
 * extracts CNAME targets.  TXT uses ares_parse_txt_reply_ext, whose
 * record_start flag tells where one record's strings end and the next
 * record begins (RFC 8461 3.1: the strings of one record are joined).
 *
 * Queries are built here (ares_create_query) and sent with ares_send, not
 * ares_query, because c-ares 1.18 cannot ask for the AD bit: the header
 * flags byte gets AD set (RFC 6840 5.7), and the answer's AD bit tells
 * whether a validating resolver validated it (RFC 4035 3.2.3), for DANE
 * (RFC 7672 2.2, RFC 8461 2).  ares_send takes the query id from the
 * buffer, so ids are drawn here from getrandom() and kept unique among the
 * queries in flight, as ares_query would.  TLSA answers have no c-ares
 * parser in 1.18: a bounded walker counts the records (RFC 6698 2.1).
 */
#include "sts/dns.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <ares.h>

#include "base/buf.h"
#include "sts/domain.h"

#define DNS_T_A 1
#define DNS_T_CNAME 5
#define DNS_T_MX 15
#define DNS_T_TXT 16
#define DNS_T_AAAA 28
#define DNS_T_TLSA 52
#define DNS_C_IN 1
#define DNS_FLAG_AD 0x20     /* in header byte 3 */
#define DNS_EDNS_SIZE 1280   /* as c-ares' ARES_FLAG_EDNS default */
#define DNS_ID_POOL 64
#define DNS_NAME_MAX 255
#define DNS_MAX_CNAMES_SCANNED 16

struct sts_dns {
    ares_channel ch;
    size_t pending;
    bool closing; /* set while ares_destroy runs: no new queries */
    uint8_t busy[65536 / 8]; /* query ids in flight */
    uint16_t pool[DNS_ID_POOL];
    size_t pool_left;
    uint64_t fallback; /* xorshift state, only if getrandom() fails */
};

typedef enum qkind { Q_TXT, Q_MX, Q_A, Q_AAAA, Q_TLSA } qkind;

struct addrs_job;

/* One logical query; survives CNAME hops (name is replaced by the target). */
typedef struct query {
    sts_dns *dns;
    qkind kind;
    int hops;
    char name[DNS_NAME_MAX + 1];
    void *cb;
    void *arg;
    struct addrs_job *job; /* Q_A / Q_AAAA belong to a job */
    unsigned short qid;    /* of the query in flight */
    bool insecure;         /* an answer on the way lacked the AD bit */
} query;

typedef struct addrs_job {
    sts_dns_addrs_cb *cb;
    void *arg;
    int outstanding;
    sts_status st[2]; /* A, AAAA */
    char why[2][STS_WHY_MAX];
    size_t n;
    char addr[STS_DNS_MAX_ADDRS][INET6_ADDRSTRLEN];
} addrs_job;

static int qtype_of(qkind k)
{
    switch (k) {
    case Q_TXT:
        return DNS_T_TXT;
    case Q_MX:
        return DNS_T_MX;
    case Q_A:
        return DNS_T_A;
    case Q_AAAA:
        return DNS_T_AAAA;
    case Q_TLSA:
        return DNS_T_TLSA;
    }
    return DNS_T_A;
}

static const char *qtype_name(qkind k)
{
    switch (k) {
    case Q_TXT:
        return "TXT";
    case Q_MX:
        return "MX";
    case Q_A:
        return "A";
    case Q_AAAA:
        return "AAAA";
    case Q_TLSA:
        return "TLSA";
    }
    return "?";
}

sts_status sts_dns_new(const sts_dns_opts *opts, sts_dns **out, sts_why *why)
{
    struct ares_options ao;
    int mask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_RCVBUF;
    sts_dns *dns = NULL;
    sts_status st = STS_NOMEM;
    int rc;

    *out = NULL;
    rc = ares_library_init(ARES_LIB_INIT_ALL);
    if (rc != ARES_SUCCESS) {
        sts_why_set(why, "c-ares initialisation failed: %s", ares_strerror(rc));
        return STS_TEMPFAIL;
    }
    dns = calloc(1, sizeof(*dns));
    if (dns == NULL) {
        sts_why_set(why, "out of memory");
        goto done;
    }
    memset(&ao, 0, sizeof(ao));
    /* NOSEARCH: a policy domain is always fully qualified; never append
     * search domains from resolv.conf.  EDNS: large TXT answers fit in UDP. */
    ao.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_EDNS;
    ao.timeout = opts != NULL && opts->timeout_ms != 0 ? (int)opts->timeout_ms : 2000;
    ao.tries = opts != NULL && opts->tries != 0 ? (int)opts->tries : 2;
    /* Hundreds of answers can arrive while the loop thread is busy with TLS
     * handshakes; the default UDP buffer then drops them (seen in the
     * benchmark at 1,000 concurrent discoveries). */
    ao.socket_receive_buffer_size = 4 * 1024 * 1024;
    rc = ares_init_options(&dns->ch, &ao, mask);
    if (rc != ARES_SUCCESS) {
        st = rc == ARES_ENOMEM ? STS_NOMEM : STS_TEMPFAIL;
        sts_why_set(why, "cannot create the DNS resolver: %s", ares_strerror(rc));
        free(dns);
        dns = NULL;
        goto done;
    }
    if (opts != NULL && opts->servers != NULL && opts->servers[0] != '\0') {
        rc = ares_set_servers_ports_csv(dns->ch, opts->servers);
        if (rc != ARES_SUCCESS) {
            st = rc == ARES_ENOMEM ? STS_NOMEM : STS_PERMFAIL;
            sts_why_set(why, "bad DNS server list '%s': %s", opts->servers, ares_strerror(rc));
            ares_destroy(dns->ch);
            free(dns);
            dns = NULL;
            goto done;
        }
    }
    *out = dns;
    st = STS_OK;
done:
    if (st != STS_OK)
        ares_library_cleanup();
    return st;
}

void sts_dns_free(sts_dns *dns)
{
    if (dns == NULL)
        return;
    dns->closing = true;
    ares_destroy(dns->ch); /* runs pending callbacks with ARES_EDESTRUCTION */
    free(dns);
    ares_library_cleanup();
}

size_t sts_dns_pending(const sts_dns *dns)
{
    return dns->pending;
}

/* ------------------------------------------------------------ answer walking */

static unsigned get16(const unsigned char *p)
{
    return ((unsigned)p[0] << 8) | p[1];
}

/* Skip a (possibly compressed) name at abuf[*pos]; false if malformed. */
static bool skip_name(const unsigned char *abuf, int alen, int *pos)
{
    char *name = NULL;
    long enclen = 0;

    if (*pos >= alen || ares_expand_name(abuf + *pos, abuf, alen, &name, &enclen) != ARES_SUCCESS)
        return false;
    ares_free_string(name);
    if (enclen <= 0 || enclen > alen - *pos)
        return false;
    *pos += (int)enclen;
    return true;
}

static bool name_eq(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);

    /* c-ares prints names without the root dot; user input may have one. */
    if (la > 0 && a[la - 1] == '.')
        la--;
    if (lb > 0 && b[lb - 1] == '.')
        lb--;
    return la == lb && sts_mem_eq_nocase(a, b, la);
}

/* If the answer section aliases `owner` (directly or through a chain of
 * CNAMEs in the same answer), copy the last target into target and return
 * true.  Bounded: at most DNS_MAX_CNAMES_SCANNED aliases are considered. */
static bool answer_cname(const unsigned char *abuf, int alen, const char *owner, char *target,
                         size_t tsz)
{
    char *from[DNS_MAX_CNAMES_SCANNED] = { 0 }, *to[DNS_MAX_CNAMES_SCANNED] = { 0 };
    size_t n = 0;
    unsigned qd, an;
    int pos = 12;
    bool found = false;
    const char *cur = owner;

    if (alen < 12)
        return false;
    qd = get16(abuf + 4);
    an = get16(abuf + 6);
    for (unsigned i = 0; i < qd; i++) {
        if (!skip_name(abuf, alen, &pos) || alen - pos < 4)
            goto done;
        pos += 4;
    }
    for (unsigned i = 0; i < an && n < DNS_MAX_CNAMES_SCANNED; i++) {
        char *rrname = NULL, *rdname = NULL;
        long enclen = 0;
        unsigned type, klass, rdlen;

        if (ares_expand_name(abuf + pos, abuf, alen, &rrname, &enclen) != ARES_SUCCESS)
            goto done;
        if (enclen <= 0 || enclen > alen - pos || alen - pos - enclen < 10) {
            ares_free_string(rrname);
            goto done;
        }
        pos += (int)enclen;
        type = get16(abuf + pos);
        klass = get16(abuf + pos + 2);
        rdlen = get16(abuf + pos + 8);
        pos += 10;
        if (rdlen > (unsigned)(alen - pos)) {
            ares_free_string(rrname);
            goto done;
        }
        if (type == DNS_T_CNAME && klass == DNS_C_IN &&
            ares_expand_name(abuf + pos, abuf, alen, &rdname, &enclen) == ARES_SUCCESS) {
            from[n] = rrname;
            to[n] = rdname;
            n++;
        } else {
            ares_free_string(rrname);
        }
        pos += (int)rdlen;
    }
    /* Follow the chain from owner; the hop bound stops loops. */
    for (size_t hop = 0; hop < n; hop++) {
        bool moved = false;

        for (size_t i = 0; i < n; i++) {
            if (name_eq(from[i], cur)) {
                cur = to[i];
                moved = true;
                break;
            }
        }
        if (!moved)
            break;
    }
    if (cur != owner && strlen(cur) < tsz) {
        memcpy(target, cur, strlen(cur) + 1);
        found = true;
    }
done:
    for (size_t i = 0; i < n; i++) {
        ares_free_string(from[i]);
        ares_free_string(to[i]);
    }
    return found;
}

/* A name taken from an answer (CNAME target): letters, digits, '-', '_'
 * (service labels such as _mta-sts) and dots, at most 253 octets.  It
 * becomes the next query and reaches reason texts, so nothing else. */
static bool answer_name_ok(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)name[i];

        if (!sts_is_alnum(ch) && ch != '-' && ch != '_' && ch != '.')
            return false;
    }
    return true;
}

/* ------------------------------------------------------------ delivering results */

static void deliver_txt(query *q, sts_status st, const sts_dns_txt *res, const char *why)
{
    sts_dns_txt empty = { 0, NULL };

    ((sts_dns_txt_cb *)q->cb)(q->arg, st, res != NULL ? res : &empty, why);
}

static void deliver_mx(query *q, sts_status st, const sts_dns_mx *res, const char *why)
{
    sts_dns_mx empty = { 0, NULL, NULL, false, false };

    ((sts_dns_mx_cb *)q->cb)(q->arg, st, res != NULL ? res : &empty, why);
}

static void deliver_tlsa(query *q, sts_status st, const sts_dns_tlsa *res, const char *why)
{
    sts_dns_tlsa empty = { 0, 0, false };

    ((sts_dns_tlsa_cb *)q->cb)(q->arg, st, res != NULL ? res : &empty, why);
}

static void job_part_done(addrs_job *job, int idx, sts_status st, const char *why)
{
    sts_dns_addrs res;
    const char *ptrs[STS_DNS_MAX_ADDRS];
    sts_status fin;
    const char *fwhy = "";

    job->st[idx] = st;
    (void)snprintf(job->why[idx], sizeof(job->why[idx]), "%s", why);
    if (--job->outstanding > 0)
        return;
    for (size_t i = 0; i < job->n; i++)
        ptrs[i] = job->addr[i];
    res.n = job->n;
    res.addr = ptrs;
    if (job->n > 0) {
        fin = STS_OK;
    } else if (job->st[0] == STS_NOMEM || job->st[1] == STS_NOMEM) {
        fin = STS_NOMEM;
        fwhy = "out of memory";
    } else if (job->st[0] == STS_TEMPFAIL || job->st[1] == STS_TEMPFAIL) {
        fin = STS_TEMPFAIL;
        fwhy = job->st[0] == STS_TEMPFAIL ? job->why[0] : job->why[1];
    } else if (job->st[0] == STS_PERMFAIL || job->st[1] == STS_PERMFAIL) {
        fin = STS_PERMFAIL;
        fwhy = job->st[0] == STS_PERMFAIL ? job->why[0] : job->why[1];
    } else {
        fin = STS_NOTFOUND;
        fwhy = job->why[0];
    }
    job->cb(job->arg, fin, &res, fwhy);
    free(job);
}

static void fail(query *q, sts_status st, const char *why)
{
    switch (q->kind) {
    case Q_TXT:
        deliver_txt(q, st, NULL, why);
        break;
    case Q_MX:
        deliver_mx(q, st, NULL, why);
        break;
    case Q_TLSA:
        deliver_tlsa(q, st, NULL, why);
        break;
    case Q_A:
        job_part_done(q->job, 0, st, why);
        break;
    case Q_AAAA:
        job_part_done(q->job, 1, st, why);
        break;
    }
    free(q);
}

/* Each parse_* function handles an answer c-ares called successful: it
 * delivers the records and returns STS_OK, or returns STS_NOTFOUND when the
 * answer holds no record of the asked type (the caller then looks for a
 * CNAME to chase), or another status with a reason in why. */

/* Every record of the answer goes on, each one's strings joined (RFC 8461
 * 3.1): the RFCs discard the records of other kinds before they count
 * (RFC 8461 3.1, RFC 8460 3), so a name with hundreds of unrelated TXT
 * records (site verifications, SPF) still has its one STS or TLSRPT
 * record, and a limit on records here would answer wrongly (dropping
 * some could make two v=STSv1 records one).  The bound is the answer's
 * size: a DNS message holds at most 65535 bytes (over TCP), and its
 * joined strings are fewer.  Records and bytes are counted first, then
 * copied into two allocations of exactly that size. */
static sts_status parse_txt(query *q, const unsigned char *abuf, int alen, char *why, size_t wsz)
{
    struct ares_txt_ext *head = NULL;
    sts_txt_rr *rr = NULL;
    char *bytes = NULL;
    size_t n = 0, total = 0, off = 0;
    sts_status st;
    sts_dns_txt res;
    int rc;

    rc = ares_parse_txt_reply_ext(abuf, alen, &head);
    /* c-ares 1.18 reports success with no records when the answer holds
     * only other types (a bare CNAME): same as NODATA for our purpose. */
    if (rc == ARES_ENODATA || (rc == ARES_SUCCESS && head == NULL))
        return STS_NOTFOUND;
    if (rc != ARES_SUCCESS) {
        (void)snprintf(why, wsz, "malformed TXT answer: %s", ares_strerror(rc));
        return rc == ARES_ENOMEM ? STS_NOMEM : STS_TEMPFAIL;
    }
    for (struct ares_txt_ext *t = head; t != NULL; t = t->next) {
        if (t->record_start || n == 0)
            n++;
        total += t->length;
    }
    if (total + n > STS_DNS_MAX_TXT_BYTES) {
        (void)snprintf(why, wsz, "TXT answer of more than %d bytes", STS_DNS_MAX_TXT_BYTES);
        st = STS_PERMFAIL;
        goto done;
    }
    rr = sts_calloc_array(n, sizeof(*rr));
    bytes = malloc(total + n); /* bounded just above; + n: a NUL after each record */
    if (rr == NULL || bytes == NULL) {
        (void)snprintf(why, wsz, "out of memory");
        st = STS_NOMEM;
        goto done;
    }
    n = 0;
    for (struct ares_txt_ext *t = head; t != NULL; t = t->next) {
        if (t->record_start || n == 0) {
            if (n > 0)
                bytes[off++] = '\0';
            rr[n].data = bytes + off;
            rr[n++].len = 0;
        }
        if (t->length > 0)
            memcpy(bytes + off, t->txt, t->length);
        off += t->length;
        rr[n - 1].len += t->length;
    }
    bytes[off] = '\0';
    res.n = n;
    res.rr = rr;
    deliver_txt(q, STS_OK, &res, "");
    st = STS_OK;
done:
    free(rr);
    free(bytes);
    ares_free_data(head);
    return st;
}

static int mx_cmp(const void *a, const void *b)
{
    const struct ares_mx_reply *x = *(const struct ares_mx_reply *const *)a;
    const struct ares_mx_reply *y = *(const struct ares_mx_reply *const *)b;

    return (int)x->priority - (int)y->priority;
}

static sts_status parse_mx(query *q, const unsigned char *abuf, int alen, char *why, size_t wsz)
{
    struct ares_mx_reply *head = NULL;
    struct ares_mx_reply *sorted[STS_DNS_MAX_RECORDS];
    const char *host[STS_DNS_MAX_RECORDS];
    unsigned short pref[STS_DNS_MAX_RECORDS];
    sts_dns_mx res = { 0, host, pref, false, !q->insecure };
    size_t n = 0;
    int rc;

    rc = ares_parse_mx_reply(abuf, alen, &head);
    if (rc == ARES_ENODATA || (rc == ARES_SUCCESS && head == NULL))
        return STS_NOTFOUND;
    if (rc != ARES_SUCCESS) {
        (void)snprintf(why, wsz, "malformed MX answer: %s", ares_strerror(rc));
        return rc == ARES_ENOMEM ? STS_NOMEM : STS_TEMPFAIL;
    }
    /* Only host names go on: they are matched against policy patterns. */
    for (struct ares_mx_reply *m = head; m != NULL && n < STS_DNS_MAX_RECORDS; m = m->next)
        if (m->host[0] == '\0' || strcmp(m->host, ".") == 0 ||
            sts_hostname_valid(m->host, strlen(m->host)))
            sorted[n++] = m;
    qsort(sorted, n, sizeof(sorted[0]), mx_cmp);
    /* RFC 7505 null MX: a single record whose exchange is the root. */
    if (n == 1 && (sorted[0]->host[0] == '\0' || strcmp(sorted[0]->host, ".") == 0)) {
        res.null_mx = true;
        n = 0;
    }
    for (size_t i = 0; i < n; i++) {
        host[i] = sorted[i]->host;
        pref[i] = sorted[i]->priority;
    }
    res.n = n;
    deliver_mx(q, STS_OK, &res, "");
    ares_free_data(head);
    return STS_OK;
}

static sts_status parse_addr(query *q, const unsigned char *abuf, int alen, char *why, size_t wsz)
{
    addrs_job *job = q->job;
    int rc, naddr = STS_DNS_MAX_ADDRS;

    if (q->kind == Q_A) {
        struct ares_addrttl a[STS_DNS_MAX_ADDRS];

        rc = ares_parse_a_reply(abuf, alen, NULL, a, &naddr);
        if (rc == ARES_SUCCESS)
            for (int i = 0; i < naddr && job->n < STS_DNS_MAX_ADDRS; i++)
                if (inet_ntop(AF_INET, &a[i].ipaddr, job->addr[job->n], INET6_ADDRSTRLEN) != NULL)
                    job->n++;
    } else {
        struct ares_addr6ttl a6[STS_DNS_MAX_ADDRS];

        rc = ares_parse_aaaa_reply(abuf, alen, NULL, a6, &naddr);
        if (rc == ARES_SUCCESS)
            for (int i = 0; i < naddr && job->n < STS_DNS_MAX_ADDRS; i++)
                if (inet_ntop(AF_INET6, &a6[i].ip6addr, job->addr[job->n], INET6_ADDRSTRLEN) != NULL)
                    job->n++;
    }
    if (rc == ARES_ENODATA || (rc == ARES_SUCCESS && naddr == 0))
        return STS_NOTFOUND;
    if (rc != ARES_SUCCESS) {
        (void)snprintf(why, wsz, "malformed %s answer: %s", qtype_name(q->kind), ares_strerror(rc));
        return rc == ARES_ENOMEM ? STS_NOMEM : STS_TEMPFAIL;
    }
    job_part_done(job, q->kind == Q_A ? 0 : 1, STS_OK, "");
    return STS_OK;
}

/* TLSA records in the answer section (the owner is the queried name or an
 * alias the same answer leads to: the answer holds nothing else here). */
static sts_status parse_tlsa(query *q, const unsigned char *abuf, int alen, char *why, size_t wsz)
{
    sts_dns_tlsa res = { 0, 0, !q->insecure };
    unsigned qd, an;
    int pos = 12;

    if (alen < 12)
        goto bad;
    qd = get16(abuf + 4);
    an = get16(abuf + 6);
    for (unsigned i = 0; i < qd; i++) {
        if (!skip_name(abuf, alen, &pos) || alen - pos < 4)
            goto bad;
        pos += 4;
    }
    for (unsigned i = 0; i < an; i++) {
        unsigned type, klass, rdlen;

        if (!skip_name(abuf, alen, &pos) || alen - pos < 10)
            goto bad;
        type = get16(abuf + pos);
        klass = get16(abuf + pos + 2);
        rdlen = get16(abuf + pos + 8);
        pos += 10;
        if (rdlen > (unsigned)(alen - pos))
            goto bad;
        if (type == DNS_T_TLSA && klass == DNS_C_IN) {
            const unsigned char *rd = abuf + pos;
            unsigned dlen = rdlen >= 3 ? rdlen - 3 : 0;

            res.n++;
            /* RFC 7672 3.1: usage 2 or 3 only; RFC 6698 2.1: selector 0/1,
             * matching type 0 (full), 1 (SHA-256), 2 (SHA-512). */
            if (rdlen > 3 && (rd[0] == 2 || rd[0] == 3) && rd[1] <= 1 &&
                (rd[2] == 0 || (rd[2] == 1 && dlen == 32) || (rd[2] == 2 && dlen == 64)))
                res.usable++;
        }
        pos += (int)rdlen;
    }
    if (res.n == 0)
        return STS_NOTFOUND;
    deliver_tlsa(q, STS_OK, &res, "");
    return STS_OK;
bad:
    (void)snprintf(why, wsz, "malformed TLSA answer for %s", q->name);
    return STS_TEMPFAIL;
}

static void start(query *q);

static void on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    query *q = arg;
    char why[2 * STS_WHY_MAX]; /* room for a 255-octet name in any message */
    sts_status st;

    (void)timeouts;
    q->dns->pending--;
    why[0] = '\0';
    switch (status) {
    case ARES_SUCCESS:
        switch (q->kind) {
        case Q_TXT:
            st = parse_txt(q, abuf, alen, why, sizeof(why));
            break;
        case Q_MX:
            st = parse_mx(q, abuf, alen, why, sizeof(why));
            break;
        case Q_TLSA:
            st = parse_tlsa(q, abuf, alen, why, sizeof(why));
            break;
        default:
            st = parse_addr(q, abuf, alen, why, sizeof(why));
            break;
        }
        if (st == STS_OK) {
            free(q);
            return;
        }
        if (st != STS_NOTFOUND) {
            fail(q, st, why);
            return;
        }
        /* No record of the asked type: an alias whose target's records the
         * server did not include (e.g. an authoritative server for another
         * zone, RFC 8461 8.2 delegation).  Chase it ourselves. */
        {
            char target[DNS_NAME_MAX + 1];

            if (answer_cname(abuf, alen, q->name, target, sizeof(target))) {
                if (!answer_name_ok(target)) {
                    (void)snprintf(why, sizeof(why), "%s is an alias for an unusable name",
                                   q->name);
                    fail(q, STS_PERMFAIL, why);
                    return;
                }
                if (++q->hops > STS_DNS_MAX_CNAME) {
                    (void)snprintf(why, sizeof(why), "more than %d CNAME hops at %s",
                                   STS_DNS_MAX_CNAME, q->name);
                    fail(q, STS_PERMFAIL, why);
                    return;
                }
                memcpy(q->name, target, strlen(target) + 1);
                start(q);
                return;
            }
        }
        (void)snprintf(why, sizeof(why), "no %s record for %s (NODATA)", qtype_name(q->kind),
                       q->name);
        fail(q, STS_NOTFOUND, why);
        return;
    case ARES_ENODATA:
        (void)snprintf(why, sizeof(why), "no %s record for %s (NODATA)", qtype_name(q->kind),
                       q->name);
        fail(q, STS_NOTFOUND, why);
        return;
    case ARES_ENOTFOUND:
        (void)snprintf(why, sizeof(why), "%s does not exist (NXDOMAIN)", q->name);
        fail(q, STS_NOTFOUND, why);
        return;
    case ARES_ENOMEM:
        fail(q, STS_NOMEM, "out of memory");
        return;
    case ARES_EBADNAME:
        (void)snprintf(why, sizeof(why), "cannot query the name %s", q->name);
        fail(q, STS_PERMFAIL, why);
        return;
    default:
        /* SERVFAIL, REFUSED, timeout, connection errors, garbled answers,
         * shutdown: nobody said the record does not exist. */
        (void)snprintf(why, sizeof(why), "%s %s lookup failed: %s", q->name, qtype_name(q->kind),
                       ares_strerror(status));
        fail(q, STS_TEMPFAIL, why);
        return;
    }
}

/* A query id not in flight (a random one, as ares_query draws them). */
static bool take_id(sts_dns *dns, unsigned short *out)
{
    for (int tries = 0; tries < 64; tries++) {
        uint16_t id;

        if (dns->pool_left == 0) {
            ssize_t got = getrandom(dns->pool, sizeof(dns->pool), GRND_NONBLOCK);

            if (got == (ssize_t)sizeof(dns->pool)) {
                dns->pool_left = DNS_ID_POOL;
            } else {
                /* No entropy yet (early boot): not predictable from outside
                 * either, and never worse than a fixed id. */
                if (dns->fallback == 0)
                    dns->fallback = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uintptr_t)dns;
                for (size_t i = 0; i < DNS_ID_POOL; i++) {
                    dns->fallback ^= dns->fallback << 13;
                    dns->fallback ^= dns->fallback >> 7;
                    dns->fallback ^= dns->fallback << 17;
                    dns->pool[i] = (uint16_t)(dns->fallback >> 24);
                }
                dns->pool_left = DNS_ID_POOL;
            }
        }
        id = dns->pool[--dns->pool_left];
        if ((dns->busy[id >> 3] & (1u << (id & 7))) == 0) {
            dns->busy[id >> 3] |= (uint8_t)(1u << (id & 7));
            *out = id;
            return true;
        }
    }
    return false;
}

/* ares_send's callback: free the id, note the AD bit, and turn the
 * response code into the status ares_query would give (its qcallback). */
static void on_raw(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    query *q = arg;

    q->dns->busy[q->qid >> 3] &= (uint8_t)~(1u << (q->qid & 7));
    if (status == ARES_SUCCESS) {
        if (abuf == NULL || alen < 12) {
            status = ARES_EBADRESP;
        } else {
            if ((abuf[3] & DNS_FLAG_AD) == 0)
                q->insecure = true;
            switch (abuf[3] & 0x0f) {
            case 0:
                status = get16(abuf + 6) > 0 ? ARES_SUCCESS : ARES_ENODATA;
                break;
            case 1:
                status = ARES_EFORMERR;
                break;
            case 2:
                status = ARES_ESERVFAIL;
                break;
            case 3:
                status = ARES_ENOTFOUND;
                break;
            case 4:
                status = ARES_ENOTIMP;
                break;
            case 5:
                status = ARES_EREFUSED;
                break;
            default:
                status = ARES_EBADRESP;
                break;
            }
        }
    }
    on_answer(q, status, timeouts, abuf, alen);
}

static void start(query *q)
{
    unsigned char *qbuf = NULL;
    int qlen = 0, rc;

    if (q->dns->closing) {
        fail(q, STS_TEMPFAIL, "resolver is shutting down");
        return;
    }
    if (!take_id(q->dns, &q->qid)) {
        fail(q, STS_TEMPFAIL, "too many DNS queries in flight");
        return;
    }
    q->dns->pending++;
    rc = ares_create_query(q->name, DNS_C_IN, qtype_of(q->kind), q->qid, 1, &qbuf, &qlen,
                           DNS_EDNS_SIZE);
    if (rc != ARES_SUCCESS || qlen < 12) {
        if (qbuf != NULL)
            ares_free_string(qbuf);
        on_raw(q, rc != ARES_SUCCESS ? rc : ARES_EBADQUERY, 0, NULL, 0);
        return;
    }
    qbuf[3] |= DNS_FLAG_AD;
    ares_send(q->dns->ch, qbuf, qlen, on_raw, q);
    ares_free_string(qbuf);
}

static query *query_new(sts_dns *dns, qkind kind, const char *name, void *cb, void *arg,
                        addrs_job *job)
{
    query *q = calloc(1, sizeof(*q));
    size_t n = strlen(name);

    if (q == NULL)
        return NULL;
    q->dns = dns;
    q->kind = kind;
    q->cb = cb;
    q->arg = arg;
    q->job = job;
    memcpy(q->name, name, n); /* n <= STS_DOMAIN_MAX: checked by the callers */
    q->name[n] = '\0';
    return q;
}

/* Longer names are refused, never cut: a cut name can be another valid one. */
#define NAME_TOO_LONG(name) (strlen(name) > STS_DOMAIN_MAX)
#define TOO_LONG_WHY "name longer than 253 octets"

void sts_dns_txt_query(sts_dns *dns, const char *name, sts_dns_txt_cb *cb, void *arg)
{
    query *q;
    sts_dns_txt empty = { 0, NULL };

    if (NAME_TOO_LONG(name)) {
        cb(arg, STS_PERMFAIL, &empty, TOO_LONG_WHY);
        return;
    }
    q = query_new(dns, Q_TXT, name, (void *)cb, arg, NULL);
    if (q == NULL) {
        cb(arg, STS_NOMEM, &empty, "out of memory");
        return;
    }
    start(q);
}

void sts_dns_tlsa_query(sts_dns *dns, const char *name, sts_dns_tlsa_cb *cb, void *arg)
{
    query *q;
    sts_dns_tlsa empty = { 0, 0, false };

    if (NAME_TOO_LONG(name)) {
        cb(arg, STS_PERMFAIL, &empty, TOO_LONG_WHY);
        return;
    }
    q = query_new(dns, Q_TLSA, name, (void *)cb, arg, NULL);
    if (q == NULL) {
        cb(arg, STS_NOMEM, &empty, "out of memory");
        return;
    }
    start(q);
}

void sts_dns_mx_query(sts_dns *dns, const char *name, sts_dns_mx_cb *cb, void *arg)
{
    query *q;
    sts_dns_mx empty = { 0, NULL, NULL, false, false };

    if (NAME_TOO_LONG(name)) {
        cb(arg, STS_PERMFAIL, &empty, TOO_LONG_WHY);
        return;
    }
    q = query_new(dns, Q_MX, name, (void *)cb, arg, NULL);
    if (q == NULL) {
        cb(arg, STS_NOMEM, &empty, "out of memory");
        return;
    }
    start(q);
}

void sts_dns_addrs_query(sts_dns *dns, const char *name, sts_dns_addrs_cb *cb, void *arg)
{
    addrs_job *job;
    query *qa, *q6;
    sts_dns_addrs empty = { 0, NULL };

    if (NAME_TOO_LONG(name)) {
        cb(arg, STS_PERMFAIL, &empty, TOO_LONG_WHY);
        return;
    }
    job = calloc(1, sizeof(*job));
    if (job == NULL) {
        cb(arg, STS_NOMEM, &empty, "out of memory");
        return;
    }
    job->cb = cb;
    job->arg = arg;
    job->outstanding = 2;
    qa = query_new(dns, Q_A, name, NULL, NULL, job);
    q6 = query_new(dns, Q_AAAA, name, NULL, NULL, job);
    if (qa == NULL || q6 == NULL) {
        free(qa);
        free(q6);
        free(job);
        cb(arg, STS_NOMEM, &empty, "out of memory");
        return;
    }
    /* The job is freed when its second part completes; start() may complete
     * a part synchronously, so nothing touches job after the second start. */
    start(qa);
    start(q6);
}

/* ------------------------------------------------------------ event loop */

int sts_dns_pollfds(sts_dns *dns, struct pollfd *fds, int max)
{
    ares_socket_t socks[ARES_GETSOCK_MAXNUM];
    int bits = ares_getsock(dns->ch, socks, ARES_GETSOCK_MAXNUM);
    int n = 0;

    for (int i = 0; i < ARES_GETSOCK_MAXNUM && n < max; i++) {
        short ev = 0;

        /* Not the ARES_GETSOCK_* macros: they shift a signed int by up to 31. */
        if (((unsigned)bits >> i) & 1u)
            ev |= POLLIN;
        if (((unsigned)bits >> (i + ARES_GETSOCK_MAXNUM)) & 1u)
            ev |= POLLOUT;
        if (ev == 0)
            continue;
        fds[n].fd = socks[i];
        fds[n].events = ev;
        fds[n].revents = 0;
        n++;
    }
    return n;
}

int sts_dns_timeout_ms(sts_dns *dns, int max_ms)
{
    struct timeval maxtv, tv, *tvp;
    long ms;

    if (dns->pending == 0)
        return max_ms;
    maxtv.tv_sec = max_ms / 1000;
    maxtv.tv_usec = (max_ms % 1000) * 1000;
    tvp = ares_timeout(dns->ch, &maxtv, &tv);
    ms = tvp->tv_sec * 1000L + (tvp->tv_usec + 999) / 1000;
    return ms < max_ms ? (int)ms : max_ms;
}

void sts_dns_process(sts_dns *dns, const struct pollfd *fds, int n)
{
    for (int i = 0; i < n; i++) {
        short re = fds[i].revents;
        ares_socket_t r = ARES_SOCKET_BAD, w = ARES_SOCKET_BAD;

        if (re & (POLLIN | POLLERR | POLLHUP))
            r = fds[i].fd;
        if (re & POLLOUT)
            w = fds[i].fd;
        if (r != ARES_SOCKET_BAD || w != ARES_SOCKET_BAD)
            ares_process_fd(dns->ch, r, w);
    }
    /* Timeouts and retries are handled on a call without sockets. */
    ares_process_fd(dns->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
}
