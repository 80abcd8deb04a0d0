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
#include <stdio.h>
#include <string.h>
#include <syslog.h>
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

void sts_log_set_level(sts_log_level lvl)
{
    __atomic_store_n(&log_level, (int)lvl, __ATOMIC_RELAXED);
}

void sts_log(sts_log_level lvl, const char *id, const char *event, const char *fmt, ...)
{
    char line[LOG_LINE_MAX + 2]; /* + "\n" + NUL */
    size_t lvli = (size_t)lvl < sizeof(levels) / sizeof(levels[0]) ? (size_t)lvl : STS_LOG_ERR;
    size_t body, len;
    va_list ap;
    int n;

    if ((int)lvl > __atomic_load_n(&log_level, __ATOMIC_RELAXED))
        return;

    /* "ident: level: " is for stderr only; syslog gets line + body. */
    n = snprintf(line, LOG_LINE_MAX, "%s: %s: ", log_ident, levels[lvli].name);
    body = n > 0 ? (size_t)n : 0;
    n = snprintf(line + body, LOG_LINE_MAX - body, "%s %s ", id != NULL && *id != '\0' ? id : "-",
                 event != NULL && *event != '\0' ? event : "-");
    len = body + (n > 0 ? (size_t)n : 0);
    if (len < LOG_LINE_MAX) {
        va_start(ap, fmt);
        n = vsnprintf(line + len, LOG_LINE_MAX - len, fmt, ap);
        va_end(ap);
        len += n > 0 ? (size_t)n : 0;
    }
    if (len >= LOG_LINE_MAX) {
        len = LOG_LINE_MAX - 1;
        memcpy(line + len - 3, "...", 3);
    }
    line[len] = '\0';
    for (size_t i = body; i < len; i++) {
        unsigned char c = (unsigned char)line[i];

        if (c < 0x20 || c == 0x7f)
            line[i] = '?';
    }
    while (len > body && line[len - 1] == ' ')
        line[--len] = '\0'; /* an empty message leaves "id event " */

    if (log_to_syslog)
        syslog(levels[lvli].prio, "%s", line + body);
    if (log_to_stderr) {
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
