/*
 * cli.c - configuration for the command-line tools (see cli.h).
 *
 * mtasts-query and mtasts-report read the daemon's file when no --config
 * is given, so that an admin's query runs with the resolvers, CA bundle
 * and cache the daemon uses; a file named with --config must exist.
 */
#include "conf/cli.h"

#include <stdio.h>
#include <sysexits.h>
#include <unistd.h>

int sts_cli_config(const char *prog, const char *path, const sts_cli_override *ov, size_t nov,
                   sts_config *cfg)
{
    sts_why why = { "" };
    int rc = EX_CONFIG;

    if (sts_config_defaults(cfg) != STS_OK) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return EX_OSERR;
    }
    if (path == NULL && access(STS_DEFAULT_CONFIG, F_OK) == 0)
        path = STS_DEFAULT_CONFIG;
    if (path != NULL && sts_config_load(path, cfg, &why) != STS_OK)
        goto done;
    for (size_t i = 0; i < nov; i++) {
        if (ov[i].value == NULL)
            continue;
        switch (sts_config_set(cfg, ov[i].key, ov[i].value, &why)) {
        case STS_OK:
            break;
        case STS_NOMEM:
            sts_why_set(&why, "out of memory");
            rc = EX_OSERR;
            goto done;
        default:
            rc = EX_USAGE;
            goto done;
        }
    }
    rc = 0;
done:
    if (rc != 0) {
        fprintf(stderr, "%s: %s\n", prog, why.text);
        sts_config_free(cfg);
    }
    return rc;
}
