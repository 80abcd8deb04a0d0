/*
 * fuzz_txt.c - libFuzzer target for the _mta-sts TXT record (src/txt.c,
 * RFC 8461 3.1).  The input is split at '\n' into several TXT records for
 * sts_txt_select(), and parsed whole by sts_txt_parse(); the results are
 * checked against each other and against the grammar's invariants, and
 * any violation aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "fuzz_records.h"
#include "sts/txt.h"

#define FUZZ_MAX_RECS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_id(const sts_txt *t)
{
    size_t n = strnlen(t->id, sizeof(t->id));

    if (n == 0 || n > STS_ID_MAX)
        abort();
    for (size_t i = 0; i < n; i++)
        if (!sts_is_alnum((unsigned char)t->id[i]))
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    sts_txt_rr recs[FUZZ_MAX_RECS];
    size_t n, n_sts, which = 0;
    sts_txt got, single;
    sts_why why;
    sts_status st, st1;

    n = fuzz_split_records(in, size, recs, FUZZ_MAX_RECS);
    n_sts = fuzz_count_records(recs, n, sts_txt_is_sts, &which);

    why.text[0] = '\0';
    st = sts_txt_select(recs, n, &got, &why);
    switch (st) {
    case STS_OK:
        check_id(&got);
        if (n_sts != 1)
            abort();
        /* The selected record parses the same on its own. */
        st1 = sts_txt_parse(recs[which].data, recs[which].len, &single, NULL);
        if (st1 != STS_OK || strcmp(single.id, got.id) != 0)
            abort();
        break;
    case STS_NOTFOUND:
        fuzz_check_why(&why);
        if (n_sts != 0)
            abort();
        break;
    case STS_PERMFAIL:
        fuzz_check_why(&why);
        if (n_sts == 0)
            abort();
        if (n_sts == 1 && sts_txt_parse(recs[which].data, recs[which].len, &single, NULL) == STS_OK)
            abort();
        break;
    default:
        abort();
    }

    /* The whole input as one record. */
    why.text[0] = '\0';
    st = sts_txt_parse(in, size, &got, &why);
    if (st == STS_OK) {
        check_id(&got);
        if (!sts_txt_is_sts(in, size))
            abort();
    } else if (st == STS_PERMFAIL) {
        fuzz_check_why(&why);
    } else {
        abort();
    }
    return 0;
}
