/*
 * test_store_sqlite.c - the SQLite cache store (src/store_sqlite.c)
 * through the store.h contract, in a fresh temporary directory removed at
 * the end.  Pins: round trips of every kind, a restart keeps every policy,
 * an unusable file is moved aside and replaced, a newer schema or a
 * foreign database is refused untouched, a missing directory is named,
 * bad rows written behind our back are skipped and counted, 64 KiB
 * policies survive byte-exact, files are mode 0600.
 * The test writes rows with raw SQLite to play the part of damage.
 */
#include <setjmp.h> /* cmocka needs these first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "unit_run.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "sts/policy.h"
#include "engine/store.h"
#include "store_fixture.h"
#include "unit_tmp.h"

static char tmpdir[512];

/* ------------------------------------------------------------ helpers */

/* A path in the test directory. */
static const char *tpath(char *buf, size_t n, const char *name)
{
    int k = snprintf(buf, n, "%s/%s", tmpdir, name);

    assert_true(k > 0 && (size_t)k < n);
    return buf;
}

static sts_store *open_ok(const char *path)
{
    char spec[600];
    sts_store *s = NULL;
    sts_why why;
    sts_status st;

    (void)snprintf(spec, sizeof(spec), "sqlite:%s", path);
    why.text[0] = 'x';
    st = sts_store_open(spec, &s, &why);
    if (st != STS_OK)
        fail_msg("open %s: got %s (%s), want ok", spec, sts_status_name(st), why.text);
    if (why.text[0] != '\0')
        fail_msg("open %s: got reason '%s', want none for a sound file", spec, why.text);
    if (strcmp(sts_store_backend(s), "sqlite") != 0)
        fail_msg("backend: got %s, want sqlite", sts_store_backend(s));
    return s;
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

static void get_expect_present(sts_store *s, const char *domain)
{
    sts_cache_record got;
    sts_why why;

    expect_status(domain, sts_store_get(s, domain, &got, &why), STS_OK, &why);
    sts_cache_record_clear(&got);
}

/* Records collected by load, copied. */
typedef struct collected {
    sts_cache_record rec[2000];
    size_t n;
    size_t stop_after; /* 0: never stop */
} collected;

static bool collect(void *arg, const sts_cache_record *r)
{
    collected *c = arg;

    assert_true(c->n < sizeof(c->rec) / sizeof(c->rec[0]));
    c->rec[c->n] = *r;
    if (r->policy_text != NULL) {
        c->rec[c->n].policy_text = malloc(r->policy_len + 1);
        assert_non_null(c->rec[c->n].policy_text);
        memcpy(c->rec[c->n].policy_text, r->policy_text, r->policy_len + 1);
    }
    c->n++;
    return c->stop_after == 0 || c->n < c->stop_after;
}

static void collected_free(collected *c)
{
    for (size_t i = 0; i < c->n; i++)
        sts_cache_record_clear(&c->rec[i]);
    c->n = 0;
}

static const sts_cache_record *find(const collected *c, const char *domain)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->rec[i].domain, domain) == 0)
            return &c->rec[i];
    return NULL;
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");

    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long len;

    if (f == NULL)
        return NULL;
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    len = ftell(f);
    assert_true(len >= 0);
    rewind(f);
    buf = malloc((size_t)len + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return buf;
}

static void raw_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    char *err = NULL;

    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
        fail_msg("raw sql '%s': %s", sql, err);
    sqlite3_close(db);
}

static long long raw_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    long long v;

    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* Names in the test directory starting with prefix. */
static size_t count_prefixed(const char *prefix, char *first, size_t firstsz)
{
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    size_t n = 0;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) {
            if (n == 0 && first != NULL)
                (void)snprintf(first, firstsz, "%s/%s", tmpdir, e->d_name);
            n++;
        }
    }
    closedir(d);
    return n;
}

/* ------------------------------------------------------------ round trips */

static void test_round_trip_each_kind(void **state)
{
    static const char *const kinds[] = { "policy", "nopolicy", "failed" };
    char path[600];
    sts_store *s;

    (void)state;
    s = open_ok(tpath(path, sizeof(path), "kinds.db"));
    for (int k = 0; k < 3; k++) {
        char domain[64];
        sts_cache_record r, r2;
        sts_why why;

        (void)snprintf(domain, sizeof(domain), "%s.example", kinds[k]);
        rec_of_kind(&r, k, domain, 1700000000);
        put_ok(s, &r);
        get_expect(s, &r);

        /* Replace: the new record wins whole, even across kinds. */
        rec_of_kind(&r2, (k + 1) % 3, domain, 1800000000);
        put_ok(s, &r2);
        get_expect(s, &r2);
        put_ok(s, &r);
        get_expect(s, &r);

        expect_status("delete", sts_store_delete(s, domain, &why), STS_OK, &why);
        get_notfound(s, domain);
        expect_status("delete again", sts_store_delete(s, domain, &why), STS_OK, &why);
        sts_cache_record_clear(&r);
        sts_cache_record_clear(&r2);
    }
    get_notfound(s, "never.example");
    sts_store_close(s);
}

static void test_load_and_clear(void **state)
{
    static collected c;
    char path[600];
    sts_store *s;
    size_t skipped = 99;
    sts_why why;

    (void)state;
    s = open_ok(tpath(path, sizeof(path), "load.db"));
    for (int i = 0; i < 30; i++) {
        char domain[64];
        sts_cache_record r;

        (void)snprintf(domain, sizeof(domain), "d%d.example", i);
        rec_of_kind(&r, i % 3, domain, 1700000000 + i);
        put_ok(s, &r);
        sts_cache_record_clear(&r);
    }
    memset(&c, 0, sizeof(c));
    expect_status("load", sts_store_load(s, collect, &c, &skipped, &why), STS_OK, &why);
    if (c.n != 30 || skipped != 0)
        fail_msg("load: got %zu records, %zu skipped, want 30 and 0", c.n, skipped);
    for (int i = 0; i < 30; i++) {
        char domain[64];
        sts_cache_record want;
        const sts_cache_record *got;

        (void)snprintf(domain, sizeof(domain), "d%d.example", i);
        got = find(&c, domain);
        if (got == NULL)
            fail_msg("load: got no record for %s, want one", domain);
        rec_of_kind(&want, i % 3, domain, 1700000000 + i);
        rec_expect("load", got, &want);
        sts_cache_record_clear(&want);
    }
    collected_free(&c);

    /* each returning false stops the walk. */
    c.stop_after = 5;
    expect_status("load stop", sts_store_load(s, collect, &c, NULL, &why), STS_OK, &why);
    if (c.n != 5)
        fail_msg("load with stop after 5: got %zu records, want 5", c.n);
    collected_free(&c);
    c.stop_after = 0;

    expect_status("clear", sts_store_clear(s, &why), STS_OK, &why);
    expect_status("load after clear", sts_store_load(s, collect, &c, &skipped, &why), STS_OK,
                  &why);
    if (c.n != 0)
        fail_msg("load after clear: got %zu records, want 0", c.n);
    get_notfound(s, "d1.example");
    sts_store_close(s);
}

/* Prune drops what expired before the cut, of every kind, and nothing
 * else: policies the memory cache gave up stay until then. */
static void test_prune_drops_only_expired_records(void **state)
{
    static const struct {
        const char *domain;
        int kind;
        int64_t expires_at;
        bool kept;
    } recs[] = {
        { "gone-policy.example", 0, 999, false },
        { "gone-nopolicy.example", 1, 500, false },
        { "gone-failed.example", 2, 1, false },
        { "at-the-cut.example", 0, 1000, true },
        { "live-policy.example", 0, 2000000000, true },
        { "live-nopolicy.example", 1, 1001, true },
    };
    char path[600];
    sts_store *s;
    sts_why why;

    (void)state;
    s = open_ok(tpath(path, sizeof(path), "prune.db"));
    for (size_t i = 0; i < sizeof(recs) / sizeof(recs[0]); i++) {
        sts_cache_record r;

        rec_of_kind(&r, recs[i].kind, recs[i].domain, 0);
        r.expires_at = recs[i].expires_at;
        put_ok(s, &r);
        sts_cache_record_clear(&r);
    }
    expect_status("prune", sts_store_prune(s, 1000, &why), STS_OK, &why);
    for (size_t i = 0; i < sizeof(recs) / sizeof(recs[0]); i++) {
        sts_cache_record got;
        sts_status st = sts_store_get(s, recs[i].domain, &got, &why);

        if ((st == STS_OK) != recs[i].kept)
            fail_msg("%s (expires %lld) after prune(1000): got %s, want %s", recs[i].domain,
                     (long long)recs[i].expires_at, sts_status_name(st),
                     recs[i].kept ? "kept" : "gone");
        sts_cache_record_clear(&got);
    }
    expect_status("prune of nothing", sts_store_prune(s, 1000, &why), STS_OK, &why);
    sts_store_close(s);
}

/* The property the store exists for: a restart keeps every policy. */
static void test_restart_keeps_every_record(void **state)
{
    static collected c;
    char path[600];
    sts_store *s;
    size_t skipped = 0;
    sts_why why;

    (void)state;
    tpath(path, sizeof(path), "restart.db");
    s = open_ok(path);
    for (int i = 0; i < 300; i++) {
        char domain[64];
        sts_cache_record r;

        (void)snprintf(domain, sizeof(domain), "r%d.example.org", i);
        rec_of_kind(&r, i % 3, domain, 1600000000 + i);
        put_ok(s, &r);
        sts_cache_record_clear(&r);
    }
    sts_store_close(s);

    s = open_ok(path);
    memset(&c, 0, sizeof(c));
    expect_status("load", sts_store_load(s, collect, &c, &skipped, &why), STS_OK, &why);
    if (c.n != 300 || skipped != 0)
        fail_msg("after restart: got %zu records, %zu skipped, want 300 and 0", c.n, skipped);
    for (int i = 0; i < 300; i++) {
        char domain[64];
        sts_cache_record want;
        const sts_cache_record *got;

        (void)snprintf(domain, sizeof(domain), "r%d.example.org", i);
        rec_of_kind(&want, i % 3, domain, 1600000000 + i);
        got = find(&c, domain);
        if (got == NULL)
            fail_msg("after restart: got no record for %s, want one", domain);
        rec_expect("after restart", got, &want);
        sts_cache_record_clear(&want);
    }
    collected_free(&c);
    sts_store_close(s);
    if (raw_int(path, "PRAGMA user_version") != 1)
        fail_msg("user_version: got %lld, want 1", raw_int(path, "PRAGMA user_version"));
}

static void test_two_handles_share_the_file(void **state)
{
    char path[600];
    sts_store *a, *b;
    sts_cache_record r;

    (void)state;
    tpath(path, sizeof(path), "shared.db");
    a = open_ok(path);
    b = open_ok(path);
    rec_of_kind(&r, 0, "shared.example", 42);
    put_ok(a, &r);
    get_expect(b, &r);
    sts_cache_record_clear(&r);
    sts_store_close(a);
    sts_store_close(b);
}

static void test_purge_log_between_handles(void **state)
{
    char path[600];
    sts_store *a, *b;

    (void)state;
    tpath(path, sizeof(path), "purge.db");
    a = open_ok(path);
    b = open_ok(path);
    purge_log_check(a, b);
    sts_store_close(a);
    sts_store_close(b);
    /* The log lives beside the records, without a schema change. */
    if (raw_int(path, "PRAGMA user_version") != 1)
        fail_msg("user_version: got %lld, want 1", raw_int(path, "PRAGMA user_version"));
    if (raw_int(path, "SELECT count(*) FROM mtasts_purge") != 4)
        fail_msg("mtasts_purge rows: got %lld, want 4",
                 raw_int(path, "SELECT count(*) FROM mtasts_purge"));
}

static void test_wal_journal(void **state)
{
    char path[600];
    sts_store *s;
    sqlite3 *db;
    sqlite3_stmt *st;

    (void)state;
    s = open_ok(tpath(path, sizeof(path), "wal.db"));
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    if (strcmp((const char *)sqlite3_column_text(st, 0), "wal") != 0)
        fail_msg("journal_mode: got %s, want wal", sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
    sts_store_close(s);
}

static void test_policy_64k_byte_exact(void **state)
{
    static const char odd[] = "'\"\\\r\n\xc3\xa9\xf0\x9f\x98\x80";
    char path[600];
    sts_store *s;
    sts_cache_record r;

    (void)state;
    tpath(path, sizeof(path), "big.db");
    s = open_ok(path);
    rec_make(&r, "big.example", STS_ENTRY_POLICY, "big1", NULL, 7);
    r.policy_text = big_policy(STS_POLICY_MAX_BODY);
    r.policy_len = STS_POLICY_MAX_BODY;
    memcpy(r.policy_text + 200, odd, sizeof(odd) - 1);
    put_ok(s, &r);
    get_expect(s, &r);
    sts_store_close(s);
    s = open_ok(path);
    get_expect(s, &r);
    sts_store_close(s);
    sts_cache_record_clear(&r);
}

static void test_file_mode_0600(void **state)
{
    char path[600], wal[620];
    mode_t old = umask(022);
    struct stat sb;
    sts_store *s;
    sts_cache_record r;

    (void)state;
    tpath(path, sizeof(path), "mode.db");
    s = open_ok(path);
    rec_of_kind(&r, 0, "mode.example", 1);
    put_ok(s, &r); /* makes the -wal file exist */
    sts_cache_record_clear(&r);
    umask(old);
    assert_int_equal(stat(path, &sb), 0);
    if ((sb.st_mode & 0777) != 0600)
        fail_msg("mode of %s: got %03o, want 600", path, (unsigned)(sb.st_mode & 0777));
    (void)snprintf(wal, sizeof(wal), "%s-wal", path);
    assert_int_equal(stat(wal, &sb), 0);
    if ((sb.st_mode & 0777) != 0600)
        fail_msg("mode of %s: got %03o, want 600", wal, (unsigned)(sb.st_mode & 0777));
    sts_store_close(s);
}

/* ------------------------------------------------------------ unusable files */

typedef struct corrupt_case {
    const char *name;
    void (*make)(const char *path);
} corrupt_case;

static void make_random(const char *path)
{
    unsigned char buf[8192];
    unsigned x = 12345;

    for (size_t i = 0; i < sizeof(buf); i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (unsigned char)(x >> 16);
    }
    write_file(path, buf, sizeof(buf));
}

static void make_text(const char *path)
{
    static const char text[] = "# this is a config file, not a database\nCacheStore none\n";

    write_file(path, text, sizeof(text) - 1);
}

static void make_short_text(const char *path)
{
    write_file(path, "hello\n", 6);
}

/* A real database with many pages, cut in the middle. */
static bool truncate_to_fraction = true;

static void make_truncated(const char *path)
{
    char spec[700];
    sts_store *s = NULL;
    sts_why why;
    char *policy = big_policy(3000);

    (void)snprintf(spec, sizeof(spec), "sqlite:%s", path);
    expect_status("make truncated", sts_store_open(spec, &s, &why), STS_OK, &why);
    for (int i = 0; i < 200; i++) {
        sts_cache_record r;
        char domain[64];

        (void)snprintf(domain, sizeof(domain), "t%d.example", i);
        rec_make(&r, domain, STS_ENTRY_POLICY, "t", policy, i);
        put_ok(s, &r);
        sts_cache_record_clear(&r);
    }
    sts_store_close(s); /* checkpoints the WAL into the file */
    free(policy);
    {
        struct stat sb;

        assert_int_equal(stat(path, &sb), 0);
        assert_true(sb.st_size > 100000);
        if (truncate_to_fraction)
            assert_int_equal(truncate(path, sb.st_size * 2 / 5), 0);
    }
}

/* A real database with one b-tree page overwritten: the header reads
 * fine, PRAGMA quick_check finds the damage. */
static void make_damaged(const char *path)
{
    unsigned char junk[4096];
    FILE *f;

    truncate_to_fraction = false;
    make_truncated(path);
    truncate_to_fraction = true;
    memset(junk, 0x5a, sizeof(junk));
    f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, 4096L * 8, SEEK_SET), 0);
    assert_int_equal(fwrite(junk, 1, sizeof(junk), f), sizeof(junk));
    assert_int_equal(fclose(f), 0);
}

/* The SQLite header followed by garbage. */
static void make_bad_header(const char *path)
{
    unsigned char buf[4096];

    memset(buf, 0xa5, sizeof(buf));
    memcpy(buf, "SQLite format 3", 16);
    write_file(path, buf, sizeof(buf));
}

static const corrupt_case corrupt_cases[] = {
    { "corrupt_random_bytes", make_random },
    { "corrupt_text_file", make_text },
    { "corrupt_short_text_file", make_short_text },
    { "corrupt_truncated_database", make_truncated },
    { "corrupt_header_then_garbage", make_bad_header },
    { "corrupt_damaged_page", make_damaged },
};

#define N_CORRUPT (sizeof(corrupt_cases) / sizeof(corrupt_cases[0]))

static void run_corrupt_case(void **state)
{
    const corrupt_case *tc = *state;
    char path[600], spec[700], prefix[300], moved[900];
    char *before, *after;
    size_t nb, na;
    sts_store *s = NULL;
    sts_cache_record r;
    sts_why why;
    sts_status st;
    struct stat sb;

    (void)snprintf(prefix, sizeof(prefix), "%s.db", tc->name);
    tpath(path, sizeof(path), prefix);
    tc->make(path);
    before = read_file(path, &nb);
    assert_non_null(before);

    (void)snprintf(spec, sizeof(spec), "sqlite:%s", path);
    why.text[0] = '\0';
    st = sts_store_open(spec, &s, &why);
    if (st != STS_OK || s == NULL)
        fail_msg("case %s: got %s (%s), want ok with a fresh store", tc->name,
                 sts_status_name(st), why.text);
    if (strchr(why.text, '\n') != NULL)
        fail_msg("case %s: got a reason with a line break, want one line: %s", tc->name, why.text);
    expect_why(tc->name, &why, "moved unusable cache file to ");
    expect_why(tc->name, &why, ".corrupt-");
    expect_why(tc->name, &why, "started an empty one");

    /* The bad file is kept, byte for byte, for a post-mortem. */
    (void)snprintf(prefix, sizeof(prefix), "%s.db.corrupt-", tc->name);
    if (count_prefixed(prefix, moved, sizeof(moved)) != 1)
        fail_msg("case %s: got %zu files named %s*, want 1", tc->name,
                 count_prefixed(prefix, NULL, 0), prefix);
    after = read_file(moved, &na);
    if (after == NULL || na != nb || memcmp(before, after, nb) != 0)
        fail_msg("case %s: the moved file differs from the bad one", tc->name);
    free(before);
    free(after);

    /* And the new store works, and is a sound 0600 file. */
    rec_of_kind(&r, 0, "fresh.example", 1);
    put_ok(s, &r);
    get_expect(s, &r);
    sts_cache_record_clear(&r);
    sts_store_close(s);
    assert_int_equal(stat(path, &sb), 0);
    if ((sb.st_mode & 0777) != 0600)
        fail_msg("case %s: mode got %03o, want 600", tc->name, (unsigned)(sb.st_mode & 0777));
    s = open_ok(path);
    sts_store_close(s);
}

/* A stale WAL beside a bad file belongs to it and must not be replayed
 * into the new database (SQLite drops a WAL with a bad header itself; a
 * surviving one is moved along); a second failure in the same second gets
 * its own name. */
static void test_corrupt_stale_wal_and_free_names(void **state)
{
    static const char junk[] = "# this is a config file, not a database\nCacheStore none\n";
    char path[600], wal[620], spec[700];
    sts_store *s = NULL;
    sts_cache_record r;
    sts_why why;

    (void)state;
    tpath(path, sizeof(path), "twice.db");
    (void)snprintf(wal, sizeof(wal), "%s-wal", path);
    (void)snprintf(spec, sizeof(spec), "sqlite:%s", path);
    for (int round = 0; round < 2; round++) {
        char *now;
        size_t n;

        make_random(path);
        make_text(wal);
        expect_status("open", sts_store_open(spec, &s, &why), STS_OK, &why);
        expect_why("open", &why, "moved unusable cache file to");
        rec_of_kind(&r, 0, "twice.example", round);
        put_ok(s, &r);
        get_expect(s, &r);
        sts_cache_record_clear(&r);
        now = read_file(wal, &n);
        if (now != NULL && n >= sizeof(junk) - 1 && memcmp(now, junk, sizeof(junk) - 1) == 0)
            fail_msg("round %d: got the stale -wal still beside the new file, want it gone", round);
        free(now);
        sts_store_close(s);
    }
    if (count_prefixed("twice.db.corrupt-", NULL, 0) < 2)
        fail_msg("got %zu files named twice.db.corrupt-*, want 2 bad databases (and any WALs)",
                 count_prefixed("twice.db.corrupt-", NULL, 0));
}

static void test_newer_schema_refused_untouched(void **state)
{
    char path[600], spec[700];
    char *before, *after;
    size_t nb, na;
    sts_store *s = (sts_store *)&s;
    sts_why why;

    (void)state;
    tpath(path, sizeof(path), "newer.db");
    raw_exec(path, "CREATE TABLE mtasts_cache2 (x); PRAGMA user_version = 2;");
    before = read_file(path, &nb);
    (void)snprintf(spec, sizeof(spec), "sqlite:%s", path);
    expect_status("newer", sts_store_open(spec, &s, &why), STS_PERMFAIL, &why);
    expect_why("newer", &why, "schema version 2, this program knows 1");
    if (s != NULL)
        fail_msg("newer: got a store, want NULL");
    after = read_file(path, &na);
    if (after == NULL || na != nb || memcmp(before, after, nb) != 0)
        fail_msg("newer: the file changed, want it untouched");
    if (count_prefixed("newer.db.corrupt", NULL, 0) != 0)
        fail_msg("newer: got a moved-aside file, want none");
    free(before);
    free(after);
}

static void test_foreign_database_refused(void **state)
{
    char path[600], spec[700];
    sts_store *s = NULL;
    sts_why why;

    (void)state;
    tpath(path, sizeof(path), "foreign.db");
    raw_exec(path, "CREATE TABLE users (name TEXT); INSERT INTO users VALUES ('x');");
    (void)snprintf(spec, sizeof(spec), "sqlite:%s", path);
    expect_status("foreign", sts_store_open(spec, &s, &why), STS_PERMFAIL, &why);
    expect_why("foreign", &why, "database of something else");
    if (raw_int(path, "SELECT count(*) FROM users") != 1)
        fail_msg("foreign: the users table changed");
}

static void test_wrong_table_shape_refused(void **state)
{
    char path[600], spec[700];
    sts_store *s = NULL;
    sts_why why;

    (void)state;
    tpath(path, sizeof(path), "shape.db");
    raw_exec(path, "CREATE TABLE mtasts_cache (domain TEXT); PRAGMA user_version = 1;");
    (void)snprintf(spec, sizeof(spec), "sqlite:%s", path);
    expect_status("shape", sts_store_open(spec, &s, &why), STS_PERMFAIL, &why);
    expect_why("shape", &why, "not an mtasts-milter cache");
}

typedef struct path_case {
    const char *name;
    const char *rel; /* under the test directory */
    const char *why;
} path_case;

static void test_bad_paths(void **state)
{
    static const path_case cases[] = {
        { "missing_directory", "no-such-dir/cache.db", "No such file or directory" },
        { "missing_directory_named", "no-such-dir/cache.db", "no-such-dir" },
        { "missing_directory_hint", "no-such-dir/cache.db", "create it" },
        { "parent_is_a_file", "plain-file/cache.db", "is not a directory" },
        { "path_is_a_directory", "a-directory", "is not a regular file" },
    };
    char path[600], spec[700];

    (void)state;
    write_file(tpath(path, sizeof(path), "plain-file"), "x", 1);
    assert_int_equal(mkdir(tpath(path, sizeof(path), "a-directory"), 0700), 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sts_store *s = NULL;
        sts_why why;

        (void)snprintf(spec, sizeof(spec), "sqlite:%s/%s", tmpdir, cases[i].rel);
        why.text[0] = '\0';
        expect_status(cases[i].name, sts_store_open(spec, &s, &why), STS_PERMFAIL, &why);
        expect_why(cases[i].name, &why, cases[i].why);
        if (s != NULL)
            fail_msg("case %s: got a store, want NULL", cases[i].name);
    }
    rmdir(tpath(path, sizeof(path), "a-directory"));
}

/* ------------------------------------------------------------ bad rows */

typedef struct row_case {
    const char *name;
    const char *domain; /* for get; NULL if the row cannot be fetched by name */
    const char *values; /* SQL for the VALUES list */
} row_case;

#define T3 ", 1, 2, 3, 4)"
static const row_case bad_rows[] = {
    { "row_kind_0", "k0.example", "('k0.example', 0, 'a', NULL" T3 },
    { "row_kind_4", "k4.example", "('k4.example', 4, 'a', NULL" T3 },
    { "row_kind_text", "kt.example", "('kt.example', 'two', 'a', NULL" T3 },
    { "row_kind_real", "kr.example", "('kr.example', 2.5, 'a', NULL" T3 },
    { "row_domain_upper", NULL, "('Up.example', 2, 'a', NULL" T3 },
    { "row_domain_trailing_dot", NULL, "('dot.example.', 2, 'a', NULL" T3 },
    { "row_domain_blob", NULL, "(X'612e6578616d706c65', 2, 'a', NULL" T3 },
    { "row_domain_nul", NULL, "(CAST(X'6e2e6578616d706c6500782e79' AS TEXT), 2, 'a', NULL" T3 },
    { "row_domain_too_long", NULL, "(printf('%.250c.com', 'a'), 2, 'a', NULL" T3 },
    { "row_id_33", "id33.example", "('id33.example', 3, printf('%.33c', 'a'), NULL" T3 },
    { "row_id_hyphen", "idh.example", "('idh.example', 3, 'a-b', NULL" T3 },
    { "row_id_null", "idn.example", "('idn.example', 3, NULL, NULL" T3 },
    { "row_id_integer", "idi.example", "('idi.example', 3, 7, NULL" T3 },
    { "row_policy_missing", "pm.example", "('pm.example', 1, 'a', NULL" T3 },
    { "row_policy_for_nopolicy", "pn.example", "('pn.example', 2, '', 'version: STSv1'" T3 },
    { "row_policy_blob", "pb.example", "('pb.example', 1, 'a', X'7878'" T3 },
    { "row_policy_bad_utf8", "pu.example", "('pu.example', 1, 'a', CAST(X'78ff78' AS TEXT)" T3 },
    { "row_policy_nul", "pz.example", "('pz.example', 1, 'a', CAST(X'780078' AS TEXT)" T3 },
    { "row_policy_too_long", "pl.example", "('pl.example', 1, 'a', printf('%.65537c', 'a')" T3 },
    { "row_time_negative", "tn.example", "('tn.example', 2, '', NULL, 1, -2, 3, 4)" },
    { "row_time_text", "tt.example", "('tt.example', 2, '', NULL, 1, 2, 'soon', 4)" },
    { "row_time_real", "tr.example", "('tr.example', 2, '', NULL, 1, 2, 3, 4.5)" },
    { "row_time_null", "tz.example", "('tz.example', 2, '', NULL, 1, 2, 3, NULL)" },
};

#define N_BAD_ROWS (sizeof(bad_rows) / sizeof(bad_rows[0]))

/* The table without NOT NULL, as damage or an old bug might leave it. */
static const char loose_table[] =
    "CREATE TABLE mtasts_cache (domain TEXT PRIMARY KEY, kind, id, policy, fetched_at,"
    " checked_at, expires_at, last_used); PRAGMA user_version = 1;";

static void test_bad_rows_skipped_and_counted(void **state)
{
    static collected c;
    char path[600], sql[512];
    sts_store *s;
    size_t skipped = 0;
    sts_cache_record good[2];
    sts_why why;

    (void)state;
    tpath(path, sizeof(path), "rows.db");
    raw_exec(path, loose_table);
    for (size_t i = 0; i < N_BAD_ROWS; i++) {
        (void)snprintf(sql, sizeof(sql), "INSERT INTO mtasts_cache VALUES %s", bad_rows[i].values);
        raw_exec(path, sql);
    }
    s = open_ok(path);
    rec_of_kind(&good[0], 0, "good0.example", 9);
    rec_of_kind(&good[1], 1, "good1.example", 9);
    put_ok(s, &good[0]);
    put_ok(s, &good[1]);

    memset(&c, 0, sizeof(c));
    expect_status("load", sts_store_load(s, collect, &c, &skipped, &why), STS_OK, &why);
    if (c.n != 2 || skipped != N_BAD_ROWS)
        fail_msg("load: got %zu records and %zu skipped, want 2 and %zu", c.n, skipped,
                 N_BAD_ROWS);
    rec_expect("load good0", find(&c, "good0.example"), &good[0]);
    rec_expect("load good1", find(&c, "good1.example"), &good[1]);
    collected_free(&c);

    /* get of a bad row: PERMFAIL "cannot be decoded", never a half record. */
    for (size_t i = 0; i < N_BAD_ROWS; i++) {
        sts_cache_record got, zero;

        if (bad_rows[i].domain == NULL)
            continue;
        why.text[0] = '\0';
        expect_status(bad_rows[i].name, sts_store_get(s, bad_rows[i].domain, &got, &why),
                      STS_PERMFAIL, &why);
        expect_why(bad_rows[i].name, &why, "cannot be decoded");
        memset(&zero, 0, sizeof(zero));
        if (memcmp(&got, &zero, sizeof(got)) != 0)
            fail_msg("case %s: got a filled record, want it zeroed", bad_rows[i].name);
    }
    /* A bad row is replaced by a good put and deleted by delete. */
    {
        sts_cache_record fix;

        rec_of_kind(&fix, 2, "k0.example", 1);
        put_ok(s, &fix);
        get_expect(s, &fix);
        sts_cache_record_clear(&fix);
        expect_status("delete bad", sts_store_delete(s, "kt.example", &why), STS_OK, &why);
        get_notfound(s, "kt.example");
    }
    sts_cache_record_clear(&good[0]);
    sts_cache_record_clear(&good[1]);
    sts_store_close(s);
}

static void test_null_why_accepted(void **state)
{
    char path[600], spec[700];
    sts_store *s = NULL;
    sts_cache_record r, got;

    (void)state;
    tpath(path, sizeof(path), "nowhy.db");
    (void)snprintf(spec, sizeof(spec), "sqlite:%s", path);
    assert_int_equal(sts_store_open(spec, &s, NULL), STS_OK);
    rec_of_kind(&r, 1, "nowhy.example", 1);
    assert_int_equal(sts_store_put(s, &r, NULL), STS_OK);
    assert_int_equal(sts_store_get(s, "nowhy.example", &got, NULL), STS_OK);
    sts_cache_record_clear(&got);
    assert_int_equal(sts_store_get(s, "other.example", &got, NULL), STS_NOTFOUND);
    {
        static collected c;

        memset(&c, 0, sizeof(c));
        assert_int_equal(sts_store_load(s, collect, &c, NULL, NULL), STS_OK);
        assert_int_equal(c.n, 1);
        collected_free(&c);
    }
    assert_int_equal(sts_store_delete(s, "nowhy.example", NULL), STS_OK);
    assert_int_equal(sts_store_clear(s, NULL), STS_OK);
    sts_cache_record_clear(&r);
    sts_store_close(s);
    (void)snprintf(spec, sizeof(spec), "sqlite:%s/missing/x.db", tmpdir);
    assert_int_equal(sts_store_open(spec, &s, NULL), STS_PERMFAIL);
}

/* ------------------------------------------------------------ setup */

/* Records in the store's file, read with SQLite itself. */
static long long rows_in(const char *path)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    long long n = -1;

    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM mtasts_cache", -1, &st, NULL),
                     SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    (void)sqlite3_finalize(st);
    (void)sqlite3_close(db);
    return n;
}

/* CacheStoreMaxEntries: past the cap the store shrinks to 9/10 of it,
 * failed and no-policy records going first, then policies, each least
 * recently used first; the put that trimmed says so.  max 100 counts
 * every 100/8+1 = 13 puts, so the file never holds more than 113. */
static void test_cap_removes_least_worth_keeping(void **state)
{
    char path[600], domain[64];
    sts_store *s;
    sts_why why;
    unsigned trims = 0;
    long long rows;

    (void)state;
    s = open_ok(tpath(path, sizeof(path), "cap.db"));
    sts_store_set_max_entries(s, 100);
    /* 70 policies used at times 1000..1069, then 60 records without a
     * policy used later (2000..2059): these still go first. */
    for (int i = 0; i < 130; i++) {
        sts_cache_record r;

        (void)snprintf(domain, sizeof(domain), "d%03d.example", i);
        rec_of_kind(&r, i < 70 ? 0 : 1 + i % 2, domain, 0);
        r.last_used = i < 70 ? 1000 + i : 2000 + i;
        why.text[0] = '\0';
        expect_status(domain, sts_store_put(s, &r, &why), STS_OK, &why);
        if (why.text[0] != '\0') {
            trims++;
            if (strstr(why.text, "removed") == NULL ||
                strstr(why.text, "more than 100 records") == NULL)
                fail_msg("put %s: got note '%s', want one naming the cap and what was removed",
                         domain, why.text);
        }
        sts_cache_record_clear(&r);
        rows = rows_in(path);
        if (rows > 113)
            fail_msg("after put %d: got %lld records, want at most 113", i + 1, rows);
    }
    if (trims == 0)
        fail_msg("130 puts under a cap of 100: got no trim note, want at least one");
    for (int i = 0; i < 70; i++) {
        sts_cache_record got;
        sts_status st;

        (void)snprintf(domain, sizeof(domain), "d%03d.example", i);
        st = sts_store_get(s, domain, &got, &why);
        if (st != STS_OK)
            fail_msg("policy %s: got %s, want kept while records without a policy remain",
                     domain, sts_status_name(st));
        sts_cache_record_clear(&got);
    }
    /* Within the records without a policy, the oldest went. */
    get_notfound(s, "d070.example");
    get_expect_present(s, "d129.example");

    /* Only policies now: the least recently used policies make room. */
    for (int i = 130; i < 260; i++) {
        sts_cache_record r;

        (void)snprintf(domain, sizeof(domain), "d%03d.example", i);
        rec_of_kind(&r, 0, domain, 0);
        r.last_used = 3000 + i;
        put_ok(s, &r);
        sts_cache_record_clear(&r);
    }
    rows = rows_in(path);
    if (rows < 90 || rows > 113)
        fail_msg("after 260 puts: got %lld records, want 90..113", rows);
    get_notfound(s, "d000.example");
    get_expect_present(s, "d259.example");
    sts_store_close(s);
}

/* No cap (0, the API's default): nothing is ever removed. */
static void test_no_cap_keeps_everything(void **state)
{
    char path[600], domain[64];
    sts_store *s;

    (void)state;
    s = open_ok(tpath(path, sizeof(path), "nocap.db"));
    sts_store_set_max_entries(s, 0);
    for (int i = 0; i < 300; i++) {
        sts_cache_record r;

        (void)snprintf(domain, sizeof(domain), "n%03d.example", i);
        rec_of_kind(&r, 1, domain, i);
        put_ok(s, &r);
        sts_cache_record_clear(&r);
    }
    if (rows_in(path) != 300)
        fail_msg("300 puts without a cap: got %lld records, want 300", rows_in(path));
    sts_store_close(s);
}

static int group_setup(void **state)
{
    (void)state;
    return unit_mkdtemp(tmpdir, sizeof(tmpdir), "test_store_sqlite") ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    return unit_rmtree(tmpdir);
}

int main(void)
{
    struct CMUnitTest tests[N_CORRUPT + 18];
    size_t n = 0;

    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_round_trip_each_kind);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_load_and_clear);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_prune_drops_only_expired_records);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_restart_keeps_every_record);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_two_handles_share_the_file);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_purge_log_between_handles);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_wal_journal);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_policy_64k_byte_exact);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_file_mode_0600);
    for (size_t i = 0; i < N_CORRUPT; i++) {
        tests[n] = (struct CMUnitTest)cmocka_unit_test_prestate(run_corrupt_case,
                                                                (void *)&corrupt_cases[i]);
        tests[n++].name = corrupt_cases[i].name;
    }
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_corrupt_stale_wal_and_free_names);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_newer_schema_refused_untouched);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_foreign_database_refused);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_wrong_table_shape_refused);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_bad_paths);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_bad_rows_skipped_and_counted);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_null_why_accepted);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_cap_removes_least_worth_keeping);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_no_cap_keeps_everything);
    return UNIT_RUN_WITH("store_sqlite", tests, n, group_setup, group_teardown);
}
