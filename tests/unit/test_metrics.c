/*
 * test_metrics.c - the metrics registry and its Prometheus text
 * (src/base/metrics.c): counters with none, one and two labels, gauges,
 * histogram buckets (cumulative, +Inf equal to the count, sum), label
 * escaping, long label values cut, the "other" series once a family is
 * full, and the bare value lines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/metrics.h"
#include "unit_run.h"

static STS_METRIC_FAMILY(bare, "mtasts_t_bare_total", COUNTER, "A bare counter.", NULL, NULL);
static STS_METRIC_FAMILY(one, "mtasts_t_one_total", COUNTER, "One label.", "kind", NULL);
static STS_METRIC_FAMILY(two, "mtasts_t_two_total", COUNTER, "Two labels.", "a", "b");
static STS_METRIC_FAMILY(gauge, "mtasts_t_gauge", GAUGE, "A gauge.", "g", NULL);
static STS_METRIC_FAMILY(hist, "mtasts_t_seconds", HISTOGRAM, "A histogram.", "p", NULL);

/* The text of one family, rendered now (malloc'd). */
static char *render(sts_metric_family *f)
{
    sts_metric_family *fams[1] = { f };
    sts_buf b;

    sts_buf_init(&b, 1 << 20);
    assert_int_equal(sts_metrics_render(fams, 1, &b), STS_OK);
    return sts_buf_steal(&b);
}

static void expect_has(const char *text, const char *line)
{
    if (strstr(text, line) == NULL)
        fail_msg("got page:\n%s\nwant a line: %s", text, line);
}

static void test_bare_counter_shows_zero_then_counts(void **state)
{
    char *t;

    (void)state;
    sts_metric_reset(&bare);
    t = render(&bare);
    expect_has(t, "# HELP mtasts_t_bare_total A bare counter.\n"
                  "# TYPE mtasts_t_bare_total counter\nmtasts_t_bare_total 0\n");
    free(t);
    sts_metric_add(&bare, "ignored", "ignored", 3);
    sts_metric_add(&bare, NULL, NULL, 2);
    t = render(&bare);
    expect_has(t, "\nmtasts_t_bare_total 5\n");
    free(t);
}

static void test_labels_one_and_two(void **state)
{
    char *t;

    (void)state;
    sts_metric_reset(&one);
    sts_metric_reset(&two);
    sts_metric_add(&one, "x", NULL, 1);
    sts_metric_add(&one, "y", NULL, 4);
    sts_metric_add(&one, "x", NULL, 1);
    sts_metric_add(&two, "p", "q", 7);
    t = render(&one);
    expect_has(t, "mtasts_t_one_total{kind=\"x\"} 2\n");
    expect_has(t, "mtasts_t_one_total{kind=\"y\"} 4\n");
    free(t);
    t = render(&two);
    expect_has(t, "mtasts_t_two_total{a=\"p\",b=\"q\"} 7\n");
    free(t);
}

static void test_label_escaping_and_cut(void **state)
{
    char long_value[200], want[STS_METRIC_LABEL_MAX + 64];
    char *t;

    (void)state;
    sts_metric_reset(&one);
    sts_metric_add(&one, "a\"b\\c\nd", NULL, 1);
    memset(long_value, 'v', sizeof(long_value) - 1);
    long_value[sizeof(long_value) - 1] = '\0';
    sts_metric_add(&one, long_value, NULL, 1);
    sts_metric_add(&one, long_value, NULL, 1); /* the same cut series */
    t = render(&one);
    expect_has(t, "mtasts_t_one_total{kind=\"a\\\"b\\\\c\\nd\"} 1\n");
    (void)snprintf(want, sizeof(want), "mtasts_t_one_total{kind=\"%.*s\"} 2\n",
                   STS_METRIC_LABEL_MAX, long_value);
    expect_has(t, want);
    free(t);
}

static void test_full_family_counts_under_other(void **state)
{
    char v[16], *t;

    (void)state;
    sts_metric_reset(&one);
    for (int i = 0; i < STS_METRIC_MAX_SERIES + 20; i++) {
        (void)snprintf(v, sizeof(v), "v%d", i);
        sts_metric_add(&one, v, NULL, 1);
    }
    t = render(&one);
    expect_has(t, "mtasts_t_one_total{kind=\"v0\"} 1\n");
    (void)snprintf(v, sizeof(v), "v%d", STS_METRIC_MAX_SERIES - 2);
    if (strstr(t, v) == NULL)
        fail_msg("the last own series %s is missing:\n%s", v, t);
    /* 47 own series, then 21 values under "other". */
    expect_has(t, "mtasts_t_one_total{kind=\"other\"} 21\n");
    (void)snprintf(v, sizeof(v), "\"v%d\"", STS_METRIC_MAX_SERIES - 1);
    if (strstr(t, v) != NULL)
        fail_msg("got a series %s past the limit", v);
    free(t);
}

static void test_gauge_set(void **state)
{
    char *t;

    (void)state;
    sts_metric_reset(&gauge);
    sts_metric_set(&gauge, "g1", NULL, 10);
    sts_metric_set(&gauge, "g1", NULL, 3);
    t = render(&gauge);
    expect_has(t, "# TYPE mtasts_t_gauge gauge\n");
    expect_has(t, "mtasts_t_gauge{g=\"g1\"} 3\n");
    free(t);
}

static void test_histogram_cumulative(void **state)
{
    char *t;

    (void)state;
    sts_metric_reset(&hist);
    sts_metric_observe(&hist, "a", NULL, 0.0002); /* <= 0.0005 */
    sts_metric_observe(&hist, "a", NULL, 0.003);  /* <= 0.005 */
    sts_metric_observe(&hist, "a", NULL, 0.003);
    sts_metric_observe(&hist, "a", NULL, 30);     /* only +Inf */
    sts_metric_observe(&hist, "a", NULL, -1);     /* counted as 0 */
    t = render(&hist);
    expect_has(t, "# TYPE mtasts_t_seconds histogram\n");
    expect_has(t, "mtasts_t_seconds_bucket{p=\"a\",le=\"0.0005\"} 2\n");
    expect_has(t, "mtasts_t_seconds_bucket{p=\"a\",le=\"0.001\"} 2\n");
    expect_has(t, "mtasts_t_seconds_bucket{p=\"a\",le=\"0.005\"} 4\n");
    expect_has(t, "mtasts_t_seconds_bucket{p=\"a\",le=\"10\"} 4\n");
    expect_has(t, "mtasts_t_seconds_bucket{p=\"a\",le=\"+Inf\"} 5\n");
    expect_has(t, "mtasts_t_seconds_sum{p=\"a\"} 30.006200\n");
    expect_has(t, "mtasts_t_seconds_count{p=\"a\"} 5\n");
    free(t);
}

static void test_render_value_and_cap(void **state)
{
    sts_metric_family *fams[1] = { &one };
    sts_buf b;

    (void)state;
    sts_buf_init(&b, 1 << 10);
    assert_int_equal(sts_metrics_render_value(&b, "mtasts_t_v", "Help text.", STS_METRIC_GAUGE, 42),
                     STS_OK);
    assert_string_equal(b.data, "# HELP mtasts_t_v Help text.\n# TYPE mtasts_t_v gauge\n"
                                "mtasts_t_v 42\n");
    sts_buf_free(&b);
    /* A page over the buffer's cap is an error, not a cut page. */
    sts_metric_reset(&one);
    for (int i = 0; i < 40; i++) {
        char v[16];

        (void)snprintf(v, sizeof(v), "value%d", i);
        sts_metric_add(&one, v, NULL, 1);
    }
    sts_buf_init(&b, 256);
    assert_int_equal(sts_metrics_render(fams, 1, &b), STS_PERMFAIL);
    sts_buf_free(&b);
}

int main(void)
{
    static const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bare_counter_shows_zero_then_counts),
        cmocka_unit_test(test_labels_one_and_two),
        cmocka_unit_test(test_label_escaping_and_cut),
        cmocka_unit_test(test_full_family_counts_under_other),
        cmocka_unit_test(test_gauge_set),
        cmocka_unit_test(test_histogram_cumulative),
        cmocka_unit_test(test_render_value_and_cap),
    };

    return UNIT_RUN("metrics", tests, sizeof(tests) / sizeof(tests[0]));
}
