/*
 * smtpreply.c - reading SMTP replies (RFC 5321 4.2, 4.5.3.1.5; the EHLO
 * keyword syntax of 4.1.1.1 and STARTTLS of RFC 3207 4).  See smtpreply.h.
 * The server is untrusted: lines are bounded, a reply's lines are counted,
 * nothing is searched for in free text except the first word of an EHLO
 * line, which is where RFC 5321 puts the keyword.
 */
#include "sts/smtpreply.h"

#include <stdio.h>
#include <string.h>

#include "base/buf.h"

void sts_smtp_reply_init(sts_smtp_reply *r)
{
    memset(r, 0, sizeof(*r));
}

static sts_smtp_rc bad(sts_smtp_reply *r, const char *why)
{
    (void)snprintf(r->why, sizeof(r->why), "%s", why);
    return STS_SMTP_BAD;
}

/* ehlo-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-"): is the first word
 * of text exactly STARTTLS (case-insensitively)? */
static bool offers_starttls(const char *text, size_t len)
{
    static const char kw[] = "STARTTLS";
    size_t n = sizeof(kw) - 1;

    if (len < n || !sts_mem_eq_nocase(text, kw, n))
        return false;
    return len == n || text[n] == ' ' || text[n] == '\t';
}

/* One complete line (no CR/LF). */
static sts_smtp_rc take_line(sts_smtp_reply *r, const char *l, size_t len)
{
    unsigned code;
    bool last;

    if (len < 3 || !sts_is_digit((unsigned char)l[0]) || !sts_is_digit((unsigned char)l[1]) ||
        !sts_is_digit((unsigned char)l[2]))
        return bad(r, "reply line does not start with a three-digit code");
    if (l[0] < '2' || l[0] > '5' || l[1] > '5')
        return bad(r, "reply code out of range");
    code = (unsigned)(l[0] - '0') * 100 + (unsigned)(l[1] - '0') * 10 + (unsigned)(l[2] - '0');
    if (len > 3 && l[3] != ' ' && l[3] != '-')
        return bad(r, "reply code not followed by a space or a hyphen");
    last = len == 3 || l[3] == ' ';
    if (r->nlines > 0 && code != r->code)
        return bad(r, "multi-line reply changes its code");
    if (r->nlines >= STS_SMTP_REPLY_MAX_LINES)
        return bad(r, "multi-line reply too long");
    if (r->nlines == 0) {
        size_t k = 0;

        r->code = code;
        for (size_t i = 4; i < len && k + 1 < sizeof(r->text); i++)
            r->text[k++] = (l[i] >= 0x20 && l[i] < 0x7f) ? l[i] : '?';
        r->text[k] = '\0';
    } else if (len > 4 && offers_starttls(l + 4, len - 4)) {
        r->starttls = true;
    }
    r->nlines++;
    return last ? STS_SMTP_DONE : STS_SMTP_MORE;
}

sts_smtp_rc sts_smtp_reply_feed(sts_smtp_reply *r, const char *p, size_t n, size_t *used)
{
    size_t i = 0;

    *used = 0;
    if (r->why[0] != '\0')
        return STS_SMTP_BAD;
    while (i < n) {
        const char *lf = memchr(p + i, '\n', n - i);
        size_t take = lf != NULL ? (size_t)(lf - (p + i)) : n - i;
        sts_smtp_rc rc;
        size_t len;

        if (r->linelen + take > STS_SMTP_LINE_MAX + 1) /* +1: room for the CR */
            return bad(r, "reply line too long");
        memcpy(r->line + r->linelen, p + i, take);
        r->linelen += take;
        i += take;
        if (lf == NULL)
            break;
        i++; /* the LF */
        len = r->linelen;
        if (len > 0 && r->line[len - 1] == '\r')
            len--;
        if (len > STS_SMTP_LINE_MAX)
            return bad(r, "reply line too long");
        if (memchr(r->line, '\r', len) != NULL || memchr(r->line, '\0', len) != NULL)
            return bad(r, "CR or NUL inside a reply line");
        rc = take_line(r, r->line, len);
        r->linelen = 0;
        if (rc != STS_SMTP_MORE) {
            *used = i;
            return rc;
        }
    }
    *used = i;
    return STS_SMTP_MORE;
}
