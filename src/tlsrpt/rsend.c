/*
 * rsend.c - delivering RFC 8460 aggregate reports (see rsend.h): the
 * public entry points, and the run that takes each spooled report through
 * its attempts.
 *
 * RFC 8460 section 3 (where: the _smtp._tls TXT record, tlsrpt_txt.c),
 * 5.1 (file name), 5.2 (gzip), 5.3 (mail, rmail.c), 5.4 (HTTPS POST,
 * rhttps.c), 5.5 (retry with exponential backoff for up to a day).
 *
 * The spool's files and its index of finished reports are rspool.c; what
 * a spool file holds (the report, and the state of its delivery to each
 * rua) is made, read and updated here.  Each rua delivery is recorded
 * before the next one starts: a crash after rua 1 of 2 does not send to
 * rua 1 again.  An flock on the directory serialises enqueue and run, so
 * two runs never send the same report twice.  DNS (the TXT record, an
 * https rua's addresses) is resolved here, with one resolver per run.
 */
#include "buildconf.h"
#include "tlsrpt/rsend.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <zlib.h>

#include "base/clock.h"
#include "base/buf.h"
#include "sts/dns.h"
#include "sts/domain.h"
#include "base/log.h"
#include "tlsrpt/rhttps.h"
#include "tlsrpt/rmail.h"
#include "tlsrpt/rspool.h"
#include "tlsrpt/tlsrpt_txt.h"

#define RSEND_FORMAT 1
#define RSEND_REPORT_MAX (32u * 1024 * 1024) /* report JSON */
#define RSEND_FILE_MAX (6u * RSEND_REPORT_MAX + 1024 * 1024) /* JSON-escaped envelope */
#define RSEND_BACKOFF_FIRST 300
#define RSEND_BACKOFF_MAX (4 * 3600)
#define RSEND_LOCK_WAIT_MS (10 * 60 * 1000)
#define RSEND_DNS_WAIT_MS 120000

/* ------------------------------------------------------------ report ids */

static bool id_atom_char(unsigned char ch)
{
    return sts_is_alnum(ch) || ch == '_' || ch == '+' || ch == '-';
}

static bool id_dot_atom(const char *s, size_t n)
{
    if (n == 0 || s[0] == '.' || s[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.') {
            if (s[i + 1] == '.')
                return false;
        } else if (!id_atom_char((unsigned char)s[i])) {
            return false;
        }
    }
    return true;
}

bool sts_rsend_id_valid(const char *id)
{
    size_t n;
    const char *at;

    if (id == NULL)
        return false;
    n = strnlen(id, STS_RSEND_ID_MAX + 1);
    if (n == 0 || n > STS_RSEND_ID_MAX)
        return false;
    at = memchr(id, '@', n);
    if (at == NULL)
        return id_dot_atom(id, n);
    return id_dot_atom(id, (size_t)(at - id)) &&
           id_dot_atom(at + 1, n - (size_t)(at - id) - 1);
}

/* --------------------------------------------------------- file name, gzip */

sts_status sts_rsend_filename(const sts_rsend_opts *o, const sts_rsend_report *r, char *out,
                              size_t outsz)
{
    bool uid = r->report_id != NULL && r->report_id[0] != '\0';
    int n;

    if (o->submitter == NULL || !sts_hostname_valid(o->submitter, strlen(o->submitter)) ||
        r->policy_domain == NULL ||
        !sts_hostname_valid(r->policy_domain, strlen(r->policy_domain)) || r->begin < 0 ||
        r->end < r->begin)
        return STS_PERMFAIL;
    for (size_t i = 0; uid && r->report_id[i] != '\0'; i++)
        if (!sts_is_alnum((unsigned char)r->report_id[i]) || i >= 64)
            uid = false;
    n = snprintf(out, outsz, "%s!%s!%lld!%lld%s%s.json.gz", o->submitter, r->policy_domain,
                 (long long)r->begin, (long long)r->end, uid ? "!" : "",
                 uid ? r->report_id : "");
    return n < 0 || (size_t)n >= outsz ? STS_PERMFAIL : STS_OK;
}

sts_status sts_rsend_gzip(const void *data, size_t len, unsigned char **out, size_t *outlen,
                          sts_why *why)
{
    z_stream zs;
    unsigned char *buf = NULL;
    uLong bound;
    int rc;

    *out = NULL;
    *outlen = 0;
    if (len > UINT_MAX / 2) {
        sts_why_set(why, "report of %zu bytes is too large to compress", len);
        return STS_PERMFAIL;
    }
    memset(&zs, 0, sizeof(zs));
    /* windowBits 15 + 16: a gzip (RFC 1952) wrapper, not zlib's. */
    if (deflateInit2(&zs, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
        Z_OK) {
        sts_why_set(why, "gzip: cannot initialise zlib");
        return STS_NOMEM;
    }
    bound = deflateBound(&zs, (uLong)len) + 32;
    buf = malloc(bound);
    if (buf == NULL) {
        (void)deflateEnd(&zs);
        sts_why_set(why, "out of memory");
        return STS_NOMEM;
    }
    zs.next_in = (Bytef *)(uintptr_t)data; /* zlib does not write through it */
    zs.avail_in = (uInt)len;
    zs.next_out = buf;
    zs.avail_out = (uInt)bound;
    rc = deflate(&zs, Z_FINISH);
    if (rc != Z_STREAM_END) {
        (void)deflateEnd(&zs);
        free(buf);
        sts_why_set(why, "gzip failed (zlib %d)", rc);
        return STS_NOMEM;
    }
    *outlen = zs.total_out;
    (void)deflateEnd(&zs);
    *out = buf;
    return STS_OK;
}

/* ------------------------------------------------------------- spool lock */

/* Exclusive lock of the spool; released when dirfd is closed.  It is what
 * makes enqueue and run atomic towards each other (rsend.h), so it is
 * taken here, around each of them, not by rspool.c's single steps. */
static sts_status spool_lock(int dirfd, const char *dir, sts_why *why)
{
    int64_t deadline = sts_mono_ms() + RSEND_LOCK_WAIT_MS;

    while (flock(dirfd, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK && errno != EINTR) {
            sts_why_set(why, "cannot lock spool %s: %s", dir, strerror(errno));
            return STS_TEMPFAIL;
        }
        if (sts_mono_ms() > deadline) {
            sts_why_set(why, "spool %s is still locked by another run", dir);
            return STS_TEMPFAIL;
        }
        (void)poll(NULL, 0, 100);
    }
    return STS_OK;
}

/* ----------------------------------------------------------------- enqueue */

sts_status sts_rsend_enqueue(const sts_rsend_opts *o, const sts_rsend_report *r,
                             sts_rsend_stats *stats, sts_why *why)
{
    char domain[STS_DOMAIN_MAX + 1], name[STS_RSPOOL_NAME_MAX];
    sts_rspool_index idx = { 0 };
    json_t *env = NULL, *check = NULL;
    char *text = NULL;
    size_t jlen;
    int dirfd = -1;
    bool existed = false;
    sts_why inner;
    sts_status st = STS_PERMFAIL;

    if (o->submitter == NULL || !sts_hostname_valid(o->submitter, strlen(o->submitter))) {
        sts_why_set(why, "ReportSubmitter is not a host name");
        goto done;
    }
    if (r->policy_domain == NULL ||
        sts_domain_normalize(r->policy_domain, strlen(r->policy_domain), domain, &inner) !=
            STS_OK) {
        sts_why_set(why, "bad policy domain");
        goto done;
    }
    if (!sts_rsend_id_valid(r->report_id)) {
        sts_why_set(why, "report id is not usable (see rsend.h)");
        goto done;
    }
    if (r->begin < 0 || r->end < r->begin) {
        sts_why_set(why, "bad date range %lld..%lld", (long long)r->begin, (long long)r->end);
        goto done;
    }
    jlen = r->json != NULL ? strlen(r->json) : 0;
    if (jlen == 0 || jlen > RSEND_REPORT_MAX) {
        sts_why_set(why, "report JSON is empty or larger than %u bytes", RSEND_REPORT_MAX);
        goto done;
    }
    if ((check = json_loadb(r->json, jlen, 0, NULL)) == NULL || !json_is_object(check)) {
        sts_why_set(why, "report is not a JSON object");
        goto done;
    }
    if ((st = sts_rspool_name(r->report_id, name)) != STS_OK) {
        sts_why_set(why, "cannot hash the report id");
        goto done;
    }
    if ((st = sts_rspool_open(o, true, &dirfd, why)) != STS_OK)
        goto done;
    if ((st = spool_lock(dirfd, o->spool_dir, why)) != STS_OK)
        goto done;
    if ((st = sts_rspool_index_load(dirfd, &idx, why)) != STS_OK)
        goto done;
    if (sts_rspool_index_has(&idx, r->report_id)) {
        existed = true;
        goto dup;
    }
    env = json_pack("{s:i, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:i, s:I, s:{}, s:s%}",
                    "format", RSEND_FORMAT, "report_id", r->report_id, "policy_domain", domain,
                    "submitter", o->submitter, "begin", (json_int_t)r->begin, "end",
                    (json_int_t)r->end, "spooled", (json_int_t)time(NULL), "first_attempt",
                    (json_int_t)0, "attempts", 0, "next_attempt", (json_int_t)0, "rua",
                    "report", r->json, jlen);
    if (env == NULL || (text = json_dumps(env, JSON_COMPACT)) == NULL) {
        sts_why_set(why, "cannot encode the spool file (out of memory or not UTF-8)");
        st = STS_NOMEM;
        goto done;
    }
    st = sts_rspool_write(dirfd, name, text, strlen(text), true, &existed, why);
    if (st != STS_OK)
        goto done;
dup:
    if (existed) {
        if (stats != NULL)
            stats->duplicates++;
        sts_log(STS_LOG_INFO, "-", "report-duplicate", "report_id=%s domain=%s", r->report_id,
                domain);
    } else {
        if (stats != NULL)
            stats->queued++;
        sts_log(STS_LOG_INFO, "-", "report-queued", "report_id=%s domain=%s file=%s",
                r->report_id, domain, name);
    }
    st = STS_OK;
done:
    if (dirfd >= 0)
        (void)close(dirfd); /* releases the lock */
    sts_rspool_index_free(&idx);
    json_decref(env);
    json_decref(check);
    free(text);
    return st;
}

/* --------------------------------------------------------- synchronous DNS */

typedef struct run_ctx {
    const sts_rsend_opts *o;
    int64_t now;
    int dirfd;
    sts_rsend_stats *stats;
    sts_dns *dns; /* made on first use */
    sts_rspool_index idx;
} run_ctx;

static sts_status get_dns(run_ctx *x, sts_why *why)
{
    sts_dns_opts d;

    if (x->dns != NULL)
        return STS_OK;
    memset(&d, 0, sizeof(d));
    d.servers = x->o->dns_servers;
    d.timeout_ms = x->o->dns_timeout_ms;
    d.tries = x->o->dns_tries;
    return sts_dns_new(&d, &x->dns, why);
}

/* Drive the resolver until *done or a hard deadline (c-ares' own
 * timeouts end every query well before it); on the deadline the resolver
 * is freed, which completes the query with STS_TEMPFAIL. */
static void dns_wait(run_ctx *x, const bool *done)
{
    int64_t deadline = sts_mono_ms() + RSEND_DNS_WAIT_MS;

    while (!*done && sts_mono_ms() < deadline) {
        struct pollfd fds[STS_DNS_MAX_POLLFDS];
        int n = sts_dns_pollfds(x->dns, fds, STS_DNS_MAX_POLLFDS);
        int t = sts_dns_timeout_ms(x->dns, 1000);

        (void)poll(fds, (nfds_t)n, t);
        sts_dns_process(x->dns, fds, n);
    }
    if (!*done) {
        sts_dns_free(x->dns);
        x->dns = NULL;
    }
}

typedef struct txt_wait {
    bool done;
    sts_status st;
    sts_tlsrpt *out;
    sts_why why;
} txt_wait;

static void on_txt(void *arg, sts_status st, const sts_dns_txt *res, const char *why)
{
    txt_wait *w = arg;

    w->done = true;
    if (st != STS_OK) {
        w->st = st;
        sts_why_set(&w->why, "%s", why);
        return;
    }
    w->st = sts_tlsrpt_select(res->rr, res->n, w->out, &w->why);
}

/* The TLSRPT record of domain: STS_OK (out filled), STS_NOTFOUND or
 * STS_PERMFAIL (no reports wanted), STS_TEMPFAIL/STS_NOMEM. */
static sts_status lookup_tlsrpt(run_ctx *x, const char *domain, sts_tlsrpt *out, sts_why *why)
{
    char name[STS_DOMAIN_MAX + 16];
    txt_wait w;
    sts_status st;

    memset(&w, 0, sizeof(w));
    w.out = out;
    out->n = 0;
    if ((size_t)snprintf(name, sizeof(name), "_smtp._tls.%s", domain) >= sizeof(name)) {
        sts_why_set(why, "name too long");
        return STS_PERMFAIL;
    }
    if ((st = get_dns(x, why)) != STS_OK)
        return st == STS_PERMFAIL ? STS_TEMPFAIL : st; /* our configuration, not theirs */
    sts_dns_txt_query(x->dns, name, on_txt, &w);
    dns_wait(x, &w.done);
    sts_why_set(why, "%s", w.why.text);
    return w.st;
}

typedef struct addrs_wait {
    bool done;
    sts_status st;
    size_t n;
    char addr[STS_DNS_MAX_ADDRS][64];
    sts_why why;
} addrs_wait;

static void on_addrs(void *arg, sts_status st, const sts_dns_addrs *res, const char *why)
{
    addrs_wait *w = arg;

    w->done = true;
    w->st = st;
    sts_why_set(&w->why, "%s", why);
    for (size_t i = 0; st == STS_OK && i < res->n && w->n < STS_DNS_MAX_ADDRS; i++)
        (void)snprintf(w->addr[w->n++], sizeof(w->addr[0]), "%s", res->addr[i]);
}

/* ---------------------------------------------------------------- delivery */

/* The rua's host is resolved by the run's resolver (DNSServers), not by
 * libcurl; rhttps.c posts to the addresses found. */
static sts_status deliver_https(run_ctx *x, const sts_tlsrpt_uri *u, const unsigned char *gz,
                                size_t gzlen, sts_why *why)
{
    addrs_wait w;
    const char *ptrs[STS_DNS_MAX_ADDRS];
    sts_status st;

    memset(&w, 0, sizeof(w));
    if ((st = get_dns(x, why)) != STS_OK)
        return STS_TEMPFAIL;
    sts_dns_addrs_query(x->dns, u->host, on_addrs, &w);
    dns_wait(x, &w.done);
    if (w.st != STS_OK || w.n == 0) {
        sts_why_set(why, "no address for %s: %s", u->host, w.why.text);
        return STS_TEMPFAIL;
    }
    for (size_t i = 0; i < w.n; i++)
        ptrs[i] = w.addr[i];
    return sts_rhttps_post(x->o, u, ptrs, w.n, gz, gzlen, why);
}

/* ------------------------------------------------------------------- run */

static int64_t jint(const json_t *env, const char *key)
{
    return (int64_t)json_integer_value(json_object_get(env, key));
}

static const char *jstr(const json_t *env, const char *key)
{
    return json_string_value(json_object_get(env, key));
}

/* Check an envelope read from the spool; fills r from it. */
static bool envelope_ok(const json_t *env, const char *fname, sts_rsend_report *r)
{
    static const char *const ints[] = { "format", "begin", "end", "first_attempt", "attempts",
                                        "next_attempt" };
    char name[STS_RSPOOL_NAME_MAX];
    const char *sub;

    if (!json_is_object(env) || !json_is_object(json_object_get(env, "rua")) ||
        !json_is_string(json_object_get(env, "report")))
        return false;
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++)
        if (!json_is_integer(json_object_get(env, ints[i])))
            return false;
    r->report_id = jstr(env, "report_id");
    r->policy_domain = jstr(env, "policy_domain");
    r->begin = jint(env, "begin");
    r->end = jint(env, "end");
    r->json = jstr(env, "report");
    sub = jstr(env, "submitter");
    if (jint(env, "format") != RSEND_FORMAT || !sts_rsend_id_valid(r->report_id) ||
        r->policy_domain == NULL ||
        !sts_hostname_valid(r->policy_domain, strlen(r->policy_domain)) || sub == NULL ||
        !sts_hostname_valid(sub, strlen(sub)) || r->begin < 0 || r->end < r->begin)
        return false;
    return sts_rspool_name(r->report_id, name) == STS_OK && strcmp(name, fname) == 0;
}

/* Delivered, or given up for good (a permanent failure): not tried again. */
static bool rua_finished(const json_t *env, const char *uri)
{
    const json_t *s = json_object_get(json_object_get(env, "rua"), uri);

    return json_integer_value(json_object_get(s, "delivered")) > 0 ||
           json_integer_value(json_object_get(s, "given_up")) > 0;
}

/* The state object of one rua, created on first use; NULL on OOM. */
static json_t *rua_state(json_t *env, const char *uri)
{
    json_t *all = json_object_get(env, "rua"), *s = json_object_get(all, uri);

    if (s == NULL) {
        s = json_pack("{s:i, s:I}", "attempts", 0, "delivered", (json_int_t)0);
        if (s == NULL || json_object_set_new(all, uri, s) != 0)
            return NULL;
    }
    return s;
}

static sts_status envelope_save(run_ctx *x, const json_t *env, const char *fname, sts_why *why)
{
    char *text = json_dumps(env, JSON_COMPACT);
    sts_status st;

    if (text == NULL) {
        sts_why_set(why, "out of memory");
        return STS_NOMEM;
    }
    st = sts_rspool_write(x->dirfd, fname, text, strlen(text), false, NULL, why);
    free(text);
    return st;
}

static int64_t backoff(int64_t attempts)
{
    int64_t d = RSEND_BACKOFF_FIRST;

    for (int64_t i = 1; i < attempts && d < RSEND_BACKOFF_MAX; i++)
        d *= 2;
    return d < RSEND_BACKOFF_MAX ? d : RSEND_BACKOFF_MAX;
}

static void corrupt(run_ctx *x, const char *fname, const char *why)
{
    sts_rspool_set_aside(x->dirfd, fname, why);
    if (x->stats != NULL)
        x->stats->given_up++;
}

static void process_one(run_ctx *x, const char *fname)
{
    char filename[2 * STS_DOMAIN_MAX + 128], esc[200], first_err[2 * STS_WHY_MAX] = "";
    sts_rsend_report r;
    sts_rsend_opts o2;
    sts_tlsrpt *rec = NULL;
    json_t *env = NULL;
    char *data = NULL;
    unsigned char *gz = NULL;
    size_t len = 0, gzlen = 0;
    unsigned failures = 0, sent = 0, refused = 0;
    int64_t first, deadline;
    const char *submitter;
    sts_why why;
    sts_status st;

    st = sts_rspool_read(x->dirfd, fname, RSEND_FILE_MAX, &data, &len, &why);
    if (st == STS_NOTFOUND)
        goto done; /* removed by hand meanwhile */
    if (st != STS_OK) {
        sts_log(STS_LOG_ERR, "-", "report-spool", "op=read file=%s error=\"%s\"", fname,
                why.text);
        goto done;
    }
    env = json_loadb(data, len, JSON_REJECT_DUPLICATES, NULL);
    if (!envelope_ok(env, fname, &r)) {
        corrupt(x, fname, "not a valid spool file");
        goto done;
    }
    submitter = jstr(env, "submitter");
    if (sts_rspool_index_has(&x->idx, r.report_id)) {
        /* Finished before a crash removed the file. */
        (void)unlinkat(x->dirfd, fname, 0);
        goto done;
    }
    if (jint(env, "next_attempt") > x->now)
        goto done; /* not due */
    first = jint(env, "first_attempt");
    if (first <= 0) {
        first = x->now; /* RFC 8460 5.5 counts from the initial attempt */
        if (json_object_set_new(env, "first_attempt", json_integer(first)) != 0)
            goto nomem;
    }
    deadline = first + (int64_t)x->o->retry_time_s;
    o2 = *x->o;
    o2.submitter = submitter;
    if (sts_rsend_filename(&o2, &r, filename, sizeof(filename)) != STS_OK) {
        corrupt(x, fname, "no RFC 8460 file name can be made for it");
        goto done;
    }

    if ((rec = malloc(sizeof(*rec))) == NULL)
        goto nomem;
    st = lookup_tlsrpt(x, r.policy_domain, rec, &why);
    if (st == STS_NOTFOUND || st == STS_PERMFAIL || (st == STS_OK && rec->n == 0)) {
        const char *reason = st != STS_OK ? why.text : rec->ignored_why.text;

        (void)sts_log_escape(esc, sizeof(esc), reason, strlen(reason));
        sts_log(STS_LOG_NOTICE, "-", "report-norua",
                "report_id=%s domain=%s reason=\"no usable TLSRPT record: %s\"", r.report_id,
                r.policy_domain, esc);
        if (x->stats != NULL)
            x->stats->no_rua++;
        sts_rspool_finish(x->dirfd, &x->idx, r.report_id, fname, x->now);
        goto done;
    }
    if (st != STS_OK) {
        (void)snprintf(first_err, sizeof(first_err), "TLSRPT lookup: %s", why.text);
        failures = 1;
        goto failed;
    }
    if (rec->ignored > 0) {
        (void)sts_log_escape(esc, sizeof(esc), rec->ignored_why.text,
                             strlen(rec->ignored_why.text));
        sts_log(STS_LOG_INFO, "-", "report-rua", "domain=%s skipped=%zu reason=\"%s\"",
                r.policy_domain, rec->ignored, esc);
    }

    for (size_t i = 0; i < rec->n; i++) {
        const sts_tlsrpt_uri *u = &rec->rua[i];
        json_t *rs;

        if (rua_finished(env, u->uri))
            continue;
        if (gz == NULL && (st = sts_rsend_gzip(r.json, strlen(r.json), &gz, &gzlen, &why)) !=
                              STS_OK) {
            (void)snprintf(first_err, sizeof(first_err), "%s", why.text);
            failures++;
            break;
        }
        if ((rs = rua_state(env, u->uri)) == NULL)
            goto nomem;
        (void)json_object_set_new(
            rs, "attempts", json_integer(json_integer_value(json_object_get(rs, "attempts")) + 1));
        if (u->scheme == STS_TLSRPT_MAILTO)
            st = sts_rmail_deliver(x->o, x->now, &r, submitter, filename, (unsigned)i, u->addr,
                                   gz, gzlen, &why);
        else
            st = deliver_https(x, u, gz, gzlen, &why);
        (void)sts_log_escape(esc, sizeof(esc), u->uri, strlen(u->uri));
        if (st == STS_OK) {
            sts_why swhy;

            (void)json_object_set_new(rs, "delivered", json_integer(x->now));
            (void)json_object_del(rs, "last_error");
            sent++;
            if (x->stats != NULL)
                x->stats->delivered++;
            sts_log(STS_LOG_INFO, "-", "report-sent", "report_id=%s domain=%s rua=%s",
                    r.report_id, r.policy_domain, esc);
            /* Recorded before the next rua: a crash now does not resend. */
            if (envelope_save(x, env, fname, &swhy) != STS_OK)
                sts_log(STS_LOG_ERR, "-", "report-spool",
                        "report_id=%s rua=%s op=record-delivery error=\"%s\"", r.report_id,
                        esc, swhy.text);
        } else {
            char ewhy[STS_WHY_MAX];
            json_t *je = json_string(why.text);
            bool permanent = st == STS_PERMFAIL;

            (void)sts_log_escape(ewhy, sizeof(ewhy), why.text, strlen(why.text));
            (void)json_object_set_new(rs, "last_error", je != NULL ? je : json_string(ewhy));
            if (permanent) {
                /* Retrying cannot help: this rua is done with, the report
                 * does not wait for it (saved with the others below). */
                (void)json_object_set_new(rs, "given_up", json_integer(x->now));
                refused++;
                if (x->stats != NULL)
                    x->stats->given_up++;
            } else if (failures++ == 0) {
                (void)snprintf(first_err, sizeof(first_err), "%s: %s", u->uri, why.text);
            }
            sts_log(STS_LOG_NOTICE, "-", "report-failed",
                    "report_id=%s domain=%s rua=%s permanent=%s error=\"%s\"", r.report_id,
                    r.policy_domain, esc, permanent ? "yes" : "no", ewhy);
        }
    }
    if (failures == 0) {
        sts_log(STS_LOG_INFO, "-", "report-done", "report_id=%s domain=%s sent=%u given_up=%u",
                r.report_id, r.policy_domain, sent, refused);
        sts_rspool_finish(x->dirfd, &x->idx, r.report_id, fname, x->now);
        goto done;
    }
failed:
    (void)sts_log_escape(esc, sizeof(esc), first_err, strlen(first_err));
    if (x->now >= deadline) {
        sts_log(STS_LOG_WARNING, "-", "report-giveup",
                "report_id=%s domain=%s failed=%u first_attempt=%lld retry_time=%u error=\"%s\"",
                r.report_id, r.policy_domain, failures, (long long)first, x->o->retry_time_s, esc);
        if (x->stats != NULL)
            x->stats->given_up += failures;
        sts_rspool_finish(x->dirfd, &x->idx, r.report_id, fname, x->now);
    } else {
        int64_t attempts = jint(env, "attempts") + 1;
        int64_t next = x->now + backoff(attempts);
        sts_why swhy;

        if (next > deadline)
            next = deadline; /* one last try at the end of the retry time */
        if (json_object_set_new(env, "attempts", json_integer(attempts)) != 0 ||
            json_object_set_new(env, "next_attempt", json_integer(next)) != 0)
            goto nomem;
        if (envelope_save(x, env, fname, &swhy) != STS_OK)
            sts_log(STS_LOG_ERR, "-", "report-spool", "report_id=%s op=save error=\"%s\"",
                    r.report_id, swhy.text);
        if (x->stats != NULL)
            x->stats->deferred += failures;
        sts_log(STS_LOG_NOTICE, "-", "report-deferred",
                "report_id=%s domain=%s failed=%u attempts=%lld next_attempt=%lld error=\"%s\"",
                r.report_id, r.policy_domain, failures, (long long)attempts, (long long)next, esc);
    }
    goto done;
nomem:
    sts_log(STS_LOG_ERR, "-", "report-spool", "op=process file=%s error=\"out of memory\"",
            fname);
done:
    free(rec);
    free(gz);
    json_decref(env);
    free(data);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

sts_status sts_rsend_run(const sts_rsend_opts *o, int64_t now, sts_rsend_stats *stats,
                         sts_why *why)
{
    run_ctx x;
    DIR *d = NULL;
    struct dirent *e;
    char **names = NULL, **nn;
    size_t n = 0, cap = 0;
    struct sigaction ign, old_pipe;
    int fd2;
    sts_status st;

    memset(&x, 0, sizeof(x));
    x.o = o;
    x.now = now;
    x.stats = stats;
    st = sts_rspool_open(o, false, &x.dirfd, why);
    if (st == STS_NOTFOUND)
        return STS_OK; /* nothing was ever queued */
    if (st != STS_OK)
        return st;
    /* libcurl runs with CURLOPT_NOSIGNAL and a peer may close a TLS
     * connection under a write: that must be an error, not our death. */
    memset(&ign, 0, sizeof(ign));
    ign.sa_handler = SIG_IGN;
    (void)sigemptyset(&ign.sa_mask);
    (void)sigaction(SIGPIPE, &ign, &old_pipe);
    if ((st = spool_lock(x.dirfd, o->spool_dir, why)) != STS_OK)
        goto done;
    if ((st = sts_rspool_index_load(x.dirfd, &x.idx, why)) != STS_OK)
        goto done;
    sts_rspool_index_prune(x.dirfd, &x.idx, o, now);

    if ((fd2 = fcntl(x.dirfd, F_DUPFD_CLOEXEC, 0)) < 0 || (d = fdopendir(fd2)) == NULL) {
        if (fd2 >= 0)
            (void)close(fd2);
        sts_why_set(why, "cannot list spool %s: %s", o->spool_dir, strerror(errno));
        st = STS_TEMPFAIL;
        goto done;
    }
    while ((e = readdir(d)) != NULL) {
        if (!sts_rspool_is_name(e->d_name))
            continue;
        if ((nn = sts_array_reserve(names, n, &cap, 64, sizeof(*nn))) == NULL)
            goto nomem;
        names = nn;
        if ((names[n] = strdup(e->d_name)) == NULL)
            goto nomem;
        n++;
    }
    if (n > 0)
        qsort(names, n, sizeof(*names), cmp_names);
    for (size_t i = 0; i < n; i++)
        process_one(&x, names[i]);
    (void)fsync(x.dirfd); /* the removals */
    st = STS_OK;
    goto done;
nomem:
    sts_why_set(why, "out of memory");
    st = STS_NOMEM;
done:
    if (d != NULL)
        (void)closedir(d);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if (x.dns != NULL)
        sts_dns_free(x.dns);
    sts_rspool_index_free(&x.idx);
    if (x.dirfd >= 0)
        (void)close(x.dirfd);
    (void)sigaction(SIGPIPE, &old_pipe, NULL);
    return st;
}
