/*
 * rprobe.h - MX probe results (decision log "probe" records, written by
 * decision/dlog_probe.c) joined to the sessions of the log reader
 * (rlog.h), so that a report says what an enforce delivery would have met.
 *
 * A testing-mode domain's mail goes out at the MTA's opportunistic level:
 * its log says "Trusted" (chain checked, name not) or Sendmail verify=OK,
 * a success as far as it can tell.  For such a session (success, tls
 * TRUSTED, a policy in mode testing or enforce, the MX host known) the
 * probe of the same MX host under the same policy domain and policy id,
 * nearest in time and at most RPROBE_MAX_SKEW away, that gave a verdict
 * decides: a failure (certificate-host-mismatch, certificate-expired,
 * certificate-not-trusted, starttls-not-supported, validation-failure)
 * turns the session into that failure, with the probe's reason; success
 * leaves it.  A session the MTA found untrusted without logging why
 * (Postfix says no more at level "may") takes the probe's
 * certificate-expired or certificate-not-trusted and its reason.
 * Without such a probe, an MX host that none of the
 * decision's mx patterns matches (the list known whole) is a
 * validation-failure (RFC 8461 4.1) from the logs alone.  The MTA's log
 * wins wherever it says more: a session it verified ("Verified") or saw
 * fail is never changed.  A probe is not the delivery (another moment,
 * maybe another address, another TLS stack): mtasts-report(1) says so.
 */
#ifndef STS_RPROBE_H
#define STS_RPROBE_H

#include <stdint.h>

#include <jansson.h>

#include "tlsrpt/rlog.h"

#define RPROBE_MAX 200000          /* probe records kept (beyond: counted in dropped) */
#define RPROBE_MAX_SKEW (24 * 3600) /* a probe this far from a session does not apply */

typedef struct sts_rprobe_stats {
    uint64_t records;      /* probe records read and kept */
    uint64_t dropped;      /* over RPROBE_MAX */
    uint64_t changed;      /* sessions turned into a failure by a probe */
    uint64_t outside;      /* sessions turned into validation-failure from the mx
                              patterns alone (no probe) */
    uint64_t confirmed;    /* sessions a probe of the same MX found no fault with */
} sts_rprobe_stats;

typedef struct sts_rprobe sts_rprobe;

/* One decision-log object with a "record" member (o is a JSON object):
 * a probe record is kept; another kind is ignored (a newer writer).
 * Returns STS_RLOG_DECISION, STS_RLOG_IGNORED or STS_RLOG_MALFORMED. */
sts_rlog_line_kind sts_rlog_probe_line(sts_rlog *r, json_t *o, sts_cur line);

/* Apply the probes to the sessions s[0..n) (see above). */
void sts_rlog_probe_apply(sts_rlog *r, sts_rsession *s, size_t n);

/* Counters, all zero when no probe record was read. */
sts_rprobe_stats sts_rlog_probe_stats(const sts_rlog *r);

/* Free the probe records of r (from sts_rlog_free). */
void sts_rlog_probe_free(sts_rlog *r);

#endif
