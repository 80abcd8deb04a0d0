/*
 * test_smtpreply.c - the SMTP reply reader (src/sts/smtpreply.h, RFC 5321
 * 4.2 and 4.5.3.1.5, RFC 3207 4).  Each row is a server's bytes fed whole
 * and, separately, one byte at a time: both must end the same way.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "unit_run.h"

#include "sts/smtpreply.h"

#define S(lit) lit, sizeof(lit) - 1

struct reply_case {
    const char *name;
    const char *in;
    size_t len;
    sts_smtp_rc want;
    unsigned code;      /* when DONE */
    bool starttls;      /* when DONE */
    size_t used;        /* when DONE: bytes of the reply */
    const char *text;   /* when DONE: first line's text, NULL = not checked */
};

#define LONG100 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
#define LONG1000 LONG100 LONG100 LONG100 LONG100 LONG100 LONG100 LONG100 LONG100 LONG100 LONG100
#define L10(x) x x x x x x x x x x
#define CONT10 L10("250-X\r\n")

static const struct reply_case cases[] = {
    { "greeting_one_line", S("220 mx.example ESMTP\r\n"), STS_SMTP_DONE, 220, false, 22,
      "mx.example ESMTP" },
    { "greeting_bare_lf", S("220 mx.example ESMTP\n"), STS_SMTP_DONE, 220, false, 21, NULL },
    { "code_alone", S("250\r\n"), STS_SMTP_DONE, 250, false, 5, "" },
    { "ehlo_offers_starttls",
      S("250-mx.example\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 8BITMIME\r\n"), STS_SMTP_DONE,
      250, true, 60, "mx.example" },
    { "ehlo_starttls_last_lowercase", S("250-mx.example\r\n250 starttls\r\n"), STS_SMTP_DONE,
      250, true, 30, NULL },
    { "ehlo_without_starttls", S("250-mx.example\r\n250-PIPELINING\r\n250 SIZE 1000\r\n"),
      STS_SMTP_DONE, 250, false, 47, NULL },
    { "starttls_in_first_line_is_the_greeting_text", S("250 STARTTLS\r\n"), STS_SMTP_DONE, 250,
      false, 14, NULL },
    { "starttls_as_prefix_of_another_keyword", S("250-mx\r\n250 STARTTLSX\r\n"),
      STS_SMTP_DONE, 250, false, 23, NULL },
    { "starttls_inside_text_is_not_offered", S("250-mx\r\n250 X-STARTTLS\r\n"), STS_SMTP_DONE,
      250, false, 24, NULL },
    { "bytes_after_reply_left_alone", S("220 ready\r\n250 injected\r\n"), STS_SMTP_DONE, 220,
      false, 11, NULL },
    { "incomplete_line_wants_more", S("220 mx.exam"), STS_SMTP_MORE, 0, false, 0, NULL },
    { "incomplete_multiline_wants_more", S("250-mx\r\n250-PIPELINING\r\n"), STS_SMTP_MORE, 0,
      false, 0, NULL },
    { "transient_greeting", S("421 4.3.2 try later\r\n"), STS_SMTP_DONE, 421, false, 21, NULL },
    { "permanent_greeting", S("554 no\r\n"), STS_SMTP_DONE, 554, false, 8, NULL },
    { "control_bytes_in_text_replaced", S("220 a\x01" "b\r\n"), STS_SMTP_DONE, 220, false, 9,
      "a?b" },
    { "line_over_1000_bytes", S("220 " LONG1000 "\r\n"), STS_SMTP_BAD, 0, false, 0, NULL },
    { "line_of_1000_bytes", S("220 " LONG100 LONG100 LONG100 LONG100 LONG100 LONG100
                                  LONG100 LONG100 LONG100 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                                  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n"),
      STS_SMTP_DONE, 220, false, 1002, NULL },
    { "no_code", S("hello\r\n"), STS_SMTP_BAD, 0, false, 0, NULL },
    { "short_code", S("22\r\n"), STS_SMTP_BAD, 0, false, 0, NULL },
    { "code_1xx", S("199 no\r\n"), STS_SMTP_BAD, 0, false, 0, NULL },
    { "code_6xx", S("600 no\r\n"), STS_SMTP_BAD, 0, false, 0, NULL },
    { "second_digit_6", S("260 no\r\n"), STS_SMTP_BAD, 0, false, 0, NULL },
    { "bad_separator", S("220_mx\r\n"), STS_SMTP_BAD, 0, false, 0, NULL },
    { "code_changes_midway", S("250-mx\r\n251 ok\r\n"), STS_SMTP_BAD, 0, false, 0, NULL },
    { "nul_in_line", S("220 a\0b\r\n"), STS_SMTP_BAD, 0, false, 0, NULL },
    { "cr_inside_line", S("220 a\rb\r\n"), STS_SMTP_BAD, 0, false, 0, NULL },
    { "reply_of_100_lines", S(L10(CONT10) "250 X\r\n"), STS_SMTP_BAD, 0, false, 0, NULL },
    { "reply_of_100_lines_exactly", S(L10("250-X\r\n250-X\r\n250-X\r\n250-X\r\n250-X\r\n"
                                          "250-X\r\n250-X\r\n250-X\r\n250-X\r\n")
                                      "250-X\r\n250-X\r\n250-X\r\n250-X\r\n250-X\r\n250-X\r\n"
                                      "250-X\r\n250-X\r\n250-X\r\n250 X\r\n"),
      STS_SMTP_DONE, 250, false, 700, NULL },
};

static void check(const struct reply_case *c, sts_smtp_rc rc, const sts_smtp_reply *r,
                  size_t used, const char *how)
{
    if (rc != c->want)
        fail_msg("%s (%s): got rc %d, want %d (%s)", c->name, how, (int)rc, (int)c->want, r->why);
    if (rc != STS_SMTP_DONE)
        return;
    if (r->code != c->code)
        fail_msg("%s (%s): got code %u, want %u", c->name, how, r->code, c->code);
    if (r->starttls != c->starttls)
        fail_msg("%s (%s): got starttls %d, want %d", c->name, how, r->starttls, c->starttls);
    if (used != c->used)
        fail_msg("%s (%s): got used %zu, want %zu", c->name, how, used, c->used);
    if (c->text != NULL && strcmp(r->text, c->text) != 0)
        fail_msg("%s (%s): got text \"%s\", want \"%s\"", c->name, how, r->text, c->text);
}

static void test_reply(void **state)
{
    const struct reply_case *c = *state;
    static sts_smtp_reply r;
    sts_smtp_rc rc = STS_SMTP_MORE;
    size_t used = 0, total = 0;

    sts_smtp_reply_init(&r);
    rc = sts_smtp_reply_feed(&r, c->in, c->len, &used);
    check(c, rc, &r, used, "whole");

    /* One byte at a time: the same end, at the same place. */
    sts_smtp_reply_init(&r);
    for (size_t i = 0; i < c->len; i++) {
        rc = sts_smtp_reply_feed(&r, c->in + i, 1, &used);
        total += used;
        if (rc != STS_SMTP_MORE)
            break;
    }
    check(c, rc, &r, total, "bytewise");
    if (rc == STS_SMTP_BAD) /* stays bad */
        assert_int_equal(sts_smtp_reply_feed(&r, "250 ok\r\n", 8, &used), STS_SMTP_BAD);
}

UNIT_MAIN_CASES("smtpreply", cases, test_reply)
