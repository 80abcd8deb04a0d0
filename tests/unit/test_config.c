/*
 * test_config.c - the configuration file parser (src/config.c).
 *
 * Table-driven: each row is a named cmocka test.  Values are checked
 * through sts_config_print, the same text `mtasts-milter -n` shows, so
 * a row says "this line gives this effective value".
 */
#include <setjmp.h> /* cmocka needs these first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "unit_run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "conf/config.h"
#include "base/status.h"

/* ------------------------------------------------------------ helpers */

static char *print_cfg(const sts_config *cfg)
{
    char *text = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&text, &len);

    assert_non_null(fp);
    sts_config_print(cfg, fp);
    assert_int_equal(fclose(fp), 0);
    return text;
}

/* The printed value of key ("(unset)" for "# Key (unset)"), or NULL. */
static char *printed_value(const sts_config *cfg, const char *key)
{
    char *text = print_cfg(cfg);
    char *line, *save = NULL, *found = NULL;
    size_t klen = strlen(key);

    for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ' ') {
            found = strdup(line + klen + 1);
            break;
        }
        if (strncmp(line, "# ", 2) == 0 && strncmp(line + 2, key, klen) == 0 &&
            strcmp(line + 2 + klen, " (unset)") == 0) {
            found = strdup("(unset)");
            break;
        }
    }
    free(text);
    return found;
}

static void defaults(sts_config *cfg)
{
    sts_status st = sts_config_defaults(cfg);

    if (st != STS_OK)
        fail_msg("sts_config_defaults: got %s, want ok", sts_status_name(st));
}

static sts_status parse_text(sts_config *cfg, const char *text, size_t len, sts_why *why)
{
    why->text[0] = '\0';
    return sts_config_parse(text, len, "test.conf", cfg, why);
}

static void check_value(const sts_config *cfg, const char *key, const char *want)
{
    char *got = printed_value(cfg, key);

    if (got == NULL || strcmp(got, want) != 0) {
        fail_msg("%s: got '%s', want '%s'", key, got != NULL ? got : "(no line)", want);
    }
    free(got);
}

static void check_ok(sts_status st, const sts_why *why)
{
    if (st != STS_OK)
        fail_msg("got %s (%s), want ok", sts_status_name(st), why->text);
}

static void check_why(sts_status st, const sts_why *why, const char *want)
{
    if (st != STS_PERMFAIL)
        fail_msg("got %s (%s), want permfail with '%s'", sts_status_name(st), why->text, want);
    if (strstr(why->text, want) == NULL)
        fail_msg("reason: got '%s', want it to contain '%s'", why->text, want);
}

static char *ca_path; /* a readable PEM file with one certificate, made by main() */

/* A self-signed test certificate (P-256, valid for a century): what
 * CAFile must hold at least one of. */
static const char test_ca_pem[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBiTCCAS+gAwIBAgIUbIpCdIMlVoSYanMKsLRy5Uw2+7IwCgYIKoZIzj0EAwIw\n"
    "GTEXMBUGA1UEAwwOdGVzdC1jb25maWctY2EwIBcNMjYxMjA2MTAyNDE3WhgPMjEy\n"
    "NjExMTIxMDI0MTdaMBkxFzAVBgNVBAMMDnRlc3QtY29uZmlnLWNhMFkwEwYHKoZI\n"
    "zj0CAQYIKoZIzj0DAQcDQgAE2BeS1PFJkIqX4xozpNk7cSpMOawYjqGXs8v92XeA\n"
    "xi0AcgFtLHeTuyH1frqyID3UtbSsEZYjfatD4QOiqtYFoqNTMFEwHQYDVR0OBBYE\n"
    "FOiiTxUBw0oIGbc6lD+4oNwJCi8LMB8GA1UdIwQYMBaAFOiiTxUBw0oIGbc6lD+4\n"
    "oNwJCi8LMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIhAJL5/Gow\n"
    "5m9F5vQT2E+uFc13yaHIS46UOxsjwxgGQoZ8AiAJct6RoJynAhHZGD1CQg9JeONL\n"
    "xjp0wtHaQ+nOz2HihQ==\n"
    "-----END CERTIFICATE-----\n";

/* ------------------------------------------------------------ tables */

typedef struct value_case {
    const char *name;
    const char *text; /* config text parsed on top of the defaults */
    const char *key;
    const char *want; /* printed value, "(unset)" for none */
} value_case;

/* The embedded defaults. */
#define R1 "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"
#define R8 R1 "," R1 "," R1 "," R1 "," R1 "," R1 "," R1 "," R1

static const value_case default_cases[] = {
    { "default_socket", "", "Socket", "inet:8462@127.0.0.1" },
    { "default_socketmap_socket", "", "SocketmapSocket", "inet:8461@127.0.0.1" },
    { "default_user_id", "", "UserID", "mtasts" },
    { "default_log_level_info", "", "LogLevel", "info" },
    { "default_socket_mode_0660", "", "SocketMode", "0660" },
    { "default_socket_group_unset", "", "SocketGroup", "(unset)" },
    { "default_pid_file_unset", "", "PidFile", "(unset)" },
    { "default_syslog_facility", "", "SyslogFacility", "mail" },
    { "default_decision_log_unset", "", "DecisionLog", "(unset)" },
    { "default_dns_servers_unset_means_system_resolver", "", "DNSServers", "(unset)" },
    { "default_dns_timeout_2s", "", "DNSTimeout", "2000ms" },
    { "default_dns_tries", "", "DNSTries", "2" },
    { "default_max_discoveries", "", "MaxDiscoveries", "1024" },
    { "default_max_policy_fetches", "", "MaxPolicyFetches", "128" },
    { "default_policy_fetch_slot_time", "", "PolicyFetchSlotTime", "1000ms" },
    { "default_ca_file_unset_means_system_store", "", "CAFile", "(unset)" },
    { "default_https_connect_timeout", "", "HTTPSConnectTimeout", "10000ms" },
    { "default_https_timeout_one_minute", "", "HTTPSTimeout", "60000ms" },
    { "default_policy_port_443", "", "PolicyPort", "443" },
    { "default_internal_addresses_refused", "", "AllowInternalAddresses", "no" },
    { "default_cache_store_sqlite", "", "CacheStore", "sqlite:/var/lib/mtasts-milter/cache.db" },
    { "default_socketmap_max_connections", "", "SocketmapMaxConnections", "4096" },
    { "default_socketmap_max_per_peer_half_the_connections", "", "SocketmapMaxPerPeer", "2048" },
    { "default_socketmap_idle_timeout_above_postfix_ttl", "", "SocketmapIdleTimeout", "300s" },
    { "default_socketmap_request_timeout", "", "SocketmapRequestTimeout", "30s" },
};

/* Good values, one or more per key, and the value they give. */
static const value_case accept_cases[] = {
    /* LogLevel, SocketMode, SocketGroup */
    { "log_level_error", "LogLevel error", "LogLevel", "error" },
    { "log_level_case_insensitive", "LogLevel NOTICE", "LogLevel", "notice" },
    { "log_level_debug", "LogLevel Debug", "LogLevel", "debug" },
    { "socket_mode_0600", "SocketMode 0600", "SocketMode", "0600" },
    { "socket_mode_three_digits", "SocketMode 660", "SocketMode", "0660" },
    { "socket_mode_0666", "SocketMode 0666", "SocketMode", "0666" },
    { "socket_mode_zero", "SocketMode 0", "SocketMode", "0000" },
    { "socket_group_name", "SocketGroup postfix", "SocketGroup", "postfix" },
    /* Socket, SocketmapSocket */
    { "socket_inet_ipv4", "Socket inet:8891@127.0.0.1", "Socket", "inet:8891@127.0.0.1" },
    { "socket_inet_hostname", "Socket inet:10025@localhost", "Socket", "inet:10025@localhost" },
    { "socket_inet_port_1", "Socket inet:1@127.0.0.1", "Socket", "inet:1@127.0.0.1" },
    { "socket_inet_port_65535", "Socket inet:65535@127.0.0.1", "Socket", "inet:65535@127.0.0.1" },
    { "socket_inet6_brackets", "Socket inet6:8891@[::1]", "Socket", "inet6:8891@[::1]" },
    { "socket_inet6_bare", "Socket inet6:8891@::1", "Socket", "inet6:8891@::1" },
    { "socket_unix", "Socket unix:/run/mtasts/milter.sock", "Socket", "unix:/run/mtasts/milter.sock" },
    { "socket_local", "Socket local:/run/m.sock", "Socket", "local:/run/m.sock" },
    { "socket_scheme_lowercased", "Socket INET:25@MX.Example", "Socket", "inet:25@MX.Example" },
    { "socketmap_socket_inet", "SocketmapSocket inet:18461@127.0.0.1", "SocketmapSocket",
      "inet:18461@127.0.0.1" },
    { "socketmap_socket_unix", "SocketmapSocket unix:/run/sm.sock", "SocketmapSocket",
      "unix:/run/sm.sock" },
    /* Socketmap connection limits (issue 15) */
    { "socketmap_max_connections_min", "SocketmapMaxConnections 16", "SocketmapMaxConnections",
      "16" },
    { "socketmap_max_per_peer_zero_is_no_limit", "SocketmapMaxPerPeer 0", "SocketmapMaxPerPeer",
      "0" },
    { "socketmap_idle_timeout_minutes", "SocketmapIdleTimeout 10m", "SocketmapIdleTimeout",
      "600s" },
    { "socketmap_request_timeout_min", "SocketmapRequestTimeout 1", "SocketmapRequestTimeout",
      "1s" },
    /* UserID */
    { "user_id_user", "UserID postfix", "UserID", "postfix" },
    { "user_id_user_group", "UserID mtasts:mail", "UserID", "mtasts:mail" },
    { "user_id_underscore_dot_digits", "UserID _mta.sts-1", "UserID", "_mta.sts-1" },
    /* PidFile, DecisionLog */
    { "pid_file", "PidFile /run/mtasts-milter/mtasts-milter.pid", "PidFile",
      "/run/mtasts-milter/mtasts-milter.pid" },
    { "pid_file_hash_is_part_of_value", "PidFile /run/a#b.pid", "PidFile", "/run/a#b.pid" },
    { "decision_log", "DecisionLog /var/log/mtasts/decisions.json", "DecisionLog",
      "/var/log/mtasts/decisions.json" },
    { "decision_log_inner_spaces_kept", "DecisionLog /var/log/my logs/d.json", "DecisionLog",
      "/var/log/my logs/d.json" },
    /* SyslogFacility */
    { "syslog_facility_daemon", "SyslogFacility daemon", "SyslogFacility", "daemon" },
    { "syslog_facility_user", "SyslogFacility user", "SyslogFacility", "user" },
    { "syslog_facility_local0", "SyslogFacility local0", "SyslogFacility", "local0" },
    { "syslog_facility_local7_case_folded", "SyslogFacility LOCAL7", "SyslogFacility", "local7" },
    /* DNSServers */
    { "dns_servers_ipv4_gets_port_53", "DNSServers 127.0.0.1", "DNSServers", "127.0.0.1:53" },
    { "dns_servers_ipv4_port", "DNSServers 127.0.0.1:5353", "DNSServers", "127.0.0.1:5353" },
    { "dns_servers_ipv6_brackets_port", "DNSServers [::1]:5353", "DNSServers", "[::1]:5353" },
    { "dns_servers_32_longest_form_accepted",
      "DNSServers " R8 "," R8 "," R8 "," R8, "DNSServers", R8 "," R8 "," R8 "," R8 },
    { "dns_servers_ipv6_brackets_no_port", "DNSServers [::1]", "DNSServers", "[::1]:53" },
    { "dns_servers_ipv6_bare", "DNSServers ::1", "DNSServers", "[::1]:53" },
    { "dns_servers_ipv6_normalised", "DNSServers 2001:DB8:0:0::53", "DNSServers",
      "[2001:db8::53]:53" },
    { "dns_servers_list_with_spaces", "DNSServers 192.0.2.1 , [2001:db8::1]:54,192.0.2.2:65535",
      "DNSServers", "192.0.2.1:53,[2001:db8::1]:54,192.0.2.2:65535" },
    { "dns_servers_port_1", "DNSServers 192.0.2.1:1", "DNSServers", "192.0.2.1:1" },
    /* DNSTimeout and the other durations */
    { "dns_timeout_plain_ms", "DNSTimeout 1500", "DNSTimeout", "1500ms" },
    { "dns_timeout_ms_suffix", "DNSTimeout 1500ms", "DNSTimeout", "1500ms" },
    { "dns_timeout_s_suffix", "DNSTimeout 5s", "DNSTimeout", "5000ms" },
    { "dns_timeout_unit_case_insensitive", "DNSTimeout 5S", "DNSTimeout", "5000ms" },
    { "dns_timeout_MS_suffix", "DNSTimeout 250MS", "DNSTimeout", "250ms" },
    { "dns_timeout_leading_zeros", "DNSTimeout 0000300", "DNSTimeout", "300ms" },
    { "dns_timeout_min", "DNSTimeout 100", "DNSTimeout", "100ms" },
    { "dns_timeout_max", "DNSTimeout 60000", "DNSTimeout", "60000ms" },
    { "dns_timeout_max_in_seconds", "DNSTimeout 60s", "DNSTimeout", "60000ms" },
    { "dns_tries_min", "DNSTries 1", "DNSTries", "1" },
    { "dns_tries_max", "DNSTries 10", "DNSTries", "10" },
    { "https_connect_timeout_min", "HTTPSConnectTimeout 100ms", "HTTPSConnectTimeout", "100ms" },
    { "https_connect_timeout_max", "HTTPSConnectTimeout 120s", "HTTPSConnectTimeout",
      "120000ms" },
    { "https_timeout_min", "HTTPSTimeout 100", "HTTPSTimeout", "100ms" },
    { "https_timeout_max", "HTTPSTimeout 300000ms", "HTTPSTimeout", "300000ms" },
    { "policy_port_min", "PolicyPort 1", "PolicyPort", "1" },
    { "policy_port_max", "PolicyPort 65535", "PolicyPort", "65535" },
    { "policy_port_test_port", "PolicyPort 8443", "PolicyPort", "8443" },
    { "allow_internal_addresses_for_tests", "AllowInternalAddresses yes",
      "AllowInternalAddresses", "yes" },
    { "allow_internal_addresses_any_case", "allowinternaladdresses On",
      "AllowInternalAddresses", "yes" },
    { "allow_internal_addresses_off", "AllowInternalAddresses false",
      "AllowInternalAddresses", "no" },
    { "cache_size_min", "CacheSize 10", "CacheSize", "10" },
    { "cache_store_max_entries_min", "CacheStoreMaxEntries 100", "CacheStoreMaxEntries", "100" },
    { "envelope_timeout_zero_means_cache_only", "EnvelopeTimeout 0", "EnvelopeTimeout", "0ms" },
    { "fail_action_lowercased", "LookupFailAction TEMPFAIL", "LookupFailAction", "tempfail" },
    { "tag_header_custom", "TagHeader X-Policy", "TagHeader", "X-Policy" },
    { "split_mixed_off", "SplitMixed off", "SplitMixed", "no" },
    { "local_domains_list", "LocalDomains a.example, b.example", "LocalDomains",
      "a.example, b.example" },
    { "smtp_transports_custom", "SMTPTransports smtp, smtp-out, relay_2.x", "SMTPTransports",
      "smtp, smtp-out, relay_2.x" },
    { "smtp_transports_one", "SMTPTransports esmtp", "SMTPTransports", "esmtp" },
    { "negative_ttl_plain_seconds", "NegativeCacheTime 600", "NegativeCacheTime", "600s" },
    { "negative_ttl_minutes", "NegativeCacheTime 10m", "NegativeCacheTime", "600s" },
    { "recheck_hours", "RecheckInterval 2h", "RecheckInterval", "7200s" },
    { "retry_rfc_minimum", "RetryInterval 5m", "RetryInterval", "300s" },
    { "refresh_idle_days", "RefreshIdle 7d", "RefreshIdle", "604800s" },
    { "refresh_idle_max_one_year", "RefreshIdle 31557600s", "RefreshIdle", "31557600s" },
    { "max_discoveries_min", "MaxDiscoveries 1", "MaxDiscoveries", "1" },
    { "max_discoveries_max", "MaxDiscoveries 10000", "MaxDiscoveries", "10000" },
    { "max_policy_fetches_min", "MaxPolicyFetches 1", "MaxPolicyFetches", "1" },
    { "max_policy_fetches_max", "MaxPolicyFetches 10000", "MaxPolicyFetches", "10000" },
    { "max_policy_fetches_any_case", "maxpolicyfetches 2", "MaxPolicyFetches", "2" },
    { "policy_fetch_slot_time_min", "PolicyFetchSlotTime 100ms", "PolicyFetchSlotTime", "100ms" },
    { "policy_fetch_slot_time_seconds", "PolicyFetchSlotTime 2s", "PolicyFetchSlotTime",
      "2000ms" },
    { "discovery_queue_max", "DiscoveryQueue 1000000", "DiscoveryQueue", "1000000" },
    /* CacheStore */
    { "cache_store_sqlite", "CacheStore sqlite:/tmp/c.db", "CacheStore", "sqlite:/tmp/c.db" },
    { "cache_store_sqlite_scheme_lowercased", "CacheStore SQLite:/tmp/c.db", "CacheStore",
      "sqlite:/tmp/c.db" },
    { "cache_store_redis_host_port", "CacheStore redis://127.0.0.1:6379", "CacheStore",
      "redis://127.0.0.1:6379" },
    { "cache_store_redis_db", "CacheStore redis://cache.example:6380/2", "CacheStore",
      "redis://cache.example:6380/2" },
    { "cache_store_redis_no_port", "CacheStore redis://localhost", "CacheStore",
      "redis://localhost" },
    { "cache_store_redis_no_port_db", "CacheStore REDIS://localhost/3", "CacheStore",
      "redis://localhost/3" },
    { "cache_store_redis_ipv6", "CacheStore redis://[::1]:6379/0", "CacheStore",
      "redis://[::1]:6379/0" },
    { "cache_store_none", "CacheStore none", "CacheStore", "none" },
    { "cache_store_none_lowercased", "CacheStore NONE", "CacheStore", "none" },
    /* the line format */
    { "key_lower_case", "dnstimeout 3s", "DNSTimeout", "3000ms" },
    { "key_upper_case", "DNSTIMEOUT 3s", "DNSTimeout", "3000ms" },
    { "tab_separates_key_and_value", "DNSTries\t3", "DNSTries", "3" },
    { "leading_and_trailing_blanks", "  \t DNSTries   4 \t ", "DNSTries", "4" },
    { "crlf_line_ends", "# c\r\nDNSTries 5\r\n\r\n", "DNSTries", "5" },
    { "no_final_line_end", "PidFile /a\nDNSTries 6", "DNSTries", "6" },
    { "comments_and_blank_lines", "# comment\n\n   # indented comment\n\t\nDNSTries 7\n#\n",
      "DNSTries", "7" },
    { "commented_key_is_ignored", "#DNSTries 9\n", "DNSTries", "2" },
    { "empty_text_keeps_defaults", "", "DNSTries", "2" },
    { "high_bytes_in_path", "PidFile /run/\xc3\xa9t\xc3\xa9.pid", "PidFile",
      "/run/\xc3\xa9t\xc3\xa9.pid" },
    /* SocketmapProfile: the first printed line is the first profile */
    { "profile_default_first_is_postfix", "", "SocketmapProfile",
      "postfix kind=tls servername=yes strict_testing=no on_fail=notfound budget=3000ms "
      "match=exact tlsrpt=no dane=no site=yes" },
    { "profile_transport_canonical", "SocketmapProfile route enforce=mtasts: kind=TRANSPORT",
      "SocketmapProfile", "route kind=transport enforce=mtasts: testing= none= on_fail=notfound "
      "budget=3000ms" },
    { "profile_options_normalised", "socketmapprofile  p1\tSERVERNAME=off budget=1s dane=dane  ",
      "SocketmapProfile", "p1 kind=tls servername=no strict_testing=no on_fail=notfound "
      "budget=1000ms match=exact tlsrpt=no dane=dane site=yes" },
};

typedef struct error_case {
    const char *name;
    const char *text;
    size_t len; /* 0: strlen(text) */
    const char *want; /* part of the reason */
} error_case;

static const error_case reject_cases[] = {
    /* structure */
    { "unknown_key", "Foo bar", 0, "test.conf:1: unknown key 'Foo'" },
    { "unknown_key_line_number", "# c\n\nDNSTries 2\nFoo bar\n", 0,
      "test.conf:4: unknown key 'Foo'" },
    { "unknown_key_without_value", "Foo", 0, "test.conf:1: unknown key 'Foo'" },
    { "key_equals_value_is_unknown_key", "DNSTries=3", 0, "test.conf:1: unknown key 'DNSTries" },
    { "unknown_key_escaped", "F\x1b[0m 1", 0, "unknown key 'F\\x1b[0m'" },
    { "duplicate_key_names_both_lines", "DNSTries 2\n# c\ndnstries 3\n", 0,
      "test.conf:3: DNSTries given twice (first on line 1)" },
    { "missing_value", "DNSTries", 0, "test.conf:1: DNSTries: missing value" },
    /* SocketmapProfile: repeatable, once per map name */
    { "profile_same_name_twice", "SocketmapProfile a\n# x\nSocketmapProfile b\n"
      "SocketmapProfile a match=exact\n", 0,
      "test.conf:4: SocketmapProfile a given twice (first on line 1)" },
    { "profile_builtin_name_twice", "SocketmapProfile postfix\nSocketmapProfile postfix\n", 0,
      "test.conf:2: SocketmapProfile postfix given twice (first on line 1)" },
    { "profile_missing_value", "SocketmapProfile a\nSocketmapProfile \t", 0,
      "test.conf:2: SocketmapProfile: missing value" },
    { "profile_bad_option", "DNSTries 3\nSocketmapProfile a servername=maybe", 0,
      "test.conf:2: SocketmapProfile: servername: 'maybe' is not yes or no" },
    { "profile_unknown_option", "SocketmapProfile a match=exact colour=red", 0,
      "test.conf:1: SocketmapProfile: unknown option 'colour'" },
    { "profile_wrong_kind_option", "SocketmapProfile r kind=transport dane=dane", 0,
      "test.conf:1: SocketmapProfile: option dane does not apply to a transport profile" },
    { "profile_control_character", "SocketmapProfile a\x01", 0,
      "test.conf:1: SocketmapProfile: control character 0x01" },
    { "missing_value_blanks_only", "\nPidFile \t ", 0, "test.conf:2: PidFile: missing value" },
    { "control_character", "PidFile /run/a\x01.pid", 0,
      "test.conf:1: PidFile: control character 0x01" },
    { "lone_cr_inside_line", "PidFile /a\rb\n", 0, "control character 0x0d" },
    { "nul_byte", "DNSTries 2\0\n", 12, "test.conf:1: NUL byte" },
    { "nul_byte_in_comment", "# a\0b\n", 6, "test.conf:1: NUL byte" },
    { "error_after_good_lines_changes_nothing", "DNSTries 9\nDNSTimeout 5x\n", 0,
      "test.conf:2: DNSTimeout" },
    /* Socket */
    { "socket_port_0", "Socket inet:0@127.0.0.1", 0, "test.conf:1: Socket: 'inet:0@127.0.0.1' is not a socket" },
    { "socket_port_65536", "Socket inet:65536@127.0.0.1", 0, "is not a socket" },
    { "socket_port_not_number", "Socket inet:x@127.0.0.1", 0, "is not a socket" },
    { "socket_no_host", "Socket inet:8891", 0, "is not a socket" },
    { "socket_empty_host", "Socket inet:8891@", 0, "is not a socket" },
    { "socket_empty_port", "Socket inet:@127.0.0.1", 0, "is not a socket" },
    { "socket_ipv6_host_needs_inet6", "Socket inet:8891@::1", 0, "is not a socket" },
    { "socket_bad_ipv6", "Socket inet6:8891@[::g]", 0, "is not a socket" },
    { "socket_empty_path", "Socket unix:", 0, "is not a socket" },
    { "socket_unknown_scheme", "Socket tcp:25@127.0.0.1", 0, "is not a socket (examples:" },
    { "socket_no_scheme", "SocketmapSocket 127.0.0.1:8461", 0,
      "test.conf:1: SocketmapSocket: '127.0.0.1:8461' is not a socket" },
    /* UserID */
    { "user_id_leading_dash", "UserID -mtasts", 0, "UserID: '-mtasts' is not a user" },
    { "user_id_empty_group", "UserID mtasts:", 0, "is not a user" },
    { "user_id_empty_user", "UserID :mail", 0, "is not a user" },
    { "user_id_two_colons", "UserID a:b:c", 0, "is not a user" },
    { "user_id_space", "UserID mta sts", 0, "is not a user" },
    { "user_id_too_long",
      "UserID aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0,
      "is not a user" },
    /* SyslogFacility */
    { "syslog_facility_unknown", "SyslogFacility kern", 0,
      "SyslogFacility: 'kern' is not a syslog facility" },
    { "syslog_facility_local8", "SyslogFacility local8", 0, "is not a syslog facility" },
    /* DNSServers */
    { "dns_servers_host_name", "DNSServers dns.example", 0,
      "DNSServers: 'dns.example' is not an IPv4 or IPv6 address" },
    { "dns_servers_bad_ipv4", "DNSServers 256.1.1.1", 0, "'256.1.1.1' is not an IPv4" },
    { "dns_servers_ipv4_in_brackets", "DNSServers [192.0.2.1]:53", 0, "is not an IPv4 or IPv6" },
    { "dns_servers_port_0", "DNSServers 127.0.0.1:0", 0, "port '0' is not in 1..65535" },
    { "dns_servers_port_65536", "DNSServers 127.0.0.1:65536", 0,
      "port '65536' is not in 1..65535" },
    { "dns_servers_port_not_number", "DNSServers 127.0.0.1:dns", 0, "port 'dns' is not in" },
    { "dns_servers_empty_port", "DNSServers 127.0.0.1:", 0, "port '' is not in 1..65535" },
    { "dns_servers_ipv6_port_0", "DNSServers [::1]:0", 0, "port '0' is not in" },
    { "dns_servers_ipv6_empty_port", "DNSServers [::1]:", 0, "expected ':PORT' after ']'" },
    { "dns_servers_ipv6_junk_after_bracket", "DNSServers [::1]x", 0, "expected ':PORT'" },
    { "dns_servers_ipv6_no_close_bracket", "DNSServers [::1", 0, "missing ']'" },
    { "dns_servers_empty_element", "DNSServers 127.0.0.1,,::1", 0, "empty element" },
    { "dns_servers_trailing_comma", "DNSServers 127.0.0.1,", 0, "empty element" },
    { "dns_servers_leading_comma", "DNSServers , 127.0.0.1", 0, "empty element" },
    /* 33 entries: the printed list must stay within the line limit. */
    { "dns_servers_more_than_32", "DNSServers ::1,::1,::1,::1,::1,::1,::1,::1,::1,::1,::1,"
      "::1,::1,::1,::1,::1,::1,::1,::1,::1,::1,::1,::1,::1,::1,::1,::1,::1,::1,::1,::1,::1,::1",
      0, "more than 32 DNS servers" },
    /* durations */
    { "dns_timeout_not_duration", "DNSTimeout 12x", 0,
      "test.conf:1: DNSTimeout: '12x' is not a duration (examples: 1500, 1500ms, 2s)" },
    { "dns_timeout_fraction", "DNSTimeout 1.5s", 0, "'1.5s' is not a duration" },
    { "dns_timeout_space_before_unit", "DNSTimeout 5 s", 0, "'5 s' is not a duration" },
    { "dns_timeout_negative", "DNSTimeout -5", 0, "'-5' is not a duration" },
    { "dns_timeout_minutes_unit", "DNSTimeout 1m", 0, "is not a duration" },
    { "dns_timeout_unit_only", "DNSTimeout ms", 0, "is not a duration" },
    { "dns_timeout_below_min", "DNSTimeout 99", 0,
      "DNSTimeout: 99 is out of range 100ms..60000ms" },
    { "dns_timeout_above_max", "DNSTimeout 60001", 0, "60001 is out of range 100ms..60000ms" },
    { "dns_timeout_above_max_in_seconds", "DNSTimeout 61s", 0, "61s is out of range" },
    { "socketmap_max_connections_below_min", "SocketmapMaxConnections 15", 0,
      "SocketmapMaxConnections: 15 is out of range 16..100000" },
    { "socketmap_idle_timeout_zero", "SocketmapIdleTimeout 0", 0,
      "SocketmapIdleTimeout: 0 is out of range 1s..86400s" },
    { "socketmap_request_timeout_above_max", "SocketmapRequestTimeout 2h", 0,
      "SocketmapRequestTimeout: 2h is out of range 1s..3600s" },
    { "dns_timeout_zero", "DNSTimeout 0s", 0, "0s is out of range" },
    { "dns_timeout_huge_seconds_no_overflow", "DNSTimeout 18446744073709552s", 0,
      "is out of range 100ms..60000ms" },
    { "dns_timeout_more_digits_than_64_bits", "DNSTimeout 999999999999999999999999ms", 0,
      "is out of range" },
    { "https_connect_timeout_below_min", "HTTPSConnectTimeout 99ms", 0,
      "HTTPSConnectTimeout: 99ms is out of range 100ms..120000ms" },
    { "https_connect_timeout_above_max", "HTTPSConnectTimeout 120001", 0,
      "out of range 100ms..120000ms" },
    { "https_timeout_below_min", "HTTPSTimeout 99", 0,
      "HTTPSTimeout: 99 is out of range 100ms..300000ms" },
    { "https_timeout_above_max", "HTTPSTimeout 301s", 0, "out of range 100ms..300000ms" },
    { "fail_action_bad", "LookupFailAction reject", 0, "'reject' is not accept or tempfail" },
    { "tag_header_with_colon", "TagHeader X-A:B", 0, "is not a header field name" },
    { "tag_header_with_space", "TagHeader X A", 0, "is not a header field name" },
    { "envelope_timeout_above_max", "EnvelopeTimeout 31s", 0, "out of range 0ms..30000ms" },
    { "local_domains_literal", "LocalDomains [192.0.2.1]", 0, "is not a domain" },
    { "local_domains_empty_element", "LocalDomains a.example,,b.example", 0, "empty element" },
    { "smtp_transports_empty_element", "SMTPTransports smtp,,relay", 0,
      "empty element in the transport list" },
    { "smtp_transports_colon", "SMTPTransports smtp:[relay]", 0,
      "'smtp:[relay]' is not a transport name" },
    { "smtp_transports_space_inside", "SMTPTransports smtp out", 0,
      "'smtp out' is not a transport name" },
    { "smtp_transports_too_long", "SMTPTransports "
      "t2345678901234567890123456789012345678901234567890123456789012345", 0,
      "is not a transport name" },
    { "retry_below_rfc_minimum", "RetryInterval 59s", 0,
      "RetryInterval: 59s is out of range 60s..86400s" },
    { "negative_ttl_bad_unit", "NegativeCacheTime 5w", 0, "is not a duration in seconds" },
    { "negative_ttl_ms_not_allowed", "NegativeCacheTime 500ms", 0, "is not a duration in seconds" },
    { "refresh_idle_above_max", "RefreshIdle 366d", 0, "out of range 3600s..31557600s" },
    { "cache_size_below_min", "CacheSize 9", 0, "CacheSize: 9 is out of range 10..10000000" },
    { "max_discoveries_below_min", "MaxDiscoveries 0", 0,
      "MaxDiscoveries: 0 is out of range 1..10000" },
    { "max_discoveries_above_max", "MaxDiscoveries 10001", 0,
      "MaxDiscoveries: 10001 is out of range 1..10000" },
    { "policy_fetch_slot_time_below_min", "PolicyFetchSlotTime 99ms", 0,
      "PolicyFetchSlotTime: 99ms is out of range 100ms..600000ms" },
    { "policy_fetch_slot_time_above_max", "PolicyFetchSlotTime 601s", 0,
      "601s is out of range" },
    { "max_policy_fetches_below_min", "MaxPolicyFetches 0", 0,
      "MaxPolicyFetches: 0 is out of range 1..10000" },
    { "max_policy_fetches_above_max", "MaxPolicyFetches 10001", 0,
      "MaxPolicyFetches: 10001 is out of range 1..10000" },
    { "max_policy_fetches_not_a_number", "MaxPolicyFetches many", 0,
      "is not a number" },
    { "cache_store_max_entries_below_min", "CacheStoreMaxEntries 99", 0,
      "CacheStoreMaxEntries: 99 is out of range 100..1000000000" },
    /* numbers */
    { "dns_tries_below_min", "DNSTries 0", 0, "test.conf:1: DNSTries: 0 is out of range 1..10" },
    { "dns_tries_above_max", "DNSTries 11", 0, "DNSTries: 11 is out of range 1..10" },
    { "dns_tries_huge", "DNSTries 99999999999999999999999", 0,
      "99999999999999999999999 is out of range 1..10" },
    { "dns_tries_not_number", "DNSTries two", 0, "DNSTries: 'two' is not a number" },
    { "dns_tries_sign", "DNSTries +2", 0, "'+2' is not a number" },
    { "dns_tries_trailing_junk", "DNSTries 2x", 0, "'2x' is not a number" },
    { "dns_tries_hex", "DNSTries 0x2", 0, "'0x2' is not a number" },
    { "policy_port_0", "PolicyPort 0", 0, "PolicyPort: 0 is out of range 1..65535" },
    { "policy_port_65536", "PolicyPort 65536", 0, "PolicyPort: 65536 is out of range 1..65535" },
    { "allow_internal_addresses_not_bool", "AllowInternalAddresses loopback", 0,
      "test.conf:1: AllowInternalAddresses: 'loopback' is not yes or no" },
    { "allow_internal_addresses_empty", "AllowInternalAddresses", 0, "AllowInternalAddresses" },
    /* CacheStore */
    { "cache_store_sqlite_empty_path", "CacheStore sqlite:", 0,
      "CacheStore: 'sqlite:' has no file name" },
    { "cache_store_unknown_scheme", "CacheStore mysql://db", 0,
      "CacheStore: 'mysql://db' is not a cache store (examples:" },
    { "cache_store_bare_path", "CacheStore /var/lib/c.db", 0, "is not a cache store" },
    { "cache_store_none_with_suffix", "CacheStore nonexistent", 0, "is not a cache store" },
    { "cache_store_none_colon", "CacheStore none:", 0, "is not a cache store" },
    { "cache_store_redis_no_host", "CacheStore redis://", 0, "missing or bad host" },
    { "cache_store_redis_port_0", "CacheStore redis://h:0", 0, "port is not in 1..65535" },
    { "cache_store_redis_port_65536", "CacheStore redis://h:65536", 0, "port is not in" },
    { "cache_store_redis_empty_port", "CacheStore redis://h:/1", 0, "port is not in" },
    { "cache_store_redis_bad_db", "CacheStore redis://h:6379/x", 0, "database is not a number" },
    { "cache_store_redis_empty_db", "CacheStore redis://h:6379/", 0, "database is not a number" },
    { "cache_store_redis_db_too_big", "CacheStore redis://h/2147483648", 0,
      "database is not a number" },
    { "cache_store_redis_trailing_path", "CacheStore redis://h:6379/1/2", 0,
      "database is not a number" },
    { "cache_store_redis_space_in_host", "CacheStore redis://h x", 0, "is not a cache store" },
    { "cache_store_redis_bad_ipv6", "CacheStore redis://[::g]:6379", 0, "bad IPv6 address" },
    /* CAFile */
    { "ca_file_missing", "CAFile /nonexistent/ca.pem", 0,
      "test.conf:1: CAFile: cannot read '/nonexistent/ca.pem': No such file or directory" },
    { "ca_file_directory", "CAFile /", 0, "CAFile: '/' is not a regular file" },
    { "ca_file_without_certificate_names_the_file", "CAFile /etc/passwd", 0,
      "test.conf:1: CAFile: CA file /etc/passwd holds no usable PEM certificate" },
    { "ca_file_empty_names_the_file", "CAFile /dev/null", 0,
      "CAFile: '/dev/null' is not a regular file" },
    /* LogLevel */
    { "log_level_unknown", "LogLevel verbose", 0,
      "test.conf:1: LogLevel: 'verbose' is not a log level (error, warning, notice, info, debug)" },
    { "log_level_number", "LogLevel 7", 0, "LogLevel: '7' is not a log level" },
    /* SocketMode, SocketGroup */
    { "socket_mode_not_octal", "SocketMode 0680", 0,
      "test.conf:1: SocketMode: '0680' is not an octal file mode 0000..0777" },
    { "socket_mode_setuid_bits", "SocketMode 4660", 0,
      "SocketMode: '4660' is not an octal file mode" },
    { "socket_mode_too_long", "SocketMode 00660", 0, "SocketMode: '00660' is not an octal" },
    { "socket_mode_sign", "SocketMode +660", 0, "SocketMode: '+660' is not an octal" },
    { "socket_group_bad_name", "SocketGroup -wheel", 0,
      "SocketGroup: '-wheel' is not a group name" },
    { "socket_group_with_colon", "SocketGroup a:b", 0, "SocketGroup: 'a:b' is not a group name" },
};

/* ------------------------------------------------------------ runners */

static void run_value_case(void **state)
{
    const value_case *c = *state;
    sts_config cfg;
    sts_why why;

    defaults(&cfg);
    check_ok(parse_text(&cfg, c->text, strlen(c->text), &why), &why);
    check_value(&cfg, c->key, c->want);
    sts_config_free(&cfg);
}

static void run_error_case(void **state)
{
    const error_case *c = *state;
    sts_config cfg;
    sts_why why;
    char *before, *after;

    defaults(&cfg);
    before = print_cfg(&cfg);
    check_why(parse_text(&cfg, c->text, c->len != 0 ? c->len : strlen(c->text), &why), &why,
               c->want);
    /* A refused file changes nothing, not even the keys before the error. */
    after = print_cfg(&cfg);
    if (strcmp(before, after) != 0)
        fail_msg("config changed by a refused text: got\n%s\nwant\n%s", after, before);
    free(before);
    free(after);
    sts_config_free(&cfg);
}

/* ------------------------------------------------------------ single tests */

static void test_ca_file_readable_is_accepted(void **state)
{
    sts_config cfg;
    sts_why why;
    char text[512];

    (void)state;
    defaults(&cfg);
    (void)snprintf(text, sizeof(text), "CAFile %s\n", ca_path);
    check_ok(parse_text(&cfg, text, strlen(text), &why), &why);
    check_value(&cfg, "CAFile", ca_path);
    sts_config_free(&cfg);
}

static void test_line_of_4096_bytes_is_accepted(void **state)
{
    char *text = malloc(4096 + 3);
    sts_config cfg;
    sts_why why;

    (void)state;
    assert_non_null(text);
    memcpy(text, "PidFile /", 9);
    memset(text + 9, 'a', 4096 - 9);
    memcpy(text + 4096, "\r\n", 3); /* CR LF is not part of the line */
    defaults(&cfg);
    check_ok(parse_text(&cfg, text, 4096 + 2, &why), &why);
    assert_int_equal(strlen(cfg.pid_file), 4096 - 8);
    sts_config_free(&cfg);
    free(text);
}

static void test_line_of_4097_bytes_is_refused(void **state)
{
    char *text = malloc(4097 + 20);
    sts_config cfg;
    sts_why why;

    (void)state;
    assert_non_null(text);
    memcpy(text, "# x\n", 4);
    memcpy(text + 4, "PidFile /", 9);
    memset(text + 13, 'a', 4097 - 9);
    defaults(&cfg);
    check_why(parse_text(&cfg, text, 4 + 4097, &why), &why,
               "test.conf:2: line longer than 4096 bytes");
    sts_config_free(&cfg);
    free(text);
}

static void test_text_over_1mib_is_refused(void **state)
{
    size_t n = 1024 * 1024;
    char *text = malloc(n + 1);
    sts_config cfg;
    sts_why why;

    (void)state;
    assert_non_null(text);
    memset(text, '\n', n + 1);
    defaults(&cfg);
    check_ok(parse_text(&cfg, text, n, &why), &why); /* exactly 1 MiB is fine */
    check_why(parse_text(&cfg, text, n + 1, &why), &why, "test.conf: larger than 1048576 bytes");
    sts_config_free(&cfg);
    free(text);
}

static void test_later_text_overrides_earlier(void **state)
{
    sts_config cfg;
    sts_why why;

    (void)state;
    defaults(&cfg);
    check_ok(parse_text(&cfg, "PidFile /a\nDNSTries 3\n", 22, &why), &why);
    /* A second text may set a key again (it is a new file), no leak. */
    check_ok(parse_text(&cfg, "PidFile /b\n", 11, &why), &why);
    check_value(&cfg, "PidFile", "/b");
    check_value(&cfg, "DNSTries", "3");
    sts_config_free(&cfg);
}

static const char all_keys_text[] =
    "Socket unix:/run/m.sock\n"
    "SocketmapSocket inet6:18461@[::1]\n"
    "SocketMode 0600\n"
    "SocketGroup mail\n"
    "LogLevel notice\n"
    "MetricsSocket inet:9464@127.0.0.1\n"
    "SocketmapMaxConnections 512\n"
    "SocketmapMaxPerPeer 64\n"
    "SocketmapIdleTimeout 2m\n"
    "SocketmapRequestTimeout 10\n"
    "UserID postfix:mail\n"
    "PidFile /run/m.pid\n"
    "SyslogFacility LOCAL3\n"
    "DecisionLog /var/log/my dir/d.json\n"
    "DNSServers 127.0.0.1:5353, ::1, [2001:db8::1]:54\n"
    "DNSTimeout 3s\n"
    "DNSTries 5\n"
    "HTTPSConnectTimeout 1500\n"
    "HTTPSTimeout 90s\n"
    "PolicyPort 8443\n"
    "AllowInternalAddresses yes\n"
    "CacheStore REDIS://[::1]:6379/4\n"
    "CacheSize 5000\n"
    "NegativeCacheTime 15m\n"
    "RecheckInterval 1h\n"
    "RetryInterval 600\n"
    "RefreshIdle 7d\n"
    "MaxDiscoveries 64\n"
    "MaxPolicyFetches 16\n"
    "DiscoveryQueue 500\n"
    "EnvelopeTimeout 1500\n"
    "LookupFailAction TempFail\n"
    "TagHeader X-STS-Result\n"
    "RouteHeader X-STS-Class\n"
    "SplitMixed no\n"
    "SMTPTransports smtp, smtp-out\n"
    "LocalDomains example.org, B\xc3\xbc" "cher.example\n"
    "ProbeTestingMX no\n"
    "ProbeEnforceMX yes\n"
    "ProbeInterval 1h\n"
    "ProbeConcurrency 4\n"
    "ProbeQueue 50\n"
    "ProbeTimeout 20s\n"
    "ProbeHeloName mail.example.org\n"
    "ProbePort 2525\n"
    "ReportOrganization Example Mail Ops\n"
    "ReportContact tlsrpt@example.org\n"
    "ReportFrom reports@example.org\n"
    "ReportSubmitter example.org\n"
    "ReportHostID mta1.example.org\n"
    "ReportSendingIP 192.0.2.1, 2001:db8::25\n"
    "ReportNoPolicy no\n"
    "ReportSpool /var/spool/tlsrpt\n"
    "ReportSendmail /usr/lib/sendmail -t -i -f reports@example.org\n"
    "ReportRetryTime 12h\n";

static void round_trip(sts_config *cfg)
{
    sts_config again;
    sts_why why;
    char *first = print_cfg(cfg), *second;

    defaults(&again);
    check_ok(parse_text(&again, first, strlen(first), &why), &why);
    second = print_cfg(&again);
    if (strcmp(first, second) != 0)
        fail_msg("round trip: got\n%s\nwant\n%s", second, first);
    free(first);
    free(second);
    sts_config_free(&again);
}

static void test_print_round_trip_of_defaults(void **state)
{
    sts_config cfg;

    (void)state;
    defaults(&cfg);
    round_trip(&cfg);
    sts_config_free(&cfg);
}

static void test_print_round_trip_of_every_key_set(void **state)
{
    sts_config cfg;
    sts_why why;
    char text[4096];
    char *printed;

    (void)state;
    (void)snprintf(text, sizeof(text), "%sCAFile %s\nSiteTLSPolicyFile %s\n", all_keys_text,
                   ca_path, ca_path);
    defaults(&cfg);
    check_ok(parse_text(&cfg, text, strlen(text), &why), &why);
    printed = print_cfg(&cfg);
    if (strstr(printed, "# ") != NULL)
        fail_msg("every key set: got an unset key in\n%s", printed);
    free(printed);
    check_value(&cfg, "DNSServers", "127.0.0.1:5353,[::1]:53,[2001:db8::1]:54");
    check_value(&cfg, "SyslogFacility", "local3");
    check_value(&cfg, "CacheStore", "redis://[::1]:6379/4");
    round_trip(&cfg);
    sts_config_free(&cfg);
}

static void test_print_format(void **state)
{
    sts_config cfg;
    char *printed;
    const char *want =
        "Socket inet:8462@127.0.0.1\n"
        "SocketmapSocket inet:8461@127.0.0.1\n"
        "SocketMode 0660\n"
        "# SocketGroup (unset)\n"
        "# MetricsSocket (unset)\n"
        "SocketmapProfile postfix kind=tls servername=yes strict_testing=no on_fail=notfound "
        "budget=3000ms match=exact tlsrpt=no dane=no site=yes\n"
        "SocketmapProfile sts kind=tls servername=yes strict_testing=no on_fail=notfound "
        "budget=3000ms match=exact tlsrpt=no dane=no site=yes\n"
        "# SiteTLSPolicyFile (unset)\n"
        "SocketmapMaxConnections 4096\n"
        "SocketmapMaxPerPeer 2048\n"
        "SocketmapIdleTimeout 300s\n"
        "SocketmapRequestTimeout 30s\n"
        "UserID mtasts\n"
        "# PidFile (unset)\n"
        "SyslogFacility mail\n"
        "LogLevel info\n"
        "# DecisionLog (unset)\n"
        "# DNSServers (unset)\n"
        "DNSTimeout 2000ms\n"
        "DNSTries 2\n"
        "# CAFile (unset)\n"
        "HTTPSConnectTimeout 10000ms\n"
        "HTTPSTimeout 60000ms\n"
        "PolicyPort 443\n"
        "AllowInternalAddresses no\n"
        "CacheStore sqlite:/var/lib/mtasts-milter/cache.db\n"
        "CacheStoreMaxEntries 1000000\n"
        "CacheSize 100000\n"
        "NegativeCacheTime 3600s\n"
        "RecheckInterval 3600s\n"
        "RetryInterval 300s\n"
        "RefreshIdle 2592000s\n"
        "MaxDiscoveries 1024\n"
        "MaxPolicyFetches 128\n"
        "PolicyFetchSlotTime 1000ms\n"
        "DiscoveryQueue 10000\n"
        "EnvelopeTimeout 2000ms\n"
        "LookupFailAction accept\n"
        "TagHeader X-MTA-STS\n"
        "RouteHeader X-MTA-STS-Route\n"
        "SplitMixed yes\n"
        "EarlyTempfail no\n"
        "SMTPTransports smtp,relay,esmtp,smtp8,dsmtp\n"
        "# LocalDomains (unset)\n"
        "ProbeTestingMX yes\n"
        "ProbeEnforceMX no\n"
        "ProbeInterval 21600s\n"
        "ProbeConcurrency 2\n"
        "ProbeQueue 1024\n"
        "ProbeTimeout 60000ms\n"
        "# ProbeHeloName (unset)\n"
        "ProbePort 25\n"
        "# ReportOrganization (unset)\n"
        "# ReportContact (unset)\n"
        "# ReportFrom (unset)\n"
        "# ReportSubmitter (unset)\n"
        "# ReportHostID (unset)\n"
        "# ReportSendingIP (unset)\n"
        "ReportNoPolicy yes\n"
        "ReportSpool /var/lib/mtasts-milter/reports\n"
        "ReportSendmail /usr/sbin/sendmail -i -t\n"
        "ReportRetryTime 86400s\n";

    (void)state;
    defaults(&cfg);
    printed = print_cfg(&cfg);
    if (strcmp(printed, want) != 0)
        fail_msg("print: got\n%s\nwant\n%s", printed, want);
    free(printed);
    sts_config_free(&cfg);
}

static void test_struct_fields_match_keys(void **state)
{
    sts_config cfg;
    sts_why why;
    char text[4096];

    (void)state;
    (void)snprintf(text, sizeof(text), "%sCAFile %s\nSiteTLSPolicyFile %s\n", all_keys_text,
                   ca_path, ca_path);
    defaults(&cfg);
    check_ok(parse_text(&cfg, text, strlen(text), &why), &why);
    assert_string_equal(cfg.socket, "unix:/run/m.sock");
    assert_string_equal(cfg.socketmap_socket, "inet6:18461@[::1]");
    assert_int_equal(cfg.socket_mode, 0600);
    assert_string_equal(cfg.socket_group, "mail");
    assert_string_equal(cfg.log_level, "notice");
    assert_int_equal(cfg.socketmap_max_connections, 512);
    assert_int_equal(cfg.socketmap_max_per_peer, 64);
    assert_int_equal(cfg.socketmap_idle_timeout, 120);
    assert_int_equal(cfg.socketmap_request_timeout, 10);
    assert_string_equal(cfg.user_id, "postfix:mail");
    assert_string_equal(cfg.pid_file, "/run/m.pid");
    assert_string_equal(cfg.syslog_facility, "local3");
    assert_string_equal(cfg.decision_log, "/var/log/my dir/d.json");
    assert_string_equal(cfg.dns_servers, "127.0.0.1:5353,[::1]:53,[2001:db8::1]:54");
    assert_int_equal(cfg.dns_timeout_ms, 3000);
    assert_int_equal(cfg.dns_tries, 5);
    assert_string_equal(cfg.ca_file, ca_path);
    assert_int_equal(cfg.https_connect_timeout_ms, 1500);
    assert_int_equal(cfg.https_timeout_ms, 90000);
    assert_int_equal(cfg.policy_port, 8443);
    assert_string_equal(cfg.cache_store, "redis://[::1]:6379/4");
    sts_config_free(&cfg);
}

static void test_key_names(void **state)
{
    size_t n = 0;

    (void)state;
    assert_string_equal(sts_config_key_name(0), "Socket");
    while (sts_config_key_name(n) != NULL)
        n++;
    if (n < 14)
        fail_msg("key count: got %zu, want at least 14", n);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = i + 1; j < n; j++) {
            const char *a = sts_config_key_name(i), *b = sts_config_key_name(j);

            if (strcasecmp(a, b) == 0)
                fail_msg("key %zu and %zu: got '%s' twice, want unique names", i, j, a);
        }
    }
    assert_null(sts_config_key_name(n));
    assert_null(sts_config_key_name((size_t)-1));
}

static void test_every_key_is_printed(void **state)
{
    sts_config cfg;

    (void)state;
    defaults(&cfg);
    for (size_t i = 0; sts_config_key_name(i) != NULL; i++) {
        char *v = printed_value(&cfg, sts_config_key_name(i));

        if (v == NULL)
            fail_msg("print: got no line for %s, want one", sts_config_key_name(i));
        free(v);
    }
    sts_config_free(&cfg);
}

static void test_set_overrides_one_key(void **state)
{
    sts_config cfg;
    sts_why why = { "" };

    (void)state;
    defaults(&cfg);
    check_ok(sts_config_set(&cfg, "dnsservers", " 127.0.0.1:5353 ", &why), &why);
    check_value(&cfg, "DNSServers", "127.0.0.1:5353");
    check_ok(sts_config_set(&cfg, "DNSServers", "::1", &why), &why);
    check_value(&cfg, "DNSServers", "[::1]:53");
    check_ok(sts_config_set(&cfg, "CAFile", ca_path, &why), &why);
    check_value(&cfg, "CAFile", ca_path);

    check_why(sts_config_set(&cfg, "DNSServers", "dns.example", &why), &why,
               "DNSServers: 'dns.example' is not an IPv4 or IPv6 address");
    check_value(&cfg, "DNSServers", "[::1]:53");
    check_why(sts_config_set(&cfg, "CAFile", "/nonexistent.pem", &why), &why,
               "CAFile: cannot read '/nonexistent.pem'");
    check_value(&cfg, "CAFile", ca_path);
    check_why(sts_config_set(&cfg, "Nope", "1", &why), &why, "unknown key 'Nope'");
    check_why(sts_config_set(&cfg, "PidFile", "/a\nDNSTries 5", &why), &why,
               "PidFile: control character 0x0a");
    check_why(sts_config_set(&cfg, "PidFile", "", &why), &why, "PidFile: missing value");
    sts_config_free(&cfg);
}

static char *write_temp(const char *text, size_t len)
{
    const char *dir = getenv("TMPDIR");
    char *path;
    int fd;

    if (dir == NULL || *dir == '\0')
        dir = "/tmp";
    path = malloc(strlen(dir) + sizeof("/test_config.XXXXXX"));
    assert_non_null(path);
    (void)snprintf(path, strlen(dir) + sizeof("/test_config.XXXXXX"), "%s/test_config.XXXXXX",
                   dir);
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
    return path;
}

static void test_load_file(void **state)
{
    const char text[] = "# test\r\nDNSTries 4\r\nDNSTimeout 3s\r\n";
    char *path = write_temp(text, sizeof(text) - 1);
    sts_config cfg;
    sts_why why = { "" };

    (void)state;
    defaults(&cfg);
    check_ok(sts_config_load(path, &cfg, &why), &why);
    check_value(&cfg, "DNSTries", "4");
    check_value(&cfg, "DNSTimeout", "3000ms");
    sts_config_free(&cfg);
    (void)unlink(path);
    free(path);
}

static void test_load_error_names_file_and_line(void **state)
{
    const char text[] = "DNSTries 4\nBogus 1\n";
    char *path = write_temp(text, sizeof(text) - 1);
    sts_config cfg;
    sts_why why = { "" };
    char want[600];

    (void)state;
    defaults(&cfg);
    (void)snprintf(want, sizeof(want), "%s:2: unknown key 'Bogus'", path);
    check_why(sts_config_load(path, &cfg, &why), &why, want);
    check_value(&cfg, "DNSTries", "2");
    sts_config_free(&cfg);
    (void)unlink(path);
    free(path);
}

static void test_load_missing_file(void **state)
{
    sts_config cfg;
    sts_why why = { "" };

    (void)state;
    defaults(&cfg);
    check_why(sts_config_load("/nonexistent/mtasts.conf", &cfg, &why), &why,
               "cannot open /nonexistent/mtasts.conf: No such file or directory");
    sts_config_free(&cfg);
}

static void test_load_directory(void **state)
{
    sts_config cfg;
    sts_why why = { "" };

    (void)state;
    defaults(&cfg);
    check_why(sts_config_load("/", &cfg, &why), &why, "cannot read /: Is a directory");
    sts_config_free(&cfg);
}

static void test_load_file_over_1mib(void **state)
{
    size_t n = 1024 * 1024 + 1;
    char *text = malloc(n);
    char *path;
    sts_config cfg;
    sts_why why = { "" };
    char want[600];

    (void)state;
    assert_non_null(text);
    memset(text, '\n', n);
    path = write_temp(text, n);
    defaults(&cfg);
    (void)snprintf(want, sizeof(want), "%s: larger than 1048576 bytes", path);
    check_why(sts_config_load(path, &cfg, &why), &why, want);
    sts_config_free(&cfg);
    (void)unlink(path);
    free(path);
    free(text);
}

/* SocketmapProfile repeats, once per name: every profile is printed in
 * file order, then the built-ins not redefined; a later text (a reload)
 * replaces the whole list; more than 64 profiles are refused. */
static void test_socketmap_profiles(void **state)
{
    sts_config cfg;
    sts_why why = { "" };
    char *printed, text[64 * 40];
    size_t off = 0;
    const char *want =
        "SocketmapProfile route kind=transport enforce=mtasts-enforce: testing= none= "
        "on_fail=temp budget=3000ms\n"
        "SocketmapProfile postfix kind=tls servername=no strict_testing=no on_fail=notfound "
        "budget=3000ms match=exact tlsrpt=no dane=no site=yes\n"
        "SocketmapProfile sts kind=tls servername=yes strict_testing=no on_fail=notfound "
        "budget=3000ms match=exact tlsrpt=no dane=no site=yes\n";

    (void)state;
    defaults(&cfg);
    check_ok(parse_text(&cfg,
                        "SocketmapProfile route kind=transport enforce=mtasts-enforce: "
                        "on_fail=temp\nDNSTries 3\nSocketmapProfile postfix servername=no "
                        "match=exact\n",
                        strlen("SocketmapProfile route kind=transport enforce=mtasts-enforce: "
                               "on_fail=temp\nDNSTries 3\nSocketmapProfile postfix servername=no "
                               "match=exact\n"),
                        &why),
             &why);
    printed = print_cfg(&cfg);
    if (strstr(printed, want) == NULL)
        fail_msg("profiles: got\n%s\nwant it to contain\n%s", printed, want);
    free(printed);
    assert_non_null(strstr(cfg.socketmap_profiles, "route kind=transport"));
    round_trip(&cfg);

    /* A later file replaces the list: only its profile and the built-ins. */
    check_ok(parse_text(&cfg, "SocketmapProfile x tlsrpt=yes\n", 29, &why), &why);
    check_value(&cfg, "SocketmapProfile", "x kind=tls servername=yes strict_testing=no "
                "on_fail=notfound budget=3000ms match=exact tlsrpt=yes dane=no site=yes");
    assert_null(strstr(cfg.socketmap_profiles, "route"));
    /* A file without the key keeps it (like any other key). */
    check_ok(parse_text(&cfg, "DNSTries 4\n", 11, &why), &why);
    assert_non_null(strstr(cfg.socketmap_profiles, "x kind=tls"));
    /* A command-line style override sets one profile. */
    check_ok(sts_config_set(&cfg, "SocketmapProfile", "y dane=dane-only", &why), &why);
    assert_string_equal(cfg.socketmap_profiles, "y kind=tls servername=yes strict_testing=no "
                        "on_fail=notfound budget=3000ms match=exact tlsrpt=no dane=dane-only site=yes");
    sts_config_free(&cfg);

    /* 64 profiles are fine, a 65th is refused with its line. */
    for (int i = 0; i < 65; i++)
        off += (size_t)snprintf(text + off, sizeof(text) - off, "SocketmapProfile m%d\n", i);
    defaults(&cfg);
    check_why(parse_text(&cfg, text, off, &why), &why,
              "test.conf:65: SocketmapProfile: more than 64 profiles");
    check_ok(parse_text(&cfg, text, off - strlen("SocketmapProfile m64\n"), &why), &why);
    sts_config_free(&cfg);
}

static void test_free_is_idempotent(void **state)
{
    sts_config cfg;

    (void)state;
    defaults(&cfg);
    sts_config_free(&cfg);
    sts_config_free(&cfg);
    sts_config_free(NULL);
    assert_null(cfg.socket);
}

/* ------------------------------------------------------------ main */

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const struct CMUnitTest single_tests[] = {
    cmocka_unit_test(test_ca_file_readable_is_accepted),
    cmocka_unit_test(test_line_of_4096_bytes_is_accepted),
    cmocka_unit_test(test_line_of_4097_bytes_is_refused),
    cmocka_unit_test(test_text_over_1mib_is_refused),
    cmocka_unit_test(test_later_text_overrides_earlier),
    cmocka_unit_test(test_print_round_trip_of_defaults),
    cmocka_unit_test(test_print_round_trip_of_every_key_set),
    cmocka_unit_test(test_print_format),
    cmocka_unit_test(test_struct_fields_match_keys),
    cmocka_unit_test(test_key_names),
    cmocka_unit_test(test_every_key_is_printed),
    cmocka_unit_test(test_set_overrides_one_key),
    cmocka_unit_test(test_load_file),
    cmocka_unit_test(test_load_error_names_file_and_line),
    cmocka_unit_test(test_load_missing_file),
    cmocka_unit_test(test_load_directory),
    cmocka_unit_test(test_load_file_over_1mib),
    cmocka_unit_test(test_free_is_idempotent),
    cmocka_unit_test(test_socketmap_profiles),
};

int main(void)
{
    size_t n = COUNT(default_cases) + COUNT(accept_cases) + COUNT(reject_cases) +
               COUNT(single_tests);
    struct CMUnitTest *tests = calloc(n, sizeof(*tests));
    size_t i = 0;
    int failed;

    if (tests == NULL)
        return 1;
    ca_path = write_temp(test_ca_pem, sizeof(test_ca_pem) - 1);
    for (size_t j = 0; j < COUNT(default_cases); j++)
        tests[i++] = (struct CMUnitTest){ default_cases[j].name, run_value_case, NULL, NULL,
                                          (void *)&default_cases[j] };
    for (size_t j = 0; j < COUNT(accept_cases); j++)
        tests[i++] = (struct CMUnitTest){ accept_cases[j].name, run_value_case, NULL, NULL,
                                          (void *)&accept_cases[j] };
    for (size_t j = 0; j < COUNT(reject_cases); j++)
        tests[i++] = (struct CMUnitTest){ reject_cases[j].name, run_error_case, NULL, NULL,
                                          (void *)&reject_cases[j] };
    for (size_t j = 0; j < COUNT(single_tests); j++)
        tests[i++] = single_tests[j];

    failed = unit_run("config", tests, i, n, NULL, NULL);
    (void)unlink(ca_path);
    free(ca_path);
    free(tests);
    return failed;
}
