/*
 * mtasts-query - look up a domain's MTA-STS policy (RFC 8461) from the
 * command line, with the same configuration and code the daemon uses.
 * Contract: ARCHITECTURE.md "mtasts-query"; manual: mtasts-query(1).
 */
#include "buildconf.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "discover.h"
#include "domain.h"
#include "mx.h"
#include "outcome.h"
#include "policy.h"

#define QUERY_MAX_MX 64

typedef struct query_state {
    bool done;
    sts_outcome o;
    /* MX hosts to check: from the command line and, with --check-mx, DNS */
    char *mx[QUERY_MAX_MX];
    size_t nmx;
    bool mx_pending;
    sts_status mx_status;
    char mx_why[STS_WHY_MAX];
} query_state;

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: mtasts-query [--json] [--config FILE] [--dns HOST[:PORT],...]\n"
            "                    [--ca-file FILE] [--check-mx] DOMAIN [MX...]\n"
            "       mtasts-query --help | --version\n"
            "Look up the MTA-STS policy (RFC 8461) of DOMAIN and check MX host names\n"
            "against it.  Exit status: 0 policy or none, 1 invalid, 2 temperror,\n"
            "64 usage error, 78 configuration error.  See mtasts-query(1).\n");
}

static void on_outcome(void *arg, sts_outcome *o)
{
    query_state *q = arg;

    q->o = *o;
    o->policy = NULL; /* ownership moves to q->o */
    q->done = true;
}

static void on_mx(void *arg, sts_status st, const sts_dns_mx *res, const char *why)
{
    query_state *q = arg;

    q->mx_pending = false;
    q->mx_status = st;
    (void)snprintf(q->mx_why, sizeof(q->mx_why), "%s", why);
    if (st != STS_OK)
        return;
    for (size_t i = 0; i < res->n && q->nmx < QUERY_MAX_MX; i++) {
        char *h = strdup(res->host[i]);

        if (h == NULL) {
            q->mx_status = STS_NOMEM;
            return;
        }
        q->mx[q->nmx++] = h;
    }
    if (res->null_mx)
        (void)snprintf(q->mx_why, sizeof(q->mx_why), "null MX (RFC 7505): the domain accepts no mail");
}

/* Override one config key from the command line, validated exactly as
 * the file's line would be (so --dns accepts what DNSServers accepts). */
static int override(sts_config *cfg, const char *key, const char *value)
{
    sts_why why;

    why.text[0] = '\0';
    switch (sts_config_set(cfg, key, value, &why)) {
    case STS_OK:
        return 0;
    case STS_NOMEM:
        fprintf(stderr, "mtasts-query: out of memory\n");
        return EX_OSERR;
    default:
        fprintf(stderr, "mtasts-query: %s\n", why.text);
        return EX_USAGE;
    }
}

static void print_text(const query_state *q, const sts_mx_check *chk, size_t nchk, bool check_mx)
{
    const sts_outcome *o = &q->o;
    const char *rt = sts_report_type_name(o->report_type);

    printf("domain:      %s\n", o->domain);
    printf("result:      %s\n", sts_result_name(o->result));
    if (o->id[0] != '\0')
        printf("policy id:   %s\n", o->id);
    if (o->policy != NULL) {
        printf("mode:        %s\n", sts_mode_name(o->policy->mode));
        printf("max_age:     %lu seconds\n", (unsigned long)o->policy->max_age);
        for (size_t i = 0; i < o->policy->n_mx; i++)
            printf("mx pattern:  %s\n", o->policy->mx[i]);
        for (size_t i = 0; i < nchk; i++)
            printf("MX %s: %s\n", chk[i].host,
                   chk[i].match ? "matches the policy" : "does NOT match the policy");
    }
    if (check_mx && q->mx_status != STS_OK)
        printf("MX lookup:   %s\n", q->mx_why);
    else if (check_mx && q->mx_why[0] != '\0')
        printf("MX lookup:   %s\n", q->mx_why);
    if (o->error[0] != '\0')
        printf("error:       %s\n", o->error);
    if (rt != NULL)
        printf("report type: %s\n", rt);
}

static long long now_ms(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "json", no_argument, NULL, 'j' },
        { "config", required_argument, NULL, 'c' },
        { "dns", required_argument, NULL, 'd' },
        { "ca-file", required_argument, NULL, 'a' },
        { "check-mx", no_argument, NULL, 'm' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    const char *config_path = NULL, *dns = NULL, *ca_file = NULL;
    bool json = false, check_mx = false;
    char domain[STS_DOMAIN_MAX + 1];
    sts_config cfg;
    bool cfg_ready = false;
    sts_discover *disc = NULL;
    query_state q;
    sts_mx_check chk[QUERY_MAX_MX];
    size_t nchk = 0;
    sts_why why;
    long long deadline;
    int ch, rc = EX_SOFTWARE;

    memset(&q, 0, sizeof(q));
    why.text[0] = '\0';
    while ((ch = getopt_long(argc, argv, "jc:d:a:mhV", longopts, NULL)) != -1) {
        switch (ch) {
        case 'j':
            json = true;
            break;
        case 'c':
            config_path = optarg;
            break;
        case 'd':
            dns = optarg;
            break;
        case 'a':
            ca_file = optarg;
            break;
        case 'm':
            check_mx = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("mtasts-query %s\n", PACKAGE_VERSION);
            return 0;
        default:
            usage(stderr);
            return EX_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return EX_USAGE;
    }
    if (argc - optind - 1 > QUERY_MAX_MX) {
        fprintf(stderr, "mtasts-query: at most %d MX host names\n", QUERY_MAX_MX);
        return EX_USAGE;
    }
    if (sts_domain_normalize(argv[optind], strlen(argv[optind]), domain, &why) != STS_OK) {
        fprintf(stderr, "mtasts-query: '%s' is not a usable domain: %s\n", argv[optind], why.text);
        return EX_USAGE;
    }
    for (int i = optind + 1; i < argc; i++) {
        size_t len = strlen(argv[i]);

        if (len > 0 && argv[i][len - 1] == '.')
            len--;
        if (!sts_hostname_valid(argv[i], len)) {
            fprintf(stderr, "mtasts-query: MX '%s' is not a host name\n", argv[i]);
            return EX_USAGE;
        }
        q.mx[q.nmx] = strdup(argv[i]);
        if (q.mx[q.nmx] == NULL) {
            fprintf(stderr, "mtasts-query: out of memory\n");
            return EX_OSERR;
        }
        q.nmx++;
    }

    if (sts_config_defaults(&cfg) != STS_OK) {
        fprintf(stderr, "mtasts-query: out of memory\n");
        rc = EX_OSERR;
        goto done;
    }
    cfg_ready = true;
    /* The daemon's file is read when it exists, so both see the same
     * resolvers and CA; an explicitly named file must exist. */
    if (config_path != NULL || access(STS_DEFAULT_CONFIG, F_OK) == 0) {
        const char *path = config_path != NULL ? config_path : STS_DEFAULT_CONFIG;

        if (sts_config_load(path, &cfg, &why) != STS_OK) {
            fprintf(stderr, "mtasts-query: %s\n", why.text);
            rc = EX_CONFIG;
            goto done;
        }
    }
    if (dns != NULL && (rc = override(&cfg, "DNSServers", dns)) != 0)
        goto done;
    if (ca_file != NULL && (rc = override(&cfg, "CAFile", ca_file)) != 0)
        goto done;
    rc = EX_SOFTWARE;

    if (sts_discover_new(&cfg, &disc, &why) != STS_OK) {
        fprintf(stderr, "mtasts-query: %s\n", why.text);
        rc = EX_CONFIG;
        goto done;
    }
    if (sts_discover_start(disc, domain, on_outcome, &q) != STS_OK) {
        fprintf(stderr, "mtasts-query: out of memory\n");
        rc = EX_OSERR;
        goto done;
    }
    if (check_mx) {
        q.mx_pending = true;
        sts_discover_mx(disc, domain, on_mx, &q);
    }
    /* Every step has its own timeout; this outer bound only guards against
     * a bug turning into a hang.  c-ares doubles the wait on each try. */
    deadline = now_ms() + 4LL * cfg.dns_timeout_ms * (1LL << (cfg.dns_tries > 6 ? 6 : cfg.dns_tries)) +
               cfg.https_connect_timeout_ms + cfg.https_timeout_ms + 5000;
    while (!q.done || q.mx_pending) {
        long long left = deadline - now_ms();

        if (left <= 0) {
            if (!q.done) {
                sts_outcome_init(&q.o, domain);
                (void)snprintf(q.o.error, sizeof(q.o.error), "discovery did not finish in time");
                q.done = true;
            }
            break;
        }
        if (sts_discover_run(disc, left > 1000 ? 1000 : (int)left) != STS_OK) {
            fprintf(stderr, "mtasts-query: event loop failure\n");
            goto done;
        }
    }

    if (q.o.policy != NULL)
        for (size_t i = 0; i < q.nmx; i++) {
            chk[nchk].host = q.mx[i];
            chk[nchk].match = sts_policy_mx_match(q.o.policy, q.mx[i]);
            nchk++;
        }
    if (json) {
        char *text = NULL;

        if (sts_outcome_json(&q.o, chk, nchk, "network", &text) != STS_OK) {
            fprintf(stderr, "mtasts-query: out of memory\n");
            rc = EX_OSERR;
            goto done;
        }
        printf("%s\n", text);
        free(text);
    } else {
        print_text(&q, chk, nchk, check_mx);
    }
    switch (q.o.result) {
    case STS_RESULT_POLICY:
    case STS_RESULT_NONE:
        rc = 0;
        break;
    case STS_RESULT_INVALID:
        rc = 1;
        break;
    case STS_RESULT_TEMPERROR:
        rc = 2;
        break;
    }
    if (fflush(stdout) != 0)
        rc = EX_IOERR;
done:
    sts_discover_free(disc);
    sts_outcome_clear(&q.o);
    for (size_t i = 0; i < q.nmx; i++)
        free(q.mx[i]);
    if (cfg_ready)
        sts_config_free(&cfg);
    return rc;
}
