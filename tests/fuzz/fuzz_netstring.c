/*
 * fuzz_netstring.c - libFuzzer target for the socketmap request path:
 * netstring framing of a pipelined byte stream, request split, map name
 * lookup and key normalisation, address keys of transport_maps included
 * (src/netstring.c, src/smap.c, src/smap_profile.c).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smap/netstring.h"
#include "smap/smap.h"
#include "smap/smap_profile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static sts_smap_profiles *builtins;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    size_t off = 0;
    sts_why bwhy;

    if (builtins == NULL && sts_smap_profiles_build(NULL, &builtins, &bwhy) != STS_OK)
        abort();

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
        if (sts_smap_split(payload, &name, &key)) {
            const sts_smap_profile *prof = sts_smap_profiles_find(builtins, name.p, name.len);

            /* Only the exact built-in names select a profile. */
            if (prof != NULL && (strlen(prof->name) != name.len ||
                                 memcmp(prof->name, name.p, name.len) != 0))
                abort();
            if (sts_smap_key_domain(key, domain, &why) == STS_OK &&
                (strlen(domain) == 0 || strlen(domain) > STS_DOMAIN_MAX))
                abort();
        }
        off += used;
    }
    return 0;
}
