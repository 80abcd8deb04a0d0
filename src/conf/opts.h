/*
 * opts.h - each subsystem's options, filled from the configuration.
 *
 * The subsystems below conf/ (discovery, the engine) know nothing of the
 * configuration file: they take an options struct of their own.  This
 * module is the one place that maps config keys onto those structs, so a
 * new key is added to the table (config_keys.c) and, if a subsystem needs
 * it, here.
 */
#ifndef STS_OPTS_H
#define STS_OPTS_H

#include "conf/config.h"
#include "engine/engine.h"
#include "engine/prober.h"
#include "sts/discover.h"

/* DNSServers, DNSTimeout, DNSTries, CAFile, HTTPSConnectTimeout,
 * HTTPSTimeout, PolicyPort, AllowInternalAddresses, MaxPolicyFetches, PolicyFetchSlotTime.  The strings of *out point into cfg: use out
 * while cfg lives (sts_discover_new copies what it keeps). */
void sts_opts_discover(const sts_config *cfg, sts_discover_opts *out);

/* The cache and engine keys (CacheSize, NegativeCacheTime, RecheckInterval,
 * RetryInterval, RefreshIdle, MaxDiscoveries, DiscoveryQueue) and the
 * discovery options above, on top of zeros (the engine's defaults). */
void sts_opts_engine(const sts_config *cfg, sts_engine_opts *out);

/* The Probe* keys, CAFile, AllowInternalAddresses and the DNS keys, on top
 * of zeros; strings point into cfg (sts_prober_new copies them).  The
 * EHLO name is helo (ProbeHeloName, else the caller's host name). */
void sts_opts_prober(const sts_config *cfg, const char *helo, sts_prober_opts *out);

#endif
