/*
 * policy.c - the MTA-STS policy file (see policy.h).
 *
 * Implements RFC 8461 3.2 (the policy grammar and the meaning of its
 * fields) and the body size limit of 3.3.  The body is untrusted HTTPS
 * content: it is read through a bounded cursor, never assumed
 * NUL-terminated, and every line must follow the grammar, known key or
 * not.  A policy that does not parse is rejected as a whole.
 *
 * The grammar (RFC 8461 3.2), in short:
 *   sts-policy-record  = sts-policy-field *WSP
 *                        *(sts-policy-term sts-policy-field *WSP) [sts-policy-term]
 *   sts-policy-field   = key sts-policy-field-delim value
 *   sts-policy-field-delim = ":" *WSP
 *   sts-policy-term    = LF / CRLF
 *   key (sts-policy-ext-name) = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
 *   sts-policy-ext-value = sts-policy-vchar [*(%x20 / sts-policy-vchar) sts-policy-vchar]
 *   sts-policy-vchar   = VCHAR / UTF8-2 / UTF8-3 / UTF8-4
 *
 * Choices where the RFC leaves room:
 * - Empty lines and lines of only whitespace are ignored (the grammar has
 *   none, but a blank line at the end of a hand-written file is common
 *   and harmless).
 * - No whitespace is allowed before the colon ("mode : enforce") nor at
 *   the start of a line: the grammar has none, and a line starting with
 *   whitespace looks like an RFC 5322 continuation, which this format
 *   does not have.  Such lines make the policy invalid.
 * - Inside a value only SP may separate visible characters (the ABNF has
 *   %x20, not WSP); a TAB or any other control byte, or a malformed UTF-8
 *   sequence, makes the policy invalid.  Well-formed UTF-8 passes this
 *   generic check in any value; the known keys' own grammars then admit
 *   only ASCII, so in effect UTF-8 is allowed in unknown keys' values.
 * - A CR is stripped only right before LF.  Any other CR (including one
 *   at the very end of a body without a final LF) is a control byte in a
 *   value, so the policy is invalid.
 * - A repeated version, mode or max_age: the first one counts (3.2); the
 *   later lines must still be well-formed lines but their values are not
 *   checked against the field's own grammar.
 * - max_age above the RFC maximum is clamped to it, not rejected.
 */
#include "sts/policy.h"

#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "sts/mx.h"

#define POLICY_KEY_MAX 32 /* (ALPHA / DIGIT) *31(...) */

typedef struct policy_state {
    sts_policy *p;
    size_t mx_cap;
    unsigned line;
    bool have_version, have_mode, have_max_age;
} policy_state;

static bool policy_is_key_char(unsigned char ch)
{
    return sts_is_alnum(ch) || ch == '_' || ch == '-' || ch == '.';
}

static bool policy_is_tail(unsigned char ch)
{
    return ch >= 0x80 && ch <= 0xbf;
}

/* Length of the well-formed UTF8-2 / UTF8-3 / UTF8-4 sequence (RFC 3629)
 * at p[0..n), or 0 if there is none (overlong forms, surrogates and code
 * points above U+10FFFF are not well-formed). */
static size_t policy_utf8_len(const unsigned char *p, size_t n)
{
    unsigned char b0 = p[0];
    unsigned char lo = 0x80, hi = 0xbf;
    size_t len;

    if (b0 >= 0xc2 && b0 <= 0xdf) {
        len = 2;
    } else if (b0 >= 0xe0 && b0 <= 0xef) {
        len = 3;
        if (b0 == 0xe0)
            lo = 0xa0;
        else if (b0 == 0xed)
            hi = 0x9f;
    } else if (b0 >= 0xf0 && b0 <= 0xf4) {
        len = 4;
        if (b0 == 0xf0)
            lo = 0x90;
        else if (b0 == 0xf4)
            hi = 0x8f;
    } else {
        return 0;
    }
    if (n < len || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (!policy_is_tail(p[i]))
            return 0;
    return len;
}

/* sts-policy-ext-value, given a value already stripped of leading and
 * trailing WSP (so it neither starts nor ends with SP). */
static sts_status policy_check_value(const policy_state *s, const sts_cur *key,
                                     const sts_cur *val, sts_why *why)
{
    const unsigned char *v = (const unsigned char *)val->p;
    char qk[64];
    size_t i = 0;

    if (val->len == 0) {
        sts_why_set(why, "line %u: '%s' has an empty value", s->line,
                    sts_quote(qk, sizeof(qk), key->p, key->len));
        return STS_PERMFAIL;
    }
    while (i < val->len) {
        if (v[i] >= 0x20 && v[i] <= 0x7e) {
            i++;
        } else if (v[i] >= 0x80) {
            size_t n = policy_utf8_len(v + i, val->len - i);

            if (n == 0) {
                sts_why_set(why, "line %u: value of '%s' is not valid UTF-8 at byte 0x%02x",
                            s->line, sts_quote(qk, sizeof(qk), key->p, key->len), v[i]);
                return STS_PERMFAIL;
            }
            i += n;
        } else {
            sts_why_set(why, "line %u: value of '%s' contains the control byte 0x%02x",
                        s->line, sts_quote(qk, sizeof(qk), key->p, key->len), v[i]);
            return STS_PERMFAIL;
        }
    }
    return STS_OK;
}

static sts_status policy_add_mx(policy_state *s, const sts_cur *val, sts_why *why)
{
    sts_policy *p = s->p;
    size_t n = val->len;
    char *copy;

    if (!sts_mx_pattern_valid(val->p, val->len)) {
        char q[96];

        sts_why_set(why, "line %u: mx value '%s' is not a host name or *.host name", s->line,
                    sts_quote(q, sizeof(q), val->p, val->len));
        return STS_PERMFAIL;
    }
    if (p->n_mx >= STS_POLICY_MAX_MX) {
        sts_why_set(why, "line %u: more than %u mx lines", s->line, STS_POLICY_MAX_MX);
        return STS_PERMFAIL;
    }
    if (p->n_mx == s->mx_cap) {
        size_t cap = s->mx_cap != 0 ? s->mx_cap * 2 : 4;
        char **mx;

        if (cap > STS_POLICY_MAX_MX)
            cap = STS_POLICY_MAX_MX;
        mx = sts_realloc_array(p->mx, cap, sizeof(*mx));
        if (mx == NULL)
            return STS_NOMEM;
        p->mx = mx;
        s->mx_cap = cap;
    }
    if (val->p[n - 1] == '.')
        n--; /* sts_mx_pattern_valid allows one trailing dot; we store none */
    copy = sts_strndup(val->p, n);
    if (copy == NULL)
        return STS_NOMEM;
    for (size_t i = 0; i < n; i++)
        copy[i] = (char)sts_to_lower((unsigned char)copy[i]);
    p->mx[p->n_mx++] = copy;
    return STS_OK;
}

static sts_status policy_field(policy_state *s, const sts_cur *key, const sts_cur *val,
                               sts_why *why)
{
    sts_policy *p = s->p;
    char q[64];

    if (sts_cur_eq(key, "version")) {
        if (s->have_version)
            return STS_OK;
        if (!sts_cur_eq(val, "STSv1")) {
            sts_why_set(why, "line %u: version '%s' is not STSv1", s->line,
                        sts_quote(q, sizeof(q), val->p, val->len));
            return STS_PERMFAIL;
        }
        s->have_version = true;
    } else if (sts_cur_eq(key, "mode")) {
        if (s->have_mode)
            return STS_OK;
        if (!sts_mode_from_name(val->p, val->len, &p->mode)) {
            sts_why_set(why, "line %u: mode '%s' is not enforce, testing or none", s->line,
                        sts_quote(q, sizeof(q), val->p, val->len));
            return STS_PERMFAIL;
        }
        s->have_mode = true;
    } else if (sts_cur_eq(key, "max_age")) {
        sts_cur num = *val;
        uint64_t v;

        if (s->have_max_age)
            return STS_OK;
        /* 1*10DIGIT: at most 9999999999, which fits in uint64_t. */
        if (!sts_cur_take_number(&num, 10, UINT64_MAX, &v) || !sts_cur_empty(&num)) {
            sts_why_set(why, "line %u: max_age '%s' is not 1 to 10 decimal digits", s->line,
                        sts_quote(q, sizeof(q), val->p, val->len));
            return STS_PERMFAIL;
        }
        p->max_age = v > STS_MAX_AGE_LIMIT ? STS_MAX_AGE_LIMIT : (uint32_t)v;
        s->have_max_age = true;
    } else if (sts_cur_eq(key, "mx")) {
        return policy_add_mx(s, val, why);
    }
    /* Any other key (including "Mode", keys are case-sensitive) is ignored. */
    return STS_OK;
}

/* One line, its terminator (LF or CRLF) already removed. */
static sts_status policy_line(policy_state *s, sts_cur line, sts_why *why)
{
    sts_cur rest = line, key, val;
    char q[64];
    sts_status st;

    sts_cur_skip_wsp(&rest);
    if (sts_cur_empty(&rest))
        return STS_OK; /* blank line: ignored */
    if (rest.p != line.p) {
        sts_why_set(why, "line %u starts with whitespace", s->line);
        return STS_PERMFAIL;
    }
    if (!sts_is_alnum((unsigned char)rest.p[0]) ||
        !sts_cur_take_while(&rest, policy_is_key_char, &key)) {
        sts_why_set(why, "line %u starts with '%s', expected a key", s->line,
                    sts_quote(q, sizeof(q), rest.p, 1));
        return STS_PERMFAIL;
    }
    if (key.len > POLICY_KEY_MAX) {
        sts_why_set(why, "line %u: key '%s' is longer than %d characters", s->line,
                    sts_quote(q, sizeof(q), key.p, key.len), POLICY_KEY_MAX);
        return STS_PERMFAIL;
    }
    if (!sts_cur_take_char(&rest, ':')) {
        if (memchr(line.p, ':', line.len) == NULL)
            sts_why_set(why, "line %u has no ':'", s->line);
        else
            sts_why_set(why, "line %u: key '%s' is not followed directly by ':'", s->line,
                        sts_quote(q, sizeof(q), key.p, key.len));
        return STS_PERMFAIL;
    }
    sts_cur_skip_wsp(&rest);
    val = rest;
    sts_cur_rtrim_wsp(&val);
    st = policy_check_value(s, &key, &val, why);
    if (st != STS_OK)
        return st;
    return policy_field(s, &key, &val, why);
}

sts_status sts_policy_parse(const char *body, size_t len, sts_policy **out, sts_why *why)
{
    policy_state s;
    sts_cur c;
    sts_status st;

    memset(&s, 0, sizeof(s));
    *out = NULL;
    if (body == NULL)
        len = 0;
    if (len > STS_POLICY_MAX_BODY) {
        sts_why_set(why, "policy body is %zu bytes, the limit is %u", len, STS_POLICY_MAX_BODY);
        st = STS_PERMFAIL;
        goto done;
    }
    if (len == 0) {
        sts_why_set(why, "policy body is empty");
        st = STS_PERMFAIL;
        goto done;
    }
    s.p = calloc(1, sizeof(*s.p));
    if (s.p == NULL) {
        st = STS_NOMEM;
        goto done;
    }
    s.p->text = sts_strndup(body, len);
    if (s.p->text == NULL) {
        st = STS_NOMEM;
        goto done;
    }
    s.p->text_len = len;

    c = sts_cur_make(body, len);
    while (!sts_cur_empty(&c)) {
        sts_cur line;

        s.line++;
        if (sts_cur_take_until(&c, '\n', &line)) {
            (void)sts_cur_take_char(&c, '\n');
            if (line.len > 0 && line.p[line.len - 1] == '\r')
                line.len--;
        } else {
            line = c; /* the last line, without a terminator */
            c = sts_cur_make(c.p + c.len, 0);
        }
        st = policy_line(&s, line, why);
        if (st != STS_OK)
            goto done;
    }

    st = STS_PERMFAIL;
    if (!s.have_version) {
        sts_why_set(why, "version field missing");
        goto done;
    }
    if (!s.have_mode) {
        sts_why_set(why, "mode field missing");
        goto done;
    }
    if (!s.have_max_age) {
        sts_why_set(why, "max_age field missing");
        goto done;
    }
    if (s.p->n_mx == 0 && s.p->mode != STS_MODE_NONE) {
        sts_why_set(why, "mx field missing (required when mode is %s)",
                    sts_mode_name(s.p->mode));
        goto done;
    }
    *out = s.p;
    s.p = NULL;
    st = STS_OK;
done:
    sts_policy_free(s.p);
    return st;
}

void sts_policy_free(sts_policy *p)
{
    if (p == NULL)
        return;
    if (p->mx != NULL)
        for (size_t i = 0; i < p->n_mx; i++)
            free(p->mx[i]);
    free(p->mx);
    free(p->text);
    free(p);
}

sts_policy *sts_policy_dup(const sts_policy *p)
{
    sts_policy *d = NULL, *ret = NULL;

    if (p == NULL)
        goto done;
    d = calloc(1, sizeof(*d));
    if (d == NULL)
        goto done;
    d->mode = p->mode;
    d->max_age = p->max_age;
    if (p->text != NULL) {
        d->text = sts_strndup(p->text, p->text_len);
        if (d->text == NULL)
            goto done;
        d->text_len = p->text_len;
    }
    if (p->n_mx > 0) {
        d->mx = sts_calloc_array(p->n_mx, sizeof(*d->mx));
        if (d->mx == NULL)
            goto done;
        /* n_mx is set before the copies so that a partial copy frees cleanly. */
        d->n_mx = p->n_mx;
        for (size_t i = 0; i < p->n_mx; i++) {
            d->mx[i] = sts_strndup(p->mx[i], strlen(p->mx[i]));
            if (d->mx[i] == NULL)
                goto done;
        }
    }
    ret = d;
    d = NULL;
done:
    sts_policy_free(d);
    return ret;
}

bool sts_policy_mx_match(const sts_policy *p, const char *host)
{
    if (p == NULL || host == NULL)
        return false;
    for (size_t i = 0; i < p->n_mx; i++)
        if (sts_mx_match(p->mx[i], host))
            return true;
    return false;
}

static const struct {
    sts_mode mode;
    const char *name;
} policy_modes[] = {
    { STS_MODE_ENFORCE, "enforce" },
    { STS_MODE_TESTING, "testing" },
    { STS_MODE_NONE, "none" },
};

const char *sts_mode_name(sts_mode m)
{
    for (size_t i = 0; i < sizeof(policy_modes) / sizeof(policy_modes[0]); i++)
        if (policy_modes[i].mode == m)
            return policy_modes[i].name;
    return "unknown";
}

bool sts_mode_from_name(const char *s, size_t len, sts_mode *out)
{
    sts_cur c = sts_cur_make(s, s != NULL ? len : 0);

    for (size_t i = 0; i < sizeof(policy_modes) / sizeof(policy_modes[0]); i++) {
        if (sts_cur_eq(&c, policy_modes[i].name)) {
            if (out != NULL)
                *out = policy_modes[i].mode;
            return true;
        }
    }
    return false;
}
