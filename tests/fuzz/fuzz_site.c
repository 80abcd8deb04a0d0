/*
 * fuzz_site.c - libFuzzer target for the SiteTLSPolicyFile parser
 * (src/smap/smap_site.c): any bytes either parse into a table whose
 * entries hold only what the grammar allows, or are refused with a
 * FILE:LINE reason; every entry is found again by a name it covers.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smap/smap_site.h"
#include "sts/domain.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sts_site_table *t = NULL;
    sts_why why = { "" };
    sts_status st = sts_site_parse((const char *)data, size, "f", &t, &why);

    if (st != STS_OK) {
        if (t != NULL || (st != STS_PERMFAIL && st != STS_NOMEM) ||
            (st == STS_PERMFAIL && strncmp(why.text, "f:", 2) != 0))
            abort();
        return 0;
    }
    for (size_t i = 0; i < sts_site_count(t); i++) {
        const sts_site_rule *r = sts_site_at(t, i), *found;
        const char *name = r->key[0] == '.' ? r->key + 1 : r->key;
        char probe[STS_DOMAIN_MAX + 8];

        /* A normalised name, a known level, names only above encrypt. */
        if (!sts_hostname_valid(name, strlen(name)) || (unsigned)r->level > STS_SITE_SECURE ||
            (r->level == STS_SITE_ENCRYPT && r->match[0] != '\0') ||
            strlen(r->match) > STS_SITE_MAX_MATCH || r->line == 0)
            abort();
        for (const char *c = name; *c != '\0'; c++)
            if (*c >= 'A' && *c <= 'Z')
                abort();
        /* Keys are sorted and distinct. */
        if (i > 0 && strcmp(sts_site_at(t, i - 1)->key, r->key) >= 0)
            abort();
        /* Found by a name it covers: itself, or one label below ".parent"
         * (an entry at least as specific may answer first). */
        if (r->key[0] == '.')
            (void)snprintf(probe, sizeof(probe), "x%s", r->key);
        else
            (void)snprintf(probe, sizeof(probe), "%s", r->key);
        found = sts_site_find(t, probe);
        if (strlen(probe) <= STS_DOMAIN_MAX &&
            (found == NULL || strlen(found->key) < strlen(r->key)))
            abort();
        if (r->key[0] == '.' && sts_site_find(t, name) == r)
            abort(); /* ".d" never covers d itself */
    }
    sts_site_free(t);
    return 0;
}
