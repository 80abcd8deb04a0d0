/*
 * metrics.h - the metrics page (MetricsSocket): a small HTTP responder of
 * our own serving GET /metrics in the Prometheus text format, and the
 * families the milter and the socketmap count (mtasts-milter(8) METRICS).
 *
 * The responder is one thread with poll(): at most MT_METRICS_MAX_CONNS
 * connections (past that the oldest one still silent makes room), each
 * closed MT_METRICS_TIMEOUT_MS after it came or after its one answer; a
 * request line longer than 4 KiB is refused.
 * Nothing is read from the request but its first line.
 */
#ifndef MT_METRICS_H
#define MT_METRICS_H

#include "base/metrics.h"
#include "base/status.h"
#include "sts/outcome.h"

#define MT_METRICS_MAX_CONNS 16
#define MT_METRICS_TIMEOUT_MS 5000

/* mtasts_socketmap_requests_total{profile,reply},
 * mtasts_socketmap_reply_seconds{profile},
 * mtasts_milter_decisions_total{action},
 * mtasts_lookup_answers_total{result,source}. */
extern sts_metric_family mt_metric_smap_requests;
extern sts_metric_family mt_metric_smap_seconds;
extern sts_metric_family mt_metric_decisions;
extern sts_metric_family mt_metric_answers;

/* Count one socketmap reply (its payload) for profile after seconds. */
void mt_metrics_smap_reply(const char *profile, const char *reply, size_t len, double seconds);

/* Count one engine answer as the milter or the socketmap got it. */
void mt_metrics_answer(sts_result result, bool from_cache, bool pending);

typedef struct mt_metrics mt_metrics;

/* Bind spec (inet:PORT@HOST, inet6:..., unix:PATH) as the caller is now
 * (root, before the drop: a unix socket gets mode 0660 from the umask).
 * STS_PERMFAIL with the reason. */
sts_status mt_metrics_open(const char *spec, mt_metrics **out, sts_why *why) STS_MUST_CHECK;

/* Start serving (after the drop).  STS_PERMFAIL if the thread cannot start. */
sts_status mt_metrics_start(mt_metrics *m, sts_why *why) STS_MUST_CHECK;

/* Stop the thread, close everything (a unix socket file is removed). */
void mt_metrics_close(mt_metrics *m);

/* The page as it would be served now (malloc'd, NUL-terminated), or NULL
 * when out of memory: for tests and the responder. */
char *mt_metrics_page(void);

#endif
