/*
 * probe.h - what an MTA-STS enforce delivery to one MX host would meet
 * (RFC 8461 4.1 and 5, result types of RFC 8460 4.3), learnt by trying
 * it: TCP to port 25, the 220 greeting, EHLO, STARTTLS, a TLS handshake
 * with SNI = the MX name, the chain verified against the configured CA
 * store, the certificate's name checked against the MX host name (RFC
 * 6125 as RFC 8461 4.1 wants it: "*." covers exactly one whole left-most
 * label, no partial wildcards), then QUIT.  No mail is sent.
 *
 * For testing-mode domains the MTA delivers without checking names, so
 * its log cannot say what enforce would have refused; the probe can.  A
 * probe is not the delivery: another address of the MX, another moment,
 * another TLS stack may see otherwise.
 *
 * Blocking, with every wait bounded (connect, each read and write, the
 * handshake, and the whole probe) and every buffer capped.  Thread-safe:
 * each call is independent.  Like policy fetches, special-purpose
 * addresses (base/ipaddr.h) are refused unless allowed.
 */
#ifndef STS_PROBE_H
#define STS_PROBE_H

#include <stdbool.h>
#include <stddef.h>

#include "base/ipaddr.h"
#include "base/status.h"

typedef struct sts_probe_opts {
    const char *ca_file;         /* PEM bundle; NULL = system trust store */
    const char *helo_name;       /* our EHLO name; NULL or "" = "localhost" */
    unsigned port;               /* 0 = 25; anything else is for tests */
    unsigned connect_timeout_ms; /* per address; 0 = 10000 */
    unsigned io_timeout_ms;      /* each read, write, the handshake; 0 = 30000 */
    unsigned total_timeout_ms;   /* the whole probe; 0 = 60000 */
    bool allow_internal;         /* connect to special-purpose addresses too (labs, tests) */
    const int *cancel_fd;        /* when this descriptor is readable, give up at once
                                    (a daemon stopping); NULL = none */
} sts_probe_opts;

/* What the probe found.  The first five are RFC 8460 4.3 result types. */
typedef enum sts_probe_result {
    STS_PROBE_SUCCESS,             /* STARTTLS, trusted unexpired chain, name matches */
    STS_PROBE_STARTTLS_NOT_SUPPORTED, /* EHLO did not offer it, or it was refused */
    STS_PROBE_CERT_HOST_MISMATCH,  /* trusted chain, name does not match the MX */
    STS_PROBE_CERT_EXPIRED,        /* the chain is trusted but a certificate expired */
    STS_PROBE_CERT_NOT_TRUSTED,    /* the chain does not lead to a trusted root */
    STS_PROBE_VALIDATION_FAILURE,  /* TLS handshake failed, or the MX is not one the
                                      policy lists (no connection then) */
    STS_PROBE_UNREACHABLE,         /* no connection, no greeting, a 4xx/5xx greeting, a
                                      timeout or a broken reply before TLS: no verdict */
    STS_PROBE_REFUSED,             /* every address special-purpose and not allowed */
} sts_probe_result;

/* The RFC 8460 result type ("certificate-host-mismatch", ...), or
 * "success", "unreachable", "refused" for the others. */
const char *sts_probe_result_name(sts_probe_result r);

/* True for a result a report counts as a failed session. */
bool sts_probe_result_is_failure(sts_probe_result r);

/* The result named name[0..len), false for an unknown name. */
bool sts_probe_result_from_name(const char *name, size_t len, sts_probe_result *out);

typedef struct sts_probe_out {
    sts_probe_result result;
    char ip[STS_IPADDR_TEXT_MAX];  /* the address that answered (or was tried last) */
    char detail[STS_WHY_MAX];      /* what happened, for humans */
} sts_probe_out;

/* The certificate verdict from what OpenSSL reported (pure, unit-tested):
 * chain_errors: any verification error other than expiry; expired: a
 * certificate of the chain has expired (or is not yet valid); name_ok: the
 * leaf is valid for the MX name. */
sts_probe_result sts_probe_cert_verdict(bool chain_errors, bool expired, bool name_ok);

/* Probe MX host mx (a host name) at the given textual addresses, tried in
 * order until one gives an SMTP greeting.  Fills *out; returns STS_OK
 * when out->result holds a verdict (including UNREACHABLE and REFUSED),
 * STS_PERMFAIL for bad arguments, STS_NOMEM, or STS_TEMPFAIL for a local
 * failure (the CA file cannot be read). */
sts_status sts_probe_run(const sts_probe_opts *opts, const char *mx, const char *const *addrs,
                         size_t naddrs, sts_probe_out *out) STS_MUST_CHECK;

#endif
