/*
 * test_probe.c - the probe's verdicts (src/sts/probe.h): which RFC 8460
 * 4.3 result type a certificate gets from what verification reported,
 * the names the decision log carries and which results a report counts
 * as failures.  The dialogue itself is tested against real servers
 * (tests/integration/test_probe.py).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "unit_run.h"

#include "sts/probe.h"

struct verdict_case {
    const char *name;
    bool chain_errors, expired, name_ok;
    sts_probe_result want;
};

static const struct verdict_case verdicts[] = {
    { "valid_certificate_is_success", false, false, true, STS_PROBE_SUCCESS },
    { "wrong_name_is_host_mismatch", false, false, false, STS_PROBE_CERT_HOST_MISMATCH },
    { "expired_is_expired", false, true, true, STS_PROBE_CERT_EXPIRED },
    { "expired_and_wrong_name_is_expired", false, true, false, STS_PROBE_CERT_EXPIRED },
    { "untrusted_is_not_trusted", true, false, true, STS_PROBE_CERT_NOT_TRUSTED },
    { "untrusted_and_expired_is_not_trusted", true, true, true, STS_PROBE_CERT_NOT_TRUSTED },
    { "untrusted_and_wrong_name_is_not_trusted", true, false, false,
      STS_PROBE_CERT_NOT_TRUSTED },
};

static void test_verdict(void **state)
{
    const struct verdict_case *c = *state;
    sts_probe_result got = sts_probe_cert_verdict(c->chain_errors, c->expired, c->name_ok);

    if (got != c->want)
        fail_msg("%s: got %s, want %s", c->name, sts_probe_result_name(got),
                 sts_probe_result_name(c->want));
}

struct name_case {
    const char *name;
    sts_probe_result r;
    const char *text;
    bool failure;
};

static const struct name_case names[] = {
    { "success", STS_PROBE_SUCCESS, "success", false },
    { "starttls", STS_PROBE_STARTTLS_NOT_SUPPORTED, "starttls-not-supported", true },
    { "mismatch", STS_PROBE_CERT_HOST_MISMATCH, "certificate-host-mismatch", true },
    { "expired", STS_PROBE_CERT_EXPIRED, "certificate-expired", true },
    { "untrusted", STS_PROBE_CERT_NOT_TRUSTED, "certificate-not-trusted", true },
    { "validation", STS_PROBE_VALIDATION_FAILURE, "validation-failure", true },
    { "unreachable_is_no_verdict", STS_PROBE_UNREACHABLE, "unreachable", false },
    { "refused_is_no_verdict", STS_PROBE_REFUSED, "refused", false },
};

static void test_name(void **state)
{
    const struct name_case *c = *state;
    sts_probe_result back;

    if (strcmp(sts_probe_result_name(c->r), c->text) != 0)
        fail_msg("%s: got %s, want %s", c->name, sts_probe_result_name(c->r), c->text);
    assert_true(sts_probe_result_from_name(c->text, strlen(c->text), &back));
    assert_int_equal(back, c->r);
    if (sts_probe_result_is_failure(c->r) != c->failure)
        fail_msg("%s: got failure %d, want %d", c->name, !c->failure, c->failure);
}

static void test_unknown_name(void **state)
{
    sts_probe_result r;

    (void)state;
    assert_false(sts_probe_result_from_name("certificate", 11, &r));
    assert_false(sts_probe_result_from_name("success ", 8, &r));
}

static void test_no_address_is_unreachable(void **state)
{
    sts_probe_out out;

    (void)state;
    assert_int_equal(sts_probe_run(NULL, "mx.example", NULL, 0, &out), STS_OK);
    assert_int_equal(out.result, STS_PROBE_UNREACHABLE);
}

static void test_bad_mx_name_refused(void **state)
{
    const char *addrs[] = { "192.0.2.1" };
    sts_probe_out out;

    (void)state;
    assert_int_equal(sts_probe_run(NULL, "bad name", addrs, 1, &out), STS_PERMFAIL);
}

static void test_special_address_refused_without_connection(void **state)
{
    const char *addrs[] = { "127.0.0.1", "10.0.0.1" };
    sts_probe_opts o = { .connect_timeout_ms = 100, .total_timeout_ms = 500 };
    sts_probe_out out;

    (void)state;
    assert_int_equal(sts_probe_run(&o, "mx.example", addrs, 2, &out), STS_OK);
    if (out.result != STS_PROBE_REFUSED)
        fail_msg("got %s (%s), want refused", sts_probe_result_name(out.result), out.detail);
}

/* A server that accepts the connection (the kernel does, from the
 * backlog) but never greets: without the stop descriptor the probe would
 * wait its 30 s read timeout. */
static void test_cancel_fd_stops_a_waiting_probe(void **state)
{
    struct sockaddr_in sa = { .sin_family = AF_INET };
    socklen_t sl = sizeof(sa);
    int ls = socket(AF_INET, SOCK_STREAM, 0), stop[2];
    const char *addrs[] = { "127.0.0.1" };
    sts_probe_opts o = { .allow_internal = true, .io_timeout_ms = 30000,
                         .total_timeout_ms = 60000 };
    sts_probe_out out;
    struct timespec t0, t1;

    (void)state;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(ls >= 0);
    assert_int_equal(bind(ls, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(ls, 4), 0);
    assert_int_equal(getsockname(ls, (struct sockaddr *)&sa, &sl), 0);
    o.port = ntohs(sa.sin_port);
    assert_int_equal(pipe(stop), 0);
    assert_int_equal(write(stop[1], "x", 1), 1);
    o.cancel_fd = &stop[0];
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(sts_probe_run(&o, "mx.example", addrs, 1, &out), STS_OK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (out.result != STS_PROBE_UNREACHABLE)
        fail_msg("got %s (%s), want unreachable", sts_probe_result_name(out.result), out.detail);
    if (t1.tv_sec - t0.tv_sec > 10)
        fail_msg("a cancelled probe waited %ld s", (long)(t1.tv_sec - t0.tv_sec));
    close(stop[0]);
    close(stop[1]);
    close(ls);
}

int main(void)
{
    struct CMUnitTest tests[sizeof(verdicts) / sizeof(verdicts[0]) +
                            sizeof(names) / sizeof(names[0]) + 5];
    size_t n = 0;

    for (size_t i = 0; i < sizeof(verdicts) / sizeof(verdicts[0]); i++) {
        tests[n] = (struct CMUnitTest)cmocka_unit_test_prestate(test_verdict, (void *)&verdicts[i]);
        tests[n++].name = verdicts[i].name;
    }
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        tests[n] = (struct CMUnitTest)cmocka_unit_test_prestate(test_name, (void *)&names[i]);
        tests[n++].name = names[i].name;
    }
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_unknown_name);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_no_address_is_unreachable);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_bad_mx_name_refused);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_special_address_refused_without_connection);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_cancel_fd_stops_a_waiting_probe);
    return UNIT_RUN("probe", tests, n);
}
