/*
 * log.c - the one logging API (see log.h, CONVENTIONS.md "Logs").
 *
 * A line is "<id> <event> <message>".  Each call formats the whole line
 * into a local buffer with one vsnprintf and hands it over in one write(2)
 * or one syslog(3) call, so lines from concurrent threads never interleave
 * and no lock is needed.  Control bytes that reach the formatted line are
 * replaced (defence in depth: peer text must already have gone through
 * sts_log_escape), so nobody can forge a second log line.
 *
 * sts_log_open is called at start-up (and on reload) before worker
 * threads log; the level is read and written atomically.
 */
#include "base/log.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/buf.h"

#define LOG_LINE_MAX 4096 /* longer lines are cut and end in "..." */

static const struct {
    const char *name;
    int code;
} facilities[] = {
    { "mail", LOG_MAIL },     { "daemon", LOG_DAEMON }, { "user", LOG_USER },
    { "local0", LOG_LOCAL0 }, { "local1", LOG_LOCAL1 }, { "local2", LOG_LOCAL2 },
    { "local3", LOG_LOCAL3 }, { "local4", LOG_LOCAL4 }, { "local5", LOG_LOCAL5 },
    { "local6", LOG_LOCAL6 }, { "local7", LOG_LOCAL7 },
};

/* Indexed by sts_log_level. */
static const struct {
    const char *name;
    int prio;
} levels[] = {
    [STS_LOG_ERR] = { "error", LOG_ERR },       [STS_LOG_WARNING] = { "warning", LOG_WARNING },
    [STS_LOG_NOTICE] = { "notice", LOG_NOTICE }, [STS_LOG_INFO] = { "info", LOG_INFO },
    [STS_LOG_DEBUG] = { "debug", LOG_DEBUG },
};

static char log_ident[64] = "mtasts"; /* openlog keeps the pointer */
static bool log_to_syslog;
static bool log_to_stderr = true;
static int log_level = STS_LOG_INFO;
static sts_log_style stderr_style = STS_LOG_STYLE_PLAIN;
static int stderr_max = STS_LOG_DEBUG; /* stderr gets lines up to this level */

static int facility_code(const char *name)
{
    if (name == NULL)
        return -1;
    for (size_t i = 0; i < sizeof(facilities) / sizeof(facilities[0]); i++)
        if (sts_str_eq_nocase(name, facilities[i].name))
            return facilities[i].code;
    return -1;
}

bool sts_log_facility_valid(const char *facility)
{
    return facility_code(facility) >= 0;
}

bool sts_log_level_parse(const char *name, size_t len, sts_log_level *out)
{
    sts_cur v = sts_cur_make(name, len);

    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
        if (sts_cur_eq_nocase(&v, levels[i].name)) {
            *out = (sts_log_level)i;
            return true;
        }
    return false;
}

const char *sts_log_level_name(sts_log_level lvl)
{
    return (size_t)lvl < sizeof(levels) / sizeof(levels[0]) ? levels[lvl].name
                                                             : levels[STS_LOG_ERR].name;
}

sts_status sts_log_open(const char *ident, const char *facility, bool to_stderr)
{
    int code = -1;
    size_t n;

    if (facility != NULL) {
        code = facility_code(facility);
        if (code < 0)
            return STS_PERMFAIL;
    }
    if (log_to_syslog) {
        closelog();
        log_to_syslog = false;
    }
    if (ident != NULL) {
        n = strlen(ident);
        if (n >= sizeof(log_ident))
            n = sizeof(log_ident) - 1;
        memcpy(log_ident, ident, n);
        log_ident[n] = '\0';
    }
    log_to_stderr = to_stderr;
    if (code >= 0) {
        openlog(log_ident, LOG_PID | LOG_NDELAY, code);
        log_to_syslog = true;
    }
    return STS_OK;
}

void sts_log_stderr(bool on, sts_log_style style, sts_log_level max)
{
    log_to_stderr = on;
    stderr_style = style;
    __atomic_store_n(&stderr_max, (int)max, __ATOMIC_RELAXED);
}

bool sts_log_journal_stream(int fd)
{
    const char *env = getenv("JOURNAL_STREAM");
    sts_cur v, dev;
    uint64_t d, ino;
    struct stat sb;

    if (env == NULL || fstat(fd, &sb) != 0)
        return false;
    v = sts_cur_str(env);
    if (!sts_cur_take_until(&v, ':', &dev) || !sts_cur_take_number(&dev, 20, UINT64_MAX, &d) ||
        !sts_cur_empty(&dev))
        return false;
    (void)sts_cur_take_char(&v, ':');
    if (!sts_cur_take_number(&v, 20, UINT64_MAX, &ino) || !sts_cur_empty(&v))
        return false;
    return (uint64_t)sb.st_dev == d && (uint64_t)sb.st_ino == ino;
}

void sts_log_set_level(sts_log_level lvl)
{
    __atomic_store_n(&log_level, (int)lvl, __ATOMIC_RELAXED);
}

sts_log_level sts_log_get_level(void)
{
    return (sts_log_level)__atomic_load_n(&log_level, __ATOMIC_RELAXED);
}

static size_t vformat(char *line, size_t size, sts_log_style style, const char *ident,
                      sts_log_level lvl, const char *id, const char *event, size_t *body,
                      const char *fmt, va_list ap) STS_PRINTF(9, 0);

static size_t vformat(char *line, size_t size, sts_log_style style, const char *ident,
                      sts_log_level lvl, const char *id, const char *event, size_t *body,
                      const char *fmt, va_list ap)
{
    size_t lvli = (size_t)lvl < sizeof(levels) / sizeof(levels[0]) ? (size_t)lvl : STS_LOG_ERR;
    size_t len, max = size - 1; /* room for the NUL */
    int n;

    *body = 0;
    if (size < 8) {
        if (size > 0)
            line[0] = '\0';
        return 0;
    }
    /* The prefix is for stderr only; syslog gets line + body. */
    if (style == STS_LOG_STYLE_JOURNAL)
        n = snprintf(line, size, "<%d>", levels[lvli].prio);
    else
        n = snprintf(line, size, "%s: %s: ", ident != NULL ? ident : log_ident,
                     levels[lvli].name);
    *body = n > 0 && (size_t)n < max ? (size_t)n : 0;
    n = snprintf(line + *body, size - *body, "%s %s ", id != NULL && *id != '\0' ? id : "-",
                 event != NULL && *event != '\0' ? event : "-");
    len = *body + (n > 0 ? (size_t)n : 0);
    if (len < max) {
        n = vsnprintf(line + len, size - len, fmt, ap);
        len += n > 0 ? (size_t)n : 0;
    }
    if (len >= max) {
        len = max;
        memcpy(line + len - 3, "...", 3);
    }
    line[len] = '\0';
    for (size_t i = *body; i < len; i++) {
        unsigned char c = (unsigned char)line[i];

        if (c < 0x20 || c == 0x7f)
            line[i] = '?';
    }
    while (len > *body && line[len - 1] == ' ')
        line[--len] = '\0'; /* an empty message leaves "id event " */
    return len;
}

size_t sts_log_format(char *line, size_t size, sts_log_style style, const char *ident,
                      sts_log_level lvl, const char *id, const char *event, size_t *body,
                      const char *fmt, ...)
{
    va_list ap;
    size_t len;

    va_start(ap, fmt);
    len = vformat(line, size, style, ident, lvl, id, event, body, fmt, ap);
    va_end(ap);
    return len;
}

void sts_log(sts_log_level lvl, const char *id, const char *event, const char *fmt, ...)
{
    char line[LOG_LINE_MAX + 2]; /* + "\n" + NUL */
    size_t lvli = (size_t)lvl < sizeof(levels) / sizeof(levels[0]) ? (size_t)lvl : STS_LOG_ERR;
    size_t body, len;
    va_list ap;

    if ((int)lvl > __atomic_load_n(&log_level, __ATOMIC_RELAXED))
        return;
    va_start(ap, fmt);
    len = vformat(line, LOG_LINE_MAX + 1, stderr_style, NULL, lvl, id, event, &body, fmt, ap);
    va_end(ap);

    if (log_to_syslog)
        syslog(levels[lvli].prio, "%s", line + body);
    if (log_to_stderr && (int)lvl <= __atomic_load_n(&stderr_max, __ATOMIC_RELAXED)) {
        ssize_t w;

        line[len] = '\n';
        w = write(STDERR_FILENO, line, len + 1);
        (void)w; /* nowhere left to report a failing stderr */
    }
}

char *sts_log_escape(char *dst, size_t dstsz, const char *src, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;

    if (dstsz == 0)
        return dst;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)src[i];

        if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"' && c != '=') {
            if (o + 1 >= dstsz)
                break;
            dst[o++] = (char)c;
        } else {
            /* never cut an escape in half */
            if (o + 4 >= dstsz)
                break;
            dst[o++] = '\\';
            dst[o++] = 'x';
            dst[o++] = hex[c >> 4];
            dst[o++] = hex[c & 0xf];
        }
    }
    dst[o] = '\0';
    return dst;
}
