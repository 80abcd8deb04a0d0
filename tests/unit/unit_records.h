/*
 * unit_records.h - the TXT record sets of the selection tests in
 * test_txt.c and test_tlsrpt_txt.c: a case's records (at most 4, NULL
 * after the last) with n_other unrelated records around them, half
 * before and half after, as a name with many TXT records (site
 * verifications, SPF) answers.  RFC 8461 3.1 and RFC 8460 3 discard those
 * before counting, however many there are.  Header-only.
 */
#ifndef UNIT_RECORDS_H
#define UNIT_RECORDS_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "sts/txt.h"

#define UNIT_RECORDS_MAX 4

/* A calloc'd array (free() it) of the records, *n their count; NULL (and
 * *n 0) when there are none. */
static inline sts_txt_rr *unit_records(const char *const recs[UNIT_RECORDS_MAX], size_t n_other,
                                       size_t *n)
{
    static const char other[] = "site-verification=0123456789abcdef0123456789abcdef";
    size_t k = 0;
    sts_txt_rr *rr = calloc(UNIT_RECORDS_MAX + n_other, sizeof(*rr));

    *n = 0;
    if (rr == NULL)
        return NULL;
    for (size_t i = 0; i < n_other / 2; i++)
        rr[(*n)++] = (sts_txt_rr){ other, sizeof(other) - 1 };
    for (; k < UNIT_RECORDS_MAX && recs[k] != NULL; k++)
        rr[(*n)++] = (sts_txt_rr){ recs[k], strlen(recs[k]) };
    for (size_t i = n_other / 2; i < n_other; i++)
        rr[(*n)++] = (sts_txt_rr){ other, sizeof(other) - 1 };
    if (*n == 0) {
        free(rr);
        return NULL;
    }
    return rr;
}

#endif
