/*
 * probes.c - glue between the daemon and the MX prober (see probes.h):
 * options from the config, the records into the decision log and a log
 * line, the notes from the answers the daemon uses.
 */
#include "probes.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "conf/opts.h"
#include "decision/dlog_probe.h"
#include "engine/prober.h"
#include "runtime.h"
#include "sts/domain.h"

static sts_prober *prober;

static void on_result(void *arg, const sts_probe_record *r)
{
    sts_why why = { "" };
    char esc[STS_WHY_MAX * 4], mx[STS_DOMAIN_MAX * 4 + 1];

    (void)arg;
    /* The reason may quote the server's reply, the MX name comes from DNS. */
    sts_log(STS_LOG_INFO, "-", "probe",
            "domain=%s policy_id=%s mode=%s mx=%s ip=%s result=%s reason=\"%s\"", r->domain,
            r->policy_id[0] != '\0' ? r->policy_id : "-", sts_mode_name(r->mode),
            sts_log_escape(mx, sizeof(mx), r->mx, strlen(r->mx)),
            r->ip[0] != '\0' ? r->ip : "-", sts_probe_result_name(r->result),
            sts_log_escape(esc, sizeof(esc), r->detail, strlen(r->detail)));
    if (mt_dlog != NULL && sts_dlog_write_probe(mt_dlog, r, &why) != STS_OK)
        sts_log(STS_LOG_ERR, "-", "decision-log", "reason=\"%s\"", why.text);
}

sts_status mt_probes_start(const sts_config *cfg, sts_why *why)
{
    char host[STS_DOMAIN_MAX + 1] = "localhost";
    sts_prober_opts o;
    sts_status st;

    if (mt_dlog == NULL || (!cfg->probe_testing_mx && !cfg->probe_enforce_mx))
        return STS_OK;
    if (gethostname(host, sizeof(host) - 1) != 0 || !sts_hostname_valid(host, strlen(host)))
        (void)snprintf(host, sizeof(host), "localhost");
    sts_opts_prober(cfg, host, &o);
    if (!sts_hostname_valid(o.probe.helo_name, strlen(o.probe.helo_name))) {
        sts_why_set(why, "ProbeHeloName %s is not a host name", o.probe.helo_name);
        return STS_PERMFAIL;
    }
    o.on_result = on_result;
    st = sts_prober_new(&o, &prober, why);
    if (st == STS_OK && (st = sts_prober_start(prober, why)) != STS_OK) {
        sts_prober_free(prober);
        prober = NULL;
    }
    return st;
}

void mt_probes_note(const char *domain, const sts_answer *a)
{
    if (prober == NULL || a == NULL || a->result != STS_RESULT_POLICY || a->policy == NULL)
        return;
    sts_prober_note(prober, domain, a->id, a->policy, a->mx_hosts, a->n_mx, a->mx_known);
}

void mt_probes_stop(void)
{
    sts_prober_free(prober);
    prober = NULL;
}
