/*
 * fuzz_config.c - libFuzzer target for the configuration parser
 * (src/config.c) and sts_log_escape (src/log.c), which its error messages
 * use.
 *
 * Parses the input on top of the defaults.  A refusal must come with a
 * "fuzz.conf..." reason.  An accepted text must print (sts_config_print)
 * as text that parses again, on fresh defaults, to the very same printed
 * configuration: every value the parser keeps is one it accepts back.
 * Any violation aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/config.h"
#include "base/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *print(const sts_config *cfg, size_t *len)
{
    char *text = NULL;
    FILE *fp = open_memstream(&text, len);

    if (fp == NULL)
        abort();
    sts_config_print(cfg, fp);
    if (fclose(fp) != 0)
        abort();
    return text;
}

static void check_escape(const char *in, size_t size)
{
    char out[64];

    sts_log_escape(out, sizeof(out), in, size);
    for (size_t i = 0; out[i] != '\0'; i++) {
        unsigned char c = (unsigned char)out[i];

        if (i >= sizeof(out) - 1 || c < 0x20 || c >= 0x7f || c == '"' || c == '=')
            abort();
        if (c == '\\' && out[i + 1] != 'x')
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    sts_config cfg, again;
    sts_why why;
    sts_status st;
    char *first, *second;
    size_t first_len, second_len;

    check_escape(in, size);
    if (sts_config_defaults(&cfg) != STS_OK)
        abort();
    why.text[0] = '\0';
    st = sts_config_parse(in, size, "fuzz.conf", &cfg, &why);
    if (st == STS_NOMEM) {
        sts_config_free(&cfg);
        return 0;
    }
    if (st != STS_OK) {
        if (st != STS_PERMFAIL || strncmp(why.text, "fuzz.conf", 9) != 0 ||
            memchr(why.text, '\n', strlen(why.text)) != NULL)
            abort();
        sts_config_free(&cfg);
        return 0;
    }

    first = print(&cfg, &first_len);
    if (sts_config_defaults(&again) != STS_OK)
        abort();
    st = sts_config_parse(first, first_len, "printed", &again, &why);
    if (st == STS_NOMEM) {
        free(first);
        sts_config_free(&again);
        sts_config_free(&cfg);
        return 0;
    }
    if (st != STS_OK) {
        (void)fprintf(stderr, "printed config refused: %s\n%s", why.text, first);
        abort();
    }
    second = print(&again, &second_len);
    if (first_len != second_len || memcmp(first, second, first_len) != 0) {
        (void)fprintf(stderr, "round trip differs:\n%s---\n%s", first, second);
        abort();
    }
    free(first);
    free(second);
    sts_config_free(&again);
    sts_config_free(&cfg);
    return 0;
}
