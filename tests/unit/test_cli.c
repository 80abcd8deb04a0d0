/*
 * test_cli.c - configuration for the command-line tools (src/cli.c): the
 * named file, the overrides in order, the exit code and the one stderr
 * line for each way it can fail.  Table-driven; a failure prints
 * "case NAME: got X, want Y".
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "unit_run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>
#include "unit_tmp.h"

#include "conf/cli.h"

#define FILE_MARK "@FILE@" /* replaced by the temporary config file's path */

typedef struct cli_case {
    const char *name;
    const char *text;     /* config file content; NULL: no file, path below */
    const char *path;     /* used when text == NULL */
    const char *dns;      /* --dns, NULL = not given */
    const char *ca_file;  /* --ca-file, NULL = not given */
    int want_rc;
    const char *want_dns; /* cfg.dns_servers when want_rc == 0 (NULL = unset) */
    const char *want_err; /* the whole stderr text; FILE_MARK stands for the path */
} cli_case;

static const cli_case cases[] = {
    { "file_read", "DNSServers 192.0.2.1\n", NULL, NULL, NULL, 0, "192.0.2.1:53", "" },
    { "override_wins_over_file", "DNSServers 192.0.2.1\n", NULL, "127.0.0.1:5353", NULL, 0,
      "127.0.0.1:5353", "" },
    { "override_not_given_is_skipped", "", NULL, NULL, NULL, 0, NULL, "" },
    { "named_file_must_exist", NULL, "/nonexistent/mtasts.conf", NULL, NULL, EX_CONFIG, NULL,
      "test-cli: cannot open /nonexistent/mtasts.conf: " },
    { "bad_file_line", "Bogus 1\n", NULL, NULL, NULL, EX_CONFIG, NULL,
      "test-cli: " FILE_MARK ":1: unknown key 'Bogus'\n" },
    { "bad_override_is_usage", "", NULL, "dns.example", NULL, EX_USAGE, NULL,
      "test-cli: DNSServers: 'dns.example' is not an IPv4 or IPv6 address\n" },
    { "second_override_checked", "", NULL, "127.0.0.1", "/nonexistent.pem", EX_USAGE, NULL,
      "test-cli: CAFile: cannot read '/nonexistent.pem'" },
};

static char *write_temp(const char *text)
{
    char *path = malloc(1024);
    FILE *f;

    assert_non_null(path);
    assert_true(unit_mkstemp(path, 1024, "test_cli"));
    f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    return path;
}

/* Run sts_cli_config with stderr captured into err. */
static int run_captured(const char *path, const sts_cli_override *ov, size_t nov,
                        sts_config *cfg, char *err, size_t errsz)
{
    FILE *cap = tmpfile();
    int saved, rc;
    size_t n;

    assert_non_null(cap);
    fflush(stderr);
    saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(cap), STDERR_FILENO) >= 0);
    rc = sts_cli_config("test-cli", path, ov, nov, cfg);
    fflush(stderr);
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    rewind(cap);
    n = fread(err, 1, errsz - 1, cap);
    err[n] = '\0';
    fclose(cap);
    return rc;
}

static void run_case(void **state)
{
    const cli_case *tc = *state;
    char *tmp = tc->text != NULL ? write_temp(tc->text) : NULL;
    const char *path = tmp != NULL ? tmp : tc->path;
    const sts_cli_override ov[] = { { "DNSServers", tc->dns }, { "CAFile", tc->ca_file } };
    char err[1024], want[1024];
    const char *mark = strstr(tc->want_err, FILE_MARK);
    sts_config cfg;
    int rc;

    if (mark != NULL)
        (void)snprintf(want, sizeof(want), "%.*s%s%s", (int)(mark - tc->want_err), tc->want_err,
                       path, mark + strlen(FILE_MARK));
    else
        (void)snprintf(want, sizeof(want), "%s", tc->want_err);
    rc = run_captured(path, ov, sizeof(ov) / sizeof(ov[0]), &cfg, err, sizeof(err));
    if (rc != tc->want_rc)
        fail_msg("case %s: got exit %d (%s), want %d", tc->name, rc, err, tc->want_rc);
    /* A reason that carries an errno text is matched up to it. */
    if (strncmp(err, want, strlen(want)) != 0 || (want[0] == '\0' && err[0] != '\0'))
        fail_msg("case %s: got stderr '%s', want '%s'", tc->name, err, want);
    if (rc == 0) {
        const char *got = cfg.dns_servers;

        if ((got == NULL) != (tc->want_dns == NULL) ||
            (got != NULL && strcmp(got, tc->want_dns) != 0))
            fail_msg("case %s: got DNSServers '%s', want '%s'", tc->name,
                     got != NULL ? got : "(unset)", tc->want_dns != NULL ? tc->want_dns : "(unset)");
        sts_config_free(&cfg);
    }
    if (tmp != NULL) {
        (void)unlink(tmp);
        free(tmp);
    }
}

#define N_CASES (sizeof(cases) / sizeof(cases[0]))

int main(void)
{
    struct CMUnitTest tests[N_CASES];

    for (size_t i = 0; i < N_CASES; i++) {
        tests[i] = (struct CMUnitTest)cmocka_unit_test_prestate(run_case, (void *)&cases[i]);
        tests[i].name = cases[i].name;
    }
    return UNIT_RUN("cli", tests, N_CASES);
}
