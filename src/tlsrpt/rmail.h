/*
 * rmail.h - TLS report mail (RFC 8460 section 5.3): building the MIME
 * message, handing it to the local submission command, and the two
 * together as the mail step of report delivery (rsend.h).
 */
#ifndef STS_RMAIL_H
#define STS_RMAIL_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/status.h"
#include "tlsrpt/rsend.h"

#define STS_RMAIL_MAX (64u * 1024 * 1024) /* cap on a built message */

typedef struct sts_rmail {
    const char *from;          /* From: address (printable ASCII, no CR/LF) */
    const char *to;            /* the rua mailto address (tlsrpt_txt.h checked it) */
    const char *policy_domain; /* TLS-Report-Domain */
    const char *submitter;     /* TLS-Report-Submitter */
    const char *report_id;     /* the report-id of the JSON */
    const char *message_id;    /* Message-ID without <>: id-left@id-right */
    int64_t begin, end;        /* date-range, for the human-readable part */
    int64_t date;              /* Date:, UTC seconds */
    const char *filename;      /* RFC 8460 5.1 file name of the attachment */
    const unsigned char *gz;   /* the gzip'd report */
    size_t gz_len;
} sts_rmail;

/* Build the message (LF line ends, as local submission commands expect):
 *   headers From, To, Subject ("Report Domain: D Submitter: S Report-ID:
 *   <id>", folded if long), Date, Message-ID, MIME-Version,
 *   TLS-Report-Domain, TLS-Report-Submitter, TLS-Required: No (RFC 8689),
 *   Auto-Submitted: auto-generated (RFC 3834), Content-Type:
 *   multipart/report; report-type="tlsrpt"; boundary=...
 *   part 1: text/plain; charset=us-ascii, 7bit, a human-readable summary;
 *   part 2: application/tlsrpt+gzip, base64, Content-Disposition:
 *   attachment; filename="...".
 * Report-ID is "<report_id>" if it contains '@', else "<report_id@submitter>".
 * Appends to out.  STS_PERMFAIL (a field with bytes a header cannot
 * carry, message over the cap), STS_NOMEM. */
sts_status sts_rmail_build(const sts_rmail *m, sts_buf *out, sts_why *why) STS_MUST_CHECK;

/* Run cmd with /bin/sh -c, the message on its standard input, in its own
 * process group; wait at most timeout_ms (0 = 120000), then kill the
 * group.  STS_OK if it exited 0; STS_TEMPFAIL otherwise (exit status,
 * signal, timeout, fork failure) with a reason that quotes the first line
 * of its output. */
sts_status sts_rmail_submit(const char *cmd, const char *msg, size_t len, unsigned timeout_ms,
                            sts_why *why) STS_MUST_CHECK;

/* Mail report r, gzip'd (gz, gzlen) and named filename (RFC 8460 5.1), to
 * the mailto: address `to`: build the message with o->from, Date: now and
 * a Message-ID unique to this attempt (now, and ruaidx, the rua's place in
 * the record), then submit it with o's ReportSendmail command and timeout.
 * Returns what sts_rmail_submit returns, except that a message that cannot
 * be built (no ReportFrom, a From: a header cannot carry) is STS_TEMPFAIL:
 * a configuration problem, retried after a fix; STS_NOMEM. */
sts_status sts_rmail_deliver(const sts_rsend_opts *o, int64_t now, const sts_rsend_report *r,
                             const char *submitter, const char *filename, unsigned ruaidx,
                             const char *to, const unsigned char *gz, size_t gzlen,
                             sts_why *why) STS_MUST_CHECK;

#endif
