/*
 * probe_driver.c - run one MX probe (src/sts/probe.h) from the command
 * line, for tests/integration/test_probe.py:
 *
 *   probe_driver [--ca-file F] [--port N] [--timeout MS] [--io-timeout MS]
 *                [--no-internal] MX ADDR...
 *
 * Special-purpose addresses are allowed (the test servers are on
 * loopback) unless --no-internal.  Prints one line "RESULT IP DETAIL"
 * (IP "-" when none) and exits 0 when the probe gave a verdict, 1 on a
 * local failure, 64 on bad usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sts/probe.h"

static unsigned number(const char *s)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);

    if (*s == '\0' || *end != '\0' || v > 3600000) {
        fprintf(stderr, "probe_driver: bad number %s\n", s);
        exit(64);
    }
    return (unsigned)v;
}

int main(int argc, char **argv)
{
    sts_probe_opts o = { .allow_internal = true, .helo_name = "probe.test" };
    sts_probe_out out;
    sts_status st;
    int i = 1;

    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--no-internal") == 0)
            o.allow_internal = false;
        else if (i + 1 >= argc)
            break;
        else if (strcmp(argv[i], "--ca-file") == 0)
            o.ca_file = argv[++i];
        else if (strcmp(argv[i], "--port") == 0)
            o.port = number(argv[++i]);
        else if (strcmp(argv[i], "--timeout") == 0)
            o.total_timeout_ms = number(argv[++i]);
        else if (strcmp(argv[i], "--io-timeout") == 0)
            o.io_timeout_ms = number(argv[++i]);
        else
            break;
    }
    if (argc - i < 1) {
        fprintf(stderr, "usage: probe_driver [options] MX ADDR...\n");
        return 64;
    }
    st = sts_probe_run(&o, argv[i], (const char *const *)argv + i + 1, (size_t)(argc - i - 1),
                       &out);
    if (st != STS_OK) {
        fprintf(stderr, "probe_driver: %s: %s\n", sts_status_name(st), out.detail);
        return 1;
    }
    printf("%s %s %s\n", sts_probe_result_name(out.result), out.ip[0] != '\0' ? out.ip : "-",
           out.detail);
    return 0;
}
