/*
 * txt.h - the _mta-sts TXT record (RFC 8461 3.1).
 */
#ifndef STS_TXT_H
#define STS_TXT_H

#include <stdbool.h>
#include <stddef.h>

#include "status.h"

#define STS_ID_MAX 32

typedef struct sts_txt {
    char id[STS_ID_MAX + 1]; /* 1..32 ALPHA / DIGIT, NUL-terminated */
} sts_txt;

/* One TXT record: its character-strings already concatenated. */
typedef struct sts_txt_rr {
    const char *data;
    size_t len;
} sts_txt_rr;

/* True if the record is an MTA-STS record for the purpose of the RFC's
 * discard step: it starts with the field "v=STSv1" followed by ';', WSP
 * or the end of the record.  "v=STSv10;" is not. */
bool sts_txt_is_sts(const char *rec, size_t len);

/* Parse one record per the RFC 8461 3.1 ABNF:
 *   sts-text-record = sts-version 1*(sts-field-delim sts-field) [sts-field-delim]
 *   sts-version = %s"v=STSv1"; sts-field-delim = *WSP ";" *WSP
 *   sts-id = %s"id=" 1*32(ALPHA / DIGIT); extension fields name=value per ABNF.
 * The id field is required; if it appears twice the first one counts;
 * extension fields are checked against the grammar and ignored.
 * Returns STS_OK or STS_PERMFAIL with a reason. */
sts_status sts_txt_parse(const char *rec, size_t len, sts_txt *out, sts_why *why) STS_MUST_CHECK;

/* Apply RFC 8461 3.1 to all TXT records of _mta-sts.<domain>: discard the
 * records that are not sts_txt_is_sts(), then require exactly one and
 * parse it.  Returns:
 *   STS_OK       exactly one valid record, *out filled;
 *   STS_NOTFOUND no record starts with v=STSv1 (the domain has no MTA-STS);
 *   STS_PERMFAIL several v=STSv1 records, or the one record is malformed
 *                (also: no usable policy), with a reason. */
sts_status sts_txt_select(const sts_txt_rr *recs, size_t n, sts_txt *out, sts_why *why) STS_MUST_CHECK;

#endif
