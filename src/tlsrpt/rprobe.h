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
 *
 * The join streams (rlog.h): a session is given out JOIN_SKEW after its
 * attempt, but the daemon probes after it decides, so a probe record is
 * often logged after the sessions it applies to.  So sts_rlog_read_files
 * first reads each regular input file once for its probe records alone
 * (STS_RPROBE_AHEAD: the lines that hold "probe"; at the default
 * ProbeInterval four a day per MX host probed), then joins; the join checks those records again
 * (STS_RPROBE_CHECK: warnings, nothing kept twice).  Records from standard
 * input or a pipe are kept as the join reads them (STS_RPROBE_KEEP) and
 * apply only to sessions given out after them.  Memory: at most
 * RPROBE_MAX records with a verdict are kept (some 50 bytes each; more
 * are counted in dropped and stats.dropped, so mtasts-report warns and
 * fails), and only those that can reach a session in the report window
 * (sts_rlog_set_window widened by RPROBE_MAX_SKEW); probes without a
 * verdict (unreachable, refused) are counted, never kept.
 */
#ifndef STS_RPROBE_H
#define STS_RPROBE_H

#include <stdint.h>

#include <jansson.h>

#include "tlsrpt/rlog.h"

#define RPROBE_MAX 200000          /* probe records kept (beyond: counted in dropped) */
#define RPROBE_MAX_SKEW (24 * 3600) /* a probe this far from a session does not apply */

typedef struct sts_rprobe_stats {
    uint64_t records;      /* probe records read (each once) */
    uint64_t no_verdict;   /* of these, unreachable or refused: never applied */
    uint64_t far;          /* of these, too far from the report window to apply */
    uint64_t dropped;      /* of these, refused over RPROBE_MAX */
    uint64_t changed;      /* sessions turned into a failure by a probe */
    uint64_t outside;      /* sessions turned into validation-failure from the mx
                              patterns alone (no probe) */
    uint64_t confirmed;    /* sessions a probe of the same MX found no fault with */
} sts_rprobe_stats;

typedef struct sts_rprobe sts_rprobe;

typedef enum sts_rprobe_mode {
    STS_RPROBE_KEEP,  /* read by the join: warn when malformed, keep */
    STS_RPROBE_AHEAD, /* the pass ahead of the join: keep, no warnings (the join
                         warns when it reads the line) */
    STS_RPROBE_CHECK, /* read by the join, loaded ahead: warn when malformed, keep
                         nothing */
} sts_rprobe_mode;

/* One decision-log object o (a JSON object) with "record": "probe",
 * read as mode says.  Returns STS_RLOG_DECISION, or STS_RLOG_MALFORMED
 * (STS_RLOG_IGNORED in mode AHEAD). */
sts_rlog_line_kind sts_rlog_probe_line(sts_rlog *r, json_t *o, sts_cur line,
                                       sts_rprobe_mode mode);

/* The pass ahead, for one line of an input: a probe record is kept (mode
 * AHEAD); any other line costs a search for "probe". */
void sts_rlog_probe_ahead_line(sts_rlog *r, sts_cur line);

/* Apply the probes to session s, just joined, before it is given out
 * (see above); domain, policy_id and mx_host are its interned names
 * (policy_id NULL without a decision). */
void sts_rlog_probe_apply(sts_rlog *r, sts_rsession *s, const char *domain,
                          const char *policy_id, const char *mx_host);

/* Counters, all zero when no probe record was read. */
sts_rprobe_stats sts_rlog_probe_stats(const sts_rlog *r);

/* Free the probe records of r (from sts_rlog_free). */
void sts_rlog_probe_free(sts_rlog *r);

#endif
