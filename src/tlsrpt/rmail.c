/*
 * rmail.c - TLS report mail (see rmail.h).
 *
 * RFC 8460 section 5.3: a multipart/report; report-type="tlsrpt" message
 * whose first part is human-readable and whose second part is the gzip'd
 * report (application/tlsrpt+gzip, base64) named as in section 5.1, with
 * the TLS-Report-Domain and TLS-Report-Submitter header fields and the
 * Subject of the section's ABNF.  RFC 8689 section 5: "TLS-Required: No",
 * so that the very TLS failure being reported (an enforce-mode domain with
 * a broken certificate) does not keep the report from being delivered.
 * The message goes to the local submission command (sendmail -i -t by
 * default), which lets the MTA DKIM-sign it as section 3 requires.
 * sts_rmail_deliver is the mail step of rsend.c's delivery: one report to
 * one mailto: rua.
 */
#include "buildconf.h"
#include "tlsrpt/rmail.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "sts/domain.h"
#include "tlsrpt/rspool.h"
#include "base/clock.h"

#define RMAIL_HDR_MAX 900  /* a header value; RFC 5322 lines stop at 998 */
#define RMAIL_B64_IN 57    /* 57 bytes -> one 76-character base64 line */
#define RMAIL_OUT_KEEP 200 /* output of the command kept for the reason */

/* Printable ASCII without the quote and backslash: safe inside a header
 * line and inside a quoted-string parameter. */
static bool hdr_safe(const char *s)
{
    size_t n = 0;

    if (s == NULL || s[0] == '\0')
        return false;
    for (; s[n] != '\0'; n++) {
        unsigned char ch = (unsigned char)s[n];

        if (ch < 0x20 || ch > 0x7e || ch == '"' || ch == '\\')
            return false;
    }
    return n <= RMAIL_HDR_MAX;
}

static void fmt_rfc5322_date(int64_t t, char *out, size_t outsz)
{
    static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
    static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    time_t tt = (time_t)t;
    struct tm tm;

    if (gmtime_r(&tt, &tm) == NULL) {
        (void)snprintf(out, outsz, "Thu, 01 Jan 1970 00:00:00 +0000");
        return;
    }
    (void)snprintf(out, outsz, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday % 7],
                   tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                   tm.tm_sec);
}

static void fmt_iso(int64_t t, char *out, size_t outsz)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (gmtime_r(&tt, &tm) == NULL) {
        (void)snprintf(out, outsz, "?");
        return;
    }
    (void)snprintf(out, outsz, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
                   tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

#define APPEND(...)                                                                      \
    do {                                                                                 \
        if ((st = sts_buf_printf(__VA_ARGS__)) != STS_OK)                                \
            goto fail;                                                                   \
    } while (0)

sts_status sts_rmail_build(const sts_rmail *m, sts_buf *out, sts_why *why)
{
    char date[80], from_iso[80], to_iso[80], boundary[64], rid[RMAIL_HDR_MAX + 64];
    unsigned char b64[80];
    sts_buf text, subj;
    sts_status st = STS_PERMFAIL;
    const char *bad = NULL;
    unsigned salt = 0;

    sts_buf_init(&text, 4096);
    sts_buf_init(&subj, 4096);
    if (!hdr_safe(m->from))
        bad = "From address";
    else if (!hdr_safe(m->to))
        bad = "To address";
    else if (!hdr_safe(m->policy_domain))
        bad = "policy domain";
    else if (!hdr_safe(m->submitter))
        bad = "submitter";
    else if (!hdr_safe(m->report_id) || strchr(m->report_id, ' ') != NULL)
        bad = "report id";
    else if (!hdr_safe(m->message_id) || strchr(m->message_id, ' ') != NULL)
        bad = "Message-ID";
    else if (!hdr_safe(m->filename))
        bad = "file name";
    if (bad != NULL) {
        sts_why_set(why, "report mail: the %s cannot be put into a header", bad);
        goto done;
    }
    fmt_rfc5322_date(m->date, date, sizeof(date));
    fmt_iso(m->begin, from_iso, sizeof(from_iso));
    fmt_iso(m->end, to_iso, sizeof(to_iso));
    if (strchr(m->report_id, '@') != NULL)
        (void)snprintf(rid, sizeof(rid), "<%s>", m->report_id);
    else
        (void)snprintf(rid, sizeof(rid), "<%s@%s>", m->report_id, m->submitter);

    if ((st = sts_buf_printf(&text,
                             "This is an aggregate TLS report (RFC 8460) from %s\n"
                             "about mail sent to the policy domain %s.\n"
                             "\n"
                             "Report-ID:  %s\n"
                             "Date range: %s to %s\n"
                             "\n"
                             "The report is attached as a gzip-compressed JSON file\n"
                             "(application/tlsrpt+gzip).\n",
                             m->submitter, m->policy_domain, m->report_id, from_iso,
                             to_iso)) != STS_OK)
        goto fail;
    /* The boundary must not occur in any part: "=_" never occurs in
     * base64, so only the text part needs the check. */
    do {
        (void)snprintf(boundary, sizeof(boundary), "=_tlsrpt_%lld_%u", (long long)m->date, salt++);
    } while (strstr(text.data, boundary) != NULL);

    /* RFC 8460 5.3 Subject, folded (FWS) before each label if long. */
    if ((st = sts_buf_printf(&subj, "Subject: Report Domain: %s Submitter: %s Report-ID: %s",
                             m->policy_domain, m->submitter, rid)) != STS_OK)
        goto fail;
    if (subj.len > 78) {
        sts_buf_reset(&subj);
        if ((st = sts_buf_printf(&subj, "Subject: Report Domain: %s\n Submitter: %s\n Report-ID: %s",
                                 m->policy_domain, m->submitter, rid)) != STS_OK)
            goto fail;
    }

    APPEND(out, "From: %s\n", m->from);
    APPEND(out, "To: %s\n", m->to);
    APPEND(out, "%s\n", subj.data);
    APPEND(out, "Date: %s\n", date);
    APPEND(out, "Message-ID: <%s>\n", m->message_id);
    APPEND(out, "MIME-Version: 1.0\n");
    APPEND(out, "TLS-Report-Domain: %s\n", m->policy_domain);
    APPEND(out, "TLS-Report-Submitter: %s\n", m->submitter);
    APPEND(out, "TLS-Required: No\n");
    APPEND(out, "Auto-Submitted: auto-generated\n");
    APPEND(out, "Content-Type: multipart/report; report-type=\"tlsrpt\";\n"
                "\tboundary=\"%s\"\n", boundary);
    APPEND(out, "\n"
                "This is a multipart message in MIME format.\n"
                "\n");
    APPEND(out, "--%s\n"
                "Content-Type: text/plain; charset=\"us-ascii\"\n"
                "Content-Transfer-Encoding: 7bit\n"
                "\n"
                "%s\n", boundary, text.data);
    APPEND(out, "--%s\n"
                "Content-Type: application/tlsrpt+gzip\n"
                "Content-Transfer-Encoding: base64\n"
                "Content-Disposition: attachment;\n"
                "\tfilename=\"%s\"\n"
                "\n", boundary, m->filename);
    for (size_t off = 0; off < m->gz_len; off += RMAIL_B64_IN) {
        size_t n = m->gz_len - off < RMAIL_B64_IN ? m->gz_len - off : RMAIL_B64_IN;
        int w = EVP_EncodeBlock(b64, m->gz + off, (int)n);

        if (w < 0) {
            sts_why_set(why, "report mail: base64 encoding failed");
            st = STS_PERMFAIL;
            goto done;
        }
        if ((st = sts_buf_append(out, b64, (size_t)w)) != STS_OK ||
            (st = sts_buf_append(out, "\n", 1)) != STS_OK)
            goto fail;
    }
    APPEND(out, "\n--%s--\n", boundary);
    st = STS_OK;
    goto done;
fail:
    if (st == STS_NOMEM)
        sts_why_set(why, "out of memory");
    else
        sts_why_set(why, "report mail larger than %zu bytes", out->max);
done:
    sts_buf_free(&text);
    sts_buf_free(&subj);
    return st;
}

/* ------------------------------------------------------------- submission */

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        (void)close(*fd);
        *fd = -1;
    }
}

/* Kill the command's process group and reap it. */
static void kill_and_reap(pid_t pid, int *status)
{
    (void)kill(-pid, SIGTERM);
    for (int i = 0; i < 100; i++) {
        if (waitpid(pid, status, WNOHANG) == pid)
            return;
        (void)poll(NULL, 0, 10);
    }
    (void)kill(-pid, SIGKILL);
    while (waitpid(pid, status, 0) < 0 && errno == EINTR)
        ;
}

sts_status sts_rmail_submit(const char *cmd, const char *msg, size_t len, unsigned timeout_ms,
                            sts_why *why)
{
    int in[2] = { -1, -1 }, out[2] = { -1, -1 };
    struct sigaction ign, old_pipe;
    char kept[RMAIL_OUT_KEEP + 1], q[RMAIL_OUT_KEEP * 4 + 8];
    size_t kept_len = 0, off = 0;
    int status = 0;
    bool exited = false, timed_out = false, short_write = false;
    int64_t deadline = sts_mono_ms() + (timeout_ms != 0 ? timeout_ms : 120000);
    sts_status st = STS_TEMPFAIL;
    pid_t pid;

    if (cmd == NULL || cmd[0] == '\0') {
        sts_why_set(why, "no ReportSendmail command");
        return STS_PERMFAIL;
    }
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) {
        sts_why_set(why, "pipe: %s", strerror(errno));
        close_fd(&in[0]);
        close_fd(&in[1]);
        return STS_TEMPFAIL;
    }
    /* A command that exits without reading everything must not kill us. */
    memset(&ign, 0, sizeof(ign));
    ign.sa_handler = SIG_IGN;
    (void)sigemptyset(&ign.sa_mask);
    (void)sigaction(SIGPIPE, &ign, &old_pipe);

    pid = fork();
    if (pid < 0) {
        sts_why_set(why, "fork: %s", strerror(errno));
        goto done;
    }
    if (pid == 0) {
        /* Child: only async-signal-safe calls until exec. */
        (void)setpgid(0, 0);
        (void)signal(SIGPIPE, SIG_DFL);
        if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0 || dup2(out[1], 2) < 0)
            _exit(127);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    (void)setpgid(pid, pid); /* also here: no race with the kill below */
    close_fd(&in[0]);
    close_fd(&out[1]);
    (void)fcntl(in[1], F_SETFL, O_NONBLOCK);
    (void)fcntl(out[0], F_SETFL, O_NONBLOCK);
    if (len == 0)
        close_fd(&in[1]);

    for (;;) {
        struct pollfd pfd[2];
        nfds_t n = 0;
        int64_t left;

        if (waitpid(pid, &status, WNOHANG) == pid) {
            exited = true;
            break;
        }
        left = deadline - sts_mono_ms();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        if (in[1] >= 0) {
            pfd[n].fd = in[1];
            pfd[n].events = POLLOUT;
            pfd[n++].revents = 0;
        }
        if (out[0] >= 0) {
            pfd[n].fd = out[0];
            pfd[n].events = POLLIN;
            pfd[n++].revents = 0;
        }
        /* Wake up now and then to notice the exit even if a grandchild
         * keeps the output pipe open. */
        (void)poll(pfd, n, left < 50 ? (int)left : 50);
        for (nfds_t i = 0; i < n; i++) {
            if (pfd[i].fd == in[1] && (pfd[i].revents & (POLLOUT | POLLERR | POLLHUP))) {
                size_t chunk = len - off < 65536 ? len - off : 65536;
                ssize_t w = write(in[1], msg + off, chunk);

                if (w > 0) {
                    off += (size_t)w;
                    if (off == len)
                        close_fd(&in[1]);
                } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                    short_write = true; /* EPIPE: it stopped reading */
                    close_fd(&in[1]);
                }
            } else if (pfd[i].fd == out[0] && (pfd[i].revents & (POLLIN | POLLERR | POLLHUP))) {
                char tmp[4096];
                ssize_t r = read(out[0], tmp, sizeof(tmp));

                if (r > 0) {
                    size_t keep = (size_t)r < RMAIL_OUT_KEEP - kept_len ? (size_t)r
                                                                        : RMAIL_OUT_KEEP - kept_len;
                    memcpy(kept + kept_len, tmp, keep);
                    kept_len += keep;
                } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                    close_fd(&out[0]);
                }
            }
        }
    }
    if (timed_out)
        kill_and_reap(pid, &status);
    /* What the command said before it exited, for the reason. */
    while (out[0] >= 0 && kept_len < RMAIL_OUT_KEEP) {
        ssize_t r = read(out[0], kept + kept_len, RMAIL_OUT_KEEP - kept_len);

        if (r <= 0)
            break;
        kept_len += (size_t)r;
    }
    kept[kept_len] = '\0';
    {
        char *nl = memchr(kept, '\n', kept_len);

        if (nl != NULL)
            kept_len = (size_t)(nl - kept);
    }
    (void)sts_quote(q, sizeof(q), kept, kept_len);
    if (timed_out) {
        sts_why_set(why, "ReportSendmail did not finish within %u ms",
                    timeout_ms != 0 ? timeout_ms : 120000);
    } else if (exited && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        if (off < len || short_write)
            sts_why_set(why, "ReportSendmail exited before reading the whole message");
        else
            st = STS_OK;
    } else if (exited && WIFEXITED(status)) {
        sts_why_set(why, "ReportSendmail exited with status %d%s%s%s", WEXITSTATUS(status),
                    q[0] != '\0' ? ": '" : "", q, q[0] != '\0' ? "'" : "");
    } else if (exited && WIFSIGNALED(status)) {
        sts_why_set(why, "ReportSendmail killed by signal %d", WTERMSIG(status));
    } else {
        sts_why_set(why, "ReportSendmail ended abnormally");
    }
done:
    close_fd(&in[0]);
    close_fd(&in[1]);
    close_fd(&out[0]);
    close_fd(&out[1]);
    (void)sigaction(SIGPIPE, &old_pipe, NULL);
    return st;
}

/* --------------------------------------------------- one report, one rua */

sts_status sts_rmail_deliver(const sts_rsend_opts *o, int64_t now, const sts_rsend_report *r,
                             const char *submitter, const char *filename, unsigned ruaidx,
                             const char *to, const unsigned char *gz, size_t gzlen, sts_why *why)
{
    char msgid[STS_DOMAIN_MAX + 128], name[STS_RSPOOL_NAME_MAX];
    sts_rmail m;
    sts_buf msg;
    sts_status st;

    if (o->from == NULL || o->from[0] == '\0') {
        sts_why_set(why, "no From address (ReportFrom)");
        return STS_TEMPFAIL;
    }
    if (sts_rspool_name(r->report_id, name) != STS_OK) {
        sts_why_set(why, "out of memory");
        return STS_NOMEM;
    }
    /* Unique per attempt: the receiver dedups by Report-ID, not this. */
    (void)snprintf(msgid, sizeof(msgid), "tlsrpt.%.32s.%lld.%u@%s", name + 2,
                   (long long)now, ruaidx, submitter);
    memset(&m, 0, sizeof(m));
    m.from = o->from;
    m.to = to;
    m.policy_domain = r->policy_domain;
    m.submitter = submitter;
    m.report_id = r->report_id;
    m.message_id = msgid;
    m.begin = r->begin;
    m.end = r->end;
    m.date = now;
    m.filename = filename;
    m.gz = gz;
    m.gz_len = gzlen;
    sts_buf_init(&msg, STS_RMAIL_MAX);
    st = sts_rmail_build(&m, &msg, why);
    if (st == STS_OK)
        st = sts_rmail_submit(o->sendmail_cmd, msg.data, msg.len, o->sendmail_timeout_ms, why);
    else if (st == STS_PERMFAIL)
        st = STS_TEMPFAIL; /* a configuration problem (From); retried after a fix */
    sts_buf_free(&msg);
    return st;
}
