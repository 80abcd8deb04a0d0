/*
 * noop_milter.c - the baseline milter of `make bench` (tests/bench/
 * bench_postfix.py): a libmilter milter that registers every callback and
 * answers SMFIS_CONTINUE to each, the way a typical site milter is
 * written.  It has no negotiate callback, so libmilter asks the MTA for
 * every protocol stage (connect, HELO, MAIL, RCPT, DATA, each header, end
 * of headers, body chunks, end of message, unknown commands) with a reply
 * to each: nothing is negotiated away.  What mtasts-milter costs beyond
 * this is its own work; what it saves is the stages it switches off.
 *
 *   noop_milter -p inet:PORT@127.0.0.1 | -p unix:/path  [-T seconds]
 *               [-S step,...] [-H count]
 *
 * -T sets the libmilter read timeout (default 7210 s, libmilter's own).
 * Two switches tell the cost of the protocol apart from a milter's own
 * work (bench_postfix.py --only ...,noop-as-mtasts runs "-S mtasts -H 2");
 * both are off by default:
 * -S negotiates steps away, a comma list of connect, helo, data, headers,
 *    eoh, body, unknown and hdr-reply (no reply per header); "mtasts" is
 *    the set mtasts-milter asks for (milter/callbacks.c cb_negotiate:
 *    all of these but headers);
 * -H adds count headers at end of message (X-Bench-Noop: N), as a
 *    tagging milter does.
 * Runs in the foreground until SIGTERM/SIGINT (smfi_main handles both);
 * exit status 0 then, 1 on bad arguments or when the socket cannot be
 * opened.  No logging on the per-message path: a baseline must cost only
 * the protocol.
 *
 * The only file outside milter/ that includes libmilter/mfapi.h (a bench
 * program, not part of the daemon).
 */
#include "buildconf.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libmilter/mfapi.h>

static unsigned long noop_skip;   /* SMFIP_* steps negotiated away (-S) */
static unsigned noop_add_headers; /* headers added at end of message (-H) */

static sfsistat noop_connect(SMFICTX *ctx, char *host, _SOCK_ADDR *addr)
{
    (void)ctx;
    (void)host;
    (void)addr;
    return SMFIS_CONTINUE;
}

static sfsistat noop_helo(SMFICTX *ctx, char *name)
{
    (void)ctx;
    (void)name;
    return SMFIS_CONTINUE;
}

static sfsistat noop_envfrom(SMFICTX *ctx, char **argv)
{
    (void)ctx;
    (void)argv;
    return SMFIS_CONTINUE;
}

static sfsistat noop_envrcpt(SMFICTX *ctx, char **argv)
{
    (void)ctx;
    (void)argv;
    return SMFIS_CONTINUE;
}

static sfsistat noop_data(SMFICTX *ctx)
{
    (void)ctx;
    return SMFIS_CONTINUE;
}

static sfsistat noop_header(SMFICTX *ctx, char *name, char *value)
{
    (void)ctx;
    (void)name;
    (void)value;
    return SMFIS_CONTINUE;
}

static sfsistat noop_eoh(SMFICTX *ctx)
{
    (void)ctx;
    return SMFIS_CONTINUE;
}

static sfsistat noop_body(SMFICTX *ctx, unsigned char *chunk, size_t len)
{
    (void)ctx;
    (void)chunk;
    (void)len;
    return SMFIS_CONTINUE;
}

static sfsistat noop_eom(SMFICTX *ctx)
{
    char value[16];

    for (unsigned i = 0; i < noop_add_headers; i++) {
        (void)snprintf(value, sizeof(value), "%u", i + 1);
        (void)smfi_addheader(ctx, (char *)"X-Bench-Noop", value);
    }
    return SMFIS_CONTINUE;
}

static sfsistat noop_abort(SMFICTX *ctx)
{
    (void)ctx;
    return SMFIS_CONTINUE;
}

static sfsistat noop_close(SMFICTX *ctx)
{
    (void)ctx;
    return SMFIS_CONTINUE;
}

static sfsistat noop_unknown(SMFICTX *ctx, const char *cmd)
{
    (void)ctx;
    (void)cmd;
    return SMFIS_CONTINUE;
}

/* Only registered with -S: without it libmilter's default (every stage,
 * every reply) applies. */
static sfsistat noop_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1,
                               unsigned long f2, unsigned long f3, unsigned long *pf0,
                               unsigned long *pf1, unsigned long *pf2, unsigned long *pf3)
{
    (void)ctx;
    (void)f2;
    (void)f3;
    *pf0 = f0 & (noop_add_headers > 0 ? SMFIF_ADDHDRS : 0);
    *pf1 = f1 & noop_skip;
    *pf2 = 0;
    *pf3 = 0;
    return SMFIS_CONTINUE;
}

static struct smfiDesc noop_desc = {
    .xxfi_name = (char *)"noop-milter",
    .xxfi_version = SMFI_VERSION,
    .xxfi_flags = 0, /* no modification rights (-H: SMFIF_ADDHDRS) */
    .xxfi_connect = noop_connect,
    .xxfi_helo = noop_helo,
    .xxfi_envfrom = noop_envfrom,
    .xxfi_envrcpt = noop_envrcpt,
    .xxfi_header = noop_header,
    .xxfi_eoh = noop_eoh,
    .xxfi_body = noop_body,
    .xxfi_eom = noop_eom,
    .xxfi_abort = noop_abort,
    .xxfi_close = noop_close,
    .xxfi_unknown = noop_unknown,
    .xxfi_data = noop_data,
    .xxfi_negotiate = NULL, /* libmilter default: every stage, every reply (-S: noop_negotiate) */
};

static void usage(const char *prog)
{
    fprintf(stderr,
            "usage: %s -p inet:PORT@HOST|unix:PATH [-T read-timeout-seconds]\n"
            "       [-S connect,helo,data,headers,eoh,body,unknown,hdr-reply|mtasts]"
            " [-H count]\n",
            prog);
}

static const struct {
    const char *name;
    unsigned long flags;
} noop_steps[] = {
    { "connect", SMFIP_NOCONNECT },
    { "helo", SMFIP_NOHELO },
    { "data", SMFIP_NODATA },
    { "headers", SMFIP_NOHDRS },
    { "eoh", SMFIP_NOEOH },
    { "body", SMFIP_NOBODY },
    { "unknown", SMFIP_NOUNKNOWN },
    { "hdr-reply", SMFIP_NR_HDR },
    { "mtasts", SMFIP_NOCONNECT | SMFIP_NOHELO | SMFIP_NOBODY | SMFIP_NOEOH |
                    SMFIP_NOUNKNOWN | SMFIP_NODATA | SMFIP_NR_HDR },
};

/* A comma list of step names (-S) to SMFIP_* flags. */
static bool parse_steps(const char *list, unsigned long *out)
{
    const char *p = list;

    *out = 0;
    while (*p != '\0') {
        size_t n = strcspn(p, ",");
        bool found = false;

        for (size_t i = 0; i < sizeof(noop_steps) / sizeof(noop_steps[0]); i++)
            if (strlen(noop_steps[i].name) == n && strncmp(noop_steps[i].name, p, n) == 0) {
                *out |= noop_steps[i].flags;
                found = true;
            }
        if (!found)
            return false;
        p += n;
        if (*p == ',')
            p++;
    }
    return *out != 0;
}

/* A positive decimal number no larger than max, the whole string. */
static bool parse_number(const char *s, long max, int *out)
{
    char *end = NULL;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v <= 0 || v > max)
        return false;
    *out = (int)v;
    return true;
}

int main(int argc, char **argv)
{
    const char *sock = NULL;
    int timeout = 0;
    int headers = 0;
    int c;

    while ((c = getopt(argc, argv, "p:T:S:H:")) != -1) {
        switch (c) {
        case 'p':
            sock = optarg;
            break;
        case 'T':
            if (!parse_number(optarg, 86400, &timeout)) {
                fprintf(stderr, "%s: -T wants seconds, 1..86400\n", argv[0]);
                return 1;
            }
            break;
        case 'S':
            if (!parse_steps(optarg, &noop_skip)) {
                fprintf(stderr, "%s: -S: unknown step in %s\n", argv[0], optarg);
                return 1;
            }
            noop_desc.xxfi_negotiate = noop_negotiate;
            break;
        case 'H':
            if (!parse_number(optarg, 100, &headers)) {
                fprintf(stderr, "%s: -H wants a count, 1..100\n", argv[0]);
                return 1;
            }
            noop_add_headers = (unsigned)headers;
            noop_desc.xxfi_flags |= SMFIF_ADDHDRS;
            break;
        default:
            usage(argv[0]);
            return 1;
        }
    }
    if (sock == NULL || optind != argc) {
        usage(argv[0]);
        return 1;
    }
    if (smfi_setconn((char *)sock) != MI_SUCCESS) {
        fprintf(stderr, "%s: bad socket %s\n", argv[0], sock);
        return 1;
    }
    if (timeout > 0 && smfi_settimeout(timeout) != MI_SUCCESS) {
        fprintf(stderr, "%s: smfi_settimeout failed\n", argv[0]);
        return 1;
    }
    if (smfi_register(noop_desc) != MI_SUCCESS) {
        fprintf(stderr, "%s: smfi_register failed\n", argv[0]);
        return 1;
    }
    if (smfi_opensocket(true) != MI_SUCCESS) {
        fprintf(stderr, "%s: cannot open %s\n", argv[0], sock);
        return 1;
    }
    return smfi_main() == MI_SUCCESS ? 0 : 1;
}
