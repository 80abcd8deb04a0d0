/*
 * config.h - the configuration file shared by mtasts-milter and
 * mtasts-query (OpenDKIM-style "Key value" lines).
 *
 * One table of keys (config_keys.c) drives the parser, the range checks,
 * `mtasts-milter -n` / sts_config_print and the documentation test: every
 * key in the table must appear in doc/mtasts-milter.conf.5.
 */
#ifndef STS_CONFIG_H
#define STS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "base/status.h"

#ifndef STS_DEFAULT_CONFIG
#define STS_DEFAULT_CONFIG "/etc/mtasts-milter.conf"
#endif

typedef struct sts_config {
    /* daemon faces */
    char *socket;             /* Socket: inet:PORT@HOST or unix:PATH */
    char *socketmap_socket;   /* SocketmapSocket: same syntax */
    unsigned socket_mode;     /* SocketMode: mode of the unix sockets (octal) */
    char *socket_group;       /* SocketGroup: group of the unix sockets; NULL = UserID's */
    char *metrics_socket;     /* MetricsSocket: same syntax; NULL: off */
    char *socketmap_profiles; /* SocketmapProfile: one "NAME option=value ..." per line
                                 ('\n'-joined, canonical form); NULL = built-ins only */
    unsigned socketmap_max_connections; /* SocketmapMaxConnections */
    unsigned socketmap_max_per_peer;    /* SocketmapMaxPerPeer: 0 = no per-peer limit */
    unsigned socketmap_idle_timeout;    /* SocketmapIdleTimeout (s) */
    unsigned socketmap_request_timeout; /* SocketmapRequestTimeout (s) */
    char *user_id;            /* UserID: user[:group] to run as */
    char *pid_file;           /* PidFile */
    char *syslog_facility;    /* SyslogFacility: mail, local0..local7, daemon */
    char *log_level;          /* LogLevel: error, warning, notice, info, debug */
    char *decision_log;       /* DecisionLog: path, NULL = none */
    /* discovery */
    char *dns_servers;        /* DNSServers: "host[:port],..." ; NULL = system resolver */
    unsigned dns_timeout_ms;  /* DNSTimeout (ms): per try */
    unsigned dns_tries;       /* DNSTries */
    char *ca_file;            /* CAFile: PEM bundle; NULL = system store */
    unsigned https_connect_timeout_ms; /* HTTPSConnectTimeout (ms) */
    unsigned https_timeout_ms;         /* HTTPSTimeout (ms): whole fetch */
    unsigned policy_port;     /* PolicyPort: TESTS ONLY, 443 in production */
    bool allow_internal_addresses; /* AllowInternalAddresses: TESTS AND LABS ONLY */
    /* cache */
    char *cache_store;        /* CacheStore: sqlite:PATH, redis://HOST[:PORT][/DB] or none */
    unsigned cache_size;      /* CacheSize: entries */
    unsigned cache_store_max_entries; /* CacheStoreMaxEntries: records in the store */
    unsigned negative_ttl;    /* NegativeCacheTime (s) */
    unsigned recheck_interval; /* RecheckInterval (s) */
    unsigned retry_interval;  /* RetryInterval (s) */
    unsigned refresh_idle;    /* RefreshIdle (s) */
    /* engine bounds */
    unsigned max_discoveries; /* MaxDiscoveries */
    unsigned max_policy_fetches; /* MaxPolicyFetches */
    unsigned policy_fetch_slot_ms; /* PolicyFetchSlotTime (ms) */
    unsigned discovery_queue; /* DiscoveryQueue */
    /* milter */
    unsigned envelope_timeout_ms; /* EnvelopeTimeout (ms) */
    char *lookup_fail_action; /* LookupFailAction: accept | tempfail */
    char *tag_header;         /* TagHeader */
    char *route_header;       /* RouteHeader */
    bool split_mixed;         /* SplitMixed */
    bool early_tempfail;      /* EarlyTempfail */
    char *local_domains;      /* LocalDomains: comma list; NULL = none */
    char *site_tls_policy_file; /* SiteTLSPolicyFile (smap/smap_site.h); NULL = none */
    char *smtp_transports;    /* SMTPTransports: comma list of transport/mailer names */
    /* MX probes */
    bool probe_testing_mx;    /* ProbeTestingMX */
    bool probe_enforce_mx;    /* ProbeEnforceMX */
    unsigned probe_interval;  /* ProbeInterval (s) */
    unsigned probe_concurrency; /* ProbeConcurrency */
    unsigned probe_queue;     /* ProbeQueue */
    unsigned probe_timeout_ms; /* ProbeTimeout (ms) */
    char *probe_helo_name;    /* ProbeHeloName; NULL = host name */
    unsigned probe_port;      /* ProbePort: TESTS ONLY, 25 in production */
    /* mtasts-report */
    char *report_organization; /* ReportOrganization; NULL = host name */
    char *report_contact;     /* ReportContact; NULL = postmaster@submitter */
    char *report_from;        /* ReportFrom; NULL = the contact address */
    char *report_submitter;   /* ReportSubmitter; NULL = the contact's domain */
    char *report_host_id;     /* ReportHostID; NULL = host name */
    char *report_sending_ip;  /* ReportSendingIP: comma list; NULL = route lookup */
    bool report_no_policy;    /* ReportNoPolicy */
    char *report_spool;       /* ReportSpool: directory */
    char *report_sendmail;    /* ReportSendmail: shell command, message on stdin */
    unsigned report_retry_time; /* ReportRetryTime (s) */
} sts_config;

/* Fill cfg with the embedded defaults (allocates; free with sts_config_free).
 * Returns STS_OK or STS_NOMEM. */
sts_status sts_config_defaults(sts_config *cfg) STS_MUST_CHECK;

/* Parse configuration text on top of the current values of cfg.
 * `name` is used in error messages ("FILE:LINE: ...").  Blank lines and
 * lines whose first non-blank is '#' are ignored; a key is
 * case-insensitive; the value is the rest of the line with surrounding
 * whitespace removed.  An unknown key, a missing or bad value, or a key
 * given twice is STS_PERMFAIL with "name:line: reason" in why; cfg is
 * left unchanged on any failure. */
sts_status sts_config_parse(const char *text, size_t len, const char *name, sts_config *cfg,
                            sts_why *why) STS_MUST_CHECK;

/* Read and parse the file at path (at most 1 MiB).  A file that cannot be
 * opened is STS_PERMFAIL with the errno text. */
sts_status sts_config_load(const char *path, sts_config *cfg, sts_why *why) STS_MUST_CHECK;

/* Set one key from its text value exactly as a config line "key value"
 * would (same checks, same normalisation); for command-line overrides such
 * as mtasts-query --dns / --ca-file.  STS_PERMFAIL with "key: reason" in
 * why for an unknown key or a bad value, STS_NOMEM; cfg is unchanged on
 * failure. */
sts_status sts_config_set(sts_config *cfg, const char *key, const char *value,
                          sts_why *why) STS_MUST_CHECK;

void sts_config_free(sts_config *cfg);

/* Print the effective configuration, one "Key value" line per key in table
 * order, unset keys as "# Key (unset)". */
void sts_config_print(const sts_config *cfg, FILE *fp);

/* The name of the i-th key in table order, NULL past the end (for the
 * documentation test and for tools that list keys). */
const char *sts_config_key_name(size_t i);

#endif
