/*
 * smtpreply.h - SMTP replies read from an untrusted server (RFC 5321
 * 4.2), for the MX probe (probe.h).
 *
 * A reply is one or more lines "DDD-text" ended by a line "DDD text" (or
 * "DDD" alone), every line with the same three-digit code, the first digit
 * 2 to 5.  Lines end in CRLF; a bare LF is accepted as servers send it.
 * Everything is bounded: a line is at most STS_SMTP_LINE_MAX bytes (RFC
 * 5321 4.5.3.1.5 allows 512; we accept more, reject beyond), a reply at
 * most STS_SMTP_REPLY_MAX_LINES lines.  The parser keeps only what the
 * probe needs: the code, the first line's text (printable ASCII, cut to
 * fit) and, for an EHLO reply, whether the STARTTLS keyword was offered
 * (RFC 3207 4: the first word of a continuation or final line).
 */
#ifndef STS_SMTPREPLY_H
#define STS_SMTPREPLY_H

#include <stdbool.h>
#include <stddef.h>

#define STS_SMTP_LINE_MAX 1000       /* bytes of one reply line, CRLF excluded */
#define STS_SMTP_REPLY_MAX_LINES 100 /* lines of one multi-line reply */
#define STS_SMTP_TEXT_MAX 128        /* bytes of the first line's text kept */

typedef enum sts_smtp_rc {
    STS_SMTP_MORE, /* all input used, the reply is not complete yet */
    STS_SMTP_DONE, /* the reply is complete; *used says where it ended */
    STS_SMTP_BAD,  /* not an SMTP reply (why says); the connection is useless */
} sts_smtp_rc;

typedef struct sts_smtp_reply {
    unsigned code;                  /* 200..599 when DONE; 0 before the first line */
    size_t nlines;                  /* lines complete so far */
    bool starttls;                  /* a line after the first offered STARTTLS */
    char text[STS_SMTP_TEXT_MAX];   /* first line's text, printable ASCII */
    char why[96];                   /* reason for STS_SMTP_BAD */
    /* internal: the line being read */
    char line[STS_SMTP_LINE_MAX + 1];
    size_t linelen;
} sts_smtp_reply;

/* Start reading a new reply. */
void sts_smtp_reply_init(sts_smtp_reply *r);

/* Feed n bytes of what the server sent.  Bytes up to the end of the reply
 * are consumed (*used, which is n unless DONE); what follows a complete
 * reply is left to the caller (a server that sends more before being
 * asked is pipelining where it must not, RFC 3207 4.2 / 5321 4.1.1). */
sts_smtp_rc sts_smtp_reply_feed(sts_smtp_reply *r, const char *p, size_t n, size_t *used);

/* The reply's class: 2 positive, 3 intermediate, 4 transient, 5 permanent. */
static inline unsigned sts_smtp_reply_class(const sts_smtp_reply *r)
{
    return r->code / 100;
}

#endif
