/*
 * fuzz_rlog.c - libFuzzer target for the log reader of mtasts-report
 * (src/tlsrpt/rlog*.c): the input is split at '\n' into log lines (decision log
 * JSON, Postfix and Sendmail syslog lines, anything) and fed to one
 * reader; then the sessions are built.  Checked, aborting on violation:
 * every line is counted once, every session is well formed (NUL-terminated
 * printable fields, a normalised domain, a valid IP or none, a known
 * result type exactly when it failed, TLS state consistent with success
 * and engine failures), sessions are sorted by time, and asking twice
 * gives the same answer.  Then the same lines through the streaming join
 * with the pass ahead for MX probe records and the report accumulator.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sts/domain.h"
#include "tlsrpt/report.h"
#include "tlsrpt/rlog.h"
#include "tlsrpt/rprobe.h"

#define FUZZ_MAX_LINES 4096
#define FUZZ_NOW 1795874400 /* 2026-11-28T14:00:00Z */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_text(const char *s, size_t sz, bool may_be_empty)
{
    size_t n = strnlen(s, sz);

    if (n == sz || (!may_be_empty && n == 0))
        abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            abort();
}

static bool known_type(const char *t)
{
    static const char *const types[] = {
        "starttls-not-supported", "certificate-host-mismatch", "certificate-expired",
        "certificate-not-trusted", "validation-failure", "sts-policy-fetch-error",
        "sts-policy-invalid", "sts-webpki-invalid",
    };

    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(t, types[i]) == 0)
            return true;
    return false;
}

static void check_session(const sts_rsession *s)
{
    char norm[STS_DOMAIN_MAX + 1];
    unsigned char bin[16];

    check_text(s->queue_id, sizeof(s->queue_id), false);
    check_text(s->domain, sizeof(s->domain), false);
    check_text(s->policy_id, sizeof(s->policy_id), true);
    check_text(s->mx, sizeof(s->mx), true);
    check_text(s->mx_host, sizeof(s->mx_host), true);
    check_text(s->mx_ip, sizeof(s->mx_ip), true);
    check_text(s->detail, sizeof(s->detail), true);
    /* The domain is already in normal form. */
    if (sts_domain_normalize(s->domain, strlen(s->domain), norm, NULL) != STS_OK ||
        strcmp(norm, s->domain) != 0)
        abort();
    if (s->mx_ip[0] != '\0' && inet_pton(AF_INET, s->mx_ip, bin) != 1 &&
        inet_pton(AF_INET6, s->mx_ip, bin) != 1)
        abort();
    if (s->success != (s->result_type == NULL))
        abort();
    if (s->result_type != NULL && !known_type(s->result_type))
        abort();
    if (s->success && s->tls != STS_RLOG_TLS_VERIFIED && s->tls != STS_RLOG_TLS_TRUSTED)
        abort();
    if (s->engine_failure != (s->tls == STS_RLOG_TLS_NONE))
        abort();
    if (s->engine_failure && (!s->has_decision || s->success || s->mx_host[0] != '\0'))
        abort();
    if (s->has_policy && !s->has_decision)
        abort();
}

typedef struct sinkstate {
    size_t n;
    sts_report_acc *acc;
} sinkstate;

static void check_session(const sts_rsession *s);

/* Streaming: every session is as well-formed as in array mode, and goes
 * into the report accumulator. */
static void sink(void *arg, const sts_rsession *s)
{
    sinkstate *ss = arg;

    check_session(s);
    ss->n++;
    if (ss->acc != NULL)
        sts_report_acc_add(ss->acc, s);
}

/* The same lines through the streaming join (window, merge order as fed)
 * and the accumulator; the counts must add up as in array mode. */
static void streaming(const char *in, size_t size)
{
    static const sts_report_opts o = {
        .organization = "Fuzz Org", .contact = "tlsrpt@fuzz.example",
        .submitter = "fuzz.example", .host_id = "fuzz", .sending_ips = "192.0.2.1",
        .no_policy_reports = true,
    };
    sinkstate ss = { 0, NULL };
    const sts_rlog_stats *st;
    sts_report_set *set = NULL;
    sts_why why;
    size_t pos = 0, nlines = 0;
    sts_rlog *r;

    if (sts_rlog_new(NULL, NULL, &r) != STS_OK)
        return;
    if (sts_report_acc_new(&o, FUZZ_NOW - FUZZ_NOW % 86400, &ss.acc, &why) != STS_OK)
        abort();
    sts_rlog_set_now(r, FUZZ_NOW);
    sts_rlog_set_own_reports(r, "fuzz.example");
    sts_rlog_set_sink(r, sink, &ss);
    /* The pass ahead for probe records (rprobe.h), as sts_rlog_read_files
     * makes it over a file; the join then reads them again (kept twice
     * here, which only repeats a verdict). */
    while (pos < size && nlines < FUZZ_MAX_LINES) {
        const char *nl = memchr(in + pos, '\n', size - pos);
        size_t end = nl != NULL ? (size_t)(nl - in) : size;

        if (end - pos <= STS_RLOG_LINE_MAX)
            sts_rlog_probe_ahead_line(r, sts_cur_make(in + pos, end - pos));
        nlines++;
        pos = end + 1;
    }
    if (sts_rlog_get_stats(r)->lines != 0)
        abort(); /* the pass ahead counts no lines */
    pos = 0;
    nlines = 0;
    while (pos < size && nlines < FUZZ_MAX_LINES) {
        const char *nl = memchr(in + pos, '\n', size - pos);
        size_t end = nl != NULL ? (size_t)(nl - in) : size;

        (void)sts_rlog_feed_line(r, in + pos, end - pos, "fuzz", ++nlines);
        pos = end + 1;
    }
    if (sts_rlog_finish(r) == STS_OK) {
        sts_rprobe_stats ps = sts_rlog_probe_stats(r);

        if (ps.no_verdict + ps.far + ps.dropped > ps.records)
            abort();
        st = sts_rlog_get_stats(r);
        if (st->joined + st->unjoined_attempts + st->engine_failures != ss.n)
            abort();
        if (sts_report_acc_finish(ss.acc, &set, &why) == STS_OK) {
            for (size_t i = 0; i < set->n; i++)
                if (set->r[i].json == NULL || set->r[i].successes + set->r[i].failures == 0)
                    abort();
            sts_report_set_free(set);
        }
    }
    sts_report_acc_free(ss.acc);
    sts_rlog_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    const sts_rsession *s, *s2;
    const sts_rlog_stats *st;
    size_t n, n2, pos = 0, nlines = 0;
    sts_rlog *r;

    if (sts_rlog_new(NULL, NULL, &r) != STS_OK)
        return 0;
    sts_rlog_set_now(r, FUZZ_NOW);
    while (pos < size && nlines < FUZZ_MAX_LINES) {
        const char *nl = memchr(in + pos, '\n', size - pos);
        size_t end = nl != NULL ? (size_t)(nl - in) : size;
        sts_rlog_line_kind k = sts_rlog_feed_line(r, in + pos, end - pos, "fuzz", ++nlines);

        if (k != STS_RLOG_DECISION && k != STS_RLOG_POSTFIX && k != STS_RLOG_SENDMAIL &&
            k != STS_RLOG_IGNORED && k != STS_RLOG_MALFORMED)
            abort();
        pos = end + 1;
    }
    st = sts_rlog_get_stats(r);
    if (st->lines != nlines ||
        st->lines != st->decision_lines + st->mta_lines + st->ignored_lines + st->malformed_lines)
        abort();
    if (sts_rlog_sessions(r, &s, &n) != STS_OK) {
        sts_rlog_free(r);
        return 0; /* out of memory */
    }
    for (size_t i = 0; i < n; i++) {
        check_session(&s[i]);
        if (i > 0 && s[i].time < s[i - 1].time)
            abort();
    }
    if (st->joined + st->unjoined_attempts + st->engine_failures != n)
        abort();
    if (sts_rlog_sessions(r, &s2, &n2) != STS_OK || s2 != s || n2 != n)
        abort();
    sts_rlog_free(r);
    streaming(in, size);
    return 0;
}
