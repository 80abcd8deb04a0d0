/*
 * engine_metrics.h - the engine's part of the metrics page
 * (mtasts-milter(8) METRICS): discoveries by result and by what ended
 * them, their duration, and the engine's counters and gauges read at
 * render time.
 */
#ifndef STS_ENGINE_METRICS_H
#define STS_ENGINE_METRICS_H

#include "base/buf.h"
#include "base/metrics.h"
#include "engine/engine.h"
#include "sts/outcome.h"

/* mtasts_discoveries_total{result,failure} and
 * mtasts_discovery_seconds{result}: counted by the engine's loop thread. */
extern sts_metric_family sts_engine_metric_discoveries;
extern sts_metric_family sts_engine_metric_discovery_seconds;

/* Count one finished discovery that took seconds. */
void sts_engine_metrics_outcome(const sts_outcome *o, double seconds);

/* Append the engine's families and its counters and gauges (lookups,
 * cache hits and misses, entries, discoveries running and queued,
 * store errors) to out. */
sts_status sts_engine_metrics_render(sts_engine *e, sts_buf *out) STS_MUST_CHECK;

#endif
