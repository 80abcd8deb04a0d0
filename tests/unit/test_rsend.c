/*
 * test_rsend.c - report delivery pieces that need no network fixture:
 * the RFC 8460 5.1 file name, gzip (RFC 1952) round trip through zlib,
 * report id rules, the RFC 8460 5.3 MIME message (structure checked
 * line by line, attachment base64-decoded and compared), the submission
 * command runner (exit status, output in the reason, timeout, a command
 * that does not read its input), and the spool's state machine with a
 * resolver that cannot answer (queued, duplicate, deferred with backoff,
 * not due, given up after ReportRetryTime, remembered, corrupt file moved
 * aside).  The network paths are covered by tests/integration/test_rsend.py.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "unit_tmp.h"

#include <openssl/evp.h>
#include <zlib.h>

#include "base/buf.h"
#include "tlsrpt/rmail.h"
#include "tlsrpt/rsend.h"

#define REPORT_JSON "{\"organization-name\":\"Example\",\"report-id\":\"x\"}"

/* ------------------------------------------------------------ file name */

static void test_filename(void **state)
{
    sts_rsend_opts o = { 0 };
    sts_rsend_report r = { 0 };
    char out[600];
    sts_status st;

    (void)state;
    o.submitter = "mail.sender.example.com";
    r.policy_domain = "example.net";
    r.report_id = "2016-08-01_example.net_mail.sender.example.com";
    r.begin = 1470013207;
    r.end = 1470186007;
    st = sts_rsend_filename(&o, &r, out, sizeof(out));
    if (st != STS_OK || strcmp(out, "mail.sender.example.com!example.net!1470013207!1470186007.json.gz") != 0)
        fail_msg("case filename_no_uid: got %s '%s'", sts_status_name(st), out);
    r.report_id = "001";
    st = sts_rsend_filename(&o, &r, out, sizeof(out));
    if (st != STS_OK ||
        strcmp(out, "mail.sender.example.com!example.net!1470013207!1470186007!001.json.gz") != 0)
        fail_msg("case filename_rfc_example_uid: got %s '%s'", sts_status_name(st), out);
    st = sts_rsend_filename(&o, &r, out, 20);
    if (st != STS_PERMFAIL)
        fail_msg("case filename_too_small: got %s, want permfail", sts_status_name(st));
    o.submitter = "bad!submitter";
    st = sts_rsend_filename(&o, &r, out, sizeof(out));
    if (st != STS_PERMFAIL)
        fail_msg("case filename_bad_submitter: got %s, want permfail", sts_status_name(st));
    o.submitter = "mail.sender.example.com";
    r.begin = 5;
    r.end = 4;
    st = sts_rsend_filename(&o, &r, out, sizeof(out));
    if (st != STS_PERMFAIL)
        fail_msg("case filename_bad_range: got %s, want permfail", sts_status_name(st));
}

/* ----------------------------------------------------------------- gzip */

static void gunzip(const unsigned char *in, size_t len, char *out, size_t outsz, size_t *outlen)
{
    z_stream zs;

    memset(&zs, 0, sizeof(zs));
    assert_int_equal(inflateInit2(&zs, 15 + 16), Z_OK); /* gzip only */
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)len;
    zs.next_out = (Bytef *)out;
    zs.avail_out = (uInt)outsz;
    if (inflate(&zs, Z_FINISH) != Z_STREAM_END)
        fail_msg("case gzip_round_trip: got no complete gzip stream");
    *outlen = zs.total_out;
    (void)inflateEnd(&zs);
}

static void test_gzip_round_trip(void **state)
{
    static const char *const inputs[] = { "", "{}", REPORT_JSON };
    char big[100000], back[120000];

    (void)state;
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)("{\"a\": [1, 2, 3]}\n"[i % 17]);
    for (size_t k = 0; k < 4; k++) {
        const char *in = k < 3 ? inputs[k] : big;
        size_t len = k < 3 ? strlen(in) : sizeof(big), blen = 0, gzlen = 0;
        unsigned char *gz = NULL;
        sts_status st = sts_rsend_gzip(in, len, &gz, &gzlen, NULL);

        if (st != STS_OK || gzlen < 18 || gz[0] != 0x1f || gz[1] != 0x8b)
            fail_msg("case gzip_round_trip %zu: got %s, %zu bytes, want a gzip member", k,
                     sts_status_name(st), gzlen);
        gunzip(gz, gzlen, back, sizeof(back), &blen);
        if (blen != len || memcmp(back, in, len) != 0)
            fail_msg("case gzip_round_trip %zu: got %zu bytes back, want %zu equal", k, blen, len);
        if (k == 3 && gzlen > len / 10)
            fail_msg("case gzip_compresses: got %zu bytes from %zu", gzlen, len);
        free(gz);
    }
}

/* ------------------------------------------------------------ report ids */

static void test_id_valid(void **state)
{
    static const struct {
        const char *id;
        bool want;
    } cases[] = {
        { "2024-05-01_example.net_mail.example.org", true },
        { "001", true },
        { "735ff.e317+bf22029@mailexample.net", true },
        { "a", true },
        { "", false },
        { "a..b", false },
        { ".a", false },
        { "a.", false },
        { "a b", false },
        { "a@", false },
        { "@a", false },
        { "a@b@c", false },
        { "a/b", false },
        { "a\nb", false },
        { "<a@b>", false },
    };
    char longid[STS_RSEND_ID_MAX + 2];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (sts_rsend_id_valid(cases[i].id) != cases[i].want)
            fail_msg("case id_valid '%s': got %d, want %d", cases[i].id, !cases[i].want,
                     cases[i].want);
    memset(longid, 'a', sizeof(longid));
    longid[STS_RSEND_ID_MAX] = '\0';
    if (!sts_rsend_id_valid(longid))
        fail_msg("case id_max_length: got invalid, want valid");
    longid[STS_RSEND_ID_MAX] = 'a';
    longid[STS_RSEND_ID_MAX + 1] = '\0';
    if (sts_rsend_id_valid(longid) || sts_rsend_id_valid(NULL))
        fail_msg("case id_too_long_or_null: got valid, want invalid");
}

/* ------------------------------------------------------------------ MIME */

static sts_rmail mail_fixture(const unsigned char *gz, size_t gzlen)
{
    sts_rmail m;

    memset(&m, 0, sizeof(m));
    m.from = "tlsrpt@mail.sender.example";
    m.to = "reports@example.net";
    m.policy_domain = "example.net";
    m.submitter = "mail.sender.example";
    m.report_id = "2024-05-01_example.net_mail.sender.example";
    m.message_id = "tlsrpt.1.2@mail.sender.example";
    m.begin = 1714521600;
    m.end = 1714607999;
    m.date = 1714640000; /* Thu, 02 May 2024 08:53:20 +0000 */
    m.filename = "mail.sender.example!example.net!1714521600!1714607999.json.gz";
    m.gz = gz;
    m.gz_len = gzlen;
    return m;
}

/* Find a whole line in text; NULL if absent. */
static const char *find_line(const char *text, const char *line)
{
    size_t n = strlen(line);

    for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
            return p;
    return NULL;
}

static void test_mime_structure(void **state)
{
    static const char *const headers[] = {
        "From: tlsrpt@mail.sender.example",
        "To: reports@example.net",
        "Subject: Report Domain: example.net",
        " Submitter: mail.sender.example",
        " Report-ID: <2024-05-01_example.net_mail.sender.example@mail.sender.example>",
        "Date: Thu, 02 May 2024 08:53:20 +0000",
        "Message-ID: <tlsrpt.1.2@mail.sender.example>",
        "MIME-Version: 1.0",
        "TLS-Report-Domain: example.net",
        "TLS-Report-Submitter: mail.sender.example",
        "TLS-Required: No",
        "Content-Type: multipart/report; report-type=\"tlsrpt\";",
        "Content-Type: text/plain; charset=\"us-ascii\"",
        "Content-Type: application/tlsrpt+gzip",
        "Content-Transfer-Encoding: base64",
        "Content-Disposition: attachment;",
        "\tfilename=\"mail.sender.example!example.net!1714521600!1714607999.json.gz\"",
    };
    unsigned char *gz = NULL, dec[4096];
    size_t gzlen = 0, declen = 0;
    sts_rmail m;
    sts_buf out;
    const char *b, *att, *end, *p;
    char boundary[128], delim[140], close[140];
    sts_why why;
    sts_status st;

    (void)state;
    assert_int_equal(sts_rsend_gzip(REPORT_JSON, strlen(REPORT_JSON), &gz, &gzlen, NULL), STS_OK);
    m = mail_fixture(gz, gzlen);
    sts_buf_init(&out, STS_RMAIL_MAX);
    st = sts_rmail_build(&m, &out, &why);
    if (st != STS_OK)
        fail_msg("case mime_build: got %s (%s)", sts_status_name(st), why.text);
    for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++)
        if (find_line(out.data, headers[i]) == NULL)
            fail_msg("case mime_structure: line '%s' missing in:\n%s", headers[i], out.data);
    /* The headers end before the first blank line; the new ones are there. */
    end = strstr(out.data, "\n\n");
    assert_non_null(end);
    p = find_line(out.data, "TLS-Required: No");
    if (p == NULL || p > end)
        fail_msg("case mime_tls_required_in_header: not in the header section");
    /* boundary="..." on the folded Content-Type line. */
    b = strstr(out.data, "\tboundary=\"");
    assert_non_null(b);
    b += strlen("\tboundary=\"");
    assert_true(strchr(b, '"') != NULL && (size_t)(strchr(b, '"') - b) < sizeof(boundary));
    memcpy(boundary, b, (size_t)(strchr(b, '"') - b));
    boundary[strchr(b, '"') - b] = '\0';
    (void)snprintf(delim, sizeof(delim), "--%s", boundary);
    (void)snprintf(close, sizeof(close), "--%s--", boundary);
    /* Two parts, in order: text, then the attachment; then the close. */
    p = find_line(out.data, delim);
    if (p == NULL || strstr(p, "Content-Type: text/plain") == NULL)
        fail_msg("case mime_first_part_text: missing");
    att = find_line(p + 1, delim);
    if (att == NULL || strncmp(att + strlen(delim) + 1, "Content-Type: application/tlsrpt+gzip", 37) != 0)
        fail_msg("case mime_second_part_gzip: missing");
    if (find_line(out.data, close) == NULL || find_line(att + 1, delim) != NULL)
        fail_msg("case mime_two_parts_and_close: got a different part structure");
    /* The attachment body decodes back to the gzip bytes. */
    p = strstr(att, "\n\n");
    assert_non_null(p);
    p += 2;
    while (*p != '\0' && *p != '\n' && *p != '-') {
        const char *nl = strchr(p, '\n');
        int w;

        assert_non_null(nl);
        if (nl - p > 76)
            fail_msg("case mime_base64_line_length: got %ld", (long)(nl - p));
        w = EVP_DecodeBlock(dec + declen, (const unsigned char *)p, (int)(nl - p));
        assert_true(w >= 0);
        declen += (size_t)w;
        /* EVP_DecodeBlock counts the '=' padding as zero bytes. */
        for (const char *q = nl - 1; q >= p && *q == '='; q--)
            declen--;
        p = nl + 1;
    }
    if (declen != gzlen || memcmp(dec, gz, gzlen) != 0)
        fail_msg("case mime_attachment_round_trip: got %zu bytes, want %zu", declen, gzlen);
    /* Only CR-free LF lines, all within 998 characters. */
    for (const char *q = out.data, *nl; *q != '\0'; q = nl + 1) {
        nl = strchr(q, '\n');
        assert_non_null(nl);
        if (memchr(q, '\r', (size_t)(nl - q)) != NULL || nl - q > 998)
            fail_msg("case mime_lines: bad line");
    }
    sts_buf_free(&out);
    free(gz);
}

static void test_mime_short_subject_and_bad_header(void **state)
{
    unsigned char gz[1] = { 0 };
    sts_rmail m = mail_fixture(gz, 1);
    sts_buf out;
    sts_why why;
    sts_status st;

    (void)state;
    m.policy_domain = "a.ex";
    m.submitter = "b.ex";
    m.report_id = "r1";
    sts_buf_init(&out, STS_RMAIL_MAX);
    st = sts_rmail_build(&m, &out, &why);
    if (st != STS_OK ||
        find_line(out.data, "Subject: Report Domain: a.ex Submitter: b.ex Report-ID: <r1@b.ex>") == NULL)
        fail_msg("case mime_short_subject_one_line: got %s", sts_status_name(st));
    sts_buf_reset(&out);
    m.from = "x@y.example\nBcc: victim@z.example";
    st = sts_rmail_build(&m, &out, &why);
    if (st != STS_PERMFAIL || strstr(why.text, "From") == NULL)
        fail_msg("case mime_header_injection_refused: got %s (%s)", sts_status_name(st), why.text);
    sts_buf_free(&out);
}

/* ------------------------------------------------------------ submission */

static char tmpdir[64];

static int make_tmpdir(void **state)
{
    (void)state;
    return unit_mkdtemp(tmpdir, sizeof(tmpdir), "test_rsend") ? 0 : -1;
}

static int remove_tmpdir(void **state)
{
    (void)state;
    return unit_rmtree(tmpdir);
}

static void test_submit(void **state)
{
    char cmd[256], path[128], back[64];
    static char big[1 << 20];
    struct timespec t0, t1;
    sts_why why;
    sts_status st;
    FILE *f;
    size_t n;

    (void)state;
    (void)snprintf(path, sizeof(path), "%s/msg", tmpdir);
    (void)snprintf(cmd, sizeof(cmd), "cat > '%s'", path);
    st = sts_rmail_submit(cmd, "hello\nworld\n", 12, 5000, &why);
    f = fopen(path, "r");
    n = f != NULL ? fread(back, 1, sizeof(back), f) : 0;
    if (f != NULL)
        fclose(f);
    if (st != STS_OK || n != 12 || memcmp(back, "hello\nworld\n", 12) != 0)
        fail_msg("case submit_stdin: got %s (%s), %zu bytes", sts_status_name(st), why.text, n);

    st = sts_rmail_submit("cat >/dev/null; echo 'mail queue full' >&2; exit 75", "x\n", 2, 5000, &why);
    if (st != STS_TEMPFAIL || strstr(why.text, "status 75") == NULL ||
        strstr(why.text, "mail queue full") == NULL)
        fail_msg("case submit_exit_status: got %s (%s)", sts_status_name(st), why.text);

    st = sts_rmail_submit("kill -9 $$", "x\n", 2, 5000, &why);
    if (st != STS_TEMPFAIL || strstr(why.text, "signal 9") == NULL)
        fail_msg("case submit_signal: got %s (%s)", sts_status_name(st), why.text);

    memset(big, 'a', sizeof(big));
    st = sts_rmail_submit("exit 0", big, sizeof(big), 5000, &why);
    if (st != STS_TEMPFAIL || strstr(why.text, "before reading the whole message") == NULL)
        fail_msg("case submit_unread_input: got %s (%s)", sts_status_name(st), why.text);

    (void)clock_gettime(CLOCK_MONOTONIC, &t0);
    st = sts_rmail_submit("sleep 10", "x\n", 2, 300, &why);
    (void)clock_gettime(CLOCK_MONOTONIC, &t1);
    if (st != STS_TEMPFAIL || strstr(why.text, "did not finish") == NULL ||
        t1.tv_sec - t0.tv_sec > 3)
        fail_msg("case submit_timeout: got %s (%s) after %lds", sts_status_name(st), why.text,
                 (long)(t1.tv_sec - t0.tv_sec));
}

/* ----------------------------------------------------------------- spool */

static sts_rsend_opts spool_opts(const char *dir)
{
    sts_rsend_opts o;

    memset(&o, 0, sizeof(o));
    o.spool_dir = dir;
    o.sendmail_cmd = "cat >/dev/null";
    o.from = "tlsrpt@sender.example";
    o.submitter = "sender.example";
    /* Nothing listens there: every lookup fails at once, temporarily. */
    o.dns_servers = "127.0.0.1:1";
    o.dns_timeout_ms = 200;
    o.dns_tries = 1;
    o.retry_time_s = 86400;
    return o;
}

static size_t count_files(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t n = 0;

    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
            n++;
    closedir(d);
    return n;
}

#define CHECK_STATS(name, s, q, dup, del, def, gu, nr)                                     \
    do {                                                                                 \
        if ((s).queued != (q) || (s).duplicates != (dup) || (s).delivered != (del) ||    \
            (s).deferred != (def) || (s).given_up != (gu) || (s).no_rua != (nr))         \
            fail_msg("case %s: got q=%u dup=%u del=%u def=%u gu=%u nr=%u, want "         \
                     "%u/%u/%u/%u/%u/%u",                                                \
                     name, (s).queued, (s).duplicates, (s).delivered, (s).deferred,      \
                     (s).given_up, (s).no_rua, (unsigned)(q), (unsigned)(dup),           \
                     (unsigned)(del), (unsigned)(def), (unsigned)(gu), (unsigned)(nr));  \
    } while (0)

static void test_spool_lifecycle(void **state)
{
    char dir[128];
    sts_rsend_opts o;
    sts_rsend_report r;
    sts_rsend_stats s;
    sts_why why;
    struct stat sb;
    int64_t t0 = 1714640000;

    (void)state;
    (void)snprintf(dir, sizeof(dir), "%s/spool", tmpdir);
    o = spool_opts(dir);
    memset(&r, 0, sizeof(r));
    r.policy_domain = "Example.NET.";
    r.report_id = "2024-05-01_example.net_sender.example";
    r.begin = 1714521600;
    r.end = 1714607999;
    r.json = REPORT_JSON;

    /* An empty (missing) spool is fine. */
    memset(&s, 0, sizeof(s));
    assert_int_equal(sts_rsend_run(&o, t0, &s, &why), STS_OK);
    CHECK_STATS("run_missing_spool", s, 0, 0, 0, 0, 0, 0);

    memset(&s, 0, sizeof(s));
    if (sts_rsend_enqueue(&o, &r, &s, &why) != STS_OK)
        fail_msg("case enqueue: %s", why.text);
    CHECK_STATS("enqueue", s, 1, 0, 0, 0, 0, 0);
    if (stat(dir, &sb) != 0 || (sb.st_mode & 0777) != 0700 || count_files(dir, "r-") != 1)
        fail_msg("case enqueue_spool_file: want one r-* file in a 0700 directory");
    assert_int_equal(sts_rsend_enqueue(&o, &r, &s, &why), STS_OK);
    CHECK_STATS("enqueue_duplicate", s, 1, 1, 0, 0, 0, 0);

    /* First attempt: the TXT lookup fails temporarily -> deferred 5 min. */
    memset(&s, 0, sizeof(s));
    assert_int_equal(sts_rsend_run(&o, t0, &s, &why), STS_OK);
    CHECK_STATS("run_deferred", s, 0, 0, 0, 1, 0, 0);
    memset(&s, 0, sizeof(s));
    assert_int_equal(sts_rsend_run(&o, t0 + 299, &s, &why), STS_OK);
    CHECK_STATS("run_not_due_before_backoff", s, 0, 0, 0, 0, 0, 0);
    memset(&s, 0, sizeof(s));
    assert_int_equal(sts_rsend_run(&o, t0 + 300, &s, &why), STS_OK);
    CHECK_STATS("run_due_after_backoff", s, 0, 0, 0, 1, 0, 0);
    /* The second failure doubles the wait: 600 s. */
    memset(&s, 0, sizeof(s));
    assert_int_equal(sts_rsend_run(&o, t0 + 300 + 599, &s, &why), STS_OK);
    CHECK_STATS("run_backoff_doubled", s, 0, 0, 0, 0, 0, 0);
    /* Past ReportRetryTime (counted from the first attempt): given up. */
    memset(&s, 0, sizeof(s));
    assert_int_equal(sts_rsend_run(&o, t0 + 86400, &s, &why), STS_OK);
    CHECK_STATS("run_given_up", s, 0, 0, 0, 0, 1, 0);
    if (count_files(dir, "r-") != 0)
        fail_msg("case given_up_removed: spool file still there");
    /* Remembered: the same report id is not queued again. */
    memset(&s, 0, sizeof(s));
    assert_int_equal(sts_rsend_enqueue(&o, &r, &s, &why), STS_OK);
    CHECK_STATS("enqueue_after_given_up", s, 0, 1, 0, 0, 0, 0);

    /* Bad input is refused, not spooled. */
    r.report_id = "bad id";
    if (sts_rsend_enqueue(&o, &r, &s, &why) != STS_PERMFAIL)
        fail_msg("case enqueue_bad_id: want permfail");
    r.report_id = "other";
    r.json = "not json";
    if (sts_rsend_enqueue(&o, &r, &s, &why) != STS_PERMFAIL)
        fail_msg("case enqueue_bad_json: want permfail");
    r.json = REPORT_JSON;
    r.policy_domain = "[127.0.0.1]";
    if (sts_rsend_enqueue(&o, &r, &s, &why) != STS_PERMFAIL)
        fail_msg("case enqueue_bad_domain: want permfail");
    if (count_files(dir, "r-") != 0 || count_files(dir, ".tmp") != 0)
        fail_msg("case enqueue_refused_leaves_nothing: files left");
}

static void test_spool_corrupt(void **state)
{
    char dir[128], path[256];
    sts_rsend_opts o;
    sts_rsend_stats s;
    sts_why why;
    FILE *f;

    (void)state;
    (void)snprintf(dir, sizeof(dir), "%s/spool2", tmpdir);
    assert_int_equal(mkdir(dir, 0700), 0);
    (void)snprintf(path, sizeof(path), "%s/r-0123456789abcdef0123456789abcdef.json", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"format\": 1, \"report_id\": \"x\"", f);
    fclose(f);
    o = spool_opts(dir);
    memset(&s, 0, sizeof(s));
    assert_int_equal(sts_rsend_run(&o, 1714640000, &s, &why), STS_OK);
    CHECK_STATS("run_corrupt", s, 0, 0, 0, 0, 1, 0);
    if (count_files(dir, "r-") != 0 || count_files(dir, "corrupt-r-") != 1)
        fail_msg("case corrupt_moved_aside: want it renamed corrupt-r-*");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filename),
        cmocka_unit_test(test_gzip_round_trip),
        cmocka_unit_test(test_id_valid),
        cmocka_unit_test(test_mime_structure),
        cmocka_unit_test(test_mime_short_subject_and_bad_header),
        cmocka_unit_test(test_submit),
        cmocka_unit_test(test_spool_lifecycle),
        cmocka_unit_test(test_spool_corrupt),
    };

    return cmocka_run_group_tests_name("rsend", tests, make_tmpdir, remove_tmpdir);
}
