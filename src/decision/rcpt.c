/*
 * rcpt.c - the domain of an SMTP recipient, read as the MTA reads it
 * (see rcpt.h): RFC 5321 4.1.2 Path = "<" [ A-d-l ":" ] Mailbox ">",
 * Mailbox = Local-part "@" Domain, with the RFC 5322 3.2.2 CFWS (white
 * space and nested comments) that Postfix's tok822 drops between tokens.
 *
 * A token reader over a bounded view: a word (atom, quoted string, domain
 * literal; a backslash quotes the next byte in each, as in tok822) or one
 * special.  The domain is built from the words and dots after the last
 * '@': tok822 joins them the same way to the internal form it routes by,
 * dropping the quotes and backslashes and putting one space between two
 * adjacent words (which no domain name survives).  Nothing reads past the
 * view; the output never exceeds the caller's buffer.
 */
#include "decision/rcpt.h"

#include <string.h>

#include "base/buf.h"

typedef enum tok_kind {
    TOK_END,
    TOK_WORD, /* an atom, a quoted string with its quotes, a literal with its brackets */
    TOK_AT,
    TOK_DOT,
    TOK_COMMA,
    TOK_COLON,
    TOK_OTHER, /* a special with no place in a mailbox: < > ) ] ; */
} tok_kind;

typedef struct tok {
    tok_kind kind;
    sts_cur text; /* the token's bytes as written */
    size_t off;   /* where it starts in the input */
} tok;

typedef struct rd {
    sts_cur c;        /* what is left of the input */
    const char *base; /* the whole input: offsets in reasons count from here */
    sts_why *why;     /* NULL while only trying an alternative */
} rd;

/* The domain being built: the words after the latest '@'. */
typedef struct dom {
    char *out;
    size_t outsz, len;
    bool at;        /* an '@' was seen */
    bool over;      /* the words after it do not fit in out */
    bool last_word; /* the previous token was a word */
} dom;

/* White space for tok822: SP, HTAB, CR, LF. */
static bool rd_is_space(unsigned char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* RFC 5322 specials, less the backslash, which starts an atom in tok822. */
static bool rd_is_special(unsigned char ch)
{
    return ch != '\0' && strchr("()<>[]:;@,.\"", ch) != NULL;
}

/* Say what is wrong with the byte at off (one the reader has seen). */
static void rd_fail(const rd *r, size_t off, const char *what)
{
    char q[16];

    if (r->why != NULL)
        sts_why_set(r->why, "%s at offset %zu ('%s')", what, off,
                    sts_quote(q, sizeof(q), r->base + off, 1));
}

static void rd_take(rd *r, size_t n)
{
    r->c.p += n;
    r->c.len -= n;
}

/* Take a quoted string, domain literal or comment starting at its open
 * byte, up to its close byte; a backslash quotes the next byte; comments
 * nest.  Fails, consuming nothing, when it is not closed. */
static bool rd_take_delimited(rd *r, char open, char close, bool nest, tok *t)
{
    size_t depth = 0;

    for (size_t i = 0; i < r->c.len; i++) {
        char ch = r->c.p[i];

        if (ch == '\\') {
            i++;
        } else if (ch == open && (nest || i == 0)) {
            depth++;
        } else if (ch == close && --depth == 0) {
            t->text = sts_cur_make(r->c.p, i + 1);
            rd_take(r, i + 1);
            return true;
        }
    }
    rd_fail(r, t->off,
            open == '"' ? "unclosed quoted string" : open == '[' ? "unclosed literal"
                                                                 : "unclosed comment");
    return false;
}

/* Skip white space and comments. */
static bool rd_skip_cfws(rd *r)
{
    tok comment;

    for (;;) {
        while (r->c.len > 0 && rd_is_space((unsigned char)r->c.p[0]))
            rd_take(r, 1);
        if (r->c.len == 0 || r->c.p[0] != '(')
            return true;
        comment.off = (size_t)(r->c.p - r->base);
        if (!rd_take_delimited(r, '(', ')', true, &comment))
            return false;
    }
}

/* The next token after any CFWS; false on an unclosed quote, literal or
 * comment (why set). */
static bool rd_next(rd *r, tok *t)
{
    size_t n = 0;
    unsigned char ch;

    if (!rd_skip_cfws(r))
        return false;
    t->off = (size_t)(r->c.p - r->base);
    t->text = sts_cur_make(r->c.p, 0);
    if (r->c.len == 0) {
        t->kind = TOK_END;
        return true;
    }
    ch = (unsigned char)r->c.p[0];
    t->kind = TOK_WORD;
    if (ch == '"')
        return rd_take_delimited(r, '"', '"', false, t);
    if (ch == '[')
        return rd_take_delimited(r, '[', ']', false, t);
    if (rd_is_special(ch)) {
        t->kind = ch == '@' ? TOK_AT : ch == '.' ? TOK_DOT : ch == ',' ? TOK_COMMA
                : ch == ':' ? TOK_COLON : TOK_OTHER;
        t->text.len = 1;
        rd_take(r, 1);
        return true;
    }
    while (n < r->c.len) {
        ch = (unsigned char)r->c.p[n];
        if (ch == '\\')
            n = n + 2 <= r->c.len ? n + 2 : r->c.len;
        else if (rd_is_space(ch) || rd_is_special(ch))
            break;
        else
            n++;
    }
    t->text.len = n;
    rd_take(r, n);
    return true;
}

static void dom_add(dom *d, const char *p, size_t n)
{
    if (d->over || n >= d->outsz - d->len) {
        d->over = true;
        return;
    }
    memcpy(d->out + d->len, p, n);
    d->len += n;
}

/* A word as tok822 internalizes it: quotes and backslashes dropped, a
 * literal's brackets kept. */
static void dom_add_word(dom *d, const tok *t)
{
    sts_cur w = t->text;

    if (d->last_word)
        dom_add(d, " ", 1);
    if (w.p[0] == '"') {
        w.p++;
        w.len -= 2;
    }
    for (size_t i = 0; i < w.len; i++) {
        if (w.p[i] == '\\' && i + 1 < w.len)
            i++;
        dom_add(d, w.p + i, 1);
    }
}

/* RFC 5321 A-d-l ":" = "@" domain *( "," "@" domain ) ":".  Taken whole
 * or not at all: without its ':', a leading '@' begins the mailbox
 * ("<@example.com>": an empty local part, as tok822 reads it). */
static void rd_take_route(rd *r)
{
    rd q = *r;
    tok t;

    q.why = NULL;
    do {
        size_t words = 0;

        if (!rd_next(&q, &t) || t.kind != TOK_AT)
            return;
        for (;;) {
            rd k = q;

            if (!rd_next(&k, &t) || (t.kind != TOK_WORD && t.kind != TOK_DOT))
                break;
            q = k;
            words++;
        }
        if (words == 0 || !rd_next(&q, &t))
            return;
    } while (t.kind == TOK_COMMA);
    if (t.kind == TOK_COLON) {
        q.why = r->why;
        *r = q;
    }
}

/* Local-part "@" Domain: the domain is what follows the last '@'. */
static sts_rcpt_status rd_take_mailbox(rd *r, dom *d)
{
    tok t;

    for (;;) {
        if (!rd_next(r, &t))
            return STS_RCPT_MALFORMED;
        switch (t.kind) {
        case TOK_END:
            if (!d->at)
                return STS_RCPT_NO_DOMAIN;
            if (d->over) {
                sts_why_set(r->why, "domain longer than %zu bytes", d->outsz - 1);
                return STS_RCPT_MALFORMED;
            }
            if (d->len == 0)
                return STS_RCPT_NO_DOMAIN;
            d->out[d->len] = '\0';
            return STS_RCPT_DOMAIN;
        case TOK_AT:
            d->at = true;
            d->len = 0;
            d->over = false;
            d->last_word = false;
            break;
        case TOK_DOT:
            dom_add(d, ".", 1);
            d->last_word = false;
            break;
        case TOK_WORD:
            dom_add_word(d, &t);
            d->last_word = true;
            break;
        case TOK_COMMA:
        case TOK_COLON:
        case TOK_OTHER:
            rd_fail(r, t.off, "unexpected character");
            return STS_RCPT_MALFORMED;
        }
    }
}

sts_rcpt_status sts_rcpt_parse(const char *p, size_t len, char *out, size_t outsz,
                               sts_why *why)
{
    rd r = { sts_cur_make(p, len), p, why };
    dom d = { out, outsz, 0, false, false, false };

    if (p == NULL || len == 0)
        return STS_RCPT_NO_DOMAIN;
    if (outsz == 0) {
        sts_why_set(why, "no room for a domain");
        return STS_RCPT_MALFORMED;
    }
    if (memchr(p, '\0', len) != NULL) {
        sts_why_set(why, "NUL byte in the address");
        return STS_RCPT_MALFORMED;
    }
    while (r.c.len > 0 && rd_is_space((unsigned char)r.c.p[r.c.len - 1]))
        r.c.len--;
    while (r.c.len > 0 && rd_is_space((unsigned char)r.c.p[0]))
        rd_take(&r, 1);
    /* Postfix strips the brackets only as a pair around the whole argument. */
    if (sts_cur_take_char(&r.c, '<')) {
        if (r.c.len == 0 || r.c.p[r.c.len - 1] != '>') {
            sts_why_set(why, "'<' without a closing '>'");
            return STS_RCPT_MALFORMED;
        }
        r.c.len--;
    }
    rd_take_route(&r);
    return rd_take_mailbox(&r, &d);
}

sts_rcpt_status sts_rcpt_domain(const char *arg, const char *mta_addr, char *out, size_t outsz,
                                sts_why *why)
{
    if (mta_addr != NULL &&
        sts_rcpt_parse(mta_addr, strlen(mta_addr), out, outsz, NULL) == STS_RCPT_DOMAIN)
        return STS_RCPT_DOMAIN;
    return sts_rcpt_parse(arg, arg != NULL ? strlen(arg) : 0, out, outsz, why);
}
