/*
 * metrics.h - counters, gauges and histograms for the daemon's metrics
 * page (MetricsSocket, mtasts-milter(8) METRICS), rendered in the
 * Prometheus text exposition format 0.0.4.
 *
 * A family is one metric name with zero, one or two labels; each label
 * combination seen is one series.  Families are static objects owned by
 * the module that counts (declared with STS_METRIC_FAMILY), so counting
 * costs one lookup in a small array and one atomic add, and never
 * allocates.  Each family holds at most STS_METRIC_MAX_SERIES series:
 * label values past that are counted under the value "other", so a
 * family's size is bounded whatever the peers send (label values come
 * from our own tables or the configuration, never from the network).
 * Everything here is safe from any thread.
 */
#ifndef STS_METRICS_H
#define STS_METRICS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/status.h"

#define STS_METRIC_MAX_SERIES 48
#define STS_METRIC_LABEL_MAX 40   /* bytes of one label value; longer ones are cut */
#define STS_METRIC_BUCKETS 12     /* histogram bounds, seconds (see metrics.c), plus +Inf */

typedef enum sts_metric_type {
    STS_METRIC_COUNTER,
    STS_METRIC_GAUGE,
    STS_METRIC_HISTOGRAM,
} sts_metric_type;

typedef struct sts_metric_series {
    char label[2][STS_METRIC_LABEL_MAX + 1];
    atomic_uint_fast64_t value;                   /* counter, gauge */
    atomic_uint_fast64_t bucket[STS_METRIC_BUCKETS]; /* histogram: observations <= bound */
    atomic_uint_fast64_t count, sum_us;           /* histogram */
} sts_metric_series;

typedef struct sts_metric_family {
    const char *name; /* mtasts_... */
    const char *help;
    sts_metric_type type;
    const char *label_name[2]; /* NULL when unused; label_name[1] only with [0] */
    pthread_mutex_t mu;        /* adding a series */
    atomic_size_t n;           /* series published */
    sts_metric_series s[STS_METRIC_MAX_SERIES];
} sts_metric_family;

/* A family definition: STS_METRIC_FAMILY(fam, "mtasts_x_total", COUNTER,
 * "help", "label1", NULL). */
#define STS_METRIC_FAMILY(var, nm, ty, hlp, l0, l1)                                            \
    sts_metric_family var = { .name = (nm), .help = (hlp), .type = STS_METRIC_##ty,           \
                              .label_name = { (l0), (l1) }, .mu = PTHREAD_MUTEX_INITIALIZER }

/* Add n to the counter (or gauge) series l0,l1 (NULL for an unused label). */
void sts_metric_add(sts_metric_family *f, const char *l0, const char *l1, uint64_t n);

/* Set the gauge series l0,l1 to v. */
void sts_metric_set(sts_metric_family *f, const char *l0, const char *l1, uint64_t v);

/* Record one observation of seconds (>= 0; negative counts as 0). */
void sts_metric_observe(sts_metric_family *f, const char *l0, const char *l1, double seconds);

/* Append the families' text (HELP, TYPE, one line per series; a family
 * without series and without labels shows 0) to out.  STS_PERMFAIL when
 * out's cap is reached, STS_NOMEM. */
sts_status sts_metrics_render(sts_metric_family *const *fams, size_t n,
                              sts_buf *out) STS_MUST_CHECK;

/* One sample line with no family object behind it (values read at
 * render time, such as the engine's counters): HELP and TYPE lines and
 * "name value". */
sts_status sts_metrics_render_value(sts_buf *out, const char *name, const char *help,
                                    sts_metric_type type, uint64_t value) STS_MUST_CHECK;

/* Zero every series and forget their labels (tests). */
void sts_metric_reset(sts_metric_family *f);

#endif
