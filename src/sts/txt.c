/*
 * txt.c - the _mta-sts.<domain> TXT record (see txt.h).
 *
 * Implements RFC 8461 3.1: the discard-then-count selection among the TXT
 * records of a name, and the ABNF of the one remaining record.  Input is
 * untrusted DNS data: it is read through a bounded cursor only, never
 * assumed NUL-terminated, and any byte outside the grammar makes the
 * record invalid (RFC 8461 3.1: a syntactically invalid record means the
 * domain has no usable policy).
 *
 * Choices where the RFC leaves room or its grammar is stricter than the
 * records seen in the wild:
 * - Trailing whitespace after the last field is accepted ("v=STSv1;
 *   id=1 ").  The ABNF only allows WSP as part of a ";" delimiter, but
 *   such records are common, the whitespace carries no meaning and
 *   rejecting them would silently turn MTA-STS off for the domain.
 * - "id=" always introduces the id field, so a value that is not 1..32
 *   letters and digits ("id=abc-def", a 33-character id) makes the record
 *   invalid instead of being read as an unknown extension called "id".
 *   Every id field is checked; the first one counts.
 *
 * The field walker (sts_txt_walk and its helpers, at the end) is shared
 * with the RFC 8460 record parser in tlsrpt_txt.c, whose grammar has the
 * same shape; the choices above about WSP hold for both.
 */
#include "sts/txt.h"

#include <string.h>

#define TXT_VERSION "v=STSv1"
#define TXT_NAME_MAX 32 /* sts-ext-name: 1 + *31 */

static bool txt_is_id_char(unsigned char ch)
{
    return sts_is_alnum(ch);
}

static bool txt_is_name_char(unsigned char ch)
{
    return sts_is_alnum(ch) || ch == '_' || ch == '-' || ch == '.';
}

/* sts-ext-value = 1*(%x21-3A / %x3C / %x3E-7E) */
static bool txt_is_ext_value_char(unsigned char ch)
{
    return ch >= 0x21 && ch <= 0x7e && ch != ';' && ch != '=';
}

bool sts_txt_is_sts(const char *rec, size_t len)
{
    return sts_txt_has_version(rec, len, TXT_VERSION);
}

/* sts-id = %s"id=" 1*32(ALPHA / DIGIT); "id=" already consumed. */
static sts_status txt_parse_id(sts_cur *c, sts_cur *id, bool *have_id, sts_why *why)
{
    char q[64];
    sts_cur val;

    if (!sts_cur_take_while(c, txt_is_id_char, &val)) {
        if (sts_txt_at_field_end(c)) {
            sts_why_set(why, "id field is empty");
        } else {
            sts_why_set(why, "id contains '%s', only letters and digits are allowed",
                        sts_quote(q, sizeof(q), c->p, 1));
        }
        return STS_PERMFAIL;
    }
    if (!sts_txt_at_field_end(c)) {
        sts_why_set(why, "id contains '%s', only letters and digits are allowed",
                    sts_quote(q, sizeof(q), c->p, 1));
        return STS_PERMFAIL;
    }
    if (val.len > STS_ID_MAX) {
        sts_why_set(why, "id is %zu characters long, at most %d are allowed", val.len,
                    STS_ID_MAX);
        return STS_PERMFAIL;
    }
    if (!*have_id) {
        *id = val;
        *have_id = true;
    }
    return STS_OK;
}

typedef struct txt_fields {
    sts_cur id;
    bool have_id;
} txt_fields;

static sts_status txt_field(void *arg, sts_cur *c, const char *rec, sts_why *why)
{
    txt_fields *f = arg;

    (void)rec;
    if (!sts_cur_take_lit(c, "id="))
        return STS_NOTFOUND;
    return txt_parse_id(c, &f->id, &f->have_id, why);
}

sts_status sts_txt_parse(const char *rec, size_t len, sts_txt *out, sts_why *why)
{
    txt_fields f = { sts_cur_make(NULL, 0), false };

    if (sts_txt_walk(rec, len, TXT_VERSION, txt_field, &f, why) != STS_OK)
        return STS_PERMFAIL;
    if (!f.have_id) {
        sts_why_set(why, "required id field missing");
        return STS_PERMFAIL;
    }
    if (out != NULL) {
        memcpy(out->id, f.id.p, f.id.len);
        out->id[f.id.len] = '\0';
    }
    return STS_OK;
}

sts_status sts_txt_select(const sts_txt_rr *recs, size_t n, sts_txt *out, sts_why *why)
{
    size_t which;
    sts_why inner;
    sts_status st;

    st = sts_txt_select_one(recs, n, TXT_VERSION, &which, why);
    if (st != STS_OK)
        return st;
    st = sts_txt_parse(recs[which].data, recs[which].len, out, &inner);
    if (st != STS_OK)
        sts_why_set(why, "invalid " TXT_VERSION " record: %s", inner.text);
    return st;
}

/* ------------------------------------------- the shared field walker */

bool sts_txt_has_version(const char *rec, size_t len, const char *version)
{
    size_t n = strlen(version);

    if (rec == NULL || len < n || memcmp(rec, version, n) != 0)
        return false;
    return len == n || rec[n] == ';' || sts_is_wsp((unsigned char)rec[n]);
}

bool sts_txt_at_field_end(const sts_cur *c)
{
    return sts_cur_empty(c) || c->p[0] == ';' || sts_is_wsp((unsigned char)c->p[0]);
}

/* Called with *c just after a complete field: consume the field-delim.
 * *more = true: *c is at the next field's first byte; false: the record is
 * used up (an optional trailing delimiter and WSP consumed). */
static sts_status txt_next_field(sts_cur *c, const char *rec, bool *more, sts_why *why)
{
    *more = false;
    sts_cur_skip_wsp(c);
    if (sts_cur_empty(c))
        return STS_OK; /* trailing WSP without ';': tolerated, see the top */
    if (!sts_cur_take_char(c, ';')) {
        char q[16];

        sts_why_set(why, "expected ';' at offset %zu, found '%s'", (size_t)(c->p - rec),
                    sts_quote(q, sizeof(q), c->p, 1));
        return STS_PERMFAIL;
    }
    sts_cur_skip_wsp(c);
    if (sts_cur_empty(c))
        return STS_OK; /* the optional trailing delimiter */
    if (c->p[0] == ';') {
        sts_why_set(why, "empty field at offset %zu", (size_t)(c->p - rec));
        return STS_PERMFAIL;
    }
    *more = true;
    return STS_OK;
}

/* sts-extension = sts-ext-name "=" sts-ext-value; checked, then ignored.
 * *c is at the field's first byte. */
static sts_status txt_skip_extension(sts_cur *c, sts_why *why)
{
    char q[64], q2[16];
    sts_cur name, val;

    if (!sts_is_alnum((unsigned char)c->p[0]) ||
        !sts_cur_take_while(c, txt_is_name_char, &name)) {
        sts_why_set(why, "field starts with '%s', expected a field name",
                    sts_quote(q, sizeof(q), c->p, 1));
        return STS_PERMFAIL;
    }
    if (name.len > TXT_NAME_MAX) {
        sts_why_set(why, "field name '%s' is longer than %d characters",
                    sts_quote(q, sizeof(q), name.p, name.len), TXT_NAME_MAX);
        return STS_PERMFAIL;
    }
    if (!sts_cur_take_char(c, '=')) {
        sts_why_set(why, "field '%s' has no '='", sts_quote(q, sizeof(q), name.p, name.len));
        return STS_PERMFAIL;
    }
    if (!sts_cur_take_while(c, txt_is_ext_value_char, &val) && sts_txt_at_field_end(c)) {
        sts_why_set(why, "field '%s' has an empty value",
                    sts_quote(q, sizeof(q), name.p, name.len));
        return STS_PERMFAIL;
    }
    if (!sts_txt_at_field_end(c)) {
        sts_why_set(why, "value of field '%s' contains '%s'",
                    sts_quote(q, sizeof(q), name.p, name.len),
                    sts_quote(q2, sizeof(q2), c->p, 1));
        return STS_PERMFAIL;
    }
    return STS_OK;
}

sts_status sts_txt_walk(const char *rec, size_t len, const char *version, sts_txt_field_fn *fn,
                        void *arg, sts_why *why)
{
    sts_cur c = sts_cur_make(rec, rec != NULL ? len : 0);
    bool more;
    sts_status st;

    if (!sts_txt_has_version(c.p, c.len, version)) {
        sts_why_set(why, "record does not start with %s", version);
        return STS_PERMFAIL;
    }
    (void)sts_cur_take_lit(&c, version);
    /* Loop invariant: c is just after a complete field (version or other). */
    for (;;) {
        if (txt_next_field(&c, rec, &more, why) != STS_OK)
            return STS_PERMFAIL;
        if (!more)
            return STS_OK;
        st = fn(arg, &c, rec, why);
        if (st == STS_NOTFOUND)
            st = txt_skip_extension(&c, why);
        if (st != STS_OK)
            return st;
    }
}

sts_status sts_txt_select_one(const sts_txt_rr *recs, size_t n, const char *version,
                              size_t *which, sts_why *why)
{
    size_t count = 0;

    /* RFC 8461 3.1, RFC 8460 section 3: discard first, then count what is left. */
    for (size_t i = 0; i < n; i++) {
        if (sts_txt_has_version(recs[i].data, recs[i].len, version)) {
            count++;
            *which = i;
        }
    }
    if (count == 0) {
        sts_why_set(why, "no %s record among %zu TXT records", version, n);
        return STS_NOTFOUND;
    }
    if (count > 1) {
        sts_why_set(why, "found %zu %s records, exactly one is allowed", count, version);
        return STS_PERMFAIL;
    }
    return STS_OK;
}
