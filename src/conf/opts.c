/*
 * opts.c - each subsystem's options from the configuration (see opts.h).
 */
#include <string.h>

#include "conf/opts.h"

void sts_opts_discover(const sts_config *cfg, sts_discover_opts *out)
{
    memset(out, 0, sizeof(*out));
    out->dns.servers = cfg->dns_servers;
    out->dns.timeout_ms = cfg->dns_timeout_ms;
    out->dns.tries = cfg->dns_tries;
    out->fetch.ca_file = cfg->ca_file;
    out->fetch.connect_timeout_ms = cfg->https_connect_timeout_ms;
    out->fetch.timeout_ms = cfg->https_timeout_ms;
    out->fetch.port = cfg->policy_port;
    out->fetch.allow_internal = cfg->allow_internal_addresses;
    out->max_fetches = cfg->max_policy_fetches;
    out->fetch_lend_ms = cfg->policy_fetch_slot_ms;
}

void sts_opts_engine(const sts_config *cfg, sts_engine_opts *out)
{
    memset(out, 0, sizeof(*out));
    sts_opts_discover(cfg, &out->discover);
    out->max_inflight = cfg->max_discoveries;
    out->queue_limit = cfg->discovery_queue;
    out->negative_ttl = cfg->negative_ttl;
    out->retry_interval = cfg->retry_interval;
    out->recheck_interval = cfg->recheck_interval;
    out->refresh_idle = cfg->refresh_idle;
    out->max_entries = cfg->cache_size;
    out->store_max_entries = cfg->cache_store_max_entries;
}

void sts_opts_prober(const sts_config *cfg, const char *helo, sts_prober_opts *out)
{
    unsigned total = cfg->probe_timeout_ms;

    memset(out, 0, sizeof(*out));
    out->interval_s = cfg->probe_interval;
    out->concurrency = cfg->probe_concurrency;
    out->queue_max = cfg->probe_queue;
    out->testing = cfg->probe_testing_mx;
    out->enforce = cfg->probe_enforce_mx;
    out->probe.ca_file = cfg->ca_file;
    out->probe.helo_name = cfg->probe_helo_name != NULL ? cfg->probe_helo_name : helo;
    out->probe.port = cfg->probe_port;
    out->probe.total_timeout_ms = total;
    out->probe.connect_timeout_ms = total < 10000 ? total : 10000;
    out->probe.io_timeout_ms = total < 30000 ? total : 30000;
    out->probe.allow_internal = cfg->allow_internal_addresses;
    out->dns.servers = cfg->dns_servers;
    out->dns.timeout_ms = cfg->dns_timeout_ms;
    out->dns.tries = cfg->dns_tries;
}
