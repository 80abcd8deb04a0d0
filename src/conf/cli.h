/*
 * cli.h - what the command-line tools (mtasts-query, mtasts-report) share:
 * reading the configuration the way the daemon does, with command-line
 * options overriding single keys, and turning what went wrong into a
 * message on stderr and a sysexits(3) exit code.
 */
#ifndef STS_CLI_H
#define STS_CLI_H

#include <stddef.h>

#include "conf/config.h"

/* One command-line option that stands for a config key (--dns for
 * DNSServers, ...).  value NULL: the option was not given. */
typedef struct sts_cli_override {
    const char *key;
    const char *value;
} sts_cli_override;

/* Fill *cfg: the defaults, then the file at path (it must exist) or, with
 * path NULL, the daemon's STS_DEFAULT_CONFIG when it exists (so that the
 * tool sees what the daemon sees), then each given override, checked as
 * the file's line would be.  Returns 0, and the caller frees *cfg with
 * sts_config_free(); or, after a "PROG: reason" line on stderr, EX_OSERR
 * (out of memory), EX_CONFIG (the file) or EX_USAGE (an override), with
 * *cfg released. */
int sts_cli_config(const char *prog, const char *path, const sts_cli_override *ov, size_t nov,
                   sts_config *cfg) STS_MUST_CHECK;

#endif
