/*
 * rlog_read.c - reading logs for the log reader (rlog.h): plain or gzip'd
 * files and stdin, cut into lines (longer than STS_RLOG_LINE_MAX: fed as
 * too long, so counted malformed), several logs merged line by line by
 * their time stamps so that the streaming join sees one log in time order
 * (the decision log beside the mail log, rotated files, the journal), and
 * the first time stamp of a file for callers that order files themselves,
 * and, for the streaming join, a pass ahead over each file for its MX
 * probe records (rprobe.h).
 */
#include "tlsrpt/rlog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "base/buf.h"
#include "tlsrpt/rlog_impl.h"
#include "tlsrpt/rprobe.h"

typedef struct input {
    const char *name; /* for warnings: the path, "(stdin)" */
    gzFile gz;
    char *chunk;      /* READ_CHUNK bytes read, chunk[off..len) not yet cut */
    size_t off, len;
    char *line;       /* the pending line, ll bytes (STS_RLOG_LINE_MAX + 1 when too long) */
    size_t ll;
    bool have;        /* a pending line */
    bool eof;
    sts_status err;   /* a read error, reported after the lines before it */
    sts_why why;
    uint64_t lineno;
    int64_t t;        /* the pending line's time (the last one seen when it has none) */
    bool untimed;     /* read for the pass ahead: no time stamps wanted */
    bool ahead;       /* its probe records were loaded by the pass ahead */
} input;

/* The time stamp of a line, if it has one where the reader looks for it:
 * a syslog header, a decision log "time", a journal record's
 * __REALTIME_TIMESTAMP. */
static bool line_time(const sts_rlog *r, const char *p, size_t n, int64_t *t)
{
    sts_cur c = sts_cur_make(p, n);
    size_t pos;
    uint64_t usec;

    if (n == 0)
        return false;
    if (p[0] != '{')
        return sts_is_digit((unsigned char)p[0]) ? sts_rlog_take_rfc3339(&c, t)
                                                 : sts_rlog_take_bsd_time(r, &c, t);
    /* The decision log's own shape first: {"time":"...", ...}. */
    if (sts_cur_take_lit(&c, "{\"time\":\""))
        return sts_rlog_take_rfc3339(&c, t);
    if (sts_rlog_cur_find(&c, "\"__REALTIME_TIMESTAMP\":\"", &pos)) {
        c.p += pos + 24;
        c.len -= pos + 24;
        if (!sts_cur_take_number(&c, 20, UINT64_MAX, &usec))
            return false;
        *t = (int64_t)(usec / 1000000);
        return true;
    }
    if (sts_rlog_cur_find(&c, "\"time\":\"", &pos)) {
        c.p += pos + 8;
        c.len -= pos + 8;
        return sts_rlog_take_rfc3339(&c, t);
    }
    return false;
}

/* The next line of in into in->line; false at the end or on an error
 * (*st says which). */
static bool next_line(const sts_rlog *r, input *in, sts_status *st, sts_why *why)
{
    bool too_long = false;
    int errnum;

    in->ll = 0;
    in->have = false;
    if (in->err != STS_OK) {
        *st = in->err;
        sts_why_set(why, "%s", in->why.text);
        return false;
    }
    for (;;) {
        if (in->off == in->len) {
            int n;

            if (in->eof)
                break;
            n = gzread(in->gz, in->chunk, READ_CHUNK);
            if (n <= 0) {
                const char *msg = gzerror(in->gz, &errnum);

                /* The line before the damage is still given out. */
                in->eof = true;
                if (n < 0 || (errnum != Z_OK && errnum != Z_STREAM_END)) {
                    sts_why_set(&in->why, "%s: %s", in->name,
                                errnum == Z_ERRNO ? strerror(errno) : msg);
                    in->err = STS_PERMFAIL;
                }
                break;
            }
            in->off = 0;
            in->len = (size_t)n;
        }
        {
            const char *nl = memchr(in->chunk + in->off, '\n', in->len - in->off);
            size_t take = (nl != NULL ? (size_t)(nl - in->chunk) : in->len) - in->off;

            if (!too_long && in->ll + take <= STS_RLOG_LINE_MAX) {
                memcpy(in->line + in->ll, in->chunk + in->off, take);
                in->ll += take;
            } else {
                too_long = true;
            }
            in->off += take;
            if (nl != NULL) {
                in->off++;
                in->have = true;
                break;
            }
        }
    }
    if (!in->have && (in->ll > 0 || too_long))
        in->have = true; /* the last line, without its newline */
    if (!in->have) {
        if (in->err != STS_OK) {
            *st = in->err;
            sts_why_set(why, "%s", in->why.text);
        }
        return false;
    }
    in->lineno++;
    /* A too-long line is fed as its first part plus one byte too many, so
     * sts_rlog_feed_line counts it malformed. */
    if (too_long)
        in->ll = STS_RLOG_LINE_MAX + 1;
    else if (!in->untimed)
        (void)line_time(r, in->line, in->ll, &in->t);
    return true;
}

static void input_close(input *in)
{
    if (in->gz != NULL)
        (void)gzclose(in->gz);
    free(in->chunk);
    free(in->line);
}

static sts_status input_open(input *in, const char *path, sts_why *why)
{
    int fd = -1;

    memset(in, 0, sizeof(*in));
    in->name = strcmp(path, "-") == 0 ? "(stdin)" : path;
    in->t = INT64_MIN;
    errno = 0;
    if (strcmp(path, "-") == 0) {
        fd = dup(0);
        in->gz = fd >= 0 ? gzdopen(fd, "rb") : NULL;
    } else {
        in->gz = gzopen(path, "rb");
    }
    if (in->gz == NULL) {
        sts_why_set(why, "cannot open %s: %s", in->name,
                    errno != 0 ? strerror(errno) : "out of memory");
        if (fd >= 0)
            (void)close(fd);
        return STS_PERMFAIL;
    }
    (void)gzbuffer(in->gz, 128 * 1024);
    in->chunk = malloc(READ_CHUNK);
    in->line = malloc(STS_RLOG_LINE_MAX + 1);
    if (in->chunk == NULL || in->line == NULL) {
        sts_why_set(why, "out of memory reading %s", in->name);
        return STS_NOMEM;
    }
    return STS_OK;
}

/* The pass ahead of the streaming join (rprobe.h): the probe records of
 * the regular file path, which the join may need before it reads them.
 * False when path is not a regular file that can be read (standard
 * input, a pipe: read once, by the join); a read error is left for the
 * join to report. */
static bool read_ahead(sts_rlog *r, const char *path)
{
    struct stat sb;
    sts_status st = STS_OK;
    sts_why why = { "" };
    input in;
    int fd;

    /* O_NONBLOCK: a FIFO without a writer must not hang here. */
    if (strcmp(path, "-") == 0 || (fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) < 0)
        return false;
    memset(&in, 0, sizeof(in));
    in.name = path;
    in.untimed = true;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || (in.gz = gzdopen(fd, "rb")) == NULL) {
        (void)close(fd);
        return false;
    }
    (void)gzbuffer(in.gz, 128 * 1024);
    in.chunk = malloc(READ_CHUNK);
    in.line = malloc(STS_RLOG_LINE_MAX + 1);
    if (in.chunk == NULL || in.line == NULL) {
        input_close(&in);
        return false;
    }
    while (next_line(r, &in, &st, &why) && !r->nomem)
        if (in.ll <= STS_RLOG_LINE_MAX) /* a longer one is malformed, and not all here */
            sts_rlog_probe_ahead_line(r, sts_cur_make(in.line, in.ll));
    input_close(&in);
    return true;
}

sts_status sts_rlog_read_files(sts_rlog *r, const char *const *paths, size_t n, sts_why *why)
{
    input *in = sts_calloc_array(n > 0 ? n : 1, sizeof(*in));
    sts_status st = STS_OK;
    size_t opened = 0;

    if (in == NULL) {
        sts_why_set(why, "out of memory");
        return STS_NOMEM;
    }
    for (; opened < n; opened++)
        if ((st = input_open(&in[opened], paths[opened], why)) != STS_OK) {
            opened++;
            goto done;
        }
    /* Streaming: a session is given out minutes after its attempt, but
     * the probe that judges it may be logged hours later; the probe
     * records (few) are loaded first. */
    for (size_t i = 0; i < n && r->sink != NULL; i++)
        in[i].ahead = read_ahead(r, paths[i]);
    for (size_t i = 0; i < n && st == STS_OK; i++)
        (void)next_line(r, &in[i], &st, why);
    while (st == STS_OK) {
        input *best = NULL;

        /* The pending line with the earliest time; a line without one
         * (t still INT64_MIN) goes first, it cannot wait for anything. */
        for (size_t i = 0; i < n; i++)
            if (in[i].have && (best == NULL || in[i].t < best->t))
                best = &in[i];
        if (best == NULL)
            break;
        r->probes_ahead = best->ahead;
        (void)sts_rlog_feed_line(r, best->line, best->ll, best->name, best->lineno);
        r->probes_ahead = false;
        (void)next_line(r, best, &st, why);
    }
done:
    for (size_t i = 0; i < opened; i++)
        input_close(&in[i]);
    free(in);
    if (st == STS_OK && r->nomem) {
        sts_why_set(why, "out of memory reading the logs");
        st = STS_NOMEM;
    }
    return st;
}

sts_status sts_rlog_read_file(sts_rlog *r, const char *path, sts_why *why)
{
    return sts_rlog_read_files(r, &path, 1, why);
}

#define PEEK_BYTES 65536

bool sts_rlog_first_time(const sts_rlog *r, const char *path, int64_t *t)
{
    char *buf = NULL;
    struct stat sb;
    gzFile gz = NULL;
    bool found = false;
    int fd, n;

    /* Only regular files: a pipe or FIFO read here would lose its data. */
    if (strcmp(path, "-") == 0 || (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return false;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || (gz = gzdopen(fd, "rb")) == NULL) {
        (void)close(fd);
        return false;
    }
    buf = malloc(PEEK_BYTES);
    n = buf != NULL ? gzread(gz, buf, PEEK_BYTES) : -1;
    for (size_t off = 0; n > 0 && off < (size_t)n && !found;) {
        const char *nl = memchr(buf + off, '\n', (size_t)n - off);
        sts_cur c;

        if (nl == NULL)
            break; /* a cut line proves nothing */
        c = sts_cur_make(buf + off, (size_t)(nl - (buf + off)));
        off += c.len + 1;
        if (c.len > 0 && c.p[0] != '{')
            found = sts_is_digit((unsigned char)c.p[0]) ? sts_rlog_take_rfc3339(&c, t)
                                                        : sts_rlog_take_bsd_time(r, &c, t);
    }
    free(buf);
    (void)gzclose(gz);
    return found;
}
