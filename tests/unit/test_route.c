/*
 * test_route.c - which recipients are the milter's business, from the
 * MTA's {rcpt_mailer} and {rcpt_host} (src/decision/route.c).  The macro
 * values are those Postfix 3.7 and Sendmail 8.17 send for each set-up.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "unit_run.h"

#include "decision/route.h"

typedef struct route_case {
    const char *name;
    const char *domain;   /* normalised recipient domain */
    const char *mailer;   /* {rcpt_mailer}, NULL = not sent */
    const char *host;     /* {rcpt_host}, NULL = not sent */
    const char *transports; /* NULL = the default list */
    sts_route want;
    const char *want_in_reason; /* a fragment the reason must hold; NULL = empty reason */
} route_case;

static const route_case cases[] = {
    /* Postfix */
    { "postfix_smtp_to_domain", "d.example", "smtp", "d.example", NULL, STS_ROUTE_OWN_MX, NULL },
    { "postfix_relay_domains_relay_transport", "d.example", "relay", "d.example", NULL,
      STS_ROUTE_OWN_MX, NULL },
    { "postfix_virtual_mailbox_domain", "hosted.example", "virtual", "hosted.example", NULL,
      STS_ROUTE_ELSEWHERE, "transport virtual is not outbound SMTP" },
    { "postfix_mydestination_local", "hosted.example", "local", "mx.hosted.example", NULL,
      STS_ROUTE_ELSEWHERE, "transport local is not outbound SMTP" },
    { "postfix_lmtp_dovecot", "hosted.example", "lmtp", "unix:private/dovecot-lmtp", NULL,
      STS_ROUTE_ELSEWHERE, "transport lmtp" },
    { "postfix_pipe", "d.example", "mailman", "d.example", NULL, STS_ROUTE_ELSEWHERE,
      "transport mailman" },
    { "postfix_error_transport", "d.example", "error", "d.example", NULL, STS_ROUTE_ELSEWHERE,
      "transport error" },
    { "postfix_discard", "d.example", "discard", "d.example", NULL, STS_ROUTE_ELSEWHERE,
      "transport discard" },
    { "postfix_relayhost_bracketed", "d.example", "smtp", "[smarthost.example]", NULL,
      STS_ROUTE_ELSEWHERE, "next hop [smarthost.example] is a fixed host" },
    { "postfix_relayhost_submission_port", "d.example", "smtp", "[smarthost.example]:587", NULL,
      STS_ROUTE_ELSEWHERE, "a fixed host" },
    { "postfix_relayhost_with_mx_lookup", "d.example", "smtp", "smarthost.example", NULL,
      STS_ROUTE_ELSEWHERE, "another host than the recipient domain" },
    { "postfix_transport_map_internal_host", "d.example", "smtp", "[10.0.0.5]", NULL,
      STS_ROUTE_ELSEWHERE, "a fixed host" },
    { "postfix_transport_map_internal_name", "d.example", "smtp", "internal.d.example", NULL,
      STS_ROUTE_ELSEWHERE, "another host" },
    { "postfix_domain_bracketed_is_no_mx_lookup", "d.example", "smtp", "[d.example]", NULL,
      STS_ROUTE_ELSEWHERE, "no MX lookup" },
    { "postfix_nexthop_list", "d.example", "smtp", "d.example, backup.example", NULL,
      STS_ROUTE_ELSEWHERE, "a list of hosts" },
    { "postfix_domain_port_25", "d.example", "smtp", "d.example:25", NULL, STS_ROUTE_OWN_MX,
      NULL },
    { "postfix_domain_other_port", "d.example", "smtp", "d.example:2525", NULL,
      STS_ROUTE_ELSEWHERE, "not SMTP port 25" },
    { "postfix_domain_bad_port", "d.example", "smtp", "d.example:x", NULL, STS_ROUTE_ELSEWHERE,
      "not SMTP port 25" },
    { "nexthop_case_and_trailing_dot", "d.example", "smtp", "D.Example.", NULL, STS_ROUTE_OWN_MX,
      NULL },
    { "nexthop_u_label", "xn--bcher-kva.example", "smtp", "b\xc3\xbc" "cher.example", NULL,
      STS_ROUTE_OWN_MX, NULL },
    { "nexthop_surrounding_space", "d.example", "smtp", " d.example ", NULL, STS_ROUTE_OWN_MX,
      NULL },
    { "custom_transport_listed", "d.example", "smtp-out", "d.example", "smtp,smtp-out",
      STS_ROUTE_OWN_MX, NULL },
    { "custom_transport_not_listed", "d.example", "smtp-out", "d.example", NULL,
      STS_ROUTE_ELSEWHERE, "transport smtp-out" },
    { "transport_compare_ignores_case", "d.example", "SMTP", "d.example", NULL, STS_ROUTE_OWN_MX,
      NULL },
    { "transport_prefix_is_not_a_match", "d.example", "smt", "d.example", NULL,
      STS_ROUTE_ELSEWHERE, "transport smt" },
    { "transport_longer_is_not_a_match", "d.example", "smtpx", "d.example", NULL,
      STS_ROUTE_ELSEWHERE, "transport smtpx" },
    { "empty_transport_list", "d.example", "smtp", "d.example", "", STS_ROUTE_ELSEWHERE,
      "transport smtp" },
    { "empty_mailer", "d.example", "", "d.example", NULL, STS_ROUTE_ELSEWHERE, "(empty)" },
    { "mailer_text_is_quoted", "d.example", "a\"b\nc", "d.example", NULL, STS_ROUTE_ELSEWHERE,
      "transport a\\x22b\\x0ac" },
    { "host_text_is_quoted", "d.example", "smtp", "[x\"\x01]", NULL, STS_ROUTE_ELSEWHERE,
      "[x\\x22\\x01]" },
    /* Sendmail */
    { "sendmail_esmtp_mx", "d.example", "esmtp", "d.example", NULL, STS_ROUTE_OWN_MX, NULL },
    { "sendmail_smtp8", "d.example", "smtp8", "d.example", NULL, STS_ROUTE_OWN_MX, NULL },
    { "sendmail_dsmtp", "d.example", "dsmtp", "d.example", NULL, STS_ROUTE_OWN_MX, NULL },
    { "sendmail_local_mailer", "hosted.example", "local", "", NULL, STS_ROUTE_ELSEWHERE,
      "transport local" },
    { "sendmail_smart_host", "d.example", "relay", "[smart.example]", NULL, STS_ROUTE_ELSEWHERE,
      "[smart.example]" },
    { "sendmail_smart_host_unbracketed", "d.example", "relay", "smart.example", NULL,
      STS_ROUTE_ELSEWHERE, "another host" },
    { "smtp_without_host_macro", "d.example", "esmtp", NULL, NULL, STS_ROUTE_OWN_MX, NULL },
    { "smtp_with_empty_host", "d.example", "esmtp", "", NULL, STS_ROUTE_OWN_MX, NULL },
    /* No macros */
    { "no_mailer_macro_is_unknown", "d.example", NULL, "d.example", NULL, STS_ROUTE_UNKNOWN,
      NULL },
    { "no_macros_at_all", "d.example", NULL, NULL, NULL, STS_ROUTE_UNKNOWN, NULL },
};

#define N_CASES (sizeof(cases) / sizeof(cases[0]))

static const char *route_name(sts_route r)
{
    return r == STS_ROUTE_OWN_MX ? "own-mx" : r == STS_ROUTE_ELSEWHERE ? "elsewhere" : "unknown";
}

static void run_case(void **state)
{
    const route_case *tc = *state;
    char reason[256];
    sts_route got;

    memset(reason, 'x', sizeof(reason));
    got = sts_route_classify(tc->domain, tc->mailer, tc->host,
                             tc->transports != NULL ? tc->transports
                                                    : STS_ROUTE_DEFAULT_TRANSPORTS,
                             reason, sizeof(reason));
    if (got != tc->want)
        fail_msg("case %s: got %s, want %s (reason \"%s\")", tc->name, route_name(got),
                 route_name(tc->want), reason);
    if (tc->want_in_reason == NULL && reason[0] != '\0')
        fail_msg("case %s: got reason \"%s\", want none", tc->name, reason);
    if (tc->want_in_reason != NULL && strstr(reason, tc->want_in_reason) == NULL)
        fail_msg("case %s: got reason \"%s\", want it to hold \"%s\"", tc->name, reason,
                 tc->want_in_reason);
}

/* A reason longer than the buffer is cut, never overrun. */
static void test_small_reason_buffer(void **state)
{
    char buf[16 + 1];

    (void)state;
    buf[16] = 'Z';
    assert_int_equal(sts_route_classify("d.example", "local", "d.example",
                                        STS_ROUTE_DEFAULT_TRANSPORTS, buf, 16),
                     STS_ROUTE_ELSEWHERE);
    if (strlen(buf) != 15 || buf[16] != 'Z')
        fail_msg("got length %zu and guard '%c', want 15 and 'Z'", strlen(buf), buf[16]);
}

/* The default list holds exactly the transports the issue names. */
static void test_default_transports(void **state)
{
    (void)state;
    assert_string_equal(STS_ROUTE_DEFAULT_TRANSPORTS, "smtp,relay,esmtp,smtp8,dsmtp");
}

int main(void)
{
    struct CMUnitTest tests[N_CASES + 2];
    size_t n = 0;

    for (size_t i = 0; i < N_CASES; i++) {
        tests[n] = (struct CMUnitTest)cmocka_unit_test_prestate(run_case, (void *)&cases[i]);
        tests[n++].name = cases[i].name;
    }
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_small_reason_buffer);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_default_transports);
    return UNIT_RUN("route", tests, n);
}
