/*
 * rspool.c - the report spool of RFC 8460 delivery (see rspool.h): what
 * lets a report survive a crash or restart between being made and being
 * delivered (RFC 8460 5.5 retries for up to a day), and what keeps it from
 * being sent twice.
 *
 * The spool directory (ReportSpool) holds:
 *   r-<sha256(report id), 32 hex>.json  one report: a JSON envelope
 *       {"format": 1, "report_id", "policy_domain", "submitter", "begin",
 *        "end", "spooled" (wall clock at enqueue), "first_attempt",
 *        "attempts", "next_attempt" (UTC seconds, 0 = not yet),
 *        "rua": {URI: {"attempts": n, "delivered": t (0 = not yet),
 *                      "last_error": "..."}},
 *        "report": the report JSON text}
 *       (written and read by rsend.c; this module stores it as text)
 *   sent.idx  one line "report-id SP time LF" per finished report
 *       (delivered, given up or not wanted), appended + fsync'd before
 *       the spool file is removed, pruned after max(2 * retry, 14 days).
 *   .tmp.*    files being written; corrupt-r-*.json  unreadable files
 *       moved aside.
 * Every write is temp file + fsync + rename (link for a new report, so an
 * existing one is never replaced) + fsync of the directory: a crash leaves
 * either the old file or the new one, never a torn one.
 */
#include "buildconf.h"
#include "tlsrpt/rspool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "base/buf.h"
#include "base/log.h"

#define RSPOOL_INDEX_MAX (16u * 1024 * 1024)
#define RSPOOL_INDEX "sent.idx"
#define RSPOOL_KEEP_MIN (14 * 86400)

/* ------------------------------------------------------------ spool files */

/* Spool file name of a report: its id may be longer than a file name. */
sts_status sts_rspool_name(const char *id, char out[STS_RSPOOL_NAME_MAX])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;

    if (EVP_Digest(id, strlen(id), md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen < 16)
        return STS_NOMEM;
    memcpy(out, "r-", 2);
    o = 2;
    for (unsigned i = 0; i < 16; i++) {
        out[o++] = hex[md[i] >> 4];
        out[o++] = hex[md[i] & 15];
    }
    memcpy(out + o, ".json", 6);
    return STS_OK;
}

bool sts_rspool_is_name(const char *n)
{
    size_t len = strlen(n);

    return len > 7 && len < STS_RSPOOL_NAME_MAX && strncmp(n, "r-", 2) == 0 &&
           strcmp(n + len - 5, ".json") == 0;
}

sts_status sts_rspool_open(const sts_rsend_opts *o, bool create, int *dirfd, sts_why *why)
{
    *dirfd = -1;
    if (o->spool_dir == NULL || o->spool_dir[0] == '\0') {
        sts_why_set(why, "no ReportSpool directory");
        return STS_PERMFAIL;
    }
    if (create && mkdir(o->spool_dir, 0700) != 0 && errno != EEXIST) {
        sts_why_set(why, "cannot create spool %s: %s", o->spool_dir, strerror(errno));
        return STS_TEMPFAIL;
    }
    *dirfd = open(o->spool_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (*dirfd < 0) {
        sts_why_set(why, "cannot open spool %s: %s", o->spool_dir, strerror(errno));
        return errno == ENOENT ? STS_NOTFOUND : STS_TEMPFAIL;
    }
    return STS_OK;
}

/* Read a whole file of at most max bytes; *data is NUL-terminated. */
sts_status sts_rspool_read(int dirfd, const char *name, size_t max, char **data, size_t *len,
                           sts_why *why)
{
    sts_buf b;
    char tmp[65536];
    sts_status st = STS_OK;
    int fd;

    *data = NULL;
    *len = 0;
    fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        sts_why_set(why, "cannot open %s: %s", name, strerror(errno));
        return errno == ENOENT ? STS_NOTFOUND : STS_TEMPFAIL;
    }
    sts_buf_init(&b, max);
    for (;;) {
        ssize_t r = read(fd, tmp, sizeof(tmp));

        if (r == 0)
            break;
        if (r < 0) {
            if (errno == EINTR)
                continue;
            sts_why_set(why, "cannot read %s: %s", name, strerror(errno));
            st = STS_TEMPFAIL;
            break;
        }
        st = sts_buf_append(&b, tmp, (size_t)r);
        if (st != STS_OK) {
            sts_why_set(why, st == STS_NOMEM ? "out of memory" : "%s is larger than %zu bytes",
                        name, max);
            break;
        }
    }
    (void)close(fd);
    if (st != STS_OK) {
        sts_buf_free(&b);
        return st;
    }
    *len = b.len;
    *data = sts_buf_steal(&b);
    if (*data == NULL && (*data = calloc(1, 1)) == NULL)
        return STS_NOMEM;
    return STS_OK;
}

static bool write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* Atomically make name hold data: temp file, fsync, then rename (or link
 * when exclusive, so that an existing file is never replaced: *existed),
 * then fsync the directory. */
sts_status sts_rspool_write(int dirfd, const char *name, const char *data, size_t len,
                            bool exclusive, bool *existed, sts_why *why)
{
    char tmp[STS_RSPOOL_NAME_MAX + 32];
    sts_status st = STS_TEMPFAIL;
    int fd;

    if (existed != NULL)
        *existed = false;
    (void)snprintf(tmp, sizeof(tmp), ".tmp.%ld.%s", (long)getpid(), name);
    fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        sts_why_set(why, "cannot create %s: %s", tmp, strerror(errno));
        return STS_TEMPFAIL;
    }
    if (!write_all(fd, data, len) || fsync(fd) != 0) {
        sts_why_set(why, "cannot write %s: %s", tmp, strerror(errno));
        (void)close(fd);
        goto done;
    }
    if (close(fd) != 0) {
        sts_why_set(why, "cannot write %s: %s", tmp, strerror(errno));
        goto done;
    }
    if (exclusive) {
        if (linkat(dirfd, tmp, dirfd, name, 0) != 0) {
            if (errno == EEXIST && existed != NULL) {
                *existed = true;
                st = STS_OK;
            } else {
                sts_why_set(why, "cannot link %s: %s", name, strerror(errno));
            }
            goto done;
        }
    } else if (renameat(dirfd, tmp, dirfd, name) != 0) {
        sts_why_set(why, "cannot rename %s: %s", name, strerror(errno));
        goto done;
    }
    if (fsync(dirfd) != 0) {
        sts_why_set(why, "cannot sync the spool directory: %s", strerror(errno));
        goto done;
    }
    st = STS_OK;
done:
    (void)unlinkat(dirfd, tmp, 0); /* gone already after a rename */
    return st;
}

/* ------------------------------------------------------------ sent index */

void sts_rspool_index_free(sts_rspool_index *x)
{
    for (size_t i = 0; i < x->n; i++)
        free(x->e[i].id);
    free(x->e);
    memset(x, 0, sizeof(*x));
}

static sts_status index_add_mem(sts_rspool_index *x, const char *id, size_t n, int64_t t)
{
    sts_rspool_entry *ne = sts_array_reserve(x->e, x->n, &x->cap, 64, sizeof(*ne));

    if (ne == NULL)
        return STS_NOMEM;
    x->e = ne;
    if ((x->e[x->n].id = sts_strndup(id, n)) == NULL)
        return STS_NOMEM;
    x->e[x->n++].t = t;
    return STS_OK;
}

bool sts_rspool_index_has(const sts_rspool_index *x, const char *id)
{
    for (size_t i = 0; i < x->n; i++)
        if (strcmp(x->e[i].id, id) == 0)
            return true;
    return false;
}

/* The bytes of a report id (sts_rsend_id_valid): letters, digits, '_',
 * '+', '-' in its atoms, '.' and '@' between them. */
static bool is_id_char(unsigned char ch)
{
    return sts_is_alnum(ch) || ch == '_' || ch == '+' || ch == '-' || ch == '.' || ch == '@';
}

/* Lines "id SP time LF"; a malformed line (a torn append after a crash)
 * is skipped. */
sts_status sts_rspool_index_load(int dirfd, sts_rspool_index *x, sts_why *why)
{
    char *data = NULL;
    size_t len = 0;
    sts_cur c, line;
    sts_status st;

    memset(x, 0, sizeof(*x));
    st = sts_rspool_read(dirfd, RSPOOL_INDEX, RSPOOL_INDEX_MAX, &data, &len, why);
    if (st == STS_NOTFOUND)
        return STS_OK;
    if (st != STS_OK)
        return st;
    c = sts_cur_make(data, len);
    while (sts_cur_take_until(&c, '\n', &line)) {
        sts_cur id;
        uint64_t t;

        (void)sts_cur_take_char(&c, '\n');
        if (sts_cur_take_while(&line, is_id_char, &id) && sts_cur_take_char(&line, ' ') &&
            sts_cur_take_number(&line, 19, INT64_MAX, &t) && sts_cur_empty(&line) &&
            id.len <= STS_RSEND_ID_MAX) {
            st = index_add_mem(x, id.p, id.len, (int64_t)t);
            if (st != STS_OK) {
                sts_why_set(why, "out of memory");
                break;
            }
        }
    }
    free(data);
    return st;
}

static sts_status index_append(int dirfd, sts_rspool_index *x, const char *id, int64_t t,
                               sts_why *why)
{
    char line[STS_RSEND_ID_MAX + 32];
    int n = snprintf(line, sizeof(line), "%s %lld\n", id, (long long)(t > 0 ? t : 0));
    int fd;
    bool ok;

    fd = openat(dirfd, RSPOOL_INDEX, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
                0600);
    if (fd < 0) {
        sts_why_set(why, "cannot open %s: %s", RSPOOL_INDEX, strerror(errno));
        return STS_TEMPFAIL;
    }
    ok = write_all(fd, line, (size_t)n) && fsync(fd) == 0;
    if (close(fd) != 0)
        ok = false;
    if (!ok) {
        sts_why_set(why, "cannot write %s: %s", RSPOOL_INDEX, strerror(errno));
        return STS_TEMPFAIL;
    }
    return index_add_mem(x, id, strlen(id), t);
}

static int64_t keep_time(const sts_rsend_opts *o)
{
    int64_t k = 2 * (int64_t)o->retry_time_s;

    return k > RSPOOL_KEEP_MIN ? k : RSPOOL_KEEP_MIN;
}

/* Drop entries older than keep_time before now (rewrite only if any). */
void sts_rspool_index_prune(int dirfd, sts_rspool_index *x, const sts_rsend_opts *o, int64_t now)
{
    int64_t keep = keep_time(o);
    sts_buf b;
    size_t kept = 0;
    sts_why why;

    for (size_t i = 0; i < x->n; i++)
        if (x->e[i].t >= now - keep)
            kept++;
    if (kept == x->n)
        return;
    sts_buf_init(&b, RSPOOL_INDEX_MAX);
    for (size_t i = 0; i < x->n; i++) {
        if (x->e[i].t < now - keep)
            continue;
        if (sts_buf_printf(&b, "%s %lld\n", x->e[i].id, (long long)x->e[i].t) != STS_OK) {
            sts_buf_free(&b);
            return; /* keep the old index: pruning can wait */
        }
    }
    if (sts_rspool_write(dirfd, RSPOOL_INDEX, b.data != NULL ? b.data : "", b.len, false, NULL,
                         &why) != STS_OK)
        sts_log(STS_LOG_WARNING, "-", "report-spool", "op=prune error=\"%s\"", why.text);
    sts_buf_free(&b);
}

/* ------------------------------------------------------ leaving the spool */

/* Finished (delivered, given up or not wanted): remembered, then removed. */
void sts_rspool_finish(int dirfd, sts_rspool_index *x, const char *id, const char *fname,
                       int64_t now)
{
    sts_why why;

    if (index_append(dirfd, x, id, now, &why) != STS_OK) {
        sts_log(STS_LOG_ERR, "-", "report-spool", "report_id=%s op=finish error=\"%s\"", id,
                why.text);
        return;
    }
    if (unlinkat(dirfd, fname, 0) != 0 && errno != ENOENT)
        sts_log(STS_LOG_ERR, "-", "report-spool", "report_id=%s op=remove file=%s error=\"%s\"",
                id, fname, strerror(errno));
}

void sts_rspool_set_aside(int dirfd, const char *fname, const char *why)
{
    char moved[STS_RSPOOL_NAME_MAX + 16];

    (void)snprintf(moved, sizeof(moved), "corrupt-%s", fname);
    sts_log(STS_LOG_ERR, "-", "report-corrupt", "file=%s moved_to=%s reason=\"%s\"", fname,
            moved, why);
    if (renameat(dirfd, fname, dirfd, moved) != 0)
        sts_log(STS_LOG_ERR, "-", "report-spool", "op=move file=%s error=\"%s\"", fname,
                strerror(errno));
}
