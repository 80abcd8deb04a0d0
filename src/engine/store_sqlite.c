/*
 * store_sqlite.c - the embedded cache store (CacheStore sqlite:PATH), the
 * default: one SQLite file, so a restart or a crash keeps every policy
 * (RFC 8461 5.1, 8.1).  The only file that includes sqlite3.h.
 *
 * - One table, explicit columns; the schema version lives in PRAGMA
 *   user_version.  A file with a newer version is refused untouched (a
 *   downgrade must not destroy a newer program's data); a version-0 file
 *   that already holds tables is somebody else's database and refused too.
 * - WAL journal, synchronous=NORMAL: each write is one INSERT OR REPLACE /
 *   DELETE in autocommit, atomic and crash-safe; at worst a power loss
 *   forgets the last few writes, which the next refresh redoes.
 * - busy_timeout 2 s, so mtasts-query --cache and the daemon can share the
 *   file; statements are prepared once and kept.
 * - The file is created mode 0600 (SQLite gives -wal and -shm the mode of
 *   the database).  The directory is not created: a missing or read-only
 *   directory is STS_PERMFAIL naming it.
 * - A file SQLite calls corrupt or not a database, or one failing PRAGMA
 *   quick_check, is renamed PATH.corrupt-<unixtime> (with its -wal and
 *   -journal, which would otherwise be replayed into the new file) and a
 *   fresh database is created: losing a cache is better than losing the
 *   service.  The reason text says so; the caller logs it.
 * - Every row read back goes through the shared record checks; a row that
 *   fails them is skipped and counted on load, STS_PERMFAIL on get.
 * - Records leave at their expiry through sts_store_prune, one DELETE that
 *   scans the table (no index: the engine prunes once an hour), or, past
 *   CacheStoreMaxEntries, through the trim (store.h) that store.c calls
 *   now and then after a put.
 */
#include "engine/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "base/buf.h"
#include "sts/policy.h"
#include "engine/store_impl.h"

#define SQL_SCHEMA_VERSION 1
#define SQL_BUSY_TIMEOUT_MS 2000
#define SQL_PATH_MAX 4096       /* longer CacheStore paths are refused */
#define SQL_CORRUPT_TRIES 100   /* PATH.corrupt-T, PATH.corrupt-T.1, ... */

#define SQL_COLUMNS "domain, kind, id, policy, fetched_at, checked_at, expires_at, last_used"

static const char sql_create[] =
    "CREATE TABLE mtasts_cache ("
    " domain TEXT PRIMARY KEY NOT NULL,"
    " kind INTEGER NOT NULL,"
    " id TEXT NOT NULL,"
    " policy TEXT,"
    " fetched_at INTEGER NOT NULL,"
    " checked_at INTEGER NOT NULL,"
    " expires_at INTEGER NOT NULL,"
    " last_used INTEGER NOT NULL)";

/* The purge log (store.h), an addition to schema 1 that programs which
 * do not know it never look at; AUTOINCREMENT: a number is never used
 * twice, even after old notes are deleted. */
static const char sql_create_purge[] =
    "CREATE TABLE IF NOT EXISTS mtasts_purge ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " domain TEXT NOT NULL,"
    " at INTEGER NOT NULL)";

/* The kept statements, in the order of the stmt[] array. */
enum { Q_PUT, Q_GET, Q_DEL, Q_CLEAR, Q_LOAD, Q_PRUNE, Q_ROWS, Q_TRIM, Q_PNOTE, Q_PTRIM,
       Q_PSINCE, Q_PMAX, Q_COUNT };

static const char *const sql_stmt[Q_COUNT] = {
    [Q_PUT] = "INSERT OR REPLACE INTO mtasts_cache (" SQL_COLUMNS ") VALUES (?,?,?,?,?,?,?,?)",
    [Q_GET] = "SELECT " SQL_COLUMNS " FROM mtasts_cache WHERE domain = ?",
    [Q_DEL] = "DELETE FROM mtasts_cache WHERE domain = ?",
    [Q_CLEAR] = "DELETE FROM mtasts_cache",
    [Q_LOAD] = "SELECT " SQL_COLUMNS " FROM mtasts_cache",
    [Q_PRUNE] = "DELETE FROM mtasts_cache WHERE expires_at < ?",
    [Q_ROWS] = "SELECT count(*) FROM mtasts_cache",
    /* Least worth keeping first: failed and no-policy records (kind 2
     * and 3, "kind = 1" is 0 for them), then policies; each least
     * recently used first. */
    [Q_TRIM] = ("DELETE FROM mtasts_cache WHERE domain IN (SELECT domain FROM mtasts_cache"
                " ORDER BY kind = 1, last_used LIMIT ?)"),
    [Q_PNOTE] = "INSERT INTO mtasts_purge (domain, at) VALUES (?, ?)",
    [Q_PTRIM] = "DELETE FROM mtasts_purge WHERE at < ?",
    [Q_PSINCE] = "SELECT seq, domain FROM mtasts_purge WHERE seq > ? ORDER BY seq LIMIT ?",
    [Q_PMAX] = "SELECT coalesce(max(seq), 0) FROM mtasts_purge",
};

typedef struct sql_store {
    sqlite3 *db;
    sqlite3_stmt *stmt[Q_COUNT];
    char path[SQL_PATH_MAX + 1];
} sql_store;

/* ------------------------------------------------------------ errors */

static bool rc_corrupt(int rc)
{
    return (rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_NOTADB;
}

/* Locking, I/O and a full disk may clear up; a bad file or statement will not. */
static sts_status rc_status(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_PROTOCOL:
        return STS_TEMPFAIL;
    case SQLITE_NOMEM:
        return STS_NOMEM;
    default:
        return STS_PERMFAIL;
    }
}

static sts_status sql_fail(sqlite3 *db, int rc, const char *what, sts_why *why)
{
    sts_why_set(why, "sqlite %s: %s", what, db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    return rc_status(rc);
}

/* ------------------------------------------------------------ opening */

/* The directory must exist and be writable: SQLite creates PATH-wal and
 * PATH-shm beside the file.  An existing PATH must be a regular file we
 * may read and write; a missing one is created here with mode 0600. */
static sts_status check_path(const char *path, sts_why *why)
{
    char dir[SQL_PATH_MAX + 1];
    const char *slash = strrchr(path, '/');
    struct stat sb;
    int fd;

    if (slash == NULL) {
        memcpy(dir, ".", 2);
    } else if (slash == path) {
        memcpy(dir, "/", 2);
    } else {
        memcpy(dir, path, (size_t)(slash - path));
        dir[slash - path] = '\0';
    }
    if (stat(dir, &sb) != 0) {
        sts_why_set(why, "cache directory %s: %s%s", dir, strerror(errno),
                    errno == ENOENT ? " (create it, owned by the daemon's user)" : "");
        return STS_PERMFAIL;
    }
    if (!S_ISDIR(sb.st_mode)) {
        sts_why_set(why, "%s is not a directory", dir);
        return STS_PERMFAIL;
    }
    if (access(dir, W_OK | X_OK) != 0) {
        sts_why_set(why, "cache directory %s is not writable: %s", dir, strerror(errno));
        return STS_PERMFAIL;
    }
    /* stat, not lstat: an administrator may link the file elsewhere. */
    if (stat(path, &sb) == 0) {
        if (!S_ISREG(sb.st_mode)) {
            sts_why_set(why, "cache file %s is not a regular file", path);
            return STS_PERMFAIL;
        }
        if (access(path, R_OK | W_OK) != 0) {
            sts_why_set(why, "cache file %s: %s", path, strerror(errno));
            return STS_PERMFAIL;
        }
        return STS_OK;
    }
    if (errno != ENOENT) {
        sts_why_set(why, "cache file %s: %s", path, strerror(errno));
        return STS_PERMFAIL;
    }
    /* An empty file is a valid empty database; creating it ourselves is
     * how it gets mode 0600 whatever the umask. */
    fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 && errno != EEXIST) {
        sts_why_set(why, "cannot create cache file %s: %s", path, strerror(errno));
        return STS_PERMFAIL;
    }
    if (fd >= 0)
        (void)close(fd);
    return STS_OK;
}

/* name = path + suffix, or false if it does not fit. */
static bool join(char *name, size_t namesz, const char *path, const char *suffix)
{
    int n = snprintf(name, namesz, "%s%s", path, suffix);

    return n >= 0 && (size_t)n < namesz;
}

/* Move the unusable file (and the journals that belong to it) to a free
 * PATH.corrupt-<unixtime>[.N]; the name used goes to moved. */
static sts_status move_aside(const char *path, char *moved, size_t movedsz, sts_why *why)
{
    static const char *const journals[] = { "-wal", "-journal" };
    char from[SQL_PATH_MAX + 16], to[SQL_PATH_MAX + 64];
    long long now = (long long)time(NULL);
    struct stat sb;
    unsigned i;
    int n;

    for (i = 0; i < SQL_CORRUPT_TRIES; i++) {
        if (i == 0)
            n = snprintf(moved, movedsz, "%s.corrupt-%lld", path, now);
        else
            n = snprintf(moved, movedsz, "%s.corrupt-%lld.%u", path, now, i);
        if (n < 0 || (size_t)n >= movedsz) {
            sts_why_set(why, "cache file name %s is too long to move it aside", path);
            return STS_PERMFAIL;
        }
        if (lstat(moved, &sb) != 0 && errno == ENOENT)
            break;
    }
    if (i == SQL_CORRUPT_TRIES) {
        sts_why_set(why, "no free name to move %s aside", path);
        return STS_PERMFAIL;
    }
    if (rename(path, moved) != 0) {
        sts_why_set(why, "cannot move unusable cache file %s aside: %s", path, strerror(errno));
        return STS_PERMFAIL;
    }
    for (size_t j = 0; j < sizeof(journals) / sizeof(journals[0]); j++) {
        if (!join(from, sizeof(from), path, journals[j]) ||
            !join(to, sizeof(to), moved, journals[j]))
            continue;
        if (rename(from, to) != 0 && errno != ENOENT) {
            sts_why_set(why, "cannot move %s aside: %s", from, strerror(errno));
            return STS_PERMFAIL;
        }
    }
    /* The shared-memory index only describes the old WAL. */
    if (join(from, sizeof(from), path, "-shm") && unlink(from) != 0 && errno != ENOENT) {
        sts_why_set(why, "cannot remove %s: %s", from, strerror(errno));
        return STS_PERMFAIL;
    }
    return STS_OK;
}

/* Run a one-row PRAGMA and read its first column as an integer. */
static int pragma_int(sqlite3 *db, const char *sql, sqlite3_int64 *out)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    }
    (void)sqlite3_finalize(st);
    return rc;
}

/* PRAGMA quick_check: SQLITE_OK and ok = true if the file is sound;
 * otherwise its first complaint goes to why. */
static int quick_check(sqlite3 *db, bool *ok, sts_why *why)
{
    sqlite3_stmt *st = NULL;
    const unsigned char *text;
    int rc = sqlite3_prepare_v2(db, "PRAGMA quick_check(1)", -1, &st, NULL);

    *ok = false;
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        text = sqlite3_column_text(st, 0);
        if (text == NULL) {
            rc = SQLITE_NOMEM;
        } else {
            *ok = strcmp((const char *)text, "ok") == 0;
            if (!*ok && why != NULL) {
                /* Its report spans lines; a reason is one line. */
                sts_why_set(why, "quick_check: %s", (const char *)text);
                for (char *c = why->text; *c != '\0'; c++)
                    if ((unsigned char)*c < 0x20)
                        *c = ' ';
            }
            rc = SQLITE_OK;
        }
    }
    (void)sqlite3_finalize(st);
    return rc;
}

static void sql_close_db(sql_store *q)
{
    for (size_t i = 0; i < Q_COUNT; i++) {
        (void)sqlite3_finalize(q->stmt[i]);
        q->stmt[i] = NULL;
    }
    (void)sqlite3_close(q->db);
    q->db = NULL;
}

/* Create the table in an empty file.  Under BEGIN IMMEDIATE so that two
 * processes opening a new file at once do not both create it. */
static sts_status create_schema(sql_store *q, sqlite3_int64 *ver, sts_why *why)
{
    sqlite3_int64 objects = 0;
    sts_status st = STS_OK;
    int rc;

    rc = sqlite3_exec(q->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return sql_fail(q->db, rc, "begin", why);
    rc = pragma_int(q->db, "PRAGMA user_version", ver);
    if (rc == SQLITE_OK && *ver == 0)
        rc = pragma_int(q->db, "SELECT count(*) FROM sqlite_master", &objects);
    if (rc != SQLITE_OK) {
        st = sql_fail(q->db, rc, "reading the schema", why);
        goto done;
    }
    if (*ver != 0)
        goto done; /* somebody else created it meanwhile */
    if (objects != 0) {
        sts_why_set(why, "%s is a database of something else (it has tables but no "
                    "mtasts-milter schema version); refusing to use it", q->path);
        st = STS_PERMFAIL;
        goto done;
    }
    rc = sqlite3_exec(q->db, sql_create, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(q->db, "PRAGMA user_version = 1", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        st = sql_fail(q->db, rc, "creating the table", why);
        goto done;
    }
    *ver = SQL_SCHEMA_VERSION;
done:
    rc = sqlite3_exec(q->db, st == STS_OK ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL);
    if (st == STS_OK && rc != SQLITE_OK)
        st = sql_fail(q->db, rc, "commit", why);
    return st;
}

/* Open q->path and make it ready.  *corrupt is set (and the complaint
 * left in why) when the file is corrupt or not a database. */
static sts_status open_db(sql_store *q, bool *corrupt, sts_why *why)
{
    sqlite3_int64 ver = 0;
    sts_status st = STS_OK;
    bool ok;
    int rc;

    *corrupt = false;
    rc = sqlite3_open_v2(q->path, &q->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        *corrupt = rc_corrupt(rc);
        st = sql_fail(q->db, rc, "open", why);
        goto done;
    }
    (void)sqlite3_extended_result_codes(q->db, 1);
    (void)sqlite3_busy_timeout(q->db, SQL_BUSY_TIMEOUT_MS);
    /* No writable schema, no schema-defined functions: the file is data. */
    (void)sqlite3_db_config(q->db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
    (void)sqlite3_db_config(q->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, (int *)NULL);

    /* The first read of the file: "file is not a database" shows here. */
    rc = pragma_int(q->db, "PRAGMA user_version", &ver);
    if (rc != SQLITE_OK) {
        *corrupt = rc_corrupt(rc);
        st = sql_fail(q->db, rc, "reading the schema version", why);
        goto done;
    }
    if (ver > SQL_SCHEMA_VERSION || ver < 0) {
        sts_why_set(why, "%s has cache schema version %lld, this program knows %d; not "
                    "touching it (run the newer mtasts-milter, or use another file)",
                    q->path, (long long)ver, SQL_SCHEMA_VERSION);
        st = STS_PERMFAIL;
        goto done;
    }
    rc = quick_check(q->db, &ok, why);
    if (rc != SQLITE_OK || !ok) {
        *corrupt = rc == SQLITE_OK || rc_corrupt(rc);
        st = rc == SQLITE_OK ? STS_PERMFAIL : sql_fail(q->db, rc, "quick_check", why);
        goto done;
    }
    rc = sqlite3_exec(q->db, "PRAGMA journal_mode = WAL", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(q->db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        *corrupt = rc_corrupt(rc);
        st = sql_fail(q->db, rc, "setting the journal mode", why);
        goto done;
    }
    if (ver == 0) {
        st = create_schema(q, &ver, why);
        if (st != STS_OK)
            goto done;
        if (ver != SQL_SCHEMA_VERSION) {
            sts_why_set(why, "%s has cache schema version %lld, this program knows %d; not "
                        "touching it", q->path, (long long)ver, SQL_SCHEMA_VERSION);
            st = STS_PERMFAIL;
            goto done;
        }
    }
    rc = sqlite3_exec(q->db, sql_create_purge, NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        *corrupt = rc_corrupt(rc);
        st = sql_fail(q->db, rc, "creating the purge log", why);
        goto done;
    }
    for (size_t i = 0; i < Q_COUNT; i++) {
        rc = sqlite3_prepare_v3(q->db, sql_stmt[i], -1, SQLITE_PREPARE_PERSISTENT, &q->stmt[i],
                                NULL);
        if (rc != SQLITE_OK) {
            *corrupt = rc_corrupt(rc);
            st = sql_fail(q->db, rc, "prepare", why);
            /* "no such column": a table of the right name but another shape. */
            if (st == STS_PERMFAIL && !*corrupt)
                sts_why_set(why, "%s is not an mtasts-milter cache as this program knows it: %s",
                            q->path, sqlite3_errmsg(q->db));
            goto done;
        }
    }
done:
    if (st != STS_OK)
        sql_close_db(q);
    return st;
}

/* ------------------------------------------------------------ operations */

/* Bind the columns in SQL_COLUMNS order starting at parameter 1. */
static int bind_record(sqlite3_stmt *st, const sts_cache_record *r)
{
    int rc = sqlite3_bind_text(st, 1, r->domain, -1, SQLITE_STATIC);

    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 2, (int)r->kind);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 3, r->id, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = r->policy_text != NULL
                 ? sqlite3_bind_text(st, 4, r->policy_text, (int)r->policy_len, SQLITE_STATIC)
                 : sqlite3_bind_null(st, 4);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 5, r->fetched_at);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 6, r->checked_at);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 7, r->expires_at);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 8, r->last_used);
    return rc;
}

/* Run a statement that returns no rows, then make it reusable. */
static sts_status run(sql_store *q, sqlite3_stmt *st, const char *what, sts_why *why)
{
    int rc = sqlite3_step(st);
    sts_status res = STS_OK;

    if (rc != SQLITE_DONE)
        res = sql_fail(q->db, rc, what, why);
    (void)sqlite3_reset(st);
    (void)sqlite3_clear_bindings(st);
    return res;
}

static sts_status sql_put(void *be, const sts_cache_record *r, sts_why *why)
{
    sql_store *q = be;
    sqlite3_stmt *st = q->stmt[Q_PUT];
    int rc = bind_record(st, r);

    if (rc != SQLITE_OK) {
        (void)sqlite3_clear_bindings(st);
        return sql_fail(q->db, rc, "put", why);
    }
    return run(q, st, "put", why);
}

/* One TEXT column of at most max bytes, without NUL, as a view. */
static bool text_col(sqlite3_stmt *st, int col, size_t max, sts_cur *out)
{
    const unsigned char *p;
    int n;

    if (sqlite3_column_type(st, col) != SQLITE_TEXT)
        return false;
    p = sqlite3_column_text(st, col);
    n = sqlite3_column_bytes(st, col);
    if (p == NULL || n < 0 || (size_t)n > max || memchr(p, '\0', (size_t)n) != NULL)
        return false;
    *out = sts_cur_make((const char *)p, (size_t)n);
    return true;
}

static bool int_col(sqlite3_stmt *st, int col, int64_t *out)
{
    if (sqlite3_column_type(st, col) != SQLITE_INTEGER)
        return false;
    *out = sqlite3_column_int64(st, col);
    return true;
}

/* The current row (SQL_COLUMNS order) as a record, checked like any
 * stored record.  STS_PERMFAIL: the row cannot be decoded. */
static sts_status row_decode(sqlite3_stmt *st, sts_cache_record *out, sts_why *why)
{
    sts_cur v;
    int64_t kind;
    sts_status res = STS_PERMFAIL;

    memset(out, 0, sizeof(*out));
    if (!text_col(st, 0, STS_DOMAIN_MAX, &v)) {
        sts_why_set(why, "a row's domain is not a text of at most %d bytes", STS_DOMAIN_MAX);
        goto done;
    }
    memcpy(out->domain, v.p, v.len);
    out->domain[v.len] = '\0';
    /* Checked now, so that the reasons below may quote it. */
    if (!sts_store_domain_ok(out->domain, v.len)) {
        sts_why_set(why, "a row's domain is not a lower-case host name");
        goto done;
    }
    if (!int_col(st, 1, &kind) || kind < STS_ENTRY_POLICY || kind > STS_ENTRY_FAILED) {
        sts_why_set(why, "%s: kind is not 1, 2 or 3", out->domain);
        goto done;
    }
    out->kind = (sts_entry_kind)kind;
    if (!text_col(st, 2, STS_ID_MAX, &v)) {
        sts_why_set(why, "%s: id is not a text of at most %d bytes", out->domain, STS_ID_MAX);
        goto done;
    }
    memcpy(out->id, v.p, v.len);
    out->id[v.len] = '\0';
    if (sqlite3_column_type(st, 3) != SQLITE_NULL) {
        if (!text_col(st, 3, STS_POLICY_MAX_BODY, &v)) {
            sts_why_set(why, "%s: policy is not a text of at most %u bytes", out->domain,
                        STS_POLICY_MAX_BODY);
            goto done;
        }
        res = sts_store_record_set_policy(out, v.p, v.len);
        if (res != STS_OK) {
            sts_why_set(why, "out of memory reading %s", out->domain);
            goto done;
        }
        res = STS_PERMFAIL;
    }
    if (!int_col(st, 4, &out->fetched_at) || !int_col(st, 5, &out->checked_at) ||
        !int_col(st, 6, &out->expires_at) || !int_col(st, 7, &out->last_used)) {
        sts_why_set(why, "%s: a time is not an integer", out->domain);
        goto done;
    }
    res = sts_store_record_check(out, why);
done:
    if (res != STS_OK)
        sts_cache_record_clear(out);
    return res;
}

static sts_status sql_get(void *be, const char *domain, sts_cache_record *out, sts_why *why)
{
    sql_store *q = be;
    sqlite3_stmt *st = q->stmt[Q_GET];
    sts_why bad;
    sts_status res;
    int rc = sqlite3_bind_text(st, 1, domain, -1, SQLITE_STATIC);

    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        res = row_decode(st, out, &bad);
        if (res == STS_PERMFAIL)
            sts_why_set(why, "the record stored for %s cannot be decoded: %s", domain, bad.text);
        else if (res != STS_OK)
            sts_why_set(why, "%s", bad.text);
    } else if (rc == SQLITE_DONE) {
        res = STS_NOTFOUND;
        sts_why_set(why, "%s: no record", domain);
    } else {
        res = sql_fail(q->db, rc, "get", why);
    }
    (void)sqlite3_reset(st);
    (void)sqlite3_clear_bindings(st);
    return res;
}

static sts_status sql_del(void *be, const char *domain, sts_why *why)
{
    sql_store *q = be;
    sqlite3_stmt *st = q->stmt[Q_DEL];
    int rc = sqlite3_bind_text(st, 1, domain, -1, SQLITE_STATIC);

    if (rc != SQLITE_OK)
        return sql_fail(q->db, rc, "delete", why);
    return run(q, st, "delete", why);
}

static sts_status sql_clear(void *be, sts_why *why)
{
    sql_store *q = be;

    return run(q, q->stmt[Q_CLEAR], "clear", why);
}

static sts_status sql_prune(void *be, int64_t before, sts_why *why)
{
    sql_store *q = be;
    sqlite3_stmt *st = q->stmt[Q_PRUNE];
    int rc = sqlite3_bind_int64(st, 1, before);

    if (rc != SQLITE_OK)
        return sql_fail(q->db, rc, "prune", why);
    return run(q, st, "prune", why);
}

static sts_status sql_trim(void *be, uint64_t max, uint64_t keep, uint64_t *removed,
                           sts_why *why)
{
    sql_store *q = be;
    sqlite3_stmt *st = q->stmt[Q_ROWS];
    sqlite3_int64 rows = 0;
    sts_status res;
    int rc = sqlite3_step(st);

    *removed = 0;
    if (rc == SQLITE_ROW)
        rows = sqlite3_column_int64(st, 0);
    (void)sqlite3_reset(st);
    if (rc != SQLITE_ROW)
        return sql_fail(q->db, rc, "count", why);
    if (rows < 0 || (uint64_t)rows <= max)
        return STS_OK;
    st = q->stmt[Q_TRIM];
    rc = sqlite3_bind_int64(st, 1, (sqlite3_int64)((uint64_t)rows - keep));
    if (rc != SQLITE_OK)
        return sql_fail(q->db, rc, "trim", why);
    res = run(q, st, "trim", why);
    if (res == STS_OK)
        *removed = (uint64_t)sqlite3_changes(q->db);
    return res;
}

static sts_status sql_load(void *be, sts_store_each_cb *each, void *arg, size_t *skipped,
                           sts_why *why)
{
    sql_store *q = be;
    sqlite3_stmt *st = q->stmt[Q_LOAD];
    sts_cache_record r;
    sts_status res = STS_OK;
    sts_why bad;
    int rc;

    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        res = row_decode(st, &r, &bad);
        if (res == STS_PERMFAIL) {
            (*skipped)++;
            res = STS_OK;
            continue;
        }
        if (res != STS_OK) {
            sts_why_set(why, "%s", bad.text);
            goto done;
        }
        if (!each(arg, &r)) {
            sts_cache_record_clear(&r);
            rc = SQLITE_DONE;
            break;
        }
        sts_cache_record_clear(&r);
    }
    if (rc != SQLITE_DONE)
        res = sql_fail(q->db, rc, "load", why);
done:
    (void)sqlite3_reset(st);
    return res;
}

static sts_status sql_purge_note(void *be, const char *domain, sts_why *why)
{
    sql_store *q = be;
    sqlite3_stmt *st = q->stmt[Q_PNOTE];
    int64_t now = (int64_t)time(NULL);
    sts_status res;
    int rc;

    rc = sqlite3_bind_text(st, 1, domain != NULL ? domain : STS_STORE_PURGE_ALL, -1,
                           SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 2, now);
    if (rc != SQLITE_OK) {
        (void)sqlite3_clear_bindings(st);
        return sql_fail(q->db, rc, "purge note", why);
    }
    res = run(q, st, "purge note", why);
    if (res != STS_OK)
        return res;
    st = q->stmt[Q_PTRIM];
    rc = sqlite3_bind_int64(st, 1, now - STS_STORE_PURGE_KEEP);
    if (rc != SQLITE_OK) {
        (void)sqlite3_clear_bindings(st);
        return sql_fail(q->db, rc, "purge trim", why);
    }
    return run(q, st, "purge trim", why);
}

static sts_status sql_purges_since(void *be, uint64_t *seq, sts_store_purge_cb *each, void *arg,
                                   sts_why *why)
{
    sql_store *q = be;
    sqlite3_stmt *st = q->stmt[each != NULL ? Q_PSINCE : Q_PMAX];
    sts_status res = STS_OK;
    int rc = SQLITE_OK;

    if (each != NULL) {
        rc = sqlite3_bind_int64(st, 1, (sqlite3_int64)(*seq > INT64_MAX ? INT64_MAX : *seq));
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int(st, 2, STS_STORE_PURGE_BATCH);
    }
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        sqlite3_int64 n;
        const unsigned char *d;

        if ((rc = sqlite3_step(st)) != SQLITE_ROW)
            break;
        n = sqlite3_column_int64(st, 0);
        if (n > 0 && (uint64_t)n > *seq)
            *seq = (uint64_t)n;
        if (each == NULL)
            continue;
        d = sqlite3_column_text(st, 1);
        /* A note that is neither "*" nor a domain was not written by us:
         * skipped (its number still counts). */
        if (d == NULL)
            continue;
        if (strcmp((const char *)d, STS_STORE_PURGE_ALL) == 0)
            each(arg, NULL);
        else if (sts_store_domain_ok((const char *)d, strlen((const char *)d)))
            each(arg, (const char *)d);
    }
    if (rc != SQLITE_DONE)
        res = sql_fail(q->db, rc, "purge log", why);
    (void)sqlite3_reset(st);
    (void)sqlite3_clear_bindings(st);
    return res;
}

static void sql_close(void *be)
{
    sql_store *q = be;

    if (q == NULL)
        return;
    sql_close_db(q);
    free(q);
}

static const sts_store_ops sql_ops = {
    .name = "sqlite",
    .put = sql_put,
    .get = sql_get,
    .del = sql_del,
    .clear = sql_clear,
    .prune = sql_prune,
    .trim = sql_trim,
    .load = sql_load,
    .purge_note = sql_purge_note,
    .purges_since = sql_purges_since,
    .close = sql_close,
};

sts_status sts_store_sqlite_open(const char *path, sts_store *s, sts_why *why)
{
    char moved[SQL_PATH_MAX + 64];
    sql_store *q = NULL;
    sts_why bad;
    sts_status st = STS_PERMFAIL;
    size_t len = path != NULL ? strnlen(path, SQL_PATH_MAX + 1) : 0;
    bool corrupt;

    if (len == 0) {
        sts_why_set(why, "sqlite: needs a file name");
        goto done;
    }
    if (len > SQL_PATH_MAX) {
        sts_why_set(why, "sqlite: file name longer than %d bytes", SQL_PATH_MAX);
        goto done;
    }
    q = calloc(1, sizeof(*q));
    if (q == NULL) {
        st = STS_NOMEM;
        sts_why_set(why, "out of memory opening %s", path);
        goto done;
    }
    memcpy(q->path, path, len + 1);
    st = check_path(q->path, why);
    if (st != STS_OK)
        goto done;
    bad.text[0] = '\0';
    st = open_db(q, &corrupt, &bad);
    if (st != STS_OK && corrupt) {
        st = move_aside(q->path, moved, sizeof(moved), why);
        if (st != STS_OK)
            goto done;
        st = check_path(q->path, why);
        if (st == STS_OK)
            st = open_db(q, &corrupt, why);
        if (st != STS_OK)
            goto done;
        /* The new name first: a long reason is cut at the end. */
        sts_why_set(why, "moved unusable cache file to %s and started an empty one (%s)", moved,
                    bad.text);
    } else if (st != STS_OK) {
        sts_why_set(why, "%s", bad.text);
        goto done;
    } else {
        sts_why_set(why, "%s", "");
    }
    s->ops = &sql_ops;
    s->be = q;
    q = NULL;
done:
    sql_close(q);
    return st;
}
