/*
 * fuzz_netstring.c - libFuzzer target for the socketmap request path:
 * netstring framing of a pipelined byte stream, request split and key
 * normalisation (src/netstring.c, src/smap.c).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "netstring.h"
#include "smap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    size_t off = 0;

    while (off < size) {
        sts_cur payload, name, key;
        size_t used = 0;
        sts_why why;
        char domain[STS_DOMAIN_MAX + 1];
        sts_ns_result r = sts_netstring_parse(p + off, size - off, 1024, &payload, &used, &why);

        if (r != STS_NS_OK)
            break;
        /* Invariants: the payload lies inside the input, before the ','. */
        if (used < payload.len + 3 || used > size - off || payload.p < p + off ||
            payload.p + payload.len >= p + off + used || p[off + used - 1] != ',')
            abort();
        if (sts_smap_split(payload, &name, &key) &&
            sts_smap_key_domain(key, domain, &why) == STS_OK &&
            (strlen(domain) == 0 || strlen(domain) > STS_DOMAIN_MAX))
            abort();
        off += used;
    }
    return 0;
}
