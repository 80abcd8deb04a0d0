/*
 * dlog.c - the decision log writer (see dlog.h).  Each line is formatted
 * completely first and written with one write(2) on an O_APPEND file, so
 * lines from concurrent milter threads never interleave.  The file is
 * opened (and reopened) through sts_safefile_open: the daemon opens it as
 * root at start-up, in a directory the service user may write.
 */
#include "decision/dlog.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "base/safefile.h"

#define DLOG_MODE 0640
#define DLOG_PATH_MAX 4096

struct sts_dlog {
    pthread_mutex_t mu;
    char *path; /* absolute: a reopen after daemon(3)'s chdir finds the same file */
    sts_safefile_owner owner;
    int fd;
    /* FNV-1a of "domain\0id\0text" of the policy records in this file:
     * a direct-mapped table, so a forgotten one is only written again. */
    uint64_t seen[STS_DLOG_POLICIES_SEEN];
};

static sts_status open_log(const sts_dlog *l, int *fd, const char *verb, sts_why *why)
{
    sts_why sub = { "" };
    sts_status st = sts_safefile_open(l->path, STS_SAFEFILE_APPEND, DLOG_MODE, &l->owner, fd,
                                      &sub);

    if (st != STS_OK)
        sts_why_set(why, "cannot %s decision log: %s", verb, sub.text);
    return st;
}

sts_status sts_dlog_open(const char *path, const sts_safefile_owner *owner, sts_dlog **out,
                         sts_why *why)
{
    sts_dlog *l = calloc(1, sizeof(*l));
    char full[DLOG_PATH_MAX];
    sts_status st;

    *out = NULL;
    if (!sts_safefile_abspath(path, full, sizeof(full))) {
        free(l);
        sts_why_set(why, "decision log %s: path too long", path);
        return STS_PERMFAIL;
    }
    if (l == NULL || (l->path = strdup(full)) == NULL) {
        free(l);
        sts_why_set(why, "out of memory");
        return STS_NOMEM;
    }
    l->owner = *owner;
    st = open_log(l, &l->fd, "open", why);
    if (st != STS_OK) {
        free(l->path);
        free(l);
        return st;
    }
    pthread_mutex_init(&l->mu, NULL);
    *out = l;
    return STS_OK;
}

sts_status sts_dlog_reopen(sts_dlog *l, sts_why *why)
{
    int fd;
    sts_status st = open_log(l, &fd, "reopen", why);

    /* Refused or failed: keep writing to the old file rather than losing
     * lines. */
    if (st != STS_OK)
        return st;
    pthread_mutex_lock(&l->mu);
    (void)close(l->fd);
    l->fd = fd;
    memset(l->seen, 0, sizeof(l->seen));
    pthread_mutex_unlock(&l->mu);
    return STS_OK;
}

/* Peer-controlled text must reach the JSON as valid UTF-8: keep printable
 * ASCII, replace the rest. */
static json_t *ascii_string(const char *s)
{
    char buf[1024];
    size_t i;

    for (i = 0; s[i] != '\0' && i + 1 < sizeof(buf); i++)
        buf[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    buf[i] = '\0';
    return json_string(buf);
}

static void format_time(int64_t when, char *ts, size_t sz);

char *sts_dlog_format(int64_t when, const char *queue_id, const sts_decision *d)
{
    json_t *o = json_object();
    char ts[32];
    const char *rt = sts_report_type_name(d->report_type);
    char *text = NULL;

    if (o == NULL)
        return NULL;
    format_time(when, ts, sizeof(ts));
    json_object_set_new(o, "time", json_string(ts));
    json_object_set_new(o, "queue_id", ascii_string(queue_id != NULL ? queue_id : "-"));
    json_object_set_new(o, "domain", ascii_string(d->domain));
    json_object_set_new(o, "result", json_string(d->skipped
                                                     ? "skipped"
                                                     : sts_result_name(d->result)));
    json_object_set_new(o, "mode", d->has_policy ? json_string(sts_mode_name(d->mode)) : json_null());
    json_object_set_new(o, "policy_id", d->id[0] != '\0' ? json_string(d->id) : json_null());
    json_object_set_new(o, "action", json_string(sts_action_name(d->action)));
    json_object_set_new(o, "reason", ascii_string(d->reason));
    if (rt != NULL)
        json_object_set_new(o, "report_type", json_string(rt));
    if (d->refresh_error[0] != '\0')
        json_object_set_new(o, "refresh_error", ascii_string(d->refresh_error));
    if (d->has_policy && d->mx[0] != '\0')
        json_object_set_new(o, "mx", ascii_string(d->mx));
    if (d->has_policy)
        json_object_set_new(o, "max_age", json_integer((json_int_t)d->max_age));
    if (!d->skipped) {
        json_object_set_new(o, "from_cache", json_boolean(d->from_cache));
        if (d->pending)
            json_object_set_new(o, "pending", json_true());
    }
    text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return text;
}

static void format_time(int64_t when, char *ts, size_t sz)
{
    struct tm tm;
    time_t t = (time_t)when;

    if (gmtime_r(&t, &tm) == NULL || strftime(ts, sz, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        (void)snprintf(ts, sz, "%lld", (long long)when);
}

char *sts_dlog_format_policy(int64_t when, const char *domain, const char *id, const char *text,
                             size_t len)
{
    json_t *o = json_object(), *body;
    char ts[32], *line = NULL;

    if (o == NULL)
        return NULL;
    format_time(when, ts, sizeof(ts));
    /* The policy was parsed as text; bytes that are not UTF-8 would make
     * the line unreadable as JSON: such a policy gets no record. */
    body = json_stringn(text, len);
    if (body != NULL) {
        json_object_set_new(o, "time", json_string(ts));
        json_object_set_new(o, "record", json_string("policy"));
        json_object_set_new(o, "domain", ascii_string(domain));
        json_object_set_new(o, "policy_id", ascii_string(id));
        json_object_set_new(o, "policy", body);
        line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    }
    json_decref(o);
    return line;
}

static uint64_t fnv(uint64_t h, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ull;
    }
    return h;
}

static sts_status write_line(sts_dlog *l, char *line, const uint64_t *seen_hash, sts_why *why);

sts_status sts_dlog_note_policy(sts_dlog *l, int64_t when, const char *domain, const char *id,
                                const char *text, size_t len, sts_why *why)
{
    uint64_t h = 1469598103934665603ull;
    char *line;

    if (id == NULL || id[0] == '\0' || text == NULL || len == 0)
        return STS_OK;
    h = fnv(h, domain, strlen(domain) + 1);
    h = fnv(h, id, strlen(id) + 1);
    h = fnv(h, text, len);
    if (h == 0)
        h = 1;
    pthread_mutex_lock(&l->mu);
    if (l->seen[h % STS_DLOG_POLICIES_SEEN] == h) {
        pthread_mutex_unlock(&l->mu);
        return STS_OK;
    }
    pthread_mutex_unlock(&l->mu);
    if ((line = sts_dlog_format_policy(when, domain, id, text, len)) == NULL)
        return STS_OK; /* not UTF-8 (or no memory): the report rebuilds the lines */
    return write_line(l, line, &h, why);
}

sts_status sts_dlog_write(sts_dlog *l, int64_t when, const char *queue_id, const sts_decision *d,
                          sts_why *why)
{
    return sts_dlog_write_line(l, sts_dlog_format(when, queue_id, d), why);
}

sts_status sts_dlog_write_line(sts_dlog *l, char *line, sts_why *why)
{
    if (line == NULL) {
        sts_why_set(why, "out of memory formatting a decision log line");
        return STS_NOMEM;
    }
    return write_line(l, line, NULL, why);
}

/* Append line (json_dumps output, freed here) and a newline in one
 * write(2); seen_hash: remember a policy record as written. */
static sts_status write_line(sts_dlog *l, char *line, const uint64_t *seen_hash, sts_why *why)
{
    size_t len = strlen(line);
    ssize_t w;
    sts_status st = STS_OK;

    line[len] = '\n'; /* json_dumps left room: its terminator */
    pthread_mutex_lock(&l->mu);
    w = write(l->fd, line, len + 1);
    if (seen_hash != NULL && w == (ssize_t)(len + 1))
        l->seen[*seen_hash % STS_DLOG_POLICIES_SEEN] = *seen_hash;
    pthread_mutex_unlock(&l->mu);
    if (w != (ssize_t)(len + 1)) {
        sts_why_set(why, "cannot write the decision log: %s",
                    w < 0 ? strerror(errno) : "short write");
        st = STS_TEMPFAIL;
    }
    free(line);
    return st;
}

void sts_dlog_close(sts_dlog *l)
{
    if (l == NULL)
        return;
    (void)close(l->fd);
    pthread_mutex_destroy(&l->mu);
    free(l->path);
    free(l);
}
