/*
 * txt.h - the _mta-sts TXT record (RFC 8461 3.1).
 */
#ifndef STS_TXT_H
#define STS_TXT_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"
#include "base/status.h"

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

/* The record shape RFC 8460 section 3 (_smtp._tls, tlsrpt_txt.c) shares
 * with RFC 8461 3.1:
 *   record      = version 1*(field-delim field) [field-delim]
 *   field-delim = *WSP ";" *WSP
 *   extension   = ext-name "=" ext-value
 *   ext-name    = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
 *   ext-value   = 1*(%x21-3A / %x3C / %x3E-7E)
 * Each record parser keeps its own version, known fields and rules; these
 * walk the shared shape.  rec is the record's first byte: reasons give
 * offsets from it.  Trailing WSP after the last field is tolerated. */

/* True if rec starts with version (case-sensitive) followed by ';', WSP
 * or the end of the record: the RFCs' "begins with v=...;" test. */
bool sts_txt_has_version(const char *rec, size_t len, const char *version);

/* True if a field value ends here: end of record, ';' or WSP. */
bool sts_txt_at_field_end(const sts_cur *c);

/* A record parser's own fields.  Called with *c at a field's first byte
 * (not ';', not WSP): for a field it knows, consume it up to
 * sts_txt_at_field_end() and return STS_OK, or STS_PERMFAIL with a reason;
 * for any other field return STS_NOTFOUND with nothing consumed, and the
 * walker checks it as an extension and skips it. */
typedef sts_status sts_txt_field_fn(void *arg, sts_cur *c, const char *rec, sts_why *why);

/* Walk rec: version first (else "record does not start with VERSION"),
 * then every field through fn.  STS_OK; fn's status and reason when it
 * fails; or STS_PERMFAIL with the walker's reason (no ';' after a field,
 * an empty field, a malformed extension). */
sts_status sts_txt_walk(const char *rec, size_t len, const char *version, sts_txt_field_fn *fn,
                        void *arg, sts_why *why) STS_MUST_CHECK;

/* The discard-then-count step: among n records, those that
 * sts_txt_has_version(version).  STS_OK with *which its index if exactly
 * one; STS_NOTFOUND if none; STS_PERMFAIL if several. */
sts_status sts_txt_select_one(const sts_txt_rr *recs, size_t n, const char *version,
                              size_t *which, sts_why *why) STS_MUST_CHECK;

#endif
