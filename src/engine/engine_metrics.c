/*
 * engine_metrics.c - see engine_metrics.h.  The families are static:
 * one engine per process, and a reload that builds a new engine keeps
 * counting in the same series (counters never go back).
 */
#include "engine/engine_metrics.h"

STS_METRIC_FAMILY(sts_engine_metric_discoveries, "mtasts_discoveries_total", COUNTER,
                  "Policy discoveries finished, by result (policy, none, temperror, invalid) "
                  "and by what ended them (none for a policy, no-policy, dns-txt, "
                  "dns-policy-host, https-network, https-refused-address, https-status, "
                  "https-certificate, https-media-type, https-too-big, policy-syntax, local).",
                  "result", "failure");
STS_METRIC_FAMILY(sts_engine_metric_discovery_seconds, "mtasts_discovery_seconds", HISTOGRAM,
                  "Time from the start of a discovery (TXT query) to its outcome, by result.",
                  "result", NULL);

void sts_engine_metrics_outcome(const sts_outcome *o, double seconds)
{
    const char *result = sts_result_name(o->result);

    sts_metric_add(&sts_engine_metric_discoveries, result,
                   o->failure != NULL ? o->failure : "local", 1);
    sts_metric_observe(&sts_engine_metric_discovery_seconds, result, NULL, seconds);
}

sts_status sts_engine_metrics_render(sts_engine *e, sts_buf *out)
{
    static sts_metric_family *const fams[] = {
        &sts_engine_metric_discoveries,
        &sts_engine_metric_discovery_seconds,
    };
    static const struct {
        const char *name, *help;
        sts_metric_type type;
    } v[] = {
        { "mtasts_lookups_total", "Policy lookups asked of the engine (cache hits plus misses).",
          STS_METRIC_COUNTER },
        { "mtasts_cache_hits_total", "Lookups answered from the memory cache.",
          STS_METRIC_COUNTER },
        { "mtasts_cache_misses_total", "Lookups the memory cache could not answer.",
          STS_METRIC_COUNTER },
        { "mtasts_lookups_joined_total",
          "Lookups that joined a discovery already queued or running for their domain.",
          STS_METRIC_COUNTER },
        { "mtasts_lookups_pending_total",
          "Lookups answered before their discovery finished (the caller's budget ran out).",
          STS_METRIC_COUNTER },
        { "mtasts_lookups_overloaded_total",
          "Lookups refused a discovery because the queue (DiscoveryQueue) was full.",
          STS_METRIC_COUNTER },
        { "mtasts_discoveries_started_total", "Full discoveries started (first contact).",
          STS_METRIC_COUNTER },
        { "mtasts_rechecks_started_total", "TXT id re-checks started.", STS_METRIC_COUNTER },
        { "mtasts_refreshes_started_total", "Policy refreshes started.", STS_METRIC_COUNTER },
        { "mtasts_store_errors_total", "Cache store operations that failed.",
          STS_METRIC_COUNTER },
        { "mtasts_cache_entries", "Domains in the memory cache.", STS_METRIC_GAUGE },
        { "mtasts_discoveries_running", "Discoveries running now.", STS_METRIC_GAUGE },
        { "mtasts_discoveries_queued", "Discoveries waiting to start.", STS_METRIC_GAUGE },
        { "mtasts_policy_fetches_running",
          "Discoveries fetching their policy now (MaxPolicyFetches at most).",
          STS_METRIC_GAUGE },
        { "mtasts_policy_fetches_parked",
          "Discoveries whose TXT record was found, waiting for a policy fetch slot.",
          STS_METRIC_GAUGE },
        { "mtasts_lookups_waiting", "Asynchronous lookups waiting for a discovery.",
          STS_METRIC_GAUGE },
    };
    sts_engine_stats s;
    uint64_t val[sizeof(v) / sizeof(v[0])];
    sts_status st;

    sts_engine_get_stats(e, &s);
    val[0] = s.lookups;
    val[1] = s.hits;
    val[2] = s.misses;
    val[3] = s.joined;
    val[4] = s.pending;
    val[5] = s.overloaded;
    val[6] = s.discoveries;
    val[7] = s.txt_rechecks;
    val[8] = s.refreshes;
    val[9] = s.store_errors;
    val[10] = s.entries;
    val[11] = s.inflight;
    val[12] = s.queued;
    val[13] = s.fetching;
    val[14] = s.parked;
    val[15] = s.waiting;
    st = sts_metrics_render(fams, sizeof(fams) / sizeof(fams[0]), out);
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]) && st == STS_OK; i++)
        st = sts_metrics_render_value(out, v[i].name, v[i].help, v[i].type, val[i]);
    return st;
}
