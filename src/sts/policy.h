/*
 * policy.h - the MTA-STS policy file (RFC 8461 3.2).
 */
#ifndef STS_POLICY_H
#define STS_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

#define STS_POLICY_MAX_BODY 65536u   /* larger bodies are rejected (3.3) */
#define STS_MAX_AGE_LIMIT 31557600u  /* RFC maximum; larger values are clamped to it */
#define STS_POLICY_MAX_MX 256u       /* more mx lines than this: invalid */

typedef enum sts_mode {
    STS_MODE_ENFORCE,
    STS_MODE_TESTING,
    STS_MODE_NONE,
} sts_mode;

typedef struct sts_policy {
    sts_mode mode;
    uint32_t max_age;  /* seconds, clamped to STS_MAX_AGE_LIMIT; 0 allowed */
    size_t n_mx;
    char **mx;         /* n_mx lower-cased patterns, trailing dot removed */
    char *text;        /* the body as received, NUL-terminated (for TLSRPT policy-string) */
    size_t text_len;
} sts_policy;

/* Parse a policy body.  Rules: lines end in LF or CRLF (the last line may
 * lack one); each non-empty line is `key ":" *WSP value *WSP`; keys are
 * case-sensitive; version must be "STSv1"; mode enforce|testing|none;
 * max_age 1*10DIGIT; mx may repeat and is required unless mode is none;
 * a repeated non-mx key: the first one counts; unknown keys are ignored
 * (but must still be `key: value` lines); a body longer than
 * STS_POLICY_MAX_BODY is rejected.
 * Returns STS_OK (*out owned by the caller, free with sts_policy_free),
 * STS_PERMFAIL with a reason, or STS_NOMEM. */
sts_status sts_policy_parse(const char *body, size_t len, sts_policy **out,
                            sts_why *why) STS_MUST_CHECK;

void sts_policy_free(sts_policy *p);

/* Deep copy; NULL on OOM. */
sts_policy *sts_policy_dup(const sts_policy *p);

/* True if host matches one of the policy's mx patterns. */
bool sts_policy_mx_match(const sts_policy *p, const char *host);

/* "enforce", "testing", "none". */
const char *sts_mode_name(sts_mode m);

/* Exact (case-sensitive, as in the policy file) name to mode. */
bool sts_mode_from_name(const char *s, size_t len, sts_mode *out);

#endif
