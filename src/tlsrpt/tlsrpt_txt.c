/*
 * tlsrpt_txt.c - the _smtp._tls.<domain> TXT record (see tlsrpt_txt.h).
 *
 * Implements RFC 8460 section 3: the discard-then-count selection among
 * the TXT records of a name, the record's ABNF, and the checks of each
 * "rua" URI (RFC 3986 syntax with ',', '!' and ';' percent-encoded; only
 * the mailto: (RFC 6068) and https: schemes are supported).  Input is
 * untrusted DNS data, read through bounded cursors only.
 *
 * Choices where the RFC leaves room (written into mtasts-report(1) too):
 * - A record "begins with v=TLSRPTv1;" when "v=TLSRPTv1" is followed by
 *   ';', WSP or the end, as the ABNF's field-delim allows WSP before ';'
 *   (same rule as txt.c for v=STSv1).
 * - Trailing whitespace after the last field is accepted.
 * The version test, the field delimiters, extension fields and the
 * discard-then-count step are txt.c's shared walker (txt.h): the two
 * grammars have the same shape.
 * - The field structure is strict (an empty field, an empty URI in the
 *   list, a byte outside the grammar make the record invalid: no
 *   reports), but one bad or unsupported URI only removes itself: the
 *   domain still gets its reports at the other URIs.
 * - A URI must not carry a literal '!' (RFC 8460 requires it encoded):
 *   a DMARC habit such as "mailto:a@example.com!10m" is not guessed at.
 * - mailto: with several addresses, a quoted local part, an address
 *   literal or no address (only "?to=") is skipped; header fields are
 *   ignored.  https: with user information or an IP literal is skipped
 *   (credentials are not sent anywhere; WebPKI needs a host name).
 */
#include "tlsrpt/tlsrpt_txt.h"

#include <stdio.h>
#include <string.h>

#include "base/buf.h"

#define TLSRPT_VERSION "v=TLSRPTv1"
#define TLSRPT_LOCAL_MAX 64

/* What one list item of rua may be made of before URI checks: visible
 * ASCII except the two separators. */
static bool is_uri_token_char(unsigned char ch)
{
    return ch >= 0x21 && ch <= 0x7e && ch != ',' && ch != ';';
}

static bool is_hex(unsigned char ch)
{
    return sts_is_digit(ch) || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

static unsigned hex_val(unsigned char ch)
{
    if (sts_is_digit(ch))
        return ch - '0';
    return (unsigned)(sts_to_lower(ch) - 'a' + 10);
}

/* RFC 3986 section 2: unreserved / reserved / "%" (checked apart). */
static bool is_uri_char(unsigned char ch)
{
    return sts_is_alnum(ch) || (ch != 0 && strchr("-._~:/?#[]@!$&'()*+,;=%", ch) != NULL);
}

/* RFC 5322 atext. */
static bool is_atext(unsigned char ch)
{
    return sts_is_alnum(ch) || (ch != 0 && strchr("!#$%&'*+-/=?^_`{|}~", ch) != NULL);
}

bool sts_tlsrpt_is_record(const char *rec, size_t len)
{
    return sts_txt_has_version(rec, len, TLSRPT_VERSION);
}

/* ------------------------------------------------------------------ URIs */

/* Percent-decode src into dst (capacity dstsz including the NUL).  The
 * caller has checked that every '%' is followed by two hex digits. */
static bool pct_decode(const char *src, size_t n, char *dst, size_t dstsz, size_t *outlen)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)src[i];

        if (ch == '%') {
            ch = (unsigned char)(hex_val((unsigned char)src[i + 1]) * 16 +
                                 hex_val((unsigned char)src[i + 2]));
            i += 2;
        }
        if (o + 1 >= dstsz)
            return false;
        dst[o++] = (char)ch;
    }
    dst[o] = '\0';
    *outlen = o;
    return true;
}

/* local-part as dot-atom: atext runs separated by single dots. */
static bool dot_atom_ok(const char *s, size_t n)
{
    if (n == 0 || s[0] == '.' || s[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (ch == '.') {
            if (s[i + 1] == '.')
                return false;
        } else if (!is_atext(ch)) {
            return false;
        }
    }
    return true;
}

static sts_status parse_mailto(sts_cur rest, sts_tlsrpt_uri *u, sts_why *why)
{
    char dec[STS_TLSRPT_ADDR_MAX + 1], dom[STS_DOMAIN_MAX + 1], q[80];
    sts_cur to = rest;
    const char *at;
    size_t n, local_len;
    sts_why inner;
    int w;

    if (sts_cur_take_until(&rest, '?', &to))
        rest.len = 0; /* hfields: ignored */
    if (to.len == 0) {
        sts_why_set(why, "mailto URI without an address");
        return STS_PERMFAIL;
    }
    if (!pct_decode(to.p, to.len, dec, sizeof(dec), &n)) {
        sts_why_set(why, "mailto address longer than %d characters", STS_TLSRPT_ADDR_MAX);
        return STS_PERMFAIL;
    }
    if (memchr(dec, ',', n) != NULL) {
        sts_why_set(why, "several addresses in one mailto URI are not supported");
        return STS_PERMFAIL;
    }
    at = memchr(dec, '@', n);
    if (at == NULL || memchr(at + 1, '@', n - (size_t)(at + 1 - dec)) != NULL) {
        sts_why_set(why, "mailto address '%s' is not local@domain", sts_quote(q, sizeof(q), dec, n));
        return STS_PERMFAIL;
    }
    local_len = (size_t)(at - dec);
    if (local_len > TLSRPT_LOCAL_MAX || !dot_atom_ok(dec, local_len)) {
        sts_why_set(why, "mailto local part '%s' is not a plain (dot-atom) local part",
                    sts_quote(q, sizeof(q), dec, local_len));
        return STS_PERMFAIL;
    }
    if (sts_domain_normalize(at + 1, n - local_len - 1, dom, &inner) != STS_OK) {
        sts_why_set(why, "mailto domain: %s", inner.text);
        return STS_PERMFAIL;
    }
    w = snprintf(u->addr, sizeof(u->addr), "%.*s@%s", (int)local_len, dec, dom);
    if (w < 0 || (size_t)w >= sizeof(u->addr)) {
        sts_why_set(why, "mailto address longer than %d characters", STS_TLSRPT_ADDR_MAX);
        return STS_PERMFAIL;
    }
    u->scheme = STS_TLSRPT_MAILTO;
    return STS_OK;
}

static sts_status parse_https(sts_cur rest, sts_tlsrpt_uri *u, sts_why *why)
{
    char q[80];
    sts_cur auth, host, pathq;
    sts_why inner;
    uint64_t port = 443;
    bool port_given = false;
    size_t i;
    int w;

    if (!sts_cur_take_lit(&rest, "//")) {
        sts_why_set(why, "https URI without '//' and a host");
        return STS_PERMFAIL;
    }
    for (i = 0; i < rest.len && rest.p[i] != '/' && rest.p[i] != '?' && rest.p[i] != '#'; i++)
        ;
    auth = sts_cur_make(rest.p, i);
    pathq = sts_cur_make(rest.p + i, rest.len - i);
    if (memchr(auth.p, '@', auth.len) != NULL) {
        sts_why_set(why, "user information in an https URI is not supported");
        return STS_PERMFAIL;
    }
    if (auth.len > 0 && auth.p[0] == '[') {
        sts_why_set(why, "an IP literal host is not supported (no name to verify)");
        return STS_PERMFAIL;
    }
    host = auth;
    if (sts_cur_take_until(&auth, ':', &host)) {
        (void)sts_cur_take_char(&auth, ':');
        if (auth.len > 0) {
            if (!sts_cur_take_number(&auth, 5, 65535, &port) || auth.len != 0 || port == 0) {
                sts_why_set(why, "bad port '%s'", sts_quote(q, sizeof(q), auth.p, auth.len));
                return STS_PERMFAIL;
            }
            port_given = true;
        }
    }
    if (host.len == 0 || memchr(host.p, '%', host.len) != NULL) {
        sts_why_set(why, "https URI without a plain host name");
        return STS_PERMFAIL;
    }
    if (sts_domain_normalize(host.p, host.len, u->host, &inner) != STS_OK) {
        sts_why_set(why, "https host: %s", inner.text);
        return STS_PERMFAIL;
    }
    /* The fragment is the client's business: never sent. */
    for (i = 0; i < pathq.len && pathq.p[i] != '#'; i++)
        ;
    pathq.len = i;
    if (port_given && port != 443)
        w = snprintf(u->url, sizeof(u->url), "https://%s:%u%.*s", u->host, (unsigned)port,
                     (int)pathq.len, pathq.p);
    else
        w = snprintf(u->url, sizeof(u->url), "https://%s%.*s", u->host, (int)pathq.len,
                     pathq.p);
    if (w < 0 || (size_t)w >= sizeof(u->url)) {
        sts_why_set(why, "https URL longer than %d characters", STS_TLSRPT_URI_MAX);
        return STS_PERMFAIL;
    }
    u->port = (unsigned)port;
    u->scheme = STS_TLSRPT_HTTPS;
    return STS_OK;
}

sts_status sts_tlsrpt_uri_parse(const char *uri, size_t len, sts_tlsrpt_uri *out, sts_why *why)
{
    sts_tlsrpt_uri u;
    sts_cur c = sts_cur_make(uri, uri != NULL ? len : 0), scheme;
    char q[80];
    sts_status st;
    size_t i;

    if (c.len == 0) {
        sts_why_set(why, "empty URI");
        return STS_PERMFAIL;
    }
    if (c.len > STS_TLSRPT_URI_MAX) {
        sts_why_set(why, "URI longer than %d characters", STS_TLSRPT_URI_MAX);
        return STS_PERMFAIL;
    }
    for (i = 0; i < c.len; i++) {
        unsigned char ch = (unsigned char)c.p[i];

        if (ch == '!' || ch == ',' || ch == ';') {
            sts_why_set(why, "'%c' must be percent-encoded in a report URI (RFC 8460 section 3)",
                        ch);
            return STS_PERMFAIL;
        }
        if (!is_uri_char(ch)) {
            sts_why_set(why, "'%s' is not allowed in a URI", sts_quote(q, sizeof(q), c.p + i, 1));
            return STS_PERMFAIL;
        }
        if (ch == '%' && (c.len - i < 3 || !is_hex((unsigned char)c.p[i + 1]) ||
                          !is_hex((unsigned char)c.p[i + 2]))) {
            sts_why_set(why, "'%%' not followed by two hex digits");
            return STS_PERMFAIL;
        }
    }
    /* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":" */
    for (i = 0; i < c.len && (sts_is_alnum((unsigned char)c.p[i]) || c.p[i] == '+' ||
                              c.p[i] == '-' || c.p[i] == '.');
         i++)
        ;
    if (i == 0 || i == c.len || c.p[i] != ':' || !sts_is_alpha((unsigned char)c.p[0])) {
        sts_why_set(why, "no URI scheme");
        return STS_PERMFAIL;
    }
    scheme = sts_cur_make(c.p, i);
    c.p += i + 1;
    c.len -= i + 1;
    memset(&u, 0, sizeof(u));
    if (sts_cur_eq_nocase(&scheme, "mailto")) {
        st = parse_mailto(c, &u, why);
    } else if (sts_cur_eq_nocase(&scheme, "https")) {
        st = parse_https(c, &u, why);
    } else {
        sts_why_set(why, "scheme '%s' is not supported (only mailto and https)",
                    sts_quote(q, sizeof(q), scheme.p, scheme.len));
        return STS_NOTFOUND;
    }
    if (st != STS_OK)
        return st;
    memcpy(u.uri, uri, len);
    u.uri[len] = '\0';
    if (out != NULL)
        *out = u;
    return STS_OK;
}

/* ---------------------------------------------------------------- record */

static void skip_uri(sts_tlsrpt *out, const char *uri, size_t len, const char *reason)
{
    char q[96];

    if (out->ignored++ == 0)
        sts_why_set(&out->ignored_why, "rua URI '%s' skipped: %s",
                    sts_quote(q, sizeof(q), uri, len), reason);
}

static void add_uri(sts_tlsrpt *out, const sts_cur *tok)
{
    sts_tlsrpt_uri u;
    sts_why why;

    if (sts_tlsrpt_uri_parse(tok->p, tok->len, &u, &why) != STS_OK) {
        skip_uri(out, tok->p, tok->len, why.text);
        return;
    }
    for (size_t i = 0; i < out->n; i++) {
        if (strcmp(out->rua[i].uri, u.uri) == 0) {
            skip_uri(out, tok->p, tok->len, "listed twice");
            return;
        }
    }
    if (out->n == STS_TLSRPT_MAX_RUA) {
        skip_uri(out, tok->p, tok->len, "too many URIs");
        return;
    }
    out->rua[out->n++] = u;
}

/* tlsrpt-rua after "rua=": tlsrpt-uri *(*WSP "," *WSP tlsrpt-uri).
 * out == NULL: check only (a second rua field). */
static sts_status parse_rua(sts_cur *c, const char *rec, sts_tlsrpt *out, sts_why *why)
{
    char q[16];
    sts_cur tok, save;

    for (;;) {
        if (!sts_cur_take_while(c, is_uri_token_char, &tok)) {
            if (sts_txt_at_field_end(c) || c->p[0] == ',')
                sts_why_set(why, "empty URI in the rua list at offset %zu", (size_t)(c->p - rec));
            else
                sts_why_set(why, "rua contains '%s'", sts_quote(q, sizeof(q), c->p, 1));
            return STS_PERMFAIL;
        }
        if (out != NULL)
            add_uri(out, &tok);
        save = *c;
        sts_cur_skip_wsp(c);
        if (!sts_cur_take_char(c, ',')) {
            *c = save;
            break;
        }
        sts_cur_skip_wsp(c);
    }
    if (!sts_txt_at_field_end(c)) {
        sts_why_set(why, "rua contains '%s'", sts_quote(q, sizeof(q), c->p, 1));
        return STS_PERMFAIL;
    }
    return STS_OK;
}

typedef struct rec_fields {
    sts_tlsrpt *out;
    bool have_rua;
} rec_fields;

static sts_status rec_field(void *arg, sts_cur *c, const char *rec, sts_why *why)
{
    rec_fields *f = arg;

    if (!sts_cur_take_lit(c, "rua="))
        return STS_NOTFOUND;
    if (parse_rua(c, rec, f->have_rua ? NULL : f->out, why) != STS_OK)
        return STS_PERMFAIL;
    f->have_rua = true;
    return STS_OK;
}

sts_status sts_tlsrpt_parse(const char *rec, size_t len, sts_tlsrpt *out, sts_why *why)
{
    rec_fields f = { out, false };
    sts_status st = STS_PERMFAIL;

    out->n = 0;
    out->ignored = 0;
    out->ignored_why.text[0] = '\0';
    if (sts_txt_walk(rec, len, TLSRPT_VERSION, rec_field, &f, why) != STS_OK)
        goto done;
    if (!f.have_rua) {
        sts_why_set(why, "required rua field missing");
        goto done;
    }
    st = STS_OK;
done:
    if (st != STS_OK)
        out->n = 0;
    return st;
}

sts_status sts_tlsrpt_select(const sts_txt_rr *recs, size_t n, sts_tlsrpt *out, sts_why *why)
{
    size_t which;
    sts_why inner;
    sts_status st;

    out->n = 0;
    out->ignored = 0;
    out->ignored_why.text[0] = '\0';
    st = sts_txt_select_one(recs, n, TLSRPT_VERSION, &which, why);
    if (st != STS_OK)
        return st;
    st = sts_tlsrpt_parse(recs[which].data, recs[which].len, out, &inner);
    if (st != STS_OK)
        sts_why_set(why, "invalid " TLSRPT_VERSION " record: %s", inner.text);
    return st;
}
