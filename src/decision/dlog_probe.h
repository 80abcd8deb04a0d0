/*
 * dlog_probe.h - the decision log's "probe" records: what a probe of an
 * MX host found (engine/prober.h), one JSON object per line next to the
 * decisions:
 *   {"time": "...Z", "record": "probe", "domain": D, "policy_id": I,
 *    "mode": "testing"|"enforce", "mx": HOST, "in_policy": true|false,
 *    "ip": ADDR|null, "result_type": T, "reason": TEXT}
 * T is an RFC 8460 4.3 result type (starttls-not-supported,
 * certificate-host-mismatch, certificate-expired, certificate-not-trusted,
 * validation-failure) or success, unreachable, refused.  The line has no
 * queue_id, result or action, so a reader of decisions alone skips it.
 */
#ifndef STS_DLOG_PROBE_H
#define STS_DLOG_PROBE_H

#include "base/status.h"
#include "decision/dlog.h"
#include "engine/prober.h"

/* The line, without its newline; free(); NULL on OOM. */
char *sts_dlog_probe_format(const sts_probe_record *r);

sts_status sts_dlog_write_probe(sts_dlog *l, const sts_probe_record *r,
                                sts_why *why) STS_MUST_CHECK;

#endif
