/*
 * rsend_driver.c - drives the report delivery API (src/rsend.h) for
 * tests/integration/test_rsend.py, with the clock as an argument so that
 * backoff and ReportRetryTime can be tested without waiting.
 *
 *   rsend_driver [OPTIONS] enqueue DOMAIN REPORT-ID BEGIN END JSON-FILE
 *   rsend_driver [OPTIONS] run NOW [CA-FILE NOW]...
 *   rsend_driver [OPTIONS] mail TO DOMAIN REPORT-ID BEGIN END JSON-FILE
 *
 * OPTIONS: --spool DIR --sendmail CMD --from ADDR --submitter DOMAIN
 *          --dns SERVERS --ca-file FILE --retry-time S --https-timeout MS
 *          --dns-timeout MS --dns-tries N --sendmail-timeout MS
 *          --allow-internal yes|no (AllowInternalAddresses, default no)
 * enqueue and run print the counters as one JSON object; mail prints the
 * report message (sts_rmail_build) for MIME checks.  run with more
 * arguments runs the spool again in the same process for each pair, with
 * --ca-file replaced by CA-FILE, one JSON line per run: what a process
 * keeps between uploads (the parsed trust store) is seen by later runs.
 * Exit 0, 1 when the API returned an error (printed), 64 for usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/log.h"
#include "tlsrpt/rmail.h"
#include "tlsrpt/rsend.h"

static int usage(void)
{
    fprintf(stderr, "usage: rsend_driver [OPTIONS] enqueue|run|mail ARGS...\n");
    return 64;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    sts_buf b;
    char tmp[4096];
    size_t n;

    if (f == NULL)
        return NULL;
    sts_buf_init(&b, 64u * 1024 * 1024);
    while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
        if (sts_buf_append(&b, tmp, n) != STS_OK)
            break;
    fclose(f);
    return sts_buf_steal(&b);
}

static long long num(const char *s)
{
    char *end = NULL;
    long long v = strtoll(s, &end, 10);

    if (end == s || *end != '\0') {
        fprintf(stderr, "rsend_driver: not a number: %s\n", s);
        exit(64);
    }
    return v;
}

static void print_stats(const sts_rsend_stats *s)
{
    printf("{\"queued\": %u, \"duplicates\": %u, \"delivered\": %u, \"deferred\": %u, "
           "\"given_up\": %u, \"no_rua\": %u}\n",
           s->queued, s->duplicates, s->delivered, s->deferred, s->given_up, s->no_rua);
}

int main(int argc, char **argv)
{
    sts_rsend_opts o;
    sts_rsend_stats stats;
    sts_why why;
    int i = 1;

    memset(&o, 0, sizeof(o));
    memset(&stats, 0, sizeof(stats));
    memset(&why, 0, sizeof(why));
    o.retry_time_s = 86400;
    if (sts_log_open("rsend_driver", NULL, true) != STS_OK)
        return 1;
    sts_log_set_level(STS_LOG_DEBUG);
    for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        const char *k = argv[i] + 2, *v = argv[i + 1];

        if (strcmp(k, "spool") == 0)
            o.spool_dir = v;
        else if (strcmp(k, "sendmail") == 0)
            o.sendmail_cmd = v;
        else if (strcmp(k, "from") == 0)
            o.from = v;
        else if (strcmp(k, "submitter") == 0)
            o.submitter = v;
        else if (strcmp(k, "dns") == 0)
            o.dns_servers = v;
        else if (strcmp(k, "ca-file") == 0)
            o.ca_file = v;
        else if (strcmp(k, "retry-time") == 0)
            o.retry_time_s = (unsigned)num(v);
        else if (strcmp(k, "https-timeout") == 0)
            o.https_timeout_ms = (unsigned)num(v);
        else if (strcmp(k, "dns-timeout") == 0)
            o.dns_timeout_ms = (unsigned)num(v);
        else if (strcmp(k, "dns-tries") == 0)
            o.dns_tries = (unsigned)num(v);
        else if (strcmp(k, "sendmail-timeout") == 0)
            o.sendmail_timeout_ms = (unsigned)num(v);
        else if (strcmp(k, "allow-internal") == 0 && (strcmp(v, "yes") == 0 || strcmp(v, "no") == 0))
            o.allow_internal = strcmp(v, "yes") == 0;
        else
            return usage();
    }
    if (i >= argc)
        return usage();
    if (strcmp(argv[i], "enqueue") == 0 && argc - i == 6) {
        sts_rsend_report r;
        char *json = slurp(argv[i + 5]);
        sts_status st;

        memset(&r, 0, sizeof(r));
        r.policy_domain = argv[i + 1];
        r.report_id = argv[i + 2];
        r.begin = num(argv[i + 3]);
        r.end = num(argv[i + 4]);
        r.json = json;
        st = sts_rsend_enqueue(&o, &r, &stats, &why);
        free(json);
        print_stats(&stats);
        if (st != STS_OK) {
            fprintf(stderr, "rsend_driver: enqueue: %s: %s\n", sts_status_name(st), why.text);
            return 1;
        }
        return 0;
    }
    if (strcmp(argv[i], "run") == 0 && argc - i >= 2 && (argc - i) % 2 == 0) {
        for (int j = i + 1; j < argc; j += 2) {
            sts_status st;

            if (j > i + 1)
                o.ca_file = argv[j - 1];
            memset(&stats, 0, sizeof(stats));
            st = sts_rsend_run(&o, num(argv[j]), &stats, &why);
            print_stats(&stats);
            fflush(stdout);
            if (st != STS_OK) {
                fprintf(stderr, "rsend_driver: run: %s: %s\n", sts_status_name(st), why.text);
                return 1;
            }
        }
        return 0;
    }
    if (strcmp(argv[i], "mail") == 0 && argc - i == 7) {
        sts_rsend_report r;
        sts_rmail m;
        char fname[1024], msgid[300];
        char *json = slurp(argv[i + 6]);
        unsigned char *gz = NULL;
        size_t gzlen = 0;
        sts_buf out;
        int rc = 1;

        memset(&r, 0, sizeof(r));
        r.policy_domain = argv[i + 2];
        r.report_id = argv[i + 3];
        r.begin = num(argv[i + 4]);
        r.end = num(argv[i + 5]);
        r.json = json;
        memset(&m, 0, sizeof(m));
        m.from = o.from;
        m.to = argv[i + 1];
        m.policy_domain = r.policy_domain;
        m.submitter = o.submitter;
        m.report_id = r.report_id;
        (void)snprintf(msgid, sizeof(msgid), "driver.1@%s", o.submitter != NULL ? o.submitter : "-");
        m.message_id = msgid;
        m.begin = r.begin;
        m.end = r.end;
        m.date = r.end + 3600;
        m.filename = fname;
        sts_buf_init(&out, STS_RMAIL_MAX);
        if (json != NULL && sts_rsend_filename(&o, &r, fname, sizeof(fname)) == STS_OK &&
            sts_rsend_gzip(json, strlen(json), &gz, &gzlen, &why) == STS_OK) {
            m.gz = gz;
            m.gz_len = gzlen;
            if (sts_rmail_build(&m, &out, &why) == STS_OK) {
                fwrite(out.data, 1, out.len, stdout);
                rc = 0;
            }
        }
        if (rc != 0)
            fprintf(stderr, "rsend_driver: mail: %s\n", why.text);
        sts_buf_free(&out);
        free(gz);
        free(json);
        return rc;
    }
    return usage();
}
