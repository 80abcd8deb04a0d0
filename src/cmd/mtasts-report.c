/*
 * mtasts-report - turn the decision log and the MTA's log into RFC 8460
 * aggregate TLS reports for one UTC day and send them (or, with --dry-run,
 * write them to a directory).  Reading: rlog.h; building: report.h;
 * delivery and the spool: rsend.h.  Manual: mtasts-report(1).
 */
#include "buildconf.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "base/buf.h"
#include "conf/cli.h"
#include "conf/config.h"
#include "sts/domain.h"
#include "base/log.h"
#include "tlsrpt/report.h"
#include "tlsrpt/rlog.h"
#include "tlsrpt/rprobe.h"
#include "tlsrpt/rsend.h"
#include "tlsrpt/srcaddr.h"

#define PROG "mtasts-report"
#define EXIT_NOT_SENT 1 /* some reports could not be queued or sent */
#define EXIT_DROPPED 2  /* log records were dropped at a memory cap: reports miss them */

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: " PROG " [--config FILE] [--date YYYY-MM-DD] [--dry-run DIR] [--summary]\n"
            "                     [--sendmail \"CMD\"] [--dns HOST[:PORT]] [--ca-file FILE] LOG...\n"
            "       " PROG " [--config FILE] [--sendmail \"CMD\"] [--dns HOST[:PORT]]\n"
            "                     [--ca-file FILE] --retry\n"
            "       " PROG " --help | --version\n"
            "Build the RFC 8460 TLS reports of one UTC day (default: yesterday) from\n"
            "decision logs and MTA logs (\"-\" is standard input; gzip'd files are fine)\n"
            "and send them, or write them to DIR.  --retry only retries the spool.\n"
            "Exit status: 0 done, 1 some reports could not be queued or sent,\n"
            "64 usage, 66 a log cannot be read, 73/74 DIR cannot be written,\n"
            "78 configuration error.  See mtasts-report(1).\n");
}

static void on_warn(void *arg, const char *msg)
{
    (void)arg;
    fprintf(stderr, PROG ": warning: %s\n", msg);
}

/* ------------------------------------------------------------ identity */

typedef struct identity {
    char fqdn[256];
    char organization[512];
    char contact[512];
    char from[512];
    char submitter[STS_DOMAIN_MAX + 1];
    char host_id[STS_REPORT_HOSTID_MAX + 1];
} identity;

/* This host's fully qualified name: gethostname, completed through the
 * resolver (AI_CANONNAME) when it has no dot. */
static void host_fqdn(char *out, size_t outsz)
{
    char h[256];
    struct addrinfo hints, *res = NULL;

    if (gethostname(h, sizeof(h)) != 0)
        (void)snprintf(h, sizeof(h), "localhost");
    h[sizeof(h) - 1] = '\0';
    (void)snprintf(out, outsz, "%s", h);
    if (strchr(h, '.') != NULL)
        return;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_flags = AI_CANONNAME;
    if (getaddrinfo(h, NULL, &hints, &res) == 0) {
        if (res != NULL && res->ai_canonname != NULL && strchr(res->ai_canonname, '.') != NULL)
            (void)snprintf(out, outsz, "%s", res->ai_canonname);
        freeaddrinfo(res);
    }
}

static bool looks_like_address(const char *s)
{
    const char *at = strchr(s, '@');

    return at != NULL && at != s && at[1] != '\0' && strpbrk(s, " \t<>,\"") == NULL;
}

/* The domain of a contact-info: the part after the last '@' of an address
 * ("mailto:" and "<>" allowed), or the host of an https: URI; false for
 * other text. */
static bool contact_domain(const char *contact, char out[STS_DOMAIN_MAX + 1])
{
    sts_cur c = sts_cur_str(contact), host;
    const char *at;

    if (sts_cur_take_lit_nocase(&c, "https://")) {
        host = c;
        for (size_t i = 0; i < c.len; i++)
            if (c.p[i] == '/' || c.p[i] == ':' || c.p[i] == '?') {
                host.len = i;
                break;
            }
    } else {
        (void)sts_cur_take_lit_nocase(&c, "mailto:");
        at = NULL;
        for (size_t i = 0; i < c.len; i++)
            if (c.p[i] == '@')
                at = c.p + i;
        if (at == NULL)
            return false;
        host = sts_cur_make(at + 1, c.len - (size_t)(at + 1 - c.p));
        for (size_t i = 0; i < host.len; i++)
            if (host.p[i] == '>' || host.p[i] == '?') {
                host.len = i;
                break;
            }
    }
    return host.len > 0 && sts_domain_normalize(host.p, host.len, out, NULL) == STS_OK;
}

/* The Report* keys, with the host-derived defaults of mtasts-milter.conf(5):
 * TLS-Report-Submitter and contact-info name one domain (RFC 8460 5.3):
 * the submitter defaults to the contact's domain, the contact to
 * postmaster@ the submitter, and both set and different is an error. */
static int make_identity(const sts_config *cfg, identity *id)
{
    char cdom[STS_DOMAIN_MAX + 1];
    bool have_cdom;
    sts_why why;

    memset(id, 0, sizeof(*id));
    host_fqdn(id->fqdn, sizeof(id->fqdn));
    (void)snprintf(id->organization, sizeof(id->organization), "%s",
                   cfg->report_organization != NULL ? cfg->report_organization : id->fqdn);
    if (cfg->report_submitter != NULL) {
        if (sts_domain_normalize(cfg->report_submitter, strlen(cfg->report_submitter),
                                 id->submitter, &why) != STS_OK) {
            fprintf(stderr, PROG ": ReportSubmitter '%s' is not a usable domain: %s\n",
                    cfg->report_submitter, why.text);
            return EX_CONFIG;
        }
    }
    if (cfg->report_contact != NULL)
        (void)snprintf(id->contact, sizeof(id->contact), "%s", cfg->report_contact);
    else
        (void)snprintf(id->contact, sizeof(id->contact), "postmaster@%s",
                       cfg->report_submitter != NULL ? id->submitter : id->fqdn);
    have_cdom = contact_domain(id->contact, cdom);
    if (cfg->report_submitter != NULL) {
        if (have_cdom && strcmp(cdom, id->submitter) != 0) {
            fprintf(stderr,
                    PROG ": ReportSubmitter '%s' and the domain '%s' of ReportContact '%s' "
                         "differ; RFC 8460 5.3 wants them to be one domain (set one of them to "
                         "match the other, or leave ReportSubmitter unset)\n",
                    id->submitter, cdom, id->contact);
            return EX_CONFIG;
        }
    } else if (have_cdom) {
        (void)snprintf(id->submitter, sizeof(id->submitter), "%s", cdom);
    } else if (sts_domain_normalize(id->fqdn, strlen(id->fqdn), id->submitter, &why) != STS_OK) {
        fprintf(stderr, PROG ": this host's name '%s' is not a usable submitter domain: %s (set "
                        "ReportSubmitter)\n", id->fqdn, why.text);
        return EX_CONFIG;
    }
    if (cfg->report_submitter == NULL && strchr(id->submitter, '.') == NULL)
        fprintf(stderr, PROG ": warning: reports are submitted as '%s', which has no domain part "
                        "(set ReportContact or ReportSubmitter)\n", id->submitter);
    if (cfg->report_from != NULL)
        (void)snprintf(id->from, sizeof(id->from), "%s", cfg->report_from);
    else if (looks_like_address(id->contact))
        (void)snprintf(id->from, sizeof(id->from), "%s", id->contact);
    else
        (void)snprintf(id->from, sizeof(id->from), "postmaster@%s", id->submitter);
    if (cfg->report_host_id != NULL) {
        (void)snprintf(id->host_id, sizeof(id->host_id), "%s", cfg->report_host_id);
        if (!sts_report_host_id_valid(id->host_id)) {
            fprintf(stderr, PROG ": ReportHostID '%s' is not 1 to %d letters, digits, '-' and "
                            "'.'\n", cfg->report_host_id, STS_REPORT_HOSTID_MAX);
            return EX_CONFIG;
        }
    } else {
        /* This host's name, lower-cased; its first label when too long. */
        size_t n = 0;

        for (const char *p = id->fqdn; *p != '\0' && n < sizeof(id->host_id) - 1; p++)
            id->host_id[n++] = (char)sts_to_lower((unsigned char)*p);
        id->host_id[n] = '\0';
        if (!sts_report_host_id_valid(id->host_id)) {
            char *dot = strchr(id->host_id, '.');

            if (dot != NULL)
                *dot = '\0';
        }
        if (!sts_report_host_id_valid(id->host_id)) {
            fprintf(stderr, PROG ": this host's name '%s' cannot be part of a report id (set "
                            "ReportHostID)\n", id->fqdn);
            return EX_CONFIG;
        }
    }
    return 0;
}

static void add_session(void *arg, const sts_rsession *s)
{
    sts_report_acc_add(arg, s);
}

typedef struct progress_state {
    bool tty;
    double start, last;
} progress_state;

static double now_s(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* On a terminal: lines and sessions so far, rewritten in place. */
static void show_progress(void *arg, const sts_rlog_stats *st)
{
    progress_state *p = arg;
    double now = now_s();

    if (now - p->last < 0.25)
        return;
    p->last = now;
    fprintf(stderr, "\r" PROG ": %llu lines, %llu attempts, %.0f s ",
            (unsigned long long)st->lines, (unsigned long long)st->attempts, now - p->start);
}

static const char *sending_ip_route(void *arg, const char *rip)
{
    return sts_srcaddr_for(arg, rip);
}

static void rsend_opts_of(const sts_config *cfg, const identity *id, sts_rsend_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->spool_dir = cfg->report_spool;
    o->sendmail_cmd = cfg->report_sendmail;
    o->from = id->from;
    o->submitter = id->submitter;
    o->dns_servers = cfg->dns_servers;
    o->ca_file = cfg->ca_file;
    o->dns_timeout_ms = cfg->dns_timeout_ms;
    o->dns_tries = cfg->dns_tries;
    o->https_timeout_ms = cfg->https_timeout_ms;
    o->retry_time_s = cfg->report_retry_time;
    o->allow_internal = cfg->allow_internal_addresses;
}

static void rsend_report_of(const sts_report *r, sts_rsend_report *rr)
{
    memset(rr, 0, sizeof(*rr));
    rr->policy_domain = r->domain;
    rr->report_id = r->report_id;
    rr->begin = r->begin;
    rr->end = r->end;
    rr->json = r->json;
}

/* ------------------------------------------------------------- dry run */

/* Write data to dir/name through a temporary file and rename(2), so that
 * a reader never sees half a report. */
static int write_file(const char *dir, const char *name, const void *data, size_t len)
{
    char path[4096], tmp[4096];
    const char *p = data;
    int fd, w;

    w = snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (w < 0 || (size_t)w >= sizeof(path) ||
        snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name) >= (int)sizeof(tmp)) {
        fprintf(stderr, PROG ": %s/%s: path too long\n", dir, name);
        return EX_CANTCREAT;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
        fprintf(stderr, PROG ": cannot create %s: %s\n", tmp, strerror(errno));
        return EX_CANTCREAT;
    }
    while (len > 0) {
        ssize_t n = write(fd, p, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, PROG ": cannot write %s: %s\n", tmp, n < 0 ? strerror(errno) : "short write");
            (void)close(fd);
            (void)unlink(tmp);
            return EX_IOERR;
        }
        p += n;
        len -= (size_t)n;
    }
    if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, PROG ": cannot write %s: %s\n", path, strerror(errno));
        (void)unlink(tmp);
        return EX_IOERR;
    }
    return 0;
}

/* DIR/<RFC 8460 5.1 name>.json.gz for the receiver and DIR/<name>.json
 * (indented) beside it for people. */
static int dry_run_one(const sts_rsend_opts *o, const sts_report *r, const char *dir)
{
    sts_rsend_report rr;
    char name[2048];
    unsigned char *gz = NULL;
    size_t gzlen = 0, nlen;
    char *pretty = NULL;
    json_t *j = NULL;
    sts_why why = { "" };
    int rc = EX_SOFTWARE;

    rsend_report_of(r, &rr);
    if (sts_rsend_filename(o, &rr, name, sizeof(name)) != STS_OK) {
        fprintf(stderr, PROG ": %s: no file name for the report\n", r->domain);
        goto done;
    }
    nlen = strlen(name);
    /* The name is made of domains and numbers; refuse anything that could
     * leave DIR. */
    if (nlen < 4 || name[0] == '.' || strchr(name, '/') != NULL ||
        strcmp(name + nlen - 3, ".gz") != 0) {
        fprintf(stderr, PROG ": %s: unusable report file name '%s'\n", r->domain, name);
        goto done;
    }
    if (sts_rsend_gzip(r->json, strlen(r->json), &gz, &gzlen, &why) != STS_OK) {
        fprintf(stderr, PROG ": %s: %s\n", r->domain, why.text);
        rc = EX_OSERR;
        goto done;
    }
    if ((rc = write_file(dir, name, gz, gzlen)) != 0)
        goto done;
    j = json_loads(r->json, 0, NULL);
    pretty = j != NULL ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    if (pretty == NULL) {
        fprintf(stderr, PROG ": out of memory\n");
        rc = EX_OSERR;
        goto done;
    }
    name[nlen - 3] = '\0'; /* "....json" */
    {
        size_t plen = strlen(pretty);

        /* json_dumps ends without a newline: add one for people. */
        char *withnl = realloc(pretty, plen + 2);

        if (withnl == NULL) {
            rc = EX_OSERR;
            goto done;
        }
        pretty = withnl;
        pretty[plen] = '\n';
        pretty[plen + 1] = '\0';
        rc = write_file(dir, name, pretty, plen + 1);
    }
done:
    free(gz);
    free(pretty);
    json_decref(j);
    return rc;
}

/* ------------------------------------------------------------- summary */

static void print_summary(const sts_report_set *set, FILE *fp)
{
    fprintf(fp, "%-32s %-24s %9s %9s %9s  %s\n", "DOMAIN", "MODE", "SESSIONS", "SUCCESSES",
            "FAILURES", "FAILURES BY RESULT TYPE");
    for (size_t i = 0; i < set->n; i++) {
        const sts_report *r = &set->r[i];
        bool any = false;

        fprintf(fp, "%-32s %-24s %9llu %9llu %9llu  ", r->domain, r->modes,
                (unsigned long long)(r->successes + r->failures),
                (unsigned long long)r->successes, (unsigned long long)r->failures);
        for (size_t t = 0; t < STS_REPORT_NTYPES; t++)
            if (r->by_type[t] > 0) {
                fprintf(fp, "%s%s=%llu", any ? " " : "", sts_report_result_name(t),
                        (unsigned long long)r->by_type[t]);
                any = true;
            }
        fprintf(fp, "%s\n", any ? "" : "-");
    }
    fprintf(fp, "%zu report%s; %zu other domain%s without an MTA-STS policy (%llu sessions): no "
                "report\n",
            set->n, set->n == 1 ? "" : "s", set->stats.domains_no_policy,
            set->stats.domains_no_policy == 1 ? "" : "s",
            (unsigned long long)set->stats.no_policy);
    if (set->stats.mode_none > 0)
        fprintf(fp, "%llu session%s under policies in mode none: not reported (RFC 8461 5)\n",
                (unsigned long long)set->stats.mode_none, set->stats.mode_none == 1 ? "" : "s");
    if (set->stats.unattributed > 0)
        fprintf(fp, "%llu session%s in domains without any decision line: policy unknown, not "
                    "reported\n",
                (unsigned long long)set->stats.unattributed,
                set->stats.unattributed == 1 ? "" : "s");
}

static void print_stats(const char *date, const sts_rlog_stats *ls, const sts_report_set *set)
{
#define U(x) ((unsigned long long)(x))
    fprintf(stderr,
            PROG ": %s: lines %llu (decisions %llu, mta %llu, TLS %llu, ignored %llu, "
                 "malformed %llu); decisions %llu (repeated lines %llu, no delivery %llu); "
                 "attempts %llu (joined %llu, unjoined %llu, without TLS information %llu, "
                 "folded into engine failures %llu); unjoined decisions %llu; engine failures "
                 "%llu; dropped %llu; unfinished connections %llu, reasons cut %llu; "
                 "sessions of the day %llu, of the days around it %llu, "
                 "further away %llu, unattributed %llu, without policy %llu, under mode none "
                 "%llu, our own report mail %llu; reports %zu\n",
            date, U(ls->lines), U(ls->decision_lines), U(ls->mta_lines), U(ls->tls_lines),
            U(ls->ignored_lines), U(ls->malformed_lines), U(ls->decisions),
            U(ls->duplicate_decisions), U(ls->no_session), U(ls->attempts), U(ls->joined),
            U(ls->unjoined_attempts), U(ls->no_tls_info), U(ls->absorbed),
            U(ls->unjoined_decisions), U(ls->engine_failures), U(ls->dropped),
            U(ls->unfinished), U(ls->details_cut),
            U(set->stats.in_day), U(set->stats.outside_day), U(ls->outside_window),
            U(set->stats.unattributed), U(set->stats.no_policy), U(set->stats.mode_none),
            U(ls->own_reports), set->n);
#undef U
}

/* The MX probe records joined to the sessions (tlsrpt/rprobe.h), when
 * there were any to join or the mx patterns alone changed a session. */
static void print_probe_stats(const char *date, const sts_rlog *rl)
{
    sts_rprobe_stats ps = sts_rlog_probe_stats(rl);

    if (ps.records == 0 && ps.outside == 0)
        return;
    fprintf(stderr,
            PROG ": %s: MX probes: records %llu (without a verdict %llu, too far from the "
                 "day %llu, over the cap %llu); sessions turned into failures by a probe "
                 "%llu, by an MX outside the policy %llu; successes a probe confirmed %llu\n",
            date, (unsigned long long)ps.records, (unsigned long long)ps.no_verdict,
            (unsigned long long)ps.far, (unsigned long long)ps.dropped,
            (unsigned long long)ps.changed, (unsigned long long)ps.outside,
            (unsigned long long)ps.confirmed);
}

/* Warnings for logs that cannot give a useful report: they say what to
 * change instead of leaving an admin with empty reports. */
static void warn_inputs(const sts_rlog_stats *ls)
{
    if (ls->mta_lines > 0 && ls->tls_lines == 0)
        fprintf(stderr, PROG ": warning: the MTA log has delivery lines but no TLS lines: the "
                        "MTA does not log TLS (Postfix needs smtp_tls_loglevel >= 1, Sendmail "
                        "LogLevel >= 9), so no session can be reported as a success\n");
    if (ls->decision_lines == 0)
        fprintf(stderr, PROG ": warning: no decision log line read: the policy of each domain "
                        "is unknown, so no report can be built (give the DecisionLog file "
                        "too)\n");
    else if (ls->attempts == 0 && ls->mta_lines == 0)
        fprintf(stderr, PROG ": warning: no MTA log line read: only the engine's own failures "
                        "can be reported (give the MTA's log too)\n");
}

typedef struct input {
    const char *path;
    int64_t first;
    size_t pos;
} input;

static int cmp_input(const void *pa, const void *pb)
{
    const input *a = pa, *b = pb;

    if (a->first != b->first)
        return a->first < b->first ? -1 : 1;
    return a->pos < b->pos ? -1 : a->pos > b->pos ? 1 : 0;
}

/* The logs in reading order: the lines of one connection are tied
 * together in reading order (rlog.h), so the files that start with a
 * syslog time stamp are read oldest first, in the places such files hold
 * on the command line; standard input, pipes and decision logs keep their
 * place.  *out is an array of n paths (freed by the caller). */
static int order_inputs(const sts_rlog *rl, char **argv, size_t n, const char ***out)
{
    const char **paths = sts_calloc_array(n, sizeof(*paths));
    input *timed = sts_calloc_array(n, sizeof(*timed));
    size_t *slot = sts_calloc_array(n, sizeof(*slot));
    size_t nt = 0;
    int rc = EX_OSERR;

    if (paths == NULL || timed == NULL || slot == NULL) {
        fprintf(stderr, PROG ": out of memory\n");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        paths[i] = argv[i];
        if (sts_rlog_first_time(rl, argv[i], &timed[nt].first)) {
            timed[nt].path = argv[i];
            timed[nt].pos = i;
            slot[nt++] = i;
        }
    }
    if (nt > 1)
        qsort(timed, nt, sizeof(*timed), cmp_input);
    for (size_t k = 0; k < nt; k++)
        paths[slot[k]] = timed[k].path;
    *out = paths;
    paths = NULL;
    rc = 0;
done:
    free(paths);
    free(timed);
    free(slot);
    return rc;
}

static void print_send_stats(const sts_rsend_stats *s)
{
    fprintf(stderr,
            PROG ": spool: queued %u, duplicates %u, delivered %u, deferred %u, given up %u, "
                 "no rua %u\n",
            s->queued, s->duplicates, s->delivered, s->deferred, s->given_up, s->no_rua);
}

/* Run the spool: every report that is due.  0, or EXIT_NOT_SENT when a
 * delivery failed this time or the spool is unusable. */
static int run_spool(const sts_rsend_opts *o, sts_rsend_stats *stats)
{
    sts_why why = { "" };

    if (sts_rsend_run(o, (int64_t)time(NULL), stats, &why) != STS_OK) {
        fprintf(stderr, PROG ": spool %s: %s\n", o->spool_dir, why.text);
        return EXIT_NOT_SENT;
    }
    return stats->deferred > 0 || stats->given_up > 0 ? EXIT_NOT_SENT : 0;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "config", required_argument, NULL, 'c' },
        { "date", required_argument, NULL, 'D' },
        { "dry-run", required_argument, NULL, 'n' },
        { "summary", no_argument, NULL, 's' },
        { "sendmail", required_argument, NULL, 'm' },
        { "dns", required_argument, NULL, 'd' },
        { "ca-file", required_argument, NULL, 'a' },
        { "retry", no_argument, NULL, 'r' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    const char *config_path = NULL, *date = NULL, *dry_dir = NULL, *sendmail = NULL;
    const char *dns = NULL, *ca_file = NULL;
    bool summary = false, retry_only = false, cfg_ready = false;
    sts_config cfg;
    identity id;
    sts_rsend_opts so;
    sts_rsend_stats ss;
    sts_report_opts ro;
    sts_rlog *rl = NULL;
    sts_srcaddr *src = NULL;
    sts_report_acc *acc = NULL;
    progress_state progress = { false, 0, 0 };
    sts_report_set *set = NULL;
    const char **inputs = NULL;
    char day_text[32];
    int64_t day;
    sts_why why = { "" };
    int ch, rc = EX_SOFTWARE;

    while ((ch = getopt_long(argc, argv, "c:hV", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            config_path = optarg;
            break;
        case 'D':
            date = optarg;
            break;
        case 'n':
            dry_dir = optarg;
            break;
        case 's':
            summary = true;
            break;
        case 'm':
            sendmail = optarg;
            break;
        case 'd':
            dns = optarg;
            break;
        case 'a':
            ca_file = optarg;
            break;
        case 'r':
            retry_only = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf(PROG " %s\n", PACKAGE_VERSION);
            return 0;
        default:
            usage(stderr);
            return EX_USAGE;
        }
    }
    if (retry_only && (optind < argc || date != NULL || dry_dir != NULL || summary)) {
        fprintf(stderr, PROG ": --retry takes no LOG, --date, --dry-run or --summary\n");
        return EX_USAGE;
    }
    if (!retry_only && optind >= argc) {
        fprintf(stderr, PROG ": no LOG given (use - for standard input)\n");
        usage(stderr);
        return EX_USAGE;
    }
    if (date != NULL) {
        if (sts_report_parse_day(date, &day, &why) != STS_OK) {
            fprintf(stderr, PROG ": --date: %s\n", why.text);
            return EX_USAGE;
        }
    } else {
        int64_t now = (int64_t)time(NULL);

        day = (now / STS_REPORT_DAY - 1) * STS_REPORT_DAY; /* yesterday, UTC */
    }
    sts_report_datetime(day, day_text, sizeof(day_text));
    day_text[10] = '\0';
    if (dry_dir != NULL) {
        struct stat sb;

        if (mkdir(dry_dir, 0755) != 0 && errno != EEXIST) {
            fprintf(stderr, PROG ": --dry-run %s: %s\n", dry_dir, strerror(errno));
            return EX_CANTCREAT;
        }
        if (stat(dry_dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            fprintf(stderr, PROG ": --dry-run %s: not a directory\n", dry_dir);
            return EX_CANTCREAT;
        }
    }

    {
        const sts_cli_override ov[] = {
            { "DNSServers", dns }, { "CAFile", ca_file }, { "ReportSendmail", sendmail },
        };

        if ((rc = sts_cli_config(PROG, config_path, ov, sizeof(ov) / sizeof(ov[0]), &cfg)) != 0)
            goto done;
    }
    cfg_ready = true;
    if (sts_log_open(PROG, NULL, true) != STS_OK) {
        rc = EX_SOFTWARE;
        goto done;
    }
    if ((rc = make_identity(&cfg, &id)) != 0)
        goto done;
    rsend_opts_of(&cfg, &id, &so);
    memset(&ss, 0, sizeof(ss));
    if (retry_only) {
        rc = run_spool(&so, &ss);
        print_send_stats(&ss);
        goto done;
    }

    if (sts_rlog_new(on_warn, NULL, &rl) != STS_OK) {
        fprintf(stderr, PROG ": out of memory\n");
        rc = EX_OSERR;
        goto done;
    }
    /* Syslog stamps carry no year: take the one that fits the reported
     * day (the end of the day as "now"), not the year of the clock. */
    sts_rlog_set_now(rl, day + STS_REPORT_DAY);
    /* Our own report mail is not reported on (RFC 8460 3). */
    sts_rlog_set_own_reports(rl, id.submitter);
    /* Sessions of the day and of the days on either side (these only tell
     * which policy was in force, see report.h).  Bounds memory whatever
     * span the logs cover. */
    sts_rlog_set_window(rl, day - STS_REPORT_DAY, day + 2 * STS_REPORT_DAY);
    if ((rc = order_inputs(rl, argv + optind, (size_t)(argc - optind), &inputs)) != 0)
        goto done;
    memset(&ro, 0, sizeof(ro));
    ro.organization = id.organization;
    ro.contact = id.contact;
    ro.submitter = id.submitter;
    ro.host_id = id.host_id;
    ro.sending_ips = cfg.report_sending_ip;
    ro.no_policy_reports = cfg.report_no_policy;
    if (cfg.report_sending_ip == NULL) {
        if (sts_srcaddr_new(&src) != STS_OK) {
            fprintf(stderr, PROG ": out of memory\n");
            rc = EX_OSERR;
            goto done;
        }
        ro.sending_ip = sending_ip_route;
        ro.sending_ip_arg = src;
    }
    switch (sts_report_acc_new(&ro, day, &acc, &why)) {
    case STS_OK:
        break;
    case STS_NOMEM:
        fprintf(stderr, PROG ": %s\n", why.text);
        rc = EX_OSERR;
        goto done;
    default:
        fprintf(stderr, PROG ": %s\n", why.text);
        rc = EX_CONFIG;
        goto done;
    }
    /* Streaming: each session goes into the day's aggregates as soon as
     * it is known, so memory follows what the reports hold, not the
     * number of sessions (rlog.h, report.h).  The logs are read at once,
     * merged by time. */
    sts_rlog_set_sink(rl, add_session, acc);
    progress.tty = isatty(STDERR_FILENO) == 1;
    progress.start = now_s();
    if (progress.tty)
        sts_rlog_set_progress(rl, show_progress, &progress);
    /* Every log must be read whole: a report is sent once per day and
     * domain (its id is stable), so one built from part of the logs could
     * never be corrected by a later run. */
    {
        sts_status st = sts_rlog_read_files(rl, inputs, (size_t)(argc - optind), &why);

        if (st == STS_OK)
            st = sts_rlog_finish(rl);
        if (progress.tty)
            fprintf(stderr, "\r%60s\r", "");
        if (st != STS_OK) {
            fprintf(stderr, PROG ": %s; no report built\n",
                    st == STS_NOMEM ? "out of memory joining the logs" : why.text);
            rc = st == STS_NOMEM ? EX_OSERR : EX_NOINPUT;
            goto done;
        }
    }
    warn_inputs(sts_rlog_get_stats(rl));
    if (sts_report_acc_finish(acc, &set, &why) != STS_OK) {
        fprintf(stderr, PROG ": %s\n", why.text);
        rc = EX_OSERR;
        goto done;
    }
    print_stats(day_text, sts_rlog_get_stats(rl), set);
    print_probe_stats(day_text, rl);
    if (summary)
        print_summary(set, stdout);

    rc = 0;
    if (dry_dir != NULL) {
        for (size_t i = 0; i < set->n; i++) {
            int r = dry_run_one(&so, &set->r[i], dry_dir);

            if (r != 0)
                rc = r;
        }
        if (rc == 0)
            fprintf(stderr, PROG ": %zu report%s written to %s (dry run: nothing sent)\n", set->n,
                    set->n == 1 ? "" : "s", dry_dir);
    } else {
        for (size_t i = 0; i < set->n; i++) {
            sts_rsend_report rr;

            rsend_report_of(&set->r[i], &rr);
            if (sts_rsend_enqueue(&so, &rr, &ss, &why) != STS_OK) {
                fprintf(stderr, PROG ": %s: cannot queue report %s: %s\n", set->r[i].domain,
                        set->r[i].report_id, why.text);
                rc = EXIT_NOT_SENT;
            }
        }
        if (run_spool(&so, &ss) != 0)
            rc = EXIT_NOT_SENT;
        print_send_stats(&ss);
    }
    if (sts_rlog_get_stats(rl)->dropped > 0) {
        /* Never silently: the reports lack these records. */
        fprintf(stderr, PROG ": warning: %llu log records dropped at a memory cap (see "
                        "\"dropped\" above): the reports miss them\n",
                (unsigned long long)sts_rlog_get_stats(rl)->dropped);
        if (rc == 0)
            rc = EXIT_DROPPED;
    }
    if (fflush(stdout) != 0 && rc == 0)
        rc = EX_IOERR;
done:
    free(inputs);
    sts_report_set_free(set);
    sts_report_acc_free(acc);
    sts_srcaddr_free(src);
    sts_rlog_free(rl);
    if (cfg_ready)
        sts_config_free(&cfg);
    return rc;
}
