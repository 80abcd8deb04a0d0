/*
 * test_log.c - the logging API's line formats (src/base/log.h): the
 * plain "ident: level: id event ..." line, the journal's sd-daemon
 * "<N>id event ..." line, the one table of level names, and how
 * $JOURNAL_STREAM is matched against a descriptor.  Table-driven; each
 * row is its own cmocka test named after the behaviour it pins.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "unit_run.h"
#include "unit_tmp.h"

#include "base/log.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------- line format */

struct format_case {
    const char *name;
    sts_log_style style;
    sts_log_level level;
    const char *id, *event, *msg;
    size_t size; /* buffer size; 0 = 512 */
    const char *want;
    size_t want_body; /* where the syslog part starts */
};

static const struct format_case format_cases[] = {
    { "plain_error", STS_LOG_STYLE_PLAIN, STS_LOG_ERR, "-", "startup", "engine: boom", 0,
      "prog: error: - startup engine: boom", 13 },
    { "plain_notice_with_queue_id", STS_LOG_STYLE_PLAIN, STS_LOG_NOTICE, "4QxY1", "decision",
      "domain=a.test", 0, "prog: notice: 4QxY1 decision domain=a.test", 14 },
    { "journal_error_is_3", STS_LOG_STYLE_JOURNAL, STS_LOG_ERR, "-", "startup", "x", 0,
      "<3>- startup x", 3 },
    { "journal_warning_is_4", STS_LOG_STYLE_JOURNAL, STS_LOG_WARNING, "-", "reload", "y", 0,
      "<4>- reload y", 3 },
    { "journal_notice_is_5", STS_LOG_STYLE_JOURNAL, STS_LOG_NOTICE, "-", "started", "v=1", 0,
      "<5>- started v=1", 3 },
    { "journal_info_is_6", STS_LOG_STYLE_JOURNAL, STS_LOG_INFO, "q1", "decision", "r", 0,
      "<6>q1 decision r", 3 },
    { "journal_debug_is_7", STS_LOG_STYLE_JOURNAL, STS_LOG_DEBUG, "-", "discovery", "d", 0,
      "<7>- discovery d", 3 },
    { "journal_level_out_of_range_is_error", STS_LOG_STYLE_JOURNAL, (sts_log_level)42, "-",
      "e", "m", 0, "<3>- e m", 3 },
    { "empty_id_and_event_are_dashes", STS_LOG_STYLE_JOURNAL, STS_LOG_INFO, "", "", "m", 0,
      "<6>- - m", 3 },
    { "empty_message_has_no_trailing_blank", STS_LOG_STYLE_JOURNAL, STS_LOG_INFO, "-", "ev", "",
      0, "<6>- ev", 3 },
    { "control_bytes_replaced", STS_LOG_STYLE_JOURNAL, STS_LOG_INFO, "-", "ev", "a\nb\rc\x7f",
      0, "<6>- ev a?b?c?", 3 },
    { "forged_prefix_in_message_stays_text", STS_LOG_STYLE_JOURNAL, STS_LOG_INFO, "-", "ev",
      "x\n<0>fake", 0, "<6>- ev x?<0>fake", 3 },
    { "long_line_cut_with_dots", STS_LOG_STYLE_JOURNAL, STS_LOG_INFO, "-", "ev",
      "abcdefghijklmnopqrstuvwxyz", 20, "<6>- ev abcdefgh...", 3 },
};

static void run_format(void **state)
{
    const struct format_case *c = *state;
    char line[512];
    size_t size = c->size != 0 ? c->size : sizeof(line);
    size_t body = 99;
    size_t len = sts_log_format(line, size, c->style, "prog", c->level, c->id, c->event, &body,
                                "%s", c->msg);

    if (strcmp(line, c->want) != 0 || len != strlen(c->want))
        fail_msg("case %s: got \"%s\" (len %zu), want \"%s\"", c->name, line, len, c->want);
    if (body != c->want_body)
        fail_msg("case %s: got body at %zu, want %zu", c->name, body, c->want_body);
}

/* ------------------------------------------------------- level names */

struct level_case {
    const char *name;
    const char *text;
    bool want_ok;
    sts_log_level want;
};

static const struct level_case level_cases[] = {
    { "level_error", "error", true, STS_LOG_ERR },
    { "level_warning", "warning", true, STS_LOG_WARNING },
    { "level_notice", "notice", true, STS_LOG_NOTICE },
    { "level_info", "info", true, STS_LOG_INFO },
    { "level_debug", "debug", true, STS_LOG_DEBUG },
    { "level_case_insensitive", "WaRnInG", true, STS_LOG_WARNING },
    { "level_err_abbreviation_refused", "err", false, STS_LOG_ERR },
    { "level_number_refused", "3", false, STS_LOG_ERR },
    { "level_empty_refused", "", false, STS_LOG_ERR },
    { "level_trailing_blank_refused", "info ", false, STS_LOG_ERR },
};

static void run_level(void **state)
{
    const struct level_case *c = *state;
    sts_log_level got = STS_LOG_ERR;
    bool ok = sts_log_level_parse(c->text, strlen(c->text), &got);

    if (ok != c->want_ok)
        fail_msg("case %s: got %s, want %s", c->name, ok ? "ok" : "refused",
                 c->want_ok ? "ok" : "refused");
    if (ok && got != c->want)
        fail_msg("case %s: got level %d, want %d", c->name, (int)got, (int)c->want);
    /* The one table: the name of the level parsed is the text itself. */
    if (ok && strcasecmp(sts_log_level_name(got), c->text) != 0)
        fail_msg("case %s: got name %s, want %s", c->name, sts_log_level_name(got), c->text);
}

/* ------------------------------------------------------- $JOURNAL_STREAM */

struct journal_case {
    const char *name;
    const char *env;   /* NULL: unset; "MATCH": the file's dev:ino; "INO+1": another inode */
    bool want;
};

static const struct journal_case journal_cases[] = {
    { "journal_unset_is_not_journal", NULL, false },
    { "journal_matching_dev_ino", "MATCH", true },
    { "journal_other_inode", "INO+1", false },
    { "journal_garbage", "journal", false },
    { "journal_missing_inode", "DEV:", false },
    { "journal_trailing_text", "MATCH+x", false },
};

static void run_journal(void **state)
{
    const struct journal_case *c = *state;
    char path[256], env[128];
    struct stat sb;
    int fd = -1;
    bool got;

    if (!unit_mkstemp(path, sizeof(path), "test_log") || (fd = open(path, O_RDONLY)) < 0)
        fail_msg("case %s: cannot make a temporary file", c->name);
    assert_int_equal(fstat(fd, &sb), 0);
    if (c->env == NULL)
        (void)unsetenv("JOURNAL_STREAM");
    else if (strcmp(c->env, "MATCH") == 0)
        (void)snprintf(env, sizeof(env), "%llu:%llu", (unsigned long long)sb.st_dev,
                       (unsigned long long)sb.st_ino);
    else if (strcmp(c->env, "MATCH+x") == 0)
        (void)snprintf(env, sizeof(env), "%llu:%llux", (unsigned long long)sb.st_dev,
                       (unsigned long long)sb.st_ino);
    else if (strcmp(c->env, "INO+1") == 0)
        (void)snprintf(env, sizeof(env), "%llu:%llu", (unsigned long long)sb.st_dev,
                       (unsigned long long)sb.st_ino + 1);
    else if (strcmp(c->env, "DEV:") == 0)
        (void)snprintf(env, sizeof(env), "%llu:", (unsigned long long)sb.st_dev);
    else
        (void)snprintf(env, sizeof(env), "%s", c->env);
    if (c->env != NULL)
        assert_int_equal(setenv("JOURNAL_STREAM", env, 1), 0);
    got = sts_log_journal_stream(fd);
    (void)close(fd);
    (void)unlink(path);
    (void)unsetenv("JOURNAL_STREAM");
    if (got != c->want)
        fail_msg("case %s: got %s, want %s", c->name, got ? "journal" : "not journal",
                 c->want ? "journal" : "not journal");
}

int main(void)
{
    struct CMUnitTest tests[ARRAY_LEN(format_cases) + ARRAY_LEN(level_cases) +
                            ARRAY_LEN(journal_cases)];
    size_t n = 0;

    for (size_t i = 0; i < ARRAY_LEN(format_cases); i++)
        tests[n++] = (struct CMUnitTest){ format_cases[i].name, run_format, NULL, NULL,
                                          (void *)&format_cases[i] };
    for (size_t i = 0; i < ARRAY_LEN(level_cases); i++)
        tests[n++] = (struct CMUnitTest){ level_cases[i].name, run_level, NULL, NULL,
                                          (void *)&level_cases[i] };
    for (size_t i = 0; i < ARRAY_LEN(journal_cases); i++)
        tests[n++] = (struct CMUnitTest){ journal_cases[i].name, run_journal, NULL, NULL,
                                          (void *)&journal_cases[i] };
    return UNIT_RUN("log", tests, n);
}
