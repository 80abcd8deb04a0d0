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

char *sts_dlog_format(int64_t when, const char *queue_id, const sts_decision *d)
{
    json_t *o = json_object();
    char ts[32];
    struct tm tm;
    time_t t = (time_t)when;
    const char *rt = sts_report_type_name(d->report_type);
    char *text = NULL;

    if (o == NULL)
        return NULL;
    if (gmtime_r(&t, &tm) == NULL || strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        (void)snprintf(ts, sizeof(ts), "%lld", (long long)when);
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

sts_status sts_dlog_write(sts_dlog *l, int64_t when, const char *queue_id, const sts_decision *d,
                          sts_why *why)
{
    return sts_dlog_write_line(l, sts_dlog_format(when, queue_id, d), why);
}

sts_status sts_dlog_write_line(sts_dlog *l, char *line, sts_why *why)
{
    size_t len;
    ssize_t w;
    sts_status st = STS_OK;

    if (line == NULL) {
        sts_why_set(why, "out of memory formatting a decision log line");
        return STS_NOMEM;
    }
    len = strlen(line);
    line[len] = '\n'; /* json_dumps left room: its terminator */
    pthread_mutex_lock(&l->mu);
    w = write(l->fd, line, len + 1);
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
