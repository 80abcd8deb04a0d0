/*
 * store_redis.c - the shared cache store (CacheStore
 * redis://HOST[:PORT][/DB]) for several MTAs that should agree on what
 * they learnt (RFC 8461 5.1: one fetch serves them all).  The only file
 * that includes hiredis.
 *
 * - Keys are "mtasts:v1:<domain>", each holding one record in the JSON
 *   form of store_impl.h, written with SET ... EX (expires_at - now), so
 *   Redis drops a record when it stops being usable; a record already
 *   expired is deleted instead.  Load and clear walk our prefix with SCAN
 *   (never KEYS, never FLUSHDB: the database may be shared).
 * - Synchronous hiredis with 500 ms connect and command timeouts: the
 *   engine's loop thread never waits longer than that on one command.
 * - Redis down is not an error of the store but a state: sts_store_open
 *   still returns a store (STS_TEMPFAIL), every operation fails at once
 *   with STS_TEMPFAIL while down (the engine serves from memory), and a
 *   reconnection is tried no sooner than a backoff of 1 s doubling to
 *   60 s; between attempts the network is not touched.  The loss and the
 *   return are logged exactly once each.  MTASTS_REDIS_BACKOFF_MS in the
 *   environment sets the first backoff (1..60000 ms), FOR TESTS.
 * - A connection that worked and then fails (Redis restarted, an idle
 *   timeout) gets one immediate reconnection and resend; every command
 *   sent here is idempotent.
 * - HOST may be a name: hiredis resolves it with getaddrinfo on each
 *   (re)connection attempt, which the timeouts do not bound.  Use an
 *   address (or a name in /etc/hosts) where that matters.
 * - SIGPIPE from writing to a dead connection is blocked and discarded
 *   around each command (the libpq way), so the process's disposition is
 *   left alone.
 */
#include "engine/store.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "base/clock.h"
#include "base/buf.h"
#include "base/log.h"
#include "engine/store_impl.h"
#include "base/sigpipe.h"

#define REDIS_DEFAULT_PORT 6379
#define REDIS_TIMEOUT_MS 500             /* connect, and each command */
#define REDIS_BACKOFF_MIN_MS 1000u       /* first wait after a failure */
#define REDIS_BACKOFF_MAX_MS 60000u      /* the wait doubles up to this */
#define REDIS_BACKOFF_ENV "MTASTS_REDIS_BACKOFF_MS"
#define REDIS_MAX_DB 2147483647u         /* SELECT takes a C int */
#define REDIS_PREFIX "mtasts:v1:"
#define REDIS_PREFIX_LEN (sizeof(REDIS_PREFIX) - 1)
#define REDIS_KEY_MAX (REDIS_PREFIX_LEN + STS_DOMAIN_MAX)
#define REDIS_SCAN_COUNT "500"
#define REDIS_CURSOR_MAX 20              /* digits of a 64-bit SCAN cursor */
#define REDIS_MAX_TTL 315360000LL        /* 10 years; far beyond any max_age */
#define REDIS_PURGE_SEQ "mtasts:purge:v1:seq"  /* outside REDIS_PREFIX: load and clear */
#define REDIS_PURGE_LOG "mtasts:purge:v1:log"  /* never meet these keys */
#define REDIS_PURGE_KEEP "-1001"               /* ZREMRANGEBYRANK stop: keep the newest 1000 */
#define REDIS_SHOW_MAX 120               /* bytes of a server error quoted */

typedef struct redis_store {
    redisContext *c;         /* NULL while disconnected */
    char host[STS_DOMAIN_MAX + 1];
    int port;
    unsigned db;
    char name[STS_DOMAIN_MAX + 32]; /* "host:port/db" for messages */
    bool down;               /* unreachable, and already said so */
    unsigned backoff_min_ms;
    unsigned backoff_ms;     /* the wait after the next failure */
    int64_t retry_at_ms;     /* monotonic: no connection attempt before this */
    char error[160];         /* why the last attempt failed, for messages */
} redis_store;

/* "N s" or "N ms" for a log line. */
static const char *show_wait(char *dst, size_t dstsz, unsigned ms)
{
    if (ms % 1000 == 0)
        (void)snprintf(dst, dstsz, "%u s", ms / 1000);
    else
        (void)snprintf(dst, dstsz, "%u ms", ms);
    return dst;
}

/* ------------------------------------------------------------ URL */

static bool is_host_char(unsigned char c)
{
    return sts_is_alnum(c) || c == '-' || c == '.' || c == '_';
}

static bool is_v6_char(unsigned char c)
{
    return sts_is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' ||
           c == '.';
}

/* redis://HOST[:PORT][/DB], HOST a name, an IPv4 address or [IPv6]. */
static sts_status parse_url(const char *url, redis_store *r, sts_why *why)
{
    sts_cur v = sts_cur_str(url), host;
    uint64_t n;
    bool bracket;

    if (!sts_cur_take_lit_nocase(&v, "redis://"))
        goto bad;
    bracket = sts_cur_take_char(&v, '[');
    if (bracket) {
        if (!sts_cur_take_while(&v, is_v6_char, &host) || !sts_cur_take_char(&v, ']'))
            goto bad;
    } else if (!sts_cur_take_while(&v, is_host_char, &host)) {
        goto bad;
    }
    if (host.len > STS_DOMAIN_MAX)
        goto bad;
    memcpy(r->host, host.p, host.len);
    r->host[host.len] = '\0';
    r->port = REDIS_DEFAULT_PORT;
    if (sts_cur_take_char(&v, ':')) {
        if (!sts_cur_take_number(&v, 5, 65535, &n) || n == 0)
            goto bad;
        r->port = (int)n;
    }
    r->db = 0;
    if (sts_cur_take_char(&v, '/')) {
        if (!sts_cur_take_number(&v, 10, REDIS_MAX_DB, &n))
            goto bad;
        r->db = (unsigned)n;
    }
    if (!sts_cur_empty(&v))
        goto bad;
    if (bracket)
        (void)snprintf(r->name, sizeof(r->name), "[%s]:%d/%u", r->host, r->port, r->db);
    else
        (void)snprintf(r->name, sizeof(r->name), "%s:%d/%u", r->host, r->port, r->db);
    return STS_OK;
bad:
    {
        char shown[REDIS_SHOW_MAX * 4 + 1];

        sts_why_set(why, "'%s' is not redis://HOST[:PORT][/DB]",
                    sts_log_escape(shown, sizeof(shown), url, strnlen(url, REDIS_SHOW_MAX)));
    }
    return STS_PERMFAIL;
}

/* The first backoff: 1 s, or MTASTS_REDIS_BACKOFF_MS (tests). */
static sts_status backoff_from_env(redis_store *r, sts_why *why)
{
    const char *env = getenv(REDIS_BACKOFF_ENV);
    sts_cur v;
    uint64_t n;

    r->backoff_min_ms = REDIS_BACKOFF_MIN_MS;
    if (env == NULL)
        return STS_OK;
    v = sts_cur_str(env);
    if (!sts_cur_take_number(&v, 5, REDIS_BACKOFF_MAX_MS, &n) || n == 0 || !sts_cur_empty(&v)) {
        sts_why_set(why, "%s must be a number of milliseconds in 1..%u", REDIS_BACKOFF_ENV,
                    REDIS_BACKOFF_MAX_MS);
        return STS_PERMFAIL;
    }
    r->backoff_min_ms = (unsigned)n;
    return STS_OK;
}

/* ------------------------------------------------------------ connection */

static redisReply *exec_argv(redisContext *c, int argc, const char **argv, const size_t *lens)
{
    sts_sigpipe_guard g;
    redisReply *reply;

    sts_sigpipe_block(&g);
    reply = redisCommandArgv(c, argc, argv, lens);
    sts_sigpipe_restore(&g);
    return reply;
}

/* A server error reply, escaped, into why. */
static void reply_error(const redis_store *r, const char *what, const redisReply *reply,
                        sts_why *why)
{
    char shown[REDIS_SHOW_MAX * 4 + 1];

    sts_why_set(why, "redis %s %s: %s", r->name, what,
                sts_log_escape(shown, sizeof(shown), reply->str,
                               reply->len > REDIS_SHOW_MAX ? REDIS_SHOW_MAX : reply->len));
}

static void set_error(redis_store *r, const char *fmt, ...) STS_PRINTF(2, 3);

static void set_error(redis_store *r, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(r->error, sizeof(r->error), fmt, ap);
    va_end(ap);
}

/* Connect, and SELECT the database (or PING for database 0) so that a
 * server refusing us (a bad database, a password we do not send) shows
 * now.  STS_TEMPFAIL: not reachable; STS_PERMFAIL: the server refused;
 * the reason goes to r->error. */
static sts_status connect_now(redis_store *r)
{
    char shown[REDIS_SHOW_MAX * 4 + 1];
    struct timeval tv = { 0, REDIS_TIMEOUT_MS * 1000 };
    char dbtext[16];
    const char *argv[2];
    size_t lens[2];
    redisReply *reply = NULL;
    redisContext *c;
    sts_status st = STS_TEMPFAIL;
    int argc;

    c = redisConnectWithTimeout(r->host, r->port, tv);
    if (c == NULL) {
        st = STS_NOMEM;
        set_error(r, "out of memory");
        goto done;
    }
    if (c->err != 0) {
        set_error(r, "%s", c->errstr);
        goto done;
    }
    if (redisSetTimeout(c, tv) != REDIS_OK) {
        set_error(r, "cannot set the timeout: %s", strerror(errno));
        goto done;
    }
    (void)redisEnableKeepAlive(c);
    if (r->db != 0) {
        (void)snprintf(dbtext, sizeof(dbtext), "%u", r->db);
        argv[0] = "SELECT";
        argv[1] = dbtext;
        argc = 2;
    } else {
        argv[0] = "PING";
        argc = 1;
    }
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    reply = exec_argv(c, argc, argv, lens);
    if (reply == NULL) {
        set_error(r, "%s: %s", argv[0], c->errstr);
        goto done;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        set_error(r, "%s: %s", argv[0],
                  sts_log_escape(shown, sizeof(shown), reply->str,
                                 reply->len > REDIS_SHOW_MAX ? REDIS_SHOW_MAX : reply->len));
        st = STS_PERMFAIL;
        goto done;
    }
    r->c = c;
    c = NULL;
    st = STS_OK;
done:
    freeReplyObject(reply);
    if (c != NULL)
        redisFree(c);
    return st;
}

/* The connection failed (reason in r->error): drop it and wait a backoff
 * before the next attempt.  quiet: the caller reports it (open). */
static void lost(redis_store *r, bool quiet)
{
    char wait[32];

    if (r->c != NULL) {
        redisFree(r->c);
        r->c = NULL;
    }
    if (!r->down) {
        r->down = true;
        r->backoff_ms = r->backoff_min_ms;
        if (!quiet)
            sts_log(STS_LOG_WARNING, "-", "store",
                    "redis unreachable server=%s error=\"%s\": serving from memory, "
                    "retrying in %s",
                    r->name, r->error, show_wait(wait, sizeof(wait), r->backoff_ms));
    } else {
        sts_log(STS_LOG_DEBUG, "-", "store", "redis still unreachable server=%s error=\"%s\"",
                r->name, r->error);
    }
    r->retry_at_ms = sts_mono_ms() + r->backoff_ms;
    r->backoff_ms = r->backoff_ms >= REDIS_BACKOFF_MAX_MS / 2 ? REDIS_BACKOFF_MAX_MS
                                                             : r->backoff_ms * 2;
}

static void unreachable(const redis_store *r, sts_why *why)
{
    int64_t left = r->retry_at_ms - sts_mono_ms();

    sts_why_set(why, "redis %s unreachable (%s), next attempt in %lld ms", r->name, r->error,
                (long long)(left > 0 ? left : 0));
}

/* A connection, or STS_TEMPFAIL at once while the backoff runs. */
static sts_status ready(redis_store *r, sts_why *why)
{
    sts_status st;

    if (r->c != NULL)
        return STS_OK;
    if (r->down && sts_mono_ms() < r->retry_at_ms) {
        unreachable(r, why);
        return STS_TEMPFAIL;
    }
    st = connect_now(r);
    if (st != STS_OK) {
        lost(r, false);
        unreachable(r, why);
        return st == STS_NOMEM ? STS_NOMEM : STS_TEMPFAIL;
    }
    if (r->down) {
        r->down = false;
        sts_log(STS_LOG_NOTICE, "-", "store", "redis reconnected server=%s", r->name);
    }
    r->backoff_ms = r->backoff_min_ms;
    return STS_OK;
}

/* Send one command and return its reply (never an error reply: those
 * are turned into a status here).  A connection that was open before this
 * call and fails now gets one immediate reconnection and resend. */
static redisReply *command(redis_store *r, int argc, const char **argv, const size_t *lens,
                           sts_status *st, sts_why *why)
{
    redisReply *reply;

    for (int attempt = 0; attempt < 2; attempt++) {
        bool was_open = r->c != NULL;

        *st = ready(r, why);
        if (*st != STS_OK)
            return NULL;
        reply = exec_argv(r->c, argc, argv, lens);
        if (reply == NULL) {
            set_error(r, "%s: %s", argv[0], r->c->errstr);
            redisFree(r->c);
            r->c = NULL;
            if (was_open && attempt == 0)
                continue;
            lost(r, false);
            unreachable(r, why);
            *st = STS_TEMPFAIL;
            return NULL;
        }
        if (reply->type == REDIS_REPLY_ERROR) {
            /* Reachable but refusing (LOADING, READONLY, OOM, ...): may
             * pass.  WRONGTYPE: another type under our key, data we cannot
             * decode rather than an outage. */
            reply_error(r, argv[0], reply, why);
            *st = reply->len >= 9 && memcmp(reply->str, "WRONGTYPE", 9) == 0 ? STS_PERMFAIL
                                                                           : STS_TEMPFAIL;
            freeReplyObject(reply);
            return NULL;
        }
        *st = STS_OK;
        return reply;
    }
    return NULL; /* not reached: the second attempt always returns */
}

static size_t make_key(char key[REDIS_KEY_MAX + 1], const char *domain)
{
    size_t n = strlen(domain); /* checked by store.c: at most STS_DOMAIN_MAX */

    memcpy(key, REDIS_PREFIX, REDIS_PREFIX_LEN);
    memcpy(key + REDIS_PREFIX_LEN, domain, n + 1);
    return REDIS_PREFIX_LEN + n;
}

/* ------------------------------------------------------------ operations */

static sts_status redis_del(void *be, const char *domain, sts_why *why)
{
    redis_store *r = be;
    char key[REDIS_KEY_MAX + 1];
    const char *argv[2] = { "DEL", key };
    size_t lens[2] = { 3, make_key(key, domain) };
    redisReply *reply;
    sts_status st;

    reply = command(r, 2, argv, lens, &st, why);
    freeReplyObject(reply);
    return st;
}

static sts_status redis_put(void *be, const sts_cache_record *rec, sts_why *why)
{
    redis_store *r = be;
    char key[REDIS_KEY_MAX + 1], ttltext[24];
    const char *argv[5];
    size_t lens[5];
    char *json = NULL;
    size_t jlen;
    redisReply *reply = NULL;
    int64_t ttl = rec->expires_at - (int64_t)time(NULL);
    sts_status st;

    if (ttl <= 0)
        return redis_del(be, rec->domain, why);
    if (ttl > REDIS_MAX_TTL)
        ttl = REDIS_MAX_TTL;
    st = sts_store_record_encode(rec, &json, &jlen, why);
    if (st != STS_OK)
        goto done;
    (void)snprintf(ttltext, sizeof(ttltext), "%lld", (long long)ttl);
    argv[0] = "SET";
    argv[1] = key;
    argv[2] = json;
    argv[3] = "EX";
    argv[4] = ttltext;
    lens[0] = 3;
    lens[1] = make_key(key, rec->domain);
    lens[2] = jlen;
    lens[3] = 2;
    lens[4] = strlen(ttltext);
    reply = command(r, 5, argv, lens, &st, why);
    if (st == STS_OK && reply->type != REDIS_REPLY_STATUS) {
        sts_why_set(why, "redis %s SET: unexpected reply type %d", r->name, reply->type);
        st = STS_TEMPFAIL;
    }
done:
    freeReplyObject(reply);
    free(json);
    return st;
}

static sts_status redis_get(void *be, const char *domain, sts_cache_record *out, sts_why *why)
{
    redis_store *r = be;
    char key[REDIS_KEY_MAX + 1];
    const char *argv[2] = { "GET", key };
    size_t lens[2] = { 3, make_key(key, domain) };
    redisReply *reply;
    sts_why bad;
    sts_status st;

    reply = command(r, 2, argv, lens, &st, &bad);
    if (st == STS_PERMFAIL)
        sts_why_set(why, "the record stored for %s cannot be decoded: %s", domain, bad.text);
    else if (st != STS_OK)
        sts_why_set(why, "%s", bad.text);
    if (st != STS_OK)
        goto done;
    if (reply->type == REDIS_REPLY_NIL) {
        sts_why_set(why, "%s: no record", domain);
        st = STS_NOTFOUND;
    } else if (reply->type != REDIS_REPLY_STRING) {
        sts_why_set(why, "redis %s GET: unexpected reply type %d", r->name, reply->type);
        st = STS_TEMPFAIL;
    } else {
        st = sts_store_record_decode(reply->str, reply->len, out, &bad);
        if (st == STS_PERMFAIL)
            sts_why_set(why, "the record stored for %s cannot be decoded: %s", domain, bad.text);
        else if (st != STS_OK)
            sts_why_set(why, "%s", bad.text);
    }
done:
    freeReplyObject(reply);
    return st;
}

/* One SCAN step over our prefix: *reply holds [cursor, [keys...]]; the
 * next cursor is copied to cursor ("0" when done). */
static sts_status scan_step(redis_store *r, char cursor[REDIS_CURSOR_MAX + 1], redisReply **reply,
                            sts_why *why)
{
    const char *argv[6] = { "SCAN", cursor, "MATCH", REDIS_PREFIX "*", "COUNT", REDIS_SCAN_COUNT };
    size_t lens[6];
    redisReply *rep, *cur, *keys;
    sts_cur digits, all;
    sts_status st;

    for (int i = 0; i < 6; i++)
        lens[i] = strlen(argv[i]);
    *reply = NULL;
    rep = command(r, 6, argv, lens, &st, why);
    if (st != STS_OK)
        return st;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_STRING ||
        rep->element[1]->type != REDIS_REPLY_ARRAY) {
        sts_why_set(why, "redis %s SCAN: malformed reply", r->name);
        freeReplyObject(rep);
        return STS_TEMPFAIL;
    }
    cur = rep->element[0];
    keys = rep->element[1];
    all = sts_cur_make(cur->str, cur->len);
    if (!sts_cur_take_while(&all, sts_is_digit, &digits) || !sts_cur_empty(&all) ||
        digits.len > REDIS_CURSOR_MAX) {
        sts_why_set(why, "redis %s SCAN: malformed cursor", r->name);
        freeReplyObject(rep);
        return STS_TEMPFAIL;
    }
    for (size_t i = 0; i < keys->elements; i++) {
        if (keys->element[i]->type != REDIS_REPLY_STRING) {
            sts_why_set(why, "redis %s SCAN: malformed key list", r->name);
            freeReplyObject(rep);
            return STS_TEMPFAIL;
        }
    }
    memcpy(cursor, digits.p, digits.len);
    cursor[digits.len] = '\0';
    *reply = rep;
    return STS_OK;
}

/* argv/lens for "CMD key..." over the keys of a SCAN reply. */
static sts_status keys_argv(const char *cmd, const redisReply *keys, const char ***argv,
                            size_t **lens)
{
    size_t n = keys->elements + 1;

    *argv = sts_calloc_array(n, sizeof(**argv));
    *lens = sts_calloc_array(n, sizeof(**lens));
    if (*argv == NULL || *lens == NULL || n > (size_t)INT_MAX) {
        free(*argv);
        free(*lens);
        *argv = NULL;
        *lens = NULL;
        return STS_NOMEM;
    }
    (*argv)[0] = cmd;
    (*lens)[0] = strlen(cmd);
    for (size_t i = 0; i < keys->elements; i++) {
        (*argv)[i + 1] = keys->element[i]->str;
        (*lens)[i + 1] = keys->element[i]->len;
    }
    return STS_OK;
}

static sts_status redis_clear(void *be, sts_why *why)
{
    redis_store *r = be;
    char cursor[REDIS_CURSOR_MAX + 1] = "0";
    redisReply *scan = NULL, *reply = NULL;
    const char **argv = NULL;
    size_t *lens = NULL;
    sts_status st;

    do {
        st = scan_step(r, cursor, &scan, why);
        if (st != STS_OK)
            goto done;
        if (scan->element[1]->elements > 0) {
            st = keys_argv("DEL", scan->element[1], &argv, &lens);
            if (st != STS_OK) {
                sts_why_set(why, "out of memory clearing the cache");
                goto done;
            }
            reply = command(r, (int)scan->element[1]->elements + 1, argv, lens, &st, why);
            freeReplyObject(reply);
            reply = NULL;
            free(argv);
            free(lens);
            argv = NULL;
            lens = NULL;
            if (st != STS_OK)
                goto done;
        }
        freeReplyObject(scan);
        scan = NULL;
    } while (strcmp(cursor, "0") != 0);
done:
    freeReplyObject(scan);
    return st;
}

/* Decode one MGET value for key; false if it cannot be decoded. */
static bool decode_value(const redisReply *key, const redisReply *val, sts_cache_record *rec,
                         sts_status *st)
{
    sts_why bad;

    *st = STS_OK;
    if (val->type != REDIS_REPLY_STRING)
        return false;
    *st = sts_store_record_decode(val->str, val->len, rec, &bad);
    if (*st == STS_PERMFAIL) {
        *st = STS_OK;
        return false;
    }
    if (*st != STS_OK)
        return false;
    /* The value must be the record of the domain its key names. */
    if (key->len != REDIS_PREFIX_LEN + strlen(rec->domain) ||
        memcmp(key->str + REDIS_PREFIX_LEN, rec->domain, key->len - REDIS_PREFIX_LEN) != 0) {
        sts_cache_record_clear(rec);
        return false;
    }
    return true;
}

static sts_status redis_load(void *be, sts_store_each_cb *each, void *arg, size_t *skipped,
                             sts_why *why)
{
    redis_store *r = be;
    char cursor[REDIS_CURSOR_MAX + 1] = "0";
    redisReply *scan = NULL, *vals = NULL;
    const char **argv = NULL;
    size_t *lens = NULL;
    sts_cache_record rec;
    sts_status st;
    bool stop = false;

    do {
        const redisReply *keys;

        st = scan_step(r, cursor, &scan, why);
        if (st != STS_OK)
            goto done;
        keys = scan->element[1];
        if (keys->elements > 0) {
            st = keys_argv("MGET", keys, &argv, &lens);
            if (st != STS_OK) {
                sts_why_set(why, "out of memory loading the cache");
                goto done;
            }
            vals = command(r, (int)keys->elements + 1, argv, lens, &st, why);
            if (st != STS_OK)
                goto done;
            if (vals->type != REDIS_REPLY_ARRAY || vals->elements != keys->elements) {
                sts_why_set(why, "redis %s MGET: malformed reply", r->name);
                st = STS_TEMPFAIL;
                goto done;
            }
            for (size_t i = 0; i < keys->elements && !stop; i++) {
                /* nil: expired or deleted since SCAN saw it - not damage. */
                if (vals->element[i]->type == REDIS_REPLY_NIL)
                    continue;
                if (!decode_value(keys->element[i], vals->element[i], &rec, &st)) {
                    if (st != STS_OK) {
                        sts_why_set(why, "out of memory loading the cache");
                        goto done;
                    }
                    (*skipped)++;
                    continue;
                }
                stop = !each(arg, &rec);
                sts_cache_record_clear(&rec);
            }
            freeReplyObject(vals);
            vals = NULL;
            free(argv);
            free(lens);
            argv = NULL;
            lens = NULL;
        }
        freeReplyObject(scan);
        scan = NULL;
    } while (!stop && strcmp(cursor, "0") != 0);
done:
    freeReplyObject(vals);
    freeReplyObject(scan);
    free(argv);
    free(lens);
    return st;
}

/* A reply that is a decimal integer (INCR, GET of a counter, a
 * WITHSCORES score) as a number; false for anything else. */
static bool reply_number(const redisReply *rep, uint64_t *n)
{
    sts_cur v;

    if (rep == NULL)
        return false;
    if (rep->type == REDIS_REPLY_INTEGER) {
        if (rep->integer < 0)
            return false;
        *n = (uint64_t)rep->integer;
        return true;
    }
    if (rep->type == REDIS_REPLY_NIL) {
        *n = 0;
        return true;
    }
    if (rep->type != REDIS_REPLY_STRING)
        return false;
    v = sts_cur_make(rep->str, rep->len);
    return sts_cur_take_number(&v, 19, INT64_MAX, n) && sts_cur_empty(&v);
}

static sts_status redis_purge_note(void *be, const char *domain, sts_why *why)
{
    redis_store *r = be;
    const char *incr[2] = { "INCR", REDIS_PURGE_SEQ };
    const char *trim[4] = { "ZREMRANGEBYRANK", REDIS_PURGE_LOG, "0", REDIS_PURGE_KEEP };
    const char *zadd[4] = { "ZADD", REDIS_PURGE_LOG, NULL, NULL };
    size_t lens[4];
    char num[24];
    redisReply *reply;
    uint64_t seq = 0;
    sts_status st;

    for (int i = 0; i < 2; i++)
        lens[i] = strlen(incr[i]);
    reply = command(r, 2, incr, lens, &st, why);
    if (st == STS_OK && !reply_number(reply, &seq)) {
        sts_why_set(why, "redis %s INCR: unexpected reply type %d", r->name, reply->type);
        st = STS_TEMPFAIL;
    }
    freeReplyObject(reply);
    if (st != STS_OK)
        return st;
    (void)snprintf(num, sizeof(num), "%llu", (unsigned long long)seq);
    /* One member per domain: a later purge of it moves it up. */
    zadd[2] = num;
    zadd[3] = domain != NULL ? domain : STS_STORE_PURGE_ALL;
    for (int i = 0; i < 4; i++)
        lens[i] = strlen(zadd[i]);
    reply = command(r, 4, zadd, lens, &st, why);
    freeReplyObject(reply);
    if (st != STS_OK)
        return st;
    for (int i = 0; i < 4; i++)
        lens[i] = strlen(trim[i]);
    reply = command(r, 4, trim, lens, &st, why);
    freeReplyObject(reply);
    return st;
}

static sts_status redis_purges_since(void *be, uint64_t *seq, sts_store_purge_cb *each,
                                     void *arg, sts_why *why)
{
    redis_store *r = be;
    char from[24];
    const char *get[2] = { "GET", REDIS_PURGE_SEQ };
    const char *range[8] = { "ZRANGEBYSCORE", REDIS_PURGE_LOG, from, "+inf", "WITHSCORES",
                             "LIMIT", "0", "1000" };
    size_t lens[8];
    redisReply *reply;
    uint64_t n;
    sts_status st;

    if (each == NULL) {
        for (int i = 0; i < 2; i++)
            lens[i] = strlen(get[i]);
        reply = command(r, 2, get, lens, &st, why);
        if (st == STS_OK && reply_number(reply, &n) && n > *seq)
            *seq = n;
        freeReplyObject(reply);
        return st;
    }
    (void)snprintf(from, sizeof(from), "(%llu", (unsigned long long)*seq);
    for (int i = 0; i < 8; i++)
        lens[i] = strlen(range[i]);
    reply = command(r, 8, range, lens, &st, why);
    if (st == STS_OK && reply->type != REDIS_REPLY_ARRAY) {
        sts_why_set(why, "redis %s ZRANGEBYSCORE: unexpected reply type %d", r->name,
                    reply->type);
        st = STS_TEMPFAIL;
    }
    for (size_t i = 0; st == STS_OK && i + 1 < reply->elements; i += 2) {
        const redisReply *m = reply->element[i];

        if (!reply_number(reply->element[i + 1], &n))
            continue;
        if (n > *seq)
            *seq = n;
        if (m->type != REDIS_REPLY_STRING)
            continue;
        if (m->len == 1 && m->str[0] == STS_STORE_PURGE_ALL[0])
            each(arg, NULL);
        else if (sts_store_domain_ok(m->str, m->len))
            each(arg, m->str);
    }
    freeReplyObject(reply);
    return st;
}

static void redis_close(void *be)
{
    redis_store *r = be;

    if (r == NULL)
        return;
    if (r->c != NULL)
        redisFree(r->c);
    free(r);
}

static const sts_store_ops redis_ops = {
    .name = "redis",
    .put = redis_put,
    .get = redis_get,
    .del = redis_del,
    .clear = redis_clear,
    .load = redis_load,
    .purge_note = redis_purge_note,
    .purges_since = redis_purges_since,
    .close = redis_close,
};

sts_status sts_store_redis_open(const char *url, sts_store *s, sts_why *why)
{
    redis_store *r = NULL;
    char wait[32];
    sts_status st;

    r = calloc(1, sizeof(*r));
    if (r == NULL) {
        st = STS_NOMEM;
        sts_why_set(why, "out of memory opening the redis store");
        goto done;
    }
    st = parse_url(url, r, why);
    if (st == STS_OK)
        st = backoff_from_env(r, why);
    if (st != STS_OK)
        goto done;
    r->backoff_ms = r->backoff_min_ms;
    st = connect_now(r);
    if (st == STS_TEMPFAIL) {
        /* Down from the start: a usable store all the same.  The caller
         * logs this reason; the return is logged when it happens. */
        lost(r, true);
        sts_why_set(why, "redis %s unreachable (%s): serving from memory, retrying in %s",
                    r->name, r->error, show_wait(wait, sizeof(wait), r->backoff_min_ms));
    } else if (st != STS_OK) {
        sts_why_set(why, "redis %s: %s", r->name, r->error);
        goto done;
    } else {
        sts_why_set(why, "%s", "");
    }
    s->ops = &redis_ops;
    s->be = r;
    r = NULL;
done:
    redis_close(r);
    return st;
}
