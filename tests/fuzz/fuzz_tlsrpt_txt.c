/*
 * fuzz_tlsrpt_txt.c - libFuzzer target for the _smtp._tls TXT record
 * (src/tlsrpt_txt.c, RFC 8460 section 3).  The input is split at '\n'
 * into several TXT records for sts_tlsrpt_select(), parsed whole by
 * sts_tlsrpt_parse() and checked whole as one URI by
 * sts_tlsrpt_uri_parse(); the results are checked against each other and
 * against the invariants every consumer relies on (a mailto address and
 * an https URL can go into a header / a request line), and any violation
 * aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "sts/domain.h"
#include "fuzz_records.h"
#include "tlsrpt/tlsrpt_txt.h"

#define FUZZ_MAX_RECS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_text(const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);

    if (n == 0 || n > max)
        abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            abort();
}

static void check_uri(const sts_tlsrpt_uri *u)
{
    sts_tlsrpt_uri again;

    check_text(u->uri, STS_TLSRPT_URI_MAX);
    if (u->scheme == STS_TLSRPT_MAILTO) {
        const char *at;

        check_text(u->addr, STS_TLSRPT_ADDR_MAX);
        at = strchr(u->addr, '@');
        if (at == NULL || strchr(at + 1, '@') != NULL || at == u->addr ||
            !sts_hostname_valid(at + 1, strlen(at + 1)) || strpbrk(u->addr, ",<>\"") != NULL)
            abort();
    } else if (u->scheme == STS_TLSRPT_HTTPS) {
        size_t hl = strlen(u->host);

        check_text(u->url, STS_TLSRPT_URI_MAX);
        if (!sts_hostname_valid(u->host, hl) || u->port == 0 || u->port > 65535 ||
            strncmp(u->url, "https://", 8) != 0 || strncmp(u->url + 8, u->host, hl) != 0 ||
            strchr(u->url, '#') != NULL)
            abort();
    } else {
        abort();
    }
    /* The URI alone parses to the same thing. */
    if (sts_tlsrpt_uri_parse(u->uri, strlen(u->uri), &again, NULL) != STS_OK ||
        again.scheme != u->scheme || again.port != u->port || strcmp(again.uri, u->uri) != 0 ||
        strcmp(again.addr, u->addr) != 0 || strcmp(again.host, u->host) != 0 ||
        strcmp(again.url, u->url) != 0)
        abort();
}

static void check_result(const sts_tlsrpt *t)
{
    if (t->n > STS_TLSRPT_MAX_RUA)
        abort();
    if ((t->ignored > 0) != (t->ignored_why.text[0] != '\0'))
        abort();
    for (size_t i = 0; i < t->n; i++) {
        check_uri(&t->rua[i]);
        for (size_t j = 0; j < i; j++)
            if (strcmp(t->rua[i].uri, t->rua[j].uri) == 0)
                abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static sts_tlsrpt got, single; /* 40 KiB each: not on the stack */
    const char *in = (const char *)data;
    sts_txt_rr recs[FUZZ_MAX_RECS];
    size_t n, n_rec, which = 0;
    sts_tlsrpt_uri u;
    sts_why why;
    sts_status st;

    n = fuzz_split_records(in, size, recs, FUZZ_MAX_RECS);
    n_rec = fuzz_count_records(recs, n, sts_tlsrpt_is_record, &which);

    why.text[0] = '\0';
    st = sts_tlsrpt_select(recs, n, &got, &why);
    switch (st) {
    case STS_OK:
        if (n_rec != 1)
            abort();
        check_result(&got);
        if (sts_tlsrpt_parse(recs[which].data, recs[which].len, &single, NULL) != STS_OK ||
            single.n != got.n || single.ignored != got.ignored)
            abort();
        for (size_t i = 0; i < got.n; i++)
            if (strcmp(single.rua[i].uri, got.rua[i].uri) != 0)
                abort();
        break;
    case STS_NOTFOUND:
        fuzz_check_why(&why);
        if (n_rec != 0 || got.n != 0)
            abort();
        break;
    case STS_PERMFAIL:
        fuzz_check_why(&why);
        if (n_rec == 0 || got.n != 0)
            abort();
        if (n_rec == 1 && sts_tlsrpt_parse(recs[which].data, recs[which].len, &single, NULL) == STS_OK)
            abort();
        break;
    default:
        abort();
    }

    /* The whole input as one record. */
    why.text[0] = '\0';
    st = sts_tlsrpt_parse(in, size, &got, &why);
    if (st == STS_OK) {
        if (!sts_tlsrpt_is_record(in, size))
            abort();
        check_result(&got);
    } else if (st == STS_PERMFAIL) {
        fuzz_check_why(&why);
        if (got.n != 0)
            abort();
    } else {
        abort();
    }

    /* The whole input as one URI. */
    why.text[0] = '\0';
    st = sts_tlsrpt_uri_parse(in, size, &u, &why);
    if (st == STS_OK)
        check_uri(&u);
    else if (st == STS_NOTFOUND || st == STS_PERMFAIL)
        fuzz_check_why(&why);
    else
        abort();
    return 0;
}
