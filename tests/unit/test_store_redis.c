/*
 * test_store_redis.c - the Redis cache store (src/store_redis.c) against
 * a real redis-server that the test starts itself on a free loopback port
 * (no persistence, its own temporary directory) and kills at the end.
 * Without /usr/bin/redis-server it prints "SKIP: redis-server not
 * installed" and exits 77, automake's skip code.
 *
 * Pins: round trips; the key TTL follows expires_at and an expired record
 * is deleted; load walks 1,200 records with SCAN; clear removes our prefix
 * only; /DB selects the database; values written behind our back that do
 * not decode are skipped and counted; with the server killed every
 * operation fails fast with TEMPFAIL, and after a restart on the same port
 * the store reconnects by itself, logging the loss and the return once
 * each.  MTASTS_REDIS_BACKOFF_MS shortens the backoff for the test.
 */
#include <setjmp.h> /* cmocka needs these first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "engine/store.h"
#include "engine/store_impl.h"
#include "store_fixture.h"
#include "unit_tmp.h"

#define REDIS_SERVER "/usr/bin/redis-server"
#define TEST_BACKOFF_MS "100"

static char tmpdir[512];
static int main_port;       /* the server shared by most tests */
static pid_t main_pid = -1;

/* ------------------------------------------------------------ server */

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static int free_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int port;

    assert_true(fd >= 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static redisContext *raw_connect(int port)
{
    struct timeval tv = { 1, 0 };
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);

    if (c != NULL && c->err != 0) {
        redisFree(c);
        return NULL;
    }
    return c;
}

/* Start redis-server on port and wait until it answers PING. */
static pid_t server_start(int port)
{
    char portstr[16];
    pid_t pid;
    double deadline;

    (void)snprintf(portstr, sizeof(portstr), "%d", port);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);

        /* Die with the test, whatever happens to it. */
        (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
            dup2(null, 2);
        }
        execl(REDIS_SERVER, "redis-server", "--port", portstr, "--bind", "127.0.0.1", "--save",
              "", "--appendonly", "no", "--daemonize", "no", "--dir", tmpdir, (char *)NULL);
        _exit(127);
    }
    deadline = now_ms() + 10000;
    while (now_ms() < deadline) {
        redisContext *c = raw_connect(port);

        if (c != NULL) {
            redisReply *r = redisCommand(c, "PING");
            bool up = r != NULL && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;

            freeReplyObject(r);
            redisFree(c);
            if (up)
                return pid;
        }
        usleep(20000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    fail_msg("redis-server on port %d: got no PONG within 10 s, want one", port);
    return -1;
}

static void server_stop(pid_t pid, int sig)
{
    if (pid <= 0)
        return;
    kill(pid, sig);
    waitpid(pid, NULL, 0);
}

/* ------------------------------------------------------------ helpers */

static redisContext *raw(void)
{
    redisContext *c = raw_connect(main_port);

    assert_non_null(c);
    return c;
}

static redisReply *raw_cmd(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    redisReply *r;

    va_start(ap, fmt);
    r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (r == NULL)
        fail_msg("raw command '%s': %s", fmt, c->errstr);
    return r;
}

static long long raw_int(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    redisReply *r;
    long long v;

    va_start(ap, fmt);
    r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (r == NULL || r->type != REDIS_REPLY_INTEGER)
        fail_msg("raw '%s': got %s, want an integer", fmt,
                 r == NULL ? c->errstr : r->type == REDIS_REPLY_ERROR ? r->str : "another type");
    v = r->integer;
    freeReplyObject(r);
    return v;
}

static void raw_ok(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    redisReply *r;

    va_start(ap, fmt);
    r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (r == NULL || r->type == REDIS_REPLY_ERROR)
        fail_msg("raw command '%s': %s", fmt, r != NULL ? r->str : c->errstr);
    freeReplyObject(r);
}

static sts_store *open_url(const char *url)
{
    sts_store *s = NULL;
    sts_why why;
    sts_status st;

    why.text[0] = 'x';
    st = sts_store_open(url, &s, &why);
    if (st != STS_OK)
        fail_msg("open %s: got %s (%s), want ok", url, sts_status_name(st), why.text);
    if (why.text[0] != '\0')
        fail_msg("open %s: got reason '%s', want none", url, why.text);
    if (strcmp(sts_store_backend(s), "redis") != 0)
        fail_msg("backend: got %s, want redis", sts_store_backend(s));
    return s;
}

static sts_store *open_main(unsigned db)
{
    char url[64];

    (void)snprintf(url, sizeof(url), "redis://127.0.0.1:%d/%u", main_port, db);
    return open_url(url);
}

static void put_ok(sts_store *s, const sts_cache_record *r)
{
    sts_why why;

    expect_status(r->domain, sts_store_put(s, r, &why), STS_OK, &why);
}

static void get_expect(sts_store *s, const sts_cache_record *want)
{
    sts_cache_record got;
    sts_why why;

    expect_status(want->domain, sts_store_get(s, want->domain, &got, &why), STS_OK, &why);
    rec_expect(want->domain, &got, want);
    sts_cache_record_clear(&got);
}

static void get_notfound(sts_store *s, const char *domain)
{
    sts_cache_record got;
    sts_why why;

    expect_status(domain, sts_store_get(s, domain, &got, &why), STS_NOTFOUND, &why);
}

/* A record whose times are relative to now, so that its TTL is real. */
static void rec_live(sts_cache_record *r, int kind, const char *domain, int64_t ttl)
{
    int64_t now = (int64_t)time(NULL);

    rec_of_kind(r, kind, domain, now - 100);
    r->expires_at = now + ttl;
}

typedef struct collected {
    size_t n;
    char (*domains)[STS_DOMAIN_MAX + 1]; /* the first cap domains seen */
    size_t cap;
} collected;

static bool collect(void *arg, const sts_cache_record *r)
{
    collected *c = arg;

    if (c->n < c->cap)
        memcpy(c->domains[c->n], r->domain, sizeof(r->domain));
    c->n++;
    return true;
}

static void flush_all(void)
{
    redisContext *c = raw();

    raw_ok(c, "FLUSHALL");
    redisFree(c);
}

/* ------------------------------------------------------------ tests */

static void test_round_trip_each_kind(void **state)
{
    sts_store *s;

    (void)state;
    flush_all();
    s = open_main(0);
    for (int k = 0; k < 3; k++) {
        char domain[64];
        sts_cache_record r, r2;
        sts_why why;

        (void)snprintf(domain, sizeof(domain), "kind%d.example", k);
        rec_live(&r, k, domain, 3600);
        put_ok(s, &r);
        get_expect(s, &r);
        rec_live(&r2, (k + 1) % 3, domain, 7200);
        put_ok(s, &r2);
        get_expect(s, &r2);
        expect_status("delete", sts_store_delete(s, domain, &why), STS_OK, &why);
        get_notfound(s, domain);
        expect_status("delete again", sts_store_delete(s, domain, &why), STS_OK, &why);
        sts_cache_record_clear(&r);
        sts_cache_record_clear(&r2);
    }
    sts_store_close(s);
}

static void test_purge_log_between_handles(void **state)
{
    sts_store *a, *b;

    (void)state;
    flush_all();
    a = open_main(0);
    b = open_main(0);
    purge_log_check(a, b);
    sts_store_close(a);
    sts_store_close(b);
}

static void test_value_is_the_json_record(void **state)
{
    sts_store *s;
    sts_cache_record r;
    redisContext *c;
    redisReply *v;
    char *json;
    size_t len;
    sts_why why;

    (void)state;
    flush_all();
    s = open_main(0);
    rec_live(&r, 0, "json.example", 3600);
    put_ok(s, &r);
    expect_status("encode", sts_store_record_encode(&r, &json, &len, &why), STS_OK, &why);
    c = raw();
    v = raw_cmd(c, "GET mtasts:v1:json.example");
    if (v->type != REDIS_REPLY_STRING || v->len != len || memcmp(v->str, json, len) != 0)
        fail_msg("value of mtasts:v1:json.example: got '%s', want '%s'",
                 v->type == REDIS_REPLY_STRING ? v->str : "(not a string)", json);
    freeReplyObject(v);
    free(json);
    redisFree(c);
    sts_cache_record_clear(&r);
    sts_store_close(s);
}

/* Records leave Redis by their TTL, so prune has nothing to do: even a
 * cut past every expiry leaves them to it. */
static void test_ttl_follows_expires_at(void **state)
{
    static const struct {
        const char *domain;
        int kind;
        int64_t ttl;
    } cases[] = {
        { "ttl-policy.example", 0, 86400 },
        { "ttl-nopolicy.example", 1, 300 },
        { "ttl-failed.example", 2, 60 },
        { "ttl-one-second.example", 2, 1 },
    };
    sts_store *s;
    redisContext *c;
    sts_why why;

    (void)state;
    flush_all();
    s = open_main(0);
    c = raw();
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sts_cache_record r;
        char key[300];
        long long ttl;

        rec_live(&r, cases[i].kind, cases[i].domain, cases[i].ttl);
        put_ok(s, &r);
        (void)snprintf(key, sizeof(key), "mtasts:v1:%s", cases[i].domain);
        ttl = raw_int(c, "TTL %s", key);
        /* A second may tick between put and TTL. */
        if (ttl > cases[i].ttl || ttl < cases[i].ttl - 2 || ttl < 0)
            fail_msg("TTL of %s: got %lld, want %lld (or up to 2 s less)", key, ttl,
                     (long long)cases[i].ttl);
        sts_cache_record_clear(&r);
    }
    expect_status("prune", sts_store_prune(s, (int64_t)time(NULL) + 7 * 86400, &why), STS_OK,
                  &why);
    if (raw_int(c, "EXISTS %s", "mtasts:v1:ttl-policy.example") != 1)
        fail_msg("after prune: got no key mtasts:v1:ttl-policy.example, want it left to its TTL");
    redisFree(c);
    sts_store_close(s);
}

static void test_expired_record_is_deleted(void **state)
{
    static const int64_t ages[] = { 0, -1, -86400 };
    sts_store *s;
    redisContext *c;

    (void)state;
    flush_all();
    s = open_main(0);
    c = raw();
    for (size_t i = 0; i < sizeof(ages) / sizeof(ages[0]); i++) {
        sts_cache_record r;

        rec_live(&r, 0, "old.example", 3600);
        put_ok(s, &r);
        if (raw_int(c, "EXISTS %s", "mtasts:v1:old.example") != 1)
            fail_msg("live record: got no key, want mtasts:v1:old.example");
        r.expires_at = (int64_t)time(NULL) + ages[i];
        put_ok(s, &r);
        if (raw_int(c, "EXISTS %s", "mtasts:v1:old.example") != 0)
            fail_msg("record expired %lld s ago: got the key still there, want it deleted",
                     (long long)-ages[i]);
        get_notfound(s, "old.example");
        sts_cache_record_clear(&r);
    }
    redisFree(c);
    sts_store_close(s);
}

static void test_load_1200_records_with_scan(void **state)
{
    enum { N = 1200 };
    static char domains[N + 16][STS_DOMAIN_MAX + 1];
    collected c = { 0, domains, N + 16 };
    sts_store *s;
    size_t skipped = 99;
    sts_why why;
    double t0, t_put, t_load;
    static bool seen[N];

    (void)state;
    flush_all();
    s = open_main(0);
    t0 = now_ms();
    for (int i = 0; i < N; i++) {
        char domain[64];
        sts_cache_record r;

        (void)snprintf(domain, sizeof(domain), "scan%d.example", i);
        rec_live(&r, i % 3, domain, 3600);
        put_ok(s, &r);
        sts_cache_record_clear(&r);
    }
    t_put = now_ms() - t0;
    t0 = now_ms();
    expect_status("load", sts_store_load(s, collect, &c, &skipped, &why), STS_OK, &why);
    t_load = now_ms() - t0;
    /* SCAN may return a key twice; count distinct domains. */
    memset(seen, 0, sizeof(seen));
    for (size_t i = 0; i < c.n && i < c.cap; i++) {
        unsigned long k;
        char *end;

        if (strncmp(domains[i], "scan", 4) != 0)
            fail_msg("load: got %s, want only scanN.example", domains[i]);
        k = strtoul(domains[i] + 4, &end, 10);
        if (k >= N || strcmp(end, ".example") != 0)
            fail_msg("load: got %s, want scanN.example with N < %d", domains[i], N);
        seen[k] = true;
    }
    for (int i = 0; i < N; i++)
        if (!seen[i])
            fail_msg("load: got no scan%d.example, want all %d records", i, N);
    if (skipped != 0)
        fail_msg("load: got %zu skipped, want 0", skipped);
    print_message("redis: %d puts in %.0f ms, load of %zu records in %.0f ms\n", N, t_put, c.n,
                  t_load);
    sts_store_close(s);
}

static void test_clear_removes_only_our_prefix(void **state)
{
    sts_store *s;
    redisContext *c;
    collected col = { 0, NULL, 0 };
    sts_why why;

    (void)state;
    flush_all();
    s = open_main(0);
    c = raw();
    raw_ok(c, "SET other:x 1");
    raw_ok(c, "SET mtasts:v2:future.example {}");
    raw_ok(c, "SET mtasts:v1 bare");
    for (int i = 0; i < 700; i++) {
        char domain[64];
        sts_cache_record r;

        (void)snprintf(domain, sizeof(domain), "clear%d.example", i);
        rec_live(&r, 1, domain, 600);
        put_ok(s, &r);
        sts_cache_record_clear(&r);
    }
    expect_status("clear", sts_store_clear(s, &why), STS_OK, &why);
    expect_status("load", sts_store_load(s, collect, &col, NULL, &why), STS_OK, &why);
    if (col.n != 0)
        fail_msg("after clear: got %zu records, want 0", col.n);
    if (raw_int(c, "EXISTS %s", "other:x") != 1)
        fail_msg("after clear: got other:x deleted, want it kept");
    if (raw_int(c, "EXISTS %s", "mtasts:v2:future.example") != 1)
        fail_msg("after clear: got mtasts:v2:future.example deleted, want it kept");
    if (raw_int(c, "EXISTS %s", "mtasts:v1") != 1)
        fail_msg("after clear: got mtasts:v1 deleted, want it kept");
    if (raw_int(c, "DBSIZE") != 3)
        fail_msg("after clear: got DBSIZE %lld, want 3", raw_int(c, "DBSIZE"));
    /* Clearing an empty store is fine. */
    expect_status("clear again", sts_store_clear(s, &why), STS_OK, &why);
    redisFree(c);
    sts_store_close(s);
}

static void test_database_selection(void **state)
{
    sts_store *s3, *s0;
    sts_cache_record r;
    redisContext *c;

    (void)state;
    flush_all();
    s3 = open_main(3);
    s0 = open_main(0);
    rec_live(&r, 0, "db3.example", 3600);
    put_ok(s3, &r);
    get_expect(s3, &r);
    get_notfound(s0, "db3.example");
    c = raw();
    raw_ok(c, "SELECT 3");
    if (raw_int(c, "EXISTS %s", "mtasts:v1:db3.example") != 1)
        fail_msg("db 3: got no key mtasts:v1:db3.example, want it there");
    raw_ok(c, "SELECT 0");
    if (raw_int(c, "EXISTS %s", "mtasts:v1:db3.example") != 0)
        fail_msg("db 0: got mtasts:v1:db3.example, want it only in db 3");
    redisFree(c);
    sts_cache_record_clear(&r);
    sts_store_close(s3);
    sts_store_close(s0);
}

static void test_bad_database_refused(void **state)
{
    char url[64];
    sts_store *s = NULL;
    sts_why why;

    (void)state;
    (void)snprintf(url, sizeof(url), "redis://127.0.0.1:%d/99", main_port);
    expect_status("db 99", sts_store_open(url, &s, &why), STS_PERMFAIL, &why);
    expect_why("db 99", &why, "SELECT: ERR");
    if (s != NULL)
        fail_msg("db 99: got a store, want NULL");
}

typedef struct bad_value {
    const char *name;
    const char *domain;
    bool hash;         /* stored as a hash, not a string */
    const char *value; /* string value, len bytes */
    size_t len;
} bad_value;

#define BADV(name, domain, value) { name, domain, false, value, sizeof(value) - 1 }
#define JSON_TIMES "\"fetched_at\":0,\"checked_at\":0,\"expires_at\":0,\"last_used\":0}"

static const bad_value bad_values[] = {
    BADV("value_not_json", "nj.example", "not-json"),
    BADV("value_empty", "ve.example", ""),
    BADV("value_version_2", "v2.example",
         "{\"v\":2,\"domain\":\"v2.example\",\"kind\":2,\"id\":\"\"," JSON_TIMES),
    BADV("value_other_domain", "mis.example",
         "{\"v\":1,\"domain\":\"other.example\",\"kind\":2,\"id\":\"\"," JSON_TIMES),
    BADV("value_policy_missing", "pm.example",
         "{\"v\":1,\"domain\":\"pm.example\",\"kind\":1,\"id\":\"a\"," JSON_TIMES),
    BADV("value_negative_time", "neg.example",
         "{\"v\":1,\"domain\":\"neg.example\",\"kind\":2,\"id\":\"\",\"fetched_at\":-1,"
         "\"checked_at\":0,\"expires_at\":0,\"last_used\":0}"),
    BADV("value_unknown_member", "um.example",
         "{\"v\":1,\"domain\":\"um.example\",\"kind\":2,\"id\":\"\",\"x\":1," JSON_TIMES),
    BADV("value_nul_byte", "nul.example",
         "{\"v\":1,\"domain\":\"nul.example\",\0\"kind\":2,\"id\":\"\"," JSON_TIMES),
    BADV("value_binary", "bin.example", "\x01\x02\xff"),
    { "value_hash_type", "hash.example", true, NULL, 0 },
};

#define N_BAD_VALUES (sizeof(bad_values) / sizeof(bad_values[0]))

static void test_malformed_values_skipped_and_counted(void **state)
{
    static char domains[32][STS_DOMAIN_MAX + 1];
    collected col = { 0, domains, 32 };
    sts_store *s;
    redisContext *c;
    sts_cache_record good;
    size_t skipped = 0, want_skipped = 0;
    sts_why why;

    (void)state;
    flush_all();
    s = open_main(0);
    c = raw();
    for (size_t i = 0; i < N_BAD_VALUES; i++) {
        char key[300];

        (void)snprintf(key, sizeof(key), "mtasts:v1:%s", bad_values[i].domain);
        if (bad_values[i].hash) {
            raw_ok(c, "HSET %s a b", key);
        } else {
            raw_ok(c, "SET %s %b", key, bad_values[i].value, bad_values[i].len);
            want_skipped++; /* MGET reads another type as nil: not counted */
        }
    }
    /* A key whose name is not a valid domain, holding a valid record. */
    raw_ok(c, "SET mtasts:v1:Good.Example {\"v\":1,\"domain\":\"good.example\",\"kind\":2,"
              "\"id\":\"\",\"fetched_at\":0,\"checked_at\":0,\"expires_at\":0,\"last_used\":0}");
    want_skipped++;
    rec_live(&good, 0, "good.example", 3600);
    put_ok(s, &good);

    expect_status("load", sts_store_load(s, collect, &col, &skipped, &why), STS_OK, &why);
    if (col.n != 1 || strcmp(domains[0], "good.example") != 0)
        fail_msg("load: got %zu records (first %s), want only good.example", col.n,
                 col.n > 0 ? domains[0] : "-");
    if (skipped != want_skipped)
        fail_msg("load: got %zu skipped, want %zu", skipped, want_skipped);
    for (size_t i = 0; i < N_BAD_VALUES; i++) {
        sts_cache_record got;

        why.text[0] = '\0';
        expect_status(bad_values[i].name, sts_store_get(s, bad_values[i].domain, &got, &why),
                      STS_PERMFAIL, &why);
        expect_why(bad_values[i].name, &why, "cannot be decoded");
    }
    get_expect(s, &good);
    /* A good put replaces a bad value of any type. */
    {
        sts_cache_record fix;

        rec_live(&fix, 1, "hash.example", 60);
        put_ok(s, &fix);
        get_expect(s, &fix);
        sts_cache_record_clear(&fix);
    }
    sts_cache_record_clear(&good);
    redisFree(c);
    sts_store_close(s);
}

/* Redis closing an idle connection (its timeout, a restart) is not an
 * outage: the next command reconnects at once and succeeds. */
static void test_dropped_connection_reconnects_at_once(void **state)
{
    sts_store *s;
    sts_cache_record r;
    redisContext *c;

    (void)state;
    flush_all();
    s = open_main(0);
    rec_live(&r, 1, "drop.example", 600);
    put_ok(s, &r);
    c = raw();
    raw_ok(c, "CLIENT KILL TYPE normal SKIPME yes");
    redisFree(c);
    get_expect(s, &r);
    sts_cache_record_clear(&r);
    sts_store_close(s);
}

/* Count occurrences of needle in the file. */
static size_t count_in_file(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    char line[4096];
    size_t n = 0;

    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f) != NULL)
        if (strstr(line, needle) != NULL)
            n++;
    fclose(f);
    return n;
}

typedef struct stderr_capture {
    int saved;
    char path[600];
} stderr_capture;

static void capture_start(stderr_capture *cap, const char *name)
{
    int fd;

    (void)snprintf(cap->path, sizeof(cap->path), "%s/%s", tmpdir, name);
    fflush(stderr);
    cap->saved = dup(2);
    fd = open(cap->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(cap->saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);
}

static void capture_stop(stderr_capture *cap)
{
    fflush(stderr);
    dup2(cap->saved, 2);
    close(cap->saved);
}

static void test_server_down_fail_fast_then_reconnect(void **state)
{
    int port = free_port();
    pid_t pid = server_start(port);
    char url[64];
    sts_store *s;
    sts_cache_record r, got;
    stderr_capture cap;
    sts_status st = STS_TEMPFAIL;
    sts_why why;
    double worst = 0, total = 0, t0, t_restart, t_back = -1;
    size_t lost_lines, back_lines;
    int ops = 0;

    (void)state;
    (void)snprintf(url, sizeof(url), "redis://127.0.0.1:%d", port);
    s = open_url(url);
    rec_live(&r, 0, "down.example", 3600);
    put_ok(s, &r);

    capture_start(&cap, "down.log");
    server_stop(pid, SIGKILL);
    for (int i = 0; i < 40; i++) {
        double d;

        t0 = now_ms();
        if (i % 4 == 0)
            st = sts_store_put(s, &r, &why);
        else if (i % 4 == 1)
            st = sts_store_get(s, "down.example", &got, &why);
        else if (i % 4 == 2)
            st = sts_store_delete(s, "down.example", &why);
        else
            st = sts_store_load(s, collect, &(collected){ 0, NULL, 0 }, NULL, &why);
        d = now_ms() - t0;
        total += d;
        ops++;
        if (d > worst)
            worst = d;
        if (st != STS_TEMPFAIL) {
            capture_stop(&cap);
            fail_msg("op %d with the server down: got %s (%s), want tempfail", i,
                     sts_status_name(st), why.text);
        }
        if (d > 2000) {
            capture_stop(&cap);
            fail_msg("op %d with the server down took %.0f ms, want well under 2 s", i, d);
        }
        usleep(10000); /* spread over a few backoff periods */
    }

    /* Same port, fresh (empty) server: the store finds it after a backoff. */
    pid = server_start(port);
    t_restart = now_ms();
    while (now_ms() - t_restart < 10000) {
        st = sts_store_put(s, &r, &why);
        if (st == STS_OK) {
            t_back = now_ms() - t_restart;
            break;
        }
        usleep(5000);
    }
    capture_stop(&cap);
    if (st != STS_OK)
        fail_msg("after restart: got %s (%s) for 10 s, want ok", sts_status_name(st), why.text);
    get_expect(s, &r);

    lost_lines = count_in_file(cap.path, "redis unreachable");
    back_lines = count_in_file(cap.path, "redis reconnected");
    if (lost_lines != 1 || back_lines != 1)
        fail_msg("log: got %zu 'redis unreachable' and %zu 'redis reconnected' lines, want 1 "
                 "and 1", lost_lines, back_lines);
    print_message("redis down: %d ops, worst %.2f ms, mean %.3f ms; back %.0f ms after the "
                  "restart (backoff %s ms)\n", ops, worst, total / ops, t_back, TEST_BACKOFF_MS);
    sts_cache_record_clear(&r);
    sts_store_close(s);
    server_stop(pid, SIGTERM);
}

static void test_unreachable_at_open_still_gives_a_store(void **state)
{
    int port = free_port();
    pid_t pid;
    char url[64];
    sts_store *s = NULL;
    sts_cache_record r;
    sts_why why;
    sts_status st;
    double t0, d;
    stderr_capture cap;

    (void)state;
    (void)snprintf(url, sizeof(url), "redis://127.0.0.1:%d/2", port);
    t0 = now_ms();
    st = sts_store_open(url, &s, &why);
    d = now_ms() - t0;
    if (st != STS_TEMPFAIL || s == NULL)
        fail_msg("open with no server: got %s and %s, want tempfail and a store",
                 sts_status_name(st), s != NULL ? "a store" : "NULL");
    expect_why("open", &why, "unreachable");
    expect_why("open", &why, "serving from memory, retrying in 100 ms");
    if (d > 2000)
        fail_msg("open with no server took %.0f ms, want under 2 s", d);
    if (strcmp(sts_store_backend(s), "redis") != 0)
        fail_msg("backend: got %s, want redis", sts_store_backend(s));
    rec_live(&r, 1, "later.example", 600);
    expect_status("put while down", sts_store_put(s, &r, &why), STS_TEMPFAIL, &why);

    capture_start(&cap, "open-down.log");
    pid = server_start(port);
    t0 = now_ms();
    do {
        st = sts_store_put(s, &r, &why);
        if (st != STS_OK)
            usleep(5000);
    } while (st != STS_OK && now_ms() - t0 < 10000);
    capture_stop(&cap);
    expect_status("put after the server came", st, STS_OK, &why);
    get_expect(s, &r);
    /* Open already reported the outage (its reason); only the return is logged. */
    if (count_in_file(cap.path, "redis unreachable") != 0 ||
        count_in_file(cap.path, "redis reconnected") != 1)
        fail_msg("log: got %zu 'unreachable' and %zu 'reconnected' lines, want 0 and 1",
                 count_in_file(cap.path, "redis unreachable"),
                 count_in_file(cap.path, "redis reconnected"));
    sts_cache_record_clear(&r);
    sts_store_close(s);
    server_stop(pid, SIGTERM);
}

/* A server that accepts and never answers (a hung Redis): the command
 * timeout bounds the wait, then the store fails fast. */
static void test_silent_server_bounded_wait(void **state)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    char url[64];
    sts_store *s = NULL;
    sts_cache_record got;
    sts_why why;
    sts_status st;
    double t0, d_open, d_op;

    (void)state;
    assert_true(fd >= 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 8), 0); /* the kernel completes connects; nobody reads */
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    (void)snprintf(url, sizeof(url), "redis://127.0.0.1:%d", ntohs(a.sin_port));
    t0 = now_ms();
    st = sts_store_open(url, &s, &why);
    d_open = now_ms() - t0;
    if (st != STS_TEMPFAIL || s == NULL)
        fail_msg("silent server: got %s (%s), want tempfail and a store", sts_status_name(st),
                 why.text);
    if (d_open < 400 || d_open > 2000)
        fail_msg("silent server: open took %.0f ms, want about the 500 ms command timeout",
                 d_open);
    t0 = now_ms();
    st = sts_store_get(s, "a.example", &got, &why);
    d_op = now_ms() - t0;
    expect_status("get", st, STS_TEMPFAIL, &why);
    if (d_op > 100)
        fail_msg("silent server: get in the backoff took %.0f ms, want no wait", d_op);
    print_message("redis silent server: open gave up after %.0f ms, next op %.3f ms\n", d_open,
                  d_op);
    sts_store_close(s);
    close(fd);
}

static void test_backoff_env_checked(void **state)
{
    static const char *const bad[] = { "0", "abc", "60001", "-5", "10x", "" };
    char url[64];

    (void)state;
    (void)snprintf(url, sizeof(url), "redis://127.0.0.1:%d", main_port);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sts_store *s = NULL;
        sts_why why;

        setenv("MTASTS_REDIS_BACKOFF_MS", bad[i], 1);
        why.text[0] = '\0';
        expect_status(bad[i], sts_store_open(url, &s, &why), STS_PERMFAIL, &why);
        expect_why(bad[i], &why, "MTASTS_REDIS_BACKOFF_MS must be");
    }
    setenv("MTASTS_REDIS_BACKOFF_MS", TEST_BACKOFF_MS, 1);
}

static void test_host_forms(void **state)
{
    char url[64];
    sts_store *s;

    (void)state;
    (void)snprintf(url, sizeof(url), "redis://localhost:%d", main_port);
    s = open_url(url);
    sts_store_close(s);
    (void)snprintf(url, sizeof(url), "REDIS://127.0.0.1:%d/0", main_port);
    s = open_url(url);
    sts_store_close(s);
    /* IPv6 in brackets (nobody listens there: a tempfail naming it). */
    {
        sts_why why;
        sts_status st;

        s = NULL;
        (void)snprintf(url, sizeof(url), "redis://[::1]:%d/1", free_port());
        st = sts_store_open(url, &s, &why);
        if (st != STS_TEMPFAIL || s == NULL)
            fail_msg("%s: got %s (%s), want tempfail and a store", url, sts_status_name(st),
                     why.text);
        expect_why(url, &why, "redis [::1]:");
        sts_store_close(s);
    }
}

/* ------------------------------------------------------------ setup */

static int group_setup(void **state)
{
    (void)state;
    if (!unit_mkdtemp(tmpdir, sizeof(tmpdir), "test_store_redis"))
        return -1;
    main_port = free_port();
    main_pid = server_start(main_port);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    server_stop(main_pid, SIGTERM);
    return unit_rmtree(tmpdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_each_kind),
        cmocka_unit_test(test_purge_log_between_handles),
        cmocka_unit_test(test_value_is_the_json_record),
        cmocka_unit_test(test_ttl_follows_expires_at),
        cmocka_unit_test(test_expired_record_is_deleted),
        cmocka_unit_test(test_load_1200_records_with_scan),
        cmocka_unit_test(test_clear_removes_only_our_prefix),
        cmocka_unit_test(test_database_selection),
        cmocka_unit_test(test_bad_database_refused),
        cmocka_unit_test(test_malformed_values_skipped_and_counted),
        cmocka_unit_test(test_dropped_connection_reconnects_at_once),
        cmocka_unit_test(test_server_down_fail_fast_then_reconnect),
        cmocka_unit_test(test_unreachable_at_open_still_gives_a_store),
        cmocka_unit_test(test_silent_server_bounded_wait),
        cmocka_unit_test(test_backoff_env_checked),
        cmocka_unit_test(test_host_forms),
    };

    if (access(REDIS_SERVER, X_OK) != 0) {
        printf("SKIP: redis-server not installed\n");
        return 77;
    }
    /* SIGPIPE stays fatal, as in a process that never touched it: the
     * store must guard its own writes to a dead server. */
    signal(SIGPIPE, SIG_DFL);
    setenv("MTASTS_REDIS_BACKOFF_MS", TEST_BACKOFF_MS, 1);
    return cmocka_run_group_tests_name("store_redis", tests, group_setup, group_teardown);
}
