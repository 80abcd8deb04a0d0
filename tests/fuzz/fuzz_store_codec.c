/*
 * fuzz_store_codec.c - libFuzzer target for the JSON form of a cached
 * record (src/store.c: sts_store_record_decode / _encode), the value the
 * Redis store reads back from a server other MTAs also write to.
 *
 * Whatever the input, decode must either refuse it (STS_PERMFAIL with a
 * one-line reason and a zeroed record) or return a record that passes
 * sts_store_record_check; such a record must encode, decode back to the
 * same record, and encode again to the very same text.  Any violation
 * aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/store.h"
#include "engine/store_impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same(const sts_cache_record *a, const sts_cache_record *b)
{
    if (strcmp(a->domain, b->domain) != 0 || a->kind != b->kind || strcmp(a->id, b->id) != 0 ||
        a->policy_len != b->policy_len || (a->policy_text == NULL) != (b->policy_text == NULL) ||
        (a->policy_text != NULL && memcmp(a->policy_text, b->policy_text, a->policy_len) != 0) ||
        a->fetched_at != b->fetched_at || a->checked_at != b->checked_at ||
        a->expires_at != b->expires_at || a->last_used != b->last_used)
        abort();
}

static bool zeroed(const sts_cache_record *r)
{
    static const sts_cache_record zero;

    return memcmp(r, &zero, sizeof(*r)) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sts_cache_record r, back;
    char *json = NULL, *again = NULL;
    size_t len, len2;
    sts_why why;
    sts_status st;

    why.text[0] = '\0';
    st = sts_store_record_decode((const char *)data, size, &r, &why);
    if (st == STS_NOMEM)
        return 0;
    if (st != STS_OK) {
        if (st != STS_PERMFAIL || !zeroed(&r) || why.text[0] == '\0' ||
            strchr(why.text, '\n') != NULL)
            abort();
        return 0;
    }
    if (sts_store_record_check(&r, &why) != STS_OK)
        abort();
    st = sts_store_record_encode(&r, &json, &len, &why);
    if (st == STS_NOMEM)
        goto done;
    if (st != STS_OK || json == NULL || strlen(json) != len)
        abort();
    st = sts_store_record_decode(json, len, &back, &why);
    if (st == STS_NOMEM)
        goto done;
    if (st != STS_OK)
        abort();
    same(&r, &back);
    st = sts_store_record_encode(&back, &again, &len2, &why);
    if (st == STS_OK && (len2 != len || memcmp(again, json, len) != 0))
        abort();
    sts_cache_record_clear(&back);
done:
    free(again);
    free(json);
    sts_cache_record_clear(&r);
    return 0;
}
