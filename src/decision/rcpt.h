/*
 * rcpt.h - the domain of an SMTP recipient: the one the MTA routes it to.
 *
 * The RCPT TO argument is an RFC 5321 Path ("<bob@example.com>", with an
 * optional source route "@a,@b:"); its local part may be a quoted string
 * holding '@', '>' and quoted pairs ("<\"a>b\"@example.com>").  MTAs read
 * it more loosely than RFC 5321: Postfix takes it apart with its RFC 822
 * tokenizer (tok822), which drops white space and (comments) between
 * tokens, so <bob@(c)example.com> and <bob@example.com > are routed to
 * example.com; the domain is what follows the last '@' outside quotes,
 * comments and [literals].  This module reads it the same way.
 * Pure functions: no I/O, no allocation.
 */
#ifndef STS_RCPT_H
#define STS_RCPT_H

#include <stddef.h>

#include "base/status.h"

typedef enum sts_rcpt_status {
    STS_RCPT_DOMAIN,    /* out holds the domain (raw: not normalised; a literal with
                           its brackets) */
    STS_RCPT_NO_DOMAIN, /* an address without a domain: "<postmaster>", "<>", "<bob@>" */
    STS_RCPT_MALFORMED, /* not one address (unbalanced quote, comment, bracket or
                           literal, a stray special, a domain longer than out):
                           why says what */
} sts_rcpt_status;

/* The domain of one address p[0..len): a Path with or without its angle
 * brackets, or a bare Mailbox as MTAs put it in {rcpt_addr}.  out (outsz
 * bytes, NUL-terminated) is written only for STS_RCPT_DOMAIN; why (may be
 * NULL) only for STS_RCPT_MALFORMED.  A NUL byte makes the input malformed. */
sts_rcpt_status sts_rcpt_parse(const char *p, size_t len, char *out, size_t outsz,
                               sts_why *why) STS_MUST_CHECK;

/* The domain the MTA routes a recipient to.  mta_addr is the {rcpt_addr}
 * macro, the address as the MTA parsed (Sendmail) or resolved (Postfix:
 * after its percent-hack and local-domain rewriting, local part RFC
 * 821-quoted) it, or NULL when the MTA sends none; arg is the RCPT TO
 * argument.  The domain of mta_addr when it has one, else that of arg
 * (Sendmail's {rcpt_addr} of a local recipient is the bare user name; the
 * argument still names the domain for the log).  Status and why as
 * sts_rcpt_parse for the address the domain came from, or for arg. */
sts_rcpt_status sts_rcpt_domain(const char *arg, const char *mta_addr, char *out, size_t outsz,
                                sts_why *why) STS_MUST_CHECK;

#endif
