/*
 * rlog_impl.h - private contract between the parts of the log reader
 * (rlog.h): rlog.c (line dispatch, reading, the session join, the
 * reader's life), rlog_text.c (interned text, time stamps, fields of a
 * line), rlog_mta.c (the MTA processes and connections that Postfix and
 * Sendmail lines feed, and their RFC 8460 result types), rlog_postfix.c,
 * rlog_sendmail.c and rlog_dlog.c (one per log source).  Only those files
 * include this header; everybody else uses rlog.h.
 *
 * The names kept in the structures below (domains, hosts, IP addresses,
 * services) are interned (sts_rlog_intern): one copy per distinct string,
 * so they are compared by pointer.  Interned text lives until
 * sts_rlog_free, so only names of which there are few (thousands, not
 * millions) are interned.  Queue ids, one per message, are not: they are
 * compared by a 64-bit hash (sts_rlog_qid_hash, never 0), and their text
 * is kept only where a session needs it, inline in attempts and decisions,
 * which live only as long as the join window (rlog.h) keeps them.
 */
#ifndef STS_RLOG_IMPL_H
#define STS_RLOG_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "tlsrpt/rlog.h"

/* Memory caps (each counted in stats.dropped when reached). */
#define DECISIONS_MAX (2u << 20)  /* decisions kept at once (within DEC_KEEP) */
#define ATTEMPTS_MAX (1u << 20)   /* attempts waiting for JOIN_SKEW at once */
#define SESSIONS_MAX (1u << 20)   /* array mode only: about 1.7 KB each */
#define STRBYTES_MAX (64u << 20)  /* interned text; reason texts past it are cut to
                                     "" (counted), names past it drop their line */
#define DEC_KEEP (6 * 3600)       /* streaming: a decision joins attempts up to this
                                     long after it (retries of deferred mail later
                                     than that are unjoined attempts) */
#define FLUSH_EVERY 4096          /* streaming: lines between two flushes */
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
    uint64_t qid;                                  /* sts_rlog_qid_hash */
    char qtext[STS_RLOG_QID_MAX + 1];
    const char *domain, *policy_id, *mx, *reason; /* interned */
    const char *engine_rt;                               /* static, NULL: none */
    const char *refresh_rt; /* static: a failed refresh while a cached policy applied
                               (result policy with a report_type, RFC 8461 6) */
    uint32_t next;                                       /* hash chain, index + 1 */
    uint32_t max_age;
    uint8_t result, mode;
    bool has_policy, max_age_known, mx_truncated, joined;
} dec;

typedef struct att {
    int64_t time;
    uint64_t qid;                                       /* sts_rlog_qid_hash */
    char qtext[STS_RLOG_QID_MAX + 1];
    const char *domain, *host, *ip, *detail, *service; /* interned */
    const char *rt;                                          /* static */
    uint8_t tls;
    bool sent;
} att;

typedef struct conn {
    int64_t time;
    const char *host, *ip, *detail; /* interned, "" unknown */
    const char *rt;                 /* result type from a verification reason */
    uint64_t qid;                   /* bound to this delivery (hash), 0: not yet */
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
#define PT_BUCKETS 4096
#define POLICY_TEXT_MAX (16u << 20) /* policy texts kept (policy records) */
#define OWN_QIDS_MAX 65536          /* queue ids of our own report mail */

/* The text of a policy as published, from a decision log policy record. */
typedef struct poltext {
    struct poltext *next;
    const char *domain, *id; /* interned */
    char text[];
} poltext;

/* The UTC seconds of the last BSD syslog hours seen (mktime is slow and
 * every line of a log has one). */
typedef struct bsd_hour {
    int mo, d, h; /* -1: empty */
    int64_t base;  /* UTC seconds of hh:00:00 */
} bsd_hour;

/* The last syslog "HOST TAG" seen and its interned forms. */
typedef struct svc_cache {
    char host[STS_DOMAIN_MAX + 1], tag[200];
    size_t hl, tl;
    const char *hosti, *svci; /* NULL: empty */
} svc_cache;

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

    dec *d;             /* d[dhead..nd): the decisions kept, oldest first */
    size_t nd, capd, dhead;
    uint32_t *dh; /* hash heads, index + 1; chains run newest to oldest */
    size_t ndh;

    att *a;             /* a[ahead..na): attempts not yet joined, oldest first */
    size_t na, capa, ahead;

    /* Streaming (sts_rlog_set_sink): sessions go to sink as they are
     * known; attempts are joined JOIN_SKEW after them, decisions expire
     * DEC_KEEP after them, both by maxt, the latest time read. */
    void (*sink)(void *arg, const sts_rsession *s);
    void *sink_arg;
    int64_t maxt, flushed_t;
    uint64_t since_flush;
    void (*progress)(void *arg, const sts_rlog_stats *st);
    void *progress_arg;

    /* Both tables are made on first use (NULL: none yet): a reader that
     * never sees an MTA line or a policy record, a test's or a fuzzer's,
     * does not pay for 96 KB of zeroed buckets. */
    pidstate **ph; /* PID_BUCKETS hash chains */
    pidstate *lru_head, *lru_tail;
    size_t npid;

    sts_rsession *out; /* array mode (no sink): the sessions for sts_rlog_sessions */
    size_t nout, capout;
    int64_t line_t;    /* the time of the line being read, INT64_MIN: none */

    poltext **pt;      /* PT_BUCKETS: policy texts by hash of (domain, id) */
    size_t ptbytes;

    char jbuf[STS_RLOG_LINE_MAX]; /* a journal record's MESSAGE given as bytes */
    char fbuf[STS_RLOG_LINE_MAX + 1]; /* a decision line's fields (rlog_dlog.c) */
    bsd_hour *bsd;                /* 2 entries; NULL: no cache */
    svc_cache svc;

    const char *own_submitter; /* sts_rlog_set_own_reports: message ids of our reports */
    uint64_t *own;             /* queue id hashes of our report mail (open addressing) */
    size_t nown, capown;

    /* MX probe records (rprobe.c), NULL: none yet.  probes_ahead: the
     * line being read comes from an input whose probe records were loaded
     * by the pass ahead of the join (sts_rlog_read_files). */
    struct sts_rprobe *probes;
    bool probes_ahead;
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

/* One syslog message: time t, host ("" none), TAG and PID of the
 * "TAG[PID]: " header, and the message m after it; from a syslog line or
 * a journal record.  Returns what it was; counts nothing (the caller
 * does). */
sts_rlog_line_kind sts_rlog_feed_syslog(sts_rlog *r, int64_t t, sts_cur host, sts_cur tag,
                                        uint32_t pid, sts_cur m);

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
/* Where the last lit (not "") occurs in c. */
bool sts_rlog_cur_rfind(const sts_cur *c, const char *lit, size_t *pos);

/* Character classes for sts_cur_take_while. */
bool sts_rlog_is_not_space(unsigned char ch);
bool sts_rlog_is_qid_char(unsigned char ch);

/* The next "key=value" of a ", "-separated list; the value of the key
 * named terminal is the rest of the line.  Consumes it on success. */
bool sts_rlog_take_field(sts_cur *c, const char *terminal, sts_cur *key, sts_cur *val);

/* One recipient address as Postfix (info_log_address_format = external,
 * the default since 3.5) and Sendmail log it: "<LOCAL@DOMAIN>" (brackets
 * when asked for), LOCAL a dot-string or a quoted string with backslash
 * escapes, DOMAIN host name characters or "[literal]", "@DOMAIN"
 * optional, "<>" allowed.  The whole address, brackets included, in
 * *addr; consumes it on success.  A recipient is text the sender chose:
 * this grammar, never a search for the next field name, says where it
 * ends. */
bool sts_rlog_take_addr(sts_cur *c, bool brackets, sts_cur *addr);

/* "QID: " at the start of a message; consumes it on success. */
bool sts_rlog_take_qid(sts_cur *m, sts_cur *qid);

/* -------------------------------------------------------- rlog_mta.c */

/* An OpenSSL / MTA verification reason to its RFC 8460 result type,
 * recognised by how the reason starts (text after the fixed words, such
 * as the issuer's name, is the server's and is never read). */
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

/* Tie the delivery of queue id qtext to recipient addr at time t
 * to connection c of p, and to the connections the same delivery made
 * before it; sent: the MTA says the mail went out on c.  Records the
 * attempts.  Returns c, which may have moved in p->c. */
conn *sts_rlog_deliver(sts_rlog *r, pidstate *p, conn *c, sts_cur qtext, sts_cur addr,
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

/* The policy text of (domain, id) (interned), NULL when no record was
 * read. */
const char *sts_rlog_policy_text(const sts_rlog *r, const char *domain, const char *id);

/* Note that queue id qid carries message id msgid; our own report mail is
 * remembered (sts_rlog_set_own_reports). */
void sts_rlog_note_msgid(sts_rlog *r, sts_cur qid, sts_cur msgid);

/* Whether queue id qid (sts_rlog_qid_hash) is one of our own report mails. */
bool sts_rlog_is_own(const sts_rlog *r, uint64_t qid);

/* The identity of a queue id: a 64-bit hash of its text, never 0. */
uint64_t sts_rlog_qid_hash(sts_cur qid);

/* Join what the window allows (streaming) after a line of time t. */
void sts_rlog_advance(sts_rlog *r, int64_t t);

/* The latest decision kept for (qid, domain) (hash, interned) logged no
 * later than JOIN_SKEW after t; NULL when none. */
dec *sts_rlog_find_decision(sts_rlog *r, uint64_t qid, const char *domain, int64_t t);

/* Rebuild the hash index of d[dhead..nd) with nbuckets (a power of 2)
 * buckets; false when out of memory. */
bool sts_rlog_dec_index(sts_rlog *r, size_t nbuckets);

#endif
