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

#include "conf/cli.h"
#include "conf/config.h"
#include "conf/opts.h"
#include "sts/discover.h"
#include "sts/domain.h"
#include "sts/mx.h"
#include "sts/outcome.h"
#include "sts/policy.h"
#include "engine/store.h"
#include "base/account.h"
#include "base/clock.h"

#include <jansson.h>

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
            "       mtasts-query [--json] [--config FILE] --cache DOMAIN [MX...]\n"
            "       mtasts-query [--json] [--config FILE] --cache-list | --cache-export\n"
            "       mtasts-query [--config FILE] --cache-purge DOMAIN | --cache-purge-all\n"
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

/* ------------------------------------------------------------------ cache */

typedef enum cache_cmd {
    CACHE_NONE,
    CACHE_SHOW,
    CACHE_LIST,
    CACHE_EXPORT,
    CACHE_PURGE,
    CACHE_PURGE_ALL,
} cache_cmd;

static const char *kind_name(sts_entry_kind k)
{
    switch (k) {
    case STS_ENTRY_POLICY:
        return "policy";
    case STS_ENTRY_NOPOLICY:
        return "no-policy";
    case STS_ENTRY_FAILED:
        return "failed";
    }
    return "?";
}

/* The outcome a cached record stands for now: what the daemon would use. */
static void outcome_from_record(const sts_cache_record *r, int64_t now, sts_outcome *o)
{
    sts_why why;

    sts_outcome_init(o, r->domain);
    memcpy(o->id, r->id, sizeof(o->id));
    if (r->expires_at <= now) {
        o->result = STS_RESULT_TEMPERROR;
        (void)snprintf(o->error, sizeof(o->error), "cache entry expired %lld s ago",
                       (long long)(now - r->expires_at));
        return;
    }
    switch (r->kind) {
    case STS_ENTRY_POLICY:
        if (sts_policy_parse(r->policy_text, r->policy_len, &o->policy, &why) == STS_OK) {
            o->result = STS_RESULT_POLICY;
        } else {
            o->result = STS_RESULT_INVALID;
            (void)snprintf(o->error, sizeof(o->error), "cached policy does not parse: %.200s", why.text);
        }
        break;
    case STS_ENTRY_NOPOLICY:
        o->result = STS_RESULT_NONE;
        (void)snprintf(o->error, sizeof(o->error), "cached: the domain has no MTA-STS policy");
        break;
    case STS_ENTRY_FAILED:
        o->result = STS_RESULT_TEMPERROR;
        (void)snprintf(o->error, sizeof(o->error),
                       "cached: the last discovery failed, next attempt in %lld s",
                       (long long)(r->expires_at - now));
        break;
    }
}

static json_t *record_json(const sts_cache_record *r, bool with_text)
{
    json_t *o = json_object();
    sts_policy *p = NULL;
    sts_why why;

    json_object_set_new(o, "domain", json_string(r->domain));
    json_object_set_new(o, "kind", json_string(kind_name(r->kind)));
    if (r->id[0] != '\0')
        json_object_set_new(o, "id", json_string(r->id));
    if (r->kind == STS_ENTRY_POLICY &&
        sts_policy_parse(r->policy_text, r->policy_len, &p, &why) == STS_OK) {
        json_t *mx = json_array();

        json_object_set_new(o, "mode", json_string(sts_mode_name(p->mode)));
        json_object_set_new(o, "max_age", json_integer(p->max_age));
        for (size_t i = 0; i < p->n_mx; i++)
            json_array_append_new(mx, json_string(p->mx[i]));
        json_object_set_new(o, "mx", mx);
        sts_policy_free(p);
    }
    json_object_set_new(o, "fetched_at", json_integer(r->fetched_at));
    json_object_set_new(o, "checked_at", json_integer(r->checked_at));
    json_object_set_new(o, "expires_at", json_integer(r->expires_at));
    json_object_set_new(o, "last_used", json_integer(r->last_used));
    if (with_text && r->policy_text != NULL)
        json_object_set_new(o, "policy", json_stringn(r->policy_text, r->policy_len));
    return o;
}

typedef struct list_ctx {
    bool json;
    bool with_text;
    json_t *arr;
    int64_t now;
    size_t n;
} list_ctx;

static bool list_one(void *arg, const sts_cache_record *r)
{
    list_ctx *lc = arg;

    lc->n++;
    if (lc->arr != NULL) {
        json_array_append_new(lc->arr, record_json(r, lc->with_text));
        return true;
    }
    printf("%-40s %-9s %-32s %s %lld s\n", r->domain, kind_name(r->kind),
           r->id[0] != '\0' ? r->id : "-",
           r->expires_at > lc->now ? "expires-in" : "expired-for",
           (long long)(r->expires_at > lc->now ? r->expires_at - lc->now : lc->now - r->expires_at));
    return true;
}

/* Started as root: become the daemon's account (UserID) before touching
 * the network or the cache store, so that no store file is created or
 * written as root (one the daemon could not write, or a link planted by
 * the service user followed with root's rights).  For a cache command an
 * unknown UserID is an error; a lookup goes on as root, with a warning. */
static int leave_root(const sts_config *cfg, bool for_cache)
{
    sts_account acct;
    sts_why why = { "" };

    if (geteuid() != 0)
        return 0;
    if (sts_account_resolve(cfg->user_id, &acct, &why) != STS_OK) {
        if (for_cache) {
            fprintf(stderr, "mtasts-query: %s: as root the cache store is only opened as the "
                    "daemon's user; fix UserID or run as that user\n", why.text);
            return EX_NOUSER;
        }
        fprintf(stderr, "mtasts-query: warning: %s: looking up as root\n", why.text);
        return 0;
    }
    if (why.text[0] != '\0')
        fprintf(stderr, "mtasts-query: warning: %s\n", why.text);
    if (sts_account_become(&acct, true, &why) != STS_OK) {
        fprintf(stderr, "mtasts-query: %s\n", why.text);
        return EX_OSERR;
    }
    return 0;
}

static int cache_command(const sts_config *cfg, cache_cmd cmd, const char *domain,
                         query_state *q, bool json)
{
    sts_store *store = NULL;
    sts_why why = { "" };
    sts_status st;
    int rc = EX_SOFTWARE;
    int64_t now = (int64_t)time(NULL);

    st = sts_store_open(cfg->cache_store, &store, &why);
    if (st != STS_OK) {
        fprintf(stderr, "mtasts-query: cache store %s: %s\n", cfg->cache_store, why.text);
        if (store == NULL || st != STS_TEMPFAIL) {
            sts_store_close(store);
            return EX_UNAVAILABLE;
        }
    } else if (why.text[0] != '\0') {
        fprintf(stderr, "mtasts-query: cache store %s: %s\n", cfg->cache_store, why.text);
    }
    switch (cmd) {
    case CACHE_SHOW: {
        sts_cache_record r;
        sts_mx_check chk[QUERY_MAX_MX];
        size_t nchk = 0;
        char *text = NULL;

        memset(&r, 0, sizeof(r));
        st = sts_store_get(store, domain, &r, &why);
        if (st == STS_NOTFOUND) {
            sts_outcome_init(&q->o, domain);
            (void)snprintf(q->o.error, sizeof(q->o.error), "no cache entry for %s", domain);
        } else if (st != STS_OK) {
            fprintf(stderr, "mtasts-query: cache store: %s\n", why.text);
            rc = EX_UNAVAILABLE;
            break;
        } else {
            outcome_from_record(&r, now, &q->o);
        }
        if (q->o.policy != NULL)
            for (size_t i = 0; i < q->nmx; i++) {
                chk[nchk].host = q->mx[i];
                chk[nchk].match = sts_policy_mx_match(q->o.policy, q->mx[i]);
                nchk++;
            }
        if (json) {
            if (sts_outcome_json(&q->o, chk, nchk, "cache", &text) != STS_OK) {
                rc = EX_OSERR;
                sts_cache_record_clear(&r);
                break;
            }
            printf("%s\n", text);
            free(text);
        } else {
            print_text(q, chk, nchk, false);
            if (st == STS_OK)
                printf("source:      cache (fetched %lld s ago, checked %lld s ago, expires in %lld s)\n",
                       (long long)(now - r.fetched_at), (long long)(now - r.checked_at),
                       (long long)(r.expires_at - now));
        }
        sts_cache_record_clear(&r);
        rc = q->o.result == STS_RESULT_INVALID ? 1 : q->o.result == STS_RESULT_TEMPERROR ? 2 : 0;
        break;
    }
    case CACHE_LIST:
    case CACHE_EXPORT: {
        list_ctx lc = { json || cmd == CACHE_EXPORT, cmd == CACHE_EXPORT, NULL, now, 0 };
        size_t skipped = 0;

        if (lc.json)
            lc.arr = json_array();
        st = sts_store_load(store, list_one, &lc, &skipped, &why);
        if (lc.arr != NULL) {
            json_dumpf(lc.arr, stdout, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
            putchar('\n');
            json_decref(lc.arr);
        }
        if (skipped > 0)
            fprintf(stderr, "mtasts-query: %zu undecodable records skipped\n", skipped);
        if (st != STS_OK) {
            fprintf(stderr, "mtasts-query: cache store: %s\n", why.text);
            rc = EX_UNAVAILABLE;
        } else {
            rc = 0;
        }
        break;
    }
    case CACHE_PURGE:
    case CACHE_PURGE_ALL:
        st = cmd == CACHE_PURGE ? sts_store_delete(store, domain, &why) : sts_store_clear(store, &why);
        /* The note tells the running daemons sharing the store to drop
         * their memory copies too (store.h, the purge log). */
        if (st == STS_OK || st == STS_NOTFOUND)
            st = sts_store_purge_note(store, cmd == CACHE_PURGE ? domain : NULL, &why);
        if (st != STS_OK) {
            fprintf(stderr, "mtasts-query: cache store: %s\n", why.text);
            rc = EX_UNAVAILABLE;
        } else {
            fprintf(stderr, "mtasts-query: purged %s from %s%s\n",
                    cmd == CACHE_PURGE ? domain : "every entry", cfg->cache_store,
                    strcmp(sts_store_backend(store), "none") != 0
                        ? "; a running mtasts-milter using this store drops its memory copy "
                          "within a second"
                        : "");
            rc = 0;
        }
        break;
    case CACHE_NONE:
        break;
    }
    sts_store_close(store);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "json", no_argument, NULL, 'j' },
        { "config", required_argument, NULL, 'c' },
        { "dns", required_argument, NULL, 'd' },
        { "ca-file", required_argument, NULL, 'a' },
        { "check-mx", no_argument, NULL, 'm' },
        { "cache", no_argument, NULL, 'C' },
        { "cache-list", no_argument, NULL, 'L' },
        { "cache-export", no_argument, NULL, 'E' },
        { "cache-purge", no_argument, NULL, 'P' },
        { "cache-purge-all", no_argument, NULL, 'A' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    const char *config_path = NULL, *dns = NULL, *ca_file = NULL;
    bool json = false, check_mx = false;
    cache_cmd ccmd = CACHE_NONE;
    char domain[STS_DOMAIN_MAX + 1];
    sts_config cfg;
    bool cfg_ready = false;
    sts_discover *disc = NULL;
    sts_discover_opts dopts;
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
        case 'C':
        case 'L':
        case 'E':
        case 'P':
        case 'A':
            if (ccmd != CACHE_NONE) {
                fprintf(stderr, "mtasts-query: only one --cache command at a time\n");
                return EX_USAGE;
            }
            ccmd = ch == 'C' ? CACHE_SHOW : ch == 'L' ? CACHE_LIST : ch == 'E' ? CACHE_EXPORT
                 : ch == 'P' ? CACHE_PURGE : CACHE_PURGE_ALL;
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
    if (ccmd == CACHE_LIST || ccmd == CACHE_EXPORT || ccmd == CACHE_PURGE_ALL) {
        if (optind != argc) {
            fprintf(stderr, "mtasts-query: this --cache command takes no domain\n");
            return EX_USAGE;
        }
    } else if (optind >= argc) {
        usage(stderr);
        return EX_USAGE;
    } else if (ccmd == CACHE_PURGE && argc - optind != 1) {
        fprintf(stderr, "mtasts-query: --cache-purge takes exactly one domain\n");
        return EX_USAGE;
    }
    if (argc - optind - 1 > QUERY_MAX_MX) {
        fprintf(stderr, "mtasts-query: at most %d MX host names\n", QUERY_MAX_MX);
        return EX_USAGE;
    }
    domain[0] = '\0';
    if (optind < argc &&
        sts_domain_normalize(argv[optind], strlen(argv[optind]), domain, &why) != STS_OK) {
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

    {
        /* --dns accepts exactly what DNSServers accepts, and so on. */
        const sts_cli_override ov[] = { { "DNSServers", dns }, { "CAFile", ca_file } };

        rc = sts_cli_config("mtasts-query", config_path, ov, sizeof(ov) / sizeof(ov[0]), &cfg);
        if (rc != 0)
            goto done;
    }
    cfg_ready = true;
    rc = leave_root(&cfg, ccmd != CACHE_NONE);
    if (rc != 0)
        goto done;
    rc = EX_SOFTWARE;
    if (ccmd != CACHE_NONE) {
        rc = cache_command(&cfg, ccmd, domain, &q, json);
        goto done;
    }

    sts_opts_discover(&cfg, &dopts);
    if (sts_discover_new(&dopts, &disc, &why) != STS_OK) {
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
    deadline = sts_mono_ms() + 4LL * cfg.dns_timeout_ms * (1LL << (cfg.dns_tries > 6 ? 6 : cfg.dns_tries)) +
               cfg.https_connect_timeout_ms + cfg.https_timeout_ms + 5000;
    while (!q.done || q.mx_pending) {
        long long left = deadline - sts_mono_ms();

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
