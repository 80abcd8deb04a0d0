/*
 * rlog_impl.h - private contract between the parts of the log reader
 * (rlog.h): rlog.c (line dispatch, reading, the session join, the
 * reader's life), rlog_text.c (interned text, time stamps, fields of a
 * line), rlog_mta.c (the MTA processes and connections that Postfix and
 * Sendmail lines feed, and their RFC 8460 result types), rlog_postfix.c,
 * rlog_sendmail.c and rlog_dlog.c (one per log source).  Only those files
 * include this header; everybody else uses rlog.h.
 *
 * The names kept in the structures below (queue ids, domains, hosts, IP
 * addresses, services) are interned (sts_rlog_intern): one copy per
 * distinct string, so they are compared by pointer.  Interned text lives
 * until sts_rlog_free.
 */
#ifndef STS_RLOG_IMPL_H
#define STS_RLOG_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "tlsrpt/rlog.h"

/* Memory caps (each counted in stats.dropped when reached). */
#define DECISIONS_MAX (2u << 20)
#define ATTEMPTS_MAX (4u << 20)
#define SESSIONS_MAX (1u << 20)   /* about 1.7 KB each */
#define STRBYTES_MAX (256u << 20) /* interned text */
#define PIDS_MAX 4096             /* MTA processes followed at once (LRU) */
#define CONNS_MAX 8               /* open connections per process */
#define CONN_DOMAINS 32           /* distinct domains remembered per connection */
#define CONN_RCPTS 32             /* recipients remembered per connection */
#define WARN_MAX 50
#define JOIN_SKEW 300             /* an attempt logged up to 5 min before its decision */
#define DUP_WINDOW 3600           /* repeated decision lines of one message */
#define CONN_STALE 900            /* a connection not tied to a delivery line this long
                                     after its TLS line never will be (a log gap) */
#define FUTURE_SLACK (7 * 86400)
#define READ_CHUNK 65536

typedef enum mta_kind {
    MTA_POSTFIX = 1,
    MTA_SENDMAIL = 2,
} mta_kind;

typedef struct strnode {
    struct strnode *next;
    uint64_t hash;
    bool logs_tls; /* for service names: a TLS handshake line was seen */
    char s[];
} strnode;

typedef struct dec {
    int64_t time;
    const char *qid, *domain, *policy_id, *mx, *reason; /* interned */
    const char *engine_rt;                               /* static, NULL: none */
    uint32_t next;                                       /* hash chain, index + 1 */
    uint32_t max_age;
    uint8_t result, mode;
    bool has_policy, max_age_known, mx_truncated, joined;
} dec;

typedef struct att {
    int64_t time;
    const char *qid, *domain, *host, *ip, *detail, *service; /* interned */
    const char *rt;                                          /* static */
    uint8_t tls;
    bool sent;
} att;

typedef struct conn {
    int64_t time;
    const char *host, *ip, *detail; /* interned, "" unknown */
    const char *rt;                 /* result type from a verification reason */
    const char *qid;                /* bound to this delivery, NULL: not yet */
    uint8_t tls;                    /* sts_rlog_tls */
    bool verify_failed;             /* a verification failure, no TLS line yet */
    size_t ndom, nrcpt;
    const char *dom[CONN_DOMAINS];
    uint64_t rcpt[CONN_RCPTS];
} conn;

typedef struct pidstate {
    struct pidstate *hnext, *prev, *next; /* hash chain; LRU list, most recent first */
    const char *host;                     /* interned syslog host ("" none) */
    const char *service;                  /* interned "HOST TAG" */
    uint32_t pid;
    uint8_t kind;
    const char *pend_rt, *pend_detail;    /* Sendmail S2, waiting for its S1 */
    size_t nconn;
    conn c[CONNS_MAX];                    /* c[nconn - 1] is the newest */
} pidstate;

#define PID_BUCKETS 8192

struct sts_rlog {
    void (*warn)(void *arg, const char *msg);
    void *warn_arg;
    unsigned warned;
    int64_t now, win_from, win_until;
    bool window, nomem, built;
    sts_rlog_stats st;
    const char *name; /* current input, for warnings */
    uint64_t lineno;

    strnode **sb;
    size_t nsb, nstr, strbytes;

    dec *d;
    size_t nd, capd;
    uint32_t *dh; /* hash heads, index + 1 */
    size_t ndh;

    att *a;
    size_t na, capa;

    pidstate *ph[PID_BUCKETS];
    pidstate *lru_head, *lru_tail;
    size_t npid;

    sts_rsession *out;
    size_t nout;

    struct sts_rprobe *probes; /* MX probe records (rprobe.c), NULL: none yet */
};

/* The RFC 8460 4.3 result types of failures seen in the MTA logs
 * (defined in rlog_mta.c): attempts and sessions point at these. */
extern const char sts_rlog_rt_starttls[];
extern const char sts_rlog_rt_host[];
extern const char sts_rlog_rt_expired[];
extern const char sts_rlog_rt_untrusted[];
extern const char sts_rlog_rt_validation[];

/* ------------------------------------------------------------ rlog.c */

/* Warn, rate-limited, that the current line is malformed (why, and the
 * start of what, quoted); returns STS_RLOG_MALFORMED for the parser to
 * return. */
sts_rlog_line_kind sts_rlog_malformed(sts_rlog *r, const char *why, sts_cur what);

/* ------------------------------------------------------- rlog_text.c */

/* FNV-1a of p[0..n). */
uint64_t sts_rlog_hash_bytes(const char *p, size_t n);

/* The node of an interned string s (for its logs_tls flag). */
strnode *sts_rlog_node_of(const char *s);

/* The interned copy of p[0..n), "" for n == 0.  NULL when out of memory
 * (r->nomem set) or over STRBYTES_MAX (counted in stats.dropped): the
 * caller gives up on the line. */
const char *sts_rlog_intern(sts_rlog *r, const char *p, size_t n);

/* Untrusted text made printable and cut to a detail field, interned. */
const char *sts_rlog_intern_quoted(sts_rlog *r, const char *p, size_t n);

/* A host name lower-cased, or an IP address in text form, interned; ""
 * when h / ip is not one; NULL as for sts_rlog_intern. */
const char *sts_rlog_intern_host(sts_rlog *r, sts_cur h);
const char *sts_rlog_intern_ip(sts_rlog *r, sts_cur ip);

/* Time stamps, consumed from c on success, *t in UTC seconds: RFC 3339
 * (also "+hhmm" offsets and a space for 'T'), and BSD syslog
 * "Mmm dd hh:mm:ss" in local time with the year inferred from r->now. */
bool sts_rlog_take_rfc3339(sts_cur *c, int64_t *t);
bool sts_rlog_take_bsd_time(const sts_rlog *r, sts_cur *c, int64_t *t);

/* Whether lit (not "") occurs in c, and where. */
bool sts_rlog_cur_find(const sts_cur *c, const char *lit, size_t *pos);
bool sts_rlog_cur_has(const sts_cur *c, const char *lit);

/* Character classes for sts_cur_take_while. */
bool sts_rlog_is_not_space(unsigned char ch);
bool sts_rlog_is_qid_char(unsigned char ch);

/* The next "key=value" of a ", "-separated list; the value of the key
 * named terminal is the rest of the line.  Consumes it on success. */
bool sts_rlog_take_field(sts_cur *c, const char *terminal, sts_cur *key, sts_cur *val);

/* "QID: " at the start of a message; consumes it on success. */
bool sts_rlog_take_qid(sts_cur *m, sts_cur *qid);

/* -------------------------------------------------------- rlog_mta.c */

/* An OpenSSL / MTA verification reason to its RFC 8460 result type. */
const char *sts_rlog_reason_rt(sts_cur why);

/* The state of MTA process (host, pid, kind), made on first use (the
 * least recently used one goes when PIDS_MAX are followed); service is
 * its "HOST TAG".  NULL when out of memory. */
pidstate *sts_rlog_pid_get(sts_rlog *r, const char *host, const char *service, uint32_t pid,
                           uint8_t kind);

/* The newest connection of p, NULL when none. */
conn *sts_rlog_conn_cur(pidstate *p);

/* Forget p's connections tied to a delivery, except keep. */
void sts_rlog_conn_purge_bound(pidstate *p, const conn *keep);

/* A new connection of p at time t to host/ip (interned, "" unknown); the
 * oldest goes when p has CONNS_MAX.  Never NULL. */
conn *sts_rlog_conn_new(sts_rlog *r, pidstate *p, int64_t t, const char *host, const char *ip);

/* Whether c can be the connection to host/ip: the same IP when both are
 * known, else the same name when both are known, else yes. */
bool sts_rlog_same_relay(const conn *c, const char *host, const char *ip);

/* Whether the recipient of hash h (sts_rlog_hash_bytes) was seen on c. */
bool sts_rlog_rcpt_seen(const conn *c, uint64_t h);

/* Tie the delivery of queue id qid (interned) to recipient addr at time t
 * to connection c of p, and to the connections the same delivery made
 * before it; sent: the MTA says the mail went out on c.  Records the
 * attempts.  Returns c, which may have moved in p->c. */
conn *sts_rlog_deliver(sts_rlog *r, pidstate *p, conn *c, const char *qid, sts_cur addr,
                       int64_t t, bool sent);

/* ------------------------------------ rlog_postfix.c, rlog_sendmail.c */

/* One message m (after "TAG[PID]: ") of Postfix smtp/lmtp, or Sendmail,
 * process p, logged at t: STS_RLOG_POSTFIX / STS_RLOG_SENDMAIL when it
 * mattered, STS_RLOG_IGNORED or STS_RLOG_MALFORMED otherwise. */
sts_rlog_line_kind sts_rlog_postfix_line(sts_rlog *r, pidstate *p, int64_t t, sts_cur m);
sts_rlog_line_kind sts_rlog_sendmail_line(sts_rlog *r, pidstate *p, int64_t t, sts_cur m);

/* ------------------------------------------------------- rlog_dlog.c */

/* One decision log line (a JSON object): STS_RLOG_DECISION, also when it
 * is counted rather than kept, or STS_RLOG_MALFORMED. */
sts_rlog_line_kind sts_rlog_decision_line(sts_rlog *r, sts_cur line);

/* The latest decision kept for (qid, domain) (interned) logged no later
 * than JOIN_SKEW after t; NULL when none. */
dec *sts_rlog_find_decision(sts_rlog *r, const char *qid, const char *domain, int64_t t);

#endif
