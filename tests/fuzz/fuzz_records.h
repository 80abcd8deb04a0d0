/*
 * fuzz_records.h - what the two TXT record fuzz targets (fuzz_txt.c,
 * fuzz_tlsrpt_txt.c) share: how one input becomes several TXT records, the
 * independent discard-then-count oracle their select results are checked
 * against, and the reason-text invariant.  Header-only (static inline), so
 * each target stays one translation unit for libFuzzer.
 */
#ifndef STS_FUZZ_RECORDS_H
#define STS_FUZZ_RECORDS_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/status.h"
#include "sts/txt.h"

/* Split in at '\n' into at most max records (views into in); the last one
 * takes the rest, '\n' included.  Returns how many (at least 1). */
static inline size_t fuzz_split_records(const char *in, size_t size, sts_txt_rr *recs,
                                        size_t max)
{
    size_t n = 0, pos = 0;

    while (n < max) {
        const char *nl = n + 1 < max && pos < size ? memchr(in + pos, '\n', size - pos) : NULL;
        size_t end = nl != NULL ? (size_t)(nl - in) : size;

        recs[n].data = in + pos;
        recs[n].len = end - pos;
        n++;
        if (nl == NULL)
            break;
        pos = end + 1;
    }
    return n;
}

/* How many of the n records is_record() keeps; *which = the last one. */
static inline size_t fuzz_count_records(const sts_txt_rr *recs, size_t n,
                                        bool (*is_record)(const char *, size_t), size_t *which)
{
    size_t count = 0;

    for (size_t i = 0; i < n; i++) {
        if (is_record(recs[i].data, recs[i].len)) {
            count++;
            *which = i;
        }
    }
    return count;
}

/* A reason is a non-empty, NUL-terminated text. */
static inline void fuzz_check_why(const sts_why *why)
{
    if (memchr(why->text, '\0', sizeof(why->text)) == NULL || why->text[0] == '\0')
        abort();
}

#endif
