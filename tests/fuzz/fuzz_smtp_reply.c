/*
 * fuzz_smtp_reply.c - libFuzzer target for the SMTP reply reader
 * (src/sts/smtpreply.c), which reads what an untrusted MX host sends to
 * the probe.  Byte 0 picks a chunk size (1..256); the rest is the
 * server's bytes, fed once whole and once in chunks.  Both must end the
 * same way at the same place; a complete reply must have a code 200-559,
 * at most STS_SMTP_REPLY_MAX_LINES lines and printable text, and must end
 * at a line feed.  Any violation aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sts/smtpreply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_done(const sts_smtp_reply *r, const char *in, size_t used)
{
    if (r->code < 200 || r->code > 559 || r->nlines == 0 ||
        r->nlines > STS_SMTP_REPLY_MAX_LINES || used == 0 || in[used - 1] != '\n')
        abort();
    for (size_t i = 0; r->text[i] != '\0'; i++)
        if ((unsigned char)r->text[i] < 0x20 || (unsigned char)r->text[i] > 0x7e)
            abort();
    if (strlen(r->text) >= sizeof(r->text))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static sts_smtp_reply whole, chunked;
    const char *in;
    size_t chunk, used = 0, total = 0;
    sts_smtp_rc rc1, rc2 = STS_SMTP_MORE;

    if (size < 1)
        return 0;
    chunk = (size_t)data[0] + 1;
    in = (const char *)data + 1;
    size--;

    sts_smtp_reply_init(&whole);
    rc1 = sts_smtp_reply_feed(&whole, in, size, &used);
    if (used > size || (rc1 == STS_SMTP_MORE && used != size))
        abort();
    if (rc1 == STS_SMTP_DONE)
        check_done(&whole, in, used);

    sts_smtp_reply_init(&chunked);
    for (size_t off = 0; off < size; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk, u = 0;

        rc2 = sts_smtp_reply_feed(&chunked, in + off, n, &u);
        if (u > n)
            abort();
        total += u;
        if (rc2 != STS_SMTP_MORE)
            break;
    }
    if (size == 0)
        rc2 = STS_SMTP_MORE;
    if (rc1 != rc2)
        abort();
    if (rc1 == STS_SMTP_DONE &&
        (total != used || whole.code != chunked.code || whole.starttls != chunked.starttls ||
         whole.nlines != chunked.nlines || strcmp(whole.text, chunked.text) != 0))
        abort();
    return 0;
}
