/*
 * metrics.c - the families of metrics.h and their Prometheus text form
 * (exposition format 0.0.4: "# HELP", "# TYPE", then name{labels} value;
 * histograms as _bucket{le=...} cumulative counts, _sum and _count).
 *
 * Publishing a series: its labels are written under the family's mutex,
 * then n is raised with release order; readers load n with acquire order
 * and only look at series below it, whose labels never change again.
 */
#include "base/metrics.h"

#include <stdio.h>
#include <string.h>

/* Upper bounds of the histogram buckets, seconds: from a cache hit
 * (sub-millisecond) to a discovery that waits for HTTPSTimeout. */
static const double bounds[STS_METRIC_BUCKETS - 1] = {
    0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10,
};

static void label_copy(char *dst, const char *src)
{
    size_t n = src != NULL ? strnlen(src, STS_METRIC_LABEL_MAX) : 0;

    if (n > 0)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

static bool label_eq(const char *have, const char *want)
{
    char cut[STS_METRIC_LABEL_MAX + 1];

    label_copy(cut, want);
    return strcmp(have, cut) == 0;
}

/* The series for l0,l1: found, added, or the family's "other" series. */
static sts_metric_series *series(sts_metric_family *f, const char *l0, const char *l1)
{
    size_t n = atomic_load_explicit(&f->n, memory_order_acquire);
    sts_metric_series *s;

    if (f->label_name[0] == NULL)
        l0 = NULL;
    if (f->label_name[1] == NULL)
        l1 = NULL;
    for (size_t i = 0; i < n; i++)
        if (label_eq(f->s[i].label[0], l0) && label_eq(f->s[i].label[1], l1))
            return &f->s[i];
    pthread_mutex_lock(&f->mu);
    n = atomic_load_explicit(&f->n, memory_order_relaxed);
    for (size_t i = 0; i < n; i++)
        if (label_eq(f->s[i].label[0], l0) && label_eq(f->s[i].label[1], l1)) {
            pthread_mutex_unlock(&f->mu);
            return &f->s[i];
        }
    if (n + 1 >= STS_METRIC_MAX_SERIES) {
        /* The last slot is "other" for every label of the family. */
        s = &f->s[STS_METRIC_MAX_SERIES - 1];
        if (n < STS_METRIC_MAX_SERIES) {
            label_copy(s->label[0], f->label_name[0] != NULL ? "other" : NULL);
            label_copy(s->label[1], f->label_name[1] != NULL ? "other" : NULL);
            atomic_store_explicit(&f->n, STS_METRIC_MAX_SERIES, memory_order_release);
        }
        pthread_mutex_unlock(&f->mu);
        return s;
    }
    s = &f->s[n];
    label_copy(s->label[0], l0);
    label_copy(s->label[1], l1);
    atomic_store_explicit(&f->n, n + 1, memory_order_release);
    pthread_mutex_unlock(&f->mu);
    return s;
}

void sts_metric_add(sts_metric_family *f, const char *l0, const char *l1, uint64_t n)
{
    atomic_fetch_add_explicit(&series(f, l0, l1)->value, n, memory_order_relaxed);
}

void sts_metric_set(sts_metric_family *f, const char *l0, const char *l1, uint64_t v)
{
    atomic_store_explicit(&series(f, l0, l1)->value, v, memory_order_relaxed);
}

void sts_metric_observe(sts_metric_family *f, const char *l0, const char *l1, double seconds)
{
    sts_metric_series *s = series(f, l0, l1);
    size_t b = 0;

    if (!(seconds > 0))
        seconds = 0;
    while (b < STS_METRIC_BUCKETS - 1 && seconds > bounds[b])
        b++;
    /* Stored per bucket; rendering makes them cumulative. */
    atomic_fetch_add_explicit(&s->bucket[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->sum_us,
                              seconds < 1e9 ? (uint_fast64_t)(seconds * 1e6 + 0.5) : 0,
                              memory_order_relaxed);
}

void sts_metric_reset(sts_metric_family *f)
{
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < STS_METRIC_MAX_SERIES; i++) {
        sts_metric_series *s = &f->s[i];

        s->label[0][0] = s->label[1][0] = '\0';
        atomic_store(&s->value, 0);
        atomic_store(&s->count, 0);
        atomic_store(&s->sum_us, 0);
        for (size_t b = 0; b < STS_METRIC_BUCKETS; b++)
            atomic_store(&s->bucket[b], 0);
    }
    atomic_store(&f->n, 0);
    pthread_mutex_unlock(&f->mu);
}

static const char *type_name(sts_metric_type t)
{
    return t == STS_METRIC_COUNTER ? "counter" : t == STS_METRIC_GAUGE ? "gauge" : "histogram";
}

/* A label value as the format wants it: \ " and newline escaped. */
static sts_status put_label(sts_buf *out, const char *name, const char *v)
{
    sts_status st = sts_buf_printf(out, "%s=\"", name);

    for (const char *p = v; st == STS_OK && *p != '\0'; p++) {
        if (*p == '\\' || *p == '"')
            st = sts_buf_printf(out, "\\%c", *p);
        else if (*p == '\n')
            st = sts_buf_append_str(out, "\\n");
        else
            st = sts_buf_append(out, p, 1);
    }
    return st == STS_OK ? sts_buf_append_str(out, "\"") : st;
}

/* "{l0="a",l1="b"" without the closing brace (extra labels may follow);
 * nothing at all for a family without labels. */
static sts_status put_labels(sts_buf *out, const sts_metric_family *f,
                             const sts_metric_series *s, bool *open)
{
    sts_status st = STS_OK;

    *open = false;
    for (int i = 0; i < 2 && st == STS_OK; i++) {
        if (f->label_name[i] == NULL)
            break;
        st = sts_buf_append_str(out, *open ? "," : "{");
        *open = true;
        if (st == STS_OK)
            st = put_label(out, f->label_name[i], s->label[i]);
    }
    return st;
}

static sts_status put_series(sts_buf *out, const sts_metric_family *f,
                             const sts_metric_series *s)
{
    uint64_t cum = 0;
    bool open;
    sts_status st;

    if (f->type != STS_METRIC_HISTOGRAM) {
        st = sts_buf_append_str(out, f->name);
        if (st == STS_OK)
            st = put_labels(out, f, s, &open);
        if (st == STS_OK)
            st = sts_buf_printf(out, "%s %llu\n", open ? "}" : "",
                                (unsigned long long)atomic_load(&s->value));
        return st;
    }
    st = STS_OK;
    for (size_t b = 0; b < STS_METRIC_BUCKETS && st == STS_OK; b++) {
        char le[32];

        cum += atomic_load(&s->bucket[b]);
        if (b < STS_METRIC_BUCKETS - 1)
            (void)snprintf(le, sizeof(le), "%g", bounds[b]);
        else
            (void)snprintf(le, sizeof(le), "+Inf");
        st = sts_buf_printf(out, "%s_bucket", f->name);
        if (st == STS_OK)
            st = put_labels(out, f, s, &open);
        if (st == STS_OK)
            st = sts_buf_printf(out, "%sle=\"%s\"} %llu\n", open ? "," : "{", le,
                                (unsigned long long)cum);
    }
    for (int k = 0; k < 2 && st == STS_OK; k++) {
        st = sts_buf_printf(out, "%s_%s", f->name, k == 0 ? "sum" : "count");
        if (st == STS_OK)
            st = put_labels(out, f, s, &open);
        if (st == STS_OK && k == 0)
            st = sts_buf_printf(out, "%s %.6f\n", open ? "}" : "",
                                (double)atomic_load(&s->sum_us) / 1e6);
        else if (st == STS_OK)
            st = sts_buf_printf(out, "%s %llu\n", open ? "}" : "",
                                (unsigned long long)atomic_load(&s->count));
    }
    return st;
}

sts_status sts_metrics_render(sts_metric_family *const *fams, size_t n, sts_buf *out)
{
    sts_status st = STS_OK;

    for (size_t i = 0; i < n && st == STS_OK; i++) {
        sts_metric_family *f = fams[i];
        size_t ns = atomic_load_explicit(&f->n, memory_order_acquire);

        st = sts_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name,
                            type_name(f->type));
        if (st == STS_OK && ns == 0 && f->label_name[0] == NULL)
            (void)series(f, NULL, NULL); /* a bare counter shows its 0 */
        ns = atomic_load_explicit(&f->n, memory_order_acquire);
        for (size_t k = 0; k < ns && st == STS_OK; k++)
            st = put_series(out, f, &f->s[k]);
    }
    return st;
}

sts_status sts_metrics_render_value(sts_buf *out, const char *name, const char *help,
                                    sts_metric_type type, uint64_t value)
{
    return sts_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name,
                          type_name(type), name, (unsigned long long)value);
}
