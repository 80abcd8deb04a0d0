/*
 * domain.c - the gate every domain name passes before it reaches DNS, a URL
 * or a report (see domain.h).
 *
 * RFC 8461 3.4: address literals have no policy.  RFC 8461 3.1 / 3.3 and
 * RFC 8460 4.3 put policy domains into DNS names, HTTPS host names and
 * reports, all as A-labels.  Host name syntax and sizes follow RFC 1035
 * 2.3.1 / 2.3.4 and RFC 1123 2.1; U-labels become A-labels by IDNA2008
 * (RFC 5891 5) with the UTS#46 non-transitional mapping, through libidn2,
 * and A-labels we are handed must survive a decode/encode round trip
 * (RFC 5890 2.3.2.1).
 */
#include "sts/domain.h"

#include <idn2.h>
#include <string.h>

#include "base/buf.h"

#define LABEL_MAX 63

/* Names in real mail are far shorter; the cap bounds how much work a peer
 * can make libidn2 do.  A 253-octet A-label name decodes to well under
 * this many octets of UTF-8 unless padded with characters UTS#46 ignores. */
#define IDN_INPUT_MAX 1024

#define IDN_FLAGS (IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT)

static bool is_ldh(unsigned char ch)
{
    return sts_is_alnum(ch) || ch == '-';
}

/* Describe an unacceptable byte so that the reason is printable and
 * carries no raw control characters from the peer into a log.  where is
 * "at offset" or "in label". */
static void why_bad_byte(sts_why *why, const char *where, size_t n, unsigned char ch)
{
    if (ch == '\0')
        sts_why_set(why, "NUL byte %s %zu", where, n);
    else if (ch < 0x20 || ch == 0x7f)
        sts_why_set(why, "control character 0x%02x %s %zu", ch, where, n);
    else if (ch >= 0x80)
        sts_why_set(why, "non-ASCII byte 0x%02x %s %zu", ch, where, n);
    else
        sts_why_set(why, "'%c' %s %zu is not allowed in a host name", ch, where, n);
}

static bool label_all_digits(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!sts_is_digit((unsigned char)p[i]))
            return false;
    return true;
}

/* The structural rules shared by normalised names and host names: LDH
 * labels of 1..63 octets not starting or ending with '-', at most 253
 * octets, no trailing dot, last label not all-numeric.  Either case of
 * letters is accepted; no libidn2. */
static bool ldh_check(const char *s, size_t len, sts_why *why)
{
    size_t start = 0, idx = 0, last_start = 0;

    if (len == 0) {
        sts_why_set(why, "empty domain name");
        return false;
    }
    while (start <= len) {
        const char *dot = memchr(s + start, '.', len - start);
        size_t end = dot != NULL ? (size_t)(dot - s) : len;
        size_t n = end - start;

        idx++;
        if (n == 0) {
            sts_why_set(why, "label %zu is empty", idx);
            return false;
        }
        if (n > LABEL_MAX) {
            sts_why_set(why, "label %zu is %zu octets, the limit is %d", idx, n, LABEL_MAX);
            return false;
        }
        for (size_t i = start; i < end; i++) {
            if (!is_ldh((unsigned char)s[i])) {
                why_bad_byte(why, "in label", idx, (unsigned char)s[i]);
                return false;
            }
        }
        if (s[start] == '-') {
            sts_why_set(why, "label %zu starts with a hyphen", idx);
            return false;
        }
        if (s[end - 1] == '-') {
            sts_why_set(why, "label %zu ends with a hyphen", idx);
            return false;
        }
        last_start = start;
        start = end + 1;
    }
    if (len > STS_DOMAIN_MAX) {
        sts_why_set(why, "name is %zu octets, the limit is %d", len, STS_DOMAIN_MAX);
        return false;
    }
    if (label_all_digits(s + last_start, len - last_start)) {
        sts_why_set(why, "last label \"%.*s\" is all-numeric: an IP address is not a domain",
                    (int)(len - last_start), s + last_start);
        return false;
    }
    return true;
}

static sts_status idn_status(int rc)
{
    return rc == IDN2_MALLOC ? STS_NOMEM : STS_PERMFAIL;
}

/* An "xn--" label is only an A-label if decoding it and encoding the result
 * again gives the same label; anything else (bad punycode, a decoded form
 * IDNA2008 disallows, a non-canonical encoding) would let two spellings
 * name one domain, or name nothing. */
static sts_status alabel_check(const char *label, size_t n, size_t idx, sts_why *why)
{
    char lab[LABEL_MAX + 1];
    char *u = NULL;
    uint8_t *back = NULL;
    sts_status st = STS_OK;
    int rc;

    memcpy(lab, label, n); /* n <= LABEL_MAX: ldh_check ran first */
    lab[n] = '\0';
    rc = idn2_to_unicode_8z8z(lab, &u, 0);
    if (rc != IDN2_OK) {
        st = idn_status(rc);
        sts_why_set(why, "label %zu is not a valid A-label: %s", idx, idn2_strerror(rc));
        goto done;
    }
    rc = idn2_lookup_u8((const uint8_t *)u, &back, IDN_FLAGS);
    if (rc != IDN2_OK) {
        st = idn_status(rc);
        sts_why_set(why, "label %zu is not a valid A-label: %s", idx, idn2_strerror(rc));
        goto done;
    }
    if (strcmp((const char *)back, lab) != 0) {
        st = STS_PERMFAIL;
        sts_why_set(why, "label %zu is not a valid A-label: it does not round-trip", idx);
        goto done;
    }
done:
    idn2_free(u);
    idn2_free(back);
    return st;
}

/* name is lower-case and has passed ldh_check. */
static sts_status alabels_check(const char *name, size_t len, sts_why *why)
{
    size_t start = 0, idx = 0;

    while (start < len) {
        const char *dot = memchr(name + start, '.', len - start);
        size_t end = dot != NULL ? (size_t)(dot - name) : len;

        idx++;
        if (end - start >= 4 && memcmp(name + start, "xn--", 4) == 0) {
            sts_status st = alabel_check(name + start, end - start, idx, why);

            if (st != STS_OK)
                return st;
        }
        start = end + 1;
    }
    return STS_OK;
}

/* Copy an ldh_check'ed name, lower-cased, and vet its A-labels. */
static sts_status finish(const char *s, size_t len, char out[STS_DOMAIN_MAX + 1], sts_why *why)
{
    for (size_t i = 0; i < len; i++)
        out[i] = (char)sts_to_lower((unsigned char)s[i]);
    out[len] = '\0';
    return alabels_check(out, len, why);
}

sts_status sts_domain_normalize(const char *in, size_t len, char out[STS_DOMAIN_MAX + 1],
                                sts_why *why)
{
    char idnbuf[IDN_INPUT_MAX + 1];
    uint8_t *alabels = NULL;
    bool non_ascii = false;
    sts_status st = STS_PERMFAIL;
    size_t alen;
    int rc;

    out[0] = '\0';
    if (in == NULL || len == 0) {
        sts_why_set(why, "empty domain name");
        goto done;
    }
    if (sts_domain_is_literal(in, len)) {
        sts_why_set(why, "address literal: no MTA-STS policy applies");
        goto done;
    }
    /* Bytes that can never be part of a name are refused here, with their
     * offset, before libidn2 could map or misreport them. */
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)in[i];

        if (ch >= 0x80)
            non_ascii = true;
        else if (!is_ldh(ch) && ch != '.') {
            why_bad_byte(why, "at offset", i, ch);
            goto done;
        }
    }
    if (in[len - 1] == '.')
        len--;
    if (len == 0) {
        sts_why_set(why, "empty domain name");
        goto done;
    }

    if (!non_ascii) {
        if (!ldh_check(in, len, why))
            goto done;
        st = finish(in, len, out, why);
        goto done;
    }

    if (len > IDN_INPUT_MAX) {
        sts_why_set(why, "name is %zu octets of UTF-8, the limit is %d", len, IDN_INPUT_MAX);
        goto done;
    }
    /* libidn2 wants a C string; the scan above proved there is no NUL. */
    memcpy(idnbuf, in, len);
    idnbuf[len] = '\0';
    rc = idn2_lookup_u8((const uint8_t *)idnbuf, &alabels, IDN_FLAGS);
    if (rc != IDN2_OK) {
        st = idn_status(rc);
        sts_why_set(why, "invalid IDN: %s", idn2_strerror(rc));
        goto done;
    }
    /* UTS#46 maps some characters to '.', '_' and the like: the result
     * gets the same checks as an ASCII name. */
    alen = strlen((const char *)alabels);
    if (!ldh_check((const char *)alabels, alen, why))
        goto done;
    st = finish((const char *)alabels, alen, out, why);

done:
    idn2_free(alabels);
    if (st != STS_OK)
        out[0] = '\0';
    return st;
}

bool sts_domain_is_literal(const char *in, size_t len)
{
    return in != NULL && len > 0 && in[0] == '[';
}

bool sts_hostname_valid(const char *s, size_t len)
{
    return s != NULL && ldh_check(s, len, NULL);
}
